#!/usr/bin/env bash
# The README's main command: install what is needed, build ferry in release
# mode and run its benchmark. Extra arguments go to the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
if [ ! -f build/release/build.ninja ]; then
  meson setup build/release --buildtype=release >/dev/null
fi
ninja -C build/release >/dev/null
exec build/release/bench/ferry-bench "$@"
