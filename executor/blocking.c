/*
 * executor/blocking.c: blocking work without starving the pool.
 *
 * A worker that enters blocking work (a FERRY_TASK_BLOCKING task, or
 * ferry_blocking_begin) marks its core BLOCKED with one CAS and keeps it
 * (Go's entersyscall); leaving, one CAS BLOCKED -> RUNNING tells it whether
 * the core is still its own (Go's exitsyscall fast path). So blocking work
 * that nobody needed the core of costs two CASes on a line of its own, and
 * CPU work never runs on more threads than there are cores: only a holder
 * of a RUNNING core runs CPU work.
 *
 * Lazy exit: a top-level blocking task leaves its core BLOCKED (w->lazy)
 * until the worker knows what comes next. Another blocking task renews it
 * with one relaxed CAS of the seq, a new episode for the retake rule
 * below; the fence and the look at the queues of a full entry are not
 * needed, since the core never stopped being BLOCKED (the Dekker pairs of
 * that entry still hold). Anything else settles it first
 * (ferry__blocking_settle: CAS to RUNNING): a CPU task, parking, a wanter
 * to hand the core to. An offload stream thus pays one CAS per task, not
 * two and a fence (offload throughput +14%). Between two tasks the core
 * reads BLOCKED for a moment; the monitor leaves it alone while the
 * holder's `blocked` flag says it is between tasks, retakes it only if one
 * episode lasts two ticks, and the worker then learns it from a failed
 * CAS, as on a normal exit. One duty of the full entry's look at the
 * queues remains: tasks a lazy worker moves onto its own deque (a batch
 * off the injection queue, a steal) were invisible in transit, so a
 * monitor that cleared mon_fast meanwhile could miss them behind a
 * BLOCKED core; the move itself then fences and makes the monitor poll
 * (ferry__lazy_moved_work; found by review with a forced interleaving: a
 * CPU task waited out a 300 ms blocking one).
 *
 * A worker that lost its core inside a task (ferry_blocking_end, or a
 * nested blocking task) must get one back before running more CPU code: it
 * queues as a "wanter". Wanters are served first by every core release
 * (core_put), a worker entering blocking work hands its core to a waiting
 * wanter at once, and a holder that sees a wanter hands its core over at
 * its next top-level task boundary, so a wanter waits at most one task.
 *
 * The monitor that retakes BLOCKED cores is executor/monitor.c.
 *
 * Thread: blocking enter/exit and wait_for_core on the worker itself.
 */
#include <errno.h>
#include <limits.h>

#include "executor/internal.h"

/* Lazy: our core is still BLOCKED from the previous top-level blocking
 * task. A new episode is one relaxed CAS of the seq, for the monitor's
 * "same episode on two ticks" rule, exactly one winner against a retake.
 * No fence and no look at the queues: the core never stopped being
 * BLOCKED, so the mark and its Dekker pairs (submitters, wanters, the
 * monitor) hold from the full entry that made it. A wanter that queued
 * since is served here, through the full exit and entry. */
static bool renew(struct ferry__worker *w)
{
    struct ferry__core *c = w->core;
    if (atomic_load_explicit(&w->pool->sched.nwanters, memory_order_relaxed)) {
        ferry__blocking_settle(w); /* RUNNING again: the full entry follows */
        return false;
    }
    w->lazy = false;
    uint64_t expect = w->core_word;
    uint64_t next = ferry__core_word((expect >> 2) + 1, FERRY__CORE_BLOCKED);
    /* Relaxed: the word publishes no data, only who holds the core and in
     * which episode; the retake CAS is the only other writer and exactly
     * one of the two wins (as the exit CAS in ferry__blocking_exit). */
    if (atomic_compare_exchange_strong_explicit(&c->word, &expect, next,
                                                memory_order_relaxed,
                                                memory_order_relaxed))
        w->core_word = next;
    else
        w->core = NULL; /* retaken meanwhile: run without it, as below */
    return true;
}

void ferry__blocking_enter(struct ferry__worker *w)
{
    if (w->blocking++ > 0)
        return;
    atomic_store_explicit(&w->blocked, 1, memory_order_relaxed);
    if (w->lazy && renew(w))
        return;
    struct ferry__core *c = w->core;
    if (c == NULL)
        return;
    uint64_t expect = w->core_word;
    /* A new seq per blocking episode: the monitor retakes only a core it
     * sees in the same episode on two ticks. */
    uint64_t blocked = ferry__core_word((expect >> 2) + 1, FERRY__CORE_BLOCKED);
    /* Fails only if the monitor took our RUNNING core. */
    if (!atomic_compare_exchange_strong_explicit(&c->word, &expect, blocked,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        w->core = NULL;
        return;
    }
    w->core_word = blocked;
    /* StoreLoad: our BLOCKED mark comes before our look at the queues, the
     * wanters and mon_fast. Pairs with the fence in ferry__notify (a
     * submitter then either sees BLOCKED and makes the monitor poll, or we
     * see its work and do), with the one in ferry__wait_for_core (likewise
     * for a wanter) and with the monitor's when it clears mon_fast. */
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
        ferry__want_retake(pool);
}

void ferry__blocking_exit(struct ferry__worker *w, bool top_level)
{
    if (--w->blocking > 0)
        return;
    atomic_store_explicit(&w->blocked, 0, memory_order_relaxed);
    struct ferry__core *c = w->core;
    /* At top level the core may stay BLOCKED until we know what runs next
     * (ferry__blocking_settle): a run of blocking tasks, an offload
     * stream, then costs one CAS per task instead of two CASes and a
     * fence. */
    if (top_level && c != NULL) {
        w->lazy = true;
        return;
    }
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

void ferry__lazy_moved_work(struct ferry__worker *w)
{
    if (!w->lazy || ferry__deque_len(&w->dq) == 0)
        return;
    /* StoreLoad: our deque's new tasks before our look at mon_fast; pairs
     * with the monitor's clear-fence-recheck (file comment). */
    ferry__fence_seq_cst();
    ferry__want_retake(w->pool);
}

void ferry__blocking_settle(struct ferry__worker *w)
{
    if (!w->lazy)
        return;
    w->lazy = false;
    struct ferry__core *c = w->core;
    uint64_t expect = w->core_word;
    uint64_t running = ferry__core_word(expect >> 2, FERRY__CORE_RUNNING);
    /* Relaxed, as the exit CAS in ferry__blocking_exit. */
    if (atomic_compare_exchange_strong_explicit(&c->word, &expect, running,
                                                memory_order_relaxed,
                                                memory_order_relaxed))
        w->core_word = running;
    else
        w->core = NULL;
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
    /* StoreLoad: nwanters before our look at the cores. Pairs with the
     * fence in ferry__blocking_enter: a worker that marks its core BLOCKED
     * either is seen here (and the monitor will retake the core for us) or
     * sees nwanters and hands its core over at once. */
    ferry__fence_seq_cst();
    struct ferry__core *c = ferry__core_get_locked(pool);
    if (c != NULL) {
        wanter_remove_locked(s, w);
        ferry__grant_locked(w, c);
    } else if (ferry__any_blocked_core(pool)) {
        ferry__want_retake(pool);
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
