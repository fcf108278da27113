//! The records one node holds as a replica: soft state with a TTL, a salted password
//! hash (never the password), a revision that orders writes, and per-peer quotas (each
//! record counts against the peer the caller names: see `replica::quota_holder` for
//! which one that is).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng;
use sha2::{Digest, Sha256};

use super::wire::{MAX_REV, Op, RecordRepr, Request, Status};
use crate::address::Address;

/// One replica's copy of one sub-key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: Vec<u8>,
    pub(crate) sub: u8,
    pub(crate) rev: u64,
    pub(crate) tombstone: bool,
    salt: [u8; 16],
    hash: [u8; 32],
    pub(crate) creator: Address,
    /// The peer whose quota the record counts against.
    charged: Address,
    op_id: u64,
    pub(crate) expires: Instant,
    pub(crate) value: Vec<u8>,
    /// The partner this record was last copied to.
    pub(crate) pushed_to: Option<Address>,
}

fn password_hash(salt: &[u8; 16], password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password);
    h.finalize().into()
}

impl Record {
    fn password_matches(&self, password: &[u8]) -> bool {
        password_hash(&self.salt, password) == self.hash
    }

    /// Whether this record and a copy with `salt` and `hash` have the same owner (were
    /// made with the same password).
    pub(crate) fn same_owner(&self, salt: &[u8; 16], hash: &[u8; 32]) -> bool {
        (&self.salt, &self.hash) == (salt, hash)
    }

    fn live(&self, now: Instant) -> bool {
        !self.tombstone && self.expires > now
    }

    pub(crate) fn repr(&self, sub_key: Address, now: Instant) -> RecordRepr<'_> {
        RecordRepr {
            sub_key,
            sub: self.sub,
            key: &self.key,
            rev: self.rev,
            tombstone: self.tombstone,
            salt: self.salt,
            hash: self.hash,
            creator: self.creator,
            op_id: self.op_id,
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

    fn insert(&mut self, sub_key: Address, rec: Record) {
        let charged = rec.charged;
        if let Some(old) = self.records.insert(sub_key, rec) {
            self.uncharge(old.charged);
        }
        *self.per_peer.entry(charged).or_default() += 1;
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

    /// Drops expired records (tombstones included).
    pub(crate) fn purge(&mut self, now: Instant) {
        let expired: Vec<Address> = self
            .records
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            self.remove(&k);
        }
    }

    /// Applies a write request from `requester` as the deciding replica, charging a new
    /// record to `charged`'s quota. A write that would take the record's revision past
    /// [`MAX_REV`] is refused with `Quota`.
    #[allow(clippy::too_many_arguments)] // each is a distinct input of the decision
    pub(crate) fn apply<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        sub_key: Address,
        requester: Address,
        charged: Address,
        req: &Request<'_>,
        limits: &Limits,
        rng: &mut R,
    ) -> Status {
        let existing = self.records.get(&sub_key);
        let live = existing.filter(|r| r.live(now));
        // A retransmission of a request already applied gets the same answer.
        let repeat = existing.is_some_and(|r| r.op_id == req.op_id && r.creator == requester);
        let ttl = Duration::from_secs(u64::from(req.ttl_s)).min(limits.max_ttl);
        let next_rev = existing
            .map_or(Some(1), |r| r.rev.checked_add(1))
            .filter(|rev| *rev <= MAX_REV);
        let (password, status) = match req.op {
            Op::Get => return Status::Ok,
            Op::Create => match live {
                Some(_) if repeat => return Status::Ok,
                Some(_) => return Status::Exists,
                None => (req.password, Status::Ok),
            },
            Op::Delete => match live {
                None if repeat => return Status::Ok,
                None => return Status::NotFound,
                Some(r) if !r.password_matches(req.password) => return Status::BadPassword,
                Some(_) => {
                    let Some(next_rev) = next_rev else {
                        return Status::Quota;
                    };
                    if let Some(rec) = self.records.get_mut(&sub_key) {
                        rec.tombstone = true;
                        rec.rev = next_rev;
                        rec.value.clear();
                        rec.op_id = req.op_id;
                        rec.pushed_to = None;
                    }
                    return Status::Ok;
                }
            },
            Op::Recreate => match live {
                Some(_) if repeat => return Status::Ok,
                Some(r) if !r.password_matches(req.password) => return Status::BadPassword,
                // Delete (of the live value, or of nothing) then create.
                _ => (req.new_password, Status::Ok),
            },
        };
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
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        self.insert(
            sub_key,
            Record {
                key: req.key.to_vec(),
                sub: req.sub,
                rev: next_rev,
                tombstone: false,
                salt,
                hash: password_hash(&salt, password),
                creator,
                charged,
                op_id: req.op_id,
                expires: expiry(now, ttl),
                value: req.value.to_vec(),
                pushed_to: None,
            },
        );
        status
    }

    /// Merges a record that a replica copied here: the higher revision wins, and the
    /// record counts against `sender`'s quota. Returns whether the local copy
    /// changed. (The caller checks that `sender` may send it.)
    pub(crate) fn merge(
        &mut self,
        now: Instant,
        rec: &RecordRepr<'_>,
        sender: Address,
        limits: &Limits,
    ) -> bool {
        if let Some(existing) = self.records.get(&rec.sub_key) {
            if existing.rev >= rec.rev {
                return false;
            }
        }
        if rec.ttl_left_ms == 0 || !self.has_room(&rec.sub_key, sender, limits) {
            return false;
        }
        let ttl = Duration::from_millis(u64::from(rec.ttl_left_ms)).min(limits.max_ttl);
        self.insert(
            rec.sub_key,
            Record {
                key: rec.key.to_vec(),
                sub: rec.sub,
                rev: rec.rev,
                tombstone: rec.tombstone,
                salt: rec.salt,
                hash: rec.hash,
                creator: rec.creator,
                charged: sender,
                op_id: rec.op_id,
                expires: expiry(now, ttl),
                value: rec.value.to_vec(),
                pushed_to: None,
            },
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    const LIMITS: Limits = Limits {
        per_peer: 2,
        total: 3,
        max_ttl: Duration::from_secs(3600),
    };

    fn req<'a>(op: Op, op_id: u64, password: &'a [u8], value: &'a [u8]) -> Request<'a> {
        Request {
            op,
            op_id,
            sub: 0,
            key: b"key",
            password,
            new_password: b"new",
            value,
            ttl_s: 10,
        }
    }

    #[test]
    fn create_delete_recreate_follow_the_paper() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut s = Store::default();
        let (t0, k, a, b) = (
            Instant::now(),
            Address::from_bytes([1; 20]),
            Address::from_bytes([2; 20]),
            Address::from_bytes([3; 20]),
        );
        let mut apply =
            |s: &mut Store, who, r: Request<'_>| s.apply(t0, k, who, who, &r, &LIMITS, &mut rng);
        assert_eq!(
            apply(&mut s, a, req(Op::Create, 1, b"pw", b"v1")),
            Status::Ok
        );
        // A retransmission of the same create is not a second create.
        assert_eq!(
            apply(&mut s, a, req(Op::Create, 1, b"pw", b"v1")),
            Status::Ok
        );
        assert_eq!(
            apply(&mut s, b, req(Op::Create, 2, b"pw", b"v2")),
            Status::Exists
        );
        assert_eq!(
            apply(&mut s, b, req(Op::Delete, 3, b"wrong", b"")),
            Status::BadPassword
        );
        assert_eq!(s.get(&k).unwrap().value, b"v1");
        assert_eq!(
            apply(&mut s, b, req(Op::Recreate, 4, b"pw", b"v3")),
            Status::Ok
        );
        assert_eq!(s.get(&k).unwrap().value, b"v3");
        // The password is now "new".
        assert_eq!(
            apply(&mut s, a, req(Op::Delete, 5, b"pw", b"")),
            Status::BadPassword
        );
        assert_eq!(
            apply(&mut s, a, req(Op::Delete, 6, b"new", b"")),
            Status::Ok
        );
        assert!(s.get(&k).unwrap().tombstone);
        assert_eq!(
            apply(&mut s, a, req(Op::Delete, 7, b"new", b"")),
            Status::NotFound
        );
        assert_eq!(
            apply(&mut s, b, req(Op::Create, 8, b"x", b"v4")),
            Status::Ok
        );
        assert_eq!(s.get(&k).unwrap().rev, 4);
    }

    #[test]
    fn passwords_are_stored_salted_and_hashed() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        let mut s = Store::default();
        let now = Instant::now();
        let k = Address::from_bytes([1; 20]);
        s.apply(
            now,
            k,
            k,
            k,
            &req(Op::Create, 1, b"secret", b"v"),
            &LIMITS,
            &mut rng,
        );
        let rec = s.get(&k).unwrap();
        let repr = rec.repr(k, now);
        assert_ne!(&repr.hash[..6], b"secret");
        assert_ne!(repr.salt, [0; 16]);
    }

    #[test]
    fn values_vanish_at_ttl_and_quotas_hold() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut s = Store::default();
        let now = Instant::now();
        let a = Address::from_bytes([9; 20]);
        for i in 0..3u8 {
            let k = Address::from_bytes([i; 20]);
            let st = s.apply(
                now,
                k,
                a,
                a,
                &req(Op::Create, u64::from(i), b"p", b"v"),
                &LIMITS,
                &mut rng,
            );
            assert_eq!(
                st,
                if i < 2 { Status::Ok } else { Status::Quota },
                "record {i}"
            );
        }
        s.purge(now + Duration::from_secs(11));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn merge_keeps_the_higher_revision() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(4);
        let (mut s1, mut s2) = (Store::default(), Store::default());
        let now = Instant::now();
        let k = Address::from_bytes([5; 20]);
        s1.apply(
            now,
            k,
            k,
            k,
            &req(Op::Create, 1, b"p", b"old"),
            &LIMITS,
            &mut rng,
        );
        let old = s1.get(&k).unwrap().clone();
        s1.apply(
            now,
            k,
            k,
            k,
            &req(Op::Delete, 2, b"p", b""),
            &LIMITS,
            &mut rng,
        );
        assert!(s2.merge(now, &s1.get(&k).unwrap().repr(k, now), k, &LIMITS));
        // The stale live copy does not resurrect the deleted value.
        assert!(!s2.merge(now, &old.repr(k, now), k, &LIMITS));
        assert!(s2.get(&k).unwrap().tombstone);
    }

    fn copied(sub_key: Address, creator: Address, rev: u64) -> RecordRepr<'static> {
        RecordRepr {
            sub_key,
            sub: 0,
            key: b"key",
            rev,
            tombstone: false,
            salt: [1; 16],
            hash: password_hash(&[1; 16], b"p"),
            creator,
            op_id: 9,
            ttl_left_ms: 10_000,
            value: b"v",
        }
    }

    #[test]
    fn copies_count_against_the_replica_that_sent_them() {
        let mut s = Store::default();
        let now = Instant::now();
        let (sender, other) = (Address::from_bytes([7; 20]), Address::from_bytes([8; 20]));
        // Each copy claims a different creator; the quota still counts the sender.
        for i in 0..2u8 {
            let rec = copied(
                Address::from_bytes([i; 20]),
                Address::from_bytes([100 + i; 20]),
                1,
            );
            assert!(s.merge(now, &rec, sender, &LIMITS), "copy {i}");
        }
        let third = copied(
            Address::from_bytes([2; 20]),
            Address::from_bytes([102; 20]),
            1,
        );
        assert!(
            !s.merge(now, &third, sender, &LIMITS),
            "over the per-peer quota"
        );
        assert_eq!(s.charged_to(sender), 2);
        assert!(
            s.merge(now, &third, other, &LIMITS),
            "another peer has room"
        );
        // A newer revision of a stored record replaces it and moves the charge.
        let newer = copied(
            Address::from_bytes([0; 20]),
            Address::from_bytes([100; 20]),
            2,
        );
        assert!(s.merge(now, &newer, other, &LIMITS));
        assert_eq!((s.charged_to(sender), s.charged_to(other)), (1, 2));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_record_at_the_last_revision_refuses_writes_instead_of_overflowing() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let mut s = Store::default();
        let now = Instant::now();
        let (k, a) = (Address::from_bytes([5; 20]), Address::from_bytes([6; 20]));
        assert!(s.merge(now, &copied(k, a, MAX_REV), a, &LIMITS));
        let mut apply = |op, id, pw: &'static [u8]| {
            s.apply(now, k, a, a, &req(op, id, pw, b"x"), &LIMITS, &mut rng)
        };
        assert_eq!(apply(Op::Delete, 1, b"p"), Status::Quota);
        assert_eq!(apply(Op::Recreate, 2, b"p"), Status::Quota);
        assert_eq!(apply(Op::Create, 3, b"p"), Status::Exists);
        assert_eq!(s.get(&k).unwrap().rev, MAX_REV);
        assert_eq!(s.get(&k).unwrap().value, b"v");
    }
}
