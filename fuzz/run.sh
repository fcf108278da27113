#!/usr/bin/env bash
# Coverage-guided fuzzing on stable Rust: builds the targets with SanitizerCoverage
# (what `cargo fuzz` does on nightly) and runs one for a while.
#   fuzz/run.sh wire_parse 300      # target, seconds
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh <wire_parse|dht_parse|node_datagram> [seconds]}
seconds=${2:-60}
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps these flags off build scripts.
cargo build --release --target "$triple" --target-dir target/sancov --bin "$target"
mkdir -p "corpus/$target" artifacts
exec "target/sancov/$triple/release/$target" "corpus/$target" -artifact_prefix=artifacts/ \
  -max_total_time="$seconds" -max_len=4096
