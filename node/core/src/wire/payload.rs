//! Payloads of routed messages that the overlay itself handles: connect-to-me (CTM)
//! requests and replies, probes, and tunnelled edge traffic of relay edges.

use super::codec::{AddressList, Reader, TransportList, Writer};
use super::{Error, MAX_NEIGHBORS, MAX_TRANSPORTS, Roles};
use crate::address::Address;

/// Payload kinds of routed messages.
pub mod kind {
    /// [`super::CtmRequest`].
    pub const CTM_REQUEST: u8 = 1;
    /// [`super::CtmReply`].
    pub const CTM_REPLY: u8 = 2;
    /// [`super::Probe`].
    pub const PROBE: u8 = 3;
    /// A whole edge-level datagram carried over a relay edge.
    pub const TUNNEL: u8 = 4;
    /// [`super::Broadcast`].
    pub const BROADCAST: u8 = 5;
    /// No route to a node: `OverlayPayload::Unreachable`.
    pub const UNREACHABLE: u8 = 6;
    /// Kinds from here on belong to the layers above the overlay (DHT, IPOP).
    pub const FIRST_APP: u8 = 16;
}

/// Connect-to-me: "link to me"; routed to a target address, answered by the node(s)
/// that receive it, after which both ends link at once (which is what punches holes
/// through NATs and stateful firewalls).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CtmRequest<'a> {
    /// Identifies the request; echoed by replies.
    pub token: u64,
    /// Why the requester wants the connection.
    pub roles: Roles,
    /// A node with a direct connection to the requester; replies are routed through it.
    pub reply_via: Option<Address>,
    /// Where the requester can be reached (local and learned public addresses).
    pub transports: TransportList<'a>,
    /// Peers the requester has direct edges to: relays for an edge when no direct one
    /// can be made.
    pub relays: AddressList<'a>,
}

/// The answer to a CTM: where the responder can be reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CtmReply<'a> {
    /// The token of the request.
    pub token: u64,
    /// The roles the requester asked for.
    pub roles: Roles,
    /// Where the responder can be reached.
    pub transports: TransportList<'a>,
    /// Peers the responder has direct edges to (possible relays).
    pub relays: AddressList<'a>,
}

/// An overlay-level echo (route tests, reachability checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Chosen by the sender.
    pub id: u64,
    /// The receiver should answer with an echo reply.
    pub echo_request: bool,
    /// This is the answer to an echo request.
    pub echo_reply: bool,
}

/// A bounded broadcast: delivered to the receiver, which passes it on to its
/// connections in the clockwise arc up to `end`, giving each a sub-arc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broadcast<'a> {
    /// The kind of the broadcast payload (a kind of the layers above).
    pub kind: u8,
    /// The node that broadcast it.
    pub origin: Address,
    /// The end of the arc this receiver covers (exclusive).
    pub end: Address,
    /// The payload.
    pub payload: &'a [u8],
}

/// A routed payload the overlay handles itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OverlayPayload<'a> {
    /// Connect-to-me request.
    CtmRequest(CtmRequest<'a>),
    /// Connect-to-me reply.
    CtmReply(CtmReply<'a>),
    /// Echo.
    Probe(Probe),
    /// An edge-level datagram carried over a relay edge.
    Tunnel(&'a [u8]),
    /// A bounded broadcast.
    Broadcast(Broadcast<'a>),
    /// The sender's message to this node could not be routed further (the node is
    /// gone, or the ring has no route to it yet).
    Unreachable(Address),
}

impl<'a> OverlayPayload<'a> {
    /// Parses the payload of a routed message of kind `kind`.
    pub fn parse(kind: u8, buf: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(buf);
        let p = match kind {
            kind::CTM_REQUEST => {
                let token = r.u64()?;
                let roles = Roles::from_bits(r.u8()?);
                let flags = r.u8()?;
                if flags & !1 != 0 {
                    return Err(Error::BadValue);
                }
                let reply_via = if flags & 1 != 0 {
                    Some(r.address()?)
                } else {
                    None
                };
                let transports = r.transport_list(MAX_TRANSPORTS)?;
                let relays = r.address_list(MAX_NEIGHBORS)?;
                OverlayPayload::CtmRequest(CtmRequest {
                    token,
                    roles,
                    reply_via,
                    transports,
                    relays,
                })
            }
            kind::CTM_REPLY => OverlayPayload::CtmReply(CtmReply {
                token: r.u64()?,
                roles: Roles::from_bits(r.u8()?),
                transports: r.transport_list(MAX_TRANSPORTS)?,
                relays: r.address_list(MAX_NEIGHBORS)?,
            }),
            kind::PROBE => {
                let id = r.u64()?;
                let flags = r.u8()?;
                if flags & !3 != 0 {
                    return Err(Error::BadValue);
                }
                OverlayPayload::Probe(Probe {
                    id,
                    echo_request: flags & 1 != 0,
                    echo_reply: flags & 2 != 0,
                })
            }
            kind::TUNNEL => return Ok(OverlayPayload::Tunnel(r.rest())),
            kind::UNREACHABLE => OverlayPayload::Unreachable(r.address()?),
            kind::BROADCAST => {
                let kind = r.u8()?;
                let origin = r.address()?;
                let end = r.address()?;
                return Ok(OverlayPayload::Broadcast(Broadcast {
                    kind,
                    origin,
                    end,
                    payload: r.rest(),
                }));
            }
            other => return Err(Error::UnknownKind(other)),
        };
        r.finish()?;
        Ok(p)
    }

    /// The routed-message kind of this payload.
    pub fn kind(&self) -> u8 {
        match self {
            OverlayPayload::CtmRequest(_) => kind::CTM_REQUEST,
            OverlayPayload::CtmReply(_) => kind::CTM_REPLY,
            OverlayPayload::Probe(_) => kind::PROBE,
            OverlayPayload::Tunnel(_) => kind::TUNNEL,
            OverlayPayload::Broadcast(_) => kind::BROADCAST,
            OverlayPayload::Unreachable(_) => kind::UNREACHABLE,
        }
    }

    /// Encoded length.
    pub fn encoded_len(&self) -> usize {
        match self {
            OverlayPayload::CtmRequest(m) => {
                8 + 1
                    + 1
                    + if m.reply_via.is_some() {
                        Address::LEN
                    } else {
                        0
                    }
                    + m.transports.encoded_len()
                    + m.relays.encoded_len()
            }
            OverlayPayload::CtmReply(m) => {
                8 + 1 + m.transports.encoded_len() + m.relays.encoded_len()
            }
            OverlayPayload::Probe(_) => 9,
            OverlayPayload::Tunnel(b) => b.len(),
            OverlayPayload::Broadcast(b) => 1 + 2 * Address::LEN + b.payload.len(),
            OverlayPayload::Unreachable(_) => Address::LEN,
        }
    }

    /// Writes the payload into `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(buf);
        match self {
            OverlayPayload::CtmRequest(m) => {
                w.u64(m.token)?;
                w.u8(m.roles.bits())?;
                w.u8(u8::from(m.reply_via.is_some()))?;
                if let Some(via) = &m.reply_via {
                    w.address(via)?;
                }
                w.transport_list(&m.transports, MAX_TRANSPORTS)?;
                w.address_list(&m.relays, MAX_NEIGHBORS)?;
            }
            OverlayPayload::CtmReply(m) => {
                w.u64(m.token)?;
                w.u8(m.roles.bits())?;
                w.transport_list(&m.transports, MAX_TRANSPORTS)?;
                w.address_list(&m.relays, MAX_NEIGHBORS)?;
            }
            OverlayPayload::Probe(p) => {
                w.u64(p.id)?;
                w.u8(u8::from(p.echo_request) | u8::from(p.echo_reply) << 1)?;
            }
            OverlayPayload::Tunnel(b) => w.bytes(b)?,
            OverlayPayload::Broadcast(b) => {
                w.u8(b.kind)?;
                w.address(&b.origin)?;
                w.address(&b.end)?;
                w.bytes(b.payload)?;
            }
            OverlayPayload::Unreachable(a) => w.address(a)?,
        }
        Ok(w.len())
    }
}
