//! `fastdnaml-pvm`: the WOW paper's parallel workload. A PVM virtual machine spans the
//! cluster's workstations (its daemons started over SSH by hostname, so under the ipop
//! subject all of PVM's traffic crosses the overlay), and `fdpvm-master`
//! (workloads/fastdnaml-pvm) builds a maximum-likelihood tree by fastDNAml's stepwise
//! addition with local rearrangements, farming every candidate tree out to PVM workers
//! that score it with the real serial `fastDNAml` — the structure of the paper's parallel
//! fastDNAml (foreman and workers).
//!
//! Each trial times the sequential run (`--local`: the same algorithm, every candidate
//! scored in turn on the head node, no PVM) and then the parallel run with each worker
//! count of `--workers`, and checks every parallel run found the sequential run's tree
//! with the same log likelihood. Speedup is sequential ÷ parallel wall time; efficiency
//! is speedup ÷ the cores the workers could use (fewer than the workers on a small
//! machine). The alignment is simulated along a random tree (`simalign`, seeded by the
//! run's seed) with `--taxa` taxa.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Deserialize;
use wow_host::{Cmd, Host};
use wow_plots::Unit;

use crate::cluster::pvm::Pvm;
use crate::cluster::ssh::{SSH_PORT, Ssh};
use crate::cluster::{Cluster, QUICK, require_workloads, workload_bin};
use crate::experiment::{
    Error, Experiment, ExperimentInfo, Extra, Metric, PaperFigure, PlotSpec, Setup, Stat,
    TrialError, Trials, Values,
};
use crate::path::Path;
use crate::subject::{Flow, SubjectKind};

/// Taxa by default (the sequential run takes minutes here).
const DEFAULT_TAXA: u32 = 50;
/// Alignment columns.
const SITES: u32 = 2000;
/// The paper's speedup.
const PAPER_SPEEDUP: f64 = 13.5;
/// How long one run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

const PAPER: &str = "\
WOW paper (Ganguly et al., HPDC 2006): the PVM-based parallel fastDNAml (a foreman
farming candidate trees to workers) on the WOW's VMs in six firewalled/NATed domains.

| what | reported |
|---|---|
| parallel speedup | 13.5 |

This machine has fewer cores than the paper's pool had VMs: speedup is bounded by the
cores; compare the efficiency (speedup ÷ usable cores) and the ipop ÷ physical ratio.
";

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct FastDnamlPvm;

/// What the experiment is.
const INFO: ExperimentInfo = ExperimentInfo {
    name: "fastdnaml-pvm",
    description: "parallel fastDNAml over PVM (daemons started by ssh) on the cluster's workstations: speedup, likelihood check (WOW)",
    default_topology: "topologies/wow-6domain.toml",
    physical_topology: Some("topologies/wow-6domain-open.toml"),
    default_trials: 1,
    subjects: &[SubjectKind::Ipop, SubjectKind::Physical],
    workload_options: &["--taxa", "--workers"],
    paper_table: PAPER,
};

impl Experiment for FastDnamlPvm {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error> {
        let workstations = crate::cluster::workstations(setup.topology);
        let cluster = Cluster::new(setup, &workstations, &[SSH_PORT], "fdpvm")?;
        let bin = workload_bin();
        let head = cluster.head_host()?;
        require_workloads(head, &["simalign", "fdpvm-master", "fdpvm-worker"])?;
        let taxa = setup.workload.taxa.unwrap_or(DEFAULT_TAXA);
        if !(4..=200).contains(&taxa) {
            return Err(Error::Preflight {
                path: "--taxa".into(),
                reason: format!("{taxa} taxa: fastDNAml needs 4 to 200 here"),
            });
        }
        let hosts = workstations.len() as u32;
        let workers = match &setup.workload.workers {
            Some(list) if list.iter().all(|&w| w >= 1) && !list.is_empty() => list.clone(),
            Some(list) => {
                return Err(Error::Preflight {
                    path: "--workers".into(),
                    reason: format!("{list:?}: worker counts must be at least 1"),
                });
            }
            None => std::iter::successors(Some(1u32), |w| Some(w * 2))
                .take_while(|&w| w <= hosts)
                .collect(),
        };
        let paths = cluster.paths(setup, Flow::Tcp { port: SSH_PORT })?;
        cluster.write_hosts_files()?;
        let alignment = format!("{}/alignment.phy", cluster.dir);
        head.check(
            &Cmd::new("sh").args([
                "-c",
                "\"$1\" --taxa \"$2\" --sites \"$3\" --seed \"$4\" > \"$5\"",
                "sh",
                &format!("{bin}/simalign"),
                &taxa.to_string(),
                &SITES.to_string(),
                &setup.seed.to_string(),
                &alignment,
            ]),
            QUICK,
        )?;
        let scratch = cluster.make_dir("scratch")?;
        let ssh = Ssh::start(&cluster)?;
        let pvm = Pvm::start(&cluster, &ssh, &bin)?;
        let cores = cluster.cores()?;
        Ok(Box::new(Sweeps {
            workers,
            cores,
            taxa,
            bin,
            alignment,
            scratch,
            paths,
            progress: setup.progress.clone(),
            extra: Extra::default(),
            pvm,
            _ssh: ssh,
            cluster,
        }))
    }
}

/// What `fdpvm-master` prints (one JSON line).
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct RunResult {
    evaluations: u64,
    wall_s: f64,
    log_likelihood: f64,
    tree: String,
    #[serde(default)]
    per_host: BTreeMap<String, u64>,
}

/// A prepared run: the virtual machine, then SSH, then the folders (dropped in order).
struct Sweeps<'a> {
    workers: Vec<u32>,
    cores: u32,
    taxa: u32,
    bin: String,
    alignment: String,
    scratch: String,
    paths: Vec<Path>,
    progress: MultiProgress,
    extra: Extra,
    pvm: Pvm<'a>,
    /// The nodes' SSH daemons, stopped after the virtual machine halts.
    _ssh: Ssh,
    cluster: Cluster<'a>,
}

impl Sweeps<'_> {
    fn head(&self) -> Result<&dyn Host, TrialError> {
        self.cluster
            .head_host()
            .map_err(|e| TrialError(e.to_string()))
    }

    /// `fdpvm-master` with `mode` (`--local`, or `--workers W`).
    fn run(&self, mode: &[&str]) -> Result<RunResult, TrialError> {
        let cmd = self.pvm.env(
            Cmd::new(format!("{}/fdpvm-master", self.bin))
                .args(mode.iter().copied())
                .args(["--scratch", &self.scratch, &self.alignment]),
        );
        let out = self.head()?.run(&cmd, RUN_TIMEOUT)?;
        if !out.success() {
            return Err(TrialError(format!(
                "fdpvm-master {} failed: {}; PVM logs: {}",
                mode.join(" "),
                out.stderr_text().trim(),
                self.pvm.log_tails(&self.cluster)
            )));
        }
        let text = out.stdout_text();
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or("");
        serde_json::from_str(line).map_err(|e| {
            TrialError(format!(
                "fdpvm-master {}: bad result line {line:?}: {e}",
                mode.join(" ")
            ))
        })
    }

    fn sweep(&mut self) -> Result<Values, TrialError> {
        let bar = self.progress.add(
            ProgressBar::new(1 + self.workers.len() as u64).with_style(
                ProgressStyle::with_template("  runs {bar:30} {pos}/{len}, {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        );
        bar.set_message("sequential (--local)");
        let result = self.measure(&bar);
        bar.finish_and_clear();
        self.progress.remove(&bar);
        result
    }

    fn measure(&mut self, bar: &ProgressBar) -> Result<Values, TrialError> {
        let sequential = self.run(&["--local"])?;
        bar.inc(1);
        let mut values = Values::from([("sequential_s".to_string(), sequential.wall_s)]);
        let mut notes = vec![format!(
            "sequential: {} taxa × {} sites, {} fastDNAml evaluations in {:.1} s, \
             ln L = {}",
            self.taxa, SITES, sequential.evaluations, sequential.wall_s, sequential.log_likelihood
        )];
        let mut last = (0u32, 0.0f64);
        for &w in &self.workers.clone() {
            bar.set_message(format!("{w} workers"));
            let parallel = self.run(&["--workers", &w.to_string()])?;
            bar.inc(1);
            let same = parallel.tree == sequential.tree
                && (parallel.log_likelihood - sequential.log_likelihood).abs()
                    <= 1e-9 * sequential.log_likelihood.abs();
            if !same {
                return Err(TrialError(format!(
                    "{w} workers found ln L {} (tree {}), the sequential run ln L {} (tree {})",
                    parallel.log_likelihood,
                    parallel.tree,
                    sequential.log_likelihood,
                    sequential.tree
                )));
            }
            let speedup = sequential.wall_s / parallel.wall_s;
            let usable = w.min(self.cores).max(1);
            values.insert(format!("wall_s_w{w}"), parallel.wall_s);
            values.insert(format!("speedup_w{w}"), speedup);
            values.insert(
                format!("efficiency_w{w}"),
                100.0 * speedup / f64::from(usable),
            );
            let hosts: Vec<String> = parallel
                .per_host
                .iter()
                .map(|(h, n)| format!("{h} {n}"))
                .collect();
            notes.push(format!(
                "{w} workers: {:.1} s, speedup {speedup:.2}, same tree and ln L; \
                 evaluations per host: {}",
                parallel.wall_s,
                hosts.join(", ")
            ));
            last = (w, speedup);
        }
        values.insert("speedup".into(), last.1);
        values.insert(
            "efficiency".into(),
            100.0 * last.1 / f64::from(last.0.min(self.cores).max(1)),
        );
        notes.push(format!(
            "{} hosts in the PVM virtual machine; the workers could use {} cores",
            self.pvm.hosts, self.cores
        ));
        self.extra.notes = notes;
        Ok(values)
    }
}

impl Trials for Sweeps<'_> {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn metrics(&self) -> Vec<Metric> {
        let m = |name: String, unit, description: String, paper| Metric {
            name,
            description,
            unit,
            paper,
        };
        let max = self.workers.iter().max().copied().unwrap_or(1);
        let mut metrics = vec![
            m(
                "sequential_s".into(),
                Unit::Seconds,
                "fdpvm-master --local: every candidate tree scored in turn on the head node".into(),
                None,
            ),
            m(
                "speedup".into(),
                Unit::Ratio,
                format!("sequential ÷ parallel wall time with {max} workers"),
                Some(PaperFigure {
                    stat: Stat::Mean,
                    low: PAPER_SPEEDUP,
                    high: PAPER_SPEEDUP,
                    source: "WOW abstract: parallel speedup of 13.5 for PVM fastDNAml".into(),
                }),
            ),
            m(
                "efficiency".into(),
                Unit::Percent,
                format!("speedup with {max} workers ÷ the cores they could use"),
                None,
            ),
        ];
        for &w in &self.workers {
            metrics.push(m(
                format!("wall_s_w{w}"),
                Unit::Seconds,
                format!("parallel run with {w} PVM workers"),
                None,
            ));
            metrics.push(m(
                format!("speedup_w{w}"),
                Unit::Ratio,
                format!("sequential ÷ parallel wall time, {w} workers"),
                None,
            ));
            metrics.push(m(
                format!("efficiency_w{w}"),
                Unit::Percent,
                format!("speedup with {w} workers ÷ min({w}, cores)"),
                None,
            ));
        }
        metrics
    }

    fn plots(&self) -> Vec<PlotSpec> {
        let each = |prefix: &str| -> Vec<String> {
            self.workers
                .iter()
                .map(|w| format!("{prefix}_w{w}"))
                .collect()
        };
        vec![
            PlotSpec::Bars {
                file: "fastdnaml_speedup".into(),
                title: "Parallel fastDNAml over PVM: speedup by workers".into(),
                metrics: each("speedup"),
            },
            PlotSpec::Bars {
                file: "fastdnaml_efficiency".into(),
                title: "Parallel fastDNAml over PVM: efficiency by workers".into(),
                metrics: each("efficiency"),
            },
        ]
    }

    fn trial(&mut self, _index: u32) -> Result<Values, TrialError> {
        self.extra = Extra::default();
        self.sweep()
    }

    fn take_extra(&mut self) -> Extra {
        std::mem::take(&mut self.extra)
    }
}
