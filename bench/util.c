/*
 * bench/util.c: small helpers every workload uses: the units of work
 * (spin, sleep, tiny arithmetic) and bounded waits.
 *
 * Bounded waits spin with cpu_relax for SPIN_ROUNDS, then yield the CPU on
 * every round, and give up after BENCH_WAIT_TIMEOUT_NS. Yielding matters on
 * this 2-core machine (and under valgrind, which runs one thread at a
 * time): the thread being waited for may need the CPU we are spinning on.
 *
 * Thread: any.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define SPIN_ROUNDS 4096

void bench_spin_ns(uint64_t ns)
{
    if (ns == 0)
        return;
    uint64_t end = bench_now() + ns;
    while (bench_now() < end)
        ferry__cpu_relax();
}

void bench_sleep_ns(uint64_t ns)
{
    if (ns == 0)
        return;
    struct timespec ts = ferry__ns_to_ts(ns);
    while (nanosleep(&ts, &ts) != 0)
        ; /* EINTR: sleep the remainder */
}

uint64_t bench_tiny_work(uint64_t seed)
{
    /* 32 rounds of xorshift64*: about 0.1 us, and no way for the compiler
     * to fold it because the result is summed into a checksum. */
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < 32; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x *= 0x2545F4914F6CDD1Dull;
    }
    return x;
}

bool bench_wait_u64(_Atomic uint64_t *p, uint64_t want)
{
    for (unsigned i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load_explicit(p, memory_order_acquire) >= want)
            return true;
        ferry__cpu_relax();
    }
    uint64_t deadline = bench_now() + BENCH_WAIT_TIMEOUT_NS;
    while (atomic_load_explicit(p, memory_order_acquire) < want) {
        if (bench_now() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

bool bench_wait_u32(_Atomic uint32_t *p, uint32_t want)
{
    for (unsigned i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load_explicit(p, memory_order_acquire) >= want)
            return true;
        ferry__cpu_relax();
    }
    uint64_t deadline = bench_now() + BENCH_WAIT_TIMEOUT_NS;
    while (atomic_load_explicit(p, memory_order_acquire) < want) {
        if (bench_now() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void *bench_zalloc_aligned(size_t size)
{
    size_t rounded =
        (size + FERRY__CACHELINE - 1) & ~(size_t)(FERRY__CACHELINE - 1);
    void *p = aligned_alloc(FERRY__CACHELINE, rounded);
    if (p != NULL)
        memset(p, 0, rounded);
    return p;
}

void bench_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ferry-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
