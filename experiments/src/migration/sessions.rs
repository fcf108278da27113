//! The sessions a migration trial keeps open across the move, each a real program over
//! the virtual network, and what their output says: how long each stalled, and whether
//! it survived.
//!
//! - `ping -D -i 0.01` from the head node to the VM (timestamped replies);
//! - an `iperf3` TCP stream from the head node to the VM, reported every 0.1 s;
//! - an interactive SSH session (`ssh -tt`) from the head node into the VM running a loop
//!   that prints a counter every 0.1 s, each line stamped on arrival at the head node;
//! - `nfs-session` in the VM (workloads/nfs-session): one NFS mount of the head node's
//!   export, a synchronous write every 0.1 s, every record read back and checked at the
//!   end;
//! - a batch job under Slurm, running on the VM across the move, that counts to a known
//!   number and must end `COMPLETED` with every count in its output.
//!
//! Parsers are pure functions of the programs' output, tested on captured text.

use std::net::Ipv4Addr;

use serde_json::Value;
use wow_host::{Cmd, shell_quote};

/// Lines a counting session (SSH, batch job) prints per second.
pub const TICKS_PER_S: u32 = 10;

/// `ping` from the head node to the VM for `seconds`, every 10 ms, replies timestamped.
pub fn ping(vm: Ipv4Addr, seconds: u32) -> Cmd {
    Cmd::new("ping").args([
        "-n".to_string(),
        "-D".into(),
        "-i".into(),
        "0.01".into(),
        "-w".into(),
        seconds.to_string(),
        vm.to_string(),
    ])
}

/// The arrival times (Unix seconds) of `ping -D` replies.
pub fn ping_replies(text: &str) -> Vec<f64> {
    text.lines()
        .filter(|l| l.contains(" bytes from "))
        .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
        .collect()
}

/// The longest silence between consecutive times (seconds): from the last packet before
/// an outage to the first after it. `None` with fewer than two times.
pub fn longest_gap(times: &[f64]) -> Option<f64> {
    times
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))))
}

/// An `iperf3` TCP stream to the VM at `mbit` Mbit/s for `seconds`, reported every 0.1 s.
pub fn stream(vm: Ipv4Addr, port: u16, seconds: u32, mbit: u32) -> Cmd {
    Cmd::new("iperf3").args([
        "-J".to_string(),
        "-c".into(),
        vm.to_string(),
        "-p".into(),
        port.to_string(),
        "-t".into(),
        seconds.to_string(),
        "-b".into(),
        format!("{mbit}M"),
        "-i".into(),
        "0.1".into(),
        "--connect-timeout".into(),
        "5000".into(),
    ])
}

/// What an `iperf3 -J` report says of a stream that crossed a migration.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// The longest run of report intervals in which no byte was sent, in seconds.
    pub stall_s: f64,
    /// Bytes the receiver got.
    pub received: u64,
    /// Whether data flowed again at the end (less than 0.3 s without data).
    pub resumed: bool,
}

/// Reads a stream's `-J` report; the error is iperf3's own (a reset connection).
pub fn stream_report(json: &str) -> Result<Stream, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("no JSON report ({e})"))?;
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        return Err(e.to_string());
    }
    let intervals: Vec<(f64, f64)> = v["intervals"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    let sum = &i["sum"];
                    let len =
                        sum["end"].as_f64().unwrap_or(0.0) - sum["start"].as_f64().unwrap_or(0.0);
                    (len, sum["bytes"].as_f64().unwrap_or(0.0))
                })
                .collect()
        })
        .unwrap_or_default();
    let (mut run, mut stall) = (0.0f64, 0.0f64);
    for &(len, bytes) in &intervals {
        run = if bytes == 0.0 { run + len } else { 0.0 };
        stall = stall.max(run);
    }
    // Data again by the end: the run of empty intervals at the end (iperf3's last
    // interval is often a few ms long and empty) is short.
    let trailing: f64 = intervals
        .iter()
        .rev()
        .take_while(|(_, bytes)| *bytes == 0.0)
        .map(|(len, _)| len)
        .sum();
    let resumed = !intervals.is_empty() && trailing < 0.3;
    Ok(Stream {
        stall_s: stall,
        received: v["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0),
        resumed: resumed && !intervals.is_empty(),
    })
}

/// The counting loop an SSH session or a batch job runs: `ticks` lines `c=N`, 0.1 s apart.
pub fn counter(ticks: u32) -> String {
    format!(
        "i=0; while [ $i -lt {ticks} ]; do echo c=$i; i=$((i+1)); sleep {}; done",
        1.0 / f64::from(TICKS_PER_S)
    )
}

/// An interactive SSH session (`ssh -tt`, a terminal) from the head node into `vm`
/// through the client wrapper `client`, running [`counter`]; every line stamped with
/// its arrival time at the head node. Fails if ssh does (`pipefail`).
pub fn ssh(client: &str, vm: &str, ticks: u32) -> Cmd {
    let script = format!(
        "set -o pipefail; {} -tt {} {} </dev/null | while IFS= read -r l; do \
         printf '%s %s\\n' \"$(date +%s.%N)\" \"$l\"; done",
        shell_quote(client),
        shell_quote(vm),
        shell_quote(&counter(ticks))
    );
    Cmd::new("bash").args(["-c", &script])
}

/// What a counting session's output says.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    /// Counts seen, in order.
    pub counts: usize,
    /// Whether they were exactly 0, 1, … `ticks − 1`.
    pub complete: bool,
    /// The longest time between two lines' arrival (stamped lines only), seconds.
    pub gap_s: Option<f64>,
}

/// Reads counter lines (`[stamp ]c=N`, carriage returns of a terminal ignored).
pub fn counted(text: &str, ticks: u32) -> Counted {
    let mut counts = Vec::new();
    let mut stamps = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let Some((before, n)) = line.rsplit_once("c=") else {
            continue;
        };
        let Ok(n) = n.trim().parse::<u32>() else {
            continue;
        };
        counts.push(n);
        if let Ok(t) = before.trim().parse::<f64>() {
            stamps.push(t);
        }
    }
    Counted {
        counts: counts.len(),
        complete: counts.len() == ticks as usize
            && counts.iter().zip(0..).all(|(&c, i): (&u32, u32)| c == i),
        gap_s: longest_gap(&stamps),
    }
}

/// The batch job's script: [`counter`], then a last line the check looks for.
pub fn job_script(ticks: u32) -> String {
    format!(
        "#!/bin/sh\n\
         # wow-bench migration: a batch job running on the VM while it migrates\n\
         {}\n\
         echo done\n",
        counter(ticks)
    )
}

/// `nfs-session` in the VM: writes to `url` every 0.1 s for `seconds`, then checks.
pub fn nfs(bin: &str, url: &str, seconds: u32) -> Cmd {
    Cmd::new(format!("{bin}/nfs-session")).args([
        "--url".to_string(),
        url.to_string(),
        "--seconds".into(),
        seconds.to_string(),
        "--interval-ms".into(),
        (1000 / TICKS_PER_S).to_string(),
    ])
}

/// What `nfs-session` reported.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NfsReport {
    /// Records written (fsync returned).
    pub written: u32,
    /// Records read back intact, of how many.
    pub verified: Option<(u32, u32)>,
    /// The longest write (issue to fsync return), seconds.
    pub max_write_s: Option<f64>,
    /// Calls that failed and were retried.
    pub retries: Option<u32>,
}

/// Reads `nfs-session`'s output.
pub fn nfs_report(text: &str) -> NfsReport {
    let mut r = NfsReport::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["write", ..] => r.written += 1,
            ["verified", ok, "of", n] => {
                r.verified = ok.parse().ok().zip(n.parse().ok());
            }
            ["max_write_s", x] => r.max_write_s = x.parse().ok(),
            ["retries", k] => r.retries = k.parse().ok(),
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_replies_and_the_outage_between_them() {
        let text = "PING 10.128.0.9 (10.128.0.9) 56(84) bytes of data.\n\
                    [1733550000.100000] 64 bytes from 10.128.0.9: icmp_seq=1 ttl=64 time=1.1 ms\n\
                    [1733550000.110000] 64 bytes from 10.128.0.9: icmp_seq=2 ttl=64 time=1.0 ms\n\
                    [1733550003.610000] 64 bytes from 10.128.0.9: icmp_seq=352 ttl=64 time=9 ms\n\
                    \n--- 10.128.0.9 ping statistics ---\n";
        let t = ping_replies(text);
        assert_eq!(t.len(), 3);
        assert!((longest_gap(&t).unwrap() - 3.5).abs() < 1e-6);
        assert_eq!(longest_gap(&t[..1]), None);
    }

    #[test]
    fn a_stream_stall_is_its_longest_run_of_empty_intervals() {
        let iv =
            |s: f64, b: u64| format!(r#"{{"sum":{{"start":{s},"end":{},"bytes":{b}}}}}"#, s + 0.1);
        let intervals: Vec<String> = (0..40)
            .map(|i| {
                let s = f64::from(i) / 10.0;
                iv(s, if (10..23).contains(&i) { 0 } else { 1000 })
            })
            .collect();
        let json = format!(
            r#"{{"intervals":[{}],"end":{{"sum_received":{{"bytes":27000}}}}}}"#,
            intervals.join(",")
        );
        // iperf3's last interval: a few ms, empty.
        let last = r#"}},{"sum":{"start":4.0,"end":4.002,"bytes":0}}],"end""#;
        let with_last = json.replace(r#"}}],"end""#, last);
        assert!(with_last.contains("4.002"));
        let s = stream_report(&with_last).unwrap();
        assert!((s.stall_s - 1.3).abs() < 1e-6, "{s:?}");
        assert!(s.resumed);
        assert_eq!(s.received, 27000);
        let err = stream_report(
            r#"{"error":"unable to send control message: Connection reset by peer"}"#,
        );
        assert!(err.unwrap_err().contains("reset"));
    }

    #[test]
    fn counters_must_be_complete_and_in_order() {
        let ok = "1733550000.1 c=0\r\n1733550000.2 c=1\r\n1733550003.2 c=2\r\n";
        let c = counted(ok, 3);
        assert!(c.complete);
        assert!((c.gap_s.unwrap() - 3.0).abs() < 1e-6);
        assert!(!counted("c=0\nc=2\nc=3\n", 3).complete);
        assert!(!counted("c=0\nc=1\n", 3).complete);
        assert!(counted("c=0\nc=1\nc=2\ndone\n", 3).complete);
        assert!(counter(5).contains("-lt 5") && counter(5).contains("sleep 0.1"));
    }

    #[test]
    fn nfs_session_output_parses() {
        let text =
            "write 0 1.0 1.01\nwrite 1 1.1 4.2\nverified 2 of 2\nretries 1\nmax_write_s 3.100000\n";
        let r = nfs_report(text);
        assert_eq!(r.written, 2);
        assert_eq!(r.verified, Some((2, 2)));
        assert_eq!(r.retries, Some(1));
        assert!((r.max_write_s.unwrap() - 3.1).abs() < 1e-9);
    }

    #[test]
    fn the_ssh_session_is_quoted_for_bash() {
        let cmd = ssh("/run/x/ssh/ssh", "vm", 4);
        assert_eq!(cmd.program, "bash");
        let script = &cmd.args[1];
        assert!(
            script.starts_with("set -o pipefail; /run/x/ssh/ssh -tt vm 'i=0;"),
            "{script}"
        );
    }
}
