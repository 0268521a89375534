#!/usr/bin/env bash
# options.sh - `ipfsfs --help` and man/ipfsfs.1 document the same options with the same
# defaults, the man page's version is the binary's, and the man page is lint-clean.
# No mount and no node needed.
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
