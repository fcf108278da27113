//! Connection-table maintenance: keepalives and edge timeouts, bootstrapping, structured
//! near and far connections, ring stabilization from neighbours' status, and closing
//! connections nobody needs.
//!
//! Stabilization works like Chord's: near neighbours exchange their own neighbour lists
//! in every Ping/Pong; a node that learns of a peer that should be one of its nearest
//! neighbours sends it a CTM. Crashed neighbours time out, and their successors are
//! already connected (two per side), so the ring closes over the gap.

use std::time::{Duration, Instant};

use rand::{Rng, RngExt};

use super::connection::RingView;
use super::{Config, DisconnectReason, Event, Node};
use crate::address::Address;
use crate::wire::{self, CloseReason, Message, Mode, Roles};

#[derive(Debug)]
pub(crate) struct Timers {
    pub(crate) next_tick: Instant,
    next_ring_check: Instant,
    next_far: Instant,
    far_failures: u32,
    far_count: usize,
}

impl Timers {
    pub(crate) fn new(now: Instant) -> Self {
        Timers {
            next_tick: now,
            next_ring_check: now,
            next_far: now,
            far_failures: 0,
            far_count: 0,
        }
    }

    /// Arms the timers at join; the first tick is jittered so nodes do not tick in step.
    pub(crate) fn start<R: Rng + ?Sized>(&mut self, now: Instant, config: &Config, rng: &mut R) {
        let jitter = config.tick.mul_f64(rng.random_range(0.0..1.0));
        self.next_tick = now + jitter;
        self.next_ring_check = now;
        self.next_far = now;
        self.far_failures = 0;
    }
}

/// Estimated overlay size from the spacing of ring neighbours: `gaps` gaps between
/// neighbours span `span` of the ring. With random addresses the gaps are about
/// exponentially distributed, and `(gaps - 1) · 2^160 / span` is the unbiased estimate.
pub(crate) fn estimate_size(me: Address, view: &RingView, connections: usize) -> f64 {
    let mut distinct: Vec<Address> = view.left.iter().chain(&view.right).copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let gaps = view.left.len() + view.right.len();
    let floor = (connections + 1) as f64;
    if distinct.len() < gaps || gaps < 2 {
        // The same peers are neighbours on both sides: the whole ring is in view.
        return floor;
    }
    let (Some(l), Some(r)) = (view.left.last(), view.right.last()) else {
        return floor;
    };
    let span = l.cw_distance(*r).as_f64();
    debug_assert!(me.in_cw_arc(*l, *r) || l == r);
    if span <= 0.0 {
        return floor;
    }
    ((gaps - 1) as f64 * 2f64.powi(160) / span).max(floor)
}

/// Structured far connections to keep in an overlay of `n` nodes: ceil(0.5 · log2 n).
pub(crate) fn far_target(n: f64) -> usize {
    if n < 2.0 {
        0
    } else {
        (0.5 * n.log2()).ceil() as usize
    }
}

impl Node {
    /// Runs timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.is_running() {
            return;
        }
        self.drive_attempts(now);
        self.drive_path_mtu(now);
        if now >= self.timers.next_tick {
            self.timers.next_tick = now + self.config.tick;
            self.tick(now);
        }
    }

    fn tick(&mut self, now: Instant) {
        self.ctms.retain(|c| c.deadline > now);
        let horizon = self.config.edge_timeout * 2;
        self.recently_gone
            .retain(|(_, t)| now.saturating_duration_since(*t) < horizon);
        self.check_liveness(now);
        self.expire_shortcuts(now);
        self.upgrade_relays(now);
        self.maintain_bootstrap(now);
        self.maintain_near(now);
        self.maintain_far(now);
        self.update_relay_roles(now);
        self.close_unneeded(now);
        self.flush_status(now);
    }

    /// Pings quiet connections (and near neighbours, whose status must stay fresh) and
    /// drops connections silent for the edge timeout.
    fn check_liveness(&mut self, now: Instant) {
        let keepalive = self.config.keepalive;
        let mut dead = Vec::new();
        for c in self.table.iter_mut() {
            let silent = now.saturating_duration_since(c.last_recv);
            let since_ping = c
                .last_ping
                .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
            if silent >= self.config.edge_timeout {
                dead.push(c.peer);
            } else if (c.roles.contains(Roles::NEAR) && since_ping >= keepalive)
                || (silent >= keepalive && since_ping >= keepalive / 4)
            {
                c.status_due = true;
            }
        }
        for peer in dead {
            self.drop_connection(now, peer, DisconnectReason::Timeout);
        }
    }

    /// Every `relay_upgrade`, a relayed connection tries a direct edge again (networks
    /// change; a NAT binding may now allow what failed before).
    fn upgrade_relays(&mut self, now: Instant) {
        let every = self.config.relay_upgrade;
        let due: Vec<(Address, Vec<crate::transport::TransportAddr>)> = self
            .table
            .iter_mut()
            .filter(|c| matches!(c.edge, super::Edge::Relay { .. }))
            .filter(|c| now.saturating_duration_since(c.last_upgrade) >= every)
            .map(|c| {
                c.last_upgrade = now;
                (c.peer, c.direct_candidates.clone())
            })
            .collect();
        for (peer, direct) in due {
            self.start_upgrade(now, peer, direct);
        }
    }

    /// Without any connection to the overlay, (re)starts linking to the bootstrap nodes.
    pub(crate) fn maintain_bootstrap(&mut self, now: Instant) {
        let connected = self
            .table
            .iter()
            .any(|c| c.is_routable() || c.roles.contains(Roles::LEAF));
        if connected || self.bootstrapping() {
            return;
        }
        let candidates: Vec<_> = self
            .bootstrap
            .iter()
            .filter(|t| !self.nat.is_local(t))
            .map(|t| super::Edge::Direct(*t))
            .collect();
        self.start_link(now, None, candidates, Roles::LEAF);
    }

    /// Finds ring neighbours with a CTM to our own address: at once while not correctly
    /// connected, then every `ring_check`.
    fn maintain_near(&mut self, now: Instant) {
        if self.correct {
            for c in self.table.iter_mut() {
                if c.roles.contains(Roles::LEAF) {
                    c.roles = c.roles.without(Roles::LEAF);
                    c.status_due = true;
                }
            }
        }
        let me = self.address;
        let pending = self.ctms.iter().any(|c| c.target == me);
        let due = !self.correct || now >= self.timers.next_ring_check;
        if pending || !due || self.table.is_empty() {
            return;
        }
        // A node that is not correctly connected cannot trust its own view to route
        // this CTM (it may sit in a stale fragment of the ring): it starts the CTM at
        // its bootstrap node, or at a randomly chosen peer, so that retries take
        // different paths.
        let via = if self.correct {
            None
        } else {
            let leaf = self
                .table
                .iter()
                .find(|c| c.roles.contains(Roles::LEAF))
                .map(|c| c.peer);
            leaf.or_else(|| {
                let i = self.rng.random_range(0..self.table.len());
                self.table.iter().nth(i).map(|c| c.peer)
            })
        };
        if self.send_ctm(now, me, Mode::Pair, Roles::NEAR, via) {
            let jitter = self
                .config
                .ring_check
                .mul_f64(self.rng.random_range(0.0..0.5));
            self.timers.next_ring_check = now + self.config.ring_check + jitter;
        }
    }

    /// Keeps k = ceil(0.5 log2 N) structured far connections (that are not also near).
    fn maintain_far(&mut self, now: Instant) {
        if !self.config.far_connections || !self.correct || now < self.timers.next_far {
            return;
        }
        let n = self.network_size_estimate();
        let k = far_target(n);
        let far: Vec<Address> = self
            .table
            .iter()
            .filter(|c| c.roles.contains(Roles::FAR) && !c.roles.contains(Roles::NEAR))
            .map(|c| c.peer)
            .collect();
        if far.len() > k {
            let extra = far[self.rng.random_range(0..far.len())];
            if let Some(c) = self.table.get_mut(extra) {
                c.roles = c.roles.without(Roles::FAR);
                c.status_due = true;
            }
            return;
        }
        if far.len() > self.timers.far_count {
            // The last attempt brought a new far connection.
            self.timers.far_failures = 0;
        }
        self.timers.far_count = far.len();
        let pending = self
            .ctms
            .iter()
            .filter(|c| c.roles.contains(Roles::FAR))
            .count();
        if far.len() + pending >= k {
            return;
        }
        for _ in far.len() + pending..k {
            let target = self.address.kleinberg_target(n, &mut self.rng);
            self.send_ctm(now, target, Mode::Nearest, Roles::FAR, None);
        }
        // Back off while attempts bring no new far connection (in small overlays every
        // node may already be a near neighbour).
        let backoff = self.config.tick * (1 << self.timers.far_failures.min(6));
        self.timers.far_failures += 1;
        self.timers.next_far = now + backoff;
    }

    /// Closes connections that neither side has needed for `close_grace`.
    fn close_unneeded(&mut self, now: Instant) {
        let mut unneeded = Vec::new();
        for c in self.table.iter_mut() {
            if c.roles.is_empty() && c.peer_roles.is_empty() {
                let since = *c.unneeded_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= self.config.close_grace {
                    unneeded.push((c.peer, c.edge));
                }
            } else {
                c.unneeded_since = None;
            }
        }
        for (peer, edge) in unneeded {
            let close = Message::Close(wire::Close {
                reason: CloseReason::Unneeded,
                left: wire::AddressList::EMPTY,
                right: wire::AddressList::EMPTY,
            });
            self.send_on_edge(peer, edge, &close);
            self.drop_connection(now, peer, DisconnectReason::Local(CloseReason::Unneeded));
        }
    }

    /// Sends a status Ping on every connection that has one due.
    pub(crate) fn flush_status(&mut self, now: Instant) {
        let due: Vec<Address> = self
            .table
            .iter()
            .filter(|c| c.status_due)
            .map(|c| c.peer)
            .collect();
        for peer in due {
            self.send_status(now, peer, true, 0);
        }
    }

    /// Recomputes near roles after the table changed, tells near neighbours about a new
    /// view, and re-evaluates correctness.
    pub(crate) fn table_changed(&mut self, now: Instant) {
        let view = self
            .table
            .ring_view(self.address, self.config.near_per_side);
        let view_changed = view != self.view;
        self.update_relay_roles(now);
        let lost_near = self
            .view
            .left
            .iter()
            .chain(&self.view.right)
            .any(|a| self.table.get(*a).is_none());
        if lost_near {
            self.timers.next_ring_check = now;
        }
        for c in self.table.iter_mut() {
            let near = view.left.contains(&c.peer) || view.right.contains(&c.peer);
            c.set_role(Roles::NEAR, near);
            if view_changed && near {
                c.status_due = true;
            }
        }
        self.view = view;
        self.flush_status(now);
        self.update_correctness();
        self.maintain_near(now);
    }

    /// Correctly connected: the closest peer on each side is linked and names this node
    /// as its own closest peer on the other side. A node with no connections is
    /// correctly connected only if it is alone by configuration (no other bootstrap).
    pub(crate) fn update_correctness(&mut self) {
        let me = self.address;
        let correct = if self.table.is_empty() {
            self.bootstrap.iter().all(|t| self.nat.is_local(t))
        } else {
            match (self.view.left.first(), self.view.right.first()) {
                (Some(l), Some(r)) => {
                    let left_ok = self
                        .table
                        .get(*l)
                        .is_some_and(|c| c.peer_right.first() == Some(&me));
                    let right_ok = self
                        .table
                        .get(*r)
                        .is_some_and(|c| c.peer_left.first() == Some(&me));
                    left_ok && right_ok
                }
                _ => false,
            }
        };
        if correct != self.correct {
            self.correct = correct;
            self.events.push_back(if correct {
                Event::CorrectlyConnected
            } else {
                Event::NotCorrectlyConnected
            });
        }
    }

    /// Chord-style stabilization from a near neighbour's status. For a reporter `P` on
    /// our right: peers in `P`'s left list that lie between us and `P` are closer right
    /// neighbours than `P`; and if `P` is our closest right neighbour, the first peers of
    /// its right list are our next ones. The same mirrored on the left. CTMs go through
    /// `P`, which is connected to them.
    pub(crate) fn stabilize_from(
        &mut self,
        now: Instant,
        reporter: Address,
        left: wire::AddressList<'_>,
        right: wire::AddressList<'_>,
    ) {
        let me = self.address;
        let n = self.config.near_per_side;
        if self
            .table
            .get(reporter)
            .is_some_and(|c| c.roles.contains(Roles::LEAF))
        {
            // A bootstrap node's neighbours describe its part of the ring, not ours:
            // following them would walk the ring node by node. Our CTM to our own
            // address finds our neighbours instead.
            return;
        }
        // Peers the reporter names that lie between it and us (a gap in our view),
        // and its own next neighbours on its far side (our second slot).
        let mut between: Vec<Address> = Vec::new();
        let mut next: Vec<Address> = Vec::new();
        if let Some(pos) = self.view.right.iter().position(|a| *a == reporter) {
            let d = me.cw_distance(reporter);
            between.extend(left.iter().filter(|x| *x != me && me.cw_distance(*x) < d));
            if pos == 0 {
                next.extend(right.iter().take(n.saturating_sub(1)));
            }
        }
        if let Some(pos) = self.view.left.iter().position(|a| *a == reporter) {
            let d = reporter.cw_distance(me);
            between.extend(right.iter().filter(|x| *x != me && x.cw_distance(me) < d));
            if pos == 0 {
                next.extend(left.iter().take(n.saturating_sub(1)));
            }
        }
        let pending = self
            .ctms
            .iter()
            .any(|c| c.target == me && c.via == Some(reporter));
        if !between.is_empty() && !pending {
            // Let the reporter route a CTM to our own address: it usually reaches our
            // true neighbours in O(log n) hops. The CTMs to the peers it named step
            // across the gap even where two chains of the ring interleave and greedy
            // routing stays on one of them.
            self.send_ctm(now, me, Mode::Pair, Roles::NEAR, Some(reporter));
        }
        self.link_neighbors(now, Some(reporter), between.into_iter().chain(next));
    }

    /// Sends a CTM to each of `peers` that would be one of our nearest neighbours and is
    /// not known yet (a leaving node's Close names its neighbours this way).
    pub(crate) fn link_neighbors(
        &mut self,
        now: Instant,
        via: Option<Address>,
        peers: impl IntoIterator<Item = Address>,
    ) {
        let me = self.address;
        let n = self.config.near_per_side;
        for a in peers {
            let known = a == me
                || self.table.get(a).is_some()
                || self.linking_to(a)
                || self.ctms.iter().any(|c| c.target == a)
                || self.recently_gone.iter().any(|(g, _)| *g == a);
            if known {
                continue;
            }
            let closer_right = self.view.right.len() < n
                || self
                    .view
                    .right
                    .last()
                    .is_some_and(|r| me.cw_distance(a) < me.cw_distance(*r));
            let closer_left = self.view.left.len() < n
                || self
                    .view
                    .left
                    .last()
                    .is_some_and(|l| a.cw_distance(me) < l.cw_distance(me));
            if closer_right || closer_left {
                self.send_ctm(now, a, Mode::Exact, Roles::NEAR, via);
            }
        }
    }
}
