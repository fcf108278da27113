//! `mpi-nfs`: the IPOP paper's MPI case study (Table IV). A file server exports the
//! images and four databases over NFS (nfs-ganesha on the head node); four compute nodes
//! run an MPI image analysis launched over SSH by hostname (Open MPI, its TCP traffic
//! held to the subject's addresses), each reading the files through a client-side disk
//! cache filled from NFS — the paper's "NFS-based virtual file system" with user-level
//! caching. The analysis is `lss-mpi` (workloads/lss-mpi): the LSS application is not
//! available, so a stand-in of its structure does the work (a master hands out image ×
//! database × pixel-block tasks; workers fit every database spectrum to every pixel by
//! linear least squares and return the best; the master derives the image parameters).
//!
//! A trial analyses six consecutive images sequentially on one compute node, then in
//! parallel on the four (master and one worker on the first), each with cold caches, and
//! reports the first image (cold) apart from images 2–6 (warm), as Table IV does. Every
//! image's result checksum must be the same in both runs. In the parallel run the master
//! (rank 0, which only hands out tasks and combines results) runs on the file server
//! and one worker on each compute node.

use serde::Deserialize;
use wow_host::Cmd;
use wow_plots::Unit;

use crate::cluster::nfs::{self, NfsServer};
use crate::cluster::ssh::{SSH_PORT, Ssh};
use crate::cluster::{Cluster, require_workloads, workload_bin};
use crate::experiment::{
    Error, Experiment, ExperimentInfo, Extra, Metric, PaperFigure, PlotSpec, Setup, Stat,
    TrialError, Trials, Values,
};
use crate::path::Path;
use crate::subject::{Flow, SubjectKind};

/// Images per run (Table IV).
const IMAGES: u32 = 6;
/// Databases (Table IV: four of 32 MB).
const DATABASES: u32 = 4;
/// Their size by default.
const DEFAULT_DB_MB: f64 = 32.0;
/// Compute nodes by default (Table IV's parallel run).
const DEFAULT_NODES: u32 = 4;
/// How long the sequential run may take.
const RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4 * 3600);
/// The parallel run may take this many times the sequential run (and at least
/// [`MIN_PARALLEL_TIMEOUT`]): a stalled MPI job fails its trial instead of the run.
const PARALLEL_SLACK: f64 = 4.0;
const MIN_PARALLEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Table IV: (1 node image 1, images 2–6), (4 nodes image 1, images 2–6), seconds.
const PAPER_SEQUENTIAL: (f64, f64) = (811.0, 834.0);
const PAPER_PARALLEL: (f64, f64) = (378.0, 217.0);

const PAPER: &str = "\
IPOP paper (Ganguly et al., IPDPS 2006), Table IV: LSS image analysis (MPI, LAM 7.0.6,
launched over SSH) on nodes joined by IPOP across firewalled domains; images and four
32 MB databases on an NFS file server read through a client-side disk cache.

| nodes | image 1 (cold caches) | images 2–6 | total |
|---|---|---|---|
| 1 | 811 s | 834 s | 1645 s |
| 4 | 378 s | 217 s | 595 s |

Speedup on images 2–6: 834 ÷ 217 = 3.8. The application here is a stand-in of LSS's
structure (lss-mpi), not LSS; compare speedups, and ipop ÷ physical on this machine.
";

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct MpiNfs;

/// What the experiment is.
const INFO: ExperimentInfo = ExperimentInfo {
    name: "mpi-nfs",
    description: "MPI image analysis (LSS stand-in) over SSH with its data on NFS and a client-side cache: cold/warm times, speedup (IPOP Table IV)",
    default_topology: "topologies/wan-3site.toml",
    physical_topology: Some("topologies/wan-3site-open.toml"),
    default_trials: 1,
    subjects: &[SubjectKind::Ipop, SubjectKind::Physical],
    workload_options: &["--workers", "--db-mb"],
    paper_table: PAPER,
};

impl Experiment for MpiNfs {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error> {
        let nodes = match setup.workload.workers.as_deref() {
            None => DEFAULT_NODES,
            Some([n]) if *n >= 1 => *n,
            Some(list) => {
                return Err(Error::Preflight {
                    path: "--workers".into(),
                    reason: format!("{list:?}: give one number of compute nodes"),
                });
            }
        };
        let db_mb = setup.workload.db_mb.unwrap_or(DEFAULT_DB_MB);
        if !(0.01..=1024.0).contains(&db_mb) {
            return Err(Error::Preflight {
                path: "--db-mb".into(),
                reason: format!("{db_mb} MB: a database is 0.01 to 1024 MB"),
            });
        }
        // Workstations come from the sites in turn: the computes span the domains.
        let members: Vec<String> = crate::cluster::workstations(setup.topology)
            .into_iter()
            .take(nodes as usize + 1)
            .collect();
        if members.len() < nodes as usize + 1 {
            return Err(Error::Topology {
                topology: setup.topology.name.clone(),
                reason: format!(
                    "{nodes} compute nodes and a file server need {} workstations",
                    nodes + 1
                ),
            });
        }
        let ports = [SSH_PORT, nfs::NFS_PORT, nfs::RPCBIND_PORT, nfs::MOUNTD_PORT];
        let cluster = Cluster::new(setup, &members, &ports, "mpi")?;
        let bin = workload_bin();
        let host = cluster.head_host()?;
        require_workloads(host, &["lssgen", "lss-mpi"])?;
        let paths = cluster.paths(
            setup,
            Flow::Tcp {
                port: nfs::NFS_PORT,
            },
        )?;
        cluster.write_hosts_files()?;
        let server = NfsServer::start(&cluster)?;
        host.check(
            &Cmd::new(format!("{bin}/lssgen")).args([
                "--out",
                &server.export,
                "--seed",
                &setup.seed.to_string(),
                "--dbs",
                &DATABASES.to_string(),
                "--db-mb",
                &db_mb.to_string(),
                "--images",
                &IMAGES.to_string(),
            ]),
            std::time::Duration::from_secs(600),
        )?;
        let ssh = Ssh::start(&cluster)?;
        let include = covering_cidr(cluster.addresses.values().copied());
        Ok(Box::new(Analyses {
            bin,
            url: server.url.clone(),
            include,
            cache: format!("{}/cache", cluster.dir),
            out: format!("{}/results", cluster.dir),
            db_mb,
            cores: cluster.cores()?,
            paths,
            extra: Extra::default(),
            ssh,
            _server: server,
            cluster,
        }))
    }
}

/// The smallest CIDR block holding every address: what Open MPI may use (its
/// `*_tcp_if_include`), so that MPI's traffic goes only to the subject's addresses (the
/// virtual network's under ipop; a list of /32s does not keep it off other interfaces).
fn covering_cidr(addresses: impl Iterator<Item = std::net::Ipv4Addr>) -> String {
    let all: Vec<u32> = addresses.map(u32::from).collect();
    let first = all.first().copied().unwrap_or(0);
    let differ = all.iter().fold(0u32, |d, a| d | (a ^ first));
    let prefix = differ.leading_zeros();
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    format!("{}/{prefix}", std::net::Ipv4Addr::from(first & mask))
}

/// One line of `lss-mpi`'s output.
#[derive(Debug, Clone, Deserialize)]
struct Image {
    image: u32,
    seconds: f64,
    fetched_db_bytes: u64,
    checksum: String,
}

/// A prepared run (dropped in order: SSH, the file server, the folders).
struct Analyses<'a> {
    bin: String,
    url: String,
    include: String,
    cache: String,
    out: String,
    db_mb: f64,
    cores: u32,
    paths: Vec<Path>,
    extra: Extra,
    ssh: Ssh,
    _server: NfsServer,
    cluster: Cluster<'a>,
}

impl Analyses<'_> {
    /// Runs `cmd` on the first compute node and reads its per-image lines.
    fn run(
        &self,
        on: &str,
        what: &str,
        cmd: Cmd,
        timeout: std::time::Duration,
    ) -> Result<Vec<Image>, TrialError> {
        let first = on;
        let host = self
            .cluster
            .host(first)
            .map_err(|e| TrialError(e.to_string()))?;
        let out = host.run(&cmd, timeout)?;
        if !out.success() {
            let why = if out.timed_out {
                format!("no result within {} s", timeout.as_secs())
            } else {
                "failed".to_string()
            };
            return Err(TrialError(format!(
                "{what} on {first}: {why}: {}",
                out.stderr_text().trim()
            )));
        }
        let images: Vec<Image> = out
            .stdout_text()
            .lines()
            .filter(|l| l.contains("\"image\""))
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .map_err(|e| TrialError(format!("{what}: bad output line: {e}")))?;
        if images.len() != IMAGES as usize {
            return Err(TrialError(format!(
                "{what}: {} of {IMAGES} images analysed",
                images.len()
            )));
        }
        Ok(images)
    }

    /// `lss-mpi` with the run's data and caches (emptied first: `--cold`).
    fn lss(&self, program: Cmd) -> Cmd {
        program.args([
            "--nfs",
            &self.url,
            "--cache",
            &self.cache,
            "--out",
            &self.out,
            "--cold",
            "--images",
            &IMAGES.to_string(),
        ])
    }

    fn analyse(&mut self) -> Result<Values, TrialError> {
        let lss = format!("{}/lss-mpi", self.bin);
        let sequential = self.run(
            &self.cluster.computes[0],
            "sequential",
            self.lss(Cmd::new(&lss).arg("--sequential")),
            RUN_TIMEOUT,
        )?;
        let total: f64 = sequential.iter().map(|i| i.seconds).sum();
        let timeout =
            MIN_PARALLEL_TIMEOUT.max(std::time::Duration::from_secs_f64(total * PARALLEL_SLACK));
        let nodes = &self.cluster.computes;
        // One process per host: the master (rank 0) on the file server, a worker on each
        // compute node. (A worker beside the master on one node stalled Open MPI 4.1's
        // TCP connection set-up here: "cannot find a corresponding process entry".)
        let hosts: Vec<String> = std::iter::once(&self.cluster.head)
            .chain(nodes)
            .map(|n| format!("{n}:1"))
            .collect();
        let mpirun = Cmd::new("mpirun")
            .args(["--allow-run-as-root", "--bind-to", "none", "-np"])
            .arg((nodes.len() + 1).to_string())
            .args(["--host", &hosts.join(",")])
            .args(["-mca", "plm_rsh_agent", &self.ssh.client])
            .args(["-mca", "btl", "tcp,self"])
            .args(["-mca", "btl_tcp_if_include", &self.include])
            .args(["-mca", "oob_tcp_if_include", &self.include])
            .arg(&lss);
        let parallel = self.run(
            &self.cluster.head,
            "parallel (mpirun)",
            self.lss(mpirun),
            timeout,
        )?;
        for (s, p) in sequential.iter().zip(&parallel) {
            if s.image != p.image || s.checksum != p.checksum {
                return Err(TrialError(format!(
                    "image {}: parallel result {} differs from the sequential {}",
                    s.image, p.checksum, s.checksum
                )));
            }
        }
        let split = |run: &[Image]| -> (f64, f64) {
            (run[0].seconds, run[1..].iter().map(|i| i.seconds).sum())
        };
        let (s1, s26) = split(&sequential);
        let (p1, p26) = split(&parallel);
        let fetched = |run: &[Image], i: usize| run[i].fetched_db_bytes as f64 / 1e6;
        self.extra.notes = vec![
            format!(
                "{IMAGES} images, {DATABASES} databases of {} MB on the NFS server {}; \
                 every image's result checksum is the same sequentially and in parallel",
                self.db_mb, self.cluster.head
            ),
            format!(
                "sequential on {}: image 1 fetched {:.1} MB of databases from NFS, image 2 \
                 {:.1} MB (cache warm); parallel: the master on the file server, a worker on \
                 each of {} ({} MPI ranks)",
                nodes[0],
                fetched(&sequential, 0),
                fetched(&sequential, 1),
                nodes.join(", "),
                nodes.len() + 1
            ),
            format!("the compute nodes could use {} cores", self.cores),
        ];
        Ok(Values::from([
            ("seq_image1_s".to_string(), s1),
            ("seq_images2_6_s".to_string(), s26),
            ("par_image1_s".to_string(), p1),
            ("par_images2_6_s".to_string(), p26),
            ("speedup_image1".to_string(), s1 / p1),
            ("speedup_images2_6".to_string(), s26 / p26),
            ("speedup_total".to_string(), (s1 + s26) / (p1 + p26)),
        ]))
    }
}

impl Trials for Analyses<'_> {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn metrics(&self) -> Vec<Metric> {
        let (s, x) = (Unit::Seconds, Unit::Ratio);
        let (ps, pp) = (PAPER_SEQUENTIAL, PAPER_PARALLEL);
        // name, unit, description, the paper's figure, its source.
        let table = [
            (
                "seq_image1_s",
                s,
                "1 node, image 1, cold cache",
                ps.0,
                "Table IV",
            ),
            (
                "seq_images2_6_s",
                s,
                "1 node, images 2–6 together",
                ps.1,
                "Table IV",
            ),
            (
                "par_image1_s",
                s,
                "4 nodes, image 1, cold caches",
                pp.0,
                "Table IV",
            ),
            (
                "par_images2_6_s",
                s,
                "4 nodes, images 2–6 together",
                pp.1,
                "Table IV",
            ),
            (
                "speedup_image1",
                x,
                "sequential ÷ parallel, image 1 (cold)",
                ps.0 / pp.0,
                "Table IV: 811 ÷ 378",
            ),
            (
                "speedup_images2_6",
                x,
                "sequential ÷ parallel, images 2–6 (warm)",
                ps.1 / pp.1,
                "Table IV: 834 ÷ 217",
            ),
            (
                "speedup_total",
                x,
                "sequential ÷ parallel, all six images",
                (ps.0 + ps.1) / (pp.0 + pp.1),
                "Table IV: 1645 ÷ 595",
            ),
        ];
        table
            .into_iter()
            .map(|(name, unit, description, value, source)| Metric {
                name: name.into(),
                description: description.into(),
                unit,
                paper: Some(PaperFigure {
                    stat: Stat::Mean,
                    low: value,
                    high: value,
                    source: source.into(),
                }),
            })
            .collect()
    }

    fn plots(&self) -> Vec<PlotSpec> {
        vec![PlotSpec::Bars {
            file: "mpi_speedup".into(),
            title: "MPI image analysis over NFS: speedup, cold and warm (Table IV)".into(),
            metrics: vec![
                "speedup_image1".into(),
                "speedup_images2_6".into(),
                "speedup_total".into(),
            ],
        }]
    }

    fn trial(&mut self, _index: u32) -> Result<Values, TrialError> {
        self.extra = Extra::default();
        self.analyse()
    }

    fn take_extra(&mut self) -> Extra {
        std::mem::take(&mut self.extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cidr_covers_every_address_and_no_more_bits() {
        let a = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
        let v = [a("10.128.17.208"), a("10.128.44.95"), a("10.128.93.73")];
        assert_eq!(covering_cidr(v.into_iter()), "10.128.0.0/17");
        let v = [a("198.19.1.10"), a("198.19.3.10")];
        assert_eq!(covering_cidr(v.into_iter()), "198.19.0.0/22");
        assert_eq!(covering_cidr([a("10.0.0.1")].into_iter()), "10.0.0.1/32");
    }
}
