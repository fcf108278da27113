//! Driving the virtual network on hosts: namespaces created through a node, member
//! nodes with a TAP device, real DHCP clients (ISC `dhclient`, busybox `udhcpc`) on the
//! TAP, and the address they bind — all through the [`Host`] interface.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::host::{Cmd, Host, Process};
use crate::nodes::{CONTROL_SOCKET, NodeOptions, STATE_DIR, wait_for};

/// The TAP device name the harness gives member nodes.
pub const TAP: &str = "ipop0";

/// Creates a namespace through the node running on `host`; returns its identifier.
pub fn create_namespace(
    host: &dyn Host,
    binary: &Path,
    range: &str,
    lease: &str,
) -> Result<String> {
    let cmd = Cmd::new(binary.display().to_string()).args([
        "namespace",
        "create",
        "--range",
        range,
        "--lease",
        lease,
        "--socket",
        CONTROL_SOCKET,
    ]);
    let out = host.check(&cmd, Duration::from_secs(60))?;
    let id = out.stdout_text().trim().to_owned();
    if id.len() != 32 {
        bail!("{}: namespace create printed {id:?}", host.name());
    }
    Ok(id)
}

/// Options for a member node of `namespace` that joins through `bootstrap`.
pub fn member_options(bootstrap: &dyn Host, namespace: &str) -> NodeOptions {
    let mut opts = NodeOptions::joining(bootstrap);
    opts.extra.extend([
        "--namespace".to_owned(),
        namespace.to_owned(),
        "--tap".to_owned(),
        TAP.to_owned(),
        "--lease-file".to_owned(),
        format!("{STATE_DIR}/leases"),
    ]);
    opts
}

/// Which DHCP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpClient {
    /// ISC `dhclient`.
    Dhclient,
    /// busybox `udhcpc`.
    Udhcpc,
}

impl DhcpClient {
    /// Starts the client in the foreground on `iface` (stop it by its PID when done).
    pub fn start(self, host: &dyn Host, iface: &str) -> Result<Box<dyn Process>> {
        let cmd = match self {
            DhcpClient::Dhclient => Cmd::new("dhclient").args([
                "-d",
                "-v",
                "-pf",
                &format!("{STATE_DIR}/dhclient-{iface}.pid"),
                "-lf",
                &format!("{STATE_DIR}/dhclient-{iface}.leases"),
                iface,
            ]),
            DhcpClient::Udhcpc => {
                Cmd::new("udhcpc").args(["-f", "-i", iface, "-s", "/etc/udhcpc/default.script"])
            }
        };
        Ok(host.spawn(&cmd)?)
    }
}

/// The IPv4 address on `iface`, if it has one.
pub fn address_of(host: &dyn Host, iface: &str) -> Option<Ipv4Addr> {
    let out = host
        .run(
            &Cmd::new("ip").args(["-4", "-o", "addr", "show", "dev", iface]),
            Duration::from_secs(5),
        )
        .ok()?;
    out.stdout_text()
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Waits until `iface` on `host` has an address.
pub fn wait_address(host: &dyn Host, iface: &str, timeout: Duration) -> Result<Ipv4Addr> {
    wait_for(timeout, Duration::from_millis(200), || {
        address_of(host, iface)
    })
    .with_context(|| format!("{}: no address on {iface} after {timeout:?}", host.name()))
}

/// Round-trip times of `count` pings from `host` to `dst` (milliseconds; lost ones
/// are missing).
pub fn ping(host: &dyn Host, dst: Ipv4Addr, count: u32, interval: Duration) -> Result<Vec<f64>> {
    let cmd = Cmd::new("ping").args([
        "-n",
        "-c",
        &count.to_string(),
        "-i",
        &format!("{:.3}", interval.as_secs_f64()),
        "-W",
        "2",
        &dst.to_string(),
    ]);
    let timeout = interval * count + Duration::from_secs(10);
    let out = host.run(&cmd, timeout)?;
    Ok(out
        .stdout_text()
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect())
}
