/*
 * tests/stress_races.h: what the race programs stress_races_*.c share (the
 * races that broke the peers, issue 6 section 4; one executable per race).
 *
 * Each race runs for many iterations, each iteration counting every item,
 * and each iteration strikes (closes, shuts down, forks...) at a random
 * race_point. Counts come from the environment: each race reads its own
 * iteration count (FERRY_RACE_<NAME>), and FERRY_RACE_SECONDS is a time
 * box per race (60): a race that runs out of time stops early and says
 * so. The iteration counts are printed. Helper threads count into
 * atomics; only the test thread asserts (STYLE.md point 20).
 */
#ifndef FERRY_TESTS_STRESS_RACES_H
#define FERRY_TESTS_STRESS_RACES_H

#include <sched.h>
#include <string.h>

#include "common/base.h"
#include "helpers.h"

static inline long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static inline uint64_t seconds_ns(void)
{
    return (uint64_t)env_long("FERRY_RACE_SECONDS", 60) * 1000000000u;
}

/* xorshift32, one state per thread */
static inline unsigned rnd(unsigned *s)
{
    unsigned x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static inline void spin(unsigned n)
{
    for (volatile unsigned i = 0; i < n; i++)
        ;
}

/* Where to strike: after a random delay, or (every other time) once the
 * other threads have made a random amount of progress (*done, out of
 * span), so that slow thread starts under the sanitizers do not make
 * every strike land before the race began. */
static inline void race_point(unsigned *seed, _Atomic long *done, long span)
{
    if (rnd(seed) % 2 == 0) {
        spin(rnd(seed) % 20000);
        return;
    }
    long target = (long)(rnd(seed) % (unsigned)span);
    uint64_t end = ferry__now_ns() + 2000000000u;
    while (atomic_load(done) < target && ferry__now_ns() < end)
        sched_yield();
}

/* Run a race until `want` iterations or the time box; print and check. */
static inline long time_boxed(const char *name, long want, bool (*one)(long i))
{
    uint64_t box = seconds_ns(), t0 = ferry__now_ns();
    long i;
    for (i = 0; i < want && ferry__now_ns() - t0 < box; i++)
        if (!one(i))
            break;
    print_message("%s: %ld iterations in %.1f s%s\n", name, i,
                  (double)(ferry__now_ns() - t0) / 1e9,
                  i < want ? " (time box)" : "");
    assert_true(i > 0);
    return i;
}

#endif /* FERRY_TESTS_STRESS_RACES_H */
