//! `wow-bench run EXPERIMENT`: runs an experiment and writes its result folder.
//!
//! Exit status: 0 when every trial succeeded, [`FAILED_TRIALS`] when the run finished
//! but some trial failed (the results are written), 1 when the run could not be done.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use wow_experiments::{Edges, Experiment, SubjectKind, Workload};

use crate::results::Summary;
use crate::results::report::{figure, mean, ratio};
use crate::runner::{Request, default_out};
use crate::text_table::TextTable;

/// The exit status of a finished run with failed trials.
pub const FAILED_TRIALS: u8 = 3;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The experiment (see `wow-bench list`).
    experiment: String,
    /// Topology file (default: the experiment's).
    #[arg(long, conflicts_with = "hosts")]
    topology: Option<PathBuf>,
    /// Run on the remote hosts of this hosts file over SSH instead of a namespace
    /// testbed (see harness/FLEET.md; the ipop subject needs root logins).
    #[arg(long)]
    hosts: Option<PathBuf>,
    /// Number of trials (default: the experiment's); `--rounds` for peers, where a
    /// trial is one round over every subject.
    #[arg(long, visible_alias = "rounds")]
    trials: Option<u32>,
    /// Result folder (default: results/EXPERIMENT/TIMESTAMP).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed handed to the experiment.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// What carries the traffic: ipop (the overlay; the default where the experiment
    /// supports it) or physical (the underlay, the papers' baseline). Several, comma
    /// separated (`ipop,physical`), run one after the other in one invocation, each in
    /// OUT/SUBJECT, and OUT/comparison.md gives each metric's ratio to the first.
    #[arg(long)]
    subject: Option<String>,
    /// Topology file of the physical subject when several subjects run (default: the
    /// --topology given, else the experiment's physical topology).
    #[arg(long)]
    physical_topology: Option<PathBuf>,
    /// Which edges the ipop subject's nodes make: udp (TCP only where UDP is blocked)
    /// or tcp (the IPOP paper's IPOP-TCP rows).
    #[arg(long, default_value = "udp")]
    edges: String,
    /// Plain edges and an open namespace for the ipop subject (the papers' IPOP, for
    /// comparisons). By default the run makes an overlay secret and a namespace key:
    /// every edge is an authenticated, encrypted Noise session and the namespace's
    /// packets are sealed end to end.
    #[arg(long)]
    insecure: bool,
    /// Log filter of the ipop subject's nodes (error, warn, info, debug, trace, or
    /// tracing directives); each node's log is written to the result folder's logs/.
    #[arg(long, default_value = "info")]
    node_log: String,
    /// Jobs per batch (meme-pbs: glam2 jobs submitted with qsub per trial).
    #[arg(long)]
    jobs: Option<u32>,
    /// How long one job runs alone on an idle core, in seconds (meme-pbs: the glam2
    /// job is sized to it; the paper's MEME jobs took 24.1 s).
    #[arg(long)]
    job_seconds: Option<f64>,
    /// Taxa of the simulated alignment (fastdnaml-pvm).
    #[arg(long)]
    taxa: Option<u32>,
    /// Numbers of parallel workers to measure, comma separated (fastdnaml-pvm:
    /// `--workers 1,2,4`).
    #[arg(long, value_delimiter = ',')]
    workers: Option<Vec<u32>>,
    /// Size of each database file in MB (mpi-nfs; the paper's were 32).
    #[arg(long)]
    db_mb: Option<f64>,
    /// Seconds of each iperf3 throughput test (peers; default 10).
    #[arg(long)]
    seconds: Option<u32>,
    /// Print summary.json on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.experiment == super::nat_matrix::NAME {
        return run_nat_matrix(args);
    }
    let experiment = find_experiment(&args.experiment)?;
    let info = experiment.info();
    let (subjects, opened) = subjects(&args, experiment)?;
    if args.physical_topology.is_some() && subjects.len() < 2 {
        bail!("--physical-topology applies only with several subjects (--subject ipop,physical)");
    }
    let edges = Edges::from_name(&args.edges)
        .with_context(|| format!("unknown --edges {:?}; expected udp or tcp", args.edges))?;
    let topology = match &args.topology {
        Some(t) => t.clone(),
        None => locate(info.default_topology)?,
    };
    let workload = Workload {
        jobs: args.jobs,
        job_seconds: args.job_seconds,
        taxa: args.taxa,
        workers: args.workers.clone(),
        db_mb: args.db_mb,
        subjects: opened,
        seconds: args.seconds,
    };
    crate::runner::check_workload(info, &workload)?;
    if args.hosts.is_none() {
        super::require_root()?;
    }
    let out = args.out.clone().unwrap_or_else(|| default_out(info.name));
    let several = subjects.len() > 1;
    let mut outcomes = Vec::new();
    for &subject in &subjects {
        let topology = match (subject, &args.physical_topology, &args.topology) {
            (SubjectKind::Physical, Some(t), _) => t.clone(),
            (SubjectKind::Physical, None, None) if several => locate(info.physical_topology())?,
            _ => topology.clone(),
        };
        let request = Request {
            experiment,
            topology,
            hosts: args.hosts.clone(),
            trials: args.trials.unwrap_or(info.default_trials),
            out: if several {
                out.join(subject.as_str())
            } else {
                out.clone()
            },
            seed: args.seed,
            subject,
            edges,
            secure: !args.insecure,
            node_log: args.node_log.clone(),
            workload: workload.clone(),
            command: std::env::args().collect(),
        };
        let outcome = crate::runner::run(&request)?;
        let table = table(&outcome.summary);
        if args.json {
            eprint!("{table}");
        } else {
            print!("{table}");
            println!("results in {}", outcome.dir.display());
        }
        outcomes.push(outcome);
    }
    let summaries: Vec<&Summary> = outcomes.iter().map(|o| &o.summary).collect();
    report(&summaries, &out, args.json)?;
    Ok(if summaries.iter().any(|s| s.failed_trials > 0) {
        ExitCode::from(FAILED_TRIALS)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs nat-matrix, refusing the flags it does not take.
fn run_nat_matrix(args: Args) -> anyhow::Result<ExitCode> {
    let flags = [
        ("--topology", args.topology.is_some()),
        ("--trials", args.trials.is_some()),
        ("--subject", args.subject.is_some()),
        ("--hosts", args.hosts.is_some()),
    ];
    if let Some((flag, _)) = flags.iter().find(|(_, given)| *given) {
        bail!(
            "{flag} does not apply to nat-matrix: it builds its own two-site testbed \
             for each pair of profiles and runs ipop-node on it once"
        );
    }
    super::nat_matrix::run(args.json, args.out, !args.insecure)
}

/// The experiment called `name`, or an error listing every name `run` takes.
fn find_experiment(name: &str) -> anyhow::Result<&'static dyn Experiment> {
    wow_experiments::find(name).with_context(|| {
        let mut names: Vec<&str> = wow_experiments::ALL.iter().map(|e| e.info().name).collect();
        names.push(super::nat_matrix::NAME);
        format!(
            "unknown experiment {:?}; expected one of {}",
            name,
            names.join(", ")
        )
    })
}

/// The subjects the runner sets up, one run each, and the list an experiment that
/// opens its subjects itself gets (the runner then sets up only the underlay, which
/// starts nothing). Without `--subject`: ipop where the experiment measures it, else its
/// first subject.
fn subjects(
    args: &Args,
    experiment: &dyn wow_experiments::Experiment,
) -> anyhow::Result<(Vec<SubjectKind>, Option<Vec<SubjectKind>>)> {
    let asked = match &args.subject {
        Some(names) => Some(
            names
                .split(',')
                .map(|name| {
                    SubjectKind::from_name(name.trim()).with_context(|| {
                        let names: Vec<&str> =
                            SubjectKind::ALL.iter().map(|s| s.as_str()).collect();
                        format!(
                            "unknown subject {name:?}; expected one of {}",
                            names.join(", ")
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
        None => None,
    };
    let info = experiment.info();
    Ok(match asked {
        _ if experiment.opens_subjects() => (vec![SubjectKind::Physical], asked),
        Some(list) => (list, None),
        None if info.subjects.contains(&SubjectKind::Ipop) => (vec![SubjectKind::Ipop], None),
        None => (vec![info.subjects[0]], None),
    })
}

/// With several subjects, the comparison (printed, and written to `out`); with
/// `--json`, the summaries on stdout.
fn report(summaries: &[&Summary], out: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let several = summaries.len() > 1;
    if several {
        let text = super::compare::render(summaries);
        let path = out.join(super::compare::FILE);
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        if json {
            eprint!("\n{text}");
        } else {
            print!("\n{text}");
            println!("comparison in {}", path.display());
        }
    }
    if json {
        if several {
            println!("{}", serde_json::to_string_pretty(summaries)?);
        } else {
            println!("{}", serde_json::to_string_pretty(summaries[0])?);
        }
    }
    Ok(())
}

/// A shipped file, relative to the current folder or else to the source tree.
fn locate(relative: &str) -> anyhow::Result<PathBuf> {
    let here = PathBuf::from(relative);
    if here.exists() {
        return Ok(here);
    }
    let tree = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    if tree.exists() {
        return Ok(tree);
    }
    bail!("cannot find {relative}; run from the repository root or pass --topology")
}

/// The readable summary table printed at the end of a run.
pub(crate) fn table(s: &Summary) -> String {
    let mut rows = vec![
        [
            "metric", "unit", "n", "p50", "p90", "p99", "mean", "min", "max", "paper", "÷ paper",
        ]
        .map(String::from),
    ];
    for (name, m) in &s.metrics {
        let u = m.unit;
        let paper = m.paper.as_ref();
        rows.push([
            name.clone(),
            u.to_string(),
            m.count.to_string(),
            figure(m.p50, u),
            figure(m.p90, u),
            figure(m.p99, u),
            mean(m.mean, u),
            figure(m.min, u),
            figure(m.max, u),
            paper.map_or("–".into(), |p| {
                if p.low == p.high {
                    figure(Some(p.low), u)
                } else {
                    format!("{}–{}", figure(Some(p.low), u), figure(Some(p.high), u))
                }
            }),
            paper.map_or("–".into(), |p| ratio(m.stat(p.stat), p.low, p.high)),
        ]);
    }
    for l in &s.links {
        let u = l.rtt.unit;
        rows.push([
            format!("link {}", l.link),
            u.to_string(),
            l.rtt.count.to_string(),
            figure(l.rtt.p50, u),
            figure(l.rtt.p90, u),
            figure(l.rtt.p99, u),
            mean(l.rtt.mean, u),
            figure(l.rtt.min, u),
            figure(l.rtt.max, u),
            format!("{:.3} cfg", l.expected_rtt_ms),
            ratio(l.rtt.mean, l.expected_rtt_ms, l.expected_rtt_ms),
        ]);
    }
    let mut out = format!(
        "\n{} — {} subject on {}: {} trials, {} failed\n",
        s.experiment, s.subject, s.topology, s.trials, s.failed_trials
    );
    for p in &s.paths {
        let _ = writeln!(out, "path: {p}");
    }
    let mut t = TextTable::new(2, 2).right(1..rows[0].len());
    for row in &rows {
        t.row(row);
    }
    out + &t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_table_aligns_metrics_paper_figures_and_links() {
        let summary: Summary = serde_json::from_value(serde_json::json!({
            "experiment": "latency", "subject": "physical", "topology": "wan-3site",
            "trials": 3, "failed_trials": 1,
            "metrics": {"rtt": {"description": "ping RTT", "unit": "ms", "count": 2,
                "p50": 38.1, "p90": 38.5, "p99": 38.5, "mean": 38.3, "min": 38.1, "max": 38.5,
                "paper": {"stat": "mean", "low": 34.492, "high": 38.801, "source": "Table I"}}},
            "paths": [], "plots": [], "paper_table": "",
            "links": [{"link": "site lsu", "from": "lsu-gw", "to": "public-0",
                "expected_rtt_ms": 36.0, "sent": 2, "received": 2,
                "rtt": {"description": "l", "unit": "ms", "count": 2, "p50": 36.2, "p90": 36.4,
                    "p99": 36.4, "mean": 36.3, "min": 36.2, "max": 36.4, "paper": null}}]
        }))
        .unwrap();
        let t = table(&summary);
        assert!(t.contains("latency — physical subject on wan-3site: 3 trials, 1 failed"));
        let lines: Vec<&str> = t.lines().filter(|l| l.starts_with("  ")).collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(
            lines[1].contains("34.492–38.801") && lines[1].ends_with("0.99–1.11×"),
            "{t}"
        );
        assert!(
            lines[2].contains("36.000 cfg") && lines[2].ends_with("1.01×"),
            "{t}"
        );
        let widths: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "aligned: {t}");
    }
}
