#!/usr/bin/env bash
# Build and run the lexer fuzz target without cargo-fuzz (same flags cargo-fuzz uses).
# Usage: fuzz/run-lexer.sh [seconds, default 60]
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# an explicit --target keeps the sanitizer flags out of build scripts (as cargo-fuzz does)
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --bin lexer --target "$host"
mkdir -p corpus/lexer artifacts/lexer
exec "./target/$host/release/lexer" corpus/lexer -artifact_prefix=artifacts/lexer/ \
    -max_total_time="${1:-60}" -max_len=512 -dict=lexer.dict
