//! One DHT operation as the requesting node sees it: requests to each of the key's
//! sub-keys, retransmissions, and the majority decision.
//!
//! Writes go to the single node nearest each sub-key, which decides alone; reads go to
//! both replicas of a sub-key and keep the answer with the higher revision. A create
//! first takes sub-key 0 (so that, of creators racing for one key, only the first to
//! reach sub-key 0 goes on), then the others; one that falls short of a majority
//! deletes the sub-keys it did take.

use std::time::{Duration, Instant};

use super::owner::{OwnerKey, cert_signer};
use super::wire::{Op, Reply, Request, Status};
use super::{DhtError, Outcome, RequestId};
use crate::address::Address;

/// How many mean gaps between ring neighbours a replica of a sub-key may be from it. A
/// reply from a node farther away is no replica's (a node on the request's path that
/// answers in its own name): Castro et al.'s density test ("Secure routing for
/// structured peer-to-peer overlay networks", OSDI 2002), with the mean gap estimated
/// from this node's own ring neighbourhood. The two replicas bracket the sub-key, so
/// each is within the one gap that holds it; 32 mean gaps leave room for a gap many
/// times the mean and for an estimate that is several times off.
pub(crate) const REPLICA_GAPS: f64 = 32.0;

/// Whether `replier` is near enough to `sub_key` to be one of its replicas, on a ring
/// of about `network_size` nodes.
pub(crate) fn near_enough(replier: Address, sub_key: Address, network_size: f64) -> bool {
    let gap = 2f64.powi(160) / network_size.max(1.0);
    replier.ring_distance(sub_key).as_f64() <= REPLICA_GAPS * gap
}

/// What one sub-key answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubResult {
    /// A write's status.
    Status(Status),
    /// A read: the value of the latest write any replica reported (None: absent or
    /// deleted).
    Value(Option<Vec<u8>>),
    /// No answer after every retransmission.
    Failed,
}

#[derive(Debug, Clone)]
pub(crate) struct Sub {
    pub(crate) addr: Address,
    pub(crate) sent: bool,
    pub(crate) attempts: u32,
    pub(crate) next_send: Instant,
    pub(crate) result: Option<SubResult>,
    /// Reads: the nodes that answered so far (a second answer from one of them counts
    /// for nothing: the two replies must be two replicas'), the best (serial of the
    /// write, value), and when the first value came.
    repliers: Vec<Address>,
    best: Option<(u64, Option<Vec<u8>>)>,
    first_reply: Option<Instant>,
}

/// An operation in flight.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub(crate) id: RequestId,
    pub(crate) op: Op,
    pub(crate) op_id: u64,
    pub(crate) key: Vec<u8>,
    /// The owner key of the password (writes; a rollback signs its delete with it).
    pub(crate) owner: Option<OwnerKey>,
    /// The owner's proof of this operation (writes), empty for reads.
    pub(crate) proof: Vec<u8>,
    /// Recreate: the new owner key.
    pub(crate) new_owner: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) ttl_s: u32,
    /// Writes: the serial the proof signs.
    pub(crate) serial: u64,
    pub(crate) subs: Vec<Sub>,
    /// Give up if it has not been able to start by then (node never correctly connected).
    pub(crate) start_deadline: Instant,
    pub(crate) started: bool,
    /// The result went out (a write goes on until every sub-key has answered, so that
    /// all of them hold the record, not just the majority that decided).
    pub(crate) reported: bool,
}

impl Operation {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: RequestId,
        op: Op,
        op_id: u64,
        key: &[u8],
        sub_keys: Vec<Address>,
        password: &[u8],
        new_password: &[u8],
        value: &[u8],
        ttl_s: u32,
        serial: u64,
        now: Instant,
        start_deadline: Instant,
    ) -> Self {
        // The passwords stay here: requests carry the owner's proof instead.
        let (owner, new_owner, proof) = if op == Op::Get {
            (None, Vec::new(), Vec::new())
        } else {
            let owner = OwnerKey::derive(key, password);
            let new_owner = if op == Op::Recreate {
                OwnerKey::derive(key, new_password).public().to_vec()
            } else {
                Vec::new()
            };
            let req = Request {
                op,
                op_id,
                sub: 0,
                key,
                proof: &[],
                new_owner: &new_owner,
                value,
                ttl_s,
                serial,
            };
            let proof = owner.prove(&req).to_vec();
            (Some(owner), new_owner, proof)
        };
        Operation {
            id,
            op,
            op_id,
            key: key.to_vec(),
            owner,
            proof,
            new_owner,
            value: value.to_vec(),
            ttl_s,
            serial,
            subs: sub_keys
                .into_iter()
                .map(|addr| Sub {
                    addr,
                    sent: false,
                    attempts: 0,
                    next_send: now,
                    result: None,
                    repliers: Vec::new(),
                    best: None,
                    first_reply: None,
                })
                .collect(),
            start_deadline,
            started: false,
            reported: false,
        }
    }

    /// Sub-keys that should be sent now: all of them, except that a create waits for
    /// sub-key 0 before the others.
    pub(crate) fn releasable(&self) -> impl Iterator<Item = usize> + '_ {
        let gate_open = self.op != Op::Create || self.subs[0].result.is_some();
        self.subs
            .iter()
            .enumerate()
            .filter(move |(i, s)| !s.sent && (*i == 0 || gate_open))
            .map(|(i, _)| i)
    }

    /// A create stops at once if sub-key 0 says the key exists (or is refused).
    pub(crate) fn lock_refused(&self) -> Option<DhtError> {
        if self.op != Op::Create {
            return None;
        }
        match self.subs[0].result {
            Some(SubResult::Status(Status::Exists)) => Some(DhtError::KeyExists),
            Some(SubResult::Status(Status::Quota)) => Some(DhtError::Quota),
            _ => None,
        }
    }

    /// Records a reply from `from`. Returns false for a read's answer whose record is
    /// not certified by its owner (it is dropped).
    pub(crate) fn on_reply(&mut self, now: Instant, from: Address, reply: &Reply<'_>) -> bool {
        let Some(sub) = self.subs.get_mut(usize::from(reply.sub)) else {
            return true;
        };
        if sub.result.is_some() {
            return true;
        }
        if self.op != Op::Get {
            sub.result = Some(SubResult::Status(reply.status));
            return true;
        }
        let found = reply.status == Status::Ok;
        let serial = match &reply.cert {
            Some(cert) if cert_signer(&self.key, reply.value, !found, cert).is_some() => {
                cert.serial
            }
            None if !found => 0,
            _ => return false,
        };
        if sub.repliers.contains(&from) {
            return true;
        }
        sub.repliers.push(from);
        let value = found.then(|| reply.value.to_vec());
        if value.is_some() {
            // A value settles the read after a short grace (in case the other replica
            // holds a later revision, e.g. a delete). "Absent" settles nothing by
            // itself: that replica may be new and not yet have the record.
            sub.first_reply.get_or_insert(now);
        }
        if sub.best.as_ref().is_none_or(|(best, _)| serial > *best) {
            sub.best = Some((serial, value));
        }
        if sub.repliers.len() >= 2 {
            sub.result = Some(SubResult::Value(sub.best.take().and_then(|(_, v)| v)));
        }
        true
    }

    /// Expires waits: a read settles on what it has once `grace` passed after a replica
    /// answered with a value, or after its last attempt if replicas only said "absent";
    /// a sub-key with no answer after every attempt fails. Returns the sub-keys to
    /// (re)send now.
    pub(crate) fn due(&mut self, now: Instant, attempts: u32, grace: Duration) -> Vec<usize> {
        let mut resend = Vec::new();
        for (i, sub) in self.subs.iter_mut().enumerate() {
            if !sub.sent || sub.result.is_some() {
                continue;
            }
            if sub.first_reply.is_some_and(|t| now >= t + grace) {
                sub.result = Some(SubResult::Value(sub.best.take().and_then(|(_, v)| v)));
            } else if now >= sub.next_send {
                if sub.attempts >= attempts {
                    sub.result = Some(match sub.best.take() {
                        Some((_, v)) => SubResult::Value(v),
                        None => SubResult::Failed,
                    });
                } else {
                    resend.push(i);
                }
            }
        }
        resend
    }

    /// The earliest instant something of this operation is due.
    pub(crate) fn next_deadline(&self, grace: Duration) -> Option<Instant> {
        self.subs
            .iter()
            .filter(|s| s.sent && s.result.is_none())
            .map(|s| match s.first_reply {
                Some(t) => (t + grace).min(s.next_send),
                None => s.next_send,
            })
            .min()
    }

    /// Done when every sub-key answered, or as soon as a majority agrees on success
    /// (or on a value, for reads): the rest cannot change the outcome.
    pub(crate) fn is_done(&self, majority: usize) -> bool {
        if self.lock_refused().is_some() || self.is_finished() {
            return true;
        }
        let agreeing = if self.op == Op::Get {
            let values: Vec<&Option<Vec<u8>>> = self
                .subs
                .iter()
                .filter_map(|s| match &s.result {
                    Some(SubResult::Value(v)) => Some(v),
                    _ => None,
                })
                .collect();
            values
                .iter()
                .map(|v| values.iter().filter(|w| *w == v).count())
                .max()
                .unwrap_or(0)
        } else {
            self.subs
                .iter()
                .filter(|s| s.result == Some(SubResult::Status(Status::Ok)))
                .count()
        };
        agreeing >= majority
    }

    /// Every sub-key answered (or gave up).
    pub(crate) fn is_finished(&self) -> bool {
        self.subs.iter().all(|s| s.result.is_some())
    }

    /// The majority decision. For a failed create, also the sub-keys to roll back.
    pub(crate) fn outcome(&self, majority: usize) -> (Result<Outcome, DhtError>, Vec<usize>) {
        if let Some(err) = self.lock_refused() {
            return (Err(err), Vec::new());
        }
        let count = |want: Status| {
            self.subs
                .iter()
                .filter(|s| s.result == Some(SubResult::Status(want)))
                .count()
        };
        if self.op == Op::Get {
            let mut groups: Vec<(&Option<Vec<u8>>, usize)> = Vec::new();
            for s in &self.subs {
                if let Some(SubResult::Value(v)) = &s.result {
                    match groups.iter_mut().find(|(g, _)| *g == v) {
                        Some((_, n)) => *n += 1,
                        None => groups.push((v, 1)),
                    }
                }
            }
            return match groups.into_iter().find(|(_, n)| *n >= majority) {
                Some((v, _)) => (Ok(Outcome::Values(v.iter().cloned().collect())), Vec::new()),
                None => (Err(DhtError::NoMajority), Vec::new()),
            };
        }
        if count(Status::Ok) >= majority {
            let done = match self.op {
                Op::Create => Outcome::Created,
                Op::Delete => Outcome::Deleted,
                _ => Outcome::Recreated,
            };
            return (Ok(done), Vec::new());
        }
        let err = if count(Status::Exists) > 0 {
            DhtError::KeyExists
        } else if count(Status::BadPassword) >= majority {
            DhtError::BadPassword
        } else if count(Status::NotFound) >= majority {
            DhtError::NotFound
        } else if count(Status::Quota) >= majority {
            DhtError::Quota
        } else if count(Status::Stale) >= majority {
            DhtError::Stale
        } else {
            DhtError::NoMajority
        };
        let rollback = if self.op == Op::Create {
            (0..self.subs.len())
                .filter(|&i| self.subs[i].result == Some(SubResult::Status(Status::Ok)))
                .collect()
        } else {
            Vec::new()
        };
        (Err(err), rollback)
    }
}
