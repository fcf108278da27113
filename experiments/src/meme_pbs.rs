//! `meme-pbs`: the WOW paper's high-throughput workload. A batch of motif-discovery jobs
//! is submitted with the PBS-compatible `qsub` to Slurm on the cluster's workstations
//! (every one configured by hostname only, so under the ipop subject the scheduler's
//! control traffic and the jobs' file traffic cross the overlay); each job copies its
//! input from the head node's NFS server, runs `glam2` (MEME suite) and copies its
//! result back. A trial is one batch of `--jobs` jobs.
//!
//! MEME itself is not packaged; glam2 is a real motif finder of the same suite. Its work
//! is set by `-r` (independent runs): before the batch the experiment times one run on
//! the idle head node and picks `-r` so that a job takes `--job-seconds` (the paper's
//! 24.1 s by default) alone on an idle core; every trial measures that sequential time
//! again (`sequential_s`).
//!
//! Every workstation has one job slot, as the paper's single-CPU VMs did, so a batch
//! keeps all of them busy; on a machine with fewer cores than workstations the jobs share
//! the cores (glam2 runs at `nice 10`, as on a cycle-scavenging pool, so the daemons stay
//! responsive), and a job's `run_s` under load is longer than `sequential_s`. The
//! figure that compares across machines is the **efficiency**: jobs per minute ÷ the
//! ideal for the cores the batch had (cores × 60 / a job's time alone on a core). The
//! paper's is 53 ÷ (33 × 60 / 24.1) ≈ 64.5 %. A job's time alone is taken as its CPU time
//! (`cpu_s`), measured by the job itself: on a shared machine the wall time of one idle
//! run (`sequential_s`) varies with what else runs, the CPU time much less.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use wow_host::{Cmd, Host};
use wow_plots::Unit;

use crate::cluster::nfs::{self, NfsServer};
use crate::cluster::slurm::{self, Slurm};
use crate::cluster::{Cluster, QUICK};
use crate::experiment::{
    Error, Experiment, ExperimentInfo, Extra, Metric, PaperFigure, PlotSpec, Setup, Stat,
    TrialError, Trials, Values,
};
use crate::path::Path;
use crate::subject::{Flow, SubjectKind};

mod job;

use job::{Finished, Job};

/// Jobs per batch by default.
const DEFAULT_JOBS: u32 = 200;
/// The paper's average sequential job time.
const PAPER_JOB_S: f64 = 24.1;
/// The paper's throughput.
const PAPER_JOBS_PER_MIN: f64 = 53.0;
/// The paper's pool.
const PAPER_NODES: f64 = 33.0;
/// glam2's iterations without improvement before a run ends.
const GLAM2_ITERATIONS: u32 = 10_000;

const PAPER: &str = "\
WOW paper (Ganguly et al., HPDC 2006): MEME jobs scheduled by PBS on 33 VMware VMs (one
CPU each) in six firewalled/NATed domains joined by IPOP over 118 PlanetLab routers.

| what | reported |
|---|---|
| throughput | 53 jobs/min |
| average sequential job time | 24.1 s |
| efficiency (53 ÷ (33 × 60 / 24.1), derived) | 64.5 % |

This machine is not 33 CPUs: compare the efficiency, and the ratio of the ipop subject's
to the physical subject's jobs/min on the same machine. MEME is not packaged here; the
jobs run glam2 of the same MEME suite (see the metrics).
";

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct MemePbs;

/// What the experiment is.
const INFO: ExperimentInfo = ExperimentInfo {
    name: "meme-pbs",
    description: "batch of glam2 (MEME suite) jobs through qsub/Slurm and NFS on the cluster's workstations: jobs/min, efficiency (WOW)",
    default_topology: "topologies/wow-6domain.toml",
    physical_topology: Some("topologies/wow-6domain-open.toml"),
    default_trials: 1,
    subjects: &[SubjectKind::Ipop, SubjectKind::Physical],
    workload_options: &["--jobs", "--job-seconds"],
    paper_table: PAPER,
};

impl Experiment for MemePbs {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error> {
        let workstations = crate::cluster::workstations(setup.topology);
        let ports = [
            slurm::SLURMCTLD_PORT,
            slurm::SLURMD_PORT,
            nfs::NFS_PORT,
            nfs::RPCBIND_PORT,
            nfs::MOUNTD_PORT,
        ];
        let cluster = Cluster::new(setup, &workstations, &ports, "meme")?;
        let paths = cluster.paths(
            setup,
            Flow::Tcp {
                port: slurm::SLURMD_PORT,
            },
        )?;
        cluster.write_hosts_files()?;
        let head = cluster.head_host()?;
        let server = NfsServer::start(&cluster)?;
        server.publish(head, "input.fa", job::sequences(setup.seed).as_bytes())?;
        head.check(
            &Cmd::new("mkdir").args(["-p", &format!("{}/out", server.export)]),
            QUICK,
        )?;
        let slurm = Slurm::start(&cluster)?;
        let dirs = job::Dirs {
            logs: cluster.make_dir("joblogs")?,
            scratch: cluster.make_dir("scratch")?,
            scripts: cluster.make_dir("scripts")?,
            url: server.url.clone(),
        };
        let input = format!("{}/input.fa", server.export);
        let target = setup.workload.job_seconds.unwrap_or(PAPER_JOB_S);
        if !(target > 0.0 && target.is_finite()) {
            return Err(Error::Preflight {
                path: "--job-seconds".into(),
                reason: format!("must be a positive number of seconds, not {target}"),
            });
        }
        let runs = runs_for(head, &input, target)?;
        let cores = cluster.cores()?;
        let isolation = isolation(setup, &cluster)?;
        Ok(Box::new(Batches {
            jobs: setup.workload.jobs.unwrap_or(DEFAULT_JOBS).max(1),
            runs,
            cores,
            input,
            dirs,
            paths,
            progress: setup.progress.clone(),
            extra: Extra::default(),
            isolation,
            slurm,
            server,
            cluster,
        }))
    }
}

/// The `-r` that makes a job take `target` seconds on `host`'s idle core: glam2's time
/// is a start-up cost plus a cost per run, fitted from one run and four.
fn runs_for(host: &dyn Host, input: &str, target: f64) -> Result<u32, Error> {
    let one = glam2_time(host, input, 1)?.as_secs_f64();
    let four = glam2_time(host, input, 4)?.as_secs_f64();
    let per_run = ((four - one) / 3.0).max(1e-3);
    let fixed = (one - per_run).max(0.0);
    Ok((((target - fixed) / per_run).round() as u32).max(1))
}

/// How long `glam2 -r runs` takes on a core of `host`: its CPU time (user + system, the
/// smaller of two runs), which is its time alone on a dedicated core.
fn glam2_time(host: &dyn Host, input: &str, runs: u32) -> Result<Duration, Error> {
    let glam2 = job::glam2(input, "/dev/null", runs, 1);
    let cmd = Cmd::new("sh")
        .args([
            "-c",
            "\"$@\" >/dev/null 2>&1 || exit 1; awk '{print $16 + $17}' /proc/$$/stat; getconf CLK_TCK",
            "sh",
            &glam2.program,
        ])
        .args(glam2.args.iter().cloned());
    let mut best = f64::MAX;
    for _ in 0..2 {
        let out = host.check(&cmd, Duration::from_secs(3600))?;
        let text = out.stdout_text();
        let v: Vec<f64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        let [ticks, hz] = v[..] else {
            return Err(Error::Preflight {
                path: host.name().to_string(),
                reason: format!("cannot read glam2's CPU time from {text:?}"),
            });
        };
        best = best.min(ticks / hz.max(1.0));
    }
    Ok(Duration::from_secs_f64(best.max(0.001)))
}

/// Which compute nodes the head node cannot reach on the underlay (ping to their
/// underlay address): under the ipop subject on a NATed topology, the cluster works only
/// through the overlay. A line for the report.
fn isolation(setup: &Setup<'_>, cluster: &Cluster<'_>) -> Result<String, Error> {
    let head = cluster.head_host()?;
    let mut script = String::new();
    for name in &cluster.computes {
        let host = cluster.host(name)?;
        if let Some(a) = host.addresses().first() {
            script.push_str(&format!(
                "(ping -c 1 -W 1 {a} >/dev/null 2>&1 && echo {name}) &\n"
            ));
        }
    }
    script.push_str("wait\n");
    let out = head.check(&Cmd::new("sh").args(["-c", &script]), QUICK)?;
    let answered: Vec<String> = out.stdout_text().lines().map(str::to_string).collect();
    let silent = cluster.computes.len() - answered.len();
    Ok(format!(
        "underlay from the head node ({} subject): {silent} of {} compute nodes do not answer \
         a ping to their underlay address (unreachable without the overlay); answering: {}",
        setup.subject.kind(),
        cluster.computes.len(),
        if answered.is_empty() {
            "none".to_string()
        } else {
            answered.join(", ")
        }
    ))
}

/// A prepared run: the cluster with its daemons (dropped in this order: jobs cancelled
/// and Slurm stopped, then the file server, then the folders).
struct Batches<'a> {
    jobs: u32,
    runs: u32,
    cores: u32,
    input: String,
    dirs: job::Dirs,
    paths: Vec<Path>,
    progress: MultiProgress,
    extra: Extra,
    isolation: String,
    slurm: Slurm<'a>,
    server: NfsServer,
    cluster: Cluster<'a>,
}

impl Batches<'_> {
    fn batch(&mut self, trial: u32) -> Result<Values, TrialError> {
        let head = self
            .cluster
            .head_host()
            .map_err(|e| TrialError(e.to_string()))?;
        let sequential = glam2_time(head, &self.input, self.runs)
            .map_err(|e| TrialError(format!("timing a job alone: {e}")))?
            .as_secs_f64();
        let bar = self.progress.add(
            ProgressBar::new(u64::from(self.jobs)).with_style(
                ProgressStyle::with_template("  jobs {bar:30} {pos}/{len} done, {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
        );
        bar.set_message("submitting");
        let mut jobs = Vec::with_capacity(self.jobs as usize);
        for k in 0..self.jobs {
            let job = Job::new(trial, k, self.runs, &self.dirs);
            crate::cluster::put(head, &job.script_path, job.script.as_bytes())?;
            let submitted = epoch();
            let id = self
                .slurm
                .qsub(&job.script_path, &job.name, &job.log, &self.dirs.scratch)
                .map_err(|e| TrialError(format!("qsub {}: {e}", job.name)))?;
            jobs.push((job, id, submitted));
        }
        bar.set_message("running");
        let timeout = Duration::from_secs_f64(600.0 + 3.0 * f64::from(self.jobs) * sequential);
        let finished = job::wait(
            &self.slurm,
            &self.cluster,
            &self.server.export,
            &jobs,
            timeout,
            &bar,
        );
        bar.finish_and_clear();
        self.progress.remove(&bar);
        let finished = finished?;
        let states = self
            .slurm
            .node_states()
            .map_err(|e| TrialError(e.to_string()))?;
        let up = states
            .values()
            .filter(|s| !s.contains("down") && !s.contains("drain"))
            .count();
        Ok(self.summarise(&finished, sequential, up))
    }

    fn summarise(&mut self, jobs: &[Finished], sequential: f64, up: usize) -> Values {
        let first = jobs.iter().map(|j| j.submitted).fold(f64::MAX, f64::min);
        let last = jobs.iter().map(|j| j.staged).fold(f64::MIN, f64::max);
        let makespan = (last - first).max(f64::EPSILON);
        let per_min = jobs.len() as f64 * 60.0 / makespan;
        let cpu = jobs.iter().map(|j| j.cpu).sum::<f64>() / jobs.len().max(1) as f64;
        let ideal = f64::from(self.cores) * 60.0 / cpu.max(f64::EPSILON);
        let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
        for j in jobs {
            for (k, v) in [
                ("queue_wait_s", j.began - j.submitted),
                ("run_s", j.end - j.start),
                ("staging_s", (j.start - j.began) + (j.staged - j.end)),
                ("turnaround_s", j.staged - j.submitted),
                ("cpu_s", j.cpu),
            ] {
                samples.entry(k.to_string()).or_default().push(v);
            }
            *per_node.entry(&j.node).or_default() += 1;
        }
        let scores: Vec<f64> = jobs.iter().map(|j| j.score).collect();
        let (lo, hi) = scores
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &s| (a.min(s), b.max(s)));
        let placed: Vec<String> = per_node.iter().map(|(n, c)| format!("{n} {c}")).collect();
        self.extra = Extra {
            samples,
            notes: vec![
                format!(
                    "{} jobs of `glam2 -r {} -n {GLAM2_ITERATIONS}` (one seed each) on {} \
                     compute nodes sharing {} cores; every job's output has a motif \
                     (glam2 score {lo:.1}–{hi:.1})",
                    jobs.len(),
                    self.runs,
                    self.cluster.computes.len(),
                    self.cores
                ),
                format!("jobs per node: {}", placed.join(", ")),
                format!(
                    "configuration names no underlay address ({} subject): slurm.conf {} \
                     bytes, ganesha.conf {} bytes, checked",
                    self.cluster.subject,
                    self.slurm.text.len(),
                    self.server.text.len()
                ),
                self.isolation.clone(),
            ],
        };
        Values::from([
            ("jobs_per_min".to_string(), per_min),
            ("efficiency".to_string(), 100.0 * per_min / ideal),
            ("sequential_s".to_string(), sequential),
            ("makespan_s".to_string(), makespan),
            ("nodes_up".to_string(), up as f64),
            ("nodes_used".to_string(), per_node.len() as f64),
        ])
    }
}

/// Now, in seconds since the epoch (the jobs' clocks are the hosts').
fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Trials for Batches<'_> {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn metrics(&self) -> Vec<Metric> {
        let paper = |stat, v: f64, source: &str| {
            Some(PaperFigure {
                stat,
                low: v,
                high: v,
                source: source.into(),
            })
        };
        let m = |name: &str, unit, description: &str, paper| Metric {
            name: name.into(),
            description: description.into(),
            unit,
            paper,
        };
        let s = Unit::Seconds;
        vec![
            m(
                "jobs_per_min",
                Unit::PerMinute,
                "jobs finished per minute over the batch (first qsub to last output on the file server); the paper's 53 on 33 CPUs is in its table, not comparable on fewer cores",
                None,
            ),
            m(
                "efficiency",
                Unit::Percent,
                "jobs/min ÷ (cores × 60 / mean cpu_s): the share of the ideal throughput of the cores the batch had, a job's CPU time standing for its time alone on a dedicated core",
                paper(
                    Stat::Mean,
                    100.0 * PAPER_JOBS_PER_MIN / (PAPER_NODES * 60.0 / PAPER_JOB_S),
                    "derived: 53 ÷ (33 × 60 / 24.1)",
                ),
            ),
            m(
                "sequential_s",
                s,
                "one job's glam2 alone on the idle head node",
                paper(
                    Stat::Mean,
                    PAPER_JOB_S,
                    "WOW §5: average single-job sequential time",
                ),
            ),
            m(
                "makespan_s",
                s,
                "first qsub to last job's output on the file server",
                None,
            ),
            m(
                "nodes_up",
                Unit::Count,
                "compute nodes the scheduler shows up after the batch",
                None,
            ),
            m(
                "nodes_used",
                Unit::Count,
                "compute nodes that ran at least one job",
                None,
            ),
            m(
                "queue_wait_s",
                s,
                "per job: qsub to the job script starting on its node",
                None,
            ),
            m(
                "run_s",
                s,
                "per job: glam2's run on its node, under the batch's load",
                None,
            ),
            m(
                "cpu_s",
                s,
                "per job: glam2's CPU time (user + system)",
                None,
            ),
            m(
                "staging_s",
                s,
                "per job: NFS copy of the input from and of the result to the head node",
                None,
            ),
            m(
                "turnaround_s",
                s,
                "per job: qsub to its result on the file server",
                None,
            ),
        ]
    }

    fn plots(&self) -> Vec<PlotSpec> {
        vec![
            PlotSpec::Cdf {
                file: "meme_job_times".into(),
                title: "glam2 jobs through qsub: queue wait, run, turnaround".into(),
                metrics: vec!["queue_wait_s".into(), "run_s".into(), "turnaround_s".into()],
            },
            PlotSpec::Bars {
                file: "meme_efficiency".into(),
                title: "Batch efficiency (share of the cores' ideal throughput)".into(),
                metrics: vec!["efficiency".into()],
            },
        ]
    }

    fn trial(&mut self, index: u32) -> Result<Values, TrialError> {
        self.extra = Extra::default();
        self.batch(index)
    }

    fn take_extra(&mut self) -> Extra {
        std::mem::take(&mut self.extra)
    }
}
