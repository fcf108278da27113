//! Decentralized DHCP and the leases behind it: the namespace record is read from the
//! DHT; an address is taken by creating `(namespace, IP) -> this node` in the DHT with a
//! password (another random address is tried when it exists); leases are renewed at half
//! their time by re-creating the key, and released by deleting it. A lease restored from
//! disk (a restarted or migrated node) is re-created with its old password, so the node
//! keeps its address and peers find it at its new P2P address.
//!
//! In hash mode none of this applies: the node holds its one configured address, whose
//! SHA-1 is its P2P address, so DHCP offers only that address (to one client at a time)
//! and refuses everything else, and no lease is written to the DHT.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::MessageType;
use rand::Rng;

use super::dhcp::{self, Answer, ClientRequest};
use super::namespace::NamespaceRecord;
use super::{Event, Ipop, Lease, Mapping, Purpose, frame};
use crate::dht::{Dht, DhtError, Outcome};
use crate::overlay::Node;

/// How often a node of the namespace renews the namespace record, and its TTL.
const RECORD_RENEW: Duration = Duration::from_secs(600);
const RECORD_TTL: Duration = Duration::from_secs(3600);
/// How long to wait before asking for a missing namespace record again.
const RECORD_RETRY: Duration = Duration::from_secs(5);
/// Random addresses a DHCP acquisition draws before it scans for a free one.
const RANDOM_PICKS: u32 = 16;

/// A DHCP client the node is answering.
#[derive(Debug, Clone)]
pub(super) struct Client {
    pub(super) last: ClientRequest,
    /// Addresses tried for this client's current acquisition.
    pub(super) tries: u32,
    /// A create is in flight for this client.
    pub(super) acquiring: bool,
}

impl Ipop {
    /// A DHCP message from the host.
    pub(super) fn dhcp_message(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        message: &[u8],
    ) {
        let Some(req) = dhcp::parse(message) else {
            self.stats.dropped_malformed += 1;
            return;
        };
        self.stats.dhcp_messages += 1;
        if self.config.mapping == Mapping::Hash {
            self.dhcp_hash_mode(now, node, dht, req);
            return;
        }
        let mac = req.mac;
        let bound = self
            .leases
            .iter()
            .find(|(_, l)| l.mac == Some(mac))
            .map(|(ip, _)| *ip);
        match req.kind {
            MessageType::Discover => {
                self.timeline.discover.get_or_insert(now);
                self.remember(req);
                match bound {
                    Some(ip) => self.answer(now, mac, Answer::Offer(ip)),
                    None => self.acquire(now, node, dht, mac),
                }
            }
            MessageType::Request => {
                let wanted = req.requested;
                self.remember(req);
                match (bound, wanted) {
                    (Some(ip), Some(w)) if ip == w => self.answer(now, mac, Answer::Ack(ip)),
                    (Some(ip), None) => self.answer(now, mac, Answer::Ack(ip)),
                    // Not ours (e.g. a lease from before a restart we do not hold).
                    _ => self.answer(now, mac, Answer::Nak),
                }
            }
            MessageType::Inform => {
                self.remember(req);
                self.answer(now, mac, Answer::InformAck);
            }
            MessageType::Release | MessageType::Decline => {
                if let Some(ip) = bound {
                    self.release(now, node, dht, ip);
                }
            }
            _ => {}
        }
    }

    /// The address a client with `mac` may have in hash mode: the held address that
    /// hashes to this node, unless another client uses it.
    fn own_address(&self, node: &Node, mac: [u8; 6]) -> Option<Ipv4Addr> {
        self.leases
            .iter()
            .find(|(ip, l)| self.holds(node, **ip) && l.mac.is_none_or(|m| m == mac))
            .map(|(ip, _)| *ip)
    }

    /// DHCP in hash mode: only the node's own address is offered; the DHT is not used.
    fn dhcp_hash_mode(&mut self, now: Instant, node: &mut Node, dht: &mut Dht, req: ClientRequest) {
        if self.record.is_none() {
            self.fetch_record(now, node, dht); // the options come from the record
        }
        let (mac, kind, wanted) = (req.mac, req.kind, req.requested);
        let own = self.own_address(node, mac);
        self.remember(req);
        match (kind, own) {
            (MessageType::Discover, Some(ip)) => self.answer(now, mac, Answer::Offer(ip)),
            (MessageType::Request, Some(ip)) if wanted.is_none_or(|w| w == ip) => {
                if let Some(l) = self.leases.get_mut(&ip) {
                    l.mac = Some(mac);
                }
                self.answer(now, mac, Answer::Ack(ip));
            }
            (MessageType::Discover, None) => self.stats.dhcp_refused += 1,
            (MessageType::Request, _) => {
                self.stats.dhcp_refused += 1;
                self.answer(now, mac, Answer::Nak);
            }
            (MessageType::Inform, _) => self.answer(now, mac, Answer::InformAck),
            // The address is configured, not leased: a release only frees it for
            // another client.
            (MessageType::Release | MessageType::Decline, Some(ip)) => {
                if let Some(l) = self.leases.get_mut(&ip) {
                    l.mac = None;
                }
            }
            _ => {}
        }
    }

    fn remember(&mut self, req: ClientRequest) {
        let mac = req.mac;
        self.clients
            .entry(mac)
            .and_modify(|c| c.last = req.clone())
            .or_insert(Client {
                last: req,
                tries: 0,
                acquiring: false,
            });
    }

    /// Writes a DHCP answer to the client with `mac` (if the namespace is known).
    fn answer(&mut self, now: Instant, mac: [u8; 6], answer: Answer) {
        let (Some(record), Some(client)) = (&self.record, self.clients.get(&mac)) else {
            return;
        };
        let Some((payload, to)) = dhcp::answer(&client.last, answer, record) else {
            return;
        };
        let first = match answer {
            Answer::Offer(_) => &mut self.timeline.offer,
            Answer::Ack(_) => &mut self.timeline.ack,
            _ => &mut None,
        };
        first.get_or_insert(now);
        let gw = record.range.gateway();
        self.tap.push_back(frame::dhcp_frame(
            self.config.gateway_mac,
            gw,
            mac,
            to,
            &payload,
        ));
    }

    /// Takes a new address for the client with `mac` (after the namespace record).
    fn acquire(&mut self, now: Instant, node: &mut Node, dht: &mut Dht, mac: [u8; 6]) {
        let Some(record) = self.record.clone() else {
            self.fetch_record(now, node, dht);
            return; // the client retransmits; by then the record may be here
        };
        match self.clients.get_mut(&mac) {
            None => return,
            Some(c) if c.acquiring => return,
            Some(c) if c.tries >= self.config.max_tries => {
                self.stats.dhcp_failures += 1;
                c.tries = 0;
                return;
            }
            Some(_) => {}
        }
        let Some(ip) = self.free_host(&record) else {
            // Every assignable address is held here: no offer (the client retries).
            self.stats.dhcp_exhausted += 1;
            return;
        };
        let password = self.new_password();
        let value = self
            .config
            .namespace
            .mapping(&mut self.rng, ip, node.address());
        let key = self.config.namespace.ip_key(ip);
        let Some(client) = self.clients.get_mut(&mac) else {
            return;
        };
        if let Ok(id) = dht.create(now, node, &key, &password, &value, record.lease) {
            client.acquiring = true;
            client.tries += 1;
            self.ops.insert(id, Purpose::Create { mac, ip, password });
        }
    }

    /// Drops the held addresses the namespace's range does not let a node hold (a
    /// static address set to the virtual gateway, say), before they are registered.
    pub(super) fn refuse_unassignable(&mut self) {
        let Some(range) = self.record.as_ref().map(|r| r.range) else {
            return;
        };
        let refused: Vec<(Ipv4Addr, String)> = self
            .leases
            .keys()
            .filter_map(|ip| range.why_not_assignable(*ip).map(|why| (*ip, why)))
            .collect();
        for (ip, reason) in refused {
            self.leases.remove(&ip);
            self.stats.refused_addresses += 1;
            self.events.push_back(Event::AddressRefused { ip, reason });
        }
    }

    /// A password for a new lease: 16 bytes from the cryptographically seeded generator.
    pub(super) fn new_password(&mut self) -> Vec<u8> {
        let mut password = vec![0u8; 16];
        self.rng.fill_bytes(&mut password);
        password
    }

    /// An assignable address of the namespace this node does not hold: a few random
    /// picks, then the next free one after a random start, None if it holds them all.
    /// (The random picks keep nodes from racing for the same addresses; the scan
    /// bounds the search, which used to loop forever when every address was held.)
    fn free_host(&mut self, record: &NamespaceRecord) -> Option<Ipv4Addr> {
        let range = record.range;
        let held = self
            .leases
            .keys()
            .filter(|ip| range.is_assignable(**ip))
            .count();
        if u64::try_from(held).unwrap_or(u64::MAX) >= u64::from(range.assignable()) {
            return None;
        }
        for _ in 0..RANDOM_PICKS {
            let ip = range.random_host(&mut self.rng);
            if !self.leases.contains_key(&ip) {
                return Some(ip);
            }
        }
        // At most `held` addresses in a row are taken, so this ends within `held + 1`.
        let first = u32::from(range.random_host(&mut self.rng));
        let hosts = u32::from(range.network) + 2..=u32::from(range.broadcast()) - 1;
        (first..=*hosts.end())
            .chain(*hosts.start()..first)
            .map(Ipv4Addr::from)
            .find(|ip| !self.leases.contains_key(ip))
    }

    fn release(&mut self, now: Instant, node: &mut Node, dht: &mut Dht, ip: Ipv4Addr) {
        if let Some(lease) = self.leases.remove(&ip) {
            let key = self.config.namespace.ip_key(ip);
            if let Ok(id) = dht.delete(now, node, &key, &lease.password) {
                self.ops.insert(id, Purpose::Release);
            }
            self.events.push_back(Event::LeaseLost { ip });
        }
    }

    pub(super) fn fetch_record(&mut self, now: Instant, node: &mut Node, dht: &mut Dht) {
        if self.record_fetch.is_some() || now < self.record_retry_at {
            return;
        }
        let key = self.config.namespace.record_key();
        if let Ok(id) = dht.get(now, node, &key) {
            self.record_fetch = Some(id);
            self.ops.insert(id, Purpose::Record);
        }
    }

    /// Renews leases at half their time, keeps the namespace record alive, re-registers
    /// restored leases (not in hash mode, which has no leases in the DHT), and fetches
    /// the record when it is missing.
    pub(super) fn maintain(&mut self, now: Instant, node: &mut Node, dht: &mut Dht) {
        let Some(record) = self.record.clone() else {
            self.fetch_record(now, node, dht);
            return;
        };
        let due: Vec<Ipv4Addr> = match self.config.mapping {
            Mapping::Hash => Vec::new(),
            Mapping::Dht => self
                .leases
                .iter()
                .filter(|(_, l)| l.renewing.is_none() && now >= l.renew_at)
                .map(|(ip, _)| *ip)
                .collect(),
        };
        for ip in due {
            let key = self.config.namespace.ip_key(ip);
            let value = self
                .config
                .namespace
                .mapping(&mut self.rng, ip, node.address());
            let Some(lease) = self.leases.get_mut(&ip) else {
                continue;
            };
            if let Ok(id) = dht.recreate(
                now,
                node,
                &key,
                &lease.password,
                &lease.password,
                &value,
                record.lease,
            ) {
                lease.renewing = Some(id);
                self.ops.insert(id, Purpose::Renew { ip });
            }
        }
        if now >= self.record_renew_at {
            self.record_renew_at = now + RECORD_RENEW;
            let pw = self.config.namespace.record_password();
            let key = self.config.namespace.record_key();
            let stored = self.config.namespace.seal_record(&mut self.rng, &record);
            if let Ok(id) = dht.recreate(now, node, &key, &pw, &pw, &stored, RECORD_TTL) {
                self.ops.insert(id, Purpose::RecordRenew);
            }
        }
    }

    /// A DHT operation of the lease machinery finished.
    pub(super) fn lease_result(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        purpose: Purpose,
        result: Result<Outcome, DhtError>,
    ) {
        match purpose {
            Purpose::Record => self.record_result(now, node, dht, result),
            Purpose::Create { mac, ip, password } => {
                self.create_result(now, node, dht, (mac, ip, password), result);
            }
            Purpose::Renew { ip } => self.renew_result(now, ip, result),
            Purpose::Release | Purpose::RecordRenew | Purpose::Resolve => {}
        }
    }

    /// The namespace record was read (or not): used if it opens, else asked for again
    /// later and the namespace reported unusable.
    fn record_result(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        result: Result<Outcome, DhtError>,
    ) {
        self.record_fetch = None;
        match result {
            Ok(Outcome::Values(v)) if !v.is_empty() => {
                match self.config.namespace.open_record(&v[0]) {
                    Ok(r) => self.record_read(now, node, dht, r),
                    Err(e) => {
                        // Someone wrote a bad record (or it was damaged): it is not used,
                        // and asked for again later rather than at once.
                        self.stats.refused_records += 1;
                        self.record_retry_at = now + RECORD_RETRY;
                        self.events
                            .push_back(Event::NamespaceUnusable(e.to_string()));
                    }
                }
            }
            _ => {
                self.record_retry_at = now + RECORD_RETRY;
                self.events.push_back(Event::NamespaceUnusable(format!(
                    "namespace {} not found in the DHT",
                    self.config.namespace.id()
                )));
            }
        }
    }

    /// Takes the namespace `record` read from the DHT; the clients waiting for it get an
    /// address now.
    fn record_read(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        record: NamespaceRecord,
    ) {
        self.record = Some(record);
        self.timeline.record.get_or_insert(now);
        self.refuse_unassignable();
        self.record_renew_at = now + RECORD_RENEW;
        let waiting: Vec<[u8; 6]> = self
            .clients
            .iter()
            .filter(|(_, c)| c.last.kind == MessageType::Discover)
            .map(|(m, _)| *m)
            .collect();
        for mac in waiting {
            match self.config.mapping {
                Mapping::Dht => self.acquire(now, node, dht, mac),
                Mapping::Hash => {
                    if let Some(ip) = self.own_address(node, mac) {
                        self.answer(now, mac, Answer::Offer(ip));
                    }
                }
            }
        }
    }

    /// The create of the lease on `ip` for the client `mac` (with `password`) ended:
    /// the client is offered `ip`, or another address is tried.
    fn create_result(
        &mut self,
        now: Instant,
        node: &mut Node,
        dht: &mut Dht,
        (mac, ip, password): ([u8; 6], Ipv4Addr, Vec<u8>),
        result: Result<Outcome, DhtError>,
    ) {
        let Some(client) = self.clients.get_mut(&mac) else {
            return;
        };
        client.acquiring = false;
        if result == Ok(Outcome::Created) {
            self.stats.last_dhcp_tries = client.tries;
            client.tries = 0;
            let lease_time = self
                .record
                .as_ref()
                .map_or(Duration::from_secs(3600), |r| r.lease);
            self.leases
                .insert(ip, Lease::new(Some(mac), password.clone(), now, lease_time));
            self.events.push_back(Event::LeaseAcquired {
                ip,
                mac: Some(mac),
                password,
            });
            self.answer(now, mac, Answer::Offer(ip));
        } else {
            // Taken (or no majority): try another address.
            self.acquire(now, node, dht, mac);
        }
    }

    /// The renewal of the lease on `ip` ended: the lease runs on, is lost to another
    /// holder, or is renewed again soon.
    fn renew_result(&mut self, now: Instant, ip: Ipv4Addr, result: Result<Outcome, DhtError>) {
        let lease_time = self
            .record
            .as_ref()
            .map_or(Duration::from_secs(3600), |r| r.lease);
        let Some(lease) = self.leases.get_mut(&ip) else {
            return;
        };
        lease.renewing = None;
        match result {
            Ok(_) => lease.renewed(now, lease_time),
            Err(DhtError::BadPassword) => {
                // Someone else holds this address now.
                self.leases.remove(&ip);
                self.events.push_back(Event::LeaseLost { ip });
            }
            // Try again soon.
            Err(_) => lease.renew_at = now + Duration::from_secs(5),
        }
    }
}
