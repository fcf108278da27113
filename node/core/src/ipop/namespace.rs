//! IPOP namespaces: isolated virtual IP networks that share one overlay (the WOW DHCP
//! paper, section 5). A namespace is a DHT record under a random identifier; each
//! virtual IP of a namespace is a DHT key `(namespace, IP)` whose value is the P2P
//! address of the node that owns the IP.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::time::Duration;

use rand::{Rng, RngExt};

use crate::address::Address;
use crate::wire::Error as WireError;
use crate::wire::codec::Reader;

/// A namespace identifier: 16 random bytes, written as 32 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NamespaceId(pub [u8; 16]);

impl NamespaceId {
    /// A new random identifier.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        NamespaceId(b)
    }

    /// The DHT key of the namespace record.
    pub fn record_key(&self) -> Vec<u8> {
        format!("ipop/ns/{self}").into_bytes()
    }

    /// The DHT key of virtual IP `ip` in this namespace (Brunet-ARP).
    pub fn ip_key(&self, ip: Ipv4Addr) -> Vec<u8> {
        format!("ipop/ip/{self}/{ip}").into_bytes()
    }

    /// The password that renews the namespace record. Derived from the identifier, so
    /// every node that knows the namespace (and only those) can keep the record alive.
    pub fn record_password(&self) -> Vec<u8> {
        Address::sha1(format!("ipop/ns-keeper/{self}").as_bytes())
            .as_bytes()
            .to_vec()
    }
}

impl From<NamespaceId> for super::Namespace {
    fn from(id: NamespaceId) -> Self {
        super::Namespace::open(id)
    }
}

impl fmt::Display for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NamespaceId({self})")
    }
}

impl FromStr for NamespaceId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::text::hex_bytes(s).map(NamespaceId).ok_or_else(|| {
            format!(
                "{:?} is not a namespace id (32 hexadecimal digits)",
                s.trim()
            )
        })
    }
}

/// An IPv4 network: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Range {
    /// The network address.
    pub network: Ipv4Addr,
    /// The prefix length (8..=30).
    pub prefix: u8,
}

impl Ipv4Range {
    /// The netmask.
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::MAX << (32 - u32::from(self.prefix)))
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !u32::from(self.mask()))
    }

    /// The virtual gateway: the first host address (never leased).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// Whether `ip` lies in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & u32::from(self.mask()) == u32::from(self.network)
    }

    /// Addresses a node may hold: all but the network, gateway and broadcast addresses.
    pub fn assignable(&self) -> u32 {
        (1u32 << (32 - u32::from(self.prefix))) - 3
    }

    /// Whether `ip` may be held by a node.
    pub fn is_assignable(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.network && ip != self.gateway() && ip != self.broadcast()
    }

    /// Why a node may not hold `ip` (None if it may): the reason names the address and
    /// the range, for the person who configured it.
    pub fn why_not_assignable(&self, ip: Ipv4Addr) -> Option<String> {
        if !self.contains(ip) {
            Some(format!("{ip} is outside the namespace's range {self}"))
        } else if ip == self.gateway() {
            Some(format!(
                "{ip} is the namespace's virtual gateway (the first host of {self}, which \
                 every node's DHCP server answers from): choose another address"
            ))
        } else if ip == self.network {
            Some(format!("{ip} is the network address of {self}"))
        } else if ip == self.broadcast() {
            Some(format!("{ip} is the broadcast address of {self}"))
        } else {
            None
        }
    }

    /// A uniformly random assignable address.
    pub fn random_host<R: Rng + ?Sized>(&self, rng: &mut R) -> Ipv4Addr {
        let offset = rng.random_range(2..2 + self.assignable());
        Ipv4Addr::from(u32::from(self.network) + offset)
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Why a text is not a range, or a range cannot serve a namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// Not `A.B.C.D/P`, or the prefix is outside 8..=30.
    #[error("{0:?} is not an IPv4 network like 10.128.0.0/12 (prefix 8..30)")]
    Syntax(String),
    /// Bits below the prefix are set.
    #[error("{text:?}: host bits are set (did you mean {network}/{prefix}?)")]
    HostBits {
        /// The range as written.
        text: String,
        /// The network it probably means.
        network: Ipv4Addr,
        /// Its prefix.
        prefix: u8,
    },
    /// The range lies where hosts would not route to a TAP.
    #[error("range {0} lies in 0.0.0.0/8, 127.0.0.0/8 or 224.0.0.0 and up")]
    Reserved(Ipv4Range),
}

impl FromStr for Ipv4Range {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RangeError::Syntax(s.to_string());
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let range = Ipv4Range {
            network: ip,
            prefix,
        };
        range.check_form(s)?;
        Ok(range)
    }
}

/// Shortest DHCP lease a namespace record may set (the driver refuses shorter ones when
/// it creates a record).
pub const MIN_LEASE: Duration = Duration::from_secs(60);
/// Longest DHCP lease a namespace record may set: the DHT keeps a value at most 7 days
/// (its default `max_ttl`), so a longer lease would vanish before its renewal.
pub const MAX_LEASE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Smallest MTU a namespace record may hand out (the IPv4 minimum datagram size).
pub const MIN_MTU: u16 = 576;
/// Largest MTU a namespace record may hand out: Ethernet's. A packet larger than its
/// path carries is cut into fragments, or answered with ICMP "fragmentation needed"
/// when it may not be cut; up to [`super::UNFRAGMENTED_MTU`] none is, on any edge of a
/// 1500-byte underlay.
pub const MAX_MTU: u16 = 1500;
/// Longest name a namespace record may carry.
pub const MAX_NAME: usize = 64;

/// Why a namespace record read from the DHT is refused. Anyone who knows a namespace's
/// identifier can rewrite its record, so every field is checked before it is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not a namespace record: another magic, cut short, or bytes after its end.
    #[error("not a namespace record ({0})")]
    Malformed(#[from] crate::wire::Error),
    /// The range is malformed or unusable (see [`Ipv4Range::check_usable`]).
    #[error("namespace record: {0}")]
    Range(RangeError),
    /// The lease time is outside [`MIN_LEASE`]..=[`MAX_LEASE`].
    #[error(
        "namespace record: lease {0} s is outside {min}..={max} s",
        min = MIN_LEASE.as_secs(),
        max = MAX_LEASE.as_secs()
    )]
    Lease(u64),
    /// The MTU is outside [`MIN_MTU`]..=[`MAX_MTU`].
    #[error("namespace record: mtu {0} is outside {MIN_MTU}..={MAX_MTU}")]
    Mtu(u16),
    /// The DNS server is not a unicast address.
    #[error("namespace record: dns {0} is not a unicast address")]
    Dns(Ipv4Addr),
    /// The name is longer than [`MAX_NAME`] bytes or holds control characters.
    #[error("namespace record: the name is longer than {MAX_NAME} bytes or not printable")]
    Name,
    /// A keyed namespace's record that was not sealed with its key (forged or damaged).
    #[error("namespace record not sealed with the namespace key (forged or damaged)")]
    Unauthentic,
}

impl Ipv4Range {
    /// Whether a namespace may use this range: not in 0.0.0.0/8, loopback (127/8),
    /// multicast or reserved space (224.0.0.0 and up), which hosts would not route to a
    /// TAP. (The prefix, 8..=30, leaves at least one assignable host.)
    pub fn check_usable(&self) -> Result<(), RangeError> {
        self.check_form(&self.to_string())?;
        let first = self.network.octets()[0];
        let last = self.broadcast().octets()[0];
        if first == 0 || first == 127 || last == 127 || last >= 224 {
            return Err(RangeError::Reserved(*self));
        }
        Ok(())
    }

    /// The prefix is 8..=30 and no host bit is set (`text`: the range as written).
    fn check_form(&self, text: &str) -> Result<(), RangeError> {
        if !(8..=30).contains(&self.prefix) {
            return Err(RangeError::Syntax(text.to_string()));
        }
        let mask = u32::from(self.mask());
        if u32::from(self.network) & !mask != 0 {
            return Err(RangeError::HostBits {
                text: text.to_string(),
                network: Ipv4Addr::from(u32::from(self.network) & mask),
                prefix: self.prefix,
            });
        }
        Ok(())
    }
}

/// What a namespace record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRecord {
    /// A name for people (at most [`MAX_NAME`] bytes).
    pub name: String,
    /// The virtual IP range.
    pub range: Ipv4Range,
    /// DHCP lease time ([`MIN_LEASE`]..=[`MAX_LEASE`]).
    pub lease: Duration,
    /// MTU handed to DHCP clients (option 26; [`MIN_MTU`]..=[`MAX_MTU`]).
    pub mtu: u16,
    /// DNS server handed to DHCP clients, if any (a unicast address).
    pub dns: Option<Ipv4Addr>,
}

/// An IPv4 address from the next four bytes.
fn ipv4(r: &mut Reader<'_>) -> Result<Ipv4Addr, WireError> {
    let b = r.bytes(4)?;
    Ok(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
}

/// The stored record's header: magic, version, kind (the overlay datagram header's form).
const RECORD_MAGIC: [u8; 2] = *b"NS";
const RECORD_VERSION: u8 = 2;
const RECORD_KIND: u8 = 1;
/// The longest stored record: header, lease, MTU, range, DNS, name.
pub const MAX_RECORD: usize = 4 + 4 + 2 + 5 + 5 + 1 + MAX_NAME;

impl NamespaceRecord {
    /// The record as stored in the DHT (at most [`MAX_RECORD`] bytes): the header
    /// (`NS`, version 2, kind 1), `lease_s u32 | mtu u16 | network [4] | prefix u8 |
    /// dns_present u8 | [dns [4]] | name_len u8 | name`, big-endian. A name longer than
    /// [`MAX_NAME`] bytes is cut at a character boundary (a checked record has none).
    pub fn encode(&self) -> Vec<u8> {
        let mut cut = self.name.len().min(MAX_NAME);
        while !self.name.is_char_boundary(cut) {
            cut -= 1;
        }
        let name = &self.name[..cut];
        let mut out = Vec::with_capacity(MAX_RECORD);
        out.extend_from_slice(&RECORD_MAGIC);
        out.extend_from_slice(&[RECORD_VERSION, RECORD_KIND]);
        let lease = u32::try_from(self.lease.as_secs()).unwrap_or(u32::MAX);
        out.extend_from_slice(&lease.to_be_bytes());
        out.extend_from_slice(&self.mtu.to_be_bytes());
        out.extend_from_slice(&self.range.network.octets());
        out.push(self.range.prefix);
        match self.dns {
            Some(d) => {
                out.push(1);
                out.extend_from_slice(&d.octets());
            }
            None => out.push(0),
        }
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out
    }

    /// Parses a stored record and checks every field against the limits above.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Reader::new(bytes);
        let kind = r.header(RECORD_MAGIC, RECORD_VERSION)?;
        if kind != RECORD_KIND {
            return Err(WireError::UnknownKind(kind).into());
        }
        let lease = Duration::from_secs(u64::from(r.u32()?));
        let mtu = r.u16()?;
        let network = ipv4(&mut r)?;
        let prefix = r.u8()?;
        let dns = match r.u8()? {
            0 => None,
            1 => Some(ipv4(&mut r)?),
            _ => return Err(WireError::BadValue.into()),
        };
        let len = usize::from(r.u8()?);
        if len > MAX_NAME {
            return Err(RecordError::Name);
        }
        let name = std::str::from_utf8(r.bytes(len)?).map_err(|_| RecordError::Name)?;
        r.finish()?;
        let record = NamespaceRecord {
            name: name.to_owned(),
            range: Ipv4Range { network, prefix },
            lease,
            mtu,
            dns,
        };
        record.check()?;
        Ok(record)
    }

    /// Checks every field against the limits above.
    pub fn check(&self) -> Result<(), RecordError> {
        if self.name.len() > MAX_NAME || self.name.chars().any(char::is_control) {
            return Err(RecordError::Name);
        }
        self.range.check_usable().map_err(RecordError::Range)?;
        if !(MIN_LEASE..=MAX_LEASE).contains(&self.lease) {
            return Err(RecordError::Lease(self.lease.as_secs()));
        }
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return Err(RecordError::Mtu(self.mtu));
        }
        match self.dns {
            Some(d) if d.is_unspecified() || d.is_broadcast() || d.is_multicast() => {
                Err(RecordError::Dns(d))
            }
            Some(d) if d.octets()[0] >= 240 => Err(RecordError::Dns(d)),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for NamespaceRecord {
    /// The record for people: `name=`, `range=`, `lease_s=`, `mtu=` and `dns=` lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "name={}", self.name)?;
        writeln!(f, "range={}", self.range)?;
        writeln!(f, "lease_s={}", self.lease.as_secs())?;
        writeln!(f, "mtu={}", self.mtu)?;
        match self.dns {
            Some(d) => writeln!(f, "dns={d}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
/// A stored record with any field values (the encoder writes only checked ones).
pub(crate) fn raw_record(
    lease: u32,
    mtu: u16,
    range: ([u8; 4], u8),
    dns: Option<[u8; 4]>,
    name: &[u8],
) -> Vec<u8> {
    let mut b = b"NS\x02\x01".to_vec();
    b.extend_from_slice(&lease.to_be_bytes());
    b.extend_from_slice(&mtu.to_be_bytes());
    b.extend_from_slice(&range.0);
    b.push(range.1);
    match dns {
        Some(d) => {
            b.push(1);
            b.extend_from_slice(&d);
        }
        None => b.push(0),
    }
    b.push(name.len() as u8);
    b.extend_from_slice(name);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    #[test]
    fn ranges_and_records_round_trip() {
        let r: Ipv4Range = "10.128.0.0/12".parse().unwrap();
        assert_eq!(r.mask(), Ipv4Addr::new(255, 240, 0, 0));
        assert_eq!(r.broadcast(), Ipv4Addr::new(10, 143, 255, 255));
        assert_eq!(r.gateway(), Ipv4Addr::new(10, 128, 0, 1));
        assert!(r.assignable() > 650_000, "the DHCP paper's namespace size");
        assert_eq!(
            "10.128.0.1/12".parse::<Ipv4Range>(),
            Err(RangeError::HostBits {
                text: "10.128.0.1/12".into(),
                network: Ipv4Addr::new(10, 128, 0, 0),
                prefix: 12
            })
        );
        let loopback: Ipv4Range = "127.0.0.0/8".parse().unwrap();
        assert_eq!(loopback.check_usable(), Err(RangeError::Reserved(loopback)));
        assert!("10.0.0.0/31".parse::<Ipv4Range>().is_err());
        let rec = NamespaceRecord {
            name: "wow".into(),
            range: r,
            lease: Duration::from_secs(43200),
            mtu: 1280,
            dns: Some(Ipv4Addr::new(10, 128, 0, 1)),
        };
        assert_eq!(NamespaceRecord::decode(&rec.encode()), Ok(rec));
        let id = NamespaceId([0xab; 16]);
        assert_eq!(id.to_string().parse(), Ok(id));
        assert!("zz".parse::<NamespaceId>().is_err());
    }

    /// Regression: a record with any value in any field was taken (a lease of
    /// u64::MAX seconds then panicked the member that leased under it). Every field is
    /// checked, and anything that is not one whole record is refused.
    #[test]
    fn fault4_out_of_range_namespace_records_are_refused() {
        let net = ([10, 128, 0, 0], 12);
        let good = raw_record(43200, 1280, net, Some([10, 128, 0, 1]), b"wow");
        let rec = NamespaceRecord::decode(&good).unwrap();
        assert_eq!(rec.encode(), good, "one encoding");
        let lease = |s| NamespaceRecord::decode(&raw_record(s, 1280, net, None, b"wow"));
        assert_eq!(
            lease(u32::MAX),
            Err(RecordError::Lease(u64::from(u32::MAX)))
        );
        assert_eq!(lease(0), Err(RecordError::Lease(0)));
        assert_eq!(lease(59), Err(RecordError::Lease(59)));
        assert_eq!(lease(604_801), Err(RecordError::Lease(604_801)));
        assert!(lease(604_800).is_ok());
        let mtu = |m| NamespaceRecord::decode(&raw_record(43200, m, net, None, b"wow"));
        assert_eq!(mtu(65535), Err(RecordError::Mtu(65535)));
        assert_eq!(mtu(100), Err(RecordError::Mtu(100)));
        assert_eq!(mtu(1501), Err(RecordError::Mtu(1501)));
        assert!(mtu(1500).is_ok() && mtu(576).is_ok());
        let range = |r| NamespaceRecord::decode(&raw_record(43200, 1280, r, None, b"wow"));
        for r in [
            ([10, 0, 0, 0], 31),
            ([10, 0, 0, 0], 7),
            ([10, 0, 0, 1], 24),
            ([127, 0, 0, 0], 8),
            ([0, 0, 0, 0], 8),
            ([224, 0, 0, 0], 8),
            ([240, 0, 0, 0], 8),
        ] {
            assert!(matches!(range(r), Err(RecordError::Range(_))), "{r:?}");
        }
        assert!(range(([10, 0, 0, 0], 30)).is_ok(), "one assignable host");
        for d in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [224, 0, 0, 1],
            [250, 1, 1, 1],
        ] {
            let r = NamespaceRecord::decode(&raw_record(43200, 1280, net, Some(d), b"wow"));
            assert!(matches!(r, Err(RecordError::Dns(_))), "{d:?}");
        }
        for name in [&b"x".repeat(65)[..], b"a\x1b[2J", b"\xff"] {
            let r = NamespaceRecord::decode(&raw_record(43200, 1280, net, None, name));
            assert_eq!(r, Err(RecordError::Name), "{name:?}");
        }
        // Cut short, longer, another magic, version or kind, a bad DNS flag: malformed.
        for cut in 0..good.len() {
            assert!(matches!(
                NamespaceRecord::decode(&good[..cut]),
                Err(RecordError::Malformed(_))
            ));
        }
        let mut longer = good.clone();
        longer.push(0);
        for (at, value) in [(usize::MAX, 0), (0, b'X'), (2, 1), (3, 2), (15, 2)] {
            let mut b = if at == usize::MAX {
                longer.clone()
            } else {
                good.clone()
            };
            if let Some(x) = b.get_mut(at) {
                *x = value;
            }
            assert!(
                matches!(NamespaceRecord::decode(&b), Err(RecordError::Malformed(_))),
                "byte {at} = {value}"
            );
        }
        assert!(good.len() <= MAX_RECORD);
        let text = "name=wow\nrange=10.128.0.0/12\nlease_s=43200\nmtu=1280\ndns=10.128.0.1\n";
        assert_eq!(rec.to_string(), text);
    }

    #[test]
    fn fault9_addresses_a_node_may_not_hold_say_why() {
        let r: Ipv4Range = "10.9.0.0/24".parse().unwrap();
        let why = |ip: [u8; 4]| r.why_not_assignable(Ipv4Addr::from(ip));
        assert!(why([10, 9, 0, 1]).unwrap().contains("virtual gateway"));
        assert!(why([10, 9, 0, 0]).unwrap().contains("network address"));
        assert!(why([10, 9, 0, 255]).unwrap().contains("broadcast address"));
        assert!(why([10, 8, 0, 7]).unwrap().contains("outside"));
        assert_eq!(why([10, 9, 0, 2]), None);
    }

    #[test]
    fn random_hosts_are_assignable() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let r: Ipv4Range = "10.0.0.0/29".parse().unwrap();
        for _ in 0..200 {
            let ip = r.random_host(&mut rng);
            assert!(r.is_assignable(ip), "{ip}");
        }
    }
}
