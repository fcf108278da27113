//! What an attacker or a broken peer can send: truncated and corrupted messages,
//! forgeries, floods of message 1 from spoofed transports, and more transports than
//! the layer has room for. Nothing panics, everything is counted, memory stays bounded.

use std::time::Duration;

use super::test_net::{Fate, Flight, Net, PSK, deliver_all, established, identity, secure, t};
use super::*;
use crate::secure::wire::{NOISE1_LEN, kind};

fn with_bytes(f: &Flight, bytes: Vec<u8>) -> Flight {
    Flight { bytes, ..f.clone() }
}

#[test]
fn every_prefix_of_every_message_is_dropped_and_the_handshake_survives() {
    let mut net = Net::pair();
    net.seal(0, 1, b"payload");
    let mut seen = Vec::new();
    loop {
        let batch = net.outgoing();
        if batch.is_empty() {
            break;
        }
        for f in batch {
            for cut in 0..f.bytes.len() {
                let r = net.deliver(&with_bytes(&f, f.bytes[..cut].to_vec()));
                assert_eq!(r, Opened::Dropped, "kind {} cut at {cut}", f.kind());
            }
            if f.kind() != kind::HANDSHAKE3 {
                // Corrupt Noise bytes or ciphertext (a failed message 3 would end the
                // handshake by design: see below).
                let body = if f.kind() == kind::HANDSHAKE2 { 12 } else { 8 };
                for i in body..f.bytes.len() {
                    let mut b = f.bytes.clone();
                    b[i] ^= 0x20;
                    assert_eq!(net.deliver(&with_bytes(&f, b)), Opened::Dropped);
                }
            }
            seen.push(f.kind());
            net.deliver(&f);
        }
    }
    assert!([1, 2, 3, 4].iter().all(|k| seen.contains(k)), "{seen:?}");
    assert_eq!(net.received(1), [b"payload".to_vec()]);
    assert_eq!(net.peer(0, 1), Some(net.address(1)));
    assert_eq!(net.peer(1, 0), Some(net.address(0)));
    let (a, b) = (net.nodes[0].0.stats(), net.nodes[1].0.stats());
    assert!(a.malformed > 0 && b.malformed > 0 && a.bad_psk_or_mac > 0 && b.bad_psk_or_mac > 0);
    assert_eq!((a.handshakes_completed, b.handshakes_completed), (1, 1));
}

#[test]
fn a_forged_message_3_ends_the_handshake_and_the_initiator_recovers() {
    let mut net = Net::pair();
    net.seal(0, 1, b"x");
    let mut fate = |f: &Flight| {
        if f.kind() == kind::HANDSHAKE3 {
            Fate::Hold
        } else {
            Fate::Deliver
        }
    };
    for _ in 0..2 {
        for f in net.outgoing() {
            net.deliver(&f);
        }
    }
    let batch = net.outgoing();
    let msg3 = batch.iter().find(|f| f.kind() == kind::HANDSHAKE3).unwrap();
    let mut forged = msg3.bytes.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(net.deliver(&with_bytes(msg3, forged)), Opened::Dropped);
    assert_eq!(net.nodes[1].0.stats().bad_psk_or_mac, 1);
    for f in &batch {
        net.deliver(f);
    }
    assert_eq!(net.peer(1, 0), None);
    // The initiator stays unconfirmed, gives up, and the next plaintext starts anew.
    net.advance(Duration::from_secs(20), &mut fate);
    assert_eq!(net.nodes[0].0.stats().handshakes_failed, 1);
    net.seal(0, 1, b"again");
    net.advance(Duration::from_secs(1), &mut deliver_all);
    assert_eq!(net.received(1), [b"again".to_vec()]);
}

#[test]
fn a_message_1_flood_from_spoofed_transports_stays_bounded() {
    let mut config = Config::new(PSK);
    config.max_sessions = 64;
    let mut victim = Secure::new(config, identity(1), 1);
    let mut attacker = secure(2, PSK);
    let mut now = std::time::Instant::now();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for i in 0..2000u32 {
        // A fresh valid message 1 each time, from a fresh (spoofed) transport.
        let spoofed = TransportAddr::udp(([10, (i >> 8) as u8, i as u8, 1], 9).into());
        attacker.seal(now, spoofed, b"");
        assert!(attacker.poll_transmit(&mut buf).is_some());
        attacker.forget(spoofed);
        assert_eq!(victim.open(now, spoofed, &buf, &mut out), Opened::Consumed);
        now += Duration::from_micros(100);
        assert!(victim.responders.len() <= 16);
        assert!(victim.indexes.len() <= 16);
        assert!(victim.outbox.len() <= 1024 + 4 * 64);
    }
    let s = victim.stats();
    assert_eq!(s.handshakes_failed, 2000 - 16, "evicted responder states");
    assert!(s.transmit_dropped > 0, "nobody polled the answers");
    assert!(
        victim.peers.is_empty(),
        "no session, no queue for unauthenticated senders"
    );
    while victim.poll_transmit(&mut buf).is_some() {}
    // A real member still gets through.
    let mut net = Net::new(vec![(victim, t(1)), (secure(3, PSK), t(2))]);
    net.now = now;
    net.seal(1, 0, b"member");
    net.shuttle(&mut deliver_all);
    assert_eq!(net.received(0), [b"member".to_vec()]);
    // The flood's half-open states expire.
    net.advance(Duration::from_secs(20), &mut deliver_all);
    assert!(net.nodes[0].0.responders.is_empty());
}

#[test]
fn sessions_are_bounded_and_the_least_recently_used_idle_one_is_evicted() {
    let mut config = Config::new(PSK);
    config.max_sessions = 2;
    let hub = Secure::new(config, identity(10), 10);
    let mut net = Net::new(vec![
        (hub, t(1)),
        (secure(2, PSK), t(2)),
        (secure(3, PSK), t(3)),
        (secure(4, PSK), t(4)),
    ]);
    for i in [1, 2] {
        net.seal(i, 0, b"hi");
        net.shuttle(&mut deliver_all);
        net.now += Duration::from_secs(1);
    }
    net.seal(2, 0, b"2 is more recent");
    net.shuttle(&mut deliver_all);
    // A third member: the hub evicts its least recently used idle session (node 1).
    net.seal(3, 0, b"third");
    net.shuttle(&mut deliver_all);
    assert_eq!(net.received(0).len(), 4);
    let s = net.nodes[0].0.stats();
    assert_eq!((s.evicted, s.sessions), (1, 2), "{s:?}");
    assert_eq!(net.peer(0, 1), None);
    assert_eq!(net.peer(0, 2), Some(net.address(2)));
    assert_eq!(net.peer(0, 3), Some(net.address(3)));
    // Busy transports (handshakes under way, plaintext queued) are not evicted.
    let hub = &mut net.nodes[0].0;
    let far = |i: u8| TransportAddr::udp(([203, 0, 113, i], 1).into());
    hub.seal(net.now, far(1), b"a");
    hub.seal(net.now, far(2), b"b");
    hub.seal(net.now, far(3), b"c");
    let s = hub.stats();
    assert_eq!((s.evicted, s.refused), (3, 1), "{s:?}");
    assert_eq!(hub.peers.len(), 2);
    // A message 1 from a newcomer is refused without DH work while nothing is idle.
    net.nodes[1].0.forget(t(1));
    net.seal(1, 0, b"");
    let batch = net.outgoing();
    let msg1 = batch.iter().find(|f| f.from == t(2)).unwrap();
    assert_eq!(msg1.kind(), kind::HANDSHAKE1);
    assert_eq!(net.deliver(msg1), Opened::Dropped);
    assert_eq!(net.nodes[0].0.stats().refused, 2);
    assert!(net.nodes[0].0.responders.is_empty());
}

#[test]
fn queued_plaintext_is_bounded_per_peer_and_in_total() {
    let mut config = Config::new(PSK);
    config.max_queued_per_peer = 4;
    config.max_queued_total = 6;
    let mut s = Secure::new(config, identity(1), 1);
    let now = std::time::Instant::now();
    for i in 0..10u8 {
        s.seal(now, t(2), &[i]);
    }
    assert_eq!(s.peers[&t(2)].queue.len(), 4);
    assert_eq!(s.peers[&t(2)].queue[0], [6]);
    for i in 0..10u8 {
        s.seal(now, t(3), &[i]);
    }
    assert_eq!(s.queued, 6);
    assert_eq!(s.peers[&t(3)].queue.len(), 2);
    assert_eq!(s.stats().queue_dropped, 6 + 8);
    s.seal(now, t(3), &vec![0; MAX_PLAINTEXT + 1]);
    assert_eq!(s.stats().too_large, 1);
    s.forget(t(2));
    assert_eq!(s.queued, 2);
    assert_eq!(s.stats().queue_dropped, 6 + 8 + 4);
}

#[test]
fn data_from_the_wrong_transport_or_index_is_dropped() {
    let mut net = established();
    net.now += Duration::from_millis(1);
    net.seal(0, 1, b"x");
    let batch = net.outgoing();
    let data = &batch[0];
    // The same bytes from another transport: no session of that sender.
    let moved = Flight {
        from: t(9),
        ..data.clone()
    };
    assert_eq!(net.deliver(&moved), Opened::Dropped);
    let mut other = data.bytes.clone();
    other[4] ^= 0xff;
    assert_eq!(net.deliver(&with_bytes(data, other)), Opened::Dropped);
    assert_eq!(net.nodes[1].0.stats().unknown_session, 2);
    assert!(matches!(net.deliver(data), Opened::Plain(_)));
}

#[test]
fn our_own_message_1_reflected_back_is_ignored() {
    let mut net = Net::pair();
    net.seal(0, 1, b"x");
    let batch = net.outgoing();
    let reflected = Flight {
        from: t(2),
        to: t(1),
        ..batch[0].clone()
    };
    assert_eq!(net.deliver(&reflected), Opened::Consumed);
    assert!(net.nodes[0].0.responders.is_empty());
    assert!(net.outgoing().is_empty());
    for f in &batch {
        net.deliver(f);
    }
    net.shuttle(&mut deliver_all);
    assert_eq!(net.received(1), [b"x".to_vec()]);
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut s = secure(1, PSK);
    let now = std::time::Instant::now();
    let mut out = Vec::new();
    let mut datagram = vec![b'W', b'S', 1, 0];
    for k in 0..=255u8 {
        datagram[3] = k;
        for len in [0, 3, 4, 8, 12, 4 + NOISE1_LEN, 100] {
            datagram.resize(4 + len, k);
            assert_eq!(s.open(now, t(2), &datagram, &mut out), Opened::Dropped);
        }
    }
    assert!(s.peers.is_empty());
}
