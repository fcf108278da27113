//! The `wow-bench` command line without root: listing, and refusing bad input with a
//! clear message before anything is built.

use std::process::{Command, Output};

fn wow_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wow-bench"))
        .args(args)
        .output()
        .expect("wow-bench runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn list_prints_one_line_per_experiment() {
    let o = wow_bench(&["list"]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.lines().count(), wow_experiments::ALL.len() + 1);
    for (line, e) in text.lines().zip(wow_experiments::ALL) {
        assert!(line.starts_with(e.info().name), "{line}");
        assert!(line.contains(e.info().description), "{line}");
    }
    assert!(
        text.lines().last().unwrap().starts_with("nat-matrix "),
        "{text}"
    );
}

#[test]
fn workload_flags_are_refused_where_they_do_not_apply() {
    let o = wow_bench(&["run", "latency", "--jobs", "3"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("--jobs does not apply to latency"), "{e}");
}

#[test]
fn a_physical_topology_needs_several_subjects() {
    let o = wow_bench(&["run", "meme-pbs", "--physical-topology", "x.toml"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("--physical-topology applies only with several subjects"),
        "{e}"
    );
}

#[test]
fn nat_matrix_refuses_flags_that_do_not_apply() {
    let o = wow_bench(&["run", "nat-matrix", "--trials", "3"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("--trials does not apply to nat-matrix"), "{e}");
}

#[test]
fn unknown_edges_are_refused_before_anything_is_built() {
    let o = wow_bench(&["run", "latency", "--edges", "quic", "--trials", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("unknown --edges \"quic\"; expected udp or tcp"),
        "{e}"
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let e = stderr(&wow_bench(&["run", "nope"]));
    assert!(
        e.contains("unknown experiment \"nope\"") && e.contains("latency"),
        "{e}"
    );
    let e = stderr(&wow_bench(&["run", "latency", "--subject", "zerotier"]));
    assert!(
        e.contains("unknown subject \"zerotier\"") && e.contains("physical"),
        "{e}"
    );
    let e = stderr(&wow_bench(&["run", "latency", "--subject", "tinc"]));
    assert!(
        e.contains("latency does not support the tinc subject (it supports physical, ipop)"),
        "{e}"
    );
    let o = wow_bench(&["plot", "/nonexistent/wow-results"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/wow-results/config.json"),
        "{}",
        stderr(&o)
    );
}
