//! `wow-bench topo up|down|show|exec`.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use wow_netns::cleanup::{Scope, clean};
use wow_netns::state::{RunDir, RunRecord, recorded_runs};
use wow_netns::topology::{MatrixProfile, nat_matrix};
use wow_netns::{Options, RunPrefix, Testbed, Topology};

use crate::host::Cmd;
use crate::netns_host::NetnsHost;
use crate::text_table::TextTable;

/// The run prefix `topo up` uses when none is given.
const DEFAULT_PREFIX: &str = "bench";

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Build a testbed and leave it running.
    Up {
        /// A topology file, or `nat-matrix:A,B` with A and B among none, full-cone,
        /// address-restricted, port-restricted, symmetric, firewall, udp-blocked.
        topology: String,
        /// Run prefix (namespaces are named wow-PREFIX-NODE).
        #[arg(long, default_value = DEFAULT_PREFIX)]
        prefix: String,
    },
    /// Remove a running testbed.
    Down {
        /// The run (default: the only one).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// List running testbeds, or the nodes of one.
    Show {
        /// The run (default: every run).
        #[arg(long)]
        prefix: Option<String>,
        /// Print the run record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command on a node (with its namespace, hostname and /etc/hosts).
    Exec {
        /// The run (default: the only one).
        #[arg(long)]
        prefix: Option<String>,
        /// The node.
        host: String,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    super::require_root()?;
    match command {
        Command::Up { topology, prefix } => up(&topology, &prefix),
        Command::Down { prefix } => {
            let prefix = pick_run(prefix.as_deref())?;
            let removed = clean(&Scope::Run(prefix.clone()))?;
            println!(
                "run {prefix} removed: {} process(es), {} namespace(s), {} folder(s)",
                removed.processes, removed.namespaces, removed.folders
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { prefix, json } => {
            let runs = match prefix {
                Some(p) => vec![RunPrefix::new(&p)?],
                None => recorded_runs(),
            };
            if runs.is_empty() && !json {
                println!("no testbed is running");
            }
            for run in runs {
                let record = RunDir::of(&run).load()?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&record)?);
                } else {
                    print_record(&record);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec {
            prefix,
            host,
            command,
        } => {
            let prefix = pick_run(prefix.as_deref())?;
            let record = RunDir::of(&prefix).load()?;
            let host = NetnsHost::from_record(&record, &host)?;
            let (program, args) = command.split_first().context("no command given")?;
            let status = host
                .command(&Cmd::new(program.clone()).args(args.iter().cloned()))?
                .status()
                .with_context(|| format!("running {program} on {}", host.node().name))?;
            Ok(match (status.code(), status.signal()) {
                (Some(c), _) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
                (None, Some(s)) => ExitCode::from(u8::try_from(128 + s).unwrap_or(1)),
                _ => ExitCode::FAILURE,
            })
        }
    }
}

fn up(spec: &str, prefix: &str) -> anyhow::Result<ExitCode> {
    let topology = load_topology(spec)?;
    let options = Options {
        prefix: RunPrefix::new(prefix)?,
        emulator: Some(crate::runner::emulator(true)),
    };
    let bed = Testbed::up(&topology, &options)?;
    let record = bed.persist();
    print_record(&record);
    println!(
        "\nrun a command: wow-bench topo exec --prefix {prefix} NODE -- CMD...\nremove it:     wow-bench topo down --prefix {prefix}"
    );
    Ok(ExitCode::SUCCESS)
}

/// A topology file, or `nat-matrix:A,B`.
pub(crate) fn load_topology(spec: &str) -> anyhow::Result<Topology> {
    if let Some(pair) = spec.strip_prefix("nat-matrix:") {
        let (a, b) = pair
            .split_once(',')
            .context("nat-matrix needs two profiles: nat-matrix:A,B")?;
        let profile = |name: &str| {
            MatrixProfile::from_name(name).with_context(|| {
                let all: Vec<_> = MatrixProfile::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown profile {name:?}; expected one of {}",
                    all.join(", ")
                )
            })
        };
        return Ok(nat_matrix(profile(a)?, profile(b)?));
    }
    Ok(Topology::load(Path::new(spec))?)
}

fn pick_run(prefix: Option<&str>) -> anyhow::Result<RunPrefix> {
    if let Some(p) = prefix {
        return Ok(RunPrefix::new(p)?);
    }
    match recorded_runs().as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no testbed is running"),
        many => {
            let names: Vec<_> = many.iter().map(|r| r.to_string()).collect();
            bail!(
                "several testbeds are running ({}); pick one with --prefix",
                names.join(", ")
            )
        }
    }
}

fn print_record(record: &RunRecord) {
    let emulator = match record.emulator {
        Some(p) if p.is_alive() => format!("link emulator pid {}", p.pid),
        Some(p) => format!("link emulator pid {} NOT RUNNING", p.pid),
        None => "no emulated links".into(),
    };
    println!(
        "run {} — topology {} — {emulator}",
        record.prefix, record.topology
    );
    if let Some(d) = &record.description {
        println!("  {d}");
    }
    let mut t = TextTable::new(2, 1).min_widths(&[14, 12, 26]);
    t.row(["node", "role", "namespace", "addresses"]);
    for n in &record.nodes {
        let role = serde_json::to_value(n.role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let addrs: Vec<String> = n.addresses.iter().map(|a| a.to_string()).collect();
        t.row([&n.name, &role, &n.namespace, &addrs.join(" ")]);
    }
    print!("{}", t.render());
}
