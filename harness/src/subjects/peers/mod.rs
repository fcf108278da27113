//! The peer VPNs as subjects: wireguard-go (and boringtun), tinc, nebula, n2n and
//! OpenVPN, set up the way their users would, for `wow-bench run peers`.
//!
//! Every peer runs on the same hosts as the ipop subject (site hosts and public hosts;
//! routers are the sites' NATs and firewalls). What is common is here, written once:
//! - **addresses**: member `i` (in the testbed's node order) is `10.200.0.(i+1)/24` on
//!   the peer's interface ([`RANGE`]);
//! - **rendezvous**: the hub is the topology's first `[overlay] bootstrap` host, else
//!   its first public host, else the first site host: nebula's lighthouse, n2n's
//!   supernode, the host tinc nodes `ConnectTo`, OpenVPN's end of every tunnel;
//! - **keys and configuration** are made fresh on each host in its own [`STATE_DIR`]
//!   folder (the namespace host's private `/run`), by the peer's own tools; only public
//!   halves (and nebula certificates) travel between hosts, through the harness;
//! - **daemons** start in the foreground through [`Host::spawn`], are stopped by PID
//!   when the subject drops, and the folder is removed then;
//! - **ready** means each member's interface carries its overlay address.
//!
//! Whether traffic then passes between two members is measured, not assumed: the
//! experiment pings first and reports "no path" when nothing comes back. Only what a
//! peer cannot do by design is refused up front by [`Subject::target`]: WireGuard and
//! OpenVPN have no relay and no NAT traversal, and OpenVPN's tunnels all end at the hub.

mod n2n;
mod nebula;
mod openvpn;
mod tinc;
mod wireguard;

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wow_experiments::tools::ip;
use wow_experiments::{Flow, Hosts, Subject, SubjectKind, Target, Unreachable};
use wow_host::{Cmd, Host, Process};
use wow_netns::{Node, Role, Topology};

use super::Physical;

/// The overlay range every peer uses (a /24; member `i` is `.i+1`).
pub(super) const RANGE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 0);
/// Where each host keeps a peer's keys and configuration (one folder per peer).
pub(super) const STATE_DIR: &str = "/run/wow-peers";
/// How long a member's interface may take to carry its address.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a short command (key generation, `ip`) may take.
const QUICK: Duration = Duration::from_secs(30);
/// How long a daemon may take to leave on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The programs a peer needs on every host, and the package that has them.
fn requirements(kind: SubjectKind) -> (&'static [&'static str], &'static str) {
    match kind {
        SubjectKind::WireguardGo => (
            &["wireguard-go", "wg"],
            "the Debian packages wireguard-go and wireguard-tools",
        ),
        SubjectKind::Boringtun => (
            &["boringtun-cli", "wg"],
            "boringtun-cli (`cargo install boringtun-cli`) and the Debian package \
             wireguard-tools",
        ),
        SubjectKind::Tinc => (&["tincd"], "the Debian package tinc"),
        SubjectKind::Nebula => (&["nebula", "nebula-cert"], "the Debian package nebula"),
        SubjectKind::N2n => (&["edge", "supernode"], "the Debian package n2n"),
        SubjectKind::Openvpn | SubjectKind::OpenvpnNone => (
            &["openvpn", "openssl"],
            "the Debian packages openvpn and openssl",
        ),
        SubjectKind::Physical | SubjectKind::Ipop | SubjectKind::IpopPlain => (&[], ""),
    }
}

/// Whether `kind`'s programs are on `host`; `Err` names what to install.
pub(super) fn available(kind: SubjectKind, host: &dyn Host) -> anyhow::Result<()> {
    let (programs, package) = requirements(kind);
    for program in programs {
        let found = host
            .run(
                &Cmd::new("sh").args(["-c", "command -v \"$1\"", "sh", program]),
                QUICK,
            )
            .is_ok_and(|o| o.success());
        if !found {
            bail!(
                "the {kind} subject needs {program}, which {} lacks: install {package} \
                 (scripts/install-deps.sh installs the Debian ones)",
                host.name()
            );
        }
    }
    Ok(())
}

/// One host of a peer overlay.
#[derive(Debug)]
struct Member<'a> {
    name: String,
    host: &'a dyn Host,
    underlay: Ipv4Addr,
    overlay: Ipv4Addr,
}

/// Who takes part, the hub, and who can reach whom on the underlay.
#[derive(Debug)]
struct Plan<'a> {
    kind: SubjectKind,
    members: Vec<Member<'a>>,
    hub: usize,
    physical: Physical,
    /// The peer's folder on every host.
    dir: String,
}

impl<'a> Plan<'a> {
    fn new(
        kind: SubjectKind,
        topology: &Topology,
        nodes: &[Node],
        hosts: &'a Hosts,
    ) -> anyhow::Result<Plan<'a>> {
        let chosen: Vec<&Node> = nodes.iter().filter(|n| n.role != Role::Router).collect();
        if chosen.len() > 254 {
            bail!("{kind}: {} hosts do not fit the /24 overlay", chosen.len());
        }
        let mut members = Vec::new();
        for (i, node) in chosen.iter().enumerate() {
            let underlay = *node
                .addresses
                .first()
                .with_context(|| format!("{} has no underlay address", node.name))?;
            let [a, b, c, _] = RANGE.octets();
            members.push(Member {
                name: node.name.clone(),
                host: hosts.get(&node.name)?,
                underlay,
                overlay: Ipv4Addr::new(a, b, c, u8::try_from(i + 1)?),
            });
        }
        let hub = hub_index(topology, &chosen)
            .with_context(|| format!("topology {} has no host for {kind}", topology.name))?;
        Ok(Plan {
            kind,
            members,
            hub,
            physical: Physical::new(topology, nodes),
            dir: format!("{STATE_DIR}/{kind}"),
        })
    }

    /// Whether `from` can send unsolicited UDP to `port` on `to` over the underlay.
    fn reaches(&self, from: &Member<'_>, to: &Member<'_>, port: u16) -> bool {
        self.physical
            .target(&from.name, &to.name, Flow::Udp { port })
            .is_ok_and(|t| t.node == to.name)
    }

    fn hub(&self) -> &Member<'a> {
        &self.members[self.hub]
    }

    fn path(&self, file: &str) -> String {
        format!("{}/{file}", self.dir)
    }
}

/// The hub among `chosen`: the topology's first bootstrap host, else the first public
/// host, else the first site host.
fn hub_index(topology: &Topology, chosen: &[&Node]) -> Option<usize> {
    let pick = |role| chosen.iter().position(|n| n.role == role);
    topology
        .overlay
        .bootstrap
        .iter()
        .find_map(|b| chosen.iter().position(|n| &n.name == b))
        .or_else(|| pick(Role::PublicHost))
        .or_else(|| pick(Role::SiteHost))
}

/// A peer VPN, set up.
#[derive(Debug)]
pub struct Peer<'a> {
    kind: SubjectKind,
    members: Vec<(String, Ipv4Addr)>,
    hub: String,
    /// Pairs where neither end can reach the other unsolicited (for peers without relay
    /// or NAT traversal), with the reason.
    blocked: Vec<(String, String, String)>,
    // In a mutex only so that the subject is `Sync`; only setup and drop touch it.
    processes: Mutex<Vec<(String, Box<dyn Process>)>>,
    hosts: Vec<&'a dyn Host>,
    dir: String,
}

impl<'a> Peer<'a> {
    /// Sets `kind` up on every site host and public host (see the module doc).
    pub fn open(
        kind: SubjectKind,
        topology: &Topology,
        nodes: &[Node],
        hosts: &'a Hosts,
    ) -> anyhow::Result<Peer<'a>> {
        let plan = Plan::new(kind, topology, nodes, hosts)?;
        available(kind, plan.hub().host)?;
        let mut peer = Peer {
            kind,
            members: plan
                .members
                .iter()
                .map(|m| (m.name.clone(), m.overlay))
                .collect(),
            hub: plan.hub().name.clone(),
            blocked: Vec::new(),
            processes: Mutex::new(Vec::new()),
            hosts: Vec::new(),
            dir: plan.dir.clone(),
        };
        for m in &plan.members {
            run(
                m.host,
                Cmd::new("sh").args([
                    "-c",
                    "rm -rf \"$1\" && umask 077 && mkdir -p \"$1\"",
                    "sh",
                    &plan.dir,
                ]),
            )?;
            peer.hosts.push(m.host);
        }
        let interfaces = match kind {
            SubjectKind::WireguardGo | SubjectKind::Boringtun => {
                peer.blocked = unrelayed_pairs(&plan, wireguard::PORT);
                wireguard::start(&plan, &mut peer)?
            }
            SubjectKind::Tinc => tinc::start(&plan, &mut peer)?,
            SubjectKind::Nebula => nebula::start(&plan, &mut peer)?,
            SubjectKind::N2n => n2n::start(&plan, &mut peer)?,
            SubjectKind::Openvpn | SubjectKind::OpenvpnNone => openvpn::start(&plan, &mut peer)?,
            SubjectKind::Physical | SubjectKind::Ipop | SubjectKind::IpopPlain => {
                bail!("{kind} is not a peer VPN")
            }
        };
        for (member, iface) in interfaces {
            peer.wait_ready(&plan.members[member], &iface)?;
        }
        Ok(peer)
    }

    /// Starts `cmd` on `member` in the foreground; it is stopped when the peer drops.
    fn spawn(&mut self, member: &Member<'_>, cmd: &Cmd) -> anyhow::Result<()> {
        let process = member
            .host
            .spawn(cmd)
            .with_context(|| format!("{}: starting {}", member.name, self.kind))?;
        self.processes().push((member.name.clone(), process));
        Ok(())
    }

    /// Waits until `iface` on `member` carries its overlay address, failing early (with
    /// its output) when one of the peer's daemons on the host exited.
    fn wait_ready(&mut self, member: &Member<'_>, iface: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ip::ipv4_addresses(member.host, iface)?.contains(&member.overlay) {
                return Ok(());
            }
            let kind = self.kind;
            for (host, process) in self.processes() {
                if let Some(output) = process.try_wait()? {
                    bail!(
                        "{kind}: {kind}'s daemon on {host} exited ({:?}): {}",
                        output.code,
                        tail(&output.stderr_text(), &output.stdout_text())
                    );
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{}: {iface} on {} did not get {} within {READY_TIMEOUT:?}",
                    self.kind,
                    member.name,
                    member.overlay
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn processes(&mut self) -> &mut Vec<(String, Box<dyn Process>)> {
        self.processes.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    fn overlay(&self, name: &str) -> Result<Ipv4Addr, Unreachable> {
        self.members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ip)| *ip)
            .ok_or_else(|| {
                Unreachable(format!(
                    "{name} runs no {} (only site hosts and public hosts do)",
                    self.kind
                ))
            })
    }
}

/// Pairs of members where neither accepts unsolicited UDP on `port` from the other.
fn unrelayed_pairs(plan: &Plan<'_>, port: u16) -> Vec<(String, String, String)> {
    let mut blocked = Vec::new();
    for (i, a) in plan.members.iter().enumerate() {
        for b in &plan.members[i + 1..] {
            if !plan.reaches(a, b, port) && !plan.reaches(b, a, port) {
                blocked.push((
                    a.name.clone(),
                    b.name.clone(),
                    format!(
                        "{} has no relay and no NAT traversal, and neither {} nor {} accepts \
                         unsolicited UDP from the other",
                        plan.kind, a.name, b.name
                    ),
                ));
            }
        }
    }
    blocked
}

/// The last lines of a daemon's output, for an error.
fn tail(stderr: &str, stdout: &str) -> String {
    let text = format!("{stderr}{stdout}");
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Runs `cmd` on `host`, failing on a non-zero exit; its stdout.
fn run(host: &dyn Host, cmd: Cmd) -> anyhow::Result<String> {
    Ok(host.check(&cmd, QUICK)?.stdout_text())
}

/// Writes `contents` to `path` on `host`, readable by its owner only (`mode` 0700 for
/// scripts).
fn write(host: &dyn Host, path: &str, contents: &str, executable: bool) -> anyhow::Result<()> {
    let mode = if executable { "0700" } else { "0600" };
    run(
        host,
        Cmd::new("sh")
            .args([
                "-c",
                "umask 077 && cat > \"$1\" && chmod \"$2\" \"$1\"",
                "sh",
                path,
                mode,
            ])
            .stdin(contents.as_bytes().to_vec()),
    )
    .map(drop)
}

impl Drop for Peer<'_> {
    fn drop(&mut self) {
        for (_, process) in self.processes().iter_mut().rev() {
            let _ = process.stop(STOP_GRACE);
        }
        for host in &self.hosts {
            let _ = host.run(&Cmd::new("rm").args(["-rf", &self.dir]), QUICK);
        }
    }
}

impl Subject for Peer<'_> {
    fn kind(&self) -> SubjectKind {
        self.kind
    }

    fn target(&self, from: &str, to: &str, _flow: Flow) -> Result<Target, Unreachable> {
        self.overlay(from)?;
        let address = self.overlay(to)?;
        if let Some((_, _, why)) = self
            .blocked
            .iter()
            .find(|(a, b, _)| (a == from && b == to) || (a == to && b == from))
        {
            return Err(Unreachable(why.clone()));
        }
        let hub_only = matches!(self.kind, SubjectKind::Openvpn | SubjectKind::OpenvpnNone);
        if hub_only && from != self.hub && to != self.hub {
            return Err(Unreachable(format!(
                "{}'s peer-to-peer tunnels all end at the hub {}; {from} and {to} have none \
                 between them",
                self.kind, self.hub
            )));
        }
        Ok(Target {
            node: to.to_string(),
            address,
            note: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wow_netns::{Plan as NetPlan, RunPrefix};

    fn hub_of(text_or_name: &str) -> String {
        let topology = if text_or_name.contains('\n') {
            Topology::parse(text_or_name, "t").unwrap()
        } else {
            let path = format!(
                "{}/../topologies/{text_or_name}.toml",
                env!("CARGO_MANIFEST_DIR")
            );
            Topology::load(path.as_ref()).unwrap()
        };
        let nodes = NetPlan::new(&topology, &RunPrefix::new("unit").unwrap()).nodes;
        let chosen: Vec<&Node> = nodes.iter().filter(|n| n.role != Role::Router).collect();
        chosen[hub_index(&topology, &chosen).unwrap()].name.clone()
    }

    #[test]
    fn requirements_name_a_package_for_every_peer() {
        for kind in SubjectKind::PEERS {
            let (programs, package) = requirements(kind);
            assert!(!programs.is_empty() && !package.is_empty(), "{kind}");
        }
    }

    #[test]
    fn the_hub_is_the_bootstrap_host_else_a_public_host_else_a_site_host() {
        assert_eq!(hub_of("lan"), "lab-0");
        assert_eq!(hub_of("wan-3site"), "public-0");
        let text = "name = \"t\"\n[[site]]\nname = \"a\"\nhosts = 2\n";
        assert_eq!(hub_of(text), "a-0");
        let text = format!("{text}[[public]]\nname = \"p\"\ncount = 1\n");
        assert_eq!(hub_of(&text), "p-0");
    }

    #[test]
    fn tails_keep_the_last_lines() {
        assert_eq!(tail("a\nb\nc\nd\ne\nf\n", "g"), "c | d | e | f | g");
    }
}
