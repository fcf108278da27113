//! A fleet of SSH hosts described by a `hosts.toml` ([`HostsFile`]), and what
//! `wow-bench deploy`, `status`, `stop` and `collect` do on it. See `harness/FLEET.md`.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use wow_harness::fleet::{HostsFile, Parallel};
//! use wow_harness::{Cmd, Host};
//! let file = HostsFile::load("hosts.toml".as_ref())?;
//! let par = Parallel::default();
//! // Log into every host at once (bounded concurrency, retries with backoff).
//! let hosts = par.map("connect", &file.hosts, |s| s.name.clone(), |s| par.connect(s));
//! for (spec, host) in file.hosts.iter().zip(hosts) {
//!     match host {
//!         // An SshHost is a `Host` like a namespace host.
//!         Ok(host) => println!("{}", host.check(&Cmd::new("uname").arg("-a"), std::time::Duration::from_secs(10))?.stdout_text()),
//!         Err(e) => eprintln!("{}: {e}", spec.name),
//!     }
//! }
//! # Ok(()) }
//! ```

mod bench;
mod deploy;
mod hosts_file;
mod interrupt;
mod ops;
mod parallel;
mod raw;
mod record;
mod report;

pub use bench::{FleetBed, Member, Skipped};
pub use deploy::{DeployOptions, Deployment, deploy};
pub use hosts_file::{DEFAULT_WORK_DIR, HostSpec, HostsError, HostsFile, OverlaySettings, Role};
pub use ops::{collect, status, stop};
pub use parallel::Parallel;
pub use record::{Placed, Record};
pub use report::{HostReport, Layout, State, observe, table};
