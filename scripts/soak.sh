#!/usr/bin/env bash
# Soak (issue 9 item 5): mixed traffic through the real gateway for a while, sampling the
# gateway's resident memory (RSS) and open file descriptors.
#
# Traffic (one wrk run, a Lua script cycling through the shapes): benign GETs with arguments
# and cookies, benign JSON POSTs, attacks in the query, the body and a header (WAF 403), and a
# route with a tight per-IP limit (429). The gateway runs the WAF at paranoia 1, the guard with
# per-IP/route limits, and analytics to rotating NDJSON files (no database needed).
#
# usage: scripts/soak.sh [--duration SECS] [--warmup SECS] [--interval SECS] [--write] [--no-build]
#   --duration  total seconds of traffic (default 600)
#   --warmup    seconds excluded from the growth figure (default 60)
#   --interval  seconds between samples (default 10)
#   --write     replace the section between <!-- soak:begin --> and <!-- soak:end --> of
#               docs/RELIABILITY.md with the result
# Pass mark: RSS growth after warm-up < 5% (exit 1 otherwise), no 5xx from the gateway.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

DURATION=600
WARMUP=60
INTERVAL=10
write=0
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --interval) INTERVAL=$2; shift ;;
    --write) write=1 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$WARMUP" -ge "$DURATION" ]; then
  echo "soak.sh: --warmup must be shorter than --duration" >&2
  exit 2
fi
command -v wrk >/dev/null || { echo "soak.sh: wrk is required (apt-get install wrk)" >&2; exit 1; }

target_dir=${CARGO_TARGET_DIR:-$root/target}
if [ "$build" = 1 ]; then
  cargo build --release -j2 --bin palisade
fi
bin=$target_dir/release/palisade
[ -x "$bin" ] || { echo "soak.sh: $bin not found (build it or drop --no-build)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port=$(free_port)
gw_port=$(free_port)
admin_port=$(free_port)

"$bin" demo-upstream --listen "127.0.0.1:$up_port" >/dev/null 2>&1 &
pids+=($!)

cat >"$work/soak.yaml" <<EOF
listeners:
  - address: 127.0.0.1:$gw_port
admin:
  address: 127.0.0.1:$admin_port
  token: soak-token
upstreams:
  demo:
    targets:
      - address: 127.0.0.1:$up_port
routes:
  - name: limited
    path: /limited/*
    upstream: demo
    rate_limit: {per_second: 5, burst: 5}
  - name: all
    path: /*
    upstream: demo
waf:
  rules_dir: $root/rules
  defaults: {mode: block, paranoia: 1, threshold: 5}
guard:
  throttle:
    per_ip: {per_second: 1000000, burst: 1000000}
analytics:
  sink:
    ndjson: {dir: $work/events}
EOF
if ! "$bin" check "$work/soak.yaml" >/dev/null; then
  "$bin" check "$work/soak.yaml" || true
  echo "soak.sh: the generated config does not validate" >&2
  exit 1
fi
"$bin" run --config "$work/soak.yaml" >"$work/gateway.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null || { cat "$work/gateway.log"; exit 1; }

cat >"$work/mix.lua" <<'EOF'
local n = 0
local json = '{"user":{"name":"Sean O\'Brien","bio":"I like SQL tables and <b>bold</b> prose"},"items":[1,2,3],"note":"select the blue one"}'
local attack_json = '{"q":"1\' UNION SELECT password FROM users--"}'
request = function()
  n = n + 1
  local k = n % 10
  if k <= 3 then
    return wrk.format("GET", "/echo/search?q=running+shoes&page=" .. n % 50 .. "&sort=price&brand=Acme&size=42&color=black&min=10&max=90&lang=en&ref=home",
      {["Cookie"] = "session=3f9a1c0e7b2d4a6f; theme=dark; cart=items%3A3"})
  elseif k <= 5 then
    return wrk.format("POST", "/echo/orders", {["Content-Type"] = "application/json"}, json)
  elseif k == 6 then
    return wrk.format("GET", "/echo/search?q=%27%20or%201%3D1--")
  elseif k == 7 then
    return wrk.format("POST", "/echo/orders", {["Content-Type"] = "application/json"}, attack_json)
  elseif k == 8 then
    return wrk.format("GET", "/echo/x", {["User-Agent"] = "sqlmap/1.7"})
  else
    return wrk.format("GET", "/limited/x")
  end
end
-- response() runs in each thread's Lua state and done() in the main one: collect the threads
-- in setup() and read their counters back in done().
local threads = {}
setup = function(thread) table.insert(threads, thread) end
statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for s, c in pairs(t:get("statuses")) do total[s] = (total[s] or 0) + c end
  end
  local f = io.open(os.getenv("SOAK_STATUS_FILE"), "w")
  for s, c in pairs(total) do f:write(s .. " " .. c .. "\n") end
  f:write("errors " .. (summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout) .. "\n")
  f:close()
end
EOF

sample() {
  local rss fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$gw_pid/status")
  fds=$(find "/proc/$gw_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  echo "$1 $rss $fds"
}

echo "soak: ${DURATION}s of mixed traffic (warm-up ${WARMUP}s), sampling every ${INTERVAL}s" >&2
: >"$work/samples"
sample 0 >>"$work/samples"
SOAK_STATUS_FILE=$work/statuses wrk -t1 -c16 -d"${DURATION}s" -s "$work/mix.lua" \
  "http://127.0.0.1:$gw_port" >"$work/wrk.txt" 2>&1 &
wrk_pid=$!
t=0
while kill -0 "$wrk_pid" 2>/dev/null; do
  sleep "$INTERVAL"
  t=$((t + INTERVAL))
  kill -0 "$gw_pid" 2>/dev/null || { echo "soak.sh: the gateway died" >&2; cat "$work/gateway.log" >&2; exit 1; }
  sample "$t" >>"$work/samples"
done
wait "$wrk_pid" || true

python3 - "$work" "$WARMUP" "$DURATION" "$write" "$root/docs/RELIABILITY.md" <<'EOF'
import datetime, os, subprocess, sys
work, warmup, duration, write, doc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
samples = [tuple(map(int, l.split())) for l in open(os.path.join(work, "samples")) if l.strip()]
statuses = {}
errors = 0
for l in open(os.path.join(work, "statuses")):
    s, c = l.split()
    if s == "errors":
        errors = int(c)
    else:
        statuses[int(s)] = int(c)
if not statuses:
    print(open(os.path.join(work, "wrk.txt")).read())
    sys.exit("soak.sh: wrk reported no responses")
total = sum(statuses.values())
after = [s for s in samples if s[0] >= warmup]
base = after[0][1]
peak = max(s[1] for s in after)
end = after[-1][1]
growth = (end - base) / base * 100
fds = [s[2] for s in samples]
five = sum(c for s, c in statuses.items() if s >= 500)
rps = total / duration
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
load = open("/proc/loadavg").read().split()[:3]
lines = [
    "| figure | value |",
    "|---|---:|",
    f"| duration / warm-up | {duration} s / {warmup} s |",
    f"| requests (≈ req/s) | {total:,} ({rps:,.0f}) |",
    "| status counts | " + ", ".join(f"{s}: {c:,}" for s, c in sorted(statuses.items())) + " |",
    f"| RSS at start | {samples[0][1] / 1024:.1f} MiB |",
    f"| RSS after warm-up → end (peak) | {base / 1024:.1f} → {end / 1024:.1f} MiB ({peak / 1024:.1f}) |",
    f"| **RSS growth after warm-up** | **{growth:+.1f}%** (pass mark < 5%) |",
    f"| open fds min / max / end | {min(fds)} / {max(fds)} / {fds[-1]} |",
    f"| gateway 5xx / socket errors | {five} / {errors} |",
]
series = " ".join(f"{t}s:{r // 1024}M/{f}fd" for t, r, f in samples)
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
text = "\n".join(lines) + f"\n\nSamples (time: RSS / fds): {series}\n\n{stamp}, commit {commit}, load average {' '.join(load)}; `scripts/soak.sh --duration {duration} --warmup {warmup}`.\n"
print(text)
if write:
    begin, endm = "<!-- soak:begin -->", "<!-- soak:end -->"
    body = open(doc).read()
    section = f"{begin}\n## 6. Soak (`scripts/soak.sh`)\n\n{text}{endm}"
    if begin in body and endm in body:
        body = body[: body.index(begin)] + section + body[body.index(endm) + len(endm):]
    else:
        body = body.rstrip("\n") + "\n\n" + section + "\n"
    open(doc, "w").write(body)
sys.exit(0 if growth < 5 and five == 0 else 1)
EOF
