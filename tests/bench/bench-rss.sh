#!/usr/bin/env bash
# bench-rss.sh - peak resident memory of the ipfsfs process while it reads a large file with a
# small chunk cache:
#
#   ipfsfs --cache-size=64M MNT;  cat MNT/<cid> >/dev/null  (BENCH_RSS_SIZE, default 1G)
#   peak = VmHWM from /proc/PID/status after the read (VmRSS is also sampled every 0.1 s)
#
# Target: peak RSS <= 96 MiB (cache budget + 32 MiB). The read's throughput is shown as well
# (direct: curl of the same file, for reference).
#
# Environment: BENCH_RSS_SIZE (default 1G), BENCH_RSS_CACHE (default 64M), BENCH_FS_ARGS, and
# those of lib.sh.
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE=$(to_bytes "${BENCH_RSS_SIZE:-1G}")
CACHE=${BENCH_RSS_CACHE:-64M}
LIMIT_KB=$(($(to_bytes "$CACHE") / 1024 + 32 * 1024))
read -r -a EXTRA <<<"${BENCH_FS_ARGS:-}"

bench_require
bench_init bench-rss
start_node

note "generating $SIZE random bytes"
gen_file "$WORK/data" "$SIZE"
add_file_to CID "$WORK/data"
rm -f "$WORK/data"
MNT=$WORK/mnt
drop_caches
mount_fs "$MNT" --cache-size="$CACHE" "${EXTRA[@]}"
BASE_KB=$(proc_kb "$FS_PID" VmHWM)
note "after mounting: VmHWM $BASE_KB kB, VmRSS $(proc_kb "$FS_PID" VmRSS) kB, threads $(proc_kb "$FS_PID" Threads)"

# Sample VmRSS while the read runs (the peak is VmHWM; the samples show the shape).
(
    exec 3>&-
    while kill -0 "$FS_PID" 2>/dev/null; do
        proc_kb "$FS_PID" VmRSS
        sleep 0.1
    done
) >"$WORK/rss.samples" 2>/dev/null &
SAMPLER=$!
track_pid "$SAMPLER"

say "-- read $SIZE bytes through ipfsfs --cache-size=$CACHE (stdout to /dev/null)"
f0=$(cpu_secs "$FS_PID")
READ_SECS=
timed READ_SECS timeout 300 cat "$MNT/$CID" >/dev/null || note "cat failed"
f1=$(cpu_secs "$FS_PID")
PEAK_KB=$(proc_kb "$FS_PID" VmHWM)
kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
note "read: $READ_SECS s, $(mbps "$SIZE" "$READ_SECS") MB/s, ipfsfs cpu $(calc "$f1 - $f0" %.2f) s"
note "VmHWM $PEAK_KB kB; VmRSS samples: $(sort -n "$WORK/rss.samples" | awk 'NR == 1 { min = $1 } { max = $1; n++ } END { printf "%d samples, %d..%d kB", n, min, max }')"
note "threads now: $(proc_kb "$FS_PID" Threads)"
print_stats

drop_caches
CURL_SECS=
timed CURL_SECS curl -s -X POST -m 300 "$NODE_URL/cat?arg=$CID" -o /dev/null
note "curl: $CURL_SECS s, $(mbps "$SIZE" "$CURL_SECS") MB/s"

PEAK_MIB=$(calc "$PEAK_KB / 1024" %.1f)
record "peak RSS MiB ($((SIZE >> 20)) MiB read)" "$PEAK_MIB" "-" "-" "<= $((LIMIT_KB / 1024)) MiB" "$(verdict "$PEAK_KB <= $LIMIT_KB")"
record "1 GiB read MB/s (cache $CACHE)" "$(mbps "$SIZE" "$READ_SECS")" "$(mbps "$SIZE" "$CURL_SECS")" "$(calc "$CURL_SECS / $READ_SECS")" "-" "-"
bench_done
