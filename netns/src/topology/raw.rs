//! The topology file as written: serde structures that keep the byte span of every
//! value, so that validation can point at the offending line.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) core: Option<Core>,
    #[serde(default)]
    pub(crate) site: Vec<Site>,
    #[serde(default)]
    pub(crate) public: Vec<Public>,
    #[serde(default)]
    pub(crate) wan: Vec<Wan>,
    #[serde(default)]
    pub(crate) overlay: Option<Overlay>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Core {
    pub(crate) subnet: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Site {
    pub(crate) name: Spanned<String>,
    pub(crate) hosts: Spanned<i64>,
    #[serde(default)]
    pub(crate) subnet: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) nat: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) firewall: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) firewall_rules: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(crate) hairpin: Option<Spanned<bool>>,
    #[serde(default)]
    pub(crate) binding_timeout_s: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Public {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) count: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) addresses: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Wan {
    #[serde(default)]
    pub(crate) site: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) host: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) delay_ms: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) jitter_ms: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) loss: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) rate_mbit: Option<Spanned<f64>>,
    #[serde(default)]
    pub(crate) mtu: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Overlay {
    #[serde(default)]
    pub(crate) bootstrap: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) namespaces: Vec<Spanned<Namespace>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Namespace {
    pub(crate) range: String,
    pub(crate) lease_s: i64,
}
