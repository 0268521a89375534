# shellcheck shell=bash
# lib.sh - shared helpers for the ipfsfs benchmarks. Source it, never run it.
#
# The benchmarks are measurements, not pass/fail tests: each script starts its own test node
# (Kubo, tests/node/start-node.sh), mounts ipfsfs in a temporary directory, measures ipfsfs and
# the direct RPC call (curl) on the same node in the same run, alternating them (A, B, A, B),
# prints the figures, the ratio and the target, and exits 0 (non-zero only when it could not
# measure). The EXIT trap unmounts, stops every process the script started
# (by pid) and removes the work directory.
#
# A script: bench_require; bench_init NAME; start_node; ...; bench_done.
#
# Environment (all optional):
#   IPFSFS_BIN       the binary (default: build/src/ipfsfs under the repo top, else src/ipfsfs)
#   IPFSFS_SRCDIR    the source tree (default: two levels above this file)
#   IPFSFS_NODE_DIR  where start-node.sh and kubo.sh live (default: tests/node)
#   IPFSFS_KUBO      a Kubo binary to use (see tests/node/kubo.sh); IPFS_ONLINE=1 starts the
#                    node online (swarm on loopback, no peers), as bench-kubo-mount.sh needs
#   BENCH_RESULTS    a file: each figure is also appended as one tab-separated line
#                    (bench, metric, ipfsfs, direct, ratio, target, verdict); bench-all.sh uses it
#   BENCH_TIMEOUT    seconds before the watchdog kills everything (default 600)
#   BENCH_KEEP=1     keep the work directory (its path is printed)
#   BENCH_QUIET_WAIT seconds to wait at the start for the machine to be idle (default 30)

set -u
set -o pipefail

BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IPFSFS_SRCDIR=${IPFSFS_SRCDIR:-$(cd "$BENCH_LIB_DIR/../.." && pwd)}
if [ -z "${IPFSFS_BIN:-}" ]; then
    if [ -x "$IPFSFS_SRCDIR/build/src/ipfsfs" ]; then
        IPFSFS_BIN=$IPFSFS_SRCDIR/build/src/ipfsfs
    else
        IPFSFS_BIN=$IPFSFS_SRCDIR/src/ipfsfs
    fi
fi
IPFSFS_NODE_DIR=${IPFSFS_NODE_DIR:-$IPFSFS_SRCDIR/tests/node}
export IPFSFS_BIN IPFSFS_SRCDIR IPFSFS_NODE_DIR

BENCH_NAME=bench
WORK=
FS_PID=
FS_MNT=
FS_ARGS=()
declare -a BENCH_PIDS=()
declare -a BENCH_MOUNTS=()

say() { printf '%s\n' "$*"; }
note() { printf '# %s\n' "$@"; }
die() {
    printf '%s: error: %s\n' "$BENCH_NAME" "$*" >&2
    exit 2
}

# show CMD [ARG...]: print the command line (shell-quoted, prefixed by "$ ") on the script's
# standard output (fd 3, so that redirecting the command's output does not capture it), then
# run it.
show() {
    local q
    q=$(printf '%q ' "$@")
    printf '$ %s\n' "${q% }" >&3
    "$@" 3>&-
}
# show_only CMD [ARG...]: print the command line as show does, without running it.
show_only() {
    local q
    q=$(printf '%q ' "$@")
    printf '$ %s\n' "${q% }" >&3
}
exec 3>&1

# ---- what a script needs ----------------------------------------------------------------------

# shellcheck disable=SC2120 # extra tools are optional arguments
bench_require() {
    local tool
    [ -x "$IPFSFS_BIN" ] || die "no binary at $IPFSFS_BIN (build it, or set IPFSFS_BIN)"
    [ "$(id -u)" -eq 0 ] || die "must run as root (drop_caches, /dev/fuse)"
    [ -c /dev/fuse ] || die "/dev/fuse is missing"
    for tool in fusermount3 mountpoint getfattr python3 curl timeout "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
    done
    [ -x "$IPFSFS_NODE_DIR/start-node.sh" ] || die "no $IPFSFS_NODE_DIR/start-node.sh"
    "$IPFSFS_NODE_DIR/kubo.sh" --find-only --quiet >/dev/null ||
        die "no Kubo binary: build the pinned one with $IPFSFS_NODE_DIR/kubo.sh (needs Go), or set IPFSFS_KUBO"
}

# ---- setup and teardown -----------------------------------------------------------------------

# bench_init NAME: work directory, traps, watchdog, and a header naming the machine.
bench_init() {
    BENCH_NAME=$1
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ipfsfs-bench.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    start_watchdog "${BENCH_TIMEOUT:-600}"
    say "== $BENCH_NAME: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    note "machine: $(nproc) cores, $(uname -sr), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    note "binary: $IPFSFS_BIN ($(stat -c '%y' "$IPFSFS_BIN" | cut -d. -f1); source $(git -C "$IPFSFS_SRCDIR" describe --always --dirty 2>/dev/null || echo unknown))"
    note "work directory: $WORK"
    note "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews the figures)"
    wait_quiet "${BENCH_QUIET_WAIT:-30}"
}

# If something hangs (a FUSE read that never returns), kill what we started and unmount lazily
# so that the hung calls fail and the script reaches its end.
start_watchdog() {
    local secs=$1 parent=$$
    (
        trap - EXIT INT
        sleep "$secs" &
        sleeper=$!
        trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
        wait "$sleeper"
        echo "$BENCH_NAME: WATCHDOG: $secs s elapsed; killing the filesystem and the benchmark" >&2
        if [ -f "$WORK/pids" ]; then
            while read -r p; do kill -9 "$p" 2>/dev/null; done <"$WORK/pids"
        fi
        if [ -f "$WORK/mounts" ]; then
            while read -r m; do fusermount3 -uz "$m" 2>/dev/null; done <"$WORK/mounts"
        fi
        sleep 3
        kill -TERM "$parent" 2>/dev/null
    ) </dev/null >/dev/null 2>&1 3>&- &
    WATCHDOG_PID=$!
}

track_pid() {
    BENCH_PIDS+=("$1")
    echo "$1" >>"$WORK/pids"
}

bench_cleanup() {
    local rc=$? m p
    set +e
    for m in "${BENCH_MOUNTS[@]}"; do
        if mountpoint -q "$m" 2>/dev/null; then
            fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
        fi
    done
    for p in "${BENCH_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${BENCH_PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$p" 2>/dev/null
    done
    [ -n "${WATCHDOG_PID:-}" ] && kill "$WATCHDOG_PID" 2>/dev/null
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "${BENCH_KEEP:-0}" = 1 ]; then
            note "kept the work directory: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}

bench_done() {
    note "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    say "== $BENCH_NAME: done"
}

# ---- numbers ----------------------------------------------------------------------------------

now_ns() { date +%s%N; }
# secs_since T0_NS: seconds since T0 (nanoseconds from now_ns), 4 decimals
secs_since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.4f", (b - a) / 1e9 }'; }
# calc EXPR: awk arithmetic, printed with %.3f unless FMT is given as $2
calc() { awk "BEGIN { printf \"${2:-%.3f}\", $1 }"; }
# mbps BYTES SECS: decimal MB/s (10^6 bytes), as curl and dd report
mbps() { calc "$1 / $2 / 1e6" "%.1f"; }
# ge A B: true if the number A >= B
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
# median N...: the median of the numbers
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# to_bytes SIZE: 256M -> 268435456 (K, M, G suffixes, powers of 1024)
to_bytes() {
    local s=$1
    case $s in
    *K) echo $((${s%K} * 1024)) ;;
    *M) echo $((${s%M} * 1024 * 1024)) ;;
    *G) echo $((${s%G} * 1024 * 1024 * 1024)) ;;
    *) echo "$s" ;;
    esac
}

# timed VAR CMD [ARG...]: print the command line, run it, set VAR to the seconds it took.
# The command's status is returned; stdout/stderr are left alone (redirect inside CMD with sh -c
# or send them yourself).
timed() {
    local var=$1 t0 rc
    shift
    t0=$(now_ns)
    show "$@"
    rc=$?
    printf -v "$var" '%s' "$(secs_since "$t0")"
    return "$rc"
}

# record METRIC IPFSFS DIRECT RATIO TARGET VERDICT: one result line (printed, and appended to
# $BENCH_RESULTS). Use "-" for what does not apply.
record() {
    printf 'RESULT %-28s ipfsfs=%-12s direct=%-12s ratio=%-8s target: %-22s %s\n' "$1" "$2" "$3" "$4" "$5" "$6"
    if [ -n "${BENCH_RESULTS:-}" ]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$BENCH_NAME" "$1" "$2" "$3" "$4" "$5" "$6" >>"$BENCH_RESULTS"
    fi
}

# verdict COND: "met" or "MISSED" for an awk condition such as "0.95 >= 0.9"
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }

# busy_jiffies: CPU time (all CPUs, in clock ticks) spent not idle since boot
busy_jiffies() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# wait_quiet SECS: wait (up to SECS) until the other work on the machine keeps less than half a
# CPU busy over one second; print what was seen. The benchmarks share the machine with whatever
# else runs: a busy machine skews every figure, mostly the node's (it needs one full core).
wait_quiet() {
    local deadline j0 busy
    deadline=$(($(date +%s) + $1))
    while :; do
        j0=$(busy_jiffies)
        sleep 1
        busy=$(calc "($(busy_jiffies) - $j0) / $(getconf CLK_TCK)" %.2f)
        if ge 0.5 "$busy" || [ "$(date +%s)" -ge "$deadline" ]; then
            break
        fi
    done
    note "CPUs busy with other work before starting: $busy of $(nproc)"
}

# ---- caches -----------------------------------------------------------------------------------

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# ---- the test node ----------------------------------------------------------------------------

# start_node: start a test node (Kubo) with its repo in $WORK/node; sets NODE_API (multiaddr),
# NODE_URL (http://127.0.0.1:PORT/api/v0), NODE_PORT, NODE_PID, NODE_BIN (the ipfs binary),
# NODE_REPO (its IPFS_PATH) and NODE_VERSION.
start_node() {
    local out
    show "$IPFSFS_NODE_DIR/start-node.sh" "$WORK/node" >"$WORK/node.out" || {
        cat "$WORK/node.out"
        die "the test node did not start"
    }
    out=$(cat "$WORK/node.out")
    NODE_API=$(sed -n 's/^IPFS_API=//p' <<<"$out")
    NODE_PID=$(sed -n 's/^IPFS_PID=//p' <<<"$out")
    NODE_BIN=$(sed -n 's/^IPFS_BIN=//p' <<<"$out")
    NODE_GATEWAY=$(sed -n 's/^IPFS_GATEWAY=//p' <<<"$out")
    NODE_REPO=$WORK/node
    [ -n "$NODE_PID" ] || die "start-node.sh printed no pid"
    track_pid "$NODE_PID"
    NODE_PORT=$(sed -n 's#^/ip4/127.0.0.1/tcp/\([0-9]*\).*#\1#p' <<<"$NODE_API")
    NODE_URL=http://127.0.0.1:$NODE_PORT/api/v0
    NODE_VERSION=$(curl -s -X POST -m 10 "$NODE_URL/version" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Version"])' 2>/dev/null)
    note "node: Kubo ${NODE_VERSION:-?} ($NODE_BIN), $NODE_API (pid $NODE_PID), RPC $NODE_URL"
    export NODE_API NODE_URL NODE_PORT NODE_PID NODE_BIN NODE_REPO NODE_VERSION NODE_GATEWAY
}

# gen_file PATH SIZE: SIZE (bytes or K/M/G) random bytes, quickly (from /dev/urandom).
gen_file() {
    local n
    n=$(to_bytes "$2")
    head -c "$n" /dev/urandom >"$1" || die "could not write $1"
}

# add_file FILE: add FILE (pinned) through the RPC API; print its CID. The time it took is left
# in ADD_SECS (in the caller's shell only when called without $(...); use add_file_to).
# add_file_to VAR FILE: the same, setting VAR to the CID and ADD_SECS to the seconds.
add_file_to() {
    local var=$1 file=$2 t0 cid
    t0=$(now_ns)
    show curl -s -X POST -m 600 -F "file=@$file;filename=data" "$NODE_URL/add?pin=true" >"$WORK/add.out" ||
        die "add of $file failed"
    ADD_SECS=$(secs_since "$t0")
    cid=$(tail -n 1 "$WORK/add.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Hash"])') ||
        die "add of $file: no hash in $(tail -c 300 "$WORK/add.out")"
    printf -v "$var" '%s' "$cid"
    note "added $(stat -c %s "$file") bytes in $ADD_SECS s: $cid"
}

# ---- mounting ---------------------------------------------------------------------------------

# mount_fs MNT [ARG...]: mount ipfsfs (in the foreground, -f, as our child so its pid is known:
# FS_PID) with --api=$NODE_API (unless BENCH_NO_API=1: a gateway mount) and ARGs; waits up
# to 20 s for the mount.
mount_fs() {
    local mnt=$1 log
    shift
    FS_MNT=$mnt
    FS_ARGS=("$@")
    [ "${BENCH_NO_API:-0}" = 1 ] || set -- --api="$NODE_API" "$@"
    mkdir -p "$mnt"
    log=$WORK/ipfsfs.log
    show_only "$IPFSFS_BIN" "$@" -f "$mnt"
    "$IPFSFS_BIN" "$@" -f "$mnt" >>"$log" 2>&1 </dev/null 3>&- &
    FS_PID=$!
    track_pid "$FS_PID"
    if [ "${#BENCH_MOUNTS[@]}" -eq 0 ] || [ "${BENCH_MOUNTS[-1]}" != "$mnt" ]; then
        BENCH_MOUNTS+=("$mnt")
        echo "$mnt" >>"$WORK/mounts"
    fi
    for _ in $(seq 1 100); do
        if mountpoint -q "$mnt"; then
            return 0
        fi
        kill -0 "$FS_PID" 2>/dev/null || break
        sleep 0.2
    done
    sed 's/^/#   /' "$log"
    die "ipfsfs did not mount $mnt"
}

# unmount_fs: unmount $FS_MNT and wait for the process to exit.
unmount_fs() {
    [ -n "$FS_MNT" ] || return 0
    for _ in $(seq 1 25); do
        fusermount3 -u "$FS_MNT" 2>/dev/null && break
        mountpoint -q "$FS_MNT" || break
        sleep 0.2
    done
    mountpoint -q "$FS_MNT" && fusermount3 -uz "$FS_MNT" 2>/dev/null
    if [ -n "$FS_PID" ]; then
        for _ in $(seq 1 100); do
            kill -0 "$FS_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$FS_PID" 2>/dev/null
        wait "$FS_PID" 2>/dev/null
    fi
    FS_PID=
}

# remount_cold: unmount, drop the kernel's caches, mount again with the same arguments, so that
# neither the page cache nor ipfsfs's own chunk cache holds anything.
remount_cold() {
    local mnt=$FS_MNT
    local args=("${FS_ARGS[@]}")
    unmount_fs
    drop_caches
    mount_fs "$mnt" "${args[@]}"
}

# print_stats: the mount's statistics (getfattr), one "key value" line each, indented.
print_stats() {
    note "ipfsfs statistics (getfattr --only-values -n user.ipfsfs.stats $FS_MNT):"
    getfattr --absolute-names --only-values -n user.ipfsfs.stats "$FS_MNT" 2>&1 | sed 's/^/#   /'
}

# stat_value KEY: one value from the statistics ("" if absent)
stat_value() {
    getfattr --absolute-names --only-values -n user.ipfsfs.stats "$FS_MNT" 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'
}

# proc_kb PID FIELD: a /proc/PID/status field in kB (VmRSS, VmHWM, ...)
proc_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null; }

# cpu_secs PID: user+system CPU seconds the process (all its threads) used so far
cpu_secs() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null
}
