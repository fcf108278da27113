//! The records one node holds as a replica: soft state with a TTL, the certificate of
//! the write that made each (with the owner key that proves writes: the password never
//! reaches a replica, see `owner`), whose serial orders writes, and per-peer quotas (each
//! record counts against the peer the caller names: see `replica::quota_holder` for
//! which one that is).
//!
//! A write that a later one replaced stays valid, signed by its owner, until its own
//! end (`serial + ttl_s`); while the record that replaced it lives, its serial refuses a
//! replay of the older write. So that a record gone before the writes it replaced does
//! not let them be replayed, each record remembers the latest end of the writes it
//! replaced (`guard_until_ms`), and when it expires sooner a [`Guard`] keeps its serial
//! until then.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::owner::{OWNER_LEN, PROOF_LEN, proven_owner};
use super::wire::{Cert, MAX_REV, Op, RecordRepr, Request, Status};
use crate::address::Address;

/// One replica's copy of one sub-key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: Vec<u8>,
    pub(crate) sub: u8,
    pub(crate) rev: u64,
    pub(crate) tombstone: bool,
    /// The write that made it, as its owner signed it.
    pub(crate) cert: Cert,
    pub(crate) creator: Address,
    /// The peer whose quota the record counts against.
    charged: Address,
    pub(crate) expires: Instant,
    pub(crate) value: Vec<u8>,
    /// The partner this record was last copied to.
    pub(crate) pushed_to: Option<Address>,
    /// The latest end (Unix ms) of the writes this record replaced: until then a replay
    /// of one of them must still find a later serial here.
    guard_until_ms: u64,
}

/// What is left of an expired record while a write it replaced could still be
/// replayed: its serial, which a write must exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Guard {
    serial: u64,
    /// The end of the writes it guards against (Unix ms), and when that is here.
    until_ms: u64,
    expires: Instant,
}

/// When a write signed at `serial` with `ttl_s` ends, in Unix ms.
fn write_end_ms(cert: &Cert) -> u64 {
    cert.serial.saturating_add(u64::from(cert.ttl_s) * 1000)
}

impl Record {
    /// Whether `req` carries a valid proof by this record's owner.
    fn proven_by_owner(&self, req: &Request<'_>) -> bool {
        proven_owner(req) == Some(self.cert.owner)
    }

    /// Whether this record and a copy owned by `owner` have the same owner (were made
    /// with the same password).
    pub(crate) fn same_owner(&self, owner: &[u8; OWNER_LEN]) -> bool {
        self.cert.owner == *owner
    }

    pub(crate) fn live(&self, now: Instant) -> bool {
        !self.tombstone && self.expires > now
    }

    pub(crate) fn repr(&self, sub_key: Address, now: Instant) -> RecordRepr<'_> {
        RecordRepr {
            sub_key,
            sub: self.sub,
            key: &self.key,
            rev: self.rev,
            tombstone: self.tombstone,
            creator: self.creator,
            cert: self.cert,
            ttl_left_ms: u32::try_from(self.expires.saturating_duration_since(now).as_millis())
                .unwrap_or(u32::MAX),
            value: &self.value,
        }
    }

    /// Time left to live, in whole seconds.
    pub(crate) fn ttl_left_s(&self, now: Instant) -> u32 {
        u32::try_from(self.expires.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX)
    }
}

/// When a record with `ttl` to live expires: `now + ttl`, or `now` (at once) where that
/// is past what an [`Instant`] can hold, so a TTL from the network cannot panic the node.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl).unwrap_or(now)
}

/// How long a write signed at `serial` (Unix milliseconds) with `ttl_s` may still live
/// when this replica's wall clock reads `unix_now_ms`: until `serial + ttl_s`, and never
/// longer than `ttl_s` (a writer whose clock is ahead gets no more than it asked for).
pub(crate) fn time_left(serial: u64, ttl_s: u32, unix_now_ms: u64) -> Duration {
    let ttl_ms = u64::from(ttl_s) * 1000;
    Duration::from_millis(
        serial
            .saturating_add(ttl_ms)
            .saturating_sub(unix_now_ms)
            .min(ttl_ms),
    )
}

/// The owner a create or a recreate (`req`) gives the record, `live` being the live
/// record held and `repeat` whether `req` is a retransmission of the write that made
/// it; or the answer to send instead of writing.
fn written_owner(
    req: &Request<'_>,
    live: Option<&Record>,
    repeat: bool,
) -> Result<[u8; OWNER_LEN], Status> {
    if req.op == Op::Create {
        return match live {
            Some(_) if repeat => Err(Status::Ok),
            Some(_) => Err(Status::Exists),
            None => proven_owner(req).ok_or(Status::BadPassword),
        };
    }
    match live {
        Some(_) if repeat => Err(Status::Ok),
        Some(r) if !r.proven_by_owner(req) => Err(Status::BadPassword),
        // Delete (of the live value, or of nothing) then create, for the new owner (a
        // proof is still needed when there was nothing to delete).
        _ => match <[u8; OWNER_LEN]>::try_from(req.new_owner) {
            Ok(owner) if live.is_some() || proven_owner(req).is_some() => Ok(owner),
            _ => Err(Status::BadPassword),
        },
    }
}

/// Limits on what a replica accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) per_peer: usize,
    pub(crate) total: usize,
    pub(crate) max_ttl: Duration,
}

/// The records of one node, by sub-key (a `BTreeMap`, so iteration is deterministic).
#[derive(Debug, Default)]
pub(crate) struct Store {
    records: BTreeMap<Address, Record>,
    per_peer: BTreeMap<Address, usize>,
    /// Sub-keys whose record expired while a write it replaced was still valid (at most
    /// as many as the records limit; the one that ends first gives way).
    guards: BTreeMap<Address, Guard>,
}

impl Store {
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn get(&self, sub_key: &Address) -> Option<&Record> {
        self.records.get(sub_key)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&Address, &mut Record)> {
        self.records.iter_mut()
    }

    pub(crate) fn keys(&self) -> Vec<Address> {
        self.records.keys().copied().collect()
    }

    pub(crate) fn remove(&mut self, sub_key: &Address) -> Option<Record> {
        let rec = self.records.remove(sub_key)?;
        self.uncharge(rec.charged);
        Some(rec)
    }

    fn uncharge(&mut self, peer: Address) {
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }

    /// Stores `rec` for `sub_key`; what it replaces (a record, or a guard) passes on
    /// the ends of the writes replaced.
    fn insert(&mut self, sub_key: Address, mut rec: Record) {
        let charged = rec.charged;
        if let Some(g) = self.guards.remove(&sub_key) {
            rec.guard_until_ms = rec.guard_until_ms.max(g.until_ms);
        }
        if let Some(old) = self.records.get(&sub_key) {
            rec.guard_until_ms = rec
                .guard_until_ms
                .max(old.guard_until_ms)
                .max(write_end_ms(&old.cert));
        }
        if let Some(old) = self.records.insert(sub_key, rec) {
            self.uncharge(old.charged);
        }
        *self.per_peer.entry(charged).or_default() += 1;
    }

    /// The serial a write for `sub_key` must exceed: the held record's (live or
    /// tombstone), or its guard's.
    fn floor(&self, sub_key: &Address) -> Option<u64> {
        self.records
            .get(sub_key)
            .map(|r| r.cert.serial)
            .or_else(|| self.guards.get(sub_key).map(|g| g.serial))
    }

    /// Whether a record for `sub_key` from `peer` fits: a replacement always does, a new
    /// one within the total and per-peer limits.
    fn has_room(&self, sub_key: &Address, peer: Address, limits: &Limits) -> bool {
        if self.records.contains_key(sub_key) {
            return true;
        }
        self.records.len() < limits.total
            && self.per_peer.get(&peer).copied().unwrap_or(0) < limits.per_peer
    }

    /// Records counted against `peer`.
    #[cfg(test)]
    fn charged_to(&self, peer: Address) -> usize {
        self.per_peer.get(&peer).copied().unwrap_or(0)
    }

    /// Drops expired records (tombstones included) and guards; a record that goes
    /// while a write it replaced is still valid (the wall clock reads `unix_now_ms`)
    /// leaves a guard until that write's end.
    pub(crate) fn purge(&mut self, now: Instant, unix_now_ms: u64, limits: &Limits) {
        self.guards.retain(|_, g| g.expires > now);
        let expired: Vec<Address> = self
            .records
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            let Some(rec) = self.remove(&k) else {
                continue;
            };
            let left = rec.guard_until_ms.saturating_sub(unix_now_ms);
            if left == 0 {
                continue;
            }
            if self.guards.len() >= limits.total {
                let first = self.guards.iter().min_by_key(|(_, g)| g.expires);
                if let Some(first) = first.map(|(k, _)| *k) {
                    self.guards.remove(&first);
                }
            }
            let guard = Guard {
                serial: rec.cert.serial,
                until_ms: rec.guard_until_ms,
                expires: expiry(now, Duration::from_millis(left).min(limits.max_ttl)),
            };
            self.guards.insert(k, guard);
        }
    }

    /// Applies a write request from `requester` as the deciding replica (whose wall
    /// clock reads `unix_now_ms`), charging a new record to `charged`'s quota. A write
    /// that would take the record's revision past [`MAX_REV`] is refused with `Quota`;
    /// one whose serial is not above the held record's, or that expired on the way,
    /// with `Stale`.
    #[allow(clippy::too_many_arguments)] // each is a distinct input of the decision
    pub(crate) fn apply(
        &mut self,
        now: Instant,
        unix_now_ms: u64,
        sub_key: Address,
        requester: Address,
        charged: Address,
        req: &Request<'_>,
        limits: &Limits,
    ) -> Status {
        let existing = self.records.get(&sub_key);
        let live = existing.filter(|r| r.live(now));
        // A retransmission of a request already applied gets the same answer.
        let repeat = existing.is_some_and(|r| r.cert.op_id == req.op_id && r.creator == requester);
        // A replayed write is not later than the one held (deleted or not), or than
        // the one that expired before a write it replaced.
        let stale = self.floor(&sub_key).is_some_and(|f| req.serial <= f);
        let ttl = time_left(req.serial, req.ttl_s, unix_now_ms).min(limits.max_ttl);
        let Ok(proof) = <[u8; PROOF_LEN]>::try_from(req.proof) else {
            return if req.op == Op::Get {
                Status::Ok
            } else {
                Status::BadPassword
            };
        };
        let next_rev = existing
            .map_or(Some(1), |r| r.rev.checked_add(1))
            .filter(|rev| *rev <= MAX_REV);
        let owner = match req.op {
            Op::Get => return Status::Ok,
            Op::Delete => match live {
                None if repeat => return Status::Ok,
                None => return Status::NotFound,
                Some(r) if !r.proven_by_owner(req) => return Status::BadPassword,
                Some(_) if stale => return Status::Stale,
                Some(_) => return self.tombstone(&sub_key, next_rev, req, proof),
            },
            Op::Create | Op::Recreate => match written_owner(req, live, repeat) {
                Ok(owner) => owner,
                Err(answer) => return answer,
            },
        };
        if stale || (req.ttl_s > 0 && ttl.is_zero()) {
            return Status::Stale;
        }
        let creator = if req.op == Op::Recreate {
            live.map_or(requester, |r| r.creator)
        } else {
            requester
        };
        let Some(next_rev) = next_rev else {
            return Status::Quota;
        };
        if !self.has_room(&sub_key, charged, limits) {
            return Status::Quota;
        }
        self.insert(
            sub_key,
            Record {
                key: req.key.to_vec(),
                sub: req.sub,
                rev: next_rev,
                tombstone: false,
                cert: Cert {
                    owner,
                    write: req.op,
                    op_id: req.op_id,
                    serial: req.serial,
                    ttl_s: req.ttl_s,
                    proof,
                },
                creator,
                charged,
                expires: expiry(now, ttl),
                value: req.value.to_vec(),
                pushed_to: None,
                guard_until_ms: 0,
            },
        );
        Status::Ok
    }

    /// Deletes the live record at `sub_key` for `req` (already checked): it becomes a
    /// tombstone of revision `next_rev`, or the delete is refused with `Quota` if there
    /// is none.
    fn tombstone(
        &mut self,
        sub_key: &Address,
        next_rev: Option<u64>,
        req: &Request<'_>,
        proof: [u8; PROOF_LEN],
    ) -> Status {
        let Some(next_rev) = next_rev else {
            return Status::Quota;
        };
        if let Some(rec) = self.records.get_mut(sub_key) {
            // The tombstone lives as long as the record would have.
            rec.guard_until_ms = rec.guard_until_ms.max(write_end_ms(&rec.cert));
            rec.tombstone = true;
            rec.rev = next_rev;
            rec.value.clear();
            rec.cert = Cert {
                write: Op::Delete,
                op_id: req.op_id,
                serial: req.serial,
                ttl_s: req.ttl_s,
                proof,
                ..rec.cert
            };
            rec.pushed_to = None;
        }
        Status::Ok
    }

    /// Merges a record that a replica copied here: the later write (higher serial)
    /// wins, and the record counts against `sender`'s quota. A live record lives no
    /// longer than its certificate allows on this replica's wall clock (`unix_now_ms`).
    /// Returns whether the local copy changed. (The caller checks the certificate and
    /// that `sender` may send it.)
    pub(crate) fn merge(
        &mut self,
        now: Instant,
        unix_now_ms: u64,
        rec: &RecordRepr<'_>,
        sender: Address,
        limits: &Limits,
    ) -> bool {
        if self
            .floor(&rec.sub_key)
            .is_some_and(|f| f >= rec.cert.serial)
        {
            return false;
        }
        let mut ttl = Duration::from_millis(u64::from(rec.ttl_left_ms)).min(limits.max_ttl);
        if !rec.tombstone {
            ttl = ttl.min(time_left(rec.cert.serial, rec.cert.ttl_s, unix_now_ms));
        }
        if ttl.is_zero() || !self.has_room(&rec.sub_key, sender, limits) {
            return false;
        }
        self.insert(
            rec.sub_key,
            Record {
                key: rec.key.to_vec(),
                sub: rec.sub,
                rev: rec.rev,
                tombstone: rec.tombstone,
                cert: rec.cert,
                creator: rec.creator,
                charged: sender,
                expires: expiry(now, ttl),
                value: rec.value.to_vec(),
                pushed_to: None,
                guard_until_ms: 0,
            },
        );
        true
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
