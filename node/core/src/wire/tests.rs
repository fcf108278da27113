//! Wire-format tests: every message round-trips, and no input makes a parser panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::address::Address;
use crate::transport::{Proto, TransportAddr};

fn arb_address() -> impl Strategy<Value = Address> {
    any::<[u8; 20]>().prop_map(Address::from_bytes)
}

fn arb_transport() -> impl Strategy<Value = TransportAddr> {
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ];
    (any::<bool>(), ip, any::<u16>()).prop_map(|(udp, ip, port)| TransportAddr {
        proto: if udp { Proto::Udp } else { Proto::Tcp },
        addr: SocketAddr::new(ip, port),
    })
}

fn arb_roles() -> impl Strategy<Value = Roles> {
    (0u8..32).prop_map(Roles::from_bits)
}

/// Owned data from which a borrowed `Message` is built.
#[derive(Debug, Clone)]
enum Owned {
    LinkRequest {
        token: u64,
        overlay: u64,
        src: Address,
        dst: Option<Address>,
        roles: Roles,
        your_addr: Option<TransportAddr>,
        transports: Vec<TransportAddr>,
        cookie: Option<u64>,
    },
    LinkResponse(LinkResponse),
    Status {
        pong: bool,
        nonce: u64,
        roles: Roles,
        left: Vec<Address>,
        right: Vec<Address>,
    },
    Close {
        reason: CloseReason,
        left: Vec<Address>,
        right: Vec<Address>,
    },
    Routed {
        header: RoutedHeader,
        payload: Vec<u8>,
    },
    MtuProbe(MtuProbe),
    MtuAck(u64),
}

impl Owned {
    fn message(&self) -> Message<'_> {
        match self {
            Owned::LinkRequest {
                token,
                overlay,
                src,
                dst,
                roles,
                your_addr,
                transports,
                cookie,
            } => Message::LinkRequest(LinkRequest {
                token: *token,
                overlay: *overlay,
                src: *src,
                dst: *dst,
                roles: *roles,
                your_addr: *your_addr,
                transports: TransportList::Slice(transports),
                cookie: *cookie,
            }),
            Owned::LinkResponse(r) => Message::LinkResponse(*r),
            Owned::Status {
                pong,
                nonce,
                roles,
                left,
                right,
            } => {
                let s = Status {
                    nonce: *nonce,
                    roles: *roles,
                    left: AddressList::Slice(left),
                    right: AddressList::Slice(right),
                };
                if *pong {
                    Message::Pong(s)
                } else {
                    Message::Ping(s)
                }
            }
            Owned::Close {
                reason,
                left,
                right,
            } => Message::Close(Close {
                reason: *reason,
                left: AddressList::Slice(left),
                right: AddressList::Slice(right),
            }),
            Owned::Routed { header, payload } => Message::Routed(Routed {
                header: *header,
                payload,
            }),
            Owned::MtuProbe(p) => Message::MtuProbe(*p),
            Owned::MtuAck(nonce) => Message::MtuAck(*nonce),
        }
    }
}

fn arb_status_code() -> impl Strategy<Value = LinkStatus> {
    prop_oneof![
        Just(LinkStatus::Ok),
        Just(LinkStatus::ConnectToSelf),
        Just(LinkStatus::AlreadyConnected),
        Just(LinkStatus::InProgress),
        Just(LinkStatus::OverlayMismatch),
        Just(LinkStatus::WrongTarget),
        any::<u64>().prop_map(LinkStatus::Cookie),
    ]
}

fn arb_header() -> impl Strategy<Value = RoutedHeader> {
    (
        any::<(u8, u8, u8)>(),
        prop_oneof![Just(Mode::Exact), Just(Mode::Nearest), Just(Mode::Pair)],
        arb_address(),
        arb_address(),
        proptest::option::of(arb_address()),
    )
        .prop_map(|((ttl, hops, kind), mode, src, dst, via)| {
            let mut flags = RoutedFlags::default();
            if hops & 1 != 0 {
                flags = flags.with(RoutedFlags::VIA_DONE);
            }
            if ttl & 1 != 0 {
                flags = flags.with(RoutedFlags::PAIR_COPY);
            }
            RoutedHeader {
                ttl,
                hops,
                mode,
                flags,
                kind,
                src,
                dst,
                via,
            }
        })
}

fn arb_owned() -> impl Strategy<Value = Owned> {
    let addrs = || proptest::collection::vec(arb_address(), 0..=MAX_NEIGHBORS);
    prop_oneof![
        (
            any::<(u64, u64)>(),
            arb_address(),
            proptest::option::of(arb_address()),
            arb_roles(),
            proptest::option::of(arb_transport()),
            proptest::collection::vec(arb_transport(), 0..=MAX_TRANSPORTS),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(
                |((token, overlay), src, dst, roles, your_addr, transports, cookie)| {
                    Owned::LinkRequest {
                        token,
                        overlay,
                        src,
                        dst,
                        roles,
                        your_addr,
                        transports,
                        cookie,
                    }
                }
            ),
        (
            any::<u64>(),
            arb_status_code(),
            arb_address(),
            proptest::option::of(arb_transport()),
            arb_roles()
        )
            .prop_map(|(token, status, src, observed, roles)| Owned::LinkResponse(
                LinkResponse {
                    token,
                    status,
                    src,
                    observed,
                    roles,
                }
            )),
        (any::<(bool, u64)>(), arb_roles(), addrs(), addrs()).prop_map(
            |((pong, nonce), roles, left, right)| Owned::Status {
                pong,
                nonce,
                roles,
                left,
                right,
            }
        ),
        (
            prop_oneof![
                Just(CloseReason::Leaving),
                Just(CloseReason::Unneeded),
                Just(CloseReason::Replaced)
            ],
            addrs(),
            addrs()
        )
            .prop_map(|(reason, left, right)| Owned::Close {
                reason,
                left,
                right
            }),
        (arb_header(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(header, payload)| Owned::Routed { header, payload }),
        (any::<u64>(), 0usize..1500)
            .prop_map(|(nonce, padding)| Owned::MtuProbe(MtuProbe { nonce, padding })),
        any::<u64>().prop_map(Owned::MtuAck),
    ]
}

type PayloadParts = (
    u8,
    u64,
    Roles,
    Option<Address>,
    Vec<TransportAddr>,
    Vec<Address>,
);

fn arb_payload_owned() -> impl Strategy<Value = PayloadParts> {
    (
        1u8..=6,
        any::<u64>(),
        arb_roles(),
        proptest::option::of(arb_address()),
        proptest::collection::vec(arb_transport(), 0..=MAX_TRANSPORTS),
        proptest::collection::vec(arb_address(), 0..=MAX_NEIGHBORS),
    )
}

proptest! {
    #[test]
    fn every_message_round_trips(owned in arb_owned()) {
        let msg = owned.message();
        let bytes = msg.to_vec().unwrap();
        prop_assert_eq!(bytes.len(), msg.buffer_len());
        prop_assert_eq!(parse(&bytes).unwrap(), msg);
    }

    #[test]
    fn every_overlay_payload_round_trips((k, token, roles, via, ts, relays) in arb_payload_owned()) {
        let bytes_for_tunnel = token.to_be_bytes();
        let p = match k {
            1 => OverlayPayload::CtmRequest(CtmRequest {
                token, roles, reply_via: via, transports: TransportList::Slice(&ts),
                relays: AddressList::Slice(&relays),
            }),
            2 => OverlayPayload::CtmReply(CtmReply { token, roles, transports: TransportList::Slice(&ts),
                relays: AddressList::Slice(&relays) }),
            3 => OverlayPayload::Probe(Probe { id: token, echo_request: via.is_some(), echo_reply: ts.is_empty(), request_hops: roles.bits() }),
            4 => OverlayPayload::Tunnel(&bytes_for_tunnel),
            6 => OverlayPayload::Unreachable(via.unwrap_or_default()),
            _ => OverlayPayload::Broadcast(Broadcast {
                kind: roles.bits(), origin: via.unwrap_or_default(),
                end: relays.first().copied().unwrap_or_default(), payload: &bytes_for_tunnel,
            }),
        };
        let mut buf = vec![0u8; p.encoded_len()];
        let n = p.emit(&mut buf).unwrap();
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(OverlayPayload::parse(p.kind(), &buf).unwrap(), p);
    }

    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&bytes);
        for k in 0..8 {
            let _ = OverlayPayload::parse(k, &bytes);
        }
    }

    #[test]
    fn valid_prefix_with_garbage_never_panics(owned in arb_owned(), cut in 0usize..200, junk in any::<u8>()) {
        let mut bytes = owned.message().to_vec().unwrap();
        let cut = cut.min(bytes.len());
        bytes.truncate(cut);
        let _ = parse(&bytes);
        bytes.push(junk);
        let _ = parse(&bytes);
    }
}

#[test]
fn rejects_foreign_and_future_datagrams() {
    assert_eq!(parse(b""), Err(Error::Truncated));
    assert_eq!(parse(b"GET / HTTP/1.1"), Err(Error::BadMagic));
    assert_eq!(
        parse(&[b'W', b'O', 9, 1]),
        Err(Error::UnsupportedVersion(9))
    );
    assert_eq!(
        parse(&[b'W', b'O', VERSION, 200]),
        Err(Error::UnknownKind(200))
    );
}

#[test]
fn rejects_trailing_bytes_and_long_lists() {
    let ping = Message::Ping(Status {
        nonce: 1,
        roles: Roles::NEAR,
        left: AddressList::EMPTY,
        right: AddressList::EMPTY,
    });
    let mut bytes = ping.to_vec().unwrap();
    bytes.push(0);
    assert_eq!(parse(&bytes), Err(Error::TrailingBytes));

    let too_many = vec![Address::default(); MAX_NEIGHBORS + 1];
    let long = Message::Ping(Status {
        nonce: 1,
        roles: Roles::NEAR,
        left: AddressList::Slice(&too_many),
        right: AddressList::EMPTY,
    });
    assert_eq!(long.to_vec(), Err(Error::TooLong));
    // A length byte that claims more entries than allowed is refused before reading them.
    let mut forged = ping.to_vec().unwrap();
    forged[HEADER_LEN + 9] = 200;
    assert_eq!(parse(&forged), Err(Error::TooLong));
}

#[test]
fn hop_count_and_flags_sit_at_fixed_offsets() {
    let msg = Message::Routed(Routed {
        header: RoutedHeader {
            ttl: 64,
            hops: 3,
            mode: Mode::Pair,
            flags: RoutedFlags::default(),
            kind: 7,
            src: Address::default(),
            dst: Address::default(),
            via: None,
        },
        payload: b"x",
    });
    let mut bytes = msg.to_vec().unwrap();
    bytes[ROUTED_HOPS_OFFSET] = 4;
    bytes[ROUTED_FLAGS_OFFSET] |= RoutedFlags::PAIR_COPY.bits();
    let Message::Routed(r) = parse(&bytes).unwrap() else {
        panic!("not routed")
    };
    assert_eq!(r.header.hops, 4);
    assert!(r.header.flags.contains(RoutedFlags::PAIR_COPY));
}
