-- wrk script: BENCH_METHOD (default PUT) with BENCH_BODY as JSON and a bearer token;
-- statuses counted (status.lua).
dofile("scripts/bench/status.lua")
wrk.method = os.getenv("BENCH_METHOD") or "PUT"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
