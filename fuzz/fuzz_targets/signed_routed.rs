//! Fuzz target `signed_routed`; the checks are in `fuzz/bodies/signed_routed.rs`, shared with the corpus
//! replay test (`node/core/tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../bodies/signed_routed.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
