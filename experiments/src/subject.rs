//! Subjects: what carries an experiment's traffic. `physical` is the underlay itself
//! (the papers' baseline); `ipop` is the overlay of `ipop-node` processes; the peers
//! (`wireguard-go`, `tinc`, …) are other VPNs measured beside it (`wow-bench run peers`).
//!
//! An experiment never computes addresses itself. It asks the [`Subject`] where one host
//! reaches another for a given [`Flow`]: the physical subject answers with an underlay
//! address (or says the physical network admits no such flow, see
//! `wow_harness::subjects::physical`); the ipop subject answers with the peer's
//! virtual IP. Experiments that start nodes themselves reach the overlay through
//! [`Subject::overlay`]. Setting a subject up and tearing it down is the harness's job
//! (`wow_harness::subjects`), so experiments stay the same for every subject.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipop_api::Status;
use ipop_api::control::ProbeReply;
use serde::{Deserialize, Serialize};
use wow_host::{Host, HostError};

/// The subjects the harness knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectKind {
    /// The underlay network, no overlay: the papers' "physical" rows.
    Physical,
    /// IPOP: `ipop-node` on every host, traffic to virtual IPs.
    Ipop,
    /// IPOP with plain edges and an open namespace (what `--insecure` makes of `ipop`):
    /// the papers' IPOP, and the cost of ipop's packet path without its encryption.
    #[serde(rename = "ipop-plain")]
    IpopPlain,
    /// WireGuard in userspace (`wireguard-go`): Noise IK, ChaCha20-Poly1305.
    #[serde(rename = "wireguard-go")]
    WireguardGo,
    /// WireGuard in userspace, Cloudflare's Rust implementation (`boringtun-cli`).
    Boringtun,
    /// tinc 1.0 (`tincd`): RSA-2048 handshake, AES-256-CBC + HMAC-SHA1, router mode.
    Tinc,
    /// Nebula: Noise IX, AES-256-GCM, a lighthouse for rendezvous.
    Nebula,
    /// n2n v1 (`edge` + `supernode`): TAP, Twofish.
    N2n,
    /// OpenVPN 2.6 peer-to-peer over UDP, TLS with AES-256-GCM.
    Openvpn,
    /// OpenVPN 2.6 peer-to-peer over UDP with no encryption or authentication: the cost
    /// of its userspace packet path alone.
    #[serde(rename = "openvpn-none")]
    OpenvpnNone,
}

impl SubjectKind {
    /// Every subject: the underlay, ipop (secure, then plain), then the peers.
    pub const ALL: [SubjectKind; 3 + Self::PEERS.len()] = {
        let mut all = [SubjectKind::Physical; 3 + Self::PEERS.len()];
        all[1] = SubjectKind::Ipop;
        all[2] = SubjectKind::IpopPlain;
        let mut i = 0;
        while i < Self::PEERS.len() {
            all[3 + i] = Self::PEERS[i];
            i += 1;
        }
        all
    };

    /// The other VPNs (neither the underlay nor ipop).
    pub const PEERS: [SubjectKind; 7] = [
        SubjectKind::WireguardGo,
        SubjectKind::Boringtun,
        SubjectKind::Tinc,
        SubjectKind::Nebula,
        SubjectKind::N2n,
        SubjectKind::Openvpn,
        SubjectKind::OpenvpnNone,
    ];

    /// The name used on the command line and in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Physical => "physical",
            SubjectKind::Ipop => "ipop",
            SubjectKind::IpopPlain => "ipop-plain",
            SubjectKind::WireguardGo => "wireguard-go",
            SubjectKind::Boringtun => "boringtun",
            SubjectKind::Tinc => "tinc",
            SubjectKind::Nebula => "nebula",
            SubjectKind::N2n => "n2n",
            SubjectKind::Openvpn => "openvpn",
            SubjectKind::OpenvpnNone => "openvpn-none",
        }
    }

    /// The programs whose processes carry this subject's traffic on a host (their
    /// `/proc/PID/comm`), for CPU accounting; none for the underlay.
    pub fn daemons(self) -> &'static [&'static str] {
        match self {
            SubjectKind::Physical => &[],
            SubjectKind::Ipop | SubjectKind::IpopPlain => &["ipop-node"],
            SubjectKind::WireguardGo => &["wireguard-go"],
            SubjectKind::Boringtun => &["boringtun-cli"],
            SubjectKind::Tinc => &["tincd"],
            SubjectKind::Nebula => &["nebula"],
            SubjectKind::N2n => &["edge", "supernode"],
            SubjectKind::Openvpn | SubjectKind::OpenvpnNone => &["openvpn"],
        }
    }

    /// Whether this is ipop, secure or plain.
    pub fn is_ipop(self) -> bool {
        matches!(self, SubjectKind::Ipop | SubjectKind::IpopPlain)
    }

    /// Parses [`SubjectKind::as_str`].
    pub fn from_name(name: &str) -> Option<SubjectKind> {
        SubjectKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which edges an overlay subject's nodes make (the IPOP paper's IPOP-UDP and IPOP-TCP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edges {
    /// UDP edges, with TCP where a site blocks UDP.
    #[default]
    Udp,
    /// TCP edges only: nodes listen on no UDP port.
    Tcp,
}

impl Edges {
    /// The name used on the command line and in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Edges::Udp => "udp",
            Edges::Tcp => "tcp",
        }
    }

    /// Parses [`Edges::as_str`].
    pub fn from_name(name: &str) -> Option<Edges> {
        [Edges::Udp, Edges::Tcp]
            .into_iter()
            .find(|e| e.as_str() == name)
    }
}

impl fmt::Display for Edges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of traffic an experiment sends along a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "proto")]
pub enum Flow {
    /// ICMP echo (ping).
    Icmp,
    /// A TCP connection to `port`.
    Tcp {
        /// Destination port.
        port: u16,
    },
    /// UDP datagrams to `port`, plus a TCP control connection to the same port (iperf3).
    Udp {
        /// Destination port.
        port: u16,
    },
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flow::Icmp => f.write_str("ICMP echo"),
            Flow::Tcp { port } => write!(f, "TCP to port {port}"),
            Flow::Udp { port } => write!(f, "UDP to port {port} (TCP control on the same port)"),
        }
    }
}

/// Where traffic for a node goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The node that answers (runs the server): the node asked for, or, for the physical
    /// subject, the nearest node on its side of the network that admits the flow.
    pub node: String,
    /// The address to send to.
    pub address: Ipv4Addr,
    /// Why the answer is not simply the node asked for, if it is not.
    pub note: Option<String>,
}

/// The subject cannot carry the flow; the reason says why (for the report).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// A subject as experiments see it, once the harness has set it up.
pub trait Subject: Send + Sync + fmt::Debug {
    /// Which subject this is.
    fn kind(&self) -> SubjectKind;

    /// Where `from` sends `flow` traffic to reach the node `to`.
    fn target(&self, from: &str, to: &str, flow: Flow) -> Result<Target, Unreachable>;

    /// The overlay behind this subject, for experiments that start nodes of their own or
    /// ask a node about the overlay (join, dhcp-join, multihop); `None` for the physical
    /// network.
    fn overlay(&self) -> Option<&dyn Overlay> {
        None
    }
}

/// What a node an experiment starts takes part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A P2P node only: it routes, holds DHT records, has no TAP device.
    Router,
    /// A member of the subject's IPOP namespace: a TAP device a DHCP client can
    /// configure ([`Overlay::tap`]).
    Member,
}

/// An overlay subject's nodes, as experiments drive them: started and stopped by the
/// experiment, observed only through the node's status socket.
pub trait Overlay: Send + Sync + fmt::Debug {
    /// Starts a fresh node on `host` (a new P2P address, no lease kept from an earlier
    /// node there), joining the subject's overlay. `host` must be one the subject left
    /// free ([`OverlayNeeds::reserved`](crate::OverlayNeeds::reserved)). A member with a
    /// `static_address` registers it in the DHT itself (the experiment puts it on the
    /// TAP); one without gets its address from a DHCP client the experiment runs.
    fn start(
        &self,
        host: &dyn Host,
        kind: NodeKind,
        static_address: Option<Ipv4Addr>,
    ) -> Result<Box<dyn OverlayNode>, HostError>;

    /// Starts a member node on `host` that takes over the virtual machines the stopped
    /// node on `from` served (router mode, after a migration): the old node's lease file —
    /// the virtual IPs it held and their DHT passwords — is carried to `host` the way a
    /// migrating VM's image carries it, and nothing else (the new node has a new P2P
    /// address, and re-registers the carried addresses under it).
    fn start_carrying(
        &self,
        host: &dyn Host,
        from: &dyn Host,
    ) -> Result<Box<dyn OverlayNode>, HostError>;

    /// The TAP device of member nodes.
    fn tap(&self) -> &str;

    /// A folder on every host for the files of its node and of tools run beside it (a
    /// DHCP client's leases); [`Overlay::start`] clears a fresh node's files there.
    fn state_dir(&self) -> &str;

    /// The status (`ipop-node status --json`) of the subject's node on `host`.
    fn status(&self, host: &dyn Host) -> Result<Status, HostError>;

    /// An overlay echo from the subject's node on `from` to the node on `to`
    /// (`ipop-node probe --json`).
    fn probe(&self, from: &dyn Host, to: &str) -> Result<ProbeReply, HostError>;
}

/// A node an experiment started through [`Overlay::start`]. Dropping it kills it.
pub trait OverlayNode: Send + fmt::Debug {
    /// When its process was started.
    fn started(&self) -> Instant;

    /// Its status (`ipop-node status --json`), once its control socket answers.
    fn status(&self, host: &dyn Host) -> Result<Status, HostError>;

    /// Graceful stop: SIGTERM (the node leaves the overlay), SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) -> Result<(), HostError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in SubjectKind::ALL {
            assert_eq!(SubjectKind::from_name(k.as_str()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
        assert_eq!(SubjectKind::from_name("tinc"), Some(SubjectKind::Tinc));
        assert_eq!(SubjectKind::from_name("wireguard"), None);
        assert!(SubjectKind::PEERS.iter().all(|k| !k.daemons().is_empty()));
    }

    #[test]
    fn flows_serialise_with_their_protocol() {
        let json = serde_json::to_string(&Flow::Tcp { port: 5201 }).unwrap();
        assert_eq!(json, r#"{"proto":"tcp","port":5201}"#);
        assert_eq!(
            serde_json::to_string(&Flow::Icmp).unwrap(),
            r#"{"proto":"icmp"}"#
        );
    }
}
