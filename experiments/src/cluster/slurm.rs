//! Slurm on a [`Cluster`]: `slurmctld` on the head node, `slurmd` on every compute node,
//! one job slot (CPU) per compute node as on the paper's single-CPU VMs, and the
//! PBS-compatible `qsub` (package `slurm-wlm-torque`) for submissions. The
//! configuration names workstations by hostname only; `/etc/hosts` maps them to the
//! subject's addresses. Authentication is `auth/none` (the testbed's hosts are one
//! administrative domain; munge would need one shared key on every host).

use std::collections::BTreeMap;
use std::time::Duration;

use wow_host::{Cmd, Host, Process};

use super::{Cluster, QUICK, put};
use crate::experiment::Error;
use crate::tools::wait_for;

/// The controller's port.
pub const SLURMCTLD_PORT: u16 = 6817;
/// The node daemons' port.
pub const SLURMD_PORT: u16 = 6818;
/// How long every compute node may take to register idle.
const NODES_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a daemon may take to stop.
const GRACE: Duration = Duration::from_secs(5);

/// A running Slurm cluster; dropping it cancels the jobs and stops the daemons by PID.
#[derive(Debug)]
pub struct Slurm<'a> {
    head: &'a dyn Host,
    computes: Vec<String>,
    /// The configuration file, the same path on every host.
    pub conf: String,
    /// Its text (for the report's check that it names no underlay address).
    pub text: String,
    controller: Option<Box<dyn Process>>,
    nodes: Vec<Box<dyn Process>>,
}

/// `slurm.conf` for `head` and `computes`, keeping state under `dir`.
pub fn config(head: &str, computes: &[String], dir: &str) -> String {
    format!(
        "# written by wow-bench: the WOW paper's batch pool, one slot per workstation\n\
         ClusterName=wow\n\
         SlurmctldHost={head}\n\
         SlurmctldPort={SLURMCTLD_PORT}\n\
         SlurmdPort={SLURMD_PORT}\n\
         AuthType=auth/none\n\
         CredType=cred/none\n\
         SlurmUser=root\n\
         SlurmdUser=root\n\
         StateSaveLocation={dir}/slurmctld\n\
         SlurmdSpoolDir={dir}/slurmd/%n\n\
         SlurmctldPidFile={dir}/slurmctld.pid\n\
         SlurmdPidFile={dir}/slurmd-%n.pid\n\
         ProctrackType=proctrack/linuxproc\n\
         TaskPlugin=task/none\n\
         JobAcctGatherType=jobacct_gather/none\n\
         AccountingStorageType=accounting_storage/none\n\
         SelectType=select/cons_tres\n\
         SelectTypeParameters=CR_Core\n\
         SchedulerType=sched/backfill\n\
         MpiDefault=none\n\
         SwitchType=switch/none\n\
         ReturnToService=2\n\
         SlurmctldTimeout=60\n\
         SlurmdTimeout=120\n\
         MinJobAge=86400\n\
         MaxJobCount=100000\n\
         NodeName={} CPUs=1 State=UNKNOWN\n\
         PartitionName=wow Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
        computes.join(",")
    )
}

impl<'a> Slurm<'a> {
    /// Writes the configuration to every workstation, starts the daemons and waits
    /// until every compute node is idle.
    pub fn start(cluster: &Cluster<'a>) -> Result<Slurm<'a>, Error> {
        let text = config(&cluster.head, &cluster.computes, &cluster.dir);
        cluster.check_virtual_only("slurm.conf", &text)?;
        let conf = format!("{}/slurm.conf", cluster.dir);
        for name in cluster.all() {
            let host = cluster.host(name)?;
            put(host, &conf, text.as_bytes())?;
            for sub in ["slurmctld", "slurmd"] {
                host.check(
                    &Cmd::new("mkdir").args(["-p", &format!("{}/{sub}", cluster.dir)]),
                    QUICK,
                )?;
            }
        }
        let head = cluster.head_host()?;
        let mut slurm = Slurm {
            head,
            computes: cluster.computes.clone(),
            conf,
            text,
            controller: None,
            nodes: Vec::new(),
        };
        slurm.controller =
            Some(head.spawn(&Cmd::new("slurmctld").args(["-D", "-f", &slurm.conf]))?);
        for name in &cluster.computes {
            let host = cluster.host(name)?;
            slurm
                .nodes
                .push(host.spawn(&Cmd::new("slurmd").args(["-D", "-f", &slurm.conf]))?);
        }
        slurm.wait_idle()?;
        Ok(slurm)
    }

    /// `cmd` with this cluster's configuration.
    pub fn cmd(&self, program: &str) -> Cmd {
        Cmd::new(program).env("SLURM_CONF", &self.conf)
    }

    /// The scheduler's view of the compute nodes: name → state (`sinfo`).
    pub fn node_states(&self) -> Result<BTreeMap<String, String>, Error> {
        let out = self
            .head
            .check(&self.cmd("sinfo").args(["-h", "-N", "-o", "%N %T"]), QUICK)?;
        Ok(parse_pairs(&out.stdout_text()))
    }

    fn wait_idle(&mut self) -> Result<(), Error> {
        let mut last = BTreeMap::new();
        let ready = wait_for(NODES_TIMEOUT, Duration::from_millis(500), || {
            if let Some(p) = self.controller.as_mut()
                && let Ok(Some(out)) = p.try_wait()
            {
                return Some(Err(format!(
                    "slurmctld exited: {}",
                    out.stderr_text().trim()
                )));
            }
            last = self.node_states().ok()?;
            let idle = self
                .computes
                .iter()
                .all(|n| last.get(n).is_some_and(|s| s == "idle"));
            idle.then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) => Err(self.preflight(reason)),
            None => Err(self.preflight(format!(
                "compute nodes not idle after {}s: {last:?}",
                NODES_TIMEOUT.as_secs()
            ))),
        }
    }

    fn preflight(&self, reason: String) -> Error {
        Error::Preflight {
            path: format!("Slurm on {}", self.head.name()),
            reason,
        }
    }

    /// Submits the PBS script `script` (a path on the head node) with `qsub` as job
    /// `name`, its output and errors joined in `log` and its working folder `workdir`
    /// (paths on the compute nodes); returns the job id. (Slurm's `qsub` takes these on
    /// its command line only: left out, it writes the output files into the submitting
    /// process's folder.)
    pub fn qsub(&self, script: &str, name: &str, log: &str, workdir: &str) -> Result<u64, Error> {
        self.submit(
            self.cmd("qsub")
                .args(["-N", name, "-j", "oe", "-o", log, "-wd", workdir, script]),
        )
    }

    /// Submits the batch script `script` (a path on the head node) as job `name` to run
    /// on compute node `node` (`sbatch -w`), its output and errors in `log` (a path on
    /// that node); returns the job id.
    pub fn submit_on(&self, node: &str, script: &str, name: &str, log: &str) -> Result<u64, Error> {
        self.submit(self.cmd("sbatch").args([
            "--parsable",
            "-w",
            node,
            "-J",
            name,
            "-o",
            log,
            script,
        ]))
    }

    /// Runs a submission command on the head node; reads the job id it prints.
    fn submit(&self, cmd: Cmd) -> Result<u64, Error> {
        let head = self.head;
        let out = head.check(&cmd, QUICK)?;
        let text = out.stdout_text();
        text.trim().parse().map_err(|_| {
            Error::Host(wow_host::HostError::Output {
                host: head.name().to_string(),
                cmd: cmd.to_string(),
                reason: format!("expected a job id, got {text:?}"),
            })
        })
    }

    /// Every job the controller knows: id → (state, node list) (`squeue -t all`).
    pub fn jobs(&self) -> Result<BTreeMap<u64, (String, String)>, Error> {
        let out = self.head.check(
            &self
                .cmd("squeue")
                .args(["-h", "-t", "all", "-o", "%i|%T|%N"]),
            QUICK,
        )?;
        Ok(parse_jobs(&out.stdout_text()))
    }
}

impl Drop for Slurm<'_> {
    fn drop(&mut self) {
        let scancel = self.cmd("scancel").args(["--partition", "wow"]);
        let _ = self.head.run(&scancel, QUICK);
        for mut node in self.nodes.drain(..) {
            let _ = node.stop(GRACE);
        }
        if let Some(mut c) = self.controller.take() {
            let _ = c.stop(GRACE);
        }
    }
}

/// `name value` lines.
fn parse_pairs(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(' ')?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// `id|STATE|nodes` lines.
fn parse_jobs(text: &str) -> BTreeMap<u64, (String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split('|');
            let id = f.next()?.parse().ok()?;
            Some((
                id,
                (f.next()?.to_string(), f.next().unwrap_or("").to_string()),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_hosts_only() {
        let c = config("ufl-0", &["ufl-1".into(), "lsu-0".into()], "/tmp/x");
        assert!(c.contains("SlurmctldHost=ufl-0\n"));
        assert!(c.contains("NodeName=ufl-1,lsu-0 CPUs=1"));
        assert!(c.contains("SlurmdSpoolDir=/tmp/x/slurmd/%n\n"));
    }

    #[test]
    fn sinfo_and_squeue_output_parse() {
        let nodes = parse_pairs("ufl-1 idle\nlsu-0 down*\n\n");
        assert_eq!(nodes["lsu-0"], "down*");
        let jobs = parse_jobs("12|COMPLETED|ufl-1\n13|PENDING|\nnoise\n");
        assert_eq!(jobs[&12], ("COMPLETED".into(), "ufl-1".into()));
        assert_eq!(jobs[&13].0, "PENDING");
        assert_eq!(jobs.len(), 2);
    }
}
