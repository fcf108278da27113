#!/usr/bin/env bash
# Coverage-guided fuzzing on stable Rust: builds the targets with SanitizerCoverage
# (what `cargo fuzz` does on nightly) and runs one for a while, starting from the
# committed corpus and regressions; afterwards the small inputs that add coverage are
# merged into the committed corpus (`corpus/<target>/`, replayed by `cargo test`).
#   fuzz/run.sh wire_parse 300      # target, seconds
#   fuzz/run.sh node_stack 300 -fork=1 -ignore_crashes=1   # more libFuzzer flags
set -euo pipefail
cd "$(dirname "$0")"
targets="wire_parse dht_parse node_datagram node_stack secure_open namespace_open signed_routed tap_offload ip_mtu namespace_record"
target=${1:?usage: fuzz/run.sh <${targets// /|}> [seconds] [libFuzzer flags]}
[[ " $targets " == *" $target "* ]] || { echo "unknown target $target (one of: $targets)" >&2; exit 2; }
seconds=${2:-60}
# node_stack's inputs are operation sequences: a joined node's history is tens of KiB.
case $target in node_stack|tap_offload) max_len=65536 ;; *) max_len=4096 ;; esac
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps these flags off build scripts.
cargo build --release --target "$triple" --target-dir target/sancov --bin "$target"
bin="target/sancov/$triple/release/$target"
work="target/work/$target"
mkdir -p "$work" "corpus/$target" "regressions/$target" artifacts
"$bin" "$work" "corpus/$target" "regressions/$target" -artifact_prefix=artifacts/ \
  -max_total_time="$seconds" -max_len="$max_len" "${@:3}"
# Only new inputs of at most 4 KiB are merged, to keep the committed corpus small
# (node_stack's long seeds are built by its seed test, not kept from mutations).
small="target/work/$target-small"
rm -rf "$small"
mkdir -p "$small"
find "$work" -type f -size -4097c -exec cp {} "$small/" \;
"$bin" -merge=1 -max_len="$max_len" "corpus/$target" "$small"
