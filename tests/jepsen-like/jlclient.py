"""HTTP clients of the suite: the Billing API (signed, spec 2.2) and the
admin API (bearer token), every request bounded by a timeout.

A request returns a Reply: `status` (HTTP status, or None when no answer
came), `body` (parsed JSON or None), `error` (transport error text) and
`sent` (False only when the connection was refused or could not be made,
i.e. the request certainly never reached the server).
"""

import base64
import hashlib
import http.client
import json
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Optional


def signature(params, api_key):
    """Billing API signature (spec 2.2):
    hex(md5(base64(utf8(k1:v1;k2:v2;...;API_KEY)))) over the sorted keys,
    `signature` itself excluded."""
    src = "".join("%s:%s;" % (k, params[k])
                  for k in sorted(params, key=lambda k: k.encode())
                  if k != "signature")
    src += api_key
    b64 = base64.b64encode(src.encode("utf-8"))
    return hashlib.md5(b64).hexdigest()


def sign(params, client_id, api_key):
    p = {k: str(v) for k, v in params.items()}
    p["client_id"] = str(client_id)
    p["signature"] = signature(p, api_key)
    return p


@dataclass
class Reply:
    status: Optional[int]
    body: Any = None
    error: Optional[str] = None
    sent: bool = True
    elapsed: float = 0.0

    @property
    def code(self):
        """Billing API `error` field (None if absent)."""
        if isinstance(self.body, dict):
            return self.body.get("error")
        return None

    def __str__(self):
        if self.status is None:
            return "no answer (%s)" % self.error
        b = json.dumps(self.body)[:200] if self.body is not None else ""
        return "HTTP %d %s" % (self.status, b)


def request(addr, method, path, body=None, headers=None, timeout=3.0):
    """One HTTP request to addr ("ip:port") with a whole-request deadline."""
    host, port = addr.rsplit(":", 1)
    t0 = time.monotonic()
    deadline = t0 + timeout
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    hdrs = {"Connection": "close"}
    hdrs.update(headers or {})
    try:
        try:
            conn.connect()
        except ConnectionRefusedError as e:
            return Reply(None, error="refused: %s" % e, sent=False,
                         elapsed=time.monotonic() - t0)
        except (socket.timeout, OSError) as e:
            # SYN unanswered (partitioned / paused host): nothing was sent.
            return Reply(None, error="connect: %s" % e, sent=False,
                         elapsed=time.monotonic() - t0)
        conn.sock.settimeout(max(0.05, deadline - time.monotonic()))
        conn.request(method, path, body=body, headers=hdrs)
        conn.sock.settimeout(max(0.05, deadline - time.monotonic()))
        resp = conn.getresponse()
        raw = resp.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = {"_raw": raw[:500].decode("utf-8", "replace")}
        return Reply(resp.status, parsed, elapsed=time.monotonic() - t0)
    except (socket.timeout, TimeoutError) as e:
        return Reply(None, error="timeout: %s" % e, elapsed=time.monotonic() - t0)
    except (OSError, http.client.HTTPException) as e:
        return Reply(None, error="%s: %s" % (type(e).__name__, e),
                     elapsed=time.monotonic() - t0)
    finally:
        conn.close()


class Billing:
    """Signed Billing API calls for one client (operator)."""

    def __init__(self, client_id, api_key, timeout=3.0):
        self.client_id, self.api_key, self.timeout = client_id, api_key, timeout

    def call(self, addr, method, params=None, query=None, timeout=None):
        """POST /billing/api/<method>/ with a signed form body.  `query`
        parameters go into the URL and are signed too."""
        params = dict(params or {})
        allp = dict(params)
        allp.update(query or {})
        signed = sign(allp, self.client_id, self.api_key)
        body_p = {k: v for k, v in signed.items() if k not in (query or {})}
        path = "/billing/api/%s/" % method
        if query:
            path += "?" + urllib.parse.urlencode({k: str(v) for k, v in query.items()})
        body = urllib.parse.urlencode(body_p)
        return request(addr, "POST", path, body=body,
                       headers={"Content-Type": "application/x-www-form-urlencoded"},
                       timeout=self.timeout if timeout is None else timeout)


class Admin:
    def __init__(self, token, timeout=3.0):
        self.token, self.timeout = token, timeout

    def call(self, addr, method, path, obj=None, timeout=None, query=None,
             headers=None):
        headers = dict(headers or {})
        headers["Authorization"] = "Bearer " + self.token
        body = None
        if obj is not None:
            body = json.dumps(obj)
            headers["Content-Type"] = "application/json"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return request(addr, method, path, body=body, headers=headers,
                       timeout=self.timeout if timeout is None else timeout)


def healthz(addr, timeout=1.0):
    return request(addr, "GET", "/healthz", timeout=timeout)
