//! Keyed namespaces: a namespace whose members share a 32-byte secret key.
//!
//! An open namespace (the papers' kind) is protected by nothing but its identifier:
//! whoever learns it can read its record, write IP→node mappings and inject packets.
//! A keyed namespace derives everything from its key:
//!
//! * its **identifier** is a hash of the key, so holding the key names the namespace;
//! * the **DHT keys** of its record and of each virtual IP, and the record's password,
//!   are derived from the key: a node without it cannot find, squat or renew them;
//! * its **record** and every **IP→node mapping** (the Brunet-ARP answer) are sealed
//!   (XChaCha20-Poly1305, the IP and the namespace bound as associated data): a DHT
//!   replica or a node on the path cannot read or forge them;
//! * every **IP packet** (and "not here" notice) is sealed end to end between members,
//!   bound to the sending node's P2P address: relays and forwarders see ciphertext, and
//!   neither they nor another namespace's members can inject.
//!
//! The members trust one another: any holder of the key can seal for the namespace
//! (within it, a node still cannot take over another's address: that needs the lease's
//! password). Sealed packets carry a random 192-bit nonce, so there is no replay window
//! end to end; a replayed IP packet is a duplicate the host's transport already handles,
//! and every secure edge on the way refuses replays of its own datagrams.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::namespace::{NamespaceId, NamespaceRecord, RecordError};
use crate::address::Address;
use crate::text::to_hex;

/// Bytes of a namespace key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes a seal adds: the nonce and the authentication tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// A namespace key: 32 secret bytes, written as 64 hexadecimal digits.
#[derive(Clone, PartialEq, Eq)]
pub struct NamespaceKey([u8; KEY_LEN]);

/// Why a namespace key does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a namespace key (64 hexadecimal digits, from `ipop-node namespace create`)")]
pub struct BadKey;

impl NamespaceKey {
    /// A new key from `rng` (a cryptographic generator seeded by the operating system).
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; KEY_LEN];
        rng.fill_bytes(&mut b);
        NamespaceKey(b)
    }

    /// A key from its bytes (32 from a cryptographic generator).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        NamespaceKey(bytes)
    }

    /// The key as 64 hexadecimal digits (what a key file holds).
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// The identifier of the namespace this key makes.
    pub fn id(&self) -> NamespaceId {
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.derive(b"id")[..16]);
        NamespaceId(id)
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"ipop keyed namespace/");
        h.update(label);
        h.update([0]);
        h.update(self.0);
        h.finalize().into()
    }
}

impl fmt::Debug for NamespaceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret itself.
        write!(f, "NamespaceKey(for {})", self.id())
    }
}

impl FromStr for NamespaceKey {
    type Err = BadKey;

    fn from_str(s: &str) -> Result<Self, BadKey> {
        crate::text::hex_bytes(s).map(NamespaceKey).ok_or(BadKey)
    }
}

/// What a sealed packet from the overlay turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsealed {
    /// Another namespace's (or too short to name one).
    WrongNamespace,
    /// This namespace's identifier, but not sealed by a holder of its key for this
    /// sender: forged, altered on the way, or truncated.
    Unauthentic,
}

/// A namespace as one of its members sees it: the identifier, and the key if it has one.
#[derive(Clone)]
pub struct Namespace {
    id: NamespaceId,
    keys: Option<Keys>,
}

#[derive(Clone)]
struct Keys {
    cipher: XChaCha20Poly1305,
    record_key: Vec<u8>,
    record_password: Vec<u8>,
    ip_salt: [u8; 32],
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.keys.is_some() { "keyed" } else { "open" };
        write!(f, "Namespace({} {kind})", self.id)
    }
}

/// Associated data of a seal: a label, the namespace, and what the seal is bound to.
/// (On the stack: it is made for every packet.)
fn bound(label: u8, id: &NamespaceId, to: &[u8]) -> Ad {
    let mut ad = Ad {
        buf: [0; AD_MAX],
        len: 1 + 16 + to.len(),
    };
    ad.buf[0] = label;
    ad.buf[1..17].copy_from_slice(&id.0);
    ad.buf[17..ad.len].copy_from_slice(to);
    ad
}

/// The longest associated data: label, namespace id, a P2P address.
const AD_MAX: usize = 1 + 16 + Address::LEN;

/// Associated data of one seal.
struct Ad {
    buf: [u8; AD_MAX],
    len: usize,
}

impl std::ops::Deref for Ad {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

const AD_RECORD: u8 = 1;
const AD_MAPPING: u8 = 2;
const AD_PACKET: u8 = 3;

impl Namespace {
    /// An open namespace: everything derived from its (public) identifier.
    pub fn open(id: NamespaceId) -> Self {
        Namespace { id, keys: None }
    }

    /// The keyed namespace of `key`.
    pub fn keyed(key: &NamespaceKey) -> Self {
        let cipher = XChaCha20Poly1305::new(&key.derive(b"seal").into());
        let record_key = format!("ipop/kns/{}", to_hex(&key.derive(b"record key")[..16]));
        Namespace {
            id: key.id(),
            keys: Some(Keys {
                cipher,
                record_key: record_key.into_bytes(),
                record_password: key.derive(b"record password").to_vec(),
                ip_salt: key.derive(b"ip key"),
            }),
        }
    }

    /// The identifier.
    pub fn id(&self) -> NamespaceId {
        self.id
    }

    /// Whether the namespace has a key.
    pub fn is_keyed(&self) -> bool {
        self.keys.is_some()
    }

    /// The DHT key of the namespace record.
    pub fn record_key(&self) -> Vec<u8> {
        match &self.keys {
            Some(k) => k.record_key.clone(),
            None => self.id.record_key(),
        }
    }

    /// The password that renews the namespace record.
    pub fn record_password(&self) -> Vec<u8> {
        match &self.keys {
            Some(k) => k.record_password.clone(),
            None => self.id.record_password(),
        }
    }

    /// The DHT key of virtual IP `ip` (Brunet-ARP).
    pub fn ip_key(&self, ip: Ipv4Addr) -> Vec<u8> {
        match &self.keys {
            Some(k) => {
                let mut h = Sha256::new();
                h.update(k.ip_salt);
                h.update(ip.octets());
                let d: [u8; 32] = h.finalize().into();
                format!("ipop/kip/{}", to_hex(&d[..16])).into_bytes()
            }
            None => self.id.ip_key(ip),
        }
    }

    /// Bytes an IP packet gains on the overlay: the identifier, and a seal if keyed.
    pub fn packet_overhead(&self) -> usize {
        16 + if self.keys.is_some() {
            SEAL_OVERHEAD
        } else {
            0
        }
    }

    /// The namespace record as stored in the DHT.
    pub fn seal_record<R: Rng + ?Sized>(&self, rng: &mut R, record: &NamespaceRecord) -> Vec<u8> {
        self.seal_value(rng, AD_RECORD, &[], &record.encode())
    }

    /// A stored namespace record, opened and checked.
    pub fn open_record(&self, stored: &[u8]) -> Result<NamespaceRecord, RecordError> {
        if self.keys.is_none() {
            return NamespaceRecord::decode(stored);
        }
        let plain = self
            .open_value(AD_RECORD, &[], stored)
            .ok_or(RecordError::Unauthentic)?;
        NamespaceRecord::decode(&plain)
    }

    /// The DHT value mapping `ip` to the node `owner`.
    pub fn mapping<R: Rng + ?Sized>(&self, rng: &mut R, ip: Ipv4Addr, owner: Address) -> Vec<u8> {
        match &self.keys {
            Some(_) => self.seal_value(rng, AD_MAPPING, &ip.octets(), owner.as_bytes()),
            None => owner.to_string().into_bytes(),
        }
    }

    /// The owner a stored mapping of `ip` names; None if it is not a mapping of `ip`
    /// sealed by a member (keyed) or not an address (open).
    pub fn owner(&self, ip: Ipv4Addr, stored: &[u8]) -> Option<Address> {
        match &self.keys {
            Some(_) => {
                let plain = self.open_value(AD_MAPPING, &ip.octets(), stored)?;
                Some(Address::from_bytes(plain.try_into().ok()?))
            }
            None => std::str::from_utf8(stored).ok()?.parse().ok(),
        }
    }

    fn seal_value<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        label: u8,
        to: &[u8],
        plain: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plain.len());
        match &self.keys {
            Some(k) => seal(k, rng, &bound(label, &self.id, to), plain, &mut out),
            None => out.extend_from_slice(plain),
        }
        out
    }

    fn open_value(&self, label: u8, to: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let k = self.keys.as_ref()?;
        let mut out = Vec::new();
        open(k, &bound(label, &self.id, to), sealed, &mut out).then_some(out)
    }

    /// The payload of a routed IP packet or notice from this node (`src`): the
    /// identifier, then `body`, sealed to `src` if keyed. Appended to `out`.
    pub fn seal_packet<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        src: Address,
        body: &[u8],
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(&self.id.0);
        match &self.keys {
            Some(k) => seal(
                k,
                rng,
                &bound(AD_PACKET, &self.id, src.as_bytes()),
                body,
                out,
            ),
            None => out.extend_from_slice(body),
        }
    }

    /// The body of a routed payload that node `src` sent, written to `out` (cleared).
    pub fn open_packet(
        &self,
        src: Address,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Unsealed> {
        out.clear();
        let body = self.strip_id(payload)?;
        match &self.keys {
            Some(k) => open(k, &bound(AD_PACKET, &self.id, src.as_bytes()), body, out)
                .then_some(())
                .ok_or(Unsealed::Unauthentic),
            None => {
                out.extend_from_slice(body);
                Ok(())
            }
        }
    }

    /// The IP packet of a routed payload sent without a seal of its own (routed kind
    /// 26: the namespace id, then the packet): only in a keyed namespace, and only when
    /// the message's source is verified (the secure edge's session, or a signature,
    /// stands for the namespace's seal).
    pub fn open_direct<'p>(
        &self,
        payload: &'p [u8],
        source_verified: bool,
    ) -> Result<&'p [u8], Unsealed> {
        let body = self.strip_id(payload)?;
        if self.keys.is_none() || !source_verified {
            return Err(Unsealed::Unauthentic);
        }
        Ok(body)
    }

    /// `payload` after its namespace id, if the id is this namespace's.
    fn strip_id<'p>(&self, payload: &'p [u8]) -> Result<&'p [u8], Unsealed> {
        match payload.split_first_chunk::<16>() {
            Some((id, body)) if *id == self.id.0 => Ok(body),
            _ => Err(Unsealed::WrongNamespace),
        }
    }
}

/// Appends `nonce || ciphertext || tag` of `plain` to `out`.
fn seal<R: Rng + ?Sized>(k: &Keys, rng: &mut R, ad: &[u8], plain: &[u8], out: &mut Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plain);
    let tag = k
        .cipher
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), ad, &mut out[start..])
        .expect("XChaCha20-Poly1305 seals any buffer under 256 GiB");
    out.extend_from_slice(&tag);
}

/// Opens `nonce || ciphertext || tag` into `out`; false (and `out` unchanged in length
/// beyond what it held) if it is not authentic.
fn open(k: &Keys, ad: &[u8], sealed: &[u8], out: &mut Vec<u8>) -> bool {
    if sealed.len() < SEAL_OVERHEAD {
        return false;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (cipher, tag) = rest.split_at(rest.len() - TAG_LEN);
    let start = out.len();
    out.extend_from_slice(cipher);
    let ok = k
        .cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            ad,
            &mut out[start..],
            Tag::from_slice(tag),
        )
        .is_ok();
    if !ok {
        out.truncate(start);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::time::Duration;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(5)
    }

    fn record() -> NamespaceRecord {
        NamespaceRecord {
            name: "lab".into(),
            range: "10.77.0.0/24".parse().unwrap(),
            lease: Duration::from_secs(600),
            mtu: 1200,
            dns: None,
        }
    }

    #[test]
    fn keys_round_trip_and_name_their_namespace() {
        let key = NamespaceKey::random(&mut rng());
        assert_eq!(key.to_hex().parse::<NamespaceKey>(), Ok(key.clone()));
        assert_eq!(Namespace::keyed(&key).id(), key.id());
        assert!(
            !format!("{key:?}").contains(&key.to_hex()[..16]),
            "Debug hides the key"
        );
        assert_eq!("abc".parse::<NamespaceKey>(), Err(BadKey));
        assert_eq!("zz".repeat(32).parse::<NamespaceKey>(), Err(BadKey));
    }

    #[test]
    fn dht_keys_and_password_come_from_the_key_not_the_identifier() {
        let key = NamespaceKey::random(&mut rng());
        let keyed = Namespace::keyed(&key);
        let open = Namespace::open(key.id());
        let ip = Ipv4Addr::new(10, 77, 0, 9);
        assert_ne!(keyed.record_key(), open.record_key());
        assert_ne!(keyed.record_password(), open.record_password());
        assert_ne!(keyed.ip_key(ip), open.ip_key(ip));
        let id = key.id().to_string();
        for k in [keyed.record_key(), keyed.ip_key(ip)] {
            assert!(!String::from_utf8(k).unwrap().contains(&id));
        }
        assert_ne!(keyed.ip_key(ip), keyed.ip_key(Ipv4Addr::new(10, 77, 0, 10)));
    }

    #[test]
    fn records_and_mappings_open_only_with_the_key_and_for_what_they_were_sealed() {
        let mut rng = rng();
        let ns = Namespace::keyed(&NamespaceKey::random(&mut rng));
        let other = Namespace::keyed(&NamespaceKey::random(&mut rng));
        let stored = ns.seal_record(&mut rng, &record());
        assert_eq!(ns.open_record(&stored), Ok(record()));
        assert_eq!(other.open_record(&stored), Err(RecordError::Unauthentic));
        assert!(
            !stored.windows(5).any(|w| w == b"range"),
            "sealed, not readable"
        );
        // An outsider's plain record is refused.
        assert_eq!(
            ns.open_record(&record().encode()),
            Err(RecordError::Unauthentic)
        );

        let (ip, owner) = (Ipv4Addr::new(10, 77, 0, 5), Address::from_bytes([4; 20]));
        let value = ns.mapping(&mut rng, ip, owner);
        assert_eq!(ns.owner(ip, &value), Some(owner));
        assert_eq!(
            ns.owner(Ipv4Addr::new(10, 77, 0, 6), &value),
            None,
            "bound to its IP"
        );
        assert_eq!(other.owner(ip, &value), None);
        assert_eq!(
            ns.owner(ip, owner.to_string().as_bytes()),
            None,
            "plain refused"
        );
        for cut in 0..value.len() {
            assert_eq!(ns.owner(ip, &value[..cut]), None);
        }
        let mut flipped = value.clone();
        flipped[30] ^= 1;
        assert_eq!(ns.owner(ip, &flipped), None);
    }

    #[test]
    fn packets_are_sealed_to_their_sender_and_namespace() {
        let mut rng = rng();
        let key = NamespaceKey::random(&mut rng);
        let ns = Namespace::keyed(&key);
        let src = Address::from_bytes([1; 20]);
        let body = b"a known payload that must not be readable on the wire";
        let mut wire = Vec::new();
        ns.seal_packet(&mut rng, src, body, &mut wire);
        assert_eq!(wire.len(), body.len() + ns.packet_overhead());
        assert!(!wire.windows(8).any(|w| w == b"a known "));
        let mut out = Vec::new();
        assert_eq!(ns.open_packet(src, &wire, &mut out), Ok(()));
        assert_eq!(out, body);
        // Another sender address (a forwarder rewriting the source), another namespace
        // (same identifier, no key), any flipped bit or cut: refused.
        let forged = Address::from_bytes([2; 20]);
        assert_eq!(
            ns.open_packet(forged, &wire, &mut out),
            Err(Unsealed::Unauthentic)
        );
        assert!(out.is_empty());
        let stranger = Namespace::keyed(&NamespaceKey::random(&mut rng));
        assert_eq!(
            stranger.open_packet(src, &wire, &mut out),
            Err(Unsealed::WrongNamespace)
        );
        let mut injected = key.id().0.to_vec();
        injected.extend_from_slice(&[0u8; 80]);
        assert_eq!(
            ns.open_packet(src, &injected, &mut out),
            Err(Unsealed::Unauthentic)
        );
        for i in 0..wire.len() {
            let mut w = wire.clone();
            w[i] ^= 0x80;
            assert!(ns.open_packet(src, &w, &mut out).is_err(), "bit {i}");
        }
        for cut in 0..wire.len() {
            assert!(ns.open_packet(src, &wire[..cut], &mut out).is_err());
        }
        // An open namespace passes the body through, identifier first.
        let open = Namespace::open(key.id());
        let mut plain = Vec::new();
        open.seal_packet(&mut rng, src, body, &mut plain);
        assert_eq!(&plain[16..], body);
        assert_eq!(open.open_packet(forged, &plain, &mut out), Ok(()));
    }
}
