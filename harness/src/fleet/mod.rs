//! A fleet of SSH hosts described by a `hosts.toml` ([`HostsFile`]).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use wow_harness::fleet::HostsFile;
//! use wow_harness::{Cmd, Host};
//! let file = HostsFile::load("hosts.toml".as_ref())?;
//! for spec in &file.hosts {
//!     let host = spec.connect()?; // an SshHost: a `Host` like any other
//!     host.check(&Cmd::new("uname").arg("-a"), std::time::Duration::from_secs(10))?;
//! }
//! # Ok(()) }
//! ```

mod hosts_file;
mod raw;

pub use hosts_file::{DEFAULT_WORK_DIR, HostSpec, HostsError, HostsFile, OverlaySettings, Role};
