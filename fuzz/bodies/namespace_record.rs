//! Any bytes as a namespace record read from the DHT: decoding must not panic, and a
//! record it takes passes every check and is the one encoding of itself (so no two
//! stored forms mean the same record, and nothing after it is ignored).

use ipop_core::ipop::NamespaceRecord;
use ipop_core::ipop::namespace::MAX_RECORD;

/// Checks one input.
pub(crate) fn run(data: &[u8]) {
    if let Ok(record) = NamespaceRecord::decode(data) {
        assert_eq!(record.check(), Ok(()));
        assert_eq!(record.encode(), data);
        assert!(data.len() <= MAX_RECORD);
    }
}
