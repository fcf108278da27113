//! What deploy places on a host ([`Layout`]), what a host's node is doing ([`State`],
//! read through its status socket), and the table the commands print.

use std::path::Path;

use ipop_api::Status;
use serde::Serialize;

use crate::host::Host;
use crate::nodes;
use crate::ssh::{JobState, SshHost};
use crate::text_table::TextTable;

/// Files deploy places in a host's work dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    work: String,
}

impl Layout {
    /// Entries of the work dir that deploy creates (removed by stop).
    pub const ENTRIES: [&str; 4] = ["ipop-node", "node.toml", "node", "state"];

    /// The layout under `work` (absolute).
    pub fn new(work: &str) -> Layout {
        Layout {
            work: work.to_string(),
        }
    }

    /// The layout of `host`'s work dir.
    pub fn of(host: &SshHost) -> Layout {
        Layout::new(host.work_dir())
    }

    /// The `ipop-node` binary.
    pub fn binary(&self) -> String {
        format!("{}/ipop-node", self.work)
    }

    /// The generated node configuration.
    pub fn config(&self) -> String {
        format!("{}/node.toml", self.work)
    }

    /// The node's job folder (PID, start time, stdout, stderr, exit status).
    pub fn job(&self) -> String {
        format!("{}/node", self.work)
    }

    /// The node's address file and control socket live here.
    pub fn state(&self) -> String {
        format!("{}/state", self.work)
    }

    /// The node's control socket.
    pub fn socket(&self) -> String {
        format!("{}/state/ipop.sock", self.work)
    }
}

/// What a host's node is doing, as the tables show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Correctly connected (both ring neighbours linked).
    Up,
    /// Running, not (yet) correctly connected.
    Joining,
    /// The node process ended.
    Exited,
    /// No node was deployed there (or it was stopped and removed).
    Absent,
    /// Stopped and its files removed.
    Stopped,
    /// No SSH connection (host down, network trouble).
    Unreachable,
    /// The SSH server refused us (credentials or host key).
    Refused,
    /// Something else failed; the detail says what.
    Failed,
}

impl State {
    /// The name in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Joining => "joining",
            State::Exited => "exited",
            State::Absent => "absent",
            State::Stopped => "stopped",
            State::Unreachable => "unreachable",
            State::Refused => "refused",
            State::Failed => "failed",
        }
    }

    /// The state a login failure leaves a host in.
    pub fn of_login(e: &crate::ssh::Error) -> State {
        if e.is_transient() {
            State::Unreachable
        } else {
            State::Refused
        }
    }
}

/// One row of a table: a host and what its node is doing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostReport {
    /// The host's name in the hosts file.
    pub name: String,
    /// `user@address:port`.
    pub target: String,
    /// Its roles.
    pub roles: Vec<&'static str>,
    /// What its node is doing.
    pub state: State,
    /// Why, or how it is doing (connections, the error).
    pub detail: String,
    /// The node's status (`ipop-node status --json`), when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl HostReport {
    /// A report for `spec` in `state`.
    pub fn new(spec: &super::HostSpec, state: State, detail: impl Into<String>) -> HostReport {
        HostReport {
            name: spec.name.clone(),
            target: spec.target.label(),
            roles: spec.roles.iter().map(|r| r.as_str()).collect(),
            state,
            detail: detail.into(),
            status: None,
        }
    }
}

/// Asks the node on `host` how it is doing: through its status socket, else from its
/// job folder (exited, never started).
pub fn observe(host: &SshHost, layout: &Layout) -> (State, String, Option<Status>) {
    let status = nodes::status_at(host, Path::new(&layout.binary()), &layout.socket());
    let failed = match status {
        Ok(v) => {
            let conns = v.connections.len();
            let (state, what) = if v.correctly_connected {
                (State::Up, "correctly connected")
            } else {
                (State::Joining, "not correctly connected yet")
            };
            let detail = format!(
                "{what}, {conns} connection{}",
                if conns == 1 { "" } else { "s" }
            );
            return (state, detail, Some(v));
        }
        Err(e) => e,
    };
    match host.job_state(&layout.job()) {
        Ok(JobState::Absent) => (State::Absent, "no node deployed here".into(), None),
        Ok(JobState::Running(pid)) => (
            State::Joining,
            format!("ipop-node runs (pid {pid}) but its status socket does not answer: {failed:#}"),
            None,
        ),
        Ok(JobState::Exited(code)) => (
            State::Exited,
            format!(
                "ipop-node exited with status {code}: {}",
                last_line(host, &format!("{}/stderr", layout.job()))
            ),
            None,
        ),
        Ok(JobState::Gone) => (
            State::Exited,
            "ipop-node is gone without an exit status (host rebooted?)".into(),
            None,
        ),
        Err(e) => (State::Failed, e.to_string(), None),
    }
}

/// The last non-empty line of a remote log, for error details.
fn last_line(host: &SshHost, file: &str) -> String {
    host.read_file(file)
        .ok()
        .and_then(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "(no output)".into())
}

/// The reports as an aligned text table.
pub fn table(reports: &[HostReport]) -> String {
    let mut t = TextTable::new(0, 2);
    t.row(["HOST", "LOGIN", "ROLES", "STATE", "DETAIL"]);
    for r in reports {
        let roles = if r.roles.is_empty() {
            "-".into()
        } else {
            r.roles.join(",")
        };
        t.row([&r.name, &r.target, &roles, r.state.as_str(), &r.detail]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let report = |name: &str, state, detail: &str| HostReport {
            name: name.into(),
            target: format!("wow@{name}:22"),
            roles: vec!["bootstrap"],
            state,
            detail: detail.into(),
            status: None,
        };
        let t = table(&[
            report("a", State::Up, "correctly connected, 2 connections"),
            report("longer", State::Refused, "authentication failed"),
        ]);
        assert_eq!(
            t,
            "HOST    LOGIN          ROLES      STATE    DETAIL\n\
             a       wow@a:22       bootstrap  up       correctly connected, 2 connections\n\
             longer  wow@longer:22  bootstrap  refused  authentication failed\n"
        );
    }

    #[test]
    fn layout_keeps_everything_in_the_work_dir() {
        let l = Layout::new("/home/wow/.wow-bench/a");
        for path in [l.binary(), l.config(), l.job(), l.state(), l.socket()] {
            let entry = path
                .strip_prefix("/home/wow/.wow-bench/a/")
                .and_then(|p| p.split('/').next())
                .unwrap();
            assert!(Layout::ENTRIES.contains(&entry), "{path}");
        }
    }
}
