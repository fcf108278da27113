#!/bin/bash
# nfs-check.sh - LSS over NFS and SSH between network namespaces (run as root).
#
#   lssfs  (namespace lsn-$$-fs, 198.18.77.1)   nfs-ganesha (NFSv3/TCP) + rpcbind,
#          with a bridge joining the hosts      exporting the generated data set
#   lss1..lss3 (lsn-$$-n1..3, 198.18.77.11-13)  sshd on port 2222, own hostname
#          each host: own UTS namespace, own /run, /etc/netns/<ns>/hosts
#
# Runs on lss1: lss-mpi --sequential (cold cache, via NFS), then Open MPI over
# SSH: mpirun -np 3 --host lss1,lss2,lss3 (master on lss1, workers on lss2 and
# lss3; each host its own cache) cold, then again warm; checks the per-image
# checksums agree and prints times and fetched bytes.
# Environment: GEN="lssgen options" (default: --images 2, i.e. 4 x 32 MB
# databases, 40x32-pixel images), RATE=e.g. 40mbit shapes every host link
# (both ways) with tbf, MPI_EXTRA="..." adds mpirun options, KEEP=1 keeps the
# temp dir.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../ganesha.sh
. "$here/../ganesha.sh"
p="lsn-$$"
fs="$p-fs"
nodes=("$p-n1" "$p-n2" "$p-n3")
net=198.18.77
cidr=$net.0/24
tmp=""
pids=()
made_ns=()

cleanup() {
    local rc=$?
    set +e
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    sleep 1
    # anything still running in our namespaces was started by this script
    for ns in "${made_ns[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    for ns in "${made_ns[@]}"; do
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    if [ -n "$tmp" ]; then
        if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "== $*"; }
[ "$(id -u)" = 0 ] || fail "run as root"
for c in mpirun ganesha.nfsd rpcbind nfs-cp nfs-ls sshd ssh-keygen jq; do
    command -v "$c" >/dev/null || fail "$c not found"
done
[ -x "$here/lssgen" ] && [ -x "$here/lss-mpi" ] || make -C "$here" >/dev/null

tmp=$(mktemp -d /tmp/lss-nfs.XXXXXX)
chmod 755 "$tmp"

# ---------------------------------------------------------------- network
say "namespaces and links ($cidr)"
ip netns add "$fs"
made_ns+=("$fs")
ip -n "$fs" link set lo up
ip -n "$fs" link add br0 type bridge
ip -n "$fs" addr add "$net.1/24" dev br0
ip -n "$fs" link set br0 up
hosts="127.0.0.1 localhost
$net.1 lssfs"
for i in 1 2 3; do hosts="$hosts
$net.$((10 + i)) lss$i"; done
mkdir -p "/etc/netns/$fs"
echo "$hosts" >"/etc/netns/$fs/hosts"
for i in 1 2 3; do
    ns=${nodes[$((i - 1))]}
    ip netns add "$ns"
    made_ns+=("$ns")
    mkdir -p "/etc/netns/$ns"
    echo "$hosts" >"/etc/netns/$ns/hosts"
    ip -n "$ns" link set lo up
    ip -n "$fs" link add "v$i" type veth peer name eth0 netns "$ns"
    ip -n "$fs" link set "v$i" master br0 up
    ip -n "$ns" addr add "$net.$((10 + i))/24" dev eth0
    ip -n "$ns" link set eth0 up
    if [ -n "${RATE:-}" ]; then
        tc -n "$fs" qdisc add dev "v$i" root tbf rate "$RATE" burst 64kb latency 200ms
        tc -n "$ns" qdisc add dev eth0 root tbf rate "$RATE" burst 64kb latency 200ms
    fi
done

# ---------------------------------------------------------------- data + NFS
say "data set"
mkdir "$tmp/export"
# shellcheck disable=SC2086
"$here/lssgen" --out "$tmp/export" ${GEN:---images 2} | tee "$tmp/gen.json"
nimg=$(jq -r .images "$tmp/gen.json")
ndb=$(jq -r .dbs "$tmp/gen.json")
rm -f "$tmp"/export/*.truth

say "NFS server lssfs"
ganesha_start "$fs" "$tmp" lss-run
pids+=("$GANESHA_PID")
url="nfs://lssfs$tmp/export"
n1=${nodes[0]}
for _ in $(seq 1 90); do
    if ip netns exec "$n1" nfs-ls "$url/" >"$tmp/nfs-ls.out" 2>&1; then break; fi
    sleep 1
done
grep -q db-1.lssdb "$tmp/nfs-ls.out" ||
    fail "NFS export not listable: $(cat "$tmp/nfs-ls.out"); $(tail -3 "$tmp/ganesha.log" 2>/dev/null)"
[ -s "$tmp/rpcbind.pid" ] && pids+=("$(cat "$tmp/rpcbind.pid")")
echo "lss1 lists $url/"

# ---------------------------------------------------------------- SSH
say "sshd on lss1..lss3 (port 2222)"
mkdir -m 700 "$tmp/ssh"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/ssh/id"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/ssh/host"
cp "$tmp/ssh/id.pub" "$tmp/ssh/authorized_keys"
echo "[lss1]:2222,[lss2]:2222,[lss3]:2222 $(cat "$tmp/ssh/host.pub")" >"$tmp/ssh/known_hosts"
cat >"$tmp/ssh/sshd_config" <<EOF
Port 2222
HostKey $tmp/ssh/host
AuthorizedKeysFile $tmp/ssh/authorized_keys
PidFile none
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
EOF
cat >"$tmp/ssh-wrap" <<EOF
#!/bin/sh
exec ssh -F none -i $tmp/ssh/id -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$tmp/ssh/known_hosts -o LogLevel=ERROR -o ConnectTimeout=20 "\$@"
EOF
chmod 755 "$tmp/ssh-wrap"
for i in 1 2 3; do
    ns=${nodes[$((i - 1))]}
    ip netns exec "$ns" unshare --uts --mount --propagation private sh -c "
        hostname lss$i && mount -t tmpfs -o mode=755 lss-run /run && mkdir -p /run/sshd &&
        exec /usr/sbin/sshd -D -e -f $tmp/ssh/sshd_config" >"$tmp/sshd-$i.log" 2>&1 &
    pids+=($!)
done
# run on lss1: its network, its hostname
on1=(ip netns exec "$n1" unshare --uts sh -c 'hostname lss1 && exec "$@"' sh)
for i in 2 3; do
    for _ in $(seq 1 30); do
        h=$("${on1[@]}" "$tmp/ssh-wrap" "lss$i" hostname 2>/dev/null) && break
        sleep 1
    done
    [ "${h:-}" = "lss$i" ] || fail "ssh lss1 -> lss$i failed: $(cat "$tmp/sshd-$i.log")"
done
echo "lss1 logs in to lss2 and lss3"

# ---------------------------------------------------------------- runs
bg_run() { # out cmd... (background, killable by the trap)
    local out=$1
    shift
    timeout 600 "$@" >"$out" 2>"$out.err" &
    local pid=$!
    pids+=("$pid")
    wait "$pid" || fail "$(basename "$out"): $(tail -5 "$out.err")"
    echo "(load average after the run: $(cut -d' ' -f1-3 /proc/loadavg))"
}
lss=("$here/lss-mpi" --nfs "$url" --images "$nimg" --dbs "$ndb")
say "sequential on lss1, cold cache, files over NFS"
bg_run "$tmp/seq.out" "${on1[@]}" "${lss[@]}" --sequential --cold --cache "$tmp/cache-seq-%h" \
    --out "$tmp/res-seq"
cat "$tmp/seq.out"
mpi=(mpirun --allow-run-as-root -np 3 --host lss1,lss2,lss3 --bind-to none
    -mca plm_rsh_agent "$tmp/ssh-wrap" -mca btl tcp,self
    -mca btl_tcp_if_include "$cidr" -mca oob_tcp_if_include "$cidr")
# shellcheck disable=SC2206
mpi+=(${MPI_EXTRA:-})
say "Open MPI over SSH: ${mpi[*]}"
say "parallel, cold caches"
bg_run "$tmp/par.out" "${on1[@]}" "${mpi[@]}" "${lss[@]}" --cold --cache "$tmp/cache-par-%h" \
    --out "$tmp/res-par"
cat "$tmp/par.out"
say "parallel, warm caches"
bg_run "$tmp/warm.out" "${on1[@]}" "${mpi[@]}" "${lss[@]}" --cache "$tmp/cache-par-%h" \
    --out "$tmp/res-warm"
cat "$tmp/warm.out"
ls -d "$tmp"/cache-par-* | sed 's/.*cache-par-/cache on /'

say "summary"
printf '%-6s %8s %8s %8s %8s %8s %12s %12s  %s\n' image seq_s par_s warm_s seq_cpu \
    warm_cpu seq_fetched par_fetched checksum
for k in $(seq 1 "$nimg"); do
    f() { jq -r "select(.image == $k) | .$2" "$1"; }
    s=$(f "$tmp/seq.out" checksum)
    [ "$s" = "$(f "$tmp/par.out" checksum)" ] && [ "$s" = "$(f "$tmp/warm.out" checksum)" ] ||
        fail "image $k: checksums differ"
    printf '%-6s %8s %8s %8s %8s %8s %12s %12s  %s\n' "$k" "$(f "$tmp/seq.out" seconds)" \
        "$(f "$tmp/par.out" seconds)" "$(f "$tmp/warm.out" seconds)" \
        "$(f "$tmp/seq.out" task_cpu_seconds)" "$(f "$tmp/warm.out" task_cpu_seconds)" \
        "$(f "$tmp/seq.out" fetched_bytes)" "$(f "$tmp/par.out" fetched_bytes)" "$s"
done
# every worker normally touched every database in the cold run (dynamic
# scheduling gives no guarantee for very small images): warn, do not fail
jq -se '[.[] | select(.image) | .fetched_bytes] | all(. == 0)' "$tmp/warm.out" >/dev/null ||
    echo "WARNING: the warm run fetched bytes (a worker saw a database first now)"
say "PASS (checksums equal: sequential = parallel cold = parallel warm)"
