#!/usr/bin/env bash
# bench-random.sh - random 4 KiB reads at random offsets of a large file, cold:
#
#   ipfsfs:  os.pread(fd, 4096, O) on MNT/<cid>, BENCH_RANDOM_READS times (fresh mount, page
#            cache dropped)
#   direct:  POST cat?arg=<cid>&offset=O&length=4096 for the same offsets, in the same order, over
#            one keep-alive connection (python3 http.client), page cache dropped first
#
# Prints the per-read latency (mean, median, p90, p99) of both and the ratio of the means.
# Target: ipfsfs not slower per read (mean ratio ipfsfs/direct <= 1).
#
# Environment: BENCH_RANDOM_SIZE (default 1G), BENCH_RANDOM_READS (default 2000),
# BENCH_RANDOM_SEED (default 42), BENCH_FS_ARGS (extra ipfsfs options), and those of lib.sh.
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE=$(to_bytes "${BENCH_RANDOM_SIZE:-1G}")
READS=${BENCH_RANDOM_READS:-2000}
SEED=${BENCH_RANDOM_SEED:-42}
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

say "-- direct: $READS ranged cat calls (page cache dropped first)"
drop_caches
n0=$(cpu_secs "$NODE_PID")
show timeout 300 python3 "$PY" rpc "$NODE_URL" "$CID" "$SIZE" "$READS" "$SEED" >"$WORK/rpc.out" ||
    die "the RPC run failed: $(cat "$WORK/rpc.out")"
n1=$(cpu_secs "$NODE_PID")
sed 's/^/#   /' "$WORK/rpc.out"
note "cpu: node $(calc "$n1 - $n0" %.2f) s"

say "-- ipfsfs: $READS preads of 4096 bytes (fresh mount, page cache dropped)"
remount_cold
n0=$(cpu_secs "$NODE_PID")
f0=$(cpu_secs "$FS_PID")
show timeout 300 python3 "$PY" mount "$MNT/$CID" "$SIZE" "$READS" "$SEED" >"$WORK/fs.out" ||
    die "the mount run failed: $(cat "$WORK/fs.out")"
n1=$(cpu_secs "$NODE_PID")
f1=$(cpu_secs "$FS_PID")
sed 's/^/#   /' "$WORK/fs.out"
note "cpu: node $(calc "$n1 - $n0" %.2f) s, ipfsfs $(calc "$f1 - $f0" %.2f) s"
print_stats

if [ "$(value "$WORK/fs.out" digest)" != "$(value "$WORK/rpc.out" digest)" ]; then
    note "WARNING: the bytes read through the mount differ from those of the RPC calls"
fi
for k in mean_us median_us p90_us p99_us; do
    a=$(value "$WORK/fs.out" "$k")
    b=$(value "$WORK/rpc.out" "$k")
    r=$(calc "$a / $b")
    if [ "$k" = mean_us ]; then
        record "random 4K read $k" "$a" "$b" "$r" "ratio <= 1" "$(verdict "$r <= 1")"
    else
        record "random 4K read $k" "$a" "$b" "$r" "-" "-"
    fi
done
bench_done
