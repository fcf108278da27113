//! The real tools experiments run on hosts, and parsers of their output. Parsers are
//! pure functions, tested on captured output.

pub mod cpu;
pub mod dhcp;
pub mod ip;
pub mod iperf;
pub mod ping;

use std::time::{Duration, Instant};

use wow_host::{Cmd, Host};

/// Polls `probe` every `every` until it returns `Some`, or gives up after `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Whether the network interface `iface` exists on `host` (`ip link show`).
pub fn link_exists(host: &dyn Host, iface: &str) -> bool {
    host.run(
        &Cmd::new("ip").args(["link", "show", iface]),
        Duration::from_secs(5),
    )
    .is_ok_and(|o| o.success())
}
