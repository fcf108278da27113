//! The IP data path: packets from the host to the node owning the destination IP (after
//! Brunet-ARP), and packets from the overlay to the host (after checking that the
//! sending node owns the source IP). In a keyed namespace every packet is sealed end to
//! end between the members ([`super::keyed`]).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use smoltcp::wire::Ipv4Packet;

use super::keyed::{SEAL_OVERHEAD, Unsealed};
use super::resolver::Lookup;
use super::{
    Ipop, KIND_IP, KIND_IP_DIRECT, KIND_NOTICE, Mapping, OVERHEAD, Purpose, UNFRAGMENTED_MTU,
    frame, mtu,
};
use crate::address::Address;
use crate::dht::Dht;
use crate::overlay::Node;
use crate::wire::{Mode, RoutedHeader};

/// Most inbound packets held while their source is being verified.
const HELD_LIMIT: usize = 256;
/// Most ICMP "fragmentation needed" answers written to the host per second.
const ICMP_PER_SECOND: u32 = 100;

impl Ipop {
    /// The node that owns `ip` under hash mapping.
    pub(super) fn hashed_owner(ip: Ipv4Addr) -> Address {
        Address::sha1(&ip.octets())
    }

    /// Whether the host behind this node may use `ip`: a held address, which in hash
    /// mode must also hash to this node (or peers would send its traffic elsewhere).
    pub(super) fn holds(&self, node: &Node, ip: Ipv4Addr) -> bool {
        self.leases.contains_key(&ip)
            && (self.config.mapping == Mapping::Dht || Self::hashed_owner(ip) == node.address())
    }

    /// An IPv4 packet from the host for `dst`.
    pub(super) fn host_packet(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        packet: &[u8],
    ) {
        if !self.holds(node, src) {
            self.stats.dropped_unowned_source += 1;
            return;
        }
        if self.leases.contains_key(&dst) {
            // Another address behind this TAP (router mode): straight back.
            self.write_to_host(dst, packet);
            return;
        }
        let broadcast = self.record.as_ref().map(|r| r.range.broadcast());
        if dst.is_multicast() && is_igmp(packet) {
            // Group membership stays on the host: every member gets every group's
            // packets, and its kernel keeps those of the groups it joined.
            self.stats.igmp_ignored += 1;
            return;
        }
        if dst == Ipv4Addr::BROADCAST || Some(dst) == broadcast || dst.is_multicast() {
            // To every member: the overlay's broadcast reaches each node once, and its
            // forwarders pass on at most `broadcasts_per_origin` a second per origin.
            let payload = self.encapsulate(node.address(), packet);
            node.broadcast(KIND_IP, &payload);
            if dst.is_multicast() {
                self.stats.multicasts += 1;
            } else {
                self.stats.broadcasts += 1;
            }
            return;
        }
        if let Some(r) = &self.record {
            if !r.range.is_assignable(dst) {
                self.stats.dropped_outside_namespace += 1;
                return;
            }
        }
        let owner = match self.config.mapping {
            Mapping::Hash => Self::hashed_owner(dst),
            Mapping::Dht => match self.resolver.route(now, dst, packet) {
                Lookup::Send { owner, refresh } => {
                    if refresh {
                        self.lookup(now, node, dht, dst);
                    }
                    owner
                }
                Lookup::Resolve => {
                    self.lookup(now, node, dht, dst);
                    return;
                }
                Lookup::Wait => return,
                Lookup::Full => {
                    self.stats.dropped_queue_full += 1;
                    return;
                }
            },
        };
        self.send(now, node, owner, packet);
    }

    /// The routed payload of `body` from this node (`me`): the namespace's identifier,
    /// then the body, sealed if the namespace is keyed.
    fn encapsulate(&mut self, me: Address, body: &[u8]) -> Vec<u8> {
        let ns = &self.config.namespace;
        let mut payload = Vec::with_capacity(ns.packet_overhead() + body.len());
        ns.seal_packet(&mut self.rng, me, body, &mut payload);
        payload
    }

    /// Whether a packet to `owner` goes as [`KIND_IP_DIRECT`]: a keyed namespace's packet
    /// to an owner on a direct secure edge goes in one hop, sealed by that edge's session
    /// (a second seal would prove nothing more).
    fn sends_direct(&self, node: &Node, owner: Address) -> bool {
        self.config.namespace.is_keyed() && self.secure_edges && node.has_direct_edge(owner)
    }

    /// The largest IP packet the path to (or from) `peer` carries whole: what path-MTU
    /// discovery found on a direct edge to it, less the overlay's headers; elsewhere
    /// (several hops, or an edge not measured yet) what crosses any edge of a 1500-byte
    /// underlay.
    /// `direct`: what [`Ipop::sends_direct`] says of `peer`.
    fn path_limit(&self, node: &Node, peer: Address, direct: bool) -> usize {
        // A keyed namespace's packets carry a seal end to end, unless sent direct.
        let seal = if self.config.namespace.is_keyed() {
            SEAL_OVERHEAD
        } else {
            0
        };
        match node.path_mtu(peer) {
            Some(datagram) if direct => datagram.saturating_sub(OVERHEAD),
            Some(datagram) => datagram.saturating_sub(OVERHEAD + seal),
            None => UNFRAGMENTED_MTU - seal,
        }
    }

    /// Sends a packet from the host to the node that owns its destination: cut to the
    /// path's MTU (or refused with ICMP), and with a SYN's MSS clamped to it.
    fn send(&mut self, now: Instant, node: &mut Node, owner: Address, packet: &[u8]) {
        let direct = self.sends_direct(node, owner);
        let limit = self.path_limit(node, owner, direct);
        if packet.len() > limit {
            self.too_big(now, node, owner, packet, (limit, direct));
        } else if mtu::carries_syn(packet) {
            let mut p = packet.to_vec();
            self.stats.mss_clamped += u64::from(mtu::clamp_mss(&mut p, mtu::mss_for(limit)));
            self.send_whole(now, node, owner, &p, direct);
        } else {
            self.send_whole(now, node, owner, packet, direct);
        }
    }

    /// A packet larger than its path carries: a DF packet is answered with ICMP
    /// "fragmentation needed" (at most [`ICMP_PER_SECOND`]), any other cut into fragments.
    /// `(limit, direct)`: the path's limit, and whether packets to `owner` go direct.
    fn too_big(
        &mut self,
        now: Instant,
        node: &mut Node,
        owner: Address,
        packet: &[u8],
        (limit, direct): (usize, bool),
    ) {
        if mtu::dont_fragment(packet) {
            // Traffic all the same: a shortcut (whose path is measured) may serve it.
            node.note_traffic(now, owner);
            let mut icmp = Vec::new();
            let src = Ipv4Packet::new_checked(packet).map(|p| p.src_addr());
            match src {
                Ok(src)
                    if self.icmp_allowed(now)
                        && mtu::frag_needed(packet, limit as u16, &mut icmp) =>
                {
                    self.write_to_host(src, &icmp);
                    self.stats.frag_needed_sent += 1;
                }
                _ => self.stats.dropped_too_big += 1,
            }
            return;
        }
        let mut buf = Vec::with_capacity(limit);
        let cut = mtu::fragment(packet, limit, &mut buf, |f| {
            self.send_whole(now, node, owner, f, direct)
        });
        if cut {
            self.stats.fragmented += 1;
        } else {
            self.stats.dropped_too_big += 1;
        }
    }

    /// Whether another ICMP error may go to the host this second.
    fn icmp_allowed(&mut self, now: Instant) -> bool {
        let (since, sent) = &mut self.icmp_window;
        if now.saturating_duration_since(*since) >= Duration::from_secs(1) {
            (*since, *sent) = (now, 0);
        }
        *sent += 1;
        *sent <= ICMP_PER_SECOND
    }

    /// Sends a packet that fits its path.
    fn send_whole(
        &mut self,
        now: Instant,
        node: &mut Node,
        owner: Address,
        packet: &[u8],
        direct: bool,
    ) {
        // The payload is built in a buffer kept for it: no allocation per packet.
        let mut payload = std::mem::take(&mut self.outgoing);
        payload.clear();
        let ns = &self.config.namespace;
        let kind = if direct {
            payload.extend_from_slice(&ns.id().0);
            payload.extend_from_slice(packet);
            KIND_IP_DIRECT
        } else {
            ns.seal_packet(&mut self.rng, node.address(), packet, &mut payload);
            KIND_IP
        };
        let sent = node.send_routed_unsigned(now, owner, Mode::Exact, kind, &payload);
        self.outgoing = payload;
        if sent.is_ok() {
            node.note_traffic(now, owner);
            self.stats.to_overlay += 1;
            self.stats.to_overlay_direct += u64::from(direct);
        } else {
            self.stats.dropped_no_route += 1;
        }
    }

    /// Starts a Brunet-ARP lookup of `ip`.
    pub(super) fn lookup(&mut self, now: Instant, node: &mut Node, dht: &mut Dht, ip: Ipv4Addr) {
        let key = self.config.namespace.ip_key(ip);
        if let Ok(id) = dht.get(now, node, &key) {
            self.stats.lookups += 1;
            self.resolver.lookup_started(id, ip);
            self.ops.insert(id, Purpose::Resolve);
        }
    }

    /// A Brunet-ARP lookup finished.
    pub(super) fn resolved(
        &mut self,
        now: Instant,
        node: &mut Node,
        id: crate::dht::RequestId,
        owner: Option<Address>,
    ) {
        let Some((ip, packets)) = self.resolver.resolved(now, id, owner) else {
            return;
        };
        match owner {
            Some(owner) => {
                for p in packets {
                    self.send(now, node, owner, &p);
                }
            }
            None => self.stats.dropped_unresolved += packets.len() as u64,
        }
        // Inbound packets that waited for their source to be verified.
        let held: Vec<(Address, Vec<u8>)> = self.held.remove(&ip).unwrap_or_default();
        for (sender, packet) in held {
            self.held_count -= 1;
            if Some(sender) == owner {
                self.resolver.heard(now, ip, sender);
                self.deliver_inbound(&packet);
            } else {
                self.stats.dropped_spoofed += 1;
            }
        }
    }

    /// An IP packet (or a notice) from the overlay.
    pub(super) fn overlay_packet(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        header: &RoutedHeader,
        payload: &[u8],
    ) {
        let mut body = std::mem::take(&mut self.scratch);
        match self
            .config
            .namespace
            .open_packet(header.src, payload, &mut body)
        {
            Ok(()) => self.unsealed_packet(now, node, dht, header, &body),
            Err(Unsealed::WrongNamespace) => self.stats.dropped_wrong_namespace += 1,
            Err(Unsealed::Unauthentic) => self.stats.dropped_unauthentic += 1,
        }
        self.scratch = body;
    }

    /// A [`KIND_IP_DIRECT`] packet: taken only in a keyed namespace, and only when its
    /// source is verified — it came straight from it over a secure edge (as senders send
    /// it), or carries its signature — else anyone could skip the seal.
    pub(super) fn direct_packet(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        header: &RoutedHeader,
        payload: &[u8],
        source_verified: bool,
    ) {
        match self.config.namespace.open_direct(payload, source_verified) {
            Ok(packet) => self.unsealed_packet(now, node, dht, header, packet),
            Err(Unsealed::WrongNamespace) => self.stats.dropped_wrong_namespace += 1,
            Err(Unsealed::Unauthentic) => self.stats.dropped_unauthentic += 1,
        }
    }

    fn unsealed_packet(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        header: &RoutedHeader,
        body: &[u8],
    ) {
        if header.kind == KIND_NOTICE {
            // The sender does not hold this IP: our mapping may be stale (it moved), or
            // the notice forged; the IP is looked up again.
            if let Ok(b) = <[u8; 4]>::try_from(body) {
                self.resolver.suspect(Ipv4Addr::from(b));
            }
            return;
        }
        let Ok(ip) = Ipv4Packet::new_checked(body) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let clamped;
        let body = if mtu::carries_syn(body) {
            // The host will send segments of the MSS it reads here: at most what the path
            // back to the sender carries.
            let mut p = body.to_vec();
            let direct = self.sends_direct(node, header.src);
            let mss = mtu::mss_for(self.path_limit(node, header.src, direct));
            self.stats.mss_clamped += u64::from(mtu::clamp_mss(&mut p, mss));
            clamped = p;
            &clamped[..]
        } else {
            body
        };
        if dst.is_multicast() && is_igmp(body) {
            self.stats.igmp_ignored += 1;
            return;
        }
        let broadcast = self.record.as_ref().map(|r| r.range.broadcast());
        let to_all = dst == Ipv4Addr::BROADCAST || Some(dst) == broadcast || dst.is_multicast();
        if !to_all && !self.leases.contains_key(&dst) {
            self.stats.dropped_not_here += 1;
            let notice = self.encapsulate(node.address(), &dst.octets());
            let _ = node.send_routed(now, header.src, Mode::Exact, KIND_NOTICE, &notice);
            return;
        }
        // No spoofing inside a namespace: the sending node must own the source IP.
        let verified = match self.config.mapping {
            Mapping::Hash => Some(Self::hashed_owner(src) == header.src),
            Mapping::Dht => self.resolver.cached(now, src).map(|o| o == header.src),
        };
        match verified {
            Some(true) => {
                self.resolver.heard(now, src, header.src);
                self.deliver_inbound(body);
            }
            Some(false) if self.config.mapping == Mapping::Hash => self.stats.dropped_spoofed += 1,
            _ if self.resolver.confirmed(now, src).is_some() => {
                // The DHT just named another owner: a forgery (looked up at most once
                // per retry interval, however many arrive).
                self.stats.dropped_spoofed += 1;
            }
            _ => {
                // Unknown (or changed) owner: look it up before delivering.
                if self.held_count >= HELD_LIMIT {
                    self.stats.dropped_queue_full += 1;
                    return;
                }
                let first = !self.held.contains_key(&src);
                self.held
                    .entry(src)
                    .or_default()
                    .push((header.src, body.to_vec()));
                self.held_count += 1;
                if first && !self.resolver.in_flight(src) {
                    self.resolver.suspect(src);
                    self.lookup(now, node, dht, src);
                }
            }
        }
    }

    fn deliver_inbound(&mut self, packet: &[u8]) {
        let Ok(ip) = Ipv4Packet::new_checked(packet) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let dst = ip.dst_addr();
        self.stats.from_overlay += 1;
        if self.leases.contains_key(&dst) {
            self.write_to_host(dst, packet);
        } else if dst.is_multicast() {
            // One frame to the group's MAC: the hosts behind this TAP that joined the
            // group take it.
            let mut frame = self.pool.pop().unwrap_or_default();
            frame::ip_frame(
                multicast_mac(dst),
                self.config.gateway_mac,
                packet,
                &mut frame,
            );
            self.tap.push_back(frame);
        } else {
            // A broadcast: to every address behind this TAP.
            let owned: Vec<Ipv4Addr> = self.leases.keys().copied().collect();
            for ip in owned {
                self.write_to_host(ip, packet);
            }
        }
    }

    /// Writes `packet` to the TAP as a frame for the host holding `ip`.
    fn write_to_host(&mut self, ip: Ipv4Addr, packet: &[u8]) {
        let mac = self
            .leases
            .get(&ip)
            .and_then(|l| l.mac)
            .unwrap_or([0xff; 6]);
        let mut frame = self.pool.pop().unwrap_or_default();
        frame::ip_frame(mac, self.config.gateway_mac, packet, &mut frame);
        self.tap.push_back(frame);
    }
}

/// Whether an IPv4 packet (checked) carries IGMP.
fn is_igmp(packet: &[u8]) -> bool {
    packet.get(9) == Some(&2)
}

/// The Ethernet address of multicast group `group` (RFC 1112: 01:00:5e and its low 23
/// bits).
fn multicast_mac(group: Ipv4Addr) -> [u8; 6] {
    let [_, b, c, d] = group.octets();
    [0x01, 0x00, 0x5e, b & 0x7f, c, d]
}
