#!/usr/bin/env bash
# options.sh - `ipfsfs --help` and man/ipfsfs.1 document the same options with the same
# defaults, the man page's version is the binary's, --help fits 80 columns, and the man page is
# lint-clean. Bad options (unknown ones, -o stats, a number with anything else in it or out of
# range, a spool directory that takes no file) are refused at startup, on one line, before any
# node is asked or store made. These need no mount and no node; as root with /dev/fuse and the
# test node, the same is checked against a live node, a mount that fails late, and real mounts
# given FUSE's own options and systemd's fstab options (x-systemd.*, also via mount.fuse3).
#
# How options are found:
#   --help:      every "--name" (lowercase letters, digits and '-') anywhere in the output.
#   the man page: its OPTIONS section (.SH OPTIONS to the next .SH), with comment lines
#                dropped, "\-" read as "-" and font escapes (\fB, \fI, \fR, \fP) removed,
#                then every "--name" likewise. So write each option there as \-\-name (e.g.
#                .BI \-\-cache\-size= SIZE), and write "\-\-" in that section only before an
#                option of ipfsfs. (Other sections may show other programs' options.)
#   defaults:    a help line "--name=ARG  text (default VALUE)" must be matched by
#                "Default: VALUE" in the man page's .TP entry for --name.
#
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
lib_init

MAN=${IPFSFS_MAN:-$IPFSFS_SRCDIR/man/ipfsfs.1}
if [ ! -f "$MAN" ]; then
    not_ok "man/ipfsfs.1 exists" "not found: $MAN"
    finish
fi

help=$("$IPFSFS_BIN" --help 2>&1)
rc=$?
check_eq "ipfsfs --help exits 0" "$rc" 0
help_short=$("$IPFSFS_BIN" -h 2>&1)
check_eq "ipfsfs -h prints the same as --help" "$help_short" "$help"

# The man source as plain text: no comments, \- as -, no font escapes.
man_text() {
    grep -v '^\.\\"' "$MAN" | sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\(em/--/g'
}

# ipfsfs's own part of --help (libfuse's follows "FUSE options:") fits 80 columns, and says
# which option is no -o option: --stats, an action. (Not the usage line: it names the binary
# as it was run, and make distcheck runs it from a long path.)
long_lines=$(sed -e '/^FUSE options:/,$d' -e '/^usage: /d' <<<"$help" | awk 'length($0) > 80')
if [ -z "$long_lines" ]; then
    ok "--help: every line of ipfsfs's options fits 80 columns"
else
    not_ok "--help: every line of ipfsfs's options fits 80 columns" "$long_lines"
fi
check "--help: the -o form is said to exclude --stats" \
    grep -qE -- '-o NAME.*except --stats' <<<"$help"

help_opts=$(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$help" | LC_ALL=C sort -u)
man_opts=$(man_text | sed -n '/^\.SH OPTIONS/,/^\.SH /p' | grep -oE -- '--[a-z][a-z0-9-]*' |
    LC_ALL=C sort -u)

n=$(grep -c . <<<"$help_opts")
if [ "$n" -ge 5 ]; then
    ok "--help lists $n long options"
else
    not_ok "--help lists at least 5 long options" "found: $help_opts" "help: $help"
fi

for opt in $help_opts; do
    if grep -qxF -- "$opt" <<<"$man_opts"; then
        ok "$opt (from --help) is in man/ipfsfs.1"
    else
        not_ok "$opt (from --help) is in man/ipfsfs.1" "write it as \\-\\-${opt#--} in $MAN"
    fi
done
for opt in $man_opts; do
    if grep -qxF -- "$opt" <<<"$help_opts"; then
        ok "$opt (from man/ipfsfs.1) is in --help"
    else
        not_ok "$opt (from man/ipfsfs.1) is in --help" "the man page documents $opt; --help does not"
    fi
done

# man_entry OPT: the text of the .TP entry (tag lines and body) that documents OPT.
man_entry() {
    man_text | awk -v opt="$1" '
        function flush() { if (hit) print body; hit = 0; body = "" }
        /^\.(TP|SH|SS|PP|IP)/ { flush(); state = /^\.TP/ ? "tag" : ""; next }
        /^\.TQ/ { state = "tag"; next }
        state == "tag" {
            line = $0 " "
            if (index(line, opt "=") || index(line, opt " ")) hit = 1
            body = body " " $0; state = "body"; next
        }
        state == "body" { body = body " " $0 }
        END { flush() }'
}

# Defaults: "--name=ARG ... (default VALUE)" on one help line.
while IFS=$'\t' read -r opt def; do
    [ -n "$opt" ] || continue
    entry=$(man_entry "$opt")
    if [ -z "$entry" ]; then
        not_ok "the man page has an entry for $opt (default $def)" "no .TP entry for $opt"
    elif grep -qF -- "Default: $def" <<<"$entry"; then
        ok "$opt: the man page gives the same default as --help ($def)"
    else
        not_ok "$opt: the man page gives the same default as --help ($def)" \
            "man entry: $entry"
    fi
done < <(sed -nE 's/^ *(--[a-z][a-z0-9-]*)=[A-Z]+ .*\(default ([^):,]+)\).*$/\1\t\2/p' <<<"$help")

# Version: the binary's and the man page's .TH line.
version_out=$("$IPFSFS_BIN" --version 2>&1)
rc=$?
check_eq "ipfsfs --version exits 0" "$rc" 0
version=$(sed -nE 's/^ipfsfs ([0-9][0-9A-Za-z.~+-]*)$/\1/p' <<<"$version_out" | head -1)
if [ -n "$version" ]; then
    ok "ipfsfs --version prints 'ipfsfs $version'"
    th=$(grep -m1 '^\.TH' "$MAN")
    if grep -qF "\"ipfsfs $version\"" <<<"$th"; then
        ok "the man page's .TH names ipfsfs $version"
    else
        not_ok "the man page's .TH names ipfsfs $version" "$th"
    fi
else
    not_ok "ipfsfs --version prints 'ipfsfs VERSION'" "$version_out"
fi

# Sections.
for section in NAME SYNOPSIS DESCRIPTION OPTIONS "API DISCOVERY" ENVIRONMENT FILES \
    "EXIT STATUS" ERRORS EXAMPLES "SEE ALSO"; do
    if grep -qE "^\\.SH \"?$section\"?\$" "$MAN"; then
        ok "the man page has a $section section"
    else
        not_ok "the man page has a $section section"
    fi
done
# The secrets' environment variables: named by --help, and under ENVIRONMENT.
for var in IPFSFS_API_AUTH IPFSFS_CLUSTER_AUTH; do
    check "--help names $var" grep -qF -- "$var" <<<"$help"
    check "the ENVIRONMENT section has an entry for $var" \
        bash -c "sed -n '/^\.SH ENVIRONMENT/,/^\.SH /p' '$MAN' | grep -qx '\.B $var'"
done
# --cluster-auth-file: parsed, refused where no cluster can be, and its file read before any
# connection (port 9 of loopback: nothing is asked of it).
mkdir -p "$WORK/m"
check_fails_with "--cluster-auth-file with --write-through is refused" \
    "--cluster-auth-file" "$IPFSFS_BIN" -f --api=/ip4/127.0.0.1/tcp/9 --write-through \
    --cluster-auth-file="$WORK/none" "$WORK/m"
check_fails_with "-o cluster-auth-file=FILE: a file that is not there is refused" \
    "cannot read the cluster's credentials from $WORK/none" "$IPFSFS_BIN" -f \
    --api=/ip4/127.0.0.1/tcp/9 -o cluster-auth-file="$WORK/none" "$WORK/m"
for errno_name in ENOENT ENOTDIR ETIMEDOUT EIO EROFS ENOSPC; do
    check "the ERRORS section names $errno_name" \
        grep -q "^\\.B $errno_name\$" "$MAN"
done
for ref in fusermount3 mount.fuse3 ipfs; do
    check "SEE ALSO names $ref" grep -qE "^\\.BR $ref \\([18]\\)" "$MAN"
done

# ---- refused at startup: unknown options, the spool directory ---------------------------------

# check_refused DESC TEXT CMD...: CMD must exit 1 within 10 s with one line of output saying
# TEXT (so no word of a node, and no warning about changes it lacks).
check_refused() {
    local desc=$1 text=$2 out rc
    shift 2
    out=$(timeout -k 2 10 "$@" 2>&1)
    rc=$?
    if [ "$rc" -eq 1 ] && [ "$(grep -c . <<<"$out")" -eq 1 ] && grep -qF -- "$text" <<<"$out"; then
        ok "$desc"
    else
        not_ok "$desc" "command: $*" "exit status: $rc (want 1)" "output: $out" \
            "wanted one line saying: $text"
    fi
}
DEAD=/ip4/127.0.0.1/tcp/9 # nothing answers there: a node asked would be "no IPFS node answers"
check_refused "an unknown option is refused on one line, before the node is asked" \
    "unknown option(s): \`--bogus'" "$IPFSFS_BIN" -f --api=$DEAD --bogus "$WORK/m"
check_refused "... also with no --api (the discovered address is not asked either)" \
    "unknown option(s): \`--bogus'" env IPFS_PATH="$WORK/no-ipfs" "$IPFSFS_BIN" --bogus "$WORK/m"
check_refused "an unknown -o option among FUSE's own: only it is named" \
    "unknown option(s): \`-o bogus'" "$IPFSFS_BIN" -f --store="$WORK/s-unknown" \
    -o ro,bogus,default_permissions "$WORK/m"
check "... and the store was not made" test ! -e "$WORK/s-unknown"
check_refused "a missing --spool-dir is refused" \
    "the spool directory $WORK/none (from --spool-dir) does not exist" \
    "$IPFSFS_BIN" -f --api=$DEAD --spool-dir="$WORK/none" "$WORK/m"
: >"$WORK/a-file"
check_refused "-o spool-dir=FILE is refused" \
    "the spool directory $WORK/a-file (from --spool-dir) is not a directory" \
    "$IPFSFS_BIN" -f --store="$WORK/s-spool" -o spool-dir="$WORK/a-file" "$WORK/m"
check "... and the store was not made" test ! -e "$WORK/s-spool"
check_refused "a spool directory that takes no file is refused (/sys)" \
    "the spool directory /sys (from --spool-dir) is not writable" \
    "$IPFSFS_BIN" -f --api=$DEAD --spool-dir=/sys "$WORK/m"
check_refused "the default spool directory (\$TMPDIR) is checked too" \
    "the spool directory $WORK/none (from \$TMPDIR) does not exist" \
    env TMPDIR="$WORK/none" "$IPFSFS_BIN" -f --api=$DEAD "$WORK/m"
check "--help needs no spool directory" env TMPDIR="$WORK/none" "$IPFSFS_BIN" --help
# libfuse mounts on a file too; the root is a directory, so the mount point would answer EIO.
check_refused "a mount point that is a file is refused" \
    "$WORK/a-file is not a directory" "$IPFSFS_BIN" -f --store="$WORK/s-file" "$WORK/a-file"
check "... and the store was not made" test ! -e "$WORK/s-file"
check_refused "-o stats is refused: --stats is an action, not a mount option" \
    "unknown option(s): \`-o stats'" "$IPFSFS_BIN" -f --api=$DEAD -o stats "$WORK/m"

# Numbers: the whole value must be one, in range (fuse_opt's sscanf took "5s" as 5, "1.5" as 1
# and "-5" as 4294967291); the message names the option and the value, and says what it takes.
# Each line: OPTION=VALUE|the start of the message.
while IFS='|' read -r arg text; do
    [ -n "$arg" ] || continue
    check_refused "$arg is refused" "$text" \
        "$IPFSFS_BIN" -f --api=$DEAD --store="$WORK/s-num" "$arg" "$WORK/m"
done <<'END'
--timeout=5s|invalid --timeout '5s' (a whole number of seconds from 1 to 86400)
--timeout=10x|invalid --timeout '10x' (a whole number of seconds from 1 to 86400)
--timeout=1.5|invalid --timeout '1.5' (a whole number of seconds from 1 to 86400)
--timeout=0|invalid --timeout '0' (a whole number of seconds from 1 to 86400)
--timeout=-5|invalid --timeout '-5' (a whole number of seconds from 1 to 86400)
--timeout=|invalid --timeout '' (a whole number of seconds from 1 to 86400)
--timeout=4294967297|invalid --timeout '4294967297' (a whole number of seconds from 1 to 86400)
--unmount-wait=-5|invalid --unmount-wait '-5' (a whole number of seconds from 0 to 86400)
--unmount-wait=5s|invalid --unmount-wait '5s' (a whole number of seconds from 0 to 86400)
--cid-version=1x|invalid --cid-version '1x' (0 or 1)
--cid-version=2|invalid --cid-version '2' (0 or 1)
--cid-version=-1|invalid --cid-version '-1' (0 or 1)
--proxy=ftp://x|invalid --proxy scheme (http://
--replication=2x|invalid --replication '2x' (MIN or MIN:MAX
--replication=+2|invalid --replication '+2' (MIN or MIN:MAX
--cache-size=1.5G|invalid --cache-size '1.5G' (a size like 64M
--dir-cache=64Mx|invalid --dir-cache '64Mx' (a size like 64M
--readahead=8 M|invalid --readahead '8 M' (a size like 64M
--store-size=10GiBs|invalid --store-size '10GiBs' (a size like 64M
END
check_refused "--chunker=garbage is refused, also with --write-through (the node imports)" \
    "--chunker=garbage: not a chunker Kubo knows" \
    "$IPFSFS_BIN" -f --api=$DEAD --write-through --chunker=garbage "$WORK/m"
check_refused "... and rabin-1-2 (one size or three)" "--chunker=rabin-1-2: not a chunker" \
    "$IPFSFS_BIN" -f --api=$DEAD --write-through --chunker=rabin-1-2 "$WORK/m"
# --ipns is read-only: the options of writing are refused with it, not ignored.
for o in --mfs-root=/x --spool-dir=/tmp --cid-version=1 --raw-leaves --no-raw-leaves \
    --chunker=size-1000 --no-pin; do
    check_refused "--ipns $o is refused" "--ipns is read-only: ${o%%=*} is about writing" \
        "$IPFSFS_BIN" -f --api=$DEAD --ipns "$o" "$WORK/m"
done
check_refused "-o ipns,mfs-root=/x is refused too" "--ipns is read-only: --mfs-root" \
    "$IPFSFS_BIN" -f --api=$DEAD -o ipns,mfs-root=/x "$WORK/m"
check_refused "-o timeout=5s is refused too" \
    "invalid --timeout '5s' (a whole number of seconds from 1 to 86400)" \
    "$IPFSFS_BIN" -f --api=$DEAD -o store="$WORK/s-num",timeout=5s "$WORK/m"
check_refused "-o unmount-wait=-5 is refused too" \
    "invalid --unmount-wait '-5' (a whole number of seconds from 0 to 86400)" \
    "$IPFSFS_BIN" -f --api=$DEAD -o store="$WORK/s-num",unmount-wait=-5 "$WORK/m"
check "... and the store was not made" test ! -e "$WORK/s-num"

# With a live node: a fresh store, an unknown option (the case first seen: after the node was
# contacted and the store made, the message came in two lines and a warning said the node
# lacked changes that were kept for the next mount); then a mount the kernel refuses, late.
if [ "$(id -u)" -eq 0 ] && [ -c /dev/fuse ] && [ -z "${IPFSFS_NO_INTEGRATION:-}" ] &&
    "$IPFSFS_NODE_DIR/kubo.sh" --find-only >/dev/null 2>&1 && start_node node; then
    check_refused "live node, fresh store: an unknown option is refused on one line" \
        "unknown option(s): \`--bogus'" "$IPFSFS_BIN" -f --api="$NODE_API" \
        --store="$WORK/s-fresh" --bogus "$WORK/m"
    check "... and the store was not made" test ! -e "$WORK/s-fresh"
    # -o blkdev mounts a fuseblk whose device (the source word) does not exist: libfuse takes
    # the option, the kernel refuses the mount, after the store was opened.
    out=$(timeout -k 2 20 "$IPFSFS_BIN" -f --api="$NODE_API" --store="$WORK/s-late" -o blkdev \
        "$WORK/no-such-device" "$WORK/m" 2>&1)
    rc=$?
    check_eq "a mount the kernel refuses: exit status 1" "$rc" 1
    if grep -qi "unmount\|every change" <<<"$out"; then
        not_ok "a mount that never happened says nothing of an unmount or of unsent changes" \
            "output: $out"
    else
        ok "a mount that never happened says nothing of an unmount or of unsent changes"
    fi
    check "... and it is not mounted" bash -c "! mountpoint -q '$WORK/m'"

    # FUSE's own options still reach libfuse: -o allow_other,default_permissions,ro and -s.
    if mount_ipfsfs "$WORK/m" --store="$WORK/s-fuse" -o allow_other,default_permissions,ro -s; then
        opts=$(findmnt -n -o OPTIONS --target "$WORK/m")
        if [[ ",$opts," == *",ro,"* && $opts == *allow_other* && $opts == *default_permissions* ]]; then
            ok "-o allow_other,default_permissions,ro mounts with those options ($opts)"
        else
            not_ok "-o allow_other,default_permissions,ro mounts with those options" "$opts"
        fi
        check_errno "... the ro mount refuses a new file" EROFS create "$WORK/m/new"
        check_unmount "... unmount" "$WORK/m"
    else
        not_ok "ipfsfs mounts with -o allow_other,default_permissions,ro -s"
    fi
    # systemd's fstab options (x-systemd.NAME, x-systemd.NAME=VALUE) are accepted and ignored:
    # given to ipfsfs, and through mount.fuse3, which passes them on.
    XSD=x-systemd.automount,x-systemd.requires=foo.service,x-systemd.mount-timeout=30
    XSD=$XSD,x-systemd.idle-timeout=60
    # With secrets in the environment too: unused with no node, they leave /proc/PID/environ
    # there as with a node (they stayed).
    if IPFSFS_API_AUTH=bearer:apisecret-ab12 IPFSFS_CLUSTER_AUTH=basic:u:clsecret-cd34 \
        mount_ipfsfs "$WORK/m" --store="$WORK/s-xsd" -o "$XSD"; then
        pid=${MOUNT_PID[$WORK/m]}
        check "a store mount: /proc/PID/environ holds neither secret (wiped)" \
            bash -c "! tr '\\0' '\\n' <'/proc/$pid/environ' | grep -qE 'apisecret-ab12|clsecret-cd34'"
        opts=$(findmnt -n -o OPTIONS --target "$WORK/m")
        if [[ $opts == *x-systemd* ]]; then
            not_ok "-o $XSD: they do not reach the kernel" "$opts"
        else
            ok "-o $XSD mounts, and they do not reach the kernel ($opts)"
        fi
        check_unmount "... unmount" "$WORK/m"
    else
        not_ok "ipfsfs mounts with -o $XSD"
    fi
    if command -v mount.fuse3 >/dev/null 2>&1; then
        # What mount -t fuse.ipfsfs (or an fstab line "ipfsfs#ipfs MNT fuse ...") runs.
        mkdir -p "$WORK/m-fstab"
        LIB_MOUNTS+=("$WORK/m-fstab")
        echo "$WORK/m-fstab" >>"$WORK/mounts"
        out=$(PATH=$(dirname "$IPFSFS_BIN"):$PATH timeout 30 mount.fuse3 "ipfsfs#ipfs" \
            "$WORK/m-fstab" -o "api=$NODE_API,store=$WORK/s-fstab,$XSD,_netdev,nofail" \
            2>&1 </dev/null)
        rc=$?
        if [ "$rc" -eq 0 ] && mountpoint -q "$WORK/m-fstab"; then
            ok "mount.fuse3 \"ipfsfs#ipfs\" MNT -o api=...,store=...,$XSD mounts"
            check "... umount unmounts" umount "$WORK/m-fstab"
        else
            not_ok "mount.fuse3 \"ipfsfs#ipfs\" MNT -o api=...,store=...,$XSD mounts" \
                "exit status $rc" "$out"
        fi
    else
        ok "mount.fuse3 with x-systemd options # SKIP mount.fuse3 is not installed"
    fi
    if mount_ipfsfs "$WORK/m" --api="$NODE_API" --store="$WORK/s-live" -o allow_root \
        --spool-dir="$WORK"; then
        check "-o allow_root, a live node, --spool-dir: a file is written and reads back" \
            bash -c "printf hello >'$WORK/m/f' && test \"\$(cat '$WORK/m/f')\" = hello"
        check_unmount "... unmount" "$WORK/m"
    else
        not_ok "ipfsfs mounts with -o allow_root and a live node"
    fi
    # One MFS folder has one default store whatever its spelling: while /dd is mounted, a
    # mount of /dd/, //dd or /dd/../dd is refused as a second mount of it (it ran beside the
    # first, each with a store of its own).
    if IPFSFS_BACKEND=local XDG_DATA_HOME=$WORK/xdg mount_ipfsfs "$WORK/m" --api="$NODE_API" \
        --mfs-root=/dd; then
        mkdir -p "$WORK/m2"
        for spelled in /dd/ //dd /dd/../dd; do
            out=$(XDG_DATA_HOME=$WORK/xdg timeout -k 2 30 "$IPFSFS_BIN" -f --api="$NODE_API" \
                --mfs-root="$spelled" "$WORK/m2" 2>&1)
            rc=$?
            if [ "$rc" -eq 1 ] && grep -q 'is in use by another ipfsfs process' <<<"$out"; then
                ok "--mfs-root=$spelled while /dd is mounted: refused, its store is in use"
            else
                not_ok "--mfs-root=$spelled while /dd is mounted: refused, its store is in use" \
                    "exit status $rc" "output: $out"
                mountpoint -q "$WORK/m2" && fusermount3 -u "$WORK/m2"
            fi
        done
        check_eq "... and there is one store under XDG_DATA_HOME" \
            "$(find "$WORK/xdg/ipfsfs" -mindepth 1 -maxdepth 1 | wc -l)" 1
        check_unmount "... unmount (/dd)" "$WORK/m"
    else
        not_ok "ipfsfs mounts --mfs-root=/dd with the default store"
    fi
else
    ok "refusals with a live node, FUSE's options on real mounts # SKIP needs root, /dev/fuse and the test node"
fi

# Lint.
if command -v groff >/dev/null 2>&1; then
    out=$(groff -ww -z -man "$MAN" 2>&1)
    if [ -z "$out" ]; then ok "groff -ww -z -man is silent"; else not_ok "groff -ww -z -man is silent" "$out"; fi
else
    ok "groff -ww -z -man is silent # SKIP groff is not installed"
fi
if command -v mandoc >/dev/null 2>&1; then
    out=$(mandoc -Tlint "$MAN" 2>&1)
    if [ -z "$out" ]; then ok "mandoc -Tlint is silent"; else not_ok "mandoc -Tlint is silent" "$out"; fi
else
    ok "mandoc -Tlint is silent # SKIP mandoc is not installed (apt-get install mandoc)"
fi

finish
