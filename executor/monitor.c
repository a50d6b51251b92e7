/*
 * executor/monitor.c: the pool's monitor thread (Go's sysmon), which gives
 * the cores of blocked workers to spare threads. The workers' side, the
 * BLOCKED mark and its lazy renewal, is executor/blocking.c.
 *
 * Retake (Go's sysmon): a BLOCKED core is taken from its holder only when
 * work is queued and the core stayed blocked through a whole monitor
 * period, seen by the monitor as the same word (the seq in the word changes
 * on every entry into blocking work) on two consecutive ticks, and its
 * holder is asleep in the kernel: a holder still on a CPU (preempted, or
 * spinning) is given a 10 ms grace first (holder_on_cpu_locked). Short
 * blocking calls thus never hand their core over, while long ones give it
 * up within about a period; every blocked core is retaken at each tick, so
 * a burst of blocking tasks grows the pool along as many chains as there
 * are cores. The monitor polls that fast (50 us, backing off to 1 ms) only
 * while the flag mon_fast is set. Whoever sees a BLOCKED core and queued
 * work sets it (ferry__want_retake) after a fence that follows its own
 * publication (the work, or the BLOCKED mark); the monitor clears it, then
 * fences and looks again, and sets it back if both are still there. The
 * two fences order the pair, as in park.c: a blocked core with work queued
 * is never left without a polling monitor.
 *
 * The same monitor catches blocking that was not announced (the .NET gate
 * thread, algorithms.md §2.4 point 4): while no core is idle it also wakes
 * every starvation_ns / 2, and when work is queued but no task started for
 * starvation_ns, it takes the core of a worker that has been inside one
 * task all along and gives it to a spare. It sleeps untimed when neither
 * applies (an idle pool costs no CPU); taking the last idle core wakes it.
 * It also retries, every RETRY_NS, starting a thread that could not be
 * started for queued work (pthread_create or its record's allocation
 * failed), whatever starvation_ns says.
 *
 * Thread: the monitor on its own thread; ferry__want_retake and the
 * _locked calls on any (the latter with sched.lock held).
 */
#include <errno.h>
#include <limits.h>

#include "executor/internal.h"

enum {
    FAST_MIN_NS = 50000,   /* retake poll while blocked cores hold work */
    FAST_MAX_NS = 1000000, /* backed off to this while none is retaken */
};

enum { RETRY_NS = 10000000 };          /* 10 ms between thread-start retries */
enum { RUNNABLE_GRACE_NS = 10000000 }; /* see holder_on_cpu_locked */

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
 * failure sets spawn_retry again. While the pool is open or draining (a
 * drain must not strand accepted tasks when no shutdown waits any more),
 * never once cancelling: destroy raises the state to CANCEL before it
 * waits, and a waiter that read alive == 0 before our start sees our
 * thread in nthreads under this lock (drain_restart in pool.c). */
static void retry_spawn(ferry_pool *pool)
{
    struct ferry__sched *s = &pool->sched;
    pthread_mutex_lock(&s->lock);
    s->spawn_retry = false;
    if (ferry__pool_state(pool) == FERRY__POOL_CANCEL) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    (void)ferry__start_for_work_locked(pool); /* unlocks */
}

void ferry__monitor_kick_locked(ferry_pool *pool)
{
    if (!pool->sched.mon_sleeping)
        return;
    pool->sched.mon_sleeping = false;
    atomic_fetch_add_explicit(&pool->mon_word, 1, memory_order_relaxed);
    ferry__futex_wake(&pool->mon_word, 1);
}

void ferry__want_retake(ferry_pool *pool)
{
    /* Relaxed first look: the caller's fence already ordered it after its
     * publication (file comment); set and wake only on the 0 -> 1 edge. */
    if (atomic_load_explicit(&pool->mon_fast, memory_order_relaxed))
        return;
    if (atomic_exchange_explicit(&pool->mon_fast, 1, memory_order_seq_cst))
        return;
    /* No lock: the monitor reads mon_word, then mon_fast, before it sleeps
     * on mon_word, so a bump after its read makes the futex wait return
     * at once, and a read of the bump sees our mon_fast (release: pairs
     * with the monitor's acquire load). */
    atomic_fetch_add_explicit(&pool->mon_word, 1, memory_order_release);
    ferry__futex_wake(&pool->mon_word, 1);
}

static uint64_t started_total(ferry_pool *pool)
{
    uint64_t sum = 0;
    unsigned n = ferry__nslots(pool);
    for (unsigned i = 0; i < n; i++) {
        struct ferry__worker *w = ferry__slot(pool, i);
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

/* Lock held, released on return. Retake core c (BLOCKED as `word` for a
 * whole period): for a wanter, else for a new searcher. */
static void retake_locked(ferry_pool *pool, struct ferry__core *c,
                          uint64_t word)
{
    struct ferry__sched *s = &pool->sched;
    /* The holder's exit CAS (BLOCKED -> RUNNING, same seq) races this one;
     * exactly one wins, and a holder that loses knows its core is gone. */
    if (!atomic_compare_exchange_strong_explicit(
            &c->word, &word,
            ferry__core_word((word >> 2) + 1, FERRY__CORE_RUNNING),
            memory_order_relaxed, memory_order_relaxed)) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    if (s->wanters != NULL) {
        ferry__core_put_locked(pool, c);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    /* A searcher beyond the cap: the cap only limits contention, and this
     * one stops like any other (decrement, fence, re-check). */
    atomic_fetch_add_explicit(&s->nsearching, 1, memory_order_seq_cst);
    if (ferry__start_worker_locked(pool, c, true) != 0) {
        atomic_fetch_sub_explicit(&s->nsearching, 1, memory_order_seq_cst);
        ferry__fence_seq_cst();
        if (ferry__work_visible(pool))
            ferry__wakep(pool);
    }
}

/* Lock held. A core blocked in the same episode for a whole period whose
 * holder is nevertheless on a CPU (running or runnable, /proc state R) is
 * most likely preempted or spinning, not blocked in the kernel: another
 * thread for it would only add to the CPU's queue (with more threads than
 * CPUs, preemption alone made the monitor grow no-op offloads 4 spares).
 * Such a core is left alone for RUNNABLE_GRACE_NS (Go's sysmon waits 10 ms
 * likewise before retaking from a P that others could replace), then
 * retaken anyway, so a flagged task that spin-waits for queued work still
 * gets its spare. Reads /proc with the lock dropped; returns false if the
 * word changed meanwhile (the episode ended: nothing to retake). */
static bool holder_on_cpu_locked(ferry_pool *pool, struct ferry__core *c,
                                 uint64_t word, uint64_t now, bool *skip)
{
    *skip = false;
    if (now - c->mon_since >= RUNNABLE_GRACE_NS || c->holder == NULL)
        return true;
    /* Relaxed: tid orders nothing. The record outlives the pool's
     * threads; an unchanged word after relocking (its seq is new for each
     * blocking episode) means the same holder in the same episode. */
    int tid = atomic_load_explicit(&c->holder->tid, memory_order_relaxed);
    if (tid == 0)
        return true;
    pthread_mutex_unlock(&pool->sched.lock);
    bool on_cpu = ferry__thread_on_cpu(tid);
    pthread_mutex_lock(&pool->sched.lock);
    if (atomic_load_explicit(&c->word, memory_order_relaxed) != word)
        return false;
    *skip = on_cpu;
    return true;
}

/* One fast tick. Returns whether a core was retaken. */
static bool retake_blocked(ferry_pool *pool)
{
    struct ferry__sched *s = &pool->sched;
    bool any = false;
    uint64_t now = ferry__now_ns();
    for (unsigned i = 0; i < pool->ncores; i++) {
        struct ferry__core *c = &pool->cores[i];
        pthread_mutex_lock(&s->lock);
        uint64_t w = atomic_load_explicit(&c->word, memory_order_relaxed);
        bool blocked = ferry__core_status(w) == FERRY__CORE_BLOCKED;
        bool same = blocked && w == c->mon_seen;
        if (blocked && !same)
            c->mon_since = now;
        c->mon_seen = blocked && !same ? w : 0;
        /* Relaxed: a hint. A holder between two tasks (a lazy BLOCKED
         * core, its `blocked` back to 0) is not inside blocking work: a
         * spare for it would only add a thread. If it enters blocking work
         * again, it does so in a new episode (renew), which a later tick
         * judges. */
        bool skip =
            same && c->holder != NULL &&
            !atomic_load_explicit(&c->holder->blocked, memory_order_relaxed);
        if (!same || skip ||
            (s->wanters == NULL && !ferry__work_visible(pool)) ||
            !holder_on_cpu_locked(pool, c, w, now, &skip) || skip) {
            if (skip)
                c->mon_seen = w; /* same episode: look again next tick */
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        retake_locked(pool, c, w); /* unlocks */
        any = true;
    }
    return any;
}

/* Stop polling fast once no blocked core holds back queued work. */
static void maybe_slow_down(ferry_pool *pool)
{
    if (ferry__any_blocked_core(pool) &&
        (ferry__work_visible(pool) ||
         atomic_load_explicit(&pool->sched.nwanters, memory_order_relaxed)))
        return;
    atomic_store_explicit(&pool->mon_fast, 0, memory_order_relaxed);
    /* StoreLoad: the clear comes before the second look. Pairs with the
     * fence every caller of ferry__want_retake made before reading
     * mon_fast: either it saw our 0 and set the flag again, or we see its
     * BLOCKED core and its work here. */
    ferry__fence_seq_cst();
    if (ferry__any_blocked_core(pool) &&
        (ferry__work_visible(pool) ||
         atomic_load_explicit(&pool->sched.nwanters, memory_order_relaxed)))
        atomic_store_explicit(&pool->mon_fast, 1, memory_order_relaxed);
}

static void *monitor_main(void *arg)
{
    ferry_pool *pool = arg;
    struct ferry__sched *s = &pool->sched;
    ferry__thread_name(pool->prefix, "mon");
    bool enabled = pool->starvation_ns != UINT64_MAX;
    uint64_t period =
        pool->starvation_ns / 2 > 100000 ? pool->starvation_ns / 2 : 100000;
    uint64_t fast_ns = FAST_MIN_NS;
    uint64_t next_check = 0;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        if (atomic_load_explicit(&pool->mon_stop, memory_order_relaxed)) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        /* mon_word before mon_fast (review: read the other way round, a
         * ferry__want_retake between the two reads set mon_fast, which we
         * missed, and bumped mon_word, which we then read, so we slept
         * untimed, and every later want_retake saw mon_fast set and
         * returned: no blocked core was ever retaken again). Acquire pairs
         * with want_retake's release bump: a wait on a value read before
         * the bump returns at once; a read of the bump sees mon_fast set.
         * Model: executor/monitor.pml (spin, suite 'model'). */
        uint32_t seen =
            atomic_load_explicit(&pool->mon_word, memory_order_acquire);
        bool fast = atomic_load_explicit(&pool->mon_fast, memory_order_relaxed);
        bool slow = enabled && atomic_load_explicit(&s->nidle_cores,
                                                    memory_order_relaxed) == 0;
        bool retry = s->spawn_retry;
        s->mon_sleeping = enabled && !slow && !retry;
        pthread_mutex_unlock(&s->lock);
        uint64_t now = ferry__now_ns();
        uint64_t deadline = fast ? now + fast_ns : slow ? now + period : 0;
        if (retry && (deadline == 0 || now + RETRY_NS < deadline))
            deadline = now + RETRY_NS;
        /* A kick after our read of mon_word makes the wait return. */
        ferry__futex_wait(&pool->mon_word, seen, deadline);
        if (retry)
            retry_spawn(pool);
        if (fast) {
            fast_ns = retake_blocked(pool)        ? FAST_MIN_NS
                      : fast_ns * 2 < FAST_MAX_NS ? fast_ns * 2
                                                  : FAST_MAX_NS;
            maybe_slow_down(pool);
        } else {
            fast_ns = FAST_MIN_NS;
        }
        now = ferry__now_ns();
        if (slow && now >= next_check) {
            check_starvation(pool);
            next_check = now + period;
        } else if (!slow) {
            pool->mon_since_ns = now;
        }
    }
    return NULL;
}

int ferry__monitor_start(ferry_pool *pool)
{
    atomic_store_explicit(&pool->mon_stop, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->mon_fast, 0, memory_order_relaxed);
    pool->mon_started = 0;
    pool->mon_since_ns = ferry__now_ns();
    for (unsigned i = 0; i < pool->ncores; i++)
        pool->cores[i].mon_seen = 0;
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
