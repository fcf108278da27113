//! Fuzz target `node_stack`; the checks are in `fuzz/bodies/node_stack.rs`, shared with the corpus
//! replay test (`node/core/tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../bodies/node_stack.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
