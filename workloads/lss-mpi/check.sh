#!/bin/bash
# check.sh - self-test of the LSS stand-in (run as root: it creates one network
# namespace, lsh-$$, with only a loopback interface, for Open MPI's traffic).
#  1. tiny data set: --sequential vs mpirun -np 3 (over TCP on the namespace's
#     loopback): per-image checksums equal; cold run: image 1 fetches the
#     databases, image 2 fetches no database bytes (only its own image file);
#     a second run on the same cache fetches 0 bytes for every image; the
#     fitted parameters match the generator's truth; a corrupted database is
#     rejected with its name and a non-zero exit, without hanging; files of two
#     data sets are not mixed.
#  2. medium data set: sequential vs -np 3 (master + 2 workers) times.
# Environment: KEEP=1 keeps the temp dir; MEDIUM="lssgen options" overrides the
# medium data set; SKIP_MEDIUM=1 skips part 2.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ns="lsh-$$"
tmp=""
pids=()
ns_made=0

cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [ "$ns_made" = 1 ]; then ip netns del "$ns" 2>/dev/null || true; fi
    if [ -n "$tmp" ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$tmp"; fi
    [ -n "$tmp" ] && [ "${KEEP:-0}" = 1 ] && echo "kept $tmp"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
say() { echo "== $*"; }

[ "$(id -u)" = 0 ] || fail "run as root (needs ip netns)"
command -v mpirun >/dev/null || fail "mpirun not found"
[ -x "$here/lssgen" ] && [ -x "$here/lss-mpi" ] || make -C "$here" >/dev/null
gen="$here/lssgen"
lss="$here/lss-mpi"

tmp=$(mktemp -d /tmp/lss-check.XXXXXX)
ip netns add "$ns"
ns_made=1
ip netns exec "$ns" ip link set lo up

# run a command in the background (so the trap can kill it by PID), wait for it
run() {
    local out=$1 limit=$2
    shift 2
    timeout "$limit" "$@" >"$out" 2>"$out.err" &
    local pid=$!
    pids+=("$pid")
    local rc=0
    wait "$pid" || rc=$?
    pids=("${pids[@]/$pid/}")
    return $rc
}

seq_run() { # out data cache images...
    local out=$1 data=$2 cache=$3
    shift 3
    run "$out" 600 "$lss" --sequential --data "$data" --cache "$cache" \
        --out "$tmp/res-$(basename "$out")" "$@"
}

par_run() { # out np data cache images...
    local out=$1 np=$2 data=$3 cache=$4
    shift 4
    run "$out" 600 ip netns exec "$ns" mpirun --allow-run-as-root -np "$np" \
        --host "localhost:$np" --oversubscribe \
        -mca btl tcp,self -mca btl_tcp_if_include 127.0.0.0/8 \
        -mca oob_tcp_if_include 127.0.0.0/8 \
        "$lss" --data "$data" --cache "$cache" --out "$tmp/res-$(basename "$out")" "$@"
}

field() { # file image field -> value
    jq -r "select(.image == $2) | .$3" "$1"
}

# ---------------------------------------------------------------- 1. tiny
say "tiny data set"
"$gen" --out "$tmp/tiny" --seed 7 --db-mb 1 --width 12 --height 10 --bins 100 \
    --images 3 >"$tmp/tiny.json"
dbsize=$(stat -c %s "$tmp/tiny/db-1.lssdb")
imgsize=$(stat -c %s "$tmp/tiny/image-2.lssimg")

seq_run "$tmp/seq.out" "$tmp/tiny" "$tmp/cache-seq" --images 3 ||
    fail "sequential run: $(cat "$tmp/seq.out.err")"
par_run "$tmp/par.out" 3 "$tmp/tiny" "$tmp/cache-par" --images 3 ||
    fail "parallel run: $(cat "$tmp/par.out.err")"
par_run "$tmp/warm.out" 3 "$tmp/tiny" "$tmp/cache-par" --images 3 ||
    fail "warm parallel run: $(cat "$tmp/warm.out.err")"

for k in 1 2 3; do
    s=$(field "$tmp/seq.out" $k checksum)
    p=$(field "$tmp/par.out" $k checksum)
    w=$(field "$tmp/warm.out" $k checksum)
    [ -n "$s" ] && [ "$s" = "$p" ] && [ "$s" = "$w" ] ||
        fail "image $k checksums differ: sequential $s, parallel $p, warm $w"
    echo "image $k checksum $s (sequential = parallel = warm parallel)"
done
f1=$(field "$tmp/par.out" 1 fetched_db_bytes)
[ "$f1" -ge $((4 * dbsize)) ] || fail "cold image 1 fetched only $f1 database bytes"
f2=$(field "$tmp/par.out" 2 fetched_bytes)
d2=$(field "$tmp/par.out" 2 fetched_db_bytes)
[ "$d2" = 0 ] || fail "image 2 fetched $d2 database bytes (cache not warm)"
[ "$f2" = "$imgsize" ] || fail "image 2 fetched $f2 bytes, expected its image only ($imgsize)"
echo "cold run: image 1 fetched $f1 database bytes; image 2 fetched $f2 bytes (its image), 0 database bytes"
for k in 1 2 3; do
    w=$(field "$tmp/warm.out" $k fetched_bytes)
    [ "$w" = 0 ] || fail "warm run: image $k fetched $w bytes"
done
echo "warm run: 0 bytes fetched for every image"
jq -e 'select(.ranks) | .ranks == 3' "$tmp/par.out" >/dev/null || fail "final line"

# fitted parameters against the generator's truth
for k in 1 2 3; do
    awk -v k=$k 'FNR==NR { if (!/^#/) t[$1" "$2]=$3" "$4; next }
         /^px/ { n++; if (t[$2" "$3] == $4" "$5) ok++ }
         END { printf "image %d: %d/%d pixels fitted to the true entry\n", k, ok, n;
               exit !(n > 0 && ok >= 0.9 * n) }' \
        "$tmp/tiny/image-$k.truth" "$tmp/res-par.out/image-$k.result" ||
        fail "image $k: fit does not recover the truth"
done

# malformed input: one flipped byte in a database
mkdir "$tmp/bad"
cp "$tmp/tiny"/* "$tmp/bad/"
printf 'X' | dd of="$tmp/bad/db-2.lssdb" bs=1 seek=3000 conv=notrunc status=none
rc=0
par_run "$tmp/bad.out" 3 "$tmp/bad" "$tmp/cache-bad" --images 1 || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "corrupt database: exit $rc (want error, no hang)"
grep -q 'db-2.lssdb: malformed database file.*hash mismatch' "$tmp/bad.out.err" ||
    fail "corrupt database: no clear message"
echo "corrupt db-2.lssdb rejected: $(grep -m1 'lss-mpi: rank' "$tmp/bad.out.err")"

# files of two data sets mixed (e.g. a stale cache): refused
"$gen" --out "$tmp/other" --seed 8 --db-mb 1 --width 12 --height 10 --bins 100 \
    --images 1 >/dev/null
mkdir "$tmp/mixed"
cp "$tmp/tiny"/db-* "$tmp/other/image-1.lssimg" "$tmp/mixed/"
rc=0
seq_run "$tmp/mixed.out" "$tmp/mixed" "$tmp/cache-mixed" --images 1 || rc=$?
[ "$rc" != 0 ] && grep -q 'belongs to data set' "$tmp/mixed.out.err" ||
    fail "mixed data sets not refused (exit $rc)"
echo "mixed data sets refused: $(grep -m1 'lss-mpi: rank' "$tmp/mixed.out.err")"

# ---------------------------------------------------------------- 2. medium
if [ "${SKIP_MEDIUM:-0}" = 1 ]; then
    say "PASS (medium timing skipped)"
    exit 0
fi
say "medium data set (timings are wall-clock on a shared 2-core machine: noisy)"
# shellcheck disable=SC2086
"$gen" --out "$tmp/med" --seed 11 ${MEDIUM:---db-mb 8 --width 32 --height 24 --images 3} \
    | tee "$tmp/med.json"
nimg=$(jq -r .images "$tmp/med.json")
seq_run "$tmp/mseq.out" "$tmp/med" "$tmp/cache-mseq" --images "$nimg" ||
    fail "medium sequential: $(cat "$tmp/mseq.out.err")"
echo "load average after the sequential run: $(cut -d' ' -f1-3 /proc/loadavg)"
par_run "$tmp/mpar.out" 3 "$tmp/med" "$tmp/cache-mpar" --images "$nimg" ||
    fail "medium parallel: $(cat "$tmp/mpar.out.err")"
echo "load average after the parallel run: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %10s %10s %9s %12s %12s  %s\n' image "seq s" "np=3 s" speedup "seq cpu s" \
    "np=3 cpu s" checksum
for k in $(seq 1 "$nimg"); do
    s=$(field "$tmp/mseq.out" $k checksum)
    p=$(field "$tmp/mpar.out" $k checksum)
    [ "$s" = "$p" ] || fail "medium image $k checksums differ: $s vs $p"
    ts=$(field "$tmp/mseq.out" $k seconds)
    tp=$(field "$tmp/mpar.out" $k seconds)
    printf '%-6s %10s %10s %9s %12s %12s  %s\n' "$k" "$ts" "$tp" \
        "$(awk -v a="$ts" -v b="$tp" 'BEGIN{printf "%.2f", a/b}')" \
        "$(field "$tmp/mseq.out" $k task_cpu_seconds)" \
        "$(field "$tmp/mpar.out" $k task_cpu_seconds)" "$s"
done
warm='[.[] | select(.image and .image > 1) | .seconds] | add'
ws=$(jq -s "$warm" "$tmp/mseq.out" | awk '{printf "%.2f", $1}')
wp=$(jq -s "$warm" "$tmp/mpar.out" | awk '{printf "%.2f", $1}')
sp=$(awk -v a="$ws" -v b="$wp" 'BEGIN{printf "%.2f", a/b}')
echo "images 2..$nimg (warm): sequential ${ws}s, np=3 ${wp}s, speedup $sp"
if awk -v s="$sp" 'BEGIN{exit !(s < 1.3)}'; then
    echo "WARNING: speedup $sp < 1.3 (machine busy? 2 workers on 2 shared cores)"
fi
say "PASS"
