//! Fuzz target `namespace_record`; the checks are in `fuzz/bodies/namespace_record.rs`,
//! shared with the corpus replay test (`node/core/tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../bodies/namespace_record.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
