//! The link handshake: forming a connection with a peer over one of its candidate edges.
//!
//! The initiator sends `LinkRequest`s to every candidate transport of the peer, with
//! exponential backoff, until one answers. When both ends link at once (as they do after
//! a CTM, which is what opens NATs), the node with the smaller address stays initiator:
//! the larger one accepts the other's request and abandons its own attempt, so exactly
//! one connection forms.

use std::time::Instant;

use super::connection::Connection;
use super::{DisconnectReason, Edge, Event, Node, Source};
use crate::address::Address;
use crate::transport::{Proto, TransportAddr};
use crate::wire::{
    self, CloseReason, LinkRequest, LinkResponse, LinkStatus, Message, Roles, TransportList,
};

/// An attempt to link to a peer (or, when bootstrapping, to whoever answers).
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) token: u64,
    /// The peer's address; `None` for bootstrap attempts.
    pub(crate) peer: Option<Address>,
    pub(crate) candidates: Vec<Candidate>,
    /// Roles this node will give the connection.
    pub(crate) roles: Roles,
    pub(crate) started: Instant,
    pub(crate) next_send: Instant,
    sends: u32,
    /// The peer said it is linking to us; stop sending, wait for its request.
    waiting: bool,
    /// Tries a direct edge for a connection that is relayed now.
    upgrade: bool,
    /// Relays a CTM offered, none of them a direct peer of ours (see `relays`).
    pub(crate) relay_offers: Vec<Address>,
    /// Whether this node has connected to `relay_offers` already.
    pub(crate) relays_sought: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) edge: Edge,
    dead: bool,
    /// The return-routability cookie the peer gave for this edge.
    cookie: Option<u64>,
}

impl Candidate {
    pub(crate) fn new(edge: Edge) -> Self {
        Candidate {
            edge,
            dead: false,
            cookie: None,
        }
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead
    }
}

/// Most candidate edges one attempt tries: a peer's advertised transports and a few
/// relays. Requests that name more (repeated CTMs, say) do not extend it further, so
/// what a forged requester can make this node send is bounded.
pub(crate) const MAX_CANDIDATES: usize = wire::MAX_TRANSPORTS + 4;

impl Node {
    /// Starts (or extends) an attempt to link to `peer` at `candidates`.
    pub(crate) fn start_link(
        &mut self,
        now: Instant,
        peer: Option<Address>,
        candidates: impl IntoIterator<Item = Edge>,
        roles: Roles,
    ) {
        if let Some(p) = peer {
            if p == self.address {
                return;
            }
            if let Some(conn) = self.table.get_mut(p) {
                // Remember its direct transports, should the connection be relayed.
                for e in candidates {
                    if let Edge::Direct(t) = e {
                        if !conn.direct_candidates.contains(&t) {
                            conn.direct_candidates.push(t);
                        }
                    }
                }
                if !conn.roles.contains(roles) {
                    conn.roles |= roles;
                    conn.status_due = true;
                }
                return;
            }
        }
        let fresh: Vec<Edge> = candidates
            .into_iter()
            .filter(|e| match e {
                Edge::Direct(t) => !self.nat.is_local(t),
                Edge::Relay { via } => *via != self.address,
            })
            .collect();
        let existing = peer.and_then(|p| self.attempts.iter_mut().find(|a| a.peer == Some(p)));
        if let Some(a) = existing {
            a.roles |= roles;
            for e in fresh {
                if a.candidates.len() >= MAX_CANDIDATES {
                    break;
                }
                if !a.candidates.iter().any(|c| c.edge == e) {
                    a.candidates.push(Candidate::new(e));
                    a.next_send = now;
                }
            }
            return;
        }
        if fresh.is_empty() || (peer.is_some() && !self.attempt_room()) {
            return;
        }
        let token = rand::Rng::next_u64(&mut self.rng);
        self.attempts.push(Attempt {
            token,
            peer,
            candidates: fresh
                .into_iter()
                .take(MAX_CANDIDATES)
                .map(Candidate::new)
                .collect(),
            roles,
            started: now,
            next_send: now,
            sends: 0,
            waiting: false,
            upgrade: false,
            relay_offers: Vec::new(),
            relays_sought: false,
        });
    }

    /// Tries a direct edge for the relayed connection to `peer` (the connection stays on
    /// its relay until a direct one answers).
    pub(crate) fn start_upgrade(
        &mut self,
        now: Instant,
        peer: Address,
        direct: Vec<TransportAddr>,
    ) {
        if self.linking_to(peer) || direct.is_empty() || !self.attempt_room() {
            return;
        }
        let token = rand::Rng::next_u64(&mut self.rng);
        self.attempts.push(Attempt {
            token,
            peer: Some(peer),
            candidates: direct
                .into_iter()
                .take(MAX_CANDIDATES)
                .map(|t| Candidate::new(Edge::Direct(t)))
                .collect(),
            roles: Roles::NONE,
            started: now,
            next_send: now,
            sends: 0,
            waiting: false,
            upgrade: true,
            relay_offers: Vec::new(),
            relays_sought: false,
        });
    }

    /// Whether another attempt may start (counts a refusal if not).
    fn attempt_room(&mut self) -> bool {
        let room = self.attempts.len() < self.config.max_link_attempts;
        if !room {
            self.stats.link_attempts_refused += 1;
        }
        room
    }

    /// Sends due link requests and expires attempts that got no answer.
    pub(crate) fn drive_attempts(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.attempts.len() {
            let a = &self.attempts[i];
            let expired = now.saturating_duration_since(a.started) >= self.config.link_timeout
                || a.candidates.iter().all(|c| c.dead);
            if expired {
                let a = self.attempts.swap_remove(i);
                if a.peer.is_some() && !a.upgrade {
                    self.stats.link_failures += 1;
                }
                continue;
            }
            self.seek_relays(now, i);
            if self.attempts[i].next_send <= now {
                self.send_link_requests(now, i);
            }
            i += 1;
        }
    }

    fn send_link_requests(&mut self, now: Instant, i: usize) {
        let transports = self.nat.advertised();
        let a = &mut self.attempts[i];
        let age = now.saturating_duration_since(a.started);
        let live = |c: &&Candidate| !c.dead;
        let udp_left = a
            .candidates
            .iter()
            .filter(live)
            .any(|c| matches!(c.edge, Edge::Direct(t) if t.proto == Proto::Udp));
        let direct_left = a
            .candidates
            .iter()
            .filter(live)
            .any(|c| matches!(c.edge, Edge::Direct(_)));
        // UDP first; TCP after `tcp_delay`; relays after `relay_delay`.
        let tcp_ok = age >= self.config.tcp_delay || !udp_left;
        let relay_ok = age >= self.config.relay_delay || !direct_left;
        let backoff = self
            .config
            .link_retry
            .saturating_mul(1 << a.sends.min(16))
            .min(self.config.link_retry_max);
        a.sends += 1;
        a.next_send = now + backoff;
        if a.waiting {
            return;
        }
        let peer = a.peer;
        let mut edges: Vec<(Edge, Option<u64>)> = a
            .candidates
            .iter()
            .filter(|c| !c.dead)
            .filter(|c| match c.edge {
                Edge::Direct(t) => t.proto == Proto::Udp || tcp_ok,
                Edge::Relay { .. } => relay_ok,
            })
            .map(|c| (c.edge, c.cookie))
            .collect();
        if peer.is_none() && !edges.is_empty() {
            // Bootstrapping: one bootstrap node per round, so that only one of them
            // forms a connection with us.
            let pick = (a.sends as usize - 1) % edges.len();
            edges = vec![edges[pick]];
        }
        for (edge, cookie) in edges {
            self.send_link_request(i, edge, cookie, &transports);
        }
    }

    /// Sends attempt `i`'s link request over `edge`.
    fn send_link_request(
        &mut self,
        i: usize,
        edge: Edge,
        cookie: Option<u64>,
        transports: &[TransportAddr],
    ) {
        let a = &self.attempts[i];
        let (token, peer, roles) = (a.token, a.peer, a.roles);
        let req = Message::LinkRequest(LinkRequest {
            token,
            overlay: self.config.overlay_id,
            src: self.address,
            dst: peer,
            roles,
            your_addr: match edge {
                Edge::Direct(t) => Some(t),
                Edge::Relay { .. } => None,
            },
            transports: TransportList::Slice(transports),
            cookie,
        });
        match (edge, peer) {
            (Edge::Direct(t), _) => self.send_to_transport(t, &req),
            (Edge::Relay { via }, Some(p)) => self.send_tunnelled(p, via, &req),
            (Edge::Relay { .. }, None) => {}
        }
    }

    fn respond(&mut self, src: Source, peer: Address, token: u64, status: LinkStatus) {
        let roles = self.table.get(peer).map_or(Roles::NONE, |c| c.roles);
        let resp = Message::LinkResponse(LinkResponse {
            token,
            status,
            src: self.address,
            observed: match src.edge {
                Edge::Direct(t) => Some(t),
                Edge::Relay { .. } => None,
            },
            roles,
        });
        self.send_on_edge(peer, src.edge, &resp);
    }

    pub(crate) fn on_link_request(&mut self, now: Instant, src: Source, req: &LinkRequest<'_>) {
        let peer = req.src;
        if src.authenticated.is_some_and(|a| a != peer) {
            self.stats.impersonation += 1;
            return;
        }
        if !self.acceptable_edge(peer, src) {
            self.stats.refused_relay += 1;
            return;
        }
        // A secure edge's handshake already proved that the sender receives at its
        // transport (its message 3 answers our message 2): no cookie round trip.
        if src.authenticated.is_none() && self.needs_cookie(peer, src.edge, req) {
            self.send_cookie(now, src, req);
            return;
        }
        let Some((status, accept_roles)) = self.link_status(now, src, req) else {
            self.stats.refused_full += 1;
            return;
        };
        if let Some(roles) = accept_roles {
            let mut conn = Connection::new(peer, src.edge, req.token, now);
            conn.roles = roles;
            conn.peer_roles = req.roles;
            conn.direct_candidates = req.transports.iter().collect();
            self.table.insert(conn);
            self.schedule_mtu(Some(now));
        }
        if status == LinkStatus::Ok {
            self.evict_other_holders(now, peer, src.edge);
        }
        // The response goes out before anything the new connection triggers (status
        // pings), so that the initiator knows the connection when they arrive.
        self.respond(src, peer, req.token, status);
        if accept_roles.is_some() {
            self.events.push_back(Event::Connected {
                peer,
                edge: src.edge,
            });
            if matches!(src.edge, Edge::Direct(_)) {
                self.relay_connected(now, peer);
            }
        }
        if status == LinkStatus::Ok {
            self.table_changed(now);
        }
    }

    /// Answers `req` with a cookie that its sender must send back, proving that it
    /// receives at `src`.
    fn send_cookie(&mut self, now: Instant, src: Source, req: &LinkRequest<'_>) {
        let cookie = self
            .cookies
            .issue(now, &mut self.rng, src.edge, req.src, req.token);
        if req.cookie.is_some() {
            self.stats.bad_cookie += 1;
        }
        self.stats.cookies_sent += 1;
        self.respond(src, req.src, req.token, LinkStatus::Cookie(cookie));
    }

    /// The answer to the link request `req` that came over `src`, and the roles of the
    /// connection it makes if it makes one (a link from a new peer, or one that wins a
    /// simultaneous attempt); `None` when the table is full. A connection the peer
    /// moved to a new edge follows it.
    fn link_status(
        &mut self,
        now: Instant,
        src: Source,
        req: &LinkRequest<'_>,
    ) -> Option<(LinkStatus, Option<Roles>)> {
        let peer = req.src;
        let mut accept_roles = None;
        let status = if req.overlay != self.config.overlay_id {
            LinkStatus::OverlayMismatch
        } else if peer == self.address {
            LinkStatus::ConnectToSelf
        } else if req.dst.is_some_and(|d| d != self.address) {
            LinkStatus::WrongTarget
        } else if let Some(conn) = self.table.get_mut(peer) {
            conn.peer_roles = req.roles;
            if conn.edge == src.edge {
                LinkStatus::Ok
            } else if conn.token == req.token {
                LinkStatus::AlreadyConnected
            } else {
                // A new attempt: the peer no longer uses the old edge (it restarted or moved).
                conn.token = req.token;
                conn.last_recv = now;
                conn.status_due = true;
                self.move_connection(now, peer, src.edge);
                LinkStatus::Ok
            }
        } else if let Some(i) = self.attempts.iter().position(|a| a.peer == Some(peer)) {
            if self.address < peer {
                // We stay initiator; make sure our requests also go where theirs came from.
                let a = &mut self.attempts[i];
                if a.candidates.len() < MAX_CANDIDATES
                    && !a.candidates.iter().any(|c| c.edge == src.edge)
                {
                    a.candidates.push(Candidate::new(src.edge));
                }
                a.next_send = now;
                LinkStatus::InProgress
            } else {
                accept_roles = Some(self.attempts.swap_remove(i).roles);
                LinkStatus::Ok
            }
        } else if self.table.len() >= self.config.max_connections {
            return None;
        } else {
            accept_roles = Some(Roles::NONE);
            LinkStatus::Ok
        };
        Some((status, accept_roles))
    }

    pub(crate) fn on_link_response(&mut self, now: Instant, src: Source, resp: &LinkResponse) {
        let Some(i) = self.attempts.iter().position(|a| a.token == resp.token) else {
            return; // a late duplicate
        };
        let peer = resp.src;
        if src.authenticated.is_some_and(|a| a != peer) {
            self.stats.impersonation += 1;
            return;
        }
        match resp.status {
            LinkStatus::Ok => self.link_made(now, src, resp, i),
            LinkStatus::AlreadyConnected => {
                if let Some(conn) = self.table.get_mut(peer) {
                    conn.roles |= self.attempts[i].roles;
                    self.attempts.swap_remove(i);
                    self.table_changed(now);
                }
            }
            LinkStatus::InProgress => self.attempts[i].waiting = true,
            LinkStatus::Cookie(cookie) => self.resend_with_cookie(i, src, cookie),
            LinkStatus::ConnectToSelf => {
                if let Edge::Direct(t) = src.edge {
                    self.nat.add_local(t);
                }
                self.kill_candidate(i, src.edge);
            }
            LinkStatus::OverlayMismatch | LinkStatus::WrongTarget => {
                self.kill_candidate(i, src.edge);
            }
        }
    }

    /// The answer `Ok` to our attempt `i`: a new connection to `resp`'s sender over
    /// `src`, or the one we accepted from it meanwhile (now over `src`).
    fn link_made(&mut self, now: Instant, src: Source, resp: &LinkResponse, i: usize) {
        let peer = resp.src;
        if self.attempts[i].peer.is_some_and(|p| p != peer) {
            self.kill_candidate(i, src.edge);
            return;
        }
        let a = self.attempts.swap_remove(i);
        // The address a peer sees for an outgoing TCP stream is an ephemeral port nobody
        // can connect to: only UDP mappings are worth advertising.
        if let Some(observed) = resp.observed.filter(|t| t.proto == Proto::Udp) {
            if self.nat.observe(now, observed) {
                self.events.push_back(Event::LearnedAddress(observed));
            }
        }
        if let Some(conn) = self.table.get_mut(peer) {
            // We accepted the peer's own request meanwhile; one connection stays.
            conn.roles |= a.roles;
            conn.peer_roles = resp.roles;
            conn.status_due = true;
            if conn.edge != src.edge {
                conn.token = a.token;
                self.move_connection(now, peer, src.edge);
                self.evict_other_holders(now, peer, src.edge);
            }
            self.table_changed(now);
            return;
        }
        if peer == self.address {
            return;
        }
        let mut conn = Connection::new(peer, src.edge, a.token, now);
        conn.roles = a.roles;
        conn.peer_roles = resp.roles;
        conn.direct_candidates = a
            .candidates
            .iter()
            .filter_map(|c| match c.edge {
                Edge::Direct(t) => Some(t),
                Edge::Relay { .. } => None,
            })
            .collect();
        self.table.insert(conn);
        self.schedule_mtu(Some(now));
        self.evict_other_holders(now, peer, src.edge);
        self.events.push_back(Event::Connected {
            peer,
            edge: src.edge,
        });
        if matches!(src.edge, Edge::Direct(_)) {
            self.relay_connected(now, peer);
        }
        self.table_changed(now);
    }

    /// Our attempt `i` was answered over `src` with `cookie`: the request goes again at
    /// once, with the cookie, over the edge that asked for it (once per cookie: a
    /// responder that keeps asking waits for the normal retransmission). A responder
    /// may answer from another address than the one asked (a multi-homed host): that
    /// edge becomes a candidate, as it would by answering Ok.
    fn resend_with_cookie(&mut self, i: usize, src: Source, cookie: u64) {
        let a = &mut self.attempts[i];
        if !a.candidates.iter().any(|c| c.edge == src.edge) && a.candidates.len() < MAX_CANDIDATES {
            a.candidates.push(Candidate::new(src.edge));
        }
        let Some(c) = a
            .candidates
            .iter_mut()
            .find(|c| c.edge == src.edge && !c.dead && c.cookie != Some(cookie))
        else {
            return;
        };
        c.cookie = Some(cookie);
        let transports = self.nat.advertised();
        self.send_link_request(i, src.edge, Some(cookie), &transports);
    }

    /// Whether a link request from `peer` may arrive over `src`: a relay edge must run
    /// through a direct connection of ours to a third node, and the tunnel's sender must
    /// be the peer the request names (relay edges never stack or loop).
    fn acceptable_edge(&self, peer: Address, src: Source) -> bool {
        match src.edge {
            Edge::Direct(_) => true,
            Edge::Relay { via } => {
                via != peer
                    && via != self.address
                    && src.relay_peer == Some(peer)
                    && self.table.get(via).is_some_and(|c| c.edge.is_direct())
            }
        }
    }

    /// Whether accepting `req` would create a connection or move one to another edge,
    /// and it carries no valid cookie for `edge`.
    fn needs_cookie(&self, peer: Address, edge: Edge, req: &LinkRequest<'_>) -> bool {
        if req.overlay != self.config.overlay_id
            || peer == self.address
            || req.dst.is_some_and(|d| d != self.address)
        {
            return false; // refused anyway
        }
        let changes = match self.table.get(peer) {
            Some(conn) => conn.edge != edge && conn.token != req.token,
            None => {
                let waits = self.address < peer && self.linking_to(peer);
                !waits && self.table.len() < self.config.max_connections
            }
        };
        changes
            && !req
                .cookie
                .is_some_and(|c| self.cookies.verify(edge, peer, req.token, c))
    }

    /// Moves the connection to `peer` onto `edge`. Relay edges through `peer` go if it
    /// is no longer direct (relays never stack).
    fn move_connection(&mut self, now: Instant, peer: Address, edge: Edge) {
        let Some(old) = self.table.set_edge(peer, edge) else {
            return;
        };
        self.closed_edge(old);
        if !edge.is_direct() {
            let relayed: Vec<Address> = self
                .table
                .iter()
                .filter(|c| c.edge == Edge::Relay { via: peer })
                .map(|c| c.peer)
                .collect();
            for p in relayed {
                self.drop_connection(now, p, DisconnectReason::Local(CloseReason::Unneeded));
            }
        }
    }

    /// `peer` now holds the direct edge `edge`: any other connection on it is stale (a
    /// transport address belongs to one node at a time; the old one restarted or left,
    /// and its NAT mapping or address went to `peer`) and is dropped, or datagrams from
    /// `peer` would be taken for the old node's.
    fn evict_other_holders(&mut self, now: Instant, peer: Address, edge: Edge) {
        if !matches!(edge, Edge::Direct(_)) {
            return;
        }
        let stale: Vec<Address> = self
            .table
            .iter()
            .filter(|c| c.edge == edge && c.peer != peer)
            .map(|c| c.peer)
            .collect();
        for old in stale {
            self.drop_connection(now, old, DisconnectReason::Local(CloseReason::Replaced));
        }
    }

    fn kill_candidate(&mut self, i: usize, edge: Edge) {
        for c in &mut self.attempts[i].candidates {
            if c.edge == edge {
                c.dead = true;
            }
        }
    }

    /// Whether a link attempt to `peer` is under way.
    pub(crate) fn linking_to(&self, peer: Address) -> bool {
        self.attempts.iter().any(|a| a.peer == Some(peer))
    }

    /// Whether a bootstrap attempt is under way.
    pub(crate) fn bootstrapping(&self) -> bool {
        self.attempts.iter().any(|a| a.peer.is_none())
    }

    /// A Ping/Pong from a peer: liveness, its roles and neighbours.
    pub(crate) fn on_status(
        &mut self,
        now: Instant,
        src: Source,
        s: &wire::Status<'_>,
        ping: bool,
    ) {
        let Some(conn) = self.find_conn_mut(src) else {
            self.stats.unknown_source += 1;
            let linking = self
                .attempts
                .iter()
                .any(|a| a.candidates.iter().any(|c| c.edge == src.edge));
            if ping && !linking {
                // The sender believes in a connection we do not have: tell it.
                if let (Edge::Direct(t), None) = (src.edge, src.relay_peer) {
                    let close = Message::Close(wire::Close {
                        reason: wire::CloseReason::Unneeded,
                        left: wire::AddressList::EMPTY,
                        right: wire::AddressList::EMPTY,
                    });
                    self.send_to_transport(t, &close);
                }
            }
            return;
        };
        let peer = conn.peer;
        conn.peer_roles = s.roles;
        let changed = !conn.peer_left.iter().copied().eq(s.left.iter())
            || !conn.peer_right.iter().copied().eq(s.right.iter());
        if changed {
            conn.peer_left.clear();
            conn.peer_left.extend(s.left.iter());
            conn.peer_right.clear();
            conn.peer_right.extend(s.right.iter());
        }
        if !ping && conn.ping_nonce != 0 && s.nonce == conn.ping_nonce {
            conn.ping_nonce = 0;
            if let Some(sent) = conn.last_ping {
                conn.record_rtt(now.saturating_duration_since(sent));
            }
        }
        if ping {
            self.send_status(now, peer, false, s.nonce);
        }
        self.stabilize_from(now, peer, s.left, s.right);
        self.update_correctness();
    }

    /// A Close from a peer.
    pub(crate) fn on_close(&mut self, now: Instant, src: Source, c: &wire::Close<'_>) {
        let Some(peer) = self.find_conn_mut(src).map(|c| c.peer) else {
            return;
        };
        self.drop_connection(now, peer, DisconnectReason::Closed(c.reason));
        self.link_neighbors(now, None, c.left.iter().chain(c.right.iter()));
    }

    /// Sends our status to `peer` as a Ping (with a fresh nonce) or a Pong (echoing one).
    pub(crate) fn send_status(&mut self, now: Instant, peer: Address, ping: bool, echo: u64) {
        let nonce = if ping {
            rand::Rng::next_u64(&mut self.rng)
        } else {
            echo
        };
        let Some(conn) = self.table.get_mut(peer) else {
            return;
        };
        if ping {
            conn.ping_nonce = nonce;
            conn.last_ping = Some(now);
        }
        conn.status_due = false;
        let (edge, roles) = (conn.edge, conn.roles);
        let view = std::mem::take(&mut self.view);
        let status = wire::Status {
            nonce,
            roles,
            left: wire::AddressList::Slice(&view.left),
            right: wire::AddressList::Slice(&view.right),
        };
        let msg = if ping {
            Message::Ping(status)
        } else {
            Message::Pong(status)
        };
        self.send_on_edge(peer, edge, &msg);
        self.view = view;
    }
}
