//! Any bytes: what a keyed namespace opens — routed IP payloads, IP mappings and records
//! from the DHT — must be refused without a panic unless sealed with its key for what it
//! claims; whatever it seals opens to the same bytes, only for the same sender, IP or
//! namespace. An odd first byte puts the namespace's id in front of the rest, so that the
//! fuzzer reaches the seal check without guessing 16 bytes.

use std::net::Ipv4Addr;

use ipop_core::Address;
use ipop_core::ipop::{Namespace, NamespaceKey};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Checks one input.
pub(crate) fn run(data: &[u8]) {
    let key = NamespaceKey::from_bytes([7; 32]);
    let ns = Namespace::keyed(&key);
    let open = Namespace::open(key.id());
    let src = Address::from_bytes([1; 20]);
    let ip = Ipv4Addr::new(10, 0, 0, 5);
    let payload = match data.first() {
        Some(b) if b & 1 == 1 => [&key.id().0[..], &data[1..]].concat(),
        _ => data.to_vec(),
    };
    let mut out = Vec::new();
    if ns.open_packet(src, &payload, &mut out).is_ok() {
        panic!("a payload the fuzzer made opened under the key");
    }
    assert_eq!(ns.owner(ip, data), None);
    assert!(ns.open_record(data).is_err());
    // The open namespace passes bodies through and parses what it can.
    if open.open_packet(src, &payload, &mut out).is_ok() {
        assert_eq!(out, payload[16..]);
    }
    let _ = open.owner(ip, data);
    let _ = open.open_record(data);

    // Sealing round-trips, bound to what it was sealed for.
    let mut rng = StdRng::seed_from_u64(u64::from(data.len() as u32));
    let mut sealed = Vec::new();
    ns.seal_packet(&mut rng, src, data, &mut sealed);
    assert_eq!(ns.open_packet(src, &sealed, &mut out), Ok(()));
    assert_eq!(out, data);
    assert!(
        ns.open_packet(Address::from_bytes([2; 20]), &sealed, &mut out)
            .is_err()
    );
    if let Ok(bytes) = <[u8; 20]>::try_from(data) {
        let owner = Address::from_bytes(bytes);
        let value = ns.mapping(&mut rng, ip, owner);
        assert_eq!(ns.owner(ip, &value), Some(owner));
        assert_eq!(ns.owner(Ipv4Addr::new(10, 0, 0, 6), &value), None);
    }
}
