//! The experiment runner behind `wow-bench run`: builds the topology under a unique run
//! prefix, sets the subject up, prepares the experiment, measures the WAN links alone,
//! runs the trials (a failed trial is recorded and the run goes on), and writes the
//! result folder ([`crate::results`]).
//!
//! With a hosts file ([`Request::hosts`]) the run goes to remote hosts over SSH instead
//! ([`FleetBed`]: the hosts laid out as a topology, `ipop-node` installed for the ipop
//! subject); everything else is the same.
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
use wow_experiments::{
    Edges, Experiment, ExperimentInfo, Hosts, Machines, Path as TrialPath, Setup, SubjectKind,
    Subjects, Trials, Workload,
};
use wow_netns::{Launcher, Node, Options, RunPrefix, Testbed, Topology};

use crate::NetnsHost;
use crate::fleet::{FleetBed, HostsFile, Parallel};
use crate::machines::NetnsMachines;
use crate::results::{
    self, Finished, Git, LINKS, LinkResult, Machine, REPORT, RunConfig, SUMMARY, Saved, Summary,
    TopologyFile, TrialLog, TrialRecord, Versions,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct Request {
    /// The experiment.
    pub experiment: &'static dyn Experiment,
    /// The topology file (unused with `hosts`).
    pub topology: PathBuf,
    /// A hosts file: run on those hosts over SSH instead of a namespace testbed.
    pub hosts: Option<PathBuf>,
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
    /// Secure edges for the ipop subject.
    pub secure: bool,
    /// The log filter of the ipop subject's nodes (their logs go to `logs/`).
    pub node_log: String,
    /// The workload size asked for (flags the experiment takes).
    pub workload: Workload,
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
    let info = experiment.info();
    check_request(request)?;
    let dir = &request.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (fleet, topology, source) = open_layout(request)?;
    let mut log = TrialLog::create(dir)?;
    let prefix = RunPrefix::new(&format!("r{:x}", std::process::id()))?;
    let run_prefix = fleet.is_none().then(|| prefix.to_string());
    let config = run_config(request, source, &topology, run_prefix, fleet.as_ref())?;
    results::write_json(dir, results::CONFIG, &config)?;

    let bed = match fleet {
        Some(fleet) => Bed::Fleet(fleet),
        None => Bed::netns(&topology, prefix)?,
    };
    let options = subject_options(request, &topology, &bed);
    let hosts = bed.hosts();
    let subject = crate::subjects::open(request.subject, bed.nodes(), hosts, &topology, &options)
        .with_context(|| format!("setting up the {} subject", request.subject))?;
    let progress = indicatif::MultiProgress::new();
    let machines = bed.machines();
    let opener = crate::subjects::Opener {
        nodes: bed.nodes(),
        hosts,
        topology: &topology,
        options: &options,
    };
    let setup = Setup {
        topology: &topology,
        hosts,
        subject: &*subject,
        seed: request.seed,
        workload: &request.workload,
        progress: &progress,
        machines: machines.as_ref().map(|m| m as &dyn Machines),
        subjects: experiment
            .opens_subjects()
            .then_some(&opener as &dyn Subjects),
    };
    let mut trials = experiment
        .prepare(&setup)
        .with_context(|| format!("preparing {}", info.name))?;
    let links = measure_links(&topology, hosts, trials.paths())?;
    results::write_json(dir, LINKS, &links)?;
    let records = run_trials(request, &mut *trials, &mut log, &progress)?;
    let (metrics, paths, plots) = (trials.metrics(), trials.paths().to_vec(), trials.plots());
    drop(trials);
    drop(subject);
    bed.down()?;

    let summary = Summary::new(
        Finished {
            experiment: info.name,
            subject: request.subject,
            topology: &topology.name,
            metrics: &metrics,
            paths: &paths,
            plots: &plots,
            paper_table: info.paper_table,
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

/// The fleet of a run with `--hosts` (its topology comes from the hosts file), or none
/// and the topology file; with the file the topology was read from.
fn open_layout(request: &Request) -> anyhow::Result<(Option<FleetBed>, Topology, &Path)> {
    let fleet = match &request.hosts {
        Some(path) => Some(open_fleet(
            path,
            request.subject.is_ipop() || request.experiment.opens_subjects(),
        )?),
        None => None,
    };
    let (topology, source) = match (&fleet, &request.hosts) {
        (Some(f), Some(path)) => (f.topology.clone(), path),
        _ => (Topology::load(&request.topology)?, &request.topology),
    };
    Ok((fleet, topology, source.as_path()))
}

/// Refuses a request the experiment cannot run: a subject it does not measure, no
/// trials, workload flags it does not take.
fn check_request(request: &Request) -> anyhow::Result<()> {
    let info = request.experiment.info();
    if !info.subjects.contains(&request.subject) {
        let names: Vec<&str> = info.subjects.iter().map(|s| s.as_str()).collect();
        bail!(
            "{} does not support the {} subject (it supports {})",
            info.name,
            request.subject,
            names.join(", ")
        );
    }
    if request.trials == 0 {
        bail!("--trials must be at least 1");
    }
    check_workload(info, &request.workload)
}

/// What `config.json` records of a run: the request, the topology file (`source`) as
/// read, the run prefix of a namespace testbed, the fleet's hosts, and the machine.
fn run_config(
    request: &Request,
    source: &Path,
    topology: &Topology,
    prefix: Option<String>,
    fleet: Option<&FleetBed>,
) -> anyhow::Result<RunConfig> {
    let w = &request.workload;
    Ok(RunConfig {
        command: request.command.clone(),
        experiment: request.experiment.info().name.to_string(),
        subject: request.subject,
        edges: request.edges,
        secure: request.secure,
        node_log: request.node_log.clone(),
        trials: request.trials,
        jobs: w.jobs,
        job_seconds: w.job_seconds,
        taxa: w.taxa,
        workers: w.workers.clone(),
        db_mb: w.db_mb,
        subjects: w.subjects.clone(),
        seconds: w.seconds,
        seed: request.seed,
        out: request.out.display().to_string(),
        prefix: prefix.unwrap_or_default(),
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        topology: TopologyFile::read(source, &topology.name)
            .with_context(|| format!("reading {}", source.display()))?,
        hosts: fleet.map(|f| serde_json::json!({"members": f.members, "skipped": f.skipped})),
        git: Git::collect(),
        versions: Versions::collect(),
        machine: Machine::collect(),
    })
}

/// How the subject runs: the request's edges, security and node log level, what the
/// experiment needs of an overlay, logs in the result folder, a fleet's binaries.
fn subject_options(request: &Request, topology: &Topology, bed: &Bed) -> crate::subjects::Options {
    crate::subjects::Options {
        edges: request.edges,
        secure: request.secure,
        needs: request.experiment.overlay_needs(topology),
        log_level: request.node_log.clone(),
        logs: Some(request.out.join(results::LOGS)),
        binaries: match bed {
            Bed::Fleet(f) => f.binaries.clone(),
            Bed::Netns { .. } => Default::default(),
        },
    }
}

/// The emulated WAN links measured alone, before the trials (none without WAN links).
fn measure_links(
    topology: &Topology,
    hosts: &Hosts,
    paths: &[TrialPath],
) -> anyhow::Result<Vec<LinkResult>> {
    if topology.wans.is_empty() {
        return Ok(Vec::new());
    }
    eprintln!("measuring the emulated WAN links alone…");
    let links = crate::links::measure(topology, hosts, paths)?;
    if links.is_none() {
        eprintln!("warning: the topology has no public host to measure its WAN links against");
    }
    Ok(links.unwrap_or_default())
}

/// Runs the trials with a progress bar, appending each record to `log` as it ends (a
/// failed trial is recorded and the run goes on).
fn run_trials(
    request: &Request,
    trials: &mut dyn Trials,
    log: &mut TrialLog,
    progress: &indicatif::MultiProgress,
) -> anyhow::Result<Vec<TrialRecord>> {
    let label = format!("{} ({})", request.experiment.info().name, request.subject);
    let bar = progress
        .add(ProgressBar::new(u64::from(request.trials)))
        .with_style(
            ProgressStyle::with_template(
                "{msg} [{wide_bar}] {pos}/{len} trials, {elapsed} elapsed, {eta} left",
            )
            .context("progress bar template")?
            .progress_chars("=> "),
        );
    bar.set_message(label.clone());
    let mut records = Vec::with_capacity(request.trials as usize);
    let mut failed = 0u32;
    for index in 0..request.trials {
        let start = Instant::now();
        let result = trials.trial(index);
        let extra = trials.take_extra();
        let record = TrialRecord {
            trial: index,
            ok: result.is_ok(),
            error: result.as_ref().err().map(|e| e.0.clone()),
            values: result.unwrap_or_default(),
            samples: extra.samples,
            notes: extra.notes,
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
            bar.set_message(format!("{label}, {failed} failed"));
        }
        log.append(&record)?;
        records.push(record);
        bar.inc(1);
    }
    bar.finish();
    Ok(records)
}

/// Refuses workload flags the experiment `info` describes does not take.
pub fn check_workload(info: &ExperimentInfo, workload: &Workload) -> anyhow::Result<()> {
    if let Some(flag) = workload
        .flags()
        .into_iter()
        .find(|f| !info.workload_options.contains(f))
    {
        bail!("{flag} does not apply to {}", info.name);
    }
    Ok(())
}

/// How a testbed starts its link emulator: this very program (`/proc/self/exe`, which
/// in the forked child is the image running now, even if a rebuild replaced the file
/// since), `wow-bench __emulate`.
pub(crate) fn emulator(detach: bool) -> Launcher {
    Launcher {
        program: PathBuf::from("/proc/self/exe"),
        args: vec!["__emulate".into()],
        detach,
    }
}

/// Where a run's hosts are.
enum Bed {
    /// A namespace testbed and a host for each of its nodes.
    Netns { testbed: Testbed, hosts: Hosts },
    /// Remote hosts over SSH.
    Fleet(FleetBed),
}

impl Bed {
    /// Builds `topology` on this (the main) thread: the emulator dies with the thread
    /// that started it.
    fn netns(topology: &Topology, prefix: RunPrefix) -> anyhow::Result<Bed> {
        let testbed = Testbed::up(
            topology,
            &Options {
                prefix,
                emulator: Some(emulator(false)),
            },
        )
        .with_context(|| format!("building topology {}", topology.name))?;
        let mut hosts = Hosts::new();
        for node in &testbed.plan().nodes {
            hosts.insert(Box::new(NetnsHost::new(&testbed, &node.name)?));
        }
        Ok(Bed::Netns { testbed, hosts })
    }

    /// The virtual machines experiments may make (namespace testbeds only).
    fn machines(&self) -> Option<NetnsMachines<'_>> {
        match self {
            Bed::Netns { testbed, .. } => Some(NetnsMachines::new(testbed)),
            Bed::Fleet(_) => None,
        }
    }

    fn hosts(&self) -> &Hosts {
        match self {
            Bed::Netns { hosts, .. } => hosts,
            Bed::Fleet(f) => &f.hosts,
        }
    }

    fn nodes(&self) -> &[Node] {
        match self {
            Bed::Netns { testbed, .. } => &testbed.plan().nodes,
            Bed::Fleet(f) => &f.nodes,
        }
    }

    /// Removes the testbed, or what the run placed on the remote hosts.
    fn down(self) -> anyhow::Result<()> {
        match self {
            Bed::Netns { testbed, hosts } => {
                drop(hosts);
                testbed
                    .down()
                    .map(drop)
                    .context("removing the testbed; run `wow-bench clean`")
            }
            Bed::Fleet(fleet) => {
                drop(fleet);
                Ok(())
            }
        }
    }
}

/// Logs into the hosts of `path`, installing `ipop-node` when the run may start it.
fn open_fleet(path: &Path, ipop: bool) -> anyhow::Result<FleetBed> {
    let file = HostsFile::load(path)?;
    let binary = match ipop {
        true => {
            let binary = crate::nodes::node_binary()?;
            anyhow::ensure!(
                binary.is_file(),
                "the ipop subject needs the ipop-node binary to install on the hosts: build \
                 it with `cargo build --release` (looked for {}; set IPOP_NODE to use another)",
                binary.display()
            );
            Some(binary)
        }
        false => None,
    };
    FleetBed::open(&file, &Parallel::default(), binary.as_deref())
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
