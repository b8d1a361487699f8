-- wrk script: POST /v1/events with NDJSON bodies of distinct events (fresh ids, users,
-- items and times on every request), so that nothing is dropped as a repeat.
--   wrk -t2 -c8 -d10s -s bench/wrk/post_events.lua http://127.0.0.1:8080
-- EVENTS_PER_BODY (default 500) and USERS (default 100000) come from the environment.
local per_body = tonumber(os.getenv("EVENTS_PER_BODY") or "500")
local users = tonumber(os.getenv("USERS") or "100000")
local token = os.getenv("PORTRAIT_TOKEN")
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  seq = 0
  math.randomseed(tid * 7919 + os.time())
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-ndjson"
  if token then wrk.headers["Authorization"] = "Bearer " .. token end
end

local base_ts = (os.time() - 3600) * 1000

function request()
  local parts = {}
  for i = 1, per_body do
    seq = seq + 1
    local buy = math.random(50) == 1
    parts[i] = string.format(
      '{"id":"w%d-%d","uid":"u%d","type":"%s","ts":%d,"channel":"c%d","props":{"item_id":%d,"category_id":%d}}',
      tid, seq, math.random(users) - 1, buy and "buy" or "click", base_ts + seq, math.random(8) - 1,
      math.random(4000000) - 1, math.random(1000) - 1)
  end
  return wrk.format(nil, "/v1/events", nil, table.concat(parts, "\n") .. "\n")
end

function response(status, headers, body)
  if status ~= 200 then
    refused = (refused or 0) + 1
  end
end

function done(summary, latency, requests)
  local refused_total, sent = 0, 0
  for _, t in ipairs(threads) do
    refused_total = refused_total + (t:get("refused") or 0)
    sent = sent + (t:get("seq") or 0)
  end
  io.write(string.format("wrk: %d requests, %d events built, %d answers not 200, p99 %.2f ms\n",
    summary.requests, sent, refused_total, latency:percentile(99) / 1000))
end
