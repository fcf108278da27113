//! `status`, `stop` and `collect` on the hosts of a deployment.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::parallel::Parallel;
use super::record::Record;
use super::report::{HostReport, Layout, State, observe};
use super::{HostSpec, HostsFile};
use crate::host::Host;
use crate::ssh::{JobState, SshHost};

/// The hosts of `file`, with the work dirs the record knows (they win over the file's,
/// which may have changed since the deploy), plus reports for recorded hosts that are no
/// longer in the file. With `recorded_only`, only recorded hosts (if any are).
fn hosts(
    file: &HostsFile,
    record: &Record,
    recorded_only: bool,
) -> (Vec<HostSpec>, Vec<HostReport>) {
    let only = recorded_only && !record.hosts.is_empty();
    let specs = file
        .hosts
        .iter()
        .filter(|s| !only || record.get(&s.name).is_some())
        .map(|s| {
            let mut spec = s.clone();
            if let Some(placed) = record.get(&s.name) {
                spec.work_dir.clone_from(&placed.work_dir);
            }
            spec
        })
        .collect();
    let orphans = record
        .hosts
        .iter()
        .filter(|p| !file.hosts.iter().any(|s| s.name == p.name))
        .map(|p| HostReport {
            name: p.name.clone(),
            target: p.target.clone(),
            roles: Vec::new(),
            state: State::Failed,
            detail: format!(
                "deployed (work dir {}) but no longer in {}: add it back to reach it",
                p.work_dir,
                file.path.display()
            ),
            status: None,
        })
        .collect();
    (specs, orphans)
}

/// Logs into `spec`'s host and runs `f`, or reports why it could not log in.
fn on_host(par: &Parallel, spec: &HostSpec, f: impl FnOnce(&SshHost) -> HostReport) -> HostReport {
    match par.connect(spec) {
        Ok(host) => f(&host),
        Err(e) => HostReport::new(spec, State::of_login(&e), e.to_string()),
    }
}

fn observed(spec: &HostSpec, host: &SshHost) -> HostReport {
    let (state, detail, status) = observe(host, &Layout::of(host));
    let mut report = HostReport::new(spec, state, detail);
    report.status = status;
    report
}

/// What every host's node is doing.
pub fn status(file: &HostsFile, par: &Parallel) -> Result<Vec<HostReport>> {
    let record = Record::load(&Record::path_for(&file.path))?;
    let (specs, orphans) = hosts(file, &record, false);
    let mut reports = par.map(
        "status",
        &specs,
        |s| s.name.clone(),
        |spec| on_host(par, spec, |host| observed(spec, host)),
    );
    reports.extend(orphans);
    Ok(reports)
}

/// Stops every deployed node by its PID (SIGTERM: it leaves the overlay; SIGKILL after
/// `grace`), then removes what deploy placed. Hosts done are dropped from the record.
pub fn stop(file: &HostsFile, par: &Parallel, grace: Duration) -> Result<Vec<HostReport>> {
    let record_path = Record::path_for(&file.path);
    let mut record = Record::load(&record_path)?;
    let (specs, orphans) = hosts(file, &record, true);
    let mut reports = par.map(
        "stop",
        &specs,
        |s| s.name.clone(),
        |spec| on_host(par, spec, |host| stop_one(spec, host, grace)),
    );
    for r in &reports {
        if matches!(r.state, State::Stopped | State::Absent) {
            record.forget(&r.name);
        }
    }
    record.save(&record_path)?;
    reports.extend(orphans);
    Ok(reports)
}

fn stop_one(spec: &HostSpec, host: &SshHost, grace: Duration) -> HostReport {
    let layout = Layout::of(host);
    let fail = |detail: String| HostReport::new(spec, State::Failed, detail);
    if let Err(e) = host.stop_job(&layout.job(), grace) {
        return fail(format!("cannot stop the node: {e}"));
    }
    let ended = match host.job_state(&layout.job()) {
        Ok(JobState::Running(pid)) => {
            return fail(format!("the node (pid {pid}) still runs after SIGKILL"));
        }
        Ok(JobState::Exited(0)) => "the node left the overlay".to_string(),
        Ok(JobState::Exited(s)) if s > 128 => format!("the node was ended by signal {}", s - 128),
        Ok(JobState::Exited(s)) => format!("the node exited with status {s}"),
        Ok(JobState::Gone) => "the node was gone already".into(),
        Ok(JobState::Absent) => "no node ran".into(),
        Err(e) => return fail(e.to_string()),
    };
    match host.remove_work_dir(&Layout::ENTRIES) {
        Ok(true) => HostReport::new(
            spec,
            State::Stopped,
            format!("{ended}; {} removed", host.work_dir()),
        ),
        Ok(false) => HostReport::new(
            spec,
            State::Absent,
            format!("nothing of ours in {}", host.work_dir()),
        ),
        Err(e) => fail(format!("{ended}, but cleanup failed: {e}")),
    }
}

/// Copies each host's node status, configuration and logs into `out/<host>/`, and every
/// report into `out/summary.json`.
pub fn collect(file: &HostsFile, par: &Parallel, out: &Path) -> Result<Vec<HostReport>> {
    let record = Record::load(&Record::path_for(&file.path))?;
    let (specs, orphans) = hosts(file, &record, false);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut reports = par.map(
        "collect",
        &specs,
        |s| s.name.clone(),
        |spec| {
            on_host(par, spec, |host| {
                let mut report = observed(spec, host);
                if let Err(e) = collect_one(host, &report, &out.join(&spec.name)) {
                    report.detail = format!("{}; collecting failed: {e:#}", report.detail);
                }
                report
            })
        },
    );
    reports.extend(orphans);
    let summary = out.join("summary.json");
    std::fs::write(&summary, serde_json::to_string_pretty(&reports)? + "\n")
        .with_context(|| format!("cannot write {}", summary.display()))?;
    Ok(reports)
}

fn collect_one(host: &SshHost, report: &HostReport, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))
    };
    if let Some(status) = &report.status {
        write(
            "status.json",
            (serde_json::to_string_pretty(status)? + "\n").as_bytes(),
        )?;
    }
    let layout = Layout::of(host);
    let files = [
        (layout.config(), "node.toml"),
        (format!("{}/stdout", layout.job()), "node.stdout.log"),
        (format!("{}/stderr", layout.job()), "node.stderr.log"),
    ];
    for (remote, local) in files {
        // Absent files (a host never deployed to) are simply not collected.
        if let Ok(bytes) = host.read_file(&remote) {
            write(local, &bytes)?;
        }
    }
    Ok(())
}
