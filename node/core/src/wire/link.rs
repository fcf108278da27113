//! Edge-level messages: the link handshake, keepalive/status, and close.

use super::codec::{AddressList, Reader, TransportList, Writer, opt_transport_len};
use super::{Error, MAX_NEIGHBORS, MAX_TRANSPORTS};
use crate::address::Address;
use crate::transport::TransportAddr;

/// Why a node holds a connection (a set of roles; each side keeps its own).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Roles(u8);

impl Roles {
    /// No role: the connection is kept only while the peer needs it.
    pub const NONE: Roles = Roles(0);
    /// Bootstrap connection of a joining node.
    pub const LEAF: Roles = Roles(1);
    /// One of the nearest ring neighbours (structured near).
    pub const NEAR: Roles = Roles(2);
    /// A Kleinberg long-distance link (structured far).
    pub const FAR: Roles = Roles(4);
    /// A direct edge to a busy traffic peer.
    pub const SHORTCUT: Roles = Roles(8);
    /// The edge carries a relay edge of this node to a third node.
    pub const RELAY: Roles = Roles(16);
    const ALL: u8 = 0x1f;
    /// Roles whose connections carry routed traffic.
    pub const STRUCTURED: Roles = Roles(2 | 4 | 8);

    /// The raw bits (unknown bits are dropped on parse).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Roles from bits, ignoring bits this version does not know.
    pub fn from_bits(bits: u8) -> Roles {
        Roles(bits & Self::ALL)
    }

    /// Whether every role in `other` is in `self`.
    pub fn contains(self, other: Roles) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a role.
    pub fn intersects(self, other: Roles) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether there is no role.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `self` without the roles in `other`.
    pub fn without(self, other: Roles) -> Roles {
        Roles(self.0 & !other.0)
    }

    /// Short names of the roles, e.g. `near+far`.
    pub fn names(self) -> String {
        let names: Vec<&str> = [
            (Roles::LEAF, "leaf"),
            (Roles::NEAR, "near"),
            (Roles::FAR, "far"),
            (Roles::SHORTCUT, "shortcut"),
            (Roles::RELAY, "relay"),
        ]
        .iter()
        .filter(|(r, _)| self.contains(*r))
        .map(|(_, n)| *n)
        .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join("+")
        }
    }
}

impl std::ops::BitOr for Roles {
    type Output = Roles;
    fn bitor(self, rhs: Roles) -> Roles {
        Roles(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Roles {
    fn bitor_assign(&mut self, rhs: Roles) {
        self.0 |= rhs.0;
    }
}

impl std::fmt::Debug for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Roles({})", self.names())
    }
}

/// LinkRequest flag: the `dst` address follows.
const REQ_DST: u8 = 1;
/// LinkRequest flag: a cookie follows.
const REQ_COOKIE: u8 = 2;

/// Link handshake, step 1: the initiator asks for a connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkRequest<'a> {
    /// Identifies the attempt; echoed in the response.
    pub token: u64,
    /// The overlay the initiator belongs to; a mismatch is refused.
    pub overlay: u64,
    /// The initiator's P2P address.
    pub src: Address,
    /// The P2P address the initiator expects to reach, if it knows it.
    pub dst: Option<Address>,
    /// Why the initiator wants the connection.
    pub roles: Roles,
    /// The transport address the initiator sent this to (how it sees the responder);
    /// absent over relay edges.
    pub your_addr: Option<TransportAddr>,
    /// Transport addresses where the initiator can be reached.
    pub transports: TransportList<'a>,
    /// The responder's return-routability cookie for this edge, echoed from a
    /// [`LinkStatus::Cookie`] response; a request that would create or move a connection
    /// must carry a valid one.
    pub cookie: Option<u64>,
}

impl<'a> LinkRequest<'a> {
    pub(super) fn parse(r: &mut Reader<'a>) -> Result<Self, Error> {
        let token = r.u64()?;
        let overlay = r.u64()?;
        let src = r.address()?;
        let flags = r.u8()?;
        if flags & !(REQ_DST | REQ_COOKIE) != 0 {
            return Err(Error::BadValue);
        }
        let dst = if flags & REQ_DST != 0 {
            Some(r.address()?)
        } else {
            None
        };
        let cookie = if flags & REQ_COOKIE != 0 {
            Some(r.u64()?)
        } else {
            None
        };
        let roles = Roles::from_bits(r.u8()?);
        let your_addr = r.opt_transport()?;
        let transports = r.transport_list(MAX_TRANSPORTS)?;
        Ok(LinkRequest {
            token,
            overlay,
            src,
            dst,
            roles,
            your_addr,
            transports,
            cookie,
        })
    }

    pub(super) fn encoded_len(&self) -> usize {
        8 + 8
            + Address::LEN
            + 1
            + if self.dst.is_some() { Address::LEN } else { 0 }
            + if self.cookie.is_some() { 8 } else { 0 }
            + 1
            + opt_transport_len(&self.your_addr)
            + self.transports.encoded_len()
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u64(self.token)?;
        w.u64(self.overlay)?;
        w.address(&self.src)?;
        let flags = if self.dst.is_some() { REQ_DST } else { 0 }
            | if self.cookie.is_some() { REQ_COOKIE } else { 0 };
        w.u8(flags)?;
        if let Some(dst) = &self.dst {
            w.address(dst)?;
        }
        if let Some(cookie) = self.cookie {
            w.u64(cookie)?;
        }
        w.u8(self.roles.bits())?;
        w.opt_transport(&self.your_addr)?;
        w.transport_list(&self.transports, MAX_TRANSPORTS)
    }
}

/// The outcome of a link request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkStatus {
    /// The connection exists now.
    Ok,
    /// The request reached the initiator itself.
    ConnectToSelf,
    /// A connection already exists (this response answers a duplicate request).
    AlreadyConnected,
    /// The responder is linking to the initiator itself; the initiator should wait for it.
    InProgress,
    /// The two nodes belong to different overlays.
    OverlayMismatch,
    /// The responder is not the node the initiator expected.
    WrongTarget,
    /// Return routability: the request would create or move a connection, so the
    /// initiator must send it again from the same edge carrying this cookie (which only
    /// a sender that receives at its claimed edge learns).
    Cookie(u64),
}

impl LinkStatus {
    fn to_u8(self) -> u8 {
        match self {
            LinkStatus::Ok => 0,
            LinkStatus::ConnectToSelf => 1,
            LinkStatus::AlreadyConnected => 2,
            LinkStatus::InProgress => 3,
            LinkStatus::OverlayMismatch => 4,
            LinkStatus::WrongTarget => 5,
            LinkStatus::Cookie(_) => 6,
        }
    }

    fn from_u8(v: u8, r: &mut Reader<'_>) -> Result<Self, Error> {
        Ok(match v {
            0 => LinkStatus::Ok,
            1 => LinkStatus::ConnectToSelf,
            2 => LinkStatus::AlreadyConnected,
            3 => LinkStatus::InProgress,
            4 => LinkStatus::OverlayMismatch,
            5 => LinkStatus::WrongTarget,
            6 => LinkStatus::Cookie(r.u64()?),
            _ => return Err(Error::BadValue),
        })
    }
}

/// Link handshake, step 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkResponse {
    /// The token of the request being answered.
    pub token: u64,
    /// The outcome.
    pub status: LinkStatus,
    /// The responder's P2P address.
    pub src: Address,
    /// The transport address the request came from, as the responder saw it: the
    /// initiator's address after any NAT (this is how nodes learn their public address);
    /// absent over relay edges.
    pub observed: Option<TransportAddr>,
    /// The responder's roles for the connection.
    pub roles: Roles,
}

impl LinkResponse {
    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let token = r.u64()?;
        let status = r.u8()?;
        Ok(LinkResponse {
            token,
            status: LinkStatus::from_u8(status, r)?,
            src: r.address()?,
            observed: r.opt_transport()?,
            roles: Roles::from_bits(r.u8()?),
        })
    }

    pub(super) fn encoded_len(&self) -> usize {
        let cookie = match self.status {
            LinkStatus::Cookie(_) => 8,
            _ => 0,
        };
        8 + 1 + cookie + Address::LEN + opt_transport_len(&self.observed) + 1
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u64(self.token)?;
        w.u8(self.status.to_u8())?;
        if let LinkStatus::Cookie(c) = self.status {
            w.u64(c)?;
        }
        w.address(&self.src)?;
        w.opt_transport(&self.observed)?;
        w.u8(self.roles.bits())
    }
}

/// Body of `Ping` and `Pong`: liveness, the sender's roles, and its ring neighbours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status<'a> {
    /// Chosen by the pinger, echoed by the pong (RTT measurement).
    pub nonce: u64,
    /// The sender's roles for this connection.
    pub roles: Roles,
    /// The sender's nearest neighbours counter-clockwise, closest first.
    pub left: AddressList<'a>,
    /// The sender's nearest neighbours clockwise, closest first.
    pub right: AddressList<'a>,
}

impl<'a> Status<'a> {
    pub(super) fn parse(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(Status {
            nonce: r.u64()?,
            roles: Roles::from_bits(r.u8()?),
            left: r.address_list(MAX_NEIGHBORS)?,
            right: r.address_list(MAX_NEIGHBORS)?,
        })
    }

    pub(super) fn encoded_len(&self) -> usize {
        8 + 1 + self.left.encoded_len() + self.right.encoded_len()
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u64(self.nonce)?;
        w.u8(self.roles.bits())?;
        w.address_list(&self.left, MAX_NEIGHBORS)?;
        w.address_list(&self.right, MAX_NEIGHBORS)
    }
}

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The sender leaves the overlay.
    Leaving,
    /// Neither side needs the connection any more.
    Unneeded,
    /// The sender has a newer connection to the receiver on another edge.
    Replaced,
}

impl CloseReason {
    fn to_u8(self) -> u8 {
        match self {
            CloseReason::Leaving => 1,
            CloseReason::Unneeded => 2,
            CloseReason::Replaced => 3,
        }
    }

    fn from_u8(v: u8) -> Result<Self, Error> {
        Ok(match v {
            1 => CloseReason::Leaving,
            2 => CloseReason::Unneeded,
            3 => CloseReason::Replaced,
            _ => return Err(Error::BadValue),
        })
    }
}

/// The sender drops the connection; a leaving node names its neighbours so that the
/// ring closes over the gap at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Close<'a> {
    /// Why.
    pub reason: CloseReason,
    /// The sender's nearest neighbours counter-clockwise, closest first.
    pub left: AddressList<'a>,
    /// The sender's nearest neighbours clockwise, closest first.
    pub right: AddressList<'a>,
}

impl<'a> Close<'a> {
    pub(super) fn parse(r: &mut Reader<'a>) -> Result<Self, Error> {
        Ok(Close {
            reason: CloseReason::from_u8(r.u8()?)?,
            left: r.address_list(MAX_NEIGHBORS)?,
            right: r.address_list(MAX_NEIGHBORS)?,
        })
    }

    pub(super) fn encoded_len(&self) -> usize {
        1 + self.left.encoded_len() + self.right.encoded_len()
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u8(self.reason.to_u8())?;
        w.address_list(&self.left, MAX_NEIGHBORS)?;
        w.address_list(&self.right, MAX_NEIGHBORS)
    }
}

/// Body of `MtuProbe`: a nonce, then padding that makes the datagram as long as the size
/// being probed (the padding is not read: any bytes are taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtuProbe {
    /// Chosen by the prober, echoed by the answer.
    pub nonce: u64,
    /// Padding bytes after the nonce.
    pub padding: usize,
}

impl MtuProbe {
    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let nonce = r.u64()?;
        let padding = r.bytes(r.remaining())?.len();
        Ok(MtuProbe { nonce, padding })
    }

    pub(super) fn encoded_len(&self) -> usize {
        8 + self.padding
    }

    pub(super) fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.u64(self.nonce)?;
        w.zeros(self.padding)
    }
}
