#!/usr/bin/env bash
# Issue 7 benchmark: requests/s of one gateway with the Redis state backend against the same
# gateway with the local backend, same config otherwise, same wrk load, same run.
#
# Both configs: guard (per-IP limit and auto-ban, limits high enough never to trigger) and a
# route requiring an API key whose plan has a rate and a monthly quota high enough never to
# run out; wrk sends the key. So each request pays the guard check and the key + quota check:
#   local  — in-process GCRA and an atomic quota counter;
#   redis  — GCRA admitted locally (synced every 100 ms) and the quota counted in Redis with
#            one atomic script round trip per request.
# One proxy worker each; proxy on CPU $PROXY_CPU; wrk and redis-server on CPU $LOAD_CPU (Redis
# would be another machine in production: it is not charged to the proxy's CPU).
#
# usage: scripts/redis_bench.sh [--write] [--no-build] [--duration 10s] [--connections 32]
#                               [--rounds 3]
#   --write   replace the section between <!-- redis:begin --> and <!-- redis:end --> in
#             docs/BENCHMARKS.md
# Environment: CARGO_TARGET_DIR (where the release binary is), UPSTREAM (default
# 127.0.0.1:18080 if it answers, else a `palisade demo-upstream` on :18090), WARMUP (2s),
# LOAD_CPU (1), PROXY_CPU (0), REDIS_PORT (16399), BASE_PORT (18480: proxies and admins above it).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2s}
LOAD_CPU=${LOAD_CPU:-1}
PROXY_CPU=${PROXY_CPU:-0}
REDIS_PORT=${REDIS_PORT:-16399}
BASE_PORT=${BASE_PORT:-18480}
write=0
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --write) write=1 ;;
    --no-build) build=0 ;;
    --duration) DURATION=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "redis_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

need() { command -v "$1" >/dev/null 2>&1 || { echo "redis_bench.sh: '$1' is required ($2)" >&2; exit 1; }; }
need wrk "apt-get install wrk"
need curl "apt-get install curl"
need redis-server "apt-get install redis-server"
need python3 "apt-get install python3"
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  pin_load=(taskset -c "$LOAD_CPU")
  pin_proxy=(taskset -c "$PROXY_CPU")
  pinned="proxy on CPU $PROXY_CPU, wrk and redis-server on CPU $LOAD_CPU"
else
  pin_load=()
  pin_proxy=()
  pinned="not pinned"
fi

target=${CARGO_TARGET_DIR:-$root/target}
if [ "$build" = 1 ]; then
  echo "== cargo build --release --bin palisade"
  cargo build --release --bin palisade
fi
bin="$target/release/palisade"
[ -x "$bin" ] || { echo "redis_bench.sh: $bin is missing (build it or set CARGO_TARGET_DIR)" >&2; exit 1; }

work=$(mktemp -d /tmp/palisade-redis-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_http() { # url [tries] [header]
  for _ in $(seq 1 "${2:-100}"); do
    if [ -n "${3:-}" ]; then
      curl -fs -m 1 -o /dev/null -H "$3" "$1" && return 0
    else
      curl -fs -m 1 -o /dev/null "$1" && return 0
    fi
    sleep 0.1
  done
  return 1
}

UPSTREAM=${UPSTREAM:-}
if [ -z "$UPSTREAM" ]; then
  if curl -fs -m 1 -o /dev/null http://127.0.0.1:18080/; then
    UPSTREAM=127.0.0.1:18080
  else
    UPSTREAM=127.0.0.1:18090
    "${pin_load[@]}" "$bin" demo-upstream --listen "$UPSTREAM" >"$work/upstream.log" 2>&1 &
    pids+=($!)
    wait_http "http://$UPSTREAM/" 50 || { echo "redis_bench.sh: demo upstream did not start" >&2; exit 1; }
  fi
fi

echo "== redis-server on :$REDIS_PORT"
"${pin_load[@]}" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

write_config() { # name port admin state-section
  cat >"$work/$1.yaml" <<EOF
listeners:
  - address: 127.0.0.1:$2
admin:
  address: 127.0.0.1:$3
server:
  threads: 1
upstreams:
  bench:
    targets:
      - address: $UPSTREAM
guard:
  throttle:
    per_ip: {per_second: 1000000, burst: 1000000}
  autoban:
    threshold: 1000
    window_secs: 60
    ban_secs: 60
api_keys:
  key_file: keys.json
  plans:
    - name: bench
      rate: 1000000
      burst: 1000000
      quota: {limit: 1000000000, period: month}
routes:
  - name: api
    path: /*
    upstream: bench
    api_key: {}
$4
EOF
}
local_port=$((BASE_PORT + 1)); local_admin=$((BASE_PORT + 2))
redis_port=$((BASE_PORT + 3)); redis_admin=$((BASE_PORT + 4))
write_config local "$local_port" "$local_admin" ""
write_config redis "$redis_port" "$redis_admin" "state:
  backend: redis
  url: redis://127.0.0.1:$REDIS_PORT/0
  prefix: bench-$$
  sync_interval_ms: 100"
key=$("$bin" keys --config "$work/local.yaml" create --name bench --owner bench --plan bench | sed -n 's/^key: //p')
[ -n "$key" ] || { echo "redis_bench.sh: could not create a key" >&2; exit 1; }

for sys in local redis; do
  cfg="$work/$sys.yaml"
  "$bin" check "$cfg" >/dev/null
  port_var=${sys}_port
  "${pin_proxy[@]}" "$bin" run --config "$cfg" >"$work/$sys.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:${!port_var}/" 100 "x-api-key: $key" || {
    echo "redis_bench.sh: the $sys gateway does not answer ($(tail -n 3 "$work/$sys.log"))" >&2
    exit 1
  }
done

cat >"$work/key.lua" <<EOF
wrk.headers["x-api-key"] = "$key"
EOF
loadavg=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
echo "== load: wrk -t1 -c$CONNECTIONS -d$DURATION, $ROUNDS round(s), $pinned"
for sys in local redis; do
  port_var=${sys}_port
  "${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" -s "$work/key.lua" "http://127.0.0.1:${!port_var}/" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do
  for sys in local redis; do
    port_var=${sys}_port
    out="$work/wrk.$sys.$round"
    "${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/key.lua" \
      "http://127.0.0.1:${!port_var}/" >"$out"
    echo "   round $round $sys: $(grep 'Requests/sec' "$out" | tr -s ' ')"
  done
done
# Every request was counted in Redis exactly once (the quota counter).
counted=$(redis-cli -p "$REDIS_PORT" --scan --pattern "bench-$$:quota:*" | grep -v ':nonce:' | while read -r k; do redis-cli -p "$REDIS_PORT" GET "$k"; done | paste -sd+ | bc 2>/dev/null || echo "?")
errors=$(curl -fs "http://127.0.0.1:$redis_admin/metrics" | sed -n 's/^palisade_state_errors_total //p')

table=$(python3 - "$work" "$ROUNDS" <<'PY'
import re, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def ms(t):
    m = re.match(r"([\d.]+)(us|ms|s)$", t or "")
    if not m:
        return None
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
def parse(p):
    s = open(p).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", s).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", s, re.M))
    err = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", s)
    if m:
        err += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s)
    if m:
        err += sum(int(x) for x in m.groups())
    return {"rps": rps, "p50": ms(lat.get("50")), "p99": ms(lat.get("99")), "errors": err}
rows = {}
for sys_ in ("local", "redis"):
    runs = sorted((parse(f"{work}/wrk.{sys_}.{r}") for r in range(1, rounds + 1)), key=lambda x: x["rps"])
    rows[sys_] = runs[len(runs) // 2]
base = rows["local"]["rps"]
f = lambda v: "n/a" if v is None else f"{v:.2f} ms"
print("| state backend | requests/s | p50 | p99 | vs local | errors |")
print("|---|---:|---:|---:|---:|---:|")
for name, label in (("local", "local (in process)"), ("redis", "redis (shared)")):
    r = rows[name]
    print(f"| {label} | {r['rps']:,.0f} | {f(r['p50'])} | {f(r['p99'])} | {r['rps'] / base:.2f} | {r['errors']} |")
PY
)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
meta="$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(nproc) CPUs; \`wrk -t1 -c$CONNECTIONS -d$DURATION --latency\` with an API key, after a $WARMUP warm-up, $ROUNDS round(s) interleaved (median shown); $pinned; one proxy worker each; upstream $UPSTREAM; requests counted in Redis quota counters: $counted; Redis errors: ${errors:-?}; load average before the runs: $loadavg (the machine is shared: compare the ratio, not absolute figures)."
echo
echo "$table"
echo
echo "$meta"

if [ "$write" = 1 ]; then
  bench=docs/BENCHMARKS.md
  section=$(
    echo "## Redis state backend vs local (issue 7)"
    echo
    echo "Produced by \`scripts/redis_bench.sh --write\`. Target: the Redis backend ≥ 0.8 of the local"
    echo "backend's requests/s. Each request passes the guard (per-IP limit, bans) and an API key with"
    echo "a rate and a monthly quota; with Redis the quota costs one atomic script round trip."
    echo
    echo "$table"
    echo
    echo "$meta"
  )
  python3 - "$bench" "$section" <<'PY'
import sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
begin, end = "<!-- redis:begin -->", "<!-- redis:end -->"
block = f"{begin}\n{section}\n{end}"
if begin in text and end in text:
    pre, rest = text.split(begin, 1)
    _, post = rest.split(end, 1)
    text = pre + block + post
else:
    marker = "## Component benchmarks"
    text = text.replace(marker, block + "\n\n" + marker, 1) if marker in text else text.rstrip() + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
  echo "== wrote $bench"
fi
