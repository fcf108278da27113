//! Removing runs: processes first (by PID only), then namespaces, `/etc/netns`
//! folders and state folders. Used by [`crate::Testbed`]'s drop, by signal handling,
//! by `wow-bench topo down` and by `wow-bench clean`. Touches only names that carry
//! the project prefix `wow-`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::exec::{ETC_NETNS_DIR, NETNS_DIR, run_root};
use crate::prefix::{PROJECT_PREFIX, RunPrefix};
use crate::state::{ProcessRecord, RunDir, recorded_runs};

/// How long processes get between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// What a cleanup removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Runs touched.
    pub runs: BTreeSet<String>,
    /// Processes ended.
    pub processes: usize,
    /// Namespaces deleted.
    pub namespaces: usize,
    /// Folders removed (`/etc/netns/...`, state folders).
    pub folders: usize,
}

/// Which runs to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every run of the project (every name starting with `wow-`).
    All,
    /// One run.
    Run(RunPrefix),
}

impl Scope {
    fn covers(&self, run: &RunPrefix) -> bool {
        match self {
            Scope::All => true,
            Scope::Run(p) => p == run,
        }
    }
}

/// Namespaces of the project, by run.
pub fn project_namespaces(scope: &Scope) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|ns| RunPrefix::of_namespace(ns).is_some_and(|run| scope.covers(&run)))
        .collect();
    out.sort();
    out
}

/// How many times [`clean`] looks again for processes started during its first pass.
const RESCANS: usize = 5;

/// Removes everything of the runs in `scope`.
pub fn clean(scope: &Scope) -> Result<Removed> {
    let mut removed = Removed::default();
    let namespaces = project_namespaces(scope);
    let mut runs: BTreeSet<RunPrefix> = recorded_runs()
        .into_iter()
        .filter(|r| scope.covers(r))
        .collect();
    runs.extend(
        namespaces
            .iter()
            .filter_map(|ns| RunPrefix::of_namespace(ns)),
    );
    let etc: Vec<String> = fs::read_dir(ETC_NETNS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|ns| RunPrefix::of_namespace(ns).is_some_and(|run| scope.covers(&run)))
        .collect();
    runs.extend(etc.iter().filter_map(|ns| RunPrefix::of_namespace(ns)));

    // 1. Processes: the recorded ones (verified by start time), then any process that
    //    still lives in one of the namespaces.
    let mut doomed: Vec<ProcessRecord> = runs
        .iter()
        .flat_map(|r| RunDir::of(r).processes())
        .filter(|p| p.is_alive())
        .collect();
    doomed.extend(processes_in(&namespaces));
    removed.processes = end_processes(&doomed, GRACE);
    // A daemon may have started a child after the scan (a batch system's job): scan
    // again until the namespaces are empty, a bounded number of times.
    for _ in 0..RESCANS {
        let late = processes_in(&namespaces);
        if late.is_empty() {
            break;
        }
        removed.processes += end_processes(&late, GRACE);
    }

    // 2. Namespaces, 3. /etc/netns folders, 4. state folders.
    let mut first_error = None;
    for ns in &namespaces {
        match run_root("ip", &["netns", "delete", ns], None) {
            Ok(_) => removed.namespaces += 1,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let folders = etc
        .iter()
        .map(|ns| Path::new(ETC_NETNS_DIR).join(ns))
        .chain(runs.iter().map(|r| RunDir::of(r).path().to_path_buf()));
    for dir in folders {
        match fs::remove_dir_all(&dir) {
            Ok(()) => removed.folders += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(Error::io(format!("cannot remove {}", dir.display()), e));
            }
        }
    }
    removed.runs = runs.iter().map(|r| r.to_string()).collect();
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// Removes one namespace of the project made outside a testbed's plan (a
/// [`Machine`](crate::machine::Machine)): ends its processes, deletes it and its
/// `/etc/netns` folder. Best effort: what is left, the run's cleanup removes.
pub fn remove_namespace(ns: &str) {
    let namespaces = [ns.to_string()];
    for _ in 0..=RESCANS {
        let procs = processes_in(&namespaces);
        if procs.is_empty() {
            break;
        }
        end_processes(&procs, GRACE);
    }
    let _ = run_root("ip", &["netns", "delete", ns], None);
    let _ = fs::remove_dir_all(Path::new(ETC_NETNS_DIR).join(ns));
}

/// Every process whose network namespace is one of `namespaces` (never this process).
fn processes_in(namespaces: &[String]) -> Vec<ProcessRecord> {
    let ids: Vec<(u64, u64)> = namespaces
        .iter()
        .filter_map(|ns| fs::metadata(Path::new(NETNS_DIR).join(ns)).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| ids.contains(&(m.dev(), m.ino())))
        })
        .filter_map(ProcessRecord::of)
        .collect()
}

/// Sends SIGTERM to each process, waits up to `grace` for all to exit, then SIGKILLs the
/// rest. Returns how many were signalled.
pub fn end_processes(processes: &[ProcessRecord], grace: Duration) -> usize {
    let mut signalled = 0;
    for p in processes {
        if p.is_alive() && signal(p.pid, Signal::SIGTERM) {
            signalled += 1;
        }
    }
    let deadline = Instant::now() + grace;
    while processes.iter().any(ProcessRecord::is_alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in processes.iter().filter(|p| p.is_alive()) {
        signal(p.pid, Signal::SIGKILL);
    }
    signalled
}

fn signal(pid: u32, sig: Signal) -> bool {
    i32::try_from(pid).is_ok_and(|pid| kill(Pid::from_raw(pid), sig).is_ok())
}

/// Whether anything of `scope` is left (namespaces, `/etc/netns` folders, state).
pub fn leftovers(scope: &Scope) -> Vec<String> {
    let mut out = project_namespaces(scope);
    out.extend(
        recorded_runs()
            .into_iter()
            .filter(|r| scope.covers(r))
            .map(|r| RunDir::of(&r).path().display().to_string()),
    );
    out.extend(
        fs::read_dir(ETC_NETNS_DIR)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                n.starts_with(PROJECT_PREFIX)
                    && RunPrefix::of_namespace(n).is_some_and(|r| scope.covers(&r))
            })
            .map(|n| format!("{ETC_NETNS_DIR}/{n}")),
    );
    out
}
