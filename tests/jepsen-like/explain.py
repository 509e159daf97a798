#!/usr/bin/env python3
"""Timeline of a run around an anomaly: history events of one key (or all)
interleaved with nemesis events, by history index.

    explain.py RUN_DIR [--key K] [--from I] [--to J] [--value V ...]

--value V prints every op whose argument or result mentions V, wherever it
is in the history (e.g. the write of the value a stale read returned).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import history as hist  # noqa: E402


def fmt_ev(ev):
    return "%6d %9.3f p%-5d %-6s %-8s %-9s %-24s %s" % (
        ev["index"], ev["time"] or 0, ev["process"], ev["type"], ev["f"],
        ev["key"] or "", json.dumps(ev["value"])[:60], ev.get("node") or "")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--key")
    ap.add_argument("--from", dest="lo", type=int, default=0)
    ap.add_argument("--to", dest="hi", type=int, default=None)
    ap.add_argument("--value", action="append", default=[])
    a = ap.parse_args(argv)
    events = hist.load(os.path.join(a.run_dir, "history.jsonl"))
    nem = []
    p = os.path.join(a.run_dir, "nemesis.jsonl")
    if os.path.exists(p):
        with open(p) as fh:
            nem = [json.loads(ln) for ln in fh if ln.strip()]
    hi = a.hi if a.hi is not None else (events[-1]["index"] if events else 0)
    rows = []
    for ev in events:
        if a.lo <= ev["index"] <= hi and (a.key is None or ev["key"] == a.key):
            rows.append((ev["index"], 1, fmt_ev(ev)))
    for n in nem:
        if a.lo <= n["index"] <= hi + 1:
            rows.append((n["index"], 0, "%6d %9.3f NEMESIS %-5s %s %s" % (
                n["index"], n["time"], n["phase"], n["f"],
                json.dumps(n["value"], default=str))))
    for _, _, line in sorted(rows):
        print(line)
    if a.value:
        print("\nops mentioning %s:" % a.value)
        for op in hist.pair(events):
            blob = json.dumps([op.value, op.out])
            if any(json.dumps(v) in blob for v in a.value):
                print("  %s" % json.dumps(op.brief()))


if __name__ == "__main__":
    main()
