#!/usr/bin/env python3
"""bench/smoke.py: ferry-bench --quick must run every built workload, verify
each one's work, and write JSON that parses. No timing is asserted.

Usage: smoke.py PATH/TO/ferry-bench
"""
import json
import os
import subprocess
import sys
import tempfile


def fail(msg):
    print("bench_smoke: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        csv = os.path.join(tmp, "out.csv")
        run = subprocess.run([exe, "--quick", "--json", out, "--csv", csv],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        print(run.stdout)
        if run.returncode != 0:
            fail("ferry-bench --quick exited with %d" % run.returncode)
        with open(out) as f:
            doc = json.load(f)
        with open(csv) as f:
            if not f.readline().startswith("section,workload,"):
                fail("CSV header missing")
    listing = subprocess.run([exe, "--list"], stdout=subprocess.PIPE,
                             text=True, check=True).stdout
    wls = doc["workloads"]
    built = [w for w in wls if w["built"]]
    if not built:
        fail("no workload is built")
    for w in wls:
        if w["name"] not in listing:
            fail("%s is in the JSON but not in --list" % w["name"])
        if not w["built"]:
            print("bench_smoke: %s not built (%s)" % (w["name"], w["missing"]))
            continue
        if not w["ran"]:
            fail("%s is built but did not run" % w["name"])
        if w["verified"] is not True:
            fail("%s did not verify: %s" % (w["name"], w["failure"]))
        if not w["metrics"]:
            fail("%s reported no metric" % w["name"])
    if doc["ok"] is not True:
        fail("JSON says ok=false")
    print("bench_smoke: %d workloads ran and verified, %d not built"
          % (len(built), len(wls) - len(built)))


if __name__ == "__main__":
    main()
