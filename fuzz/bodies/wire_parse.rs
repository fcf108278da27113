//! Any bytes: the datagram parser and every overlay payload parser must return, never
//! panic; whatever parses must re-emit to bytes that parse to the same message.

use ipop_core::wire::{self, OverlayPayload};

/// Checks one input.
pub(crate) fn run(data: &[u8]) {
    if let Ok(msg) = wire::parse(data) {
        let bytes = msg.to_vec().expect("a parsed message re-emits");
        assert_eq!(wire::parse(&bytes).expect("re-emitted bytes parse"), msg);
    }
    if let Some((&kind, rest)) = data.split_first()
        && let Ok(p) = OverlayPayload::parse(kind, rest)
    {
        let mut buf = vec![0u8; p.encoded_len()];
        let n = p.emit(&mut buf).expect("a parsed payload re-emits");
        assert_eq!(OverlayPayload::parse(kind, &buf[..n]).expect("re-parse"), p);
    }
}
