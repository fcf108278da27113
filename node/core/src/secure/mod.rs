//! Authenticated, encrypted edges: a sans-IO Noise layer between the driver's sockets
//! and the overlay.
//!
//! Every datagram on an edge (a [`TransportAddr`]) is a handshake message or a sealed
//! transport message (its wire format is in `PROTOCOL.md`, "Secure edges").
//! Plaintext overlay datagrams go in through [`Secure::seal`] and come out of
//! [`Secure::open`]; the overlay never sees ciphertext. The handshake is Noise
//! `XXpsk3_25519_ChaChaPoly_BLAKE2s` ([`PATTERN`]), done by the `snow` crate: both sides
//! learn each other's static key, whose SHA-1 is the peer's P2P address ([`address_of`]),
//! and the overlay's 32-byte admission secret is the psk, so a node without it completes
//! no handshake with a member. A node may hold a few secrets at once
//! ([`Config::accept`]) so that the overlay can rotate its secret while every edge stays
//! up: each handshake agrees on one both sides hold, and [`Secure::set_secrets`] closes
//! the sessions made under a secret the node no longer holds.
//!
//! What it guarantees: plaintext comes out of `open` only if it was sealed by the
//! holder of the static key behind the returned address, who holds the psk, on a
//! session with this node; each datagram is accepted at most once (a replay window
//! per session); and nothing a remote sender does grows memory without bound.
//!
//! Like the rest of the crate it contains no networking code and reads no clock: time
//! comes in as `now`, and the session indexes come from a generator seeded by the
//! caller. The one exception is snow's ephemeral keys, which it draws from the
//! operating system: with the same seed and inputs, the indexes and the sequence of
//! datagrams are the same, but not the ephemeral keys, the ciphertexts, nor the outcome
//! of a simultaneous open's tie-break (which compares ephemeral keys).

mod handshake;
mod identity;
mod outbox;
mod replay;
mod session;
mod timers;
pub(crate) mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

pub use handshake::PATTERN;
pub use identity::{Identity, SIGNATURE_LEN, address_of, verify};
pub use wire::{DATA_OVERHEAD, MAGIC, MAX_DATAGRAM, MAX_PLAINTEXT, MAX_SECRETS, VERSION};

use crate::address::Address;
use crate::transport::TransportAddr;
use handshake::Responder;
use outbox::Outbox;
use session::{OpenError, Peer, Session};

/// Longest duration a configuration may hold (longer ones are shortened to it, so that
/// deadlines never overflow an `Instant`).
/// Handshake durations kept for [`Secure::handshake_times`].
pub const HANDSHAKE_TIMES: usize = 256;
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How handshakes name an admission secret: see [`secret_id`].
pub type SecretId = [u8; wire::SECRET_ID_LEN];

/// The id of an admission secret: the first 4 bytes of SHA-256 over a label and the
/// secret. It tells a node's few secrets apart; it does not reveal them.
pub fn secret_id(secret: &[u8; 32]) -> SecretId {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"wow overlay secret id")
        .chain_update(secret)
        .finalize();
    let mut id = [0u8; wire::SECRET_ID_LEN];
    id.copy_from_slice(&digest[..wire::SECRET_ID_LEN]);
    id
}

/// The secure layer's parameters. There is no `Default`: the psk must be chosen.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The overlay's admission secret (Noise psk). Every member holds the same one; this
    /// node prefers it when the other side holds it too.
    pub psk: [u8; 32],
    /// Further admission secrets this node holds during a rotation (the next one, or the
    /// one being retired): it offers them to initiators and uses them with a node that
    /// does not hold `psk`. At most [`MAX_SECRETS`]` - 1` (more are ignored).
    pub accept: Vec<[u8; 32]>,
    /// Most transports with a session or a handshake of ours under way.
    pub max_sessions: usize,
    /// Most plaintext datagrams queued for one transport while its handshake runs.
    pub max_queued_per_peer: usize,
    /// Most plaintext datagrams queued in all.
    pub max_queued_total: usize,
    /// First handshake retransmission interval; each later one doubles.
    pub handshake_retry: Duration,
    /// Sends of a handshake message before the handshake is given up.
    pub handshake_attempts: u32,
    /// A session that received nothing for this long is dropped.
    pub session_idle: Duration,
    /// The initiator of a session handshakes again when it seals on it after this long
    /// (the responder after 1.5 times as long, if the initiator did not); an idle session
    /// is not rekeyed. A session is dropped after 3 times as long.
    pub rekey_after: Duration,
}

impl Config {
    /// Sensible bounds around `psk`: 1024 sessions, 32 queued datagrams per transport and
    /// 1024 in all, retransmissions after 250 ms doubling for 6 sends (15.75 s in all),
    /// sessions idle for 180 s dropped, rekey every 120 s.
    pub fn new(psk: [u8; 32]) -> Config {
        Config {
            psk,
            accept: Vec::new(),
            max_sessions: 1024,
            max_queued_per_peer: 32,
            max_queued_total: 1024,
            handshake_retry: Duration::from_millis(250),
            handshake_attempts: 6,
            session_idle: Duration::from_secs(180),
            rekey_after: Duration::from_secs(120),
        }
    }

    /// Every secret held, with its id: `psk` first, then `accept` without repeats, at
    /// most [`MAX_SECRETS`].
    pub fn secrets(&self) -> Vec<(SecretId, [u8; 32])> {
        let mut all: Vec<(SecretId, [u8; 32])> = Vec::with_capacity(MAX_SECRETS);
        for s in std::iter::once(&self.psk).chain(&self.accept) {
            let id = secret_id(s);
            if all.len() < MAX_SECRETS && !all.iter().any(|(i, _)| *i == id) {
                all.push((id, *s));
            }
        }
        all
    }

    fn normalized(mut self) -> Config {
        self.max_sessions = self.max_sessions.max(1);
        self.max_queued_total = self.max_queued_total.max(1);
        self.handshake_attempts = self.handshake_attempts.max(1);
        for d in [
            &mut self.handshake_retry,
            &mut self.session_idle,
            &mut self.rekey_after,
        ] {
            *d = (*d).clamp(Duration::from_millis(1), MAX_DURATION);
        }
        self
    }
}

impl fmt::Debug for Config {
    /// Everything but the psk.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("psk", &"<secret>")
            .field("accept", &format_args!("<{} secrets>", self.accept.len()))
            .field("max_sessions", &self.max_sessions)
            .field("max_queued_per_peer", &self.max_queued_per_peer)
            .field("max_queued_total", &self.max_queued_total)
            .field("handshake_retry", &self.handshake_retry)
            .field("handshake_attempts", &self.handshake_attempts)
            .field("session_idle", &self.session_idle)
            .field("rekey_after", &self.rekey_after)
            .finish()
    }
}

/// Counters of what the layer did and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Handshakes this node initiated (message 1 sent).
    pub handshakes_started: u64,
    /// Sessions established, in either role (for an initiator: once confirmed by the
    /// responder's first DATA).
    pub handshakes_completed: u64,
    /// Handshakes that ended without a session: initiations given up, responder states
    /// that expired, were evicted or whose message 3 failed, sessions refused for room.
    pub handshakes_failed: u64,
    /// Handshake messages and DATA that failed authentication (wrong psk, forgery).
    pub bad_psk_or_mac: u64,
    /// Handshakes ended because the two sides hold no admission secret in common (an
    /// outsider with a secret of its own, or a member not yet given the new one).
    pub no_common_secret: u64,
    /// Transports whose sessions were closed because their secret was retired
    /// ([`Secure::set_secrets`]).
    pub retired_sessions: u64,
    /// DATA whose nonce was seen already or is older than the replay window.
    pub replayed: u64,
    /// Datagrams that did not parse.
    pub malformed: u64,
    /// Handshake messages and DATA for no session or handshake of the sender's.
    pub unknown_session: u64,
    /// Plaintext dropped: queue bounds, a handshake given up, a refused or forgotten
    /// transport.
    pub queue_dropped: u64,
    /// Handshakes refused because `max_sessions` transports are busy.
    pub refused: u64,
    /// Idle sessions evicted to make room.
    pub evicted: u64,
    /// Plaintext longer than [`MAX_PLAINTEXT`] (dropped).
    pub too_large: u64,
    /// Datagrams dropped because the driver did not take them with `poll_transmit`.
    pub transmit_dropped: u64,
    /// Sessions established now (a gauge).
    pub sessions: u64,
}

/// What [`Secure::open`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A transport message from the node with this authenticated address; its plaintext
    /// is in the caller's buffer.
    Plain(Address),
    /// A handshake message or a keepalive: handled, nothing to deliver (answers wait in
    /// [`Secure::poll_transmit`]).
    Consumed,
    /// Malformed, unauthentic, replayed, or for no session: dropped and counted.
    Dropped,
}

/// The secure layer of one node: sessions with the transports it talks to.
pub struct Secure {
    config: Config,
    /// `config.secrets()`, kept.
    secrets: Vec<(SecretId, [u8; 32])>,
    identity: Identity,
    params: snow::params::NoiseParams,
    rng: Xoshiro256PlusPlus,
    /// Transports with a session, our handshake, or queued plaintext.
    peers: BTreeMap<TransportAddr, Peer>,
    /// Handshakes other nodes started with us, waiting for message 3 (one per transport).
    responders: BTreeMap<TransportAddr, Responder>,
    /// Our indexes in use (sessions, initiations, responders) and their transports.
    indexes: HashMap<u32, TransportAddr>,
    outbox: Outbox,
    queued: usize,
    stats: Stats,
    /// How long the last [`HANDSHAKE_TIMES`] handshakes this node initiated took, from
    /// message 1 to the responder's confirming DATA.
    handshake_times: VecDeque<Duration>,
    /// No deadline is earlier than this (it may be early: `handle_timeout` then finds
    /// nothing due and computes it again).
    wake: Option<Instant>,
}

impl fmt::Debug for Secure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secure")
            .field("identity", &self.identity)
            .field("peers", &self.peers.len())
            .field("responders", &self.responders.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Secure {
    /// The secure layer of the node with `identity`; `seed` drives the session indexes.
    pub fn new(config: Config, identity: Identity, seed: u64) -> Secure {
        let config = config.normalized();
        let outbox = Outbox::new(config.max_queued_total + 4 * config.max_sessions);
        Secure {
            secrets: config.secrets(),
            config,
            identity,
            params: handshake::params(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            peers: BTreeMap::new(),
            responders: BTreeMap::new(),
            indexes: HashMap::new(),
            outbox,
            queued: 0,
            stats: Stats::default(),
            handshake_times: VecDeque::new(),
            wake: None,
        }
    }

    /// This node's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The ids of the admission secrets this node holds, the preferred one first.
    pub fn secret_ids(&self) -> Vec<SecretId> {
        self.secrets.iter().map(|(id, _)| *id).collect()
    }

    /// Changes the admission secrets (a rotation): `psk` is preferred from now on,
    /// `accept` still held. Sessions made under another secret that is still held rekey
    /// when they next seal, so that they move to `psk` where the peer holds it too.
    /// Sessions made under a secret no longer held are closed at once (with their
    /// transport's queue and handshakes), so that a node that only knows a retired
    /// secret keeps no edge; the next datagram to such a transport handshakes again
    /// under a secret held now. Returns how many transports lost their sessions.
    pub fn set_secrets(&mut self, psk: [u8; 32], accept: Vec<[u8; 32]>) -> usize {
        self.config.psk = psk;
        self.config.accept = accept;
        self.secrets = self.config.secrets();
        let held = self.secret_ids();
        let retired = |s: &Option<Session>| s.as_ref().is_some_and(|s| !held.contains(&s.secret));
        let mut stale = Vec::new();
        for (t, peer) in &mut self.peers {
            if retired(&peer.current) {
                stale.push(*t);
                continue;
            }
            if let Some(s) = peer.current.as_mut().filter(|s| s.secret != held[0]) {
                s.rekey_due = s.created;
            }
            // A rekey's new session, or the replaced one kept for receiving.
            for slot in [&mut peer.next, &mut peer.previous] {
                if retired(slot) {
                    if let Some(s) = slot.take() {
                        self.indexes.remove(&s.local);
                    }
                }
            }
        }
        for t in &stale {
            self.remove_peer(*t);
        }
        self.stats.retired_sessions += stale.len() as u64;
        stale.len()
    }

    /// A datagram received from `from`. Handshake messages are consumed (answers queued
    /// for [`poll_transmit`](Self::poll_transmit)); a transport message is opened: on
    /// success the plaintext is written into `out` (cleared first) and its sender's
    /// authenticated P2P address returned.
    pub fn open(
        &mut self,
        now: Instant,
        from: TransportAddr,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Opened {
        out.clear();
        let Ok(packet) = wire::parse(datagram) else {
            self.stats.malformed += 1;
            return Opened::Dropped;
        };
        let opened = match packet {
            wire::Packet::Handshake1 { sender, noise } => {
                self.handle_msg1(now, from, sender, noise)
            }
            wire::Packet::Handshake2 {
                sender,
                receiver,
                noise,
            } => self.handle_msg2(now, from, sender, receiver, noise),
            wire::Packet::Handshake3 {
                sender,
                receiver,
                secret,
                noise,
            } => self.handle_msg3(now, from, (sender, receiver, secret), noise, datagram),
            wire::Packet::Data {
                receiver,
                nonce,
                ciphertext,
            } => self.handle_data(now, from, receiver, nonce, ciphertext, out),
        };
        self.arm_peer(from);
        opened
    }

    /// Queues `plaintext` for `to`: sealed at once if a session exists, else kept
    /// (bounded; the oldest dropped and counted) while a handshake with `to` runs
    /// (started here if none is). An empty plaintext is a keepalive: the receiver
    /// consumes it.
    pub fn seal(&mut self, now: Instant, to: TransportAddr, plaintext: &[u8]) {
        if plaintext.len() > MAX_PLAINTEXT {
            self.stats.too_large += 1;
            return;
        }
        if !self.peers.contains_key(&to) && !self.make_room(to) {
            self.stats.refused += 1;
            self.stats.queue_dropped += 1;
            return;
        }
        let peer = self.peers.entry(to).or_insert_with(|| Peer::new(now));
        peer.last_used = now;
        if peer.current.is_some() {
            if !self.send(now, to, plaintext) {
                self.stats.queue_dropped += 1;
            }
            self.rekey_if_due(now, to);
        } else {
            self.enqueue(to, plaintext);
            if self.peers.get(&to).is_some_and(|p| p.initiation.is_none()) {
                self.start_initiation(now, to);
            }
        }
        self.arm_peer(to);
    }

    /// The next datagram to put on the wire, swapped into `buf` (whose allocation is
    /// kept for reuse).
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<TransportAddr> {
        self.outbox.pop(buf)
    }

    /// The authenticated address behind `t`, once a session with it is established (for
    /// an initiator: confirmed by the responder's first DATA, which proves the psk).
    pub fn peer(&self, t: TransportAddr) -> Option<Address> {
        let s = self.peers.get(&t)?.current.as_ref()?;
        s.confirmed().then_some(s.address)
    }

    /// The admission secret the current session with `t` was made under.
    pub fn session_secret(&self, t: TransportAddr) -> Option<SecretId> {
        Some(self.peers.get(&t)?.current.as_ref()?.secret)
    }

    /// The driver lost the transport (a TCP stream closed): its sessions, handshakes and
    /// queued plaintext go.
    pub fn forget(&mut self, t: TransportAddr) {
        if let Some(r) = self.responders.remove(&t) {
            self.indexes.remove(&r.index);
        }
        self.remove_peer(t);
    }

    /// How long the last (at most [`HANDSHAKE_TIMES`]) handshakes this node initiated
    /// took, first and rekeys alike: from message 1 (retransmissions included) to the
    /// responder's first DATA, oldest first.
    pub fn handshake_times(&self) -> impl Iterator<Item = Duration> + '_ {
        self.handshake_times.iter().copied()
    }

    /// Counters, and the number of sessions.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.sessions = self
            .peers
            .values()
            .filter(|p| p.current.as_ref().is_some_and(Session::confirmed))
            .count() as u64;
        s
    }

    /// DATA for our session `receiver`.
    fn handle_data(
        &mut self,
        now: Instant,
        from: TransportAddr,
        receiver: u32,
        nonce: u64,
        ciphertext: &[u8],
        out: &mut Vec<u8>,
    ) -> Opened {
        let peer = match (self.indexes.get(&receiver), self.peers.get_mut(&from)) {
            (Some(t), Some(peer)) if *t == from => peer,
            _ => {
                self.stats.unknown_session += 1;
                return Opened::Dropped;
            }
        };
        let is = |s: &Option<Session>| s.as_ref().is_some_and(|s| s.local == receiver);
        let (in_next, in_current) = (is(&peer.next), is(&peer.current));
        let slot = if in_next {
            &mut peer.next
        } else if in_current {
            &mut peer.current
        } else {
            &mut peer.previous
        };
        let Some(session) = slot.as_mut().filter(|s| s.local == receiver) else {
            self.stats.unknown_session += 1;
            return Opened::Dropped;
        };
        match session.open(now, nonce, ciphertext, out) {
            Ok(()) => {}
            Err(OpenError::Replayed) => {
                self.stats.replayed += 1;
                return Opened::Dropped;
            }
            Err(OpenError::Mac) => {
                self.stats.bad_psk_or_mac += 1;
                return Opened::Dropped;
            }
        }
        let address = session.address;
        if !session.confirmed() {
            // The responder's first DATA: it holds the psk and the session's keys.
            session.confirm = None;
            self.stats.handshakes_completed += 1;
            if let Some(started) = session.handshake_started.take() {
                if self.handshake_times.len() == HANDSHAKE_TIMES {
                    self.handshake_times.pop_front();
                }
                self.handshake_times
                    .push_back(now.saturating_duration_since(started));
            }
        }
        if in_next {
            if let Some(next) = peer.next.take() {
                handshake::install(peer, &mut self.indexes, next);
            }
        }
        peer.last_used = now;
        if out.is_empty() {
            Opened::Consumed
        } else {
            Opened::Plain(address)
        }
    }

    /// Seals `plaintext` on `to`'s current session and queues it; while a session of
    /// ours waits for confirmation its message 3 goes first (once per instant), so a lost
    /// message 3 cannot leave the responder without the session.
    fn send(&mut self, now: Instant, to: TransportAddr, plaintext: &[u8]) -> bool {
        let Some(peer) = self.peers.get_mut(&to) else {
            return false;
        };
        let mut msg3 = None;
        if let Some(s) = peer.unconfirmed_mut() {
            if s.msg3_sent_at != now {
                s.msg3_sent_at = now;
                let mut b = self.outbox.buffer();
                b.extend_from_slice(&s.msg3);
                msg3 = Some(b);
            }
        }
        let Some(session) = peer.current.as_mut() else {
            return false;
        };
        let mut buf = self.outbox.buffer();
        let sealed = session.seal(now, plaintext, &mut buf);
        if let Some(m) = msg3 {
            self.transmit(to, m);
        }
        if sealed {
            self.transmit(to, buf);
        } else {
            self.outbox.recycle(buf);
        }
        sealed
    }

    /// Seals everything queued for `to` on its current session; returns how many.
    fn flush(&mut self, now: Instant, to: TransportAddr) -> usize {
        let mut sent = 0;
        while let Some(p) = self.peers.get_mut(&to).and_then(|p| p.queue.pop_front()) {
            self.queued -= 1;
            if self.send(now, to, &p) {
                sent += 1;
            } else {
                self.stats.queue_dropped += 1;
            }
            self.outbox.recycle(p);
        }
        sent
    }

    /// Keeps `plaintext` for `to` (which has a [`Peer`]) within the queue bounds.
    fn enqueue(&mut self, to: TransportAddr, plaintext: &[u8]) {
        let (per_peer, total) = (
            self.config.max_queued_per_peer,
            self.config.max_queued_total,
        );
        let mut buf = self.outbox.buffer();
        buf.extend_from_slice(plaintext);
        let Some(peer) = self.peers.get_mut(&to) else {
            return;
        };
        while peer.queue.len() >= per_peer.max(1) || self.queued >= total && !peer.queue.is_empty()
        {
            if let Some(old) = peer.queue.pop_front() {
                self.queued -= 1;
                self.stats.queue_dropped += 1;
                self.outbox.recycle(old);
            }
        }
        if self.queued >= total || per_peer == 0 {
            self.stats.queue_dropped += 1;
            self.outbox.recycle(buf);
            return;
        }
        peer.queue.push_back(buf);
        self.queued += 1;
    }

    /// Queues a datagram for the wire.
    fn transmit(&mut self, to: TransportAddr, buf: Vec<u8>) {
        if self.outbox.push(to, buf) {
            self.stats.transmit_dropped += 1;
        }
    }

    /// An index no session or handshake of ours uses.
    fn fresh_index(&mut self) -> u32 {
        loop {
            let i = self.rng.next_u32();
            if !self.indexes.contains_key(&i) {
                return i;
            }
        }
    }

    /// Whether a new transport could be admitted (without evicting anything yet: an
    /// unauthenticated message 1 must not cost a member its session).
    fn has_room(&self) -> bool {
        self.peers.len() < self.config.max_sessions || self.peers.values().any(Peer::is_idle)
    }

    /// Makes room for `t`, evicting the least recently used idle peer if the table is
    /// full; false if there is none.
    fn make_room(&mut self, t: TransportAddr) -> bool {
        if self.peers.len() < self.config.max_sessions {
            return true;
        }
        let victim = self
            .peers
            .iter()
            .filter(|(k, p)| **k != t && p.is_idle())
            .min_by_key(|(_, p)| p.last_used)
            .map(|(k, _)| *k);
        match victim {
            Some(v) => {
                self.remove_peer(v);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }

    /// Removes `t`'s sessions, handshake and queue.
    fn remove_peer(&mut self, t: TransportAddr) {
        let Some(peer) = self.peers.remove(&t) else {
            return;
        };
        for i in peer.indexes() {
            self.indexes.remove(&i);
        }
        self.queued -= peer.queue.len();
        self.stats.queue_dropped += peer.queue.len() as u64;
    }

    /// Most responder handshakes waiting for message 3 at once.
    fn max_responders(&self) -> usize {
        (self.config.max_sessions / 4).max(1)
    }

    /// Drops the oldest waiting responder handshake (a flood of message 1 from spoofed
    /// transports only ever replaces its own states).
    fn evict_oldest_responder(&mut self, now: Instant) {
        let oldest = self
            .responders
            .iter()
            .min_by_key(|(_, r)| r.started)
            .map(|(t, _)| *t);
        if let Some(r) = oldest.and_then(|t| self.responders.remove(&t)) {
            self.indexes.remove(&r.index);
            self.stats.handshakes_failed += 1;
            // A peer whose initiation gave way to that handshake starts again.
            self.arm(now);
        }
    }

    /// A responder's rekey time: later than the initiator's, which normally rekeys.
    fn responder_rekey(&self) -> Duration {
        self.config.rekey_after.saturating_mul(3) / 2
    }
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod test_net;
#[cfg(test)]
mod tests;
