-- wrk script: each request acts as the next of many devices, read from devices.txt
-- ("<uuid> <device token>" per line). BENCH_MODE=poll sends GET /settings with If-None-Match
-- (the 304 path); BENCH_MODE=sync sends POST /settings/sync with no changes.
-- BENCH_DELAY_MS paces each connection (a device waits that long after each answer before
-- its next request), for latency at a given load rather than at saturation. Statuses are
-- counted (status.lua; BENCH_EXPECT=304 for the poll runs).
local status = dofile("scripts/bench/status.lua")
local devices = {}
for line in io.lines(os.getenv("BENCH_DEVICES")) do
  local id, token = line:match("^(%S+)%s+(%S+)$")
  if id then devices[#devices + 1] = { id = id, token = token } end
end
local etag = os.getenv("BENCH_ETAG")
local mode = os.getenv("BENCH_MODE") or "poll"
local counter = 0
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
-- BENCH_MODE=events: a batch of 100 events, each with a different type and summary.
local batch = {}
local now = os.date("!%Y-%m-%dT%H:%M:%SZ")
local kinds = { "app.installed", "battery.low", "network.changed", "custom.bench_tick" }
for i = 1, 100 do
  batch[#batch + 1] = string.format(
    '{"type":"%s","occurredAt":"%s","summary":"bench event %d","data":{"n":%d,"packageName":"com.example.app%d"}}',
    kinds[(i % #kinds) + 1], now, i, i, i % 7)
end
local events_body = '{"events":[' .. table.concat(batch, ",") .. ']}'

function delay()
  return pause
end

function setup(thread)
  thread:set("offset", math.random(#devices))
  status.setup(thread)
end

function request()
  counter = counter + 1
  local device = devices[((counter + (offset or 0)) % #devices) + 1]
  local headers = { ["Authorization"] = "Bearer " .. device.token }
  if mode == "events" then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/api/v1/devices/" .. device.id .. "/events", headers, events_body)
  end
  if mode == "sync" then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/api/v1/devices/" .. device.id .. "/settings/sync", headers,
      '{"baseVersion":0,"changes":{}}')
  end
  headers["If-None-Match"] = etag
  return wrk.format("GET", "/api/v1/devices/" .. device.id .. "/settings", headers)
end
