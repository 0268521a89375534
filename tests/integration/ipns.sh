#!/usr/bin/env bash
# ipns.sh - the IPNS namespace (ipfsfs --ipns): names published by a real Kubo (offline,
# `name publish --allow-offline` with short TTLs), read through the mount with ordinary programs;
# a republish shows up after the TTL; files already open keep their content; changes are
# refused; unknown names and a dead node give the documented errors in time; every spelling of a
# key works (k51..., bafz..., the peer IDs 12D3... and Qm...). Then the same names through a
# gateway (no --api): records fetched with ?format=ipns-record (always in base36) and verified;
# the kernel keeps a name as long as its resolution remains; a republish shows after the TTL and
# not before; a gateway that corrupts or bloats the record, serves an older one, or an expired
# one, refused. Last, DNSLink: dnsmasq serves TXT records on a loopback address, to a second Kubo
# run in a mount namespace whose /etc/resolv.conf names it.
#
# "Not before the old entry expired" is checked through the gateway only: through the node,
# Kubo learns a publish of its own at once (its name cache takes the new record), so a
# republish on the node that answers name/resolve shows within ipfsfs's one second.
#
# Runs from automake (exit 0 pass, 1 fail, 77 skip, 99 hard error) or by hand:
#   IPFSFS_BIN=build/src/ipfsfs tests/integration/ipns.sh
#
# shellcheck source-path=SCRIPTDIR disable=SC2012
# (SC2012: ls is one of the programs under test)

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_binary
require_fuse
require_node
lib_init

T=5
if ! start_node node; then
    not_ok "the test node starts"
    finish
fi
ok "the test node starts ($NODE_API)"

A=$WORK/a
B=$WORK/b
mkdir -p "$A/sub" "$B/sub"
printf 'version A\n' >"$A/hello.txt"
printf 'deep A\n' >"$A/sub/deep.txt"
gen_file "$A/big" $((1024 * 1024 + 7)) 1
printf 'version B\n' >"$B/hello.txt"
printf 'deep B\n' >"$B/sub/deep.txt"
gen_file "$B/big" $((300 * 1024)) 2
if CA=$(add_dir "$A") && CB=$(add_dir "$B"); then
    ok "two trees added ($CA, $CB)"
else
    not_ok "two trees added"
    finish
fi
K1=$(kubo key gen --type=ed25519 --ipns-base=base36 k1 2>/dev/null)
K2=$(kubo key gen --type=ed25519 --ipns-base=base36 k2 2>/dev/null)
UNPUBLISHED=$(kubo key gen --type=ed25519 --ipns-base=base36 never 2>/dev/null)
publish() { kubo name publish --allow-offline --key="$1" --ttl="$2" "/ipfs/$3" >/dev/null 2>&1; }
if publish k1 2s "$CA" && publish k2 1h "$CB"; then
    ok "k1 ($K1) published to A with a TTL of 2 s, k2 to B"
else
    not_ok "names published"
    finish
fi

MNT=$WORK/ipns
if ! mount_ipfsfs "$MNT" --ipns --api="$NODE_API" --timeout=$T; then
    not_ok "ipfsfs --ipns mounts"
    finish
fi
ok "ipfsfs --ipns mounts"

listing=$(ls "$MNT" 2>&1)
if grep -qx "$K1" <<<"$listing" && grep -qx "$K2" <<<"$listing"; then
    ok "ls of the mount lists the node's keys"
else
    not_ok "ls of the mount lists the node's keys" "got: $listing"
fi
check "diff -r of an IPNS name against what it points to" diff -r "$A" "$MNT/$K1"
check "diff -r of another name" diff -r "$B" "$MNT/$K2"
check_eq "cat a file under a name" "$(cat "$MNT/$K1/sub/deep.txt" 2>&1)" "deep A"
check_eq "user.ipfs.cid of MOUNTPOINT/<name> is the CID it resolves to now" \
    "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$MNT/$K1" 2>&1)" "$CA"
# Read-only, and shown so: no write permission anywhere (as under /ipfs), so cp -a and rsync
# copy the same modes from either mount.
modes=$({ find "$MNT" "$MNT/$K1" -maxdepth 0 -printf '%m\n' && find "$MNT/$K1/" ! -type l -printf '%m\n'; } 2>&1 | sort -u)
if [ -n "$modes" ] && ! grep -qE '[2367]' <<<"$modes"; then
    ok "no write permission is shown under an --ipns mount ($(tr '\n' ' ' <<<"$modes"))"
else
    not_ok "no write permission is shown under an --ipns mount" "modes: $modes"
fi
check_errno "a change is refused: EROFS (create)" EROFS create "$MNT/new"
check_errno "a change is refused: EROFS (mkdir)" EROFS mkdir "$MNT/$K1/newdir"
check_errno "an unknown name (a key never published) is ENOENT" ENOENT stat "$MNT/$UNPUBLISHED"
check_errno "a name that is no key and no domain is ENOENT" ENOENT stat "$MNT/no-such-name.invalid"

# A file opened before the name moves keeps reading what it opened; a program whose working
# directory is inside the name works on in it (with what the name holds now).
exec 7<"$MNT/$K1/hello.txt"
python3 -c '
import os, sys, time
os.chdir(sys.argv[1])
for _ in range(300):
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.1)
print(sorted(os.listdir(".")), open("deep.txt").read().strip())' "$MNT/$K1/sub" "$WORK/republished" \
    >"$WORK/cwd.out" 2>&1 &
cwd_pid=$!
# Kept for the gateway part: k1's record at sequence 0, and a record that expires in 2 s.
curl -s -m 10 -o "$WORK/k1-seq0.rec" "$NODE_GATEWAY/ipns/$K1?format=ipns-record"
K4=$(kubo key gen --type=ed25519 --ipns-base=base36 k4 2>/dev/null)
kubo name publish --allow-offline --key=k4 --ttl=1s --lifetime=2s "/ipfs/$CA" >/dev/null 2>&1
curl -s -m 10 -o "$WORK/k4-short.rec" "$NODE_GATEWAY/ipns/$K4?format=ipns-record"
t0=$(now)
publish k1 2s "$CB"
switched=""
for _ in $(seq 1 80); do
    if [ "$(cat "$MNT/$K1/hello.txt" 2>/dev/null)" = "version B" ]; then
        switched=$(elapsed "$t0")
        break
    fi
    sleep 0.1
done
if [ -n "$switched" ] && lt "$switched" 6; then
    ok "after a republish, the new content shows within TTL + a margin ($switched s; TTL 2 s)"
else
    not_ok "after a republish, the new content shows within TTL + a margin" \
        "still $(cat "$MNT/$K1/hello.txt" 2>&1) after $(elapsed "$t0") s"
fi
check "... and diff -r matches the new tree" diff -r "$B" "$MNT/$K1"
check_eq "a file opened before keeps reading the content it opened" "$(cat <&7)" "version A"
exec 7<&-
touch "$WORK/republished"
wait "$cwd_pid" || true
check_eq "a program working inside the name before the republish works on in it" \
    "$(cat "$WORK/cwd.out")" "['deep.txt'] deep B"
check_eq "user.ipfs.cid follows the name" \
    "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$MNT/$K1" 2>&1)" "$CB"

# Every spelling of a key: base36 (k51..., k2k4...), base32 (bafz...), and the peer ID (the bare
# multihash in base58btc: 12D3Koo... inlines an Ed25519 key, Qm... hashes an RSA key).
KR=$(kubo key gen --type=rsa --size=2048 --ipns-base=base36 kr 2>/dev/null)
publish kr 1h "$CA"
spelling() { kubo key list -l --ipns-base="$1" 2>/dev/null | awk -v k="$2" '$2 == k { print $1 }'; }
K2_B32=$(spelling base32 k2)
K2_PEER=$(spelling b58mh k2)
KR_B32=$(spelling base32 kr)
KR_PEER=$(spelling b58mh kr)
for pair in "$K2_B32:version B:Ed25519 in base32" "$K2_PEER:version B:Ed25519 as a 12D3 peer ID" \
    "$KR:version A:RSA in base36" "$KR_B32:version A:RSA in base32" \
    "$KR_PEER:version A:RSA as a Qm peer ID"; do
    IFS=: read -r n want what <<<"$pair"
    check_eq "through the node: a key $what ($n)" "$(cat "$MNT/$n/hello.txt" 2>&1)" "$want"
done

# A dead node: lookups of names not known yet fail within the timeout.
K3=$(kubo key gen --type=ed25519 --ipns-base=base36 k3 2>/dev/null)
publish k3 1h "$CA"
stop_node
check_errno_within "the node gone: a name fails within the timeout (EIO or ETIMEDOUT)" \
    $((T + 3)) "EIO|ETIMEDOUT|ENOENT" stat "$MNT/$K3"
check_unmount "unmount; ipfsfs exits 0 with a clean log" "$MNT"

# ---- the node back; --publish ------------------------------------------------------------------

REUSE_PORT=1 start_node node || not_ok "the node comes back"

# ---- --publish: the names of an /ipfs mount published under a key, read through /ipns ---------

KP=$(kubo key gen --type=ed25519 --ipns-base=base36 pub 2>/dev/null)
MP=$WORK/ipfs-pub
MI=$WORK/ipns-pub
# wait_file FILE WANT SECS: until FILE reads WANT; prints the seconds it took, or "never"
wait_file() {
    local t0
    t0=$(now)
    for _ in $(seq 1 $(($3 * 5))); do
        [ "$(cat "$1" 2>/dev/null)" = "$2" ] && {
            elapsed "$t0"
            return 0
        }
        sleep 0.2
    done
    echo never
}
if mount_ipfsfs "$MP" --api="$NODE_API" --store="$WORK/pubstore" --publish=pub --timeout=$T &&
    mount_ipfsfs "$MI" --ipns --api="$NODE_API" --timeout=$T; then
    check "cp -r a folder into a mount with --publish=pub" cp -r "$A" "$MP/site"
    dt=$(wait_file "$MI/$KP/site/hello.txt" "version A" 15)
    check "the folder is published: /ipns/<pub>/site reads it ($dt s)" test "$dt" != never
    check "diff -r through /ipns/<pub>" diff -r "$A" "$MI/$KP/site"
    check_eq "the stats name the published name" \
        "$(getfattr --absolute-names --only-values -n user.ipfsfs.stats "$MP" |
            sed -n 's/^publish_name //p')" "$KP"
    printf 'changed\n' >"$MP/site/hello.txt"
    dt=$(wait_file "$MI/$KP/site/hello.txt" changed 15)
    check "a change is published: the name follows ($dt s)" test "$dt" != never
    printf 'last\n' >"$MP/last.txt"
    check_unmount "unmount right after a change" "$MP"
    dt=$(wait_file "$MI/$KP/last.txt" last 10)
    check "the last change was published before the mount went ($dt s)" test "$dt" != never
    check_unmount "unmount the IPNS mount" "$MI"
else
    not_ok "mounts with --publish=pub and --ipns"
fi
mkdir -p "$WORK/m-nokey"
check_fails_with "--publish with a key the node does not have is refused" "no key named" \
    "$IPFSFS_BIN" -f --api="$NODE_API" --store="$WORK/nokeystore" --publish=nokey "$WORK/m-nokey"
check_fails_with "--publish with --write-through is refused" "--write-through" \
    "$IPFSFS_BIN" -f --api="$NODE_API" --write-through --publish=pub "$WORK/m-nokey"
GWHP=${NODE_GATEWAY#http://}
PROXY=$IPFSFS_SRCDIR/tests/integration/gwproxy.py
: >"$WORK/gw.mode"
python3 "$PROXY" --upstream "$GWHP" --mode-file "$WORK/gw.mode" --port-file "$WORK/gw.port" \
    --log "$WORK/gw.log" --max-seconds 600 &
track_pid $!
for _ in $(seq 1 100); do
    [ -s "$WORK/gw.port" ] && break
    sleep 0.1
done
GWP=http://127.0.0.1:$(cat "$WORK/gw.port")
M=$WORK/ipns-gw
if mount_ipfsfs "$M" --ipns --gateway="$GWP" --store="$WORK/gwstore" --timeout=$T; then
    ok "ipfsfs --ipns --gateway mounts (no node)"
    check "through the gateway: diff -r of a name (its record verified)" diff -r "$B" "$M/$K2"
    if grep -q "format=ipns-record" "$WORK/gw.log"; then
        ok "the record was asked with ?format=ipns-record"
    else
        not_ok "the record was asked with ?format=ipns-record" "$(head -3 "$WORK/gw.log")"
    fi
    # Every spelling, through the gateway: asked in base36 (Kubo's gateway redirects the others),
    # and the record's key checked against the name (inlined in 12D3/k51/bafz names, hashed in
    # Qm/k2k4/bafzbei ones).
    for pair in "$K2_B32:version B:Ed25519 in base32" \
        "$K2_PEER:version B:Ed25519 as a 12D3 peer ID" "$KR:version A:RSA in base36" \
        "$KR_B32:version A:RSA in base32" "$KR_PEER:version A:RSA as a Qm peer ID"; do
        IFS=: read -r n want what <<<"$pair"
        check_eq "through the gateway: a key $what ($n)" \
            "$(cat "$M/$n/hello.txt" 2>&1)" "$want"
    done
    if grep -qE "^/ipns/(bafz|12D3|Qm)" "$WORK/gw.log"; then
        not_ok "records are asked by the base36 name" "$(grep -E "^/ipns/(bafz|12D3|Qm)" "$WORK/gw.log" | head -3)"
    else
        ok "records are asked by the base36 name, whatever the spelling"
    fi

    # The kernel's entry and attribute timeouts are what remains of the name's resolution: a
    # record with a TTL of 1 h is kept 60 s (the cap), so a second stat 1.5 s later (past the
    # mount's usual 1 s) does not reach ipfsfs at all.
    ipns_counts() {
        getfattr --absolute-names --only-values -n user.ipfsfs.stats "$M" 2>/dev/null |
            grep -E "^ipns_(resolves|cache_hits) " | tr '\n' ' '
    }
    stat "$M/$KR" >/dev/null 2>&1
    c0=$(ipns_counts)
    sleep 1.5
    stat "$M/$KR" >/dev/null 2>&1
    c1=$(ipns_counts)
    if [ -n "$c0" ] && [ "$c0" = "$c1" ]; then
        ok "the kernel keeps a name while its resolution remains (no lookup 1.5 s later: $c1)"
    else
        not_ok "the kernel keeps a name while its resolution remains" "before: $c0" "after: $c1"
    fi

    # Republish through the gateway: the old content until the entry (TTL 3 s) expires, then the
    # new one. The name is resolved after t0, so it is kept until t0 + 3 s at least.
    K5=$(kubo key gen --type=ed25519 --ipns-base=base36 k5 2>/dev/null)
    publish k5 3s "$CA"
    t0=$(now)
    first=$(cat "$M/$K5/hello.txt" 2>&1)
    publish k5 3s "$CB"
    switched="" other=""
    for _ in $(seq 1 100); do
        got=$(cat "$M/$K5/hello.txt" 2>&1)
        if [ "$got" = "version B" ]; then
            switched=$(elapsed "$t0")
            break
        elif [ "$got" != "version A" ]; then
            other=$got
        fi
        sleep 0.1
    done
    check_eq "through the gateway: the name reads A before the republish" "$first" "version A"
    if [ -n "$switched" ] && ! lt "$switched" 3 && [ -z "$other" ]; then
        ok "through the gateway: after a republish the old content stays until the old entry expired ($switched s; TTL 3 s)"
    else
        not_ok "through the gateway: after a republish the old content stays until the old entry expired" \
            "new content at ${switched:-never} s; TTL 3 s; other answers: ${other:-none}"
    fi
    if [ -n "$switched" ] && lt "$switched" 6; then
        ok "through the gateway: the new content shows within TTL + a margin ($switched s)"
    else
        not_ok "through the gateway: the new content shows within TTL + a margin" \
            "still $(cat "$M/$K5/hello.txt" 2>&1) after $(elapsed "$t0") s"
    fi
    # A key never published: Kubo's gateway answers HTTP 500 "routing: not found". That is an
    # answer (ENOENT), not a failing gateway: set aside, it would fail the next name as well.
    check_errno_within "through the gateway: an unknown name is ENOENT, within the timeout" \
        $((T + 3)) ENOENT stat "$M/$UNPUBLISHED"
    check_errno_within "... and a second time" $((T + 3)) ENOENT stat "$M/$UNPUBLISHED"
    # k1 is at sequence 1 now (B). A gateway that answers its older record (sequence 0, A):
    # passed over once the newer one was seen, never shown. (Also: a name not asked before
    # resolves right after the unknown one.)
    check_eq "through the gateway: k1 at sequence 1 reads B" \
        "$(cat "$M/$K1/hello.txt" 2>&1)" "version B"
    echo "file $WORK/k1-seq0.rec" >"$WORK/gw.mode"
    sleep 3 # past k1's TTL (2 s): the next lookup asks the gateway again
    # The newer record stays (valid for hours): the name neither goes back to A nor vanishes
    # (it was ENOENT: the gateway had sent a record, just an older one).
    check_eq "a record with a lower sequence than one seen is refused: the newer one stays" \
        "$(cat "$M/$K1/hello.txt" 2>&1)" "version B"
    check "... and the log says so" grep -q "no gateway gives a record as new as the one kept" \
        "${MOUNT_LOG[$M]}"
    # A record past its validity (published with --lifetime=2s, kept since): refused.
    echo "file $WORK/k4-short.rec" >"$WORK/gw.mode"
    check_errno_within "an expired record is refused (ENOENT), within the timeout" \
        $((T + 3)) "ENOENT" stat "$M/$K4"
    echo flip >"$WORK/gw.mode"
    check_errno_within "a record with a flipped byte is refused (EIO), within the timeout" \
        $((T + 3)) "EIO" stat "$M/$K3"
    echo big >"$WORK/gw.mode"
    sleep 2 # past the kept record's TTL: asked again
    check_errno_within "an oversized record is refused" $((T + 3)) "EIO|ENOENT|ETIMEDOUT" \
        stat "$M/$K1"
    if grep -q "refused" "${MOUNT_LOG[$M]}"; then
        ok "the log says what was refused"
    else
        not_ok "the log says what was refused" "$(tail -5 "${MOUNT_LOG[$M]}")"
    fi
    echo pass >"$WORK/gw.mode"
    check_unmount "unmount (gateway)" "$M"
else
    not_ok "ipfsfs --ipns --gateway mounts (no node)"
fi

check_fails_with "--ipns with --write-through is refused" "read-only" \
    "$IPFSFS_BIN" --ipns --write-through --api="$NODE_API" "$WORK/nowhere"

# ---- DNSLink through Kubo, with a resolver of our own ---------------------------------------

# dnsmasq on a loopback address answers the TXT records; a second Kubo runs in a mount
# namespace of its own whose /etc/resolv.conf names that address (the machine's stays as it is).
if ! command -v dnsmasq >/dev/null 2>&1 || ! command -v unshare >/dev/null 2>&1; then
    ok "DNSLink through the node # SKIP dnsmasq or unshare is not installed (apt-get install dnsmasq-base)"
    finish
fi
DNSIP=127.83.83.$((RANDOM % 200 + 20))
{
    echo no-resolv
    echo no-hosts
    echo "listen-address=$DNSIP"
    echo port=53
    echo bind-interfaces
    echo "local=/ipfsfs.test/"
    echo "txt-record=_dnslink.site.ipfsfs.test,\"dnslink=/ipfs/$CA\""
    echo "txt-record=_dnslink.deep.ipfsfs.test,\"dnslink=/ipfs/$CA/sub\""
} >"$WORK/dnsmasq.conf"
dnsmasq --conf-file="$WORK/dnsmasq.conf" --pid-file="$WORK/dnsmasq.pid" --keep-in-foreground \
    --log-facility="$WORK/dnsmasq.log" &
track_pid $!
echo "nameserver $DNSIP" >"$WORK/resolv.conf"
out=$(unshare -m --propagation private sh -c \
    "mount --bind '$WORK/resolv.conf' /etc/resolv.conf && exec '$IPFSFS_NODE_DIR/start-node.sh' '$WORK/dnsnode'")
DAPI=$(sed -n 's/^IPFS_API=//p' <<<"$out")
DPID=$(sed -n 's/^IPFS_PID=//p' <<<"$out")
if [ -z "$DAPI" ] || [ -z "$DPID" ]; then
    not_ok "a Kubo that asks our resolver starts" "$out"
    finish
fi
track_pid "$DPID"
ok "dnsmasq on $DNSIP, and a Kubo that asks it ($DAPI)"
SAVED_URL=$NODE_URL
NODE_URL=http://127.0.0.1:$(sed -n 's#^/ip4/127.0.0.1/tcp/\([0-9]*\).*#\1#p' <<<"$DAPI")/api/v0
DCA=$(add_dir "$A")
NODE_URL=$SAVED_URL
check_eq "the tree is on that node too" "$DCA" "$CA"
M=$WORK/ipns-dns
if mount_ipfsfs "$M" --ipns --api="$DAPI" --timeout=$T; then
    check "DNSLink: diff -r of a domain against what its TXT record points to" \
        diff -r "$A" "$M/site.ipfsfs.test"
    check_eq "DNSLink: user.ipfs.cid of the domain" \
        "$(getfattr --absolute-names --only-values -n user.ipfs.cid "$M/site.ipfsfs.test" 2>&1)" "$CA"
    check_eq "DNSLink: a record with a path (dnslink=/ipfs/CID/sub)" \
        "$(cat "$M/deep.ipfsfs.test/deep.txt" 2>&1)" "deep A"
    check_errno_within "DNSLink: a domain with no record is ENOENT, within the timeout" \
        $((T + 3)) ENOENT stat "$M/nothing.ipfsfs.test"
    check_unmount "unmount (DNSLink)" "$M"
else
    not_ok "ipfsfs --ipns mounts on the node that asks our resolver"
fi
kill "$DPID" 2>/dev/null
finish
