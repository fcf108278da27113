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
//! - **tears down** on drop: it owns the `Box<dyn Process>` handles, which stop their
//!   processes by PID when dropped; the testbed's cleanup (every process in the run's
//!   namespaces) is the backstop.

mod ipop;
mod physical;

use wow_experiments::{Hosts, Subject, SubjectKind};
use wow_netns::{Node, Topology};

pub use ipop::{Ipop, Options};
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
        SubjectKind::Ipop => Ok(Box::new(Ipop::open(topology, nodes, hosts, options)?)),
    }
}
