//! The secure layer's datagrams (documented in `PROTOCOL.md`, "Secure edges").
//!
//! A 4-byte header like the overlay's, with its own magic `"WS"` so that the two can
//! never be confused, then one of four bodies. [`parse`] borrows the Noise bytes and the
//! ciphertext from the datagram; [`Packet::emit`] appends a datagram to a caller's
//! buffer. Handshake messages have exact lengths (only message 2 carries a payload, the
//! responder's admission secrets as 4-byte ids, 1 to [`MAX_SECRETS`] of them), so a
//! parser checks every length against a constant and never trusts one from the wire.

use crate::wire::{Error, Reader};

/// The first two bytes of every secure datagram.
pub const MAGIC: [u8; 2] = *b"WS";
/// The secure layer's wire version.
pub const VERSION: u8 = 2;
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
/// Length of an admission secret's id (see `secure::secret_id`).
pub(crate) const SECRET_ID_LEN: usize = 4;
/// Most admission secrets a node holds at once (during a rotation: the new and the old).
pub const MAX_SECRETS: usize = 4;
/// Noise message 2 with an empty payload: `e`, the encrypted `s`, the payload's tag.
const NOISE2_BASE: usize = 32 + 32 + TAG_LEN + TAG_LEN;
/// Shortest Noise message 2: its payload offers one secret id.
pub(crate) const NOISE2_MIN: usize = NOISE2_BASE + SECRET_ID_LEN;
/// Longest Noise message 2: its payload offers [`MAX_SECRETS`] ids.
pub(crate) const NOISE2_MAX: usize = NOISE2_BASE + MAX_SECRETS * SECRET_ID_LEN;
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
    /// Responder → initiator: both indexes and Noise message 2, whose payload is the
    /// ids of the admission secrets the responder holds.
    Handshake2 {
        sender: u32,
        receiver: u32,
        noise: &'a [u8],
    },
    /// Initiator → responder: both indexes, the id of the admission secret (the psk) the
    /// initiator chose among those offered, and Noise message 3.
    Handshake3 {
        sender: u32,
        receiver: u32,
        secret: [u8; SECRET_ID_LEN],
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
        kind::HANDSHAKE2 => {
            let (sender, receiver) = (r.u32()?, r.u32()?);
            let noise = r.rest();
            if noise.len() < NOISE2_MIN {
                return Err(Error::Truncated);
            }
            if !noise2_len_ok(noise.len()) {
                return Err(Error::BadValue);
            }
            return Ok(Packet::Handshake2 {
                sender,
                receiver,
                noise,
            });
        }
        kind::HANDSHAKE3 => {
            let (sender, receiver) = (r.u32()?, r.u32()?);
            let mut secret = [0u8; SECRET_ID_LEN];
            secret.copy_from_slice(r.bytes(SECRET_ID_LEN)?);
            Packet::Handshake3 {
                sender,
                receiver,
                secret,
                noise: r.bytes(NOISE3_LEN)?,
            }
        }
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

/// Whether a Noise message 2 of `len` bytes carries a whole number of secret ids, from
/// one to [`MAX_SECRETS`].
pub(crate) fn noise2_len_ok(len: usize) -> bool {
    (NOISE2_MIN..=NOISE2_MAX).contains(&len) && (len - NOISE2_BASE) % SECRET_ID_LEN == 0
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
            Packet::Handshake2 { noise, .. } if noise2_len_ok(noise.len()) => (noise.len(), noise),
            Packet::Handshake2 { .. } => return Err(Error::BadValue),
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
            } => {
                buf.extend_from_slice(&sender.to_be_bytes());
                buf.extend_from_slice(&receiver.to_be_bytes());
            }
            Packet::Handshake3 {
                sender,
                receiver,
                secret,
                ..
            } => {
                buf.extend_from_slice(&sender.to_be_bytes());
                buf.extend_from_slice(&receiver.to_be_bytes());
                buf.extend_from_slice(&secret);
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
                kind::HANDSHAKE2 => (1..=MAX_SECRETS)
                    .prop_map(|k| NOISE2_BASE + k * SECRET_ID_LEN)
                    .boxed(),
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
                secret: n.to_be_bytes()[..SECRET_ID_LEN].try_into().unwrap(),
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
                let variable = k == kind::DATA && cut >= DATA_OVERHEAD
                    || k == kind::HANDSHAKE2 && noise2_len_ok(cut.saturating_sub(HEADER_LEN + 8));
                prop_assert!(parse(&buf[..cut]).is_err() || variable);
            }
            if k == kind::HANDSHAKE2 {
                // One more byte is not a whole id; one more id may be too many.
                buf.push(0);
                prop_assert_eq!(parse(&buf), Err(Error::BadValue));
            } else if k != kind::DATA {
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
        bad[2] = 1;
        assert_eq!(parse(&bad), Err(Error::UnsupportedVersion(1)));
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
