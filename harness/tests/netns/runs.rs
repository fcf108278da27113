//! End to end: `wow-bench run` as a user runs it (root, namespaces), small and fast. Each
//! run builds its own testbed under the prefix `r<pid>` of its wow-bench process, so
//! these tests run in parallel with the others. They check every output file exists and
//! parses, and that the plots are real PNG and SVG. CI runs them through `./test.sh`:
//! every experiment in reduced form, failing on a failed trial or a missing file.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wow_experiments::PlotSpec;
use wow_harness::results::{
    CONFIG, LINKS, LinkResult, MetricSummary, RunConfig, SUMMARY, Saved, Summary, read_json,
};
use wow_plots::Unit;

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
fn run(experiment: &str, args: &[&str]) -> (Run, Summary) {
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
    let summary: Summary = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("--json prints summary.json ({e}):\n{stderr}"));
    (Run { out }, summary)
}

/// Reads `<dir>/<name>` as a result file of type `T`.
fn read<T: for<'de> serde::Deserialize<'de>>(dir: &Path, name: &str) -> T {
    read_json(dir, name).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The figures of metric `name` in `summary`.
fn metric<'a>(summary: &'a Summary, name: &str) -> &'a MetricSummary {
    summary.metrics.get(name).unwrap_or_else(|| {
        let names: Vec<&String> = summary.metrics.keys().collect();
        panic!("no metric {name} in summary.json, only {names:?}")
    })
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
fn assert_complete(dir: &Path, summary: &Summary, trials: u32) {
    let saved = Saved::load(dir).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(&saved.summary, summary, "--json prints summary.json");
    assert_eq!(summary.trials, trials);
    assert_eq!(summary.failed_trials, 0, "{summary:#?}");
    assert!(!summary.metrics.is_empty());
    for (name, m) in &summary.metrics {
        let figures = [m.p50, m.p90, m.p99, m.mean, m.min, m.max];
        assert!(figures.iter().all(Option::is_some), "{name}: {m:?}");
    }
    // The file's shape: a missing `paper` would read as none, so look at the JSON itself.
    let raw: Value = read(dir, SUMMARY);
    for (name, m) in raw["metrics"].as_object().expect("metrics") {
        assert!(m.get("paper").is_some(), "{name} has a paper key");
    }
    let config = &saved.config;
    assert!(config.topology.text.contains("[[site]]"));
    let iperf3 = config.versions.iperf3.as_deref().unwrap();
    assert!(iperf3.contains("iperf"), "{iperf3}");
    let ping = config.versions.ping.as_deref().unwrap();
    assert!(ping.contains("iputils"), "{ping}");
    assert!(config.machine.loadavg.is_some());
    assert!(config.machine.nproc.unwrap() >= 1);
    let lines = std::fs::read_to_string(dir.join("trials.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), trials as usize);
    assert_eq!(saved.trials.len(), trials as usize);
    for t in &saved.trials {
        assert!(t.ok, "{t:?}");
        assert!(!t.values.is_empty(), "{t:?}");
    }
    let links: Vec<LinkResult> = read(dir, LINKS);
    assert_eq!(links.len(), summary.links.len());
    let mut stems: Vec<String> = summary
        .plots
        .iter()
        .map(|p| match p {
            PlotSpec::Cdf { file, .. }
            | PlotSpec::Histogram { file, .. }
            | PlotSpec::Bars { file, .. } => file.clone(),
        })
        .collect();
    assert!(!stems.is_empty());
    if !summary.links.is_empty() {
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
    assert_eq!(summary.topology, "lan");
    let rtt = metric(&summary, "rtt");
    assert_eq!(rtt.unit, Unit::Millis);
    assert_eq!(rtt.paper.as_ref().map(|p| p.low), Some(0.625), "{rtt:?}");
    assert!(rtt.max.unwrap() < 5.0, "a veth LAN: {rtt:?}");
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
    for name in ["tcp", "udp"] {
        let m = metric(&summary, name);
        assert_eq!(m.unit, Unit::Mbps);
        assert!(m.min.unwrap() > 10.0, "{name}: {m:?}");
    }
    assert!(metric(&summary, "tcp").paper.is_some());
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
        let path = &summary.paths[0];
        assert_eq!(path.from, "ufl-0");
        let expected = if subject[1] == "physical" {
            "lsu-gw" // the firewalls let nothing in to vims-0 or lsu-0
        } else {
            "vims-0"
        };
        assert_eq!(path.target.node, expected, "{subject:?}: {path:?}");
        assert!(path.wan, "{path:?}");
        let links = &summary.links;
        assert_eq!(links.len(), 2, "the two sites' links: {links:?}");
        for l in links {
            let mean = l.rtt.mean.unwrap();
            assert!(
                mean > l.expected_rtt_ms * 0.95,
                "the configured delay is there: {l:?}"
            );
        }
        if subject[1] == "ipop" {
            let config: RunConfig = read(&run.out, CONFIG);
            let edges = subject.get(3).copied().unwrap_or("udp");
            assert_eq!(config.edges.as_str(), edges);
            assert_eq!(config.secure, !subject.contains(&"--insecure"));
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
    assert_eq!(summary.paths[0].from, "ufl-3");
    for name in ["t_connected", "t_route", "t_direct"] {
        assert!(metric(&summary, name).max.unwrap() < 120.0);
    }
}

/// `dhcp-join`, reduced: a 20-node bootstrap overlay; each trial a fresh node and a real
/// `dhclient` get an address and reach desktop A.
#[test]
fn netns_run_dhcp_join_on_20_nodes() {
    let topology = repo("topologies/dhcp-join-20.toml");
    let (run, summary) = run("dhcp-join", &["--trials", "3", "--topology", &topology]);
    assert_complete(&run.out, &summary, 3);
    let m = |name| metric(&summary, name);
    assert!(m("addresses_tried").min.unwrap() >= 1.0);
    assert!(m("t1_connected").max <= m("t2_address").max);
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
    assert!(metric(&summary, "hops").min.unwrap() >= 2.0);
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
    let m = &summary.metrics;
    let run_s = metric(&summary, "run_s");
    assert_eq!(run_s.count, 20, "one sample per job: {m:?}");
    let nodes_up = metric(&summary, "nodes_up");
    assert_eq!(nodes_up.min, Some(5.0), "every compute node up: {m:?}");
    assert!(metric(&summary, "nodes_used").min.unwrap() >= 2.0, "{m:?}");
    assert!(metric(&summary, "efficiency").mean.unwrap() > 5.0, "{m:?}");
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
    assert_eq!(summary.topology, "wan-3site");
    let speedup = metric(&summary, "speedup_images2_6");
    assert!(speedup.mean.unwrap() > 0.0, "{speedup:?}");
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
    let speedup = metric(&summary, "speedup_w3");
    assert!(speedup.mean.unwrap() > 0.0, "{speedup:?}");
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
    let m = &summary.metrics;
    for name in [
        "ping_downtime_s",
        "tcp_downtime_s",
        "ssh_gap_s",
        "nfs_stall_s",
        "resume_s",
        "arp_update_s",
        "direct_edge_s",
    ] {
        assert_eq!(metric(&summary, name).count, 2, "{name}: {m:?}");
    }
    let downtime = metric(&summary, "ping_downtime_s");
    assert!(downtime.max.unwrap() > 0.0, "{m:?}");
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
