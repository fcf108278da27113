//! Any bytes as an IPv4 packet from the host, with a path MTU from the first two bytes:
//! MSS clamping, the ICMP "fragmentation needed" answer and fragmentation must not
//! panic, and what they make must be well formed: a clamped SYN keeps valid checksums,
//! an ICMP answer parses with valid checksums and quotes the packet's start, and the
//! fragments fit the MTU, carry valid headers and put the payload back together.

use ipop_core::ipop::mtu;
use smoltcp::wire::{Icmpv4Packet, IpProtocol, Ipv4Packet, TcpPacket};

/// Checks one input.
pub(crate) fn run(data: &[u8]) {
    let Some((head, packet)) = data.split_at_checked(2) else {
        return;
    };
    let limit = 28 + usize::from(u16::from_be_bytes([head[0], head[1]])) % 1500;
    clamp(packet, mtu::mss_for(limit));
    let mut out = Vec::new();
    if mtu::frag_needed(packet, limit as u16, &mut out) {
        let ip = Ipv4Packet::new_checked(&out[..]).expect("the answer parses");
        assert!(ip.verify_checksum() && ip.next_header() == IpProtocol::Icmp);
        let icmp = Icmpv4Packet::new_checked(ip.payload()).expect("ICMP parses");
        assert!(icmp.verify_checksum());
        assert!(packet.starts_with(&ip.payload()[8..]));
    }
    fragments(packet, limit);
}

fn clamp(packet: &[u8], mss: u16) {
    let mut p = packet.to_vec();
    if !mtu::clamp_mss(&mut p, mss) {
        assert_eq!(p, packet, "unchanged unless clamped");
        return;
    }
    let ip = Ipv4Packet::new_checked(&p[..]).expect("a clamped packet parses");
    let tcp = TcpPacket::new_checked(ip.payload()).expect("its TCP header parses");
    let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
    let original = Ipv4Packet::new_checked(packet).expect("so did the original");
    let before = TcpPacket::new_checked(original.payload()).expect("and its TCP");
    assert_eq!(
        before.verify_checksum(&src, &dst),
        tcp.verify_checksum(&src, &dst)
    );
}

fn fragments(packet: &[u8], limit: usize) {
    let mut got: Vec<Vec<u8>> = Vec::new();
    if !mtu::fragment(packet, limit, &mut Vec::new(), |f| got.push(f.to_vec())) {
        assert!(got.is_empty());
        return;
    }
    let original = Ipv4Packet::new_checked(packet).expect("a cut packet parses");
    let mut data = Vec::new();
    for f in &got {
        assert!(f.len() <= limit);
        let ip = Ipv4Packet::new_checked(&f[..]).expect("a fragment parses");
        assert!(ip.verify_checksum());
        assert_eq!(
            usize::from(ip.frag_offset()),
            usize::from(original.frag_offset()) + data.len()
        );
        data.extend_from_slice(ip.payload());
    }
    assert_eq!(data, original.payload());
}
