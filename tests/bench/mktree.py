#!/usr/bin/env python3
"""mktree.py - deterministic, source-like trees and git repositories for bench-tree.sh.

Usage:
  mktree.py tree DIR [--variant V] [--files N] [--dirs D]
      Write a tree of N files (default 1000) in D directories (default 40) under DIR: D / 5
      top-level directories (src, lib, include, tests, docs, ...), each with 4 subdirectories.
      Sizes are 512-8192 bytes. Most files are C-, Python-, shell- or Markdown-like text; about
      3 % are binary (random bytes). The shape (names, sizes, kinds) depends only on N and D; the
      bytes depend on V too, so that every variant has the same shape and size but its own
      content (no block of one variant is in another: a content-addressed store would otherwise
      find a second copy already there).
  mktree.py repo DIR [--variant V] [--files N]
      Make a git repository in DIR (a new directory) of N files (default 40) in 3 commits: the
      first adds 70 % of the files, the second adds 15 % and edits 3 files, the third adds the
      rest and edits 3 more. Author, committer and dates are fixed.

Prints one line: the number of files, bytes and directories written.
"""

import argparse
import os
import random
import subprocess
import sys

SHAPE_SEED = 12
TOP = ["src", "lib", "include", "tests", "docs", "tools", "examples", "scripts", "data", "contrib",
       "bench", "misc"]
SUB = ["core", "util", "net", "io", "fmt", "mem", "proto", "cli"]
EXT = {"src": ".c", "lib": ".c", "include": ".h", "tests": ".py", "docs": ".md", "tools": ".py",
       "examples": ".c", "scripts": ".sh", "data": ".txt", "contrib": ".c", "bench": ".sh",
       "misc": ".txt"}
WORDS = ("node block chunk store cache entry name path file dir link root hash cid spool queue sync "
         "read write open close flush commit retry state count size offset length buffer index "
         "table list map key value token parse format encode decode split join merge check "
         "verify error status result config option limit timeout thread lock wait signal").split()


def ident(rnd):
    return "_".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 3)))


def c_line(rnd):
    k = rnd.randrange(10)
    if k == 0:
        return "/* %s %s %s. */" % (rnd.choice(WORDS).capitalize(), rnd.choice(WORDS), rnd.choice(WORDS))
    if k == 1:
        return "static int %s(struct %s *%s, size_t %s)" % (ident(rnd), ident(rnd), rnd.choice(WORDS), rnd.choice(WORDS))
    if k == 2:
        return "{"
    if k == 3:
        return "}"
    if k == 4:
        return "    if (%s < %d)" % (ident(rnd), rnd.randint(0, 4096))
    if k == 5:
        return "        return -%s;" % rnd.choice(["EIO", "ENOENT", "EINVAL", "ENOMEM", "EAGAIN"])
    if k == 6:
        return "    %s = %s(%s, %d);" % (ident(rnd), ident(rnd), rnd.choice(WORDS), rnd.randint(0, 1 << 20))
    if k == 7:
        return "#include \"%s.h\"" % ident(rnd)
    if k == 8:
        return ""
    return "    %s->%s += %s;" % (rnd.choice(WORDS), ident(rnd), ident(rnd))


def py_line(rnd):
    k = rnd.randrange(6)
    if k == 0:
        return "def %s(%s, %s):" % (ident(rnd), rnd.choice(WORDS), rnd.choice(WORDS))
    if k == 1:
        return "    %s = %s(%d)" % (ident(rnd), ident(rnd), rnd.randint(0, 9999))
    if k == 2:
        return "    if %s is None:" % ident(rnd)
    if k == 3:
        return "        return %s" % ident(rnd)
    if k == 4:
        return "# %s %s %s" % (rnd.choice(WORDS), rnd.choice(WORDS), rnd.choice(WORDS))
    return ""


def sh_line(rnd):
    k = rnd.randrange(4)
    if k == 0:
        return "%s=${%s:-%d}" % (ident(rnd).upper(), ident(rnd).upper(), rnd.randint(0, 100))
    if k == 1:
        return "%s \"$%s\" >/dev/null || exit 1" % (rnd.choice(WORDS), ident(rnd).upper())
    if k == 2:
        return "# %s %s" % (rnd.choice(WORDS), rnd.choice(WORDS))
    return ""


def text_line(rnd):
    n = rnd.randint(3, 14)
    return " ".join(rnd.choice(WORDS) for _ in range(n)).capitalize() + "."


LINES = {".c": c_line, ".h": c_line, ".py": py_line, ".sh": sh_line, ".md": text_line,
         ".txt": text_line}


def content(rnd, ext, size, binary):
    if binary:
        return rnd.randbytes(size)
    gen = LINES[ext]
    out = []
    n = 0
    while n < size:
        line = gen(rnd) + "\n"
        out.append(line)
        n += len(line)
    data = "".join(out).encode()[:size]
    return data[:-1] + b"\n"


def shape(nfiles, ndirs):
    """[(relative path, size, binary)] for the tree; depends on nfiles and ndirs only."""
    rnd = random.Random(SHAPE_SEED)
    ntop = max(1, ndirs // 5)
    dirs = []
    for t in range(ntop):
        top = TOP[t % len(TOP)] + ("" if t < len(TOP) else str(t))
        dirs.append(top)
        for s in range((ndirs - ntop) // ntop + (1 if t < (ndirs - ntop) % ntop else 0)):
            dirs.append(os.path.join(top, SUB[s % len(SUB)] + ("" if s < len(SUB) else str(s))))
    files = []
    for i in range(nfiles):
        d = dirs[i % len(dirs)] if i < len(dirs) else rnd.choice(dirs)
        top = d.split(os.sep)[0].rstrip("0123456789")
        binary = rnd.random() < 0.03
        ext = ".bin" if binary else EXT.get(top, ".txt")
        files.append((os.path.join(d, "%s_%04d%s" % (rnd.choice(WORDS), i, ext)),
                      rnd.randint(512, 8192), binary))
    return dirs, files


def write_tree(top, variant, nfiles, ndirs, only=None):
    dirs, files = shape(nfiles, ndirs)
    total = 0
    for d in dirs:
        os.makedirs(os.path.join(top, d), exist_ok=True)
    for i, (rel, size, binary) in enumerate(files):
        if only is not None and i not in only:
            continue
        rnd = random.Random("%d/%d/%s" % (SHAPE_SEED, variant, rel))
        data = content(rnd, os.path.splitext(rel)[1], size, binary)
        with open(os.path.join(top, rel), "wb") as f:
            f.write(data)
        total += len(data)
    return len(files) if only is None else len(only), total, len(dirs), files


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid",
               GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z",
               GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
    subprocess.run(["git", "-C", repo] + list(args), check=True, env=env, stdout=subprocess.DEVNULL)


def edit(path, variant, step):
    with open(path, "ab") as f:
        f.write(("/* edit %d of variant %d */\n" % (step, variant)).encode())


def make_repo(top, variant, nfiles):
    os.makedirs(top)
    git(top, "init", "-q", "-b", "main")
    ndirs = max(5, nfiles // 8)
    first, second = int(nfiles * 0.7), int(nfiles * 0.85)
    _, total, nd, files = write_tree(top, variant, nfiles, ndirs, only=set(range(first)))
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "first")
    _, t2, _, _ = write_tree(top, variant, nfiles, ndirs, only=set(range(first, second)))
    for i in range(3):
        edit(os.path.join(top, files[i][0]), variant, 2)
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "second")
    _, t3, _, _ = write_tree(top, variant, nfiles, ndirs, only=set(range(second, nfiles)))
    for i in range(3, 6):
        edit(os.path.join(top, files[i][0]), variant, 3)
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "third")
    return nfiles, total + t2 + t3, nd


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["tree", "repo"])
    p.add_argument("dir")
    p.add_argument("--variant", type=int, default=0)
    p.add_argument("--files", type=int)
    p.add_argument("--dirs", type=int, default=40)
    a = p.parse_args()
    if a.what == "tree":
        n, total, nd, _ = write_tree(a.dir, a.variant, a.files or 1000, a.dirs)
    else:
        n, total, nd = make_repo(a.dir, a.variant, a.files or 40)
    print("%d files, %d bytes, %d directories" % (n, total, nd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
