//! Secure edges (an overlay secret) and a keyed namespace: members link and carry its traffic
//! sealed — a capture on the underlay shows none of a known payload — while a node with
//! another secret cannot link to anyone: it finds none of its secrets offered.

use std::time::Duration;

use ipop_api::Status;
use wow_harness::NetnsHost;
use wow_harness::host::{Cmd, Host};
use wow_harness::nodes::{
    NodeOptions, RunningNode, install_namespace_key, install_secret, wait_for,
};
use wow_harness::vnet::{DhcpClient, Kind, TAP, create_namespace, start_dhcp, wait_address};
use wow_netns::{Options, RunPrefix, Testbed, Topology};

/// A LAN of three hosts and a public seed host.
const TOPOLOGY: &str = r#"
name = "secure-lan"
[[site]]
name = "lan"
hosts = 3
nat = "none"
firewall = "open"
[[public]]
name = "public"
count = 1
"#;

/// The ICMP payload pattern the capture looks for (ping repeats it).
const PATTERN: &str = "5ec0de5ec0de5ec0de5ec0de5ec0de5e";

fn status(host: &NetnsHost, bin: &std::path::Path) -> Status {
    wow_harness::nodes::status(host, bin).unwrap_or_else(|e| panic!("{}: {e}", host.name()))
}

/// A testbed of [`TOPOLOGY`] and its hosts: the public seed's, two members' and an
/// outsider's (the testbed goes when the first value drops).
pub(super) fn four_hosts() -> (Testbed, [NetnsHost; 4]) {
    let topology = Topology::parse(TOPOLOGY, "test").unwrap();
    let bed = Testbed::up(
        &topology,
        &Options {
            prefix: RunPrefix::unique(),
            emulator: None,
        },
    )
    .expect("testbed");
    let hosts = ["public-0", "lan-0", "lan-1", "lan-2"].map(|n| NetnsHost::new(&bed, n).unwrap());
    (bed, hosts)
}

#[test]
fn netns_secure_edges_seal_traffic_and_keep_outsiders_out() {
    let bin = super::node::node_binary();
    let (_bed, [public, a, b, outsider]) = four_hosts();
    let member_secret = "11".repeat(32);
    for h in [&public, &a, &b] {
        install_secret(h, &member_secret).unwrap();
        install_namespace_key(h, &"4e".repeat(32)).unwrap();
    }
    install_secret(&outsider, &"22".repeat(32)).unwrap();

    let mut nodes =
        vec![RunningNode::start(&public, &bin, &NodeOptions::default().secure()).unwrap()];
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        wow_harness::nodes::status(&public, &bin).ok()
    })
    .expect("seed node up");
    let ns = create_namespace(&public, &bin, "10.77.0.0/24", "1h", Kind::Keyed).expect("namespace");
    for h in [&a, &b] {
        let opts = wow_harness::vnet::member_options(&public, &ns)
            .secure()
            .keyed();
        nodes.push(RunningNode::start(h, &bin, &opts).unwrap());
    }
    nodes.push(
        RunningNode::start(&outsider, &bin, &NodeOptions::joining(&public).secure()).unwrap(),
    );
    let mut clients = Vec::new();
    for h in [&a, &b] {
        wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
            super::World::tap_ready(h)
        })
        .expect("TAP");
        clients.push(start_dhcp(DhcpClient::Dhclient, h, TAP).unwrap());
    }
    let _ = wait_address(&a, TAP, Duration::from_secs(60)).expect("a's address");
    let ip_b = wait_address(&b, TAP, Duration::from_secs(60)).expect("b's address");

    let (ping, leaked) = ping_through_capture(&a, ip_b);
    assert!(ping, "ping over secure edges");
    assert!(!leaked, "the ping payload crossed the underlay in clear");
    // Once a and b have their shortcut, the edge's seal is the only one.
    let sa = status(&a, &bin).ipop.expect("a's virtual network").stats;
    assert!(sa.to_overlay_direct > 0, "{sa:?}");

    // The outsider never links: the secrets a member offers are none of its own.
    std::thread::sleep(Duration::from_secs(3));
    let out = status(&outsider, &bin);
    assert_eq!(out.connections.len(), 0, "{out:?}");
    assert!(!out.correctly_connected);
    let secure = out.secure.expect("the outsider's secure counters");
    assert_eq!(secure.handshakes_completed, 0, "{secure:?}");
    assert!(secure.no_common_secret > 0, "{secure:?}");
    let seed = status(&public, &bin)
        .secure
        .expect("the seed's secure counters");
    assert!(seed.sessions >= 2, "{seed:?}");
    for mut c in clients {
        let _ = c.stop(Duration::from_secs(1));
    }
    for n in &mut nodes {
        let _ = n.stop(Duration::from_secs(2));
    }
}

/// Pings `dst` from `a` with a known payload while capturing `a`'s underlay interface:
/// whether the pings were answered, and whether the payload appeared in the capture.
pub(super) fn ping_through_capture(a: &NetnsHost, dst: std::net::Ipv4Addr) -> (bool, bool) {
    let mut capture = a
        .spawn(&Cmd::new("tcpdump").args([
            "-i",
            "eth0",
            "-U",
            "-w",
            "/run/ipop/cap.pcap",
            "udp or tcp",
        ]))
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let ping = a
        .run(
            &Cmd::new("ping").args([
                "-c",
                "5",
                "-i",
                "0.2",
                "-W",
                "2",
                "-p",
                PATTERN,
                &dst.to_string(),
            ]),
            Duration::from_secs(20),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let _ = capture.stop(Duration::from_secs(2));
    let pcap = a.read_file("/run/ipop/cap.pcap").unwrap();
    let pattern: Vec<u8> = (0..PATTERN.len() / 2)
        .map(|i| u8::from_str_radix(&PATTERN[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(
        pcap.len() > 1000,
        "the capture saw the pings' datagrams ({} bytes)",
        pcap.len()
    );
    let leaked = pcap.windows(8).any(|w| pattern.windows(8).any(|p| p == w));
    (ping.success(), leaked)
}
