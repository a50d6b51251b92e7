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

/*
 * ck's slow path sleeps in growing steps (initial_wait_ns, x8, ...) and
 * checks the caller's deadline only between steps, so a 3 ms timeout could
 * sleep a whole step. The predicate, which ck calls before each sleep with
 * the step's partial deadline, clamps that deadline to ours.
 */
static int clamp_to_deadline(const struct ck_ec_wait_state *state,
                             struct timespec *partial)
{
    const struct timespec *dl = state->data;
    if (dl->tv_sec < partial->tv_sec ||
        (dl->tv_sec == partial->tv_sec && dl->tv_nsec < partial->tv_nsec))
        *partial = *dl;
    return 0;
}

int ferry__ec_wait(struct ck_ec32 *ec, uint32_t old, uint64_t deadline_ns)
{
    if (deadline_ns == 0)
        return ck_ec32_wait(ec, &ferry__ec_mode, old, NULL) == 0 ? 0
                                                                 : -ETIMEDOUT;
    struct timespec ts = ferry__ns_to_ts(deadline_ns);
    int rc = ck_ec32_wait_pred(ec, &ferry__ec_mode, old, clamp_to_deadline, &ts,
                               &ts);
    return rc == 0 ? 0 : -ETIMEDOUT;
}
