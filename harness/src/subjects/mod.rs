//! Subjects as the runner sets them up: what carries an experiment's traffic.
//!
//! # Adding a subject
//! [`open`] is called once the testbed is up (or the remote hosts logged into) and before
//! the experiment is prepared. It gets the nodes (names, roles, addresses), the
//! [`Hosts`] that reach them, and the [`Topology`] (with its `[overlay]`
//! section: bootstrap hosts and IPOP namespaces). It returns a [`Subject`] that:
//! - **sets up** in `open`: for `ipop` ([`Ipop`]), start `ipop-node` on each host with
//!   [`Host::spawn`](wow_host::Host::spawn), create the namespace, wait on each node's
//!   status socket until it is correctly connected, and run `dhclient` on each member's
//!   TAP until it has its virtual IP;
//! - **answers** [`Subject::target`]: "where does `from` send this flow to reach `to`" —
//!   for `ipop`, `to`'s virtual IP (the node itself answers, so `Target::node == to`);
//!   an `Err(Unreachable)` when it cannot carry the flow, with the reason;
//! - peer VPNs ([`Peer`], `subjects/peers/`) set up the same way with their own tools;
//! - **tears down** on drop: it owns the `Box<dyn Process>` handles, which stop their
//!   processes by PID when dropped; the testbed's cleanup (every process in the run's
//!   namespaces) is the backstop.

mod ipop;
mod peers;
mod physical;

use wow_experiments::{Hosts, Subject, SubjectKind};
use wow_netns::{Node, Topology};

pub use ipop::{Ipop, Options};
pub use peers::Peer;
pub use physical::Physical;

/// Sets `kind` up on the testbed (or fleet) whose nodes are `nodes`, reached as `hosts`.
pub fn open<'a>(
    kind: SubjectKind,
    nodes: &[Node],
    hosts: &'a Hosts,
    topology: &Topology,
    options: &Options,
) -> anyhow::Result<Box<dyn Subject + 'a>> {
    match kind {
        // The underlay needs nothing started.
        SubjectKind::Physical => Ok(Box::new(Physical::new(topology, nodes))),
        SubjectKind::Ipop => Ok(Box::new(Ipop::open(kind, topology, nodes, hosts, options)?)),
        SubjectKind::IpopPlain => {
            let plain = Options {
                secure: false,
                ..options.clone()
            };
            Ok(Box::new(Ipop::open(kind, topology, nodes, hosts, &plain)?))
        }
        peer => Ok(Box::new(Peer::open(peer, topology, nodes, hosts)?)),
    }
}

/// Whether `kind` can be set up on `hosts`; `Err` names what to install or build.
pub fn available(kind: SubjectKind, hosts: &Hosts) -> anyhow::Result<()> {
    match kind {
        SubjectKind::Physical => Ok(()),
        SubjectKind::Ipop | SubjectKind::IpopPlain => {
            let binary = crate::nodes::node_binary()?;
            anyhow::ensure!(
                binary.is_file(),
                "the ipop subject needs the ipop-node binary: build it with `cargo build \
                 --release` (looked for {}; set IPOP_NODE to use another)",
                binary.display()
            );
            Ok(())
        }
        peer => {
            let host = hosts
                .iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("no host to check {peer} on"))?;
            peers::available(peer, host)
        }
    }
}

/// Opens subjects on a testbed one at a time ([`wow_experiments::Subjects`]), for
/// experiments that measure several in one run.
#[derive(Debug)]
pub struct Opener<'a> {
    /// The testbed's nodes.
    pub nodes: &'a [Node],
    /// The hosts that reach them.
    pub hosts: &'a Hosts,
    /// Its topology.
    pub topology: &'a Topology,
    /// How the ipop subject is asked for.
    pub options: &'a Options,
}

impl wow_experiments::Subjects for Opener<'_> {
    fn available(&self, kind: SubjectKind) -> Result<(), String> {
        available(kind, self.hosts).map_err(|e| format!("{e:#}"))
    }

    fn open(&self, kind: SubjectKind) -> Result<Box<dyn Subject + '_>, String> {
        open(kind, self.nodes, self.hosts, self.topology, self.options)
            .map_err(|e| format!("setting up {kind}: {e:#}"))
    }
}
