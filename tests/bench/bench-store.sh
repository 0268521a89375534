#!/usr/bin/env bash
# bench-store.sh - the embedded block store (ipfsfs --store=DIR, no node): writing and reading a
# large file against the floor the local disk and CPU set on this machine.
#
#   cp FILE MNT/name (chunk, hash, store, link)   vs  sha256sum FILE (read + hash once)
#   cold cat MNT/name >/dev/null (verify on read)  vs  cold cat FILE >/dev/null
#   targets: cp >= 0.5 x sha256sum; cold read >= 0.5 x local cat
#
# The source file is in the page cache for both writes; for the reads the caches are dropped
# and ipfsfs is remounted, so both read from disk. The write is timed BENCH_STORE_RUNS times,
# each into a new store after a sync (so no block is there already and no earlier write is
# still being flushed), and the medians are compared. fsync costs depend on the filesystem under
# the store: its type is printed. Not a pass/fail test.
#
# Environment: BENCH_STORE_SIZE (default 256M), BENCH_STORE_RUNS (default 3), BENCH_FS_ARGS
# (extra ipfsfs options), and those of lib.sh (BENCH_RESULTS, BENCH_TIMEOUT, BENCH_KEEP,
# BENCH_QUIET_WAIT).
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_LABEL=${BENCH_STORE_SIZE:-256M}
SIZE=$(to_bytes "$SIZE_LABEL")
RUNS=${BENCH_STORE_RUNS:-3}
read -r -a EXTRA <<<"${BENCH_FS_ARGS:-}"

[ -x "$IPFSFS_BIN" ] || die "no binary at $IPFSFS_BIN (build it, or set IPFSFS_BIN)"
[ "$(id -u)" -eq 0 ] || die "must run as root (drop_caches, /dev/fuse)"
for tool in fusermount3 mountpoint getfattr sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done
bench_init bench-store

STORE=$WORK/store
MNT=$WORK/mnt
FILE=$WORK/file
note "generating $SIZE random bytes"
gen_file "$FILE" "$SIZE"
note "store on $(df -PT "$WORK" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }')"
[ "$RUNS" -ge 1 ] 2>/dev/null || die "BENCH_STORE_RUNS must be a positive number"

# mount_store: mount $MNT on $STORE (FS_PID, FS_MNT as lib.sh's mount_fs sets them).
mount_store() {
    local log=$WORK/ipfsfs.log
    # shellcheck disable=SC2034 # read by lib.sh (unmount_fs, cleanup)
    FS_MNT=$MNT
    mkdir -p "$MNT"
    show_only "$IPFSFS_BIN" --store="$STORE" "${EXTRA[@]}" -f "$MNT"
    "$IPFSFS_BIN" --store="$STORE" "${EXTRA[@]}" -f "$MNT" >>"$log" 2>&1 </dev/null 3>&- &
    FS_PID=$!
    track_pid "$FS_PID"
    BENCH_MOUNTS+=("$MNT")
    echo "$MNT" >>"$WORK/mounts"
    for _ in $(seq 1 100); do
        mountpoint -q "$MNT" && return 0
        kill -0 "$FS_PID" 2>/dev/null || break
        sleep 0.2
    done
    sed 's/^/#   /' "$log"
    die "ipfsfs did not mount $MNT"
}

mount_store

# ---- write: cp into the store vs hashing the same bytes once ----
cat "$FILE" >/dev/null # warm: both sides read the source from the page cache
HASH_RUNS=()
CP_RUNS=()
for run in $(seq 1 "$RUNS"); do
    if [ "$run" -gt 1 ]; then
        # A new store, as the blocks of the last run would be deduplicated; the last one is not
        # deleted, as ext4 without a journal skips recently freed inodes, slowly, when it
        # allocates new ones.
        unmount_fs
        STORE=$WORK/store.$run
        mount_store
    fi
    sync # no dirty pages left from generating the file or from the last run
    timed HASH_SECS sh -c "sha256sum '$FILE' >/dev/null" || die "sha256sum failed"
    timed CP_SECS cp "$FILE" "$MNT/big" || die "cp into the store failed"
    note "run $run: sha256sum $HASH_SECS s, cp $CP_SECS s"
    HASH_RUNS+=("$HASH_SECS")
    CP_RUNS+=("$CP_SECS")
done
HASH_SECS=$(median "${HASH_RUNS[@]}")
CP_SECS=$(median "${CP_RUNS[@]}")
CID=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$MNT/big" 2>/dev/null)
note "sha256sum: $HASH_SECS s, $(mbps "$SIZE" "$HASH_SECS") MB/s (median of $RUNS)"
note "cp:        $CP_SECS s, $(mbps "$SIZE" "$CP_SECS") MB/s (median of $RUNS; includes spooling, chunking, hashing, fsync); $CID"
note "store: $(du -sh "$STORE" | cut -f1), $(find "$STORE/blocks" -name '*.data' | wc -l) blocks"
ratio=$(calc "$HASH_SECS / $CP_SECS")
record "write-$SIZE_LABEL" "${CP_SECS}s" "${HASH_SECS}s" "$ratio" ">= 0.5 x sha256sum" "$(verdict "$ratio >= 0.5")"

# ---- cold read: cat through the mount (every block verified) vs cat of the local file ----
unmount_fs
drop_caches
mount_store
timed READ_SECS sh -c "cat '$MNT/big' >/dev/null" || die "reading back failed"
drop_caches
timed LOCAL_SECS sh -c "cat '$FILE' >/dev/null" || die "reading the local file failed"
note "cold cat via the store: $READ_SECS s, $(mbps "$SIZE" "$READ_SECS") MB/s"
note "cold cat local file:    $LOCAL_SECS s, $(mbps "$SIZE" "$LOCAL_SECS") MB/s"
ratio=$(calc "$LOCAL_SECS / $READ_SECS")
record "cold-read-$SIZE_LABEL" "${READ_SECS}s" "${LOCAL_SECS}s" "$ratio" ">= 0.5 x local cat" "$(verdict "$ratio >= 0.5")"

# ---- warm read by CID (ipfsfs's chunk cache and the kernel's page cache) ----
timed WARM_SECS sh -c "cat '$MNT/$CID' >/dev/null" || die "reading by CID failed"
note "warm cat by CID: $WARM_SECS s, $(mbps "$SIZE" "$WARM_SECS") MB/s"
unmount_fs
bench_done
