#!/usr/bin/env bash
# Builds the workloads the WOW experiments run (C programs against PVM and MPI) into
# target/workloads/bin, where wow-bench looks for them (or set WOW_WORKLOADS).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
prefix="${WOW_WORKLOADS:-$root/target/workloads}"
for w in "$root"/workloads/*/; do
  make -s -C "$w" PREFIX="$prefix"
done
echo "build-workloads: $(ls "$prefix/bin" | tr '\n' ' ')in $prefix/bin"
