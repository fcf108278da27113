//! A hostile peer for robustness tests: sends crafted and mutated overlay datagrams, many
//! with source addresses spoofed from real nodes, and holds half-open TCP streams, at
//! nodes of a testbed. It runs inside a testbed namespace (started by the tests with the
//! host's own command runner) and stops by itself after the datagrams it was told to
//! send. Every destination is a node of the run's own testbed.
//!
//!   wow-hostile --target HEX@IP:PORT ... --datagrams 100000 --tcp-streams 300
//!
//! The attacks (one datagram each, in rotation): random bytes; a well-formed message of
//! every kind, mutated; a tunnel that names its own sender as relay; a broadcast claiming
//! the whole ring; unclaimed application payloads; connect-to-me requests pointing at
//! victims; link requests claiming another node's address with a new token; link
//! requests for a random address spoofed from a real node; routed messages with hop
//! limit 255 and random sources; forged unreachable notices; stray link responses with a
//! forged observed address. It prints what it sent as one JSON object.
//!
//! With `--insider` it is instead a member of a secure overlay that attacks the other
//! members from inside (see `insider.rs`):
//!
//!   wow-hostile --insider --overlay-secret FILE --listen IP:PORT --bootstrap IP:PORT \
//!       --victim HEX ... --namespace ID --lease-ip IP ...

mod insider;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use ipop_core::wire::{
    self, AddressList, Broadcast, Close, CloseReason, CtmRequest, LinkRequest, LinkResponse,
    LinkStatus, Message, Mode, OverlayPayload, Roles, Routed, RoutedFlags, RoutedHeader,
    TransportList, kind,
};
use ipop_core::{Address, TransportAddr};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, sockopt};
use rand::{Rng, SeedableRng};

#[derive(Debug, Parser)]
#[command(about = "Sends hostile overlay traffic at a testbed's nodes (robustness tests)")]
struct Args {
    /// A node to attack and impersonate: its P2P address and UDP transport
    /// (`HEX@IP:PORT`). Give every node of the overlay.
    #[arg(long = "target", required_unless_present = "insider")]
    targets: Vec<String>,
    /// How many datagrams to send in all.
    #[arg(long, default_value_t = 100_000)]
    datagrams: u64,
    /// Half-open TCP streams to hold to the first target's port during the run.
    #[arg(long, default_value_t = 0)]
    tcp_streams: usize,
    /// Only the first target receives datagrams (the others are impersonated).
    #[arg(long)]
    one_victim: bool,
    /// The overlay's name (its id is derived from it).
    #[arg(long, default_value = "wow")]
    overlay: String,
    /// Seed of the attack sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Attack as a member of a secure overlay instead (see the `insider` options).
    #[arg(long)]
    insider: bool,
    #[command(flatten)]
    inside: insider::Options,
}

#[derive(Debug, Clone, Copy)]
struct Target {
    address: Address,
    udp: SocketAddrV4,
}

fn parse_target(s: &str) -> Result<Target> {
    let (hex, addr) = s
        .split_once('@')
        .with_context(|| format!("{s}: expected HEX@IP:PORT"))?;
    let address: Address = hex.parse().map_err(|e| anyhow::anyhow!("{hex}: {e}"))?;
    let udp: SocketAddrV4 = addr
        .parse()
        .with_context(|| format!("{addr}: not IP:PORT"))?;
    Ok(Target { address, udp })
}

/// A UDP socket bound to `addr`, which may belong to another host (IP_TRANSPARENT):
/// its datagrams carry that source.
fn spoofing_socket(addr: SocketAddrV4) -> Result<UdpSocket> {
    let fd: OwnedFd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::IpTransparent, &true)
        .context("IP_TRANSPARENT (needs CAP_NET_ADMIN)")?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(addr),
    )
    .with_context(|| format!("bind {addr}"))?;
    Ok(UdpSocket::from(fd))
}

struct Attacker {
    rng: rand::rngs::Xoshiro256PlusPlus,
    targets: Vec<Target>,
    overlay: u64,
    sent: BTreeMap<&'static str, u64>,
}

impl Attacker {
    fn pick(&mut self) -> Target {
        let n = self.targets.len() as u64;
        self.targets[(self.rng.next_u64() % n) as usize]
    }

    fn random_address(&mut self) -> Address {
        Address::random(&mut self.rng)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.rng.next_u64() % (max as u64 + 1)) as usize;
        let mut b = vec![0u8; len];
        self.rng.fill_bytes(&mut b);
        b
    }

    fn routed(h: RoutedHeader, payload: &OverlayPayload<'_>) -> Vec<u8> {
        let mut p = vec![0u8; payload.encoded_len()];
        payload.emit(&mut p).expect("buffer sized by encoded_len");
        Self::routed_bytes(h, &p)
    }

    fn routed_bytes(header: RoutedHeader, payload: &[u8]) -> Vec<u8> {
        Message::Routed(Routed { header, payload })
            .to_vec()
            .expect("a datagram-sized message")
    }

    fn header(src: Address, dst: Address, kind: u8) -> RoutedHeader {
        RoutedHeader {
            ttl: 64,
            hops: 1,
            mode: Mode::Exact,
            flags: RoutedFlags::default(),
            kind,
            src,
            dst,
            via: None,
        }
    }

    fn link_request(&mut self, src: Address, cookie: Option<u64>) -> Vec<u8> {
        Message::LinkRequest(LinkRequest {
            token: self.rng.next_u64(),
            overlay: self.overlay,
            src,
            dst: None,
            roles: Roles::NEAR,
            your_addr: None,
            transports: TransportList::EMPTY,
            cookie,
        })
        .to_vec()
        .expect("a small message")
    }

    /// One attack datagram for `victim`: (name, bytes, impersonated node or None).
    fn craft(&mut self, i: u64, victim: Target) -> (&'static str, Vec<u8>, Option<Target>) {
        let me = victim.address;
        match i % 11 {
            0 => ("garbage", self.bytes(1400), None),
            1 => {
                let d = self.mutated(me);
                let as_peer = self.pick();
                ("mutated", d, Some(as_peer))
            }
            2 => {
                let p = self.pick();
                let inner = self.link_request(p.address, None);
                let mut h = Self::header(p.address, me, kind::TUNNEL);
                h.flags = RoutedFlags::PAIR_COPY;
                h.via = Some(p.address);
                let d = Self::routed(h, &OverlayPayload::Tunnel(&inner));
                ("tunnel_via_itself", d, Some(p))
            }
            3 => {
                let origin = self.random_address();
                let b = OverlayPayload::Broadcast(Broadcast {
                    kind: kind::FIRST_APP + 8,
                    origin,
                    end: me,
                    payload: b"whole ring",
                });
                let d = Self::routed(Self::header(origin, me, kind::BROADCAST), &b);
                ("broadcast_whole_ring", d, None)
            }
            4 => {
                let src = self.random_address();
                let payload = self.bytes(1200);
                let d = Self::routed_bytes(Self::header(src, me, 200), &payload);
                ("unclaimed_payload", d, None)
            }
            5 => ("ctm_amplification", self.ctm_amplification(me), None),
            6 => {
                let p = self.pick();
                ("hijack_claim", self.link_request(p.address, None), None)
            }
            7 => {
                let mut next = *me.as_bytes();
                next[19] = next[19].wrapping_add(1);
                let p = self.pick();
                let cookie = Some(self.rng.next_u64());
                let d = self.link_request(Address::from_bytes(next), cookie);
                ("spoofed_neighbour_claim", d, Some(p))
            }
            8 => {
                let mut h = Self::header(self.random_address(), self.random_address(), 99);
                h.ttl = 255;
                h.hops = 0;
                ("ttl_255", Self::routed_bytes(h, b"far"), None)
            }
            9 => {
                let owner = self.pick().address;
                let src = self.random_address();
                let n = OverlayPayload::Unreachable(owner);
                let d = Self::routed(Self::header(src, me, kind::UNREACHABLE), &n);
                ("forged_unreachable", d, None)
            }
            _ => ("forged_observed", self.forged_observed(), None),
        }
    }

    /// A valid message for `me` with up to four flipped bits, cut short one time in four.
    fn mutated(&mut self, me: Address) -> Vec<u8> {
        let mut d = self.valid_message(me);
        for _ in 0..=(self.rng.next_u64() % 4) {
            if !d.is_empty() {
                let at = (self.rng.next_u64() % d.len() as u64) as usize;
                d[at] ^= 1 << (self.rng.next_u64() % 8);
            }
        }
        if self.rng.next_u64() % 4 == 0 {
            let keep = (self.rng.next_u64() % (d.len() as u64 + 1)) as usize;
            d.truncate(keep);
        }
        d
    }

    /// A connect-to-me request routed to `me` that names eight other nodes of the testbed,
    /// at ports nothing listens on, as its transports: the victims of the amplification.
    fn ctm_amplification(&mut self, me: Address) -> Vec<u8> {
        let victims: Vec<TransportAddr> = (0..8)
            .map(|k| {
                let v = self.pick().udp;
                let port = 9 + k;
                TransportAddr::udp(SocketAddr::V4(SocketAddrV4::new(*v.ip(), port)))
            })
            .collect();
        let req = OverlayPayload::CtmRequest(CtmRequest {
            token: self.rng.next_u64(),
            roles: Roles::NEAR,
            reply_via: None,
            transports: TransportList::Slice(&victims),
            relays: AddressList::EMPTY,
        });
        let src = self.random_address();
        Self::routed(Self::header(src, me, kind::CTM_REQUEST), &req)
    }

    /// An unsolicited link response from a random address, claiming another node's
    /// transport as the one observed.
    fn forged_observed(&mut self) -> Vec<u8> {
        let observed = TransportAddr::udp(SocketAddr::V4(self.pick().udp));
        Message::LinkResponse(LinkResponse {
            token: self.rng.next_u64(),
            status: LinkStatus::Ok,
            src: self.random_address(),
            observed: Some(observed),
            roles: Roles::NEAR,
        })
        .to_vec()
        .expect("a small message")
    }

    /// A well-formed message of a random kind (before mutation).
    fn valid_message(&mut self, me: Address) -> Vec<u8> {
        let src = self.random_address();
        match self.rng.next_u64() % 4 {
            0 => self.link_request(src, None),
            1 => Message::Ping(wire::Status {
                nonce: self.rng.next_u64(),
                roles: Roles::NEAR,
                left: AddressList::Slice(&[src]),
                right: AddressList::Slice(&[me]),
            })
            .to_vec()
            .expect("a small message"),
            2 => Message::Close(Close {
                reason: CloseReason::Unneeded,
                left: AddressList::EMPTY,
                right: AddressList::EMPTY,
            })
            .to_vec()
            .expect("a small message"),
            _ => {
                let payload = self.bytes(600);
                Self::routed_bytes(Self::header(src, me, kind::FIRST_APP + 8), &payload)
            }
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.insider {
        return insider::run(&args.inside, &args.overlay);
    }
    let targets = args
        .targets
        .iter()
        .map(|t| parse_target(t))
        .collect::<Result<Vec<_>>>()?;
    let own = UdpSocket::bind("0.0.0.0:0")?;
    // One socket per impersonated node, bound to its own address and port.
    let spoofed = targets
        .iter()
        .map(|t| spoofing_socket(t.udp))
        .collect::<Result<Vec<_>>>()?;
    let mut streams = Vec::new();
    if let Some(first) = targets.first() {
        for _ in 0..args.tcp_streams {
            match TcpStream::connect_timeout(&SocketAddr::V4(first.udp), Duration::from_secs(2)) {
                Ok(mut s) => {
                    // A length prefix announcing a full frame, then nothing.
                    let _ = s.write_all(&[0xff, 0xff]);
                    streams.push(s);
                }
                Err(_) => break,
            }
        }
    }
    let mut attacker = Attacker {
        rng: rand::rngs::Xoshiro256PlusPlus::seed_from_u64(args.seed),
        targets: targets.clone(),
        overlay: ipop_core::overlay::Config::overlay_id_of(&args.overlay),
        sent: BTreeMap::new(),
    };
    let mut errors = 0u64;
    for i in 0..args.datagrams {
        let victim = if args.one_victim {
            targets[0]
        } else {
            attacker.pick()
        };
        let (name, bytes, as_peer) = attacker.craft(i, victim);
        let socket = match as_peer {
            Some(p) if p.udp != victim.udp => {
                let at = targets.iter().position(|t| t.udp == p.udp).unwrap_or(0);
                &spoofed[at]
            }
            _ => &own,
        };
        match socket.send_to(&bytes, victim.udp) {
            Ok(_) => *attacker.sent.entry(name).or_default() += 1,
            Err(_) => errors += 1,
        }
        if i % 256 == 255 {
            // Paced a little, so that the victims' sockets, not ours, see the load.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let report = serde_json::json!({
        "sent": attacker.sent,
        "send_errors": errors,
        "tcp_streams_held": streams.len(),
    });
    println!("{report}");
    Ok(())
}
