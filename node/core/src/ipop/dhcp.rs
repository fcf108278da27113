//! DHCP messages between the host's unmodified DHCP client and the node's in-node
//! server (dhcproto does the format). Which address to offer is decided elsewhere
//! (leases live in the DHT); this module reads requests and writes answers.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use super::namespace::NamespaceRecord;

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientRequest {
    pub(crate) kind: MessageType,
    pub(crate) xid: u32,
    pub(crate) mac: [u8; 6],
    /// Option 50, or the client address of a renewing client.
    pub(crate) requested: Option<Ipv4Addr>,
    /// The client's current address (renewals, INFORM).
    pub(crate) ciaddr: Ipv4Addr,
    /// The client asked for broadcast replies.
    pub(crate) broadcast: bool,
    /// Option 54: the server the client chose, if any.
    pub(crate) server: Option<Ipv4Addr>,
}

/// Parses a client message; None for anything that is not a well-formed BOOTREQUEST
/// from an Ethernet client.
pub(crate) fn parse(bytes: &[u8]) -> Option<ClientRequest> {
    let bytes = needed_options(bytes)?;
    let msg = Message::decode(&mut Decoder::new(&bytes)).ok()?;
    // dhcproto keeps any hlen but `chaddr()` slices 16 bytes by it: a client hardware
    // address must be an Ethernet one (6..=16 bytes) before it is read.
    if msg.opcode() != Opcode::BootRequest || !(6..=16).contains(&msg.hlen()) {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&msg.chaddr()[..6]);
    let opts = msg.opts();
    let requested = match opts.get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(ip)) => Some(*ip),
        _ => (!msg.ciaddr().is_unspecified()).then(|| msg.ciaddr()),
    };
    let server = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
        _ => None,
    };
    Some(ClientRequest {
        kind: opts.msg_type()?,
        xid: msg.xid(),
        mac,
        requested,
        ciaddr: msg.ciaddr(),
        broadcast: msg.flags().broadcast(),
        server,
    })
}

/// Options of a request the server reads, with the one length each may have.
const NEEDED: [(u8, u8); 3] = [(53, 1), (50, 4), (54, 4)];
/// Length of the fixed BOOTP part plus the magic cookie.
const FIXED: usize = 240;

/// The request with only the options the server reads, each checked for its length, or
/// `None` if the options are cut short. dhcproto trusts the lengths of options it knows
/// (it asserts, or reads past them, e.g. the Bulk Leasequery ones, found by fuzzing), so
/// nothing else reaches its decoder.
fn needed_options(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < FIXED || bytes[236..FIXED] != [99, 130, 83, 99] {
        return None;
    }
    let mut out = bytes[..FIXED].to_vec();
    let mut i = FIXED;
    while i < bytes.len() {
        let code = bytes[i];
        match code {
            0 => i += 1,
            255 => break,
            _ => {
                let len = *bytes.get(i + 1)?;
                let end = i + 2 + usize::from(len);
                let option = bytes.get(i..end)?;
                if NEEDED.contains(&(code, len)) {
                    out.extend_from_slice(option);
                }
                i = end;
            }
        }
    }
    out.push(255);
    Some(out)
}

/// The kind of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Offer(Ipv4Addr),
    Ack(Ipv4Addr),
    /// ACK of an INFORM: options only, no address.
    InformAck,
    Nak,
}

/// Builds the answer to `req` for a namespace. Returns the DHCP payload and the IP it
/// is sent to (the offered address, or broadcast when the client asked for it).
pub(crate) fn answer(
    req: &ClientRequest,
    answer: Answer,
    ns: &NamespaceRecord,
) -> Option<(Vec<u8>, Ipv4Addr)> {
    let server = ns.range.gateway();
    let (kind, yiaddr) = match answer {
        Answer::Offer(ip) => (MessageType::Offer, ip),
        Answer::Ack(ip) => (MessageType::Ack, ip),
        Answer::InformAck => (MessageType::Ack, Ipv4Addr::UNSPECIFIED),
        Answer::Nak => (MessageType::Nak, Ipv4Addr::UNSPECIFIED),
    };
    let ciaddr = if answer == Answer::InformAck {
        req.ciaddr
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let mut msg = Message::new_with_id(
        req.xid,
        ciaddr,
        yiaddr,
        server,
        Ipv4Addr::UNSPECIFIED,
        &req.mac,
    );
    msg.set_opcode(Opcode::BootReply);
    msg.set_flags(if req.broadcast {
        Flags::default().set_broadcast()
    } else {
        Flags::default()
    });
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(server));
    if answer != Answer::Nak {
        opts.insert(DhcpOption::SubnetMask(ns.range.mask()));
        opts.insert(DhcpOption::Router(vec![server]));
        opts.insert(DhcpOption::BroadcastAddr(ns.range.broadcast()));
        opts.insert(DhcpOption::InterfaceMtu(ns.mtu));
        if let Some(dns) = ns.dns {
            opts.insert(DhcpOption::DomainNameServer(vec![dns]));
        }
        if answer != Answer::InformAck {
            let lease = u32::try_from(ns.lease.as_secs()).unwrap_or(u32::MAX);
            opts.insert(DhcpOption::AddressLeaseTime(lease));
            opts.insert(DhcpOption::Renewal(lease / 2));
            opts.insert(DhcpOption::Rebinding(lease / 8 * 7));
        }
    }
    let mut bytes = Vec::with_capacity(300);
    msg.encode(&mut Encoder::new(&mut bytes)).ok()?;
    let to = if req.broadcast || yiaddr.is_unspecified() && ciaddr.is_unspecified() {
        Ipv4Addr::BROADCAST
    } else if !yiaddr.is_unspecified() {
        yiaddr
    } else {
        ciaddr
    };
    Some((bytes, to))
}

/// A client message (for tests of the server side).
#[cfg(test)]
pub(crate) fn client_message(
    kind: MessageType,
    xid: u32,
    mac: [u8; 6],
    requested: Option<Ipv4Addr>,
) -> Vec<u8> {
    let mut msg = Message::new_with_id(
        xid,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    msg.opts_mut().insert(DhcpOption::MessageType(kind));
    if let Some(ip) = requested {
        msg.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
    }
    let mut bytes = Vec::new();
    msg.encode(&mut Encoder::new(&mut bytes))
        .expect("encodable");
    bytes
}

/// Reads the options of an answer (for tests).
#[cfg(test)]
pub(crate) fn decode_answer(bytes: &[u8]) -> Message {
    Message::decode(&mut Decoder::new(bytes)).expect("a DHCP message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ns() -> NamespaceRecord {
        NamespaceRecord {
            name: "t".into(),
            range: "10.128.0.0/12".parse().unwrap(),
            lease: Duration::from_secs(43200),
            mtu: 1380,
            dns: Some(Ipv4Addr::new(10, 128, 0, 53)),
        }
    }

    #[test]
    fn options_with_lengths_dhcproto_does_not_check_are_skipped_not_trusted() {
        let mac = [2, 0, 0, 0, 0, 7];
        let good = client_message(MessageType::Discover, 42, mac, None);
        let end = good.iter().rposition(|&b| b == 255).unwrap();
        // Bulk Leasequery options with lengths their decoders assume (fuzzing found an
        // assertion, and `len - 1` on an empty status code), a requested address with a
        // wrong length, then one cut short.
        for extra in [
            &[91u8, 2, 0, 0][..],
            &[151, 0],
            &[50, 3, 10, 0, 0],
            &[54, 9, 1],
        ] {
            let mut bytes = good[..end].to_vec();
            bytes.extend_from_slice(extra);
            bytes.push(255);
            let parsed = parse(&bytes);
            if extra.len() == 3 {
                assert!(parsed.is_none(), "an option cut short: {extra:?}");
            } else {
                let req = parsed.unwrap_or_else(|| panic!("{extra:?}"));
                assert_eq!((req.kind, req.requested), (MessageType::Discover, None));
            }
        }
    }

    #[test]
    fn offers_carry_the_namespace_options() {
        let mac = [2, 0, 0, 0, 0, 7];
        let req = parse(&client_message(MessageType::Discover, 42, mac, None)).unwrap();
        assert_eq!(
            (req.kind, req.xid, req.mac),
            (MessageType::Discover, 42, mac)
        );
        let ip = Ipv4Addr::new(10, 130, 1, 2);
        let (bytes, to) = answer(&req, Answer::Offer(ip), &ns()).unwrap();
        assert_eq!(to, ip);
        let m = decode_answer(&bytes);
        assert_eq!(
            (m.xid(), m.yiaddr(), m.opcode()),
            (42, ip, Opcode::BootReply)
        );
        let o = m.opts();
        assert_eq!(o.msg_type(), Some(MessageType::Offer));
        assert_eq!(
            o.get(OptionCode::InterfaceMtu),
            Some(&DhcpOption::InterfaceMtu(1380))
        );
        assert_eq!(
            o.get(OptionCode::SubnetMask),
            Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 240, 0, 0)))
        );
        assert_eq!(
            o.get(OptionCode::Router),
            Some(&DhcpOption::Router(vec![Ipv4Addr::new(10, 128, 0, 1)]))
        );
        assert_eq!(
            o.get(OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(43200))
        );
        assert_eq!(
            o.get(OptionCode::Renewal),
            Some(&DhcpOption::Renewal(21600))
        );
        assert_eq!(
            o.get(OptionCode::ServerIdentifier),
            Some(&DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 128, 0, 1)))
        );
        assert_eq!(
            o.get(OptionCode::DomainNameServer),
            Some(&DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
                10, 128, 0, 53
            )]))
        );
        let (nak, to) = answer(&req, Answer::Nak, &ns()).unwrap();
        assert_eq!(to, Ipv4Addr::BROADCAST);
        assert_eq!(
            decode_answer(&nak).opts().msg_type(),
            Some(MessageType::Nak)
        );
    }

    #[test]
    fn garbage_is_not_a_request() {
        assert_eq!(parse(b"\x01\x02nonsense"), None);
        assert_eq!(parse(&[0u8; 300]), None);
    }

    #[test]
    fn a_hardware_address_length_over_16_is_not_a_request() {
        // Found by the TAP property test: dhcproto decodes hlen 216 and would panic
        // slicing the 16-byte chaddr by it.
        let mut bytes = client_message(MessageType::Discover, 7, [2, 0, 0, 0, 0, 1], None);
        assert!(parse(&bytes).is_some());
        bytes[2] = 216;
        assert_eq!(parse(&bytes), None);
        bytes[2] = 5;
        assert_eq!(parse(&bytes), None);
    }
}
