//! IPOP behaviour on a simulated overlay: the hosts' frames are built as a host would
//! write them to a TAP, and the frames the nodes write back are read like a host reads.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{MessageType, OptionCode};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

use super::*;
use crate::sim::{Network, Sim};

const HOUR: Duration = Duration::from_secs(3600);

fn record(range: &str) -> NamespaceRecord {
    NamespaceRecord {
        name: "test".into(),
        range: range.parse().unwrap(),
        lease: Duration::from_secs(600),
        mtu: 1380,
        dns: None,
    }
}

/// A settled overlay of `n` nodes with namespace `ns` (record `range`) created.
fn overlay(n: usize, seed: u64, ns: NamespaceId, range: &str) -> Sim {
    let mut sim = Sim::new(seed, Network::default(), crate::overlay::Config::default());
    for _ in 0..n {
        sim.add_node();
    }
    let boot: Vec<_> = (0..2.min(n)).map(|i| sim.node(i).transport).collect();
    for i in 0..n {
        sim.run_until(sim.at(Duration::from_millis(30 * i as u64)));
        sim.start(i, &boot);
    }
    sim.run_for(Duration::from_secs(8));
    let rec = record(range);
    sim.act_dht(0, |d, node, t| {
        d.create(
            t,
            node,
            &ns.record_key(),
            &ns.record_password(),
            &rec.encode(),
            HOUR,
        )
    })
    .unwrap();
    sim.run_for(Duration::from_secs(3));
    sim
}

fn mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x10, i as u8]
}

fn udp_frame(
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: 8 + payload.len(),
        hop_limit: 64,
    };
    let mut frame = vec![0u8; 14 + 20 + 8 + payload.len()];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress([0xff; 6]),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let caps = ChecksumCapabilities::default();
    let mut p = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut p, &caps);
    UdpRepr {
        src_port: ports.0,
        dst_port: ports.1,
    }
    .emit(
        &mut UdpPacket::new_unchecked(p.payload_mut()),
        &IpAddress::Ipv4(src),
        &IpAddress::Ipv4(dst),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    frame
}

fn dhcp_request(i: usize, kind: MessageType, xid: u32, requested: Option<Ipv4Addr>) -> Vec<u8> {
    let msg = dhcp::client_message(kind, xid, mac(i), requested);
    udp_frame(
        mac(i),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        (68, 67),
        &msg,
    )
}

/// The DHCP answers node `i` wrote to its TAP.
fn dhcp_answers(frames: &[(usize, Vec<u8>)], i: usize) -> Vec<dhcproto::v4::Message> {
    frames
        .iter()
        .filter(|(n, _)| *n == i)
        .filter_map(|(_, f)| {
            let eth = EthernetFrame::new_checked(&f[..]).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let udp = UdpPacket::new_checked(ip.payload()).ok()?;
            (udp.src_port() == 67).then(|| dhcp::decode_answer(udp.payload()))
        })
        .collect()
}

/// Runs DHCP for the host of node `i` to the end and returns its address.
fn lease(sim: &mut Sim, i: usize) -> Ipv4Addr {
    let xid = 1000 + i as u32;
    for _ in 0..30 {
        sim.tap_write(i, &dhcp_request(i, MessageType::Discover, xid, None));
        sim.run_for(Duration::from_secs(1));
        let frames = sim.take_tap_frames();
        if let Some(offer) = dhcp_answers(&frames, i)
            .into_iter()
            .find(|m| m.opts().msg_type() == Some(MessageType::Offer))
        {
            let ip = offer.yiaddr();
            sim.tap_write(i, &dhcp_request(i, MessageType::Request, xid, Some(ip)));
            sim.run_for(Duration::from_millis(100));
            let acks = dhcp_answers(&sim.take_tap_frames(), i);
            assert_eq!(
                acks.first().and_then(|m| m.opts().msg_type()),
                Some(MessageType::Ack),
                "node {i}"
            );
            return ip;
        }
    }
    panic!("node {i} got no offer");
}

/// IPv4 packets the host of node `i` received (the UDP payloads).
fn received(frames: &[(usize, Vec<u8>)], i: usize) -> Vec<(Ipv4Addr, Vec<u8>)> {
    frames
        .iter()
        .filter(|(n, _)| *n == i)
        .filter_map(|(_, f)| {
            let eth = EthernetFrame::new_checked(&f[..]).ok()?;
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let udp = UdpPacket::new_checked(ip.payload()).ok()?;
            (udp.dst_port() == 9000).then(|| (ip.src_addr(), udp.payload().to_vec()))
        })
        .collect()
}

#[test]
fn dhcp_gives_a_unique_address_with_the_namespace_options() {
    let ns = NamespaceId([1; 16]);
    let mut sim = overlay(20, 1, ns, "10.128.0.0/12");
    for i in [3, 7] {
        sim.enable_ipop(i, Config::new(ns));
    }
    sim.tap_write(3, &dhcp_request(3, MessageType::Discover, 77, None));
    sim.run_for(Duration::from_secs(2));
    let frames = sim.take_tap_frames();
    let offer = dhcp_answers(&frames, 3).pop().expect("an offer");
    assert_eq!(offer.xid(), 77);
    let ip = offer.yiaddr();
    assert!(record("10.128.0.0/12").range.is_assignable(ip), "{ip}");
    assert_eq!(
        offer.opts().get(OptionCode::InterfaceMtu),
        Some(&dhcproto::v4::DhcpOption::InterfaceMtu(1380))
    );
    // The address is registered: a get through any node names node 3.
    let key = ns.ip_key(ip);
    let id = sim.act_dht(11, |d, n, t| d.get(t, n, &key)).unwrap();
    sim.run_for(Duration::from_secs(2));
    let owner = sim.node(3).stack.node.address().to_string().into_bytes();
    let r = sim
        .take_dht_results()
        .into_iter()
        .find(|r| r.node == 11 && r.id == id)
        .unwrap();
    assert_eq!(r.result, Ok(crate::dht::Outcome::Values(vec![owner])));
    // A REQUEST for another address is refused; one for the offer is acknowledged.
    sim.tap_write(
        3,
        &dhcp_request(
            3,
            MessageType::Request,
            78,
            Some(Ipv4Addr::new(10, 128, 9, 9)),
        ),
    );
    sim.run_for(Duration::from_millis(50));
    let nak = dhcp_answers(&sim.take_tap_frames(), 3).pop().unwrap();
    assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
    let other = lease(&mut sim, 7);
    assert_ne!(other, ip);
    let events = sim.take_ipop_events();
    assert!(
        events
            .iter()
            .any(|(n, e)| *n == 3 && matches!(e, Event::LeaseAcquired { ip: a, .. } if *a == ip))
    );
}

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

#[test]
fn shortcuts_form_under_traffic() {
    let ns = NamespaceId([7; 16]);
    let mut sim = overlay(40, 6, ns, "10.50.0.0/24");
    // Pick two nodes that are not connected yet.
    let (x, y) = (0..40)
        .flat_map(|i| (0..40).map(move |j| (i, j)))
        .find(|&(i, j)| {
            i != j && {
                let yj = sim.node(j).stack.node.address();
                sim.node(i).stack.node.connections().all(|c| c.peer != yj)
            }
        })
        .unwrap();
    sim.enable_ipop(x, Config::new(ns));
    sim.enable_ipop(y, Config::new(ns));
    let (a, b) = (lease(&mut sim, x), lease(&mut sim, y));
    for _ in 0..20 {
        sim.tap_write(x, &udp_frame(mac(x), a, b, (1, 9000), b"busy"));
        sim.run_for(Duration::from_millis(200));
    }
    let peer = sim.node(y).stack.node.address();
    let c = sim
        .node(x)
        .stack
        .node
        .connections()
        .find(|c| c.peer == peer)
        .expect("a shortcut");
    assert!(
        c.roles.contains(crate::wire::Roles::SHORTCUT),
        "{:?}",
        c.roles
    );
}
