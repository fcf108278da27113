//! The typed interface between an `ipop-node` and its clients (the CLI, the harness,
//! the experiments): the status document ([`status`]), the control socket's requests
//! and replies ([`control`]), and the part of the configuration file a deployer writes
//! ([`config`]). Serializing these types gives the JSON and TOML documented in
//! `node/README.md`; the field names are that documentation's and never change.
//!
//! Every type reads with defaults for absent fields, so a document from an older node
//! (fields are only ever added) still parses.

pub mod config;
pub mod control;
pub mod status;
mod vnet;

pub use config::{DEFAULT_PORT, bootstrap_uris, uris};
pub use status::Status;
