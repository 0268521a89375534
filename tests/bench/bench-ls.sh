#!/usr/bin/env bash
# bench-ls.sh - `ls -l` of a directory of BENCH_LS_ENTRIES (default 10,000) small files, cold
# (fresh mount, page cache dropped) and warm (at once again), against the direct RPC listing on
# the same node, BENCH_ROUNDS (2) rounds alternating (direct, ipfsfs, direct, ipfsfs):
#
#   direct:  curl -s -X POST "$URL/ls?arg=/ipfs/<cid>" -o FILE            (page cache dropped)
#            curl ... "ls?arg=/ipfs/<cid>&offline=true"                  (what ipfsfs sends)
#   ipfsfs:  ls -l MNT/<cid> >/dev/null   cold, then warm
#
# Targets (issue 11): cold ls -l <= 1.2 x the RPC ls; warm <= 5 % of cold. Kubo shards
# directories of more than 256 KiB of links (HAMT), so this lists a HAMT directory.
#
# Environment: BENCH_LS_ENTRIES (default 10000), BENCH_ROUNDS (2), BENCH_FS_ARGS, and those of
# lib.sh.
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

ROUNDS=${BENCH_ROUNDS:-2}
c1=() cs=() fc=() fw=()
for r in $(seq 1 "$ROUNDS"); do
    say "-- round $r, direct: the RPC listing (page cache dropped first)"
    drop_caches
    timed T curl -s -X POST -m 300 "$NODE_URL/ls?arg=/ipfs/$CID" -o "$WORK/ls.json" || die "ls failed"
    note "curl ls: $T s, $(stat -c %s "$WORK/ls.json") bytes"
    c1+=("$T")
    drop_caches
    timed T curl -s -X POST -m 300 "$NODE_URL/ls?arg=/ipfs/$CID&offline=true" -o "$WORK/ls2.json"
    note "curl ls offline=true: $T s, $(stat -c %s "$WORK/ls2.json") bytes"
    cs+=("$T")

    say "-- round $r, ipfsfs: ls -l (stdout to /dev/null), fresh mount, page cache dropped"
    remount_cold
    f0=$(cpu_secs "$FS_PID")
    timed T timeout 300 ls -l "$MNT/$CID" >/dev/null || note "ls -l failed"
    note "cold ls -l: $T s (ipfsfs cpu $(calc "$(cpu_secs "$FS_PID") - $f0" %.2f) s, requests $(stat_value rpc_requests))"
    fc+=("$T")
    timed T timeout 300 ls -l "$MNT/$CID" >/dev/null || note "ls -l failed"
    note "warm ls -l: $T s"
    fw+=("$T")
done
got=$(timeout 300 ls "$MNT/$CID" | wc -l)
[ "$got" -eq "$ENTRIES" ] || note "WARNING: ls shows $got entries, want $ENTRIES"
print_stats
drop_caches
timed THIRD timeout 300 ls -l "$MNT/$CID" >/dev/null || note "ls -l failed"
note "ls -l after drop_caches, same mount (kernel caches gone, ipfsfs caches kept): $THIRD s"
note "rounds: curl ls ${c1[*]}; curl ls offline ${cs[*]}; cold ls -l ${fc[*]}; warm ls -l ${fw[*]}"

CURL1=$(median "${c1[@]}")
CURLS=$(median "${cs[@]}")
FIRST=$(median "${fc[@]}")
SECOND=$(median "${fw[@]}")
R=$(calc "$FIRST / $CURL1")
record "ls -l cold (s)" "$FIRST" "$CURL1" "$R" "ratio <= 1.2" "$(verdict "$R <= 1.2")"
record "ls -l cold vs ls offline (s)" "$FIRST" "$CURLS" "$(calc "$FIRST / $CURLS")" "-" "-"
R=$(calc "$SECOND / $FIRST" %.4f)
record "ls -l warm (s)" "$SECOND" "-" "-" "-" "-"
record "ls -l warm/cold" "$R" "-" "$R" "<= 0.05" "$(verdict "$R <= 0.05")"
record "ls -l after drop_caches (s)" "$THIRD" "$CURLS" "$(calc "$THIRD / $CURLS")" "-" "-"
bench_done
