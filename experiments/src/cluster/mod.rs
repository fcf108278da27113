//! A cluster of workstations for the WOW workloads (meme-pbs; the paper's PBS and PVM
//! pools): the testbed's site hosts, the first of them the head node (scheduler, file
//! server, submit host), each known to the others by its **hostname**, which
//! `/etc/hosts` on every workstation maps to the address the subject gives: the virtual
//! IP for the ipop subject, so every daemon's traffic crosses the overlay; the underlay
//! address for the physical subject.
//!
//! Daemons keep their files under one folder per run ([`Cluster::dir`], in `/run`) on
//! every host, removed when the cluster drops; a namespace host's `/run` is its own, so
//! workstations share no files (what a job needs crosses the network) and the testbed's
//! cleanup removes them after a crash too. [`slurm`] runs the batch system, [`nfs`] the
//! file server, [`ssh`] logins between workstations, [`pvm`] a PVM virtual machine.

pub mod nfs;
pub mod pvm;
pub mod slurm;
pub mod ssh;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use wow_host::{Cmd, Host, HostError};

use crate::experiment::{Error, Hosts, Machine, Setup};
use crate::path::{Path, link_of};
use crate::subject::{Flow, SubjectKind};

/// How long a small command on a host may take.
pub(crate) const QUICK: Duration = Duration::from_secs(20);

/// The workstations and how they name each other.
#[derive(Debug)]
pub struct Cluster<'a> {
    hosts: &'a Hosts,
    /// The head node: scheduler, file server, where jobs are submitted.
    pub head: String,
    /// The compute nodes (every other workstation).
    pub computes: Vec<String>,
    /// Every workstation's address as the others reach it (by hostname).
    pub addresses: BTreeMap<String, Ipv4Addr>,
    /// The run's folder, the same path on every host.
    pub dir: String,
    /// Which subject carries the traffic.
    pub subject: SubjectKind,
    /// Compute nodes that are virtual machines ([`Cluster::add_machine`]).
    machines: BTreeMap<String, Box<dyn Machine + 'a>>,
}

/// The workstations of `topology`: its site hosts, taken from the sites in turn (the
/// first host of every site, then the second, …), so that the first few span the
/// domains — PVM spreads tasks over its hosts in this order. The first is the head node
/// (the first site's first host).
pub fn workstations(topology: &wow_netns::Topology) -> Vec<String> {
    let depth = topology.sites.iter().map(|s| s.hosts).max().unwrap_or(0);
    (0..depth)
        .flat_map(|i| {
            topology
                .sites
                .iter()
                .filter(move |s| i < s.hosts)
                .map(move |s| format!("{}-{i}", s.name))
        })
        .collect()
}

impl<'a> Cluster<'a> {
    /// The cluster of `workstations` (the first is the head), each reaching the head and
    /// reached from it on `ports` (TCP); fails with the subject's reasons for every pair
    /// it cannot carry.
    pub fn new(
        setup: &Setup<'a>,
        workstations: &[String],
        ports: &[u16],
        tag: &str,
    ) -> Result<Cluster<'a>, Error> {
        let (head, computes) = workstations.split_first().ok_or_else(|| Error::Topology {
            topology: setup.topology.name.clone(),
            reason: "a cluster needs at least two workstations (site hosts)".into(),
        })?;
        if computes.is_empty() {
            return Err(Error::Topology {
                topology: setup.topology.name.clone(),
                reason: "a cluster needs at least two workstations (site hosts)".into(),
            });
        }
        let mut addresses = BTreeMap::new();
        let mut refused = Vec::new();
        for node in computes {
            for (from, to) in [(head, node), (node, head)] {
                for &port in ports {
                    match setup.subject.target(from, to, Flow::Tcp { port }) {
                        Ok(t) if t.node == *to => {
                            addresses.insert(to.clone(), t.address);
                        }
                        Ok(t) => refused.push(format!(
                            "{from} → {to} port {port}: only {} answers ({})",
                            t.node,
                            t.note.unwrap_or_default()
                        )),
                        Err(u) => refused.push(format!("{from} → {to} port {port}: {u}")),
                    }
                }
            }
        }
        if !refused.is_empty() {
            return Err(Error::NoPath {
                subject: setup.subject.kind(),
                tried: refused,
            });
        }
        for name in workstations {
            setup.hosts.get(name)?;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        // Under `/run`: a namespace host's is private (each workstation has its own disk,
        // as real ones do, and the testbed's cleanup removes it even after a crash).
        let dir = format!("/run/wow-{tag}-{}-{nanos:x}", std::process::id());
        let cluster = Cluster {
            hosts: setup.hosts,
            head: head.clone(),
            computes: computes.to_vec(),
            addresses,
            dir,
            subject: setup.subject.kind(),
            machines: BTreeMap::new(),
        };
        for host in cluster.all() {
            let host = cluster.host(host)?;
            host.check(&Cmd::new("mkdir").args(["-p", &cluster.dir]), QUICK)?;
        }
        Ok(cluster)
    }

    /// A path per compute node: `flow` from the head node to it (for the report).
    pub fn paths(&self, setup: &Setup<'_>, flow: Flow) -> Result<Vec<Path>, Error> {
        self.computes
            .iter()
            .map(|node| {
                let target =
                    setup
                        .subject
                        .target(&self.head, node, flow)
                        .map_err(|u| Error::NoPath {
                            subject: setup.subject.kind(),
                            tried: vec![u.0],
                        })?;
                Ok(Path {
                    from: self.head.clone(),
                    to: node.clone(),
                    flow,
                    target,
                    wan: link_of(setup.topology, &self.head) != link_of(setup.topology, node),
                    skipped: Vec::new(),
                })
            })
            .collect()
    }

    /// Every workstation, head first.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.head.as_str()).chain(self.computes.iter().map(String::as_str))
    }

    /// The host of workstation `name`.
    pub fn host(&self, name: &str) -> Result<&dyn Host, Error> {
        match self.machines.get(name) {
            Some(m) => Ok(m.host()),
            None => self.hosts.get(name),
        }
    }

    /// The head node's host.
    pub fn head_host(&self) -> Result<&'a dyn Host, Error> {
        self.hosts.get(&self.head)
    }

    /// Adds virtual machine `machine` as a compute node, known to the others by its
    /// hostname at `address` (call before [`Cluster::write_hosts_files`] and before
    /// starting daemons); the cluster owns it from now on.
    pub fn add_machine(
        &mut self,
        machine: Box<dyn Machine + 'a>,
        address: Ipv4Addr,
    ) -> Result<(), Error> {
        let name = machine.host().name().to_string();
        machine
            .host()
            .check(&Cmd::new("mkdir").args(["-p", &self.dir]), QUICK)?;
        self.computes.push(name.clone());
        self.addresses.insert(name.clone(), address);
        self.machines.insert(name, machine);
        Ok(())
    }

    /// The virtual machine `name` ([`Cluster::add_machine`]), to migrate it.
    pub fn machine(&mut self, name: &str) -> Option<&mut (dyn Machine + 'a)> {
        self.machines.get_mut(name).map(|m| &mut **m)
    }

    /// Rewrites `/etc/hosts` on every workstation: every workstation's hostname maps to
    /// its [`Cluster::addresses`] entry; lines naming other nodes stay.
    pub fn write_hosts_files(&self) -> Result<(), Error> {
        for name in self.all() {
            let host = self.host(name)?;
            let old = String::from_utf8_lossy(&host.read_file("/etc/hosts")?).into_owned();
            let text = hosts_file(&old, &self.addresses);
            put(host, "/etc/hosts", text.as_bytes())?;
        }
        Ok(())
    }

    /// Checks that no underlay address of any testbed node appears in `text` (a daemon's
    /// configuration), for the ipop subject: the cluster is configured with virtual
    /// addresses and hostnames only.
    pub fn check_virtual_only(&self, what: &str, text: &str) -> Result<(), Error> {
        if !self.subject.is_ipop() {
            return Ok(());
        }
        for host in self.hosts.iter() {
            for a in host.addresses() {
                let a = a.to_string();
                let hit = text.match_indices(&a).any(|(i, _)| {
                    let before = text[..i].chars().next_back();
                    let after = text[i + a.len()..].chars().next();
                    ![before, after]
                        .into_iter()
                        .any(|c| c.is_some_and(|c| c.is_ascii_digit()))
                });
                if hit {
                    return Err(Error::Preflight {
                        path: what.to_string(),
                        reason: format!(
                            "names the underlay address {a} of {}; the cluster must be \
                             configured with virtual addresses and hostnames only",
                            host.name()
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The cores the compute nodes have: for each distinct machine (kernel boot id), the
    /// smaller of its CPUs and the compute nodes on it (namespace hosts share one).
    pub fn cores(&self) -> Result<u32, Error> {
        let mut machines: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        for name in &self.computes {
            let out = self.host(name)?.check(
                &Cmd::new("sh").args(["-c", "cat /proc/sys/kernel/random/boot_id; nproc"]),
                QUICK,
            )?;
            let text = out.stdout_text();
            let mut lines = text.lines();
            let boot = lines.next().unwrap_or_default().trim().to_string();
            let cpus = lines
                .next()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(1);
            machines.entry(boot).or_insert((cpus, 0)).1 += 1;
        }
        Ok(machines
            .values()
            .map(|&(cpus, nodes)| cpus.min(nodes))
            .sum())
    }

    /// Creates `sub` (relative to the run folder) on every workstation; returns its path.
    pub fn make_dir(&self, sub: &str) -> Result<String, Error> {
        let path = format!("{}/{sub}", self.dir);
        for name in self.all() {
            self.host(name)?
                .check(&Cmd::new("mkdir").args(["-p", &path]), QUICK)?;
        }
        Ok(path)
    }
}

impl Drop for Cluster<'_> {
    fn drop(&mut self) {
        for name in self.all() {
            if let Ok(host) = self.host(name) {
                let _ = host.run(&Cmd::new("rm").args(["-rf", &self.dir]), QUICK);
            }
        }
    }
}

/// Where the workloads' programs are: `$WOW_WORKLOADS/bin`, else `target/workloads/bin`
/// of this source tree (`./setup.sh` and `./test.sh` build them there with
/// `scripts/build-workloads.sh`).
pub fn workload_bin() -> String {
    match std::env::var("WOW_WORKLOADS") {
        Ok(dir) if !dir.is_empty() => format!("{dir}/bin"),
        _ => format!("{}/../target/workloads/bin", env!("CARGO_MANIFEST_DIR")),
    }
}

/// Checks that every one of `programs` is an executable in [`workload_bin`] on `host`.
pub fn require_workloads(host: &dyn Host, programs: &[&str]) -> Result<(), Error> {
    let bin = workload_bin();
    for program in programs {
        let path = format!("{bin}/{program}");
        if !host
            .run(&Cmd::new("test").args(["-x", &path]), QUICK)?
            .success()
        {
            return Err(Error::Preflight {
                path: host.name().to_string(),
                reason: format!(
                    "{path} is missing: build the workloads with scripts/build-workloads.sh \
                     (./setup.sh does), or set WOW_WORKLOADS to where they are installed on \
                     every host"
                ),
            });
        }
    }
    Ok(())
}

/// `/etc/hosts` text: `old` without lines naming a workstation, then one line per
/// workstation.
pub fn hosts_file(old: &str, addresses: &BTreeMap<String, Ipv4Addr>) -> String {
    let mut text: String = old
        .lines()
        .filter(|line| {
            let names = line.split('#').next().unwrap_or("").split_whitespace();
            !names.skip(1).any(|n| addresses.contains_key(n))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    text.push_str("# the cluster's workstations (wow-bench)\n");
    for (name, address) in addresses {
        text.push_str(&format!("{address}\t{name}\n"));
    }
    text
}

/// Writes `contents` to the file `path` on `host` (through `sh`, so it works on any host).
pub fn put(host: &dyn Host, path: &str, contents: &[u8]) -> Result<(), HostError> {
    host.check(
        &Cmd::new("sh")
            .args(["-c", "cat > \"$1\"", "sh", path])
            .stdin(contents),
        QUICK,
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workstations_take_the_sites_in_turn() {
        let path = format!(
            "{}/../topologies/wan-3site.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let topology = wow_netns::Topology::load(path.as_ref()).unwrap();
        assert_eq!(
            workstations(&topology),
            ["ufl-0", "vims-0", "lsu-0", "ufl-1", "ufl-2", "ufl-3"]
        );
    }

    #[test]
    fn hosts_files_replace_workstation_lines_only() {
        let old = "127.0.0.1\tlocalhost\n198.18.0.1\tufl-gw\n198.19.1.10\tufl-0\n\
                   198.19.1.11\tufl-1 # a comment\n";
        let addresses = BTreeMap::from([
            ("ufl-0".to_string(), Ipv4Addr::new(10, 128, 0, 7)),
            ("ufl-1".to_string(), Ipv4Addr::new(10, 128, 0, 9)),
        ]);
        let text = hosts_file(old, &addresses);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n198.18.0.1\tufl-gw\n#"));
        assert!(text.contains("10.128.0.7\tufl-0\n10.128.0.9\tufl-1\n"));
        assert!(!text.contains("198.19.1.1"));
    }
}
