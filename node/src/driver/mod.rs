//! The driver: one tokio task that owns the protocol [`Stack`] and moves bytes and timers
//! between it and the sockets. It makes no protocol decision of its own.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use ipop_api::control::{DhtDone, DhtValues, NamespaceCreated, NamespaceRecord, ProbeReply};
use ipop_core::dht::{self, Outcome, RequestId};
use ipop_core::ipop::{Keeper, KeeperEvent};
use ipop_core::overlay::{Event, Handled};
use ipop_core::{Address, Proto, Stack, TransportAddr};
use rand::TryRng;
use serde_json::Value;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::control::{self, ControlStats, Pending};
use crate::faults::{IoFaults, Op};
use crate::status::DriverFacts;
use crate::transport::reachable_at;
use crate::transport::tcp::{Limits, TcpEdges, TcpEvent};
use crate::transport::udp::{RecvBufs, SendBatch, UdpEdge};
use crate::vnet::{self, Vnet};
use requests::{PROBE_TIMEOUT, Waiter};

mod requests;

/// Batches of UDP datagrams handled per wake-up before other work gets a turn.
const UDP_BATCHES_PER_WAKE: usize = 8;
/// Frames (datagrams, or TAP frames cut from super-frames) handled per wake-up at most
/// before what they produced is sent: bounds the queues between the stack and the
/// sockets (the secure layer drops past ~5 000 waiting datagrams) and the memory a burst
/// leaves behind.
const FRAMES_PER_WAKE: usize = 1024;
/// The pause after a failed wait for the UDP socket or the TAP, so that a lasting
/// failure does not spin the loop.
const WAIT_ERROR_PAUSE: Duration = Duration::from_millis(10);

struct Driver {
    config: Config,
    stack: Stack,
    udp: Option<UdpEdge>,
    bufs: RecvBufs,
    /// Datagrams gathered for one UDP send.
    batch: SendBatch,
    tcp: Option<TcpEdges>,
    tcp_events: mpsc::Receiver<TcpEvent>,
    control: mpsc::Receiver<Pending>,
    control_stats: std::sync::Arc<ControlStats>,
    out: Vec<u8>,
    facts: DriverFacts,
    faults: IoFaults,
    waiting: HashMap<RequestId, Waiter>,
    vnet: Option<Vnet>,
    tap_buf: Vec<u8>,
    /// Creates the namespaces asked for on the control socket and keeps them alive.
    keeper: Keeper,
    /// Who waits for each creation under way, by the keeper's ticket.
    creating: HashMap<u64, oneshot::Sender<Value>>,
    probes: HashMap<u64, (Instant, oneshot::Sender<Value>)>,
    next_probe: u64,
}

/// What makes a node's edges secure: the overlay's admission secrets and the node's key
/// (its P2P address is the key's).
#[derive(Debug)]
pub struct Security {
    /// The overlay's admission secrets (the file `config.overlay_secret` holds them, and
    /// `ipop-node secret reload` reads it again).
    pub secrets: crate::identity::Secrets,
    /// The node's key pair.
    pub identity: ipop_core::secure::Identity,
}

/// Runs a node with `config` and P2P address `address` until it leaves (SIGTERM,
/// SIGINT, or `ipop-node leave`); with `security`, every edge is a Noise session.
pub async fn run(config: Config, address: Address, security: Option<Security>) -> Result<()> {
    let now = Instant::now();
    let mut stack = new_stack(&config, address, security, now)?;
    let udp = match config.udp_listen.0 {
        Some(a) => Some(UdpEdge::bind(a).with_context(|| format!("cannot bind UDP {a}"))?),
        None => None,
    };
    let (tcp_tx, tcp_events) = mpsc::channel(1024);
    let tcp = match config.tcp_listen.0 {
        Some(a) => Some(
            TcpEdges::bind(a, Limits::default(), tcp_tx)
                .await
                .with_context(|| format!("cannot bind TCP {a}"))?,
        ),
        None => None,
    };
    add_local_transports(&mut stack, &config, udp.as_ref(), tcp.as_ref())?;
    let vnet = Vnet::start(&config, &mut stack, now)?;
    let (control, control_stats) = control::serve(&config.control_socket)?;
    let bootstrap: Vec<TransportAddr> = config.bootstrap.iter().map(|u| u.0).collect();
    info!(
        address = %address,
        overlay = %config.overlay,
        local = ?stack.node.local_transports().iter().map(ToString::to_string).collect::<Vec<_>>(),
        bootstrap = ?bootstrap.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "starting"
    );
    stack.node.join(now, &bootstrap);
    let mut driver = Driver {
        config,
        stack,
        udp,
        bufs: RecvBufs::default(),
        batch: SendBatch::default(),
        tcp,
        tcp_events,
        control,
        control_stats,
        out: Vec::new(),
        facts: DriverFacts::new(now),
        faults: IoFaults::default(),
        waiting: HashMap::new(),
        vnet,
        tap_buf: vec![0u8; vnet::TAP_BUF],
        keeper: Keeper::new(vnet::os_seed()?, now),
        creating: HashMap::new(),
        probes: HashMap::new(),
        next_probe: 1,
    };
    let result = driver.run().await;
    let _ = std::fs::remove_file(&driver.config.control_socket);
    result
}

/// The protocol stack of a node with `address`, seeded from the operating system; its
/// edges secure with `security`.
fn new_stack(
    config: &Config,
    address: Address,
    security: Option<Security>,
    now: Instant,
) -> Result<Stack> {
    let mut seed = [0u8; 8];
    rand::rngs::SysRng
        .try_fill_bytes(&mut seed)
        .context("no operating-system randomness")?;
    let mut stack = Stack::new(
        config.overlay_config(),
        config.dht_config(),
        address,
        u64::from_le_bytes(seed),
        now,
        dht::WallClock::new(
            now,
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        ),
    );
    if let Some(sec) = security {
        let mut secure = ipop_core::secure::Config::new(sec.secrets.preferred);
        secure.accept = sec.secrets.also;
        stack.enable_secure(
            secure,
            sec.identity,
            u64::from_le_bytes(seed).rotate_left(29),
        );
    }
    Ok(stack)
}

/// Tells the stack where the node can be reached: the bound sockets' addresses and the
/// configured `advertise` ones.
fn add_local_transports(
    stack: &mut Stack,
    config: &Config,
    udp: Option<&UdpEdge>,
    tcp: Option<&TcpEdges>,
) -> Result<()> {
    if let Some(u) = udp {
        for a in reachable_at(u.local_addr()?) {
            stack.node.add_local_transport(TransportAddr::udp(a));
        }
    }
    if let Some(t) = tcp {
        for a in reachable_at(t.local_addr()) {
            stack.node.add_local_transport(TransportAddr::tcp(a));
        }
    }
    for a in &config.advertise {
        stack.node.add_local_transport(a.0);
    }
    Ok(())
}

/// Sends a datagram over the right transport.
fn send_to(udp: &Option<UdpEdge>, tcp: &mut Option<TcpEdges>, dst: TransportAddr, data: &[u8]) {
    match (dst.proto, udp, tcp) {
        (Proto::Udp, Some(u), _) => u.send(dst.addr, data),
        (Proto::Tcp, _, Some(t)) => t.send(dst.addr, data),
        _ => debug!(%dst, "no socket for this transport; datagram dropped"),
    }
}

async fn tap_readable(vnet: &Option<Vnet>) -> std::io::Result<()> {
    match vnet {
        Some(v) => v.tap.readable().await,
        None => std::future::pending().await,
    }
}

async fn readable(udp: &Option<UdpEdge>) -> std::io::Result<()> {
    match udp {
        Some(u) => u.readable().await,
        None => std::future::pending().await,
    }
}

impl Driver {
    async fn run(&mut self) -> Result<()> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            self.flush()?;
            self.flush_tap()?;
            let Some(deadline) = self.stack.poll_timeout() else {
                break; // the node left
            };
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                r = readable(&self.udp) => match r {
                    Ok(()) => self.on_udp(),
                    Err(e) => self.wait_failed(Op::UdpRecv, &e).await?,
                },
                r = tap_readable(&self.vnet) => match r {
                    Ok(()) => self.on_tap()?,
                    Err(e) => self.wait_failed(Op::TapRecv, &e).await?,
                },
                Some(ev) = self.tcp_events.recv() => self.on_tcp(ev),
                Some(p) = self.control.recv() => self.on_control(p),
                () = sleep => self.stack.handle_timeout(Instant::now()),
                _ = term.recv() => self.leave("SIGTERM"),
                _ = int.recv() => self.leave("SIGINT"),
            }
        }
        // Let the Close messages of the graceful leave reach the wire.
        self.flush()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        info!("left the overlay");
        Ok(())
    }

    /// Counts a failed wait and pauses briefly; an error only if the node cannot go on.
    async fn wait_failed(&mut self, op: Op, e: &std::io::Error) -> Result<()> {
        self.faults.handle(op, e)?;
        tokio::time::sleep(WAIT_ERROR_PAUSE).await;
        Ok(())
    }

    fn leave(&mut self, why: &str) {
        info!("{why}: leaving the overlay");
        if let Some(sec) = &self.stack.secure {
            // For the record of a run: what the secure edges cost to set up.
            let ms: Vec<String> = sec
                .handshake_times()
                .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
                .collect();
            let s = sec.stats();
            info!(
                completed = s.handshakes_completed,
                failed = s.handshakes_failed,
                handshake_ms = %ms.join(","),
                "secure edges"
            );
        }
        self.stack.node.leave();
    }

    fn on_udp(&mut self) {
        let Driver {
            stack,
            udp,
            tcp,
            bufs,
            faults,
            ..
        } = self;
        let Some(u) = udp.as_ref() else {
            return;
        };
        let mut handled = 0;
        for _ in 0..UDP_BATCHES_PER_WAKE {
            let now = Instant::now();
            let res = u.recv_batch(bufs, |from, buf| {
                if let Handled::Forward(t) =
                    stack.handle_datagram(now, TransportAddr::udp(from), buf)
                {
                    send_to(udp, tcp, t.dst, &buf[..t.len]);
                }
            });
            match res {
                Ok(n) if n > 0 => {
                    handled += n;
                    if handled >= FRAMES_PER_WAKE {
                        break;
                    }
                }
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP errors and the like: never fatal for UDP.
                    let _ = faults.handle(Op::UdpRecv, &e);
                    break;
                }
            }
        }
    }

    /// Reads the frames waiting on the TAP (a bounded batch per wake-up).
    fn on_tap(&mut self) -> Result<()> {
        let Some(v) = self.vnet.as_mut() else {
            return Ok(());
        };
        let mut handled = 0;
        while handled < FRAMES_PER_WAKE {
            let stack = &mut self.stack;
            let now = Instant::now();
            match v
                .tap
                .read(&mut self.tap_buf, |f| stack.handle_tap_frame(now, f))
            {
                Ok(n) => {
                    v.frames_in += n as u64;
                    handled += n.max(1);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.faults.handle(Op::TapRecv, &e)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Writes the frames IPOP produced to the TAP, never waiting for room.
    fn flush_tap(&mut self) -> Result<()> {
        let Driver {
            stack,
            vnet,
            tap_buf,
            faults,
            ..
        } = self;
        if let Some(v) = vnet.as_mut() {
            v.frames_out += v.tap.write_frames(stack, tap_buf, faults)?;
        }
        Ok(())
    }

    fn on_tcp(&mut self, ev: TcpEvent) {
        let now = Instant::now();
        let Some(tcp) = self.tcp.as_mut() else {
            return;
        };
        match ev {
            TcpEvent::Accepted { peer, writer } => tcp.accepted(peer, writer),
            TcpEvent::Closed(peer) => {
                tcp.closed(peer);
                self.stack
                    .handle_transport_closed(now, TransportAddr::tcp(peer));
            }
            TcpEvent::Frame { from, mut data } => {
                if let Handled::Forward(t) =
                    self.stack
                        .handle_datagram(now, TransportAddr::tcp(from), &mut data)
                {
                    send_to(&self.udp, &mut self.tcp, t.dst, &data[..t.len]);
                }
            }
        }
    }

    fn refresh_facts(&mut self) {
        self.facts.udp_send_drops = self.udp.as_ref().map_or(0, |u| u.send_drops());
        self.facts.udp_errors = self.faults.udp_errors;
        self.facts.tcp = self.tcp.as_ref().map(TcpEdges::stats).unwrap_or_default();
        self.facts.control_accept_errors = self.control_stats.accept_errors();
        self.facts.control_refused = self.control_stats.refused();
    }

    /// Sends what the stack queued and handles its events and results; an error if the
    /// node cannot go on (its configured static address was refused).
    fn flush(&mut self) -> Result<()> {
        self.send_queued();
        while let Some(event) = self.stack.poll_event() {
            self.on_event(&event);
        }
        while let Some(e) = self.stack.poll_ipop_event() {
            if let Some(v) = self.vnet.as_mut() {
                v.on_event(e)?;
            }
        }
        if let Some(v) = self.vnet.as_mut() {
            v.apply_mtu(&self.stack);
        }
        self.on_dht_results();
        let now = Instant::now();
        self.expire_probes(now);
        self.run_keeper(now);
        Ok(())
    }

    /// Sends the datagrams the stack queued, those over UDP in batches.
    fn send_queued(&mut self) {
        while let Some(dst) = self.stack.poll_transmit(&mut self.out) {
            match (dst.proto, &self.udp) {
                (Proto::Udp, Some(u)) => self.batch.push(u, dst.addr, &self.out),
                _ => send_to(&self.udp, &mut self.tcp, dst, &self.out),
            }
        }
        if let Some(u) = &self.udp {
            self.batch.flush(u);
        }
    }

    /// Logs an overlay event, notes its time in the status facts, closes the TCP edge it
    /// closed and answers the probe it completed.
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::CorrectlyConnected => {
                if self.facts.connected_at.is_none() {
                    self.facts.connected_at = Some(Instant::now());
                }
                info!("correctly connected");
            }
            Event::NotCorrectlyConnected => warn!("no longer correctly connected"),
            Event::Connected { peer, edge } => {
                self.facts.linked_at.get_or_insert_with(Instant::now);
                debug!(peer = %peer.short(), %edge, "connected");
            }
            Event::Disconnected { peer, reason } => {
                debug!(peer = %peer.short(), ?reason, "disconnected");
            }
            Event::LearnedAddress(t) => info!(addr = %t, "a peer sees this node at"),
            Event::EdgeClosed(t) => {
                if let (Proto::Tcp, Some(tcp)) = (t.proto, self.tcp.as_mut()) {
                    tcp.close(t.addr);
                }
            }
            Event::Unreachable(dst) => debug!(dst = %dst.short(), "no route"),
            Event::ProbeReply {
                id,
                hops,
                request_hops,
                ..
            } => {
                if let Some((sent, reply)) = self.probes.remove(id) {
                    let rtt = sent.elapsed().as_secs_f64() * 1e3;
                    let _ = reply.send(control::reply(&ProbeReply {
                        rtt_ms: rtt,
                        hops: u32::from(*request_hops),
                        return_hops: u32::from(*hops),
                    }));
                }
            }
            Event::ProbeReceived { .. } => {}
        }
    }

    /// Hands each finished DHT operation to the keeper if it is the keeper's, else
    /// answers the control request that waits for it.
    fn on_dht_results(&mut self) {
        while let Some((id, result)) = self.stack.poll_dht_result() {
            let (now, keeper) = (Instant::now(), &mut self.keeper);
            if self
                .stack
                .dht_op(now, |d, n| keeper.handle_dht_result(now, n, d, id, &result))
            {
                continue;
            }
            if let Some(waiter) = self.waiting.remove(&id) {
                answer(waiter, result);
            }
        }
    }

    /// Refuses the probes that have had no echo for [`PROBE_TIMEOUT`].
    fn expire_probes(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .probes
            .iter()
            .filter(|(_, (sent, _))| now.saturating_duration_since(*sent) >= PROBE_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((_, reply)) = self.probes.remove(&id) {
                let _ = reply.send(control::refused("no echo within 5 s"));
            }
        }
    }

    /// Lets the keeper renew what it keeps alive, and answers the namespace creations it
    /// finished.
    fn run_keeper(&mut self, now: Instant) {
        let keeper = &mut self.keeper;
        self.stack
            .dht_op(now, |d, n| keeper.handle_timeout(now, n, d));
        while let Some(e) = self.keeper.poll_event() {
            match e {
                KeeperEvent::Created { ticket, id } => {
                    if let Some(reply) = self.creating.remove(&ticket) {
                        if let Some((_, record)) =
                            self.keeper.kept().iter().find(|k| k.0.id() == id)
                        {
                            info!(namespace = %id, range = %record.range, "namespace created");
                        }
                        let _ = reply.send(control::reply(&NamespaceCreated {
                            namespace: id.to_string(),
                        }));
                    }
                }
                KeeperEvent::Failed { ticket, error } => {
                    if let Some(reply) = self.creating.remove(&ticket) {
                        let _ = reply.send(control::refused(format!(
                            "cannot create the namespace: {error}"
                        )));
                    }
                }
            }
        }
    }
}

/// Answers the control request `waiter` with the DHT operation's `result`.
fn answer(waiter: Waiter, result: Result<Outcome, dht::DhtError>) {
    match waiter {
        Waiter::Reply(reply) => {
            let value = match result {
                Ok(Outcome::Values(v)) => control::reply(&DhtValues {
                    values: v
                        .iter()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .collect(),
                }),
                Ok(done) => control::reply(&DhtDone {
                    ok: format!("{done:?}").to_lowercase(),
                }),
                Err(e) => control::refused(e),
            };
            let _ = reply.send(value);
        }
        Waiter::Record(reply, ns) => {
            let value = match result {
                Ok(Outcome::Values(v)) if !v.is_empty() => match ns.open_record(&v[0]) {
                    Ok(r) => control::reply(&NamespaceRecord {
                        record: Some(r.to_string()),
                    }),
                    Err(e) => control::refused(e),
                },
                Ok(_) => control::reply(&NamespaceRecord { record: None }),
                Err(e) => control::refused(e),
            };
            let _ = reply.send(value);
        }
    }
}
