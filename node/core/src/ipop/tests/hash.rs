//! Hash mode (the first IPOP paper): a node's P2P address is SHA-1 of its one virtual
//! address, peers find it without the DHT, and DHCP hands out only that address.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::address::Address;

const RANGE: &str = "10.60.0.0/24";

/// An overlay with namespace `ns`, plus one hash-mode node per address in `ips` (node
/// address SHA-1 of the IP, the IP held as its static address). Returns the sim and the
/// indices of the hash-mode nodes.
fn hash_nodes(seed: u64, ns: NamespaceId, ips: &[Ipv4Addr]) -> (Sim, Vec<usize>) {
    let mut sim = overlay(16, seed, ns, RANGE);
    let boot = [sim.node(0).transport];
    let nodes: Vec<usize> = ips
        .iter()
        .map(|ip| {
            let i = sim.add_node_with_address(Address::sha1(&ip.octets()));
            sim.start(i, &boot);
            i
        })
        .collect();
    sim.run_for(Duration::from_secs(8));
    for (&i, &ip) in nodes.iter().zip(ips) {
        let mut config = Config::new(ns);
        config.mapping = Mapping::Hash;
        sim.enable_ipop(i, config);
        let now = sim.now();
        sim.node_ipop(i).restore_lease(now, ip, None, Vec::new());
    }
    sim.run_for(Duration::from_secs(3));
    (sim, nodes)
}

fn stats(sim: &mut Sim, i: usize) -> Stats {
    sim.node_ipop(i).stats()
}

/// Whether any node stores a DHT record under `key`.
fn stored_anywhere(sim: &Sim, key: &[u8]) -> bool {
    let now = sim.now();
    sim.nodes()
        .iter()
        .any(|n| n.stack.dht.records(now).iter().any(|r| r.key == key))
}

#[test]
fn hash_mode_nodes_talk_without_dht_lookups() {
    let ns = NamespaceId([0x48; 16]);
    let (a, b) = (Ipv4Addr::new(10, 60, 0, 5), Ipv4Addr::new(10, 60, 0, 9));
    let (mut sim, nodes) = hash_nodes(21, ns, &[a, b]);
    let (x, y) = (nodes[0], nodes[1]);
    // The very first packet goes out at once: there is nothing to resolve.
    sim.tap_write(x, &udp_frame(mac(x), a, b, (5000, 9000), b"ping"));
    sim.run_for(Duration::from_millis(500));
    assert_eq!(
        received(&sim.take_tap_frames(), y),
        vec![(a, b"ping".to_vec())]
    );
    sim.tap_write(y, &udp_frame(mac(y), b, a, (9000, 9000), b"pong"));
    sim.run_for(Duration::from_millis(500));
    assert_eq!(
        received(&sim.take_tap_frames(), x),
        vec![(b, b"pong".to_vec())]
    );
    for i in [x, y] {
        let s = stats(&mut sim, i);
        assert_eq!(
            (s.lookups, s.to_overlay, s.from_overlay),
            (0, 1, 1),
            "node {i}"
        );
        assert_eq!(sim.node_ipop(i).resolver_state(), (0, 0), "node {i}");
    }
    // Nor is anything registered: the static addresses never went to the DHT.
    sim.run_for(Duration::from_secs(5));
    assert!(!stored_anywhere(&sim, &ns.ip_key(a)));
    assert!(!stored_anywhere(&sim, &ns.ip_key(b)));
}

#[test]
fn hash_mode_drops_spoofed_sources() {
    let ns = NamespaceId([0x49; 16]);
    let (a, b) = (Ipv4Addr::new(10, 60, 0, 5), Ipv4Addr::new(10, 60, 0, 9));
    let (mut sim, nodes) = hash_nodes(22, ns, &[a, b]);
    let (x, y) = (nodes[0], nodes[1]);
    // Node 3 (its address is no hash of `a`) sends into the namespace claiming to be `a`.
    let mut forged = ns.0.to_vec();
    forged.extend_from_slice(&udp_frame(mac(3), a, b, (1, 9000), b"forged")[14..]);
    let dst = sim.node(y).stack.node.address();
    sim.act(3, |n, t| {
        n.send_routed(t, dst, crate::wire::Mode::Exact, KIND_IP, &forged)
    })
    .unwrap();
    sim.run_for(Duration::from_secs(1));
    assert!(received(&sim.take_tap_frames(), y).is_empty());
    let s = stats(&mut sim, y);
    assert_eq!((s.dropped_spoofed, s.lookups), (1, 0));
    // The host behind x may send only from x's own address, even one x was told to
    // hold: an address that does not hash to x would draw its answers elsewhere.
    let other = Ipv4Addr::new(10, 60, 0, 77);
    let now = sim.now();
    sim.node_ipop(x).restore_lease(now, other, None, Vec::new());
    sim.tap_write(x, &udp_frame(mac(x), b, b, (1, 9000), b"not mine"));
    sim.tap_write(x, &udp_frame(mac(x), other, b, (1, 9000), b"not my hash"));
    sim.run_for(Duration::from_secs(1));
    assert!(received(&sim.take_tap_frames(), y).is_empty());
    assert_eq!(stats(&mut sim, x).dropped_unowned_source, 2);
}

#[test]
fn hash_mode_dhcp_offers_only_the_nodes_own_address() {
    let ns = NamespaceId([0x4a; 16]);
    let a = Ipv4Addr::new(10, 60, 0, 5);
    let (mut sim, nodes) = hash_nodes(23, ns, &[a]);
    let x = nodes[0];
    sim.tap_write(x, &dhcp_request(x, MessageType::Discover, 1, None));
    sim.run_for(Duration::from_millis(50));
    let offer = dhcp_answers(&sim.take_tap_frames(), x)
        .pop()
        .expect("an offer");
    assert_eq!(
        (offer.opts().msg_type(), offer.yiaddr()),
        (Some(MessageType::Offer), a)
    );
    sim.tap_write(x, &dhcp_request(x, MessageType::Request, 1, Some(a)));
    sim.run_for(Duration::from_millis(50));
    let ack = dhcp_answers(&sim.take_tap_frames(), x)
        .pop()
        .expect("an ack");
    assert_eq!(
        (ack.opts().msg_type(), ack.yiaddr()),
        (Some(MessageType::Ack), a)
    );
    // Any other address is refused, and a second client gets nothing: the node has one.
    let elsewhere = Ipv4Addr::new(10, 60, 0, 6);
    sim.tap_write(
        x,
        &dhcp_request(x, MessageType::Request, 2, Some(elsewhere)),
    );
    let second = [0x02, 0, 0, 0, 0x20, 1];
    sim.tap_write(
        x,
        &dhcp_request_from(second, MessageType::Discover, 3, None),
    );
    sim.run_for(Duration::from_millis(50));
    let answers = dhcp_answers(&sim.take_tap_frames(), x);
    assert_eq!(
        answers
            .iter()
            .map(|m| (m.xid(), m.opts().msg_type()))
            .collect::<Vec<_>>(),
        vec![(2, Some(MessageType::Nak))]
    );
    let s = stats(&mut sim, x);
    assert_eq!((s.dhcp_refused, s.dhcp_messages), (2, 4));
    // The DHT was never asked for an address.
    sim.run_for(Duration::from_secs(2));
    assert!(!stored_anywhere(&sim, &ns.ip_key(a)));
    assert!(
        !sim.take_ipop_events()
            .iter()
            .any(|(_, e)| matches!(e, Event::LeaseAcquired { .. }))
    );
}
