//! The control socket's protocol: one JSON [`Request`] line per connection, answered
//! with one JSON line: the [`Status`](crate::Status), one of the replies here, or a
//! [`Refused`] naming why.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// A request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Create a namespace record: keyed (`key`), or open under `id` or a new random
    /// identifier.
    NamespaceCreate {
        /// The identifier to use (32 hex digits); random if absent.
        #[serde(default)]
        id: Option<String>,
        /// The namespace key (64 hex digits) of a keyed namespace.
        #[serde(default)]
        key: Option<String>,
        /// A name for people.
        name: String,
        /// The virtual IP range, e.g. 10.128.0.0/12.
        range: String,
        /// DHCP lease time in seconds.
        lease_s: u64,
        /// MTU handed to DHCP clients.
        mtu: u16,
        /// DNS server handed to DHCP clients.
        dns: Option<Ipv4Addr>,
    },
    /// Read a namespace record.
    NamespaceShow {
        /// The namespace identifier (of an open namespace).
        #[serde(default)]
        id: Option<String>,
        /// The namespace key (64 hex digits) of a keyed namespace.
        #[serde(default)]
        key: Option<String>,
    },
    /// The namespaces this node is a member of or keeps alive.
    NamespaceList,
    /// Read the overlay secret file again (a rotation step): its first secret is
    /// preferred, the others still held; edges made under a secret no longer in it close.
    SecretReload,
    /// Delete a namespace's record from the DHT (and stop keeping it alive).
    NamespaceDelete {
        /// The namespace identifier (of an open namespace).
        #[serde(default)]
        id: Option<String>,
        /// The namespace key (64 hex digits) of a keyed namespace.
        #[serde(default)]
        key: Option<String>,
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
    /// Delete a DHT key (text) given its password.
    DhtDelete {
        /// The key.
        key: String,
        /// The password it was created (or last re-created) with.
        password: String,
    },
    /// Re-create a DHT key (text): a new value, TTL and password, given the current
    /// password; it is created if it does not exist.
    DhtRecreate {
        /// The key.
        key: String,
        /// The new value.
        value: String,
        /// The current password.
        password: String,
        /// The password from now on.
        new_password: String,
        /// Time to live in seconds.
        ttl_s: u64,
    },
}

/// The answer to a refused or failed request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Refused {
    /// Why.
    pub error: String,
}

impl Refused {
    /// A refusal for `why`.
    pub fn new(why: impl ToString) -> Refused {
        Refused {
            error: why.to_string(),
        }
    }
}

/// The answer to [`Request::Leave`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Left {
    /// Always true: the node is leaving.
    pub left: bool,
}

/// The answer to [`Request::Probe`]: the echo's round trip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProbeReply {
    /// Round-trip time in ms.
    pub rtt_ms: f64,
    /// Overlay hops the request took.
    pub hops: u32,
    /// Overlay hops the reply took.
    pub return_hops: u32,
}

/// The answer to [`Request::NamespaceCreate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceCreated {
    /// The new namespace's identifier (32 hex digits).
    pub namespace: String,
}

/// The answer to [`Request::NamespaceShow`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceRecord {
    /// The record's text (`name=`, `range=`, ... lines), `None` if there is none.
    pub record: Option<String>,
}

/// The answer to [`Request::NamespaceList`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceList {
    /// One entry per namespace, the node's own (member) first.
    pub namespaces: Vec<NamespaceEntry>,
}

/// A namespace a node knows of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceEntry {
    /// The identifier.
    pub id: String,
    /// Whether it is keyed.
    pub keyed: bool,
    /// The node is a member (its TAP is in this namespace).
    pub member: bool,
    /// The node created the namespace and keeps its record alive.
    pub kept: bool,
    /// The record's name and range, once known.
    pub name: Option<String>,
    /// The virtual IP range (CIDR), once known.
    pub range: Option<String>,
}

/// The answer to [`Request::SecretReload`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretsLoaded {
    /// The ids of the secrets now held (8 hex digits each), the preferred first.
    pub secrets: Vec<String>,
    /// Transports whose sessions closed because their secret is no longer held.
    pub closed: u64,
}

/// The answer to [`Request::DhtGet`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DhtValues {
    /// The key's live values (empty if none).
    pub values: Vec<String>,
}

/// The answer to a DHT write such as [`Request::DhtCreate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DhtDone {
    /// What was done, e.g. `created`.
    pub ok: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_keep_their_json() {
        let r: Request = serde_json::from_str(r#"{"command":"status"}"#).unwrap();
        assert_eq!(r, Request::Status);
        let r: Request = serde_json::from_str(r#"{"command":"dht_get","key":"k"}"#).unwrap();
        assert_eq!(r, Request::DhtGet { key: "k".into() });
        assert!(serde_json::from_str::<Request>(r#"{"command":"reboot"}"#).is_err());
        let probe = Request::Probe { dst: "ab".into() };
        assert_eq!(
            serde_json::to_string(&probe).unwrap(),
            r#"{"command":"probe","dst":"ab"}"#
        );
        let reply = ProbeReply {
            rtt_ms: 12.5,
            hops: 3,
            return_hops: 2,
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"rtt_ms":12.5,"hops":3,"return_hops":2}"#
        );
        let none = NamespaceRecord { record: None };
        assert_eq!(serde_json::to_string(&none).unwrap(), r#"{"record":null}"#);
        assert_eq!(
            serde_json::to_string(&Refused::new("no")).unwrap(),
            r#"{"error":"no"}"#
        );
    }
}
