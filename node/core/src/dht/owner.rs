//! Owner keys of DHT records (PROTOCOL.md, "The DHT"): a record's password never leaves
//! the node that knows it. The password and the key derive an Ed25519 key pair; a
//! create stores the public key as the record's owner, and every write carries a
//! proof — the public key and a signature over the request — that replicas check
//! against the owner they hold. A node on the path sees the proof, which is good for
//! that one request only: it names the request's serial, and replicas refuse a serial
//! not above the one they hold.
//!
//! Records are self-certifying: each keeps the proof of the write that made it (its
//! [`Cert`]), so a replica that takes a copy, or a reader that gets a value, checks it
//! against the owner's signature instead of trusting the node that passed it on.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::wire::{Cert, Op, Request};

/// Length of a write's proof: the owner's public key (32), then the signature (64).
pub const PROOF_LEN: usize = 96;
/// Length of an owner (an Ed25519 public key).
pub const OWNER_LEN: usize = 32;

/// What starts the key derivation, and what a request's signature covers.
const DERIVE_LABEL: &[u8] = b"ipop dht owner\0";
const SIGN_LABEL: &[u8] = b"ipop dht request\0";

/// The signing key of the owner of `key` with `password`.
#[derive(Clone)]
pub(crate) struct OwnerKey(SigningKey);

impl std::fmt::Debug for OwnerKey {
    /// The public half only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnerKey({:02x?})", &self.public()[..4])
    }
}

impl OwnerKey {
    /// The key pair of `password` for `key`: Ed25519 with the seed SHA-256(label ||
    /// key length u8 || key || password), so one password gives unrelated owners for
    /// different keys.
    pub(crate) fn derive(key: &[u8], password: &[u8]) -> OwnerKey {
        let mut h = Sha256::new();
        h.update(DERIVE_LABEL);
        h.update([u8::try_from(key.len()).unwrap_or(u8::MAX)]);
        h.update(key);
        h.update(password);
        OwnerKey(SigningKey::from_bytes(&h.finalize().into()))
    }

    /// The owner a record made with this key stores.
    pub(crate) fn public(&self) -> [u8; OWNER_LEN] {
        self.0.verifying_key().to_bytes()
    }

    /// The proof for `req` (whose own `proof` field is not covered).
    pub(crate) fn prove(&self, req: &Request<'_>) -> [u8; PROOF_LEN] {
        let signature = self.0.sign(&signed_input(req)).to_bytes();
        let mut proof = [0u8; PROOF_LEN];
        proof[..OWNER_LEN].copy_from_slice(&self.public());
        proof[OWNER_LEN..].copy_from_slice(&signature);
        proof
    }
}

/// What a request's proof signs: a label, then every field but the sub-key index (the
/// same write goes to each sub-key) and the proof itself.
fn signed_input(req: &Request<'_>) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + req.key.len() + req.value.len());
    m.extend_from_slice(SIGN_LABEL);
    m.push(req.op.to_u8());
    m.extend_from_slice(&req.op_id.to_be_bytes());
    for field in [req.key, req.new_owner] {
        m.push(u8::try_from(field.len()).unwrap_or(u8::MAX));
        m.extend_from_slice(field);
    }
    m.extend_from_slice(
        &u16::try_from(req.value.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    m.extend_from_slice(req.value);
    m.extend_from_slice(&req.ttl_s.to_be_bytes());
    m.extend_from_slice(&req.serial.to_be_bytes());
    m
}

/// The owner whose proof `req` carries, if the proof is well formed and its signature
/// verifies (strictly: canonical encodings, no small-order keys) for that owner.
pub(crate) fn proven_owner(req: &Request<'_>) -> Option<[u8; OWNER_LEN]> {
    let (owner, signature) = req.proof.split_first_chunk::<OWNER_LEN>()?;
    let signature = <[u8; 64]>::try_from(signature).ok()?;
    let key = VerifyingKey::from_bytes(owner).ok()?;
    key.verify_strict(&signed_input(req), &Signature::from_bytes(&signature))
        .ok()?;
    Some(*owner)
}

/// The key that signed the write `cert` names, if that write made exactly this record
/// (key, value, deleted or not, owner): a create or delete is signed by the record's
/// owner, a recreate by the owner before (or, if there was none, by any key) and names
/// the record's owner as the new one.
pub(crate) fn cert_signer(
    key: &[u8],
    value: &[u8],
    tombstone: bool,
    cert: &Cert,
) -> Option<[u8; OWNER_LEN]> {
    let req = Request {
        op: cert.write,
        op_id: cert.op_id,
        sub: 0,
        key,
        proof: &cert.proof,
        new_owner: if cert.write == Op::Recreate {
            &cert.owner
        } else {
            b""
        },
        value,
        ttl_s: cert.ttl_s,
        serial: cert.serial,
    };
    let signer = proven_owner(&req)?;
    let consistent = match cert.write {
        Op::Create => !tombstone && signer == cert.owner,
        Op::Recreate => !tombstone,
        Op::Delete => tombstone && value.is_empty() && signer == cert.owner,
        Op::Get => false,
    };
    consistent.then_some(signer)
}

/// The certificate of a create of `key` with `value`, `password` and `serial`, as the
/// owner signs it (for tests that plant records).
#[cfg(test)]
pub(crate) fn create_cert(key: &[u8], value: &[u8], password: &[u8], serial: u64) -> Cert {
    let owner = OwnerKey::derive(key, password);
    let req = Request {
        op: Op::Create,
        op_id: serial,
        sub: 0,
        key,
        proof: b"",
        new_owner: b"",
        value,
        ttl_s: 3600,
        serial,
    };
    Cert {
        owner: owner.public(),
        write: Op::Create,
        op_id: serial,
        serial,
        ttl_s: 3600,
        proof: owner.prove(&req),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::wire::Op;

    fn req<'a>(op: Op, proof: &'a [u8], value: &'a [u8]) -> Request<'a> {
        Request {
            op,
            op_id: 9,
            sub: 0,
            key: b"key",
            proof,
            new_owner: b"",
            value,
            ttl_s: 60,
            serial: 5,
        }
    }

    #[test]
    fn a_proof_names_its_owner_and_covers_the_request() {
        let owner = OwnerKey::derive(b"key", b"password");
        assert_eq!(
            owner.public(),
            OwnerKey::derive(b"key", b"password").public()
        );
        assert_ne!(owner.public(), OwnerKey::derive(b"key", b"other").public());
        assert_ne!(
            owner.public(),
            OwnerKey::derive(b"kez", b"password").public()
        );
        let proof = owner.prove(&req(Op::Create, b"", b"value"));
        assert_eq!(
            proven_owner(&req(Op::Create, &proof, b"value")),
            Some(owner.public())
        );
        // Another value, operation, sub-key index or a damaged proof.
        assert_eq!(proven_owner(&req(Op::Create, &proof, b"valuf")), None);
        assert_eq!(proven_owner(&req(Op::Recreate, &proof, b"value")), None);
        let other_sub = Request {
            sub: 3,
            ..req(Op::Create, &proof, b"value")
        };
        assert_eq!(proven_owner(&other_sub), Some(owner.public()));
        let mut bad = proof;
        bad[70] ^= 1;
        assert_eq!(proven_owner(&req(Op::Create, &bad, b"value")), None);
        assert_eq!(proven_owner(&req(Op::Create, &proof[..95], b"value")), None);
        assert_eq!(proven_owner(&req(Op::Create, b"", b"value")), None);
        let later = Request {
            serial: 6,
            ..req(Op::Create, &proof, b"value")
        };
        assert_eq!(proven_owner(&later), None);
    }

    #[test]
    fn a_record_certifies_only_the_write_that_made_it() {
        let owner = OwnerKey::derive(b"key", b"password");
        let cert = |write, value: &[u8], new_owner: [u8; OWNER_LEN]| {
            let new_owner_field: &[u8] = if write == Op::Recreate {
                &new_owner
            } else {
                b""
            };
            let r = Request {
                new_owner: new_owner_field,
                ..req(write, b"", value)
            };
            Cert {
                owner: new_owner,
                write,
                op_id: r.op_id,
                serial: r.serial,
                ttl_s: r.ttl_s,
                proof: owner.prove(&r),
            }
        };
        let created = cert(Op::Create, b"v", owner.public());
        assert_eq!(
            cert_signer(b"key", b"v", false, &created),
            Some(owner.public())
        );
        // Another value or key, marked deleted, or claiming another owner.
        assert_eq!(cert_signer(b"key", b"w", false, &created), None);
        assert_eq!(cert_signer(b"kez", b"v", false, &created), None);
        assert_eq!(cert_signer(b"key", b"v", true, &created), None);
        let other = Cert {
            owner: [7; OWNER_LEN],
            ..created
        };
        assert_eq!(cert_signer(b"key", b"v", false, &other), None);
        // A recreate hands the record to the new owner it names, signed by the old.
        let handed = cert(Op::Recreate, b"v", [7; OWNER_LEN]);
        assert_eq!(
            cert_signer(b"key", b"v", false, &handed),
            Some(owner.public())
        );
        let deleted = cert(Op::Delete, b"", owner.public());
        assert_eq!(
            cert_signer(b"key", b"", true, &deleted),
            Some(owner.public())
        );
        assert_eq!(cert_signer(b"key", b"", false, &deleted), None);
    }
}
