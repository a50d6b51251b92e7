/*
 * executor/park.c: parking idle workers without lost wake-ups or herds.
 *
 * Pieces (algorithms.md §2.3, §3.1). A per-worker futex park token, EMPTY,
 * NOTIFIED or PARKED (Rust std's futex Parker): an unpark that comes before
 * the park makes the park return at once, so their order never loses a
 * wake-up. A stack of idle workers and a list of idle cores under
 * sched.lock: a wake-up pops ONE worker, grants it ONE core and unparks
 * only it. And nsearching, the workers looking for work (Go's nmspinning),
 * with Go's rule: a submitter wakes a worker only if nobody is searching,
 * and the last searcher to stop re-checks and wakes another if work is
 * left. At most half the cores search at once (tokio's cap).
 *
 * The lost-wake-up argument. Work is published by a store W (a deque's
 * bottom, or the injection queue's nonempty flag). A worker announces that
 * it stops looking by stores A (core released, itself on the idle stack,
 * nsearching decremented). Each side then executes a seq_cst fence and
 * reads the other side's variables. The submitter (ferry__notify) does W,
 * fence, then reads nsearching and the idle cores and wakes one worker if
 * nobody searches. The worker (ferry__park_worker) does A, fence, then
 * reads every queue and takes a core back instead of sleeping if work is
 * visible. The two fences are totally ordered. If the worker's comes
 * second, its re-check sees W. If the submitter's comes second, it sees A:
 * either a free core and nsearching == 0, and it wakes someone; or another
 * worker still searching, which is then responsible, because that searcher
 * itself stops by the same A, fence, re-check sequence (end_searching when
 * it finds work, park_worker when it does not) with its fence after the
 * submitter's. Every decrement of nsearching is followed by that fence and
 * re-check, including the undo in start_searcher.
 *
 * A core held by a worker inside blocking work (BLOCKED) is not free: the
 * monitor retakes it once it has stayed blocked for a whole monitor period
 * (monitor.c). Whoever finds work, no free core and a BLOCKED one makes
 * sure the monitor polls, through the same fence-then-look pairing on the
 * monitor's flag.
 *
 * The model is executor/park.pml, checked by spin (tests/spin, suite
 * 'model'): no task is left queued while every worker sleeps, and without
 * either fence spin finds the lost wake-up.
 *
 * Thread: any; park_worker and idle_worker by the worker itself.
 */
#include <errno.h>
#include <limits.h>

#include "executor/internal.h"

/* Macros, not an enum: ISO C enumerators are ints and UINT32_MAX is not
 * one (clang -Wpedantic rejects it). */
#define TOKEN_EMPTY 0u
#define TOKEN_NOTIFIED 1u
#define TOKEN_PARKED UINT32_MAX /* EMPTY - 1: park is one fetch_sub */

void ferry__unpark(struct ferry__worker *w)
{
    /* Release: pairs with the acquire in ferry__park_token, so what the
     * waker set up (a granted core) is visible to the woken worker. */
    if (atomic_exchange_explicit(&w->park, TOKEN_NOTIFIED,
                                 memory_order_release) == TOKEN_PARKED)
        ferry__futex_wake(&w->park, 1);
}

bool ferry__park_token(struct ferry__worker *w, uint64_t deadline_ns)
{
    /* NOTIFIED -> EMPTY consumes a pending unpark; EMPTY -> PARKED. */
    if (atomic_fetch_sub_explicit(&w->park, 1, memory_order_acquire) ==
        TOKEN_NOTIFIED)
        return true;
    for (;;) {
        int rc = ferry__futex_wait(&w->park, TOKEN_PARKED, deadline_ns);
        uint32_t expect = TOKEN_NOTIFIED;
        /* Acquire: pairs with the release exchange in ferry__unpark. */
        if (atomic_compare_exchange_strong_explicit(
                &w->park, &expect, TOKEN_EMPTY, memory_order_acquire,
                memory_order_relaxed))
            return true;
        if (rc == -ETIMEDOUT ||
            (deadline_ns != 0 && ferry__now_ns() >= deadline_ns)) {
            /* Back to EMPTY; an unpark that raced the timeout counts. */
            return atomic_exchange_explicit(&w->park, TOKEN_EMPTY,
                                            memory_order_acquire) ==
                   TOKEN_NOTIFIED;
        }
    }
}

bool ferry__work_visible(ferry_pool *pool)
{
    /* Relaxed loads: callers order them with their own seq_cst fence. */
    if (ferry__inject_nonempty(&pool->inject))
        return true;
    unsigned n = ferry__nslots(pool);
    for (unsigned i = 0; i < n; i++) {
        struct ferry__worker *v = ferry__slot(pool, i);
        if (v != NULL && ferry__deque_len(&v->dq) > 0)
            return true;
    }
    return false;
}

bool ferry__any_blocked_core(ferry_pool *pool)
{
    for (unsigned i = 0; i < pool->ncores; i++) {
        uint64_t w =
            atomic_load_explicit(&pool->cores[i].word, memory_order_relaxed);
        if (ferry__core_status(w) == FERRY__CORE_BLOCKED)
            return true;
    }
    return false;
}

/* An idle core to wake a worker with. If there is none but a core sits in
 * blocking work, the monitor retakes it once it has stayed blocked for a
 * whole monitor period (short blocking costs no hand-over), so make sure
 * the monitor is polling. The caller has fenced after its publication. */
static bool core_available(ferry_pool *pool)
{
    if (atomic_load_explicit(&pool->sched.nidle_cores, memory_order_relaxed))
        return true;
    if (ferry__any_blocked_core(pool))
        ferry__want_retake(pool);
    return false;
}

struct ferry__core *ferry__core_get_locked(ferry_pool *pool)
{
    struct ferry__sched *s = &pool->sched;
    struct ferry__core *c = s->idle_cores;
    if (c != NULL) {
        s->idle_cores = c->next_idle;
        unsigned n =
            atomic_load_explicit(&s->nidle_cores, memory_order_relaxed) - 1;
        atomic_store_explicit(&s->nidle_cores, n, memory_order_relaxed);
        if (n == 0)
            ferry__monitor_kick_locked(pool);
        uint64_t w = atomic_load_explicit(&c->word, memory_order_relaxed);
        /* Relaxed: an idle core's word is only written under the lock. */
        atomic_store_explicit(
            &c->word, ferry__core_word((w >> 2) + 1, FERRY__CORE_RUNNING),
            memory_order_relaxed);
        return c;
    }
    return NULL;
}

void ferry__grant_locked(struct ferry__worker *w, struct ferry__core *c)
{
    w->core = c;
    w->core_word = atomic_load_explicit(&c->word, memory_order_relaxed);
    c->holder = w;
}

void ferry__core_put_locked(ferry_pool *pool, struct ferry__core *c)
{
    struct ferry__sched *s = &pool->sched;
    uint64_t w = atomic_load_explicit(&c->word, memory_order_relaxed);
    struct ferry__worker *x = s->wanters;
    if (x != NULL) {
        /* A worker inside a task is owed a core: serve it first. */
        s->wanters = x->next;
        if (s->wanters == NULL)
            s->wanters_tail = NULL;
        x->wanting = false;
        atomic_store_explicit(
            &s->nwanters,
            atomic_load_explicit(&s->nwanters, memory_order_relaxed) - 1,
            memory_order_relaxed);
        atomic_store_explicit(
            &c->word, ferry__core_word((w >> 2) + 1, FERRY__CORE_RUNNING),
            memory_order_relaxed);
        ferry__grant_locked(x, c);
        ferry__unpark(x);
        return;
    }
    atomic_store_explicit(&c->word, ferry__core_word(w >> 2, FERRY__CORE_IDLE),
                          memory_order_relaxed);
    c->holder = NULL;
    c->next_idle = s->idle_cores;
    s->idle_cores = c;
    atomic_store_explicit(
        &s->nidle_cores,
        atomic_load_explicit(&s->nidle_cores, memory_order_relaxed) + 1,
        memory_order_relaxed);
}

bool ferry__owns_core(struct ferry__worker *w)
{
    return w->core != NULL &&
           atomic_load_explicit(&w->core->word, memory_order_relaxed) ==
               w->core_word;
}

void ferry__core_release_locked(struct ferry__worker *w)
{
    /* Under the lock only the monitor (also under the lock) can have taken
     * a RUNNING core from us, so the comparison is stable here. */
    if (ferry__owns_core(w))
        ferry__core_put_locked(w->pool, w->core);
    w->core = NULL;
}

static void idle_push_locked(struct ferry__sched *s, struct ferry__worker *w)
{
    w->next = s->idle;
    s->idle = w;
    w->idle = true;
    s->nidle++;
}

static void idle_remove_locked(struct ferry__sched *s, struct ferry__worker *w)
{
    struct ferry__worker **pp = &s->idle;
    while (*pp != w)
        pp = &(*pp)->next;
    *pp = w->next;
    w->idle = false;
    s->nidle--;
}

/* Lock held on entry, released on return. Give core c to an idle worker,
 * or to a new thread when allowed. On failure c goes back (to a wanter or
 * the idle list) and the caller still owns its nsearching count. */
static int start_with_core(ferry_pool *pool, struct ferry__core *c,
                           bool searching, bool create)
{
    struct ferry__sched *s = &pool->sched;
    struct ferry__worker *w = s->idle;
    if (w != NULL) {
        idle_remove_locked(s, w);
        ferry__grant_locked(w, c);
        w->searching = searching;
        pthread_mutex_unlock(&s->lock);
        ferry__unpark(w);
        return 0;
    }
    int rc = -EAGAIN;
    bool tried = create && s->nthreads < pool->max_threads;
    if (tried)
        rc = ferry__worker_create_locked(pool, c, searching);
    /* On failure the core goes back idle, and the monitor tries again
     * until a thread starts or the work is gone, in two cases:
     *   - the thread (or its record) could not be made: nobody may come to
     *     run the work it was for (the waker's retries do not create,
     *     start_searcher, and a holder blocked on that work never returns
     *     its core; issue 6, tests/fault_pool_new.c);
     *   - draining with no slot: the workers that would re-check may be
     *     exiting (and still fill max_threads), and no shutdown may be
     *     waiting any more to restart one (review: a task accepted before
     *     the close stayed queued after a drain with timeout 0). */
    if (rc != 0 && (tried || ferry__pool_state(pool) == FERRY__POOL_DRAIN))
        ferry__monitor_retry_locked(pool);
    if (rc != 0)
        ferry__core_put_locked(pool, c);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int ferry__start_worker_locked(ferry_pool *pool, struct ferry__core *c,
                               bool searching)
{
    return start_with_core(pool, c, searching, true);
}

int ferry__start_for_work_locked(ferry_pool *pool)
{
    struct ferry__core *c =
        ferry__work_visible(pool) ? ferry__core_get_locked(pool) : NULL;
    if (c == NULL) {
        pthread_mutex_unlock(&pool->sched.lock);
        return 0;
    }
    int rc = start_with_core(pool, c, false, true);
    return rc == 0 ? 1 : rc;
}

/* We raised nsearching 0 -> 1 for a worker that is to be woken. */
static void start_searcher(ferry_pool *pool)
{
    struct ferry__sched *s = &pool->sched;
    bool create = true;
    for (int tries = 0; tries < 4; tries++) {
        pthread_mutex_lock(&s->lock);
        struct ferry__core *c = ferry__core_get_locked(pool);
        if (c != NULL) {
            if (start_with_core(pool, c, true, create) == 0)
                return;
            create = false; /* at max_threads or out of resources */
        } else {
            pthread_mutex_unlock(&s->lock);
        }
        /* Undo our count, then fence and re-check like any searcher that
         * stops (see the file comment): a submitter that saw our transient
         * count relied on us. Pairs with the fence in ferry__notify. */
        atomic_fetch_sub_explicit(&s->nsearching, 1, memory_order_seq_cst);
        ferry__fence_seq_cst();
        if (!ferry__work_visible(pool) || !core_available(pool))
            return;
        unsigned zero = 0;
        /* seq_cst, like every nsearching update: all of them take part in
         * the Dekker pairs of the file comment. */
        if (!atomic_compare_exchange_strong_explicit(&s->nsearching, &zero, 1,
                                                     memory_order_seq_cst,
                                                     memory_order_relaxed))
            return; /* someone else searches: their responsibility */
    }
    /* Still failing: there is a core but no idle worker, and no thread
     * may be created. Giving up is safe: every worker is busy, and one
     * that goes idle after our last look at the idle stack took sched.lock
     * after us, so its own fence-and-re-check in ferry__park_worker sees
     * the work we were woken for (published before our lock). */
    atomic_fetch_sub_explicit(&s->nsearching, 1, memory_order_seq_cst);
}

void ferry__wakep(ferry_pool *pool)
{
    struct ferry__sched *s = &pool->sched;
    /* Relaxed: the caller's seq_cst fence orders these loads after its
     * publication of work (or of a BLOCKED core). */
    if (atomic_load_explicit(&s->nsearching, memory_order_relaxed) != 0)
        return;
    if (!core_available(pool))
        return;
    unsigned zero = 0;
    /* seq_cst: one winner among concurrent wakers; the loser relies on the
     * winner's searcher, which stops through the fence-and-re-check. */
    if (!atomic_compare_exchange_strong_explicit(&s->nsearching, &zero, 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    start_searcher(pool);
}

void ferry__notify(ferry_pool *pool)
{
    /* The submitter's StoreLoad fence: our publication of work (deque
     * bottom or inject nonempty) comes before our loads of nsearching and of
     * the cores. Pairs with the fences in ferry__park_worker,
     * ferry__end_searching, start_searcher and ferry__blocking_enter. */
    ferry__fence_seq_cst();
    ferry__wakep(pool);
}

bool ferry__begin_searching(struct ferry__worker *w)
{
    if (w->searching)
        return true;
    struct ferry__sched *s = &w->pool->sched;
    unsigned n = atomic_load_explicit(&s->nsearching, memory_order_relaxed);
    if (2 * n >= w->pool->ncores)
        return false; /* tokio's cap: at most half the cores search */
    /* seq_cst like every nsearching update; an overshoot of the cap by a
     * racing increment is harmless (only contention). */
    atomic_fetch_add_explicit(&s->nsearching, 1, memory_order_seq_cst);
    w->searching = true;
    return true;
}

void ferry__end_searching(struct ferry__worker *w)
{
    if (!w->searching)
        return;
    w->searching = false;
    ferry_pool *pool = w->pool;
    /* seq_cst: this decrement is the "A" store of the file comment; the
     * fence below completes the pair when we were the last searcher. */
    if (atomic_fetch_sub_explicit(&pool->sched.nsearching, 1,
                                  memory_order_seq_cst) != 1)
        return;
    /* We were the last searcher and found work: Go's rule, wake another
     * if more is left. The fence pairs with the one in ferry__notify: a
     * submitter that saw our count skipped its wake-up, and we see its
     * work here. */
    ferry__fence_seq_cst();
    if (ferry__work_visible(pool))
        ferry__wakep(pool);
}

/* Take a core for w, which is on the idle stack, if work is visible.
 * Lock held. Returns true when w leaves the idle stack with a core. */
static bool reclaim_locked(ferry_pool *pool, struct ferry__worker *w)
{
    if (!w->idle)
        return w->core != NULL; /* someone popped us: granted, or exit */
    if (!ferry__work_visible(pool))
        return false;
    struct ferry__core *c = ferry__core_get_locked(pool);
    if (c == NULL) {
        /* Every core is held: running holders see the work; a blocked one
         * is the monitor's to retake. */
        if (ferry__any_blocked_core(pool))
            ferry__want_retake(pool);
        return false;
    }
    idle_remove_locked(&pool->sched, w);
    ferry__grant_locked(w, c);
    return true;
}

bool ferry__park_worker(struct ferry__worker *w)
{
    ferry_pool *pool = w->pool;
    struct ferry__sched *s = &pool->sched;
    pthread_mutex_lock(&s->lock);
    ferry__core_release_locked(w);
    /* Read and clear under the lock: once we are on the idle stack a waker
     * may pop us and set searching for our next role. */
    bool was_searching = w->searching;
    w->searching = false;
    idle_push_locked(s, w);
    pthread_mutex_unlock(&s->lock);
    if (was_searching)
        atomic_fetch_sub_explicit(&s->nsearching, 1, memory_order_seq_cst);
    /* The worker's StoreLoad fence: our release of the core, our place on
     * the idle stack and the nsearching decrement come before the re-check
     * of the queues. Pairs with the fence in ferry__notify. */
    ferry__fence_seq_cst();
    pthread_mutex_lock(&s->lock);
    bool back = reclaim_locked(pool, w);
    if (!back && w->idle && ferry__pool_state(pool) != FERRY__POOL_OPEN) {
        /* Shutting down and nothing we can run: exit. */
        idle_remove_locked(s, w);
        pthread_mutex_unlock(&s->lock);
        return false;
    }
    pthread_mutex_unlock(&s->lock);
    if (back)
        return true; /* searching only if a waker counted us as such */
    return ferry__idle_worker(w);
}

bool ferry__idle_worker(struct ferry__worker *w)
{
    ferry_pool *pool = w->pool;
    struct ferry__sched *s = &pool->sched;
    bool timed_out = false;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        if (!w->idle) {
            /* Popped: with a core to run, or without one to exit. */
            bool granted = w->core != NULL;
            pthread_mutex_unlock(&s->lock);
            return granted;
        }
        if (ferry__pool_state(pool) != FERRY__POOL_OPEN) {
            idle_remove_locked(s, w);
            pthread_mutex_unlock(&s->lock);
            return false;
        }
        if (timed_out && s->nthreads > pool->ncores) {
            /* A spare idle for keepalive_ns retires; the last ncores
             * threads stay (they park without a deadline). */
            idle_remove_locked(s, w);
            pthread_mutex_unlock(&s->lock);
            atomic_fetch_add_explicit(&pool->spares_retired, 1,
                                      memory_order_relaxed);
            return false;
        }
        uint64_t deadline = 0;
        if (s->nthreads > pool->ncores)
            deadline = ferry__now_ns() + pool->keepalive_ns;
        pthread_mutex_unlock(&s->lock);
        ferry__stat_inc(&w->st.parks);
        timed_out = !ferry__park_token(w, deadline);
        if (!timed_out)
            ferry__stat_inc(&w->st.unparks);
    }
}

void ferry__wake_all_idle(ferry_pool *pool)
{
    struct ferry__sched *s = &pool->sched;
    pthread_mutex_lock(&s->lock);
    struct ferry__worker *list = s->idle;
    s->idle = NULL;
    s->nidle = 0;
    for (struct ferry__worker *w = list; w != NULL; w = w->next)
        w->idle = false;
    /* Unpark under the lock: a popped worker may exit and its record be
     * reused once we let go, and ->next must still be ours to read. */
    for (struct ferry__worker *w = list; w != NULL; w = w->next)
        ferry__unpark(w);
    pthread_mutex_unlock(&s->lock);
}
