//! The wall clock of a DHT node. Writes carry their writer's wall-clock time (their
//! serial), and replicas compare it with their own, so that a write replayed later
//! still expires when the original would have (PROTOCOL.md, "The DHT"). Clocks of
//! nodes should agree to well within a record's TTL (NTP does).

use std::time::{Duration, Instant};

/// The wall clock as an offset from an [`Instant`]: sans-IO code gets only instants,
/// so the driver reads the system clock once at start. (The simulator gives every node
/// the same origin, so runs stay deterministic.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    at: Instant,
    unix_ms: u64,
}

impl WallClock {
    /// The clock that read `since_epoch` (time since the Unix epoch) at `at`.
    pub fn new(at: Instant, since_epoch: Duration) -> Self {
        WallClock {
            at,
            unix_ms: u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// A clock that reads the same fixed date (2027-01-15) at `at` on every node, for
    /// simulations and tests: deterministic, and nodes of one run agree.
    pub fn fixed(at: Instant) -> Self {
        WallClock::new(at, Duration::from_secs(1_800_000_000))
    }

    /// Milliseconds since the Unix epoch at `now`.
    pub fn unix_ms(&self, now: Instant) -> u64 {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if now >= self.at {
            self.unix_ms.saturating_add(ms(now - self.at))
        } else {
            self.unix_ms.saturating_sub(ms(self.at - now))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_runs_with_instants_both_ways() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let c = WallClock::new(t0, Duration::from_millis(1_000_000));
        assert_eq!(c.unix_ms(t0), 1_000_000);
        assert_eq!(c.unix_ms(t0 + Duration::from_millis(1500)), 1_001_500);
        assert_eq!(c.unix_ms(t0 - Duration::from_secs(2)), 998_000);
        let early = WallClock::new(t0, Duration::from_millis(5));
        assert_eq!(early.unix_ms(t0 - Duration::from_secs(1)), 0);
    }
}
