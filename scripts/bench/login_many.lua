-- wrk script: POST /api/v1/auth/login for BENCH_ACCOUNTS (default 16) accounts in turn,
-- bench-0@example.com … bench-<n-1>@example.com with the password BENCH_PASSWORD; statuses
-- counted (status.lua).
dofile("scripts/bench/status.lua")
local accounts = tonumber(os.getenv("BENCH_ACCOUNTS") or "16")
local password = os.getenv("BENCH_PASSWORD")
local i = 0
request = function()
  i = i % accounts + 1
  local body = string.format('{"email":"bench-%d@example.com","password":"%s"}', i - 1, password)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
