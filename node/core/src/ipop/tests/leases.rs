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
