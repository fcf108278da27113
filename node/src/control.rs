//! The control socket: a Unix stream socket where each connection sends one JSON
//! request line and gets one JSON response line. `ipop-node status`, `connections`,
//! `leave` and `dht` are clients of it; so is the test harness.
//!
//! Only the node's user may connect (the socket is mode 0600). A request longer than
//! [`MAX_REQUEST`] or slower than [`REQUEST_TIMEOUT`] gets an error and the connection
//! is closed; a failed accept is retried after a pause. Both are counted.

use std::ops::ControlFlow;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ipop_api::control::Refused;
pub use ipop_api::control::Request;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// The longest request, newline included.
pub const MAX_REQUEST: usize = 64 * 1024;
/// How long a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the control socket refused or failed at.
#[derive(Debug, Default)]
pub struct ControlStats {
    accept_errors: Arc<AtomicU64>,
    refused: AtomicU64,
}

impl ControlStats {
    /// Failed accepts.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }

    /// Requests refused for being too long or too slow.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// `reply` (a status or one of `ipop_api::control`'s replies) as the JSON line it is
/// sent as.
pub fn reply(reply: &impl Serialize) -> Value {
    serde_json::to_value(reply).expect("the node's replies are plain JSON")
}

/// A refusal: `{"error": why}`.
pub fn refused(why: impl ToString) -> Value {
    reply(&Refused::new(why))
}

/// A request with the channel for its response.
#[derive(Debug)]
pub struct Pending {
    /// The request.
    pub request: Request,
    /// Where the response goes.
    pub reply: oneshot::Sender<Value>,
}

/// Binds the control socket (replacing a stale one; owner-only) and serves it; requests
/// go to the returned channel.
pub fn serve(path: &Path) -> Result<(mpsc::Receiver<Pending>, Arc<ControlStats>)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {} for the control socket", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "{} is in use: another ipop-node runs with this control socket (set control_socket)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale control socket {}", path.display()))?;
    }
    // Bound under a temporary name and made owner-only before it appears at `path`,
    // so that no other user can connect in between.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)
        .with_context(|| format!("cannot bind control socket {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} owner-only", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot bind control socket {}", path.display()))?;
    let (tx, rx) = mpsc::channel(16);
    let stats = Arc::new(ControlStats::default());
    let (errors, st) = (stats.accept_errors.clone(), stats.clone());
    tokio::spawn(crate::accept::serve(
        listener,
        "control",
        errors,
        move |stream| {
            let (tx, st) = (tx.clone(), st.clone());
            tokio::spawn(async move {
                let _ = handle(stream, tx, &st).await;
            });
            ControlFlow::Continue(())
        },
    ));
    Ok((rx, stats))
}

async fn handle(stream: UnixStream, tx: mpsc::Sender<Pending>, stats: &ControlStats) -> Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = Vec::new();
    let mut rd = BufReader::new(rd).take(MAX_REQUEST as u64 + 1);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, rd.read_until(b'\n', &mut line)).await;
    let response = match read.map(|r| r.map(|n| n > MAX_REQUEST)) {
        Err(_) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            refused(format!("no request within {} s", REQUEST_TIMEOUT.as_secs()))
        }
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(true)) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            refused(format!("request longer than {MAX_REQUEST} bytes"))
        }
        Ok(Ok(false)) => match serde_json::from_slice::<Request>(&line) {
            Ok(request) => {
                let (reply, rx) = oneshot::channel();
                tx.send(Pending { request, reply }).await?;
                rx.await?
            }
            Err(e) => refused(format!("bad request: {e}")),
        },
    };
    wr.write_all(format!("{response}\n").as_bytes()).await?;
    Ok(())
}

/// Sends one request to the node at `socket` and returns its response.
pub fn request(socket: &PathBuf, request: &impl Serialize, timeout: Duration) -> Result<Value> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the node's control socket {} (is ipop-node running? is this the path in its config?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    // A request the node refuses (too long) is answered and the socket closed while we
    // may still be writing: read the answer even if the write failed.
    let sent = serde_json::to_string(request)
        .map_err(std::io::Error::from)
        .and_then(|line| writeln!(stream, "{line}"));
    let mut line = String::new();
    let read = std::io::BufReader::new(stream).read_line(&mut line);
    if line.is_empty() {
        sent.context("cannot send the request to the node")?;
        read.context("no answer from the node")?;
    }
    let value: Value = serde_json::from_str(&line).context("the node's answer is not JSON")?;
    if let Some(e) = value.get("error").and_then(Value::as_str) {
        bail!("the node refused: {e}");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn control_socket_is_owner_only_and_refuses_overlong_requests() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        let (mut rx, stats) = serve(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        let (p, long) = (path.clone(), "x".repeat(MAX_REQUEST + 10));
        let answer = tokio::task::spawn_blocking(move || {
            request(&p, &json!(long), Duration::from_secs(5)).unwrap_err()
        });
        let e = answer.await.unwrap().to_string();
        assert!(e.contains("request longer than 65536 bytes"), "{e}");
        assert_eq!(stats.refused(), 1);
        // The socket still serves.
        let p = path.clone();
        let status = tokio::task::spawn_blocking(move || {
            request(&p, &Request::Status, Duration::from_secs(5))
        });
        let pending = rx.recv().await.unwrap();
        assert_eq!(pending.request, Request::Status);
        pending.reply.send(json!({"ok": 1})).unwrap();
        assert_eq!(status.await.unwrap().unwrap(), json!({"ok": 1}));
    }
}
