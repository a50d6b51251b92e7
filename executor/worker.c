/*
 * executor/worker.c: the worker thread: find a task, run it, park.
 *
 * The loop (algorithms.md §2.2, tokio/Go): with a core, a worker takes
 * from its own deque (LIFO, cache-hot), then from the injection queue (a
 * batch of min(len / cores + 1, 32), the rest moved onto its deque), and
 * every 61st task it looks at the injection queue first so outside work
 * is not starved by a busy deque. With nothing local it becomes a searcher
 * (at most half the cores search) and steals from random victims, taking
 * up to half of a victim's tasks one CAS at a time (a LIFO Chase-Lev deque
 * cannot be batch-stolen with one CAS, algorithms.md §1.4 point 5). A
 * searcher spins over the victims for a bounded time before parking, so
 * back-to-back submissions are picked up without a futex wake-up.
 *
 * Running a task: one CAS PENDING -> RUNNING decides between fn and a
 * cancellation; then fn, then the DONE store, then the completion hook,
 * after which the task is never touched again.
 *
 * Thread: worker_main is the thread; everything else runs on a worker
 * except ferry__worker_create_locked (any thread, sched.lock held).
 */
#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor/internal.h"

/* Empty steal sweeps a searcher makes before it parks, each followed by a
 * yield (about 10 us in all here). A build-time knob for tuning with
 * bench_pool, e.g. -Dc_args=-DFERRY__SPIN_ROUNDS=64; the library reads no
 * environment. */
#ifndef FERRY__SPIN_ROUNDS
#define FERRY__SPIN_ROUNDS 32
#endif

enum {
    FAIRNESS_TICKS = 61, /* tokio's and Go's global-queue interval */
    STEAL_BATCH = 32,    /* crossbeam's MAX_BATCH */
    SPIN_ROUNDS = FERRY__SPIN_ROUNDS, /* empty sweeps before parking */
    DEQUE_LOG2_CAP = 8,               /* 256 slots to start with */
};

static FERRY__TLS struct ferry__worker *tls_worker;
static FERRY__TLS struct ferry__task *tls_task;

struct ferry__worker *ferry__worker_self(void)
{
    return tls_worker;
}

struct ferry__worker *ferry__worker_of(ferry_pool *pool)
{
    struct ferry__worker *w = tls_worker;
    return w != NULL && w->pool == pool && w->gen == pool->gen ? w : NULL;
}

struct ferry__task *ferry__current_task(void)
{
    return tls_task;
}

/* ---- records and threads ---- */

static struct ferry__worker *record_new(ferry_pool *pool, unsigned index)
{
    size_t size = (sizeof(struct ferry__worker) + FERRY__CACHELINE - 1) /
                  FERRY__CACHELINE * FERRY__CACHELINE;
    struct ferry__worker *w = aligned_alloc(FERRY__CACHELINE, size);
    if (w == NULL)
        return NULL;
    memset(w, 0, size);
    if (ferry__deque_init(&w->dq, DEQUE_LOG2_CAP) != 0) {
        free(w);
        return NULL;
    }
    w->pool = pool;
    w->index = index;
    return w;
}

void ferry__worker_record_free(struct ferry__worker *w)
{
    ferry__deque_term(&w->dq);
    free(w);
}

int ferry__worker_create_locked(ferry_pool *pool, struct ferry__core *c,
                                bool searching)
{
    struct ferry__sched *s = &pool->sched;
    unsigned i = 0;
    while (pool->slot_used[i])
        i++; /* a free slot exists: nthreads < max_threads */
    struct ferry__worker *w =
        atomic_load_explicit(&pool->slots[i], memory_order_relaxed);
    if (w == NULL) {
        w = record_new(pool, i);
        if (w == NULL)
            return -ENOMEM;
        /* Release: thieves that load this slot see an initialised deque.
         * Published before the thread runs, so its pushes are visible to
         * ferry__work_visible from the start. */
        atomic_store_explicit(&pool->slots[i], w, memory_order_release);
        if (i + 1 > s->nslots) {
            s->nslots = i + 1;
            atomic_store_explicit(&pool->nslots, i + 1, memory_order_release);
        }
    } else if (w->joinable) {
        /* The thread that used this slot has left the lock for good and is
         * returning: this join does not wait for anything we hold. */
        pthread_join(w->thread, NULL);
        w->joinable = false;
    }
    w->gen = pool->gen;
    w->blocking = 0;
    w->nest = 0;
    w->tick = 0;
    w->rng = 0x9e3779b97f4a7c15ull * (i + 1) ^ ferry__now_ns();
    w->idle = false;
    w->wanting = false;
    atomic_store_explicit(&w->park, 0, memory_order_relaxed);
    ferry__grant_locked(w, c);
    w->searching = searching;
    int rc = ferry__thread_spawn(pool, &w->thread, ferry__worker_main, w);
    if (rc != 0) {
        w->core = NULL;
        return rc;
    }
    w->joinable = true;
    w->live = true;
    pool->slot_used[i] = 1;
    s->nthreads++;
    atomic_store_explicit(&s->alive, s->nthreads, memory_order_relaxed);
    if (s->nthreads > pool->ncores)
        atomic_fetch_add_explicit(&pool->spares_created, 1,
                                  memory_order_relaxed);
    return 0;
}

static void worker_exit(struct ferry__worker *w)
{
    ferry_pool *pool = w->pool;
    struct ferry__sched *s = &pool->sched;
    pthread_mutex_lock(&s->lock);
    ferry__core_release_locked(w);
    w->live = false;
    pool->slot_used[w->index] = 0;
    s->nthreads--;
    unsigned left = s->nthreads;
    /* Release: pairs with the acquire load in the shutdown wait, so the
     * effects of every task this worker ran are visible to it. */
    atomic_store_explicit(&s->alive, left, memory_order_release);
    pthread_mutex_unlock(&s->lock);
    if (left == 0)
        ferry__futex_wake(&s->alive, INT_MAX);
}

/* ---- finding work ---- */

static uint64_t next_rand(struct ferry__worker *w)
{
    uint64_t x = w->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->rng = x;
    return x;
}

/* Put a task on our deque; if the deque cannot grow, back on the queue.
 * It was invisible to ferry__work_visible in between, so notify. */
static void push_local(struct ferry__worker *w, struct ferry__task *t)
{
    if (ferry__deque_push(&w->dq, t) != 0) {
        ferry__inject_requeue(&w->pool->inject, t);
        ferry__notify(w->pool);
    }
}

/* wait: take the lock even if held (the fairness tick, the last look
 * before parking); otherwise a held lock reads as nothing (inject.c). */
static struct ferry__task *pop_inject(struct ferry__worker *w, bool wait)
{
    ferry_pool *pool = w->pool;
    if (!ferry__inject_nonempty(&pool->inject))
        return NULL;
    /* tokio's share, len / cores + 1, up to a batch; thieves rebalance
     * whatever lands on our deque. */
    struct ferry__task *batch[STEAL_BATCH];
    bool split;
    uint64_t n = wait ? ferry__inject_pop_batch(&pool->inject, pool->ncores,
                                                STEAL_BATCH, batch, &split)
                      : ferry__inject_try_pop_batch(&pool->inject, pool->ncores,
                                                    STEAL_BATCH, batch, &split);
    if (n == 0)
        return NULL;
    /* Start fetching every task of the batch at once: their lines were
     * written on the submitter's core, and one miss after another is
     * what the list used to cost (inject.c). */
    for (uint64_t i = 0; i < n; i++) {
        __builtin_prefetch(batch[i]);
        __builtin_prefetch((const char *)(batch[i] + 1) - 1);
    }
    for (uint64_t i = 1; i < n; i++)
        push_local(w, batch[i]);
    if (split)
        ferry__notify(pool);
    if (n > 1)
        ferry__lazy_moved_work(w);
    return batch[0];
}

struct ferry__task *ferry__find_local(struct ferry__worker *w)
{
    struct ferry__task *t = ferry__deque_take(&w->dq);
    return t != NULL ? t : pop_inject(w, false);
}

/* Steal one task from v, then up to half of what is left into our deque.
 * *raced is set when a CAS was lost (there was work: do not park). */
static struct ferry__task *steal_from(struct ferry__worker *w,
                                      struct ferry__worker *v, bool *raced)
{
    struct ferry__task *t = NULL;
    enum ferry__steal r = ferry__deque_steal(&v->dq, &t);
    if (r != FERRY__STEAL_OK) {
        *raced |= r == FERRY__STEAL_RETRY;
        return NULL;
    }
    int64_t more = ferry__deque_len(&v->dq) / 2;
    if (more > STEAL_BATCH - 1)
        more = STEAL_BATCH - 1;
    uint64_t n = 1;
    for (int64_t i = 0; i < more; i++) {
        struct ferry__task *x;
        if (ferry__deque_steal(&v->dq, &x) != FERRY__STEAL_OK)
            break;
        push_local(w, x);
        n++;
    }
    atomic_store_explicit(
        &w->st.stolen,
        atomic_load_explicit(&w->st.stolen, memory_order_relaxed) + n,
        memory_order_relaxed);
    if (n > 1)
        ferry__lazy_moved_work(w);
    return t;
}

struct ferry__task *ferry__steal_any(struct ferry__worker *w, bool *raced)
{
    ferry_pool *pool = w->pool;
    unsigned n = ferry__nslots(pool);
    if (n < 2)
        return NULL;
    unsigned start = (unsigned)(next_rand(w) % n);
    for (unsigned k = 0; k < n; k++) {
        unsigned i = start + k < n ? start + k : start + k - n;
        struct ferry__worker *v = ferry__slot(pool, i);
        if (v == NULL || v == w)
            continue;
        struct ferry__task *t = steal_from(w, v, raced);
        if (t != NULL)
            return t;
    }
    return NULL;
}

/* As a searcher: sweep the victims and the injection queue for a bounded
 * number of empty rounds before giving up. A round that lost a steal race
 * does not count as empty: there was work. */
static struct ferry__task *search(struct ferry__worker *w)
{
    unsigned empty = 0;
    while (empty < SPIN_ROUNDS) {
        bool raced = false;
        struct ferry__task *t = ferry__steal_any(w, &raced);
        if (t == NULL) /* the last sweep waits for the lock */
            t = pop_inject(w, empty + 1 == SPIN_ROUNDS);
        if (t != NULL)
            return t;
        if (raced)
            continue;
        /* Yield, not pause: with as many busy threads as CPUs (an outside
         * producer plus the workers), or when the scheduler puts the
         * producer of the work we wait for on this CPU, a pure spin keeps
         * it off the CPU (an offload round trip on one CPU: 10 us with 8
         * rounds of pauses first, 1.5 us yielding at once as the loop
         * does; README, session 9). A lone yield costs ~0.2 us. */
        empty++;
        sched_yield();
    }
    return NULL;
}

/* With a core: the next task to run, or NULL to park. A searcher that
 * finds nothing stays counted as searching: ferry__park_worker drops the
 * count with the fence and re-check the protocol needs. */
static struct ferry__task *next_task(struct ferry__worker *w)
{
    struct ferry__task *t = NULL;
    /* The fairness tick waits for the lock: outside work is looked at
     * every 61 tasks even while submitters keep it busy. */
    if (++w->tick % FAIRNESS_TICKS == 0)
        t = pop_inject(w, true);
    if (t == NULL)
        t = ferry__find_local(w);
    if (t == NULL && ferry__begin_searching(w))
        t = search(w);
    else if (t == NULL && ferry__inject_nonempty(&w->pool->inject))
        sched_yield(); /* not allowed to search, and our try found the
                          queue's lock held: its holder may need this CPU
                          (park then re-checks the flag) */
    if (t != NULL)
        ferry__end_searching(w); /* no-op unless searching */
    return t;
}

/* ---- running tasks ---- */

void ferry__drop_task(ferry_pool *pool, struct ferry__worker *w,
                      struct ferry__task *t)
{
    uint32_t expect = FERRY__TASK_PENDING;
    /* acq_rel: as the start CAS in ferry__run_task; a task already
     * CANCELLED by ferry__task_cancel is dropped the same way. */
    atomic_compare_exchange_strong_explicit(
        &t->state, &expect, FERRY__TASK_CANCELLED, memory_order_acq_rel,
        memory_order_acquire);
    if (w != NULL)
        ferry__stat_inc(&w->st.cancelled);
    else
        atomic_fetch_add_explicit(&pool->dropped, 1, memory_order_relaxed);
    t->complete(t, -ECANCELED);
}

static void set_current(struct ferry__worker *w, struct ferry__task *t)
{
    tls_task = t;
    /* Relaxed: read by the shutdown report and the monitor as hints only;
     * they never dereference the task. */
    atomic_store_explicit(&w->cur_task, t, memory_order_relaxed);
    atomic_store_explicit(&w->cur_fn, t != NULL ? t->fn : NULL,
                          memory_order_relaxed);
    atomic_store_explicit(&w->cur_arg, t != NULL ? t->arg : NULL,
                          memory_order_relaxed);
}

void ferry__run_task(struct ferry__worker *w, struct ferry__task *t)
{
    ferry_pool *pool = w->pool;
    ferry__stat_inc(&w->st.started);
    uint32_t expect = FERRY__TASK_PENDING;
    bool own = (t->flags & FERRY__TASK_OWN_STATE) != 0;
    /* Acquire: pairs with the acq_rel CAS in ferry__task_cancel, so a
     * canceller's writes are visible to the completion hook. Exactly one
     * of this CAS and the canceller's succeeds. An OWN_STATE task's owner
     * arbitrates with its own CAS (the bridge's future). */
    if (ferry__pool_state(pool) == FERRY__POOL_CANCEL ||
        (!own && !atomic_compare_exchange_strong_explicit(
                     &t->state, &expect, FERRY__TASK_RUNNING,
                     memory_order_acquire, memory_order_acquire))) {
        ferry__drop_task(pool, w, t);
        return;
    }
    uint64_t start = 0;
    if (t->enqueue_ns != 0) {
        start = ferry__now_ns();
        ferry__hist_add(w->st.queue_wait, start - t->enqueue_ns);
    }
    struct ferry__task *outer = tls_task;
    set_current(w, t);
    bool blocking = (t->flags & FERRY_TASK_BLOCKING) != 0;
    ferry__task_complete_fn *complete = t->complete;
    if (!blocking && w->lazy) { /* CPU work: our core must be RUNNING */
        ferry__blocking_settle(w);
        if (w->core == NULL)
            ferry__wait_for_core(w);
    }
    w->nest++;
    if (blocking)
        ferry__blocking_enter(w);
    t->fn(t->arg); /* an OWN_STATE task may be gone from here on */
    if (blocking)
        ferry__blocking_exit(w, w->nest == 1);
    w->nest--;
    set_current(w, outer);
    if (start != 0)
        ferry__hist_add(w->st.run_time, ferry__now_ns() - start);
    ferry__stat_inc(&w->st.completed);
    /* Release: fn's effects before DONE, for ferry__task_cancel's and
     * ferry_task_status's acquire loads. */
    if (!own)
        atomic_store_explicit(&t->state, FERRY__TASK_DONE,
                              memory_order_release);
    complete(t, 0); /* t may be freed from here on */
}

/* After a top-level task: notice a core taken by the monitor, and give
 * ours to a worker that waits inside a task for one. */
static void after_task(struct ferry__worker *w)
{
    if (w->core == NULL)
        return;
    if (!ferry__owns_core(w)) {
        w->core = NULL;
        w->lazy = false;
    } else if (atomic_load_explicit(&w->pool->sched.nwanters,
                                    memory_order_relaxed) != 0) {
        ferry__blocking_settle(w);
        if (w->core != NULL)
            ferry__handoff_to_wanter(w);
    }
}

void *ferry__worker_main(void *arg)
{
    struct ferry__worker *w = arg;
    ferry_pool *pool = w->pool;
    tls_worker = w;
    /* Relaxed: the monitor reads it as a hint (holder_on_cpu_locked); a
     * 0 or stale value only makes it retake sooner, never wrongly. */
    atomic_store_explicit(&w->tid, ferry__gettid(), memory_order_relaxed);
    char index[12];
    snprintf(index, sizeof index, "%u", w->index);
    ferry__thread_name(pool->prefix, index);
    if (pool->on_start != NULL)
        pool->on_start(pool->hook_ctx, w->index);
    for (;;) {
        /* A child forked from inside a task: the pool here is not ours. */
        if (w->gen != ferry__fork_gen())
            return NULL;
        if (w->core != NULL) {
            struct ferry__task *t = next_task(w);
            if (t != NULL) {
                ferry__run_task(w, t);
                after_task(w);
                continue;
            }
        }
        ferry__blocking_settle(w); /* searching found nothing */
        if (!ferry__park_worker(w))
            break;
    }
    if (pool->on_stop != NULL)
        pool->on_stop(pool->hook_ctx, w->index);
    tls_worker = NULL;
    worker_exit(w);
    return NULL;
}
