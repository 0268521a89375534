#!/usr/bin/env bash
# bench-cluster.sh - copying in on IPFS Cluster: ipfsfs on a cluster peer's proxy, against the
# cluster's own add, side by side in one run (issue 16).
#
# Three Kubo nodes and three cluster peers on loopback (tests/node/start-cluster.sh). For each
# round, a fresh variant of the 1,000-file tree (mktree.py) and a 64 MiB file:
#   ipfsfs:  cp -r TREE MNT/ (then cp FILE MNT/) and fsync with --replication-wait (returns once
#            the cluster has the names on MIN peers), timed from the start of cp;
#   direct:  `ipfs-cluster-ctl add -r --rmin MIN --rmax MAX --wait` of the same folder (the
#            cluster's own import: it chunks, sends the blocks to the allocated peers and pins),
#            then until its status says PINNED on MIN peers.
# Prints both, and the ratio ipfsfs / direct (a time: lower is better). There is no target in the
# issue: this shows what pinning each root through the REST API costs against the cluster's own
# import path.
#
# Usage: tests/bench/bench-cluster.sh   (BENCH_ROUNDS, default 2)
#
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bench_require
bench_init bench-cluster
ROUNDS=${BENCH_ROUNDS:-2}
MIN=2 MAX=2

out=$("$IPFSFS_NODE_DIR/start-cluster.sh" "$WORK/cluster" 3) || die "the cluster did not start"
eval "$(grep -E '^[A-Z_0-9]+=' <<<"$out")"
for i in 1 2 3; do
    k=KUBO_PID_$i c=CLUSTER_PID_$i
    track_pid "${!k}"
    track_pid "${!c}"
done
note "cluster: 3 Kubo + 3 cluster peers; proxy $PROXY_API_1, REST $REST_API_1"

# pinned_on CID: peers that say PINNED
pinned_on() {
    "$CLUSTER_CTL" --host "/ip4/127.0.0.1/tcp/${REST_API_1##*:}" status "$1" 2>/dev/null |
        grep -c ': PINNED' || true
}
wait_min() {
    for _ in $(seq 1 600); do
        [ "$(pinned_on "$1")" -ge "$MIN" ] && return 0
        sleep 0.1
    done
    return 1
}
fsync_path() { python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$1"; }

MNT=$WORK/mnt
mount_fs_cluster() {
    BENCH_NO_API=1 mount_fs "$MNT" --api="$PROXY_API_1" --cluster="$REST_API_1" \
        --replication=$MIN:$MAX --replication-wait --store="$WORK/store" --timeout=120
}
mount_fs_cluster

declare -a T_FS=() T_DIRECT=()
for r in $(seq 1 "$ROUNDS"); do
    for who in fs direct; do
        src=$WORK/src-$who-$r
        mkdir -p "$src"
        v=$((2 * r))
        [ "$who" = fs ] || v=$((v + 1))
        python3 "$BENCH_LIB_DIR/mktree.py" tree "$src/tree" --variant "$v" >/dev/null ||
            die "mktree.py failed"
        head -c $((64 << 20)) /dev/urandom >"$src/big"
        sync
        if [ "$who" = fs ]; then
            t0=$(now_ns)
            if ! { cp -r "$src/tree" "$MNT/tree-$r" && cp "$src/big" "$MNT/big-$r" &&
                fsync_path "$MNT/big-$r"; }; then
                die "cp + fsync through the mount failed"
            fi
            t=$(secs_since "$t0")
            T_FS+=("$t")
            note "round $r: ipfsfs cp -r + cp + fsync (replicated on $MIN): $t s"
        else
            t0=$(now_ns)
            cid=$("$CLUSTER_CTL" --host "/ip4/127.0.0.1/tcp/${REST_API_1##*:}" add -r -Q \
                --rmin $MIN --rmax $MAX --wait "$src") || die "ipfs-cluster-ctl add failed"
            wait_min "$cid" || die "the cluster did not pin $cid on $MIN peers"
            t=$(secs_since "$t0")
            T_DIRECT+=("$t")
            note "round $r: ipfs-cluster-ctl add -r --wait + PINNED on $MIN: $t s ($cid)"
        fi
    done
done
fs=$(median "${T_FS[@]}")
direct=$(median "${T_DIRECT[@]}")
record "tree+64MiB replicated (s)" "$fs" "$direct" "$(calc "$fs / $direct")" "(none; time ratio)" "-"
bench_done
