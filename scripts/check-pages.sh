#!/usr/bin/env bash
# Steward's built-in mail pages in headless Chromium (part of `just test`): a fresh server
# without SMTP writes its mail to <data dir>/outbox/, and tests/browser/mail-pages.mjs opens
# the verification and reset mails' HTML, follows their buttons and uses the pages.
# Needs Chromium (Debian's `chromium`, installed here when missing and apt-get is available),
# node and npm; playwright-core comes from tests/browser/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}

chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing Chromium (Debian's package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  else
    echo "Chromium is not at $chromium: install Debian's chromium package or set CHROMIUM" >&2
    exit 1
  fi
fi

cd tests/browser
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules
fi
cd ../..

echo "== the built-in mail pages in headless Chromium, against a fresh server"
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
export STEWARD_DATA_DIR="$data" STEWARD_BIND="127.0.0.1:$port" STEWARD_LOG_LEVEL=warn \
  STEWARD_OUTBOX_POLL_MS=100
unset STEWARD_DATABASE_URL STEWARD_SMTP_URL STEWARD_APP_URL STEWARD_PUBLIC_URL STEWARD_CONFIG \
  STEWARD_MAIL_TEMPLATES_DIR STEWARD_MAIL_LINK_VERIFY_EMAIL STEWARD_MAIL_LINK_RESET_PASSWORD \
  STEWARD_MAIL_LINK_ACCEPT_INVITATION
"$steward" serve >"$log" 2>&1 &
server=$!
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
if ! curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null; then
  echo "the server did not become ready within 30 s:" >&2
  cat "$log" >&2
  exit 1
fi
admin_email=operator@example.com
admin_password="Operator Passphrase 2026"
echo "$admin_password" | "$steward" admin create --email "$admin_email" --password-stdin >/dev/null
if ! STEWARD_URL="http://127.0.0.1:$port" STEWARD_OUTBOX="$data/outbox" CHROMIUM="$chromium" \
  STEWARD_ADMIN_EMAIL="$admin_email" STEWARD_ADMIN_PASSWORD="$admin_password" \
  node tests/browser/mail-pages.mjs; then
  echo "the server's log:" >&2
  cat "$log" >&2
  exit 1
fi
