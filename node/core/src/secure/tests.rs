//! The secure layer between two or three nodes over an in-memory network with virtual
//! time, loss, duplication and reordering: handshakes, simultaneous open, replay,
//! outsiders, restarts, rekeying, expiry and determinism.

use std::time::{Duration, Instant};

use super::test_net::{Fate, Flight, Net, PSK, deliver_all, established, secure, t};
use super::*;
use crate::secure::wire::kind;

#[test]
fn a_handshake_authenticates_both_sides_and_carries_data_both_ways() {
    let mut net = established();
    assert_eq!(net.inbox[1][0].0, net.address(0));
    assert_eq!(net.peer(0, 1), Some(net.address(1)));
    assert_eq!(net.peer(1, 0), Some(net.address(0)));
    net.seal(1, 0, b"world");
    net.shuttle(&mut deliver_all);
    assert_eq!(net.received(0), [b"world".to_vec()]);
    for i in 0..2 {
        let s = net.nodes[i].0.stats();
        assert_eq!((s.handshakes_completed, s.sessions), (1, 1), "{s:?}");
    }
    assert_eq!(net.nodes[0].0.stats().handshakes_started, 1);
    assert_eq!(net.nodes[1].0.stats().handshakes_started, 0);
    // 1.5 round trips: msg1, msg2, msg3 + DATA; the responder's keepalive confirms.
    assert_eq!(net.sent(0, kind::HANDSHAKE1).len(), 1);
    assert_eq!(net.sent(0, kind::HANDSHAKE3).len(), 1);
    assert_eq!(net.sent(1, kind::DATA).len(), 2, "keepalive, then world");
    // Everything on the wire is a secure datagram; no plaintext.
    for f in &net.log {
        assert_eq!(f.bytes[..3], [b'W', b'S', super::VERSION]);
        assert!(!f.bytes.windows(5).any(|w| w == b"hello" || w == b"world"));
    }
}

#[test]
fn message_1_is_retransmitted_with_backoff_over_a_lossy_path() {
    let mut net = Net::pair();
    let start = net.now;
    net.seal(0, 1, b"x");
    let mut lost = 0;
    let mut lose_three = |f: &Flight| {
        if f.kind() == kind::HANDSHAKE1 && lost < 3 {
            lost += 1;
            Fate::Drop
        } else {
            Fate::Deliver
        }
    };
    net.advance(Duration::from_secs(5), &mut lose_three);
    let times: Vec<u128> = net
        .sent(0, kind::HANDSHAKE1)
        .iter()
        .map(|f| (f.at - start).as_millis())
        .collect();
    assert_eq!(times, [0, 250, 750, 1750]);
    let msg1 = net.sent(0, kind::HANDSHAKE1);
    assert!(
        msg1.windows(2).all(|w| w[0].bytes == w[1].bytes),
        "same msg1"
    );
    assert_eq!(net.received(1), [b"x".to_vec()]);
    assert_eq!(net.peer(0, 1), Some(net.address(1)));
}

#[test]
fn a_duplicate_message_1_gets_the_cached_message_2_and_no_new_session() {
    let mut net = Net::pair();
    net.seal(0, 1, b"x");
    let mut dup = |f: &Flight| match f.kind() {
        kind::HANDSHAKE1 | kind::HANDSHAKE2 | kind::HANDSHAKE3 => Fate::Duplicate,
        _ => Fate::Deliver,
    };
    net.advance(Duration::from_secs(2), &mut dup);
    let msg2 = net.sent(1, kind::HANDSHAKE2);
    assert_eq!(msg2.len(), 2);
    assert_eq!(msg2[0].bytes, msg2[1].bytes, "the cached message 2");
    assert_eq!(net.received(1), [b"x".to_vec()]);
    for i in 0..2 {
        let s = net.nodes[i].0.stats();
        assert_eq!((s.handshakes_completed, s.sessions), (1, 1), "{s:?}");
        assert!(net.nodes[i].0.responders.is_empty());
    }
}

#[test]
fn a_lost_message_3_is_resent_with_the_next_send() {
    let mut net = Net::pair();
    net.seal(0, 1, b"first");
    let mut lost = false;
    let mut lose_msg3 = |f: &Flight| {
        if f.kind() == kind::HANDSHAKE3 && !lost {
            lost = true;
            Fate::Drop
        } else {
            Fate::Deliver
        }
    };
    net.shuttle(&mut lose_msg3);
    // "first" went right after the lost msg3: the responder has no session for it.
    assert!(net.received(1).is_empty());
    assert_eq!(net.nodes[1].0.stats().unknown_session, 1);
    assert_eq!(net.peer(0, 1), None, "not confirmed yet");
    net.now += Duration::from_millis(10);
    net.seal(0, 1, b"second");
    net.shuttle(&mut deliver_all);
    assert_eq!(net.received(1), [b"second".to_vec()]);
    assert_eq!(net.sent(0, kind::HANDSHAKE3).len(), 2);
    assert_eq!(net.peer(0, 1), Some(net.address(1)));
    assert_eq!(net.peer(1, 0), Some(net.address(0)));
}

#[test]
fn a_lost_message_3_or_confirmation_is_recovered_by_the_timer() {
    for lose in [kind::HANDSHAKE3, kind::DATA] {
        let mut net = Net::pair();
        net.seal(0, 1, b"");
        let mut lost = false;
        let mut fate = |f: &Flight| {
            if f.kind() == lose && !lost && f.from == t(if lose == kind::DATA { 2 } else { 1 }) {
                lost = true;
                Fate::Drop
            } else {
                Fate::Deliver
            }
        };
        net.advance(Duration::from_secs(2), &mut fate);
        assert!(lost);
        assert_eq!(net.peer(0, 1), Some(net.address(1)), "lost kind {lose}");
        assert_eq!(net.peer(1, 0), Some(net.address(0)));
        assert_eq!(net.sent(0, kind::HANDSHAKE3).len(), 2);
        // Confirmed: no more retransmissions.
        net.advance(Duration::from_secs(20), &mut deliver_all);
        assert_eq!(net.sent(0, kind::HANDSHAKE3).len(), 2);
    }
}

#[test]
fn a_handshake_with_no_answer_is_given_up_and_its_queue_dropped() {
    let mut net = Net::pair();
    let start = net.now;
    for _ in 0..3 {
        net.seal(0, 1, b"x");
    }
    net.advance(Duration::from_secs(30), &mut |_: &Flight| Fate::Drop);
    assert_eq!(net.sent(0, kind::HANDSHAKE1).len(), 6);
    let s = net.nodes[0].0.stats();
    assert_eq!((s.handshakes_failed, s.queue_dropped), (1, 3), "{s:?}");
    assert!(net.nodes[0].0.peers.is_empty() && net.nodes[0].0.indexes.is_empty());
    assert_eq!(net.nodes[0].0.poll_timeout().map(|w| w - start), None);
    // The responder's half-open state expired too.
    assert!(net.nodes[1].0.responders.is_empty());
}

#[test]
fn a_simultaneous_open_gives_exactly_one_session() {
    // The tie-break compares ephemeral keys, which snow draws at random: many runs.
    for round in 0..16 {
        let mut net = Net::pair();
        net.seal(0, 1, b"from 0");
        net.seal(1, 0, b"from 1");
        // Both message 1 cross on the wire, or the first of one side is lost (a NAT
        // that had no hole for it yet), or everything is reordered.
        let mut lost = false;
        let mut fate = |f: &Flight| match (round % 4, f.kind()) {
            (1 | 2, kind::HANDSHAKE1) if !lost && f.from == t(round as u8 % 4) => {
                lost = true;
                Fate::Drop
            }
            (3, _) => Fate::Hold,
            _ => Fate::Deliver,
        };
        net.advance(Duration::from_secs(3), &mut fate);
        assert_eq!(net.received(0), [b"from 1".to_vec()], "round {round}");
        assert_eq!(net.received(1), [b"from 0".to_vec()], "round {round}");
        let (a, b) = (&net.nodes[0].0, &net.nodes[1].0);
        let (sa, sb) = (
            a.peers[&t(2)].current.as_ref().unwrap(),
            b.peers[&t(1)].current.as_ref().unwrap(),
        );
        assert_eq!((sa.local, sa.remote), (sb.remote, sb.local), "one session");
        assert_ne!(sa.initiator, sb.initiator);
        for s in [a, b] {
            let st = s.stats();
            assert_eq!((st.handshakes_completed, st.sessions), (1, 1), "{st:?}");
            let p = s.peers.values().next().unwrap();
            assert!(p.next.is_none() && p.previous.is_none() && p.initiation.is_none());
            assert!(s.responders.is_empty());
        }
        // No stray handshake afterwards.
        net.advance(Duration::from_secs(20), &mut deliver_all);
        assert_eq!(net.nodes[0].0.stats().handshakes_completed, 1);
        assert_eq!(net.nodes[1].0.stats().handshakes_completed, 1);
    }
}

#[test]
fn the_smaller_ephemeral_key_stays_initiator() {
    for _ in 0..8 {
        let mut net = Net::pair();
        net.seal(0, 1, b"a");
        net.seal(1, 0, b"b");
        let e0 = net.nodes[0].0.peers[&t(2)]
            .initiation
            .as_ref()
            .unwrap()
            .ephemeral;
        let e1 = net.nodes[1].0.peers[&t(1)]
            .initiation
            .as_ref()
            .unwrap()
            .ephemeral;
        net.shuttle(&mut deliver_all);
        let initiator = net.nodes[0].0.peers[&t(2)]
            .current
            .as_ref()
            .unwrap()
            .initiator;
        assert_eq!(initiator, e0 < e1);
    }
}

#[test]
fn duplicates_are_dropped_and_reordering_within_the_window_accepted() {
    let mut net = established();
    net.now += Duration::from_millis(1);
    for i in 0..20u8 {
        net.seal(0, 1, &[i]);
    }
    let mut batch = net.outgoing();
    assert_eq!(batch.len(), 20, "confirmed: no message 3 any more");
    batch.reverse();
    for f in &batch {
        assert!(matches!(net.deliver(f), Opened::Plain(_)));
    }
    assert_eq!(net.received(1).len(), 21);
    for f in &batch[..5] {
        assert_eq!(net.deliver(f), Opened::Dropped);
    }
    assert_eq!(net.nodes[1].0.stats().replayed, 5);
    // Far beyond the window, the oldest become too old.
    for _ in 0..replay::WINDOW {
        net.seal(0, 1, b"");
    }
    net.shuttle(&mut deliver_all);
    let old = Flight {
        bytes: {
            let mut b = batch[19].bytes.clone();
            b[8..16].copy_from_slice(&1u64.to_be_bytes());
            b
        },
        ..batch[19].clone()
    };
    assert_eq!(net.deliver(&old), Opened::Dropped);
    assert_eq!(net.nodes[1].0.stats().replayed, 6);
}

#[test]
fn an_outsider_with_another_psk_gets_no_session_and_delivers_nothing() {
    for outsider_initiates in [false, true] {
        let mut net = Net::new(vec![(secure(1, PSK), t(1)), (secure(2, [9; 32]), t(2))]);
        let (i, r) = if outsider_initiates { (1, 0) } else { (0, 1) };
        net.seal(i, r, b"secret");
        net.advance(Duration::from_secs(30), &mut deliver_all);
        assert!(net.inbox.iter().all(Vec::is_empty));
        assert_eq!((net.peer(0, 1), net.peer(1, 0)), (None, None));
        let (si, sr) = (net.nodes[i].0.stats(), net.nodes[r].0.stats());
        // The initiator finds none of its secrets among those the responder offers and
        // ends the handshake; the responder's waiting state expires.
        assert_eq!(
            (si.no_common_secret, si.handshakes_failed),
            (1, 1),
            "{si:?}"
        );
        assert!(sr.handshakes_failed >= 1, "{sr:?}");
        assert_eq!(
            (si.sessions, sr.sessions, si.handshakes_completed),
            (0, 0, 0)
        );
        assert!(net.nodes.iter().all(|(s, _)| s.peers.is_empty()));
    }
}

#[test]
fn a_restarted_peer_with_a_new_identity_gets_a_new_session() {
    let mut net = established();
    let old = net.address(1);
    // Node 1 restarts: new key, same transport; it talks first.
    net.nodes[1].0 = secure(99, PSK);
    net.inbox[1].clear();
    net.now += Duration::from_secs(1);
    net.seal(1, 0, b"I am back");
    net.shuttle(&mut deliver_all);
    assert_eq!(net.inbox[0], [(net.address(1), b"I am back".to_vec())]);
    assert_ne!(net.peer(0, 1), Some(old));
    assert_eq!(net.peer(0, 1), Some(net.address(1)));
    let p = &net.nodes[0].0.peers[&t(2)];
    assert!(p.previous.is_none(), "the old node's session is dropped");
    net.seal(0, 1, b"welcome");
    net.shuttle(&mut deliver_all);
    assert_eq!(net.received(1), [b"welcome".to_vec()]);
}

#[test]
fn a_peer_that_restarted_silently_is_found_by_handshaking_again() {
    let mut net = established();
    net.nodes[1].0 = secure(99, PSK);
    // Node 0 keeps sending into the old session; the new node 1 cannot read it.
    for _ in 0..40 {
        net.seal(0, 1, b"ping");
        net.advance(Duration::from_secs(1), &mut deliver_all);
    }
    assert!(net.nodes[1].0.stats().unknown_session > 0);
    assert_eq!(net.peer(0, 1), Some(net.address(1)));
    assert_eq!(net.peer(1, 0), Some(net.address(0)));
    assert!(net.received(1).len() >= 20, "{}", net.received(1).len());
}

#[test]
fn rekeying_replaces_the_session_without_losing_traffic() {
    let mut net = established();
    let first = net.nodes[0].0.peers[&t(2)].current.as_ref().unwrap().local;
    let mut sent = 1;
    // Traffic both ways every 100 ms for 130 s, through one rekey at 120 s.
    for _ in 0..1300 {
        net.seal(0, 1, b"a");
        net.seal(1, 0, b"b");
        sent += 1;
        net.advance(Duration::from_millis(100), &mut deliver_all);
    }
    assert_eq!(net.received(1).len(), sent);
    assert_eq!(net.received(0).len(), sent - 1);
    let (a, b) = (&net.nodes[0].0, &net.nodes[1].0);
    assert_eq!(a.stats().handshakes_started, 2);
    assert_eq!(b.stats().handshakes_started, 0, "the initiator rekeys");
    let (pa, pb) = (&a.peers[&t(2)], &b.peers[&t(1)]);
    let (ca, cb) = (pa.current.as_ref().unwrap(), pb.current.as_ref().unwrap());
    assert_ne!(ca.local, first);
    assert_eq!((ca.local, ca.remote), (cb.remote, cb.local));
    assert_eq!(pa.previous.as_ref().map(|s| s.local), Some(first));
    assert_eq!(a.stats().sessions, 1);
}

#[test]
fn data_sealed_on_the_old_session_still_opens_after_a_rekey() {
    let mut net = established();
    net.now += Duration::from_secs(1);
    net.seal(0, 1, b"late");
    let late = net.outgoing();
    assert_eq!(late.len(), 1);
    // Traffic both ways every second, through the rekey at 120 s.
    for _ in 0..125 {
        net.seal(0, 1, b"a");
        net.seal(1, 0, b"b");
        net.advance(Duration::from_secs(1), &mut deliver_all);
    }
    assert_eq!(net.nodes[0].0.stats().handshakes_started, 2);
    let old = u32::from_be_bytes(late[0].bytes[4..8].try_into().unwrap());
    let p = &net.nodes[1].0.peers[&t(1)];
    assert_ne!(p.current.as_ref().unwrap().local, old);
    assert_eq!(p.previous.as_ref().unwrap().local, old);
    assert!(matches!(net.deliver(&late[0]), Opened::Plain(_)));
    assert_eq!(net.deliver(&late[0]), Opened::Dropped, "once");
}

#[test]
fn idle_sessions_expire_and_forget_drops_everything() {
    let mut net = established();
    net.advance(Duration::from_secs(181), &mut deliver_all);
    for (s, _) in &net.nodes {
        assert_eq!(s.stats().sessions, 0);
        assert!(s.peers.is_empty() && s.indexes.is_empty());
        assert_eq!(s.poll_timeout(), None);
    }
    let mut net = established();
    net.nodes[0].0.forget(t(2));
    assert_eq!(net.peer(0, 1), None);
    assert!(net.nodes[0].0.indexes.is_empty());
    net.seal(1, 0, b"x");
    net.shuttle(&mut deliver_all);
    assert_eq!(net.nodes[0].0.stats().unknown_session, 1);
}

#[test]
fn the_same_seed_gives_the_same_indexes_and_datagrams() {
    let run = || {
        let mut net = Net::new(vec![
            (secure(1, PSK), t(1)),
            (secure(2, PSK), t(2)),
            (secure(3, PSK), t(3)),
        ]);
        net.seal(0, 1, b"x");
        net.seal(2, 1, b"y");
        net.advance(Duration::from_secs(1), &mut deliver_all);
        net.seal(1, 2, b"z");
        net.seal(1, 0, b"z");
        net.advance(Duration::from_secs(1), &mut deliver_all);
        // Indexes and lengths; the Noise bytes hold fresh ephemeral keys.
        net.log
            .iter()
            .map(|f| {
                (
                    f.from,
                    f.to,
                    f.bytes[..4].to_vec(),
                    f.bytes.len(),
                    indexes(f),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = run();
    assert!(first.len() >= 8);
    assert_eq!(first, run());
}

fn indexes(f: &Flight) -> Vec<u8> {
    match f.kind() {
        kind::HANDSHAKE1 => f.bytes[4..8].to_vec(),
        kind::HANDSHAKE2 | kind::HANDSHAKE3 => f.bytes[4..12].to_vec(),
        _ => f.bytes[4..16].to_vec(),
    }
}

/// Release-mode timings for the report: `cargo test -p ipop-core --release secure --
/// --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn timings() {
    let rounds = 200u32;
    let start = Instant::now();
    for _ in 0..rounds {
        let _ = established();
    }
    let handshake = start.elapsed() / rounds;
    let mut net = established();
    let (mut a, mut b) = (net.nodes.remove(0).0, net.nodes.remove(0).0);
    let payload = vec![0x5a; 1400];
    let (mut wire, mut out) = (Vec::new(), Vec::new());
    let n = 100_000u32;
    let start = Instant::now();
    let now = net.now + Duration::from_secs(1);
    for _ in 0..n {
        a.seal(now, t(2), &payload);
        a.poll_transmit(&mut wire);
        assert!(matches!(
            b.open(now, t(1), &wire, &mut out),
            Opened::Plain(_)
        ));
    }
    let per = start.elapsed() / n;
    // What one unauthenticated message 1 costs a responder.
    let mut msg1 = Vec::new();
    let mut initiator = secure(3, PSK);
    for i in 0..rounds {
        let to = TransportAddr::udp(([10, 0, (i >> 8) as u8, i as u8], 1).into());
        initiator.seal(now, to, b"");
        initiator.poll_transmit(&mut wire);
        msg1.push((to, wire.clone()));
    }
    let start = Instant::now();
    for (from, m) in &msg1 {
        assert_eq!(b.open(now, *from, m, &mut out), Opened::Consumed);
    }
    let responder = start.elapsed() / rounds;
    println!(
        "full handshake (two nodes, in memory): {handshake:?}; seal+open of 1400 bytes: \
         {per:?}; a responder's cost of one message 1: {responder:?}"
    );
}

/// The admission secret a transport's current session was made under.
fn session_secret(net: &Net, i: usize, of: usize) -> Option<super::SecretId> {
    let peer = net.nodes[i].0.peers.get(&net.nodes[of].1)?;
    peer.current.as_ref().map(|s| s.secret)
}

#[test]
fn a_rotation_keeps_members_linked_and_then_shuts_out_the_retired_secret() {
    const NEW: [u8; 32] = [8; 32];
    let (old_id, new_id) = (super::secret_id(&PSK), super::secret_id(&NEW));
    let mut net = Net::new((1..=4).map(|i| (secure(u64::from(i), PSK), t(i))).collect());
    net.seal(0, 1, b"to 1");
    net.seal(0, 2, b"to 2");
    net.shuttle(&mut deliver_all);
    assert_eq!(session_secret(&net, 0, 1), Some(old_id));

    // Step 1: nodes 0 and 1 learn the new secret and prefer it, keeping the old one.
    // No session closes; node 3, not told yet, still links with node 0 on the old one.
    for i in [0, 1] {
        assert_eq!(net.nodes[i].0.set_secrets(NEW, vec![PSK]), 0);
        assert_eq!(net.nodes[i].0.secret_ids(), [new_id, old_id]);
    }
    net.seal(3, 0, b"3 to 0");
    net.shuttle(&mut deliver_all);
    assert_eq!(net.inbox[0].last().map(|(a, _)| *a), Some(net.address(3)));
    assert_eq!(session_secret(&net, 0, 3), Some(old_id));
    // Their session from before, under the old secret, rekeys at its next send and
    // agrees on the preferred one. Node 3's began after the change, under the only
    // secret it could: it is not rekeyed.
    net.seal(0, 1, b"after the rekey");
    net.seal(0, 3, b"0 to 3");
    net.advance(Duration::from_secs(1), &mut deliver_all);
    assert_eq!(session_secret(&net, 0, 1), Some(new_id));
    assert_eq!(session_secret(&net, 1, 0), Some(new_id));
    assert_eq!(session_secret(&net, 0, 3), Some(old_id));
    let to: Vec<_> = net.sent(0, kind::HANDSHAKE1).iter().map(|f| f.to).collect();
    assert_eq!(
        to,
        [t(2), t(3), t(2)],
        "to nodes 1 and 2, then the rekey with 1"
    );

    // Step 2: nodes 0 and 1 retire the old secret. Node 0's edges under it close at
    // once; 0 and 1 carry on.
    assert_eq!(net.nodes[1].0.set_secrets(NEW, Vec::new()), 0);
    let closed = net.nodes[0].0.set_secrets(NEW, Vec::new());
    assert_eq!(closed, 2, "the sessions with nodes 2 and 3");
    assert_eq!(net.nodes[0].0.stats().retired_sessions, 2);
    assert_eq!((net.peer(0, 2), net.peer(0, 3)), (None, None));
    net.inbox[1].clear();
    net.seal(0, 1, b"still here");
    net.shuttle(&mut deliver_all);
    assert_eq!(net.received(1), [b"still here".to_vec()]);

    // Nodes that hold only the old secret link with nobody who retired it, whichever
    // side starts; nothing of theirs is delivered.
    for (i, r) in [(0, 2), (2, 0), (3, 0)] {
        net.inbox[r].clear();
        let before = net.nodes[i].0.stats().no_common_secret;
        net.seal(i, r, b"let me in");
        net.advance(Duration::from_secs(20), &mut deliver_all);
        assert!(net.inbox[r].is_empty(), "{i} -> {r}");
        assert_eq!((net.peer(0, 2), net.peer(0, 3)), (None, None));
        assert_eq!(net.nodes[i].0.stats().no_common_secret, before + 1);
    }
}

#[test]
fn naming_a_members_secret_without_holding_it_fails_at_message_3() {
    // The outsider names the member's secret id (ids are not secret) but mixes in its
    // own secret.
    let mut outsider = secure(2, [9; 32]);
    outsider.secrets = vec![(super::secret_id(&PSK), [9; 32])];
    let mut net = Net::new(vec![(secure(1, PSK), t(1)), (outsider, t(2))]);
    net.seal(1, 0, b"let me in");
    net.advance(Duration::from_secs(30), &mut deliver_all);
    assert!(net.inbox[0].is_empty());
    let member = net.nodes[0].0.stats();
    assert!(
        member.bad_psk_or_mac >= 1 && member.handshakes_failed >= 1,
        "{member:?}"
    );
    assert_eq!((member.sessions, member.handshakes_completed), (0, 0));
    assert_eq!(net.nodes[1].0.stats().handshakes_completed, 0);
}
