//! The `wow-bench` command line. Each subcommand is a module with its own clap `Args`
//! and a `run` function (the fleet commands `deploy`, `status`, `stop` and `collect` share
//! one module).

mod clean;
mod compare;
mod emulate;
mod fleet;
mod list;
mod nat_matrix;
mod plot;
mod probe;
pub mod run;
mod topo;

use clap::{Parser, Subcommand};
use nix::unistd::Uid;

/// Testbed and benchmark harness for the IPOP/WOW re-implementation.
#[derive(Debug, Parser)]
#[command(name = "wow-bench", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an experiment and write results/EXPERIMENT/TIMESTAMP (exit 3 if a trial failed).
    Run(Box<run::Args>),
    /// List the experiments, one line each.
    List,
    /// Redraw the plots and report.md of a result folder from its saved files.
    Plot(plot::Args),
    /// Build, inspect, use and remove namespace testbeds from topology files.
    #[command(subcommand)]
    Topo(topo::Command),
    /// Remove leftovers of crashed runs (namespaces, processes, /etc/netns folders).
    Clean(clean::Args),
    /// Classify a NAT with a STUN-like probe (server on a public host, client behind).
    #[command(subcommand)]
    Probe(probe::Command),
    /// Install and start ipop-node on the SSH hosts of a hosts file, bootstrap hosts first.
    Deploy(fleet::DeployArgs),
    /// Show what the nodes of a hosts file are doing.
    Status(fleet::HostsArgs),
    /// Stop the deployed nodes (graceful leave) and remove what deploy placed.
    Stop(fleet::StopArgs),
    /// Copy each host's node status, config and logs into a folder.
    Collect(fleet::CollectArgs),
    /// The link emulator process that `topo up` starts (not for direct use).
    #[command(name = "__emulate", hide = true)]
    Emulate(emulate::Args),
}

/// Runs the command line; the binary's `main` calls this.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::run(*a),
        Command::List => list::run(),
        Command::Plot(a) => plot::run(a),
        Command::Topo(c) => topo::run(c),
        Command::Clean(a) => clean::run(a),
        Command::Probe(c) => probe::run(c),
        Command::Emulate(a) => emulate::run(a),
        Command::Deploy(a) => fleet::deploy(a),
        Command::Status(a) => fleet::status(a),
        Command::Stop(a) => fleet::stop(a),
        Command::Collect(a) => fleet::collect(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wow-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Refuses early, with advice, when not root.
fn require_root() -> anyhow::Result<()> {
    if !Uid::effective().is_root() {
        anyhow::bail!("this needs root (network namespaces, iptables): run it with sudo");
    }
    Ok(())
}
