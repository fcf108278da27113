//! `wow-bench run peers` as a user runs it (root, namespaces): a reduced run on
//! `topologies/lan.toml` with ipop (secure, and plain), two peer VPNs and the raw
//! underlay, one round of
//! short tests. The peers are wireguard-go and nebula; tinc is left out (in some runs it
//! connected no pair within 30 s; the cause is not found yet). The run builds its own testbed under the prefix `r<pid>` of its
//! wow-bench process, which removes it (and stops every daemon by PID) also when the
//! run fails; the test checks that nothing of the run is left.

#[path = "../support/root.rs"]
mod root;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use wow_harness::results::{CONFIG, RunConfig, Summary, read_json};

/// The `wow-bench` binary built with these tests.
const WOW_BENCH: &str = env!("CARGO_BIN_EXE_wow-bench");
/// The peers measured beside ipop and the underlay.
const PEERS: [&str; 2] = ["wireguard-go", "nebula"];

/// The result folder, removed when the test ends however it ends.
struct Out(PathBuf);

impl Drop for Out {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// PIDs of running processes called one of `names`.
fn daemons(names: &[&str]) -> BTreeSet<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| names.contains(&c.trim()))
        })
        .collect()
}

/// How many values of `metric` `summary` counts (none if it has no such metric).
fn count(summary: &Summary, metric: &str) -> u64 {
    summary.metrics.get(metric).map_or(0, |m| m.count)
}

#[test]
fn netns_peers_reduced_run_measures_every_subject() {
    root::require_root();
    let before = daemons(&["wireguard-go", "nebula"]);
    let out = Out(std::env::temp_dir().join(format!("wow-peers-{}", std::process::id())));
    let topology = format!("{}/../topologies/lan.toml", env!("CARGO_MANIFEST_DIR"));
    let subjects = format!("physical,ipop,ipop-plain,{}", PEERS.join(","));
    let output = Command::new(WOW_BENCH)
        .args(["run", "peers", "--json", "--topology", &topology])
        .args([
            "--subject",
            &subjects,
            "--rounds",
            "1",
            "--seconds",
            "2",
            "--out",
        ])
        .arg(&out.0)
        .output()
        .expect("wow-bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let config: Option<RunConfig> = read_json(&out.0, CONFIG).ok();
    // Nothing of the run is left, whatever it measured.
    if let Some(prefix) = config.map(|c| c.prefix).filter(|p| !p.is_empty()) {
        let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let list = String::from_utf8_lossy(&list.stdout);
        let ours = format!("wow-{prefix}-");
        assert!(!list.contains(&ours), "namespaces left behind:\n{list}");
    }
    let left: Vec<u32> = daemons(&["wireguard-go", "nebula"])
        .difference(&before)
        .copied()
        .collect();
    assert!(left.is_empty(), "peer daemons left running: {left:?}");
    assert!(output.status.success(), "{:?}\n{stderr}", output.status);

    let notes = std::fs::read_to_string(out.0.join("trials.jsonl")).unwrap_or_default();
    let stderr = format!("{stderr}\ntrials.jsonl: {notes}");
    let summary: Summary = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("--json prints summary.json ({e}):\n{stderr}"));
    for subject in ["physical", "ipop", "ipop-plain"].into_iter().chain(PEERS) {
        for metric in ["rtt_avg", "tcp1", "tcp4", "udp"] {
            let name = format!("{metric}.{subject}");
            assert_eq!(count(&summary, &name), 1, "{name} measured once:\n{stderr}");
            let value = summary.metrics[&name].mean.unwrap();
            assert!(value > 0.0, "{name} = {value}");
        }
        if subject != "physical" {
            assert_eq!(count(&summary, &format!("cpu_per_gbit.{subject}")), 1);
            let ratio = format!("tcp1_ratio.{subject}");
            let r = summary.metrics[&ratio].mean.unwrap();
            assert!(
                r > 0.0 && r < 1.0,
                "{ratio} = {r}: a VPN is slower than veth"
            );
        }
    }
    for file in [
        "trials.jsonl",
        "report.md",
        "peers-tcp1.png",
        "peers-cpu.svg",
    ] {
        assert!(out.0.join(file).is_file(), "{file} written");
    }
    let report = std::fs::read_to_string(out.0.join("report.md")).unwrap();
    assert!(
        report.contains("wireguard-go: lab-0 → lab-1 at 10.200.0.2"),
        "{report}"
    );
}
