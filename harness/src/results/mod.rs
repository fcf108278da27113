//! The result folder of a run, `results/<experiment>/<timestamp>/` (documented for
//! users in `harness/RESULTS.md`):
//!
//! | file | written | content |
//! |---|---|---|
//! | `config.json` | first | [`RunConfig`]: what is needed to rerun and judge the run |
//! | `trials.jsonl` | one line per trial, as it ends | [`TrialRecord`] |
//! | `links.json` | before the trials (WAN topologies) | [`LinkResult`]s, raw RTTs |
//! | `summary.json` | at the end | [`Summary`] |
//! | `*.png`, `*.svg` | at the end, or by `wow-bench plot` | the plots |
//! | `report.md` | at the end, or by `wow-bench plot` | [`report::render`] |
//!
//! Everything after the trials is computed from the files alone ([`Saved::load`]), so
//! `wow-bench plot DIR` redraws plots and report without rerunning.

mod config;
pub mod report;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use wow_experiments::{Metric, PaperFigure, PlotSpec, Samples, SubjectKind, Values};
use wow_plots::{Unit, summarize};

pub use config::{Git, Machine, RunConfig, TopologyFile, Versions};

/// File names inside a result folder.
pub const CONFIG: &str = "config.json";
/// One JSON object per trial.
pub const TRIALS: &str = "trials.jsonl";
/// The WAN link measurements.
pub const LINKS: &str = "links.json";
/// The summary.
pub const SUMMARY: &str = "summary.json";
/// The folder of the ipop subject's node logs (`<host>.log`; `<host>-<n>.log` for the
/// nodes an experiment started).
pub const LOGS: &str = "logs";
/// The report.
pub const REPORT: &str = "report.md";

/// One line of `trials.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// 0-based trial number.
    pub trial: u32,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it measured (empty when it failed).
    #[serde(default)]
    pub values: Values,
    /// Per-item values it measured (a batch's jobs), summarised with `values`.
    #[serde(default, skip_serializing_if = "Samples::is_empty")]
    pub samples: Samples,
    /// Lines for the report (which node ran which job).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in seconds.
    pub seconds: f64,
}

impl TrialRecord {
    /// Every value of `metric` the trial measured: its value and its samples.
    pub fn metric_values<'a>(&'a self, metric: &str) -> impl Iterator<Item = f64> + 'a {
        let one = self.values.get(metric).copied();
        let many = self.samples.get(metric).into_iter().flatten().copied();
        one.into_iter().chain(many)
    }
}

/// Appends trial records to `trials.jsonl`, one flushed line each, so that an
/// interrupted run keeps what it measured.
#[derive(Debug)]
pub struct TrialLog {
    path: PathBuf,
    file: BufWriter<File>,
}

impl TrialLog {
    /// Creates `<dir>/trials.jsonl`; refuses to overwrite one.
    pub fn create(dir: &Path) -> anyhow::Result<TrialLog> {
        let path = dir.join(TRIALS);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot create {} (a result folder holds one run: pick a new --out)",
                    path.display()
                )
            })?;
        Ok(TrialLog {
            path,
            file: BufWriter::new(file),
        })
    }

    /// Writes one record.
    pub fn append(&mut self, record: &TrialRecord) -> anyhow::Result<()> {
        let line = serde_json::to_string(record)?;
        writeln!(self.file, "{line}")
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

/// Reads `trials.jsonl`.
pub fn read_trials(dir: &Path) -> anyhow::Result<Vec<TrialRecord>> {
    let path = dir.join(TRIALS);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{}:{}: bad trial", path.display(), i + 1))
        })
        .collect()
}

/// An emulated WAN link measured alone: pings from the node at its far end to a public
/// host, with no NAT, site LAN or overlay in the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkResult {
    /// The link: `site ufl` or `host public-0`.
    pub link: String,
    /// The node that pinged (the router, or the public host, at the link's end).
    pub from: String,
    /// The public host it pinged.
    pub to: String,
    /// The link's configuration, as the topology file gives it.
    pub delay_ms: f64,
    /// Jitter, ms.
    pub jitter_ms: f64,
    /// Loss per direction.
    pub loss: f64,
    /// Rate limit, Mbit/s.
    pub rate_mbit: Option<f64>,
    /// The RTT the configuration implies: 2 × (this link's delay + the responder's).
    pub expected_rtt_ms: f64,
    /// Echo requests sent and answered.
    pub sent: u32,
    /// Replies.
    pub received: u32,
    /// Each reply's RTT, ms.
    pub rtts_ms: Vec<f64>,
}

/// The figures of one metric in `summary.json`; statistics are null with no values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// What it is.
    pub description: String,
    /// The unit of every figure.
    pub unit: Unit,
    /// Values summarised.
    pub count: u64,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Smallest.
    pub min: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
    /// The papers' figure, if any.
    pub paper: Option<PaperFigure>,
}

impl MetricSummary {
    /// Summarises `values` of `metric`.
    pub fn new(metric: &Metric, values: &[f64]) -> anyhow::Result<MetricSummary> {
        let s = summarize(values, metric.unit)
            .with_context(|| format!("summarising metric {}", metric.name))?;
        Ok(MetricSummary {
            description: metric.description.clone(),
            unit: metric.unit,
            count: s.map_or(0, |s| s.count),
            p50: s.map(|s| s.p50),
            p90: s.map(|s| s.p90),
            p99: s.map(|s| s.p99),
            mean: s.map(|s| s.mean),
            min: s.map(|s| s.min),
            max: s.map(|s| s.max),
            paper: metric.paper.clone(),
        })
    }

    /// The statistic a paper figure compares with.
    pub fn stat(&self, stat: wow_experiments::Stat) -> Option<f64> {
        use wow_experiments::Stat;
        match stat {
            Stat::Mean => self.mean,
            Stat::P50 => self.p50,
            Stat::P90 => self.p90,
            Stat::P99 => self.p99,
        }
    }
}

/// A WAN link's line in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkSummary {
    /// The link.
    pub link: String,
    /// Pinged from.
    pub from: String,
    /// Pinged to.
    pub to: String,
    /// What the configuration implies, ms.
    pub expected_rtt_ms: f64,
    /// Requests sent.
    pub sent: u32,
    /// Replies.
    pub received: u32,
    /// RTT statistics (ms).
    pub rtt: MetricSummary,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The experiment.
    pub experiment: String,
    /// The subject.
    pub subject: SubjectKind,
    /// The topology's name.
    pub topology: String,
    /// Trials run.
    pub trials: u32,
    /// Trials that failed.
    pub failed_trials: u32,
    /// Every metric by name.
    pub metrics: BTreeMap<String, MetricSummary>,
    /// The measured paths.
    pub paths: Vec<wow_experiments::Path>,
    /// The emulated WAN links alone (empty on topologies without any).
    pub links: Vec<LinkSummary>,
    /// The plots to draw.
    pub plots: Vec<PlotSpec>,
    /// The paper's table for this experiment (Markdown).
    pub paper_table: String,
}

/// What a run knows when its trials are over.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// The experiment's name.
    pub experiment: &'a str,
    /// The subject.
    pub subject: SubjectKind,
    /// The topology's name.
    pub topology: &'a str,
    /// Metric definitions.
    pub metrics: &'a [Metric],
    /// Paths.
    pub paths: &'a [wow_experiments::Path],
    /// Plots.
    pub plots: &'a [PlotSpec],
    /// The paper's table.
    pub paper_table: &'a str,
}

impl Summary {
    /// Summarises `trials` and `links`.
    pub fn new(
        run: Finished<'_>,
        trials: &[TrialRecord],
        links: &[LinkResult],
    ) -> anyhow::Result<Summary> {
        let mut metrics = BTreeMap::new();
        for metric in run.metrics {
            let values: Vec<f64> = trials
                .iter()
                .flat_map(|t| t.metric_values(&metric.name))
                .collect();
            metrics.insert(metric.name.clone(), MetricSummary::new(metric, &values)?);
        }
        if let Some((t, name)) = trials
            .iter()
            .flat_map(|t| {
                let keys = t.values.keys().chain(t.samples.keys());
                keys.map(move |k| (t.trial, k))
            })
            .find(|(_, k)| !metrics.contains_key(*k))
        {
            bail!("trial {t} reports {name:?}, which is not among the experiment's metrics");
        }
        let links = links
            .iter()
            .map(|l| {
                let metric = Metric {
                    name: format!("link {}", l.link),
                    description: format!("ping RTT {} → {}", l.from, l.to),
                    unit: Unit::Millis,
                    paper: None,
                };
                Ok(LinkSummary {
                    link: l.link.clone(),
                    from: l.from.clone(),
                    to: l.to.clone(),
                    expected_rtt_ms: l.expected_rtt_ms,
                    sent: l.sent,
                    received: l.received,
                    rtt: MetricSummary::new(&metric, &l.rtts_ms)?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Summary {
            experiment: run.experiment.to_string(),
            subject: run.subject,
            topology: run.topology.to_string(),
            trials: trials.len() as u32,
            failed_trials: trials.iter().filter(|t| !t.ok).count() as u32,
            metrics,
            paths: run.paths.to_vec(),
            links,
            plots: run.plots.to_vec(),
            paper_table: run.paper_table.to_string(),
        })
    }
}

/// Writes `value` as pretty JSON to `<dir>/<name>`.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> anyhow::Result<()> {
    let path = dir.join(name);
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Reads `<dir>/<name>` as JSON.
pub fn read_json<T: for<'de> Deserialize<'de>>(dir: &Path, name: &str) -> anyhow::Result<T> {
    let path = dir.join(name);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A finished result folder, read back.
#[derive(Debug, Clone)]
pub struct Saved {
    /// `config.json`.
    pub config: RunConfig,
    /// `summary.json`.
    pub summary: Summary,
    /// `trials.jsonl`.
    pub trials: Vec<TrialRecord>,
}

impl Saved {
    /// Reads `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Saved> {
        Ok(Saved {
            config: read_json(dir, CONFIG)?,
            summary: read_json(dir, SUMMARY)?,
            trials: read_trials(dir)?,
        })
    }
}

#[cfg(test)]
mod tests;
