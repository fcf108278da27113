//! The keeper creates namespaces under a fresh identifier when one is taken, keeps
//! their records alive past the DHT's TTL, and deletes them.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

/// Hands node `i`'s DHT results to `keeper` as a driver does; returns its events.
pub(super) fn pump(sim: &mut Sim, i: usize, keeper: &mut Keeper) -> Vec<KeeperEvent> {
    for r in sim.take_dht_results() {
        if r.node == i {
            sim.act_dht(i, |d, n, now| {
                keeper.handle_dht_result(now, n, d, r.id, &r.result)
            });
        }
    }
    std::iter::from_fn(|| keeper.poll_event()).collect()
}

#[test]
fn a_taken_identifier_is_replaced_and_the_record_outlives_its_ttl() {
    let taken = NamespaceId([7; 16]);
    let mut sim = overlay(8, 41, taken, "10.60.0.0/16");
    sim.take_dht_results();
    // The keeper's first identifier is the one already in the DHT.
    let seed = [3u8; 32];
    let first = NamespaceId::random(&mut StdRng::from_seed(seed));
    let rec = record("10.61.0.0/16");
    sim.act_dht(0, |d, n, t| {
        d.create(
            t,
            n,
            &first.record_key(),
            b"someone else",
            &rec.encode(),
            HOUR,
        )
    })
    .unwrap();
    sim.run_for(Duration::from_secs(3));
    sim.take_dht_results();
    let mut keeper = Keeper::new(seed, sim.now());
    let ticket = sim
        .act_dht(3, |d, n, t| keeper.create(t, n, d, rec.clone(), None))
        .unwrap();
    let mut events = Vec::new();
    for _ in 0..20 {
        sim.run_for(Duration::from_secs(1));
        events.extend(pump(&mut sim, 3, &mut keeper));
    }
    let [KeeperEvent::Created { ticket: t, id }] = events[..] else {
        panic!("one creation: {events:?}")
    };
    assert_eq!(t, ticket);
    assert_ne!(id, first, "the taken identifier was not reused");
    // Two TTLs later the record is still there: the keeper renewed it.
    let end = sim.now() + RECORD_TTL * 2;
    while sim.now() < end {
        sim.run_for(Duration::from_secs(60));
        sim.act_dht(3, |d, n, t| keeper.handle_timeout(t, n, d));
        pump(&mut sim, 3, &mut keeper);
    }
    assert_eq!(keeper.renew_failures(), 0);
    let op = sim
        .act_dht(6, |d, n, t| d.get(t, n, &id.record_key()))
        .unwrap();
    sim.run_for(Duration::from_secs(3));
    let got = sim
        .take_dht_results()
        .into_iter()
        .find(|r| r.id == op && r.node == 6)
        .expect("a result");
    let Ok(crate::dht::Outcome::Values(v)) = got.result else {
        panic!("{:?}", got.result)
    };
    assert_eq!(v, [rec.encode()]);

    // Deleted: no longer kept, and no node reads the record any more.
    let ns = Namespace::from(id);
    let del = sim
        .act_dht(3, |d, n, t| keeper.delete(t, n, d, &ns))
        .unwrap();
    sim.run_for(Duration::from_secs(3));
    let results = sim.take_dht_results();
    let done = results.iter().find(|r| r.id == del && r.node == 3);
    assert!(done.is_some_and(|r| r.result.is_ok()), "{results:?}");
    assert!(keeper.kept().is_empty() && keeper.poll_timeout().is_none());
    let op = sim
        .act_dht(6, |d, n, t| d.get(t, n, &id.record_key()))
        .unwrap();
    sim.run_for(Duration::from_secs(3));
    let got = sim.take_dht_results().into_iter().find(|r| r.id == op);
    assert!(
        matches!(&got, Some(r) if r.result == Ok(crate::dht::Outcome::Values(Vec::new()))),
        "{got:?}"
    );
}

#[test]
fn a_fixed_identifier_that_is_taken_fails_without_retrying() {
    let taken = NamespaceId([9; 16]);
    let mut sim = overlay(6, 42, taken, "10.62.0.0/16");
    sim.take_dht_results();
    let mut keeper = Keeper::new([4; 32], sim.now());
    let rec = record("10.63.0.0/16");
    let ticket = sim
        .act_dht(2, |d, n, t| keeper.create(t, n, d, rec, Some(taken.into())))
        .unwrap();
    let mut events = Vec::new();
    for _ in 0..10 {
        sim.run_for(Duration::from_secs(1));
        events.extend(pump(&mut sim, 2, &mut keeper));
    }
    assert!(
        matches!(events[..], [KeeperEvent::Failed { ticket: t, .. }] if t == ticket),
        "{events:?}"
    );
    assert!(keeper.kept().is_empty());
}
