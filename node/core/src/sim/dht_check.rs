//! The DHT part of a scenario: keys created with TTLs before churn, and checked after
//! it: every live key found with its value, every expired key gone, a second create of
//! a live key refused, a delete with a wrong password refused (and the value kept), and
//! racing creators of one key never both winning.

use std::time::{Duration, Instant};

use rand::{Rng, RngExt};

use super::{DhtResult, Sim, percentile};
use crate::address::Address;
use crate::dht::{DhtError, Outcome, RequestId};

/// What the DHT checks found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DhtReport {
    /// Keys created before churn.
    pub keys: usize,
    /// Creates that failed (they are not checked afterwards).
    pub create_failures: usize,
    /// Created keys whose TTL had not expired at the check.
    pub live: usize,
    /// Live keys a get returned with the right value.
    pub found: usize,
    /// Created keys whose TTL had expired at the check.
    pub expired: usize,
    /// Expired keys a get returned nothing for.
    pub expired_gone: usize,
    /// Gets that failed (no majority).
    pub get_failures: usize,
    /// Virtual milliseconds from get to result: median.
    pub get_ms_p50: f64,
    /// ... 99th percentile.
    pub get_ms_p99: f64,
    /// Second creates of live keys tried / refused with `KeyExists`.
    pub second_creates: (usize, usize),
    /// Wrong-password deletes tried / refused with `BadPassword` while the value stayed.
    pub wrong_password_deletes: (usize, usize),
    /// Keys raced by several creators at once.
    pub races: usize,
    /// Raced keys that more than one creator believes it owns (must be 0).
    pub duplicate_winners: usize,
    /// Raced keys nobody won.
    pub no_winner: usize,
}

/// A key created by the scenario.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    key: Vec<u8>,
    value: Vec<u8>,
    expires: Instant,
}

const BATCH: usize = 50;

/// Starts one operation per item on random live, correctly connected nodes (any live
/// node if none is), `BATCH` every 50 ms, and waits for all results. Returns each
/// item's (result, latency).
fn run_ops<T>(
    sim: &mut Sim,
    items: &[T],
    mut op: impl FnMut(&mut Sim, usize, &T) -> Result<RequestId, DhtError>,
) -> Vec<(Result<Outcome, DhtError>, Duration)> {
    let pick = |connected: bool| -> Vec<usize> {
        (0..sim.nodes().len())
            .filter(|&i| {
                let n = sim.node(i);
                n.alive && (!connected || n.stack.node.is_correctly_connected())
            })
            .collect()
    };
    let mut live = pick(true);
    if live.is_empty() {
        live = pick(false);
    }
    let mut pending: Vec<Option<(usize, RequestId, Instant)>> = Vec::with_capacity(items.len());
    let mut out: Vec<Option<(Result<Outcome, DhtError>, Duration)>> = vec![None; items.len()];
    for (k, item) in items.iter().enumerate() {
        let i = live[sim.rng().random_range(0..live.len())];
        let started = sim.now();
        match op(sim, i, item) {
            Ok(id) => pending.push(Some((i, id, started))),
            Err(e) => {
                pending.push(None);
                out[k] = Some((Err(e), Duration::ZERO));
            }
        }
        if k % BATCH == BATCH - 1 {
            collect(sim, &mut pending, &mut out);
            sim.run_for(Duration::from_millis(50));
        }
    }
    for _ in 0..1200 {
        collect(sim, &mut pending, &mut out);
        if pending.iter().all(Option::is_none) {
            break;
        }
        sim.run_for(Duration::from_millis(100));
    }
    out.into_iter()
        .map(|o| o.unwrap_or((Err(DhtError::NoMajority), Duration::MAX)))
        .collect()
}

fn collect(
    sim: &mut Sim,
    pending: &mut [Option<(usize, RequestId, Instant)>],
    out: &mut [Option<(Result<Outcome, DhtError>, Duration)>],
) {
    for DhtResult {
        node,
        id,
        result,
        at,
    } in sim.take_dht_results()
    {
        if let Some(k) = pending
            .iter()
            .position(|p| p.is_some_and(|(n, i, _)| n == node && i == id))
        {
            let (_, _, started) = pending[k].take().unwrap_or((node, id, at));
            out[k] = Some((result, at - started));
        }
    }
}

/// Creates `count` keys with values and TTLs; a fifth of them expire within
/// `short_ttl`, the rest live an hour.
pub(crate) fn populate(sim: &mut Sim, count: usize, short_ttl: Duration) -> (Vec<Key>, usize) {
    let mut specs = Vec::with_capacity(count);
    for k in 0..count {
        let mut value = vec![0u8; 16];
        sim.rng().fill_bytes(&mut value);
        let ttl = if k % 5 == 0 {
            short_ttl
        } else {
            Duration::from_secs(3600)
        };
        specs.push((format!("key-{k}").into_bytes(), value, ttl));
    }
    let results = run_ops(sim, &specs, |sim, i, (key, value, ttl)| {
        sim.act_dht(i, |d, n, t| d.create(t, n, key, b"password", value, *ttl))
    });
    let mut keys = Vec::new();
    let mut failures = 0;
    let now = sim.now();
    for ((key, value, ttl), (result, _)) in specs.into_iter().zip(results) {
        if result == Ok(Outcome::Created) {
            keys.push(Key {
                key,
                value,
                expires: now + ttl,
            });
        } else {
            failures += 1;
        }
    }
    (keys, failures)
}

/// Checks the keys after churn.
pub(crate) fn verify(sim: &mut Sim, keys: &[Key], report: &mut DhtReport) {
    let now = sim.now();
    let results = run_ops(sim, keys, |sim, i, k| {
        sim.act_dht(i, |d, n, t| d.get(t, n, &k.key))
    });
    let mut ms = Vec::new();
    for (k, (result, latency)) in keys.iter().zip(results) {
        let live = k.expires > now + Duration::from_secs(5);
        let expired = k.expires + Duration::from_secs(5) < now;
        match result {
            Ok(Outcome::Values(values)) => {
                ms.push(latency.as_secs_f64() * 1e3);
                if live {
                    report.live += 1;
                    report.found += usize::from(values == [k.value.clone()]);
                } else if expired {
                    report.expired += 1;
                    report.expired_gone += usize::from(values.is_empty());
                }
            }
            _ => {
                report.get_failures += 1;
                report.live += usize::from(live);
                report.expired += usize::from(expired);
            }
        }
    }
    ms.sort_by(f64::total_cmp);
    report.get_ms_p50 = percentile(&ms, 50.0);
    report.get_ms_p99 = percentile(&ms, 99.0);

    let live: Vec<Key> = keys
        .iter()
        .filter(|k| k.expires > now + Duration::from_secs(60))
        .take(100)
        .cloned()
        .collect();
    let seconds = run_ops(sim, &live, |sim, i, k| {
        sim.act_dht(i, |d, n, t| {
            d.create(t, n, &k.key, b"other", b"other", Duration::from_secs(600))
        })
    });
    report.second_creates = (
        live.len(),
        seconds
            .iter()
            .filter(|(r, _)| *r == Err(DhtError::KeyExists))
            .count(),
    );
    let deletes = run_ops(sim, &live, |sim, i, k| {
        sim.act_dht(i, |d, n, t| d.delete(t, n, &k.key, b"not-the-password"))
    });
    let after = run_ops(sim, &live, |sim, i, k| {
        sim.act_dht(i, |d, n, t| d.get(t, n, &k.key))
    });
    let kept = live
        .iter()
        .zip(deletes.iter().zip(&after))
        .filter(|(k, ((del, _), (get, _)))| {
            *del == Err(DhtError::BadPassword) && *get == Ok(Outcome::Values(vec![k.value.clone()]))
        })
        .count();
    report.wrong_password_deletes = (live.len(), kept);
}

/// Looks up `count` keys drawn at random from those of `keys` that live at least 5 s
/// more; returns the lookups made and how many returned the key's value.
pub(crate) fn lookup(sim: &mut Sim, keys: &[Key], count: usize) -> (usize, usize) {
    let now = sim.now();
    let live: Vec<&Key> = keys
        .iter()
        .filter(|k| k.expires > now + Duration::from_secs(5))
        .collect();
    if live.is_empty() {
        return (0, 0);
    }
    let chosen: Vec<&Key> = (0..count)
        .map(|_| live[sim.rng().random_range(0..live.len())])
        .collect();
    let results = run_ops(sim, &chosen, |sim, i, k| {
        sim.act_dht(i, |d, n, t| d.get(t, n, &k.key))
    });
    let found = chosen
        .iter()
        .zip(results)
        .filter(|(k, (r, _))| *r == Ok(Outcome::Values(vec![k.value.clone()])))
        .count();
    (chosen.len(), found)
}

/// Races `creators` distinct nodes for each of `races` fresh keys.
pub(crate) fn race(sim: &mut Sim, races: usize, creators: usize, report: &mut DhtReport) {
    let live: Vec<usize> = (0..sim.nodes().len())
        .filter(|&i| sim.node(i).alive)
        .collect();
    for r in 0..races {
        let key = format!("race-{r}").into_bytes();
        let mut ids = Vec::new();
        let mut free = live.clone();
        for c in 0..creators.min(free.len()) {
            let i = free.swap_remove(sim.rng().random_range(0..free.len()));
            let password = [c as u8];
            if let Ok(id) = sim.act_dht(i, |d, n, t| {
                d.create(t, n, &key, &password, b"v", Duration::from_secs(600))
            }) {
                ids.push((i, id));
            }
        }
        let mut winners = 0;
        let mut done = 0;
        for _ in 0..300 {
            sim.run_for(Duration::from_millis(100));
            for res in sim.take_dht_results() {
                if ids.contains(&(res.node, res.id)) {
                    done += 1;
                    winners += usize::from(res.result == Ok(Outcome::Created));
                }
            }
            if done == ids.len() {
                break;
            }
        }
        report.races += 1;
        report.duplicate_winners += usize::from(winners > 1);
        report.no_winner += usize::from(winners == 0);
    }
}

impl Sim {
    /// The live nodes immediately left and right of `key` on the ring: the two nodes the
    /// DHT must keep `key`'s records on. `None` with fewer than two live nodes.
    pub fn replicas_of(&self, key: Address) -> Option<(usize, usize)> {
        let mut live: Vec<(Address, usize)> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .map(|i| (self.nodes[i].stack.node.address(), i))
            .collect();
        if live.len() < 2 {
            return None;
        }
        live.sort();
        let right = live.partition_point(|(a, _)| *a <= key);
        let left = live.partition_point(|(a, _)| *a < key);
        let right = live[right % live.len()].1;
        let left = live[(left + live.len() - 1) % live.len()].1;
        Some((left, right))
    }

    /// The live nodes that hold a record (value or tombstone) under `sub_key`, by index.
    pub fn holders_of(&self, sub_key: Address) -> Vec<usize> {
        let now = self.now;
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .filter(|&i| {
                let records = self.nodes[i].stack.dht.records(now);
                records.iter().any(|r| r.sub_key == sub_key)
            })
            .collect()
    }
}
