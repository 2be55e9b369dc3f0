-- wrk helper: counts the status of every response and prints the counts when the run ends.
-- BENCH_EXPECT (default 200) is the status the run must answer: a run where fewer than
-- 99.9 % of the responses have it is marked as not a figure. Used directly for plain GETs
-- (`-s scripts/bench/status.lua`) and loaded by the other scripts with dofile.
local status = {}
local threads = {}
counts = {}

function status.setup(thread)
  table.insert(threads, thread)
end

function status.response(code, headers, body)
  counts[code] = (counts[code] or 0) + 1
end

function status.done(summary, latency, requests)
  local expect = tonumber(os.getenv("BENCH_EXPECT") or "200")
  local totals, all = {}, 0
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("counts") or {}) do
      totals[code] = (totals[code] or 0) + n
      all = all + n
    end
  end
  local parts = {}
  for code, n in pairs(totals) do
    parts[#parts + 1] = string.format("%d=%d", code, n)
  end
  table.sort(parts)
  local expected = totals[expect] or 0
  local share = all > 0 and expected / all or 0
  local e = summary.errors or {}
  local errors = (e.connect or 0) + (e.read or 0) + (e.write or 0) + (e.timeout or 0)
  io.write(string.format("   statuses: %s (%.2f %% %d, socket errors %d)\n",
    table.concat(parts, " "), share * 100, expect, errors))
  if share < 0.999 or errors > 0 then
    io.write(string.format("   UNEXPECTED STATUSES OR ERRORS: this run is not a figure (expected %d)\n", expect))
  end
end

setup = status.setup
response = status.response
done = status.done
return status
