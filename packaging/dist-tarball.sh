#!/usr/bin/env bash
# dist-tarball.sh - make the release tarball (make dist) from a copy of the source tree.
#
# Usage: packaging/dist-tarball.sh OUTDIR
#   Copies the tree (without .git, build directories and tests/node/node_modules) to a
#   temporary directory, runs autoreconf -fi, configure and make dist there, so the tree itself
#   is never touched, and copies ipfsfs-VERSION.tar.gz to OUTDIR. The build output goes to
#   stderr; the tarball's path is the only line on stdout. build-deb.sh and build-rpm.sh call
#   this when they are not given a tarball. Needs autoconf, automake, pkg-config and the
#   libraries configure checks for.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/ipfsfs-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT

tar -C "$top" --exclude=./.git --exclude=./tests/node/node_modules --exclude=./build \
    --exclude=./build-san --exclude=./ci-logs --exclude='./ipfsfs-*.tar.gz' -cf - . |
    tar -C "$work" -xf -
(
    cd "$work"
    autoreconf -fi
    mkdir _dist
    cd _dist
    ../configure --quiet
    make dist
) >&2
tarball=$(cd "$work/_dist" && ls ipfsfs-*.tar.gz)
cp "$work/_dist/$tarball" "$out/"
echo "$out/$tarball"
