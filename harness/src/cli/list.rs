//! `wow-bench list`: one line per experiment (and the NAT matrix).

use std::process::ExitCode;

pub(crate) fn run() -> anyhow::Result<ExitCode> {
    let width = wow_experiments::ALL
        .iter()
        .map(|e| e.name().len())
        .chain([super::nat_matrix::NAME.len()])
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
    println!(
        "{:<width$}  {}",
        super::nat_matrix::NAME,
        super::nat_matrix::DESCRIPTION
    );
    Ok(ExitCode::SUCCESS)
}
