//! Rotating the overlay secret on a running overlay: the members take a new secret
//! (preferred, the old one kept) and then retire the old one, each step an
//! `ipop-node secret reload`. Their edges with each other move to the new secret and
//! stay up throughout; a node that only holds the old secret is shut out.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ipop_api::Status;
use ipop_api::control::SecretsLoaded;
use wow_harness::NetnsHost;
use wow_harness::host::{Cmd, Host};
use wow_harness::nodes::{
    CONTROL_SOCKET, NodeOptions, RunningNode, install_secret, json_output, wait_for,
};

fn status(host: &NetnsHost, bin: &Path) -> Status {
    wow_harness::nodes::status(host, bin).unwrap_or_else(|e| panic!("{}: {e}", host.name()))
}

/// `ipop-node secret reload` on `host`.
fn reload(host: &NetnsHost, bin: &Path) -> SecretsLoaded {
    let cmd = Cmd::new(bin.display().to_string()).args([
        "secret",
        "reload",
        "--json",
        "--socket",
        CONTROL_SOCKET,
    ]);
    let out = host.check(&cmd, Duration::from_secs(5)).unwrap();
    json_output(host, &cmd, &out.stdout).unwrap()
}

/// The secret id of each direct edge, by peer address.
fn edges(s: &Status) -> Vec<(String, Option<String>)> {
    s.connections
        .iter()
        .map(|c| (c.peer.clone(), c.secret.clone()))
        .collect()
}

#[test]
fn netns_an_overlay_rotates_its_secret_and_shuts_out_the_old_one() {
    let bin = super::node::node_binary();
    let (_bed, [public, a, b, stale]) = super::secure::four_hosts();
    let (old, new) = ("31".repeat(32), "32".repeat(32));
    let (old_id, new_id) = (
        ipop_core::text::to_hex(&ipop_core::secure::secret_id(&[0x31; 32])),
        ipop_core::text::to_hex(&ipop_core::secure::secret_id(&[0x32; 32])),
    );
    for h in [&public, &a, &b, &stale] {
        install_secret(h, &old).unwrap();
    }
    let mut nodes =
        vec![RunningNode::start(&public, &bin, &NodeOptions::default().secure()).unwrap()];
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        wow_harness::nodes::status(&public, &bin).ok()
    })
    .expect("seed node up");
    for h in [&a, &b, &stale] {
        let opts = NodeOptions::joining(&public).secure();
        nodes.push(RunningNode::start(h, &bin, &opts).unwrap());
    }
    let members = [&public, &a, &b];
    let all = [&public, &a, &b, &stale];
    wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
        all.iter()
            .all(|h| status(h, &bin).correctly_connected)
            .then_some(())
    })
    .expect("all four correctly connected");
    let stale_address = status(&stale, &bin).address;

    // Step 1: the new secret first, the old one kept. Nothing closes; the members'
    // edges with each other rekey onto the new secret at their next keepalive, the
    // stale node's stay on the old one.
    for h in members {
        install_secret(h, &format!("{new}\n{old}")).unwrap();
        let loaded = reload(h, &bin);
        assert_eq!(loaded.secrets, [new_id.clone(), old_id.clone()]);
        assert_eq!(loaded.closed, 0, "{}", h.name());
    }
    let moved = wait_for(Duration::from_secs(30), Duration::from_millis(250), || {
        let views: Vec<_> = members.iter().map(|h| edges(&status(h, &bin))).collect();
        views
            .iter()
            .flatten()
            .all(|(peer, secret)| {
                let want = if *peer == stale_address {
                    &old_id
                } else {
                    &new_id
                };
                secret.as_ref() == Some(want)
            })
            .then_some(views)
    })
    .expect("the members' edges moved to the new secret");

    // Step 2: the old secret retired. Only the edges with the stale node close.
    for (&h, view) in members.iter().zip(&moved) {
        install_secret(h, &new).unwrap();
        let loaded = reload(h, &bin);
        assert_eq!(loaded.secrets, std::slice::from_ref(&new_id));
        let with_stale = view.iter().any(|(p, _)| *p == stale_address);
        assert_eq!(loaded.closed, u64::from(with_stale), "{}", h.name());
    }
    // Its sessions go unanswered; when it handshakes again, none of its secrets is
    // offered.
    let out = wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        let s = status(&stale, &bin);
        let shut_out = s.secure.as_ref().is_some_and(|x| x.no_common_secret > 0);
        (s.connections.is_empty() && shut_out).then_some(s)
    })
    .expect("the stale node loses every edge and finds no common secret");
    assert!(!out.correctly_connected);

    // The members kept every edge they had with each other, on the new secret.
    for (h, before) in members.iter().zip(&moved) {
        let s = status(h, &bin);
        let now: BTreeSet<_> = edges(&s).into_iter().collect();
        for (peer, _) in before.iter().filter(|(p, _)| *p != stale_address) {
            assert!(
                now.contains(&(peer.clone(), Some(new_id.clone()))),
                "{}: lost {peer}: {now:?}",
                h.name()
            );
        }
        assert!(s.correctly_connected, "{}", h.name());
        let sec = s.secure.expect("secure counters");
        assert_eq!(sec.secrets, std::slice::from_ref(&new_id));
    }
    for n in &mut nodes {
        let _ = n.stop(Duration::from_secs(2));
    }
}
