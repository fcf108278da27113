//! `wow-bench __emulate --spec FILE`: the link emulator process. `Testbed::up` starts
//! it inside the core namespace; it prints `ready` once its sockets are open and runs
//! until SIGTERM/SIGINT or until its namespace goes away, then logs per-link counters.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use wow_netns::emulator::{self, Spec};

/// Options of `__emulate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The spec written by the testbed.
    #[arg(long)]
    spec: PathBuf,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = Spec::load(&args.spec)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let reports = emulator::run(&spec, &stop, || {
        println!("ready");
    })?;
    let mut failed = false;
    for r in &reports {
        failed |= r.error.is_some();
        eprintln!("{}", serde_json::to_string(r)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
