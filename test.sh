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

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --release --workspace --locked --no-fail-fast
else
  cargo test --release --workspace --locked --no-fail-fast
fi
