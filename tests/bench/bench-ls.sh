#!/usr/bin/env bash
# bench-ls.sh - `ls -l` of a directory of BENCH_LS_ENTRIES (default 10,000) small files, the first
# time (fresh mount) and the second time, against the direct RPC listing on the same node:
#
#   ipfsfs:  ls -l MNT/<cid> >/dev/null       first (cold mount, page cache dropped), second
#   direct:  curl -s -X POST "$URL/ls?arg=/ipfs/<cid>" -o /dev/null   (also with &stream=true,
#            which is what ipfsfs asks for)
#
# Target: the second ls -l takes < 5% of the first. The test node shards directories of more
# than 1000 entries (HAMT), so this also lists a HAMT directory.
#
# Environment: BENCH_LS_ENTRIES (default 10000), BENCH_FS_ARGS, and those of lib.sh.
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ENTRIES=${BENCH_LS_ENTRIES:-10000}
PY=$BENCH_LIB_DIR/bench-ls.py
read -r -a EXTRA <<<"${BENCH_FS_ARGS:-}"

bench_require
bench_init bench-ls
start_node

BOUNDARY=ipfsfs-bench-$RANDOM$RANDOM
show python3 "$PY" body "$WORK/body" "$BOUNDARY" "$ENTRIES" || die "could not write the body"
t0=$(now_ns)
show curl -s -X POST -m 600 -H "Content-Type: multipart/form-data; boundary=$BOUNDARY" \
    --data-binary "@$WORK/body" "$NODE_URL/add?pin=true" >"$WORK/add.out" || die "add failed"
CID=$(python3 "$PY" root <"$WORK/add.out") || die "add: $(tail -c 300 "$WORK/add.out")"
note "added a directory of $ENTRIES files in $(secs_since "$t0") s: $CID"
MNT=$WORK/mnt
mount_fs "$MNT" "${EXTRA[@]}"

say "-- direct: the RPC listing (page cache dropped first)"
drop_caches
timed CURL1 curl -s -X POST -m 300 "$NODE_URL/ls?arg=/ipfs/$CID" -o "$WORK/ls.json" ||
    die "ls failed"
note "curl ls: $CURL1 s, $(stat -c %s "$WORK/ls.json") bytes"
timed CURL2 curl -s -X POST -m 300 "$NODE_URL/ls?arg=/ipfs/$CID" -o /dev/null
note "curl ls, again: $CURL2 s"
timed CURLS curl -s -X POST -m 300 "$NODE_URL/ls?arg=/ipfs/$CID&stream=true" -o "$WORK/ls.ndjson"
note "curl ls stream=true: $CURLS s, $(wc -l <"$WORK/ls.ndjson") lines"

say "-- ipfsfs: ls -l (stdout to /dev/null), fresh mount, page cache dropped"
remount_cold
f0=$(cpu_secs "$FS_PID")
timed FIRST timeout 300 ls -l "$MNT/$CID" >/dev/null || note "ls -l failed"
f1=$(cpu_secs "$FS_PID")
note "first ls -l: $FIRST s (ipfsfs cpu $(calc "$f1 - $f0" %.2f) s)"
timed SECOND timeout 300 ls -l "$MNT/$CID" >/dev/null || note "ls -l failed"
note "second ls -l: $SECOND s"
got=$(timeout 300 ls "$MNT/$CID" | wc -l)
[ "$got" -eq "$ENTRIES" ] || note "WARNING: ls shows $got entries, want $ENTRIES"
print_stats
drop_caches
timed THIRD timeout 300 ls -l "$MNT/$CID" >/dev/null || note "ls -l failed"
note "ls -l after drop_caches, same mount (kernel caches gone, ipfsfs caches kept): $THIRD s"

R=$(calc "$SECOND / $FIRST" %.4f)
record "ls -l first (s)" "$FIRST" "$CURL1" "$(calc "$FIRST / $CURL1")" "-" "-"
record "ls -l second (s)" "$SECOND" "$CURL2" "$(calc "$SECOND / $CURL2")" "-" "-"
record "ls -l second/first" "$R" "-" "$R" "< 0.05" "$(verdict "$R < 0.05")"
record "ls -l after drop_caches (s)" "$THIRD" "$CURLS" "$(calc "$THIRD / $CURLS")" "-" "-"
print_stats
bench_done
