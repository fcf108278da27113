//! DHT messages, carried as routed payloads of kinds [`REQUEST`], [`REPLY`] and
//! [`REPLICATE`]. Parsers never panic and bound every length.

pub use super::owner::{OWNER_LEN, PROOF_LEN};
use crate::address::Address;
use crate::wire::{Error, Reader, Writer, kind};

/// Routed kind of a request to the node(s) responsible for a sub-key.
pub const REQUEST: u8 = kind::FIRST_APP;
/// Routed kind of the answer to a request.
pub const REPLY: u8 = kind::FIRST_APP + 1;
/// Routed kind of a record copied to another replica.
pub const REPLICATE: u8 = kind::FIRST_APP + 2;

/// Longest application key.
pub const MAX_KEY: usize = 255;
/// Longest value.
pub const MAX_VALUE: usize = 1024;
/// Longest password (it never goes on the wire: see [`super::owner`]).
pub const MAX_PASSWORD: usize = 64;
/// Highest revision a record may carry (63 bits). Parsers refuse higher ones, and a
/// replica refuses writes past it, so incrementing a revision can never overflow.
pub const MAX_REV: u64 = u64::MAX >> 1;

/// A DHT operation on one sub-key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Insert if absent.
    Create,
    /// Remove, proven by the owner.
    Delete,
    /// Replace (delete then create), proven by the old owner.
    Recreate,
    /// Read.
    Get,
}

impl Op {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Op::Create => 1,
            Op::Delete => 2,
            Op::Recreate => 3,
            Op::Get => 4,
        }
    }

    fn from_u8(v: u8) -> Result<Self, Error> {
        Ok(match v {
            1 => Op::Create,
            2 => Op::Delete,
            3 => Op::Recreate,
            4 => Op::Get,
            _ => return Err(Error::BadValue),
        })
    }
}

/// A request for one sub-key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The operation.
    pub op: Op,
    /// Chosen by the requester for the whole operation; echoed in replies, and what
    /// makes a retransmitted request idempotent.
    pub op_id: u64,
    /// Which of the key's sub-keys.
    pub sub: u8,
    /// The application key.
    pub key: &'a [u8],
    /// Writes: the owner's proof ([`PROOF_LEN`] bytes: the owner key, then its
    /// signature of the request); empty for reads. A create names the new record's
    /// owner with it; a delete or recreate must come from the record's owner.
    pub proof: &'a [u8],
    /// Recreate: the new owner key ([`OWNER_LEN`] bytes); empty otherwise.
    pub new_owner: &'a [u8],
    /// The value (create, recreate).
    pub value: &'a [u8],
    /// Time to live in seconds (create, recreate).
    pub ttl_s: u32,
    /// Writes: the requester's wall clock in milliseconds since the Unix epoch when it
    /// signed the write, strictly increasing per requester. Replicas keep the serial of
    /// the write that made a record and refuse writes with a serial not above it, and
    /// a record lives at most until `serial + ttl_s`: a replayed write is refused, or
    /// dies when the original would have.
    pub serial: u64,
}

/// The outcome of a request at one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Done (or, for a get, the value follows).
    Ok,
    /// Create: the key exists.
    Exists,
    /// Delete/get: no live value.
    NotFound,
    /// The proof is not the record owner's (or not valid).
    BadPassword,
    /// The replica refuses to store more: too many entries from this requester or in
    /// total, or the record's revisions are used up.
    Quota,
    /// The replica holds a later write (a higher serial), or the write expired before
    /// it arrived: a replay, or a requester whose clock went back.
    Stale,
}

impl Status {
    fn to_u8(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Exists => 1,
            Status::NotFound => 2,
            Status::BadPassword => 3,
            Status::Quota => 4,
            Status::Stale => 5,
        }
    }

    fn from_u8(v: u8) -> Result<Self, Error> {
        Ok(match v {
            0 => Status::Ok,
            1 => Status::Exists,
            2 => Status::NotFound,
            3 => Status::BadPassword,
            4 => Status::Quota,
            5 => Status::Stale,
            _ => return Err(Error::BadValue),
        })
    }
}

/// The answer of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The request's operation id.
    pub op_id: u64,
    /// The request's sub-key index.
    pub sub: u8,
    /// The outcome.
    pub status: Status,
    /// Revision of the replica's record (0 if it has none).
    pub rev: u64,
    /// Seconds the value has left to live (gets).
    pub ttl_left_s: u32,
    /// The value (gets that found one).
    pub value: &'a [u8],
    /// Gets: the certificate of the replica's record (a value or a deletion), so the
    /// reader can check that its owner wrote it and which of two answers is later.
    pub cert: Option<Cert>,
}

/// The write that made a record, as its owner signed it: a record carries it wherever
/// it goes, so replicas and readers can check the record against its owner without
/// trusting whoever passed it on (`owner::cert_signer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cert {
    /// The record's owner: the signer of a create or delete, the new owner of a recreate.
    pub owner: [u8; OWNER_LEN],
    /// The write: create, recreate or delete (a deletion's record is a tombstone).
    pub write: Op,
    /// The write's operation id.
    pub op_id: u64,
    /// The write's serial ([`Request::serial`]).
    pub serial: u64,
    /// The write's time to live in seconds.
    pub ttl_s: u32,
    /// The write's proof.
    pub proof: [u8; PROOF_LEN],
}

/// Length of an encoded [`Cert`].
const CERT_LEN: usize = OWNER_LEN + 1 + 8 + 8 + 4 + PROOF_LEN;

impl Cert {
    fn parse(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut owner = [0u8; OWNER_LEN];
        owner.copy_from_slice(r.bytes(OWNER_LEN)?);
        let write = Op::from_u8(r.u8()?)?;
        if write == Op::Get {
            return Err(Error::BadValue);
        }
        let (op_id, serial, ttl_s) = (r.u64()?, r.u64()?, r.u32()?);
        let mut proof = [0u8; PROOF_LEN];
        proof.copy_from_slice(r.bytes(PROOF_LEN)?);
        Ok(Cert {
            owner,
            write,
            op_id,
            serial,
            ttl_s,
            proof,
        })
    }

    fn emit(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        if self.write == Op::Get {
            return Err(Error::BadValue);
        }
        w.bytes(&self.owner)?;
        w.u8(self.write.to_u8())?;
        w.u64(self.op_id)?;
        w.u64(self.serial)?;
        w.u32(self.ttl_s)?;
        w.bytes(&self.proof)
    }
}

/// A record as replicas copy it to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRepr<'a> {
    /// The sub-key address.
    pub sub_key: Address,
    /// Which sub-key of the application key it is.
    pub sub: u8,
    /// The application key.
    pub key: &'a [u8],
    /// Revision.
    pub rev: u64,
    /// Deleted: the record only remembers its last write until it expires.
    pub tombstone: bool,
    /// The node that created it (as the sending replica claims; receivers count the
    /// record against the sender's quota, not this one's).
    pub creator: Address,
    /// The write that made it, with the owner key (Ed25519 public key) that proves
    /// writes.
    pub cert: Cert,
    /// Milliseconds it has left to live.
    pub ttl_left_ms: u32,
    /// The value.
    pub value: &'a [u8],
}

fn short_bytes<'a>(r: &mut Reader<'a>, max: usize) -> Result<&'a [u8], Error> {
    let n = usize::from(r.u8()?);
    if n > max {
        return Err(Error::TooLong);
    }
    r.bytes(n)
}

fn value_bytes<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], Error> {
    let n = usize::from(r.u16()?);
    if n > MAX_VALUE {
        return Err(Error::TooLong);
    }
    r.bytes(n)
}

/// A length-prefixed field that is empty or exactly `len` bytes.
fn exact_or_empty<'a>(r: &mut Reader<'a>, len: usize) -> Result<&'a [u8], Error> {
    let b = short_bytes(r, len)?;
    if !b.is_empty() && b.len() != len {
        return Err(Error::BadValue);
    }
    Ok(b)
}

fn put_exact_or_empty(w: &mut Writer<'_>, b: &[u8], len: usize) -> Result<(), Error> {
    if !b.is_empty() && b.len() != len {
        return Err(Error::BadValue);
    }
    put_short(w, b, len)
}

fn put_short(w: &mut Writer<'_>, b: &[u8], max: usize) -> Result<(), Error> {
    if b.len() > max {
        return Err(Error::TooLong);
    }
    w.u8(b.len() as u8)?;
    w.bytes(b)
}

fn revision(r: &mut Reader<'_>) -> Result<u64, Error> {
    let rev = r.u64()?;
    if rev > MAX_REV {
        return Err(Error::BadValue);
    }
    Ok(rev)
}

fn put_revision(w: &mut Writer<'_>, rev: u64) -> Result<(), Error> {
    if rev > MAX_REV {
        return Err(Error::BadValue);
    }
    w.u64(rev)
}

fn put_value(w: &mut Writer<'_>, b: &[u8]) -> Result<(), Error> {
    if b.len() > MAX_VALUE {
        return Err(Error::TooLong);
    }
    w.u16(b.len() as u16)?;
    w.bytes(b)
}

impl<'a> Request<'a> {
    /// Parses a request payload.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(buf);
        let req = Request {
            op: Op::from_u8(r.u8()?)?,
            op_id: r.u64()?,
            sub: r.u8()?,
            key: short_bytes(&mut r, MAX_KEY)?,
            proof: exact_or_empty(&mut r, PROOF_LEN)?,
            new_owner: exact_or_empty(&mut r, OWNER_LEN)?,
            value: value_bytes(&mut r)?,
            ttl_s: r.u32()?,
            serial: r.u64()?,
        };
        r.finish()?;
        Ok(req)
    }

    /// Writes the request, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(buf);
        w.u8(self.op.to_u8())?;
        w.u64(self.op_id)?;
        w.u8(self.sub)?;
        put_short(&mut w, self.key, MAX_KEY)?;
        put_exact_or_empty(&mut w, self.proof, PROOF_LEN)?;
        put_exact_or_empty(&mut w, self.new_owner, OWNER_LEN)?;
        put_value(&mut w, self.value)?;
        w.u32(self.ttl_s)?;
        w.u64(self.serial)?;
        Ok(w.len())
    }
}

impl<'a> Reply<'a> {
    /// Parses a reply payload.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(buf);
        let reply = Reply {
            op_id: r.u64()?,
            sub: r.u8()?,
            status: Status::from_u8(r.u8()?)?,
            rev: revision(&mut r)?,
            ttl_left_s: r.u32()?,
            value: value_bytes(&mut r)?,
            cert: match r.u8()? {
                0 => None,
                1 => Some(Cert::parse(&mut r)?),
                _ => return Err(Error::BadValue),
            },
        };
        r.finish()?;
        Ok(reply)
    }

    /// Writes the reply, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(buf);
        w.u64(self.op_id)?;
        w.u8(self.sub)?;
        w.u8(self.status.to_u8())?;
        put_revision(&mut w, self.rev)?;
        w.u32(self.ttl_left_s)?;
        put_value(&mut w, self.value)?;
        match &self.cert {
            None => w.u8(0)?,
            Some(cert) => {
                w.u8(1)?;
                cert.emit(&mut w)?;
            }
        }
        Ok(w.len())
    }
}

impl<'a> RecordRepr<'a> {
    /// Parses a replicated record.
    pub fn parse(buf: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(buf);
        let sub_key = r.address()?;
        let sub = r.u8()?;
        let key = short_bytes(&mut r, MAX_KEY)?;
        let rev = revision(&mut r)?;
        let flags = r.u8()?;
        if flags & !1 != 0 {
            return Err(Error::BadValue);
        }
        let rec = RecordRepr {
            sub_key,
            sub,
            key,
            rev,
            tombstone: flags & 1 != 0,
            creator: r.address()?,
            cert: Cert::parse(&mut r)?,
            ttl_left_ms: r.u32()?,
            value: value_bytes(&mut r)?,
        };
        r.finish()?;
        Ok(rec)
    }

    /// Writes the record, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(buf);
        w.address(&self.sub_key)?;
        w.u8(self.sub)?;
        put_short(&mut w, self.key, MAX_KEY)?;
        put_revision(&mut w, self.rev)?;
        w.u8(u8::from(self.tombstone))?;
        w.address(&self.creator)?;
        self.cert.emit(&mut w)?;
        w.u32(self.ttl_left_ms)?;
        put_value(&mut w, self.value)?;
        Ok(w.len())
    }
}

/// Largest encoded DHT message.
/// (A record: sub-key, sub, key, revision, flags, creator, certificate, time to
/// live, value; requests and replies are shorter.)
pub const MAX_MESSAGE: usize = 20 + 1 + 1 + MAX_KEY + 8 + 1 + 20 + CERT_LEN + 4 + 2 + MAX_VALUE;

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
