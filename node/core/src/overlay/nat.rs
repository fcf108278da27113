//! What a node knows about its own transport addresses: those it listens on, and the
//! public (translated) ones that peers observed in link handshakes. Both are advertised
//! in CTMs so that peers behind NATs can reach this node.

use std::time::Instant;

use crate::transport::TransportAddr;
use crate::wire::MAX_TRANSPORTS;

/// A public address of this node, as observed by peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnedAddress {
    /// The address peers saw.
    pub addr: TransportAddr,
    /// How many handshakes reported it.
    pub count: u32,
    /// When it was first reported.
    pub first_seen: Instant,
    /// When it was last reported.
    pub last_seen: Instant,
}

/// Most learned addresses kept (oldest forgotten first).
const HISTORY: usize = 8;

#[derive(Debug, Default)]
pub(crate) struct NatView {
    local: Vec<TransportAddr>,
    learned: Vec<LearnedAddress>,
}

impl NatView {
    /// Adds a local address (at most [`MAX_TRANSPORTS`]: more could never be
    /// advertised, and a peer's ConnectToSelf answers add to the list).
    pub(crate) fn add_local(&mut self, t: TransportAddr) {
        if !self.local.contains(&t) && self.local.len() < MAX_TRANSPORTS {
            self.local.push(t);
        }
    }

    pub(crate) fn is_local(&self, t: &TransportAddr) -> bool {
        self.local.contains(t)
    }

    /// Records an observation; returns true if the address is new.
    pub(crate) fn observe(&mut self, now: Instant, t: TransportAddr) -> bool {
        if let Some(i) = self.learned.iter().position(|l| l.addr == t) {
            let mut l = self.learned.remove(i);
            l.count = l.count.saturating_add(1);
            l.last_seen = now;
            self.learned.insert(0, l);
            return false;
        }
        self.learned.insert(
            0,
            LearnedAddress {
                addr: t,
                count: 1,
                first_seen: now,
                last_seen: now,
            },
        );
        self.learned.truncate(HISTORY);
        !self.local.contains(&t)
    }

    pub(crate) fn local(&self) -> &[TransportAddr] {
        &self.local
    }

    pub(crate) fn learned(&self) -> &[LearnedAddress] {
        &self.learned
    }

    /// Learned public addresses first (most recent first), then local ones; no
    /// duplicates, at most what one message carries. Learned addresses are what peers
    /// say, so they never take all the room: half of it stays for local addresses.
    pub(crate) fn advertised(&self) -> Vec<TransportAddr> {
        let mut out: Vec<TransportAddr> = Vec::with_capacity(MAX_TRANSPORTS);
        let reserved = self.local.len().min(MAX_TRANSPORTS / 2);
        for t in self.learned.iter().map(|l| l.addr) {
            if out.len() == MAX_TRANSPORTS - reserved {
                break;
            }
            if !out.contains(&t) {
                out.push(t);
            }
        }
        for &t in &self.local {
            if out.len() == MAX_TRANSPORTS {
                break;
            }
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }
}
