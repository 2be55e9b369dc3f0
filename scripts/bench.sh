#!/usr/bin/env bash
# Load benchmarks: a release server on a throw-away SQLite database, driven by oha.
#   BENCH_DURATION=10s (per run)   BENCH_PORT=18080
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v oha >/dev/null 2>&1; then
  echo "installing oha (load generator)…"
  cargo install oha --locked
fi

cargo build --release -p steward
cargo build --release -p steward-auth --example argon2_rate
workdir=$(mktemp -d)
port=${BENCH_PORT:-18080}
base="http://127.0.0.1:${port}"
duration=${BENCH_DURATION:-10s}
export STEWARD_BIND="127.0.0.1:${port}" STEWARD_DATA_DIR="$workdir" STEWARD_LOG_LEVEL=warn
# The benchmark signs in from one address thousands of times: per-IP limits off.
export STEWARD_RATE_LIMIT_LOGIN_PER_HOUR=0 STEWARD_RATE_LIMIT_REGISTER_PER_HOUR=0 STEWARD_RATE_LIMIT_REFRESH_PER_HOUR=0
./target/release/steward serve &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$workdir"' EXIT

for _ in $(seq 1 100); do
  curl -fs "$base/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

# Throughput, p99 and the status codes of one oha report.
summary() {
  awk '/Success rate|Requests\/sec|99\.00%/ {print} /Status code distribution/ {p=1; print; next} p && NF==0 {p=0} p {print}'
}

body='{"email":"bench@example.com","password":"correct horse battery staple","displayName":"Bench"}'
token=$(curl -fs "$base/api/v1/auth/register" -H 'content-type: application/json' -d "$body" |
  sed -E 's/.*"accessToken":"([^"]+)".*/\1/')

echo "== raw Argon2id verifications (same machine, same run)"
./target/release/examples/argon2_rate 5

echo "== POST /api/v1/auth/login, 16 concurrent clients, ${duration}"
oha --no-tui -z "$duration" -c 16 -m POST -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"correct horse battery staple"}' "$base/api/v1/auth/login" | summary

echo "== GET /api/v1/auth/me with a valid token, 64 concurrent clients, ${duration}"
oha --no-tui -z "$duration" -c 64 -H "authorization: Bearer $token" "$base/api/v1/auth/me" | summary

echo "== GET /health, 64 concurrent clients, ${duration}"
oha --no-tui -z "$duration" -c 64 "$base/health" | summary
