//! A node's long-term key, the keys derived from it, and the P2P address it entitles the
//! node to.
//!
//! The stored key is an Ed25519 seed (RFC 8032). It signs routed messages end to end;
//! its X25519 form (the Ed25519 scalar, and the public point mapped to Montgomery form,
//! as libsodium's `crypto_sign_ed25519_*_to_curve25519`) is the Noise static key of the
//! secure edges. The address is the SHA-1 of the X25519 public key, so a signature's
//! Ed25519 public key proves the address it signs for ([`verify`]).

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::address::Address;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// A node's long-term key: the Ed25519 key that signs, and its X25519 form for the Noise
/// handshake. The node's P2P address is the SHA-1 of the X25519 public key
/// ([`address_of`]), so a node cannot claim an address it holds no key for.
#[derive(Clone)]
pub struct Identity {
    signing: SigningKey,
    /// The X25519 private scalar (the Ed25519 secret scalar; X25519 clamps it).
    pub(crate) private: [u8; 32],
    public: [u8; 32],
}

impl Identity {
    /// The identity with key `bytes` (any 32 bytes: an Ed25519 seed); the rest is derived.
    pub fn from_private(bytes: [u8; 32]) -> Identity {
        let signing = SigningKey::from_bytes(&bytes);
        let private = signing.to_scalar_bytes();
        let public = signing.verifying_key().to_montgomery().to_bytes();
        Identity {
            signing,
            private,
            public,
        }
    }

    /// A new identity from a cryptographic generator (the operating system's, outside
    /// tests: the key is the node's whole identity).
    pub fn generate(rng: &mut impl rand::CryptoRng) -> Identity {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Identity::from_private(bytes)
    }

    /// The X25519 public key (the Noise static key).
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The Ed25519 public key, which verifies this node's signatures.
    pub fn signing_public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The key (to store it; keep it secret).
    pub fn private(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The P2P address this identity entitles the node to.
    pub fn address(&self) -> Address {
        address_of(&self.public)
    }

    /// The Ed25519 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(msg).to_bytes()
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Identity) -> bool {
        self.signing.to_bytes() == other.signing.to_bytes()
    }
}

impl Eq for Identity {}

impl fmt::Debug for Identity {
    /// Shows the address only: the private key never goes to a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

/// Whether `signature` is `signer`'s over `msg` and `signer` (an Ed25519 public key) is
/// the key of `address`. Strict verification (RFC 8032 with canonical encodings and no
/// small-order keys), so a signature cannot be mauled into another valid one.
pub fn verify(
    address: &Address,
    signer: &[u8; 32],
    msg: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(signer) else {
        return false;
    };
    address_of(&key.to_montgomery().to_bytes()) == *address
        && key
            .verify_strict(msg, &Signature::from_bytes(signature))
            .is_ok()
}

/// The P2P address of the node with static public key `public`: its SHA-1.
pub fn address_of(public: &[u8; 32]) -> Address {
    Address::sha1(public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn public_keys_and_address_derive_from_the_key() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = Identity::generate(&mut rng);
        let again = Identity::from_private(a.private());
        assert_eq!(again, a);
        assert_eq!(a.address(), Address::sha1(&a.public()));
        assert_ne!(Identity::generate(&mut rng).public(), a.public());
        // RFC 8032 section 7.1, test 1: the key pair.
        let one = Identity::from_private(hex(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ));
        assert_eq!(
            one.signing_public(),
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        assert!(!format!("{one:?}").contains("9d61b19d"));
    }

    #[test]
    fn the_x25519_public_key_is_the_one_of_the_x25519_private_key() {
        // The handshake derives the public key from `private` with X25519; it must be
        // the Montgomery form of the signing key, or addresses would not match.
        use snow::params::DHChoice;
        use snow::resolvers::{CryptoResolver, DefaultResolver};
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for _ in 0..8 {
            let id = Identity::generate(&mut rng);
            let mut dh = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            dh.set(&id.private);
            assert_eq!(dh.pubkey()[..32], id.public());
        }
    }

    #[test]
    fn a_signature_verifies_for_its_address_only() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (a, b) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
        let sig = a.sign(b"message");
        assert!(verify(&a.address(), &a.signing_public(), b"message", &sig));
        assert!(!verify(&a.address(), &a.signing_public(), b"messagf", &sig));
        // b's key does not speak for a's address, nor a's for b's.
        let sig_b = b.sign(b"message");
        assert!(!verify(
            &a.address(),
            &b.signing_public(),
            b"message",
            &sig_b
        ));
        assert!(!verify(&b.address(), &a.signing_public(), b"message", &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!verify(&a.address(), &a.signing_public(), b"message", &bad));
        // A key that is no curve point, and the identity point (small order).
        assert!(!verify(&a.address(), &[0xff; 32], b"message", &sig));
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        assert!(!verify(&a.address(), &identity_point, b"message", &sig));
    }

    fn hex(s: &str) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        b
    }
}
