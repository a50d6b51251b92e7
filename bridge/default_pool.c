/*
 * bridge/default_pool.c: the process-wide default pool (S16).
 *
 * Made on first use of ferry_run_in_executor(pool = NULL) and shared by
 * every loop of the process (one cap on threads for all of them, unlike
 * asyncio's executor per loop). ferry_loop_shutdown_default_executor
 * detaches it, then drains it: later users from other loops build a fresh
 * one, the loop that shut it down gets -ESHUTDOWN (asyncio's rule).
 *
 * No lock on the hot path: the pool sits in a small reference-counted
 * holder. The global slot holds one reference, and each loop that used
 * the pool caches the holder with a reference of its own (loop->dp, owner
 * only), so an offload costs two loads and two compares. The memory stays
 * valid while the loop holds its reference, whatever another loop's
 * shutdown does meanwhile; the pool is freed by whoever drops the last
 * reference (the shutdown, a loop noticing the change, or a loop's close).
 * The lock guards only the slot and the epoch's writers.
 *
 * A shutdown bumps `epoch` after detaching the holder. A loop whose cached
 * epoch differs drops its reference and takes the current holder. Relaxed
 * loads of the epoch suffice: the holder's memory is protected by the
 * reference, not by the epoch; a loop that reads the old value in the
 * middle of a shutdown submits to the pool being shut down, which either
 * takes the task (and drains it) or refuses it with -ESHUTDOWN, and that
 * refusal sends the submitter back here for a fresh pool (retry below).
 *
 * Fork: a pool built before fork() is stale in the child (its threads do
 * not exist there); the child abandons it (its memory is a copy, and
 * freeing it would join threads that are not there), the slot's and every
 * loop's reference alike, and builds a new one (libuv's reset-on-fork
 * idea).
 *
 * Thread: any; ferry_loop_shutdown_default_executor on the loop's owner.
 */
#include <pthread.h>
#include <stdlib.h>

#include "bridge/internal.h"

struct ferry__dpool {
    ferry_pool *pool;
    _Atomic uint32_t refs; /* the slot's and each caching loop's */
    unsigned gen;          /* ferry__fork_gen() when it was built */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct ferry__dpool *slot; /* lock */
static _Atomic uint64_t epoch;    /* written under the lock */

static void *reap(void *arg)
{
    ferry_pool_free(arg);
    return NULL;
}

/* Free a pool from a thread that may be one of its workers (a loop run
 * inside a task): then only another thread can join them. */
static void pool_free_anywhere(ferry_pool *pool)
{
    if (ferry_pool_free(pool) != -EDEADLK)
        return;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* No thread to spare: the pool is leaked rather than joined from
     * inside itself. */
    (void)pthread_create(&t, &attr, reap, pool);
    pthread_attr_destroy(&attr);
}

static void dpool_unref(struct ferry__dpool *d)
{
    if (d->gen != ferry__fork_gen())
        return; /* the parent's: abandoned */
    /* Acq_rel: every holder's use of the pool happens-before the free. */
    if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) != 1)
        return;
    pool_free_anywhere(d->pool);
    free(d);
}

/* Owner thread, from the loop's close (loop->dp_release). */
static void loop_release(void *dp)
{
    dpool_unref(dp);
}

static void drop_cached(ferry_loop *loop)
{
    struct ferry__dpool *d = loop->dp;
    loop->dp = NULL;
    loop->dp_release = NULL;
    if (d != NULL)
        dpool_unref(d);
}

/* Lock held: the current holder, built if there is none (or only the
 * parent's). */
static int current_locked(struct ferry__dpool **out)
{
    if (slot != NULL && slot->gen != ferry__fork_gen())
        slot = NULL; /* inherited: abandoned, see above */
    if (slot == NULL) {
        struct ferry__dpool *d = malloc(sizeof *d);
        if (d == NULL)
            return -ENOMEM;
        int rc = ferry_pool_new(&d->pool, NULL);
        if (rc < 0) {
            free(d);
            return rc;
        }
        atomic_init(&d->refs, 1);
        d->gen = ferry__fork_gen();
        slot = d;
    }
    *out = slot;
    return 0;
}

static int refresh(ferry_loop *loop)
{
    /* Offloads this pass deferred may be for the pool we are about to let
     * go of (executor/defer.c): hand them over while our reference keeps
     * it alive. If it refuses them they come back here for a fresh pool;
     * the chain is empty by then, so that nested refresh ends. */
    ferry__defer_flush();
    drop_cached(loop);
    struct ferry__dpool *d = NULL;
    pthread_mutex_lock(&lock);
    int rc = current_locked(&d);
    if (rc == 0) {
        /* Relaxed: under the lock the slot's own reference keeps refs above
         * zero, so no release can race this one to the free; the lock
         * orders our reads of d after its creation. */
        atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
        loop->dp = d;
        loop->dp_epoch = atomic_load_explicit(&epoch, memory_order_relaxed);
        loop->dp_release = loop_release;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

int ferry__default_pool(ferry_loop *loop, ferry_pool **out)
{
    if (atomic_load_explicit(&loop->default_pool_shut, memory_order_relaxed))
        return -ESHUTDOWN;
    struct ferry__dpool *d = loop->dp;
    if (d == NULL || d->gen != ferry__fork_gen() ||
        loop->dp_epoch != atomic_load_explicit(&epoch, memory_order_relaxed)) {
        int rc = refresh(loop);
        if (rc < 0)
            return rc;
        d = loop->dp;
    }
    *out = d->pool;
    return 0;
}

bool ferry__default_pool_retry(ferry_loop *loop)
{
    /* The submit was refused: if the pool was swapped meanwhile (another
     * loop shut it down), a fresh one may take it. */
    return !atomic_load_explicit(&loop->default_pool_shut,
                                 memory_order_relaxed) &&
           loop->dp != NULL &&
           loop->dp_epoch != atomic_load_explicit(&epoch, memory_order_relaxed);
}

/* Wait for the stragglers past the caller's deadline, then drop the
 * slot's reference. */
static void *drain_then_unref(void *arg)
{
    struct ferry__dpool *d = arg;
    /* -EDEADLK only when run inline on one of the pool's own workers (no
     * thread to spare, below): the pool is then leaked, not freed by some
     * loop that would block on the stragglers. Any other failure (no
     * worker could be started for leftover tasks) leaves them to the
     * free, which cancels them. */
    if (ferry_pool_shutdown(d->pool, FERRY_DRAIN, -1, NULL) != -EDEADLK)
        dpool_unref(d);
    return NULL;
}

FERRY_API int ferry_loop_shutdown_default_executor(ferry_loop *loop,
                                                   int64_t timeout_ns)
{
    int rc = ferry__loop_check(loop);
    if (rc < 0)
        return rc;
    if (timeout_ns < -1)
        return -EINVAL;
    /* Offloads this pass deferred go first: to the pool we drain below,
     * or (refused: another loop shut it down) to a fresh one, which is
     * then the one we drain. */
    ferry__defer_flush();
    atomic_store_explicit(&loop->default_pool_shut, true, memory_order_relaxed);
    drop_cached(loop);
    pthread_mutex_lock(&lock);
    struct ferry__dpool *d =
        slot != NULL && slot->gen == ferry__fork_gen() ? slot : NULL;
    slot = NULL;
    atomic_store_explicit(
        &epoch, atomic_load_explicit(&epoch, memory_order_relaxed) + 1,
        memory_order_relaxed);
    pthread_mutex_unlock(&lock);
    if (d == NULL)
        return 0;
    rc = ferry_pool_shutdown(d->pool, FERRY_DRAIN, timeout_ns, NULL);
    if (rc == 0) {
        dpool_unref(d); /* frees it, unless a loop still caches it */
        return 0;
    }
    /* Still running past the deadline (-ETIMEDOUT), called from one of its
     * own workers (-EDEADLK: the drain is started, reported as a
     * timeout), or no worker could be started for tasks left queued
     * (-EAGAIN, -ENOMEM): a detached thread drains (waiting for the
     * stragglers; a drain that again starts no worker returns at once)
     * and drops the reference, so this loop is not held up; the free
     * cancels whatever is still queued. */
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, drain_then_unref, d) != 0)
        (void)drain_then_unref(d); /* no thread to spare: wait here */
    pthread_attr_destroy(&attr);
    return rc == -EDEADLK ? -ETIMEDOUT : rc;
}
