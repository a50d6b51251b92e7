/*
 * tests/helpers.h: small shared helpers for ferry's cmocka tests.
 *
 * cmocka asserts only on the test's own thread (STYLE.md point 20): helper
 * threads record what they saw into atomics or plain fields read after
 * pthread_join, and the test thread asserts.
 */
#ifndef FERRY_TEST_HELPERS_H
#define FERRY_TEST_HELPERS_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "ferry.h"

/* A clock the test moves by hand: timer tests need no sleeps. */
struct fake_clock {
    uint64_t now;
};

static inline uint64_t fake_clock_read(void *ctx)
{
    return ((struct fake_clock *)ctx)->now;
}

static inline void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* An ordered log of small integers written on the loop thread. */
struct log {
    int v[4096];
    int n;
};

static inline void log_push(struct log *l, int x)
{
    if (l->n < (int)(sizeof l->v / sizeof l->v[0]))
        l->v[l->n++] = x;
}

/* Counts dispose calls; arg points to an atomic int. */
static inline void count_dispose(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
}

static inline pthread_t spawn(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0)
        abort();
    return t;
}

#endif /* FERRY_TEST_HELPERS_H */
