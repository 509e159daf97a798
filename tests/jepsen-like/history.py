"""History format and I/O for the tvmw Jepsen-like suite.

A history is a JSON-lines file, one event per line, in the order the harness
recorded them:

    {"process": 3, "type": "invoke", "f": "write", "key": "ch:42",
     "value": 7, "time": 1234.567, "node": "n2", "index": 17}

  process  int    logical client; at most one outstanding op per process
  type     str    "invoke" | "ok" | "fail" | "info"
  f        str    "read" | "write" | "cas" | "transfer" | "balance" | ...
  key      str|null  object the op touches (registers are checked per key)
  value    any    invoke: the argument (write: value, cas: [expected, new],
                  read: null); completion: the result (read: value read,
                  null = absent; balance: {account: amount})
  time     float  time.monotonic() seconds on the harness host
  node     str|null  node the request was sent to
  index    int    global sequence number; authoritative real-time order

Completion meaning: "ok" = happened, "fail" = definitely did NOT happen,
"info" = unknown (timeout/crash): may take effect at any time after the
invoke, or never.  An invoke with no completion at the end of the history
is treated as "info".

Record the invoke *before* sending the request and the completion *after*
receiving the answer; HistoryWriter assigns index and time under one lock so
the two orders agree.
"""

import json
import os
import threading
import time as _time
from dataclasses import dataclass
from typing import Any, Optional

TYPES = ("invoke", "ok", "fail", "info")
FIELDS = ("process", "type", "f", "key", "value", "time", "node", "index")


def make_event(process, type, f, key=None, value=None, time=None, node=None,
               index=None):
    ev = {"process": process, "type": type, "f": f, "key": key,
          "value": value, "time": _time.monotonic() if time is None else time,
          "node": node, "index": index}
    validate_event(ev)
    return ev


def validate_event(ev):
    if not isinstance(ev, dict):
        raise ValueError("event is not an object: %r" % (ev,))
    if not isinstance(ev.get("process"), int) or isinstance(ev.get("process"), bool):
        raise ValueError("bad process in %r" % (ev,))
    if ev.get("type") not in TYPES:
        raise ValueError("bad type in %r" % (ev,))
    if not isinstance(ev.get("f"), str):
        raise ValueError("bad f in %r" % (ev,))
    if ev.get("key") is not None and not isinstance(ev["key"], str):
        raise ValueError("bad key in %r" % (ev,))
    if ev.get("index") is not None and not isinstance(ev["index"], int):
        raise ValueError("bad index in %r" % (ev,))
    if ev.get("time") is not None and not isinstance(ev["time"], (int, float)):
        raise ValueError("bad time in %r" % (ev,))


def dumps(ev):
    return json.dumps({k: ev.get(k) for k in FIELDS}, separators=(",", ":"))


def write(path, events):
    """Write (overwrite) a whole history."""
    with open(path, "w") as fh:
        for ev in events:
            validate_event(ev)
            fh.write(dumps(ev) + "\n")


def append(path, ev):
    """Append one event and flush it to disk."""
    validate_event(ev)
    with open(path, "a") as fh:
        fh.write(dumps(ev) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


class HistoryWriter:
    """Thread-safe recorder: assigns index/time under a lock, line-flushed.

        w = HistoryWriter("h.jsonl")
        w.invoke(p, "write", "k", 3, node="n1") ... w.ok(p, "write", "k", 3)
    """

    def __init__(self, path, clock=_time.monotonic, fsync=False):
        self.path, self.clock, self.fsync = path, clock, fsync
        self.lock = threading.Lock()
        self.index = 0
        self.fh = open(path, "a")

    def record(self, process, type, f, key=None, value=None, node=None):
        with self.lock:
            ev = make_event(process, type, f, key, value, self.clock(), node,
                            self.index)
            self.index += 1
            self.fh.write(dumps(ev) + "\n")
            self.fh.flush()
            if self.fsync:
                os.fsync(self.fh.fileno())
            return ev

    def invoke(self, *a, **kw): return self.record(a[0], "invoke", *a[1:], **kw)
    def ok(self, *a, **kw): return self.record(a[0], "ok", *a[1:], **kw)
    def fail(self, *a, **kw): return self.record(a[0], "fail", *a[1:], **kw)
    def info(self, *a, **kw): return self.record(a[0], "info", *a[1:], **kw)

    def close(self):
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parse(lines):
    """Parse JSON lines into events sorted by index (file order if absent).
    A malformed *last* line (harness crashed mid-write) is dropped."""
    events = []
    lines = [ln for ln in lines if ln.strip()]
    for n, ln in enumerate(lines):
        try:
            ev = json.loads(ln)
        except json.JSONDecodeError:
            if n == len(lines) - 1:
                break
            raise ValueError("line %d: malformed JSON: %r" % (n + 1, ln[:200]))
        validate_event(ev)
        ev.setdefault("key", None)
        ev.setdefault("value", None)
        ev.setdefault("node", None)
        ev.setdefault("time", None)
        if ev.get("index") is None:
            ev["index"] = n
        events.append(ev)
    events.sort(key=lambda e: e["index"])
    for a, b in zip(events, events[1:]):
        if a["index"] == b["index"]:
            raise ValueError("duplicate index %d" % a["index"])
    return events


def load(path):
    with open(path) as fh:
        return parse(fh.readlines())


@dataclass
class Op:
    """An invocation paired with its completion."""
    id: int                    # position in invoke order (0..n-1)
    process: int
    f: str
    key: Optional[str]
    value: Any                 # invoke argument
    type: str                  # "ok" | "fail" | "info"
    out: Any = None            # completion value (None for info)
    call: int = 0              # index of the invoke event
    ret: Optional[int] = None  # index of the completion; None if info
    call_time: Optional[float] = None
    ret_time: Optional[float] = None
    node: Optional[str] = None

    def brief(self):
        return {"process": self.process, "f": self.f, "key": self.key,
                "value": self.value, "type": self.type, "out": self.out,
                "call": self.call, "ret": self.ret}


def pair(events):
    """Pair invokes with completions per process.  Returns Ops in invoke
    order.  `info` completions and invokes left open at the end get
    type "info" and ret=None (open forever)."""
    open_ops, ops = {}, []
    for ev in events:
        p = ev["process"]
        if ev["type"] == "invoke":
            if p in open_ops:
                raise ValueError("process %d invoked index %d while op at index"
                                 " %d is outstanding" % (p, ev["index"],
                                                         open_ops[p].call))
            op = Op(len(ops), p, ev["f"], ev.get("key"), ev.get("value"),
                    "info", call=ev["index"], call_time=ev.get("time"),
                    node=ev.get("node"))
            open_ops[p] = op
            ops.append(op)
        else:
            op = open_ops.pop(p, None)
            if op is None:
                raise ValueError("completion without invoke: %r" % (ev,))
            if ev["f"] != op.f:
                raise ValueError("completion f %r does not match invoke %r at "
                                 "index %d" % (ev["f"], op.f, ev["index"]))
            op.type = ev["type"]
            if op.type != "info":
                op.out = ev.get("value")
                op.ret = ev["index"]
                op.ret_time = ev.get("time")
    return ops
