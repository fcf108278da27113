//! The driver's answers to control requests: status, leave, probes, DHT operations and
//! namespaces. What they start finishes in [`Driver::flush`](super::Driver), which hands
//! the results to the waiting requests.

use std::time::{Duration, Instant};

use ipop_api::control::{Left, NamespaceEntry, NamespaceList, SecretsLoaded};
use ipop_core::Address;
use ipop_core::dht::RequestId;
use ipop_core::ipop::Namespace;
use serde_json::Value;
use tokio::sync::oneshot;

use super::Driver;
use crate::control::{self, Pending, Request};
use crate::status;
use crate::vnet;

/// Who waits for a DHT operation started from the control socket.
pub(super) enum Waiter {
    Reply(oneshot::Sender<Value>),
    /// A namespace record, to open (keyed) and check before it is shown.
    Record(oneshot::Sender<Value>, Namespace),
}

/// How long a probe waits for its echo.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
impl Driver {
    /// Answers a control request, or starts what will answer it.
    pub(super) fn on_control(&mut self, p: Pending) {
        let now = Instant::now();
        let Pending { request, reply } = p;
        let started = match request {
            Request::Status => {
                let _ = reply.send(control::reply(&self.status(now)));
                return;
            }
            Request::Leave => {
                self.leave("leave requested");
                let _ = reply.send(control::reply(&Left { left: true }));
                return;
            }
            Request::Probe { dst } => return self.start_probe(now, &dst, reply),
            Request::NamespaceCreate {
                id,
                key,
                name,
                range,
                lease_s,
                mtu,
                dns,
            } => {
                let requested =
                    vnet::requested_namespace(id.as_deref(), key.as_deref()).and_then(|fixed| {
                        let keyed = fixed.as_ref().is_some_and(Namespace::is_keyed);
                        vnet::record(&name, &range, lease_s, mtu, dns, keyed)
                            .map(|record| (record, fixed))
                    });
                match requested {
                    Ok((record, fixed)) => self.create_namespace(now, reply, record, fixed),
                    Err(e) => {
                        let _ = reply.send(control::refused(e));
                    }
                }
                return;
            }
            Request::NamespaceList => {
                let _ = reply.send(control::reply(&self.namespaces()));
                return;
            }
            Request::SecretReload => {
                let _ = reply.send(self.reload_secrets());
                return;
            }
            Request::NamespaceDelete { id, key } => {
                return self.delete_namespace(now, id, key, reply);
            }
            Request::NamespaceShow { id, key } => return self.show_namespace(now, id, key, reply),
            Request::DhtGet { key } => self.stack.dht_get(now, key.as_bytes()),
            Request::DhtDelete { key, password } => self.stack.dht_op(now, |d, n| {
                d.delete(now, n, key.as_bytes(), password.as_bytes())
            }),
            Request::DhtRecreate {
                key,
                value,
                password,
                new_password,
                ttl_s,
            } => self.stack.dht_op(now, |d, n| {
                d.recreate(
                    now,
                    n,
                    key.as_bytes(),
                    password.as_bytes(),
                    new_password.as_bytes(),
                    value.as_bytes(),
                    Duration::from_secs(ttl_s),
                )
            }),
            Request::DhtCreate {
                key,
                value,
                password,
                ttl_s,
            } => self.stack.dht_create(
                now,
                key.as_bytes(),
                password.as_bytes(),
                value.as_bytes(),
                Duration::from_secs(ttl_s),
            ),
        };
        self.wait_for(started, reply);
    }

    /// Answers `reply` when the DHT operation `started` ends, or now if it did not start.
    fn wait_for(
        &mut self,
        started: Result<RequestId, impl ToString>,
        reply: oneshot::Sender<Value>,
    ) {
        match started {
            Ok(id) => {
                self.waiting.insert(id, Waiter::Reply(reply));
            }
            Err(e) => {
                let _ = reply.send(control::refused(e));
            }
        }
    }

    /// Deletes the namespace named by `id` or `key`: its record leaves the DHT and the
    /// keeper stops renewing it.
    fn delete_namespace(
        &mut self,
        now: Instant,
        id: Option<String>,
        key: Option<String>,
        reply: oneshot::Sender<Value>,
    ) {
        let Some((ns, reply)) = named_or_refused(id, key, reply) else {
            return;
        };
        let keeper = &mut self.keeper;
        let started = self.stack.dht_op(now, |d, n| keeper.delete(now, n, d, &ns));
        self.wait_for(started, reply);
    }

    /// The node's status, with the driver's facts and the virtual network's state.
    fn status(&mut self, now: Instant) -> ipop_api::Status {
        self.refresh_facts();
        let mut s = status::status(&self.stack, &self.config.overlay, &self.facts, now);
        s.ipop = self
            .vnet
            .as_ref()
            .and_then(|v| v.status(&self.stack, &self.faults, self.facts.started));
        s
    }

    /// Sends an overlay echo to `dst`; its reply, or [`PROBE_TIMEOUT`], answers `reply`.
    fn start_probe(&mut self, now: Instant, dst: &str, reply: oneshot::Sender<Value>) {
        let refused = match dst.parse::<Address>() {
            Ok(dst) => {
                let id = self.next_probe;
                self.next_probe += 1;
                match self.stack.node.send_probe(now, dst, id, true) {
                    Ok(()) => {
                        self.probes.insert(id, (now, reply));
                        return;
                    }
                    Err(e) => control::refused(e),
                }
            }
            Err(e) => control::refused(e),
        };
        let _ = reply.send(refused);
    }

    /// Reads the record of the namespace named by `id` or `key` from the DHT, to be
    /// opened and shown when it arrives.
    fn show_namespace(
        &mut self,
        now: Instant,
        id: Option<String>,
        key: Option<String>,
        reply: oneshot::Sender<Value>,
    ) {
        let Some((ns, reply)) = named_or_refused(id, key, reply) else {
            return;
        };
        if let Ok(op) = self.stack.dht_get(now, &ns.record_key()) {
            self.waiting.insert(op, Waiter::Record(reply, ns));
        } else {
            let _ = reply.send(control::refused("not in the overlay yet"));
        }
    }

    /// The namespace the node is a member of, then those it created and keeps.
    fn namespaces(&self) -> NamespaceList {
        let entry =
            |id: String, keyed, record: Option<&ipop_core::ipop::NamespaceRecord>| NamespaceEntry {
                id,
                keyed,
                name: record.map(|r| r.name.clone()),
                range: record.map(|r| r.range.to_string()),
                ..NamespaceEntry::default()
            };
        let mut list: Vec<NamespaceEntry> = Vec::new();
        if let Some(i) = self.stack.ipop.as_ref() {
            list.push(NamespaceEntry {
                member: true,
                ..entry(i.namespace().to_string(), i.keyed(), i.record())
            });
        }
        for (ns, record) in self.keeper.kept() {
            let id = ns.id().to_string();
            match list.iter_mut().find(|e| e.id == id) {
                Some(e) => e.kept = true,
                None => list.push(NamespaceEntry {
                    kept: true,
                    ..entry(id, ns.is_keyed(), Some(record))
                }),
            }
        }
        NamespaceList { namespaces: list }
    }

    /// Creates a namespace record (under `fixed` or a fresh random identifier; the
    /// keeper tries others if that one is taken).
    fn create_namespace(
        &mut self,
        now: Instant,
        reply: oneshot::Sender<Value>,
        record: ipop_core::ipop::NamespaceRecord,
        fixed: Option<Namespace>,
    ) {
        let keeper = &mut self.keeper;
        match self
            .stack
            .dht_op(now, |d, n| keeper.create(now, n, d, record, fixed))
        {
            Ok(ticket) => {
                self.creating.insert(ticket, reply);
            }
            Err(e) => {
                let _ = reply.send(control::refused(e));
            }
        }
    }
}

/// The namespace named by `id` or `key`, with `reply` to answer; `None` once `reply`
/// was refused with why it names none.
fn named_or_refused(
    id: Option<String>,
    key: Option<String>,
    reply: oneshot::Sender<Value>,
) -> Option<(Namespace, oneshot::Sender<Value>)> {
    let named = vnet::requested_namespace(id.as_deref(), key.as_deref())
        .and_then(|ns| ns.ok_or_else(|| "name the namespace: id or key".to_owned()));
    match named {
        Ok(ns) => Some((ns, reply)),
        Err(e) => {
            let _ = reply.send(control::refused(e));
            None
        }
    }
}

impl Driver {
    /// Reads the overlay secret file again and hands its secrets to the secure layer.
    fn reload_secrets(&mut self) -> Value {
        let (Some(path), Some(secure)) = (&self.config.overlay_secret, self.stack.secure.as_mut())
        else {
            return control::refused("this node runs without an overlay secret (--overlay-secret)");
        };
        let secrets = match crate::identity::read_secrets(path) {
            Ok(s) => s,
            Err(e) => return control::refused(format!("{e:#}")),
        };
        let closed = secure.set_secrets(secrets.preferred, secrets.also);
        tracing::info!(closed, "overlay secrets reloaded");
        control::reply(&SecretsLoaded {
            secrets: secure
                .secret_ids()
                .iter()
                .map(|id| ipop_core::text::to_hex(id))
                .collect(),
            closed: closed as u64,
        })
    }
}
