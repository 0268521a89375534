#!/usr/bin/env python3
"""gwproxy.py - a fault-injecting HTTP proxy in front of a real trustless gateway (Kubo's), for
gateway.sh.

Listens on a free loopback port and forwards each GET to the upstream gateway. What it does to
each answer is read from a mode file when the request arrives, so a test switches faults
without restarting it:

    pass              forward untouched (also when the mode file is missing or empty)
    flip              flip one byte in the middle of the body (same length, same headers)
    truncate          send the full Content-Length, then only half the body, and close
    limit SECS        do not ask: answer 429 Too Many Requests with Retry-After: SECS
    busy              do not ask: answer 503 with no Retry-After
    stall             do not ask: accept the request and never answer (until the client goes)
    trickle [N [SECS]]  ask, then send the real answer's status and headers at once and its body
                      N bytes (default 64) every SECS seconds (default 0.3): a gateway that
                      never stops sending, yet takes minutes for one block
    other CID         ask the gateway for block CID instead of the one requested (a valid
                      block, but not the one asked for)
    big               do not ask: answer 200 with a body of 3 MiB of zeros
    notfound          do not ask: answer 404
    file PATH         do not ask: answer 200 with the bytes of PATH (e.g. a saved, older IPNS
                      record: a valid one, but not the newest)
    cars MISS FAULT...  block requests (?format=raw) for the CIDs listed in the file MISS (one
                      a line) answer 404, CAR requests (?format=car) get FAULT (one of the
                      modes above: pass, flip, truncate, stall, other CID...), the rest pass:
                      a reader that finds no leaf as a block must take the CAR

One line per request goes to --log: the path and the mode applied. The port is written to
--port-file once it listens. The proxy exits by itself after --max-seconds (default 900).
"""
import argparse
import http.client
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def read_mode(path):
    try:
        with open(path) as f:
            words = f.read().split()
    except OSError:
        words = []
    return words or ["pass"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def note(self, mode):
        with self.server.log_lock:
            with open(self.server.opts.log, "a") as f:
                f.write("%s %s\n" % (self.path, " ".join(mode)))

    def plain(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def trickle(self, status, ctype, body, args):
        try:
            piece = max(1, int(args[0])) if args else 64
            pause = float(args[1]) if len(args) > 1 else 0.3
        except ValueError:
            piece, pause = 64, 0.3
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(0, len(body), piece):
                self.wfile.write(body[i : i + piece])
                self.wfile.flush()
                if time.time() > self.server.deadline:
                    break
                time.sleep(pause)
        except OSError:
            pass  # the client gave up
        self.close_connection = True

    def do_GET(self):
        mode = read_mode(self.server.opts.mode_file)
        self.note(mode)
        if mode[0] == "cars" and len(mode) > 2:
            try:
                with open(mode[1]) as f:
                    miss = set(f.read().split())
            except OSError:
                miss = set()
            m = re.match(r"^/ipfs/([^/?]+)\?(.*)$", self.path)
            if m and "format=raw" in m.group(2) and m.group(1) in miss:
                return self.plain(404, b"not here\n")
            mode = mode[2:] if m and "format=car" in m.group(2) else ["pass"]
        kind = mode[0]
        if kind == "limit":
            return self.plain(429, b"slow down\n", [("Retry-After", mode[1])])
        if kind == "busy":
            return self.plain(503, b"busy\n")
        if kind == "notfound":
            return self.plain(404, b"not here\n")
        if kind == "file" and len(mode) > 1:
            with open(mode[1], "rb") as f:
                data = f.read()
            return self.plain(200, data, [("Content-Type", "application/vnd.ipfs.ipns-record")])
        if kind == "big":
            return self.plain(200, bytes(3 << 20), [("Content-Type", "application/vnd.ipld.raw")])
        if kind == "stall":
            # Hold the connection open, answering nothing, until the client gives up.
            try:
                self.connection.settimeout(1.0)
                while True:
                    try:
                        if not self.connection.recv(1):
                            break
                    except OSError:
                        pass
                    if time.time() > self.server.deadline:
                        break
            finally:
                self.close_connection = True
            return
        path = self.path
        if kind == "other" and len(mode) > 1:
            path = re.sub(r"^/ipfs/[^/?]+", "/ipfs/" + mode[1], path)
        up = http.client.HTTPConnection(self.server.opts.upstream, timeout=60)
        try:
            hdrs = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")}
            up.request("GET", path, headers=hdrs)
            r = up.getresponse()
            body = r.read()
            status = r.status
            ctype = r.getheader("Content-Type", "application/octet-stream")
            location = r.getheader("Location")
        finally:
            up.close()
        if kind == "flip" and body:
            b = bytearray(body)
            b[len(b) // 2] ^= 0x01
            body = bytes(b)
        if kind == "trickle":
            return self.trickle(status, ctype, body, mode[1:])
        if kind == "truncate" and len(body) > 1:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        extra = [("Location", location)] if location else []
        self.plain(status, body, [("Content-Type", ctype)] + extra)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True, help="HOST:PORT of the gateway")
    p.add_argument("--mode-file", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", default=os.devnull)
    p.add_argument("--max-seconds", type=float, default=900)
    opts = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.opts = opts
    srv.log_lock = threading.Lock()
    srv.deadline = time.time() + opts.max_seconds
    tmp = opts.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, opts.port_file)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    while time.time() < srv.deadline:
        time.sleep(1)
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
