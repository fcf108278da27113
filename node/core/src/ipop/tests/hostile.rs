//! Hostile input from the DHT and from DHCP clients: the node neither
//! panics nor hangs, refuses what it cannot use, and counts it.

use std::time::Duration;

use super::*;

/// An overlay of `n` nodes whose namespace `ns` has the record `bytes`, as anyone who
/// knows the namespace identifier could write it.
fn overlay_with_raw_record(n: usize, seed: u64, ns: NamespaceId, bytes: &[u8]) -> Sim {
    // The helper creates a good record for another namespace; this one gets `bytes`.
    let mut sim = overlay(n, seed, NamespaceId([0xee; 16]), "10.1.0.0/24");
    sim.act_dht(0, |d, node, t| {
        d.create(
            t,
            node,
            &ns.record_key(),
            &ns.record_password(),
            bytes,
            HOUR,
        )
    })
    .unwrap();
    sim.run_for(Duration::from_secs(3));
    sim
}

#[test]
fn fault4_a_record_with_an_endless_lease_is_refused_without_a_panic() {
    let ns = NamespaceId([0x41; 16]);
    let bad = crate::ipop::namespace::raw_record(u32::MAX, 1280, ([10, 41, 0, 0], 24), None, b"x");
    let mut sim = overlay_with_raw_record(12, 41, ns, &bad);
    sim.enable_ipop(3, Config::new(ns));
    // The host keeps asking for an address; before the fix the member took the record,
    // leased under it, and panicked in `now + lease / 2` (and again after a restart).
    for xid in 0..20 {
        sim.tap_write(3, &dhcp_request(3, MessageType::Discover, xid, None));
        sim.run_for(Duration::from_secs(1));
    }
    assert!(dhcp_answers(&sim.take_tap_frames(), 3).is_empty());
    let ipop = sim.node_ipop(3);
    assert!(ipop.record().is_none() && ipop.addresses().is_empty());
    // Refused, counted, and asked for again only every few seconds.
    let refused = ipop.stats().refused_records;
    assert!((2..=6).contains(&refused), "{refused} refusals in 20 s");
    let events = sim.take_ipop_events();
    assert!(
        events
            .iter()
            .any(|(n, e)| *n == 3
                && matches!(e, Event::NamespaceUnusable(why) if why.contains("lease"))),
        "{events:?}"
    );
    assert!(sim.node(3).stack.node.is_correctly_connected());
    // Time arithmetic with a duration from the network does not overflow either.
    let now = sim.now();
    let lease = Lease::new(None, Vec::new(), now, Duration::MAX);
    assert!(lease.renew_at >= now);
}

#[test]
fn fault5_a_full_range_refuses_a_second_client_instead_of_hanging() {
    let ns = NamespaceId([0x51; 16]);
    // A /30 has one assignable address (network, gateway, host, broadcast).
    let mut sim = overlay(12, 51, ns, "10.51.0.0/30");
    sim.enable_ipop(3, Config::new(ns));
    let first = lease_for(&mut sim, 3, mac(3));
    assert_eq!(first, Ipv4Addr::new(10, 51, 0, 2));
    // A second client behind the same node: before the fix, `acquire` looped forever
    // drawing random hosts of the range, all held, and froze the node.
    let second = [0x02, 0, 0, 0, 0x20, 1];
    for xid in 0..3 {
        sim.tap_write(
            3,
            &dhcp_request_from(second, MessageType::Discover, 900 + xid, None),
        );
        sim.run_for(Duration::from_secs(1));
    }
    let offers = dhcp_answers(&sim.take_tap_frames(), 3);
    assert!(
        offers
            .iter()
            .all(|m| m.chaddr().get(..6) != Some(&second[..])),
        "no offer for the second client"
    );
    let stats = sim.node_ipop(3).stats();
    assert_eq!(stats.dhcp_exhausted, 3);
    assert_eq!(sim.node_ipop(3).addresses(), vec![first]);
    // The node keeps working: the first client renews its address.
    sim.tap_write(
        3,
        &dhcp_request_from(mac(3), MessageType::Request, 77, Some(first)),
    );
    sim.run_for(Duration::from_millis(100));
    let ack = dhcp_answers(&sim.take_tap_frames(), 3)
        .pop()
        .expect("an answer");
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
}

#[test]
fn fault8_forged_unreachable_notices_keep_the_mapping_and_lose_no_packets() {
    let ns = NamespaceId([0x81; 16]);
    let mut sim = overlay(16, 81, ns, "10.81.0.0/24");
    let (x, y) = (3, 7);
    sim.enable_ipop(x, Config::new(ns));
    sim.enable_ipop(y, Config::new(ns));
    let (a, b) = (lease(&mut sim, x), lease(&mut sim, y));
    sim.tap_write(x, &udp_frame(mac(x), a, b, (1, 9000), b"first"));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(received(&sim.take_tap_frames(), y).len(), 1);
    let owner = sim.node(y).stack.node.address();
    let lookups = sim.node_ipop(x).stats().lookups;
    // Anyone can claim that y is unreachable (and in the same way that it no longer
    // holds b). Before the fix each notice dropped the mapping: the next packet waited
    // for a fresh DHT lookup, one per notice.
    for i in 0..20u8 {
        sim.node_ipop(x).handle_unreachable(owner);
        assert_eq!(sim.node_ipop(x).resolver_state().1, 1, "mapping kept");
        sim.tap_write(x, &udp_frame(mac(x), a, b, (1, 9000), &[i]));
        sim.run_for(Duration::from_millis(100));
    }
    sim.run_for(Duration::from_secs(1));
    let got = received(&sim.take_tap_frames(), y);
    assert_eq!(got.len(), 20, "every packet arrived");
    let again = sim.node_ipop(x).stats().lookups - lookups;
    assert!(again <= 2, "{again} lookups in 2 s of notices");
}

#[test]
fn fault8_lease_passwords_come_from_a_256_bit_seed() {
    // Before the fix the generator behind lease passwords had a 64-bit seed: seeds that
    // differ only past their first 8 bytes could not even be given.
    let now = std::time::Instant::now();
    let ns = NamespaceId([0x82; 16]);
    let mut seed = [7u8; 32];
    let first = Ipop::new(Config::new(ns), seed, now).new_password();
    seed[31] ^= 1;
    let other = Ipop::new(Config::new(ns), seed, now).new_password();
    assert_ne!(first, other, "every seed byte counts");
    seed[31] ^= 1;
    let mut same = Ipop::new(Config::new(ns), seed, now);
    assert_eq!(
        same.new_password(),
        first,
        "deterministic for the simulator"
    );
    assert_ne!(same.new_password(), first);
}

#[test]
fn fault9_a_static_address_on_the_virtual_gateway_is_refused() {
    let ns = NamespaceId([0x91; 16]);
    let mut sim = overlay(12, 91, ns, "10.91.0.0/24");
    sim.enable_ipop(5, Config::new(ns));
    // The driver hands static addresses over at start, before the record is known.
    let gateway = Ipv4Addr::new(10, 91, 0, 1);
    let fine = Ipv4Addr::new(10, 91, 0, 9);
    let now = sim.now();
    for ip in [gateway, fine] {
        sim.node_ipop(5)
            .restore_lease(now, ip, None, b"static-password".to_vec());
    }
    sim.run_for(Duration::from_secs(3));
    // Before the fix the gateway was registered and held, and peers then dropped all
    // its traffic as outside the namespace.
    assert_eq!(sim.node_ipop(5).addresses(), vec![fine]);
    assert_eq!(sim.node_ipop(5).stats().refused_addresses, 1);
    let events = sim.take_ipop_events();
    assert!(
        events.iter().any(|(n, e)| *n == 5
            && matches!(e, Event::AddressRefused { ip, reason }
                if *ip == gateway && reason.contains("is the namespace's virtual gateway"))),
        "{events:?}"
    );
    let id = sim
        .act_dht(8, |d, n, t| d.get(t, n, &ns.ip_key(gateway)))
        .unwrap();
    sim.run_for(Duration::from_secs(2));
    let r = sim
        .take_dht_results()
        .into_iter()
        .find(|r| r.node == 8 && r.id == id)
        .unwrap();
    assert_eq!(r.result, Ok(crate::dht::Outcome::Values(Vec::new())));
    // Once the record is known, a gateway handed over later is refused at once.
    let now = sim.now();
    sim.node_ipop(5)
        .restore_lease(now, gateway, None, b"static-password".to_vec());
    assert_eq!(sim.node_ipop(5).addresses(), vec![fine]);
}
