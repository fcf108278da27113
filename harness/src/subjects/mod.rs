//! Subjects as the runner sets them up: what carries an experiment's traffic.
//!
//! # Adding a subject (the `ipop` hook)
//! [`open`] is called once the testbed is up and before the experiment is prepared. It
//! gets the [`Testbed`] (nodes, addresses, run folder; `crate::NetnsHost::new(bed, name)`
//! makes any node a [`Host`](wow_host::Host)) and the [`Topology`] (with its `[overlay]`
//! section: bootstrap hosts and IPOP namespaces). It returns a [`Subject`] that:
//! - **sets up** in `open`: for `ipop`, copy `ipop-node` to each host
//!   ([`Host::copy_to`](wow_host::Host::copy_to)), write its config, start it with
//!   [`Host::spawn`](wow_host::Host::spawn), and wait on each node's status socket until
//!   it is correctly connected and has its virtual IP;
//! - **answers** [`Subject::target`]: "where does `from` send this flow to reach `to`" —
//!   for `ipop`, `to`'s virtual IP (the node itself answers, so `Target::node == to`);
//!   an `Err(Unreachable)` when it cannot carry the flow, with the reason;
//! - **tears down** on drop: it owns the `Box<dyn Process>` handles, which stop their
//!   processes by PID when dropped; the testbed's cleanup (every process in the run's
//!   namespaces) is the backstop.
//!
//! A subject that cannot run here says so in [`unavailable`], which the command line
//! asks before it builds anything, with a reason that tells the user what is missing.

mod physical;

use anyhow::bail;
use wow_experiments::{Subject, SubjectKind};
use wow_netns::{Testbed, Topology};

pub use physical::Physical;

/// Why the ipop subject cannot run yet.
const IPOP_MISSING: &str = "the ipop subject is not available yet: wow-bench cannot start \
    overlay nodes until the `ipop-node` binary (node/) exists; run with --subject physical \
    for the baseline (harness/src/subjects/mod.rs says how the ipop subject plugs in)";

/// Why `kind` cannot run in this build, if it cannot.
pub fn unavailable(kind: SubjectKind) -> Option<&'static str> {
    match kind {
        SubjectKind::Physical => None,
        SubjectKind::Ipop => Some(IPOP_MISSING),
    }
}

/// Sets `kind` up on `bed`.
pub fn open(
    kind: SubjectKind,
    bed: &Testbed,
    topology: &Topology,
) -> anyhow::Result<Box<dyn Subject>> {
    match kind {
        // The underlay needs nothing started.
        SubjectKind::Physical => Ok(Box::new(Physical::new(topology, &bed.plan().nodes))),
        SubjectKind::Ipop => bail!(IPOP_MISSING),
    }
}
