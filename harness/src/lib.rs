//! `wow-harness` drives nodes on hosts (network namespaces or SSH hosts), runs the
//! experiments of `wow-experiments`, collects trials and writes result folders. It sees
//! nodes only through real tools and the node's status socket (black-box).
//!
//! [`Host`] is how everything above talks to a machine; [`NetnsHost`] implements it for
//! nodes of a `wow-netns` testbed. [`cli`] is the `wow-bench` command line.

pub mod cli;
pub mod fleet;
pub mod host;
pub mod natmatrix;
mod netns_host;
pub mod nodes;
pub mod ssh;

pub use host::{Cmd, Host, HostError, Output, Process};
pub use netns_host::NetnsHost;
