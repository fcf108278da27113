//! Keyed namespaces on a simulated overlay: members talk, the record and mappings in
//! the DHT are sealed, and neither an outsider that knows the identifier nor a node of
//! another namespace gets a packet in.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::keeper::pump;
use super::*;
use crate::dht::Outcome;

#[test]
fn members_talk_and_outsiders_read_and_inject_nothing() {
    let key = NamespaceKey::random(&mut StdRng::seed_from_u64(9));
    let ns = Namespace::keyed(&key);
    // An overlay whose only open namespace is another one; node 3 creates the keyed one.
    let mut sim = overlay(20, 12, NamespaceId([1; 16]), "10.1.0.0/24");
    sim.take_dht_results();
    let mut keeper = Keeper::new([5; 32], sim.now());
    let rec = NamespaceRecord {
        mtu: 1246,
        ..record("10.70.0.0/24")
    };
    sim.act_dht(3, |d, n, t| {
        keeper.create(t, n, d, rec.clone(), Some(ns.clone()))
    })
    .unwrap();
    let mut events = Vec::new();
    for _ in 0..10 {
        sim.run_for(Duration::from_secs(1));
        events.extend(pump(&mut sim, 3, &mut keeper));
    }
    assert!(
        matches!(events[..], [KeeperEvent::Created { id, .. }] if id == key.id()),
        "{events:?}"
    );

    for i in [4, 9] {
        sim.enable_ipop(i, Config::new(ns.clone()));
    }
    let (a, b) = (lease(&mut sim, 4), lease(&mut sim, 9));
    sim.tap_write(4, &udp_frame(mac(4), a, b, (5000, 9000), b"secret words"));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        received(&sim.take_tap_frames(), 9),
        vec![(a, b"secret words".to_vec())]
    );

    // What the DHT holds for b: sealed, naming node 9 only to a key holder.
    sim.take_dht_results();
    sim.act_dht(15, |d, n, t| d.get(t, n, &ns.ip_key(b)))
        .unwrap();
    sim.run_for(Duration::from_secs(2));
    let stored = match &sim.take_dht_results()[..] {
        [r] => match &r.result {
            Ok(Outcome::Values(v)) => v[0].clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let owner = sim.node(9).stack.node.address();
    assert_eq!(ns.owner(b, &stored), Some(owner));
    assert!(!String::from_utf8_lossy(&stored).contains(&owner.to_string()));
    assert_eq!(Namespace::open(key.id()).owner(b, &stored), None);

    // An outsider knows the identifier (it is in every packet) and sends a plain packet
    // claiming to be node 4 ... or as itself: both refused, nothing reaches the host.
    let mut forged = key.id().0.to_vec();
    forged.extend_from_slice(&udp_frame(mac(7), a, b, (1, 9000), b"injected")[14..]);
    sim.act(7, |n, t| {
        n.send_routed(t, owner, crate::wire::Mode::Exact, KIND_IP, &forged)
    })
    .unwrap();
    // A member of another keyed namespace seals with its own key: refused too.
    let other = Namespace::keyed(&NamespaceKey::random(&mut StdRng::seed_from_u64(10)));
    let mut sealed = Vec::new();
    let me = sim.node(7).stack.node.address();
    other.seal_packet(
        &mut StdRng::seed_from_u64(1),
        me,
        &forged[16..],
        &mut sealed,
    );
    sim.act(7, |n, t| {
        n.send_routed(t, owner, crate::wire::Mode::Exact, KIND_IP, &sealed)
    })
    .unwrap();
    // The unsealed kind is taken only straight over a secure edge (there are none here).
    sim.act(7, |n, t| {
        n.send_routed(t, owner, crate::wire::Mode::Exact, KIND_IP_DIRECT, &forged)
    })
    .unwrap();
    sim.run_for(Duration::from_secs(2));
    assert!(received(&sim.take_tap_frames(), 9).is_empty());
    let s = sim.node(9).stack.ipop.as_ref().unwrap().stats();
    assert_eq!((s.dropped_unauthentic, s.dropped_wrong_namespace), (2, 1));
    assert_eq!(
        s.to_overlay_direct, 0,
        "no secure edges: every packet sealed"
    );

    // And the members still talk.
    sim.tap_write(9, &udp_frame(mac(9), b, a, (9000, 9000), b"still here"));
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        received(&sim.take_tap_frames(), 4),
        vec![(b, b"still here".to_vec())]
    );
}
