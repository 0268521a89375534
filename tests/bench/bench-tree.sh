#!/usr/bin/env bash
# bench-tree.sh - copying a source-like tree in and out (issue 12's targets): the same operations,
# in one run, on local disk, through libfuse's passthrough_ll example (the floor: FUSE itself),
# on ipfsfs --store=DIR (embedded store, no node) and on ipfsfs over a Kubo node; prints the
# ratios and the targets.
#
# The tree (mktree.py): 1,000 files of 0.5-8 KiB (text like C, Python, shell and Markdown; 3 %
# random bytes) in 40 directories, plus a tarball of it. Every variant of it has the same shape
# and size but its own bytes, and each write into a content-addressed target (the store, the
# node) gets a variant no earlier step wrote there, so no step finds its blocks already stored.
# All of them are made once, at the start, in the work directory.
#
# Each run (BENCH_RUNS, default 3; the best of them is kept) does, on every target in turn:
#   cp -r TREE T/                          (on the node also `sync T/TREE`: fsync(2) of the
#                                           directory, "until the node has it")
#   ipfs --api=NODE add -r -Q TREE'        (the reference: one RPC add of a tree of that shape)
#   tar xf TREE.tar -C T                   (on the node also `sync T/TREE`)
#   diff -r TREE T/TREE, cold              (T unmounted, caches dropped with
#                                           /proc/sys/vm/drop_caches, T mounted again; local
#                                           disk: caches dropped)
#   rm -rf T/TREE
#   git clone -q --no-hardlinks file://REPO T/clone   (REPO: 40 files, 3 commits, made by
#                                                      mktree.py)
#   dd if=/dev/zero of=T/dd bs=4k count=N             (N: BENCH_TREE_DD, 40M in 4 KiB
#                                                      writes; a figure for reference)
#   and on the node only: cp BIG T/big; sync T/big  vs  curl -F file=@BIG' $API/api/v0/add
#                         (BIG: BENCH_TREE_BIG, 128M, random; the order alternates by run)
# Targets (issue 12): cp -r on the node, until synced / RPC add <= 2; tar xf on the node / RPC
# add <= 3; cp -r, tar xf, cold diff -r, rm -rf on the store / passthrough_ll <= 1.5; rm -rf and
# cold diff -r on the node / on the store <= 1.2; git clone on the node / passthrough_ll <= 2;
# curl add / (cp + fsync) of 128 MiB >= 0.9.
#
# passthrough_ll is compiled once (pkg-config fuse3; the source is Debian's libfuse3-dev,
# /usr/share/doc/libfuse3-dev/examples/) into $IPFSFS_CACHE/passthrough_ll and runs with its
# defaults (-o source=DIR, cache=auto: 1 s attribute and entry timeouts, no writeback cache).
# The issue's floor has no extended attributes: it answers ENOSYS to the first getxattr, and the
# kernel never asks again. ipfsfs has them (user.ipfs.cid), and they cost FUSE requests the
# floor never gets: the kernel asks for security.capability before the first write to a file
# it opened (ipfsfs asks for FUSE_HANDLE_KILLPRIV_V2: else before every write) and after a chown
# (ipfsfs -d counts per file: cp -r 6 requests against 5). So a second floor runs beside it, for
# reference (no target): passthrough_ll -o xattr, which gets the same requests as ipfsfs run by
# root (ipfsfs has no default_permissions then: man ipfsfs, "Who can read what").
#
# Environment:
#   BENCH_RUNS          runs; the best of them is kept (default 3)
#   BENCH_IPFSFS_OPTS   extra ipfsfs options for the store and node mounts. Several variants,
#                       measured side by side in the same run, are separated by '|', e.g.
#                       '--write-through|' (close waits for the node | the default). A variant the
#                       binary refuses (an option it does not know) is skipped with a message.
#   BENCH_SKIP_SLOW=1   skip the node mounts in today's write mode (close waits for the node:
#                       a variant with --write-through, or any variant when the binary has no
#                       --write-through option), where cp -r of the tree takes ~100 s
#   BENCH_TREE_FILES, BENCH_TREE_DIRS   the tree's shape (1000, 40)
#   BENCH_TREE_DD       the bytes dd writes 4 KiB at a time (40M)
#   BENCH_TREE_BIG      the large file (128M); BENCH_TREE_STEP: the longest one step may take (900 s)
#   IPFSFS_CACHE        where passthrough_ll is built (default ~/.cache/ipfsfs-test)
#   and those of lib.sh (IPFSFS_BIN, BENCH_RESULTS, BENCH_TIMEOUT (here 7200 by default),
#   BENCH_KEEP, BENCH_QUIET_WAIT).
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${BENCH_RUNS:-3}
NFILES=${BENCH_TREE_FILES:-1000}
NDIRS=${BENCH_TREE_DIRS:-40}
BIG_LABEL=${BENCH_TREE_BIG:-128M}
BIG=$(to_bytes "$BIG_LABEL")
STEP=${BENCH_TREE_STEP:-900}
DD_LABEL=${BENCH_TREE_DD:-40M}
DD_COUNT=$(($(to_bytes "$DD_LABEL") / 4096))
BENCH_TIMEOUT=${BENCH_TIMEOUT:-7200}
CACHE=${IPFSFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ipfsfs-test}
EXAMPLES=/usr/share/doc/libfuse3-dev/examples
[ "$RUNS" -ge 1 ] 2>/dev/null || die "BENCH_RUNS must be a positive number"

# The variants of ipfsfs options: BENCH_IPFSFS_OPTS split at '|' (empty fields kept).
VARIANTS=()
rest=${BENCH_IPFSFS_OPTS:-}
while [[ $rest == *'|'* ]]; do
    VARIANTS+=("${rest%%|*}")
    rest=${rest#*|}
done
VARIANTS+=("$rest")
NV=${#VARIANTS[@]}

bench_require git tar diff cc pkg-config sync cp
pkg-config --exists fuse3 || die "pkg-config does not know fuse3 (apt-get install libfuse3-dev)"
bench_init bench-tree

# ---- passthrough_ll -----------------------------------------------------------------------------

PT_BIN=$CACHE/passthrough_ll
# build_passthrough: compile libfuse's example into $PT_BIN unless it is there.
build_passthrough() {
    local b=$WORK/ptbuild f
    [ -x "$PT_BIN" ] && return 0
    mkdir -p "$b" "$CACHE" || die "cannot create $CACHE"
    for f in passthrough_ll.c passthrough_helpers.h; do
        if [ -f "$EXAMPLES/$f" ]; then
            cp "$EXAMPLES/$f" "$b/$f"
        elif [ -f "$EXAMPLES/$f.gz" ]; then
            gzip -dc "$EXAMPLES/$f.gz" >"$b/$f"
        else
            die "no $EXAMPLES/$f (apt-get install libfuse3-dev)"
        fi
    done
    # shellcheck disable=SC2046 # pkg-config prints several words
    show cc -O2 -Wall -o "$b/passthrough_ll" "$b/passthrough_ll.c" $(pkg-config --cflags --libs fuse3) ||
        die "could not compile passthrough_ll"
    mv -f "$b/passthrough_ll" "$PT_BIN" || die "cannot write $PT_BIN"
}
build_passthrough
note "passthrough_ll: $PT_BIN (libfuse $(pkg-config --modversion fuse3))"

start_node

# ---- the trees, the tarballs and the repositories -------------------------------------------------

# Content variants: run R (1..RUNS), ipfsfs variant I (0..NV-1; local disk and passthrough_ll use
# I = 0). Per run: a cp tree and a tar tree per I, and one tree for the RPC add.
PER_RUN=$((2 * NV + 1))
tree_cp() { printf '%s/trees/t%03d' "$WORK" $((($1 - 1) * PER_RUN + 2 * $2)); }
tree_tar() { printf '%s/trees/t%03d' "$WORK" $((($1 - 1) * PER_RUN + 2 * $2 + 1)); }
tree_rpc() { printf '%s/trees/t%03d' "$WORK" $((($1 - 1) * PER_RUN + 2 * NV)); }
repo_of() { printf '%s/repos/g%03d' "$WORK" $((($1 - 1) * NV + $2)); }

mkdir -p "$WORK/trees" "$WORK/repos" "$WORK/spool"
t0=$(now_ns)
for r in $(seq 1 "$RUNS"); do
    for i in $(seq 0 $((NV - 1))); do
        for t in "$(tree_cp "$r" "$i")" "$(tree_tar "$r" "$i")"; do
            python3 "$BENCH_LIB_DIR/mktree.py" tree "$t" --variant "${t##*/t}" --files "$NFILES" --dirs "$NDIRS" >"$WORK/mktree.out" ||
                die "mktree.py failed"
        done
        tar cf "$(tree_tar "$r" "$i").tar" -C "$WORK/trees" "$(basename "$(tree_tar "$r" "$i")")" || die "tar cf failed"
        g=$(repo_of "$r" "$i")
        python3 "$BENCH_LIB_DIR/mktree.py" repo "$g" --variant $((1000 + 10#${g##*/g})) >"$WORK/mkrepo.out" ||
            die "mktree.py repo failed"
    done
    t=$(tree_rpc "$r")
    python3 "$BENCH_LIB_DIR/mktree.py" tree "$t" --variant "${t##*/t}" --files "$NFILES" --dirs "$NDIRS" >/dev/null ||
        die "mktree.py failed"
done
show_only python3 "$BENCH_LIB_DIR/mktree.py" tree DIR --variant V --files "$NFILES" --dirs "$NDIRS"
note "trees: $((RUNS * PER_RUN)) variants of $(cat "$WORK/mktree.out") each; tarballs $(stat -c %s "$(tree_tar 1 0).tar") bytes (made in $(secs_since "$t0") s)"
note "repositories: $((RUNS * NV)) of $(cat "$WORK/mkrepo.out"), $(git -C "$(repo_of 1 0)" rev-list --count HEAD) commits each"

# ---- the targets ----------------------------------------------------------------------------------

# Each target has a KIND (local, pt, store, node), a directory DIR where the tree goes (the mount
# point for the mounts), a LABEL, the ipfsfs variant it uses (VI), and for mounts a PID and a LOG.
declare -A KIND DIR LABEL VI PID LOG
# PTOPTS: a passthrough_ll target's -o options.
declare -A PTOPTS
TARGETS=(local pt ptx)
KIND[local]=local DIR[local]=$WORK/local LABEL[local]="local disk" VI[local]=0
KIND[pt]=pt DIR[pt]=$WORK/pt LABEL[pt]=passthrough_ll VI[pt]=0 PTOPTS[pt]=source=$WORK/pt-src
KIND[ptx]=pt DIR[ptx]=$WORK/ptx LABEL[ptx]="passthrough_ll+xattr" VI[ptx]=0
PTOPTS[ptx]=source=$WORK/ptx-src,xattr
mkdir -p "$WORK/local" "$WORK/pt-src" "$WORK/ptx-src"

vlabel() { if [ -n "${VARIANTS[$1]// /}" ]; then printf '%s' "${VARIANTS[$1]}"; else printf 'default'; fi; }
KNOWS_WT=0
# (not grep -q: it may leave before ipfsfs has written all of --help, and with pipefail the
# SIGPIPE that ends ipfsfs would read as "no such option")
"$IPFSFS_BIN" --help 2>&1 | grep -- '--write-through' >/dev/null && KNOWS_WT=1
# slow_variant I: true if variant I runs today's mode (close waits for the node).
slow_variant() {
    case " ${VARIANTS[$1]} " in
    *no-write[-_]through*) return 1 ;;
    *write[-_]through*) return 0 ;;
    esac
    [ "$KNOWS_WT" = 0 ]
}
for i in $(seq 0 $((NV - 1))); do
    KIND[s$i]=store DIR[s$i]=$WORK/store$i.mnt LABEL[s$i]="store [$(vlabel "$i")]" VI[s$i]=$i
    TARGETS+=("s$i")
done
for i in $(seq 0 $((NV - 1))); do
    if [ "${BENCH_SKIP_SLOW:-0}" = 1 ] && slow_variant "$i"; then
        note "BENCH_SKIP_SLOW=1: skipping the node mount of variant '$(vlabel "$i")' (today's mode: close waits for the node)"
        continue
    fi
    KIND[n$i]=node DIR[n$i]=$WORK/node$i.mnt LABEL[n$i]="node [$(vlabel "$i")]" VI[n$i]=$i
    curl -s -X POST -m 30 "$NODE_URL/files/mkdir?arg=/bench-$i&parents=true" >/dev/null
    TARGETS+=("n$i")
done

untrack_pid() {
    local p keep=()
    for p in "${BENCH_PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    BENCH_PIDS=("${keep[@]}")
    printf '%s\n' "${BENCH_PIDS[@]}" >"$WORK/pids"
}

# start_target T: mount T (nothing for local disk); returns 1 (log shown) if it did not mount.
start_target() {
    local t=$1 mnt=${DIR[$1]} opts=() cmd
    read -r -a opts <<<"${VARIANTS[${VI[$t]}]}"
    case ${KIND[$t]} in
    local) return 0 ;;
    pt) cmd=("$PT_BIN" -o "${PTOPTS[$t]}" -f "$mnt") ;;
    store) cmd=("$IPFSFS_BIN" --store="$WORK/store${VI[$t]}" "${opts[@]}" -f "$mnt") ;;
    node) cmd=("$IPFSFS_BIN" --api="$NODE_API" --mfs-root="/bench-${VI[$t]}" --spool-dir="$WORK/spool" "${opts[@]}" -f "$mnt") ;;
    esac
    LOG[$t]=$WORK/$t.log
    mkdir -p "$mnt"
    show_only "${cmd[@]}"
    "${cmd[@]}" >>"${LOG[$t]}" 2>&1 </dev/null 3>&- &
    PID[$t]=$!
    track_pid "${PID[$t]}"
    if [[ " ${BENCH_MOUNTS[*]} " != *" $mnt "* ]]; then
        BENCH_MOUNTS+=("$mnt")
        echo "$mnt" >>"$WORK/mounts"
    fi
    for _ in $(seq 1 100); do
        mountpoint -q "$mnt" && return 0
        kill -0 "${PID[$t]}" 2>/dev/null || break
        sleep 0.2
    done
    note "${LABEL[$t]} did not mount; its log:"
    sed 's/^/#   /' "${LOG[$t]}"
    kill "${PID[$t]}" 2>/dev/null
    wait "${PID[$t]}" 2>/dev/null
    untrack_pid "${PID[$t]}"
    return 1
}

# stop_target T: unmount T and wait (up to STEP s: a local-first mount may wait for the node)
# until its process has exited.
stop_target() {
    local t=$1 mnt=${DIR[$1]} p
    [ "${KIND[$t]}" = local ] && return 0
    p=${PID[$t]}
    for _ in $(seq 1 25); do
        fusermount3 -u "$mnt" 2>/dev/null && break
        mountpoint -q "$mnt" || break
        sleep 0.2
    done
    mountpoint -q "$mnt" && fusermount3 -uz "$mnt" 2>/dev/null
    for _ in $(seq 1 $((STEP * 10))); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
        note "${LABEL[$t]}: still running $STEP s after the unmount; killed"
        kill -9 "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null
    untrack_pid "$p"
}

# Mount every target; drop the variants whose options the binary refuses.
live=()
for t in "${TARGETS[@]}"; do
    if start_target "$t"; then
        live+=("$t")
    elif [ "${KIND[$t]}" = pt ]; then
        die "passthrough_ll did not mount"
    else
        note "SKIPPED: ${LABEL[$t]} (ipfsfs refused the options '${VARIANTS[${VI[$t]}]}'; see its log above)"
    fi
done
TARGETS=("${live[@]}")
note "targets: $(for t in "${TARGETS[@]}"; do printf '%s; ' "${LABEL[$t]}"; done)"

# ---- measuring ------------------------------------------------------------------------------------

declare -A VALS FAILS
# measure KEY CMD...: print the command line, run it bounded by STEP s (output to
# $WORK/out), add its seconds to KEY's values; on failure note why (KEY gets no value). Sets SECS.
measure() {
    local key=$1 t0 rc
    shift
    show_only "$@"
    t0=$(now_ns)
    timeout -k 5 "$STEP" "$@" >"$WORK/out" 2>&1 </dev/null 3>&-
    rc=$?
    SECS=$(secs_since "$t0")
    if [ "$rc" -eq 0 ]; then
        VALS[$key]+=" $SECS"
        note "  $SECS s"
        return 0
    fi
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        FAILS[$key]="did not finish within $STEP s"
    else
        FAILS[$key]="failed (status $rc)"
    fi
    note "  ${FAILS[$key]} after $SECS s: $(head -c 400 "$WORK/out" | tr '\n' ' ')"
    return 1
}
# add_val KEY SECS: one more value for KEY
add_val() { VALS[$1]+=" $2"; }
# best KEY: the smallest value of KEY ("" if none)
best() {
    local v
    # shellcheck disable=SC2086 # the values are words
    [ -n "${VALS[$1]:-}" ] && v=$(printf '%s\n' ${VALS[$1]} | sort -g | head -n 1)
    printf '%s' "${v:-}"
}
# cold_remount T: T unmounted, the kernel's caches dropped, T mounted again.
cold_remount() {
    stop_target "$1"
    drop_caches
    start_target "$1" || die "${LABEL[$1]} did not mount again"
}
cid_of() { getfattr --absolute-names --only-values -n user.ipfs.cid "$1" 2>/dev/null; }
is_ipfsfs() { [ "${KIND[$1]}" = store ] || [ "${KIND[$1]}" = node ]; }
node_targets() { for t in "${TARGETS[@]}"; do [ "${KIND[$t]}" = node ] && printf '%s\n' "$t"; done; }
mapfile -t NODES < <(node_targets)

for r in $(seq 1 "$RUNS"); do
    say "-- run $r of $RUNS"

    say "-- cp -r (node: + sync of the directory), and one RPC add -r of the same shape"
    for t in "${TARGETS[@]}"; do
        if [ "${KIND[$t]}" = node ] && [ "$t" = "${NODES[0]}" ]; then
            note "RPC add -r"
            measure rpcadd "$NODE_BIN" --api="$NODE_API" add -r -Q "$(tree_rpc "$r")"
        fi
        src=$(tree_cp "$r" "${VI[$t]}")
        sync
        note "${LABEL[$t]}: cp -r"
        if measure "cp:$t" cp -r "$src" "${DIR[$t]}/"; then
            c=$SECS
            measure "sync-cp:$t" sync "${DIR[$t]}/${src##*/}" && add_val "cpsync:$t" "$(calc "$c + $SECS" %.4f)"
        fi
        if [ "$r" = 1 ] && is_ipfsfs "$t"; then
            want=$("$NODE_BIN" --api="$NODE_API" add -r -Q --only-hash "$src" 2>/dev/null)
            got=$(cid_of "${DIR[$t]}/${src##*/}")
            extra=
            if [ "${KIND[$t]}" = node ]; then
                extra=", node's MFS: $(curl -s -X POST -m 60 "$NODE_URL/files/stat?arg=/bench-${VI[$t]}/${src##*/}&hash=true" |
                    python3 -c 'import json,sys; print(json.load(sys.stdin).get("Hash", "?"))' 2>/dev/null)"
            fi
            if [ -n "$want" ] && [ "$want" = "$got" ]; then v=same; else v=DIFFERENT; fi
            note "${LABEL[$t]}: CID of the copy ${got:-?}, ipfs add -r --only-hash gives ${want:-?}: $v$extra"
        fi
    done
    if [ ${#NODES[@]} -eq 0 ]; then
        note "RPC add -r (no node mount)"
        measure rpcadd "$NODE_BIN" --api="$NODE_API" add -r -Q "$(tree_rpc "$r")"
    fi

    say "-- tar xf (node: + sync of the directory)"
    for t in "${TARGETS[@]}"; do
        src=$(tree_tar "$r" "${VI[$t]}")
        sync
        note "${LABEL[$t]}: tar xf"
        if measure "tar:$t" tar xf "$src.tar" -C "${DIR[$t]}"; then
            c=$SECS
            measure "sync-tar:$t" sync "${DIR[$t]}/${src##*/}" && add_val "tarsync:$t" "$(calc "$c + $SECS" %.4f)"
        fi
    done

    say "-- cold diff -r (unmount, drop_caches, mount)"
    for t in "${TARGETS[@]}"; do
        src=$(tree_cp "$r" "${VI[$t]}")
        cold_remount "$t"
        note "${LABEL[$t]}: cold diff -r"
        measure "diff:$t" diff -r "$src" "${DIR[$t]}/${src##*/}"
    done

    say "-- rm -rf (then sync of the parent, not counted)"
    for t in "${TARGETS[@]}"; do
        src=$(tree_cp "$r" "${VI[$t]}")
        note "${LABEL[$t]}: rm -rf"
        measure "rm:$t" rm -rf "${DIR[$t]}/${src##*/}"
        measure "sync-rm:$t" sync "${DIR[$t]}"
    done

    say "-- git clone"
    for t in "${TARGETS[@]}"; do
        sync
        note "${LABEL[$t]}: git clone"
        measure "git:$t" git clone -q --no-hardlinks "file://$(repo_of "$r" "${VI[$t]}")" "${DIR[$t]}/clone-$r"
    done

    say "-- small writes: dd bs=4k of $DD_LABEL"
    for t in "${TARGETS[@]}"; do
        sync
        note "${LABEL[$t]}: dd bs=4k"
        measure "dd:$t" dd if=/dev/zero of="${DIR[$t]}/dd-$r" bs=4k count="$DD_COUNT" status=none
    done

    [ ${#NODES[@]} -gt 0 ] && say "-- cp of $BIG_LABEL + sync of the file, vs curl add (order: $([ $((r % 2)) = 1 ] && echo 'curl first' || echo 'cp first'))"
    for t in "${NODES[@]}"; do
        gen_file "$WORK/big-cp" "$BIG"
        gen_file "$WORK/big-curl" "$BIG"
        for side in curl cp; do
            [ $((r % 2)) = 0 ] && side=$([ "$side" = curl ] && echo cp || echo curl)
            sync
            if [ "$side" = curl ]; then
                note "curl add"
                measure "curl:$t" curl -sf -X POST -m "$STEP" -F "file=@$WORK/big-curl;filename=data" "$NODE_URL/add?pin=true"
            else
                note "${LABEL[$t]}: cp"
                if measure "cpbig:$t" cp "$WORK/big-cp" "${DIR[$t]}/big-$r"; then
                    c=$SECS
                    measure "sync-big:$t" sync "${DIR[$t]}/big-$r" && add_val "cpbigsync:$t" "$(calc "$c + $SECS" %.4f)"
                fi
            fi
        done
        rm -f "$WORK/big-cp" "$WORK/big-curl"
    done
done

# ---- the figures ----------------------------------------------------------------------------------

say "-- seconds, best of $RUNS (\"-\": not measured or failed)"
OPS=(cp "cp -r" cpsync "cp -r + sync" tar "tar xf" tarsync "tar xf + sync" diff "cold diff -r"
    rm "rm -rf" sync-rm "sync after rm" git "git clone" dd "dd bs=4k $DD_LABEL" cpbig "cp $BIG_LABEL" cpbigsync "cp $BIG_LABEL + sync"
    curl "curl add $BIG_LABEL")
printf '%-22s' "operation"
for t in "${TARGETS[@]}"; do printf ' %18s' "${LABEL[$t]:0:18}"; done
printf '\n'
for ((k = 0; k < ${#OPS[@]}; k += 2)); do
    printf '%-22s' "${OPS[k + 1]}"
    for t in "${TARGETS[@]}"; do
        v=$(best "${OPS[k]}:$t")
        printf ' %18s' "${v:--}"
    done
    printf '\n'
done
b=$(best rpcadd)
printf 'RPC add -r of a tree of the same shape, on the node: %s\n' "${b:--}"
if [ "$RUNS" -gt 1 ]; then
    note "every run's seconds:"
    for key in $(printf '%s\n' "${!VALS[@]}" | sort); do note "  $key:${VALS[$key]}"; done
fi
for key in "${!FAILS[@]}"; do note "failed: $key: ${FAILS[$key]}"; done

# figure NAME NUM_KEY DEN_KEY OP LIMIT: one RESULT line; ratio = best(NUM) / best(DEN), target
# "ratio OP LIMIT" (OP "-": no target).
figure() {
    local a b ratio why=
    a=$(best "$2")
    b=$(best "$3")
    [ -n "$a" ] || why="${FAILS[$2]:-not measured} ($2)"
    [ -n "$b" ] || why="${why:+$why; }${FAILS[$3]:-not measured} ($3)"
    if [ -n "$why" ]; then
        record "$1" "${a:--}" "${b:--}" - "$4 $5" "n/a: $why"
        return
    fi
    ratio=$(calc "$a / $b")
    if [ "$4" = - ]; then
        record "$1" "${a}s" "${b}s" "$ratio" - -
    else
        record "$1" "${a}s" "${b}s" "$ratio" "$4 $5" "$(verdict "$ratio $4 $5")"
    fi
}
say "-- ratios (issue 12 targets; columns: the first figure, the second, their ratio)"
for i in $(seq 0 $((NV - 1))); do
    v=$(vlabel "$i")
    s=s$i n=n$i
    if [[ " ${TARGETS[*]} " != *" $n "* ]] && [[ " ${TARGETS[*]} " != *" $s "* ]]; then
        note "variant '$v': SKIPPED (neither mounted; see above)"
        continue
    fi
    [[ " ${TARGETS[*]} " == *" $n "* ]] || note "no node mount for variant '$v': its node figures are n/a"
    [[ " ${TARGETS[*]} " == *" $s "* ]] || note "no store mount for variant '$v': its store figures are n/a"
    figure "cp -r node+sync / RPC add [$v]" "cpsync:$n" rpcadd "<=" 2
    figure "tar xf node+sync / RPC add [$v]" "tarsync:$n" rpcadd "<=" 3
    figure "cp -r store / passthrough [$v]" "cp:$s" cp:pt "<=" 1.5
    figure "tar xf store / passthrough [$v]" "tar:$s" tar:pt "<=" 1.5
    figure "cold diff -r store / passthrough [$v]" "diff:$s" diff:pt "<=" 1.5
    figure "rm -rf store / passthrough [$v]" "rm:$s" rm:pt "<=" 1.5
    figure "rm -rf node / store [$v]" "rm:$n" "rm:$s" "<=" 1.2
    figure "cold diff -r node / store [$v]" "diff:$n" "diff:$s" "<=" 1.2
    figure "git clone node / passthrough [$v]" "git:$n" git:pt "<=" 2
    figure "$BIG_LABEL curl add / node cp+sync [$v]" "curl:$n" "cpbigsync:$n" ">=" 0.9
done
say "-- for reference (no target): the store against a floor with its features (see the top)"
for i in $(seq 0 $((NV - 1))); do
    [[ " ${TARGETS[*]} " == *" s$i "* ]] || continue
    for op in cp tar diff rm; do
        figure "$op store / passthrough+xattr [$(vlabel "$i")]" "$op:s$i" "$op:ptx" - -
    done
done
say "-- for reference (no target)"
for i in $(seq 0 $((NV - 1))); do
    for k in s n; do
        [[ " ${TARGETS[*]} " == *" $k$i "* ]] || continue
        figure "dd bs=4k ${LABEL[$k$i]} / passthrough" "dd:$k$i" dd:pt - -
    done
done
for op in cp tar diff rm git dd; do
    figure "$op passthrough / local disk" "$op:pt" "$op:local" - -
done
for op in cp tar diff rm git; do
    figure "$op passthrough+xattr / passthrough" "$op:ptx" "$op:pt" - -
done
for t in "${NODES[@]}"; do
    note "${LABEL[$t]} statistics (user.ipfsfs.stats):"
    getfattr --absolute-names --only-values -n user.ipfsfs.stats "${DIR[$t]}" 2>&1 | paste -sd ' ' | fold -s -w 96 | sed "s/^/#   /"
done
for t in "${TARGETS[@]}"; do stop_target "$t"; done
bench_done
