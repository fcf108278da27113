//! Behaviour of small overlays, driven by the simulator.

use std::time::Duration;

use super::*;
use crate::sim::{Network, Scenario, Sim};
use crate::wire::{LinkStatus, Roles};

fn small(nodes: usize, seed: u64) -> Scenario {
    Scenario {
        nodes,
        seed,
        routes: 500,
        settle: Duration::from_secs(60),
        ..Scenario::default()
    }
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
fn link_requests_are_refused_for_wrong_overlay_and_self() {
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
    let edge = |sim: &Sim| {
        sim.node(a)
            .stack
            .node
            .connections()
            .find(|x| x.peer == addr_b)
            .map(|x| x.edge)
    };
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
