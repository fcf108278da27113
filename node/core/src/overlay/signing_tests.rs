//! End-to-end signatures of routed messages: overlays of signing nodes form and route,
//! and a forged, altered or cut signature, or an unsigned control message, is dropped.

use std::time::Duration;

use rand::SeedableRng;

use super::*;
use crate::dht::Outcome;
use crate::secure::Identity;
use crate::sim::{Network, Sim};
use crate::wire::{Mode, OverlayPayload, Probe, Routed, RoutedFlags, kind};

/// An overlay of `n` nodes that sign (seed `seed`), settled for `settle`.
fn signing_overlay(seed: u64, n: usize, settle: Duration) -> (Sim, Vec<usize>, Vec<Identity>) {
    let mut sim = Sim::new(seed, Network::default(), Config::default());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let ids: Vec<Identity> = (0..n).map(|_| Identity::generate(&mut rng)).collect();
    let nodes: Vec<usize> = ids
        .iter()
        .map(|id| {
            let i = sim.add_node_with_address(id.address());
            sim.act(i, |node, _| node.enable_signatures(id.clone()));
            i
        })
        .collect();
    let boot = [sim.node(nodes[0]).transport];
    for &i in &nodes {
        sim.start(i, &boot);
    }
    sim.run_for(settle);
    (sim, nodes, ids)
}

/// A routed datagram with `payload`, signed by `by` (whatever `header.src` says).
fn signed(by: &Identity, mut header: RoutedHeader, payload: &[u8]) -> Vec<u8> {
    let body = sign_payload(by, &mut header, payload, &mut Vec::new());
    Message::Routed(Routed {
        header,
        payload: &body,
    })
    .to_vec()
    .unwrap()
}

fn app_header(src: Address, dst: Address) -> RoutedHeader {
    RoutedHeader {
        ttl: 16,
        hops: 2,
        mode: Mode::Exact,
        flags: RoutedFlags::default(),
        kind: 99,
        src,
        dst,
        via: None,
    }
}

#[test]
fn signing_nodes_form_an_overlay_and_deliver_signed_messages() {
    let (mut sim, nodes, _) = signing_overlay(21, 16, Duration::from_secs(60));
    for &i in &nodes {
        assert!(sim.node(i).stack.node.is_correctly_connected(), "node {i}");
    }
    let (a, b) = (nodes[3], nodes[11]);
    let addr_b = sim.node(b).stack.node.address();
    sim.act(a, |n, now| {
        n.send_routed(now, addr_b, Mode::Exact, 99, b"hello")
    })
    .unwrap();
    sim.run_for(Duration::from_secs(1));
    let got: Vec<_> = sim
        .take_deliveries()
        .into_iter()
        .filter(|(n, h, _)| *n == b && h.kind == 99)
        .collect();
    assert_eq!(got.len(), 1);
    assert!(got[0].1.flags.contains(RoutedFlags::SIGNED));
    assert_eq!(got[0].2, b"hello", "the trailer is not part of the payload");
    for &i in &nodes {
        let s = sim.node(i).stack.node.stats();
        assert_eq!((s.bad_signature, s.unsigned), (0, 0), "node {i}: {s:?}");
    }
    // Bulk data goes without a signature, and arrives unverified.
    sim.act(a, |n, now| {
        n.send_routed_unsigned(now, addr_b, Mode::Exact, 99, b"bulk")
    })
    .unwrap();
    sim.run_for(Duration::from_secs(1));
    let got = sim.take_deliveries();
    let bulk = got
        .iter()
        .find(|(n, _, p)| *n == b && p == b"bulk")
        .unwrap();
    assert!(!bulk.1.flags.contains(RoutedFlags::SIGNED));
}

#[test]
fn a_forged_altered_or_cut_signature_and_an_unsigned_control_message_are_dropped() {
    let (mut sim, nodes, ids) = signing_overlay(22, 4, Duration::from_secs(10));
    let (a, b) = (nodes[0], nodes[1]);
    let (addr_a, addr_b, addr_c) = (ids[0].address(), ids[1].address(), ids[2].address());
    // Node a hears everything from b's transport: b may be the source or a forwarder.
    let from = sim.node(b).transport;
    let deliver = |sim: &mut Sim, mut datagram: Vec<u8>| {
        sim.act(a, |n, now| {
            match n.handle_datagram(now, from, &mut datagram) {
                Handled::Deliver(d) => Some((d.source_verified, datagram[d.payload].to_vec())),
                _ => None,
            }
        })
    };
    let stats = |sim: &Sim| sim.node(a).stack.node.stats();
    let before = stats(&sim);

    // b's genuine signature: delivered, verified, without the trailer.
    let genuine = signed(&ids[1], app_header(addr_b, addr_a), b"payload");
    assert_eq!(
        deliver(&mut sim, genuine.clone()),
        Some((true, b"payload".to_vec()))
    );
    // A forwarder may raise the hop count and set its flags: still genuine.
    let mut forwarded = genuine.clone();
    forwarded[wire::ROUTED_HOPS_OFFSET] += 3;
    forwarded[wire::ROUTED_FLAGS_OFFSET] |= RoutedFlags::VIA_DONE.bits();
    assert_eq!(deliver(&mut sim, forwarded).map(|d| d.0), Some(true));

    // b signs in c's name: refused.
    let forged = signed(&ids[1], app_header(addr_c, addr_a), b"payload");
    assert_eq!(deliver(&mut sim, forged), None);
    // b's message with its payload altered on the way: refused.
    let mut altered = genuine.clone();
    let at = altered.len() - wire::SIGNATURE_TRAILER - 1;
    altered[at] ^= 1;
    assert_eq!(deliver(&mut sim, altered), None);
    // A trailer cut short (the payload is shorter than a trailer): refused.
    let mut cut = genuine.clone();
    cut.truncate(cut.len() - wire::SIGNATURE_TRAILER + 2);
    assert_eq!(deliver(&mut sim, cut), None);
    assert_eq!(stats(&sim).bad_signature, before.bad_signature + 3);

    // An unsigned control message (an echo request in c's name, relayed by b): refused
    // by a node that signs. An unsigned application message is delivered, unverified.
    let probe = OverlayPayload::Probe(Probe {
        id: 7,
        echo_request: true,
        echo_reply: false,
        request_hops: 0,
    });
    let header = RoutedHeader {
        kind: kind::PROBE,
        ..app_header(addr_c, addr_a)
    };
    let unsigned_probe = super::tests::routed(header, &probe);
    assert_eq!(deliver(&mut sim, unsigned_probe), None);
    assert_eq!(stats(&sim).unsigned, before.unsigned + 1);
    let plain = Message::Routed(Routed {
        header: app_header(addr_c, addr_a),
        payload: b"plain",
    })
    .to_vec()
    .unwrap();
    assert_eq!(deliver(&mut sim, plain), Some((false, b"plain".to_vec())));
}

#[test]
fn the_dht_of_signing_nodes_works_alone_and_across_the_overlay() {
    // Alone: the node's requests to itself count as verified (they are not signed:
    // they never leave it).
    let (mut sim, nodes, _) = signing_overlay(23, 1, Duration::from_secs(1));
    let hour = Duration::from_secs(3600);
    let create = |key: &'static [u8]| {
        move |d: &mut crate::dht::Dht, n: &mut Node, t| d.create(t, n, key, b"pw", b"v", hour)
    };
    let run = |sim: &mut Sim, i: usize, key: &'static [u8]| {
        let id = sim.act_dht(i, create(key)).unwrap();
        for _ in 0..100 {
            sim.run_for(Duration::from_millis(100));
            if let Some(r) = sim.take_dht_results().into_iter().find(|r| r.id == id) {
                return r.result;
            }
        }
        panic!("never finished");
    };
    assert_eq!(run(&mut sim, nodes[0], b"alone"), Ok(Outcome::Created));
    // Across an overlay: requests and replies are signed and verified.
    let (mut sim, nodes, _) = signing_overlay(24, 12, Duration::from_secs(30));
    for (n, key) in [(2, b"k1" as &'static [u8]), (7, b"k2"), (11, b"k3")] {
        assert_eq!(run(&mut sim, nodes[n], key), Ok(Outcome::Created));
    }
    for &i in &nodes {
        assert_eq!(sim.node(i).stack.dht.unverified(), 0, "node {i}");
    }
}
