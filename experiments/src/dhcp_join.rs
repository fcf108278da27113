//! `dhcp-join`: the WOW DHCP paper's experiment (section 6, Figs. 4–6). Desktop A holds a
//! virtual address for the whole run. Each trial starts a fresh node on desktop B (a new
//! P2P address; the leases of earlier trials stay in the DHT, as in the paper) and a
//! real `dhclient` on its TAP, waits for the address, pings A through the overlay, and
//! stops both. It records:
//!
//! - `t1_connected`: node start to correctly connected (the node's status socket; the
//!   paper's T1, Fig. 5);
//! - `t2_address`: node and `dhclient` start to an address bound on the TAP (T2, Fig. 4);
//! - `addresses_tried`: virtual addresses the node's DHCP server tried before one was
//!   free (status socket; Fig. 6);
//! - `first_ping`: address bound to the first echo reply from A (Brunet-ARP lookup and
//!   the first packets' overlay routes);
//! - `ping_rtt`: the median of 10 pings to A after that;
//! - where T2 goes, from node start (the node's status, `PHASES`): `t_link` to its first
//!   link, `t_record` to the namespace record read, `t_discover` to dhclient's first
//!   DISCOVER, `t_offer` to the address created in the DHT and offered, `t_ack` to the
//!   ACK (T2 ends when dhclient has bound the address after that).
//!
//! A and B are hosts 0 and 1 of the first site with two hosts; the subject leaves B free
//! ([`Experiment::overlay_needs`]).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipop_api::Status;
use serde_json::Value;
use wow_host::Host;
use wow_netns::Topology;
use wow_plots::Unit;

use crate::experiment::{
    Error, Experiment, ExperimentInfo, Metric, OverlayNeeds, PaperFigure, PlotSpec, Setup, Stat,
    TrialError, Trials, Values,
};
use crate::path::Path;
use crate::subject::{Flow, NodeKind, Overlay, SubjectKind, Target};
use crate::tools::{self, dhcp, ping};

/// How long B may take for its address.
const ADDRESS_TIMEOUT: Duration = Duration::from_secs(300);
/// How long after its address B may take to hear from A.
const PING_TIMEOUT: Duration = Duration::from_secs(60);
/// The phases of T2 the node's status times, each from node start: metric, what.
const PHASES: [(&str, &str); 5] = [
    ("t_link", "node start → first link (to a bootstrap node)"),
    (
        "t_record",
        "node start → namespace record read from the DHT",
    ),
    ("t_discover", "node start → dhclient's first DISCOVER"),
    (
        "t_offer",
        "node start → address created in the DHT and offered",
    ),
    ("t_ack", "node start → DHCP ACK"),
];

/// How long a stopping node may take to leave the overlay.
const LEAVE_GRACE: Duration = Duration::from_secs(2);

/// The paper's figures.
const PAPER: &str = "\
WOW DHCP paper (Ganguly et al., 2006), section 6: 250 trials, a bootstrap overlay of 100
P2P nodes on PlanetLab, a namespace of over 650 000 addresses with a 12 h lease; desktop B
starts IPOP and dhclient, waits for an address, pings desktop A, and is killed.

| figure | what | reported |
|---|---|---|
| Fig. 4 | T2: IPOP and dhclient start → address on tap | 90 % within 30 s; mean 20–30 s |
| Fig. 5 | T1: node start → correctly connected | a CDF; the text gives no number |
| Fig. 6 | addresses tried | mostly 1; a few trials more (lost P2P messages) |
";

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct DhcpJoin;

/// Desktops A and B: hosts 0 and 1 of the first site with two hosts.
fn desktops(topology: &Topology) -> Option<(String, String)> {
    let site = topology.sites.iter().find(|s| s.hosts >= 2)?;
    Some((format!("{}-0", site.name), format!("{}-1", site.name)))
}

/// What the experiment is.
const INFO: ExperimentInfo = ExperimentInfo {
    name: "dhcp-join",
    description: "fresh node + dhclient per trial: time to connect, to an address, addresses tried (WOW DHCP Figs. 4-6)",
    default_topology: "topologies/dhcp-join.toml",
    physical_topology: None,
    default_trials: 250,
    subjects: &[SubjectKind::Ipop],
    workload_options: &[],
    paper_table: PAPER,
};

impl Experiment for DhcpJoin {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn overlay_needs(&self, topology: &Topology) -> OverlayNeeds {
        OverlayNeeds {
            reserved: desktops(topology).map(|(_, b)| b).into_iter().collect(),
            ..OverlayNeeds::default()
        }
    }

    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error> {
        let (a, b) = desktops(setup.topology).ok_or_else(|| Error::Topology {
            topology: setup.topology.name.clone(),
            reason: "dhcp-join needs a site with two hosts (desktops A and B)".into(),
        })?;
        let overlay = setup.subject.overlay().ok_or_else(|| Error::NoPath {
            subject: setup.subject.kind(),
            tried: vec!["dhcp-join needs an overlay subject".into()],
        })?;
        let (host_a, host_b) = (setup.hosts.get(&a)?, setup.hosts.get(&b)?);
        let address_a =
            dhcp::address_of(host_a, overlay.tap()).ok_or_else(|| Error::Preflight {
                path: format!("{b} → {a}"),
                reason: format!("{a} has no virtual address on {}", overlay.tap()),
            })?;
        let path = Path {
            from: b.clone(),
            to: a.clone(),
            flow: Flow::Icmp,
            target: Target {
                node: a,
                address: address_a,
                note: None,
            },
            wan: !setup.topology.wans.is_empty(),
            skipped: Vec::new(),
        };
        Ok(Box::new(Run {
            overlay,
            a: host_a,
            b: host_b,
            address_a,
            paths: vec![path],
        }))
    }
}

struct Run<'a> {
    overlay: &'a dyn Overlay,
    a: &'a dyn Host,
    b: &'a dyn Host,
    address_a: Ipv4Addr,
    paths: Vec<Path>,
}

impl Run<'_> {
    fn measure(&self, node: &dyn crate::OverlayNode) -> Result<Values, TrialError> {
        let (b, tap) = (self.b, self.overlay.tap());
        let started = node.started();
        tools::wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
            tools::link_exists(b, tap).then_some(())
        })
        .ok_or_else(|| TrialError(format!("{}: the node made no {tap} device", b.name())))?;
        let mut client = dhcp::DhcpClient::Dhclient.start(b, tap, self.overlay.state_dir())?;
        let result = self.after_dhcp(node, started);
        // dhclient stays until the node stops: B keeps its address while it pings.
        let _ = client.stop(Duration::ZERO);
        result
    }

    fn after_dhcp(
        &self,
        node: &dyn crate::OverlayNode,
        started: Instant,
    ) -> Result<Values, TrialError> {
        let (b, tap) = (self.b, self.overlay.tap());
        dhcp::wait_address(b, tap, ADDRESS_TIMEOUT, Duration::from_millis(100)).ok_or_else(
            || {
                TrialError(format!(
                    "{}: no address on {tap} after {ADDRESS_TIMEOUT:?}",
                    b.name()
                ))
            },
        )?;
        let t2 = started.elapsed().as_secs_f64();
        let status = node.status(b)?;
        let t1 = status
            .connected_after_s
            .ok_or_else(|| TrialError(format!("{}: status has no connected_after_s", b.name())))?;
        let tries = status
            .ipop
            .as_ref()
            .map(|i| f64::from(i.stats.last_dhcp_tries));
        let first = ping::first_reply(b, self.address_a, PING_TIMEOUT)?.ok_or_else(|| {
            let b_now = node.status(b).ok();
            let a_now = self.overlay.status(self.a).ok();
            TrialError(format!(
                "{}: no echo reply from A ({}) within {PING_TIMEOUT:?} of the address \
                 (B: {}; A: {})",
                b.name(),
                self.address_a,
                traffic(b_now.as_ref()),
                traffic(a_now.as_ref())
            ))
        })?;
        let report = ping::run(
            b,
            self.address_a,
            10,
            Duration::from_millis(100),
            Duration::from_secs(2),
        )?;
        let mut values = Values::from([
            ("t1_connected".to_string(), t1),
            ("t2_address".to_string(), t2),
            ("first_ping".to_string(), first.as_secs_f64()),
        ]);
        if let Some(tries) = tries {
            values.insert("addresses_tried".into(), tries);
        }
        let timeline = status.ipop.as_ref().map(|i| i.timeline).unwrap_or_default();
        let phases = [
            status.linked_after_s,
            timeline.record_s,
            timeline.discover_s,
            timeline.offer_s,
            timeline.ack_s,
        ];
        for ((name, _), t) in PHASES.iter().zip(phases) {
            if let Some(t) = t {
                values.insert((*name).to_owned(), t);
            }
        }
        if let Some(rtt) = median(report.rtts_ms) {
            values.insert("ping_rtt".into(), rtt);
        }
        Ok(values)
    }
}

/// What a node's status says of its virtual-network traffic, in one line (for the
/// reason of a failed trial); `?` and `null` where there is no status.
fn traffic(status: Option<&Status>) -> String {
    let ipop = status.and_then(|s| s.ipop.as_ref());
    let counters: Vec<String> = ipop
        .map(|i| i.stats.nonzero())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let connected = status.map_or(Value::Null, |s| Value::Bool(s.correctly_connected));
    let resolver = ipop.map_or(Value::Null, |i| {
        serde_json::to_value(&i.resolver).unwrap_or_default()
    });
    format!(
        "address {}, correctly connected {connected}, resolver {resolver}, {}",
        status.map_or("?", |s| &s.address[..8.min(s.address.len())]),
        counters.join(", ")
    )
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

impl Trials for Run<'_> {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn metrics(&self) -> Vec<Metric> {
        let paper = |stat, low, high, source: &str| {
            Some(PaperFigure {
                stat,
                low,
                high,
                source: source.into(),
            })
        };
        vec![
            Metric {
                name: "t1_connected".into(),
                description: "node start → correctly connected (T1)".into(),
                unit: Unit::Seconds,
                paper: None,
            },
            Metric {
                name: "t2_address".into(),
                description: "node and dhclient start → address on the TAP (T2)".into(),
                unit: Unit::Seconds,
                paper: paper(
                    Stat::Mean,
                    20.0,
                    30.0,
                    "WOW DHCP paper, section 6 and conclusions: 20–30 s on average (and 90 % \
                     within 30 s, Fig. 4)",
                ),
            },
            Metric {
                name: "addresses_tried".into(),
                description: "virtual addresses tried before one was free".into(),
                unit: Unit::Count,
                paper: paper(
                    Stat::P50,
                    1.0,
                    1.0,
                    "WOW DHCP paper, Fig. 6: in most cases the first address tried",
                ),
            },
            Metric {
                name: "first_ping".into(),
                description: "address bound → first echo reply from A".into(),
                unit: Unit::Seconds,
                paper: None,
            },
            Metric {
                name: "ping_rtt".into(),
                description: format!("median of 10 pings {}", self.paths[0].label()),
                unit: Unit::Millis,
                paper: None,
            },
        ]
        .into_iter()
        .chain(PHASES.iter().map(|(name, description)| Metric {
            name: (*name).into(),
            description: (*description).into(),
            unit: Unit::Seconds,
            paper: None,
        }))
        .collect()
    }

    fn plots(&self) -> Vec<PlotSpec> {
        let cdf = |file: &str, title: &str, metric: &str| PlotSpec::Cdf {
            file: file.into(),
            title: title.into(),
            metrics: vec![metric.into()],
        };
        vec![
            cdf(
                "t2-address-cdf",
                "Time to a virtual IP address (T2, Fig. 4)",
                "t2_address",
            ),
            cdf(
                "t1-connected-cdf",
                "Time to correctly connected (T1, Fig. 5)",
                "t1_connected",
            ),
            PlotSpec::Histogram {
                file: "addresses-tried".into(),
                title: "Virtual addresses tried (Fig. 6)".into(),
                metric: "addresses_tried".into(),
                bins: 5,
            },
            cdf(
                "first-ping-cdf",
                "Address → first reply from A",
                "first_ping",
            ),
            PlotSpec::Cdf {
                file: "t2-phases-cdf".into(),
                title: "Where T2 goes: each step from node start".into(),
                metrics: PHASES
                    .iter()
                    .map(|(name, _)| (*name).into())
                    .chain(["t2_address".into()])
                    .collect(),
            },
        ]
    }

    fn trial(&mut self, _index: u32) -> Result<Values, TrialError> {
        let mut node = self.overlay.start(self.b, NodeKind::Member, None)?;
        let result = self.measure(&*node);
        node.stop(LEAVE_GRACE)?;
        result
    }
}
