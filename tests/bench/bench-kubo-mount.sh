#!/usr/bin/env bash
# bench-kubo-mount.sh - ipfsfs side by side with Kubo's own FUSE mount (`ipfs mount`: its /ipfs
# and /mfs) over the same node, in one run, on the same workloads; prints the ratios.
#
#   1. cold sequential read of a BENCH_KM_SEQ_SIZE (256M) file:
#        cat KUBO/ipfs/<cid>               vs  cat MNT/<cid>          (and curl cat, for reference)
#   2. ls -l of a BENCH_KM_LS_ENTRIES (10,000)-entry directory (a HAMT on Kubo), cold and warm:
#        ls -l KUBO/ipfs/<dircid> (twice)  vs  ls -l MNT/<dircid> (twice)
#   3. BENCH_KM_READS (2,000) random 4 KiB preads (bench-random.py) of the file of step 1, cold
#   4. cp -r of a tree of 1,000 files (0.5-8 KiB each, in 40 directories):
#        cp -r TREE KUBO/mfs/kubo/tree-R   vs  cp -r TREE MNT/tree-R   (MNT's root: MFS /ipfsfs)
#   5. git clone of a small repository (a bare clone of this source tree, made at the start):
#        git clone -q REPO KUBO/mfs/kubo/clone-R  vs  git clone -q REPO MNT/clone-R
#
# Every workload runs BENCH_ROUNDS (2) times, alternating (Kubo, ipfsfs, Kubo, ipfsfs). "Cold"
# means: the kernel's caches dropped (echo 3 >/proc/sys/vm/drop_caches) and both mounts made
# afresh (fusermount3 -u, then `ipfs mount` again; ipfsfs remounted with an empty chunk cache).
# Every step is bounded by BENCH_KM_STEP (120) seconds (timeout -k 5): a step that does not
# finish is reported as "> N s", and its ratio as a bound.
#
# Kubo's mount needs an online daemon: the node is started with IPFS_ONLINE=1 (swarm on
# loopback, no bootstrap peers), Mounts.FuseAllowOther is false, and Mounts.IPFS/IPNS/MFS name
# directories in the work directory. The two mounts share the node's MFS: Kubo's /mfs writes
# under /kubo, ipfsfs (--mfs-root=/ipfsfs) under /ipfsfs.
#
# Environment: BENCH_KM_SEQ_SIZE, BENCH_KM_LS_ENTRIES, BENCH_KM_READS, BENCH_KM_FILES (1000),
# BENCH_KM_DIRS (40), BENCH_KM_STEP, BENCH_ROUNDS, BENCH_FS_ARGS, and those of lib.sh.
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SEQ_SIZE=$(to_bytes "${BENCH_KM_SEQ_SIZE:-256M}")
ENTRIES=${BENCH_KM_LS_ENTRIES:-10000}
READS=${BENCH_KM_READS:-2000}
NFILES=${BENCH_KM_FILES:-1000}
NDIRS=${BENCH_KM_DIRS:-40}
STEP=${BENCH_KM_STEP:-120}
ROUNDS=${BENCH_ROUNDS:-2}
read -r -a EXTRA <<<"${BENCH_FS_ARGS:-}"

bench_require git cp
export IPFS_ONLINE=1
bench_init bench-kubo-mount
start_node
export IPFS_PATH=$NODE_REPO

# ---- the two mounts -----------------------------------------------------------------------------

K=$WORK/kubo
mkdir -p "$K/ipfs" "$K/ipns" "$K/mfs"
for m in "$K/ipfs" "$K/ipns" "$K/mfs"; do
    BENCH_MOUNTS+=("$m")
    echo "$m" >>"$WORK/mounts"
done
show "$NODE_BIN" config --json Mounts.FuseAllowOther false >/dev/null || die "ipfs config failed"
"$NODE_BIN" config Mounts.IPFS "$K/ipfs" >/dev/null
"$NODE_BIN" config Mounts.IPNS "$K/ipns" >/dev/null
"$NODE_BIN" config Mounts.MFS "$K/mfs" >/dev/null

kubo_mount() {
    show timeout 60 "$NODE_BIN" mount -f "$K/ipfs" -n "$K/ipns" -m "$K/mfs" >"$WORK/kmount.out" 2>&1 || {
        cat "$WORK/kmount.out"
        die "ipfs mount failed"
    }
}
kubo_unmount() {
    local m
    for m in "$K/ipfs" "$K/ipns" "$K/mfs"; do
        mountpoint -q "$m" || continue
        fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
    done
}
# cold_both: both mounts afresh, the kernel's caches dropped (ipfsfs: remount_cold).
cold_both() {
    kubo_unmount
    kubo_mount
    remount_cold
}

curl -s -X POST -m 30 "$NODE_URL/files/mkdir?arg=/kubo&parents=true" >/dev/null
curl -s -X POST -m 30 "$NODE_URL/files/mkdir?arg=/ipfsfs&parents=true" >/dev/null
kubo_mount
MNT=$WORK/mnt
mount_fs "$MNT" --mfs-root=/ipfsfs "${EXTRA[@]}"

# ---- measuring and reporting --------------------------------------------------------------------

# step VAR CMD...: run CMD (stdout to /dev/null) bounded by $STEP s; VAR = seconds, or "> $STEP"
# when it did not finish (or failed: then "failed").
step() {
    local var=$1 secs rc
    shift
    timed secs timeout -k 5 "$STEP" "$@" >/dev/null 2>"$WORK/step.err"
    rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        printf -v "$var" '> %s' "$STEP"
        note "  did not finish within $STEP s"
    elif [ "$rc" -ne 0 ]; then
        printf -v "$var" 'failed'
        note "  failed (status $rc): $(head -c 300 "$WORK/step.err")"
    else
        printf -v "$var" '%s' "$secs"
        note "  $secs s"
    fi
}

# best VALUE...: the smallest number of the values; "> N" if none finished ("failed" if all failed)
best() {
    local v nums=() bound=
    for v in "$@"; do
        case $v in
        '> '*) bound=$v ;;
        failed) ;;
        *) nums+=("$v") ;;
        esac
    done
    if [ ${#nums[@]} -gt 0 ]; then
        printf '%s\n' "${nums[@]}" | sort -g | head -n 1
    elif [ -n "$bound" ]; then
        echo "$bound"
    else
        echo failed
    fi
}

# peer METRIC UNIT IPFSFS KUBO [HIGHER_IS_BETTER]: print (and append to BENCH_RESULTS) one line:
# the figure of each and the ratio ipfsfs/Kubo of the times (values are seconds), so < 1 means
# ipfsfs is faster. With a "> N" bound on one side the ratio is a bound too.
peer() {
    local metric=$1 fs=$2 ku=$3 r
    case "$fs|$ku" in
    *failed*) r=- ;;
    '> '*'|> '*) r=- ;;
    '> '*) r="> $(calc "${fs#> } / $ku" %.2f)" ;;
    *'|> '*) r="< $(calc "$fs / ${ku#> }" %.3f)" ;;
    *) r=$(calc "$fs / $ku" %.3f) ;;
    esac
    printf 'RESULT %-40s ipfsfs=%-10s kubo-mount=%-10s time ipfsfs/kubo=%s\n' "$metric" "$fs" "$ku" "$r"
    if [ -n "${BENCH_RESULTS:-}" ]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$BENCH_NAME" "$metric" "$fs" "$ku" "$r" "-" "-" >>"$BENCH_RESULTS"
    fi
}

# ---- 1. cold sequential read --------------------------------------------------------------------

note "generating $SEQ_SIZE random bytes"
gen_file "$WORK/data" "$SEQ_SIZE"
add_file_to CID "$WORK/data"
rm -f "$WORK/data"

say "-- 1. cold sequential read of $((SEQ_SIZE >> 20)) MiB, $ROUNDS rounds"
ks=() fs=() cs=()
for r in $(seq 1 "$ROUNDS"); do
    cold_both
    note "round $r: Kubo's mount"
    step T cat "$K/ipfs/$CID"
    ks+=("$T")
    note "round $r: ipfsfs"
    step T cat "$MNT/$CID"
    fs+=("$T")
    drop_caches
    note "round $r: curl cat (reference)"
    step T curl -s -X POST -m "$STEP" "$NODE_URL/cat?arg=$CID" -o /dev/null
    cs+=("$T")
done
note "seconds: kubo mount ${ks[*]}; ipfsfs ${fs[*]}; curl ${cs[*]}"
KS=$(best "${ks[@]}")
FS=$(best "${fs[@]}")
CS=$(best "${cs[@]}")
for v in KS FS CS; do
    case ${!v} in [0-9]*) note "$v: $(mbps "$SEQ_SIZE" "${!v}") MB/s" ;; esac
done
peer "cold seq read $((SEQ_SIZE >> 20)) MiB, s (best)" "$FS" "$KS"
note "curl cat of the same file: $CS s"

# ---- 2. ls -l of a 10,000-entry directory -----------------------------------------------------

BOUNDARY=ipfsfs-bench-$RANDOM$RANDOM
show python3 "$BENCH_LIB_DIR/bench-ls.py" body "$WORK/body" "$BOUNDARY" "$ENTRIES" ||
    die "could not write the body"
t0=$(now_ns)
show curl -s -X POST -m 600 -H "Content-Type: multipart/form-data; boundary=$BOUNDARY" \
    --data-binary "@$WORK/body" "$NODE_URL/add?pin=true&quiet=true" >"$WORK/add.out" || die "add failed"
DIR=$(python3 "$BENCH_LIB_DIR/bench-ls.py" root <"$WORK/add.out") || die "add: $(tail -c 300 "$WORK/add.out")"
note "added a directory of $ENTRIES files in $(secs_since "$t0") s: $DIR"

say "-- 2. ls -l of $ENTRIES entries, cold then warm, $ROUNDS rounds"
kc=() kw=() fc=() fw=()
for r in $(seq 1 "$ROUNDS"); do
    cold_both
    note "round $r: Kubo's mount, cold"
    step T ls -l "$K/ipfs/$DIR"
    kc+=("$T")
    note "round $r: Kubo's mount, warm"
    step T ls -l "$K/ipfs/$DIR"
    kw+=("$T")
    note "round $r: ipfsfs, cold"
    step T ls -l "$MNT/$DIR"
    fc+=("$T")
    note "round $r: ipfsfs, warm"
    step T ls -l "$MNT/$DIR"
    fw+=("$T")
done
n=$(timeout 60 ls "$K/ipfs/$DIR" 2>/dev/null | wc -l)
[ "$n" -eq "$ENTRIES" ] || note "WARNING: Kubo's mount lists $n entries, want $ENTRIES"
n=$(timeout 60 ls "$MNT/$DIR" 2>/dev/null | wc -l)
[ "$n" -eq "$ENTRIES" ] || note "WARNING: ipfsfs lists $n entries, want $ENTRIES"
note "cold: kubo ${kc[*]}; ipfsfs ${fc[*]}. warm: kubo ${kw[*]}; ipfsfs ${fw[*]}"
peer "ls -l $ENTRIES entries, cold, s" "$(best "${fc[@]}")" "$(best "${kc[@]}")"
peer "ls -l $ENTRIES entries, warm, s" "$(best "${fw[@]}")" "$(best "${kw[@]}")"

# ---- 3. random 4 KiB reads ----------------------------------------------------------------------

say "-- 3. $READS random 4 KiB preads of the $((SEQ_SIZE >> 20)) MiB file, cold, $ROUNDS rounds"
kr=() fr=()
for r in $(seq 1 "$ROUNDS"); do
    cold_both
    note "round $r: Kubo's mount"
    step T python3 "$BENCH_LIB_DIR/bench-random.py" mount "$K/ipfs/$CID" "$SEQ_SIZE" "$READS" "$r"
    kr+=("$T")
    note "round $r: ipfsfs"
    step T python3 "$BENCH_LIB_DIR/bench-random.py" mount "$MNT/$CID" "$SEQ_SIZE" "$READS" "$r"
    fr+=("$T")
done
note "seconds: kubo ${kr[*]}; ipfsfs ${fr[*]}"
peer "$READS random 4 KiB reads, s" "$(best "${fr[@]}")" "$(best "${kr[@]}")"

# ---- 4. cp -r of a 1,000-file tree --------------------------------------------------------------

show_only python3 - "$WORK/tree" "$NFILES" "$NDIRS"
python3 - "$WORK/tree" "$NFILES" "$NDIRS" <<'PY'
import os, random, sys
top, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(11)
for i in range(n):
    sub = os.path.join(top, "d%02d" % (i % d))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%04d.dat" % i), "wb") as f:
        f.write(rnd.randbytes(rnd.randint(512, 8192)))
PY
note "tree: $(find "$WORK/tree" -type f | wc -l) files, $(du -sb "$WORK/tree" | cut -f1) bytes, in $(find "$WORK/tree" -mindepth 1 -type d | wc -l) directories"

say "-- 4. cp -r of the tree, $ROUNDS rounds"
kt=() ft=()
for r in $(seq 1 "$ROUNDS"); do
    sync
    note "round $r: Kubo's /mfs"
    step T cp -r "$WORK/tree" "$K/mfs/kubo/tree-$r"
    kt+=("$T")
    sync
    note "round $r: ipfsfs"
    step T cp -r "$WORK/tree" "$MNT/tree-$r"
    ft+=("$T")
done
for r in $(seq 1 "$ROUNDS"); do
    note "round $r: files now in MFS: /kubo/tree-$r $(curl -s -X POST -m 60 "$NODE_URL/files/stat?arg=/kubo/tree-$r" | tr -d '\n' | head -c 200); /ipfsfs/tree-$r $(curl -s -X POST -m 60 "$NODE_URL/files/stat?arg=/ipfsfs/tree-$r" | tr -d '\n' | head -c 200)"
done
note "seconds: kubo ${kt[*]}; ipfsfs ${ft[*]}"
peer "cp -r $NFILES files in $NDIRS dirs, s" "$(best "${ft[@]}")" "$(best "${kt[@]}")"

# ---- 5. git clone --------------------------------------------------------------------------------

show git clone -q --bare --no-local "$IPFSFS_SRCDIR" "$WORK/repo.git" || die "git clone --bare failed"
note "repository: $(git -C "$WORK/repo.git" rev-list --count HEAD) commits, $(git -C "$WORK/repo.git" ls-tree -r HEAD | wc -l) files, $(du -sk "$WORK/repo.git" | cut -f1) KiB packed"
say "-- 5. git clone, $ROUNDS rounds"
kg=() fg=()
for r in $(seq 1 "$ROUNDS"); do
    sync
    note "round $r: Kubo's /mfs"
    step T git clone -q "$WORK/repo.git" "$K/mfs/kubo/clone-$r"
    kg+=("$T")
    sync
    note "round $r: ipfsfs"
    step T git clone -q "$WORK/repo.git" "$MNT/clone-$r"
    fg+=("$T")
done
for r in $(seq 1 "$ROUNDS"); do
    note "round $r: git status: kubo $(timeout 60 git -C "$K/mfs/kubo/clone-$r" status --porcelain 2>&1 | wc -l) lines, ipfsfs $(timeout 60 git -C "$MNT/clone-$r" status --porcelain 2>&1 | wc -l) lines (0 = a clean checkout)"
done
note "seconds: kubo ${kg[*]}; ipfsfs ${fg[*]}"
peer "git clone (small repository), s" "$(best "${fg[@]}")" "$(best "${kg[@]}")"

print_stats
bench_done
