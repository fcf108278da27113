//! `join`: how fast a new node becomes useful (the WOW paper's join measurements). Each
//! trial starts a fresh node J (new P2P address) on a host the subject leaves free, with
//! a static virtual address the node registers in the DHT and the experiment puts on
//! J's TAP, then pings peer P's virtual address every 50 ms until the first reply (so
//! `t_route` has 50 ms resolution) and once a second after that, and records:
//!
//! - `t_connected`: node start to correctly connected (status socket);
//! - `t_route`: node start to the first echo reply from P through the overlay;
//! - `t_direct`: node start to a direct edge (shortcut) between J and P, which the
//!   ping traffic asks for (status socket: a connection to P's P2P address).
//!
//! J is the last host of the first site with two hosts; P is host 0 of the next site
//! with hosts (so the path crosses the WAN), or host 0 of J's site when there is none.
//! Each trial uses its own virtual address (counting down from the top of the range),
//! since a stopped node's mapping stays in the DHT until its lease ends.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use wow_host::{Cmd, Host};
use wow_netns::Topology;
use wow_plots::Unit;

use crate::experiment::{
    Error, Experiment, ExperimentInfo, Metric, OverlayNeeds, PaperFigure, PlotSpec, Setup, Stat,
    TrialError, Trials, Values,
};
use crate::path::Path;
use crate::subject::{Flow, NodeKind, Overlay, OverlayNode, SubjectKind, Target};
use crate::tools::{self, dhcp, ping};

/// How long J may take to route.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long J may take for its direct edge to P.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(240);
/// How long a stopping node may take to leave the overlay.
const LEAVE_GRACE: Duration = Duration::from_secs(2);
/// The namespace range when the topology names none (the ipop subject's default).
const DEFAULT_RANGE: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 128, 0, 0), 16);

/// The paper's figures.
const PAPER: &str = "\
WOW paper (Ganguly et al., HPDC 2006), join measurements on a PlanetLab overlay of a few
hundred nodes with WOW nodes behind NATs:

| what | reported |
|---|---|
| new node can route over the overlay | 90 % within 10 s |
| new node has a direct (shortcut) edge to a peer it talks to | 99 % within 200 s |
";

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct Join;

/// The joining host and its peer.
fn ends(topology: &Topology) -> Option<(String, String)> {
    let (i, site) = topology
        .sites
        .iter()
        .enumerate()
        .find(|(_, s)| s.hosts >= 2)?;
    let joining = format!("{}-{}", site.name, site.hosts - 1);
    let peer_site = topology
        .sites
        .iter()
        .skip(i + 1)
        .find(|s| s.hosts >= 1)
        .unwrap_or(site);
    Some((joining, format!("{}-0", peer_site.name)))
}

/// What the experiment is.
const INFO: ExperimentInfo = ExperimentInfo {
    name: "join",
    description: "fresh node per trial: time to route through the overlay and to a direct edge to its peer (WOW join)",
    default_topology: "topologies/wow-6domain.toml",
    physical_topology: None,
    default_trials: 300,
    subjects: &[SubjectKind::Ipop],
    workload_options: &[],
    paper_table: PAPER,
};

impl Experiment for Join {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn overlay_needs(&self, topology: &Topology) -> OverlayNeeds {
        OverlayNeeds {
            reserved: ends(topology).map(|(j, _)| j).into_iter().collect(),
            ..OverlayNeeds::default()
        }
    }

    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error> {
        let (j, p) = ends(setup.topology).ok_or_else(|| Error::Topology {
            topology: setup.topology.name.clone(),
            reason: "join needs a site with two hosts".into(),
        })?;
        let overlay = setup.subject.overlay().ok_or_else(|| Error::NoPath {
            subject: setup.subject.kind(),
            tried: vec!["join needs an overlay subject".into()],
        })?;
        let (host_j, host_p) = (setup.hosts.get(&j)?, setup.hosts.get(&p)?);
        let preflight = |reason: String| Error::Preflight {
            path: format!("{j} → {p}"),
            reason,
        };
        let address_p = dhcp::address_of(host_p, overlay.tap())
            .ok_or_else(|| preflight(format!("{p} has no virtual address")))?;
        let status = overlay.status(host_p)?;
        let p2p_p = Some(status.address)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| preflight(format!("{p}'s status has no P2P address")))?;
        let range = setup
            .topology
            .overlay
            .namespaces
            .first()
            .map_or(DEFAULT_RANGE, |n| (n.range.network(), n.range.prefix_len()));
        let path = Path {
            from: j,
            to: p.clone(),
            flow: Flow::Icmp,
            target: Target {
                node: p,
                address: address_p,
                note: None,
            },
            wan: !setup.topology.wans.is_empty(),
            skipped: Vec::new(),
        };
        Ok(Box::new(Run {
            overlay,
            j: host_j,
            address_p,
            p2p_p,
            range,
            paths: vec![path],
        }))
    }
}

struct Run<'a> {
    overlay: &'a dyn Overlay,
    j: &'a dyn Host,
    address_p: Ipv4Addr,
    p2p_p: String,
    range: (Ipv4Addr, u8),
    paths: Vec<Path>,
}

/// Trial `index`'s address: counting down from the last usable one of the range.
fn address_for(range: (Ipv4Addr, u8), index: u32) -> Ipv4Addr {
    let size = 1u64 << (32 - u32::from(range.1));
    let offset = (size - 2 - u64::from(index) % (size - 2).max(1)) as u32;
    Ipv4Addr::from(u32::from(range.0) + offset)
}

impl Run<'_> {
    fn measure(&self, node: &dyn OverlayNode, address: Ipv4Addr) -> Result<Values, TrialError> {
        let (j, tap) = (self.j, self.overlay.tap());
        let started = node.started();
        tools::wait_for(Duration::from_secs(20), Duration::from_millis(50), || {
            tools::link_exists(j, tap).then_some(())
        })
        .ok_or_else(|| TrialError(format!("{}: the node made no {tap} device", j.name())))?;
        j.check(
            &Cmd::new("ip").args([
                "addr",
                "add",
                &format!("{address}/{}", self.range.1),
                "dev",
                tap,
            ]),
            Duration::from_secs(5),
        )?;
        ping::first_reply(j, self.address_p, ROUTE_TIMEOUT)?.ok_or_else(|| {
            TrialError(format!(
                "{}: no echo reply from {} within {ROUTE_TIMEOUT:?}",
                j.name(),
                self.address_p
            ))
        })?;
        let t_route = started.elapsed().as_secs_f64();
        let t_connected = node
            .status(j)?
            .connected_after_s
            .ok_or_else(|| TrialError(format!("{}: status has no connected_after_s", j.name())))?;
        let t_direct = self.wait_direct(node, started)?;
        Ok(Values::from([
            ("t_connected".to_string(), t_connected),
            ("t_route".to_string(), t_route),
            ("t_direct".to_string(), t_direct),
        ]))
    }

    /// Pings P once a second until J's status shows a connection to P.
    fn wait_direct(&self, node: &dyn OverlayNode, started: Instant) -> Result<f64, TrialError> {
        let j = self.j;
        while started.elapsed() < DIRECT_TIMEOUT {
            if node.status(j)?.connection_to(&self.p2p_p).is_some() {
                return Ok(started.elapsed().as_secs_f64());
            }
            ping::run(
                j,
                self.address_p,
                1,
                Duration::from_millis(200),
                Duration::from_secs(1),
            )?;
        }
        Err(TrialError(format!(
            "{}: no direct edge to {} within {DIRECT_TIMEOUT:?} of start",
            j.name(),
            self.paths[0].target.node
        )))
    }
}

impl Trials for Run<'_> {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn metrics(&self) -> Vec<Metric> {
        let paper = |stat, value, source: &str| {
            Some(PaperFigure {
                stat,
                low: value,
                high: value,
                source: source.into(),
            })
        };
        vec![
            Metric {
                name: "t_connected".into(),
                description: "node start → correctly connected".into(),
                unit: Unit::Seconds,
                paper: None,
            },
            Metric {
                name: "t_route".into(),
                description: format!("node start → first ping reply {}", self.paths[0].label()),
                unit: Unit::Seconds,
                paper: paper(
                    Stat::P90,
                    10.0,
                    "WOW paper: 90 % of new nodes route within 10 s",
                ),
            },
            Metric {
                name: "t_direct".into(),
                description: format!("node start → direct edge {}", self.paths[0].label()),
                unit: Unit::Seconds,
                paper: paper(
                    Stat::P99,
                    200.0,
                    "WOW paper: 99 % of new nodes have a direct edge within 200 s",
                ),
            },
        ]
    }

    fn plots(&self) -> Vec<PlotSpec> {
        vec![PlotSpec::Cdf {
            file: "join-cdf".into(),
            title: format!("Join times, {}", self.paths[0].label()),
            metrics: vec!["t_connected".into(), "t_route".into(), "t_direct".into()],
        }]
    }

    fn trial(&mut self, index: u32) -> Result<Values, TrialError> {
        let address = address_for(self.range, index);
        let mut node = self
            .overlay
            .start(self.j, NodeKind::Member, Some(address))?;
        let result = self.measure(&*node, address);
        node.stop(LEAVE_GRACE)?;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_addresses_count_down_from_the_top_of_the_range() {
        let r = (Ipv4Addr::new(10, 128, 0, 0), 14);
        assert_eq!(address_for(r, 0), Ipv4Addr::new(10, 131, 255, 254));
        assert_eq!(address_for(r, 1), Ipv4Addr::new(10, 131, 255, 253));
        assert_eq!(address_for(r, 254), Ipv4Addr::new(10, 131, 255, 0));
        // A /30 has two usable addresses; trials wrap around them.
        let small = (Ipv4Addr::new(10, 0, 0, 0), 30);
        assert_eq!(address_for(small, 0), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(address_for(small, 2), Ipv4Addr::new(10, 0, 0, 2));
    }

    #[test]
    fn j_and_p_sit_in_different_sites() {
        let path = format!(
            "{}/../topologies/wow-6domain.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let t = Topology::load(path.as_ref()).unwrap();
        assert_eq!(ends(&t), Some(("ufl-15".into(), "nwu-0".into())));
    }
}
