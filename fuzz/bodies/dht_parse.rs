//! Any bytes: the DHT's request, reply and record parsers must return, never panic, and
//! whatever parses must re-emit to exactly the same bytes (every encoding is canonical).

use ipop_core::dht::wire::{MAX_MESSAGE, RecordRepr, Reply, Request};

/// Checks one input.
pub(crate) fn run(data: &[u8]) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    if let Ok(m) = Request::parse(data) {
        let n = m.emit(&mut buf).expect("a parsed request re-emits");
        assert_eq!(&buf[..n], data);
    }
    if let Ok(m) = Reply::parse(data) {
        let n = m.emit(&mut buf).expect("a parsed reply re-emits");
        assert_eq!(&buf[..n], data);
    }
    if let Ok(m) = RecordRepr::parse(data) {
        let n = m.emit(&mut buf).expect("a parsed record re-emits");
        assert_eq!(&buf[..n], data);
    }
}
