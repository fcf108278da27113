//! A node's protocol layers put together: the overlay [`Node`], the [`Dht`] on top of
//! it, and optionally the [`Ipop`] virtual network. The simulator and the real driver
//! both run a `Stack`, so the glue between the layers (who gets which routed message or
//! DHT result, whose timer fires) exists once.

use std::collections::VecDeque;
use std::time::Instant;

use crate::address::Address;
use crate::dht::{self, Dht, DhtError, Outcome, RequestId, WallClock};
use crate::ipop::{self, Ipop};
use crate::overlay::{self, Event, Handled, Node};
use crate::secure::{self, Identity, Opened, Secure};
use crate::transport::TransportAddr;
use crate::wire::RoutedHeader;

/// Most routed payloads that no layer claimed are kept for [`Stack::poll_delivery`]; past
/// this the oldest is dropped (and counted), so that a driver that never polls them, or
/// a flood of payloads of unknown kinds, cannot grow the queue without bound.
pub const MAX_UNCLAIMED: usize = 256;

/// The protocol layers of one node.
#[derive(Debug)]
pub struct Stack {
    /// The overlay.
    pub node: Node,
    /// The DHT.
    pub dht: Dht,
    /// The virtual IP network, if this node has a TAP (boxed, as `secure`: most
    /// simulated nodes have neither, and inline they would be most of a `Stack`).
    pub ipop: Option<Box<Ipop>>,
    /// Authenticated, encrypted edges, if the overlay has an admission secret: every
    /// datagram the node sends is sealed here and every one it receives opened here.
    pub secure: Option<Box<Secure>>,
    /// The last time a handler was called (sealing the node's datagrams needs a time).
    now: Instant,
    /// Plaintext of the datagram being opened or sealed.
    scratch: Vec<u8>,
    app: VecDeque<(RoutedHeader, Vec<u8>)>,
    dropped_unclaimed: u64,
    results: VecDeque<(RequestId, Result<Outcome, DhtError>)>,
    events: VecDeque<Event>,
}

impl Stack {
    /// A stack for a node with address `address`; `seed` drives all random choices,
    /// `clock` is the wall clock (it dates DHT writes).
    pub fn new(
        overlay: overlay::Config,
        dht: dht::Config,
        address: Address,
        seed: u64,
        now: Instant,
        clock: WallClock,
    ) -> Self {
        Stack {
            node: Node::new(overlay, address, seed, now),
            dht: Dht::new(dht, seed.rotate_left(17), now, clock),
            ipop: None,
            secure: None,
            now,
            scratch: Vec::new(),
            app: VecDeque::new(),
            dropped_unclaimed: 0,
            results: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Adds the virtual IP network layer; `seed` must come from the operating system's
    /// random generator outside tests (it seeds lease passwords, see [`Ipop::new`]).
    pub fn enable_ipop(&mut self, config: ipop::Config, seed: [u8; 32], now: Instant) {
        let mut ipop = Ipop::new(config, seed, now);
        ipop.set_secure_edges(self.secure.is_some());
        self.ipop = Some(Box::new(ipop));
    }

    /// Makes every edge a Noise session keyed with the overlay's admission secret
    /// (`config.psk`); `identity` must be the key of this node's address (its hash).
    pub fn enable_secure(&mut self, config: secure::Config, identity: Identity, seed: u64) {
        debug_assert_eq!(identity.address(), self.node.address());
        self.node.enable_signatures(identity.clone());
        self.node.reserve_seal(secure::DATA_OVERHEAD);
        self.secure = Some(Box::new(Secure::new(config, identity, seed)));
        if let Some(i) = self.ipop.as_mut() {
            i.set_secure_edges(true);
        }
    }

    /// Handles a frame the host wrote to the TAP (nothing without the IPOP layer).
    pub fn handle_tap_frame(&mut self, now: Instant, frame: &[u8]) {
        if let Some(ipop) = self.ipop.as_mut() {
            ipop.handle_tap_frame(now, &mut self.node, &mut self.dht, frame);
        }
        self.pump(now);
    }

    /// The next frame to write to the TAP, swapped into `buf`.
    pub fn poll_tap(&mut self, buf: &mut Vec<u8>) -> bool {
        self.ipop.as_mut().is_some_and(|i| i.poll_tap(buf))
    }

    /// The next event of the IPOP layer.
    pub fn poll_ipop_event(&mut self) -> Option<ipop::Event> {
        self.ipop.as_mut()?.poll_event()
    }

    /// Handles one received datagram (see [`Node::handle_datagram`]); DHT messages are
    /// consumed here, other application payloads come back as [`Handled::Deliver`].
    ///
    /// With secure edges, `buf` holds the opened plaintext afterwards (it is shorter than
    /// the datagram), a [`Handled::Deliver`] refers to it, and forwarded datagrams are
    /// sealed again and sent through [`Stack::poll_transmit`] (never
    /// [`Handled::Forward`]).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: TransportAddr,
        buf: &mut [u8],
    ) -> Handled {
        let (handled, buf) = match self.secure.as_mut() {
            None => (self.node.handle_datagram(now, from, buf), buf),
            Some(secure) => match secure.open(now, from, buf, &mut self.scratch) {
                Opened::Plain(peer) => {
                    let n = self.scratch.len();
                    buf[..n].copy_from_slice(&self.scratch);
                    let buf = &mut buf[..n];
                    match self
                        .node
                        .handle_authenticated_datagram(now, from, peer, buf)
                    {
                        Handled::Forward(t) => {
                            secure.seal(now, t.dst, &buf[..t.len]);
                            (Handled::Done, buf)
                        }
                        other => (other, buf),
                    }
                }
                Opened::Consumed | Opened::Dropped => (Handled::Done, buf),
            },
        };
        let handled = match handled {
            Handled::Deliver(d) => {
                if self.deliver(now, &d.header, &buf[d.payload.clone()], d.source_verified) {
                    Handled::Done
                } else {
                    Handled::Deliver(d)
                }
            }
            other => other,
        };
        self.pump(now);
        handled
    }

    /// Gives a routed message to the layer it is for; false if none took it.
    /// `source_verified`: it is signed by its source, or came straight from it over a
    /// secure edge.
    fn deliver(
        &mut self,
        now: Instant,
        header: &RoutedHeader,
        payload: &[u8],
        source_verified: bool,
    ) -> bool {
        // A node that does not sign (no secure edges) verifies nothing, and takes the
        // source as it is.
        let src_trusted = source_verified || !self.node.signs();
        self.dht
            .handle_delivery(now, &mut self.node, header, payload, src_trusted)
            || self.ipop.as_mut().is_some_and(|i| {
                i.handle_delivery(
                    now,
                    &mut self.node,
                    &mut self.dht,
                    header,
                    payload,
                    source_verified,
                )
            })
    }

    /// The driver lost a transport (a TCP stream closed): the overlay drops the
    /// connections over it, and its secure session goes.
    pub fn handle_transport_closed(&mut self, now: Instant, t: TransportAddr) {
        self.node.handle_transport_closed(now, t);
        if let Some(s) = self.secure.as_mut() {
            s.forget(t);
        }
        self.pump(now);
    }

    /// Runs due timers of every layer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(s) = self.secure.as_mut() {
            s.handle_timeout(now);
        }
        self.node.handle_timeout(now);
        self.dht.handle_timeout(now, &mut self.node);
        if let Some(ipop) = self.ipop.as_mut() {
            ipop.handle_timeout(now, &mut self.node, &mut self.dht);
        }
        self.pump(now);
    }

    /// Runs `f` on the DHT (to start an operation), then lets the layers react.
    pub fn dht_op<R>(&mut self, now: Instant, f: impl FnOnce(&mut Dht, &mut Node) -> R) -> R {
        let r = f(&mut self.dht, &mut self.node);
        self.pump(now);
        r
    }

    /// Creates `key` (see [`Dht::create`]).
    pub fn dht_create(
        &mut self,
        now: Instant,
        key: &[u8],
        password: &[u8],
        value: &[u8],
        ttl: std::time::Duration,
    ) -> Result<RequestId, DhtError> {
        self.dht_op(now, |d, n| d.create(now, n, key, password, value, ttl))
    }

    /// Gets `key` (see [`Dht::get`]).
    pub fn dht_get(&mut self, now: Instant, key: &[u8]) -> Result<RequestId, DhtError> {
        self.dht_op(now, |d, n| d.get(now, n, key))
    }

    /// Moves messages the overlay delivered without a caller's buffer to their layer,
    /// DHT results to the IPOP layer when they are its own, and starts DHT operations
    /// that waited for the node to be correctly connected.
    fn pump(&mut self, now: Instant) {
        self.now = now;
        loop {
            if self.node.is_correctly_connected() && self.dht.has_waiting() {
                self.dht.handle_timeout(now, &mut self.node);
            }
            if let Some((header, payload, verified)) = self.node.poll_delivery() {
                if !self.deliver(now, &header, &payload, verified) {
                    if self.app.len() >= MAX_UNCLAIMED {
                        self.app.pop_front();
                        self.dropped_unclaimed += 1;
                    }
                    self.app.push_back((header, payload));
                }
                continue;
            }
            if let Some(event) = self.node.poll_event() {
                if let (Event::Unreachable(dst), Some(i)) = (&event, self.ipop.as_mut()) {
                    i.handle_unreachable(*dst);
                }
                self.events.push_back(event);
                continue;
            }
            if let Some((id, result)) = self.dht.poll_result() {
                let taken = match self.ipop.as_mut() {
                    Some(i) => {
                        i.handle_dht_result(now, &mut self.node, &mut self.dht, id, result.clone())
                    }
                    None => false,
                };
                if !taken {
                    self.results.push_back((id, result));
                }
                continue;
            }
            break;
        }
    }

    /// The next datagram to send (see [`Node::poll_transmit`]), sealed with secure
    /// edges (a datagram to a peer without a session waits for its handshake).
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<TransportAddr> {
        let Some(secure) = self.secure.as_mut() else {
            return self.node.poll_transmit(buf);
        };
        while let Some(to) = self.node.poll_transmit(&mut self.scratch) {
            secure.seal(self.now, to, &self.scratch);
        }
        secure.poll_transmit(buf)
    }

    /// The next overlay event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next finished DHT operation.
    pub fn poll_dht_result(&mut self) -> Option<(RequestId, Result<Outcome, DhtError>)> {
        self.results.pop_front()
    }

    /// The next application payload that did not arrive in a caller's buffer (at most
    /// [`MAX_UNCLAIMED`] wait).
    pub fn poll_delivery(&mut self) -> Option<(RoutedHeader, Vec<u8>)> {
        self.app.pop_front()
    }

    /// Payloads no layer claimed that were dropped because [`MAX_UNCLAIMED`] were
    /// already waiting for [`Stack::poll_delivery`].
    pub fn dropped_unclaimed(&self) -> u64 {
        self.dropped_unclaimed
    }

    /// When [`Stack::handle_timeout`] should be called next (None once the node left).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.node.poll_timeout()?;
        if let Some(d) = self.dht.poll_timeout() {
            next = next.min(d);
        }
        if let Some(i) = &self.ipop {
            next = next.min(i.poll_timeout());
        }
        if let Some(t) = self.secure.as_deref().and_then(Secure::poll_timeout) {
            next = next.min(t);
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::wire::{Mode, kind};

    /// Regression: payloads of a kind no layer takes used to pile up in the stack
    /// without bound (50 000 of them left 50 000 entries).
    #[test]
    fn fault2_unclaimed_deliveries_stay_bounded_and_are_counted() {
        let now = Instant::now();
        let me = Address::from_bytes([0x42; 20]);
        let mut stack = Stack::new(
            overlay::Config::default(),
            dht::Config::default(),
            me,
            1,
            now,
            WallClock::fixed(now),
        );
        stack
            .node
            .add_local_transport(TransportAddr::udp(([198, 18, 0, 1], 4000).into()));
        stack
            .node
            .join(now, &[TransportAddr::udp(([198, 18, 0, 2], 4000).into())]);
        let unclaimed = kind::FIRST_APP + 50;
        for i in 0..50_000u32 {
            let at = now + Duration::from_micros(u64::from(i));
            stack
                .dht_op(at, |_, n| {
                    n.send_routed(at, me, Mode::Exact, unclaimed, &i.to_be_bytes())
                })
                .unwrap();
        }
        assert_eq!(stack.app.len(), MAX_UNCLAIMED);
        assert_eq!(stack.dropped_unclaimed(), 50_000 - MAX_UNCLAIMED as u64);
        // The newest are kept.
        let (header, payload) = stack.poll_delivery().unwrap();
        assert_eq!(header.kind, unclaimed);
        assert_eq!(payload, (50_000 - MAX_UNCLAIMED as u32).to_be_bytes());
    }
}
