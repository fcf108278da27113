//! A node's static X25519 key pair, and the P2P address it entitles the node to.

use std::fmt;

use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};

use crate::address::Address;

/// A node's static X25519 key pair. The node's P2P address is the SHA-1 of the public
/// key ([`address_of`]), so a node cannot claim an address it holds no key for.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub(crate) private: [u8; 32],
    public: [u8; 32],
}

impl Identity {
    /// The identity with private key `bytes` (any 32 bytes: X25519 clamps them); the
    /// public key is derived with snow's X25519.
    pub fn from_private(bytes: [u8; 32]) -> Identity {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .expect("snow's default resolver provides X25519");
        dh.set(&bytes);
        let mut public = [0u8; 32];
        public.copy_from_slice(&dh.pubkey()[..32]);
        Identity {
            private: bytes,
            public,
        }
    }

    /// A new identity from a cryptographic generator (the operating system's, outside
    /// tests: the private key is the node's whole identity).
    pub fn generate(rng: &mut impl rand::CryptoRng) -> Identity {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Identity::from_private(bytes)
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The private key (to store it; keep it secret).
    pub fn private(&self) -> [u8; 32] {
        self.private
    }

    /// The P2P address this identity entitles the node to.
    pub fn address(&self) -> Address {
        address_of(&self.public)
    }
}

impl fmt::Debug for Identity {
    /// Shows the address only: the private key never goes to a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
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
    fn public_key_and_address_derive_from_the_private_key() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = Identity::generate(&mut rng);
        let again = Identity::from_private(a.private());
        assert_eq!(again, a);
        assert_eq!(a.address(), Address::sha1(&a.public()));
        assert_ne!(Identity::generate(&mut rng).public(), a.public());
        // RFC 7748 section 6.1: Alice's key pair.
        let alice = Identity::from_private(hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        assert_eq!(
            alice.public(),
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert!(!format!("{alice:?}").contains("77076d0a"));
    }

    fn hex(s: &str) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        b
    }
}
