#!/usr/bin/env bash
# hostile.sh - content crafted to hurt: directory blocks with names that must never reach a
# program ("", ".", "..", "a/b", a NUL, a 300-byte name, duplicates, invalid UTF-8, a name
# that forges log lines), files whose declared size disagrees with their data, a 2^64-1 byte
# file, a path 200 directories deep, symlinks pointing out of the mount, looping, or too long,
# blocks that are not UnixFS at all, and a file root whose size takes quadratic time to add up.
# Blocks are encoded here by hand (dag-pb + UnixFS) and stored with block/put.
#
# What must hold: bad names are hidden (only the good ones are listed, lookups of the bad
# ones fail), nothing resolves outside the mount by our doing (a symlink shows its target text
# and the kernel resolves it like any other), inconsistent content gives an error rather than
# wrong bytes, every answer comes in bounded time, and ipfsfs neither crashes nor leaks (the
# unmount checks its exit status and the sanitizer log).
#
# The blocks are crafted and stored through the test node (Kubo); with IPFSFS_BACKEND=store
# (hostile-store.sh) they are then copied into an embedded store, each block verified against
# its CID, and the same checks run on a mount of the store.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=/tmp/buildG/src/ipfsfs tests/integration/hostile.sh
# Environment: HOSTILE_DEPTH (default 200) nested directories; HOSTILE_QUAD_N (default 40000)
# blocksizes in the quadratic-size file.
#
# shellcheck source-path=SCRIPTDIR disable=SC2317
# (SC2317: functions run through check and the trap)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
require_node
lib_init

DEPTH=${HOSTILE_DEPTH:-200}
QUAD_N=${HOSTILE_QUAD_N:-40000}

if ! start_node node; then
    not_ok "the test node starts"
    finish
fi
ok "the test node starts ($NODE_API)"

# ---- crafting the blocks ------------------------------------------------------------------------

# craft.py URL DEPTH QUAD_N: add and block/put everything; print KEY=VALUE lines.
cat >"$WORK/craft.py" <<'PY'
import base64, json, sys, urllib.request, uuid

URL, DEPTH, QUAD_N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(s):
    n = 0
    for ch in s:
        n = n * 58 + B58.index(ch)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(s) - len(s.lstrip("1"))) + raw


def cid_bin(cid):  # the test node prints v0 as Qm..., v1 as z... (base58btc) or b... (base32)
    if cid.startswith("b"):
        return base64.b32decode(cid[1:].upper() + "=" * (-len(cid[1:]) % 8))
    return b58decode(cid[1:] if cid.startswith("z") else cid)


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def fb(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def fv(num, v):
    return varint(num << 3) + varint(v)


def unixfs(t, data=None, filesize=None, blocksizes=(), packed=False):
    out = fv(1, t)
    if data is not None:
        out += fb(2, data)
    if filesize is not None:
        out += fv(3, filesize)
    if packed:
        out += fb(4, b"".join(varint(b) for b in blocksizes))
    else:
        out += b"".join(fv(4, b) for b in blocksizes)
    return out


def pbnode(links, data):
    """links: (name bytes, cid, tsize), sorted by name bytes as dag-pb wants."""
    out = b"".join(fb(2, fb(1, cid_bin(c)) + fb(2, n) + fv(3, t)) for n, c, t in
                   sorted(links, key=lambda l: l[0]))
    return out + (fb(1, data) if data is not None else b"")


def post(cmd, query, payload):
    boundary = "craft" + uuid.uuid4().hex
    body = (b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"file\"; "
            b"filename=\"data\"\r\nContent-Type: application/octet-stream\r\n\r\n" + payload +
            b"\r\n--" + boundary.encode() + b"--\r\n")
    req = urllib.request.Request(URL + "/" + cmd + "?" + query, data=body, method="POST",
                                 headers={"Content-Type": "multipart/form-data; boundary=" +
                                          boundary})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read().decode()


def add(data):
    lines = [json.loads(l) for l in post("add", "pin=true", data).splitlines() if l.strip()]
    return [l for l in lines if "Hash" in l][-1]["Hash"]


def put(block, fmt="dag-pb"):
    q = "cid-codec=%s&pin=false" % fmt
    return json.loads(post("block/put", q, block))["Key"]


out = {}
T, H, W = add(b"Test"), add(b"hello\n"), add(b"world\n")
out.update(TEST=T, HELLO=H, WORLD=W)

# Names: every one but good.txt, dup (once), the 255-byte one, the U+FFFD one and the one with a
# newline must be hidden. Kubo's JSON ls cannot carry invalid UTF-8 (it sends U+FFFD).
names = [b"", b".", b"..", b"a/b", b"../evil", b"nul\0x", b"\xff\xfe-bad-utf8", b"dup", b"dup",
         b"x" * 300, b"y" * 255, b"z" * 256, b"new\nline", b"good.txt",
         b"forge/\nipfsfs: error: FORGED LOG LINE"]
links = [(n, T, 12) for n in names]
links[8] = (b"dup", W, 14)  # the second "dup" points elsewhere
out["HOSTILE"] = put(pbnode(links, unixfs(1)))

# Sizes that lie.
out["BIGCLAIM"] = put(pbnode([], unixfs(2, b"Test", filesize=1000)))
out["SMALLCLAIM"] = put(pbnode([], unixfs(2, b"Test", filesize=2)))
out["MULTI"] = put(pbnode([(b"", T, 12), (b"", H, 14)], unixfs(2, filesize=8, blocksizes=[4, 4])))
out["HUGE"] = put(pbnode([], unixfs(2, b"Test", filesize=2 ** 64 - 1)))
out["LIES"] = put(pbnode([(b"big-claim", out["BIGCLAIM"], 20),
                          (b"small-claim", out["SMALLCLAIM"], 20),
                          (b"multi", out["MULTI"], 60), (b"huge", out["HUGE"], 20),
                          (b"ok.txt", T, 12)], unixfs(1)))

# DEPTH nested directories "d", the last one holding leaf.txt.
cur, size = put(pbnode([(b"leaf.txt", T, 12)], unixfs(1))), 60
for _ in range(DEPTH - 1):
    blk = pbnode([(b"d", cur, size)], unixfs(1))
    cur, size = put(blk), size + len(blk)
out["DEEP"] = cur

# Symlinks with hostile targets: crafted blocks too.
for key, target in (("EVIL", b"../../../../etc/passwd"), ("ABS", b"/etc/passwd"),
                    ("LOOP", b"loop"), ("LONG", b"a" * 5000), ("NUL", b"bad\0target")):
    blk = pbnode([], unixfs(4, target))
    out["SL_" + key], out["SLLEN_" + key] = put(blk), len(blk)
out["SYMLINKS"] = put(pbnode([(b"evil", out["SL_EVIL"], out["SLLEN_EVIL"]),
                              (b"abs", out["SL_ABS"], out["SLLEN_ABS"]),
                              (b"loop", out["SL_LOOP"], out["SLLEN_LOOP"]),
                              (b"long", out["SL_LONG"], out["SLLEN_LONG"]),
                              (b"ok.txt", T, 12)], unixfs(1)))

# Not UnixFS: a dag-cbor block, a dag-pb block without Data, one with garbage Data.
out["CBOR"] = put(b"\xa1\x61\x61\x01", "dag-cbor")
out["NODATA"] = put(pbnode([], None))
out["BADDATA"] = put(pbnode([], b"\xff\xff\xff"))
out["NOTUNIXFS"] = put(pbnode([(b"cbor", out["CBOR"], 4), (b"nodata", out["NODATA"], 0),
                               (b"baddata", out["BADDATA"], 5), (b"ok.txt", T, 12)], unixfs(1)))

# A file root with QUAD_N one-byte blocksizes and no filesize: its size is their sum.
out["QUAD"] = put(pbnode([], unixfs(2, blocksizes=[1] * QUAD_N, packed=True)))

for k, v in out.items():
    print("%s=%s" % (k, v))
PY

declare -A C=()
if python3 "$WORK/craft.py" "$NODE_URL" "$DEPTH" "$QUAD_N" >"$WORK/cids" 2>"$WORK/craft.err"; then
    while IFS='=' read -r k v; do C[$k]=$v; done <"$WORK/cids"
fi
if [ -z "${C[QUAD]:-}" ]; then
    not_ok "the crafted blocks are stored with block/put" "$(tail -5 "$WORK/craft.err")"
    finish
fi
ok "the crafted blocks are stored with block/put (${#C[@]} objects, $DEPTH levels deep)"
if backend_is_store; then
    # Block by block: a crafted DAG may lack children on purpose, or fail dag/export.
    import_failed=0
    for k in "${!C[@]}"; do
        case ${C[$k]} in Qm* | b*) ;; *) continue ;; esac
        store_import "${C[$k]}" >>"$WORK/store-import.log" 2>&1 || import_failed=1
    done
    if [ "$import_failed" = 0 ]; then
        ok "the crafted blocks are copied into the store"
    else
        not_ok "the crafted blocks are copied into the store" "$(tail -5 "$WORK/store-import.log")"
    fi
fi

MNT=$WORK/mnt
if backend_is_store; then
    MOUNT_ARGS=("${BACKEND_ARGS[@]}")
else
    MOUNT_ARGS=(--api="$NODE_API")
fi
if ! mount_ipfsfs "$MNT" "${MOUNT_ARGS[@]}" --timeout=5; then
    not_ok "ipfsfs mounts"
    finish
fi
ok "ipfsfs mounts (--timeout=5)"
LOG=${MOUNT_LOG[$MNT]}

# todo DESC REASON: a known limitation, shown as TAP "not ok ... # TODO" (not counted as a
# failure): what the user sees is recorded, the fix is not ipfsfs's alone.
todo() {
    TESTS_RUN=$((TESTS_RUN + 1))
    say "not ok - $1 # TODO $2"
}

alive() {
    if kill -0 "${MOUNT_PID[$MNT]}" 2>/dev/null && mountpoint -q "$MNT"; then
        ok "$1: ipfsfs is still running and mounted"
    else
        not_ok "$1: ipfsfs is still running and mounted" "$(tail -n 20 "$LOG")"
    fi
}

# ---- names --------------------------------------------------------------------------------------

D=$MNT/${C[HOSTILE]}
# The names readdir gives, as bytes, against what may be shown. A name that is not valid
# UTF-8 is still a valid file name: the store shows it as it is. Kubo's ls is JSON, which
# cannot carry it: it comes as U+FFFD U+FFFD "-bad-utf8", a name that then reads the right
# content through the listing. Either is harmless; every other bad name must be hidden.
got=$(timeout 20 python3 - "$D" "${C[TEST]}" <<'PY' 2>&1
import os, sys
got = sorted(n for n in os.listdir(os.fsencode(sys.argv[1]))
             if n not in ("\ufffd\ufffd-bad-utf8".encode(), b"\xff\xfe-bad-utf8"))
want = sorted([b"dup", b"good.txt", b"new\nline", b"y" * 255])
print("as expected" if got == want else "got %r, want %r" % (got, want))
PY
)
check_eq "hostile directory: only the good names are listed" "$got" "as expected"
check_eq "hostile directory: good.txt reads" "$(timeout 10 cat "$D/good.txt" 2>&1)" Test
for bad in a nul forge evil; do
    check_errno "hostile directory: the name '$bad' (from a hidden name) is ENOENT" ENOENT stat "$D/$bad"
done
# FUSE passes names up to 1024 bytes: ipfsfs itself refuses the longer ones.
check_errno_within "hostile directory: the 300-byte name is ENOENT or ENAMETOOLONG" 10 \
    "ENOENT|ENAMETOOLONG" stat "$D/$(printf 'x%.0s' $(seq 300))"
check_errno_within "hostile directory: the 256-byte name is ENOENT or ENAMETOOLONG" 10 \
    "ENOENT|ENAMETOOLONG" stat "$D/$(printf 'z%.0s' $(seq 256))"
check_errno "hostile directory: ../evil resolves to the mount root's 'evil' (ENOENT)" ENOENT \
    stat "$D/../evil"
d1=$(timeout 10 cat "$D/dup" 2>&1)
d2=$(timeout 10 cat "$D/dup" 2>&1)
dcid=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$D/dup" 2>/dev/null)
# "dup" -> Test, then "dup" -> world: either may win, but always the same one.
if [ "$d1" = "$d2" ] && { { [ "$d1" = Test ] && [ "$dcid" = "${C[TEST]}" ]; } ||
    { [ "$d1" = world ] && [ "$dcid" = "${C[WORLD]}" ]; }; }; then
    ok "hostile directory: the duplicate name is listed once and always means the same ($d1, $dcid)"
else
    not_ok "hostile directory: the duplicate name always means the same" "$d1 / $d2 / $dcid"
fi
check "hostile directory: find walks it" timeout 20 find "$D"
if grep -q '^ipfsfs: error: FORGED LOG LINE' "$LOG"; then
    not_ok "hostile directory: a hidden name cannot forge a line in ipfsfs's log" \
        "the log has a line starting 'ipfsfs: error: FORGED LOG LINE' (the name is logged raw)"
else
    ok "hostile directory: a hidden name cannot forge a line in ipfsfs's log"
fi
alive "hostile directory"

# ---- sizes that lie -------------------------------------------------------------------------------

# size_and_read PATH: "SIZE / BYTES-READ-OR-ERROR"
size_and_read() {
    local s r
    s=$(timeout 15 stat -c %s "$1" 2>&1 | sed 's/.*: //')
    r=$(timeout 15 cat "$1" 2>&1 >/dev/null | sed 's/.*: //')
    [ -z "$r" ] && r="reads $(timeout 15 cat "$1" | od -An -c | tr -s ' ' | sed 's/^ //')"
    echo "size $s, $r"
}
for where in root dir; do
    for k in BIGCLAIM SMALLCLAIM MULTI HUGE; do
        case $k in BIGCLAIM) n=big-claim ;; SMALLCLAIM) n=small-claim ;; MULTI) n=multi ;;
        HUGE) n=huge ;; esac
        if [ "$where" = root ]; then p=$MNT/${C[$k]}; else p=$MNT/${C[LIES]}/$n; fi
        r=$(size_and_read "$p")
        case $k in
        BIGCLAIM) # claims 1000 bytes, holds 4: the size is believed, the read must fail
            case $r in *"Input/output error"*) ok "$where: a file claiming 1000 bytes over 4: EIO on read ($r)" ;;
            *) not_ok "$where: a file claiming 1000 bytes over 4: EIO on read" "$r" ;; esac ;;
        SMALLCLAIM) # claims 2 bytes, holds 4 ("Test"): wrong bytes unless refused
            case $r in *"Input/output error"*) ok "$where: a file claiming 2 bytes over 4: EIO ($r)" ;;
            *) not_ok "$where: a file claiming 2 bytes over 4 is refused (EIO), not cut short" \
                "$r (the block is inconsistent: filesize 2, data 4 bytes)" ;; esac ;;
        MULTI) # blocksizes [4,4] over children of 4 and 6 bytes: only fetching the children
            # would tell; the node cuts the second child by the parent's blocksizes
            case $r in *"Input/output error"*) ok "$where: blocksizes that lie about the children: EIO ($r)" ;;
            *) todo "$where: blocksizes that lie about the children: EIO, not wrong bytes ($r)" \
                "children 'Test' + 'hello\\n' under blocksizes [4,4]; ipfsfs trusts the node's cat" ;; esac ;;
        HUGE) # filesize 2^64-1
            case $r in *"Input/output error"*) ok "$where: a file claiming 2^64-1 bytes: EIO ($r)" ;;
            *) not_ok "$where: a file claiming 2^64-1 bytes: EIO" "$r" ;; esac ;;
        esac
    done
done
check_eq "the directory of liars: its honest file still reads" \
    "$(timeout 10 cat "$MNT/${C[LIES]}/ok.txt" 2>&1)" Test
alive "sizes that lie"

# ---- a deep path ----------------------------------------------------------------------------------

deep=$MNT/${C[DEEP]}$(printf '/d%.0s' $(seq $((DEPTH - 1))))
t0=$(now)
got=$(timeout 60 cat "$deep/leaf.txt" 2>&1)
check_eq "a path $DEPTH directories deep reads ($(elapsed "$t0") s, ${#deep} characters)" "$got" Test
n=$(timeout 60 find "$MNT/${C[DEEP]}" -type d 2>/dev/null | wc -l)
check_eq "find counts the $DEPTH directories" "$n" "$DEPTH"
check_eq "the leaf's user.ipfs.cid is the node's" \
    "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$deep/leaf.txt" 2>&1)" "${C[TEST]}"
alive "deep path"

# ---- symlinks ---------------------------------------------------------------------------------------

S=$MNT/${C[SYMLINKS]}
for where in dir root; do
    if [ "$where" = dir ]; then e=$S/evil; a=$S/abs; l=$S/loop; else
        e=$MNT/${C[SL_EVIL]}; a=$MNT/${C[SL_ABS]}; l=$MNT/${C[SL_LOOP]}; fi
    check "$where: the ../../../../etc/passwd symlink is a symlink" test -L "$e"
    check_eq "$where: readlink shows its target text, unresolved" \
        "$(timeout 10 readlink "$e" 2>&1)" "../../../../etc/passwd"
    check_eq "$where: its size is the target's length" "$(stat -c %s "$e" 2>&1)" 22
    check_eq "$where: the /etc/passwd symlink reads back as text" \
        "$(timeout 10 readlink "$a" 2>&1)" /etc/passwd
    if [ "$where" = dir ]; then
        check_errno "dir: a symlink to itself ('loop' -> loop): ELOOP from the kernel" ELOOP \
            stat "$l"
    else
        # At the root, "loop" is MNT/loop: a name in MFS, absent.
        check_errno "root: the same symlink by its CID points at MNT/loop: ENOENT" ENOENT \
            stat "$l"
    fi
done
# What following it gives is the kernel's doing: the target is taken relative to the link's
# directory, as for any symlink on any filesystem (ipfsfs never opens it).
want=$(python3 -c 'import os, sys; print(os.path.normpath(os.path.join(sys.argv[1], sys.argv[2])))' \
    "$(realpath "$S")" "../../../../etc/passwd")
check_eq "following it resolves relative to the mount, by the kernel ($want)" \
    "$(timeout 10 realpath "$S/evil" 2>&1)" "$want"
# rpc_requests from the stats: following the link must not cost ipfsfs a single request.
rpc_requests() { getfattr --only-values -n user.ipfsfs.stats "$MNT" 2>/dev/null |
    awk '$1 == "rpc_requests" { print $2 }'; }
r0=$(rpc_requests)
timeout 10 cat "$S/evil" >/dev/null 2>&1
timeout 10 cat "$MNT/${C[SL_EVIL]}" >/dev/null 2>&1
check_eq "following it twice costs ipfsfs no request (the kernel does it, from the cached link)" \
    "$(rpc_requests)" "$r0"
check_errno "root: a symlink with a 5000-byte target: EIO" EIO lstat "$MNT/${C[SL_LONG]}"
check_errno "root: a symlink target with a NUL: EIO" EIO lstat "$MNT/${C[SL_NUL]}"
r=$(size_and_read "$S/long")
case $r in *"Input/output error"*) ok "dir: the 5000-byte-target symlink gives an error ($r)" ;;
*) not_ok "dir: the 5000-byte-target symlink gives an error" "$r" ;; esac
check_eq "the symlink directory's regular file reads" "$(timeout 10 cat "$S/ok.txt" 2>&1)" Test
alive "symlinks"

# ---- not UnixFS -------------------------------------------------------------------------------------

# A dag-cbor block is fine content, only no file: ENOTSUP. A dag-pb block without valid UnixFS
# data is a broken file: EIO.
check_errno "root: CBOR is ENOTSUP (EOPNOTSUPP)" ENOTSUP stat "$MNT/${C[CBOR]}"
for k in NODATA BADDATA; do
    check_errno "root: $k is EIO" EIO stat "$MNT/${C[$k]}"
done
N=$MNT/${C[NOTUNIXFS]}
check_errno_within "dir: cbor is ENOTSUP (or hidden)" 30 "ENOTSUP|ENOENT" stat "$N/cbor"
for n in nodata baddata; do
    check_errno_within "dir: $n is EIO (or hidden)" 30 "EIO|ENOENT" stat "$N/$n"
done
r=$(timeout 10 cat "$N/ok.txt" 2>&1)
if [ "$r" = Test ]; then
    ok "dir: its good UnixFS file still reads next to the bad entries"
else
    not_ok "dir: its good UnixFS file still reads next to the bad entries" "$r" \
        "an ls that fails as a whole on one non-UnixFS child must fall back to the" \
        "directory's own block, so that one bad link does not hide every sibling"
fi
alive "not UnixFS"

# ---- a size that takes quadratic time to add up ---------------------------------------------------

# QUAD_N blocksizes, no filesize and no links: the sizes must be read in one pass (a block may
# hold ~500k of them), and since no link backs them the file is inconsistent: EIO, at once.
t0=$(now)
s=$(timeout -k 2 60 stat -c %s "$MNT/${C[QUAD]}" 2>&1)
dt=$(elapsed "$t0")
if { [ "$s" = "$QUAD_N" ] || [[ $s == *"Input/output error"* ]]; } && lt "$dt" 2; then
    ok "a file root with $QUAD_N blocksizes and no filesize: stat answers in $dt s"
else
    not_ok "a file root with $QUAD_N blocksizes and no filesize: stat answers within 2 s" \
        "got '$s' after $dt s: node_rpc.c's unixfs_total calls unixfs_blocksize once per" \
        "index, each a rescan from the start (O(n^2)); a 4 MiB block would hold a FUSE thread" \
        "and a core for hours"
fi
alive "quadratic size"

check_unmount "unmount after all that; ipfsfs exits 0 with a clean sanitizer log" "$MNT"

# ---- a hostile node's error messages ------------------------------------------------------------

if backend_is_store; then
    skip_rpc_only "a node's error message cannot forge a log line or put escapes in the log"
    finish
fi

# A proxy in front of the real node that forwards version, then answers every call with 500 and
# a JSON Message holding a newline, a forged log line and a terminal escape: the message is
# logged, and must not forge lines.
cat >"$WORK/liar.py" <<'PY'
import http.server, json, os, sys, urllib.request
VERSION = urllib.request.urlopen(urllib.request.Request(
    sys.argv[2] + "/version", data=b"", method="POST"), timeout=30).read()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        if self.path.startswith("/api/v0/version"):
            st, b = 200, VERSION
        else:
            st, b = 500, json.dumps({"Message": "boom\nipfsfs: error: FORGED BY THE NODE \x1b[31m",
                                     "Code": 0}).encode()
        self.send_response(st)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
s = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
python3 "$WORK/liar.py" "$WORK/liar.port" "$NODE_URL" 2>/dev/null &
track_pid $!
wait_nonempty "$WORK/liar.port"
LM=$WORK/mnt-liar
if mount_ipfsfs "$LM" --api="/ip4/127.0.0.1/tcp/$(cat "$WORK/liar.port")" --timeout=5; then
    check_errno "a node whose errors carry a forged log line: stat is EIO" EIO \
        stat "$LM/${C[TEST]}"
    if grep -q '^ipfsfs: error: FORGED BY THE NODE' "${MOUNT_LOG[$LM]}" ||
        grep -q $'\x1b' "${MOUNT_LOG[$LM]}"; then
        not_ok "a node's error message cannot forge a log line or put escapes in the log" \
            "$(grep -A1 'HTTP 500' "${MOUNT_LOG[$LM]}" | head -2 | cat -A)" \
            "(rpc_error_message copies a JSON Message verbatim; only text bodies are filtered)"
    else
        ok "a node's error message cannot forge a log line or put escapes in the log"
    fi
    check_unmount "the lying node: unmount; ipfsfs exits 0" "$LM"
else
    not_ok "ipfsfs mounts against a node whose errors carry a forged log line"
fi
finish
