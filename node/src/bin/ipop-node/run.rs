//! `ipop-node run`: the flags, laid over the configuration file, and the node started
//! with them.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ipop_node::config::{Config, Listen, LogLevel, MappingArg, NamespaceArg, Uri};
use ipop_node::{driver, identity};

#[derive(Debug, Args, Default)]
pub(crate) struct RunArgs {
    /// Configuration file (TOML); see `ipop-node config-example`.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Overlay name.
    #[arg(long)]
    overlay: Option<String>,
    /// UDP listen address, or "off".
    #[arg(long)]
    udp_listen: Option<String>,
    /// TCP listen address, or "off".
    #[arg(long)]
    tcp_listen: Option<String>,
    /// A bootstrap URI (repeatable); replaces the file's list.
    #[arg(long)]
    bootstrap: Vec<String>,
    /// An extra transport URI to advertise (repeatable); replaces the file's list.
    #[arg(long)]
    advertise: Vec<String>,
    /// File holding the node's P2P address.
    #[arg(long)]
    address_file: Option<PathBuf>,
    /// The overlay's admission secret (a file; `ipop-node secret` makes one): edges
    /// become authenticated, encrypted Noise sessions.
    #[arg(long)]
    overlay_secret: Option<PathBuf>,
    /// File holding the node's private key (with an overlay secret).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Control socket path.
    #[arg(long)]
    control_socket: Option<PathBuf>,
    /// Log filter (error, warn, info, debug, trace, or directives).
    #[arg(long)]
    log_level: Option<String>,
    /// IPOP namespace to join (creates the TAP device).
    #[arg(long)]
    namespace: Option<String>,
    /// Key file of a keyed namespace to join (it names the namespace: --namespace may
    /// be left out).
    #[arg(long)]
    namespace_key: Option<PathBuf>,
    /// TAP device name.
    #[arg(long)]
    tap: Option<String>,
    /// Virtual-IP mapping: dht or hash.
    #[arg(long)]
    mapping: Option<String>,
    /// A static virtual address (repeatable); replaces the file's list.
    #[arg(long)]
    static_address: Vec<std::net::Ipv4Addr>,
    /// The lease file.
    #[arg(long)]
    lease_file: Option<PathBuf>,
    /// Shortcut threshold (messages in 10 s; 0: never).
    #[arg(long)]
    shortcut_threshold: Option<u32>,
    /// No TAP offloads: every frame read and written alone (for comparisons, or a
    /// kernel whose offloads misbehave).
    #[arg(long)]
    no_offload: bool,
}

impl RunArgs {
    /// The configuration: the file (or defaults) with flags applied over it.
    fn config(&self) -> Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let uri = |s: &String| s.parse().map(Uri).with_context(|| format!("bad URI {s:?}"));
        if let Some(o) = &self.overlay {
            c.overlay.clone_from(o);
        }
        if let Some(l) = &self.udp_listen {
            c.udp_listen = l.parse::<Listen>().map_err(anyhow::Error::msg)?;
        }
        if let Some(l) = &self.tcp_listen {
            c.tcp_listen = l.parse::<Listen>().map_err(anyhow::Error::msg)?;
        }
        if !self.bootstrap.is_empty() {
            c.bootstrap = self.bootstrap.iter().map(uri).collect::<Result<_>>()?;
        }
        if !self.advertise.is_empty() {
            c.advertise = self.advertise.iter().map(uri).collect::<Result<_>>()?;
        }
        if let Some(p) = &self.address_file {
            c.address_file.clone_from(p);
        }
        if let Some(p) = &self.overlay_secret {
            c.overlay_secret = Some(p.clone());
        }
        if let Some(p) = &self.key_file {
            c.key_file.clone_from(p);
        }
        if let Some(p) = &self.control_socket {
            c.control_socket.clone_from(p);
        }
        if let Some(l) = &self.log_level {
            tracing_subscriber::EnvFilter::try_new(l)
                .with_context(|| format!("bad --log-level {l:?}"))?;
            c.log_level = LogLevel(l.clone());
        }
        if let Some(ns) = &self.namespace {
            c.ipop.namespace = Some(NamespaceArg(ns.parse().map_err(anyhow::Error::msg)?));
        }
        if let Some(p) = &self.namespace_key {
            c.ipop.namespace_key = Some(p.clone());
        }
        if let Some(t) = &self.tap {
            c.ipop.tap.clone_from(t);
        }
        if let Some(m) = &self.mapping {
            c.ipop.mapping = m.parse::<MappingArg>().map_err(anyhow::Error::msg)?;
        }
        if !self.static_address.is_empty() {
            c.ipop.static_addresses.clone_from(&self.static_address);
        }
        if let Some(p) = &self.lease_file {
            c.ipop.lease_file.clone_from(p);
        }
        if let Some(t) = self.shortcut_threshold {
            c.ipop.shortcut_threshold = t;
        }
        if self.no_offload {
            c.ipop.offload = false;
        }
        c.check()
            .context("the configuration (file and flags) is not usable")?;
        Ok(c)
    }
}

pub(crate) fn run_node(args: &RunArgs) -> Result<()> {
    let config = args.config()?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log_level.0))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    // With an overlay secret the address is the hash of the node's key; in hash mode
    // the hash of its one virtual address.
    let security = match &config.overlay_secret {
        Some(path) => Some(driver::Security {
            secrets: identity::read_secrets(path)?,
            identity: identity::load_or_create_key(&config.key_file)?,
        }),
        None => None,
    };
    let address = match (&security, ipop_node::vnet::hashed_address(&config)) {
        (Some(s), _) => s.identity.address(),
        (None, Some(a)) => a,
        (None, None) => identity::load_or_create(&config.address_file)?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(driver::run(config, address, security))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file() {
        let args = RunArgs {
            bootstrap: vec!["tcp://198.18.0.1:4001".into()],
            udp_listen: Some("off".into()),
            ..RunArgs::default()
        };
        let c = args.config().unwrap();
        assert_eq!(c.udp_listen, Listen(None));
        assert_eq!(c.bootstrap[0].0.to_string(), "tcp://198.18.0.1:4001");
        let bad = RunArgs {
            bootstrap: vec!["198.18.0.1".into()],
            ..RunArgs::default()
        };
        assert!(bad.config().unwrap_err().to_string().contains("bad URI"));
        let unusable = RunArgs {
            udp_listen: Some("off".into()),
            tcp_listen: Some("off".into()),
            ..RunArgs::default()
        };
        let e = format!("{:#}", unusable.config().unwrap_err());
        assert!(
            e.contains("(file and flags)") && e.contains("needs one"),
            "{e}"
        );
    }
}
