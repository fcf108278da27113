//! `ipop-node`: the IPOP node driver (tokio, UDP/TCP edges, TAP device, config, control
//! socket) around the sans-IO protocol in `ipop-core`, and the `ipop-sim` simulator CLI.
//!
//! The driver moves bytes and timers between real sockets and the core; all protocol
//! decisions are made in `ipop-core`.

pub mod accept;
pub mod config;
pub mod control;
pub mod driver;
pub mod faults;
pub mod identity;
pub mod leasefile;
pub mod private_file;
pub mod status;
pub mod sysinfo;
pub mod tap;
pub mod transport;
pub mod vnet;
