#!/usr/bin/env bash
# faults.sh - the node fails under a mounted ipfsfs: it is killed while idle, in the middle of a
# 100 MiB read and while cp adds a file into the mount; it comes back on the same port; it
# hangs (SIGSTOP); it becomes slow (every answer delayed), stops in the middle of a body, or
# does not find one CID in time (no hang: the next CID gets its full deadline), through
# slowproxy.py.
# Every failure must reach the program as an error within about --timeout (never a hang),
# cached content must keep being served, the mount must stay up, the ipfsfs process alive,
# and everything must work again once the node is back, without a remount.
# Then the security defaults: another user cannot see into the mount, and the API secret
# given in the environment is sent to the node but visible in neither ps nor the log.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=/tmp/buildG/src/ipfsfs tests/integration/faults.sh
# Environment: FAULTS_READ_MIB (default 100), the size of the file whose read is interrupted;
# FAULTS_DROP_CACHES=0 skips the one check that drops the kernel's dentries and inodes
# (echo 2 >/proc/sys/vm/drop_caches: machine-wide, but cheap).
#
# shellcheck source-path=SCRIPTDIR disable=SC2317
# (SC2317: functions run through check and the trap)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
require_node
lib_init

TIMEOUT=5        # --timeout of the direct mount
SLOW_TIMEOUT=3   # --timeout of the mount through the proxy
READ_MIB=${FAULTS_READ_MIB:-100}

# ---- helpers ---------------------------------------------------------------------------------

check_mounted() {
    if mountpoint -q "$1"; then ok "$2"; else not_ok "$2" "$1 is no longer a mountpoint"; fi
}

check_alive() {
    local pid=${MOUNT_PID[$1]:-}
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        ok "$2"
    else
        not_ok "$2" "ipfsfs (pid ${pid:-?}) is gone; last lines of its log:" \
            "$(tail -n 20 "${MOUNT_LOG[$1]}")"
    fi
}

wait_gone() {
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

io_field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/io" 2>/dev/null; }

# A reader that reports how it ended: "OK <bytes> <secs>" or "ERR <errno name> <strerror>
# <bytes> <secs>". With a rate (MiB/s), it reads 256 KiB at a time at about that rate, so a
# fault can hit it in the middle; it also drops the file's pages from the kernel's cache first
# (POSIX_FADV_DONTNEED), so the bytes must come from ipfsfs (its chunk cache or the node).
cat >"$WORK/reader.py" <<'PY'
import errno, os, sys, time
path, rate = sys.argv[1], float(sys.argv[2])
t0 = time.monotonic()
got = 0
try:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while True:
            b = os.read(fd, 262144)
            if not b:
                break
            got += len(b)
            if rate > 0:
                ahead = got / (rate * 1048576) - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            with open(sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else os.devnull, "w") as p:
                p.write(str(got))
    finally:
        os.close(fd)
    print("OK %d %.2f" % (got, time.monotonic() - t0))
except OSError as e:
    print("ERR %s %s %d %.2f" % (errno.errorcode.get(e.errno, e.errno), e.strerror, got,
                                 time.monotonic() - t0))
PY
read_report() { timeout -k 2 "${3:-30}" python3 "$WORK/reader.py" "$1" "${2:-0}" "${4:-}" 2>&1 ||
    echo "HUNG (still reading after ${3:-30} s)"; }

# ---- content ---------------------------------------------------------------------------------

if ! start_node node; then
    not_ok "the test node starts"
    finish
fi
ok "the test node starts ($NODE_API)"

L=$WORK/local
mkdir -p "$L"
gen_file "$L/big" $((READ_MIB << 20)) 1
gen_file "$L/cached" $((1 << 20)) 2
gen_file "$L/slow1" $((1 << 20)) 3
gen_file "$L/slow2" $((2 << 20)) 4
gen_file "$L/slow3" 300000 5
gen_file "$L/copyin" $((READ_MIB << 20)) 6
gen_file "$L/stopmid" $((32 << 20)) 7
gen_file "$L/stopmany" $((16 << 20)) 8
gen_file "$L/steady" $((3 << 20)) 9
for i in 1 2 3 4; do printf 'small file %s\n' "$i" >"$L/small$i"; done
for i in 1 2 3; do printf 'looked up while the node hangs %s\n' "$i" >"$L/hang$i"; done
printf 'found late, not missing\n' >"$L/late"
for i in 2 3 4; do printf 'found late too (%s)\n' "$i" >"$L/late$i"; done
printf 'never added to the node\n' >"$L/absent2"
BIG=$(add_file "$L/big")
CACHED=$(add_file "$L/cached")
SLOW1=$(add_file "$L/slow1")
SLOW2=$(add_file "$L/slow2")
SLOW3=$(add_file "$L/slow3" cid-version=1)
STOPMID=$(add_file "$L/stopmid")
STOPMANY=$(add_file "$L/stopmany")
STEADY=$(add_file "$L/steady")
SMALL1=$(add_file "$L/small1")
SMALL2=$(add_file "$L/small2")
SMALL3=$(add_file "$L/small3")
SMALL4=$(add_file "$L/small4")
HANG1=$(add_file "$L/hang1")
HANG2=$(add_file "$L/hang2")
HANG3=$(add_file "$L/hang3")
LATE=$(add_file "$L/late")
LATE2=$(add_file "$L/late2")
LATE3=$(add_file "$L/late3")
LATE4=$(add_file "$L/late4")
ABSENT2=$(add_file "$L/absent2" only-hash=true)
# Never added: the node lacks it (1 MiB of zeros).
ABSENT=QmVkbauSDEaMP4Tkq6Epm9uW75mWm136n81YH8fGtfwdHU
if [ -z "$BIG" ] || [ -z "$CACHED" ] || [ -z "$SLOW1" ] || [ -z "$SLOW2" ] || [ -z "$SLOW3" ] ||
    [ -z "$STOPMID" ] || [ -z "$STOPMANY" ] || [ -z "$STEADY" ] ||
    [ -z "$SMALL1" ] || [ -z "$SMALL2" ] || [ -z "$SMALL3" ] || [ -z "$SMALL4" ] ||
    [ -z "$HANG1" ] || [ -z "$HANG2" ] || [ -z "$HANG3" ] || [ -z "$LATE" ] ||
    [ -z "$LATE2" ] || [ -z "$LATE3" ] || [ -z "$LATE4" ] || [ -z "$ABSENT2" ]; then
    not_ok "content is added through the node's RPC"
    finish
fi
ok "content is added through the node's RPC (a $READ_MIB MiB file and small ones)"

MNT=$WORK/mnt
if ! mount_ipfsfs "$MNT" --api="$NODE_API" --timeout="$TIMEOUT"; then
    not_ok "ipfsfs mounts"
    finish
fi
ok "ipfsfs mounts (--timeout=$TIMEOUT)"
check "a file reads before any fault" cmp "$MNT/$CACHED" "$L/cached"
check "a small file reads (now cached)" cmp "$MNT/$SMALL1" "$L/small1"

# ---- 1. the node is killed while idle ---------------------------------------------------------

kill -9 "$NODE_PID"
wait_gone "$NODE_PID"
check_fails_with "idle kill: cat of uncached content says 'Input/output error'" \
    "Input/output error" cat "$MNT/$SMALL2"
check_errno_within "idle kill: ... EIO at once (within 2 s)" 2 EIO read "$MNT/$SMALL3"
check_errno_within "idle kill: the root listing fails at once (EIO)" 2 EIO listdir "$MNT"
check_eq "idle kill: already cached content is still served" \
    "$(timeout 10 cat "$MNT/$SMALL1" 2>&1)" "small file 1"
r=$(read_report "$MNT/$CACHED" 0 10)
if [[ $r == OK* ]] && cmp -s "$MNT/$CACHED" "$L/cached"; then
    ok "idle kill: a cached 1 MiB file reads from ipfsfs's chunk cache (page cache dropped): $r"
else
    not_ok "idle kill: a cached 1 MiB file reads from ipfsfs's chunk cache" "$r"
fi
check_mounted "$MNT" "idle kill: the mount is still up"
check_alive "$MNT" "idle kill: ipfsfs is still running"

# ---- 2. back on the same port: works without a remount ----------------------------------------

if REUSE_PORT=1 start_node node; then
    ok "the node restarts on the same port ($NODE_PORT)"
    check_eq "restart: the content that failed with EIO now reads" \
        "$(timeout 10 cat "$MNT/$SMALL2" 2>&1)" "small file 2"
    check "restart: the root lists again" timeout 10 ls "$MNT"
else
    not_ok "the node restarts on the same port ($NODE_PORT)"
    finish
fi

# ---- 2b. the node hangs (SIGSTOP): one --timeout, then fast failures ---------------------------

# Its socket still takes connections and requests, but nothing answers. The first lookup waits
# its --timeout; the next ones first ask the node's version, which does not come either, and
# fail fast instead of costing a --timeout each; once the node answers again, the very next
# lookup gets its full deadline.
if kill -STOP "$NODE_PID"; then
    check_errno_within "node stopped: stat of a new CID: ETIMEDOUT within --timeout + 2 s" \
        $((TIMEOUT + 2)) ETIMEDOUT stat "$MNT/$HANG1"
    check_errno_within "node stopped: ... the next new CID fails fast (within 3 s)" 3 ETIMEDOUT \
        stat "$MNT/$HANG2"
    kill -CONT "$NODE_PID"
    check_eq "node continued: the CID that failed fast now reads at once" \
        "$(timeout "$TIMEOUT" cat "$MNT/$HANG2" 2>&1)" "looked up while the node hangs 2"
    check_eq "node continued: ... and a CID never looked up" \
        "$(timeout "$TIMEOUT" cat "$MNT/$HANG3" 2>&1)" "looked up while the node hangs 3"
else
    not_ok "the node can be stopped (SIGSTOP)"
fi

# ---- 2c. the node hangs in the middle of a read ---------------------------------------------

# A program reads a file; after its first 256 KiB the node stops (SIGSTOP). Its next read(2)
# that needs the node fails with ETIMEDOUT once --timeout has passed, not later: the check
# whether the node is alive (up to a second more) is not made on that read's time.
out=$(timeout -k 2 $((4 * TIMEOUT)) python3 - "$MNT/$STOPMID" "$NODE_PID" <<'PY' 2>&1
import errno, os, signal, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
os.read(fd, 256 << 10)
os.kill(int(sys.argv[2]), signal.SIGSTOP)
worst = 0.0
try:
    while True:
        t = time.monotonic()
        try:
            b = os.read(fd, 1 << 20)
        except OSError as e:
            worst = max(worst, time.monotonic() - t)
            print("%s %.2f" % (errno.errorcode.get(e.errno, e.errno), worst))
            break
        worst = max(worst, time.monotonic() - t)
        if not b:
            print("EOF %.2f" % worst)
            break
finally:
    os.kill(int(sys.argv[2]), signal.SIGCONT)
PY
)
kill -CONT "$NODE_PID" 2>/dev/null
read -r err secs <<<"$out"
if [ "$err" = ETIMEDOUT ] && awk -v s="$secs" -v t="$TIMEOUT" 'BEGIN { exit !(s <= t + 0.8) }'; then
    ok "node stopped mid-read: the waiting read(2) fails ETIMEDOUT within --timeout + 0.8 s ($secs s)"
else
    not_ok "node stopped mid-read: the waiting read(2) fails ETIMEDOUT within --timeout + 0.8 s" \
        "got: $out"
fi

# Four programs read one file when the node stops: the kernel lets one of them at a time try a
# page, so each must not wait its own --timeout after the one before (and a check of the hung
# node's version each): all four fail within about one --timeout.
rm -f "$WORK/go"
many_pids=()
for i in 1 2 3 4; do
    timeout -k 2 $((8 * TIMEOUT)) python3 - "$MNT/$STOPMANY" "$WORK/go" >"$WORK/many.$i" 2>&1 <<'PY' &
import errno, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
os.read(fd, 4096)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
t0 = time.monotonic()
try:
    while os.read(fd, 128 << 10):
        pass
    print("EOF %.2f" % (time.monotonic() - t0))
except OSError as e:
    print("%s %.2f" % (errno.errorcode.get(e.errno, e.errno), time.monotonic() - t0))
PY
    many_pids+=($!)
done
sleep 2
kill -STOP "$NODE_PID"
touch "$WORK/go"
wait "${many_pids[@]}" || true
kill -CONT "$NODE_PID" 2>/dev/null
out=$(cat "$WORK"/many.? | tr '\n' ' ')
if awk -v t="$TIMEOUT" '{ bad = NF != 8
        for (i = 1; i < NF; i += 2) if ($i != "ETIMEDOUT" || $(i + 1) > t + 1.5) bad = 1 }
    END { exit bad }' <<<"$out"; then
    ok "node stopped, four programs reading one file: each fails ETIMEDOUT within --timeout + 1.5 s ($out)"
else
    not_ok "node stopped, four programs reading one file: each fails ETIMEDOUT within --timeout + 1.5 s" \
        "got: $out"
fi

# ---- 3. the node is killed in the middle of a large read --------------------------------------

# Read at ~20 MiB/s; kill the node once 10 MiB have been read.
PROG=$WORK/read.progress
rm -f "$PROG"
read_report "$MNT/$BIG" 20 30 "$PROG" >"$WORK/bigread.out" &
reader=$!
for _ in $(seq 1 200); do
    # (the reader rewrites the file: it may be caught empty)
    p=$(cat "$PROG" 2>/dev/null || true)
    [ -n "$p" ] && [ "$p" -ge $((10 << 20)) ] && break
    kill -0 "$reader" 2>/dev/null || break
    sleep 0.05
done
at=$(cat "$PROG" 2>/dev/null || echo 0)
kill -9 "$NODE_PID"
t0=$(now)
wait "$reader"
dt=$(elapsed "$t0")
r=$(cat "$WORK/bigread.out")
diag "reader: $r (killed after $((at >> 20)) MiB; ended $dt s after the kill)"
case $r in
ERR\ EIO* | ERR\ ETIMEDOUT*)
    ok "mid-read kill: the reader gets an error (${r#ERR }), not a short file" ;;
OK*) not_ok "mid-read kill: the reader gets an error" "it read to the end: $r" ;;
*) not_ok "mid-read kill: the reader gets an error" "$r" ;;
esac
if lt "$dt" $((TIMEOUT + 3)); then
    ok "mid-read kill: ... within --timeout=$TIMEOUT + 3 s of the kill ($dt s)"
else
    not_ok "mid-read kill: ... within --timeout=$TIMEOUT + 3 s of the kill" "took $dt s"
fi
check_mounted "$MNT" "mid-read kill: the mount is still up"
check_alive "$MNT" "mid-read kill: ipfsfs is still running"
wait_gone "$NODE_PID"
if REUSE_PORT=1 start_node node; then
    check "mid-read kill, node back: the whole $READ_MIB MiB file reads right" \
        cmp "$MNT/$BIG" "$L/big"
else
    not_ok "the node restarts on the same port again"
    finish
fi

# ---- 4. the node is killed while cp adds a file into the mount --------------------------------

size=$(stat -c %s "$L/copyin")
fs_pid=${MOUNT_PID[$MNT]}
cp "$L/copyin" "$MNT/copied" 2>"$WORK/cp.err" &
cp_pid=$!
# cp has written every byte (it is in close(2)), then ipfsfs reads the spool back to send it.
for _ in $(seq 1 600); do
    w=$(io_field "$cp_pid" wchar)
    [ -n "$w" ] || break
    [ "$w" -ge "$size" ] && break
    sleep 0.05
done
r1=$(io_field "$fs_pid" rchar)
for _ in $(seq 1 200); do
    r=$(io_field "$fs_pid" rchar)
    [ -n "$r" ] && [ $((r - r1)) -ge $((size / 8)) ] && break
    sleep 0.01
done
if kill -0 "$cp_pid" 2>/dev/null; then
    kill -9 "$NODE_PID"
    t0=$(now)
    for _ in $(seq 1 $(((TIMEOUT + 15) * 10))); do
        kill -0 "$cp_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$cp_pid" 2>/dev/null; then
        not_ok "cp kill: cp fails" "cp still running $((TIMEOUT + 15)) s after the kill"
        kill -9 "$cp_pid"
        wait "$cp_pid" 2>/dev/null
    else
        wait "$cp_pid"
        rc=$?
        dt=$(elapsed "$t0")
        if [ "$rc" -ne 0 ]; then
            ok "cp kill: cp fails (status $rc after $dt s: $(tr '\n' ' ' <"$WORK/cp.err"))"
        else
            not_ok "cp kill: cp fails" "cp succeeded although the node was killed"
        fi
    fi
else
    wait "$cp_pid"
    not_ok "cp kill: the node is killed while cp adds" "cp ended (status $?) before the kill"
    kill -9 "$NODE_PID"
fi
check_mounted "$MNT" "cp kill: the mount is still up"
check_alive "$MNT" "cp kill: ipfsfs is still running"
wait_gone "$NODE_PID"
if REUSE_PORT=1 start_node node; then
    got=$(stat -c %s "$MNT/copied" 2>&1)
    case $got in
    0 | *"No such file"*) ok "cp kill, node back: MNT/copied is absent or empty ($got)" ;;
    *) not_ok "cp kill, node back: MNT/copied is absent or empty" "stat: $got" ;;
    esac
    check "cp kill, node back: a new cp into the mount works" cp "$L/small4" "$MNT/again"
    check "cp kill, node back: ... and reads back" cmp "$MNT/again" "$L/small4"
else
    not_ok "the node restarts on the same port a third time"
    finish
fi
check_unmount "direct mount: unmount; ipfsfs exits 0 with a clean log" "$MNT"

# ---- 5. a slow node, through slowproxy.py ------------------------------------------------------

MODE=$WORK/proxy.mode
: >"$MODE"
start_slowproxy proxy "127.0.0.1:$NODE_PORT" 300
PROXY_API=/ip4/127.0.0.1/tcp/$SLOWPROXY_PORT/http
SM=$WORK/mnt-slow
if ! mount_ipfsfs "$SM" --api="$PROXY_API" --timeout="$SLOW_TIMEOUT"; then
    not_ok "ipfsfs mounts through slowproxy.py"
    finish
fi
ok "ipfsfs mounts through slowproxy.py (--timeout=$SLOW_TIMEOUT)"
check "proxy passing: a file reads (and is now cached)" cmp "$SM/$SLOW1" "$L/slow1"
check "proxy passing: stat of another file (its size is known, its bytes are not)" \
    stat "$SM/$SLOW2"

# A live node that is still looking for one CID sends no status line at all until it finds it
# (this offline node lacks it and would say so at once: the proxy holds that answer back past
# --timeout). That is no hung node: the next lookup, of content the node has and serves after
# 2 s (longer than the short deadline ipfsfs gives a hung node, shorter than --timeout), must
# get its full deadline and succeed.
echo "delay 8 $ABSENT" >"$MODE"
check_errno_within "a CID the node does not find in time: ETIMEDOUT within --timeout + 2 s" \
    $((SLOW_TIMEOUT + 2)) ETIMEDOUT stat "$SM/$ABSENT"
echo "delay 2 $LATE" >"$MODE"
check_errno_within "... then at once a CID the node has, answered after 2 s: found" 10 OK \
    stat "$SM/$LATE"
check_eq "... and it reads right" "$(timeout 10 cat "$SM/$LATE" 2>&1)" "found late, not missing"
short=$(grep -F "$LATE" "$WORK/proxy.log" | grep -c "timeout=1000ms")
if [ "$short" -eq 0 ]; then
    ok "... no request for it had its deadline cut short"
else
    not_ok "... no request for it had its deadline cut short" \
        "$(grep -F "$LATE" "$WORK/proxy.log")"
fi
# Several calls at once after such a timeout: one asks the node whether it answers (here it
# answers 0.6 s late), the others wait for that answer rather than take a short deadline of
# their own, and each CID, answered after 2 s, is found.
echo "delay 8 $ABSENT2" >"$MODE"
check_errno_within "another CID the node does not find in time: ETIMEDOUT within --timeout + 2 s" \
    $((SLOW_TIMEOUT + 2)) ETIMEDOUT stat "$SM/$ABSENT2"
printf 'delay 0.6 /api/v0/version\ndelay 2 Qm\n' >"$MODE"
par_pids=()
for c in "$LATE2" "$LATE3" "$LATE4"; do
    timeout -k 2 10 python3 "$HELPER" errno stat "$SM/$c" >"$WORK/par.$c" 2>&1 &
    par_pids+=($!)
done
wait "${par_pids[@]}" || true
check_eq "... then three CIDs at once, each answered after 2 s: all found" \
    "$(cat "$WORK/par.$LATE2" "$WORK/par.$LATE3" "$WORK/par.$LATE4" | tr '\n' ' ')" "OK OK OK "
short=$(grep -F -e "$LATE2" -e "$LATE3" -e "$LATE4" "$WORK/proxy.log" | grep -c "timeout=1000ms")
if [ "$short" -eq 0 ]; then
    ok "... no request for them had its deadline cut short"
else
    not_ok "... no request for them had its deadline cut short" \
        "$(grep -F -e "$LATE2" -e "$LATE3" -e "$LATE4" "$WORK/proxy.log")"
fi
: >"$MODE"

# timed_fail DESC LIMIT PATH: a read of PATH must fail with ETIMEDOUT or EIO within LIMIT s.
timed_fail() {
    local desc=$1 limit=$2 path=$3 r secs
    r=$(read_report "$path" 0 $((limit + 20)))
    secs=${r##* }
    case $r in
    ERR\ ETIMEDOUT* | ERR\ EIO*)
        if lt "$secs" "$limit"; then
            ok "$desc: $(cut -d' ' -f2- <<<"$r" | sed 's/ [0-9]* [0-9.]*$//') after $secs s"
        else
            not_ok "$desc: within $limit s" "$r"
        fi
        ;;
    *) not_ok "$desc: fails with ETIMEDOUT or EIO within $limit s" "$r" ;;
    esac
}

# An open descriptor pins the cached file's dentry and inode, so the kernel cannot forget it
# (under memory pressure it may forget unused ones: see the forgotten-inode check below).
exec {HOLD}<"$SM/$SLOW1"
echo "delay 8" >"$MODE"
timed_fail "every answer 8 s late: a new CID" $((SLOW_TIMEOUT + 3)) "$SM/$SMALL3"
timed_fail "every answer 8 s late: another new CID (CIDv1)" $((SLOW_TIMEOUT + 3)) \
    "$SM/$(cid_as "$SLOW3" base32)"
timed_fail "every answer 8 s late: the bytes of a file already stat'ed" $((SLOW_TIMEOUT + 3)) \
    "$SM/$SLOW2"
r=$(read_report "$SM/$SLOW1" 0 10)
if [[ $r == "OK 1048576 "* ]] && lt "${r##* }" 1; then
    ok "every answer 8 s late: a cached file is served from the chunk cache at once ($r)"
else
    not_ok "every answer 8 s late: a cached file is served from the chunk cache at once" "$r"
fi
check_eq "every answer 8 s late: cached content still reads right" \
    "$(timeout 10 cmp "$SM/$SLOW1" "$L/slow1" 2>&1 && echo same)" same
check_mounted "$SM" "every answer 8 s late: the mount is still up"
check_alive "$SM" "every answer 8 s late: ipfsfs is still running"

echo "stall 2000 /api/v0/cat" >"$MODE"
timed_fail "cat stops mid-body: a read of a stat'ed file" $((SLOW_TIMEOUT + 3)) "$SM/$SLOW2"
r=$(read_report "$SM/$SLOW1" 0 10)
if [[ $r == "OK 1048576 "* ]] && lt "${r##* }" 1; then
    ok "cat stops mid-body: a cached file is still served at once ($r)"
else
    not_ok "cat stops mid-body: a cached file is still served at once" "$r"
fi
check_mounted "$SM" "cat stops mid-body: the mount is still up"
check_alive "$SM" "cat stops mid-body: ipfsfs is still running"
exec {HOLD}<&-

# The kernel forgets the inode of a cached file (here: drop_caches=2, dentries and inodes only;
# memory pressure does the same), then the node is slow: the bytes are all in the chunk cache,
# but the lookup at the root needs the node again (block/get) for the file's size and kind.
if [ "${FAULTS_DROP_CACHES:-1}" = 1 ]; then
    echo "delay 8" >"$MODE"
    sync
    echo 2 >/proc/sys/vm/drop_caches
    sleep 0.5
    inodes=$(getfattr --only-values -n user.ipfsfs.stats "$SM" 2>/dev/null |
        awk '$1 == "inodes" { print $2 }')
    r=$(read_report "$SM/$SLOW1" 0 15)
    if [[ $r == "OK 1048576 "* ]]; then
        ok "a cached file whose inode the kernel forgot is still served with the node slow ($r)"
    else
        # Known gap (TODO: keep the stat of forgotten immutable inodes by CID).
        not_ok "a cached file whose inode the kernel forgot is still served with the node slow # TODO the root lookup re-stats the CID" \
            "$r (ipfsfs inodes after the drop: ${inodes:-?}; the lookup re-stats the CID over" \
            "the network although its chunks are cached)"
    fi
fi

echo "reset /api/v0/cat" >"$MODE"
timed_fail "the connection is reset on every cat: a read" 3 "$SM/$SLOW2"

: >"$MODE"
sleep 2 # past the short probe deadline that follows a timeout
check "proxy passing again: the file that timed out reads right" cmp "$SM/$SLOW2" "$L/slow2"
check "proxy passing again: the CIDv1 that timed out reads right" \
    cmp "$SM/$(cid_as "$SLOW3" base32)" "$L/slow3"
# A slow but steady node: each 256 KiB well within --timeout (200 KB/s), while the kernel's
# readahead reads (1 MiB and more) need longer than --timeout each. The file reads whole.
echo "trickle 200000 /api/v0/cat" >"$MODE"
check "a slow but steady node (200 KB/s at --timeout=$SLOW_TIMEOUT): a 3 MiB file reads whole" \
    timeout 120 cmp "$SM/$STEADY" "$L/steady"
: >"$MODE"
diag "requests seen by the proxy: $(grep -c ' -> ' "$WORK/proxy.log")," \
    "delayed: $(grep -c ' -> delay' "$WORK/proxy.log"), stalled: $(grep -c ' -> stall' "$WORK/proxy.log")"
check_unmount "slow mount: unmount; ipfsfs exits 0 with a clean log" "$SM"

# ---- 6. security defaults ---------------------------------------------------------------------

SECRET="bearer:ipfsfs-test-secret-$RANDOM$RANDOM"
SECRET_SHA=$(printf '%s' "Bearer ${SECRET#bearer:}" | sha256sum | cut -c1-16)
AM=$WORK/mnt-auth
chmod 755 "$WORK" # so that nobody's failure is the mount's doing, not the work directory's
: >"$MODE"
if IPFSFS_API_AUTH=$SECRET mount_ipfsfs "$AM" --api="$PROXY_API" --timeout=10 \
    --log-level=debug; then
    ok "mounts with IPFSFS_API_AUTH set (through the proxy, which records a hash of the header)"
    check "auth mount: content reads" cmp "$AM/$SMALL4" "$L/small4"
    if grep -q "auth sha256:$SECRET_SHA" "$WORK/proxy.log"; then
        ok "auth mount: the node receives 'Authorization: Bearer <the secret>'"
    else
        not_ok "auth mount: the node receives 'Authorization: Bearer <the secret>'" \
            "the proxy saw: $(grep -o '(.*auth.*)' "$WORK/proxy.log" | sort | uniq -c | tr '\n' ' ')"
    fi
    pid=${MOUNT_PID[$AM]}
    # ps's output goes to a file first: a grep in a pipeline would show the secret itself.
    ps -eo pid,args >"$WORK/ps.txt"
    if grep -F -- "${SECRET#bearer:}" "$WORK/ps.txt"; then
        not_ok "auth mount: ps shows no secret" "$(grep -F -- "${SECRET#bearer:}" "$WORK/ps.txt")"
    else
        ok "auth mount: ps shows no secret (args: $(ps -o args= -p "$pid" | cut -c1-120))"
    fi
    if grep -qF -- "${SECRET#bearer:}" "${MOUNT_LOG[$AM]}"; then
        not_ok "auth mount: the debug log holds no secret"
    else
        ok "auth mount: the debug log holds no secret"
    fi
    out=$(su nobody -s /bin/sh -c "cat /proc/$pid/environ" 2>&1)
    if grep -qF -- "${SECRET#bearer:}" <<<"$out"; then
        not_ok "auth mount: another user cannot read the secret from /proc/PID/environ"
    else
        ok "auth mount: another user cannot read the secret from /proc/PID/environ ($out)"
    fi
    # unsetenv() alone would leave the initial environment block as it was: it must be wiped.
    if tr '\0' '\n' <"/proc/$pid/environ" | grep -qF -- "${SECRET#bearer:}"; then
        not_ok "auth mount: even root no longer finds the secret in /proc/PID/environ"
    else
        ok "auth mount: even root no longer finds the secret in /proc/PID/environ (wiped)"
    fi
    if out=$(su nobody -s /bin/sh -c "ls $AM" 2>&1); then
        not_ok "another user (nobody) cannot list the mount" "it can: $out"
    elif grep -q "Permission denied" <<<"$out"; then
        ok "another user (nobody) cannot list the mount: $out"
    else
        not_ok "another user (nobody) cannot list the mount" "$out"
    fi
    if out=$(su nobody -s /bin/sh -c "cat $AM/$SMALL4" 2>&1); then
        not_ok "another user (nobody) cannot read a CID through the mount" "it can: $out"
    elif grep -q "Permission denied" <<<"$out"; then
        ok "another user (nobody) cannot read a CID through the mount: $out"
    else
        not_ok "another user (nobody) cannot read a CID through the mount" "$out"
    fi
    check_unmount "auth mount: unmount; ipfsfs exits 0 with a clean log" "$AM"
else
    not_ok "mounts with IPFSFS_API_AUTH set"
fi

finish
