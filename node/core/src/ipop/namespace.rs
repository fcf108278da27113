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
        let s = s.trim();
        if s.len() != 32 || !s.is_ascii() {
            return Err(format!(
                "{s:?} is not a namespace id (32 hexadecimal digits)"
            ));
        }
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("{s:?} is not a namespace id (32 hexadecimal digits)"))?;
        }
        Ok(NamespaceId(b))
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

impl FromStr for Ipv4Range {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not an IPv4 network like 10.128.0.0/12 (prefix 8..30)");
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let range = Ipv4Range {
            network: ip,
            prefix,
        };
        if u32::from(ip) & !u32::from(range.mask()) != 0 {
            return Err(format!(
                "{s:?}: host bits are set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(ip) & u32::from(range.mask()))
            ));
        }
        Ok(range)
    }
}

/// What a namespace record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRecord {
    /// A name for people.
    pub name: String,
    /// The virtual IP range.
    pub range: Ipv4Range,
    /// DHCP lease time.
    pub lease: Duration,
    /// MTU handed to DHCP clients (option 26).
    pub mtu: u16,
    /// DNS server handed to DHCP clients, if any.
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

    /// Parses a stored record; unknown keys are ignored (later versions may add some).
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| "namespace record is not text".to_owned())?;
        let mut name = String::new();
        let (mut range, mut lease, mut mtu, mut dns) = (None, None, None, None);
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "name" => name = v.to_owned(),
                "range" => range = Some(v.parse::<Ipv4Range>()?),
                "lease_s" => {
                    lease = Some(Duration::from_secs(v.parse().map_err(|_| "bad lease_s")?))
                }
                "mtu" => mtu = Some(v.parse().map_err(|_| "bad mtu")?),
                "dns" => dns = Some(v.parse().map_err(|_| "bad dns")?),
                _ => {}
            }
        }
        Ok(NamespaceRecord {
            name,
            range: range.ok_or("namespace record without a range")?,
            lease: lease.ok_or("namespace record without a lease time")?,
            mtu: mtu.ok_or("namespace record without an MTU")?,
            dns,
        })
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
        assert!(
            "10.128.0.1/12"
                .parse::<Ipv4Range>()
                .unwrap_err()
                .contains("10.128.0.0/12")
        );
        assert!("10.0.0.0/31".parse::<Ipv4Range>().is_err());
        let rec = NamespaceRecord {
            name: "wow".into(),
            range: r,
            lease: Duration::from_secs(43200),
            mtu: 1400,
            dns: Some(Ipv4Addr::new(10, 128, 0, 1)),
        };
        assert_eq!(NamespaceRecord::decode(&rec.encode()), Ok(rec));
        let id = NamespaceId([0xab; 16]);
        assert_eq!(id.to_string().parse(), Ok(id));
        assert!("zz".parse::<NamespaceId>().is_err());
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
