//! Any sequence of datagrams from a few sources, interleaved with timer expiries, fed to
//! a running node: it must never panic, and whatever it sends must parse.
#![no_main]

use std::time::{Duration, Instant};

use ipop_core::overlay::{Config, Handled, Node};
use ipop_core::{Address, TransportAddr, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut node = Node::new(Config::default(), Address::from_bytes([0x42; 20]), 1, start);
    node.add_local_transport(TransportAddr::udp(([198, 18, 0, 1], 4000).into()));
    let boot = TransportAddr::udp(([198, 18, 0, 2], 4000).into());
    node.join(start, &[boot]);
    let mut now = start;
    let mut out = Vec::new();
    // Input: records of [source (1 byte), length (1 byte), bytes...].
    let mut rest = data;
    while let [src, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(u64::from(*src & 0x0f) * 100);
        let from = TransportAddr::udp(([198, 18, 0, 2 + (src >> 4)], 4000).into());
        let mut buf = datagram.to_vec();
        if let Handled::Forward(t) = node.handle_datagram(now, from, &mut buf) {
            assert!(wire::parse(&buf[..t.len]).is_ok());
        }
        node.handle_timeout(now);
        while node.poll_transmit(&mut out).is_some() {
            assert!(wire::parse(&out).is_ok(), "the node sent an unparsable datagram");
        }
        while node.poll_event().is_some() {}
        while node.poll_delivery().is_some() {}
    }
});
