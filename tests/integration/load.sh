#!/usr/bin/env bash
# load.sh - many programs at once: 32 parallel readers (whole files with the page cache
# dropped first, random ranges, directory walks) over ~20 files of 1 KiB..8 MiB in a small
# tree, plus 4 parallel writers copying files into the mount, for a bounded time. Every
# checksum must be right, every written name must read back and carry the CID the node
# computes for the same bytes, the sanitizer log must stay clean (run it with an ASan+UBSan
# build), and the peak memory (VmHWM) must stay within --cache-size + 64 MiB.
# The memory bound is checked on a build without sanitizers (ASan's shadow memory and
# quarantine alone add ~60-400 MiB): the main run's binary if it has none, else a second,
# shorter run of LOAD_PLAIN_BIN. Then a shorter run of LOAD_PLAIN_BIN under valgrind
# --leak-check=full.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=/tmp/buildG/src/ipfsfs LOAD_PLAIN_BIN=/tmp/buildG2/src/ipfsfs \
#       tests/integration/load.sh
# Environment: LOAD_SECONDS (default 30) the main run, LOAD_MEMORY_SECONDS (default 20) the
# memory run, LOAD_VALGRIND_SECONDS (default 12); LOAD_PLAIN_BIN a build without sanitizers
# for the memory and valgrind runs (default: IPFSFS_BIN when it has none; "none" skips them);
# LOAD_CACHE_MIB (default 32) the --cache-size.
#
# shellcheck source-path=SCRIPTDIR disable=SC2317
# (SC2317: functions run through check and the trap)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
require_node
lib_init

DURATION=${LOAD_SECONDS:-30}
VG_DURATION=${LOAD_VALGRIND_SECONDS:-12}
MEM_DURATION=${LOAD_MEMORY_SECONDS:-20}
CACHE_MIB=${LOAD_CACHE_MIB:-32}
READERS=32
WRITERS=4

is_sanitized() { grep -qa '__asan_init\|__ubsan_handle\|__tsan_init' "$1" 2>/dev/null; }
if is_sanitized "$IPFSFS_BIN"; then
    diag "the binary has sanitizers: reports end up in the mount's log, which is checked"
else
    diag "the binary has no sanitizers: this run checks data and memory only"
fi
PLAIN_BIN=${LOAD_PLAIN_BIN:-}
if [ -z "$PLAIN_BIN" ] && ! is_sanitized "$IPFSFS_BIN"; then PLAIN_BIN=$IPFSFS_BIN; fi
[ "$PLAIN_BIN" = none ] && PLAIN_BIN=
if [ -n "$PLAIN_BIN" ] && [ ! -x "$PLAIN_BIN" ]; then
    say "Bail out! LOAD_PLAIN_BIN=$PLAIN_BIN is not an executable"
    exit 99
fi

if ! start_node node; then
    not_ok "the test node starts"
    finish
fi
ok "the test node starts ($NODE_API)"

# ---- content: ~20 files in a tree, and the writers' files -----------------------------------

T=$WORK/tree
mkdir -p "$T/docs/old" "$T/media" "$T/media/big" "$T/src"
i=0
for spec in docs/a.txt:1024 docs/b.txt:4096 docs/old/c.txt:10000 docs/old/d.bin:65536 \
    src/e.c:100000 src/f.c:262143 src/g.o:262144 src/h.o:262145 media/i.jpg:500000 \
    media/j.jpg:1048576 media/k.png:1500000 media/l.png:2097152 media/big/m.mp4:3000000 \
    media/big/n.mp4:4194304 media/big/o.mp4:5000000 media/big/p.mp4:6291456 \
    media/big/q.mp4:7340032 media/big/r.mp4:8388608 docs/s.md:1 docs/t.md:777; do
    i=$((i + 1))
    gen_file "$T/${spec%%:*}" "${spec##*:}" "$i"
done
ROOT=$(add_dir "$T" "" "$WORK/tree")
if [ -z "$ROOT" ]; then
    not_ok "the tree is added"
    finish
fi
# manifest: relpath <TAB> cid <TAB> size <TAB> sha256 (files only)
while IFS=$'\t' read -r path cid; do
    rel=${path#tree/}
    [ -f "$T/$rel" ] || continue
    printf '%s\t%s\t%s\t%s\n' "$rel" "$cid" "$(stat -c %s "$T/$rel")" \
        "$(sha256sum <"$T/$rel" | cut -d' ' -f1)"
done <"$WORK/tree.map" >"$WORK/manifest"
ok "a tree of $(wc -l <"$WORK/manifest") files ($(du -sm "$T" | cut -f1) MiB) is added ($ROOT)"

W=$WORK/wfiles
mkdir -p "$W"
: >"$WORK/wmanifest"
for k in $(seq 1 $WRITERS); do
    for j in 1 2 3 4 5 6; do
        f=$W/w$k-$j
        gen_file "$f" $(((k * 7919 + j * 104729) % (3 << 20) + 1)) $((100 + k * 10 + j))
        cid=$(add_file "$f" only-hash=true)
        printf 'w%s-%s\t%s\n' "$k" "$j" "$cid" >>"$WORK/wmanifest"
    done
done
ok "the writers' $((WRITERS * 6)) files are ready (their CIDs from add?only-hash=true)"

# ---- the programs ---------------------------------------------------------------------------

cat >"$WORK/reader.py" <<'PY'
"""reader.py MODE SEED SECONDS MANIFEST MNT ROOT LOCALTREE: read until the time is up; print
'ops N fail M' and the first failures."""
import hashlib, os, random, sys, time

mode, seed, secs, manifest, mnt, root, local = sys.argv[1:8]
rnd = random.Random(int(seed))
deadline = time.monotonic() + float(secs)
files = [l.rstrip("\n").split("\t") for l in open(manifest, encoding="utf-8")]
ops = fail = 0
notes = []


def bad(msg):
    global fail
    fail += 1
    if len(notes) < 5:
        notes.append(msg)


while time.monotonic() < deadline:
    rel, cid, size, digest = rnd.choice(files)
    size = int(size)
    # by path through the tree, or by the file's own CID at the root
    path = os.path.join(mnt, root, rel) if rnd.random() < 0.6 else os.path.join(mnt, cid)
    try:
        if mode == "whole":
            with open(path, "rb") as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                h = hashlib.sha256()
                while True:
                    b = f.read(1 << 17)
                    if not b:
                        break
                    h.update(b)
            if h.hexdigest() != digest:
                bad("%s: sha256 differs" % path)
        elif mode == "range":
            with open(os.path.join(local, rel), "rb") as f:
                want = f.read()
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                for _ in range(8):
                    off = rnd.randrange(size + 1)
                    n = rnd.randrange(1, 600000)
                    if os.pread(fd, n, off) != want[off:off + n]:
                        bad("%s: pread(%d, %d) differs" % (path, n, off))
            finally:
                os.close(fd)
        else:  # dirs: walk the tree, every file's size must match
            seen = {}
            for d, _, names in os.walk(os.path.join(mnt, root)):
                for n in names:
                    p = os.path.join(d, n)
                    seen[os.path.relpath(p, os.path.join(mnt, root))] = os.stat(p).st_size
            want = {r: int(s) for r, _, s, _ in files}
            if seen != want:
                bad("walk: %d entries, %d expected or sizes differ" % (len(seen), len(want)))
        ops += 1
    except OSError as e:
        bad("%s: %s" % (path, e))
print("ops %d fail %d" % (ops, fail))
for n in notes:
    print("  " + n)
PY

# writer K SECONDS: copy its files into the mount in turn until the time is up; check each.
writer() {
    local k=$1 secs=$2 end n=0 failn=0 j name cid want
    end=$(($(date +%s) + secs))
    while [ "$(date +%s)" -lt "$end" ]; do
        for j in 1 2 3 4 5 6; do
            name=w$k-$j
            want=$(awk -v n="$name" '$1 == n { print $2 }' "$WORK/wmanifest")
            n=$((n + 1))
            if ! timeout -k 5 60 cp "$W/$name" "$MNTL/$name.$n" 2>>"$WORK/writer$k.err"; then
                failn=$((failn + 1))
                echo "cp $name.$n failed" >>"$WORK/writer$k.err"
                continue
            fi
            cid=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$MNTL/$name.$n" 2>&1)
            if [ "$cid" != "$want" ]; then
                failn=$((failn + 1))
                echo "$name.$n: user.ipfs.cid $cid, the node says $want" >>"$WORK/writer$k.err"
            fi
            if ! timeout -k 5 60 cmp -s "$MNTL/$name.$n" "$W/$name" ||
                ! timeout -k 5 60 cmp -s "$MNTL/$want" "$W/$name"; then
                failn=$((failn + 1))
                echo "$name.$n: reads back different (by name or by CID)" >>"$WORK/writer$k.err"
            fi
            [ "$(date +%s)" -lt "$end" ] || break
        done
    done
    echo "ops $n fail $failn"
}

# run_load MNT SECONDS NREADERS NWRITERS: start everything, wait, check every report.
run_load() {
    local mnt=$1 secs=$2 nr=$3 nw=$4 r k mode pids=() out fails=0 ops=0 f
    MNTL=$mnt
    for r in $(seq 1 "$nr"); do
        case $((r % 8)) in 0) mode=dirs ;; 1 | 2) mode=range ;; *) mode=whole ;; esac
        timeout -k 5 $((secs + 90)) python3 "$WORK/reader.py" "$mode" "$r" "$secs" \
            "$WORK/manifest" "$mnt" "$ROOT" "$T" >"$WORK/reader$r.out" 2>&1 &
        pids+=($!)
    done
    for k in $(seq 1 "$nw"); do
        : >"$WORK/writer$k.err"
        writer "$k" "$secs" >"$WORK/writer$k.out" 2>&1 &
        pids+=($!)
    done
    PEAK_RSS=0
    local t_end=$(($(date +%s) + secs + 100)) rss
    while [ "$(date +%s)" -lt "$t_end" ]; do
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/${MOUNT_PID[$mnt]}/status" 2>/dev/null)
        [ -n "$rss" ] && [ "$rss" -gt "$PEAK_RSS" ] && PEAK_RSS=$rss
        local running=0 p
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
        [ "$running" -eq 0 ] && break
        sleep 0.5
    done
    for p in "${pids[@]}"; do
        kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for f in "$WORK"/reader*.out "$WORK"/writer*.out; do
        out=$(head -1 "$f")
        if [[ $out =~ ^ops\ ([0-9]+)\ fail\ ([0-9]+)$ ]]; then
            ops=$((ops + BASH_REMATCH[1]))
            fails=$((fails + BASH_REMATCH[2]))
        else
            fails=$((fails + 1))
            diag "$(basename "$f"): no report (killed, or crashed): $(head -3 "$f")"
        fi
    done
    LOAD_OPS=$ops
    LOAD_FAILS=$fails
    if [ "$fails" -gt 0 ]; then
        for f in "$WORK"/reader*.out; do sed -n '2,4p' "$f"; done | head -10 | sed 's/^/# /'
        cat "$WORK"/writer*.err | head -10 | sed 's/^/# /'
    fi
    rm -f "$WORK"/reader*.out "$WORK"/writer*.out
}

# memory_report MNT check|diag: peak memory of the mount's process (VmHWM) against
# --cache-size + 64 MiB, as a check or only as a note (sanitizer builds).
memory_report() {
    local mnt=$1 how=$2 pid hwm limit
    pid=${MOUNT_PID[$mnt]}
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
    limit=$(((CACHE_MIB + 64) * 1024))
    diag "memory: VmHWM ${hwm:-?} KiB, largest VmRSS sampled $PEAK_RSS KiB, limit $limit KiB" \
        "$(getfattr --only-values -n user.ipfsfs.stats "$mnt" 2>/dev/null |
            grep -E '^(cache_bytes|cache_evictions|cache_hits|cache_misses|cache_waits|rpc_requests|rpc_errors|dircache_bytes|inodes) ' |
            tr '\n' ' ')"
    if [ "$how" = diag ]; then
        diag "(sanitizer build: its shadow memory and quarantine are in that figure; the bound" \
            "is checked on the build without sanitizers)"
    elif [ -n "$hwm" ] && [ "$hwm" -le "$limit" ]; then
        ok "peak memory $((hwm / 1024)) MiB is within --cache-size + 64 MiB ($((limit / 1024)) MiB)"
    else
        not_ok "peak memory is within --cache-size + 64 MiB ($((limit / 1024)) MiB)" \
            "VmHWM ${hwm:-?} KiB"
    fi
}

# ---- 1. the main run ------------------------------------------------------------------------

MNT=$WORK/mnt
if ! mount_ipfsfs "$MNT" --api="$NODE_API" --timeout=20 --cache-size="${CACHE_MIB}M"; then
    not_ok "ipfsfs mounts"
    finish
fi
ok "ipfsfs mounts (--cache-size=${CACHE_MIB}M)"
PID=${MOUNT_PID[$MNT]}
t0=$(now)
run_load "$MNT" "$DURATION" "$READERS" "$WRITERS"
diag "$LOAD_OPS operations in $(elapsed "$t0") s"
if [ "$LOAD_FAILS" -eq 0 ] && [ "$LOAD_OPS" -gt $((READERS + WRITERS)) ]; then
    ok "$READERS readers + $WRITERS writers for $DURATION s: every checksum, CID and read-back right ($LOAD_OPS operations)"
else
    not_ok "$READERS readers + $WRITERS writers for $DURATION s: every checksum, CID and read-back right" \
        "$LOAD_FAILS failures in $LOAD_OPS operations"
fi
if kill -0 "$PID" 2>/dev/null && mountpoint -q "$MNT"; then
    ok "after the load: ipfsfs is running and mounted"
else
    not_ok "after the load: ipfsfs is running and mounted" "$(tail -20 "${MOUNT_LOG[$MNT]}")"
fi
if is_sanitized "$IPFSFS_BIN"; then
    memory_report "$MNT" diag
else
    memory_report "$MNT" check
fi
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:' \
    "${MOUNT_LOG[$MNT]}"; then
    not_ok "no sanitizer report during the load" \
        "$(grep -A 20 -E 'ERROR: |WARNING: |runtime error:' "${MOUNT_LOG[$MNT]}" | head -30)"
else
    ok "no sanitizer report during the load"
fi
check_unmount "unmount after the load: ipfsfs exits 0, no leak or error reported at exit" "$MNT"

# ---- 2. the memory bound, without sanitizers --------------------------------------------------

if is_sanitized "$IPFSFS_BIN"; then
    if [ -z "$PLAIN_BIN" ]; then
        say "ok - memory run # SKIP no binary without sanitizers (set LOAD_PLAIN_BIN)"
    else
        saved_bin=$IPFSFS_BIN
        IPFSFS_BIN=$PLAIN_BIN
        PM=$WORK/mnt-plain
        if mount_ipfsfs "$PM" --api="$NODE_API" --timeout=20 --cache-size="${CACHE_MIB}M"; then
            run_load "$PM" "$MEM_DURATION" "$READERS" "$WRITERS"
            if [ "$LOAD_FAILS" -eq 0 ] && [ "$LOAD_OPS" -gt 0 ]; then
                ok "plain build: $READERS readers + $WRITERS writers for $MEM_DURATION s, all right ($LOAD_OPS operations)"
            else
                not_ok "plain build: the same load, all right" \
                    "$LOAD_FAILS failures in $LOAD_OPS operations"
            fi
            memory_report "$PM" check
            check_unmount "plain build: unmount; ipfsfs exits 0" "$PM"
        else
            not_ok "the build without sanitizers mounts ($PLAIN_BIN)"
        fi
        IPFSFS_BIN=$saved_bin
    fi
fi

# ---- 3. under valgrind --------------------------------------------------------------------------

if [ -z "$PLAIN_BIN" ]; then
    say "ok - valgrind run # SKIP no binary without sanitizers (set LOAD_PLAIN_BIN)"
elif ! command -v valgrind >/dev/null 2>&1; then
    say "ok - valgrind run # SKIP valgrind is not installed"
else
    VM=$WORK/mnt-vg
    saved_bin=$IPFSFS_BIN
    IPFSFS_BIN=$PLAIN_BIN
    IPFSFS_WRAPPER="valgrind --leak-check=full --error-exitcode=3 --num-callers=30"
    if mount_ipfsfs "$VM" --api="$NODE_API" --timeout=30 --cache-size="${CACHE_MIB}M"; then
        ok "ipfsfs mounts under valgrind ($PLAIN_BIN)"
        run_load "$VM" "$VG_DURATION" 8 1
        if [ "$LOAD_FAILS" -eq 0 ] && [ "$LOAD_OPS" -gt 0 ]; then
            ok "valgrind: 8 readers + 1 writer for $VG_DURATION s, all right ($LOAD_OPS operations)"
        else
            not_ok "valgrind: 8 readers + 1 writer for $VG_DURATION s, all right" \
                "$LOAD_FAILS failures in $LOAD_OPS operations"
        fi
        check_unmount "valgrind: unmount; no memory error and no leak (exit status 0, not 3)" "$VM"
        diag "valgrind's summary:" \
            "$(grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|in use at exit|All heap blocks' \
                "${MOUNT_LOG[$VM]}" | sed 's/^==[0-9]*== //')"
    else
        not_ok "ipfsfs mounts under valgrind"
    fi
    IPFSFS_BIN=$saved_bin
    IPFSFS_WRAPPER=
fi

finish
