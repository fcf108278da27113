//! Namespaces share one overlay but not packets (unicast, broadcast or multicast), are
//! deleted by name, and the DHT never hands out one address twice, even to many clients
//! asking at once in a small range.

use std::collections::BTreeSet;
use std::time::Duration;

use wow_experiments::tools::ping::first_reply;
use wow_harness::host::{Cmd, Host};
use wow_harness::vnet::{DhcpClient, Kind, TAP, create_namespace, ping, start_dhcp, wait_address};

fn lan(hosts: usize) -> String {
    format!(
        "name = \"vnet-lan\"\n[[site]]\nname = \"lan\"\nhosts = {hosts}\nnat = \"none\"\nfirewall = \"open\"\n\
         [[public]]\nname = \"public\"\ncount = 1\n"
    )
}

#[test]
fn netns_two_namespaces_on_one_overlay_stay_apart() {
    let (mut world, ns1) = super::World::new(&lan(4), "10.200.0.0/24");
    let ns2 = create_namespace(
        &world.public,
        &world.bin,
        "10.200.0.0/24",
        "1h",
        Kind::Open(None),
    )
    .unwrap();
    let hosts: Vec<_> = (0..4).map(|i| world.host(&format!("lan-{i}"))).collect();
    let member_of = [&ns1, &ns1, &ns2, &ns2];
    for (h, ns) in hosts.iter().zip(member_of) {
        world.member(h, ns);
    }
    let mut clients = Vec::new();
    for h in &hosts {
        wow_harness::nodes::wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            super::World::tap_ready(h)
        })
        .expect("TAP");
        clients.push(start_dhcp(DhcpClient::Dhclient, h, TAP).unwrap());
    }
    let ips: Vec<_> = hosts
        .iter()
        .map(|h| wait_address(h, TAP, Duration::from_secs(60)).unwrap())
        .collect();
    // Within a namespace: connected (the first packets wait for Brunet-ARP at both ends).
    for (from, to) in [(0, 1), (2, 3)] {
        first_reply(&hosts[from], ips[to], Duration::from_secs(20))
            .unwrap()
            .unwrap_or_else(|| panic!("lan-{from} never reached lan-{to}"));
    }
    assert_eq!(
        ping(&hosts[0], ips[1], 3, Duration::from_millis(200))
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        ping(&hosts[2], ips[3], 3, Duration::from_millis(200))
            .unwrap()
            .len(),
        3
    );
    // Across namespaces: nothing, even though the ranges are the same.
    for (from, to) in [(0, 2), (0, 3), (2, 0), (3, 1)] {
        if ips[to] != ips[from ^ 1] {
            let rtts = ping(&hosts[from], ips[to], 3, Duration::from_millis(200)).unwrap();
            assert!(
                rtts.is_empty(),
                "lan-{from} reached lan-{to} in another namespace"
            );
        }
    }
    // Multicast within a namespace: a socket that joined the group on lan-3 gets what
    // lan-2 sends to it; lan-1, in the other namespace, joined too and gets nothing.
    let receivers: Vec<_> = [(3, ips[3]), (1, ips[1])]
        .iter()
        .map(|&(i, ip)| {
            let script = format!(
                "exec timeout 6 socat -u UDP4-RECV:5400,reuseaddr,ip-add-membership=239.7.7.7:{ip} \
                 OPEN:/run/mcast-got,creat,trunc"
            );
            hosts[i]
                .spawn(&Cmd::new("sh").args(["-c", &script]))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let send = format!(
        "for i in 1 2 3; do echo hello-$i | socat -u - \
         UDP4-DATAGRAM:239.7.7.7:5400,ip-multicast-if={}; sleep 0.3; done",
        ips[2]
    );
    hosts[2]
        .check(&Cmd::new("sh").args(["-c", &send]), Duration::from_secs(10))
        .unwrap();
    for mut r in receivers {
        wow_harness::nodes::wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            r.try_wait().ok().flatten()
        })
        .expect("the receiver ends");
    }
    let got = |i: usize| {
        let cmd = Cmd::new("cat").arg("/run/mcast-got");
        hosts[i]
            .check(&cmd, Duration::from_secs(5))
            .unwrap()
            .stdout_text()
    };
    assert_eq!(got(3), "hello-1\nhello-2\nhello-3\n");
    let sender = wow_harness::nodes::status(&hosts[2], &world.bin).unwrap();
    assert_eq!(sender.ipop.map(|i| i.stats.multicasts), Some(3));
    assert_eq!(got(1), "", "lan-1 is in another namespace");
    // Deleted by its creator: no node finds the second namespace any more, and the
    // creator keeps only the first; the members of the second still talk.
    let cli = |args: &[&str]| {
        let cmd = Cmd::new(world.bin.display().to_string())
            .args(args.iter().copied())
            .args(["--socket", wow_harness::nodes::CONTROL_SOCKET]);
        world
            .public
            .check(&cmd, Duration::from_secs(30))
            .unwrap()
            .stdout_text()
    };
    assert_eq!(cli(&["namespace", "delete", &ns2]).trim(), "deleted");
    assert!(cli(&["namespace", "show", &ns2]).contains("no such namespace"));
    let kept = cli(&["namespace", "list"]);
    assert!(kept.contains(&ns1) && !kept.contains(&ns2), "{kept}");
    assert_eq!(
        ping(&hosts[2], ips[3], 3, Duration::from_millis(200))
            .unwrap()
            .len(),
        3
    );
    for c in &mut clients {
        let _ = c.stop(Duration::from_secs(1));
    }
}

#[test]
fn netns_fifty_clients_at_once_in_a_small_range_never_share_an_address() {
    const N: usize = 50;
    // A /26 holds 61 assignable addresses: collisions are certain, duplicates must not be.
    let (mut world, ns) = super::World::new(&lan(N), "10.201.0.0/26");
    let hosts: Vec<_> = (0..N).map(|i| world.host(&format!("lan-{i}"))).collect();
    for h in &hosts {
        world.member(h, &ns);
    }
    let mut clients = Vec::new();
    for h in &hosts {
        wow_harness::nodes::wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
            super::World::tap_ready(h)
        })
        .expect("TAP");
        clients.push(start_dhcp(DhcpClient::Dhclient, h, TAP).unwrap());
    }
    let ips: Vec<_> = hosts
        .iter()
        .map(|h| {
            wait_address(h, TAP, Duration::from_secs(120)).unwrap_or_else(|e| {
                let status = wow_harness::nodes::status(h, &world.bin)
                    .map_or_else(|e| e.to_string(), |s| format!("{s:?}"));
                panic!("{e:#}\nits node: {status}")
            })
        })
        .collect();
    let distinct: BTreeSet<_> = ips.iter().collect();
    assert_eq!(distinct.len(), N, "duplicate addresses: {ips:?}");
    for c in &mut clients {
        let _ = c.stop(Duration::from_secs(1));
    }
}

#[test]
fn netns_a_static_address_on_the_virtual_gateway_stops_the_node_with_the_reason() {
    let (world, ns) = super::World::new(&lan(1), "10.202.0.0/24");
    let host = world.host("lan-0");
    let mut opts = wow_harness::vnet::member_options(&world.public, &ns);
    // The range's first host is the gateway the node's own DHCP server answers as.
    opts.extra
        .extend(["--static-address".into(), "10.202.0.1".into()]);
    let mut node = wow_harness::nodes::RunningNode::start(&host, &world.bin, &opts).unwrap();
    let out =
        wow_harness::nodes::wait_for(Duration::from_secs(30), Duration::from_millis(200), || {
            node.exited()
        })
        .expect("the node stops");
    assert!(!out.success());
    let log = format!("{}{}", out.stdout_text(), out.stderr_text());
    assert!(
        log.contains("--static-address 10.202.0.1") && log.contains("virtual gateway"),
        "{out:?}"
    );
}
