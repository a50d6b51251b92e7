/*
 * tests/executor_util.h: helpers shared by the executor's unit tests.
 *
 * Every wait is bounded (WAIT_NS), so a bug fails a test instead of
 * hanging it. Workers only touch atomics here (STYLE.md point 20).
 */
#ifndef FERRY_TESTS_EXECUTOR_UTIL_H
#define FERRY_TESTS_EXECUTOR_UTIL_H

#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "executor/internal.h"
#include "ferry.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define WAIT_NS (20ull * 1000000000u)

static inline uint64_t now_ns(void)
{
    return ferry__now_ns();
}

static inline void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* Poll until *v >= want or WAIT_NS passes. */
static inline bool wait_count(_Atomic long *v, long want)
{
    uint64_t end = now_ns() + WAIT_NS;
    while (atomic_load(v) < want) {
        if (now_ns() > end)
            return false;
        sleep_ns(100000);
    }
    return true;
}

/* wait_count, and on a timeout print what the pool's scheduler looked
 * like (a stall under valgrind in CI was not reproduced; the next one
 * should say which workers held which cores). */
static inline bool wait_count_pool(ferry_pool *pool, _Atomic long *v, long want)
{
    if (wait_count(v, want))
        return true;
    struct ferry_pool_stats st;
    struct ferry__sched *s = &pool->sched;
    ferry_pool_stats(pool, &st);
    fprintf(stderr,
            "stall: count %ld of %ld; threads %u idle %u blocked %u; "
            "queued %llu submitted %llu completed %llu; nsearching %u "
            "nidle_cores %u nwanters %u\n",
            atomic_load(v), want, st.threads_total, st.threads_idle,
            st.threads_blocked, (unsigned long long)st.queue_depth,
            (unsigned long long)st.submitted, (unsigned long long)st.completed,
            atomic_load(&s->nsearching), atomic_load(&s->nidle_cores),
            atomic_load(&s->nwanters));
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < pool->ncores; i++) {
        struct ferry__worker *h = pool->cores[i].holder;
        fprintf(stderr, "stall: core %u word %#llx holder %d\n", i,
                (unsigned long long)atomic_load(&pool->cores[i].word),
                h != NULL ? (int)h->index : -1);
    }
    for (unsigned i = 0; i < s->nslots; i++) {
        struct ferry__worker *w = atomic_load(&pool->slots[i]);
        if (w != NULL && w->live)
            fprintf(stderr,
                    "stall: worker %u idle %d wanting %d blocking %u "
                    "core %d deque %lld\n",
                    i, w->idle, w->wanting, (unsigned)w->blocking,
                    w->core != NULL ? (int)w->core->index : -1,
                    (long long)ferry__deque_len(&w->dq));
    }
    pthread_mutex_unlock(&s->lock);
    return false;
}

static inline ferry_pool *new_pool(unsigned threads, unsigned max_threads)
{
    ferry_pool *pool = NULL;
    struct ferry_pool_opts o = {.threads = threads,
                                .max_threads = max_threads,
                                .starvation_ns = UINT64_MAX};
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    return pool;
}

/* ---- small task bodies ---- */

static _Atomic long counter;

static inline void count_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counter, 1);
}

static inline void spin(unsigned iters)
{
    volatile unsigned x = 0;
    for (unsigned i = 0; i < iters; i++)
        x = x + i;
    (void)x; /* clang: set but not used */
}

/* A gate that blocks a worker until the test opens it. */
struct gate {
    sem_t sem;
    _Atomic int entered;
    _Atomic int left;
};

static inline void gate_fn(void *arg)
{
    struct gate *g = arg;
    atomic_store(&g->entered, 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    sem_timedwait(&g->sem, &ts);
    atomic_store(&g->left, 1);
}

static inline void gate_init(struct gate *g)
{
    sem_init(&g->sem, 0, 0);
    atomic_store(&g->entered, 0);
    atomic_store(&g->left, 0);
}

static inline void gate_wait_entered(struct gate *g)
{
    uint64_t end = now_ns() + WAIT_NS;
    while (!atomic_load(&g->entered) && now_ns() < end)
        sleep_ns(100000);
    assert_true(atomic_load(&g->entered));
}

#endif /* FERRY_TESTS_EXECUTOR_UTIL_H */
