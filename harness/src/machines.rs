//! [`Machines`] of a namespace testbed: `wow_netns::machine`, seen by experiments as
//! hosts they can migrate.

use wow_experiments::{Machine, Machines};
use wow_host::{Host, HostError};
use wow_netns::Testbed;
use wow_netns::machine::{self, BRIDGE};

use crate::netns_host::NetnsHost;

/// The machines of one testbed.
#[derive(Debug)]
pub(crate) struct NetnsMachines<'a> {
    bed: &'a Testbed,
}

impl<'a> NetnsMachines<'a> {
    /// Machines on the hosts of `bed`.
    pub(crate) fn new(bed: &'a Testbed) -> NetnsMachines<'a> {
        NetnsMachines { bed }
    }
}

impl Machines for NetnsMachines<'_> {
    fn bridge(&self) -> &str {
        BRIDGE
    }

    fn create(&self, name: &str, at: &str) -> Result<Box<dyn Machine + '_>, HostError> {
        let machine =
            machine::Machine::create(self.bed, name, at).map_err(|e| HostError::Start {
                host: at.to_string(),
                cmd: format!("creating machine {name}"),
                reason: e.to_string(),
            })?;
        let host = NetnsHost::machine(self.bed, &machine);
        Ok(Box::new(NetnsMachine {
            bed: self.bed,
            machine,
            host,
        }))
    }
}

/// A machine and the host view of it.
#[derive(Debug)]
struct NetnsMachine<'a> {
    bed: &'a Testbed,
    machine: machine::Machine,
    host: NetnsHost,
}

impl Machine for NetnsMachine<'_> {
    fn host(&self) -> &dyn Host {
        &self.host
    }

    fn at(&self) -> &str {
        self.machine.at()
    }

    fn move_to(&mut self, to: &str) -> Result<(), HostError> {
        let from = self.machine.at().to_string();
        self.machine
            .move_to(self.bed, to)
            .map_err(|e| HostError::Start {
                host: self.machine.node().name.clone(),
                cmd: format!("migrating from {from} to {to}"),
                reason: e.to_string(),
            })
    }
}
