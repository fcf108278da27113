//! Greedy routing, local delivery, connect-to-me, probes and relay tunnels.
//!
//! A message moves to the routable connection closest to its destination, and only if
//! that connection is strictly closer than the current node; distance shrinks at every
//! hop, so a route cannot loop, and the hop limit bounds it anyway. Where no closer
//! connection exists the message has reached the closest node it can: `Exact` delivers
//! only if that node is the destination, `Nearest` delivers there, and `Pair` delivers
//! there and hands a copy to the node on the other side of the key.

use std::time::Instant;

use super::{Delivery, Edge, Event, Handled, Node, Source, Transmit};
use crate::address::{Address, Distance};
use crate::wire::{
    self, AddressList, CtmReply, CtmRequest, MAX_NEIGHBORS, Message, Mode, OverlayPayload, Probe,
    Roles, Routed, RoutedFlags, RoutedHeader, TransportList, kind,
};

/// A CTM request waiting for replies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingCtm {
    pub(crate) token: u64,
    pub(crate) target: Address,
    pub(crate) via: Option<Address>,
    pub(crate) roles: Roles,
    pub(crate) deadline: Instant,
}

/// Why a routed message could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The node has not joined, or has left.
    #[error("the node is not running")]
    NotRunning,
    /// No connection leads towards the destination.
    #[error("no route towards the destination")]
    NoRoute,
    /// Payload kinds below `kind::FIRST_APP` belong to the overlay.
    #[error("payload kind {0} is reserved for the overlay")]
    ReservedKind(u8),
    /// The message does not fit in a datagram.
    #[error("message too large")]
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Deliver,
    DeliverAndCopy(Address),
    Forward(Address),
    NoRoute,
}

/// Largest routed datagram the node builds itself.
const MAX_DATAGRAM: usize = 65_000;
/// Most unreachable notices sent per second (forged sources cannot grow the list).
const MAX_NOTICES: usize = 64;

impl Node {
    /// Where a message with header `h` goes next from this node.
    fn decide(&self, h: &RoutedHeader, originating: bool) -> Decision {
        let me = self.address;
        if h.flags.contains(RoutedFlags::PAIR_COPY) {
            return Decision::Deliver;
        }
        if let Some(via) = h.via {
            // A waypoint: route to `via` first; from there on, by mode.
            if via != me && !h.flags.contains(RoutedFlags::VIA_DONE) {
                return self.toward_exact(via, originating);
            }
        }
        match h.mode {
            Mode::Exact if h.dst == me => Decision::Deliver,
            Mode::Exact => self.toward_exact(h.dst, originating),
            Mode::Nearest => match self.table.closest_routable(h.dst, None) {
                Some((d, c)) if d < me.ring_distance(h.dst) => Decision::Forward(c.peer),
                _ => self.leaf_fallback(originating).unwrap_or(Decision::Deliver),
            },
            Mode::Pair => self.pair(h.dst, originating),
        }
    }

    fn toward_exact(&self, target: Address, originating: bool) -> Decision {
        if self.table.get(target).is_some() {
            return Decision::Forward(target);
        }
        match self.table.closest_routable(target, None) {
            Some((d, c)) if d < self.address.ring_distance(target) => Decision::Forward(c.peer),
            _ => self.leaf_fallback(originating).unwrap_or(Decision::NoRoute),
        }
    }

    fn pair(&self, key: Address, originating: bool) -> Decision {
        let me = self.address;
        let mine = if me == key {
            Distance::MAX
        } else {
            me.ring_distance(key)
        };
        if let Some((d, c)) = self.table.closest_routable(key, Some(key)) {
            if d < mine {
                return Decision::Forward(c.peer);
            }
        }
        if let Some(d) = self.leaf_fallback(originating) {
            return d;
        }
        if me == key {
            return Decision::NoRoute;
        }
        let (left, right) = self.table.adjacent_routable(me, key);
        let partner = match (left, right) {
            (_, Some(r)) if key.in_cw_arc(me, r) => Some(r),
            (Some(l), _) if key.in_cw_arc(l, me) => Some(l),
            (Some(l), Some(r)) => Some(if l.ring_distance(key) <= r.ring_distance(key) {
                l
            } else {
                r
            }),
            (l, r) => l.or(r),
        };
        match partner {
            Some(p) => Decision::DeliverAndCopy(p),
            None => Decision::Deliver,
        }
    }

    /// A node with no routable connection sends its own messages through a leaf
    /// (bootstrap) connection: that is how a joining node reaches the ring.
    fn leaf_fallback(&self, originating: bool) -> Option<Decision> {
        if !originating || self.table.iter().any(|c| c.is_routable()) {
            return None;
        }
        self.table.iter().next().map(|c| Decision::Forward(c.peer))
    }

    /// A routed datagram arrived from `src` (`None`: originated here).
    pub(crate) fn on_routed(
        &mut self,
        now: Instant,
        src: Option<Source>,
        mut header: RoutedHeader,
        buf: &mut [u8],
        offset: usize,
    ) -> Handled {
        if header.ttl > self.config.ttl {
            // Nobody may make a message travel further than this overlay's hop limit.
            self.stats.ttl_capped += 1;
            header.ttl = self.config.ttl;
            buf[wire::ROUTED_TTL_OFFSET] = header.ttl;
        }
        match self.decide(&header, false) {
            Decision::Forward(peer) => self.forward_in_place(peer, &header, buf),
            Decision::Deliver => self.deliver(now, src, header, buf, offset),
            Decision::DeliverAndCopy(partner) => {
                let mut copy = self.outbox.buffer();
                copy.extend_from_slice(buf);
                copy[wire::ROUTED_FLAGS_OFFSET] |= RoutedFlags::PAIR_COPY.bits();
                self.forward_owned(partner, &header, copy);
                self.deliver(now, src, header, buf, offset)
            }
            Decision::NoRoute => {
                self.stats.no_route += 1;
                self.tell_unreachable(now, &header);
                Handled::Done
            }
        }
    }

    /// Tells the sender of an application message that its destination has no route
    /// (at most once a second per sender and destination).
    fn tell_unreachable(&mut self, now: Instant, header: &RoutedHeader) {
        if header.kind < kind::FIRST_APP || header.mode != Mode::Exact || header.src == self.address
        {
            return;
        }
        let second = std::time::Duration::from_secs(1);
        self.notices
            .retain(|(_, _, t)| now.saturating_duration_since(*t) < second);
        if self.notices.len() >= MAX_NOTICES
            || self
                .notices
                .iter()
                .any(|(s, d, _)| *s == header.src && *d == header.dst)
        {
            return;
        }
        self.notices.push((header.src, header.dst, now));
        let notice = OverlayPayload::Unreachable(header.dst);
        let h = self.header(header.src, Mode::Exact, kind::UNREACHABLE, None);
        let _ = self.originate(now, h, &notice);
    }

    fn forward_in_place(
        &mut self,
        peer: Address,
        header: &RoutedHeader,
        buf: &mut [u8],
    ) -> Handled {
        if header.hops >= header.ttl {
            self.stats.ttl_exceeded += 1;
            return Handled::Done;
        }
        buf[wire::ROUTED_HOPS_OFFSET] = header.hops + 1;
        if header.via == Some(self.address) {
            buf[wire::ROUTED_FLAGS_OFFSET] |= RoutedFlags::VIA_DONE.bits();
        }
        let Some(conn) = self.table.get_mut(peer) else {
            return Handled::Done;
        };
        conn.counters.tx_packets += 1;
        conn.counters.tx_bytes += buf.len() as u64;
        self.stats.forwarded += 1;
        match conn.edge {
            Edge::Direct(dst) => Handled::Forward(Transmit {
                dst,
                len: buf.len(),
            }),
            Edge::Relay { via } => {
                self.send_tunnelled_bytes(peer, via, buf);
                Handled::Done
            }
        }
    }

    /// Forwards a datagram the node owns (a pair copy).
    fn forward_owned(&mut self, peer: Address, header: &RoutedHeader, mut buf: Vec<u8>) {
        if let Handled::Forward(t) = self.forward_in_place(peer, header, &mut buf) {
            self.outbox.push(t.dst, buf);
        }
    }

    fn deliver(
        &mut self,
        now: Instant,
        src: Option<Source>,
        header: RoutedHeader,
        buf: &mut [u8],
        offset: usize,
    ) -> Handled {
        let Some((end, source_verified)) = self.check_source(src, &header, buf, offset) else {
            return Handled::Done;
        };
        self.stats.delivered += 1;
        if header.kind >= kind::FIRST_APP {
            return Handled::Deliver(Delivery {
                header,
                payload: offset..end,
                source_verified,
            });
        }
        let Ok(payload) = OverlayPayload::parse(header.kind, &buf[offset..end]) else {
            self.stats.malformed += 1;
            return Handled::Done;
        };
        match payload {
            OverlayPayload::CtmRequest(req) => self.on_ctm_request(now, &header, &req),
            OverlayPayload::CtmReply(rep) => self.on_ctm_reply(now, &header, &rep),
            OverlayPayload::Probe(p) => self.on_probe(now, &header, p),
            OverlayPayload::Tunnel(inner) => {
                let inner = inner.to_vec();
                self.on_tunnel(now, src, &header, inner);
            }
            OverlayPayload::Broadcast(b) => self.on_broadcast(now, src, &header, &b),
            OverlayPayload::Unreachable(dst) => self.events.push_back(Event::Unreachable(dst)),
        }
        Handled::Done
    }

    fn on_tunnel(
        &mut self,
        now: Instant,
        from: Option<Source>,
        header: &RoutedHeader,
        mut inner: Vec<u8>,
    ) {
        let Some(via) = header.via else {
            self.stats.malformed += 1;
            return;
        };
        // A tunnel arrives from its relay, a direct connection of ours, and comes from a
        // third node: anything else would install an edge "relayed" through a node that
        // does not carry it (or through the peer itself).
        let from_via = from.is_some_and(|f| {
            f.relay_peer.is_none()
                && self
                    .table
                    .get(via)
                    .is_some_and(|c| c.edge.is_direct() && c.edge == f.edge)
        });
        if !from_via || header.src == via || header.src == self.address {
            self.stats.refused_relay += 1;
            return;
        }
        // Tunnels do not nest: a tunnel inside a tunnel is dropped.
        if let Ok(Message::Routed(r)) = wire::parse(&inner) {
            if r.header.kind == kind::TUNNEL {
                self.stats.malformed += 1;
                return;
            }
        }
        let src = Source {
            edge: Edge::Relay { via },
            relay_peer: Some(header.src),
            authenticated: None,
        };
        match self.handle_edge_datagram(now, src, &mut inner) {
            Handled::Forward(t) => {
                inner.truncate(t.len);
                self.outbox.push(t.dst, inner);
            }
            Handled::Deliver(d) => {
                let verified = d.source_verified;
                self.inbox
                    .push_back((d.header, inner[d.payload].to_vec(), verified));
            }
            Handled::Done => {}
        }
    }

    /// Candidate edges to a CTM peer: its transports, then (tried later) relays through
    /// peers both of us have direct edges to.
    fn ctm_candidates(
        &self,
        peer: Address,
        transports: TransportList<'_>,
        relays: AddressList<'_>,
    ) -> Vec<Edge> {
        let mut edges: Vec<Edge> = transports.iter().map(Edge::Direct).collect();
        for r in relays.iter() {
            let direct = self
                .table
                .get(r)
                .is_some_and(|c| matches!(c.edge, Edge::Direct(_)));
            if direct && r != peer && r != self.address {
                edges.push(Edge::Relay { via: r });
            }
        }
        edges
    }

    fn on_ctm_request(&mut self, now: Instant, header: &RoutedHeader, req: &CtmRequest<'_>) {
        let requester = header.src;
        if requester == self.address {
            return;
        }
        let c = &self.config;
        let (per_source, sources) = (c.ctm_per_source, c.ctm_sources);
        if !self.ctm_limit.allow(now, requester, per_source, sources) {
            self.stats.ctm_refused += 1;
            return;
        }
        let candidates = self.ctm_candidates(requester, req.transports, req.relays);
        self.start_link(now, Some(requester), candidates, Roles::NONE);
        self.keep_relay_offers(requester, req.roles, req.relays);
        let transports = self.nat.advertised();
        let relays = self.table.direct_peers(MAX_NEIGHBORS);
        let reply = OverlayPayload::CtmReply(CtmReply {
            token: req.token,
            roles: req.roles,
            transports: TransportList::Slice(&transports),
            relays: AddressList::Slice(&relays),
        });
        let h = self.header(requester, Mode::Exact, kind::CTM_REPLY, req.reply_via);
        let _ = self.originate(now, h, &reply);
    }

    fn on_ctm_reply(&mut self, now: Instant, header: &RoutedHeader, rep: &CtmReply<'_>) {
        let Some(pending) = self.ctms.iter().find(|c| c.token == rep.token) else {
            return;
        };
        let roles = pending.roles;
        let candidates = self.ctm_candidates(header.src, rep.transports, rep.relays);
        self.start_link(now, Some(header.src), candidates, roles);
        self.keep_relay_offers(header.src, roles, rep.relays);
    }

    fn on_probe(&mut self, now: Instant, header: &RoutedHeader, p: Probe) {
        let (src, id, hops) = (header.src, p.id, header.hops);
        if p.echo_reply {
            self.events.push_back(Event::ProbeReply {
                src,
                id,
                hops,
                request_hops: p.request_hops,
            });
            return;
        }
        self.events
            .push_back(Event::ProbeReceived { src, id, hops });
        if p.echo_request {
            let reply = OverlayPayload::Probe(Probe {
                id,
                echo_request: false,
                echo_reply: true,
                request_hops: hops,
            });
            let h = self.header(src, Mode::Exact, kind::PROBE, None);
            let _ = self.originate(now, h, &reply);
        }
    }

    pub(super) fn header(
        &self,
        dst: Address,
        mode: Mode,
        kind: u8,
        via: Option<Address>,
    ) -> RoutedHeader {
        RoutedHeader {
            ttl: self.config.ttl,
            hops: 0,
            mode,
            flags: RoutedFlags::default(),
            kind,
            src: self.address,
            dst,
            via,
        }
    }

    /// Sends a connect-to-me request towards `target`; replies are routed back through
    /// the request's first hop, which has a direct connection to this node.
    /// With `via`, the request goes to `via` first and is routed on from there (how a
    /// node reaches a peer it heard of from a neighbour, which is connected to it).
    pub(crate) fn send_ctm(
        &mut self,
        now: Instant,
        target: Address,
        mode: Mode,
        roles: Roles,
        via: Option<Address>,
    ) -> bool {
        let h = self.header(target, mode, kind::CTM_REQUEST, via);
        let decision = self.decide(&h, true);
        let Decision::Forward(first_hop) = decision else {
            return false;
        };
        let token = rand::Rng::next_u64(&mut self.rng);
        let transports = self.nat.advertised();
        let relays = self.table.direct_peers(MAX_NEIGHBORS);
        let req = OverlayPayload::CtmRequest(CtmRequest {
            token,
            roles,
            reply_via: Some(first_hop),
            transports: TransportList::Slice(&transports),
            relays: AddressList::Slice(&relays),
        });
        if self.emit(now, h, &req, decision).is_err() {
            return false;
        }
        self.ctms.push(PendingCtm {
            token,
            target,
            via,
            roles,
            deadline: now + self.config.ctm_timeout,
        });
        self.stats.ctm_sent += 1;
        true
    }

    /// Sends a routed message originated here.
    pub(super) fn originate(
        &mut self,
        now: Instant,
        h: RoutedHeader,
        payload: &OverlayPayload<'_>,
    ) -> Result<(), SendError> {
        let decision = self.decide(&h, true);
        self.emit(now, h, payload, decision)
    }

    fn emit(
        &mut self,
        now: Instant,
        h: RoutedHeader,
        payload: &OverlayPayload<'_>,
        decision: Decision,
    ) -> Result<(), SendError> {
        let mut bytes = [0u8; 512];
        let n = payload.emit(&mut bytes).map_err(|_| SendError::TooLarge)?;
        self.emit_bytes(now, h, &bytes[..n], decision, true)
    }

    /// Sends a routed message with `payload` bytes originated here; with `sign`,
    /// signed if the node signs.
    pub(super) fn originate_bytes(
        &mut self,
        now: Instant,
        h: RoutedHeader,
        payload: &[u8],
        sign: bool,
    ) -> Result<(), SendError> {
        let decision = self.decide(&h, true);
        self.emit_bytes(now, h, payload, decision, sign)
    }

    /// Sends a routed message originated here; with `sign`, signed if the node signs
    /// and the message leaves this node (one delivered here only is its own: verified).
    fn emit_bytes(
        &mut self,
        now: Instant,
        mut h: RoutedHeader,
        payload: &[u8],
        decision: Decision,
        sign: bool,
    ) -> Result<(), SendError> {
        let leaves = matches!(decision, Decision::Forward(_) | Decision::DeliverAndCopy(_));
        let signed = if sign && leaves {
            self.sign(&mut h, payload)
        } else {
            None
        };
        let payload = signed.as_deref().unwrap_or(payload);
        let msg = Message::Routed(Routed { header: h, payload });
        if msg.buffer_len() > MAX_DATAGRAM {
            return Err(SendError::TooLarge);
        }
        match decision {
            Decision::NoRoute => {
                self.stats.no_route += 1;
                Err(SendError::NoRoute)
            }
            Decision::Forward(peer) => {
                h.hops = 1;
                if h.via == Some(self.address) {
                    h.flags = h.flags.with(RoutedFlags::VIA_DONE);
                }
                let edge = self.table.get(peer).map(|c| c.edge);
                let msg = Message::Routed(Routed { header: h, payload });
                match edge {
                    Some(edge) => self.send_on_edge(peer, edge, &msg),
                    None => return Err(SendError::NoRoute),
                }
                Ok(())
            }
            Decision::Deliver | Decision::DeliverAndCopy(_) => {
                if let Decision::DeliverAndCopy(partner) = decision {
                    if let Some(edge) = self.table.get(partner).map(|c| c.edge) {
                        let mut hc = h;
                        hc.hops = 1;
                        hc.flags = hc.flags.with(RoutedFlags::PAIR_COPY);
                        let copy = Message::Routed(Routed {
                            header: hc,
                            payload,
                        });
                        self.send_on_edge(partner, edge, &copy);
                    }
                }
                let mut v = msg.to_vec().map_err(|_| SendError::TooLarge)?;
                let offset = v.len() - payload.len();
                if let Handled::Deliver(d) = self.deliver(now, None, h, &mut v, offset) {
                    let verified = d.source_verified;
                    self.inbox
                        .push_back((d.header, v[d.payload].to_vec(), verified));
                }
                Ok(())
            }
        }
    }

    /// Sends an edge-level message to `peer` through the relay `via`.
    pub(crate) fn send_tunnelled(&mut self, peer: Address, via: Address, msg: &Message<'_>) {
        let mut inner = self.outbox.buffer();
        inner.resize(msg.buffer_len(), 0);
        if let Ok(n) = msg.emit(&mut inner) {
            self.send_tunnelled_bytes(peer, via, &inner[..n]);
        }
        self.outbox.recycle(inner);
    }

    /// Wraps `inner` in a tunnel to `peer` and hands it to `via`, which must be a direct
    /// connection (relay edges never stack).
    fn send_tunnelled_bytes(&mut self, peer: Address, via: Address, inner: &[u8]) {
        let Some(Edge::Direct(t)) = self.table.get(via).map(|c| c.edge) else {
            self.stats.no_route += 1;
            return;
        };
        let mut h = self.header(peer, Mode::Exact, kind::TUNNEL, Some(via));
        h.hops = 1;
        let msg = Message::Routed(Routed {
            header: h,
            payload: inner,
        });
        self.outbox.push_message(t, &msg);
    }
}
