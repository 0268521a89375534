#!/usr/bin/env bash
# test-install.sh - install the built .deb and mount IPFS with the installed binary, the way
# an administrator would: mount(8) with -t fuse.ipfsfs, and an /etc/fstab line.
#
# Usage: packaging/test-install.sh [--keep-installed] DEB|DIR
#   DEB|DIR           the ipfsfs_*.deb (or the directory build-deb.sh wrote it to)
#   --keep-installed  leave the package installed (by default it is removed again if it was
#                     not installed before the test)
# Needs root and /dev/fuse (exits 77, skip, without them) and the test node, Kubo
# (tests/node/kubo.sh finds it; a missing one is a failure, not a skip). Installs the .deb with apt-get (which pulls fuse3 and the libraries), starts the test
# node, adds a file over the RPC API and checks, each as "ok - ..." or "not ok - ...":
#   - the package's files (binary, man page, systemd units), and that the units verify;
#   - mount -t fuse.ipfsfs ipfs MNT -o api=MULTIADDR runs /usr/bin/ipfsfs through mount.fuse3,
#     cat MNT/<cid> gives the file back, a second mount on MNT is refused, umount unmounts;
#   - with a temporary /etc/fstab line "ipfs MNT fuse.ipfsfs api=...,_netdev,nofail,noauto 0 0",
#     mount MNT works the same;
#   - what ipfsfs@.service runs: ipfsfs ipfs MNT -o allow_other,api=... has mounted by the time
#     it returns (Type=forking), another user can read, SIGTERM unmounts.
# /etc/fstab is restored, mounts undone and the node stopped (by pid) on every exit.
# Ends with "N passed, M failed"; exit status 0 (all passed), 1 (a failure), 77 (skipped).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
node_dir=${IPFSFS_NODE_DIR:-$top/tests/node}
keep=0
deb=
for arg in "$@"; do
    case $arg in
        --keep-installed) keep=1 ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
            exit 0
            ;;
        -*) echo "test-install.sh: unknown option $arg" >&2; exit 2 ;;
        *) deb=$arg ;;
    esac
done
[ -n "$deb" ] || { echo "usage: $0 [--keep-installed] DEB|DIR" >&2; exit 2; }
if [ -d "$deb" ]; then
    deb=$(find "$deb" -maxdepth 1 -name 'ipfsfs_*.deb' | sort -V | tail -n 1)
fi
[ -f "$deb" ] || { echo "test-install.sh: no ipfsfs_*.deb at $1" >&2; exit 2; }
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")

skip() {
    echo "1..0 # SKIP $*"
    echo "0 passed, 0 failed, 1 skipped"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "must run as root (installs a package, edits /etc/fstab)"
[ -c /dev/fuse ] || skip "/dev/fuse is missing"
command -v dpkg >/dev/null 2>&1 || skip "not a Debian system"
if ! kubo_err=$("$node_dir/kubo.sh" --find-only 2>&1 >/dev/null); then
    echo "not ok - find the test node (Kubo)"
    printf '%s\n' "$kubo_err" | sed 's/^/# /'
    echo "0 passed, 1 failed"
    exit 1
fi
for tool in curl mountpoint findmnt python3; do
    command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
done

passed=0
failed=0
ok() {
    echo "ok - $*"
    passed=$((passed + 1))
}
not_ok() {
    echo "not ok - $*"
    failed=$((failed + 1))
}
check() { # check DESC CMD...
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

work=$(mktemp -d "${TMPDIR:-/tmp}/ipfsfs-install.XXXXXX")
mnt=$work/mnt
mkdir -p "$mnt"
chmod 0755 "$work" # the allow_other check reads the mount as nobody
node_pid=
fstab_saved=0
was_installed=0
dpkg-query -W -f='${Status}' ipfsfs 2>/dev/null | grep -q 'install ok installed' && was_installed=1

cleanup() {
    set +e
    if mountpoint -q "$mnt"; then
        umount "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"
    fi
    if [ "$fstab_saved" = 1 ]; then
        cat "$work/fstab.orig" >/etc/fstab # same inode, owner and mode as before
    fi
    if [ -n "$node_pid" ]; then
        kill "$node_pid" 2>/dev/null
        for _ in $(seq 1 25); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$node_pid" 2>/dev/null
    fi
    if [ "$keep" = 0 ] && [ "$was_installed" = 0 ]; then
        dpkg --purge ipfsfs >/dev/null 2>&1
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- install ---------------------------------------------------------------------------------
echo "# installing $deb"
if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$deb" \
    >"$work/apt.log" 2>&1; then
    ok "apt-get install $(basename "$deb")"
else
    not_ok "apt-get install $(basename "$deb")"
    sed 's/^/# /' "$work/apt.log"
    echo "$passed passed, $failed failed"
    exit 1
fi
check "ipfsfs on PATH is /usr/bin/ipfsfs" test "$(command -v ipfsfs)" = /usr/bin/ipfsfs
check "man page installed" test -f /usr/share/man/man1/ipfsfs.1.gz
for u in ipfs.mount ipfsfs@.service; do
    check "systemd unit $u installed" test -f "/lib/systemd/system/$u"
done
if command -v systemd-analyze >/dev/null 2>&1; then
    # Offline check of the units (ipfs.service need not exist; a template verifies as an
    # instance). --man=no: Documentation=man:ipfsfs(1) needs man-db, which may be absent.
    cp /lib/systemd/system/ipfsfs@.service "$work/ipfsfs@mnt-ipfs.service"
    if systemd-analyze verify --man=no /lib/systemd/system/ipfs.mount \
        "$work/ipfsfs@mnt-ipfs.service" >"$work/verify.log" 2>&1; then
        ok "systemd-analyze verify ipfs.mount ipfsfs@mnt-ipfs.service"
    else
        not_ok "systemd-analyze verify ipfs.mount ipfsfs@mnt-ipfs.service"
    fi
    sed 's/^/# /' "$work/verify.log"
fi

# ---- the node and some content ---------------------------------------------------------------
if ! "$node_dir/start-node.sh" "$work/node" >"$work/node.env" 2>"$work/node.err"; then
    not_ok "start the test node"
    sed 's/^/# /' "$work/node.err"
    echo "$passed passed, $failed failed"
    exit 1
fi
api=$(sed -n 's/^IPFS_API=//p' "$work/node.env")
node_pid=$(sed -n 's/^IPFS_PID=//p' "$work/node.env")
port=$(sed -E 's#^/ip4/[^/]+/tcp/([0-9]+).*#\1#' <<<"$api")
echo "# node at $api (pid $node_pid)"
head -c 300000 /dev/urandom >"$work/data"
cid=$(curl -s -X POST -F "file=@$work/data;filename=data" \
    "http://127.0.0.1:$port/api/v0/add" | tail -n 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["Hash"])')
if [ -n "$cid" ]; then ok "add a file over RPC: $cid"; else not_ok "add a file over RPC"; fi

# wait_mounted: up to 10 s for MNT to become a mount point.
wait_mounted() {
    for _ in $(seq 1 50); do mountpoint -q "$mnt" && return 0; sleep 0.2; done
    return 1
}
# wait_unmounted: up to 10 s for MNT to stop being one.
wait_unmounted() {
    for _ in $(seq 1 50); do mountpoint -q "$mnt" || return 0; sleep 0.2; done
    return 1
}
# daemon_pid: the ipfsfs process serving MNT.
daemon_pid() {
    local p
    for p in $(pgrep -x ipfsfs); do
        if tr '\0' ' ' <"/proc/$p/cmdline" | grep -qF " $mnt"; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
# check_mount HOW: the checks on a fresh mount made by HOW.
check_mount() {
    local how=$1 pid
    check "$how: $mnt is a mount point" wait_mounted
    check "$how: type fuse.ipfsfs" test "$(findmnt -n -o FSTYPE "$mnt")" = fuse.ipfsfs
    echo "# $how: findmnt: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS "$mnt")"
    pid=$(daemon_pid)
    check "$how: served by /usr/bin/ipfsfs" test "$(readlink "/proc/${pid:-0}/exe")" = /usr/bin/ipfsfs
    check "$how: cat MNT/<cid> gives the added file back" cmp -s "$work/data" "$mnt/$cid"
}

# ---- mount -t fuse.ipfsfs ---------------------------------------------------------------------
mount -t fuse.ipfsfs ipfs "$mnt" -o "api=$api" 2>"$work/mount.err"
check_mount "mount -t fuse.ipfsfs"
if mount -t fuse.ipfsfs ipfs "$mnt" -o "api=$api" 2>"$work/mount2.err"; then
    not_ok "a second mount on the same point is refused"
    umount "$mnt"
else
    ok "a second mount on the same point is refused"
    sed 's/^/# second mount: /' "$work/mount2.err"
fi
check "umount" umount "$mnt"
check "unmounted" wait_unmounted
sed 's/^/# mount: /' "$work/mount.err"

# ---- /etc/fstab ---------------------------------------------------------------------------------
cp -p /etc/fstab "$work/fstab.orig" && fstab_saved=1
printf 'ipfs %s fuse.ipfsfs api=%s,_netdev,nofail,noauto 0 0\n' "$mnt" "$api" >>/etc/fstab
mount "$mnt" 2>"$work/mount3.err"
check_mount "fstab: mount MNT"
check "fstab: umount" umount "$mnt"
check "fstab: unmounted" wait_unmounted
sed 's/^/# mount: /' "$work/mount3.err"
cat "$work/fstab.orig" >/etc/fstab && fstab_saved=0
check "/etc/fstab restored" cmp -s /etc/fstab "$work/fstab.orig"

# ---- what ipfsfs@.service runs (Type=forking; stop = SIGTERM) ----------------------------------
if ipfsfs ipfs "$mnt" -o "allow_other,api=$api" 2>"$work/service.err"; then
    # systemd treats the service as started when this returns: the mount must be there already.
    check "service: mounted when ipfsfs returns (Type=forking)" mountpoint -q "$mnt"
    check "service: allow_other: another user reads MNT/<cid>" \
        runuser -u nobody -- cmp -s "$work/data" "$mnt/$cid"
    pid=$(daemon_pid)
    if [ -n "$pid" ] && kill -TERM "$pid"; then
        check "service: SIGTERM to the daemon unmounts" wait_unmounted
    else
        not_ok "service: SIGTERM to the daemon unmounts (no daemon found)"
    fi
else
    not_ok "service: ipfsfs ipfs MNT -o allow_other,api=..."
fi
sed 's/^/# ipfsfs: /' "$work/service.err"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
