//! Bounds on the work other nodes can make this node do.
//!
//! [`RateLimiter`] counts requests per source per second, for a bounded number of
//! sources. A CTM request makes its receiver link to the requester (link requests to up to 8
//! transports, retransmitted for seconds) and answer it; requests are cheap to send and
//! their source address is whatever the sender writes. So a node answers at most
//! `ctm_per_source` CTM requests per requester per second, from at most `ctm_sources`
//! requesters per second, and keeps at most `max_link_attempts` link attempts under way.
//! What one stream of forged CTMs can make a node send is then bounded, whatever its
//! rate. Broadcasts are limited the same way, per origin.

use std::time::{Duration, Instant};

use crate::address::Address;

/// The window the CTM counts apply to.
const WINDOW: Duration = Duration::from_secs(1);

/// Requests allowed in the current window, per source.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    window_start: Option<Instant>,
    answered: Vec<(Address, u32)>,
}

impl RateLimiter {
    /// Whether a request from `src` may be answered now; counts it if so.
    pub(crate) fn allow(
        &mut self,
        now: Instant,
        src: Address,
        per_source: u32,
        sources: usize,
    ) -> bool {
        if self
            .window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= WINDOW)
        {
            self.window_start = Some(now);
            self.answered.clear();
        }
        let full = self.answered.len() >= sources;
        match self.answered.iter_mut().find(|(a, _)| *a == src) {
            Some((_, n)) if *n >= per_source => false,
            Some((_, n)) => {
                *n += 1;
                true
            }
            None if full => false,
            None => {
                self.answered.push((src, 1));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_requester_and_the_number_of_requesters_are_capped_per_second() {
        let mut l = RateLimiter::default();
        let t0 = Instant::now();
        let (a, b, c) = (
            Address::from_bytes([1; 20]),
            Address::from_bytes([2; 20]),
            Address::from_bytes([3; 20]),
        );
        let allowed =
            |l: &mut RateLimiter, t, src| (0..5).filter(|_| l.allow(t, src, 3, 2)).count();
        assert_eq!(allowed(&mut l, t0, a), 3);
        assert_eq!(allowed(&mut l, t0, b), 3);
        assert_eq!(
            allowed(&mut l, t0, c),
            0,
            "a third requester in the same second"
        );
        let later = t0 + WINDOW;
        assert_eq!(allowed(&mut l, later, c), 3);
        assert_eq!(allowed(&mut l, later, a), 3);
    }
}
