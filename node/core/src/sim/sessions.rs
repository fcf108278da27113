//! Churn from session times: instead of one mass crash, every node stays for a session
//! drawn from a distribution, then crashes (or leaves gracefully), and a new node with a
//! new address joins in its place, so the population stays about constant while its
//! members turn over. Measured P2P sessions are heavy-tailed: Stutzbach and Rejaie,
//! "Understanding Churn in Peer-to-Peer Networks" (IMC 2006), fit session lengths in
//! Gnutella, Kad and BitTorrent with Weibull distributions of shape 0.34 to 0.59 — many
//! short sessions and a few very long ones — and found exponential models (the memoryless
//! assumption of earlier analyses) a poor fit. Both are offered here.
//!
//! While the overlay churns, the phase samples at a fixed period how many nodes are alive
//! and correctly connected and how many DHT lookups of keys created before it find their
//! value: whether records survive at the stated replication.

use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::{Rng, RngExt};

use super::Sim;
use super::dht_check::{self, Key};
use super::scenario::Bootstrap;

/// A distribution of session lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SessionDist {
    /// Exponential with this mean, in seconds.
    Exponential {
        /// Mean session, seconds.
        mean_s: f64,
    },
    /// Weibull with this shape and scale (seconds): P(session > t) = exp(-(t/scale)^shape).
    Weibull {
        /// Shape k (below 1: heavy-tailed).
        shape: f64,
        /// Scale λ, seconds.
        scale_s: f64,
    },
}

impl SessionDist {
    /// A session length, by inverting the distribution function at a uniform draw.
    fn sample(&self, rng: &mut impl Rng) -> Duration {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let tail = -(1.0 - rng.random_range(0.0..1.0f64)).ln();
        let s = match *self {
            SessionDist::Exponential { mean_s } => mean_s * tail,
            SessionDist::Weibull { shape, scale_s } => scale_s * tail.powf(1.0 / shape),
        };
        // Capped at a day: a heavy tail cannot overflow an instant.
        Duration::from_secs_f64(s.clamp(0.0, 86_400.0))
    }
}

/// Why a session distribution cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: use exp:MEAN_S or weibull:SHAPE:SCALE_S (positive numbers)")]
pub struct SessionDistError(String);

impl FromStr for SessionDist {
    type Err = SessionDistError;

    /// `exp:MEAN_S` or `weibull:SHAPE:SCALE_S`, e.g. `weibull:0.5:600`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SessionDistError(s.to_string());
        let nums: Vec<f64> = s
            .split(':')
            .skip(1)
            .map(|p| p.parse::<f64>().map_err(|_| err()))
            .collect::<Result<_, _>>()?;
        if nums.iter().any(|v| !v.is_finite() || *v <= 0.0) {
            return Err(err());
        }
        match (s.split(':').next(), nums.as_slice()) {
            (Some("exp"), &[mean_s]) => Ok(SessionDist::Exponential { mean_s }),
            (Some("weibull"), &[shape, scale_s]) => Ok(SessionDist::Weibull { shape, scale_s }),
            _ => Err(err()),
        }
    }
}

/// The session-churn phase of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Sessions {
    /// Session lengths.
    pub dist: SessionDist,
    /// Virtual time the phase runs.
    pub duration: Duration,
    /// Period of the samples.
    pub sample_every: Duration,
    /// DHT lookups per sample (of live keys created before the phase).
    pub lookups: usize,
    /// Fraction of departures that leave gracefully (the rest crash).
    pub graceful: f64,
}

/// One sample of the phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionSample {
    /// Virtual seconds since the phase began.
    pub t_s: f64,
    /// Nodes alive.
    pub live: usize,
    /// Of those, correctly connected.
    pub correctly_connected: usize,
    /// Lookups started.
    pub lookups: usize,
    /// Lookups that returned the key's value.
    pub found: usize,
}

/// What the phase did and saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionReport {
    /// Nodes whose session ended.
    pub departures: usize,
    /// Of those, graceful leaves.
    pub graceful: usize,
    /// Mean of the session lengths drawn, seconds.
    pub session_mean_s: f64,
    /// The samples, in time order.
    pub samples: Vec<SessionSample>,
}

impl SessionReport {
    /// Lookups in all samples, and how many found their value.
    pub fn lookups(&self) -> (usize, usize) {
        self.samples
            .iter()
            .fold((0, 0), |(l, f), s| (l + s.lookups, f + s.found))
    }
}

/// Runs the phase on `sim`: every live node but the first `keep` (the bootstrap nodes)
/// gets a session; at its end the node goes and a new one joins through `bootstrap`.
pub(crate) fn run(
    sim: &mut Sim,
    sessions: &Sessions,
    keep: usize,
    bootstrap: &Bootstrap,
    keys: &[Key],
    progress: &mut dyn FnMut(&str, f64),
) -> SessionReport {
    let start = sim.now();
    let end = start + sessions.duration;
    let mut report = SessionReport::default();
    let mut drawn = Vec::new();
    // (session end, node), kept sorted by end time, latest first, so `pop` is next.
    let mut ends: Vec<(Instant, usize)> = Vec::new();
    let mut schedule = |sim: &mut Sim, i: usize, ends: &mut Vec<(Instant, usize)>| {
        let length = sessions.dist.sample(sim.rng());
        drawn.push(length.as_secs_f64());
        let at = sim.now() + length;
        let pos = ends.partition_point(|(t, j)| (*t, *j) > (at, i));
        ends.insert(pos, (at, i));
    };
    for i in keep..sim.nodes().len() {
        if sim.node(i).alive {
            schedule(sim, i, &mut ends);
        }
    }
    let mut next_sample = start + sessions.sample_every;
    loop {
        let next_end = ends.last().map_or(end, |(t, _)| *t);
        let next = next_end.min(next_sample).min(end);
        sim.run_until(next.max(sim.now()));
        if next >= end {
            break;
        }
        if next == next_sample {
            report
                .samples
                .push(sample(sim, start, keys, sessions.lookups));
            next_sample += sessions.sample_every;
            progress(
                "sessions",
                (sim.now() - start).as_secs_f64() / sessions.duration.as_secs_f64(),
            );
            continue;
        }
        let Some((_, i)) = ends.pop() else {
            continue;
        };
        if sim.rng().random_range(0.0..1.0) < sessions.graceful {
            sim.leave(i);
            report.graceful += 1;
        } else {
            sim.crash(i);
        }
        report.departures += 1;
        let new = sim.add_node();
        let list = bootstrap.pick(sim, new);
        sim.start(new, &list);
        schedule(sim, new, &mut ends);
        if report.departures % 64 == 0 {
            sim.take_observed();
        }
    }
    report
        .samples
        .push(sample(sim, start, keys, sessions.lookups));
    report.session_mean_s = drawn.iter().sum::<f64>() / drawn.len().max(1) as f64;
    report
}

/// Counts live and correctly connected nodes, and looks up `lookups` random live keys.
fn sample(sim: &mut Sim, start: Instant, keys: &[Key], lookups: usize) -> SessionSample {
    let t_s = (sim.now() - start).as_secs_f64();
    let live = sim.nodes().iter().filter(|n| n.alive).count();
    let correctly_connected = sim
        .nodes()
        .iter()
        .filter(|n| n.alive && n.stack.node.is_correctly_connected())
        .count();
    let (lookups, found) = dht_check::lookup(sim, keys, lookups);
    SessionSample {
        t_s,
        live,
        correctly_connected,
        lookups,
        found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    fn scenario(nodes: usize, minutes: u64) -> crate::sim::Scenario {
        crate::sim::Scenario {
            nodes,
            seed: 5,
            join_rate: 50.0,
            routes: 200,
            dht_keys: 40,
            sessions: Some(Sessions {
                dist: SessionDist::Weibull {
                    shape: 0.5,
                    scale_s: 600.0,
                },
                duration: Duration::from_secs(60 * minutes),
                sample_every: Duration::from_secs(60),
                lookups: 20,
                graceful: 0.3,
            }),
            ..crate::sim::Scenario::default()
        }
    }

    #[test]
    fn under_session_churn_the_overlay_heals_and_records_survive() {
        let r = scenario(80, 5).run(&mut |_, _| {});
        let s = r.sessions.as_ref().expect("a session report");
        // Sessions of mean 120 s over 5 minutes: most of the 76 churning nodes go once.
        assert!(s.departures > 40, "{s:?}");
        assert!(s.graceful > 0 && s.graceful < s.departures, "{s:?}");
        // Every minute, the last at the end.
        assert_eq!(s.samples.len(), 5, "{s:?}");
        eprintln!("{s:?}");
        assert!(s.samples.iter().all(|x| x.live == 80), "{s:?}");
        let (lookups, found) = s.lookups();
        assert!(lookups >= 100, "{s:?}");
        assert!(
            found * 100 >= lookups * 95,
            "{found} of {lookups} lookups found: {s:?}"
        );
        let after = r.after_churn.as_ref().expect("checks after churn");
        assert!(after.ring_consistent, "{after:?}");
        assert_eq!(after.routes_delivered, after.routes_tried, "{after:?}");
        assert_eq!(r.dht_forged, 0);
        assert_eq!(r.dht_misplaced, 0);
    }

    #[test]
    fn the_same_seed_gives_the_same_session_churn() {
        let a = scenario(30, 2).run(&mut |_, _| {});
        let b = scenario(30, 2).run(&mut |_, _| {});
        assert_eq!(a, b);
        assert!(a.sessions.is_some_and(|s| s.departures > 0));
    }

    #[test]
    fn distributions_parse_and_sample_their_means() {
        assert_eq!(
            "weibull:0.5:600".parse(),
            Ok(SessionDist::Weibull {
                shape: 0.5,
                scale_s: 600.0
            })
        );
        assert_eq!(
            "exp:90".parse(),
            Ok(SessionDist::Exponential { mean_s: 90.0 })
        );
        for bad in [
            "exp",
            "exp:0",
            "exp:-1",
            "weibull:0.5",
            "normal:3",
            "exp:nan",
            "exp:1:2",
        ] {
            assert!(bad.parse::<SessionDist>().is_err(), "{bad}");
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mean = |d: SessionDist, rng: &mut Xoshiro256PlusPlus| {
            (0..20_000)
                .map(|_| d.sample(rng).as_secs_f64())
                .sum::<f64>()
                / 20_000.0
        };
        let exp = mean(SessionDist::Exponential { mean_s: 100.0 }, &mut rng);
        assert!((exp - 100.0).abs() < 5.0, "{exp}");
        // Weibull mean = scale * Gamma(1 + 1/shape); shape 1/2: Gamma(3) = 2.
        let w = mean(
            SessionDist::Weibull {
                shape: 0.5,
                scale_s: 50.0,
            },
            &mut rng,
        );
        assert!((w - 100.0).abs() < 10.0, "{w}");
    }
}
