//! The structured overlay: a Brunet-style ring of nodes with structured near, structured
//! far, shortcut and leaf connections, greedy routing, and connect-to-me linking.
//!
//! [`Node`] is a sans-IO state machine. The caller feeds it datagrams
//! ([`Node::handle_datagram`]) and timer expiries ([`Node::handle_timeout`]), and takes
//! out datagrams to send ([`Node::poll_transmit`]), events ([`Node::poll_event`]) and the
//! next deadline ([`Node::poll_timeout`]). Forwarded datagrams are rewritten in place and
//! handed straight back from `handle_datagram`, so forwarding never allocates.

mod connection;
mod cookie;
mod limits;
mod link;
mod maintenance;
mod nat;
mod output;
mod pmtu;
mod relays;
mod routing;
mod send;
mod signing;
mod stats;
mod traffic;

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

pub use connection::{Connection, Counters, Edge};
pub use nat::LearnedAddress;
pub use pmtu::FLOOR as MTU_FLOOR;
pub use routing::SendError;

use crate::address::Address;
use crate::transport::TransportAddr;
use crate::wire::{self, CloseReason, Message, RoutedHeader};
use connection::{RingView, Table};
use cookie::Cookies;
use limits::RateLimiter;
use link::Attempt;
use maintenance::Timers;
use nat::NatView;
use output::Outbox;
use routing::PendingCtm;
pub use signing::sign_payload;
pub use stats::Stats;

/// Protocol parameters. The defaults suit real networks and the simulator alike.
#[derive(Debug, Clone)]
pub struct Config {
    /// Identifies the overlay; nodes of different overlays refuse to link.
    pub overlay_id: u64,
    /// Structured near connections per side of the ring.
    pub near_per_side: usize,
    /// Whether to keep structured far connections (k = ceil(0.5 log2 N)).
    pub far_connections: bool,
    /// A connection silent this long is pinged.
    pub keepalive: Duration,
    /// A connection silent this long is considered dead.
    pub edge_timeout: Duration,
    /// Period of connection-table maintenance.
    pub tick: Duration,
    /// First retransmission interval of a link request (doubles up to `link_retry_max`).
    pub link_retry: Duration,
    /// Longest retransmission interval of a link request.
    pub link_retry_max: Duration,
    /// A link attempt that gets no answer this long fails.
    pub link_timeout: Duration,
    /// TCP candidates of a link attempt are tried only after UDP had this long.
    pub tcp_delay: Duration,
    /// Relay candidates are tried only after direct ones had this long.
    pub relay_delay: Duration,
    /// How often a relayed connection tries to become direct.
    pub relay_upgrade: Duration,
    /// How long to wait for CTM replies before asking again.
    pub ctm_timeout: Duration,
    /// How often a correctly connected node re-checks its ring position.
    pub ring_check: Duration,
    /// How long a connection no side needs is kept before it is closed.
    pub close_grace: Duration,
    /// Messages to one node within `shortcut_window` that make a shortcut to it (0:
    /// never).
    pub shortcut_threshold: u32,
    /// The window in which shortcut traffic is counted.
    pub shortcut_window: Duration,
    /// A shortcut without traffic this long loses its role.
    pub shortcut_idle: Duration,
    /// Hop limit of routed messages.
    pub ttl: u8,
    /// Most connections a node accepts.
    pub max_connections: usize,
    /// Most link attempts under way at once (bootstrap attempts aside); more are not
    /// started.
    pub max_link_attempts: usize,
    /// CTM requests answered per requester per second; more are dropped.
    pub ctm_per_source: u32,
    /// Requesters whose CTM requests are answered per second; requests from further
    /// ones are dropped. Also the number of broadcast origins served per second.
    pub ctm_sources: usize,
    /// Broadcasts passed on per origin per second; more are dropped.
    pub broadcasts_per_origin: u32,
    /// The largest datagram an edge may carry, and the first size path-MTU discovery
    /// probes: an IPv4 underlay's 1500-byte MTU less the IP and UDP headers (less a
    /// secure edge's seal, which [`Node::reserve_seal`] takes off).
    pub max_datagram: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            overlay_id: Config::overlay_id_of("wow"),
            near_per_side: 2,
            far_connections: true,
            keepalive: Duration::from_secs(5),
            edge_timeout: Duration::from_secs(15),
            tick: Duration::from_millis(500),
            link_retry: Duration::from_millis(250),
            link_retry_max: Duration::from_secs(2),
            link_timeout: Duration::from_secs(10),
            tcp_delay: Duration::from_millis(1500),
            relay_delay: Duration::from_secs(4),
            relay_upgrade: Duration::from_secs(60),
            ctm_timeout: Duration::from_secs(3),
            ring_check: Duration::from_secs(30),
            close_grace: Duration::from_secs(3),
            shortcut_threshold: 1,
            shortcut_window: Duration::from_secs(10),
            shortcut_idle: Duration::from_secs(60),
            ttl: 64,
            max_connections: 1024,
            max_link_attempts: 64,
            ctm_per_source: 16,
            ctm_sources: 256,
            broadcasts_per_origin: 64,
            max_datagram: 1500 - 28,
        }
    }
}

impl Config {
    /// The overlay id for an overlay name (first 8 bytes of its SHA-1).
    pub fn overlay_id_of(name: &str) -> u64 {
        let a = Address::sha1(name.as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&a.as_bytes()[..8]);
        u64::from_be_bytes(b)
    }
}

/// Something the caller may want to know or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection formed.
    Connected {
        /// The peer.
        peer: Address,
        /// How it is reached.
        edge: Edge,
    },
    /// A connection ended.
    Disconnected {
        /// The peer.
        peer: Address,
        /// Why.
        reason: DisconnectReason,
    },
    /// Both ring neighbours are linked and agree: DHT operations may start.
    CorrectlyConnected,
    /// The node lost a ring neighbour and is no longer correctly connected.
    NotCorrectlyConnected,
    /// A probe reached this node (its destination).
    ProbeReceived {
        /// The sender.
        src: Address,
        /// The probe id.
        id: u64,
        /// Overlay hops it took.
        hops: u8,
    },
    /// The echo reply to a probe this node sent.
    ProbeReply {
        /// The node that answered.
        src: Address,
        /// The probe id.
        id: u64,
        /// Overlay hops the reply took.
        hops: u8,
        /// Overlay hops the request took.
        request_hops: u8,
    },
    /// A public (translated) transport address of this node was observed for the first
    /// time by a peer.
    LearnedAddress(TransportAddr),
    /// No connection uses this transport address any more (a driver may close a TCP
    /// stream to it).
    EdgeClosed(TransportAddr),
    /// A message this node sent to `dst` found no route (the node left or crashed).
    Unreachable(Address),
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Nothing was heard for the edge timeout.
    Timeout,
    /// The peer closed it.
    Closed(CloseReason),
    /// This node closed it (unneeded, or leaving).
    Local(CloseReason),
    /// The driver reported the transport closed (TCP).
    TransportClosed,
}

/// A datagram to send: `len` bytes of the caller's buffer to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub dst: TransportAddr,
    /// How many bytes of the buffer.
    pub len: usize,
}

/// A routed message for the layer above the overlay (DHT, IPOP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The routing header.
    pub header: RoutedHeader,
    /// Where the payload lies in the buffer that was passed in.
    pub payload: Range<usize>,
    /// The header's `src` is verified: the message carries a valid signature by `src`'s
    /// key, or came straight from `src` over a secure edge (the edge's authenticated
    /// peer), or was originated here. Otherwise a forwarder could have written `src`.
    pub source_verified: bool,
}

/// What became of a received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Consumed (or dropped); any answers are queued for [`Node::poll_transmit`].
    Done,
    /// Forward the (rewritten) buffer unchanged in size.
    Forward(Transmit),
    /// A payload for the layer above.
    Deliver(Delivery),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Running,
    Left,
}

/// Where a datagram came from: a direct transport, or a relay edge of a known peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    pub(crate) edge: Edge,
    pub(crate) relay_peer: Option<Address>,
    /// The sender's P2P address as a secure edge authenticated it (its key's hash);
    /// `None` on plain edges and relay edges.
    pub(crate) authenticated: Option<Address>,
}

/// One overlay node.
#[derive(Debug)]
pub struct Node {
    config: Config,
    address: Address,
    state: State,
    rng: Xoshiro256PlusPlus,
    table: Table,
    view: RingView,
    attempts: Vec<Attempt>,
    ctms: Vec<PendingCtm>,
    ctm_limit: RateLimiter,
    broadcast_limit: RateLimiter,
    cookies: Cookies,
    nat: NatView,
    bootstrap: Vec<TransportAddr>,
    outbox: Outbox,
    /// Deliveries that did not arrive in a caller's buffer, with whether their source
    /// is verified (see [`Delivery::source_verified`]).
    inbox: VecDeque<(RoutedHeader, Vec<u8>, bool)>,
    events: VecDeque<Event>,
    stats: Stats,
    timers: Timers,
    correct: bool,
    recently_gone: Vec<(Address, Instant)>,
    traffic: traffic::Traffic,
    /// Unreachable notices sent lately: (to, about, when), one per pair per second.
    notices: Vec<(Address, Address, Instant)>,
    /// The key that signs the routed messages this node originates; with it, the node
    /// also requires signed (or source-authenticated) overlay control messages.
    signer: Option<signing::Signer>,
    /// When the earliest path-MTU probe timer of a connection is due.
    mtu_due: Option<Instant>,
}

impl Node {
    /// A node with P2P address `address`. Randomness (far targets, tokens, timer jitter)
    /// comes from a generator seeded with `seed`, so a run is reproducible.
    pub fn new(config: Config, address: Address, seed: u64, now: Instant) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        Node {
            timers: Timers::new(now),
            config,
            address,
            state: State::Idle,
            cookies: Cookies::new(now, &mut rng),
            rng,
            table: Table::default(),
            view: RingView::default(),
            attempts: Vec::new(),
            ctms: Vec::new(),
            ctm_limit: RateLimiter::default(),
            broadcast_limit: RateLimiter::default(),
            nat: NatView::default(),
            bootstrap: Vec::new(),
            outbox: Outbox::default(),
            inbox: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            correct: false,
            recently_gone: Vec::new(),
            traffic: traffic::Traffic::default(),
            notices: Vec::new(),
            signer: None,
            mtu_due: None,
        }
    }

    /// Declares a transport address this node listens on (advertised to peers).
    pub fn add_local_transport(&mut self, t: TransportAddr) {
        self.nat.add_local(t);
    }

    /// Starts the node: links to the bootstrap transports, then finds its place on the
    /// ring. With no bootstrap transports the node starts a new overlay of its own.
    pub fn join(&mut self, now: Instant, bootstrap: &[TransportAddr]) {
        self.bootstrap = bootstrap.to_vec();
        self.state = State::Running;
        self.timers.start(now, &self.config, &mut self.rng);
        self.update_correctness();
        self.maintain_bootstrap(now);
    }

    /// Leaves the overlay gracefully: tells every peer, naming this node's ring
    /// neighbours so that they link to each other at once.
    pub fn leave(&mut self) {
        if self.state != State::Running {
            return;
        }
        let view = self.view.clone();
        for conn in self.table.clear() {
            let msg = Message::Close(wire::Close {
                reason: CloseReason::Leaving,
                left: wire::AddressList::Slice(&view.left),
                right: wire::AddressList::Slice(&view.right),
            });
            self.send_on_edge(conn.peer, conn.edge, &msg);
            self.closed_edge(conn.edge);
            self.events.push_back(Event::Disconnected {
                peer: conn.peer,
                reason: DisconnectReason::Local(CloseReason::Leaving),
            });
        }
        self.attempts.clear();
        self.ctms.clear();
        self.state = State::Left;
    }

    /// This node's P2P address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The protocol parameters.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether both ring neighbours are linked and agree that this node sits between them.
    pub fn is_correctly_connected(&self) -> bool {
        self.correct
    }

    /// Whether the node has left (or not yet joined).
    pub fn is_running(&self) -> bool {
        self.state == State::Running
    }

    /// The connections, in no particular order.
    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.table.iter()
    }

    /// Whether `peer` is connected over a direct edge (not a relay): a message routed to
    /// it goes there in one hop, straight over that edge.
    pub fn has_direct_edge(&self, peer: Address) -> bool {
        self.table
            .get(peer)
            .is_some_and(|c| matches!(c.edge, Edge::Direct(_)))
    }

    /// The closest connected peer on each side of the ring: (left, right).
    pub fn ring_neighbors(&self) -> (Option<Address>, Option<Address>) {
        (
            self.view.left.first().copied(),
            self.view.right.first().copied(),
        )
    }

    /// The closest connected peers on each side of the ring, closest first (up to
    /// `near_per_side` per side): (left, right).
    pub fn near_neighbors(&self) -> (&[Address], &[Address]) {
        (&self.view.left, &self.view.right)
    }

    /// Transport addresses this node advertises: local ones and those peers observed.
    pub fn advertised_transports(&self) -> Vec<TransportAddr> {
        self.nat.advertised()
    }

    /// Transport addresses this node listens on.
    pub fn local_transports(&self) -> &[TransportAddr] {
        self.nat.local()
    }

    /// Public addresses peers observed for this node, most recent first.
    pub fn learned_addresses(&self) -> &[LearnedAddress] {
        self.nat.learned()
    }

    /// Estimated number of nodes in the overlay, from the spacing of ring neighbours.
    pub fn network_size_estimate(&self) -> f64 {
        maintenance::estimate_size(self.address, &self.view, self.table.len())
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The next datagram to send, swapped into `buf` (the node keeps `buf`'s old
    /// allocation for reuse, so steady-state sending does not allocate).
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<TransportAddr> {
        self.outbox.pop(buf)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A routed message for the layer above that did not arrive in a caller's buffer
    /// (sent by this node to itself, a broadcast, or relayed), and whether its source is
    /// verified (see [`Delivery::source_verified`]; a broadcast's origin is not).
    pub fn poll_delivery(&mut self) -> Option<(RoutedHeader, Vec<u8>, bool)> {
        self.inbox.pop_front()
    }

    /// When [`Node::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state != State::Running {
            return None;
        }
        let mut next = self.timers.next_tick;
        for a in &self.attempts {
            next = next.min(a.next_send);
        }
        if let Some(d) = self.mtu_due {
            next = next.min(d);
        }
        Some(next)
    }

    /// Handles one datagram received from `from`. Forwarded datagrams are rewritten in
    /// `buf` and returned as [`Handled::Forward`]; payloads for the layer above come
    /// back as [`Handled::Deliver`].
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: TransportAddr,
        buf: &mut [u8],
    ) -> Handled {
        self.handle_direct(now, from, None, buf)
    }

    /// [`Node::handle_datagram`] for a datagram a secure edge opened: its sender holds
    /// the key of P2P address `peer`. A link request or response from it that claims
    /// another address is refused and counted (`impersonation`).
    pub fn handle_authenticated_datagram(
        &mut self,
        now: Instant,
        from: TransportAddr,
        peer: Address,
        buf: &mut [u8],
    ) -> Handled {
        self.handle_direct(now, from, Some(peer), buf)
    }

    fn handle_direct(
        &mut self,
        now: Instant,
        from: TransportAddr,
        authenticated: Option<Address>,
        buf: &mut [u8],
    ) -> Handled {
        if self.state != State::Running {
            return Handled::Done;
        }
        let src = Source {
            edge: Edge::Direct(from),
            relay_peer: None,
            authenticated,
        };
        self.handle_edge_datagram(now, src, buf)
    }

    /// The driver lost a transport (a TCP stream closed): drop connections over it.
    pub fn handle_transport_closed(&mut self, now: Instant, t: TransportAddr) {
        let peers: Vec<Address> = self
            .table
            .iter()
            .filter(|c| c.edge == Edge::Direct(t))
            .map(|c| c.peer)
            .collect();
        for peer in peers {
            self.drop_connection(now, peer, DisconnectReason::TransportClosed);
        }
    }

    fn handle_edge_datagram(&mut self, now: Instant, src: Source, buf: &mut [u8]) -> Handled {
        let msg = match wire::parse(buf) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return Handled::Done;
            }
        };
        let len = buf.len() as u64;
        if let Some(conn) = self.find_conn_mut(src) {
            conn.last_recv = now;
            conn.counters.rx_packets += 1;
            conn.counters.rx_bytes += len;
        }
        match msg {
            Message::LinkRequest(req) => self.on_link_request(now, src, &req),
            Message::LinkResponse(resp) => self.on_link_response(now, src, &resp),
            Message::Ping(s) => self.on_status(now, src, &s, true),
            Message::Pong(s) => self.on_status(now, src, &s, false),
            Message::Close(c) => self.on_close(now, src, &c),
            Message::MtuProbe(p) => self.on_mtu_probe(src, p.nonce),
            Message::MtuAck(nonce) => self.on_mtu_ack(now, src, nonce),
            Message::Routed(r) => {
                let header = r.header;
                let offset = buf.len() - r.payload.len();
                return self.on_routed(now, Some(src), header, buf, offset);
            }
        }
        Handled::Done
    }

    fn find_conn_mut(&mut self, src: Source) -> Option<&mut Connection> {
        match (src.edge, src.relay_peer) {
            (Edge::Direct(t), _) => self.table.by_transport_mut(t),
            (edge, Some(peer)) => self.table.get_mut(peer).filter(|c| c.edge == edge),
            (Edge::Relay { .. }, None) => None,
        }
    }

    /// Sends an edge-level message to `peer` over `edge`.
    fn send_on_edge(&mut self, peer: Address, edge: Edge, msg: &Message<'_>) {
        match edge {
            Edge::Direct(t) => {
                let len = self.outbox.push_message(t, msg);
                if let Some(c) = self.table.get_mut(peer) {
                    c.counters.tx_packets += 1;
                    c.counters.tx_bytes += len as u64;
                }
            }
            Edge::Relay { via } => self.send_tunnelled(peer, via, msg),
        }
    }

    /// Sends to a transport address that may not belong to a connection yet.
    fn send_to_transport(&mut self, t: TransportAddr, msg: &Message<'_>) {
        self.outbox.push_message(t, msg);
    }

    fn closed_edge(&mut self, edge: Edge) {
        if let Edge::Direct(t) = edge {
            if !self.table.iter().any(|c| c.edge == edge) {
                self.events.push_back(Event::EdgeClosed(t));
            }
        }
    }

    /// Drops the connection to `peer`, and with it the relay edges through `peer`
    /// (iteratively: relay edges never stack, but a table is never trusted to be
    /// acyclic).
    fn drop_connection(&mut self, now: Instant, peer: Address, reason: DisconnectReason) {
        let mut gone = vec![peer];
        while let Some(peer) = gone.pop() {
            let Some(conn) = self.table.remove(peer) else {
                continue;
            };
            gone.extend(
                self.table
                    .iter()
                    .filter(|c| c.edge == Edge::Relay { via: peer })
                    .map(|c| c.peer),
            );
            self.closed_edge(conn.edge);
            self.events.push_back(Event::Disconnected { peer, reason });
            if matches!(
                reason,
                DisconnectReason::Timeout | DisconnectReason::Closed(CloseReason::Leaving)
            ) {
                self.recently_gone.push((peer, now));
            }
            self.table_changed(now);
        }
    }
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod signing_tests;
#[cfg(test)]
mod tests;
