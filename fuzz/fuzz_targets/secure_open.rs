//! Fuzz target `secure_open`; the checks are in `fuzz/bodies/secure_open.rs`.
#![no_main]

#[path = "../bodies/secure_open.rs"]
mod body;

libfuzzer_sys::fuzz_target!(|data: &[u8]| body::run(data));
