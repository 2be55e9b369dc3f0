#!/usr/bin/env bash
# Load benchmarks: a release server on a throw-away SQLite database, driven by oha.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v oha >/dev/null 2>&1; then
  echo "installing oha (load generator)…"
  cargo install oha --locked >/dev/null
fi

cargo build --release -p steward
workdir=$(mktemp -d)
port=${BENCH_PORT:-18080}
STEWARD_BIND="127.0.0.1:${port}" STEWARD_DATA_DIR="$workdir" STEWARD_LOG_LEVEL=warn \
  ./target/release/steward serve &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$workdir"' EXIT

for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:${port}/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

duration=${BENCH_DURATION:-10s}
echo "== GET /health (64 connections, ${duration})"
oha --no-tui -z "$duration" -c 64 "http://127.0.0.1:${port}/health"
echo "== GET /health/ready (64 connections, ${duration}) — one database round trip per request"
oha --no-tui -z "$duration" -c 64 "http://127.0.0.1:${port}/health/ready"
