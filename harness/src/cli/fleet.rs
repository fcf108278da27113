//! `wow-bench deploy`, `status`, `stop`, `collect`: nodes on SSH hosts listed in a
//! hosts file (see `harness/FLEET.md`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::fleet::{self, DeployOptions, HostReport, HostsFile, Parallel, State};

/// What every fleet command takes.
#[derive(Debug, clap::Args)]
pub(super) struct HostsArgs {
    /// The hosts file (see harness/hosts.example.toml).
    #[arg(long, value_name = "FILE")]
    hosts: PathBuf,
    /// Hosts worked on at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    parallel: usize,
    /// Further login attempts after a transient failure (refused, timed out), with
    /// exponential backoff from 0.5 s.
    #[arg(long, default_value_t = 2, value_name = "N")]
    retries: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl HostsArgs {
    fn load(&self) -> Result<(HostsFile, Parallel)> {
        let file = HostsFile::load(&self.hosts)?;
        let par = Parallel {
            concurrency: self.parallel.max(1),
            retries: self.retries,
            ..Parallel::default()
        };
        Ok((file, par))
    }

    fn print(&self, reports: &[HostReport]) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(reports)?);
        } else {
            print!("{}", fleet::table(reports));
        }
        Ok(())
    }
}

#[derive(Debug, clap::Args)]
pub(super) struct DeployArgs {
    #[command(flatten)]
    hosts: HostsArgs,
    /// The ipop-node binary to install (default: the one built beside wow-bench).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Fail unless at least N nodes end up correctly connected (default: all hosts).
    #[arg(long, value_name = "N")]
    min_up: Option<usize>,
    /// Seconds nodes may take to become correctly connected.
    #[arg(long, default_value_t = 60.0, value_name = "S")]
    wait: f64,
}

#[derive(Debug, clap::Args)]
pub(super) struct StopArgs {
    #[command(flatten)]
    hosts: HostsArgs,
    /// Seconds a node gets to leave the overlay after SIGTERM, before SIGKILL.
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    grace: f64,
}

#[derive(Debug, clap::Args)]
pub(super) struct CollectArgs {
    #[command(flatten)]
    hosts: HostsArgs,
    /// Folder for each host's status, config and logs, and summary.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn seconds(s: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("--{flag} {s}: give seconds, e.g. 60"))
}

pub(super) fn deploy(a: DeployArgs) -> Result<ExitCode> {
    let (file, parallel) = a.hosts.load()?;
    let binary = match a.binary {
        Some(b) => b,
        None => crate::nodes::node_binary()?,
    };
    let min_up = a.min_up.unwrap_or(file.hosts.len());
    if min_up > file.hosts.len() {
        bail!(
            "--min-up {min_up}: the hosts file lists only {} hosts",
            file.hosts.len()
        );
    }
    let opts = DeployOptions {
        binary,
        wait: seconds(a.wait, "wait")?,
        parallel,
    };
    let done = fleet::deploy(&file, &opts)?;
    a.hosts.print(&done.reports)?;
    let up = done.up();
    eprintln!(
        "deploy: {up} of {} nodes correctly connected in {:.1} s",
        file.hosts.len(),
        done.elapsed.as_secs_f64()
    );
    if up < min_up {
        bail!(
            "only {up} of {} nodes are up (--min-up {min_up}); see the table for why, \
             `wow-bench collect` for logs, `wow-bench stop` to clean up",
            file.hosts.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn status(a: HostsArgs) -> Result<ExitCode> {
    let (file, par) = a.load()?;
    let reports = fleet::status(&file, &par)?;
    a.print(&reports)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn stop(a: StopArgs) -> Result<ExitCode> {
    let (file, par) = a.hosts.load()?;
    let reports = fleet::stop(&file, &par, seconds(a.grace, "grace")?)?;
    a.hosts.print(&reports)?;
    let left = reports
        .iter()
        .filter(|r| !matches!(r.state, State::Stopped | State::Absent))
        .count();
    if left > 0 {
        bail!(
            "{left} host(s) could not be cleaned up (see the table); they stay in the record for the next `stop`"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn collect(a: CollectArgs) -> Result<ExitCode> {
    let (file, par) = a.hosts.load()?;
    let reports = fleet::collect(&file, &par, &a.out)?;
    a.hosts.print(&reports)?;
    eprintln!("collect: wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
