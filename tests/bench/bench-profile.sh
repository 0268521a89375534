#!/usr/bin/env bash
# bench-profile.sh - where the time of a cold sequential read goes. Three cold reads of the same
# file (page cache dropped, fresh mount before each), each watched differently:
#
#   1. perf stat -e task-clock,context-switches -p PID   on ipfsfs and on the node, and the busy
#      time of all CPUs (/proc/stat): how much CPU each side uses during the read, against the
#      same figures for curl's read
#   2. perf record -e cpu-clock --call-graph dwarf -p PID   on ipfsfs: the top functions (self
#      time), by thread, and the callers of the top ones
#   3. strace -c -f -p PID   on ipfsfs: the system calls, by time and count (strace slows the
#      process down a lot: its throughput is not representative)
#   4. the node alone: the whole file read through ranged cat calls of 256K ... 64M (one
#      keep-alive connection, or two), with the node's CPU time: what each request size costs
#      the node, i.e. the floor for ipfsfs's fetch size (bench-ranges.py)
#
# Needs perf (Debian: linux-perf) and strace; a part whose tool is missing is skipped.
# Environment: BENCH_PROFILE_SIZE (default 256M), BENCH_FS_ARGS, and those of lib.sh.
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE=$(to_bytes "${BENCH_PROFILE_SIZE:-256M}")
read -r -a EXTRA <<<"${BENCH_FS_ARGS:-}"
HAVE_PERF=0
if command -v perf >/dev/null 2>&1 && perf stat -e task-clock true >/dev/null 2>&1; then
    HAVE_PERF=1
fi

bench_require
bench_init bench-profile
start_node
note "generating $SIZE random bytes"
gen_file "$WORK/data" "$SIZE"
add_file_to CID "$WORK/data"
rm -f "$WORK/data"
MNT=$WORK/mnt
mount_fs "$MNT" "${EXTRA[@]}"

# watch_stat NAME PID|-a: start perf stat in the background (its output in $WORK/NAME.stat)
watch_stat() {
    local target=(-p "$2")
    [ "$2" = -a ] && target=(-a)
    show_only perf stat -e task-clock,context-switches "${target[@]}" -o "$WORK/$1.stat"
    perf stat -e task-clock,context-switches "${target[@]}" -o "$WORK/$1.stat" 3>&- &
    STAT_PIDS+=("$!")
    track_pid "$!"
}

stop_stats() {
    local p
    for p in "${STAT_PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
    for p in "${STAT_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    STAT_PIDS=()
}

# busy_line J0 SECS: "X CPUs busy" since J0
busy_line() {
    calc "($(busy_jiffies) - $1) / $(getconf CLK_TCK) / $2" "all CPUs: %.2f of $(nproc) busy on average"
}

# stat_line NAME SECS: "task-clock X ms (Y CPUs over the read), Z context switches"
stat_line() {
    awk -v secs="$2" '
        /task-clock/ { gsub(",", "", $1); ms = $1 }
        /context-switches/ { gsub(",", "", $1); cs = $1 }
        END { printf "cpu %.0f ms = %.2f CPUs over the read, %s context switches", ms, ms / 1000 / secs, cs }' "$WORK/$1.stat"
}

if [ "$HAVE_PERF" = 1 ]; then
    say "-- 1. CPU use during a cold read: curl, then ipfsfs"
    STAT_PIDS=()
    drop_caches
    watch_stat curl-node "$NODE_PID"
    sleep 0.3
    J0=$(busy_jiffies)
    timed T curl -s -X POST -m 300 "$NODE_URL/cat?arg=$CID" -o /dev/null
    J1=$(busy_line "$J0" "$T")
    stop_stats
    note "curl: $T s, $(mbps "$SIZE" "$T") MB/s"
    note "  node:   $(stat_line curl-node "$T")"
    note "  $J1"

    remount_cold
    watch_stat fs-node "$NODE_PID"
    watch_stat fs-ipfsfs "$FS_PID"
    sleep 0.3
    J0=$(busy_jiffies)
    timed T timeout 300 cat "$MNT/$CID" >/dev/null
    J1=$(busy_line "$J0" "$T")
    stop_stats
    note "ipfsfs: $T s, $(mbps "$SIZE" "$T") MB/s"
    note "  node:   $(stat_line fs-node "$T")"
    note "  ipfsfs: $(stat_line fs-ipfsfs "$T")"
    note "  $J1"
    print_stats

    say "-- 2. perf record on ipfsfs during a cold read"
    remount_cold
    show_only perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$FS_PID" -o "$WORK/perf.data"
    perf record -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$FS_PID" -o "$WORK/perf.data" \
        >"$WORK/perf.log" 2>&1 3>&- &
    PERF=$!
    track_pid "$PERF"
    sleep 0.5
    timed T timeout 300 cat "$MNT/$CID" >/dev/null
    kill -INT "$PERF" 2>/dev/null
    wait "$PERF" 2>/dev/null
    note "read under perf record: $T s, $(mbps "$SIZE" "$T") MB/s"
    note "top functions by self time (perf report --no-children --sort dso,sym):"
    perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,sym -g none --percent-limit 1 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -30 | sed 's/^/#   /'
    note "by thread (perf report --sort pid):"
    perf report -i "$WORK/perf.data" --stdio --no-children --sort pid -g none --percent-limit 2 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -15 | sed 's/^/#   /'
    note "callers of the top 5 (perf report --no-children --sort sym -g caller):"
    perf report -i "$WORK/perf.data" --stdio --no-children --sort sym -g caller,2,callee,function,percent \
        --percent-limit 4 2>/dev/null | grep -v '^#' | grep -v '^$' | head -120 | sed 's/^/#   /'
else
    note "perf is missing or does not work (apt-get install linux-perf): parts 1 and 2 skipped"
fi

if command -v strace >/dev/null 2>&1; then
    say "-- 3. strace -c on ipfsfs during a cold read"
    remount_cold
    show_only strace -c -f -p "$FS_PID" -o "$WORK/strace.out"
    strace -c -f -p "$FS_PID" -o "$WORK/strace.out" 2>/dev/null 3>&- &
    STRACE=$!
    track_pid "$STRACE"
    sleep 0.5
    timed T timeout 300 cat "$MNT/$CID" >/dev/null
    kill -INT "$STRACE" 2>/dev/null
    wait "$STRACE" 2>/dev/null
    note "read under strace: $T s, $(mbps "$SIZE" "$T") MB/s (strace slows it)"
    head -25 "$WORK/strace.out" | sed 's/^/#   /'
else
    note "strace is missing: part 3 skipped"
fi

say "-- 4. the node alone: the whole file in ranged cat calls of one size (page cache dropped)"
unmount_fs
for spec in 262144:1 1048576:1 4194304:1 16777216:1 67108864:1 1048576:2 4194304:2 "$SIZE:1"; do
    drop_caches
    n0=$(cpu_secs "$NODE_PID")
    out=$(show timeout 120 python3 "$BENCH_LIB_DIR/bench-ranges.py" "$NODE_URL" "$CID" "$SIZE" "${spec%:*}" "${spec#*:}") ||
        out="failed: $out"
    n1=$(cpu_secs "$NODE_PID")
    note "$out node_cpu $(calc "$n1 - $n0" %.2f)"
done
bench_done
