# shellcheck shell=bash
# lib.sh - shared helpers for the ipfsfs integration tests. Source it, never run it.
#
# A script sources this file, calls require_* for what it needs, then lib_init, then uses
# start_node / mount_ipfsfs / check*; it ends with `finish`, which prints the tally and exits
# 0 (all passed), 1 (some failed). The EXIT trap always unmounts, stops every process this run
# started (by pid) and removes the work directory.
#
# Output: one line per check, "ok - DESC" or "not ok - DESC" (details follow as "#" lines).
# Exit status (automake's protocol): 0 pass, 1 fail, 77 skip, 99 hard error.
#
# Environment (all optional):
#   IPFSFS_BIN       the binary under test (default: $abs_top_builddir/src/ipfsfs, else
#                    ../src/ipfsfs from the current directory, else $IPFSFS_SRCDIR/src/ipfsfs)
#   IPFSFS_SRCDIR    the source tree (default: two levels above this file)
#   IPFSFS_NODE_DIR  where start-node.sh and node_modules live (default: $IPFSFS_SRCDIR/tests/node)
#   IPFSFS_WRAPPER   a command prefix for the binary, e.g. "valgrind --error-exitcode=99 -q"
#   IPFSFS_KEEP=1    keep the work directory (its path is printed) for a post-mortem
#   IPFSFS_TEST_TIMEOUT  seconds before the watchdog kills everything (default 300)
#   IPFSFS_BACKEND   what the mount under test runs on: rpc (default: the test node's RPC API
#                    with --write-through: every change waits for the node), local (the node
#                    with the default local-first store: names and blocks local, synced in the
#                    background) or store (the embedded block store alone, --store=$STORE_DIR).
#                    Scripts that support several pass "${BACKEND_ARGS[@]}" to mount_ipfsfs.
#                    In rpc mode, mount_ipfsfs adds --write-through to a mount given --api and
#                    no --store (the suites written for it check the node right after close).

set -u
set -o pipefail

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IPFSFS_SRCDIR=${IPFSFS_SRCDIR:-$(cd "$LIB_DIR/../.." && pwd)}
if [ -z "${IPFSFS_BIN:-}" ]; then
    if [ -n "${abs_top_builddir:-}" ]; then
        IPFSFS_BIN=$abs_top_builddir/src/ipfsfs
    elif [ -x ../src/ipfsfs ]; then
        IPFSFS_BIN=$(cd ../src && pwd)/ipfsfs
    else
        IPFSFS_BIN=$IPFSFS_SRCDIR/src/ipfsfs
    fi
fi
IPFSFS_NODE_DIR=${IPFSFS_NODE_DIR:-$IPFSFS_SRCDIR/tests/node}
# Sanitizer builds: report everything, keep going long enough to print it, fail the exit status.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=86}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:exitcode=86}
export IPFSFS_BIN IPFSFS_SRCDIR IPFSFS_NODE_DIR
# The tests start python3 hundreds of times, and timed checks count its start-up. A pyenv shim
# costs ~0.6 s a start (seconds on a busy machine) where the system's python3 takes 0.07 s: put
# the system's first on PATH (a directory holding just that link).
if [ -x /usr/bin/python3 ] && [ "$(command -v python3)" != /usr/bin/python3 ]; then
    LIB_PYBIN=${TMPDIR:-/tmp}/ipfsfs-test-python.$(id -u)
    mkdir -p "$LIB_PYBIN" && ln -sfn /usr/bin/python3 "$LIB_PYBIN/python3" &&
        PATH=$LIB_PYBIN:$PATH
fi
IPFSFS_BACKEND=${IPFSFS_BACKEND:-rpc}
case $IPFSFS_BACKEND in
    rpc | local | store) ;;
    *)
        printf 'Bail out! IPFSFS_BACKEND=%s: it must be rpc, local or store\n' "$IPFSFS_BACKEND"
        exit 99
        ;;
esac

TESTS_RUN=0
TESTS_FAILED=0
WORK=
HELPER=
declare -a LIB_MOUNTS=()   # mountpoints to unmount at exit
declare -a LIB_PIDS=()     # processes we started, stopped at exit (by pid)
declare -A MOUNT_PID=()    # mountpoint -> pid of its foreground ipfsfs
declare -A MOUNT_LOG=()    # mountpoint -> its log file
# The backend's mount arguments: --store=$STORE_DIR (set by lib_init) in store mode,
# --api=$NODE_API (set by start_node) in rpc mode.
declare -a BACKEND_ARGS=()
STORE_DIR=

say() { printf '%s\n' "$*"; }
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }

# ---- what a script needs --------------------------------------------------------------------

require_binary() {
    if [ ! -x "$IPFSFS_BIN" ]; then
        say "Bail out! the binary $IPFSFS_BIN does not exist (build first, or set IPFSFS_BIN)"
        exit 99
    fi
}

require_fuse() {
    if [ -n "${IPFSFS_NO_INTEGRATION:-}" ]; then
        say "1..0 # SKIP IPFSFS_NO_INTEGRATION is set (package builds run the unit tests only)"
        exit 77
    fi
    if [ "$(id -u)" -ne 0 ]; then
        say "1..0 # SKIP must run as root (mounts with FUSE and writes to /dev/fuse)"
        exit 77
    fi
    if [ ! -c /dev/fuse ]; then
        say "1..0 # SKIP /dev/fuse is missing"
        exit 77
    fi
    local tool
    for tool in fusermount3 mountpoint getfattr python3 curl; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            say "1..0 # SKIP $tool is not installed (apt-get install fuse3 util-linux attr python3 curl)"
            exit 77
        fi
    done
}

require_node() {
    # A missing test node is an error, never a silent skip: only IPFSFS_NO_INTEGRATION (set by
    # `run-all.sh --no-integration` and package builds) skips, and require_fuse says so.
    local out
    if [ -n "${IPFSFS_NO_INTEGRATION:-}" ]; then
        say "1..0 # SKIP IPFSFS_NO_INTEGRATION is set (integration tests skipped on request)"
        exit 77
    fi
    if ! out=$("$IPFSFS_NODE_DIR/kubo.sh" --find-only 2>&1); then
        say "Bail out! no Kubo test node:"
        diag "$out" "build it with tests/node/kubo.sh (needs Go), or set IPFSFS_KUBO=/path/to/ipfs"
        exit 99
    fi
    KUBO_BIN=$(tail -n 1 <<<"$out")
    export KUBO_BIN
}

# ---- setup and teardown ---------------------------------------------------------------------

lib_init() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ipfsfs-test.XXXXXX")
    HELPER=$WORK/helper.py
    write_helper "$HELPER"
    trap lib_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    start_watchdog "${IPFSFS_TEST_TIMEOUT:-300}"
    STORE_DIR=$WORK/store
    # Local-first mounts keep their default store under here, not in the user's home.
    export XDG_DATA_HOME=$WORK/xdg
    if backend_is_store; then
        BACKEND_ARGS=(--store="$STORE_DIR")
    fi
    diag "binary: $IPFSFS_BIN" "work directory: $WORK" "backend: $IPFSFS_BACKEND"
}

# If the script hangs (a FUSE call that never returns), kill what it started and unmount so
# the hung calls fail with ENOTCONN and the script reaches its end.
start_watchdog() {
    local secs=$1 parent=$$
    (
        trap - EXIT
        # One-second naps: when the script ends and kills this subshell, no long sleep lingers.
        for ((i = 0; i < secs; i++)); do sleep 1; done
        echo "# WATCHDOG: $secs s elapsed; killing the filesystem and the test" >&2
        if [ -f "$WORK/pids" ]; then
            while read -r p; do kill -9 "$p" 2>/dev/null; done <"$WORK/pids"
        fi
        if [ -f "$WORK/mounts" ]; then
            while read -r m; do fusermount3 -uz "$m" 2>/dev/null; done <"$WORK/mounts"
        fi
        sleep 5
        kill -TERM "$parent" 2>/dev/null
    ) </dev/null &
    WATCHDOG_PID=$!
}

track_pid() {
    LIB_PIDS+=("$1")
    echo "$1" >>"$WORK/pids"
}

lib_cleanup() {
    local rc=$? m p
    set +e
    for m in "${LIB_MOUNTS[@]}"; do
        if mountpoint -q "$m" 2>/dev/null; then
            fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
        fi
    done
    for p in "${LIB_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${LIB_PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$p" 2>/dev/null
    done
    [ -n "${WATCHDOG_PID:-}" ] && kill "$WATCHDOG_PID" 2>/dev/null
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "${IPFSFS_KEEP:-0}" = 1 ]; then
            diag "kept the work directory: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}

# ---- reporting -------------------------------------------------------------------------------

ok() {
    TESTS_RUN=$((TESTS_RUN + 1))
    say "ok - $1"
}

# not_ok DESC [DETAIL...]
not_ok() {
    TESTS_RUN=$((TESTS_RUN + 1))
    # TAP: a "# TODO" check is a known gap, reported but not counted as a failure.
    [[ $1 == *"# TODO"* ]] || TESTS_FAILED=$((TESTS_FAILED + 1))
    say "not ok - $1"
    shift
    [ $# -gt 0 ] && diag "$@"
    return 0
}

# check DESC CMD [ARG...]: ok if CMD succeeds. External commands get a 60 s bound.
check() {
    local desc=$1 out rc
    shift
    if [ "$(type -t "$1")" = file ]; then
        out=$(timeout -k 5 60 "$@" 2>&1)
    else
        out=$("$@" 2>&1)
    fi
    rc=$?
    if [ "$rc" -eq 0 ]; then
        ok "$desc"
    else
        not_ok "$desc" "command: $*" "exit status: $rc" "$(printf '%s\n' "$out" | head -20)"
    fi
}

# check_eq DESC GOT WANT
check_eq() {
    if [ "$2" = "$3" ]; then
        ok "$1"
    else
        not_ok "$1" "got:  $(printf '%q' "$2")" "want: $(printf '%q' "$3")"
    fi
}

# check_errno DESC WANT OP PATH [ARG]: one syscall (see errno_of) must fail with WANT
# (an errno name such as ENOENT, or OK), within 30 s.
check_errno() {
    local desc=$1 want=$2 got
    shift 2
    got=$(errno_of "$@")
    check_eq "$desc" "$got" "$want"
}

# errno_of OP PATH [ARG]: OK or the errno name of one syscall (stat, lstat, read, open-write,
# create, mkdir, rmdir, unlink, rename, symlink, link, truncate, chmod, chown, utime, setxattr,
# removexattr, listdir, readlink, mknod, open-rdwr, open-trunc, open-append).
errno_of() {
    timeout -k 2 30 python3 "$HELPER" errno "$@" 2>&1 || echo "TIMEOUT-OR-CRASH"
}

# check_errno_within DESC SECS WANT OP PATH [ARG]: like check_errno, and it must answer within
# SECS seconds; the time taken is shown. WANT may list alternatives: "ENOENT|EIO".
check_errno_within() {
    local desc=$1 secs=$2 want=$3 got t0 dt
    shift 3
    t0=$(now)
    got=$(timeout -k 2 "$secs" python3 "$HELPER" errno "$@" 2>&1) || got="no answer within $secs s"
    dt=$(elapsed "$t0")
    if [[ "|$want|" == *"|$got|"* ]]; then
        if [[ $want == *"|"* ]]; then ok "$desc ($got, $dt s)"; else ok "$desc ($dt s)"; fi
    else
        not_ok "$desc" "got:  $got (after $dt s)" "want: $want"
    fi
}

# check_fails_with DESC TEXT CMD...: CMD must fail within 10 s and say TEXT (e.g. the
# strerror text "Read-only file system") on stderr/stdout.
check_fails_with() {
    local desc=$1 text=$2 out rc
    shift 2
    out=$(timeout -k 2 10 "$@" 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qF -- "$text" <<<"$out"; then
        ok "$desc"
    else
        not_ok "$desc" "command: $*" "exit status: $rc (124: still running after 10 s)" \
            "output: $out" "wanted a failure saying: $text"
    fi
}

# check_fast DESC SECONDS CMD...: CMD must end within SECONDS (any exit status).
check_fast() {
    local desc=$1 secs=$2 t0 dt rc
    shift 2
    t0=$(now)
    timeout -k 2 "$secs" "$@" >/dev/null 2>&1
    rc=$?
    dt=$(elapsed "$t0")
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        not_ok "$desc" "still running after ${secs} s: $*"
    else
        ok "$desc (${dt} s)"
    fi
}

now() { date +%s.%N; }
# elapsed T0: seconds since T0, two decimals
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
# lt A B: true if the number A < B
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

finish() {
    if [ "$TESTS_FAILED" -gt 0 ]; then
        dump_logs
    fi
    say "1..$TESTS_RUN"
    diag "$((TESTS_RUN - TESTS_FAILED)) passed, $TESTS_FAILED failed"
    if [ "$TESTS_FAILED" -gt 0 ]; then
        exit 1
    fi
    exit 0
}

dump_logs() {
    local f
    for f in "$WORK"/*.ipfsfs.log "$WORK"/node*/daemon.log; do
        [ -s "$f" ] || continue
        diag "---- last lines of $f ----"
        tail -n 40 "$f" | sed 's/^/#   /'
    done
}

# ---- the test node -------------------------------------------------------------------------

# start_node [NAME]: start a test node (Kubo, offline, see tests/node/start-node.sh) with its repo
# in $WORK/NAME (default node); sets NODE_API (multiaddr), NODE_URL (http://127.0.0.1:PORT/api/v0),
# NODE_PORT, NODE_PID, NODE_REPO, NODE_GATEWAY (http://127.0.0.1:PORT of its HTTP gateway) and
# KUBO_BIN. With NODE_PORT already set and REUSE_PORT=1, the node comes back on the same port.
start_node() {
    local name=${1:-node} out
    NODE_REPO=$WORK/$name
    if [ "${REUSE_PORT:-0}" = 1 ]; then
        out=$(IPFS_API_PORT=$NODE_PORT "$IPFSFS_NODE_DIR/start-node.sh" "$NODE_REPO") || return 1
    else
        out=$("$IPFSFS_NODE_DIR/start-node.sh" "$NODE_REPO") || return 1
    fi
    NODE_API=$(sed -n 's/^IPFS_API=//p' <<<"$out")
    NODE_PID=$(sed -n 's/^IPFS_PID=//p' <<<"$out")
    NODE_GATEWAY=$(sed -n 's/^IPFS_GATEWAY=//p' <<<"$out")
    KUBO_BIN=$(sed -n 's/^IPFS_BIN=//p' <<<"$out")
    track_pid "$NODE_PID"
    NODE_PORT=$(sed -n 's#^/ip4/127.0.0.1/tcp/\([0-9]*\).*#\1#p' <<<"$NODE_API")
    NODE_URL=http://127.0.0.1:$NODE_PORT/api/v0
    export NODE_API NODE_URL NODE_PORT NODE_PID NODE_REPO NODE_GATEWAY KUBO_BIN
    if ! backend_is_store; then
        # shellcheck disable=SC2034 # used by the scripts that source this file
        BACKEND_ARGS=(--api="$NODE_API")
    fi
}

# start_auth_node TOKEN [PORT]: a node ($WORK/authnode) whose API asks for "Authorization: Bearer
# TOKEN" (API.Authorizations); sets NODE_API, NODE_URL, NODE_PID, NODE_REPO like start_node.
# With PORT, the API listens there (to restart the node with another secret). start-node.sh
# waits for an unauthenticated version call, which this node refuses: it is started here.
start_auth_node() {
    local tok=$1 want=${2:-0} repo=$WORK/authnode port
    if [ ! -d "$repo" ]; then
        IPFS_PATH=$repo "$KUBO_BIN" init --profile=test --empty-repo >/dev/null 2>&1 || return 1
        IPFS_PATH=$repo "$KUBO_BIN" config Addresses.Gateway /ip4/127.0.0.1/tcp/0 || return 1
        IPFS_PATH=$repo "$KUBO_BIN" config --json Addresses.Swarm '[]' || return 1
    fi
    IPFS_PATH=$repo "$KUBO_BIN" config --json API.Authorizations \
        "{\"u\":{\"AuthSecret\":\"bearer:$tok\",\"AllowedPaths\":[\"/api/v0\"]}}" || return 1
    IPFS_PATH=$repo "$KUBO_BIN" config Addresses.API "/ip4/127.0.0.1/tcp/$want" || return 1
    rm -f "$repo/api"
    IPFS_PATH=$repo "$KUBO_BIN" daemon --offline >>"$repo/daemon.log" 2>&1 </dev/null &
    NODE_PID=$!
    NODE_REPO=$repo
    track_pid "$NODE_PID"
    for _ in $(seq 1 300); do
        if [ -s "$repo/api" ]; then
            port=$(sed -n 's#^/ip4/127.0.0.1/tcp/\([0-9]*\).*#\1#p' "$repo/api")
            if curl -sf -X POST -m 2 -H "Authorization: Bearer $tok" \
                "http://127.0.0.1:$port/api/v0/version" >/dev/null 2>&1; then
                NODE_API=/ip4/127.0.0.1/tcp/$port
                NODE_URL=http://127.0.0.1:$port/api/v0
                NODE_PORT=$port
                return 0
            fi
        fi
        sleep 0.1
    done
    return 1
}

# kubo ARG...: run the Kubo command line against the current node's repo (through its API).
kubo() { IPFS_PATH=$NODE_REPO "$KUBO_BIN" "$@"; }

# stop_node: stop the current node and wait until it is gone.
stop_node() {
    kill "$NODE_PID" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$NODE_PID" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -9 "$NODE_PID" 2>/dev/null
    sleep 0.5
}

# rpc CMD [QUERY] [CURL ARGS...]: POST to the node, print the body.
rpc() {
    local cmd=$1 query=${2:-}
    shift 2 2>/dev/null || shift
    curl -sS -X POST -m 60 "$@" "$NODE_URL/$cmd${query:+?$query}"
}

# add_file FILE [QUERY]: add one file (pinned), print its CID.
add_file() {
    rpc add "pin=true${2:+&$2}" -F "file=@$1;filename=data" | python3 "$HELPER" add-result
}

# add_dir DIR [QUERY] [MAP]: add the tree DIR (pinned) in one multipart upload, print the
# root CID. With MAP, also write MAP.map: "relative path<TAB>CID" for every entry the node
# reported (it does not report empty directories). DIR's basename must be >= 2 characters.
add_dir() {
    local dir=$1 query=${2:-} map=${3:-} body boundary
    body=$WORK/body.$$.$RANDOM
    boundary=ipfsfs-test-$RANDOM$RANDOM
    python3 "$HELPER" add-body "$dir" "$body" "$boundary" || return 1
    rpc add "pin=true${query:+&$query}" \
        -H "Content-Type: multipart/form-data; boundary=$boundary" --data-binary "@$body" |
        python3 "$HELPER" add-result ${map:+"$map"}
    local rc=$?
    rm -f "$body"
    return $rc
}

# block_put FILE: store FILE as a dag-pb block, print its CID. Not pinned: a recursive pin would
# wait for children the node lacks.
block_put() {
    rpc block/put "cid-codec=dag-pb&pin=false" -F "file=@$1;filename=data" |
        sed -n 's/.*"Key":"\([^"]*\)".*/\1/p'
}

# cid_as CID BASE: CID's v1 form in base32, base58btc, base36 or base16; BASE=canonical gives
# the form ipfsfs reports (v0 stays Qm..., v1 in base32).
cid_as() { python3 "$HELPER" cid "$1" "$2"; }

free_port() { python3 "$HELPER" free-port; }

# wait_nonempty FILE: until FILE has bytes (a helper's port file), 5 s at most.
wait_nonempty() {
    for _ in $(seq 1 50); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# start_slowproxy NAME HOST:PORT [SECS [OPTION...]]: slowproxy.py (faults on demand) in front of HOST:PORT,
# for at most SECS seconds (600). It reads its mode from $WORK/NAME.mode (made empty, "pass",
# if missing) and logs its requests to $WORK/NAME.log. Sets SLOWPROXY_PORT to the port it
# listens on (empty if it did not start within 5 s).
start_slowproxy() {
    local name=$1 up=$2 secs=${3:-600}
    shift $(($# < 3 ? $# : 3))
    [ -e "$WORK/$name.mode" ] || : >"$WORK/$name.mode"
    python3 "$LIB_DIR/slowproxy.py" --upstream "$up" --mode-file "$WORK/$name.mode" \
        --port-file "$WORK/$name.port" --log "$WORK/$name.log" --max-seconds "$secs" "$@" \
        2>>"$WORK/$name.err" &
    track_pid $!
    wait_nonempty "$WORK/$name.port"
    # shellcheck disable=SC2034 # used by the scripts that source this file
    SLOWPROXY_PORT=$(cat "$WORK/$name.port" 2>/dev/null)
}

# gen_file PATH SIZE SEED: reproducible pseudo-random content.
gen_file() { python3 "$HELPER" gen "$1" "$2" "$3"; }

# ---- the backend under test ------------------------------------------------------------------

# backend_is_store: true when the mount under test is the embedded store (IPFSFS_BACKEND=store).
backend_is_store() { [ "$IPFSFS_BACKEND" = store ]; }

# skip_rpc_only DESC: report a check that only the RPC backend has, as skipped in store mode.
skip_rpc_only() { ok "$1 # SKIP rpc backend only"; }

# store_import CID...: store mode only (a no-op in rpc mode): copy the whole DAG of each CID
# from the test node into $STORE_DIR, block by block, in the store's own layout. The node's
# dag/export gives a CAR; the import fails unless the store then holds every block of the DAG.
# For a block whose children the node lacks (the export waits for them, up to 30 s, then
# fails), block/get copies that one block. Every block is verified against its CID.
store_import() {
    local cid
    backend_is_store || return 0
    for cid in "$@"; do
        if curl -sS -f -X POST -m 60 "$NODE_URL/dag/export?arg=$cid&timeout=30s" |
            python3 "$HELPER" car-import "$STORE_DIR" "$cid"; then
            continue
        fi
        diag "dag/export of $cid failed: copying the single block"
        curl -sS -f -X POST -m 30 "$NODE_URL/block/get?arg=$cid" |
            python3 "$HELPER" block-import "$STORE_DIR" "$cid" || return 1
    done
}

# store_names CMD PATH: the store's names read straight from its files (DIR/root and the block
# files), not through ipfsfs: CMD stat prints {"Hash", "Type", "Mode", "Mtime", "Size"} of PATH
# (as the node's files/stat), CMD ls prints {"Entries": [{"Name", "Hash"}...]} (as files/ls).
store_names() { python3 "$HELPER" store-names "$STORE_DIR" "$1" "$2"; }

# sync_names [MNT]: local and store backends (a no-op in rpc mode): fsync(2) on the mount's root
# (what `sync MNT` does), which returns once every change made before it is durable in the store
# (its files show it) and, on a local mount, on the node (its files API shows what the mount
# shows).
sync_names() {
    local mnt=${1:-${MNT:-}}
    { [ "$IPFSFS_BACKEND" = local ] || backend_is_store; } && [ -n "$mnt" ] &&
        mountpoint -q "$mnt" || return 0
    python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$mnt" ||
        diag "fsync of $mnt failed: the node may not have every change"
}

# ---- mounting -------------------------------------------------------------------------------

# mount_ipfsfs MNT [ARG...]: mount in the foreground (-f) in the background, logging to
# $WORK/<name>.ipfsfs.log; waits up to 20 s for the mount. ARGs go before MNT (add the backend
# yourself: "${BACKEND_ARGS[@]}", or --api=...). Returns non-zero (and prints the log) if it did
# not mount.
mount_ipfsfs() {
    local mnt=$1 log pid
    shift
    mkdir -p "$mnt"
    log=$WORK/$(basename "$mnt").ipfsfs.log
    if [ "$IPFSFS_BACKEND" = rpc ] && [[ " $* " == *" --api="* ]] &&
        [[ " $* " != *" --store="* && " $* " != *" --write-through "* && " $* " != *" --ipns "* ]]; then
        set -- "$@" --write-through
    fi
    # shellcheck disable=SC2086 # IPFSFS_WRAPPER is a command prefix, split on purpose
    ${IPFSFS_WRAPPER:-} "$IPFSFS_BIN" -f "$@" "$mnt" >>"$log" 2>&1 </dev/null &
    pid=$!
    track_pid "$pid"
    LIB_MOUNTS+=("$mnt")
    echo "$mnt" >>"$WORK/mounts"
    MOUNT_PID[$mnt]=$pid
    MOUNT_LOG[$mnt]=$log
    for _ in $(seq 1 100); do
        if mountpoint -q "$mnt"; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        sleep 0.2
    done
    diag "ipfsfs did not mount $mnt; its log:"
    sed 's/^/#   /' "$log"
    return 1
}

# unmount_ipfsfs MNT: unmount, wait for the process (up to 20 s) and return its exit status.
# Fails if the log shows a sanitizer report.
unmount_ipfsfs() {
    local mnt=$1 pid rc
    pid=${MOUNT_PID[$mnt]:-}
    for _ in $(seq 1 25); do
        fusermount3 -u "$mnt" 2>/dev/null && break
        mountpoint -q "$mnt" || break
        sleep 0.2
    done
    if mountpoint -q "$mnt"; then
        fusermount3 -uz "$mnt" 2>/dev/null
        diag "$mnt was busy: unmounted lazily"
    fi
    [ -n "$pid" ] || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        diag "ipfsfs (pid $pid) still running 20 s after the unmount"
        kill -9 "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    unset "MOUNT_PID[$mnt]"
    if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:|ERROR SUMMARY: [1-9]' \
        "${MOUNT_LOG[$mnt]}" 2>/dev/null; then
        diag "sanitizer/valgrind report in ${MOUNT_LOG[$mnt]}:"
        grep -A 30 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:|ERROR SUMMARY' \
            "${MOUNT_LOG[$mnt]}" | head -60 | sed 's/^/#   /'
        [ "$rc" -eq 0 ] && rc=86
    fi
    return "$rc"
}

# check_unmount DESC MNT: unmount and check that ipfsfs exited with status 0 and a clean log.
check_unmount() {
    local rc=0
    unmount_ipfsfs "$2" || rc=$?
    if [ "$rc" -eq 0 ] && ! mountpoint -q "$2"; then
        ok "$1"
    else
        not_ok "$1" "ipfsfs exit status $rc" "last lines of ${MOUNT_LOG[$2]}:" \
            "$(tail -n 30 "${MOUNT_LOG[$2]}")"
    fi
}

# ---- the Python half (stdlib only) -----------------------------------------------------------

write_helper() {
    cat >"$1" <<'PY'
"""Helpers for the ipfsfs integration tests (written out by lib.sh; stdlib only)."""
import base64
import errno
import http.server
import json
import mmap
import os
import random
import socketserver
import sys
import time
import urllib.parse

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def b58decode(s):
    n = 0
    for ch in s:
        n = n * 58 + B58.index(ch)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(s) - len(s.lstrip("1"))
    return b"\0" * pad + raw


def b58encode(b):
    n = int.from_bytes(b, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    pad = len(b) - len(b.lstrip(b"\0"))
    return "1" * pad + out


def b36encode(b):
    n = int.from_bytes(b, "big")
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = B36[r] + out
    pad = len(b) - len(b.lstrip(b"\0"))
    return "0" * pad + out


def cid_bytes(cid):
    """Binary CID; a CIDv0 becomes the equivalent CIDv1 (dag-pb) bytes."""
    if cid.startswith("Qm"):
        return b"\x01\x70" + b58decode(cid)
    prefix, body = cid[0], cid[1:]
    if prefix == "z":
        return b58decode(body)
    if prefix == "b":
        return base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    if prefix == "f":
        return bytes.fromhex(body)
    if prefix == "k":
        n = 0
        for ch in body:
            n = n * 36 + B36.index(ch)
        return n.to_bytes((n.bit_length() + 7) // 8, "big")
    raise SystemExit("unknown multibase: " + cid)


def cid_v1(cid, base):
    b = cid_bytes(cid)
    if base == "base32":
        return "b" + base64.b32encode(b).decode().lower().rstrip("=")
    if base == "base58btc":
        return "z" + b58encode(b)
    if base == "base36":
        return "k" + b36encode(b)
    if base == "base16":
        return "f" + b.hex()
    raise SystemExit("unknown base " + base)


def canonical(cid):
    """How ipfsfs reports a CID: v0 stays Qm..., v1 in base32."""
    return cid if cid.startswith("Qm") else cid_v1(cid, "base32")


def multihash(cid):
    """The multihash bytes of a CID (v0 or v1)."""
    b = cid_bytes(cid)
    i = 0
    for _ in range(2):  # version, codec varints
        while b[i] & 0x80:
            i += 1
        i += 1
    return b[i:]


# --- protobuf / dag-pb ------------------------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_varint(num, value):
    return varint(num << 3) + varint(value)


def pb_link(cid, name, tsize):
    return field_bytes(1, multihash(cid) if cid.startswith("Qm") else cid_bytes(cid)) + \
        field_bytes(2, name) + field_varint(3, tsize)


def pb_node(links, data):
    out = b"".join(field_bytes(2, link) for link in links)
    return out + field_bytes(1, data)


def unixfs(type_, data=None, filesize=None):
    out = field_varint(1, type_)
    if data is not None:
        out += field_bytes(2, data)
    if filesize is not None:
        out += field_varint(3, filesize)
    return out


def cmd_dagpb_dir(args):
    """dagpb-dir OUT JSON: JSON = [[name (str, may hold any char), cid, tsize], ...]."""
    out, spec = args
    # dag-pb wants its links sorted by name bytes (decoders reject other orders).
    links = [pb_link(cid, name, tsize) for name, cid, tsize in
             sorted((n.encode("utf-8", "surrogatepass"), c, t) for n, c, t in json.loads(spec))]
    with open(out, "wb") as f:
        f.write(pb_node(links, unixfs(1)))


def cmd_dagpb_symlink(args):
    """dagpb-symlink OUT TARGET"""
    out, target = args
    with open(out, "wb") as f:
        f.write(pb_node([], unixfs(4, target.encode())))


# --- the embedded store's files (src/blockstore.c, src/node_store.c) ---------------------------

def read_varint(buf, i):
    """(value, next index) of the unsigned varint at buf[i]."""
    n = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def split_cid(buf, i):
    """(multihash, end) of the binary CID starting at buf[i] (v0: a bare sha2-256 multihash)."""
    if buf[i:i + 2] == b"\x12\x20":
        return buf[i:i + 34], i + 34
    version, j = read_varint(buf, i)
    if version != 1:
        raise ValueError("CID version %d" % version)
    _codec, j = read_varint(buf, j)
    start = j
    _code, j = read_varint(buf, j)
    length, j = read_varint(buf, j)
    if j + length > len(buf):
        raise ValueError("truncated CID")
    return buf[start:j + length], j + length


def store_block_path(store, mh):
    """blockstore.c's path: blocks/XY/KEY.data, KEY = base32 of the multihash (upper case, no
    padding), XY = the two characters before KEY's last one (flatfs next-to-last/2)."""
    key = base64.b32encode(mh).decode().rstrip("=")
    return os.path.join(store, "blocks", key[-3:-1]), key + ".data"


def store_put(store, mh, data):
    """Write one block as blockstore_put does: verified, temporary file, 0444, fsync, rename."""
    import hashlib
    import tempfile
    code, i = read_varint(mh, 0)
    length, i = read_varint(mh, i)
    if code == 0x00:
        return  # identity: the CID holds the bytes, the store keeps no file
    if code != 0x12 or length != 32 or len(mh) != i + 32:
        raise SystemExit("multihash 0x%x/%d: the store only keeps sha2-256" % (code, length))
    if hashlib.sha256(data).digest() != mh[i:]:
        raise SystemExit("a block does not match its CID: refusing to store it")
    for d in (store, os.path.join(store, "blocks")):
        try:
            os.mkdir(d, 0o700 if d == store else 0o755)
        except FileExistsError:
            pass
    shard, name = store_block_path(store, mh)
    try:
        os.mkdir(shard, 0o755)
    except FileExistsError:
        pass
    final = os.path.join(shard, name)
    try:
        with open(final, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=".tmp-import-", dir=shard)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), 0o444)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)
    except BaseException:
        os.unlink(tmp)
        raise


def cmd_car_import(args):
    """car-import STORE ROOTCID: read a CARv1 on stdin (varint header length, dag-cbor header,
    then sections varint(len) + CID + block) and write every block into STORE. Fails unless
    the stream is whole and holds ROOTCID's block."""
    store, root = args
    buf = sys.stdin.buffer.read()
    try:
        hlen, i = read_varint(buf, 0)
        if hlen == 0 or i + hlen > len(buf):
            raise ValueError("no CAR header")
        i += hlen
        want = multihash(root)
        seen = False
        n = 0
        while i < len(buf):
            slen, i = read_varint(buf, i)
            end = i + slen
            if slen == 0 or end > len(buf):
                raise ValueError("truncated section")
            mh, j = split_cid(buf, i)
            store_put(store, mh, buf[j:end])
            seen = seen or mh == want
            n += 1
            i = end
    except (ValueError, IndexError) as e:
        raise SystemExit("car-import %s: not a whole CAR (%s): %r" % (root, e, buf[:200]))
    if not seen:
        raise SystemExit("car-import %s: the CAR does not hold the root block" % root)
    # A stream cut short can still end on a whole section: the DAG must be complete.
    todo, done = [b58decode(root) if root.startswith("Qm") else cid_bytes(root)], set()
    while todo:
        binary = todo.pop()
        if binary in done or split_cid(binary, 0)[0][0] == 0x00:  # identity: no block
            continue
        done.add(binary)
        try:
            links, _ = store_node(store, binary)
        except FileNotFoundError:
            raise SystemExit("car-import %s: block %s is missing" % (root, cid_text(binary)))
        except (ValueError, IndexError) as e:
            raise SystemExit("car-import %s: block %s: %s" % (root, cid_text(binary), e))
        todo.extend(cid for _, cid in links)


def cmd_block_import(args):
    """block-import STORE CID: the block's bytes on stdin go into STORE under CID."""
    store, cid = args
    store_put(store, multihash(cid), sys.stdin.buffer.read())


def cid_text(binary):
    """How ipfsfs prints a binary CID: v0 as Qm..., v1 in base32."""
    if binary[:2] == b"\x12\x20" and len(binary) == 34:
        return b58encode(binary)
    return "b" + base64.b32encode(binary).decode().lower().rstrip("=")


def pb_fields(buf):
    """(field number, wire type, value) of a protobuf message (varints and bytes; fixed32/64
    values as ints)."""
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = read_varint(buf, i)
        elif wt == 2:
            ln, i = read_varint(buf, i)
            val = buf[i:i + ln]
            i += ln
        elif wt == 5:
            val = int.from_bytes(buf[i:i + 4], "little")
            i += 4
        elif wt == 1:
            val = int.from_bytes(buf[i:i + 8], "little")
            i += 8
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, val


def store_node(store, binary):
    """Decode the block of binary CID from STORE's files: (links [(name, cid bytes)], unixfs
    dict) for dag-pb; raw blocks come back as a file."""
    import hashlib
    mh, _ = split_cid(binary, 0)
    shard, name = store_block_path(store, mh)
    with open(os.path.join(shard, name), "rb") as f:
        data = f.read()
    if hashlib.sha256(data).digest() != mh[2:]:
        raise SystemExit("corrupt block " + cid_text(binary))
    if binary[:2] != b"\x12\x20" and binary[1] == 0x55:
        return [], {"type": 2, "filesize": len(data)}
    links, ufs = [], {}
    for num, _, val in pb_fields(data):
        if num == 2:
            link = dict((n, v) for n, _, v in pb_fields(val))
            links.append((link.get(2, b"").decode("utf-8", "surrogateescape"), link[1]))
        elif num == 1:
            for n, _, v in pb_fields(val):
                if n == 1:
                    ufs["type"] = v
                elif n == 3:
                    ufs["filesize"] = v
                elif n == 7:
                    ufs["mode"] = v
                elif n == 8:
                    ufs["mtime"] = dict((k, x) for k, _, x in pb_fields(v)).get(1, 0)
    return links, ufs


def store_entries(store, binary):
    """{name: cid bytes} of a directory, through HAMT shards (type 5) by walking every link."""
    links, ufs = store_node(store, binary)
    if ufs.get("type") == 1:
        return dict(links)
    if ufs.get("type") != 5:
        raise SystemExit("not a directory: " + cid_text(binary))
    out = {}
    for name, cid in links:
        if len(name) == 2:
            out.update(store_entries(store, cid))
        else:
            out[name[2:]] = cid
    return out


def cmd_store_names(args):
    """store-names STORE stat|ls PATH: the names kept in STORE (DIR/root), read from its files."""
    store, what, path = args
    with open(os.path.join(store, "root")) as f:
        text = f.read().strip()
    cur = b58decode(text) if text.startswith("Qm") else cid_bytes(text)
    for comp in [c for c in path.split("/") if c]:
        entries = store_entries(store, cur)
        if comp not in entries:
            raise SystemExit("%s: no such name in the store" % path)
        cur = entries[comp]
    if what == "ls":
        print(json.dumps({"Entries": [{"Name": n, "Hash": cid_text(c)} for n, c in
                                      sorted(store_entries(store, cur).items())]}))
        return
    _, ufs = store_node(store, cur)
    kinds = {0: "file", 1: "directory", 2: "file", 4: "symlink", 5: "directory"}
    print(json.dumps({"Hash": cid_text(cur), "Type": kinds.get(ufs.get("type"), "unknown"),
                      "Size": ufs.get("filesize", 0),
                      "Mode": "%04o" % ufs["mode"] if "mode" in ufs else "",
                      "Mtime": ufs.get("mtime", "")}))


# --- multipart bodies for add -------------------------------------------------------------------

def cmd_add_body(args):
    """add-body DIR OUT BOUNDARY: the multipart body adding DIR (named by its basename)."""
    top, out, boundary = args
    top = os.path.abspath(top)
    base = os.path.basename(top)
    with open(out, "wb") as f:
        def part(rel, ctype, body):
            name = urllib.parse.quote(rel.encode("utf-8", "surrogateescape"), safe="")
            f.write(b"--" + boundary.encode() + b"\r\n")
            f.write(('Content-Disposition: form-data; name="file"; filename="%s"\r\n' % name)
                    .encode())
            f.write(("Content-Type: %s\r\n\r\n" % ctype).encode())
            f.write(body)
            f.write(b"\r\n")

        def walk(path, rel):
            part(rel, "application/x-directory", b"")
            for entry in sorted(os.listdir(path)):
                full = os.path.join(path, entry)
                sub = rel + "/" + entry
                if os.path.isdir(full):
                    walk(full, sub)
                else:
                    with open(full, "rb") as src:
                        part(sub, "application/octet-stream", src.read())

        walk(top, base)
        f.write(b"--" + boundary.encode() + b"--\r\n")


def cmd_add_result(args):
    """add-result [PREFIX]: read add NDJSON on stdin; print the root hash; with PREFIX also
    write PREFIX.map (lines "path<TAB>hash")."""
    lines = [json.loads(line) for line in sys.stdin.read().splitlines() if line.strip()]
    done = [obj for obj in lines if "Hash" in obj]
    if not done:
        sys.stderr.write("add returned no hash: %r\n" % lines)
        sys.exit(1)
    if args:
        with open(args[0] + ".map", "w", encoding="utf-8", errors="surrogateescape") as f:
            for obj in done:
                f.write("%s\t%s\n" % (obj["Name"], obj["Hash"]))
    print(done[-1]["Hash"])


# --- files ------------------------------------------------------------------------------------

def cmd_gen(args):
    """gen PATH SIZE SEED: SIZE reproducible pseudo-random bytes."""
    path, size, seed = args[0], int(args[1]), int(args[2])
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(rnd.randbytes(n))
            left -= n


def cmd_mmap_cmp(args):
    """mmap-cmp MOUNTED LOCAL: mmap MOUNTED and compare (whole, then random slices)."""
    mounted, local = args
    with open(local, "rb") as f:
        want = f.read()
    with open(mounted, "rb") as f:
        if not want:
            # mmap of an empty file is refused by Python; the read must be empty.
            if f.read() != b"":
                raise SystemExit("empty file reads non-empty")
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if len(m) != len(want):
                raise SystemExit("mmap length %d, want %d" % (len(m), len(want)))
            rnd = random.Random(7)
            for _ in range(64):
                a = rnd.randrange(len(want))
                b = min(len(want), a + rnd.randrange(1, 70000))
                if m[a:b] != want[a:b]:
                    raise SystemExit("mmap slice [%d:%d) differs" % (a, b))
            if m[:] != want:
                raise SystemExit("mmap contents differ")


def cmd_pread_cmp(args):
    """pread-cmp MOUNTED LOCAL N SEED: N preads at random offsets/lengths compared with LOCAL,
    including around every 256 KiB boundary."""
    mounted, local, n, seed = args[0], args[1], int(args[2]), int(args[3])
    with open(local, "rb") as f:
        want = f.read()
    rnd = random.Random(seed)
    offs = [(rnd.randrange(len(want) + 1), rnd.randrange(1, 300000)) for _ in range(n)]
    for k in range(0, len(want) + 1, 262144):
        for d in (-1, 0, 1):
            if 0 <= k + d <= len(want):
                offs.append((k + d, 3))
    offs.append((len(want), 10))       # at EOF: empty
    offs.append((len(want) + 5, 10))   # past EOF: empty
    fd = os.open(mounted, os.O_RDONLY)
    try:
        for off, ln in offs:
            got = os.pread(fd, ln, off)
            if got != want[off:off + ln]:
                raise SystemExit("pread(%d, %d): got %d bytes, differs" % (off, ln, len(got)))
    finally:
        os.close(fd)


# --- errno probes -------------------------------------------------------------------------------

def cmd_errno(args):
    """errno OP PATH [ARG]: run one syscall, print OK or the errno name."""
    op, path = args[0], args[1]
    arg = args[2] if len(args) > 2 else None
    try:
        if op == "stat":
            os.stat(path)
        elif op == "lstat":
            os.lstat(path)
        elif op == "read":
            with open(path, "rb") as f:
                f.read(1)
        elif op == "open-write":
            os.close(os.open(path, os.O_WRONLY))
        elif op == "open-rdwr":
            os.close(os.open(path, os.O_RDWR))
        elif op == "open-trunc":
            os.close(os.open(path, os.O_WRONLY | os.O_TRUNC))
        elif op == "open-append":
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        elif op == "create":
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        elif op == "mknod":
            os.mknod(path, 0o644 | 0o010000)  # a FIFO
        elif op == "mkdir":
            os.mkdir(path)
        elif op == "rmdir":
            os.rmdir(path)
        elif op == "unlink":
            os.unlink(path)
        elif op == "rename":
            os.rename(path, arg)
        elif op == "symlink":
            os.symlink(arg, path)
        elif op == "link":
            os.link(path, arg)
        elif op == "truncate":
            os.truncate(path, int(arg or 0))
        elif op == "chmod":
            os.chmod(path, int(arg or "644", 8))
        elif op == "chown":
            os.chown(path, 1, 1)
        elif op == "utime":
            os.utime(path, (1, 1))
        elif op == "setxattr":
            os.setxattr(path, "user.test", b"x")
        elif op == "removexattr":
            os.removexattr(path, arg or "user.ipfs.cid")
        elif op == "getxattr":
            print(os.getxattr(path, arg).decode("utf-8", "replace"))
            return
        elif op == "fsync":
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        elif op == "listdir":
            os.listdir(path)
        elif op == "readlink":
            os.readlink(path)
        else:
            raise SystemExit("unknown op " + op)
        print("OK")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))


def cmd_listdir(args):
    """listdir PATH: names (raw bytes, repr'd one per line) as readdir gives them."""
    for name in sorted(os.listdir(os.fsencode(args[0]))):
        print(repr(name))


# --- a fake node for fault injection ------------------------------------------------------------

def cmd_fake_node(args):
    """fake-node MODE PORTFILE UPSTREAM: a faulty proxy in front of the real node at UPSTREAM
    (http://127.0.0.1:PORT), on a free loopback port (written to PORTFILE). /api/v0/version is
    forwarded to the real node; every other call gets the fault:
    MODE garbage: 200 text/plain garbage.
    MODE badjson: 200 application/json '{"Objects":['.
    MODE error: 500 with a JSON error.
    MODE stall: never an answer.
    MODE badversion: version answers garbage too."""
    import urllib.request
    mode, portfile, upstream = args
    req = urllib.request.Request(upstream + "/api/v0/version", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        version = r.read()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            sys.stderr.write("fake-node: " + (fmt % a) + "\n")

        def reply(self, status, ctype, body):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.startswith("/api/v0/version") and mode != "badversion":
                self.reply(200, "application/json", version)
            elif mode == "stall":
                time.sleep(3600)
            elif mode == "error":
                self.reply(500, "application/json",
                           b'{"Message":"something broke","Code":0,"Type":"error"}\n')
            elif mode == "badjson":
                self.reply(200, "application/json", b'{"Objects":[')
            else:
                self.reply(200, "text/plain", b"\x00garbage \xff\xfe not what you expected\n")

        do_GET = do_POST

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    srv = Server(("127.0.0.1", 0), Handler)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, portfile)
    srv.serve_forever()


def cmd_free_port(_args):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def cmd_cid(args):
    """cid CID BASE: the CIDv1 form of CID in BASE (base32, base58btc, base36, base16),
    or 'canonical' for how ipfsfs reports it."""
    cid, base = args
    print(canonical(cid) if base == "canonical" else cid_v1(cid, base))


COMMANDS = {
    "cid": cmd_cid,
    "dagpb-dir": cmd_dagpb_dir,
    "dagpb-symlink": cmd_dagpb_symlink,
    "add-body": cmd_add_body,
    "add-result": cmd_add_result,
    "gen": cmd_gen,
    "mmap-cmp": cmd_mmap_cmp,
    "pread-cmp": cmd_pread_cmp,
    "errno": cmd_errno,
    "listdir": cmd_listdir,
    "fake-node": cmd_fake_node,
    "free-port": cmd_free_port,
    "car-import": cmd_car_import,
    "block-import": cmd_block_import,
    "store-names": cmd_store_names,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](sys.argv[2:])
PY
}
