#!/usr/bin/env bash
# Installs every Debian package the project uses (build, tests, experiments).
# Runs `apt-get update` once, and only when something is missing.
set -euo pipefail

PACKAGES=(
  # build
  build-essential pkg-config libssl-dev zlib1g-dev
  # testbed: namespaces, NAT, firewalls, shaping, inspection
  iproute2 iptables nftables conntrack ethtool tcpdump procps util-linux
  # workloads the experiments run for real
  iputils-ping iperf3 isc-dhcp-client udhcpc openssh-server openssh-client
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: not root; skipping apt (run as root to install: ${PACKAGES[*]})" >&2
  exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
