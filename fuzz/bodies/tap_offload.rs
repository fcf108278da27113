//! Any bytes: the TAP offloads must neither panic nor lose track of frames.
//!
//! An even first byte hands the rest to the splitter as a frame read from an offloading
//! TAP (virtio header, then the frame). An odd one builds a train of valid TCP segments
//! (count and size from the next two bytes), lets the remaining bytes overwrite bytes of
//! it (pairs of position and value), and gives the frames to the coalescer, as frames
//! from remote members would come. Every super-frame it writes must be cut back by the
//! splitter into exactly the frames it says it holds.

use ipop_node::tap::coalesce::Coalescer;
use ipop_node::tap::offload::{ETH, GSO_NONE, HDR, Splitter};

/// Checks one input.
pub(crate) fn run(data: &[u8]) {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 0 => {
            let mut s = Splitter::default();
            let n = rest.len().min(s.raw.len());
            s.raw[..n].copy_from_slice(&rest[..n]);
            let mut frames = 0;
            if let Ok(count) = s.split(n, |_| frames += 1) {
                assert_eq!(count, frames);
            }
        }
        Some((_, rest)) => coalesce(rest),
        None => {}
    }
}

fn coalesce(data: &[u8]) {
    let (count, size) = match data {
        [c, s, ..] => (usize::from(c % 40) + 1, usize::from(*s) * 6 + 1),
        _ => (2, 100),
    };
    let mut frames: Vec<Vec<u8>> = (0..count)
        .map(|i| segment(1000 + (i * size) as u32, &vec![i as u8; size]))
        .collect();
    for pair in data.get(2..).unwrap_or_default().chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
        let f = &mut frames[at % count];
        let i = at / count % f.len();
        f[i] = pair[2];
    }
    let mut c = Coalescer::default();
    let mut written = Vec::new();
    let mut out = |b: &[u8], n: usize| -> Result<(), ()> {
        written.push((b.to_vec(), n));
        Ok(())
    };
    for f in &frames {
        c.push(f, &mut out).unwrap();
    }
    c.flush(&mut out).unwrap();
    assert_eq!(written.iter().map(|(_, n)| n).sum::<usize>(), count);
    for (raw, n) in written {
        assert!(raw.len() >= HDR);
        if raw[1] == GSO_NONE {
            assert_eq!(n, 1);
            continue;
        }
        let mut s = Splitter::default();
        s.raw[..raw.len()].copy_from_slice(&raw);
        let cut = s
            .split(raw.len(), |_| {})
            .expect("a super-frame the splitter refuses");
        assert_eq!(cut, n, "a super-frame that does not hold what it says");
    }
}

/// An Ethernet + IPv4 + TCP (ACK) frame with `payload` from sequence `seq`, its
/// checksums right.
fn segment(seq: u32, payload: &[u8]) -> Vec<u8> {
    let total = 40 + payload.len();
    let mut f = vec![2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 5, 0x08, 0x00];
    f.extend_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 1, 0, 5, 10, 1, 0, 9,
    ]);
    f[ETH + 2..ETH + 4].copy_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 7, 0x50, 0x10, 0x01, 0xf5, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    let ip_sum = !tun_rs::checksum(&f[ETH..ETH + 20], 0);
    f[ETH + 10..ETH + 12].copy_from_slice(&ip_sum.to_be_bytes());
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&f[ETH + 12..ETH + 20]);
    pseudo[9] = 6;
    pseudo[10..].copy_from_slice(&((total - 20) as u16).to_be_bytes());
    let sum = !tun_rs::checksum(&f[ETH + 20..], tun_rs::checksum_no_fold(&pseudo, 0));
    f[ETH + 36..ETH + 38].copy_from_slice(&sum.to_be_bytes());
    f
}
