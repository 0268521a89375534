#!/usr/bin/env bash
# record-fixtures.sh - record tests/fixtures/kubo/* from a real Kubo (the pinned test node).
#
# Usage: tests/record-fixtures.sh [FIXTURE_DIR]     (default: tests/fixtures/kubo)
#   Starts a throwaway Kubo with tests/node/start-node.sh, puts known content in it (the
#   known-answer tree of shared/docs/kubo-rpc.md §8, a symlink, an empty directory, MFS names),
#   records the replies test_rpcjson reads, and stops the node. Replies are stored byte for
#   byte as the node sent them (bodies only; a trailer, when there is one, is in *.trailer).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here/fixtures/kubo}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/ipfsfs-record.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

env=$("$here/node/start-node.sh" "$work/repo")
pid=$(sed -n 's/^IPFS_PID=//p' <<<"$env")
api=$(sed -n 's/^IPFS_API=//p' <<<"$env")
port=$(sed -n 's#^/ip4/127.0.0.1/tcp/\([0-9]*\).*#\1#p' <<<"$api")
base="http://127.0.0.1:$port/api/v0"

# rec NAME CMD [curl args...]: the body to NAME, the X-Stream-Error trailer (if any) to
# NAME.trailer. Trailers are shown by curl only with -D after the body: read them from there.
rec() {
    local name=$1 cmd=$2
    shift 2
    curl -sS -X POST -D "$work/h" -o "$out/$name" "$@" "$base/$cmd"
    local t
    t=$(tr -d '\r' <"$work/h" | sed -n 's/^X-Stream-Error: //p')
    if [ -n "$t" ]; then printf '%s\n' "$t" >"$out/$name.trailer"; else rm -f "$out/$name.trailer"; fi
}
# post CMD [curl args...]: run a command for its effect.
post() {
    local cmd=$1
    shift
    curl -sS -f -X POST -o /dev/null "$@" "$base/$cmd"
}
add() { # add FILE [query] -> root CID
    curl -sS -f -X POST -F "file=@$1" "$base/add?quieter=true&pin=true${2:+&$2}" |
        sed -n 's/.*"Hash":"\([^"]*\)".*/\1/p' | tail -n 1
}

# Content: d/{h.txt=hello\n, sub/w.txt=world\n}, plus a symlink link -> h.txt.
mkdir -p "$work/d/sub"
printf 'hello\n' >"$work/d/h.txt"
printf 'world\n' >"$work/d/sub/w.txt"
ln -s h.txt "$work/d/link"
printf 'Test' >"$work/test.txt"
IPFS_PATH="$work/repo" "$(sed -n 's/^IPFS_BIN=//p' <<<"$env")" add -Q -r "$work/d" >"$work/dcid"
dir=$(cat "$work/dcid")
empty=QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn
post "files/mkdir?arg=/m/empty&parents=true" # stores the empty directory's block

rec version.json version
rec id.json id
rec add.ndjson "add?pin=false" -F "file=@$work/test.txt;filename=data"
rec ls_dir.json "ls?arg=/ipfs/$dir"
rec ls_dir_stream.ndjson "ls?arg=/ipfs/$dir&stream=true"
rec ls_dir_bare_stream.ndjson "ls?arg=/ipfs/$dir&stream=true&resolve-type=false&size=false"
rec ls_empty.json "ls?arg=/ipfs/$empty"
rec ls_empty_stream.ndjson "ls?arg=/ipfs/$empty&stream=true"
# Stored mtimes in a listing (ModTime, RFC 3339; Go's zero time for none): t/{a at
# 1000000000.5, b at 1000000001}, added with --preserve-mtime.
mkdir -p "$work/t"
printf 'x\n' >"$work/t/a"
printf 'y\n' >"$work/t/b"
touch -d @1000000000.5 "$work/t/a"
touch -d @1000000001 "$work/t/b"
IPFS_PATH="$work/repo" "$(sed -n 's/^IPFS_BIN=//p' <<<"$env")" add -Q -r --preserve-mtime \
    "$work/t" >"$work/tcid"
rec ls_mtime.json "ls?arg=/ipfs/$(cat "$work/tcid")"

post "files/mkdir?arg=/m/sub&parents=true"
post "files/cp?arg=/ipfs/$dir/h.txt&arg=/m/h.txt"
post "files/chmod?arg=0600&arg=/m/h.txt"
rec files_ls_long.json "files/ls?arg=/m&long=true"
rec files_ls_empty.json "files/ls?arg=/m/empty&long=true"
rec files_stat_dir.json "files/stat?arg=/m/sub"
rec files_stat_file.json "files/stat?arg=/m/h.txt"
# Kubo 0.43 links a symlink but then answers "symlinks not yet supported".
curl -sS -X POST -o /dev/null "$base/files/cp?arg=/ipfs/$dir/link&arg=/m/link"
rec files_stat_symlink.json "files/stat?arg=/m/link"
post "files/cp?arg=/ipfs/$dir/h.txt&arg=/m/t.txt"
post "files/touch?arg=/m/t.txt&mtime=1700000000&mtime-nsecs=123456789"
rec files_stat_mtime.json "files/stat?arg=/m/t.txt"
rec files_rm_missing.json "files/rm?arg=/m/nope"
rec files_rm_dir.json "files/rm?arg=/m/sub"
rec files_rm_two.json "files/rm?arg=/m/sub&arg=/m/nope"
rec repo_stat.json "repo/stat?size-only=true"
# The Import settings: Kubo's defaults (all null), then the unixfs-v1-2025 profile's (last: the
# profile changes what add makes).
rec config_import.json "config?arg=Import"
post "config/profile/apply?arg=unixfs-v1-2025"
rec config_import_v1.json "config?arg=Import"

rec err_no_link.json "cat?arg=/ipfs/$dir/nope"
rec err_not_local.json "block/get?arg=QmWVNXRXR42EK19McGxjXTrq77didRfLDvV1neUzBkWPtM"
rec err_timeout.json "repo/gc?timeout=1ns"
rec err_404.txt nope
rec err_403.txt version -A "Mozilla/5.0"
echo "recorded $(find "$out" -maxdepth 1 -type f ! -name README ! -name '*hostile*' | wc -l) files" \
    "in $out from $(cat "$out/version.json")"
