//! What the driver does when the operating system fails it: every failed UDP or TAP
//! operation is counted and logged (at most once a second per kind, with how many were
//! not logged), and the node goes on. Only a TAP device that is gone ends the node.

use std::io;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use nix::errno::Errno;
use tracing::warn;

/// How often a recurring fault is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Rate limit for the log lines of one recurring fault.
#[derive(Debug, Default)]
pub struct LogLimit {
    next: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// Whether to log an occurrence at `now`; if so, how many went unlogged before it.
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + LOG_EVERY);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Which operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Waiting for, or reading, UDP datagrams.
    UdpRecv,
    /// Waiting for, or reading, TAP frames.
    TapRecv,
    /// Writing a frame to the TAP.
    TapWrite,
}

/// The counts of failed UDP and TAP operations, shown by `status --json`.
#[derive(Debug, Default)]
pub struct IoFaults {
    /// UDP waits and receives that failed.
    pub udp_errors: u64,
    /// TAP waits, reads and writes that failed (other than a full TAP).
    pub tap_errors: u64,
    /// Frames for the TAP dropped because it was full.
    pub tap_write_drops: u64,
    udp_log: LogLimit,
    tap_log: LogLimit,
}

impl IoFaults {
    /// Counts and logs the failure `e` of `op`. An error only when the node cannot go on:
    /// the TAP device is gone.
    pub fn handle(&mut self, op: Op, e: &io::Error) -> Result<()> {
        let now = Instant::now();
        if op != Op::UdpRecv && tap_is_gone(e) {
            bail!(
                "the TAP device is gone ({e}): it was deleted or its driver unloaded; restart ipop-node to create it again"
            );
        }
        let (count, log) = match (op, e.kind()) {
            (Op::UdpRecv, _) => (&mut self.udp_errors, &mut self.udp_log),
            (Op::TapWrite, io::ErrorKind::WouldBlock) => {
                self.tap_write_drops += 1;
                return Ok(());
            }
            _ => (&mut self.tap_errors, &mut self.tap_log),
        };
        *count += 1;
        if let Some(suppressed) = log.check(now) {
            warn!(?op, error = %e, suppressed, "I/O error (counted; the node goes on)");
        }
        Ok(())
    }
}

/// Whether a TAP operation failed because the device no longer exists.
fn tap_is_gone(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|n| [Errno::EBADFD, Errno::ENODEV, Errno::ENXIO].contains(&Errno::from_raw(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_and_tap_errors_are_counted_and_the_node_goes_on() {
        let mut f = IoFaults::default();
        let refused = io::Error::from(Errno::ECONNREFUSED);
        let nobufs = io::Error::from(Errno::ENOBUFS);
        for _ in 0..1000 {
            f.handle(Op::UdpRecv, &refused).unwrap();
            f.handle(Op::TapRecv, &nobufs).unwrap();
            f.handle(Op::TapWrite, &io::ErrorKind::WouldBlock.into())
                .unwrap();
        }
        assert_eq!(
            (f.udp_errors, f.tap_errors, f.tap_write_drops),
            (1000, 1000, 1000)
        );
        // Even a bad-descriptor error on UDP is not the TAP vanishing.
        let badfd = io::Error::from(Errno::EBADFD);
        f.handle(Op::UdpRecv, &badfd).unwrap();
        let e = f.handle(Op::TapRecv, &badfd).unwrap_err().to_string();
        assert!(e.contains("TAP device is gone"), "{e}");
    }

    #[test]
    fn a_recurring_fault_is_logged_once_a_second() {
        let mut l = LogLimit::default();
        let t = Instant::now();
        assert_eq!(l.check(t), Some(0));
        assert_eq!(l.check(t + Duration::from_millis(10)), None);
        assert_eq!(l.check(t + Duration::from_millis(20)), None);
        assert_eq!(l.check(t + LOG_EVERY), Some(2));
    }
}
