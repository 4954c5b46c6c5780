#!/usr/bin/env python3
"""Markdown tables for scripts/bench (Python 3.11 stdlib only).

    bench-report.py RESULTS.tsv HEADER.md TOOL[,TOOL...]

RESULTS.tsv holds `tool<TAB>key<TAB>value` lines written by scripts/bench; value is a number
or a word such as FAIL. Prints HEADER.md, then one table of times and sizes and one of peak
RSS: a row per measurement, a column per tool (in the given order), and the ratios
offsite / best peer and offsite / restic (lower is better everywhere, so < 1 means offsite wins).

`offsite` is the local engine and the ratios compare it; `offsite-online` (the same through
the service and the agent) is not a peer. When it is among the tools, a last column gives
online / local (offsite-online / offsite: what the service path costs), and its service's
whole-run rows (CPU time, peak RSS), which the other tools leave empty.
"""

import sys

MiB = 1024 * 1024
LOCAL, ONLINE = "offsite", "offsite-online"
OURS = (LOCAL, ONLINE)

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
ONLINE_MAIN_ROWS = [
    ("cpu.server", "service CPU time, whole run (s)", 1),
]
RSS_ROWS = [
    ("rss.init", "init"),
    ("rss.backup1", "first backup"),
    ("rss.backup2", "second backup"),
    ("rss.backup3", "backup after mutation"),
    ("rss.restore", "restore"),
]
ONLINE_RSS_ROWS = [
    ("rss.server", "service process, whole run"),
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


def quotient(a, b):
    return f"{a / b:.2f}" if isinstance(a, float) and isinstance(b, float) and b > 0 else "—"


def ratios(vals):
    """(offsite / best peer with the peer's name, offsite / restic, offsite-online / offsite)."""
    off = vals.get(LOCAL)
    online = quotient(vals.get(ONLINE), off)
    if not isinstance(off, float):
        return "—", "—", online
    peers = {t: v for t, v in vals.items() if t not in OURS and isinstance(v, float)}
    best = "—"
    if peers:
        name = min(peers, key=peers.get)
        best = f"{off / peers[name]:.2f} ({name})" if peers[name] > 0 else "—"
    return best, quotient(off, vals.get("restic")), online


def table(res, tools, rows, first_col):
    with_online = ONLINE in tools
    extra = ["offsite ÷ best peer", "offsite ÷ restic"] + (["online ÷ local"] if with_online else [])
    out = [f"| {first_col} | " + " | ".join(tools + extra) + " |",
           "|---" + "|---:" * (len(tools) + len(extra)) + "|"]
    for key, label, div in rows:
        vals = {}
        for t in tools:
            v = res.get((t, key))
            vals[t] = v / div if isinstance(v, float) else v
        cells = list(ratios(vals))[: len(extra)]
        out.append(f"| {label} | " + " | ".join([fmt(vals[t]) for t in tools] + cells) + " |")
    return "\n".join(out)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    res = load(sys.argv[1])
    tools = sys.argv[3].split(",")
    with_online = ONLINE in tools
    with open(sys.argv[2]) as f:
        print(f.read().rstrip("\n"))
    print()
    print("### Time and size (lower is better)")
    print()
    print(table(res, tools, MAIN_ROWS + (ONLINE_MAIN_ROWS if with_online else []), "measurement"))
    checks = [str(res.get((t, "verify"), "—")) for t in tools]
    print("| restore check | " + " | ".join(checks) + " |" + " |" * (3 if with_online else 2))
    print()
    print("### Peak RSS per operation (MiB, lower is better)")
    print()
    rss_rows = RSS_ROWS + (ONLINE_RSS_ROWS if with_online else [])
    print(table(res, tools, [(k, lbl, 1024) for k, lbl in rss_rows], "operation"))


if __name__ == "__main__":
    main()
