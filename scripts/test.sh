#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test of every crate against real servers
# (ClickHouse is started when missing). Run from anywhere: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

scripts/start-clickhouse.sh

# The shell scripts parse (the benchmark scripts are not run by the suite).
for f in scripts/*.sh scripts/lib/*.sh deploy/*.sh .ci/run; do
  bash -n "$f"
done
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast
fi
