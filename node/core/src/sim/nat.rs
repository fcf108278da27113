//! NATs in front of simulated nodes, with the mapping and filtering rules of the netns
//! testbed's profiles (RFC 4787 terms): every NAT maps the node's one UDP socket to its
//! own public address; cone NATs keep one public port for every destination
//! (endpoint-independent mapping), a symmetric NAT gives each destination its own
//! (address-and-port-dependent mapping). Filtering: full cone lets anyone in; a
//! address-restricted NAT only hosts the inside has sent to; a port-restricted NAT only
//! their exact address and port; a symmetric NAT only the destination of that mapping.
//!
//! Not modelled: mapping timeouts (the overlay's 5 s keepalives stay far below any NAT's),
//! hairpinning (every NAT has one node behind it), port preservation failures of cone
//! NATs, and TCP (the simulator carries UDP only), so the testbed's UDP-blocked
//! firewall has no counterpart here.

use std::net::SocketAddrV4;
use std::str::FromStr;

use rand::RngExt;

use crate::NatProfile;

/// A mix of NAT profiles, as shares of the nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct NatMix {
    shares: Vec<(NatProfile, f64)>,
}

impl NatMix {
    /// A mix close to measurements of deployed peers: a fifth of the nodes public, 15 %
    /// behind symmetric NATs, the rest behind NATs that UDP hole punching traverses.
    /// Ford, Srisuresh and Kegel ("Peer-to-Peer Communication Across Network Address
    /// Translators", USENIX ATC 2005) found about 82 % of the NATs they tested support
    /// UDP hole punching (here 65 of 80: 81 %); Halkes and Pouwelse ("UDP NAT and
    /// Firewall Puncturing in the Wild", IFIP Networking 2011) found about 64 % of a
    /// P2P network's peers behind a NAT or firewall that allows it (here 65 %).
    pub fn realistic() -> Self {
        NatMix {
            shares: vec![
                (NatProfile::None, 0.20),
                (NatProfile::FullCone, 0.10),
                (NatProfile::AddressRestricted, 0.15),
                (NatProfile::PortRestricted, 0.40),
                (NatProfile::Symmetric, 0.15),
            ],
        }
    }

    /// Draws one node's profile.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> NatProfile {
        let total: f64 = self.shares.iter().map(|(_, w)| w).sum();
        let mut x = rng.random_range(0.0..total);
        for &(p, w) in &self.shares {
            if x < w {
                return p;
            }
            x -= w;
        }
        self.shares.last().map_or(NatProfile::None, |(p, _)| *p)
    }
}

impl std::fmt::Display for NatMix {
    /// `PROFILE:SHARE,...`, as parsed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (p, w)) in self.shares.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}:{w}", p.as_str())?;
        }
        Ok(())
    }
}

/// Why a NAT mix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatMixError {
    /// An entry is not `PROFILE:SHARE`.
    #[error("`{0}` is not PROFILE:SHARE (e.g. symmetric:15)")]
    Entry(String),
    /// An unknown profile name.
    #[error(
        "unknown NAT profile `{0}` (none, full-cone, address-restricted, port-restricted, symmetric)"
    )]
    Profile(String),
    /// A share that is not a finite number ≥ 0.
    #[error("share `{0}` is not a number of at least 0")]
    Share(String),
    /// All shares are zero.
    #[error("the shares add up to 0")]
    Empty,
}

impl FromStr for NatMix {
    type Err = NatMixError;

    /// `realistic`, or comma-separated `PROFILE:SHARE` (shares are relative weights).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "realistic" {
            return Ok(NatMix::realistic());
        }
        let mut shares = Vec::new();
        for entry in s.split(',') {
            let (name, share) = entry
                .split_once(':')
                .ok_or_else(|| NatMixError::Entry(entry.to_owned()))?;
            let profile = NatProfile::ALL
                .into_iter()
                .find(|p| p.as_str() == name.trim())
                .ok_or_else(|| NatMixError::Profile(name.to_owned()))?;
            let w: f64 = share
                .trim()
                .parse()
                .ok()
                .filter(|w: &f64| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| NatMixError::Share(share.to_owned()))?;
            shares.push((profile, w));
        }
        if shares.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
            return Err(NatMixError::Empty);
        }
        Ok(NatMix { shares })
    }
}

/// The public port of cone NATs and of nodes without one.
pub(super) const PUBLIC_PORT: u16 = 4000;
/// The first public port a symmetric NAT hands out.
const FIRST_SYMMETRIC_PORT: u16 = 20_000;

/// One NAT's state.
#[derive(Debug)]
pub(super) struct Nat {
    profile: NatProfile,
    /// Remote endpoints the inside has sent to, sorted (restricted filtering looks at
    /// their addresses, port-restricted at both).
    sent_to: Vec<u64>,
    /// A symmetric NAT's mappings: the remote endpoint of public port
    /// `FIRST_SYMMETRIC_PORT + i`.
    mappings: Vec<u64>,
}

fn key(a: SocketAddrV4) -> u64 {
    u64::from(a.ip().to_bits()) << 16 | u64::from(a.port())
}

impl Nat {
    pub(super) fn new(profile: NatProfile) -> Self {
        Nat {
            profile,
            sent_to: Vec::new(),
            mappings: Vec::new(),
        }
    }

    pub(super) fn profile(&self) -> NatProfile {
        self.profile
    }

    /// The inside sends to `remote`: the public port the datagram leaves from, or
    /// `None` if a symmetric NAT has no port left.
    pub(super) fn outbound(&mut self, remote: SocketAddrV4) -> Option<u16> {
        let k = key(remote);
        if let Err(i) = self.sent_to.binary_search(&k) {
            self.sent_to.insert(i, k);
        }
        if self.profile != NatProfile::Symmetric {
            return Some(PUBLIC_PORT);
        }
        let i = match self.mappings.iter().position(|m| *m == k) {
            Some(i) => i,
            None => {
                self.mappings.push(k);
                self.mappings.len() - 1
            }
        };
        u16::try_from(i)
            .ok()
            .and_then(|i| FIRST_SYMMETRIC_PORT.checked_add(i))
    }

    /// Whether a datagram from `remote` to public port `port` gets in.
    pub(super) fn inbound(&self, port: u16, remote: SocketAddrV4) -> bool {
        let sent_to_host = || {
            let host = u64::from(remote.ip().to_bits()) << 16;
            let i = self.sent_to.partition_point(|k| *k < host);
            self.sent_to.get(i).is_some_and(|k| k >> 16 == host >> 16)
        };
        match self.profile {
            NatProfile::None | NatProfile::FullCone => port == PUBLIC_PORT,
            NatProfile::AddressRestricted => port == PUBLIC_PORT && sent_to_host(),
            NatProfile::PortRestricted => {
                port == PUBLIC_PORT && self.sent_to.binary_search(&key(remote)).is_ok()
            }
            NatProfile::Symmetric => port
                .checked_sub(FIRST_SYMMETRIC_PORT)
                .and_then(|i| self.mappings.get(usize::from(i)))
                .is_some_and(|m| *m == key(remote)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{Network, Sim};
    use super::*;
    use crate::overlay::{Config, Edge};

    fn at(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn each_profile_maps_and_filters_as_the_testbed_does() {
        let (a, a2, b) = (
            at("198.18.0.1:4000"),
            at("198.18.0.1:5000"),
            at("198.18.0.2:4000"),
        );
        let mut full = Nat::new(NatProfile::FullCone);
        assert!(full.inbound(PUBLIC_PORT, b), "anyone gets in");
        assert!(!full.inbound(4001, b), "on its public port only");
        assert_eq!(full.outbound(a), Some(PUBLIC_PORT));

        let mut restricted = Nat::new(NatProfile::AddressRestricted);
        assert!(!restricted.inbound(PUBLIC_PORT, a));
        restricted.outbound(a);
        assert!(
            restricted.inbound(PUBLIC_PORT, a2),
            "any port of a host sent to"
        );
        assert!(!restricted.inbound(PUBLIC_PORT, b));

        let mut port = Nat::new(NatProfile::PortRestricted);
        port.outbound(a);
        assert!(port.inbound(PUBLIC_PORT, a));
        assert!(!port.inbound(PUBLIC_PORT, a2), "only the exact endpoint");

        let mut sym = Nat::new(NatProfile::Symmetric);
        let pa = sym.outbound(a).unwrap();
        let pb = sym.outbound(b).unwrap();
        assert_ne!(pa, pb, "one public port per destination");
        assert_eq!(sym.outbound(a), Some(pa), "kept for the same destination");
        assert!(sym.inbound(pa, a));
        assert!(!sym.inbound(pa, b), "another host on a's mapping");
        assert!(!sym.inbound(pb, a));
        assert!(!sym.inbound(PUBLIC_PORT, a));
    }

    /// Two nodes behind `pa` and `pb` and a public bootstrap node: how the pair's
    /// connection ends up, after 30 virtual seconds.
    fn pair(pa: NatProfile, pb: NatProfile, seed: u64) -> Option<Edge> {
        let mut sim = Sim::new(seed, Network::default(), Config::default());
        let c = sim.add_node();
        let a = sim.add_node_behind(pa);
        let b = sim.add_node_behind(pb);
        let boot = [sim.node(c).transport];
        for i in [c, a, b] {
            sim.start(i, &boot);
        }
        sim.run_for(Duration::from_secs(30));
        for i in [a, b, c] {
            assert!(
                sim.node(i).stack.node.is_correctly_connected(),
                "{pa:?} {pb:?}"
            );
        }
        sim.connection(a, b).map(|x| x.edge)
    }

    #[test]
    fn hole_punching_joins_what_it_can_and_a_relay_the_rest() {
        use NatProfile::*;
        for (pa, pb, direct) in [
            (FullCone, PortRestricted, true),
            (AddressRestricted, PortRestricted, true),
            (PortRestricted, PortRestricted, true),
            (Symmetric, FullCone, true),
            (Symmetric, AddressRestricted, true),
            (Symmetric, PortRestricted, false),
            (Symmetric, Symmetric, false),
        ] {
            let edge = pair(pa, pb, 3);
            match edge {
                Some(Edge::Direct(_)) if direct => {}
                Some(Edge::Relay { .. }) if !direct => {}
                other => panic!("{pa:?} / {pb:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn mixes_parse_and_bad_ones_say_why() {
        let mix: NatMix = "none:1,symmetric:3".parse().unwrap();
        let mut rng = <rand::rngs::Xoshiro256PlusPlus as rand::SeedableRng>::seed_from_u64(1);
        let symmetric = (0..4000)
            .filter(|_| mix.sample(&mut rng) == NatProfile::Symmetric)
            .count();
        assert!((2800..3200).contains(&symmetric), "{symmetric}");
        assert_eq!("realistic".parse::<NatMix>().unwrap(), NatMix::realistic());
        let text = NatMix::realistic().to_string();
        assert_eq!(
            text.parse::<NatMix>().unwrap(),
            NatMix::realistic(),
            "{text}"
        );
        assert!(matches!(
            "cone:1".parse::<NatMix>(),
            Err(NatMixError::Profile(_))
        ));
        assert!(matches!(
            "none".parse::<NatMix>(),
            Err(NatMixError::Entry(_))
        ));
        assert!(matches!(
            "none:-1".parse::<NatMix>(),
            Err(NatMixError::Share(_))
        ));
        assert!(matches!(
            "none:0".parse::<NatMix>(),
            Err(NatMixError::Empty)
        ));
    }
}
