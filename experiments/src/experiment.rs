//! The experiment abstraction: what every experiment module implements, and what the
//! runner (`wow-bench run`, in `wow-harness`) hands it.
//!
//! A run goes: the runner builds the topology, sets the subject up, and calls
//! [`Experiment::prepare`] with a [`Setup`]; the experiment picks its paths, starts any
//! servers it needs and returns its [`Trials`]. The runner then calls [`Trials::trial`]
//! `N` times (a failed trial is recorded and the run goes on), asks for the
//! [`Metric`]s and [`PlotSpec`]s, and writes the result folder. Dropping the `Trials`
//! stops whatever the experiment started.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wow_host::{Host, HostError};
use wow_netns::Topology;
use wow_plots::Unit;

use crate::path::Path;
use crate::subject::{Subject, SubjectKind};

/// One trial's measurements: metric name to value (in the metric's unit). A trial may
/// leave out a metric it could not measure.
pub type Values = BTreeMap<String, f64>;

/// Many values of one metric from one trial (a batch's per-job times): metric name to
/// its values. Summaries and CDFs count each value as one sample.
pub type Samples = BTreeMap<String, Vec<f64>>;

/// What an experiment is, apart from what it runs: its name, defaults and the paper's
/// figures. Each experiment keeps one as a `const`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExperimentInfo {
    /// Its name on the command line (`wow-bench run NAME`).
    pub name: &'static str,
    /// One line for `wow-bench list`.
    pub description: &'static str,
    /// The topology file it runs on by default, relative to the repository root.
    pub default_topology: &'static str,
    /// The topology file the physical subject runs on by default, where the default
    /// topology's NATs keep the physical network from carrying the experiment (the same
    /// hosts and links, routed); `None` where it is the default topology
    /// ([`ExperimentInfo::physical_topology()`]).
    pub physical_topology: Option<&'static str>,
    /// How many trials a run has by default.
    pub default_trials: u32,
    /// The subjects it can measure.
    pub subjects: &'static [SubjectKind],
    /// The workload options it takes ([`Workload`]), as their command-line flags
    /// (`--jobs`); the runner refuses the others.
    pub workload_options: &'static [&'static str],
    /// The paper's figures for this experiment, as a Markdown table with its source, for
    /// the report (including rows for subjects other than the one measured).
    pub paper_table: &'static str,
}

impl ExperimentInfo {
    /// The topology file the physical subject runs on by default.
    pub fn physical_topology(&self) -> &'static str {
        self.physical_topology.unwrap_or(self.default_topology)
    }
}

/// An experiment of the papers.
pub trait Experiment: Send + Sync + std::fmt::Debug {
    /// Its name, defaults and the paper's figures.
    fn info(&self) -> &'static ExperimentInfo;

    /// What the experiment needs of an overlay subject on `topology`: hosts to leave
    /// free of subject nodes (it starts its own there), and whether shortcuts may form.
    fn overlay_needs(&self, _topology: &Topology) -> OverlayNeeds {
        OverlayNeeds::default()
    }

    /// Whether it measures several subjects in one run, opening each itself through
    /// [`Setup::subjects`] (the runner then sets up only the physical subject, which
    /// starts nothing, and hands the `--subject` list over as [`Workload::subjects`]).
    fn opens_subjects(&self) -> bool {
        false
    }

    /// Gets a run ready on a built testbed with the subject set up: picks the paths,
    /// checks them, starts servers.
    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error>;
}

/// A prepared run of an experiment. Dropping it stops what it started.
pub trait Trials {
    /// The paths it measures (recorded in the results and named in the report).
    fn paths(&self) -> &[Path];

    /// What a trial measures, with units and the paper's figures.
    fn metrics(&self) -> Vec<Metric>;

    /// The plots to draw from the saved trials.
    fn plots(&self) -> Vec<PlotSpec>;

    /// Runs trial `index` (0-based). An error fails this trial only.
    fn trial(&mut self, index: u32) -> Result<Values, TrialError>;

    /// What the last trial measured besides its [`Values`]: many values of a metric
    /// (per-job times of a batch) and lines for the report (which node ran which job).
    /// Taken once after each trial, failed or not.
    fn take_extra(&mut self) -> Extra {
        Extra::default()
    }
}

/// What a trial measured besides its values ([`Trials::take_extra`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// Per-item values of metrics.
    pub samples: Samples,
    /// Lines for the report.
    pub notes: Vec<String>,
}

/// The size of an experiment's workload, from the command line; `None` where the user
/// gave no flag (the experiment's default applies). Only experiments whose
/// [`ExperimentInfo::workload_options`] name a flag read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workload {
    /// `--jobs`: jobs per batch.
    pub jobs: Option<u32>,
    /// `--job-seconds`: how long one job runs alone on an idle core.
    pub job_seconds: Option<f64>,
    /// `--taxa`: taxa of a simulated alignment.
    pub taxa: Option<u32>,
    /// `--workers`: the numbers of parallel workers (or compute nodes) to measure.
    pub workers: Option<Vec<u32>>,
    /// `--db-mb`: the size of each database file.
    pub db_mb: Option<f64>,
    /// `--subject`, for experiments that open their subjects themselves
    /// ([`Experiment::opens_subjects`]): the subjects to measure, in order.
    pub subjects: Option<Vec<SubjectKind>>,
    /// `--seconds`: seconds of each throughput test.
    pub seconds: Option<u32>,
}

impl Workload {
    /// The flags given, as written on the command line.
    pub fn flags(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if self.jobs.is_some() {
            flags.push("--jobs");
        }
        if self.job_seconds.is_some() {
            flags.push("--job-seconds");
        }
        if self.taxa.is_some() {
            flags.push("--taxa");
        }
        if self.workers.is_some() {
            flags.push("--workers");
        }
        if self.db_mb.is_some() {
            flags.push("--db-mb");
        }
        if self.subjects.is_some() {
            flags.push("--subject");
        }
        if self.seconds.is_some() {
            flags.push("--seconds");
        }
        flags
    }
}

/// What the runner hands an experiment.
#[derive(Debug)]
pub struct Setup<'a> {
    /// The topology the testbed was built from.
    pub topology: &'a Topology,
    /// Every node of the testbed (site hosts, routers, public hosts).
    pub hosts: &'a Hosts,
    /// The subject, set up.
    pub subject: &'a dyn Subject,
    /// The run's seed, for experiments that draw random choices.
    pub seed: u64,
    /// The workload size the user asked for.
    pub workload: &'a Workload,
    /// Where an experiment adds progress bars of its own (a batch's jobs).
    pub progress: &'a indicatif::MultiProgress,
    /// Virtual machines the testbed can make and migrate (a namespace testbed's; none
    /// on remote hosts).
    pub machines: Option<&'a dyn Machines>,
    /// Opens other subjects on the same testbed, for experiments that measure several
    /// ([`Experiment::opens_subjects`]).
    pub subjects: Option<&'a dyn Subjects>,
}

/// Sets subjects up on a testbed one at a time, through the same path the runner uses
/// for its own; each is torn down when dropped.
pub trait Subjects: Send + Sync + std::fmt::Debug {
    /// Whether `kind` can be set up here; `Err` names what to install or build.
    fn available(&self, kind: SubjectKind) -> Result<(), String>;

    /// Sets `kind` up (it is ready to carry traffic when this returns); `Err` says why
    /// it could not be.
    fn open(&self, kind: SubjectKind) -> Result<Box<dyn Subject + '_>, String>;
}

/// Virtual machines a testbed creates on its hosts and migrates between them.
pub trait Machines: Send + Sync + std::fmt::Debug {
    /// The bridge on a host that its machines' NICs join: the host puts on it what its
    /// machines reach (an overlay node's TAP device, router mode).
    fn bridge(&self) -> &str;

    /// Creates machine `name` on host `at`, its NIC on `at`'s bridge and unconfigured.
    fn create(&self, name: &str, at: &str) -> Result<Box<dyn Machine + '_>, HostError>;
}

/// A virtual machine ([`Machines::create`]); dropping it removes it with its processes.
pub trait Machine: Send + std::fmt::Debug {
    /// The machine as a host: commands run inside it.
    fn host(&self) -> &dyn Host;

    /// The host it runs on.
    fn at(&self) -> &str;

    /// Migrates it to host `to`: its NIC leaves the current host's bridge and joins
    /// `to`'s, with its MAC, addresses, processes and open sockets unchanged; frames in
    /// flight are lost (a suspended VM resumed at another site).
    fn move_to(&mut self, to: &str) -> Result<(), HostError>;
}

/// What an experiment needs of an overlay subject ([`Experiment::overlay_needs`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlayNeeds {
    /// Hosts the subject leaves without a node: the experiment starts (and stops) its
    /// own nodes there through [`Overlay::start`](crate::Overlay::start).
    pub reserved: Vec<String>,
    /// Whether nodes may open shortcut edges to the peers they exchange traffic with
    /// (the multi-hop experiment turns them off to keep traffic on the overlay's
    /// greedy routes).
    pub shortcuts: bool,
}

impl Default for OverlayNeeds {
    fn default() -> OverlayNeeds {
        OverlayNeeds {
            reserved: Vec::new(),
            shortcuts: true,
        }
    }
}

/// The nodes of a testbed by name.
#[derive(Debug, Default)]
pub struct Hosts(BTreeMap<String, Box<dyn Host>>);

impl Hosts {
    /// No hosts.
    pub fn new() -> Hosts {
        Hosts::default()
    }

    /// Adds `host` under its name.
    pub fn insert(&mut self, host: Box<dyn Host>) {
        self.0.insert(host.name().to_string(), host);
    }

    /// Adds `host` under `name`: a remote host of a hosts file stands in for the
    /// testbed node `name` of the layout the experiment picks its paths from.
    pub fn insert_as(&mut self, name: &str, host: Box<dyn Host>) {
        self.0.insert(name.to_string(), host);
    }

    /// Every host, by name.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Host> {
        self.0.values().map(|h| &**h)
    }

    /// The node `name`.
    pub fn get(&self, name: &str) -> Result<&dyn Host, Error> {
        self.0
            .get(name)
            .map(|h| &**h)
            .ok_or_else(|| Error::NoSuchHost(name.to_string()))
    }
}

/// A metric: what one value of a trial means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Its key in trial values and in `summary.json`.
    pub name: String,
    /// What it is, in a few words (path included).
    pub description: String,
    /// Its unit.
    pub unit: Unit,
    /// The papers' figure for it, if they report one.
    pub paper: Option<PaperFigure>,
}

/// A figure from the papers, as a range when they report several runs of one setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperFigure {
    /// Which statistic of ours it compares with.
    pub stat: Stat,
    /// The smallest figure the papers report for this setting.
    pub low: f64,
    /// The largest (equal to `low` for a single figure).
    pub high: f64,
    /// Where it comes from (paper, table, row), and any unit conversion.
    pub source: String,
}

/// A statistic of a metric's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    /// The mean.
    Mean,
    /// The median.
    P50,
    /// The 90th percentile.
    P90,
    /// The 99th percentile.
    P99,
}

impl Stat {
    /// Its name in `summary.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P99 => "p99",
        }
    }
}

/// A plot drawn from saved results (`wow-bench plot DIR` redraws it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PlotSpec {
    /// The CDF of one or more metrics of one unit, with the paper's figures as marks.
    Cdf {
        /// File stem (`.png` and `.svg` are written).
        file: String,
        /// Title.
        title: String,
        /// The metrics, one line each.
        metrics: Vec<String>,
    },
    /// A histogram of one metric.
    Histogram {
        /// File stem.
        file: String,
        /// Title.
        title: String,
        /// The metric.
        metric: String,
        /// Number of bins.
        bins: usize,
    },
    /// Bars of metrics of one unit: the measured mean (error bar min to max) beside the
    /// paper's figure (error bar over its range).
    Bars {
        /// File stem.
        file: String,
        /// Title.
        title: String,
        /// The metrics, one group each.
        metrics: Vec<String>,
    },
}

/// Why a trial failed; the run records it and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TrialError(pub String);

impl From<HostError> for TrialError {
    fn from(e: HostError) -> TrialError {
        TrialError(e.to_string())
    }
}

/// Why an experiment could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A host operation failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The topology has no node of that name.
    #[error("the testbed has no node {0:?}")]
    NoSuchHost(String),
    /// The topology does not have what the experiment needs.
    #[error("topology {topology}: {reason}")]
    Topology {
        /// The topology's name.
        topology: String,
        /// What is missing.
        reason: String,
    },
    /// The subject carries none of the candidate paths.
    #[error("no path the {subject} subject carries: {}", .tried.join("; "))]
    NoPath {
        /// The subject.
        subject: SubjectKind,
        /// Each candidate and why it was refused.
        tried: Vec<String>,
    },
    /// A path was chosen but does not work.
    #[error("{path}: {reason}")]
    Preflight {
        /// The path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}
