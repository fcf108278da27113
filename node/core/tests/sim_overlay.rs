//! Simulation tests of the overlay at scale: formation, routing, crash repair, churn
//! under loss, graceful leave, and determinism. Each asserts what a user of the overlay
//! would notice; failures print the nodes whose view of the ring is wrong.

use std::time::Duration;

use ipop_core::sim::{NatMix, Network, Report, Scenario, Sim, describe_ring_errors};

fn scenario(nodes: usize, seed: u64) -> Scenario {
    Scenario {
        nodes,
        seed,
        ..Scenario::default()
    }
}

fn assert_healthy(report: &Report, phase: &ipop_core::sim::Phase) {
    assert_eq!(phase.correctly_connected, phase.live_nodes, "{report:#?}");
    assert!(phase.ring_consistent, "{report:#?}");
}

#[test]
fn thousand_nodes_form_a_consistent_ring_and_deliver_every_route() {
    let report = scenario(1000, 1).run(&mut |_, _| {});
    let p = &report.after_join;
    assert_eq!(p.live_nodes, 1000);
    assert_healthy(&report, p);
    assert_eq!(p.routes_tried, 10_000);
    assert_eq!(p.routes_delivered, 10_000, "{report:#?}");
    // Greedy routing over near and Kleinberg far links: O(log^2 n / k) hops, well under
    // the hop limit (the benchmark reports the exact figures).
    assert!(p.hops_max < 32, "{report:#?}");
    // Each hop costs a random link's latency, so a route takes about `hops` times as
    // long as the direct link would.
    assert!(
        (1.0..2.0 * p.hops_mean).contains(&p.stretch_mean),
        "stretch {}: {report:#?}",
        p.stretch_mean
    );
    assert_eq!(report.joined, 1000);
    // k = ceil(0.5 log2 N) = 5 structured far connections per node. Each node counts
    // from its own estimate of N, which straddles 1024 (k = 6 above it), and a target
    // that falls on a near neighbour is not counted as far.
    let k = (0.5 * 1000f64.log2()).ceil();
    assert!(
        (k - 0.5..=k + 1.0).contains(&p.far_mean),
        "far connections per node {} (k = {k}): {report:#?}",
        p.far_mean
    );
    // The limits on CTMs and link attempts leave a healthy join alone.
    assert_eq!(report.ctm_refused, 0, "{report:#?}");
    assert_eq!(report.link_attempts_refused, 0, "{report:#?}");
}

#[test]
fn ring_reforms_and_routing_recovers_after_a_fifth_of_the_nodes_crash() {
    let report = Scenario {
        crash: 0.2,
        ..scenario(1000, 2)
    }
    .run(&mut |_, _| {});
    assert_eq!(report.crashed, 200);
    let after = report.after_churn.as_ref().expect("churn ran");
    assert_eq!(after.live_nodes, 800);
    assert_healthy(&report, after);
    assert_eq!(after.routes_tried, 10_000);
    assert_eq!(after.routes_delivered, after.routes_tried, "{report:#?}");
}

#[test]
fn churn_with_loss_settles_into_a_consistent_ring() {
    let report = Scenario {
        crash: 0.1,
        leave: 0.1,
        join: 0.1,
        network: Network {
            loss: 0.01,
            jitter: Duration::from_millis(5),
            ..Network::default()
        },
        routes: 2000,
        ..scenario(600, 3)
    }
    .run(&mut |_, _| {});
    let after = report.after_churn.as_ref().expect("churn ran");
    assert_eq!(after.live_nodes, 600 - 60 - 60 + 60);
    assert_healthy(&report, after);
    // Each overlay hop loses 1 %; routes of ~4.5 hops lose about 4.5 %.
    let delivered = after.routes_delivered as f64 / after.routes_tried as f64;
    assert!(delivered > 0.9, "{report:#?}");
}

#[test]
fn graceful_leaves_are_repaired_before_any_timeout() {
    let sc = scenario(300, 4);
    let mut sim = Sim::new(sc.seed, sc.network, sc.config.clone());
    for _ in 0..sc.nodes {
        sim.add_node();
    }
    let boot: Vec<_> = (0..4).map(|i| sim.node(i).transport).collect();
    for i in 0..sc.nodes {
        sim.run_until(sim.at(Duration::from_secs_f64(i as f64 / 100.0)));
        sim.start(i, &boot);
    }
    sim.run_for(Duration::from_secs(10));
    let before = describe_ring_errors(&sim, 5);
    assert!(before.is_empty(), "{before}");
    for i in (10..300).step_by(10) {
        sim.leave(i);
    }
    // Far less than the edge timeout: neighbours learn from the Close messages.
    sim.run_for(sc.config.edge_timeout / 3);
    let errors = describe_ring_errors(&sim, 5);
    assert!(errors.is_empty(), "{errors}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let sc = Scenario {
        routes: 500,
        network: Network {
            loss: 0.01,
            jitter: Duration::from_millis(3),
            ..Network::default()
        },
        crash: 0.1,
        nat_mix: Some(NatMix::realistic()),
        ..scenario(200, 7)
    };
    assert_eq!(sc.run(&mut |_, _| {}), sc.run(&mut |_, _| {}));
}

#[test]
fn nodes_behind_a_realistic_nat_mix_form_the_ring_with_relays_where_punching_fails() {
    let report = Scenario {
        nat_mix: Some(NatMix::realistic()),
        crash: 0.1,
        routes: 2000,
        ..scenario(600, 4)
    }
    .run(&mut |_, _| {});
    for p in [&report.after_join, report.after_churn.as_ref().unwrap()] {
        assert_healthy(&report, p);
        assert_eq!(p.routes_delivered, p.routes_tried, "{report:#?}");
        // A node behind a symmetric NAT (15 %) reaches a port-restricted or symmetric
        // one (55 %) only through a relay: about one connection in ten.
        assert!(
            (0.02..0.3).contains(&p.relayed_fraction),
            "relayed {}: {report:#?}",
            p.relayed_fraction
        );
    }
    assert!(report.filtered > 0, "{report:#?}");
}

#[test]
fn a_flash_crowd_through_many_bootstrap_nodes_forms_one_ring() {
    // The join schedule `ipop-sim` uses for 20 000 nodes (20 bootstrap nodes, each
    // joiner given four of them at random; 2 000 joins a second), for 2 000 nodes.
    let mut sc = Scenario::scaled(20_000);
    assert_eq!((sc.join_rate, sc.bootstrap_nodes), (2000.0, 20));
    sc.nodes = 2000;
    sc.routes = 2000;
    let report = sc.run(&mut |_, _| {});
    assert_eq!(report.joined, 2000);
    assert_healthy(&report, &report.after_join);
    assert_eq!(report.after_join.routes_delivered, 2000, "{report:#?}");
}
