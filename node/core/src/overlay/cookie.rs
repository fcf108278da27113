//! Return-routability cookies for the link handshake.
//!
//! A link request is cheap to forge: its source transport is whatever the sender writes
//! on the wire, and its `src` address is a claim. Before a request may create a
//! connection or move one to another edge, the responder answers it with a cookie bound
//! to (edge, claimed address, token) and waits for the request again with the cookie:
//! only a sender that receives at the edge it claims learns it. A spoofed source can
//! then neither install a connection nor re-point a peer's connection to itself.
//!
//! Cookies are keyed hashes under a secret that rotates every [`ROTATION`]; one from the
//! previous secret is still accepted, so a cookie lives between one and two rotations.
//! The node keeps no state per request.

use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use super::Edge;
use crate::address::Address;

/// How often the cookie secret changes.
pub(crate) const ROTATION: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(crate) struct Cookies {
    current: [u8; 16],
    previous: [u8; 16],
    rotated: Instant,
}

impl Cookies {
    pub(crate) fn new(now: Instant, rng: &mut impl rand::Rng) -> Self {
        let mut c = Cookies {
            current: [0; 16],
            previous: [0; 16],
            rotated: now,
        };
        rng.fill_bytes(&mut c.current);
        rng.fill_bytes(&mut c.previous);
        c
    }

    /// The cookie for a request from `peer` with `token` that arrived over `edge`.
    pub(crate) fn issue(
        &mut self,
        now: Instant,
        rng: &mut impl rand::Rng,
        edge: Edge,
        peer: Address,
        token: u64,
    ) -> u64 {
        if now.saturating_duration_since(self.rotated) >= ROTATION {
            self.previous = self.current;
            rng.fill_bytes(&mut self.current);
            self.rotated = now;
        }
        mac(&self.current, edge, peer, token)
    }

    /// Whether `cookie` was issued (under the current or the previous secret) for this
    /// edge, peer and token.
    pub(crate) fn verify(&self, edge: Edge, peer: Address, token: u64, cookie: u64) -> bool {
        mac(&self.current, edge, peer, token) == cookie
            || mac(&self.previous, edge, peer, token) == cookie
    }
}

fn mac(secret: &[u8; 16], edge: Edge, peer: Address, token: u64) -> u64 {
    let mut h = Sha1::new();
    h.update(secret);
    match edge {
        Edge::Direct(t) => {
            h.update([t.proto as u8]);
            match t.addr.ip() {
                std::net::IpAddr::V4(ip) => h.update(ip.octets()),
                std::net::IpAddr::V6(ip) => h.update(ip.octets()),
            }
            h.update(t.addr.port().to_be_bytes());
        }
        Edge::Relay { via } => {
            h.update([0xff]);
            h.update(via.as_bytes());
        }
    }
    h.update(peer.as_bytes());
    h.update(token.to_be_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportAddr;
    use rand::SeedableRng;

    #[test]
    fn a_cookie_binds_edge_peer_and_token_and_outlives_one_rotation_only() {
        let t0 = Instant::now();
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
        let mut c = Cookies::new(t0, &mut rng);
        let e = Edge::Direct(TransportAddr::udp("198.18.0.1:4000".parse().unwrap()));
        let other = Edge::Direct(TransportAddr::udp("198.18.0.1:4001".parse().unwrap()));
        let p = Address::from_bytes([7; 20]);
        let k = c.issue(t0, &mut rng, e, p, 42);
        assert!(c.verify(e, p, 42, k));
        assert!(!c.verify(other, p, 42, k));
        assert!(!c.verify(e, Address::from_bytes([8; 20]), 42, k));
        assert!(!c.verify(e, p, 43, k));
        c.issue(t0 + ROTATION, &mut rng, e, p, 1);
        assert!(c.verify(e, p, 42, k), "still valid after one rotation");
        c.issue(t0 + ROTATION * 2, &mut rng, e, p, 1);
        assert!(!c.verify(e, p, 42, k), "expired after two");
    }
}
