#!/usr/bin/env python3
"""Random 4 KiB reads: through a mounted file (os.pread) or as ranged RPC cat calls.

    bench-random.py mount PATH SIZE N SEED [LEN]
    bench-random.py rpc URL CID SIZE N SEED [LEN]

Both modes read the same N offsets (drawn from SEED, uniform in [0, SIZE - LEN]) in the same
order, LEN bytes each (default 4096). "rpc" POSTs `cat?arg=CID&offset=O&length=LEN` over one
keep-alive connection (http.client), reading each answer to its end. Prints "key value" lines:
reads, bytes, total_s, mean_us, median_us, p90_us, p99_us, max_us, first_us, digest (sha256
of all bytes read, to check that both modes read the same), and for rpc the number of
connections opened.
"""
import hashlib
import http.client
import os
import random
import sys
import time
import urllib.parse


def offsets(size, n, seed, length):
    rnd = random.Random(seed)
    return [rnd.randrange(0, size - length + 1) for _ in range(n)]


def summary(lat_ns, nbytes, total_ns, digest, extra=None):
    lat = sorted(lat_ns)
    n = len(lat)

    def pct(p):
        return lat[min(n - 1, int(p * n))] / 1e3

    out = {
        "reads": n,
        "bytes": nbytes,
        "total_s": "%.3f" % (total_ns / 1e9),
        "mean_us": "%.1f" % (sum(lat) / n / 1e3),
        "median_us": "%.1f" % pct(0.5),
        "p90_us": "%.1f" % pct(0.9),
        "p99_us": "%.1f" % pct(0.99),
        "max_us": "%.1f" % (lat[-1] / 1e3),
        "first_us": "%.1f" % (lat_ns[0] / 1e3),
        "digest": digest.hexdigest()[:16],
    }
    out.update(extra or {})
    for k, v in out.items():
        print(k, v)


def run_mount(path, size, n, seed, length):
    offs = offsets(size, n, seed, length)
    digest = hashlib.sha256()
    lat = []
    nbytes = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        t_start = time.perf_counter_ns()
        for off in offs:
            t0 = time.perf_counter_ns()
            data = os.pread(fd, length, off)
            lat.append(time.perf_counter_ns() - t0)
            if len(data) != length:
                raise SystemExit("pread(%d, %d) returned %d bytes" % (off, length, len(data)))
            nbytes += len(data)
            digest.update(data)
        total = time.perf_counter_ns() - t_start
    finally:
        os.close(fd)
    summary(lat, nbytes, total, digest)


def run_rpc(url, cid, size, n, seed, length):
    offs = offsets(size, n, seed, length)
    u = urllib.parse.urlsplit(url)
    base = u.path.rstrip("/")
    connections = 0
    conn = None

    def connect():
        nonlocal conn, connections
        if conn is not None:
            conn.close()
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        connections += 1

    connect()
    digest = hashlib.sha256()
    lat = []
    nbytes = 0
    headers = {"User-Agent": "ipfsfs-bench/1.0", "Content-Length": "0"}
    t_start = time.perf_counter_ns()
    for off in offs:
        path = "%s/cat?arg=%s&offset=%d&length=%d" % (base, urllib.parse.quote(cid), off, length)
        t0 = time.perf_counter_ns()
        for attempt in (1, 2):
            try:
                conn.request("POST", path, body=b"", headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                if attempt == 2:
                    raise
                connect()  # the server closed the keep-alive connection: reopen, counted
        lat.append(time.perf_counter_ns() - t0)
        if resp.status != 200 or len(data) != length:
            raise SystemExit("cat offset=%d: HTTP %d, %d bytes: %r" % (off, resp.status, len(data), data[:200]))
        if resp.will_close:
            connect()
        nbytes += len(data)
        digest.update(data)
    total = time.perf_counter_ns() - t_start
    conn.close()
    summary(lat, nbytes, total, digest, {"connections": connections})


def main(argv):
    if len(argv) >= 5 and argv[0] == "mount":
        length = int(argv[5]) if len(argv) > 5 else 4096
        run_mount(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), length)
    elif len(argv) >= 6 and argv[0] == "rpc":
        length = int(argv[6]) if len(argv) > 6 else 4096
        run_rpc(argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5]), length)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
