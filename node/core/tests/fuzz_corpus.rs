//! Replays every committed fuzz input (`fuzz/corpus/<target>/`, and the fixed crashes kept
//! in `fuzz/regressions/<target>/`) through the fuzz targets' own checks, on stable Rust.
//! Crashes not fixed yet wait in `fuzz/crashes/<target>/`: they must still fail, so the
//! fix that cures one is told to move it to `regressions/`.
//! The `node_stack` seeds are built here, from the traffic of a small overlay; set
//! `IPOP_WRITE_FUZZ_SEEDS=1` to write them to `fuzz/corpus/node_stack/`.

#[path = "../../../fuzz/bodies/dht_parse.rs"]
mod dht_parse;
#[path = "../../../fuzz/bodies/ip_mtu.rs"]
mod ip_mtu;
#[path = "../../../fuzz/bodies/namespace_open.rs"]
mod namespace_open;
#[path = "../../../fuzz/bodies/namespace_record.rs"]
mod namespace_record;
#[path = "../../../fuzz/bodies/node_datagram.rs"]
mod node_datagram;
#[path = "../../../fuzz/bodies/node_stack.rs"]
mod node_stack;
#[path = "../../../fuzz/bodies/secure_open.rs"]
mod secure_open;
#[path = "../../../fuzz/bodies/signed_routed.rs"]
mod signed_routed;
#[path = "../../../fuzz/bodies/wire_parse.rs"]
mod wire_parse;

use std::path::PathBuf;

/// The committed inputs of `target` in `dirs`, with their paths.
fn inputs(target: &str, dirs: &[&str]) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}

/// Runs `check` on every input of `target`; there must be some.
fn replay(target: &str, check: fn(&[u8])) {
    let fixed = inputs(target, &["corpus", "regressions"]);
    assert!(!fixed.is_empty(), "no corpus for {target}");
    for (path, bytes) in fixed {
        let caught = std::panic::catch_unwind(|| check(&bytes));
        assert!(caught.is_ok(), "{target} fails on {}", path.display());
    }
    for (path, bytes) in inputs(target, &["crashes"]) {
        let caught = std::panic::catch_unwind(|| check(&bytes));
        assert!(
            caught.is_err(),
            "{} no longer fails: move it to fuzz/regressions/{target}/",
            path.display()
        );
    }
}

#[test]
fn namespace_open_corpus_replays() {
    replay("namespace_open", namespace_open::run);
}

#[test]
fn wire_parse_corpus_replays() {
    replay("wire_parse", wire_parse::run);
}

#[test]
fn dht_parse_corpus_replays() {
    replay("dht_parse", dht_parse::run);
}

#[test]
fn node_datagram_corpus_replays() {
    replay("node_datagram", node_datagram::run);
}

#[test]
fn node_stack_corpus_replays() {
    replay("node_stack", node_stack::run);
}

#[test]
fn signed_routed_corpus_replays() {
    replay("signed_routed", signed_routed::run);
}

#[test]
fn namespace_record_corpus_replays() {
    replay("namespace_record", namespace_record::run);
}

#[test]
fn ip_mtu_corpus_replays() {
    replay("ip_mtu", ip_mtu::run);
}

#[test]
fn secure_open_corpus_replays() {
    replay("secure_open", secure_open::run);
}

/// The `node_stack` seeds: the operations that took its node from start to a joined
/// overlay, the namespace record read, a DHCP lease for its host and a packet sent.
mod seeds {
    use std::collections::VecDeque;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use dhcproto::v4::{self, MessageType};
    use dhcproto::{Decodable, Encodable};
    use ipop_core::ipop::{self, NamespaceRecord};
    use ipop_core::overlay::Handled;
    use ipop_core::{Address, Proto, Stack, TransportAddr, dht, overlay};
    use smoltcp::wire::{EthernetFrame, Ipv4Packet, UdpPacket};

    use super::node_stack::{self, Harness, MTU, NAMESPACE, Op, Output, SOURCES};

    const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x42];
    const TICK: u16 = 20;

    fn encode(op: &Op, out: &mut Vec<u8>) {
        let field = |out: &mut Vec<u8>, bytes: &[u8]| {
            assert!(
                bytes.len() <= MTU,
                "a captured datagram longer than the MTU"
            );
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        match op {
            Op::Datagram(src, bytes) => {
                out.extend_from_slice(&[node_stack::DATAGRAM, *src]);
                field(out, bytes);
            }
            Op::Step(ms) => {
                out.push(node_stack::STEP);
                out.extend_from_slice(&ms.to_be_bytes());
            }
            Op::Tap(frame) => {
                out.push(node_stack::TAP);
                field(out, frame);
            }
            Op::Timeout => out.push(node_stack::TIMEOUT),
        }
    }

    /// A UDP packet from the host as it writes it to the TAP.
    fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, ports: (u16, u16), payload: &[u8]) -> Vec<u8> {
        ipop_core::sim::host_udp_frame(HOST_MAC, src, dst, ports, payload)
    }

    fn dhcp(kind: MessageType, requested: Option<Ipv4Addr>) -> Op {
        let mut m = v4::Message::default();
        m.set_opcode(v4::Opcode::BootRequest)
            .set_xid(0x1234)
            .set_chaddr(&HOST_MAC)
            .set_flags(v4::Flags::default().set_broadcast());
        m.opts_mut().insert(v4::DhcpOption::MessageType(kind));
        if let Some(ip) = requested {
            m.opts_mut().insert(v4::DhcpOption::RequestedIpAddress(ip));
        }
        let payload = m.to_vec().unwrap();
        Op::Tap(udp_frame(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            (68, 67),
            &payload,
        ))
    }

    /// The DHCP answer in a frame the node wrote to the TAP.
    fn dhcp_answer(frame: &[u8]) -> Option<v4::Message> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        let udp = UdpPacket::new_checked(ip.payload()).ok()?;
        (udp.src_port() == 67)
            .then(|| v4::Message::decode(&mut v4::Decoder::new(udp.payload())).ok())?
    }

    /// Datagrams in flight: source, destination, bytes.
    type Wire = VecDeque<(TransportAddr, TransportAddr, Vec<u8>)>;

    struct Overlay {
        node: Harness,
        peers: Vec<Stack>,
        wire: Wire,
        ops: Vec<Op>,
        tap: Vec<Vec<u8>>,
    }

    impl Overlay {
        fn node_op(&mut self, op: Op) {
            let Output { transmits, tap } = self.node.apply(&op);
            self.ops.push(op);
            for (dst, bytes) in transmits {
                self.wire
                    .push_back((node_stack::local(dst.proto == Proto::Tcp), dst, bytes));
            }
            self.tap.extend(tap);
        }

        fn drain_peer(&mut self, i: usize) {
            let mut buf = Vec::new();
            let p = &mut self.peers[i];
            while let Some(dst) = p.poll_transmit(&mut buf) {
                self.wire
                    .push_back((node_stack::source(i as u8), dst, buf.clone()));
            }
            while p.poll_event().is_some() {}
            while p.poll_delivery().is_some() {}
            while p.poll_dht_result().is_some() {}
            while p.poll_ipop_event().is_some() {}
            while p.poll_tap(&mut buf) {}
        }

        /// Delivers what is in flight, the node's share through recorded operations.
        fn deliver(&mut self) {
            while let Some((from, to, mut bytes)) = self.wire.pop_front() {
                let now = self.node.now;
                if to == node_stack::local(to.proto == Proto::Tcp) {
                    let src = (0..SOURCES)
                        .find(|&i| node_stack::source(i) == from)
                        .unwrap();
                    if from.proto == Proto::Tcp {
                        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&bytes);
                        bytes = framed;
                    }
                    self.node_op(Op::Datagram(src, bytes));
                } else if let Some(i) = (0..SOURCES).position(|i| node_stack::source(i) == to) {
                    if let Handled::Forward(t) =
                        self.peers[i].handle_datagram(now, from, &mut bytes)
                    {
                        self.wire.push_back((to, t.dst, bytes[..t.len].to_vec()));
                    }
                    self.drain_peer(i);
                }
            }
        }

        fn tick(&mut self) {
            self.node_op(Op::Step(TICK));
            self.node_op(Op::Timeout);
            for i in 0..self.peers.len() {
                self.peers[i].handle_timeout(self.node.now);
                self.drain_peer(i);
            }
            self.deliver();
        }
    }

    /// Runs the overlay and returns the node's operations, and their encodings at the
    /// points where the node had joined, had its lease, and at the end.
    pub(super) fn capture() -> (Harness, Vec<Vec<u8>>) {
        let start = std::time::Instant::now();
        let node = Harness::new(start);
        let peers = (0..SOURCES)
            .map(|i| {
                let mut s = Stack::new(
                    overlay::Config::default(),
                    dht::Config::default(),
                    Address::from_bytes([0x10 + 0x30 * i; 20]),
                    100 + u64::from(i),
                    start,
                    dht::WallClock::fixed(start),
                );
                let me = node_stack::source(i);
                s.node.add_local_transport(me);
                s.enable_ipop(ipop::Config::new(NAMESPACE), [200 + i; 32], start);
                s.node
                    .join(start, &[node_stack::local(me.proto == Proto::Tcp)]);
                s
            })
            .collect();
        let mut o = Overlay {
            node,
            peers,
            wire: Wire::new(),
            ops: Vec::new(),
            tap: Vec::new(),
        };
        let ticks = |s: u64| s * 1000 / u64::from(TICK);
        let mut marks = Vec::new();
        for _ in 0..ticks(6) {
            o.tick();
        }
        marks.push(o.ops.len());
        let record = NamespaceRecord {
            name: "fuzz".into(),
            range: "10.77.0.0/24".parse().unwrap(),
            lease: Duration::from_secs(600),
            mtu: 1280,
            dns: None,
        };
        let now = o.node.now;
        o.peers[0]
            .dht_op(now, |d, n| {
                d.create(
                    now,
                    n,
                    &NAMESPACE.record_key(),
                    &NAMESPACE.record_password(),
                    &record.encode(),
                    Duration::from_secs(3600),
                )
            })
            .unwrap();
        o.drain_peer(0);
        let mut leased = None;
        for t in 0..ticks(20) {
            if leased.is_none() && t % 50 == 0 {
                o.node_op(dhcp(MessageType::Discover, None));
            }
            o.tick();
            for frame in std::mem::take(&mut o.tap) {
                let Some(m) = dhcp_answer(&frame) else {
                    continue;
                };
                match m.opts().msg_type() {
                    Some(MessageType::Offer) if leased.is_none() => {
                        o.node_op(dhcp(MessageType::Request, Some(m.yiaddr())));
                    }
                    Some(MessageType::Ack) if leased.is_none() => {
                        leased = Some(m.yiaddr());
                        marks.push(o.ops.len());
                    }
                    _ => {}
                }
            }
            if let Some(ip) = leased.filter(|_| t % 50 == 25) {
                // A packet to another member's address: a Brunet-ARP lookup.
                let dst = Ipv4Addr::new(10, 77, 0, 200);
                o.node_op(Op::Tap(udp_frame(ip, dst, (5000, 5001), b"ping")));
            }
        }
        marks.push(o.ops.len());
        assert!(leased.is_some(), "the host got no lease");
        let seeds = marks
            .into_iter()
            .map(|n| {
                let mut bytes = Vec::new();
                for op in &o.ops[..n] {
                    encode(op, &mut bytes);
                }
                bytes
            })
            .collect();
        (o.node, seeds)
    }
}

#[test]
fn node_stack_seeds_from_a_small_overlay_reach_a_lease() {
    let (node, seeds) = seeds::capture();
    assert!(node.stack.node.is_correctly_connected());
    let ipop = node.stack.ipop.as_ref().unwrap();
    assert!(ipop.record().is_some() && !ipop.addresses().is_empty());
    for seed in &seeds {
        node_stack::run(seed);
    }
    // Replayed, the last seed takes a fresh node to the same place.
    let mut replayed = node_stack::Harness::new(std::time::Instant::now());
    let mut input = seeds.last().unwrap().as_slice();
    while let Some(op) = node_stack::Op::decode(&mut input) {
        replayed.apply(&op);
    }
    let ipop = replayed.stack.ipop.as_ref().unwrap();
    assert!(ipop.record().is_some() && !ipop.addresses().is_empty());
    if std::env::var_os("IPOP_WRITE_FUZZ_SEEDS").is_some() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/node_stack");
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("overlay-{i}")), seed).unwrap();
        }
    }
}
