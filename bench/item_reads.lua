-- wrk: each request reads another item, so none is in the cache: GET /api/items/<id> with ids
-- from the first argument up, each thread taking every other one (wrk -t2 ... -- FIRST 2).
-- At the end it prints the highest id asked for, where the next load starts.
local threads = {}

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  step = tonumber(args[2])
  next_id = tonumber(args[1]) + offset
end

function request()
  local path = "/api/items/" .. next_id
  next_id = next_id + step
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local last = 0
  for _, thread in ipairs(threads) do
    last = math.max(last, thread:get("next_id") - thread:get("step"))
  end
  io.write(string.format("last id: %d\n", last))
end
