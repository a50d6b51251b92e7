/*
 * executor/blocking.c: blocking work without starving the pool.
 *
 * A worker that enters blocking work (a FERRY_TASK_BLOCKING task, or
 * ferry_blocking_begin) marks its core BLOCKED with one CAS and keeps it
 * (Go's entersyscall). Anyone who needs a core for queued work may retake
 * a BLOCKED core under sched.lock (Go's retake/handoffp); when the blocked
 * worker comes back, one CAS BLOCKED -> RUNNING tells it whether the core
 * is still its own (Go's exitsyscall fast path). So a blocking task that
 * nobody needed the core of costs two CASes on a line of its own, and CPU
 * work never runs on more threads than there are cores: only a holder of
 * a RUNNING core runs CPU work.
 *
 * A worker that lost its core inside a task (ferry_blocking_end, or a
 * nested blocking task) must get one back before running more CPU code: it
 * queues as a "wanter". Wanters are served first by every core release
 * (core_put), and a holder that sees a wanter hands its core over at its
 * next top-level task boundary, so a wanter waits at most one task.
 *
 * The monitor thread (the .NET gate thread, algorithms.md §2.4 point 4)
 * catches blocking that was not announced: while no core is idle it wakes
 * every starvation_ns / 2, and when work is queued but no task started for
 * starvation_ns, it takes the core of a worker that has been inside one
 * task all along and gives it to a spare. It sleeps untimed while a core
 * is idle (an idle pool costs no CPU); taking the last idle core wakes it.
 * It also retries, every RETRY_NS, starting a thread that could not be
 * started for queued work (pthread_create or its record's allocation
 * failed), whatever starvation_ns says.
 *
 * Thread: blocking enter/exit and wait_for_core on the worker itself; the
 * monitor on its own thread.
 */
#include <errno.h>
#include <limits.h>

#include "executor/internal.h"

void ferry__blocking_enter(struct ferry__worker *w)
{
    if (w->blocking++ > 0)
        return;
    atomic_store_explicit(&w->blocked, 1, memory_order_relaxed);
    struct ferry__core *c = w->core;
    if (c == NULL)
        return;
    uint64_t expect = w->core_word;
    uint64_t blocked = ferry__core_word(expect >> 2, FERRY__CORE_BLOCKED);
    /* Fails only if the monitor took our RUNNING core. */
    if (!atomic_compare_exchange_strong_explicit(&c->word, &expect, blocked,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        w->core = NULL;
        return;
    }
    w->core_word = blocked;
    /* StoreLoad: our BLOCKED mark comes before our look at the queues and
     * the wanters. Pairs with the fence in ferry__notify (a submitter then
     * either sees BLOCKED and retakes the core, or we see its work) and
     * with the one in ferry__wait_for_core (likewise for a wanter). */
    ferry__fence_seq_cst();
    ferry_pool *pool = w->pool;
    if (atomic_load_explicit(&pool->sched.nwanters, memory_order_relaxed)) {
        pthread_mutex_lock(&pool->sched.lock);
        expect = blocked;
        if (pool->sched.wanters != NULL &&
            atomic_compare_exchange_strong_explicit(
                &c->word, &expect,
                ferry__core_word((blocked >> 2) + 1, FERRY__CORE_RUNNING),
                memory_order_relaxed, memory_order_relaxed))
            ferry__core_put_locked(pool, c); /* to the first wanter */
        pthread_mutex_unlock(&pool->sched.lock);
    }
    if (ferry__work_visible(pool))
        ferry__wakep(pool); /* may retake this very core */
}

void ferry__blocking_exit(struct ferry__worker *w, bool top_level)
{
    if (--w->blocking > 0)
        return;
    atomic_store_explicit(&w->blocked, 0, memory_order_relaxed);
    struct ferry__core *c = w->core;
    if (c != NULL) {
        uint64_t expect = w->core_word;
        uint64_t running = ferry__core_word(expect >> 2, FERRY__CORE_RUNNING);
        /* Relaxed: the word carries no data, only who holds the core; the
         * retake CAS is the only other writer and exactly one wins. */
        if (atomic_compare_exchange_strong_explicit(&c->word, &expect, running,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed)) {
            w->core_word = running;
            return;
        }
        w->core = NULL;
    }
    /* At top level the worker loop gets a core or goes idle; inside a task
     * we must not run CPU code without one. */
    if (!top_level)
        ferry__wait_for_core(w);
}

static void wanter_remove_locked(struct ferry__sched *s,
                                 struct ferry__worker *w)
{
    struct ferry__worker **pp = &s->wanters;
    struct ferry__worker *prev = NULL;
    while (*pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = w->next;
    if (s->wanters_tail == w)
        s->wanters_tail = prev;
    w->wanting = false;
    atomic_store_explicit(
        &s->nwanters,
        atomic_load_explicit(&s->nwanters, memory_order_relaxed) - 1,
        memory_order_relaxed);
}

void ferry__wait_for_core(struct ferry__worker *w)
{
    ferry_pool *pool = w->pool;
    struct ferry__sched *s = &pool->sched;
    pthread_mutex_lock(&s->lock);
    w->next = NULL;
    w->wanting = true;
    if (s->wanters_tail != NULL)
        s->wanters_tail->next = w;
    else
        s->wanters = w;
    s->wanters_tail = w;
    atomic_store_explicit(
        &s->nwanters,
        atomic_load_explicit(&s->nwanters, memory_order_relaxed) + 1,
        memory_order_relaxed);
    /* StoreLoad: nwanters before our scan for BLOCKED cores. Pairs with
     * the fence in ferry__blocking_enter: a worker that marks its core
     * BLOCKED either is seen by our scan or sees nwanters and hands over. */
    ferry__fence_seq_cst();
    struct ferry__core *c = ferry__core_get_locked(pool, true);
    if (c != NULL) {
        wanter_remove_locked(s, w);
        ferry__grant_locked(w, c);
    }
    bool got = !w->wanting;
    pthread_mutex_unlock(&s->lock);
    while (!got) {
        ferry__park_token(w, 0);
        pthread_mutex_lock(&s->lock);
        got = !w->wanting;
        pthread_mutex_unlock(&s->lock);
    }
}

void ferry__handoff_to_wanter(struct ferry__worker *w)
{
    struct ferry__sched *s = &w->pool->sched;
    pthread_mutex_lock(&s->lock);
    if (s->wanters != NULL && ferry__owns_core(w)) {
        struct ferry__core *c = w->core;
        w->core = NULL;
        ferry__core_put_locked(w->pool, c);
    }
    pthread_mutex_unlock(&s->lock);
}

FERRY_API void ferry_blocking_begin(void)
{
    struct ferry__worker *w = ferry__worker_self();
    if (w == NULL || w->nest == 0 || ferry__pool_stale(w->pool))
        return;
    ferry__blocking_enter(w);
}

FERRY_API void ferry_blocking_end(void)
{
    struct ferry__worker *w = ferry__worker_self();
    if (w == NULL || w->nest == 0 || w->blocking == 0 ||
        ferry__pool_stale(w->pool))
        return;
    ferry__blocking_exit(w, false);
}

/* ---- the monitor ---- */

enum { RETRY_NS = 10000000 }; /* 10 ms between thread-start retries */

void ferry__monitor_retry_locked(ferry_pool *pool)
{
    /* A rare path: always wake the monitor (a kick only reaches it while
     * it sleeps untimed with the starvation check on). */
    pool->sched.spawn_retry = true;
    pool->sched.mon_sleeping = false;
    atomic_fetch_add_explicit(&pool->mon_word, 1, memory_order_relaxed);
    ferry__futex_wake(&pool->mon_word, 1);
}

/* Start a worker for queued work that one failed to start for. A new
 * failure sets spawn_retry again. Only while the pool is open: shutdown
 * raises the state before it takes sched.lock to wake the idle workers, so
 * a thread started here is counted in `alive` before anyone waits for it. */
static void retry_spawn(ferry_pool *pool)
{
    struct ferry__sched *s = &pool->sched;
    pthread_mutex_lock(&s->lock);
    s->spawn_retry = false;
    struct ferry__core *c = NULL;
    if (ferry__pool_state(pool) == FERRY__POOL_OPEN &&
        ferry__work_visible(pool))
        c = ferry__core_get_locked(pool, true);
    if (c == NULL) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    (void)ferry__start_worker_locked(pool, c, false); /* unlocks */
}

void ferry__monitor_kick_locked(ferry_pool *pool)
{
    if (!pool->sched.mon_sleeping)
        return;
    pool->sched.mon_sleeping = false;
    atomic_fetch_add_explicit(&pool->mon_word, 1, memory_order_relaxed);
    ferry__futex_wake(&pool->mon_word, 1);
}

static uint64_t started_total(ferry_pool *pool)
{
    uint64_t sum = 0;
    unsigned n = atomic_load_explicit(&pool->nslots, memory_order_acquire);
    for (unsigned i = 0; i < n; i++) {
        struct ferry__worker *w =
            atomic_load_explicit(&pool->slots[i], memory_order_acquire);
        if (w != NULL)
            sum += atomic_load_explicit(&w->st.started, memory_order_relaxed);
    }
    return sum;
}

/* Lock held. A RUNNING core whose holder is inside a task. */
static struct ferry__core *stuck_core_locked(ferry_pool *pool, uint64_t *word)
{
    for (unsigned i = 0; i < pool->ncores; i++) {
        struct ferry__core *c = &pool->cores[i];
        uint64_t w = atomic_load_explicit(&c->word, memory_order_relaxed);
        if (ferry__core_status(w) != FERRY__CORE_RUNNING || c->holder == NULL)
            continue;
        if (atomic_load_explicit(&c->holder->cur_task, memory_order_relaxed)) {
            *word = w;
            return c;
        }
    }
    return NULL;
}

static void check_starvation(ferry_pool *pool)
{
    uint64_t now = ferry__now_ns();
    uint64_t started = started_total(pool);
    if (started != pool->mon_started || !ferry__work_visible(pool)) {
        pool->mon_started = started;
        pool->mon_since_ns = now;
        return;
    }
    if (now - pool->mon_since_ns < pool->starvation_ns)
        return;
    pool->mon_since_ns = now;
    struct ferry__sched *s = &pool->sched;
    pthread_mutex_lock(&s->lock);
    uint64_t w = 0;
    struct ferry__core *c = stuck_core_locked(pool, &w);
    /* The holder keeps running its task without a core: it finds out at
     * its next task boundary (ferry__owns_core) and then parks. */
    if (c == NULL ||
        !atomic_compare_exchange_strong_explicit(
            &c->word, &w, ferry__core_word((w >> 2) + 1, FERRY__CORE_RUNNING),
            memory_order_relaxed, memory_order_relaxed)) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    atomic_fetch_add_explicit(&pool->starvation_events, 1,
                              memory_order_relaxed);
    ferry__start_worker_locked(pool, c, false); /* unlocks */
}

static void *monitor_main(void *arg)
{
    ferry_pool *pool = arg;
    struct ferry__sched *s = &pool->sched;
    ferry__thread_name(pool->prefix, "mon");
    bool enabled = pool->starvation_ns != UINT64_MAX;
    uint64_t period = pool->starvation_ns / 2;
    if (period < 100000)
        period = 100000;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        if (atomic_load_explicit(&pool->mon_stop, memory_order_relaxed)) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        bool starve =
            enabled &&
            atomic_load_explicit(&s->nidle_cores, memory_order_relaxed) == 0;
        bool retry = s->spawn_retry;
        s->mon_sleeping = enabled && !starve && !retry;
        uint32_t seen =
            atomic_load_explicit(&pool->mon_word, memory_order_relaxed);
        pthread_mutex_unlock(&s->lock);
        uint64_t wait =
            retry && (!starve || RETRY_NS < period) ? RETRY_NS : period;
        /* A kick after the unlock changes mon_word, so the wait returns. */
        ferry__futex_wait(&pool->mon_word, seen,
                          starve || retry ? ferry__now_ns() + wait : 0);
        if (retry)
            retry_spawn(pool);
        if (starve)
            check_starvation(pool);
        else
            pool->mon_since_ns = ferry__now_ns();
    }
    return NULL;
}

int ferry__monitor_start(ferry_pool *pool)
{
    atomic_store_explicit(&pool->mon_stop, 0, memory_order_relaxed);
    pool->mon_started = 0;
    pool->mon_since_ns = ferry__now_ns();
    int rc = ferry__thread_spawn(pool, &pool->mon, monitor_main, pool);
    pool->mon_running = rc == 0;
    return rc;
}

void ferry__monitor_stop(ferry_pool *pool)
{
    if (!pool->mon_running)
        return;
    pthread_mutex_lock(&pool->sched.lock);
    atomic_store_explicit(&pool->mon_stop, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->mon_word, 1, memory_order_relaxed);
    pthread_mutex_unlock(&pool->sched.lock);
    ferry__futex_wake(&pool->mon_word, 1);
    pthread_join(pool->mon, NULL);
    pool->mon_running = false;
}
