//! `multihop`: ping RTT between two clients behind NATs across a large overlay of public
//! router nodes, with shortcuts off so packets follow the overlay's greedy routes (the
//! IPOP paper's section IV-D: 118 PlanetLab nodes, two overlay hops, Fig. 5).
//!
//! The pair is chosen in `prepare`: the site hosts of different sites, in file order,
//! until an overlay echo (`ipop-node probe`) between them takes two hops or more. Each
//! trial sends one ping and one overlay echo (each retried like `latency`'s ping), and
//! records the ping's RTT and the overlay hops each way.

use std::time::Duration;

use wow_host::Host;
use wow_netns::Topology;
use wow_plots::Unit;

use crate::experiment::{
    Error, Experiment, ExperimentInfo, Metric, OverlayNeeds, PaperFigure, PlotSpec, Setup, Stat,
    TrialError, Trials, Values,
};
use crate::latency::ATTEMPTS;
use crate::path::Path;
use crate::subject::{Flow, Overlay, SubjectKind};
use crate::tools::ping;

/// Overlay hops the path must take at least.
const MIN_HOPS: u64 = 2;

/// The paper's figures.
const PAPER: &str = "\
IPOP paper (Ganguly et al., 2006), section IV-D and Fig. 5: 10 000 pings between two
testbed nodes (F2, F4) joined to a TCP-edge overlay of 118 PlanetLab nodes, two overlay
hops apart. The figure shows the RTT distribution; its mean is above 1.6 s (a heavily
loaded PlanetLab). Our emulated access links carry no such load, so the comparison is of
the shape and of the hop count, not of the absolute RTT.
";

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct Multihop;

/// What the experiment is.
const INFO: ExperimentInfo = ExperimentInfo {
    name: "multihop",
    description: "ping RTT between two NATed clients 2+ overlay hops apart, shortcuts off (IPOP Fig. 5)",
    default_topology: "topologies/planetlab-118.toml",
    physical_topology: None,
    default_trials: 10_000,
    subjects: &[SubjectKind::Ipop],
    workload_options: &[],
    paper_table: PAPER,
};

impl Experiment for Multihop {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn overlay_needs(&self, _topology: &Topology) -> OverlayNeeds {
        OverlayNeeds {
            shortcuts: false,
            ..OverlayNeeds::default()
        }
    }

    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error> {
        let overlay = setup.subject.overlay().ok_or_else(|| Error::NoPath {
            subject: setup.subject.kind(),
            tried: vec!["multihop needs an overlay subject".into()],
        })?;
        let clients: Vec<(String, String)> = setup
            .topology
            .sites
            .iter()
            .flat_map(|s| (0..s.hosts).map(move |i| (s.name.clone(), format!("{}-{i}", s.name))))
            .collect();
        let mut tried = Vec::new();
        for (i, (site_a, a)) in clients.iter().enumerate() {
            for (site_b, b) in clients.iter().skip(i + 1) {
                if site_a == site_b {
                    continue;
                }
                match candidate(setup, overlay, a, b) {
                    Ok(run) => {
                        let mut run = run;
                        run.paths[0].skipped = tried;
                        return Ok(Box::new(run));
                    }
                    Err(why) => tried.push(format!("{a} → {b}: {why}")),
                }
            }
        }
        Err(Error::NoPath {
            subject: setup.subject.kind(),
            tried,
        })
    }
}

/// The run for clients `a` → `b`, if the overlay carries it over two hops or more.
fn candidate<'a>(
    setup: &Setup<'a>,
    overlay: &'a dyn Overlay,
    a: &str,
    b: &str,
) -> Result<Run<'a>, String> {
    let target = setup.subject.target(a, b, Flow::Icmp).map_err(|u| u.0)?;
    let host = setup.hosts.get(a).map_err(|e| e.to_string())?;
    let echo = overlay.probe(host, b).map_err(|e| e.to_string())?;
    let hops = u64::from(echo.hops);
    if hops < MIN_HOPS {
        return Err(format!("{hops} overlay hop(s), fewer than {MIN_HOPS}"));
    }
    let report = ping::run(
        host,
        target.address,
        3,
        Duration::from_millis(200),
        Duration::from_secs(3),
    )
    .map_err(|e| e.to_string())?;
    if report.received == 0 {
        return Err("no reply to 3 echo requests".into());
    }
    Ok(Run {
        host,
        overlay,
        to: b.to_string(),
        paths: vec![Path {
            from: a.to_string(),
            to: b.to_string(),
            flow: Flow::Icmp,
            target,
            wan: true,
            skipped: Vec::new(),
        }],
    })
}

struct Run<'a> {
    host: &'a dyn Host,
    overlay: &'a dyn Overlay,
    to: String,
    paths: Vec<Path>,
}

impl Trials for Run<'_> {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn metrics(&self) -> Vec<Metric> {
        let label = self.paths[0].label();
        vec![
            Metric {
                name: "rtt".into(),
                description: format!("ping RTT {label} over the overlay, shortcuts off"),
                unit: Unit::Millis,
                paper: Some(PaperFigure {
                    stat: Stat::Mean,
                    low: 1600.0,
                    high: 1600.0,
                    source: "IPOP paper, Fig. 5: mean above 1.6 s on loaded PlanetLab (a lower \
                             bound read from the figure)"
                        .into(),
                }),
            },
            Metric {
                name: "hops".into(),
                description: format!("overlay hops {label} (overlay echo)"),
                unit: Unit::Count,
                paper: Some(PaperFigure {
                    stat: Stat::P50,
                    low: 2.0,
                    high: 2.0,
                    source: "IPOP paper, section IV-D: two overlay hops".into(),
                }),
            },
            Metric {
                name: "return_hops".into(),
                description: "overlay hops of the echo's reply".into(),
                unit: Unit::Count,
                paper: None,
            },
            Metric {
                name: "pings_lost".into(),
                description: "echo requests lost before the trial's answered one".into(),
                unit: Unit::Count,
                paper: None,
            },
            Metric {
                name: "probes_lost".into(),
                description: "overlay echoes lost before the trial's answered one".into(),
                unit: Unit::Count,
                paper: None,
            },
        ]
    }

    fn plots(&self) -> Vec<PlotSpec> {
        let label = self.paths[0].label();
        vec![
            PlotSpec::Cdf {
                file: "rtt-cdf".into(),
                title: format!("Multi-hop ping RTT {label}"),
                metrics: vec!["rtt".into()],
            },
            PlotSpec::Histogram {
                file: "rtt-histogram".into(),
                title: format!("Multi-hop ping RTT {label}"),
                metric: "rtt".into(),
                bins: 40,
            },
        ]
    }

    fn trial(&mut self, _index: u32) -> Result<Values, TrialError> {
        let address = self.paths[0].target.address;
        let mut values = Values::new();
        for lost in 0..ATTEMPTS {
            let report = ping::run(
                self.host,
                address,
                1,
                Duration::from_millis(200),
                Duration::from_secs(3),
            )?;
            if let Some(&rtt) = report.rtts_ms.first() {
                values.insert("rtt".into(), rtt);
                values.insert("pings_lost".into(), f64::from(lost));
                break;
            }
        }
        if values.is_empty() {
            return Err(TrialError(format!(
                "{}: no reply from {address} to {ATTEMPTS} echo requests",
                self.host.name()
            )));
        }
        // The overlay echo crosses the same lossy links: a lost one is retried too.
        let mut last = None;
        for lost in 0..ATTEMPTS {
            match self.overlay.probe(self.host, &self.to) {
                Ok(echo) => {
                    values.insert("hops".into(), f64::from(echo.hops));
                    values.insert("return_hops".into(), f64::from(echo.return_hops));
                    values.insert("probes_lost".into(), f64::from(lost));
                    return Ok(values);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(TrialError(format!(
            "{}: no overlay echo from {} to {ATTEMPTS} probes: {}",
            self.host.name(),
            self.to,
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }
}
