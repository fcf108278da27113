//! Ctrl-C, SIGTERM and SIGHUP during `wow-bench run --hosts`: the processes a run spawned
//! on its hosts are detached (they outlive an SSH session), so a signal must not just end
//! `wow-bench`. The first [`FleetBed`](super::FleetBed) installs a handler that logs into
//! each host of every live fleet again (the run's own logins may be busy), stops what this
//! process spawned there by PID, removes what the run placed, and exits with 128 + signal.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::HostSpec;
use crate::nodes::STATE_DIR;
use crate::ssh::SshHost;
use crate::{Cmd, Host};

/// Grace before SIGKILL for spawned processes (a node leaves the overlay on SIGTERM).
const GRACE: Duration = Duration::from_secs(3);

/// How long the handler waits for jobs being started when the signal came.
const LAUNCH_WAIT: Duration = Duration::from_secs(20);

/// A host to clean: how to log in (with the run's work dir) and whether the run made
/// the node's state folder there.
pub(super) type ToClean = (HostSpec, bool);

static LIVE: Mutex<BTreeMap<u64, Vec<ToClean>>> = Mutex::new(BTreeMap::new());

/// Registers a fleet's hosts; returns the key to [`forget`] them with.
pub(super) fn register(hosts: Vec<ToClean>) -> u64 {
    static INSTALL: Once = Once::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    INSTALL.call_once(|| match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    let live: Vec<ToClean> = LIVE
                        .lock()
                        .map(|l| l.values().flatten().cloned().collect())
                        .unwrap_or_default();
                    eprintln!("signal {sig}: stopping what this run started on its hosts");
                    if !crate::ssh::stop_spawning(LAUNCH_WAIT) {
                        eprintln!(
                            "warning: a job was still being started after {LAUNCH_WAIT:?}: \
                             it may be left on its host"
                        );
                    }
                    std::thread::scope(|s| {
                        for (spec, made) in &live {
                            s.spawn(move || match spec.connect() {
                                Ok(host) => clean(&host, *made),
                                Err(e) => eprintln!(
                                    "warning: {}: cannot log in to clean up: {e}",
                                    spec.name
                                ),
                            });
                        }
                    });
                    std::process::exit(128 + sig);
                }
            });
        }
        Err(e) => eprintln!(
            "warning: cannot handle signals ({e}): Ctrl-C will leave processes on the hosts"
        ),
    });
    let key = NEXT.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut live) = LIVE.lock() {
        live.insert(key, hosts);
    }
    key
}

/// Replaces what a fleet registered (once it knows more, e.g. where it made the state
/// folder).
pub(super) fn update(key: u64, hosts: Vec<ToClean>) {
    if let Ok(mut live) = LIVE.lock() {
        live.insert(key, hosts);
    }
}

/// Forgets a fleet (it cleaned up itself).
pub(super) fn forget(key: u64) {
    if let Ok(mut live) = LIVE.lock() {
        live.remove(&key);
    }
}

/// Stops what this process spawned on `host`, removes the state folder if the run made
/// it, then the work dir. Problems are printed: cleaning goes on with the next step.
pub(super) fn clean(host: &SshHost, made_state_dir: bool) {
    if let Err(e) = host.stop_spawned(GRACE) {
        eprintln!("warning: {}: {e}", host.name());
    }
    if made_state_dir {
        let rm = Cmd::new("rm").args(["-rf", "--", STATE_DIR]);
        if let Err(e) = host.check(&rm, Duration::from_secs(20)) {
            eprintln!("warning: {}: cannot remove {STATE_DIR}: {e}", host.name());
        }
    }
    if let Err(e) = host.remove_work_dir(&["ipop-node"]) {
        eprintln!("warning: {}: {e}", host.name());
    }
}
