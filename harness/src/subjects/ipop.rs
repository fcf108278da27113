//! The ipop subject: an `ipop-node` on every site host and public host of the testbed,
//! one IPOP namespace, and a real `dhclient` on every site host's TAP device. Traffic
//! goes to the peer's virtual IP, so it crosses the overlay; the node on the far end
//! answers itself ([`Target::node`] is always the node asked for).
//!
//! Setting up, in order:
//! 1. The topology's `[overlay] bootstrap` hosts start first (or the first public host,
//!    or the first site host, when the topology names none); each bootstraps from the
//!    ones started before it.
//! 2. The namespace is created through the first bootstrap node under a random
//!    identifier, with the range and lease of the topology's first `[overlay]`
//!    namespace (10.128.0.0/16, 12 h when it names none).
//! 3. Every other site host and public host starts a node bootstrapping from all of
//!    them; site hosts are namespace members with a TAP device. Routers run no node:
//!    they are the sites' NATs and firewalls.
//! 4. Once every node is correctly connected, `dhclient` runs on each member's TAP; the
//!    address it binds is the host's virtual IP.
//!
//! Hosts an experiment reserves ([`OverlayNeeds::reserved`]) get no node: it starts its
//! own there through [`Overlay::start`]. Dropping the subject kills the DHCP clients and
//! stops the nodes by PID (SIGTERM: a graceful leave); the testbed's cleanup is the
//! backstop. With [`Options::logs`], every node's log (its stderr, at
//! [`Options::log_level`]) is written there as `<host>.log` when it stops, also when
//! setting up failed; nodes an experiment started are `<host>-<n>.log`, `n` counting
//! from 1.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ipop_api::control::ProbeReply;
use ipop_api::{DEFAULT_PORT, Status, bootstrap_uris};
use wow_experiments::tools::link_exists;
use wow_experiments::{
    Edges, Flow, Hosts, NodeKind, Overlay, OverlayNeeds, OverlayNode, Subject, SubjectKind, Target,
    Unreachable,
};
use wow_host::{Cmd, Host, HostError, Output, Process};
use wow_netns::{Node, Role, Topology};

use crate::nodes::{
    self, CONTROL_SOCKET, KEY_FILE, LEASE_FILE, NodeOptions, RunningNode, STATE_DIR, wait_for,
};
use crate::vnet::{self, DhcpClient, TAP, create_namespace, start_dhcp, wait_address};
use ipop_core::ipop::NamespaceKey;

/// The namespace when the topology names none.
const DEFAULT_RANGE: &str = "10.128.0.0/16";
/// Its lease.
const DEFAULT_LEASE_S: u64 = 12 * 3600;
/// How long the whole overlay may take to be correctly connected.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a member's DHCP client may take for its address.
const ADDRESS_TIMEOUT: Duration = Duration::from_secs(120);

/// How the runner asks for the subject.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which edges nodes make.
    pub edges: Edges,
    /// Secure edges and a keyed namespace: the run makes an overlay secret and a
    /// namespace key and gives them to every node; every edge is an authenticated,
    /// encrypted Noise session, and the namespace's packets are sealed end to end.
    pub secure: bool,
    /// What the experiment needs.
    pub needs: OverlayNeeds,
    /// The nodes' log filter (`ipop-node --log-level`).
    pub log_level: String,
    /// Where to write each node's log when it stops (none: logs are dropped).
    pub logs: Option<PathBuf>,
    /// The `ipop-node` binary on each host, by host name, where it is not this
    /// machine's (remote hosts: the runner installed it there).
    pub binaries: BTreeMap<String, String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            edges: Edges::default(),
            secure: true,
            needs: OverlayNeeds::default(),
            log_level: "info".into(),
            logs: None,
            binaries: BTreeMap::new(),
        }
    }
}

/// How long a stopping node may take to leave before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Where node logs go.
#[derive(Debug, Clone)]
struct Logs {
    dir: Option<PathBuf>,
    /// Nodes an experiment started, per host (numbers their log files).
    started: Arc<Mutex<BTreeMap<String, u32>>>,
}

impl Logs {
    /// Writes `output`'s stderr as `<name>.log` (best effort: a run's results matter
    /// more than a log that cannot be written, which is reported on stderr).
    fn save(&self, name: &str, output: &Output) {
        let Some(dir) = &self.dir else { return };
        let path = dir.join(format!("{name}.log"));
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            std::fs::write(&path, [&output.stderr[..], &output.stdout[..]].concat())
        });
        if let Err(e) = written {
            eprintln!("warning: cannot write {}: {e}", path.display());
        }
    }

    /// The log name of the next node an experiment starts on `host`.
    fn next_name(&self, host: &str) -> String {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        let n = started.entry(host.to_string()).or_insert(0);
        *n += 1;
        format!("{host}-{n}")
    }
}

/// The overlay, set up.
#[derive(Debug)]
pub struct Ipop {
    /// `ipop`, or `ipop-plain`.
    kind: SubjectKind,
    // Stopped in this order when dropped: DHCP clients first, then the nodes. (In
    // mutexes only so that the subject is `Sync`; nothing touches them after setup.)
    dhcp: Mutex<Vec<Box<dyn Process>>>,
    nodes: Mutex<Vec<RunningNode>>,
    logs: Logs,
    launch: Launch,
    namespace: String,
    virtual_ips: BTreeMap<String, Ipv4Addr>,
    p2p: BTreeMap<String, String>,
}

/// How to start a node of this overlay.
#[derive(Debug, Clone)]
struct Launch {
    binary: PathBuf,
    remote: BTreeMap<String, String>,
    edges: Edges,
    bootstrap: Vec<String>,
    log_level: String,
    extra: Vec<String>,
    /// The overlay's admission secret (64 hex digits), with secure edges.
    secret: Option<String>,
    /// The namespace key (64 hex digits) of a keyed namespace.
    namespace_key: Option<String>,
}

impl Launch {
    /// How the nodes of `options` start, with no bootstrap yet, and the namespace they
    /// join: keyed (with a new overlay secret and namespace key) when secure, else open
    /// under a random identifier.
    fn new(binary: PathBuf, options: &Options) -> anyhow::Result<(Launch, String)> {
        let mut extra = Vec::new();
        if !options.needs.shortcuts {
            extra.extend(["--shortcut-threshold".to_string(), "0".into()]);
        }
        let mut launch = Launch {
            binary,
            remote: options.binaries.clone(),
            edges: options.edges,
            bootstrap: Vec::new(),
            log_level: options.log_level.clone(),
            extra,
            secret: None,
            namespace_key: None,
        };
        let namespace = if options.secure {
            launch.secret = Some(nodes::new_secret()?);
            let key: NamespaceKey = nodes::random_hex(32)
                .context("making a namespace key")?
                .parse()?;
            launch.namespace_key = Some(key.to_hex());
            key.id().to_string()
        } else {
            nodes::random_hex(16).context("making a namespace identifier")?
        };
        Ok((launch, namespace))
    }

    /// The binary on `host`.
    fn binary(&self, host: &dyn Host) -> PathBuf {
        self.remote
            .get(host.name())
            .map_or_else(|| self.binary.clone(), PathBuf::from)
    }

    /// Gets `host` ready for a node: the overlay secret and the namespace key in their
    /// files, with secure edges.
    fn prepare(&self, host: &dyn Host) -> Result<(), HostError> {
        if let Some(secret) = &self.secret {
            nodes::install_secret(host, secret)?;
        }
        if let Some(key) = &self.namespace_key {
            nodes::install_namespace_key(host, key)?;
        }
        Ok(())
    }

    fn options(&self, bootstrap: Vec<String>, member_of: Option<&str>) -> NodeOptions {
        let mut extra = self.extra.clone();
        if let Some(ns) = member_of {
            extra.extend(
                ["--namespace", ns, "--tap", TAP, "--lease-file", LEASE_FILE].map(String::from),
            );
        }
        let opts = NodeOptions {
            bootstrap,
            udp_listen: match self.edges {
                Edges::Udp => format!("0.0.0.0:{DEFAULT_PORT}"),
                Edges::Tcp => "off".into(),
            },
            tcp_listen: format!("0.0.0.0:{DEFAULT_PORT}"),
            log_level: self.log_level.clone(),
            extra,
        };
        let opts = if self.secret.is_some() {
            opts.secure()
        } else {
            opts
        };
        if member_of.is_some() && self.namespace_key.is_some() {
            opts.keyed()
        } else {
            opts
        }
    }

    fn uris(&self, host: &dyn Host) -> Vec<String> {
        let Some(ip) = host.addresses().first() else {
            return Vec::new();
        };
        let [udp, tcp] = bootstrap_uris(ip);
        match self.edges {
            Edges::Udp => vec![udp, tcp],
            Edges::Tcp => vec![tcp],
        }
    }
}

impl Ipop {
    /// Starts the overlay on the testbed whose nodes are `plan` (see the module doc).
    pub fn open(
        kind: SubjectKind,
        topology: &Topology,
        plan: &[Node],
        hosts: &Hosts,
        options: &Options,
    ) -> anyhow::Result<Ipop> {
        let binary = nodes::node_binary()?;
        if options.binaries.is_empty() && !binary.is_file() {
            bail!(
                "the ipop subject needs the ipop-node binary: build it with `cargo build \
                 --release` (looked for {}; set IPOP_NODE to use another)",
                binary.display()
            );
        }
        let reserved = &options.needs.reserved;
        let runs_node = |n: &&Node| n.role != Role::Router && !reserved.contains(&n.name);
        let chosen: Vec<&Node> = plan.iter().filter(runs_node).collect();
        let bootstrap = bootstrap_hosts(topology, &chosen)?;
        let (mut launch, namespace) = Launch::new(binary, options)?;
        // Nodes and clients go into the subject as they start, so that a failed setup
        // stops them (and keeps their logs) when it drops.
        let mut ipop = Ipop {
            kind,
            dhcp: Mutex::new(Vec::new()),
            nodes: Mutex::new(Vec::new()),
            logs: Logs {
                dir: options.logs.clone(),
                started: Arc::default(),
            },
            launch: launch.clone(),
            namespace: namespace.clone(),
            virtual_ips: BTreeMap::new(),
            p2p: BTreeMap::new(),
        };
        let member = |n: &Node| (n.role == Role::SiteHost).then_some(namespace.as_str());

        // 1. Bootstrap nodes, each joining the ones before it.
        ipop.start_bootstrap(&mut launch, hosts, &chosen, &bootstrap)?;
        ipop.launch = launch.clone();

        // 2. The namespace, through the first bootstrap node.
        ipop.open_namespace(topology, hosts.get(&bootstrap[0])?)?;

        // 3. Everyone else.
        for node in chosen.iter().filter(|n| !bootstrap.contains(&n.name)) {
            let host = hosts.get(&node.name)?;
            let opts = launch.options(launch.bootstrap.clone(), member(node));
            launch.prepare(host)?;
            ipop.started(RunningNode::start(host, &launch.binary(host), &opts)?);
        }
        ipop.wait_connected(&launch, hosts, &chosen)?;

        // 4. DHCP on every member, then their addresses.
        let members: Vec<&Node> = chosen
            .iter()
            .copied()
            .filter(|n| member(n).is_some())
            .collect();
        ipop.start_dhcp_clients(hosts, &members)?;
        for node in &members {
            let host = hosts.get(&node.name)?;
            let ip = wait_address(host, TAP, ADDRESS_TIMEOUT)?;
            ipop.virtual_ips.insert(node.name.clone(), ip);
        }
        Ok(ipop)
    }

    /// Creates the IPOP namespace (the topology's first, or the default range and lease)
    /// through the node on `first`.
    fn open_namespace(&self, topology: &Topology, first: &dyn Host) -> anyhow::Result<()> {
        let ns = topology.overlay.namespaces.first();
        let range = ns.map_or(DEFAULT_RANGE.to_string(), |n| n.range.to_string());
        let lease = ns.map_or(DEFAULT_LEASE_S, |n| n.lease.as_secs());
        create_namespace(
            first,
            &self.launch.binary(first),
            &range,
            &lease.to_string(),
            match self.launch.namespace_key {
                Some(_) => vnet::Kind::Keyed,
                None => vnet::Kind::Open(Some(&self.namespace)),
            },
        )
        .context("creating the IPOP namespace")?;
        Ok(())
    }

    /// Starts the `bootstrap` nodes one by one, each joining the ones before it: waits
    /// for its control socket, then adds its URIs to `launch`.
    fn start_bootstrap(
        &mut self,
        launch: &mut Launch,
        hosts: &Hosts,
        chosen: &[&Node],
        bootstrap: &[String],
    ) -> anyhow::Result<()> {
        for name in bootstrap {
            let host = hosts.get(name)?;
            let node = chosen.iter().find(|n| &n.name == name).expect("chosen");
            let member = (node.role == Role::SiteHost).then_some(self.namespace.as_str());
            let opts = launch.options(launch.bootstrap.clone(), member);
            launch.prepare(host)?;
            self.started(RunningNode::start(host, &launch.binary(host), &opts)?);
            wait_for(Duration::from_secs(15), Duration::from_millis(100), || {
                nodes::status(host, &launch.binary(host)).ok()
            })
            .with_context(|| {
                format!("{name}: the bootstrap node's control socket never answered")
            })?;
            launch.bootstrap.extend(launch.uris(host));
        }
        Ok(())
    }

    /// Waits, up to [`CONNECT_TIMEOUT`] in all, until every `chosen` node is correctly
    /// connected, and records its P2P address.
    fn wait_connected(
        &mut self,
        launch: &Launch,
        hosts: &Hosts,
        chosen: &[&Node],
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        for node in chosen {
            let host = hosts.get(&node.name)?;
            let status = wait_for(
                deadline.saturating_duration_since(Instant::now()),
                Duration::from_millis(250),
                || {
                    nodes::status(host, &launch.binary(host))
                        .ok()
                        .filter(|s| s.correctly_connected)
                },
            )
            .with_context(|| {
                format!(
                    "{}: not correctly connected {CONNECT_TIMEOUT:?} after the overlay started \
                     ({})",
                    node.name,
                    nodes::status(host, &launch.binary(host))
                        .map_or_else(|e| e.to_string(), |s| nodes::summary(&s))
                )
            })?;
            self.p2p.insert(node.name.clone(), nodes::address(&status)?);
        }
        Ok(())
    }

    /// Starts a DHCP client on the TAP device of each of `members`, once its node made it.
    fn start_dhcp_clients(&mut self, hosts: &Hosts, members: &[&Node]) -> anyhow::Result<()> {
        for node in members {
            let host = hosts.get(&node.name)?;
            wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
                link_exists(host, TAP).then_some(())
            })
            .with_context(|| format!("{}: the node made no {TAP} device", node.name))?;
            let client = start_dhcp(DhcpClient::Dhclient, host, TAP)?;
            self.dhcp
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .push(client);
        }
        Ok(())
    }

    fn started(&mut self, node: RunningNode) {
        self.nodes
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .push(node);
    }

    /// The namespace's identifier.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

/// The bootstrap hosts among `chosen`: the topology's, else the first public host, else
/// the first site host.
fn bootstrap_hosts(topology: &Topology, chosen: &[&Node]) -> anyhow::Result<Vec<String>> {
    let named: Vec<String> = topology
        .overlay
        .bootstrap
        .iter()
        .filter(|b| chosen.iter().any(|n| &&n.name == b))
        .cloned()
        .collect();
    if !named.is_empty() {
        return Ok(named);
    }
    let pick = |role| chosen.iter().find(|n| n.role == role);
    match pick(Role::PublicHost).or_else(|| pick(Role::SiteHost)) {
        Some(n) => Ok(vec![n.name.clone()]),
        None => bail!(
            "topology {}: no host to run an overlay node on (every host is a router or \
             reserved by the experiment)",
            topology.name
        ),
    }
}

/// 16 random bytes as 32 hex digits.
impl Drop for Ipop {
    fn drop(&mut self) {
        for client in self.dhcp.get_mut().unwrap_or_else(|e| e.into_inner()) {
            let _ = client.stop(Duration::ZERO);
        }
        for node in self.nodes.get_mut().unwrap_or_else(|e| e.into_inner()) {
            if let Ok(output) = node.stop(STOP_GRACE) {
                self.logs.save(&node.host, &output);
            }
        }
    }
}

impl Subject for Ipop {
    fn kind(&self) -> SubjectKind {
        self.kind
    }

    fn target(&self, from: &str, to: &str, _flow: Flow) -> Result<Target, Unreachable> {
        let member = |name: &str| {
            self.virtual_ips.get(name).copied().ok_or_else(|| {
                Unreachable(format!(
                    "{name} is not a member of the IPOP namespace (only site hosts are; \
                     routers run no node, public hosts are P2P routers only)"
                ))
            })
        };
        member(from)?;
        Ok(Target {
            node: to.to_string(),
            address: member(to)?,
            note: None,
        })
    }

    fn overlay(&self) -> Option<&dyn Overlay> {
        Some(self)
    }
}

impl Overlay for Ipop {
    fn start(
        &self,
        host: &dyn Host,
        kind: NodeKind,
        static_address: Option<Ipv4Addr>,
    ) -> Result<Box<dyn OverlayNode>, HostError> {
        // A fresh node: no identity, node lease or DHCP client lease from an earlier one.
        self.forget(host, None)?;
        self.launch(host, kind, static_address)
    }

    fn start_carrying(
        &self,
        host: &dyn Host,
        from: &dyn Host,
    ) -> Result<Box<dyn OverlayNode>, HostError> {
        let leases = from.read_file(LEASE_FILE)?;
        self.forget(host, Some(&leases))?;
        self.launch(host, NodeKind::Member, None)
    }

    fn tap(&self) -> &str {
        TAP
    }

    fn state_dir(&self) -> &str {
        STATE_DIR
    }

    fn status(&self, host: &dyn Host) -> Result<Status, HostError> {
        nodes::status(host, &self.launch.binary(host))
    }

    fn probe(&self, from: &dyn Host, to: &str) -> Result<ProbeReply, HostError> {
        let Some(address) = self.p2p.get(to) else {
            return Err(HostError::Start {
                host: from.name().to_string(),
                cmd: format!("ipop-node probe (to {to})"),
                reason: format!("{to} runs no node of the subject"),
            });
        };
        let cmd = Cmd::new(self.launch.binary(from).display().to_string()).args([
            "probe",
            address,
            "--json",
            "--socket",
            CONTROL_SOCKET,
        ]);
        let out = from.check(&cmd, Duration::from_secs(20))?;
        nodes::json_output(from, &cmd, &out.stdout)
    }
}

impl Ipop {
    /// Removes the files an earlier node on `host` left (identity, lease file, DHCP
    /// client lease); writes `leases` as the lease file if given.
    fn forget(&self, host: &dyn Host, leases: Option<&[u8]>) -> Result<(), HostError> {
        host.check(
            &Cmd::new("rm").args([
                "-f",
                &format!("{STATE_DIR}/address"),
                KEY_FILE,
                LEASE_FILE,
                &wow_experiments::tools::dhcp::lease_file(TAP, STATE_DIR),
            ]),
            Duration::from_secs(5),
        )?;
        if let Some(leases) = leases {
            host.check(
                &Cmd::new("sh")
                    .args([
                        "-c",
                        "mkdir -p \"$1\" && cat > \"$2\"",
                        "sh",
                        STATE_DIR,
                        LEASE_FILE,
                    ])
                    .stdin(leases),
                Duration::from_secs(5),
            )?;
        }
        Ok(())
    }

    fn launch(
        &self,
        host: &dyn Host,
        kind: NodeKind,
        static_address: Option<Ipv4Addr>,
    ) -> Result<Box<dyn OverlayNode>, HostError> {
        let member = (kind == NodeKind::Member).then_some(self.namespace.as_str());
        let mut opts = self.launch.options(self.launch.bootstrap.clone(), member);
        if let Some(ip) = static_address.filter(|_| member.is_some()) {
            opts.extra
                .extend(["--static-address".to_string(), ip.to_string()]);
        }
        let binary = self.launch.binary(host);
        self.launch.prepare(host)?;
        let node = RunningNode::start(host, &binary, &opts).map_err(|e| HostError::Start {
            host: host.name().to_string(),
            cmd: "ipop-node".into(),
            reason: format!("{e:#}"),
        })?;
        Ok(Box::new(Started {
            log: self.logs.next_name(host.name()),
            logs: self.logs.clone(),
            stopped: false,
            node,
            binary,
        }))
    }
}

/// A node an experiment started; stopped (and its log kept) when stopped or dropped.
#[derive(Debug)]
struct Started {
    node: RunningNode,
    binary: PathBuf,
    logs: Logs,
    log: String,
    stopped: bool,
}

impl Drop for Started {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.stop(STOP_GRACE);
        }
    }
}

impl OverlayNode for Started {
    fn started(&self) -> Instant {
        self.node.started
    }

    fn status(&self, host: &dyn Host) -> Result<Status, HostError> {
        nodes::status(host, &self.binary)
    }

    fn stop(&mut self, grace: Duration) -> Result<(), HostError> {
        let output = self.node.stop(grace)?;
        self.stopped = true;
        self.logs.save(&self.log, &output);
        Ok(())
    }
}
