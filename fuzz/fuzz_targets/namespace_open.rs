//! Fuzz target `namespace_open`; the checks are in `fuzz/bodies/namespace_open.rs`.
#![no_main]

#[path = "../bodies/namespace_open.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
