//! An insider attacks a secure 9-node overlay with an open IPOP namespace (needs root):
//! `wow-hostile --insider` holds the overlay secret and a key of its own, joins as a
//! member, then impersonates the other nodes, writes to their lease records with its own
//! password, and copies forged versions of those records to their replicas (see
//! harness/src/bin/wow-hostile/insider.rs). Afterwards every lease has its value, every
//! member its address and a working path to the others, every node is alive and
//! correctly connected, and the victims' counters show what they refused.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipop_api::Status;
use serde_json::Value;
use wow_experiments::tools::ping::first_reply;
use wow_harness::NetnsHost;
use wow_harness::host::{Cmd, Host};
use wow_harness::nodes::{NodeOptions, RunningNode, SECRET_FILE, install_secret, wait_for};
use wow_harness::vnet::{Kind, TAP, create_namespace, member_options, ping};
use wow_netns::{Options, RunPrefix, Testbed, Topology};

use super::{all_correctly_connected, lease_addresses, status};

const TOPOLOGY: &str = r#"
name = "adversary-insider"
[[site]]
name = "lan"
hosts = 9
nat = "none"
firewall = "open"
[[public]]
name = "public"
count = 1
"#;

/// lan-0..=3 are members of the namespace, lan-4..=7 plain nodes; lan-8 is the insider.
const MEMBERS: usize = 4;
const NODES: usize = 8;

/// Reads one counter from a status.
type Counter = fn(&Status) -> u64;

/// The counters the insider's attacks should raise, by name.
const COUNTERS: [(&str, Counter); 5] = [
    ("dht.forged", |s| s.dht.forged),
    ("stats.unsigned", |s| s.stats.unsigned),
    ("stats.bad_signature", |s| s.stats.bad_signature),
    ("dht.unverified", |s| s.dht.unverified),
    ("dht.refused_replicas", |s| s.dht.refused_replicas),
];

/// `from` (the member at `ips[0]`) reaches every other member's address across the
/// overlay: a first reply within 20 s (Brunet-ARP and the mapping's DHT read come
/// first), then 3 pings of 3.
fn reach_the_others(from: &NetnsHost, ips: &[Ipv4Addr]) {
    for ip in &ips[1..] {
        first_reply(from, *ip, Duration::from_secs(20))
            .unwrap()
            .unwrap_or_else(|| panic!("{} never reached {ip}", from.name()));
        let rtts = ping(from, *ip, 3, Duration::from_millis(200)).unwrap();
        assert_eq!(rtts.len(), 3, "{} -> {ip}: {rtts:?}", from.name());
    }
}

#[test]
fn netns_an_insider_with_the_secret_cannot_impersonate_forge_leases_or_alter_records() {
    let bin = super::node::node_binary();
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
    let secret = wow_harness::nodes::new_secret().unwrap();
    for h in std::iter::once(&public).chain(&hosts) {
        install_secret(h, &secret).unwrap();
    }
    let mut nodes =
        vec![RunningNode::start(&public, &bin, &NodeOptions::default().secure()).unwrap()];
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        wow_harness::nodes::status(&public, &bin).ok()
    })
    .expect("seed node up");
    let ns = create_namespace(&public, &bin, "10.232.0.0/24", "60s", Kind::Open(None)).unwrap();
    for (i, h) in hosts[..NODES].iter().enumerate() {
        let opts = if i < MEMBERS {
            member_options(&public, &ns)
        } else {
            NodeOptions::joining(&public)
        };
        nodes.push(RunningNode::start(h, &bin, &opts.secure()).unwrap());
    }
    let (dhcp, ips) = lease_addresses(&hosts[..MEMBERS]);
    let overlay: Vec<&NetnsHost> = std::iter::once(&public).chain(&hosts[..NODES]).collect();
    wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        all_correctly_connected(&overlay, &bin)
    })
    .expect("9 nodes correctly connected before the attack");
    reach_the_others(&hosts[0], &ips);
    let before: Vec<Status> = overlay.iter().map(|h| status(h, &bin)).collect();

    let insider = &hosts[NODES];
    let mut cmd = Cmd::new(env!("CARGO_BIN_EXE_wow-hostile")).args([
        "--insider",
        "--overlay-secret",
        SECRET_FILE,
        "--listen",
        &format!("{}:{}", insider.addresses()[0], ipop_api::DEFAULT_PORT),
        "--bootstrap",
        &format!("{}:{}", public.addresses()[0], ipop_api::DEFAULT_PORT),
        "--namespace",
        &ns,
    ]);
    for s in &before {
        cmd = cmd.args(["--victim", &wow_harness::nodes::address(s).unwrap()]);
    }
    for ip in &ips {
        cmd = cmd.args(["--lease-ip", &ip.to_string()]);
    }
    let out = insider
        .run(&cmd, Duration::from_secs(150))
        .expect("insider ran");
    assert!(out.success(), "insider failed: {}", out.stderr_text());
    let report: Value =
        serde_json::from_str(out.stdout_text().trim()).expect("insider's JSON report");
    eprintln!("insider: {report}");

    // Every node alive and correctly connected (the insider has gone).
    for n in &mut nodes {
        assert!(n.is_running(), "{} died", n.host);
    }
    wait_for(Duration::from_secs(60), Duration::from_millis(500), || {
        all_correctly_connected(&overlay, &bin)
    })
    .expect("every node correctly connected after the attack");
    // No write with the insider's password took, and every lease kept its value.
    for w in report["writes"].as_array().expect("writes") {
        let r = w["result"].as_str().unwrap();
        assert!(
            r == "BadPassword" || r == "KeyExists",
            "a write by the insider was not refused: {w}"
        );
    }
    for l in report["leases"].as_array().expect("leases") {
        assert_eq!(l["found_before"], true, "{l}");
        assert_eq!(l["intact"], true, "a lease record changed: {l}");
        assert!(l["certified_copies_read"].as_u64() > Some(0), "{l}");
    }
    // Every member kept its address, and reaches the others across the overlay.
    for (h, ip) in hosts[..MEMBERS].iter().zip(&ips) {
        let now = wow_experiments::tools::dhcp::address_of(h, TAP);
        assert_eq!(now, Some(*ip), "{} lost its lease", h.name());
    }
    reach_the_others(&hosts[0], &ips);
    // The victims' counters say what they refused.
    let after: Vec<Status> = overlay.iter().map(|h| status(h, &bin)).collect();
    for (name, counter) in COUNTERS {
        let each: Vec<u64> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| counter(a).saturating_sub(counter(b)))
            .collect();
        eprintln!("{name} per node: {each:?}");
        assert!(each.iter().sum::<u64>() > 0, "no node counted {name}");
    }
    for mut c in dhcp {
        let _ = c.stop(Duration::from_secs(1));
    }
    for n in &mut nodes {
        let _ = n.stop(Duration::from_secs(2));
    }
}
