#!/usr/bin/env bash
# cluster.sh - find, or build, the IPFS Cluster binaries the cluster tests run.
#
# Usage: tests/node/cluster.sh [--find-only] [--quiet]
#   Prints the directory holding ipfs-cluster-service and ipfs-cluster-ctl of the pinned version
#   on standard output and exits 0, or says on standard error what is missing and exits 1:
#     1. $IPFSFS_CLUSTER_DIR     a directory the user names (its service's version is checked);
#     2. the pinned build        $IPFSFS_CACHE/cluster-$CLUSTER_VERSION/, reused when present;
#     3. a new pinned build      from the module github.com/ipfs-cluster/ipfs-cluster at
#                                CLUSTER_VERSION, with the Go toolchain (skipped with --find-only).
#   IPFSFS_CACHE defaults to ${XDG_CACHE_HOME:-~/.cache}/ipfsfs-test.
#
# Why not `go install .../cmd/ipfs-cluster-service@v1.1.6`: go install looks up the module's
# deprecation notice in the proxy's version list (@v/list), and the module proxy this project's
# machines use answers that one request with 403, so go install stops. `go mod download` of the
# exact version needs no list and is checked against the checksum database like any module; the
# module has no replace directive, so its own go.mod and go.sum build it unchanged.
set -euo pipefail

CLUSTER_VERSION=v1.1.6 # the version the tests pin (README and tests/README.md say the same)
CLUSTER_GO=1.26       # the Go version its go.mod asks for

find_only=0
quiet=0
for arg in "$@"; do
    case $arg in
        --find-only) find_only=1 ;;
        --quiet) quiet=1 ;;
        --version) echo "$CLUSTER_VERSION" && exit 0 ;;
        *)
            echo "cluster.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

say() { [ "$quiet" = 1 ] || echo "cluster.sh: $*" >&2; }

# good DIR: DIR has both programs, and the service is the pinned version.
good() {
    [ -x "$1/ipfs-cluster-service" ] && [ -x "$1/ipfs-cluster-ctl" ] || return 1
    "$1/ipfs-cluster-service" --version 2>/dev/null | grep -q "${CLUSTER_VERSION#v}"
}

if [ -n "${IPFSFS_CLUSTER_DIR:-}" ]; then
    if good "$IPFSFS_CLUSTER_DIR"; then
        echo "$IPFSFS_CLUSTER_DIR"
        exit 0
    fi
    echo "cluster.sh: IPFSFS_CLUSTER_DIR=$IPFSFS_CLUSTER_DIR has no ipfs-cluster-service and" \
        "ipfs-cluster-ctl $CLUSTER_VERSION" >&2
    exit 1
fi
cache=${IPFSFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ipfsfs-test}
dir=$cache/cluster-$CLUSTER_VERSION
if good "$dir"; then
    echo "$dir"
    exit 0
fi
if [ "$find_only" = 1 ]; then
    echo "cluster.sh: no IPFS Cluster $CLUSTER_VERSION found (run tests/node/cluster.sh to build" \
        "it into $dir, or set IPFSFS_CLUSTER_DIR)" >&2
    exit 1
fi

GO=$(command -v go || true)
[ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; } || true
if [ -z "$GO" ]; then
    echo "cluster.sh: building IPFS Cluster $CLUSTER_VERSION needs Go >= $CLUSTER_GO and the Go" \
        "module proxy; no 'go' command was found" >&2
    exit 1
fi
say "building IPFS Cluster $CLUSTER_VERSION into $dir (once; a few minutes)"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod
json=$("$GO" mod download -json "github.com/ipfs-cluster/ipfs-cluster@$CLUSTER_VERSION") || {
    echo "cluster.sh: go mod download github.com/ipfs-cluster/ipfs-cluster@$CLUSTER_VERSION" \
        "failed:" >&2
    echo "$json" >&2
    exit 1
}
moddir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
[ -d "$moddir" ] || {
    echo "cluster.sh: go mod download gave no source directory" >&2
    exit 1
}
src=$cache/src/cluster-$CLUSTER_VERSION
rm -rf "$src" "$dir.tmp"
mkdir -p "$cache/src" "$dir.tmp"
cp -r "$moddir" "$src"
chmod -R u+w "$src"
if ! (cd "$src" && "$GO" build -trimpath -o "$dir.tmp/" ./cmd/ipfs-cluster-service \
    ./cmd/ipfs-cluster-ctl) >&2; then
    rm -rf "$dir.tmp"
    echo "cluster.sh: the build of IPFS Cluster $CLUSTER_VERSION failed (see above)" >&2
    exit 1
fi
rm -rf "$dir"
mv "$dir.tmp" "$dir"
good "$dir" || {
    echo "cluster.sh: the new build in $dir does not report version $CLUSTER_VERSION" >&2
    exit 1
}
echo "$dir"
