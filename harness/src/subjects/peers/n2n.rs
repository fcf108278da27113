//! n2n v1: the hub runs the `supernode`; every member runs an `edge` on a TAP device
//! registered with it, in one community with one shared key (a fresh random key per
//! set-up). Edges send to each other directly once they learned each other's address
//! from the supernode, and through it until then (or where NATs keep them apart).

use std::net::Ipv4Addr;

use anyhow::Context;
use wow_host::Cmd;

use super::{Peer, Plan, QUICK};

/// The interface.
const IFACE: &str = "n2np0";
/// The supernode's UDP port.
const SUPERNODE_PORT: u16 = 7654;
/// Each edge's UDP port.
const EDGE_PORT: u16 = 7655;
/// The community.
const COMMUNITY: &str = "wowpeers";

/// An edge's arguments.
pub(super) fn edge_args(overlay: Ipv4Addr, supernode: Ipv4Addr) -> Vec<String> {
    [
        "-d",
        IFACE,
        "-a",
        &overlay.to_string(),
        "-s",
        "255.255.255.0",
        "-c",
        COMMUNITY,
        "-l",
        &format!("{supernode}:{SUPERNODE_PORT}"),
        "-p",
        &EDGE_PORT.to_string(),
        "-r",
    ]
    .map(String::from)
    .to_vec()
}

/// Starts the supernode on the hub and an edge on every member; the interfaces to wait
/// for.
pub(super) fn start(plan: &Plan<'_>, peer: &mut Peer<'_>) -> anyhow::Result<Vec<(usize, String)>> {
    let hub = plan.hub();
    let key = crate::nodes::random_hex(16).context("making the n2n community key")?;
    peer.spawn(
        hub,
        &Cmd::new("supernode").args(["-l", &SUPERNODE_PORT.to_string()]),
    )?;
    let listening = Cmd::new("sh").args([
        "-c",
        "for i in $(seq 100); do [ -n \"$(ss -Hlun sport = :$1)\" ] && exit 0; sleep 0.1; \
         done; exit 1",
        "sh",
        &SUPERNODE_PORT.to_string(),
    ]);
    anyhow::ensure!(
        hub.host.run(&listening, QUICK)?.success(),
        "{}: the n2n supernode is not listening on UDP {SUPERNODE_PORT} after 10 s",
        hub.name
    );
    let mut ready = Vec::new();
    for (i, m) in plan.members.iter().enumerate() {
        peer.spawn(
            m,
            &Cmd::new("edge")
                .args(edge_args(m.overlay, hub.underlay))
                .env("N2N_KEY", key.as_str()),
        )?;
        ready.push((i, IFACE.to_string()));
    }
    Ok(ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_command_line() {
        let args = edge_args(Ipv4Addr::new(10, 200, 0, 2), Ipv4Addr::new(198, 19, 1, 10));
        assert_eq!(
            args.join(" "),
            "-d n2np0 -a 10.200.0.2 -s 255.255.255.0 -c wowpeers -l 198.19.1.10:7654 -p 7655 -r"
        );
        assert!(
            !args.contains(&"-f".to_string()),
            "edge must stay in the foreground"
        );
    }
}
