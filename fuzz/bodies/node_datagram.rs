//! Any sequence of datagrams from a few sources, interleaved with timer expiries, fed to
//! a running node's whole stack (overlay and DHT, with a DHT operation waiting): it must
//! never panic, and whatever it sends must parse.

use std::time::{Duration, Instant};

use ipop_core::overlay::Handled;
use ipop_core::{Address, Stack, TransportAddr, dht, overlay, wire};

/// Checks one input.
pub(crate) fn run(data: &[u8]) {
    let start = Instant::now();
    let me = Address::from_bytes([0x42; 20]);
    let mut stack = Stack::new(
        overlay::Config::default(),
        dht::Config::default(),
        me,
        1,
        start,
        dht::WallClock::fixed(start),
    );
    stack
        .node
        .add_local_transport(TransportAddr::udp(([198, 18, 0, 1], 4000).into()));
    let boot = TransportAddr::udp(([198, 18, 0, 2], 4000).into());
    stack.node.join(start, &[boot]);
    let hour = Duration::from_secs(3600);
    // Starts once the node is correctly connected (if the input ever gets it there).
    let _ = stack.dht_create(start, b"key", b"password", b"value", hour);
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
        if let Handled::Forward(t) = stack.handle_datagram(now, from, &mut buf) {
            assert!(wire::parse(&buf[..t.len]).is_ok());
        }
        stack.handle_timeout(now);
        while stack.poll_transmit(&mut out).is_some() {
            assert!(
                wire::parse(&out).is_ok(),
                "the node sent an unparsable datagram"
            );
        }
        while stack.poll_event().is_some() {}
        while stack.poll_delivery().is_some() {}
        while stack.poll_dht_result().is_some() {}
    }
}
