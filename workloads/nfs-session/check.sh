#!/bin/bash
# check.sh - nfs-session end to end against a real nfs-ganesha (run as root).
#
# One network namespace, wow-nfsdev<pid>-srv, with only `lo` (nothing can
# leave it): rpcbind + nfs-ganesha (NFSv3/TCP, FSAL VFS, the configuration of
# experiments/src/cluster/nfs.rs) with a private /run, exporting a folder of a
# mktemp -d directory, and nfs-session as the client on 127.0.0.1.
#   run 1: 5 s undisturbed: "verified N of N", N >= 40, file N*64 bytes.
#   run 2: 10 s; 2 s in, TCP port 2049 is dropped (iptables INPUT) for 3 s:
#          every record still verified, max_write_s >= 2.
# Environment: KEEP=1 keeps the temp dir; BLOCK_S=3 (seconds the port is
# blocked in run 2), RUN2_S=10 (length of run 2), HOW=drop (iptables -j DROP:
# the connection stalls), HOW=reset (-j REJECT --reject-with tcp-reset: the
# client's next segment is answered with a RST) or HOW=kill (DROP, and the
# client's connection is destroyed with `ss -K`: it reconnects while the
# network is still down).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../ganesha.sh
. "$here/../ganesha.sh"
ns="wow-nfsdev$$-srv"
tmp=""
pids=()
made_ns=""

cleanup() {
    local rc=$?
    set +e
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    sleep 1
    if [ -n "$made_ns" ]; then
        # anything still running in our namespace was started by this script
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    fi
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    if [ -n "$made_ns" ]; then
        ip netns del "$ns" 2>/dev/null
        if ip netns list | grep -qw "$ns"; then
            echo "WARNING: namespace $ns still exists" >&2
            rc=1
        fi
    fi
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
for c in ganesha.nfsd rpcbind nfs-ls iptables ip unshare; do
    command -v "$c" >/dev/null || fail "$c not found"
done
make -s -C "$here" >/dev/null
bin="$here/nfs-session"

tmp=$(mktemp -d /tmp/nfs-session.XXXXXX)
chmod 755 "$tmp"
mkdir "$tmp/export"

say "namespace $ns (lo only)"
ip netns add "$ns"
made_ns=1
ip -n "$ns" link set lo up
# (background jobs call `ip netns exec` directly, not through this function:
# ip execs the command, so $! is the daemon's own PID, not a subshell's)
in_ns() { ip netns exec "$ns" "$@"; }

say "NFS server: rpcbind + nfs-ganesha in $ns"
# the configuration experiments/src/cluster/nfs.rs writes (config())
ganesha_start "$ns" "$tmp" nfsdev-run
pids+=("$GANESHA_PID")
base="nfs://127.0.0.1$tmp/export"
for _ in $(seq 1 90); do
    if in_ns nfs-ls "$base/" >"$tmp/nfs-ls.out" 2>&1; then break; fi
    sleep 1
done
[ -s "$tmp/rpcbind.pid" ] && pids+=("$(cat "$tmp/rpcbind.pid")")
in_ns nfs-ls "$base/" >/dev/null 2>&1 ||
    fail "export not listable: $(cat "$tmp/nfs-ls.out"); $(tail -3 "$tmp/ganesha.log" 2>/dev/null)"
# the PIDs the trap kills are the daemons themselves
[ "$(cat /proc/"${pids[0]}"/comm 2>/dev/null)" = ganesha.nfsd ] || fail "PID ${pids[0]} is not ganesha.nfsd"
[ "$(cat /proc/"${pids[1]:-0}"/comm 2>/dev/null)" = rpcbind ] || fail "PID ${pids[1]:-?} is not rpcbind"
echo "listening (inside $ns only):"
in_ns ss -Hltn | awk '{print "  " $4}' | sort -u | tr '\n' ' '
echo

# run NAME SECONDS: nfs-session in the namespace, in the background (PID in $sess)
start_session() {
    local name=$1 seconds=$2
    ip netns exec "$ns" "$bin" --url "$base/session.log" --seconds "$seconds" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    sess=$!
    pids+=("$sess")
    sleep 0.2
    [ "$(cat /proc/$sess/comm 2>/dev/null)" = nfs-session ] || fail "PID $sess is not nfs-session"
}
# check NAME: exit 0, "verified N of N", file on the server's disk N*64 bytes; sets $n
check_run() {
    local name=$1 out="$tmp/$1.out"
    grep -E '^(verified|retries|max_write_s) ' "$out" | sed 's/^/  /'
    local v
    v=$(grep '^verified ' "$out") || fail "$name: no verified line; stderr: $(tail -5 "$tmp/$name.err")"
    n=$(echo "$v" | awk '{print $4}')
    [ "$(echo "$v" | awk '{print $2}')" = "$n" ] || fail "$name: $v"
    [ "$(grep -c '^write ' "$out")" = "$n" ] || fail "$name: write lines != $n"
    local size
    size=$(stat -c %s "$tmp/export/session.log")
    [ "$size" = $((n * 64)) ] || fail "$name: file is $size bytes, want $((n * 64))"
    echo "  file on the server's disk: $size bytes = $n x 64"
}

say "run 1: 5 s, undisturbed"
# a longer file first: nfs-session must truncate it
head -c 100000 /dev/zero | tr '\0' 'x' >"$tmp/export/session.log"
start_session run1 5
wait "$sess" || fail "run 1 exited $?: $(tail -5 "$tmp/run1.err")"
check_run run1
[ "$n" -ge 40 ] || fail "run 1: only $n records"
[ -s "$tmp/run1.err" ] && { echo "  stderr:"; sed 's/^/    /' "$tmp/run1.err"; }

block_s=${BLOCK_S:-3}
run2_s=${RUN2_S:-10}
case "${HOW:-drop}" in
drop) rule=(-p tcp --dport 2049 -j DROP) ;;
reset) rule=(-p tcp --dport 2049 -j REJECT --reject-with tcp-reset) ;;
kill) rule=(-p tcp --dport 2049 -j DROP) ;;
*) fail "HOW=${HOW}: want drop, reset or kill" ;;
esac
say "run 2: ${run2_s} s, TCP port 2049 blocked (${rule[*]}) from 2 s for ${block_s} s"
start_session run2 "$run2_s"
sleep 1.8 # +0.2 in start_session
in_ns iptables -I INPUT "${rule[@]}"
t_block=$(date +%s.%N)
echo "  $(printf '%.6f' "$t_block") port 2049 blocked"
if [ "${HOW:-drop}" = kill ]; then
    in_ns ss -K -Htn dst 127.0.0.1 dport = 2049 | awk '{print "  destroyed " $4 " -> " $5}'
fi
sleep "$block_s"
in_ns iptables -D INPUT "${rule[@]}"
t_open=$(date +%s.%N)
echo "  $(printf '%.6f' "$t_open") port 2049 open again"
wait "$sess" || fail "run 2 exited $?: $(tail -5 "$tmp/run2.err")"
check_run run2
max=$(awk '/^max_write_s /{print $2}' "$tmp/run2.out")
awk -v m="$max" 'BEGIN{exit !(m >= 2)}' || fail "run 2: max_write_s $max < 2"
# the longest write, and when it ended relative to the port opening again
awk -v b="$t_block" -v o="$t_open" '
    /^write / { d = $4 - $3; if (d > best) { best = d; line = $0; e = $4 } }
    END { printf "  longest: %s (%.3f s), ended %.3f s after the port opened again\n",
                 line, best, e - o }' "$tmp/run2.out"
awk -v o="$t_open" '/^write / && $4 > o { k++ } END { print "  records completed after the port opened: " k+0 }' \
    "$tmp/run2.out"
if [ -s "$tmp/run2.err" ]; then echo "  stderr:"; sed 's/^/    /' "$tmp/run2.err"; else echo "  stderr: (empty: no call failed)"; fi

say "PASS"
