#!/usr/bin/env bash
# Profile-guided build of the gateway: the release binary laid out by what real requests run.
#
#   1. builds instrumented binaries (`-Cprofile-generate`) of `palisade` and of the bare Pingora
#      example in target/pgo-gen;
#   2. trains them: `palisade rules replay` of `attack-corpus/` (attacks of every class, benign
#      values, whole requests: the WAF engine on the traffic it judges), then the gateway under
#      `scripts/bench.sh --quick` (full protection and stages off, the five request shapes: get,
#      args, 4 KB and 64 KB JSON, an attack) and bare Pingora under `scripts/load.sh`;
#   3. merges the profiles with `llvm-profdata` (rustup's `llvm-tools` component, the LLVM of
#      this rustc; installed when missing);
#   4. builds `palisade` and the bare Pingora example with `-Cprofile-use` in target/pgo
#      (or --out DIR).
#
# Then run the benchmarks on those binaries (both proxies built the same way, so the ratios
# compare like with like):
#   CARGO_TARGET_DIR=target/pgo scripts/bench.sh --no-build ...
#   CARGO_TARGET_DIR=target/pgo scripts/load.sh --no-build ...
# and deploy target/pgo/release/palisade like the plain release binary (same features, same
# behaviour: only code layout, inlining and branch order change). docs/BENCHMARKS.md has the
# figures.
#
# usage: scripts/pgo.sh [--out DIR] [--skip-train]
#   --skip-train  reuse the profile of the last run (target/pgo-gen/merged.profdata)
# Needs what bench.sh and load.sh need: wrk (`apt-get install wrk`), curl, python3, and nginx
# (the peer's start.sh, ../shared/peers/nginx-modsec, installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=$root/target/pgo
train=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$(realpath -m "$2"); shift ;;
    --skip-train) train=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "pgo.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
gen=$root/target/pgo-gen
raw=$gen/profraw
merged=$gen/merged.profdata

sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$sysroot/lib/rustlib/$host/bin/llvm-profdata"
if ! [ -x "$profdata" ]; then
  echo "== rustup component add llvm-tools (llvm-profdata for this rustc's LLVM)"
  rustup component add llvm-tools
fi
[ -x "$profdata" ] || { echo "pgo.sh: $profdata missing" >&2; exit 1; }

if [ "$train" = 1 ]; then
  echo "== instrumented build in $gen"
  rm -rf "$raw"
  mkdir -p "$raw"
  CARGO_TARGET_DIR=$gen RUSTFLAGS="-Cprofile-generate=$raw" \
    cargo build --release --bin palisade --example bare_pingora
  echo "== training: the WAF engine on attack-corpus/ (paranoia 1 and 2)"
  "$gen/release/palisade" rules replay attack-corpus --rules rules --every 1 >/dev/null
  echo "== training: the gateway under scripts/bench.sh --quick (full protection, stages off)"
  CARGO_TARGET_DIR=$gen scripts/bench.sh --no-build --quick --systems full1,off \
    --latency-duration 0 --analytics-dest discard >/dev/null
  echo "== training: bare Pingora under scripts/load.sh"
  CARGO_TARGET_DIR=$gen scripts/load.sh --no-build --duration 3s >/dev/null
  # The proxies write their profiles when they exit (the scripts stop them with SIGTERM and
  # they drain first): wait for them.
  for _ in $(seq 1 30); do
    pgrep -f "$gen/release/" >/dev/null || break
    sleep 0.5
  done
  "$profdata" merge -o "$merged" "$raw"
fi
[ -f "$merged" ] || { echo "pgo.sh: no profile at $merged (run without --skip-train)" >&2; exit 1; }

echo "== profile-guided build in $out"
CARGO_TARGET_DIR=$out RUSTFLAGS="-Cprofile-use=$merged" \
  cargo build --release --bin palisade --example bare_pingora
# The benchmark scripts name the build in their tables when this note is beside the binary.
for b in "$out/release/palisade" "$out/release/examples/bare_pingora"; do
  echo "scripts/pgo.sh, profile of $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" >"$b.pgo"
done
echo "$out/release/palisade"
