//! `migration`: the WOW paper's claim that a virtual workstation keeps its virtual IP and
//! its open sessions — "NFS, SSH, PBS" — when it migrates across a WAN to another NATed
//! domain.
//!
//! The VM is a namespace of the run with one NIC bridged, on the host it runs on, to an
//! IPOP node's TAP device (router mode: the node routes for the VM, which gets its
//! address from an unmodified `dhclient` through the node's DHCP server). The first
//! site's hosts are the cluster: the head node (NFS server, Slurm controller, where the
//! sessions start) and a compute node; every other site has one host the VM visits.
//!
//! A trial opens the sessions ([`sessions`]) — a 10 ms ping and a TCP stream from the
//! head node to the VM, an interactive SSH session into it printing a counter, an NFS
//! client in it writing to the head node's export, a batch job running on it — and
//! migrates the VM to the next site in rotation: the node there is stopped (its
//! sessions' packets now go nowhere), the VM's NIC moves to the next site's host, and a
//! node starts there with the old node's lease file carried over, as the VM image
//! carries it, and nothing else (a new P2P address: the paper's "killing and restarting
//! the P2P node on the target host"). The sessions run on to their end; a session that
//! broke, lost data or whose job did not complete fails the trial, with the reason.
//!
//! Per trial: the downtime seen by the ping and by the TCP stream, the longest pause of
//! the SSH counter and of an NFS write, how long until the head node's Brunet-ARP cache
//! maps the VM's IP to the new node, and how long until the two nodes have a direct
//! edge (and whether a relay came first).

pub mod sessions;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipop_api::status::Transport;
use wow_host::{Host, Process};
use wow_plots::Unit;

use crate::cluster::nfs::{self, NfsServer};
use crate::cluster::slurm::{SLURMCTLD_PORT, SLURMD_PORT, Slurm};
use crate::cluster::ssh::{SSH_PORT, Ssh};
use crate::cluster::{Cluster, QUICK, put, require_workloads, workload_bin};
use crate::experiment::{
    Error, Experiment, ExperimentInfo, Extra, Metric, OverlayNeeds, PlotSpec, Setup, TrialError,
    Trials, Values,
};
use crate::path::Path;
use crate::subject::{Flow, NodeKind, Overlay, OverlayNode, SubjectKind, Target};
use crate::tools::dhcp::{DhcpClient, wait_address};
use crate::tools::{iperf, link_exists, wait_for};

/// The VM's name (and hostname).
const VM: &str = "vm";
/// How long the sessions of a trial run.
const SESSION_S: u32 = 24;
/// When, after the sessions start, the VM migrates.
const MOVE_AFTER: Duration = Duration::from_secs(6);
/// The TCP stream's rate, Mbit/s.
const STREAM_MBIT: u32 = 10;
/// The iperf3 server's port in the VM.
const IPERF_PORT: u16 = 5201;
/// The TCP ports of the cluster's services (SSH, NFS, Slurm), which every workstation
/// must reach on the head and the head on every workstation.
const CLUSTER_PORTS: [u16; 6] = [
    SSH_PORT,
    nfs::NFS_PORT,
    nfs::RPCBIND_PORT,
    nfs::MOUNTD_PORT,
    SLURMCTLD_PORT,
    SLURMD_PORT,
];
/// How long sessions may run past their end before the trial gives up on them.
const OVERRUN: Duration = Duration::from_secs(90);
/// How often the nodes' status is read after a move.
const POLL: Duration = Duration::from_millis(100);

const PAPER: &str = "\
WOW paper (Ganguly et al., HPDC 2006): \"the system is capable of seamlessly maintaining
connectivity at the virtual IP layer for typical client/server applications (NFS, SSH,
PBS) when VMs migrate across a WAN\" — a claim, with no downtime figures in the parts
of the papers we have. The decentralized-DHCP paper (Wolinsky et al., 2006) adds that
with DHT mappings a migrated VM keeps its IP while the P2P node routing for it is
killed and restarted on the target host, as here.

| session | paper | here |
|---|---|---|
| SSH | survives | interactive `ssh -tt`, a counter every 0.1 s, no gap in the count |
| NFS | survives | nfs-ganesha server, a userspace NFSv3 client writing every 0.1 s, every record read back |
| PBS | survives | a Slurm batch job running on the VM across the move, COMPLETED with its full output |
";

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct Migration;

/// The hosts the VM visits: the first host of every site but the first.
fn visited(topology: &wow_netns::Topology) -> Vec<String> {
    topology
        .sites
        .iter()
        .skip(1)
        .filter(|s| s.hosts > 0)
        .map(|s| format!("{}-0", s.name))
        .collect()
}

/// `host (NAT, firewall)` for the report.
fn describe(topology: &wow_netns::Topology, host: &str) -> String {
    topology
        .sites
        .iter()
        .find(|s| {
            host.strip_prefix(s.name.as_str())
                .is_some_and(|r| r.starts_with('-'))
        })
        .map_or_else(
            || host.to_string(),
            |s| format!("{host} ({} NAT, {} firewall)", s.nat, s.firewall.as_str()),
        )
}

/// The cluster: the first site's hosts (head node first).
fn cluster_hosts(topology: &wow_netns::Topology) -> Vec<String> {
    topology
        .sites
        .first()
        .map(|s| (0..s.hosts).map(|i| format!("{}-{i}", s.name)).collect())
        .unwrap_or_default()
}

/// What the experiment is.
const INFO: ExperimentInfo = ExperimentInfo {
    name: "migration",
    description: "a VM migrates between NATed sites with SSH, NFS, a batch job, TCP and ping open: downtime, Brunet-ARP and direct-edge times, session survival (WOW)",
    default_topology: "topologies/migration.toml",
    physical_topology: None,
    default_trials: 30,
    subjects: &[SubjectKind::Ipop],
    workload_options: &[],
    paper_table: PAPER,
};

impl Experiment for Migration {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn overlay_needs(&self, topology: &wow_netns::Topology) -> OverlayNeeds {
        OverlayNeeds {
            reserved: visited(topology),
            shortcuts: true,
        }
    }

    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error> {
        let topology = || setup.topology.name.clone();
        let machines = setup.machines.ok_or_else(|| Error::Topology {
            topology: topology(),
            reason: "migration moves a virtual machine between hosts, which only a namespace \
                     testbed can do (not a hosts file)"
                .into(),
        })?;
        let overlay = setup.subject.overlay().ok_or_else(|| Error::Topology {
            topology: topology(),
            reason: "migration needs an overlay subject".into(),
        })?;
        let sites = visited(setup.topology);
        if sites.len() < 2 {
            return Err(Error::Topology {
                topology: topology(),
                reason: "the VM needs at least two sites besides the first to move between".into(),
            });
        }
        let hosts = cluster_hosts(setup.topology);
        let mut cluster = Cluster::new(setup, &hosts, &CLUSTER_PORTS, "mig")?;
        let head = cluster.head_host()?;
        require_workloads(head, &["nfs-session"])?;

        // The VM, bridged to a fresh node at the first site it visits.
        let at = setup.hosts.get(&sites[0])?;
        let node = overlay.start(at, NodeKind::Member, None)?;
        let machine = machines.create(VM, &sites[0])?;
        bridge(at, overlay, machines.bridge())?;
        let dhcp = DhcpClient::Dhclient.start(machine.host(), "eth0", "/run")?;
        let address = wait_address(
            machine.host(),
            "eth0",
            Duration::from_secs(60),
            Duration::from_millis(100),
        )
        .ok_or_else(|| Error::Preflight {
            path: format!("{VM} on {}", sites[0]),
            reason: "dhclient got no address from the node's DHCP server in 60 s".into(),
        })?;
        let iperf = iperf::Server::start(machine.host(), IPERF_PORT)?;
        cluster.add_machine(machine, address)?;
        cluster.write_hosts_files()?;
        let server = NfsServer::start(&cluster)?;
        let ssh = Ssh::start(&cluster)?;
        let slurm = Slurm::start(&cluster)?;
        let jobs = cluster.make_dir("jobs")?;
        let path = vm_path(&cluster.head, address, &sites);
        Ok(Box::new(Moves {
            overlay,
            hosts: setup.hosts,
            names: sites.iter().map(|h| describe(setup.topology, h)).collect(),
            extra: Extra::default(),
            sites,
            at: 0,
            address,
            paths: vec![path],
            url: server.url.clone(),
            jobs,
            bin: workload_bin(),
            bridge: machines.bridge().to_string(),
            slurm,
            ssh,
            _iperf: iperf,
            _server: server,
            _dhcp: dhcp,
            node,
            cluster,
        }))
    }
}

/// The trials' one path: pings from the head node (`from`) to the VM at `address`,
/// which rotates between `sites`.
fn vm_path(from: &str, address: Ipv4Addr, sites: &[String]) -> Path {
    Path {
        from: from.to_owned(),
        to: VM.into(),
        flow: Flow::Icmp,
        target: Target {
            node: VM.into(),
            address,
            note: Some(format!(
                "a VM bridged to an IPOP node's TAP, migrating between {} in rotation",
                sites.join(", ")
            )),
        },
        wan: true,
        skipped: Vec::new(),
    }
}

/// Waits for the overlay's TAP on `host` and puts it on the machines' bridge there.
fn bridge(host: &dyn Host, overlay: &dyn Overlay, bridge: &str) -> Result<(), wow_host::HostError> {
    let tap = overlay.tap();
    if wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        link_exists(host, tap).then_some(())
    })
    .is_none()
    {
        return Err(wow_host::HostError::Output {
            host: host.name().to_string(),
            cmd: "ipop-node".into(),
            reason: format!("no TAP device {tap} after 30 s"),
        });
    }
    host.check(
        &wow_host::Cmd::new("ip").args(["link", "set", tap, "master", bridge, "up"]),
        QUICK,
    )
    .map(drop)
}

/// Now, as Unix seconds (the clock the sessions' stamps use).
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A prepared run (dropped in order: the sessions' servers, the node, the cluster with
/// the VM).
struct Moves<'a> {
    overlay: &'a dyn Overlay,
    hosts: &'a crate::experiment::Hosts,
    /// The hosts the VM visits, and the index of the one it is on.
    sites: Vec<String>,
    /// The same, with their NAT and firewall.
    names: Vec<String>,
    at: usize,
    extra: Extra,
    address: Ipv4Addr,
    paths: Vec<Path>,
    url: String,
    jobs: String,
    bin: String,
    /// The machines' bridge on a host.
    bridge: String,
    slurm: Slurm<'a>,
    ssh: Ssh,
    _iperf: iperf::Server,
    _server: NfsServer,
    _dhcp: Box<dyn Process>,
    node: Box<dyn OverlayNode>,
    cluster: Cluster<'a>,
}

/// The sessions of one trial, running.
struct Open {
    ping: Box<dyn Process>,
    stream: Box<dyn Process>,
    ssh: Box<dyn Process>,
    nfs: Box<dyn Process>,
    job: u64,
    log: String,
}

/// What the nodes said after a move.
#[derive(Debug, Default)]
struct Converged {
    /// Seconds from the resumed node's start until the head node's Brunet-ARP cache maps
    /// the VM's IP to it.
    arp_s: Option<f64>,
    /// Seconds until the two nodes have a direct edge.
    direct_s: Option<f64>,
    /// Whether a relay edge between them came first.
    relayed: bool,
}

impl Moves<'_> {
    fn head(&self) -> Result<&dyn Host, TrialError> {
        self.cluster
            .head_host()
            .map_err(|e| TrialError(e.to_string()))
    }

    fn vm(&self) -> Result<&dyn Host, TrialError> {
        self.cluster.host(VM).map_err(|e| TrialError(e.to_string()))
    }

    fn open(&self, index: u32) -> Result<Open, TrialError> {
        let head = self.head()?;
        let vm = self.vm()?;
        let ticks = SESSION_S * sessions::TICKS_PER_S;
        let script = format!("{}/migration-job-{index}.sh", self.cluster.dir);
        put(head, &script, sessions::job_script(ticks).as_bytes())?;
        let log = format!("{}/t{index}.log", self.jobs);
        let job = self
            .slurm
            .submit_on(VM, &script, &format!("mig{index}"), &log)
            .map_err(|e| TrialError(e.to_string()))?;
        // The job must be running on the VM before it moves.
        let running = wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
            let jobs = self.slurm.jobs().ok()?;
            jobs.get(&job)
                .filter(|(state, _)| state == "RUNNING")
                .map(drop)
        });
        if running.is_none() {
            return Err(TrialError(format!(
                "batch job {job} did not start on {VM} in 30 s"
            )));
        }
        let file = format!("{}/migration-{index}.log", self.url);
        Ok(Open {
            ping: head.spawn(&sessions::ping(self.address, SESSION_S))?,
            stream: head.spawn(&sessions::stream(
                self.address,
                IPERF_PORT,
                SESSION_S,
                STREAM_MBIT,
            ))?,
            ssh: head.spawn(&sessions::ssh(&self.ssh.client, VM, ticks))?,
            nfs: vm.spawn(&sessions::nfs(&self.bin, &file, SESSION_S))?,
            job,
            log,
        })
    }

    /// Migrates the VM to the next site; returns when the node there started, as Unix
    /// seconds, and the time it took from stopping the old one.
    fn migrate(&mut self) -> Result<(f64, f64), TrialError> {
        let from = self.sites[self.at].clone();
        let next = (self.at + 1) % self.sites.len();
        let to = self.sites[next].clone();
        let stopped = Instant::now();
        self.node.stop(Duration::from_secs(1))?;
        self.cluster
            .machine(VM)
            .ok_or_else(|| TrialError(format!("{VM} is gone")))?
            .move_to(&to)?;
        self.at = next;
        let hosts = self.hosts;
        let host = |name: &str| hosts.get(name).map_err(|e| TrialError(e.to_string()));
        let (old, new) = (host(&from)?, host(&to)?);
        self.node = self.overlay.start_carrying(new, old)?;
        let started = unix_now();
        bridge(new, self.overlay, &self.bridge)?;
        Ok((started, stopped.elapsed().as_secs_f64()))
    }

    fn host(&self, name: &str) -> Result<&dyn Host, TrialError> {
        self.hosts.get(name).map_err(|e| TrialError(e.to_string()))
    }

    /// Watches the head node's and the new node's status until the head node maps the
    /// VM's IP to the new node and they have a direct edge, or `until`.
    fn converge(&self, started: f64, until: Instant) -> Converged {
        let mut c = Converged::default();
        let (Ok(head), Ok(at)) = (self.head(), self.host(&self.sites[self.at])) else {
            return c;
        };
        let mut address = None;
        while Instant::now() < until && (c.arp_s.is_none() || c.direct_s.is_none()) {
            if address.is_none() {
                address = self
                    .node
                    .status(at)
                    .ok()
                    .map(|s| s.address)
                    .filter(|a| !a.is_empty());
            }
            if let (Some(me), Ok(status)) = (&address, self.overlay.status(head)) {
                let t = unix_now() - started;
                let maps = status.ipop.as_ref().is_some_and(|i| {
                    i.resolver
                        .mappings
                        .iter()
                        .any(|e| e.ip == self.address && e.owner == *me)
                });
                if maps && c.arp_s.is_none() {
                    c.arp_s = Some(t);
                }
                match status.connection_to(me).map(|c| c.transport) {
                    Some(Transport::Relay) => c.relayed |= c.direct_s.is_none(),
                    Some(_) if c.direct_s.is_none() => c.direct_s = Some(t),
                    _ => {}
                }
            }
            std::thread::sleep(POLL);
        }
        c
    }
}

impl Trials for Moves<'_> {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn metrics(&self) -> Vec<Metric> {
        let m = |name: &str, description: &str| Metric {
            name: name.into(),
            description: description.into(),
            unit: Unit::Seconds,
            paper: None,
        };
        vec![
            m(
                "ping_downtime_s",
                "the longest gap between ping replies (10 ms apart) across the move: last reply before to first after",
            ),
            m(
                "tcp_downtime_s",
                "the longest run of 0.1 s intervals in which the TCP stream (10 Mbit/s) moved no byte",
            ),
            m(
                "ssh_gap_s",
                "the longest pause between two lines of the SSH session's counter, as they arrived at the head node",
            ),
            m(
                "nfs_stall_s",
                "the longest NFS write (pwrite + fsync) of the client in the VM",
            ),
            m(
                "resume_s",
                "from stopping the node at the old site to its successor's start at the new one (the VM's NIC moved between)",
            ),
            m(
                "arp_update_s",
                "from the new node's start until the head node's Brunet-ARP cache maps the VM's IP to it",
            ),
            m(
                "direct_edge_s",
                "from the new node's start until it and the head node have a direct (UDP/TCP) edge",
            ),
            Metric {
                name: "relayed_first".into(),
                description: "1 when a relay edge to the head node came before the direct one"
                    .into(),
                unit: Unit::Count,
                paper: None,
            },
        ]
    }

    fn plots(&self) -> Vec<PlotSpec> {
        vec![
            PlotSpec::Cdf {
                file: "downtime-cdf".into(),
                title: "Session pause across a VM migration".into(),
                metrics: vec![
                    "ping_downtime_s".into(),
                    "tcp_downtime_s".into(),
                    "ssh_gap_s".into(),
                    "nfs_stall_s".into(),
                ],
            },
            PlotSpec::Cdf {
                file: "convergence-cdf".into(),
                title: "After the move: Brunet-ARP update and direct edge".into(),
                metrics: vec!["arp_update_s".into(), "direct_edge_s".into()],
            },
        ]
    }

    fn take_extra(&mut self) -> Extra {
        std::mem::take(&mut self.extra)
    }

    fn trial(&mut self, index: u32) -> Result<Values, TrialError> {
        let from = self.names[self.at].clone();
        let open = self.open(index)?;
        std::thread::sleep(MOVE_AFTER);
        let (started, resume_s) = self.migrate()?;
        let end = Instant::now() + Duration::from_secs(u64::from(SESSION_S)) - MOVE_AFTER;
        let converged = self.converge(started, end + OVERRUN);
        let to = self.names[self.at].clone();
        let mut values = Values::new();
        values.insert("resume_s".into(), resume_s);
        if let Some(t) = converged.arp_s {
            values.insert("arp_update_s".into(), t);
        }
        if let Some(t) = converged.direct_s {
            values.insert("direct_edge_s".into(), t);
        }
        values.insert(
            "relayed_first".into(),
            f64::from(u8::from(converged.relayed)),
        );
        let broken = self.close(open, &mut values)?;
        let kept = crate::tools::dhcp::address_of(self.vm()?, "eth0");
        let mut broken = broken;
        if kept != Some(self.address) {
            broken.push(format!(
                "address: the VM has {kept:?}, not {}",
                self.address
            ));
        }
        let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
        self.extra.notes.push(format!(
            "trial {index}: {from} → {to}: {}",
            shown.join(", ")
        ));
        if broken.is_empty() {
            Ok(values)
        } else {
            Err(TrialError(format!(
                "{from} → {to}: did not survive: {}",
                broken.join("; ")
            )))
        }
    }
}

impl Moves<'_> {
    /// Waits for the sessions to end, measures them, and lists those that broke.
    fn close(&self, open: Open, values: &mut Values) -> Result<Vec<String>, TrialError> {
        let deadline = Instant::now() + Duration::from_secs(u64::from(SESSION_S)) + OVERRUN;
        let mut broken = Vec::new();
        let finish = |mut p: Box<dyn Process>| -> Result<(wow_host::Output, bool), TrialError> {
            let done = wait_for(
                deadline.saturating_duration_since(Instant::now()),
                Duration::from_millis(200),
                || p.try_wait().ok().flatten(),
            );
            Ok(match done {
                Some(out) => (out, true),
                None => (p.stop(Duration::from_secs(2))?, false),
            })
        };
        let (ping, _) = finish(open.ping)?;
        match sessions::longest_gap(&sessions::ping_replies(&ping.stdout_text())) {
            Some(gap) => {
                values.insert("ping_downtime_s".into(), gap);
            }
            None => broken.push("ping: fewer than two replies".into()),
        }
        let (stream, _) = finish(open.stream)?;
        match sessions::stream_report(&stream.stdout_text()) {
            Ok(s) if s.resumed => {
                values.insert("tcp_downtime_s".into(), s.stall_s);
            }
            Ok(s) => broken.push(format!(
                "tcp: the stream had not resumed by its end ({} bytes received)",
                s.received
            )),
            Err(e) => broken.push(format!("tcp: {e}")),
        }
        let ticks = SESSION_S * sessions::TICKS_PER_S;
        let (ssh, ended) = finish(open.ssh)?;
        let counted = sessions::counted(&ssh.stdout_text(), ticks);
        if counted.complete && ssh.success() {
            if let Some(gap) = counted.gap_s {
                values.insert("ssh_gap_s".into(), gap);
            }
        } else {
            broken.push(format!(
                "ssh: {} of {ticks} counts{}{}",
                counted.counts,
                if ended {
                    ""
                } else {
                    ", still running at the deadline"
                },
                tail(&ssh.stderr_text())
            ));
        }
        let (nfs, _) = finish(open.nfs)?;
        let report = sessions::nfs_report(&nfs.stdout_text());
        match report.verified {
            Some((ok, n)) if ok == n && n > 0 && nfs.success() => {
                if let Some(s) = report.max_write_s {
                    values.insert("nfs_stall_s".into(), s);
                }
            }
            _ => broken.push(format!(
                "nfs: {} writes, verified {:?}{}",
                report.written,
                report.verified,
                tail(&nfs.stderr_text())
            )),
        }
        if let Some(reason) = self.job_verdict(open.job, &open.log, ticks, deadline) {
            broken.push(format!("batch job {}: {reason}", open.job));
        }
        Ok(broken)
    }

    /// Why the batch job did not survive, if it did not: it must end COMPLETED with every
    /// count in its output on the VM.
    fn job_verdict(&self, job: u64, log: &str, ticks: u32, deadline: Instant) -> Option<String> {
        let state = wait_for(
            deadline.saturating_duration_since(Instant::now()),
            Duration::from_millis(500),
            || {
                let jobs = self.slurm.jobs().ok()?;
                let (state, _) = jobs.get(&job)?;
                (!matches!(state.as_str(), "RUNNING" | "PENDING" | "COMPLETING"))
                    .then(|| state.clone())
            },
        );
        match state.as_deref() {
            Some("COMPLETED") => {}
            Some(other) => return Some(format!("ended {other}")),
            None => return Some("still running at the deadline".into()),
        }
        let text = self
            .vm()
            .ok()
            .and_then(|vm| vm.read_file(log).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let counted = sessions::counted(&text, ticks);
        (!counted.complete || !text.contains("\ndone"))
            .then(|| format!("its output has {} of {ticks} counts", counted.counts))
    }
}

/// The last line of `stderr`, as `: line` (empty if none).
fn tail(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}
