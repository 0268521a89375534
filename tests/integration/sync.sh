#!/usr/bin/env bash
# sync.sh - local-first writes on a real Kubo node (issue 12): names and blocks are local, close
# never waits for the node, the sync engine pushes in the background; fsync, unmount, a dead
# node, kill -9, changes made on the node (adopted, merged, conflicts) and --write-through.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=build/src/ipfsfs tests/integration/sync.sh
#
# shellcheck source-path=SCRIPTDIR disable=SC2317
# (SC2317: functions run through check)
export IPFSFS_BACKEND=local
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
require_node
lib_init

have() { command -v "$1" >/dev/null 2>&1; }
cid_of() { getfattr --absolute-names --only-values -n user.ipfs.cid "$1" 2>/dev/null; }
state_of() { getfattr --absolute-names --only-values -n user.ipfsfs.sync "$1" 2>&1; }
# check_says_why DESC PATH: user.ipfsfs.sync of PATH is "error: REASON" (shown in the line).
check_says_why() {
    local st
    st=$(state_of "$2")
    case $st in
        error:*) ok "$1 (${st:0:100})" ;;
        *) not_ok "$1" "got: $st" ;;
    esac
}
fsync_path() {
    python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$1"
}
# check_conflict_copy WHAT NAME CONTENT: MNT/NAME.conflict-* exists and holds CONTENT (the
# node's version, kept beside the local one)
check_conflict_copy() {
    local c
    c=$(find "$MNT" -maxdepth 1 -name "$2.conflict-*" -printf '%f\n' | head -n 1)
    check "$1: the node's version is beside it (${c:-none})" test -n "$c"
    [ -n "$c" ] && check_eq "$1: the copy holds the node's version" "$(cat "$MNT/$c" 2>&1)" "$3"
}
# node_hash MFSPATH: the CID the node's MFS has at MFSPATH (empty if none)
node_hash() { kubo files stat --hash "$1" 2>/dev/null; }
# wait_for SECS CMD...: poll CMD until it succeeds (0) or SECS pass (1)
wait_for() {
    local secs=$1 t0
    shift
    t0=$(date +%s)
    until "$@"; do
        [ $(($(date +%s) - t0)) -ge "$secs" ] && return 1
        sleep 0.2
    done
}

if ! start_node node; then
    not_ok "the test node starts"
    finish
fi
ok "the test node starts ($NODE_API)"
MNT=$WORK/mnt
STORE=$WORK/lstore
# --sync-ahead=on: its default (auto) is off on a machine of fewer than 4 CPUs; every case
# below runs with a large file's blocks sent while it is written.
ARGS=(--api="$NODE_API" --store="$STORE" --timeout=5 --unmount-wait=5 --sync-ahead=on)
stat_of() {
    getfattr --absolute-names --only-values -n user.ipfsfs.stats "$MNT" 2>/dev/null |
        awk -v k="$1" '$1 == k { print $2 }'
}

# A source-like tree: 120 files of 0.5-8 KiB in 6 directories, an empty directory, a symlink.
TREE=$WORK/src/tree
mkdir -p "$TREE"
for d in 0 1 2 3 4 5; do
    mkdir -p "$TREE/d$d/sub"
    for f in $(seq 1 20); do
        head -c $(((f * 397 + d * 911) % 7680 + 512)) /dev/urandom >"$TREE/d$d/f$f.c"
    done
done
mkdir -p "$TREE/empty"
ln -s d0/f1.c "$TREE/link"
WANT_TREE=$(kubo add -r -Q -n "$TREE")
check "ipfs add -r --only-hash gives the tree's CID ($WANT_TREE)" test -n "$WANT_TREE"

# ---- local-first: close does not wait, the CIDs are right at once ---------------------------
mount_ipfsfs "$MNT" "${ARGS[@]}" || { not_ok "mount (local-first)"; finish; }
ok "mount (local-first, store in STORE)"
t0=$(now)
check "cp -r of 120 files into the mount" cp -r "$TREE" "$MNT/tree"
diag "cp -r took $(elapsed "$t0") s"
check_eq "user.ipfs.cid of the copied tree is ipfs add -r's, at once" "$(cid_of "$MNT/tree")" \
    "$WANT_TREE"
check "the tree reads back (diff -r)" diff -r "$TREE" "$MNT/tree"
# shellcheck disable=SC2012 # ls -i is the readdir under test
check_eq "readdir's .. of tree/d0 is tree's inode" \
    "$(ls -ia "$MNT/tree/d0" | awk '$2 == ".." { print $1 }')" "$(stat -c %i "$MNT/tree")"
# Bytes that look like the multipart upload's framing (an object file of ipfsfs itself holds
# such strings): they are data like any other, and the pushes after them go on.
printf 'a\r\n--ipfsfs-7d1c3a9e5b2f4068\r\nb\r\n--ipfsfs-7d1c3a9e5b2f4068--\r\n' >"$WORK/framing"
cp "$WORK/framing" "$MNT/framing.txt"
check "a file holding multipart boundaries: fsync reaches the node" fsync_path "$MNT/framing.txt"
check_eq "... and the node has its bytes" "$(node_hash /framing.txt)" \
    "$(kubo add -Q -n "$WORK/framing")"
echo -n Test >"$MNT/test.txt"
check_eq "user.ipfs.cid of a 4-byte file 'Test' is the known CID" "$(cid_of "$MNT/test.txt")" \
    QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR
st=$(state_of "$MNT/test.txt")
case $st in
    synced | pending) ok "user.ipfsfs.sync of a new file is synced or pending ($st)" ;;
    *) not_ok "user.ipfsfs.sync of a new file is synced or pending" "got: $st" ;;
esac
check_errno "user.ipfsfs.sync of a missing name is ENOENT" ENOENT getxattr \
    "$MNT/no-such-name" user.ipfsfs.sync

# ---- fsync: durable locally and on the node -------------------------------------------------
check "fsync(2) on the mount root succeeds" fsync_path "$MNT"
check_eq "after fsync the node's MFS has the tree (files/stat /tree)" "$(node_hash /tree)" \
    "$WANT_TREE"
check_eq "after fsync the node's MFS has test.txt" "$(node_hash /test.txt)" \
    QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR
check_eq "user.ipfsfs.sync of test.txt is synced" "$(state_of "$MNT/test.txt")" synced
# Linux allows no user. attribute on a symlink: its state is read as ipfsfs.sync (as ipfs.cid).
ln -s test.txt "$MNT/sync-link"
check "fsync after ln -s" fsync_path "$MNT"
check_eq "a symlink's state reads as ipfsfs.sync (getfattr -h)" \
    "$(getfattr -h --absolute-names --only-values -n ipfsfs.sync "$MNT/sync-link" 2>&1)" synced
check_eq "the node's copy of d3/f7.c is the file" \
    "$(kubo files read /tree/d3/f7.c | sha256sum | cut -d' ' -f1)" \
    "$(sha256sum <"$TREE/d3/f7.c" | cut -d' ' -f1)"
echo "fsync me" >"$MNT/one.txt"
check "fsync(2) on one file succeeds" fsync_path "$MNT/one.txt"
check_eq "the node has the fsync'ed file" "$(kubo files read /one.txt 2>&1)" "fsync me"

# A large file written in order: its chunks go to the node while it is written, the push
# leaves them out, and the node has the file, whole, after fsync.
head -c $((8 << 20)) /dev/urandom >"$WORK/big8"
ahead0=$(stat_of sync_ahead_blocks)
sent0=$(stat_of sync_blocks_sent)
cp "$WORK/big8" "$MNT/big8"
check "fsync(2) of an 8 MiB file succeeds" fsync_path "$MNT/big8"
check_eq "the node has the 8 MiB file, whole" "$(kubo files read /big8 | sha256sum)" \
    "$(sha256sum <"$WORK/big8")"
check_eq "its CID on the node is ipfs add's" "$(node_hash /big8)" \
    "$(kubo add -Q -n "$WORK/big8")"
ahead=$(($(stat_of sync_ahead_blocks) - ${ahead0:-0}))
sent=$(($(stat_of sync_blocks_sent) - ${sent0:-0}))
diag "sent ahead: $ahead blocks; with the names: $sent blocks"
check "its 32 chunks went ahead of the name (sync_ahead_blocks +$ahead)" test "$ahead" -ge 32
check "and the push did not send them again (sync_blocks_sent +$sent)" test "$sent" -lt 32
# Blocks sent ahead are not pinned: a node that dropped them (files rm and repo gc made there)
# must not get a name that links what it lacks. Renamed here at once, before the mount learns
# of the removal, big8 is pushed again: its chunks are known to have gone ahead, the node is
# asked whether it still has them (refs -r, offline), and they are sent again.
kubo files rm /big8 >/dev/null
kubo repo gc >/dev/null 2>&1
# Its first 256 KiB alone make a file whose CID is its first chunk's: that block too.
head -c 262144 "$WORK/big8" >"$WORK/part0"
if mv "$MNT/big8" "$MNT/big8-moved" 2>/dev/null; then
    cp "$WORK/part0" "$MNT/part0"
    check "fsync after the rename succeeds" fsync_path "$MNT/big8-moved"
    check_eq "the node has the renamed file whole, though it had dropped its blocks" \
        "$(kubo files read /big8-moved 2>&1 | sha256sum)" "$(sha256sum <"$WORK/big8")"
    check_eq "and the file that is one of its chunks" \
        "$(kubo files read /part0 2>&1 | sha256sum)" "$(sha256sum <"$WORK/part0")"
    check "the push saw that the node lacked them (sync_ahead_missing $(stat_of sync_ahead_missing))" \
        test "$(stat_of sync_ahead_missing)" -ge 1
    rm -f "$MNT/big8-moved" "$MNT/part0"
else
    diag "the mount adopted the removal before the rename: that check is skipped this time"
    rm -f "$MNT/big8"
fi

# Renames, removals and a chmod reach the node too.
mv "$MNT/tree/d5" "$MNT/tree/d5-moved"
rm -r "$MNT/tree/d4"
chmod 0600 "$MNT/one.txt"
fsync_path "$MNT"
check_eq "a rename reached the node" "$(kubo files ls /tree | LC_ALL=C sort | tr '\n' ' ')" \
    "d0 d1 d2 d3 d5-moved empty link "
check_eq "the node's MFS root is the store's committed root" "$(node_hash /)" \
    "$(cat "$STORE/root" 2>&1)"

# ---- a large directory ----------------------------------------------------------------------
# 2,500 names of ~100 bytes: past Kubo's 256 KiB estimate of names and CIDs the directory is a
# HAMT, each change edits only the shards on a name's path, and it goes to the node whole (one
# files/cp), not name by name. Its CID is ipfs add's, on the mount and on the node. Then half
# the names go: back under the estimate, it is a plain directory again, as Kubo makes it.
# (Long names keep it small enough for the sanitizer builds; the copies are bounded by 600 s,
# not by check's 60.)
MANY=$WORK/src/many
mkdir -p "$MANY"
python3 - "$MANY" <<'PY'
import sys
for i in range(2500):
    with open(f"{sys.argv[1]}/{'long-name-' * 9}{i:05d}.txt", "w") as f:
        f.write(f"entry {i}\n")
PY
LONG=long-name-long-name-long-name-long-name-long-name-long-name-long-name-long-name-long-name-
copy_many() { timeout -k 5 600 cp -r "$MANY" "$MNT/many"; }
remove_odd() { timeout -k 5 600 find "$MNT/many" -name 'long-*[13579].txt' -delete; }
WANT_MANY=$(kubo add -r -Q -n "$MANY")
t0=$(now)
check "cp -r of a directory of 2,500 files" copy_many
check "fsync(2) of it succeeds" fsync_path "$MNT/many"
diag "cp -r + fsync of 2,500 files in one directory took $(elapsed "$t0") s"
check_eq "its CID is ipfs add -r's (a HAMT)" "$(cid_of "$MNT/many")" "$WANT_MANY"
check_eq "the node has the same directory" "$(node_hash /many)" "$WANT_MANY"
check_eq "${LONG}01234.txt reads back" "$(cat "$MNT/many/${LONG}01234.txt" 2>&1)" "entry 1234"
# A few names more (fewer than 32): they go name by name, and Kubo edits its HAMT itself.
for i in 1 2 3 4 5; do
    echo "late $i" >"$MANY/late-$i.txt"
    echo "late $i" >"$MNT/many/late-$i.txt"
done
WANT_MORE=$(kubo add -r -Q -n "$MANY")
check "fsync(2) after 5 more names succeeds" fsync_path "$MNT/many"
check_eq "its CID is ipfs add -r's" "$(cid_of "$MNT/many")" "$WANT_MORE"
check_eq "the node, editing its HAMT name by name, has the same" "$(node_hash /many)" \
    "$WANT_MORE"
find "$MANY" -name 'long-*[13579].txt' -delete
WANT_HALF=$(kubo add -r -Q -n "$MANY")
t0=$(now)
check "removing 1,250 of them (find -delete)" remove_odd
check "fsync(2) after the removals succeeds" fsync_path "$MNT/many"
diag "removing 1,250 names + fsync took $(elapsed "$t0") s"
check_eq "1,255 names are left" "$(find "$MNT/many" -type f | wc -l)" 1255
check_eq "its CID is ipfs add -r's of the 1,255 (a plain directory again)" \
    "$(cid_of "$MNT/many")" "$WANT_HALF"
check_eq "the node has the same directory" "$(node_hash /many)" "$WANT_HALF"
rm -rf "$MNT/many"
# 450 names straight under the mount's root, which never goes whole: name by name, in batches
# (flush=false; a files/flush every 200 and at the end of each push).
mkdir -p "$WORK/src/r450"
for i in $(seq 1 450); do echo "r $i" >"$WORK/src/r450/r$i.txt"; done
cp "$WORK/src/r450"/* "$MNT/"
check "fsync(2) after 450 names under the root succeeds" fsync_path "$MNT"
check_eq "the node has the 450 names" "$(kubo files ls / | grep -c '^r[0-9]*\.txt$')" 450
check_eq "the node's MFS root is the store's committed root" "$(node_hash /)" \
    "$(cat "$STORE/root" 2>&1)"
rm -f "$MNT"/r*.txt

# ---- a clean unmount leaves the node with everything ----------------------------------------
echo "written last" >"$MNT/last.txt"
check_unmount "unmount (clean: pushes what is pending)" "$MNT"
check_eq "after unmount the node has the last file" "$(kubo files read /last.txt 2>&1)" \
    "written last"
# A store that synced before mounts while its node is down; a --proxy curl cannot resolve is
# no node that is down but a mistyped option: refused.
check_fails_with "a --proxy that cannot be resolved is refused, not taken for a node down" \
    "check --proxy=junk" "$IPFSFS_BIN" "${ARGS[@]}" --proxy=junk "$MNT"

# ---- changes made on the node ---------------------------------------------------------------
# With nothing pending here, the node's names are adopted.
kubo files write --create /outside.txt <<<"made on the node" >/dev/null
mount_ipfsfs "$MNT" "${ARGS[@]}" || { not_ok "remount"; finish; }
check_eq "a name made on the node while unmounted shows after the remount" \
    "$(cat "$MNT/outside.txt" 2>&1)" "made on the node"
kubo files write --create /outside2.txt <<<"made while mounted" >/dev/null
if wait_for 15 test -e "$MNT/outside2.txt"; then
    ok "a name made on the node while mounted shows within 15 s"
else
    not_ok "a name made on the node while mounted shows within 15 s" "$(ls "$MNT")"
fi
check_eq "its content" "$(cat "$MNT/outside2.txt" 2>&1)" "made while mounted"

# Both sides change while apart: the node is stopped, the mount writes (nothing lost, fsync
# fails with EIO within the timeout), the mount goes; the node changes other names and one of
# the same; the remount merges.
stop_node
t0=$(now)
echo "local while the node is down" >"$MNT/local-new.txt"
echo "local version" >"$MNT/both.txt"
head -c $((3 << 20)) /dev/urandom >"$WORK/big-down"
cp "$WORK/big-down" "$MNT/big-down" # its chunks cannot go ahead: they go with the merge's push
check "writing with the node down succeeds" test -s "$MNT/local-new.txt"
diag "two writes with the node down took $(elapsed "$t0") s"
check_errno "fsync with the node down fails with EIO" EIO fsync "$MNT/local-new.txt"
check_says_why "user.ipfsfs.sync says why" "$MNT/local-new.txt"
check "the mount's log names the node" grep -q "sync to Kubo" "${MOUNT_LOG[$MNT]}"
# Unmount while the node is away: bounded, and the changes stay in the store.
unmount_ipfsfs "$MNT" >/dev/null 2>&1
check "unmount with the node down says what is left" grep -q "does not have every change yet" \
    "${MOUNT_LOG[$MNT]}"
check "... naming the names" grep -qE "names? added or changed and [0-9]+ removed \(.*local-new.txt" \
    "${MOUNT_LOG[$MNT]}"
# ipfsfs restarts while the node is still down: a store that synced with it before mounts
# (and says so); a store that never did is refused, as a mistyped address would be.
if mount_ipfsfs "$MNT" "${ARGS[@]}"; then
    ok "remount with the node down (a store that synced with it before)"
    check "... and says so" grep -q "mounting anyway" "${MOUNT_LOG[$MNT]}"
    echo "written while ipfsfs had restarted" >"$MNT/while-down.txt"
    check_eq "... and writes work" "$(cat "$MNT/while-down.txt")" \
        "written while ipfsfs had restarted"
    unmount_ipfsfs "$MNT" >/dev/null 2>&1
else
    not_ok "remount with the node down (a store that synced with it before)"
fi
mkdir -p "$WORK/mnt-fresh"
check_fails_with "a fresh store with the node down is refused" "no IPFS node answers" \
    "$IPFSFS_BIN" -f --api="$NODE_API" --store="$WORK/fresh-store" --timeout=2 "$WORK/mnt-fresh"
REUSE_PORT=1 start_node node || { not_ok "the node comes back"; finish; }
ok "the node comes back on the same port"
kubo files write --create /node-new.txt <<<"node while apart" >/dev/null
kubo files rm /both.txt >/dev/null 2>&1
kubo files write --create /both.txt <<<"node version" >/dev/null
mount_ipfsfs "$MNT" "${ARGS[@]}" || { not_ok "remount after the merge"; finish; }
fsync_path "$MNT"
check_eq "merge: the local new name stays" "$(cat "$MNT/local-new.txt" 2>&1)" \
    "local while the node is down"
check_eq "merge: the node's new name comes" "$(cat "$MNT/node-new.txt" 2>&1)" "node while apart"
check_eq "a 3 MiB file written while the node was down reaches it, whole" \
    "$(kubo files read /big-down | sha256sum)" "$(sha256sum <"$WORK/big-down")"
check_eq "conflict: the local version keeps the name" "$(cat "$MNT/both.txt" 2>&1)" \
    "local version"
check_conflict_copy conflict both.txt "node version"
check_eq "the file written while ipfsfs had restarted reached the node" \
    "$(kubo files read /while-down.txt 2>&1)" "written while ipfsfs had restarted"
check_eq "the node has the merged names" \
    "$(kubo files read /local-new.txt 2>&1)/$(kubo files read /both.txt 2>&1)" \
    "local while the node is down/local version"

# ---- the node changes a file that is open for writing here --------------------------------
# The sync engine adopts the node's version while a program holds the file open; its close
# then keeps the name (its own version) and the node's version beside it, never overwritten
# in silence. Two programs appending to one file at once are no conflict.
echo "original" >"$MNT/held.txt"
fsync_path "$MNT/held.txt"
check "held: a program opens it for appending (python3)" python3 -c '
import os, sys, time, subprocess
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
subprocess.run(sys.argv[2:], input=b"node edit\n", check=True, stdout=subprocess.DEVNULL)
time.sleep(4)  # the node checked every 2 s: its version is adopted meanwhile
os.write(fd, b"local append\n")
os.close(fd)' "$MNT/held.txt" env IPFS_PATH="$NODE_REPO" "$KUBO_BIN" files write --truncate \
    /held.txt
check_eq "held: the close keeps the name (its own version)" "$(cat "$MNT/held.txt" 2>&1)" \
    "$(printf 'original\nlocal append')"
check_conflict_copy held held.txt "node edit"
check "held: the log says so" grep -q "changed elsewhere while open for writing" \
    "${MOUNT_LOG[$MNT]}"
: >"$MNT/appended.txt"
app_pids=()
for w in A B; do
    (for i in $(seq 1 150); do echo "$w$i" >>"$MNT/appended.txt"; done) &
    app_pids+=($!)
done
wait "${app_pids[@]}"
check_eq "two loops appending at once: every line, no conflict copy" \
    "$(wc -l <"$MNT/appended.txt") $(find "$MNT" -maxdepth 1 -name 'appended.txt.conflict-*' | wc -l)" \
    "300 0"
rm -f "$MNT"/held.txt* "$MNT"/appended.txt

# ---- kill -9 in the middle of cp -r ---------------------------------------------------------
echo "acknowledged" >"$MNT/acked.txt"
fsync_path "$MNT/acked.txt"
pid=${MOUNT_PID[$MNT]}
(cp -r "$TREE" "$MNT/killed" 2>/dev/null) &
cp_pid=$!
sleep 0.3
disown "$pid" 2>/dev/null # no "Killed" line from bash
kill -9 "$pid"
wait "$cp_pid" 2>/dev/null
fusermount3 -uz "$MNT" 2>/dev/null
sleep 0.5
mount_ipfsfs "$MNT" "${ARGS[@]}" || { not_ok "remount after kill -9"; finish; }
ok "remount after kill -9 of ipfsfs during cp -r"
check_eq "the fsync'ed file survived" "$(cat "$MNT/acked.txt" 2>&1)" "acknowledged"
bad=0
if [ -d "$MNT/killed" ]; then
    while IFS= read -r f; do
        rel=${f#"$MNT/killed/"}
        [ -s "$f" ] || continue # created, not yet written: empty, as on any filesystem
        cmp -s "$f" "$TREE/$rel" || {
            bad=$((bad + 1))
            diag "half-written: killed/$rel"
        }
    done < <(find "$MNT/killed" -type f)
fi
check_eq "no name shows half-written content" "$bad" 0
check "and it still reaches the node" fsync_path "$MNT"
check_eq "the node's MFS root is the store's committed root" "$(node_hash /)" \
    "$(cat "$STORE/root" 2>&1)"

# ---- --store-size: file blocks the node has are evicted locally, and fetched again ----------
check_unmount "unmount before --store-size" "$MNT"
mount_ipfsfs "$MNT" "${ARGS[@]}" --store-size=2M || { not_ok "mount --store-size=2M"; finish; }
gen_file "$WORK/big.bin" $((6 << 20)) 7
cp "$WORK/big.bin" "$MNT/big.bin"
check "--store-size: fsync of a 6 MiB file" fsync_path "$MNT/big.bin"
# store_kib: KiB the store's block files use (what --store-size counts: not the directories)
store_kib() {
    find "$STORE/blocks" -name '*.data' -printf '%b\n' | awk '{ s += $1 } END { print int(s / 2) }'
}
store_small() { [ "$(store_kib)" -le 2048 ]; }
if wait_for 20 store_small; then
    ok "--store-size: the store shrinks to 2 MiB ($(store_kib) KiB)"
else
    not_ok "--store-size: the store shrinks to 2 MiB" "$(store_kib) KiB" \
        "$(grep -i evict "${MOUNT_LOG[$MNT]}")"
fi
check "--store-size: the file reads back (fetched from the node)" cmp "$WORK/big.bin" \
    "$MNT/big.bin"
check "--store-size: the names are still there" diff -r "$TREE/d0" "$MNT/tree/d0"

# ---- one store, one mount -------------------------------------------------------------------
mkdir -p "$WORK/mnt2"
if timeout -k 2 20 "$IPFSFS_BIN" -f "${ARGS[@]}" "$WORK/mnt2" >"$WORK/second.log" 2>&1 </dev/null; then
    not_ok "a second mount of one store is refused" "it mounted"
    fusermount3 -u "$WORK/mnt2" 2>/dev/null
else
    ok "a second mount of one store is refused ($(tail -n 1 "$WORK/second.log"))"
fi
check_unmount "unmount" "$MNT"

# ---- a new repo at the node's address: its empty MFS is not a deletion ----------------------
# `ipfs init` anew (or another node on the same port) answers with an empty MFS and another
# peer ID. Adopting it would empty the mount (and let the store collect the blocks): the names
# are merged with it as on a first mount, and pushed to it.
mount_ipfsfs "$MNT" "${ARGS[@]}" || { not_ok "remount before the node's repo is made anew"; finish; }
# A name made on the old node and adopted here: its content never came into the store.
kubo files mkdir /nodedir >/dev/null 2>&1
printf 'made on the old node\n' >"$WORK/nodemade.txt"
kubo files write --create /nodedir/made.txt "$WORK/nodemade.txt" >/dev/null 2>&1
check "a name made on the node shows in the mount" wait_for 20 test -d "$MNT/nodedir"
check "before: everything is on the node (fsync MNT)" fsync_path "$MNT"
stop_node
if REUSE_PORT=1 start_node fresh; then
    ok "a new repo (another peer ID) answers at the node's address"
    other_node_seen() { [ "$(stat_of sync_other_node)" = 1 ]; }
    if wait_for 30 other_node_seen; then
        ok "--stats: sync_other_node 1"
    else
        not_ok "--stats: sync_other_node 1" "got: $(stat_of sync_other_node)" \
            "$(tail -n 5 "${MOUNT_LOG[$MNT]}")"
    fi
    check "the names are all still here" diff -r "$TREE/d0" "$MNT/tree/d0"
    check "fsync MNT: they reach the new node" fsync_path "$MNT"
    check_eq "the new node's MFS root is the store's committed root" "$(node_hash /)" \
        "$(cat "$STORE/root" 2>&1)"
    check "the log names the change of node" grep -q "is not the node this store last synced" \
        "${MOUNT_LOG[$MNT]}"
    # The content adopted from the old node is not on the new one: said, not synced in silence.
    check "the log says the new node lacks content the names link (made on the old node)" \
        grep -q "lacks the content of" "${MOUNT_LOG[$MNT]}"
    check "--stats: sync_absent is not 0 ($(stat_of sync_absent))" \
        test "$(stat_of sync_absent)" -ge 1
else
    not_ok "a new repo answers at the node's address"
fi
check_unmount "unmount (new repo)" "$MNT"

# ---- the same store with another --mfs-root: merged there as on a first mount ---------------
# DIR/synced records the folder it was synced with. Under another --mfs-root the state of the
# old folder says nothing: the names are merged with the new one (nothing removed, here or
# there), not taken as removed on the node because the new folder lacks them.
kubo files mkdir -p /elsewhere >/dev/null 2>&1
kubo files write --create /elsewhere/there.txt <<<"only in /elsewhere" >/dev/null
if mount_ipfsfs "$MNT" "${ARGS[@]}" --mfs-root=/elsewhere; then
    check "another --mfs-root: the store's names are all still here" \
        diff -r "$TREE/d0" "$MNT/tree/d0"
    check "... and the folder's own name shows" wait_for 20 test -f "$MNT/there.txt"
    check "... fsync MNT: they reach that folder" fsync_path "$MNT"
    check_eq "... the tree is there on the node" "$(node_hash /elsewhere/tree)" \
        "$(cid_of "$MNT/tree")"
    check_eq "... and the folder's own file stays" \
        "$(kubo files read /elsewhere/there.txt 2>&1)" "only in /elsewhere"
    check "... the log says why" grep -q "was recorded with --mfs-root=/," "${MOUNT_LOG[$MNT]}"
else
    not_ok "mount the same store with another --mfs-root" "$(tail -n 5 "${MOUNT_LOG[$MNT]}")"
fi
check_unmount "unmount (another --mfs-root)" "$MNT"

# ---- a mount right after an unmount whose last changes still go to the node -----------------
# The old process holds the store while it sends (up to --unmount-wait): the new mount waits
# for it (and says so) instead of refusing.
mount_ipfsfs "$MNT" "${ARGS[@]}" || { not_ok "mount before the quick remount"; finish; }
kill -STOP "$NODE_PID"
echo "sent by the unmounted process" >"$MNT/late.txt"
old_pid=${MOUNT_PID[$MNT]}
fusermount3 -u "$MNT"
(sleep 3 && kill -CONT "$NODE_PID") &
cont_pid=$!
if mount_ipfsfs "$MNT" "${ARGS[@]}"; then
    ok "a mount right after the unmount waits for the process still sending, then mounts"
    check "... and says why it waits" grep -q "still sends its last changes" "${MOUNT_LOG[$MNT]}"
    check_eq "the file written before the unmount is there" "$(cat "$MNT/late.txt" 2>&1)" \
        "sent by the unmounted process"
    check "fsync MNT: the node has it" fsync_path "$MNT"
    check_eq "... its CID on the node" "$(node_hash /late.txt)" "$(cid_of "$MNT/late.txt")"
else
    not_ok "a mount right after the unmount waits for the process still sending, then mounts" \
        "$(tail -n 5 "${MOUNT_LOG[$MNT]}")"
fi
wait "$cont_pid" 2>/dev/null
kill -CONT "$NODE_PID" 2>/dev/null
wait_for 20 bash -c "! kill -0 $old_pid 2>/dev/null"
check_unmount "unmount (quick remount)" "$MNT"

# --unmount-wait holds with a request in flight to a stopped node (whose --timeout is longer).
mount_ipfsfs "$MNT" --api="$NODE_API" --store="$STORE" --timeout=30 --unmount-wait=3 ||
    { not_ok "mount --unmount-wait=3 --timeout=30"; finish; }
kill -STOP "$NODE_PID"
echo "written while the node is stopped" >"$MNT/stopped.txt"
old_pid=${MOUNT_PID[$MNT]}
# check_gone DESC PID T0: ok if process PID ends within 10 s (the time since T0 shown).
check_gone() {
    if wait_for 10 bash -c "! kill -0 $2 2>/dev/null"; then
        ok "$1 ($(elapsed "$3") s)"
    else
        not_ok "$1" "still running 10 s later"
    fi
}
t0=$(now)
fusermount3 -u "$MNT"
check_gone "unmount with the node stopped ends within --unmount-wait=3" "$old_pid" "$t0"
kill -CONT "$NODE_PID"
check "... and says what is left" grep -q "1 name added or changed and 0 removed (stopped.txt)" \
    "${MOUNT_LOG[$MNT]}"
unset "MOUNT_PID[$MNT]"
# SIGTERM starts the unmount and its wait for the node (60 s here); a second signal cuts the
# wait short, not the process (the default action killed it, saying nothing of what is left).
mount_ipfsfs "$MNT" --api="$NODE_API" --store="$STORE" --timeout=30 --unmount-wait=60 ||
    { not_ok "mount --unmount-wait=60 --timeout=30"; finish; }
kill -STOP "$NODE_PID"
echo "written while the node is stopped" >"$MNT/stopped2.txt"
old_pid=${MOUNT_PID[$MNT]}
kill -TERM "$old_pid"
sleep 1
t0=$(now)
kill -INT "$old_pid"
check_gone "a second signal during the unmount's wait ends it at once" "$old_pid" "$t0"
wait "$old_pid"
check_eq "... ipfsfs exits 0" "$?" 0
kill -CONT "$NODE_PID"
check "... and says what is left" grep -q "added or changed and 0 removed (.*stopped2.txt" \
    "${MOUNT_LOG[$MNT]}"
unset "MOUNT_PID[$MNT]"
fusermount3 -u "$MNT" 2>/dev/null

# A hung node: fsync fails with EIO after --timeout while the round still waits on the node;
# user.ipfsfs.sync then says why at once (it said "pending" until the round ended), and
# "synced" once the node answers again.
if mount_ipfsfs "$MNT" --api="$NODE_API" --store="$STORE" --timeout=3; then
    kill -STOP "$NODE_PID"
    echo "written while the node hangs" >"$MNT/hung.txt"
    check_errno "a hung node: fsync fails with EIO" EIO fsync "$MNT/hung.txt"
    check_says_why "... user.ipfsfs.sync says why at once" "$MNT/hung.txt"
    kill -CONT "$NODE_PID"
    check "... and synced once the node answers" \
        wait_for 30 bash -c "[ \"\$(getfattr --absolute-names --only-values -n user.ipfsfs.sync '$MNT/hung.txt')\" = synced ]"
    check_unmount "unmount (hung node)" "$MNT"
else
    not_ok "mount --timeout=3 (hung node)"
fi
kill -CONT "$NODE_PID" 2>/dev/null

# ---- a name that is not UTF-8, made with no node, then synced -----------------------------
# The store alone keeps any bytes; Kubo's JSON answers turn such a name into another (U+FFFD).
# The names made after it still reach the node (every round failed on it before).
U8=$WORK/u8store
bad=$(printf 'bad\377name')
if mount_ipfsfs "$WORK/mnt5" --store="$U8"; then
    echo offline >"$WORK/mnt5/$bad"
    echo good >"$WORK/mnt5/good"
    check_unmount "unmount (the store alone, a name that is not UTF-8)" "$WORK/mnt5"
    if mount_ipfsfs "$WORK/mnt5" --api="$NODE_API" --store="$U8" --mfs-root=/u8 --timeout=5 \
        --unmount-wait=5; then
        check "the store's names with one not UTF-8 reach the node (fsync MNT)" \
            fsync_path "$WORK/mnt5"
        echo later >"$WORK/mnt5/later.txt"
        check "a name made after them: fsync succeeds" fsync_path "$WORK/mnt5/later.txt"
        check_eq "... the node has it" "$(node_hash /u8/later.txt)" \
            "$(cid_of "$WORK/mnt5/later.txt")"
        check_eq "... and the node's directory is the mount's" "$(node_hash /u8)" \
            "$(cid_of "$WORK/mnt5")"
        check_eq "the name that is not UTF-8 reads back" "$(cat "$WORK/mnt5/$bad" 2>&1)" offline
        check_unmount "unmount (a name that is not UTF-8, on the node)" "$WORK/mnt5"
    else
        not_ok "mount with --api a store that has a name that is not UTF-8"
    fi
else
    not_ok "mount the store alone"
fi

# ---- the node's Import settings are the defaults of the mount's imports --------------------
# This mount imports files itself: on a node set to CIDv1 (Import.CidVersion), a file copied in
# has the CID `ipfs add` gives there. A setting the importer cannot follow refuses the mount.
kubo config --json Import.CidVersion 1 >/dev/null
if mount_ipfsfs "$WORK/mnt6" --api="$NODE_API" --store="$WORK/v1store" --mfs-root=/v1; then
    gen_file "$WORK/src/v1big" $((1 << 20)) 61
    echo small >"$WORK/src/v1small"
    cp "$WORK/src/v1big" "$WORK/src/v1small" "$WORK/mnt6/"
    check_eq "node set to CIDv1: a 1 MiB file has ipfs add's CID there" \
        "$(cid_of "$WORK/mnt6/v1big")" "$(kubo add -Q --only-hash "$WORK/src/v1big")"
    check_eq "... and a small one (a raw leaf)" "$(cid_of "$WORK/mnt6/v1small")" \
        "$(kubo add -Q --only-hash "$WORK/src/v1small")"
    check "... fsync reaches the node" fsync_path "$WORK/mnt6/v1big"
    check_unmount "unmount (node set to CIDv1)" "$WORK/mnt6"
else
    not_ok "mount over a node set to CIDv1"
fi
# The unixfs-v1-2025 profile (1024 links per file node), with 4 KiB chunks: 5 MiB is 1,280
# chunks, two levels; an explicit --cid-version=0 beats the node's setting, as for ipfs add.
kubo config profile apply unixfs-v1-2025 >/dev/null
kubo config Import.UnixFSChunker size-4096 >/dev/null
if mount_ipfsfs "$WORK/mnt6" --api="$NODE_API" --store="$WORK/v1store" --mfs-root=/v1; then
    gen_file "$WORK/src/v1five" $((5 << 20)) 62
    cp "$WORK/src/v1five" "$WORK/mnt6/"
    check_eq "unixfs-v1-2025 profile, 4 KiB chunks: a 5 MiB file has ipfs add's CID there" \
        "$(cid_of "$WORK/mnt6/v1five")" "$(kubo add -Q --only-hash "$WORK/src/v1five")"
    check "... and reads back" cmp "$WORK/src/v1five" "$WORK/mnt6/v1five"
    # The profile's HAMT estimate is the plain directory's block size (Import.
    # UnixFSHAMTDirectorySizeEstimation "block"): 1,090 names of 200 bytes are a HAMT there
    # (246 bytes a link, past 256 KiB from 1,066 names on), where names and CIDs alone (236
    # bytes) would not be (until 1,111). Compared with a real `ipfs add -r`: Kubo 0.43.1's
    # --only-hash makes a plain directory of the same files (it does not follow that setting).
    python3 -c '
import os, sys
os.mkdir(sys.argv[1])
for i in range(1090):
    with open(os.path.join(sys.argv[1], ("file-%05d-" % i).ljust(196, "x") + ".txt"), "w") as f:
        f.write("content %d\n" % i)' "$WORK/src/est1090"
    # A function, so the bound is 600 s and not check's 60 s: this is not a speed check (each
    # name rewrites the plain directory block until it shards; TSan is slow at that).
    copy_est() { timeout -k 5 600 cp -r "$WORK/src/est1090" "$WORK/mnt6/"; }
    check "cp -r of 1,090 files with long names" copy_est
    check_eq "... the directory has ipfs add -r's CID on that node (a HAMT)" \
        "$(cid_of "$WORK/mnt6/est1090")" "$(kubo add -r -Q --pin=false "$WORK/src/est1090")"
    # shellcheck disable=SC2016 # $1 is for the inner shell
    check "... no warning about the HAMT estimate" \
        sh -c '! grep -q UnixFSHAMTDirectorySizeEstimation "$1"' sh "${MOUNT_LOG[$WORK/mnt6]}"
    check_unmount "unmount (unixfs-v1-2025)" "$WORK/mnt6"
else
    not_ok "mount over a node with the unixfs-v1-2025 profile"
fi
if mount_ipfsfs "$WORK/mnt6" --api="$NODE_API" --store="$WORK/v0store" --mfs-root=/v0 \
    --cid-version=0; then
    cp "$WORK/src/v1big" "$WORK/mnt6/"
    check_eq "--cid-version=0 on that node: ipfs add --cid-version=0's CID" \
        "$(cid_of "$WORK/mnt6/v1big")" "$(kubo add -Q --only-hash --cid-version=0 "$WORK/src/v1big")"
    check_unmount "unmount (--cid-version=0)" "$WORK/mnt6"
else
    not_ok "mount with --cid-version=0 over a node set to CIDv1"
fi
kubo config profile apply unixfs-v0-2015 >/dev/null
kubo config --json Import.CidVersion null >/dev/null
# --cid-version=1 over a node that makes CIDv0 directories: the --mfs-root directory it makes
# has the mount root's CID (it was CIDv0 there: the same content, another CID).
if mount_ipfsfs "$WORK/mnt6" --api="$NODE_API" --store="$WORK/v1rstore" --mfs-root=/v1r \
    --cid-version=1; then
    mkdir "$WORK/mnt6/d" && echo v1r >"$WORK/mnt6/d/f" && sync "$WORK/mnt6/d/f"
    root=$(cid_of "$WORK/mnt6")
    check_eq "--cid-version=1: the node's /v1r has the mount root's CID (a CIDv1: $root)" \
        "$(node_hash /v1r)" "$root"
    check_eq "... and a first mount merged nothing (the empty directory in either version)" \
        "$(getfattr --absolute-names --only-values -n user.ipfsfs.stats "$WORK/mnt6" |
            sed -n 's/^sync_merged //p')" 0
    check_unmount "unmount (--cid-version=1, /v1r)" "$WORK/mnt6"
else
    not_ok "mount with --cid-version=1 and --mfs-root=/v1r"
fi
mkdir -p "$WORK/refused"
kubo config Import.HashFunction blake3 >/dev/null
check_fails_with "a node whose Import.HashFunction is blake3: the mount is refused, saying why" \
    "Import.HashFunction=blake3" "$IPFSFS_BIN" -f --api="$NODE_API" --store="$WORK/b3store" \
    "$WORK/refused"
kubo config --json Import.HashFunction null >/dev/null
echo "a file" | kubo files write --create /notadir.txt
check_fails_with "--mfs-root naming a file on the node is refused" "not a directory on the node" \
    "$IPFSFS_BIN" -f --api="$NODE_API" --store="$WORK/nfstore" --mfs-root=/notadir.txt \
    "$WORK/refused"
check_fails_with "--mfs-root below a file on the node is refused" "not a directory on the node" \
    "$IPFSFS_BIN" -f --api="$NODE_API" --store="$WORK/nfstore" --mfs-root=/notadir.txt/sub \
    "$WORK/refused"
kubo files rm /notadir.txt
# A store that synced with this node, given a mistyped address: not "mounting anyway".
check_fails_with "a synced store with an address no node answers at (not the one it synced with)" \
    "no IPFS node answers" "$IPFSFS_BIN" -f --api="/ip4/127.0.0.1/tcp/$(free_port)" \
    --store="$U8" "$WORK/refused"

# ---- a node that refuses: a revoked API secret ----------------------------------------------
# Nothing is dropped: fsync fails with EIO, user.ipfsfs.sync and the log say why, and once the
# secret is valid again the changes reach the node.
stop_node
if ! start_auth_node tok; then
    not_ok "a node with API.Authorizations starts" "$(tail -5 "$WORK/authnode/daemon.log")"
else
    printf 'bearer:tok\n' >"$WORK/auth"
    chmod 600 "$WORK/auth"
    AMNT=$WORK/amnt
    AARGS=(--api="$NODE_API" --api-auth-file="$WORK/auth" --store="$WORK/astore" --timeout=5
        --unmount-wait=5)
    if mount_ipfsfs "$AMNT" "${AARGS[@]}"; then
        echo "before" >"$AMNT/before.txt"
        check "with the secret: fsync succeeds" fsync_path "$AMNT/before.txt"
        kill "$NODE_PID"
        wait "$NODE_PID" 2>/dev/null
        start_auth_node other "$NODE_PORT" || not_ok "the node restarts with another secret"
        echo "refused" >"$AMNT/refused.txt"
        check_errno "secret revoked: fsync fails with EIO" EIO fsync "$AMNT/refused.txt"
        check_says_why "secret revoked: user.ipfsfs.sync says why" "$AMNT/refused.txt"
        check "secret revoked: the log says why" grep -q "sync to Kubo.*kept locally" \
            "${MOUNT_LOG[$AMNT]}"
        check_eq "secret revoked: the file reads back" "$(cat "$AMNT/refused.txt")" refused
        kill "$NODE_PID"
        wait "$NODE_PID" 2>/dev/null
        start_auth_node tok "$NODE_PORT" || not_ok "the node restarts with the secret"
        if wait_for 30 fsync_path "$AMNT/refused.txt"; then
            ok "secret valid again: fsync succeeds"
        else
            not_ok "secret valid again: fsync succeeds"
        fi
        check_eq "secret valid again: the node has the file" \
            "$(curl -sS -X POST -H 'Authorization: Bearer tok' \
                "$NODE_URL/files/read?arg=/refused.txt" 2>&1)" refused
        check_eq "secret valid again: user.ipfsfs.sync is synced" \
            "$(state_of "$AMNT/refused.txt")" synced
        check_unmount "unmount (auth)" "$AMNT"
    else
        not_ok "mount with --api-auth-file"
    fi
    kill "$NODE_PID" 2>/dev/null
fi

# ---- --write-through: close waits for the node ----------------------------------------------
REUSE_PORT=0 start_node node2 || { not_ok "a node for --write-through"; finish; }
mkdir -p "$WORK/mnt3"
mount_ipfsfs "$WORK/mnt3" --api="$NODE_API" --write-through --timeout=5 ||
    { not_ok "mount --write-through"; finish; }
echo "through" >"$WORK/mnt3/through.txt"
check_eq "--write-through: the node has the file as soon as close returned" \
    "$(kubo files read /through.txt 2>&1)" "through"
check_errno "--write-through: no user.ipfsfs.sync" ENODATA getxattr "$WORK/mnt3/through.txt" \
    user.ipfsfs.sync
check_unmount "unmount --write-through" "$WORK/mnt3"

# ---- fsync waits while the push moves, not one --timeout in all -----------------------------
# Through slowproxy.py the node takes uploads at 8 MB/s: 48 MiB take about 6 s, three times
# --timeout. fsync succeeds (it failed with EIO after --timeout before). At 20 KB/s no block
# gets through within --timeout: fsync fails, within a few timeouts.
PMODE=$WORK/upproxy.mode
echo pass >"$PMODE"
# (a small receive buffer: the upload's last MiB wait in ipfsfs's own send queue, as before a
# slow link, not in the proxy's)
start_slowproxy upproxy "127.0.0.1:$NODE_PORT" 300 --rcvbuf 65536
PARGS=(--api="/ip4/127.0.0.1/tcp/$SLOWPROXY_PORT/http" --store="$WORK/pstore" --timeout=2
    --sync-ahead=off --mfs-root=/slowup --unmount-wait=2)
mkdir -p "$WORK/mnt4"
# slow_push DESC BPS MIB: a file of MIB MiB copied in while the node takes BPS bytes a second;
# its fsync succeeds, and the node has it.
slow_push() {
    local name=up$3 t0
    echo "upload $2 dag/import" >"$PMODE"
    gen_file "$WORK/src/$name" $(($3 << 20)) "$3"
    cp "$WORK/src/$name" "$WORK/mnt4/$name"
    t0=$(date +%s.%N)
    check "$1: fsync of $3 MiB succeeds past --timeout=2" fsync_path "$WORK/mnt4/$name"
    diag "it took $(elapsed "$t0") s"
    check_eq "... and the node has the file" "$(node_hash "/slowup/$name")" \
        "$(cid_of "$WORK/mnt4/$name")"
}
if mount_ipfsfs "$WORK/mnt4" "${PARGS[@]}"; then
    slow_push "a slow but steady node (8 MB/s)" 8000000 48
    # At 1 MB/s the last 4 MiB or so leave ipfsfs's send queue over about 4 s after the CAR's
    # last block went into it, twice --timeout: bytes the node takes from it are progress.
    slow_push "a slow but steady link (1 MB/s)" 1000000 8
    echo "upload 20000 dag/import" >"$PMODE"
    gen_file "$WORK/src/up4" $((4 << 20)) 4
    cp "$WORK/src/up4" "$WORK/mnt4/up4"
    t0=$(date +%s.%N)
    check_eq "a node that takes 20 KB/s: fsync fails (EIO)" "$(python3 -c 'import errno, os, sys
try:
    os.fsync(os.open(sys.argv[1], os.O_RDONLY))
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])' "$WORK/mnt4/up4" 2>&1)" EIO
    check "... within a few timeouts ($(elapsed "$t0") s)" \
        awk -v t="$(elapsed "$t0")" 'BEGIN { exit !(t < 15) }'
    echo pass >"$PMODE"
    unmount_ipfsfs "$WORK/mnt4" >/dev/null 2>&1
else
    not_ok "mount through slowproxy.py"
fi

finish
