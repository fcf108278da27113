//! DHT behaviour on a small simulated overlay.

use std::time::Duration;

use super::*;
use crate::sim::{Network, Sim};

/// A settled overlay of `n` nodes.
fn overlay(n: usize, seed: u64, loss: f64) -> Sim {
    overlay_with(n, seed, loss, Config::default())
}

/// A settled overlay of `n` nodes whose DHT runs with `dht`.
fn overlay_with(n: usize, seed: u64, loss: f64, dht: Config) -> Sim {
    let net = Network {
        loss,
        ..Network::default()
    };
    let mut sim = Sim::new(seed, net, crate::overlay::Config::default());
    sim.set_dht_config(dht);
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

/// Asserts that each sub-key of `key` lives on exactly the two nodes adjacent to it.
fn assert_placed(sim: &Sim, key: &[u8], sub_keys: usize) {
    for i in (0..=u8::MAX).take(sub_keys) {
        let k = sub_key(key, i);
        let (left, right) = sim.replicas_of(k).expect("two live nodes");
        assert_eq!(
            sim.holders_of(k),
            [left.min(right), left.max(right)],
            "sub-key {i}"
        );
    }
}

#[test]
fn records_live_on_two_replicas_per_sub_key() {
    let mut sim = overlay(40, 3, 0.0);
    let put = |d: &mut Dht, n: &mut Node, t| d.create(t, n, b"k", b"pw", b"v", HOUR);
    assert_eq!(run(&mut sim, 1, put), Ok(Outcome::Created));
    sim.run_for(Duration::from_secs(2));
    assert_placed(&sim, b"k", Config::default().sub_keys);
    let total: usize = sim
        .nodes()
        .iter()
        .map(|n| n.stack.dht.stored_records())
        .sum();
    assert_eq!(total, 2 * Config::default().sub_keys);
}

#[test]
fn seven_sub_keys_with_a_majority_of_four_work_end_to_end() {
    let config = Config {
        sub_keys: 7,
        majority: 4,
        ..Config::default()
    };
    let mut sim = overlay_with(40, 9, 0.0, config);
    let put = |d: &mut Dht, n: &mut Node, t| d.create(t, n, b"seven", b"pw", b"v7", HOUR);
    assert_eq!(run(&mut sim, 2, put), Ok(Outcome::Created));
    sim.run_for(Duration::from_secs(2));
    assert_placed(&sim, b"seven", 7);
    let get = |d: &mut Dht, n: &mut Node, t| d.get(t, n, b"seven");
    assert_eq!(
        run(&mut sim, 30, get),
        Ok(Outcome::Values(vec![b"v7".to_vec()]))
    );
    let again = |d: &mut Dht, n: &mut Node, t| d.create(t, n, b"seven", b"x", b"other", HOUR);
    assert_eq!(run(&mut sim, 17, again), Err(DhtError::KeyExists));
    let bad = |d: &mut Dht, n: &mut Node, t| d.delete(t, n, b"seven", b"guess");
    assert_eq!(run(&mut sim, 17, bad), Err(DhtError::BadPassword));
    let del = |d: &mut Dht, n: &mut Node, t| d.delete(t, n, b"seven", b"pw");
    assert_eq!(run(&mut sim, 2, del), Ok(Outcome::Deleted));
    assert_eq!(run(&mut sim, 30, get), Ok(Outcome::Values(vec![])));
}

/// The header of a message from `src` routed exactly to `dst`.
fn exact(kind: u8, src: Address, dst: Address) -> RoutedHeader {
    RoutedHeader {
        ttl: 32,
        hops: 1,
        mode: Mode::Exact,
        flags: Default::default(),
        kind,
        src,
        dst,
        via: None,
    }
}

/// Hands `reply` to node `to`'s DHT as if `from` had sent it, its source verified.
fn deliver_reply(sim: &mut Sim, to: usize, from: Address, reply: &Reply<'_>) {
    let mut buf = [0u8; wire::MAX_MESSAGE];
    let n = reply.emit(&mut buf).unwrap();
    let header = exact(wire::REPLY, from, sim.node(to).stack.node.address());
    sim.act_dht(to, |d, node, t| {
        d.handle_delivery(t, node, &header, &buf[..n], true)
    });
}

/// A 12-node overlay (seeded with `seed`) where node 1 created `key` with the value
/// "real" (password "pw"), and node 7's read of it, sent but not yet answered: the
/// simulation, the reader, the read's id and its operation id on the wire.
fn read_under_way(seed: u64, key: &[u8]) -> (Sim, usize, RequestId, u64) {
    let mut sim = overlay_with(12, seed, 0.0, Config::default());
    sim.act_dht(1, |d, n, t| d.create(t, n, key, b"pw", b"real", HOUR))
        .unwrap();
    sim.run_for(Duration::from_secs(5));
    let reader = 7;
    let id = sim.act_dht(reader, |d, n, t| d.get(t, n, key)).unwrap();
    let op_id = sim.node(reader).stack.dht.ops[0].op_id;
    (sim, reader, id, op_id)
}

/// Runs 5 s and returns the result of node `i`'s operation `id`.
fn result_after(sim: &mut Sim, i: usize, id: RequestId) -> Result<Outcome, DhtError> {
    sim.run_for(Duration::from_secs(5));
    let results = sim.take_dht_results();
    results
        .iter()
        .find(|r| r.node == i && r.id == id)
        .map(|r| r.result.clone())
        .expect("the operation finished")
}

#[test]
#[should_panic(expected = "invalid dht::Config: sub_keys = 0")]
fn a_dht_refuses_an_invalid_config() {
    let config = Config {
        sub_keys: 0,
        majority: 0,
        ..Config::default()
    };
    let now = Instant::now();
    Dht::new(config, 1, now, WallClock::fixed(now));
}

#[test]
fn copies_are_taken_for_genuine_sub_keys_and_change_owners_only_from_ring_neighbours() {
    let mut sim = overlay(30, 8, 0.0);
    let k = sub_key(b"planted", 0);
    let (target, _) = sim.replicas_of(k).unwrap();
    let target_addr = sim.node(target).stack.node.address();
    let (left, right) = sim.node(target).stack.node.near_neighbors();
    let near: Vec<Address> = left.iter().chain(right).copied().collect();
    let neighbour = (0..30)
        .find(|&i| sim.node(i).stack.node.address() == near[0])
        .unwrap();
    let stranger = (0..30)
        .find(|&i| i != target && !near.contains(&sim.node(i).stack.node.address()))
        .unwrap();
    // Records made by owner 1, 2 or 3 (the password), written at `serial`.
    let owner = |o: u8| owner::OwnerKey::derive(b"planted", &[o]).public();
    let unix = sim.node(target).stack.dht.clock.unix_ms(sim.now());
    let send = |sim: &mut Sim, from: usize, key: &[u8], serial: u64, o: u8| {
        let rec = RecordRepr {
            sub_key: k,
            sub: 0,
            key,
            rev: 1,
            tombstone: false,
            creator: sim.node(from).stack.node.address(),
            cert: owner::create_cert(key, b"planted", &[o], unix + serial),
            ttl_left_ms: 60_000,
            value: b"planted",
        };
        let mut buf = [0u8; wire::MAX_MESSAGE];
        let n = rec.emit(&mut buf).unwrap();
        sim.act(from, |node, now| {
            node.send_routed(now, target_addr, Mode::Exact, wire::REPLICATE, &buf[..n])
        })
        .unwrap();
        sim.run_for(Duration::from_millis(500));
        let dht = &sim.node(target).stack.dht;
        let held = (1..=2).find(|&o| dht.store.get(&k).is_some_and(|r| r.same_owner(&owner(o))));
        (dht.refused_replicas(), held)
    };
    // Under a sub-key its key does not map to: refused, even from a neighbour.
    assert_eq!(send(&mut sim, neighbour, b"other key", 1, 1), (1, None));
    // A record this node does not hold yet, from elsewhere on the ring (a former holder
    // handing it over): taken.
    assert_eq!(send(&mut sim, stranger, b"planted", 1, 1), (1, Some(1)));
    // A later write by the same owner, from elsewhere: taken.
    assert_eq!(send(&mut sim, stranger, b"planted", 2, 1), (1, Some(1)));
    // Another owner for the live record, from elsewhere on the ring: refused.
    assert_eq!(send(&mut sim, stranger, b"planted", 3, 2), (2, Some(1)));
    // Another owner from a ring neighbour (the other replica, after a delete and a
    // create): taken.
    assert_eq!(send(&mut sim, neighbour, b"planted", 3, 2), (2, Some(2)));
    // The neighbour's address written into the header by someone else — with secure
    // edges the stack tells the DHT the source is not the edge it came over: refused.
    let rec = RecordRepr {
        sub_key: k,
        sub: 0,
        key: b"planted",
        rev: 9,
        tombstone: false,
        creator: near[0],
        cert: owner::create_cert(b"planted", b"planted", &[3], unix + 9),
        ttl_left_ms: 60_000,
        value: b"planted",
    };
    let mut buf = [0u8; wire::MAX_MESSAGE];
    let n = rec.emit(&mut buf).unwrap();
    let header = exact(wire::REPLICATE, near[0], target_addr);
    sim.act_dht(target, |d, node, t| {
        d.handle_delivery(t, node, &header, &buf[..n], false)
    });
    let dht = &sim.node(target).stack.dht;
    assert_eq!(dht.refused_replicas(), 3);
    assert!(dht.store.get(&k).unwrap().same_owner(&owner(2)));
    // The owner's record with another value (its certificate signs the old one), even
    // from the neighbour and later: refused.
    let cert = owner::create_cert(b"planted", b"planted", &[2], unix + 10);
    let altered = RecordRepr {
        value: b"altered",
        cert,
        ..rec
    };
    let n = altered.emit(&mut buf).unwrap();
    sim.act_dht(target, |d, node, t| {
        d.handle_delivery(t, node, &header, &buf[..n], true)
    });
    let dht = &sim.node(target).stack.dht;
    assert_eq!((dht.refused_replicas(), dht.forged()), (4, 1));
    assert_eq!(dht.store.get(&k).unwrap().value, b"planted");
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

#[test]
fn fault8_forged_sources_cannot_bypass_the_replica_quota() {
    let per_sector = 8;
    let mut sim = overlay_with(
        12,
        8,
        0.0,
        Config {
            max_records_per_peer: per_sector,
            ..Config::default()
        },
    );
    let target = 4;
    let connections = sim.node(target).stack.node.connections().count();
    let before = sim.node(target).stack.dht.store.len();
    // 2 000 creates, each claiming a different made-up source. Before the fix each
    // source had its own quota, so all of them were stored.
    let unix = sim.node(target).stack.dht.clock.unix_ms(sim.now());
    for i in 0..2000u32 {
        let key = format!("forged/{i}");
        let src = Address::random(sim.rng());
        let mut req = Request {
            op: Op::Create,
            op_id: u64::from(i),
            sub: 0,
            key: key.as_bytes(),
            proof: &[],
            new_owner: b"",
            value: b"junk",
            ttl_s: 3600,
            serial: unix + u64::from(i),
        };
        let proof = super::owner::OwnerKey::derive(key.as_bytes(), b"pw").prove(&req);
        req.proof = &proof;
        let mut buf = [0u8; wire::MAX_MESSAGE];
        let n = req.emit(&mut buf).unwrap();
        let header = exact(wire::REQUEST, src, sub_key(key.as_bytes(), 0));
        // A plain overlay (no secure edges) takes sources as they are: trusted.
        sim.act_dht(target, |d, node, t| {
            d.handle_delivery(t, node, &header, &buf[..n], true)
        });
    }
    let stored = sim.node(target).stack.dht.store.len() - before;
    let bound = (connections + 1) * per_sector;
    assert!(
        stored <= bound,
        "{stored} forged records stored, at most {bound}"
    );
    assert!(stored >= per_sector, "the sectors still take records");
}

#[test]
fn on_a_secure_overlay_unverified_requests_and_replies_are_dropped() {
    let mut sim = overlay_with(6, 9, 0.0, Config::default());
    let target = 2;
    let before = sim.node(target).stack.dht.store.len();
    let key = b"unverified/key";
    let req = Request {
        op: Op::Create,
        op_id: 1,
        sub: 0,
        key,
        proof: &[],
        new_owner: b"",
        value: b"value",
        ttl_s: 600,
        serial: 1,
    };
    let mut buf = [0u8; wire::MAX_MESSAGE];
    let n = req.emit(&mut buf).unwrap();
    let header = |kind| exact(kind, Address::from_bytes([7; 20]), sub_key(key, 0));
    let reply = Reply {
        op_id: 1,
        sub: 0,
        status: wire::Status::Ok,
        rev: 1,
        ttl_left_s: 60,
        value: b"forged",
        cert: None,
    };
    let mut rbuf = [0u8; wire::MAX_MESSAGE];
    let rn = reply.emit(&mut rbuf).unwrap();
    for (kind, body) in [(wire::REQUEST, &buf[..n]), (wire::REPLY, &rbuf[..rn])] {
        let taken = sim.act_dht(target, |d, node, t| {
            d.handle_delivery(t, node, &header(kind), body, false)
        });
        assert!(taken, "a DHT kind is the DHT's, even when dropped");
    }
    let dht = &sim.node(target).stack.dht;
    assert_eq!(dht.unverified(), 2);
    assert_eq!(dht.store.len(), before, "nothing stored");
}

#[test]
fn a_read_drops_values_their_owner_did_not_sign() {
    let key = b"signed/key";
    let (mut sim, reader, id, op_id) = read_under_way(10, key);
    // Before any replica answers, a node answers every sub-key in its own name: once
    // with a value and no certificate, once with the owner's certificate of the real
    // value and another value.
    let unix = sim.node(reader).stack.dht.clock.unix_ms(sim.now());
    let real = owner::create_cert(key, b"real", b"pw", unix);
    for sub in 0..5u8 {
        for cert in [None, Some(real)] {
            let reply = Reply {
                op_id,
                sub,
                status: wire::Status::Ok,
                rev: 99,
                ttl_left_s: 60,
                value: b"forged",
                cert,
            };
            let from = sim.node(3).stack.node.address();
            deliver_reply(&mut sim, reader, from, &reply);
        }
    }
    let got = result_after(&mut sim, reader, id);
    assert_eq!(got, Ok(Outcome::Values(vec![b"real".to_vec()])));
    assert_eq!(sim.node(reader).stack.dht.forged(), 10);
}

#[test]
fn a_write_status_from_a_node_far_from_the_sub_key_is_not_believed() {
    let mut sim = overlay_with(100, 11, 0.0, Config::default());
    let key = b"placed/key";
    let writer = 5;
    let id = sim
        .act_dht(writer, |d, n, t| d.create(t, n, key, b"pw", b"mine", HOUR))
        .unwrap();
    // Before any replica answers, for every sub-key the node farthest from it on the ring
    // says "the key exists" in its own name (its source verified, as a forwarder's is).
    let op_id = sim.node(writer).stack.dht.ops[0].op_id;
    let addresses: Vec<Address> = (0..100).map(|i| sim.node(i).stack.node.address()).collect();
    for sub in 0..5u8 {
        let sk = sub_key(key, sub);
        let far = *addresses
            .iter()
            .max_by_key(|a| a.ring_distance(sk))
            .unwrap();
        let reply = Reply {
            op_id,
            sub,
            status: wire::Status::Exists,
            rev: 1,
            ttl_left_s: 0,
            value: b"",
            cert: None,
        };
        deliver_reply(&mut sim, writer, far, &reply);
    }
    let got = result_after(&mut sim, writer, id);
    assert_eq!(got, Ok(Outcome::Created));
    assert_eq!(sim.node(writer).stack.dht.misplaced(), 5);
    let value = run(&mut sim, 42, |d, n, t| d.get(t, n, key));
    assert_eq!(value, Ok(Outcome::Values(vec![b"mine".to_vec()])));
    // The real replicas' answers were all near enough.
    let misplaced: u64 = (0..100).map(|i| sim.node(i).stack.dht.misplaced()).sum();
    assert_eq!(misplaced, 5);
}

#[test]
fn one_node_saying_absent_twice_does_not_settle_a_read() {
    let (mut sim, reader, id, op_id) = read_under_way(12, b"twice/key");
    // Before any replica answers, node 3 says "absent" twice for every sub-key.
    for sub in 0..5u8 {
        for _ in 0..2 {
            let reply = Reply {
                op_id,
                sub,
                status: wire::Status::NotFound,
                rev: 0,
                ttl_left_s: 0,
                value: b"",
                cert: None,
            };
            let from = sim.node(3).stack.node.address();
            deliver_reply(&mut sim, reader, from, &reply);
        }
    }
    let got = result_after(&mut sim, reader, id);
    assert_eq!(got, Ok(Outcome::Values(vec![b"real".to_vec()])));
}
