#!/usr/bin/env bash
# Self-test of the PVM fastDNAml workload (run as root; needs pvm, pvm-dev,
# fastdnaml, a C compiler, iproute2, util-linux; --two-hosts also needs
# openssh-server and openssh-client).
#
#   check.sh                 equality check (10 taxa x 300 sites, --local vs
#                            --workers 2 in one namespace) and the medium
#                            timing (30 x 1000, --local vs --workers 2)
#   check.sh --no-timing     equality check only
#   check.sh --default       also time the default data set (50 x 2000, seed 7:
#                            about 4 min sequential on the 2-core test machine)
#   check.sh --two-hosts     also two namespaces joined by a veth pair, sshd on
#                            the second, pvmd on the first adding the second over
#                            ssh; workers on both hosts
#
# Everything it creates is under one temporary directory and namespaces named
# fdh-<pid>-*; a trap halts PVM, kills the processes it started (by PID) and
# deletes the namespaces on exit or failure.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ID=$$
TIMING=1
DEFAULT=0
TWO=0
for a in "$@"; do
    case "$a" in
    --no-timing) TIMING=0 ;;
    --default) DEFAULT=1 ;;
    --two-hosts) TWO=1 ;;
    -h | --help)
        sed -n '2,20p' "$0"
        exit 0
        ;;
    *)
        echo "check.sh: unknown option $a" >&2
        exit 2
        ;;
    esac
done

[ "$(id -u)" = 0 ] || { echo "check.sh: must run as root (namespaces)" >&2; exit 2; }
for c in ip nsenter unshare pvmd pvm fastDNAml cc make awk; do
    command -v "$c" >/dev/null || { echo "check.sh: missing command $c" >&2; exit 2; }
done
if [ $TWO = 1 ]; then
    for c in /usr/sbin/sshd ssh ssh-keygen; do
        command -v "$c" >/dev/null || { echo "check.sh: --two-hosts needs $c (openssh-server/-client)" >&2; exit 2; }
    done
fi

WORK=$(mktemp -d "/tmp/fdh-$ID-XXXXXX")
PREFIX=$WORK/prefix
BIN=$PREFIX/bin
NSS=()   # namespaces we created
PIDS=()  # processes we started
PVMS=()  # "ns|name|hosts|tmp|pid" of each master pvmd we started
FAILED=0
export PVM_ROOT=/usr/lib/pvm3 PVM_ALLOW_ROOT=1

log() { printf '[check] %s\n' "$*" >&2; }
fail() {
    printf '[check] FAIL: %s\n' "$*" >&2
    FAILED=1
    exit 1
}

# run a command "on an emulated host": inside network namespace $1, in its own
# UTS namespace with hostname $2, its own /etc/hosts (bind-mounted from $3)
# and a private /run.  host_exec replaces the calling (sub)shell: nsenter,
# unshare and sh all exec, so the process ends up being the command itself.
host_exec() {
    local ns=$1 name=$2 hosts=$3
    shift 3
    exec nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation private /bin/sh -c '
        hostname "$1" && mount --bind "$2" /etc/hosts &&
        mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/sshd || exit 111
        shift 2
        exec "$@"' sh "$name" "$hosts" "$@"
}
# in the foreground
on_host() { (host_exec "$@"); }
# in the background: BG_PID is the command's own pid
on_host_bg() {
    (host_exec "$@") &
    BG_PID=$!
}

alive() { kill -0 "$1" 2>/dev/null; }

# stop a pid we started: TERM, wait up to 5 s, then KILL
stop_pid() {
    local p=$1 i
    alive "$p" || return 0
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 50); do
        alive "$p" || return 0
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
}

halt_pvm() { # ns name hosts tmp pid
    local ns=$1 name=$2 hosts=$3 tmp=$4 pid=$5 i
    if alive "$pid"; then
        echo halt | on_host "$ns" "$name" "$hosts" env PVM_TMP="$tmp" pvm >/dev/null 2>&1 || true
        for i in $(seq 50); do
            alive "$pid" || break
            sleep 0.1
        done
    fi
    stop_pid "$pid"
}

cleanup() {
    local rc=$? e ns p
    set +e
    trap - EXIT INT TERM
    for e in "${PVMS[@]}"; do
        IFS='|' read -r a b c d p <<<"$e"
        halt_pvm "$a" "$b" "$c" "$d" "$p"
    done
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    for ns in "${NSS[@]}"; do
        # anything still running in a namespace we created was started by us
        # (e.g. a pvmd that the master pvmd started over ssh)
        for p in $(ip netns pids "$ns" 2>/dev/null); do
            log "stopping pid $p ($(ps -o comm= -p "$p")) left in $ns"
            stop_pid "$p"
        done
        ip netns del "$ns" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [ $FAILED = 1 ] || [ $rc != 0 ]; then
        log "logs kept in $WORK.failed"
        rm -rf "$WORK.failed"
        mv "$WORK" "$WORK.failed" 2>/dev/null
        # keep only the logs
        rm -rf "$WORK.failed/prefix" "$WORK.failed"/*/tmp "$WORK.failed"/sshd "$WORK.failed"/ssh
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

jget() { # key file: a number or string field of the one-line JSON
    sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\)\"\{0,1\}[,}].*/\1/p" "$2"
}
jtree() { sed -n 's/.*"tree":"\([^"]*\)".*/\1/p' "$1"; }

# start a master pvmd with hostfile $5 on host ($1 ns, $2 name, $3 hosts, $4 PVM_TMP);
# waits until the virtual machine has $6 hosts
start_pvmd() {
    local ns=$1 name=$2 hosts=$3 tmp=$4 hostfile=$5 want=$6 logf=$7 i n=0
    mkdir -p "$tmp"
    on_host_bg "$ns" "$name" "$hosts" env PVM_TMP="$tmp" ${PVM_RSH:+PVM_RSH=$PVM_RSH} \
        pvmd "$hostfile" </dev/null >"$logf" 2>&1
    local pid=$BG_PID
    PIDS+=("$pid")
    PVMS+=("$ns|$name|$hosts|$tmp|$pid")
    for i in $(seq 300); do
        alive "$pid" || { cat "$logf" "$tmp"/pvml.* >&2 2>/dev/null; fail "pvmd on $name exited"; }
        if [ -e "$tmp/pvmd.$(id -u)" ]; then
            n=$(echo conf | on_host "$ns" "$name" "$hosts" env PVM_TMP="$tmp" pvm 2>/dev/null |
                sed -n 's/^\([0-9][0-9]*\) host.*/\1/p' | head -1)
            [ "${n:-0}" -ge "$want" ] && break
        fi
        sleep 0.1
    done
    [ "${n:-0}" -ge "$want" ] || { cat "$logf" "$tmp"/pvml.* >&2 2>/dev/null; fail "virtual machine on $name has ${n:-0} of $want hosts"; }
    log "pvmd pid $pid ($(ps -o comm= -p "$pid")) on $name: virtual machine of $n host(s)"
    LAST_PVMD=$pid
}

# ---------------------------------------------------------------- build
log "building into $PREFIX"
make -s -C "$HERE" PREFIX="$PREFIX" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; fail "build"; }
if grep -q warning "$WORK/build.log"; then cat "$WORK/build.log" >&2; fail "compiler warnings"; fi

# ---------------------------------------------------------------- data
"$BIN/simalign" --taxa 10 --sites 300 --seed 7 >"$WORK/small.phy"
"$BIN/simalign" --taxa 10 --sites 300 --seed 7 | cmp -s - "$WORK/small.phy" || fail "simalign is not deterministic"
log "simalign: same seed gives identical output"

# ---------------------------------------------------------------- one namespace
NS=fdh-$ID-s
ip netns add "$NS"
NSS+=("$NS")
ip -n "$NS" link set lo up
H=$WORK/hs
mkdir -p "$H/tmp" "$H/wd"
printf '127.0.0.1\tlocalhost\n127.0.0.1\tfdhs\n' >"$H/hosts"
printf '* ep=%s wd=%s\nfdhs\n' "$BIN" "$H/wd" >"$H/hostfile"

log "small: --local"
"$BIN/fdpvm-master" --local --scratch "$WORK" "$WORK/small.phy" >"$WORK/small.local.json" 2>"$WORK/small.local.err" ||
    { cat "$WORK/small.local.err" >&2; fail "--local run"; }
start_pvmd "$NS" fdhs "$H/hosts" "$H/tmp" "$H/hostfile" 1 "$WORK/pvmd.s.log"
log "small: --workers 2 in namespace $NS"
on_host "$NS" fdhs "$H/hosts" env PVM_TMP="$H/tmp" "$BIN/fdpvm-master" --workers 2 --progress \
    "$WORK/small.phy" >"$WORK/small.pvm.json" 2>"$WORK/small.pvm.err" ||
    { cat "$WORK/small.pvm.err" >&2; fail "--workers 2 run"; }
L1=$(jget log_likelihood "$WORK/small.local.json")
L2=$(jget log_likelihood "$WORK/small.pvm.json")
T1=$(jtree "$WORK/small.local.json")
T2=$(jtree "$WORK/small.pvm.json")
log "local: lnL $L1  evaluations $(jget evaluations "$WORK/small.local.json")"
log "pvm:   lnL $L2  evaluations $(jget evaluations "$WORK/small.pvm.json")  per_host $(sed -n 's/.*"per_host":\({[^}]*}\).*/\1/p' "$WORK/small.pvm.json")"
[ -n "$L1" ] && [ "$L1" = "$L2" ] || fail "log likelihoods differ: $L1 vs $L2"
[ -n "$T1" ] && [ "$T1" = "$T2" ] || fail "trees differ:
  $T1
  $T2"
log "OK: --local and --workers 2 give the same log likelihood and tree"
[ -z "$(ls -A "$H/wd")" ] || fail "files left in the workers' wd: $(ls "$H/wd")"
left=$(find "$H/tmp" "$WORK" -maxdepth 1 \( -name 'fdpvm-w*' -o -name 'ev-*' \) | head -3)
[ -z "$left" ] || fail "scratch files left: $left"
log "OK: no scratch files left"

calibrate() {
    local t0 t1 t2
    t0=$(date +%s.%N)
    awk 'BEGIN{for(i=0;i<2e7;i++)x+=i*0.5}'
    t1=$(date +%s.%N)
    awk 'BEGIN{for(i=0;i<2e7;i++)x+=i*0.5}' &
    awk 'BEGIN{for(i=0;i<2e7;i++)x+=i*0.5}' &
    wait
    t2=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN{printf "%.2f", 2*(b-a)/(c-b)}'
}

timed_pair() { # label taxa sites seed
    local label=$1 f=$WORK/$1.phy
    "$BIN/simalign" --taxa "$2" --sites "$3" --seed "$4" >"$f"
    log "$label ($2 taxa x $3 sites, seed $4): --local ..."
    "$BIN/fdpvm-master" --local --scratch "$WORK" "$f" >"$WORK/$label.local.json" 2>"$WORK/$label.local.err" ||
        { cat "$WORK/$label.local.err" >&2; fail "$label --local"; }
    log "$label: --workers 2 ..."
    on_host "$NS" fdhs "$H/hosts" env PVM_TMP="$H/tmp" "$BIN/fdpvm-master" --workers 2 "$f" \
        >"$WORK/$label.pvm.json" 2>"$WORK/$label.pvm.err" || { cat "$WORK/$label.pvm.err" >&2; fail "$label --workers 2"; }
    local w1 w2 l1 l2 e2
    w1=$(jget wall_s "$WORK/$label.local.json")
    e2=$(jget eval_s "$WORK/$label.pvm.json")
    w2=$(jget wall_s "$WORK/$label.pvm.json")
    l1=$(jget log_likelihood "$WORK/$label.local.json")
    l2=$(jget log_likelihood "$WORK/$label.pvm.json")
    [ "$l1" = "$l2" ] && [ "$(jtree "$WORK/$label.local.json")" = "$(jtree "$WORK/$label.pvm.json")" ] ||
        fail "$label: results differ ($l1 vs $l2)"
    printf '%s: %s taxa x %s sites, %s evaluations, lnL %s (same tree)\n  --local     %8.1f s\n  --workers 2 %8.1f s (workers busy %.0f%% of the time)\n  speedup     %8.2f x\n' \
        "$label" "$2" "$3" "$(jget evaluations "$WORK/$label.local.json")" "$l1" "$w1" "$w2" \
        "$(awk -v e="$e2" -v w="$w2" 'BEGIN{print 100*e/(2*w)}')" \
        "$(awk -v a="$w1" -v b="$w2" 'BEGIN{print a/b}')"
}

if [ $TIMING = 1 ]; then
    # the CPU share of this machine varies: measure what two busy processes
    # get, before and after, as the ceiling for --workers 2
    printf 'cpu calibration before: two CPU-bound processes run %.2fx as fast as one\n' "$(calibrate)"
    timed_pair medium 30 1000 7
    if [ $DEFAULT = 1 ]; then timed_pair default 50 2000 7; fi
    printf 'cpu calibration after:  two CPU-bound processes run %.2fx as fast as one\n' "$(calibrate)"
fi
halt_pvm "$NS" fdhs "$H/hosts" "$H/tmp" "$LAST_PVMD"

# ---------------------------------------------------------------- two hosts over ssh
if [ $TWO = 1 ]; then
    NA=fdh-$ID-a
    NB=fdh-$ID-b
    ip netns add "$NA"
    NSS+=("$NA")
    ip netns add "$NB"
    NSS+=("$NB")
    VA=fdh${ID}a
    VB=fdh${ID}b
    # the pair is created inside a, its peer placed in b: nothing in the root namespace
    ip -n "$NA" link add "${VA:0:15}" type veth peer name "${VB:0:15}" netns "$NB"
    ip -n "$NA" link set lo up
    ip -n "$NB" link set lo up
    ip -n "$NA" addr add 198.18.200.1/24 dev "${VA:0:15}"
    ip -n "$NB" addr add 198.18.200.2/24 dev "${VB:0:15}"
    ip -n "$NA" link set "${VA:0:15}" up
    ip -n "$NB" link set "${VB:0:15}" up
    HA=$WORK/ha
    HB=$WORK/hb
    mkdir -p "$HA/tmp" "$HA/wd" "$HB/tmp" "$HB/wd" "$WORK/ssh" "$WORK/sshd"
    for h in "$HA" "$HB"; do
        printf '127.0.0.1\tlocalhost\n198.18.200.1\tfdha\n198.18.200.2\tfdhb\n' >"$h/hosts"
    done
    # sshd on b: temporary host key and client key, config in a temp dir
    ssh-keygen -q -t ed25519 -N '' -C fdh-host -f "$WORK/sshd/host_key"
    ssh-keygen -q -t ed25519 -N '' -C fdh-client -f "$WORK/ssh/id_ed25519"
    cp "$WORK/ssh/id_ed25519.pub" "$WORK/sshd/authorized_keys"
    printf 'fdhb,198.18.200.2 %s\n' "$(cut -d' ' -f1,2 "$WORK/sshd/host_key.pub")" >"$WORK/ssh/known_hosts"
    cat >"$WORK/sshd/sshd_config" <<EOF
ListenAddress 198.18.200.2
Port 22
HostKey $WORK/sshd/host_key
PidFile none
AuthorizedKeysFile $WORK/sshd/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
X11Forwarding no
AllowTcpForwarding no
EOF
    cat >"$WORK/ssh/config" <<EOF
Host *
    User root
    IdentityFile $WORK/ssh/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $WORK/ssh/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 10
    LogLevel ERROR
EOF
    # PVM_RSH must be one program: a wrapper adds our ssh options
    printf '#!/bin/sh\nexec ssh -F %s "$@"\n' "$WORK/ssh/config" >"$WORK/ssh/ssh-pvm"
    # the slave pvmd's environment (dx=): its own PVM_TMP, root allowed
    printf '#!/bin/sh\nexport PVM_ROOT=/usr/lib/pvm3 PVM_ALLOW_ROOT=1 PVM_TMP=%s\nexec /usr/bin/pvmd "$@"\n' "$HB/tmp" >"$HB/pvmd"
    chmod 755 "$WORK/ssh/ssh-pvm" "$HB/pvmd"
    on_host_bg "$NB" fdhb "$HB/hosts" /usr/sbin/sshd -D -e -f "$WORK/sshd/sshd_config" >"$WORK/sshd.log" 2>&1
    SSHD=$BG_PID
    PIDS+=("$SSHD")
    for i in $(seq 50); do
        on_host "$NA" fdha "$HA/hosts" "$WORK/ssh/ssh-pvm" fdhb hostname >"$WORK/ssh-test.out" 2>&1 && break
        alive "$SSHD" || { cat "$WORK/sshd.log" >&2; fail "sshd exited"; }
        sleep 0.2
    done
    [ "$(cat "$WORK/ssh-test.out")" = fdhb ] || { cat "$WORK/ssh-test.out" "$WORK/sshd.log" >&2; fail "ssh fdha -> fdhb"; }
    log "sshd pid $SSHD ($(ps -o comm= -p "$SSHD")) on fdhb (198.18.200.2): ssh from fdha works"
    cat >"$HA/hostfile" <<EOF
* ep=$BIN
fdha wd=$HA/wd
fdhb wd=$HB/wd dx=$HB/pvmd
EOF
    PVM_RSH=$WORK/ssh/ssh-pvm start_pvmd "$NA" fdha "$HA/hosts" "$HA/tmp" "$HA/hostfile" 2 "$WORK/pvmd.a.log"
    log "two hosts: --workers 2 (one per host)"
    on_host "$NA" fdha "$HA/hosts" env PVM_TMP="$HA/tmp" "$BIN/fdpvm-master" --workers 2 --progress \
        "$WORK/small.phy" >"$WORK/two.json" 2>"$WORK/two.err" || { cat "$WORK/two.err" >&2; fail "two-host run"; }
    L3=$(jget log_likelihood "$WORK/two.json")
    PH=$(sed -n 's/.*"per_host":\({[^}]*}\).*/\1/p' "$WORK/two.json")
    log "two hosts: lnL $L3 per_host $PH"
    [ "$L3" = "$L1" ] && [ "$(jtree "$WORK/two.json")" = "$T1" ] || fail "two-host result differs from --local"
    case "$PH" in *'"fdha":'*'"fdhb":'* | *'"fdhb":'*'"fdha":'*) ;; *) fail "workers did not run on both hosts: $PH" ;; esac
    log "OK: two hosts over ssh give the same result, workers ran on fdha and fdhb"
    halt_pvm "$NA" fdha "$HA/hosts" "$HA/tmp" "$LAST_PVMD"
fi

log "all checks passed"
