//! The library's error type.

use std::path::PathBuf;

use crate::prefix::{BadPrefix, RunPrefix};
use crate::topology::TopologyError;

/// What went wrong while building, using or removing a testbed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The topology was refused.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A run prefix was refused.
    #[error(transparent)]
    Prefix(#[from] BadPrefix),
    /// A run with this prefix already exists.
    #[error(
        "a run with prefix {0} exists already; remove it with `wow-bench topo down --prefix {0}` or `wow-bench clean`"
    )]
    Busy(RunPrefix),
    /// No run with this prefix exists.
    #[error("no run with prefix {0} (see `wow-bench topo show`)")]
    NoSuchRun(String),
    /// No such node in the run.
    #[error("no node named {node:?} in run {prefix}")]
    NoSuchNode {
        /// The run.
        prefix: RunPrefix,
        /// The name asked for.
        node: String,
    },
    /// A tool (ip, iptables, tc, ...) failed.
    #[error("{what} failed ({status}): {stderr}")]
    Command {
        /// The command line, shortened.
        what: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The state record of a run is unreadable.
    #[error("state record {path} is unreadable: {reason}")]
    State {
        /// The record.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The link emulator did not start.
    #[error("the link emulator did not start: {0}")]
    Emulator(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
