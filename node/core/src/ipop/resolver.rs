//! Brunet-ARP: which P2P node owns a virtual IP, from a DHT get of `(namespace, IP)`,
//! cached with an expiry and refreshed while in use, so that an IP that moved to another
//! node is found again: every `refresh` while traffic flows, and — when the owner stops
//! answering (nothing heard from the IP for a few seconds while we keep sending) — every
//! couple of seconds until it answers again. Packets for an IP still being resolved wait
//! in a bounded queue.
//!
//! Notices that a mapping may be wrong (the overlay found no route to the owner, a node
//! says it does not hold the IP, a packet arrives from another node) are not trusted:
//! anyone can forge them. They mark the mapping stale, which keeps it in use and looks
//! the IP up again, at most once per `RETRY` per IP; only the DHT's answer replaces or
//! removes it.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::address::Address;
use crate::dht::RequestId;

#[derive(Debug, Clone, Copy)]
struct Entry {
    owner: Address,
    fetched: Instant,
    /// The last packet from this IP (through its owner).
    heard: Instant,
    /// Someone said the mapping may be wrong: look it up again (keeping it meanwhile).
    stale: bool,
}

/// How long an owner may stay silent while we send before it is looked up again.
const SUSPECT: Duration = Duration::from_secs(3);
/// Least time between two lookups of a silent or doubted owner.
const RETRY: Duration = Duration::from_secs(2);
/// Traffic this recent counts as "in use".
const RECENT: Duration = Duration::from_secs(10);

/// What to do with a packet for an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Send it to this node (and, if `refresh`, look the IP up again in the background).
    Send { owner: Address, refresh: bool },
    /// It waits; start a DHT get for the IP (none is in flight yet).
    Resolve,
    /// It waits for a DHT get already in flight.
    Wait,
    /// The queue is full: it is dropped (and counted).
    Full,
}

/// Limits and timers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) per_ip: usize,
    pub(crate) total: usize,
    pub(crate) ttl: Duration,
    pub(crate) refresh: Duration,
}

#[derive(Debug)]
pub(crate) struct Resolver {
    limits: Limits,
    cache: BTreeMap<Ipv4Addr, Entry>,
    queues: BTreeMap<Ipv4Addr, VecDeque<Vec<u8>>>,
    queued: usize,
    lookups: BTreeMap<RequestId, Ipv4Addr>,
    /// The last packet sent to each IP, and when: sent again to the new owner when a
    /// lookup finds the IP moved (so that a stalled TCP retransmission arrives at once).
    last: BTreeMap<Ipv4Addr, (Instant, Vec<u8>)>,
}

impl Resolver {
    pub(crate) fn new(limits: Limits) -> Self {
        Resolver {
            limits,
            cache: BTreeMap::new(),
            queues: BTreeMap::new(),
            queued: 0,
            lookups: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }

    /// Whether a lookup of `ip` is in flight.
    pub(crate) fn in_flight(&self, ip: Ipv4Addr) -> bool {
        self.lookups.values().any(|i| *i == ip)
    }

    /// The owner of `ip` if known and fresh.
    pub(crate) fn cached(&self, now: Instant, ip: Ipv4Addr) -> Option<Address> {
        self.cache
            .get(&ip)
            .filter(|e| now.saturating_duration_since(e.fetched) < self.limits.ttl)
            .map(|e| e.owner)
    }

    /// Decides what to do with `packet` for `ip` (queueing it if it must wait).
    pub(crate) fn route(&mut self, now: Instant, ip: Ipv4Addr, packet: &[u8]) -> Lookup {
        if let Some(e) = self.cache.get(&ip).copied() {
            if self.cached(now, ip).is_some() {
                let age = now.saturating_duration_since(e.fetched);
                let silent = now.saturating_duration_since(e.heard) >= SUSPECT || e.stale;
                let doubted = silent && age >= RETRY;
                let last = self.last.entry(ip).or_insert_with(|| (now, Vec::new()));
                last.0 = now;
                last.1.clear();
                last.1.extend_from_slice(packet);
                return Lookup::Send {
                    owner: e.owner,
                    refresh: (age >= self.limits.refresh || doubted) && !self.in_flight(ip),
                };
            }
        }
        let queue = self.queues.entry(ip).or_default();
        if queue.len() >= self.limits.per_ip || self.queued >= self.limits.total {
            return Lookup::Full;
        }
        queue.push_back(packet.to_vec());
        self.queued += 1;
        if self.in_flight(ip) {
            Lookup::Wait
        } else {
            Lookup::Resolve
        }
    }

    /// Records that `id` looks up `ip`.
    pub(crate) fn lookup_started(&mut self, id: RequestId, ip: Ipv4Addr) {
        self.lookups.insert(id, ip);
    }

    /// The IP lookup `id` is for, if it is one of this resolver's lookups.
    pub(crate) fn looking_up(&self, id: RequestId) -> Option<Ipv4Addr> {
        self.lookups.get(&id).copied()
    }

    /// A lookup finished: `owner` is the node the DHT names (None: no live mapping).
    /// Returns the IP and its queued packets (to send to the owner, or to drop).
    pub(crate) fn resolved(
        &mut self,
        now: Instant,
        id: RequestId,
        owner: Option<Address>,
    ) -> Option<(Ipv4Addr, Vec<Vec<u8>>)> {
        let ip = self.lookups.remove(&id)?;
        let previous = self.cache.get(&ip).map(|e| e.owner);
        match owner {
            Some(owner) => {
                // A new owner gets its own time to answer; the same one keeps its record.
                let heard = match self.cache.get(&ip) {
                    Some(e) if e.owner == owner => e.heard,
                    _ => now,
                };
                self.cache.insert(
                    ip,
                    Entry {
                        owner,
                        fetched: now,
                        heard,
                        stale: false,
                    },
                );
            }
            None => {
                self.cache.remove(&ip);
            }
        }
        let mut packets: Vec<Vec<u8>> = self.queues.remove(&ip).map(Vec::from).unwrap_or_default();
        self.queued -= packets.len();
        if owner.is_some() && previous.is_some() && owner != previous {
            // Moved: what went to the old owner lately is sent to the new one.
            if let Some((at, p)) = self.last.get(&ip) {
                if now.saturating_duration_since(*at) < RECENT {
                    packets.insert(0, p.clone());
                }
            }
        }
        Some((ip, packets))
    }

    /// Doubts the owner of `ip` (someone said it does not hold the IP any more): it
    /// stays in use until a lookup, rate-limited, says otherwise.
    pub(crate) fn suspect(&mut self, ip: Ipv4Addr) {
        if let Some(e) = self.cache.get_mut(&ip) {
            e.stale = true;
        }
    }

    /// Doubts every IP owned by `owner` (the overlay found no route to it).
    pub(crate) fn suspect_owner(&mut self, owner: Address) {
        for e in self.cache.values_mut().filter(|e| e.owner == owner) {
            e.stale = true;
        }
    }

    /// The owner of `ip` if a lookup named it less than `RETRY` ago and nothing cast
    /// doubt on it since: a packet from `ip` through another node is then a forgery.
    pub(crate) fn confirmed(&self, now: Instant, ip: Ipv4Addr) -> Option<Address> {
        self.cache
            .get(&ip)
            .filter(|e| !e.stale && now.saturating_duration_since(e.fetched) < RETRY)
            .map(|e| e.owner)
    }

    /// A packet from `ip` came through `owner`: the mapping is alive.
    pub(crate) fn heard(&mut self, now: Instant, ip: Ipv4Addr, owner: Address) {
        if let Some(e) = self.cache.get_mut(&ip).filter(|e| e.owner == owner) {
            e.heard = now;
        }
    }

    /// IPs in use whose owner has been silent: to look up again now.
    pub(crate) fn suspects(&self, now: Instant) -> Vec<Ipv4Addr> {
        self.cache
            .iter()
            .filter(|(ip, e)| {
                let used = self
                    .last
                    .get(ip)
                    .is_some_and(|(at, _)| now.saturating_duration_since(*at) < RECENT);
                used && (now.saturating_duration_since(e.heard) >= SUSPECT || e.stale)
                    && now.saturating_duration_since(e.fetched) >= RETRY
                    && !self.in_flight(**ip)
            })
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// Drops cache entries unused past their TTL.
    pub(crate) fn expire(&mut self, now: Instant) {
        let ttl = self.limits.ttl;
        self.cache
            .retain(|_, e| now.saturating_duration_since(e.fetched) < ttl);
        self.last
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
    }

    /// Packets waiting.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Cached mappings.
    pub(crate) fn entries(&self) -> usize {
        self.cache.len()
    }

    /// The cached mappings, by IP: each IP's owner.
    pub(crate) fn mappings(&self) -> impl Iterator<Item = (Ipv4Addr, Address)> + '_ {
        self.cache.iter().map(|(ip, e)| (*ip, e.owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        per_ip: 2,
        total: 3,
        ttl: Duration::from_secs(60),
        refresh: Duration::from_secs(15),
    };

    #[test]
    fn packets_wait_for_resolution_in_a_bounded_queue() {
        let mut r = Resolver::new(LIMITS);
        let t0 = Instant::now();
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(r.route(t0, a, b"p1"), Lookup::Resolve);
        r.lookup_started(RequestId(1), a);
        assert_eq!(r.route(t0, a, b"p2"), Lookup::Wait);
        assert_eq!(r.route(t0, a, b"p3"), Lookup::Full, "per-IP limit");
        assert_eq!(r.route(t0, b, b"q1"), Lookup::Resolve);
        assert_eq!(r.route(t0, b, b"q2"), Lookup::Full, "total limit");
        assert_eq!(r.queued(), 3);
        let owner = Address::from_bytes([9; 20]);
        let (ip, packets) = r.resolved(t0, RequestId(1), Some(owner)).unwrap();
        assert_eq!((ip, packets), (a, vec![b"p1".to_vec(), b"p2".to_vec()]));
        assert_eq!(
            r.route(t0, a, b"p4"),
            Lookup::Send {
                owner,
                refresh: false
            }
        );
        // Past the refresh interval the mapping is still used, and looked up again.
        let later = t0 + Duration::from_secs(20);
        assert_eq!(
            r.route(later, a, b"p5"),
            Lookup::Send {
                owner,
                refresh: true
            }
        );
        // An owner that answers is only refreshed at the interval; a silent one sooner.
        r.lookup_started(RequestId(2), a);
        r.resolved(later, RequestId(2), Some(owner));
        r.heard(later + Duration::from_secs(3), a, owner);
        let soon = later + Duration::from_secs(4);
        assert_eq!(
            r.route(soon, a, b"p"),
            Lookup::Send {
                owner,
                refresh: false
            }
        );
        let silent = later + Duration::from_secs(7);
        assert_eq!(
            r.route(silent, a, b"p"),
            Lookup::Send {
                owner,
                refresh: true
            }
        );
        assert_eq!(r.suspects(silent), vec![a]);
        // Found at another node: the last packet goes there too.
        let moved = Address::from_bytes([7; 20]);
        r.lookup_started(RequestId(4), a);
        let (_, again) = r.resolved(silent, RequestId(4), Some(moved)).unwrap();
        assert_eq!(again, vec![b"p".to_vec()]);
        // A notice that the owner is gone keeps the mapping and looks it up again,
        // at most once per RETRY; only the DHT's answer removes it.
        r.suspect_owner(moved);
        assert_eq!(
            r.route(silent, a, b"p"),
            Lookup::Send {
                owner: moved,
                refresh: false
            },
            "just looked up"
        );
        let retry = silent + RETRY;
        assert_eq!(
            r.route(retry, a, b"p"),
            Lookup::Send {
                owner: moved,
                refresh: true
            }
        );
        r.lookup_started(RequestId(3), a);
        r.resolved(retry, RequestId(3), None);
        assert_eq!(r.route(retry, a, b"p6"), Lookup::Resolve);
    }
}
