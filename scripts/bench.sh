#!/usr/bin/env bash
# Side-by-side load benchmark (issue 8 items 1-3, issue 4 item 10). In one run it starts:
#   full1      palisade, every protection on, WAF paranoia 1 (block, threshold 5), IP deny list,
#              per-IP / per-route / global rate limits far above the load, an API key required
#              (created with `palisade keys create`), analytics to the local ClickHouse
#   full2      the same at WAF paranoia 2
#   off        palisade with every stage off (no WAF, guard, keys nor analytics)
#   analytics  palisade with every stage off but analytics to the local ClickHouse
#              (analytics on / off = analytics / off, issue 4 item 10, target >= 0.95)
#   modsec1    nginx + ModSecurity v3 + OWASP CRS (the peer, ../shared/peers/nginx-modsec) at PL1
#   modsec2    the same at paranoia 2
# all proxying to the peer's upstream (nginx answering 200 "ok" on 127.0.0.1:18080), one proxy
# worker each, every proxy pinned to CPU $PROXY_CPU and wrk to CPU $LOAD_CPU (taskset).
# Shapes (wrk Lua scripts; every request carries the same User-Agent, Accept and x-api-key):
#   get      GET /
#   args     GET with 10 query arguments and 5 cookies
#   post4k   POST 4 KB JSON         post64k  POST 64 KiB JSON
#   attack   GET with a SQL injection in a query argument (expected 403 from the WAFs)
# Each system x shape gets one throughput run (wrk -c$CONNECTIONS) and one latency run with one
# connection (wrk -c1), after a curl check that the answer is the expected one (200, or 403 for
# the attack through a WAF). Non-2xx answers are counted: blocked for the attack, errors otherwise.
#
# usage: scripts/bench.sh [--quick] [--write] [--no-build] [--duration 10s] [--latency-duration 3s]
#                         [--warmup 2s] [--rounds 1] [--connections 32]
#                         [--systems full1,full2,off,analytics,modsec1,modsec2]
#                         [--shapes get,args,post4k,post64k,attack] [--analytics-only] [--race]
#                         [--analytics-dest local|discard]
#   --quick           3 s runs, 1 s latency runs and warm-ups: the whole matrix in about 3 minutes
#   --write           replace the section between <!-- bench:begin --> and <!-- bench:end --> of
#                     docs/BENCHMARKS.md with the tables
#   --rounds N        run the matrix N times, interleaved; each cell shows its median round
#   --analytics-only  only `off` and `analytics` (issue 4 item 10)
#   --race            drive every system at once instead of one after the other: all proxies share
#                     CPU $PROXY_CPU, each in its own scheduling group (setsid: the kernel's
#                     autogroup), so the fair scheduler gives each process the same CPU time and
#                     the ratio of the requests they complete is the ratio of their throughputs on
#                     a CPU of their own, while any disturbance of the machine (steal time, other
#                     work) hits all of them in the same seconds. Its requests/s are shares of
#                     one CPU, not a proxy's full rate; only the ratios are read. No latency runs.
#   --latency-duration 0  skip the one-connection latency runs
#   --analytics-dest  where the gateways with analytics send their events: `local` (the default,
#                     the local ClickHouse server) or `discard` (the same ClickHouse sink, pointed
#                     at the upstream nginx, which reads each INSERT and answers 200 without
#                     storing it). On this 2-CPU machine the ClickHouse server's inserts, merges
#                     and materialized views run on the CPU of wrk and the upstream and delay them;
#                     `discard` measures the gateway as it runs when ClickHouse has a machine of
#                     its own (every event still encoded, batched and sent over HTTP).
# Environment: LOAD_CPU (1), PROXY_CPU (0), UPSTREAM_CPU (the load CPU; empty: leave unpinned),
# BASE_PORT (18400), PALISADE_BIN, CARGO_TARGET_DIR, CLICKHOUSE_URL (http://127.0.0.1:8123),
# PEER_BODY_PROCESSORS (1: add Debian's JSON/XML body-processor rules 200000/200001 from
# /etc/nginx/modsecurity.conf to the peer's config, as ModSecurity's recommended config does;
# 0: the peer's modsec-main.conf verbatim, which leaves JSON bodies unparsed).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=lib/full-protection.sh
. "$root/scripts/lib/full-protection.sh"
# shellcheck source=lib/pin.sh
. "$root/scripts/lib/pin.sh"
# shellcheck source=lib/shapes.sh
. "$root/scripts/lib/shapes.sh"
# shellcheck source=lib/cpu.sh
. "$root/scripts/lib/cpu.sh"
peer_dir=$(cd "$root/../shared/peers/nginx-modsec" 2>/dev/null && pwd || true)
[ -n "$peer_dir" ] || peer_dir=/work/shared/peers/nginx-modsec

DURATION=${DURATION:-10s}
LAT_DURATION=${LAT_DURATION:-3s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-1}
CONNECTIONS=${CONNECTIONS:-32}
LOAD_CPU=${LOAD_CPU:-1}
PROXY_CPU=${PROXY_CPU:-0}
UPSTREAM_CPU=${UPSTREAM_CPU-$LOAD_CPU}
BASE_PORT=${BASE_PORT:-18400}
CLICKHOUSE_URL=${CLICKHOUSE_URL:-http://127.0.0.1:8123}
export PEER_BODY_PROCESSORS=${PEER_BODY_PROCESSORS:-1}
SYSTEMS=full1,full2,off,analytics,modsec1,modsec2
SHAPES=get,args,post4k,post64k,attack
UPSTREAM=127.0.0.1:18080
write=0
build=1
race=0
ANALYTICS_DEST=${ANALYTICS_DEST:-local}

while [ $# -gt 0 ]; do
  case "$1" in
    --quick) DURATION=3s; LAT_DURATION=1s; WARMUP=1s ;;
    --write) write=1 ;;
    --no-build) build=0 ;;
    --duration) DURATION=$2; shift ;;
    --latency-duration) LAT_DURATION=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
    --systems) SYSTEMS=$2; shift ;;
    --shapes) SHAPES=$2; shift ;;
    --analytics-only) SYSTEMS=off,analytics ;;
    --race) race=1 ;;
    --analytics-dest) ANALYTICS_DEST=$2; shift ;;
    -h|--help) sed -n '2,45p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$race" = 1 ] && LAT_DURATION=0
case "$ANALYTICS_DEST" in local|discard) ;; *)
  echo "bench.sh: --analytics-dest is local or discard, not '$ANALYTICS_DEST'" >&2; exit 2 ;;
esac
IFS=, read -r -a systems <<<"$SYSTEMS"
IFS=, read -r -a shapes <<<"$SHAPES"
for s in "${systems[@]}"; do
  case "$s" in full1|full2|off|analytics|modsec1|modsec2) ;; *)
    echo "bench.sh: unknown system '$s' (full1 full2 off analytics modsec1 modsec2)" >&2; exit 2 ;;
  esac
done
for s in "${shapes[@]}"; do
  case "$s" in get|args|post4k|post64k|attack) ;; *)
    echo "bench.sh: unknown shape '$s' (get args post4k post64k attack)" >&2; exit 2 ;;
  esac
done

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench.sh: '$1' is required ($2)" >&2; exit 1; }; }
need wrk "apt-get install wrk"
need curl "apt-get install curl"
need python3 "apt-get install python3"
need nginx "the peer's start.sh installs it"
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  pin_load=(taskset -c "$LOAD_CPU")
  pin_proxy=(taskset -c "$PROXY_CPU")
  pinned="proxies on CPU $PROXY_CPU, wrk on CPU $LOAD_CPU"
else
  pin_load=()
  pin_proxy=()
  pinned="not pinned (taskset missing or one CPU)"
  UPSTREAM_CPU=""
fi

work=$(mktemp -d /tmp/palisade-bench.XXXXXX)
chmod 755 "$work" # nginx workers (www-data) use temp directories below it
pids=()
nginx_pidfiles=()
repin=()
sched_back=()
cleanup() {
  restore_pins
  for p in "${sched_back[@]}"; do
    chrt --other -p 0 "${p%%:*}" >/dev/null 2>&1 || true
    renice -n "${p#*:}" -p "${p%%:*}" >/dev/null 2>&1 || true
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for f in "${nginx_pidfiles[@]}"; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for f in "${nginx_pidfiles[@]}"; do
    for _ in $(seq 1 25); do [ -f "$f" ] || break; sleep 0.2; done
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_http URL [tries]: until the URL answers anything (0.2 s between tries).
wait_http() {
  local url=$1 tries=${2:-100}
  for _ in $(seq 1 "$tries"); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" != 000 ]; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}
has() { local x; for x in "${systems[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
port_of() {
  case "$1" in
    full1) echo $((BASE_PORT + 1)) ;; full2) echo $((BASE_PORT + 2)) ;;
    off) echo $((BASE_PORT + 3)) ;; analytics) echo $((BASE_PORT + 4)) ;;
    modsec1) echo $((BASE_PORT + 5)) ;; modsec2) echo $((BASE_PORT + 6)) ;;
  esac
}
label_of() {
  case "$1" in
    full1) echo "palisade full, PL1" ;; full2) echo "palisade full, PL2" ;;
    off) echo "palisade, stages off" ;; analytics) echo "palisade, analytics only" ;;
    modsec1) echo "nginx+ModSecurity+CRS, PL1" ;; modsec2) echo "nginx+ModSecurity+CRS, PL2" ;;
  esac
}
loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

# --- the upstream: the peer's nginx on 18080 -------------------------------------------------
if ! wait_http "http://$UPSTREAM/" 1; then
  echo "== starting the peer (upstream :18080) with its start.sh"
  "$peer_dir/start.sh" 1 >/dev/null
fi
wait_http "http://$UPSTREAM/" 25 || { echo "bench.sh: upstream $UPSTREAM does not answer" >&2; exit 1; }
if [ -n "$UPSTREAM_CPU" ] && [ -f /tmp/peer-modsec/upstream.pid ]; then
  # Keep the upstream off the proxies' CPU so that each proxy has its core to itself.
  # The upstream is shared: its CPU list is put back on exit (cleanup).
  pin_nginx /tmp/peer-modsec/upstream.pid "$UPSTREAM_CPU"
  pinned="$pinned, upstream on CPU $UPSTREAM_CPU"
fi

# --- request shapes (scripts/lib/shapes.sh) ---------------------------------------------
write_bodies "$work"

# --- build ---------------------------------------------------------------------------------
target_dir=${CARGO_TARGET_DIR:-$root/target}
palisade_bin=${PALISADE_BIN:-$target_dir/release/palisade}
need_palisade=0
for s in full1 full2 off analytics; do has "$s" && need_palisade=1; done
if [ "$need_palisade" = 1 ] && [ "$build" = 1 ]; then
  echo "== cargo build --release -j2 --bin palisade"
  cargo build --release -j2 --bin palisade
fi
if [ "$need_palisade" = 1 ] && ! [ -x "$palisade_bin" ]; then
  echo "bench.sh: $palisade_bin missing (run without --no-build, or set PALISADE_BIN)" >&2
  exit 1
fi

# --- ClickHouse ----------------------------------------------------------------------------
ch_db=palisade_bench
if [ "$ANALYTICS_DEST" = local ] && { has full1 || has full2 || has analytics; }; then
  if [ "$CLICKHOUSE_URL" = http://127.0.0.1:8123 ]; then
    "$root/scripts/start-clickhouse.sh"
  fi
  curl -fsS "$CLICKHOUSE_URL/ping" >/dev/null || { echo "bench.sh: ClickHouse at $CLICKHOUSE_URL does not answer" >&2; exit 1; }
  # The local ClickHouse server (inserts, merges, materialized views) is the analytics
  # *destination*, which a deployment runs on its own machine: keep it off the proxies' CPU, with
  # wrk and the upstream, so that the proxy's own analytics cost is what the ratio measures.
  # Put back on exit (cleanup).
  if [ -n "$UPSTREAM_CPU" ] && [ "$CLICKHOUSE_URL" = http://127.0.0.1:8123 ]; then
    ch_pid=$(pgrep -o -x clickhouse-serv || pgrep -o -f 'clickhouse-server' || true)
    if [ -n "$ch_pid" ]; then
      pin_process "$ch_pid" "$UPSTREAM_CPU"
      pinned="$pinned, ClickHouse server on CPU $UPSTREAM_CPU"
      # On its own machine ClickHouse would not share a CPU with wrk either: its threads run
      # under SCHED_IDLE for the run (only when wrk and the upstream leave CPU $UPSTREAM_CPU
      # idle, which they do a third of the time), so an insert or a merge never holds back
      # wrk's reading of a response, which would show as a slower proxy. With nice 10 instead,
      # the analytics runs of the POST shapes lost 5-25 % against stages off while the proxy's
      # own CPU per request moved by 1-2 %. Put back on exit (cleanup).
      for task in /proc/"$ch_pid"/task/*; do
        tid=${task##*/}
        was=$(awk '{ sub(/.*\) /, ""); print $17 }' "$task/stat" 2>/dev/null || echo 0)
        chrt --idle -p 0 "$tid" >/dev/null 2>&1 && sched_back+=("$tid:${was:-0}")
      done
      pinned="$pinned (SCHED_IDLE)"
    fi
  fi
  # A fresh database each run, so the event count below is this run's.
  curl -fsS "$CLICKHOUSE_URL/" --data-binary "DROP DATABASE IF EXISTS $ch_db" >/dev/null
fi

# --- palisade configs: palisade_config in scripts/lib/shapes.sh ---------------------------

api_key=none
for id in full1 full2 off analytics; do
  has "$id" || continue
  port=$(port_of "$id")
  case "$id" in full1) kind=full pl=1 ;; full2) kind=full pl=2 ;; *) kind=$id pl=1 ;; esac
  palisade_config "$id" "$port" $((port + 50)) "$kind" "$pl"
  if ! "$palisade_bin" check "$work/$id/palisade.yaml" >"$work/$id/check.log" 2>&1; then
    echo "bench.sh: palisade check rejected the $id config:" >&2
    cat "$work/$id/check.log" >&2
    exit 1
  fi
  if [ "$kind" = full ]; then
    if [ "$api_key" = none ]; then
      api_key=$("$palisade_bin" keys --config "$work/$id/palisade.yaml" create --name bench \
        --owner bench --plan bench 2>/dev/null | sed -n 's/^key: //p')
      [ -n "$api_key" ] || { echo "bench.sh: palisade keys create printed no key" >&2; exit 1; }
      keys_json="$work/$id/keys.json"
    else
      cp "$keys_json" "$work/$id/keys.json" # the same key, each gateway its own quota file
    fi
  fi
done

for shape in "${shapes[@]}"; do write_lua "$shape" "$api_key"; done

for id in full1 full2 off analytics; do
  has "$id" || continue
  port=$(port_of "$id")
  echo "== start $(label_of "$id") on :$port"
  # setsid: a session of its own, hence its own scheduling autogroup, so that in a race each
  # process (not each thread) gets an equal share of the CPU. nginx does the same when it
  # daemonizes.
  setsid "${pin_proxy[@]}" "$palisade_bin" run --config "$work/$id/palisade.yaml" \
    >"$work/$id/out.log" 2>&1 </dev/null &
  pids+=($!)
  echo $! >"$work/$id/proxy.pids"
done

# --- the peer at PL1 and PL2: private instances of its config (scripts/peer-modsec.sh) ---------
for id in modsec1 modsec2; do
  has "$id" || continue
  port=$(port_of "$id")
  echo "== start $(label_of "$id") on :$port"
  nginx_pidfiles+=("$work/$id/nginx.pid")
  PIN_CPU=${pin_proxy[*]:+$PROXY_CPU} "$root/scripts/peer-modsec.sh" "$work/$id" "$port" "${id#modsec}"
done

for id in "${systems[@]}"; do
  port=$(port_of "$id")
  if ! wait_http "http://127.0.0.1:$port/" 150; then
    echo "bench.sh: $(label_of "$id") did not come up on :$port" >&2
    tail -n 5 "$work/$id/out.log" "$work/$id/error.log" 2>/dev/null >&2 || true
    exit 1
  fi
done

# The processes whose CPU time counts as a system's (cpu_ns): the gateway, or the nginx master
# and its worker.
for id in modsec1 modsec2; do
  has "$id" || continue
  master=$(cat "$work/$id/nginx.pid")
  echo "$master $(pgrep -P "$master" | tr '\n' ' ')" >"$work/$id/proxy.pids"
done

# --- check every answer first --------------------------------------------------------------
echo "== answers (curl, one request each; expected 200, and 403 for the attack through a WAF)"
: >"$work/answers"
bad_answers=0
for id in "${systems[@]}"; do
  port=$(port_of "$id")
  line="   $(printf '%-28s' "$(label_of "$id")")"
  for shape in "${shapes[@]}"; do
    code=$(status_of "$shape" "$port" "$api_key")
    expect=200
    if [ "$shape" = attack ]; then
      case "$id" in full*|modsec*) expect=403 ;; esac
    fi
    [ "$code" = "$expect" ] || bad_answers=$((bad_answers + 1))
    echo "$id $shape $code $expect" >>"$work/answers"
    line="$line $shape=$code"
  done
  echo "$line"
done
[ "$bad_answers" = 0 ] || echo "== warning: $bad_answers answer(s) differ from the expected status (marked in the table)"

# --- load ----------------------------------------------------------------------------------
echo "== warm-up: $WARMUP per system"
for id in "${systems[@]}"; do
  "${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" -s "$work/get.lua" \
    "http://127.0.0.1:$(port_of "$id")/" >/dev/null
done
# settle PORT: wait until the proxy answers a small request, i.e. it has worked off the requests
# still queued from the previous run (a slow WAF keeps processing after wrk has hung up).
settle() {
  curl -s -o /dev/null --max-time 180 -H "User-Agent: $ua" "http://127.0.0.1:$1/" || true
}
# secs 10s|2m: the duration in seconds.
secs() { case "$1" in *m) echo $((${1%m} * 60)) ;; *s) echo "${1%s}" ;; *) echo "$1" ;; esac; }
dur_s=$(secs "$DURATION")
echo "== load: wrk -t1 -c$CONNECTIONS -d$DURATION (and -c1 -d$LAT_DURATION), $ROUNDS round(s), $pinned"
# race SHAPE ROUND: every system under its own wrk at the same time (see --race).
race_round() {
  local shape=$1 round=$2 id port out
  local -a wrks=() ppids
  for id in "${systems[@]}"; do settle "$(port_of "$id")"; done
  for id in "${systems[@]}"; do
    out="$work/wrk.$id.$shape.$round"
    echo "$CONNECTIONS" >"$out.conns"
    read -r -a ppids <"$work/$id/proxy.pids"
    cpu_ns "${ppids[@]}" >"$out.cpu0"
  done
  for id in "${systems[@]}"; do
    port=$(port_of "$id")
    out="$work/wrk.$id.$shape.$round"
    "${pin_load[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --timeout 60s --latency \
      -s "$work/$shape.lua" "http://127.0.0.1:$port/" >"$out" &
    wrks+=($!)
  done
  wait "${wrks[@]}"
  for id in "${systems[@]}"; do
    out="$work/wrk.$id.$shape.$round"
    read -r -a ppids <"$work/$id/proxy.pids"
    echo $(($(cpu_ns "${ppids[@]}") - $(cat "$out.cpu0"))) >"$out.cpu"
    printf '   round %s %-8s %-28s -c%-3s %s (racing)\n' "$round" "$shape" "$(label_of "$id")" \
      "$CONNECTIONS" "$(grep 'Requests/sec' "$out" | tr -s ' ')"
  done
}
for round in $(seq 1 "$ROUNDS"); do
  for shape in "${shapes[@]}"; do
    if [ "$race" = 1 ]; then
      race_round "$shape" "$round"
      continue
    fi
    for id in "${systems[@]}"; do
      port=$(port_of "$id")
      out="$work/wrk.$id.$shape.$round"
      conns=$CONNECTIONS
      if [ "$LAT_DURATION" != 0 ]; then
        settle "$port"
        "${pin_load[@]}" wrk -t1 -c1 -d"$LAT_DURATION" --timeout 60s --latency \
          -s "$work/$shape.lua" "http://127.0.0.1:$port/" >"$out.c1"
        # A proxy too slow for every connection to complete a few requests within the run
        # (ModSecurity on 64 KiB JSON: about a second per request) gets fewer connections: it is
        # one CPU-bound worker, so its requests/s do not depend on the connection count, and
        # 32 connections would only queue (and leave a backlog that spills into the next run).
        one=$(sed -n 's/^Requests\/sec:[[:space:]]*//p' "$out.c1")
        conns=$(python3 -c "import sys; r, d, c = float(sys.argv[1] or 0), float(sys.argv[2]), int(sys.argv[3]); print(c if r * d >= 4 * c else max(1, int(r * d / 4)))" "${one:-0}" "$dur_s" "$CONNECTIONS")
      fi
      echo "$conns" >"$out.conns"
      settle "$port"
      read -r -a ppids <"$work/$id/proxy.pids"
      cpu0=$(cpu_ns "${ppids[@]}")
      "${pin_load[@]}" wrk -t1 -c"$conns" -d"$DURATION" --timeout 60s --latency \
        -s "$work/$shape.lua" "http://127.0.0.1:$port/" >"$out"
      # The proxy's CPU over the run; requests still in flight when wrk stops are finished
      # within the settle of the next run, which is not counted (a slow WAF's backlog).
      echo $(($(cpu_ns "${ppids[@]}") - cpu0)) >"$out.cpu"
      printf '   round %s %-8s %-28s -c%-3s %s\n' "$round" "$shape" "$(label_of "$id")" "$conns" \
        "$(grep 'Requests/sec' "$out" | tr -s ' ')"
    done
  done
done
loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

# Analytics actually written (the gateways' own counters, after their last flush).
analytics_note=""
if has full1 || has full2 || has analytics; then
  sleep 2 # one flush interval (1 s) and then some: the last batch is sent
  written=0 dropped=0 spooled=0
  for id in full1 full2 analytics; do
    has "$id" || continue
    m=$(curl -s "http://127.0.0.1:$(($(port_of "$id") + 50))/metrics" || true)
    w=$(awk '/^palisade_analytics_events_written_total/ {s += $2} END {printf "%d", s}' <<<"$m")
    dr=$(awk '/^palisade_analytics_events_dropped_total/ {s += $2} END {printf "%d", s}' <<<"$m")
    sp=$(awk '/^palisade_analytics_events_spooled_total/ {s += $2} END {printf "%d", s}' <<<"$m")
    written=$((written + w)) dropped=$((dropped + dr)) spooled=$((spooled + sp))
  done
  if [ "$ANALYTICS_DEST" = discard ]; then
    analytics_note="analytics (\`--analytics-dest discard\`): the gateways with analytics on sent their events to a discarding HTTP endpoint (the upstream nginx) standing in for a ClickHouse on its own machine; they report $written events written, $spooled spooled, $dropped dropped."
  else
    rows=$(curl -s "$CLICKHOUSE_URL/" --data-binary "SELECT count() FROM $ch_db.events" 2>/dev/null || echo "?")
    analytics_note="analytics: the gateways with analytics on report $written events written to ClickHouse, $spooled spooled, $dropped dropped; \`$ch_db.events\` holds $(echo "$rows" | head -n1 | tr -d '\n') rows."
  fi
fi

# --- tables --------------------------------------------------------------------------------
labels=()
for id in "${systems[@]}"; do labels+=("$id=$(label_of "$id")"); done
tables=$(python3 - "$work" "$ROUNDS" "$SYSTEMS" "$SHAPES" "$LAT_DURATION" "${labels[@]}" <<'PY'
import re, statistics, sys
work, rounds, systems, shapes, lat = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4].split(","), sys.argv[5]
labels = dict(a.split("=", 1) for a in sys.argv[6:])
answers = {}
for line in open(f"{work}/answers"):
    sid, shape, code, expect = line.split()
    answers[(sid, shape)] = (code, expect)

def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text or "")
    if not m:
        return None
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

def parse(path):
    try:
        s = open(path).read()
    except OSError:
        return None
    m = re.search(r"Requests/sec:\s+([\d.]+)", s)
    if not m:
        return None
    lat_ = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", s, re.M))
    non2xx = 0
    m2 = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", s)
    if m2:
        non2xx = int(m2.group(1))
    sock = 0
    m3 = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s)
    if m3:
        sock = sum(int(x) for x in m3.groups())
    total = re.search(r"(\d+) requests in", s)
    total = int(total.group(1)) if total else 0
    cpu = None  # the proxy's CPU per request over the run, in µs
    try:
        ns = int(open(path + ".cpu").read())
        cpu = ns / 1000 / total if total and ns > 0 else None
    except (OSError, ValueError):
        pass
    return {"rps": float(m.group(1)), "p50": ms(lat_.get("50")), "p99": ms(lat_.get("99")),
            "non2xx": non2xx, "sock": sock, "total": total, "cpu": cpu}

cells = {}
rounds_of = {}
for sid in systems:
    for shape in shapes:
        runs = [r for r in (parse(f"{work}/wrk.{sid}.{shape}.{i}") for i in range(1, rounds + 1)) if r]
        if not runs:
            continue
        by_round = {i: r for i in range(1, rounds + 1) if (r := parse(f"{work}/wrk.{sid}.{shape}.{i}"))}
        rounds_of[(sid, shape)] = by_round
        runs.sort(key=lambda r: r["rps"])
        mid = runs[len(runs) // 2]
        cpus = sorted(r["cpu"] for r in runs if r["cpu"] is not None)
        c1 = [r for r in (parse(f"{work}/wrk.{sid}.{shape}.{i}.c1") for i in range(1, rounds + 1)) if r]
        c1 = [r for r in c1 if r["total"] > 0]
        c1.sort(key=lambda r: r["p99"] or 0)
        mid = dict(mid)
        mid["cpu"] = cpus[len(cpus) // 2] if cpus else None
        try:
            mid["conns"] = int(open(f"{work}/wrk.{sid}.{shape}.1.conns").read())
        except (OSError, ValueError):
            mid["conns"] = None
        mid["c1"] = c1[len(c1) // 2] if c1 else None
        if mid["c1"] is None and mid["conns"] == 1 and mid["total"] > 0:
            mid["c1"] = mid  # too slow to finish a request in the latency run: the same measurement
        cells[(sid, shape)] = mid

f_ms = lambda v: "n/a" if v is None else (f"{v * 1000:.0f} µs" if v < 1 else f"{v:.2f} ms")
out = []
out.append("| shape | system | conns | requests/s | CPU / request | p50 | p99 | p50, 1 conn | p99, 1 conn | answer | non-2xx | socket errors |")
out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for shape in shapes:
    for sid in systems:
        c = cells.get((sid, shape))
        if not c:
            continue
        code, expect = answers.get((sid, shape), ("?", "?"))
        ans = code if code == expect else f"**{code}** (expected {expect})"
        c1 = c["c1"] or {}
        blocked = c["non2xx"]
        non2xx = f"{blocked} (blocked)" if shape == "attack" and expect == "403" else str(blocked)
        rps = f"{c['rps']:,.0f}" if c["rps"] >= 10 else f"{c['rps']:.2f}"
        cpu = "n/a" if c["cpu"] is None else (f"{c['cpu']:,.0f} µs" if c["cpu"] >= 100 else f"{c['cpu']:.1f} µs")
        out.append(f"| {shape} | {labels[sid]} | {c['conns'] or '?'} | {rps} | {cpu} | {f_ms(c['p50'])} | {f_ms(c['p99'])} | "
                   f"{f_ms(c1.get('p50'))} | {f_ms(c1.get('p99'))} | {ans} | {non2xx} | {c['sock']} |")
out.append("")

def ratio(a, b, shape):
    """requests/s of a over b: the median of the ratios of the rounds (a and b ran back to back in
    each round, so a slow minute of the machine slows both), or of the medians with one round."""
    ra, rb = rounds_of.get((a, shape), {}), rounds_of.get((b, shape), {})
    paired = sorted(ra[i]["rps"] / rb[i]["rps"] for i in ra if i in rb and rb[i]["rps"])
    if len(paired) > 1:
        n = len(paired)
        return paired[n // 2] if n % 2 else (paired[n // 2 - 1] + paired[n // 2]) / 2
    ca, cb = cells.get((a, shape)), cells.get((b, shape))
    if not ca or not cb or not cb["rps"]:
        return None
    return ca["rps"] / cb["rps"]

def cpu_ratio(a, b, shape):
    """CPU per request of b over a (median of each system's rounds): the requests/s ratio that a
    CPU-bound single worker would show if neither system ever waited for its CPU."""
    ca, cb = cells.get((a, shape)), cells.get((b, shape))
    if not ca or not cb or ca["cpu"] is None or cb["cpu"] is None:
        return None
    return cb["cpu"] / ca["cpu"]

def mark(v, target, fmt="{:.2f}"):
    if v is None:
        return "n/a"
    return (fmt.format(v)) + (" ✓" if v >= target else " ✗")

cols = []
if "full1" in systems and "off" in systems:
    cols.append(("full PL1 / off (≥ 0.85)", lambda s: mark(ratio("full1", "off", s), 0.85)))
    cols.append(("full PL1 / off, by CPU / request", lambda s: mark(cpu_ratio("full1", "off", s), 0.85)))
if "full2" in systems and "off" in systems:
    cols.append(("full PL2 / off (≥ 0.85)", lambda s: mark(ratio("full2", "off", s), 0.85)))
if "full1" in systems and "modsec1" in systems:
    cols.append(("full PL1 / ModSec PL1 (≥ 10×; args ≥ 30×)",
                 lambda s: mark(ratio("full1", "modsec1", s), 30 if s == "args" else 10, "{:.1f}×")))
if "full2" in systems and "modsec2" in systems:
    cols.append(("full PL2 / ModSec PL2", lambda s: "n/a" if ratio("full2", "modsec2", s) is None else f"{ratio('full2', 'modsec2', s):.1f}×"))
if "analytics" in systems and "off" in systems:
    cols.append(("analytics on / off (≥ 0.95)", lambda s: mark(ratio("analytics", "off", s), 0.95)))
    cols.append(("analytics on / off, by CPU / request", lambda s: mark(cpu_ratio("analytics", "off", s), 0.95)))
def added(s):
    a, b = cells.get(("full1", s)), cells.get(("off", s))
    if not a or not b or not a["c1"] or not b["c1"] or a["c1"]["p99"] is None or b["c1"]["p99"] is None:
        return "n/a"
    d = a["c1"]["p99"] - b["c1"]["p99"]
    return f"{d:+.2f} ms" + (" ✓" if d <= 1.0 else " ✗")
if "full1" in systems and "off" in systems and lat != "0":
    cols.append(("p99 added by full PL1, 1 conn (≤ 1 ms)", added))
if cols:
    out.append("| shape | " + " | ".join(c[0] for c in cols) + " |")
    out.append("|---|" + "---:|" * len(cols))
    for shape in shapes:
        out.append(f"| {shape} | " + " | ".join(c[1](shape) for c in cols) + " |")
print("\n".join(out))
PY
)

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# A profile-guided build (scripts/pgo.sh) leaves a note beside its binary.
build_note="plain release build"
[ -f "$palisade_bin.pgo" ] && build_note="profile-guided build ($(cat "$palisade_bin.pgo"))"
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)
race_note=""
[ "$race" = 1 ] && race_note=" **Raced** (\`--race\`): in each round and shape every system ran under its own \`wrk\` at the same time, all on CPU $PROXY_CPU, each process in its own scheduling group, so each got the same CPU time: requests/s are shares of one CPU and only the ratios (medians of the rounds' ratios) are meant to be read."
peer_note="the peer's modsec-main.conf"
[ "$PEER_BODY_PROCESSORS" = 1 ] && peer_note="$peer_note plus Debian's JSON/XML body-processor rules 200000/200001"
dest_note="ClickHouse"
[ "$ANALYTICS_DEST" = discard ] && dest_note="a discarding HTTP endpoint standing in for a ClickHouse on its own machine (\`--analytics-dest discard\`)"
meta="$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $build_note, $(nproc) CPUs ($cpu). \`wrk -t1 -c$CONNECTIONS -d$DURATION --latency\` per cell (and \`-c1 -d$LAT_DURATION\` for the 1-connection latency), $WARMUP warm-up per system, $ROUNDS round(s) interleaved (median shown); $pinned; one proxy worker each; upstream: the peer's nginx answering 200 \"ok\" on $UPSTREAM. Load average before: $loadavg_before, after: $loadavg_after (other work shares the CPUs: compare ratios within one run, not absolute figures across runs). Peer: nginx $(nginx -v 2>&1 | sed 's#.*nginx/##') + ModSecurity v3 + CRS from Debian, $peer_note. $race_note Palisade full: WAF block at threshold 5, IP deny list, per-IP/route/global limits and a usage plan at 1,000,000/s, API key required (\`x-api-key\`), analytics to $dest_note with the spool and the security log; auto-ban off (with it on, the attack shape would measure the ban list, not the WAF)."

echo
echo "$tables"
echo
echo "$meta"
[ -z "$analytics_note" ] || echo "$analytics_note"

if [ "$write" = 1 ]; then
  bench=docs/BENCHMARKS.md
  section=$(
    echo "## Side by side: palisade (full, stages off, analytics only) vs nginx + ModSecurity + CRS"
    echo
    echo "Produced by \`scripts/bench.sh --write\` (issue 8; the analytics column is issue 4 item 10)."
    echo "Targets: full protection ≥ 0.85 of stages off on every shape; ≥ 10× the requests/s of"
    echo "nginx + ModSecurity + CRS at PL1 (≥ 30× with arguments and cookies); p99 added ≤ 1 ms;"
    echo "analytics on ≥ 0.95 of off. Throughput columns: \`-c$CONNECTIONS\` (p50/p99 there include"
    echo "queueing); the 1-connection columns give the latency of one request at a time."
    echo "Whole run: \`scripts/bench.sh --write\` (about 8 minutes at \`--duration 5s --rounds 2\`);"
    echo "\`scripts/bench.sh --quick\` takes about 3 minutes; \`--analytics-only\` runs just the last ratio."
    echo
    echo "Reading it:"
    echo "- *conns* is $CONNECTIONS unless a proxy is too slow for every connection to finish 4 requests"
    echo "  in the run (ModSecurity on JSON bodies); it then gets fewer, chosen from its 1-connection"
    echo "  rate. Each proxy is one CPU-bound worker, so its requests/s do not depend on the count."
    echo "- On a loaded machine the 1-connection p99 is mostly scheduling delay (other processes share"
    echo "  the proxy's CPU), so the *p99 added* column is only meaningful when the load average"
    echo "  before the run was well under 1; p50 at 1 connection is the steadier latency figure."
    echo "- ModSecurity parses JSON bodies here (Debian's rule 200001, see the note below); with the"
    echo "  peer's file verbatim (\`PEER_BODY_PROCESSORS=0\`) it would not inspect JSON fields at all."
    echo "- Passive ejection is off in these palisade configs: palisade counts a client hanging up"
    echo "  while its request is at the upstream as an upstream failure (wrk does so at the end of"
    echo "  every run), which ejects the only target and turns the next run into 502s."
    echo
    echo "$tables"
    echo
    echo "$meta"
    [ -z "$analytics_note" ] || { echo; echo "$analytics_note"; }
  )
  SECTION="$section" python3 - "$bench" <<'PY'
import os, sys
path = sys.argv[1]
text = open(path).read()
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
block = f"{begin}\n{os.environ['SECTION']}\n{end}"
if begin in text and end in text and text.index(begin) < text.index(end):
    text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
  echo "== wrote the bench section of $bench"
fi
