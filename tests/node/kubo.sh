#!/usr/bin/env bash
# kubo.sh - find, or build, the Kubo binary the tests run as their IPFS node.
#
# Usage: tests/node/kubo.sh [--find-only] [--quiet]
#   Prints the path of a Kubo `ipfs` binary on standard output and exits 0, or says on standard
#   error exactly what is missing and exits 1. It looks, in this order, for:
#     1. $IPFSFS_KUBO          a binary the user names (used as it is, but its version is checked);
#     2. `ipfs` on PATH        if it is Kubo of a supported version (>= KUBO_FLOOR);
#     3. the pinned build      $IPFSFS_CACHE/kubo-$KUBO_VERSION/ipfs, reused when present;
#     4. a new pinned build    from Kubo's Go module at KUBO_VERSION, with the Go toolchain
#                              (needs Go >= KUBO_GO; skipped with --find-only).
#   IPFSFS_CACHE defaults to ${XDG_CACHE_HOME:-~/.cache}/ipfsfs-test.
#
# Why not `go install github.com/ipfs/kubo/cmd/ipfs@VERSION`: Kubo v0.43.1's go.mod has a replace
# directive (go-libp2p -> a personal fork that only raises quic-go and webtransport-go), and
# `go install pkg@version` refuses any module with replace directives. The fork is not served by
# the module proxy either. So the script downloads the pinned module with `go mod download`
# (checked against the checksum database like any module), drops that one replace, and builds
# ./cmd/ipfs with upstream go-libp2p of the version Kubo's go.mod requires (v0.49.0), with the
# quic-go and webtransport-go versions that go-libp2p release was made with (v0.60.0, v0.11.1;
# the fork's newer ones need the fork's API). The tests run Kubo offline or on loopback TCP, so
# QUIC and WebTransport are never used.
set -euo pipefail

KUBO_VERSION=v0.43.1 # the version the tests pin (README, man page and CI say the same)
KUBO_FLOOR=0.41.0    # oldest supported: <= 0.40 lost file content on files/chmod and files/touch
KUBO_GO=1.26.5       # the Go version v0.43.1's go.mod asks for

find_only=0
quiet=0
for arg in "$@"; do
    case $arg in
        --find-only) find_only=1 ;;
        --quiet) quiet=1 ;;
        --version) echo "$KUBO_VERSION" && exit 0 ;;
        --floor) echo "$KUBO_FLOOR" && exit 0 ;;
        *)
            echo "kubo.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

say() { [ "$quiet" = 1 ] || echo "kubo.sh: $*" >&2; }

# ver_ge A B: true if dotted version A >= B (numeric parts only; "0.43.1-rc1" counts as 0.43.1).
ver_ge() {
    local a b
    a=$(sed -E 's/^v//; s/[^0-9.].*$//' <<<"$1")
    b=$(sed -E 's/^v//; s/[^0-9.].*$//' <<<"$2")
    [ "$(printf '%s\n%s\n' "$a" "$b" | sort -V | head -n 1)" = "$b" ]
}

# kubo_version BIN: the version BIN reports if it is Kubo ("0.43.1"), else nothing.
kubo_version() {
    local out
    out=$("$1" version --all 2>/dev/null) || return 0
    grep -q '^Kubo version:' <<<"$out" || return 0
    sed -n 's/^Kubo version: *//p' <<<"$out" | head -n 1
}

check_bin() { # check_bin BIN WHAT: print BIN and exit 0 if it is a supported Kubo
    local v
    v=$(kubo_version "$1")
    if [ -z "$v" ]; then
        say "$2 ($1) is not Kubo"
        return 1
    fi
    if ! ver_ge "$v" "$KUBO_FLOOR"; then
        say "$2 ($1) is Kubo $v, older than the supported floor $KUBO_FLOOR"
        return 1
    fi
    echo "$1"
    exit 0
}

if [ -n "${IPFSFS_KUBO:-}" ]; then
    check_bin "$IPFSFS_KUBO" "IPFSFS_KUBO" || {
        echo "kubo.sh: IPFSFS_KUBO=$IPFSFS_KUBO is not a usable Kubo binary" >&2
        exit 1
    }
fi
if command -v ipfs >/dev/null 2>&1; then
    check_bin "$(command -v ipfs)" "ipfs on PATH" || true
fi

cache=${IPFSFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ipfsfs-test}
bin=$cache/kubo-$KUBO_VERSION/ipfs
if [ -x "$bin" ]; then
    check_bin "$bin" "the cached build" || true
fi
if [ "$find_only" = 1 ]; then
    echo "kubo.sh: no Kubo found (set IPFSFS_KUBO, put ipfs >= $KUBO_FLOOR on PATH, or run" \
        "tests/node/kubo.sh to build $KUBO_VERSION)" >&2
    exit 1
fi

# ---- build the pinned version ------------------------------------------------------------------

need_go() {
    echo "kubo.sh: building Kubo $KUBO_VERSION needs Go >= $KUBO_GO and the Go module proxy." >&2
    echo "kubo.sh: $1" >&2
    echo "kubo.sh: install Go from https://go.dev/dl/ (Debian 12's golang-go is too old), or" \
        "point IPFSFS_KUBO at a Kubo >= $KUBO_FLOOR binary (https://dist.ipfs.tech/#kubo)." >&2
    exit 1
}
GO=$(command -v go || true)
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; } || true
[ -n "$GO" ] || need_go "no 'go' command was found."
gov=$("$GO" env GOVERSION 2>/dev/null | sed 's/^go//')
ver_ge "$gov" "$KUBO_GO" || need_go "the Go found ($GO) is $gov."

say "building Kubo $KUBO_VERSION into $bin (once; a few minutes)"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod
mkdir -p "$cache"
json=$("$GO" mod download -json "github.com/ipfs/kubo@$KUBO_VERSION") || {
    echo "kubo.sh: go mod download github.com/ipfs/kubo@$KUBO_VERSION failed:" >&2
    echo "$json" >&2
    exit 1
}
moddir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
[ -d "$moddir" ] || {
    echo "kubo.sh: go mod download gave no source directory" >&2
    exit 1
}
src=$cache/src/kubo-$KUBO_VERSION
rm -rf "$src" "$src.tmp"
mkdir -p "$cache/src"
cp -r "$moddir" "$src.tmp"
chmod -R u+w "$src.tmp"
(cd "$src.tmp" && "$GO" mod edit -dropreplace github.com/libp2p/go-libp2p \
    -require=github.com/quic-go/quic-go@v0.60.0 -require=github.com/quic-go/webtransport-go@v0.11.1)
mv "$src.tmp" "$src"
mkdir -p "$(dirname "$bin")"
if ! (cd "$src" && "$GO" build -trimpath -o "$bin.tmp" ./cmd/ipfs) >&2; then
    rm -f "$bin.tmp"
    echo "kubo.sh: the build of Kubo $KUBO_VERSION failed (see above)" >&2
    exit 1
fi
mv "$bin.tmp" "$bin"
check_bin "$bin" "the new build" || exit 1
