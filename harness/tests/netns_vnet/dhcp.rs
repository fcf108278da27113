//! Three nodes on differently NATed sites get addresses from the decentralized DHCP with
//! the real ISC dhclient and busybox udhcpc, ping each other, and move data with iperf3.

use std::time::Duration;

use serde_json::Value;
use wow_experiments::tools::ping::first_reply;
use wow_harness::host::{Cmd, Host};
use wow_harness::vnet::{DhcpClient, TAP, ping, start_dhcp, wait_address};

const TOPOLOGY: &str = r#"
name = "vnet-3site"
[[site]]
name = "home"
hosts = 1
nat = "port-restricted"
firewall = "open"
[[site]]
name = "corp"
hosts = 1
nat = "symmetric"
firewall = "open"
[[site]]
name = "campus"
hosts = 1
nat = "address-restricted"
firewall = "open"
[[public]]
name = "public"
count = 1
"#;

#[test]
fn netns_dhclient_and_udhcpc_get_addresses_across_nats_and_carry_traffic() {
    // The clients' scripts rewrite /etc/resolv.conf: each host's own copy, never the
    // machine's (which would lose its DNS).
    let resolv = std::fs::read("/etc/resolv.conf").ok();
    let (mut world, ns) = super::World::new(TOPOLOGY, "10.128.0.0/16");
    let hosts = [
        world.host("home-0"),
        world.host("corp-0"),
        world.host("campus-0"),
    ];
    for h in &hosts {
        world.member(h, &ns);
    }
    let clients = [
        DhcpClient::Dhclient,
        DhcpClient::Udhcpc,
        DhcpClient::Dhclient,
    ];
    let mut procs: Vec<_> = hosts
        .iter()
        .zip(clients)
        .map(|(h, c)| {
            wow_harness::nodes::wait_for(
                Duration::from_secs(10),
                Duration::from_millis(100),
                || super::World::tap_ready(h),
            )
            .expect("TAP device");
            start_dhcp(c, h, TAP).unwrap()
        })
        .collect();
    let ips: Vec<_> = hosts
        .iter()
        .map(|h| wait_address(h, TAP, Duration::from_secs(60)).unwrap())
        .collect();
    assert!(
        ips.iter().all(|ip| ip.octets()[..2] == [10, 128]),
        "{ips:?}"
    );
    assert_ne!(ips[0], ips[1]);
    assert_ne!(ips[1], ips[2]);
    assert_ne!(ips[0], ips[2]);
    // Every pair pings (corp is behind a symmetric NAT: home reaches it by a relay).
    for (i, h) in hosts.iter().enumerate() {
        for (j, ip) in ips.iter().enumerate() {
            if i != j {
                first_reply(h, *ip, Duration::from_secs(20))
                    .unwrap()
                    .unwrap_or_else(|| panic!("{} never reached {ip}", h.name()));
                let rtts = ping(h, *ip, 3, Duration::from_millis(200)).unwrap();
                assert_eq!(rtts.len(), 3, "{} -> {ip}: {rtts:?}", h.name());
            }
        }
    }
    // TCP over the virtual network.
    let server = hosts[1]
        .spawn(&Cmd::new("iperf3").args(["-s", "-1", "-B", &ips[1].to_string()]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = hosts[0]
        .check(
            &Cmd::new("iperf3").args(["-c", &ips[1].to_string(), "-t", "3", "-J"]),
            Duration::from_secs(30),
        )
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let bps = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap();
    eprintln!(
        "iperf3 home -> corp over the virtual network: {:.1} Mbit/s",
        bps / 1e6
    );
    assert!(bps > 1e6, "{bps}");
    let mut server = server;
    let _ = server.stop(Duration::from_secs(1));
    for p in &mut procs {
        let _ = p.stop(Duration::from_secs(1));
    }
    assert_eq!(
        std::fs::read("/etc/resolv.conf").ok(),
        resolv,
        "a DHCP client in the testbed rewrote the machine's /etc/resolv.conf"
    );
}
