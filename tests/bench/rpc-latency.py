#!/usr/bin/env python3
"""Latency of the node calls that writing one small file through ipfsfs makes (see the write
path in tests/bench/README.md), over one keep-alive connection, as ipfsfs sends them:

    rpc-latency.py URL [N]      URL: http://127.0.0.1:PORT/api/v0; N calls of each (default 50)

Works in MFS under /rpc-latency-<pid> (removed at the end). Prints one line per call:
"CALL mean_ms median_ms p90_ms".
"""
import http.client
import os
import statistics
import sys
import time
import urllib.parse


def main(argv):
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    u = urllib.parse.urlsplit(argv[0])
    n = int(argv[1]) if len(argv) > 1 else 50
    base = u.path.rstrip("/")
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    top = "/rpc-latency-%d" % os.getpid()

    def call(cmd, args, body=None, ctype=None):
        q = "&".join("%s=%s" % (k, urllib.parse.quote(v, safe="")) for k, v in args)
        headers = {"Content-Length": str(len(body or b""))}
        if ctype:
            headers["Content-Type"] = ctype
        t0 = time.perf_counter()
        conn.request("POST", "%s/%s?%s" % (base, cmd, q), body=body or b"", headers=headers)
        r = conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        return dt, r.status, data

    def add_body(payload):
        b = b"rpclatency"
        body = (b"--" + b + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n--" + b + b"--\r\n")
        return body, "multipart/form-data; boundary=rpclatency"

    results = {}

    def rec(name, dt):
        results.setdefault(name, []).append(dt * 1000)

    call("files/mkdir", [("arg", top), ("parents", "true")])
    empty = None
    for i in range(n):
        payload = os.urandom(4096)
        dt, st, _ = call("files/stat", [("arg", "%s/f%d" % (top, i))])
        rec("files/stat (missing name)", dt)
        body, ct = add_body(b"")
        dt, st, data = call("add", [("pin", "true")], body, ct)
        rec("add (empty file, pin=true)", dt)
        empty = empty or data.decode().strip().splitlines()[-1].split('"Hash":"')[1].split('"')[0]
        dt, st, _ = call("files/cp", [("arg", "/ipfs/" + empty), ("arg", "%s/f%d" % (top, i))])
        rec("files/cp (create the name)", dt)
        body, ct = add_body(payload)
        dt, st, data = call("add", [("pin", "true")], body, ct)
        rec("add (4 KiB, pin=true)", dt)
        cid = data.decode().strip().splitlines()[-1].split('"Hash":"')[1].split('"')[0]
        dt, st, _ = call("files/cp", [("arg", "/ipfs/" + cid), ("arg", "%s/.tmp%d" % (top, i))])
        rec("files/cp (temporary name)", dt)
        dt, st, _ = call("files/mv", [("arg", "%s/.tmp%d" % (top, i)), ("arg", "%s/f%d" % (top, i))])
        rec("files/mv (onto the name)", dt)
        dt, st, _ = call("files/stat", [("arg", top)])
        rec("files/stat (the directory)", dt)
        dt, st, _ = call("version", [])
        rec("version (no work: HTTP round trip)", dt)
    call("files/rm", [("arg", top), ("recursive", "true")])
    total = 0.0
    for name, v in results.items():
        v.sort()
        total += statistics.mean(v)
        print("%-36s mean %7.2f ms  median %7.2f ms  p90 %7.2f ms" %
              (name, statistics.mean(v), statistics.median(v), v[int(0.9 * len(v))]))
    print("%-36s mean %7.2f ms (all but version)" % ("sum per file", total - statistics.mean(results["version (no work: HTTP round trip)"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
