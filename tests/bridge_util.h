/*
 * tests/bridge_util.h: helpers shared by the bridge's unit tests
 * (test_bridge.c, test_bridge_promise.c): a pool of a given size, a work
 * function that adds one, and a periodic timer that counts its ticks, to
 * show that a loop stays live while it waits.
 */
#ifndef FERRY_TESTS_BRIDGE_UTIL_H
#define FERRY_TESTS_BRIDGE_UTIL_H

#include "helpers.h"

static inline ferry_pool *new_pool(unsigned threads)
{
    ferry_pool *p;
    struct ferry_pool_opts o = {.threads = threads};
    if (ferry_pool_new(&p, &o) != 0)
        abort();
    return p;
}

/* A work function: *result = arg + 1. */
static inline int add_one(void *arg, void **result)
{
    *result = (void *)((uintptr_t)arg + 1);
    return 0;
}

/* Re-arms itself every `period` ns, counting its ticks. */
struct ticker {
    ferry_loop *loop;
    int ticks;
    uint64_t period;
};

static inline void tick(void *arg)
{
    struct ticker *t = arg;
    t->ticks++;
    ferry_call_later(t->loop, (int64_t)t->period, tick, t, NULL, NULL);
}

#endif /* FERRY_TESTS_BRIDGE_UTIL_H */
