/*
 * bridge/default_pool.c: the process-wide default pool (S16).
 *
 * Made on first use of ferry_run_in_executor(pool = NULL) and shared by
 * every loop of the process (one cap on threads for all of them, unlike
 * asyncio's executor per loop). A mutex guards the pointer; the pool
 * itself is thread-safe. ferry_loop_shutdown_default_executor detaches it
 * under the mutex, then drains and frees it outside: later users from
 * other loops build a fresh one, the loop that shut it down gets
 * -ESHUTDOWN (asyncio's rule).
 *
 * Fork: a pool built before fork() is stale in the child (its threads do
 * not exist there); the child's first use abandons it (its memory is a
 * copy, and freeing it would join threads that are not there) and builds a
 * new one (libuv's reset-on-fork idea).
 *
 * Thread: any; ferry_loop_shutdown_default_executor on the loop's owner.
 */
#include <pthread.h>

#include "bridge/internal.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ferry_pool *default_pool; /* lock */
static unsigned default_gen;     /* lock: fork generation it was built in */

int ferry__default_pool(ferry_loop *loop, ferry_pool **out)
{
    if (atomic_load_explicit(&loop->default_pool_shut, memory_order_relaxed))
        return -ESHUTDOWN;
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (default_pool != NULL && default_gen != ferry__fork_gen())
        default_pool = NULL; /* inherited: abandoned, see above */
    if (default_pool == NULL) {
        rc = ferry_pool_new(&default_pool, NULL);
        if (rc < 0)
            default_pool = NULL;
        default_gen = ferry__fork_gen();
    }
    *out = default_pool;
    pthread_mutex_unlock(&lock);
    return rc;
}

static void *reap(void *arg)
{
    ferry_pool_free(arg);
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
    atomic_store_explicit(&loop->default_pool_shut, true, memory_order_relaxed);
    pthread_mutex_lock(&lock);
    ferry_pool *pool = default_gen == ferry__fork_gen() ? default_pool : NULL;
    default_pool = NULL;
    pthread_mutex_unlock(&lock);
    if (pool == NULL)
        return 0;
    rc = ferry_pool_shutdown(pool, FERRY_DRAIN, timeout_ns, NULL);
    if (rc == 0)
        return ferry_pool_free(pool);
    /* Still running past the deadline: a detached thread waits for the
     * stragglers and frees the pool, so this loop is not held up. */
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, reap, pool) != 0)
        (void)ferry_pool_free(pool); /* no thread to spare: wait here */
    pthread_attr_destroy(&attr);
    return -ETIMEDOUT;
}
