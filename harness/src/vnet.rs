//! Driving the virtual network on hosts: namespaces created through a node, member
//! nodes with a TAP device, real DHCP clients (ISC `dhclient`, busybox `udhcpc`) on the
//! TAP, and the address they bind — all through the [`Host`] interface.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::host::{Cmd, Host, Process};
use wow_experiments::tools::dhcp;
pub use wow_experiments::tools::dhcp::{DhcpClient, address_of};

use crate::nodes::{CONTROL_SOCKET, LEASE_FILE, NAMESPACE_KEY_FILE, NodeOptions, STATE_DIR};

/// The TAP device name the harness gives member nodes.
pub const TAP: &str = "ipop0";

/// Which kind of namespace [`create_namespace`] makes.
#[derive(Debug, Clone, Copy)]
pub enum Kind<'a> {
    /// Open, under this identifier or a random one.
    Open(Option<&'a str>),
    /// Keyed by the key [`crate::nodes::install_namespace_key`] put on the host.
    Keyed,
}

/// Creates a namespace through the node running on `host`; returns its identifier.
pub fn create_namespace(
    host: &dyn Host,
    binary: &Path,
    range: &str,
    lease: &str,
    kind: Kind<'_>,
) -> Result<String> {
    let mut cmd = Cmd::new(binary.display().to_string()).args([
        "namespace",
        "create",
        "--range",
        range,
        "--lease",
        lease,
        "--socket",
        CONTROL_SOCKET,
    ]);
    cmd = match kind {
        Kind::Open(None) => cmd.arg("--open"),
        Kind::Open(Some(id)) => cmd.args(["--open", "--id", id]),
        Kind::Keyed => cmd.args(["--key-file", NAMESPACE_KEY_FILE]),
    };
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
        LEASE_FILE.to_string(),
    ]);
    opts
}

/// Starts `client` in the foreground on `iface`, its files in [`STATE_DIR`] (stop it
/// by its PID when done).
pub fn start_dhcp(client: DhcpClient, host: &dyn Host, iface: &str) -> Result<Box<dyn Process>> {
    Ok(client.start(host, iface, STATE_DIR)?)
}

/// Waits until `iface` on `host` has an address.
pub fn wait_address(host: &dyn Host, iface: &str, timeout: Duration) -> Result<Ipv4Addr> {
    dhcp::wait_address(host, iface, timeout, Duration::from_millis(200))
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
