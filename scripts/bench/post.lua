-- wrk script: POST BENCH_BODY as JSON; statuses counted (status.lua).
dofile("scripts/bench/status.lua")
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
