//! Decentralized DHCP: addresses taken, renewed and released through the DHT.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;

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
        Some(&dhcproto::v4::DhcpOption::InterfaceMtu(1280))
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

/// The values a get of `key` through node `via` returns.
fn get(sim: &mut Sim, via: usize, key: &[u8]) -> Result<crate::dht::Outcome, crate::dht::DhtError> {
    let id = sim.act_dht(via, |d, n, t| d.get(t, n, key)).unwrap();
    sim.run_for(Duration::from_secs(2));
    sim.take_dht_results()
        .into_iter()
        .find(|r| r.node == via && r.id == id)
        .expect("the get finished")
        .result
}

fn owner_value(sim: &Sim, i: usize) -> crate::dht::Outcome {
    crate::dht::Outcome::Values(vec![
        sim.node(i).stack.node.address().to_string().into_bytes(),
    ])
}

#[test]
fn release_deletes_the_mapping() {
    let ns = NamespaceId([0x21; 16]);
    let mut sim = overlay(20, 31, ns, "10.70.0.0/24");
    sim.enable_ipop(3, Config::new(ns));
    let ip = lease(&mut sim, 3);
    let key = ns.ip_key(ip);
    assert_eq!(get(&mut sim, 11, &key), Ok(owner_value(&sim, 3)));
    sim.take_ipop_events();
    sim.tap_write(3, &dhcp_request(3, MessageType::Release, 5, None));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        get(&mut sim, 11, &key),
        Ok(crate::dht::Outcome::Values(Vec::new()))
    );
    assert_eq!(sim.take_ipop_events(), vec![(3, Event::LeaseLost { ip })]);
    assert!(sim.node_ipop(3).addresses().is_empty());
    // The host may no longer send from it.
    sim.tap_write(3, &udp_frame(mac(3), ip, ip, (1, 9000), b"gone"));
    assert_eq!(sim.node_ipop(3).stats().dropped_unowned_source, 1);
}

#[test]
fn leases_are_renewed_at_half_their_time() {
    let ns = NamespaceId([0x22; 16]);
    let lease_time = Duration::from_secs(60);
    let rec = NamespaceRecord {
        lease: lease_time,
        ..record("10.71.0.0/24")
    };
    let mut sim = overlay_with(20, 32, ns, &rec, crate::overlay::Config::default());
    sim.enable_ipop(3, Config::new(ns));
    let ip = lease(&mut sim, 3);
    let key = ns.ip_key(ip);
    // Sub-keys whose replicas hold the key with more than `left` to live.
    let fresh = |sim: &Sim, left: Duration| {
        let now = sim.now();
        let mut subs: Vec<u8> = sim
            .nodes()
            .iter()
            .flat_map(|n| n.stack.dht.records(now))
            .filter(|r| r.key == key && !r.deleted && r.ttl_left > left)
            .map(|r| r.sub)
            .collect();
        subs.sort_unstable();
        subs.dedup();
        subs.len()
    };
    let subs = fresh(&sim, Duration::ZERO);
    assert!(subs >= 3, "{subs} sub-keys stored");
    // Past half the lease the key was re-created: it lives a full lease from then on,
    // where the first create would have 15 s left.
    sim.run_for(lease_time / 2 + Duration::from_secs(15));
    assert!(
        fresh(&sim, lease_time / 2) > subs / 2,
        "no majority renewed"
    );
    // Long after the first lease ran out the address still resolves to its node.
    sim.run_for(lease_time * 2);
    assert_eq!(get(&mut sim, 11, &key), Ok(owner_value(&sim, 3)));
    assert!(
        !sim.take_ipop_events()
            .iter()
            .any(|(_, e)| matches!(e, Event::LeaseLost { .. }))
    );
}

#[test]
fn inform_gets_an_ack_without_an_address() {
    let ns = NamespaceId([0x23; 16]);
    let mut sim = overlay(12, 33, ns, "10.72.0.0/24");
    sim.enable_ipop(5, Config::new(ns));
    sim.run_for(Duration::from_secs(2)); // the node reads the namespace record
    let configured = Ipv4Addr::new(10, 72, 0, 40);
    let mut inform = dhcproto::v4::Message::new_with_id(
        9,
        configured,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac(5),
    );
    inform
        .opts_mut()
        .insert(dhcproto::v4::DhcpOption::MessageType(MessageType::Inform));
    let mut bytes = Vec::new();
    dhcproto::Encodable::encode(&inform, &mut dhcproto::Encoder::new(&mut bytes)).unwrap();
    let frame = udp_frame(mac(5), configured, Ipv4Addr::BROADCAST, (68, 67), &bytes);
    sim.tap_write(5, &frame);
    sim.run_for(Duration::from_millis(50));
    let ack = dhcp_answers(&sim.take_tap_frames(), 5)
        .pop()
        .expect("an answer");
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(
        (ack.xid(), ack.yiaddr(), ack.ciaddr()),
        (9, Ipv4Addr::UNSPECIFIED, configured)
    );
    // The network's options, but no lease.
    assert_eq!(
        ack.opts().get(OptionCode::InterfaceMtu),
        Some(&dhcproto::v4::DhcpOption::InterfaceMtu(1280))
    );
    assert!(ack.opts().get(OptionCode::SubnetMask).is_some());
    assert!(ack.opts().get(OptionCode::AddressLeaseTime).is_none());
    assert!(sim.node_ipop(5).addresses().is_empty());
    assert!(sim.take_ipop_events().is_empty());
}

#[test]
fn static_addresses_are_registered_and_reachable() {
    let ns = NamespaceId([0x24; 16]);
    let mut sim = overlay(20, 34, ns, "10.73.0.0/24");
    sim.enable_ipop(5, Config::new(ns));
    sim.enable_ipop(8, Config::new(ns));
    // Node 5 holds a configured address: no DHCP, the driver hands it over at start.
    let fixed = Ipv4Addr::new(10, 73, 0, 10);
    let now = sim.now();
    sim.node_ipop(5)
        .restore_lease(now, fixed, None, b"static-password".to_vec());
    sim.run_for(Duration::from_secs(3));
    assert_eq!(
        get(&mut sim, 12, &ns.ip_key(fixed)),
        Ok(owner_value(&sim, 5))
    );
    // A DHCP host elsewhere reaches it, and it answers.
    let b = lease(&mut sim, 8);
    sim.tap_write(8, &udp_frame(mac(8), b, fixed, (1, 9000), b"hello"));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        received(&sim.take_tap_frames(), 5),
        vec![(b, b"hello".to_vec())]
    );
    sim.tap_write(5, &udp_frame(mac(5), fixed, b, (1, 9000), b"hi"));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        received(&sim.take_tap_frames(), 8),
        vec![(fixed, b"hi".to_vec())]
    );
}
