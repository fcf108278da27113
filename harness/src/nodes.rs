//! Running `ipop-node` on hosts and reading its status, through the [`Host`] interface
//! only: the node is started as a process and observed through its control socket
//! (`ipop-node status --json`), never through its logs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ipop_api::{DEFAULT_PORT, Status, bootstrap_uris};
use serde::de::DeserializeOwned;

use crate::host::{Cmd, Host, HostError, Output, Process};

/// Where the node keeps its files on a host (`/run` is private to each namespace host).
pub const STATE_DIR: &str = "/run/ipop";
/// The node's control socket on a host.
pub const CONTROL_SOCKET: &str = "/run/ipop/ipop.sock";
/// The node's lease file on a host (`--lease-file`): the virtual IPs it holds for its
/// TAP's machines and their DHT passwords.
pub const LEASE_FILE: &str = "/run/ipop/leases";
/// The overlay's admission secret on a host, with secure edges ([`install_secret`]).
pub const SECRET_FILE: &str = "/run/ipop/overlay.secret";
/// The node's key file on a host, with secure edges (remove it for a new P2P address).
pub const KEY_FILE: &str = "/run/ipop/key";
/// A keyed namespace's key on a host ([`install_namespace_key`]).
pub const NAMESPACE_KEY_FILE: &str = "/run/ipop/namespace.key";

/// `n` random bytes from the operating system, as hexadecimal digits.
pub fn random_hex(n: usize) -> Result<String> {
    Ok(ipop_core::text::to_hex(&random_bytes(n)?))
}

/// `n` bytes from the operating system's random generator.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}

/// A new overlay admission secret: 32 random bytes as 64 hexadecimal digits.
pub fn new_secret() -> Result<String> {
    random_hex(32).context("making an overlay secret")
}

/// Writes the overlay secret `secret` to [`SECRET_FILE`] on `host`, owner-only.
pub fn install_secret(host: &dyn Host, secret: &str) -> Result<(), HostError> {
    install_private(host, SECRET_FILE, secret)
}

/// Writes a keyed namespace's key (64 hexadecimal digits) to [`NAMESPACE_KEY_FILE`] on
/// `host`, owner-only.
pub fn install_namespace_key(host: &dyn Host, key: &str) -> Result<(), HostError> {
    install_private(host, NAMESPACE_KEY_FILE, key)
}

/// Writes `text` and a newline to `path` (in [`STATE_DIR`]) on `host`, owner-only.
fn install_private(host: &dyn Host, path: &str, text: &str) -> Result<(), HostError> {
    host.check(
        &Cmd::new("sh")
            .args([
                "-c",
                "umask 077 && mkdir -p \"$1\" && cat > \"$2\"",
                "sh",
                STATE_DIR,
                path,
            ])
            .stdin(format!("{text}\n")),
        Duration::from_secs(5),
    )
    .map(drop)
}

/// The `ipop-node` binary: `$IPOP_NODE`, else next to this executable (or its parent
/// folder, for test executables under `target/*/deps`), else `ipop-node` on `PATH`.
pub fn node_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("IPOP_NODE") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("ipop-node");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Ok(PathBuf::from("ipop-node"))
}

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Bootstrap URIs.
    pub bootstrap: Vec<String>,
    /// UDP listen address (`IP:PORT` or `off`).
    pub udp_listen: String,
    /// TCP listen address (`IP:PORT` or `off`).
    pub tcp_listen: String,
    /// Log filter.
    pub log_level: String,
    /// Further `ipop-node` arguments.
    pub extra: Vec<String>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            bootstrap: Vec::new(),
            udp_listen: format!("0.0.0.0:{DEFAULT_PORT}"),
            tcp_listen: format!("0.0.0.0:{DEFAULT_PORT}"),
            log_level: "info".into(),
            extra: Vec::new(),
        }
    }
}

impl NodeOptions {
    /// These options with secure edges: the overlay secret [`install_secret`] put on
    /// the host, and the node's key in [`KEY_FILE`].
    pub fn secure(mut self) -> NodeOptions {
        self.extra
            .extend(["--overlay-secret", SECRET_FILE, "--key-file", KEY_FILE].map(String::from));
        self
    }

    /// These options for a member of the keyed namespace whose key
    /// [`install_namespace_key`] put on the host.
    pub fn keyed(mut self) -> NodeOptions {
        self.extra
            .extend(["--namespace-key", NAMESPACE_KEY_FILE].map(String::from));
        self
    }

    /// Options to join through `host`'s first address on UDP and TCP port
    /// [`DEFAULT_PORT`].
    pub fn joining(bootstrap: &dyn Host) -> NodeOptions {
        let ip = bootstrap
            .addresses()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        NodeOptions {
            bootstrap: bootstrap_uris(ip).to_vec(),
            ..NodeOptions::default()
        }
    }
}

/// A node process on a host.
#[derive(Debug)]
pub struct RunningNode {
    /// The host's name.
    pub host: String,
    /// When it was started.
    pub started: Instant,
    process: Box<dyn Process>,
    binary: PathBuf,
}

impl RunningNode {
    /// Starts `ipop-node` on `host`.
    pub fn start(host: &dyn Host, binary: &Path, opts: &NodeOptions) -> Result<RunningNode> {
        let mut cmd = Cmd::new(binary.display().to_string()).args([
            "--udp-listen",
            &opts.udp_listen,
            "--tcp-listen",
            &opts.tcp_listen,
            "--address-file",
            &format!("{STATE_DIR}/address"),
            "--control-socket",
            CONTROL_SOCKET,
            "--log-level",
            &opts.log_level,
        ]);
        for b in &opts.bootstrap {
            cmd = cmd.args(["--bootstrap", b]);
        }
        cmd = cmd.args(opts.extra.iter().cloned());
        let process = host.spawn(&cmd)?;
        Ok(RunningNode {
            host: host.name().to_owned(),
            started: Instant::now(),
            process,
            binary: binary.to_owned(),
        })
    }

    /// The node's status (`ipop-node status --json`).
    pub fn status(&self, host: &dyn Host) -> Result<Status, HostError> {
        status(host, &self.binary)
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }

    /// The process's output once it has exited by itself (taken once).
    pub fn exited(&mut self) -> Option<Output> {
        self.process.try_wait().ok().flatten()
    }

    /// Graceful stop: SIGTERM (the node leaves the overlay), SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) -> Result<Output, HostError> {
        self.process.stop(grace)
    }

    /// Crash: SIGKILL at once, no goodbye to anyone.
    pub fn kill(&mut self) -> Result<Output, HostError> {
        self.process.stop(Duration::ZERO)
    }
}

/// The status of the node on `host`, through its control socket.
pub fn status(host: &dyn Host, binary: &Path) -> Result<Status, HostError> {
    status_at(host, binary, CONTROL_SOCKET)
}

/// The status of the node on `host` whose control socket is `socket`.
pub fn status_at(host: &dyn Host, binary: &Path, socket: &str) -> Result<Status, HostError> {
    let cmd = Cmd::new(binary.display().to_string()).args(["status", "--json", "--socket", socket]);
    let out = host.check(&cmd, Duration::from_secs(5))?;
    json_output(host, &cmd, &out.stdout)
}

/// `bytes`, the JSON output of `cmd` on `host`, read as a `T`.
pub fn json_output<T: DeserializeOwned>(
    host: &dyn Host,
    cmd: &Cmd,
    bytes: &[u8],
) -> Result<T, HostError> {
    serde_json::from_slice(bytes).map_err(|e| HostError::Output {
        host: host.name().to_string(),
        cmd: cmd.to_string(),
        reason: format!("not the JSON expected: {e}"),
    })
}

pub use wow_experiments::tools::wait_for;

/// A status in one line, for error messages: the ring neighbours, each connection with
/// its roles and edge, and the overlay counters that are not zero.
pub fn summary(status: &Status) -> String {
    let short = |a: Option<&str>| match a {
        Some(a) if !a.is_empty() => a[..8.min(a.len())].to_string(),
        _ => "none".to_string(),
    };
    let connections: Vec<String> = status
        .connections
        .iter()
        .map(|c| format!("{} {:?} {:?}", short(Some(&c.peer)), c.roles, c.edge))
        .collect();
    let counters: Vec<String> = status
        .stats
        .nonzero()
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    format!(
        "address {}, left {}, right {}, connections: {}; counters: {}",
        short(Some(&status.address)),
        short(status.ring.left.as_deref()),
        short(status.ring.right.as_deref()),
        connections.join("; "),
        counters.join(", ")
    )
}

/// A node's P2P address from its status.
pub fn address(status: &Status) -> Result<String> {
    if status.address.is_empty() {
        bail!("status without an address: {status:?}");
    }
    Ok(status.address.clone())
}
