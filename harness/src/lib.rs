//! `wow-harness` drives nodes on hosts (network namespaces or SSH hosts), runs the
//! experiments of `wow-experiments`, collects trials and writes result folders. It sees
//! nodes only through real tools and the node's status socket (black-box).
//!
//! [`Host`] is how everything above talks to a machine; [`NetnsHost`] implements it for
//! nodes of a `wow-netns` testbed. [`runner`] runs an experiment on a testbed and
//! [`results`] is the result folder it writes (read back by `wow-bench plot`);
//! [`subjects`] sets up what carries the traffic (the underlay, ipop-node, a peer VPN). [`cli`] is the
//! `wow-bench` command line.

pub mod cli;
pub use wow_host as host;
pub mod fleet;
mod links;
mod machines;
pub mod natmatrix;
mod netns_host;
pub mod nodes;
mod render;
pub mod results;
pub mod runner;
pub mod ssh;
pub mod subjects;
mod text_table;
pub mod vnet;

pub use host::{Cmd, Host, HostError, Output, Process};
pub use netns_host::NetnsHost;
