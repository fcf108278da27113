#!/usr/bin/env bash
# The project's test command (CI runs exactly this through .ci/run).
# Unit tests, simulation tests, and integration tests in network namespaces (needs root).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz crate lives outside the workspace; make sure its targets still compile.
cargo build --locked --manifest-path fuzz/Cargo.toml --bins
cargo build --release --workspace --locked
./scripts/build-workloads.sh

# Namespaces of the project (wow-*) that exist before the tests are not the tests' own.
ours() { ip netns list 2>/dev/null | awk '$1 ~ /^wow-/ {print $1}' | sort; }
before=$(ours)
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --workspace --locked --no-fail-fast
else
  cargo test --release --workspace --locked --no-fail-fast
fi
# Every test removes what it made: a namespace left behind fails the run.
left=$(comm -13 <(echo "$before") <(ours))
if [ -n "$left" ]; then
  echo "error: the tests left network namespaces behind (remove them with target/release/wow-bench clean):" >&2
  echo "$left" >&2
  exit 1
fi
