#!/usr/bin/env bash
# bench-gateway.sh - a cold sequential read through a gateway-only mount (--gateway, no --api:
# the leaves of each range the reader streams fetched 8 at a time with ?format=raw, each one
# verified and kept in the store), side by side in one run with:
#   - curl of the same file from the same gateway (plain /ipfs/<cid>: the gateway assembles the
#     file itself, nothing is verified), the direct call;
#   - rclone mounted over the same gateway (its http backend on the directory that wraps the
#     file), if rclone is installed (apt-get install rclone).
# The gateway is Kubo's own, on loopback, offline. "Cold": the kernel's caches dropped, and a new,
# empty store for each ipfsfs round (the mount keeps what it fetched).
#
#   IPFSFS_BIN=build/src/ipfsfs tests/bench/bench-gateway.sh
#
# Then a cold `ls -l` of a folder of many names through the mount, beside curl of one CAR of the
# folder's blocks from the same gateway.
#
# Environment: BENCH_GW_SIZE (256M), BENCH_GW_NAMES (1500), BENCH_ROUNDS (3), BENCH_FS_ARGS, and
# those of lib.sh.
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE=$(to_bytes "${BENCH_GW_SIZE:-256M}")
ROUNDS=${BENCH_ROUNDS:-3}
read -r -a EXTRA <<<"${BENCH_FS_ARGS:-}"

bench_require
bench_init bench-gateway
start_node
GW=$NODE_GATEWAY
[ -n "$GW" ] || die "start-node.sh printed no gateway address"
note "gateway: $GW (Kubo's, offline, on loopback)"

note "generating $SIZE random bytes"
gen_file "$WORK/data" "$SIZE"
show curl -s -X POST -m 600 -F "file=@$WORK/data;filename=data" \
    "$NODE_URL/add?pin=true&wrap-with-directory=true" >"$WORK/add.out" || die "add failed"
CID=$(sed -n 1p "$WORK/add.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Hash"])') ||
    die "add: $(tail -c 300 "$WORK/add.out")"
DIR=$(sed -n '$p' "$WORK/add.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Hash"])') ||
    die "add: $(tail -c 300 "$WORK/add.out")"
rm -f "$WORK/data"
note "file $CID in directory $DIR"

MNT=$WORK/mnt
STORE=$WORK/store
export BENCH_NO_API=1

HAVE_RCLONE=0
if command -v rclone >/dev/null 2>&1; then
    HAVE_RCLONE=1
    RMNT=$WORK/rclone
    mkdir -p "$RMNT"
    note "rclone: $(rclone version 2>/dev/null | head -1)"
else
    note "rclone is not installed: that comparison is skipped (apt-get install rclone)"
fi

one_read() {
    local label=$1 secs
    shift
    timed secs timeout 600 "$@" >/dev/null || note "the command failed (status $?)"
    READ_MBPS=$(mbps "$SIZE" "$secs")
    note "$label: $secs s, $READ_MBPS MB/s"
}

curl_runs=() fs_runs=() rc_runs=()
for r in $(seq 1 "$ROUNDS"); do
    say "-- round $r"
    drop_caches
    one_read "round $r curl gateway" curl -s -m 600 "$GW/ipfs/$CID" -o /dev/null
    curl_runs+=("$READ_MBPS")

    # A new, empty store each round, the old ones removed only at the end: on ext4 without a
    # journal (as on the VMs these figures come from) every file created within a minute or so
    # of deleting many others makes the kernel step over the recently freed inodes
    # (recently_deleted), which a user's first read into a store they did not just empty never
    # pays (a quarter of ipfsfs's CPU when the store was emptied right before the round).
    drop_caches
    mount_fs "$MNT" --gateway="$GW" --store="$STORE.$r" "${EXTRA[@]}"
    one_read "round $r ipfsfs --gateway" cat "$MNT/$CID"
    fs_runs+=("$READ_MBPS")
    [ "$r" = "$ROUNDS" ] && print_stats
    unmount_fs

    if [ "$HAVE_RCLONE" = 1 ]; then
        drop_caches
        rclone mount :http: "$RMNT" --http-url "$GW/ipfs/$DIR/" --read-only \
            --vfs-cache-mode off --dir-cache-time 1h >"$WORK/rclone.log" 2>&1 &
        rpid=$!
        track_pid "$rpid"
        for _ in $(seq 1 100); do
            mountpoint -q "$RMNT" && break
            sleep 0.1
        done
        if mountpoint -q "$RMNT"; then
            one_read "round $r rclone mount" cat "$RMNT/data"
            rc_runs+=("$READ_MBPS")
        else
            note "rclone did not mount: $(tail -3 "$WORK/rclone.log")"
        fi
        fusermount3 -u "$RMNT" 2>/dev/null
        kill "$rpid" 2>/dev/null
        wait "$rpid" 2>/dev/null
    fi
done

# A cold listing: `ls -l` of a folder of BENCH_GW_NAMES small files (a HAMT, as the node makes
# one past 1,000 links here) reads each entry's first block to tell its kind and size, each
# verified. The direct call: one CAR of the folder with every block (?format=car&dag-scope=all:
# here the same blocks, in one answer). The gateway's own HTML listing, which reads no entry's
# block (it shows the links' Tsize), is timed for information.
NAMES=${BENCH_GW_NAMES:-1500}
mkdir -p "$WORK/names"
for i in $(seq 1 "$NAMES"); do printf 'entry %s\n' "$i" >"$WORK/names/f$i.txt"; done
LDIR=$(IPFS_PATH=$NODE_REPO "$NODE_BIN" add -r -Q --max-directory-links=1000 "$WORK/names") ||
    die "ipfs add -r of the names failed"
note "a folder of $NAMES names: $LDIR"
curl_ls=() fs_ls=()
for r in $(seq 1 "$ROUNDS"); do
    timed secs timeout 600 curl -s -f -m 600 -H "Accept: application/vnd.ipld.car" \
        "$GW/ipfs/$LDIR?format=car&dag-scope=all" -o "$WORK/names.car" ||
        note "curl failed (status $?)"
    note "round $r curl of the folder's CAR: $secs s ($(stat -c %s "$WORK/names.car") bytes)"
    curl_ls+=("$secs")
    timed secs timeout 600 curl -s -f -m 600 "$GW/ipfs/$LDIR/" -o /dev/null ||
        note "curl failed (status $?)"
    note "round $r curl of the gateway's HTML listing (no entry's block read): $secs s"
    mount_fs "$MNT" --gateway="$GW" --store="$STORE.ls$r" "${EXTRA[@]}"
    timed secs timeout 600 ls -l "$MNT/$LDIR" >/dev/null || note "ls failed (status $?)"
    note "round $r ipfsfs ls -l: $secs s ($(stat_value store_list_prefetched) blocks in batches)"
    fs_ls+=("$secs")
    unmount_fs
done
LS_CURL=$(median "${curl_ls[@]}")
LS_FS=$(median "${fs_ls[@]}")

CURL=$(median "${curl_runs[@]}")
FS=$(median "${fs_runs[@]}")
note "MB/s of each round: ipfsfs ${fs_runs[*]}; curl ${curl_runs[*]}${rc_runs[*]:+; rclone ${rc_runs[*]}}"
R=$(calc "$FS / $CURL")
record "gateway cold seq read MB/s" "$FS" "$CURL" "$R" "ratio >= 0.8" "$(verdict "$R >= 0.8")"
if [ "${#rc_runs[@]}" -gt 0 ]; then
    RC=$(median "${rc_runs[@]}")
    R=$(calc "$FS / $RC")
    record "gateway read vs rclone mount (MB/s)" "$FS" "$RC" "$R" "ratio >= 2" "$(verdict "$R >= 2")"
fi
R=$(calc "$LS_FS / $LS_CURL")
record "gateway cold ls -l, $NAMES names (s)" "$LS_FS" "$LS_CURL" "$R" "- (vs one CAR)" "-"
bench_done
