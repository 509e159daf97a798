-- wrk script of scripts/bench/billing_vs_etcd.sh, the same for both systems:
-- POSTs precomputed bodies, each one once, and checks every reply.
--
-- Environment (read in init(), in each thread's Lua state):
--   BENCH_BODIES  thread i reads BENCH_BODIES.i: one request body a line
--                 (billing_vs_etcd.py writes FILE.1..FILE.T, disjoint)
--   BENCH_PATH    request path, e.g. /billing/api/transaction/create/
--   BENCH_CTYPE   Content-Type of the bodies
--   BENCH_KIND    "billing": a reply is good when HTTP 200 and its JSON has
--                 "error":0 (anything else counts as a failure, by code);
--                 "etcd": good when HTTP 200 and it carries a "revision"
--                 (etcd's gRPC gateway answers errors with non-200 and
--                 {"error":..,"code":..}).
--
-- Each thread sends the lines of its own file in order, one body per
-- request, over all of its connections. wrk runs init() of a thread and
-- starts it before it sets up the next one, so init() only reads the file
-- (about 0.1 s for 300k lines); the request is formatted in request(). When a
-- thread runs out of bodies it starts its slice again and counts that in
-- "exhausted" (the run is then not valid: tvmw answers error 1 to a
-- repeated id, etcd overwrites the key); the shell script refuses such a run.
--
-- done() prints one machine-readable line:
--   BENCH_RESULT requests=.. duration_us=.. rps=.. good=.. bad=.. non2xx=..
--   p50_us=.. p90_us=.. p99_us=.. max_us=.. mean_us=.. err_connect=..
--   err_read=.. err_write=.. err_timeout=.. statuses=200:123 errors=0:120,1:3
--   exhausted=0 bodies_used=..

local threads = {}
local counter = 1

function setup(thread)
   thread:set("tid", counter)
   table.insert(threads, thread)
   counter = counter + 1
end

function init(args)
   local file = (os.getenv("BENCH_BODIES") or "") .. "." .. tid
   path = os.getenv("BENCH_PATH") or "/"
   headers = {["Content-Type"] = os.getenv("BENCH_CTYPE") or "application/octet-stream"}
   kind = os.getenv("BENCH_KIND") or "billing"
   local f = assert(io.open(file, "rb"))
   local all = f:read("*a")
   f:close()
   bodies = {}
   for line in string.gmatch(all, "[^\n]+") do
      bodies[#bodies + 1] = line
   end
   if #bodies == 0 then
      error("no bodies in " .. file)
   end
   nreq = #bodies
   pos = 0
   exhausted = 0
   statuses = {}
   errors = {}
   good = 0
   bad = 0
end

function request()
   pos = pos + 1
   if pos > nreq then
      pos = 1
      exhausted = exhausted + 1
   end
   return wrk.format("POST", path, headers, bodies[pos])
end

local find, match = string.find, string.match

function response(status, hdrs, body)
   local k = status
   statuses[k] = (statuses[k] or 0) + 1
   if status ~= 200 then
      bad = bad + 1
      return
   end
   if kind == "billing" then
      local e = match(body, '"error":%s*(%-?%d+)')
      e = e or "none"
      errors[e] = (errors[e] or 0) + 1
      if e == "0" then
         good = good + 1
      else
         bad = bad + 1
      end
   else
      if find(body, '"revision"', 1, true) then
         good = good + 1
      else
         errors["norev"] = (errors["norev"] or 0) + 1
         bad = bad + 1
      end
   end
end

local function merge(dst, src)
   for k, v in pairs(src or {}) do
      local ks = tostring(k)
      dst[ks] = (dst[ks] or 0) + v
   end
end

local function render(t)
   local keys = {}
   for k, _ in pairs(t) do
      keys[#keys + 1] = k
   end
   table.sort(keys)
   local parts = {}
   for _, k in ipairs(keys) do
      parts[#parts + 1] = k .. ":" .. t[k]
   end
   return #parts > 0 and table.concat(parts, ",") or "none"
end

function done(summary, latency, requests)
   local st, er = {}, {}
   local g, b, ex, used, non2xx = 0, 0, 0, 0, 0
   for _, t in ipairs(threads) do
      merge(st, t:get("statuses"))
      merge(er, t:get("errors"))
      g = g + (t:get("good") or 0)
      b = b + (t:get("bad") or 0)
      local e = t:get("exhausted") or 0
      ex = ex + e
      used = used + e * (t:get("nreq") or 0) + (t:get("pos") or 0)
   end
   for k, v in pairs(st) do
      local c = tonumber(k)
      if c < 200 or c > 299 then
         non2xx = non2xx + v
      end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d rps=%.1f good=%d bad=%d non2xx=%d " ..
      "p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.0f " ..
      "err_connect=%d err_read=%d err_write=%d err_timeout=%d statuses=%s errors=%s " ..
      "exhausted=%d bodies_used=%d\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      g, b, non2xx,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean,
      e.connect, e.read, e.write, e.timeout, render(st), render(er), ex, used))
end
