//! Result files from synthetic trials: recording, summary format, report, redraw.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::Value;
use wow_experiments::{Flow, Metric, PaperFigure, Path, PlotSpec, Stat, SubjectKind, Target};
use wow_plots::Unit;

use super::*;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wow-results-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn metrics() -> Vec<Metric> {
    vec![
        Metric {
            name: "rtt".into(),
            description: "ping RTT ufl-0 → lsu-gw".into(),
            unit: Unit::Millis,
            paper: Some(PaperFigure {
                stat: Stat::Mean,
                low: 34.492,
                high: 38.801,
                source: "IPOP paper Table I".into(),
            }),
        },
        Metric {
            name: "pings_lost".into(),
            description: "lost".into(),
            unit: Unit::Count,
            paper: None,
        },
    ]
}

fn path() -> Path {
    Path {
        from: "ufl-0".into(),
        to: "lsu-0".into(),
        flow: Flow::Icmp,
        target: Target {
            node: "lsu-gw".into(),
            address: Ipv4Addr::new(198, 18, 0, 3),
            note: Some("lsu-0 is behind a custom firewall".into()),
        },
        wan: true,
        skipped: vec!["ufl-0 → vims-0: outbound-only".into()],
    }
}

/// 100 trials of 38.0..38.99 ms, trial 7 failed.
fn trials() -> Vec<TrialRecord> {
    (0..100)
        .map(|i| TrialRecord {
            trial: i,
            ok: i != 7,
            values: if i == 7 {
                Values::new()
            } else {
                Values::from([
                    ("rtt".to_string(), 38.0 + f64::from(i) / 100.0),
                    ("pings_lost".to_string(), f64::from(u8::from(i == 3))),
                ])
            },
            samples: Samples::new(),
            notes: Vec::new(),
            error: (i == 7).then(|| "ufl-0: no reply from 198.18.0.3 to 3 echo requests".into()),
            seconds: 0.04,
        })
        .collect()
}

fn links() -> Vec<LinkResult> {
    vec![LinkResult {
        link: "site lsu".into(),
        from: "lsu-gw".into(),
        to: "public-0".into(),
        delay_ms: 17.0,
        jitter_ms: 0.5,
        loss: 0.0005,
        rate_mbit: Some(45.0),
        expected_rtt_ms: 36.0,
        sent: 4,
        received: 4,
        rtts_ms: vec![36.1, 36.3, 36.2, 36.4],
    }]
}

/// The summary of `trials` with no paths, plots or paper table.
fn bare_summary(trials: &[TrialRecord]) -> anyhow::Result<Summary> {
    Summary::new(
        Finished {
            experiment: "latency",
            subject: SubjectKind::Physical,
            topology: "lan",
            metrics: &metrics(),
            paths: &[],
            plots: &[],
            paper_table: "",
        },
        trials,
        &[],
    )
}

fn summary(trials: &[TrialRecord]) -> Summary {
    let plots = vec![
        PlotSpec::Cdf {
            file: "rtt-cdf".into(),
            title: "Ping RTT".into(),
            metrics: vec!["rtt".into()],
        },
        PlotSpec::Bars {
            file: "rtt-bars".into(),
            title: "RTT".into(),
            metrics: vec!["rtt".into()],
        },
        PlotSpec::Histogram {
            file: "lost".into(),
            title: "lost".into(),
            metric: "pings_lost".into(),
            bins: 3,
        },
    ];
    Summary::new(
        Finished {
            experiment: "latency",
            subject: SubjectKind::Physical,
            topology: "wan-3site",
            metrics: &metrics(),
            paths: &[path()],
            plots: &plots,
            paper_table: "| table |",
        },
        trials,
        &links(),
    )
    .unwrap()
}

fn config(dir: &std::path::Path) -> RunConfig {
    RunConfig {
        command: vec!["wow-bench".into(), "run".into(), "latency".into()],
        experiment: "latency".into(),
        edges: wow_experiments::Edges::Udp,
        secure: false,
        node_log: "info".into(),
        subject: SubjectKind::Physical,
        trials: 100,
        jobs: None,
        job_seconds: None,
        taxa: None,
        workers: None,
        db_mb: None,
        subjects: None,
        seconds: None,
        seed: 1,
        out: dir.display().to_string(),
        prefix: "r1".into(),
        started: "2026-01-01T00:00:00Z".into(),
        topology: TopologyFile {
            path: "topologies/wan-3site.toml".into(),
            name: "wan-3site".into(),
            text: "name = \"wan-3site\"".into(),
        },
        hosts: None,
        git: Git {
            commit: Some("0".repeat(40)),
            dirty: Some(false),
        },
        versions: Versions::collect(),
        machine: Machine::collect(),
    }
}

#[test]
fn trial_log_writes_one_line_per_trial_and_refuses_to_overwrite() {
    let dir = temp("log");
    let mut log = TrialLog::create(&dir).unwrap();
    for t in &trials()[..10] {
        log.append(t).unwrap();
    }
    let text = std::fs::read_to_string(dir.join(TRIALS)).unwrap();
    assert_eq!(text.lines().count(), 10);
    let failed: TrialRecord = serde_json::from_str(text.lines().nth(7).unwrap()).unwrap();
    assert!(!failed.ok);
    assert!(failed.error.unwrap().contains("no reply"));
    assert_eq!(read_trials(&dir).unwrap(), trials()[..10].to_vec());
    let err = TrialLog::create(&dir).unwrap_err().to_string();
    assert!(err.contains("pick a new --out"), "{err}");
    std::fs::write(dir.join(TRIALS), "{\"trial\": 0,\n").unwrap();
    let err = format!("{:#}", read_trials(&dir).unwrap_err());
    assert!(err.contains("trials.jsonl:1: bad trial"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn summary_json_has_the_documented_shape() {
    let s = summary(&trials());
    let v: Value = serde_json::to_value(&s).unwrap();
    assert_eq!(v["experiment"], "latency");
    assert_eq!(v["trials"], 100);
    assert_eq!(v["failed_trials"], 1);
    let rtt = &v["metrics"]["rtt"];
    assert_eq!(rtt["unit"], "ms");
    assert_eq!(rtt["count"], 99);
    for key in ["p50", "p90", "p99", "mean", "min", "max"] {
        assert!(rtt[key].as_f64().is_some(), "{key}: {rtt}");
    }
    assert_eq!(rtt["min"], 38.0);
    assert_eq!(rtt["max"], 38.99);
    assert_eq!(rtt["paper"]["low"], 34.492);
    assert_eq!(rtt["paper"]["stat"], "mean");
    assert_eq!(v["metrics"]["pings_lost"]["paper"], Value::Null);
    assert_eq!(v["links"][0]["rtt"]["mean"], 36.25);
    assert_eq!(v["paths"][0]["target"]["node"], "lsu-gw");
    let back: Summary = serde_json::from_value(v).unwrap();
    assert_eq!(back, s);
}

#[test]
fn metrics_with_no_values_are_null_and_unknown_metrics_are_refused() {
    let all_failed: Vec<TrialRecord> = trials()
        .into_iter()
        .map(|t| TrialRecord {
            ok: false,
            values: Values::new(),
            error: Some("down".into()),
            ..t
        })
        .collect();
    let s = summary(&all_failed);
    assert_eq!(s.failed_trials, 100);
    assert_eq!(s.metrics["rtt"].count, 0);
    assert_eq!(s.metrics["rtt"].p50, None);
    let mut odd = trials();
    odd[5].values.insert("jitter".into(), 1.0);
    let err = bare_summary(&odd).unwrap_err().to_string();
    assert!(err.contains("trial 5 reports \"jitter\""), "{err}");
}

#[test]
fn report_puts_the_measured_figures_beside_the_paper() {
    let dir = temp("report");
    let saved = Saved {
        config: config(&dir),
        summary: summary(&trials()),
        trials: trials(),
    };
    let skipped = BTreeMap::from([("lost".to_string(), "no values of pings_lost".to_string())]);
    let r = report::render(&saved, &skipped);
    // Mean 38.495 ms against the paper's 34.492–38.801 ms.
    assert!(
        r.contains("| rtt | ms | 99 |") && r.contains("| 34.492–38.801 (mean) | 0.99–1.12× |"),
        "{r}"
    );
    assert!(r.contains("Not lsu-0 itself: lsu-0 is behind a custom firewall"));
    assert!(r.contains("Not taken: ufl-0 → vims-0: outbound-only"));
    assert!(
        r.contains("| site lsu | lsu-gw → public-0 | 36.000 |"),
        "{r}"
    );
    assert!(r.contains("![Ping RTT](rtt-cdf.png)"));
    assert!(r.contains("- lost: not drawn (no values of pings_lost)."));
    assert!(r.contains("- trial 7: ufl-0: no reply"));
    assert!(r.contains("Paper: IPOP paper Table I."));
    assert!(r.trim_end().ends_with("| table |"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ratios_to_single_figures_and_ranges() {
    assert_eq!(report::ratio(Some(50.0), 25.0, 25.0), "2.00×");
    assert_eq!(report::ratio(Some(40.0), 20.0, 40.0), "1.00–2.00×");
    assert_eq!(report::ratio(None, 20.0, 40.0), "–");
    assert_eq!(report::ratio(Some(1.0), 0.0, 0.0), "–");
}

#[test]
fn plots_and_report_redraw_from_the_saved_files_alone() {
    let dir = temp("redraw");
    write_json(&dir, CONFIG, &config(&dir)).unwrap();
    write_json(&dir, SUMMARY, &summary(&trials())).unwrap();
    let mut log = TrialLog::create(&dir).unwrap();
    for t in &trials() {
        log.append(t).unwrap();
    }
    let saved = Saved::load(&dir).unwrap();
    crate::runner::finish(&dir, &saved).unwrap();
    for file in [
        "rtt-cdf.png",
        "rtt-cdf.svg",
        "rtt-bars.png",
        "rtt-bars.svg",
        "lost.png",
        "wan-links.png",
        "wan-links.svg",
        REPORT,
    ] {
        let meta = std::fs::metadata(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(meta.len() > 100, "{file}");
    }
    let png = std::fs::read(dir.join("rtt-cdf.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::remove_file(dir.join(SUMMARY)).unwrap();
    let err = format!("{:#}", Saved::load(&dir).unwrap_err());
    assert!(err.contains("summary.json"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn samples_count_as_values_and_notes_round_trip() {
    let mut batch = trials();
    batch.truncate(2);
    batch[0].values.clear();
    batch[0]
        .samples
        .insert("rtt".into(), vec![10.0, 20.0, 30.0]);
    batch[0].notes.push("jobs per node: a 2, b 1".into());
    let s = summary(&batch);
    assert_eq!(s.metrics["rtt"].count, 4, "three samples and one value");
    assert_eq!(s.metrics["rtt"].min, Some(10.0));
    let line = serde_json::to_string(&batch[0]).unwrap();
    let back: TrialRecord = serde_json::from_str(&line).unwrap();
    assert_eq!(back, batch[0]);
    let plain = serde_json::to_string(&batch[1]).unwrap();
    assert!(
        !plain.contains("samples") && !plain.contains("notes"),
        "{plain}"
    );
    let mut odd = batch.clone();
    odd[1].samples.insert("jitter".into(), vec![1.0]);
    assert!(
        bare_summary(&odd).is_err(),
        "samples of an unknown metric are refused"
    );
}
