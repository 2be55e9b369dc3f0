-- wrk script: GET with a bearer token; statuses counted (status.lua).
dofile("scripts/bench/status.lua")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
