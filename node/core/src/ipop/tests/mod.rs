//! IPOP behaviour on a simulated overlay: the hosts' frames are built as a host would
//! write them to a TAP, and the frames the nodes write back are read like a host reads.
//! This module holds the shared helpers; the tests are grouped by topic below.

mod datapath;
mod hash;
mod hostile;
mod keeper;
mod keyed;
mod leases;
mod malformed;
mod mtu;

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{MessageType, OptionCode};
use smoltcp::wire::{EthernetFrame, Ipv4Packet, UdpPacket};

use super::*;
use crate::sim::{Network, Sim, host_udp_frame as udp_frame};

const HOUR: Duration = Duration::from_secs(3600);

fn record(range: &str) -> NamespaceRecord {
    NamespaceRecord {
        name: "test".into(),
        range: range.parse().unwrap(),
        lease: Duration::from_secs(600),
        mtu: 1280,
        dns: None,
    }
}

/// A settled overlay of `n` nodes with namespace `ns` (record `range`) created.
fn overlay(n: usize, seed: u64, ns: NamespaceId, range: &str) -> Sim {
    overlay_with(
        n,
        seed,
        ns,
        &record(range),
        crate::overlay::Config::default(),
    )
}

/// A settled overlay of `n` nodes running `config`, with namespace `ns` created as `rec`.
fn overlay_with(
    n: usize,
    seed: u64,
    ns: NamespaceId,
    rec: &NamespaceRecord,
    config: crate::overlay::Config,
) -> Sim {
    let mut sim = Sim::new(seed, Network::default(), config);
    for _ in 0..n {
        sim.add_node();
    }
    let boot: Vec<_> = (0..2.min(n)).map(|i| sim.node(i).transport).collect();
    for i in 0..n {
        sim.run_until(sim.at(Duration::from_millis(30 * i as u64)));
        sim.start(i, &boot);
    }
    sim.run_for(Duration::from_secs(8));
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

fn dhcp_request(i: usize, kind: MessageType, xid: u32, requested: Option<Ipv4Addr>) -> Vec<u8> {
    dhcp_request_from(mac(i), kind, xid, requested)
}

/// A DHCP message from the client with MAC `mac`.
fn dhcp_request_from(
    mac: [u8; 6],
    kind: MessageType,
    xid: u32,
    requested: Option<Ipv4Addr>,
) -> Vec<u8> {
    let msg = dhcp::client_message(kind, xid, mac, requested);
    udp_frame(
        mac,
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
    lease_for(sim, i, mac(i))
}

/// Runs DHCP for the host with MAC `mac` behind node `i` and returns its address.
fn lease_for(sim: &mut Sim, i: usize, mac: [u8; 6]) -> Ipv4Addr {
    let xid = 1000 + i as u32 + u32::from(mac[5]) * 0x10000;
    let to_me = |m: &dhcproto::v4::Message| m.chaddr().get(..6) == Some(&mac[..]);
    for _ in 0..30 {
        sim.tap_write(i, &dhcp_request_from(mac, MessageType::Discover, xid, None));
        sim.run_for(Duration::from_secs(1));
        let frames = sim.take_tap_frames();
        if let Some(offer) = dhcp_answers(&frames, i)
            .into_iter()
            .find(|m| to_me(m) && m.opts().msg_type() == Some(MessageType::Offer))
        {
            let ip = offer.yiaddr();
            sim.tap_write(
                i,
                &dhcp_request_from(mac, MessageType::Request, xid, Some(ip)),
            );
            sim.run_for(Duration::from_millis(100));
            let acks = dhcp_answers(&sim.take_tap_frames(), i);
            assert_eq!(
                acks.iter()
                    .find(|m| to_me(m))
                    .and_then(|m| m.opts().msg_type()),
                Some(MessageType::Ack),
                "node {i}, host {mac:02x?}"
            );
            return ip;
        }
    }
    panic!("node {i}, host {mac:02x?} got no offer");
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
