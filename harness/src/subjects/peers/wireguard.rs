//! WireGuard in userspace: `wireguard-go` (or `boringtun-cli`, which speaks the same
//! UAPI) on every member, configured with `wg setconf`. Every member lists every other
//! as a peer; an endpoint is given where the underlay lets the packets through
//! unsolicited (a NATed host is reached once it has sent first: WireGuard roams to
//! the address a packet came from), with a keepalive so NAT bindings stay open.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::Context;
use wow_experiments::SubjectKind;
use wow_host::Cmd;

use super::{Peer, Plan, QUICK, run, write};

/// The interface.
const IFACE: &str = "wgp0";
/// The UDP port every member listens on.
pub(super) const PORT: u16 = 51820;
/// Interface MTU: 1500 less WireGuard's 80 bytes of IPv4 overhead.
const MTU: &str = "1420";
/// Seconds between keepalives towards a peer behind a NAT.
const KEEPALIVE_S: u32 = 25;

/// A peer entry of a member's configuration.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct WgPeer {
    pub(super) public_key: String,
    pub(super) overlay: Ipv4Addr,
    pub(super) endpoint: Option<SocketAddrV4>,
}

/// A `wg setconf` file.
pub(super) fn config(private_key: &str, port: u16, peers: &[WgPeer]) -> String {
    let mut text = format!("[Interface]\nPrivateKey = {private_key}\nListenPort = {port}\n");
    for p in peers {
        let _ = write!(
            text,
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}/32\n",
            p.public_key, p.overlay
        );
        if let Some(endpoint) = p.endpoint {
            let _ = write!(
                text,
                "Endpoint = {endpoint}\nPersistentKeepalive = {KEEPALIVE_S}\n"
            );
        }
    }
    text
}

/// Starts a daemon on every member and configures it; the interfaces to wait for.
pub(super) fn start(plan: &Plan<'_>, peer: &mut Peer<'_>) -> anyhow::Result<Vec<(usize, String)>> {
    let mut keys = Vec::new();
    for m in &plan.members {
        let private = run(m.host, Cmd::new("wg").arg("genkey"))
            .with_context(|| format!("{}: wg genkey", m.name))?
            .trim()
            .to_string();
        let public = run(
            m.host,
            Cmd::new("wg").arg("pubkey").stdin(format!("{private}\n")),
        )
        .with_context(|| format!("{}: wg pubkey", m.name))?
        .trim()
        .to_string();
        keys.push((private, public));
    }
    let mut ready = Vec::new();
    for (i, m) in plan.members.iter().enumerate() {
        let daemon = match plan.kind {
            SubjectKind::Boringtun => {
                Cmd::new("boringtun-cli").args(["-f", "--disable-drop-privileges", IFACE])
            }
            _ => Cmd::new("wireguard-go")
                .args(["-f", IFACE])
                .env("WG_PROCESS_FOREGROUND", "1"),
        };
        peer.spawn(m, &daemon)?;
        let socket = format!("/var/run/wireguard/{IFACE}.sock");
        let waited = m.host.run(
            &Cmd::new("sh").args([
                "-c",
                "for i in $(seq 100); do [ -S \"$1\" ] && exit 0; sleep 0.1; done; exit 1",
                "sh",
                &socket,
            ]),
            QUICK,
        )?;
        anyhow::ensure!(
            waited.success(),
            "{}: {} made no UAPI socket {socket} within 10 s",
            m.name,
            plan.kind
        );
        let peers: Vec<WgPeer> = plan
            .members
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(j, other)| WgPeer {
                public_key: keys[j].1.clone(),
                overlay: other.overlay,
                endpoint: plan
                    .reaches(m, other, PORT)
                    .then(|| SocketAddrV4::new(other.underlay, PORT)),
            })
            .collect();
        let file = plan.path("wg.conf");
        write(m.host, &file, &config(&keys[i].0, PORT, &peers), false)?;
        let address = format!("{}/24", m.overlay);
        for args in [
            vec!["wg", "setconf", IFACE, file.as_str()],
            vec!["ip", "link", "set", IFACE, "mtu", MTU],
            vec!["ip", "addr", "add", address.as_str(), "dev", IFACE],
            vec!["ip", "link", "set", IFACE, "up"],
        ] {
            run(m.host, Cmd::new(args[0]).args(args[1..].iter().copied()))
                .with_context(|| format!("{}: configuring {IFACE}", m.name))?;
        }
        ready.push((i, IFACE.to_string()));
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_get_an_endpoint_and_keepalive_only_where_reachable() {
        let text = config(
            "cHJpdmF0ZQ==",
            PORT,
            &[
                WgPeer {
                    public_key: "YQ==".into(),
                    overlay: Ipv4Addr::new(10, 200, 0, 2),
                    endpoint: Some(SocketAddrV4::new(Ipv4Addr::new(198, 19, 1, 11), PORT)),
                },
                WgPeer {
                    public_key: "Yg==".into(),
                    overlay: Ipv4Addr::new(10, 200, 0, 3),
                    endpoint: None,
                },
            ],
        );
        assert_eq!(
            text,
            "[Interface]\nPrivateKey = cHJpdmF0ZQ==\nListenPort = 51820\n\n\
             [Peer]\nPublicKey = YQ==\nAllowedIPs = 10.200.0.2/32\n\
             Endpoint = 198.19.1.11:51820\nPersistentKeepalive = 25\n\n\
             [Peer]\nPublicKey = Yg==\nAllowedIPs = 10.200.0.3/32\n"
        );
    }
}
