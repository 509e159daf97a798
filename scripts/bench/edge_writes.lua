-- wrk script of scripts/bench/edge_device.py: Billing API writes at a
-- steady rate. Each line of BENCH_BODIES is one signed transaction/create
-- form body; every connection waits BENCH_DELAY_MS between its requests.
local bodies = {}
for l in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = l end
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS"))
local threads = {}
local next_body = 0

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

function init(args)
  -- threads take disjoint bodies: thread i starts at i and steps by the
  -- thread count
  next_body = id
  nthreads = tonumber(os.getenv("BENCH_THREADS"))
  bad = 0
end

function delay()
  return delay_ms
end

function request()
  local b = bodies[(next_body % #bodies) + 1]
  next_body = next_body + nthreads
  return wrk.format("POST", "/billing/api/transaction/create/",
                    {["Content-Type"] = "application/x-www-form-urlencoded"}, b)
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"error": *0', 1, false) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("bad answers: %d\n", total))
end
