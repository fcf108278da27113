//! A standard simulation scenario: N nodes join at a steady rate, the overlay settles,
//! the ring and routing are checked; then optional churn (crashes, graceful leaves,
//! joins at random times, then churn from session times: see `sessions`) and the same
//! checks again. `ipop-sim` and the simulation tests both run this.

use std::time::Duration;

use rand::RngExt;

use super::dht_check::{self, DhtReport, Key};
use super::sessions::{self, SessionReport, Sessions};
use super::{NatMix, Network, Sim};
use crate::dht;
use crate::overlay::{Config, Event};
use crate::transport::TransportAddr;
use crate::wire::Roles;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Nodes that join at the start.
    pub nodes: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// The simulated underlay.
    pub network: Network,
    /// Protocol parameters of every node.
    pub config: Config,
    /// The first nodes serve as bootstrap nodes for all others; each joining node is
    /// given [`BOOTSTRAP_LIST`] of them, drawn at random.
    pub bootstrap_nodes: usize,
    /// Nodes started per virtual second.
    pub join_rate: f64,
    /// Longest virtual time to wait for the overlay to settle after joins or churn.
    pub settle: Duration,
    /// Virtual time the settled overlay runs before routes are tested (far
    /// connections form after a node is correctly connected).
    pub warmup: Duration,
    /// Random exact-routed probes sent in each check.
    pub routes: usize,
    /// Fraction of nodes that crash during the churn window (bootstrap nodes excepted).
    pub crash: f64,
    /// Fraction of nodes that leave gracefully during the churn window.
    pub leave: f64,
    /// Fraction of `nodes` that join anew during the churn window.
    pub join: f64,
    /// Virtual time over which churn events are spread.
    pub churn_window: Duration,
    /// After the churn window: churn from session times (nodes come and go, the
    /// population stays), with DHT lookups sampled over time.
    pub sessions: Option<Sessions>,
    /// DHT keys created before churn and checked after it (0: no DHT checks).
    pub dht_keys: usize,
    /// DHT parameters of every node (must pass [`dht::Config::validate`]).
    pub dht: dht::Config,
    /// NATs in front of the nodes (the bootstrap nodes are public); `None`: none.
    pub nat_mix: Option<NatMix>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            nodes: 1000,
            seed: 1,
            network: Network::default(),
            config: Config::default(),
            bootstrap_nodes: 4,
            join_rate: 100.0,
            settle: Duration::from_secs(120),
            warmup: Duration::from_secs(15),
            routes: 10_000,
            crash: 0.0,
            leave: 0.0,
            join: 0.0,
            churn_window: Duration::from_secs(300),
            sessions: None,
            dht_keys: 0,
            dht: dht::Config::default(),
            nat_mix: None,
        }
    }
}

/// How many bootstrap nodes a joining node is given (as an operator lists a few).
pub(crate) const BOOTSTRAP_LIST: usize = 4;

/// The run's totals: virtual time, the network's datagrams and the nodes' refusals.
fn report_totals(sim: &Sim, report: &mut Report) {
    report.virtual_s = sim.elapsed().as_secs_f64();
    let net = sim.net_stats();
    report.datagrams = net.sent;
    report.lost = net.lost;
    report.filtered = net.filtered;
    report.events = sim.events_processed();
    for n in sim.nodes() {
        let stats = n.stack.node.stats();
        report.ctm_refused += stats.ctm_refused;
        report.link_attempts_refused += stats.link_attempts_refused;
        report.dht_refused_replicas += n.stack.dht.refused_replicas();
        report.dht_forged += n.stack.dht.forged();
        report.dht_misplaced += n.stack.dht.misplaced();
    }
}

impl Scenario {
    /// The default scenario for `nodes` nodes, its join schedule scaled so that the
    /// initial joins take about ten virtual seconds from 1 000 nodes on: `nodes / 10`
    /// joins per second (at least 100), through `nodes / 1 000` bootstrap nodes (at
    /// least 4). At a fixed 100 joins per second the join phase would last `nodes / 100`
    /// seconds, and the keepalives of the nodes already up, which grow with its length,
    /// would make the cost per node grow with the overlay's size.
    pub fn scaled(nodes: usize) -> Self {
        Scenario {
            nodes,
            join_rate: (nodes as f64 / 10.0).max(100.0),
            bootstrap_nodes: (nodes / 1000).max(4),
            ..Scenario::default()
        }
    }

    /// Crashes, leaves or joins at random times in the churn window.
    fn has_window_churn(&self) -> bool {
        self.crash > 0.0 || self.leave > 0.0 || self.join > 0.0
    }

    fn has_churn(&self) -> bool {
        self.has_window_churn() || self.sessions.is_some()
    }
}

/// The bootstrap nodes of a scenario.
pub(crate) struct Bootstrap(Vec<TransportAddr>);

impl Bootstrap {
    /// The list node `i` is given: all bootstrap nodes if there are at most
    /// [`BOOTSTRAP_LIST`]; else the first ones for a bootstrap node itself (a node tries
    /// its list in order, so they all start from the first one and form one ring, not
    /// several that never meet), and that many distinct ones at random for the others.
    pub(crate) fn pick(&self, sim: &mut Sim, i: usize) -> Vec<TransportAddr> {
        if self.0.len() <= BOOTSTRAP_LIST {
            return self.0.clone();
        }
        if i < self.0.len() {
            return self.0[..BOOTSTRAP_LIST].to_vec();
        }
        rand::seq::index::sample(sim.rng(), self.0.len(), BOOTSTRAP_LIST)
            .into_iter()
            .map(|i| self.0[i])
            .collect()
    }
}

/// The state of the overlay at one check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Phase {
    /// Nodes alive.
    pub live_nodes: usize,
    /// Live nodes that are correctly connected.
    pub correctly_connected: usize,
    /// Every live node's closest peers on each side are its true ring neighbours.
    pub ring_consistent: bool,
    /// Live nodes whose view of their ring neighbours is wrong.
    pub ring_errors: usize,
    /// Virtual seconds until the overlay settled (or the limit).
    pub settle_s: f64,
    /// Probes sent.
    pub routes_tried: usize,
    /// Probes that reached exactly their destination.
    pub routes_delivered: usize,
    /// Mean overlay hops of delivered probes.
    pub hops_mean: f64,
    /// 99th percentile of hops.
    pub hops_p99: f64,
    /// Largest hop count seen.
    pub hops_max: u8,
    /// Mean connections per live node.
    pub connections_mean: f64,
    /// Mean structured far connections (not also near) per live node.
    pub far_mean: f64,
    /// Mean estimate of the overlay size across live nodes.
    pub size_estimate_mean: f64,
    /// Share of the connections (counted at both ends) that run through a relay.
    pub relayed_fraction: f64,
    /// Stretch of delivered probes (their latency over the overlay route ÷ the direct
    /// underlay latency between the two nodes): mean.
    pub stretch_mean: f64,
    /// ... 99th percentile.
    pub stretch_p99: f64,
}

/// The outcome of a scenario.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Nodes that joined at the start.
    pub nodes: usize,
    /// Initial nodes that became correctly connected.
    pub joined: usize,
    /// Virtual seconds from a node's start to correctly connected: median.
    pub join_s_p50: f64,
    /// ... 99th percentile.
    pub join_s_p99: f64,
    /// ... slowest.
    pub join_s_max: f64,
    /// Checks after the joins.
    pub after_join: Phase,
    /// Checks after churn, if any.
    pub after_churn: Option<Phase>,
    /// Nodes crashed during churn.
    pub crashed: usize,
    /// Nodes that left gracefully during churn.
    pub left: usize,
    /// Nodes that joined during churn.
    pub joined_during_churn: usize,
    /// Virtual seconds simulated.
    pub virtual_s: f64,
    /// Datagrams sent over the simulated network.
    pub datagrams: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Datagrams NATs did not let in.
    pub filtered: u64,
    /// Events the simulator processed (datagram arrivals and timer expiries).
    pub events: u64,
    /// CTM requests nodes left unanswered under their rate limits, all nodes together.
    pub ctm_refused: u64,
    /// Link attempts not started because a node had too many under way.
    pub link_attempts_refused: u64,
    /// Copied DHT records refused (sender no ring neighbour, sub-key not held or not
    /// genuine).
    pub dht_refused_replicas: u64,
    /// DHT records whose owner's certificate did not certify them (must be 0: no node
    /// of the simulation forges).
    pub dht_forged: u64,
    /// Replies to DHT operations from a node too far from the key to hold it (must be
    /// 0: no node of the simulation answers in another's place).
    pub dht_misplaced: u64,
    /// The DHT checks, if any.
    pub dht: Option<DhtReport>,
    /// The session-churn phase, if any.
    pub sessions: Option<SessionReport>,
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100); 0 for no values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Scenario {
    /// Runs the scenario. `progress` is told the stage and how far along it is (0..=1).
    pub fn run(&self, progress: &mut dyn FnMut(&str, f64)) -> Report {
        let (mut sim, bootstrap) = self.build();
        self.join(&mut sim, &bootstrap, progress);
        let mut report = Report {
            nodes: self.nodes,
            ..Report::default()
        };
        let after_join = self.settle_and_check(&mut sim, 0, progress);
        self.report_joins(&sim, &mut report);
        let mut dht = DhtReport::default();
        let mut keys = Vec::new();
        if self.dht_keys > 0 {
            keys = self.populate_dht(&mut sim, &mut dht, progress);
        }
        if self.has_churn() {
            if self.has_window_churn() {
                self.churn(&mut sim, &bootstrap, &mut report, progress);
            }
            if let Some(s) = &self.sessions {
                let keep = self.bootstrap_nodes;
                report.sessions = Some(sessions::run(
                    &mut sim, s, keep, &bootstrap, &keys, progress,
                ));
            }
            report.after_churn = Some(self.settle_and_check(&mut sim, 1, progress));
        }
        if self.dht_keys > 0 {
            progress("dht", 0.5);
            dht_check::verify(&mut sim, &keys, &mut dht);
            report.dht = Some(dht);
        }
        report.after_join = after_join;
        report_totals(&sim, &mut report);
        report
    }

    /// The simulator with the scenario's nodes, not yet started (those after the
    /// bootstrap nodes behind the NAT mix), and the bootstrap nodes' transports.
    fn build(&self) -> (Sim, Bootstrap) {
        let mut sim = Sim::new(self.seed, self.network, self.config.clone());
        sim.set_dht_config(self.dht.clone());
        sim.reserve_nodes(self.nodes);
        let b = self.bootstrap_nodes.min(self.nodes);
        for i in 0..self.nodes {
            if i == b {
                sim.set_nat_mix(self.nat_mix.clone());
            }
            sim.add_node();
        }
        let bootstrap = Bootstrap((0..b).map(|i| sim.node(i).transport).collect());
        (sim, bootstrap)
    }

    /// Starts the nodes at `join_rate`, the others once the bootstrap nodes are
    /// connected.
    fn join(&self, sim: &mut Sim, bootstrap: &Bootstrap, progress: &mut dyn FnMut(&str, f64)) {
        let b = self.bootstrap_nodes.min(self.nodes);
        let mut first = sim.at(Duration::ZERO);
        for i in 0..self.nodes {
            if i == b && b >= 2 {
                first += self.await_bootstrap(sim, b);
            }
            let at = first + Duration::from_secs_f64(i as f64 / self.join_rate);
            sim.run_until(at);
            let list = bootstrap.pick(sim, i);
            sim.start(i, &list);
            // Nodes report a few events per second each; dropping them often keeps a
            // large simulation from holding millions.
            if i % 16 == 0 {
                sim.take_observed();
            }
            if i % 256 == 0 {
                progress("join", i as f64 / self.nodes as f64);
            }
        }
    }

    /// How many nodes became correctly connected, and how long that took them.
    fn report_joins(&self, sim: &Sim, report: &mut Report) {
        let mut join_s: Vec<f64> = sim.nodes()[..self.nodes]
            .iter()
            .filter_map(|n| Some((n.connected_at? - n.started?).as_secs_f64()))
            .collect();
        join_s.sort_by(f64::total_cmp);
        report.joined = join_s.len();
        report.join_s_p50 = percentile(&join_s, 50.0);
        report.join_s_p99 = percentile(&join_s, 99.0);
        report.join_s_max = join_s.last().copied().unwrap_or(0.0);
    }

    /// Races creates of one key, then writes `dht_keys` keys; returns those created.
    fn populate_dht(
        &self,
        sim: &mut Sim,
        dht: &mut DhtReport,
        progress: &mut dyn FnMut(&str, f64),
    ) -> Vec<Key> {
        progress("dht", 0.0);
        dht_check::race(sim, 50, 3, dht);
        // A fifth of the keys expire during churn, the rest outlive the run.
        let short = self.churn_window / 2 + Duration::from_secs(10);
        let (created, failures) = dht_check::populate(sim, self.dht_keys, short);
        dht.keys = self.dht_keys;
        dht.create_failures = failures;
        created
    }

    /// Runs until the first `b` nodes (the bootstrap nodes) are correctly connected,
    /// at most `settle`; returns how long that took. Others start only then: a
    /// bootstrap node that is not yet linked to the rest takes joiners as its first
    /// connections and stops bootstrapping itself, and forms a ring of its own that
    /// never meets the others.
    fn await_bootstrap(&self, sim: &mut Sim, b: usize) -> Duration {
        let start = sim.now();
        while sim.now() - start < self.settle
            && !(0..b).all(|j| sim.node(j).stack.node.is_correctly_connected())
        {
            sim.run_for(Duration::from_millis(100));
            sim.take_observed();
        }
        sim.now() - start
    }

    fn churn(
        &self,
        sim: &mut Sim,
        bootstrap: &Bootstrap,
        report: &mut Report,
        progress: &mut dyn FnMut(&str, f64),
    ) {
        #[derive(Clone, Copy)]
        enum Action {
            Crash(usize),
            Leave(usize),
            Join(usize),
        }
        let mut candidates: Vec<usize> = (self.bootstrap_nodes..sim.nodes().len())
            .filter(|&i| sim.node(i).alive)
            .collect();
        let n = self.nodes as f64;
        let crash = ((self.crash * n).round() as usize).min(candidates.len());
        let leave = ((self.leave * n).round() as usize).min(candidates.len() - crash);
        let join = (self.join * n).round() as usize;
        let mut actions: Vec<(Duration, Action)> = Vec::new();
        let window = self.churn_window.as_secs_f64();
        for k in 0..crash + leave {
            let pick = sim.rng().random_range(0..candidates.len());
            let victim = candidates.swap_remove(pick);
            let at = Duration::from_secs_f64(sim.rng().random_range(0.0..window));
            actions.push((
                at,
                if k < crash {
                    Action::Crash(victim)
                } else {
                    Action::Leave(victim)
                },
            ));
        }
        for _ in 0..join {
            let i = sim.add_node();
            let at = Duration::from_secs_f64(sim.rng().random_range(0.0..window));
            actions.push((at, Action::Join(i)));
        }
        actions.sort_by_key(|(at, _)| *at);
        let start = sim.now();
        let total = actions.len().max(1);
        for (k, (at, action)) in actions.into_iter().enumerate() {
            sim.run_until(start + at);
            match action {
                Action::Crash(i) => sim.crash(i),
                Action::Leave(i) => sim.leave(i),
                Action::Join(i) => {
                    let list = bootstrap.pick(sim, i);
                    sim.start(i, &list);
                }
            }
            if k % 64 == 0 {
                sim.take_observed();
                progress("churn", k as f64 / total as f64);
            }
        }
        sim.run_until(start + self.churn_window);
        report.crashed = crash;
        report.left = leave;
        report.joined_during_churn = join;
    }

    /// Runs until every live node is correctly connected and the ring is consistent
    /// (or the settle limit), then routes probes between random live nodes.
    fn settle_and_check(
        &self,
        sim: &mut Sim,
        round: u64,
        progress: &mut dyn FnMut(&str, f64),
    ) -> Phase {
        let start = sim.now();
        let step = Duration::from_millis(500);
        let mut phase = check_ring(sim);
        while sim.now() - start < self.settle {
            if phase.correctly_connected == phase.live_nodes && phase.ring_consistent {
                break;
            }
            sim.run_for(step);
            sim.take_observed();
            phase = check_ring(sim);
            progress(
                "settle",
                (sim.now() - start).as_secs_f64() / self.settle.as_secs_f64(),
            );
        }
        phase.settle_s = (sim.now() - start).as_secs_f64();
        let warm = sim.now() + self.warmup;
        while sim.now() < warm {
            sim.run_until(warm.min(sim.now() + step));
            sim.take_observed();
        }
        let settle_s = phase.settle_s;
        phase = check_ring(sim);
        phase.settle_s = settle_s;
        self.route_test(sim, round, &mut phase, progress);
        phase
    }

    fn route_test(
        &self,
        sim: &mut Sim,
        round: u64,
        phase: &mut Phase,
        progress: &mut dyn FnMut(&str, f64),
    ) {
        let live: Vec<usize> = (0..sim.nodes().len())
            .filter(|&i| sim.node(i).alive)
            .collect();
        if live.len() < 2 || self.routes == 0 {
            return;
        }
        let id_base = round << 40;
        // (destination, sent, source, when)
        let mut expected = Vec::with_capacity(self.routes);
        sim.take_observed();
        for k in 0..self.routes {
            let a = live[sim.rng().random_range(0..live.len())];
            let mut b = live[sim.rng().random_range(0..live.len())];
            while b == a {
                b = live[sim.rng().random_range(0..live.len())];
            }
            let dst = sim.node(b).stack.node.address();
            let sent = sim.act(a, |node, now| {
                node.send_probe(now, dst, id_base + k as u64, false)
            });
            expected.push((b, sent.is_ok(), a, sim.now()));
            if k % 100 == 99 {
                sim.run_for(Duration::from_millis(10));
                progress("routes", k as f64 / self.routes as f64);
            }
        }
        sim.run_for(Duration::from_secs(10));
        let mut hops: Vec<f64> = Vec::new();
        let mut stretch: Vec<f64> = Vec::new();
        let mut delivered = vec![false; expected.len()];
        for o in sim.take_observed() {
            if let Event::ProbeReceived { id, hops: h, .. } = o.event {
                let Some(k) = id.checked_sub(id_base).map(|k| k as usize) else {
                    continue;
                };
                let Some(&(b, _, a, sent)) = expected.get(k) else {
                    continue;
                };
                if b == o.node && !delivered[k] {
                    delivered[k] = true;
                    hops.push(f64::from(h));
                    phase.hops_max = phase.hops_max.max(h);
                    let direct = sim.latency(a, b).as_secs_f64();
                    stretch.push((o.at - sent).as_secs_f64() / direct);
                }
            }
        }
        hops.sort_by(f64::total_cmp);
        stretch.sort_by(f64::total_cmp);
        phase.stretch_mean = stretch.iter().sum::<f64>() / stretch.len().max(1) as f64;
        phase.stretch_p99 = percentile(&stretch, 99.0);
        phase.routes_tried = expected.len();
        phase.routes_delivered = hops.len();
        phase.hops_mean = if hops.is_empty() {
            0.0
        } else {
            hops.iter().sum::<f64>() / hops.len() as f64
        };
        phase.hops_p99 = percentile(&hops, 99.0);
    }
}

/// Lists live nodes whose view of their ring neighbours is wrong or that are not
/// correctly connected, with their view, the truth, and their connections (for failure
/// messages of tests).
pub fn describe_ring_errors(sim: &Sim, max: usize) -> String {
    use std::fmt::Write;
    let mut live: Vec<(crate::address::Address, usize)> = sim
        .nodes()
        .iter()
        .enumerate()
        .filter(|(_, n)| n.alive)
        .map(|(i, n)| (n.stack.node.address(), i))
        .collect();
    live.sort();
    let count = live.len();
    let mut out = String::new();
    let mut shown = 0;
    for (k, &(addr, i)) in live.iter().enumerate() {
        let node = &sim.node(i).stack.node;
        let truth = (live[(k + count - 1) % count].0, live[(k + 1) % count].0);
        let view = node.ring_neighbors();
        if view == (Some(truth.0), Some(truth.1)) && node.is_correctly_connected() {
            continue;
        }
        shown += 1;
        if shown > max {
            let _ = writeln!(out, "...");
            break;
        }
        let short = |a: Option<crate::address::Address>| a.map_or("-".to_owned(), |a| a.short());
        let _ = writeln!(
            out,
            "node {i} {} correct={} view ({}, {}) truth ({}, {})",
            addr.short(),
            node.is_correctly_connected(),
            short(view.0),
            short(view.1),
            truth.0.short(),
            truth.1.short()
        );
        for c in node.connections() {
            let list = |v: &[crate::address::Address]| {
                v.iter().map(|a| a.short()).collect::<Vec<_>>().join(",")
            };
            let _ = writeln!(
                out,
                "    {} roles {} peer {} left [{}] right [{}]",
                c.peer.short(),
                c.roles.names(),
                c.peer_roles.names(),
                list(&c.peer_left),
                list(&c.peer_right)
            );
        }
    }
    out
}

/// Compares every live node's view of its ring neighbours with the truth.
fn check_ring(sim: &Sim) -> Phase {
    let mut live: Vec<(crate::address::Address, usize)> = sim
        .nodes()
        .iter()
        .enumerate()
        .filter(|(_, n)| n.alive)
        .map(|(i, n)| (n.stack.node.address(), i))
        .collect();
    live.sort();
    let count = live.len();
    let mut errors = 0;
    let mut correct = 0;
    let (mut conns, mut far, mut relayed, mut size) = (0usize, 0usize, 0usize, 0.0);
    for (k, &(_, i)) in live.iter().enumerate() {
        let node = &sim.node(i).stack.node;
        conns += node.connections().count();
        relayed += node
            .connections()
            .filter(|c| matches!(c.edge, crate::overlay::Edge::Relay { .. }))
            .count();
        far += node
            .connections()
            .filter(|c| c.roles.contains(Roles::FAR) && !c.roles.contains(Roles::NEAR))
            .count();
        size += node.network_size_estimate();
        if node.is_correctly_connected() {
            correct += 1;
        }
        if count < 2 {
            continue;
        }
        let true_left = live[(k + count - 1) % count].0;
        let true_right = live[(k + 1) % count].0;
        if node.ring_neighbors() != (Some(true_left), Some(true_right)) {
            errors += 1;
        }
    }
    Phase {
        live_nodes: count,
        correctly_connected: correct,
        ring_consistent: errors == 0,
        ring_errors: errors,
        connections_mean: conns as f64 / count.max(1) as f64,
        far_mean: far as f64 / count.max(1) as f64,
        size_estimate_mean: size / count.max(1) as f64,
        relayed_fraction: relayed as f64 / conns.max(1) as f64,
        ..Phase::default()
    }
}
