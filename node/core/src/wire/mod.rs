//! The overlay's versioned binary wire format (documented in `PROTOCOL.md`).
//!
//! Every datagram starts with a 4-byte header: the magic `"WO"`, the protocol version,
//! and the message kind. [`parse`] turns bytes into a [`Message`] that borrows from the
//! datagram (lists are validated views, nothing is allocated); [`Message::emit`] writes a
//! message into a caller's buffer. Parsing never panics and never trusts a length field.

pub(crate) mod codec;
mod link;
mod payload;
mod routed;

pub use codec::{AddressList, TransportList};
pub use link::{
    Close, CloseReason, LinkRequest, LinkResponse, LinkStatus, MtuProbe, Roles, Status,
};
pub use payload::{Broadcast, CtmReply, CtmRequest, OverlayPayload, Probe, kind};
pub use routed::{Mode, Routed, RoutedFlags, RoutedHeader, SIGNATURE_TRAILER, signing_input};

pub(crate) use codec::{Reader, Writer};
pub(crate) use routed::{ROUTED_FLAGS_OFFSET, ROUTED_HOPS_OFFSET, ROUTED_TTL_OFFSET};

/// The first two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"WO";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Length of the datagram header (magic, version, kind).
pub const HEADER_LEN: usize = 4;
/// Most transport addresses a node advertises in one message.
pub const MAX_TRANSPORTS: usize = 8;
/// Most neighbours per side in a status message.
pub const MAX_NEIGHBORS: usize = 8;

/// Why a datagram could not be parsed or emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The datagram ended before a field did.
    #[error("truncated message")]
    Truncated,
    /// The datagram does not start with the magic bytes.
    #[error("not an overlay datagram (bad magic)")]
    BadMagic,
    /// A version this implementation does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// An unknown message kind.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// A field holds a value outside its domain.
    #[error("invalid field value")]
    BadValue,
    /// A list is longer than the protocol allows.
    #[error("list too long")]
    TooLong,
    /// Bytes left over after the message.
    #[error("trailing bytes after message")]
    TrailingBytes,
    /// The output buffer cannot hold the message.
    #[error("buffer too small")]
    BufferTooSmall,
}

/// Datagram kinds (the fourth header byte).
mod msg_kind {
    pub(super) const LINK_REQUEST: u8 = 1;
    pub(super) const LINK_RESPONSE: u8 = 2;
    pub(super) const PING: u8 = 3;
    pub(super) const PONG: u8 = 4;
    pub(super) const CLOSE: u8 = 5;
    pub(super) const ROUTED: u8 = 6;
    pub(super) const MTU_PROBE: u8 = 7;
    pub(super) const MTU_ACK: u8 = 8;
}

/// One overlay datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Message<'a> {
    /// Asks the receiver to form a connection (link handshake, step 1).
    LinkRequest(LinkRequest<'a>),
    /// Answers a link request (step 2); tells the initiator where it was seen from.
    LinkResponse(LinkResponse),
    /// Keepalive and status (roles, ring neighbours); answered by a `Pong`.
    Ping(Status<'a>),
    /// Answer to a `Ping`, echoing its nonce.
    Pong(Status<'a>),
    /// The sender drops the connection.
    Close(Close<'a>),
    /// A message routed over the overlay.
    Routed(Routed<'a>),
    /// Path-MTU probe: is a datagram this long carried? Answered by an `MtuAck`.
    MtuProbe(MtuProbe),
    /// Answer to an `MtuProbe`, echoing its nonce.
    MtuAck(u64),
}

/// Parses one datagram.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, Error> {
    let mut r = Reader::new(buf);
    let msg = match r.header(MAGIC, VERSION)? {
        msg_kind::LINK_REQUEST => Message::LinkRequest(LinkRequest::parse(&mut r)?),
        msg_kind::LINK_RESPONSE => Message::LinkResponse(LinkResponse::parse(&mut r)?),
        msg_kind::PING => Message::Ping(Status::parse(&mut r)?),
        msg_kind::PONG => Message::Pong(Status::parse(&mut r)?),
        msg_kind::CLOSE => Message::Close(Close::parse(&mut r)?),
        msg_kind::ROUTED => return Ok(Message::Routed(Routed::parse(r)?)),
        msg_kind::MTU_PROBE => Message::MtuProbe(MtuProbe::parse(&mut r)?),
        msg_kind::MTU_ACK => Message::MtuAck(r.u64()?),
        other => return Err(Error::UnknownKind(other)),
    };
    r.finish()?;
    Ok(msg)
}

impl Message<'_> {
    fn kind(&self) -> u8 {
        match self {
            Message::LinkRequest(_) => msg_kind::LINK_REQUEST,
            Message::LinkResponse(_) => msg_kind::LINK_RESPONSE,
            Message::Ping(_) => msg_kind::PING,
            Message::Pong(_) => msg_kind::PONG,
            Message::Close(_) => msg_kind::CLOSE,
            Message::Routed(_) => msg_kind::ROUTED,
            Message::MtuProbe(_) => msg_kind::MTU_PROBE,
            Message::MtuAck(_) => msg_kind::MTU_ACK,
        }
    }

    /// Bytes needed to emit the message.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Message::LinkRequest(m) => m.encoded_len(),
                Message::LinkResponse(m) => m.encoded_len(),
                Message::Ping(m) | Message::Pong(m) => m.encoded_len(),
                Message::Close(m) => m.encoded_len(),
                Message::Routed(m) => m.encoded_len(),
                Message::MtuProbe(m) => m.encoded_len(),
                Message::MtuAck(_) => 8,
            }
    }

    /// Writes the datagram into `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(buf);
        w.bytes(&MAGIC)?;
        w.u8(VERSION)?;
        w.u8(self.kind())?;
        match self {
            Message::LinkRequest(m) => m.emit(&mut w)?,
            Message::LinkResponse(m) => m.emit(&mut w)?,
            Message::Ping(m) | Message::Pong(m) => m.emit(&mut w)?,
            Message::Close(m) => m.emit(&mut w)?,
            Message::Routed(m) => m.emit(&mut w)?,
            Message::MtuProbe(m) => m.emit(&mut w)?,
            Message::MtuAck(nonce) => w.u64(*nonce)?,
        }
        Ok(w.len())
    }

    /// Emits into a new vector (for tests and tools; the node reuses buffers).
    pub fn to_vec(&self) -> Result<Vec<u8>, Error> {
        let mut v = vec![0u8; self.buffer_len()];
        let n = self.emit(&mut v)?;
        v.truncate(n);
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
