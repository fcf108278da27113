//! The experiment runner behind `wow-bench run`: builds the topology under a unique run
//! prefix, sets the subject up, prepares the experiment, measures the WAN links alone,
//! runs the trials (a failed trial is recorded and the run goes on), and writes the
//! result folder ([`crate::results`]).
//!
//! The testbed is removed when the run ends, fails or panics (the [`Testbed`] guard),
//! and on Ctrl-C, SIGTERM or SIGHUP (its signal handler); processes the experiment and
//! the subject started are stopped by PID when their handles drop, and any left in the
//! run's namespaces are ended by the testbed's cleanup. `trials.jsonl` is flushed after
//! every trial, so an interrupted run keeps what it measured.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use wow_experiments::{Edges, Experiment, Hosts, Setup, SubjectKind};
use wow_netns::{Launcher, Options, RunPrefix, Testbed, Topology};

use crate::NetnsHost;
use crate::results::{
    self, Finished, Git, LINKS, Machine, REPORT, RunConfig, SUMMARY, Saved, Summary, TopologyFile,
    TrialLog, TrialRecord, Versions,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct Request {
    /// The experiment.
    pub experiment: &'static dyn Experiment,
    /// The topology file.
    pub topology: PathBuf,
    /// Number of trials.
    pub trials: u32,
    /// The result folder.
    pub out: PathBuf,
    /// The seed handed to the experiment.
    pub seed: u64,
    /// The subject.
    pub subject: SubjectKind,
    /// The edges of the ipop subject's nodes.
    pub edges: Edges,
    /// The log filter of the ipop subject's nodes (their logs go to `logs/`).
    pub node_log: String,
    /// The command line, for `config.json`.
    pub command: Vec<String>,
}

/// A finished run.
#[derive(Debug)]
pub struct Outcome {
    /// Where its files are.
    pub dir: PathBuf,
    /// Its summary.
    pub summary: Summary,
}

/// The default result folder: `results/<experiment>/<UTC timestamp>`.
pub fn default_out(experiment: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    Path::new("results").join(experiment).join(stamp)
}

/// Runs `request` (needs root).
pub fn run(request: &Request) -> anyhow::Result<Outcome> {
    let experiment = request.experiment;
    if !experiment.subjects().contains(&request.subject) {
        let names: Vec<&str> = experiment.subjects().iter().map(|s| s.as_str()).collect();
        bail!(
            "{} does not support the {} subject (it supports {})",
            experiment.name(),
            request.subject,
            names.join(", ")
        );
    }
    if request.trials == 0 {
        bail!("--trials must be at least 1");
    }
    let topology = Topology::load(&request.topology)?;
    let dir = &request.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut log = TrialLog::create(dir)?;
    let prefix = RunPrefix::new(&format!("r{:x}", std::process::id()))?;
    let config = RunConfig {
        command: request.command.clone(),
        experiment: experiment.name().to_string(),
        subject: request.subject,
        edges: request.edges,
        node_log: request.node_log.clone(),
        trials: request.trials,
        seed: request.seed,
        out: dir.display().to_string(),
        prefix: prefix.to_string(),
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        topology: TopologyFile::read(&request.topology, &topology.name)
            .with_context(|| format!("reading {}", request.topology.display()))?,
        git: Git::collect(),
        versions: Versions::collect(),
        machine: Machine::collect(),
    };
    results::write_json(dir, results::CONFIG, &config)?;

    // Built on this (the main) thread: the emulator dies with the thread that started it.
    let bed = Testbed::up(
        &topology,
        &Options {
            prefix,
            emulator: Some(Launcher {
                program: std::env::current_exe().context("finding the wow-bench binary")?,
                args: vec!["__emulate".into()],
                detach: false,
            }),
        },
    )
    .with_context(|| format!("building topology {}", topology.name))?;
    let mut hosts = Hosts::new();
    for node in &bed.plan().nodes {
        hosts.insert(Box::new(NetnsHost::new(&bed, &node.name)?));
    }
    let options = crate::subjects::Options {
        edges: request.edges,
        needs: experiment.overlay_needs(&topology),
        log_level: request.node_log.clone(),
        logs: Some(dir.join(results::LOGS)),
    };
    let subject = crate::subjects::open(request.subject, &bed, &hosts, &topology, &options)
        .with_context(|| format!("setting up the {} subject", request.subject))?;
    let setup = Setup {
        topology: &topology,
        hosts: &hosts,
        subject: &*subject,
        seed: request.seed,
    };
    let mut trials = experiment
        .prepare(&setup)
        .with_context(|| format!("preparing {}", experiment.name()))?;
    let links = if topology.wans.is_empty() {
        Vec::new()
    } else {
        eprintln!("measuring the emulated WAN links alone…");
        let links = crate::links::measure(&topology, &hosts, trials.paths())?;
        if links.is_none() {
            eprintln!("warning: the topology has no public host to measure its WAN links against");
        }
        links.unwrap_or_default()
    };
    results::write_json(dir, LINKS, &links)?;

    let bar = ProgressBar::new(u64::from(request.trials)).with_style(
        ProgressStyle::with_template(
            "{msg} [{wide_bar}] {pos}/{len} trials, {elapsed} elapsed, {eta} left",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    bar.set_message(format!("{} ({})", experiment.name(), request.subject));
    let mut records = Vec::with_capacity(request.trials as usize);
    let mut failed = 0u32;
    for index in 0..request.trials {
        let start = Instant::now();
        let result = trials.trial(index);
        let record = TrialRecord {
            trial: index,
            ok: result.is_ok(),
            error: result.as_ref().err().map(|e| e.0.clone()),
            values: result.unwrap_or_default(),
            seconds: (start.elapsed().as_secs_f64() * 1e6).round() / 1e6,
        };
        if let Some(e) = &record.error {
            failed += 1;
            let line = format!("trial {index} failed: {e}");
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        log.append(&record)?;
        records.push(record);
        bar.inc(1);
        if failed > 0 {
            bar.set_message(format!(
                "{} ({}), {failed} failed",
                experiment.name(),
                request.subject
            ));
        }
    }
    bar.finish();
    let (metrics, paths, plots) = (trials.metrics(), trials.paths().to_vec(), trials.plots());
    drop(trials);
    drop(subject);
    bed.down()
        .with_context(|| "removing the testbed; run `wow-bench clean`")?;

    let summary = Summary::new(
        Finished {
            experiment: experiment.name(),
            subject: request.subject,
            topology: &topology.name,
            metrics: &metrics,
            paths: &paths,
            plots: &plots,
            paper_table: experiment.paper_table(),
        },
        &records,
        &links,
    )?;
    results::write_json(dir, SUMMARY, &summary)?;
    finish(
        dir,
        &Saved {
            config,
            summary: summary.clone(),
            trials: records,
        },
    )?;
    Ok(Outcome {
        dir: dir.clone(),
        summary,
    })
}

/// Draws the plots and writes `report.md` of a saved run (`wow-bench plot` calls this too).
pub fn finish(dir: &Path, saved: &Saved) -> anyhow::Result<()> {
    let skipped = crate::render::draw_all(dir, saved)?;
    for (plot, why) in &skipped {
        eprintln!("warning: plot {plot} not drawn: {why}");
    }
    let path = dir.join(REPORT);
    std::fs::write(&path, results::report::render(saved, &skipped))
        .with_context(|| format!("writing {}", path.display()))
}
