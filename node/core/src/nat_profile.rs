//! How a NAT in front of a host maps and filters UDP (RFC 4787 terms): the profiles the
//! netns testbed builds with iptables and the simulator models in memory.

use std::fmt;

/// How a site router (or a simulated node's NAT) maps and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatProfile {
    /// No translation: a public (or routed) address; a firewall may still filter.
    None,
    /// Endpoint-independent mapping and filtering.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering.
    AddressRestricted,
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestricted,
    /// Address-and-port-dependent mapping and filtering.
    Symmetric,
}

impl NatProfile {
    /// Every profile, from the most open to the least.
    pub const ALL: [NatProfile; 5] = [
        NatProfile::None,
        NatProfile::FullCone,
        NatProfile::AddressRestricted,
        NatProfile::PortRestricted,
        NatProfile::Symmetric,
    ];

    /// The profile's name, as topology files and `ipop-sim --nat-mix` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            NatProfile::None => "none",
            NatProfile::FullCone => "full-cone",
            NatProfile::AddressRestricted => "address-restricted",
            NatProfile::PortRestricted => "port-restricted",
            NatProfile::Symmetric => "symmetric",
        }
    }

    /// Parses a name (`restricted` is accepted for `address-restricted`).
    pub fn from_name(name: &str) -> Option<NatProfile> {
        match name {
            "restricted" => Some(NatProfile::AddressRestricted),
            _ => NatProfile::ALL.into_iter().find(|p| p.as_str() == name),
        }
    }
}

impl fmt::Display for NatProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
