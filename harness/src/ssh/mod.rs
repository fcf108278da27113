//! [`Host`](crate::Host) for machines reached over SSH (libssh2 through the `ssh2` crate).
//!
//! [`SshHost::connect`] opens an authenticated session to a [`Target`] (key file or
//! agent, optionally through one jump host, with connect and authentication timeouts and
//! a `known_hosts` check). Operations then borrow a session from a small per-host pool,
//! so concurrent calls on one host each get their own connection and sequential calls
//! reuse one.
//!
//! What it guarantees:
//! - `run` captures stdout and stderr separately and, past its timeout, kills the remote
//!   command by the PID it reported when it started.
//! - `spawn` starts a detached remote process whose PID, start time, output and exit
//!   status are kept in a job folder under the host's work dir; it is stopped by that
//!   PID only (SIGTERM, then SIGKILL), and only if the PID still names the process that
//!   was started (same start time). No `pkill`, no `killall`.
//! - `copy_to` writes through SFTP to a temporary name and renames it into place, so a
//!   running binary is never overwritten in place.
//!
//! The remote side needs a POSIX `sh` as the login shell, the usual coreutils, `/proc`
//! (Linux), and the SFTP subsystem (OpenSSH's default).

mod connect;
mod exec;
mod host;
mod job;
mod tunnel;

use std::path::PathBuf;
use std::time::Duration;

pub use host::{SshHost, stop_spawning};
pub use job::{Job, JobState, SshProcess};

/// Where and how to log in.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Host name or IP address, as the client (or the jump host) resolves it.
    pub address: String,
    /// TCP port of the SSH server.
    pub port: u16,
    /// User to log in as.
    pub user: String,
    /// How to authenticate.
    pub auth: Auth,
    /// A host to tunnel through (`ssh -J`), reached first with its own credentials.
    pub jump: Option<Box<Target>>,
    /// What to do with the server's host key.
    pub host_key: HostKeyPolicy,
    /// Limit for the TCP connection, and separately for the handshake and authentication.
    pub connect_timeout: Duration,
}

impl Target {
    /// `user@address:port`, for messages.
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A private key file (OpenSSH or PEM format, not passphrase-protected; use the agent
    /// for protected keys).
    KeyFile(PathBuf),
    /// Every identity of the running `ssh-agent` (`SSH_AUTH_SOCK`), in turn.
    Agent,
}

/// How the server's host key is checked against a `known_hosts` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyPolicy {
    /// The `known_hosts` file (OpenSSH format).
    pub known_hosts: PathBuf,
    /// What an unknown host gets.
    pub check: HostKeyCheck,
}

/// What an unknown or changed host key gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// Unknown hosts are refused; a changed key is refused.
    Strict,
    /// Unknown hosts are added to the file; a changed key is refused (OpenSSH's
    /// `StrictHostKeyChecking accept-new`).
    AcceptNew,
    /// Keys are not checked at all (throwaway test machines only).
    Off,
}

impl HostKeyCheck {
    /// The name used in hosts files.
    pub fn as_str(self) -> &'static str {
        match self {
            HostKeyCheck::Strict => "strict",
            HostKeyCheck::AcceptNew => "accept-new",
            HostKeyCheck::Off => "off",
        }
    }

    /// Parses a hosts-file name.
    pub fn from_name(name: &str) -> Option<HostKeyCheck> {
        [
            HostKeyCheck::Strict,
            HostKeyCheck::AcceptNew,
            HostKeyCheck::Off,
        ]
        .into_iter()
        .find(|c| c.as_str() == name)
    }
}

/// Why a host could not be reached or logged into. Every message says what to check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No TCP connection (refused, timed out, no route, name not resolved).
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// `user@address:port`.
        target: String,
        /// Why, with advice.
        reason: String,
    },
    /// The SSH handshake or the host key check failed.
    #[error("{target}: {reason}")]
    Handshake {
        /// `user@address:port`.
        target: String,
        /// Why, with advice.
        reason: String,
    },
    /// The server refused our credentials.
    #[error("{target}: authentication failed: {reason}")]
    Auth {
        /// `user@address:port`.
        target: String,
        /// Why, with advice.
        reason: String,
    },
    /// Logged in, but the first command (finding the home folder) failed.
    #[error("{target}: logged in, but {reason}")]
    Session {
        /// `user@address:port`.
        target: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether trying again later may help (network trouble rather than a refusal).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::Session { .. })
    }
}
