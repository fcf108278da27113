//! `throughput`: iperf3 between two hosts, each trial a TCP test and then a UDP test at
//! a set rate (the IPOP paper's ttcp runs, Tables II and III).
//!
//! TCP runs [`TCP_SECONDS`] after [`TCP_OMIT`] seconds of slow start that are not
//! counted. UDP is offered at 90 % of the smallest configured rate of the WAN links the
//! path crosses, or at [`LAN_UDP_MBIT`] on a path without any, for [`UDP_SECONDS`].
//! The paper's figure goes beside TCP only: its "IPOP-UDP" rows are TCP transfers over
//! UDP overlay edges.

use wow_host::Host;
use wow_plots::Unit;

use crate::experiment::{
    Error, Experiment, ExperimentInfo, Metric, PlotSpec, Setup, TrialError, Trials, Values,
};
use crate::paper;
use crate::path::{self, Path};
use crate::subject::{Flow, SubjectKind};
use crate::tools::iperf::{Server, Test};

/// The iperf3 port.
pub const PORT: u16 = 5201;
/// Measured seconds of each TCP test.
pub const TCP_SECONDS: u32 = 4;
/// Seconds of slow start not counted.
pub const TCP_OMIT: u32 = 1;
/// Seconds of each UDP test.
pub const UDP_SECONDS: u32 = 3;
/// The UDP rate on a path with no rate-limited link.
pub const LAN_UDP_MBIT: f64 = 500.0;

/// The experiment.
#[derive(Debug, Clone, Copy)]
pub struct Throughput;

/// What the experiment is.
const INFO: ExperimentInfo = ExperimentInfo {
    name: "throughput",
    description: "iperf3 TCP and UDP (at a set rate) between two hosts, LAN or WAN path (IPOP Tables II-III)",
    default_topology: "topologies/lan.toml",
    physical_topology: None,
    default_trials: 10,
    subjects: &[SubjectKind::Physical, SubjectKind::Ipop],
    workload_options: &[],
    paper_table: paper::TABLES_II_III,
};

impl Experiment for Throughput {
    fn info(&self) -> &'static ExperimentInfo {
        &INFO
    }

    fn prepare<'a>(&self, setup: &Setup<'a>) -> Result<Box<dyn Trials + 'a>, Error> {
        let tcp = path::choose(setup, Flow::Tcp { port: PORT })?;
        let udp = path::choose(setup, Flow::Udp { port: PORT })?;
        let udp_mbit = udp
            .links(setup.topology)
            .iter()
            .filter_map(|w| w.link.rate_mbit)
            .min_by(f64::total_cmp)
            .map_or(LAN_UDP_MBIT, |rate| (rate * 0.9 * 10.0).round() / 10.0);
        let mut servers = vec![Server::start(setup.hosts.get(&tcp.target.node)?, PORT)?];
        if udp.target.node != tcp.target.node {
            servers.push(Server::start(setup.hosts.get(&udp.target.node)?, PORT)?);
        }
        let run = Run {
            tcp_host: setup.hosts.get(&tcp.from)?,
            udp_host: setup.hosts.get(&udp.from)?,
            tcp_test: Test {
                address: tcp.target.address,
                port: PORT,
                seconds: TCP_SECONDS,
                omit: TCP_OMIT,
                udp_mbit: None,
                streams: 1,
            },
            udp_test: Test {
                address: udp.target.address,
                port: PORT,
                seconds: UDP_SECONDS,
                omit: 0,
                udp_mbit: Some(udp_mbit),
                streams: 1,
            },
            subject: setup.subject.kind(),
            paths: vec![tcp, udp],
            _servers: servers,
        };
        let check = Test {
            seconds: 1,
            omit: 0,
            ..run.tcp_test
        };
        check.run(run.tcp_host).map_err(|reason| Error::Preflight {
            path: run.paths[0].to_string(),
            reason: format!("a 1 s TCP test before the first trial failed: {reason}"),
        })?;
        Ok(Box::new(run))
    }
}

struct Run<'a> {
    tcp_host: &'a dyn Host,
    udp_host: &'a dyn Host,
    tcp_test: Test,
    udp_test: Test,
    subject: SubjectKind,
    paths: Vec<Path>,
    _servers: Vec<Server>,
}

impl Trials for Run<'_> {
    fn paths(&self) -> &[Path] {
        &self.paths
    }

    fn metrics(&self) -> Vec<Metric> {
        let (tcp, udp) = (&self.paths[0], &self.paths[1]);
        let rate = self.udp_test.udp_mbit.unwrap_or(LAN_UDP_MBIT);
        vec![
            Metric {
                name: "tcp".into(),
                description: format!("iperf3 TCP goodput {}, {TCP_SECONDS} s", tcp.label()),
                unit: Unit::Mbps,
                paper: paper::tcp_throughput(self.subject, tcp.wan),
            },
            Metric {
                name: "tcp_retransmits".into(),
                description: "TCP segments retransmitted per test".into(),
                unit: Unit::Count,
                paper: None,
            },
            Metric {
                name: "udp".into(),
                description: format!(
                    "iperf3 UDP goodput {} at {rate} Mbit/s offered, {UDP_SECONDS} s",
                    udp.label()
                ),
                unit: Unit::Mbps,
                paper: None,
            },
            Metric {
                name: "udp_loss".into(),
                description: format!("UDP datagrams lost at {rate} Mbit/s offered"),
                unit: Unit::Percent,
                paper: None,
            },
        ]
    }

    fn plots(&self) -> Vec<PlotSpec> {
        vec![PlotSpec::Bars {
            file: "throughput-bars".into(),
            title: format!("Throughput {} ({})", self.paths[0].label(), self.subject),
            metrics: vec!["tcp".into(), "udp".into()],
        }]
    }

    fn trial(&mut self, _index: u32) -> Result<Values, TrialError> {
        let tcp = self.tcp_test.run(self.tcp_host).map_err(TrialError)?;
        let udp = self.udp_test.run(self.udp_host).map_err(TrialError)?;
        let mut values = Values::from([
            ("tcp".to_string(), tcp.mbit_per_s),
            ("udp".to_string(), udp.mbit_per_s),
        ]);
        if let Some(r) = tcp.retransmits {
            values.insert("tcp_retransmits".into(), r as f64);
        }
        if let Some(l) = udp.lost_percent {
            values.insert("udp_loss".into(), l);
        }
        Ok(values)
    }
}
