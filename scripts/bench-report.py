#!/usr/bin/env python3
"""Markdown tables for scripts/bench (Python 3.11 stdlib only).

    bench-report.py RESULTS.tsv HEADER.md TOOL[,TOOL...]

RESULTS.tsv holds `tool<TAB>key<TAB>value` lines written by scripts/bench; value is a number
or a word such as FAIL. Prints HEADER.md, then one table of times and sizes and one of peak
RSS: a row per measurement, a column per tool (in the given order), and the ratios
offsite / best peer and offsite / restic (lower is better everywhere, so < 1 means offsite wins).
"""

import sys

MiB = 1024 * 1024

# (key in RESULTS.tsv, row label, divisor to the unit shown)
MAIN_ROWS = [
    ("time.backup1", "first backup (s)", 1),
    ("time.backup2", "second backup, unchanged tree (s)", 1),
    ("time.backup3", "backup after 1% mutation (s)", 1),
    ("time.restore", "full restore of latest snapshot (s)", 1),
    ("size.after1", "repository size after first backup (MiB)", MiB),
    ("size.final", "repository size after 3 backups (MiB)", MiB),
    ("size.cache", "local cache/state outside the repo (MiB)", MiB),
]
RSS_ROWS = [
    ("rss.init", "init"),
    ("rss.backup1", "first backup"),
    ("rss.backup2", "second backup"),
    ("rss.backup3", "backup after mutation"),
    ("rss.restore", "restore"),
]


def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            tool, key, value = line.rstrip("\n").split("\t", 2)
            try:
                res[tool, key] = float(value)
            except ValueError:
                res[tool, key] = value
    return res


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def ratios(vals, tools):
    """(offsite / best peer with the peer's name, offsite / restic) as strings."""
    off = vals.get("offsite")
    if not isinstance(off, float):
        return "—", "—"
    peers = {t: v for t, v in vals.items() if t != "offsite" and isinstance(v, float)}
    best = "—"
    if peers:
        name = min(peers, key=peers.get)
        best = f"{off / peers[name]:.2f} ({name})" if peers[name] > 0 else "—"
    r = vals.get("restic")
    vs_restic = f"{off / r:.2f}" if isinstance(r, float) and r > 0 else "—"
    return best, vs_restic


def table(res, tools, rows, first_col):
    out = [f"| {first_col} | " + " | ".join(tools) + " | offsite ÷ best peer | offsite ÷ restic |",
           "|---" + "|---:" * (len(tools) + 2) + "|"]
    for key, label, div in rows:
        vals = {}
        for t in tools:
            v = res.get((t, key))
            vals[t] = v / div if isinstance(v, float) else v
        best, vs_restic = ratios(vals, tools)
        out.append(f"| {label} | " + " | ".join(fmt(vals[t]) for t in tools) + f" | {best} | {vs_restic} |")
    return "\n".join(out)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    res = load(sys.argv[1])
    tools = sys.argv[3].split(",")
    with open(sys.argv[2]) as f:
        print(f.read().rstrip("\n"))
    print()
    print("### Time and size (lower is better)")
    print()
    print(table(res, tools, MAIN_ROWS, "measurement"))
    checks = [res.get((t, "verify"), "—") for t in tools]
    print("| restore check | " + " | ".join(str(c) for c in checks) + " | | |")
    print()
    print("### Peak RSS per operation (MiB, lower is better)")
    print()
    print(table(res, tools, [(k, lbl, 1024) for k, lbl in RSS_ROWS], "operation"))


if __name__ == "__main__":
    main()
