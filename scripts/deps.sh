#!/usr/bin/env bash
# Install what ferry needs to build, test and benchmark, from Debian's archive.
# Usage: scripts/deps.sh [extra packages...]   (root, or sudo available)
set -euo pipefail
pkgs=(meson ninja-build pkg-config gcc libc6-dev python3 libck-dev libcmocka-dev
      valgrind libuv1-dev gnuplot-nox "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
