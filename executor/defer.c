/*
 * executor/defer.c: deferred submission, one injection-queue push for a
 * whole pass of a loop's callbacks.
 *
 * An offload made from a loop callback would otherwise take the injection
 * queue's lock once per task. With a window of offloads in flight the lock
 * line moves between the loop's core and the workers' on every push, and
 * the locked instruction also waits for the new job's stores, whose lines
 * the worker that ran the previous job still holds (README, Performance:
 * 21% of the loop thread in ferry__inject_push alone). So the bridge
 * defers: while a loop runs a pass of callbacks, the tasks its callbacks
 * offload are chained on a thread-local list, and the loop hands the chain
 * to the pool in one push, with at most one wake-up, when the pass ends
 * and before it polls again (bridge/run_in_executor.c, loop.c's iterate).
 *
 * Rules that keep a deferred task equivalent to a submitted one:
 *   - Only a pool that accepts outside submissions takes deferred tasks;
 *     otherwise the caller submits at once and gets the error at once.
 *   - A thread holds one chain, for one pool: a task for another pool
 *     is submitted at once.
 *   - ferry_pool_shutdown, ferry_pool_free and ferry_pool_stats called on
 *     the holding thread flush its chain first, so that a shutdown made
 *     after an offload, on the same thread, sees that offload queued.
 *   - The pool cannot be freed under a chain: the first task of a chain
 *     bumps pool->deferrers, the flush drops it as its last touch of the
 *     pool, and ferry_pool_free waits for zero. The bump happens inside
 *     the submit call, while the caller must keep the pool alive anyway,
 *     so it happens-before any free that may follow.
 *   - A chain whose pool shut down meanwhile (another thread called
 *     ferry_pool_shutdown) is refused as a whole and given back to the
 *     caller of ferry__defer_flush, which owns its tasks again (the
 *     bridge retries a default pool's, bridge/run_in_executor.c); a flush
 *     made by a pool call drops them as shutdown drops queued tasks,
 *     complete(-ECANCELED).
 *   - A chain inherited by a forked child belongs to the parent: the
 *     child forgets it without touching it (the fork generation).
 *
 * Thread: the functions act on the calling thread's chain only.
 */
#include <errno.h>
#include <sched.h>

#include "executor/internal.h"

struct defer_chain {
    ferry_pool *pool; /* NULL: no chain */
    struct ferry__task *first, *last;
    uint64_t n;
    unsigned gen; /* ferry__fork_gen() when the chain began */
};

static FERRY__TLS struct defer_chain tls_chain;

static void forget(struct defer_chain *c)
{
    c->pool = NULL;
    c->first = c->last = NULL;
    c->n = 0;
}

/* Hand the chain over. A refused chain is dropped here (drop) or given
 * back to the caller; either way we are done with the pool before the
 * release decrement. */
static struct ferry__task *flush_chain(bool drop)
{
    struct defer_chain *c = &tls_chain;
    ferry_pool *pool = c->pool;
    struct ferry__task *t = c->first;
    if (pool == NULL)
        return NULL;
    if (c->gen != ferry__fork_gen()) {
        forget(c); /* the parent's tasks and pool: not ours to touch */
        return NULL;
    }
    bool edge = false;
    int rc =
        ferry__inject_push_chain(&pool->inject, c->first, c->last, c->n, &edge);
    forget(c);
    if (rc == 0) {
        if (edge)
            ferry__notify(pool);
        t = NULL;
    }
    for (struct ferry__task *next; drop && t != NULL; t = next) {
        next = t->next;
        ferry__drop_task(pool, NULL, t);
    }
    /* Release: our last touch of the pool (the push, the drops) happens-
     * before ferry_pool_free's acquire load that reads zero. */
    atomic_fetch_sub_explicit(&pool->deferrers, 1, memory_order_release);
    return t;
}

struct ferry__task *ferry__defer_flush(void)
{
    return flush_chain(false);
}

void ferry__defer_flush_for(ferry_pool *pool)
{
    if (tls_chain.pool == pool && pool != NULL)
        (void)flush_chain(true);
}

bool ferry__defer_task(ferry_pool *pool, struct ferry__task *t)
{
    struct defer_chain *c = &tls_chain;
    if (c->pool != pool) {
        if (c->pool != NULL)
            return false; /* one pool per chain: this one goes at once */
        if (ferry__pool_state(pool) != FERRY__POOL_OPEN ||
            ferry__pool_stale(pool) || ferry__worker_of(pool) != NULL)
            return false; /* submit at once: errors and nesting as usual */
        /* Relaxed: the submit call this runs in is what orders us before
         * a later ferry_pool_free (see the file comment). */
        atomic_fetch_add_explicit(&pool->deferrers, 1, memory_order_relaxed);
        c->pool = pool;
        c->gen = ferry__fork_gen();
    }
    ferry__stamp_enqueue(t);
    t->next = NULL;
    if (c->last != NULL)
        c->last->next = t;
    else
        c->first = t;
    c->last = t;
    c->n++;
    return true;
}

void ferry__defer_wait(ferry_pool *pool)
{
    /* Acquire: pairs with the release decrement in ferry__defer_flush. A
     * holder flushes when its loop ends its pass of callbacks, so this
     * waits for at most one pass of another thread's loop. */
    while (atomic_load_explicit(&pool->deferrers, memory_order_acquire) != 0)
        sched_yield();
}
