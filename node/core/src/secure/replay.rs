//! The anti-replay window of a receiving session (RFC 6479, as WireGuard keeps it).
//!
//! UDP loses and reorders, so nonces arrive out of order: a nonce is accepted once if it
//! is above every nonce seen, or at most [`WINDOW`]` - 1` below the highest and not seen
//! yet. The bitmap is a ring of 64-bit words; sliding forward clears whole words, so an
//! update costs at most one pass over the ring whatever the jump.

/// Bits per word of the ring.
const WORD_BITS: u64 = 64;
/// Words in the ring: one more than the window needs, so the word being refilled never
/// holds a live bit.
const WORDS: usize = 33;
/// How many nonces, counting the highest seen, the window spans.
pub(crate) const WINDOW: u64 = (WORDS as u64 - 1) * WORD_BITS;

/// The nonces a session has accepted, as far back as the window reaches.
#[derive(Debug, Clone)]
pub(crate) struct ReplayWindow {
    /// The highest nonce accepted, if any.
    top: Option<u64>,
    words: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: None,
            words: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    /// Whether `nonce` would be accepted (nothing is recorded: the caller checks before
    /// it decrypts, and [`insert`](Self::insert)s once the message proved authentic).
    pub(crate) fn check(&self, nonce: u64) -> bool {
        // Noise reserves 2^64 - 1; no sender uses it.
        if nonce == u64::MAX {
            return false;
        }
        match self.top {
            None => true,
            Some(top) if nonce > top => true,
            Some(top) => top - nonce < WINDOW && !self.bit(nonce),
        }
    }

    /// Records `nonce` as seen; it must have passed [`check`](Self::check).
    pub(crate) fn insert(&mut self, nonce: u64) {
        match self.top {
            Some(top) if nonce <= top => {}
            Some(top) => {
                let (old, new) = (top / WORD_BITS, nonce / WORD_BITS);
                let steps = (new - old).min(WORDS as u64);
                for i in 1..=steps {
                    self.words[slot(old + i)] = 0;
                }
                self.top = Some(nonce);
            }
            None => self.top = Some(nonce),
        }
        self.words[slot(nonce / WORD_BITS)] |= 1 << (nonce % WORD_BITS);
    }

    fn bit(&self, nonce: u64) -> bool {
        self.words[slot(nonce / WORD_BITS)] & (1 << (nonce % WORD_BITS)) != 0
    }
}

fn slot(word: u64) -> usize {
    (word % WORDS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn accept(w: &mut ReplayWindow, n: u64) -> bool {
        let ok = w.check(n);
        if ok {
            w.insert(n);
        }
        ok
    }

    #[test]
    fn duplicates_and_too_old_are_refused_reordering_is_accepted() {
        let mut w = ReplayWindow::default();
        assert!(accept(&mut w, 0));
        assert!(!accept(&mut w, 0), "duplicate");
        assert!(accept(&mut w, 5));
        assert!(accept(&mut w, 3), "late but inside the window");
        assert!(accept(&mut w, 1));
        assert!(!accept(&mut w, 3));
        assert!(accept(&mut w, 5000));
        assert!(
            accept(&mut w, 5000 - (WINDOW - 1)),
            "the oldest nonce in the window"
        );
        assert!(!accept(&mut w, 5000 - WINDOW), "just outside");
        assert!(!accept(&mut w, 5), "far too old");
        assert!(!accept(&mut w, u64::MAX));
        // A jump far ahead clears the whole ring.
        assert!(accept(&mut w, 1 << 40));
        assert!(accept(&mut w, (1 << 40) - 1));
        assert!(!accept(&mut w, 5000));
    }

    #[test]
    fn check_alone_records_nothing() {
        let mut w = ReplayWindow::default();
        assert!(w.check(7));
        assert!(w.check(7));
        w.insert(7);
        assert!(!w.check(7));
    }

    proptest! {
        /// The window against a model that remembers every nonce: accepted exactly when
        /// new and less than WINDOW below the highest accepted.
        #[test]
        fn matches_a_model(steps in proptest::collection::vec((0u64..6000, any::<bool>()), 1..400)) {
            let mut w = ReplayWindow::default();
            let mut seen = HashSet::new();
            let mut top: Option<u64> = None;
            let mut base = 0u64;
            for (delta, jump) in steps {
                // Mostly near the top, sometimes far ahead.
                let n = if jump { base + delta } else { base.saturating_sub(delta / 2) + delta / 3 };
                let expected = !seen.contains(&n) && top.is_none_or(|t| n > t || t - n < WINDOW);
                prop_assert_eq!(accept(&mut w, n), expected, "nonce {}", n);
                if expected {
                    seen.insert(n);
                    top = Some(top.map_or(n, |t| t.max(n)));
                }
                base = top.unwrap_or(0);
            }
        }
    }
}
