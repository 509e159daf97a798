#!/usr/bin/env python3
"""Linearizability and invariant checker for tvmw Jepsen-like histories.

History format (see history.py): JSON lines, one event each,
  {"process": int, "type": "invoke"|"ok"|"fail"|"info", "f": str,
   "key": str|null, "value": any, "time": float, "node": str|null,
   "index": int}
ordered by "index".  Register ops: read (completion value = value read,
null = absent), write (invoke value), cas (invoke value [expected, new];
ok = applied, fail = not applied).  "info" = outcome unknown.

Algorithm: Wing & Gong's search (J. M. Wing, C. Gong, "Testing and verifying
concurrent objects", JPDC 17(1), 1993) with Lowe's improvements (G. Lowe,
"Testing for linearizability", Concurrency and Computation: Practice and
Experience 29(4), 2017), the "WGL" algorithm:
  * linearizability is local (Herlihy & Wing 1990), so each key is checked
    on its own;
  * `fail` ops are dropped; `info` reads are dropped (no effect, unknown
    result); other `info` ops get a call entry but no return entry, so they
    may be linearized anywhere after their call, or never;
  * the call/return entries, ordered by index, form a doubly linked list.
    Scanning from the head, a call entry whose op the model accepts in the
    current state is "lifted" out of the list (with its return) and pushed
    on a stack; reaching a return entry means the op must already have been
    linearized, so we backtrack (pop, unlift, try the next call);
  * every configuration (bitset of linearized ops, model state) is stored
    in a cache and never explored twice -- the key pruning.  Refinement:
    a configuration is also skipped if one with the same state, the same
    linearized required ops and a SUBSET of its linearized info ops is
    cached (skipping an info op is always allowed).  Info children are
    cached when first scanned and explored after the required ones, which
    keeps many open info ops from costing 2^n;
  * success when no return entry is left (remaining info ops are skipped),
    failure when backtracking from an empty stack, "unknown" when the
    per-key wall-clock limit runs out.
On failure the report names the op at the furthest return entry reached
(the op that could not be linearized), the ops concurrent with it, the model
states in which the search stood there and one linearization up to it.

Models are pluggable: an object with `fs` (the op names it checks),
`init()` and `step(state, op) -> (ok, new_state)`; states must be hashable.
Optional `prepare(op)` turns a paired history.Op into the (hashable) `op`
handed to step, or returns None to drop it (default: drop `fail` ops);
optional `simplify([(op, arg)]) -> [(op, arg)]` may drop provably
irrelevant info ops before the search.

CLI: checker.py HISTORY.jsonl [--model register] [--time-limit S]
     [--bank-total N --bank-accounts a,b,c [--allow-negative]]
exit 0 = valid, 1 = anomaly, 2 = unknown.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import history as hist  # noqa: E402

LINEARIZABLE = "linearizable"
NOT_LINEARIZABLE = "NOT linearizable"
UNKNOWN = "unknown"


def freeze(v):
    """Make a JSON value hashable (lists -> tuples, dicts -> sorted items)."""
    if isinstance(v, list):
        return tuple(freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, freeze(x)) for k, x in v.items()))
    return v


class RegisterModel:
    """A single read/write/cas register; initial value None (absent)."""
    fs = ("read", "write", "cas")

    def __init__(self, initial=None):
        self.initial = initial

    def init(self):
        return self.initial

    def prepare(self, op):
        """Effective argument of an op, or None to drop it from the search."""
        if op.type == "fail" or (op.f == "read" and op.type == "info"):
            return None
        if op.f == "read":
            return ("read", freeze(op.out))
        if op.f == "write":
            return ("write", freeze(op.value))
        if not (isinstance(op.value, list) and len(op.value) == 2):
            raise ValueError("cas value must be [expected, new]: %r" % (op.brief(),))
        return ("cas", freeze(op.value[0]), freeze(op.value[1]))

    def step(self, state, arg):
        if arg[0] == "read":
            return arg[1] == state, state
        if arg[0] == "write":
            return True, arg[1]
        return (state == arg[1]), arg[2]

    def simplify(self, pairs):
        """Drop info writes/cas whose new value nobody reads or cas-expects:
        linearizing one can only be followed by an overwrite, so skipping it
        is never worse.  (Crashed, unobserved writes are the common case.)"""
        seen = {a[1] for _, a in pairs if a[0] in ("read", "cas")}
        return [(o, a) for o, a in pairs
                if o.ret is not None or a[0] == "read" or a[-1] in seen]


MODELS = {"register": RegisterModel}


def _default_prepare(op):
    return None if op.type == "fail" else op


class _Entry:
    __slots__ = ("op", "arg", "bit", "required", "is_call", "match", "prev",
                 "next")

    def __init__(self, op=None, is_call=False):
        self.op, self.is_call = op, is_call
        self.match = self.prev = self.next = None


def _lift(e):
    e.prev.next = e.next
    if e.next:
        e.next.prev = e.prev
    m = e.match
    if m:
        m.prev.next = m.next
        if m.next:
            m.next.prev = m.prev


def _unlift(e):
    m = e.match
    if m:
        m.prev.next = m
        if m.next:
            m.next.prev = m
    e.prev.next = e
    if e.next:
        e.next.prev = e


def _overlaps(a, b):
    a_end = float("inf") if a.ret is None else a.ret
    b_end = float("inf") if b.ret is None else b.ret
    return a.call < b_end and b.call < a_end


def check_ops(ops, model, time_limit=30.0, max_states=8, max_conc=50):
    """WGL search over the ops of ONE key.  Returns a result dict."""
    t0 = time.monotonic()
    deadline = t0 + time_limit
    prepare = getattr(model, "prepare", _default_prepare)
    pairs = [(op, prepare(op)) for op in ops]
    pairs = [(op, arg) for op, arg in pairs if arg is not None]
    if getattr(model, "simplify", None):
        pairs = model.simplify(pairs)
    entries, n = [], 0
    for op, arg in pairs:
        c = _Entry(op, True)
        c.arg, c.bit = arg, 1 << n
        n += 1
        c.required = op.ret is not None
        entries.append((op.call, c))
        if c.required:
            r = _Entry(op)
            c.match = r
            entries.append((op.ret, r))
    entries.sort(key=lambda x: x[0])
    head = _Entry()
    prev = head
    for _, e in entries:
        prev.next, e.prev = e, prev
        prev = e
    live = [e.op for _, e in entries if e.is_call]
    remaining = sum(1 for _, e in entries if e.is_call and e.required)

    info_mask = sum(e.bit for _, e in entries if e.is_call and not e.required)
    cache = {}   # (required-linearized bits, state) -> [info bits, ...]
    ncache = 0

    def fresh(nl, new):
        """Record the config unless it is dominated: same linearized required
        ops and state, and a subset of its linearized info ops (skipping an
        info op is always allowed, so fewer used ones can do no worse)."""
        nonlocal ncache
        key, i = (nl & ~info_mask, new), nl & info_mask
        seen = cache.setdefault(key, [])
        if any(s & ~i == 0 for s in seen):
            return False
        seen[:] = [s for s in seen if i & ~s] + [i]
        ncache += 1
        return True

    state, lin, path = model.init(), 0, []   # path: [(lifted entry, state)]
    # per depth: [scan cursor, info children found, next info child]
    frames = [[head.next, [], 0]]
    best = None  # [op, states, path tail, depth] at the furthest return entry
    steps, result = 0, None
    fresh(0, state)
    while result is None:
        if remaining == 0:
            result = LINEARIZABLE
            break
        if steps > 4096:
            steps = 0
            if time.monotonic() > deadline:
                result = UNKNOWN
                break
        top, child = frames[-1], None
        e = top[0]
        # Scan the calls before the first return entry.  The first fresh
        # required child is explored at once (plain WGL); info children are
        # cached as they are met and explored last, so that configurations
        # using more info ops are pruned as dominated.
        while e.is_call:
            steps += 1
            ok, new = model.step(state, e.arg)
            if ok and fresh(lin | e.bit, new):
                if e.required:
                    child = (e, new, lin | e.bit)
                    e = e.next
                    break
                top[1].append((e, new, lin | e.bit))
            e = e.next
        else:
            if best is None or e.op.ret > best[0].ret:
                best = [e.op, [state], [(x.op, s) for x, s in path[-10:]],
                        len(path)]
            elif e.op is best[0] and state not in best[1] \
                    and len(best[1]) < max_states:
                best[1].append(state)
        top[0] = e
        if child is None and top[2] < len(top[1]):
            child = top[1][top[2]]
            top[2] += 1
        if child is not None:                # linearize it
            e, new, nl = child
            _lift(e)
            path.append((e, state))
            state, lin = new, nl
            remaining -= e.required
            frames.append([head.next, [], 0])
            continue
        frames.pop()                         # dead end: backtrack
        if not path:
            result = NOT_LINEARIZABLE
            break
        e, state = path.pop()
        lin ^= e.bit
        _unlift(e)
        remaining += e.required

    res = {"result": result, "ops": len(live),
           "elapsed": time.monotonic() - t0, "configs": ncache}
    if result == NOT_LINEARIZABLE:
        bad = best[0]
        conc = [o for o in live if o is not bad and _overlaps(o, bad)]
        near = sorted(conc, key=lambda o: abs(o.call - bad.call))[:max_conc]
        res["anomaly"] = {
            "op": bad.brief(),
            "concurrent": [o.brief() for o in sorted(near, key=lambda o: o.call)],
            "concurrent_total": len(conc),
            "last_states": list(best[1]),
            "linearization_tail": [dict(o.brief(), state_before=s)
                                   for o, s in best[2]],
            "linearized_count": best[3],
        }
    return res


def check(history, model="register", time_limit=30.0):
    """Check a history (list of events or of paired Ops) key by key."""
    if isinstance(model, str):
        model = MODELS[model]()
    ops = history if history and isinstance(history[0], hist.Op) \
        else hist.pair(history)
    by_key = {}
    for op in ops:
        if op.f in model.fs:
            by_key.setdefault(op.key, []).append(op)
    keys, anomaly = [], None
    for key, kops in by_key.items():
        r = check_ops(kops, model, time_limit)
        r["key"] = key
        for t in ("ok", "fail", "info"):
            r[t] = sum(1 for o in kops if o.type == t)
        keys.append(r)
        if r["result"] == NOT_LINEARIZABLE:
            a = dict(r["anomaly"], key=key)
            r["anomaly"] = a
            if anomaly is None or a["op"]["ret"] < anomaly["op"]["ret"]:
                anomaly = a
    results = {r["result"] for r in keys}
    valid = False if NOT_LINEARIZABLE in results else \
        ("unknown" if UNKNOWN in results else True)
    return {"valid": valid, "keys": keys, "anomaly": anomaly}


def check_bank(history, accounts, total, allow_negative=False):
    """Every ok `balance` read must cover exactly `accounts`, sum to `total`
    and (unless allow_negative) hold no negative balance."""
    ops = history if history and isinstance(history[0], hist.Op) \
        else hist.pair(history)
    accounts, reads = set(accounts), 0
    for op in ops:
        if op.f != "balance" or op.type != "ok":
            continue
        reads += 1
        b = op.out
        err = None
        if not isinstance(b, dict):
            err = "balance value is not an object"
        elif set(b) != accounts:
            err = "accounts differ: missing %s, unexpected %s" % (
                sorted(accounts - set(b)), sorted(set(b) - accounts))
        elif sum(b.values()) != total:
            err = "sum %r != total %r" % (sum(b.values()), total)
        elif not allow_negative and any(v < 0 for v in b.values()):
            err = "negative balance: %s" % {k: v for k, v in b.items() if v < 0}
        if err:
            return {"valid": False, "reads": reads,
                    "anomaly": {"error": err, "op": op.brief()}}
    return {"valid": True, "reads": reads, "anomaly": None}


def _fmt_key(k):
    return "null" if k is None else str(k)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("history")
    ap.add_argument("--model", default="register", choices=sorted(MODELS))
    ap.add_argument("--time-limit", type=float, default=30.0,
                    help="wall-clock seconds per key (default 30)")
    ap.add_argument("--bank-total", type=lambda v: float(v) if "." in v else int(v))
    ap.add_argument("--bank-accounts", help="comma-separated account names")
    ap.add_argument("--allow-negative", action="store_true")
    ap.add_argument("--json", action="store_true", help="print full JSON result")
    a = ap.parse_args(argv)

    events = hist.load(a.history)
    ops = hist.pair(events)
    res = check(ops, a.model, a.time_limit)
    if a.bank_total is not None:
        accts = a.bank_accounts.split(",") if a.bank_accounts else []
        res["bank"] = check_bank(ops, accts, a.bank_total, a.allow_negative)
    if a.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        w = max([4] + [len(_fmt_key(r["key"])) for r in res["keys"]])
        print("%-*s %6s %6s %6s %8s  %s" % (w, "key", "ok", "fail", "info",
                                           "secs", "result"))
        for r in res["keys"]:
            print("%-*s %6d %6d %6d %8.3f  %s" % (
                w, _fmt_key(r["key"]), r["ok"], r["fail"], r["info"],
                r["elapsed"], r["result"]))
        print("keys checked: %d, events: %d, ops: %d" % (
            len(res["keys"]), len(events), len(ops)))
        if res["anomaly"]:
            print("first anomaly:")
            print(json.dumps(res["anomaly"], indent=2, default=str))
        if "bank" in res:
            b = res["bank"]
            print("bank: %d balance reads, %s" % (
                b["reads"], "ok" if b["valid"] else "INVALID"))
            if b["anomaly"]:
                print(json.dumps(b["anomaly"], indent=2, default=str))
    if res["valid"] is False or res.get("bank", {}).get("valid") is False:
        return 1
    return 2 if res["valid"] == UNKNOWN else 0


if __name__ == "__main__":
    sys.exit(main())
