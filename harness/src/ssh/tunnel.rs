//! A connection through a jump host (`ssh -J`): a `direct-tcpip` channel on a session to
//! the jump host, bridged by a thread to one end of a Unix socket pair whose other end
//! carries the session to the target.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use ssh2::{BlockDirections, Channel};

use super::connect::{Conn, connect};
use super::{Error, Target};

/// How long the bridge sleeps waiting for either side.
const POLL: Duration = Duration::from_millis(20);

/// The bridge thread; stopped and joined on drop.
#[derive(Debug)]
pub(super) struct Tunnel {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tunnel {
    /// Logs into `jump`, opens a channel from it to `host:port`, and returns the local end.
    pub(super) fn open(
        jump: &Target,
        host: &str,
        port: u16,
    ) -> Result<(UnixStream, Tunnel), Error> {
        let conn = connect(jump)?;
        let channel = conn
            .session
            .channel_direct_tcpip(host, port, None)
            .map_err(|e| Error::Connect {
                target: format!("{host}:{port} through jump host {}", jump.label()),
                reason: format!(
                    "the jump host could not open a connection ({e}): can it reach {host}:{port}?"
                ),
            })?;
        let local_error = |e: std::io::Error| Error::Connect {
            target: format!("{host}:{port} through jump host {}", jump.label()),
            reason: format!("cannot make the local end of the tunnel: {e}"),
        };
        let (ours, theirs) = UnixStream::pair().map_err(local_error)?;
        ours.set_nonblocking(true).map_err(local_error)?;
        conn.session.set_blocking(false);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("ssh-jump-{host}"))
            .spawn(move || bridge(&conn, channel, ours, &flag))
            .map_err(local_error)?;
        Ok((
            theirs,
            Tunnel {
                stop,
                thread: Some(thread),
            },
        ))
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Moves bytes both ways until either side closes or `stop` is set.
fn bridge(conn: &Conn, mut channel: Channel, mut ours: UnixStream, stop: &AtomicBool) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut up: Vec<u8> = Vec::new();
    let mut down: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut moved = false;
        if up.is_empty() {
            match ours.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => up.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        if !up.is_empty() {
            match channel.write(&up) {
                Ok(n) => {
                    up.drain(..n);
                    moved |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        if down.is_empty() {
            match channel.read(&mut buf) {
                Ok(0) => {
                    if channel.eof() {
                        break;
                    }
                }
                Ok(n) => down.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        if !down.is_empty() {
            match ours.write(&down) {
                Ok(n) => {
                    down.drain(..n);
                    moved |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        if !moved {
            let session_out = matches!(
                conn.session.block_directions(),
                BlockDirections::Outbound | BlockDirections::Both
            );
            wait(
                &[
                    (conn.socket(), session_out),
                    (ours.as_fd(), !down.is_empty()),
                ],
                POLL,
            );
        }
    }
    let _ = channel.close();
}

/// Waits until one of `fds` is readable (or, where the flag is set, writable), or for
/// `timeout`.
pub(super) fn wait(fds: &[(BorrowedFd<'_>, bool)], timeout: Duration) {
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|&(fd, out)| {
            let events = PollFlags::POLLIN
                | if out {
                    PollFlags::POLLOUT
                } else {
                    PollFlags::empty()
                };
            PollFd::new(fd, events)
        })
        .collect();
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    let _ = poll(&mut pfds, timeout);
}
