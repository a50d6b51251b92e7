#!/usr/bin/env python3
"""Write the fuzz_api seed corpus: small hand-written programs, one file each.

Each instruction is 4 bytes [op, a, b, c]; the op numbers are read from
`enum op` in fuzz_main.c, so the seeds follow the interpreter. The meaning
of a, b and c per op is in fuzz_main.c (the op table) and the fz_op_*
functions it names (fuzz_loop.c, fuzz_future.c and the others).

Usage: tests/fuzz/make_corpus.py [outdir]   (default: tests/fuzz/corpus)
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def read_ops():
    src = open(os.path.join(HERE, "fuzz_main.c")).read()
    body = re.search(r"enum op \{(.*?)\};", src, re.S).group(1)
    names = [n.strip() for n in body.split(",") if n.strip()]
    return {n[3:]: i for i, n in enumerate(names)}


OPS = read_ops()


def prog(*instrs):
    out = bytearray()
    for ins in instrs:
        name, args = ins[0], list(ins[1:]) + [0, 0, 0]
        out += bytes([OPS[name], args[0] & 255, args[1] & 255, args[2] & 255])
    return bytes(out)


def I(name, a=0, b=0, c=0):
    return (name, a, b, c)


SEEDS = {
    # call_soon with and without handles, cancel, FIFO, stop, run_forever,
    # close and free; a callback that chains another call_soon.
    "01_loop_basics": prog(
        I("LOOP_NEW", 0), I("CALL_SOON", 0, 0x08), I("CALL_SOON", 0, 0x01, 1),
        I("CALL_SOON", 0, 0x10), I("HANDLE_CANCEL", 0), I("RUN_ONCE", 0),
        I("RUN_ONCE", 0), I("HANDLE_CANCEL", 0), I("STOP", 0),
        I("RUN_FOREVER", 0, 1), I("CALL_SOON", 0, 0x03), I("RUN_FOREVER", 0),
        I("HANDLE_UNREF", 0), I("CLOSE", 0), I("CALL_SOON", 0), I("CLOSE", 0),
        I("FREE", 0)),
    # timers: every delay, call_at, cancel before and after, blocking
    # run_once with timeouts, a long timer disposed by close.
    "02_timers": prog(
        I("LOOP_NEW", 1), I("CALL_LATER", 1, 0x08), I("CALL_LATER", 1, 0x09),
        I("CALL_LATER", 1, 0x0a), I("CALL_LATER", 1, 0x0b),
        I("CALL_LATER", 1, 0x0c), I("CALL_LATER", 1, 0x46),
        I("CALL_LATER", 1, 0x07), I("HANDLE_CANCEL", 2), I("RUN_ONCE", 1, 5),
        I("RUN_ONCE", 1, 4), I("RUN_ONCE", 1, 5), I("HANDLE_CANCEL", 0),
        I("CALL_LATER", 1, 0x00, 0x02), I("RUN_ONCE", 1, 5),
        I("RUN_ONCE", 1, 5), I("FREE", 1), I("HANDLE_CANCEL", 4)),
    # thread-safe posts from this thread and the helper, in order, a
    # blocking run_once woken by a post, close racing helper posts.
    "03_posts": prog(
        I("LOOP_NEW", 0), I("POST", 0, 0x01), I("POST", 0, 0x03),
        I("POST", 0, 0x00), I("POST", 0, 0x11), I("RUN_ONCE", 0, 6),
        I("HELPER_SYNC"), I("RUN_ONCE", 0, 5), I("POST", 0, 0x0d, 1),
        I("POST", 0, 0x61), I("POST", 0, 0x01), I("POST", 0, 0x01),
        I("CLOSE", 0), I("POST", 0, 0x01), I("POST", 0, 0x00),
        I("HELPER_SYNC"), I("FREE", 0)),
    # fd watchers on the socketpair: readers, writers, replace, remove in
    # the callback, bad fds, EOF after shutdown, and close with watchers.
    "04_watchers": prog(
        I("LOOP_NEW", 2, 5), I("ADD_WATCH", 2, 0x00, 0), I("SOCK", 2, 0x1d),
        I("RUN_ONCE", 2), I("ADD_WATCH", 2, 0x03, 0), I("RUN_ONCE", 2),
        I("ADD_WATCH", 2, 0x03, 2), I("RUN_ONCE", 2), I("RUN_ONCE", 2),
        I("ADD_WATCH", 2, 0x04), I("ADD_WATCH", 2, 0x06), I("ADD_WATCH", 2, 0x08),
        I("REMOVE_WATCH", 2, 0x04), I("REMOVE_WATCH", 2, 0x06),
        I("ADD_WATCH", 2, 0x02, 3), I("SOCK", 2, 0x01), I("RUN_ONCE", 2),
        I("RUN_ONCE", 2), I("SOCK", 2, 0x02), I("ADD_WATCH", 2, 0x00, 1),
        I("RUN_ONCE", 2), I("REMOVE_WATCH", 2, 0x00), I("REMOVE_WATCH", 2, 0x00),
        I("ADD_WATCH", 2, 0x01, 0), I("CLOSE", 2), I("ADD_WATCH", 2, 0x00),
        I("REMOVE_WATCH", 2, 0x00)),
    # run_in_executor on the persistent, per-input and default pools, with
    # and without dtor, cancels before and while running, helper waits,
    # run_until_complete.
    "05_offload": prog(
        I("LOOP_NEW", 0), I("RUN_IN_EXECUTOR", 0, 0x04, 0x00),
        I("RUN_IN_EXECUTOR", 0, 0x04, 0x1c), I("RUN_IN_EXECUTOR", 0, 0x00, 0x01),
        I("RUN_IN_EXECUTOR", 0, 0x06, 0x0e), I("RUN_IN_EXECUTOR", 0, 0x03),
        I("RUN_IN_EXECUTOR", 0, 0x04, 0x03), I("FUTURE_CANCEL", 5),
        I("FUTURE_CANCEL", 2), I("FUTURE_WAIT", 1, 0x07), I("FUTURE_WAIT", 0),
        I("RUN_UNTIL_COMPLETE", 0, 0), I("RUN_UNTIL_COMPLETE", 0, 1),
        I("RUN_ONCE", 0, 5), I("FUTURE_RESULT", 3), I("FUTURE_UNREF", 2),
        I("RUN_IN_EXECUTOR", 0, 0x05, 0x18), I("RUN_IN_EXECUTOR", 0, 0x80)),
    # free-standing futures from the pools, waits, wrap onto a loop.
    "06_submit_future": prog(
        I("LOOP_NEW", 1), I("SUBMIT_FUTURE", 0, 0, 0x14), I("SUBMIT_FUTURE", 1, 0, 0x05),
        I("SUBMIT_FUTURE", 0x0b, 0, 0x1a), I("SUBMIT_FUTURE", 0, 2),
        I("FUTURE_WAIT", 0, 0), I("HELPER_SYNC"), I("WRAP", 1, 0),
        I("WRAP", 1, 1), I("FUTURE_WAIT", 1, 0x05), I("RUN_ONCE", 1, 5),
        I("RUN_UNTIL_COMPLETE", 1, 3), I("FUTURE_CANCEL", 1, 1)),
    # run_threadsafe from the loop's thread and from the helper (waits,
    # cancels), then the loop runs or closes under them.
    "07_run_threadsafe": prog(
        I("LOOP_NEW", 0), I("RUN_THREADSAFE", 0, 0x02, 0), I("RUN_THREADSAFE", 0, 0x00, 1),
        I("RUN_THREADSAFE", 0, 0x07, 0), I("RUN_THREADSAFE", 0, 0x13, 2),
        I("RUN_THREADSAFE", 0, 0x0b, 0), I("HELPER_SYNC"), I("RUN_ONCE", 0),
        I("RUN_THREADSAFE", 0, 0x03, 1), I("HELPER_SYNC"), I("CLOSE", 0),
        I("RUN_THREADSAFE", 0, 0x03, 0), I("RUN_THREADSAFE", 0, 0x00, 0)),
    # promises: completion from both threads, twice, after a cancel,
    # every completion form, unref before and after.
    "08_promises": prog(
        I("LOOP_NEW", 0), I("PROMISE_NEW", 0), I("PROMISE_NEW", 0), I("PROMISE_NEW", 0),
        I("PROMISE_NEW", 0), I("PROMISE_COMPLETE", 0, 0, 0),
        I("PROMISE_COMPLETE", 0, 1, 0), I("PROMISE_COMPLETE", 0, 0, 2),
        I("FUTURE_CANCEL", 1), I("PROMISE_COMPLETE", 1, 0, 5),
        I("PROMISE_COMPLETE", 2, 1, 3), I("PROMISE_COMPLETE", 2, 0, 4),
        I("PROMISE_COMPLETE", 3, 0, 6), I("PROMISE_UNREF", 3),
        I("RUN_ONCE", 0), I("HELPER_SYNC"), I("RUN_ONCE", 0),
        I("PROMISE_COMPLETE", 0, 1, 5), I("PROMISE_UNREF", 0),
        I("PROMISE_NEW", 0), I("PROMISE_COMPLETE", 4, 1, 4), I("CLOSE", 0),
        I("PROMISE_COMPLETE", 4, 0, 1), I("PROMISE_NEW", 0)),
    # plain futures: set from both threads (owner-only form from the
    # helper is refused), errors, invalid errors, done callbacks added and
    # removed, results read twice.
    "09_futures": prog(
        I("LOOP_NEW", 2), I("FUTURE_NEW", 2), I("FUTURE_NEW", 0, 1),
        I("FUTURE_NEW", 2), I("ADD_DONE", 0, 0x06), I("ADD_DONE", 0, 0x01),
        I("ADD_DONE", 1), I("REMOVE_DONE", 0, 1), I("FUTURE_SET", 0, 0, 0),
        I("FUTURE_SET", 0, 0, 1), I("FUTURE_SET", 1, 1, 0), I("FUTURE_SET", 1, 0, 4),
        I("FUTURE_SET", 2, 1, 0), I("FUTURE_SET", 2, 1, 2), I("FUTURE_SET", 2, 0, 2),
        I("FUTURE_SET", 2, 0, 3), I("HELPER_SYNC"), I("RUN_ONCE", 2),
        I("ADD_DONE", 0), I("FUTURE_RESULT", 0), I("FUTURE_RESULT", 2),
        I("FUTURE_WAIT", 1), I("REMOVE_DONE", 0, 2), I("RUN_ONCE", 2),
        I("FUTURE_UNREF", 1), I("FUTURE_NEW", 2, 0x80)),
    # composition: timeout (firing and not), then chains, wrap of a future
    # of another loop, on closed loops.
    "10_compose": prog(
        I("LOOP_NEW", 0), I("LOOP_NEW", 1), I("FUTURE_NEW", 0), I("TIMEOUT", 0, 1),
        I("THEN", 0, 0x10), I("THEN", 1, 0x01), I("WRAP", 1, 0), I("TIMEOUT", 3, 4),
        I("RUN_IN_EXECUTOR", 0, 0x04, 0x18), I("TIMEOUT", 4, 2), I("THEN", 4, 0x10),
        I("RUN_ONCE", 0, 5), I("RUN_ONCE", 0, 5), I("RUN_ONCE", 1, 5),
        I("FUTURE_SET", 0, 0, 0), I("RUN_UNTIL_COMPLETE", 0, 5),
        I("TIMEOUT", 0, 6), I("CLOSE", 1), I("THEN", 3, 2), I("WRAP", 1, 4),
        I("TIMEOUT", 3, 0), I("RUN_ONCE", 0)),
    # a per-input pool: limits, try_submit, task handles from both threads,
    # groups, shutdown (drain, cancel, invalid, from the helper), submits
    # after it, a new pool after the old one is shut.
    "11_pool": prog(
        I("POOL_NEW", 1, 2, 2), I("POOL_SUBMIT", 1, 0x0d, 0x18), I("POOL_SUBMIT", 1, 0x0c, 0x14),
        I("POOL_SUBMIT", 1, 0x0c, 0x1c), I("POOL_SUBMIT", 1, 0x06), I("POOL_SUBMIT", 2, 0),
        I("TASK", 0, 0), I("TASK", 1, 1), I("TASK", 2, 2), I("TASK", 1, 6),
        I("GROUP", 1, 0x13, 0x0c), I("GROUP", 0, 2, 0x08), I("LOOP_NEW", 0),
        I("RUN_IN_EXECUTOR", 0, 0x05, 0x1c), I("POOL_SHUTDOWN", 2),
        I("POOL_SHUTDOWN", 1, 0x04), I("POOL_SUBMIT", 1, 0x04), I("GROUP", 1, 1),
        I("RUN_IN_EXECUTOR", 0, 0x05), I("SUBMIT_FUTURE", 0, 1),
        I("TASK", 0, 3), I("POOL_NEW", 0, 0, 0x04), I("SUBMIT_FUTURE", 1, 1, 0x1d),
        I("POOL_SHUTDOWN", 0, 1, 1), I("POOL_SUBMIT", 1, 0x01)),
    # the process-wide default pool: offload, shut it down from one loop
    # (that loop is refused afterwards, another gets a fresh pool).
    "12_default_pool": prog(
        I("LOOP_NEW", 0), I("LOOP_NEW", 1), I("RUN_IN_EXECUTOR", 0, 0x06, 0x14),
        I("RUN_IN_EXECUTOR", 1, 0x06, 0x18), I("SHUTDOWN_DEFAULT", 0, 1),
        I("RUN_IN_EXECUTOR", 0, 0x06), I("RUN_IN_EXECUTOR", 1, 0x06, 0x10),
        I("SHUTDOWN_DEFAULT", 1, 3), I("SHUTDOWN_DEFAULT", 1, 0),
        I("SHUTDOWN_DEFAULT", 0, 0, 1), I("RUN_ONCE", 0, 5), I("RUN_ONCE", 1, 5)),
    # every owner-only call from the wrong thread (-EPERM), stale handles
    # after the loop is freed, a loop freed while the helper holds it.
    "13_wrong_thread": prog(
        I("LOOP_NEW", 0), I("CALL_LATER", 0, 0x0c),
        *[I("LOOP_MISC", 0, 5 + 8 * k) for k in range(14)],
        I("CALL_SOON", 0, 0x80), I("CALL_LATER", 0, 0x80), I("RUN_ONCE", 0, 0x80),
        I("ADD_WATCH", 0, 0x40), I("REMOVE_WATCH", 0, 0x40), I("CLOSE", 0, 1),
        I("FREE", 0, 1), I("FUTURE_NEW", 0, 0x80), I("PROMISE_NEW", 0, 0x80),
        I("RUN_IN_EXECUTOR", 0, 0x80), I("WRAP", 0, 0, 1), I("SHUTDOWN_DEFAULT", 0, 0, 1),
        I("HANDLE_CANCEL", 0, 1), I("FREE", 0), I("HANDLE_CANCEL", 0),
        I("HANDLE_CANCEL", 0, 1), I("HELPER_SYNC")),
    # invalid arguments: every case of op_invalid.
    "14_invalid": prog(*[I("INVALID", k) for k in range(40)]),
    # re-entry from callbacks: nested runs, close/free of the running loop
    # refused, cancels of handles from callbacks, closing another loop.
    "15_reentry": prog(
        I("LOOP_NEW", 0), I("LOOP_NEW", 1), I("LOOP_NEW", 2), I("CALL_SOON", 0, 0x0c),
        I("CALL_SOON", 0, 0x0d, 0), I("CALL_SOON", 1, 0x0d, 0), I("CALL_LATER", 1, 0x08, 0x05),
        I("CALL_SOON", 0, 0x0e), I("CALL_SOON", 0, 0x0f), I("POST", 2, 0x0c),
        I("RUN_ONCE", 0), I("RUN_ONCE", 1), I("RUN_ONCE", 2), I("RUN_ONCE", 0),
        I("FUTURE_NEW", 2), I("ADD_DONE", 0, 0x08), I("FUTURE_CANCEL", 0),
        I("RUN_ONCE", 2), I("CALL_SOON", 2, 0x07, 1), I("RUN_ONCE", 2)),
    # embedding and queries: ferry_loop_fd, ferry_loop_timeout, the slow
    # callback hook, after_fork outside a child, "Thread: any" queries.
    "16_misc": prog(
        I("LOOP_NEW", 1), I("LOOP_MISC", 1, 0), I("POST", 1, 0x01), I("HELPER_SYNC"),
        I("LOOP_MISC", 1, 1), I("RUN_ONCE", 1, 5), I("LOOP_MISC", 1, 2),
        I("CALL_SOON", 1), I("CALL_LATER", 1, 0x0b), I("LOOP_MISC", 1, 1),
        I("RUN_ONCE", 1, 5), I("LOOP_MISC", 1, 3), I("LOOP_MISC", 1, 4 + 8),
        I("LOOP_MISC", 1, 4 + 0x40), I("LOOP_MISC", 1, 0x42), I("HELPER_SYNC"),
        I("CLOSE", 1), I("LOOP_MISC", 1, 0), I("LOOP_MISC", 1, 1)),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
