#!/usr/bin/env bash
# Quickstart: on a fresh Debian machine, install what is missing, start ClickHouse, build
# Palisade, and run the gateway in front of the demo API:
#   demo upstream  http://127.0.0.1:8081   (palisade demo-upstream)
#   gateway        http://127.0.0.1:8080   (palisade run --config deploy/palisade.example.yaml)
#   admin          http://127.0.0.1:9901   (/healthz, /metrics, /config)
# Stays in the foreground; Ctrl-C stops both.
#
# usage: scripts/demo.sh [--no-build] [--no-clickhouse]
# Environment: PALISADE_CONFIG (default deploy/palisade.example.yaml), CH_DB (database the
# example config writes to, default palisade); with another config, DEMO_UPSTREAM_ADDR,
# DEMO_GATEWAY_URL and DEMO_ADMIN_URL give its addresses.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CONFIG=${PALISADE_CONFIG:-deploy/palisade.example.yaml}
CH_DB=${CH_DB:-palisade}
# These must match the config's upstream target, listener and admin address.
UPSTREAM_ADDR=${DEMO_UPSTREAM_ADDR:-127.0.0.1:8081}
GATEWAY=${DEMO_GATEWAY_URL:-http://127.0.0.1:8080}
ADMIN=${DEMO_ADMIN_URL:-http://127.0.0.1:9901}
build=1
clickhouse=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --no-clickhouse) clickhouse=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Root runs apt-get directly; others through sudo when it exists.
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  sudo=(false)
fi

# Debian packages, installed only when the command they provide is missing.
missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v make >/dev/null 2>&1 || missing+=(build-essential)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v perl >/dev/null 2>&1 || missing+=(perl)
if [ "$clickhouse" = 1 ]; then
  command -v clickhouse-server >/dev/null 2>&1 || missing+=(clickhouse-server)
  command -v clickhouse-client >/dev/null 2>&1 || missing+=(clickhouse-client)
fi
if [ ${#missing[@]} -gt 0 ]; then
  # shellcheck disable=SC2207
  missing=($(printf '%s\n' "${missing[@]}" | sort -u))
  say "installing with apt-get: ${missing[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "demo.sh: apt-get not found; install ${missing[*]} by hand" >&2
    exit 1
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  say "installing the Rust toolchain with rustup (https://rustup.rs)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  export PATH="$HOME/.cargo/bin:$PATH"
fi

if [ "$clickhouse" = 1 ]; then
  say "starting ClickHouse (scripts/start-clickhouse.sh)"
  if [ "${sudo[0]:-}" = false ]; then
    "$root/scripts/start-clickhouse.sh"
  else
    "${sudo[@]}" "$root/scripts/start-clickhouse.sh"
  fi
fi

if [ "$build" = 1 ]; then
  say "building palisade (cargo build --release)"
  cargo build --release --bin palisade
fi
bin="$root/target/release/palisade"
[ -x "$bin" ] || { echo "demo.sh: $bin missing (run without --no-build)" >&2; exit 1; }
[ -f "$CONFIG" ] || { echo "demo.sh: config $CONFIG not found" >&2; exit 1; }

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  say "stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 0' INT TERM

# wait_http URL NAME: until URL answers 2xx, or fail after 15 s.
wait_http() {
  for _ in $(seq 1 75); do
    curl -fs -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "demo.sh: $2 did not come up at $1" >&2
  return 1
}

say "starting the demo upstream on http://$UPSTREAM_ADDR"
"$bin" demo-upstream --listen "$UPSTREAM_ADDR" --name demo &
pids+=($!)
wait_http "http://$UPSTREAM_ADDR/health" "the demo upstream"

say "checking and starting the gateway ($CONFIG)"
"$bin" check "$CONFIG"
"$bin" run --config "$CONFIG" &
pids+=($!)
wait_http "$ADMIN/healthz" "the gateway's admin listener"

cat <<EOF

$(say "Palisade is running")
  gateway  $GATEWAY   ->   demo API http://$UPSTREAM_ADDR
  admin    $ADMIN

A normal request (200, answered by the demo API):
  curl -i $GATEWAY/api/items
  curl -i -X POST $GATEWAY/api/items -H 'content-type: application/json' -d '{"name":"O'\\''Brien"}'

An attack (403 with a JSON body giving the request id and reason; the upstream never sees it):
  curl -i "$GATEWAY/api/items?id=1%27%20OR%201%3D1--"
  curl -i $GATEWAY/echo/x -H 'content-type: application/json' -d '{"q":"<script>alert(1)</script>"}'

What the demo API actually received (its own record):
  curl -s 'http://$UPSTREAM_ADDR/__requests?path=/api&limit=5' | python3 -m json.tool

Metrics and effective config:
  curl -s $ADMIN/metrics | grep '^palisade_' | head -20
  curl -s $ADMIN/config

Analytics in ClickHouse (events arrive within a few seconds):
  clickhouse-client --query "SELECT ts, method, path, status, verdict, reason FROM $CH_DB.events ORDER BY ts DESC LIMIT 20"
  clickhouse-client --query "SELECT verdict, count() FROM $CH_DB.events GROUP BY verdict"

Ctrl-C stops the gateway and the demo upstream.
EOF

# Foreground until Ctrl-C or until either process exits.
while :; do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo.sh: process $pid exited" >&2
      exit 1
    fi
  done
  # `wait` returns at once on Ctrl-C, so the trap runs before the check above sees the
  # children (which got the same SIGINT) gone.
  sleep 1 &
  wait $! || true
done
