//! A node's secure layer fed arbitrary datagrams from a few transports, interleaved
//! with a genuine member's real traffic (which the input may drop, duplicate, corrupt
//! or replay from elsewhere) and with time passing. It must never panic; whatever it
//! sends must carry the secure header; and plaintext comes out only from the member,
//! with the member's address, each sealed datagram at most once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ipop_core::secure::{self, Config, Identity, Opened, Secure};
use ipop_core::{Address, TransportAddr};

const PSK: [u8; 32] = [0x42; 32];
/// A secret the member does not hold.
const OTHER: [u8; 32] = [0x43; 32];

fn transport(i: u8) -> TransportAddr {
    let addr = ([198, 18, 0, 1 + (i >> 1) % 4], 4000).into();
    if i & 1 == 0 {
        TransportAddr::udp(addr)
    } else {
        TransportAddr::tcp(addr)
    }
}

/// Everything `s` wants to send, checked.
fn drain(s: &mut Secure, out: &mut Vec<(TransportAddr, Vec<u8>)>) {
    let mut buf = Vec::new();
    while let Some(to) = s.poll_transmit(&mut buf) {
        assert!(buf.len() <= secure::MAX_DATAGRAM);
        assert_eq!(
            buf[..3],
            [secure::MAGIC[0], secure::MAGIC[1], secure::VERSION]
        );
        out.push((to, buf.clone()));
    }
}

/// Opens one datagram and checks what comes out.
fn open(
    s: &mut Secure,
    now: Instant,
    from: TransportAddr,
    datagram: &[u8],
    expect: (TransportAddr, Address),
    seen: &mut HashSet<Vec<u8>>,
) {
    let mut out = Vec::new();
    match s.open(now, from, datagram, &mut out) {
        Opened::Plain(a) => {
            assert_eq!((from, a), expect, "plaintext from a non-member");
            assert!(seen.insert(out), "a datagram was delivered twice");
        }
        _ => assert!(out.is_empty()),
    }
}

/// Checks one input.
pub(crate) fn run(data: &[u8]) {
    let mut config = Config::new(PSK);
    config.max_sessions = 8;
    config.max_queued_total = 64;
    let mut node = Secure::new(config.clone(), Identity::from_private([1; 32]), 1);
    let mut member = Secure::new(config, Identity::from_private([2; 32]), 2);
    // The node sits at transport(0), the member at transport(2).
    let (at_node, at_member) = (transport(0), transport(2));
    let to_node = (at_member, member.identity().address());
    let to_member = (at_node, node.identity().address());
    let mut now = Instant::now();
    let (mut seen_node, mut seen_member) = (HashSet::new(), HashSet::new());
    let mut counter = 0u32;
    let mut wire: Vec<(TransportAddr, Vec<u8>)> = Vec::new();
    let mut last = Vec::new();
    let mut rest = data;
    while let [op, arg, tail @ ..] = rest {
        rest = tail;
        match op % 6 {
            // Arbitrary bytes from some transport.
            0 => {
                let len = usize::from(*arg).min(rest.len());
                let (datagram, next) = rest.split_at(len);
                rest = next;
                let from = transport(op >> 3);
                open(&mut node, now, from, datagram, to_node, &mut seen_node);
            }
            // Time passes.
            1 => {
                now += Duration::from_millis(u64::from(*arg) * 40);
                node.handle_timeout(now);
                member.handle_timeout(now);
            }
            // Both seal a fresh plaintext (unique, so duplicates show).
            2 => {
                counter += 1;
                let mut p = counter.to_be_bytes().to_vec();
                p.resize(4 + usize::from(*arg), *arg);
                member.seal(now, at_node, &p);
                p[0] |= 0x80;
                node.seal(now, at_member, &p);
            }
            // The wire between them: each datagram delivered, dropped, duplicated,
            // corrupted, or replayed from another transport, as the next bytes say.
            3 => {
                drain(&mut node, &mut wire);
                drain(&mut member, &mut wire);
                let batch = std::mem::take(&mut wire);
                for (i, (to, bytes)) in batch.into_iter().enumerate() {
                    let fate = rest.get(i).copied().unwrap_or(0) ^ arg;
                    let mut bytes = bytes;
                    if fate % 5 == 3 && !bytes.is_empty() {
                        let at = usize::from(fate) % bytes.len();
                        bytes[at] ^= 1 << (fate % 8);
                    }
                    let times = match fate % 5 {
                        1 => 0,
                        2 => 2,
                        _ => 1,
                    };
                    for _ in 0..times {
                        if to == at_node {
                            let from = if fate % 5 == 4 {
                                transport(fate)
                            } else {
                                at_member
                            };
                            open(&mut node, now, from, &bytes, to_node, &mut seen_node);
                        } else if to == at_member {
                            open(
                                &mut member,
                                now,
                                at_node,
                                &bytes,
                                to_member,
                                &mut seen_member,
                            );
                        }
                    }
                    last = bytes;
                }
            }
            // The last datagram again, from any transport (a replay).
            4 => open(
                &mut node,
                now,
                transport(*arg),
                &last,
                to_node,
                &mut seen_node,
            ),
            // The node's admission secrets change (a rotation step): the member's, the
            // other, or both in either order; the member keeps its one.
            _ if arg & 0x80 != 0 => {
                let (first, second) = if arg & 1 == 0 {
                    (PSK, OTHER)
                } else {
                    (OTHER, PSK)
                };
                let keep = if arg & 2 == 0 {
                    Vec::new()
                } else {
                    vec![second]
                };
                node.set_secrets(first, keep);
            }
            // The driver loses a transport.
            _ => node.forget(transport(*arg)),
        }
        drain(&mut node, &mut wire);
        drain(&mut member, &mut wire);
        assert!(node.stats().sessions <= 8);
    }
}
