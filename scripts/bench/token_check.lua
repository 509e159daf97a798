-- wrk script of scripts/bench/token_check.sh: replays pre-built token-check
-- requests (one request target per line of $BENCH_REQUESTS), each thread
-- from its own offset, round robin. The same file drives the edge and
-- nginx, so both parse the same requests.
local targets = {}
local pos = 1

function init(args)
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    targets[#targets + 1] = line
  end
  -- spread the threads over the pool
  pos = (tonumber(wrk.thread:get("id")) or 0) * 7919 % #targets + 1
end

function setup(thread)
  thread_ids = (thread_ids or 0) + 1
  thread:set("id", thread_ids)
end

function request()
  local t = targets[pos]
  pos = pos + 1
  if pos > #targets then
    pos = 1
  end
  return wrk.format("GET", t)
end
