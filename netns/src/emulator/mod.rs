//! The userspace WAN link emulator (this kernel has no netem).
//!
//! Each emulated link is an L2 "wire" between two veth ends in the core namespace,
//! served by one thread with raw AF_PACKET sockets (`PACKET_IGNORE_OUTGOING`, so it
//! never reads its own transmissions) and one timed FIFO per direction; the thread
//! sleeps in `ppoll` until the next frame is due, with a timer slack of 1 ns. Jitter is
//! uniform in `[-jitter, +jitter]` and never reorders frames (a frame leaves no earlier
//! than the one before it); loss is an independent draw per frame and direction. Rate
//! is not done here but by a `tbf` qdisc on the interface the wire writes to.
//!
//! The emulator runs in its own process (`wow-bench` starts it through a hidden
//! subcommand) so that a testbed outlives the command that built it; it stops on
//! SIGTERM, when an interface disappears, or when its namespace is deleted.

mod socket;
mod wire;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use wire::{DirectionStats, WireSpec};

use crate::error::{Error, Result};

/// What the emulator process runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// The namespace file the emulator lives in; it exits when the file is gone.
    pub namespace_file: String,
    /// The links.
    pub wires: Vec<WireSpec>,
}

/// What one link did while the emulator ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireReport {
    /// The link's name.
    pub name: String,
    /// `a → b` (towards the core) and `b → a` (towards the node).
    pub directions: [DirectionStats; 2],
    /// Why the link stopped early, if it did.
    pub error: Option<String>,
}

impl Spec {
    /// Reads a spec written by [`crate::Testbed`].
    pub fn load(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        serde_json::from_str(&text).map_err(|e| Error::State {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Runs every link of `spec` in the caller's network namespace until `stop` is set, a
/// link fails, or the namespace file disappears. `ready` is called once every socket
/// is open, that is, once every link carries frames.
pub fn run(spec: &Spec, stop: &AtomicBool, ready: impl FnOnce()) -> Result<Vec<WireReport>> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let wires = spec
        .wires
        .iter()
        .enumerate()
        .map(|(i, w)| wire::Wire::open(w, seed ^ (i as u64).wrapping_mul(0x9e37_79b9)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::Emulator(e.to_string()))?;
    ready();
    let ns_file = Path::new(&spec.namespace_file);
    let finished = AtomicBool::new(false);
    let reports = std::thread::scope(|scope| {
        let handles: Vec<_> = wires
            .into_iter()
            .zip(&spec.wires)
            .map(|(wire, ws)| {
                let finished = &finished;
                let name = ws.name.clone();
                scope.spawn(move || {
                    let result = wire.run(stop);
                    finished.store(true, Ordering::Relaxed);
                    match result {
                        Ok(directions) => WireReport {
                            name,
                            directions,
                            error: None,
                        },
                        Err(e) => WireReport {
                            name,
                            directions: Default::default(),
                            error: Some(e.to_string()),
                        },
                    }
                })
            })
            .collect();
        while !stop.load(Ordering::Relaxed) && !finished.load(Ordering::Relaxed) && ns_file.exists()
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| WireReport {
                    name: "?".into(),
                    directions: Default::default(),
                    error: Some("link thread panicked".into()),
                })
            })
            .collect()
    });
    Ok(reports)
}
