#!/usr/bin/env bash
# start-cluster.sh - start an IPFS Cluster on loopback: N Kubo nodes and N cluster peers (CRDT
# consensus, one shared secret), for the cluster tests and benchmarks.
#
# Usage: tests/node/start-cluster.sh [--basic-auth=I:USER:PASS] DIR [N]  (N: 3 by default, 1 to 9)
#   DIR/kuboI is the repo of Kubo I and DIR/clusterI the config of cluster peer I (I = 1..N).
#   Every port is a free loopback port picked now and written into the configs, so a node
#   stopped later comes back on the same ports with tests/node/start-cluster.sh --restart DIR I.
#   The Kubo nodes are online on loopback only (no bootstrap, no DHT): each has the others as
#   Peering peers, so they reconnect by themselves after a restart, and bitswap finds blocks
#   among them. Prints, for each I:
#     KUBO_API_I=<multiaddr>    Kubo's RPC API          KUBO_PID_I=<pid>
#     PROXY_API_I=<multiaddr>   the peer's Kubo-compatible proxy (what ipfsfs --api takes)
#     REST_API_I=<url>          the peer's REST API (ipfs-cluster-ctl --host, ipfsfs --cluster)
#     CLUSTER_PID_I=<pid>       CLUSTER_CTL=<path of ipfs-cluster-ctl>
#   and waits until every peer sees all N. Logs: DIR/kuboI/daemon.log, DIR/clusterI/service.log.
#   Stop them by their PIDs (kill PID).
#   --basic-auth=I:USER:PASS: peer I's REST API takes only requests with HTTP basic auth
#   USER:PASS (api.restapi.basic_auth_credentials); the others, and every proxy, take any.
# Environment: IPFSFS_KUBO, IPFSFS_CLUSTER_DIR, IPFSFS_CACHE (see kubo.sh and cluster.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
restart=0 auth=
while :; do
    case ${1:-} in
    --restart) restart=1 ;;
    --basic-auth=*) auth=${1#*=} ;;
    *) break ;;
    esac
    shift
done
dir=${1:?usage: start-cluster.sh [--restart] DIR [N | I]}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
ipfs=$("$here/kubo.sh" --find-only --quiet) || ipfs=$("$here/kubo.sh")
cl=$("$here/cluster.sh" --find-only --quiet) || cl=$("$here/cluster.sh")

# start_kubo I: start Kubo I in the background (its config is written already).
start_kubo() {
    local repo=$dir/kubo$1
    rm -f "$repo/repo.lock" "$repo/api"
    IPFS_PATH=$repo nohup "$ipfs" daemon >>"$repo/daemon.log" 2>&1 </dev/null &
    echo $! >"$repo/pid"
}

# start_peer I [BOOTSTRAP]: start cluster peer I in the background.
start_peer() {
    local cfg=$dir/cluster$1
    stat -c %s "$cfg/service.log" >"$cfg/log-start" 2>/dev/null || echo 0 >"$cfg/log-start"
    # shellcheck disable=SC2086 # BOOTSTRAP is empty or one flag with its value
    nohup "$cl/ipfs-cluster-service" --config "$cfg" daemon ${2:+--bootstrap "$2"} \
        >>"$cfg/service.log" 2>&1 </dev/null &
    echo $! >"$cfg/pid"
}

# wait_kubo I: until Kubo I answers its API (30 s).
wait_kubo() {
    local port
    port=$(cat "$dir/kubo$1/api-port")
    for _ in $(seq 1 300); do
        curl -sf -X POST -m 2 "http://127.0.0.1:$port/api/v0/version" >/dev/null 2>&1 && return 0
        kill -0 "$(cat "$dir/kubo$1/pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "start-cluster.sh: Kubo $1 did not start; its log:" >&2
    tail -n 30 "$dir/kubo$1/daemon.log" >&2
    return 1
}

# count_ok URL [USER:PASS]: how many entries of the JSON at URL (an array, or one object per
# line) have no error and are valid (0 when it does not answer)
count_ok() {
    { curl -sf -m 2 ${2:+-u "$2"} "$1" 2>/dev/null || true; } | python3 -c '
import json, sys
t = sys.stdin.read().strip()
try:
    v = json.loads(t); v = v if isinstance(v, list) else [v]
except ValueError:
    v = [json.loads(l) for l in t.splitlines() if l.strip()]
print(sum(1 for p in v if not p.get("error") and p.get("valid", True)))' 2>/dev/null || echo 0
}

# wait_count I PATH N WHAT: until peer I's REST API lists N good entries at PATH (60 s)
wait_count() {
    local rest n cred=
    rest=$(cat "$dir/cluster$1/rest-url")
    [ -f "$dir/cluster$1/basic-auth" ] && cred=$(cat "$dir/cluster$1/basic-auth")
    for _ in $(seq 1 600); do
        n=$(count_ok "$rest/$2" "$cred")
        [ "${n:-0}" -ge "$3" ] && return 0
        kill -0 "$(cat "$dir/cluster$1/pid")" 2>/dev/null || break
        sleep 0.1
    done
    echo "start-cluster.sh: cluster peer $1 $4; its log:" >&2
    tail -n 30 "$dir/cluster$1/service.log" >&2
    return 1
}

# wait_peers I N: until cluster peer I answers and lists N peers.
wait_peers() { wait_count "$1" peers "$2" "does not see $2 peers"; }

# wait_metrics I N: until peer I has N peers' freespace metrics: before that, the cluster
# cannot allocate a pin to them ("not enough peers to allocate CID").
wait_metrics() { wait_count "$1" monitor/metrics/freespace "$2" "has no metrics from $2 peers"; }

# wait_up I N: wait_peers, then wait_metrics, for peer I. IPFS Cluster 1.1.6 can panic while
# it starts (a nil RPC client in go-libp2p-gorpc's makeCall: seen once in CI, on a restart);
# a peer that died that way is started once more.
wait_up() {
    local cfg=$dir/cluster$1 from
    if wait_peers "$1" "$2" && wait_metrics "$1" "$2"; then
        return 0
    fi
    kill -0 "$(cat "$cfg/pid")" 2>/dev/null && return 1
    from=$(cat "$cfg/log-start" 2>/dev/null || echo 0)
    tail -c +"$((from + 1))" "$cfg/service.log" | grep -q '^panic:' || return 1
    echo "start-cluster.sh: cluster peer $1 panicked while starting (an IPFS Cluster bug):" \
        "starting it once more" >&2
    start_peer "$1"
    wait_peers "$1" "$2" && wait_metrics "$1" "$2"
}

print_one() {
    local i=$1
    echo "KUBO_API_$i=/ip4/127.0.0.1/tcp/$(cat "$dir/kubo$i/api-port")/http"
    echo "KUBO_PID_$i=$(cat "$dir/kubo$i/pid")"
    echo "PROXY_API_$i=/ip4/127.0.0.1/tcp/$(cat "$dir/cluster$i/proxy-port")/http"
    echo "REST_API_$i=$(cat "$dir/cluster$i/rest-url")"
    echo "CLUSTER_PID_$i=$(cat "$dir/cluster$i/pid")"
}

if [ "$restart" = 1 ]; then
    # --restart DIR I [kubo|cluster|both]: bring back one node on its ports.
    i=${2:?usage: start-cluster.sh --restart DIR I [kubo|cluster]}
    what=${3:-both}
    if [ "$what" != cluster ]; then
        start_kubo "$i"
        wait_kubo "$i"
    fi
    if [ "$what" != kubo ]; then
        start_peer "$i"
        wait_up "$i" "$(cat "$dir/size")"
    fi
    print_one "$i"
    exit 0
fi

n=${2:-3}
[[ "$n" =~ ^[1-9]$ ]] || {
    echo "start-cluster.sh: N must be 1 to 9" >&2
    exit 2
}
echo "$n" >"$dir/size"
# 6 ports per node: Kubo API, Kubo swarm, cluster swarm, REST API, proxy, pinning service API.
read -r -a ports <<<"$(python3 -c '
import socket, sys
socks = []
for _ in range(6 * int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$n")"
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

for i in $(seq 1 "$n"); do
    b=$(((i - 1) * 6))
    repo=$dir/kubo$i cfg=$dir/cluster$i
    rm -rf "$repo" "$cfg"
    export IPFS_PATH=$repo
    "$ipfs" init --profile=test --empty-repo >"$dir/init$i.log" 2>&1
    "$ipfs" config --json Bootstrap '[]' >/dev/null
    "$ipfs" config --json Discovery.MDNS.Enabled false >/dev/null
    "$ipfs" config --json AutoConf.Enabled false >/dev/null 2>&1 || true
    "$ipfs" config --json Routing.DelegatedRouters '[]' >/dev/null 2>&1 || true
    "$ipfs" config --json Ipns.DelegatedPublishers '[]' >/dev/null 2>&1 || true
    "$ipfs" config --json DNS.Resolvers '{}' >/dev/null 2>&1 || true
    "$ipfs" config Routing.Type none >/dev/null
    "$ipfs" config Addresses.API "/ip4/127.0.0.1/tcp/${ports[b]}" >/dev/null
    "$ipfs" config Addresses.Gateway /ip4/127.0.0.1/tcp/0 >/dev/null
    "$ipfs" config --json Addresses.Swarm "[\"/ip4/127.0.0.1/tcp/${ports[b + 1]}\"]" >/dev/null
    echo "${ports[b]}" >"$repo/api-port"
    echo "${ports[b + 1]}" >"$repo/swarm-port"
    "$ipfs" config Identity.PeerID >"$repo/peer-id"
    unset IPFS_PATH

    "$cl/ipfs-cluster-service" --config "$cfg" init --consensus crdt >"$dir/cinit$i.log" 2>&1
    cred=
    if [ "${auth%%:*}" = "$i" ]; then
        cred=${auth#*:}
        (umask 077 && echo "$cred" >"$cfg/basic-auth")
    fi
    python3 - "$cfg/service.json" "$i" "$secret" "${ports[@]:b:6}" "$cred" <<'PYEOF'
import json, sys
path, i, secret = sys.argv[1], sys.argv[2], sys.argv[3]
kapi, kswarm, cswarm, rest, proxy, pinsvc, cred = sys.argv[4:11]
d = json.load(open(path))
c = d["cluster"]
c["peername"] = "peer" + i
c["secret"] = secret
c["listen_multiaddress"] = ["/ip4/127.0.0.1/tcp/" + cswarm]
c["mdns_interval"] = "0s"
c["monitor_ping_interval"] = "2s"
c["peer_watch_interval"] = "1s"
d["api"]["restapi"]["http_listen_multiaddress"] = "/ip4/127.0.0.1/tcp/" + rest
d["api"]["ipfsproxy"]["listen_multiaddress"] = "/ip4/127.0.0.1/tcp/" + proxy
d["api"]["ipfsproxy"]["node_multiaddress"] = "/ip4/127.0.0.1/tcp/" + kapi
d["api"]["pinsvcapi"]["http_listen_multiaddress"] = "/ip4/127.0.0.1/tcp/" + pinsvc
d["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = "/ip4/127.0.0.1/tcp/" + kapi
d["ipfs_connector"]["ipfshttp"]["connect_swarms_delay"] = "1s"
d["consensus"]["crdt"]["trusted_peers"] = ["*"]
d["consensus"]["crdt"]["batching"] = {"max_batch_size": 0, "max_batch_age": "0s"}
# A pin broadcast a busy peer missed is had again within seconds, not at the default minute;
# the pubsub mesh forms within seconds too.
d["consensus"]["crdt"]["rebroadcast_interval"] = "2s"
c["pubsub"]["heartbeat_interval"] = "1s"
if cred:
    user, _, password = cred.partition(":")
    d["api"]["restapi"]["basic_auth_credentials"] = {user: password}
json.dump(d, open(path, "w"), indent=2)
PYEOF
    echo "${ports[b + 2]}" >"$cfg/swarm-port"
    echo "http://127.0.0.1:${ports[b + 3]}" >"$cfg/rest-url"
    echo "${ports[b + 4]}" >"$cfg/proxy-port"
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' \
        "$cfg/identity.json" >"$cfg/peer-id"
done

# Each cluster peer knows every other's address from the start (found through the cluster's own
# routing, peers that only bootstrapped to peer 1 could not reach each other for minutes).
for i in $(seq 1 "$n"); do
    python3 - "$dir" "$n" "$i" <<'PYEOF2'
import json, sys
d, n, i = sys.argv[1], int(sys.argv[2]), sys.argv[3]
path = f"{d}/cluster{i}/service.json"
cfg = json.load(open(path))
cfg["cluster"]["peer_addresses"] = [
    "/ip4/127.0.0.1/tcp/%s/p2p/%s" % (open(f"{d}/cluster{j}/swarm-port").read().strip(),
                                      open(f"{d}/cluster{j}/peer-id").read().strip())
    for j in range(1, n + 1) if str(j) != i]
json.dump(cfg, open(path, "w"), indent=2)
PYEOF2
done

# Each Kubo has the others as Peering peers (kept connected, reconnected after a restart).
for i in $(seq 1 "$n"); do
    peers=$(for j in $(seq 1 "$n"); do
        [ "$j" = "$i" ] && continue
        printf '{"ID":"%s","Addrs":["/ip4/127.0.0.1/tcp/%s"]}\n' "$(cat "$dir/kubo$j/peer-id")" \
            "$(cat "$dir/kubo$j/swarm-port")"
    done | paste -sd, -)
    IPFS_PATH=$dir/kubo$i "$ipfs" config --json Peering.Peers "[$peers]" >/dev/null
done
for i in $(seq 1 "$n"); do start_kubo "$i"; done
for i in $(seq 1 "$n"); do wait_kubo "$i"; done

for i in $(seq 1 "$n"); do start_peer "$i"; done
for i in $(seq 1 "$n"); do wait_up "$i" "$n"; done
echo "CLUSTER_CTL=$cl/ipfs-cluster-ctl"
for i in $(seq 1 "$n"); do print_one "$i"; done
