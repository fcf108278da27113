//! What the layers above send through the overlay: application messages (signed or
//! not) and probes.

use std::time::Instant;

use super::Node;
use super::routing::SendError;
use crate::address::Address;
use crate::wire::{Mode, OverlayPayload, Probe, kind};

impl Node {
    /// Sends `payload` of an application `kind` (≥ `kind::FIRST_APP`) to `dst`, signed
    /// if the node signs ([`Node::enable_signatures`]).
    pub fn send_routed(
        &mut self,
        now: Instant,
        dst: Address,
        mode: Mode,
        kind: u8,
        payload: &[u8],
    ) -> Result<(), SendError> {
        self.send_app(now, dst, mode, kind, payload, true)
    }

    /// [`Node::send_routed`] without a signature, for bulk data that the layer above
    /// authenticates itself or does not need to (IP packets: a keyed namespace seals
    /// them, an open one takes them from anyone).
    pub fn send_routed_unsigned(
        &mut self,
        now: Instant,
        dst: Address,
        mode: Mode,
        kind: u8,
        payload: &[u8],
    ) -> Result<(), SendError> {
        self.send_app(now, dst, mode, kind, payload, false)
    }

    fn send_app(
        &mut self,
        now: Instant,
        dst: Address,
        mode: Mode,
        kind: u8,
        payload: &[u8],
        sign: bool,
    ) -> Result<(), SendError> {
        if !self.is_running() {
            return Err(SendError::NotRunning);
        }
        if kind < kind::FIRST_APP {
            return Err(SendError::ReservedKind(kind));
        }
        let h = self.header(dst, mode, kind, None);
        self.originate_bytes(now, h, payload, sign)
    }

    /// Sends a probe to the node at `dst` (exact routing). With `echo` the destination
    /// answers, which surfaces here as [`Event::ProbeReply`].
    pub fn send_probe(
        &mut self,
        now: Instant,
        dst: Address,
        id: u64,
        echo: bool,
    ) -> Result<(), SendError> {
        if !self.is_running() {
            return Err(SendError::NotRunning);
        }
        let probe = OverlayPayload::Probe(Probe {
            id,
            echo_request: echo,
            echo_reply: false,
            request_hops: 0,
        });
        let h = self.header(dst, Mode::Exact, kind::PROBE, None);
        self.originate(now, h, &probe)
    }
}
