//! The `nat-matrix` topology: two sites with one host each behind a chosen pair of
//! router profiles, and one public bootstrap host with two addresses (so it can also
//! serve the STUN-like probe that classifies each site's NAT).

use std::fmt;

use super::{NatProfile, Topology};

/// A router behaviour of the NAT matrix: a NAT profile, or a non-NAT firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatrixProfile {
    /// A NAT profile with an open firewall.
    Nat(NatProfile),
    /// No NAT, stateful outbound-only firewall.
    Firewall,
    /// No NAT, all UDP dropped.
    UdpBlocked,
}

impl MatrixProfile {
    /// Every profile of the matrix, in the order of the hole-punching table.
    pub const ALL: [MatrixProfile; 7] = [
        MatrixProfile::Nat(NatProfile::None),
        MatrixProfile::Nat(NatProfile::FullCone),
        MatrixProfile::Nat(NatProfile::AddressRestricted),
        MatrixProfile::Nat(NatProfile::PortRestricted),
        MatrixProfile::Nat(NatProfile::Symmetric),
        MatrixProfile::Firewall,
        MatrixProfile::UdpBlocked,
    ];

    /// The profile's name (`firewall` and `udp-blocked` besides the NAT names).
    pub fn as_str(self) -> &'static str {
        match self {
            MatrixProfile::Nat(n) => n.as_str(),
            MatrixProfile::Firewall => "firewall",
            MatrixProfile::UdpBlocked => "udp-blocked",
        }
    }

    /// Parses a profile name.
    pub fn from_name(name: &str) -> Option<MatrixProfile> {
        MatrixProfile::ALL.into_iter().find(|p| p.as_str() == name)
    }

    fn site_keys(self) -> String {
        match self {
            MatrixProfile::Nat(n) => format!("nat = \"{n}\"\nfirewall = \"open\""),
            MatrixProfile::Firewall => "nat = \"none\"\nfirewall = \"outbound-only\"".into(),
            MatrixProfile::UdpBlocked => "nat = \"none\"\nfirewall = \"udp-blocked\"".into(),
        }
    }
}

impl fmt::Display for MatrixProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `nat-matrix` topology for one pair of profiles: site `a` (host `a-0`) behind
/// `a`, site `b` (host `b-0`) behind `b`, and `public-0` with two public addresses.
pub fn nat_matrix(a: MatrixProfile, b: MatrixProfile) -> Topology {
    let text = format!(
        "name = \"nat-matrix\"\n\
         description = \"{a} vs {b}: one host per site, one public bootstrap host\"\n\
         [[site]]\nname = \"a\"\nhosts = 1\n{}\n\
         [[site]]\nname = \"b\"\nhosts = 1\n{}\n\
         [[public]]\nname = \"public\"\ncount = 1\naddresses = 2\n\
         [overlay]\nbootstrap = [\"public-0\"]\n",
        a.site_keys(),
        b.site_keys(),
    );
    Topology::parse(&text, "nat-matrix").unwrap_or_else(|e| {
        unreachable!("the nat-matrix template is valid for every profile pair: {e}")
    })
}
