#!/usr/bin/env bash
# Run the libFuzzer target for a bounded time (meson test fuzz_api_run).
# Usage: run_fuzz.sh FUZZER SEED_DIR BUILD_DIR
# The seeds are copied into BUILD_DIR/fuzz-corpus (libFuzzer adds what it
# finds there, never to the source tree); a failing input goes to
# BUILD_DIR/fuzz-artifacts. FERRY_FUZZ_SECONDS (60) bounds the run. The
# full libFuzzer log is BUILD_DIR/fuzz.log: on success only its summary
# is printed, on failure its tail (the report and the input).
# -detect_leaks=0: no LeakSanitizer check between inputs, only at exit,
# after every thread is joined (fuzz_main.c, "LeakSanitizer and threads",
# says why: LSan skips live threads whose tid an unjoined dead one held).
set -uo pipefail
fuzzer=$1 seeds=$2 out=$3
secs=${FERRY_FUZZ_SECONDS:-60}
mkdir -p "$out/fuzz-corpus" "$out/fuzz-artifacts"
cp -n "$seeds"/* "$out/fuzz-corpus/" 2>/dev/null || true
"$fuzzer" -max_total_time="$secs" -timeout=10 -max_len=1024 \
  -rss_limit_mb=4096 -print_final_stats=1 -detect_leaks=0 \
  -artifact_prefix="$out/fuzz-artifacts/" "$out/fuzz-corpus" \
  >"$out/fuzz.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
  tail -n 120 "$out/fuzz.log"
  echo "run_fuzz: libFuzzer failed ($rc); inputs in $out/fuzz-artifacts" >&2
  exit 1
fi
grep -E '^(Done|stat::)' "$out/fuzz.log"
n=$(find "$out/fuzz-corpus" -type f | wc -l)
bytes=$(du -sb "$out/fuzz-corpus" | cut -f1)
echo "run_fuzz: corpus $n files, $bytes bytes (seeds: $(ls "$seeds" | wc -l))"
