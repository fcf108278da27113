//! What a run made, on disk under `/run/wow-bench/<run>/`, so that `topo down`,
//! `topo exec` and `clean` work from another process and after a crash.
//!
//! - `record.json`: the run's nodes and the link emulator's process;
//! - `pids`: one `pid start-time` line per process started on a host;
//! - `emulator.json`, `emulator.log`: the emulator's spec and its output;
//! - `run/<node>/`: the node's private `/run`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Node;
use crate::prefix::RunPrefix;

/// Where runs keep their records.
pub const STATE_ROOT: &str = "/run/wow-bench";

/// A process the testbed started, identified by PID and start time (so a reused PID
/// is never mistaken for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
}

impl ProcessRecord {
    /// The record of a live process.
    pub fn of(pid: u32) -> Option<ProcessRecord> {
        Some(ProcessRecord {
            pid,
            start_time: proc_stat(pid)?.1,
        })
    }

    /// Whether the process is still the one recorded and has not exited.
    pub fn is_alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }
}

/// `(state, start time)` of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3; field 22 is 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The record of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's prefix.
    pub prefix: String,
    /// The topology's name.
    pub topology: String,
    /// The topology's description.
    pub description: Option<String>,
    /// The core namespace.
    pub core_namespace: String,
    /// Every node.
    pub nodes: Vec<Node>,
    /// The link emulator, when the topology has WAN links.
    pub emulator: Option<ProcessRecord>,
}

/// The state folder of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// The folder of run `prefix` (which may not exist).
    pub fn of(prefix: &RunPrefix) -> RunDir {
        RunDir {
            path: Path::new(STATE_ROOT).join(prefix.as_str()),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the folder; fails with [`Error::Busy`] if it exists.
    pub(crate) fn create(prefix: &RunPrefix) -> Result<RunDir> {
        let dir = RunDir::of(prefix);
        fs::create_dir_all(STATE_ROOT)
            .map_err(|e| Error::io(format!("cannot create {STATE_ROOT} (run as root)"), e))?;
        match fs::create_dir(&dir.path) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Busy(prefix.clone()))
            }
            Err(e) => Err(Error::io(
                format!("cannot create {}", dir.path.display()),
                e,
            )),
        }
    }

    /// The private `/run` of a node (created on first use).
    pub fn node_run_dir(&self, node: &str) -> Result<PathBuf> {
        let dir = self.path.join("run").join(node);
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        Ok(dir)
    }

    /// Saves the run record.
    pub(crate) fn save(&self, record: &RunRecord) -> Result<()> {
        let text = serde_json::to_string_pretty(record).map_err(|e| Error::State {
            path: self.record_path(),
            reason: e.to_string(),
        })?;
        write_file(&self.record_path(), text.as_bytes())
    }

    /// Loads the run record.
    pub fn load(&self) -> Result<RunRecord> {
        let path = self.record_path();
        let text = fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        serde_json::from_str(&text).map_err(|e| Error::State {
            path,
            reason: e.to_string(),
        })
    }

    /// Appends a process started on a host, so that `clean` can end it after a crash.
    pub fn record_process(&self, process: ProcessRecord) -> Result<()> {
        let path = self.path.join("pids");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        writeln!(f, "{} {}", process.pid, process.start_time)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }

    /// Every process recorded for this run (the emulator and host processes).
    pub(crate) fn processes(&self) -> Vec<ProcessRecord> {
        let mut out: Vec<ProcessRecord> = self
            .load()
            .ok()
            .and_then(|r| r.emulator)
            .into_iter()
            .collect();
        if let Ok(text) = fs::read_to_string(self.path.join("pids")) {
            out.extend(text.lines().filter_map(|l| {
                let (pid, start) = l.split_once(' ')?;
                Some(ProcessRecord {
                    pid: pid.parse().ok()?,
                    start_time: start.parse().ok()?,
                })
            }));
        }
        out
    }

    fn record_path(&self) -> PathBuf {
        self.path.join("record.json")
    }
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Prefixes of every run that has a state folder.
pub fn recorded_runs() -> Vec<RunPrefix> {
    let mut runs: Vec<RunPrefix> = fs::read_dir(STATE_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| RunPrefix::new(e.file_name().to_str()?).ok())
        .collect();
    runs.sort();
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_record_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessRecord::of(std::process::id()).unwrap();
        assert!(me.is_alive());
        let other = ProcessRecord {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
    }
}
