//! Path-MTU discovery per edge, by probing (packetization-layer PMTUD, after RFC 8899):
//! each end sends padded `MtuProbe`s over the edge and learns from the `MtuAck`s which
//! datagram sizes arrive. ICMP is not needed (many paths filter it, and relay and TCP
//! edges have none). The search probes the ceiling first (the configured largest
//! datagram); a size lost [`MAX_TRIES`] times in a row bounds a binary search between
//! what was confirmed (or [`FLOOR`]) and it, down to [`GRANULARITY`] bytes. A path found
//! below the ceiling is probed again from the ceiling every [`RAISE_AFTER`] (paths
//! change). The layers above ask [`Node::path_mtu`] how large a datagram to a peer may
//! be.

use std::time::{Duration, Instant};

use super::Node;
use crate::address::Address;
use crate::wire::{self, Message};

/// A datagram size every edge is assumed to carry (RFC 8899's BASE_PLPMTU for IPv6
/// less its headers, which an IPv4 path carries too).
pub const FLOOR: u16 = 1200;
/// A probe unanswered this long is lost.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Probes of one size lost in a row before the size is taken as too large.
pub(crate) const MAX_TRIES: u8 = 3;
/// The search stops when the bounds are this close.
pub(crate) const GRANULARITY: u16 = 16;
/// A path found smaller than the ceiling is searched again after this long.
pub(crate) const RAISE_AFTER: Duration = Duration::from_secs(600);

/// What a node knows of one edge's path MTU, and its probe in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PathMtu {
    /// Largest datagram the edge was seen to carry (0: none yet).
    confirmed: u16,
    /// Smallest size lost [`MAX_TRIES`] times in this search (0: none).
    failed: u16,
    /// Size of the probe in flight (0: none).
    probing: u16,
    /// Probes of `probing` sent so far.
    tries: u8,
    /// The probe's nonce: the connection's token (random, known only to its two ends
    /// and the path between them) with the probe's sequence number in its top byte.
    nonce: u64,
    /// Probes started on this edge.
    seq: u8,
    /// When the probe in flight is lost, or the next search starts (None: no more).
    due: Option<Instant>,
}

impl PathMtu {
    /// A new edge: the first probe is due at once.
    pub(crate) fn new(now: Instant) -> Self {
        PathMtu {
            confirmed: 0,
            failed: 0,
            probing: 0,
            tries: 0,
            nonce: 0,
            seq: 0,
            due: Some(now),
        }
    }

    /// The largest datagram the edge is known to carry: None until a probe answered or
    /// the ceiling was lost ([`FLOOR`] while nothing larger is confirmed).
    pub(crate) fn limit(&self) -> Option<u16> {
        match (self.confirmed, self.failed) {
            (0, 0) => None,
            (0, _) => Some(FLOOR),
            (c, _) => Some(c),
        }
    }

    /// The next size to probe, or None when the search is over.
    fn next_size(&self, ceiling: u16) -> Option<u16> {
        if self.confirmed >= ceiling {
            return None;
        }
        if self.failed == 0 {
            return Some(ceiling);
        }
        let lo = self.confirmed.max(FLOOR);
        if self.failed <= lo || self.failed - lo <= GRANULARITY {
            return None;
        }
        Some(lo + (self.failed - lo) / 2)
    }

    /// Starts the probe the search needs next (returning its size), or ends the search.
    fn advance(&mut self, now: Instant, ceiling: u16, token: u64) -> Option<u16> {
        match self.next_size(ceiling) {
            Some(size) => {
                self.probing = size;
                self.tries = 1;
                self.seq = self.seq.wrapping_add(1);
                self.nonce = token ^ (u64::from(self.seq) << 56);
                self.due = Some(now + PROBE_TIMEOUT);
                Some(size)
            }
            None => {
                self.probing = 0;
                self.due = (self.confirmed < ceiling).then(|| now + RAISE_AFTER);
                None
            }
        }
    }

    /// Timer work: a lost probe is sent again, or its size counted too large; a search
    /// is started again. Returns the size of a probe to send (with `self.nonce`).
    fn on_due(&mut self, now: Instant, ceiling: u16, token: u64) -> Option<u16> {
        if self.due.is_none_or(|d| d > now) {
            return None;
        }
        if self.probing == 0 {
            // A new search (the first, or a raise): from the ceiling again.
            self.failed = 0;
            return self.advance(now, ceiling, token);
        }
        if self.tries < MAX_TRIES {
            self.tries += 1;
            self.due = Some(now + PROBE_TIMEOUT);
            return Some(self.probing);
        }
        self.failed = self.probing;
        self.advance(now, ceiling, token)
    }

    /// An answer to the probe with `nonce`: its size is carried. Returns the next probe.
    fn on_ack(&mut self, now: Instant, ceiling: u16, nonce: u64, token: u64) -> Option<u16> {
        if self.probing == 0 || nonce != self.nonce {
            return None;
        }
        self.confirmed = self.confirmed.max(self.probing);
        self.advance(now, ceiling, token)
    }
}

impl Node {
    /// The largest overlay datagram the direct connection to `peer` is known to carry,
    /// or None (no connection, or nothing learnt yet: the caller assumes what it
    /// assumed before path-MTU discovery).
    pub fn path_mtu(&self, peer: Address) -> Option<usize> {
        self.table.get(peer)?.path_mtu().map(usize::from)
    }

    /// Takes `bytes` off the largest datagram: what a layer below adds to every datagram
    /// (a secure edge's seal), so that probes measure what the overlay may send.
    pub fn reserve_seal(&mut self, bytes: usize) {
        self.config.max_datagram = self.config.max_datagram.saturating_sub(bytes);
    }

    /// The configured ceiling as a probe size.
    fn mtu_ceiling(&self) -> u16 {
        self.config.max_datagram.clamp(usize::from(FLOOR), 65_000) as u16
    }

    /// Sends the probes that are due, and notes when the next one is.
    pub(super) fn drive_path_mtu(&mut self, now: Instant) {
        if self.mtu_due.is_none_or(|d| d > now) {
            return;
        }
        let ceiling = self.mtu_ceiling();
        let mut sends = Vec::new();
        let mut next: Option<Instant> = None;
        for c in self.table.iter_mut() {
            if let Some(size) = c.mtu.on_due(now, ceiling, c.token) {
                sends.push((c.peer, c.edge, size, c.mtu.nonce));
            }
            next = match (next, c.mtu.due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.mtu_due = next;
        for (peer, edge, size, nonce) in sends {
            self.send_mtu_probe(peer, edge, size, nonce);
        }
    }

    /// An `MtuAck` from the peer on `src`'s connection.
    pub(super) fn on_mtu_ack(&mut self, now: Instant, src: super::Source, nonce: u64) {
        let ceiling = self.mtu_ceiling();
        let Some(c) = self.find_conn_mut(src) else {
            return;
        };
        let next = c.mtu.on_ack(now, ceiling, nonce, c.token);
        let (peer, edge, due, nonce) = (c.peer, c.edge, c.mtu.due, c.mtu.nonce);
        self.schedule_mtu(due);
        if let Some(size) = next {
            self.send_mtu_probe(peer, edge, size, nonce);
        }
    }

    /// An `MtuProbe` on `src`'s connection: answered (only on a connection, so the
    /// answer, 12 bytes, never goes to a stranger).
    pub(super) fn on_mtu_probe(&mut self, src: super::Source, nonce: u64) {
        let Some((peer, edge)) = self.find_conn_mut(src).map(|c| (c.peer, c.edge)) else {
            return;
        };
        self.send_on_edge(peer, edge, &Message::MtuAck(nonce));
    }

    /// Notes that a connection's probe timer is `due`.
    pub(super) fn schedule_mtu(&mut self, due: Option<Instant>) {
        if let Some(d) = due {
            self.mtu_due = Some(self.mtu_due.map_or(d, |m| m.min(d)));
        }
    }

    fn send_mtu_probe(&mut self, peer: Address, edge: super::Edge, size: u16, nonce: u64) {
        let padding = usize::from(size).saturating_sub(wire::HEADER_LEN + 8);
        self.stats.mtu_probes += 1;
        self.send_on_edge(
            peer,
            edge,
            &Message::MtuProbe(wire::MtuProbe { nonce, padding }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a path that carries `carried` bytes; returns the limit
    /// found and the virtual time it took.
    fn search(carried: u16, ceiling: u16) -> (Option<u16>, Duration) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut p = PathMtu::new(now);
        let mut nonce = 0;
        let mut size = p.on_due(now, ceiling, nonce);
        while let Some(s) = size {
            if s <= carried {
                now += Duration::from_millis(1);
                size = p.on_ack(now, ceiling, p.nonce, nonce + 1);
            } else {
                now = p.due.unwrap();
                size = p.on_due(now, ceiling, nonce + 1);
            }
            nonce += 1;
        }
        (p.limit(), now - t0)
    }

    #[test]
    fn a_path_that_carries_the_ceiling_is_confirmed_by_one_probe() {
        let (limit, took) = search(1500, 1472);
        assert_eq!(limit, Some(1472));
        assert!(took <= Duration::from_millis(1));
    }

    #[test]
    fn a_smaller_path_is_found_within_the_granularity_and_never_overshot() {
        for carried in [1200, 1250, 1372, 1400, 1471] {
            let (limit, took) = search(carried, 1472);
            let limit = limit.unwrap();
            assert!(limit <= carried, "{carried}: {limit}");
            assert!(carried - limit <= GRANULARITY, "{carried}: {limit}");
            assert!(took < Duration::from_secs(10), "{carried}: {took:?}");
        }
    }

    #[test]
    fn below_the_floor_the_floor_is_assumed() {
        let (limit, _) = search(900, 1472);
        assert_eq!(limit, Some(FLOOR));
    }

    #[test]
    fn nothing_is_known_before_an_answer_or_a_loss_and_stale_answers_are_ignored() {
        let now = Instant::now();
        let mut p = PathMtu::new(now);
        assert_eq!(p.limit(), None);
        assert_eq!(p.on_due(now, 1472, 7), Some(1472));
        assert_eq!(p.on_ack(now, 1472, 8, 9), None, "wrong nonce");
        assert_eq!(p.limit(), None);
        // Lost twice: sent again, still unknown; the third loss ends the size.
        let t1 = now + PROBE_TIMEOUT;
        assert_eq!(p.on_due(t1, 1472, 10), Some(1472));
        assert_eq!(p.on_due(t1 + PROBE_TIMEOUT, 1472, 11), Some(1472));
        assert_eq!(p.limit(), None);
        let next = p.on_due(t1 + PROBE_TIMEOUT * 2, 1472, 12);
        assert_eq!(next, Some(FLOOR + (1472 - FLOOR) / 2));
        assert_eq!(p.limit(), Some(FLOOR));
    }

    #[test]
    fn a_path_below_the_ceiling_is_searched_again_later() {
        let now = Instant::now();
        let mut p = PathMtu::new(now);
        let mut size = p.on_due(now, 1472, 1);
        let mut t = now;
        while let Some(s) = size {
            if s <= 1300 {
                size = p.on_ack(t, 1472, p.nonce, 2);
            } else {
                t = p.due.unwrap();
                size = p.on_due(t, 1472, 3);
            }
        }
        let raise = p.due.expect("a raise is scheduled");
        assert!(raise >= t + RAISE_AFTER);
        assert_eq!(p.on_due(raise, 1472, 4), Some(1472));
        assert!(p.limit().unwrap() <= 1300, "the old limit holds meanwhile");
    }
}
