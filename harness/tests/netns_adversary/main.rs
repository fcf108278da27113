//! A hostile process on the underlay attacks a running 20-node overlay with two IPOP
//! namespaces while a TCP stream and DHCP renewals run (needs root). Afterwards every
//! node is alive and correctly connected, memory stayed bounded, the stream finished,
//! no lease was lost, and the counters show what was dropped.
//!
//! The attacker is `wow-hostile` (harness/src/bin/wow-hostile/main.rs) on a host of the
//! same LAN, spoofing the nodes' own addresses and ports; see its doc for the attacks.
//! The `insider` module attacks a secure overlay from inside, as a member.

mod insider;
#[path = "../support/node.rs"]
mod node;
#[path = "../support/root.rs"]
mod root;

use std::net::Ipv4Addr;
use std::time::Duration;

use ipop_api::Status;
use ipop_api::status::Stats;
use serde_json::Value;
use wow_experiments::tools::iperf;
use wow_harness::NetnsHost;
use wow_harness::host::{Cmd, Host};
use wow_harness::nodes::{NodeOptions, RunningNode, wait_for};
use wow_harness::vnet::{
    DhcpClient, Kind, TAP, create_namespace, member_options, start_dhcp, wait_address,
};
use wow_netns::{Options, RunPrefix, Testbed, Topology};

const TOPOLOGY: &str = r#"
name = "adversary-lan"
[[site]]
name = "lan"
hosts = 20
nat = "none"
firewall = "open"
[[public]]
name = "public"
count = 1
"#;

/// Hosts lan-0..=3 are members of the first namespace, lan-4..=7 of the second,
/// lan-8..=18 plain overlay nodes; lan-19 is the attacker.
const MEMBERS: usize = 8;
const NODES: usize = 19;
/// The plain node that takes 100 000 datagrams alone.
const VICTIM: usize = 8;

fn status(host: &NetnsHost, bin: &std::path::Path) -> Status {
    wow_harness::nodes::status(host, bin).unwrap_or_else(|e| panic!("{}: {e}", host.name()))
}

fn all_correctly_connected(hosts: &[&NetnsHost], bin: &std::path::Path) -> Option<()> {
    hosts
        .iter()
        .all(|h| wow_harness::nodes::status(*h, bin).is_ok_and(|s| s.correctly_connected))
        .then_some(())
}

/// Starts `dhclient` on each member's TAP once it exists; returns the clients and the
/// addresses they leased.
fn lease_addresses(
    members: &[NetnsHost],
) -> (Vec<Box<dyn wow_harness::host::Process>>, Vec<Ipv4Addr>) {
    let mut dhcp = Vec::new();
    for h in members {
        wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
            wow_experiments::tools::link_exists(h, TAP).then_some(())
        })
        .expect("TAP");
        dhcp.push(start_dhcp(DhcpClient::Dhclient, h, TAP).unwrap());
    }
    let ips = members
        .iter()
        .map(|h| wait_address(h, TAP, Duration::from_secs(60)).unwrap())
        .collect();
    (dhcp, ips)
}

fn rss(s: &Status) -> f64 {
    s.rss_mib.expect("rss_mib in status")
}

/// Runs the attacker on `host`; returns its report.
fn attack(host: &NetnsHost, targets: &[String], args: &[&str]) -> Value {
    let mut cmd = Cmd::new(env!("CARGO_BIN_EXE_wow-hostile")).args(args.iter().copied());
    for t in targets {
        cmd = cmd.args(["--target", t]);
    }
    let out = host
        .run(&cmd, Duration::from_secs(300))
        .expect("attacker ran");
    assert!(out.success(), "attacker failed: {}", out.stderr_text());
    serde_json::from_str(out.stdout_text().trim()).expect("attacker's JSON report")
}

#[test]
fn netns_a_hostile_peer_crashes_floods_and_bloats_nothing() {
    let bin = node::node_binary();
    let topology = Topology::parse(TOPOLOGY, "test").unwrap_or_else(|e| panic!("{e}"));
    let options = Options {
        prefix: RunPrefix::unique(),
        emulator: None,
    };
    let bed = Testbed::up(&topology, &options).expect("testbed");
    let public = NetnsHost::new(&bed, "public-0").unwrap();
    let hosts: Vec<NetnsHost> = (0..=NODES)
        .map(|i| NetnsHost::new(&bed, &format!("lan-{i}")).unwrap())
        .collect();
    let mut nodes = vec![RunningNode::start(&public, &bin, &NodeOptions::default()).unwrap()];
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        wow_harness::nodes::status(&public, &bin).ok()
    })
    .expect("seed node up");
    // The shortest leases allowed (60 s: dhclient renews after 30 s), so that renewals
    // happen during the attack.
    let ns = [
        create_namespace(&public, &bin, "10.230.0.0/24", "60s", Kind::Open(None)).unwrap(),
        create_namespace(&public, &bin, "10.231.0.0/24", "60s", Kind::Open(None)).unwrap(),
    ];
    for (i, h) in hosts[..NODES].iter().enumerate() {
        let opts = if i < MEMBERS {
            member_options(&public, &ns[i / 4])
        } else {
            NodeOptions::joining(&public)
        };
        nodes.push(RunningNode::start(h, &bin, &opts).unwrap());
    }
    let (dhcp, ips) = lease_addresses(&hosts[..MEMBERS]);
    let overlay: Vec<&NetnsHost> = std::iter::once(&public).chain(&hosts[..NODES]).collect();
    wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        all_correctly_connected(&overlay, &bin)
    })
    .expect("20 nodes correctly connected before the attack");
    let targets: Vec<String> = overlay
        .iter()
        .map(|h| {
            let ip = h.addresses()[0];
            let addr = wow_harness::nodes::address(&status(h, &bin)).unwrap();
            format!("{addr}@{ip}:{}", ipop_api::DEFAULT_PORT)
        })
        .collect();
    // The victim (lan-8) first in the list: it takes 100 000 datagrams alone.
    let victim_at = 1 + VICTIM;
    let mut victim_first = targets.clone();
    victim_first.swap(0, victim_at);
    let before = status(&hosts[VICTIM], &bin);

    let server = iperf::Server::start(&hosts[1], 5201).expect("iperf3 server");
    let (stream, (flood, spread)) = std::thread::scope(|s| {
        let client = s.spawn(|| {
            let test = iperf::Test {
                address: ips[1],
                port: 5201,
                seconds: 40,
                omit: 0,
                udp_mbit: None,
                streams: 1,
            };
            test.run(&hosts[0])
        });
        std::thread::sleep(Duration::from_secs(3));
        let attacker = &hosts[NODES];
        let flood = attack(
            attacker,
            &victim_first,
            &[
                "--one-victim",
                "--datagrams",
                "100000",
                "--tcp-streams",
                "300",
            ],
        );
        let spread = attack(attacker, &targets, &["--datagrams", "60000", "--seed", "2"]);
        (client.join().expect("iperf thread"), (flood, spread))
    });
    drop(server);
    eprintln!("attacks: {flood}\n{spread}");

    // Every node alive, and correctly connected again.
    for n in &mut nodes {
        assert!(n.is_running(), "{} died", n.host);
    }
    wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        all_correctly_connected(&overlay, &bin)
    })
    .expect("every node correctly connected after the attack");
    // Memory bounded.
    let after = status(&hosts[VICTIM], &bin);
    eprintln!(
        "victim RSS before {:.1} MiB, after {:.1} MiB; stats {:?}",
        rss(&before),
        rss(&after),
        after.stats
    );
    // (Before TCP frames were read into a buffer that grows with the bytes received:
    // 6.1 -> 20.6 MiB, 64 KiB allocated per half-open stream from its length prefix.)
    assert!(
        rss(&after) < rss(&before) + 4.0,
        "the victim grew from {:.1} to {:.1} MiB",
        rss(&before),
        rss(&after)
    );
    // The TCP stream across the overlay finished.
    let m = stream.unwrap_or_else(|e| panic!("the TCP stream broke: {e}"));
    assert!(m.mbit_per_s > 0.0, "{m:?}");
    eprintln!("TCP stream during the attacks: {m:?}");
    assert!(after.stats.tcp_oversized_frames > 0, "{after:?}");
    // No lease lost: every member kept its address through the renewals.
    for (h, ip) in hosts[..MEMBERS].iter().zip(&ips) {
        let now = wow_experiments::tools::dhcp::address_of(h, TAP);
        assert_eq!(now, Some(*ip), "{} lost its lease", h.name());
    }
    // The counters say what was refused.
    type Counter = fn(&Stats) -> u64;
    let total = |counter: Counter| -> u64 {
        overlay
            .iter()
            .map(|h| counter(&status(h, &bin).stats))
            .sum()
    };
    let counters: [(&str, Counter); 5] = [
        ("malformed", |s| s.malformed),
        ("refused_relay", |s| s.refused_relay),
        ("broadcast_refused", |s| s.broadcast_refused),
        ("cookies_sent", |s| s.cookies_sent),
        ("ttl_capped", |s| s.ttl_capped),
    ];
    for (key, counter) in counters {
        assert!(total(counter) > 0, "no node counted {key}");
    }
    for mut c in dhcp {
        let _ = c.stop(Duration::from_secs(1));
    }
    for n in &mut nodes {
        let _ = n.stop(Duration::from_secs(2));
    }
}
