#!/usr/bin/env bash
# Load-independent cost of the gateway: instructions per request under callgrind, for
#   - bare       the bare Pingora proxy (examples/bare_pingora.rs), the ceiling
#   - bare-timeouts  the same with Palisade's default upstream timeouts (`--timeouts`)
#   - off        `palisade run` with every stage off (the load.sh config)
#   - ndjson     stages off, analytics to rotating NDJSON files
#   - clickhouse stages off, analytics to the local ClickHouse (bench.sh's `analytics` system)
#   - full       every protection on, as bench.sh's `full1`: WAF PL1 (block, threshold 5), IP deny
#                list, per-IP/route/global limits and a usage plan far above the load, an API key
#                required (`x-api-key`), analytics to the local ClickHouse with spool and security log
#   - full2      the same at paranoia 2
# each proxying to its own nginx upstream (answering 200 "ok"), driven by the same sequential
# keep-alive client: WARMUP requests, then the counters are zeroed (`callgrind_control -z`),
# REQUESTS requests, then dumped (`callgrind_control -d`). Every thread of the process counts
# (the Pingora worker, the side runtime with the analytics writer, the upstream pool).
# Wall-clock-driven work (timers) is measured apart: an idle window of the same length after
# the requests, reported as `idle Ir/s`; `Ir/request` is the request window's total / REQUESTS.
#
# usage: scripts/profile.sh [--requests 20000] [--warmup 2000] [--systems bare,off,ndjson,clickhouse]
#                           [--shape get|args|post4k|post64k|attack] [--no-build] [--out DIR] [--top 40]
#   --shape     the request every system gets (bench.sh's shapes): `get` (GET /, the default),
#               `args` (10 query arguments and 5 cookies), `post4k` (a 4 KB JSON order),
#               `post64k` (bench.sh's own 64 KiB body, scripts/lib/shapes.sh),
#               `attack` (a UNION SELECT in the query: 403 with full protection)
#   --out DIR   keep the callgrind dumps there (default: a temp dir, removed) and write
#               DIR/<system>.annotate (`callgrind_annotate --inclusive=yes`, top lines)
# Environment: CLICKHOUSE_URL (http://127.0.0.1:8123), UPSTREAM_PORT (28080), BASE_PORT (28300),
# CARGO_TARGET_DIR (target).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=lib/full-protection.sh
. "$root/scripts/lib/full-protection.sh"

REQUESTS=${REQUESTS:-20000}
WARMUP=${WARMUP:-2000}
SYSTEMS=${SYSTEMS:-bare,off,ndjson,clickhouse}
CLICKHOUSE_URL=${CLICKHOUSE_URL:-http://127.0.0.1:8123}
UPSTREAM_PORT=${UPSTREAM_PORT:-28080}
BASE_PORT=${BASE_PORT:-28300}
TOP=${TOP:-40}
SHAPE=${SHAPE:-get}
build=1
out=""

while [ $# -gt 0 ]; do
  case "$1" in
    --requests) REQUESTS=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --systems) SYSTEMS=$2; shift ;;
    --no-build) build=0 ;;
    --out) out=$2; shift ;;
    --top) TOP=$2; shift ;;
    --shape) SHAPE=$2; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "profile.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

need() { command -v "$1" >/dev/null 2>&1 || { echo "profile.sh: '$1' is required ($2)" >&2; exit 1; }; }
need valgrind "apt-get install valgrind"
need callgrind_control "apt-get install valgrind"
need nginx "apt-get install nginx"
need curl "apt-get install curl"
need python3 "apt-get install python3"

target=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d /tmp/palisade-profile.XXXXXX)
# shellcheck source=lib/shapes.sh
. "$root/scripts/lib/shapes.sh"
[ "$SHAPE" = post64k ] && write_bodies "$work"
export PROFILE_WORK=$work
[ -n "$out" ] && mkdir -p "$out"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -f "$work/upstream.pid" ] && kill "$(cat "$work/upstream.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$build" = 1 ]; then
  echo "== cargo build --release (bare_pingora example, palisade binary)"
  cargo build --release --example bare_pingora --bin palisade
fi
bare_bin="$target/release/examples/bare_pingora"
palisade_bin="$target/release/palisade"

# The upstream: a private nginx, one worker, 200 "ok".
cat >"$work/upstream.conf" <<EOF
worker_processes 1;
pid $work/upstream.pid;
error_log $work/upstream-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/up-body;
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    location / { return 200 "ok\n"; }
  }
}
EOF
nginx -c "$work/upstream.conf" -e "$work/upstream-error.log" 2>/dev/null || nginx -c "$work/upstream.conf"

wait_http() {
  local url=$1
  for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}
wait_http "http://127.0.0.1:$UPSTREAM_PORT/" || { echo "profile.sh: upstream does not answer" >&2; exit 1; }

# wait_listening URL: until the proxy answers at all (`full` answers 401 without an API key).
wait_listening() {
  local code
  for _ in $(seq 1 600); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null || true)
    [ -n "$code" ] && [ "$code" != 000 ] && return 0
    sleep 0.2
  done
  return 1
}

# client PORT N [KEY]: N sequential requests of $SHAPE on one keep-alive connection (with the
# API key when given); fails on any status but 200.
client() {
  python3 - "$1" "$2" "${3:-}" "$SHAPE" <<'PY'
import http.client, json, os, sys
port, n, key, shape = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
headers = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
           "Accept": "application/json"}
if key:
    headers["x-api-key"] = key
method, path, body = "GET", "/", None
if shape == "args":
    path = ("/search?q=laptop+bag&category=electronics&brand=acme&min_price=100&max_price=2000"
            "&sort=price_asc&page=2&per_page=50&color=silver&in_stock=true")
    headers["Cookie"] = ("session=3f9a1c77e2b54d0c9e8f1a2b3c4d5e6f; theme=dark; lang=en-US; "
                         "cart_id=98765; consent=analytics")
elif shape == "post4k":
    words = "laptop bag silver charger cable keyboard mouse monitor stand desk lamp".split()
    items, i = [], 0
    while len(json.dumps(items)) < 3800:
        items.append({"id": 100000 + i, "sku": f"SKU-{i % 997:04d}", "quantity": i % 9 + 1,
                      "name": f"{words[i % len(words)].title()} {words[(i * 3) % len(words)]} item {i}",
                      "note": f"Please wrap the {words[(i * 5) % len(words)]} before noon"})
        i += 1
    method, path = "POST", "/api/orders"
    body = json.dumps({"customer": {"name": "Maria Lopez", "email": "maria.lopez@example.com"},
                       "items": items}, separators=(",", ":")).encode()
    headers["Content-Type"] = "application/json"
elif shape == "post64k":
    # bench.sh's own 64 KiB body (scripts/lib/shapes.sh write_bodies)
    method, path = "POST", "/api/orders"
    body = open(os.environ["PROFILE_WORK"] + "/post64k.json", "rb").read()
    headers["Content-Type"] = "application/json"
elif shape == "attack":
    # bench.sh's attack: blocked (403) by the WAF, passed (200) with the stages off
    path = "/search?q=1%27%20UNION%20SELECT%20username%2C%20password%20FROM%20users--%20&page=1"
elif shape != "get":
    sys.exit(f"unknown shape {shape}")
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for i in range(n):
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200 and not (shape == "attack" and r.status == 403):
        sys.exit(f"request {i}: status {r.status}")
PY
}

# The Ir total of the last dump in a callgrind output file.
total_ir() { awk '/^(summary|totals):/ {v=$2} END {print v+0}' "$1"; }

config() { # config SYSTEM PORT ADMIN_PORT DIR
  cat <<EOF
listeners:
  - address: 127.0.0.1:$2
admin:
  address: 127.0.0.1:$3
server:
  threads: 1
upstreams:
  bench:
    targets:
      - address: 127.0.0.1:$UPSTREAM_PORT
routes:
  - name: all
    path: /*
    upstream: bench
EOF
  case "$1" in
    full|full2)
      local pl=1
      [ "$1" = full2 ] && pl=2
      full_protection_yaml "$pl" "$root/rules" "$4/keys.json"
      cat <<EOF
analytics:
  sink:
    clickhouse: {url: "$CLICKHOUSE_URL", database: palisade_profile}
  spool: {dir: $4/spool}
  security_log: {path: $4/security.log}
EOF
      ;;
    ndjson) printf 'analytics:\n  sink:\n    ndjson: {dir: %s/events}\n' "$4" ;;
    clickhouse)
      printf 'analytics:\n  sink:\n    clickhouse: {url: "%s", database: palisade_profile}\n  spool: {dir: %s/spool}\n' \
        "$CLICKHOUSE_URL" "$4" ;;
  esac
}

results=()
i=0
IFS=, read -r -a systems <<<"$SYSTEMS"
for sys in "${systems[@]}"; do
  i=$((i + 1))
  port=$((BASE_PORT + 2 * i))
  d="$work/$sys"
  mkdir -p "$d"
  cg="$d/callgrind.out"
  key=""
  case "$sys" in
    bare) cmd=("$bare_bin" --listen "127.0.0.1:$port" --upstream "127.0.0.1:$UPSTREAM_PORT" --threads 1) ;;
    bare-timeouts) cmd=("$bare_bin" --listen "127.0.0.1:$port" --upstream "127.0.0.1:$UPSTREAM_PORT" --threads 1 --timeouts) ;;
    off|ndjson|clickhouse|full|full2)
      config "$sys" "$port" $((port + 1)) "$d" >"$d/palisade.yaml"
      "$palisade_bin" check "$d/palisade.yaml" >/dev/null
      case "$sys" in full|full2)
        key=$("$palisade_bin" keys --config "$d/palisade.yaml" create --name profile \
          --owner profile --plan bench 2>/dev/null | sed -n 's/^key: //p')
        [ -n "$key" ] || { echo "profile.sh: palisade keys create printed no key" >&2; exit 1; } ;;
      esac
      cmd=("$palisade_bin" run --config "$d/palisade.yaml") ;;
    *) echo "profile.sh: unknown system '$sys'" >&2; exit 2 ;;
  esac
  echo "== $sys: starting under callgrind on :$port"
  valgrind --tool=callgrind --callgrind-out-file="$cg" "${cmd[@]}" >"$d/log" 2>&1 </dev/null &
  pid=$!
  pids+=("$pid")
  wait_listening "http://127.0.0.1:$port/" || { echo "profile.sh: $sys did not come up" >&2; tail "$d/log" >&2; exit 1; }
  client "$port" "$WARMUP" "$key"
  callgrind_control -z "$pid" >/dev/null 2>&1
  t0=$(date +%s.%N)
  client "$port" "$REQUESTS" "$key"
  t1=$(date +%s.%N)
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  req_dump=$(ls -t "$cg".* 2>/dev/null | head -n1)
  # Idle window of the same length: the cost of timers alone.
  elapsed=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
  callgrind_control -z "$pid" >/dev/null 2>&1
  sleep "$elapsed"
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  idle_dump=$(ls -t "$cg".* 2>/dev/null | head -n1)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  ir=$(total_ir "$req_dump")
  idle=$(total_ir "$idle_dump")
  row=$(python3 -c "print(f'| $sys | {$ir / $REQUESTS:,.0f} | {($ir - $idle) / $REQUESTS:,.0f} | {$idle / $elapsed:,.0f} | $elapsed |')")
  echo "   $row"
  results+=("$row")
  if [ -n "$out" ]; then
    cp "$req_dump" "$out/$sys.callgrind"
    callgrind_annotate --inclusive=yes "$req_dump" 2>/dev/null | head -n $((TOP + 30)) >"$out/$sys.annotate" || true
    callgrind_annotate "$req_dump" 2>/dev/null | head -n $((TOP + 30)) >"$out/$sys.self" || true
  fi
done

echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown): \`scripts/profile.sh --requests $REQUESTS --warmup $WARMUP --shape $SHAPE\`, one keep-alive connection"
echo
echo "| system | Ir/request | Ir/request minus idle timers | idle Ir/s | window s |"
echo "|---|---:|---:|---:|---:|"
printf '%s\n' "${results[@]}"
