/*
 * executor/fork.c: ferry_pool_after_fork, the pool's part of S14.
 *
 * In a child only the forking thread exists. The parent's workers, their
 * monitor and any lock they held are gone, so the pool cannot be locked,
 * joined or drained (algorithms.md §7.3): after_fork re-initialises the
 * locks in place, forgets every queued task without running it or its
 * completion hook, moves the parent's worker records to a stale list that
 * ferry_pool_free frees (nothing the parent's threads owned is freed
 * while a task forked from one of them might still run on it), resets
 * the cores and counts, and starts fresh workers under the child's fork
 * generation. Worker records compare their generation with the pool's, so
 * a stale record is never mistaken for a live worker of the rebuilt pool.
 *
 * Thread: the child's only thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor/internal.h"

static int keep_stale(ferry_pool *pool)
{
    unsigned n = 0;
    for (unsigned i = 0; i < pool->max_threads; i++)
        if (atomic_load_explicit(&pool->slots[i], memory_order_relaxed))
            n++;
    if (n == 0)
        return 0;
    struct ferry__worker **stale =
        realloc(pool->stale, (pool->nstale + n) * sizeof *stale);
    if (stale == NULL)
        return -ENOMEM;
    pool->stale = stale;
    for (unsigned i = 0; i < pool->max_threads; i++) {
        struct ferry__worker *w =
            atomic_load_explicit(&pool->slots[i], memory_order_relaxed);
        if (w == NULL)
            continue;
        ferry__deque_discard(&w->dq); /* never run, never completed */
        w->joinable = false;          /* the parent's thread, not ours */
        w->live = false;
        stale[pool->nstale++] = w;
        atomic_store_explicit(&pool->slots[i], NULL, memory_order_relaxed);
    }
    return 0;
}

static void reset_sched(ferry_pool *pool)
{
    struct ferry__sched *s = &pool->sched;
    pthread_mutex_init(&s->lock, NULL); /* may have been held: re-init */
    s->idle_cores = NULL;
    s->idle = NULL;
    s->wanters = NULL;
    s->wanters_tail = NULL;
    s->nidle = 0;
    s->nthreads = 0;
    s->nslots = 0;
    s->mon_sleeping = false;
    s->spawn_retry = false;
    atomic_store_explicit(&s->nidle_cores, 0, memory_order_relaxed);
    atomic_store_explicit(&s->nwanters, 0, memory_order_relaxed);
    atomic_store_explicit(&s->alive, 0, memory_order_relaxed);
    atomic_store_explicit(&s->nsearching, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->nslots, 0, memory_order_relaxed);
    memset(pool->slot_used, 0, pool->max_threads);
    for (unsigned i = 0; i < pool->ncores; i++) {
        struct ferry__core *c = &pool->cores[i];
        uint64_t w = atomic_load_explicit(&c->word, memory_order_relaxed);
        atomic_store_explicit(&c->word,
                              ferry__core_word((w >> 2) + 1, FERRY__CORE_IDLE),
                              memory_order_relaxed);
        c->holder = NULL;
    }
    pool->mon_running = false; /* the parent's monitor does not exist */
    atomic_store_explicit(&pool->spares_created, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->spares_retired, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->starvation_events, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->dropped, 0, memory_order_relaxed);
}

bool ferry__pool_stale_slow(const ferry_pool *pool)
{
    return ferry__pool_stale(pool) || pool->pid != getpid();
}

FERRY_API int ferry_pool_after_fork(ferry_pool *pool)
{
    if (pool == NULL)
        return -EINVAL;
    if (!ferry__pool_stale_slow(pool))
        return -EINVAL;
    int rc = keep_stale(pool);
    if (rc != 0)
        return rc; /* still stale: the call may be repeated */
    reset_sched(pool);
    ferry__inject_reset(&pool->inject);
    pool->inject.submitted = 0;
    /* The parent's deferred chains stay in the parent (defer.c). */
    atomic_store_explicit(&pool->refs, 1, memory_order_relaxed);
    atomic_store_explicit(&pool->flushing, 0, memory_order_relaxed);
    pool->gen = ferry__fork_gen();
    pool->pid = getpid();
    if (ferry__pool_state(pool) != FERRY__POOL_OPEN) {
        /* Shut down in the parent: stays shut down, with no threads. */
        pthread_mutex_lock(&pool->sched.lock);
        for (unsigned i = 0; i < pool->ncores; i++)
            ferry__core_put_locked(pool, &pool->cores[i]);
        pthread_mutex_unlock(&pool->sched.lock);
        ferry__inject_close(&pool->inject, 2);
        return 0;
    }
    rc = ferry__pool_start_threads(pool);
    if (rc != 0)
        ferry_pool_shutdown(pool, FERRY_CANCEL_PENDING, -1, NULL);
    return rc;
}
