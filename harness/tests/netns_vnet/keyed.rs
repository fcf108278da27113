//! A keyed namespace without secure edges: its packets are sealed end to end (a capture
//! on the underlay shows none of a known payload), a node that knows only its identifier
//! gets no address in it, and a key for another namespace is refused at start.

use std::time::Duration;

use wow_harness::host::{Cmd, Host};
use wow_harness::nodes::{
    CONTROL_SOCKET, NAMESPACE_KEY_FILE, NodeOptions, RunningNode, install_namespace_key, wait_for,
};
use wow_harness::vnet::{DhcpClient, Kind, TAP, create_namespace, member_options, start_dhcp};
use wow_harness::vnet::{address_of, wait_address};

#[test]
fn netns_keyed_namespace_seals_packets_and_keeps_outsiders_out() {
    let bin = super::node::node_binary();
    let (_bed, [public, a, b, outsider]) = super::secure::four_hosts();
    let key = "3c".repeat(32);
    for h in [&public, &a, &b] {
        install_namespace_key(h, &key).unwrap();
    }
    let mut nodes = vec![RunningNode::start(&public, &bin, &NodeOptions::default()).unwrap()];
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        wow_harness::nodes::status(&public, &bin).ok()
    })
    .expect("seed node up");
    let ns = create_namespace(&public, &bin, "10.78.0.0/24", "1h", Kind::Keyed).expect("keyed");

    // A key for another namespace is a configuration error, said at start.
    install_namespace_key(&outsider, &"3d".repeat(32)).unwrap();
    let wrong = outsider
        .run(
            &Cmd::new(bin.display().to_string()).args([
                "--namespace",
                &ns,
                "--namespace-key",
                NAMESPACE_KEY_FILE,
            ]),
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(!wrong.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains(&format!("not for {ns}")),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    for h in [&a, &b] {
        let opts = member_options(&public, &ns).keyed();
        nodes.push(RunningNode::start(h, &bin, &opts).unwrap());
    }
    // The outsider knows the identifier but not the key.
    nodes.push(RunningNode::start(&outsider, &bin, &member_options(&public, &ns)).unwrap());
    let mut clients = Vec::new();
    for h in [&a, &b, &outsider] {
        wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
            super::World::tap_ready(h)
        })
        .expect("TAP");
        clients.push(start_dhcp(DhcpClient::Dhclient, h, TAP).unwrap());
    }
    let _ = wait_address(&a, TAP, Duration::from_secs(60)).expect("a's address");
    let ip_b = wait_address(&b, TAP, Duration::from_secs(60)).expect("b's address");

    let (ping, leaked) = super::secure::ping_through_capture(&a, ip_b);
    assert!(ping, "ping inside the keyed namespace");
    assert!(!leaked, "the ping payload crossed the underlay in clear");

    let status = wow_harness::nodes::status(&a, &bin).unwrap();
    let ipop = status.ipop.expect("a's status has its virtual network");
    assert!(ipop.keyed, "{ipop:?}");
    assert!(ipop.offload, "the TAP runs without offloads: {ipop:?}");
    assert_bulk_tcp_arrives_intact(&a, &b, ip_b);
    assert_eq!(
        ipop.record.map(|r| r.range).as_deref(),
        Some("10.78.0.0/24")
    );
    let out = wow_harness::nodes::status(&outsider, &bin).unwrap();
    let ipop = out
        .ipop
        .expect("the outsider's status has its virtual network");
    assert!(!ipop.keyed);
    assert!(ipop.record.is_none(), "{ipop:?}");
    assert_eq!(
        address_of(&outsider, TAP),
        None,
        "the outsider got no address"
    );

    // The record: shown to a key holder, not found by identifier.
    let show = |args: &[&str]| {
        let cmd = Cmd::new(bin.display().to_string())
            .args(["namespace", "show", "--socket", CONTROL_SOCKET])
            .args(args.iter().copied());
        a.check(&cmd, Duration::from_secs(20))
            .unwrap()
            .stdout_text()
    };
    assert!(show(&["--key-file", NAMESPACE_KEY_FILE]).contains("range=10.78.0.0/24"));
    // The creator keeps the namespace, the member is in it: `namespace list` says so.
    let list = |h: &dyn Host| {
        let cmd = Cmd::new(bin.display().to_string()).args([
            "namespace",
            "list",
            "--socket",
            CONTROL_SOCKET,
        ]);
        h.check(&cmd, Duration::from_secs(20))
            .unwrap()
            .stdout_text()
    };
    assert_eq!(
        list(&public),
        format!("{ns} keyed kept \"\" 10.78.0.0/24\n")
    );
    assert_eq!(list(&a), format!("{ns} keyed member \"\" 10.78.0.0/24\n"));
    assert!(show(&[&ns]).contains("no such namespace"));

    for mut c in clients {
        let _ = c.stop(Duration::from_secs(1));
    }
    for n in &mut nodes {
        let _ = n.stop(Duration::from_secs(2));
    }
}

/// 16 MiB of random bytes sent over TCP from `a` to `b` (at `ip_b`) in the keyed
/// namespace arrive byte for byte: super-frames cut into segments on `a` (TSO), and
/// segments merged again on `b`, whose kernel trusts the merged frames' checksums.
/// (busybox's `nc` listens; bash's `/dev/tcp` sends, and closes only once all is written.)
pub(super) fn assert_bulk_tcp_arrives_intact(a: &dyn Host, b: &dyn Host, ip_b: std::net::Ipv4Addr) {
    let (sent, got) = ("/run/offload-sent", "/run/offload-got");
    let sh = |h: &dyn Host, script: &str| {
        h.check(
            &Cmd::new("bash").args(["-c", script]),
            Duration::from_secs(60),
        )
        .unwrap()
        .stdout_text()
    };
    sh(a, &format!("head -c 16777216 /dev/urandom > {sent}"));
    let script = format!("exec busybox nc -l -p 5599 > {got}");
    let mut server = b.spawn(&Cmd::new("sh").args(["-c", &script])).unwrap();
    wait_for(Duration::from_secs(10), Duration::from_millis(50), || {
        sh(b, "ss -Hltn 'sport = :5599'")
            .contains("5599")
            .then_some(())
    })
    .expect("nc listens");
    sh(a, &format!("cat {sent} > /dev/tcp/{ip_b}/5599"));
    wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
        server.try_wait().ok().flatten()
    })
    .expect("nc ends with the connection");
    let digest = |h: &dyn Host, path: &str| sh(h, &format!("sha256sum < {path}"));
    assert_eq!(digest(a, sent), digest(b, got), "the file arrived altered");
}
