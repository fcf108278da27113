//! Ethernet frames on the TAP side: what the host sent (ARP, IPv4, DHCP, or something
//! to drop) and the frames IPOP writes back (ARP replies, IPv4 packets, DHCP replies).
//! Parsing uses smoltcp's checked views: no length field is trusted, nothing panics.

use std::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

/// DHCP server port.
pub(crate) const DHCP_SERVER_PORT: u16 = 67;
/// DHCP client port.
pub(crate) const DHCP_CLIENT_PORT: u16 = 68;
/// Ethernet header length.
pub(crate) const ETHERNET_HEADER: usize = 14;
const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// Why a frame from the host is not carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dropped {
    /// Not a well-formed Ethernet/ARP/IPv4 frame.
    Malformed,
    /// Neither IPv4 nor ARP (IPv6, and anything else).
    NotIpv4,
}

/// A frame the host wrote to the TAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostFrame<'a> {
    /// An ARP request (who has `target`? tell `sender_ip` at `sender_mac`).
    ArpRequest {
        /// The asker's MAC.
        sender_mac: [u8; 6],
        /// The asker's IP.
        sender_ip: Ipv4Addr,
        /// The IP asked for.
        target: Ipv4Addr,
    },
    /// ARP that needs no answer (replies, gratuitous announcements).
    ArpOther,
    /// A DHCP message from a client.
    Dhcp {
        /// The client's MAC.
        src_mac: [u8; 6],
        /// The DHCP message (UDP payload).
        message: &'a [u8],
    },
    /// Any other IPv4 packet.
    Ipv4 {
        /// The sender's MAC.
        src_mac: [u8; 6],
        /// Source IP.
        src: Ipv4Addr,
        /// Destination IP.
        dst: Ipv4Addr,
        /// The whole IPv4 packet (trimmed to its total length).
        packet: &'a [u8],
    },
}

/// Classifies a frame from the host.
pub(crate) fn classify(frame: &[u8]) -> Result<HostFrame<'_>, Dropped> {
    let eth = EthernetFrame::new_checked(frame).map_err(|_| Dropped::Malformed)?;
    let src_mac = eth.src_addr().0;
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            let packet = ArpPacket::new_checked(eth.payload()).map_err(|_| Dropped::Malformed)?;
            let ArpRepr::EthernetIpv4 {
                operation,
                source_hardware_addr,
                source_protocol_addr,
                target_protocol_addr,
                ..
            } = ArpRepr::parse(&packet).map_err(|_| Dropped::Malformed)?
            else {
                return Err(Dropped::NotIpv4);
            };
            if operation == ArpOperation::Request && source_protocol_addr != target_protocol_addr {
                Ok(HostFrame::ArpRequest {
                    sender_mac: source_hardware_addr.0,
                    sender_ip: source_protocol_addr,
                    target: target_protocol_addr,
                })
            } else {
                Ok(HostFrame::ArpOther)
            }
        }
        EthernetProtocol::Ipv4 => {
            let payload = eth.payload();
            // The header is checked here rather than by `Ipv4Repr::parse`, which refuses
            // fragments: a host fragments datagrams larger than the TAP's MTU (PVM's and
            // NFS-over-UDP's), and every fragment must cross the overlay.
            let ip = Ipv4Packet::new_checked(payload).map_err(|_| Dropped::Malformed)?;
            if ip.version() != 4 || !ip.verify_checksum() {
                return Err(Dropped::Malformed);
            }
            let total = usize::from(ip.total_len());
            let packet = &payload[..total];
            if ip.next_header() == IpProtocol::Udp && !ip.more_frags() && ip.frag_offset() == 0 {
                if let Ok(udp) = UdpPacket::new_checked(ip.payload()) {
                    if udp.dst_port() == DHCP_SERVER_PORT && udp.src_port() == DHCP_CLIENT_PORT {
                        let len = usize::from(udp.len()).saturating_sub(UDP_HEADER);
                        let data = udp.payload();
                        return Ok(HostFrame::Dhcp {
                            src_mac,
                            message: &data[..len.min(data.len())],
                        });
                    }
                }
            }
            Ok(HostFrame::Ipv4 {
                src_mac,
                src: ip.src_addr(),
                dst: ip.dst_addr(),
                packet,
            })
        }
        _ => Err(Dropped::NotIpv4),
    }
}

/// The answer to an ARP request: `target` is at `mac`.
pub(crate) fn arp_reply(
    mac: [u8; 6],
    target: Ipv4Addr,
    to_mac: [u8; 6],
    to_ip: Ipv4Addr,
) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: target,
        target_hardware_addr: EthernetAddress(to_mac),
        target_protocol_addr: to_ip,
    };
    let mut frame = vec![0u8; ETHERNET_HEADER + arp.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    EthernetRepr {
        src_addr: EthernetAddress(mac),
        dst_addr: EthernetAddress(to_mac),
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut eth);
    arp.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    frame
}

/// Writes an Ethernet frame carrying `ip_packet` into `out` (replacing its contents).
pub(crate) fn ip_frame(dst_mac: [u8; 6], src_mac: [u8; 6], ip_packet: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&dst_mac);
    out.extend_from_slice(&src_mac);
    out.extend_from_slice(&0x0800u16.to_be_bytes());
    out.extend_from_slice(ip_packet);
}

/// A DHCP reply frame from the virtual server `server_ip` at `server_mac` to a client.
pub(crate) fn dhcp_frame(
    server_mac: [u8; 6],
    server_ip: Ipv4Addr,
    client_mac: [u8; 6],
    client_ip: Ipv4Addr,
    message: &[u8],
) -> Vec<u8> {
    let udp_len = UDP_HEADER + message.len();
    let ip = Ipv4Repr {
        src_addr: server_ip,
        dst_addr: client_ip,
        next_header: IpProtocol::Udp,
        payload_len: udp_len,
        hop_limit: 64,
    };
    let mut frame = vec![0u8; ETHERNET_HEADER + IPV4_HEADER + udp_len];
    let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
    EthernetRepr {
        src_addr: EthernetAddress(server_mac),
        dst_addr: EthernetAddress(client_mac),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let caps = ChecksumCapabilities::default();
    let mut ip_packet = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut ip_packet, &caps);
    UdpRepr {
        src_port: DHCP_SERVER_PORT,
        dst_port: DHCP_CLIENT_PORT,
    }
    .emit(
        &mut UdpPacket::new_unchecked(ip_packet.payload_mut()),
        &IpAddress::Ipv4(server_ip),
        &IpAddress::Ipv4(client_ip),
        message.len(),
        |b| b.copy_from_slice(message),
        &caps,
    );
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
    const GW: [u8; 6] = [0x02, 0, 0x5e, 0, 0, 1];

    #[test]
    fn fragments_are_ipv4_packets_and_bad_checksums_are_malformed() {
        let message = [7u8; 40];
        let mut frame = dhcp_frame(
            GW,
            Ipv4Addr::new(10, 0, 0, 1),
            HOST,
            Ipv4Addr::new(10, 0, 0, 5),
            &message,
        );
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETHERNET_HEADER..]);
        ip.set_more_frags(true);
        ip.set_frag_offset(0);
        ip.fill_checksum();
        assert!(
            matches!(classify(&frame), Ok(HostFrame::Ipv4 { dst, .. }) if dst == Ipv4Addr::new(10, 0, 0, 5)),
            "a first fragment is carried, not taken for DHCP"
        );
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETHERNET_HEADER..]);
        ip.set_more_frags(false);
        ip.set_frag_offset(1480);
        ip.fill_checksum();
        assert!(
            matches!(classify(&frame), Ok(HostFrame::Ipv4 { .. })),
            "a later fragment too"
        );
        frame[ETHERNET_HEADER + 10] ^= 0xff;
        assert!(matches!(classify(&frame), Err(Dropped::Malformed)));
    }

    #[test]
    fn arp_requests_are_recognised_and_answered() {
        let who_has = |target| {
            let arp = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr: EthernetAddress(HOST),
                source_protocol_addr: Ipv4Addr::new(10, 0, 0, 5),
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: target,
            };
            let mut frame = arp_reply(
                HOST,
                Ipv4Addr::UNSPECIFIED,
                [0xff; 6],
                Ipv4Addr::UNSPECIFIED,
            );
            arp.emit(&mut ArpPacket::new_unchecked(&mut frame[ETHERNET_HEADER..]));
            frame
        };
        let f = who_has(Ipv4Addr::new(10, 0, 0, 9));
        let HostFrame::ArpRequest {
            sender_mac,
            sender_ip,
            target,
        } = classify(&f).unwrap()
        else {
            panic!("not an ARP request")
        };
        assert_eq!(
            (sender_mac, sender_ip, target),
            (HOST, Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 9))
        );
        // A gratuitous announcement needs no answer.
        assert_eq!(
            classify(&who_has(Ipv4Addr::new(10, 0, 0, 5))),
            Ok(HostFrame::ArpOther)
        );
        let reply = arp_reply(GW, target, sender_mac, sender_ip);
        let eth = EthernetFrame::new_checked(&reply[..]).unwrap();
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            ..
        } = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (operation, source_hardware_addr.0, source_protocol_addr),
            (ArpOperation::Reply, GW, target)
        );
    }

    #[test]
    fn dhcp_frames_round_trip_and_other_frames_are_dropped() {
        let msg = b"dhcp-message-bytes";
        let frame = dhcp_frame(
            GW,
            Ipv4Addr::new(10, 0, 0, 1),
            HOST,
            Ipv4Addr::new(10, 0, 0, 7),
            msg,
        );
        // Reply frames carry server->client ports; classify only accepts client->server.
        let mut request = frame.clone();
        let udp_at = ETHERNET_HEADER + IPV4_HEADER;
        request[udp_at..udp_at + 2].copy_from_slice(&68u16.to_be_bytes());
        request[udp_at + 2..udp_at + 4].copy_from_slice(&67u16.to_be_bytes());
        request[udp_at + 6..udp_at + 8].copy_from_slice(&[0, 0]); // no UDP checksum
        match classify(&request).unwrap() {
            HostFrame::Dhcp { src_mac, message } => assert_eq!((src_mac, message), (GW, &msg[..])),
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify(&frame), Ok(HostFrame::Ipv4 { .. })));
        let mut ipv6 = frame.clone();
        ipv6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(classify(&ipv6), Err(Dropped::NotIpv4));
        assert_eq!(classify(&frame[..20]), Err(Dropped::Malformed));
        let mut bad_len = frame.clone();
        bad_len[ETHERNET_HEADER + 2..ETHERNET_HEADER + 4].copy_from_slice(&9000u16.to_be_bytes());
        assert_eq!(classify(&bad_len), Err(Dropped::Malformed));
    }
}
