//! TAP offloads (`IFF_VNET_HDR` with TSO and checksum offload): the kernel hands the node
//! TCP super-frames of up to 64 KiB and takes coalesced ones, so that the hosts' TCP
//! stacks and the TAP see one frame where the underlay sees dozens of datagrams.
//!
//! The frames the protocol core handles stay MTU-sized: a super-frame read from the TAP
//! is cut into frames by [`Splitter`] (with tun-rs's segmentation, a port of
//! wireguard-go's, given the IP packet inside the Ethernet frame) before the core sees
//! it, and consecutive segments of a TCP flow that the core writes are merged again by
//! [`super::coalesce::Coalescer`].
//!
//! The splitter's frames come from this host's kernel; still, no length or offset is
//! used before it is checked.

use tun_rs::{VIRTIO_NET_HDR_LEN, VirtioNetHdr, gso_split};

/// The virtio header's length: it precedes every frame read or written.
pub const HDR: usize = VIRTIO_NET_HDR_LEN;
/// An Ethernet header's length.
pub const ETH: usize = 14;
/// The most segments one super-frame may be cut into (64 KiB of 536-byte segments).
const MAX_SEGMENTS: usize = 128;
/// virtio_net.h: the checksum from `csum_start` on is to be computed.
pub const NEEDS_CSUM: u8 = 1;
/// virtio_net.h: not a super-frame.
pub const GSO_NONE: u8 = 0;
/// virtio_net.h: a TCP/IPv4 super-frame.
pub const GSO_TCPV4: u8 = 1;
/// virtio_net.h: a UDP super-frame.
const GSO_UDP_L4: u8 = 5;
/// virtio_net.h: the ECN bit of `gso_type`.
const GSO_ECN: u8 = 0x80;
/// The largest frame a segment or a coalesced frame's part may be: a namespace's MTU is
/// at most 1500 bytes.
const SEGMENT_BUF: usize = 2048;
/// The largest super-frame the kernel hands over, with its virtio header.
pub const READ_BUF: usize = HDR + 65_535 + ETH;

/// The Ethernet type of IPv4.
pub const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];

/// Why a frame read from the TAP could not be cut into frames.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// Shorter than its headers.
    #[error("frame of {0} bytes is shorter than its headers")]
    Short(usize),
    /// A checksum or segmentation offset outside the frame.
    #[error("offload header out of the frame: {0:?}")]
    Header(VirtioNetHdr),
    /// A super-frame that is not IPv4 or IPv6.
    #[error("segmentation asked for a frame of ethertype {0:02x?}")]
    NotIp([u8; 2]),
    /// What tun-rs's segmentation refused.
    #[error("cannot segment: {0}")]
    Segment(std::io::Error),
}

/// Cuts the frames read from an offloading TAP into the frames they stand for.
#[derive(Debug)]
pub struct Splitter {
    /// One frame as read: the virtio header, then the (super-)frame.
    pub raw: Vec<u8>,
    segments: Vec<Vec<u8>>,
    sizes: Vec<usize>,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter {
            raw: vec![0; READ_BUF],
            segments: vec![vec![0; SEGMENT_BUF]; MAX_SEGMENTS],
            sizes: vec![0; MAX_SEGMENTS],
        }
    }
}

impl Splitter {
    /// Cuts `raw[..len]` (as read) into frames and calls `each` with each of them, in
    /// order; a frame that needs a checksum gets it. Returns how many there were.
    pub fn split(&mut self, len: usize, mut each: impl FnMut(&[u8])) -> Result<usize, SplitError> {
        let raw = self.raw.get_mut(..len).ok_or(SplitError::Short(len))?;
        if len < HDR + ETH {
            return Err(SplitError::Short(len));
        }
        let (head, frame) = raw.split_at_mut(HDR);
        let mut hdr = VirtioNetHdr::decode(head).map_err(SplitError::Segment)?;
        if hdr.gso_type == GSO_NONE {
            if hdr.flags & NEEDS_CSUM != 0 {
                let (start, at) = (usize::from(hdr.csum_start), usize::from(hdr.csum_offset));
                if start + at + 2 > frame.len() {
                    return Err(SplitError::Header(hdr));
                }
                // The field holds the pseudo-header's sum; the rest is summed onto it.
                let field = &mut frame[start + at..start + at + 2];
                let initial = u64::from(u16::from_be_bytes([field[0], field[1]]));
                field.fill(0);
                let sum = tun_rs::checksum(&frame[start..], initial);
                frame[start + at..start + at + 2].copy_from_slice(&(!sum).to_be_bytes());
            }
            each(frame);
            return Ok(1);
        }
        let ethertype = [frame[12], frame[13]];
        let is_v6 = match ethertype {
            ETHERTYPE_IPV4 => false,
            ETHERTYPE_IPV6 => true,
            other => return Err(SplitError::NotIp(other)),
        };
        let (eth, ip) = frame.split_at_mut(ETH);
        // The offsets count from the frame's start; tun-rs counts from the IP packet's.
        hdr.csum_start = hdr
            .csum_start
            .checked_sub(ETH as u16)
            .ok_or(SplitError::Header(hdr))?;
        // hdr_len is not trusted (the kernel may give the whole first packet's length):
        // the transport header's own length decides, as in tun-rs's own reader.
        let start = usize::from(hdr.csum_start);
        hdr.hdr_len = match ip.get(start + 12) {
            _ if hdr.gso_type & !GSO_ECN == GSO_UDP_L4 => hdr.csum_start + 8,
            Some(b) if (20..=60).contains(&((b >> 4) * 4)) => {
                hdr.csum_start + u16::from((b >> 4) * 4)
            }
            _ => return Err(SplitError::Header(hdr)),
        };
        if usize::from(hdr.hdr_len) > ip.len() {
            return Err(SplitError::Header(hdr));
        }
        let n = gso_split(ip, hdr, &mut self.segments, &mut self.sizes, ETH, is_v6)
            .map_err(SplitError::Segment)?;
        for (segment, &size) in self.segments.iter_mut().zip(&self.sizes).take(n) {
            segment[..ETH].copy_from_slice(eth);
            each(&segment[..ETH + size]);
        }
        Ok(n)
    }
}
