//! Real DHCP clients on a host's interface: ISC `dhclient` and busybox `udhcpc`, and
//! the IPv4 address they bind (read back with `ip -j addr`).

use std::net::Ipv4Addr;
use std::time::Duration;

use wow_host::{Cmd, Host, HostError, Process};

/// Which DHCP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpClient {
    /// ISC `dhclient`.
    Dhclient,
    /// busybox `udhcpc`.
    Udhcpc,
}

impl DhcpClient {
    /// Starts the client in the foreground on `iface`; `state_dir` holds its PID and
    /// lease files. Stop it by its PID when done.
    pub fn start(
        self,
        host: &dyn Host,
        iface: &str,
        state_dir: &str,
    ) -> Result<Box<dyn Process>, HostError> {
        host.spawn(&self.command(iface, state_dir))
    }

    /// The command [`DhcpClient::start`] runs.
    pub fn command(self, iface: &str, state_dir: &str) -> Cmd {
        match self {
            DhcpClient::Dhclient => Cmd::new("dhclient").args([
                "-d",
                "-v",
                "-pf",
                &format!("{state_dir}/dhclient-{iface}.pid"),
                "-lf",
                &lease_file(iface, state_dir),
                iface,
            ]),
            DhcpClient::Udhcpc => {
                Cmd::new("udhcpc").args(["-f", "-i", iface, "-s", "/etc/udhcpc/default.script"])
            }
        }
    }
}

/// Where `dhclient` on `iface` keeps its leases (remove it for a client that has never
/// had an address).
pub fn lease_file(iface: &str, state_dir: &str) -> String {
    format!("{state_dir}/dhclient-{iface}.leases")
}

/// The IPv4 address on `iface`, if it has one (the first, if it has several).
pub fn address_of(host: &dyn Host, iface: &str) -> Option<Ipv4Addr> {
    super::ip::ipv4_addresses(host, iface)
        .ok()?
        .first()
        .copied()
}

/// Waits until `iface` on `host` has an address, polling every `every`; `None` after
/// `timeout`.
pub fn wait_address(
    host: &dyn Host,
    iface: &str,
    timeout: Duration,
    every: Duration,
) -> Option<Ipv4Addr> {
    super::wait_for(timeout, every, || address_of(host, iface))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhclient_keeps_its_files_in_the_state_dir() {
        let cmd = DhcpClient::Dhclient
            .command("ipop0", "/run/ipop")
            .to_string();
        assert!(cmd.contains("-lf /run/ipop/dhclient-ipop0.leases"), "{cmd}");
        assert!(cmd.ends_with("ipop0"), "{cmd}");
    }
}
