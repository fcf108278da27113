//! Finding a relay for a link attempt that gets no direct answer.
//!
//! A CTM offers the peer's direct connections as relays. Those that are direct peers of
//! ours too become relay candidates of the attempt at once (`ctm_candidates`). When none
//! is, the offers are kept on the attempt, and only if its direct requests have gone
//! unanswered for `tcp_delay` does the node connect to a few of them (by CTM, asking for
//! no role). Each one that connects becomes a relay candidate of the same attempt, tried
//! from `relay_delay` on. Without this, a node behind a symmetric NAT whose ring
//! neighbours sit behind port-restricted NATs, and which knows only its bootstrap node,
//! never finds a common relay. Doing it only on need matters: in an overlay without such
//! NATs, chasing every offer up front was over half of all CTMs a join caused (and each
//! brought a link handshake and a connection that closed again).

use std::time::Instant;

use super::link::{Attempt, Candidate, MAX_CANDIDATES};
use super::{Edge, Node};
use crate::address::Address;
use crate::wire::{AddressList, Mode, Roles};

/// How many offered relays an attempt keeps, and connects to when it needs one.
pub(crate) const RELAYS_TO_REACH: usize = 4;

impl Node {
    /// Keeps the relays a CTM offered for the attempt to link to `peer`, if it has no
    /// relay candidate yet and is for a connection with a role (ring or shortcut). The
    /// CTMs for relays ask for no role, so their own offers are never chased in turn: one
    /// round never starts another (an unbounded cascade of CTMs across the overlay
    /// otherwise).
    pub(crate) fn keep_relay_offers(
        &mut self,
        peer: Address,
        roles: Roles,
        relays: AddressList<'_>,
    ) {
        if roles.is_empty() {
            return;
        }
        let me = self.address;
        let Some(a) = self.attempts.iter_mut().find(|a| a.peer == Some(peer)) else {
            return;
        };
        if a.has_relay_candidate() {
            return;
        }
        for r in relays.iter() {
            if a.relay_offers.len() >= RELAYS_TO_REACH {
                break;
            }
            if r != me && r != peer && !a.relay_offers.contains(&r) {
                a.relay_offers.push(r);
            }
        }
    }

    /// Connects to the relays attempt `i` was offered, once its direct requests have had
    /// `tcp_delay` without an answer and it still has no relay candidate.
    pub(crate) fn seek_relays(&mut self, now: Instant, i: usize) {
        let a = &mut self.attempts[i];
        let age = now.saturating_duration_since(a.started);
        if a.relays_sought
            || a.relay_offers.is_empty()
            || age < self.config.tcp_delay
            || a.has_relay_candidate()
        {
            return;
        }
        a.relays_sought = true;
        let offers = a.relay_offers.clone();
        for r in offers {
            let known = self.table.get(r).is_some()
                || self.attempts.iter().any(|a| a.peer == Some(r))
                || self.ctms.iter().any(|c| c.target == r);
            if !known {
                self.send_ctm(now, r, Mode::Exact, Roles::NONE, None);
            }
        }
    }

    /// A direct connection to `relay` formed: attempts it was offered to as a relay gain
    /// it as a candidate (tried at once if they are past `relay_delay`).
    pub(crate) fn relay_connected(&mut self, now: Instant, relay: Address) {
        let relay_delay = self.config.relay_delay;
        for a in &mut self.attempts {
            if !a.relay_offers.contains(&relay) || a.peer == Some(relay) {
                continue;
            }
            let edge = Edge::Relay { via: relay };
            if a.candidates.len() >= MAX_CANDIDATES || a.candidates.iter().any(|c| c.edge == edge) {
                continue;
            }
            a.candidates.push(Candidate::new(edge));
            if now.saturating_duration_since(a.started) >= relay_delay {
                a.next_send = now;
            }
        }
    }

    /// Gives the relay role to the connections that carry relay edges of ours or that a
    /// link attempt without a direct answer for `tcp_delay` plans to relay through, and
    /// takes it from the others. The role travels in status messages, so the relay
    /// keeps its end too: without it, the relay closes a connection neither side has a
    /// role for before the attempt tries it (from `relay_delay` on).
    pub(crate) fn update_relay_roles(&mut self, now: Instant) {
        let wait = self.config.tcp_delay;
        let planned = self
            .attempts
            .iter()
            .filter(|a| now.saturating_duration_since(a.started) >= wait)
            .flat_map(|a| &a.candidates)
            .filter(|c| !c.is_dead())
            .map(|c| c.edge);
        let vias: Vec<Address> = self
            .table
            .iter()
            .map(|c| c.edge)
            .chain(planned)
            .filter_map(|e| match e {
                Edge::Relay { via } => Some(via),
                Edge::Direct(_) => None,
            })
            .collect();
        for c in self.table.iter_mut() {
            let relay = vias.contains(&c.peer);
            c.set_role(Roles::RELAY, relay);
        }
    }
}

impl Attempt {
    fn has_relay_candidate(&self) -> bool {
        self.candidates
            .iter()
            .any(|c| matches!(c.edge, Edge::Relay { .. }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::connection::Connection;
    use super::super::tests::{link_through_cookie, raw, sent, udp};
    use super::super::{Config, Edge};
    use crate::address::Address;
    use crate::wire::{self, AddressList, Message, Roles, kind};

    /// The routed CTM requests among `datagrams`, by destination address.
    fn ctm_targets(datagrams: &[(crate::transport::TransportAddr, Vec<u8>)]) -> Vec<Address> {
        datagrams
            .iter()
            .filter_map(|(_, d)| match wire::parse(d) {
                Ok(Message::Routed(r)) if r.header.kind == kind::CTM_REQUEST => Some(r.header.dst),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn offered_relays_are_reached_only_when_the_direct_edge_stays_silent_and_then_carry_the_attempt()
     {
        let config = Config::default();
        let t0 = Instant::now();
        let (ta, tx, tp, tr) = (
            udp("198.18.0.1:4000"),
            udp("198.18.0.2:4000"),
            udp("198.18.0.3:4000"),
            udp("198.18.0.4:4000"),
        );
        let mut a = raw(0x10, ta, config.clone(), t0);
        let mut r = raw(0x51, tr, config.clone(), t0);
        a.join(t0, &[]);
        r.join(t0, &[]);
        // A routes through X, a ring neighbour next to R's address.
        let x = Address::from_bytes([0x50; 20]);
        let mut cx = Connection::new(x, Edge::Direct(tx), 1, t0);
        cx.roles = Roles::NEAR;
        a.table.insert(cx);
        // A CTM reply from P named R as a relay; A shares no direct peer with P.
        let p = Address::from_bytes([0x90; 20]);
        a.start_link(t0, Some(p), [Edge::Direct(tp)], Roles::NEAR);
        a.keep_relay_offers(p, Roles::NEAR, AddressList::Slice(&[r.address()]));

        a.handle_timeout(t0);
        let out = sent(&mut a);
        assert!(out.iter().any(|(t, _)| *t == tp), "a link request to P");
        let to_r = |out: &[_]| {
            ctm_targets(out)
                .iter()
                .filter(|&&t| t == r.address())
                .count()
        };
        assert_eq!(to_r(&out), 0, "no CTM to R while P may answer");

        // P stays silent for tcp_delay: A connects to the relay it was offered.
        let t1 = t0 + config.tcp_delay;
        a.handle_timeout(t1);
        assert_eq!(to_r(&sent(&mut a)), 1);
        a.handle_timeout(t1 + config.tick);
        assert_eq!(to_r(&sent(&mut a)), 0, "once per attempt");

        // R answers the CTM by linking; here A's own request goes to R's transport.
        a.start_link(t1, Some(r.address()), [Edge::Direct(tr)], Roles::NONE);
        a.handle_timeout(t1);
        let request = sent(&mut a)
            .into_iter()
            .find(|(t, _)| *t == tr)
            .expect("a link request to R")
            .1;
        let (answer, _) = link_through_cookie(&mut a, &mut r, t1, (ta, tr), request);
        for (to, mut d) in answer {
            assert_eq!(to, ta);
            a.handle_datagram(t1, tr, &mut d);
        }
        assert!(a.connections().any(|c| c.peer == r.address()));
        let relay = Edge::Relay { via: r.address() };
        let attempt = a.attempts.iter().find(|x| x.peer == Some(p)).unwrap();
        assert!(attempt.candidates.iter().any(|c| c.edge == relay));

        // From relay_delay on, the request to P also goes through R, and R's connection,
        // though neither side gives it a role, is kept for it.
        let t2 = t0 + config.relay_delay;
        a.handle_timeout(t2);
        let tunnelled = sent(&mut a).into_iter().any(|(t, d)| {
            t == tr
                && matches!(wire::parse(&d), Ok(Message::Routed(m))
                    if m.header.kind == kind::TUNNEL && m.header.dst == p)
        });
        assert!(tunnelled, "a link request to P through R");
        let t3 = t1 + config.close_grace * 2;
        a.handle_timeout(t3);
        assert!(a.connections().any(|c| c.peer == r.address()));
    }
}
