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
  # a multicast receiver that joins its group (the virtual network's multicast test)
  socat
  # the WOW workloads: batch system with PBS commands, MEME-suite motif finder, NFS
  # server and userspace client (meme-pbs), libnfs headers (workloads/nfs-session)
  slurm-wlm slurm-wlm-torque glam2 nfs-ganesha nfs-ganesha-vfs libnfs-utils libnfs-dev rpcbind
  # fastdnaml-pvm: serial fastDNAml, PVM and its headers (workloads/fastdnaml-pvm)
  fastdnaml pvm pvm-dev
  # mpi-nfs: Open MPI (workloads/lss-mpi)
  openmpi-bin libopenmpi-dev
  # peers: the other VPNs `wow-bench run peers` measures beside ipop (the harness starts
  # their daemons inside its namespaces; openssl makes openvpn's certificates)
  wireguard-go wireguard-tools tinc nebula n2n yggdrasil openvpn openssl
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
  # Daemons are started by the harness inside its namespaces, never by the packages:
  # deny service starts while installing (policy-rc.d), unless the machine has its own.
  # The trap is set before the file is written, so a failed or interrupted install still
  # removes it.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    trap 'rm -f "$policy"' EXIT
    trap 'exit 130' INT TERM
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
  fi
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
