//! A node's whole stack with the IPOP layer on, driven by a sequence of operations
//! decoded from the fuzz input: datagrams from a few UDP sources and TCP byte streams
//! (2-byte length framing, as `ipop-node` reads them), time steps, timer expiries and
//! frames from the host's TAP. It must never panic, and whatever it sends must parse and
//! whatever it writes to the TAP must be an Ethernet frame.
//!
//! Shared by the fuzz target and `node/core/tests/fuzz_corpus.rs`, which replays the
//! committed corpus and builds the seeds from a small overlay's real traffic.

use std::time::{Duration, Instant};

use ipop_core::ipop::{self, NamespaceId};
use ipop_core::overlay::Handled;
use ipop_core::{Address, Stack, TransportAddr, dht, overlay, wire};

/// The underlay MTU: the longest datagram and TAP frame an operation carries.
pub(crate) const MTU: usize = 1500;
/// The namespace the node's TAP belongs to.
pub(crate) const NAMESPACE: NamespaceId = NamespaceId([7; 16]);
/// How many sources there are: even ones UDP, odd ones TCP.
pub(crate) const SOURCES: u8 = 4;

/// The node's own transports (UDP and TCP on the same port).
pub(crate) fn local(tcp: bool) -> TransportAddr {
    let a = ([198, 18, 0, 1], 4000).into();
    if tcp {
        TransportAddr::tcp(a)
    } else {
        TransportAddr::udp(a)
    }
}

/// Source `i` (taken modulo [`SOURCES`]).
pub(crate) fn source(i: u8) -> TransportAddr {
    let i = i % SOURCES;
    let a = ([198, 18, 0, 2 + i], 4000).into();
    if i % 2 == 1 {
        TransportAddr::tcp(a)
    } else {
        TransportAddr::udp(a)
    }
}

/// One operation. Encoding: a tag byte, whose value modulo 4 is the kind, then
/// `Datagram`: source (1 byte), length (2 bytes, big-endian), bytes (at most [`MTU`]);
/// `Step`: milliseconds (2 bytes); `Tap`: length (2 bytes), frame (at most [`MTU`]);
/// `Timeout`: nothing. A datagram from a TCP source is a chunk of the stream: frames
/// with 2-byte length prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Bytes from a source.
    Datagram(u8, Vec<u8>),
    /// Time passes.
    Step(u16),
    /// The host writes a frame to the TAP.
    Tap(Vec<u8>),
    /// The driver's timer fires.
    Timeout,
}

/// The tag bytes of the kinds.
pub(crate) const DATAGRAM: u8 = 0;
pub(crate) const STEP: u8 = 1;
pub(crate) const TAP: u8 = 2;
pub(crate) const TIMEOUT: u8 = 3;
const KINDS: u8 = TIMEOUT + 1;

fn take<'a>(input: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = input.split_at(n.min(input.len()));
    *input = tail;
    head
}

fn take_u16(input: &mut &[u8]) -> u16 {
    match take(input, 2) {
        [a, b] => u16::from_be_bytes([*a, *b]),
        [a] => u16::from(*a),
        _ => 0,
    }
}

impl Op {
    /// Decodes the next operation; `None` at the end of the input.
    pub(crate) fn decode(input: &mut &[u8]) -> Option<Op> {
        let (&tag, rest) = input.split_first()?;
        *input = rest;
        Some(match tag % KINDS {
            DATAGRAM => {
                let src = take(input, 1).first().copied().unwrap_or(0);
                let len = usize::from(take_u16(input)).min(MTU);
                Op::Datagram(src, take(input, len).to_vec())
            }
            STEP => Op::Step(take_u16(input)),
            TAP => {
                let len = usize::from(take_u16(input)).min(MTU);
                Op::Tap(take(input, len).to_vec())
            }
            _ => Op::Timeout,
        })
    }
}

/// What the node produced in answer to one operation.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Datagrams sent, with their destination.
    pub(crate) transmits: Vec<(TransportAddr, Vec<u8>)>,
    /// Frames written to the TAP.
    pub(crate) tap: Vec<Vec<u8>>,
}

/// The node under test.
#[derive(Debug)]
pub(crate) struct Harness {
    /// Its stack.
    pub(crate) stack: Stack,
    /// Virtual time.
    pub(crate) now: Instant,
}

impl Harness {
    /// A node that joins through source 0, with the IPOP layer on.
    pub(crate) fn new(start: Instant) -> Self {
        let mut stack = Stack::new(
            overlay::Config::default(),
            dht::Config::default(),
            Address::from_bytes([0x42; 20]),
            1,
            start,
            dht::WallClock::fixed(start),
        );
        stack.node.add_local_transport(local(false));
        stack.node.add_local_transport(local(true));
        stack.enable_ipop(ipop::Config::new(NAMESPACE), [2; 32], start);
        stack.node.join(start, &[source(0)]);
        Harness { stack, now: start }
    }

    /// Applies one operation.
    pub(crate) fn apply(&mut self, op: &Op) -> Output {
        let mut out = Output::default();
        match op {
            Op::Datagram(src, bytes) => {
                let from = source(*src);
                if from.proto == ipop_core::Proto::Udp {
                    self.datagram(from, bytes.clone(), &mut out);
                } else {
                    let mut stream = bytes.as_slice();
                    while stream.len() >= 2 {
                        let len = usize::from(take_u16(&mut stream));
                        if len > stream.len() {
                            // A cut frame: the driver closes the stream.
                            self.stack.node.handle_transport_closed(self.now, from);
                            break;
                        }
                        let frame = take(&mut stream, len).to_vec();
                        self.datagram(from, frame, &mut out);
                    }
                }
            }
            Op::Step(ms) => self.now += Duration::from_millis(u64::from(*ms)),
            Op::Tap(frame) => self.stack.handle_tap_frame(self.now, frame),
            Op::Timeout => self.stack.handle_timeout(self.now),
        }
        let mut buf = Vec::new();
        while let Some(dst) = self.stack.poll_transmit(&mut buf) {
            out.transmits.push((dst, buf.clone()));
        }
        while self.stack.poll_event().is_some() {}
        while self.stack.poll_delivery().is_some() {}
        while self.stack.poll_dht_result().is_some() {}
        while self.stack.poll_ipop_event().is_some() {}
        let mut frame = Vec::new();
        while self.stack.poll_tap(&mut frame) {
            out.tap.push(std::mem::take(&mut frame));
        }
        out
    }

    fn datagram(&mut self, from: TransportAddr, mut bytes: Vec<u8>, out: &mut Output) {
        if let Handled::Forward(t) = self.stack.handle_datagram(self.now, from, &mut bytes) {
            out.transmits.push((t.dst, bytes[..t.len].to_vec()));
        }
    }
}

/// Runs the operations encoded in `data` on a fresh node.
pub(crate) fn run(data: &[u8]) {
    let mut h = Harness::new(Instant::now());
    let mut input = data;
    while let Some(op) = Op::decode(&mut input) {
        let out = h.apply(&op);
        for (dst, bytes) in &out.transmits {
            assert!(wire::parse(bytes).is_ok(), "unparsable datagram to {dst}");
        }
        for frame in &out.tap {
            assert!(frame.len() >= 14, "a TAP frame without an Ethernet header");
        }
    }
}
