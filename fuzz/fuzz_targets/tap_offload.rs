//! Fuzz target `tap_offload`; the checks are in `fuzz/bodies/tap_offload.rs`, shared with
//! the corpus replay test (`node/tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../bodies/tap_offload.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
