#!/usr/bin/env python3
"""Helpers and markdown tables for scripts/bench-wan (Python 3.11 stdlib only).

    bench-wan-report.py requests BEFORE AFTER [ROUTES_OUT]
        HTTP requests answered between two scrapes of the service's /metrics: the
        difference of offsite_http_requests_total summed over its labels, leaving out
        the scrapes (route /metrics). Prints the number; with ROUTES_OUT, writes the
        difference per method, route and status there.
    bench-wan-report.py link STATS
        Prints "UP DOWN WINDOWS": bytes that crossed the link emulator up and down, and
        the number of 1 s windows in its stats file (crates/testbed/examples/wan-link.rs).
    bench-wan-report.py throttle STATS LIMIT_BYTES_PER_S
        Prints key<TAB>value lines on how the upload kept to a limit (see throttle()).
    bench-wan-report.py report RESULTS.tsv HEADER.md TOOLS RTTS SCALE_RTTS
        The markdown report: HEADER.md, then per round trip of RTTS (comma-separated,
        may be empty) a table of times, bytes, requests and memory, a column per tool and
        the ratios offsite / best peer and offsite / restic; then the throttle run, the
        scale run (its round trips: SCALE_RTTS) and the issue's goals.

RESULTS.tsv holds `section<TAB>tool<TAB>key<TAB>value` lines; section is a round trip
in ms ("40"), "throttle" or "scale".
"""

import re
import sys

MiB = 1024 * 1024
OURS = "offsite"
PEERS = ("restic", "rustic")


# --- helpers for the script ------------------------------------------------------------

# Greedy: route templates hold braces ({machine_id}).
SAMPLE = re.compile(r'^offsite_http_requests_total\{(.*)\}\s+([0-9.eE+-]+)\s*$')


def scrape(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = SAMPLE.match(line.strip())
            if m:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
                key = (labels.get("method", ""), labels.get("route", ""), labels.get("status", ""))
                out[key] = out.get(key, 0) + float(m.group(2))
    return out


def requests(before, after, routes_out=None):
    a, b = scrape(before), scrape(after)
    diff = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
    diff = {k: v for k, v in diff.items() if v and k[1] != "/metrics"}
    print(int(sum(diff.values())))
    if routes_out:
        with open(routes_out, "w") as f:
            for (method, route, status), n in sorted(diff.items(), key=lambda kv: -kv[1]):
                f.write(f"{int(n)}\t{method}\t{route}\t{status}\n")


def series(path):
    up, down = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0].isdigit():
                up.append(int(parts[1]))
                down.append(int(parts[2]))
    return up, down


def link(path):
    up, down = series(path)
    print(sum(up), sum(down), len(up))


def throttle(path, limit):
    """The upload's span is from the first to the last 1 s window that carried at least a
    fifth of the limit; its first and last windows are partial (the upload began and ended
    inside them) and are left out. Over the remaining full windows: the largest deviation
    of one window from the limit, the deviation of the first 60 windows' mean (a minute),
    and of the whole span's mean."""
    up, _ = series(path)
    active = [i for i, b in enumerate(up) if b >= limit / 5]
    print(f"limit\t{limit}")
    print(f"bytes_up\t{sum(up)}")
    if len(active) < 3:
        print("windows\t0")
        return
    inner = up[active[0] + 1: active[-1]]
    print(f"span_first\t{active[0]}")
    print(f"span_last\t{active[-1]}")
    print(f"windows\t{len(inner)}")
    worst = max(inner, key=lambda b: abs(b - limit))
    print(f"max_dev\t{abs(worst - limit) / limit:.4f}")
    print(f"worst_window_bytes\t{worst}")
    print(f"min_window_bytes\t{min(inner)}")
    print(f"max_window_bytes\t{max(inner)}")
    over = sum(1 for b in inner if abs(b - limit) > 0.10 * limit)
    print(f"windows_off_10pct\t{over}")
    minute = inner[:60]
    print(f"minute_windows\t{len(minute)}")
    print(f"minute_dev\t{abs(sum(minute) / len(minute) - limit) / limit:.4f}")
    print(f"span_dev\t{abs(sum(inner) / len(inner) - limit) / limit:.4f}")


# --- the report ---------------------------------------------------------------------------

def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t", 3)
            if len(parts) != 4:
                continue
            sec, tool, key, value = parts
            try:
                res[sec, tool, key] = float(value)
            except ValueError:
                res[sec, tool, key] = value
    return res


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if v == int(v):
        return f"{v:.0f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 1000 else f"{v:.0f}"


def num(v):
    return v if isinstance(v, float) else None


def ratios(vals, tools):
    off = num(vals.get(OURS))
    if off is None:
        return "—", "—"
    peers = {t: num(vals.get(t)) for t in tools if t in PEERS and num(vals.get(t)) is not None}
    best = "—"
    if peers:
        name = min(peers, key=peers.get)
        best = f"{off / peers[name]:.2f} ({name})" if peers[name] > 0 else "—"
    restic = num(vals.get("restic"))
    return best, (f"{off / restic:.2f}" if restic else "—")


# (key, label, divisor, ratios?)
ROWS = [
    ("time.backup1", "first backup, link without delay or limit (s)", 1, True),
    ("time.backup2", "unchanged backup (s)", 1, True),
    ("time.backup3", "backup after 1% change (s)", 1, True),
    ("time.restore", "full restore (s)", 1, True),
    ("time.folder", "one-folder restore (s)", 1, True),
    ("up.backup1", "sent up, first backup (MiB)", MiB, True),
    ("up.backup2", "sent up, unchanged backup (MiB)", MiB, True),
    ("up.backup3", "sent up, backup after 1% change (MiB)", MiB, True),
    ("down.backup2", "received, unchanged backup (MiB)", MiB, True),
    ("stored.backup3", "repository growth, backup after 1% change (MiB)", MiB, True),
    ("sent.stored", "sent up ÷ repository growth, backup after 1% change", 1, False),
    ("down.restore", "received, full restore (MiB)", MiB, True),
    ("rate.restore", "full restore, share of the downstream rate", 1, False),
    ("req.backup1", "HTTP requests, first backup", 1, False),
    ("req.backup2", "HTTP requests, unchanged backup", 1, False),
    ("req.backup3", "HTTP requests, backup after 1% change", 1, False),
    ("req.restore", "HTTP requests, full restore", 1, False),
    ("req.folder", "HTTP requests, one-folder restore", 1, False),
    ("rss.backup1", "peak RSS, first backup (MiB)", 1024, True),
    ("rss.backup2", "peak RSS, unchanged backup (MiB)", 1024, True),
    ("rss.backup3", "peak RSS, backup after 1% change (MiB)", 1024, True),
    ("rss.restore", "peak RSS, full restore (MiB)", 1024, True),
    ("size.cache", "local cache/state after the backups (MiB)", MiB, True),
    ("size.repo", "repository size after 3 backups (MiB)", MiB, True),
]


def derive(res, secs, tools):
    """Rows computed from recorded ones: what the changed backup added to the repository
    (compressed new data and its metadata), and the bytes sent for it over that."""
    for sec in secs:
        for t in tools:
            a, b, up = (num(res.get((sec, t, k))) for k in ("size.after2", "size.repo", "up.backup3"))
            if a is not None and b is not None:
                res[sec, t, "stored.backup3"] = b - a
                if up is not None and b > a:
                    res[sec, t, "sent.stored"] = up / (b - a)


def rtt_table(res, sec, tools):
    extra = ["offsite ÷ best peer", "offsite ÷ restic"]
    out = ["| measurement | " + " | ".join(tools + extra) + " |",
           "|---" + "|---:" * (len(tools) + len(extra)) + "|"]
    for key, label, div, with_ratio in ROWS:
        vals = {}
        for t in tools:
            v = res.get((sec, t, key))
            vals[t] = v / div if isinstance(v, float) else v
        if all(vals[t] is None for t in tools):
            continue
        cells = list(ratios(vals, tools)) if with_ratio else ["", ""]
        out.append(f"| {label} | " + " | ".join([fmt(vals[t]) for t in tools] + cells) + " |")
    checks = [f"{res.get((sec, t, 'verify.restore'), '—')} / {res.get((sec, t, 'verify.folder'), '—')}"
              for t in tools]
    out.append("| restore check (full / folder) | " + " | ".join(checks) + " | | |")
    return "\n".join(out)


def throttle_section(res):
    g = lambda k: res.get(("throttle", OURS, k))
    if g("limit") is None:
        return ""
    lines = ["### Throttle: offsite's upload at a bandwidth limit, measured at the link", ""]
    if not isinstance(g("time.backup"), float):
        return "\n".join(lines + [f"The throttled backup failed ({g('time.backup')}).", ""])
    limit = g("limit")
    lines += [
        f"`offsite agent throttle set` to {limit / MiB:.2f} MiB/s, a backup of {fmt(g('new_mib'))} MiB of new "
        f"incompressible data over the {fmt(g('rtt'))} ms link; every 1 s window of the upload is compared "
        f"with the limit (the first and last, partial, left out).",
        "",
        "| measurement | value | goal |",
        "|---|---:|---:|",
        f"| backup time (s) | {fmt(g('time.backup'))} | |",
        f"| peak RSS of the agent (MiB) | {fmt(g('rss.backup') / 1024)} | |",
        f"| sent up during the backup (MiB) | {fmt((g('bytes_up') or 0) / MiB)} | |",
        f"| full 1 s windows of the upload | {fmt(g('windows'))} | ≥ 60 |",
    ]
    if g("windows"):
        lines += [
            f"| largest deviation of a 1 s window from the limit | {100 * g('max_dev'):.1f} % | ≤ 10 % |",
            f"| 1 s windows off by more than 10 % | {fmt(g('windows_off_10pct'))} | 0 |",
            f"| smallest / largest 1 s window (KiB) | {fmt(g('min_window_bytes') / 1024)} / "
            f"{fmt(g('max_window_bytes') / 1024)} | {fmt(limit / 1024)} |",
            f"| deviation of the first minute's mean ({fmt(g('minute_windows'))} windows) | "
            f"{100 * g('minute_dev'):.1f} % | ≤ 5 % |",
            f"| deviation of the whole upload's mean | {100 * g('span_dev'):.1f} % | |",
        ]
    return "\n".join(lines + [""])


def scale_section(res, scale_rtts):
    g = lambda k: res.get(("scale", OURS, k))
    if g("files") is None:
        return ""
    lines = ["### Scale run: offsite alone, many files", "",
             f"{fmt(g('files'))} files in {fmt(g('folders'))} folders ({fmt((g('bytes') or 0) / MiB)} MiB).", "",
             "| step | time (s) | HTTP requests | sent up (MiB) | peak RSS (MiB) | ÷ loopback |",
             "|---|---:|---:|---:|---:|---:|"]
    base = num(g("time.loopback"))

    def row(label, key):
        t = g(f"time.{key}")
        up = g(f"up.{key}")
        rss = g(f"rss.{key}")
        rel = f"{t / base:.2f}" if num(t) and base and key != "backup1" else ""
        return (f"| {label} | {fmt(t)} | {fmt(g(f'req.{key}'))} | "
                f"{fmt(up / MiB) if num(up) is not None else '—'} | {fmt(rss / 1024) if num(rss) else '—'} | {rel} |")

    lines.append(row("first backup, link without delay or limit", "backup1"))
    lines.append(row("unchanged backup on loopback, without the emulator", "loopback"))
    for r in scale_rtts:
        if g(f"time.rtt{r}") is not None:
            lines.append(row(f"unchanged backup over the link, {r} ms round trip", f"rtt{r}"))
    return "\n".join(lines + [""])


def goals(res, tools, rtts, scale_rtts):
    g = lambda sec, t, k: num(res.get((sec, t, k)))
    rows = []

    def ratio(a, b):
        return a / b if a is not None and b else None

    def line(goal, value, want, ok):
        mark = "—" if value is None else ("met" if ok(value) else "not met")
        rows.append(f"| {goal} | {'—' if value is None else f'{value:.2f}'} | {want} | {mark} |")

    if rtts:
        first = rtts[0]
        if "restic" in tools:
            line(f"unchanged backup ÷ restic's ({first} ms)",
                 ratio(g(first, OURS, "time.backup2"), g(first, "restic", "time.backup2")), "≤ 0.5",
                 lambda v: v <= 0.5)
            line(f"1% changed backup ÷ restic's ({first} ms)",
                 ratio(g(first, OURS, "time.backup3"), g(first, "restic", "time.backup3")), "≤ 0.5",
                 lambda v: v <= 0.5)
        for r in rtts[1:]:
            line(f"unchanged backup at {r} ms ÷ at {first} ms",
                 ratio(g(r, OURS, "time.backup2"), g(first, OURS, "time.backup2")), "≤ 1.2", lambda v: v <= 1.2)
        line(f"1% changed backup: sent up ÷ repository growth ({first} ms)", g(first, OURS, "sent.stored"),
             "≤ 1.1", lambda v: v <= 1.1)
        line(f"full restore, share of the downstream rate ({first} ms)", g(first, OURS, "rate.restore"), "≥ 0.9",
             lambda v: v >= 0.9)
    base = g("scale", OURS, "time.loopback")
    for r in scale_rtts if base is not None else []:
        line(f"scale run: unchanged backup over the link ({r} ms) ÷ on loopback",
             ratio(g("scale", OURS, f"time.rtt{r}"), base), "≤ 2", lambda v: v <= 2)
    if g("throttle", OURS, "limit") is not None:
        line("throttle: largest deviation of a 1 s window", g("throttle", OURS, "max_dev"), "≤ 0.10",
             lambda v: v <= 0.10)
        line("throttle: deviation over a minute", g("throttle", OURS, "minute_dev"), "≤ 0.05", lambda v: v <= 0.05)
    return "\n".join(["### Against the goals of issue 16", "",
                      "| goal | value | wanted | |", "|---|---:|---:|---|"] + rows + [""])


def report(results, header, tools, rtts, scale_rtts):
    res = load(results)
    tools = tools.split(",")
    rtts = [r for r in rtts.split(",") if r]
    scale_rtts = [r for r in scale_rtts.split(",") if r]
    derive(res, rtts, tools)
    with open(header) as f:
        print(f.read().rstrip("\n"))
    print()
    for r in rtts:
        print(f"### {r} ms round trip")
        print()
        print(rtt_table(res, r, tools))
        print()
    for section in (throttle_section(res), scale_section(res, scale_rtts)):
        if section:
            print(section)
    print(goals(res, tools, rtts, scale_rtts))


def main():
    a = sys.argv[1:]
    if len(a) in (3, 4) and a[0] == "requests":
        requests(*a[1:])
    elif len(a) == 2 and a[0] == "link":
        link(a[1])
    elif len(a) == 3 and a[0] == "throttle":
        throttle(a[1], float(a[2]))
    elif len(a) == 6 and a[0] == "report":
        report(*a[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
