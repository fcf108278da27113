//! The node's configuration file (TOML). Every field is optional and has the default
//! shown in `node.example.toml`; command-line flags override the file. A bad file is
//! refused with its name, the line, and the reason.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipop_core::TransportAddr;
use serde::{Deserialize, Deserializer};

/// The commented example configuration: every field with its default.
pub const EXAMPLE: &str = include_str!("../node.example.toml");

/// A transport URI in the config (`udp://IP:PORT` or `tcp://IP:PORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri(pub TransportAddr);

impl<'de> Deserialize<'de> for Uri {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Uri).map_err(serde::de::Error::custom)
    }
}

/// A listen address, or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "off" {
            return Ok(Listen(None));
        }
        s.trim()
            .parse()
            .map(|a| Listen(Some(a)))
            .map_err(|_| format!("{s:?} is not IP:PORT or \"off\""))
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A log filter (`error`, `warn`, `info`, `debug`, `trace`, or `tracing` directives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(pub String);

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        tracing_subscriber::EnvFilter::try_new(&s)
            .map_err(|e| serde::de::Error::custom(format!("bad log level {s:?}: {e}")))?;
        Ok(LogLevel(s))
    }
}

/// Protocol timers and sizes (the `[protocol]` table).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protocol {
    /// Ping a connection silent this long (seconds).
    pub keepalive_s: f64,
    /// Consider a connection dead after this long without a datagram (seconds).
    pub edge_timeout_s: f64,
    /// Structured near connections per side of the ring.
    pub near_per_side: usize,
    /// Keep structured far (Kleinberg) connections.
    pub far_connections: bool,
    /// Most connections accepted.
    pub max_connections: usize,
}

impl Default for Protocol {
    fn default() -> Self {
        let d = ipop_core::overlay::Config::default();
        Protocol {
            keepalive_s: d.keepalive.as_secs_f64(),
            edge_timeout_s: d.edge_timeout.as_secs_f64(),
            near_per_side: d.near_per_side,
            far_connections: d.far_connections,
            max_connections: d.max_connections,
        }
    }
}

/// The virtual network (the `[ipop]` table). Without a namespace there is no TAP.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ipop {
    /// The namespace to join (32 hex digits, from `ipop-node namespace create`); with a
    /// `namespace_key` it may be left out (the key names it).
    pub namespace: Option<NamespaceArg>,
    /// The key file of a keyed namespace (from `ipop-node namespace create --key-file`):
    /// its packets, record and address mappings are sealed with the key.
    pub namespace_key: Option<PathBuf>,
    /// Name of the TAP device the node creates.
    pub tap: String,
    /// How virtual IPs map to nodes: "dht" (Brunet-ARP) or "hash" (SHA-1 of the IP).
    pub mapping: MappingArg,
    /// Addresses this node holds without DHCP (registered in the DHT the same way).
    pub static_addresses: Vec<std::net::Ipv4Addr>,
    /// Holds the lease passwords, so a restarted or moved node keeps its addresses.
    pub lease_file: PathBuf,
    /// Messages to one node within 10 s that make a shortcut to it (0: never).
    pub shortcut_threshold: u32,
    /// A shortcut without traffic this long is closed (seconds).
    pub shortcut_idle_s: f64,
    /// TAP offloads (TSO, checksum offload, coalesced writes) where the kernel has them.
    pub offload: bool,
}

impl Default for Ipop {
    fn default() -> Self {
        Ipop {
            namespace: None,
            namespace_key: None,
            tap: "ipop0".to_owned(),
            mapping: MappingArg(ipop_core::ipop::Mapping::Dht),
            static_addresses: Vec::new(),
            lease_file: PathBuf::from("/var/lib/ipop/leases"),
            shortcut_threshold: ipop_core::overlay::Config::default().shortcut_threshold,
            shortcut_idle_s: ipop_core::overlay::Config::default()
                .shortcut_idle
                .as_secs_f64(),
            offload: true,
        }
    }
}

/// The DHT's replication: a key is stored under `sub_keys` sub-keys (each on the two
/// nodes nearest it), and an operation succeeds when `majority` of them agree. Every node
/// of an overlay must use the same values.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dht {
    /// Sub-keys per key (1 to 256).
    pub sub_keys: usize,
    /// Sub-keys that must agree: more than half of `sub_keys`, at most all.
    pub majority: usize,
}

impl Default for Dht {
    fn default() -> Self {
        let d = ipop_core::dht::Config::default();
        Dht {
            sub_keys: d.sub_keys,
            majority: d.majority,
        }
    }
}

/// A namespace id in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceArg(pub ipop_core::ipop::NamespaceId);

impl<'de> Deserialize<'de> for NamespaceArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map(NamespaceArg)
            .map_err(serde::de::Error::custom)
    }
}

/// "dht" or "hash".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingArg(pub ipop_core::ipop::Mapping);

impl FromStr for MappingArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "dht" => Ok(MappingArg(ipop_core::ipop::Mapping::Dht)),
            "hash" => Ok(MappingArg(ipop_core::ipop::Mapping::Hash)),
            other => Err(format!("mapping {other:?}: expected \"dht\" or \"hash\"")),
        }
    }
}

impl<'de> Deserialize<'de> for MappingArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The node configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name of the overlay; nodes of different overlays refuse to link.
    pub overlay: String,
    /// UDP edges listen here.
    pub udp_listen: Listen,
    /// TCP edges listen here.
    pub tcp_listen: Listen,
    /// Nodes to join through.
    pub bootstrap: Vec<Uri>,
    /// Extra transport addresses to advertise (e.g. a port forwarded to this node).
    pub advertise: Vec<Uri>,
    /// Holds the node's P2P address; created with a random address on first start
    /// (plain edges only: with an overlay secret the address comes from `key_file`).
    pub address_file: PathBuf,
    /// The overlay's admission secret: a file holding 64 hexadecimal digits (from
    /// `ipop-node secret`), or, during a rotation, a few such lines, the preferred
    /// first (`ipop-node secret reload` reads it again). With it every edge is an authenticated, encrypted Noise
    /// session only holders of the secret can open, and the node's P2P address is the
    /// SHA-1 of its public key. Without it edges are plain (a lab mode).
    pub overlay_secret: Option<PathBuf>,
    /// Holds the node's private key (with an overlay secret); created on first start.
    pub key_file: PathBuf,
    /// The control socket (`ipop-node status` talks to it).
    pub control_socket: PathBuf,
    /// Log filter.
    pub log_level: LogLevel,
    /// Protocol timers and sizes.
    pub protocol: Protocol,
    /// The DHT's replication.
    pub dht: Dht,
    /// The virtual network.
    pub ipop: Ipop,
}

impl Default for Config {
    fn default() -> Self {
        let any4 = |port| Listen(Some(SocketAddr::from(([0, 0, 0, 0], port))));
        Config {
            overlay: "wow".to_owned(),
            udp_listen: any4(ipop_api::DEFAULT_PORT),
            tcp_listen: any4(ipop_api::DEFAULT_PORT),
            bootstrap: Vec::new(),
            advertise: Vec::new(),
            address_file: PathBuf::from("/var/lib/ipop/address"),
            overlay_secret: None,
            key_file: PathBuf::from("/var/lib/ipop/key"),
            control_socket: PathBuf::from("/run/ipop/ipop.sock"),
            log_level: LogLevel("info".to_owned()),
            protocol: Protocol::default(),
            dht: Dht::default(),
            ipop: Ipop::default(),
        }
    }
}

/// A configuration file that could not be used.
#[derive(Debug)]
pub struct ConfigError {
    file: PathBuf,
    line: Option<usize>,
    reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Fields that are out of range or do not fit together (found after parsing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The fields at fault, as dotted paths (`protocol.keepalive_s`). An error in a
    /// file points at the line of the last of them that the file sets.
    pub keys: &'static [&'static str],
    /// Why, naming the fields.
    pub reason: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Invalid {}

fn invalid(keys: &'static [&'static str], reason: impl Into<String>) -> Result<(), Invalid> {
    Err(Invalid {
        keys,
        reason: reason.into(),
    })
}

/// Longest protocol timer accepted (seconds): a day.
const MAX_TIMER_S: f64 = 86_400.0;

/// Whether `s` seconds is a usable timer: positive, finite, at most a day.
fn timer_ok(s: f64) -> bool {
    s > 0.0 && s <= MAX_TIMER_S
}

/// Where the key at dotted `path` starts in `table` (header tables, dotted keys and
/// inline tables alike).
fn key_offset(table: &toml::de::DeTable<'_>, path: &str) -> Option<usize> {
    let (first, rest) = match path.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (path, None),
    };
    let (key, value) = table.iter().find(|(k, _)| k.get_ref() == first)?;
    match (rest, value.get_ref()) {
        (None, _) => Some(key.span().start),
        (Some(rest), toml::de::DeValue::Table(t)) => key_offset(t, rest),
        (Some(_), _) => None,
    }
}

/// The line of the last of `keys` that `text` sets.
fn key_line(text: &str, keys: &[&str]) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    keys.iter()
        .filter_map(|k| key_offset(doc.get_ref(), k))
        .max()
        .map(|at| ipop_core::text::Position::of(text, at).line)
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: None,
            reason: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: e
                .span()
                .map(|s| ipop_core::text::Position::of(text, s.start).line),
            reason: e.message().trim().to_owned(),
        })?;
        config.check().map_err(|e| ConfigError {
            file: path.to_owned(),
            line: key_line(text, e.keys),
            reason: e.reason,
        })?;
        Ok(config)
    }

    /// Checks value ranges and relations between fields. The defaults pass, so a
    /// configuration that fails sets at least one of the keys the error names.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.overlay.trim().is_empty() {
            return invalid(&["overlay"], "overlay: the overlay name must not be empty");
        }
        if self.udp_listen.0.is_none() && self.tcp_listen.0.is_none() {
            return invalid(
                &["udp_listen", "tcp_listen"],
                "udp_listen and tcp_listen are both \"off\": the node needs one",
            );
        }
        if self.address_file.as_os_str().is_empty() {
            return invalid(
                &["address_file"],
                "address_file: the path must not be empty",
            );
        }
        if self.key_file.as_os_str().is_empty() {
            return invalid(&["key_file"], "key_file: the path must not be empty");
        }
        if self.overlay_secret.is_some() && self.ipop.mapping.0 == ipop_core::ipop::Mapping::Hash {
            return invalid(
                &["overlay_secret", "ipop.mapping"],
                "overlay_secret with ipop.mapping = \"hash\": with an overlay secret a node's P2P address is the hash of its key, not of its virtual IP; use mapping = \"dht\" (hash mode is for plain lab overlays)",
            );
        }
        if self.control_socket.as_os_str().is_empty() {
            return invalid(
                &["control_socket"],
                "control_socket: the path must not be empty",
            );
        }
        self.check_protocol()?;
        if let Err(e) = self.dht_config().validate() {
            return invalid(&["dht.sub_keys", "dht.majority"], format!("dht: {e}"));
        }
        self.check_ipop()
    }

    /// The DHT's parameters.
    pub fn dht_config(&self) -> ipop_core::dht::Config {
        ipop_core::dht::Config {
            sub_keys: self.dht.sub_keys,
            majority: self.dht.majority,
            ..ipop_core::dht::Config::default()
        }
    }

    fn check_protocol(&self) -> Result<(), Invalid> {
        let p = &self.protocol;
        if !timer_ok(p.keepalive_s) {
            return invalid(
                &["protocol.keepalive_s"],
                format!(
                    "protocol.keepalive_s = {}: must be positive and at most {MAX_TIMER_S} s",
                    p.keepalive_s
                ),
            );
        }
        if !timer_ok(p.edge_timeout_s) || p.edge_timeout_s <= p.keepalive_s {
            return invalid(
                &["protocol.keepalive_s", "protocol.edge_timeout_s"],
                format!(
                    "protocol.edge_timeout_s = {}: must be above keepalive_s ({}) and at most {MAX_TIMER_S} s",
                    p.edge_timeout_s, p.keepalive_s
                ),
            );
        }
        if p.near_per_side == 0 || p.near_per_side > 8 {
            return invalid(
                &["protocol.near_per_side"],
                format!(
                    "protocol.near_per_side = {}: must be between 1 and 8",
                    p.near_per_side
                ),
            );
        }
        let least = 2 * p.near_per_side + 1;
        if p.max_connections < least {
            return invalid(
                &["protocol.near_per_side", "protocol.max_connections"],
                format!(
                    "protocol.max_connections = {}: must be at least {least} (the ring neighbours on both sides, 2 x near_per_side, and a bootstrap link)",
                    p.max_connections
                ),
            );
        }
        Ok(())
    }

    fn check_ipop(&self) -> Result<(), Invalid> {
        let i = &self.ipop;
        if i.tap.is_empty() || i.tap.len() > 15 {
            return invalid(
                &["ipop.tap"],
                format!("ipop.tap {:?}: a device name is 1 to 15 characters", i.tap),
            );
        }
        if i.lease_file.as_os_str().is_empty() {
            return invalid(
                &["ipop.lease_file"],
                "ipop.lease_file: the path must not be empty",
            );
        }
        if let Some(ip) = i.static_addresses.iter().find(|ip| {
            ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback()
        }) {
            return invalid(
                &["ipop.static_addresses"],
                format!("ipop.static_addresses: {ip} is not a unicast host address"),
            );
        }
        if i.mapping.0 == ipop_core::ipop::Mapping::Hash && i.static_addresses.len() != 1 {
            return invalid(
                &["ipop.mapping", "ipop.static_addresses"],
                "ipop.mapping = \"hash\" needs exactly one static address in ipop.static_addresses (the node's P2P address is the SHA-1 of it, and DHCP hands out only that address)",
            );
        }
        if !timer_ok(i.shortcut_idle_s) {
            return invalid(
                &["ipop.shortcut_idle_s"],
                format!(
                    "ipop.shortcut_idle_s = {}: must be positive and at most {MAX_TIMER_S} s",
                    i.shortcut_idle_s
                ),
            );
        }
        Ok(())
    }

    /// The overlay protocol parameters this configuration asks for.
    pub fn overlay_config(&self) -> ipop_core::overlay::Config {
        let p = &self.protocol;
        ipop_core::overlay::Config {
            overlay_id: ipop_core::overlay::Config::overlay_id_of(&self.overlay),
            keepalive: Duration::from_secs_f64(p.keepalive_s),
            edge_timeout: Duration::from_secs_f64(p.edge_timeout_s),
            near_per_side: p.near_per_side,
            far_connections: p.far_connections,
            max_connections: p.max_connections,
            shortcut_threshold: self.ipop.shortcut_threshold,
            shortcut_idle: Duration::from_secs_f64(self.ipop.shortcut_idle_s),
            ..ipop_core::overlay::Config::default()
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
