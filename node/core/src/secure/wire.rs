//! The secure layer's datagrams (documented in `PROTOCOL.md`, "Secure edges").
//!
//! A 4-byte header like the overlay's, with its own magic `"WS"` so that the two can
//! never be confused, then one of four bodies. [`parse`] borrows the Noise bytes and the
//! ciphertext from the datagram; [`Packet::emit`] appends a datagram to a caller's
//! buffer. Handshake messages have exact lengths (the handshake carries no payload), so a
//! parser checks every length against a constant and never trusts one from the wire.

use crate::wire::{Error, Reader};

/// The first two bytes of every secure datagram.
pub const MAGIC: [u8; 2] = *b"WS";
/// The secure layer's wire version.
pub const VERSION: u8 = 1;
/// Length of the header (magic, version, kind).
pub(crate) const HEADER_LEN: usize = 4;
/// Largest datagram (what a TCP frame's 2-byte length can carry).
pub const MAX_DATAGRAM: usize = 65_535;
/// Length of the authentication tag of a ChaCha20-Poly1305 ciphertext.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a DATA datagram adds to its plaintext.
pub const DATA_OVERHEAD: usize = HEADER_LEN + 4 + 8 + TAG_LEN;
/// Largest plaintext one DATA datagram carries.
pub const MAX_PLAINTEXT: usize = MAX_DATAGRAM - DATA_OVERHEAD;

/// Noise message 1 of `XXpsk3` with an empty payload: `e` and the payload's tag.
pub(crate) const NOISE1_LEN: usize = 32 + TAG_LEN;
/// Noise message 2: `e`, the encrypted `s`, the payload's tag.
pub(crate) const NOISE2_LEN: usize = 32 + 32 + TAG_LEN + TAG_LEN;
/// Noise message 3: the encrypted `s`, the payload's tag.
pub(crate) const NOISE3_LEN: usize = 32 + TAG_LEN + TAG_LEN;

/// Datagram kinds (the fourth header byte).
pub(crate) mod kind {
    pub(crate) const HANDSHAKE1: u8 = 1;
    pub(crate) const HANDSHAKE2: u8 = 2;
    pub(crate) const HANDSHAKE3: u8 = 3;
    pub(crate) const DATA: u8 = 4;
}

/// One secure datagram, borrowing its variable part from the bytes it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    /// Initiator → responder: the initiator's index and Noise message 1.
    Handshake1 { sender: u32, noise: &'a [u8] },
    /// Responder → initiator: both indexes and Noise message 2.
    Handshake2 {
        sender: u32,
        receiver: u32,
        noise: &'a [u8],
    },
    /// Initiator → responder: both indexes and Noise message 3.
    Handshake3 {
        sender: u32,
        receiver: u32,
        noise: &'a [u8],
    },
    /// A sealed transport message for the receiver's session `receiver`.
    Data {
        receiver: u32,
        nonce: u64,
        ciphertext: &'a [u8],
    },
}

/// Parses one datagram.
pub(crate) fn parse(buf: &[u8]) -> Result<Packet<'_>, Error> {
    if buf.len() > MAX_DATAGRAM {
        return Err(Error::TooLong);
    }
    let mut r = Reader::new(buf);
    let packet = match r.header(MAGIC, VERSION)? {
        kind::HANDSHAKE1 => Packet::Handshake1 {
            sender: r.u32()?,
            noise: r.bytes(NOISE1_LEN)?,
        },
        kind::HANDSHAKE2 => Packet::Handshake2 {
            sender: r.u32()?,
            receiver: r.u32()?,
            noise: r.bytes(NOISE2_LEN)?,
        },
        kind::HANDSHAKE3 => Packet::Handshake3 {
            sender: r.u32()?,
            receiver: r.u32()?,
            noise: r.bytes(NOISE3_LEN)?,
        },
        kind::DATA => {
            let receiver = r.u32()?;
            let nonce = r.u64()?;
            let ciphertext = r.rest();
            if ciphertext.len() < TAG_LEN {
                return Err(Error::Truncated);
            }
            return Ok(Packet::Data {
                receiver,
                nonce,
                ciphertext,
            });
        }
        other => return Err(Error::UnknownKind(other)),
    };
    r.finish()?;
    Ok(packet)
}

impl Packet<'_> {
    fn kind(&self) -> u8 {
        match self {
            Packet::Handshake1 { .. } => kind::HANDSHAKE1,
            Packet::Handshake2 { .. } => kind::HANDSHAKE2,
            Packet::Handshake3 { .. } => kind::HANDSHAKE3,
            Packet::Data { .. } => kind::DATA,
        }
    }

    /// Appends the datagram to `buf`. A packet that would not parse back (a Noise body
    /// of the wrong length, a ciphertext shorter than a tag or too long) is refused.
    pub(crate) fn emit(&self, buf: &mut Vec<u8>) -> Result<(), Error> {
        let (noise_len, body) = match *self {
            Packet::Handshake1 { noise, .. } => (NOISE1_LEN, noise),
            Packet::Handshake2 { noise, .. } => (NOISE2_LEN, noise),
            Packet::Handshake3 { noise, .. } => (NOISE3_LEN, noise),
            Packet::Data { ciphertext, .. } => {
                if ciphertext.len() < TAG_LEN || ciphertext.len() > MAX_PLAINTEXT + TAG_LEN {
                    return Err(Error::BadValue);
                }
                (ciphertext.len(), ciphertext)
            }
        };
        if body.len() != noise_len {
            return Err(Error::BadValue);
        }
        buf.extend_from_slice(&MAGIC);
        buf.push(VERSION);
        buf.push(self.kind());
        match *self {
            Packet::Handshake1 { sender, .. } => buf.extend_from_slice(&sender.to_be_bytes()),
            Packet::Handshake2 {
                sender, receiver, ..
            }
            | Packet::Handshake3 {
                sender, receiver, ..
            } => {
                buf.extend_from_slice(&sender.to_be_bytes());
                buf.extend_from_slice(&receiver.to_be_bytes());
            }
            Packet::Data {
                receiver, nonce, ..
            } => {
                buf.extend_from_slice(&receiver.to_be_bytes());
                buf.extend_from_slice(&nonce.to_be_bytes());
            }
        }
        buf.extend_from_slice(body);
        Ok(())
    }
}

/// Writes a DATA header into `buf` (cleared first); the ciphertext is appended by the
/// caller, sealing in place without a copy.
pub(crate) fn data_header(buf: &mut Vec<u8>, receiver: u32, nonce: u64) {
    buf.clear();
    buf.extend_from_slice(&MAGIC);
    buf.push(VERSION);
    buf.push(kind::DATA);
    buf.extend_from_slice(&receiver.to_be_bytes());
    buf.extend_from_slice(&nonce.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_packet() -> impl Strategy<Value = (u8, u32, u32, u64, Vec<u8>)> {
        (1u8..=4, any::<u32>(), any::<u32>(), any::<u64>()).prop_flat_map(|(k, s, r, n)| {
            let len = match k {
                kind::HANDSHAKE1 => (NOISE1_LEN..=NOISE1_LEN).boxed(),
                kind::HANDSHAKE2 => (NOISE2_LEN..=NOISE2_LEN).boxed(),
                kind::HANDSHAKE3 => (NOISE3_LEN..=NOISE3_LEN).boxed(),
                _ => (TAG_LEN..=TAG_LEN + 300).boxed(),
            };
            len.prop_flat_map(move |l| {
                proptest::collection::vec(any::<u8>(), l).prop_map(move |b| (k, s, r, n, b))
            })
        })
    }

    fn packet(k: u8, s: u32, r: u32, n: u64, b: &[u8]) -> Packet<'_> {
        match k {
            kind::HANDSHAKE1 => Packet::Handshake1 {
                sender: s,
                noise: b,
            },
            kind::HANDSHAKE2 => Packet::Handshake2 {
                sender: s,
                receiver: r,
                noise: b,
            },
            kind::HANDSHAKE3 => Packet::Handshake3 {
                sender: s,
                receiver: r,
                noise: b,
            },
            _ => Packet::Data {
                receiver: r,
                nonce: n,
                ciphertext: b,
            },
        }
    }

    proptest! {
        #[test]
        fn emit_then_parse_gives_the_same_packet((k, s, r, n, b) in arb_packet()) {
            let p = packet(k, s, r, n, &b);
            let mut buf = Vec::new();
            p.emit(&mut buf).unwrap();
            prop_assert_eq!(parse(&buf), Ok(p));
            // Every strict prefix fails to parse; one more byte is trailing (handshakes).
            for cut in 0..buf.len() {
                prop_assert!(parse(&buf[..cut]).is_err() || k == kind::DATA && cut >= DATA_OVERHEAD);
            }
            if k != kind::DATA {
                buf.push(0);
                prop_assert_eq!(parse(&buf), Err(Error::TrailingBytes));
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn header_is_checked() {
        let mut buf = Vec::new();
        data_header(&mut buf, 7, 9);
        buf.extend_from_slice(&[0; TAG_LEN]);
        assert!(parse(&buf).is_ok());
        let mut bad = buf.clone();
        bad[0] = b'W';
        bad[1] = b'O';
        assert_eq!(parse(&bad), Err(Error::BadMagic));
        let mut bad = buf.clone();
        bad[2] = 2;
        assert_eq!(parse(&bad), Err(Error::UnsupportedVersion(2)));
        let mut bad = buf.clone();
        bad[3] = 9;
        assert_eq!(parse(&bad), Err(Error::UnknownKind(9)));
        let huge = [buf.clone(), vec![0; MAX_DATAGRAM]].concat();
        assert_eq!(parse(&huge), Err(Error::TooLong));
        // A noise body of the wrong length is not emitted.
        let p = Packet::Handshake1 {
            sender: 1,
            noise: &[0; 3],
        };
        assert_eq!(p.emit(&mut Vec::new()), Err(Error::BadValue));
    }
}
