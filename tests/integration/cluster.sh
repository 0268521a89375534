#!/usr/bin/env bash
# cluster.sh - ipfsfs on IPFS Cluster: three Kubo nodes and three cluster peers (CRDT consensus,
# a shared secret) on loopback, built from their Go modules at pinned versions
# (tests/node/kubo.sh, tests/node/cluster.sh; started by tests/node/start-cluster.sh).
#
# With a mount on peer 1's proxy (--api) and REST API (--cluster):
#   - cp -r a tree and a 20 MiB file in; fsync with --replication-wait returns once the cluster
#     has the names on MIN peers; the CIDs are `ipfs add`'s;
#   - ipfs-cluster-ctl status shows the tree and the file pinned on at least MIN peers, with
#     the factors of --replication, and user.ipfs.pins says the same;
#   - peer 1's Kubo killed: a mount on peer 2 reads the same CIDs equal; the mount on peer 1
#     keeps its names and takes writes (kept locally);
#   - peer 1's Kubo back: nothing is lost, the write made meanwhile reaches the node and the
#     cluster;
#   - old pins are retired (a removed name is unpinned), a cluster that is down or cannot meet
#     MIN gives clear errors within the timeout, and --replication without a cluster is refused;
#   - peer 3's REST API wants HTTP basic auth: without credentials (or with wrong ones) the log
#     says so, naming the cluster; with --cluster-auth-file or IPFSFS_CLUSTER_AUTH the names'
#     root is pinned, and the secret shows in neither ps, the log nor /proc/PID/environ.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=build/src/ipfsfs tests/integration/cluster.sh
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
require_node
if [ -z "${IPFSFS_NO_INTEGRATION:-}" ] &&
    ! CLUSTER_OUT=$("$IPFSFS_NODE_DIR/cluster.sh" --find-only 2>&1); then
    say "Bail out! no IPFS Cluster binaries:"
    diag "$CLUSTER_OUT" "build them with tests/node/cluster.sh (needs Go)"
    exit 99
fi
IPFSFS_TEST_TIMEOUT=${IPFSFS_TEST_TIMEOUT:-420}
lib_init

T=20        # --timeout
MIN=2 MAX=2 # --replication: two of the three peers
CPASS=cluster-pw-$RANDOM$RANDOM
CAUTH=ipfsfs:$CPASS # peer 3's REST API takes only this (basic auth)

if ! out=$("$IPFSFS_NODE_DIR/start-cluster.sh" --basic-auth="3:$CAUTH" "$WORK/cluster" 3 \
    2>"$WORK/start-cluster.log"); then
    not_ok "three Kubo nodes and three cluster peers start" "$(tail -n 30 "$WORK/start-cluster.log")"
    finish
fi
eval "$(grep -E '^[A-Z_0-9]+=' <<<"$out")"
for i in 1 2 3; do
    k=KUBO_PID_$i c=CLUSTER_PID_$i
    track_pid "${!k}"
    track_pid "${!c}"
done
ok "three Kubo nodes and three cluster peers start (CRDT, shared secret; basic auth on peer 3)"
ctl() { # ctl I ARGS...: ipfs-cluster-ctl against peer I's REST API
    local r=REST_API_$1
    shift
    "$CLUSTER_CTL" --host "/ip4/127.0.0.1/tcp/${!r##*:}" "$@"
}
kubo_at() { # kubo_at I ARGS...: the ipfs command line on node I
    local i=$1
    shift
    IPFS_PATH=$WORK/cluster/kubo$i "$KUBO_BIN" "$@"
}
# pinned_peers I CID: how many peers say PINNED for CID (ipfs-cluster-ctl status)
pinned_peers() { ctl "$1" status "$2" 2>/dev/null | grep -c ': PINNED' || true; }
# wait_pinned I CID N SECS: until N peers have CID pinned; prints the count
wait_pinned() {
    local n=0
    for _ in $(seq 1 $(($4 * 4))); do
        n=$(pinned_peers "$1" "$2")
        [ "$n" -ge "$3" ] && break
        sleep 0.25
    done
    echo "$n"
}
fsync_errno() { # fsync_errno PATH: OK or the errno name of fsync(2) on PATH
    timeout -k 2 60 python3 -c '
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
    os.fsync(fd)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))' "$1" 2>&1 || echo "TIMEOUT"
}
setxattr_errno() { # setxattr_errno PATH NAME VALUE: OK or the errno name of setxattr(2)
    timeout -k 2 30 python3 -c '
import errno, os, sys
try:
    os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))' "$@" 2>&1 || echo "TIMEOUT"
}
# shellcheck disable=SC2317 # called through check
wait_unpinned() { # wait_unpinned CID SECS: until CID is no cluster pin any more
    for _ in $(seq 1 $(($2 * 4))); do
        ctl 1 pin ls | grep -q "^$1 " || return 0
        sleep 0.25
    done
    echo "still pinned after $2 s: $(ctl 1 pin ls | grep "^$1 ")"
    return 1
}
pins_of() { getfattr --absolute-names --only-values -n user.ipfs.pins "$1" 2>&1; }

# ---- the content ------------------------------------------------------------------------------

SRC=$WORK/src
mkdir -p "$SRC/tree/deep/er" "$SRC/tree/with spaces"
for i in $(seq 1 60); do printf 'file %s\n' "$i" >"$SRC/tree/f$i.txt"; done
printf 'deep\n' >"$SRC/tree/deep/er/leaf"
printf 'spaced\n' >"$SRC/tree/with spaces/a b.txt"
gen_file "$SRC/tree/deep/mid" 700000 11
gen_file "$SRC/big" $((20 * 1024 * 1024)) 12
want_tree=$(kubo_at 2 add -Qrn "$SRC/tree")
want_big=$(kubo_at 2 add -Qn "$SRC/big")

# ---- mount on peer 1 --------------------------------------------------------------------------

M1=$WORK/m1
if ! mount_ipfsfs "$M1" --api="$PROXY_API_1" --cluster="$REST_API_1" --replication=$MIN:$MAX \
    --replication-wait --store="$WORK/store1" --timeout=$T; then
    not_ok "mount on peer 1's proxy"
    finish
fi
ok "mount on peer 1's proxy, --replication=$MIN:$MAX --replication-wait"

check "cp -r a tree in" cp -r "$SRC/tree" "$M1/tree"
check "cp a 20 MiB file in" cp "$SRC/big" "$M1/big"
t0=$(now)
got=$(fsync_errno "$M1/big")
check_eq "fsync waits until the cluster has the names on $MIN peers ($(elapsed "$t0") s)" "$got" OK
check_eq "the tree's CID is ipfs add's" "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$M1/tree" 2>&1)" \
    "$want_tree"
check_eq "the file's CID is ipfs add's" "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$M1/big" 2>&1)" \
    "$want_big"

n=$(wait_pinned 1 "$want_tree" $MIN 30)
if [ "$n" -ge $MIN ]; then ok "ipfs-cluster-ctl status: the tree is PINNED on $n peers"; else
    not_ok "ipfs-cluster-ctl status: the tree is PINNED on $MIN peers" "$(ctl 1 status "$want_tree")"
fi
n=$(wait_pinned 1 "$want_big" $MIN 30)
if [ "$n" -ge $MIN ]; then ok "ipfs-cluster-ctl status: the 20 MiB file is PINNED on $n peers"; else
    not_ok "ipfs-cluster-ctl status: the file is PINNED on $MIN peers" "$(ctl 1 status "$want_big")"
fi
alloc=$(curl -sf -m 10 "$REST_API_1/allocations/$want_big" | python3 -c '
import json, sys
p = json.load(sys.stdin)
print(p["replication_factor_min"], p["replication_factor_max"], len(p["allocations"]))')
check_eq "--replication=$MIN:$MAX is the pin's factors, with $MAX peers allocated" "$alloc" \
    "$MIN $MAX $MAX"
check_eq "ipfs-cluster-ctl pin ls names the pin after the mount" \
    "$(ctl 1 pin ls "$want_big" | grep -c ':/big |')" 1
pins=$(pins_of "$M1/big")
if [[ $pins == "pinned: $MAX of $MAX peers hold it (min $MIN, max $MAX)"* ]]; then
    ok "user.ipfs.pins of the file: $pins"
else
    not_ok "user.ipfs.pins of the file says pinned on $MAX of $MAX" "got: $pins"
fi
pins=$(pins_of "$M1/tree/deep/er/leaf")
check "user.ipfs.pins of a name deep in the tree: $pins" grep -q '^pinned: ' <<<"$pins"
# Computed, it is read by name and not listed (cp -a and rsync -X would copy it stale).
check "user.ipfs.pins is not listed (computed: read by name)" \
    bash -c "! getfattr --absolute-names -d -m - '$M1/big' | grep -q user.ipfs.pins"
check "setfattr -x user.ipfs.pins succeeds (computed, as user.ipfs.cid: nothing to remove)" \
    setfattr -x user.ipfs.pins "$M1/big"
check "... and it still reads" grep -q '^pinned: ' <<<"$(pins_of "$M1/big")"
check "the mount's stats count the cluster's pins" \
    bash -c "getfattr --absolute-names --only-values -n user.ipfsfs.stats '$M1' | grep -q '^cluster_pins [1-9]'"

# A name removed is unpinned; a name changed is pinned anew (the old CID unpinned).
printf 'one\n' >"$M1/small"
check_eq "fsync of a new small file" "$(fsync_errno "$M1/small")" OK
small1=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$M1/small")
printf 'two\n' >"$M1/small"
check_eq "fsync of the same name, new content" "$(fsync_errno "$M1/small")" OK
small2=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$M1/small")
n=$(wait_pinned 1 "$small2" $MIN 20)
check "the new content is pinned ($n peers)" test "$n" -ge $MIN
check "the old content of the changed name is unpinned" wait_unpinned "$small1" 10
rm "$M1/small"
fsync_errno "$M1" >/dev/null
check "a removed name is unpinned" wait_unpinned "$small2" 10

# A folder with factors of its own (user.ipfs.replication): pinned on its own with them.
deep=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$M1/tree/deep")
check "setfattr user.ipfs.replication=3 on a folder" \
    setfattr -n user.ipfs.replication -v 3 "$M1/tree/deep"
check_eq "getfattr gives it back as MIN:MAX" \
    "$(getfattr --absolute-names --only-values -n user.ipfs.replication "$M1/tree/deep" 2>&1)" "3:3"
check "it is listed on that folder" \
    bash -c "getfattr --absolute-names -d -m - '$M1/tree/deep' | grep -q user.ipfs.replication"
n=$(wait_pinned 1 "$deep" 3 30)
check "the folder is pinned on its own, on 3 peers ($n)" test "$n" -ge 3
check_eq "... with the factors 3:3 and its path as the pin's name" \
    "$(ctl 1 pin ls "$deep" | grep -c ':/tree/deep | PIN | Repl. Factor: 3--3')" 1
pins=$(pins_of "$M1/tree/deep/er/leaf")
check "user.ipfs.pins inside it follows its pin: $pins" grep -q '^pinned: 3 of 3 peers' <<<"$pins"
check_eq "a bad value is EINVAL" "$(setxattr_errno "$M1/tree/deep" user.ipfs.replication 3:1)" \
    EINVAL
check_eq "the mount root's factors are --replication's: EINVAL" \
    "$(setxattr_errno "$M1" user.ipfs.replication 3)" EINVAL
check "setfattr -x removes it" setfattr -x user.ipfs.replication "$M1/tree/deep"
check "... and the folder's own pin goes (the tree's covers it)" wait_unpinned "$deep" 10

# Factors the cluster cannot meet (4 of 3 peers): the cluster refuses the folder's pin; that
# shows in user.ipfs.pins and fails fsync (--replication-wait), until the factors go.
mkdir -p "$M1/r4" && echo r4 >"$M1/r4/f.txt"
check "setfattr user.ipfs.replication=4 on a folder (3 peers)" \
    setfattr -n user.ipfs.replication -v 4 "$M1/r4"
fsync_errno "$M1/r4/f.txt" >/dev/null
pins=""
for _ in $(seq 1 40); do # the pin round runs after the push; a refusal is retried every 5 s
    pins=$(pins_of "$M1/r4")
    grep -q refused <<<"$pins" && break
    sleep 0.5
done
check "... user.ipfs.pins says the pin is refused: $pins" grep -q "refused" <<<"$pins"
check_eq "... and fsync (--replication-wait) fails: EIO" "$(fsync_errno "$M1/r4/f.txt")" EIO
check "setfattr -x removes the factors" setfattr -x user.ipfs.replication "$M1/r4"
got=EIO
for _ in $(seq 1 30); do # the next round pins again (within 5 s)
    got=$(fsync_errno "$M1/r4/f.txt")
    [ "$got" = OK ] && break
    sleep 0.5
done
check_eq "... and fsync works again" "$got" OK
rm -rf "$M1/r4"
fsync_errno "$M1" >/dev/null

# Factors a peer that is down keeps short (3:3 with peer 3's cluster peer stopped): the
# cluster refuses the folder's pin, or takes it and peer 3 fails it. Either way fsync
# (--replication-wait) waits for the folder's own pin too, not only the root's (2:2, met):
# EIO after --timeout (it returned 0 at once), and it works again once the peer is back.
mkdir -p "$M1/r3" && echo r3 >"$M1/r3/f.txt"
fsync_errno "$M1/r3/f.txt" >/dev/null
kill "$CLUSTER_PID_3"
for _ in $(seq 1 50); do kill -0 "$CLUSTER_PID_3" 2>/dev/null || break; sleep 0.2; done
check "setfattr user.ipfs.replication=3 on a folder, peer 3 down" \
    setfattr -n user.ipfs.replication -v 3 "$M1/r3"
check_eq "... fsync (--replication-wait) fails: EIO" "$(fsync_errno "$M1/r3/f.txt")" EIO
if out=$("$IPFSFS_NODE_DIR/start-cluster.sh" --restart "$WORK/cluster" 3 cluster 2>&1); then
    eval "$(grep -E '^CLUSTER_PID_3=' <<<"$out")"
    track_pid "$CLUSTER_PID_3"
    got=EIO
    for _ in $(seq 1 20); do # the pin rounds retry every 5 s; peer 3 takes the pin back
        got=$(fsync_errno "$M1/r3/f.txt")
        [ "$got" = OK ] && break
        sleep 1
    done
    check_eq "... and works once peer 3 is back" "$got" OK
else
    not_ok "peer 3's cluster peer restarts" "$out"
fi
setfattr -x user.ipfs.replication "$M1/r3"
rm -rf "$M1/r3"
fsync_errno "$M1" >/dev/null

# ---- a second mount with the same folder -------------------------------------------------------
# The cluster keeps one pin per CID. Another mount (peer 2, its own --mfs-root) copying the same
# tree in must not rename the tree's pin as its own, nor unpin it when it removes its copy.
M5=$WORK/m5
if mount_ipfsfs "$M5" --api="$PROXY_API_2" --cluster="$REST_API_2" --store="$WORK/store5" \
    --mfs-root=/other --timeout=$T --log-level=info; then
    check "a second mount copies the same tree in" cp -r "$SRC/tree" "$M5/shared"
    check_eq "... fsync" "$(fsync_errno "$M5/shared")" OK
    for _ in $(seq 1 60); do # the pin round runs after the push
        grep -q "is pinned through the cluster already" "${MOUNT_LOG[$M5]}" && break
        sleep 0.5
    done
    check "... its pin round finds the tree pinned already, and leaves it so" \
        grep -q "is pinned through the cluster already" "${MOUNT_LOG[$M5]}"
    check_eq "... the tree's pin keeps the first mount's name" \
        "$(ctl 1 pin ls "$want_tree" | grep -c ':/tree |')" 1
    rm -rf "$M5/shared"
    check_eq "... the second mount removes its copy (fsync)" "$(fsync_errno "$M5")" OK
    sleep 3 # its unpin round, had it one
    check_eq "... and the tree stays pinned, with the first mount's name" \
        "$(ctl 1 pin ls "$want_tree" | grep -c ':/tree |')" 1
    check_unmount "the second mount unmounts cleanly" "$M5"
else
    not_ok "a second mount, on peer 2's proxy"
fi

# ---- peer 1's Kubo dies -----------------------------------------------------------------------

kill "$KUBO_PID_1"
for _ in $(seq 1 50); do kill -0 "$KUBO_PID_1" 2>/dev/null || break; sleep 0.2; done
ok "peer 1's Kubo is killed"
M2=$WORK/m2
if mount_ipfsfs "$M2" --api="$PROXY_API_2" --cluster="$REST_API_2" --store="$WORK/store2" \
    --timeout=$T; then
    check "a mount on peer 2 reads the 20 MiB file equal, by CID" cmp "$SRC/big" "$M2/$want_big"
    check "a mount on peer 2 reads the tree equal (diff -r)" diff -r "$SRC/tree" "$M2/$want_tree"
else
    not_ok "mount on peer 2's proxy"
fi
check "peer 1's mount still lists its names" test -f "$M1/tree/deep/er/leaf"
check "peer 1's mount still reads the file" cmp "$SRC/big" "$M1/big"
printf 'written while the node was down\n' >"$WORK/later.txt"
check "peer 1's mount takes a write (kept locally)" cp "$WORK/later.txt" "$M1/later.txt"
t0=$(now)
got=$(fsync_errno "$M1/later.txt")
check_eq "fsync with the node down: EIO within the timeout ($(elapsed "$t0") s)" "$got" EIO

# ---- and comes back ---------------------------------------------------------------------------

if out=$("$IPFSFS_NODE_DIR/start-cluster.sh" --restart "$WORK/cluster" 1 kubo 2>&1); then
    eval "$(grep -E '^KUBO_PID_1=' <<<"$out")"
    track_pid "$KUBO_PID_1"
    ok "peer 1's Kubo is back on its ports"
else
    not_ok "peer 1's Kubo restarts" "$out"
fi
t0=$(now)
got=$(fsync_errno "$M1/later.txt")
for _ in 1 2 3; do
    [ "$got" = OK ] && break
    got=$(fsync_errno "$M1/later.txt")
done
check_eq "the write made meanwhile reaches the node and the cluster ($(elapsed "$t0") s)" "$got" OK
later=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$M1/later.txt")
check_eq "peer 1's node has it in MFS" "$(kubo_at 1 files stat --hash /later.txt 2>&1)" "$later"
n=$(wait_pinned 1 "$later" $MIN 30)
check "and the cluster has it on $MIN peers ($n)" test "$n" -ge $MIN
check_eq "nothing is lost: the tree on peer 1's node is the same CID" \
    "$(kubo_at 1 files stat --hash /tree 2>&1)" "$want_tree"
check "nothing is lost: peer 1's mount reads the tree equal" diff -r "$SRC/tree" "$M1/tree"
check_unmount "peer 1's mount unmounts cleanly" "$M1"
mountpoint -q "$M2" && check_unmount "peer 2's mount unmounts cleanly" "$M2"

# ---- a boot where ipfsfs comes before the cluster peer ----------------------------------------

kill "$CLUSTER_PID_1"
for _ in $(seq 1 50); do kill -0 "$CLUSTER_PID_1" 2>/dev/null || break; sleep 0.2; done
if mount_ipfsfs "$M1" --api="$PROXY_API_1" --cluster="$REST_API_1" --store="$WORK/store1" \
    --timeout=$T; then
    ok "with peer 1's cluster peer (its proxy) down, the mount on its store comes up"
    check "its names are there" diff -r "$SRC/tree" "$M1/tree"
    printf 'boot\n' >"$M1/boot.txt"
    if out=$("$IPFSFS_NODE_DIR/start-cluster.sh" --restart "$WORK/cluster" 1 cluster 2>&1); then
        eval "$(grep -E '^CLUSTER_PID_1=' <<<"$out")"
        track_pid "$CLUSTER_PID_1"
        ok "peer 1's cluster peer is back"
    else
        not_ok "peer 1's cluster peer restarts" "$out"
    fi
    got=""
    for _ in $(seq 1 10); do
        got=$(fsync_errno "$M1/boot.txt")
        [ "$got" = OK ] && break
        sleep 1
    done
    check_eq "the write made before it came reaches the node" "$got" OK
    boot=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$M1/boot.txt")
    n=$(wait_pinned 1 "$boot" $MIN 30)
    check "... and is pinned through the cluster once it answers ($n peers)" \
        test "$n" -ge $MIN
    check_unmount "that mount unmounts cleanly" "$M1"
else
    not_ok "with the proxy down, the mount on a store that pinned before comes up"
fi

# ---- errors -----------------------------------------------------------------------------------

# More copies than peers: the cluster refuses the pin; the names still reach the node, fsync
# with --replication-wait says EIO within the timeout, and user.ipfs.pins says why.
M3=$WORK/m3
if mount_ipfsfs "$M3" --api="$PROXY_API_2" --cluster="$REST_API_2" --replication=5:5 \
    --replication-wait --store="$WORK/store3" --mfs-root=/five --timeout=5; then
    printf 'five\n' >"$M3/f"
    t0=$(now)
    got=$(fsync_errno "$M3/f")
    dt=$(elapsed "$t0")
    check_eq "--replication=5:5 on 3 peers: fsync says EIO ($dt s)" "$got" EIO
    check "... within the timeout" lt "$dt" 12
    check "... and the names reached the node all the same" \
        bash -c "IPFS_PATH='$WORK/cluster/kubo2' '$KUBO_BIN' files stat /five/f"
    check "the mount's log says why" grep -q "cluster" "${MOUNT_LOG[$M3]}"
    check_unmount "that mount unmounts cleanly" "$M3"
else
    not_ok "mount with --replication=5:5"
fi

# A cluster REST API that is down: the mount works, the names reach the node, the pins wait.
M4=$WORK/m4
dead=$(free_port)
if mount_ipfsfs "$M4" --api="$PROXY_API_3" --cluster="http://127.0.0.1:$dead" \
    --store="$WORK/store4" --mfs-root=/dead --timeout=5; then
    printf 'dead cluster\n' >"$M4/f"
    check_eq "with the cluster's API down, fsync (no --replication-wait) works" \
        "$(fsync_errno "$M4/f")" OK
    pins=$(pins_of "$M4/f")
    check "... and user.ipfs.pins says it is not pinned yet: $pins" grep -q '^pending' <<<"$pins"
    check "... and the stats say why" \
        bash -c "getfattr --absolute-names --only-values -n user.ipfsfs.stats '$M4' | grep -q '^cluster_error '"
    check_unmount "that mount unmounts cleanly" "$M4"
else
    not_ok "mount with a dead cluster API"
fi

# An unpin the cluster does not take is tried again, also after a remount: slowproxy.py in front
# of peer 2's REST API resets every DELETE /pins (the pins go through).
PMODE=$WORK/restproxy.mode
echo "reset DELETE /pins" >"$PMODE"
start_slowproxy restproxy "127.0.0.1:${REST_API_2##*:}"
REST_PROXY=http://127.0.0.1:$SLOWPROXY_PORT
owed_of() { # owed_of MNT: cluster_unpins_owed of the mount's stats
    getfattr --absolute-names --only-values -n user.ipfsfs.stats "$1" 2>/dev/null |
        sed -n 's/^cluster_unpins_owed //p'
}
M7=$WORK/m7
if mount_ipfsfs "$M7" --api="$PROXY_API_2" --cluster="$REST_PROXY" --store="$WORK/store8" \
    --mfs-root=/owed --timeout=$T; then
    printf 'owed one\n' >"$M7/owe"
    fsync_errno "$M7/owe" >/dev/null
    owe1=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$M7/owe")
    n=$(wait_pinned 2 "$owe1" 1 30)
    printf 'owed two\n' >"$M7/owe"
    fsync_errno "$M7/owe" >/dev/null
    owe2=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$M7/owe")
    n=$(wait_pinned 2 "$owe2" 1 30)
    check "with DELETE /pins reset, the name's new content is pinned ($n peers)" test "$n" -ge 1
    owed=0
    for _ in $(seq 1 40); do
        owed=$(owed_of "$M7")
        [ "${owed:-0}" -ge 1 ] && break
        sleep 0.25
    done
    check "... the old content's unpin failed and is owed (cluster_unpins_owed $owed)" \
        test "${owed:-0}" -ge 1
    check "... the store's cluster-pins file names it" \
        grep -q "^unpin $owe1 " "$WORK/store8/cluster-pins"
    check "... and the old content is still pinned" bash -c "'$CLUSTER_CTL' --host /ip4/127.0.0.1/tcp/${REST_API_2##*:} pin ls | grep -q '^$owe1 '"
    check_unmount "that mount unmounts with the unpin still owed" "$M7"
    echo pass >"$PMODE"
    if mount_ipfsfs "$M7" --api="$PROXY_API_2" --cluster="$REST_PROXY" --store="$WORK/store8" \
        --mfs-root=/owed --timeout=$T; then
        check "remounted, with the cluster taking DELETEs again, the owed unpin is done" \
            wait_unpinned "$owe1" 30
        check "... the new content stays pinned" bash -c "'$CLUSTER_CTL' --host /ip4/127.0.0.1/tcp/${REST_API_2##*:} pin ls | grep -q '^$owe2 '"
        for _ in $(seq 1 40); do
            [ "$(owed_of "$M7")" = 0 ] && break
            sleep 0.25
        done
        check_eq "... and cluster_unpins_owed is 0" "$(owed_of "$M7")" 0
        check_unmount "that mount unmounts cleanly" "$M7"
    else
        not_ok "remount with the unpin owed"
    fi
else
    not_ok "mount through a proxy in front of peer 2's REST API"
fi

# ---- a REST API that wants credentials (peer 3's: basic auth) ---------------------------------

ctl3() { # ctl3 ARGS...: ipfs-cluster-ctl against peer 3's REST API, with its credentials
    "$CLUSTER_CTL" --host "/ip4/127.0.0.1/tcp/${REST_API_3##*:}" --basic-auth "$CAUTH" \
        --force-http "$@"
}
# wait_root_pinned MNT SECS: until the mount has pinned a root of its names (its stats) and
# peer 3 lists that pin; prints the root
wait_root_pinned() {
    local r=
    for _ in $(seq 1 $(($2 * 4))); do
        r=$(getfattr --absolute-names --only-values -n user.ipfsfs.stats "$1" 2>/dev/null |
            sed -n 's/^cluster_root //p')
        if [ -n "$r" ] && [ "$r" != none ] && ctl3 pin ls "$r" 2>/dev/null | grep -q "^$r "; then
            echo "$r"
            return 0
        fi
        sleep 0.25
    done
    echo "no root pinned within $2 s (cluster_root: ${r:-?})"
    return 1
}
# shellcheck disable=SC2317 # called through check
wait_log() { # wait_log MNT TEXT: until the mount's log says TEXT (10 s)
    for _ in $(seq 1 40); do
        grep -qF -- "$2" "${MOUNT_LOG[$1]}" && return 0
        sleep 0.25
    done
    tail -n 5 "${MOUNT_LOG[$1]}"
    return 1
}
M6=$WORK/m6
AUTH_ARGS=(--api="$PROXY_API_3" --cluster="$REST_API_3" --store="$WORK/store6" --mfs-root=/auth
    --timeout=5)
check_eq "peer 3's REST API answers 401 without credentials" \
    "$(curl -s -o /dev/null -w '%{http_code}' -m 5 "$REST_API_3/id")" 401
if mount_ipfsfs "$M6" "${AUTH_ARGS[@]}"; then
    printf 'no credentials\n' >"$M6/a"
    check_eq "no credentials: the names reach the node all the same (fsync)" \
        "$(fsync_errno "$M6/a")" OK
    check "... and the log says the cluster at $REST_API_3 wants credentials (HTTP 401)" \
        wait_log "$M6" "the cluster at $REST_API_3 wants credentials (HTTP 401)"
    pins=$(pins_of "$M6/a")
    case $pins in
    "pending: not pinned through the cluster yet (the cluster at $REST_API_3 wants credentials"*)
        ok "... and so does user.ipfs.pins: $pins" ;;
    *) not_ok "... and so does user.ipfs.pins" "$pins" ;;
    esac
    t0=$(now)
    check_unmount "... and it unmounts cleanly" "$M6"
    check "... at once ($(elapsed "$t0") s)" lt "$(elapsed "$t0")" 10
else
    not_ok "mount with a cluster that wants credentials, none given"
fi
(umask 077 && printf 'basic:ipfsfs:wrong\n' >"$WORK/cluster-auth-bad" &&
    printf 'basic:%s\n' "$CAUTH" >"$WORK/cluster-auth")
if mount_ipfsfs "$M6" "${AUTH_ARGS[@]}" --cluster-auth-file="$WORK/cluster-auth-bad"; then
    printf 'wrong credentials\n' >"$M6/b"
    fsync_errno "$M6/b" >/dev/null
    check "wrong credentials: the log says the cluster at $REST_API_3 refused them" \
        wait_log "$M6" "the cluster at $REST_API_3 refused the credentials given (HTTP 401"
    check_unmount "... and it unmounts cleanly" "$M6"
else
    not_ok "mount with wrong credentials for the cluster"
fi
if mount_ipfsfs "$M6" "${AUTH_ARGS[@]}" --cluster-auth-file="$WORK/cluster-auth"; then
    printf 'credentials from a file\n' >"$M6/c"
    check_eq "--cluster-auth-file (basic:USER:PASS, mode 0600): fsync" "$(fsync_errno "$M6/c")" OK
    if r=$(wait_root_pinned "$M6" 15); then
        ok "... the names' root is pinned: ipfs-cluster-ctl --basic-auth pin ls $r"
    else
        not_ok "... the names' root is pinned (ipfs-cluster-ctl --basic-auth pin ls)" "$r" \
            "$(tail -n 5 "${MOUNT_LOG[$M6]}")"
    fi
    check_unmount "... and it unmounts cleanly" "$M6"
else
    not_ok "mount with --cluster-auth-file"
fi
if IPFSFS_CLUSTER_AUTH=basic:$CAUTH mount_ipfsfs "$M6" "${AUTH_ARGS[@]}" --log-level=debug; then
    printf 'credentials from the environment\n' >"$M6/d"
    check_eq "IPFSFS_CLUSTER_AUTH=basic:USER:PASS: fsync" "$(fsync_errno "$M6/d")" OK
    if r=$(wait_root_pinned "$M6" 15); then
        ok "... the names' root is pinned: $r"
        check "... the REST API says so too (curl -u)" \
            curl -sf -o /dev/null -m 5 -u "$CAUTH" "$REST_API_3/allocations/$r"
    else
        not_ok "... the names' root is pinned" "$r" "$(tail -n 5 "${MOUNT_LOG[$M6]}")"
    fi
    pid=${MOUNT_PID[$M6]}
    # ps's output goes to a file first: a grep in a pipeline would show the secret itself.
    ps -eo pid,args >"$WORK/ps.txt"
    check "... ps shows no secret" bash -c "! grep -qF -- '$CPASS' '$WORK/ps.txt'"
    check "... the debug log holds no secret" bash -c "! grep -qF -- '$CPASS' '${MOUNT_LOG[$M6]}'"
    check "... /proc/PID/environ no longer holds it (wiped)" \
        bash -c "! tr '\\0' '\\n' <'/proc/$pid/environ' | grep -qF -- '$CPASS'"
    check_unmount "... and it unmounts cleanly" "$M6"
else
    not_ok "mount with IPFSFS_CLUSTER_AUTH set"
fi

mkdir -p "$WORK/m5"
check_fails_with "credentials over plain http to a host that is not loopback are refused" \
    "refusing to send the cluster's credentials over plain http to http://192.0.2.1:9094" \
    "$IPFSFS_BIN" -f --api="$PROXY_API_3" --cluster=http://192.0.2.1:9094 \
    --cluster-auth-file="$WORK/cluster-auth" --store="$WORK/store7" "$WORK/m5"
check_fails_with "a password inside the --cluster URL, over plain http, is refused the same way" \
    "refusing to send the cluster's credentials over plain http to http://192.0.2.1:9094" \
    "$IPFSFS_BIN" -f --api="$PROXY_API_3" --cluster=http://someone:urlsecret@192.0.2.1:9094 \
    --store="$WORK/store7" "$WORK/m5"
check_fails_with "--replication on a plain Kubo (no cluster) is refused" "need IPFS Cluster" \
    "$IPFSFS_BIN" -f --api="$KUBO_API_2" --replication=2 --store="$WORK/store5" "$WORK/m5"
check_fails_with "--replication=3:1 is refused" "invalid --replication" \
    "$IPFSFS_BIN" -f --api="$PROXY_API_2" --replication=3:1 "$WORK/m5"
check_fails_with "--cluster with --write-through is refused" "--write-through" \
    "$IPFSFS_BIN" -f --api="$PROXY_API_2" --cluster="$REST_API_2" --write-through "$WORK/m5"

finish
