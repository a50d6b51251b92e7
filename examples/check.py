#!/usr/bin/env python3
"""Run an example and check its output.

Usage: check.py EXPECTED EXE [ARGS...]

Every line of EXPECTED must begin some line of the example's standard
output, in the same order (other lines may come between: the example's
timing-dependent lines). The example must exit 0 within 60 s.
"""
import subprocess
import sys


def main():
    expected_path, cmd = sys.argv[1], sys.argv[2:]
    with open(expected_path, encoding="utf-8") as f:
        expected = [l.rstrip("\n") for l in f if l.strip()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    out = proc.stdout.splitlines()
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        print(f"FAIL: exit status {proc.returncode}")
        return 1
    i = 0
    for line in out:
        if i < len(expected) and line.startswith(expected[i]):
            i += 1
    if i < len(expected):
        print(f"FAIL: expected line not found in order: {expected[i]!r}")
        return 1
    print(f"OK: {len(expected)} expected lines in order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
