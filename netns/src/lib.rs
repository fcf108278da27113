//! `wow-netns` turns a topology file into Linux network namespaces that behave like
//! sites on the Internet: LAN bridges, NAT routers with iptables rule sets, stateful
//! firewalls, and WAN links emulated by our own userspace link emulator.
//!
//! Nothing here is linked to the machine's root namespace, every underlay address comes
//! from 198.18.0.0/15, and every namespace, link and process it creates carries a per-run
//! prefix so that it can be removed on success, error, Ctrl-C, panic, or by `wow-bench clean`.
//!
//! ```no_run
//! # fn main() -> Result<(), wow_netns::Error> {
//! use wow_netns::{Options, RunPrefix, Testbed, Topology};
//! let topology = Topology::load("topologies/lan.toml".as_ref())?;
//! let bed = Testbed::up(&topology, &Options { prefix: RunPrefix::unique(), emulator: None })?;
//! println!("lab-0 is at {}", bed.node("lab-0")?.addresses[0]);
//! # Ok(()) }   // dropping `bed` removes every namespace it made
//! ```

pub mod cleanup;
pub mod emulator;
mod error;
pub mod exec;
pub mod machine;
pub mod nat;
pub mod plan;
mod prefix;
pub mod probe;
mod signals;
pub mod state;
mod testbed;
pub mod topology;

pub use error::{Error, Result};
pub use plan::{Node, Plan, Role};
pub use prefix::{BadPrefix, PROJECT_PREFIX, RunPrefix};
pub use testbed::{Launcher, Options, Testbed};
pub use topology::Topology;
