//! TCP edges: overlay datagrams on TCP streams, each preceded by its length (2 bytes,
//! big-endian). Streams are keyed by the remote socket address: the address dialled for
//! outgoing streams, the peer's (ephemeral) address for accepted ones, so the protocol
//! core answers a stream by sending to the address it came from.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Frames queued per stream before new ones are dropped (like a full UDP buffer).
const QUEUE: usize = 256;
/// A stream with no frame in either direction for this long is closed.
const IDLE: Duration = Duration::from_secs(120);
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    streams: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    events: mpsc::Sender<TcpEvent>,
    /// Frames dropped because a stream's queue was full.
    pub send_drops: u64,
}

impl TcpEdges {
    /// Listens on `addr`; stream events go to `events`.
    pub async fn bind(addr: SocketAddr, events: mpsc::Sender<TcpEvent>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let tx = events.clone();
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let (writer, queue) = mpsc::channel(QUEUE);
                start_stream(stream, peer, queue, tx.clone());
                if tx.send(TcpEvent::Accepted { peer, writer }).await.is_err() {
                    break;
                }
            }
        });
        Ok(TcpEdges {
            local,
            streams: HashMap::new(),
            events,
            send_drops: 0,
        })
    }

    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
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

    /// Sends a frame to `to`, connecting first if there is no stream yet.
    pub fn send(&mut self, to: SocketAddr, data: &[u8]) {
        if data.len() > usize::from(u16::MAX) {
            self.send_drops += 1;
            return;
        }
        let writer = self.streams.entry(to).or_insert_with(|| {
            let (writer, queue) = mpsc::channel(QUEUE);
            let events = self.events.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
                    Ok(Ok(stream)) => start_stream(stream, to, queue, events),
                    _ => {
                        let _ = events.send(TcpEvent::Closed(to)).await;
                    }
                }
            });
            writer
        });
        if writer.try_send(data.to_vec()).is_err() {
            self.send_drops += 1;
        }
    }
}

/// Runs a stream's reader and writer tasks.
fn start_stream(
    stream: TcpStream,
    key: SocketAddr,
    mut queue: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<TcpEvent>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    tokio::spawn(async move {
        while let Some(frame) = queue.recv().await {
            let len = (frame.len() as u16).to_be_bytes();
            if wr.write_all(&len).await.is_err() || wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        loop {
            let mut len = [0u8; 2];
            let read = async {
                rd.read_exact(&mut len).await?;
                let mut data = vec![0u8; usize::from(u16::from_be_bytes(len))];
                rd.read_exact(&mut data).await?;
                Ok::<_, io::Error>(data)
            };
            match tokio::time::timeout(IDLE, read).await {
                Ok(Ok(data)) => {
                    if events
                        .send(TcpEvent::Frame { from: key, data })
                        .await
                        .is_err()
                    {
                        return;
                    }
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

    #[tokio::test]
    async fn frames_cross_a_stream_both_ways() {
        let (tx_a, mut rx_a) = mpsc::channel(16);
        let (tx_b, mut rx_b) = mpsc::channel(16);
        let mut a = TcpEdges::bind("127.0.0.1:0".parse().unwrap(), tx_a)
            .await
            .unwrap();
        let mut b = TcpEdges::bind("127.0.0.1:0".parse().unwrap(), tx_b)
            .await
            .unwrap();
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
}
