-- wrk script of scripts/bench/edge_device.py: the device-API mix with a
-- random session per request; counts wrong answers (not 200, or an error
-- other than 0 and 1).
local keys, cids = {}, {}
for l in io.lines(os.getenv("BENCH_KEYS")) do keys[#keys + 1] = l end
for l in io.lines(os.getenv("BENCH_CIDS")) do cids[#cids + 1] = l end
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  threads[#threads + 1] = thread
end

function init(args)
  math.randomseed(os.time() + id * 7919)
  bad = 0
end

function request()
  local k = keys[math.random(#keys)]
  local r = math.random()
  local path
  if r < 0.5 then
    path = "/tvmiddleware/api/account/status/?client_id=1&device=android&authkey=" .. k
  elseif r < 0.9 then
    path = "/tvmiddleware/api/channel/url/?client_id=1&device=android&redirect=0&cid=" ..
      cids[math.random(#cids)] .. "&authkey=" .. k
  else
    path = "/tvmiddleware/api/channel/list/?client_id=1&device=android&compact=1&authkey=" .. k
  end
  return wrk.format("GET", path)
end

function response(status, headers, body)
  -- error 1 on channel/url is a channel outside the account's tariffs
  -- (the URL's channel is picked at random): a right answer
  if status ~= 200 or not (string.find(body, '"error":0,', 1, true) or
                           string.find(body, '"error":1,', 1, true)) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("bad answers: %d\n", total))
end
