#!/usr/bin/env bash
# quickstart.sh - build ipfsfs and mount IPFS, in one command, on a fresh Debian machine.
#
# Usage: ./quickstart.sh [MOUNTPOINT]        (default: ~/ipfs)
#        ./quickstart.sh --help
#
#  1. installs the build dependencies that are missing (apt-get; sudo when not root);
#  2. builds ipfsfs in build/ (autoreconf, configure, make);
#  3. finds an IPFS node the way ipfsfs does ($IPFS_PATH/api, ~/.ipfs/api, then
#     /ip4/127.0.0.1/tcp/5001, or a test node an earlier version of this script started) and
#     checks that it answers; if none does, uses the embedded, offline block store in
#     ${XDG_DATA_HOME:-~/.local/share}/ipfsfs/store (no node needed, same CIDs as Kubo);
#  4. mounts IPFS at MOUNTPOINT and tells you how to use it and how to unmount it.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    cat <<EOF
Usage: ./quickstart.sh [MOUNTPOINT]        (default: ~/ipfs)

Builds ipfsfs in $top/build (installing the missing build dependencies with
apt-get, through sudo when not root) and mounts IPFS at MOUNTPOINT: through the IPFS node
that is running (\$IPFS_PATH/api, ~/.ipfs/api or /ip4/127.0.0.1/tcp/5001), or, when none
answers, on the embedded offline block store in \${XDG_DATA_HOME:-~/.local/share}/ipfsfs/store.

Options:
  -h, --help    print this help and exit
EOF
}

while [ $# -gt 0 ]; do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --)
        shift
        break
        ;;
    -*)
        printf 'quickstart.sh: unknown option: %s (try --help)\n' "$1" >&2
        exit 2
        ;;
    *) break ;;
    esac
done
if [ $# -gt 1 ]; then
    printf 'quickstart.sh: one mount point at most, got: %s (try --help)\n' "$*" >&2
    exit 2
fi
mnt=${1:-$HOME/ipfs}
build=$top/build
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
node_repo=$data_home/ipfsfs/node

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'quickstart.sh: %s\n' "$*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "please install these packages with your package manager: $*"
    say "installing: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# ---- 1. build dependencies ----------------------------------------------------------------------

deps=(build-essential autoconf automake libtool pkg-config libfuse3-dev fuse3
    libcurl4-openssl-dev libjansson-dev libxxhash-dev libssl-dev curl python3 ca-certificates attr)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${deps[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
fi
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# ---- 2. build -----------------------------------------------------------------------------------

say "building ipfsfs in $build"
mkdir -p "$build"
(cd "$top" && autoreconf -fi >"$build/autoreconf.out" 2>&1) || {
    cat "$build/autoreconf.out" >&2
    die "autoreconf failed"
}
if [ ! -f "$build/config.status" ]; then
    (cd "$build" && "$top/configure" >configure.out 2>&1) || {
        tail -n 20 "$build/configure.out" >&2
        die "configure failed (see $build/config.log)"
    }
fi
(cd "$build" && make -j"$(nproc 2>/dev/null || echo 2)" >make.out 2>&1) || {
    tail -n 40 "$build/make.out" >&2
    die "the build failed (see $build/make.out)"
}
ipfsfs=$build/src/ipfsfs

# ---- 3. a node ------------------------------------------------------------------------------------

# url_of MULTIADDR: http://HOST:PORT for the /ip4, /ip6 and /dns forms; empty otherwise.
url_of() {
    local ma=${1%/} scheme=http
    case $ma in */https | */tls/http) scheme=https ;; esac
    if [[ $ma =~ ^/(ip4|dns|dns4|dns6)/([^/]+)/tcp/([0-9]+) ]]; then
        echo "$scheme://${BASH_REMATCH[2]}:${BASH_REMATCH[3]}"
    elif [[ $ma =~ ^/ip6/([^/]+)/tcp/([0-9]+) ]]; then
        echo "$scheme://[${BASH_REMATCH[1]}]:${BASH_REMATCH[2]}"
    fi
}

# answers MULTIADDR: true if a node answers /api/v0/version there.
answers() {
    local url
    url=$(url_of "$1")
    if [ -z "$url" ]; then
        return 0 # a /unix/ address or similar: let ipfsfs itself try it
    fi
    curl -sf -X POST -m 5 "$url/api/v0/version" >/dev/null 2>&1
}

api=
api_file=${IPFS_PATH:-$HOME/.ipfs}/api
if [ -s "$api_file" ]; then
    candidate=$(tr -d ' \n\r\t' <"$api_file")
    if answers "$candidate"; then
        api=$candidate
        say "found a node at $api (from $api_file)"
    fi
fi
if [ -z "$api" ] && answers /ip4/127.0.0.1/tcp/5001; then
    api=/ip4/127.0.0.1/tcp/5001
    say "found a node at $api"
fi
if [ -z "$api" ] && [ -s "$node_repo/api" ] && answers "$(cat "$node_repo/api")"; then
    api=$(cat "$node_repo/api")
    say "the test node started by an earlier quickstart is running at $api"
fi
store=
if [ -z "$api" ]; then
    # No node: the embedded, offline block store (same CIDs as Kubo), in the user's data folder.
    store=$data_home/ipfsfs/store
    mkdir -p "$store"
    say "no IPFS node is running: using the embedded block store in $store"
    say "(to use a node later, start it and run this again, or pass --api=MULTIADDR)"
fi

# ---- 4. mount -------------------------------------------------------------------------------------

mkdir -p "$mnt"
mnt=$(cd "$mnt" && pwd)
if mountpoint -q "$mnt"; then
    say "$mnt is already a mount point; unmount it first with: fusermount3 -u $mnt"
    exit 1
fi
say "mounting IPFS at $mnt"
hello=
if [ -n "$store" ]; then
    "$ipfsfs" --store="$store" "$mnt" || die "ipfsfs could not mount $mnt"
    printf 'Hello from IPFS, through ipfsfs.\n' >"$mnt/hello.txt"
    hello=$(getfattr --only-values -n user.ipfs.cid "$mnt/hello.txt" 2>/dev/null || true)
    api="none: embedded store in $store"
else
    "$ipfsfs" --api="$api" "$mnt" || die "ipfsfs could not mount $mnt"
fi

cat <<EOF

IPFS is mounted at $mnt (node: $api).

  Copy files in and get their CID:
      cp FILE $mnt/ && getfattr -n user.ipfs.cid $mnt/FILE
EOF
if [ -n "$hello" ]; then
    cat <<EOF
  The first file is in: hello.txt, whose CID is $hello.
  Read it by name, or by its CID (the same bytes):
      cat $mnt/hello.txt
      cat $mnt/$hello
EOF
else
    cat <<EOF
  Read any content by its CID (your node fetches what it does not have), for example
  a small text file:
      cat $mnt/QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR
EOF
fi
cat <<EOF
  List a directory by its CID:
      ls $mnt/<directory-cid>/
  The CID of any entry:
      getfattr -n user.ipfs.cid $mnt/<cid>/some/file
  Cache and request counters:
      $ipfsfs --stats $mnt

  Unmount:
      fusermount3 -u $mnt
EOF
# The manual: with man(1) where there is one (a minimal Debian has no man-db).
if command -v man >/dev/null 2>&1; then
    more="man $top/man/ipfsfs.1"
elif command -v mandoc >/dev/null 2>&1; then
    more="mandoc -a $top/man/ipfsfs.1"
else
    more="$ipfsfs --help   (for the manual page: apt-get install man-db, then man $top/man/ipfsfs.1)"
fi
echo
echo "  More: $more"
