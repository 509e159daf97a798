-- wrk script for scripts/bench/cp_writes.sh: POST /admin/v1/clients with a
-- unique name per request, optionally spreading threads over several nodes.
--
-- Environment (read in setup, i.e. in wrk's main Lua state):
--   BENCH_TOKEN  admin bearer token (required)
--   BENCH_HOSTS  comma-separated "ip:port" list; thread i is pinned to
--                host (i-1) % n + 1 (wrk keeps one server address per
--                thread, so spreading is per thread, not per connection).
--                Empty: every thread uses the URL's host.
--   BENCH_PREFIX unique prefix of the names ("bench-<prefix>-<thread>-<n>")
--
-- done() prints one machine-readable line:
--   BENCH_RESULT requests=.. duration_us=.. rps=.. ok=.. non2xx=.. p50_us=..
--   p90_us=.. p99_us=.. max_us=.. mean_us=.. err_connect=.. err_read=..
--   err_write=.. err_timeout=.. statuses=200:0,201:123,503:2 hosts=..

local threads = {}
local counter = 1
local hosts = {}

function setup(thread)
   if counter == 1 then
      for h in string.gmatch(os.getenv("BENCH_HOSTS") or "", "[^,]+") do
         hosts[#hosts + 1] = h
      end
   end
   local target = ""
   if #hosts > 0 then
      target = hosts[(counter - 1) % #hosts + 1]
      local host, port = target:match("^([^:]+):(%d+)$")
      thread.addr = wrk.lookup(host, port)[1]
   end
   thread:set("tid", counter)
   thread:set("target", target)
   thread:set("token", os.getenv("BENCH_TOKEN") or "")
   thread:set("prefix", os.getenv("BENCH_PREFIX") or "x")
   table.insert(threads, thread)
   counter = counter + 1
end

function init(args)
   n = 0
   responses = 0
   statuses = {}
   headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token,
   }
end

function request()
   n = n + 1
   local body = string.format('{"name":"bench-%s-%d-%d"}', prefix, tid, n)
   return wrk.format("POST", "/admin/v1/clients", headers, body)
end

function response(status, hdrs, body)
   responses = responses + 1
   local k = tostring(status)
   statuses[k] = (statuses[k] or 0) + 1
end

function done(summary, latency, requests)
   local all = {}
   local targets = {}
   for _, t in ipairs(threads) do
      local s = t:get("statuses") or {}
      for k, v in pairs(s) do
         all[k] = (all[k] or 0) + v
      end
      local tg = t:get("target")
      if tg ~= nil and tg ~= "" then
         targets[#targets + 1] = tg
      end
   end
   local keys = {}
   for k, _ in pairs(all) do
      keys[#keys + 1] = k
   end
   table.sort(keys)
   local parts, ok, bad = {}, 0, 0
   for _, k in ipairs(keys) do
      parts[#parts + 1] = k .. ":" .. all[k]
      local c = tonumber(k)
      if c >= 200 and c < 300 then
         ok = ok + all[k]
      else
         bad = bad + all[k]
      end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_us=%d rps=%.1f ok=%d non2xx=%d " ..
      "p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.0f " ..
      "err_connect=%d err_read=%d err_write=%d err_timeout=%d statuses=%s hosts=%s\n",
      summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
      ok, bad,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean,
      e.connect, e.read, e.write, e.timeout,
      (#parts > 0 and table.concat(parts, ",") or "none"),
      (#targets > 0 and table.concat(targets, ",") or "url")))
end
