#!/usr/bin/env bash
# bench-cp.sh - writing a large file: cp into the mount (spool, then add on close(2), then link
# the name in MFS) vs posting the same file to the node's add (multipart, curl) in the same run.
#
#   cp FILE MNT/name        vs  curl -X POST -F file=@FILE "$URL/add?pin=true"
#   target: ipfsfs >= 0.9 x curl (issue 11)
#
# Each file is written both ways, in both orders (file A: curl first; file B: cp first), since
# the second add of the same bytes may find its blocks already stored. Both ways must give the
# same CID. One more copy, done by a small Python loop, splits the cp time into the write(2)
# phase (spooling) and the close(2) phase (add + link).
#
# Environment: BENCH_CP_SIZE (default 128M), BENCH_FS_ARGS (extra ipfsfs options), and those
# of lib.sh.
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE=$(to_bytes "${BENCH_CP_SIZE:-128M}")
read -r -a EXTRA <<<"${BENCH_FS_ARGS:-}"

bench_require cp
bench_init bench-cp
start_node

note "generating 3 x $SIZE random bytes"
for f in A B C; do
    gen_file "$WORK/$f" "$SIZE"
done
MNT=$WORK/mnt
mkdir -p "$WORK/spool"
mount_fs "$MNT" --spool-dir="$WORK/spool" "${EXTRA[@]}"

# cid_of PATH: the CID the mount reports for a name
cid_of() { getfattr --absolute-names --only-values -n user.ipfs.cid "$1" 2>/dev/null; }

# one_cp FILE NAME: time cp FILE MNT/NAME; sets CP_SECS, CP_CID; notes the CPU the node and
# ipfsfs used.
one_cp() {
    local n0 f0
    sync
    n0=$(cpu_secs "$NODE_PID")
    f0=$(cpu_secs "$FS_PID")
    timed CP_SECS cp "$1" "$MNT/$2" || die "cp $1 $MNT/$2 failed"
    CP_CID=$(cid_of "$MNT/$2")
    note "cp   $(basename "$1"): $CP_SECS s, $(mbps "$SIZE" "$CP_SECS") MB/s; cpu: node $(calc "$(cpu_secs "$NODE_PID") - $n0" %.2f) s, ipfsfs $(calc "$(cpu_secs "$FS_PID") - $f0" %.2f) s; $CP_CID"
}

# one_curl FILE: time the direct add; sets CURL_SECS, CURL_CID.
one_curl() {
    local n0
    sync
    n0=$(cpu_secs "$NODE_PID")
    add_file_to CURL_CID "$1"
    CURL_SECS=$ADD_SECS
    note "curl $(basename "$1"): $CURL_SECS s, $(mbps "$SIZE" "$CURL_SECS") MB/s; cpu: node $(calc "$(cpu_secs "$NODE_PID") - $n0" %.2f) s"
}

say "-- file A: curl, then cp"
one_curl "$WORK/A"
CURL_A=$CURL_SECS
one_cp "$WORK/A" a
CP_A=$CP_SECS
[ "$CP_CID" = "$CURL_CID" ] || note "CID MISMATCH for A: cp $CP_CID, curl $CURL_CID"

say "-- file B: cp, then curl"
one_cp "$WORK/B" b
CP_B=$CP_SECS
one_curl "$WORK/B"
CURL_B=$CURL_SECS
[ "$CP_CID" = "$CURL_CID" ] || note "CID MISMATCH for B: cp $CP_CID, curl $CURL_CID"

say "-- file C: write(2) phase vs close(2) phase (Python, 1 MiB writes)"
sync
show python3 - "$WORK/C" "$MNT/c" <<'PY'
import os, sys, time
src, dst = sys.argv[1], sys.argv[2]
t0 = time.monotonic()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
t1 = time.monotonic()
n = 0
with open(src, "rb") as f:
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        os.write(fd, b)
        n += len(b)
t2 = time.monotonic()
os.close(fd)
t3 = time.monotonic()
print("# open %.3f s, write %.3f s (%.1f MB/s), close (add + link) %.3f s (%.1f MB/s), total %.3f s (%.1f MB/s)"
      % (t1 - t0, t2 - t1, n / (t2 - t1) / 1e6, t3 - t2, n / (t3 - t2) / 1e6, t3 - t0, n / (t3 - t0) / 1e6))
PY

CP_MBPS=$(mbps $((2 * SIZE)) "$(calc "$CP_A + $CP_B" %.4f)")
CURL_MBPS=$(mbps $((2 * SIZE)) "$(calc "$CURL_A + $CURL_B" %.4f)")
R=$(calc "$CP_MBPS / $CURL_MBPS")
note "cp:   A $(mbps "$SIZE" "$CP_A") MB/s (second), B $(mbps "$SIZE" "$CP_B") MB/s (first)"
note "curl: A $(mbps "$SIZE" "$CURL_A") MB/s (first), B $(mbps "$SIZE" "$CURL_B") MB/s (second)"
note "same position: first adds cp/curl = $(calc "$CURL_A / $CP_B"), second adds cp/curl = $(calc "$CURL_B / $CP_A")"
record "cp of $((SIZE / 1048576)) MiB, MB/s" "$CP_MBPS" "$CURL_MBPS" "$R" "ratio >= 0.9" "$(verdict "$R >= 0.9")"
print_stats
bench_done
