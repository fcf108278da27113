//! Whatever a host writes to its TAP and whatever a node sends into a namespace, IPOP
//! does not panic, and frames that are not well-formed Ethernet carrying ARP or IPv4
//! are dropped and counted as such.

use std::net::Ipv4Addr;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config as Cases, TestRunner};

use super::frame::{Dropped, HostFrame};
use super::*;

const A: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(10, 80, 0, 5);
/// The node holding A.
const X: usize = 2;
/// The node holding B.
const Y: usize = 5;

/// Real frames a host writes: DHCP, ARP, unicast and broadcast IPv4.
fn real_frames() -> Vec<Vec<u8>> {
    let mut arp = frame::arp_reply(mac(X), A, [0xff; 6], B);
    arp[21] = 1; // a request
    vec![
        dhcp_request(X, MessageType::Discover, 7, None),
        dhcp_request(X, MessageType::Request, 7, Some(A)),
        arp,
        udp_frame(mac(X), A, B, (5000, 9000), b"a datagram for b"),
        udp_frame(
            mac(X),
            A,
            Ipv4Addr::new(10, 80, 0, 255),
            (5000, 9000),
            b"all",
        ),
    ]
}

/// Random bytes, random bytes behind an Ethernet header of a likely type, and real
/// frames with bytes changed and tails cut off.
fn host_frame() -> impl Strategy<Value = Vec<u8>> {
    let typed = (
        prop_oneof![Just(0x0800u16), Just(0x0806), Just(0x86dd), any::<u16>()],
        vec(any::<u8>(), 0..700),
    )
        .prop_map(|(ethertype, rest)| {
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&mac(X));
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.extend(rest);
            f
        });
    let damaged = (
        select(real_frames()),
        vec((any::<Index>(), any::<u8>()), 0..4),
        proptest::option::of(any::<Index>()),
    )
        .prop_map(|(mut f, edits, cut)| {
            for (at, b) in edits {
                let i = at.index(f.len());
                f[i] = b;
            }
            if let Some(cut) = cut {
                f.truncate(cut.index(f.len() + 1));
            }
            f
        });
    prop_oneof![vec(any::<u8>(), 0..1600), typed, damaged]
}

/// What a node might send into the namespace: random bytes, or an IPv4 packet to B
/// from any address of the namespace (owned by the sender or not).
fn overlay_body() -> impl Strategy<Value = Vec<u8>> {
    let packet = (any::<u8>(), vec(any::<u8>(), 0..64)).prop_map(|(host, payload)| {
        let src = Ipv4Addr::new(10, 80, 0, host);
        udp_frame(mac(1), src, B, (1, 9000), &payload)[frame::ETHERNET_HEADER..].to_vec()
    });
    prop_oneof![vec(any::<u8>(), 0..200), packet]
}

proptest! {
    #![proptest_config(Cases::with_cases(2000))]

    #[test]
    fn classify_never_panics_and_never_reads_past_the_frame(f in host_frame()) {
        match frame::classify(&f) {
            Ok(HostFrame::Ipv4 { packet, .. }) => {
                prop_assert!(packet.len() + frame::ETHERNET_HEADER <= f.len());
                prop_assert!(smoltcp::wire::Ipv4Packet::new_checked(packet).is_ok());
            }
            Ok(HostFrame::Dhcp { message, .. }) => {
                prop_assert!(message.len() + frame::ETHERNET_HEADER <= f.len());
            }
            Ok(HostFrame::ArpRequest { .. } | HostFrame::ArpOther) | Err(_) => {}
        }
    }
}

/// Nodes X and Y hold A and B (as static addresses) in one namespace.
fn two_hosts() -> Sim {
    let ns = NamespaceId([0x80; 16]);
    let mut sim = overlay(8, 40, ns, "10.80.0.0/24");
    for (i, ip) in [(X, A), (Y, B)] {
        sim.enable_ipop(i, Config::new(ns));
        let now = sim.now();
        sim.node_ipop(i)
            .restore_lease(now, ip, Some(mac(i)), vec![i as u8; 8]);
    }
    sim.run_for(Duration::from_secs(2));
    sim
}

#[test]
fn garbage_on_the_tap_is_dropped_and_counted() {
    let mut runner = TestRunner::new(Cases::with_cases(24));
    let inputs = (vec(host_frame(), 1..48), vec(overlay_body(), 0..8));
    runner
        .run(&inputs, |(frames, payloads)| {
            let mut sim = two_hosts();
            for f in &frames {
                let before = sim.node_ipop(X).stats();
                sim.tap_write(X, f);
                let after = sim.node_ipop(X).stats();
                prop_assert_eq!(after.tap_frames, before.tap_frames + 1);
                let (malformed, non_ipv4) = match frame::classify(f) {
                    Err(Dropped::Malformed) => (1, 0),
                    Err(Dropped::NotIpv4) => (0, 1),
                    Ok(HostFrame::Dhcp { message, .. }) => {
                        (u64::from(dhcp::parse(message).is_none()), 0)
                    }
                    Ok(_) => (0, 0),
                };
                prop_assert_eq!(
                    after.dropped_malformed,
                    before.dropped_malformed + malformed,
                    "{:02x?}",
                    f
                );
                prop_assert_eq!(after.dropped_non_ipv4, before.dropped_non_ipv4 + non_ipv4);
            }
            // Nodes send Y anything at all as IP packets and notices of the namespace.
            let ns = sim.node_ipop(Y).namespace();
            let dst = sim.node(Y).stack.node.address();
            for (k, p) in payloads.iter().enumerate() {
                let mut body = ns.0.to_vec();
                body.extend_from_slice(p);
                let kind = if k % 3 == 2 { KIND_NOTICE } else { KIND_IP };
                sim.act(k % 8, |n, t| {
                    let _ = n.send_routed(t, dst, crate::wire::Mode::Exact, kind, &body);
                });
            }
            sim.run_for(Duration::from_secs(3));
            Ok(())
        })
        .unwrap();
}
