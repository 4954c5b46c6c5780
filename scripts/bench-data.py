#!/usr/bin/env python3
"""Deterministic benchmark data set for scripts/bench (Python 3.11 stdlib only).

    bench-data.py DIR [--scale F] [--seed N]    generate the tree in DIR (must not exist)
    bench-data.py DIR --mutate [--seed N]       change ~1% of the files in DIR, deterministically
    bench-data.py DIR --profile wan [--scale F] the WAN benchmark's tree (scripts/bench-wan)
    bench-data.py DIR --profile many --files N --folders M [--max-kib K]
                                                N small files in M folders (its scale run)
    bench-data.py DIR --grow MIB [--seed N]     add MIB of incompressible files in DIR/grown/

At --scale 1 the tree is ~2.5 GiB in ~146,000 files:
  src/    ~480 MiB of source-code-like text (compresses ~3-5x with zstd, like real code)
  media/  ~560 MiB of already-compressed files (random bytes behind jpg/mp4/mkv headers, real .gz)
  big/    random data: one 576 MiB file (>= 512 MiB), one 96 MiB, and a 64 MiB "disk image"
          that is 40% zero blocks
  many/   100,000 small files of 0-16 KiB in nested directories (text and binary)
  dups/   copies of some of the above under other names (for deduplication)
plus a few executables and symlinks so restores are checked for modes and links.

The `wan` profile is a tree like a real file server's or system folder, many folders of
small files and a few large ones: at --scale 1, 45,000 files in 3,200 folders, ~460 MiB
(small files of log-normal size, median ~2.4 KiB, 70% text and 30% binary; 24 large
files of 2-16 MiB, random or gzip). `many` is only small files (0 B-K KiB, median ~250 B),
spread evenly over M folders, for a million-file run.

Everything comes from random.Random(seed), generated in a fixed order, so the same
--seed and --scale always give byte-identical trees (file mtimes are fixed too).
Large files are written in 1 MiB blocks.
"""

import argparse
import itertools
import os
import random
import shutil
import sys
import time
import zlib

MiB = 1024 * 1024
KiB = 1024
# All generated files get mtimes in this fixed window so the tree is fully reproducible.
BASE_MTIME = 1_700_000_000


# --------------------------------------------------------------------------------------
# Source-code-like text. Real code compresses 3-5x because it repeats a modest vocabulary
# in recurring syntactic shapes; we get the same effect from Zipf-weighted identifiers
# poured into per-language line templates, with functions, comments and indentation.
# --------------------------------------------------------------------------------------

PARTS = (
    "get set read write open close chunk pack blob index repo data file path size count "
    "item list map err res req cache lock sync init load save parse emit scan node tree "
    "hash key val buf ptr idx len cfg ctx state handle config store entry table query "
    "stream frame header body token parser lexer writer reader builder manager service "
    "client server request response event queue worker task job pool thread timer clock "
    "user group account session auth cert policy rule filter match pattern source target "
    "snapshot backup restore prune check verify encrypt decrypt compress split merge diff "
    "min max total offset limit start end begin next prev first last new old tmp out in"
).split()

WORDS = (
    "the a of to and is in that it for this we be on with as are not if by or can when "
    "returns value which should will must may only all each from an so but then it's "
    "because otherwise note todo fixme here there caller function struct field method "
    "error result number string buffer memory allocation thread lock order race safe "
    "fast slow cache hit miss retry timeout network disk file block chunk index entry "
    "handle close open read write flush sync async future callback loop iterator key"
).split()

NUMS = ("0", "1", "2", "8", "16", "64", "256", "1024", "4096", "-1")
KEYWORDS_TYPES = "u8 u16 u32 u64 i32 i64 usize bool String Vec Option Result str f64".split()

LICENSES = [
    "// Copyright {y} The {P} Authors. All rights reserved.\n"
    "// Use of this source code is governed by a BSD-style license that can be\n"
    "// found in the LICENSE file.\n",
    "/*\n * SPDX-License-Identifier: Apache-2.0\n *\n * Copyright (c) {y} {P} contributors\n */\n",
    "# -*- coding: utf-8 -*-\n# Copyright {y} {P}. Licensed under the MIT license.\n",
    "",
    "",
]

# Per language: (extension, comment prefix, import templates, function header templates,
# body templates, closing line). Placeholders: a b c d (identifiers), T (type), n (number),
# s (short string), W (comment words).
LANGS = [
    ("rs", "//",
     ["use crate::{a}::{b};", "use std::{a}::{{{b}, {c}}};", "mod {a};"],
     ["pub fn {a}(&self, {b}: {T}) -> Result<{T}> {{", "fn {a}_{b}({c}: &mut {T}, {d}: usize) -> bool {{",
      "impl {A} {{", "pub(crate) async fn {a}(&mut self) -> anyhow::Result<()> {{"],
     ["let {a} = self.{b}.{c}({d})?;", "let mut {a}: {T} = {n};", "if {a}.{b}() > {n} {{",
      "}} else {{", "}}", "for {a} in {b}.iter() {{", "{a}.push({b}.clone());",
      "return Ok({a});", "self.{a} += {b}.len() as {T};", "match {a} {{", "Some({a}) => {b}({a}),",
      "None => return Err(anyhow!(\"{s}\")),", "{a}.{b}(&{c})?;", "debug!(\"{s}: {{}}\", {a});",
      "assert_eq!({a}, {n});", "let {a} = {b}::new({c}, {n});"],
     "}"),
    ("py", "#",
     ["import {a}", "from {a}.{b} import {c}, {d}", "from . import {a}"],
     ["def {a}_{b}(self, {c}, {d}={n}):", "def {a}({b}, *args, **kwargs):", "class {A}({B}):",
      "async def {a}(self, {b}):"],
     ["{a} = self.{b}.{c}({d})", "if {a} is None:", "    return {n}", "for {a} in {b}:",
      "{a}.append({b})", "return {a}", "self.{a} = {b}", "raise ValueError(\"{s}\")",
      "{a}[{b}] = {c}.get({d}, {n})", "elif {a} > {n}:", "else:", "try:", "except {A}Error:",
      "log.debug(\"{s} %s\", {a})", "with open({a}) as {b}:", "{a} += len({b})"],
     ""),
    ("c", "//",
     ["#include <{a}.h>", "#include \"{a}/{b}.h\"", "#define {AU}_{BU} {n}"],
     ["static int {a}_{b}(struct {c} *{d}, size_t n) {{", "int {a}(const char *{b}, int {c}) {{",
      "void {a}_{b}(void) {{"],
     ["int {a} = {b}->{c};", "if ({a} < 0) {{", "return -{n};", "}}", "for (i = 0; i < {a}; i++) {{",
      "{a}[i] = {b}({c}, i);", "memcpy({a}, {b}, sizeof(*{a}));", "}} else {{",
      "{a}->{b} += {n};", "goto {a}_out;", "free({a});", "printf(\"{s}: %d\\n\", {a});",
      "while ({a} != NULL) {{", "{a} = {a}->next;"],
     "}"),
    ("go", "//",
     ["import \"{a}/{b}\"", "\t\"{a}/{b}/{c}\""],
     ["func ({a} *{A}) {B}({b} {T}) error {{", "func {a}{B}({c} context.Context) ({T}, error) {{"],
     ["{a}, err := {b}.{C}({c})", "if err != nil {{", "return nil, err", "}}", "for _, {a} := range {b} {{",
      "{a} = append({a}, {b})", "{a}.{B} = {n}", "return {a}, nil", "defer {a}.Close()",
      "log.Printf(\"{s}: %v\", {a})", "switch {a} {{", "case {n}:"],
     "}"),
    ("js", "//",
     ["import {{ {a}, {b} }} from './{c}';", "const {a} = require('{b}');"],
     ["export function {a}{B}({b}, {c}) {{", "async {a}({b}) {{", "const {a} = ({b}) => {{"],
     ["const {a} = await this.{b}.{c}({d});", "if (!{a}) {{", "return {n};", "}}",
      "for (const {a} of {b}) {{", "{a}.push({b});", "this.{a} = {b} || {n};",
      "throw new Error('{s}');", "console.log('{s}', {a});", "}} else {{"],
     "}"),
]


def _ident_vocab(rng, n):
    """n distinct identifiers made of 1-3 parts, ordered so that early ones are common."""
    seen, out = set(), []
    while len(out) < n:
        k = rng.choice((1, 2, 2, 2, 3))
        word = "_".join(rng.choice(PARTS) for _ in range(k))
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


def _zipf_cum(n, s=1.1):
    return list(itertools.accumulate(1.0 / (i + 1) ** s for i in range(n)))


class TextGen:
    """Source-like text: files are a license header and imports (fresh per file) followed by
    functions drawn from a per-language pool of pre-rendered functions. Rendering lines is
    the slow part in Python, so the pool is rendered once (~1/10 of the text volume); each
    function then appears in ~10 files, far apart, which neither a compressor window nor a
    chunk-level deduplicator can exploit much, as with real code."""

    def __init__(self, rng, pool_bytes):
        self.rng = rng
        self.ids = _ident_vocab(rng, 12000)
        self.ids_cum = _zipf_cum(len(self.ids), 0.9)
        self.words_cum = _zipf_cum(len(WORDS), 1.0)
        self.camel = {w: "".join(p.capitalize() for p in w.split("_")) for w in self.ids}
        self.upper = {w: w.upper() for w in self.ids}
        self.projects = [w.capitalize() for w in self.ids[200:260]]
        self.phrases = [" ".join(rng.choices(WORDS, cum_weights=self.words_cum, k=3)) for _ in range(3000)]
        self.pools = [self._pool(lang, pool_bytes // len(LANGS)) for lang in LANGS]

    def _fill(self, tpl, ids):
        """Render one template line, taking four identifiers from the end of ids."""
        rng = self.rng
        a, b, c, d = ids.pop(), ids.pop(), ids.pop(), ids.pop()
        cam = self.camel
        return tpl.format(a=a, b=b, c=c, d=d, A=cam[a], B=cam[b], C=cam[c],
                          AU=self.upper[a], BU=self.upper[b], T=rng.choice(KEYWORDS_TYPES),
                          n=rng.choice(NUMS) if rng.random() < 0.7 else str(rng.randrange(100_000)),
                          s=rng.choice(self.phrases))

    def _comment(self, cmt, lo, hi):
        words = self.rng.choices(WORDS, cum_weights=self.words_cum, k=self.rng.randint(lo, hi))
        return f"{cmt} {' '.join(words)}"

    def _pool(self, lang, size):
        """Render functions (doc comment, header, indented body, close) until size bytes."""
        rng = self.rng
        ext, cmt, imports, heads, body, close = lang
        pool, total = [], 0
        while total < size:
            nbody = rng.randint(3, 30)
            # Functions reuse a few local names heavily, interleaved with the global vocabulary.
            local = rng.choices(self.ids, cum_weights=self.ids_cum, k=6)
            glob = rng.choices(self.ids, cum_weights=self.ids_cum, k=2 * nbody + 4)
            ids = [x for pair in zip(glob, rng.choices(local, k=len(glob))) for x in pair]
            lines = []
            if rng.random() < 0.5:
                lines.append(self._comment(cmt, 5, 16).capitalize() + ".")
            lines.append(self._fill(rng.choice(heads), ids))
            depth = 1
            for tpl in rng.choices(body, k=nbody):
                if rng.random() < 0.08:
                    lines.append("    " * depth + self._comment(cmt, 3, 10))
                else:
                    lines.append("    " * depth + self._fill(tpl, ids))
                if tpl.endswith(("{{", ":")) and depth < 4:
                    depth += 1
                elif tpl.startswith("}}") and depth > 1:
                    depth -= 1
            lines.append(close + "\n" if close else "")
            block = ("\n".join(lines) + "\n").encode()
            pool.append(block)
            total += len(block)
        return pool

    def text(self, size):
        """(bytes of exactly size, file extension)."""
        rng = self.rng
        li = rng.randrange(len(LANGS))
        ext, cmt, imports, heads, body, close = LANGS[li]
        pool = self.pools[li]
        out = []
        lic = rng.choice(LICENSES)
        if lic:
            out.append(lic.format(y=rng.randint(2009, 2024), P=rng.choice(self.projects)).encode())
        ids = rng.choices(self.ids, cum_weights=self.ids_cum, k=40)
        for _ in range(rng.randint(1, 8)):
            out.append(self._fill(rng.choice(imports), ids).encode() + b"\n")
        out.append(b"\n")
        total = sum(map(len, out))
        while total < size:
            block = rng.choice(pool)
            out.append(block)
            total += len(block)
        return b"".join(out)[:size], ext


# --------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------

def write_random(path, size, rng, header=b"", zero_fraction=0.0):
    """Random (incompressible) bytes in 1 MiB blocks; optionally some all-zero blocks."""
    with open(path, "wb") as f:
        left = size
        first = True
        while left > 0:
            n = min(MiB, left)
            if zero_fraction and rng.random() < zero_fraction:
                block = bytes(n)
            else:
                block = rng.randbytes(n)
            if first and header:
                block = header + block[len(header):]
                first = False
            f.write(block)
            left -= n


def write_gz(path, size, rng, text_buf):
    """A real gzip archive of ~size bytes: random 64 KiB slices of generated text, deflated."""
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31 = gzip container
    written = 0
    with open(path, "wb") as f:
        while written < size:
            off = rng.randrange(0, len(text_buf) - 64 * KiB)
            out = comp.compress(text_buf[off:off + 64 * KiB])
            f.write(out)
            written += len(out)
        f.write(comp.flush())


MEDIA_HEADERS = {
    "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    "mp4": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41",
    "mkv": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
}


def rel_dir(rng, names, depth_lo, depth_hi):
    return os.path.join(*(rng.choice(names) for _ in range(rng.randint(depth_lo, depth_hi))))


def generate(root, scale, seed):
    t0 = time.time()
    rng = random.Random(seed)
    src_target = int(480 * MiB * scale)
    tg = TextGen(random.Random(seed + 1), pool_bytes=min(48 * MiB, max(2 * MiB, src_target // 10)))
    os.makedirs(root)
    stats = {}

    def note(section, path, size):
        n, b = stats.get(section, (0, 0))
        stats[section] = (n + 1, b + size)

    # src/: source tree, log-normal file sizes (median ~6 KiB, a few up to 2 MiB).
    r = random.Random(seed + 10)
    tg.rng = r
    target = src_target
    dirnames = [w for w in tg.ids[:400] if len(w) < 14]
    text_files = []
    total = 0
    i = 0
    while total < target:
        size = int(min(2 * MiB, max(64, r.lognormvariate(8.7, 1.2))))
        project = tg.projects[i % 8].lower()
        d = os.path.join(root, "src", project, rel_dir(r, dirnames, 1, 3))
        os.makedirs(d, exist_ok=True)
        data, ext = tg.text(size)
        path = os.path.join(d, f"{r.choice(dirnames)}_{i}.{ext}")
        with open(path, "wb") as f:
            f.write(data)
        text_files.append(path)
        note("src", path, len(data))
        total += len(data)
        i += 1
    # A few executable scripts so that restores are checked for file modes.
    for j in range(max(3, int(40 * scale))):
        path = os.path.join(root, "src", f"tool_{j}.sh")
        data = b"#!/bin/sh\nset -e\n" + tg.text(r.randint(200, 4000))[0]
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o755)
        note("src", path, len(data))

    # A large buffer of text for the small files and the gzip archives, sliced at random
    # offsets (cheaper than rendering each one).
    buf = bytearray()
    while len(buf) < max(4 * MiB, int(64 * MiB * scale)):
        buf += tg.text(64 * KiB)[0]
    text_buf = bytes(buf)
    del buf

    # media/: already-compressed files, 1-50 MiB (scaled), mostly random bytes behind a real
    # container header, some genuine gzip archives.
    r = random.Random(seed + 20)
    tg.rng = r
    target = int(560 * MiB * scale)
    media_files = []
    total = 0
    i = 0
    while total < target:
        size = max(16 * KiB, int(r.uniform(1, 50) * MiB * scale))
        size = min(size, target - total + 16 * KiB)
        d = os.path.join(root, "media", r.choice(("photos", "videos", "archive")), str(2015 + i % 9))
        os.makedirs(d, exist_ok=True)
        if i % 5 == 4:
            path = os.path.join(d, f"docs_{i}.tar.gz")
            write_gz(path, size, r, text_buf)
        else:
            ext = r.choice(list(MEDIA_HEADERS))
            path = os.path.join(d, f"IMG_{1000 + i}.{ext}")
            write_random(path, size, r, MEDIA_HEADERS[ext])
        size = os.path.getsize(path)
        media_files.append(path)
        note("media", path, size)
        total += size
        i += 1

    # big/: a few large random files, one >= 512 MiB at scale 1, and a sparse-ish disk image.
    r = random.Random(seed + 30)
    os.makedirs(os.path.join(root, "big"))
    big = []
    for name, size, zeros in (("db.bin", 576, 0.0), ("backup.dat", 96, 0.0), ("disk.img", 64, 0.4)):
        path = os.path.join(root, "big", name)
        write_random(path, int(size * MiB * scale), r, zero_fraction=zeros)
        big.append(path)
        note("big", path, os.path.getsize(path))

    # many/: 100,000 small files (scaled) of 0-16 KiB in nested dirs; sizes skewed small
    # (u^2) like real trees. Text is sliced from a large generated buffer to keep this fast.
    r = random.Random(seed + 40)
    n_small = max(100, int(100_000 * scale))
    small_files = []
    leaf_dirs = [os.path.join(root, "many", f"d{a:02}", f"e{b:02}", f"f{c}")
                 for a in range(20) for b in range(20) for c in range(3)]
    for k in range(n_small):
        # Spread files across three directory levels (leaves and their parents).
        d = r.choice(leaf_dirs)
        d = d if k % 4 else os.path.dirname(d)
        os.makedirs(d, exist_ok=True)
        size = min(16 * KiB, int(16 * KiB * r.random() ** 2))
        if r.random() < 0.7:
            off = r.randrange(0, len(text_buf) - size)
            data, ext = text_buf[off:off + size], "txt"
        else:
            data, ext = r.randbytes(size), "bin"
        path = os.path.join(d, f"file{k:06}.{ext}")
        with open(path, "wb") as f:
            f.write(data)
        small_files.append(path)
        note("many", path, size)
    os.makedirs(os.path.join(root, "many", "empty", "dir"))  # an empty directory

    # dups/: copies under other names, which every tool should store only once.
    r = random.Random(seed + 50)
    dup_sources = (r.sample(text_files, max(1, len(text_files) // 10))
                   + r.sample(media_files, min(2, len(media_files)))
                   + [big[1]]
                   + r.sample(small_files, max(1, len(small_files) // 100)))
    for k, src in enumerate(dup_sources):
        d = os.path.join(root, "dups", f"copy{k % 7}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"{k}_{os.path.basename(src)}")
        shutil.copyfile(src, path)
        note("dups", path, os.path.getsize(path))

    # A few symlinks (relative, some dangling) so restores are checked for links.
    os.makedirs(os.path.join(root, "links"))
    for k, tgt in enumerate(["../src", "../big/disk.img", "../does/not/exist"]):
        os.symlink(tgt, os.path.join(root, "links", f"link{k}"))

    fix_mtimes(root, random.Random(seed + 60))
    total_n = sum(n for n, _ in stats.values())
    total_b = sum(b for _, b in stats.values())
    for sec, (n, b) in stats.items():
        print(f"  {sec:6} {n:7} files {b / MiB:9.1f} MiB", file=sys.stderr)
    print(f"  total  {total_n:7} files {total_b / MiB:9.1f} MiB  ({time.time() - t0:.0f} s)",
          file=sys.stderr)


def folder_tree(root, count, fanout, rng, names):
    """count directories below root (root not included), breadth first with `fanout`
    children each, named from `names`; returns them in creation order."""
    dirs, frontier = [], [root]
    while len(dirs) < count:
        parents, frontier = frontier, []
        for parent in parents:
            for j in range(fanout):
                if len(dirs) >= count:
                    break
                d = os.path.join(parent, f"{rng.choice(names)}_{j}")
                dirs.append(d)
                frontier.append(d)
    for d in dirs:
        os.makedirs(d)
    return dirs


def generate_wan(root, scale, seed):
    """The WAN benchmark's tree: 45,000 files in 3,200 folders and ~460 MiB at scale 1."""
    t0 = time.time()
    rng = random.Random(seed + 100)
    tg = TextGen(random.Random(seed + 1), pool_bytes=max(2 * MiB, int(8 * MiB * scale)))
    os.makedirs(root)
    names = [w for w in tg.ids[:600] if len(w) < 14]
    n_dirs = max(30, int(3200 * scale))
    n_files = max(300, int(45_000 * scale))
    dirs = folder_tree(root, n_dirs, 12, rng, names)
    buf = bytearray()
    while len(buf) < max(4 * MiB, int(32 * MiB * scale)):
        buf += tg.text(64 * KiB)[0]
    text_buf = bytes(buf)
    del buf
    n_text = n_bin = n_big = total = 0
    for k in range(n_files):
        d = rng.choice(dirs)
        size = int(min(512 * KiB, rng.lognormvariate(7.8, 1.3)))
        if rng.random() < 0.7:
            off = rng.randrange(0, len(text_buf) - size)
            data, ext = text_buf[off:off + size], rng.choice(("txt", "rs", "py", "conf", "log", "md"))
            n_text += 1
        else:
            data, ext = rng.randbytes(size), rng.choice(("bin", "dat", "db", "png"))
            n_bin += 1
        with open(os.path.join(d, f"{rng.choice(names)}_{k}.{ext}"), "wb") as f:
            f.write(data)
        total += size
    # The large files: random (media-like) or real gzip archives of text.
    for k in range(max(2, int(24 * scale))):
        d = rng.choice(dirs)
        size = int(rng.uniform(2, 16) * MiB * max(scale, 0.05))
        if k % 4 == 3:
            path = os.path.join(d, f"archive_{k}.tar.gz")
            write_gz(path, size, rng, text_buf)
        else:
            ext = rng.choice(list(MEDIA_HEADERS))
            path = os.path.join(d, f"large_{k}.{ext}")
            write_random(path, size, rng, MEDIA_HEADERS[ext])
        n_big += 1
        total += os.path.getsize(path)
    fix_mtimes(root, random.Random(seed + 60))
    print(f"  wan: {n_text + n_bin + n_big} files ({n_text} text, {n_bin} binary, {n_big} large) in "
          f"{len(dirs) + 1} folders, {total / MiB:.1f} MiB  ({time.time() - t0:.0f} s)", file=sys.stderr)


def generate_many(root, files, folders, max_kib, seed):
    """`files` small files spread evenly over `folders` folders (a file server's tree)."""
    t0 = time.time()
    rng = random.Random(seed + 200)
    os.makedirs(root)
    dirs = folder_tree(root, max(1, folders - 1), 10, rng, [f"dir{c}" for c in "abcdefghij"])
    dirs = [root] + dirs
    text = bytes(random.Random(seed + 201).choices(b"abcdefghijklmnopqrstuvwxyz     \n", k=MiB))
    total = 0
    for k in range(files):
        d = dirs[k % len(dirs)]
        size = int(min(max_kib * KiB, rng.lognormvariate(5.5, 1.0)))
        off = rng.randrange(0, len(text) - size)
        # A file number at the front keeps every file's content distinct.
        data = (f"{k}\n".encode() + text[off:off + size])[:max(size, 1)]
        with open(os.path.join(d, f"f{k:07}.txt"), "wb") as f:
            f.write(data)
        total += len(data)
        if k and k % 100_000 == 0:
            print(f"  many: {k} files ({time.time() - t0:.0f} s)", file=sys.stderr)
    fix_mtimes(root, random.Random(seed + 60))
    print(f"  many: {files} files in {len(dirs)} folders, {total / MiB:.1f} MiB  ({time.time() - t0:.0f} s)",
          file=sys.stderr)


def grow(root, mib, seed):
    """Adds `mib` MiB of incompressible data in 4 MiB files under root/grown/."""
    rng = random.Random(seed + 300)
    d = os.path.join(root, "grown")
    os.makedirs(d)
    left, k = int(mib * MiB), 0
    while left > 0:
        n = min(4 * MiB, left)
        write_random(os.path.join(d, f"grown_{k:03}.bin"), n, rng)
        left -= n
        k += 1
    for k, name in enumerate(sorted(os.listdir(d))):
        t = BASE_MTIME + 50_000_000 + k
        os.utime(os.path.join(d, name), (t, t))
    print(f"  grow: {k + 1} files, {mib} MiB of random data in {d}", file=sys.stderr)


def fix_mtimes(root, rng):
    """Give every file and directory a deterministic mtime (dirs last, bottom-up)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                t = BASE_MTIME + rng.randrange(0, 30_000_000)
                os.utime(p, (t, t))
        t = BASE_MTIME + 30_000_000
        os.utime(dirpath, (t, t))


# --------------------------------------------------------------------------------------
# Mutation for the incremental backup: ~1% of files change.
# --------------------------------------------------------------------------------------

def mutate(root, seed):
    rng = random.Random(seed + 1000)
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                files.append(p)
    files.sort()
    k = max(4, round(len(files) * 0.01))
    chosen = rng.sample(files, k)
    # Always also touch the largest file in place: a big DB/VM image with a few changed
    # blocks is the case where content-defined chunking matters most.
    largest = max(files, key=os.path.getsize)
    n_mod = n_app = n_del = n_new = 0
    changed = []
    added_bytes = 0
    for idx, path in enumerate(chosen + [largest]):
        kind = "modify" if path == largest else ("modify", "modify", "modify", "modify", "modify",
                                                 "append", "append", "append", "delete", "new")[idx % 10]
        size = os.path.getsize(path)
        if kind == "modify" and size == 0:
            kind = "append"
        if kind == "modify":
            # Overwrite 1-3 random spans of 1 B - 4 KiB in place (size unchanged).
            with open(path, "r+b") as f:
                for _ in range(rng.randint(1, 3)):
                    off = rng.randrange(0, size)
                    n = min(rng.randint(1, 4096), size - off)
                    f.seek(off)
                    f.write(rng.randbytes(n))
            changed.append(path)
            n_mod += 1
        elif kind == "append":
            n = rng.randint(1, 64 * KiB)
            with open(path, "ab") as f:
                f.write(rng.randbytes(n))
            changed.append(path)
            n_app += 1
            added_bytes += n
        elif kind == "delete":
            os.unlink(path)
            n_del += 1
        else:  # new file next to the chosen one
            n = rng.randint(0, 256 * KiB)
            new = os.path.join(os.path.dirname(path), f"new_{idx}_{os.path.basename(path)}")
            with open(new, "wb") as f:
                f.write(rng.randbytes(n))
            changed.append(new)
            n_new += 1
            added_bytes += n
    # Fixed mtimes after the generated ones keep the mutated tree reproducible; the tools
    # still see the change (mtime, ctime and often size differ).
    for k, path in enumerate(changed):
        t = BASE_MTIME + 40_000_000 + k
        os.utime(path, (t, t))
    print(f"  mutation: of {len(files)} files, {n_mod} modified in place (incl. the largest, "
          f"{os.path.relpath(largest, root)}), {n_app} appended to, {n_del} deleted; {n_new} added; "
          f"{added_bytes / MiB:.1f} MiB of new bytes", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--scale", type=float, default=1.0, help="size factor (1 = ~2.5 GiB; 0.05 for smoke runs)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--mutate", action="store_true", help="change ~1%% of the files of an existing tree")
    ap.add_argument("--profile", choices=("bench", "wan", "many"), default="bench",
                    help="bench: scripts/bench's tree (default); wan, many: scripts/bench-wan's")
    ap.add_argument("--files", type=int, default=1_000_000, help="files of --profile many")
    ap.add_argument("--folders", type=int, default=100_000, help="folders of --profile many")
    ap.add_argument("--max-kib", type=int, default=16, help="largest file of --profile many")
    ap.add_argument("--grow", type=float, metavar="MIB", help="add MIB of random data in DIR/grown/")
    args = ap.parse_args()
    if args.mutate or args.grow:
        if not os.path.isdir(args.dir):
            sys.exit(f"bench-data: {args.dir} does not exist")
        if args.mutate:
            mutate(args.dir, args.seed)
        else:
            grow(args.dir, args.grow, args.seed)
    else:
        if os.path.exists(args.dir):
            sys.exit(f"bench-data: {args.dir} already exists")
        if args.scale <= 0:
            sys.exit("bench-data: --scale must be > 0")
        if args.profile == "wan":
            generate_wan(args.dir, args.scale, args.seed)
        elif args.profile == "many":
            generate_many(args.dir, args.files, args.folders, args.max_kib, args.seed)
        else:
            generate(args.dir, args.scale, args.seed)


if __name__ == "__main__":
    main()
