//! TCP edges: overlay datagrams on TCP streams, each preceded by its length (2 bytes,
//! big-endian). Streams are keyed by the remote socket address: the address dialled for
//! outgoing streams, the peer's (ephemeral) address for accepted ones, so the protocol
//! core answers a stream by sending to the address it came from.
//!
//! Hostile peers cannot make it grow without bound: streams (accepted and dialled) and
//! connects under way are capped ([`Limits`]), a frame's buffer grows with the bytes that
//! arrive rather than with what its length prefix promises, a prefix above
//! [`MAX_FRAME`] closes the stream, and a failed accept is retried after a pause. Each
//! refusal is counted ([`TcpStats`]).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Frames queued per stream before new ones are dropped (like a full UDP buffer).
const QUEUE: usize = 256;
/// A stream with no frame in either direction for this long is closed.
const IDLE: Duration = Duration::from_secs(120);
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest frame: the largest datagram the overlay sends (ipop-core's routing limit).
pub const MAX_FRAME: usize = 65_000;

/// Caps on the streams a node keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Streams open or being dialled; accepts and connects beyond it are refused.
    pub streams: usize,
    /// Connects under way; more are refused.
    pub connecting: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            streams: 256,
            connecting: 32,
        }
    }
}

/// What the TCP edges refused or failed at, for `status --json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpStats {
    /// Streams open or being dialled now.
    pub streams: usize,
    /// Frames dropped because a stream's queue was full or the frame too long.
    pub send_drops: u64,
    /// Failed accepts (such as running out of file descriptors).
    pub accept_errors: u64,
    /// Accepted streams closed at once because [`Limits::streams`] were open.
    pub accepts_refused: u64,
    /// Connects not started because of [`Limits`] (their frame is dropped).
    pub connects_refused: u64,
    /// Streams closed for announcing a frame longer than [`MAX_FRAME`].
    pub oversized_frames: u64,
}

/// Counters shared with the accept loop and the stream tasks.
#[derive(Debug, Default)]
struct Shared {
    streams: AtomicUsize,
    connecting: AtomicUsize,
    accept_errors: Arc<AtomicU64>,
    accepts_refused: AtomicU64,
    connects_refused: AtomicU64,
    oversized_frames: AtomicU64,
}

/// One unit of a capped count (streams or connects), given back when dropped.
struct Slot {
    shared: Arc<Shared>,
    count: fn(&Shared) -> &AtomicUsize,
}

impl Slot {
    fn take(shared: &Arc<Shared>, count: fn(&Shared) -> &AtomicUsize, max: usize) -> Option<Slot> {
        count(shared)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot {
            shared: shared.clone(),
            count,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        (self.count)(&self.shared).fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the stream tasks report to the driver.
#[derive(Debug)]
pub enum TcpEvent {
    /// A frame arrived on the stream keyed `from`.
    Frame {
        /// The stream.
        from: SocketAddr,
        /// The frame.
        data: Vec<u8>,
    },
    /// A stream was accepted; frames for it go to `writer`.
    Accepted {
        /// The stream.
        peer: SocketAddr,
        /// Its writer queue.
        writer: mpsc::Sender<Vec<u8>>,
    },
    /// The stream ended (closed, failed, idle, or could not connect).
    Closed(SocketAddr),
}

/// The node's TCP streams.
#[derive(Debug)]
pub struct TcpEdges {
    local: SocketAddr,
    limits: Limits,
    streams: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    events: mpsc::Sender<TcpEvent>,
    shared: Arc<Shared>,
    send_drops: u64,
}

impl TcpEdges {
    /// Listens on `addr`, keeping within `limits`; stream events go to `events`.
    pub async fn bind(
        addr: SocketAddr,
        limits: Limits,
        events: mpsc::Sender<TcpEvent>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (tx, sh) = (events.clone(), shared.clone());
        let errors = shared.accept_errors.clone();
        tokio::spawn(crate::accept::serve(
            listener,
            "tcp",
            errors,
            move |(stream, peer)| {
                let Some(slot) = Slot::take(&sh, |s| &s.streams, limits.streams) else {
                    sh.accepts_refused.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                    return ControlFlow::Continue(());
                };
                let (writer, queue) = mpsc::channel(QUEUE);
                // The driver learns of the stream before any frame of it.
                match tx.try_send(TcpEvent::Accepted { peer, writer }) {
                    Ok(()) => {
                        start_stream(stream, peer, queue, tx.clone(), sh.clone(), slot);
                        ControlFlow::Continue(())
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        sh.accepts_refused.fetch_add(1, Ordering::Relaxed);
                        ControlFlow::Continue(())
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => ControlFlow::Break(()),
                }
            },
        ));
        Ok(TcpEdges {
            local,
            limits,
            streams: HashMap::new(),
            events,
            shared,
            send_drops: 0,
        })
    }

    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What was refused or failed so far, and the streams open now.
    pub fn stats(&self) -> TcpStats {
        let s = &self.shared;
        TcpStats {
            streams: s.streams.load(Ordering::Relaxed),
            send_drops: self.send_drops,
            accept_errors: s.accept_errors.load(Ordering::Relaxed),
            accepts_refused: s.accepts_refused.load(Ordering::Relaxed),
            connects_refused: s.connects_refused.load(Ordering::Relaxed),
            oversized_frames: s.oversized_frames.load(Ordering::Relaxed),
        }
    }

    /// Records an accepted stream.
    pub fn accepted(&mut self, peer: SocketAddr, writer: mpsc::Sender<Vec<u8>>) {
        self.streams.insert(peer, writer);
    }

    /// Forgets a stream that ended.
    pub fn closed(&mut self, peer: SocketAddr) {
        self.streams.remove(&peer);
    }

    /// Closes the stream to `peer` (its writer drains and shuts the stream down).
    pub fn close(&mut self, peer: SocketAddr) {
        self.streams.remove(&peer);
    }

    /// Sends a frame to `to`, connecting first if there is no stream yet (unless the
    /// [`Limits`] are reached: then the frame is dropped and the refusal counted).
    pub fn send(&mut self, to: SocketAddr, data: &[u8]) {
        if data.len() > MAX_FRAME {
            self.send_drops += 1;
            return;
        }
        if !self.streams.contains_key(&to) {
            let Some(writer) = self.connect(to) else {
                self.shared.connects_refused.fetch_add(1, Ordering::Relaxed);
                return;
            };
            self.streams.insert(to, writer);
        }
        if self.streams[&to].try_send(data.to_vec()).is_err() {
            self.send_drops += 1;
        }
    }

    /// Starts a connect to `to`, if the limits allow one; returns the stream's queue.
    fn connect(&self, to: SocketAddr) -> Option<mpsc::Sender<Vec<u8>>> {
        let stream_slot = Slot::take(&self.shared, |s| &s.streams, self.limits.streams)?;
        let connecting = Slot::take(&self.shared, |s| &s.connecting, self.limits.connecting)?;
        let (writer, queue) = mpsc::channel(QUEUE);
        let (events, shared) = (self.events.clone(), self.shared.clone());
        tokio::spawn(async move {
            let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await;
            drop(connecting);
            match connected {
                Ok(Ok(stream)) => start_stream(stream, to, queue, events, shared, stream_slot),
                _ => {
                    let _ = events.send(TcpEvent::Closed(to)).await;
                }
            }
        });
        Some(writer)
    }
}

/// Reads one frame into `data` (empty). The buffer grows with the bytes that arrive,
/// not with what the length prefix promises; a prefix above [`MAX_FRAME`] is an
/// `InvalidData` error.
async fn read_frame<R: AsyncRead + Unpin>(rd: &mut R, data: &mut Vec<u8>) -> io::Result<()> {
    let len = usize::from(rd.read_u16().await?);
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes announced; at most {MAX_FRAME}"),
        ));
    }
    (&mut *rd).take(len as u64).read_to_end(data).await?;
    if data.len() < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Runs a stream's reader and writer tasks; the stream holds `slot` until both end.
fn start_stream(
    stream: TcpStream,
    key: SocketAddr,
    mut queue: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<TcpEvent>,
    shared: Arc<Shared>,
    slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let slot = Arc::new(slot);
    let writer_slot = slot.clone();
    tokio::spawn(async move {
        let _slot = writer_slot;
        while let Some(frame) = queue.recv().await {
            let len = (frame.len() as u16).to_be_bytes();
            if wr.write_all(&len).await.is_err() || wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        let _slot = slot;
        loop {
            let mut data = Vec::new();
            match tokio::time::timeout(IDLE, read_frame(&mut rd, &mut data)).await {
                Ok(Ok(())) => {
                    if events
                        .send(TcpEvent::Frame { from: key, data })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    shared.oversized_frames.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                _ => break,
            }
        }
        let _ = events.send(TcpEvent::Closed(key)).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn edges(limits: Limits) -> (TcpEdges, mpsc::Receiver<TcpEvent>) {
        let (tx, rx) = mpsc::channel(16);
        let e = TcpEdges::bind("127.0.0.1:0".parse().unwrap(), limits, tx)
            .await
            .unwrap();
        (e, rx)
    }

    #[tokio::test]
    async fn frames_cross_a_stream_both_ways() {
        let (mut a, mut rx_a) = edges(Limits::default()).await;
        let (mut b, mut rx_b) = edges(Limits::default()).await;
        a.send(b.local_addr(), b"hello");
        a.send(b.local_addr(), &[7u8; 3000]);
        let Some(TcpEvent::Accepted { peer, writer }) = rx_b.recv().await else {
            panic!("no accept")
        };
        b.accepted(peer, writer);
        let Some(TcpEvent::Frame { from, data }) = rx_b.recv().await else {
            panic!("no frame")
        };
        assert_eq!((from, data.as_slice()), (peer, &b"hello"[..]));
        let Some(TcpEvent::Frame { data, .. }) = rx_b.recv().await else {
            panic!("no frame")
        };
        assert_eq!(data, vec![7u8; 3000]);
        b.send(peer, b"back");
        let Some(TcpEvent::Frame { from, data }) = rx_a.recv().await else {
            panic!("no reply")
        };
        assert_eq!((from, data.as_slice()), (b.local_addr(), &b"back"[..]));
        b.close(peer);
        assert!(matches!(rx_a.recv().await, Some(TcpEvent::Closed(_))));
    }

    #[tokio::test]
    async fn tcp_frame_longer_than_a_datagram_closes_the_stream() {
        let (e, mut rx) = edges(Limits::default()).await;
        let mut s = TcpStream::connect(e.local_addr()).await.unwrap();
        assert!(matches!(rx.recv().await, Some(TcpEvent::Accepted { .. })));
        s.write_all(&u16::MAX.to_be_bytes()).await.unwrap();
        assert!(matches!(rx.recv().await, Some(TcpEvent::Closed(_))));
        assert_eq!(e.stats().oversized_frames, 1);
    }

    #[tokio::test]
    async fn tcp_frame_buffer_grows_with_the_bytes_received() {
        // A prefix promising 60 000 bytes, then 10 of them: the buffer holds what came.
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(&60_000u16.to_be_bytes()).await.unwrap();
        client.write_all(&[1; 10]).await.unwrap();
        let mut data = Vec::new();
        let read = read_frame(&mut server, &mut data);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), read)
                .await
                .is_err()
        );
        assert_eq!(data.len(), 10);
        assert!(data.capacity() < 1024, "{} bytes reserved", data.capacity());
    }

    #[tokio::test]
    async fn tcp_accepted_streams_are_capped() {
        let limits = Limits {
            streams: 2,
            connecting: 2,
        };
        let (e, mut rx) = edges(limits).await;
        let mut clients = Vec::new();
        for _ in 0..2 {
            clients.push(TcpStream::connect(e.local_addr()).await.unwrap());
            assert!(matches!(rx.recv().await, Some(TcpEvent::Accepted { .. })));
        }
        let mut third = TcpStream::connect(e.local_addr()).await.unwrap();
        // Refused: closed at once, no event.
        let mut byte = [0u8; 1];
        assert_eq!(third.read(&mut byte).await.unwrap_or(0), 0);
        assert_eq!((e.stats().accepts_refused, e.stats().streams), (1, 2));
        // When one ends, its place is free again.
        drop(clients.pop());
        assert!(matches!(rx.recv().await, Some(TcpEvent::Closed(_))));
        let _again = TcpStream::connect(e.local_addr()).await.unwrap();
        assert!(matches!(rx.recv().await, Some(TcpEvent::Accepted { .. })));
    }

    #[tokio::test]
    async fn tcp_outbound_connects_are_capped() {
        let limits = Limits {
            streams: 3,
            connecting: 1,
        };
        let (mut e, _rx) = edges(limits).await;
        let (peer, _peer_rx) = edges(Limits::default()).await;
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        // The connect tasks do not run before this task yields: the first connect is
        // under way, the second is refused.
        e.send(peer.local_addr(), b"one");
        e.send(other, b"two");
        assert_eq!((e.stats().connects_refused, e.stats().streams), (1, 1));
        // More frames for the stream under way are queued, not refused.
        e.send(peer.local_addr(), b"three");
        assert_eq!(e.stats().connects_refused, 1);
    }
}
