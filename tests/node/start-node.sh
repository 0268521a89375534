#!/usr/bin/env bash
# start-node.sh - start the test node, Kubo (pinned; see kubo.sh), on free loopback ports.
#
# Usage: tests/node/start-node.sh REPO_DIR
#   Initialises REPO_DIR if needed (`ipfs init --profile=test --empty-repo`: loopback only, no
#   bootstrap peers, no mDNS), starts `ipfs daemon --offline` in the background, waits until the
#   RPC API answers, and prints:
#     IPFS_API=<multiaddr>      the RPC API (also in REPO_DIR/api, written by the daemon)
#     IPFS_GATEWAY=<url>        its HTTP gateway (http://127.0.0.1:PORT)
#     IPFS_PID=<pid>
#     IPFS_BIN=<path>           the Kubo binary
#   The daemon's output goes to REPO_DIR/daemon.log. Stop it with: kill <pid>.
# Environment:
#   IPFS_API_PORT     reuse a fixed API port (restart tests); otherwise the daemon picks a free one
#   IPFS_ONLINE=1     start online (swarm on a free loopback port, still no bootstrap peers):
#                     what `ipfs mount` needs
#   IPFSFS_KUBO, IPFSFS_CACHE   see kubo.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=${1:?usage: start-node.sh REPO_DIR}
mkdir -p "$repo"
repo=$(cd "$repo" && pwd)
ipfs=$("$here/kubo.sh" --find-only --quiet) || ipfs=$("$here/kubo.sh") || {
    echo "start-node.sh: no Kubo binary (see the messages above)" >&2
    exit 1
}
export IPFS_PATH="$repo"

# A killed daemon leaves its lock and api file behind.
rm -f "$repo/repo.lock" "$repo/api" "$repo/gateway"
if [ ! -f "$repo/config" ]; then
    "$ipfs" init --profile=test --empty-repo >"$repo/init.log" 2>&1 || {
        cat "$repo/init.log" >&2
        exit 1
    }
    # Nothing leaves this machine: no bootstrap, no routers, no autoconf lookups.
    "$ipfs" config --json Bootstrap '[]' >/dev/null
    "$ipfs" config --json Discovery.MDNS.Enabled false >/dev/null
    "$ipfs" config --json AutoConf.Enabled false >/dev/null 2>&1 || true
    "$ipfs" config --json Routing.DelegatedRouters '[]' >/dev/null 2>&1 || true
    "$ipfs" config --json Ipns.DelegatedPublishers '[]' >/dev/null 2>&1 || true
    "$ipfs" config --json DNS.Resolvers '{}' >/dev/null 2>&1 || true
fi
api_port=${IPFS_API_PORT:-0}
"$ipfs" config Addresses.API "/ip4/127.0.0.1/tcp/$api_port" >/dev/null
"$ipfs" config Addresses.Gateway "/ip4/127.0.0.1/tcp/0" >/dev/null
"$ipfs" config --json Addresses.Swarm '["/ip4/127.0.0.1/tcp/0"]' >/dev/null
mode=(--offline)
[ "${IPFS_ONLINE:-0}" = 1 ] && mode=()
nohup "$ipfs" daemon "${mode[@]}" >"$repo/daemon.log" 2>&1 </dev/null &
pid=$!
for _ in $(seq 1 300); do
    if [ -s "$repo/api" ]; then
        api=$(tr -d '\n' <"$repo/api")
        port=$(sed -n 's#^/ip4/127.0.0.1/tcp/\([0-9]*\).*#\1#p' <<<"$api")
        if [ -n "$port" ] &&
            curl -sf -X POST -m 2 "http://127.0.0.1:$port/api/v0/version" >/dev/null 2>&1; then
            gw=$(sed -n 's#.*Gateway server listening on /ip4/127.0.0.1/tcp/\([0-9]*\).*#\1#p' \
                "$repo/daemon.log" | head -n 1)
            echo "IPFS_API=/ip4/127.0.0.1/tcp/$port/http"
            echo "IPFS_GATEWAY=${gw:+http://127.0.0.1:$gw}"
            echo "IPFS_PID=$pid"
            echo "IPFS_BIN=$ipfs"
            exit 0
        fi
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start-node.sh: the daemon exited; its log:" >&2
        cat "$repo/daemon.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "start-node.sh: the daemon did not answer within 30 s; its log:" >&2
cat "$repo/daemon.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
