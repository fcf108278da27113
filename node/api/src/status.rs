//! The node's status: what `ipop-node status --json` prints, field by field as
//! `node/README.md` documents it. Addresses are 40 lowercase hex digits, transports are
//! URIs (`udp://IP:PORT`), times are seconds (RTTs milliseconds) as floats; a `None`
//! is `null` in the JSON, except [`Status::ipop`] and [`Nat::public_ips`], which are
//! absent.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use crate::vnet::{AddressMapping, Ipop, IpopStats, Record, Resolved, Resolver, Timeline};

/// The full status of a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// This node's P2P address.
    pub address: String,
    /// The overlay's name.
    pub overlay: String,
    /// False once the node has left.
    pub running: bool,
    /// Both ring neighbours are linked.
    pub correctly_connected: bool,
    /// Seconds since the node started.
    pub uptime_s: f64,
    /// The node's resident memory, MiB (where the system tells).
    pub rss_mib: Option<f64>,
    /// Seconds from start to its first connection (a link to a bootstrap node).
    pub linked_after_s: Option<f64>,
    /// Seconds from start to the first time it was correctly connected.
    pub connected_after_s: Option<f64>,
    /// Its ring neighbours.
    pub ring: Ring,
    /// Its transport addresses.
    pub transports: Transports,
    /// How its traffic looks from outside.
    pub nat: Nat,
    /// The secure layer's counters, with an overlay secret.
    pub secure: Option<Secure>,
    /// One entry per connection.
    pub connections: Vec<Connection>,
    /// The overlay's and the driver's counters.
    pub stats: Stats,
    /// The DHT replica this node keeps.
    pub dht: Dht,
    /// Routed messages no layer claims, dropped beyond the 256 kept.
    pub dropped_unclaimed: u64,
    /// The virtual network, when the node has a namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipop: Option<Ipop>,
}

impl Status {
    /// The connection to `peer` (a P2P address), if there is one.
    pub fn connection_to(&self, peer: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.peer == peer)
    }
}

/// The nearest ring neighbours.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ring {
    /// The nearest neighbour on the left.
    pub left: Option<String>,
    /// The nearest neighbour on the right.
    pub right: Option<String>,
    /// The overlay's size, estimated from the neighbours' spacing.
    pub size_estimate: f64,
}

/// The node's transport addresses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Transports {
    /// The URIs it listens on and the configured `advertise` URIs.
    pub local: Vec<String>,
    /// What it tells peers in its connect-to-me requests.
    pub advertised: Vec<String>,
    /// Public addresses peers reported seeing it at (the 8 most recent).
    pub learned: Vec<Learned>,
}

/// An address peers reported seeing the node at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Learned {
    /// The URI.
    pub addr: String,
    /// Handshakes that reported it.
    pub reports: u32,
    /// Seconds since the first report.
    pub first_seen_s_ago: f64,
    /// Seconds since the last report.
    pub last_seen_s_ago: f64,
}

/// How the node's traffic looks from outside, from the addresses peers observed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Nat {
    /// Whether peers see a UDP address other than a local one (`None` before any
    /// report).
    pub translated: Option<bool>,
    /// How the translation maps ports.
    pub mapping: NatMapping,
    /// The public IPs peers reported (absent before any report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ips: Option<Vec<IpAddr>>,
}

/// How a NAT maps the node's UDP port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatMapping {
    /// Not translated.
    None,
    /// One public port for every peer.
    EndpointIndependent,
    /// A new public port per peer: a symmetric NAT.
    AddressDependent,
    /// Not known (yet).
    #[default]
    Unknown,
}

/// The secure layer's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Secure {
    /// Handshakes started.
    pub handshakes_started: u64,
    /// Handshakes completed.
    pub handshakes_completed: u64,
    /// Handshakes failed.
    pub handshakes_failed: u64,
    /// A wrong secret or a forgery.
    pub bad_psk_or_mac: u64,
    /// Handshakes ended for want of an admission secret both sides hold.
    pub no_common_secret: u64,
    /// Transports whose sessions closed when their secret was retired.
    pub retired_sessions: u64,
    /// The ids of the admission secrets the node holds (8 hex digits), preferred first.
    pub secrets: Vec<String>,
    /// Replayed messages.
    pub replayed: u64,
    /// Malformed messages.
    pub malformed: u64,
    /// Messages for no known session.
    pub unknown_session: u64,
    /// Messages dropped from a full queue.
    pub queue_dropped: u64,
    /// Handshakes refused.
    pub refused: u64,
    /// Sessions evicted.
    pub evicted: u64,
    /// Messages too large to seal.
    pub too_large: u64,
    /// Messages dropped on the way out.
    pub transmit_dropped: u64,
    /// Sessions open now.
    pub sessions: u64,
    /// The handshakes this node initiated lately.
    pub handshake_ms: HandshakeMs,
}

/// Durations of the last handshakes a node initiated, in ms (`None` while there are
/// none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HandshakeMs {
    /// How many.
    pub count: u64,
    /// The median.
    pub p50: Option<f64>,
    /// The 99th percentile.
    pub p99: Option<f64>,
    /// The longest.
    pub max: Option<f64>,
}

/// One connection of the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// The peer's P2P address.
    pub peer: String,
    /// Why this node keeps it (`near+far`, `none`, ...).
    pub roles: String,
    /// Why the peer keeps it, as it last reported.
    pub peer_roles: String,
    /// The peer's URI, or `relay://<address>` through that node.
    pub edge: String,
    /// What the edge runs over.
    pub transport: Transport,
    /// The last measured round-trip time.
    pub rtt_ms: Option<f64>,
    /// Seconds since it was established.
    pub age_s: f64,
    /// Seconds since the last datagram from the peer.
    pub idle_s: f64,
    /// Datagrams sent on it.
    pub tx_packets: u64,
    /// Bytes sent on it.
    pub tx_bytes: u64,
    /// Datagrams received on it.
    pub rx_packets: u64,
    /// Bytes received on it.
    pub rx_bytes: u64,
    /// The largest overlay datagram path-MTU discovery found the edge carries (absent
    /// until a probe was answered or lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_mtu: Option<u16>,
    /// The id of the admission secret the edge's secure session was made under (a
    /// direct edge of a node with an overlay secret; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// What a connection's edge runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A direct UDP edge.
    Udp,
    /// A direct TCP edge.
    Tcp,
    /// An edge tunnelled through a third node.
    Relay,
}

impl Transport {
    /// Its name in the status (`udp`, `tcp`, `relay`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Relay => "relay",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The overlay's counters, with the driver's (`node/README.md` says what each counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub malformed: u64,
    pub unknown_source: u64,
    pub forwarded: u64,
    pub delivered: u64,
    pub no_route: u64,
    pub ttl_exceeded: u64,
    pub refused_full: u64,
    pub ctm_sent: u64,
    pub link_failures: u64,
    pub link_attempts_refused: u64,
    pub ctm_refused: u64,
    pub cookies_sent: u64,
    pub bad_cookie: u64,
    pub refused_relay: u64,
    pub broadcast_refused: u64,
    pub ttl_capped: u64,
    pub impersonation: u64,
    pub bad_signature: u64,
    pub unsigned: u64,
    pub mtu_probes: u64,
    pub udp_send_drops: u64,
    pub tcp_send_drops: u64,
    pub udp_errors: u64,
    pub tcp_streams: u64,
    pub tcp_accept_errors: u64,
    pub tcp_accepts_refused: u64,
    pub tcp_connects_refused: u64,
    pub tcp_oversized_frames: u64,
    pub control_accept_errors: u64,
    pub control_refused: u64,
}

impl Stats {
    /// The counters that are not zero, by name in the order of names (for a one-line
    /// summary).
    pub fn nonzero(&self) -> Vec<(String, u64)> {
        nonzero(self)
    }
}

/// The fields of `counters` (a struct of counters) that are not zero, by name.
pub(crate) fn nonzero(counters: &impl Serialize) -> Vec<(String, u64)> {
    let mut nonzero: Vec<(String, u64)> = match serde_json::to_value(counters) {
        Ok(serde_json::Value::Object(fields)) => fields
            .into_iter()
            .filter_map(|(k, v)| v.as_u64().filter(|&n| n > 0).map(|n| (k, n)))
            .collect(),
        _ => Vec::new(),
    };
    nonzero.sort();
    nonzero
}

/// The DHT replica this node keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dht {
    /// Records stored as a replica.
    pub records: u64,
    /// Copied records refused.
    pub refused_replicas: u64,
    /// Requests and replies dropped for an unverified source.
    pub unverified: u64,
    /// Records whose owner's certificate does not certify them: copies and answers to
    /// reads.
    pub forged: u64,
    /// Replies to this node's operations from a node too far from the key to hold it.
    pub misplaced: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_parts_stay_absent_and_partial_documents_parse() {
        let json = serde_json::to_value(Status::default()).unwrap();
        assert!(json.get("ipop").is_none(), "{json}");
        assert_eq!(json["secure"], serde_json::Value::Null);
        assert_eq!(
            json["nat"],
            serde_json::json!({ "translated": null, "mapping": "unknown" })
        );
        let s: Status =
            serde_json::from_str(r#"{"address":"ab","correctly_connected":true}"#).unwrap();
        assert_eq!((s.address.as_str(), s.correctly_connected), ("ab", true));
        assert!(s.ipop.is_none() && s.connections.is_empty());
    }

    #[test]
    fn nonzero_counters_come_by_name() {
        let stats = Stats {
            ttl_capped: 2,
            forwarded: 7,
            ..Stats::default()
        };
        assert_eq!(
            stats.nonzero(),
            [("forwarded".to_string(), 7), ("ttl_capped".to_string(), 2)]
        );
    }
}
