#!/usr/bin/env bash
# The served spec, checked the way integrators use it (part of `just test`):
#  1. openapi-spec-validator (PyPI, pinned) — 0 errors;
#  2. @redocly/cli lint with the recommended ruleset plus stricter rules
#     (clients/typescript/redocly.yaml; none switched off) — 0 errors;
#  3. a TypeScript client generated with openapi-typescript + openapi-fetch type-checks with
#     `tsc --noEmit` (strict, no casts) and runs the family lock flow against a fresh server.
# Tools are installed on first use into $CARGO_TARGET_DIR/spec-tools and clients/typescript/
# node_modules (npm ci from the committed lock file). Needs python3 with venv, node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
tools="$target/spec-tools"
spec=openapi/openapi.json

echo "== openapi-spec-validator"
if [ ! -x "$tools/venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet "openapi-spec-validator==0.9.0"
fi
"$tools/venv/bin/openapi-spec-validator" "$spec"

cd clients/typescript
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules
fi
echo "== redocly lint (recommended)"
npx --no-install redocly lint --config redocly.yaml "../../$spec" --format=summary
echo "== TypeScript client: generate, tsc --noEmit, build"
npx --no-install openapi-typescript "../../$spec" -o src/schema.d.ts >/dev/null
npx --no-install tsc --noEmit
rm -rf dist && npx --no-install tsc
cd ../..

echo "== the family lock flow through the generated client, against a fresh server"
cargo build -q -p steward
steward="$target/debug/steward"
data=$(mktemp -d)
log=$(mktemp)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$data" "$log"
}
trap cleanup EXIT
export STEWARD_DATA_DIR="$data" STEWARD_BIND="127.0.0.1:$port" STEWARD_LOG_LEVEL=warn
unset STEWARD_DATABASE_URL
"$steward" serve >"$log" 2>&1 &
server=$!
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
if ! curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null; then
  echo "the server did not become ready within 30 s:" >&2
  cat "$log" >&2
  exit 1
fi
api_key=$("$steward" apikeys create --name typescript-client)
STEWARD_URL="http://127.0.0.1:$port" STEWARD_API_KEY="$api_key" node clients/typescript/dist/family-lock.js
