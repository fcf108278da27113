//! One subject's measurements in one round: ping RTT, TCP with one and with
//! [`STREAMS`] streams (with the daemons' CPU time during the single stream), and the
//! highest UDP rate that loses at most [`LOSS_LIMIT`] percent.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::experiment::{Hosts, Values};
use crate::subject::{Flow, Subject};
use crate::tools::iperf::{Measured, Server, Test};
use crate::tools::{cpu, ping};

/// The iperf3 port.
pub(super) const PORT: u16 = 5201;
/// Echo requests per round, [`PING_INTERVAL`] apart.
pub const PINGS: u32 = 200;
/// Between echo requests.
pub const PING_INTERVAL: Duration = Duration::from_millis(10);
/// Parallel TCP streams of the second TCP test.
pub const STREAMS: u32 = 4;
/// The UDP search's loss bound, percent.
pub const LOSS_LIMIT: f64 = 1.0;
/// UDP rates tried per round.
pub(super) const UDP_PROBES: u32 = 5;
/// How long the first echo over a fresh subject may take (handshakes, hole punching).
pub(super) const REACH_TIMEOUT: Duration = Duration::from_secs(30);

/// What one round measures of one subject, and where.
#[derive(Debug)]
pub struct Round<'a> {
    /// The testbed's hosts.
    pub hosts: &'a Hosts,
    /// The measuring end.
    pub from: &'a str,
    /// The node asked for.
    pub to: &'a str,
    /// Seconds of each TCP test.
    pub seconds: u32,
}

impl Round<'_> {
    /// Measures `subject`; the values under their bare names (`rtt_avg`, `tcp1`, …).
    /// `Err` is "no path" or a tool failure, with the reason.
    pub fn measure(&self, subject: &dyn Subject) -> Result<(Values, String), String> {
        let tcp = subject
            .target(self.from, self.to, Flow::Tcp { port: PORT })
            .map_err(|u| format!("no path: {u}"))?;
        let host = self.hosts.get(self.from).map_err(|e| e.to_string())?;
        let server_host = self.hosts.get(&tcp.node).map_err(|e| e.to_string())?;
        let address = tcp.address;
        let where_ = format!("{} → {} at {address}", self.from, tcp.node);
        if ping::first_reply(host, address, REACH_TIMEOUT)
            .map_err(|e| e.to_string())?
            .is_none()
        {
            return Err(format!(
                "no path: {where_}: no echo reply within {REACH_TIMEOUT:?} of setting up"
            ));
        }
        let mut values = Values::new();
        let report = ping::run(host, address, PINGS, PING_INTERVAL, Duration::from_secs(1))
            .map_err(|e| e.to_string())?;
        let (min, avg, p99) = rtt_stats(&report.rtts_ms)
            .ok_or_else(|| format!("{where_}: no reply to {PINGS} echo requests"))?;
        values.insert("rtt_min".into(), min);
        values.insert("rtt_avg".into(), avg);
        values.insert("rtt_p99".into(), p99);
        values.insert(
            "ping_loss".into(),
            100.0 * f64::from(PINGS - report.received.min(PINGS)) / f64::from(PINGS),
        );

        let _server = Server::start(server_host, PORT).map_err(|e| e.to_string())?;
        let daemons = subject.kind().daemons();
        let ends: BTreeSet<&str> = [self.from, tcp.node.as_str()].into();
        let cpu_now = || -> Result<f64, String> {
            let mut total = 0.0;
            for name in &ends {
                let h = self.hosts.get(name).map_err(|e| e.to_string())?;
                total += cpu::seconds(h, daemons).map_err(|e| e.to_string())?;
            }
            Ok(total)
        };
        let tcp_test = |streams| Test {
            address,
            port: PORT,
            seconds: self.seconds,
            omit: 1,
            udp_mbit: None,
            streams,
        };
        let before = (!daemons.is_empty()).then(&cpu_now).transpose()?;
        let start = Instant::now();
        let one = tcp_test(1).run(host)?;
        let elapsed = start.elapsed().as_secs_f64();
        if let Some(before) = before {
            let cores = (cpu_now()? - before) / elapsed;
            if one.mbit_per_s > 0.0 {
                values.insert("cpu_per_gbit".into(), cores / (one.mbit_per_s / 1000.0));
            }
        }
        values.insert("tcp1".into(), one.mbit_per_s);
        let four = tcp_test(STREAMS).run(host)?;
        values.insert("tcp4".into(), four.mbit_per_s);

        let udp_seconds = (self.seconds / 5).max(1);
        let mut search = Search::new(one.mbit_per_s.max(10.0));
        while let Some(rate) = search.next_rate() {
            let probe = Test {
                seconds: udp_seconds,
                omit: 0,
                udp_mbit: Some(rate),
                ..tcp_test(1)
            };
            search.record(rate, probe.run(host)?);
        }
        if let Some((rate, best)) = search.best {
            values.insert("udp".into(), best.mbit_per_s);
            values.insert("udp_offered".into(), rate);
        }
        Ok((values, where_))
    }
}

/// Min, mean and 99th percentile (nearest rank) of RTTs; `None` for none.
pub fn rtt_stats(rtts: &[f64]) -> Option<(f64, f64, f64)> {
    if rtts.is_empty() {
        return None;
    }
    let mut sorted = rtts.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((0.99 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    Some((sorted[0], mean, sorted[rank - 1]))
}

/// A short search for the highest UDP rate at most [`LOSS_LIMIT`] percent loss: double
/// while the loss is within bounds, then bisect between the best passing rate and the
/// lowest failing one, [`UDP_PROBES`] probes in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    rate: f64,
    passed: Option<f64>,
    failed: Option<f64>,
    probes: u32,
    /// The passing probe with the highest goodput, and its offered rate.
    pub best: Option<(f64, Measured)>,
}

impl Search {
    /// Starts at `first` Mbit/s.
    pub fn new(first: f64) -> Search {
        Search {
            rate: first,
            passed: None,
            failed: None,
            probes: 0,
            best: None,
        }
    }

    /// The next rate to offer (Mbit/s, one decimal), or `None` when done.
    pub fn next_rate(&self) -> Option<f64> {
        (self.probes < UDP_PROBES).then_some((self.rate * 10.0).round() / 10.0)
    }

    /// Records what offering `rate` gave.
    pub fn record(&mut self, rate: f64, measured: Measured) {
        self.probes += 1;
        let ok = measured.lost_percent.is_some_and(|l| l <= LOSS_LIMIT);
        if ok {
            if self
                .best
                .is_none_or(|(_, b)| measured.mbit_per_s > b.mbit_per_s)
            {
                self.best = Some((rate, measured));
            }
            self.passed = Some(self.passed.map_or(rate, |p| p.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
        self.rate = match (self.passed, self.failed) {
            (Some(p), Some(f)) => (p + f) / 2.0,
            (Some(p), None) => p * 2.0,
            (None, _) => rate / 4.0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(goodput: f64, loss: f64) -> Measured {
        Measured {
            mbit_per_s: goodput,
            lost_percent: Some(loss),
            retransmits: None,
        }
    }

    #[test]
    fn rtt_statistics() {
        let rtts: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(rtt_stats(&rtts), Some((1.0, 100.5, 198.0)));
        assert_eq!(rtt_stats(&[0.3]), Some((0.3, 0.3, 0.3)));
        assert_eq!(rtt_stats(&[]), None);
    }

    #[test]
    fn the_search_doubles_then_bisects_and_keeps_the_best_passing_probe() {
        let mut s = Search::new(100.0);
        let capacity = 300.0;
        while let Some(rate) = s.next_rate() {
            let loss = if rate <= capacity { 0.1 } else { 40.0 };
            s.record(rate, udp(rate.min(capacity), loss));
        }
        // 100 ok, 200 ok, 400 lost, 300 ok, 350 lost.
        assert_eq!(s.best.map(|(r, _)| r), Some(300.0));
        assert_eq!(s.next_rate(), None);
    }

    #[test]
    fn a_search_that_never_passes_has_no_result() {
        let mut s = Search::new(100.0);
        while let Some(rate) = s.next_rate() {
            s.record(rate, udp(0.0, 100.0));
        }
        assert!(s.best.is_none());
    }
}
