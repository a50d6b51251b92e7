#!/usr/bin/env python3
"""A/B two builds of ferry-bench on one workload, in alternating pairs.

Usage: scripts/ab.py N BENCH_A BENCH_B [WORKLOAD [METRIC]]
  BENCH_A, BENCH_B  paths to two ferry-bench binaries (e.g. copies of
                    build/release/bench/ferry-bench from two commits)
  WORKLOAD          default ferry.tput; METRIC default tput

Runs N pairs of single-rep runs, A B then B A alternately, and prints the
geometric mean of the pair ratios B/A with a 95% interval (mean of the
logs +- 2 standard errors) and the median pair ratio. On the 2-core
development machine the log of one pair's ratio has a standard deviation
of about 0.33, so resolving 5% takes about 100 pairs (README, session 8).
"""
import json
import math
import statistics as st
import subprocess
import sys
import tempfile


def run(bench, workload, metric, out):
    subprocess.run([bench, workload, "--reps", "1", "--json", out],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    with open(out) as f:
        doc = json.load(f)
    for w in doc["workloads"]:
        if w["name"] == workload and w["ran"]:
            return w["metrics"][metric]["median"]
    raise SystemExit(f"{bench}: {workload} did not run")


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    n, a, b = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    workload = sys.argv[4] if len(sys.argv) > 4 else "ferry.tput"
    metric = sys.argv[5] if len(sys.argv) > 5 else "tput"
    if n < 2:
        raise SystemExit("N: at least 2 pairs")
    va, vb, logs = [], [], []
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        for i in range(n):
            if i % 2 == 0:
                x = run(a, workload, metric, tmp.name)
                y = run(b, workload, metric, tmp.name)
            else:
                y = run(b, workload, metric, tmp.name)
                x = run(a, workload, metric, tmp.name)
            va.append(x)
            vb.append(y)
            logs.append(math.log(y / x))
    m = st.mean(logs)
    se = st.stdev(logs) / math.sqrt(n)
    print(f"{workload} {metric}: {n} pairs, A median {st.median(va):.3g}, "
          f"B median {st.median(vb):.3g}")
    print(f"B/A geometric mean {math.exp(m):.3f} "
          f"(95% interval {math.exp(m - 2 * se):.3f}-{math.exp(m + 2 * se):.3f}), "
          f"median pair {math.exp(st.median(logs)):.3f}")


if __name__ == "__main__":
    main()
