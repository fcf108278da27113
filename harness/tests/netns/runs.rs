//! End to end: `wow-bench run` as a user runs it (root, namespaces), small and fast. Each
//! run builds its own testbed under the prefix `r<pid>` of its wow-bench process, so
//! these tests run in parallel with the others. They check every output file exists and
//! parses, and that the plots are real PNG and SVG. CI runs them through `./test.sh`:
//! every experiment in reduced form, failing on a failed trial or a missing file.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::WOW_BENCH;

/// A fresh result folder under the system temp dir (removed by [`Run::drop`]).
struct Run {
    out: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.out);
    }
}

fn repo(relative: &str) -> String {
    format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `wow-bench run EXPERIMENT --json --out TEMP ARGS...`, asserts it exited 0 and
/// returns the folder and the summary it printed.
fn run(experiment: &str, args: &[&str]) -> (Run, Value) {
    let out = std::env::temp_dir().join(format!(
        "wow-run-{}-{experiment}-{}",
        std::process::id(),
        args.join("-").replace(['/', '.'], "_")
    ));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(WOW_BENCH)
        .args(["run", experiment, "--json", "--out"])
        .arg(&out)
        .args(args)
        .output()
        .expect("wow-bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "wow-bench run {experiment} {args:?}: {:?}\n{stderr}",
        output.status
    );
    let summary: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("--json prints summary.json ({e}):\n{stderr}"));
    (Run { out }, summary)
}

fn json(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[12..16], b"IHDR", "{}", path.display());
    assert!(
        bytes.ends_with(&[0xae, 0x42, 0x60, 0x82]),
        "IEND: {}",
        path.display()
    );
}

fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.trim_start().starts_with("<svg"), "{}", path.display());
    assert!(text.trim_end().ends_with("</svg>"), "{}", path.display());
    assert!(text.contains("<text"), "labels: {}", path.display());
}

/// Checks every file of a finished run with `trials` trials, none failed.
fn assert_complete(dir: &Path, summary: &Value, trials: u64) {
    assert_eq!(
        &json(dir, "summary.json"),
        summary,
        "--json prints summary.json"
    );
    assert_eq!(summary["trials"], trials);
    assert_eq!(summary["failed_trials"], 0, "{summary:#}");
    let metrics = summary["metrics"].as_object().expect("metrics");
    assert!(!metrics.is_empty());
    for (name, m) in metrics {
        for key in ["unit", "p50", "p90", "p99", "mean", "min", "max"] {
            assert!(!m[key].is_null(), "{name}.{key}: {m}");
        }
        assert!(m.get("paper").is_some(), "{name} has a paper key");
    }
    let config = json(dir, "config.json");
    assert!(
        config["topology"]["text"]
            .as_str()
            .unwrap()
            .contains("[[site]]")
    );
    assert!(
        config["versions"]["iperf3"]
            .as_str()
            .unwrap()
            .contains("iperf")
    );
    assert!(
        config["versions"]["ping"]
            .as_str()
            .unwrap()
            .contains("iputils")
    );
    assert!(config["machine"]["loadavg"].is_string());
    assert!(config["machine"]["nproc"].as_u64().unwrap() >= 1);
    let lines = std::fs::read_to_string(dir.join("trials.jsonl")).unwrap();
    assert_eq!(lines.lines().count() as u64, trials);
    for line in lines.lines() {
        let t: Value = serde_json::from_str(line).unwrap();
        assert_eq!(t["ok"], true, "{t}");
        assert!(!t["values"].as_object().unwrap().is_empty(), "{t}");
    }
    let links = json(dir, "links.json");
    assert_eq!(
        links.as_array().unwrap().len(),
        summary["links"].as_array().unwrap().len()
    );
    let mut stems: Vec<String> = summary["plots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap().to_string())
        .collect();
    assert!(!stems.is_empty());
    if !summary["links"].as_array().unwrap().is_empty() {
        stems.push("wan-links".into());
    }
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("## Measured beside the paper"), "{report}");
    for stem in stems {
        assert_png(&dir.join(format!("{stem}.png")));
        assert_svg(&dir.join(format!("{stem}.svg")));
        assert!(
            report.contains(&format!("({stem}.png)")),
            "{stem} in report"
        );
    }
}

#[test]
fn netns_run_latency_physical_3_trials() {
    let (run, summary) = run("latency", &["--subject", "physical", "--trials", "3"]);
    assert_complete(&run.out, &summary, 3);
    assert_eq!(summary["topology"], "lan");
    let rtt = &summary["metrics"]["rtt"];
    assert_eq!(rtt["unit"], "ms");
    assert_eq!(rtt["paper"]["low"], 0.625);
    assert!(rtt["max"].as_f64().unwrap() < 5.0, "a veth LAN: {rtt}");
    // `plot` redraws from the files alone.
    std::fs::remove_file(run.out.join("rtt-cdf.png")).unwrap();
    let status = Command::new(WOW_BENCH)
        .arg("plot")
        .arg(&run.out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_png(&run.out.join("rtt-cdf.png"));
}

#[test]
fn netns_run_throughput_physical_2_trials() {
    let (run, summary) = run("throughput", &["--subject", "physical", "--trials", "2"]);
    assert_complete(&run.out, &summary, 2);
    for metric in ["tcp", "udp"] {
        let m = &summary["metrics"][metric];
        assert_eq!(m["unit"], "Mbit/s");
        assert!(m["min"].as_f64().unwrap() > 10.0, "{metric}: {m}");
    }
    assert!(summary["metrics"]["tcp"]["paper"].is_object());
}

/// Latency and throughput on the WAN topology over every subject, reduced: paths cross
/// the emulated links, the physical subject picks flows the firewalls allow, the overlay
/// reaches the remote site's host itself, and the links are measured alone.
#[test]
fn netns_run_latency_and_throughput_on_wan_3site_over_every_subject() {
    let topology = repo("topologies/wan-3site.toml");
    let runs: [(&str, &[&str]); 6] = [
        ("latency", &["--subject", "physical"]),
        ("latency", &["--subject", "ipop"]),
        ("latency", &["--subject", "ipop", "--edges", "tcp"]),
        (
            "latency",
            &["--subject", "ipop", "--edges", "tcp", "--insecure"],
        ),
        ("throughput", &["--subject", "physical"]),
        ("throughput", &["--subject", "ipop"]),
    ];
    for (experiment, subject) in runs {
        let mut args = vec!["--trials", "2", "--topology", &topology];
        args.extend(subject);
        let (run, summary) = self::run(experiment, &args);
        assert_complete(&run.out, &summary, 2);
        let path = &summary["paths"][0];
        assert_eq!(path["from"], "ufl-0");
        let expected = if subject[1] == "physical" {
            "lsu-gw" // the firewalls let nothing in to vims-0 or lsu-0
        } else {
            "vims-0"
        };
        assert_eq!(path["target"]["node"], expected, "{subject:?}: {path}");
        assert_eq!(path["wan"], true);
        let links = summary["links"].as_array().unwrap();
        assert_eq!(links.len(), 2, "the two sites' links: {links:?}");
        for l in links {
            let mean = l["rtt"]["mean"].as_f64().unwrap();
            let expected = l["expected_rtt_ms"].as_f64().unwrap();
            assert!(mean > expected * 0.95, "the configured delay is there: {l}");
        }
        if subject[1] == "ipop" {
            let config = json(&run.out, "config.json");
            assert_eq!(config["edges"], subject.get(3).copied().unwrap_or("udp"));
            assert_eq!(config["secure"], !subject.contains(&"--insecure"));
            assert!(
                run.out.join("logs/ufl-0.log").is_file(),
                "the nodes' logs are kept"
            );
        }
    }
}

/// `join`, reduced: a fresh node per trial routes to a peer at another site and gets a
/// direct edge to it.
#[test]
fn netns_run_join_on_wan_3site() {
    let topology = repo("topologies/wan-3site.toml");
    let (run, summary) = run("join", &["--trials", "2", "--topology", &topology]);
    assert_complete(&run.out, &summary, 2);
    assert_eq!(summary["paths"][0]["from"], "ufl-3");
    for metric in ["t_connected", "t_route", "t_direct"] {
        assert!(summary["metrics"][metric]["max"].as_f64().unwrap() < 120.0);
    }
}

/// `dhcp-join`, reduced: a 20-node bootstrap overlay; each trial a fresh node and a real
/// `dhclient` get an address and reach desktop A.
#[test]
fn netns_run_dhcp_join_on_20_nodes() {
    let topology = repo("topologies/dhcp-join-20.toml");
    let (run, summary) = run("dhcp-join", &["--trials", "3", "--topology", &topology]);
    assert_complete(&run.out, &summary, 3);
    let m = &summary["metrics"];
    assert!(m["addresses_tried"]["min"].as_f64().unwrap() >= 1.0);
    assert!(m["t1_connected"]["max"].as_f64() <= m["t2_address"]["max"].as_f64());
    for n in 1..=3 {
        assert!(run.out.join(format!("logs/desk-1-{n}.log")).is_file());
    }
}

/// `multihop`, reduced: 118 public router nodes, two NATed clients two or more overlay
/// hops apart with shortcuts off.
#[test]
fn netns_run_multihop_on_planetlab_118() {
    let (run, summary) = run("multihop", &["--trials", "5"]);
    assert_complete(&run.out, &summary, 5);
    assert!(summary["metrics"]["hops"]["min"].as_f64().unwrap() >= 2.0);
}

/// `meme-pbs`, reduced: Slurm and an NFS server on the NATed wan-3site cluster, 20 glam2
/// jobs of about a second submitted with qsub; every job's motif comes back over NFS.
#[test]
fn netns_run_meme_pbs_on_wan_3site() {
    let topology = repo("topologies/wan-3site.toml");
    let args = [
        "--topology",
        &topology,
        "--jobs",
        "20",
        "--job-seconds",
        "1",
    ];
    let (run, summary) = run("meme-pbs", &args);
    assert_complete(&run.out, &summary, 1);
    let m = &summary["metrics"];
    assert_eq!(m["run_s"]["count"], 20, "one sample per job: {m}");
    assert_eq!(m["nodes_up"]["min"], 5.0, "every compute node up: {m}");
    assert!(m["nodes_used"]["min"].as_f64().unwrap() >= 2.0, "{m}");
    assert!(m["efficiency"]["mean"].as_f64().unwrap() > 5.0, "{m}");
    let report = std::fs::read_to_string(run.out.join("report.md")).unwrap();
    assert!(
        report.contains("every job's output has a motif"),
        "{report}"
    );
    assert!(report.contains("do not answer a ping"), "{report}");
    assert!(
        !report.contains("0 of 5 compute nodes do not answer"),
        "{report}"
    );
}

/// `mpi-nfs`, reduced: 1 MB databases on the NATed wan-3site's file server, the MPI
/// analysis over SSH on four compute nodes in three domains; results match sequential.
#[test]
fn netns_run_mpi_nfs_on_wan_3site() {
    let (run, summary) = run("mpi-nfs", &["--db-mb", "1"]);
    assert_complete(&run.out, &summary, 1);
    assert_eq!(summary["topology"], "wan-3site");
    let m = &summary["metrics"];
    assert!(
        m["speedup_images2_6"]["mean"].as_f64().unwrap() > 0.0,
        "{m}"
    );
    let report = std::fs::read_to_string(run.out.join("report.md")).unwrap();
    assert!(
        report.contains("the same sequentially and in parallel"),
        "{report}"
    );
    assert!(report.contains("image 2 0.0 MB (cache warm)"), "{report}");
}

/// `fastdnaml-pvm`, reduced: PVM started over ssh across the NATed wan-3site cluster, a
/// 10-taxon tree built sequentially and with 1 and 3 workers, the same tree each time.
#[test]
fn netns_run_fastdnaml_pvm_on_wan_3site() {
    let topology = repo("topologies/wan-3site.toml");
    let args = ["--topology", &topology, "--taxa", "10", "--workers", "1,3"];
    let (run, summary) = run("fastdnaml-pvm", &args);
    assert_complete(&run.out, &summary, 1);
    let m = &summary["metrics"];
    assert!(m["speedup_w3"]["mean"].as_f64().unwrap() > 0.0, "{m}");
    let report = std::fs::read_to_string(run.out.join("report.md")).unwrap();
    assert!(
        report.contains("3 workers:") && report.contains("same tree and ln L"),
        "{report}"
    );
    assert!(
        report.contains("6 hosts in the PVM virtual machine"),
        "{report}"
    );
}

/// `migration`, reduced: two moves of the VM (into a port-restricted NAT, then into a
/// symmetric one) with ping, TCP, SSH, NFS and a batch job open; every session survives.
#[test]
fn netns_run_migration_twice() {
    let (run, summary) = run("migration", &["--trials", "2"]);
    assert_complete(&run.out, &summary, 2);
    let m = &summary["metrics"];
    for metric in [
        "ping_downtime_s",
        "tcp_downtime_s",
        "ssh_gap_s",
        "nfs_stall_s",
        "resume_s",
        "arp_update_s",
        "direct_edge_s",
    ] {
        assert_eq!(m[metric]["count"], 2, "{metric}: {m}");
    }
    assert!(m["ping_downtime_s"]["max"].as_f64().unwrap() > 0.0, "{m}");
}

/// Every experiment has a reduced run above (a new one needs its own); `peers` has its
/// own test binary (tests/netns_peers).
#[test]
fn every_experiment_has_a_reduced_run_in_ci() {
    let tested = [
        "latency",
        "throughput",
        "join",
        "dhcp-join",
        "multihop",
        "meme-pbs",
        "fastdnaml-pvm",
        "mpi-nfs",
        "migration",
        "peers",
    ];
    let all: Vec<&str> = wow_experiments::ALL.iter().map(|e| e.info().name).collect();
    assert_eq!(all, tested);
}
