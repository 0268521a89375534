#!/usr/bin/env bash
# bench-seq.sh - sequential read of a large file: cold (page cache dropped, fresh mount) and
# warm (page cache), through ipfsfs and with the direct RPC call on the same node.
#
#   cold:  cat MNT/<cid> >/dev/null            vs  curl -s -X POST "$URL/cat?arg=<cid>" -o /dev/null
#          target: ipfsfs >= 0.95 x curl (issue 11)
#   warm:  cat MNT/<cid> >/dev/null again (from the page cache)     target: >= 1 GB/s
#
# Each cold figure is the median of BENCH_ROUNDS rounds; before every round the kernel's caches
# are dropped (echo 3 >/proc/sys/vm/drop_caches) and, for ipfsfs, the mount is made afresh so its
# own chunk cache is empty too. The CPU time the node and ipfsfs used is shown for each read.
#
# Environment: BENCH_SEQ_SIZE (default 256M), BENCH_ROUNDS (default 5), BENCH_FS_ARGS (extra
# ipfsfs options, e.g. "--readahead=32M"), and those of lib.sh.
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE=$(to_bytes "${BENCH_SEQ_SIZE:-256M}")
ROUNDS=${BENCH_ROUNDS:-5}
read -r -a EXTRA <<<"${BENCH_FS_ARGS:-}"

bench_require
bench_init bench-seq
start_node

note "generating $SIZE random bytes"
gen_file "$WORK/data" "$SIZE"
add_file_to CID "$WORK/data"
rm -f "$WORK/data"
MNT=$WORK/mnt
mount_fs "$MNT" "${EXTRA[@]}"

# one_read LABEL CMD...: time CMD (its standard output goes to /dev/null), print MB/s and the CPU seconds of the node and of ipfsfs.
# Sets READ_MBPS and READ_NODE_CPU (the node's CPU seconds: less sensitive than wall time to
# other work on the machine).
one_read() {
    local label=$1 secs n0 n1 f0 f1
    shift
    n0=$(cpu_secs "$NODE_PID")
    f0=$(cpu_secs "$FS_PID")
    timed secs timeout 300 "$@" >/dev/null || note "the command failed (status $?)"
    n1=$(cpu_secs "$NODE_PID")
    f1=$(cpu_secs "$FS_PID")
    READ_MBPS=$(mbps "$SIZE" "$secs")
    READ_NODE_CPU=$(calc "$n1 - $n0" %.2f)
    note "$label: $secs s, $READ_MBPS MB/s; cpu: node $READ_NODE_CPU s, ipfsfs $(calc "$f1 - $f0" %.2f) s"
}

say "-- cold sequential read, $ROUNDS rounds (each after drop_caches; ipfsfs remounted)"
curl_runs=()
fs_runs=()
curl_cpu=()
fs_cpu=()
for r in $(seq 1 "$ROUNDS"); do
    drop_caches
    one_read "round $r curl  " curl -s -X POST -m 300 "$NODE_URL/cat?arg=$CID" -o /dev/null
    curl_runs+=("$READ_MBPS")
    curl_cpu+=("$READ_NODE_CPU")
    remount_cold
    one_read "round $r ipfsfs" cat "$MNT/$CID"
    fs_runs+=("$READ_MBPS")
    fs_cpu+=("$READ_NODE_CPU")
done
print_stats
CURL_COLD=$(median "${curl_runs[@]}")
FS_COLD=$(median "${fs_runs[@]}")
R=$(calc "$FS_COLD / $CURL_COLD")
record "cold seq read MB/s" "$FS_COLD" "$CURL_COLD" "$R" "ratio >= 0.95" "$(verdict "$R >= 0.95")"
note "MB/s of each round: ipfsfs ${fs_runs[*]}; curl ${curl_runs[*]}"
CURL_CPU=$(median "${curl_cpu[@]}")
FS_CPU=$(median "${fs_cpu[@]}")
record "cold seq node CPU s" "$FS_CPU" "$CURL_CPU" "$(calc "$FS_CPU / $CURL_CPU")" "-" "-"

say "-- warm re-read (page cache)"
warm_runs=()
for r in 1 2 3; do
    one_read "warm $r ipfsfs" cat "$MNT/$CID"
    warm_runs+=("$READ_MBPS")
done
one_read "warm curl (node's files in the page cache)" curl -s -X POST -m 300 "$NODE_URL/cat?arg=$CID" -o /dev/null
CURL_WARM=$READ_MBPS
FS_WARM=$(median "${warm_runs[@]}")
R=$(calc "$FS_WARM / $CURL_WARM")
record "warm re-read MB/s" "$FS_WARM" "$CURL_WARM" "$R" ">= 1000 MB/s" "$(verdict "$FS_WARM >= 1000")"

# The chunk cache keeps only the last scan_keep bytes (max(--readahead, 4 MiB)) of a
# sequential read (reader.h): this re-read goes mostly to the node again, by design.
say "-- page cache dropped, same mount (ipfsfs chunk cache as the last read left it)"
drop_caches
one_read "chunk-cache read" cat "$MNT/$CID"
record "chunk-cache re-read MB/s" "$READ_MBPS" "$CURL_WARM" "$(calc "$READ_MBPS / $CURL_WARM")" "-" "-"
print_stats
bench_done
