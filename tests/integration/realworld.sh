#!/usr/bin/env bash
# realworld.sh - everyday programs writing through a real mount, each checked against a local
# twin: the same workload run once into the mount and once into a local directory, then the
# two compared (diff -r, modes and mtimes, git's own checks) and, where the mount's rules allow,
# by CID: the user.ipfs.cid of the mounted directory must equal what Kubo's `ipfs add -r`
# gives for the local twin (issue 12, "Tests"). Workloads: git clone, rsync -a, tar x, unzip,
# in-place edits (sed -i, vim, dd conv=notrunc, truncate, >>, mmap), mv/cp -a/ln -s. Then a
# clean unmount and a remount: everything still equal, and the node's MFS (rpc) or the store's
# files (store) hold exactly the CIDs the mount showed. Each workload is timed through the mount
# and locally ("# timing:" lines; not checks).
#
# When the CIDs are equal (what makes them so): the mount stores a UnixFS mode only when it is
# not the default (0644 files, 0755 directories) and an mtime only when a program sets one
# (utimensat: cp -a, rsync -a, tar x, unzip, touch). So the twin's CID is `ipfs add -r` with
# --preserve-mtime exactly for the trees whose every entry got a time set (rsync -a, tar x,
# unzip, cp -a; the mount keeps nanoseconds, as Kubo does), and with no flag for the others
# (git clone, edits, mv). The Kubo flag
# --preserve-mode is never used: it stores the default modes too, which the mount does not.
# The twin's CIDs come from a private, offline Kubo repo (not the test node, and not
# --only-hash: Kubo 0.43.1's `add -r --only-hash --preserve-mtime` reports no directories).
#
# IPFSFS_BACKEND=store (realworld-store.sh) runs the same on the embedded store; the CID checks
# then still use Kubo (found by tests/node/kubo.sh, no daemon) and are skipped without it.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=/tmp/build/src/ipfsfs tests/integration/realworld.sh
# Uses git, rsync, tar, zip/unzip and vim when present; the checks that need a missing one are
# reported as skipped.
#
# shellcheck source-path=SCRIPTDIR disable=SC2317
# (SC2317: functions run through check and twin)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
backend_is_store || require_node
lib_init

skip() { ok "$1 # SKIP $2"; }
have() { command -v "$1" >/dev/null 2>&1; }

# cid_of PATH: the CID xattr of PATH itself (not a symlink's target); "" on error. The kernel
# answers user.* on a symlink itself (ENODATA), so a symlink's is read as ipfs.cid.
cid_of() {
    local n=user.ipfs.cid
    [ -L "$1" ] && n=ipfs.cid
    getfattr -h --absolute-names --only-values -n "$n" "$1" 2>/dev/null
}

# diffr A B: diff -r that compares symlinks as symlinks (their targets), dangling ones too
diffr() { diff -r --no-dereference "$@"; }

if backend_is_store; then
    ok "the test node starts # SKIP rpc backend only: the store needs no node"
elif ! start_node node; then
    not_ok "the test node starts"
    finish
else
    ok "the test node starts ($NODE_API)"
fi

# ---- the twin's CIDs: a private offline Kubo repo ---------------------------------------------

TWIN_REPO=$WORK/twin-repo
TWIN_KUBO=${KUBO_BIN:-}
if [ -z "$TWIN_KUBO" ]; then
    TWIN_KUBO=$("$IPFSFS_NODE_DIR/kubo.sh" --find-only --quiet 2>/dev/null | tail -n 1) ||
        TWIN_KUBO=
fi
if [ -n "$TWIN_KUBO" ] && IPFS_PATH=$TWIN_REPO "$TWIN_KUBO" init --profile=test --empty-repo \
    >"$WORK/twin-init.log" 2>&1; then
    ok "an offline Kubo repo computes the twins' CIDs"
else
    skip "an offline Kubo repo computes the twins' CIDs" "no Kubo binary (tests/node/kubo.sh)"
    TWIN_KUBO=
fi

# twin_add DIR [FLAG...]: `ipfs add -r` of DIR in the private repo, full output
# ("added CID DIR/path" lines, the root last)
twin_add() {
    local dir=$1
    shift
    (cd "$(dirname "$dir")" &&
        IPFS_PATH=$TWIN_REPO "$TWIN_KUBO" add -r --pin=false --offline "$@" "$(basename "$dir")")
}

# ufs_desc mount|twin CID: the UnixFS fields of one block ("cidv0|cidv1 type mode mtime"), read
# from the node (rpc) or the store's files (store) for the mount's, from the private repo for the
# twin's: what a CID mismatch is made of.
ufs_desc() {
    local json
    if [ "$1" = twin ]; then
        json=$(IPFS_PATH=$TWIN_REPO "$TWIN_KUBO" dag get "$2" 2>&1)
    elif backend_is_store; then
        python3 - "$HELPER" "$STORE_DIR" "$2" <<'PY' 2>&1
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import helper as h
cid = sys.argv[3]
binary = h.b58decode(cid) if cid.startswith("Qm") else h.cid_bytes(cid)
links, u = h.store_node(sys.argv[2], binary)
print("v%d type=%s mode=%s mtime=%s links=%d" % (0 if cid.startswith("Qm") else 1, u.get("type"),
      "%o" % u["mode"] if "mode" in u else "-", u.get("mtime", "-"), len(links)))
PY
        return
    else
        json=$(kubo dag get "$2" 2>&1)
    fi
    python3 -c '
import base64, json, sys
cid, d = sys.argv[1], json.loads(sys.stdin.read())
raw = d["Data"]["/"]["bytes"]
buf = base64.b64decode(raw + "=" * (-len(raw) % 4))
def varint(b, i):
    n = s = 0
    while True:
        n |= (b[i] & 0x7f) << s; s += 7; i += 1
        if b[i - 1] < 0x80: return n, i
def fields(b):
    i, out = 0, {}
    while i < len(b):
        k, i = varint(b, i)
        if k & 7 == 0: v, i = varint(b, i)
        elif k & 7 == 2:
            ln, i = varint(b, i); v = b[i:i + ln]; i += ln
        else: raise SystemExit("wire type %d" % (k & 7))
        out.setdefault(k >> 3, v)
    return out
u = fields(buf)
mt = fields(u[8]) if 8 in u else {}
print("v%d type=%s mode=%s mtime=%s links=%d" % (0 if cid.startswith("Qm") else 1, u.get(1),
      "%o" % u[7] if 7 in u else "-",
      "%s%s" % (mt.get(1, "-"), (".%09d" % mt[2]) if 2 in mt else ""),
      len(d.get("Links", []))))' "$2" <<<"$json" 2>&1 || printf '%s\n' "$json" | head -3
}

# twin_modes DIR CID: CID (the add of DIR) with the modes that are not the default (0644
# files, 0755 directories) set on it as the mount sets them: `ipfs files chmod` in the private
# repo's MFS. The mount stores those modes and no others; `ipfs add --preserve-mode` would store
# every mode, the defaults too.
twin_modes() {
    local dir=$1 cid=$2 m p
    local -a modes=()
    if [ ! -d "$dir" ]; then
        echo "$cid"
        return
    fi
    mapfile -t modes < <(cd "$dir" && find . -mindepth 1 \( -type f ! -perm 644 -o \
        -type d ! -perm 755 \) -printf '%m %P\n')
    if [ ${#modes[@]} -eq 0 ]; then
        echo "$cid"
        return
    fi
    tk() { IPFS_PATH=$TWIN_REPO "$TWIN_KUBO" "$@"; }
    tk files rm -r --force /twin >/dev/null 2>&1
    tk files cp "/ipfs/$cid" /twin || return 1
    for m in "${modes[@]}"; do
        p=${m#* }
        tk files chmod "${m%% *}" "/twin/$p" || return 1
    done
    tk files stat --hash /twin
}

# check_cid DESC MOUNTED LOCAL [FLAG...]: the CID of the mounted directory is `ipfs add -r
# FLAG...` of its local twin. On a mismatch, lists the first entries whose CIDs differ.
check_cid() {
    local desc=$1 m=$2 l=$3 out got want diffs
    shift 3
    if [ -z "$TWIN_KUBO" ]; then
        skip "$desc" "no Kubo to compute the twin's CID"
        return
    fi
    if ! out=$(twin_add "$l" "$@" 2>&1); then
        not_ok "$desc" "ipfs add -r $* $l failed:" "$out"
        return
    fi
    want=$(tail -n 1 <<<"$out" | awk '{ print $2 }')
    want=$(twin_modes "$l" "$want" 2>&1)
    got=$(cid_of "$m")
    if [ -n "$got" ] && [ "$got" = "$want" ]; then
        ok "$desc"
        return
    fi
    # Which entries differ: "path mountCID twinCID" (the twin's paths start with its basename).
    diffs=$(awk '{ print $3, $2 }' <<<"$out" | sed "s#^$(basename "$l")##" |
        while read -r p c; do
            mc=$(cid_of "$m$p")
            [ "$mc" = "$c" ] || printf '%s %s %s\n' "${p:-/}" "${mc:-none}" "$c"
        done | head -6)
    not_ok "$desc${TODO:+ # TODO $TODO}" "got:  $got" \
        "want: $want (ipfs add -r $*, then files chmod of the modes that are not the default)" \
        "entries that differ (deepest first), with their UnixFS fields:" \
        "$(while read -r p mc c; do
            [ -n "$p" ] || continue
            printf '%s\n    mount %s: %s\n    twin  %s: %s\n' "$p" "$mc" "$(ufs_desc mount "$mc")" \
                "$c" "$(ufs_desc twin "$c")"
        done <<<"$diffs")"
}

# meta DIR: "path type mode size [mtime]" for every entry under DIR (mtime only with
# WITH_MTIME=1; a symlink: its target instead of mode and size; size of files only). One find.
meta() {
    (cd "$1" && find . -mindepth 1 -printf '%P\t%y\t%m\t%s\t%T@\t%l\n') |
        awk -F'\t' -v t="${WITH_MTIME:-0}" '{
            if ($2 == "l") { print $1, "link", $6; next }
            line = $1 " " $2 " " $3
            if ($2 == "f") line = line " " $4
            if (t == 1) { split($5, s, "."); line = line " " s[1] }
            if (t == 2) line = line " " $5
            print line
        }' | LC_ALL=C sort
}

# check_meta DESC MOUNTED LOCAL: names, types, modes, sizes (and mtimes with WITH_MTIME=1, in
# seconds; =2: to the nanosecond) equal
check_meta() {
    local got want
    got=$(meta "$2" 2>&1)
    want=$(meta "$3" 2>&1)
    if [ -n "$want" ] && [ "$got" = "$want" ]; then
        ok "$1 ($(wc -l <<<"$want") entries)"
    else
        not_ok "$1${TODO:+ # TODO $TODO}" "$(diff <(echo "$want") <(echo "$got") | head -12)"
    fi
}

# timed VAR CMD...: run CMD, store its wall time (seconds) in VAR, return its status
timed() {
    local __var=$1 __t0 __rc
    shift
    __t0=$(now)
    "$@"
    __rc=$?
    printf -v "$__var" '%s' "$(elapsed "$__t0")"
    return "$__rc"
}

# twin NAME FUNC: run FUNC DEST into MNT/NAME and into L/NAME (both created first), check the
# mount's run succeeded, print the timing. The local run must succeed too (else: a test bug).
twin() {
    local name=$1 fn=$2 tm tl out rc
    mkdir -p "$MNT/$name" "$L/$name"
    out=$(timed tm "$fn" "$MNT/$name" 2>&1; echo "rc=$? tm=$tm")
    rc=$(sed -n 's/^rc=\([0-9]*\) tm=.*/\1/p' <<<"$out" | tail -n 1)
    tm=$(sed -n 's/^rc=[0-9]* tm=//p' <<<"$out" | tail -n 1)
    timed tl "$fn" "$L/$name" >"$WORK/twin-$name.log" 2>&1 ||
        diag "the local run of $name failed: $(tail -5 "$WORK/twin-$name.log")"
    diag "timing: $name: mount ${tm} s, local ${tl} s"
    # A mount that died (crash, or killed from outside) would let the rest write to the bare
    # directory beneath it: say so once, and stop.
    if ! mountpoint -q "$MNT" || ! kill -0 "${MOUNT_PID[$MNT]}" 2>/dev/null; then
        not_ok "$name: the mount is still up after the workload" \
            "ipfsfs (pid ${MOUNT_PID[$MNT]}) is gone; its log:" "$(tail -n 20 "${MOUNT_LOG[$MNT]}")"
        finish
    fi
    if [ "$rc" = 0 ]; then
        ok "$name: the workload succeeds through the mount"
    else
        not_ok "$name: the workload succeeds through the mount" "exit status: $rc" \
            "$(sed '$d' <<<"$out" | tail -n 15)"
    fi
}

# Known bugs of the rpc backend, out of the scope of these tests; a check they make fail is a
# TODO in rpc mode, a plain check on the store (which has neither):
# - BUG_MODE: fixed (a directory chmod-ed back to 0755 is files/chmod 0, which stores no mode,
#   as the store and ipfs add have it); kept empty.
# - BUG_SYMLINK: fixed (a symlink is linked as CIDv0 under a CIDv0 mount); kept empty.
# - BUG_RACE: rsync -a makes a directory 0700 and chmods it 0755 while its receiver process
#   moves files into it; once in three runs the node kept 0700 (Kubo's files/chmod rewrites the
#   whole directory node, so a change racing with it inside the directory can undo it).
if backend_is_store || [ "$IPFSFS_BACKEND" = local ]; then
    # The names are the store's (pushed to the node as whole subtrees on a local mount).
    BUG_MODE='' BUG_SYMLINK='' BUG_RACE=''
else
    BUG_RACE="a directory chmod racing with moves into it can be lost on Kubo (seen 1 in 3)"
    BUG_MODE=''
    BUG_SYMLINK=''
fi

MNT=$WORK/mnt
SPOOL=$WORK/spool
L=$WORK/local
SRC=$WORK/src
mkdir -p "$SPOOL" "$L" "$SRC"
MOUNT_ARGS=("${BACKEND_ARGS[@]}" --timeout=30 --spool-dir="$SPOOL")
if ! mount_ipfsfs "$MNT" "${MOUNT_ARGS[@]}"; then
    not_ok "ipfsfs mounts"
    finish
fi
ok "ipfsfs mounts"

# ---- the source material -----------------------------------------------------------------------

# A source-like tree: 150 files of 0.5-8 KiB (text-like, so zip compresses them) in nested
# directories, a symlink; every mtime a whole second (tar's archives hold seconds only).
TREE=$SRC/tree
python3 - "$TREE" <<'PY'
import os, random, sys
top = sys.argv[1]
rnd = random.Random(12)
dirs = ["", "lib", "lib/core", "lib/core/io", "lib/util", "doc", "doc/api", "src", "src/net",
        "src/net/http", "test", "test/data", "tools"]
words = [w.encode() for w in "alpha beta gamma delta fn return if else while int char const "
         "struct static void ipfs cid block node name path".split()]
for d in dirs:
    os.makedirs(os.path.join(top, d), exist_ok=True)
for i in range(150):
    d = dirs[i % len(dirs)]
    size = rnd.randrange(512, 8193)
    buf = bytearray()
    while len(buf) < size:
        buf += rnd.choice(words) + (b"\n" if rnd.random() < 0.12 else b" ")
    with open(os.path.join(top, d, "f%03d.%s" % (i, rnd.choice(["c", "h", "txt", "md"]))),
              "wb") as f:
        f.write(bytes(buf[:size]))
f002 = [n for n in os.listdir(os.path.join(top, "lib/core")) if n.startswith("f002.")][0]
os.symlink("lib/core/" + f002, os.path.join(top, "link-to-f002"))
with open(os.path.join(top, "..", "f002-name"), "w") as f:
    f.write(f002)
PY
find "$TREE" -exec touch -h -d @1700000000 {} +

# A small tree for tar and zip: 40 of the files above, with a 0600 file and a 0700 directory.
SMALL=$SRC/small
mkdir -p "$SMALL"
(cd "$TREE" && find . -name 'f0[0-3]?.*' -exec cp --parents -p {} "$SMALL" \;)
mkdir -p "$SMALL/private"
printf 'secret\n' >"$SMALL/private/key"
chmod 600 "$SMALL/private/key"
chmod 700 "$SMALL/private"
find "$SMALL" -exec touch -h -d @1700000100 {} +

# ---- git clone ---------------------------------------------------------------------------------

if have git; then
    REPO=$SRC/repo
    export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t \
        GIT_COMMITTER_EMAIL=t@example.org GIT_CONFIG_NOSYSTEM=1 HOME=$WORK
    git config --global init.defaultBranch main
    git config --global safe.directory '*'
    git init -q "$REPO"
    (cd "$TREE" && find lib doc src -type f | LC_ALL=C sort | head -36 |
        xargs cp --parents -t "$REPO")
    printf '# repo\n' >"$REPO/README.md"
    printf '#!/bin/sh\necho run\n' >"$REPO/run.sh"
    chmod 755 "$REPO/run.sh"
    git -C "$REPO" add -A && git -C "$REPO" commit -q -m one
    printf 'second\n' >>"$REPO/README.md"
    mkdir -p "$REPO/extra" && printf 'x\n' >"$REPO/extra/new.txt"
    git -C "$REPO" add -A && git -C "$REPO" commit -q -m two
    git -C "$REPO" rm -q "$REPO/doc/api/"* && printf 'third\n' >>"$REPO/extra/new.txt"
    git -C "$REPO" add -A && git -C "$REPO" commit -q -m three
    diag "the repository: $(git -C "$REPO" ls-files | wc -l) files," \
        "$(git -C "$REPO" rev-list --count HEAD) commits"

    wl_git() { git clone -q --no-hardlinks "$REPO" "$1/clone"; }
    twin git wl_git
    G=$MNT/git/clone
    check "git: git fsck --full in the mount" git -C "$G" fsck --full --no-progress
    check_eq "git: git status --porcelain is empty" "$(git -C "$G" status --porcelain 2>&1)" ""
    check_eq "git: git log equals the twin's" \
        "$(git -C "$G" log --format='%H %an %s' 2>&1)" \
        "$(git -C "$L/git/clone" log --format='%H %an %s')"
    check_eq "git: git ls-files -s (modes, blob ids) equals the twin's" \
        "$(git -C "$G" ls-files -s 2>&1)" "$(git -C "$L/git/clone" ls-files -s)"
    check "git: the work tree equals the twin (diff -r, .git aside)" \
        diffr -x .git "$G" "$L/git/clone"
    check_eq "git: run.sh is executable (mode 755)" "$(stat -c %a "$G/run.sh" 2>&1)" 755
    # .git differs by nature (the index holds inode numbers and times); the sources do not.
    check_cid "git: CID of the checked-out lib/ = ipfs add -r of the twin's" "$G/lib" \
        "$L/git/clone/lib"
    check_cid "git: CID of the checked-out extra/ = ipfs add -r of the twin's" "$G/extra" \
        "$L/git/clone/extra"
    check "git: a commit in the mount" sh -c "cd '$G' && echo change >>README.md &&
        git commit -q -am four && git fsck --no-progress"
    (cd "$L/git/clone" && echo change >>README.md && git commit -q -am four)
else
    skip "git clone" "git not installed"
fi

# ---- rsync -a ----------------------------------------------------------------------------------

if have rsync; then
    wl_rsync() { rsync -a "$TREE/" "$1/"; }
    twin rsync wl_rsync
    check "rsync: diff -r equals the twin" diffr "$MNT/rsync" "$L/rsync"
    TODO=$BUG_RACE WITH_MTIME=1 check_meta "rsync: names, types, modes, sizes, mtimes equal the twin's" \
        "$MNT/rsync" "$L/rsync"
    check_eq "rsync: the symlink's target" "$(readlink "$MNT/rsync/link-to-f002" 2>&1)" \
        "$(readlink "$TREE/link-to-f002")"
    F002=lib/core/$(cat "$SRC/f002-name")
    check_cid "rsync: CID of a file = ipfs add --preserve-mtime of the twin's" \
        "$MNT/rsync/$F002" "$L/rsync/$F002" --preserve-mtime
    TODO=$BUG_RACE check_cid "rsync: CID of a directory, no symlink = add -r --preserve-mtime" \
        "$MNT/rsync/lib" "$L/rsync/lib" --preserve-mtime
    TODO=$BUG_RACE check_cid "rsync: CID of the tree = ipfs add -r --preserve-mtime of the twin" \
        "$MNT/rsync" "$L/rsync" --preserve-mtime
    # A second rsync -a finds nothing to do: sizes and times match.
    again=$(rsync -a --itemize-changes "$TREE/" "$MNT/rsync/" 2>&1)
    if [ -z "$again" ]; then
        ok "rsync: a second rsync -a transfers nothing"
    elif [ -n "$BUG_RACE" ] && ! grep -qv '^\.d\.\.\.p\.\.\.\.\. ' <<<"$again"; then
        not_ok "rsync: a second rsync -a transfers nothing # TODO $BUG_RACE" "got: $again"
    else
        not_ok "rsync: a second rsync -a transfers nothing" "got: $again"
    fi
    # Extended attributes copied both ways: the computed ones (user.ipfs.cid...) are read by
    # name, not listed, so they are neither copied out as stale values nor removed coming in.
    check "rsync -aX out of the mount (exit 0)" rsync -aX "$MNT/rsync/" "$L/rsync-x-out/"
    check "... and nothing of ours on the copies" \
        bash -c "! getfattr -R -d -m - '$L/rsync-x-out' 2>/dev/null | grep -q ipfs"
    check "rsync -aX into the mount (exit 0)" rsync -aX "$TREE/" "$MNT/rsync-x-in/"
    rm -rf "$MNT/rsync-x-in" # the mount's root holds the workloads only (checked below)
    check "cp -a --preserve=xattr out of the mount" \
        cp -a --preserve=xattr "$MNT/rsync" "$L/cp-x-out"
    check "user.ipfs.cid still reads by name" test -n "$(cid_of "$MNT/rsync/$F002")"
else
    skip "rsync -a" "rsync not installed"
fi

# ---- tar x, unzip ------------------------------------------------------------------------------

tar -C "$SRC" -cf "$SRC/small.tar" small
wl_tar() { tar -xf "$SRC/small.tar" -C "$1"; }
twin tar wl_tar
check "tar: diff -r equals the twin" diffr "$MNT/tar" "$L/tar"
WITH_MTIME=1 check_meta "tar: names, types, modes, sizes, mtimes equal the twin's" \
    "$MNT/tar" "$L/tar"
TODO=$BUG_MODE check_cid "tar: CID of the extracted tree = ipfs add -r --preserve-mtime, chmod" \
    "$MNT/tar/small" "$L/tar/small" --preserve-mtime

# A tar with hard links (a hard link is stored as a copy of the CID: UnixFS has no link count).
mkdir -p "$SRC/hl/sub"
printf 'shared bytes\n' >"$SRC/hl/one"
ln "$SRC/hl/one" "$SRC/hl/two"
ln "$SRC/hl/one" "$SRC/hl/sub/three"
touch -d '2024-01-02 03:04:05' "$SRC/hl/one" "$SRC/hl/sub" "$SRC/hl"
tar -C "$SRC" -cf "$SRC/hl.tar" hl
wl_hardlinks() { tar -xf "$SRC/hl.tar" -C "$1"; }
twin hardlinks wl_hardlinks
check "tar with hard links: diff -r equals the twin" diffr "$MNT/hardlinks" "$L/hardlinks"
TODO=$BUG_MODE check_cid "tar with hard links: CID of the tree = ipfs add -r --preserve-mtime" \
    "$MNT/hardlinks/hl" "$L/hardlinks/hl" --preserve-mtime
check "ln: a new name for a file" ln "$MNT/hardlinks/hl/one" "$MNT/hardlinks/hl/four"
check_eq "ln: it has the file's CID" "$(cid_of "$MNT/hardlinks/hl/four")" \
    "$(cid_of "$MNT/hardlinks/hl/one")"
check_errno "ln over an existing name: EEXIST" EEXIST link "$MNT/hardlinks/hl/one" \
    "$MNT/hardlinks/hl/two"
rm -f "$MNT/hardlinks/hl/four"

# unzip and zip: from /usr/bin first, whatever PATH says; nothing is installed.
UNZIP=/usr/bin/unzip ZIP=/usr/bin/zip
[ -x "$UNZIP" ] || UNZIP=$(command -v unzip || true)
[ -x "$ZIP" ] || ZIP=$(command -v zip || true)
if [ -n "$UNZIP" ] && [ -n "$ZIP" ]; then
    (cd "$SRC" && "$ZIP" -qry "$SRC/small.zip" small)
    wl_unzip() { "$UNZIP" -q "$SRC/small.zip" -d "$1"; }
    twin unzip wl_unzip
    check "unzip: diff -r equals the twin" diffr "$MNT/unzip" "$L/unzip"
    WITH_MTIME=1 check_meta "unzip: names, types, modes, sizes, mtimes equal the twin's" \
        "$MNT/unzip" "$L/unzip"
    check_cid "unzip: CID of the extracted tree = ipfs add -r --preserve-mtime, chmod" \
        "$MNT/unzip/small" "$L/unzip/small" --preserve-mtime
else
    ok "unzip # SKIP unzip or zip is not installed (not in /usr/bin, not on PATH)"
fi

# ---- in-place edits ----------------------------------------------------------------------------

gen_file "$SRC/big" 700000 5       # three chunks of 256 KiB
python3 - "$SRC/text" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(400):
        f.write("line %d: the quick brown fox\n" % i)
PY
# wl_edit DEST: the edits, in the order a user would make them
wl_edit() {
    local d=$1
    cp "$SRC/big" "$d/big" && cp "$SRC/text" "$d/text" && cp "$SRC/text" "$d/vimmed" &&
        sed -i 's/quick/slow/; 3d; $a the end' "$d/text" &&
        printf 'MIDDLE-OF-THE-FILE' | dd of="$d/big" conv=notrunc bs=1 seek=262140 status=none &&
        head -c 5000 /dev/zero | tr '\0' z |
        dd of="$d/big" conv=notrunc bs=1000 seek=400 status=none &&
        cp "$d/big" "$d/shrunk" && truncate -s 200000 "$d/shrunk" &&
        cp "$d/big" "$d/grown" && truncate -s 900000 "$d/grown" &&
        truncate -s 100 "$d/grown-from-small" && truncate -s 300000 "$d/grown-from-small" &&
        printf 'appended 1\n' >>"$d/text" && printf 'appended 2\n' >>"$d/text" &&
        cat "$SRC/text" >>"$d/big"
}
twin edit wl_edit
for f in text big shrunk grown grown-from-small; do
    check "edit: $f equals the twin" cmp "$MNT/edit/$f" "$L/edit/$f"
done

# vim: :%s and :wq (vim writes a new file and renames it, or writes in place: both must do)
if have vim; then
    wl_vim() { vim -u NONE -i NONE -N -es -c '%s/fox/cat/' -c '1d' -c 'wq' "$1/vimmed" </dev/null; }
    vim_t0=$(now)
    check "vim: :%s and :wq in the mount" wl_vim "$MNT/edit"
    vim_tm=$(elapsed "$vim_t0")
    vim_t0=$(now)
    wl_vim "$L/edit"
    diag "timing: vim: mount ${vim_tm} s, local $(elapsed "$vim_t0") s"
    check "vim: the edited file equals the twin" cmp "$MNT/edit/vimmed" "$L/edit/vimmed"
    check_eq "vim: no swap or backup file left" \
        "$(find "$MNT/edit" -name '*.sw?' -o -name '*~' 2>&1)" ""
else
    skip "vim: :%s and :wq in the mount" "vim not installed"
fi

# mmap: a shared writable mapping, written and msync-ed, then closed
wl_mmap() {
    python3 - "$1/big" <<'PY'
import mmap, sys
with open(sys.argv[1], "r+b") as f:
    with mmap.mmap(f.fileno(), 0) as m:
        m[10:20] = b"MMAPPED-10"
        m[262144 - 5:262144 + 5] = b"ACROSS-256"
        m.flush()
PY
}
mm_t0=$(now)
if out=$(wl_mmap "$MNT/edit" 2>&1); then
    ok "mmap: a shared writable mapping of a 3-chunk file, written and flushed"
else
    not_ok "mmap: a shared writable mapping of a 3-chunk file, written and flushed" "$out"
fi
mm_tm=$(elapsed "$mm_t0")
mm_t0=$(now)
wl_mmap "$L/edit"
diag "timing: mmap: mount ${mm_tm} s, local $(elapsed "$mm_t0") s"
check "mmap: the file equals the twin" cmp "$MNT/edit/big" "$L/edit/big"
check_meta "edit: names, types, modes, sizes equal the twin's" "$MNT/edit" "$L/edit"
check_cid "edit: CID of the edited directory = ipfs add -r of the twin" "$MNT/edit" "$L/edit"

# ---- mv, cp -a, ln -s --------------------------------------------------------------------------

wl_mv() {
    local d=$1
    mkdir -p "$d/a/d" "$d/b/d" "$d/dirs/x/y" "$d/over" &&
        printf 'f in a/d\n' >"$d/a/d/f" && printf 'g in b/d\n' >"$d/b/d/g" &&
        printf 'in x/y\n' >"$d/dirs/x/y/z" &&
        printf 'old\n' >"$d/over/target" && printf 'new\n' >"$d/over/source" &&
        mv "$d/a/d/f" "$d/b/d/f" &&
        mv "$d/dirs/x" "$d/dirs/x-renamed" &&
        mv "$d/b/d" "$d/a/d2" &&
        mv "$d/over/source" "$d/over/target" &&
        ln -s ../over/target "$d/a/link" &&
        ln -s "target with spaces/and/depth" "$d/dangling"
}
twin mv wl_mv
check_errno "mv a/d/f -> b/d/f: no a/d/f left" ENOENT stat "$MNT/mv/a/d/f"
check_eq "mv a/d/f -> b/d/f: the file arrived (then b/d moved to a/d2)" \
    "$(cat "$MNT/mv/a/d2/f" 2>&1)" "f in a/d"
check_errno "mv of a directory: the old name is gone" ENOENT stat "$MNT/mv/dirs/x"
check_eq "mv over an existing file: the target holds the source" \
    "$(cat "$MNT/mv/over/target" 2>&1)" new
check_errno "mv over an existing file: the source is gone" ENOENT stat "$MNT/mv/over/source"
check_eq "ln -s: readlink" "$(readlink "$MNT/mv/a/link" 2>&1)" ../over/target
check_eq "ln -s: reading through the symlink" "$(cat "$MNT/mv/a/link" 2>&1)" new
check_eq "ln -s: a dangling symlink's target" "$(readlink "$MNT/mv/dangling" 2>&1)" \
    "target with spaces/and/depth"
check "mv: diff -r equals the twin" diffr "$MNT/mv" "$L/mv"
check_meta "mv: names, types, modes, sizes equal the twin's" "$MNT/mv" "$L/mv"
check_cid "mv: CID of a directory without symlinks = ipfs add -r of the twin" \
    "$MNT/mv/dirs" "$L/mv/dirs"
TODO=$BUG_SYMLINK check_cid "mv: CID of the whole directory (with symlinks) = ipfs add -r" \
    "$MNT/mv" "$L/mv"

# cp -a: modes and mtimes come along
wl_cpa() { cp -a "$SMALL" "$1/small" && cp -a "$SMALL/private/key" "$1/key"; }
twin cpa wl_cpa
check "cp -a: diff -r equals the twin" diffr "$MNT/cpa" "$L/cpa"
WITH_MTIME=1 check_meta "cp -a: names, types, modes, sizes, mtimes equal the twin's" \
    "$MNT/cpa/small" "$L/cpa/small"
check_eq "cp -a: the 0600 file keeps its mode and mtime" \
    "$(stat -c '%a %Y' "$MNT/cpa/key" 2>&1)" "600 1700000100"
TODO=$BUG_MODE check_cid "cp -a: CID of the copied tree = ipfs add -r --preserve-mtime, chmod" \
    "$MNT/cpa/small" "$L/cpa/small" --preserve-mtime

# cp -a of files and directories whose times have a fraction of a second, as on any local disk:
# the mount keeps the nanoseconds (UnixFS 1.5's FractionalNanoseconds), so the tree's CID is
# `ipfs add -r --preserve-mtime`'s, and stat shows the same times.
FRAC=$SRC/frac
mkdir -p "$FRAC/sub"
python3 - "$FRAC" "$TREE/lib" <<'PY'
import os, shutil, sys
top, src = sys.argv[1], sys.argv[2]
names = sorted(n for n in os.listdir(src) if os.path.isfile(os.path.join(src, n)))[:6]
for i, n in enumerate(names):
    d = top if i % 2 else os.path.join(top, "sub")
    shutil.copyfile(os.path.join(src, n), os.path.join(d, n))
    t = 1700000000 * 10**9 + i * 10**9 + [1, 123456789, 999999999, 500000000, 10, 0][i]
    os.utime(os.path.join(d, n), ns=(t, t))
os.utime(os.path.join(top, "sub"), ns=(1700000100 * 10**9 + 7,) * 2)
os.utime(top, ns=(1700000200 * 10**9 + 250000000,) * 2)
PY
wl_frac() { cp -a "$FRAC" "$1/frac"; }
twin frac wl_frac
WITH_MTIME=2 check_meta "cp -a, times with fractions: names, modes, sizes, mtimes (ns) equal the twin's" \
    "$MNT/frac/frac" "$L/frac/frac"
TODO=$BUG_MODE check_cid "cp -a, times with fractions: CID of the tree = ipfs add -r --preserve-mtime" \
    "$MNT/frac/frac" "$L/frac/frac" --preserve-mtime

# ---- after a clean unmount and a remount ---------------------------------------------------

WORKLOADS=$(cd "$MNT" && LC_ALL=C ls -A)
# cids: "name CID" of each workload directory, and of a few deeper entries
cids() {
    local p
    for p in $WORKLOADS rsync/lib rsync/lib/core/f002.c edit/big mv/a/d2 cpa/small/private \
        frac/frac/sub; do
        [ -e "$MNT/$p" ] || [ -L "$MNT/$p" ] || continue
        printf '%s %s\n' "$p" "$(cid_of "$MNT/$p")"
    done
}
BEFORE=$(cids)
check_unmount "clean unmount" "$MNT"
if mount_ipfsfs "$MNT" "${MOUNT_ARGS[@]}"; then
    ok "remount"
    AFTER=$(cids)
    if [ -n "$BEFORE" ] && [ "$BEFORE" = "$AFTER" ]; then
        ok "after the remount: the same CIDs ($(wc -l <<<"$AFTER") names)"
    else
        not_ok "after the remount: the same CIDs" "$(diff <(echo "$BEFORE") <(echo "$AFTER"))"
    fi
    for w in $WORKLOADS; do
        check "after the remount: $w: diff -r equals the twin" diffr -x .git "$MNT/$w" "$L/$w"
    done
    if have git && [ -d "$MNT/git/clone" ]; then
        check "after the remount: git fsck" git -C "$MNT/git/clone" fsck --full --no-progress
        check_eq "after the remount: git status is clean" \
            "$(git -C "$MNT/git/clone" status --porcelain 2>&1)" ""
    fi
    WITH_MTIME=1 check_meta "after the remount: rsync: modes and mtimes equal the twin's" \
        "$MNT/rsync" "$L/rsync"
    WITH_MTIME=2 check_meta "after the remount: cp -a: mtimes with fractions equal the twin's" \
        "$MNT/frac/frac" "$L/frac/frac"

    # What the names hold outside the mount: the node's MFS (rpc) or the store's files (store).
    # On a store or a local mount, fsync the root first: the store's files and the node show
    # the names once that returns.
    sync_names "$MNT"
    if backend_is_store; then
        NAMES="the store's files"
        names_hash() {
            store_names stat "$1" |
                python3 -c 'import json,sys; print(json.load(sys.stdin)["Hash"])'
        }
        names_ls() {
            store_names ls "$1" |
                python3 -c 'import json,sys
print(" ".join(e["Name"] for e in json.load(sys.stdin)["Entries"]))'
        }
    else
        NAMES="the node's MFS"
        names_hash() { kubo files stat --hash "$1"; }
        names_ls() { kubo files ls "$1" | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'; }
    fi
    check_eq "$NAMES lists exactly the workloads at /" "$(names_ls / 2>&1)" \
        "$(tr '\n' ' ' <<<"$WORKLOADS" | sed 's/ $//')"
    # Read again: git status above may have rewritten .git/index (new inode numbers and ctimes).
    NOW=$(cids)
    NAMES_CIDS=$(while read -r p _; do
        printf '%s %s\n' "$p" "$(names_hash "/$p" 2>&1)"
    done <<<"$NOW")
    if [ -n "$NOW" ] && [ "$NAMES_CIDS" = "$NOW" ]; then
        ok "$NAMES holds the CIDs the mount shows ($(wc -l <<<"$NOW") names)"
    else
        not_ok "$NAMES holds the CIDs the mount shows" \
            "$(diff <(echo "$NOW") <(echo "$NAMES_CIDS"))"
    fi
    if ! backend_is_store && [ -n "$TWIN_KUBO" ]; then
        # The node has every block of what was written: a local (offline) DAG walk succeeds.
        check "the node has every block under /rsync (refs -r)" \
            kubo refs -r --timeout=30s "$(names_hash /rsync)"
    fi
    check_unmount "clean unmount after the remount" "$MNT"
else
    not_ok "remount"
fi

finish
