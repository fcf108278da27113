//! Messages routed over the overlay: a fixed header followed by a typed payload.
//!
//! Forwarding rewrites only the hop count and flags, in place (see
//! [`ROUTED_HOPS_OFFSET`]), so a forwarded datagram is never re-encoded or copied.

use super::codec::{Reader, Writer};
use super::{Error, HEADER_LEN};
use crate::address::Address;

/// Offset of the hop limit in a routed datagram.
pub(crate) const ROUTED_TTL_OFFSET: usize = HEADER_LEN;
/// Offset of the hop count in a routed datagram.
pub(crate) const ROUTED_HOPS_OFFSET: usize = HEADER_LEN + 1;
/// Offset of the flags byte in a routed datagram.
pub(crate) const ROUTED_FLAGS_OFFSET: usize = HEADER_LEN + 3;

/// Length of a signed message's trailer: the source's Ed25519 public key (32 bytes),
/// then its signature (64) over [`signing_input`].
pub const SIGNATURE_TRAILER: usize = 96;

/// Domain label that starts what a routed message's signature covers.
const SIGNING_LABEL: &[u8] = b"ipop routed message\0";

/// Writes into `out` (cleared first) what the source of a routed message signs: a
/// domain label, then the header fields no forwarder changes (mode, kind, `src`, `dst`,
/// `via` with a presence byte), then the payload. The hop limit, hop count and the
/// forwarders' flags are not covered.
pub fn signing_input(h: &RoutedHeader, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(SIGNING_LABEL);
    out.extend_from_slice(&[h.mode.to_u8(), h.kind]);
    out.extend_from_slice(h.src.as_bytes());
    out.extend_from_slice(h.dst.as_bytes());
    match &h.via {
        Some(via) => {
            out.push(1);
            out.extend_from_slice(via.as_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(payload);
}

/// Which node(s) a routed message is delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Only the node whose address equals the destination; dropped if there is none.
    Exact,
    /// The single node closest to the destination key.
    Nearest,
    /// The two nodes immediately left and right of the key, never a node at the key
    /// itself (DHT placement, and how a joining node finds its ring neighbours).
    Pair,
}

impl Mode {
    fn to_u8(self) -> u8 {
        match self {
            Mode::Exact => 0,
            Mode::Nearest => 1,
            Mode::Pair => 2,
        }
    }

    fn from_u8(v: u8) -> Result<Self, Error> {
        Ok(match v {
            0 => Mode::Exact,
            1 => Mode::Nearest,
            2 => Mode::Pair,
            _ => return Err(Error::BadValue),
        })
    }
}

/// Flags of a routed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RoutedFlags(u8);

impl RoutedFlags {
    /// On the wire only: a `via` address follows `dst` (derived from
    /// [`RoutedHeader::via`], never stored in a parsed header).
    const HAS_VIA: RoutedFlags = RoutedFlags(1);
    /// `via` has been passed: route by mode from here on.
    pub const VIA_DONE: RoutedFlags = RoutedFlags(2);
    /// The second copy of a `Pair` delivery: deliver here, do not route further.
    pub const PAIR_COPY: RoutedFlags = RoutedFlags(4);
    /// The payload ends with its source's signature trailer ([`SIGNATURE_TRAILER`]).
    pub const SIGNED: RoutedFlags = RoutedFlags(8);
    const ALL: u8 = 15;

    /// The raw bits.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether all flags of `other` are set.
    pub fn contains(self, other: RoutedFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with the flags of `other` set.
    pub fn with(self, other: RoutedFlags) -> RoutedFlags {
        RoutedFlags(self.0 | other.0)
    }
}

/// The header of a routed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutedHeader {
    /// Hop limit: the message is dropped once `hops` reaches it.
    pub ttl: u8,
    /// Overlay edges traversed so far (set to 1 by the originator's first send).
    pub hops: u8,
    /// Delivery mode.
    pub mode: Mode,
    /// See [`RoutedFlags`]. Whether a `via` follows is derived from `via`.
    pub flags: RoutedFlags,
    /// Payload kind (see [`super::kind`]).
    pub kind: u8,
    /// The originator's P2P address.
    pub src: Address,
    /// The destination address or key.
    pub dst: Address,
    /// A waypoint: the message is routed to `via` first, then on by mode (replies to
    /// joining nodes go through a node connected to them; relay edges through the relay).
    pub via: Option<Address>,
}

impl RoutedHeader {
    /// Encoded length of the header (after the datagram header).
    pub fn encoded_len(&self) -> usize {
        5 + 2 * Address::LEN + if self.via.is_some() { Address::LEN } else { 0 }
    }
}

/// A routed message: header and an opaque payload (parsed by the payload's owner).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Routed<'a> {
    /// The routing header.
    pub header: RoutedHeader,
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl<'a> Routed<'a> {
    pub(super) fn parse(mut r: Reader<'a>) -> Result<Self, Error> {
        let ttl = r.u8()?;
        let hops = r.u8()?;
        let mode = Mode::from_u8(r.u8()?)?;
        let flags = r.u8()?;
        if flags & !RoutedFlags::ALL != 0 {
            return Err(Error::BadValue);
        }
        let flags = RoutedFlags(flags);
        let has_via = flags.contains(RoutedFlags::HAS_VIA);
        let flags = RoutedFlags(flags.0 & !RoutedFlags::HAS_VIA.0);
        let kind = r.u8()?;
        let src = r.address()?;
        let dst = r.address()?;
        let via = if has_via { Some(r.address()?) } else { None };
        Ok(Routed {
            header: RoutedHeader {
                ttl,
                hops,
                mode,
                flags,
                kind,
                src,
                dst,
                via,
            },
            payload: r.rest(),
        })
    }

    pub(super) fn encoded_len(&self) -> usize {
        self.header.encoded_len() + self.payload.len()
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let h = &self.header;
        // HAS_VIA is derived from `via`, never trusted from the caller's flags.
        let flags = if h.via.is_some() {
            h.flags.with(RoutedFlags::HAS_VIA).bits()
        } else {
            h.flags.bits() & !RoutedFlags::HAS_VIA.bits()
        };
        w.u8(h.ttl)?;
        w.u8(h.hops)?;
        w.u8(h.mode.to_u8())?;
        w.u8(flags)?;
        w.u8(h.kind)?;
        w.address(&h.src)?;
        w.address(&h.dst)?;
        if let Some(via) = &h.via {
            w.address(via)?;
        }
        w.bytes(self.payload)
    }
}
