#!/usr/bin/env python3
"""Restore check for scripts/bench (Python 3.11 stdlib only).

    bench-verify.py manifest TREE > FILE     record every entry of TREE
    bench-verify.py check FILE TREE          compare TREE with a recorded manifest

A manifest has one line per entry: kind, mode, size, content hash (SHA-1 of regular files,
target of symlinks) and path. Hashing everything costs a few seconds per GiB, little next to
a backup, and catches any corrupted byte. `check` prints one summary line and the first
differences, and exits 1 on any difference in entries, kinds, modes, sizes or contents.
mtimes are compared to the second and reported, but do not fail the check.
"""

import hashlib
import os
import stat
import sys


def entries(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            mode = stat.S_IMODE(st.st_mode)
            mtime = int(st.st_mtime)
            if stat.S_ISLNK(st.st_mode):
                yield rel, ("l", 0, 0, os.readlink(p)), mtime
            elif stat.S_ISDIR(st.st_mode):
                yield rel, ("d", mode, 0, ""), mtime
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha1()
                with open(p, "rb") as f:
                    while block := f.read(1 << 20):
                        h.update(block)
                yield rel, ("f", mode, st.st_size, h.hexdigest()), mtime
            else:
                yield rel, ("?", mode, 0, ""), mtime


def write_manifest(root):
    out = sys.stdout
    for rel, (kind, mode, size, digest), mtime in entries(root):
        # Directory mtimes change when a restore fills them; they are not compared.
        out.write(f"{kind}\t{mode:o}\t{size}\t{digest}\t{mtime if kind == 'f' else 0}\t{rel}\n")


def read_manifest(path):
    m = {}
    with open(path) as f:
        for line in f:
            kind, mode, size, digest, mtime, rel = line.rstrip("\n").split("\t", 5)
            m[rel] = ((kind, int(mode, 8), int(size), digest), int(mtime))
    return m


def check(manifest_path, root):
    want = read_manifest(manifest_path)
    problems, mtime_diffs = [], 0
    seen = set()
    files = nbytes = 0
    for rel, meta, mtime in entries(root):
        seen.add(rel)
        if meta[0] == "f":
            files += 1
            nbytes += meta[2]
        if rel not in want:
            problems.append(f"extra: {rel}")
            continue
        wmeta, wmtime = want[rel]
        if meta != wmeta:
            what = [n for n, a, b in zip(("kind", "mode", "size", "content"), meta, wmeta) if a != b]
            problems.append(f"differs ({', '.join(what)}): {rel}")
        elif meta[0] == "f" and mtime != wmtime:
            mtime_diffs += 1
    for rel in want:
        if rel not in seen:
            problems.append(f"missing: {rel}")
    want_files = sum(1 for meta, _ in want.values() if meta[0] == "f")
    want_bytes = sum(meta[2] for meta, _ in want.values() if meta[0] == "f")
    status = "ok" if not problems else f"MISMATCH ({len(problems)} differences)"
    print(f"{status}: {files} files, {nbytes} bytes restored (expected {want_files} files, "
          f"{want_bytes} bytes); {mtime_diffs} file mtimes differ")
    for p in problems[:20]:
        print(f"  {p}")
    return 0 if not problems else 1


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "manifest":
        write_manifest(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
