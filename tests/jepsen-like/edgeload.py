"""The edge workload: accounts made through the Billing API, devices logged
in and stream tokens got through the device API of the edges, tokens
checked at every edge, revocations through the Billing API followed by
checks at every edge.  The ops and what edgecheck.py verifies on them are
described there.

Setup (admin API, before the faults): the run's client gets two channels
(stream names jla, jlb), a streaming service with a live URL mask, a
tariff holding both channels and a few accounts; a second client, the
"expiry tenant", has stream_token_ttl_s = 1 (the cluster file sets
stream_auth.skew_s = 1), a channel jlx and two accounts: its tokens are
expired two seconds after they were issued.

Workers (wl.Worker threads; one op at a time each):
  issuer     new account (customer/create, account/create with
             allow_multiple_login, account/tariff/assign at any control-plane
             node), a token of a random usable account at a random edge, an
             expiry-tenant token, or a forged token (one character of a real
             one changed)
  validator  a token check of a random token (usable, revoked, forged,
             expiry) at a random edge (two of them)
  revoker    account/modify active=0 status_reason=INACTIVE (or
             account/tariff/remove) of an account with tokens at any node;
             once acknowledged, checks of its tokens at every edge (one
             thread per edge, process 2000000 + 64 * process + edge) every
             0.1 s until each edge denied or BOUND_S + 2 s passed
After the heal: every edge must reach the feed's last_index on every node,
then every token (a sample in long runs) is checked at every edge and the
final account states are read, for edgecheck's convergence rule.
"""

import itertools
import random
import secrets
import threading
import time

import edgecheck
import jlclient
import jledge
import workloads as wl

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ACCOUNT_FMT = "72%05d"        # the register workload uses 71xxxxx
EXPIRY_ACCOUNTS = ("7300001", "7300002")
PASSWORD = "246810"
STREAMS = ("jla", "jlb")
EXPIRY_TTL_S, EXPIRY_SKEW_S = 1, 1
PROBE_BASE = 2000000          # process ids of the revoker's per-edge probes


class SetupError(RuntimeError):
    pass


class EdgeWorkload:
    name = "edge"

    def __init__(self, edges, initial_accounts=4, bound_s=edgecheck.BOUND_S):
        self.edges = edges                  # jledge.Edges
        self.bound_s = bound_s
        self.initial_accounts = initial_accounts
        self.lock = threading.Lock()
        self.acc_counter = itertools.count(1)
        self.tok_counter = itertools.count(1)
        self.usable = []                    # abonements: created, never revoked
        self.touched = set()                # abonements with a revocation sent
        self.revoke_sent = set()            # ... including ones that failed
        self.tokens = {}                    # id -> {"token", "account", "stream", "kind"}
        self.by_account = {}                # abonement -> [token ids]
        self.pools = {"valid": [], "revoked": [], "forged": [], "expiry": []}
        self.final = None

    # ---- setup ---------------------------------------------------------------------
    def _admin(self, c, method, path, obj, idem, want=(200, 201)):
        r = None
        for _ in range(15):
            r = c.admin_call(method, path, obj, timeout=10,
                             headers={"Idempotency-Key": idem})
            if r.status in want and isinstance(r.body, dict):
                return r.body
            time.sleep(1)
        raise SetupError("%s %s: %s" % (method, path, r))

    def _catalogue(self, c, cid, tag, streams):
        chans = []
        for i, s in enumerate(streams):
            b = self._admin(c, "POST", "/admin/v1/clients/%d/channels" % cid,
                            {"name": "JL %s" % s, "number": i + 1, "stream_name": s},
                            "jl-%s-ch-%s" % (tag, s))
            chans.append(b["channel"]["id"])
        self._admin(c, "POST", "/admin/v1/clients/%d/streaming-services" % cid,
                    {"name": "jl-fl-%s" % tag, "type": "flussonic",
                     "url_masks": {"live": "http://fl.%s.invalid/$stream_name/index.m3u8"
                                   "?token=$token" % tag}},
                    "jl-%s-svc" % tag)
        b = self._admin(c, "POST", "/admin/v1/clients/%d/tariffs" % cid,
                        {"name": "JL %s" % tag, "period": 1, "price": 0,
                         "sessions_count": 100, "basic_sessions_count": 0,
                         "basic_tariff_priority": 5}, "jl-%s-tariff" % tag)
        tid = b.get("id") or (b.get("tariff") or {}).get("id")
        if not tid:
            raise SetupError("tariff of %s: %s" % (tag, b))
        self._admin(c, "PUT", "/admin/v1/clients/%d/tariffs/%d/channels" % (cid, tid),
                    {"ids": chans}, "jl-%s-tariff-ch" % tag)
        return dict(zip(streams, chans)), tid

    def _accounts(self, c, cid, tid, abonements, idem):
        items = []
        for ab in abonements:
            items += [{"method": "customer/create",
                       "params": {"ext_id": "edge-%s" % ab, "firstname": "Edge"}},
                      {"method": "account/create",
                       "params": {"ext_id": "edge-%s" % ab, "abonement": ab,
                                  "password": PASSWORD, "allow_multiple_login": "1"}},
                      {"method": "account/tariff/assign",
                       "params": {"abonement": ab, "tariff_id": str(tid)}}]
        b = self._admin(c, "POST", "/admin/v1/clients/%d/import" % cid, {"items": items},
                        idem, want=(200,))
        if b.get("failed", 0) not in (0, None):
            raise SetupError("accounts of client %d: %s" % (cid, b))

    def setup(self, ctx, api_key):
        """Catalogue, tenants and first accounts; then wait until a login
        works at every edge (the first signing key exists)."""
        c = ctx.cluster
        self.cid, self.api_key = ctx.client_id, api_key
        self.channels, self.tariff = self._catalogue(c, self.cid, "main", STREAMS)
        self.exp_key = secrets.token_hex(16)
        b = self._admin(c, "POST", "/admin/v1/clients",
                        {"name": "jepsen-like-expiry", "api_key": self.exp_key,
                         "billing_api_key": secrets.token_hex(16),
                         "settings": {"stream_token_ttl_s": EXPIRY_TTL_S}},
                        "jl-expiry-client")
        self.exp_cid = b["client"]["id"] if "client" in b else None
        if self.exp_cid is None:
            raise SetupError("expiry client: %s" % b)
        self.exp_channels, exp_tariff = self._catalogue(c, self.exp_cid, "expiry", ("jlx",))
        self._accounts(c, self.exp_cid, exp_tariff, EXPIRY_ACCOUNTS, "jl-expiry-accounts")
        first = [ACCOUNT_FMT % next(self.acc_counter) for _ in range(self.initial_accounts)]
        self._accounts(c, self.cid, self.tariff, first, "jl-edge-accounts")
        self.usable += first
        for e in self.edges:
            self.edges.start(e.j)
        if not self.edges.wait_state(40):
            raise SetupError("the edges have no state 40 s after their start (see logs/e*.log)")
        deadline = time.monotonic() + 40
        for e in self.edges:
            for cid, key, ab in ((self.cid, self.api_key, first[0]),
                                 (self.exp_cid, self.exp_key, EXPIRY_ACCOUNTS[0])):
                while True:
                    r = jledge.device_get(e.http_address, "login",
                                          {"client_id": cid, "api_key": key, "abonement": ab,
                                           "password": PASSWORD, "device": "android"})
                    if r.status == 200 and r.code == 0:
                        break
                    if time.monotonic() > deadline:
                        raise SetupError("no login of %s at %s: %s" % (ab, e.name, r))
                    time.sleep(0.3)

    # ---- pools -----------------------------------------------------------------------
    def _add_token(self, tid, rec, pool):
        with self.lock:
            self.tokens[tid] = rec
            if rec.get("account") and rec["kind"] == "valid":
                self.by_account.setdefault(rec["account"], []).append(tid)
            self.pools[pool].append(tid)
            if len(self.pools[pool]) > 400:      # keep choices fresh in long runs
                self.pools[pool].pop(random.randrange(len(self.pools[pool]) - 100))

    def _pick_edge(self, rng):
        return rng.choice(list(self.edges))

    def _check(self, ctx, process, tid, edge):
        t = self.tokens[tid]
        h = ctx.history
        h.invoke(process, "check", tid, {"edge": edge.name}, node=edge.name)
        verdict, r = jledge.check_token(edge.http_address, t["token"], t["stream"],
                                        timeout=ctx.op_timeout)
        if verdict is None:
            if r.status is not None and r.status != 503:
                ctx.note_unexpected("check %s at %s" % (tid, edge.name), r)
            ctx.note_reply(h.fail(process, "check", tid, None, node=edge.name), r)
            return "fail", None
        h.ok(process, "check", tid, verdict, node=edge.name)
        return "ok", verdict

    # ---- issuer ------------------------------------------------------------------------
    def _billing_step(self, ctx, rng, method, params, exists_code):
        """One Billing API write, retried while its outcome is unknown.
        True when it took effect (or had already)."""
        retried = False
        for _ in range(4):
            slot = ctx.pick_node(rng)
            r = ctx.billing.call(ctx.cluster.nodes[slot].http_address, method, params,
                                 timeout=ctx.op_timeout)
            t, _ = wl.classify_write(r)
            if t == "ok":
                return True, r
            if retried and r.status == 200 and r.code == exists_code:
                return True, r
            if r.status == 200 and r.code not in (-1, None):
                return False, r
            retried = retried or t == "info"
            time.sleep(0.3)
        return False, r

    def _create(self, ctx, process, rng):
        ab = ACCOUNT_FMT % next(self.acc_counter)
        h = ctx.history
        h.invoke(process, "create", ab, None)
        steps = (("customer/create", {"ext_id": "edge-%s" % ab, "firstname": "Edge"}, 1),
                 ("account/create", {"ext_id": "edge-%s" % ab, "abonement": ab,
                                     "password": PASSWORD, "allow_multiple_login": 1}, 3),
                 ("account/tariff/assign", {"abonement": ab, "tariff_id": self.tariff}, None))
        for method, params, exists in steps:
            ok, r = self._billing_step(ctx, rng, method, params, exists)
            if not ok:
                ctx.note_reply(h.info(process, "create", ab, None), r)
                return "info"
        h.ok(process, "create", ab, None)
        with self.lock:
            self.usable.append(ab)
        return "ok"

    def _mint(self, ctx, process, rng, expiry=False):
        with self.lock:
            if expiry:
                ab, cid, key, chans = (rng.choice(EXPIRY_ACCOUNTS), self.exp_cid, self.exp_key,
                                       self.exp_channels)
            else:
                if not self.usable:
                    return None
                ab, cid, key, chans = (rng.choice(self.usable), self.cid, self.api_key,
                                       self.channels)
        edge = self._pick_edge(rng)
        stream = rng.choice(sorted(chans))
        tenant = "expiry" if expiry else "main"
        h = ctx.history
        h.invoke(process, "token", ab, {"edge": edge.name, "tenant": tenant}, node=edge.name)
        r = jledge.device_get(edge.http_address, "login",
                              {"client_id": cid, "api_key": key, "abonement": ab,
                               "password": PASSWORD, "device": "android"},
                              timeout=ctx.op_timeout)
        tok = None
        if r.status == 200 and r.code == 0 and isinstance(r.body.get("authkey"), str):
            r = jledge.device_get(edge.http_address, "channel/url",
                                  {"client_id": cid, "authkey": r.body["authkey"],
                                   "cid": chans[stream], "redirect": 0},
                                  timeout=ctx.op_timeout)
            if r.status == 200 and r.code == 0:
                tok = jledge.token_of_uri(r.body.get("uri"))
        if tok is None:
            if r.status not in (None, 200, 503):
                ctx.note_unexpected("token of %s at %s" % (ab, edge.name), r)
            ctx.note_reply(h.fail(process, "token", ab, None, node=edge.name), r)
            return "fail"
        tid = "%s%d" % ("X" if expiry else "T", next(self.tok_counter))
        h.ok(process, "token", ab, {"id": tid, "stream": stream, "tenant": tenant},
             node=edge.name)
        self._add_token(tid, {"token": tok, "account": ab, "stream": stream,
                              "kind": "expiry" if expiry else "valid"},
                        "expiry" if expiry else "valid")
        with self.lock:
            if not expiry and ab in self.touched:
                self.pools["revoked"].append(tid)
        return "ok"

    def _forge(self, ctx, process, rng):
        with self.lock:
            if not self.pools["valid"]:
                return None
            src = rng.choice(self.pools["valid"])
        t = self.tokens[src]
        s = t["token"]
        i = rng.randrange(8, max(9, len(s) - 8))
        ch = rng.choice([a for a in ALPHABET if a != s[i]])
        fid = "F%d" % next(self.tok_counter)
        ctx.history.invoke(process, "forge", fid, {"from": src})
        ctx.history.ok(process, "forge", fid, {"from": src})
        self._add_token(fid, {"token": s[:i] + ch + s[i + 1:], "account": t["account"],
                              "stream": t["stream"], "kind": "forged"}, "forged")
        return "ok"

    # ---- revoker -------------------------------------------------------------------------
    def _revoke(self, ctx, process, rng):
        with self.lock:
            cands = [a for a in self.usable if self.by_account.get(a)]
            if not cands:
                return None
            ab = rng.choice(cands)
            self.usable.remove(ab)
            self.touched.add(ab)
            self.revoke_sent.add(ab)
            self.pools["revoked"] += self.by_account.get(ab, [])
            for tid in self.by_account.get(ab, []):
                if tid in self.pools["valid"]:
                    self.pools["valid"].remove(tid)
        how = "deactivate" if rng.random() < 0.7 else "tariff"
        slot = ctx.pick_node(rng)
        node = ctx.cluster.nodes[slot]
        h = ctx.history
        h.invoke(process, "revoke", ab, {"how": how}, node=node.name)
        if how == "deactivate":
            r = ctx.billing.call(node.http_address, "account/modify",
                                 {"abonement": ab, "active": 0, "status_reason": "INACTIVE"},
                                 timeout=ctx.op_timeout)
        else:
            r = ctx.billing.call(node.http_address, "account/tariff/remove",
                                 {"abonement": ab, "tariff_id": self.tariff},
                                 timeout=ctx.op_timeout)
        t, unexpected = wl.classify_write(r)
        if unexpected:
            ctx.note_unexpected("revoke %s on %s" % (ab, node.name), r)
        ev = h.record(process, t, "revoke", ab, {"how": how}, node=node.name)
        if t != "ok":
            ctx.note_reply(ev, r)
        if t == "fail":           # nothing was done: the account stays usable
            with self.lock:
                self.touched.discard(ab)
                self.usable.append(ab)
            return t
        if t == "info":
            return t
        # Acknowledged: every edge must deny its tokens within the bound.
        # One prober per edge, so that a paused edge delays no other.
        with self.lock:
            tids = list(self.by_account.get(ab, []))
        until = time.monotonic() + self.bound_s + 2.0

        def probe(e, pid, prng):
            while time.monotonic() < until and not ctx.stop.is_set():
                res, verdict = self._check(ctx, pid, prng.choice(tids), e)
                if res == "ok" and verdict != "allow":
                    return
                time.sleep(0.1)
        ths = [threading.Thread(target=probe, daemon=True, name="probe-%s" % e.name,
                                args=(e, PROBE_BASE + process * 64 + e.j,
                                      random.Random(rng.random())))
               for e in self.edges]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        return t

    # ---- validator ---------------------------------------------------------------------
    def _validate(self, ctx, process, rng):
        x = rng.random()
        order = ["valid", "revoked", "forged", "expiry"] if x < 0.45 else \
            ["revoked", "valid", "forged", "expiry"] if x < 0.8 else \
            ["forged", "valid"] if x < 0.9 else ["expiry", "valid"]
        with self.lock:
            tid = None
            for p in order:
                if self.pools[p]:
                    tid = rng.choice(self.pools[p])
                    break
        if tid is None:
            return None
        return self._check(ctx, process, tid, self._pick_edge(rng))[0]

    # ---- worker roles (wl.Worker calls op(ctx, process, rng)) ---------------------------
    def roles(self):
        return [Role(self, "issuer"), Role(self, "validator"), Role(self, "validator"),
                Role(self, "revoker")]

    # ---- after the heal ------------------------------------------------------------------
    def final_ops(self, ctx, process_base, cp_slots, history, log=print):
        """Convergence of every edge, final account states, final checks.
        Sets self.final (edge_final.json).  Returns the next process id."""
        c = ctx.cluster
        # The feed's last_index (the last command applied: raft's barrier
        # and configuration entries are not counted), what edges reach.
        target = 0
        for s in cp_slots:
            r = jlclient.request(c.nodes[s].http_address, "GET",
                                 "/edge/v1/feed?after=0&wait_ms=0&limit=1", timeout=5)
            if r.status in (200, 410) and isinstance(r.body, dict):
                target = max(target, r.body.get("last_index") or 0)
        fin = {"target_index": target, "edges": {}, "accounts": {},
               "bound_s": self.bound_s, "expiry_s": EXPIRY_TTL_S + EXPIRY_SKEW_S}
        t0 = time.monotonic()
        for e in self.edges:
            st = {"converged": False, "applied_index": None}
            while True:
                hz = self.edges.health(e.j) or {}
                st["applied_index"] = hz.get("applied_index")
                if (hz.get("applied_index") or 0) >= target:
                    st["converged"] = True
                    break
                if time.monotonic() - t0 > 60:
                    break
                time.sleep(0.2)
            st["secs"] = round(time.monotonic() - t0, 2)
            st["health"] = hz
            fin["edges"][e.name] = st
            log("edge %s: applied %s of %s, %s after %.1f s" % (
                e.name, st["applied_index"], target,
                "converged" if st["converged"] else "NOT converged", st["secs"]))
        with self.lock:
            touched = sorted(self.revoke_sent)
        ls, _ = c.leader()
        addr = c.nodes[ls or cp_slots[0]].http_address
        for ab in touched:
            for _ in range(5):
                r = ctx.billing.call(addr, "account/info", {"abonement": ab}, timeout=5)
                if r.status == 200 and r.code == 0:
                    active = r.body.get("active")
                    tariffs = r.body.get("tariffs") or []
                    fin["accounts"][ab] = {"active": active, "tariffs": tariffs,
                                           "revoked": active in (0, "0") or
                                           self.tariff not in tariffs}
                    break
                time.sleep(0.5)
        rng = random.Random(7)
        with self.lock:
            revoked = [t for a in touched for t in self.by_account.get(a, [])]
            valid = [t for t, r in self.tokens.items()
                     if r["kind"] == "valid" and r["account"] not in self.revoke_sent]
            forged = list(self.pools["forged"])
            expiry = list(self.pools["expiry"])
        pick = lambda xs, n: xs if len(xs) <= n else rng.sample(xs, n)  # noqa: E731
        todo = pick(revoked, 300) + pick(valid, 200) + pick(forged, 40) + pick(expiry, 20)
        with history.lock:
            fin["from_index"] = history.index
        p = process_base
        for tid in todo:
            for e in self.edges:
                for _ in range(3):
                    if self._check(ctx, p, tid, e)[0] == "ok":
                        break
                    time.sleep(0.3)
            p += 1
        fin["checked_tokens"] = len(todo)
        fin["secs"] = round(time.monotonic() - t0, 2)
        self.final = fin
        return p


class Role:
    """One worker's share of the edge workload."""

    def __init__(self, w, role):
        self.w, self.role = w, role
        self.name = "edge-" + role

    def op(self, ctx, process, rng):
        w = self.w
        if self.role == "validator":
            out = w._validate(ctx, process, rng)
        elif self.role == "revoker":
            if ctx.stop.wait(rng.uniform(0.3, 1.0)):
                return "ok"
            out = w._revoke(ctx, process, rng)
        else:
            x = rng.random()
            if x < 0.2 or len(w.usable) < 3:
                out = w._create(ctx, process, rng)
            elif x < 0.8:
                out = w._mint(ctx, process, rng)
            elif x < 0.92:
                out = w._mint(ctx, process, rng, expiry=True)
            else:
                out = w._forge(ctx, process, rng)
            ctx.stop.wait(rng.uniform(0.05, 0.2))
        if out is None:
            ctx.stop.wait(0.2)
            return "ok"
        return out
