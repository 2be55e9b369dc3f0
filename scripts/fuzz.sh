#!/usr/bin/env bash
# Property-based fuzzing of the served OpenAPI document with schemathesis: every operation is
# called with generated inputs, as a plain signed-in user and as a super_admin, on SQLite and
# PostgreSQL. Checks: `not_a_server_error` (no 5xx) and `status_code_conformance` (every status
# is one the spec declares). schemathesis is installed into a virtualenv on first use. The
# operations that end the caller's own session (logout, deleting the account or the current
# session) are left out, or the rest of the run would only see 401s.
#   FUZZ_SECONDS=600 (per run)   FUZZ_BACKENDS="sqlite postgres"   FUZZ_PORT=18090
#   FUZZ_POSTGRES_URL=postgres://postgres@127.0.0.1:5432 (an administrator URL, no database)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${FUZZ_VENV:-/var/tmp/steward-fuzz-venv}
if [ ! -x "$venv/bin/st" ]; then
  echo "installing schemathesis into $venv…"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet schemathesis
fi

cargo build -p steward
steward=${CARGO_TARGET_DIR:-target}/debug/steward
port=${FUZZ_PORT:-18090}
base="http://127.0.0.1:${port}"
seconds=${FUZZ_SECONDS:-600}
backends=${FUZZ_BACKENDS:-sqlite postgres}
pg_admin=${FUZZ_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
password="correct horse battery staple"
workdir=$(mktemp -d)
# Whole schemathesis reports stay here after the run.
reports=${FUZZ_REPORTS:-${CARGO_TARGET_DIR:-target}/fuzz}
mkdir -p "$reports"
server=""
database=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  [ -n "$database" ] && psql "$pg_admin/postgres" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$workdir"
}
trap cleanup EXIT

export STEWARD_BIND="127.0.0.1:${port}" STEWARD_LOG_LEVEL=error
# Generated requests come from one address in bursts: per-IP limits and Argon2's cost off,
# so the run explores the API instead of waiting on 429s and hashing.
export STEWARD_RATE_LIMIT_LOGIN_PER_HOUR=0 STEWARD_RATE_LIMIT_REGISTER_PER_HOUR=0 \
  STEWARD_RATE_LIMIT_REFRESH_PER_HOUR=0 STEWARD_RATE_LIMIT_PASSWORD_RESET_PER_HOUR=0 \
  STEWARD_PASSWORD_HASH_MEMORY_KIB=8192 STEWARD_PASSWORD_HASH_ITERATIONS=1

json_field() { sed -E "s/.*\"$1\":\"([^\"]+)\".*/\1/"; }

start_server() {
  "$steward" serve &
  server=$!
  for _ in $(seq 1 150); do
    curl -fs "$base/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server did not start" >&2
  exit 1
}

stop_server() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
}

token_for() {
  curl -fs "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$1\",\"password\":\"$password\"}" | json_field accessToken
}

fuzz() {
  local label=$1 token=$2 report
  report="$reports/$label.txt"
  echo "== [$label] schemathesis, ${seconds}s"
  set +e
  timeout --signal=INT "$((seconds + 30))" "$venv/bin/st" run "$base/api-docs/openapi.json" \
    --checks not_a_server_error,status_code_conformance \
    --header "Authorization: Bearer $token" \
    --exclude-name "POST /api/v1/auth/logout" --exclude-name "DELETE /api/v1/auth/me" \
    --exclude-name "DELETE /api/v1/auth/sessions/{sessionId}" \
    --max-time "$seconds" --workers 2 --no-color >"$report" 2>&1
  local status=$?
  set -e
  tail -n 40 "$report"
  echo "== [$label] exit $status"
  [ "$status" -eq 0 ] || failed=1
}

failed=0
for backend in $backends; do
  case "$backend" in
    sqlite) export STEWARD_DATABASE_URL="sqlite:$workdir/fuzz.db?mode=rwc" ;;
    postgres)
      database="steward_fuzz_$$"
      psql "$pg_admin/postgres" -qc "CREATE DATABASE $database" >/dev/null
      export STEWARD_DATABASE_URL="$pg_admin/$database"
      ;;
    *) echo "unknown backend $backend" >&2; exit 1 ;;
  esac
  export STEWARD_DATA_DIR="$workdir/data-$backend"
  start_server
  echo "$password" | "$steward" admin create --email root@fuzz.example --password-stdin >/dev/null
  curl -fs "$base/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"user@fuzz.example\",\"password\":\"$password\",\"displayName\":\"Fuzz\"}" >/dev/null
  fuzz "$backend-user" "$(token_for user@fuzz.example)"
  fuzz "$backend-super-admin" "$(token_for root@fuzz.example)"
  stop_server
done
exit "$failed"
