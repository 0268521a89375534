#!/usr/bin/env bash
# ab-store.sh - two ipfsfs binaries side by side: cp -r (or tar xf) of the bench's 1,000-file tree
# into two fresh embedded stores, interleaved round by round (A B, B A, ...), so that both meet
# the same noise. Prints each round's wall time and the daemon's CPU time (user + system, read
# from /proc after a pause that lets the group commit run), then both sides sorted and their
# medians. For comparing a change with what came before it, when bench-tree.sh's best-of-3
# ratios move by more than the change.
#
#   tests/bench/ab-store.sh BIN_A BIN_B [cp|tar] [ROUNDS]      (default: cp, 12 rounds)
#
# Each round copies a tree of its own (mktree.py, a variant per round and side), so that no
# block of it is in the store already. The machine's load is printed at the start. Root only
# (/dev/fuse, fusermount3). Environment: BENCH_TREE_FILES, BENCH_TREE_DIRS (1000, 40),
# BENCH_KEEP=1 and BENCH_RESULTS, as for the other scripts (lib.sh).
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

A=${1:-}
B=${2:-}
OP=${3:-cp}
ROUNDS=${4:-12}
NFILES=${BENCH_TREE_FILES:-1000}
NDIRS=${BENCH_TREE_DIRS:-40}
{ [ -x "$A" ] && [ -x "$B" ]; } || die "usage: ab-store.sh BIN_A BIN_B [cp|tar] [ROUNDS]"
case $OP in cp | tar) ;; *) die "the operation is cp or tar, not '$OP'" ;; esac
[ "$(id -u)" -eq 0 ] || die "must run as root (/dev/fuse)"
bench_require tar cp python3 fusermount3 mountpoint
IPFSFS_BIN=$A # for bench_init's header
bench_init ab-store

note "A: $A"
note "B: $B"
note "$OP of $NFILES files in $NDIRS directories, $ROUNDS rounds each, interleaved"
for r in $(seq 1 "$ROUNDS"); do
    for x in a b; do
        t=$WORK/trees/$x$r
        v=$((r * 2))
        [ "$x" = b ] && v=$((v + 1))
        python3 "$BENCH_LIB_DIR/mktree.py" tree "$t" --variant "$v" --files "$NFILES" \
            --dirs "$NDIRS" >/dev/null || die "mktree.py failed"
        if [ "$OP" = tar ]; then
            tar cf "$t.tar" -C "$WORK/trees" "$x$r" || die "tar cf failed"
        fi
    done
done

declare -A PIDS
for x in a b; do
    bin=$A
    [ "$x" = b ] && bin=$B
    mkdir -p "$WORK/$x"
    "$bin" --store="$WORK/store-$x" -f "$WORK/$x" >"$WORK/$x.log" 2>&1 </dev/null 3>&- &
    PIDS[$x]=$!
    track_pid "${PIDS[$x]}"
    BENCH_MOUNTS+=("$WORK/$x")
    echo "$WORK/$x" >>"$WORK/mounts"
done
for x in a b; do
    for _ in $(seq 1 100); do
        mountpoint -q "$WORK/$x" && break
        sleep 0.1
    done
    mountpoint -q "$WORK/$x" || die "side $x did not mount: $(cat "$WORK/$x.log")"
done

cpu_ms() { awk '{ print ($14 + $15) * 1000 / '"$(getconf CLK_TCK)"' }' "/proc/$1/stat"; }
declare -A TIMES CPUS
for r in $(seq 1 "$ROUNDS"); do
    order="a b"
    [ $((r % 2)) = 0 ] && order="b a"
    for x in $order; do
        sync
        sleep 0.7
        mkdir "$WORK/$x/r$r" || die "mkdir in side $x failed"
        c0=$(cpu_ms "${PIDS[$x]}")
        t0=$(now_ns)
        if [ "$OP" = tar ]; then
            tar xf "$WORK/trees/$x$r.tar" -C "$WORK/$x/r$r" || die "tar xf into side $x failed"
        else
            cp -r "$WORK/trees/$x$r" "$WORK/$x/r$r/" || die "cp -r into side $x failed"
        fi
        ms=$(calc "($(now_ns) - $t0) / 1e6" %.0f)
        sleep 1.2 # the group commit (1 s) is the daemon's CPU too
        cpu=$(calc "$(cpu_ms "${PIDS[$x]}") - $c0" %.0f)
        TIMES[$x]+=" $ms"
        CPUS[$x]+=" $cpu"
        say "round $r $x: $ms ms, daemon CPU $cpu ms"
    done
done

for x in a b; do
    # shellcheck disable=SC2086 # the values are words
    say "$(printf '%s' "$x" | tr ab AB) ms:  $(printf '%s\n' ${TIMES[$x]} | sort -n | paste -sd ' ') (median $(median ${TIMES[$x]}))"
    # shellcheck disable=SC2086
    say "$(printf '%s' "$x" | tr ab AB) CPU: $(printf '%s\n' ${CPUS[$x]} | sort -n | paste -sd ' ') (median $(median ${CPUS[$x]}))"
done
LABEL="cp -r"
[ "$OP" = tar ] && LABEL="tar xf"
# shellcheck disable=SC2086
record "$LABEL store B / A (median)" "$(median ${TIMES[b]})ms" "$(median ${TIMES[a]})ms" \
    "$(calc "$(median ${TIMES[b]}) / $(median ${TIMES[a]})")" - -
bench_done
