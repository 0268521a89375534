#!/usr/bin/env bash
# bench-random.sh - random 4 KiB reads at random offsets of a large file, cold:
#
#   ipfsfs:  os.pread(fd, 4096, O) on MNT/<cid>, BENCH_RANDOM_READS times (fresh mount, page
#            cache dropped)
#   direct:  POST cat?arg=<cid>&offset=O&length=4096 for the same offsets, in the same order, over
#            one keep-alive connection (python3 http.client), page cache dropped first
#
# BENCH_ROUNDS rounds, alternating (direct, ipfsfs, direct, ipfsfs); round R reads the offsets of
# seed BENCH_RANDOM_SEED + R - 1 both ways. Prints the per-read latency (mean, median, p90, p99)
# of both, per round and averaged over the rounds, and the ratio of the means.
# Target: ipfsfs not slower per read (mean ratio ipfsfs/direct <= 1). ipfsfs reads such reads
# directly (no chunk), from the deepest node of the file's DAG it knows (reader.h, "Direct
# reads"): the statistics line after each round says how many went below the root.
#
# Environment: BENCH_RANDOM_SIZE (default 1G), BENCH_RANDOM_READS (default 2000),
# BENCH_RANDOM_SEED (default 42), BENCH_ROUNDS (default 2), BENCH_FS_ARGS (extra ipfsfs
# options), and those of lib.sh.
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE=$(to_bytes "${BENCH_RANDOM_SIZE:-1G}")
READS=${BENCH_RANDOM_READS:-2000}
SEED=${BENCH_RANDOM_SEED:-42}
ROUNDS=${BENCH_ROUNDS:-2}
PY=$BENCH_LIB_DIR/bench-random.py
read -r -a EXTRA <<<"${BENCH_FS_ARGS:-}"

bench_require
bench_init bench-random
start_node

note "generating $SIZE random bytes"
gen_file "$WORK/data" "$SIZE"
add_file_to CID "$WORK/data"
rm -f "$WORK/data"
MNT=$WORK/mnt
mount_fs "$MNT" "${EXTRA[@]}"

# value FILE KEY
value() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

for r in $(seq 1 "$ROUNDS"); do
    seed=$((SEED + r - 1))
    say "-- round $r, direct: $READS ranged cat calls (page cache dropped first)"
    drop_caches
    n0=$(cpu_secs "$NODE_PID")
    show timeout 300 python3 "$PY" rpc "$NODE_URL" "$CID" "$SIZE" "$READS" "$seed" >"$WORK/rpc.$r" ||
        die "the RPC run failed: $(cat "$WORK/rpc.$r")"
    n1=$(cpu_secs "$NODE_PID")
    sed 's/^/#   /' "$WORK/rpc.$r"
    note "cpu: node $(calc "$n1 - $n0" %.2f) s"

    say "-- round $r, ipfsfs: $READS preads of 4096 bytes (fresh mount, page cache dropped)"
    remount_cold
    n0=$(cpu_secs "$NODE_PID")
    f0=$(cpu_secs "$FS_PID")
    show timeout 300 python3 "$PY" mount "$MNT/$CID" "$SIZE" "$READS" "$seed" >"$WORK/fs.$r" ||
        die "the mount run failed: $(cat "$WORK/fs.$r")"
    n1=$(cpu_secs "$NODE_PID")
    f1=$(cpu_secs "$FS_PID")
    sed 's/^/#   /' "$WORK/fs.$r"
    note "cpu: node $(calc "$n1 - $n0" %.2f) s, ipfsfs $(calc "$f1 - $f0" %.2f) s; requests $(stat_value rpc_requests) (direct reads $(stat_value direct_reads), of which below the root $(stat_value direct_reads_deep); blocks fetched for the DAG map $(stat_value dag_fetches))"
    if [ "$(value "$WORK/fs.$r" digest)" != "$(value "$WORK/rpc.$r" digest)" ]; then
        note "WARNING: the bytes read through the mount differ from those of the RPC calls"
    fi
    note "round $r: mean ipfsfs/direct = $(calc "$(value "$WORK/fs.$r" mean_us) / $(value "$WORK/rpc.$r" mean_us)")"
done
print_stats

# avg KEY PREFIX: the mean over the rounds of KEY in $WORK/PREFIX.R
avg() {
    local r sum=0
    for r in $(seq 1 "$ROUNDS"); do
        sum=$(calc "$sum + $(value "$WORK/$2.$r" "$1")" %.3f)
    done
    calc "$sum / $ROUNDS" %.1f
}
for k in mean_us median_us p90_us p99_us; do
    a=$(avg "$k" fs)
    b=$(avg "$k" rpc)
    r=$(calc "$a / $b")
    if [ "$k" = mean_us ]; then
        record "random 4K read $k" "$a" "$b" "$r" "ratio <= 1" "$(verdict "$r <= 1")"
    else
        record "random 4K read $k" "$a" "$b" "$r" "-" "-"
    fi
done
bench_done
