//! The insider: a member of a secure overlay (it holds the admission secret and a key of
//! its own) that joins like any node, then attacks the other members from inside.
//!
//! 1. Impersonation: routed messages whose `src` is a victim's address, sealed on its own
//!    authenticated edges — unsigned (a probe, a DHT read and delete), and signed with its
//!    own key or with random bytes (the destination counts `unsigned`, `bad_signature`,
//!    `dht.unverified`).
//! 2. Lease takeover: DHT writes for the victims' lease keys with its own password
//!    (delete, recreate, create): refused with BadPassword or KeyExists.
//! 3. Forged copies: REPLICATE of the victims' lease records built from the records'
//!    own certificates (read from the replicas' answers to its reads) with another value,
//!    as a tombstone, or with its own certificate for another key (the replicas count
//!    `dht.refused_replicas`).
//!
//! Attacks 4 to 6 (a keyed namespace it has no key for, reads it forwards, payloads it
//! sees) are in `forged.rs`. With `--keyed` the namespace is keyed: its lease keys are
//! hashes the insider cannot compute, so attacks 2 and 3 and the impersonated DHT
//! requests are left out, and attack 4 is made.
//!
//! At the end it reads every lease again and prints one JSON object: what it sent, the
//! outcome of each write, and whether each lease still has its value.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use ipop_core::dht::wire::{self as dht_wire, Cert, RecordRepr, Reply, Status};
use ipop_core::dht::{self, DhtError, Outcome, RequestId};
use ipop_core::ipop::NamespaceId;
use ipop_core::overlay::{self, Edge};
use ipop_core::secure::{self, Identity};
use ipop_core::wire::{
    self, Message, Mode, OverlayPayload, Probe, Routed, RoutedFlags, RoutedHeader,
    SIGNATURE_TRAILER, kind,
};
use ipop_core::{Address, Proto, Stack, TransportAddr};
use serde_json::{Value, json};

/// The insider's options (with `--insider`).
#[derive(Debug, clap::Args)]
pub(crate) struct Options {
    /// The overlay's admission secret (a file of 64 hexadecimal digits).
    #[arg(long, requires = "insider")]
    overlay_secret: Option<std::path::PathBuf>,
    /// This member's UDP address (`IP:PORT`, the host's own).
    #[arg(long, requires = "insider")]
    listen: Option<SocketAddrV4>,
    /// A member to join through (`IP:PORT`, UDP).
    #[arg(long, requires = "insider")]
    bootstrap: Option<SocketAddrV4>,
    /// A member to impersonate and attack (its P2P address in hexadecimal); those of the
    /// namespace first, in the order of their `--lease-ip`.
    #[arg(long = "victim", requires = "insider")]
    victims: Vec<String>,
    /// The open namespace whose leases to attack.
    #[arg(long, requires = "insider")]
    namespace: Option<String>,
    /// A leased virtual IP of that namespace to attack.
    #[arg(long = "lease-ip", requires = "namespace")]
    lease_ips: Vec<Ipv4Addr>,
    /// The namespace is keyed (the insider does not hold its key).
    #[arg(long, requires = "namespace")]
    keyed: bool,
    /// A payload of 16 bytes (32 hexadecimal digits, as `ping -p` repeats it) whose
    /// appearance in clear in any datagram the insider opens is counted.
    #[arg(long, requires = "insider")]
    pattern: Option<String>,
}

/// How long the insider waits to become correctly connected, and for each DHT operation.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
const OP_TIMEOUT: Duration = Duration::from_secs(20);

/// A replica's answer to a read: a sub-key's value and the certificate of its write.
struct Certified {
    sub: u8,
    value: Vec<u8>,
    cert: Cert,
    ttl_left_s: u32,
}

/// A secure member driven over one UDP socket.
struct Member {
    stack: Stack,
    socket: UdpSocket,
    buf: Vec<u8>,
    out: Vec<u8>,
    /// Replies to this member's reads, read from the opened datagrams.
    replies: Vec<Certified>,
    results: BTreeMap<RequestId, Result<Outcome, DhtError>>,
    sent: BTreeMap<&'static str, u64>,
    /// What it saw in the datagrams it opened.
    seen: BTreeMap<&'static str, u64>,
    /// The known payload to look for.
    pattern: Option<Vec<u8>>,
    /// The certificate of a record of its own, to answer others' reads with.
    own_cert: Option<Cert>,
}

#[path = "forged.rs"]
mod forged;

pub(crate) fn run(args: &Options, overlay_name: &str) -> Result<()> {
    let (Some(secret), Some(listen), Some(bootstrap), Some(ns)) = (
        &args.overlay_secret,
        args.listen,
        args.bootstrap,
        &args.namespace,
    ) else {
        bail!("--insider needs --overlay-secret, --listen, --bootstrap and --namespace");
    };
    let psk = ipop_core::text::hex_bytes::<32>(
        &std::fs::read_to_string(secret).context("reading the overlay secret")?,
    )
    .context("the overlay secret is not 64 hexadecimal digits")?;
    let ns: NamespaceId = ns.parse().map_err(|e| anyhow::anyhow!("{ns}: {e:?}"))?;
    let victims = args
        .victims
        .iter()
        .map(|v| v.parse().map_err(|e| anyhow::anyhow!("{v}: {e}")))
        .collect::<Result<Vec<Address>>>()?;
    // A keyed namespace's lease keys are hashes of its key: not the insider's to name.
    let keys: Vec<Vec<u8>> = if args.keyed {
        Vec::new()
    } else {
        args.lease_ips.iter().map(|ip| ns.ip_key(*ip)).collect()
    };
    let mut m = Member::start(psk, overlay_name, listen, bootstrap)?;
    m.pattern = args.pattern.as_deref().map(parse_pattern).transpose()?;
    if !m.run_until(Instant::now() + CONNECT_TIMEOUT, |m| {
        m.stack.node.is_correctly_connected()
    })? {
        bail!("the insider did not become correctly connected");
    }
    // Settle, so that the members' routing tables include the insider.
    m.run_for(Duration::from_secs(3))?;
    // From now on it answers the reads it forwards with this.
    m.own_cert = m.own_certificate()?;
    let before: Vec<Option<Vec<u8>>> = keys.iter().map(|k| m.read(k)).collect::<Result<_>>()?;
    let certs = m.certified_copies(&keys, &before)?;
    m.impersonate(&victims, &keys)?;
    if args.keyed {
        m.inject(ns, &victims, &args.lease_ips)?;
    }
    let writes = m.take_over(&keys)?;
    let own_cert = m.own_cert;
    m.forge_copies(&keys, &certs, own_cert)?;
    // Let the copies arrive and the replicas resync once more.
    m.run_for(Duration::from_secs(3))?;
    let after: Vec<Option<Vec<u8>>> = keys.iter().map(|k| m.read(k)).collect::<Result<_>>()?;
    let leases: Vec<Value> = (0..keys.len())
        .map(|i| {
            json!({
                "ip": args.lease_ips[i].to_string(),
                "found_before": before[i].is_some(),
                "intact": before[i].is_some() && before[i] == after[i],
                "certified_copies_read": certs[i].len(),
            })
        })
        .collect();
    let report = json!({
        "insider": m.stack.node.address().to_string(),
        "sent": m.sent,
        "seen": m.seen,
        "writes": writes,
        "leases": leases,
    });
    println!("{report}");
    Ok(())
}

/// The `--pattern` to look for: 16 bytes in hexadecimal.
fn parse_pattern(p: &str) -> Result<Vec<u8>> {
    Ok(ipop_core::text::hex_bytes::<16>(p)
        .context("--pattern: 32 hexadecimal digits")?
        .to_vec())
}

impl Member {
    /// For each of `keys`, the signed replies to a fresh read that carry the value read
    /// before (`before`): the certified copies the insider can replay.
    fn certified_copies(
        &mut self,
        keys: &[Vec<u8>],
        before: &[Option<Vec<u8>>],
    ) -> Result<Vec<Vec<Certified>>> {
        let mut all = Vec::new();
        for (k, v) in keys.iter().zip(before) {
            self.replies.clear();
            let _ = self.read(k)?;
            all.push(
                self.replies
                    .drain(..)
                    .filter(|r| Some(&r.value) == v.as_ref())
                    .collect(),
            );
        }
        Ok(all)
    }

    fn start(
        psk: [u8; 32],
        overlay_name: &str,
        listen: SocketAddrV4,
        bootstrap: SocketAddrV4,
    ) -> Result<Member> {
        let identity = Identity::from_private(random32()?);
        let now = Instant::now();
        let wall = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let config = overlay::Config {
            overlay_id: overlay::Config::overlay_id_of(overlay_name),
            ..overlay::Config::default()
        };
        let seed = u64::from_le_bytes(random32()?[..8].try_into()?);
        let mut stack = Stack::new(
            config,
            dht::Config::default(),
            identity.address(),
            seed,
            now,
            dht::WallClock::new(now, wall),
        );
        stack.enable_secure(secure::Config::new(psk), identity, seed.rotate_left(29));
        let socket = UdpSocket::bind(listen).with_context(|| format!("bind {listen}"))?;
        stack
            .node
            .add_local_transport(TransportAddr::udp(SocketAddr::V4(listen)));
        stack
            .node
            .join(now, &[TransportAddr::udp(SocketAddr::V4(bootstrap))]);
        Ok(Member {
            stack,
            socket,
            buf: vec![0; 65_535],
            out: Vec::new(),
            replies: Vec::new(),
            results: BTreeMap::new(),
            sent: BTreeMap::new(),
            seen: BTreeMap::new(),
            pattern: None,
            own_cert: None,
        })
    }

    /// Drives the stack until `done` or `deadline`; whether `done` became true.
    fn run_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<bool> {
        loop {
            self.flush();
            while let Some((id, r)) = self.stack.poll_dht_result() {
                self.results.insert(id, r);
            }
            while self.stack.poll_event().is_some() || self.stack.poll_delivery().is_some() {}
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let next = self.stack.poll_timeout().unwrap_or(deadline).min(deadline);
            let wait = next
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), Duration::from_millis(50));
            self.socket.set_read_timeout(Some(wait))?;
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let now = Instant::now();
                    let mut data = self.buf[..n].to_vec();
                    self.stack
                        .handle_datagram(now, TransportAddr::udp(from), &mut data);
                    self.note_reply(&data, n);
                    self.note_forwarded(&data, n);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e).context("receiving"),
            }
            let now = Instant::now();
            if self.stack.poll_timeout().is_some_and(|t| t <= now) {
                self.stack.handle_timeout(now);
            }
        }
    }

    fn run_for(&mut self, d: Duration) -> Result<()> {
        self.run_until(Instant::now() + d, |_| false).map(drop)
    }

    /// Sends what the stack has queued (UDP only: this member has no TCP edges).
    fn flush(&mut self) {
        while let Some(to) = self.stack.poll_transmit(&mut self.out) {
            if to.proto == Proto::Udp {
                let _ = self.socket.send_to(&self.out, to.addr);
            }
        }
    }

    /// Keeps a DHT reply to this member from an opened datagram (`datagram_len` bytes
    /// on the wire): a secure DATA datagram's plaintext is 32 bytes shorter.
    fn note_reply(&mut self, plain: &[u8], datagram_len: usize) {
        let Some(len) = datagram_len.checked_sub(32) else {
            return;
        };
        let Ok(Message::Routed(r)) = wire::parse(&plain[..len]) else {
            return;
        };
        if r.header.kind != dht_wire::REPLY || r.header.dst != self.stack.node.address() {
            return;
        }
        let payload = if r.header.flags.contains(RoutedFlags::SIGNED) {
            &r.payload[..r.payload.len().saturating_sub(SIGNATURE_TRAILER)]
        } else {
            r.payload
        };
        if let Ok(reply) = Reply::parse(payload)
            && reply.status == Status::Ok
            && let Some(cert) = reply.cert
        {
            self.replies.push(Certified {
                sub: reply.sub,
                value: reply.value.to_vec(),
                cert,
                ttl_left_s: reply.ttl_left_s,
            });
        }
    }

    /// Waits for operation `id`.
    fn finish(&mut self, id: RequestId) -> Result<Result<Outcome, DhtError>> {
        if !self.run_until(Instant::now() + OP_TIMEOUT, |m| m.results.contains_key(&id))? {
            bail!("DHT operation {id:?} did not finish");
        }
        Ok(self.results.remove(&id).expect("finished"))
    }

    /// The value of `key`, if it has one.
    fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let id = self.stack.dht_get(Instant::now(), key)?;
        Ok(match self.finish(id)? {
            Ok(Outcome::Values(mut v)) if !v.is_empty() => Some(v.swap_remove(0)),
            _ => None,
        })
    }

    /// Seals a routed message on this member's first direct UDP edge, whatever its
    /// header says (the edge's peer forwards it like any other).
    fn send_on_edge(&mut self, name: &'static str, h: RoutedHeader, payload: &[u8]) {
        let bytes = Message::Routed(Routed { header: h, payload })
            .to_vec()
            .expect("a datagram-sized message");
        let edge = self.stack.node.connections().find_map(|c| match c.edge {
            Edge::Direct(t) if t.proto == Proto::Udp => Some(t),
            _ => None,
        });
        let secure = self.stack.secure.as_mut().expect("secure edges");
        if let Some(t) = edge {
            secure.seal(Instant::now(), t, &bytes);
            *self.sent.entry(name).or_default() += 1;
        }
    }

    /// Attack 1: messages from `victims`' addresses, unsigned and wrongly signed.
    fn impersonate(&mut self, victims: &[Address], keys: &[Vec<u8>]) -> Result<()> {
        let identity = self
            .stack
            .secure
            .as_ref()
            .expect("secure")
            .identity()
            .clone();
        let mut input = Vec::new();
        let wall_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
        for (i, &src) in victims.iter().enumerate() {
            for (j, &dst) in victims.iter().enumerate() {
                if i == j {
                    continue;
                }
                let header = |k: u8| RoutedHeader {
                    ttl: 64,
                    hops: 0,
                    mode: Mode::Exact,
                    flags: RoutedFlags::default(),
                    kind: k,
                    src,
                    dst,
                    via: None,
                };
                let probe = OverlayPayload::Probe(Probe {
                    id: (i * 1000 + j) as u64,
                    echo_request: true,
                    echo_reply: false,
                    request_hops: 0,
                });
                let mut p = vec![0; probe.encoded_len()];
                probe.emit(&mut p).expect("sized");
                self.send_on_edge("unsigned_probe_as_victim", header(kind::PROBE), &p);
                // Signed, but by the insider's key (which does not hash to `src`).
                let mut h = header(kind::PROBE);
                let signed = overlay::sign_payload(&identity, &mut h, &p, &mut input);
                self.send_on_edge("probe_signed_by_insider_as_victim", h, &signed);
                // Signed with random bytes.
                let mut junk = p.clone();
                junk.extend_from_slice(&random32()?);
                junk.extend_from_slice(&[random32()?, random32()?].concat());
                self.send_on_edge("probe_with_random_signature_as_victim", h, &junk);
                self.run_for(Duration::from_millis(20))?;
            }
            // DHT requests in the victim's name, at each lease's sub-keys.
            self.dht_requests_as(src, keys, wall_ms)?;
            self.run_for(Duration::from_millis(50))?;
        }
        Ok(())
    }

    /// A get and a delete of each of `keys`' sub-keys, routed in `src`'s name.
    fn dht_requests_as(&mut self, src: Address, keys: &[Vec<u8>], wall_ms: u64) -> Result<()> {
        for key in keys {
            for sub in 0..5u8 {
                for (name, op) in [
                    ("dht_get_as_victim", dht_wire::Op::Get),
                    ("dht_delete_as_victim", dht_wire::Op::Delete),
                ] {
                    let req = dht_wire::Request {
                        op,
                        op_id: u64::from_le_bytes(random32()?[..8].try_into()?),
                        sub,
                        key,
                        proof: &[],
                        new_owner: &[],
                        value: &[],
                        ttl_s: 0,
                        serial: wall_ms,
                    };
                    let mut b = vec![0; dht_wire::MAX_MESSAGE];
                    let n = req.emit(&mut b).expect("a small request");
                    b.truncate(n);
                    let h = RoutedHeader {
                        ttl: 64,
                        hops: 0,
                        mode: Mode::Nearest,
                        flags: RoutedFlags::default(),
                        kind: dht_wire::REQUEST,
                        src,
                        dst: dht::sub_key(key, sub),
                        via: None,
                    };
                    self.send_on_edge(name, h, &b);
                }
            }
        }
        Ok(())
    }

    /// Attack 2: writes to the victims' lease keys with the insider's own password.
    fn take_over(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Value>> {
        let mine = self.stack.node.address();
        let password = b"the insider's own password";
        let ttl = Duration::from_secs(600);
        let mut out = Vec::new();
        for key in keys {
            let now = Instant::now();
            let ids = [
                (
                    "delete",
                    self.stack
                        .dht_op(now, |d, n| d.delete(now, n, key, password))?,
                ),
                (
                    "recreate",
                    self.stack.dht_op(now, |d, n| {
                        d.recreate(now, n, key, password, password, mine.as_bytes(), ttl)
                    })?,
                ),
                (
                    "create",
                    self.stack
                        .dht_create(now, key, password, mine.as_bytes(), ttl)?,
                ),
            ];
            for (op, id) in ids {
                let r = self.finish(id)?;
                *self.sent.entry("dht_write_with_own_password").or_default() += 1;
                out.push(json!({
                    "key": String::from_utf8_lossy(key),
                    "op": op,
                    "result": match r {
                        Ok(o) => format!("{o:?}"),
                        Err(e) => format!("{e:?}"),
                    },
                }));
            }
        }
        Ok(out)
    }

    /// The certificate of a record of the insider's own (created with its own password
    /// under another key), as a replica answered it.
    fn own_certificate(&mut self) -> Result<Option<Cert>> {
        let key = format!("insider/{}", self.stack.node.address()).into_bytes();
        let now = Instant::now();
        let id = self
            .stack
            .dht_create(now, &key, b"own", b"mine", Duration::from_secs(600))?;
        self.finish(id)?
            .context("creating the insider's own record")?;
        self.replies.clear();
        let _ = self.read(&key)?;
        Ok(self.replies.drain(..).next().map(|r| r.cert))
    }

    /// Attack 3: REPLICATE copies of the leases' records that their certificates do not
    /// certify, sent to both replicas of each sub-key.
    fn forge_copies(
        &mut self,
        keys: &[Vec<u8>],
        certs: &[Vec<Certified>],
        own: Option<Cert>,
    ) -> Result<()> {
        let mine = self.stack.node.address();
        for (key, copies) in keys.iter().zip(certs) {
            for c in copies {
                let sub_key = dht::sub_key(key, c.sub);
                let base = RecordRepr {
                    sub_key,
                    sub: c.sub,
                    key,
                    rev: 1 << 40,
                    tombstone: false,
                    creator: mine,
                    cert: c.cert,
                    ttl_left_ms: c.ttl_left_s.saturating_mul(1000),
                    value: mine.as_bytes(),
                };
                let mut forged = vec![("replica_with_altered_value", base)];
                forged.push((
                    "replica_as_tombstone",
                    RecordRepr {
                        tombstone: true,
                        value: &[],
                        ..base
                    },
                ));
                if let Some(own_cert) = own {
                    forged.push((
                        "replica_with_insiders_certificate",
                        RecordRepr {
                            cert: own_cert,
                            ..base
                        },
                    ));
                }
                for (name, rec) in forged {
                    let mut b = vec![0; dht_wire::MAX_MESSAGE];
                    let n = rec.emit(&mut b).expect("a record of bounded size");
                    b.truncate(n);
                    let now = Instant::now();
                    self.stack.dht_op(now, |_, node| {
                        node.send_routed(now, sub_key, Mode::Pair, dht_wire::REPLICATE, &b)
                    })?;
                    *self.sent.entry(name).or_default() += 1;
                }
                self.run_for(Duration::from_millis(20))?;
            }
        }
        Ok(())
    }
}

/// 32 bytes from the operating system.
fn random32() -> Result<[u8; 32]> {
    let b = wow_harness::nodes::random_bytes(32)?;
    Ok(<[u8; 32]>::try_from(b.as_slice())?)
}
