#!/usr/bin/env bash
# Browser tests of honey's pages: headless Debian Chromium driven by playwright-core.
#
#   tests/browser/run.sh            (after ./dev build, or inside ./dev test)
#
# Starts the app itself on a free port against the stores named by the test harness's
# environment (./dev test exports these; for a manual run, set them by hand):
#   HONEY_TEST_DATABASE_URL, HONEY_TEST_DB_HOST, HONEY_TEST_REDIS_URL, HONEY_TEST_REDIS_HOST,
#   HONEY_TEST_REDIS_PREFIX
# The tests never reset or delete votes on the real backend (a shared database stays as
# it was, but for the few votes they cast); destructive admin calls are intercepted.
# Screenshots go to artifacts/screenshots/, the app's log to artifacts/browser/app.log.
# Exits non-zero when a test fails or the app does not start.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

say() { printf '\033[1;33m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

for v in HONEY_TEST_DATABASE_URL HONEY_TEST_DB_HOST HONEY_TEST_REDIS_URL HONEY_TEST_REDIS_HOST HONEY_TEST_REDIS_PREFIX; do
  [[ -n "${!v:-}" ]] || die "$v is not set (./dev test sets it; see the top of $0)"
done

CHROMIUM="${HONEY_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM" ]]; then
  # Debian's own build: nothing is downloaded outside the package manager.
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || die "apt-get install chromium failed"
  else
    die "no Chromium at $CHROMIUM (Debian/Ubuntu: apt-get install chromium; or set HONEY_CHROMIUM)"
  fi
fi
command -v node >/dev/null 2>&1 || die "node is not installed (Debian/Ubuntu: apt-get install nodejs npm)"
command -v curl >/dev/null 2>&1 || die "curl is not installed (Debian/Ubuntu: apt-get install curl)"

say "installing the test's npm packages (npm ci)"
(cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)

BIN="$ROOT/target/release/honey"
[[ -x "$BIN" ]] || die "$BIN is missing: run ./dev build first"
grep -Eo 'target/wasm32-wasip2/release/[a-z_-]+\.wasm' spin.toml | sort -u | while read -r wasm; do
  [[ -f "$wasm" ]] || die "$wasm is missing: run ./dev build first"
done

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
# Below the kernel's ephemeral range: a port inside it may be taken by any outgoing connection
# before the app binds it. (The QR codes need the public URL, so the port is chosen up front.)
low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
(( low > 10001 )) || low=32768
PORT=""
for _ in $(seq 1 50); do
  p=$(( (RANDOM % (low - 10000)) + 10000 ))
  tcp_open 127.0.0.1 "$p" || { PORT="$p"; break; }
done
[[ -n "$PORT" ]] || die "no free TCP port found"

BASE="http://127.0.0.1:$PORT"
TOKEN="$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PREFIX="${HONEY_TEST_REDIS_PREFIX}browser:$$:"
mkdir -p artifacts/browser artifacts/screenshots
LOG="$ROOT/artifacts/browser/app.log"

APP_PID=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$APP_PID" ]]; then
    kill "$APP_PID" 2>/dev/null || true
    wait "$APP_PID" 2>/dev/null || true
  fi
  # The counters this run's prefix left in Redis (a shared Redis stays tidy).
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -u "$HONEY_TEST_REDIS_URL" --scan --pattern "${PREFIX}*" 2>/dev/null \
      | xargs -r redis-cli -u "$HONEY_TEST_REDIS_URL" DEL >/dev/null 2>&1 || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting the app on $BASE (log: artifacts/browser/app.log)"
SPIN_VARIABLE_DB_URL="$HONEY_TEST_DATABASE_URL" \
SPIN_VARIABLE_DB_HOST="$HONEY_TEST_DB_HOST" \
SPIN_VARIABLE_REDIS_URL="$HONEY_TEST_REDIS_URL" \
SPIN_VARIABLE_REDIS_HOST="$HONEY_TEST_REDIS_HOST" \
SPIN_VARIABLE_REDIS_PREFIX="$PREFIX" \
SPIN_VARIABLE_ADMIN_TOKEN="$TOKEN" \
SPIN_VARIABLE_PUBLIC_URL="$BASE" \
  "$BIN" up -f spin.toml --listen "127.0.0.1:$PORT" --runtime-config-file runtime-config.toml \
  >"$LOG" 2>&1 &
APP_PID=$!

ready=""
for _ in $(seq 1 240); do
  kill -0 "$APP_PID" 2>/dev/null || { tail -n 30 "$LOG" >&2; die "the app exited during start-up"; }
  if curl -fsS -m 2 -o /dev/null "$BASE/health" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.25
done
[[ -n "$ready" ]] || { tail -n 30 "$LOG" >&2; die "the app did not answer /health within 60 s"; }

say "running the browser tests"
HONEY_BASE_URL="$BASE" \
HONEY_ADMIN_TOKEN="$TOKEN" \
HONEY_CHROMIUM="$CHROMIUM" \
HONEY_SCREENSHOTS="$ROOT/artifacts/screenshots" \
  node --test --test-concurrency=1 --test-reporter=spec "$HERE"/*.test.js
