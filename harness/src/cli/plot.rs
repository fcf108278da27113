//! `wow-bench plot DIR`: redraws the plots and rewrites `report.md` of a result folder
//! from its saved files, without rerunning anything.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::results::Saved;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A result folder (holding config.json, summary.json and trials.jsonl).
    dir: PathBuf,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let saved = Saved::load(&args.dir)?;
    crate::runner::finish(&args.dir, &saved)?;
    println!("redrew the plots and report.md in {}", args.dir.display());
    Ok(ExitCode::SUCCESS)
}
