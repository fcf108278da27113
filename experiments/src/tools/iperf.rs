//! `iperf3`: a server on one host, a client on another, and the goodput the client's
//! JSON report (`-J`) gives.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::Value;
use wow_host::{Cmd, Host, HostError, Process};

/// A running `iperf3 -s`; dropping it stops it (by PID).
#[derive(Debug)]
pub struct Server {
    _process: Box<dyn Process>,
}

/// How long a server may take to listen.
const LISTEN: Duration = Duration::from_secs(5);

impl Server {
    /// Starts `iperf3 -s -p port` on `host` and waits until it listens (seen with `ss`).
    pub fn start(host: &dyn Host, port: u16) -> Result<Server, HostError> {
        let mut process = host.spawn(&Cmd::new("iperf3").args([
            "-s".to_string(),
            "-p".into(),
            port.to_string(),
        ]))?;
        let listening = Cmd::new("ss").args([
            "-Hltn".to_string(),
            "sport".into(),
            "=".into(),
            format!(":{port}"),
        ]);
        let deadline = Instant::now() + LISTEN;
        loop {
            if let Some(output) = process.try_wait()? {
                return Err(HostError::Failed {
                    host: host.name().to_string(),
                    cmd: format!("iperf3 -s -p {port}"),
                    output,
                });
            }
            let out = host.check(&listening, Duration::from_secs(5))?;
            if !out.stdout_text().trim().is_empty() {
                return Ok(Server { _process: process });
            }
            if Instant::now() >= deadline {
                let output = process.stop(Duration::from_secs(1))?;
                return Err(HostError::Failed {
                    host: host.name().to_string(),
                    cmd: format!("iperf3 -s -p {port} (not listening after {LISTEN:?})"),
                    output,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What a client run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Goodput at the receiver, Mbit/s.
    pub mbit_per_s: f64,
    /// UDP: datagrams lost, percent. TCP: none.
    pub lost_percent: Option<f64>,
    /// TCP: segments the sender retransmitted. UDP: none.
    pub retransmits: Option<u64>,
}

/// A client test: TCP for `seconds` (after `omit` seconds of slow start not counted),
/// or UDP at `udp_mbit` Mbit/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    /// Server address.
    pub address: Ipv4Addr,
    /// Server port.
    pub port: u16,
    /// Measured seconds.
    pub seconds: u32,
    /// Seconds at the start not counted.
    pub omit: u32,
    /// UDP at this rate; TCP if none.
    pub udp_mbit: Option<f64>,
    /// Parallel streams (`-P`); the goodput is their sum.
    pub streams: u32,
}

impl Test {
    /// The client command line.
    pub fn command(&self) -> Cmd {
        let mut cmd = Cmd::new("iperf3").args([
            "-J".to_string(),
            "-c".into(),
            self.address.to_string(),
            "-p".into(),
            self.port.to_string(),
            "-t".into(),
            self.seconds.to_string(),
            "-O".into(),
            self.omit.to_string(),
            "--connect-timeout".into(),
            "3000".into(),
        ]);
        if let Some(rate) = self.udp_mbit {
            cmd = cmd.args(["-u".to_string(), "-b".into(), format!("{rate}M")]);
        }
        if self.streams > 1 {
            cmd = cmd.args(["-P".to_string(), self.streams.to_string()]);
        }
        cmd
    }

    /// Runs the client on `host`.
    pub fn run(&self, host: &dyn Host) -> Result<Measured, String> {
        let cmd = self.command();
        let budget = Duration::from_secs(u64::from(self.seconds + self.omit) + 20);
        let output = host.run(&cmd, budget).map_err(|e| e.to_string())?;
        match parse(&output.stdout_text()) {
            Ok(m) if output.success() => Ok(m),
            Ok(_) => Err(format!(
                "{}: `{cmd}` exited with {:?}: {}",
                host.name(),
                output.code,
                output.stderr_text().trim()
            )),
            Err(e) => Err(format!("{}: `{cmd}`: {e}", host.name())),
        }
    }
}

/// Reads a client's `-J` report: receiver-side goodput (`end.sum_received`), UDP loss,
/// TCP retransmits (`end.sum_sent`). A report with an `error` field is an error.
pub fn parse(json: &str) -> Result<Measured, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("no JSON report ({e})"))?;
    if let Some(error) = v.get("error").and_then(Value::as_str) {
        return Err(format!("iperf3 says: {error}"));
    }
    let end = &v["end"];
    let received = &end["sum_received"];
    let bps = received["bits_per_second"]
        .as_f64()
        .ok_or("the report has no end.sum_received.bits_per_second")?;
    Ok(Measured {
        mbit_per_s: bps / 1e6,
        lost_percent: received["lost_percent"].as_f64(),
        retransmits: end["sum_sent"]["retransmits"].as_u64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_report() {
        let json = r#"{"start":{},"end":{"sum_sent":{"bytes":4131389440,"bits_per_second":16529541379.47,"retransmits":225,"sender":true},
            "sum_received":{"bytes":4135714816,"bits_per_second":16518964581.73,"sender":true}}}"#;
        let m = parse(json).unwrap();
        assert!((m.mbit_per_s - 16518.96).abs() < 0.01);
        assert_eq!((m.lost_percent, m.retransmits), (None, Some(225)));
    }

    #[test]
    fn udp_report_is_the_receivers_side() {
        let json = r#"{"end":{"sum":{"bits_per_second":814223075.5},
            "sum_sent":{"bits_per_second":814223075.5,"lost_percent":0,"sender":true},
            "sum_received":{"bits_per_second":505146381.41,"lost_packets":26679,"packets":70290,"lost_percent":37.95,"sender":false}}}"#;
        let m = parse(json).unwrap();
        assert!((m.mbit_per_s - 505.146).abs() < 0.001);
        assert_eq!(m.lost_percent, Some(37.95));
    }

    #[test]
    fn errors_and_garbage() {
        let e = parse(
            r#"{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}"#,
        )
        .unwrap_err();
        assert!(e.contains("Connection refused"), "{e}");
        assert!(parse("iperf3: error").unwrap_err().contains("no JSON"));
        assert!(parse(r#"{"end":{}}"#).unwrap_err().contains("sum_received"));
    }

    #[test]
    fn udp_command_line() {
        let t = Test {
            address: Ipv4Addr::new(198, 18, 0, 3),
            port: 5201,
            seconds: 3,
            omit: 0,
            udp_mbit: Some(40.5),
            streams: 1,
        };
        assert_eq!(
            t.command().to_string(),
            "iperf3 -J -c 198.18.0.3 -p 5201 -t 3 -O 0 --connect-timeout 3000 -u -b 40.5M"
        );
    }
}
