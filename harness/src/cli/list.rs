//! `wow-bench list`: one line per experiment (and the NAT matrix).

use std::process::ExitCode;

use crate::text_table::TextTable;

pub(crate) fn run() -> anyhow::Result<ExitCode> {
    let mut t = TextTable::new(0, 2);
    for e in wow_experiments::ALL {
        let info = e.info();
        let subjects: Vec<&str> = info.subjects.iter().map(|s| s.as_str()).collect();
        t.row([
            info.name.to_owned(),
            format!(
                "{} [{} trials on {}; subjects: {}]",
                info.description,
                info.default_trials,
                info.default_topology,
                subjects.join(", ")
            ),
        ]);
    }
    t.row([super::nat_matrix::NAME, super::nat_matrix::DESCRIPTION]);
    print!("{}", t.render());
    Ok(ExitCode::SUCCESS)
}
