//! The node's status: the typed document of `ipop_api::status` (what `ipop-node status
//! --json` prints and what the harness reads instead of parsing logs) filled in from the
//! protocol stack and the driver. The format is documented field by field in
//! `node/README.md` and kept stable; fields are only ever added.

use std::net::IpAddr;
use std::time::Instant;

use ipop_api::status::{self as api, NatMapping, Status};
use ipop_core::ipop::{Ipop, Mapping};
use ipop_core::overlay::{Connection, Edge, LearnedAddress};
use ipop_core::secure::Secure;
use ipop_core::text::to_hex;
use ipop_core::{Proto, Stack, TransportAddr};

use crate::transport::tcp::TcpStats;

/// Facts the driver keeps beside the protocol stack.
#[derive(Debug, Clone, Copy)]
pub struct DriverFacts {
    /// When the node started.
    pub started: Instant,
    /// When it first had a connection.
    pub linked_at: Option<Instant>,
    /// When it first became correctly connected.
    pub connected_at: Option<Instant>,
    /// UDP datagrams dropped by a full socket buffer.
    pub udp_send_drops: u64,
    /// UDP waits and receives that failed.
    pub udp_errors: u64,
    /// What the TCP edges refused or failed at.
    pub tcp: TcpStats,
    /// Failed accepts on the control socket.
    pub control_accept_errors: u64,
    /// Control requests refused for being too long or too slow.
    pub control_refused: u64,
}

impl DriverFacts {
    /// The facts of a node that started at `started`, with nothing counted yet.
    pub fn new(started: Instant) -> Self {
        DriverFacts {
            started,
            linked_at: None,
            connected_at: None,
            udp_send_drops: 0,
            udp_errors: 0,
            tcp: TcpStats::default(),
            control_accept_errors: 0,
            control_refused: 0,
        }
    }
}

fn edge_of(edge: &Edge) -> (String, api::Transport) {
    match edge {
        Edge::Direct(t) => (
            t.to_string(),
            match t.proto {
                Proto::Udp => api::Transport::Udp,
                Proto::Tcp => api::Transport::Tcp,
            },
        ),
        Edge::Relay { via } => (format!("relay://{via}"), api::Transport::Relay),
    }
}

/// What the driver knows about the TAP device.
#[derive(Debug, Clone, Copy)]
pub struct TapFacts<'a> {
    /// The device's name.
    pub name: &'a str,
    /// The MTU set on it.
    pub mtu: u16,
    /// Whether it runs with offloads.
    pub offload: bool,
    /// Frames read from it.
    pub frames_in: u64,
    /// Frames written to it.
    pub frames_out: u64,
    /// Frames for it dropped because it was full.
    pub write_drops: u64,
    /// Its reads, writes and waits that failed otherwise.
    pub errors: u64,
}

/// How many Brunet-ARP mappings a status lists (the first, by IP).
const MAPPINGS_SHOWN: usize = 64;

/// The durations of the handshakes the node initiated lately, in ms: how many, p50, p99
/// and the longest (none while there are none).
fn handshake_ms(sec: &Secure) -> api::HandshakeMs {
    let mut ms: Vec<f64> = sec
        .handshake_times()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| (!ms.is_empty()).then(|| ms[((ms.len() - 1) as f64 * q).round() as usize]);
    api::HandshakeMs {
        count: ms.len() as u64,
        p50: at(0.5),
        p99: at(0.99),
        max: ms.last().copied(),
    }
}

/// Seconds from `start` to `t`.
fn after(start: Instant, t: Option<Instant>) -> Option<f64> {
    t.map(|t| t.saturating_duration_since(start).as_secs_f64())
}

/// The `ipop` part of the status: the virtual network of a node with a namespace that
/// started at `started`.
pub fn ipop(i: &Ipop, tap: &TapFacts<'_>, started: Instant) -> api::Ipop {
    let s = i.stats();
    let t = i.timeline();
    let (queued, cached) = i.resolver_state();
    api::Ipop {
        namespace: i.namespace().to_string(),
        keyed: i.keyed(),
        mapping: match i.mapping() {
            Mapping::Dht => api::AddressMapping::Dht,
            Mapping::Hash => api::AddressMapping::Hash,
        },
        tap: tap.name.to_owned(),
        mtu: tap.mtu,
        offload: tap.offload,
        addresses: i.addresses(),
        record: i.record().map(|r| api::Record {
            name: r.name.clone(),
            range: r.range.to_string(),
            lease_s: r.lease.as_secs(),
            mtu: r.mtu,
            dns: r.dns,
        }),
        frames_in: tap.frames_in,
        frames_out: tap.frames_out,
        tap_write_drops: tap.write_drops,
        tap_errors: tap.errors,
        resolver: api::Resolver {
            queued: queued as u64,
            cached: cached as u64,
            // At most MAPPINGS_SHOWN, so a status stays small however many IPs are cached.
            mappings: i
                .resolver_mappings(MAPPINGS_SHOWN)
                .into_iter()
                .map(|(ip, owner)| api::Resolved {
                    ip,
                    owner: owner.to_string(),
                })
                .collect(),
        },
        stats: api::IpopStats {
            arp_replies: s.arp_replies,
            dhcp_messages: s.dhcp_messages,
            last_dhcp_tries: s.last_dhcp_tries,
            dhcp_failures: s.dhcp_failures,
            dhcp_refused: s.dhcp_refused,
            lookups: s.lookups,
            to_overlay: s.to_overlay,
            to_overlay_direct: s.to_overlay_direct,
            from_overlay: s.from_overlay,
            broadcasts: s.broadcasts,
            multicasts: s.multicasts,
            igmp_ignored: s.igmp_ignored,
            dropped_non_ipv4: s.dropped_non_ipv4,
            dropped_malformed: s.dropped_malformed,
            dropped_unowned_source: s.dropped_unowned_source,
            dropped_outside_namespace: s.dropped_outside_namespace,
            dropped_queue_full: s.dropped_queue_full,
            dropped_unresolved: s.dropped_unresolved,
            dropped_no_route: s.dropped_no_route,
            dropped_wrong_namespace: s.dropped_wrong_namespace,
            dropped_not_here: s.dropped_not_here,
            dropped_spoofed: s.dropped_spoofed,
            dhcp_exhausted: s.dhcp_exhausted,
            refused_records: s.refused_records,
            refused_addresses: s.refused_addresses,
            dropped_unauthentic: s.dropped_unauthentic,
            refused_mappings: s.refused_mappings,
            mss_clamped: s.mss_clamped,
            fragmented: s.fragmented,
            frag_needed_sent: s.frag_needed_sent,
            dropped_too_big: s.dropped_too_big,
        },
        timeline: api::Timeline {
            record_s: after(started, t.record),
            discover_s: after(started, t.discover),
            offer_s: after(started, t.offer),
            ack_s: after(started, t.ack),
        },
    }
}

/// How this node's traffic looks from outside, from the addresses peers observed:
/// translated or not, and whether the translation keeps one public port for all peers
/// (endpoint-independent mapping) or uses a new one per peer (symmetric NAT).
pub fn nat_view(local: &[TransportAddr], learned: &[LearnedAddress]) -> api::Nat {
    let udp: Vec<&LearnedAddress> = learned
        .iter()
        .filter(|l| l.addr.proto == Proto::Udp)
        .collect();
    if udp.is_empty() {
        return api::Nat::default();
    }
    let translated = udp.iter().any(|l| !local.contains(&l.addr));
    let public_ips: Vec<IpAddr> = {
        let mut v: Vec<IpAddr> = udp.iter().map(|l| l.addr.addr.ip()).collect();
        v.sort();
        v.dedup();
        v
    };
    let ports_per_ip = public_ips
        .iter()
        .map(|ip| udp.iter().filter(|l| l.addr.addr.ip() == *ip).count())
        .max()
        .unwrap_or(0);
    let mapping = if !translated {
        NatMapping::None
    } else if ports_per_ip > 1 {
        NatMapping::AddressDependent
    } else if udp.iter().map(|l| l.count).sum::<u32>() > 1 {
        NatMapping::EndpointIndependent
    } else {
        NatMapping::Unknown
    };
    api::Nat {
        translated: Some(translated),
        mapping,
        public_ips: Some(public_ips),
    }
}

/// The full status (without its `ipop` part, which the virtual network adds).
pub fn status(stack: &Stack, overlay: &str, facts: &DriverFacts, now: Instant) -> Status {
    let node = &stack.node;
    let since = |t: Instant| now.saturating_duration_since(t).as_secs_f64();
    let (left, right) = node.ring_neighbors();
    let connections = node
        .connections()
        .map(|c| connection_view(c, stack.secure.as_deref(), now))
        .collect();
    let learned = node.learned_addresses();
    let local: Vec<TransportAddr> = node.local_transports().to_vec();
    Status {
        address: node.address().to_string(),
        overlay: overlay.to_owned(),
        running: node.is_running(),
        correctly_connected: node.is_correctly_connected(),
        uptime_s: since(facts.started),
        rss_mib: crate::sysinfo::rss_mib(),
        linked_after_s: after(facts.started, facts.linked_at),
        connected_after_s: after(facts.started, facts.connected_at),
        ring: api::Ring {
            left: left.map(|a| a.to_string()),
            right: right.map(|a| a.to_string()),
            size_estimate: node.network_size_estimate(),
        },
        transports: api::Transports {
            local: local.iter().map(ToString::to_string).collect(),
            advertised: node
                .advertised_transports()
                .iter()
                .map(ToString::to_string)
                .collect(),
            learned: learned
                .iter()
                .map(|l| api::Learned {
                    addr: l.addr.to_string(),
                    reports: l.count,
                    first_seen_s_ago: since(l.first_seen),
                    last_seen_s_ago: since(l.last_seen),
                })
                .collect(),
        },
        nat: nat_view(&local, learned),
        secure: stack.secure.as_deref().map(secure_view),
        connections,
        stats: counters(&node.stats(), facts),
        dht: api::Dht {
            records: stack.dht.stored_records() as u64,
            refused_replicas: stack.dht.refused_replicas(),
            unverified: stack.dht.unverified(),
            forged: stack.dht.forged(),
            misplaced: stack.dht.misplaced(),
        },
        dropped_unclaimed: stack.dropped_unclaimed(),
        ipop: None,
    }
}

/// One connection (an entry of status `connections`); `secure` names the secret its
/// session was made under.
fn connection_view(c: &Connection, secure: Option<&Secure>, now: Instant) -> api::Connection {
    let since = |t: Instant| now.saturating_duration_since(t).as_secs_f64();
    let (edge, transport) = edge_of(&c.edge);
    api::Connection {
        peer: c.peer.to_string(),
        roles: c.roles.names(),
        peer_roles: c.peer_roles.names(),
        edge,
        transport,
        rtt_ms: c.rtt.map(|r| r.as_secs_f64() * 1e3),
        age_s: since(c.established),
        idle_s: since(c.last_recv),
        tx_packets: c.counters.tx_packets,
        tx_bytes: c.counters.tx_bytes,
        rx_packets: c.counters.rx_packets,
        rx_bytes: c.counters.rx_bytes,
        path_mtu: c.path_mtu(),
        secret: match (&c.edge, secure) {
            (Edge::Direct(t), Some(sec)) => sec.session_secret(*t).map(|id| to_hex(&id)),
            _ => None,
        },
    }
}

/// The secure layer's counters and secrets (status `secure`).
fn secure_view(sec: &Secure) -> api::Secure {
    let x = sec.stats();
    api::Secure {
        handshakes_started: x.handshakes_started,
        handshakes_completed: x.handshakes_completed,
        handshakes_failed: x.handshakes_failed,
        bad_psk_or_mac: x.bad_psk_or_mac,
        no_common_secret: x.no_common_secret,
        retired_sessions: x.retired_sessions,
        secrets: sec.secret_ids().iter().map(|id| to_hex(id)).collect(),
        replayed: x.replayed,
        malformed: x.malformed,
        unknown_session: x.unknown_session,
        queue_dropped: x.queue_dropped,
        refused: x.refused,
        evicted: x.evicted,
        too_large: x.too_large,
        transmit_dropped: x.transmit_dropped,
        sessions: x.sessions,
        handshake_ms: handshake_ms(sec),
    }
}

/// The overlay's counters with the driver's (status `stats`).
fn counters(stats: &ipop_core::overlay::Stats, facts: &DriverFacts) -> api::Stats {
    api::Stats {
        malformed: stats.malformed,
        unknown_source: stats.unknown_source,
        forwarded: stats.forwarded,
        delivered: stats.delivered,
        no_route: stats.no_route,
        ttl_exceeded: stats.ttl_exceeded,
        refused_full: stats.refused_full,
        ctm_sent: stats.ctm_sent,
        link_failures: stats.link_failures,
        link_attempts_refused: stats.link_attempts_refused,
        ctm_refused: stats.ctm_refused,
        cookies_sent: stats.cookies_sent,
        bad_cookie: stats.bad_cookie,
        refused_relay: stats.refused_relay,
        broadcast_refused: stats.broadcast_refused,
        ttl_capped: stats.ttl_capped,
        impersonation: stats.impersonation,
        bad_signature: stats.bad_signature,
        unsigned: stats.unsigned,
        mtu_probes: stats.mtu_probes,
        udp_send_drops: facts.udp_send_drops,
        tcp_send_drops: facts.tcp.send_drops,
        udp_errors: facts.udp_errors,
        tcp_streams: facts.tcp.streams as u64,
        tcp_accept_errors: facts.tcp.accept_errors,
        tcp_accepts_refused: facts.tcp.accepts_refused,
        tcp_connects_refused: facts.tcp.connects_refused,
        tcp_oversized_frames: facts.tcp.oversized_frames,
        control_accept_errors: facts.control_accept_errors,
        control_refused: facts.control_refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learned(addr: &str, count: u32) -> LearnedAddress {
        let now = Instant::now();
        LearnedAddress {
            addr: addr.parse().unwrap(),
            count,
            first_seen: now,
            last_seen: now,
        }
    }

    #[test]
    fn nat_view_tells_the_mapping_apart() {
        let local: Vec<TransportAddr> = vec!["udp://10.1.0.2:4000".parse().unwrap()];
        let v = nat_view(&local, &[learned("udp://10.1.0.2:4000", 3)]);
        assert_eq!(v.mapping, NatMapping::None);
        let v = nat_view(&local, &[learned("udp://198.18.1.1:4000", 3)]);
        assert_eq!(
            (v.translated, v.mapping),
            (Some(true), NatMapping::EndpointIndependent)
        );
        let v = nat_view(
            &local,
            &[
                learned("udp://198.18.1.1:61000", 1),
                learned("udp://198.18.1.1:61001", 1),
            ],
        );
        assert_eq!(v.mapping, NatMapping::AddressDependent);
        let unknown = serde_json::to_value(nat_view(&local, &[])).unwrap();
        assert_eq!(
            unknown,
            serde_json::json!({ "translated": null, "mapping": "unknown" })
        );
    }

    /// The dotted paths of `v`'s leaf fields (`name[]` for arrays of objects, whose
    /// elements' fields go by their own names: the README gives them a table).
    fn field_paths(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        use serde_json::Value;
        let Value::Object(map) = v else {
            return;
        };
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Object(_) => field_paths(v, &path, out),
                Value::Array(items) if items.iter().any(Value::is_object) => {
                    out.push(format!("{path}[]"));
                    for item in items {
                        field_paths(item, "", out);
                    }
                }
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn every_status_field_is_documented_in_the_readme() {
        use ipop_core::sim::{Network, Sim};
        let readme = include_str!("../README.md");
        let mut sim = Sim::new(1, Network::default(), ipop_core::overlay::Config::default());
        for _ in 0..4 {
            sim.add_node();
        }
        let boot = [sim.node(0).transport];
        for i in 0..4 {
            sim.start(i, &boot);
        }
        let ns = ipop_core::ipop::NamespaceId([1; 16]);
        sim.enable_ipop(1, ipop_core::ipop::Config::new(ns));
        sim.run_for(std::time::Duration::from_secs(10));
        let stack = &sim.node(1).stack;
        let facts = DriverFacts {
            connected_at: sim.node(1).connected_at,
            ..DriverFacts::new(sim.at(std::time::Duration::ZERO))
        };
        let mut s = status(stack, "wow", &facts, sim.now());
        let tap = TapFacts {
            name: "ipop0",
            mtu: 1300,
            offload: true,
            frames_in: 0,
            frames_out: 0,
            write_drops: 0,
            errors: 0,
        };
        s.ipop = Some(ipop(stack.ipop.as_ref().unwrap(), &tap, facts.started));
        assert!(!s.connections.is_empty());
        assert!(!s.transports.learned.is_empty());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(serde_json::from_value::<Status>(json.clone()).unwrap(), s);
        let mut paths = Vec::new();
        field_paths(&json, "", &mut paths);
        for path in paths {
            assert!(
                readme.contains(&format!("`{path}`")),
                "status field {path} is not documented in node/README.md"
            );
        }
    }
}
