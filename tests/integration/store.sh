#!/usr/bin/env bash
# store.sh - the embedded block store backend (ipfsfs --store=DIR MNT): no IPFS node at all.
# Files copied in get the CIDs Kubo would give them (checked against Debian's ipfs_cid), read
# back by name and by CID; directories get Kubo's CIDs; a corrupted block file reads as EIO;
# kill -9 during a copy leaves the store consistent and the old content of the name intact;
# the names survive a remount.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=/tmp/build/src/ipfsfs tests/integration/store.sh
# Uses ipfs_cid (apt-get install ipfs-cid) when present; those checks are skipped without it.
#
# shellcheck source-path=SCRIPTDIR disable=SC2317
# (SC2317: functions run through check)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
lib_init

STORE=$WORK/store
MNT=$WORK/mnt
SRC=$WORK/src
mkdir -p "$SRC"

skip() { ok "$1 # SKIP $2"; }
have() { command -v "$1" >/dev/null 2>&1; }
cid_of() { getfattr --absolute-names --only-values -n user.ipfs.cid "$1" 2>/dev/null; }
local_cid() {
    ipfs_cid "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["CIDv0"])'
}

# block_file CID: the store's file for CID's block (flatfs layout: blocks/XY/KEY.data).
block_file() {
    python3 - "$WORK" "$1" "$STORE" <<'PY'
import base64, sys
sys.path.insert(0, sys.argv[1])
from helper import multihash
key = base64.b32encode(multihash(sys.argv[2])).decode().rstrip("=")
print(f"{sys.argv[3]}/blocks/{key[-3:-1]}/{key}.data")
PY
}

# fsck: every block file's content matches its name (sha2-256 multihash).
fsck_store() {
    python3 - "$STORE" <<'PY'
import base64, hashlib, os, sys
bad = n = 0
for d, _, files in os.walk(os.path.join(sys.argv[1], "blocks")):
    for f in files:
        if not f.endswith(".data"):
            continue
        n += 1
        mh = base64.b32decode(f[:-5] + "=" * (-len(f[:-5]) % 8))
        data = open(os.path.join(d, f), "rb").read()
        if mh[:2] != b"\x12\x20" or hashlib.sha256(data).digest() != mh[2:]:
            print("corrupt:", f)
            bad += 1
print(f"{n} blocks, {bad} corrupt")
sys.exit(1 if bad else 0)
PY
}

mount_store() { mount_ipfsfs "$MNT" --store="$STORE"; }
# remount DESC: mount again (not through check: MOUNT_PID must be set in this shell).
remount() { if mount_store; then ok "$1"; else not_ok "$1"; fi; }

if ! mount_store; then
    not_ok "mount with --store"
    finish
fi
ok "mount with --store (no node running)"
check_eq "an empty store has an empty root" "$(find "$MNT" -mindepth 1 | wc -l)" 0
check_eq "the empty root is Kubo's empty directory" "$(cat "$STORE/root")" \
    QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn

# ---- files: CIDs equal ipfs_cid's, read back by name and by CID ----
printf 'Test' >"$SRC/Test"
check "cp a 4-byte file" cp "$SRC/Test" "$MNT/test.txt"
check_eq "its CID is Kubo's" "$(cid_of "$MNT/test.txt")" QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR
sync "$MNT" # the group commit: DIR/root is written within 1 s, or by fsync/syncfs
check_eq "the root is the wrap-with-directory CID" "$(cat "$STORE/root")" \
    QmbW7t5BzZb38M61bJUxsRxz6MbDhgrfzQaxyq6hRBBedS
sizes=(0 1 262143 262144 262145 $((174 * 262144)) $((174 * 262144 + 1)) $((20 << 20)))
i=0
for size in "${sizes[@]}"; do
    i=$((i + 1))
    f=$SRC/f$size
    gen_file "$f" "$size" "$i"
    check "cp $size bytes" cp "$f" "$MNT/f$size"
    check "read $size bytes back by name" cmp "$f" "$MNT/f$size"
    cid=$(cid_of "$MNT/f$size")
    if have ipfs_cid; then
        check_eq "$size bytes: CID equals ipfs_cid's" "$cid" "$(local_cid "$f")"
    else
        skip "$size bytes: CID equals ipfs_cid's" "ipfs_cid is not installed"
    fi
    check "read $size bytes back by CID" cmp "$f" "$MNT/$cid"
done

# ---- directories: Kubo's CIDs ----
mkdir -p "$SRC/d/sub"
printf 'hello\n' >"$SRC/d/h.txt"
printf 'world\n' >"$SRC/d/sub/w.txt"
check "cp -r a tree" cp -r "$SRC/d" "$MNT/d"
check_eq "the tree's CID is Kubo's" "$(cid_of "$MNT/d")" QmdzqLiAivQsXx9RMqiBVpDTwsFKSFC4zAuUiuAm8ut2jC
check_eq "the subdirectory's CID is Kubo's" "$(cid_of "$MNT/d/sub")" \
    QmbLoRBqxVhtj6mCYKHJiC1qTT1dr7DYKRQ93rjcbMFgGn
# The same tree copied under umask 002 (Debian's user-private groups): files come 0664 and
# directories 0775, which differ from the defaults only in the group's write bit, an effect of
# the umask that is not stored, so the CIDs stay ipfs add's. An executable's mode is stored.
check "cp -r the same tree under umask 002" bash -c "umask 002 && cp -r '$SRC/d' '$MNT/d002'"
check_eq "... its CID is still Kubo's (the umask's group write bit is not stored)" \
    "$(cid_of "$MNT/d002")" QmdzqLiAivQsXx9RMqiBVpDTwsFKSFC4zAuUiuAm8ut2jC
check_eq "... and its files show the default mode" "$(stat -c %a "$MNT/d002/h.txt")" 644
cp "$SRC/d/h.txt" "$SRC/x775" && chmod 775 "$SRC/x775"
check "an executable copied under umask 002 (created 0775)" \
    bash -c "umask 002 && cp '$SRC/x775' '$MNT/x002'"
check_eq "... keeps its mode" "$(stat -c %a "$MNT/x002")" 775
# A mount others may enter (-o allow_other): the group write bit of a create is kept.
M_SHARED=$WORK/mnt-shared
if mount_ipfsfs "$M_SHARED" --store="$WORK/store-shared" -o allow_other; then
    check "-o allow_other: a file made under umask 002" bash -c "umask 002 && echo x >'$M_SHARED/g'"
    check_eq "... keeps the group write bit" "$(stat -c %a "$M_SHARED/g")" 664
    check_unmount "unmount (allow_other)" "$M_SHARED"
else
    not_ok "mount with -o allow_other"
fi
check "ls the tree by CID" test "$(ls "$MNT/QmdzqLiAivQsXx9RMqiBVpDTwsFKSFC4zAuUiuAm8ut2jC")" = "h.txt
sub"
check "read through a CID path" cmp "$SRC/d/sub/w.txt" \
    "$MNT/QmdzqLiAivQsXx9RMqiBVpDTwsFKSFC4zAuUiuAm8ut2jC/sub/w.txt"
check "mv replaces a file" mv "$MNT/f1" "$MNT/f0"
check "the replaced name has the moved content" cmp "$SRC/f1" "$MNT/f0"
check_errno "the moved name is gone" ENOENT stat "$MNT/f1"
check "ln -s" ln -s ../target "$MNT/link"
check_eq "readlink" "$(readlink "$MNT/link")" ../target
check "chmod" chmod 0600 "$MNT/test.txt"
check_eq "the mode is stored" "$(stat -c %a "$MNT/test.txt")" 600
check "rm" rm "$MNT/f262143"
check_errno "an unknown CID is ENOENT at once" ENOENT stat \
    "$MNT/QmQQuBq3HaJoiQqVkQMHPUwwakJRwVV2XcPZssVkxFUKiF"
check "every block verifies" fsck_store
names_before=$(cd "$MNT" && for n in *; do printf '%s %s\n' "$n" "$(cid_of "$n")"; done)
check_unmount "unmount" "$MNT"

# ---- remount keeps names ----
remount "remount"
names_after=$(cd "$MNT" && for n in *; do printf '%s %s\n' "$n" "$(cid_of "$n")"; done)
check_eq "the names survive a remount" "$names_after" "$names_before"
check "the content survives a remount" cmp "$SRC/f262145" "$MNT/f262145"
check_unmount "unmount" "$MNT"

# ---- corruption: EIO, never wrong bytes ----
remount "remount"
single=$(cid_of "$MNT/f262144")
check_unmount "unmount" "$MNT"
blk=$(block_file "$single")
check "the block file is where the layout says" test -f "$blk"
chmod u+w "$blk"
printf 'X' | dd of="$blk" bs=1 seek=100 conv=notrunc status=none
remount "remount after corrupting a block"
out=$(cat "$MNT/f262144" 2>&1 >/dev/null)
check_eq "reading a corrupted block fails with EIO" "${out##*: }" "Input/output error"
check "the corruption is logged with the CID" grep -q "block $single is corrupt" "${MOUNT_LOG[$MNT]}"
check "other files still read" cmp "$SRC/f262145" "$MNT/f262145"

# ---- kill -9 during cp: the old content of the name stays ----
gen_file "$SRC/big" $((200 << 20)) 99
cp "$SRC/f262145" "$MNT/victim"
cp "$SRC/big" "$MNT/victim" 2>/dev/null &
cp_pid=$!
# Let the copy get into the add (spooling 200 MiB takes a moment), then kill the filesystem.
sleep 1.5
kill -9 "${MOUNT_PID[$MNT]}"
wait "$cp_pid" 2>/dev/null
fusermount3 -uz "$MNT" 2>/dev/null
unset "MOUNT_PID[$MNT]"
check "the root file is a whole CID after kill -9" python3 -c "
import sys; s = open('$STORE/root').read(); sys.exit(0 if s.endswith('\n') and len(s) > 40 else 1)"
remount "remount after kill -9"
check "the name has its old content (or the whole new one)" sh -c \
    "cmp -s '$SRC/f262145' '$MNT/victim' || cmp -s '$SRC/big' '$MNT/victim'"
fsck_out=$(fsck_store 2>&1)
check_eq "fsck after kill -9: one corrupt block, the one damaged on purpose" \
    "$(printf '%s\n' "$fsck_out" | grep -c '^corrupt:')" 1
check "the other names read" cmp "$SRC/d/h.txt" "$MNT/d/h.txt"
check_unmount "unmount" "$MNT"

# ---- collection: old versions and removed files leave the store ----
# The collector runs after commits (at most every 5 s) and keeps blocks put within 10 s: 20 MiB
# written, overwritten and removed give their disk back within about 30 s.
store_kib() { du -sk "$STORE/blocks" | cut -f1; }
stat_of() { "$IPFSFS_BIN" --stats "$MNT" 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'; }
# wait_kib_at_most KIB SECONDS: poll the store's disk use.
wait_kib_at_most() {
    local i
    for i in $(seq 1 "$2"); do
        [ "$(store_kib)" -le "$1" ] && return 0
        sleep 1
    done
    return 1
}
# (Each collection that removes blocks logs a line at --log-level=info.)
if mount_ipfsfs "$MNT" --store="$STORE" --log-level=info; then
    ok "remount for the collection"
else
    not_ok "remount for the collection"
fi
gen_file "$SRC/gc1" $((20 << 20)) 71
gen_file "$SRC/gc2" $((20 << 20)) 72
# What the kill -9 above left (an unfinished add, no name) goes with the first collection.
printf 'x' >"$MNT/gc-start"
sync "$MNT"
sleep 6
base=$(store_kib)
check "dd 20 MiB into the mount" dd if="$SRC/gc1" of="$MNT/gc" bs=1M conv=fsync status=none
gc_first=$(cid_of "$MNT/gc")
check "overwrite it" dd if="$SRC/gc2" of="$MNT/gc" bs=1M conv=fsync status=none
check "it reads the second version" cmp "$SRC/gc2" "$MNT/gc"
sync "$MNT"
peak=$(store_kib)
check "the store holds both versions ($base KiB before, $peak KiB now)" \
    test "$peak" -ge $((base + 38 * 1024))
check "rm it" rm "$MNT/gc"
sync "$MNT"
t0=$(now)
check "the store's disk use drops back (was $base KiB before the dd, $peak KiB after)" \
    wait_kib_at_most $((base + 1024)) 60
diag "collected within $(elapsed "$t0") s: $(store_kib) KiB"
check "the first version's root block is gone" test ! -e "$(block_file "$gc_first")"
check "the collection is logged" grep -q "collected .* unused blocks" "${MOUNT_LOG[$MNT]}"
collected=$(stat_of store_gc_bytes)
check "--stats counts the bytes collected ($collected)" test "${collected:-0}" -ge $((40 << 20))
check "the other names read" cmp "$SRC/d/h.txt" "$MNT/d/h.txt"
check "a large file reads" cmp "$SRC/f20971520" "$MNT/f20971520"
# A file open while its name goes keeps its content (POSIX): the collector leaves it alone.
check "dd 20 MiB more" dd if="$SRC/gc1" of="$MNT/gc-open" bs=1M conv=fsync status=none
exec 8<"$MNT/gc-open"
check "rm it while it is open" rm "$MNT/gc-open"
sync "$MNT"
before=$(stat_of store_gc_runs)
for _ in $(seq 1 60); do
    [ "$(stat_of store_gc_runs)" -gt $((before + 1)) ] && break
    sleep 1
done
if cmp -s "$SRC/gc1" - <&8; then
    ok "two collections later, the open file still reads whole"
else
    not_ok "two collections later, the open file still reads whole" "$(tail -3 "${MOUNT_LOG[$MNT]}")"
fi
exec 8<&-
sync "$MNT"
check "once closed, its blocks go with a later collection" \
    wait_kib_at_most $((base + 1024)) 60
fsck_out=$(fsck_store 2>&1)
check_eq "fsck after the collection: the one block damaged on purpose" \
    "$(printf '%s\n' "$fsck_out" | grep -c '^corrupt:')" 1
check_unmount "unmount" "$MNT"
remount "remount after the collection"
check "the names read after a remount" cmp "$SRC/f262145" "$MNT/f262145"
check "the large file reads after a remount" cmp "$SRC/f20971520" "$MNT/f20971520"
# A file made and removed within one commit interval leaves the root as it was: its blocks
# still go (the collector ran only after commits that made a new root, so they stayed for
# good, even after a remount and more changes). Unmounted at once, before any collection: the
# next mount collects them after its first change.
base=$(store_kib)
# shellcheck disable=SC2016 # $1 and $2 are for the inner shell
check "cp 20 MiB, rm at once" sh -c 'cp "$1" "$2" && rm "$2"' sh "$SRC/gc1" "$MNT/gc-brief"
check "... the store holds its blocks for now" test "$(store_kib)" -ge $((base + 19 * 1024))
check_unmount "unmount at once" "$MNT"
if mount_ipfsfs "$MNT" --store="$STORE" --log-level=info; then
    ok "remount"
else
    not_ok "remount"
fi
# shellcheck disable=SC2016 # $1 is for the inner shell
check "a change: mkdir, then rmdir at once (the root is as it was)" \
    sh -c 'mkdir "$1" && rmdir "$1"' sh "$MNT/gc-brief-dir"
check "... the blocks of the file removed at once go (was $base KiB before it)" \
    wait_kib_at_most $((base + 1024)) 60
check "the names still read" cmp "$SRC/f262145" "$MNT/f262145"
check_unmount "unmount" "$MNT"

finish
