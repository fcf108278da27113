//! Bringing a topology up, and the guard that takes it down.
//!
//! [`Testbed::up`] creates the run's state folder first, then every namespace, veth,
//! bridge, rule set, qdisc and the link emulator. If any step fails, or the caller
//! panics, or the process gets SIGINT/SIGTERM/SIGHUP, everything of the run is removed
//! (see [`crate::cleanup`]). [`Testbed::persist`] hands a running testbed over to a
//! later `wow-bench topo down`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::Signal;
use nix::unistd::setsid;

use crate::cleanup::{self, Removed, Scope};
use crate::emulator::{Spec, WireSpec};
use crate::error::{Error, Result};
use crate::exec::{ETC_NETNS_DIR, NETNS_DIR, run_in, run_root};
use crate::nat::router_rules;
use crate::plan::{Node, Plan, Role};
use crate::prefix::RunPrefix;
use crate::signals;
use crate::state::{ProcessRecord, RunDir, RunRecord, write_file};
use crate::topology::Topology;

/// How long the link emulator may take to open its sockets.
const EMULATOR_START: Duration = Duration::from_secs(10);

/// How to start the link emulator process: `program args... --spec <file>` must run
/// [`crate::emulator::run`] (`wow-bench` does, in a hidden subcommand).
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program.
    pub program: PathBuf,
    /// Arguments before `--spec <file>`.
    pub args: Vec<String>,
    /// Start it in its own session so it outlives the caller (`topo up`); otherwise
    /// it gets SIGTERM when the thread that started it exits.
    pub detach: bool,
}

/// Options of [`Testbed::up`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The run's prefix.
    pub prefix: RunPrefix,
    /// The link emulator; needed when the topology has WAN links.
    pub emulator: Option<Launcher>,
}

/// A running testbed. Dropping it removes everything it made.
#[derive(Debug)]
pub struct Testbed {
    plan: Plan,
    dir: RunDir,
    record: RunRecord,
    emulator: Option<Child>,
    keep: bool,
}

impl Testbed {
    /// Builds `topology` under `options.prefix`.
    pub fn up(topology: &Topology, options: &Options) -> Result<Testbed> {
        let plan = Plan::new(topology, &options.prefix);
        if let Some(ns) = cleanup::project_namespaces(&Scope::Run(options.prefix.clone())).first() {
            return Err(Error::Busy(
                RunPrefix::of_namespace(ns).unwrap_or_else(|| options.prefix.clone()),
            ));
        }
        let dir = RunDir::create(&options.prefix)?;
        signals::register(&options.prefix);
        let record = RunRecord {
            prefix: options.prefix.to_string(),
            topology: topology.name.clone(),
            description: topology.description.clone(),
            core_namespace: plan.core_namespace.clone(),
            nodes: plan.nodes.clone(),
            emulator: None,
        };
        let mut bed = Testbed {
            plan,
            dir,
            record,
            emulator: None,
            keep: false,
        };
        bed.dir.save(&bed.record)?;
        bed.build(topology, options)?;
        Ok(bed)
    }

    fn build(&mut self, topology: &Topology, options: &Options) -> Result<()> {
        let plan = &self.plan;
        let mut batch = String::new();
        for ns in plan.namespaces() {
            let _ = writeln!(batch, "netns add {ns}");
        }
        ip_batch(None, &batch)?;
        for ns in plan.namespaces() {
            let mut keys = vec![
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ];
            if ns != plan.core_namespace {
                keys.push("net.ipv4.ip_forward=1");
            }
            keys.push("net.bridge.bridge-nf-call-iptables=0");
            let mut args = vec!["-q", "-w"];
            args.extend(keys);
            run_in(ns, "sysctl", &args, None)?;
        }
        ip_batch(Some(&plan.core_namespace), &core_batch(plan))?;
        for (i, node) in plan.nodes.iter().enumerate() {
            ip_batch(Some(&node.namespace), &node_batch(plan, i, topology))?;
        }
        for (site, router) in topology
            .sites
            .iter()
            .zip(plan.nodes.iter().filter(|n| n.role == Role::Router))
        {
            let hosts: Vec<_> = plan
                .nodes
                .iter()
                .filter(|n| n.role == Role::SiteHost && n.site.as_deref() == Some(&site.name))
                .map(|n| n.addresses[0])
                .collect();
            let rules = router_rules(site, router.addresses[0], &hosts);
            run_in(
                &router.namespace,
                "iptables-restore",
                &["-w"],
                Some(&rules.iptables),
            )?;
            if let Some(nft) = &rules.nft {
                run_in(&router.namespace, "nft", &["-f", "-"], Some(nft))?;
            }
            if let Some(t) = site.binding_timeout {
                let t = t.as_secs().to_string();
                run_in(
                    &router.namespace,
                    "sysctl",
                    &[
                        "-q",
                        "-w",
                        &format!("net.netfilter.nf_conntrack_udp_timeout={t}"),
                        &format!("net.netfilter.nf_conntrack_udp_timeout_stream={t}"),
                    ],
                    None,
                )?;
            }
        }
        self.shape_links()?;
        self.write_etc()?;
        self.start_emulator(options.emulator.as_ref())?;
        self.dir.save(&self.record)
    }

    /// Offloads off on every interface that feeds or is a wire port (raw-packet copies
    /// need whole, checksummed frames), and `tbf` where a rate is set.
    fn shape_links(&self) -> Result<()> {
        let core = &self.plan.core_namespace;
        let mut tc = String::new();
        for link in &self.plan.core_links {
            let Some(params) = link.wan else { continue };
            let k = link.k;
            for dev in [format!("w{k}"), format!("x{k}"), format!("p{k}")] {
                ethtool_off(core, &dev)?;
            }
            ethtool_off(&self.plan.nodes[link.node].namespace, link.device)?;
            if let Some(rate) = params.rate_mbit {
                let bytes_per_s = rate * 1e6 / 8.0;
                let burst = (bytes_per_s * 0.004).max(15_000.0) as u64;
                let rtt = 2.0 * params.delay.as_secs_f64() + 0.02;
                let limit = (bytes_per_s * rtt).max(64_000.0) as u64 + burst;
                let kbit = (rate * 1000.0).round() as u64;
                for dev in [format!("w{k}"), format!("x{k}")] {
                    let _ = writeln!(
                        tc,
                        "qdisc add dev {dev} root tbf rate {kbit}kbit burst {burst} limit {limit}"
                    );
                }
            }
        }
        if !tc.is_empty() {
            run_in(core, "tc", &["-batch", "-"], Some(&tc))?;
        }
        Ok(())
    }

    fn write_etc(&self) -> Result<()> {
        let hosts = self.plan.hosts_file();
        for node in &self.plan.nodes {
            let dir = Path::new(ETC_NETNS_DIR).join(&node.namespace);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
            write_file(&dir.join("hosts"), hosts.as_bytes())?;
            write_file(&dir.join("hostname"), format!("{}\n", node.name).as_bytes())?;
            // Its own resolver file, which DHCP clients on the host may rewrite; the
            // testbed has no DNS server.
            write_file(
                &dir.join("resolv.conf"),
                format!("# {}: the testbed has no DNS server\n", node.name).as_bytes(),
            )?;
        }
        Ok(())
    }

    fn start_emulator(&mut self, launcher: Option<&Launcher>) -> Result<()> {
        let wires: Vec<WireSpec> = self
            .plan
            .core_links
            .iter()
            .filter_map(|l| {
                let p = l.wan?;
                Some(WireSpec {
                    name: self.plan.nodes[l.node].name.clone(),
                    a: format!("w{}", l.k),
                    b: format!("x{}", l.k),
                    delay_ns: p.delay.as_nanos() as u64,
                    jitter_ns: p.jitter.as_nanos() as u64,
                    loss: p.loss,
                })
            })
            .collect();
        if wires.is_empty() {
            return Ok(());
        }
        let launcher = launcher.ok_or_else(|| {
            Error::Emulator("the topology has WAN links but no emulator launcher was given".into())
        })?;
        let spec = Spec {
            namespace_file: format!("{NETNS_DIR}/{}", self.plan.core_namespace),
            wires,
        };
        let spec_path = self.dir.path().join("emulator.json");
        let text =
            serde_json::to_string_pretty(&spec).map_err(|e| Error::Emulator(e.to_string()))?;
        write_file(&spec_path, text.as_bytes())?;
        let log_path = self.dir.path().join("emulator.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| Error::io(format!("cannot create {}", log_path.display()), e))?;
        let mut cmd = Command::new(&launcher.program);
        cmd.args(&launcher.args).arg("--spec").arg(&spec_path);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
        crate::exec::Enter::netns(&self.plan.core_namespace).apply(&mut cmd)?;
        let detach = launcher.detach;
        // SAFETY: setsid and prctl are async-signal-safe and touch no shared memory.
        unsafe {
            cmd.pre_exec(move || {
                if detach {
                    setsid()?;
                } else {
                    set_pdeathsig(Signal::SIGTERM)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            Error::Emulator(format!("cannot start {}: {e}", launcher.program.display()))
        })?;
        self.record.emulator = ProcessRecord::of(child.id());
        self.dir.save(&self.record)?;
        let stdout = child.stdout.take();
        self.emulator = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            if let Some(out) = stdout {
                let _ = BufReader::new(out).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        match rx.recv_timeout(EMULATOR_START) {
            Ok(line) if line.trim() == "ready" => Ok(()),
            _ => {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                Err(Error::Emulator(format!(
                    "no \"ready\" within {EMULATOR_START:?}; its log says: {}",
                    log.trim()
                )))
            }
        }
    }

    /// The run's layout.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The run's prefix.
    pub fn prefix(&self) -> &RunPrefix {
        &self.plan.prefix
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&Node> {
        self.plan.node(name).ok_or_else(|| Error::NoSuchNode {
            prefix: self.plan.prefix.clone(),
            node: name.to_string(),
        })
    }

    /// The run's state folder.
    pub fn run_dir(&self) -> &RunDir {
        &self.dir
    }

    /// The run's record, as `topo show` reads it.
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Removes everything now and reports what was removed.
    pub fn down(mut self) -> Result<Removed> {
        self.keep = true;
        self.teardown()
    }

    /// Leaves the testbed running after this value is gone; `wow-bench topo down`
    /// (or `clean`) removes it later.
    pub fn persist(mut self) -> RunRecord {
        self.keep = true;
        signals::unregister(&self.plan.prefix);
        self.record.clone()
    }

    fn teardown(&mut self) -> Result<Removed> {
        let removed = cleanup::clean(&Scope::Run(self.plan.prefix.clone()));
        if let Some(mut child) = self.emulator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        signals::unregister(&self.plan.prefix);
        removed
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = self.teardown() {
                eprintln!(
                    "wow-netns: removing run {} failed: {e}; run `wow-bench clean`",
                    self.plan.prefix
                );
            }
        }
    }
}

fn ip_batch(ns: Option<&str>, batch: &str) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    match ns {
        Some(ns) => run_in(ns, "ip", &["-batch", "-"], Some(batch)).map(drop),
        // `ip netns add` names namespaces, which only works from the root namespace.
        None => run_root("ip", &["-batch", "-"], Some(batch)).map(drop),
    }
}

fn ethtool_off(ns: &str, dev: &str) -> Result<()> {
    run_in(
        ns,
        "ethtool",
        &[
            "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
        ],
        None,
    )
    .map(drop)
}

fn core_batch(plan: &Plan) -> String {
    let mut b = String::from("link set lo up\nlink add core type bridge\nlink set core up\n");
    for link in &plan.core_links {
        let k = link.k;
        let peer = &plan.nodes[link.node].namespace;
        if let Some(wan) = link.wan {
            let mtu = wan.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
            let _ = writeln!(
                b,
                "link add w{k}{mtu} type veth peer name {}{mtu} netns {peer}",
                link.device
            );
            let _ = writeln!(b, "link add x{k}{mtu} type veth peer name p{k}{mtu}");
            let _ = writeln!(b, "link set w{k} up\nlink set x{k} up");
        } else {
            let _ = writeln!(
                b,
                "link add p{k} type veth peer name {} netns {peer}",
                link.device
            );
        }
        let _ = writeln!(b, "link set p{k} master core\nlink set p{k} up");
    }
    b
}

/// The MAC address of the core interface of the node whose first core address is `ip`
/// (locally administered, unique per address).
fn core_mac(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// Permanent neighbour entries on node `i`'s core interface `dev` for every other node
/// on the core. The core stands for the Internet between sites, where no ARP broadcast
/// crosses: without these, every node's ARP requests flood every emulated WAN link (a
/// storm when a hundred nodes start at once, which delays or loses their first packets).
fn core_neighbours(b: &mut String, plan: &Plan, i: usize, dev: &str) {
    for link in plan.core_links.iter().filter(|l| l.node != i) {
        let other = &plan.nodes[link.node];
        let addresses = match other.role {
            Role::Router => &other.addresses[..1],
            _ => &other.addresses[..],
        };
        let mac = core_mac(other.addresses[0]);
        for addr in addresses {
            let _ = writeln!(
                b,
                "neigh replace {addr} lladdr {mac} dev {dev} nud permanent"
            );
        }
    }
}

fn node_batch(plan: &Plan, i: usize, topology: &Topology) -> String {
    let node = &plan.nodes[i];
    let mut b = String::from("link set lo up\n");
    match node.role {
        Role::Router => {
            let site = topology
                .sites
                .iter()
                .find(|s| Some(&s.name) == node.site.as_ref());
            let lan_len = site.map_or(24, |s| s.subnet.prefix_len());
            let _ = writeln!(
                b,
                "link set wan address {}\naddr add {}/{} dev wan\nlink set wan up",
                core_mac(node.addresses[0]),
                node.addresses[0],
                plan.core_prefix_len
            );
            core_neighbours(&mut b, plan, i, "wan");
            let _ = writeln!(
                b,
                "link add lan type bridge\nlink set lan up\naddr add {}/{lan_len} dev lan",
                node.addresses[1]
            );
            let hosts = plan
                .nodes
                .iter()
                .filter(|n| n.role == Role::SiteHost && n.site == node.site);
            for (h, host) in hosts.enumerate() {
                let _ = writeln!(
                    b,
                    "link add h{h} type veth peer name eth0 netns {}",
                    host.namespace
                );
                let _ = writeln!(b, "link set h{h} master lan\nlink set h{h} up");
            }
            for route in plan.site_routes.iter().filter(|r| r.router != i) {
                let _ = writeln!(b, "route add {} via {}", route.subnet, route.via);
            }
        }
        Role::SiteHost => {
            let _ = writeln!(
                b,
                "addr add {}/{} dev eth0\nlink set eth0 up",
                node.addresses[0], node.prefix_len
            );
            if let Some(gw) = node.gateway {
                let _ = writeln!(b, "route add default via {gw}");
            }
        }
        Role::PublicHost => {
            let _ = writeln!(b, "link set eth0 address {}", core_mac(node.addresses[0]));
            for addr in &node.addresses {
                let _ = writeln!(b, "addr add {addr}/{} dev eth0", node.prefix_len);
            }
            let _ = writeln!(b, "link set eth0 up");
            core_neighbours(&mut b, plan, i, "eth0");
            for route in &plan.site_routes {
                let _ = writeln!(b, "route add {} via {}", route.subnet, route.via);
            }
        }
        // Made at run time by `Machine::create`, with no configuration of the plan's.
        Role::Machine => {}
    }
    b
}
