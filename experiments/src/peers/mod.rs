//! `peers`: ipop beside other VPNs and the raw underlay, all in one run on one testbed.
//!
//! Each trial is a round: every subject in turn ([`Subjects::open`], then its
//! measurements, then it is torn down) in the same order every round (A B C … A B C …),
//! so slow drifts of the machine touch every subject alike. A subject is set up and
//! torn down in every round rather than held for the whole run: the runner holds one
//! subject at a time, and a subject measured alone has the hosts' CPUs to itself (no
//! idle daemons of the others, no keepalives) and a fresh start each round.
//!
//! Per subject and round (see [`measure`]): ping RTT (min, mean, p99 of [`PINGS`]
//! requests [`PING_INTERVAL`] apart), iperf3 TCP with 1 and 4 streams, the highest UDP
//! rate that loses at most 1 %, and the subject's daemons' CPU seconds per Gbit
//! carried during the single stream (cores per Gbit/s). Values are recorded as
//! `METRIC.SUBJECT`; each round also records every subject's ratio to the physical
//! subject measured in the same round (`tcp1_ratio.wireguard-go`). A subject that
//! cannot carry the pair is noted as "no path" with the reason, not a failed trial.

mod measure;

pub use measure::{LOSS_LIMIT, PING_INTERVAL, PINGS, Round, STREAMS, Search, rtt_stats};

use wow_plots::Unit;

use crate::experiment::{
    Error, Experiment, ExperimentInfo, Extra, Hosts, Metric, PlotSpec, Setup, Subjects, TrialError,
    Trials, Values,
};
use crate::path::{self, Path};
use crate::subject::{Flow, SubjectKind};

/// Seconds of each TCP test by default.
pub const SECONDS: u32 = 10;

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct Peers;

/// What the papers say about other VPNs: nothing measured.
const PAPER: &str = "The IPOP and WOW papers measured no other VPN; the ratios to the \
    physical network measured in the same run are the comparison.\n";

/// The metrics of a subject: name, unit, description.
const METRICS: [(&str, Unit, &str); 9] = [
    ("rtt_min", Unit::Millis, "ping RTT, smallest of the round"),
    ("rtt_avg", Unit::Millis, "ping RTT, mean of the round"),
    (
        "rtt_p99",
        Unit::Millis,
        "ping RTT, 99th percentile of the round",
    ),
    ("ping_loss", Unit::Percent, "echo requests lost"),
    ("tcp1", Unit::Mbps, "iperf3 TCP goodput, 1 stream"),
    ("tcp4", Unit::Mbps, "iperf3 TCP goodput, 4 streams"),
    (
        "udp",
        Unit::Mbps,
        "iperf3 UDP goodput at the highest rate losing ≤ 1 %",
    ),
    ("udp_offered", Unit::Mbps, "that UDP rate, offered"),
    (
        "cpu_per_gbit",
        Unit::Seconds,
        "daemon CPU seconds per Gbit carried (cores per Gbit/s), 1 TCP stream, both ends",
    ),
];

/// Metrics compared with the physical subject of the same round.
const RATIOS: [&str; 4] = ["rtt_avg", "tcp1", "tcp4", "udp"];

/// What the experiment is.
const INFO: ExperimentInfo = ExperimentInfo {
    name: "peers",
    description: "ipop beside wireguard-go, tinc, nebula, n2n, openvpn and the raw underlay in one \
         run, in interleaved rounds: ping, TCP ×1/×4, UDP at ≤ 1 % loss, CPU per Gbit/s",
    default_topology: "topologies/lan.toml",
    physical_topology: None,
    default_trials: 3,
    subjects: &SubjectKind::ALL,
    workload_options: &["--subject", "--seconds"],
    paper_table: PAPER,
};

impl Experiment for Peers {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn opens_subjects(&self) -> bool {
        true
    }

    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error> {
        let opener = setup.subjects.ok_or_else(|| Error::Preflight {
            path: "peers".into(),
            reason: "the runner gave no way to open subjects".into(),
        })?;
        let mut skipped = Vec::new();
        let kinds = match &setup.workload.subjects {
            Some(list) => {
                for &kind in list {
                    opener.available(kind).map_err(|reason| Error::Preflight {
                        path: kind.to_string(),
                        reason,
                    })?;
                }
                list.clone()
            }
            None => SubjectKind::ALL
                .into_iter()
                .filter(|&kind| match opener.available(kind) {
                    Ok(()) => true,
                    Err(why) => {
                        eprintln!("peers: leaving out {kind}: {why}");
                        skipped.push(format!("{kind} left out: {why}"));
                        false
                    }
                })
                .collect(),
        };
        if kinds.is_empty() {
            return Err(Error::Preflight {
                path: "peers".into(),
                reason: "no subject to measure".into(),
            });
        }
        // The pair: the one the physical subject the runner set up carries.
        let path = path::choose(
            setup,
            Flow::Tcp {
                port: measure::PORT,
            },
        )?;
        Ok(Box::new(Run {
            opener,
            hosts: setup.hosts,
            kinds,
            from: path.from.clone(),
            to: path.to.clone(),
            seconds: setup.workload.seconds.unwrap_or(SECONDS),
            paths: vec![path],
            measured: Vec::new(),
            notes: skipped,
        }))
    }
}

struct Run<'a> {
    opener: &'a dyn Subjects,
    hosts: &'a Hosts,
    kinds: Vec<SubjectKind>,
    from: String,
    to: String,
    seconds: u32,
    paths: Vec<Path>,
    /// Subjects that measured something in some round.
    measured: Vec<SubjectKind>,
    notes: Vec<String>,
}

/// `METRIC.SUBJECT`.
fn key(metric: &str, kind: SubjectKind) -> String {
    format!("{metric}.{kind}")
}

/// Every subject's ratio to the physical subject of the same round, for [`RATIOS`].
pub fn ratios(values: &Values, kinds: &[SubjectKind]) -> Values {
    let mut out = Values::new();
    for metric in RATIOS {
        let Some(&raw) = values.get(&key(metric, SubjectKind::Physical)) else {
            continue;
        };
        for &kind in kinds.iter().filter(|&&k| k != SubjectKind::Physical) {
            if let Some(&v) = values.get(&key(metric, kind)).filter(|_| raw > 0.0) {
                out.insert(key(&format!("{metric}_ratio"), kind), v / raw);
            }
        }
    }
    out
}

impl Trials for Run<'_> {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn metrics(&self) -> Vec<Metric> {
        let mut metrics = Vec::new();
        for &kind in &self.measured {
            let vpn = !kind.daemons().is_empty();
            for (name, unit, what) in METRICS {
                if name == "cpu_per_gbit" && !vpn {
                    continue;
                }
                metrics.push(Metric {
                    name: key(name, kind),
                    description: format!("{kind}: {what}, {} → {}", self.from, self.to),
                    unit,
                    paper: None,
                });
            }
            for name in RATIOS.iter().filter(|_| kind != SubjectKind::Physical) {
                metrics.push(Metric {
                    name: key(&format!("{name}_ratio"), kind),
                    description: format!("{kind}: {name} ÷ physical's in the same round"),
                    unit: Unit::Ratio,
                    paper: None,
                });
            }
        }
        metrics
    }

    fn plots(&self) -> Vec<PlotSpec> {
        let bars = |file: &str, title: &str, metric: &str, kinds: &[SubjectKind]| PlotSpec::Bars {
            file: file.into(),
            title: format!("{title}, {} → {}", self.from, self.to),
            metrics: kinds.iter().map(|&k| key(metric, k)).collect(),
        };
        let vpns: Vec<SubjectKind> = self
            .measured
            .iter()
            .copied()
            .filter(|k| !k.daemons().is_empty())
            .collect();
        vec![
            bars(
                "peers-tcp1",
                "TCP goodput, 1 stream",
                "tcp1",
                &self.measured,
            ),
            bars(
                "peers-tcp4",
                "TCP goodput, 4 streams",
                "tcp4",
                &self.measured,
            ),
            bars(
                "peers-udp",
                "UDP goodput at ≤ 1 % loss",
                "udp",
                &self.measured,
            ),
            bars("peers-rtt", "Ping RTT (mean)", "rtt_avg", &self.measured),
            bars("peers-cpu", "Daemon CPU s per Gbit", "cpu_per_gbit", &vpns),
        ]
        .into_iter()
        // A round where no subject measured anything draws no bars.
        .filter(|p| !matches!(p, PlotSpec::Bars { metrics, .. } if metrics.is_empty()))
        .collect()
    }

    fn trial(&mut self, index: u32) -> Result<Values, TrialError> {
        let round = Round {
            hosts: self.hosts,
            from: &self.from,
            to: &self.to,
            seconds: self.seconds,
        };
        let mut values = Values::new();
        for &kind in &self.kinds {
            eprintln!("peers: round {}: {kind}", index + 1);
            let outcome = self
                .opener
                .open(kind)
                .and_then(|subject| round.measure(&*subject));
            match outcome {
                Ok((measured, path)) => {
                    self.notes.push(format!("{kind}: {path}"));
                    values.extend(measured.into_iter().map(|(m, v)| (key(&m, kind), v)));
                    if !self.measured.contains(&kind) {
                        self.measured.push(kind);
                    }
                }
                Err(why) => self.notes.push(format!("{kind}: {why}")),
            }
        }
        let ratios = ratios(&values, &self.kinds);
        values.extend(ratios);
        if values.is_empty() {
            return Err(TrialError(format!(
                "no subject measured anything: {}",
                self.notes.join("; ")
            )));
        }
        Ok(values)
    }

    fn take_extra(&mut self) -> Extra {
        Extra {
            samples: Default::default(),
            notes: std::mem::take(&mut self.notes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_to_the_physical_subject_of_the_same_round() {
        let values = Values::from([
            ("tcp1.physical".to_string(), 20_000.0),
            ("tcp1.tinc".to_string(), 500.0),
            ("rtt_avg.physical".to_string(), 0.05),
            ("rtt_avg.tinc".to_string(), 0.4),
            ("tcp4.tinc".to_string(), 700.0),
        ]);
        let r = ratios(&values, &[SubjectKind::Physical, SubjectKind::Tinc]);
        assert_eq!(r.get("tcp1_ratio.tinc"), Some(&0.025));
        assert_eq!(r.get("rtt_avg_ratio.tinc"), Some(&8.0));
        // No physical figure, no ratio; the physical subject gets none of its own.
        assert!(!r.contains_key("tcp4_ratio.tinc"));
        assert!(!r.keys().any(|k| k.ends_with(".physical")));
    }
}
