//! Keeping namespaces alive: the node that creates a namespace writes its record into
//! the DHT (an open namespace under a fresh identifier, another one if that is taken, up
//! to [`CREATE_TRIES`]; a keyed one under what its key names, sealed), and renews the records it created every [`REFRESH`], well within
//! their [`RECORD_TTL`], so that a namespace outlives any single DHT replica.
//!
//! Sans-IO like the other layers: the caller hands in DHT results
//! ([`Keeper::handle_dht_result`]) and timer expiries, and takes out [`KeeperEvent`]s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Namespace, NamespaceId, NamespaceRecord};
use crate::dht::{Dht, DhtError, Outcome, RequestId};
use crate::overlay::Node;

/// Lifetime of a namespace record in the DHT.
pub const RECORD_TTL: Duration = Duration::from_secs(3600);
/// How often the records this node created are renewed.
pub const REFRESH: Duration = Duration::from_secs(600);
/// Identifiers tried before a creation fails (each one may be taken).
pub const CREATE_TRIES: u32 = 5;

/// What became of a creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeeperEvent {
    /// The record is in the DHT under `id`, and will be renewed.
    Created {
        /// What [`Keeper::create`] returned.
        ticket: u64,
        /// The namespace's identifier.
        id: NamespaceId,
    },
    /// The record could not be created.
    Failed {
        /// What [`Keeper::create`] returned.
        ticket: u64,
        /// The last DHT error.
        error: DhtError,
    },
}

#[derive(Debug)]
struct Creating {
    ticket: u64,
    op: RequestId,
    ns: Namespace,
    record: NamespaceRecord,
    fixed: bool,
    tries: u32,
}

/// Creates namespace records and keeps them alive.
#[derive(Debug)]
pub struct Keeper {
    rng: StdRng,
    kept: Vec<(Namespace, NamespaceRecord)>,
    creating: Vec<Creating>,
    renewing: Vec<RequestId>,
    refresh_at: Instant,
    next_ticket: u64,
    events: VecDeque<KeeperEvent>,
    renew_failures: u64,
}

impl Keeper {
    /// A keeper whose identifiers come from `seed` (32 bytes from the operating system
    /// outside tests: an identifier is also what a namespace's record password is
    /// derived from).
    pub fn new(seed: [u8; 32], now: Instant) -> Self {
        Keeper {
            rng: StdRng::from_seed(seed),
            kept: Vec::new(),
            creating: Vec::new(),
            renewing: Vec::new(),
            refresh_at: now + REFRESH,
            next_ticket: 0,
            events: VecDeque::new(),
            renew_failures: 0,
        }
    }

    /// Starts creating a namespace with `record`: `fixed` (keyed, or an open one under a
    /// chosen identifier) or an open one under a fresh identifier; the outcome comes as
    /// a [`KeeperEvent`] carrying the returned ticket.
    pub fn create(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        record: NamespaceRecord,
        fixed: Option<Namespace>,
    ) -> Result<u64, DhtError> {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let is_fixed = fixed.is_some();
        let ns = fixed.unwrap_or_else(|| NamespaceId::random(&mut self.rng).into());
        let op = self.write(now, node, dht, &ns, &record)?;
        self.creating.push(Creating {
            ticket,
            op,
            ns,
            record,
            fixed: is_fixed,
            tries: 1,
        });
        Ok(ticket)
    }

    fn write(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        ns: &Namespace,
        record: &NamespaceRecord,
    ) -> Result<RequestId, DhtError> {
        let stored = ns.seal_record(&mut self.rng, record);
        dht.create(
            now,
            node,
            &ns.record_key(),
            &ns.record_password(),
            &stored,
            RECORD_TTL,
        )
    }

    /// Takes the result of a DHT operation if it is one of the keeper's; returns whether
    /// it was.
    pub fn handle_dht_result(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        op: RequestId,
        result: &Result<Outcome, DhtError>,
    ) -> bool {
        if let Some(i) = self.renewing.iter().position(|r| *r == op) {
            self.renewing.swap_remove(i);
            if result.is_err() {
                self.renew_failures += 1;
            }
            return true;
        }
        let Some(i) = self.creating.iter().position(|c| c.op == op) else {
            return false;
        };
        let mut c = self.creating.swap_remove(i);
        match result {
            Ok(_) => {
                self.events.push_back(KeeperEvent::Created {
                    ticket: c.ticket,
                    id: c.ns.id(),
                });
                self.kept.push((c.ns, c.record));
            }
            // Taken (or no majority): another identifier, unless the caller chose it.
            Err(_) if c.tries < CREATE_TRIES && !c.fixed => {
                c.ns = NamespaceId::random(&mut self.rng).into();
                c.tries += 1;
                match self.write(now, node, dht, &c.ns, &c.record) {
                    Ok(op) => {
                        c.op = op;
                        self.creating.push(c);
                    }
                    Err(error) => self.events.push_back(KeeperEvent::Failed {
                        ticket: c.ticket,
                        error,
                    }),
                }
            }
            Err(error) => self.events.push_back(KeeperEvent::Failed {
                ticket: c.ticket,
                error: *error,
            }),
        }
        true
    }

    /// Renews the kept records when due.
    pub fn handle_timeout(&mut self, now: Instant, node: &mut Node, dht: &mut Dht) {
        if now < self.refresh_at {
            return;
        }
        self.refresh_at = now + REFRESH;
        for (ns, record) in &self.kept {
            let pw = ns.record_password();
            let stored = ns.seal_record(&mut self.rng, record);
            match dht.recreate(now, node, &ns.record_key(), &pw, &pw, &stored, RECORD_TTL) {
                Ok(op) => self.renewing.push(op),
                Err(_) => self.renew_failures += 1,
            }
        }
    }

    /// Deletes namespace `ns`: stops renewing its record, if this node keeps it, and
    /// deletes the record from the DHT (with the password its identifier or key
    /// derives); the DHT's answer comes back under the returned id. Members keep the
    /// record they read, and their addresses until their leases end; no node finds the
    /// namespace any more.
    pub fn delete(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        ns: &Namespace,
    ) -> Result<RequestId, DhtError> {
        self.kept.retain(|(k, _)| k.id() != ns.id());
        dht.delete(now, node, &ns.record_key(), &ns.record_password())
    }

    /// When [`Keeper::handle_timeout`] should run next (nothing to renew: never).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.kept.is_empty()).then_some(self.refresh_at)
    }

    /// The next outcome of a creation.
    pub fn poll_event(&mut self) -> Option<KeeperEvent> {
        self.events.pop_front()
    }

    /// The namespaces this node created and keeps.
    pub fn kept(&self) -> &[(Namespace, NamespaceRecord)] {
        &self.kept
    }

    /// Renewals that failed (the record may still live on at other replicas).
    pub fn renew_failures(&self) -> u64 {
        self.renew_failures
    }
}
