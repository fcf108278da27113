//! Tests of `dht::wire`.

use super::*;
use proptest::collection::vec;
use proptest::prelude::*;

/// The owned fields of one message of each kind, so strategies can build them.
#[derive(Debug, Clone)]
struct Fields {
    op: u8,
    status: u8,
    op_id: u64,
    sub: u8,
    rev: u64,
    ttl: u32,
    serial: u64,
    tombstone: bool,
    owner: [u8; 32],
    sub_key: [u8; 20],
    creator: [u8; 20],
    key: Vec<u8>,
    proof: Vec<u8>,
    new_owner: Vec<u8>,
    value: Vec<u8>,
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        (1u8..=4, 0u8..=4, any::<u64>(), any::<u8>(), 0..=MAX_REV),
        (any::<u32>(), any::<u64>(), any::<bool>(), any::<[u8; 32]>()),
        (any::<[u8; 20]>(), any::<[u8; 20]>()),
        (
            vec(any::<u8>(), 0..=MAX_KEY),
            prop_oneof![Just(0), Just(PROOF_LEN)].prop_flat_map(|n| vec(any::<u8>(), n)),
            prop_oneof![Just(0), Just(OWNER_LEN)].prop_flat_map(|n| vec(any::<u8>(), n)),
            vec(any::<u8>(), 0..=MAX_VALUE),
        ),
    )
        .prop_map(
            |(
                (op, status, op_id, sub, rev),
                (ttl, serial, tombstone, owner),
                (sub_key, creator),
                (key, proof, new_owner, value),
            )| Fields {
                op,
                status,
                op_id,
                sub,
                rev,
                ttl,
                serial,
                tombstone,
                owner,
                sub_key,
                creator,
                key,
                proof,
                new_owner,
                value,
            },
        )
}

impl Fields {
    fn request(&self) -> Request<'_> {
        Request {
            op: Op::from_u8(self.op).unwrap(),
            op_id: self.op_id,
            sub: self.sub,
            key: &self.key,
            proof: &self.proof,
            new_owner: &self.new_owner,
            value: &self.value,
            ttl_s: self.ttl,
            serial: self.serial,
        }
    }

    /// A certificate made of the fields (its signature is not checked here).
    fn cert(&self) -> Cert {
        let mut proof = [0u8; PROOF_LEN];
        for (i, b) in proof.iter_mut().enumerate() {
            *b = self.owner[i % OWNER_LEN] ^ i as u8;
        }
        Cert {
            owner: self.owner,
            write: match Op::from_u8(self.op).unwrap() {
                Op::Get => Op::Delete,
                op => op,
            },
            op_id: self.op_id,
            serial: self.serial,
            ttl_s: self.ttl,
            proof,
        }
    }

    fn reply(&self) -> Reply<'_> {
        Reply {
            op_id: self.op_id,
            sub: self.sub,
            status: Status::from_u8(self.status).unwrap(),
            rev: self.rev,
            ttl_left_s: self.ttl,
            value: &self.value,
            cert: self.tombstone.then(|| self.cert()),
        }
    }

    fn record(&self) -> RecordRepr<'_> {
        RecordRepr {
            sub_key: Address::from_bytes(self.sub_key),
            sub: self.sub,
            key: &self.key,
            rev: self.rev,
            tombstone: self.tombstone,
            creator: Address::from_bytes(self.creator),
            cert: self.cert(),
            ttl_left_ms: self.ttl,
            value: &self.value,
        }
    }

    /// The encodings of the three messages.
    fn encodings(&self) -> [Vec<u8>; 3] {
        let mut out = [
            vec![0u8; MAX_MESSAGE],
            vec![0u8; MAX_MESSAGE],
            vec![0u8; MAX_MESSAGE],
        ];
        let n = [
            self.request().emit(&mut out[0]).unwrap(),
            self.reply().emit(&mut out[1]).unwrap(),
            self.record().emit(&mut out[2]).unwrap(),
        ];
        for (b, n) in out.iter_mut().zip(n) {
            b.truncate(n);
        }
        out
    }
}

/// Runs every parser on `bytes`; whatever parses must re-emit to the same bytes
/// (every encoding is canonical).
fn parse_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    if let Ok(m) = Request::parse(bytes) {
        let n = m.emit(&mut buf).unwrap();
        prop_assert_eq!(&buf[..n], bytes);
    }
    if let Ok(m) = Reply::parse(bytes) {
        let n = m.emit(&mut buf).unwrap();
        prop_assert_eq!(&buf[..n], bytes);
    }
    if let Ok(m) = RecordRepr::parse(bytes) {
        let n = m.emit(&mut buf).unwrap();
        prop_assert_eq!(&buf[..n], bytes);
    }
    Ok(())
}

proptest! {
    #[test]
    fn every_message_round_trips(f in fields()) {
        let [req, reply, rec] = f.encodings();
        prop_assert!(req.len() <= MAX_MESSAGE && rec.len() <= MAX_MESSAGE);
        prop_assert_eq!(Request::parse(&req).unwrap(), f.request());
        prop_assert_eq!(Reply::parse(&reply).unwrap(), f.reply());
        prop_assert_eq!(RecordRepr::parse(&rec).unwrap(), f.record());
    }

    #[test]
    fn parsers_never_panic_on_random_bytes(bytes in vec(any::<u8>(), 0..=MAX_MESSAGE + 8)) {
        parse_all(&bytes)?;
    }

    #[test]
    fn parsers_never_panic_on_damaged_messages(f in fields(), which in 0usize..3,
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)) {
        let mut bytes = f.encodings()[which].clone();
        for (at, byte, how) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match how {
                0 => bytes[i] = byte,
                1 => bytes.truncate(i),
                _ => bytes.insert(i, byte),
            }
            parse_all(&bytes)?;
        }
    }
}

#[test]
fn oversized_fields_are_refused() {
    let big = vec![0u8; MAX_VALUE + 1];
    let req = Request {
        op: Op::Create,
        op_id: 1,
        sub: 0,
        key: b"k",
        proof: b"",
        new_owner: b"",
        value: &big,
        ttl_s: 1,
        serial: 1,
    };
    let mut buf = vec![0u8; MAX_MESSAGE + 10];
    assert_eq!(req.emit(&mut buf), Err(Error::TooLong));
}

#[test]
fn revisions_past_the_maximum_are_refused() {
    let f = Fields {
        op: 1,
        status: 0,
        op_id: 1,
        sub: 0,
        rev: MAX_REV,
        ttl: 1,
        serial: 1,
        tombstone: false,
        owner: [0; 32],
        sub_key: [0; 20],
        creator: [0; 20],
        key: b"k".to_vec(),
        proof: Vec::new(),
        new_owner: Vec::new(),
        value: Vec::new(),
    };
    let [_, mut reply, mut rec] = f.encodings();
    assert_eq!(RecordRepr::parse(&rec).unwrap().rev, MAX_REV);
    // The revision of a record follows sub_key, sub and the one-byte-long key.
    let at = 20 + 1 + 2;
    rec[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(RecordRepr::parse(&rec), Err(Error::BadValue));
    reply[10..18].copy_from_slice(&(MAX_REV + 1).to_be_bytes());
    assert_eq!(Reply::parse(&reply), Err(Error::BadValue));
    let mut buf = vec![0u8; MAX_MESSAGE];
    let too_new = RecordRepr {
        rev: MAX_REV + 1,
        ..f.record()
    };
    assert_eq!(too_new.emit(&mut buf), Err(Error::BadValue));
}
