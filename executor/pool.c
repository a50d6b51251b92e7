/*
 * executor/pool.c: pool lifecycle, submission, shutdown, task handles.
 *
 * ferry_pool_new is a list of init steps with reverse-order cleanup; it
 * starts one worker per core and the monitor, and on any failure joins
 * what it started and frees everything (STYLE.md point 5).
 *
 * Submission: a worker of this pool pushes on its own deque, lock-free;
 * anyone else appends to the injection queue under its mutex. Either way
 * ferry__notify then wakes one idle worker if nobody is searching
 * (park.c). The pool state only ever rises, OPEN -> DRAIN -> CANCEL; the
 * injection queue carries the matching "closed" level, checked under its
 * lock, so an outside submit racing a shutdown is either refused or seen
 * by the shutdown. Nested submits from workers stay accepted while a drain
 * runs, so fork-join tasks can finish.
 *
 * Shutdown raises the state, drops the queued tasks in cancel mode (their
 * completion runs here, with -ECANCELED), wakes every idle worker, and
 * waits on the futex word sched.alive: workers exit once they find no
 * work, and the last one out wakes the waiter. A drain's waiter that
 * finds every worker gone with tasks still queued (accepted just before
 * the close, their wake-up late) starts one for them (drain_restart).
 *
 * Task handles (struct ferry_task) hold two references, the caller's and
 * the pool's; the pool drops its own in the completion hook, so a cancel
 * racing completion always touches live memory.
 *
 * Thread: any, except that free and waiting shutdowns refuse the pool's
 * own workers (-EDEADLK).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor/internal.h"

_Static_assert(sizeof(struct ferry_task) <= FERRY__BLOCK_SIZE,
               "a task handle must fit a cache block");

static void *alloc_lines(size_t size)
{
    size = (size + FERRY__CACHELINE - 1) / FERRY__CACHELINE * FERRY__CACHELINE;
    void *p = aligned_alloc(FERRY__CACHELINE, size);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

static int configure(ferry_pool *pool, const struct ferry_pool_opts *o)
{
    unsigned threads = o->threads != 0 ? o->threads : ferry__cpu_count();
    unsigned max = o->max_threads;
    if (max == 0)
        max = threads > 64 ? threads : 64;
    if (threads > 4096 || max > 4096 || max < threads)
        return -EINVAL;
    if (o->stack_size != 0 && o->stack_size < ferry__stack_min())
        return -EINVAL;
    pool->ncores = threads;
    pool->max_threads = max;
    pool->keepalive_ns =
        o->keepalive_ns != 0 ? o->keepalive_ns : 10ull * 1000000000u;
    pool->starvation_ns =
        o->starvation_ns != 0 ? o->starvation_ns : 50ull * 1000000u;
    pool->stack_size = o->stack_size;
    pool->queue_limit = o->queue_limit;
    const char *prefix = o->name_prefix != NULL ? o->name_prefix : "ferry-w";
    strncpy(pool->prefix, prefix, sizeof pool->prefix - 1);
    pool->on_start = o->on_thread_start;
    pool->on_stop = o->on_thread_stop;
    pool->hook_ctx = o->hook_ctx;
    return 0;
}

static int alloc_parts(ferry_pool *pool)
{
    pool->cores = alloc_lines(pool->ncores * sizeof(struct ferry__core));
    pool->slots = calloc(pool->max_threads, sizeof pool->slots[0]);
    pool->slot_used = calloc(pool->max_threads, 1);
    if (pool->cores == NULL || pool->slots == NULL || pool->slot_used == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < pool->ncores; i++)
        pool->cores[i].index = i;
    return 0;
}

static void free_parts(ferry_pool *pool)
{
    for (unsigned i = 0; pool->slots != NULL && i < pool->max_threads; i++) {
        struct ferry__worker *w =
            atomic_load_explicit(&pool->slots[i], memory_order_relaxed);
        if (w != NULL)
            ferry__worker_record_free(w);
    }
    for (unsigned i = 0; i < pool->nstale; i++)
        ferry__worker_record_free(pool->stale[i]);
    free(pool->stale);
    free(pool->slot_used);
    free(pool->slots);
    free(pool->cores);
}

static void join_workers(ferry_pool *pool)
{
    for (unsigned i = 0; i < pool->max_threads; i++) {
        struct ferry__worker *w =
            atomic_load_explicit(&pool->slots[i], memory_order_relaxed);
        if (w != NULL && w->joinable) {
            pthread_join(w->thread, NULL);
            w->joinable = false;
        }
    }
}

/* Drop every queued task on the calling thread. */
static void drop_queued(ferry_pool *pool)
{
    struct ferry__task *batch[64], *t;
    bool split;
    uint64_t got;
    while ((got = ferry__inject_pop_batch(&pool->inject, 1, 64, batch, &split)))
        for (uint64_t i = 0; i < got; i++)
            ferry__drop_task(pool, NULL, batch[i]);
    unsigned n = ferry__nslots(pool);
    for (unsigned i = 0; i < n; i++) {
        struct ferry__worker *w = ferry__slot(pool, i);
        if (w == NULL)
            continue;
        enum ferry__steal r;
        while ((r = ferry__deque_steal(&w->dq, &t)) != FERRY__STEAL_EMPTY)
            if (r == FERRY__STEAL_OK)
                ferry__drop_task(pool, NULL, t);
    }
}

static void begin_shutdown(ferry_pool *pool, int target)
{
    int cur = ferry__pool_state(pool);
    /* seq_cst: the state is read by workers after their own locks and
     * fences; it only ever rises. */
    while (cur < target && !atomic_compare_exchange_weak_explicit(
                               &pool->state, &cur, target, memory_order_seq_cst,
                               memory_order_acquire))
        ;
    ferry__inject_close(&pool->inject, target == FERRY__POOL_CANCEL ? 2 : 1);
    if (target == FERRY__POOL_CANCEL)
        drop_queued(pool);
    ferry__wake_all_idle(pool);
}

static void fill_report(ferry_pool *pool, struct ferry_pool_report *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_lock(&pool->sched.lock);
    for (unsigned i = 0; i < pool->sched.nslots; i++) {
        struct ferry__worker *w =
            atomic_load_explicit(&pool->slots[i], memory_order_relaxed);
        if (w == NULL || !w->live)
            continue;
        const void *t =
            atomic_load_explicit(&w->cur_task, memory_order_relaxed);
        if (t == NULL)
            continue;
        if (r->listed < FERRY_POOL_REPORT_MAX) {
            struct ferry_pool_running *e = &r->task[r->listed++];
            e->task = t;
            e->fn = atomic_load_explicit(&w->cur_fn, memory_order_relaxed);
            e->arg = atomic_load_explicit(&w->cur_arg, memory_order_relaxed);
        }
        r->running++;
    }
    pthread_mutex_unlock(&pool->sched.lock);
}

/* Every worker has exited during a drain: if accepted tasks are still
 * queued, start one to run them, and return 1. A submit accepted just
 * before the close may not have made its wake-up yet while the workers,
 * finding nothing, left (CI: stress_races_pool saw a drain return with
 * 760 tasks queued, which the free then dropped); its wake-up may also
 * find no thread slot while exiting workers still count. The caller ran
 * begin_shutdown: the close ordered every accepted outside push before
 * this lock, and with nthreads == 0 read under it every worker's exit
 * (with its deque pushes, requeues and put-backs) came before too; the
 * slot scan of ferry__work_visible sees dead workers' deques. Also 1 when
 * a worker started since the caller read alive (a late wake-up): the
 * caller waits for it. 0: nothing to run. Or the error of starting the
 * thread: the tasks stay queued, the monitor retries (start_with_core),
 * and the free cancels what is left. */
static int drain_restart(ferry_pool *pool)
{
    struct ferry__sched *s = &pool->sched;
    pthread_mutex_lock(&s->lock);
    if (s->nthreads != 0) {
        /* A late wake-up started one since we read alive: wait for it. */
        pthread_mutex_unlock(&s->lock);
        return 1;
    }
    if (ferry__pool_state(pool) != FERRY__POOL_DRAIN) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    return ferry__start_for_work_locked(pool); /* unlocks */
}

static int wait_workers(ferry_pool *pool, int64_t timeout_ns,
                        struct ferry_pool_report *report)
{
    uint64_t deadline = 0;
    if (timeout_ns > 0)
        deadline = ferry__now_ns() + (uint64_t)timeout_ns;
    for (;;) {
        /* Acquire: pairs with the release store in worker_exit. */
        uint32_t alive =
            atomic_load_explicit(&pool->sched.alive, memory_order_acquire);
        if (alive == 0) {
            int rc = drain_restart(pool);
            if (rc <= 0)
                return rc;
            continue; /* a worker runs what was left */
        }
        if (timeout_ns == 0 || (timeout_ns > 0 && ferry__now_ns() >= deadline))
            break;
        ferry__futex_wait(&pool->sched.alive, alive, deadline);
    }
    if (report != NULL)
        fill_report(pool, report);
    return -ETIMEDOUT;
}

/* Stop, join and free a pool that is not stale. */
static void destroy(ferry_pool *pool)
{
    begin_shutdown(pool, FERRY__POOL_CANCEL);
    /* Acquire: pairs with the release decrement in defer.c's flush; a
     * push that got in before the close ends with its wake-up, which may
     * start a worker: wait_workers and join_workers below then see it. */
    while (atomic_load_explicit(&pool->flushing, memory_order_acquire) != 0)
        sched_yield();
    wait_workers(pool, -1, NULL);
    join_workers(pool);
    ferry__monitor_stop(pool);
    drop_queued(pool);
    pthread_mutex_destroy(&pool->sched.lock);
    free_parts(pool);
    ferry__pool_unref(pool); /* deferred chains may hold the memory */
}

void ferry__pool_ref(ferry_pool *pool)
{
    /* Relaxed: taken inside a submit call, which the caller must order
     * before the free anyway (defer.c). */
    atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
}

void ferry__pool_unref(ferry_pool *pool)
{
    /* Acq_rel: every holder's last touch of the pool (its push on the
     * injection queue and the wake-up after it, defer.c) happens-before
     * the free. */
    if (atomic_fetch_sub_explicit(&pool->refs, 1, memory_order_acq_rel) != 1)
        return;
    ferry__inject_term(&pool->inject);
    free(pool);
}

int ferry__pool_start_threads(ferry_pool *pool)
{
    struct ferry__sched *s = &pool->sched;
    for (unsigned i = 0; i < pool->ncores; i++) {
        struct ferry__core *c = &pool->cores[i];
        pthread_mutex_lock(&s->lock);
        uint64_t w = atomic_load_explicit(&c->word, memory_order_relaxed);
        atomic_store_explicit(
            &c->word, ferry__core_word((w >> 2) + 1, FERRY__CORE_RUNNING),
            memory_order_relaxed);
        int rc = ferry__worker_create_locked(pool, c, false);
        if (rc != 0) {
            /* This core and the ones after it go to the idle list, so a
             * later shutdown finds a consistent pool. */
            for (unsigned j = i; j < pool->ncores; j++)
                ferry__core_put_locked(pool, &pool->cores[j]);
            pthread_mutex_unlock(&s->lock);
            return rc;
        }
        pthread_mutex_unlock(&s->lock);
    }
    return ferry__monitor_start(pool);
}

FERRY_API int ferry_pool_new(ferry_pool **out,
                             const struct ferry_pool_opts *opts)
{
    static const struct ferry_pool_opts defaults;
    if (out == NULL)
        return -EINVAL;
    ferry__fork_init();
    ferry_pool *pool = alloc_lines(sizeof *pool);
    if (pool == NULL)
        return -ENOMEM;
    int rc = configure(pool, opts != NULL ? opts : &defaults);
    if (rc != 0)
        goto out_free_pool;
    rc = alloc_parts(pool);
    if (rc != 0)
        goto out_free_parts;
    rc = ferry__inject_init(&pool->inject);
    if (rc != 0)
        goto out_free_parts;
    rc = -pthread_mutex_init(&pool->sched.lock, NULL);
    if (rc != 0)
        goto out_term_inject;
    pool->gen = ferry__fork_gen();
    pool->pid = getpid();
    atomic_init(&pool->refs, 1);
    rc = ferry__pool_start_threads(pool);
    if (rc != 0) {
        destroy(pool); /* joins the threads already started */
        return rc;
    }
    *out = pool;
    return 0;

out_term_inject:
    ferry__inject_term(&pool->inject);
out_free_parts:
    free_parts(pool);
out_free_pool:
    free(pool);
    return rc;
}

FERRY_API int ferry_pool_free(ferry_pool *pool)
{
    if (pool == NULL)
        return -EINVAL;
    if (ferry__pool_stale_slow(pool))
        return -ECHILD;
    if (ferry__worker_of(pool) != NULL)
        return -EDEADLK;
    ferry__defer_flush(); /* this thread's offloads first */
    begin_shutdown(pool, FERRY__POOL_DRAIN);
    wait_workers(pool, -1, NULL);
    destroy(pool);
    return 0;
}

FERRY_API int ferry_pool_shutdown(ferry_pool *pool, int mode,
                                  int64_t timeout_ns,
                                  struct ferry_pool_report *report)
{
    if (pool == NULL || timeout_ns < -1 ||
        (mode != FERRY_DRAIN && mode != FERRY_CANCEL_PENDING))
        return -EINVAL;
    if (ferry__pool_stale_slow(pool))
        return -ECHILD;
    ferry__defer_flush(); /* this thread's offloads first */
    begin_shutdown(pool, mode == FERRY_DRAIN ? FERRY__POOL_DRAIN
                                             : FERRY__POOL_CANCEL);
    if (ferry__worker_of(pool) != NULL)
        return -EDEADLK;
    return wait_workers(pool, timeout_ns, report);
}

/* ---- submission ---- */

/* try_submit on a full queue: -EAGAIN, unless a retry could never succeed
 * (the pool is shutting down and would refuse this caller anyway: anyone
 * once queued work is cancelled, outside threads once it drains). */
static int full_queue_error(ferry_pool *pool)
{
    int st = ferry__pool_state(pool);
    if (st == FERRY__POOL_CANCEL ||
        (st == FERRY__POOL_DRAIN && ferry__worker_of(pool) == NULL))
        return -ESHUTDOWN;
    return -EAGAIN;
}

void ferry__stamp_enqueue(struct ferry__task *t)
{
    /* Timing is sampled (a clock read costs about as much as the rest of
     * a submit): one task in FERRY__TIME_SAMPLE per submitting thread
     * carries its enqueue time, and only those are timed by the worker. */
    static FERRY__TLS unsigned submits;
    t->enqueue_ns = submits++ % FERRY__TIME_SAMPLE == 0 ? ferry__now_ns() : 0;
}

int ferry__submit(ferry_pool *pool, struct ferry__task *t, uint64_t limit)
{
    if (limit != 0 && ferry__queue_depth(pool) >= limit)
        return full_queue_error(pool);
    struct ferry__worker *w = ferry__worker_of(pool);
    ferry__stamp_enqueue(t);
    bool edge = true;
    if (w != NULL) {
        if (ferry__pool_state(pool) == FERRY__POOL_CANCEL)
            return -ESHUTDOWN;
        if (ferry__deque_push(&w->dq, t) != 0) {
            int rc = ferry__inject_push(&pool->inject, t, true, &edge);
            if (rc != 0)
                return rc;
        }
        ferry__stat_inc(&w->st.submitted);
    } else {
        int rc = ferry__inject_push(&pool->inject, t, false, &edge);
        if (rc != 0)
            return rc;
    }
    /* Deque pushes always notify (cheap when someone searches); injection
     * queue pushes only on the empty -> non-empty edge (inject.c). */
    if (edge)
        ferry__notify(pool);
    return 0;
}

void ferry__task_init(struct ferry__task *t, ferry_task_fn *fn, void *arg,
                      ferry__task_complete_fn *complete, unsigned flags)
{
    t->next = NULL;
    t->fn = fn;
    t->arg = arg;
    t->complete = complete;
    t->enqueue_ns = 0;
    atomic_init(&t->state, FERRY__TASK_PENDING);
    atomic_init(&t->cancel_requested, 0);
    t->flags = (uint16_t)flags;
}

int ferry__pool_submit_task(ferry_pool *pool, struct ferry__task *t)
{
    if (pool == NULL || t == NULL || t->fn == NULL || t->complete == NULL)
        return -EINVAL;
    if (ferry__pool_stale(pool))
        return -ECHILD;
    return ferry__submit(pool, t, 0);
}

int ferry__task_cancel(struct ferry__task *t)
{
    /* Acquire: pairs with the release DONE store in ferry__run_task, so a
     * canceller that reads DONE also sees fn's effects. */
    uint32_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    for (;;) {
        if (s == FERRY__TASK_PENDING) {
            /* acq_rel: pairs with the start CAS in ferry__run_task; exactly
             * one of the two leaves PENDING. */
            if (atomic_compare_exchange_weak_explicit(
                    &t->state, &s, FERRY__TASK_CANCELLED, memory_order_acq_rel,
                    memory_order_acquire))
                return 0;
            continue;
        }
        if (s == FERRY__TASK_RUNNING) {
            /* Relaxed: a hint that fn polls; nothing is published by it. */
            atomic_store_explicit(&t->cancel_requested, 1,
                                  memory_order_relaxed);
            return -EBUSY;
        }
        return -EALREADY;
    }
}

/* ---- public task handles ---- */

static void handle_complete(struct ferry__task *t, int status)
{
    struct ferry_task *h = ferry__container_of(t, struct ferry_task, task);
    if (status == -ECANCELED && h->dispose != NULL)
        h->dispose(t->arg); /* dropped unrun: the argument goes back */
    /* Acquire: pairs with the release decrement of the caller's last
     * ferry_task_unref. One reference left means it is ours alone (a
     * fire-and-forget submit, or one whose handle was dropped): nobody
     * can read the status, and no atomic decrement is needed. */
    if (atomic_load_explicit(&h->refs, memory_order_acquire) == 1) {
        ferry__block_free(h);
        return;
    }
    /* Release: fn's effects before the status, for ferry_task_status. */
    atomic_store_explicit(&h->status, status, memory_order_release);
    ferry_task_unref(h);
}

static int submit_public(ferry_pool *pool, ferry_task_fn *fn, void *arg,
                         ferry_free_fn *dispose, unsigned flags,
                         ferry_task **out, uint64_t limit)
{
    if (pool == NULL || fn == NULL || (flags & ~FERRY__TASK_PUBLIC_FLAGS))
        return -EINVAL;
    if (ferry__pool_stale(pool))
        return -ECHILD;
    struct ferry_task *h = ferry__block_alloc();
    if (h == NULL)
        return -ENOMEM;
    ferry__task_init(&h->task, fn, arg, handle_complete, flags);
    h->dispose = dispose;
    atomic_init(&h->refs, out != NULL ? 2u : 1u);
    atomic_init(&h->status, -EAGAIN);
    int rc = ferry__submit(pool, &h->task, limit);
    if (rc != 0) {
        ferry__block_free(h);
        return rc;
    }
    if (out != NULL)
        *out = h; /* our reference keeps h alive even if it already ran */
    return 0;
}

FERRY_API int ferry_pool_submit(ferry_pool *pool, ferry_task_fn *fn, void *arg,
                                ferry_free_fn *dispose, unsigned flags,
                                ferry_task **out)
{
    return submit_public(pool, fn, arg, dispose, flags, out, 0);
}

FERRY_API int ferry_pool_try_submit(ferry_pool *pool, ferry_task_fn *fn,
                                    void *arg, ferry_free_fn *dispose,
                                    unsigned flags, ferry_task **out)
{
    if (pool == NULL)
        return -EINVAL;
    return submit_public(pool, fn, arg, dispose, flags, out, pool->queue_limit);
}

FERRY_API int ferry_task_cancel(ferry_task *task)
{
    if (task == NULL)
        return -EINVAL;
    return ferry__task_cancel(&task->task);
}

FERRY_API int ferry_task_status(const ferry_task *task)
{
    if (task == NULL)
        return -EINVAL;
    struct ferry_task *h = (struct ferry_task *)task;
    /* Acquire: pairs with the acq_rel CANCELLED transitions (cancel, or a
     * drop by the pool). */
    if (atomic_load_explicit(&h->task.state, memory_order_acquire) ==
        FERRY__TASK_CANCELLED)
        return -ECANCELED;
    /* Acquire: pairs with the release store in handle_complete. */
    return atomic_load_explicit(&h->status, memory_order_acquire);
}

FERRY_API void ferry_task_unref(ferry_task *task)
{
    if (task == NULL)
        return;
        /* Release, then an acquire fence on the last drop: every owner's use
         * of the handle happens-before the free (STYLE.md point 8). TSan does
         * not model the fence, so there the decrement itself is acq_rel. */
#ifdef FERRY__TSAN
    if (atomic_fetch_sub_explicit(&task->refs, 1, memory_order_acq_rel) != 1)
        return;
#else
    if (atomic_fetch_sub_explicit(&task->refs, 1, memory_order_release) != 1)
        return;
    atomic_thread_fence(memory_order_acquire);
#endif
    ferry__block_free(task);
}

FERRY_API bool ferry_task_cancelled(void)
{
    struct ferry__task *t = ferry__current_task();
    return t != NULL &&
           atomic_load_explicit(&t->cancel_requested, memory_order_relaxed);
}
