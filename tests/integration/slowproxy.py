#!/usr/bin/env python3
"""slowproxy.py - a small fault-injecting TCP proxy for the ipfsfs fault tests (faults.sh).

Listens on a free loopback port and forwards every connection to the node's API. What it does
to each HTTP response is read from a mode file when the request starts, so a test switches
faults without restarting it:

    pass                     forward untouched (also when the mode file is missing or empty)
    delay SECS [MATCH]       hold each response back SECS seconds before its first byte
    stall BYTES [MATCH]      forward the first BYTES bytes of each response (status line and
                             headers included), then nothing more, never closing: a node that
                             stops in the middle of a body
    reset [MATCH]            close the connection as soon as a request arrives
    trickle BPS [MATCH]      forward each response (head and body) at BPS bytes a second: a
                             node that answers, but a byte now and then
    headers BPS [MATCH]      forward the response head (status line and headers) at BPS bytes
                             a second, the body at full speed: slow headers
    endless BPS [MATCH]      do not ask the node: answer "200 OK" with a chunked JSON body of
                             newlines that never ends, at BPS bytes a second
    errbody BPS [MATCH]      do not ask the node: answer "500" with a JSON error body that
                             never ends, at BPS bytes a second
    upload BPS [MATCH]       forward the request (head and body) to the node at BPS bytes a
                             second, the response untouched: a node that takes an upload
                             steadily, but slowly

With MATCH, only requests whose request line contains MATCH (e.g. "/api/v0/cat") are affected;
the others pass. The file may hold several such lines: the first whose MATCH a request's line
contains (or that has none) applies. Requests on a keep-alive connection are told apart by turn taking: data from
the client after the response to its previous request has started is a new request (curl does
not pipeline).

Usage: slowproxy.py --upstream HOST:PORT --mode-file FILE --port-file FILE
                    [--log FILE] [--max-seconds N] [--rcvbuf BYTES]
With --rcvbuf, the receive buffer of the connections from the client (SO_RCVBUF): with a
small one, an upload paced by the "upload" mode holds the client's bytes in its own send
queue, as a slow link does.
The chosen port is written to --port-file once the proxy listens (atomically). With --log,
one line per request: its request line, the mode applied, and whether it carried an
Authorization header (never its value... except a SHA-256 prefix, so a test can check that the
secret it set is the one that arrives). The proxy exits by itself after --max-seconds
(default 600), so a test that dies cannot leave it behind for long.
"""
import argparse
import asyncio
import hashlib
import os
import socket
import sys
import time

CHUNK = 65536
# Modes that hold the client's connection until the client gives up.
HOLD = ("stall", "endless", "errbody")
# Paced modes write this many times a second.
TICKS = 10


async def paced(writer, data, bps):
    """Write data at bps bytes a second."""
    step = max(1, bps // TICKS)
    for i in range(0, len(data), step):
        piece = data[i:i + step]
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(len(piece) / bps)


async def fake_answer(writer, mode):
    """An answer made up here, never ending: an endless 200 body, or an endless error body."""
    kind, bps = mode
    if kind == "endless":
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        first, filler = b"", b"\n"
    else:
        head = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        first, filler = b'{"Message":"', b"x"
    writer.write(head)
    step = max(1, bps // TICKS)
    body = first
    while True:
        body += filler * (step - len(body))
        writer.write(b"%x\r\n%s\r\n" % (len(body), body))
        await writer.drain()
        body = b""
        await asyncio.sleep(step / bps)


def read_mode(path, request_line):
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        mode = parse_mode(line.split(), request_line)
        if mode is not None:
            return mode
    return ("pass",)


def parse_mode(words, request_line):
    """The mode of one line for this request, or None (empty, unknown, or MATCH not in it)."""
    if not words:
        return None
    kind, args = words[0], words[1:]
    if kind == "delay" and args:
        mode, rest = ("delay", float(args[0])), args[1:]
    elif kind == "stall" and args:
        mode, rest = ("stall", int(args[0])), args[1:]
    elif kind == "reset":
        mode, rest = ("reset",), args
    elif kind in ("trickle", "headers", "endless", "errbody", "upload") and args:
        mode, rest = (kind, max(1, int(args[0]))), args[1:]
    elif kind == "pass":
        mode, rest = ("pass",), args
    else:
        return None
    if rest and rest[0].encode() not in request_line:
        return None
    return mode


class Proxy:
    def __init__(self, opts):
        self.opts = opts
        host, port = opts.upstream.rsplit(":", 1)
        self.up_host, self.up_port = host, int(port)
        self.log = open(opts.log, "a", encoding="utf-8", buffering=1) if opts.log else None
        self.tasks = set()

    def note(self, text):
        if self.log:
            self.log.write("%.3f %s\n" % (time.time(), text))

    async def handle(self, client_r, client_w):
        try:
            up_r, up_w = await asyncio.open_connection(self.up_host, self.up_port)
        except OSError as e:
            self.note("upstream connect failed: %s" % e)
            client_w.close()
            return
        state = {"new": True, "mode": ("pass",), "started": False, "sent": 0}

        async def client_to_upstream():
            try:
                while True:
                    data = await client_r.read(CHUNK)
                    if not data:
                        break
                    if state["new"]:
                        line = data.split(b"\r\n", 1)[0][:300]
                        state.update(new=False, started=False, sent=0, head=b"", head_done=False,
                                     mode=read_mode(self.opts.mode_file, line))
                        auth = "no auth"
                        for h in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
                            if h.lower().startswith(b"authorization:"):
                                value = h.split(b":", 1)[1].strip()
                                auth = "auth sha256:" + hashlib.sha256(value).hexdigest()[:16]
                        self.note("%s -> %s (%s)" % (line.decode("latin-1"),
                                                      " ".join(map(str, state["mode"])), auth))
                        if state["mode"][0] == "reset":
                            client_w.transport.abort()
                            up_w.transport.abort()
                            return
                        if state["mode"][0] in ("endless", "errbody"):
                            # The node never sees this request; the answer never ends, so the
                            # client cuts the connection.
                            await fake_answer(client_w, state["mode"])
                            return
                    if state["mode"][0] == "upload":
                        await paced(up_w, data, state["mode"][1])
                        continue
                    up_w.write(data)
                    await up_w.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                if up_w.can_write_eof():
                    try:
                        up_w.write_eof()
                    except OSError:
                        pass

        async def upstream_to_client():
            try:
                while True:
                    data = await up_r.read(CHUNK)
                    if not data:
                        break
                    mode = state["mode"]
                    if not state["started"]:
                        state["started"] = True
                        state["new"] = True  # the client's next bytes are a new request
                        if mode[0] == "delay":
                            await asyncio.sleep(mode[1])
                    if mode[0] == "stall":
                        room = mode[1] - state["sent"]
                        if room <= 0:
                            continue  # swallowed: the client waits for ever
                        data = data[:room]
                    state["sent"] += len(data)
                    if mode[0] == "trickle":
                        await paced(client_w, data, mode[1])
                        continue
                    if mode[0] == "headers" and not state.get("head_done"):
                        head = state.get("head", b"") + data
                        end = head.find(b"\r\n\r\n")
                        if end < 0:
                            state["head"] = head
                            await paced(client_w, data, mode[1])
                            continue
                        cut = len(data) - (len(head) - (end + 4))
                        await paced(client_w, data[:cut], mode[1])
                        state["head_done"] = True
                        data = data[cut:]
                    client_w.write(data)
                    await client_w.drain()
            except OSError:
                pass
            finally:
                if state["mode"][0] not in HOLD:
                    client_w.close()

        up = asyncio.ensure_future(upstream_to_client())
        down = asyncio.ensure_future(client_to_upstream())
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        if state["mode"][0] in HOLD and down.done() is False:
            # Stalled, or answering for ever: hold the connection until the client gives up.
            await down
        for t in (up, down):
            t.cancel()
        for w in (client_w, up_w):
            w.close()

    async def main(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.opts.rcvbuf:
            # Inherited by accepted connections: the client's send queue then fills as it
            # would before a slow link (by default the kernel here takes megabytes at once).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.opts.rcvbuf)
        sock.bind(("127.0.0.1", 0))
        server = await asyncio.start_server(self.handle, sock=sock)
        port = server.sockets[0].getsockname()[1]
        tmp = self.opts.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(str(port))
        os.rename(tmp, self.opts.port_file)
        self.note("listening on 127.0.0.1:%d, forwarding to %s" % (port, self.opts.upstream))
        async with server:
            await asyncio.sleep(self.opts.max_seconds)
        self.note("max-seconds reached, exiting")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--upstream", required=True, help="HOST:PORT of the node's API")
    p.add_argument("--mode-file", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log")
    p.add_argument("--max-seconds", type=float, default=600)
    p.add_argument("--rcvbuf", type=int, default=0)
    opts = p.parse_args()
    try:
        asyncio.run(Proxy(opts).main())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
