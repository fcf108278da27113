//! The node's status as JSON: what `ipop-node status --json` prints and what the
//! harness reads (instead of parsing logs). The format is documented in the README of
//! the node crate and kept stable; fields are only ever added.

use std::net::IpAddr;
use std::time::Instant;

use ipop_core::overlay::{Edge, LearnedAddress};
use ipop_core::{Proto, Stack, TransportAddr};
use serde_json::{Value, json};

/// Facts the driver keeps beside the protocol stack.
#[derive(Debug, Clone, Copy)]
pub struct DriverFacts {
    /// When the node started.
    pub started: Instant,
    /// When it first became correctly connected.
    pub connected_at: Option<Instant>,
    /// UDP datagrams dropped by a full socket buffer.
    pub udp_send_drops: u64,
    /// TCP frames dropped by a full stream queue.
    pub tcp_send_drops: u64,
}

fn edge_json(edge: &Edge) -> (String, &'static str) {
    match edge {
        Edge::Direct(t) => (
            t.to_string(),
            match t.proto {
                Proto::Udp => "udp",
                Proto::Tcp => "tcp",
            },
        ),
        Edge::Relay { via } => (format!("relay://{via}"), "relay"),
    }
}

/// How this node's traffic looks from outside, from the addresses peers observed:
/// translated or not, and whether the translation keeps one public port for all peers
/// (endpoint-independent mapping) or uses a new one per peer (symmetric NAT).
pub fn nat_view(local: &[TransportAddr], learned: &[LearnedAddress]) -> Value {
    let udp: Vec<&LearnedAddress> = learned
        .iter()
        .filter(|l| l.addr.proto == Proto::Udp)
        .collect();
    if udp.is_empty() {
        return json!({ "translated": null, "mapping": "unknown" });
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
        "none"
    } else if ports_per_ip > 1 {
        "address-dependent"
    } else if udp.iter().map(|l| l.count).sum::<u32>() > 1 {
        "endpoint-independent"
    } else {
        "unknown"
    };
    json!({ "translated": translated, "mapping": mapping, "public_ips": public_ips })
}

/// The full status.
pub fn status(stack: &Stack, overlay: &str, facts: &DriverFacts, now: Instant) -> Value {
    let node = &stack.node;
    let since = |t: Instant| now.saturating_duration_since(t).as_secs_f64();
    let (left, right) = node.ring_neighbors();
    let connections: Vec<Value> = node
        .connections()
        .map(|c| {
            let (edge, transport) = edge_json(&c.edge);
            json!({
                "peer": c.peer.to_string(),
                "roles": c.roles.names(),
                "peer_roles": c.peer_roles.names(),
                "edge": edge,
                "transport": transport,
                "rtt_ms": c.rtt.map(|r| r.as_secs_f64() * 1e3),
                "age_s": since(c.established),
                "idle_s": since(c.last_recv),
                "tx_packets": c.counters.tx_packets,
                "tx_bytes": c.counters.tx_bytes,
                "rx_packets": c.counters.rx_packets,
                "rx_bytes": c.counters.rx_bytes,
            })
        })
        .collect();
    let learned = node.learned_addresses();
    let local: Vec<TransportAddr> = node.local_transports().to_vec();
    let stats = node.stats();
    json!({
        "address": node.address().to_string(),
        "overlay": overlay,
        "running": node.is_running(),
        "correctly_connected": node.is_correctly_connected(),
        "uptime_s": since(facts.started),
        "connected_after_s": facts.connected_at.map(|t| t.saturating_duration_since(facts.started).as_secs_f64()),
        "ring": {
            "left": left.map(|a| a.to_string()),
            "right": right.map(|a| a.to_string()),
            "size_estimate": node.network_size_estimate(),
        },
        "transports": {
            "local": local.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "advertised": node.advertised_transports().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "learned": learned.iter().map(|l| json!({
                "addr": l.addr.to_string(),
                "reports": l.count,
                "first_seen_s_ago": since(l.first_seen),
                "last_seen_s_ago": since(l.last_seen),
            })).collect::<Vec<_>>(),
        },
        "nat": nat_view(&local, learned),
        "connections": connections,
        "stats": {
            "malformed": stats.malformed,
            "unknown_source": stats.unknown_source,
            "forwarded": stats.forwarded,
            "delivered": stats.delivered,
            "no_route": stats.no_route,
            "ttl_exceeded": stats.ttl_exceeded,
            "refused_full": stats.refused_full,
            "ctm_sent": stats.ctm_sent,
            "link_failures": stats.link_failures,
            "udp_send_drops": facts.udp_send_drops,
            "tcp_send_drops": facts.tcp_send_drops,
        },
        "dht": { "records": stack.dht.stored_records() },
    })
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
        assert_eq!(v["mapping"], "none");
        let v = nat_view(&local, &[learned("udp://198.18.1.1:4000", 3)]);
        assert_eq!(
            (v["translated"].clone(), v["mapping"].clone()),
            (json!(true), json!("endpoint-independent"))
        );
        let v = nat_view(
            &local,
            &[
                learned("udp://198.18.1.1:61000", 1),
                learned("udp://198.18.1.1:61001", 1),
            ],
        );
        assert_eq!(v["mapping"], "address-dependent");
        assert_eq!(nat_view(&local, &[])["mapping"], "unknown");
    }
}
