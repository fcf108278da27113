//! The overlay's counters.

/// Counters of what the node did and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that failed to parse (dropped).
    pub malformed: u64,
    /// Edge datagrams from transports with no connection (dropped or answered by Close).
    pub unknown_source: u64,
    /// Routed messages forwarded.
    pub forwarded: u64,
    /// Routed messages delivered here.
    pub delivered: u64,
    /// Routed messages dropped: no route towards the destination.
    pub no_route: u64,
    /// Routed messages dropped: hop limit reached.
    pub ttl_exceeded: u64,
    /// Link requests refused because the table is full.
    pub refused_full: u64,
    /// CTM requests sent.
    pub ctm_sent: u64,
    /// Link attempts that failed.
    pub link_failures: u64,
    /// Link attempts not started because `max_link_attempts` were under way.
    pub link_attempts_refused: u64,
    /// CTM requests dropped unanswered (`ctm_per_source` or `ctm_sources` reached).
    pub ctm_refused: u64,
    /// Link requests answered with a return-routability cookie instead of a connection.
    pub cookies_sent: u64,
    /// Link requests whose cookie was wrong or expired (answered with a fresh one).
    pub bad_cookie: u64,
    /// Link requests and tunnels refused because their relay edge was not one: the
    /// relay is not a direct connection of this node, is the peer itself, or the tunnel
    /// did not come from it.
    pub refused_relay: u64,
    /// Broadcasts dropped: not from a connected peer, a reserved kind, an arc the sender
    /// does not cover, or over the rate limit.
    pub broadcast_refused: u64,
    /// Routed messages whose hop limit was above the configured one (capped to it).
    pub ttl_capped: u64,
    /// Link requests and responses refused because a secure edge authenticated their
    /// sender as another node than the one they claim to be.
    pub impersonation: u64,
    /// Routed messages dropped because their signature trailer did not verify for their
    /// `src` (or was cut short).
    pub bad_signature: u64,
    /// Overlay control messages dropped by a node that signs: neither signed nor
    /// received straight from their source over a secure edge.
    pub unsigned: u64,
    /// Path-MTU probes sent.
    pub mtu_probes: u64,
}
