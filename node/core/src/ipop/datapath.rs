//! The IP data path: packets from the host to the node owning the destination IP (after
//! Brunet-ARP), and packets from the overlay to the host (after checking that the
//! sending node owns the source IP). In a keyed namespace every packet is sealed end to
//! end between the members ([`super::keyed`]).

use std::net::Ipv4Addr;
use std::time::Instant;

use super::keyed::Unsealed;
use super::resolver::Lookup;
use super::{Ipop, KIND_IP, KIND_IP_DIRECT, KIND_NOTICE, Mapping, Purpose, frame};
use crate::address::Address;
use crate::dht::Dht;
use crate::overlay::Node;
use crate::wire::{Mode, RoutedHeader};

/// Most inbound packets held while their source is being verified.
const HELD_LIMIT: usize = 256;

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
        if dst == Ipv4Addr::BROADCAST || Some(dst) == broadcast {
            let payload = self.encapsulate(node.address(), packet);
            node.broadcast(KIND_IP, &payload);
            self.stats.broadcasts += 1;
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

    fn send(&mut self, now: Instant, node: &mut Node, owner: Address, packet: &[u8]) {
        // A keyed namespace's packet to an owner on a direct secure edge goes in one hop,
        // sealed by that edge's session: a second seal would prove nothing more.
        let direct =
            self.config.namespace.is_keyed() && self.secure_edges && node.has_direct_edge(owner);
        let (kind, payload) = if direct {
            let mut payload = Vec::with_capacity(16 + packet.len());
            payload.extend_from_slice(&self.config.namespace.id().0);
            payload.extend_from_slice(packet);
            (KIND_IP_DIRECT, payload)
        } else {
            (KIND_IP, self.encapsulate(node.address(), packet))
        };
        if node
            .send_routed_unsigned(now, owner, Mode::Exact, kind, &payload)
            .is_ok()
        {
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
        let Ok(ip) = smoltcp::wire::Ipv4Packet::new_checked(body) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let broadcast = self.record.as_ref().map(|r| r.range.broadcast());
        let to_all = dst == Ipv4Addr::BROADCAST || Some(dst) == broadcast;
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
        let Ok(ip) = smoltcp::wire::Ipv4Packet::new_checked(packet) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        let dst = ip.dst_addr();
        self.stats.from_overlay += 1;
        if self.leases.contains_key(&dst) {
            self.write_to_host(dst, packet);
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
