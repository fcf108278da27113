//! The data path: ARP, delivery to the owner, spoofing, namespaces, broadcast,
//! moved addresses and shortcuts.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;
use crate::address::Address;

#[test]
fn packets_reach_the_owner_and_arp_stays_local() {
    let ns = NamespaceId([2; 16]);
    let mut sim = overlay(25, 2, ns, "10.10.0.0/16");
    for i in [4, 9, 20] {
        sim.enable_ipop(i, Config::new(ns));
    }
    let (a, b) = (lease(&mut sim, 4), lease(&mut sim, 9));
    // ARP for b is answered by node 4 itself, with the gateway MAC.
    let arp = super::frame::arp_reply(mac(4), a, [0xff; 6], b);
    let mut request = arp.clone();
    request[21] = 1; // operation: request
    request[22..28].copy_from_slice(&mac(4));
    request[28..32].copy_from_slice(&a.octets());
    request[38..42].copy_from_slice(&b.octets());
    sim.tap_write(4, &request);
    let frames = sim.take_tap_frames();
    assert!(
        frames
            .iter()
            .any(|(n, f)| *n == 4 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2])
    );
    assert_eq!(
        sim.node(4).stack.ipop.as_ref().unwrap().stats().arp_replies,
        1
    );
    // The first packets wait for Brunet-ARP, then all arrive.
    for k in 0..3u8 {
        sim.tap_write(4, &udp_frame(mac(4), a, b, (5000, 9000), &[k; 10]));
    }
    sim.run_for(Duration::from_secs(2));
    let got = received(&sim.take_tap_frames(), 9);
    assert_eq!(got, (0..3u8).map(|k| (a, vec![k; 10])).collect::<Vec<_>>());
    // Replies go back.
    sim.tap_write(9, &udp_frame(mac(9), b, a, (9000, 9000), b"pong"));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        received(&sim.take_tap_frames(), 4),
        vec![(b, b"pong".to_vec())]
    );
    // Non-IPv4 frames are dropped and counted.
    let mut ipv6 = udp_frame(mac(4), a, b, (1, 9000), b"x");
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    sim.tap_write(4, &ipv6);
    sim.tap_write(4, b"short");
    let s = sim.node(4).stack.ipop.as_ref().unwrap().stats();
    assert_eq!((s.dropped_non_ipv4, s.dropped_malformed), (1, 1));
}

#[test]
fn spoofed_sources_and_other_namespaces_are_dropped() {
    let (ns1, ns2) = (NamespaceId([3; 16]), NamespaceId([4; 16]));
    let mut sim = overlay(20, 3, ns1, "10.20.0.0/24");
    let rec = record("10.20.0.0/24");
    sim.act_dht(0, |d, n, t| {
        d.create(
            t,
            n,
            &ns2.record_key(),
            &ns2.record_password(),
            &rec.encode(),
            HOUR,
        )
    })
    .unwrap();
    sim.run_for(Duration::from_secs(2));
    sim.enable_ipop(5, Config::new(ns1));
    sim.enable_ipop(6, Config::new(ns1));
    sim.enable_ipop(7, Config::new(ns2));
    let (a, b, c) = (lease(&mut sim, 5), lease(&mut sim, 6), lease(&mut sim, 7));
    // The host may only send from its own address.
    sim.tap_write(5, &udp_frame(mac(5), b, a, (1, 9000), b"spoof"));
    assert_eq!(
        sim.node(5)
            .stack
            .ipop
            .as_ref()
            .unwrap()
            .stats()
            .dropped_unowned_source,
        1
    );
    // A node in the other namespace, even for an address also used in ns1, never gets it.
    sim.tap_write(5, &udp_frame(mac(5), a, c, (1, 9000), b"cross"));
    sim.run_for(Duration::from_secs(3));
    assert!(received(&sim.take_tap_frames(), 7).is_empty());
    // A node that claims an address it does not own is not believed: node 7 sends into
    // ns1 pretending to be `b` (bypassing its own host checks).
    let mut forged = ns1.0.to_vec();
    let pkt = udp_frame(mac(7), b, a, (1, 9000), b"forged");
    forged.extend_from_slice(&pkt[14..]);
    let dst = sim.node(5).stack.node.address();
    sim.act(7, |n, t| {
        n.send_routed(t, dst, crate::wire::Mode::Exact, KIND_IP, &forged)
    })
    .unwrap();
    sim.run_for(Duration::from_secs(3));
    assert!(received(&sim.take_tap_frames(), 5).is_empty());
    assert_eq!(
        sim.node(5)
            .stack
            .ipop
            .as_ref()
            .unwrap()
            .stats()
            .dropped_spoofed,
        1
    );
}

#[test]
fn broadcasts_reach_every_member() {
    let ns = NamespaceId([5; 16]);
    let mut sim = overlay(30, 4, ns, "10.30.0.0/24");
    let members = [2, 8, 15, 23, 29];
    for &i in &members {
        sim.enable_ipop(i, Config::new(ns));
    }
    let ips: Vec<Ipv4Addr> = members.iter().map(|&i| lease(&mut sim, i)).collect();
    sim.tap_write(
        2,
        &udp_frame(
            mac(2),
            ips[0],
            Ipv4Addr::new(10, 30, 0, 255),
            (1, 9000),
            b"all",
        ),
    );
    sim.run_for(Duration::from_secs(3));
    let frames = sim.take_tap_frames();
    for &i in &members[1..] {
        assert_eq!(
            received(&frames, i),
            vec![(ips[0], b"all".to_vec())],
            "member {i}"
        );
    }
    assert!(received(&frames, 2).is_empty(), "not back to the sender");
}

#[test]
fn a_moved_address_is_found_at_its_new_node() {
    let ns = NamespaceId([6; 16]);
    let mut sim = overlay(25, 5, ns, "10.40.0.0/24");
    sim.enable_ipop(3, Config::new(ns));
    sim.enable_ipop(10, Config::new(ns));
    let (a, b) = (lease(&mut sim, 3), lease(&mut sim, 10));
    let password = sim
        .take_ipop_events()
        .into_iter()
        .find_map(|(n, e)| match e {
            Event::LeaseAcquired { ip, password, .. } if n == 10 && ip == b => Some(password),
            _ => None,
        })
        .unwrap();
    sim.tap_write(3, &udp_frame(mac(3), a, b, (1, 9000), b"before"));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(received(&sim.take_tap_frames(), 10).len(), 1);
    // Node 10 dies; a new node (new P2P address) restores the lease with its password.
    sim.crash(10);
    let n = sim.add_node();
    let boot = [sim.node(0).transport];
    sim.start(n, &boot);
    sim.enable_ipop(n, Config::new(ns));
    let now = sim.now();
    sim.node_ipop(n)
        .restore_lease(now, b, Some(mac(10)), password);
    sim.run_for(Duration::from_secs(5));
    // Traffic to `b` finds the new node (the old mapping ages out, or the notice of a
    // node that does not hold it invalidates it).
    let mut arrived = false;
    for _ in 0..30 {
        sim.tap_write(3, &udp_frame(mac(3), a, b, (1, 9000), b"after"));
        sim.run_for(Duration::from_secs(1));
        if !received(&sim.take_tap_frames(), n).is_empty() {
            arrived = true;
            break;
        }
    }
    assert!(arrived, "traffic never reached the new node");
}

/// Two nodes of `sim` (of `n`) that are not connected to each other.
pub(super) fn unconnected_pair(sim: &Sim, n: usize) -> (usize, usize) {
    (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .find(|&(i, j)| {
            i != j && {
                let yj = sim.node(j).stack.node.address();
                sim.node(i).stack.node.connections().all(|c| c.peer != yj)
            }
        })
        .unwrap()
}

/// Node `x`'s connection to node `y`, with its roles.
fn connection(sim: &Sim, x: usize, y: usize) -> Option<crate::wire::Roles> {
    sim.connection(x, y).map(|c| c.roles)
}

#[test]
fn shortcuts_form_under_traffic() {
    let ns = NamespaceId([7; 16]);
    let mut sim = overlay(40, 6, ns, "10.50.0.0/24");
    let (x, y) = unconnected_pair(&sim, 40);
    sim.enable_ipop(x, Config::new(ns));
    sim.enable_ipop(y, Config::new(ns));
    let (a, b) = (lease(&mut sim, x), lease(&mut sim, y));
    for _ in 0..20 {
        sim.tap_write(x, &udp_frame(mac(x), a, b, (1, 9000), b"busy"));
        sim.run_for(Duration::from_millis(200));
    }
    let roles = connection(&sim, x, y).expect("a shortcut");
    assert!(roles.contains(crate::wire::Roles::SHORTCUT), "{roles:?}");
}

#[test]
fn idle_shortcuts_are_closed() {
    let ns = NamespaceId([8; 16]);
    let config = crate::overlay::Config {
        shortcut_idle: Duration::from_secs(12),
        ..crate::overlay::Config::default()
    };
    let grace = config.close_grace;
    let mut sim = overlay_with(40, 7, ns, &record("10.51.0.0/24"), config);
    let (x, y) = unconnected_pair(&sim, 40);
    sim.enable_ipop(x, Config::new(ns));
    sim.enable_ipop(y, Config::new(ns));
    let (a, b) = (lease(&mut sim, x), lease(&mut sim, y));
    for _ in 0..20 {
        sim.tap_write(x, &udp_frame(mac(x), a, b, (1, 9000), b"busy"));
        sim.run_for(Duration::from_millis(200));
    }
    let roles = connection(&sim, x, y).expect("a shortcut");
    assert!(roles.contains(crate::wire::Roles::SHORTCUT), "{roles:?}");
    // Traffic stops. Within the idle window the shortcut stays...
    sim.run_for(Duration::from_secs(9));
    assert!(
        connection(&sim, x, y).is_some(),
        "closed before the idle window"
    );
    // ...after it (and the close grace, and a maintenance tick) it is gone at both ends.
    sim.run_for(Duration::from_secs(3) + grace + Duration::from_secs(2));
    assert_eq!(connection(&sim, x, y), None);
    assert_eq!(connection(&sim, y, x), None);
    // Traffic still flows, over the ring again.
    sim.take_tap_frames();
    sim.tap_write(x, &udp_frame(mac(x), a, b, (1, 9000), b"later"));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(
        received(&sim.take_tap_frames(), y),
        vec![(a, b"later".to_vec())]
    );
}

#[test]
fn router_mode_serves_several_hosts_behind_one_tap() {
    let ns = NamespaceId([9; 16]);
    let mut sim = overlay(20, 8, ns, "10.52.0.0/24");
    let (x, y) = (4, 13);
    sim.enable_ipop(x, Config::new(ns));
    sim.enable_ipop(y, Config::new(ns));
    // Two VMs bridged behind x's TAP, each with its own MAC and DHCP lease.
    let (vm1, vm2) = ([0x02, 0, 0, 0, 0x30, 1], [0x02, 0, 0, 0, 0x30, 2]);
    let (a1, a2) = (lease_for(&mut sim, x, vm1), lease_for(&mut sim, x, vm2));
    assert_ne!(a1, a2);
    assert_eq!(sim.node_ipop(x).addresses().len(), 2);
    let b = lease(&mut sim, y);
    for (k, dst) in [a1, a2].into_iter().enumerate() {
        sim.tap_write(y, &udp_frame(mac(y), b, dst, (1, 9000), &[k as u8; 4]));
    }
    sim.run_for(Duration::from_secs(2));
    // Each packet is written to x's TAP for the VM that holds its address.
    let mut got: Vec<([u8; 6], Ipv4Addr, Vec<u8>)> = sim
        .take_tap_frames()
        .into_iter()
        .filter(|(n, _)| *n == x)
        .filter_map(|(_, f)| {
            let eth = EthernetFrame::new_checked(&f[..]).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let udp = UdpPacket::new_checked(ip.payload()).ok()?;
            Some((eth.dst_addr().0, ip.dst_addr(), udp.payload().to_vec()))
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![(vm1, a1, vec![0; 4]), (vm2, a2, vec![1; 4])]);
    // Both VMs answer through the one node, and may reach each other without the
    // overlay.
    let sent = sim.node_ipop(x).stats().to_overlay;
    sim.tap_write(x, &udp_frame(vm1, a1, b, (1, 9000), b"from vm1"));
    sim.tap_write(x, &udp_frame(vm2, a2, b, (1, 9000), b"from vm2"));
    sim.tap_write(x, &udp_frame(vm1, a1, a2, (1, 9000), b"next door"));
    sim.run_for(Duration::from_secs(1));
    let frames = sim.take_tap_frames();
    assert_eq!(
        received(&frames, y),
        vec![(a1, b"from vm1".to_vec()), (a2, b"from vm2".to_vec())]
    );
    assert_eq!(received(&frames, x), vec![(a1, b"next door".to_vec())]);
    assert_eq!(sim.node_ipop(x).stats().to_overlay, sent + 2);
}

#[test]
fn the_mtu_budget_matches_the_wire() {
    use crate::wire::{Message, Mode, Routed, RoutedFlags, RoutedHeader, kind};
    let mtu = max_mtu(1500);
    assert_eq!(mtu, 1286);
    let mut payload = vec![0x5a; 16 + mtu];
    let header = |kind, via| RoutedHeader {
        ttl: 64,
        hops: 1,
        mode: Mode::Exact,
        flags: RoutedFlags::default(),
        kind,
        src: Address::sha1(b"src"),
        dst: Address::sha1(b"dst"),
        via,
    };
    let emit = |header, payload: &[u8]| {
        let msg = Message::Routed(Routed { header, payload });
        let mut out = vec![0u8; msg.buffer_len()];
        let n = msg.emit(&mut out).unwrap();
        out.truncate(n);
        out
    };
    let direct = emit(header(KIND_IP, None), &payload);
    assert_eq!(direct.len(), mtu + OVERHEAD);
    let relayed = emit(header(kind::TUNNEL, Some(Address::sha1(b"relay"))), &direct);
    // A secure edge seals the relayed datagram: the whole fits a 1500-byte path exactly.
    let sealed = relayed.len() + crate::secure::DATA_OVERHEAD;
    assert_eq!(sealed + UNDERLAY_HEADERS, 1500);
    payload.push(0);
    let bigger = emit(header(KIND_IP, None), &payload);
    let secure = crate::secure::DATA_OVERHEAD;
    assert!(bigger.len() + RELAY_OVERHEAD + secure + UNDERLAY_HEADERS > 1500);
}

#[test]
fn multicast_reaches_every_member_once_and_igmp_stays_home() {
    let ns = NamespaceId([0x3c; 16]);
    let mut sim = overlay(16, 13, ns, "10.53.0.0/24");
    let members = [2, 7, 11];
    for i in members {
        sim.enable_ipop(i, Config::new(ns));
    }
    let a = lease(&mut sim, 2);
    for i in &members[1..] {
        lease(&mut sim, *i);
    }
    sim.take_tap_frames();
    let mdns = Ipv4Addr::new(224, 0, 0, 251);
    sim.tap_write(
        2,
        &udp_frame(mac(2), a, mdns, (5353, 9000), b"who is there"),
    );
    // An IGMP membership report (protocol 2) is not carried.
    let mut igmp = udp_frame(mac(2), a, Ipv4Addr::new(224, 0, 0, 22), (0, 0), b"report");
    let mut ip = Ipv4Packet::new_unchecked(&mut igmp[14..]);
    ip.set_next_header(smoltcp::wire::IpProtocol::Igmp);
    ip.fill_checksum();
    sim.tap_write(2, &igmp);
    sim.run_for(Duration::from_secs(2));
    let frames = sim.take_tap_frames();
    for i in &members[1..] {
        let got: Vec<&Vec<u8>> = frames
            .iter()
            .filter(|(n, _)| n == i)
            .map(|(_, f)| f)
            .collect();
        assert_eq!(got.len(), 1, "node {i}: {got:?}");
        assert_eq!(
            got[0][..6],
            [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb],
            "the group's MAC"
        );
        assert_eq!(received(&frames, *i), vec![(a, b"who is there".to_vec())]);
    }
    assert!(
        frames.iter().all(|(n, _)| *n != 2),
        "not back to the sender"
    );
    let s = sim.node_ipop(2).stats();
    assert_eq!((s.multicasts, s.igmp_ignored), (1, 1));
}
