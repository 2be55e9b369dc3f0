-- wrk script: GET with a bearer token taken in turn from the first BENCH_TOKEN_COUNT lines
-- (default: all) of BENCH_TOKENS ("<session id> <token>" per line); statuses counted.
dofile("scripts/bench/status.lua")
local tokens = {}
local limit = tonumber(os.getenv("BENCH_TOKEN_COUNT") or "0")
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  if limit > 0 and #tokens >= limit then break end
  tokens[#tokens + 1] = "Bearer " .. line:match(" (.+)$")
end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { Authorization = tokens[i] })
end
