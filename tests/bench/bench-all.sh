#!/usr/bin/env bash
# bench-all.sh - run every benchmark (each starts its own node and mount) and print a summary
# table of the figures, their ratio to the direct RPC call, and the targets.
#
#   tests/bench/bench-all.sh [NAME...]     NAME: seq random ls rss cp profile (default), store,
#                                            kubo-mount
#
# Each script's full output goes to BENCH_LOG_DIR (default: a new temporary directory, kept and
# printed) and is also shown as it runs. Each script is bounded by BENCH_TIMEOUT seconds (default
# 600; its own watchdog). The whole set takes about 5 minutes on an idle 2-core machine, up to 10
# when other work keeps it busy (each script first waits up to BENCH_QUIET_WAIT s for quiet). A
# benchmark that fails to measure is reported and the others still run; the exit status is 0
# unless one failed.
#
# Environment: IPFSFS_BIN and the other variables of lib.sh and of each script.

set -u
set -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(seq random ls rss cp profile)
BENCH_LOG_DIR=${BENCH_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ipfsfs-bench-logs.XXXXXX")}
mkdir -p "$BENCH_LOG_DIR"
BENCH_RESULTS=$BENCH_LOG_DIR/results.tsv
: >"$BENCH_RESULTS"
export BENCH_RESULTS

failed=()
t_all=$(date +%s)
for name in "${names[@]}"; do
    script=$here/bench-$name.sh
    if [ ! -x "$script" ]; then
        echo "bench-all: no benchmark $script" >&2
        failed+=("$name")
        continue
    fi
    t0=$(date +%s)
    "$script" 2>&1 | tee "$BENCH_LOG_DIR/$name.log"
    rc=$?
    echo "# bench-$name: $(($(date +%s) - t0)) s, exit status $rc"
    [ "$rc" -eq 0 ] || failed+=("$name")
done

echo
echo "== summary ($(date -u '+%Y-%m-%d %H:%M:%S UTC'); $(nproc) cores, $(uname -sr); $(($(date +%s) - t_all)) s)"
{
    printf 'bench\tmetric\tipfsfs\tdirect (RPC)\tratio\ttarget\tverdict\n'
    cat "$BENCH_RESULTS"
} | column -t -s $'\t'
echo "logs: $BENCH_LOG_DIR"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench-all: could not measure: ${failed[*]}" >&2
    exit 1
fi
exit 0
