//! Fuzz target `node_datagram`; the checks are in `fuzz/bodies/node_datagram.rs`, shared with the corpus
//! replay test (`node/core/tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../bodies/node_datagram.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
