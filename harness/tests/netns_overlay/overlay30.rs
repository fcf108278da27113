//! Thirty nodes behind three NATs (port-restricted, symmetric, address-restricted) and
//! one public bootstrap node form one overlay: every node correctly connected, the ring
//! consistent; then after graceful leaves and `kill -9` crashes the ring repairs itself.

use std::path::Path;
use std::time::Duration;

use ipop_api::Status;
use ipop_api::status::Transport;
use wow_harness::NetnsHost;
use wow_harness::host::{Cmd, Host};
use wow_harness::nodes::{CONTROL_SOCKET, NodeOptions, RunningNode, status, wait_for};
use wow_netns::{Options, RunPrefix, Testbed, Topology};

/// Statuses of the live nodes, or None if any did not answer.
fn statuses(hosts: &[NetnsHost], live: &[bool], bin: &Path) -> Option<Vec<Status>> {
    hosts
        .iter()
        .zip(live)
        .filter(|(_, l)| **l)
        .map(|(h, _)| status(h, bin).ok())
        .collect()
}

/// Nodes that are not correctly connected or whose ring neighbours are wrong.
fn ring_problems(statuses: &[Status]) -> Vec<String> {
    let mut addrs: Vec<&str> = statuses.iter().map(|s| s.address.as_str()).collect();
    addrs.sort_unstable();
    let n = addrs.len();
    let mut problems = Vec::new();
    for s in statuses {
        let me = s.address.as_str();
        let k = addrs.iter().position(|a| *a == me).unwrap_or(0);
        let (left, right) = (addrs[(k + n - 1) % n], addrs[(k + 1) % n]);
        let ok = s.correctly_connected
            && s.ring.left.as_deref() == Some(left)
            && s.ring.right.as_deref() == Some(right);
        if !ok {
            problems.push(format!(
                "{}: correct={} ring={:?}",
                &me[..8.min(me.len())],
                s.correctly_connected,
                s.ring
            ));
        }
    }
    problems
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn netns_thirty_nodes_across_three_nats_form_and_repair_an_overlay() {
    let bin = super::node::node_binary();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/nat-3site-30.toml");
    let topology = Topology::load(&path).expect("topology");
    let options = Options {
        prefix: RunPrefix::unique(),
        emulator: Some(super::emulator::emulator()),
    };
    let bed = Testbed::up(&topology, &options).expect("testbed");
    let public = NetnsHost::new(&bed, "public-0").unwrap();
    let mut seed = RunningNode::start(&public, &bin, &NodeOptions::default()).unwrap();
    wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        seed.status(&public).ok()
    })
    .expect("bootstrap node up");
    let names: Vec<String> = ["home", "corp", "campus"]
        .iter()
        .flat_map(|site| (0..10).map(move |i| format!("{site}-{i}")))
        .collect();
    let mut hosts: Vec<NetnsHost> = vec![public.clone()];
    hosts.extend(names.iter().map(|n| NetnsHost::new(&bed, n).unwrap()));
    let join = NodeOptions::joining(&public);
    let mut nodes: Vec<RunningNode> = hosts[1..]
        .iter()
        .map(|h| RunningNode::start(h, &bin, &join).unwrap())
        .collect();
    let mut live = vec![true; hosts.len()];

    let formed = wait_for(Duration::from_secs(90), Duration::from_secs(1), || {
        let s = statuses(&hosts, &live, &bin)?;
        ring_problems(&s).is_empty().then_some(s)
    });
    let Some(formed) = formed else {
        let s = statuses(&hosts, &live, &bin).unwrap_or_default();
        panic!("the overlay did not form: {:#?}", ring_problems(&s));
    };
    let mut join_s: Vec<f64> = formed[1..]
        .iter()
        .map(|s| s.connected_after_s.expect("connected"))
        .collect();
    join_s.sort_by(f64::total_cmp);
    let relays = formed
        .iter()
        .flat_map(|s| &s.connections)
        .filter(|c| c.transport == Transport::Relay)
        .count();
    eprintln!(
        "30 nodes correctly connected: from process start p50 {:.2} s, p99 {:.2} s, max {:.2} s; {relays} relayed connection ends",
        percentile(&join_s, 50.0),
        percentile(&join_s, 99.0),
        join_s.last().unwrap()
    );

    operators_write_renew_and_delete_a_key(&hosts[3], &hosts[22], &bin);

    // Three graceful leaves and three crashes, spread over the sites.
    for (i, graceful) in [
        (1, true),
        (12, true),
        (25, true),
        (5, false),
        (17, false),
        (28, false),
    ] {
        if graceful {
            nodes[i - 1].stop(Duration::from_secs(3)).unwrap();
        } else {
            nodes[i - 1].kill().unwrap();
        }
        live[i] = false;
    }
    let repaired = std::time::Instant::now();
    let ok = wait_for(Duration::from_secs(90), Duration::from_secs(1), || {
        let s = statuses(&hosts, &live, &bin)?;
        ring_problems(&s).is_empty().then_some(())
    });
    if ok.is_none() {
        let s = statuses(&hosts, &live, &bin).unwrap_or_default();
        panic!("the ring did not repair: {:#?}", ring_problems(&s));
    }
    eprintln!(
        "ring repaired {:.1} s after 3 leaves and 3 crashes",
        repaired.elapsed().as_secs_f64()
    );

    for n in &mut nodes {
        let _ = n.stop(Duration::from_secs(2));
    }
    let _ = seed.stop(Duration::from_secs(2));
    drop(bed);
}

/// `ipop-node dht` on one node behind one NAT writes, renews, hands over and deletes a
/// key that a node behind another NAT reads; a wrong password is refused.
fn operators_write_renew_and_delete_a_key(writer: &NetnsHost, reader: &NetnsHost, bin: &Path) {
    let dht = |h: &NetnsHost, args: &[&str]| {
        let cmd = Cmd::new(bin.display().to_string())
            .arg("dht")
            .args(args.iter().copied())
            .args(["--socket", CONTROL_SOCKET]);
        let out = h.run(&cmd, Duration::from_secs(30)).unwrap();
        (
            out.success(),
            out.stdout_text() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let key = "operators/a-key";
    let get = || dht(reader, &["get", key]).1;
    assert_eq!(
        dht(writer, &["create", key, "one", "--password", "p"]),
        (true, "{\"ok\":\"created\"}\n".into())
    );
    assert!(get().contains("[\"one\"]"), "{}", get());
    let renew = [
        "recreate",
        key,
        "two",
        "--password",
        "p",
        "--new-password",
        "q",
    ];
    assert!(dht(writer, &renew).1.contains("recreated"));
    assert!(get().contains("[\"two\"]"), "{}", get());
    let (ok, said) = dht(writer, &["delete", key, "--password", "p"]);
    assert!(!ok && said.contains("wrong password"), "{said}");
    assert!(
        dht(writer, &["delete", key, "--password", "q"])
            .1
            .contains("deleted")
    );
    assert!(get().contains("[]"), "{}", get());
}
