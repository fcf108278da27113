//! Established sessions, the per-transport state that holds them, and retransmission
//! schedules.
//!
//! A transport has at most three sessions: `current` (sealing uses it), `next` (an
//! initiator's new session waiting for the responder's first DATA while `current` keeps
//! the traffic going: a rekey), and `previous` (receive-only, so that datagrams sealed
//! on a replaced session and still in flight are not lost).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use snow::StatelessTransportState;

use super::SecretId;
use super::handshake::Initiation;
use super::replay::ReplayWindow;
use super::wire::{self, TAG_LEN};
use crate::address::Address;

/// A retransmission schedule: the first send now, the next after `base`, doubling,
/// `attempts` sends in all, then giving up after the last interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    sent: u32,
    /// When to send again (or give up).
    pub(crate) next: Instant,
}

/// What a due [`Retry`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Not yet.
    Wait,
    /// Send again.
    Resend,
    /// Every attempt went unanswered.
    GiveUp,
}

impl Retry {
    /// A schedule whose first send happens now.
    pub(crate) fn start(now: Instant, base: Duration) -> Self {
        Retry {
            sent: 1,
            next: now + base,
        }
    }

    /// Advances the schedule if its time has come.
    pub(crate) fn poll(&mut self, now: Instant, base: Duration, attempts: u32) -> Due {
        if now < self.next {
            Due::Wait
        } else if self.sent >= attempts {
            Due::GiveUp
        } else {
            self.sent += 1;
            self.next = now + backoff(base, self.sent);
            Due::Resend
        }
    }
}

/// The interval after the `sent`-th send: `base · 2^(sent - 1)`.
fn backoff(base: Duration, sent: u32) -> Duration {
    base.saturating_mul(1 << sent.saturating_sub(1).min(16))
}

/// How long a handshake may take before it is given up: the sum of its intervals.
pub(crate) fn give_up_after(base: Duration, attempts: u32) -> Duration {
    (1..=attempts.max(1)).fold(Duration::ZERO, |sum, sent| {
        sum.saturating_add(backoff(base, sent))
    })
}

/// Why a DATA datagram was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Its nonce was seen already or is too old for the window.
    Replayed,
    /// Authentication failed.
    Mac,
}

/// One established Noise session.
#[derive(Debug)]
pub(crate) struct Session {
    /// Our index: the `receiver_index` of DATA sent to us.
    pub(crate) local: u32,
    /// The peer's index, written on our DATA.
    pub(crate) remote: u32,
    /// The peer's P2P address (SHA-1 of its static key).
    pub(crate) address: Address,
    /// The peer's static public key.
    pub(crate) remote_static: [u8; 32],
    /// Whether we initiated the handshake.
    pub(crate) initiator: bool,
    /// The admission secret the handshake mixed in.
    pub(crate) secret: SecretId,
    state: StatelessTransportState,
    send_nonce: u64,
    window: ReplayWindow,
    pub(crate) created: Instant,
    pub(crate) last_recv: Instant,
    /// The first send since the last receive: a peer that answers nothing for long is
    /// handshaken with again (it may have restarted).
    pub(crate) unanswered_since: Option<Instant>,
    /// When to start a rekey (pushed back while one runs).
    pub(crate) rekey_due: Instant,
    /// The HANDSHAKE3 datagram: an initiator re-sends it until confirmed; a responder
    /// recognises its duplicates by it.
    pub(crate) msg3: Vec<u8>,
    /// The initiator's schedule for re-sending `msg3`, while unconfirmed.
    pub(crate) confirm: Option<Retry>,
    /// When `msg3` (initiator) or an answer to a duplicate of it (responder) last went out.
    pub(crate) msg3_sent_at: Instant,
    /// An initiator's: when its message 1 first went out (until the session is
    /// confirmed, which ends the handshake's timing).
    pub(crate) handshake_started: Option<Instant>,
}

/// The parts of a session that come out of a finished handshake.
#[derive(Debug)]
pub(crate) struct Keys {
    pub(crate) state: StatelessTransportState,
    pub(crate) remote_static: [u8; 32],
    pub(crate) local: u32,
    pub(crate) remote: u32,
    pub(crate) initiator: bool,
    pub(crate) secret: SecretId,
}

impl Session {
    /// A session established at `now`; `rekey_after` is this side's rekey time (the
    /// responder's is later, so that the initiator's normally comes first).
    pub(crate) fn new(now: Instant, keys: Keys, msg3: Vec<u8>, rekey_after: Duration) -> Self {
        Session {
            local: keys.local,
            remote: keys.remote,
            address: super::address_of(&keys.remote_static),
            remote_static: keys.remote_static,
            initiator: keys.initiator,
            secret: keys.secret,
            state: keys.state,
            send_nonce: 0,
            window: ReplayWindow::default(),
            created: now,
            last_recv: now,
            unanswered_since: None,
            rekey_due: now + rekey_after,
            msg3,
            confirm: None,
            msg3_sent_at: now,
            handshake_started: None,
        }
    }

    /// Whether the peer proved it holds the keys (always, for a responder).
    pub(crate) fn confirmed(&self) -> bool {
        self.confirm.is_none()
    }

    /// Seals `plaintext` into a DATA datagram in `buf` (cleared first). False only if
    /// the nonces ran out (2^64 - 1 messages), which a rekey long precedes.
    pub(crate) fn seal(&mut self, now: Instant, plaintext: &[u8], buf: &mut Vec<u8>) -> bool {
        let nonce = self.send_nonce;
        if nonce == u64::MAX {
            return false;
        }
        wire::data_header(buf, self.remote, nonce);
        let start = buf.len();
        buf.resize(start + plaintext.len() + TAG_LEN, 0);
        match self
            .state
            .write_message(nonce, plaintext, &mut buf[start..])
        {
            Ok(n) => {
                buf.truncate(start + n);
                self.send_nonce += 1;
                self.unanswered_since.get_or_insert(now);
                true
            }
            Err(_) => false,
        }
    }

    /// Opens the ciphertext of a DATA datagram into `out`.
    pub(crate) fn open(
        &mut self,
        now: Instant,
        nonce: u64,
        ciphertext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), OpenError> {
        if !self.window.check(nonce) {
            return Err(OpenError::Replayed);
        }
        out.clear();
        out.resize(ciphertext.len().saturating_sub(TAG_LEN), 0);
        match self.state.read_message(nonce, ciphertext, out) {
            Ok(n) => {
                out.truncate(n);
                self.window.insert(nonce);
                self.last_recv = now;
                self.unanswered_since = None;
                Ok(())
            }
            Err(_) => {
                out.clear();
                Err(OpenError::Mac)
            }
        }
    }
}

/// Everything known about one transport that has, or is getting, a session.
#[derive(Debug)]
pub(crate) struct Peer {
    /// The session that seals.
    pub(crate) current: Option<Session>,
    /// Our initiator session that waits for confirmation while `current` seals.
    pub(crate) next: Option<Session>,
    /// A replaced session, kept for receiving.
    pub(crate) previous: Option<Session>,
    /// Our handshake under way, if any.
    pub(crate) initiation: Option<Initiation>,
    /// Plaintext waiting for a session.
    pub(crate) queue: VecDeque<Vec<u8>>,
    /// The ephemeral key of a msg1 we chose not to answer (we won a simultaneous open,
    /// or answered the other side first): its retransmissions are ignored.
    pub(crate) ignored_msg1: Option<[u8; 32]>,
    /// Last seal or open: the least recently used idle peer is evicted first.
    pub(crate) last_used: Instant,
}

impl Peer {
    pub(crate) fn new(now: Instant) -> Self {
        Peer {
            current: None,
            next: None,
            previous: None,
            initiation: None,
            queue: VecDeque::new(),
            ignored_msg1: None,
            last_used: now,
        }
    }

    /// The sessions, newest first.
    pub(crate) fn sessions(&self) -> impl Iterator<Item = &Session> {
        [&self.next, &self.current, &self.previous]
            .into_iter()
            .flatten()
    }

    /// Whether nothing is left: the peer can be removed.
    pub(crate) fn is_empty(&self) -> bool {
        self.current.is_none()
            && self.next.is_none()
            && self.previous.is_none()
            && self.initiation.is_none()
            && self.queue.is_empty()
    }

    /// Whether the peer may be evicted to make room: an established, confirmed session
    /// with no handshake under way and nothing queued.
    pub(crate) fn is_idle(&self) -> bool {
        self.current.as_ref().is_some_and(Session::confirmed)
            && self.next.is_none()
            && self.initiation.is_none()
            && self.queue.is_empty()
    }

    /// The unconfirmed initiator session, if any (`next`, or an unconfirmed `current`).
    pub(crate) fn unconfirmed_mut(&mut self) -> Option<&mut Session> {
        if self.next.is_some() {
            self.next.as_mut()
        } else {
            self.current.as_mut().filter(|s| !s.confirmed())
        }
    }

    /// The local indexes this peer holds.
    pub(crate) fn indexes(&self) -> impl Iterator<Item = u32> + '_ {
        self.sessions()
            .map(|s| s.local)
            .chain(self.initiation.as_ref().map(|i| i.index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_and_give_up_after_the_last_interval() {
        let t0 = Instant::now();
        let base = Duration::from_millis(250);
        let mut r = Retry::start(t0, base);
        let mut sends = vec![Duration::ZERO];
        let now = loop {
            let now = r.next;
            match r.poll(now, base, 6) {
                Due::Resend => sends.push(now - t0),
                Due::GiveUp => break now,
                Due::Wait => unreachable!(),
            }
        };
        let ms: Vec<u128> = sends.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 250, 750, 1750, 3750, 7750]);
        assert_eq!(now - t0, give_up_after(base, 6));
        assert_eq!(give_up_after(base, 6), Duration::from_millis(15_750));
        assert_eq!(r.poll(t0, base, 6), Due::Wait);
    }
}
