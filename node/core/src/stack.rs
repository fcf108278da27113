//! A node's protocol layers put together: the overlay [`Node`] and the [`Dht`] on top of
//! it. The simulator and the real driver both run a `Stack`, so the glue between the
//! layers (who gets which routed message, whose timer fires) exists once.

use std::time::Instant;

use crate::address::Address;
use crate::dht::{self, Dht, DhtError, Outcome, RequestId};
use crate::overlay::{self, Event, Handled, Node};
use crate::transport::TransportAddr;
use crate::wire::RoutedHeader;

/// The protocol layers of one node.
#[derive(Debug)]
pub struct Stack {
    /// The overlay.
    pub node: Node,
    /// The DHT.
    pub dht: Dht,
    app: Vec<(RoutedHeader, Vec<u8>)>,
}

impl Stack {
    /// A stack for a node with address `address`; `seed` drives all random choices.
    pub fn new(
        overlay: overlay::Config,
        dht: dht::Config,
        address: Address,
        seed: u64,
        now: Instant,
    ) -> Self {
        Stack {
            node: Node::new(overlay, address, seed, now),
            dht: Dht::new(dht, seed.rotate_left(17), now),
            app: Vec::new(),
        }
    }

    /// Handles one received datagram (see [`Node::handle_datagram`]); DHT messages are
    /// consumed here, other application payloads come back as [`Handled::Deliver`].
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: TransportAddr,
        buf: &mut [u8],
    ) -> Handled {
        let handled = match self.node.handle_datagram(now, from, buf) {
            Handled::Deliver(d) => {
                let payload = &buf[d.payload.clone()];
                if self
                    .dht
                    .handle_delivery(now, &mut self.node, &d.header, payload)
                {
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

    /// Runs due timers of every layer.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.node.handle_timeout(now);
        self.dht.handle_timeout(now, &mut self.node);
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

    /// Moves messages the overlay delivered without a caller's buffer to the DHT, and
    /// starts DHT operations that waited for the node to be correctly connected.
    fn pump(&mut self, now: Instant) {
        loop {
            if self.node.is_correctly_connected() && self.dht.has_waiting() {
                self.dht.handle_timeout(now, &mut self.node);
            }
            let Some((header, payload)) = self.node.poll_delivery() else {
                break;
            };
            if !self
                .dht
                .handle_delivery(now, &mut self.node, &header, &payload)
            {
                self.app.push((header, payload));
            }
        }
    }

    /// The next datagram to send (see [`Node::poll_transmit`]).
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<TransportAddr> {
        self.node.poll_transmit(buf)
    }

    /// The next overlay event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.node.poll_event()
    }

    /// The next finished DHT operation.
    pub fn poll_dht_result(&mut self) -> Option<(RequestId, Result<Outcome, DhtError>)> {
        self.dht.poll_result()
    }

    /// The next application payload that did not arrive in a caller's buffer.
    pub fn poll_delivery(&mut self) -> Option<(RoutedHeader, Vec<u8>)> {
        if self.app.is_empty() {
            None
        } else {
            Some(self.app.remove(0))
        }
    }

    /// When [`Stack::handle_timeout`] should be called next (None once the node left).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let node = self.node.poll_timeout()?;
        Some(self.dht.poll_timeout().map_or(node, |d| d.min(node)))
    }
}
