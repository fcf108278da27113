//! `latency`: ping RTT between two hosts, one echo request per trial (the IPOP paper's
//! 1000 pings, Table I). On a LAN topology the path stays in one site; on a WAN
//! topology it crosses sites (see [`crate::path`]).
//!
//! A lost echo is retried (up to [`ATTEMPTS`] requests per trial) and counted in the
//! `pings_lost` metric; a trial fails only when every request of it went unanswered.

use std::time::Duration;

use wow_host::Host;
use wow_plots::Unit;

use crate::experiment::{
    Error, Experiment, ExperimentInfo, Metric, PlotSpec, Setup, TrialError, Trials, Values,
};
use crate::paper;
use crate::path::{self, Path};
use crate::subject::{Flow, SubjectKind};
use crate::tools::ping;

/// Echo requests per trial before it fails.
pub const ATTEMPTS: u32 = 3;
/// How long to wait for one reply.
const WAIT: Duration = Duration::from_secs(2);

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct Latency;

/// What the experiment is.
const INFO: ExperimentInfo = ExperimentInfo {
    name: "latency",
    description: "ping RTT between two hosts, LAN or WAN path, one ping per trial (IPOP Table I)",
    default_topology: "topologies/lan.toml",
    physical_topology: None,
    default_trials: 1000,
    subjects: &[SubjectKind::Physical, SubjectKind::Ipop],
    workload_options: &[],
    paper_table: paper::TABLE_I,
};

impl Experiment for Latency {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error> {
        let path = path::choose(setup, Flow::Icmp)?;
        let host = setup.hosts.get(&path.from)?;
        let check = ping::run(
            host,
            path.target.address,
            3,
            Duration::from_millis(200),
            WAIT,
        )?;
        if check.received == 0 {
            return Err(Error::Preflight {
                path: path.to_string(),
                reason: "no reply to 3 echo requests before the first trial".into(),
            });
        }
        Ok(Box::new(Run {
            host,
            subject: setup.subject.kind(),
            paths: vec![path],
        }))
    }
}

struct Run<'a> {
    host: &'a dyn Host,
    subject: SubjectKind,
    paths: Vec<Path>,
}

impl Trials for Run<'_> {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn metrics(&self) -> Vec<Metric> {
        let path = &self.paths[0];
        vec![
            Metric {
                name: "rtt".into(),
                description: format!("ping RTT {}", path.label()),
                unit: Unit::Millis,
                paper: paper::rtt(self.subject, path.wan),
            },
            Metric {
                name: "pings_lost".into(),
                description: "echo requests lost before the trial's answered one".into(),
                unit: Unit::Count,
                paper: None,
            },
        ]
    }

    fn plots(&self) -> Vec<PlotSpec> {
        let path = &self.paths[0];
        vec![
            PlotSpec::Cdf {
                file: "rtt-cdf".into(),
                title: format!("Ping RTT {} ({})", path.label(), self.subject),
                metrics: vec!["rtt".into()],
            },
            PlotSpec::Histogram {
                file: "rtt-histogram".into(),
                title: format!("Ping RTT {} ({})", path.label(), self.subject),
                metric: "rtt".into(),
                bins: 40,
            },
        ]
    }

    fn trial(&mut self, _index: u32) -> Result<Values, TrialError> {
        let address = self.paths[0].target.address;
        for lost in 0..ATTEMPTS {
            let report = ping::run(self.host, address, 1, Duration::from_millis(200), WAIT)?;
            if let Some(&rtt) = report.rtts_ms.first() {
                return Ok(Values::from([
                    ("rtt".to_string(), rtt),
                    ("pings_lost".to_string(), f64::from(lost)),
                ]));
            }
        }
        Err(TrialError(format!(
            "{}: no reply from {address} to {ATTEMPTS} echo requests",
            self.host.name()
        )))
    }
}
