//! `config.json`: the command, its arguments, the topology file and text, the git
//! commit, versions of the crate and of the tools experiments run, and how loaded the
//! machine was when the run started.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};
use wow_experiments::{Edges, SubjectKind};

/// Everything needed to rerun a run and to judge its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The command line as given.
    pub command: Vec<String>,
    /// The experiment.
    pub experiment: String,
    /// The subject.
    pub subject: SubjectKind,
    /// The edges of the ipop subject's nodes.
    #[serde(default)]
    pub edges: Edges,
    /// Whether the ipop subject's edges were secure and its namespace keyed (not
    /// `--insecure`).
    #[serde(default)]
    pub secure: bool,
    /// The log filter of the ipop subject's nodes.
    #[serde(default)]
    pub node_log: String,
    /// Trials asked for.
    pub trials: u32,
    /// Jobs per batch asked for (`--jobs`), where the experiment takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u32>,
    /// Seconds one job runs alone (`--job-seconds`), where the experiment takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_seconds: Option<f64>,
    /// Taxa asked for (`--taxa`), where the experiment takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taxa: Option<u32>,
    /// Worker counts asked for (`--workers`), where the experiment takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<u32>>,
    /// Database size asked for (`--db-mb`), where the experiment takes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_mb: Option<f64>,
    /// The subjects asked for (`--subject`), where the experiment opens them itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<Vec<SubjectKind>>,
    /// Seconds of each throughput test asked for (`--seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
    /// The seed.
    pub seed: u64,
    /// The result folder.
    pub out: String,
    /// The testbed's run prefix (namespaces `wow-<prefix>-*`).
    pub prefix: String,
    /// When the run started (RFC 3339, UTC).
    pub started: String,
    /// The topology (for a run on remote hosts: the hosts file, laid out as a topology).
    pub topology: TopologyFile,
    /// A run on remote hosts (`--hosts`): which host stands in for which node of the
    /// layout (`members`: `alias`, `name`, `address`) and the hosts left out (`skipped`:
    /// `name`, `state`, `detail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<serde_json::Value>,
    /// The source tree.
    pub git: Git,
    /// Versions.
    pub versions: Versions,
    /// The machine.
    pub machine: Machine,
}

/// A topology file and its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologyFile {
    /// The path given (or the default).
    pub path: String,
    /// The topology's name.
    pub name: String,
    /// The file's text, so the run can be rebuilt exactly.
    pub text: String,
}

/// The git commit of the working directory, if it is a repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Git {
    /// `git rev-parse HEAD`.
    pub commit: Option<String>,
    /// Whether tracked files had uncommitted changes.
    pub dirty: Option<bool>,
}

/// Versions of what produced the figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    /// The wow-harness crate.
    pub wow_bench: String,
    /// `ping -V`, first line.
    pub ping: Option<String>,
    /// `iperf3 --version`, first line.
    pub iperf3: Option<String>,
    /// The kernel release.
    pub kernel: Option<String>,
}

/// How busy and how big the machine was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `/proc/loadavg`.
    pub loadavg: Option<String>,
    /// Online CPUs.
    pub nproc: Option<usize>,
    /// `MemTotal` in KiB.
    pub mem_total_kib: Option<u64>,
    /// `MemAvailable` in KiB.
    pub mem_available_kib: Option<u64>,
}

/// The first line a command prints (stdout, else stderr), if it runs.
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

impl Git {
    /// The commit of the repository holding the current directory.
    pub fn collect() -> Git {
        let commit = first_line("git", &["rev-parse", "HEAD"]).filter(|c| c.len() == 40);
        let dirty = commit.as_ref().and_then(|_| {
            let out = Command::new("git")
                .args(["status", "--porcelain", "--untracked-files=no"])
                .output()
                .ok()?;
            out.status.success().then_some(!out.stdout.is_empty())
        });
        Git { commit, dirty }
    }
}

impl Versions {
    /// Asks each tool.
    pub fn collect() -> Versions {
        Versions {
            wow_bench: env!("CARGO_PKG_VERSION").to_string(),
            ping: first_line("ping", &["-V"]),
            iperf3: first_line("iperf3", &["--version"]),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string()),
        }
    }
}

impl Machine {
    /// Reads `/proc`.
    pub fn collect() -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            loadavg: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .map(|s| s.trim().to_string()),
            nproc: std::thread::available_parallelism().ok().map(usize::from),
            mem_total_kib: meminfo_kib(&meminfo, "MemTotal:"),
            mem_available_kib: meminfo_kib(&meminfo, "MemAvailable:"),
        }
    }
}

/// A `/proc/meminfo` field in KiB.
fn meminfo_kib(meminfo: &str, key: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

impl TopologyFile {
    /// Reads the file at `path`.
    pub fn read(path: &Path, name: &str) -> std::io::Result<TopologyFile> {
        Ok(TopologyFile {
            path: path.display().to_string(),
            name: name.to_string(),
            text: std::fs::read_to_string(path)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields() {
        let text = "MemTotal:       24684544 kB\nMemFree:        23475600 kB\nMemAvailable:   24333492 kB\n";
        assert_eq!(meminfo_kib(text, "MemTotal:"), Some(24_684_544));
        assert_eq!(meminfo_kib(text, "MemAvailable:"), Some(24_333_492));
        assert_eq!(meminfo_kib(text, "SwapTotal:"), None);
    }

    #[test]
    fn the_machine_and_kernel_are_described() {
        let m = Machine::collect();
        assert!(m.nproc.unwrap_or(0) >= 1);
        assert!(m.loadavg.is_some() && m.mem_total_kib.is_some());
        assert!(Versions::collect().kernel.is_some());
    }
}
