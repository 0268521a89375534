#!/usr/bin/env bash
# run-fuzzers.sh - build the libFuzzer harnesses in tests/fuzz/ and run each for a bounded
# time, after replaying the saved regression inputs.
#
# Usage: tests/fuzz/run-fuzzers.sh [--build-only | --regress-only] [HARNESS...]
#   With no HARNESS, all of them (see HARNESSES below). --regress-only replays
#   tests/fuzz/regressions/<harness>/* and the seed corpus once, without fuzzing (a few
#   seconds: suitable for CI and make check).
# Environment:
#   FUZZ_SECONDS   fuzzing time per harness (default 60)
#   FUZZ_OUT       build and work directory (default ${TMPDIR:-/tmp}/ipfsfs-fuzz)
#   FUZZ_CONFIG_H  a configured build's config.h to compile against (default: a minimal one
#                  written into FUZZ_OUT; the pure modules only need PACKAGE_VERSION and
#                  _GNU_SOURCE from it)
#   FUZZ_MERGE=1   merge new, coverage-increasing inputs back into tests/fuzz/corpus/<harness>
#   CC             a clang with libFuzzer (default clang)
# Exit status: 0 no crash, 1 a harness crashed (its input is in FUZZ_OUT/crashes/<harness>/;
# minimize it with `BIN -minimize_crash=1 -runs=10000 INPUT` and add it to regressions/),
# 77 clang or libFuzzer is missing, 99 a harness does not build.
# Prints one summary line per harness: executions, exec/s, corpus size, crashes.

set -u
set -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../../src" && pwd)
OUT=${FUZZ_OUT:-${TMPDIR:-/tmp}/ipfsfs-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
CC=${CC:-clang}
MODE=fuzz

# name | source | extra defines | src/ modules
HARNESSES=(
    "fuzz_cid|fuzz_cid.c||cid.c"
    "fuzz_multiaddr|fuzz_multiaddr.c||multiaddr.c"
    "fuzz_rpcjson_ls|fuzz_rpcjson.c|-DFUZZ_TARGET=1|rpcjson.c cid.c log.c rpc.c multiaddr.c"
    "fuzz_rpcjson_files_ls|fuzz_rpcjson.c|-DFUZZ_TARGET=2|rpcjson.c cid.c log.c rpc.c multiaddr.c"
    "fuzz_rpcjson_files_stat|fuzz_rpcjson.c|-DFUZZ_TARGET=3|rpcjson.c cid.c log.c rpc.c multiaddr.c"
    "fuzz_rpcjson_add_result|fuzz_rpcjson.c|-DFUZZ_TARGET=4|rpcjson.c cid.c log.c rpc.c multiaddr.c"
    "fuzz_rpcjson_version|fuzz_rpcjson.c|-DFUZZ_TARGET=5|rpcjson.c cid.c log.c rpc.c multiaddr.c"
    "fuzz_rpc_error_message|fuzz_rpcjson.c|-DFUZZ_TARGET=6|rpcjson.c cid.c log.c rpc.c multiaddr.c"
    "fuzz_ndjson|fuzz_ndjson.c||rpcjson.c cid.c log.c rpc.c multiaddr.c"
    "fuzz_dagpb|fuzz_dagpb.c||dagpb.c cid.c"
    "fuzz_unixfs|fuzz_dagpb.c|-DFUZZ_UNIXFS_ONLY|dagpb.c cid.c"
    "fuzz_car|fuzz_car.c||car.c cid.c sha256.c"
    "fuzz_ipns|fuzz_ipns.c||ipns.c cid.c sha256.c"
    "fuzz_store|fuzz_store.c||node_store.c gateway.c ipns.c blockstore.c car.c dagpb.c hamt.c importer.c unixfs_enc.c cid.c sha256.c log.c rpcjson.c rpc.c multiaddr.c"
)

while [ $# -gt 0 ]; do
    case $1 in
    --build-only) MODE=build ;;
    --regress-only) MODE=regress ;;
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    -*)
        echo "run-fuzzers.sh: unknown option $1" >&2
        exit 2
        ;;
    *) break ;;
    esac
    shift
done
WANT=("$@")

case $SECONDS_EACH in
'' | *[!0-9]*)
    echo "run-fuzzers.sh: FUZZ_SECONDS must be a number of seconds" >&2
    exit 2
    ;;
esac

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "1..0 # SKIP $CC is not installed (apt-get install clang libclang-rt-14-dev)"
    exit 77
fi
mkdir -p "$OUT/include" "$OUT/bin" "$OUT/work" "$OUT/crashes" "$OUT/logs"
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}' |
    "$CC" -x c -fsanitize=fuzzer -o "$OUT/bin/.probe" - >/dev/null 2>&1; then
    echo "1..0 # SKIP $CC cannot link libFuzzer (apt-get install libclang-rt-14-dev)"
    exit 77
fi

if [ -n "${FUZZ_CONFIG_H:-}" ]; then
    cp "$FUZZ_CONFIG_H" "$OUT/include/config.h"
else
    cat >"$OUT/include/config.h" <<'H'
/* Minimal config.h for the fuzz harnesses (run-fuzzers.sh). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#define PACKAGE_VERSION "fuzz"
H
fi

# pkg-config names: fuse3 (log.c), jansson, libcurl (rpc.c), libcrypto (sha256.c: fuzz_store);
# xxHash has no .pc on Debian.
DEP_CFLAGS=$(pkg-config --cflags fuse3 jansson libcurl libcrypto 2>/dev/null)
DEP_LIBS="$(pkg-config --libs jansson libcurl fuse3 libcrypto 2>/dev/null) -lxxhash"
# shellcheck disable=SC2054 # the commas are inside one -fsanitize= argument
CFLAGS_FUZZ=(-std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=314 -I"$OUT/include" -I"$SRC" -I"$HERE")

selected() {
    [ ${#WANT[@]} -eq 0 ] && return 0
    local w
    for w in "${WANT[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

build() {
    local name=$1 source=$2 defs=$3 mods=$4 m srcs=()
    for m in $mods; do srcs+=("$SRC/$m"); done
    # shellcheck disable=SC2086 # defs and DEP_* are word lists on purpose
    "$CC" "${CFLAGS_FUZZ[@]}" $defs $DEP_CFLAGS -o "$OUT/bin/$name" "$HERE/$source" \
        "${srcs[@]}" $DEP_LIBS >"$OUT/logs/$name.build" 2>&1
}

# stat NAME LOG: a value from libFuzzer's -print_final_stats=1 output.
stat_of() { sed -n "s/^stat::$1: *//p" "$2" | tail -1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
crashed=0
summary=()
for h in "${HARNESSES[@]}"; do
    IFS='|' read -r name source defs mods <<<"$h"
    selected "$name" || continue
    if ! build "$name" "$source" "$defs" "$mods"; then
        echo "not ok - $name builds"
        sed 's/^/# /' "$OUT/logs/$name.build" | head -30
        failed=1
        continue
    fi
    [ "$MODE" = build ] && {
        echo "ok - $name builds"
        continue
    }
    bin=$OUT/bin/$name
    dict=()
    case $name in fuzz_rpcjson_* | fuzz_rpc_error_message) dict=(-dict="$HERE/json.dict") ;; esac

    # 1. Regression inputs and the seed corpus: replayed once each, must not crash.
    inputs=()
    for d in "$HERE/regressions/$name" "$HERE/corpus/$name"; do
        [ -d "$d" ] && while IFS= read -r f; do inputs+=("$f"); done < <(find "$d" -type f | sort)
    done
    if [ ${#inputs[@]} -gt 0 ]; then
        if timeout -k 5 300 "$bin" -runs=1 -timeout=10 "${inputs[@]}" \
            >"$OUT/logs/$name.regress" 2>&1; then
            echo "ok - $name: ${#inputs[@]} regression and seed inputs replay cleanly"
        else
            echo "not ok - $name: a regression or seed input fails"
            grep -E 'ERROR|FUZZ PROPERTY|runtime error|Running:' "$OUT/logs/$name.regress" |
                tail -8 | sed 's/^/# /'
            crashed=1
            continue
        fi
    fi
    [ "$MODE" = regress ] && continue

    # 2. Fuzz: new inputs go to a scratch corpus, the seeds are read from the tree.
    work=$OUT/work/$name
    mkdir -p "$work" "$OUT/crashes/$name"
    log=$OUT/logs/$name.fuzz
    seeds=()
    [ -d "$HERE/corpus/$name" ] && seeds=("$HERE/corpus/$name")
    # Crash files of this run only: FUZZ_OUT outlives runs, and an older crash (kept there for
    # its owner) must not fail this one.
    marker=$OUT/crashes/$name.start
    touch "$marker"
    timeout -k 10 $((SECONDS_EACH + 120)) "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/crashes/$name/" \
        "${dict[@]}" "$work" "${seeds[@]}" >"$log" 2>&1
    rc=$?
    execs=$(stat_of number_of_executed_units "$log")
    speed=$(stat_of average_exec_per_sec "$log")
    ncorp=$(find "$work" -type f | wc -l)
    ncrash=$(find "$OUT/crashes/$name" -type f -newer "$marker" | wc -l)
    line="$name: ${execs:-?} execs, ${speed:-?} exec/s, ${ncorp} new corpus inputs, $ncrash crash files"
    summary+=("$line")
    if [ "$rc" -eq 0 ] && [ "$ncrash" -eq 0 ]; then
        echo "ok - $line"
    else
        echo "not ok - $line (libFuzzer exit $rc)"
        grep -E 'ERROR|FUZZ PROPERTY|runtime error|SUMMARY|Test unit written' "$log" |
            head -12 | sed 's/^/# /'
        crashed=1
    fi
    if [ "${FUZZ_MERGE:-0}" = 1 ] && [ -d "$HERE/corpus/$name" ]; then
        "$bin" -merge=1 "$HERE/corpus/$name" "$work" >"$OUT/logs/$name.merge" 2>&1 ||
            echo "# $name: merging into the corpus failed (see $OUT/logs/$name.merge)"
    fi
done

if [ ${#summary[@]} -gt 0 ]; then
    echo "# summary (FUZZ_SECONDS=$SECONDS_EACH, logs in $OUT/logs):"
    printf '#   %s\n' "${summary[@]}"
fi
[ "$failed" -ne 0 ] && exit 99
[ "$crashed" -ne 0 ] && exit 1
exit 0
