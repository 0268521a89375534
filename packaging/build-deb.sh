#!/usr/bin/env bash
# build-deb.sh - build the Debian package of ipfsfs and check it with lintian.
#
# Usage: packaging/build-deb.sh [--no-deps] [--no-lintian] OUTDIR [TARBALL]
#   TARBALL    a release tarball (make dist); without it, one is made from the source tree
#              by packaging/dist-tarball.sh (the tree itself is not modified).
#   --no-deps  do not install the build dependencies (apt-get build-dep packaging/, lintian)
#   --no-lintian  do not run lintian
# Unpacks the tarball in a temporary directory, copies packaging/debian/ (from this tree) to
# its top, links the tarball as ../ipfsfs_VERSION.orig.tar.gz, runs dpkg-buildpackage -b -us
# -uc, copies the .deb, .buildinfo and .changes to OUTDIR, and runs lintian on the .changes:
# any lintian error fails the build. When the tarball's version is newer than the top of
# debian/changelog, an entry VERSION-1 is added to the copy. The unit tests run during the
# build (make check); DEB_BUILD_OPTIONS=nocheck skips them. Runs as root or through sudo.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
install_deps=1
run_lintian=1
args=()
for arg in "$@"; do
    case $arg in
        --no-deps) install_deps=0 ;;
        --no-lintian) run_lintian=0 ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        -*) echo "build-deb.sh: unknown option $arg" >&2; exit 2 ;;
        *) args+=("$arg") ;;
    esac
done
if [ ${#args[@]} -lt 1 ] || [ ${#args[@]} -gt 2 ]; then
    echo "usage: $0 [--no-deps] [--no-lintian] OUTDIR [TARBALL]" >&2
    exit 2
fi
mkdir -p "${args[0]}"
out=$(cd "${args[0]}" && pwd)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ "$install_deps" = 1 ]; then
    pkgs=(dpkg-dev debhelper autoconf automake pkg-config)
    [ "$run_lintian" = 1 ] && pkgs+=(lintian)
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y --no-install-recommends "${pkgs[@]}"
    # The Build-Depends of packaging/debian/control (apt reads a directory holding debian/).
    as_root apt-get build-dep -y "$here"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ipfsfs-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ ${#args[@]} -eq 2 ]; then
    tarball=$(cd "$(dirname "${args[1]}")" && pwd)/$(basename "${args[1]}")
else
    tarball=$("$here/dist-tarball.sh" "$work")
fi
name=$(basename "$tarball" .tar.gz) # ipfsfs-VERSION
version=${name#ipfsfs-}
[ "$name" != "$version" ] || { echo "build-deb.sh: not an ipfsfs tarball: $tarball" >&2; exit 2; }

tar -C "$work" -xzf "$tarball"
src=$work/$name
rm -rf "$src/debian"
cp -r "$here/debian" "$src/debian"
ln -sf "$tarball" "$work/ipfsfs_$version.orig.tar.gz"

top_version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
if dpkg --compare-versions "$version" gt "${top_version%-*}"; then
    {
        printf 'ipfsfs (%s-1) unstable; urgency=medium\n\n  * Upstream release %s.\n\n' \
            "$version" "$version"
        printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l "$src/debian/changelog" -S Maintainer)" \
            "$(date -R)"
        cat "$src/debian/changelog"
    } >"$work/changelog"
    mv "$work/changelog" "$src/debian/changelog"
fi

(cd "$src" && dpkg-buildpackage -b -us -uc -j"${JOBS:-2}")
changes=$(cd "$work" && ls ipfsfs_*.changes)
for f in $(cd "$work" && ls ipfsfs_*.deb ipfsfs-dbgsym_*.deb ipfsfs_*.buildinfo "$changes" \
    2>/dev/null); do
    cp "$work/$f" "$out/"
    echo "build-deb.sh: $out/$f"
done

if [ "$run_lintian" = 1 ]; then
    echo "==> lintian $changes"
    # Exit status non-zero on any error (lintian's default --fail-on=error).
    lintian --display-info --pedantic "$out/$changes"
    echo "==> lintian: no errors"
fi
