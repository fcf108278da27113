//! Nebula: the hub is the lighthouse and the certificate authority. Each member makes
//! its own key pair (`nebula-cert keygen`); only its public key goes to the hub, which
//! signs a certificate for the member's overlay address; the member gets back that
//! certificate and the CA's. Every other member finds the others through the
//! lighthouse (a static host map gives the lighthouse's underlay address) and punches
//! holes where NATs allow it.

use std::net::Ipv4Addr;

use anyhow::Context;
use wow_host::Cmd;

use super::{Peer, Plan, run, write};

/// The interface.
const IFACE: &str = "nebp0";
/// The UDP port every member listens on.
const PORT: u16 = 4242;
/// Nebula's default tunnel MTU.
const MTU: u32 = 1300;

/// A member's `config.yml`: the lighthouse itself when `lighthouse` is none, else a
/// node that asks the lighthouse at (overlay, underlay).
pub(super) fn config(dir: &str, lighthouse: Option<(Ipv4Addr, Ipv4Addr)>) -> String {
    let (am_lighthouse, hosts, static_map) = match lighthouse {
        None => ("true", String::new(), String::new()),
        Some((overlay, underlay)) => (
            "false",
            format!("\n    - \"{overlay}\""),
            format!("\n  \"{overlay}\": [\"{underlay}:{PORT}\"]"),
        ),
    };
    format!(
        "pki:\n  ca: {dir}/ca.crt\n  cert: {dir}/host.crt\n  key: {dir}/host.key\n\
         static_host_map:{map}\n\
         lighthouse:\n  am_lighthouse: {am_lighthouse}\n  interval: 60\n  hosts:{hosts}\n\
         listen:\n  host: 0.0.0.0\n  port: {PORT}\n\
         punchy:\n  punch: true\n  respond: true\n\
         tun:\n  dev: {IFACE}\n  mtu: {MTU}\n\
         logging:\n  level: info\n\
         firewall:\n  outbound:\n    - port: any\n      proto: any\n      host: any\n  \
         inbound:\n    - port: any\n      proto: any\n      host: any\n",
        map = if static_map.is_empty() {
            " {}".to_string()
        } else {
            static_map
        },
        hosts = if hosts.is_empty() {
            " []".to_string()
        } else {
            hosts
        },
    )
}

/// Makes the CA, the members' keys and certificates, starts `nebula` everywhere (the
/// lighthouse first); the interfaces to wait for.
pub(super) fn start(plan: &Plan<'_>, peer: &mut Peer<'_>) -> anyhow::Result<Vec<(usize, String)>> {
    let hub = plan.hub();
    let (ca_crt, ca_key) = (plan.path("ca.crt"), plan.path("ca.key"));
    run(
        hub.host,
        Cmd::new("nebula-cert").args([
            "ca",
            "-name",
            "wow-peers",
            "-duration",
            "48h",
            "-out-crt",
            &ca_crt,
            "-out-key",
            &ca_key,
        ]),
    )
    .with_context(|| format!("{}: nebula-cert ca", hub.name))?;
    let ca = String::from_utf8(hub.host.read_file(&ca_crt)?).context("ca.crt is not text")?;
    for m in &plan.members {
        let (key, public) = (plan.path("host.key"), plan.path("host.pub"));
        run(
            m.host,
            Cmd::new("nebula-cert").args(["keygen", "-out-key", &key, "-out-pub", &public]),
        )
        .with_context(|| format!("{}: nebula-cert keygen", m.name))?;
        let public_key = String::from_utf8(m.host.read_file(&public)?)?;
        let (signing, signed) = (
            plan.path(&format!("{}.pub", m.name)),
            plan.path(&format!("{}.crt", m.name)),
        );
        write(hub.host, &signing, &public_key, false)?;
        run(
            hub.host,
            Cmd::new("nebula-cert").args([
                "sign",
                "-ca-crt",
                &ca_crt,
                "-ca-key",
                &ca_key,
                "-name",
                &m.name,
                "-ip",
                &format!("{}/24", m.overlay),
                "-in-pub",
                &signing,
                "-out-crt",
                &signed,
            ]),
        )
        .with_context(|| format!("{}: nebula-cert sign for {}", hub.name, m.name))?;
        let cert = String::from_utf8(hub.host.read_file(&signed)?)?;
        write(m.host, &plan.path("host.crt"), &cert, false)?;
        write(m.host, &plan.path("ca.crt"), &ca, false)?;
    }
    let mut order: Vec<usize> = (0..plan.members.len()).collect();
    order.sort_by_key(|&i| i != plan.hub);
    let mut ready = Vec::new();
    for i in order {
        let m = &plan.members[i];
        let lighthouse = (i != plan.hub).then_some((hub.overlay, hub.underlay));
        let file = plan.path("config.yml");
        write(m.host, &file, &config(&plan.dir, lighthouse), false)?;
        peer.spawn(m, &Cmd::new("nebula").args(["-config", &file]))?;
        ready.push((i, IFACE.to_string()));
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lighthouse_and_node_configurations() {
        let lh = config("/run/wow-peers/nebula", None);
        assert!(
            lh.contains("am_lighthouse: true\n  interval: 60\n  hosts: []\n"),
            "{lh}"
        );
        assert!(lh.contains("static_host_map: {}\n"), "{lh}");
        let node = config(
            "/run/wow-peers/nebula",
            Some((Ipv4Addr::new(10, 200, 0, 1), Ipv4Addr::new(198, 19, 1, 10))),
        );
        assert!(
            node.contains("static_host_map:\n  \"10.200.0.1\": [\"198.19.1.10:4242\"]\n"),
            "{node}"
        );
        assert!(node.contains("hosts:\n    - \"10.200.0.1\"\n"), "{node}");
        assert!(node.contains("tun:\n  dev: nebp0\n  mtu: 1300\n"), "{node}");
        assert!(
            node.contains("cert: /run/wow-peers/nebula/host.crt"),
            "{node}"
        );
    }
}
