#!/usr/bin/env bash
# errors.sh - what programs see when things go wrong: bad names, wrong paths, writes, content
# that does not arrive, a node that is down, stalled or talking garbage, and bad command lines.
# Every error must come quickly (bounded by --timeout), with the errno from design.md, and the
# mount must survive it.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=build/src/ipfsfs tests/integration/errors.sh
#
# shellcheck source-path=SCRIPTDIR disable=SC2012,SC2317
# (SC2012: ls is one of the programs under test; SC2317: functions run through check)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
require_node
lib_init

TEST_CID=QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR   # "Test"
# Never added anywhere in this test: the node does not have them, and it is offline.
OFFLINE_V0=QmVkbauSDEaMP4Tkq6Epm9uW75mWm136n81YH8fGtfwdHU  # 1 MiB of zeros
OFFLINE_V1=bafkreiekhhjkxu4ztk3tyng3er3ijhg56mb44oe3gwbgquhzu4afrg2ksa  # 256 KiB of zeros, raw

if ! start_node node; then
    not_ok "the test node starts"
    finish
fi
ok "the test node starts ($NODE_API)"

DATA=$WORK/data
mkdir -p "$DATA/dd/sub/deeper"
printf Test >"$DATA/test"
printf 'hello\n' >"$DATA/dd/h.txt"
printf 'world\n' >"$DATA/dd/sub/w.txt"
printf 'deep\n' >"$DATA/dd/sub/deeper/x.txt"
printf 'later\n' >"$DATA/later1"
printf 'later, again\n' >"$DATA/later2"
printf 'after the restart\n' >"$DATA/later3"
FILE_CID=$(add_file "$DATA/test")
DIR_CID=$(add_dir "$DATA/dd")
DIR_V1=$(cid_as "$(add_dir "$DATA/dd" cid-version=1)" base32)
# Added now, looked up only once the node is down, stalled or back.
LATER1=$(add_file "$DATA/later1")
LATER2=$(add_file "$DATA/later2")
LATER3=$(add_file "$DATA/later3" cid-version=1)
# A directory whose second entry's content the node does not have.
python3 "$HELPER" dagpb-dir "$WORK/partial.bin" \
    "[[\"present.txt\",\"$TEST_CID\",12],[\"absent.bin\",\"$OFFLINE_V0\",1048832]]"
PARTIAL_CID=$(block_put "$WORK/partial.bin")
if [ "$FILE_CID" != "$TEST_CID" ] || [ -z "$DIR_CID" ] || [ -z "$DIR_V1" ] ||
    [ -z "$LATER1" ] || [ -z "$LATER2" ] || [ -z "$LATER3" ] || [ -z "$PARTIAL_CID" ]; then
    not_ok "content is added through the node's RPC" "file $FILE_CID dir $DIR_CID/$DIR_V1" \
        "later $LATER1 $LATER2 $LATER3 partial $PARTIAL_CID"
    finish
fi
ok "content is added through the node's RPC"

MNT=$WORK/mnt
if ! mount_ipfsfs "$MNT" --api="$NODE_API" --timeout=2; then
    not_ok "ipfsfs mounts with --timeout=2"
    finish
fi
ok "ipfsfs mounts with --timeout=2"

# ---- names that are not CIDs: ENOENT at once, no network wait ----------------------------------

BAD_NAMES=(
    hello
    Qm
    bafy
    ".hidden"
    "-rf"
    "name with spaces"
    "${TEST_CID%?}"            # one character removed
    "${TEST_CID}x"             # one character added
    "${TEST_CID%?}0"           # '0' is not in the base58 alphabet
    "${TEST_CID:0:10}"         # truncated
    "bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6e"   # base32, one char short
    "bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6euu" # base32, one char long
    "bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6e1"  # '1' is not base32
    "zb2rhcEzJd7tNktiuFFLAxw7jRrJoK8TJjCxC63xcTbTsQPR"             # base58 v1, one char short
    "f0155122053"              # base16, truncated multihash
    "k2cwueaq1gh6ilikd"        # base36, truncated
    "zzzz"
    ipfs                       # MFS paths /ipfs and /ipns mean something else to the node
    ipns
    "$(printf 'a%.0s' $(seq 255))" # 255 bytes
)
for name in "${BAD_NAMES[@]}"; do
    check_errno_within "stat MNT/${name:0:60}: ENOENT within 2 s" 2 ENOENT stat "$MNT/$name"
done
check_fails_with "stat MNT/hello says 'No such file or directory'" \
    "No such file or directory" stat "$MNT/hello"
check_fails_with "cat MNT/hello says 'No such file or directory'" \
    "No such file or directory" cat "$MNT/hello"
got=$(timeout 2 python3 "$HELPER" errno stat "$MNT/$(printf 'b%.0s' $(seq 300))")
if [ "$got" = ENOENT ] || [ "$got" = ENAMETOOLONG ]; then
    ok "stat MNT/<300-byte name>: $got within 2 s"
else
    not_ok "stat MNT/<300-byte name>: ENOENT or ENAMETOOLONG within 2 s" "got: $got"
fi
check_eq "a name looked up and refused leaves the root listing empty" "$(ls -A "$MNT" | wc -l)" 0

# ---- paths inside CIDs -------------------------------------------------------------------------

check_errno_within "MNT/<filecid>/x: ENOTDIR" 2 ENOTDIR stat "$MNT/$FILE_CID/x"
check_errno_within "MNT/<filecid>/x/y: ENOTDIR" 2 ENOTDIR stat "$MNT/$FILE_CID/x/y"
check_errno_within "MNT/<dircid>/h.txt/x: ENOTDIR" 2 ENOTDIR stat "$MNT/$DIR_CID/h.txt/x"
check_errno_within "MNT/<filecid>/ (trailing slash): ENOTDIR" 2 ENOTDIR stat "$MNT/$FILE_CID/"
# Content that is no file or directory (a dag-cbor node): ENOTSUP (EOPNOTSUPP, "Operation not
# supported"), not EIO (the node is fine).
CBOR_CID=$(echo '{"a":1}' | kubo dag put 2>&1)
check_errno_within "MNT/<dag-cbor CID>: ENOTSUP (EOPNOTSUPP)" 2 ENOTSUP stat "$MNT/$CBOR_CID"
check_errno_within "MNT/<dag-cbor CID>/a: ENOTSUP" 2 ENOTSUP stat "$MNT/$CBOR_CID/a"
check_fails_with "ls MNT/<filecid>/x says 'Not a directory'" "Not a directory" \
    ls "$MNT/$FILE_CID/x"
check_fails_with "cat MNT/<filecid>/x says 'Not a directory'" "Not a directory" \
    cat "$MNT/$FILE_CID/x"
check_errno_within "MNT/<dircid>/missing: ENOENT" 2 ENOENT stat "$MNT/$DIR_CID/missing"
check_errno_within "MNT/<dircid>/missing again (cached answer): ENOENT" 2 ENOENT \
    stat "$MNT/$DIR_CID/missing"
check_errno_within "MNT/<dircid>/H.txt (names are case-sensitive): ENOENT" 2 ENOENT \
    stat "$MNT/$DIR_CID/H.txt"
check_errno_within "MNT/<dircid>/sub/missing: ENOENT" 2 ENOENT stat "$MNT/$DIR_CID/sub/missing"
check_errno_within "MNT/<dircid>/missing/deeper: ENOENT" 2 ENOENT \
    stat "$MNT/$DIR_CID/missing/deeper"
check_errno_within "MNT/<dircidv1>/missing: ENOENT" 2 ENOENT stat "$MNT/$DIR_V1/missing"
check_fails_with "cat MNT/<dircid>/missing says 'No such file or directory'" \
    "No such file or directory" cat "$MNT/$DIR_CID/missing"
check_errno_within "reading a directory: EISDIR" 2 EISDIR read "$MNT/$DIR_CID"
check_fails_with "cat MNT/<dircid> says 'Is a directory'" "Is a directory" cat "$MNT/$DIR_CID"

# ---- everything under a CID is read-only ---------------------------------------------------------

D=$MNT/$DIR_CID
F=$D/h.txt
check_errno "create a file in a CID directory: EROFS" EROFS create "$D/new.txt"
check_errno "mkdir in a CID directory: EROFS" EROFS mkdir "$D/newdir"
check_errno "mknod (FIFO) in a CID directory: EROFS" EROFS mknod "$D/fifo"
check_errno "symlink in a CID directory: EROFS" EROFS symlink "$D/newlink" target
check_errno "hard link in a CID directory: EROFS" EROFS link "$F" "$D/h2.txt"
check_errno "unlink a file under a CID: EROFS" EROFS unlink "$F"
check_errno "rmdir a directory under a CID: EROFS" EROFS rmdir "$D/sub/deeper"
check_errno "rename inside a CID directory: EROFS" EROFS rename "$F" "$D/renamed.txt"
check_errno "open a file under a CID for writing: EROFS" EROFS open-write "$F"
check_errno "open a file under a CID read-write: EROFS" EROFS open-rdwr "$F"
check_errno "open a file under a CID with O_TRUNC: EROFS" EROFS open-trunc "$F"
check_errno "open a file under a CID for appending: EROFS" EROFS open-append "$F"
check_errno "open a root CID file for writing: EROFS" EROFS open-write "$MNT/$FILE_CID"
check_errno "truncate a file under a CID: EROFS" EROFS truncate "$F" 0
check_errno "chmod under a CID: EROFS" EROFS chmod "$F" 644
check_errno "chown under a CID: EROFS" EROFS chown "$F"
check_errno "set times under a CID: EROFS" EROFS utime "$F"
check_errno "setxattr under a CID: EROFS" EROFS setxattr "$F"
check_fails_with "touch MNT/<dircid>/x says 'Read-only file system'" "Read-only file system" \
    touch "$D/x"
check_fails_with "mkdir MNT/<dircid>/y says 'Read-only file system'" "Read-only file system" \
    mkdir "$D/y"
check_fails_with "rm MNT/<dircid>/h.txt says 'Read-only file system'" "Read-only file system" \
    rm -f "$F"
check_fails_with "rm -r MNT/<dircid>/sub says 'Read-only file system'" "Read-only file system" \
    rm -rf "$D/sub"
# shellcheck disable=SC2016 # $1 is for the inner shell
check_fails_with "echo >> MNT/<dircid>/h.txt says 'Read-only file system'" \
    "Read-only file system" sh -c 'echo more >>"$1"' sh "$F"
check_fails_with "cp into MNT/<dircid>/ says 'Read-only file system'" "Read-only file system" \
    cp "$DATA/test" "$D/"
check "after all that, the directory is unchanged" diff -r "$DATA/dd" "$D"

# ---- content that does not arrive in time: ETIMEDOUT within --timeout --------------------------

check_errno_within "stat of a CIDv0 the offline node lacks: ETIMEDOUT within 5 s" 5 ETIMEDOUT \
    stat "$MNT/$OFFLINE_V0"
check_errno_within "stat of a CIDv1 the offline node lacks: ETIMEDOUT within 5 s" 5 ETIMEDOUT \
    stat "$MNT/$OFFLINE_V1"
check_errno_within "the same CIDv0 again: ETIMEDOUT again (not cached as missing)" 5 ETIMEDOUT \
    stat "$MNT/$OFFLINE_V0"
check_fails_with "cat of a missing CID says 'Connection timed out'" "Connection timed out" \
    cat "$MNT/$OFFLINE_V0"
check_errno_within "a directory entry whose content is missing: ETIMEDOUT within 5 s" 5 \
    ETIMEDOUT read "$MNT/$PARTIAL_CID/absent.bin"
head -c 600000 /dev/urandom >"$WORK/holed"
HOLED=$(kubo add -Q --pin=false "$WORK/holed")
kubo block rm "$(kubo refs "$HOLED" | sed -n 2p)" >/dev/null
# shellcheck disable=SC2016 # $1 is for the inner shell
check_fails_with "a file whose leaf the offline node lacks: cat says 'Connection timed out'" \
    "Connection timed out" timeout -k 2 15 bash -c 'cat "$1" >/dev/null' sh "$MNT/$HOLED"
check_eq "the other entry of that directory still reads" \
    "$(timeout 10 cat "$MNT/$PARTIAL_CID/present.txt" 2>&1)" Test
check_eq "the mount still works after the timeouts" "$(timeout 10 cat "$MNT/$TEST_CID")" Test

# ---- the node stops, stalls, comes back --------------------------------------------------------

if kill -STOP "$NODE_PID"; then
    check_errno_within "node stopped (SIGSTOP): stat of a new CID fails within 6 s" 6 ETIMEDOUT \
        stat "$MNT/$LATER1"
    kill -CONT "$NODE_PID"
    check_eq "node continued (SIGCONT): that CID now reads" \
        "$(timeout 10 cat "$MNT/$LATER1" 2>&1)" later
fi
stop_node
check_errno_within "node gone (connection refused): stat of a new CID is EIO within 3 s" 3 EIO \
    stat "$MNT/$LATER2"
# Any name that is not a CID may be an MFS name, which only the node can answer for.
check_errno_within "node gone: a name that is not a CID fails at once (ENOENT or EIO)" 2 \
    "ENOENT|EIO" stat "$MNT/hello"
check_eq "node gone: the mount is still mounted" "$(mountpoint -q "$MNT" && echo yes)" yes
if REUSE_PORT=1 start_node node; then
    ok "the node restarts on the same port"
    check_eq "node back: the next call works (a CID that failed with EIO)" \
        "$(timeout 10 cat "$MNT/$LATER2" 2>&1)" "later, again"
    check_eq "node back: a CIDv1 never seen before" \
        "$(timeout 10 cat "$MNT/$(cid_as "$LATER3" base32)" 2>&1)" "after the restart"
else
    not_ok "the node restarts on the same port"
fi
check_unmount "unmount after all the errors; ipfsfs exits 0" "$MNT"

# ---- a hostile node (fault injection) ------------------------------------------------------------

# fake_node MODE: start a faulty proxy in front of the real node (see helper.py fake-node); sets
# FAKE_API.
fake_node() {
    local portfile=$WORK/fake-$1.port
    python3 "$HELPER" fake-node "$1" "$portfile" "http://127.0.0.1:$NODE_PORT" \
        2>>"$WORK/fake-$1.log" &
    track_pid $!
    wait_nonempty "$portfile"
    FAKE_API=/ip4/127.0.0.1/tcp/$(cat "$portfile")
}

for mode in garbage badjson error; do
    fake_node "$mode"
    M=$WORK/mnt-$mode
    if mount_ipfsfs "$M" --api="$FAKE_API" --timeout=2; then
        check_errno_within "node answers $mode: stat of a CID is EIO within 3 s" 3 EIO \
            stat "$M/$TEST_CID"
        check_errno_within "node answers $mode: stat of a CIDv1 is EIO within 3 s" 3 EIO \
            stat "$M/$OFFLINE_V1"
        check_errno_within "node answers $mode: a name that is not a CID fails at once" 2 \
            "ENOENT|EIO" stat "$M/hello"
        check_unmount "node answers $mode: unmount; ipfsfs exits 0" "$M"
    else
        not_ok "mounts against a node that answers $mode (version works)"
    fi
done

fake_node stall
M=$WORK/mnt-stall
if mount_ipfsfs "$M" --api="$FAKE_API" --timeout=2; then
    check_errno_within "node never answers: stat of a CID is ETIMEDOUT within 5 s" 5 ETIMEDOUT \
        stat "$M/$TEST_CID"
    check_errno_within "node never answers: again, within 5 s" 5 ETIMEDOUT \
        stat "$M/$OFFLINE_V1"
    check_unmount "node never answers: unmount; ipfsfs exits 0" "$M"
else
    not_ok "mounts against a node that stalls (version works)"
fi

# ---- startup failures: clear message, non-zero exit, nothing mounted -----------------------------

MX=$WORK/mnt-x
mkdir -p "$MX"
LIB_MOUNTS+=("$MX")
echo "$MX" >>"$WORK/mounts"

# start_fails DESC WANT_STATUS TEXT_RE ARG...: ipfsfs ARG... must exit WANT_STATUS (or any
# non-zero status with WANT_STATUS=nonzero) within 15 s, say something matching the extended
# regexp TEXT_RE (case-insensitive) on stderr, and leave nothing mounted.
start_fails() {
    local desc=$1 want=$2 re=$3 rc out
    shift 3
    timeout -k 2 15 "$IPFSFS_BIN" "$@" >"$WORK/start.out" 2>&1 </dev/null
    rc=$?
    out=$(cat "$WORK/start.out")
    if mountpoint -q "$MX"; then
        fusermount3 -u "$MX"
        not_ok "$desc" "it mounted (exit $rc): $out"
    elif [ "$rc" -eq 124 ]; then
        not_ok "$desc" "still running after 15 s: $*"
    elif { [ "$want" = nonzero ] && [ "$rc" -eq 0 ]; } ||
        { [ "$want" != nonzero ] && [ "$rc" -ne "$want" ]; }; then
        not_ok "$desc" "exit status $rc, want $want" "output: $out"
    elif ! grep -qiE -- "$re" <<<"$out"; then
        not_ok "$desc" "the message does not match /$re/:" "$out"
    else
        ok "$desc"
        diag "$(head -3 <<<"$out")"
    fi
}

CLOSED=$(free_port)
start_fails "--api at a closed port: exit 1 naming the address and how to start a node" 1 \
    "127\.0\.0\.1.*$CLOSED|$CLOSED.*daemon|daemon.*$CLOSED" --api="/ip4/127.0.0.1/tcp/$CLOSED" "$MX"
mkdir -p "$WORK/ipfs-path"
printf '/ip4/127.0.0.1/tcp/%s/http' "$CLOSED" >"$WORK/ipfs-path/api"
IPFS_PATH=$WORK/ipfs-path start_fails "IPFS_PATH/api at a closed port: exit 1 naming it" 1 \
    "$CLOSED" "$MX"
if ! curl -s -m 2 -X POST http://127.0.0.1:5001/api/v0/version >/dev/null 2>&1; then
    IPFS_PATH=$WORK/nowhere start_fails \
        "no --api, no IPFS_PATH/api: tries /ip4/127.0.0.1/tcp/5001 and says so" 1 5001 "$MX"
fi
printf 'this is not a multiaddr\n' >"$WORK/ipfs-path/api"
IPFS_PATH=$WORK/ipfs-path start_fails "IPFS_PATH/api holding garbage: exit 1" 1 \
    "multiaddr|not a multiaddr|$WORK/ipfs-path" "$MX"

for bad in "not-a-multiaddr" "/ip4/127.0.0.1" "/ip4/300.1.1.1/tcp/5001" \
    "/ip4/127.0.0.1/tcp/70000" "/ip4/127.0.0.1/udp/5001" "/ip4/127.0.0.1/tcp/" "/tcp/5001"; do
    start_fails "--api='$bad': exit 1 with a clear message" 1 \
        "multiaddr|address|$(sed 's/[][\.*^$/]/\\&/g' <<<"$bad")" --api="$bad" "$MX"
done
start_fails "-o api=garbage: exit 1" 1 "multiaddr|address|garbage" -o api=garbage "$MX"

fake_node badversion
start_fails "a node whose version reply is garbage: exit 1" 1 "version|garbage|json|answer|node" \
    --api="$FAKE_API" "$MX"

start_fails "--timeout=abc is refused" nonzero "timeout" --api="$NODE_API" --timeout=abc "$MX"
start_fails "--timeout=-1 is refused" nonzero "timeout" --api="$NODE_API" --timeout=-1 "$MX"
start_fails "--cache-size=12X is refused" nonzero "cache" --api="$NODE_API" --cache-size=12X "$MX"
start_fails "--cache-size=99999999999G (overflows 64 bits) is refused" nonzero "cache" \
    --api="$NODE_API" --cache-size=99999999999G "$MX"
start_fails "--cache-size=1M5 is refused" nonzero "cache" --api="$NODE_API" --cache-size=1M5 "$MX"
start_fails "--dir-cache=lots is refused" nonzero "dir-cache|cache" --api="$NODE_API" \
    --dir-cache=lots "$MX"
start_fails "--readahead=-5M is refused" nonzero "readahead" --api="$NODE_API" \
    --readahead=-5M "$MX"
start_fails "--log-level=loud is refused" nonzero "log" --api="$NODE_API" --log-level=loud "$MX"
start_fails "an unknown option is refused" nonzero "bogus|unknown|invalid|usage" \
    --api="$NODE_API" --bogus "$MX"
start_fails "no mountpoint: usage" nonzero "usage|mountpoint" --api="$NODE_API"
if mount_ipfsfs "$WORK/mnt-twice" --api="$NODE_API"; then
    out=$(timeout 15 "$IPFSFS_BIN" --api="$NODE_API" "$WORK/mnt-twice" 2>&1 </dev/null)
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qi "already" <<<"$out"; then
        ok "a second mount on the same mount point is refused"
    else
        not_ok "a second mount on the same mount point is refused" "exit $rc" "$out"
    fi
    check_eq "the first mount still works" "$(timeout 10 cat "$WORK/mnt-twice/$TEST_CID")" Test
    check_unmount "unmount the first mount; ipfsfs exits 0" "$WORK/mnt-twice"
else
    not_ok "mount for the second-mount check"
fi
start_fails "too many arguments are refused" nonzero "too many|usage|argument" \
    --api="$NODE_API" one two "$MX"
start_fails "a mountpoint that does not exist is refused" nonzero \
    "no such file|does not exist|mountpoint|$WORK/nonexistent" --api="$NODE_API" \
    "$WORK/nonexistent"

# ---- an online node looks for content nobody has, until its deadline ---------------------------
# Kubo answers "context deadline exceeded" when --timeout passes. The kernel runs the lookups of
# one name one after the other: four programs asking at once must not wait one --timeout each in
# turn (12 s here), nor file(1), which looks a name up three times. A node that was stopped says
# nothing (no deadline of its own passed): that CID reads as soon as it continues (above).
if IPFS_ONLINE=1 start_node online; then
    ok "an online node starts (it looks for content it lacks until the deadline)"
    MO=$WORK/mnt-online
    if mount_ipfsfs "$MO" --api="$NODE_API" --timeout=3; then
        head -c 1000 /dev/urandom >"$WORK/nobody-has"
        NOBODY=$(kubo add -Q --only-hash "$WORK/nobody-has")
        t0=$(now)
        got=$(timeout -k 2 30 python3 -c '
import errno, os, sys, threading
out = []
def one(p):
    try:
        os.stat(p); out.append("OK")
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
ts = [threading.Thread(target=one, args=(sys.argv[1],)) for _ in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print(" ".join(sorted(out)))' "$MO/$NOBODY" 2>&1)
        all=$(elapsed "$t0")
        if [ "$got" = "ETIMEDOUT ETIMEDOUT ETIMEDOUT ETIMEDOUT" ] && lt "$all" 6; then
            ok "one CID nobody has, four lookups at once: all ETIMEDOUT within 6 s ($all s)"
        else
            not_ok "one CID nobody has, four lookups at once: all ETIMEDOUT within 6 s" \
                "got: $got, after $all s in all"
        fi
        sleep 2.5
        check_errno_within "the same CID later: the node is asked again (ETIMEDOUT after the timeout)" \
            6 ETIMEDOUT stat "$MO/$NOBODY"
        kubo add -Q "$WORK/nobody-has" >/dev/null
        sleep 2.5
        check "added to the node meanwhile: the next read gives it" \
            timeout -k 2 10 cmp "$MO/$NOBODY" "$WORK/nobody-has"
        # A file whose second leaf nobody has: the kernel lets one reader of a page try it at a
        # time, so four programs reading it at once must not wait one --timeout each (5, 11,
        # 16, 21 s) either.
        head -c 600000 /dev/urandom >"$WORK/holed"
        HOLED=$(kubo add -Q --pin=false "$WORK/holed")
        kubo block rm "$(kubo refs "$HOLED" | sed -n 2p)" >/dev/null
        t0=$(now)
        pids=()
        for i in 1 2 3 4; do
            (timeout -k 2 40 cat "$MO/$HOLED" >/dev/null 2>"$WORK/holed.err$i"; echo $? >"$WORK/holed.rc$i") &
            pids+=($!)
        done
        wait "${pids[@]}"
        all=$(elapsed "$t0")
        rcs=$(cat "$WORK"/holed.rc? | tr '\n' ' ')
        if [ "$rcs" = "1 1 1 1 " ] && lt "$all" 8 && grep -q "timed out" "$WORK/holed.err1"; then
            ok "a file missing a leaf, four readers at once: all fail (ETIMEDOUT) within 8 s ($all s)"
        else
            not_ok "a file missing a leaf, four readers at once: all fail (ETIMEDOUT) within 8 s" \
                "exit codes: $rcs after $all s" "$(cat "$WORK/holed.err1")"
        fi
        check_unmount "online node: unmount; ipfsfs exits 0" "$MO"
    else
        not_ok "mounts against the online node"
    fi
    stop_node
else
    not_ok "an online node starts"
fi

finish
