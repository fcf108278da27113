//! IPOP: IP over the P2P overlay. The host (or VMs bridged behind it) sees an ordinary
//! Ethernet interface (a TAP device); this layer turns what the host writes there into
//! overlay messages and back (the IPOP paper, section III; the WOW DHCP paper, 3 and 5).
//!
//! * ARP from the host is answered here, with a virtual gateway MAC: ARP never crosses
//!   the overlay. Other non-IPv4 frames are dropped and counted.
//! * IPv4 packets go to the node that owns the destination IP. Which node that is comes
//!   from the DHT (Brunet-ARP, `(namespace, IP) -> P2P address`), cached and refreshed;
//!   packets wait in a bounded queue while an IP is resolved. In hash mode (the first
//!   IPOP paper) the owner is `SHA-1(IP)` and there is no lookup; a node then has one
//!   configured address, the only one its DHCP server hands out.
//! * A packet from the overlay is written to the TAP only if the sending node owns its
//!   source IP: no spoofing inside a namespace. Namespaces share the overlay but not
//!   packets.
//! * DHCP from the host's unmodified client is answered here, from leases in the DHT.
//!
//! Like the other layers this is a sans-IO state machine: frames come in through
//! [`Ipop::handle_tap_frame`], frames for the TAP come out of [`Ipop::poll_tap`].

mod datapath;
mod dhcp;
mod frame;
mod keeper;
pub mod keyed;
mod leases;
pub mod mtu;
pub mod namespace;
mod resolver;

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::address::Address;
use crate::dht::{Dht, DhtError, Outcome, RequestId};
use crate::overlay::Node;
use crate::wire::{RoutedHeader, kind};
use frame::{Dropped, HostFrame};
pub use keeper::{CREATE_TRIES, Keeper, KeeperEvent, RECORD_TTL, REFRESH};
pub use keyed::{Namespace, NamespaceKey};
use leases::Client;
pub use namespace::{Ipv4Range, NamespaceId, NamespaceRecord, RangeError, RecordError};
use resolver::{Limits, Resolver};

/// Routed kind of an IP packet: namespace id (16 bytes), then the IPv4 packet (sealed
/// in a keyed namespace, see [`keyed`]).
pub const KIND_IP: u8 = kind::FIRST_APP + 8;
/// Routed kind of a notice "I do not hold this IP": namespace id, then the IPv4 address.
pub const KIND_NOTICE: u8 = kind::FIRST_APP + 9;
/// Routed kind of a keyed namespace's IP packet sent over a direct secure edge to the
/// node that owns its destination: namespace id, then the IPv4 packet, not sealed again
/// (the edge's session seals it and proves the sender). Taken only when it came straight
/// from its source over a secure edge.
pub const KIND_IP_DIRECT: u8 = kind::FIRST_APP + 10;
/// Bytes the overlay adds around an IP packet: datagram and routed headers, namespace.
pub const OVERHEAD: usize = crate::wire::HEADER_LEN + 5 + 2 * Address::LEN + 16;
/// Bytes a relay edge adds around a datagram: the tunnel message to the relay (datagram
/// and routed headers, with the relay as waypoint).
pub const RELAY_OVERHEAD: usize = crate::wire::HEADER_LEN + 5 + 3 * Address::LEN;
/// IP and UDP headers of an underlay datagram (IPv6's 40-byte header, so that IPv4
/// paths fit too).
pub const UNDERLAY_HEADERS: usize = 40 + 8;

/// The largest virtual-network MTU whose packets, with the overlay's headers, a
/// relay's and a secure edge's seal, fit in one UDP datagram on an underlay path of
/// `path_mtu` bytes without IP fragmentation (1286 for the Internet's usual 1500).
pub const fn max_mtu(path_mtu: usize) -> usize {
    path_mtu
        .saturating_sub(UNDERLAY_HEADERS + OVERHEAD + RELAY_OVERHEAD + crate::secure::DATA_OVERHEAD)
}

/// The largest IP packet that crosses any edge of a 1500-byte underlay whole (relay
/// and secure edges too): assumed of a path that path-MTU discovery has not measured
/// (several hops, or an edge too new).
pub const UNFRAGMENTED_MTU: usize = max_mtu(1500);

/// How a virtual IP is mapped to the node that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// Brunet-ARP through the DHT (any node may own any number of IPs; IPs can move).
    Dht,
    /// The owner's P2P address is SHA-1 of the IP (the first IPOP paper): one address
    /// per node, statically configured, no DHT lookup. DHCP hands out only the node's own
    /// address (the one whose hash is its P2P address), and nothing is written to the
    /// DHT but the namespace record's renewal.
    Hash,
}

/// IPOP parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// The namespace this node's TAP belongs to (open, or keyed).
    pub namespace: Namespace,
    /// How IPs map to nodes.
    pub mapping: Mapping,
    /// The MAC the host sees for every virtual IP (the virtual gateway).
    pub gateway_mac: [u8; 6],
    /// Packets queued per IP being resolved.
    pub queue_per_ip: usize,
    /// Packets queued in all.
    pub queue_total: usize,
    /// A Brunet-ARP mapping is trusted this long.
    pub cache_ttl: Duration,
    /// A mapping in use is looked up again after this long.
    pub cache_refresh: Duration,
    /// Addresses a DHCP acquisition tries before giving up (until the client asks again).
    pub max_tries: u32,
}

impl Config {
    /// Defaults for a namespace.
    pub fn new(namespace: impl Into<Namespace>) -> Self {
        Config {
            namespace: namespace.into(),
            mapping: Mapping::Dht,
            gateway_mac: [0x02, 0x1b, 0x0b, 0x00, 0x00, 0x01],
            queue_per_ip: 64,
            queue_total: 1024,
            cache_ttl: Duration::from_secs(60),
            cache_refresh: Duration::from_secs(10),
            max_tries: 32,
        }
    }
}

/// Something the driver should know (and persist, for leases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// This node holds `ip` now (keep the password: a restarted or moved node keeps
    /// its address with it).
    LeaseAcquired {
        /// The address.
        ip: Ipv4Addr,
        /// The client's MAC (None for static addresses).
        mac: Option<[u8; 6]>,
        /// The password of the DHT key.
        password: Vec<u8>,
    },
    /// This node no longer holds `ip` (released, or taken over).
    LeaseLost {
        /// The address.
        ip: Ipv4Addr,
    },
    /// The namespace record cannot be used (missing or malformed).
    NamespaceUnusable(String),
    /// A restored or static address cannot be held in the namespace (it is the virtual
    /// gateway, the network or broadcast address, or outside the range): it is dropped
    /// and not registered. A configuration error: `reason` says what to change.
    AddressRefused {
        /// The address.
        ip: Ipv4Addr,
        /// Why, for the log.
        reason: String,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames read from the TAP.
    pub tap_frames: u64,
    /// ARP requests answered locally.
    pub arp_replies: u64,
    /// DHCP messages from the host.
    pub dhcp_messages: u64,
    /// Addresses the last successful DHCP acquisition tried.
    pub last_dhcp_tries: u32,
    /// DHCP acquisitions that ran out of tries.
    pub dhcp_failures: u64,
    /// DHCP requests for a new address when this node already holds every assignable
    /// address of the namespace (the client gets no offer).
    pub dhcp_exhausted: u64,
    /// Restored or static addresses refused because the namespace's range does not let
    /// a node hold them (see [`Event::AddressRefused`]).
    pub refused_addresses: u64,
    /// DHCP requests refused in hash mode: the node can hand out only its own address,
    /// and only to one client.
    pub dhcp_refused: u64,
    /// Brunet-ARP lookups started (DHT gets of `(namespace, IP)`; none in hash mode).
    pub lookups: u64,
    /// IP packets sent into the overlay.
    pub to_overlay: u64,
    /// Of those, keyed-namespace packets sent over a direct secure edge to their owner,
    /// where the edge's seal is the only one ([`KIND_IP_DIRECT`]).
    pub to_overlay_direct: u64,
    /// IP packets written to the TAP from the overlay.
    pub from_overlay: u64,
    /// Broadcasts sent.
    pub broadcasts: u64,
    /// Multicast packets sent (to every member, as broadcasts are).
    pub multicasts: u64,
    /// IGMP packets not carried: group membership stays on each host.
    pub igmp_ignored: u64,
    /// Dropped: not IPv4 or ARP.
    pub dropped_non_ipv4: u64,
    /// Dropped: malformed frame or packet.
    pub dropped_malformed: u64,
    /// Dropped: the host sent from an address this node does not hold.
    pub dropped_unowned_source: u64,
    /// Dropped: destination outside the namespace.
    pub dropped_outside_namespace: u64,
    /// Dropped: resolution queue full.
    pub dropped_queue_full: u64,
    /// Dropped: the destination IP has no owner.
    pub dropped_unresolved: u64,
    /// Dropped: no route to the owner.
    pub dropped_no_route: u64,
    /// Dropped: from another namespace.
    pub dropped_wrong_namespace: u64,
    /// Dropped: this (keyed) namespace's identifier, but not sealed by a member for the
    /// node that sent it (forged, altered or truncated on the way).
    pub dropped_unauthentic: u64,
    /// Brunet-ARP answers refused: not a mapping of the IP sealed with the namespace key
    /// (or, in an open namespace, not an address).
    pub refused_mappings: u64,
    /// Dropped: for an IP this node does not hold (the sender was told).
    pub dropped_not_here: u64,
    /// Dropped: the sending node does not own the source IP.
    pub dropped_spoofed: u64,
    /// Namespace records read from the DHT and refused as malformed or out of range
    /// (see [`namespace::RecordError`]); the node asks again a few seconds later.
    pub refused_records: u64,
    /// TCP SYNs whose MSS was lowered to what the path carries (both directions).
    pub mss_clamped: u64,
    /// Packets larger than their path carries, cut into IPv4 fragments.
    pub fragmented: u64,
    /// ICMP "fragmentation needed" answers written to the host for DF packets larger
    /// than their path carries.
    pub frag_needed_sent: u64,
    /// Dropped: larger than the path carries and neither answerable (an ICMP error, a
    /// later fragment, over the rate limit) nor cuttable (IP options).
    pub dropped_too_big: u64,
}

/// When the steps of a host's first address happened (each the first time, since the
/// layer started): where DHCP's time goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The namespace record was read from the DHT.
    pub record: Option<Instant>,
    /// The host's DHCP client asked (DISCOVER).
    pub discover: Option<Instant>,
    /// The address was created in the DHT (a majority of its replicas) and offered.
    pub offer: Option<Instant>,
    /// The host's request was acknowledged (ACK).
    pub ack: Option<Instant>,
}

/// An address this node holds.
#[derive(Debug, Clone)]
pub(crate) struct Lease {
    mac: Option<[u8; 6]>,
    password: Vec<u8>,
    renew_at: Instant,
    renewing: Option<RequestId>,
}

impl Lease {
    fn new(mac: Option<[u8; 6]>, password: Vec<u8>, now: Instant, lease: Duration) -> Self {
        Lease {
            mac,
            password,
            renew_at: later(now, lease / 2),
            renewing: None,
        }
    }

    fn renewed(&mut self, now: Instant, lease: Duration) {
        self.renew_at = later(now, lease / 2);
    }
}

/// `now + d`, or `now` where that is past what an [`Instant`] can hold: durations from
/// the network are range-checked before they get here, and this keeps one that was not
/// from panicking the node.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

/// What one of our DHT operations is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Purpose {
    Record,
    RecordRenew,
    Create {
        mac: [u8; 6],
        ip: Ipv4Addr,
        password: Vec<u8>,
    },
    Renew {
        ip: Ipv4Addr,
    },
    Release,
    Resolve,
}

/// The IPOP layer of one node.
#[derive(Debug)]
pub struct Ipop {
    config: Config,
    /// Address picks and lease passwords: a cryptographic generator (ChaCha), so that
    /// passwords cannot be guessed from a few of them or from a small seed.
    rng: StdRng,
    record: Option<NamespaceRecord>,
    record_fetch: Option<RequestId>,
    record_retry_at: Instant,
    record_renew_at: Instant,
    leases: BTreeMap<Ipv4Addr, Lease>,
    clients: BTreeMap<[u8; 6], Client>,
    resolver: Resolver,
    held: BTreeMap<Ipv4Addr, Vec<(Address, Vec<u8>)>>,
    held_count: usize,
    ops: BTreeMap<RequestId, Purpose>,
    tap: VecDeque<Vec<u8>>,
    pool: Vec<Vec<u8>>,
    /// Where an overlay packet is opened (kept to spare an allocation per packet).
    scratch: Vec<u8>,
    /// Where a packet for the overlay is wrapped (kept likewise).
    outgoing: Vec<u8>,
    /// Every edge is a secure one (the stack's secure layer is on).
    secure_edges: bool,
    /// ICMP errors written to the host: since when, and how many.
    icmp_window: (Instant, u32),
    timeline: Timeline,
    events: VecDeque<Event>,
    stats: Stats,
    next_tick: Instant,
}

impl Ipop {
    /// The IPOP layer; `seed` drives address picks and lease passwords. Lease passwords
    /// guard the node's addresses in the DHT, so a real node must take `seed` from the
    /// operating system's random generator (the simulator uses its own seeded one, so
    /// its runs repeat).
    pub fn new(config: Config, seed: [u8; 32], now: Instant) -> Self {
        let limits = Limits {
            per_ip: config.queue_per_ip,
            total: config.queue_total,
            ttl: config.cache_ttl,
            refresh: config.cache_refresh,
        };
        Ipop {
            config,
            rng: StdRng::from_seed(seed),
            record: None,
            record_fetch: None,
            record_retry_at: now,
            record_renew_at: now,
            leases: BTreeMap::new(),
            clients: BTreeMap::new(),
            resolver: Resolver::new(limits),
            held: BTreeMap::new(),
            held_count: 0,
            ops: BTreeMap::new(),
            tap: VecDeque::new(),
            pool: Vec::new(),
            scratch: Vec::new(),
            outgoing: Vec::new(),
            secure_edges: false,
            icmp_window: (now, 0),
            timeline: Timeline::default(),
            events: VecDeque::new(),
            stats: Stats::default(),
            next_tick: now,
        }
    }

    /// Holds `ip` again with the password it was leased with (from disk, after a restart
    /// or a move): the DHT key is re-created at once, pointing at this node. A static
    /// address is held this way too, with the password it was first registered with.
    pub fn restore_lease(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        mac: Option<[u8; 6]>,
        password: Vec<u8>,
    ) {
        let mut lease = Lease::new(mac, password, now, Duration::ZERO);
        lease.renew_at = now;
        self.leases.insert(ip, lease);
        self.refuse_unassignable();
    }

    /// Tells the layer that every edge is secure (authenticated and encrypted), so
    /// that a keyed namespace's packet to a directly connected owner is sealed once,
    /// by the edge.
    pub fn set_secure_edges(&mut self, on: bool) {
        self.secure_edges = on;
    }

    /// The namespace's identifier.
    pub fn namespace(&self) -> NamespaceId {
        self.config.namespace.id()
    }

    /// Whether the namespace is keyed (its packets, record and mappings sealed).
    pub fn keyed(&self) -> bool {
        self.config.namespace.is_keyed()
    }

    /// How IPs map to nodes.
    pub fn mapping(&self) -> Mapping {
        self.config.mapping
    }

    /// The namespace record, once read from the DHT.
    pub fn record(&self) -> Option<&NamespaceRecord> {
        self.record.as_ref()
    }

    /// The addresses this node holds.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        self.leases.keys().copied().collect()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// When the steps of the host's first address happened.
    pub fn timeline(&self) -> Timeline {
        self.timeline
    }

    /// Packets waiting for resolution, and cached mappings.
    pub fn resolver_state(&self) -> (usize, usize) {
        (self.resolver.queued(), self.resolver.entries())
    }

    /// The first `max` cached Brunet-ARP mappings (virtual IP → owner's P2P address), by
    /// IP: what this node currently believes, for status displays.
    pub fn resolver_mappings(&self, max: usize) -> Vec<(Ipv4Addr, Address)> {
        self.resolver.mappings().take(max).collect()
    }

    /// A frame the host wrote to the TAP.
    pub fn handle_tap_frame(&mut self, now: Instant, node: &mut Node, dht: &mut Dht, frame: &[u8]) {
        self.stats.tap_frames += 1;
        match frame::classify(frame) {
            Err(Dropped::NotIpv4) => self.stats.dropped_non_ipv4 += 1,
            Err(Dropped::Malformed) => self.stats.dropped_malformed += 1,
            Ok(HostFrame::ArpOther) => {}
            Ok(HostFrame::ArpRequest {
                sender_mac,
                sender_ip,
                target,
            }) => {
                if let Some(l) = self.leases.get_mut(&sender_ip) {
                    l.mac = Some(sender_mac);
                }
                // Probes (from 0.0.0.0) and questions about the host's own addresses get
                // no answer; every other address is "at the gateway".
                if !sender_ip.is_unspecified() && !self.leases.contains_key(&target) {
                    let reply =
                        frame::arp_reply(self.config.gateway_mac, target, sender_mac, sender_ip);
                    self.tap.push_back(reply);
                    self.stats.arp_replies += 1;
                }
            }
            Ok(HostFrame::Dhcp { message, .. }) => self.dhcp_message(now, node, dht, message),
            Ok(HostFrame::Ipv4 {
                src_mac,
                src,
                dst,
                packet,
            }) => {
                if let Some(l) = self.leases.get_mut(&src) {
                    l.mac = Some(src_mac);
                }
                self.host_packet(now, node, dht, src, dst, packet);
            }
        }
    }

    /// A routed message from the overlay; returns false if it is not for IPOP.
    /// `source_verified`: it is signed by its source, or came straight from it over a
    /// secure edge.
    pub fn handle_delivery(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        header: &RoutedHeader,
        payload: &[u8],
        source_verified: bool,
    ) -> bool {
        match header.kind {
            KIND_IP | KIND_NOTICE => self.overlay_packet(now, node, dht, header, payload),
            KIND_IP_DIRECT => self.direct_packet(now, node, dht, header, payload, source_verified),
            _ => return false,
        }
        true
    }

    /// A finished DHT operation; returns false if it was not one of IPOP's.
    pub fn handle_dht_result(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        id: RequestId,
        result: Result<Outcome, DhtError>,
    ) -> bool {
        let Some(purpose) = self.ops.remove(&id) else {
            return false;
        };
        if let (Purpose::Resolve, Some(ip)) = (&purpose, self.resolver.looking_up(id)) {
            let owner = match &result {
                Ok(Outcome::Values(v)) if !v.is_empty() => {
                    let owner = self.config.namespace.owner(ip, &v[0]);
                    if owner.is_none() {
                        self.stats.refused_mappings += 1;
                    }
                    owner
                }
                _ => None,
            };
            self.resolved(now, node, id, owner);
        } else {
            self.lease_result(now, node, dht, purpose, result);
        }
        true
    }

    /// The overlay says there is no route to node `owner`: the IPs it owned are looked
    /// up again (they may have moved). The notice may be forged, so the mappings stay in
    /// use until the DHT answers otherwise, and each IP is looked up at most once per
    /// couple of seconds however many notices arrive.
    pub fn handle_unreachable(&mut self, owner: Address) {
        self.resolver.suspect_owner(owner);
    }

    /// Renewals, the namespace record, cache expiry.
    pub fn handle_timeout(&mut self, now: Instant, node: &mut Node, dht: &mut Dht) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + Duration::from_secs(1);
        self.resolver.expire(now);
        for ip in self.resolver.suspects(now) {
            self.lookup(now, node, dht, ip);
        }
        self.maintain(now, node, dht);
    }

    /// When [`Ipop::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// The next frame to write to the TAP, swapped into `buf`.
    pub fn poll_tap(&mut self, buf: &mut Vec<u8>) -> bool {
        let Some(mut frame) = self.tap.pop_front() else {
            return false;
        };
        std::mem::swap(buf, &mut frame);
        if self.pool.len() < 64 {
            self.pool.push(frame);
        }
        true
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
