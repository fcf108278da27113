//! The connection table: one connection per peer, each with the roles this node gives
//! it, the roles the peer gives it, liveness, and the peer's last reported neighbours.

use std::time::{Duration, Instant};

use crate::address::{Address, Distance};
use crate::transport::TransportAddr;
use crate::wire::Roles;

/// How datagrams reach a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    /// Straight to a transport address (UDP datagrams or a TCP stream).
    Direct(TransportAddr),
    /// Tunnelled through `via`, a node both ends are connected to.
    Relay {
        /// The relaying node.
        via: Address,
    },
}

impl std::fmt::Display for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Edge::Direct(t) => write!(f, "{t}"),
            Edge::Relay { via } => write!(f, "relay://{via}"),
        }
    }
}

/// One connection to a peer.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The peer's P2P address.
    pub peer: Address,
    /// How to reach it.
    pub edge: Edge,
    /// Why this node keeps the connection.
    pub roles: Roles,
    /// Why the peer keeps it (from its last link or status message).
    pub peer_roles: Roles,
    /// When the connection was formed.
    pub established: Instant,
    /// Last datagram received from the peer.
    pub last_recv: Instant,
    /// Smoothed round-trip time from pings.
    pub rtt: Option<Duration>,
    /// The peer's nearest neighbours counter-clockwise, closest first (last status).
    pub peer_left: Vec<Address>,
    /// The peer's nearest neighbours clockwise, closest first (last status).
    pub peer_right: Vec<Address>,
    /// Bytes and datagrams sent and received on this connection.
    pub counters: Counters,
    /// For a relayed connection: the peer's own transports, to retry a direct edge.
    pub(crate) direct_candidates: Vec<TransportAddr>,
    /// For a relayed connection: when a direct edge was last tried.
    pub(crate) last_upgrade: Instant,
    /// When the layer above last sent traffic to the peer (shortcut expiry).
    pub(crate) last_traffic: Instant,
    /// Token of the link attempt that formed it (duplicate requests carry the same).
    pub(crate) token: u64,
    pub(crate) last_ping: Option<Instant>,
    pub(crate) ping_nonce: u64,
    pub(crate) status_due: bool,
    pub(crate) unneeded_since: Option<Instant>,
    /// Path-MTU discovery on the edge.
    pub(crate) mtu: super::pmtu::PathMtu,
}

/// Traffic counters of a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Datagrams received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
}

impl Connection {
    pub(crate) fn new(peer: Address, edge: Edge, token: u64, now: Instant) -> Self {
        Connection {
            peer,
            edge,
            roles: Roles::NONE,
            peer_roles: Roles::NONE,
            established: now,
            last_recv: now,
            rtt: None,
            peer_left: Vec::new(),
            peer_right: Vec::new(),
            counters: Counters::default(),
            direct_candidates: Vec::new(),
            last_upgrade: now,
            last_traffic: now,
            token,
            last_ping: None,
            ping_nonce: 0,
            status_due: true,
            unneeded_since: None,
            mtu: super::pmtu::PathMtu::new(now),
        }
    }

    /// Whether the connection carries routed traffic for others: this node keeps it for
    /// a structured role, or the peer does and does not hold it as its bootstrap (leaf)
    /// connection. A joining node claims its bootstrap node as a neighbour until it
    /// finds its place; trusting that claim would route other traffic (other joiners'
    /// CTMs among it) into the joiner's partial view of the ring.
    pub fn is_routable(&self) -> bool {
        self.roles.intersects(Roles::STRUCTURED)
            || (self.peer_roles.intersects(Roles::STRUCTURED)
                && !self.peer_roles.contains(Roles::LEAF))
    }

    /// Gives or takes `role`; a change makes a status message due (the peer learns
    /// why the connection is kept).
    pub(crate) fn set_role(&mut self, role: Roles, on: bool) {
        if on != self.roles.contains(role) {
            self.roles = if on {
                self.roles | role
            } else {
                self.roles.without(role)
            };
            self.status_due = true;
        }
    }

    /// The largest overlay datagram path-MTU discovery found the edge carries (None
    /// until a probe was answered or lost).
    pub fn path_mtu(&self) -> Option<u16> {
        self.mtu.limit()
    }

    pub(crate) fn record_rtt(&mut self, sample: Duration) {
        self.rtt = Some(match self.rtt {
            None => sample,
            Some(old) => (old * 7 + sample) / 8,
        });
    }
}

/// Spare capacity a table grows by, and keeps at most twice of after removals.
const SLACK: usize = 4;

/// All connections of a node.
#[derive(Debug, Default)]
pub(crate) struct Table {
    conns: Vec<Connection>,
    /// `(peer, edge)` of each connection, in the same order: lookups by peer or by
    /// transport (one per datagram) scan these 56-byte keys, not the ~300-byte
    /// connections. Peers and edges change only through [`Table::set_edge`].
    keys: Vec<(Address, Edge)>,
}

/// The closest connected peers on each side of the ring.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RingView {
    /// Counter-clockwise neighbours, closest first.
    pub(crate) left: Vec<Address>,
    /// Clockwise neighbours, closest first.
    pub(crate) right: Vec<Address>,
}

impl Table {
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, Connection> {
        self.conns.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, Connection> {
        self.conns.iter_mut()
    }

    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    fn position(&self, peer: Address) -> Option<usize> {
        debug_assert!(self.keys_match());
        self.keys.iter().position(|k| k.0 == peer)
    }

    fn keys_match(&self) -> bool {
        self.keys.len() == self.conns.len()
            && self
                .keys
                .iter()
                .zip(&self.conns)
                .all(|(k, c)| *k == (c.peer, c.edge))
    }

    pub(crate) fn get(&self, peer: Address) -> Option<&Connection> {
        self.position(peer).map(|i| &self.conns[i])
    }

    pub(crate) fn get_mut(&mut self, peer: Address) -> Option<&mut Connection> {
        self.position(peer).map(|i| &mut self.conns[i])
    }

    /// Moves the connection to `peer` onto `edge`; returns its old edge.
    pub(crate) fn set_edge(&mut self, peer: Address, edge: Edge) -> Option<Edge> {
        let i = self.position(peer)?;
        self.keys[i].1 = edge;
        Some(std::mem::replace(&mut self.conns[i].edge, edge))
    }

    /// Direct connections, nearest neighbours first, then bootstrap and far ones (up to
    /// `max`): the relays this node offers in its CTMs.
    pub(crate) fn direct_peers(&self, max: usize) -> Vec<Address> {
        let mut direct: Vec<&Connection> = self
            .conns
            .iter()
            .filter(|c| matches!(c.edge, Edge::Direct(_)))
            .collect();
        direct.sort_by_key(|c| {
            (
                !c.roles.contains(Roles::NEAR),
                !c.roles.contains(Roles::LEAF),
                c.peer,
            )
        });
        direct.into_iter().take(max).map(|c| c.peer).collect()
    }

    pub(crate) fn by_transport_mut(&mut self, t: TransportAddr) -> Option<&mut Connection> {
        debug_assert!(self.keys_match());
        let i = self.keys.iter().position(|k| k.1 == Edge::Direct(t))?;
        Some(&mut self.conns[i])
    }

    pub(crate) fn insert(&mut self, conn: Connection) {
        debug_assert!(self.get(conn.peer).is_none());
        // Grow by a few connections rather than doubling: a table holds a few dozen
        // connections of ~300 bytes, and a simulator holds hundreds of thousands of
        // tables.
        if self.conns.len() == self.conns.capacity() {
            self.conns.reserve_exact(SLACK);
            self.keys.reserve_exact(SLACK);
        }
        self.keys.push((conn.peer, conn.edge));
        self.conns.push(conn);
    }

    pub(crate) fn remove(&mut self, peer: Address) -> Option<Connection> {
        let i = self.position(peer)?;
        self.keys.remove(i);
        let conn = self.conns.remove(i);
        if self.conns.capacity() > self.conns.len() + 2 * SLACK {
            self.conns.shrink_to(self.conns.len() + SLACK);
            self.keys.shrink_to(self.keys.len() + SLACK);
        }
        Some(conn)
    }

    pub(crate) fn clear(&mut self) -> Vec<Connection> {
        self.keys.clear();
        std::mem::take(&mut self.conns)
    }

    /// The `per_side` closest peers on each side of `me`, closest first.
    pub(crate) fn ring_view(&self, me: Address, per_side: usize) -> RingView {
        let mut left: Vec<(Distance, Address)> = Vec::with_capacity(per_side + 1);
        let mut right: Vec<(Distance, Address)> = Vec::with_capacity(per_side + 1);
        for c in &self.conns {
            keep_closest(&mut right, (me.cw_distance(c.peer), c.peer), per_side);
            keep_closest(&mut left, (c.peer.cw_distance(me), c.peer), per_side);
        }
        RingView {
            left: left.into_iter().map(|(_, a)| a).collect(),
            right: right.into_iter().map(|(_, a)| a).collect(),
        }
    }

    /// The routable connection closest to `key`, not counting `exclude`.
    pub(crate) fn closest_routable(
        &self,
        key: Address,
        exclude: Option<Address>,
    ) -> Option<(Distance, &Connection)> {
        self.conns
            .iter()
            .filter(|c| c.is_routable() && Some(c.peer) != exclude)
            .map(|c| (c.peer.ring_distance(key), c))
            .min_by_key(|(d, c)| (*d, c.peer))
    }

    /// The closest routable peer on each side of `me`, not counting `exclude`.
    pub(crate) fn adjacent_routable(
        &self,
        me: Address,
        exclude: Address,
    ) -> (Option<Address>, Option<Address>) {
        let candidates = || {
            self.conns
                .iter()
                .filter(move |c| c.is_routable() && c.peer != exclude)
        };
        let left = candidates()
            .min_by_key(|c| c.peer.cw_distance(me))
            .map(|c| c.peer);
        let right = candidates()
            .min_by_key(|c| me.cw_distance(c.peer))
            .map(|c| c.peer);
        (left, right)
    }
}

/// Inserts `item` into `best` (sorted ascending) if it is among the `n` smallest.
fn keep_closest(best: &mut Vec<(Distance, Address)>, item: (Distance, Address), n: usize) {
    if n == 0 {
        return;
    }
    let pos = best.partition_point(|x| *x < item);
    if pos < n {
        best.insert(pos, item);
        best.truncate(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn addr(n: u8) -> Address {
        let mut b = [0u8; 20];
        b[0] = n;
        Address::from_bytes(b)
    }

    fn conn(peer: Address, roles: Roles) -> Connection {
        let t = TransportAddr::udp(SocketAddr::from(([198, 18, 0, 1], 4000)));
        let mut c = Connection::new(peer, Edge::Direct(t), 1, Instant::now());
        c.roles = roles;
        c
    }

    #[test]
    fn ring_view_picks_closest_per_side_with_wrap() {
        let mut t = Table::default();
        for n in [10u8, 20, 30, 200, 250] {
            t.insert(conn(addr(n), Roles::NONE));
        }
        let v = t.ring_view(addr(15), 2);
        assert_eq!(v.left, vec![addr(10), addr(250)]);
        assert_eq!(v.right, vec![addr(20), addr(30)]);
    }

    #[test]
    fn capacity_follows_the_table_size() {
        let mut t = Table::default();
        for n in 0..40u8 {
            t.insert(conn(addr(n), Roles::NONE));
            assert!(t.conns.capacity() <= t.len() + SLACK);
        }
        for n in 0..36u8 {
            assert_eq!(t.remove(addr(n)).map(|c| c.peer), Some(addr(n)));
            assert!(t.conns.capacity() <= t.len() + 2 * SLACK);
        }
        assert_eq!(t.len(), 4);
        assert!(t.remove(addr(0)).is_none());
    }

    #[test]
    fn lookups_follow_edge_changes() {
        let udp = |n: u8| TransportAddr::udp(SocketAddr::from(([198, 18, 0, n], 4000)));
        let mut t = Table::default();
        t.insert(conn(addr(1), Roles::NONE));
        let mut second = conn(addr(2), Roles::NEAR);
        second.edge = Edge::Direct(udp(2));
        t.insert(second);
        assert_eq!(t.by_transport_mut(udp(2)).map(|c| c.peer), Some(addr(2)));
        assert_eq!(
            t.set_edge(addr(2), Edge::Direct(udp(3))),
            Some(Edge::Direct(udp(2)))
        );
        assert!(t.by_transport_mut(udp(2)).is_none());
        assert_eq!(t.by_transport_mut(udp(3)).map(|c| c.peer), Some(addr(2)));
        assert_eq!(t.get(addr(2)).map(|c| c.edge), Some(Edge::Direct(udp(3))));
        assert_eq!(t.set_edge(addr(9), Edge::Direct(udp(9))), None);
        assert_eq!(t.remove(addr(1)).map(|c| c.peer), Some(addr(1)));
        assert_eq!(t.by_transport_mut(udp(3)).map(|c| c.peer), Some(addr(2)));
        assert_eq!(t.clear().len(), 1);
        assert!(t.get(addr(2)).is_none());
    }

    #[test]
    fn leaf_only_connections_do_not_route() {
        let mut t = Table::default();
        t.insert(conn(addr(10), Roles::LEAF));
        t.insert(conn(addr(100), Roles::FAR));
        let (_, best) = t.closest_routable(addr(11), None).unwrap();
        assert_eq!(best.peer, addr(100));
        assert!(t.closest_routable(addr(11), Some(addr(100))).is_none());
    }
}
