#!/usr/bin/env python3
"""make-corpus.py - (re)write the seed corpora in tests/fuzz/corpus/<harness>/ from
tests/fixtures and the known-answer CIDs of docs/kubo-rpc.md. Stdlib only; deterministic.
Run from anywhere: python3 tests/fuzz/make-corpus.py"""
import base64
import hashlib
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
OUT = os.path.join(HERE, "corpus")
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
B36 = "0123456789abcdefghijklmnopqrstuvwxyz"

CIDS = [
    "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR",  # Test
    "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",  # empty file
    "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn",  # empty directory
    "QmdzqLiAivQsXx9RMqiBVpDTwsFKSFC4zAuUiuAm8ut2jC",
    "bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6eu",
    "bafybeibfl22ps6ptnsmafng5u4njpyvpmqk7kzaxbqeuthfktb4ic54hlq",
    "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354",
    "zb2rhcEzJd7tNktiuFFLAxw7jRrJoK8TJjCxC63xcTbTsQPRe",
    "zdj7WjdCPFvakVe8jSu3x9GwWxvC65GLqVbw5ubqNzvWDr3za",
]


def b58decode(s):
    n = 0
    for ch in s:
        n = n * 58 + B58.index(ch)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * (len(s) - len(s.lstrip("1"))) + raw


def b58encode(b):
    n = int.from_bytes(b, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(b) - len(b.lstrip(b"\0"))) + out


def b36encode(b):
    n = int.from_bytes(b, "big")
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = B36[r] + out
    return out


def cid_bytes(cid):
    """Binary CID as stored in dag-pb links (v0: the bare multihash)."""
    if cid.startswith("Qm"):
        return b58decode(cid)
    if cid[0] == "z":
        return b58decode(cid[1:])
    if cid[0] == "b":
        body = cid[1:].upper()
        return base64.b32decode(body + "=" * (-len(body) % 8))
    raise ValueError(cid)


def v1_bytes(cid):
    b = cid_bytes(cid)
    return b"\x01\x70" + b if cid.startswith("Qm") else b


def all_strings(cid):
    """Every multibase spelling ipfsfs accepts for cid."""
    b = v1_bytes(cid)
    out = [cid, "b" + base64.b32encode(b).decode().lower().rstrip("=")]
    out.append("B" + base64.b32encode(b).decode().rstrip("="))
    hexal = base64.b32hexencode(b).decode().rstrip("=")
    out += ["v" + hexal.lower(), "V" + hexal]
    out += ["z" + b58encode(b), "k" + b36encode(b), "K" + b36encode(b).upper()]
    out += ["f" + b.hex(), "F" + b.hex().upper()]
    out += ["m" + base64.b64encode(b).decode().rstrip("="),
            "u" + base64.urlsafe_b64encode(b).decode().rstrip("="),
            "M" + base64.b64encode(b).decode(), "U" + base64.urlsafe_b64encode(b).decode()]
    if cid.startswith("Qm"):
        out.append("z" + cid)  # a base58btc multibase prefix on a v0 string: zQm...
    return out


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def fb(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def fv(num, value):
    return varint(num << 3) + varint(value)


def unixfs(type_, data=None, filesize=None, blocksizes=(), mode=None, mtime=None, fanout=None,
           hash_type=None, packed=False):
    out = fv(1, type_)
    if data is not None:
        out += fb(2, data)
    if filesize is not None:
        out += fv(3, filesize)
    if packed and blocksizes:
        out += fb(4, b"".join(varint(s) for s in blocksizes))
    else:
        for s in blocksizes:
            out += fv(4, s)
    if hash_type is not None:
        out += fv(5, hash_type)
    if fanout is not None:
        out += fv(6, fanout)
    if mode is not None:
        out += fv(7, mode)
    if mtime is not None:
        sec, nsec = mtime
        t = fv(1, sec)
        if nsec is not None:
            t += varint(2 << 3 | 5) + nsec.to_bytes(4, "little")
        out += fb(8, t)
    return out


def link(cid, name, tsize):
    return fb(1, cid_bytes(cid)) + fb(2, name) + fv(3, tsize)


def node(links, data):
    return b"".join(fb(2, lk) for lk in links) + (fb(1, data) if data is not None else b"")


def write(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture(rel):
    with open(os.path.join(FIX, rel), "rb") as f:
        return f.read()


def fixtures(*suffixes):
    for sub in ("kubo",):
        for fn in sorted(os.listdir(os.path.join(FIX, sub))):
            if fn.endswith(suffixes):
                yield sub + "_" + fn, fixture(os.path.join(sub, fn))


def main():
    # fuzz_car's seeds are recorded CARs (tests/fixtures/car), fuzz_ipns's recorded IPNS records
    # (tests/fixtures/ipns, behind a name-choosing byte): not made here, keep them.
    for d in os.listdir(OUT) if os.path.isdir(OUT) else ():
        if d not in ("fuzz_car", "fuzz_ipns"):
            shutil.rmtree(os.path.join(OUT, d), ignore_errors=True)
    T = CIDS[0]

    # cid: every spelling of every known CID, their binary forms, some varints.
    i = 0
    for c in CIDS:
        for s in all_strings(c):
            write("fuzz_cid", "str%03d" % i, s)
            i += 1
        write("fuzz_cid", "bin%03d" % i, cid_bytes(c))
        write("fuzz_cid", "binv1%03d" % i, v1_bytes(c))
        i += 1
    ident = b"\x01\x55\x00\x04Test"
    write("fuzz_cid", "identity", "b" + base64.b32encode(ident).decode().lower().rstrip("="))
    write("fuzz_cid", "identity_bin", ident)
    blake3 = b"\x01\x55\x1e\x20" + hashlib.sha256(b"x").digest()
    write("fuzz_cid", "blake3", "b" + base64.b32encode(blake3).decode().lower().rstrip("="))
    for n in (0, 1, 127, 128, 300, 2 ** 32, 2 ** 63 - 1):
        write("fuzz_cid", "varint%d" % n, varint(n))

    # multiaddr
    mas = ["/ip4/127.0.0.1/tcp/5001", "/ip4/127.0.0.1/tcp/5001/http", "/ip6/::1/tcp/5001",
           "/ip6zone/eth0/ip6/fe80::1/tcp/5001", "/dns/localhost/tcp/5001/https",
           "/dns4/node.example.com/tcp/443/tls/http", "/dns6/example.org./tcp/1",
           "/unix/run/ipfs.sock", "/unix/%2Frun%2Fipfs.sock", "  /ip4/1.2.3.4/tcp/80/p2p/QmX\n",
           "/ip4/127.0.0.1/tcp/5001/http/p2p/QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR",
           "/ip4/127.0.0.1/tcp/5001/sni/example.com/https", "/ip4/300.1.1.1/tcp/5001",
           "/ip4/127.0.0.1/tcp/70000", "/ip4/127.0.0.1/udp/5001", "/tcp/5001", "not-a-multiaddr",
           "/ip4/127.0.0.1/tcp/", "/unix/", "/dns/-bad-/tcp/1"]
    for k, m in enumerate(mas):
        write("fuzz_multiaddr", "ma%02d" % k, m)

    # rpcjson_ls: recorded ls replies and their stream lines
    for name, data in fixtures("json", "ndjson"):
        if "/ls" in name or name.split("_", 1)[1].startswith("ls"):
            write("fuzz_rpcjson_ls", name, data)
            for k, line in enumerate(data.splitlines()):
                write("fuzz_rpcjson_ls", "%s.line%d" % (name, k), line)
    write("fuzz_rpcjson_ls", "hamt_type5",
          '{"Objects":[{"Hash":"x","Links":[{"Name":"d","Hash":"%s","Size":0,"Type":5}]}]}' % T)
    write("fuzz_rpcjson_ls", "raw_and_strsize",
          '{"Objects":[{"Links":[{"Name":"r","Hash":"%s","Size":"4","Type":0,"Mode":"0755"}]}]}'
          % CIDS[4])

    # files_ls: Kubo (only Name without long; null when empty), recorded and by hand
    write("fuzz_rpcjson_files_ls", "kubo_rec_long", fixture("kubo/files_ls_long.json"))
    write("fuzz_rpcjson_files_ls", "kubo_rec_empty", fixture("kubo/files_ls_empty.json"))
    write("fuzz_rpcjson_files_ls", "kubo_long",
          '{"Entries":[{"Name":"a","Type":0,"Size":5000,"Hash":"%s"}]}' % CIDS[5])
    write("fuzz_rpcjson_files_ls", "kubo_null", '{"Entries":null}')
    write("fuzz_rpcjson_files_ls", "empty_array", '{"Entries":[]}')
    write("fuzz_rpcjson_files_ls", "kubo_short", '{"Entries":[{"Name":"x"}]}')

    # files_stat
    for name in ("files_stat_dir", "files_stat_file", "files_stat_symlink"):
        write("fuzz_rpcjson_files_stat", "kubo_rec_" + name, fixture("kubo/%s.json" % name))
    write("fuzz_rpcjson_files_stat", "kubo_file",
          '{"Hash":"%s","Size":4,"CumulativeSize":12,"Blocks":0,"Type":"file","Mode":"0644",'
          '"Mtime":1700000000,"MtimeNsecs":5}' % T)
    write("fuzz_rpcjson_files_stat", "symlink",
          '{"Hash":"%s","Size":"5","Type":"symlink","Mode":"020000000777"}' % T)

    # add_result
    for name, data in fixtures("ndjson"):
        if "add" in name:
            write("fuzz_rpcjson_add_result", name, data)
    write("fuzz_rpcjson_add_result", "progress",
          '{"Name":"data","Bytes":262144}\n{"Name":"data","Bytes":300000}\n'
          '{"Name":"data","Hash":"%s","Size":"300100"}\n' % T)

    # version
    write("fuzz_rpcjson_version", "kubo", fixture("kubo/version.json"))

    # rpc_error_message
    for name, data in fixtures("json", "txt"):
        if "err_" in name:
            write("fuzz_rpc_error_message", name, data)
    write("fuzz_rpc_error_message", "lowercase",
          '{"statusCode":500,"error":"Internal Server Error","message":"boom"}')
    write("fuzz_rpc_error_message", "trailer", "  can't remove some files \r\n")

    # ndjson: two control bytes (max_line, split seed), then a stream
    for k, (name, data) in enumerate(fixtures("ndjson")):
        write("fuzz_ndjson", name, bytes([0, k]) + data)
        write("fuzz_ndjson", name + ".small", bytes([40, k]) + data)
    write("fuzz_ndjson", "crlf", b"\x00\x07a\r\n\r\n  \nb  \r\nlast")

    # dag-pb blocks and UnixFS data
    blocks = {
        "test_file": fixture("dagpb/test_file.bin"),
        "wrap_test_txt": fixture("dagpb/wrap_test_txt.bin"),
        "empty_dir": node([], unixfs(1)),
        "dir2": node([link(CIDS[3], b"h.txt", 14), link(CIDS[2], b"sub", 65)], unixfs(1)),
        "hostile_dir": node([link(T, n, 12) for n in
                             (b"", b".", b"..", b"a/b", b"nul\0x", b"\xff\xfe", b"x" * 300,
                              b"ok")], unixfs(1)),
        "v1_links": node([link(CIDS[4], b"raw", 4), link(CIDS[5], b"v1", 12)], unixfs(1)),
        "symlink": node([], unixfs(4, b"../../../../etc/passwd")),
        "file_multi": node([link(CIDS[1], b"", 262158)] * 3,
                           unixfs(2, filesize=786432, blocksizes=[262144] * 3)),
        "file_packed": node([link(CIDS[1], b"", 10)] * 2,
                            unixfs(2, blocksizes=[5, 7], packed=True)),
        "file_lies": node([], unixfs(2, b"Test", filesize=1000)),
        "hamt": node([link(T, b"0Afile", 12)], unixfs(5, b"\x01", hash_type=0x22, fanout=256)),
        "meta": node([], unixfs(2, b"hi", filesize=2, mode=0o4755,
                                mtime=(1700000000, 123))),
        "neg_mtime": node([], unixfs(1, mtime=(2 ** 64 - 5, None))),
        "data_first": fb(1, unixfs(1)) + fb(2, link(T, b"late", 12)),
    }
    for name, blk in blocks.items():
        write("fuzz_dagpb", name, blk)
    for name, data in (("file", unixfs(2, b"Test", filesize=4)), ("dir", unixfs(1)),
                       ("symlink", unixfs(4, b"h.txt")), ("raw", unixfs(0, b"xyz")),
                       ("meta", unixfs(3)),
                       ("hamt", unixfs(5, b"\xff", hash_type=0x22, fanout=256)),
                       ("blocksizes", unixfs(2, filesize=9, blocksizes=[4, 5])),
                       ("packed", unixfs(2, blocksizes=[1, 2, 3], packed=True)),
                       ("mode_mtime", unixfs(1, mode=0o755, mtime=(1, 999999999))),
                       ("unknown_field", unixfs(2, b"a") + fv(15, 7) + fb(16, b"zz"))):
        write("fuzz_unixfs", name, data)
    store_corpus()


def store_corpus():
    """fuzz_store: sets of blocks (see tests/fuzz/fuzz_store.c)."""
    # store: blocks, each with a 2-byte little-endian length; REF(k) is a reference to block
    # i + 1 + k (fuzz_store.c resolves it to that block's hash), as a CIDv0 / CIDv1 dag-pb / raw.
    def ref(k, kind="v0"):
        mh = b"\x12\x20\xfa\xce" + bytes([k]) + b"\0" * 29
        return mh if kind == "v0" else (b"\x01\x70" if kind == "pb" else b"\x01\x55") + mh

    def rlink(k, name, tsize, kind="v0"):
        return fb(1, ref(k, kind)) + fb(2, name) + fv(3, tsize)

    def blocks_of(*bs):
        return b"".join(len(b).to_bytes(2, "little") + b for b in bs)

    leaf = node([], unixfs(2, b"hello\n", filesize=6))
    store = {
        "file_two_leaves": blocks_of(
            node([rlink(0, b"", 14), rlink(1, b"", 5, "raw")],
                 unixfs(2, filesize=11, blocksizes=[6, 5])), leaf, b"world"),
        "dir": blocks_of(
            node([rlink(0, b"a.txt", 14), rlink(1, b"raw", 5, "raw"), rlink(2, b"sub", 4, "pb")],
                 unixfs(1)), leaf, b"world", node([rlink(0, b"deep", 14)], unixfs(1)), leaf),
        "hamt_repeated_shard": blocks_of(
            node([rlink(0, b"%02X" % k, 50) for k in range(4)],
                 unixfs(5, b"\x0f", hash_type=0x22, fanout=256)),
            node([rlink(0, b"00alpha", 14), rlink(0, b"01beta", 14)],
                 unixfs(5, b"\x03", hash_type=0x22, fanout=256)), leaf),
        "file_same_leaf_many": blocks_of(
            node([rlink(0, b"", 6)] * 40, unixfs(2, filesize=240, blocksizes=[6] * 40)), leaf),
        "chain": blocks_of(*[node([rlink(0, b"", 6)], unixfs(2, filesize=6, blocksizes=[6]))
                             for _ in range(12)], leaf),
        "blocksizes_no_links": blocks_of(node([], unixfs(2, blocksizes=[1] * 1000))),
        "symlink": blocks_of(node([], unixfs(4, b"../x"))),
        "raw_only": blocks_of(b"just bytes"),
        "dir_hostile_names": blocks_of(
            node([rlink(0, n, 14) for n in (b"", b".", b"a/b", b"ok", b"ok")], unixfs(1)), leaf),
    }
    for name, data in store.items():
        write("fuzz_store", name, data)


if __name__ == "__main__":
    # `make-corpus.py fuzz_store` rewrites only that corpus.
    if sys.argv[1:] == ["fuzz_store"]:
        shutil.rmtree(os.path.join(OUT, "fuzz_store"), ignore_errors=True)
        store_corpus()
    else:
        main()
