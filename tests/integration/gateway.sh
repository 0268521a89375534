#!/usr/bin/env bash
# gateway.sh - reading with no node: a mount over trustless gateways (--gateway, no --api).
#
# The gateway is Kubo's own (it implements the trustless spec), on loopback, in front of which
# gwproxy.py puts faults: a flipped byte, a truncated answer, 429 with Retry-After, a stall, a
# trickle (the real answer, a few bytes at a time), a different block than the one asked for,
# an oversized answer. In each case the mount never
# gives a wrong byte, keeps answering, and a second, good gateway serves the read. Then: with
# every gateway gone, a remount serves what was read before.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=build/src/ipfsfs tests/integration/gateway.sh
#
# shellcheck source-path=SCRIPTDIR disable=SC2012
# (SC2012: ls is one of the programs under test)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
require_node
lib_init

TEST_CID=QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR # the 4 bytes "Test"
T=5 # --timeout
CT=$T # the fault and CAR cases' --timeout (smaller for the trickle: its bound is in timeouts)

if ! start_node node; then
    not_ok "the test node starts"
    finish
fi
ok "the test node starts ($NODE_API, gateway $NODE_GATEWAY)"
GW_HOSTPORT=${NODE_GATEWAY#http://}

# ---- content ----------------------------------------------------------------------------------

DATA=$WORK/data
mkdir -p "$DATA"
: >"$DATA/empty"
printf x >"$DATA/one"
printf Test >"$DATA/test"
gen_file "$DATA/c262143" 262143 1
gen_file "$DATA/c262144" 262144 2
gen_file "$DATA/c262145" 262145 3
gen_file "$DATA/m1p7" $((1024 * 1024 + 7)) 4
gen_file "$DATA/m10" $((10 * 1024 * 1024)) 5
FILES=(empty one test c262143 c262144 c262145 m1p7 m10)

TREE=$DATA/tree
mkdir -p "$TREE/deep/l1/l2" "$TREE/with spaces" "$TREE/empty-dir"
printf 'top\n' >"$TREE/top.txt"
printf 'leaf\n' >"$TREE/deep/l1/l2/leaf.txt"
printf 'spaced\n' >"$TREE/with spaces/a file.txt"
gen_file "$TREE/deep/multi" 600000 6

MANY=$DATA/many
mkdir -p "$MANY"
for i in $(seq -w 1 1500); do
    printf 'entry %s\n' "$i" >"$MANY/f$i.txt"
done

# One file per fault case, so that each case reads blocks no earlier case has kept (600 KiB;
# the trickle's are multi-block files of 2.5 MiB).
FAULTS=(flip truncate limit stall trickle other big busy)
declare -A SIZE=([fault-trickle]=$((2560 * 1024)) [car-trickle]=$((2560 * 1024)))
for f in "${FAULTS[@]}"; do
    gen_file "$DATA/fault-$f" "${SIZE[fault-$f]:-$((600 * 1024))}" "$RANDOM"
done
gen_file "$DATA/alone" $((300 * 1024)) 77
gen_file "$DATA/never" 5000 78
gen_file "$DATA/dead" $((2 * 1024 * 1024)) 79
gen_file "$DATA/bounded" $((12 * 1024 * 1024)) 80
for i in 1 2 3 4; do gen_file "$DATA/late$i" $((5 * 1024 * 1024)) $((81 + i)); done
# One file per CAR case (the leaves are not to be had as blocks: the reader takes a CAR).
CARS=(pass flip truncate other trickle)
for f in "${CARS[@]}"; do
    gen_file "$DATA/car-$f" "${SIZE[car-$f]:-$((900 * 1024))}" "$RANDOM"
done

declare -A V0=() V1=()
add_failed=0
for f in "${FILES[@]}" "${FAULTS[@]/#/fault-}" "${CARS[@]/#/car-}" alone never dead bounded \
    late1 late2 late3 late4; do
    V0[$f]=$(add_file "$DATA/$f") || add_failed=1
done
for f in "${FILES[@]}"; do
    V1[$f]=$(add_file "$DATA/$f" "cid-version=1") || add_failed=1
done
TREE_V0=$(add_dir "$TREE" "") || add_failed=1
TREE_V1=$(add_dir "$TREE" "cid-version=1&raw-leaves=true") || add_failed=1
HAMT=$(add_dir "$MANY" "max-directory-links=1000") || add_failed=1
SAMEDIR=$DATA/same
mkdir -p "$SAMEDIR"
for i in $(seq 1 300); do printf 'the same bytes\n' >"$SAMEDIR/s$i.txt"; done
SAME=$(add_dir "$SAMEDIR" "") || add_failed=1
if [ "$add_failed" = 0 ]; then
    ok "the content is added to the node"
else
    not_ok "the content is added to the node"
    finish
fi
check_eq "the known answer: 'Test' is $TEST_CID on this node" "$TEST_CID" "${V0[test]}"
# The "other" fault serves this valid block instead of the one asked for.
OTHER_BLOCK=${V0[one]}

# ---- the proxies --------------------------------------------------------------------------

PROXY=$IPFSFS_SRCDIR/tests/integration/gwproxy.py
# start_proxy NAME: a gwproxy in front of the node's gateway; sets PROXY_URL[NAME].
declare -A PROXY_URL=() PROXY_PID=()
start_proxy() {
    local name=$1 pf=$WORK/$1.port
    : >"$WORK/$name.mode"
    python3 "$PROXY" --upstream "$GW_HOSTPORT" --mode-file "$WORK/$name.mode" \
        --port-file "$pf" --log "$WORK/$name.log" --max-seconds 1200 &
    PROXY_PID[$name]=$!
    track_pid "${PROXY_PID[$name]}"
    for _ in $(seq 1 100); do
        [ -s "$pf" ] && break
        sleep 0.1
    done
    PROXY_URL[$name]=http://127.0.0.1:$(cat "$pf")
}
mode() { echo "${*:2}" >"$WORK/$1.mode"; }
requests() { wc -l <"$WORK/$1.log" 2>/dev/null || echo 0; }

start_proxy a
start_proxy b
if [ -n "${PROXY_URL[a]}" ] && [ -n "${PROXY_URL[b]}" ]; then
    ok "two proxies in front of the gateway (${PROXY_URL[a]}, ${PROXY_URL[b]})"
else
    not_ok "two proxies in front of the gateway"
    finish
fi

# ---- reading through gateways -------------------------------------------------------------

MNT=$WORK/mnt
STORE=$WORK/store
if ! mount_ipfsfs "$MNT" --gateway="${PROXY_URL[a]}" --gateway="${PROXY_URL[b]}" \
    --store="$STORE" --timeout=$T; then
    not_ok "ipfsfs mounts with --gateway (twice) and no --api"
    finish
fi
ok "ipfsfs mounts with --gateway (twice) and no --api"

check_eq "the known answer reads through the gateways: cat $TEST_CID" "Test" \
    "$(cat "$MNT/$TEST_CID" 2>&1)"
for f in "${FILES[@]}"; do
    check "$f ($(stat -c %s "$DATA/$f") bytes): cmp through CIDv0" cmp "$DATA/$f" "$MNT/${V0[$f]}"
    check "$f: cmp through CIDv1" cmp "$DATA/$f" "$MNT/${V1[$f]}"
done
check "diff -r of a tree (CIDv0)" diff -r "$TREE" "$MNT/$TREE_V0"
check "diff -r of a tree (CIDv1, raw leaves)" diff -r "$TREE" "$MNT/$TREE_V1"
# One name in a directory not listed yet: only the shards on its path and its own block are
# asked for, not a block per entry (1,500 requests one after another; minutes through a
# public gateway).
before=$(($(requests a) + $(requests b)))
check_eq "stat of one name in the HAMT-sharded directory, not listed yet" \
    "$(stat -c %s "$MNT/$HAMT/f0777.txt" 2>&1)" "$(stat -c %s "$MANY/f0777.txt")"
asked=$(($(requests a) + $(requests b) - before))
check "... asks the gateways for a few blocks, not one per entry ($asked requests)" \
    test "$asked" -le 10
check_eq "... and reads" "$(cat "$MNT/$HAMT/f0777.txt" 2>&1)" "entry 0777"
check_errno "... a name it does not hold is ENOENT" ENOENT stat "$MNT/$HAMT/f9999.txt"
before=$(($(requests a) + $(requests b)))
check_eq "a HAMT-sharded directory lists its 1500 entries" 1500 "$(ls "$MNT/$HAMT" | wc -l)"
# The listing reads each entry's root block to tell its kind: in batches of parallel requests
# (through a gateway far away, one round trip after another took minutes), each block once.
asked=$(($(requests a) + $(requests b) - before))
prefetched=$("$IPFSFS_BIN" --stats "$MNT" 2>&1 | awk '$1 == "store_list_prefetched" { print $2 }')
check "... the entries' blocks came in batches (store_list_prefetched ${prefetched:-none})" \
    test "${prefetched:-0}" -gt 0
check "... a request per block at most, give or take retries ($asked requests, 1,769 blocks)" \
    test "$asked" -le 1900
check "diff -r of the HAMT-sharded directory" diff -r "$MANY" "$MNT/$HAMT"
before=$(($(requests a) + $(requests b)))
check_eq "a folder of 300 files of the same bytes lists them all, as files" 300 \
    "$(find "$MNT/$SAME" -mindepth 1 -type f -name 's*.txt' | wc -l)"
asked=$(($(requests a) + $(requests b) - before))
check "... asking for their one block once, not 300 times ($asked requests)" test "$asked" -le 3
check_eq "user.ipfs.cid of a file read through a gateway" "${V0[m10]}" \
    "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$MNT/${V0[m10]}" 2>&1)"
check_errno "an invalid CID is ENOENT" ENOENT stat "$MNT/QmNotACid"
# Content hashed with another function than sha2-256 cannot be checked here (documented):
# ENOTSUP (EOPNOTSUPP), not EIO, and the gateways are not blamed.
printf 'blake2b content\n' >"$DATA/blake"
BLAKE=$(add_file "$DATA/blake" "cid-version=1&hash=blake2b-256")
check_errno "a blake2b-256 CID through gateways only: ENOTSUP (cannot be verified)" ENOTSUP \
    read "$MNT/$BLAKE"
check_eq "... and a sha2-256 file still reads" "$(cat "$MNT/${V0[test]}" 2>&1)" Test
if [ "$(requests a)" -gt 0 ] || [ "$(requests b)" -gt 0 ]; then
    ok "the reads went through the gateways ($(requests a) + $(requests b) requests)"
else
    not_ok "the reads went through the gateways" "no request in either proxy's log"
fi
if grep -q "format=raw" "$WORK/a.log" "$WORK/b.log"; then
    ok "the requests ask for verifiable blocks (?format=raw)"
else
    not_ok "the requests ask for verifiable blocks (?format=raw)" "$(head -3 "$WORK/a.log")"
fi

# The startup line names the gateways; the statistics count what was asked of them (gw_*, and
# a line per gateway), through ipfsfs --stats as through the attribute.
start_line=$(grep -m1 '^ipfsfs: using ' "${MOUNT_LOG[$MNT]}")
if [[ $start_line == *"${PROXY_URL[a]}"* && $start_line == *"${PROXY_URL[b]}"* ]]; then
    ok "the startup line names both gateways"
else
    not_ok "the startup line names both gateways" "startup line: $start_line"
fi
for what in "ipfsfs --stats" "user.ipfsfs.stats"; do
    if [ "$what" = "ipfsfs --stats" ]; then
        text=$("$IPFSFS_BIN" --stats "$MNT" 2>&1)
    else
        text=$(getfattr --absolute-names --only-values -n user.ipfsfs.stats "$MNT" 2>&1)
    fi
    calls=$(awk '$1 == "gw_calls" { print $2 }' <<<"$text")
    lines=$(grep -cE "^gateway (${PROXY_URL[a]}|${PROXY_URL[b]}) ok=" <<<"$text")
    if [ "${calls:-0}" -gt 0 ] && [ "$lines" = 2 ]; then
        ok "$what of a gateway-only mount: gw_calls $calls, a line per gateway"
    else
        not_ok "$what of a gateway-only mount: gw_* counters and a line per gateway" \
            "gw_calls: ${calls:-none}, gateway lines: $lines" "$(head -5 <<<"$text")"
    fi
done

# Names are the store's: a file copied in stays local and reads back.
check "cp into the mount's root (names live in the local store)" cp "$DATA/c262145" "$MNT/copied"
check "... and reads back" cmp "$DATA/c262145" "$MNT/copied"
check_unmount "unmount; ipfsfs exits 0 with a clean log" "$MNT"

# ---- faults: one gateway misbehaves, the other serves ----------------------------------------

# fault_case FAULT MODE...: a fresh mount (its own store) asks proxy a first (both are new to
# it, and a comes first); a answers with MODE. The read must give the right bytes (from b).
fault_case() {
    local f=$1 m=$WORK/mnt-$1 t0 secs
    shift
    mode a "$@"
    mode b pass
    : >"$WORK/a.log"
    if ! mount_ipfsfs "$m" --gateway="${PROXY_URL[a]}" --gateway="${PROXY_URL[b]}" \
        --store="$WORK/store-$f" --timeout="$CT"; then
        not_ok "$f: ipfsfs mounts"
        return
    fi
    t0=$(now)
    check "$f: gateway a answers '$*', the read still gives the right bytes" \
        cmp "$DATA/fault-$f" "$m/${V0[fault-$f]}"
    secs=$(elapsed "$t0")
    if lt "$secs" $((CT + 2)); then
        ok "$f: within the timeout ($secs s)"
    else
        not_ok "$f: within the timeout" "took $secs s (--timeout=$CT)"
    fi
    if [ "$(requests a)" -gt 0 ]; then
        ok "$f: gateway a was asked ($(requests a) requests)"
    else
        not_ok "$f: gateway a was asked" "its log is empty"
    fi
    check "$f: the mount keeps answering (ls of its root)" ls "$m"
    case $f in
    flip | other | big)
        if grep -q "refused" "${MOUNT_LOG[$m]}"; then
            ok "$f: the wrong answer is logged as refused"
        else
            not_ok "$f: the wrong answer is logged as refused" "$(tail -5 "${MOUNT_LOG[$m]}")"
        fi
        ;;
    limit)
        if grep -q "HTTP 429" "${MOUNT_LOG[$m]}"; then
            ok "$f: the 429 is logged, and the gateway set aside"
        else
            not_ok "$f: the 429 is logged" "$(tail -5 "${MOUNT_LOG[$m]}")"
        fi
        ;;
    esac
    check_unmount "$f: unmount; ipfsfs exits 0 with a clean log" "$m"
}
fault_case flip flip
fault_case truncate truncate
fault_case limit limit 3
fault_case stall stall
CT=3 fault_case trickle trickle
fault_case other other "$OTHER_BLOCK"
# Gateway a turns to trickling once the file is open (its first block came from a, so a
# looked fastest and its leaves went to a, 8 at a time): that batch held the read until
# --timeout, with no time left for b (ETIMEDOUT in 3 of 8 tries). A block not whole within
# twice a's hedge delay now sends the rest to b. That wait is at most a third of --timeout:
# it grew with a's lateness, and a batch begun on a late gateway waited past --timeout
# (ETIMEDOUT once in CI, on a loaded machine).
for i in 1 2 3; do
    mode a pass
    mode b pass
    m=$WORK/mnt-late$i
    if mount_ipfsfs "$m" --gateway="${PROXY_URL[a]}" --gateway="${PROXY_URL[b]}" \
        --store="$WORK/store-late$i" --timeout=5; then
        check "a turns to trickling after the open ($i of 3): the read gives the right bytes" \
            python3 -c 'import sys
f = open(sys.argv[1], "rb")
open(sys.argv[2], "w").write("trickle 64 0.3\n")
sys.exit(f.read() != open(sys.argv[3], "rb").read())' "$m/${V0[late$i]}" "$WORK/a.mode" "$DATA/late$i"
        check_unmount "unmount (late trickle $i)" "$m"
    else
        not_ok "ipfsfs mounts (late trickle $i)"
    fi
done
# A lone gateway that stalls once the file is open: a read goes from the batch (stalled) to a
# CAR to single blocks, and waited for each (8 s at --timeout=5): now one --timeout in all.
mode a pass
m=$WORK/mnt-lone-stall
if mount_ipfsfs "$m" --gateway="${PROXY_URL[a]}" --store="$WORK/store-lone-stall" --timeout=5; then
    got=$(timeout 30 python3 -c 'import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
open(sys.argv[2], "w").write("stall\n")
t0 = time.time()
try:
    os.pread(fd, 4096, 3000000)
    r = "read"
except OSError as e:
    r = os.strerror(e.errno)
print("%s %.1f" % (r, time.time() - t0))' "$m/${V0[late4]}" "$WORK/a.mode" 2>&1)
    secs=${got##* }
    if [[ $got == "Connection timed out "* ]] && lt "$secs" 6.5; then
        ok "a lone gateway that stalls after the open: ETIMEDOUT within --timeout ($secs s)"
    else
        not_ok "a lone gateway that stalls after the open: ETIMEDOUT within --timeout" \
            "got: $got (--timeout=5)"
    fi
    mode a pass
    check_unmount "unmount (lone stall)" "$m"
else
    not_ok "ipfsfs mounts (lone stall)"
fi
fault_case big big
fault_case busy busy

# CARs: when the leaves cannot be had as blocks (both gateways answer 404 for them), the
# reader asks the range as one CAR (?format=car&dag-scope=entity&entity-bytes=FROM:TO),
# verified block by block as it streams. Gateway a spoils its CARs; b serves them whole.
# miss_list NAME: the file listing car-NAME's blocks below its root (for the cars mode).
miss_list() {
    rpc refs "arg=${V0[car-$1]}&recursive=true" | python3 -c '
import json, sys
for line in sys.stdin:
    print(json.loads(line)["Ref"])' >"$WORK/miss-$1"
    echo "$WORK/miss-$1"
}
# A CAR case reads within a few timeouts (a CAR may be tried, given up, and the next way taken).
car_bound() { echo $((4 * CT + 3)); }
car_case() {
    local f=$1 m=$WORK/mnt-car-$1 miss t0 secs
    shift
    miss=$(miss_list "$f")
    mode a cars "$miss" "$@"
    mode b cars "$miss" pass
    : >"$WORK/a.log"
    : >"$WORK/b.log"
    # b first: it serves the root block (for the stat), so a, new to the mount, is asked
    # first for the leaves and the CAR.
    if ! mount_ipfsfs "$m" --gateway="${PROXY_URL[b]}" --gateway="${PROXY_URL[a]}" \
        --store="$WORK/store-car-$f" --timeout="$CT"; then
        not_ok "CAR $f: ipfsfs mounts"
        return
    fi
    t0=$(now)
    check "CAR $f: leaves only as CARs, gateway a's CAR '$*': the read gives the right bytes" \
        cmp "$DATA/car-$f" "$m/${V0[car-$f]}"
    secs=$(elapsed "$t0")
    if lt "$secs" "$(car_bound)"; then
        ok "CAR $f: in $secs s (--timeout=$CT, bound $(car_bound) s)"
    else
        not_ok "CAR $f: within $(car_bound) s" "took $secs s (--timeout=$CT)"
    fi
    if grep -q "format=car&dag-scope=entity&entity-bytes=" "$WORK/a.log" "$WORK/b.log"; then
        ok "CAR $f: the reader asked a CAR of the range"
    else
        not_ok "CAR $f: the reader asked a CAR of the range" "$(cat "$WORK/a.log" "$WORK/b.log" | head -5)"
    fi
    case $f in
    flip | other)
        if grep -q "refused" "${MOUNT_LOG[$m]}"; then
            ok "CAR $f: the wrong CAR is logged as refused"
        else
            not_ok "CAR $f: the wrong CAR is logged as refused" "$(tail -5 "${MOUNT_LOG[$m]}")"
        fi
        ;;
    esac
    check "CAR $f: the mount keeps answering (ls of its root)" ls "$m"
    check_unmount "CAR $f: unmount; ipfsfs exits 0 with a clean log" "$m"
}
car_case pass pass
car_case flip flip
car_case truncate truncate
car_case other other "$OTHER_BLOCK"
# A trickle: a's CAR sends its real bytes, 64 at a time every 0.3 s (a block would take
# minutes). Progress counts in verified blocks: b's CAR takes the read over.
CT=3 car_case trickle trickle

# A lone gateway that trickles its CARs (its leaves 404 as blocks): the read fails within a
# few timeouts (not after minutes), and the mount keeps answering.
CT=3
mode a cars "$(miss_list trickle)" trickle
M=$WORK/mnt-trickle-alone
if mount_ipfsfs "$M" --gateway="${PROXY_URL[a]}" --store="$WORK/store-trickle-alone" \
    --timeout="$CT"; then
    check_errno_within "a lone trickling gateway (--timeout=$CT): the read fails in time" \
        "$(car_bound)" "ETIMEDOUT|EIO" read "$M/${V0[car-trickle]}"
    check "... the mount keeps answering (ls of its root)" ls "$M"
    check_unmount "unmount (lone trickle)" "$M"
else
    not_ok "ipfsfs mounts (lone trickle)"
fi
CT=$T
mode a pass
mode b pass

# A stalling gateway costs one hedge delay, not one per block: 8 blocks read with gateway a
# stalling take about one second more than the same read without.
mode a stall
mode b pass
: >"$WORK/a.log"
M=$WORK/mnt-hedge
if mount_ipfsfs "$M" --gateway="${PROXY_URL[a]}" --gateway="${PROXY_URL[b]}" \
    --store="$WORK/store-hedge" --timeout=$T; then
    t0=$(now)
    check "a stalling first gateway: a 2 MiB file (9 blocks) reads right" \
        cmp "$DATA/dead" "$M/${V0[dead]}"
    secs=$(elapsed "$t0")
    if lt "$secs" 4; then
        ok "... in $secs s: the stalling gateway cost one hedge delay, not one per block"
    else
        not_ok "... the stalling gateway cost one hedge delay, not one per block" \
            "took $secs s; gateway a was asked $(requests a) times"
    fi
    check_unmount "unmount (hedge)" "$M"
else
    not_ok "ipfsfs mounts (hedge)"
fi

# A gateway that accepts and never answers, beside a good one, and content neither has: the
# first read waits the whole timeout (the silent one might have it); once it is back from
# being set aside, it is on probation and costs at most ~2 s more than the good one's "not
# found", not another whole timeout. (TP: a timeout long enough to tell the two apart.)
TP=10
gen_file "$DATA/absent-1" 4000 91
gen_file "$DATA/absent-2" 4000 92
ABSENT1=$(add_file "$DATA/absent-1" only-hash=true)
ABSENT2=$(add_file "$DATA/absent-2" only-hash=true)
mode a stall
mode b pass
M=$WORK/mnt-probation
if mount_ipfsfs "$M" --gateway="${PROXY_URL[a]}" --gateway="${PROXY_URL[b]}" \
    --store="$WORK/store-probation" --timeout=$TP; then
    check_errno_within "a silent gateway and a good one, content neither has: ETIMEDOUT within the timeout ($TP s)" \
        $((TP + 3)) ETIMEDOUT stat "$M/$ABSENT1"
    sleep 3 # past its first backoff (1 s, then 2 s)
    t0=$(now)
    check_errno_within "... a second such read, once the silent one is asked again: ETIMEDOUT" \
        $((TP + 3)) ETIMEDOUT stat "$M/$ABSENT2"
    secs=$(elapsed "$t0")
    if lt "$secs" 5; then
        ok "... in $secs s: the silent gateway, on probation, did not cost a whole timeout again"
    else
        not_ok "... the silent gateway, on probation, did not cost a whole timeout again" \
            "took $secs s (--timeout=$TP)"
    fi
    check_eq "... and content the good one has still reads" "$(cat "$M/$TEST_CID" 2>&1)" Test
    check_unmount "unmount (probation)" "$M"
else
    not_ok "ipfsfs mounts (probation)"
fi
mode a pass

# The same for a host that drops connections (a full accept queue: its SYNs go unanswered), with
# a timeout longer than curl's connect timeout (10 s), which then ends the attempt first.
TD=14
python3 - "$WORK/drop.port" <<'PY' &
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
held = []
for _ in range(4):  # fill the accept queue; later connections are never answered
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(s.getsockname())
    except BlockingIOError:
        pass
    held.append(c)
time.sleep(0.5)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(900)
PY
track_pid $!
for _ in $(seq 1 100); do
    [ -s "$WORK/drop.port" ] && break
    sleep 0.1
done
gen_file "$DATA/absent-3" 4000 93
gen_file "$DATA/absent-4" 4000 94
ABSENT3=$(add_file "$DATA/absent-3" only-hash=true)
ABSENT4=$(add_file "$DATA/absent-4" only-hash=true)
M=$WORK/mnt-drop
if [ -s "$WORK/drop.port" ] && mount_ipfsfs "$M" --gateway="http://127.0.0.1:$(cat "$WORK/drop.port")" \
    --gateway="${PROXY_URL[b]}" --store="$WORK/store-drop" --timeout=$TD; then
    check_errno_within "a host that drops connections and a good one, content neither has: ETIMEDOUT" \
        $((TD + 3)) ETIMEDOUT stat "$M/$ABSENT3"
    sleep 3
    t0=$(now)
    check_errno_within "... a second such read: ETIMEDOUT" $((TD + 3)) ETIMEDOUT stat "$M/$ABSENT4"
    secs=$(elapsed "$t0")
    if lt "$secs" 5; then
        ok "... in $secs s: the silent host, on probation, did not cost curl's connect timeout again"
    else
        not_ok "... the silent host, on probation, did not cost curl's connect timeout again" \
            "took $secs s (--timeout=$TD)"
    fi
    check_unmount "unmount (dropping host)" "$M"
else
    not_ok "ipfsfs mounts (dropping host)"
fi

# One gateway alone, and it lies: EIO, never the wrong bytes, and the mount keeps answering.
mode a flip
M=$WORK/mnt-alone
if mount_ipfsfs "$M" --gateway="${PROXY_URL[a]}" --store="$WORK/store-alone" --timeout=$T; then
    check_errno "a lone lying gateway: the read fails with EIO" EIO read "$M/${V0[alone]}"
    check "... and gives no byte of wrong data" \
        bash -c "! cat '$M/${V0[alone]}' 2>/dev/null | cmp -s - '$DATA/alone'"
    check_errno_within "... the mount still answers: $TEST_CID, asked of the gateway set aside, fails at once" \
        2 "ETIMEDOUT|EIO" read "$M/$TEST_CID"
    mode a pass
    check_unmount "unmount (alone)" "$M"
else
    not_ok "ipfsfs mounts (alone)"
fi
mode a pass

# One gateway alone, Kubo's (offline), and a file it lacks a leaf of: it ends that CAR with
# "[Gateway Error: CAR stream truncated, response is incomplete]" after its 200. That file
# fails; the gateway is no liar for it (every block that came verified), and content it has
# reads at once after it.
head -c 1048583 /dev/urandom >"$DATA/holed"
HOLED=$(kubo add -Q --pin=false "$DATA/holed")
kubo block rm "$(kubo refs "$HOLED" | sed -n 3p)" >/dev/null
head -c 600000 /dev/urandom >"$DATA/rootless"
ROOTLESS=$(kubo add -Q --pin=false "$DATA/rootless")
kubo block rm "$ROOTLESS" >/dev/null # Kubo answers a CAR header, then its error text
echo "read after the holed file" >"$DATA/after-holed"
AFTER_HOLED=$(kubo add -Q "$DATA/after-holed")
M=$WORK/mnt-holed
if mount_ipfsfs "$M" --gateway="$NODE_GATEWAY" --store="$WORK/store-holed" --timeout=$T; then
    # shellcheck disable=SC2016 # $1 is for the inner shell
    check_fails_with "a file the lone gateway lacks a leaf of: cat fails with ETIMEDOUT" \
        "Connection timed out" timeout -k 2 $((T + 5)) bash -c 'cat "$1" >/dev/null' sh "$M/$HOLED"
    check_eq "... then content it has reads at once" \
        "$(timeout 3 cat "$M/$AFTER_HOLED" 2>&1)" "read after the holed file"
    check_errno_within "a file whose root it lacks: ETIMEDOUT" $((T + 2)) ETIMEDOUT \
        read "$M/$ROOTLESS"
    check_eq "... then content it has reads at once" \
        "$(timeout 3 cat "$M/$AFTER_HOLED" 2>&1)" "read after the holed file"
    check "... and it was not set aside as a liar" \
        bash -c "! grep -q 'refused, gateway set aside' '${MOUNT_LOG[$M]}'"
    check_unmount "unmount (holed)" "$M"
else
    not_ok "ipfsfs mounts (holed)"
fi

# ---- a node and gateways: the node first, the gateways for what it lacks ---------------------

# A second, empty node is the mount's --api; the first node's gateway has the content.
GW1=$NODE_GATEWAY
FIRST_API=$NODE_API FIRST_PID=$NODE_PID FIRST_REPO=$NODE_REPO FIRST_URL=$NODE_URL
if start_node node2; then
    ok "a second, empty node starts ($NODE_API)"
    M=$WORK/mnt-both
    if mount_ipfsfs "$M" --api="$NODE_API" --gateway="$GW1" --store="$WORK/store-both" \
        --timeout=$T; then
        ok "ipfsfs mounts with --api and --gateway"
        check "--api and --gateway: the startup line names the gateway" \
            grep -qE "^ipfsfs: using .*gateways: $GW1\$" "${MOUNT_LOG[$M]}"
        check "--api and --gateway: content only the gateway has reads (1 MiB + 7)" \
            cmp "$DATA/m1p7" "$M/${V0[m1p7]}"
        check "--api and --gateway: and a tree (diff -r)" diff -r "$TREE" "$M/$TREE_V1"
        served=$(getfattr --absolute-names --only-values -n user.ipfsfs.stats "$M" 2>/dev/null |
            awk '$1 == "fallback_served" { print $2 }')
        if [ "${served:-0}" -gt 0 ]; then
            ok "--api and --gateway: the stats count what the gateways served ($served)"
        else
            not_ok "--api and --gateway: the stats count what the gateways served" \
                "$(getfattr --absolute-names --only-values -n user.ipfsfs.stats "$M" 2>&1 | grep -i 'fallback\|gw_')"
        fi
        check "--api and --gateway: names still go to the node (cp, then fsync)" \
            bash -c "cp '$DATA/c262143' '$M/mine' && sync '$M/mine'"
        got=$(curl -s -X POST -m 10 "$NODE_URL/files/stat?arg=/mine" |
            python3 -c 'import json,sys; print(json.load(sys.stdin).get("Size", ""))' 2>/dev/null)
        check_eq "... and the node has it in MFS" "$got" 262143
        check_errno_within "--api and --gateway: a CID neither has fails within twice the timeout" \
            $((2 * T + 2)) "ETIMEDOUT|ENOENT" read "$M/QmWm6zZcvtK9kcXdKLtZryfpfARdgpZoX1VAh3KfSU4Kde"
        check_unmount "unmount (--api and --gateway)" "$M"
    else
        not_ok "ipfsfs mounts with --api and --gateway"
    fi
    stop_node
else
    not_ok "a second, empty node starts"
fi
NODE_API=$FIRST_API NODE_PID=$FIRST_PID NODE_REPO=$FIRST_REPO NODE_URL=$FIRST_URL

# A node that has the content but stalls on cat (its other calls answer): each read falls back
# to the gateway within twice --timeout, and the next pieces of the file go to the gateway
# first, not through another --timeout each (the read failed after one --timeout: the
# gateway's answer came after the read had given up; then 7 s for 700 KB at --timeout=3).
head -c 700000 /dev/urandom >"$DATA/catstall"
CATSTALL=$(kubo add -Q "$DATA/catstall")
start_slowproxy catproxy "127.0.0.1:$(sed -E 's|.*/tcp/([0-9]+).*|\1|' <<<"$NODE_API")" 300
M=$WORK/mnt-catstall
if mount_ipfsfs "$M" --api="/ip4/127.0.0.1/tcp/$SLOWPROXY_PORT/http" --gateway="$GW1" \
    --store="$WORK/store-catstall" --timeout=$T; then
    echo "stall 0 /api/v0/cat" >"$WORK/catproxy.mode"
    t0=$(date +%s.%N)
    check "a node that stalls on cat: the file reads whole through the gateway" \
        timeout -k 2 $((4 * T + 10)) cmp "$DATA/catstall" "$M/$CATSTALL"
    secs=$(echo "$(date +%s.%N) - $t0" | bc)
    check "... within twice --timeout (${secs} s)" \
        test "$(echo "$secs < 2 * $T + 2" | bc)" = 1
    check "... the later pieces asked the gateway first" \
        bash -c "getfattr --absolute-names --only-values -n user.ipfsfs.stats '$M' |
            awk '\$1 == \"fallback_first\" && \$2 > 0 { f = 1 } END { exit !f }'"
    echo "pass" >"$WORK/catproxy.mode"
    check_unmount "unmount (cat stalls)" "$M"
else
    not_ok "ipfsfs mounts through the proxy (cat stalls)"
fi

# ---- a bounded store: --store-size ----------------------------------------------------------

# Fetched blocks are a cache: past --store-size the least recently used go (never the names').
# Bytes the block files take (allocated), as the bound counts them.
block_bytes() { find "$1/blocks" -name '*.data' -printf '%b\n' 2>/dev/null | awk '{ s += $1 * 512 } END { print s + 0 }'; }
M=$WORK/mnt-bounded
SB=$WORK/store-bounded
if mount_ipfsfs "$M" --gateway="$GW1" --store="$SB" --store-size=4M --timeout=$T; then
    limit=$(getfattr --absolute-names --only-values -n user.ipfsfs.stats "$M" 2>/dev/null |
        awk '$1 == "store_size_limit" { print $2 }')
    if [ "${limit:-0}" = 0 ]; then
        ok "--store-size bounds the gateway store # SKIP the binary does not pass --store-size to the gateway store (main.c)"
        check_unmount "unmount (bounded)" "$M"
    else
        check "bounded store: a name (cp of 1 MiB + 7) reads back" \
            bash -c "cp '$DATA/m1p7' '$M/mine' && cmp '$DATA/m1p7' '$M/mine'"
        check "bounded store (--store-size=4M): a 12 MiB file reads right" \
            cmp "$DATA/bounded" "$M/${V0[bounded]}"
        check "bounded store: and 10 MiB more" cmp "$DATA/m10" "$M/${V0[m10]}"
        evicted=$(getfattr --absolute-names --only-values -n user.ipfsfs.stats "$M" 2>/dev/null |
            awk '$1 == "store_evicted_blocks" { print $2 }')
        if [ "${evicted:-0}" -gt 0 ]; then
            ok "bounded store: fetched blocks were evicted ($evicted)"
        else
            not_ok "bounded store: fetched blocks were evicted" "store_evicted_blocks=${evicted:-none}"
        fi
        check "bounded store: the name's blocks stay (cmp again)" cmp "$DATA/m1p7" "$M/mine"
        check_unmount "unmount (bounded)" "$M"
        # The name (1 MiB + 7, not evictable) plus at most the bound and a block of slack.
        used=$(block_bytes "$SB")
        if [ "$used" -le $(((4 + 2 + 1) * 1024 * 1024)) ]; then
            ok "bounded store: its block files take $((used / 1024)) KiB (bound 4 MiB + the 1 MiB name)"
        else
            not_ok "bounded store: its block files stay near the bound" "$((used / 1024)) KiB"
        fi
        if mount_ipfsfs "$M" --gateway="$GW1" --store="$SB" --store-size=4M --timeout=$T; then
            check "bounded store, remounted: the 12 MiB file still reads right (fetched again)" \
                cmp "$DATA/bounded" "$M/${V0[bounded]}"
            check "bounded store, remounted: the name reads back" cmp "$DATA/m1p7" "$M/mine"
            check_unmount "unmount (bounded, again)" "$M"
            used=$(block_bytes "$SB")
            if [ "$used" -le $(((4 + 2 + 1) * 1024 * 1024)) ]; then
                ok "bounded store: still $((used / 1024)) KiB after a second mount's reads"
            else
                not_ok "bounded store: still near the bound after a second mount" "$((used / 1024)) KiB"
            fi
        else
            not_ok "ipfsfs mounts the bounded store again"
        fi
    fi
else
    not_ok "ipfsfs mounts with --store-size and --gateway"
fi

# ---- a fetched block file cut short (a crash: fetched copies are never fsynced) -------------

M=$WORK/mnt-cut
SC=$WORK/store-cut
if mount_ipfsfs "$M" --gateway="$GW1" --store="$SC" --timeout=$T; then
    check "cut block: 1 MiB + 7 read through a gateway" cmp "$DATA/m1p7" "$M/${V0[m1p7]}"
    check_unmount "unmount (cut)" "$M"
    big=$(find "$SC/blocks" -name '*.data' -size +200k | head -1)
    if [ -n "$big" ] && chmod u+w "$big" && truncate -s 1000 "$big" && chmod u-w "$big" &&
        mount_ipfsfs "$M" --gateway="$GW1" --store="$SC" --timeout=$T; then
        check "cut block: after a block file was cut short, the file still reads right" \
            cmp "$DATA/m1p7" "$M/${V0[m1p7]}"
        check "cut block: the damage is logged" grep -q "corrupt" "${MOUNT_LOG[$M]}"
        check_unmount "unmount (cut, again)" "$M"
    else
        not_ok "cut block: a block file cut short, the store mounts again" "${big:-no block file}"
    fi
else
    not_ok "ipfsfs mounts (cut)"
fi

# ---- every gateway gone: a remount serves what was read --------------------------------------

kill "${PROXY_PID[a]}" "${PROXY_PID[b]}" 2>/dev/null
wait "${PROXY_PID[a]}" "${PROXY_PID[b]}" 2>/dev/null
M=$WORK/mnt-gone
if mount_ipfsfs "$M" --gateway="${PROXY_URL[a]}" --gateway="${PROXY_URL[b]}" \
    --store="$STORE" --timeout=$T; then
    ok "with every gateway gone, the store mounts again"
    for f in m10 c262145 test; do
        check "every gateway gone: $f, read before, reads from the store" \
            cmp "$DATA/$f" "$M/${V0[$f]}"
    done
    check "every gateway gone: the tree read before still diffs equal" \
        diff -r "$TREE" "$M/$TREE_V0"
    check "every gateway gone: the copied name is still there" cmp "$DATA/c262145" "$M/copied"
    t0=$(now)
    e=$(errno_of read "$M/${V0[never]}")
    secs=$(elapsed "$t0")
    check_eq "every gateway gone: content never read fails (ETIMEDOUT)" "$e" ETIMEDOUT
    if lt "$secs" $((T + 2)); then
        ok "... within the timeout ($secs s)"
    else
        not_ok "... within the timeout" "took $secs s"
    fi
    check_unmount "unmount (gone)" "$M"
else
    not_ok "with every gateway gone, the store mounts again"
fi

# ---- options --------------------------------------------------------------------------------

mkdir -p "$WORK/mnt-bad"
check_fails_with "--gateway with a URL that is not http(s) is refused" "invalid gateway URL" \
    "$IPFSFS_BIN" --gateway=ftp://example.org --store="$WORK/s-bad" "$WORK/mnt-bad"
check_fails_with "--gateway with a port past 65535 is refused at once" \
    "invalid gateway URL 'http://127.0.0.1:430951'" \
    "$IPFSFS_BIN" --gateway=http://127.0.0.1:430951 --store="$WORK/s-bad" "$WORK/mnt-bad"
check_fails_with "-o gateway=URL1,URL2 reads every URL (the second one is checked too)" \
    "invalid gateway URL 'gopher://nope'" \
    "$IPFSFS_BIN" -o gateway=http://127.0.0.1:9,gopher://nope -o store="$WORK/s-bad" "$WORK/mnt-bad"

finish
