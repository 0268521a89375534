#!/usr/bin/env python3
"""Read a whole file through ranged RPC cat calls of one size, sequentially over PAR keep-alive
connections (one thread each), to show what the request size costs the node.

    bench-ranges.py URL CID SIZE LEN [PAR]

URL is the RPC base (http://127.0.0.1:PORT/api/v0). Each call is
POST cat?arg=CID&offset=O&length=LEN (the last one shorter); the answers are read to their end
in 1 MiB reads and checked for length. Prints one line:
    len LEN par PAR requests N seconds S mbps M
"""
import http.client
import sys
import threading
import time
import urllib.parse


def main(argv):
    if len(argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    url, cid, size, length = argv[0], argv[1], int(argv[2]), int(argv[3])
    par = int(argv[4]) if len(argv) > 4 else 1
    u = urllib.parse.urlsplit(url)
    base = u.path.rstrip("/")
    offs = list(range(0, size, length))
    nreq = len(offs)
    offs.reverse()
    lock = threading.Lock()
    errors = []

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        try:
            while True:
                with lock:
                    if not offs or errors:
                        return
                    off = offs.pop()
                n = min(length, size - off)
                conn.request("POST", "%s/cat?arg=%s&offset=%d&length=%d" %
                             (base, urllib.parse.quote(cid), off, n), body=b"",
                             headers={"User-Agent": "ipfsfs-bench/1.0"})
                resp = conn.getresponse()
                got = 0
                while True:
                    b = resp.read(1 << 20)
                    if not b:
                        break
                    got += len(b)
                if resp.status != 200 or got != n:
                    errors.append("offset %d: HTTP %d, %d of %d bytes" % (off, resp.status, got, n))
                    return
        except (OSError, http.client.HTTPException) as e:
            errors.append(str(e))
        finally:
            conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(par)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - t0
    if errors:
        sys.stderr.write("bench-ranges.py: %s\n" % errors[0])
        return 1
    print("len %d par %d requests %d seconds %.3f mbps %.1f" % (length, par, nreq, secs, size / secs / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
