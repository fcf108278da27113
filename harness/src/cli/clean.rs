//! `wow-bench clean [--prefix P]`.

use std::process::ExitCode;

use wow_netns::RunPrefix;
use wow_netns::cleanup::{Scope, clean};

/// Options of `clean`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Remove only this run (default: every run of the project, all names `wow-*`).
    #[arg(long)]
    prefix: Option<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    super::require_root()?;
    let scope = match &args.prefix {
        Some(p) => Scope::Run(RunPrefix::new(p)?),
        None => Scope::All,
    };
    let removed = clean(&scope)?;
    println!(
        "removed {} run(s) {:?}: {} process(es), {} namespace(s), {} folder(s)",
        removed.runs.len(),
        removed.runs,
        removed.processes,
        removed.namespaces,
        removed.folders
    );
    Ok(ExitCode::SUCCESS)
}
