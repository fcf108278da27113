//! CPU time of a host's daemons: `utime + stime` from `/proc/PID/stat` of every process
//! in the host's network namespace whose `comm` is one of the names asked for.

use std::time::Duration;

use wow_host::{Cmd, Host, HostError};

/// Prints `/proc/PID/stat` of every process in the caller's network namespace, then the
/// clock ticks per second.
const SCRIPT: &str = "me=$(readlink /proc/self/ns/net); for p in /proc/[0-9]*; do \
    [ \"$(readlink \"$p/ns/net\" 2>/dev/null)\" = \"$me\" ] && cat \"$p/stat\" 2>/dev/null; \
    done; echo \"ticks $(getconf CLK_TCK)\"";

/// CPU seconds the processes called one of `names` in `host`'s network namespace have
/// used so far.
pub fn seconds(host: &dyn Host, names: &[&str]) -> Result<f64, HostError> {
    let cmd = Cmd::new("sh").args(["-c", SCRIPT]);
    let out = host.check(&cmd, Duration::from_secs(10))?;
    parse(&out.stdout_text(), names).ok_or_else(|| HostError::Failed {
        host: host.name().to_string(),
        cmd: format!("{cmd} (no clock ticks line)"),
        output: out,
    })
}

/// Sums `utime + stime` of the `stat` lines whose `comm` is in `names`, in seconds;
/// `None` without the `ticks N` line.
pub fn parse(text: &str, names: &[&str]) -> Option<f64> {
    let mut ticks = 0u64;
    let mut per_second = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("ticks ") {
            per_second = n.trim().parse::<f64>().ok().filter(|t| *t > 0.0);
            continue;
        }
        // `pid (comm) state ...`: comm may hold spaces and parentheses; it ends at the
        // last ')'.
        let (Some(open), Some(close)) = (line.find('('), line.rfind(')')) else {
            continue;
        };
        if !names.contains(&&line[open + 1..close]) {
            continue;
        }
        let fields: Vec<&str> = line[close + 1..].split_whitespace().collect();
        // After comm: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    per_second.map(|t| ticks as f64 / t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_named_daemons() {
        let text = "\
1234 (wireguard-go) S 1 1234 1234 0 -1 4194560 500 0 0 0 150 50 0 0 20 0 9 0 100 0 0\n\
1300 (sh) S 1 1 1 0 -1 0 0 0 0 0 7 7 0 0 20 0 1 0 100 0 0\n\
1400 (a (b) c) S 1 1 1 0 -1 0 0 0 0 0 9 9 0 0 20 0 1 0 100 0 0\n\
ticks 100\n";
        assert_eq!(parse(text, &["wireguard-go"]), Some(2.0));
        assert_eq!(parse(text, &["a (b) c"]), Some(0.18));
        assert_eq!(parse(text, &["tincd"]), Some(0.0));
        assert_eq!(parse("1 (x) S", &["x"]), None);
    }
}
