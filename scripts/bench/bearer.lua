-- wrk script: GET with a bearer token.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
