/*
 * bench/wl_ferry.h: what wl_ferry.c and wl_ferry_bridge.c share: ferry's
 * headers, the guard that bounds every run of a ferry loop, and the
 * bridge workloads' run functions (registered in wl_ferry.c).
 */
#ifndef FERRY_BENCH_WL_FERRY_H
#define FERRY_BENCH_WL_FERRY_H

#include "bench.h"

#ifdef FERRY_BENCH_HAVE_LOOP
#include "ferry/future.h"
#include "ferry/loop.h"
#ifdef FERRY_BENCH_HAVE_BRIDGE
#include "ferry/bridge.h"
#endif

/*
 * A guard against lost wake-ups: a 100 ms timer on the measuring loop that
 * stops it once deadline passed or *error became non-zero, and re-arms
 * itself otherwise. A guard still pending when the loop is freed is simply
 * dropped (no dispose). Loop thread only.
 */
struct bench_guard {
    ferry_loop *loop;
    uint64_t deadline;  /* bench_now() after which the run fails */
    _Atomic int *error; /* a producer's error, or NULL */
    bool fired;         /* the guard stopped the loop */
};

int bench_guard_arm(struct bench_guard *g, ferry_loop *loop,
                    _Atomic int *error);
void bench_guard_cb(void *arg);

#ifdef FERRY_BENCH_HAVE_BRIDGE
int bench_ferry_run_rtt(struct bench_ctx *c);
int bench_ferry_run_tput(struct bench_ctx *c);
int bench_ferry_run_tiny(struct bench_ctx *c);
int bench_ferry_run_idle(struct bench_ctx *c);
#endif
#endif /* FERRY_BENCH_HAVE_LOOP */

#endif /* FERRY_BENCH_WL_FERRY_H */
