#!/usr/bin/env bash
# Races two builds of the gateway against each other: the same config and the same requests,
# both proxies on one CPU ($PROXY_CPU), each in its own scheduling group (setsid: the kernel's
# autogroup, so the fair scheduler gives each the same CPU time), each driven by its own `wrk`
# on $LOAD_CPU at the same time (as `scripts/bench.sh --race`). The ratio of the requests they
# complete is the ratio of their throughputs, and a disturbance of the machine (steal time,
# other work) hits both in the same seconds: a steadier A/B than two runs one after the other.
# Use it for a profile-guided build against the plain one (scripts/pgo.sh), or for one commit
# against another (build each in its own CARGO_TARGET_DIR). When A is the bare Pingora example
# (`.../examples/bare_pingora`, with `--mode off`), it is raced as issue 2's reference proxy:
# B/A is then stages off against bare Pingora (add `--timeouts` for bare Pingora with
# Palisade's default upstream timeouts).
#
# usage: scripts/race-builds.sh A_BIN B_BIN [--mode full|off] [--shapes get,args,post4k,post64k,attack]
#                               [--rounds 3] [--duration 5s] [--connections 32] [--timeouts]
#   --mode full  every protection on (bench.sh's `full1`: WAF PL1, limits, API key, analytics to a
#                discarding endpoint as `--analytics-dest discard`); `off`: every stage off
# Prints, per shape, each round's requests of A and B and B/A, then the median B/A.
# Environment: LOAD_CPU (1), PROXY_CPU (0), BASE_PORT (18600).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=lib/full-protection.sh
. "$root/scripts/lib/full-protection.sh"
# shellcheck source=lib/shapes.sh
. "$root/scripts/lib/shapes.sh"

[ $# -ge 2 ] || { awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2; }
command -v wrk >/dev/null 2>&1 || { echo "race-builds.sh: wrk is required (apt-get install wrk)" >&2; exit 1; }
bin_a=$(realpath "$1") bin_b=$(realpath "$2")
shift 2
MODE=full SHAPES=get,args,post4k,post64k,attack ROUNDS=3 DURATION=5s CONNECTIONS=32 BARE_TIMEOUTS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) MODE=$2; shift ;;
    --shapes) SHAPES=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --connections) CONNECTIONS=$2; shift ;;
    --timeouts) BARE_TIMEOUTS=1 ;;
    *) echo "race-builds.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
case "$MODE" in full|off) ;; *) echo "race-builds.sh: --mode is full or off" >&2; exit 2 ;; esac
a_bare=0
[ "$(basename "$bin_a")" = bare_pingora ] && a_bare=1
if [ "$a_bare" = 1 ] && [ "$MODE" != off ]; then
  echo "race-builds.sh: bare Pingora has no protection to turn on: use --mode off" >&2; exit 2
fi
for b in "$bin_a" "$bin_b"; do [ -x "$b" ] || { echo "race-builds.sh: $b is not executable" >&2; exit 1; }; done
LOAD_CPU=${LOAD_CPU:-1} PROXY_CPU=${PROXY_CPU:-0} BASE_PORT=${BASE_PORT:-18600}
UPSTREAM=127.0.0.1:18080 ANALYTICS_DEST=discard ch_db=palisade_bench CLICKHOUSE_URL=unused
peer_dir=$(cd "$root/../shared/peers/nginx-modsec" 2>/dev/null && pwd || true)
[ -n "$peer_dir" ] || peer_dir=/work/shared/peers/nginx-modsec

work=$(mktemp -d /tmp/race-builds.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # The gateways drain before they exit: wait, so that the next run finds its ports free.
  for p in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT
up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" != 000 ]; }
if ! up "http://$UPSTREAM/"; then
  echo "== starting the peer's upstream (:18080) with its start.sh"
  "$peer_dir/start.sh" 1 >/dev/null
fi

write_bodies "$work"
ports=("$BASE_PORT" $((BASE_PORT + 2)))
palisade_config a "${ports[0]}" $((ports[0] + 1)) "$MODE" 1
palisade_config b "${ports[1]}" $((ports[1] + 1)) "$MODE" 1
key=none
if [ "$MODE" = full ]; then
  # One key for both: b reads a copy of a's key file.
  key=$("$bin_b" keys --config "$work/a/palisade.yaml" create --name race --owner race \
    --plan bench 2>/dev/null | sed -n 's/^key: //p')
  [ -n "$key" ] || { echo "race-builds.sh: palisade keys create printed no key" >&2; exit 1; }
  cp "$work/a/keys.json" "$work/b/keys.json"
fi
for id in a b; do
  if [ "$id" = a ] && [ "$a_bare" = 1 ]; then
    extra=()
    [ "$BARE_TIMEOUTS" = 1 ] && extra=(--timeouts)
    setsid taskset -c "$PROXY_CPU" "$bin_a" --listen "127.0.0.1:${ports[0]}" --upstream "$UPSTREAM" \
      --threads 1 "${extra[@]}" >"$work/a/log" 2>&1 </dev/null &
    pids+=($!)
    continue
  fi
  [ "$id" = a ] && bin=$bin_a || bin=$bin_b
  "$bin" check "$work/$id/palisade.yaml" >/dev/null
  setsid taskset -c "$PROXY_CPU" "$bin" run --config "$work/$id/palisade.yaml" \
    >"$work/$id/log" 2>&1 </dev/null &
  pids+=($!)
done
for p in "${ports[@]}"; do
  for _ in $(seq 1 100); do up "http://127.0.0.1:$p/" && break; sleep 0.1; done
done

IFS=, read -r -a shapes <<<"$SHAPES"
echo "A: $bin_a"
echo "B: $bin_b"
echo "mode $MODE, $ROUNDS round(s) of wrk -t1 -c$CONNECTIONS -d$DURATION, both proxies on CPU $PROXY_CPU"
for shape in "${shapes[@]}"; do
  write_lua "$shape" "$key"
  want=200
  [ "$MODE" = full ] && [ "$shape" = attack ] && want=403
  for p in "${ports[@]}"; do
    got=$(status_of "$shape" "$p" "$key")
    [ "$got" = "$want" ] || { echo "race-builds.sh: $shape on :$p answered $got, expected $want" >&2; exit 1; }
  done
  ratios=()
  for r in $(seq 1 "$ROUNDS"); do
    wrks=()
    for i in 0 1; do
      taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$work/$shape.lua" \
        "http://127.0.0.1:${ports[$i]}/" >"$work/$shape.$r.$i" 2>&1 &
      wrks+=($!)
    done
    wait "${wrks[@]}"
    a=$(awk '/requests in/ {print $1}' "$work/$shape.$r.0")
    b=$(awk '/requests in/ {print $1}' "$work/$shape.$r.1")
    ratio=$(python3 -c "print(f'{$b / $a:.3f}')")
    ratios+=("$ratio")
    printf '  %-8s round %d: A %8s  B %8s  B/A %s\n' "$shape" "$r" "$a" "$b" "$ratio"
  done
  median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}')
  printf '%-8s B/A median %s\n' "$shape" "$median"
done
