//! `wow-bench list`: one line per experiment.

use std::process::ExitCode;

pub(crate) fn run() -> anyhow::Result<ExitCode> {
    let width = wow_experiments::ALL
        .iter()
        .map(|e| e.name().len())
        .max()
        .unwrap_or(0);
    for e in wow_experiments::ALL {
        let subjects: Vec<&str> = e.subjects().iter().map(|s| s.as_str()).collect();
        println!(
            "{:<width$}  {} [{} trials on {}; subjects: {}]",
            e.name(),
            e.description(),
            e.default_trials(),
            e.default_topology(),
            subjects.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
