//! A PVM virtual machine over the cluster: the master `pvmd` on the head node adds every
//! compute node by its hostname, starting each node's `pvmd` over the cluster's SSH
//! ([`super::ssh`]: `PVM_RSH` is its client wrapper), so the daemons' and tasks' traffic
//! goes to the subject's addresses. Every host gets its own `PVM_TMP` and working folder
//! under the run folder, and a `dx=` wrapper that starts `pvmd` with them (PVM refuses
//! root unless `PVM_ALLOW_ROOT` is set). Dropping it halts the virtual machine.

use std::time::Duration;

use wow_host::{Cmd, Host, Process};

use super::ssh::Ssh;
use super::{Cluster, QUICK, put};
use crate::experiment::Error;
use crate::tools::wait_for;

/// Where Debian installs PVM.
const PVM_ROOT: &str = "/usr/lib/pvm3";
/// How long the virtual machine may take to gather every host.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the daemons may take to halt.
const GRACE: Duration = Duration::from_secs(5);

/// A running virtual machine.
#[derive(Debug)]
pub struct Pvm<'a> {
    head: &'a dyn Host,
    /// The head node's `PVM_TMP` (tasks started there need it).
    pub tmp: String,
    /// Hosts in the virtual machine.
    pub hosts: usize,
    master: Option<Box<dyn Process>>,
}

/// Per-host folders and files under the run folder `dir`.
fn host_dir(dir: &str, name: &str) -> String {
    format!("{dir}/pvm/{name}")
}

/// The `dx=` wrapper of a host: its environment, then `pvmd`.
pub fn pvmd_wrapper(tmp: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # written by wow-bench: this host's pvmd with its own PVM_TMP\n\
         export PVM_ROOT={PVM_ROOT} PVM_ALLOW_ROOT=1 PVM_TMP={tmp}\n\
         exec /usr/bin/pvmd \"$@\"\n"
    )
}

/// The master's host file: the head node, then every compute node by hostname, with its
/// working folder, `dx=` wrapper and `ep=` (where `pvm_spawn` finds executables).
pub fn hostfile(dir: &str, head: &str, computes: &[String], bin: &str) -> String {
    let mut text = format!(
        "# written by wow-bench: the virtual machine\n* ep={bin}\n{head} wd={}/wd\n",
        host_dir(dir, head)
    );
    for name in computes {
        let h = host_dir(dir, name);
        text.push_str(&format!("{name} wd={h}/wd dx={h}/pvmd ep={bin}\n"));
    }
    text
}

impl<'a> Pvm<'a> {
    /// Starts the master `pvmd` on the head node with every compute node in its host
    /// file; waits until all of them are in the virtual machine. `bin` holds the
    /// executables tasks spawn, the same path on every host.
    pub fn start(cluster: &Cluster<'a>, ssh: &Ssh, bin: &str) -> Result<Pvm<'a>, Error> {
        let dir = &cluster.dir;
        for name in cluster.all() {
            let host = cluster.host(name)?;
            let h = host_dir(dir, name);
            host.check(
                &Cmd::new("mkdir").args(["-p", &format!("{h}/tmp"), &format!("{h}/wd")]),
                QUICK,
            )?;
            put(
                host,
                &format!("{h}/pvmd"),
                pvmd_wrapper(&format!("{h}/tmp")).as_bytes(),
            )?;
            host.check(
                &Cmd::new("chmod").args(["0755", &format!("{h}/pvmd")]),
                QUICK,
            )?;
        }
        let head = cluster.head_host()?;
        let text = hostfile(dir, &cluster.head, &cluster.computes, bin);
        cluster.check_virtual_only("PVM host file", &text)?;
        let file = format!("{dir}/pvm/hostfile");
        put(head, &file, text.as_bytes())?;
        let tmp = format!("{}/tmp", host_dir(dir, &cluster.head));
        let mut pvm = Pvm {
            head,
            tmp,
            hosts: 0,
            master: None,
        };
        let pvmd = pvm
            .env(Cmd::new("/usr/bin/pvmd").arg(&file))
            .env("PVM_RSH", &ssh.client);
        pvm.master = Some(head.spawn(&pvmd)?);
        let want = cluster.computes.len() + 1;
        let mut seen = 0;
        let ready = wait_for(READY_TIMEOUT, Duration::from_secs(1), || {
            if let Some(Ok(Some(out))) = pvm.master.as_mut().map(|p| p.try_wait()) {
                return Some(Err(format!("pvmd exited: {}", out.stderr_text().trim())));
            }
            seen = pvm.conf().unwrap_or(0);
            (seen >= want).then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) => {
                pvm.hosts = seen;
                Ok(pvm)
            }
            Some(Err(reason)) => Err(pvm.failed(reason)),
            None => Err(pvm.failed(format!(
                "{seen} of {want} hosts in the virtual machine after {}s",
                READY_TIMEOUT.as_secs()
            ))),
        }
    }

    fn failed(&self, reason: String) -> Error {
        Error::Preflight {
            path: format!("PVM on {}", self.head.name()),
            reason,
        }
    }

    /// `cmd` with the head node's PVM environment.
    pub fn env(&self, cmd: Cmd) -> Cmd {
        cmd.env("PVM_ROOT", PVM_ROOT)
            .env("PVM_ALLOW_ROOT", "1")
            .env("PVM_TMP", &self.tmp)
    }

    /// The last lines of every host's PVM log (`$PVM_TMP/pvml.<uid>`: its pvmd's and its
    /// tasks' output), for a failed run's error.
    pub fn log_tails(&self, cluster: &Cluster<'_>) -> String {
        let mut tails = Vec::new();
        for name in cluster.all() {
            let Ok(host) = cluster.host(name) else {
                continue;
            };
            let tmp = format!("{}/tmp", host_dir(&cluster.dir, name));
            let cmd = Cmd::new("sh").args(["-c", "tail -n 4 \"$1\"/pvml.*", "sh", &tmp]);
            if let Ok(out) = host.run(&cmd, QUICK) {
                let text = out.stdout_text();
                let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
                tails.push(format!("{name}: {}", lines.join(" | ")));
            }
        }
        tails.join("; ")
    }

    /// Hosts in the virtual machine (the console's `conf`).
    fn conf(&self) -> Option<usize> {
        let out = self
            .head
            .run(&self.env(Cmd::new("pvm")).stdin("conf\nquit\n"), QUICK)
            .ok()?;
        parse_conf(&out.stdout_text())
    }
}

impl Drop for Pvm<'_> {
    fn drop(&mut self) {
        let halt = self.env(Cmd::new("pvm")).stdin("halt\n");
        let _ = self.head.run(&halt, QUICK);
        if let Some(mut m) = self.master.take() {
            let _ = m.stop(GRACE);
        }
    }
}

/// The host count of the console's `conf` output (`conf\n3 hosts, 1 data format`).
fn parse_conf(text: &str) -> Option<usize> {
    text.lines().find_map(|l| {
        let (n, rest) = l.trim().trim_start_matches("pvm> ").split_once(' ')?;
        rest.starts_with("host").then(|| n.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_files_name_hosts_with_their_folders() {
        let text = hostfile("/t", "ufl-0", &["ufl-1".into()], "/opt/bin");
        assert!(text.contains("* ep=/opt/bin\nufl-0 wd=/t/pvm/ufl-0/wd\n"));
        assert!(text.contains("ufl-1 wd=/t/pvm/ufl-1/wd dx=/t/pvm/ufl-1/pvmd ep=/opt/bin\n"));
        assert!(pvmd_wrapper("/t/x").contains("PVM_TMP=/t/x\nexec /usr/bin/pvmd"));
    }

    #[test]
    fn the_console_conf_gives_the_host_count() {
        let out = "pvm> conf\n3 hosts, 1 data format\n  HOST DTID ARCH SPEED DSIG\n";
        assert_eq!(parse_conf(out), Some(3));
        assert_eq!(parse_conf("pvm> 1 host, 1 data format\n"), Some(1));
        assert_eq!(parse_conf("pvmd not running"), None);
    }
}
