#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine and builds everything (release).
set -euo pipefail
cd "$(dirname "$0")"
./scripts/install-deps.sh
cargo build --release --workspace --locked
./scripts/build-workloads.sh
