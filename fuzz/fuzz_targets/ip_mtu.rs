//! Fuzz target `ip_mtu`; the checks are in `fuzz/bodies/ip_mtu.rs`, shared with the corpus
//! replay test (`node/core/tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../bodies/ip_mtu.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
