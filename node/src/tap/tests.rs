//! The offloads against an independent reading of the packets (smoltcp's).

use smoltcp::wire::{EthernetFrame, IpAddress, Ipv4Packet, TcpPacket};
use tun_rs::VirtioNetHdr;

use super::coalesce::Coalescer;
use super::offload::{ETH, GSO_NONE, GSO_TCPV4, HDR, NEEDS_CSUM, Splitter};

const SRC: [u8; 4] = [10, 1, 0, 5];
const DST: [u8; 4] = [10, 1, 0, 9];
const MSS: usize = 1200;

/// An Ethernet + IPv4 + TCP (with a 12-byte timestamp option) frame carrying `payload`
/// from sequence `seq`, with `flags`; its checksums right.
fn segment(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let tcp_len = 32;
    let total = 20 + tcp_len + payload.len();
    let mut f = vec![2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 5, 0x08, 0x00];
    f.extend_from_slice(&[0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0]);
    f[16..18].copy_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&SRC);
    f.extend_from_slice(&DST);
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&7u32.to_be_bytes());
    f.extend_from_slice(&[0x80, flags, 0x01, 0xf5, 0, 0, 0, 0]);
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    f.extend_from_slice(payload);
    fill_checksums(&mut f);
    f
}

fn fill_checksums(f: &mut [u8]) {
    let (src, dst) = (IpAddress::Ipv4(SRC.into()), IpAddress::Ipv4(DST.into()));
    let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH..]);
    ip.fill_checksum();
    let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
    tcp.fill_checksum(&src, &dst);
}

fn checksums_ok(f: &[u8]) -> bool {
    let (src, dst) = (IpAddress::Ipv4(SRC.into()), IpAddress::Ipv4(DST.into()));
    let ip = Ipv4Packet::new_checked(&f[ETH..]).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    ip.verify_checksum() && tcp.verify_checksum(&src, &dst)
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// What the kernel hands over for `data` sent as one TSO super-frame: the first
/// segment's headers with the whole payload, the TCP checksum partial.
fn super_frame(data: &[u8]) -> Vec<u8> {
    let mut f = segment(1000, 0x18, data);
    let mut raw = vec![0u8; HDR];
    VirtioNetHdr {
        flags: NEEDS_CSUM,
        gso_type: GSO_TCPV4,
        hdr_len: (ETH + 52) as u16,
        gso_size: MSS as u16,
        csum_start: (ETH + 20) as u16,
        csum_offset: 16,
    }
    .encode(&mut raw)
    .unwrap();
    // A partial checksum: the pseudo-header's sum in the field.
    let mut p = [0u8; 12];
    p[..4].copy_from_slice(&SRC);
    p[4..8].copy_from_slice(&DST);
    p[9] = 6;
    p[10..].copy_from_slice(&((32 + data.len()) as u16).to_be_bytes());
    let partial = tun_rs::checksum(&p, 0);
    f[ETH + 36..ETH + 38].copy_from_slice(&partial.to_be_bytes());
    raw.extend_from_slice(&f);
    raw
}

fn split_all(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut s = Splitter::default();
    s.raw[..raw.len()].copy_from_slice(raw);
    let mut out = Vec::new();
    s.split(raw.len(), |f| out.push(f.to_vec())).unwrap();
    out
}

#[test]
fn a_super_frame_is_cut_into_mss_segments_with_right_checksums() {
    let data = payload(10 * MSS + 321);
    let frames = split_all(&super_frame(&data));
    assert_eq!(frames.len(), 11);
    let mut seq = 1000u32;
    let mut got = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        assert!(checksums_ok(f), "segment {i}");
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.dst_addr().as_bytes(), &[2, 0, 0, 0, 0, 9]);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(tcp.seq_number().0 as u32, seq);
        // PSH only on the last.
        assert_eq!(tcp.psh(), i == 10);
        seq += tcp.payload().len() as u32;
        got.extend_from_slice(tcp.payload());
    }
    assert_eq!(got, data);
}

#[test]
fn a_frame_that_needs_its_checksum_gets_it() {
    let mut raw = super_frame(&payload(500));
    VirtioNetHdr {
        flags: NEEDS_CSUM,
        gso_type: GSO_NONE,
        hdr_len: 0,
        gso_size: 0,
        csum_start: (ETH + 20) as u16,
        csum_offset: 16,
    }
    .encode(&mut raw[..HDR])
    .unwrap();
    let frames = split_all(&raw);
    assert_eq!(frames.len(), 1);
    assert!(checksums_ok(&frames[0]));
}

fn coalesce(frames: &[Vec<u8>]) -> Vec<(Vec<u8>, usize)> {
    let mut c = Coalescer::default();
    let mut out = Vec::new();
    let mut w = |b: &[u8], n: usize| -> Result<(), ()> {
        out.push((b.to_vec(), n));
        Ok(())
    };
    for f in frames {
        c.push(f, &mut w).unwrap();
    }
    c.flush(&mut w).unwrap();
    out
}

#[test]
fn segments_in_order_become_one_super_frame_the_splitter_cuts_back() {
    let data = payload(20 * MSS + 5);
    let segments = split_all(&super_frame(&data));
    let written = coalesce(&segments);
    assert_eq!(written.len(), 1);
    let (raw, n) = &written[0];
    assert_eq!(*n, 21);
    let hdr = VirtioNetHdr::decode(raw).unwrap();
    assert_eq!(
        (hdr.gso_type, hdr.gso_size, hdr.flags),
        (GSO_TCPV4, MSS as u16, NEEDS_CSUM)
    );
    assert_eq!((hdr.csum_start, hdr.csum_offset, hdr.hdr_len), (34, 16, 66));
    // The kernel would cut it exactly as the sender's did.
    assert_eq!(split_all(raw), segments);
}

#[test]
fn what_may_not_be_merged_is_written_as_it_came() {
    let a = segment(1000, 0x10, &payload(MSS));
    let gap = segment(1000 + 2 * MSS as u32, 0x10, &payload(MSS));
    let mut corrupt = segment(1000 + 3 * MSS as u32, 0x10, &payload(MSS));
    corrupt[ETH + 60] ^= 1;
    let syn = segment(1000 + 4 * MSS as u32, 0x02, &payload(10));
    let arp = vec![0xff; 42];
    let frames = vec![
        a.clone(),
        gap.clone(),
        corrupt.clone(),
        syn.clone(),
        arp.clone(),
    ];
    let written = coalesce(&frames);
    assert_eq!(written.len(), 5);
    for ((raw, n), f) in written.iter().zip(&frames) {
        assert_eq!(*n, 1);
        assert_eq!(raw[..HDR], [0; HDR]);
        assert_eq!(&raw[HDR..], &f[..]);
    }
}

#[test]
fn crafted_frames_never_panic() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let base = segment(1000, 0x10, &payload(300));
    let mut frames = Vec::new();
    for _ in 0..20_000 {
        let mut f = base.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % f.len();
            f[i] = next() as u8;
        }
        f.truncate((next() as usize) % (f.len() + 1));
        frames.push(f);
    }
    let _ = coalesce(&frames);
    let mut s = Splitter::default();
    for f in &frames {
        let n = f.len().min(s.raw.len());
        s.raw[..n].copy_from_slice(&f[..n]);
        let _ = s.split(n, |_| {});
    }
}
