#!/usr/bin/env bash
# start-node.sh - start the pinned js-ipfs test node on free loopback ports.
#
# Usage: tests/node/start-node.sh REPO_DIR
#   Initialises REPO_DIR if needed (offline: no swarm, no bootstrap), starts the daemon in the
#   background, waits until the RPC API answers, and prints two lines:
#     IPFS_API=<multiaddr>    the API address (also written by the node to REPO_DIR/api)
#     IPFS_PID=<pid>
#   The daemon's output goes to REPO_DIR/daemon.log. Stop it with: kill <pid>.
#   Set IPFS_API_PORT to reuse a fixed port (for restart tests); otherwise a free one is chosen.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=${1:?usage: start-node.sh REPO_DIR}
mkdir -p "$repo"
repo=$(cd "$repo" && pwd)
jsipfs="$here/node_modules/.bin/jsipfs"
if [ ! -x "$jsipfs" ]; then
    echo "start-node.sh: js-ipfs is not installed; run: (cd $here && npm ci)" >&2
    exit 1
fi
export IPFS_PATH="$repo"
export NODE_OPTIONS="--require $here/polyfill.cjs ${NODE_OPTIONS:-}"
export NODE_NO_WARNINGS=1

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A killed daemon leaves its lock and api file behind; jsipfs config would trip over both.
rm -rf "$repo/repo.lock" "$repo/api"
if [ ! -f "$repo/config" ]; then
    "$jsipfs" init --empty-repo >"$repo/init.log" 2>&1 || {
        cat "$repo/init.log" >&2
        exit 1
    }
fi
api_port=${IPFS_API_PORT:-$(free_port)}
gw_port=$(free_port)
rpc_port=$(free_port)
"$jsipfs" config --json Addresses.Swarm '[]' >/dev/null
"$jsipfs" config --json Addresses.Delegates '[]' >/dev/null
"$jsipfs" config --json Bootstrap '[]' >/dev/null
"$jsipfs" config Addresses.API "/ip4/127.0.0.1/tcp/$api_port" >/dev/null
"$jsipfs" config Addresses.Gateway "/ip4/127.0.0.1/tcp/$gw_port" >/dev/null
"$jsipfs" config Addresses.RPC "/ip4/127.0.0.1/tcp/$rpc_port" >/dev/null
nohup "$jsipfs" daemon --offline >"$repo/daemon.log" 2>&1 </dev/null &
pid=$!
api="/ip4/127.0.0.1/tcp/$api_port/http"
for _ in $(seq 1 300); do
    if curl -sf -X POST -m 2 "http://127.0.0.1:$api_port/api/v0/version" >/dev/null 2>&1; then
        echo "IPFS_API=$api"
        echo "IPFS_PID=$pid"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start-node.sh: the daemon exited; its log:" >&2
        cat "$repo/daemon.log" >&2
        exit 1
    fi
    sleep 0.2
done
echo "start-node.sh: the daemon did not answer within 60 s; its log:" >&2
cat "$repo/daemon.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
