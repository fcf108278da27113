//! Regression tests for datagrams crafted by an attacker: each one crashed, flooded,
//! bloated or hijacked a node before the fix it is named after.

use std::time::Duration;

use rand::SeedableRng;

use super::connection::Connection;
use super::tests::{app_datagram, routed, sent as drain, udp};
use super::*;
use crate::wire::{
    Broadcast, CtmRequest, LinkRequest, LinkResponse, LinkStatus, Mode, OverlayPayload, Roles,
    RoutedFlags, TransportList, kind,
};

/// A node outside any simulator, listening on `t`, started as a lone overlay.
fn raw(id: u8, t: TransportAddr, now: Instant) -> Node {
    let mut n = super::tests::raw(id, t, Config::default(), now);
    n.join(now, &[]);
    n
}

fn link_request(src: Address, dst: Option<Address>, token: u64, cookie: Option<u64>) -> Vec<u8> {
    Message::LinkRequest(LinkRequest {
        token,
        overlay: Config::default().overlay_id,
        src,
        dst,
        roles: Roles::NEAR,
        your_addr: None,
        transports: TransportList::EMPTY,
        cookie,
    })
    .to_vec()
    .unwrap()
}

/// A tunnel from `src` through `via` to `dst`, delivered locally (PAIR_COPY).
fn tunnel(src: Address, via: Address, dst: Address, inner: &[u8]) -> Vec<u8> {
    let header = RoutedHeader {
        ttl: 64,
        hops: 1,
        mode: Mode::Exact,
        flags: RoutedFlags::PAIR_COPY,
        kind: kind::TUNNEL,
        src,
        dst,
        via: Some(via),
    };
    routed(header, &OverlayPayload::Tunnel(inner))
}

#[test]
fn a_tunnel_naming_its_sender_as_relay_installs_no_connection_and_cannot_crash() {
    let now = Instant::now();
    let mut a = raw(1, udp("198.18.0.1:4000"), now);
    let me = a.address();
    let from = udp("198.18.0.66:4000");
    let (p, q) = (
        Address::from_bytes([0x50; 20]),
        Address::from_bytes([0x51; 20]),
    );
    // P "relayed via P" (the old code stored it, then recursed forever when P timed
    // out), and P relayed via Q, which is no connection of A's at all.
    for via in [p, q] {
        let inner = link_request(p, Some(me), 9, None);
        a.handle_datagram(now, from, &mut tunnel(p, via, me, &inner));
    }
    assert_eq!(a.connections().count(), 0);
    assert_eq!(a.stats().refused_relay, 2);
    a.handle_timeout(now + Duration::from_secs(60));
    assert!(a.is_running());
}

#[test]
fn dropping_connections_relayed_through_each_other_terminates() {
    let now = Instant::now();
    let mut a = raw(1, udp("198.18.0.1:4000"), now);
    let (p, q) = (
        Address::from_bytes([0x50; 20]),
        Address::from_bytes([0x51; 20]),
    );
    // A cycle no handshake can build any more; dropping must not recurse through it.
    a.table
        .insert(Connection::new(p, Edge::Relay { via: q }, 1, now));
    a.table
        .insert(Connection::new(q, Edge::Relay { via: p }, 2, now));
    a.drop_connection(now, p, DisconnectReason::Timeout);
    assert_eq!(a.connections().count(), 0);
}

#[test]
fn a_link_request_from_a_spoofed_source_neither_creates_nor_moves_a_connection() {
    let now = Instant::now();
    let (ta, tb, spoofed) = (
        udp("198.18.0.1:4000"),
        udp("198.18.0.2:4000"),
        udp("198.18.0.66:4000"),
    );
    let mut a = raw(1, ta, now);
    let b = Address::from_bytes([2; 20]);
    a.table.insert(Connection::new(b, Edge::Direct(tb), 5, now));
    // Claiming B with a new token from elsewhere: answered with a cookie, not moved.
    a.handle_datagram(now, spoofed, &mut link_request(b, None, 6, None));
    let edges: Vec<Edge> = a.connections().map(|c| c.edge).collect();
    assert_eq!(edges, [Edge::Direct(tb)]);
    // Claiming the address right after A's (its ring neighbour to be): no connection.
    let mut next = *a.address().as_bytes();
    next[19] += 1;
    let neighbour = Address::from_bytes(next);
    a.handle_datagram(now, spoofed, &mut link_request(neighbour, None, 7, None));
    a.handle_datagram(
        now,
        spoofed,
        &mut link_request(neighbour, None, 7, Some(42)),
    );
    assert_eq!(a.connections().count(), 1);
    let answers: Vec<LinkStatus> = drain(&mut a)
        .iter()
        .filter_map(|(_, d)| match wire::parse(d) {
            Ok(Message::LinkResponse(r)) => Some(r.status),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert!(answers.iter().all(|s| matches!(s, LinkStatus::Cookie(_))));
    assert_eq!((a.stats().cookies_sent, a.stats().bad_cookie), (3, 1));
    // Whoever does receive at its claimed transport gets the connection (the address
    // itself is bound to a key only by the identity layer).
    let LinkStatus::Cookie(cookie) = answers[1] else {
        unreachable!()
    };
    a.handle_datagram(
        now,
        spoofed,
        &mut link_request(neighbour, None, 7, Some(cookie)),
    );
    assert!(a.connections().any(|c| c.peer == neighbour));
}

#[test]
fn repeated_ctms_for_one_requester_do_not_grow_its_link_attempt() {
    let now = Instant::now();
    let mut a = raw(1, udp("198.18.0.1:4000"), now);
    let me = a.address();
    let requester = Address::from_bytes([0x77; 20]);
    let from = udp("198.18.0.66:4000");
    let mut sends = 0;
    for round in 0..40u64 {
        let t = now + Duration::from_secs(round / 4);
        // 8 new victims per request.
        let victims: Vec<TransportAddr> = (0..8)
            .map(|i| udp(&format!("192.0.2.{}:{}", i, 1000 + round)))
            .collect();
        let req = OverlayPayload::CtmRequest(CtmRequest {
            token: round,
            roles: Roles::NEAR,
            reply_via: None,
            transports: TransportList::Slice(&victims),
            relays: wire::AddressList::EMPTY,
        });
        let header = RoutedHeader {
            ttl: 64,
            hops: 1,
            mode: Mode::Exact,
            flags: RoutedFlags::default(),
            kind: kind::CTM_REQUEST,
            src: requester,
            dst: me,
            via: None,
        };
        a.handle_datagram(t, from, &mut routed(header, &req));
        a.handle_timeout(t);
        sends = sends.max(drain(&mut a).len());
    }
    let a_cands = a.attempts.iter().map(|x| x.candidates.len()).max();
    assert!(a_cands <= Some(link::MAX_CANDIDATES), "{a_cands:?}");
    // The old code sent about 8k link requests for the k-th CTM.
    assert!(
        sends <= link::MAX_CANDIDATES + 1,
        "{sends} datagrams in one round"
    );
}

#[test]
fn a_forged_broadcast_claiming_the_whole_ring_reaches_nobody() {
    let (mut sim, nodes) = super::tests::settled(21, 16, Duration::from_secs(30));
    let x = nodes[5];
    let target = sim.node(x).stack.node.address();
    let forge = |src: Address, end: Address, kind: u8| {
        let header = RoutedHeader {
            ttl: 64,
            hops: 1,
            mode: Mode::Exact,
            flags: RoutedFlags::default(),
            kind: wire::kind::BROADCAST,
            src,
            dst: target,
            via: None,
        };
        let b = OverlayPayload::Broadcast(Broadcast {
            kind,
            origin: src,
            end,
            payload: b"flood",
        });
        routed(header, &b)
    };
    let stranger = Address::from_bytes([0x42; 20]);
    let from = udp("198.18.0.66:4000");
    sim.take_deliveries();
    // From an unconnected transport, with the receiver as the arc's end (the whole
    // ring), and a reserved kind from a real peer's address.
    let peer = sim.node(nodes[6]).stack.node.address();
    for (src, end, k) in [(stranger, target, 99), (peer, target, 99), (peer, peer, 1)] {
        sim.act(x, |n, now| {
            n.handle_datagram(now, from, &mut forge(src, end, k))
        });
    }
    sim.run_for(Duration::from_secs(2));
    let got = sim.take_deliveries().len();
    assert_eq!(
        got, 0,
        "the old code delivered one datagram to all 16 nodes"
    );
    assert_eq!(sim.node(x).stack.node.stats().broadcast_refused, 3);
    // A member's own broadcast still reaches every other node once.
    sim.act(nodes[3], |n, _| n.broadcast(99, b"hello"));
    sim.run_for(Duration::from_secs(2));
    let mut got: Vec<usize> = sim
        .take_deliveries()
        .into_iter()
        .filter(|(_, h, p)| h.kind == 99 && p == b"hello")
        .map(|(n, _, _)| n)
        .collect();
    got.sort_unstable();
    let others: Vec<usize> = nodes.iter().copied().filter(|&n| n != nodes[3]).collect();
    assert_eq!(got, others);
}

#[test]
fn a_hop_limit_above_the_overlays_is_capped_when_forwarded() {
    let (mut sim, nodes) = super::tests::settled(22, 3, Duration::from_secs(5));
    let (a, b, c) = (nodes[0], nodes[1], nodes[2]);
    let from = sim.node(b).transport;
    let (src, dst) = (
        sim.node(b).stack.node.address(),
        sim.node(c).stack.node.address(),
    );
    let mut d = app_datagram(src, dst, 255, 0);
    let handled = sim.act(a, |n, now| n.handle_datagram(now, from, &mut d));
    assert!(matches!(handled, Handled::Forward(_)), "{handled:?}");
    assert_eq!(d[wire::ROUTED_TTL_OFFSET], Config::default().ttl);
    assert_eq!(sim.node(a).stack.node.stats().ttl_capped, 1);
}

#[test]
fn forged_sources_cannot_grow_the_unreachable_notice_list() {
    let now = Instant::now();
    let mut a = raw(1, udp("198.18.0.1:4000"), now);
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(4);
    let from = udp("198.18.0.66:4000");
    for _ in 0..10_000 {
        let (src, dst) = (Address::random(&mut rng), Address::random(&mut rng));
        a.handle_datagram(now, from, &mut app_datagram(src, dst, 64, 1));
    }
    assert!(a.notices.len() <= 64, "{} notices", a.notices.len());
}

#[test]
fn forged_observed_addresses_never_push_local_ones_out_of_the_advertised_list() {
    let now = Instant::now();
    let local = udp("198.18.0.1:4000");
    let mut a = raw(1, local, now);
    let peer = Address::from_bytes([2; 20]);
    let tb = udp("198.18.0.2:4000");
    for i in 0..20u16 {
        a.start_link(now, Some(peer), [Edge::Direct(tb)], Roles::NEAR);
        let token = a.attempts[0].token;
        let mut resp = Message::LinkResponse(LinkResponse {
            token,
            status: LinkStatus::Ok,
            src: peer,
            observed: Some(udp(&format!("203.0.113.{i}:5000"))),
            roles: Roles::NONE,
        })
        .to_vec()
        .unwrap();
        a.handle_datagram(now, tb, &mut resp);
        a.drop_connection(now, peer, DisconnectReason::Timeout);
    }
    let advertised = a.advertised_transports();
    assert!(advertised.contains(&local), "{advertised:?}");
    assert!(advertised.len() <= wire::MAX_TRANSPORTS);
}

#[test]
fn a_cookie_from_another_address_of_the_responder_is_answered_there() {
    let now = Instant::now();
    let (ta, tb, tb_other) = (
        udp("198.18.0.1:4000"),
        udp("198.18.0.2:4000"),
        udp("198.18.1.2:4000"),
    );
    let mut a = raw(1, ta, now);
    let b = Address::from_bytes([2; 20]);
    a.start_link(now, Some(b), [Edge::Direct(tb)], Roles::NEAR);
    a.handle_timeout(now);
    drain(&mut a);
    let token = a.attempts[0].token;
    // B answers from its other address.
    let answer = |status| {
        Message::LinkResponse(LinkResponse {
            token,
            status,
            src: b,
            observed: Some(ta),
            roles: Roles::NONE,
        })
        .to_vec()
        .unwrap()
    };
    a.handle_datagram(now, tb_other, &mut answer(LinkStatus::Cookie(5)));
    let again: Vec<TransportAddr> = drain(&mut a).into_iter().map(|(t, _)| t).collect();
    assert_eq!(again, [tb_other]);
    a.handle_datagram(now, tb_other, &mut answer(LinkStatus::Ok));
    let edges: Vec<(Address, Edge)> = a.connections().map(|c| (c.peer, c.edge)).collect();
    assert_eq!(edges, [(b, Edge::Direct(tb_other))]);
}

#[test]
fn a_secure_edge_refuses_link_messages_claiming_another_address() {
    let now = Instant::now();
    let mut a = raw(1, udp("198.18.0.1:4000"), now);
    let me = a.address();
    let from = udp("198.18.0.66:4000");
    let (holder, victim) = (
        Address::from_bytes([0x50; 20]),
        Address::from_bytes([0x51; 20]),
    );
    // The edge authenticated `holder`; its request claims to come from `victim`.
    let mut forged = link_request(victim, Some(me), 7, None);
    a.handle_authenticated_datagram(now, from, holder, &mut forged);
    assert_eq!(a.stats().impersonation, 1);
    assert!(drain(&mut a).is_empty(), "no answer to an impersonation");
    assert_eq!(a.connections().count(), 0);
    // The same request under its own name links at once: the secure edge's handshake
    // proved the transport, so no cookie round trip.
    let mut honest = link_request(holder, Some(me), 8, None);
    a.handle_authenticated_datagram(now, from, holder, &mut honest);
    assert_eq!(a.stats().impersonation, 1);
    assert_eq!(a.stats().cookies_sent, 0);
    assert!(!drain(&mut a).is_empty(), "the honest request is answered");
    assert_eq!(a.connections().count(), 1);
}
