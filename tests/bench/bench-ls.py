#!/usr/bin/env python3
"""Helpers for bench-ls.sh.

    bench-ls.py body OUT BOUNDARY N [DIRNAME]
        Write the multipart body of an `add` that creates the directory DIRNAME (default "dir";
        at least 2 characters: the test node cannot parse a 1-character filename) holding N
        files f00001.txt ... (content "file I\\n", all distinct): one
        application/x-directory part, then one application/octet-stream part per file, each
        with a percent-encoded relative filename (dir%2Ff00001.txt).
    bench-ls.py root
        Read add NDJSON on stdin and print the Hash of the last line (the root directory).
"""
import json
import sys


def body(out, boundary, n, dirname="dir"):
    b = boundary.encode()
    with open(out, "wb") as f:
        def part(name, ctype, data):
            f.write(b"--" + b + b"\r\n")
            f.write(('Content-Disposition: form-data; name="file"; filename="%s"\r\n' % name).encode())
            f.write(("Content-Type: %s\r\n\r\n" % ctype).encode())
            f.write(data)
            f.write(b"\r\n")

        part(dirname, "application/x-directory", b"")
        width = max(5, len(str(n)))
        for i in range(1, n + 1):
            part("%s%%2Ff%0*d.txt" % (dirname, width, i), "application/octet-stream",
                 ("file %d\n" % i).encode())
        f.write(b"--" + b + b"--\r\n")


def root():
    last = None
    for line in sys.stdin:
        line = line.strip()
        if line:
            obj = json.loads(line)
            if "Hash" in obj:
                last = obj
    if last is None:
        sys.exit("add returned no hash")
    print(last["Hash"])


def main(argv):
    if len(argv) >= 4 and argv[0] == "body":
        body(argv[1], argv[2], int(argv[3]), *(argv[4:5]))
    elif argv and argv[0] == "root":
        root()
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
