//! `wow-bench run nat-matrix` as a user runs it: every pair of NAT/firewall profiles;
//! the two nodes must reach each other, on a direct edge wherever hole punching works.
//! Checks the exit status, the printed summary and `summary.json`.

use std::process::Command;

use serde_json::Value;

#[test]
fn netns_nat_matrix_connects_every_pair() {
    super::node::node_binary();
    let out = std::env::temp_dir().join(format!("wow-nat-matrix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(env!("CARGO_BIN_EXE_wow-bench"))
        .args(["run", "nat-matrix", "--json", "--out"])
        .arg(&out)
        .output()
        .expect("wow-bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    assert!(output.status.success(), "{:?}\n{stderr}", output.status);
    let printed: Value = serde_json::from_slice(&output.stdout).expect("--json prints the summary");
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json");
    let saved: Value = serde_json::from_str(&text).expect("summary.json is JSON");
    assert_eq!(printed, saved);
    assert!(out.join("config.json").is_file());
    let pairs = saved["pairs"].as_array().expect("pairs");
    assert_eq!(pairs.len(), 28, "7 profiles, every unordered pair");
    assert_eq!(saved["failed_pairs"], 0);
    for p in pairs {
        for key in ["a", "b", "connected", "edge", "seconds"] {
            assert!(p.get(key).is_some(), "{key} in {p}");
        }
        assert_eq!(p["connected"], true, "{p}");
        if p["relay_expected"] == false {
            assert_ne!(p["edge"], "relay", "hole punching works here: {p}");
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}
