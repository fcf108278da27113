//! DHT behaviour on a small simulated overlay.

use std::time::Duration;

use super::*;
use crate::sim::{Network, Sim};

/// A settled overlay of `n` nodes.
fn overlay(n: usize, seed: u64, loss: f64) -> Sim {
    let net = Network {
        loss,
        ..Network::default()
    };
    let mut sim = Sim::new(seed, net, crate::overlay::Config::default());
    for _ in 0..n {
        sim.add_node();
    }
    let boot: Vec<_> = (0..3.min(n)).map(|i| sim.node(i).transport).collect();
    for i in 0..n {
        sim.run_until(sim.at(Duration::from_millis(20 * i as u64)));
        sim.start(i, &boot);
    }
    sim.run_for(Duration::from_secs(10));
    sim
}

/// Runs an operation on node `i` to completion and returns its result.
fn run(
    sim: &mut Sim,
    i: usize,
    f: impl FnOnce(&mut Dht, &mut Node, Instant) -> Result<RequestId, DhtError>,
) -> Result<Outcome, DhtError> {
    let id = sim.act_dht(i, f)?;
    for _ in 0..200 {
        sim.run_for(Duration::from_millis(100));
        if let Some(r) = sim
            .take_dht_results()
            .into_iter()
            .find(|r| r.node == i && r.id == id)
        {
            return r.result;
        }
    }
    panic!("operation {id:?} never finished");
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn create_get_delete_recreate() {
    let mut sim = overlay(30, 1, 0.0);
    let put = |d: &mut Dht, n: &mut Node, t| d.create(t, n, b"10.0.0.7", b"pw", b"node-a", HOUR);
    assert_eq!(run(&mut sim, 3, put), Ok(Outcome::Created));
    let get = |d: &mut Dht, n: &mut Node, t| d.get(t, n, b"10.0.0.7");
    assert_eq!(
        run(&mut sim, 17, get),
        Ok(Outcome::Values(vec![b"node-a".to_vec()]))
    );
    // A second create of a live key fails, from any node.
    let again = |d: &mut Dht, n: &mut Node, t| d.create(t, n, b"10.0.0.7", b"x", b"node-b", HOUR);
    assert_eq!(run(&mut sim, 9, again), Err(DhtError::KeyExists));
    // Delete with a wrong password fails and the value stays.
    let bad = |d: &mut Dht, n: &mut Node, t| d.delete(t, n, b"10.0.0.7", b"guess");
    assert_eq!(run(&mut sim, 9, bad), Err(DhtError::BadPassword));
    assert_eq!(
        run(&mut sim, 21, get),
        Ok(Outcome::Values(vec![b"node-a".to_vec()]))
    );
    // Recreate replaces value and password.
    let re = |d: &mut Dht, n: &mut Node, t| {
        d.recreate(t, n, b"10.0.0.7", b"pw", b"pw2", b"node-c", HOUR)
    };
    assert_eq!(run(&mut sim, 3, re), Ok(Outcome::Recreated));
    assert_eq!(
        run(&mut sim, 4, get),
        Ok(Outcome::Values(vec![b"node-c".to_vec()]))
    );
    let del_old = |d: &mut Dht, n: &mut Node, t| d.delete(t, n, b"10.0.0.7", b"pw");
    assert_eq!(run(&mut sim, 3, del_old), Err(DhtError::BadPassword));
    let del = |d: &mut Dht, n: &mut Node, t| d.delete(t, n, b"10.0.0.7", b"pw2");
    assert_eq!(run(&mut sim, 3, del), Ok(Outcome::Deleted));
    assert_eq!(run(&mut sim, 25, get), Ok(Outcome::Values(vec![])));
    assert_eq!(run(&mut sim, 25, del), Err(DhtError::NotFound));
    // The key is free again.
    assert_eq!(run(&mut sim, 11, put), Ok(Outcome::Created));
}

#[test]
fn values_vanish_at_their_ttl() {
    let mut sim = overlay(20, 2, 0.0);
    let put = |d: &mut Dht, n: &mut Node, t| {
        d.create(t, n, b"lease", b"pw", b"v", Duration::from_secs(20))
    };
    assert_eq!(run(&mut sim, 5, put), Ok(Outcome::Created));
    let get = |d: &mut Dht, n: &mut Node, t| d.get(t, n, b"lease");
    assert_eq!(
        run(&mut sim, 6, get),
        Ok(Outcome::Values(vec![b"v".to_vec()]))
    );
    sim.run_for(Duration::from_secs(25));
    assert_eq!(run(&mut sim, 7, get), Ok(Outcome::Values(vec![])));
    let total: usize = sim
        .nodes()
        .iter()
        .map(|n| n.stack.dht.stored_records())
        .sum();
    assert_eq!(total, 0, "expired records are purged everywhere");
}

#[test]
fn records_live_on_two_replicas_per_sub_key() {
    let mut sim = overlay(40, 3, 0.0);
    let put = |d: &mut Dht, n: &mut Node, t| d.create(t, n, b"k", b"pw", b"v", HOUR);
    assert_eq!(run(&mut sim, 1, put), Ok(Outcome::Created));
    sim.run_for(Duration::from_secs(2));
    let total: usize = sim
        .nodes()
        .iter()
        .map(|n| n.stack.dht.stored_records())
        .sum();
    assert_eq!(total, 2 * Config::default().sub_keys);
}

#[test]
fn concurrent_creates_have_exactly_one_winner() {
    let mut sim = overlay(50, 4, 0.0);
    for round in 0..20u8 {
        let key = [b'c', round];
        let creators = [3usize, 19, 28, 41, 47];
        let ids: Vec<_> = creators
            .iter()
            .map(|&i| {
                (
                    i,
                    sim.act_dht(i, |d, n, t| d.create(t, n, &key, &[i as u8], b"v", HOUR))
                        .unwrap(),
                )
            })
            .collect();
        sim.run_for(Duration::from_secs(15));
        let results = sim.take_dht_results();
        let winners = ids
            .iter()
            .filter(|(i, id)| {
                results
                    .iter()
                    .any(|r| r.node == *i && r.id == *id && r.result == Ok(Outcome::Created))
            })
            .count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
    }
}

#[test]
fn operations_wait_until_the_node_is_correctly_connected() {
    let mut sim = overlay(20, 5, 0.0);
    let late = sim.add_node();
    let boot = [sim.node(0).transport];
    sim.start(late, &boot);
    assert!(!sim.node(late).stack.node.is_correctly_connected());
    let put = |d: &mut Dht, n: &mut Node, t| d.create(t, n, b"early", b"pw", b"v", HOUR);
    assert_eq!(run(&mut sim, late, put), Ok(Outcome::Created));
}

#[test]
fn oversized_inputs_are_refused_with_a_clear_error() {
    let mut sim = overlay(3, 6, 0.0);
    let long_key = vec![0u8; wire::MAX_KEY + 1];
    let long_value = vec![0u8; wire::MAX_VALUE + 1];
    let r = sim.act_dht(1, |d, n, t| d.create(t, n, &long_key, b"p", b"v", HOUR));
    assert_eq!(r, Err(DhtError::KeyTooLong));
    let r = sim.act_dht(1, |d, n, t| d.create(t, n, b"k", b"p", &long_value, HOUR));
    assert_eq!(r, Err(DhtError::ValueTooLong));
    assert!(DhtError::ValueTooLong.to_string().contains("1024"));
}

#[test]
fn operations_survive_message_loss() {
    let mut sim = overlay(40, 7, 0.05);
    for k in 0..10u8 {
        let put = |d: &mut Dht, n: &mut Node, t| d.create(t, n, &[k], b"pw", &[k, k], HOUR);
        assert_eq!(
            run(&mut sim, usize::from(k) + 1, put),
            Ok(Outcome::Created),
            "key {k}"
        );
    }
    for k in 0..10u8 {
        let get = |d: &mut Dht, n: &mut Node, t| d.get(t, n, &[k]);
        assert_eq!(
            run(&mut sim, 30, get),
            Ok(Outcome::Values(vec![vec![k, k]])),
            "key {k}"
        );
    }
}
