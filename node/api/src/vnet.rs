//! The `ipop` part of the status: the virtual network of a node with a namespace.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The virtual network of a node with a namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ipop {
    /// The namespace id.
    pub namespace: String,
    /// Whether the namespace is keyed.
    pub keyed: bool,
    /// How virtual IPs map to nodes.
    pub mapping: AddressMapping,
    /// The TAP device's name.
    pub tap: String,
    /// The MTU set on the TAP.
    pub mtu: u16,
    /// Whether the TAP runs with offloads (TSO in, coalesced frames out).
    #[serde(default)]
    pub offload: bool,
    /// The virtual addresses this node holds.
    pub addresses: Vec<Ipv4Addr>,
    /// The namespace record, once read from the DHT.
    pub record: Option<Record>,
    /// Frames read from the TAP.
    pub frames_in: u64,
    /// Frames written to the TAP.
    pub frames_out: u64,
    /// Frames for the TAP dropped because it was full.
    pub tap_write_drops: u64,
    /// Other failed TAP reads, writes and waits.
    pub tap_errors: u64,
    /// The Brunet-ARP resolver.
    pub resolver: Resolver,
    /// The virtual network's counters.
    pub stats: IpopStats,
    /// When the steps of the host's first address happened.
    pub timeline: Timeline,
}

/// Seconds from the node's start to each step of the host's first address (absent until
/// it happened): where DHCP's time goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeline {
    /// The namespace record was read from the DHT.
    pub record_s: Option<f64>,
    /// The host's DHCP client asked (DISCOVER).
    pub discover_s: Option<f64>,
    /// The address was created in the DHT (a majority of its replicas) and offered.
    pub offer_s: Option<f64>,
    /// The host's request was acknowledged (ACK).
    pub ack_s: Option<f64>,
}

/// How virtual IPs map to nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressMapping {
    /// Brunet-ARP: looked up in the DHT.
    #[default]
    Dht,
    /// The SHA-1 of the IP.
    Hash,
}

/// A namespace record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// Its name.
    pub name: String,
    /// The virtual IP range (CIDR).
    pub range: String,
    /// The DHCP lease time.
    pub lease_s: u64,
    /// The MTU handed to DHCP clients.
    pub mtu: u16,
    /// The DNS server handed to DHCP clients.
    pub dns: Option<Ipv4Addr>,
}

/// The Brunet-ARP resolver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resolver {
    /// Packets waiting for a lookup.
    pub queued: u64,
    /// Cached mappings.
    pub cached: u64,
    /// The first 64 cached mappings, by IP.
    pub mappings: Vec<Resolved>,
}

/// A cached Brunet-ARP mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// The virtual IP.
    pub ip: Ipv4Addr,
    /// The P2P address of the node that owns it.
    pub owner: String,
}

/// The virtual network's counters (`node/README.md` says what each counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpopStats {
    pub arp_replies: u64,
    pub dhcp_messages: u64,
    pub last_dhcp_tries: u32,
    pub dhcp_failures: u64,
    pub dhcp_refused: u64,
    pub lookups: u64,
    pub to_overlay: u64,
    pub to_overlay_direct: u64,
    pub from_overlay: u64,
    pub broadcasts: u64,
    pub multicasts: u64,
    pub igmp_ignored: u64,
    pub dropped_non_ipv4: u64,
    pub dropped_malformed: u64,
    pub dropped_unowned_source: u64,
    pub dropped_outside_namespace: u64,
    pub dropped_queue_full: u64,
    pub dropped_unresolved: u64,
    pub dropped_no_route: u64,
    pub dropped_wrong_namespace: u64,
    pub dropped_not_here: u64,
    pub dropped_spoofed: u64,
    pub dhcp_exhausted: u64,
    pub refused_records: u64,
    pub refused_addresses: u64,
    pub dropped_unauthentic: u64,
    pub refused_mappings: u64,
    pub mss_clamped: u64,
    pub fragmented: u64,
    pub frag_needed_sent: u64,
    pub dropped_too_big: u64,
}

impl IpopStats {
    /// The counters that are not zero, by name in the order of names (for a one-line
    /// summary).
    pub fn nonzero(&self) -> Vec<(String, u64)> {
        crate::status::nonzero(self)
    }
}
