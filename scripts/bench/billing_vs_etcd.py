#!/usr/bin/env python3
"""Helpers of scripts/bench/billing_vs_etcd.sh (Python 3 standard library only).

Subcommands:

  sign --key K k=v ...
      print the Smarty signature of the parameters (spec billing-api.md 2.2)

  call --url URL --client-id C --key K METHOD k=v ...
      one signed Billing API call (POST); prints the JSON reply

  customers --url URL --client-id C --key K --count N --out FILE [--prefix P]
            [--workers 16]
      creates N customers with signed customer/create calls (ext_id
      "<prefix>-c<i>") and writes their ids, one a line, to FILE

  billing-bodies --client-id C --key K --ids FILE --count N --out FILE
                 [--prefix P] [--seed S] [--split T]
      writes N signed form bodies of transaction/create, one a line, to
      FILE.1 .. FILE.T (body n goes to FILE.((n-1)%T+1): one file per wrk
      thread): a unique id "<prefix>-<n>" per body, a random customer of
      --ids, amount=1.5, processed=1. Prints "generated N bodies in S s
      (R bodies/s)" to stderr.

  etcd-bodies --count N --out FILE [--prefix P] [--split T]
      writes N JSON bodies of etcd's POST /v3/kv/put, one a line, split
      like billing-bodies: key "<prefix>/<n>" (unique), a 16-byte value,
      both base64.

  customer-totals --url URL --client-id C --key K
      one signed customer/list; prints {"customers":..,"payments":..,"balance":..}
      (payments = sum of payments_count = processed transactions)

  etcd-leader ENDPOINT...
      prints "LEADER_ENDPOINT REVISION" from POST /v3/maintenance/status of
      each endpoint (the member whose member_id equals the reported leader)
"""

import argparse
import base64
import concurrent.futures
import hashlib
import json
import random
import sys
import time
import urllib.parse
import urllib.request


def signature(params, key):
    """hex(md5(base64(utf8("k1:v1;k2:v2;...;" + key)))) over sorted keys."""
    src = "".join("%s:%s;" % (k, params[k]) for k in sorted(params) if k != "signature")
    b64 = base64.b64encode((src + key).encode("utf-8"))
    return hashlib.md5(b64).hexdigest()


def signed_body(params, key):
    p = dict(params)
    p["signature"] = signature(p, key)
    return urllib.parse.urlencode(p)


def call(url, method, params, key, timeout=30):
    body = signed_body(params, key).encode("ascii")
    req = urllib.request.Request(
        url.rstrip("/") + "/billing/api/" + method + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))


def write_bodies(path, lines, split):
    """FILE.1 .. FILE.<split>: body n goes to file (n-1) % split + 1, so
    that every wrk thread reads only its own, disjoint slice."""
    for t in range(split):
        with open("%s.%d" % (path, t + 1), "w") as f:
            f.write("".join(lines[t::split]))


def self_test():
    # Worked examples 1 and 2 of the spec (section 2.3, 2.4).
    p = {"customer_id": "42", "id": "TX-1001", "amount": "150.5",
         "comment": "Оплата за май", "client_id": "1"}
    assert signature(p, "top secret") == "5db08c6035e8d02fd5c982c30322ea3c"
    assert signature({"client_id": "1"}, "top secret") == "f13af303a747e1a1d2d2fd9732c06b8e"


def cmd_sign(a):
    params = dict(kv.split("=", 1) for kv in a.params)
    print(signature(params, a.key))


def cmd_call(a):
    params = dict(kv.split("=", 1) for kv in a.params)
    params["client_id"] = str(a.client_id)
    print(json.dumps(call(a.url, a.method, params, a.key)))


def cmd_customers(a):
    def one(i):
        params = {"client_id": str(a.client_id), "firstname": "Bench",
                  "lastname": "C%d" % i, "ext_id": "%s-c%d" % (a.prefix, i)}
        for attempt in range(5):
            try:
                r = call(a.url, "customer/create", params, a.key)
            except OSError as e:  # transient (503 etc.): retry; ext_id makes it safe
                err = e
                time.sleep(0.2 * (attempt + 1))
                continue
            if r.get("error") == 0 and isinstance(r.get("id"), int):
                return r["id"]
            raise SystemExit("customer/create %d failed: %s" % (i, json.dumps(r)))
        raise SystemExit("customer/create %d failed: %s" % (i, err))

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(a.workers) as ex:
        ids = list(ex.map(one, range(1, a.count + 1)))
    dt = time.monotonic() - t0
    if len(set(ids)) != len(ids):
        raise SystemExit("customer/create returned duplicate ids")
    with open(a.out, "w") as f:
        f.write("".join("%d\n" % i for i in ids))
    print("created %d customers in %.1f s" % (len(ids), dt), file=sys.stderr)


def cmd_billing_bodies(a):
    ids = [line.strip() for line in open(a.ids) if line.strip()]
    if not ids:
        raise SystemExit("no customer ids in " + a.ids)
    rnd = random.Random(a.seed)
    key = a.key.encode("utf-8")
    cid = str(a.client_id)
    md5 = hashlib.md5
    b64 = base64.b64encode
    quote = urllib.parse.quote_plus
    t0 = time.monotonic()
    out = []
    # Sorted keys: amount, client_id, customer_id, id, processed. The values
    # are URL-safe except the id prefix, which is quoted once.
    qprefix = quote(a.prefix)
    for n in range(1, a.count + 1):
        cust = ids[rnd.randrange(len(ids))]
        txid = "%s-%d" % (a.prefix, n)
        src = "amount:1.5;client_id:%s;customer_id:%s;id:%s;processed:1;" % (cid, cust, txid)
        sig = md5(b64(src.encode("utf-8") + key)).hexdigest()
        out.append("customer_id=%s&id=%s-%d&amount=1.5&processed=1&client_id=%s&signature=%s\n"
                   % (cust, qprefix, n, cid, sig))
    write_bodies(a.out, out, a.split)
    dt = time.monotonic() - t0
    # Cross-check the fast path against the reference signer.
    first = dict(urllib.parse.parse_qsl(out[0].strip(), keep_blank_values=True))
    sig = first.pop("signature")
    assert sig == signature(first, a.key), "fast signer disagrees with the reference"
    print("generated %d bodies in %.2f s (%.0f bodies/s)" % (a.count, dt, a.count / dt),
          file=sys.stderr)


def cmd_etcd_bodies(a):
    b64 = base64.b64encode
    t0 = time.monotonic()
    val = b64(b"0123456789abcdef").decode()
    out = []
    for n in range(1, a.count + 1):
        k = b64(("%s/%d" % (a.prefix, n)).encode()).decode()
        out.append('{"key":"%s","value":"%s"}\n' % (k, val))
    write_bodies(a.out, out, a.split)
    dt = time.monotonic() - t0
    print("generated %d bodies in %.2f s (%.0f bodies/s)" % (a.count, dt, a.count / dt),
          file=sys.stderr)


def cmd_customer_totals(a):
    r = call(a.url, "customer/list", {"client_id": str(a.client_id)}, a.key, timeout=120)
    if r.get("error") != 0:
        raise SystemExit("customer/list failed: %s" % json.dumps(r)[:500])
    cs = r.get("customers", [])
    pay = sum(int(c.get("payments_count", 0)) for c in cs)
    bal = sum(float(c.get("balance", 0)) for c in cs)
    print(json.dumps({"customers": len(cs), "payments": pay, "balance": round(bal, 2)}))


def cmd_etcd_leader(a):
    leader = rev = None
    for ep in a.endpoints:
        req = urllib.request.Request(ep.rstrip("/") + "/v3/maintenance/status", data=b"{}",
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                s = json.loads(r.read().decode())
        except OSError:
            continue
        # uint64 fields come as JSON strings from the gRPC gateway
        if s.get("leader") and str(s["header"]["member_id"]) == str(s["leader"]):
            leader, rev = ep, int(s["header"]["revision"])
    if leader is None:
        raise SystemExit(1)
    print(leader, rev)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("sign")
    p.add_argument("--key", required=True)
    p.add_argument("params", nargs="*")
    p.set_defaults(fn=cmd_sign)
    p = sub.add_parser("call")
    p.add_argument("--url", required=True)
    p.add_argument("--client-id", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("method")
    p.add_argument("params", nargs="*")
    p.set_defaults(fn=cmd_call)
    p = sub.add_parser("customers")
    p.add_argument("--url", required=True)
    p.add_argument("--client-id", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--prefix", default="bench")
    p.add_argument("--workers", type=int, default=16)
    p.set_defaults(fn=cmd_customers)
    p = sub.add_parser("billing-bodies")
    p.add_argument("--client-id", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--prefix", default="bench-tx")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--split", type=int, default=1)
    p.set_defaults(fn=cmd_billing_bodies)
    p = sub.add_parser("etcd-bodies")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--prefix", default="bench")
    p.add_argument("--split", type=int, default=1)
    p.set_defaults(fn=cmd_etcd_bodies)
    p = sub.add_parser("customer-totals")
    p.add_argument("--url", required=True)
    p.add_argument("--client-id", type=int, required=True)
    p.add_argument("--key", required=True)
    p.set_defaults(fn=cmd_customer_totals)
    p = sub.add_parser("etcd-leader")
    p.add_argument("endpoints", nargs="+")
    p.set_defaults(fn=cmd_etcd_leader)
    a = ap.parse_args()
    self_test()
    a.fn(a)


if __name__ == "__main__":
    main()
