//! `ping` (iputils): send echo requests from a host and read the RTTs it prints.

use std::net::Ipv4Addr;
use std::time::Duration;

use wow_host::{Cmd, Host, HostError};

/// What one `ping` run reported.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Requests sent.
    pub transmitted: u32,
    /// Replies received.
    pub received: u32,
    /// The RTT of each reply, in ms, in arrival order.
    pub rtts_ms: Vec<f64>,
}

/// Sends `count` echo requests to `address` from `host`, `interval` apart, waiting at
/// most `wait` for the last reply. A run with no reply is a report with none, not an
/// error; an error means ping could not run (bad address, no permission, no binary).
pub fn run(
    host: &dyn Host,
    address: Ipv4Addr,
    count: u32,
    interval: Duration,
    wait: Duration,
) -> Result<Report, HostError> {
    let cmd = Cmd::new("ping").args([
        "-n".to_string(),
        "-c".into(),
        count.to_string(),
        "-i".into(),
        format!("{:.3}", interval.as_secs_f64()),
        "-W".into(),
        format!("{:.3}", wait.as_secs_f64()),
        address.to_string(),
    ]);
    let budget = interval * count + wait + Duration::from_secs(5);
    let output = host.run(&cmd, budget)?;
    // Exit 1 is "no reply"; 2 and others are errors (unknown host, permission).
    if output.timed_out || !matches!(output.code, Some(0 | 1)) {
        return Err(HostError::Failed {
            host: host.name().to_string(),
            cmd: cmd.to_string(),
            output,
        });
    }
    Ok(parse(&output.stdout_text()))
}

/// Interval of the echo requests [`first_reply`] sends: its resolution.
pub const FIRST_REPLY_INTERVAL: Duration = Duration::from_millis(50);

/// Sends echo requests every [`FIRST_REPLY_INTERVAL`] until one is answered (one
/// `ping -c 1 -w DEADLINE`, which exits at the first reply); the time from the call to
/// that reply, or `None` after `timeout`. A request lost while the route forms costs one
/// interval, not a whole wait for its reply.
pub fn first_reply(
    host: &dyn Host,
    address: Ipv4Addr,
    timeout: Duration,
) -> Result<Option<Duration>, HostError> {
    let start = std::time::Instant::now();
    let deadline = timeout.as_secs().max(1);
    let cmd = Cmd::new("ping").args([
        "-n".to_string(),
        "-c".into(),
        "1".into(),
        "-i".into(),
        format!("{:.3}", FIRST_REPLY_INTERVAL.as_secs_f64()),
        "-w".into(),
        deadline.to_string(),
        address.to_string(),
    ]);
    let output = host.run(&cmd, Duration::from_secs(deadline + 5))?;
    let elapsed = start.elapsed();
    if output.timed_out || !matches!(output.code, Some(0 | 1)) {
        return Err(HostError::Failed {
            host: host.name().to_string(),
            cmd: cmd.to_string(),
            output,
        });
    }
    Ok((parse(&output.stdout_text()).received > 0).then_some(elapsed))
}

/// Parses ping's output: `time=` of each reply and the statistics line.
pub fn parse(text: &str) -> Report {
    let mut report = Report::default();
    for line in text.lines() {
        if let Some(rest) = line.split(" time=").nth(1) {
            let value = rest.trim_end_matches(" ms").trim();
            if let Ok(ms) = value.parse::<f64>() {
                report.rtts_ms.push(ms);
            }
        } else if line.contains("packets transmitted") {
            let mut words = line.split(", ");
            let number = |part: Option<&str>| {
                part.and_then(|p| p.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            report.transmitted = number(words.next());
            report.received = number(words.next());
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLIES: &str = "\
PING 198.18.0.3 (198.18.0.3) 56(84) bytes of data.
64 bytes from 198.18.0.3: icmp_seq=1 ttl=63 time=38.4 ms
64 bytes from 198.18.0.3: icmp_seq=3 ttl=63 time=38.312 ms

--- 198.18.0.3 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms
rtt min/avg/max/mdev = 38.312/38.356/38.400/0.044 ms
";

    #[test]
    fn reads_each_reply_and_the_counts() {
        let r = parse(REPLIES);
        assert_eq!(r.rtts_ms, vec![38.4, 38.312]);
        assert_eq!((r.transmitted, r.received), (3, 2));
    }

    #[test]
    fn no_reply_is_an_empty_report() {
        let r = parse(
            "PING 198.18.0.3 (198.18.0.3) 56(84) bytes of data.\n\n--- 198.18.0.3 ping statistics ---\n1 packets transmitted, 0 received, 100% packet loss, time 0ms\n",
        );
        assert_eq!(r.rtts_ms, Vec::<f64>::new());
        assert_eq!((r.transmitted, r.received), (1, 0));
    }

    #[test]
    fn sub_millisecond_times_and_errors_in_the_stream() {
        let r = parse(
            "64 bytes from 198.19.1.11: icmp_seq=1 ttl=64 time=0.045 ms\nFrom 198.19.1.1 icmp_seq=2 Destination Host Unreachable\n2 packets transmitted, 1 received, +1 errors, 50% packet loss, time 1001ms\n",
        );
        assert_eq!(r.rtts_ms, vec![0.045]);
        assert_eq!((r.transmitted, r.received), (2, 1));
    }
}
