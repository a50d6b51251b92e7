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
 * and before it polls again (bridge/run_in_executor.c, loop.c's iterate),
 * or as soon as it holds FERRY__DEFER_MAX tasks.
 *
 * Rules that keep a deferred task close to a submitted one:
 *   - Only an open pool takes deferred tasks; otherwise (or once it
 *     starts shutting down) the caller submits at once and gets the error
 *     at once.
 *   - A thread holds one chain, for one pool: a task for another pool
 *     is submitted at once.
 *   - ferry_pool_shutdown and ferry_pool_free called on the holding
 *     thread flush its chain first (whatever its pool: the drain may wait
 *     for a task that waits for a deferred one), so that a shutdown made
 *     after an offload, on the same thread, finds that offload queued.
 *   - A chain holds a reference on the pool's memory (pool->refs: the
 *     first task of a chain takes it, the flush drops it as its last
 *     touch of the pool). ferry_pool_free stops and joins everything and
 *     drops the pool's own reference; the memory goes with the last one.
 *     So a free made by another thread neither waits for the pass nor
 *     pulls the pool from under the chain. The reference is taken inside
 *     the submit call, while the caller must keep the pool alive anyway,
 *     so it happens-before any free that may follow.
 *   - A chain whose pool shut down meanwhile (another thread) is refused
 *     as a whole and goes to the refuse hook given with its first task,
 *     after the reference is dropped (the bridge fails the futures with
 *     -ESHUTDOWN, or takes a fresh default pool).
 *   - A chain inherited by a forked child belongs to the parent: the
 *     child forgets it without touching it (the fork generation), before
 *     it defers anything of its own.
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
    ferry__defer_refused_fn *refused;
};

static FERRY__TLS struct defer_chain tls_chain;

static void forget(struct defer_chain *c)
{
    c->pool = NULL;
    c->first = c->last = NULL;
    c->n = 0;
}

/* Hand the chain over; a refused chain goes to the refuse hook once we
 * are done with the pool. */
void ferry__defer_flush(void)
{
    struct defer_chain *c = &tls_chain;
    ferry_pool *pool = c->pool;
    if (pool == NULL)
        return;
    if (c->gen != ferry__fork_gen()) {
        forget(c); /* the parent's tasks and pool: not ours to touch */
        return;
    }
    ferry__defer_refused_fn *refused = c->refused;
    bool edge = false;
    /* An accepted push is followed by a wake-up, which reaches the pool's
     * parts (cores, scheduler lock, maybe a new worker); our reference
     * keeps only the struct. So destroy() waits for pool->flushing to
     * fall to 0 before it joins and frees anything. Relaxed increment: it
     * comes before our push's unlock (release), and destroy reads it after
     * closing the queue under the same lock (acquire), so a push that got
     * in is always seen; one that did not wakes nobody. */
    atomic_fetch_add_explicit(&pool->flushing, 1, memory_order_relaxed);
    /* The queue takes an array (its ring, inject.c). The chain's links
     * are on our own core's lines, so this walk is cheap; the chain itself
     * keeps the thread-local part small (common/base.h's TLS budget). */
    struct ferry__task *ts[FERRY__DEFER_MAX], *t = c->first;
    for (uint64_t i = 0; i < c->n; i++, t = t->next)
        ts[i] = t;
    t = c->first;
    int rc = ferry__inject_push_batch(&pool->inject, ts, c->n, false, &edge);
    forget(c);
    if (rc == 0 && edge)
        ferry__notify(pool);
    /* Release: the wake-up happens-before destroy()'s acquire load. */
    atomic_fetch_sub_explicit(&pool->flushing, 1, memory_order_release);
    ferry__pool_unref(pool); /* our last touch of the pool */
    if (rc < 0)
        refused(t);
}

bool ferry__defer_task(ferry_pool *pool, struct ferry__task *t,
                       ferry__defer_refused_fn *refused)
{
    struct defer_chain *c = &tls_chain;
    if (c->pool != NULL && c->gen != ferry__fork_gen())
        forget(c); /* a forked child: the parent's chain is not ours */
    if (c->pool != NULL && c->pool != pool)
        return false; /* one pool per chain: this one goes at once */
    if (ferry__pool_state(pool) != FERRY__POOL_OPEN) {
        ferry__defer_flush(); /* shutting down: it refuses, the hook reports */
        return false;         /* and this one gets its error at once */
    }
    if (c->pool == NULL) {
        if (ferry__pool_stale(pool) || ferry__worker_of(pool) != NULL)
            return false; /* at once: -ECHILD, or a worker's own deque */
        ferry__pool_ref(pool);
        c->pool = pool;
        c->gen = ferry__fork_gen();
        c->refused = refused;
    }
    ferry__stamp_enqueue(t);
    t->next = NULL;
    if (c->last != NULL)
        c->last->next = t;
    else
        c->first = t;
    c->last = t;
    if (++c->n == FERRY__DEFER_MAX)
        ferry__defer_flush(); /* let the workers start on a long pass's tasks */
    return true;
}
