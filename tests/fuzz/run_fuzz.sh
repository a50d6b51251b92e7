#!/usr/bin/env bash
# Run the libFuzzer target for a bounded time (meson test fuzz_api_run).
# Usage: run_fuzz.sh FUZZER SEED_DIR BUILD_DIR
# The seeds are copied into BUILD_DIR/fuzz-corpus (libFuzzer adds what it
# finds there, never to the source tree); crashes go to
# BUILD_DIR/fuzz-artifacts. FERRY_FUZZ_SECONDS (60) bounds the run.
set -euo pipefail
fuzzer=$1 seeds=$2 out=$3
secs=${FERRY_FUZZ_SECONDS:-60}
mkdir -p "$out/fuzz-corpus" "$out/fuzz-artifacts"
cp -n "$seeds"/* "$out/fuzz-corpus/" 2>/dev/null || true
exec "$fuzzer" -max_total_time="$secs" -timeout=10 -max_len=1024 \
  -rss_limit_mb=4096 -print_final_stats=1 \
  -artifact_prefix="$out/fuzz-artifacts/" "$out/fuzz-corpus"
