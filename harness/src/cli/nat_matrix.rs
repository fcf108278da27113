//! `wow-bench run nat-matrix`: every pair of site profiles (the NAT types, a stateful
//! firewall, blocked UDP), each pair on its own two-site testbed with a public bootstrap
//! node ([`crate::natmatrix`]). Prints a table, writes `summary.json` (an array `pairs` of
//! `{a, b, connected, edge, seconds, ...}`) and `config.json`, and exits
//! [`FAILED_TRIALS`](super::run::FAILED_TRIALS) when a pair did not connect, or ended on
//! a relay where hole punching works.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::natmatrix::{self, PairOutcome, acceptable};
use crate::results::{self, Git, Machine, Versions};

/// The name `wow-bench run` knows it by.
pub(crate) const NAME: &str = "nat-matrix";
/// One line for `wow-bench list`.
pub(crate) const DESCRIPTION: &str = "every pair of NAT/firewall profiles: do two nodes \
    connect, on which edge (udp, tcp, relay), how fast [28 pairs, one testbed each; \
    subject: ipop]";
/// How long a pair may take to connect.
const TIMEOUT: Duration = Duration::from_secs(40);

/// `summary.json`.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    experiment: &'static str,
    pairs: &'a [PairOutcome],
    failed_pairs: usize,
    timeout_s: u64,
    upgrade_wait_s: u64,
}

/// `config.json`.
#[derive(Debug, Serialize)]
struct Config {
    command: Vec<String>,
    experiment: &'static str,
    /// Whether the nodes' edges were secure (not `--insecure`).
    secure: bool,
    started: String,
    binary: String,
    git: Git,
    versions: Versions,
    machine: Machine,
}

pub(crate) fn run(json: bool, out: Option<PathBuf>, secure: bool) -> anyhow::Result<ExitCode> {
    super::require_root()?;
    let binary = crate::nodes::node_binary()?;
    anyhow::ensure!(
        binary.is_file(),
        "nat-matrix needs the ipop-node binary: build it with `cargo build --release` \
         (looked for {}; set IPOP_NODE to use another)",
        binary.display()
    );
    let dir = out.unwrap_or_else(|| crate::runner::default_out(NAME));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let config = Config {
        command: std::env::args().collect(),
        experiment: NAME,
        secure,
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        binary: binary.display().to_string(),
        git: Git::collect(),
        versions: Versions::collect(),
        machine: Machine::collect(),
    };
    results::write_json(&dir, results::CONFIG, &config)?;
    let total = natmatrix::pairs().len();
    let mut done = 0;
    let outcomes = natmatrix::run_matrix(&binary, TIMEOUT, secure, |o| {
        done += 1;
        let verdict = if acceptable(o) { "ok" } else { "FAIL" };
        eprintln!(
            "[{done}/{total}] {} / {}: {verdict} ({})",
            o.a,
            o.b,
            o.edge.as_deref().unwrap_or("not connected")
        );
    });
    let failed = outcomes.iter().filter(|o| !acceptable(o)).count();
    let summary = Summary {
        experiment: NAME,
        pairs: &outcomes,
        failed_pairs: failed,
        timeout_s: TIMEOUT.as_secs(),
        upgrade_wait_s: natmatrix::UPGRADE_WAIT.as_secs(),
    };
    results::write_json(&dir, results::SUMMARY, &summary)?;
    let table = natmatrix::table(&outcomes);
    if json {
        eprint!("{table}");
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{table}");
        println!("results in {}", dir.display());
    }
    Ok(if failed > 0 {
        ExitCode::from(super::run::FAILED_TRIALS)
    } else {
        ExitCode::SUCCESS
    })
}
