//! The DHT under churn and loss, at scale: 2 000 nodes, 5 000 keys
//! created with TTLs, then 30 % of the nodes crash over time while 1 % of messages are
//! lost. Every key whose TTL has not expired must still be returned; expired keys must be
//! gone; a second create of a live key fails; a delete with a wrong password fails and
//! the value stays; racing creators never both win. And records follow joins: new nodes
//! next to a key take it over from the nodes that held it.

use std::time::Duration;

use ipop_core::Address;
use ipop_core::dht::{self, Outcome};
use ipop_core::sim::{DhtResult, Network, Scenario, Sim};

#[test]
fn every_live_key_survives_thirty_percent_crashes_with_one_percent_loss() {
    let report = Scenario {
        nodes: 2000,
        seed: 1,
        dht_keys: 5000,
        crash: 0.3,
        network: Network {
            loss: 0.01,
            ..Network::default()
        },
        routes: 1000,
        ..Scenario::default()
    }
    .run(&mut |_, _| {});
    let dht = report.dht.as_ref().expect("DHT checks ran");
    assert_eq!(report.crashed, 600);
    assert_eq!(dht.create_failures, 0, "{dht:#?}");
    assert_eq!(
        dht.live + dht.expired,
        5000,
        "every key is either live or expired: {dht:#?}"
    );
    assert!(dht.expired > 0 && dht.live > 0, "{dht:#?}");
    assert_eq!(dht.found, dht.live, "live keys lost: {dht:#?}");
    assert_eq!(
        dht.expired_gone, dht.expired,
        "expired keys still returned: {dht:#?}"
    );
    assert_eq!(dht.second_creates.1, dht.second_creates.0, "{dht:#?}");
    assert_eq!(
        dht.wrong_password_deletes.1, dht.wrong_password_deletes.0,
        "{dht:#?}"
    );
    assert!(dht.second_creates.0 >= 100);
    assert_eq!(dht.duplicate_winners, 0, "{dht:#?}");
    assert_eq!(dht.no_winner, 0, "{dht:#?}");
    assert!(dht.races >= 50);
    // Copies between replicas, and hand-offs as the ring repairs, all pass the checks
    // on who may send them.
    assert_eq!(report.dht_refused_replicas, 0, "{report:#?}");
}

/// `a` moved one step clockwise (`up`) or counter-clockwise on the ring.
fn step(a: Address, up: bool) -> Address {
    let mut b = *a.as_bytes();
    for byte in b.iter_mut().rev() {
        let (v, carry) = if up {
            byte.overflowing_add(1)
        } else {
            byte.overflowing_sub(1)
        };
        *byte = v;
        if !carry {
            break;
        }
    }
    Address::from_bytes(b)
}

/// Waits for node `i`'s DHT result `id`.
fn result_of(sim: &mut Sim, i: usize, id: dht::RequestId) -> DhtResult {
    for _ in 0..300 {
        sim.run_for(Duration::from_millis(100));
        if let Some(r) = sim
            .take_dht_results()
            .into_iter()
            .find(|r| r.node == i && r.id == id)
        {
            return r;
        }
    }
    panic!("operation {id:?} of node {i} never finished");
}

#[test]
fn records_move_to_nodes_that_join_next_to_them() {
    let mut sim = Sim::new(
        11,
        Network::default(),
        ipop_core::overlay::Config::default(),
    );
    for _ in 0..40 {
        sim.add_node();
    }
    let boot: Vec<_> = (0..3).map(|i| sim.node(i).transport).collect();
    for i in 0..40 {
        sim.run_until(sim.at(Duration::from_millis(20 * i as u64)));
        sim.start(i, &boot);
    }
    sim.run_for(Duration::from_secs(10));
    let hour = Duration::from_secs(3600);
    let keys: Vec<Vec<u8>> = (0..6).map(|k| format!("join-{k}").into_bytes()).collect();
    for (k, key) in keys.iter().enumerate() {
        let id = sim
            .act_dht(k, |d, n, t| d.create(t, n, key, b"pw", key, hour))
            .unwrap();
        assert_eq!(result_of(&mut sim, k, id).result, Ok(Outcome::Created));
    }
    // New nodes join right next to sub-keys: just left of sub-key 0 of every key, just
    // right of sub-key 1, and on both sides of sub-key 2 (so that neither old holder
    // stays adjacent).
    let mut joined = Vec::new();
    for key in &keys {
        let [s0, s1, s2] = [0, 1, 2].map(|i| dht::sub_key(key, i));
        for (at, sub) in [
            (step(s0, false), s0),
            (step(s1, true), s1),
            (step(s2, false), s2),
            (step(s2, true), s2),
        ] {
            joined.push((sim.add_node_with_address(at), sub));
        }
    }
    for &(i, _) in &joined {
        sim.start(i, &boot);
        sim.run_for(Duration::from_millis(50));
    }
    sim.run_for(Duration::from_secs(20));
    for &(i, _) in &joined {
        assert!(sim.node(i).stack.node.is_correctly_connected(), "node {i}");
    }
    for &(i, sub) in &joined {
        assert!(
            sim.holders_of(sub).contains(&i),
            "node {i} did not get {sub}"
        );
    }
    for key in &keys {
        for s in 0..dht::Config::default().sub_keys as u8 {
            let sub = dht::sub_key(key, s);
            let (l, r) = sim.replicas_of(sub).unwrap();
            assert_eq!(sim.holders_of(sub), [l.min(r), l.max(r)], "sub-key {s}");
        }
        let id = sim.act_dht(7, |d, n, t| d.get(t, n, key)).unwrap();
        let got = result_of(&mut sim, 7, id).result;
        assert_eq!(got, Ok(Outcome::Values(vec![key.clone()])));
    }
}
