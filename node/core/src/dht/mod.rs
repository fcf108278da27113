//! A replicated soft-state DHT on the overlay (the WOW DHCP paper, section 4).
//!
//! API: [`Dht::create`], [`Dht::delete`], [`Dht::recreate`], [`Dht::get`]. Each
//! application key is re-mapped to `n` sub-keys (`SHA-1(key ‖ i)`, default 5) around the
//! ring; each sub-key is stored on the two nodes immediately left and right of it. An
//! operation succeeds when a majority (default 3) of its sub-keys succeed, and a get
//! returns the value the majority agrees on. Values are soft state and vanish at their
//! TTL unless recreated; the password never leaves this node: writes carry a proof by an
//! owner key derived from it, and replicas keep only that key's public half. Records
//! are self-certifying: each carries its owner's signature of the write that made it,
//! checked by every replica that takes a copy and every reader that gets a value.
//!
//! Writes go to the node nearest a sub-key, which decides and copies the record (with a
//! revision) to the other replica. Reads ask both replicas. When the ring changes,
//! replicas copy records to their new partner and hand off records they are no longer
//! responsible for, so keys follow joins, leaves and crashes. A node starts operations
//! only once it is correctly connected. Like the overlay, this is a sans-IO state
//! machine: it sends through the [`Node`] it is given and reports results through
//! [`Dht::poll_result`].

mod client;
mod clock;
mod config;
mod owner;
mod replica;
mod store;
pub mod wire;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use crate::address::Address;
use crate::overlay::Node;
use crate::wire::{Mode, RoutedHeader};
use client::Operation;
pub use clock::WallClock;
pub use config::{Config, ConfigError, MAX_SUB_KEYS};
use store::{Limits, Store};
use wire::{MAX_KEY, MAX_PASSWORD, MAX_VALUE, Op, RecordRepr, Reply, Request};

/// What a replica holds for one sub-key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    /// The sub-key address.
    pub sub_key: Address,
    /// The application key.
    pub key: Vec<u8>,
    /// Which sub-key of it.
    pub sub: u8,
    /// Revision.
    pub rev: u64,
    /// Deleted (kept until its TTL so that stale copies cannot come back).
    pub deleted: bool,
    /// Time left to live.
    pub ttl_left: Duration,
    /// Length of the value.
    pub value_len: usize,
}

/// Identifies an operation; results carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A successful operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The key was created.
    Created,
    /// The key was deleted.
    Deleted,
    /// The key was replaced.
    Recreated,
    /// The live values of the key (empty if none).
    Values(Vec<Vec<u8>>),
}

/// Why an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// Create: the key exists.
    #[error("the key exists")]
    KeyExists,
    /// Delete: the key does not exist.
    #[error("the key does not exist")]
    NotFound,
    /// Delete/recreate: wrong password.
    #[error("wrong password")]
    BadPassword,
    /// The replicas refuse more entries from this node.
    #[error("the replicas hold too many entries from this node")]
    Quota,
    /// The replicas hold a later write of the key (a higher serial): this node's
    /// clock is behind the last writer's.
    #[error("the replicas hold a later write (is this node's clock behind?)")]
    Stale,
    /// Too few sub-keys answered alike.
    #[error("no majority of sub-keys agreed")]
    NoMajority,
    /// The node was not correctly connected within the start timeout.
    #[error("the node did not become correctly connected in time")]
    NotConnected,
    /// The key is longer than 255 bytes.
    #[error("key longer than {MAX_KEY} bytes")]
    KeyTooLong,
    /// The value is longer than 1024 bytes.
    #[error("value longer than {MAX_VALUE} bytes")]
    ValueTooLong,
    /// A password is longer than 64 bytes.
    #[error("password longer than {MAX_PASSWORD} bytes")]
    PasswordTooLong,
}

/// The DHT layer of one node (client and replica).
#[derive(Debug)]
pub struct Dht {
    config: Config,
    rng: Xoshiro256PlusPlus,
    store: Store,
    ops: Vec<Operation>,
    results: VecDeque<(RequestId, Result<Outcome, DhtError>)>,
    next_id: u64,
    next_tick: Instant,
    next_resync: Instant,
    last_view: (Option<Address>, Option<Address>),
    clock: WallClock,
    /// The serial of this node's last write.
    last_serial: u64,
    refused_replicas: u64,
    unverified: u64,
    forged: u64,
    misplaced: u64,
}

/// The address of sub-key `i` of `key`.
pub fn sub_key(key: &[u8], i: u8) -> Address {
    let mut data = Vec::with_capacity(key.len() + 1);
    data.extend_from_slice(key);
    data.push(i);
    Address::sha1(&data)
}

impl Dht {
    /// A DHT layer; `seed` drives its random choices (operation ids), `clock` is the
    /// wall clock that dates its writes and ages the records it holds.
    ///
    /// # Panics
    ///
    /// If `config` is invalid (see [`Config::validate`], which callers that take
    /// parameters from users check first, to report the error).
    pub fn new(config: Config, seed: u64, now: Instant, clock: WallClock) -> Self {
        if let Err(e) = config.validate() {
            panic!("invalid dht::Config: {e}");
        }
        Dht {
            next_resync: now + config.resync,
            config,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            store: Store::default(),
            ops: Vec::new(),
            results: VecDeque::new(),
            next_id: 1,
            next_tick: now,
            last_view: (None, None),
            clock,
            last_serial: 0,
            refused_replicas: 0,
            unverified: 0,
            forged: 0,
            misplaced: 0,
        }
    }

    /// Inserts `value` under `key` for `ttl` if the key does not exist.
    pub fn create(
        &mut self,
        now: Instant,
        node: &mut Node,
        key: &[u8],
        password: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<RequestId, DhtError> {
        self.start(now, node, Op::Create, key, password, b"", value, ttl)
    }

    /// Deletes `key` given its password.
    pub fn delete(
        &mut self,
        now: Instant,
        node: &mut Node,
        key: &[u8],
        password: &[u8],
    ) -> Result<RequestId, DhtError> {
        self.start(
            now,
            node,
            Op::Delete,
            key,
            password,
            b"",
            b"",
            Duration::ZERO,
        )
    }

    /// Deletes `key` (given `old_password`, if it exists) and creates it with
    /// `new_password`, `value` and `ttl`, atomically at each replica.
    #[allow(clippy::too_many_arguments)]
    pub fn recreate(
        &mut self,
        now: Instant,
        node: &mut Node,
        key: &[u8],
        old_password: &[u8],
        new_password: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<RequestId, DhtError> {
        self.start(
            now,
            node,
            Op::Recreate,
            key,
            old_password,
            new_password,
            value,
            ttl,
        )
    }

    /// All live values of `key`.
    pub fn get(
        &mut self,
        now: Instant,
        node: &mut Node,
        key: &[u8],
    ) -> Result<RequestId, DhtError> {
        self.start(now, node, Op::Get, key, b"", b"", b"", Duration::ZERO)
    }

    /// The next finished operation.
    pub fn poll_result(&mut self) -> Option<(RequestId, Result<Outcome, DhtError>)> {
        self.results.pop_front()
    }

    /// Copied records refused: for a sub-key this node is not responsible for, under a
    /// sub-key their key does not map to, giving a live record another owner from a
    /// node that is no ring neighbour without the owner's handover, or forged (also
    /// counted in [`Dht::forged`]).
    pub fn refused_replicas(&self) -> u64 {
        self.refused_replicas
    }

    /// Requests and replies dropped because their source was not verified (on a
    /// secure overlay: neither signed nor received straight from their source).
    pub fn unverified(&self) -> u64 {
        self.unverified
    }

    /// Records dropped because their owner's certificate does not certify them (a
    /// forged or altered value, owner or deletion): copies from other replicas, and
    /// answers to this node's reads.
    pub fn forged(&self) -> u64 {
        self.forged
    }

    /// Replies to this node's operations dropped because their sender is too far from
    /// the sub-key on the ring to be one of its replicas (see [`client::REPLICA_GAPS`]):
    /// a node on the request's path that answered in its own name.
    pub fn misplaced(&self) -> u64 {
        self.misplaced
    }

    /// Records this node holds as a replica.
    pub fn stored_records(&self) -> usize {
        self.store.len()
    }

    /// The records this node holds as a replica (for status output and diagnosis).
    pub fn records(&self, now: Instant) -> Vec<RecordInfo> {
        self.store
            .keys()
            .into_iter()
            .filter_map(|k| {
                let r = self.store.get(&k)?;
                Some(RecordInfo {
                    sub_key: k,
                    key: r.key.clone(),
                    sub: r.sub,
                    rev: r.rev,
                    deleted: r.tombstone,
                    ttl_left: r.expires.saturating_duration_since(now),
                    value_len: r.value.len(),
                })
            })
            .collect()
    }

    /// Whether operations wait for the node to become correctly connected.
    pub fn has_waiting(&self) -> bool {
        self.ops.iter().any(|o| !o.started)
    }

    /// When [`Dht::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let grace = self.config.read_grace;
        let ops = self.ops.iter().filter_map(|o| o.next_deadline(grace));
        Some(ops.fold(self.next_tick, Instant::min))
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        now: Instant,
        node: &mut Node,
        op: Op,
        key: &[u8],
        password: &[u8],
        new_password: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Result<RequestId, DhtError> {
        if key.len() > MAX_KEY {
            return Err(DhtError::KeyTooLong);
        }
        if value.len() > MAX_VALUE {
            return Err(DhtError::ValueTooLong);
        }
        if password.len() > MAX_PASSWORD || new_password.len() > MAX_PASSWORD {
            return Err(DhtError::PasswordTooLong);
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let subs = (0..=u8::MAX)
            .take(self.config.sub_keys)
            .map(|i| sub_key(key, i))
            .collect();
        let ttl_s = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX);
        let op_id = self.rng.next_u64();
        let serial = if op == Op::Get {
            0
        } else {
            self.next_serial(now)
        };
        let deadline = now + self.config.start_timeout;
        self.ops.push(Operation::new(
            id,
            op,
            op_id,
            key,
            subs,
            password,
            new_password,
            value,
            ttl_s,
            serial,
            now,
            deadline,
        ));
        self.drive(now, node);
        Ok(id)
    }

    /// Handles a routed message for the DHT; returns false if it was not one.
    /// `src_trusted`: the header's `src` is as sure as the overlay can make it — the
    /// message is signed by `src`'s key or came straight from `src` over a secure edge,
    /// or the overlay has no secure edges (then nothing is verified). Requests and
    /// replies from an untrusted source are dropped (counted in [`Dht::unverified`]):
    /// nobody can answer a lookup in another node's name, or send a request whose
    /// answers go to another node. A copy that would hand a live record to another
    /// owner is taken only from a trusted ring neighbour.
    pub fn handle_delivery(
        &mut self,
        now: Instant,
        node: &mut Node,
        header: &RoutedHeader,
        payload: &[u8],
        src_trusted: bool,
    ) -> bool {
        if !src_trusted && matches!(header.kind, wire::REQUEST | wire::REPLY) {
            self.unverified += 1;
            return true;
        }
        match header.kind {
            wire::REQUEST => {
                if let Ok(req) = Request::parse(payload) {
                    self.serve(now, node, header, &req);
                }
            }
            wire::REPLY => {
                if let Ok(reply) = Reply::parse(payload) {
                    if let Some(op) = self.ops.iter_mut().find(|o| o.op_id == reply.op_id) {
                        let size = node.network_size_estimate();
                        let placed = op
                            .subs
                            .get(usize::from(reply.sub))
                            .is_none_or(|s| client::near_enough(header.src, s.addr, size));
                        if !placed {
                            self.misplaced += 1;
                        } else if !op.on_reply(now, header.src, &reply) {
                            self.forged += 1;
                        }
                    }
                    self.drive(now, node);
                }
            }
            wire::REPLICATE => {
                if let Ok(rec) = RecordRepr::parse(payload) {
                    self.accept_replica(now, node, header, &rec, src_trusted);
                }
            }
            _ => return false,
        }
        true
    }

    /// Runs retransmissions, completes operations, expires records, and moves records
    /// when the ring changed.
    pub fn handle_timeout(&mut self, now: Instant, node: &mut Node) {
        self.drive(now, node);
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + self.config.tick;
        let unix_now = self.clock.unix_ms(now);
        self.store.purge(now, unix_now, &self.limits());
        if node.is_correctly_connected() {
            self.migrate(now, node);
        }
    }

    /// The serial of a new write: the wall clock, kept strictly increasing.
    fn next_serial(&mut self, now: Instant) -> u64 {
        self.last_serial = self.clock.unix_ms(now).max(self.last_serial + 1);
        self.last_serial
    }

    fn limits(&self) -> Limits {
        Limits {
            per_peer: self.config.max_records_per_peer,
            total: self.config.max_records,
            max_ttl: self.config.max_ttl,
        }
    }

    /// Sends what is due for every operation and reports those that finished.
    fn drive(&mut self, now: Instant, node: &mut Node) {
        let correct = node.is_correctly_connected();
        let mut i = 0;
        while i < self.ops.len() {
            let op = &mut self.ops[i];
            if !op.started {
                if correct {
                    op.started = true;
                } else if now >= op.start_deadline {
                    let op = self.ops.swap_remove(i);
                    self.results.push_back((op.id, Err(DhtError::NotConnected)));
                    continue;
                } else {
                    i += 1;
                    continue;
                }
            }
            let mut send: Vec<usize> = op.due(now, self.config.attempts, self.config.read_grace);
            if op.lock_refused().is_none() {
                send.extend(op.releasable().collect::<Vec<_>>());
            }
            for s in send {
                let sub = &mut self.ops[i].subs[s];
                sub.sent = true;
                sub.attempts += 1;
                sub.next_send = now + self.config.request_timeout;
                self.send_request(now, node, i, s);
            }
            let op = &mut self.ops[i];
            if !op.reported && op.is_done(self.config.majority) {
                op.reported = true;
                let (result, rollback) = op.outcome(self.config.majority);
                let op = op.clone();
                for s in rollback {
                    self.send_rollback(now, node, &op, s);
                }
                self.results.push_back((op.id, result));
            }
            let op = &self.ops[i];
            let finished = op.is_finished() || op.lock_refused().is_some();
            if op.reported && (finished || op.op == Op::Get) {
                self.ops.swap_remove(i);
                continue;
            }
            i += 1;
        }
    }

    fn send_request(&self, now: Instant, node: &mut Node, op: usize, sub: usize) {
        let o = &self.ops[op];
        let req = Request {
            op: o.op,
            op_id: o.op_id,
            sub: sub as u8,
            key: &o.key,
            proof: &o.proof,
            new_owner: &o.new_owner,
            value: &o.value,
            ttl_s: o.ttl_s,
            serial: o.serial,
        };
        // Reads ask both replicas; writes go to the one nearest the sub-key.
        let mode = if o.op == Op::Get {
            Mode::Pair
        } else {
            Mode::Nearest
        };
        send(now, node, o.subs[sub].addr, mode, wire::REQUEST, |b| {
            req.emit(b)
        });
    }

    fn send_rollback(&mut self, now: Instant, node: &mut Node, op: &Operation, sub: usize) {
        let Some(owner) = &op.owner else {
            return; // reads are never rolled back
        };
        let mut req = Request {
            op: Op::Delete,
            op_id: self.rng.next_u64(),
            sub: sub as u8,
            key: &op.key,
            proof: &[],
            new_owner: b"",
            value: b"",
            ttl_s: 0,
            serial: self.next_serial(now),
        };
        let proof = owner.prove(&req);
        req.proof = &proof;
        send(
            now,
            node,
            op.subs[sub].addr,
            Mode::Nearest,
            wire::REQUEST,
            |b| req.emit(b),
        );
    }
}

/// Sends a DHT message built by `emit` (drops it if the node cannot route it; the
/// requester's retransmissions and the replicas' resyncs cover losses).
fn send(
    now: Instant,
    node: &mut Node,
    dst: Address,
    mode: Mode,
    kind: u8,
    emit: impl FnOnce(&mut [u8]) -> Result<usize, crate::wire::Error>,
) {
    let mut buf = [0u8; wire::MAX_MESSAGE];
    if let Ok(n) = emit(&mut buf) {
        let _ = node.send_routed(now, dst, mode, kind, &buf[..n]);
    }
}

#[cfg(test)]
mod tests;
