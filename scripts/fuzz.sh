#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time each, on stable Rust:
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 60 s, all targets)
#
# libFuzzer through libfuzzer-sys, coverage-instrumented with stable rustc flags (SanitizerCoverage
# passes), without a sanitizer: Rust's own checks (bounds, overflow, debug assertions) catch the
# bugs a sanitizer would in this `forbid(unsafe_code)` code. With nightly and cargo-fuzz
# installed, `cd fuzz && cargo +nightly fuzz run TARGET` runs the same targets under ASan.
#
# Seeds: fuzz/seeds/TARGET (committed). New corpus entries go to $FUZZ_WORK/corpus/TARGET
# (default fuzz/work, ignored by git). A crash is written to $FUZZ_WORK/artifacts/TARGET/ and
# makes this script exit non-zero; fix it, then keep the input under a descriptive name in
# fuzz/regressions/TARGET/ (replayed by crates/waf/tests/fuzz_regressions.rs).
# The `config` target builds the gateway crate (Pingora) too: the first build takes minutes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(transforms detectors bodies raw_request rule_file config)
fi

host="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
# What cargo-fuzz passes, minus the sanitizer (which needs nightly). Applied only to the
# `--target` build, so build scripts and proc macros are not instrumented.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
work="${FUZZ_WORK:-$PWD/work}"

needs_config=0
bins=()
for t in "${targets[@]}"; do
  [ "$t" = config ] && needs_config=1
  bins+=(--bin "$t")
done
features=()
[ $needs_config -eq 1 ] && features=(--features config)
cargo build --release --target "$host" "${features[@]}" "${bins[@]}"

failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t" "seeds/$t"
  echo "== fuzz $t for ${secs}s"
  if ! "$CARGO_TARGET_DIR/$host/release/$t" "$work/corpus/$t" "seeds/$t" \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 2>"$work/$t.log"; then
    failed+=("$t")
    tail -n 30 "$work/$t.log"
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|^#[0-9]+ +DONE' "$work/$t.log" || true
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]} (inputs in $work/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each, no crash"
