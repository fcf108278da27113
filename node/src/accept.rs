//! The accept loop of the node's listening sockets (TCP edges, control socket): a failed
//! accept, such as running out of file descriptors, is counted, logged (rate-limited)
//! and followed by a short pause; the loop goes on until its consumer is gone.

use std::future::Future;
use std::io;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::faults::LogLimit;

/// The pause after a failed accept: out of descriptors, the next accept would fail too.
pub const BACKOFF: Duration = Duration::from_millis(100);

/// A listening socket.
pub trait Listener: Send + 'static {
    /// An accepted connection, with the peer's address.
    type Conn: Send;
    /// Accepts the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Conn>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Conn = (tokio::net::TcpStream, std::net::SocketAddr);
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Conn>> + Send {
        tokio::net::TcpListener::accept(self)
    }
}

impl Listener for tokio::net::UnixListener {
    type Conn = tokio::net::UnixStream;
    async fn accept(&mut self) -> io::Result<Self::Conn> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

/// Accepts connections on `listener` and hands each to `on_conn` until it says
/// `Break`; failed accepts are added to `errors`.
pub async fn serve<L: Listener>(
    mut listener: L,
    what: &'static str,
    errors: Arc<AtomicU64>,
    mut on_conn: impl FnMut(L::Conn) -> ControlFlow<()>,
) {
    let mut log = LogLimit::default();
    loop {
        match listener.accept().await {
            Ok(conn) => {
                if on_conn(conn).is_break() {
                    return;
                }
            }
            Err(e) => {
                errors.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = log.check(Instant::now()) {
                    warn!(listener = what, error = %e, suppressed, "accept failed (counted; retrying)");
                }
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;

    /// Fails like a process out of file descriptors, then accepts.
    struct Exhausted {
        failures: u32,
    }

    impl Listener for Exhausted {
        type Conn = u32;
        async fn accept(&mut self) -> io::Result<u32> {
            if self.failures > 0 {
                self.failures -= 1;
                return Err(io::Error::from(Errno::EMFILE));
            }
            Ok(7)
        }
    }

    #[tokio::test]
    async fn accept_loop_survives_fd_exhaustion() {
        let errors = Arc::new(AtomicU64::new(0));
        let mut got = Vec::new();
        serve(Exhausted { failures: 3 }, "test", errors.clone(), |c| {
            got.push(c);
            ControlFlow::Break(())
        })
        .await;
        assert_eq!(got, [7]);
        assert_eq!(errors.load(Ordering::Relaxed), 3);
    }
}
