/*
 * common/futex.c: the two futex calls ferry needs, and nothing more.
 *
 * FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a wait
 * interrupted by a signal or a spurious wake resumes against the same
 * deadline without recomputing a relative timeout (algorithms.md §3.1).
 * PRIVATE: every futex word lives in process-private memory.
 *
 * Thread: any.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/base.h"

int ferry__futex_wait(_Atomic uint32_t *addr, uint32_t expected,
                      uint64_t deadline_ns)
{
    struct timespec ts;
    struct timespec *pts = NULL;
    if (deadline_ns != 0) {
        ts = ferry__ns_to_ts(deadline_ns);
        pts = &ts;
    }
    long rc = syscall(SYS_futex, (uint32_t *)addr,
                      FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, pts,
                      NULL, FUTEX_BITSET_MATCH_ANY);
    if (rc == -1 && errno == ETIMEDOUT)
        return -ETIMEDOUT;
    return 0;
}

void ferry__futex_wake(_Atomic uint32_t *addr, int count)
{
    (void)syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
                  count, NULL, NULL, 0);
}
