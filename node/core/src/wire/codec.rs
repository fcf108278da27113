//! Bounds-checked readers and writers over byte slices, and the list types that let
//! messages borrow variable-length lists straight from the datagram without allocating.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::Error;
use crate::address::Address;
use crate::transport::{Proto, TransportAddr};

/// Reads fields from the front of a byte slice; every read is bounds-checked.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Reads a 4-byte datagram header (two magic bytes, the version, the kind) and
    /// returns the kind; a foreign magic or another version is an error.
    pub(crate) fn header(&mut self, magic: [u8; 2], version: u8) -> Result<u8, Error> {
        let head = self.bytes(4)?;
        if head[..2] != magic {
            return Err(Error::BadMagic);
        }
        if head[2] != version {
            return Err(Error::UnsupportedVersion(head[2]));
        }
        Ok(head[3])
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.buf.len() < n {
            return Err(Error::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.bytes(4)?);
        Ok(u32::from_be_bytes(a))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_be_bytes(a))
    }

    pub(crate) fn address(&mut self) -> Result<Address, Error> {
        let mut a = [0u8; Address::LEN];
        a.copy_from_slice(self.bytes(Address::LEN)?);
        Ok(Address::from_bytes(a))
    }

    pub(crate) fn transport(&mut self) -> Result<TransportAddr, Error> {
        let tag = self.u8()?;
        let proto = match tag >> 4 {
            1 => Proto::Udp,
            2 => Proto::Tcp,
            _ => return Err(Error::BadValue),
        };
        let ip = match tag & 0x0f {
            4 => {
                let b = self.bytes(4)?;
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.bytes(16)?);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            _ => return Err(Error::BadValue),
        };
        let port = self.u16()?;
        Ok(TransportAddr {
            proto,
            addr: SocketAddr::new(ip, port),
        })
    }

    /// A transport address that may be absent (tag byte 0).
    pub(crate) fn opt_transport(&mut self) -> Result<Option<TransportAddr>, Error> {
        if self.buf.first() == Some(&0) {
            self.bytes(1)?;
            return Ok(None);
        }
        self.transport().map(Some)
    }

    /// A count-prefixed list of addresses, at most `max` long.
    pub(crate) fn address_list(&mut self, max: usize) -> Result<AddressList<'a>, Error> {
        let n = usize::from(self.u8()?);
        if n > max {
            return Err(Error::TooLong);
        }
        Ok(AddressList::Wire(self.bytes(n * Address::LEN)?))
    }

    /// A count-prefixed list of transport addresses, at most `max` long.
    pub(crate) fn transport_list(&mut self, max: usize) -> Result<TransportList<'a>, Error> {
        let n = usize::from(self.u8()?);
        if n > max {
            return Err(Error::TooLong);
        }
        let start = self.buf;
        for _ in 0..n {
            self.transport()?;
        }
        let used = start.len() - self.buf.len();
        Ok(TransportList::Wire {
            raw: &start[..used],
            count: n as u8,
        })
    }

    /// How many bytes are not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Everything not read yet.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.buf
    }

    /// Fails unless everything was read (trailing bytes are a malformed message).
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes)
        }
    }
}

/// Writes fields to the front of a byte slice; every write is bounds-checked.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<(), Error> {
        let end = self.pos + b.len();
        if end > self.buf.len() {
            return Err(Error::BufferTooSmall);
        }
        self.buf[self.pos..end].copy_from_slice(b);
        self.pos = end;
        Ok(())
    }

    /// `n` zero bytes (padding).
    pub(crate) fn zeros(&mut self, n: usize) -> Result<(), Error> {
        let end = self.pos + n;
        if end > self.buf.len() {
            return Err(Error::BufferTooSmall);
        }
        self.buf[self.pos..end].fill(0);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), Error> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), Error> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), Error> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<(), Error> {
        self.bytes(&v.to_be_bytes())
    }

    pub(crate) fn address(&mut self, a: &Address) -> Result<(), Error> {
        self.bytes(a.as_bytes())
    }

    pub(crate) fn transport(&mut self, t: &TransportAddr) -> Result<(), Error> {
        let proto = match t.proto {
            Proto::Udp => 1u8,
            Proto::Tcp => 2u8,
        };
        match t.addr.ip() {
            IpAddr::V4(ip) => {
                self.u8(proto << 4 | 4)?;
                self.bytes(&ip.octets())?;
            }
            IpAddr::V6(ip) => {
                self.u8(proto << 4 | 6)?;
                self.bytes(&ip.octets())?;
            }
        }
        self.u16(t.addr.port())
    }

    pub(crate) fn opt_transport(&mut self, t: &Option<TransportAddr>) -> Result<(), Error> {
        match t {
            Some(t) => self.transport(t),
            None => self.u8(0),
        }
    }

    pub(crate) fn address_list(&mut self, list: &AddressList<'_>, max: usize) -> Result<(), Error> {
        let n = list.len();
        if n > max {
            return Err(Error::TooLong);
        }
        self.u8(n as u8)?;
        for a in list.iter() {
            self.address(&a)?;
        }
        Ok(())
    }

    pub(crate) fn transport_list(
        &mut self,
        list: &TransportList<'_>,
        max: usize,
    ) -> Result<(), Error> {
        let n = list.len();
        if n > max {
            return Err(Error::TooLong);
        }
        self.u8(n as u8)?;
        for t in list.iter() {
            self.transport(&t)?;
        }
        Ok(())
    }
}

/// Encoded length of a transport address.
pub(crate) fn transport_len(t: &TransportAddr) -> usize {
    match t.addr {
        SocketAddr::V4(_) => 1 + 4 + 2,
        SocketAddr::V6(_) => 1 + 16 + 2,
    }
}

/// Encoded length of an optional transport address.
pub(crate) fn opt_transport_len(t: &Option<TransportAddr>) -> usize {
    t.as_ref().map_or(1, transport_len)
}

/// A list of addresses: borrowed from a datagram, or from the sender's own slice.
#[derive(Clone, Copy, Debug)]
pub enum AddressList<'a> {
    /// Validated bytes of a received message (a multiple of 20 bytes).
    Wire(&'a [u8]),
    /// Addresses to send.
    Slice(&'a [Address]),
}

impl<'a> AddressList<'a> {
    /// The empty list.
    pub const EMPTY: AddressList<'static> = AddressList::Slice(&[]);

    /// Number of addresses.
    pub fn len(&self) -> usize {
        match self {
            AddressList::Wire(raw) => raw.len() / Address::LEN,
            AddressList::Slice(s) => s.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The addresses in order.
    pub fn iter(&self) -> impl Iterator<Item = Address> + 'a {
        let (raw, slice): (&'a [u8], &'a [Address]) = match *self {
            AddressList::Wire(raw) => (raw, &[]),
            AddressList::Slice(s) => (&[], s),
        };
        raw.chunks_exact(Address::LEN)
            .map(|c| {
                let mut a = [0u8; Address::LEN];
                a.copy_from_slice(c);
                Address::from_bytes(a)
            })
            .chain(slice.iter().copied())
    }

    pub(crate) fn encoded_len(&self) -> usize {
        1 + self.len() * Address::LEN
    }
}

impl PartialEq for AddressList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// A list of transport addresses: borrowed from a datagram, or from the sender's slice.
#[derive(Clone, Copy, Debug)]
pub enum TransportList<'a> {
    /// Validated bytes of a received message.
    Wire {
        /// The encoded entries.
        raw: &'a [u8],
        /// How many entries `raw` holds.
        count: u8,
    },
    /// Transport addresses to send.
    Slice(&'a [TransportAddr]),
}

impl<'a> TransportList<'a> {
    /// The empty list.
    pub const EMPTY: TransportList<'static> = TransportList::Slice(&[]);

    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            TransportList::Wire { count, .. } => usize::from(*count),
            TransportList::Slice(s) => s.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = TransportAddr> + 'a {
        let (raw, count, slice): (&'a [u8], u8, &'a [TransportAddr]) = match *self {
            TransportList::Wire { raw, count } => (raw, count, &[]),
            TransportList::Slice(s) => (&[], 0, s),
        };
        let mut reader = Reader::new(raw);
        // Entries were validated when the list was parsed, so reads cannot fail here;
        // `ok()` keeps that an invariant instead of a panic.
        (0..count)
            .map_while(move |_| reader.transport().ok())
            .chain(slice.iter().copied())
    }

    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            TransportList::Wire { raw, .. } => 1 + raw.len(),
            TransportList::Slice(s) => 1 + s.iter().map(transport_len).sum::<usize>(),
        }
    }
}

impl PartialEq for TransportList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
