#!/usr/bin/env bash
# build-rpm.sh - build the RPM package of ipfsfs with rpmbuild.
#
# Usage: packaging/build-rpm.sh [--no-deps] OUTDIR [TARBALL]
#   TARBALL    a release tarball (make dist); without it, one is made from the source tree
#              by packaging/dist-tarball.sh (the tree itself is not modified).
#   --no-deps  do not install anything (on Debian the script installs rpm, which provides
#              rpmbuild, and the build dependencies with apt-get build-dep)
# Runs rpmbuild -bb with a private _topdir (packaging/rpm/ipfsfs.spec, its Version set to the
# tarball's) and copies the binary RPMs to OUTDIR. On Fedora/RHEL, install the BuildRequires
# first (dnf builddep packaging/rpm/ipfsfs.spec). On Debian the BuildRequires name Fedora
# packages that rpm's database does not know, so the script passes --nodeps (the Debian build
# dependencies stand in for them) and skips the debuginfo package (no find-debuginfo there).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
install_deps=1
args=()
for arg in "$@"; do
    case $arg in
        --no-deps) install_deps=0 ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        -*) echo "build-rpm.sh: unknown option $arg" >&2; exit 2 ;;
        *) args+=("$arg") ;;
    esac
done
if [ ${#args[@]} -lt 1 ] || [ ${#args[@]} -gt 2 ]; then
    echo "usage: $0 [--no-deps] OUTDIR [TARBALL]" >&2
    exit 2
fi
mkdir -p "${args[0]}"
out=$(cd "${args[0]}" && pwd)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

debian=0
command -v dpkg-query >/dev/null 2>&1 && [ -f /etc/debian_version ] && debian=1
if [ "$debian" = 1 ] && [ "$install_deps" = 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y --no-install-recommends rpm autoconf automake pkg-config
    as_root apt-get build-dep -y "$here" # the libraries, by their Debian names
fi
command -v rpmbuild >/dev/null 2>&1 || {
    echo "build-rpm.sh: rpmbuild is missing (Debian: apt-get install rpm; Fedora: dnf install" \
        "rpm-build)" >&2
    exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/ipfsfs-rpm.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{BUILD,BUILDROOT,RPMS,SOURCES,SPECS,SRPMS}

if [ ${#args[@]} -eq 2 ]; then
    cp "${args[1]}" "$work/SOURCES/"
    tarball=$work/SOURCES/$(basename "${args[1]}")
else
    tarball=$("$here/dist-tarball.sh" "$work/SOURCES")
fi
name=$(basename "$tarball" .tar.gz) # ipfsfs-VERSION
version=${name#ipfsfs-}
[ "$name" != "$version" ] || { echo "build-rpm.sh: not an ipfsfs tarball: $tarball" >&2; exit 2; }
sed "s/^Version:.*/Version:        $version/" "$here/rpm/ipfsfs.spec" >"$work/SPECS/ipfsfs.spec"

opts=(-bb --define "_topdir $work" --define "_smp_mflags -j${JOBS:-2}")
if [ "$debian" = 1 ]; then
    opts+=(--nodeps --define "debug_package %{nil}")
fi
rpmbuild "${opts[@]}" "$work/SPECS/ipfsfs.spec"

find "$work/RPMS" -name '*.rpm' -print0 | while IFS= read -r -d '' f; do
    cp "$f" "$out/"
    echo "build-rpm.sh: $out/$(basename "$f")"
    rpm -qlp "$f" | sed 's/^/    /'
done
