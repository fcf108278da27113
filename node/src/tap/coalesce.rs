//! Receive-side coalescing for an offloading TAP: consecutive TCP/IPv4 segments of one
//! flow, in order, become one super-frame with a virtio header (`GSO_TCPV4`), so that
//! the host's TCP stack takes dozens of segments in one write. It is Linux's GRO rule
//! set, kept simple: only neighbours in the output are merged, and only segments whose
//! headers agree in everything but the sequence number, the length and PSH.
//!
//! Every frame here may come from a remote member. A segment is merged only after its
//! IP and TCP checksums are verified (the super-frame's checksum is left to the kernel
//! to trust, so a corrupt segment must never be hidden inside one); anything else is
//! written as it came, for the host's stack to judge.

use super::offload::{ETH, ETHERTYPE_IPV4, GSO_NONE, GSO_TCPV4, HDR, NEEDS_CSUM};
use tun_rs::VirtioNetHdr;

/// The largest IP packet a super-frame may hold.
const MAX_IP: usize = 65_535;
/// IPv4 header without options.
const IPV4: usize = 20;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

/// A TCP/IPv4 segment that may be merged: where its parts are and what must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// Source and destination address and port.
    flow: [u8; 12],
    seq: u32,
    /// The TCP header's length.
    tcp_len: usize,
    /// Payload bytes.
    payload: usize,
    psh: bool,
}

impl Segment {
    /// The segment `frame` is, if it is one that may be merged.
    fn parse(frame: &[u8]) -> Option<Segment> {
        let ip = frame.get(ETH..)?;
        if frame[12..14] != ETHERTYPE_IPV4 || ip.len() < IPV4 || ip[0] != 0x45 || ip[9] != 6 {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        // Fragments (MF or an offset) are never merged.
        if total > ip.len() || total < IPV4 + 20 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0
        {
            return None;
        }
        let tcp = &ip[IPV4..total];
        let tcp_len = usize::from(tcp[12] >> 4) * 4;
        let flags = tcp[13];
        if tcp_len < 20 || tcp_len >= tcp.len() || flags & !TCP_PSH != TCP_ACK {
            return None;
        }
        if tun_rs::checksum(&ip[..IPV4], 0) != 0xffff || !tcp_checksum_ok(ip, tcp) {
            return None;
        }
        let mut flow = [0u8; 12];
        flow[..8].copy_from_slice(&ip[12..20]);
        flow[8..].copy_from_slice(&tcp[..4]);
        Some(Segment {
            flow,
            seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            tcp_len,
            payload: tcp.len() - tcp_len,
            psh: flags & TCP_PSH != 0,
        })
    }
}

/// The sum of the TCP pseudo-header: addresses, protocol, length.
fn pseudo_header(ip: &[u8], tcp_len: usize) -> u64 {
    let mut p = [0u8; 12];
    p[..8].copy_from_slice(&ip[12..20]);
    p[9] = 6;
    p[10..].copy_from_slice(&(tcp_len as u16).to_be_bytes());
    tun_rs::checksum_no_fold(&p, 0)
}

fn tcp_checksum_ok(ip: &[u8], tcp: &[u8]) -> bool {
    tun_rs::checksum(tcp, pseudo_header(ip, tcp.len())) == 0xffff
}

/// The super-frame being built.
#[derive(Debug)]
struct Open {
    first: Segment,
    next_seq: u32,
    /// Frames merged into it.
    count: usize,
    /// A shorter segment or PSH ended it.
    closed: bool,
}

/// Gathers the frames for an offloading TAP and writes them with a virtio header in
/// front, merging runs of TCP segments.
#[derive(Debug)]
pub struct Coalescer {
    /// The virtio header, then the frame being built (or a single frame to write).
    buf: Vec<u8>,
    open: Option<Open>,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer {
            buf: Vec::with_capacity(HDR + ETH + MAX_IP),
            open: None,
        }
    }
}

impl Coalescer {
    /// Takes a frame for the TAP: it joins the super-frame being built, or that one is
    /// written with `write` and this one starts the next (or is written at once if it
    /// cannot be merged at all). `write` gets the bytes and how many frames they hold.
    pub fn push<E>(
        &mut self,
        frame: &[u8],
        mut write: impl FnMut(&[u8], usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let seg = Segment::parse(frame);
        if let (Some(s), Some(open)) = (seg, self.open.as_mut()) {
            let hdr_len = ETH + IPV4 + s.tcp_len;
            let joins = !open.closed
                && s.flow == open.first.flow
                && s.seq == open.next_seq
                && s.tcp_len == open.first.tcp_len
                && s.payload <= open.first.payload
                && self.buf.len() - HDR - ETH + s.payload <= MAX_IP
                // The same IP header but for length, id and checksum (TOS, flags,
                // TTL), and the same TCP header but for sequence, flags and checksum
                // (ack, window, urgent pointer, options: the timestamps too).
                && headers_agree(&self.buf[HDR..HDR + hdr_len], &frame[..hdr_len]);
            if joins {
                self.buf
                    .extend_from_slice(&frame[hdr_len..hdr_len + s.payload]);
                open.next_seq = s.seq.wrapping_add(s.payload as u32);
                open.count += 1;
                open.closed = s.payload < open.first.payload || s.psh;
                if s.psh {
                    self.buf[HDR + ETH + IPV4 + 13] |= TCP_PSH;
                }
                return Ok(());
            }
        }
        let flushed = self.flush(&mut write);
        self.buf.clear();
        self.buf.resize(HDR, 0);
        match seg {
            Some(s) => {
                let end = ETH + IPV4 + s.tcp_len + s.payload;
                self.buf.extend_from_slice(&frame[..end]);
                self.open = Some(Open {
                    first: s,
                    next_seq: s.seq.wrapping_add(s.payload as u32),
                    count: 1,
                    closed: s.psh,
                });
                flushed
            }
            None => {
                self.buf.extend_from_slice(frame);
                let written = write(&self.buf, 1);
                flushed.and(written)
            }
        }
    }

    /// Writes the super-frame being built, if any.
    pub fn flush<E>(
        &mut self,
        mut write: impl FnMut(&[u8], usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let mut hdr = VirtioNetHdr {
            gso_type: GSO_NONE,
            ..VirtioNetHdr::default()
        };
        if open.count > 1 {
            let ip_len = self.buf.len() - HDR - ETH;
            let ip = &mut self.buf[HDR + ETH..];
            ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            ip[10..12].fill(0);
            let sum = !tun_rs::checksum(&ip[..IPV4], 0);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            // CHECKSUM_PARTIAL: the field holds the pseudo-header's sum, the kernel
            // completes it (or trusts it: the segments' own sums were verified).
            let partial = tun_rs::checksum(&[], pseudo_header(ip, ip_len - IPV4));
            ip[IPV4 + 16..IPV4 + 18].copy_from_slice(&partial.to_be_bytes());
            hdr = VirtioNetHdr {
                flags: NEEDS_CSUM,
                gso_type: GSO_TCPV4,
                hdr_len: (ETH + IPV4 + open.first.tcp_len) as u16,
                gso_size: open.first.payload as u16,
                csum_start: (ETH + IPV4) as u16,
                csum_offset: 16,
            };
        }
        let _ = hdr.encode(&mut self.buf[..HDR]);
        write(&self.buf, open.count)
    }
}

/// Whether two segments' Ethernet, IP and TCP headers (of one length) agree in all that
/// a merge keeps from the first.
fn headers_agree(a: &[u8], b: &[u8]) -> bool {
    let (ip, tcp) = (ETH, ETH + IPV4);
    a[..ETH] == b[..ETH]
        && a[ip + 1] == b[ip + 1]
        && a[ip + 6..ip + 10] == b[ip + 6..ip + 10]
        && a[tcp + 8..tcp + 13] == b[tcp + 8..tcp + 13]
        && a[tcp + 14..tcp + 16] == b[tcp + 14..tcp + 16]
        && a[tcp + 18..] == b[tcp + 18..]
}
