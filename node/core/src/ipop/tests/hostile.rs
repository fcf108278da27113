//! Hostile input from the DHT and from DHCP clients (issue 12): the node neither
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
    let bad = format!(
        "v=1\nname=x\nrange=10.41.0.0/24\nlease_s={}\nmtu=1300\n",
        u64::MAX
    );
    let mut sim = overlay_with_raw_record(12, 41, ns, bad.as_bytes());
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
