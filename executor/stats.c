/*
 * executor/stats.c: ferry_pool_stats and the log2 histograms.
 *
 * Counters live in each worker's record and are written only by that
 * worker, with a relaxed load and store (no locked instruction, no shared
 * line on the hot path); a reader sums them with relaxed loads. Rare
 * events (spares, starvation, drops outside any worker) are pool-wide
 * atomics. Records are kept for the pool's lifetime and reused by later
 * threads in the same slot, so retired threads' counts are never lost.
 *
 * Thread: any.
 */
#include <errno.h>
#include <string.h>

#include "executor/internal.h"

void ferry__hist_add(_Atomic uint64_t *hist, uint64_t ns)
{
    unsigned b = ns == 0 ? 0u : 63u - (unsigned)__builtin_clzll(ns);
    if (b >= FERRY_POOL_HIST_BUCKETS)
        b = FERRY_POOL_HIST_BUCKETS - 1;
    ferry__stat_inc(&hist[b]);
}

uint64_t ferry__queue_depth(ferry_pool *pool)
{
    uint64_t n = ferry__inject_len(&pool->inject);
    unsigned slots = ferry__nslots(pool);
    for (unsigned i = 0; i < slots; i++) {
        struct ferry__worker *w = ferry__slot(pool, i);
        if (w != NULL)
            n += (uint64_t)ferry__deque_len(&w->dq);
    }
    return n;
}

static uint64_t rd(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void add_worker(struct ferry_pool_stats *o, struct ferry__worker *w)
{
    o->submitted += rd(&w->st.submitted);
    o->completed += rd(&w->st.completed);
    o->cancelled += rd(&w->st.cancelled);
    o->stolen += rd(&w->st.stolen);
    o->parks += rd(&w->st.parks);
    o->unparks += rd(&w->st.unparks);
    for (unsigned b = 0; b < FERRY_POOL_HIST_BUCKETS; b++) {
        o->queue_wait[b] += rd(&w->st.queue_wait[b]);
        o->run_time[b] += rd(&w->st.run_time[b]);
    }
}

FERRY_API int ferry_pool_stats(ferry_pool *pool, struct ferry_pool_stats *out)
{
    if (pool == NULL || out == NULL)
        return -EINVAL;
    if (ferry__pool_stale_slow(pool))
        return -ECHILD;
    memset(out, 0, sizeof *out);
    struct ferry__sched *s = &pool->sched;
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->nslots; i++) {
        struct ferry__worker *w =
            atomic_load_explicit(&pool->slots[i], memory_order_relaxed);
        if (w == NULL)
            continue;
        add_worker(out, w);
        if (w->live &&
            atomic_load_explicit(&w->blocked, memory_order_relaxed) != 0)
            out->threads_blocked++;
    }
    out->threads_total = s->nthreads;
    out->threads_idle = s->nidle;
    pthread_mutex_unlock(&s->lock);
    ferry__lock(&pool->inject.lock);
    out->submitted += pool->inject.submitted;
    ferry__unlock(&pool->inject.lock);
    out->cancelled += rd(&pool->dropped);
    out->spares_created = rd(&pool->spares_created);
    out->spares_retired = rd(&pool->spares_retired);
    out->starvation_events = rd(&pool->starvation_events);
    out->queue_depth = ferry__queue_depth(pool);
    return 0;
}
