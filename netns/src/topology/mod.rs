//! Topology files: what sites, routers, public hosts and WAN links a testbed has.
//!
//! [`Topology::load`] and [`Topology::parse`] return a topology that has passed every
//! check (unknown keys, overlapping subnets, names that do not exist, impossible values);
//! any failure is a [`TopologyError`] naming the file, line, column and reason.

mod matrix;
mod raw;
mod validate;

pub(crate) use validate::FIRST_HOST_OFFSET;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use ipnet::Ipv4Net;
use ipop_core::text::Located;

pub use matrix::{MatrixProfile, nat_matrix};

/// The block every underlay address comes from (RFC 2544 benchmarking range).
pub const UNDERLAY: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15);

/// The default subnet of the public core, where routers and public hosts meet.
pub const DEFAULT_CORE: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 16);

/// A validated topology.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// The topology's name (also its file stem by convention).
    pub name: String,
    /// Free text shown by `wow-bench topo show`.
    pub description: Option<String>,
    /// The public core's subnet.
    pub core: Ipv4Net,
    /// Sites: a LAN behind a router.
    pub sites: Vec<Site>,
    /// Groups of hosts attached directly to the public core.
    pub public: Vec<PublicGroup>,
    /// Emulated WAN links between a site router (or a public host) and the core.
    pub wans: Vec<Wan>,
    /// What the overlay running on this testbed should use (read by the harness).
    pub overlay: Overlay,
}

/// A LAN of `hosts` hosts on one bridge behind a router.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// Site name; its router is `<name>-gw`, its hosts `<name>-0`, `<name>-1`, ...
    pub name: String,
    /// Number of hosts on the LAN.
    pub hosts: u32,
    /// LAN subnet; the router takes the first address, hosts start at the tenth.
    pub subnet: Ipv4Net,
    /// How the router translates addresses.
    pub nat: NatProfile,
    /// What the router lets through.
    pub firewall: Firewall,
    /// Whether the router loops LAN traffic sent to its own public mappings back in.
    pub hairpin: bool,
    /// Idle time after which the router forgets a UDP binding (kernel default if unset).
    pub binding_timeout: Option<Duration>,
}

/// How a site router maps and filters (shared with the simulator's NAT model).
pub use ipop_core::NatProfile;

/// What a site router's firewall lets through (applied after the NAT rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firewall {
    /// Nothing beyond what the NAT profile drops.
    Open,
    /// Stateful: the LAN may open flows; unsolicited inbound packets are dropped.
    OutboundOnly,
    /// All forwarded UDP is dropped (forces TCP edges).
    UdpBlocked,
    /// Lines in `iptables-restore` syntax for the filter table (`-A FORWARD ...`).
    Custom(Vec<String>),
}

impl Firewall {
    /// The name used in topology files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Firewall::Open => "open",
            Firewall::OutboundOnly => "outbound-only",
            Firewall::UdpBlocked => "udp-blocked",
            Firewall::Custom(_) => "custom",
        }
    }
}

/// `count` hosts named `<name>-0`, `<name>-1`, ... on the public core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicGroup {
    /// Group name, the stem of its hosts' names.
    pub name: String,
    /// Number of hosts.
    pub count: u32,
    /// Public addresses per host (more than one for STUN-like servers).
    pub addresses: u32,
}

/// Which end of the core a WAN link attaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attachment {
    /// The router of the named site.
    Site(String),
    /// The named public host.
    Host(String),
}

/// An emulated WAN link between the core and a router or public host.
#[derive(Debug, Clone, PartialEq)]
pub struct Wan {
    /// The end that is not the core.
    pub attach: Attachment,
    /// What the link does to packets (each direction alike).
    pub link: LinkParams,
}

/// Per-direction link behaviour: a packet waits `delay ± jitter`, is lost with
/// probability `loss`, and the direction carries at most `rate_mbit`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkParams {
    /// One-way delay.
    pub delay: Duration,
    /// Uniform jitter around the delay (never reorders packets).
    pub jitter: Duration,
    /// Loss probability in `[0, 1)`.
    pub loss: f64,
    /// Rate limit in Mbit/s, or none.
    pub rate_mbit: Option<f64>,
    /// The link's MTU (both ends and the emulator's wire), or Ethernet's 1500. A router
    /// that forwards a larger DF packet into it answers "fragmentation needed"; the core
    /// switch, like many Internet paths, drops it silently.
    pub mtu: Option<u16>,
}

/// The overlay settings a topology suggests to the harness.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overlay {
    /// Hosts whose nodes others bootstrap from.
    pub bootstrap: Vec<String>,
    /// IPOP namespaces to create.
    pub namespaces: Vec<IpopNamespace>,
}

/// An IPOP namespace record: the virtual address range and its DHCP lease time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpopNamespace {
    /// Virtual address range handed out by the decentralized DHCP.
    pub range: Ipv4Net,
    /// Lease time.
    pub lease: Duration,
}

/// Why a topology was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// The file could not be read.
    #[error("{file}: cannot read topology: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has unknown keys, or holds an impossible value.
    #[error(transparent)]
    Invalid(#[from] Located),
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, TopologyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            file: file.clone(),
            source,
        })?;
        Topology::parse(&text, &file)
    }

    /// Validates topology text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Topology, TopologyError> {
        let raw: raw::File = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            Located::new(text, file, at, e.message())
        })?;
        Ok(
            validate::validate(raw)
                .map_err(|e| Located::new(text, file, e.span.start, e.reason))?,
        )
    }

    /// Names of every host that runs workloads: site hosts, then public hosts.
    pub fn host_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for site in &self.sites {
            names.extend((0..site.hosts).map(|i| format!("{}-{i}", site.name)));
        }
        for group in &self.public {
            names.extend((0..group.count).map(|i| format!("{}-{i}", group.name)));
        }
        names
    }
}

#[cfg(test)]
mod tests;
