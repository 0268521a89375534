#!/usr/bin/env bash
# write-faults.sh - the write path when things go wrong: the node dies (kill -9) while a large
# file is being added on close(2), and the spool directory fills up. In both cases the program
# writing must see the error (cp exits non-zero), nothing may be half-linked (a new name stays
# absent or empty, an existing name keeps its old content), and the mount stays up and works
# again once the node is back, without a remount.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=/tmp/build/src/ipfsfs tests/integration/write-faults.sh
# Environment: FAULTS_BIG_MIB (default 200), the size of the file whose add is interrupted.
#
# shellcheck source-path=SCRIPTDIR disable=SC2317
# (SC2317: functions run through check and the trap)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
require_node
if ! command -v mount >/dev/null 2>&1 || ! command -v umount >/dev/null 2>&1; then
    say "1..0 # SKIP mount/umount are not installed"
    exit 77
fi
lib_init

TEST_CID=QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR   # the 4 bytes "Test"
TIMEOUT=5
BIG_MIB=${FAULTS_BIG_MIB:-200}

# The tiny tmpfs for the spool-full case is ours to unmount (lazily: ipfsfs may still hold a
# spool file there); then lib.sh's cleanup unmounts ipfsfs and stops the processes.
TINY=
FULL=
STOPPED_PID=
faults_cleanup() {
    local rc=$?
    [ -n "$STOPPED_PID" ] && kill -CONT "$STOPPED_PID" 2>/dev/null
    local t
    for t in "$TINY" "$FULL"; do
        if [ -n "$t" ] && mountpoint -q "$t" 2>/dev/null; then
            umount -l "$t" 2>/dev/null
        fi
    done
    (exit "$rc")
    lib_cleanup
}
trap faults_cleanup EXIT

cid_of() { getfattr --absolute-names --only-values -n user.ipfs.cid "$1" 2>/dev/null; }

# rpc_hash MFSPATH: the Hash the node has for an MFS path ("" if none)
rpc_hash() {
    rpc files/stat "arg=$1" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin).get("Hash", ""))' 2>/dev/null
}

# mfs_names: the names in the MFS root, space-separated, as the node lists them
mfs_names() {
    rpc files/ls "arg=/" |
        python3 -c 'import json,sys; print(" ".join(sorted(e["Name"] for e in json.load(sys.stdin)["Entries"] or [])))'
}

check_mounted() {
    if mountpoint -q "$1"; then ok "$2"; else not_ok "$2" "$1 is no longer a mountpoint"; fi
}

if ! start_node node; then
    not_ok "the test node starts"
    finish
fi
ok "the test node starts ($NODE_API)"

MNT=$WORK/mnt
mkdir -p "$WORK/spool"
if ! mount_ipfsfs "$MNT" --api="$NODE_API" --timeout=$TIMEOUT --spool-dir="$WORK/spool"; then
    not_ok "ipfsfs mounts"
    finish
fi
ok "ipfsfs mounts (--timeout=$TIMEOUT)"

L=$WORK/local
mkdir -p "$L"
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$L/big"
head -c $((1024 * 1024)) /dev/urandom >"$L/old"
printf Test >"$L/f"

check "cp of the old content to MNT/keep" cp "$L/old" "$MNT/keep"
OLD_CID=$(cid_of "$MNT/keep")
check_eq "MNT/keep is linked in MFS" "$(rpc_hash /keep)" "$OLD_CID"

# ---- the node dies while close(2) adds a large file -------------------------------------------

# io_field PID FIELD: a counter from /proc/PID/io (rchar, wchar), "" if PID is gone
io_field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/io" 2>/dev/null; }

# interrupt_add NAME HOW: cp the big file to MNT/NAME in the background; once cp has written
# every byte (it is then in close(2)) and ipfsfs has read a quarter of the spool back (the add
# is under way), either kill -9 the node (HOW=kill) or freeze it with SIGSTOP (HOW=stop: the
# connection stays open, nothing answers; it is continued as soon as cp has failed).
# Checks that cp fails within about the timeout, and that the mount stays up and answers.
interrupt_add() {
    local name=$1 how=$2 cp_pid size wchar t0 dt rc i in_close=0 what fs_pid r1 r
    what="the node is killed (kill -9)"
    [ "$how" = stop ] && what="the node is frozen (SIGSTOP)"
    size=$(stat -c %s "$L/big")
    cp "$L/big" "$MNT/$name" 2>"$WORK/cp.err" &
    cp_pid=$!
    fs_pid=${MOUNT_PID[$MNT]}
    for i in $(seq 1 600); do
        wchar=$(io_field "$cp_pid" wchar)
        [ -n "$wchar" ] || break # cp is gone
        if [ "$wchar" -ge "$size" ]; then
            in_close=1
            break
        fi
        sleep 0.05
    done
    # ipfsfs reads the spool back (pread) to send it: wait until a quarter has gone out.
    r1=$(io_field "$fs_pid" rchar)
    for _ in $(seq 1 100); do
        r=$(io_field "$fs_pid" rchar)
        [ -n "$r" ] && [ $((r - r1)) -ge $((size / 4)) ] && break
        sleep 0.02
    done
    if ! kill -0 "$cp_pid" 2>/dev/null; then
        wait "$cp_pid"
        not_ok "$name: $what while close(2) adds the file" \
            "cp had already ended (status $?) before that: the add was too fast to interrupt" \
            "(in close: $in_close, after $i polls; ipfsfs read $((r - r1)) bytes)"
        kill -9 "$NODE_PID" 2>/dev/null
        kill -CONT "$NODE_PID" 2>/dev/null
        wait_gone "$NODE_PID"
        return
    fi
    if [ "$how" = stop ]; then
        kill -STOP "$NODE_PID"
        STOPPED_PID=$NODE_PID
    else
        kill -9 "$NODE_PID"
    fi
    t0=$(now)
    ok "$name: $what while cp is in close(2) ($(((r - r1) >> 20)) MiB of the spool sent)"
    # cp must finish on its own; give it the timeout plus a margin before we call it a hang.
    for _ in $(seq 1 $(((TIMEOUT + 15) * 10))); do
        kill -0 "$cp_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$cp_pid" 2>/dev/null; then
        not_ok "$name: cp reports an error" "cp still running $((TIMEOUT + 15)) s later"
        kill -9 "$cp_pid" 2>/dev/null
        wait "$cp_pid" 2>/dev/null
    else
        wait "$cp_pid"
        rc=$?
        dt=$(elapsed "$t0")
        if [ "$rc" -ne 0 ]; then
            ok "$name: cp reports an error (status $rc after $dt s: $(tr '\n' ' ' <"$WORK/cp.err"))"
        else
            not_ok "$name: cp reports an error" "cp succeeded although the node $how"
        fi
        if lt "$dt" $((TIMEOUT * 2)); then
            ok "$name: ... within about --timeout=$TIMEOUT ($dt s)"
        else
            not_ok "$name: ... within about --timeout=$TIMEOUT (under $((TIMEOUT * 2)) s)" \
                "it took $dt s"
        fi
    fi
    if [ "$how" = stop ]; then
        kill -CONT "$NODE_PID"
        STOPPED_PID=
        check_mounted "$MNT" "$name: the mount is still up"
        return
    fi
    wait_gone "$NODE_PID"
    check_mounted "$MNT" "$name: the mount is still up with the node down"
    check_answers "$name: a stat with the node down" stat "$MNT/keep"
    check_answers "$name: ls of the root with the node down" ls "$MNT"
}

# check_answers DESC CMD...: CMD must end (any status) within about the timeout (under twice
# --timeout); the time it took is shown either way (it may run up to 4 x --timeout).
check_answers() {
    local desc=$1 t0 dt rc
    shift
    t0=$(now)
    timeout -k 2 $((TIMEOUT * 4)) "$@" >/dev/null 2>&1
    rc=$?
    dt=$(elapsed "$t0")
    if [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && lt "$dt" $((TIMEOUT * 2)); then
        ok "$desc answers within about --timeout=$TIMEOUT ($dt s)"
    else
        not_ok "$desc answers within about --timeout=$TIMEOUT (under $((TIMEOUT * 2)) s)" \
            "it took $dt s (status $rc; 124: still running after $((TIMEOUT * 4)) s)"
    fi
}

# wait_gone PID: wait (up to 10 s) until PID, not our child, has exited
wait_gone() {
    for _ in $(seq 1 100); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
}

restart_node() {
    # The killed node left its api file and lock behind; `ipfs config` (run by start-node.sh)
    # would try to reach the dead daemon through a stale api file.
    rm -rf "$NODE_REPO/api" "$NODE_REPO/repo.lock"
    if REUSE_PORT=1 start_node node; then
        ok "the node restarts on the same port ($NODE_PORT) with the same repo"
    else
        not_ok "the node restarts on the same port ($NODE_PORT) with the same repo"
        finish
    fi
}

# A new name.
interrupt_add new kill
restart_node
check_mounted "$MNT" "new: the mount is still up after the restart"
# creat(2) links an empty file at once, so "absent" and "empty" are both the old state.
check_absent_or_empty() {
    local desc=$1 mnt=$2 path=$3 got
    got=$(rpc files/stat "arg=$path" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Size", "absent"))' 2>/dev/null)
    if [ "$got" = absent ] || [ "$got" = 0 ]; then
        ok "$desc: the node has $path absent or empty (size: $got)"
    else
        not_ok "$desc: the node has $path absent or empty" "the node has $path with $got bytes"
    fi
    got=$(stat -c %s "$mnt$path" 2>&1)
    case $got in
    0 | *"No such file"*) ok "$desc: $mnt$path is absent or empty" ;;
    *) not_ok "$desc: $mnt$path is absent or empty" "stat: $got" ;;
    esac
}
check_absent_or_empty new "$MNT" /new
rm -f "$MNT/new"
check_eq "new: no temporary names left in MFS" "$(mfs_names)" keep
check "new: MNT/keep still reads back" cmp "$MNT/keep" "$L/old"

# An existing name: its old content must stay.
interrupt_add keep kill
restart_node
check_mounted "$MNT" "keep: the mount is still up after the restart"
check_eq "keep: the node still links the old CID at /keep" "$(rpc_hash /keep)" "$OLD_CID"
check_eq "keep: user.ipfs.cid is the old CID" "$(cid_of "$MNT/keep")" "$OLD_CID"
check_eq "keep: stat size is the old size" "$(stat -c %s "$MNT/keep" 2>&1)" "$(stat -c %s "$L/old")"
check "keep: MNT/keep reads back the old content" cmp "$MNT/keep" "$L/old"
check_eq "keep: no temporary names left in MFS" "$(mfs_names)" keep

# The same mount works again, without a remount.
check "after the restart: cp of a new file" cp "$L/f" "$MNT/after"
check_eq "after the restart: its CID" "$(cid_of "$MNT/after")" "$TEST_CID"
head -c $((5 * 1024 * 1024)) /dev/urandom >"$L/five"
check "after the restart: overwrite MNT/keep with 5 MiB" cp "$L/five" "$MNT/keep"
check "after the restart: MNT/keep reads back the new content" cmp "$MNT/keep" "$L/five"
check_eq "after the restart: the node links the new CID" "$(rpc_hash /keep)" "$(cid_of "$MNT/keep")"

# A node that hangs (SIGSTOP) during the add: only the timeout can end the wait. The node is
# continued as soon as cp has failed: the name must not change after close(2) said it failed.
interrupt_add stalled stop
sleep 3
check_absent_or_empty "stalled, continued 3 s after cp failed" "$MNT" /stalled
check_eq "stalled: MNT/keep still has the last content" "$(rpc_hash /keep)" "$(cid_of "$MNT/keep")"
check "stalled: the node answers again, MNT/keep reads back" cmp "$MNT/keep" "$L/five"

# A frozen node and ordinary calls: each must end within about the timeout.
kill -STOP "$NODE_PID"
STOPPED_PID=$NODE_PID
sleep 1.5 # past the kernel's 1 s entry/attribute timeout of root names
check_answers "frozen node: stat of a name" stat "$MNT/keep"
check_answers "frozen node: ls of the root" ls "$MNT"
check_answers "frozen node: cat of a name" cat "$MNT/keep"
kill -CONT "$NODE_PID"
STOPPED_PID=
check "frozen node continued: cat works again" cmp "$MNT/keep" "$L/five"

# ---- the spool directory is full ----------------------------------------------------------------

TINY=$WORK/tiny
mkdir -p "$TINY"
if mount -t tmpfs -o size=1m tmpfs "$TINY"; then
    ok "a 1 MiB tmpfs for the spool"
    MNT2=$WORK/mnt2
    if mount_ipfsfs "$MNT2" --api="$NODE_API" --timeout=$TIMEOUT --spool-dir="$TINY" \
        --mfs-root=/; then
        ok "ipfsfs mounts with --spool-dir on it"
        head -c $((100 * 1024)) /dev/urandom >"$L/small"
        check "spool: a 100 KiB file fits" cp "$L/small" "$MNT2/sp"
        SMALL_CID=$(cid_of "$MNT2/sp")
        check_fails_with "spool full: cp of 5 MiB over MNT/sp fails with ENOSPC" \
            "No space left on device" cp "$L/five" "$MNT2/sp"
        check_eq "spool full: the node still links the old CID" "$(rpc_hash /sp)" "$SMALL_CID"
        check_eq "spool full: user.ipfs.cid is the old CID" "$(cid_of "$MNT2/sp")" "$SMALL_CID"
        check_eq "spool full: the size is the old size" "$(stat -c %s "$MNT2/sp" 2>&1)" $((100 * 1024))
        check "spool full: MNT/sp reads back the old content" cmp "$MNT2/sp" "$L/small"
        check_fails_with "spool full: cp of 5 MiB to a new name fails with ENOSPC" \
            "No space left on device" cp "$L/five" "$MNT2/sp-new"
        check_absent_or_empty "spool full" "$MNT2" /sp-new
        check_eq "spool full: the spool space is released" \
            "$(df --output=used -k "$TINY" | tail -n 1 | tr -d ' ')" 0
        check_mounted "$MNT2" "spool full: the mount is still up"
        check "spool full: a small write works again" cp "$L/f" "$MNT2/sp"
        check_eq "spool full: ... and is linked" "$(rpc_hash /sp)" "$TEST_CID"
        check_unmount "unmount the spool-full mount" "$MNT2"
    else
        not_ok "ipfsfs mounts with --spool-dir on it"
    fi
    umount "$TINY" 2>/dev/null || umount -l "$TINY"
else
    not_ok "a 1 MiB tmpfs for the spool" "mount -t tmpfs failed"
fi

# ---- the store's disk is full (local-first) ---------------------------------------------------

# Small files' blocks and the names wait in memory for the next commit (within a second). A
# name the store cannot commit would live only there, and an unmount or a crash would lose
# it: once a commit failed, creat, mkdir and close fail with ENOSPC. Once there is room again
# (the filler goes), all works again, every cp that said it copied is there after a remount,
# and reaches the node.
FULL=$WORK/full
mkdir -p "$FULL"
if mount -t tmpfs -o size=16m tmpfs "$FULL"; then
    head -c $((12 << 20)) /dev/zero >"$FULL/filler" # freed later: room comes back
    MNT3=$WORK/mnt3
    FULL_ARGS=(--api="$NODE_API" --timeout="$TIMEOUT" --store="$FULL/store" --mfs-root=/full)
    if mount_ipfsfs "$MNT3" "${FULL_ARGS[@]}"; then
        ok "ipfsfs mounts with --store on a 16 MiB tmpfs, 4 MiB free"
        mkdir "$MNT3/d"
        copied=()
        failed_at=
        for i in $(seq 1 16); do
            head -c $((1 << 20)) /dev/urandom >"$L/full$i"
            if cp "$L/full$i" "$MNT3/d/f$i" 2>"$WORK/full.err"; then
                copied+=("$i")
            else
                failed_at=$i
                break
            fi
        done
        check "store full: a cp fails (${#copied[@]} of 1 MiB fit)" test -n "$failed_at"
        check "... with ENOSPC ($(head -c 200 "$WORK/full.err"))" \
            grep -q "No space left on device" "$WORK/full.err"
        check_mounted "$MNT3" "store full: the mount is still up"
        rm -f "$FULL/filler"
        got=""
        for _ in 1 2 3; do
            got=$(timeout 20 python3 -c '
import os, sys
with open(sys.argv[1], "w") as f:
    f.write("room again\n")
    f.flush()
    os.fsync(f.fileno())
print("OK")' "$MNT3/d/after" 2>&1 | tail -n 1)
            [ "$got" = OK ] && break
            sleep 1
        done
        check_eq "room again: a new file is written and fsync'ed" "$got" OK
        check_eq "... and the node has it" "$(rpc_hash /full/d/after)" "$(cid_of "$MNT3/d/after")"
        check_unmount "unmount the store-full mount" "$MNT3"
        if mount_ipfsfs "$MNT3" "${FULL_ARGS[@]}"; then
            lost=""
            for i in "${copied[@]}"; do
                cmp -s "$L/full$i" "$MNT3/d/f$i" || lost="$lost f$i"
            done
            check_eq "after a remount, every file cp said it copied is there (${#copied[@]})" \
                "$lost" ""
            check_eq "... and so is the one written once there was room" \
                "$(cat "$MNT3/d/after" 2>&1)" "room again"
            python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' "$MNT3/d"
            check_eq "... and the node has them all" "$(rpc_hash /full/d)" "$(cid_of "$MNT3/d")"
            check_unmount "unmount the store-full mount again" "$MNT3"
        else
            not_ok "the store-full mount comes back"
        fi
        # Full again, filled by another program between two commits: a name change is
        # refused with ENOSPC at once (it was taken before, kept only in memory while every
        # commit failed, and lost to a crash), and a kill -9 then loses nothing that was
        # acknowledged.
        if mount_ipfsfs "$MNT3" "${FULL_ARGS[@]}"; then
            echo kept >"$MNT3/d/kept"
            sleep 1 # committed
            # Acknowledged, and the disk filled before the next commit: that commit takes the
            # store's reserve (DIR/reserve), so it is not lost.
            mkdir "$MNT3/raced" && head -c $((16 << 20)) /dev/zero >"$FULL/filler" 2>/dev/null
            check_errno "the disk filled by another program: mkdir is ENOSPC at once" ENOSPC \
                mkdir "$MNT3/late"
            check_errno "... and so is mv" ENOSPC rename "$MNT3/d/kept" "$MNT3/d/moved"
            check "... and the log says why" grep -q "name changes fail with ENOSPC" \
                "${MOUNT_LOG[$MNT3]}"
            kill -9 "${MOUNT_PID[$MNT3]}"
            fusermount3 -uz "$MNT3" 2>/dev/null
            unset "MOUNT_PID[$MNT3]"
            rm -f "$FULL/filler"
            if mount_ipfsfs "$MNT3" "${FULL_ARGS[@]}"; then
                names="kept $([ -e "$MNT3/d/kept" ] && echo yes || echo no)"
                names+=", moved $([ -e "$MNT3/d/moved" ] && echo yes || echo no)"
                names+=", late $([ -e "$MNT3/late" ] && echo yes || echo no)"
                names+=", raced $([ -d "$MNT3/raced" ] && echo yes || echo no)"
                check_eq "... after kill -9 and a remount, the names are as they were told" \
                    "$names" "kept yes, moved no, late no, raced yes"
                check "... and the store made its reserve again" test -f "$FULL/store/reserve"
                check_unmount "unmount the store-full mount again" "$MNT3"
            else
                not_ok "the store-full mount comes back after kill -9 (full again)"
            fi
        else
            not_ok "the store-full mount comes back (full again)"
        fi
    else
        not_ok "ipfsfs mounts with --store on a 16 MiB tmpfs, 4 MiB free"
    fi
    # A burst: files written as fast as they go fill the disk within one commit interval
    # (before any commit could fail). The content leaves room for the commit: the close that
    # does not fit fails with ENOSPC, and every close that said 0 survives a kill -9 a moment
    # later (the commit came within a second). It lost every one of them before.
    if mount_ipfsfs "$MNT3" "${FULL_ARGS[@]}"; then
        # pipe: python writes f000, f001, ... (alternately 2 MiB and 300 KiB, random) and
        # prints each name whose close returned 0, until one fails
        python3 -c '
import os, sys
d = sys.argv[1]
os.mkdir(d)
for i in range(200):
    p = "%s/f%03d" % (d, i)
    data = os.urandom(2 << 20 if i % 2 else 300000)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.close(fd)
    except OSError as e:
        print("#", e, file=sys.stderr)
        break
    open(sys.argv[2] + "/" + os.path.basename(p), "wb").write(data)
    print(os.path.basename(p))' "$MNT3/burst" "$L" >"$WORK/burst.acked" 2>"$WORK/burst.err"
        check "burst: the disk fills, and a close says so (ENOSPC; $(wc -l <"$WORK/burst.acked") files fit)" \
            grep -q "No space left on device" "$WORK/burst.err"
        sleep 1.5
        kill -9 "${MOUNT_PID[$MNT3]}"
        fusermount3 -uz "$MNT3" 2>/dev/null
        unset "MOUNT_PID[$MNT3]"
        if mount_ipfsfs "$MNT3" "${FULL_ARGS[@]}"; then
            lost=""
            while read -r f; do
                cmp -s "$L/$f" "$MNT3/burst/$f" || lost="$lost $f"
            done <"$WORK/burst.acked"
            check_eq "... and after kill -9 and a remount, every file whose close said 0 is there" \
                "$lost" ""
            check_unmount "unmount the burst mount" "$MNT3"
        else
            not_ok "the burst mount comes back after kill -9"
        fi
    else
        not_ok "the store-full mount comes back (burst)"
    fi
    umount "$FULL" 2>/dev/null || umount -l "$FULL"
else
    not_ok "a 16 MiB tmpfs for the store" "mount -t tmpfs failed"
fi

check_unmount "unmount" "$MNT"
finish
