#!/usr/bin/env bash
# run-all.sh - build ipfsfs and run the whole test suite (unit and integration tests).
#
# Usage: tests/run-all.sh [--sanitizers | --tsan] [--no-deps] [--no-integration] [--build-dir=DIR]
#   --sanitizers      build with AddressSanitizer + UBSan in build-san/ (also IPFSFS_SANITIZERS=1)
#   --tsan            build with ThreadSanitizer in build-tsan/; runs the unit tests and the
#                     integration tests with the most threads at work (TSAN_TESTS overrides)
#   --no-deps         do not install missing Debian packages, nor build the test node
#   --no-integration  run the unit tests only: the integration tests are reported as skipped
#   --build-dir=DIR   build there instead of build/ (build-san/, build-tsan/)
#
# Installs what is missing (apt-get, with sudo when not root), finds or builds the test node (Kubo,
# pinned; tests/node/kubo.sh: $IPFSFS_KUBO, else `ipfs` on PATH if Kubo >= the supported floor,
# else a cached build, else `go build` of the pinned module, which needs Go) and IPFS Cluster's
# ipfs-cluster-service and ipfs-cluster-ctl (pinned; tests/node/cluster.sh), runs autoreconf,
# configures with --enable-werror, builds with make -j2, runs make check, prints the
# test-suite.log when something failed, and ends with one line:
#   N passed, M failed[, K skipped]
# counted from automake's .trs files (FAIL, ERROR and XPASS count as failed; SKIP and XFAIL as
# skipped). The exit status is non-zero when anything failed or could not be built. Without a
# test node the run fails (the integration tests are not skipped unless --no-integration says so).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sanitizers=${IPFSFS_SANITIZERS:-0}
tsan=0
integration=1
install_deps=1
builddir=
for arg in "$@"; do
    case $arg in
        --sanitizers) sanitizers=1 ;;
        --tsan) tsan=1 ;;
        --no-deps) install_deps=0 ;;
        --no-integration) integration=0 ;;
        --build-dir=*) builddir=${arg#--build-dir=} ;;
        -h | --help)
            awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "run-all.sh: unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done
configure_flags=(--enable-werror)
if [ "$sanitizers" = 1 ] && [ "$tsan" = 1 ]; then
    echo "run-all.sh: --sanitizers and --tsan exclude each other" >&2
    exit 2
fi
if [ "$sanitizers" = 1 ]; then
    configure_flags+=(--enable-sanitizers)
    builddir=${builddir:-$top/build-san}
elif [ "$tsan" = 1 ]; then
    configure_flags+=(--enable-tsan)
    builddir=${builddir:-$top/build-tsan}
else
    builddir=${builddir:-$top/build}
fi
case $builddir in /*) ;; *) builddir=$PWD/$builddir ;; esac

log() { printf '==> %s\n' "$*"; }

# The closing line when we cannot get as far as running the tests.
give_up() {
    echo "run-all.sh: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

# ---- dependencies ----------------------------------------------------------------------------

DEBIAN_PACKAGES=(build-essential autoconf automake libtool pkg-config libfuse3-dev fuse3
    libcurl4-openssl-dev libjansson-dev libxxhash-dev libssl-dev ipfs-cid attr python3 curl shellcheck
    valgrind mandoc rsync clang libclang-rt-14-dev dnsmasq-base)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "run-all.sh: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

install_debian_packages() {
    local missing=() p
    command -v dpkg-query >/dev/null 2>&1 || return 0 # not Debian: assume the tools are there
    for p in "${DEBIAN_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    log "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
}

if [ "$install_deps" = 1 ]; then
    install_debian_packages || give_up "could not install the Debian packages"
fi

# ---- the test node -----------------------------------------------------------------------------

if [ "$integration" = 1 ]; then
    if [ "$install_deps" = 1 ]; then
        log "finding or building the test node (tests/node/kubo.sh; the first build takes minutes)"
        kubo=$("$top/tests/node/kubo.sh") ||
            give_up "no test node (Kubo): see above what to install, or run with --no-integration"
    else
        kubo=$("$top/tests/node/kubo.sh" --find-only) ||
            give_up "no test node (Kubo) found, and --no-deps forbids building it"
    fi
    log "test node: $kubo ($("$kubo" version --number 2>/dev/null || echo '?'))"
    export IPFSFS_KUBO=$kubo
    if [ "$install_deps" = 1 ]; then
        log "finding or building IPFS Cluster (tests/node/cluster.sh; the first build takes minutes)"
        cluster=$("$top/tests/node/cluster.sh") ||
            give_up "no IPFS Cluster for the cluster tests: see above, or run with --no-integration"
    else
        cluster=$("$top/tests/node/cluster.sh" --find-only) ||
            give_up "no IPFS Cluster found, and --no-deps forbids building it"
    fi
    log "IPFS Cluster: $cluster"
    export IPFSFS_CLUSTER_DIR=$cluster
else
    log "--no-integration: the integration tests will be reported as skipped"
    export IPFSFS_NO_INTEGRATION=1
fi

# ---- build -------------------------------------------------------------------------------------

cd "$top"
log "autoreconf -fi"
autoreconf -fi >/dev/null || give_up "autoreconf failed"
mkdir -p "$builddir"
cd "$builddir"
log "configure ${configure_flags[*]} (in $builddir)"
"$top/configure" "${configure_flags[@]}" >configure.out 2>&1 || {
    tail -n 30 configure.out >&2
    give_up "configure failed (see $builddir/config.log)"
}
log "make -j2"
make -j2 >make.out 2>&1 || {
    tail -n 60 make.out >&2
    give_up "the build failed (full output: $builddir/make.out)"
}

# ---- tests -------------------------------------------------------------------------------------

log "make check"
# Results of an earlier run must not be counted again.
find "$builddir/tests" \( -name '*.trs' -o -name '*.log' \) -type f -delete 2>/dev/null || true
check_status=0
if [ "$tsan" = 1 ]; then
    # The whole suite under TSan would take longer than CI allows: the unit tests (the
    # dircache stress test among them) and the integration tests that run many threads.
    unit=$(sed -n 's/^\t\(unit\/test_[a-z_]*\).*/\1/p' "$top/tests/Makefile.am" | tr '\n' ' ')
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=0:second_deadlock_stack=1:exitcode=86}
    make -j1 check TESTS="${TSAN_TESTS:-$unit integration/read.sh integration/write.sh integration/load.sh integration/sync.sh}" ||
        check_status=$?
else
    make -j1 check || check_status=$?
fi

passed=0
failed=0
skipped=0
while read -r result; do
    case $result in
        PASS) passed=$((passed + 1)) ;;
        FAIL | ERROR | XPASS) failed=$((failed + 1)) ;;
        SKIP | XFAIL) skipped=$((skipped + 1)) ;;
    esac
done < <(find "$builddir/tests" -name '*.trs' -type f -exec sed -n 's/^:test-result: //p' {} +)

if [ "$check_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1 # make check failed before or outside the tests it counts
fi
if [ "$failed" -gt 0 ]; then
    suite_log=$builddir/tests/test-suite.log
    if [ -f "$suite_log" ]; then
        echo "======== $suite_log ========"
        cat "$suite_log"
        echo "======== end of $suite_log ========"
    fi
fi

if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
