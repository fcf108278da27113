//! The Noise `XXpsk3` handshake: our initiations, the responder states that answer
//! other nodes' message 1, and what [`Secure`] does with each handshake message.
//!
//! ```text
//! initiator                                   responder
//!   HANDSHAKE1 (i_idx, -> e)              ──▶   DH: e·(new e); answer, keep msg2
//!   ◀──  HANDSHAKE2 (r_idx, i_idx, <- e, ee, s, es, {secret ids})
//!   HANDSHAKE3 (i_idx, r_idx, id, -> s, se, psk)  ──▶   session (psk proven)
//!   DATA ... (until the responder's first DATA, HANDSHAKE3 goes again with sends)
//!   ◀──  DATA (the first one confirms the session to the initiator)
//! ```
//!
//! The psk is chosen per handshake, so that an overlay can change its admission secret
//! without a moment in which members cannot link: message 2's payload (encrypted to
//! the initiator) lists the ids of the secrets the responder holds, the initiator takes
//! the first of its own (its preferred first) that is offered and names it in message
//! 3's header, and both mix that one in. A node that holds none of the offered secrets
//! ends the handshake (`no_common_secret`).

use std::time::Instant;

use snow::params::NoiseParams;
use snow::{Builder, HandshakeState};

use super::session::{Keys, Peer, Retry, Session};
use super::wire::{MAX_SECRETS, NOISE1_LEN, NOISE2_MAX, NOISE3_LEN, Packet, SECRET_ID_LEN};
use super::{Identity, Opened, SecretId, Secure};
use crate::transport::TransportAddr;

/// The Noise protocol name: X25519, ChaCha20-Poly1305, BLAKE2s, with the admission
/// secret mixed in at the end of message 3.
pub const PATTERN: &str = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s";

/// The psk's position in the pattern (`psk3`).
const PSK_LOCATION: u8 = 3;

/// Room for a handshake payload (message 2's secret ids; the others are empty).
const PAYLOAD_ROOM: usize = 64;

/// The handshake parameters for `PATTERN`.
pub(crate) fn params() -> NoiseParams {
    // A constant that parses: `noise_pattern_parses` tests it.
    PATTERN.parse().expect("a valid Noise protocol name")
}

fn builder<'a>(
    params: &NoiseParams,
    identity: &'a Identity,
    psk: &'a [u8; 32],
) -> Result<Builder<'a>, snow::Error> {
    Builder::new(params.clone())
        .local_private_key(&identity.private)?
        .psk(PSK_LOCATION, psk)
}

fn keys(
    state: HandshakeState,
    (local, remote): (u32, u32),
    initiator: bool,
    secret: SecretId,
) -> Result<Keys, snow::Error> {
    let mut remote_static = [0u8; 32];
    match state.get_remote_static() {
        Some(rs) if rs.len() == 32 => remote_static.copy_from_slice(rs),
        _ => return Err(snow::Error::Input),
    }
    Ok(Keys {
        state: state.into_stateless_transport_mode()?,
        remote_static,
        local,
        remote,
        initiator,
        secret,
    })
}

/// Why an initiator could not answer a message 2.
#[derive(Debug)]
pub(crate) enum AnswerError {
    /// Not authentic (or not for this handshake): the handshake goes on.
    Noise,
    /// Authentic, but the responder holds none of our secrets: the handshake is over.
    NoCommonSecret,
}

fn ephemeral(noise1: &[u8]) -> [u8; 32] {
    let mut e = [0u8; 32];
    e.copy_from_slice(&noise1[..32]);
    e
}

/// Our handshake with a transport, waiting for message 2.
#[derive(Debug)]
pub(crate) struct Initiation {
    /// Our index (`sender_index` of message 1).
    pub(crate) index: u32,
    state: HandshakeState,
    /// Our ephemeral public key: the simultaneous-open tie-break compares it.
    pub(crate) ephemeral: [u8; 32],
    /// The HANDSHAKE1 datagram, re-sent unchanged.
    pub(crate) msg1: Vec<u8>,
    pub(crate) retry: Retry,
    /// When message 1 first went out.
    pub(crate) started: Instant,
}

impl Initiation {
    pub(crate) fn start(
        s: &Secure,
        now: Instant,
        index: u32,
        msg1: Vec<u8>,
    ) -> Result<Self, snow::Error> {
        let mut msg1 = msg1;
        let mut state = builder(&s.params, &s.identity, &s.config.psk)?.build_initiator()?;
        let mut noise = [0u8; NOISE1_LEN];
        if state.write_message(&[], &mut noise)? != NOISE1_LEN {
            return Err(snow::Error::Input);
        }
        Packet::Handshake1 {
            sender: index,
            noise: &noise,
        }
        .emit(&mut msg1)
        .map_err(|_| snow::Error::Input)?;
        Ok(Initiation {
            index,
            state,
            ephemeral: ephemeral(&noise),
            msg1,
            retry: Retry::start(now, s.config.handshake_retry),
            started: now,
        })
    }

    /// Reads message 2, chooses the first of `ours` (id and secret, preferred first)
    /// that the responder offers, and writes message 3 with it. A message that fails
    /// leaves the handshake as it was (snow restores its state), so a forgery cannot
    /// end it.
    fn answer(
        &mut self,
        noise2: &[u8],
        ours: &[(SecretId, [u8; 32])],
    ) -> Result<([u8; NOISE3_LEN], SecretId), AnswerError> {
        let mut payload = [0u8; PAYLOAD_ROOM];
        let n = self
            .state
            .read_message(noise2, &mut payload)
            .map_err(|_| AnswerError::Noise)?;
        // The payload's length follows from the datagram's, which the parser checked.
        let offered = payload[..n.min(MAX_SECRETS * SECRET_ID_LEN)].chunks_exact(SECRET_ID_LEN);
        let Some((id, secret)) = ours
            .iter()
            .find(|(id, _)| offered.clone().any(|o| o == id.as_slice()))
        else {
            return Err(AnswerError::NoCommonSecret);
        };
        let mut noise3 = [0u8; NOISE3_LEN];
        let written = self
            .state
            .set_psk(usize::from(PSK_LOCATION), secret)
            .and_then(|()| self.state.write_message(&[], &mut noise3));
        match written {
            Ok(NOISE3_LEN) => Ok((noise3, *id)),
            _ => Err(AnswerError::Noise),
        }
    }
}

/// A responder's handshake: message 1 read, message 2 sent, waiting for message 3.
#[derive(Debug)]
pub(crate) struct Responder {
    /// Our index (`sender_index` of message 2).
    pub(crate) index: u32,
    /// The initiator's index.
    pub(crate) remote: u32,
    /// The initiator's ephemeral key: a message 1 with the same one is a retransmission.
    pub(crate) ephemeral: [u8; 32],
    state: HandshakeState,
    /// The HANDSHAKE2 datagram, re-sent when message 1 comes again.
    pub(crate) msg2: Vec<u8>,
    pub(crate) started: Instant,
}

impl Responder {
    /// Reads message 1 and writes message 2 (the X25519 work an unauthenticated
    /// message 1 costs: one key generation and two DH).
    fn accept(
        s: &Secure,
        now: Instant,
        index: u32,
        remote: u32,
        noise1: &[u8],
    ) -> Result<Self, snow::Error> {
        let mut state = builder(&s.params, &s.identity, &s.config.psk)?.build_responder()?;
        let mut payload = [0u8; PAYLOAD_ROOM];
        state.read_message(noise1, &mut payload)?;
        let offer: Vec<u8> = s.secrets.iter().flat_map(|(id, _)| *id).collect();
        let mut noise2 = [0u8; NOISE2_MAX];
        let n = state.write_message(&offer, &mut noise2)?;
        let mut msg2 = Vec::with_capacity(12 + n);
        Packet::Handshake2 {
            sender: index,
            receiver: remote,
            noise: &noise2[..n],
        }
        .emit(&mut msg2)
        .map_err(|_| snow::Error::Input)?;
        Ok(Responder {
            index,
            remote,
            ephemeral: ephemeral(noise1),
            state,
            msg2,
            started: now,
        })
    }

    /// Reads message 3 under the secret it names (`id`, `secret`): the initiator's
    /// static key, and proof that it holds the psk. It consumes the state: after a
    /// failed read snow's cipher key is not restored (its checkpoint covers the hash
    /// state only), so a failed message 3 ends the handshake; the initiator finds out
    /// when it stays unconfirmed.
    fn finish(
        mut self,
        noise3: &[u8],
        (id, secret): (SecretId, &[u8; 32]),
    ) -> Result<Keys, snow::Error> {
        let mut payload = [0u8; PAYLOAD_ROOM];
        self.state.set_psk(usize::from(PSK_LOCATION), secret)?;
        self.state.read_message(noise3, &mut payload)?;
        keys(self.state, (self.index, self.remote), false, id)
    }
}

impl Secure {
    /// Starts a handshake with `to` (which must have a [`Peer`]).
    pub(crate) fn start_initiation(&mut self, now: Instant, to: TransportAddr) {
        let index = self.fresh_index();
        let buf = self.outbox.buffer();
        let init = match Initiation::start(self, now, index, buf) {
            Ok(init) => init,
            Err(_) => {
                self.stats.handshakes_failed += 1;
                return;
            }
        };
        let Some(peer) = self.peers.get_mut(&to) else {
            return;
        };
        if let Some(old) = peer.initiation.replace(init) {
            self.indexes.remove(&old.index);
        }
        self.indexes.insert(index, to);
        self.stats.handshakes_started += 1;
        let msg1 = peer.initiation.as_ref().map(|i| i.msg1.clone());
        if let Some(msg1) = msg1 {
            self.transmit(to, msg1);
        }
        self.arm_peer(to);
    }

    /// HANDSHAKE1 from `from`.
    pub(crate) fn handle_msg1(
        &mut self,
        now: Instant,
        from: TransportAddr,
        sender: u32,
        noise: &[u8],
    ) -> Opened {
        let e = ephemeral(noise);
        if let Some(r) = self.responders.get(&from) {
            if r.ephemeral == e && r.remote == sender {
                // A retransmission: our message 2 was lost. Same answer, no new state.
                let msg2 = r.msg2.clone();
                self.transmit(from, msg2);
                return Opened::Consumed;
            }
        }
        if let Some(peer) = self.peers.get_mut(&from) {
            if peer.ignored_msg1 == Some(e) {
                return Opened::Consumed;
            }
            // Simultaneous open: the smaller ephemeral key stays initiator (equal ones
            // are our own message 1 reflected back).
            if peer.initiation.as_ref().is_some_and(|i| i.ephemeral <= e) {
                peer.ignored_msg1 = Some(e);
                return Opened::Consumed;
            }
        } else if !self.has_room() {
            self.stats.refused += 1;
            return Opened::Dropped;
        }
        if !self.responders.contains_key(&from) && self.responders.len() >= self.max_responders() {
            self.evict_oldest_responder(now);
        }
        let index = self.fresh_index();
        let r = match Responder::accept(self, now, index, sender, noise) {
            Ok(r) => r,
            Err(_) => {
                self.stats.bad_psk_or_mac += 1;
                return Opened::Dropped;
            }
        };
        // We lost the tie-break: our attempt gives way (its queue waits for this
        // handshake, or for a new attempt if this one fails).
        if let Some(peer) = self.peers.get_mut(&from) {
            if let Some(init) = peer.initiation.take() {
                self.indexes.remove(&init.index);
                self.outbox.recycle(init.msg1);
            }
        }
        let msg2 = r.msg2.clone();
        if let Some(old) = self.responders.insert(from, r) {
            self.indexes.remove(&old.index);
        }
        self.indexes.insert(index, from);
        self.transmit(from, msg2);
        Opened::Consumed
    }

    /// HANDSHAKE2 from `from`.
    pub(crate) fn handle_msg2(
        &mut self,
        now: Instant,
        from: TransportAddr,
        sender: u32,
        receiver: u32,
        noise: &[u8],
    ) -> Opened {
        let Some(peer) = self.peers.get_mut(&from) else {
            self.stats.unknown_session += 1;
            return Opened::Dropped;
        };
        let Some(init) = peer.initiation.as_mut().filter(|i| i.index == receiver) else {
            return self.repeat_msg3(now, from, sender, receiver);
        };
        let (noise3, secret) = match init.answer(noise, &self.secrets) {
            Ok(answer) => answer,
            Err(AnswerError::Noise) => {
                self.stats.bad_psk_or_mac += 1;
                return Opened::Dropped;
            }
            Err(AnswerError::NoCommonSecret) => {
                // Nothing we could send would be admitted: what waits for it goes.
                self.remove_peer(from);
                self.stats.no_common_secret += 1;
                self.stats.handshakes_failed += 1;
                return Opened::Dropped;
            }
        };
        let Some(init) = peer.initiation.take() else {
            return Opened::Dropped;
        };
        let (index, started) = (init.index, init.started);
        let mut msg3 = init.msg1;
        msg3.clear();
        let emitted = Packet::Handshake3 {
            sender: index,
            receiver: sender,
            secret,
            noise: &noise3,
        }
        .emit(&mut msg3);
        let keys = match (emitted, keys(init.state, (index, sender), true, secret)) {
            (Ok(()), Ok(k)) => k,
            _ => {
                self.indexes.remove(&index);
                self.stats.handshakes_failed += 1;
                self.arm(now);
                return Opened::Dropped;
            }
        };
        let mut session = Session::new(now, keys, msg3.clone(), self.config.rekey_after);
        session.confirm = Some(Retry::start(now, self.config.handshake_retry));
        session.handshake_started = Some(started);
        self.install_initiated(now, from, session);
        self.transmit(from, msg3);
        self.flush(now, from);
        Opened::Consumed
    }

    /// A message 2 that answers no handshake under way: if it repeats the one that
    /// made the unconfirmed session with `from` (the responder saw our message 1 twice),
    /// our message 3 may be lost too, so it goes again.
    fn repeat_msg3(
        &mut self,
        now: Instant,
        from: TransportAddr,
        sender: u32,
        receiver: u32,
    ) -> Opened {
        let unconfirmed = self.peers.get_mut(&from).and_then(Peer::unconfirmed_mut);
        if let Some(s) = unconfirmed {
            if s.local == receiver && s.remote == sender {
                s.msg3_sent_at = now;
                let msg3 = s.msg3.clone();
                self.transmit(from, msg3);
                return Opened::Consumed;
            }
        }
        self.stats.unknown_session += 1;
        Opened::Dropped
    }

    /// Installs the session our handshake with `from` made: it seals at once, or, for a
    /// rekey, once confirmed.
    fn install_initiated(&mut self, now: Instant, from: TransportAddr, session: Session) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        // We answered the other side's message 1 too (it came while we waited): that
        // handshake is moot now; its retransmissions are ignored.
        if let Some(r) = self.responders.remove(&from) {
            self.indexes.remove(&r.index);
            peer.ignored_msg1 = Some(r.ephemeral);
        }
        if peer.current.as_ref().is_some_and(Session::confirmed) {
            // A rekey: `current` keeps sealing until the new session is confirmed.
            if let Some(old) = peer.next.replace(session) {
                self.indexes.remove(&old.local);
            }
        } else if let Some(old) = peer.current.replace(session) {
            self.indexes.remove(&old.local);
        }
        peer.last_used = now;
    }

    /// HANDSHAKE3 from `from`; `datagram` is the whole message (duplicates are
    /// recognised by it).
    pub(crate) fn handle_msg3(
        &mut self,
        now: Instant,
        from: TransportAddr,
        (sender, receiver, secret): (u32, u32, SecretId),
        noise: &[u8],
        datagram: &[u8],
    ) -> Opened {
        let pending = self
            .responders
            .get(&from)
            .is_some_and(|r| r.index == receiver && r.remote == sender);
        if !pending {
            return self.duplicate_msg3(now, from, receiver, datagram);
        }
        let Some(r) = self.responders.remove(&from) else {
            return Opened::Dropped;
        };
        let index = r.index;
        let Some((_, psk)) = self.secrets.iter().find(|(id, _)| *id == secret) else {
            // Not one we offered, or retired since: the handshake is over.
            self.indexes.remove(&index);
            self.stats.no_common_secret += 1;
            self.stats.handshakes_failed += 1;
            self.arm(now);
            return Opened::Dropped;
        };
        let keys = match r.finish(noise, (secret, psk)) {
            Ok(k) => k,
            Err(_) => {
                // Wrong psk (an outsider), or a forgery: the handshake is over.
                self.indexes.remove(&index);
                self.stats.bad_psk_or_mac += 1;
                self.stats.handshakes_failed += 1;
                self.arm(now);
                return Opened::Dropped;
            }
        };
        if !self.peers.contains_key(&from) && !self.make_room(from) {
            self.indexes.remove(&index);
            self.stats.refused += 1;
            self.stats.handshakes_failed += 1;
            return Opened::Dropped;
        }
        let mut session = Session::new(now, keys, datagram.to_vec(), self.responder_rekey());
        session.msg3_sent_at = now;
        let peer = self.peers.entry(from).or_insert_with(|| Peer::new(now));
        // Our own attempt, if any, is moot: the other side completed its handshake.
        if let Some(init) = peer.initiation.take() {
            self.indexes.remove(&init.index);
        }
        if let Some(next) = peer.next.take() {
            self.indexes.remove(&next.local);
        }
        install(peer, &mut self.indexes, session);
        peer.last_used = now;
        self.stats.handshakes_completed += 1;
        // The first DATA confirms the session to the initiator: queued plaintext, or
        // an empty keepalive.
        if self.flush(now, from) == 0 {
            self.send(now, from, &[]);
        }
        Opened::Consumed
    }

    /// A HANDSHAKE3 that matches no pending responder: a retransmission of the message
    /// that established a session is answered by an empty DATA (at most every half
    /// `handshake_retry`), since the initiator has not seen our confirmation yet.
    fn duplicate_msg3(
        &mut self,
        now: Instant,
        from: TransportAddr,
        receiver: u32,
        datagram: &[u8],
    ) -> Opened {
        let half = self.config.handshake_retry / 2;
        let Some(peer) = self.peers.get_mut(&from) else {
            self.stats.unknown_session += 1;
            return Opened::Dropped;
        };
        let Some(s) = peer
            .current
            .as_mut()
            .filter(|s| s.local == receiver && !s.initiator && s.msg3 == datagram)
        else {
            self.stats.unknown_session += 1;
            return Opened::Dropped;
        };
        if now >= s.msg3_sent_at + half {
            s.msg3_sent_at = now;
            self.send(now, from, &[]);
        }
        Opened::Consumed
    }
}

/// Makes `new` the peer's current session. The one it replaces is kept for receiving
/// (datagrams sealed on it may still be in flight) if it belongs to the same node; a
/// session with another node (the peer restarted with a new identity) is dropped.
pub(crate) fn install(
    peer: &mut Peer,
    indexes: &mut std::collections::HashMap<u32, TransportAddr>,
    new: Session,
) {
    let static_key = new.remote_static;
    if let Some(old) = peer.current.replace(new) {
        if old.remote_static == static_key {
            if let Some(older) = peer.previous.replace(old) {
                indexes.remove(&older.local);
            }
        } else {
            indexes.remove(&old.local);
            if let Some(older) = peer.previous.take() {
                indexes.remove(&older.local);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn noise_pattern_parses() {
        let p = super::params();
        assert_eq!(p.name, super::PATTERN);
    }
}
