//! A 1400-byte WAN link between two members of a namespace whose TAPs have Ethernet's
//! MTU: path-MTU discovery finds the link, a DF ping too large for it is answered with
//! "fragmentation needed", a large non-DF ping arrives in fragments, and TCP moves data
//! without a black hole (SYNs carry an MSS the path takes).

use std::time::Duration;

use wow_harness::host::{Cmd, Host};
use wow_harness::nodes::wait_for;
use wow_harness::vnet::{DhcpClient, TAP, start_dhcp, wait_address};

const TOPOLOGY: &str = r#"
name = "vnet-mtu"
[[site]]
name = "lab"
hosts = 1
nat = "none"
firewall = "open"
[[site]]
name = "far"
hosts = 1
nat = "none"
firewall = "open"
[[public]]
name = "public"
count = 1
[[wan]]
site = "far"
mtu = 1400
"#;

#[test]
fn netns_a_narrow_link_gets_frag_needed_fragments_and_clamped_tcp() {
    let (mut world, _) = super::World::new(TOPOLOGY, "10.90.0.0/24");
    let create = Cmd::new(world.bin.display().to_string()).args([
        "namespace",
        "create",
        "--open",
        "--range",
        "10.91.0.0/24",
        "--lease",
        "1h",
        "--mtu",
        "1500",
        "--socket",
        wow_harness::nodes::CONTROL_SOCKET,
    ]);
    let ns = world
        .public
        .check(&create, Duration::from_secs(60))
        .unwrap();
    let ns = ns.stdout_text().trim().to_owned();
    let (lab, far) = (world.host("lab-0"), world.host("far-0"));
    for h in [&lab, &far] {
        world.member(h, &ns);
    }
    let mut clients = Vec::new();
    for h in [&lab, &far] {
        wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
            super::World::tap_ready(h)
        })
        .expect("TAP");
        clients.push(start_dhcp(DhcpClient::Udhcpc, h, TAP).unwrap());
    }
    let ip_far = wait_address(&far, TAP, Duration::from_secs(60)).unwrap();
    wait_address(&lab, TAP, Duration::from_secs(60)).unwrap();
    let link = lab
        .check(
            &Cmd::new("ip").args(["-o", "link", "show", "dev", TAP]),
            Duration::from_secs(5),
        )
        .unwrap()
        .stdout_text();
    assert!(link.contains(" mtu 1500 "), "{link}");

    // Small pings make the shortcut; its probes find the link (1400 bytes less the IP
    // and UDP headers), within the search's 16 bytes.
    let ping = |args: &[&str]| {
        let cmd = Cmd::new("ping")
            .args(["-n", "-c", "3", "-i", "0.3", "-W", "2"])
            .args(args.iter().copied())
            .arg(ip_far.to_string());
        let out = lab.run(&cmd, Duration::from_secs(30)).unwrap();
        format!(
            "{}{}",
            out.stdout_text(),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let far_address = world.nodes[1].status(&far).unwrap().address;
    let path_mtu = wait_for(Duration::from_secs(30), Duration::from_millis(500), || {
        ping(&[]);
        let s = world.nodes[0].status(&lab).ok()?;
        let c = s.connections.iter().find(|c| c.peer == far_address)?;
        c.path_mtu.filter(|m| *m >= 1372 - 16)
    })
    .expect("the edge to far-0 measured");
    assert!(path_mtu <= 1372, "path MTU {path_mtu}");

    // TCP: 16 MiB arrive intact. The hosts offer an MSS for 1500-byte packets; each
    // node lowers it in the SYN it sends on, so no segment is too large for the path.
    super::keyed::assert_bulk_tcp_arrives_intact(&lab, &far, ip_far);
    let stats = |i: usize, h: &dyn Host| world.nodes[i].status(h).unwrap().ipop.unwrap().stats;
    let (lab_stats, far_stats) = (stats(0, &lab), stats(1, &far));
    assert!(lab_stats.mss_clamped >= 1 && far_stats.mss_clamped >= 1);
    assert_eq!(lab_stats.frag_needed_sent, 0, "TCP needed no ICMP");

    // Not DF and too large: cut into fragments, answered whole.
    let cut = ping(&["-M", "dont", "-s", "1472"]);
    assert!(cut.contains(" 0% packet loss"), "{cut}");
    // DF and too large: "fragmentation needed" from the virtual network, naming what the
    // path carries (the kernel then says it itself: "message too long").
    let df = ping(&["-M", "do", "-s", "1472"]);
    let limit = usize::from(path_mtu) - ipop_core::ipop::OVERHEAD;
    assert!(
        df.contains(&format!("Frag needed and DF set (mtu = {limit})")),
        "{df}"
    );
    let lab_stats = stats(0, &lab);
    eprintln!("path MTU {path_mtu}; lab {lab_stats:?}");
    assert!(lab_stats.fragmented >= 1 && lab_stats.frag_needed_sent >= 1);
    for c in &mut clients {
        let _ = c.stop(Duration::from_secs(1));
    }
}
