//! The hosts file as written: serde structures that keep the byte span of every value,
//! so that validation can point at the offending line.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    #[serde(default)]
    pub(super) overlay: Option<Overlay>,
    #[serde(default)]
    pub(super) defaults: Option<Settings>,
    #[serde(default)]
    pub(super) jump: Vec<Jump>,
    #[serde(default)]
    pub(super) host: Vec<Host>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Overlay {
    #[serde(default)]
    pub(super) name: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) log_level: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) secret_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) insecure: Option<bool>,
}

/// What `[defaults]` and every `[[host]]` may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Settings {
    #[serde(default)]
    pub(super) user: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) port: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) agent: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) jump: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) known_hosts: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) host_key_check: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) connect_timeout_s: Option<Spanned<f64>>,
    #[serde(default)]
    pub(super) work_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) udp_port: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) tcp_port: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) node_args: Option<Spanned<Vec<String>>>,
}

/// A `[[host]]`: its identity plus everything `[defaults]` may set (serde cannot combine
/// `flatten` with `deny_unknown_fields`, hence the repetition and [`Host::split`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Host {
    pub(super) name: Spanned<String>,
    pub(super) address: Spanned<String>,
    #[serde(default)]
    pub(super) roles: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) user: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) port: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) agent: Option<Spanned<bool>>,
    #[serde(default)]
    pub(super) jump: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) known_hosts: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) host_key_check: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) connect_timeout_s: Option<Spanned<f64>>,
    #[serde(default)]
    pub(super) work_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) udp_port: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) tcp_port: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) node_args: Option<Spanned<Vec<String>>>,
}

impl Host {
    /// Its identity, roles, and settings.
    pub(super) fn split(
        self,
    ) -> (
        Spanned<String>,
        Spanned<String>,
        Vec<Spanned<String>>,
        Settings,
    ) {
        let settings = Settings {
            user: self.user,
            port: self.port,
            key: self.key,
            agent: self.agent,
            jump: self.jump,
            known_hosts: self.known_hosts,
            host_key_check: self.host_key_check,
            connect_timeout_s: self.connect_timeout_s,
            work_dir: self.work_dir,
            udp_port: self.udp_port,
            tcp_port: self.tcp_port,
            node_args: self.node_args,
        };
        (self.name, self.address, self.roles, settings)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Jump {
    pub(super) name: Spanned<String>,
    pub(super) address: Spanned<String>,
    #[serde(default)]
    pub(super) port: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) user: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) agent: Option<Spanned<bool>>,
}
