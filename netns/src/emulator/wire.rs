//! One emulated link: a thread that copies frames between two interfaces, holding each
//! frame in a timed FIFO per direction until `delay ± jitter` has passed, and dropping
//! frames with probability `loss`.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::prctl::set_timerslack;
use nix::sys::time::TimeSpec;
use serde::{Deserialize, Serialize};

use super::socket::{MAX_FRAME, PacketSocket};

/// Longest the loop sleeps without looking at the stop flag.
const POLL_MAX: Duration = Duration::from_millis(100);
/// Bytes a direction may hold before it drops (tail drop, like a router buffer).
const QUEUE_BYTES: usize = 16 << 20;

/// One link of the emulator: interfaces `a` and `b` of the core namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireSpec {
    /// Label for logs (the node at the far end).
    pub name: String,
    /// Interface facing the node.
    pub a: String,
    /// Interface facing the core bridge.
    pub b: String,
    /// One-way delay, nanoseconds.
    pub delay_ns: u64,
    /// Jitter (uniform in `[-jitter, +jitter]`), nanoseconds.
    pub jitter_ns: u64,
    /// Loss probability per frame and direction.
    pub loss: f64,
}

/// What one direction of a link did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionStats {
    /// Frames read.
    pub received: u64,
    /// Frames dropped by the loss setting.
    pub lost: u64,
    /// Frames dropped because the queue was full.
    pub overflow: u64,
    /// Frames written.
    pub sent: u64,
    /// Frames the kernel refused (a full rate limiter queue).
    pub refused: u64,
}

struct Direction {
    queue: VecDeque<(Instant, Vec<u8>)>,
    bytes: usize,
    last_due: Instant,
    stats: DirectionStats,
}

impl Direction {
    fn new() -> Direction {
        Direction {
            queue: VecDeque::new(),
            bytes: 0,
            last_due: Instant::now(),
            stats: DirectionStats::default(),
        }
    }

    fn admit(&mut self, frame: &[u8], now: Instant, spec: &WireSpec, rng: &mut SplitMix64) {
        self.stats.received += 1;
        if spec.loss > 0.0 && rng.unit() < spec.loss {
            self.stats.lost += 1;
            return;
        }
        if self.bytes + frame.len() > QUEUE_BYTES {
            self.stats.overflow += 1;
            return;
        }
        let jitter = if spec.jitter_ns > 0 {
            (rng.unit() * 2.0 - 1.0) * spec.jitter_ns as f64
        } else {
            0.0
        };
        let delay = Duration::from_nanos((spec.delay_ns as f64 + jitter).max(0.0) as u64);
        // Never reorder: a frame leaves no earlier than the one before it.
        let due = (now + delay).max(self.last_due);
        self.last_due = due;
        self.bytes += frame.len();
        self.queue.push_back((due, frame.to_vec()));
    }

    fn flush(&mut self, now: Instant, out: &PacketSocket) -> io::Result<()> {
        while let Some((due, _)) = self.queue.front() {
            if *due > now {
                break;
            }
            let Some((_, frame)) = self.queue.pop_front() else {
                break;
            };
            self.bytes -= frame.len();
            match out.send(&frame) {
                Ok(()) => self.stats.sent += 1,
                Err(e)
                    if matches!(
                        e.raw_os_error().map(Errno::from_raw),
                        Some(Errno::ENOBUFS | Errno::EAGAIN | Errno::EMSGSIZE)
                    ) =>
                {
                    self.stats.refused += 1;
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("send on {}: {e}", out.name()),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Opened sockets of a link, ready to run.
pub(crate) struct Wire {
    spec: WireSpec,
    sockets: [PacketSocket; 2],
    seed: u64,
}

impl Wire {
    pub(crate) fn open(spec: &WireSpec, seed: u64) -> io::Result<Wire> {
        let open = |name: &str| {
            PacketSocket::open(name).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open a packet socket on {name}: {e}"),
                )
            })
        };
        Ok(Wire {
            spec: spec.clone(),
            sockets: [open(&spec.a)?, open(&spec.b)?],
            seed,
        })
    }

    /// Runs until `stop` is set or an interface disappears. Returns the stats of the
    /// `a → b` and `b → a` directions.
    pub(crate) fn run(self, stop: &AtomicBool) -> io::Result<[DirectionStats; 2]> {
        // Best effort: without it, sleeps overshoot by the default 50 µs slack.
        let _ = set_timerslack(1);
        let mut rng = SplitMix64(self.seed);
        let mut dirs = [Direction::new(), Direction::new()];
        let mut buf = vec![0u8; MAX_FRAME];
        let mut fds = self
            .sockets
            .each_ref()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN));
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            for (i, dir) in dirs.iter_mut().enumerate() {
                dir.flush(now, &self.sockets[1 - i])?;
            }
            let next = dirs
                .iter()
                .filter_map(|d| d.queue.front().map(|f| f.0))
                .min();
            let wait = next
                .map_or(POLL_MAX, |t| t.saturating_duration_since(Instant::now()))
                .min(POLL_MAX);
            if let Err(e) = ppoll(&mut fds, Some(TimeSpec::from(wait)), None) {
                if e == Errno::EINTR {
                    continue;
                }
                return Err(e.into());
            }
            for (i, fd) in fds.iter().enumerate() {
                let revents = fd.revents().unwrap_or(PollFlags::empty());
                if revents.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL)
                {
                    return Err(io::Error::other(format!(
                        "{} went away",
                        self.sockets[i].name()
                    )));
                }
                if !revents.contains(PollFlags::POLLIN) {
                    continue;
                }
                loop {
                    match self.sockets[i].recv(&mut buf) {
                        Ok(len) => dirs[i].admit(&buf[..len], Instant::now(), &self.spec, &mut rng),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(io::Error::new(
                                e.kind(),
                                format!("recv on {}: {e}", self.sockets[i].name()),
                            ));
                        }
                    }
                }
            }
        }
        Ok(dirs.map(|d| d.stats))
    }
}

/// A tiny, fast PRNG (SplitMix64) for loss and jitter draws.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(delay_ms: u64, jitter_ms: u64, loss: f64) -> WireSpec {
        WireSpec {
            name: "t".into(),
            a: "a".into(),
            b: "b".into(),
            delay_ns: delay_ms * 1_000_000,
            jitter_ns: jitter_ms * 1_000_000,
            loss,
        }
    }

    #[test]
    fn frames_wait_the_delay_and_keep_their_order_under_jitter() {
        let s = spec(10, 9, 0.0);
        let mut rng = SplitMix64(1);
        let mut dir = Direction::new();
        let t0 = Instant::now();
        for i in 0..1000u32 {
            dir.admit(
                &i.to_be_bytes(),
                t0 + Duration::from_micros(u64::from(i) * 10),
                &s,
                &mut rng,
            );
        }
        let dues: Vec<Instant> = dir.queue.iter().map(|f| f.0).collect();
        assert!(dues.windows(2).all(|w| w[0] <= w[1]), "FIFO order");
        assert!(
            dues[0] >= t0 + Duration::from_millis(1) && dues[0] <= t0 + Duration::from_millis(19)
        );
        let order: Vec<u32> = dir
            .queue
            .iter()
            .map(|f| u32::from_be_bytes(f.1[..4].try_into().unwrap()))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn loss_follows_the_probability() {
        let s = spec(0, 0, 0.1);
        let mut rng = SplitMix64(7);
        let mut dir = Direction::new();
        let now = Instant::now();
        for _ in 0..100_000 {
            dir.admit(&[0u8; 60], now, &s, &mut rng);
        }
        let lost = dir.stats.lost as f64 / 100_000.0;
        assert!((0.095..0.105).contains(&lost), "lost {lost}");
        assert_eq!(dir.stats.received, 100_000);
    }

    #[test]
    fn a_full_queue_drops_at_the_tail() {
        let s = spec(1000, 0, 0.0);
        let mut rng = SplitMix64(3);
        let mut dir = Direction::new();
        let now = Instant::now();
        let frame = vec![0u8; 1500];
        for _ in 0..(QUEUE_BYTES / 1500 + 10) {
            dir.admit(&frame, now, &s, &mut rng);
        }
        assert_eq!(dir.stats.overflow, 10);
    }
}
