//! What a deployer writes into a node's `node.toml`, and the node's default port. The
//! node reads the whole file (every field of `node/node.example.toml`) and reports a
//! bad one with its line; this is the subset a generated file sets.

use std::fmt::Display;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The UDP and TCP port a node listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 4000;

/// The transport URIs of a node at `host` listening on `udp_port` and `tcp_port`: what
/// others bootstrap from, UDP first.
pub fn uris(host: impl Display, udp_port: u16, tcp_port: u16) -> [String; 2] {
    [
        format!("udp://{host}:{udp_port}"),
        format!("tcp://{host}:{tcp_port}"),
    ]
}

/// The transport URIs of a node at `host` on [`DEFAULT_PORT`].
pub fn bootstrap_uris(host: impl Display) -> [String; 2] {
    uris(host, DEFAULT_PORT, DEFAULT_PORT)
}

/// The fields of `node.toml` a deployer sets (the others keep the node's defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// Name of the overlay.
    pub overlay: String,
    /// Where UDP edges listen (`IP:PORT` or `off`).
    pub udp_listen: String,
    /// Where TCP edges listen (`IP:PORT` or `off`).
    pub tcp_listen: String,
    /// Transport URIs to join through.
    pub bootstrap: Vec<String>,
    /// The file holding the node's P2P address.
    pub address_file: PathBuf,
    /// The control socket.
    pub control_socket: PathBuf,
    /// The log filter.
    pub log_level: String,
    /// The overlay's admission secret file (secure edges), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_secret: Option<PathBuf>,
    /// The node's private key file (with an overlay secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_udp_then_tcp() {
        assert_eq!(
            bootstrap_uris("198.18.0.1"),
            ["udp://198.18.0.1:4000", "tcp://198.18.0.1:4000"]
        );
        assert_eq!(
            uris("10.0.0.2", 5000, 5001),
            ["udp://10.0.0.2:5000", "tcp://10.0.0.2:5001"]
        );
    }
}
