//! IPv4 packets and the path's MTU: TCP MSS clamping on SYNs (so connections start with
//! segments the path carries), ICMP "fragmentation needed" back to the host for a DF
//! packet too large for the path, and IPv4 fragments for one that may be fragmented —
//! what a router does on a smaller link. Packets arrive here parsed and checked
//! ([`super::frame`]); every function still checks what it reads and never panics.

use smoltcp::wire::{Icmpv4Packet, IpAddress, IpProtocol, Ipv4Packet, TcpPacket};

const IPV4_HEADER: usize = 20;
const ICMP_HEADER: usize = 8;
/// Bytes of the packet an ICMP error quotes after its IP header (RFC 792).
const QUOTED_DATA: usize = 8;
/// TCP option kinds.
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
/// The smallest MSS clamping sets (RFC 879's default for IPv4 hosts).
pub const MIN_MSS: u16 = 536;

/// Whether `packet` (a checked IPv4 packet) may not be fragmented.
pub fn dont_fragment(packet: &[u8]) -> bool {
    Ipv4Packet::new_checked(packet).is_ok_and(|ip| ip.dont_frag())
}

/// Whether `packet` is a TCP SYN (or SYN-ACK), the segments whose MSS is clamped.
pub fn carries_syn(packet: &[u8]) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else {
        return false;
    };
    ip.next_header() == IpProtocol::Tcp
        && ip.frag_offset() == 0
        && TcpPacket::new_checked(ip.payload()).is_ok_and(|t| t.syn())
}

/// The TCP MSS that fills an IP packet of `mtu` bytes (at least [`MIN_MSS`]).
pub fn mss_for(mtu: usize) -> u16 {
    mtu.saturating_sub(IPV4_HEADER + 20)
        .clamp(usize::from(MIN_MSS), usize::from(u16::MAX)) as u16
}

/// Lowers the MSS option of a TCP SYN (or SYN-ACK) in `packet` to `mss`, fixing the
/// checksum. Returns whether the packet changed; anything but a SYN with a larger MSS is
/// left as it is.
pub fn clamp_mss(packet: &mut [u8], mss: u16) -> bool {
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut packet[..]) else {
        return false;
    };
    if ip.next_header() != IpProtocol::Tcp || ip.frag_offset() != 0 || ip.more_frags() {
        return false;
    }
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let Ok(mut tcp) = TcpPacket::new_checked(ip.payload_mut()) else {
        return false;
    };
    if !tcp.syn() {
        return false;
    }
    let opts = tcp.options_mut();
    let mut i = 0;
    let mut changed = false;
    while i < opts.len() {
        match opts[i] {
            OPT_END => break,
            OPT_NOP => i += 1,
            kind => {
                let Some(&len) = opts.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > opts.len() {
                    break;
                }
                if kind == OPT_MSS && len == 4 {
                    let old = u16::from_be_bytes([opts[i + 2], opts[i + 3]]);
                    if old > mss {
                        opts[i + 2..i + 4].copy_from_slice(&mss.to_be_bytes());
                        changed = true;
                    }
                }
                i += len;
            }
        }
    }
    if changed {
        tcp.fill_checksum(&src, &dst);
    }
    changed
}

/// Writes into `out` the ICMP "fragmentation needed" (type 3, code 4) answer to
/// `packet`, naming `mtu`, from the packet's destination to its source. Returns false
/// (and writes nothing) where no error may be sent: for a fragment past the first, and
/// for an ICMP error (RFC 1122 3.2.2).
pub fn frag_needed(packet: &[u8], mtu: u16, out: &mut Vec<u8>) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else {
        return false;
    };
    if ip.frag_offset() != 0 {
        return false;
    }
    let header = usize::from(ip.header_len());
    if ip.next_header() == IpProtocol::Icmp {
        // Only queries (echo, timestamp, …) are answered; errors (3, 4, 5, 11, 12) not.
        let kind = packet.get(header).copied().unwrap_or(3);
        if matches!(kind, 3 | 4 | 5 | 11 | 12) {
            return false;
        }
    }
    let quoted = &packet[..(header + QUOTED_DATA).min(packet.len())];
    let total = IPV4_HEADER + ICMP_HEADER + quoted.len();
    out.clear();
    out.resize(total, 0);
    {
        let mut reply = Ipv4Packet::new_unchecked(&mut out[..]);
        reply.set_version(4);
        reply.set_header_len(IPV4_HEADER as u8);
        reply.set_dscp(0x30); // CS6, network control, as Linux sends ICMP errors
        reply.set_total_len(total as u16);
        reply.set_hop_limit(64);
        reply.set_next_header(IpProtocol::Icmp);
        reply.set_src_addr(ip.dst_addr());
        reply.set_dst_addr(ip.src_addr());
        reply.fill_checksum();
    }
    let icmp = &mut out[IPV4_HEADER..];
    icmp[0] = 3;
    icmp[1] = 4;
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[ICMP_HEADER..].copy_from_slice(quoted);
    Icmpv4Packet::new_unchecked(icmp).fill_checksum();
    true
}

/// Cuts `packet` (a checked IPv4 packet without the DF bit, itself maybe a fragment)
/// into fragments of at most `mtu` bytes, handing each to `each` (built in `buf`).
/// Returns false, handing nothing, where it cannot: a header with options (they would
/// have to be sorted into those copied to every fragment), or an MTU with no room for
/// eight bytes of data.
pub fn fragment(packet: &[u8], mtu: usize, buf: &mut Vec<u8>, mut each: impl FnMut(&[u8])) -> bool {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else {
        return false;
    };
    if usize::from(ip.header_len()) != IPV4_HEADER || mtu < IPV4_HEADER + 8 {
        return false;
    }
    let data = ip.payload();
    let per = (mtu - IPV4_HEADER) / 8 * 8;
    let (base, more) = (usize::from(ip.frag_offset()), ip.more_frags());
    let mut start = 0;
    while start < data.len() {
        let end = (start + per).min(data.len());
        buf.clear();
        buf.extend_from_slice(&packet[..IPV4_HEADER]);
        buf.extend_from_slice(&data[start..end]);
        let mut f = Ipv4Packet::new_unchecked(&mut buf[..]);
        f.set_total_len((IPV4_HEADER + end - start) as u16);
        f.set_frag_offset((base + start) as u16);
        f.set_more_frags(end < data.len() || more);
        f.fill_checksum();
        each(buf);
        start = end;
    }
    true
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        Icmpv4DstUnreachable, Icmpv4Message, Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber,
    };

    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(10, 128, 0, 3);

    /// An IPv4 packet from A to B of `len` bytes (UDP-like payload of `proto`).
    fn packet(proto: IpProtocol, len: usize, df: bool) -> Vec<u8> {
        let mut p = vec![0u8; len];
        for (i, b) in p.iter_mut().enumerate().skip(IPV4_HEADER) {
            *b = i as u8;
        }
        let repr = Ipv4Repr {
            src_addr: A,
            dst_addr: B,
            next_header: proto,
            payload_len: len - IPV4_HEADER,
            hop_limit: 64,
        };
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        repr.emit(&mut ip, &ChecksumCapabilities::default());
        ip.set_dont_frag(df);
        ip.fill_checksum();
        p
    }

    fn syn(mss: Option<u16>) -> Vec<u8> {
        let tcp = TcpRepr {
            src_port: 40000,
            dst_port: 5201,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(7),
            ack_number: None,
            window_len: 64240,
            window_scale: Some(7),
            max_seg_size: mss,
            sack_permitted: true,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let mut p = packet(IpProtocol::Tcp, IPV4_HEADER + tcp.header_len(), true);
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        let mut t = TcpPacket::new_unchecked(ip.payload_mut());
        tcp.emit(
            &mut t,
            &A.into(),
            &B.into(),
            &ChecksumCapabilities::default(),
        );
        p
    }

    fn mss_of(p: &[u8]) -> Option<u16> {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(t.verify_checksum(&A.into(), &B.into()), "TCP checksum");
        TcpRepr::parse(&t, &A.into(), &B.into(), &ChecksumCapabilities::default())
            .unwrap()
            .max_seg_size
    }

    #[test]
    fn syns_get_the_smaller_mss_and_a_valid_checksum() {
        let mut p = syn(Some(1460));
        assert!(clamp_mss(&mut p, 1246));
        assert_eq!(mss_of(&p), Some(1246));
        // Smaller already, or none, or not a SYN: unchanged.
        let mut q = syn(Some(1000));
        assert!(!clamp_mss(&mut q, 1246));
        assert_eq!(mss_of(&q), Some(1000));
        assert!(!clamp_mss(&mut syn(None), 1246));
        let mut udp = packet(IpProtocol::Udp, 100, false);
        let before = udp.clone();
        assert!(!clamp_mss(&mut udp, 500));
        assert_eq!(udp, before);
        assert_eq!(mss_for(1286), 1246);
        assert_eq!(mss_for(100), MIN_MSS);
    }

    #[test]
    fn frag_needed_quotes_the_packet_and_names_the_mtu() {
        let p = packet(IpProtocol::Udp, 1500, true);
        let mut out = Vec::new();
        assert!(frag_needed(&p, 1375, &mut out));
        let ip = Ipv4Packet::new_checked(&out[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (B, A));
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(icmp.msg_type(), Icmpv4Message::DstUnreachable);
        // (smoltcp's Icmpv4Repr wants the quoted packet whole; the kernel does not.)
        assert_eq!(
            icmp.msg_code(),
            u8::from(Icmpv4DstUnreachable::FragRequired)
        );
        assert_eq!(&ip.payload()[6..8], &1375u16.to_be_bytes());
        assert_eq!(&ip.payload()[8..], &p[..28]);
    }

    #[test]
    fn no_error_about_an_error_or_a_later_fragment() {
        let mut out = Vec::new();
        let mut err = packet(IpProtocol::Icmp, 600, true);
        err[IPV4_HEADER] = 3;
        assert!(!frag_needed(&err, 576, &mut out));
        let mut echo = packet(IpProtocol::Icmp, 600, true);
        echo[IPV4_HEADER] = 8;
        assert!(frag_needed(&echo, 576, &mut out));
        let mut later = packet(IpProtocol::Udp, 600, false);
        let mut ip = Ipv4Packet::new_unchecked(&mut later[..]);
        ip.set_frag_offset(1480);
        ip.fill_checksum();
        assert!(!frag_needed(&later, 576, &mut out));
    }

    /// Reassembles fragments (in order) into one packet's payload, checking each.
    fn reassemble(frags: &[Vec<u8>], mtu: usize) -> (Vec<u8>, bool) {
        let mut data = Vec::new();
        let mut last_more = true;
        for f in frags {
            assert!(f.len() <= mtu, "{} > {mtu}", f.len());
            let ip = Ipv4Packet::new_checked(&f[..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(usize::from(ip.frag_offset()), data.len());
            data.extend_from_slice(ip.payload());
            last_more = ip.more_frags();
        }
        (data, last_more)
    }

    #[test]
    fn fragments_fit_the_mtu_and_put_back_the_packet() {
        let p = packet(IpProtocol::Udp, 1500, false);
        for mtu in [1375, 1000, 576, 28] {
            let mut frags = Vec::new();
            assert!(fragment(&p, mtu, &mut Vec::new(), |f| frags.push(f.to_vec())));
            let (data, more) = reassemble(&frags, mtu);
            assert_eq!(data, &p[IPV4_HEADER..], "mtu {mtu}");
            assert!(!more);
        }
        // A fragment cut again keeps its offset and its more-fragments bit.
        let mut first = Vec::new();
        fragment(&p, 1000, &mut Vec::new(), |f| first.push(f.to_vec()));
        let mut again = Vec::new();
        assert!(fragment(&first[0], 500, &mut Vec::new(), |f| again.push(f.to_vec())));
        let (data, more) = reassemble(&again, 500);
        assert_eq!(data, &p[IPV4_HEADER..IPV4_HEADER + 976]);
        assert!(more);
        assert!(!fragment(&p, 27, &mut Vec::new(), |_| panic!()));
    }

    #[test]
    fn nothing_panics_on_cut_or_mangled_packets() {
        let mut out = Vec::new();
        let seeds = [syn(Some(1460)), packet(IpProtocol::Udp, 300, false)];
        for seed in &seeds {
            for cut in 0..seed.len() {
                for flip in [0usize, 1, 9, 20, 32, 33] {
                    let mut p = seed[..cut].to_vec();
                    if let Some(b) = p.get_mut(flip) {
                        *b ^= 0xa5;
                    }
                    clamp_mss(&mut p, 1000);
                    frag_needed(&p, 576, &mut out);
                    fragment(&p, 100, &mut Vec::new(), |_| {});
                    dont_fragment(&p);
                }
            }
        }
    }
}
