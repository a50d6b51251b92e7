#!/usr/bin/env python3
"""Model-check a Promela model with spin and check the outcome (issue 6).

Usage: run_model.py [--spin SPIN] [--cc CC] [-D NAME[=VAL]]... MODEL VARIANT
                    [EXPECTED]

VARIANT names a row of VARIANTS below: the -D flags it gives spin and
what must come out.
- "pass": an exhaustive depth-first search (pan -DSAFETY) reports
  errors: 0, did not hit the depth bound, and leaves no statement of the
  model's threads unreached (a model whose protocol code went dead would
  pass vacuously). A pass row may list several runs (a list of flag
  lists, e.g. two sizes of the model): each must pass, and a statement is
  dead only if every run leaves it unreached (spin numbers a proctype's
  statements the same way whatever -D sizes it is given).
- "fail": a breadth-first search (pan -DSAFETY -DBFS, which finds a
  shortest counter-example) reports at least one error and writes a
  trail; the trail is replayed with spin -t -p, and every line of EXPECTED
  (blank lines and '#' comments skipped) must occur, as a substring, in
  some line of the replay, in order. The model prints its events as
  "@ ..." lines, so expectations name events, not spin's step numbers.

Everything runs in a temporary directory: spin -a writes pan.* into the
current directory and pan writes the trail next to the model it was
given, so the model is copied there first. Exit status: 0 pass, 1 fail,
77 skip (spin or the compiler not found; meson counts it as skipped).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

# name -> (spin flags, expected outcome, proctypes allowed dead code)
VARIANTS = {
    # loop/wakeup.pml
    "ok": ([], "pass", ()),
    "no_producer_fence": (["-DNO_PRODUCER_FENCE"], "fail", ()),
    "no_loop_fence": (["-DNO_LOOP_FENCE"], "fail", ()),
    "rearm_on_read": (["-DREARM_ON_READ"], "pass", ()),
    "double_write": (["-DREARM_ON_READ", "-DONE_WRITE_PER_SLEEP"], "fail", ()),
    # locked RMWs drain the buffer, so pushes are never buffered
    "x86_no_producer_fence": (["-DX86_LOCKED_RMW", "-DNO_PRODUCER_FENCE"],
                              "pass", ("pflush",)),
    # executor/park.pml: two sizes, which between them reach every
    # statement (a split pop needs 3 tasks queued at once with 2 cores);
    # together (-DNSUB=3 -DNNEST=1) it was 17.7 M states before the pop
    # could find the lock held, too many for CI
    "park_ok": ([[], ["-DNSUB=3", "-DNNEST=0"]], "pass", ()),
    "park_no_notify_fence": (["-DNO_NOTIFY_FENCE"], "fail", ()),
    "park_no_park_fence": (["-DNO_PARK_FENCE"], "fail", ()),
    # x86 with glibc: lock, unlock and RMWs are locked instructions, which
    # drain the store buffer, so neither fence is needed for this
    # property there (C11 and ARM need both); a nested task's deque push
    # stays buffered, but its own worker takes it before it can park
    "park_x86_no_fences": ([["-DX86_LOCKED_RMW", "-DNO_NOTIFY_FENCE",
                             "-DNO_PARK_FENCE"],
                            ["-DX86_LOCKED_RMW", "-DNO_NOTIFY_FENCE",
                             "-DNO_PARK_FENCE", "-DNSUB=3", "-DNNEST=0"]],
                           "pass", ("flush",)),
    # executor/monitor.pml
    "monitor_ok": ([], "pass", ()),
    "monitor_fast_first": (["-DFAST_FIRST"], "fail", ()),
}

# park_ok stores 10.7 M states (1.4 GB) since the pop may find the lock held
PAN_CFLAGS = ["-O2", "-w", "-DSAFETY", "-DMEMLIM=4096"]  # MB
PAN_ARGS = ["-m200000"]  # depth bound; hitting it fails a "pass" run
TIME_LIMIT = 240  # seconds per spin, gcc or pan run


def run(cmd, cwd, log):
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          timeout=TIME_LIMIT)
    out = proc.stdout + proc.stderr
    log.append(f"$ {' '.join(cmd)}  ({time.monotonic() - t0:.2f} s)\n{out}")
    return proc.returncode, out


def unreached(pan_out, allowed):
    """Statements pan reports unreached, except end states, the
    watchdog's failure branch and the proctypes in allowed, as a dict
    from (proctype, "file:line, state N") to the report line."""
    bad = {}
    proc = None
    for line in pan_out.splitlines():
        m = re.match(r"unreached in (?:proctype|init) ?(\S*)", line)
        if m:
            proc = m.group(1) or "init"
            continue
        if proc and line.startswith("\t") and "state" in line:
            if "-end-" in line or proc == "watchdog" or proc in allowed:
                continue
            if re.match(r"\t\(\d+ of \d+ states\)", line):
                continue
            where = re.match(r"\t(\S+, state \d+)", line)
            key = (proc, where.group(1) if where else line.strip())
            bad[key] = f"{proc}: {line.strip()}"
    return bad


def in_order(expected, lines):
    i = 0
    for line in lines:
        if i < len(expected) and expected[i] in line:
            i += 1
    return i


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spin", default="spin")
    ap.add_argument("--cc", default="gcc")
    ap.add_argument("-D", dest="defines", action="append", default=[],
                    help="extra spin -D (e.g. NPOST=3)")
    ap.add_argument("model")
    ap.add_argument("variant", choices=sorted(VARIANTS))
    ap.add_argument("expected", nargs="?")
    a = ap.parse_args()

    spin = shutil.which(a.spin)
    cc = shutil.which(a.cc)
    if spin is None or cc is None:
        print(f"SKIP: {a.spin if spin is None else a.cc} not found")
        return 77
    flags, outcome, allowed = VARIANTS[a.variant]
    runs = flags if flags and isinstance(flags[0], list) else [flags]
    extra = ["-D" + d for d in a.defines]
    runs = [r + extra for r in runs]
    if outcome == "fail" and (a.expected is None or len(runs) != 1):
        ap.error(f"variant {a.variant} needs an EXPECTED file and one run")

    log = []
    with tempfile.TemporaryDirectory(prefix="ferry-spin-") as tmp:
        model = os.path.basename(a.model)
        shutil.copy(a.model, os.path.join(tmp, model))
        dead = None
        for flags in runs:
            rc, out = run([spin] + flags + ["-a", model], tmp, log)
            if rc != 0:
                return fail(log, "spin -a failed")
            cflags = PAN_CFLAGS + (["-DBFS"] if outcome == "fail" else [])
            rc, out = run([cc] + cflags + ["-o", "pan", "pan.c"], tmp, log)
            if rc != 0:
                return fail(log, "compiling pan.c failed")
            t0 = time.monotonic()
            rc, pan_out = run(["./pan"] + PAN_ARGS, tmp, log)
            secs = time.monotonic() - t0
            m = re.search(r"errors: (\d+)", pan_out)
            if m is None:
                return fail(log, "pan gave no verdict (memory bound?)")
            errors = int(m.group(1))
            stored = re.search(r"(\d+) states, stored", pan_out)
            depth = re.search(r"depth reached (\d+)", pan_out)
            print(f"{a.variant} {' '.join(flags)}: "
                  f"{stored.group(1) if stored else '?'} states stored, "
                  f"depth {depth.group(1) if depth else '?'}, "
                  f"errors {errors}, {secs:.2f} s")
            if re.search(r"out of memory|MEMLIM", pan_out):
                return fail(log, "pan ran out of memory")
            if outcome == "fail":
                break
            if errors != 0:
                return fail(log, f"expected errors: 0, got {errors}")
            if "max search depth too small" in pan_out:
                return fail(log, "search truncated: raise the depth bound")
            this = unreached(pan_out, allowed)
            dead = this if dead is None else {k: v for k, v in dead.items()
                                              if k in this}

        if outcome == "pass":
            if dead:
                return fail(log, "unreached statements:\n  " +
                            "\n  ".join(dead.values()))
            print("OK: no errors in an exhaustive search")
            return 0

        if errors == 0:
            return fail(log, "expected a counter-example, spin found none")
        if not os.path.exists(os.path.join(tmp, model + ".trail")):
            return fail(log, "pan reported an error but wrote no trail")
        rc, replay = run([spin] + flags + ["-t", "-p", model], tmp, log)
        lines = [l.strip() for l in replay.splitlines()]
        events = [l for l in lines if l.startswith("@ ")]
        print("counter-example events:")
        for e in events:
            print("  " + e)
        with open(a.expected, encoding="utf-8") as f:
            expected = [l.rstrip("\n") for l in f
                        if l.strip() and not l.startswith("#")]
        n = in_order(expected, lines)
        if n < len(expected):
            return fail(log, "expected line not found in order in the "
                        f"replay: {expected[n]!r}")
        print(f"OK: counter-example found; {len(expected)} expected lines "
              "in order")
        return 0


def fail(log, why):
    sys.stdout.write("\n".join(log))
    print(f"FAIL: {why}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
