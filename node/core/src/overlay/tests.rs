//! Behaviour of small overlays, driven by the simulator.

use std::time::Duration;

use super::*;
use crate::sim::{Network, Scenario, Sim};
use crate::wire::{
    AddressList, CtmRequest, LinkStatus, Mode, OverlayPayload, Roles, Routed, RoutedFlags,
    TransportList, kind,
};

fn small(nodes: usize, seed: u64) -> Scenario {
    Scenario {
        nodes,
        seed,
        routes: 500,
        settle: Duration::from_secs(60),
        ..Scenario::default()
    }
}

/// A simulated overlay of `n` nodes (seed `seed`) that all joined through the first one
/// and ran for `settle`; with the nodes' indices.
pub(super) fn settled(seed: u64, n: usize, settle: Duration) -> (Sim, Vec<usize>) {
    let mut sim = Sim::new(seed, Network::default(), Config::default());
    let nodes: Vec<usize> = (0..n).map(|_| sim.add_node()).collect();
    let boot = [sim.node(nodes[0]).transport];
    for &i in &nodes {
        sim.start(i, &boot);
    }
    sim.run_for(settle);
    (sim, nodes)
}

#[test]
fn a_lone_seed_node_is_correctly_connected() {
    let mut sim = Sim::new(1, Network::default(), Config::default());
    let a = sim.add_node();
    sim.start(a, &[]);
    assert!(sim.node(a).stack.node.is_correctly_connected());
}

#[test]
fn two_nodes_link_and_agree() {
    let mut sim = Sim::new(2, Network::default(), Config::default());
    let a = sim.add_node();
    let b = sim.add_node();
    let boot = [sim.node(a).transport];
    sim.start(a, &boot);
    sim.start(b, &boot);
    sim.run_for(Duration::from_secs(3));
    for i in [a, b] {
        let n = &sim.node(i).stack.node;
        assert!(n.is_correctly_connected(), "node {i}");
        assert_eq!(n.connections().count(), 1);
    }
    let addr_b = sim.node(b).stack.node.address();
    assert_eq!(
        sim.node(a).stack.node.ring_neighbors(),
        (Some(addr_b), Some(addr_b))
    );
}

#[test]
fn fifty_nodes_form_a_consistent_ring_and_route_everything() {
    let report = small(50, 3).run(&mut |_, _| {});
    let p = &report.after_join;
    assert_eq!(p.correctly_connected, 50, "{report:#?}");
    assert!(p.ring_consistent, "{report:#?}");
    assert_eq!(p.routes_delivered, p.routes_tried, "{report:#?}");
}

#[test]
fn same_seed_same_run() {
    let a = small(40, 9).run(&mut |_, _| {});
    let b = small(40, 9).run(&mut |_, _| {});
    assert_eq!(a, b);
}

#[test]
fn simultaneous_links_settle_on_one_connection() {
    let mut sim = Sim::new(4, Network::default(), Config::default());
    let a = sim.add_node();
    let b = sim.add_node();
    let (ta, tb) = (sim.node(a).transport, sim.node(b).transport);
    let (addr_a, addr_b) = (
        sim.node(a).stack.node.address(),
        sim.node(b).stack.node.address(),
    );
    sim.start(a, &[]);
    sim.start(b, &[]);
    // Both link to each other at the same instant, as after a CTM.
    sim.act(a, |n, now| {
        n.start_link(now, Some(addr_b), [Edge::Direct(tb)], Roles::NEAR)
    });
    sim.act(b, |n, now| {
        n.start_link(now, Some(addr_a), [Edge::Direct(ta)], Roles::NEAR)
    });
    sim.run_for(Duration::from_secs(2));
    for (i, peer) in [(a, addr_b), (b, addr_a)] {
        let conns: Vec<_> = sim.node(i).stack.node.connections().collect();
        assert_eq!(conns.len(), 1, "node {i}: {conns:?}");
        assert_eq!(conns[0].peer, peer);
    }
    assert_eq!(sim.node(a).stack.node.stats().link_failures, 0);
}

#[test]
fn link_requests_from_another_overlay_are_refused() {
    let mut sim = Sim::new(5, Network::default(), Config::default());
    let other = Config {
        overlay_id: Config::overlay_id_of("someone-else"),
        ..Config::default()
    };
    let a = sim.add_node();
    sim.start(a, &[]);
    let now = sim.now();
    let mut stranger = Node::new(other, crate::Address::from_bytes([7; 20]), 1, now);
    let t = sim.node(a).transport;
    stranger.add_local_transport(TransportAddr::udp("198.18.9.9:4000".parse().unwrap()));
    stranger.join(now, &[t]);
    stranger.handle_timeout(now);
    let mut buf = Vec::new();
    let dst = stranger.poll_transmit(&mut buf).expect("a link request");
    assert_eq!(dst, t);
    let from = TransportAddr::udp("198.18.9.9:4000".parse().unwrap());
    let mut reply = Vec::new();
    sim.act(a, |n, now| {
        assert_eq!(n.handle_datagram(now, from, &mut buf), Handled::Done);
        n.poll_transmit(&mut reply)
    });
    let Ok(wire::Message::LinkResponse(r)) = wire::parse(&reply) else {
        panic!("no link response")
    };
    assert_eq!(r.status, LinkStatus::OverlayMismatch);
    assert_eq!(sim.node(a).stack.node.connections().count(), 0);
}

#[test]
fn blocked_peers_link_through_a_relay_and_upgrade_when_they_can() {
    let mut sim = Sim::new(8, Network::default(), Config::default());
    let (c, a, b) = (sim.add_node(), sim.add_node(), sim.add_node());
    let boot = [sim.node(c).transport];
    sim.block_pair(a, b);
    sim.start(c, &boot);
    sim.start(a, &boot);
    sim.start(b, &boot);
    sim.run_for(Duration::from_secs(20));
    let (addr_b, addr_c) = (
        sim.node(b).stack.node.address(),
        sim.node(c).stack.node.address(),
    );
    let edge = |sim: &Sim| sim.connection(a, b).map(|x| x.edge);
    assert_eq!(edge(&sim), Some(Edge::Relay { via: addr_c }));
    for i in [a, b, c] {
        assert!(sim.node(i).stack.node.is_correctly_connected(), "node {i}");
    }
    // The relay keeps its two connections for the relayed edge.
    let relay_roles = sim
        .node(a)
        .stack
        .node
        .connections()
        .find(|x| x.peer == addr_c)
        .unwrap()
        .roles;
    assert!(relay_roles.contains(Roles::RELAY), "{relay_roles:?}");
    // Traffic crosses the relay edge.
    sim.take_observed();
    sim.act(a, |n, now| n.send_probe(now, addr_b, 77, true))
        .unwrap();
    sim.run_for(Duration::from_secs(1));
    let replies: Vec<_> = sim
        .take_observed()
        .into_iter()
        .filter(|o| matches!(o.event, Event::ProbeReply { id: 77, .. }))
        .collect();
    assert_eq!(replies.len(), 1);
    // Once the direct path opens, the next upgrade attempt moves the edge onto it.
    sim.unblock_pair(a, b);
    sim.run_for(Config::default().relay_upgrade + Duration::from_secs(5));
    assert!(
        matches!(edge(&sim), Some(Edge::Direct(_))),
        "{:?}",
        edge(&sim)
    );
}

#[test]
fn full_size_packets_cross_a_relay_edge() {
    let mut sim = Sim::new(9, Network::default(), Config::default());
    let (c, a, b) = (sim.add_node(), sim.add_node(), sim.add_node());
    let boot = [sim.node(c).transport];
    sim.block_pair(a, b);
    for i in [c, a, b] {
        sim.start(i, &boot);
    }
    sim.run_for(Duration::from_secs(20));
    let addr_b = sim.node(b).stack.node.address();
    let payload = vec![0xab; 1400];
    sim.act(a, |n, now| {
        n.send_routed(now, addr_b, crate::wire::Mode::Exact, 99, &payload)
    })
    .unwrap();
    sim.run_for(Duration::from_secs(1));
    let got: Vec<_> = sim
        .take_deliveries()
        .into_iter()
        .filter(|(n, h, _)| *n == b && h.kind == 99)
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, payload);
}

pub(super) fn udp(s: &str) -> TransportAddr {
    TransportAddr::udp(s.parse().unwrap())
}

/// A node outside any simulator, listening on `t`; the test carries its datagrams.
pub(super) fn raw(id: u8, t: TransportAddr, config: Config, now: Instant) -> Node {
    let mut n = Node::new(
        config,
        crate::Address::from_bytes([id; 20]),
        u64::from(id),
        now,
    );
    n.add_local_transport(t);
    n
}

/// Takes every datagram `n` queued, with its destination.
pub(super) fn sent(n: &mut Node) -> Vec<(TransportAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(dst) = n.poll_transmit(&mut buf) {
        out.push((dst, std::mem::take(&mut buf)));
    }
    out
}

/// The link responses among `datagrams`, with their destinations.
fn responses(datagrams: &[(TransportAddr, Vec<u8>)]) -> Vec<(TransportAddr, wire::LinkResponse)> {
    datagrams
        .iter()
        .filter_map(|(dst, d)| match wire::parse(d) {
            Ok(wire::Message::LinkResponse(r)) => Some((*dst, r)),
            _ => None,
        })
        .collect()
}

/// Hands `b` a link request of `a`'s that arrives from `from` (where `a` is seen) and,
/// when `b` asks for a cookie, lets `a` answer it as it would (`a` reaches `b` at `to`);
/// returns what `b` sent last and the request that got it.
pub(super) fn link_through_cookie(
    a: &mut Node,
    b: &mut Node,
    now: Instant,
    (from, to): (TransportAddr, TransportAddr),
    mut request: Vec<u8>,
) -> (Vec<(TransportAddr, Vec<u8>)>, Vec<u8>) {
    b.handle_datagram(now, from, &mut request.clone());
    let answer = sent(b);
    let [(_, r)] = responses(&answer)[..] else {
        panic!("one link response: {answer:?}")
    };
    let LinkStatus::Cookie(_) = r.status else {
        return (answer, request);
    };
    let at = answer.iter().position(|(t, _)| *t == from).unwrap();
    a.handle_datagram(now, to, &mut answer[at].1.clone());
    request = sent(a)
        .into_iter()
        .find(|(t, _)| *t == to)
        .expect("the request again, with the cookie")
        .1;
    b.handle_datagram(now, from, &mut request.clone());
    (sent(b), request)
}

#[test]
fn a_node_that_reaches_itself_drops_that_transport_and_counts_it_as_its_own() {
    let now = Instant::now();
    let (t, alias) = (udp("198.18.0.1:4000"), udp("203.0.113.1:4000"));
    let mut a = raw(1, t, Config::default(), now);
    // Its bootstrap list names its own public address (as behind a port forward).
    a.join(now, &[alias]);
    a.handle_timeout(now);
    let out = sent(&mut a);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, alias);
    let mut request = out[0].1.clone();
    // The request arrives back at the node itself.
    assert_eq!(a.handle_datagram(now, t, &mut request), Handled::Done);
    let answer = sent(&mut a);
    let [(dst, r)] = responses(&answer)[..] else {
        panic!("one link response: {answer:?}")
    };
    assert_eq!((dst, r.status), (t, LinkStatus::ConnectToSelf));
    let mut bytes = answer[0].1.clone();
    a.handle_datagram(now, alias, &mut bytes);
    assert!(a.local_transports().contains(&alias));
    assert_eq!(a.connections().count(), 0);
    // It no longer links to that address.
    for s in 1..=20 {
        a.handle_timeout(now + Duration::from_millis(250 * s));
        assert!(sent(&mut a).iter().all(|(dst, _)| *dst != alias));
    }
}

#[test]
fn a_duplicate_link_request_on_another_edge_is_answered_already_connected() {
    let now = Instant::now();
    let (ta, tb) = (udp("198.18.0.1:4000"), udp("198.18.0.2:4000"));
    let mut a = raw(1, ta, Config::default(), now);
    let mut b = raw(2, tb, Config::default(), now);
    b.join(now, &[]);
    a.join(now, &[tb]);
    a.handle_timeout(now);
    let request = sent(&mut a).remove(0).1;
    let (ok, request) = link_through_cookie(&mut a, &mut b, now, (ta, tb), request);
    assert_eq!(responses(&ok)[0].1.status, LinkStatus::Ok);
    // The same request (same token) also arrives over another edge, A's TCP address.
    let ta_tcp = TransportAddr::tcp(ta.addr);
    b.handle_datagram(now, ta_tcp, &mut request.clone());
    let dup = sent(&mut b);
    let [(dst, r)] = responses(&dup)[..] else {
        panic!("one link response: {dup:?}")
    };
    assert_eq!((dst, r.status), (ta_tcp, LinkStatus::AlreadyConnected));
    let edges: Vec<Edge> = b.connections().map(|c| c.edge).collect();
    assert_eq!(
        edges,
        [Edge::Direct(ta)],
        "the connection stays on its edge"
    );
    // To the initiator, AlreadyConnected alone is no connection: it waits for the Ok.
    let bytes = |d: &[(TransportAddr, Vec<u8>)], i: usize| d[i].1.clone();
    let dup_at = dup.iter().position(|(t, _)| *t == ta_tcp).unwrap();
    a.handle_datagram(now, tb, &mut bytes(&dup, dup_at));
    assert_eq!(a.connections().count(), 0);
    let ok_at = ok.iter().position(|(t, _)| *t == ta).unwrap();
    a.handle_datagram(now, tb, &mut bytes(&ok, ok_at));
    assert_eq!(a.connections().count(), 1);
    // For a peer it is connected to (an attempt to upgrade the edge), it drops the
    // attempt and keeps the connection.
    let addr_b = b.address();
    a.start_upgrade(now, addr_b, vec![TransportAddr::tcp(tb.addr)]);
    assert!(a.linking_to(addr_b));
    let token = a.attempts[0].token;
    let answer = wire::Message::LinkResponse(wire::LinkResponse {
        token,
        status: LinkStatus::AlreadyConnected,
        src: addr_b,
        observed: None,
        roles: Roles::NONE,
    });
    a.handle_datagram(now, tb, &mut answer.to_vec().unwrap());
    assert!(!a.linking_to(addr_b));
    let edges: Vec<Edge> = a.connections().map(|c| c.edge).collect();
    assert_eq!(edges, [Edge::Direct(tb)]);
}

#[test]
fn a_new_node_on_a_transport_of_an_old_one_replaces_its_connection() {
    let now = Instant::now();
    let (ta, tb) = (udp("198.18.0.1:4000"), udp("198.18.0.2:4000"));
    let mut b = raw(2, tb, Config::default(), now);
    b.join(now, &[]);
    // A links to B, then stops without a word (killed); a new node, A2, starts on the
    // same host and port (or gets the same NAT mapping) and links to B.
    let mut link = |id: u8| {
        let mut a = raw(id, ta, Config::default(), now);
        a.join(now, &[tb]);
        a.handle_timeout(now);
        let request = sent(&mut a).remove(0).1;
        let (answer, _) = link_through_cookie(&mut a, &mut b, now, (ta, tb), request);
        assert_eq!(responses(&answer)[0].1.status, LinkStatus::Ok);
        a.address()
    };
    let old = link(1);
    let new = link(3);
    let peers: Vec<(Address, Edge)> = b.connections().map(|c| (c.peer, c.edge)).collect();
    assert_eq!(
        peers,
        [(new, Edge::Direct(ta))],
        "the stale connection to {old} is gone"
    );
    let gone = std::iter::from_fn(|| b.poll_event()).any(|e| {
        e == Event::Disconnected {
            peer: old,
            reason: DisconnectReason::Local(wire::CloseReason::Replaced),
        }
    });
    assert!(gone, "B reports the old connection replaced");
}

#[test]
fn the_address_a_peer_observed_is_learned_and_advertised_first() {
    let now = Instant::now();
    let (ta, tb) = (udp("10.0.0.2:4000"), udp("198.18.0.2:4000"));
    // A sits behind a NAT that maps it to this public address.
    let public = udp("203.0.113.9:61000");
    let mut a = raw(1, ta, Config::default(), now);
    let mut b = raw(2, tb, Config::default(), now);
    b.join(now, &[]);
    a.join(now, &[tb]);
    a.handle_timeout(now);
    let request = sent(&mut a).remove(0).1;
    let (answer, _) = link_through_cookie(&mut a, &mut b, now, (public, tb), request);
    let [(dst, r)] = responses(&answer)[..] else {
        panic!("one link response: {answer:?}")
    };
    assert_eq!((dst, r.observed), (public, Some(public)));
    let at = answer.iter().position(|(t, _)| *t == public).unwrap();
    a.handle_datagram(now, tb, &mut answer[at].1.clone());
    let events: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    assert!(
        events.contains(&Event::LearnedAddress(public)),
        "{events:?}"
    );
    assert_eq!(a.learned_addresses()[0].addr, public);
    assert_eq!(a.advertised_transports(), [public, ta]);
}

#[test]
fn a_routed_message_at_its_hop_limit_is_dropped_and_counted() {
    let (mut sim, nodes) = settled(10, 3, Duration::from_secs(5));
    let (a, b, c) = (nodes[0], nodes[1], nodes[2]);
    let (from, tc) = (sim.node(b).transport, sim.node(c).transport);
    let (src, dst) = (
        sim.node(b).stack.node.address(),
        sim.node(c).stack.node.address(),
    );
    let routed = |hops| app_datagram(src, dst, 4, hops);
    let before = sim.node(a).stack.node.stats();
    let mut at_limit = routed(4);
    let handled = sim.act(a, |n, now| n.handle_datagram(now, from, &mut at_limit));
    assert_eq!(handled, Handled::Done);
    let stats = sim.node(a).stack.node.stats();
    assert_eq!(stats.ttl_exceeded, before.ttl_exceeded + 1);
    assert_eq!(stats.forwarded, before.forwarded);
    // One hop less still goes on, with its hop count raised.
    let mut below = routed(3);
    let handled = sim.act(a, |n, now| n.handle_datagram(now, from, &mut below));
    assert!(
        matches!(handled, Handled::Forward(t) if t.dst == tc),
        "{handled:?}"
    );
    assert_eq!(below[wire::ROUTED_HOPS_OFFSET], 4);
    assert_eq!(
        sim.node(a).stack.node.stats().ttl_exceeded,
        before.ttl_exceeded + 1
    );
}

/// An application message (kind 99) from `src` to `dst`, as a datagram.
pub(super) fn app_datagram(src: Address, dst: Address, ttl: u8, hops: u8) -> Vec<u8> {
    let header = RoutedHeader {
        ttl,
        hops,
        mode: Mode::Exact,
        flags: RoutedFlags::default(),
        kind: 99,
        src,
        dst,
        via: None,
    };
    wire::Message::Routed(Routed {
        header,
        payload: b"x",
    })
    .to_vec()
    .unwrap()
}

/// A routed message with `payload`, as a datagram.
pub(super) fn routed(header: RoutedHeader, payload: &OverlayPayload<'_>) -> Vec<u8> {
    let mut p = vec![0u8; payload.encoded_len()];
    payload.emit(&mut p).unwrap();
    wire::Message::Routed(Routed {
        header,
        payload: &p,
    })
    .to_vec()
    .unwrap()
}

/// A CTM request from `src` to `dst` offering `transports`, as a datagram.
fn ctm_request(src: Address, dst: Address, token: u64, transports: &[TransportAddr]) -> Vec<u8> {
    let payload = OverlayPayload::CtmRequest(CtmRequest {
        token,
        roles: Roles::NEAR,
        reply_via: None,
        transports: TransportList::Slice(transports),
        relays: AddressList::EMPTY,
    });
    let header = RoutedHeader {
        ttl: 64,
        hops: 1,
        mode: Mode::Exact,
        flags: RoutedFlags::default(),
        kind: kind::CTM_REQUEST,
        src,
        dst,
        via: None,
    };
    routed(header, &payload)
}

#[test]
fn a_flood_of_forged_ctm_requests_makes_a_node_send_only_a_bounded_amount() {
    let now = Instant::now();
    let config = Config {
        max_link_attempts: 16,
        ..Config::default()
    };
    let (per_source, sources) = (config.ctm_per_source, config.ctm_sources);
    let mut a = raw(1, udp("198.18.0.1:4000"), config, now);
    a.join(now, &[]);
    let me = a.address();
    // Each request claims another requester, reachable at 8 addresses nobody uses.
    let bogus: Vec<TransportAddr> = (0..8).map(|i| udp(&format!("192.0.2.{i}:4000"))).collect();
    let from = udp("198.18.0.9:4000");
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(3);
    for token in 0..1000 {
        let src = Address::random(&mut rng);
        a.handle_datagram(now, from, &mut ctm_request(src, me, token, &bogus));
    }
    a.handle_timeout(now);
    let stats = a.stats();
    assert_eq!(stats.ctm_refused, 1000 - sources as u64);
    assert_eq!(a.attempts.len(), 16);
    assert_eq!(stats.link_attempts_refused, sources as u64 - 16);
    let out = sent(&mut a).len();
    assert!(out <= 16 * bogus.len(), "{out} datagrams");
    // One requester repeating itself is answered `ctm_per_source` times a second.
    let later = now + Duration::from_secs(1);
    let src = Address::random(&mut rng);
    for token in 0..20 {
        a.handle_datagram(later, from, &mut ctm_request(src, me, token, &bogus));
    }
    let refused = a.stats().ctm_refused - stats.ctm_refused;
    assert_eq!(refused, 20 - u64::from(per_source));
}
