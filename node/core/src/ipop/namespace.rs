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
    /// Not UTF-8 text.
    #[error("namespace record is not text")]
    NotText,
    /// A required field is absent.
    #[error("namespace record without {0}")]
    Missing(&'static str),
    /// A field's value does not parse (the value is cut to 32 characters).
    #[error("namespace record: {field}={value:?} does not parse")]
    Unparsable {
        /// The field.
        field: &'static str,
        /// Its value, cut short.
        value: String,
    },
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

impl NamespaceRecord {
    /// The record as stored in the DHT: `key=value` lines.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!(
            "v=1\nname={}\nrange={}\nlease_s={}\nmtu={}\n",
            self.name.replace('\n', " "),
            self.range,
            self.lease.as_secs(),
            self.mtu
        );
        if let Some(dns) = self.dns {
            s.push_str(&format!("dns={dns}\n"));
        }
        s.into_bytes()
    }

    /// Parses a stored record and checks every field against the limits above; unknown
    /// keys are ignored (later versions may add some).
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let text = std::str::from_utf8(bytes).map_err(|_| RecordError::NotText)?;
        let mut name = String::new();
        let (mut range, mut lease, mut mtu, mut dns) = (None, None, None, None);
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let bad = |field| RecordError::Unparsable {
                field,
                value: v.chars().take(32).collect(),
            };
            match k {
                "name" => name = v.to_owned(),
                "range" => range = Some(v.parse::<Ipv4Range>().map_err(RecordError::Range)?),
                "lease_s" => lease = Some(v.parse::<u64>().map_err(|_| bad("lease_s"))?),
                "mtu" => mtu = Some(v.parse().map_err(|_| bad("mtu"))?),
                "dns" => dns = Some(v.parse().map_err(|_| bad("dns"))?),
                _ => {}
            }
        }
        let lease = lease.ok_or(RecordError::Missing("a lease time"))?;
        if !(MIN_LEASE.as_secs()..=MAX_LEASE.as_secs()).contains(&lease) {
            return Err(RecordError::Lease(lease));
        }
        let record = NamespaceRecord {
            name,
            range: range.ok_or(RecordError::Missing("a range"))?,
            lease: Duration::from_secs(lease),
            mtu: mtu.ok_or(RecordError::Missing("an MTU"))?,
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

    /// Fault 4 of issue 12: a record with any value in any field was taken (a lease of
    /// u64::MAX seconds then panicked the member that leased under it).
    #[test]
    fn fault4_out_of_range_namespace_records_are_refused() {
        let good = "v=1\nname=wow\nrange=10.128.0.0/12\nlease_s=43200\nmtu=1280\ndns=10.128.0.1\n";
        assert!(NamespaceRecord::decode(good.as_bytes()).is_ok());
        let with = |field: &str, value: &str| {
            let line = |l: &str| match l.split_once('=') {
                Some((k, _)) if k == field => format!("{k}={value}"),
                _ => l.to_owned(),
            };
            let text: Vec<String> = good.lines().map(line).collect();
            NamespaceRecord::decode(text.join("\n").as_bytes())
        };
        let max = u64::MAX.to_string();
        assert_eq!(with("lease_s", &max), Err(RecordError::Lease(u64::MAX)));
        assert_eq!(with("lease_s", "0"), Err(RecordError::Lease(0)));
        assert_eq!(with("lease_s", "59"), Err(RecordError::Lease(59)));
        assert_eq!(with("lease_s", "604801"), Err(RecordError::Lease(604_801)));
        assert!(with("lease_s", "604800").is_ok());
        assert!(matches!(
            with("lease_s", "-1"),
            Err(RecordError::Unparsable {
                field: "lease_s",
                ..
            })
        ));
        assert_eq!(with("mtu", "65535"), Err(RecordError::Mtu(65535)));
        assert_eq!(with("mtu", "100"), Err(RecordError::Mtu(100)));
        assert_eq!(with("mtu", "1501"), Err(RecordError::Mtu(1501)));
        assert!(with("mtu", "1500").is_ok() && with("mtu", "576").is_ok());
        for range in [
            "10.0.0.0/31",
            "10.0.0.0/7",
            "10.0.0.1/24",
            "127.0.0.0/8",
            "0.0.0.0/8",
            "224.0.0.0/8",
            "240.0.0.0/8",
            "10.0.0.0",
        ] {
            assert!(
                matches!(with("range", range), Err(RecordError::Range(_))),
                "{range}"
            );
        }
        assert!(with("range", "10.0.0.0/30").is_ok(), "one assignable host");
        for dns in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "250.1.1.1"] {
            assert!(
                matches!(with("dns", dns), Err(RecordError::Dns(_))),
                "{dns}"
            );
        }
        assert!(matches!(
            with("dns", "10.0.0.300"),
            Err(RecordError::Unparsable { field: "dns", .. })
        ));
        assert_eq!(with("name", &"x".repeat(65)), Err(RecordError::Name));
        assert_eq!(with("name", "a\u{1b}[2J"), Err(RecordError::Name));
        assert_eq!(
            NamespaceRecord::decode(b"v=1\nrange=10.0.0.0/24\nmtu=1280\n"),
            Err(RecordError::Missing("a lease time"))
        );
        assert_eq!(NamespaceRecord::decode(&[0xff]), Err(RecordError::NotText));
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
