#!/usr/bin/env bash
# First load figure (issue 2 item 11): requests/s and latency of
#   - bare Pingora      (examples/bare_pingora.rs: the ceiling we build on)
#   - the same with Palisade's default upstream timeouts (`--timeouts`), for reference
#   - palisade          (`palisade run` with every protection stage off)
#   - nginx             (plain nginx reverse proxy from ../shared/peers/nginx-modsec, port 18181)
# all proxying to the same upstream (nginx answering 200 "ok" on 127.0.0.1:18080), one proxy
# worker each, driven one after the other by the same wrk load in the same run.
# The proxies are pinned to CPU $PROXY_CPU and wrk to CPU $LOAD_CPU (taskset).
#
# usage: scripts/load.sh [--write] [--no-build] [--duration 10s] [--connections 32]
#                        [--threads 1] [--rounds 1]
#   --write     replace the section between <!-- load:begin --> and <!-- load:end -->
#               in docs/BENCHMARKS.md with the table (the file is created when missing)
#   --rounds N  run every system N times, interleaved, and report each system's median run
# Environment: DURATION, CONNECTIONS, WRK_THREADS, ROUNDS, WARMUP (default 2s), LOAD_CPU (1),
# PROXY_CPU (0), BARE_PORT (18282), PALISADE_PORT (18383), PALISADE_ADMIN_PORT (18384),
# PALISADE_BENCH_CONFIG (a config file to use instead of the generated one), URL_PATH (/),
# CARGO_TARGET_DIR (where the binaries are built; default target/), PALISADE_SHARED (../shared).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib/pin.sh
. "$root/scripts/lib/pin.sh"
# shellcheck source=lib/cpu.sh
. "$root/scripts/lib/cpu.sh"
cd "$root"

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-2s}
LOAD_CPU=${LOAD_CPU:-1}
PROXY_CPU=${PROXY_CPU:-0}
BARE_PORT=${BARE_PORT:-18282}
BARE_TIMEOUTS_PORT=${BARE_TIMEOUTS_PORT:-18283}
PALISADE_PORT=${PALISADE_PORT:-18383}
PALISADE_ADMIN_PORT=${PALISADE_ADMIN_PORT:-18384}
URL_PATH=${URL_PATH:-/}
UPSTREAM=127.0.0.1:18080
NGINX_PORT=18181
write=0
build=1

while [ $# -gt 0 ]; do
  case "$1" in
    --write) write=1 ;;
    --no-build) build=0 ;;
    --duration) DURATION=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
    --threads) WRK_THREADS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "load.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

need() { command -v "$1" >/dev/null 2>&1 || { echo "load.sh: '$1' is required ($2)" >&2; exit 1; }; }
need wrk "apt-get install wrk"
need curl "apt-get install curl"
need python3 "apt-get install python3"
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  pin_load=(taskset -c "$LOAD_CPU")
  pin_proxy=(taskset -c "$PROXY_CPU")
  pinned="proxy on CPU $PROXY_CPU, wrk on CPU $LOAD_CPU"
else
  pin_load=()
  pin_proxy=()
  pinned="not pinned (taskset missing or one CPU)"
fi

work=$(mktemp -d /tmp/palisade-load.XXXXXX)
pids=()
repin=()
cleanup() {
  restore_pins
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_http URL [tries]: until the URL answers 200 (0.2 s between tries).
wait_http() {
  local url=$1 tries=${2:-100}
  for _ in $(seq 1 "$tries"); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" = 200 ]; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}

# ../shared beside the repository; from a git worktree, beside the main checkout.
shared=${PALISADE_SHARED:-$root/../shared}
if ! [ -d "$shared" ]; then
  common=$(git -C "$root" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
  [ -n "$common" ] && shared="$(dirname "$common")/../shared"
fi
echo "== peer: nginx upstream :18080 and plain nginx proxy :$NGINX_PORT"
"$shared/peers/nginx-modsec/start.sh" >/dev/null
wait_http "http://$UPSTREAM/" || { echo "load.sh: upstream $UPSTREAM does not answer" >&2; exit 1; }
if [ ${#pin_load[@]} -gt 0 ] && [ -f /tmp/peer-modsec/upstream.pid ]; then
  # Keep the upstream off the proxy's CPU (as bench.sh does), so that each proxy has its core
  # to itself; the upstream is shared, so its CPU list is put back on exit.
  pin_nginx /tmp/peer-modsec/upstream.pid "$LOAD_CPU"
  pinned="$pinned, upstream on CPU $LOAD_CPU"
fi
if [ ${#pin_proxy[@]} -gt 0 ] && [ -f /tmp/peer-modsec/nginx.pid ]; then
  # Pin the proxy nginx (master and its one worker) like the other proxies; put back on exit.
  pin_nginx /tmp/peer-modsec/nginx.pid "$PROXY_CPU"
fi

palisade_ok=1
skip_reason=""
if [ "$build" = 1 ]; then
  echo "== cargo build --release (bare_pingora example, palisade binary)"
  cargo build --release --example bare_pingora
  if ! cargo build --release --bin palisade; then
    palisade_ok=0
    skip_reason="the palisade binary does not build"
  fi
fi
target_dir=${CARGO_TARGET_DIR:-$root/target}
bare_bin="$target_dir/release/examples/bare_pingora"
palisade_bin="$target_dir/release/palisade"
[ -x "$bare_bin" ] || { echo "load.sh: $bare_bin missing (run without --no-build)" >&2; exit 1; }

echo "== start bare Pingora on :$BARE_PORT"
"${pin_proxy[@]}" "$bare_bin" --listen "127.0.0.1:$BARE_PORT" --upstream "$UPSTREAM" \
  --threads 1 --h2c >"$work/bare.log" 2>&1 &
pids+=($!)
echo $! >"$work/pids.$BARE_PORT"
wait_http "http://127.0.0.1:$BARE_PORT$URL_PATH" || {
  echo "load.sh: bare Pingora did not come up:" >&2; cat "$work/bare.log" >&2; exit 1; }
# The same proxy with Palisade's default upstream timeouts (a timer per upstream read and
# write): what a production configuration of bare Pingora costs, shown for reference.
echo "== start bare Pingora with timeouts on :$BARE_TIMEOUTS_PORT"
"${pin_proxy[@]}" "$bare_bin" --listen "127.0.0.1:$BARE_TIMEOUTS_PORT" --upstream "$UPSTREAM" \
  --threads 1 --h2c --timeouts >"$work/bare-timeouts.log" 2>&1 &
pids+=($!)
echo $! >"$work/pids.$BARE_TIMEOUTS_PORT"
wait_http "http://127.0.0.1:$BARE_TIMEOUTS_PORT$URL_PATH" || {
  echo "load.sh: bare Pingora (timeouts) did not come up:" >&2; cat "$work/bare-timeouts.log" >&2; exit 1; }

if [ "$palisade_ok" = 1 ] && ! [ -x "$palisade_bin" ]; then
  palisade_ok=0
  skip_reason="$palisade_bin is missing"
fi
if [ "$palisade_ok" = 1 ]; then
  if [ -n "${PALISADE_BENCH_CONFIG:-}" ]; then
    config=$PALISADE_BENCH_CONFIG
  else
    # Every protection stage off: one route to one upstream, no WAF, no keys, no limits,
    # analytics to the default local sink.
    config="$work/palisade-bench.yaml"
    cat >"$config" <<EOF
listeners:
  - address: 127.0.0.1:$PALISADE_PORT
admin:
  address: 127.0.0.1:$PALISADE_ADMIN_PORT
server:
  threads: 1
upstreams:
  bench:
    targets:
      - address: $UPSTREAM
routes:
  - name: all
    path: /*
    upstream: bench
EOF
  fi
  if ! "$palisade_bin" check "$config" >"$work/check.log" 2>&1; then
    palisade_ok=0
    skip_reason="palisade check rejected the bench config: $(head -n 3 "$work/check.log" | tr '\n' ' ')"
  fi
fi
if [ "$palisade_ok" = 1 ]; then
  echo "== start palisade on :$PALISADE_PORT (all stages off)"
  "${pin_proxy[@]}" "$palisade_bin" run --config "$config" >"$work/palisade.log" 2>&1 &
  pids+=($!)
  echo $! >"$work/pids.$PALISADE_PORT"
  if ! wait_http "http://127.0.0.1:$PALISADE_PORT$URL_PATH" 50; then
    palisade_ok=0
    skip_reason="palisade run did not answer 200 on :$PALISADE_PORT ($(tail -n 2 "$work/palisade.log" | tr '\n' ' '))"
  fi
fi
[ "$palisade_ok" = 1 ] || echo "== skipping palisade: $skip_reason"
wait_http "http://127.0.0.1:$NGINX_PORT$URL_PATH" || { echo "load.sh: nginx proxy :$NGINX_PORT does not answer" >&2; exit 1; }

if [ -f /tmp/peer-modsec/nginx.pid ]; then
  master=$(cat /tmp/peer-modsec/nginx.pid)
  echo "$master $(pgrep -P "$master" | tr '\n' ' ')" >"$work/pids.$NGINX_PORT"
fi
systems=("bare Pingora|$BARE_PORT" "bare Pingora + upstream timeouts|$BARE_TIMEOUTS_PORT")
[ "$palisade_ok" = 1 ] && systems+=("palisade (stages off)|$PALISADE_PORT")
systems+=("nginx proxy|$NGINX_PORT")

loadavg=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
echo "== load: wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS round(s), $pinned"
for sys in "${systems[@]}"; do
  port=${sys##*|}
  # Warm-up: fills the upstream connection pools; not measured.
  "${pin_load[@]}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "http://127.0.0.1:$port$URL_PATH" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do
  for sys in "${systems[@]}"; do
    name=${sys%|*}
    port=${sys##*|}
    out="$work/wrk.$port.$round"
    ppids=()
    [ -f "$work/pids.$port" ] && read -r -a ppids <"$work/pids.$port"
    cpu0=$(cpu_ns "${ppids[@]}")
    "${pin_load[@]}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
      "http://127.0.0.1:$port$URL_PATH" >"$out"
    # The proxy's CPU time over the run (every thread), for the CPU per request column.
    [ ${#ppids[@]} -gt 0 ] && echo $(($(cpu_ns "${ppids[@]}") - cpu0)) >"$out.cpu"
    echo "   round $round $name: $(grep 'Requests/sec' "$out" | tr -s ' ')"
  done
done

# The table: each system's median round (by requests/s); ratios to bare Pingora.
table=$(python3 - "$work" "$ROUNDS" "${systems[@]}" <<'PY'
import re, sys
work, rounds, systems = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        return None
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

def parse(path):
    s = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", s).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", s, re.M))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", s)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s)
    if m:
        errors += sum(int(x) for x in m.groups())
    total = re.search(r"(\d+) requests in", s)
    cpu = None  # µs of the proxy's CPU per request
    try:
        ns = int(open(path + ".cpu").read())
        if total and int(total.group(1)) and ns > 0:
            cpu = ns / 1000 / int(total.group(1))
    except (OSError, ValueError):
        pass
    return {"rps": rps, "p50": ms(lat.get("50", "")), "p99": ms(lat.get("99", "")), "errors": errors, "cpu": cpu}

def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if not n else xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

rows, by_round = [], []
for sys_ in systems:
    name, port = sys_.rsplit("|", 1)
    rs = [parse(f"{work}/wrk.{port}.{r}") for r in range(1, rounds + 1)]
    by_round.append(rs)
    runs = sorted(rs, key=lambda x: x["rps"])
    mid = dict(runs[len(runs) // 2])
    mid["cpu"] = median([r["cpu"] for r in rs if r["cpu"] is not None])
    rows.append((name, mid))
fmt = lambda v: "n/a" if v is None else f"{v:.2f} ms"
# Ratios to bare Pingora: the median over the rounds of each round's ratio (the systems of a
# round ran back to back, so a slow minute of the machine slows them alike), and the ratio of
# CPU per request (bare's over the system's: what one CPU-bound worker would give if neither
# ever waited for its CPU).
print("| system | requests/s | CPU / request | p50 | p99 | vs bare Pingora, requests/s | vs bare Pingora, CPU / request | errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
base_cpu = rows[0][1]["cpu"]
for i, (name, r) in enumerate(rows):
    ratio = median([x["rps"] / b["rps"] for x, b in zip(by_round[i], by_round[0]) if b["rps"]])
    cpu = "n/a" if r["cpu"] is None else f"{r['cpu']:.1f} µs"
    cpu_ratio = "n/a" if r["cpu"] is None or base_cpu is None else f"{base_cpu / r['cpu']:.2f}"
    print(f"| {name} | {r['rps']:,.0f} | {cpu} | {fmt(r['p50'])} | {fmt(r['p99'])} | {ratio:.2f} | {cpu_ratio} | {r['errors']} |")
PY
)

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# A profile-guided build (scripts/pgo.sh) leaves a note beside its binary.
build_note="plain release build"
[ -f "$palisade_bin.pgo" ] && build_note="profile-guided build ($(cat "$palisade_bin.pgo"))"
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)
meta="$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $build_note, $(nproc) CPUs ($cpu); \`wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency\` on \`$URL_PATH\` after a $WARMUP warm-up, $ROUNDS round(s) (median shown); $pinned; one proxy worker each; upstream: nginx answering 200 \"ok\" on $UPSTREAM; load average before the runs: $loadavg (other work on the machine shares the CPUs: compare ratios within one run, not absolute figures across runs)."
note=""
[ "$palisade_ok" = 1 ] || note="palisade was not measured: $skip_reason."

echo
echo "$table"
echo
echo "$meta"
[ -z "$note" ] || echo "$note"

if [ "$write" = 1 ]; then
  mkdir -p docs
  bench=docs/BENCHMARKS.md
  if ! [ -f "$bench" ]; then
    cat >"$bench" <<'EOF'
# Benchmarks

Figures measured on this repository's machine by the scripts and benchmarks named in each
section, with the command that reproduces them. Budgets are in `../shared/DESIGN.md` §8.
EOF
  fi
  section=$(
    echo "## Load: gateway vs bare Pingora vs nginx"
    echo
    echo "Produced by \`scripts/load.sh --write\`. Target (issue 2): palisade with all stages off"
    echo "≥ 0.95 of bare Pingora's requests/s. The second row is the same bare proxy with Palisade's"
    echo "default upstream timeouts (\`bare_pingora --timeouts\`), for reference: the ratio column stays"
    echo "against the plain one."
    echo
    echo "$table"
    echo
    echo "$meta"
    [ -z "$note" ] || { echo; echo "$note"; }
  )
  SECTION="$section" python3 - "$bench" <<'PY'
import os, sys
path = sys.argv[1]
text = open(path).read()
begin, end = "<!-- load:begin -->", "<!-- load:end -->"
block = f"{begin}\n{os.environ['SECTION']}\n{end}"
if begin in text and end in text and text.index(begin) < text.index(end):
    text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
  echo "== wrote the load section of $bench"
fi
