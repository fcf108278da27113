//! Fuzz target `dht_parse`; the checks are in `fuzz/bodies/dht_parse.rs`, shared with the corpus
//! replay test (`node/core/tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../bodies/dht_parse.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
