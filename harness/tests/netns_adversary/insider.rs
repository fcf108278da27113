//! An insider attacks a secure 9-node overlay with an IPOP namespace (needs root):
//! `wow-hostile --insider` holds the overlay secret and a key of its own, joins as a
//! member, then impersonates the other nodes and answers the DHT reads it forwards in its
//! own name. In an open namespace it also writes to the lease records with its own
//! password and copies forged versions of them to their replicas; in a keyed one, whose
//! key it lacks, it injects packets with made-up seals and spoofed source IPs, and looks
//! for a known payload (pinged between members meanwhile) in everything it opens (see
//! harness/src/bin/wow-hostile/insider.rs and forged.rs). Afterwards every lease has its
//! value, every member its address and a working path to the others, every node is alive
//! and correctly connected, and the victims' counters show what they refused.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipop_api::Status;
use serde_json::Value;
use wow_experiments::tools::ping::first_reply;
use wow_harness::NetnsHost;
use wow_harness::host::{Cmd, Host};
use wow_harness::nodes::{
    NodeOptions, RunningNode, SECRET_FILE, install_namespace_key, install_secret, wait_for,
};
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

/// The counters the insider's attacks on an open namespace should raise, by name.
const OPEN_COUNTERS: [(&str, Counter); 5] = [
    ("dht.forged", |s| s.dht.forged),
    ("stats.unsigned", |s| s.stats.unsigned),
    ("stats.bad_signature", |s| s.stats.bad_signature),
    ("dht.unverified", |s| s.dht.unverified),
    ("dht.refused_replicas", |s| s.dht.refused_replicas),
];

/// The counters its attacks on a keyed namespace should raise.
const KEYED_COUNTERS: [(&str, Counter); 3] = [
    ("stats.unsigned", |s| s.stats.unsigned),
    ("stats.bad_signature", |s| s.stats.bad_signature),
    ("ipop.stats.dropped_unauthentic + dropped_spoofed", |s| {
        s.ipop
            .as_ref()
            .map_or(0, |i| i.stats.dropped_unauthentic + i.stats.dropped_spoofed)
    }),
];

/// The payload members ping each other with while the insider runs (it must never see
/// it in clear in a keyed namespace).
const PATTERN: &str = "1a51de71a51de71a51de71a51de71a51";

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
    let run = attack(Kind::Open(None));
    // No write with the insider's password took, and every lease kept its value.
    for w in run.report["writes"].as_array().expect("writes") {
        let r = w["result"].as_str().unwrap();
        assert!(
            r == "BadPassword" || r == "KeyExists",
            "a write by the insider was not refused: {w}"
        );
    }
    for l in run.report["leases"].as_array().expect("leases") {
        assert_eq!(l["found_before"], true, "{l}");
        assert_eq!(l["intact"], true, "a lease record changed: {l}");
        assert!(l["certified_copies_read"].as_u64() > Some(0), "{l}");
    }
    run.counted(&OPEN_COUNTERS);
}

#[test]
fn netns_an_insider_without_a_keyed_namespaces_key_cannot_read_or_inject_into_it() {
    let run = attack(Kind::Keyed);
    let sent = &run.report["sent"];
    for attack in [
        "ip_packet_with_made_up_seal",
        "direct_packet_with_spoofed_ip",
    ] {
        assert!(sent[attack].as_u64() > Some(0), "{attack} not sent: {sent}");
    }
    let seen = &run.report["seen"];
    assert_eq!(
        seen["known_payload_in_clear"].as_u64().unwrap_or(0),
        0,
        "the insider read the members' traffic: {seen}"
    );
    run.counted(&KEYED_COUNTERS);
}

/// What an attack left to check.
struct Attacked {
    report: Value,
    before: Vec<Status>,
    after: Vec<Status>,
}

impl Attacked {
    /// Every counter of `counters` rose on some node.
    fn counted(&self, counters: &[(&str, Counter)]) {
        for (name, counter) in counters {
            let each: Vec<u64> = self
                .before
                .iter()
                .zip(&self.after)
                .map(|(b, a)| counter(a).saturating_sub(counter(b)))
                .collect();
            eprintln!("{name} per node: {each:?}");
            assert!(each.iter().sum::<u64>() > 0, "no node counted {name}");
        }
    }
}

/// Builds the overlay with a namespace of `kind`, lets the insider loose, and checks
/// that every node and member came through: alive, correctly connected, each member
/// with its address and a path to the others.
fn attack(kind: Kind) -> Attacked {
    let bin = super::node::node_binary();
    let keyed = matches!(kind, Kind::Keyed);
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
    if keyed {
        let key = wow_harness::nodes::random_hex(32).unwrap();
        for h in std::iter::once(&public).chain(&hosts[..MEMBERS]) {
            install_namespace_key(h, &key).unwrap();
        }
    }
    let mut nodes =
        vec![RunningNode::start(&public, &bin, &NodeOptions::default().secure()).unwrap()];
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        wow_harness::nodes::status(&public, &bin).ok()
    })
    .expect("seed node up");
    let ns = create_namespace(&public, &bin, "10.232.0.0/24", "60s", kind).unwrap();
    for (i, h) in hosts[..NODES].iter().enumerate() {
        let opts = match (i < MEMBERS, keyed) {
            (true, true) => member_options(&public, &ns).keyed(),
            (true, false) => member_options(&public, &ns),
            (false, _) => NodeOptions::joining(&public),
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
        "--pattern",
        PATTERN,
    ]);
    if keyed {
        cmd = cmd.arg("--keyed");
    }
    // The namespace's members first, in the order of their addresses.
    let mut victims: Vec<&Status> = before[1..=MEMBERS].iter().collect();
    victims.push(&before[0]);
    victims.extend(&before[MEMBERS + 1..]);
    for s in victims {
        cmd = cmd.args(["--victim", &wow_harness::nodes::address(s).unwrap()]);
    }
    for ip in &ips {
        cmd = cmd.args(["--lease-ip", &ip.to_string()]);
    }
    // Members talk while the insider listens.
    let mut talk = hosts[0]
        .spawn(&Cmd::new("ping").args([
            "-i",
            "0.2",
            "-c",
            "300",
            "-p",
            PATTERN,
            &ips[1].to_string(),
        ]))
        .unwrap();
    let out = insider
        .run(&cmd, Duration::from_secs(150))
        .expect("insider ran");
    let _ = talk.stop(Duration::from_secs(1));
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
    // Every member kept its address, and reaches the others across the overlay.
    for (h, ip) in hosts[..MEMBERS].iter().zip(&ips) {
        let now = wow_experiments::tools::dhcp::address_of(h, TAP);
        assert_eq!(now, Some(*ip), "{} lost its lease", h.name());
    }
    reach_the_others(&hosts[0], &ips);
    let after: Vec<Status> = overlay.iter().map(|h| status(h, &bin)).collect();
    for mut c in dhcp {
        let _ = c.stop(Duration::from_secs(1));
    }
    for n in &mut nodes {
        let _ = n.stop(Duration::from_secs(2));
    }
    Attacked {
        report,
        before,
        after,
    }
}
