//! Traffic-driven parts of the overlay: bounded broadcast to every node, and shortcut
//! connections to busy traffic peers.
//!
//! *Broadcast.* A node covers the clockwise arc from itself to `end`: it hands each of
//! its connections in that arc the sub-arc up to the next one, and so on recursively.
//! Near neighbours make the arcs meet, so every node receives the message once; far
//! connections keep the depth logarithmic.
//!
//! *Shortcuts.* When the layer above sends more than `shortcut_threshold` messages to
//! one node within `shortcut_window`, the node asks it (CTM) for a direct edge, which
//! exact routing then uses: one overlay hop. A shortcut idle for `shortcut_idle` loses
//! its role, and the connection closes unless something else needs it.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Edge, Node, Source};
use crate::address::Address;
use crate::wire::{Broadcast, Mode, OverlayPayload, Roles, RoutedFlags, RoutedHeader, kind};

/// Messages counted per destination in the current shortcut window.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    window_start: Option<Instant>,
    counts: BTreeMap<Address, u32>,
}

impl Node {
    /// Sends `payload` of an application `kind` to every node of the overlay (not to
    /// this node itself).
    pub fn broadcast(&mut self, kind: u8, payload: &[u8]) {
        if kind < kind::FIRST_APP {
            return;
        }
        let me = self.address;
        self.forward_broadcast(me, me, kind, payload);
    }

    /// Passes a broadcast on over this node's arc, up to `end` (the whole ring when
    /// `end` is this node).
    fn forward_broadcast(&mut self, origin: Address, end: Address, kind: u8, payload: &[u8]) {
        let me = self.address;
        let span = if end == me {
            None
        } else {
            Some(me.cw_distance(end))
        };
        let mut targets: Vec<Address> = self
            .table
            .iter()
            .filter(|c| c.is_routable())
            .map(|c| c.peer)
            .filter(|p| span.is_none_or(|s| me.cw_distance(*p) < s))
            .collect();
        targets.sort_by_key(|p| me.cw_distance(*p));
        for (i, t) in targets.iter().enumerate() {
            let sub_end = targets.get(i + 1).copied().unwrap_or(end);
            let b = OverlayPayload::Broadcast(Broadcast {
                kind,
                origin,
                end: sub_end,
                payload,
            });
            let mut bytes = vec![0u8; b.encoded_len()];
            if b.emit(&mut bytes).is_err() {
                continue;
            }
            let edge = self.table.get(*t).map(|c| c.edge);
            let header = RoutedHeader {
                ttl: self.config.ttl,
                hops: 1,
                mode: Mode::Exact,
                flags: RoutedFlags::default(),
                kind: kind::BROADCAST,
                src: me,
                dst: *t,
                via: None,
            };
            let msg = crate::wire::Message::Routed(crate::wire::Routed {
                header,
                payload: &bytes,
            });
            if let Some(edge) = edge {
                self.send_on_edge(*t, edge, &msg);
            }
        }
    }

    /// A broadcast reached this node: deliver it, and cover the rest of its arc.
    ///
    /// Only a connected peer hands on a broadcast, one hop, in its own name, and it can
    /// only hand on part of the arc it covers itself: the arc given to this node ends
    /// after it and no further than the sender (the origin's arc ends at the origin).
    /// A broadcast claiming the whole ring, or an arc that wraps past its sender, is
    /// dropped, as are reserved kinds and more than `broadcasts_per_origin` broadcasts
    /// per origin per second (from at most `ctm_sources` origins).
    pub(crate) fn on_broadcast(
        &mut self,
        now: Instant,
        src: Option<Source>,
        header: &RoutedHeader,
        b: &Broadcast<'_>,
    ) {
        let me = self.address;
        let sender = src.and_then(|s| self.find_conn_mut(s)).map(|c| c.peer);
        let arc_ok = b.end != me && me.cw_distance(b.end) <= me.cw_distance(header.src);
        let (per_source, sources) = (self.config.broadcasts_per_origin, self.config.ctm_sources);
        let ok = sender == Some(header.src)
            && header.dst == me
            && b.kind >= kind::FIRST_APP
            && arc_ok
            && self
                .broadcast_limit
                .allow(now, b.origin, per_source, sources);
        if !ok {
            self.stats.broadcast_refused += 1;
            return;
        }
        if b.origin != self.address {
            let header = RoutedHeader {
                ttl: self.config.ttl,
                hops: 0,
                mode: Mode::Exact,
                flags: RoutedFlags::default(),
                kind: b.kind,
                src: b.origin,
                dst: self.address,
                via: None,
            };
            self.inbox.push_back((header, b.payload.to_vec(), false));
        }
        self.forward_broadcast(b.origin, b.end, b.kind, b.payload);
    }

    /// The layer above sent a message to `dst`: counts towards a shortcut to it.
    pub fn note_traffic(&mut self, now: Instant, dst: Address) {
        let threshold = self.config.shortcut_threshold;
        if threshold == 0 || dst == self.address {
            return;
        }
        if let Some(c) = self.table.get_mut(dst) {
            c.last_traffic = now;
            return;
        }
        let window = self.config.shortcut_window;
        let t = &mut self.traffic;
        if t.window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= window)
        {
            t.window_start = Some(now);
            t.counts.clear();
        }
        let count = t.counts.entry(dst).or_default();
        *count += 1;
        let count = *count;
        let asked = self.linking_to(dst) || self.ctms.iter().any(|c| c.target == dst);
        if count >= threshold && !asked {
            self.send_ctm(now, dst, Mode::Exact, Roles::SHORTCUT, None);
        }
    }

    /// Takes the shortcut role from connections without traffic for `shortcut_idle`.
    pub(crate) fn expire_shortcuts(&mut self, now: Instant) {
        let idle = self.config.shortcut_idle;
        for c in self.table.iter_mut() {
            if c.roles.contains(Roles::SHORTCUT)
                && now.saturating_duration_since(c.last_traffic) >= idle
            {
                c.roles = c.roles.without(Roles::SHORTCUT);
                c.status_due = true;
            }
        }
    }
}

impl Edge {
    /// Whether datagrams go straight to the peer (not through a relay).
    pub fn is_direct(&self) -> bool {
        matches!(self, Edge::Direct(_))
    }
}
