//! The replica side of the DHT: serving requests for the sub-keys this node holds,
//! copying records to the other replica, taking copies from it, and moving records when
//! the ring changes.
//!
//! A copied record (REPLICATE) is taken only if its owner's signature certifies it (see
//! `owner::cert_signer`: no node can alter a value or revive a deleted record), only
//! for a sub-key this node is responsible for, only if the sub-key is the one its key
//! and index name, and it counts against the quota of the sender's sector (see
//! [`quota_holder`]). A copy that would hand a live record to another owner (another
//! password) is taken if the owner this node knows signed the handover (a recreate),
//! or else only from a ring neighbour (one of this node's near peers, the
//! only nodes that share sub-keys with it): so a node elsewhere on the ring cannot take
//! over a record, while records still move to new holders from wherever their former
//! holders now sit (after many nodes join at once, a former holder can be far away).
//! With secure edges the neighbour must also have sent the copy itself, over its own
//! authenticated edge: a node that writes a neighbour's address into a routed header
//! is refused (without them the routed source address is all there is).

use std::time::Instant;

use super::owner::cert_signer;
use super::wire::{self, Op, RecordRepr, Reply, Request, Status};
use super::{Dht, send, sub_key};
use crate::address::Address;
use crate::overlay::Node;
use crate::wire::{Mode, RoutedHeader};

impl Dht {
    /// A record another replica copied here (see the module doc for what is taken).
    pub(super) fn accept_replica(
        &mut self,
        now: Instant,
        node: &Node,
        header: &RoutedHeader,
        rec: &RecordRepr<'_>,
        src_trusted: bool,
    ) {
        let (left, right) = node.near_neighbors();
        let from_neighbour =
            src_trusted && (left.contains(&header.src) || right.contains(&header.src));
        // A copy no later than the one held (every resync sends them) changes nothing:
        // it is not worth a signature check.
        let held = self.store.get(&rec.sub_key);
        if held.is_some_and(|r| r.cert.serial >= rec.cert.serial) {
            return;
        }
        let genuine = rec.sub_key == sub_key(rec.key, rec.sub);
        let Some(signer) = cert_signer(rec.key, rec.value, rec.tombstone, &rec.cert) else {
            self.refused_replicas += 1;
            self.forged += 1;
            return;
        };
        let takeover = held.is_some_and(|r| {
            r.live(now) && !r.same_owner(&rec.cert.owner) && !r.same_owner(&signer)
        });
        if !genuine || !responsible(node, rec.sub_key) || (takeover && !from_neighbour) {
            self.refused_replicas += 1;
            return;
        }
        let limits = self.limits();
        let unix_now = self.clock.unix_ms(now);
        self.store
            .merge(now, unix_now, rec, quota_holder(node, header.src), &limits);
    }

    /// A request reached this node as a replica of its sub-key.
    pub(super) fn serve(
        &mut self,
        now: Instant,
        node: &mut Node,
        header: &RoutedHeader,
        req: &Request<'_>,
    ) {
        let sub_key = sub_key(req.key, req.sub);
        if sub_key != header.dst {
            return; // not the sub-key it claims to be
        }
        // A read gets the record's certificate with its value, or with its deletion.
        let (status, rev, ttl_left_s, value, cert) = if req.op == Op::Get {
            match self.store.get(&sub_key) {
                Some(r) if r.live(now) => (
                    Status::Ok,
                    r.rev,
                    r.ttl_left_s(now),
                    r.value.clone(),
                    Some(r.cert),
                ),
                Some(r) => (
                    Status::NotFound,
                    r.rev,
                    0,
                    Vec::new(),
                    r.tombstone.then_some(r.cert),
                ),
                None => (Status::NotFound, 0, 0, Vec::new(), None),
            }
        } else {
            let limits = self.limits();
            let charged = quota_holder(node, header.src);
            let unix_now = self.clock.unix_ms(now);
            let status = self
                .store
                .apply(now, unix_now, sub_key, header.src, charged, req, &limits);
            if status == Status::Ok {
                self.replicate_to_partner(now, node, sub_key);
            }
            let rev = self.store.get(&sub_key).map_or(0, |r| r.rev);
            (status, rev, 0, Vec::new(), None)
        };
        let reply = Reply {
            op_id: req.op_id,
            sub: req.sub,
            status,
            rev,
            ttl_left_s,
            value: &value,
            cert,
        };
        send(now, node, header.src, Mode::Exact, wire::REPLY, |b| {
            reply.emit(b)
        });
    }

    /// Copies a record to the other replica of its sub-key.
    fn replicate_to_partner(&mut self, now: Instant, node: &mut Node, sub_key: Address) {
        let Some(partner) = partner(node, sub_key) else {
            return;
        };
        if let Some(rec) = self.store.get(&sub_key) {
            let repr = rec.repr(sub_key, now);
            send(now, node, partner, Mode::Exact, wire::REPLICATE, |b| {
                repr.emit(b)
            });
        }
        for (k, rec) in self.store.iter_mut() {
            if *k == sub_key {
                rec.pushed_to = Some(partner);
            }
        }
    }

    /// After the ring changed (or every `resync`): copy records to the current partner,
    /// and hand off those this node is no longer responsible for.
    pub(super) fn migrate(&mut self, now: Instant, node: &mut Node) {
        let view = node.ring_neighbors();
        let resync = now >= self.next_resync;
        if view == self.last_view && !resync {
            return;
        }
        self.last_view = view;
        if resync {
            self.next_resync = now + self.config.resync;
        }
        for key in self.store.keys() {
            if responsible(node, key) {
                let partner = partner(node, key);
                let pushed = self.store.get(&key).and_then(|r| r.pushed_to);
                if partner.is_some() && (partner != pushed || resync) {
                    self.replicate_to_partner(now, node, key);
                }
            } else if let Some(rec) = self.store.remove(&key) {
                let repr = rec.repr(key, now);
                send(now, node, key, Mode::Pair, wire::REPLICATE, |b| {
                    repr.emit(b)
                });
            }
        }
    }
}

/// The quota a record from the claimed source `src` counts against.
///
/// The quota keeps one writer from filling this replica's store (the per-peer limit)
/// within the store's total. The routed source address is not authenticated, so
/// charging it let a sender that made up a new source for every record store as many
/// records as the total allows (over a million by default). A record is charged
/// instead to the sector of the ring `src` lies in, as this node's routing table divides
/// the ring: the connected peer (or this node) nearest to `src`. A forger can only move
/// records between these sectors, so it gets at most (connections + 1) × the per-peer
/// limit, whatever it claims. The price is that honest writers in one sector share its
/// quota. Once sources are authenticated (the crypto issue), this can return `src`.
pub(super) fn quota_holder(node: &Node, src: Address) -> Address {
    let me = node.address();
    node.connections()
        .map(|c| c.peer)
        .chain([me])
        .min_by_key(|p| p.ring_distance(src))
        .unwrap_or(me)
}

/// The other node of the pair adjacent to `key`, as this node sees the ring.
fn partner(node: &Node, key: Address) -> Option<Address> {
    let me = node.address();
    match node.ring_neighbors() {
        (_, Some(r)) if key.in_cw_arc(me, r) => Some(r),
        (Some(l), _) if key.in_cw_arc(l, me) => Some(l),
        _ => None,
    }
}

/// Whether this node is one of the two nodes adjacent to `key`.
fn responsible(node: &Node, key: Address) -> bool {
    let me = node.address();
    match node.ring_neighbors() {
        (Some(l), Some(r)) => key.in_cw_arc(l, me) || key.in_cw_arc(me, r) || key == me,
        _ => true,
    }
}
