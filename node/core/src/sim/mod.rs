//! A deterministic simulator that runs many [`Node`]s in virtual time.
//!
//! Datagrams travel through a simulated network with a per-pair latency drawn from a
//! distribution, optional per-packet jitter, and loss. Nodes can be started, crashed
//! (they vanish without a word) or made to leave gracefully at any virtual time. All
//! randomness comes from one seeded generator and no hash map is ever iterated, so the
//! same seed gives the same run, event for event.

mod dht_check;
mod frames;
mod nat;
mod queue;
mod scenario;
mod sessions;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, RngExt, SeedableRng};

pub use crate::NatProfile;
pub use dht_check::DhtReport;
pub use frames::host_udp_frame;
pub use nat::{NatMix, NatMixError};
pub use scenario::{Phase, Report, Scenario, describe_ring_errors, percentile};
pub use sessions::{SessionDist, SessionDistError, SessionReport, SessionSample, Sessions};

use crate::address::Address;
use crate::dht::{self, Dht, DhtError, Outcome, RequestId, WallClock};

use crate::overlay::{Config, Event, Handled, Node};
use crate::stack::Stack;
use crate::transport::TransportAddr;
use crate::wire::RoutedHeader;

/// The simulated underlay network.
#[derive(Debug, Clone, Copy)]
pub struct Network {
    /// Mean one-way latency; each pair of nodes gets a fixed latency drawn uniformly
    /// from `[latency/2, 3·latency/2]`.
    pub latency: Duration,
    /// Extra per-packet delay drawn uniformly from `[0, jitter)` (reorders packets).
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency: Duration::from_millis(20),
            jitter: Duration::ZERO,
            loss: 0.0,
        }
    }
}

/// Counters of the simulated network.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams lost to the loss setting.
    pub lost: u64,
    /// Datagrams addressed to a crashed, departed or unknown node.
    pub undeliverable: u64,
    /// Datagrams dropped between a blocked pair of nodes, or larger than a link carries.
    pub blocked: u64,
    /// Datagrams a NAT did not let in (or, symmetric, had no port left for).
    pub filtered: u64,
}

/// A simulated node and its bookkeeping.
#[derive(Debug)]
pub struct SimNode {
    /// The node's protocol layers.
    pub stack: Stack,
    /// Its transport address on the simulated network.
    pub transport: TransportAddr,
    /// Started and neither crashed nor departed.
    pub alive: bool,
    /// When it was started.
    pub started: Option<Instant>,
    /// When it first became correctly connected.
    pub connected_at: Option<Instant>,
    timer: Option<Instant>,
    /// The NAT in front of it, if any (its transport is then a private address).
    nat: Option<Box<nat::Nat>>,
}

impl SimNode {
    /// How the node is attached to the network.
    pub fn nat_profile(&self) -> NatProfile {
        self.nat.as_ref().map_or(NatProfile::None, |n| n.profile())
    }
}

/// A scheduled event; nodes are named by index (`u32` keeps queue entries small).
#[derive(Debug)]
enum Pending {
    /// `port`: the public port it left from (its NAT's, or [`SIM_PORT`]).
    Packet {
        to: u32,
        from: u32,
        port: u16,
        data: Vec<u8>,
    },
    Timer {
        node: u32,
    },
}

/// The first address of the simulated nodes: node `i` has 198.18.0.0 + `i` + 1, port
/// [`SIM_PORT`] (198.18.0.0/15 holds 131 072 hosts). A node behind a NAT has that
/// address on its NAT's outside, and [`PRIVATE_NET`] + `i` + 1 on its own socket, which
/// no other node can reach.
const SIM_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const PRIVATE_NET: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 0);
const SIM_PORT: u16 = nat::PUBLIC_PORT;

/// A finished DHT operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtResult {
    /// The node that asked.
    pub node: usize,
    /// The operation.
    pub id: RequestId,
    /// Its result.
    pub result: Result<Outcome, DhtError>,
    /// When it finished.
    pub at: Instant,
}

/// Something a node reported that the simulation keeps for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Index of the node.
    pub node: usize,
    /// What happened.
    pub event: Event,
    /// When (virtual time).
    pub at: Instant,
}

/// The simulator.
#[derive(Debug)]
pub struct Sim {
    base: Instant,
    now: Instant,
    seed: u64,
    rng: Xoshiro256PlusPlus,
    net: Network,
    config: Config,
    dht_config: dht::Config,
    queue: queue::EventQueue<Pending>,
    nodes: Vec<SimNode>,
    observed: Vec<Observed>,
    deliveries: Vec<(usize, RoutedHeader, Vec<u8>)>,
    dht_results: Vec<DhtResult>,
    tap_frames: Vec<(usize, Vec<u8>)>,
    ipop_events: Vec<(usize, crate::ipop::Event)>,
    blocked: std::collections::BTreeSet<(usize, usize)>,
    /// Nodes whose link carries datagrams of at most so many bytes (larger ones, both
    /// ways, are dropped silently, as by a path that filters ICMP).
    narrow: std::collections::BTreeMap<usize, usize>,
    nat_mix: Option<NatMix>,
    stats: NetStats,
    events: u64,
}

impl Sim {
    /// An empty simulation.
    pub fn new(seed: u64, net: Network, config: Config) -> Self {
        let base = Instant::now();
        Sim {
            base,
            now: base,
            seed,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            net,
            config,
            dht_config: dht::Config::default(),
            queue: queue::EventQueue::default(),
            nodes: Vec::new(),
            observed: Vec::new(),
            deliveries: Vec::new(),
            dht_results: Vec::new(),
            tap_frames: Vec::new(),
            ipop_events: Vec::new(),
            blocked: std::collections::BTreeSet::new(),
            narrow: std::collections::BTreeMap::new(),
            nat_mix: None,
            stats: NetStats::default(),
            events: 0,
        }
    }

    /// Drops every datagram between nodes `a` and `b` (as between two symmetric NATs):
    /// they can only talk through a third node.
    pub fn block_pair(&mut self, a: usize, b: usize) {
        self.blocked.insert((a.min(b), a.max(b)));
    }

    /// Node `i`'s link carries datagrams of at most `bytes` from now on (larger ones are
    /// dropped, silently, both ways).
    pub fn set_link_mtu(&mut self, i: usize, bytes: usize) {
        self.narrow.insert(i, bytes);
    }

    /// Lets nodes `a` and `b` exchange datagrams again.
    pub fn unblock_pair(&mut self, a: usize, b: usize) {
        self.blocked.remove(&(a.min(b), a.max(b)));
    }

    /// Puts nodes added from now on by [`Sim::add_node`] behind NATs drawn from `mix`
    /// (`None`: public addresses).
    pub fn set_nat_mix(&mut self, mix: Option<NatMix>) {
        self.nat_mix = mix;
    }

    /// Sets the DHT parameters of nodes added from now on.
    pub fn set_dht_config(&mut self, config: dht::Config) {
        self.dht_config = config;
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time elapsed since the simulation began.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// The instant `d` after the simulation began.
    pub fn at(&self, d: Duration) -> Instant {
        self.base + d
    }

    /// The network counters.
    pub fn net_stats(&self) -> NetStats {
        self.stats
    }

    /// The simulation's random generator (for scenario choices).
    pub fn rng(&mut self) -> &mut Xoshiro256PlusPlus {
        &mut self.rng
    }

    /// All nodes ever added.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, i: usize) -> &SimNode {
        &self.nodes[i]
    }

    /// Node `x`'s connection to node `y`, if it has one.
    pub fn connection(&self, x: usize, y: usize) -> Option<&crate::overlay::Connection> {
        let peer = self.nodes[y].stack.node.address();
        self.nodes[x]
            .stack
            .node
            .connections()
            .find(|c| c.peer == peer)
    }

    /// One node's overlay, mutably (to call its API, e.g. to send).
    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i].stack.node
    }

    /// Makes room for `additional` more nodes at once (a node is ~3.5 KiB; letting the
    /// vector double would leave up to half of that unused at 100 000 nodes).
    pub fn reserve_nodes(&mut self, additional: usize) {
        self.nodes.reserve_exact(additional);
    }

    /// Adds a node with a random address (not started yet), behind a NAT if a mix is
    /// set; returns its index.
    pub fn add_node(&mut self) -> usize {
        let address = Address::random(&mut self.rng);
        let profile = match &self.nat_mix {
            Some(mix) => mix.sample(&mut self.rng),
            None => NatProfile::None,
        };
        self.add(address, profile)
    }

    /// Adds a node with the given address (not started yet); returns its index.
    pub fn add_node_with_address(&mut self, address: Address) -> usize {
        self.add(address, NatProfile::None)
    }

    /// Adds a node with a random address behind a NAT of `profile` (not started yet);
    /// returns its index.
    pub fn add_node_behind(&mut self, profile: NatProfile) -> usize {
        let address = Address::random(&mut self.rng);
        self.add(address, profile)
    }

    fn add(&mut self, address: Address, profile: NatProfile) -> usize {
        let i = self.nodes.len();
        let host = u32::try_from(i).expect("fewer than 2^32 nodes") + 1;
        let (net, nat) = match profile {
            NatProfile::None => (SIM_NET, None),
            p => (PRIVATE_NET, Some(Box::new(nat::Nat::new(p)))),
        };
        let ip = Ipv4Addr::from(u32::from(net) + host);
        let transport = TransportAddr::udp(SocketAddr::new(ip.into(), SIM_PORT));
        let seed = self.seed ^ self.rng.next_u64();
        let mut stack = Stack::new(
            self.config.clone(),
            self.dht_config.clone(),
            address,
            seed,
            self.now,
            WallClock::fixed(self.base),
        );
        stack.node.add_local_transport(transport);
        self.nodes.push(SimNode {
            stack,
            transport,
            alive: false,
            started: None,
            connected_at: None,
            timer: None,
            nat,
        });
        debug_assert!(profile != NatProfile::None || self.index_of(transport.addr) == Some(i));
        i
    }

    /// Starts node `i` now, bootstrapping from `bootstrap`.
    pub fn start(&mut self, i: usize, bootstrap: &[TransportAddr]) {
        let now = self.now;
        let n = &mut self.nodes[i];
        n.alive = true;
        n.started = Some(now);
        n.stack.node.join(now, bootstrap);
        self.drain(i);
    }

    /// Crashes node `i`: it stops at once and tells nobody.
    pub fn crash(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.alive = false;
        n.timer = None;
    }

    /// Node `i` leaves gracefully (its Close messages still go out).
    pub fn leave(&mut self, i: usize) {
        self.nodes[i].stack.node.leave();
        self.drain(i);
        self.nodes[i].alive = false;
        self.nodes[i].timer = None;
    }

    /// Calls `f` on node `i` with the current time (e.g. to send something), then moves what it queued onto
    /// the network.
    pub fn act<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant) -> R) -> R {
        let r = f(&mut self.nodes[i].stack.node, self.now);
        self.drain(i);
        r
    }

    /// Calls `f` on node `i`'s DHT layer (e.g. to start an operation), then moves what
    /// it queued onto the network.
    pub fn act_dht<R>(&mut self, i: usize, f: impl FnOnce(&mut Dht, &mut Node, Instant) -> R) -> R {
        let now = self.now;
        let r = self.nodes[i].stack.dht_op(now, |d, n| f(d, n, now));
        self.drain(i);
        r
    }

    /// Gives node `i` a virtual network interface (the IPOP layer).
    pub fn enable_ipop(&mut self, i: usize, config: crate::ipop::Config) {
        let now = self.now;
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        self.nodes[i].stack.enable_ipop(config, seed, now);
    }

    /// Node `i`'s IPOP layer (panics if it has none).
    pub fn node_ipop(&mut self, i: usize) -> &mut crate::ipop::Ipop {
        self.nodes[i]
            .stack
            .ipop
            .as_mut()
            .expect("IPOP enabled on this node")
    }

    /// Node `i`'s host writes `frame` to its TAP.
    pub fn tap_write(&mut self, i: usize, frame: &[u8]) {
        let now = self.now;
        self.nodes[i].stack.handle_tap_frame(now, frame);
        self.drain(i);
    }

    /// Takes the frames nodes wrote to their TAPs since the last call.
    pub fn take_tap_frames(&mut self) -> Vec<(usize, Vec<u8>)> {
        std::mem::take(&mut self.tap_frames)
    }

    /// Takes the IPOP events since the last call.
    pub fn take_ipop_events(&mut self) -> Vec<(usize, crate::ipop::Event)> {
        std::mem::take(&mut self.ipop_events)
    }

    /// Takes the DHT results since the last call.
    pub fn take_dht_results(&mut self) -> Vec<DhtResult> {
        std::mem::take(&mut self.dht_results)
    }

    /// Takes the events nodes reported since the last call.
    pub fn take_observed(&mut self) -> Vec<Observed> {
        std::mem::take(&mut self.observed)
    }

    /// Takes the routed messages delivered to the layer above since the last call.
    pub fn take_deliveries(&mut self) -> Vec<(usize, RoutedHeader, Vec<u8>)> {
        std::mem::take(&mut self.deliveries)
    }

    /// Processes every scheduled event up to and including `until`, then sets the clock
    /// to `until`.
    pub fn run_until(&mut self, until: Instant) {
        let limit = self.nanos(until.max(self.base));
        while let Some((at_ns, what)) = self.queue.pop_until(limit) {
            self.events += 1;
            let at = self.base + Duration::from_nanos(at_ns);
            self.now = self.now.max(at);
            match what {
                Pending::Packet {
                    to,
                    from,
                    port,
                    data,
                } => {
                    self.deliver_packet(to as usize, from as usize, port, data);
                }
                Pending::Timer { node } => {
                    let node = node as usize;
                    let n = &mut self.nodes[node];
                    if n.alive && n.timer == Some(at) {
                        n.timer = None;
                        n.stack.handle_timeout(self.now);
                        self.drain(node);
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Events (datagrams in flight and timers, some of them stale) waiting in the queue.
    pub fn pending_events(&self) -> usize {
        self.queue.len()
    }

    /// Events taken from the queue so far: datagram arrivals and timer expiries (stale
    /// timers, superseded by an earlier one, included).
    pub fn events_processed(&self) -> u64 {
        self.events
    }

    /// Nanoseconds from the simulation's beginning to `t` (not before it).
    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from((t - self.base).as_nanos()).expect("virtual time below 584 years")
    }

    /// The node with transport address `addr`, if any (nodes behind NATs aside).
    fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        let SocketAddr::V4(a) = addr else {
            return None;
        };
        let i = self.index_of_ip(*a.ip())?;
        (a.port() == SIM_PORT && self.nodes[i].nat.is_none()).then_some(i)
    }

    /// The node whose public address (its own, or its NAT's) is `ip`.
    fn index_of_ip(&self, ip: Ipv4Addr) -> Option<usize> {
        let host = u32::from(ip).checked_sub(u32::from(SIM_NET))?;
        let i = usize::try_from(host.checked_sub(1)?).ok()?;
        (i < self.nodes.len()).then_some(i)
    }

    /// Node `i`'s public address when it sends from public port `port`.
    fn public_addr(i: usize, port: u16) -> SocketAddrV4 {
        let host = u32::try_from(i).expect("fewer than 2^32 nodes") + 1;
        SocketAddrV4::new(Ipv4Addr::from(u32::from(SIM_NET) + host), port)
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn deliver_packet(&mut self, to: usize, from: usize, port: u16, mut data: Vec<u8>) {
        if !self.nodes[to].alive {
            self.stats.undeliverable += 1;
            return;
        }
        let now = self.now;
        let from = match self.nodes[from].nat {
            None => self.nodes[from].transport,
            Some(_) => TransportAddr::udp(Self::public_addr(from, port).into()),
        };
        match self.nodes[to].stack.handle_datagram(now, from, &mut data) {
            Handled::Forward(t) => {
                data.truncate(t.len);
                self.send(to, t.dst, data);
            }
            Handled::Deliver(d) => {
                self.deliveries
                    .push((to, d.header, data[d.payload].to_vec()));
            }
            Handled::Done => {}
        }
        self.drain(to);
    }

    /// Moves a node's queued datagrams onto the network, keeps its events, and
    /// re-arms its timer.
    fn drain(&mut self, i: usize) {
        let now = self.now;
        loop {
            // An empty buffer: the node's outbox keeps no allocation in exchange for the
            // datagram (up to 64 per node, it would hold tens of KiB per node once the
            // buffers of a large simulation have spread over its nodes).
            let mut buf = Vec::new();
            let Some(dst) = self.nodes[i].stack.poll_transmit(&mut buf) else {
                break;
            };
            self.send(i, dst, buf);
        }
        let n = &mut self.nodes[i];
        let mut frame = Vec::new();
        while n.stack.poll_tap(&mut frame) {
            self.tap_frames.push((i, std::mem::take(&mut frame)));
        }
        while let Some(e) = n.stack.poll_ipop_event() {
            self.ipop_events.push((i, e));
        }
        while let Some((header, payload)) = n.stack.poll_delivery() {
            self.deliveries.push((i, header, payload));
        }
        while let Some(event) = n.stack.poll_event() {
            if event == Event::CorrectlyConnected && n.connected_at.is_none() {
                n.connected_at = Some(now);
            }
            self.observed.push(Observed {
                node: i,
                event,
                at: now,
            });
        }
        while let Some((id, result)) = n.stack.poll_dht_result() {
            self.dht_results.push(DhtResult {
                node: i,
                id,
                result,
                at: now,
            });
        }
        if !n.alive {
            return;
        }
        if let Some(t) = n.stack.poll_timeout() {
            let t = t.max(now);
            if n.timer.is_none_or(|cur| t < cur) {
                n.timer = Some(t);
                let at = self.nanos(t);
                self.queue.push(at, Pending::Timer { node: i as u32 });
            }
        }
    }

    /// Puts a datagram from node `from` to `dst` on the network.
    fn send(&mut self, from: usize, dst: TransportAddr, data: Vec<u8>) {
        self.stats.sent += 1;
        let SocketAddr::V4(dst) = dst.addr else {
            self.stats.undeliverable += 1;
            return;
        };
        let Some(to) = self.index_of_ip(*dst.ip()) else {
            self.stats.undeliverable += 1;
            return;
        };
        let port = match &mut self.nodes[from].nat {
            None => SIM_PORT,
            Some(nat) => match nat.outbound(dst) {
                Some(port) => port,
                None => {
                    self.stats.filtered += 1;
                    return;
                }
            },
        };
        match &self.nodes[to].nat {
            None if dst.port() != SIM_PORT => {
                self.stats.undeliverable += 1;
                return;
            }
            Some(nat) if !nat.inbound(dst.port(), Self::public_addr(from, port)) => {
                self.stats.filtered += 1;
                return;
            }
            _ => {}
        }
        if self.net.loss > 0.0 && self.rng.random_bool(self.net.loss) {
            self.stats.lost += 1;
            return;
        }
        let narrow = |i| self.narrow.get(&i).copied().unwrap_or(usize::MAX);
        let too_big = !self.narrow.is_empty() && data.len() > narrow(from).min(narrow(to));
        if too_big
            || !self.blocked.is_empty() && self.blocked.contains(&(from.min(to), from.max(to)))
        {
            self.stats.blocked += 1;
            return;
        }
        let delay = self.latency(from, to) + self.jitter();
        let at = self.nanos(self.now + delay);
        self.queue.push(
            at,
            Pending::Packet {
                to: to as u32,
                from: from as u32,
                port,
                data,
            },
        );
    }

    /// The fixed one-way underlay latency between nodes `a` and `b` (jitter aside),
    /// from a hash of the pair and seed.
    pub fn latency(&self, a: usize, b: usize) -> Duration {
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let h = splitmix64(self.seed ^ splitmix64(lo << 32 | hi));
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        self.net.latency.mul_f64(0.5 + u)
    }

    fn jitter(&mut self) -> Duration {
        if self.net.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.net.jitter.mul_f64(self.rng.random_range(0.0..1.0))
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_back_to_nodes_and_events_are_counted() {
        let mut sim = Sim::new(3, Network::default(), Config::default());
        let a = sim.add_node();
        let b = sim.add_node();
        assert_eq!(sim.index_of(sim.node(b).transport.addr), Some(b));
        let outside = SocketAddr::new(Ipv4Addr::new(198, 18, 0, 3).into(), SIM_PORT);
        assert_eq!(sim.index_of(outside), None, "no third node yet");
        let other_port = SocketAddr::new(Ipv4Addr::new(198, 18, 0, 1).into(), 4001);
        assert_eq!(sim.index_of(other_port), None);

        let bootstrap = [sim.node(a).transport];
        sim.start(a, &[]);
        sim.start(b, &bootstrap);
        assert!(
            sim.pending_events() > 0,
            "a link request and timers are queued"
        );
        assert_eq!(sim.events_processed(), 0);
        sim.run_for(Duration::from_secs(5));
        assert!(sim.node(b).stack.node.connections().count() > 0);
        // Nothing is lost: every datagram sent has arrived or is still in flight, and
        // timers come on top.
        let sent = sim.net_stats().sent;
        assert!(sent > 0);
        assert!(sim.events_processed() + sim.pending_events() as u64 > sent);
    }
}
