//! Tests of `dht::store`.

use super::*;
use crate::dht::owner::OwnerKey;

/// The replica's wall clock in these tests; request `op_id` is signed at
/// `UNIX + op_id`.
const UNIX: u64 = 1_800_000_000_000;

const LIMITS: Limits = Limits {
    per_peer: 2,
    total: 3,
    max_ttl: Duration::from_secs(3600),
};

/// A request for key "key", proven with `password` (a recreate's new password is
/// "new").
struct Req {
    op: Op,
    op_id: u64,
    value: Vec<u8>,
    proof: Vec<u8>,
    new_owner: Vec<u8>,
    ttl_s: u32,
}

impl Req {
    fn get(&self) -> Request<'_> {
        Request {
            op: self.op,
            op_id: self.op_id,
            sub: 0,
            key: b"key",
            proof: &self.proof,
            new_owner: &self.new_owner,
            value: &self.value,
            ttl_s: self.ttl_s,
            serial: UNIX + self.op_id,
        }
    }
}

fn req(op: Op, op_id: u64, password: &[u8], value: &[u8]) -> Req {
    req_ttl(op, op_id, password, value, 10)
}

/// As [`req`], with a TTL of `ttl_s`.
fn req_ttl(op: Op, op_id: u64, password: &[u8], value: &[u8], ttl_s: u32) -> Req {
    let new_owner = if op == Op::Recreate {
        OwnerKey::derive(b"key", b"new").public().to_vec()
    } else {
        Vec::new()
    };
    let mut r = Req {
        op,
        op_id,
        value: value.to_vec(),
        proof: Vec::new(),
        new_owner,
        ttl_s,
    };
    r.proof = OwnerKey::derive(b"key", password).prove(&r.get()).to_vec();
    r
}

#[test]
fn create_delete_recreate_follow_the_paper() {
    let mut s = Store::default();
    let (t0, k, a, b) = (
        Instant::now(),
        Address::from_bytes([1; 20]),
        Address::from_bytes([2; 20]),
        Address::from_bytes([3; 20]),
    );
    let apply = |s: &mut Store, who, r: Req| s.apply(t0, UNIX, k, who, who, &r.get(), &LIMITS);
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
fn replicas_keep_the_owner_key_never_the_password() {
    let mut s = Store::default();
    let now = Instant::now();
    let k = Address::from_bytes([1; 20]);
    s.apply(
        now,
        UNIX,
        k,
        k,
        k,
        &req(Op::Create, 1, b"secret", b"v").get(),
        &LIMITS,
    );
    let rec = s.get(&k).unwrap();
    let repr = rec.repr(k, now);
    assert_eq!(
        repr.cert.owner,
        OwnerKey::derive(b"key", b"secret").public()
    );
    // A request with the password itself in the proof is refused.
    let mut plain = req(Op::Delete, 2, b"secret", b"");
    plain.proof = b"secret".to_vec();
    assert_eq!(
        s.apply(now, UNIX, k, k, k, &plain.get(), &LIMITS),
        Status::BadPassword
    );
}

#[test]
fn values_vanish_at_ttl_and_quotas_hold() {
    let mut s = Store::default();
    let now = Instant::now();
    let a = Address::from_bytes([9; 20]);
    for i in 0..3u8 {
        let k = Address::from_bytes([i; 20]);
        let st = s.apply(
            now,
            UNIX,
            k,
            a,
            a,
            &req(Op::Create, u64::from(i), b"p", b"v").get(),
            &LIMITS,
        );
        assert_eq!(
            st,
            if i < 2 { Status::Ok } else { Status::Quota },
            "record {i}"
        );
    }
    s.purge(now + Duration::from_secs(11), UNIX + 11_000, &LIMITS);
    assert_eq!(s.len(), 0);
    assert!(s.guards.is_empty(), "they replaced nothing");
}

#[test]
fn a_write_replaced_by_a_shorter_one_cannot_be_replayed_after_that_one_expired() {
    let now = Instant::now();
    let (k, a, b) = (
        Address::from_bytes([1; 20]),
        Address::from_bytes([2; 20]),
        Address::from_bytes([3; 20]),
    );
    let apply = |s: &mut Store, who, r: &Req| s.apply(now, UNIX, k, who, who, &r.get(), &LIMITS);
    let create = req_ttl(Op::Create, 1, b"a", b"a's", 3600);
    // A created for an hour, deleted; B created for a minute. Or A renewed for a
    // minute. Either way the one-hour create is replaced by a write that ends first.
    for second in [
        vec![
            req(Op::Delete, 2, b"a", b""),
            req_ttl(Op::Create, 3, b"b", b"b's", 60),
        ],
        vec![req_ttl(Op::Recreate, 3, b"a", b"renewed", 60)],
    ] {
        let mut s = Store::default();
        assert_eq!(apply(&mut s, a, &create), Status::Ok);
        for r in &second {
            assert_eq!(apply(&mut s, b, r), Status::Ok);
        }
        let later = now + Duration::from_secs(61);
        s.purge(later, UNIX + 61_000, &LIMITS);
        assert!(s.get(&k).is_none(), "the one-minute record is gone");
        // A replay of the one-hour create is refused, by the apply and by a copy.
        let replay = s.apply(later, UNIX + 61_000, k, b, b, &create.get(), &LIMITS);
        assert_eq!(replay, Status::Stale);
        let copy = RecordRepr {
            sub_key: k,
            sub: 0,
            key: b"key",
            rev: 1,
            tombstone: false,
            creator: a,
            cert: Cert {
                owner: OwnerKey::derive(b"key", b"a").public(),
                write: Op::Create,
                op_id: 1,
                serial: UNIX + 1,
                ttl_s: 3600,
                proof: create.proof.clone().try_into().unwrap(),
            },
            ttl_left_ms: 3_000_000,
            value: b"a's",
        };
        assert!(!s.merge(later, UNIX + 61_000, &copy, b, &LIMITS));
        // A new write goes through, and the guard ends with the hour.
        let fresh = req_ttl(Op::Create, 100_000, b"c", b"c's", 60);
        let at = UNIX + 100_000;
        assert_eq!(
            s.apply(later, at, k, b, b, &fresh.get(), &LIMITS),
            Status::Ok
        );
        s.purge(later + Duration::from_secs(3600), at + 3_600_000, &LIMITS);
        assert!(s.get(&k).is_none() && s.guards.is_empty());
    }
}

#[test]
fn replayed_and_expired_writes_are_stale() {
    let mut s = Store::default();
    let now = Instant::now();
    let (k, a, b) = (
        Address::from_bytes([1; 20]),
        Address::from_bytes([2; 20]),
        Address::from_bytes([3; 20]),
    );
    let mut apply = |who, r: Req, unix| s.apply(now, unix, k, who, who, &r.get(), &LIMITS);
    assert_eq!(apply(a, req(Op::Create, 1, b"p", b"v"), UNIX), Status::Ok);
    assert_eq!(apply(a, req(Op::Delete, 3, b"p", b""), UNIX), Status::Ok);
    // Someone who recorded the create (or an older delete) sends it again.
    assert_eq!(
        apply(b, req(Op::Create, 1, b"p", b"v"), UNIX),
        Status::Stale
    );
    assert_eq!(
        apply(b, req(Op::Recreate, 2, b"p", b"w"), UNIX),
        Status::Stale
    );
    // A write whose TTL ran out before it arrived.
    let late = UNIX + 20_000;
    assert_eq!(
        apply(a, req(Op::Create, 4, b"p", b"v"), late),
        Status::Stale
    );
    assert_eq!(apply(a, req(Op::Create, 5, b"p", b"v"), UNIX), Status::Ok);
    assert!(s.get(&k).unwrap().live(now));
    // It lives until its serial + TTL on the replica's clock, not TTL from now.
    let mut s = Store::default();
    let r = req(Op::Create, 6, b"p", b"v");
    assert_eq!(
        s.apply(now, UNIX + 4_006, k, a, a, &r.get(), &LIMITS),
        Status::Ok
    );
    let left = s.get(&k).unwrap().expires - now;
    assert_eq!(left, Duration::from_secs(6));
}

#[test]
fn merge_keeps_the_later_write() {
    let (mut s1, mut s2) = (Store::default(), Store::default());
    let now = Instant::now();
    let k = Address::from_bytes([5; 20]);
    s1.apply(
        now,
        UNIX,
        k,
        k,
        k,
        &req(Op::Create, 1, b"p", b"old").get(),
        &LIMITS,
    );
    let old = s1.get(&k).unwrap().clone();
    s1.apply(
        now,
        UNIX,
        k,
        k,
        k,
        &req(Op::Delete, 2, b"p", b"").get(),
        &LIMITS,
    );
    assert!(s2.merge(now, UNIX, &s1.get(&k).unwrap().repr(k, now), k, &LIMITS));
    // The stale live copy does not resurrect the deleted value.
    assert!(!s2.merge(now, UNIX, &old.repr(k, now), k, &LIMITS));
    assert!(s2.get(&k).unwrap().tombstone);
}

/// A copy of a record written at `serial` (its certificate is not checked here).
fn copied(sub_key: Address, creator: Address, rev: u64, serial: u64) -> RecordRepr<'static> {
    RecordRepr {
        sub_key,
        sub: 0,
        key: b"key",
        rev,
        tombstone: false,
        creator,
        cert: Cert {
            owner: OwnerKey::derive(b"key", b"p").public(),
            write: Op::Create,
            op_id: 9,
            serial,
            ttl_s: 10,
            proof: [0; PROOF_LEN],
        },
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
            UNIX - 100,
        );
        assert!(s.merge(now, UNIX, &rec, sender, &LIMITS), "copy {i}");
    }
    let third = copied(
        Address::from_bytes([2; 20]),
        Address::from_bytes([102; 20]),
        1,
        UNIX - 100,
    );
    assert!(
        !s.merge(now, UNIX, &third, sender, &LIMITS),
        "over the per-peer quota"
    );
    assert_eq!(s.charged_to(sender), 2);
    assert!(
        s.merge(now, UNIX, &third, other, &LIMITS),
        "another peer has room"
    );
    // A later write of a stored record replaces it and moves the charge.
    let newer = copied(
        Address::from_bytes([0; 20]),
        Address::from_bytes([100; 20]),
        2,
        UNIX - 50,
    );
    assert!(s.merge(now, UNIX, &newer, other, &LIMITS));
    assert_eq!((s.charged_to(sender), s.charged_to(other)), (1, 2));
    assert_eq!(s.len(), 3);
}

#[test]
fn a_record_at_the_last_revision_refuses_writes_instead_of_overflowing() {
    let mut s = Store::default();
    let now = Instant::now();
    let (k, a) = (Address::from_bytes([5; 20]), Address::from_bytes([6; 20]));
    assert!(s.merge(now, UNIX, &copied(k, a, MAX_REV, UNIX - 100), a, &LIMITS));
    let mut apply = |op, id, pw: &'static [u8]| {
        s.apply(now, UNIX, k, a, a, &req(op, id, pw, b"x").get(), &LIMITS)
    };
    assert_eq!(apply(Op::Delete, 1, b"p"), Status::Quota);
    assert_eq!(apply(Op::Recreate, 2, b"p"), Status::Quota);
    assert_eq!(apply(Op::Create, 3, b"p"), Status::Exists);
    assert_eq!(s.get(&k).unwrap().rev, MAX_REV);
    assert_eq!(s.get(&k).unwrap().value, b"v");
}
