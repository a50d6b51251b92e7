#!/usr/bin/env bash
# Run a test binary over and over; when one of its child processes (a
# forked child, say) is older than AGE seconds, dump every thread's stack
# with gdb into OUT and stop. For rare hangs such as the one
# tests/stress_races_fork saw once (session 3's closing note).
#   scripts/catch_hang.sh build/dev/tests/stress_races_fork [runs] [age] [out]
# Each run gets a random MALLOC_PERTURB_, as meson gives.
set -u
bin=$1 runs=${2:-200} age=${3:-5} out=${4:-catch_hang.out}
for k in $(seq "$runs"); do
  MALLOC_PERTURB_=$((RANDOM % 255 + 1)) "$bin" > /dev/null 2>&1 &
  parent=$!
  while kill -0 "$parent" 2>/dev/null; do
    sleep 1
    for child in $(pgrep -P "$parent"); do
      t=$(ps -o etimes= -p "$child" 2>/dev/null | tr -d ' ')
      if [ -n "$t" ] && [ "$t" -gt "$age" ]; then
        echo "run $k: child $child is $t s old" >> "$out"
        gdb -p "$child" -batch -ex "thread apply all bt 30" >> "$out" 2>&1
        kill -9 "$child"; kill "$parent"
        echo "caught: see $out"; exit 1
      fi
    done
  done
  wait "$parent" || echo "run $k: exit status $?" >> "$out"
done
echo "$runs runs, no hang"
