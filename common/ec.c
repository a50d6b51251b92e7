/*
 * common/ec.c: the ck_ec_ops ferry gives concurrencykit's event counts.
 *
 * wait32 is FUTEX_WAIT_BITSET on the absolute CLOCK_MONOTONIC deadline ck
 * hands us; wake32 wakes every waiter (ck_ec is a broadcast primitive, so
 * it is used only where every waiter should wake: a future's completion).
 * initial_wait_ns is 1 s: ck's slow path re-arms the futex with growing
 * timeouts (2 ms, 16 ms, ...) as a guard for its single-producer mode; in
 * multi-producer mode the flag protocol needs no guard, so a long first
 * timeout keeps an idle waiter from waking needlessly (algorithms.md §3.2).
 *
 * Thread: any.
 */
#include <errno.h>

#include "common/base.h"
#include "common/ec.h"

static int gettime(const struct ck_ec_ops *ops, struct timespec *out)
{
    (void)ops;
    return clock_gettime(CLOCK_MONOTONIC, out);
}

static void wait32(const struct ck_ec_wait_state *state, const uint32_t *addr,
                   uint32_t expected, const struct timespec *deadline)
{
    (void)state;
    uint64_t dl = 0;
    if (deadline != NULL) {
        dl = (uint64_t)deadline->tv_sec * 1000000000u +
             (uint64_t)deadline->tv_nsec;
        if (dl == 0)
            dl = 1; /* an expired deadline, not "none" */
    }
    (void)ferry__futex_wait((_Atomic uint32_t *)(uintptr_t)addr, expected, dl);
}

static void wake32(const struct ck_ec_ops *ops, const uint32_t *addr)
{
    (void)ops;
    ferry__futex_wake((_Atomic uint32_t *)(uintptr_t)addr, 0x7fffffff);
}

static const struct ck_ec_ops ops = {
    .gettime = gettime,
    .wait32 = wait32,
    .wake32 = wake32,
    .initial_wait_ns = 1000000000u,
};

const struct ck_ec_mode ferry__ec_mode = {
    .ops = &ops,
    .single_producer = false,
};

int ferry__ec_wait(struct ck_ec32 *ec, uint32_t old, uint64_t deadline_ns)
{
    struct timespec ts;
    const struct timespec *dl = NULL;
    if (deadline_ns != 0) {
        ts = ferry__ns_to_ts(deadline_ns);
        dl = &ts;
    }
    return ck_ec32_wait(ec, &ferry__ec_mode, old, dl) == 0 ? 0 : -ETIMEDOUT;
}
