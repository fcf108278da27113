//! The insider's attacks on a keyed namespace it holds no key for, and on the traffic it
//! forwards (a submodule of `insider`, driving its [`Member`]).
//!
//! 4. Injection (`--keyed`): for each victim, an IP packet and a notice of the namespace
//!    with made-up seals, and direct IP packets (the kind a member sends unsealed over
//!    a secure edge) with another member's source IP, once in the insider's own name and
//!    once in the owner's. The victims count `dropped_unauthentic` or `dropped_spoofed`.
//! 5. On the path: every DHT read it forwards for another node gets three answers in the
//!    insider's name, before the replicas': a value with the certificate of another key,
//!    and "absent" twice. The reader counts the first as forged, and takes one answer per
//!    node, so it still settles on the replicas' value.
//! 6. Eavesdropping: every datagram it opens is searched for a known payload
//!    (`--pattern`); the report counts those that held it in clear.

use std::net::Ipv4Addr;
use std::time::Instant;

use anyhow::Result;
use ipop_core::Address;
use ipop_core::dht::wire::{self as dht_wire, Op, Reply, Request, Status};
use ipop_core::ipop::{KIND_IP, KIND_IP_DIRECT, KIND_NOTICE, NamespaceId};
use ipop_core::wire::{self, Message, Mode, RoutedFlags, RoutedHeader, SIGNATURE_TRAILER};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr};

use super::{Member, random32};

/// Bytes a secure DATA datagram adds to its plaintext.
const SEAL: usize = ipop_core::secure::DATA_OVERHEAD;

impl Member {
    /// Attack 4: packets into keyed namespace `ns` without its key, to each member:
    /// `members[i]` holds `ips[i]`.
    pub(super) fn inject(
        &mut self,
        ns: NamespaceId,
        members: &[Address],
        ips: &[Ipv4Addr],
    ) -> Result<()> {
        let me = self.stack.node.address();
        let n = members.len().min(ips.len());
        for (i, (&victim, &to_ip)) in members.iter().zip(ips).enumerate() {
            let mut fake_seal = ns.0.to_vec();
            fake_seal.extend_from_slice(&random32()?);
            fake_seal.extend_from_slice(&random32()?);
            let now = Instant::now();
            for (name, kind) in [
                ("ip_packet_with_made_up_seal", KIND_IP),
                ("notice_with_made_up_seal", KIND_NOTICE),
            ] {
                self.stack.dht_op(now, |_, node| {
                    node.send_routed(now, victim, Mode::Exact, kind, &fake_seal)
                })?;
                *self.sent.entry(name).or_default() += 1;
            }
            // A direct packet from another member's IP to this one's.
            let (from_ip, owner) = (ips[(i + 1) % n], members[(i + 1) % n]);
            let mut direct = ns.0.to_vec();
            direct.extend_from_slice(&echo_request(from_ip, to_ip));
            self.stack.dht_op(now, |_, node| {
                node.send_routed_unsigned(now, victim, Mode::Exact, KIND_IP_DIRECT, &direct)
            })?;
            *self
                .sent
                .entry("direct_packet_with_spoofed_ip")
                .or_default() += 1;
            let header = RoutedHeader {
                ttl: 64,
                hops: 0,
                mode: Mode::Exact,
                flags: RoutedFlags::default(),
                kind: KIND_IP_DIRECT,
                src: owner,
                dst: victim,
                via: None,
            };
            if header.src != me {
                self.send_on_edge("direct_packet_as_its_owner", header, &direct);
            }
        }
        Ok(())
    }

    /// Looks at a datagram this member opened (`datagram_len` bytes on the wire): counts
    /// a known payload in clear, and answers a DHT read it forwards (attacks 5 and 6).
    pub(super) fn note_forwarded(&mut self, plain: &[u8], datagram_len: usize) {
        let Some(plain) = datagram_len.checked_sub(SEAL).and_then(|n| plain.get(..n)) else {
            return;
        };
        if let Some(p) = self.pattern.as_deref() {
            if !p.is_empty() && plain.windows(p.len()).any(|w| w == p) {
                *self.seen.entry("known_payload_in_clear").or_default() += 1;
            }
        }
        let Ok(Message::Routed(r)) = wire::parse(plain) else {
            return;
        };
        let me = self.stack.node.address();
        if matches!(r.header.kind, KIND_IP | KIND_IP_DIRECT) && r.header.dst != me {
            *self.seen.entry("namespace_packets_forwarded").or_default() += 1;
        }
        if r.header.kind != dht_wire::REQUEST || r.header.src == me {
            return;
        }
        let payload = if r.header.flags.contains(RoutedFlags::SIGNED) {
            &r.payload[..r.payload.len().saturating_sub(SIGNATURE_TRAILER)]
        } else {
            r.payload
        };
        let Ok(req) = Request::parse(payload) else {
            return;
        };
        if req.op != Op::Get {
            return;
        }
        let (reader, op_id, sub) = (r.header.src, req.op_id, req.sub);
        self.answer_read(reader, op_id, sub);
    }

    /// Attack 5: three answers of the insider's own to `reader`'s read.
    fn answer_read(&mut self, reader: Address, op_id: u64, sub: u8) {
        let me = self.stack.node.address();
        let forged = self.own_cert.map(|cert| Reply {
            op_id,
            sub,
            status: Status::Ok,
            rev: 1 << 40,
            ttl_left_s: 600,
            value: me.as_bytes(),
            cert: Some(cert),
        });
        let absent = Reply {
            op_id,
            sub,
            status: Status::NotFound,
            rev: 1 << 40,
            ttl_left_s: 0,
            value: &[],
            cert: None,
        };
        let answers = forged
            .map(|f| ("read_answered_with_another_keys_value", f))
            .into_iter()
            .chain([
                ("read_answered_absent", absent),
                ("read_answered_absent", absent),
            ]);
        for (name, reply) in answers {
            let mut b = vec![0; dht_wire::MAX_MESSAGE];
            let Ok(n) = reply.emit(&mut b) else {
                continue;
            };
            b.truncate(n);
            let now = Instant::now();
            let sent = self.stack.dht_op(now, |_, node| {
                node.send_routed(now, reader, Mode::Exact, dht_wire::REPLY, &b)
            });
            if sent.is_ok() {
                *self.sent.entry(name).or_default() += 1;
            }
        }
    }
}

/// An ICMP echo request from `src` to `dst`.
fn echo_request(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 0x1717,
        seq_no: 1,
        data: b"an insider's packet",
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let mut buf = vec![0; ip.buffer_len() + icmp.buffer_len()];
    let mut packet = Ipv4Packet::new_unchecked(&mut buf);
    ip.emit(&mut packet, &smoltcp::phy::ChecksumCapabilities::default());
    icmp.emit(
        &mut Icmpv4Packet::new_unchecked(packet.payload_mut()),
        &smoltcp::phy::ChecksumCapabilities::default(),
    );
    buf
}
