//! Packets larger than their path: path-MTU discovery finds a narrow link, DF packets
//! are answered with ICMP "fragmentation needed", others arrive as fragments, and SYNs
//! carry an MSS the path takes.

use std::net::Ipv4Addr;
use std::time::Duration;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetFrame, Icmpv4Packet, IpProtocol, Ipv4Packet, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber,
};

use super::datapath::unconnected_pair;
use super::*;

/// The datagrams node y's link carries.
const NARROW: usize = 1300;

/// A frame from host `src` (behind node `i`) to `dst` with a UDP payload of `len`
/// bytes, with or without DF.
fn udp(i: usize, src: Ipv4Addr, dst: Ipv4Addr, len: usize, df: bool) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|k| k as u8).collect();
    let mut f = udp_frame(mac(i), src, dst, (7000, 9000), &payload);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_dont_frag(df);
    ip.fill_checksum();
    f
}

/// A SYN from host `src` (behind node `i`) to `dst` offering MSS 1460.
fn syn(i: usize, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port: 40000,
        dst_port: 5201,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1),
        ack_number: None,
        window_len: 64240,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let mut f = udp(i, src, dst, tcp.header_len() - 8, true);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_next_header(IpProtocol::Tcp);
    ip.fill_checksum();
    let mut t = TcpPacket::new_unchecked(ip.payload_mut());
    tcp.emit(
        &mut t,
        &src.into(),
        &dst.into(),
        &ChecksumCapabilities::default(),
    );
    f
}

/// The IPv4 packets node `i` wrote to its host.
fn packets(frames: &[(usize, Vec<u8>)], i: usize) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|(n, f)| *n == i && f.get(12..14) == Some(&[0x08, 0x00]))
        .map(|(_, f)| {
            EthernetFrame::new_checked(&f[..])
                .unwrap()
                .payload()
                .to_vec()
        })
        .collect()
}

/// The next-hop MTU of the ICMP "fragmentation needed" answers among `packets`.
fn frag_needed(packets: &[Vec<u8>]) -> Vec<u16> {
    packets
        .iter()
        .filter_map(|p| {
            let ip = Ipv4Packet::new_checked(&p[..]).ok()?;
            let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
            (ip.next_header() == IpProtocol::Icmp
                && icmp.msg_type().to_string().contains("unreachable")
                && icmp.msg_code() == 4)
                .then(|| u16::from_be_bytes([ip.payload()[6], ip.payload()[7]]))
        })
        .collect()
}

#[test]
fn a_narrow_link_is_found_and_large_packets_are_cut_or_refused() {
    let ns = NamespaceId([0x4d; 16]);
    let rec = NamespaceRecord {
        mtu: 1500,
        ..record("10.61.0.0/24")
    };
    let mut sim = overlay_with(16, 21, ns, &rec, crate::overlay::Config::default());
    let (x, y) = unconnected_pair(&sim, 16);
    sim.set_link_mtu(y, NARROW);
    sim.enable_ipop(x, Config::new(ns));
    sim.enable_ipop(y, Config::new(ns));
    let (a, b) = (lease(&mut sim, x), lease(&mut sim, y));
    sim.take_tap_frames();

    // Before any edge to y was measured: the budget that crosses any edge whole.
    sim.tap_write(x, &udp(x, a, b, 1400, true));
    sim.run_for(Duration::from_secs(1));
    let back = packets(&sim.take_tap_frames(), x);
    assert_eq!(
        frag_needed(&back),
        vec![UNFRAGMENTED_MTU as u16],
        "{back:?}"
    );

    // The first packet made a shortcut; its probes find the narrow link both ways.
    sim.run_for(Duration::from_secs(10));
    let mtu_xy = sim
        .connection(x, y)
        .and_then(|c| c.path_mtu())
        .expect("measured");
    let mtu_yx = sim
        .connection(y, x)
        .and_then(|c| c.path_mtu())
        .expect("measured");
    for m in [mtu_xy, mtu_yx] {
        let m = usize::from(m);
        assert!(m <= NARROW && NARROW - m <= 16, "found {m} for {NARROW}");
    }
    let limit = usize::from(mtu_xy) - OVERHEAD;

    // DF: refused with the path's MTU. Not DF: cut, and whole again at y's host.
    sim.tap_write(x, &udp(x, a, b, 1400, true));
    let big = udp(x, a, b, 1400, false);
    sim.tap_write(x, &big);
    sim.run_for(Duration::from_secs(1));
    let frames = sim.take_tap_frames();
    assert_eq!(frag_needed(&packets(&frames, x)), vec![limit as u16]);
    let fragments = packets(&frames, y);
    assert!(fragments.len() >= 2, "{} fragments", fragments.len());
    let mut data = Vec::new();
    for f in &fragments {
        assert!(f.len() <= limit, "{} > {limit}", f.len());
        let ip = Ipv4Packet::new_checked(&f[..]).unwrap();
        assert_eq!(usize::from(ip.frag_offset()), data.len());
        data.extend_from_slice(ip.payload());
    }
    assert_eq!(data, &big[14 + 20..]);

    // SYNs both ways carry an MSS the path takes.
    sim.tap_write(x, &syn(x, a, b));
    sim.run_for(Duration::from_millis(500));
    let got = packets(&sim.take_tap_frames(), y);
    let ip = Ipv4Packet::new_checked(&got[0][..]).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(tcp.verify_checksum(&a.into(), &b.into()));
    let repr =
        TcpRepr::parse(&tcp, &a.into(), &b.into(), &ChecksumCapabilities::default()).unwrap();
    assert_eq!(repr.max_seg_size, Some((limit - 40) as u16));
    let s = sim.node_ipop(x).stats();
    assert_eq!((s.frag_needed_sent, s.fragmented, s.mss_clamped), (2, 1, 1));
    assert_eq!(s.dropped_too_big, 0);
}
