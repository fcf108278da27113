//! Time in the secure layer: handshake retransmissions and give-ups, session expiry,
//! rekeying, and the next deadline.
//!
//! A rekey starts when a session that is due seals (an idle session is not kept alive
//! by rekeys: it expires), or when a peer has answered nothing for as long as a
//! handshake may take (it may have restarted and lost the session).
//!
//! Every deadline lives in the state it belongs to. `wake` caches a time no later
//! than the earliest of them: calls that add a deadline lower it ([`Secure::arm_peer`]),
//! [`Secure::handle_timeout`] computes it afresh.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::session::{Due, Peer, Session, give_up_after};
use super::{Config, Secure, Stats};
use crate::transport::TransportAddr;

/// Whether `peer` may start a rekey: its session is confirmed and no handshake with
/// it is under way in either direction.
fn may_rekey(peer: &Peer, responder_pending: bool) -> bool {
    peer.current.as_ref().is_some_and(Session::confirmed)
        && peer.initiation.is_none()
        && peer.next.is_none()
        && !responder_pending
}

/// When a session expires: idle for `session_idle`, or three rekey periods old.
fn expiry(s: &Session, c: &Config) -> Instant {
    (s.last_recv + c.session_idle).min(s.created + c.rekey_after.saturating_mul(3))
}

/// When `peer` next needs `handle_timeout`.
fn peer_deadline(peer: &Peer, responder_pending: bool, c: &Config) -> Option<Instant> {
    let give_up = give_up_after(c.handshake_retry, c.handshake_attempts);
    let mut d = peer.initiation.as_ref().map(|i| i.retry.next);
    let mut at = |t: Instant| d = Some(d.map_or(t, |d: Instant| d.min(t)));
    for s in peer.sessions() {
        at(expiry(s, c));
        if let Some(r) = &s.confirm {
            at(r.next);
        }
    }
    if let (true, Some(s)) = (may_rekey(peer, responder_pending), &peer.current) {
        if let Some(since) = s.unanswered_since {
            at(since + give_up);
        }
    }
    d
}

/// Retries or gives up `peer`'s handshake under way (message 1 to resend goes to
/// `resend`); whether it gave up.
fn poll_initiation(
    peer: &mut Peer,
    t: TransportAddr,
    now: Instant,
    c: &Config,
    indexes: &mut HashMap<u32, TransportAddr>,
    stats: &mut Stats,
    resend: &mut Vec<(TransportAddr, Vec<u8>)>,
) -> bool {
    let Some(init) = &mut peer.initiation else {
        return false;
    };
    match init
        .retry
        .poll(now, c.handshake_retry, c.handshake_attempts)
    {
        Due::Wait => false,
        Due::Resend => {
            resend.push((t, init.msg1.clone()));
            false
        }
        Due::GiveUp => {
            indexes.remove(&init.index);
            peer.initiation = None;
            stats.handshakes_failed += 1;
            true
        }
    }
}

/// Resends message 3 of `peer`'s unconfirmed session (to `resend`), or drops the
/// session when the responder never confirmed it.
fn poll_confirmation(
    peer: &mut Peer,
    t: TransportAddr,
    now: Instant,
    c: &Config,
    indexes: &mut HashMap<u32, TransportAddr>,
    stats: &mut Stats,
    resend: &mut Vec<(TransportAddr, Vec<u8>)>,
) {
    let Some(s) = peer.unconfirmed_mut() else {
        return;
    };
    let mut gave_up = false;
    if let Some(r) = &mut s.confirm {
        match r.poll(now, c.handshake_retry, c.handshake_attempts) {
            Due::Wait => {}
            Due::Resend => {
                s.msg3_sent_at = now;
                resend.push((t, s.msg3.clone()));
            }
            Due::GiveUp => gave_up = true,
        }
    }
    if gave_up {
        // The responder never confirmed: a wrong psk, or a dead path.
        let s = if peer.next.is_some() {
            peer.next.take()
        } else {
            peer.current.take()
        };
        if let Some(s) = s {
            indexes.remove(&s.local);
        }
        stats.handshakes_failed += 1;
    }
}

/// Drops `peer`'s expired sessions; the next session takes the place of a current one
/// that went.
fn expire_sessions(
    peer: &mut Peer,
    now: Instant,
    c: &Config,
    indexes: &mut HashMap<u32, TransportAddr>,
) {
    for slot in [&mut peer.next, &mut peer.current, &mut peer.previous] {
        if slot.as_ref().is_some_and(|s| now >= expiry(s, c)) {
            if let Some(s) = slot.take() {
                indexes.remove(&s.local);
            }
        }
    }
    if peer.current.is_none() {
        if let Some(next) = peer.next.take() {
            peer.current = Some(next);
        }
    }
}

/// Whether `peer` has answered nothing for as long as a handshake may take
/// (`give_up`): it has perhaps restarted, and a handshake must start again, as for a
/// rekey. If so, the silence is forgotten and the next rekey is due a handshake's time
/// later.
fn silent_too_long(peer: &mut Peer, now: Instant, give_up: Duration) -> bool {
    let silent = |s: &&mut Session| s.unanswered_since.is_some_and(|u| now >= u + give_up);
    let Some(s) = peer.current.as_mut().filter(silent) else {
        return false;
    };
    s.rekey_due = now + give_up;
    s.unanswered_since = None;
    true
}

impl Secure {
    /// Runs what is due at `now`: handshake retransmissions and give-ups (queued
    /// plaintext of a transport left without a session is dropped and counted), idle
    /// and old sessions dropped, rekeys started.
    pub fn handle_timeout(&mut self, now: Instant) {
        let c = self.config.clone();
        let give_up = give_up_after(c.handshake_retry, c.handshake_attempts);
        self.expire_responders(now, give_up);
        let Secure {
            peers,
            responders,
            indexes,
            outbox,
            stats,
            queued,
            ..
        } = self;
        let mut resend = Vec::new();
        let mut start = Vec::new();
        for (t, peer) in peers.iter_mut() {
            let initiation_gave_up =
                poll_initiation(peer, *t, now, &c, indexes, stats, &mut resend);
            poll_confirmation(peer, *t, now, &c, indexes, stats, &mut resend);
            expire_sessions(peer, now, &c, indexes);
            let pending = responders.contains_key(t);
            if may_rekey(peer, pending) && silent_too_long(peer, now, give_up) {
                start.push(*t);
            }
            if peer.current.is_none() && peer.initiation.is_none() && !peer.queue.is_empty() {
                if pending {
                    // Waiting for the other side's handshake (we gave way to it).
                } else if peer.next.is_none() && start.last() != Some(t) {
                    // Nothing will carry the queue: a new attempt, or the queue goes.
                    if initiation_gave_up {
                        *queued -= peer.queue.len();
                        stats.queue_dropped += peer.queue.len() as u64;
                        for p in peer.queue.drain(..) {
                            outbox.recycle(p);
                        }
                    } else {
                        start.push(*t);
                    }
                }
            }
        }
        for (t, m) in resend {
            self.transmit(t, m);
        }
        self.peers.retain(|_, p| !p.is_empty());
        for t in start {
            self.start_initiation(now, t);
        }
        self.wake = self.deadline();
    }

    /// Drops the responder handshakes that never got message 3 within `give_up`.
    fn expire_responders(&mut self, now: Instant, give_up: Duration) {
        let expired: Vec<TransportAddr> = self
            .responders
            .iter()
            .filter(|(_, r)| now >= r.started + give_up)
            .map(|(t, _)| *t)
            .collect();
        for t in expired {
            if let Some(r) = self.responders.remove(&t) {
                self.indexes.remove(&r.index);
                self.stats.handshakes_failed += 1;
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wake
    }

    /// The earliest deadline of all (a full pass).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let c = &self.config;
        let give_up = give_up_after(c.handshake_retry, c.handshake_attempts);
        let responders = self.responders.values().map(|r| r.started + give_up);
        let peers = self
            .peers
            .iter()
            .filter_map(|(t, p)| peer_deadline(p, self.responders.contains_key(t), c));
        responders.chain(peers).min()
    }

    /// Starts a rekey with `t` if its session is due and nothing is under way.
    pub(crate) fn rekey_if_due(&mut self, now: Instant, t: TransportAddr) {
        let c = &self.config;
        let give_up = give_up_after(c.handshake_retry, c.handshake_attempts);
        let pending = self.responders.contains_key(&t);
        let Some(peer) = self.peers.get_mut(&t) else {
            return;
        };
        if !may_rekey(peer, pending) {
            return;
        }
        if let Some(s) = peer.current.as_mut().filter(|s| now >= s.rekey_due) {
            // If this attempt fails, the next is tried a handshake's time later.
            s.rekey_due = now + give_up;
            self.start_initiation(now, t);
        }
    }

    /// Lowers `wake` to `at`.
    pub(crate) fn arm(&mut self, at: Instant) {
        self.wake = Some(self.wake.map_or(at, |w| w.min(at)));
    }

    /// Lowers `wake` to the deadlines of `t`'s state.
    pub(crate) fn arm_peer(&mut self, t: TransportAddr) {
        let c = &self.config;
        let pending = self
            .responders
            .get(&t)
            .map(|r| r.started + give_up_after(c.handshake_retry, c.handshake_attempts));
        let peer = self
            .peers
            .get(&t)
            .and_then(|p| peer_deadline(p, pending.is_some(), c));
        for at in [pending, peer].into_iter().flatten() {
            self.arm(at);
        }
    }
}
