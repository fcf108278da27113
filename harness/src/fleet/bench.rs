//! The hosts of a hosts file as the testbed of `wow-bench run EXPERIMENT --hosts FILE`.
//!
//! Experiments pick their paths from a topology's shape, so the fleet is laid out as one:
//! hosts with role `bootstrap` or `router` are the public hosts `public-0`, `public-1`,
//! ... (P2P routers of the ipop subject; the bootstrap ones start first), every other host
//! is a host of the site `fleet` (`fleet-0`, `fleet-1`, ...: IPOP namespace members with
//! a TAP device), each in hosts-file order. The real hosts stand in for those names
//! ([`Hosts::insert_as`]); [`Member`] records who is who for `config.json` and the
//! report. Nothing about the network between real hosts is known beforehand: the site has
//! no NAT and an open firewall in the layout, there are no emulated WAN links, and each
//! experiment's preflight checks that its path works.
//!
//! For the ipop subject every host needs a root login (the node makes a TAP device, keeps
//! its state in `/run/ipop` and runs `dhclient`); `ipop-node` is copied into each host's
//! work dir and checked to run there, as `wow-bench deploy` does. Hosts that cannot be
//! reached, refuse the key or cannot run the binary are reported and left out; the run
//! goes on if the experiment still has the hosts it needs. Dropping the [`FleetBed`]
//! stops what the run spawned and removes what it placed (the binary, the work dir,
//! `/run/ipop` if the run made it); so does Ctrl-C ([`interrupt`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use serde::Serialize;
use wow_experiments::Hosts;
use wow_netns::topology::{Firewall, NatProfile, Overlay, PublicGroup, Site};
use wow_netns::{Node, Role as NodeRole, Topology};

use super::deploy::install;
use super::interrupt;
use super::{HostSpec, HostsFile, Parallel, Role, State};
use crate::nodes::STATE_DIR;
use crate::ssh::SshHost;
use crate::{Cmd, Host};

/// The site of client hosts in the layout.
const SITE: &str = "fleet";
/// The public group of bootstrap and router hosts in the layout.
const PUBLIC: &str = "public";

/// A host of the hosts file and the layout name it stands in for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// The layout name experiments use (`fleet-0`, `public-1`, ...).
    pub alias: String,
    /// Its name in the hosts file.
    pub name: String,
    /// The address it was reached at.
    pub address: Ipv4Addr,
}

/// A host left out of the run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Its name in the hosts file.
    pub name: String,
    /// `unreachable`, `refused` or `failed`.
    pub state: State,
    /// What went wrong.
    pub detail: String,
}

/// The fleet, logged into and laid out.
#[derive(Debug)]
pub struct FleetBed {
    /// The layout experiments pick paths from.
    pub topology: Topology,
    /// Its nodes, as a netns plan would list them.
    pub nodes: Vec<Node>,
    /// The hosts, under their layout names.
    pub hosts: Hosts,
    /// Who is who.
    pub members: Vec<Member>,
    /// Hosts left out.
    pub skipped: Vec<Skipped>,
    /// The `ipop-node` on each host, by hosts-file name (ipop subject only).
    pub binaries: BTreeMap<String, String>,
    /// Hosts to clean: the login, and whether the run made `/run/ipop` there.
    placed: Vec<(SshHost, bool)>,
    /// Its key with the signal handler.
    interrupt: u64,
}

impl FleetBed {
    /// Logs into every host of `file` (at most `par.concurrency` at once). With
    /// `node_binary`, installs it on each host and checks for a root login first.
    pub fn open(
        file: &HostsFile,
        par: &Parallel,
        node_binary: Option<&Path>,
    ) -> anyhow::Result<FleetBed> {
        // A work dir of its own, beside deploy's: a deployment on the same hosts keeps
        // its files, and the run removes only what it placed.
        let specs: Vec<HostSpec> = file
            .hosts
            .iter()
            .map(|s| HostSpec {
                work_dir: format!("{}-run", s.work_dir.trim_end_matches('/')),
                ..s.clone()
            })
            .collect();
        // Registered before logging in: Ctrl-C while installing removes what is placed.
        let key = interrupt::register(specs.iter().map(|s| (s.clone(), false)).collect());
        let label = if node_binary.is_some() {
            "install"
        } else {
            "connect"
        };
        let logins = par.map(
            label,
            &specs,
            |s| s.name.clone(),
            |spec| login(spec, par, node_binary),
        );
        let mut bed = FleetBed {
            topology: empty_topology(file),
            nodes: Vec::new(),
            hosts: Hosts::new(),
            members: Vec::new(),
            skipped: Vec::new(),
            binaries: BTreeMap::new(),
            placed: Vec::new(),
            interrupt: key,
        };
        let mut counts = (0u32, 0u32);
        let mut to_clean = Vec::new();
        for (spec, login) in specs.iter().zip(logins) {
            let (host, made_state_dir) = match login {
                Ok(h) => h,
                Err(skipped) => {
                    eprintln!("{}: left out: {}", skipped.name, skipped.detail);
                    bed.skipped.push(skipped);
                    continue;
                }
            };
            bed.add(
                spec,
                host,
                made_state_dir,
                node_binary.is_some(),
                &mut counts,
            )?;
            to_clean.push((spec.clone(), made_state_dir));
        }
        interrupt::update(key, to_clean);
        add_groups(&mut bed.topology, counts);
        if bed.members.is_empty() {
            bail!(
                "no host of {} could be used: {}",
                file.path.display(),
                bed.skipped
                    .iter()
                    .map(|s| format!("{}: {}", s.name, s.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        Ok(bed)
    }

    /// Adds a logged-in host as the next site or public host (public if it bootstraps
    /// or routes); `counts` are the site and public hosts so far, which name it.
    fn add(
        &mut self,
        spec: &HostSpec,
        host: SshHost,
        made_state_dir: bool,
        installed: bool,
        counts: &mut (u32, u32),
    ) -> anyhow::Result<()> {
        let Some(&address) = host.addresses().first() else {
            bail!("{}: logged in but no address known", spec.name);
        };
        let routes = spec.has(Role::Bootstrap) || spec.has(Role::Router);
        let (alias, role, site) = if routes {
            counts.1 += 1;
            (
                format!("{PUBLIC}-{}", counts.1 - 1),
                NodeRole::PublicHost,
                None,
            )
        } else {
            counts.0 += 1;
            let alias = format!("{SITE}-{}", counts.0 - 1);
            (alias, NodeRole::SiteHost, Some(SITE.to_string()))
        };
        if spec.has(Role::Bootstrap) {
            self.topology.overlay.bootstrap.push(alias.clone());
        }
        if installed {
            let binary = super::Layout::of(&host).binary();
            self.binaries.insert(spec.name.clone(), binary);
        }
        self.placed.push((host.clone(), made_state_dir));
        self.nodes.push(Node {
            name: alias.clone(),
            namespace: String::new(),
            role,
            site,
            addresses: vec![address],
            prefix_len: 32,
            gateway: None,
        });
        self.members.push(Member {
            alias: alias.clone(),
            name: spec.name.clone(),
            address,
        });
        self.hosts.insert_as(&alias, Box::new(host));
        Ok(())
    }
}

/// The topology of the hosts of `file` before any is added: no sites, no public hosts.
fn empty_topology(file: &HostsFile) -> Topology {
    Topology {
        name: format!("hosts:{}", stem(&file.path)),
        description: Some(format!("the hosts of {}", file.path.display())),
        core: "198.18.0.0/15".parse().expect("a prefix"),
        sites: Vec::new(),
        public: Vec::new(),
        wans: Vec::new(),
        overlay: Overlay::default(),
    }
}

/// Adds to `topology` the site of `sites` hosts and the group of `public` hosts, each if
/// it has any.
fn add_groups(topology: &mut Topology, (sites, public): (u32, u32)) {
    if sites > 0 {
        topology.sites.push(Site {
            name: SITE.into(),
            hosts: sites,
            subnet: "198.18.0.0/15".parse().expect("a prefix"),
            nat: NatProfile::None,
            firewall: Firewall::Open,
            hairpin: false,
            binding_timeout: None,
        });
    }
    if public > 0 {
        topology.public.push(PublicGroup {
            name: PUBLIC.into(),
            count: public,
            addresses: 1,
        });
    }
}

/// Logs in and makes the work dir; with `node_binary`, installs it and checks for a root
/// login. Also says whether the run made the node's state folder.
fn login(
    spec: &HostSpec,
    par: &Parallel,
    node_binary: Option<&Path>,
) -> Result<(SshHost, bool), Skipped> {
    let fail = |state, detail| Skipped {
        name: spec.name.clone(),
        state,
        detail,
    };
    let Some(binary) = node_binary else {
        let host = par
            .connect(spec)
            .map_err(|e| fail(State::of_login(&e), e.to_string()))?;
        host.prepare_work_dir()
            .map_err(|e| fail(State::Failed, format!("cannot make the work dir: {e}")))?;
        return Ok((host, false));
    };
    let host = install(spec, binary, par).map_err(|d| fail(d.state, d.detail))?;
    let fail = |detail| fail(State::Failed, detail);
    let script = format!(
        "[ \"$(id -u)\" = 0 ] || {{ echo \"logged in as $(id -un), not root\"; exit 5; }}; \
         if [ -d {STATE_DIR} ]; then echo kept; else mkdir -p {STATE_DIR} && echo made; fi"
    );
    let out = host
        .run(
            &Cmd::new("sh").args(["-c", &script]),
            Duration::from_secs(20),
        )
        .map_err(|e| fail(e.to_string()))?;
    match (out.code, out.stdout_text().trim()) {
        (Some(0), "made") => Ok((host, true)),
        (Some(0), _) => Ok((host, false)),
        (Some(5), who) => Err(fail(format!(
            "the ipop subject needs a root login on every host (its node makes a TAP \
             device, keeps state in {STATE_DIR} and runs dhclient): {who}; set user = \
             \"root\" for this host or run with --subject physical"
        ))),
        _ => Err(fail(format!(
            "cannot make {STATE_DIR}: {}",
            out.stderr_text().trim()
        ))),
    }
}

impl Drop for FleetBed {
    fn drop(&mut self) {
        for (host, made_state_dir) in &self.placed {
            interrupt::clean(host, *made_state_dir);
        }
        interrupt::forget(self.interrupt);
    }
}

/// A file's stem, for the layout's name.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or("hosts".into(), |s| s.to_string_lossy().into_owned())
}
