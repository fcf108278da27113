//! tinc 1.0 in router mode (a TUN device, one `Subnet` per member). Each member makes
//! its RSA-2048 key pair with `tincd -K`, which appends the public key to its own host
//! file; the harness hands every host file to every other member. Everyone but the hub
//! `ConnectTo`s the hub; tinc then tries direct UDP between any two members and relays
//! over the meta connections where it cannot.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use anyhow::Context;
use wow_host::Cmd;

use super::{Peer, Plan, run, write};

/// The interface.
const IFACE: &str = "tincp0";
/// The port (TCP meta connections and UDP data).
const PORT: u16 = 655;
/// RSA key size.
const KEY_BITS: &str = "2048";

/// A tinc node name for a host name (tinc allows letters, digits and `_`).
pub(super) fn node_name(host: &str) -> String {
    host.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `tinc.conf` of `name`, connecting to `connect_to` (none for the hub).
pub(super) fn tinc_conf(name: &str, connect_to: Option<&str>) -> String {
    let mut text = format!(
        "Name = {name}\nMode = router\nInterface = {IFACE}\nAddressFamily = ipv4\nPort = {PORT}\n"
    );
    if let Some(hub) = connect_to {
        let _ = writeln!(text, "ConnectTo = {hub}");
    }
    text
}

/// A member's host file before its public key is appended.
pub(super) fn host_file(underlay: Ipv4Addr, overlay: Ipv4Addr) -> String {
    format!("Address = {underlay}\nPort = {PORT}\nSubnet = {overlay}/32\n")
}

/// `tinc-up`: puts the member's address on the interface tinc made.
pub(super) fn tinc_up(overlay: Ipv4Addr) -> String {
    format!(
        "#!/bin/sh\nip addr add {overlay}/24 dev \"$INTERFACE\"\nip link set \"$INTERFACE\" up\n"
    )
}

/// Configures every member, exchanges host files, starts `tincd`; the interfaces to
/// wait for.
pub(super) fn start(plan: &Plan<'_>, peer: &mut Peer<'_>) -> anyhow::Result<Vec<(usize, String)>> {
    let hub = node_name(&plan.hub().name);
    let mut files = Vec::new();
    for (i, m) in plan.members.iter().enumerate() {
        let name = node_name(&m.name);
        run(m.host, Cmd::new("mkdir").args(["-p", &plan.path("hosts")]))?;
        let connect = (i != plan.hub).then_some(hub.as_str());
        write(
            m.host,
            &plan.path("tinc.conf"),
            &tinc_conf(&name, connect),
            false,
        )?;
        write(m.host, &plan.path("tinc-up"), &tinc_up(m.overlay), true)?;
        let own = plan.path(&format!("hosts/{name}"));
        write(m.host, &own, &host_file(m.underlay, m.overlay), false)?;
        run(
            m.host,
            Cmd::new("tincd").args(["-c", &plan.dir, &format!("-K{KEY_BITS}")]),
        )
        .with_context(|| format!("{}: tincd -K (key generation)", m.name))?;
        let text = String::from_utf8(m.host.read_file(&own)?)
            .with_context(|| format!("{}: {own} is not text", m.name))?;
        anyhow::ensure!(
            text.contains("BEGIN RSA PUBLIC KEY"),
            "{}: tincd -K wrote no public key to {own}",
            m.name
        );
        files.push((name, text));
    }
    for m in &plan.members {
        let own = node_name(&m.name);
        for (name, text) in files.iter().filter(|(n, _)| *n != own) {
            write(m.host, &plan.path(&format!("hosts/{name}")), text, false)?;
        }
    }
    let mut ready = Vec::new();
    for (i, m) in plan.members.iter().enumerate() {
        let pidfile = plan.path("tincd.pid");
        peer.spawn(
            m,
            &Cmd::new("tincd").args(["-c", &plan.dir, "-D", "-d1", "--pidfile", &pidfile]),
        )?;
        ready.push((i, IFACE.to_string()));
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_files() {
        assert_eq!(node_name("lab-0"), "lab_0");
        assert_eq!(
            tinc_conf("lab_1", Some("lab_0")),
            "Name = lab_1\nMode = router\nInterface = tincp0\nAddressFamily = ipv4\n\
             Port = 655\nConnectTo = lab_0\n"
        );
        assert!(!tinc_conf("lab_0", None).contains("ConnectTo"));
        assert_eq!(
            host_file(Ipv4Addr::new(198, 19, 1, 10), Ipv4Addr::new(10, 200, 0, 1)),
            "Address = 198.19.1.10\nPort = 655\nSubnet = 10.200.0.1/32\n"
        );
        assert!(tinc_up(Ipv4Addr::new(10, 200, 0, 1)).contains("ip addr add 10.200.0.1/24"));
    }
}
