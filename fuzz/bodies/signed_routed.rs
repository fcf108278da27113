//! A genuine signed routed message, changed by the input (bytes flipped, the end cut),
//! fed to a node that signs. It must never panic, and whatever it delivers as verified
//! must be the genuine message: its source, kind and payload exactly as signed.

use std::sync::OnceLock;
use std::time::Instant;

use ipop_core::TransportAddr;
use ipop_core::overlay::{self, Handled, Node};
use ipop_core::secure::Identity;
use ipop_core::wire::{Message, Mode, Routed, RoutedFlags, RoutedHeader};

/// The payload the sender signed.
const PAYLOAD: &[u8] = b"signed payload";

/// Checks one input: `[cut, (offset, xor)...]`; a `cut` with its high bit set removes
/// its low 7 bits' worth of bytes from the end.
pub(crate) fn run(data: &[u8]) {
    // Keys and the genuine message are made once: key generation and signing are slow
    // under the fuzzer's instrumentation, and only the receiving side is under test.
    static KEYS: OnceLock<(Identity, Identity, Vec<u8>)> = OnceLock::new();
    let (receiver, sender, genuine) = KEYS.get_or_init(|| {
        let receiver = Identity::from_private([1; 32]);
        let sender = Identity::from_private([2; 32]);
        let genuine = genuine(&sender, &receiver);
        (receiver, sender, genuine)
    });
    let now = Instant::now();
    let mut node = Node::new(overlay::Config::default(), receiver.address(), 1, now);
    node.add_local_transport(TransportAddr::udp(([198, 18, 0, 1], 4000).into()));
    node.enable_signatures(receiver.clone());
    node.join(now, &[]);
    let mut buf = genuine.clone();
    if let Some((cut, edits)) = data.split_first() {
        for e in edits.chunks_exact(2) {
            let i = usize::from(e[0]) % buf.len();
            buf[i] ^= e[1];
        }
        if cut & 0x80 != 0 {
            buf.truncate(buf.len().saturating_sub(usize::from(cut & 0x7f)));
        }
    }
    let from = TransportAddr::udp(([198, 18, 0, 2], 4000).into());
    let Handled::Deliver(d) = node.handle_datagram(now, from, &mut buf) else {
        assert!(!data.is_empty(), "the genuine message was not delivered");
        return;
    };
    if d.source_verified {
        assert_eq!(d.header.src, sender.address());
        assert_eq!(d.header.kind, 99);
        assert_eq!(
            &buf[d.payload], PAYLOAD,
            "a verified payload is the signed one"
        );
    } else {
        assert!(!data.is_empty(), "the genuine message was not verified");
    }
}

/// The sender's signed application message (kind 99) to the receiver, as a datagram.
fn genuine(sender: &Identity, receiver: &Identity) -> Vec<u8> {
    let mut header = RoutedHeader {
        ttl: 16,
        hops: 2,
        mode: Mode::Exact,
        flags: RoutedFlags::default(),
        kind: 99,
        src: sender.address(),
        dst: receiver.address(),
        via: None,
    };
    let body = overlay::sign_payload(sender, &mut header, PAYLOAD, &mut Vec::new());
    Message::Routed(Routed {
        header,
        payload: &body,
    })
    .to_vec()
    .expect("a small message encodes")
}
