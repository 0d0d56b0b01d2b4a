#!/usr/bin/env bash
# Reference figures for the engine's 64 KB JSON budget (issue 3 item 11, DESIGN.md §8: ≤ 150 µs):
# what libinjection 3.9.2 (the SQLi/XSS tokenizer ModSecurity v3 and Coraza run; C, built here
# with gcc -O3 -march=native) takes to check each string value of a 64 KB JSON body once, next
# to palisade's own detectors over the same values and the whole engine on the same body.
# Two bodies: the engine benchmark's 64 KB workload (`crates/waf/examples/workload`: orders with
# names, e-mails, streets, prose notes, SKUs) and `scripts/bench.sh`'s post64k body.
#
# usage: scripts/detector-reference.sh [--cpu 1] [--work DIR] [--no-build]
# Needs gcc, python3 and pip (libinjection-python 1.1.6's source distribution, BSD-3, is
# downloaded from PyPI into the work directory: libinjection is not vendored in this repo).
# Everything runs pinned to one CPU (default 1); the figures are wall clock, compare them
# within one run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=lib/shapes.sh
. "$root/scripts/lib/shapes.sh"

cpu=1 work="" build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 2 ;;
  esac
done
[ -n "$work" ] || work=$(mktemp -d /tmp/palisade-detref.XXXXXX)
mkdir -p "$work"
for tool in gcc python3 pip; do
  command -v "$tool" >/dev/null 2>&1 || { echo "detector-reference.sh: $tool is required" >&2; exit 1; }
done

target=${CARGO_TARGET_DIR:-$root/target}
if [ "$build" = 1 ]; then
  cargo build --release -j2 -p palisade-waf --example profile >&2
  cargo build --release -j2 -p palisade-detect --example profile_detect >&2
fi
profile=$target/release/examples/profile
profile_detect=$target/release/examples/profile_detect

# libinjection, from its PyPI source distribution.
src=$work/libinjection-python-1.1.6/libinjection/src
if [ ! -f "$src/libinjection_sqli.c" ]; then
  pip download --quiet --no-deps --no-binary :all: libinjection-python==1.1.6 -d "$work" >&2
  tar -xzf "$work/libinjection-python-1.1.6.tar.gz" -C "$work"
fi
gcc -O3 -march=native -I"$src" -o "$work/libinjection_values" \
  "$root/scripts/lib/libinjection_values.c" \
  "$src/libinjection_sqli.c" "$src/libinjection_xss.c" "$src/libinjection_html5.c"
version=$(sed -n 's/^#define LIBINJECTION_VERSION "\(.*\)"/\1/p' "$src/libinjection_sqli.c")

# The bodies and their string values, one per line (empty values left out).
"$profile" write-body "$work/workload64k.json"
write_bodies "$work"
for b in workload64k post64k; do
  python3 - "$work/$b.json" "$work/$b.values" <<'PY'
import json, sys
vals = []
def walk(x):
    if isinstance(x, dict):
        for v in x.values():
            walk(v)
    elif isinstance(x, list):
        for v in x:
            walk(v)
    elif isinstance(x, str) and x and "\n" not in x:
        vals.append(x)
walk(json.load(open(sys.argv[1], encoding="utf-8")))
open(sys.argv[2], "w", encoding="utf-8").write("".join(v + "\n" for v in vals))
PY
done

# Median of three runs of a command printing "... X us per pass" / "X per iteration".
median3() {
  local a b c
  a=$("$@") b=$("$@") c=$("$@")
  printf '%s\n%s\n%s\n' "$a" "$b" "$c" | sort -g | sed -n 2p
}
per_pass() { taskset -c "$cpu" "$@" | sed -n 's/.* \([0-9.]*\) us per pass$/\1/p'; }
iteration_us() {
  taskset -c "$cpu" "$@" | sed -n 's/^\([0-9.]*\)\(µs\|ms\) per iteration$/\1 \2/p' |
    awk '{ printf "%.1f\n", ($2 == "ms") ? $1 * 1000 : $1 }'
}

echo "| body | string values | serde_json parse floor | libinjection $version SQLi | libinjection XSS | palisade SQL detector | palisade XSS detector | floor + both palisade detectors | palisade engine, whole body |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for b in workload64k post64k; do
  values=$work/$b.values
  lines=$(wc -l <"$values")
  li_sqli=$(median3 per_pass "$work/libinjection_values" "$values" sqli)
  li_xss=$(median3 per_pass "$work/libinjection_values" "$values" xss)
  p_sqli=$(median3 per_pass "$profile_detect" sqli 300 "$values")
  p_xss=$(median3 per_pass "$profile_detect" xss 300 "$values")
  parse=$(median3 iteration_us "$profile" serde 300 "$work/$b.json")
  sum=$(awk -v a="$parse" -v b="$p_sqli" -v c="$p_xss" 'BEGIN { printf "%.1f", a + b + c }')
  if [ "$b" = workload64k ]; then
    eng=$(median3 iteration_us "$profile" json 300)
  else
    eng=$(median3 iteration_us "$profile" file 300 "$work/post64k.json")
  fi
  echo "| $b | $lines | $parse µs | $li_sqli µs | $li_xss µs | $p_sqli µs | $p_xss µs | $sum µs | $eng µs |"
done
echo
echo "Each detector checks every string value once per pass (microseconds per pass, median of three"
echo "runs, CPU $cpu). The parse floor is serde_json reading the body and keeping nothing. The engine"
echo "column is one whole inspection (the 1 KB head included, ~9 µs): every rule, both detectors,"
echo "decoding layers, the JSON reader. Work directory: $work"
