//! The control socket: a Unix stream socket where each connection sends one JSON
//! request line and gets one JSON response line. `ipop-node status`, `connections`,
//! `leave` and `dht` are clients of it; so is the test harness.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// A request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// The full status.
    Status,
    /// Leave the overlay gracefully and exit.
    Leave,
    /// Send an overlay echo to a node; answers with the RTT and hops both ways.
    Probe {
        /// The node's P2P address (40 hex digits).
        dst: String,
    },
    /// Create a namespace record (under a new random identifier unless `id` is given).
    NamespaceCreate {
        /// The identifier to use (32 hex digits); random if absent.
        #[serde(default)]
        id: Option<String>,
        /// A name for people.
        name: String,
        /// The virtual IP range, e.g. 10.128.0.0/12.
        range: String,
        /// DHCP lease time in seconds.
        lease_s: u64,
        /// MTU handed to DHCP clients.
        mtu: u16,
        /// DNS server handed to DHCP clients.
        dns: Option<std::net::Ipv4Addr>,
    },
    /// Read a namespace record.
    NamespaceShow {
        /// The namespace identifier.
        id: String,
    },
    /// Get a DHT key (text).
    DhtGet {
        /// The key.
        key: String,
    },
    /// Create a DHT key (text) with a value, password and TTL.
    DhtCreate {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The password.
        password: String,
        /// Time to live in seconds.
        ttl_s: u64,
    },
}

/// A request with the channel for its response.
#[derive(Debug)]
pub struct Pending {
    /// The request.
    pub request: Request,
    /// Where the response goes.
    pub reply: oneshot::Sender<Value>,
}

/// Binds the control socket (replacing a stale one) and serves it; requests go to the
/// returned channel.
pub fn serve(path: &Path) -> Result<mpsc::Receiver<Pending>> {
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
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind control socket {}", path.display()))?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = handle(stream, tx).await;
            });
        }
    });
    Ok(rx)
}

async fn handle(stream: UnixStream, tx: mpsc::Sender<Pending>) -> Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    BufReader::new(rd).read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let (reply, rx) = oneshot::channel();
            tx.send(Pending { request, reply }).await?;
            rx.await?
        }
        Err(e) => serde_json::json!({ "error": format!("bad request: {e}") }),
    };
    wr.write_all(format!("{response}\n").as_bytes()).await?;
    Ok(())
}

/// Sends one request to the node at `socket` and returns its response.
pub fn request(socket: &PathBuf, request: &Value, timeout: Duration) -> Result<Value> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the node's control socket {} (is ipop-node running? is this the path in its config?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    writeln!(stream, "{request}")?;
    let mut line = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut line)
        .context("no answer from the node")?;
    let value: Value = serde_json::from_str(&line).context("the node's answer is not JSON")?;
    if let Some(e) = value.get("error").and_then(Value::as_str) {
        bail!("the node refused: {e}");
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        let r: Request = serde_json::from_str(r#"{"command":"status"}"#).unwrap();
        assert_eq!(r, Request::Status);
        let r: Request = serde_json::from_str(r#"{"command":"dht_get","key":"k"}"#).unwrap();
        assert_eq!(r, Request::DhtGet { key: "k".into() });
        assert!(serde_json::from_str::<Request>(r#"{"command":"reboot"}"#).is_err());
    }
}
