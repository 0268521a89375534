#!/usr/bin/env bash
# read.sh - the read path: content added through the node's RPC API and read back through a
# real mount with ordinary programs (cat, cmp, diff -r, tar, find, dd, sha256sum, mmap), by
# CIDv0 and by CIDv1 in every multibase the mount accepts.
#
# IPFSFS_BACKEND=store (read-store.sh) mounts the embedded store (--store=DIR) instead of the
# node: the same content, added through the node as usual, is then copied block by block into
# the store (the node's dag/export), so the store serves exactly the DAGs the node serves,
# Kubo's HAMT shards and the crafted blocks included. Checks of the RPC backend alone (the
# node's version, IPFS_PATH) are reported as skipped there; -o, daemon mode and the fstab way
# are checked with store=DIR.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=build/src/ipfsfs tests/integration/read.sh
#
# shellcheck source-path=SCRIPTDIR disable=SC2012,SC2317
# (SC2012: ls is one of the programs under test; SC2317: functions run through check)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
require_node
lib_init

TEST_CID=QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR   # the 4 bytes "Test"
TEST_CID_V1=bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6eu
RANDOM=4242 # reproducible offsets

if ! start_node node; then
    not_ok "the test node starts"
    finish
fi
ok "the test node starts ($NODE_API)"

# ---- content ----------------------------------------------------------------------------------

DATA=$WORK/data
mkdir -p "$DATA"
: >"$DATA/empty"
printf x >"$DATA/one"
printf Test >"$DATA/test"
gen_file "$DATA/c262143" 262143 1
gen_file "$DATA/c262144" 262144 2
gen_file "$DATA/c262145" 262145 3
gen_file "$DATA/r5m" $((5 * 1024 * 1024)) 4
FILES=(empty one test c262143 c262144 c262145 r5m)

TREE=$DATA/tree
mkdir -p "$TREE/deep/l1/l2/l3/l4" "$TREE/empty-dir" "$TREE/with spaces/and more" \
    "$TREE/ünïcödé 文件" "$TREE/bin"
printf 'top\n' >"$TREE/top.txt"
printf 'leaf\n' >"$TREE/deep/l1/l2/l3/l4/leaf.txt"
printf 'mid\n' >"$TREE/deep/l1/mid.txt"
printf 'spaced\n' >"$TREE/with spaces/a file with spaces.txt"
printf 'nested spaced\n' >"$TREE/with spaces/and more/x y z"
printf 'utf-8\n' >"$TREE/ünïcödé 文件/ƒïlé — 🎉.txt"
printf 'hidden\n' >"$TREE/.hidden"
printf 'dash\n' >"$TREE/-dash-first"
printf 'percent\n' >"$TREE/100% + plus&amp=eq.txt"
: >"$TREE/zero-length"
cp "$DATA/c262145" "$TREE/bin/multi-chunk"
gen_file "$TREE/bin/two-mib" $((2 * 1024 * 1024)) 5

# Three copies of one folder (same CID) at three paths, two under parents of the same CID.
TWINS=$DATA/twins
mkdir -p "$TWINS/d1/sub" "$TWINS/d2/sub" "$TWINS/x/d1/sub"
for d in d1 d2 x/d1; do printf 'same\n' >"$TWINS/$d/sub/f"; done

# Names that are not UTF-8 (Kubo's JSON listing turns both into "caf\uFFFD").
LATIN1=$DATA/latin1
mkdir -p "$LATIN1"
printf 'e9\n' >"$LATIN1/$(printf 'caf\xe9')"
printf 'e8\n' >"$LATIN1/$(printf 'caf\xe8')"
printf 'plain\n' >"$LATIN1/plain"

MANY=$DATA/many
mkdir -p "$MANY"
for i in $(seq -w 1 3000); do
    printf 'entry %s\n' "$i" >"$MANY/f$i.txt"
done

declare -A V0=() V1=()
add_failed=0
for f in "${FILES[@]}"; do
    V0[$f]=$(add_file "$DATA/$f") || add_failed=1
    V1[$f]=$(add_file "$DATA/$f" "cid-version=1") || add_failed=1
done
TREE_V0=$(add_dir "$TREE" "" "$WORK/tree-v0") || add_failed=1
TREE_V1=$(add_dir "$TREE" "cid-version=1" "$WORK/tree-v1") || add_failed=1
MANY_FLAT=$(add_dir "$MANY" "") || add_failed=1
TWINS_V1=$(add_dir "$TWINS" "cid-version=1") || add_failed=1
LATIN1_CID=$(kubo add -Q -r "$LATIN1") || add_failed=1
MANY_HAMT=$(add_dir "$MANY" "max-directory-links=1000") || add_failed=1
MANY_HAMT_V1=$(add_dir "$MANY" "max-directory-links=1000&cid-version=1") || add_failed=1
if [ "$add_failed" -ne 0 ]; then
    not_ok "content is added through the node's RPC"
    finish
fi
ok "content is added through the node's RPC (${#FILES[@]} files twice, 2 trees, 3 big dirs)"
if backend_is_store; then
    if store_import "${V0[@]}" "${V1[@]}" "$TREE_V0" "$TREE_V1" "$MANY_FLAT" "$MANY_HAMT" \
        "$MANY_HAMT_V1" "$TWINS_V1" "$LATIN1_CID"; then
        nblocks=$(find "$STORE_DIR/blocks" -name '*.data' | wc -l)
        ok "the node's DAGs are copied into the store ($nblocks blocks)"
    else
        not_ok "the node's DAGs are copied into the store"
        finish
    fi
fi
check_eq "the node gives the known CID for 'Test'" "${V0[test]}" "$TEST_CID"
check_eq "the node gives the known CIDv1 for 'Test'" "$(cid_as "${V1[test]}" base32)" "$TEST_CID_V1"

if command -v ipfs_cid >/dev/null 2>&1; then
    for f in "${FILES[@]}"; do
        want=$(ipfs_cid "$DATA/$f" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["CIDv0"])')
        check_eq "ipfs_cid agrees with the node on $f" "$want" "${V0[$f]}"
    done
else
    ok "ipfs_cid agrees with the node # SKIP ipfs_cid is not installed (apt-get install ipfs-cid)"
fi

# ---- mount --------------------------------------------------------------------------------------

MNT=$WORK/mnt
if ! mount_ipfsfs "$MNT" "${BACKEND_ARGS[@]}"; then
    not_ok "ipfsfs mounts with ${BACKEND_ARGS[*]}"
    finish
fi
ok "ipfsfs mounts with ${BACKEND_ARGS[*]}"
if backend_is_store; then
    check "the startup message names the store" grep -qF \
        "using embedded block store at $(realpath "$STORE_DIR") (offline)" "${MOUNT_LOG[$MNT]}"
else
    kubo_version=$(rpc version | python3 -c 'import json,sys; print(json.load(sys.stdin)["Version"])')
    check "the startup message names Kubo and its version ($kubo_version)" \
        grep -qF "Kubo $kubo_version" "${MOUNT_LOG[$MNT]}"
fi
check_eq "the mount root is a directory, mode 0555 or 0755" \
    "$(stat -c %F "$MNT" | sed 's/^directory$/ok/')" ok
check_eq "the mount root lists nothing" "$(ls -A "$MNT" | wc -l)" 0

# ---- the known answer -------------------------------------------------------------------------

check_eq "cat MNT/$TEST_CID prints Test" "$(timeout 30 cat "$MNT/$TEST_CID")" Test
check_eq "cat MNT/$TEST_CID_V1 prints Test" "$(timeout 30 cat "$MNT/$TEST_CID_V1")" Test
check_eq "user.ipfs.cid of MNT/$TEST_CID" \
    "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$MNT/$TEST_CID" 2>&1)" "$TEST_CID"
check_eq "ipfs.cid of MNT/$TEST_CID" \
    "$(getfattr --absolute-names --only-values -n ipfs.cid "$MNT/$TEST_CID" 2>&1)" "$TEST_CID"
check_eq "user.ipfs.cid of the CIDv1 (base58 form) is its base32 form" \
    "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$MNT/${V1[test]}" 2>&1)" "$TEST_CID_V1"
check_eq "stat -c '%s %a %F' MNT/$TEST_CID" "$(stat -c '%s %a %F' "$MNT/$TEST_CID")" \
    "4 444 regular file"

# ---- single files, every size, every CID form ------------------------------------------------

# forms CID: the names the mount must accept for CID (one per line)
forms() {
    local c=$1
    echo "$c"
    if [[ $c == Qm* ]]; then
        cid_as "$c" base32 # the same dag-pb node as a CIDv1
    else
        cid_as "$c" base32
        cid_as "$c" base36
        cid_as "$c" base16
        # Kubo reads base32 in either case (and base36, base16): every third letter upper
        cid_as "$c" base32 | python3 -c 'import sys; s = sys.stdin.read().strip()
print(s[0] + "".join(ch.upper() if i % 3 == 0 else ch for i, ch in enumerate(s[1:])))'
    fi
}

# dd_cmp MOUNTED LOCAL N: N random (offset, length) ranges read with dd must match LOCAL.
dd_cmp() {
    local mounted=$1 local=$2 n=$3 size off len i
    size=$(stat -c %s "$local")
    [ "$size" -gt 0 ] || return 0
    for ((i = 0; i < n; i++)); do
        off=$(((RANDOM * 32768 + RANDOM) % size))
        len=$((1 + (RANDOM * 32768 + RANDOM) % 400000))
        if ! cmp -s <(dd if="$mounted" iflag=skip_bytes,count_bytes skip="$off" count="$len" \
            bs=65536 status=none) <(dd if="$local" iflag=skip_bytes,count_bytes skip="$off" \
            count="$len" bs=65536 status=none); then
            echo "dd skip=$off count=$len differs"
            return 1
        fi
    done
    # byte-wise dd across the first chunk boundary
    if [ "$size" -gt 262146 ]; then
        cmp <(dd if="$mounted" bs=1 skip=262142 count=5 status=none) \
            <(dd if="$local" bs=1 skip=262142 count=5 status=none) || return 1
    fi
}

for f in "${FILES[@]}"; do
    size=$(stat -c %s "$DATA/$f")
    for v in V0 V1; do
        declare -n tbl=$v
        cid=${tbl[$f]}
        for name in $(forms "$cid"); do
            check "cmp $f ($size B) via $name" cmp "$MNT/$name" "$DATA/$f"
        done
        check_eq "stat -c %s of $f via $cid" "$(stat -c %s "$MNT/$cid")" "$size"
        check_eq "mode and type of $f via $cid" "$(stat -c '%a %F' "$MNT/$cid")" \
            "444 regular $([ "$size" = 0 ] && echo "empty ")file"
        check_eq "user.ipfs.cid of $f via $cid" \
            "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$MNT/$cid" 2>&1)" \
            "$(cid_as "$cid" canonical)"
        check_eq "sha256sum of $f via $cid" \
            "$(timeout 60 sha256sum <"$MNT/$cid" | cut -d' ' -f1)" \
            "$(sha256sum <"$DATA/$f" | cut -d' ' -f1)"
        check "dd at random offsets of $f via $cid" dd_cmp "$MNT/$cid" "$DATA/$f" 8
        check "pread at random offsets and chunk edges of $f via $cid" \
            python3 "$HELPER" pread-cmp "$MNT/$cid" "$DATA/$f" 24 "${#f}"
        check "mmap read of $f via $cid" python3 "$HELPER" mmap-cmp "$MNT/$cid" "$DATA/$f"
        unset -n tbl
    done
done

# The same file read by four readers at once (shared chunks, concurrent fetches).
parallel_read() {
    local cid=$1 want=$2 i pids=() rc=0
    for i in 1 2 3 4; do
        (sha256sum <"$MNT/$cid" | cut -d' ' -f1 >"$WORK/par.$i") &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    for i in 1 2 3 4; do
        [ "$(cat "$WORK/par.$i")" = "$want" ] || { echo "reader $i got $(cat "$WORK/par.$i")"; rc=1; }
    done
    return "$rc"
}
gen_file "$DATA/par" $((3 * 1024 * 1024 + 12345)) 9
PAR_CID=$(add_file "$DATA/par") && store_import "$PAR_CID"
check "4 concurrent readers of a fresh 3 MiB file get the same bytes" \
    parallel_read "$PAR_CID" "$(sha256sum <"$DATA/par" | cut -d' ' -f1)"

# ---- trees -------------------------------------------------------------------------------------

# xattr_map MNTDIR MAP: every entry the node reported has user.ipfs.cid = its CID.
xattr_map() {
    local dir=$1 map=$2 path cid rel got bad=0
    while IFS=$'\t' read -r path cid; do
        rel=${path#*/}
        [ "$rel" = "$path" ] && rel=.
        got=$(getfattr --absolute-names --only-values -n user.ipfs.cid "$dir/$rel" 2>&1)
        if [ "$got" != "$(cid_as "$cid" canonical)" ]; then
            echo "$rel: user.ipfs.cid=$got, want $(cid_as "$cid" canonical)"
            bad=1
        fi
    done <"$map"
    return "$bad"
}

# tar_list DIR: the sorted member list of tar c -C DIR .
tar_list() { tar c -C "$1" . 2>/dev/null | tar t | sort; }

# tar_roundtrip DIR: tar the mounted tree, extract it, compare with the local tree.
tar_roundtrip() {
    local out=$WORK/untar.$RANDOM
    mkdir -p "$out"
    tar c -C "$1" . | tar x -C "$out" || return 1
    diff -r "$out" "$TREE"
    local rc=$?
    rm -rf "$out"
    return "$rc"
}

modes_ok() {
    local bad
    bad=$(find "$1" \( -type f ! -perm 0444 \) -o \( -type d ! -perm 0555 \) -printf '%m %p\n')
    [ -z "$bad" ] || { echo "$bad"; return 1; }
}

inodes_unique() {
    local dups
    dups=$(find "$1" -printf '%i\n' | sort | uniq -d)
    [ -z "$dups" ] || { echo "duplicate inode numbers: $dups"; return 1; }
}

for v in 0 1; do
    if [ $v = 0 ]; then cid=$TREE_V0; map=$WORK/tree-v0.map; else cid=$TREE_V1; map=$WORK/tree-v1.map; fi
    for name in $cid $( [ $v = 1 ] && cid_as "$cid" base32); do
        check "diff -r of the tree via $name" diff -r "$TREE" "$MNT/$name"
    done
    check_eq "find counts the same entries via $cid" \
        "$(find "$MNT/$cid" | wc -l)" "$(find "$TREE" | wc -l)"
    check_eq "find lists the same names via $cid" \
        "$(cd "$MNT/$cid" && find . | LC_ALL=C sort)" "$(cd "$TREE" && find . | LC_ALL=C sort)"
    check_eq "tar c | tar t lists the same members via $cid" "$(tar_list "$MNT/$cid")" \
        "$(tar_list "$TREE")"
    check "tar c | tar x round trip is identical via $cid" tar_roundtrip "$MNT/$cid"
    check_eq "ls -A of the tree root via $cid" "$(ls -A "$MNT/$cid")" "$(ls -A "$TREE")"
    check_eq "the empty directory is empty via $cid" "$(ls -A "$MNT/$cid/empty-dir" | wc -l)" 0
    check_eq "a path 5 levels deep via $cid" "$(cat "$MNT/$cid/deep/l1/l2/l3/l4/leaf.txt")" leaf
    check_eq "a UTF-8 name via $cid" "$(cat "$MNT/$cid/ünïcödé 文件/ƒïlé — 🎉.txt")" utf-8
    check_eq "a name with spaces via $cid" \
        "$(cat "$MNT/$cid/with spaces/a file with spaces.txt")" spaced
    check_eq "a name with % + & = via $cid" "$(cat "$MNT/$cid/100% + plus&amp=eq.txt")" percent
    check "files 0444 and directories 0555 via $cid" modes_ok "$MNT/$cid"
    check "every entry has a distinct inode number via $cid" inodes_unique "$MNT/$cid"
    check "user.ipfs.cid of every entry matches the node's CID via $cid" \
        xattr_map "$MNT/$cid" "$map"
    check_eq "user.ipfs.cid of the empty directory via $cid" \
        "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$MNT/$cid/empty-dir" 2>&1)" \
        "$(cid_as QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn "$([ $v = 0 ] && echo canonical || echo base32)")"
    check "mmap of a multi-chunk file inside the tree via $cid" \
        python3 "$HELPER" mmap-cmp "$MNT/$cid/bin/two-mib" "$TREE/bin/two-mib"
done
check_eq "stat -c %i twice gives the same inode" \
    "$(stat -c %i "$MNT/$TREE_V0/deep/l1/mid.txt")" "$(stat -c %i "$MNT/$TREE_V0/deep/l1/mid.txt")"

# One directory inode has one path in the kernel: copies of a folder (one CID) at several
# paths, and one CID spelled two ways, must be distinct inodes, or a lookup of one moves the
# other's dentry and a program's working directory with it.
T32=$(cid_as "$TWINS_V1" base32)
T36=$(cid_as "$TWINS_V1" base36)
check "copies of a folder at three paths are three inodes" inodes_unique "$MNT/$T32"
check_eq "a working directory stays where it is when a copy elsewhere is looked up" \
    "$(cd "$MNT/$T32/d1/sub" && stat "$MNT/$T32/x/d1/sub" >/dev/null && /bin/pwd &&
        cd ../.. && ls | tr '\n' ' ')" "$MNT/$T32/d1/sub
d1 d2 x "
check_eq "names that are not UTF-8: listed as their bytes" \
    "$(ls "$MNT/$LATIN1_CID" | od -An -c | tr -s ' \n' ' ')" \
    "$(ls "$LATIN1" | od -An -c | tr -s ' \n' ' ')"
check_eq "names that are not UTF-8: each reads its own content" \
    "$(cat "$MNT/$LATIN1_CID/$(printf 'caf\xe9')" "$MNT/$LATIN1_CID/$(printf 'caf\xe8')")" \
    "e9
e8"
check_eq "... and when the same CID is looked up in another spelling" \
    "$(cd "$MNT/$T32/d2" && stat "$MNT/$T36/d2" >/dev/null && /bin/pwd)" "$MNT/$T32/d2"

# ---- a few thousand entries: flat and HAMT-sharded ---------------------------------------------

many_names() { ls -A "$MANY" | LC_ALL=C sort; }
WANT_NAMES=$(many_names)
# A name in a HAMT comes from the shards on its path, not from a listing of the directory (a
# Wikipedia mirror's directory holds millions of names).
stat_of() {
    getfattr --absolute-names --only-values -n user.ipfsfs.stats "$MNT" 2>/dev/null |
        awk -v k="$1" '$1 == k { print $2 }'
}
m0=$(stat_of dircache_misses)
got=$(cat "$MNT/$MANY_HAMT_V1/f0042.txt" "$MNT/$MANY_HAMT_V1/f2999.txt" 2>&1)
check_eq "two names read in a HAMT nobody listed yet" "$got" "$(cat "$MANY/f0042.txt" "$MANY/f2999.txt")"
check_eq "... and the directory was not listed for them" "$(($(stat_of dircache_misses) - m0))" 0
check_errno "... a name it lacks: ENOENT" ENOENT stat "$MNT/$MANY_HAMT_V1/f3001.txt"
for cid in "$MANY_FLAT" "$MANY_HAMT" "$MANY_HAMT_V1"; do
    case $cid in
        "$MANY_FLAT") what="3000 entries, flat" ;;
        "$MANY_HAMT") what="3000 entries, HAMT" ;;
        *) what="3000 entries, HAMT, CIDv1" ;;
    esac
    check_eq "ls lists every name ($what)" "$(timeout 60 ls -A "$MNT/$cid" | LC_ALL=C sort)" \
        "$WANT_NAMES"
    check_eq "find -type f counts 3000 ($what)" "$(timeout 60 find "$MNT/$cid" -type f | wc -l)" 3000
    check_eq "ls -l shows 3000 regular files of 11 bytes ($what)" \
        "$(timeout 60 ls -l "$MNT/$cid" | awk '$1 ~ /^-r--r--r--/ && $5 == 11' | wc -l)" 3000
    check "cat of 3 names without a prior listing ($what)" \
        cmp <(cat "$MNT/$cid/f0001.txt" "$MNT/$cid/f1500.txt" "$MNT/$cid/f3000.txt") \
        <(cat "$MANY/f0001.txt" "$MANY/f1500.txt" "$MANY/f3000.txt")
done
t0=$(now)
check "diff -r of the 3000-entry HAMT directory" diff -r "$MANY" "$MNT/$MANY_HAMT"
diag "diff -r of 3000 files took $(elapsed "$t0") s"

# ---- stored modes and mtimes of a directory's entries (ipfs add --preserve-mode --preserve-mtime)

META=$DATA/meta
mkdir -p "$META/sub"
printf 'x\n' >"$META/exec.sh"
chmod 755 "$META/exec.sh"
printf 'y\n' >"$META/sub/f"
touch -d @1000000000.5 "$META/exec.sh"
touch -d @981173106 "$META/sub/f"
touch -d @1000000100.25 "$META/sub"
META_CID=$("$KUBO_BIN" --api="$NODE_API" add -Q -r --pin=true --preserve-mode --preserve-mtime \
    "$META" 2>&1)
if [ -n "$META_CID" ] && store_import "$META_CID"; then
    # Through a listing first (ls -l: READDIRPLUS), then by path (a LOOKUP each).
    check_eq "ls -l of a directory shows its entries' stored modes and mtimes (ns)" \
        "$(cd "$MNT/$META_CID" && find . -mindepth 1 -printf '%P %m %T@\n' | LC_ALL=C sort)" \
        "$(printf '%s\n' 'exec.sh 555 1000000000.5000000000' 'sub 555 1000000100.2500000000' \
            'sub/f 444 981173106.0000000000')"
    check_eq "stat of an entry by path shows its stored mtime" \
        "$(stat -c %.9Y "$MNT/$META_CID/sub/f")" 981173106.000000000
else
    not_ok "ipfs add --preserve-mode --preserve-mtime of a tree" "$META_CID"
fi

# ---- crafted blocks: a symlink, and names that must never be exposed ---------------------------

SYM_TARGET="../some where/target.txt"
python3 "$HELPER" dagpb-symlink "$WORK/sym.bin" "$SYM_TARGET"
SYM_CID=$(block_put "$WORK/sym.bin")
python3 "$HELPER" dagpb-dir "$WORK/symdir.bin" \
    "[[\"link\",\"$SYM_CID\",23],[\"file.txt\",\"$TEST_CID\",12]]"
SYMDIR_CID=$(block_put "$WORK/symdir.bin")
if [ -n "$SYM_CID" ] && [ -n "$SYMDIR_CID" ] && store_import "$SYM_CID" "$SYMDIR_CID"; then
    check "a UnixFS symlink inside a directory is a symlink (test -L)" test -L "$MNT/$SYMDIR_CID/link"
    check_eq "readlink gives the UnixFS symlink target" \
        "$(readlink "$MNT/$SYMDIR_CID/link")" "$SYM_TARGET"
    check_eq "stat -c %s of a symlink is its target length" \
        "$(stat -c %s "$MNT/$SYMDIR_CID/link")" "${#SYM_TARGET}"
    check_eq "ls -l of the directory holding a symlink shows 'link -> target'" \
        "$(ls -l "$MNT/$SYMDIR_CID" | sed -n 's/^\(.\).* \(link -> .*\)$/\1 \2/p')" \
        "l link -> $SYM_TARGET"
    check "a UnixFS symlink at the root is a symlink" test -L "$MNT/$SYM_CID"
    check_eq "readlink of a root symlink" "$(readlink "$MNT/$SYM_CID")" "$SYM_TARGET"
else
    not_ok "crafted symlink blocks are stored" "block/put gave: '$SYM_CID' '$SYMDIR_CID'"
fi

LONG=$(printf 'L%.0s' $(seq 300))
python3 "$HELPER" dagpb-dir "$WORK/evil.bin" "$(printf '[%s]' "$(printf '["%s","%s",12],' \
    "../evil" "$TEST_CID" "a/b" "$TEST_CID" "" "$TEST_CID" "." "$TEST_CID" ".." "$TEST_CID" \
    'nul\u0000name' "$TEST_CID" "$LONG" "$TEST_CID" "good.txt" "$TEST_CID" | sed 's/,$//')")"
EVIL_CID=$(block_put "$WORK/evil.bin")
if [ -n "$EVIL_CID" ] && store_import "$EVIL_CID"; then
    listing=$(timeout 30 python3 "$HELPER" listdir "$MNT/$EVIL_CID")
    check_eq "a directory with hostile names lists the good one" \
        "$(grep -cxF "b'good.txt'" <<<"$listing")" 1
    check_eq "it lists none of '../evil' 'a/b' '.' '..' 'nul\\0name' and the 300-byte name" \
        "$(grep -vxF -e "b'good.txt'" -e "b'$TEST_CID'" <<<"$listing")" ""
    # An empty link name must never be listed (js-ipfs used to show the link's CID instead).
    check_eq "it does not list the empty name (or the CID the test node shows in its place)" \
        "$(grep -cxF "b'$TEST_CID'" <<<"$listing")" 0
    check_eq "the good name reads" "$(cat "$MNT/$EVIL_CID/good.txt")" Test
    check_errno "lookup of 'a' (from the hidden name 'a/b') is ENOENT" ENOENT stat "$MNT/$EVIL_CID/a"
    check_errno "lookup of 'nul' (from the hidden name 'nul\\0name') is ENOENT" ENOENT \
        stat "$MNT/$EVIL_CID/nul"
    check_errno "lookup of the empty name's stand-in (the node lists it as its CID) is ENOENT" \
        ENOENT stat "$MNT/$EVIL_CID/$TEST_CID"
    got=$(errno_of stat "$MNT/$EVIL_CID/$LONG")
    if [ "$got" = ENOENT ] || [ "$got" = ENAMETOOLONG ]; then
        ok "lookup of a 300-byte name is ENOENT or ENAMETOOLONG ($got)"
    else
        not_ok "lookup of a 300-byte name is ENOENT or ENAMETOOLONG" "got $got"
    fi
    check_errno "MNT/<dir>/../evil resolves to the mount root's 'evil': ENOENT" ENOENT \
        stat "$MNT/$EVIL_CID/../evil"
else
    not_ok "the crafted directory block is stored"
fi

# ---- small caches: eviction must not change the bytes -------------------------------------------

MNT2=$WORK/mnt-small
SMALL_ARGS=("${BACKEND_ARGS[@]}")
if backend_is_store; then
    # One process per store (the first mount holds its lock): the second mount gets a copy.
    cp -a "$STORE_DIR" "$WORK/store-small" && rm -f "$WORK/store-small/lock"
    SMALL_ARGS=(--store="$WORK/store-small")
fi
if mount_ipfsfs "$MNT2" "${SMALL_ARGS[@]}" --cache-size=1M --dir-cache=64K --readahead=256K; then
    ok "mounts with --cache-size=1M --dir-cache=64K --readahead=256K"
    check "cmp 5 MiB through a 1 MiB chunk cache" cmp "$MNT2/${V0[r5m]}" "$DATA/r5m"
    check "cmp 5 MiB through a 1 MiB chunk cache, again" cmp "$MNT2/${V1[r5m]}" "$DATA/r5m"
    check "pread at random offsets through a 1 MiB chunk cache" \
        python3 "$HELPER" pread-cmp "$MNT2/${V0[r5m]}" "$DATA/r5m" 40 11
    check "diff -r of the tree through a 64 KiB directory cache" diff -r "$TREE" "$MNT2/$TREE_V0"
    check_eq "ls of the HAMT directory through a 64 KiB directory cache" \
        "$(ls -A "$MNT2/$MANY_HAMT" | LC_ALL=C sort)" "$WANT_NAMES"
    check_unmount "unmount (small caches); ipfsfs exits 0" "$MNT2"
else
    not_ok "mounts with --cache-size=1M --dir-cache=64K --readahead=256K"
fi

# ---- statistics ---------------------------------------------------------------------------------

stats=$(timeout 10 "$IPFSFS_BIN" --stats "$MNT" 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && [ -n "$stats" ]; then
    ok "ipfsfs --stats MNT prints statistics"
else
    not_ok "ipfsfs --stats MNT prints statistics" "exit $rc" "$stats"
fi
check "getfattr -n user.ipfsfs.stats MNT is not empty" \
    test -n "$(getfattr --absolute-names --only-values -n user.ipfsfs.stats "$MNT" 2>/dev/null)"
# The tool one reaches for when a mount hangs does not hang with it: its daemon stopped,
# --stats gives up after --timeout and says why.
kill -STOP "${MOUNT_PID[$MNT]}"
check_fails_with "ipfsfs --stats of a mount whose process is stopped: an error after --timeout" \
    "does not answer" "$IPFSFS_BIN" --stats --timeout=2 "$MNT"
kill -CONT "${MOUNT_PID[$MNT]}"
check "... and once it runs again, --stats answers" "$IPFSFS_BIN" --stats "$MNT"
check_fails_with "ipfsfs --stats of a path that does not exist: our message, not libfuse's" \
    "cannot read statistics of $WORK/no-such-dir: No such file or directory" \
    "$IPFSFS_BIN" --stats "$WORK/no-such-dir"

# ---- remount: inode numbers are stable ----------------------------------------------------------

ino_list() {
    stat -c '%i %n' "$MNT/$TEST_CID" "$MNT/$TREE_V0" "$MNT/$TREE_V0/deep/l1/mid.txt" \
        "$MNT/$TREE_V1/ünïcödé 文件" "$MNT/$MANY_HAMT/f0042.txt" 2>&1
}
before=$(ino_list)
check_unmount "unmount; ipfsfs exits 0" "$MNT"
if mount_ipfsfs "$MNT" "${BACKEND_ARGS[@]}"; then
    check_eq "inode numbers are the same after a remount" "$(ino_list)" "$before"
    check_unmount "unmount again; ipfsfs exits 0" "$MNT"
else
    not_ok "remount"
fi

# ---- finding the node: IPFS_PATH, -o api=, daemon mode -----------------------------------------

# The backend as a mount option: api=MULTIADDR, or store=DIR.
if backend_is_store; then OPT_BACKEND=store=$STORE_DIR; else OPT_BACKEND=api=$NODE_API; fi
OPT_NAME=${OPT_BACKEND%%=*}

MNT3=$WORK/mnt-discover
if backend_is_store; then
    skip_rpc_only "with no --api, IPFS_PATH/api finds the node"
    skip_rpc_only "unmount (IPFS_PATH); ipfsfs exits 0"
elif IPFS_PATH=$NODE_REPO mount_ipfsfs "$MNT3"; then
    check_eq "with no --api, IPFS_PATH/api finds the node" "$(cat "$MNT3/$TEST_CID")" Test
    check_unmount "unmount (IPFS_PATH); ipfsfs exits 0" "$MNT3"
else
    not_ok "mounts with IPFS_PATH=$NODE_REPO and no --api"
fi
if mount_ipfsfs "$MNT3" -o "$OPT_BACKEND,timeout=10"; then
    check_eq "-o $OPT_NAME=...,timeout=10 finds the content" "$(cat "$MNT3/$TEST_CID")" Test
    check_unmount "unmount (-o $OPT_NAME=); ipfsfs exits 0" "$MNT3"
else
    not_ok "mounts with -o $OPT_BACKEND,timeout=10"
fi

MNT4=$WORK/mnt-daemon
mkdir -p "$MNT4"
# Output to a file: a daemon that kept our pipe open would hang a $(...) here.
timeout 30 "$IPFSFS_BIN" "${BACKEND_ARGS[@]}" "$MNT4" >"$WORK/daemon.out" 2>&1 </dev/null
rc=$?
out=$(cat "$WORK/daemon.out")
LIB_MOUNTS+=("$MNT4")
echo "$MNT4" >>"$WORK/mounts"
if [ "$rc" -eq 0 ] && mountpoint -q "$MNT4"; then
    ok "daemon mode: ipfsfs returns 0 and the mount is there"
    check_eq "daemon mode: cat works" "$(timeout 30 cat "$MNT4/$TEST_CID")" Test
    check "daemon mode: fusermount3 -u unmounts" fusermount3 -u "$MNT4"
else
    not_ok "daemon mode: ipfsfs returns 0 and the mount is there" "exit $rc" "$out"
fi

# mount(8) and /etc/fstab: mount.fuse3 runs "ipfsfs SOURCE MOUNTPOINT -o OPTIONS".
MNT5=$WORK/mnt-fstab
mkdir -p "$MNT5"
LIB_MOUNTS+=("$MNT5")
echo "$MNT5" >>"$WORK/mounts"
if command -v mount.fuse3 >/dev/null 2>&1; then
    # What mount -t fuse.ipfsfs runs (mount(8) itself would look for ipfsfs in a fixed PATH).
    out=$(PATH=$(dirname "$IPFSFS_BIN"):$PATH timeout 30 mount.fuse3 ipfs "$MNT5" -t ipfsfs \
        -o "$OPT_BACKEND,_netdev,nofail" 2>&1 </dev/null)
    rc=$?
    if [ "$rc" -eq 0 ] && mountpoint -q "$MNT5"; then
        ok "mount.fuse3 ipfs MNT -t ipfsfs -o $OPT_NAME=...,_netdev,nofail (the fstab way)"
        check_eq "the fstab way: cat works" "$(timeout 30 cat "$MNT5/$TEST_CID")" Test
        check "the fstab way: umount unmounts" umount "$MNT5"
    else
        not_ok "mount.fuse3 ipfs MNT -t ipfsfs -o $OPT_NAME=...,_netdev,nofail (the fstab way)" \
            "exit $rc" "$out"
    fi
else
    ok "mount.fuse3 # SKIP mount.fuse3 is not installed"
fi

finish
