//! UDP edges: one socket, batched receives (`recvmmsg`, and GRO where the kernel offers
//! it) through `quinn-udp`.

use std::cell::Cell;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest datagram handled.
pub const MAX_DATAGRAM: usize = 65_535;

/// Socket send and receive buffer size asked for.
const SOCKET_BUFFER: usize = 4 << 20;

/// Datagrams read per system call at most.
pub const BATCH: usize = 16;

/// A bound UDP socket.
#[derive(Debug)]
pub struct UdpEdge {
    socket: UdpSocket,
    state: UdpSocketState,
    /// Datagrams the kernel would not take (full buffer); UDP drops are the protocol's
    /// to recover from, like losses on the wire.
    send_drops: Cell<u64>,
}

/// Receive buffers for [`UdpEdge::recv_batch`], owned by the caller so that a received
/// datagram can be forwarded in place while the socket is borrowed for sending.
#[derive(Debug)]
pub struct RecvBufs {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl Default for RecvBufs {
    fn default() -> Self {
        RecvBufs {
            bufs: vec![vec![0u8; MAX_DATAGRAM]; BATCH],
            meta: vec![RecvMeta::default(); BATCH],
        }
    }
}

impl UdpEdge {
    /// Binds `addr`.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let std = std::net::UdpSocket::bind(addr)?;
        std.set_nonblocking(true)?;
        // Room for bursts while the node is busy: one thread serves the whole overlay
        // and the TAP. The forced variants pass the system limit when privileged.
        use nix::sys::socket::{setsockopt, sockopt};
        if setsockopt(&std, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(&std, sockopt::RcvBuf, &SOCKET_BUFFER);
        }
        if setsockopt(&std, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(&std, sockopt::SndBuf, &SOCKET_BUFFER);
        }
        let state = UdpSocketState::new((&std).into())?;
        Ok(UdpEdge {
            socket: UdpSocket::from_std(std)?,
            state,
            send_drops: Cell::new(0),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits until datagrams can be read.
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Reads the datagrams waiting (without blocking) into `bufs` and calls `each` with
    /// the source and the datagram (mutable, for in-place forwarding) for every one of
    /// them, GRO-coalesced ones split apart. Returns how many there were.
    pub fn recv_batch(
        &self,
        bufs: &mut RecvBufs,
        mut each: impl FnMut(SocketAddr, &mut [u8]),
    ) -> io::Result<usize> {
        let n = {
            let mut slices: Vec<IoSliceMut<'_>> =
                bufs.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let meta = &mut bufs.meta;
            self.socket.try_io(Interest::READABLE, || {
                self.state.recv((&self.socket).into(), &mut slices, meta)
            })?
        };
        let mut count = 0;
        for (buf, meta) in bufs.bufs.iter_mut().zip(&bufs.meta).take(n) {
            let stride = meta.stride.max(1);
            for chunk in buf[..meta.len].chunks_mut(stride) {
                each(meta.addr, chunk);
                count += 1;
            }
        }
        Ok(count)
    }

    /// Datagrams dropped because the socket buffer was full.
    pub fn send_drops(&self) -> u64 {
        self.send_drops.get()
    }

    /// Sends one datagram; one the kernel refuses (a full buffer, too large) is dropped
    /// and counted.
    pub fn send(&self, to: SocketAddr, data: &[u8]) {
        self.send_segments(to, data, None, 1);
    }

    /// Sends `data`: one datagram, or `count` of `segment_size` bytes (the last may be
    /// shorter) in one system call. What the kernel refuses is dropped and counted.
    fn send_segments(&self, to: SocketAddr, data: &[u8], segment_size: Option<usize>, count: u64) {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents: data,
            segment_size,
            src_ip: None,
        };
        // The socket is non-blocking; a UDP send needs no readiness tracking (and tokio's
        // `try_io` would refuse to even try before it has seen the socket writable).
        // `try_send`, not `send`: the latter reports only a full buffer and takes every
        // other refusal (EMSGSIZE among them) for a success.
        if self
            .state
            .try_send((&self.socket).into(), &transmit)
            .is_err()
        {
            self.send_drops.set(self.send_drops.get() + count);
        }
    }
}

/// The most payload one UDP send may carry, GSO trains included: an IPv4 packet's 65 535
/// bytes less its IP and UDP headers.
const MAX_SEND: usize = 65_535 - 20 - 8;

/// Datagrams to one destination gathered for one send with UDP segmentation offload
/// (GSO): consecutive datagrams of one size, the last possibly shorter, go out in one
/// system call, and the kernel cuts them apart as late as it can (over a veth, not at
/// all: the receiver's GRO takes the train whole).
#[derive(Debug)]
pub struct SendBatch {
    buf: Vec<u8>,
    to: Option<SocketAddr>,
    segment: usize,
    count: usize,
    /// The last datagram was shorter than `segment`: nothing may follow it.
    closed: bool,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            buf: Vec::with_capacity(MAX_SEND),
            to: None,
            segment: 0,
            count: 0,
            closed: false,
        }
    }
}

impl SendBatch {
    /// Adds a datagram for `to`, sending what was gathered first if it cannot join it.
    pub fn push(&mut self, edge: &UdpEdge, to: SocketAddr, data: &[u8]) {
        let joins = self.to == Some(to)
            && self.segment > 0
            && !self.closed
            && data.len() <= self.segment
            && self.count < edge.state.max_gso_segments()
            && self.buf.len() + data.len() <= MAX_SEND;
        if !joins {
            self.flush(edge);
            self.to = Some(to);
            self.segment = data.len();
        }
        self.buf.extend_from_slice(data);
        self.count += 1;
        self.closed = data.len() < self.segment;
    }

    /// Sends what was gathered.
    pub fn flush(&mut self, edge: &UdpEdge) {
        if let Some(to) = self.to.take() {
            let segments = (self.count > 1).then_some(self.segment);
            edge.send_segments(to, &self.buf, segments, self.count as u64);
        }
        self.buf.clear();
        self.count = 0;
        self.closed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams gathered into GSO trains arrive as the datagrams they were, in order:
    /// a shorter one ends a train, another size or destination starts the next.
    #[tokio::test]
    async fn trains_arrive_as_the_datagrams_they_were() {
        let a = UdpEdge::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = UdpEdge::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let c = UdpEdge::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (to_b, to_c) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        let sizes = [100, 100, 100, 40, 100, 100, 7, 1200, 1200];
        let mut batch = SendBatch::default();
        for (i, &n) in sizes.iter().enumerate() {
            batch.push(&a, to_b, &vec![i as u8; n]);
        }
        batch.push(&a, to_c, &[9; 100]);
        batch.flush(&a);
        assert_eq!(a.send_drops(), 0);
        let mut got = Vec::new();
        let mut bufs = RecvBufs::default();
        while got.len() < sizes.len() {
            b.readable().await.unwrap();
            let _ = b.recv_batch(&mut bufs, |_, d| got.push(d.to_vec()));
        }
        let expected: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![i as u8; n])
            .collect();
        assert_eq!(got, expected);
        c.readable().await.unwrap();
        let mut other = Vec::new();
        let _ = c.recv_batch(&mut bufs, |_, d| other.push(d.len()));
        assert_eq!(other, [100]);
    }
}
