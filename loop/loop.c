/*
 * loop/loop.c: the loop's lifecycle and its phase order.
 *
 * One iteration (iterate) is, in order:
 *   1. timeout: 0 if callbacks are ready or a stop is pending, else the
 *      nearest timer, capped by the caller's bound;
 *   2. poll: the wake-up protocol of wakeup.c around the poller's wait;
 *      the eventfd is drained and the fds' handles are queued;
 *   3. the inbox is drained (posts from one thread in post order);
 *   4. due timers are queued;
 *   5. the ready callbacks present at the start of this phase run.
 * run_forever repeats until a stop, which is checked after each batch.
 *
 * Lifetime: the loop is reference counted (creator + ferry_loop_ref + one
 * per bound future). close drops everything scheduled (each dispose once)
 * and closes the epoll fd; the eventfd and the memory go with the last
 * reference (wakeup.c says why).
 *
 * Running loop: a thread-local pointer plus the fork generation it was
 * set under, so a forked child never sees its parent's running loop, even
 * when fork() was called from a callback (asyncio's bpo-29703 fix).
 *
 * Thread: owner unless a function says otherwise.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hazard.h"
#include "loop/internal.h"

#define WAKE_TAG UINT64_MAX

static FERRY__TLS ferry_loop *tls_running;
static FERRY__TLS unsigned tls_gen;

bool ferry__loop_stale(const ferry_loop *loop)
{
    return loop->fork_gen != ferry__fork_gen();
}

/* tls_running == loop: the loop runs on this thread, which is then its
 * owner (enter() checked): one TLS load instead of a pthread_self() call
 * on every check made from inside a callback, the hot case. A loop cannot
 * be freed while it runs, so the pointer cannot match a new loop at the
 * same address. */
static bool is_owner(const ferry_loop *loop)
{
    return tls_running == loop || pthread_equal(loop->owner, pthread_self());
}

bool ferry__loop_on_owner(const ferry_loop *loop)
{
    return !ferry__loop_stale(loop) && is_owner(loop);
}

bool ferry__loop_in_pass(const ferry_loop *loop)
{
    return tls_running == loop && loop->in_pass; /* owner: no race */
}

int ferry__loop_check(const ferry_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    if (ferry__loop_stale(loop))
        return -ECHILD;
    if (!is_owner(loop))
        return -EPERM;
    return 0;
}

int ferry__loop_check_open(const ferry_loop *loop)
{
    int rc = ferry__loop_check(loop);
    if (rc == 0 && atomic_load_explicit(&loop->closed, memory_order_relaxed))
        rc = -ESHUTDOWN;
    return rc;
}

uint64_t ferry__loop_now(const ferry_loop *loop)
{
    return loop->clock ? loop->clock(loop->clock_ctx) : ferry__now_ns();
}

static int build_fds(ferry_loop *loop)
{
    int rc = ferry__poller_init(&loop->poller, loop->poller.max_events);
    if (rc < 0)
        return rc;
    rc = ferry__wakeup_init(loop);
    if (rc < 0)
        goto out_term_poller;
    rc = ferry__poller_add(&loop->poller, loop->efd, FERRY__POLL_IN, WAKE_TAG);
    if (rc < 0)
        goto out_term_wakeup;
    return 0;
out_term_wakeup:
    ferry__wakeup_term(loop);
out_term_poller:
    ferry__poller_term(&loop->poller);
    return rc;
}

FERRY_API int ferry_loop_new(ferry_loop **out,
                             const struct ferry_loop_opts *opts)
{
    if (out == NULL)
        return -EINVAL;
    ferry__fork_init();
    ferry_loop *loop = aligned_alloc(FERRY__CACHELINE, sizeof *loop);
    if (loop == NULL)
        return -ENOMEM;
    /* memset, not (ferry_loop){0}: clang rejects 0 for the first member,
     * an _Atomic pointer (-Wint-conversion). The atomics are set below. */
    memset(loop, 0, sizeof *loop);
    loop->poller.max_events = opts && opts->max_events ? opts->max_events : 256;
    loop->clock = opts ? opts->clock : NULL;
    loop->clock_ctx = opts ? opts->clock_ctx : NULL;
    loop->slow_threshold = 100000000u;
    loop->spin_ns = opts && opts->spin_ns ? opts->spin_ns : 50000;
    loop->owner = pthread_self();
    loop->pid = getpid();
    loop->fork_gen = ferry__fork_gen();
    atomic_init(&loop->refs, 1);
    ferry__timers_init(&loop->timers);
    ferry__io_init(&loop->io);
    int rc = build_fds(loop);
    if (rc < 0) {
        free(loop);
        return rc;
    }
    *out = loop;
    return 0;
}

FERRY_API void ferry_loop_ref(ferry_loop *loop)
{
    if (loop != NULL)
        atomic_fetch_add_explicit(&loop->refs, 1, memory_order_relaxed);
}

FERRY_API void ferry_loop_unref(ferry_loop *loop)
{
    if (loop == NULL)
        return;
    /* Acq_rel: the release half orders our uses of the loop before the
     * free on whichever thread drops the last reference; the acquire half
     * (on that thread) sees everyone's. One RMW rather than release plus an
     * acquire fence: ThreadSanitizer does not model fences, and on x86 the
     * locked RMW is a full barrier either way. */
    if (atomic_fetch_sub_explicit(&loop->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* A completion handed off with its post (ferry__loop_post_handoff)
     * may still be reading the loop in its wake-up. */
    ferry__hz_wait(loop);
    ferry__wakeup_term(loop);
    free(loop);
}

/* A batch of references, taken once per CREDIT_BATCH futures bound on
 * the owner thread. */
enum { CREDIT_BATCH = 256 };

static bool credit_usable(const ferry_loop *loop)
{
    return ferry__loop_on_owner(loop) &&
           !atomic_load_explicit(&loop->closed, memory_order_relaxed);
}

void ferry__loop_ref_future(ferry_loop *loop)
{
    if (!credit_usable(loop)) {
        ferry_loop_ref(loop);
        return;
    }
    if (loop->ref_credit == 0) {
        /* Acquire keeps the credit's store after the add, so that a fork
         * snapshot between them can only over-count (leak), never make
         * the child's credit exceed what refs holds for it. */
        atomic_fetch_add_explicit(&loop->refs, CREDIT_BATCH,
                                  memory_order_acquire);
        loop->ref_credit = CREDIT_BATCH;
    }
    loop->ref_credit--;
}

void ferry__loop_unref_future(ferry_loop *loop)
{
    /* Not the last reference: the owner holds the creator's until
     * ferry_loop_free, which closes first, and that acq_rel unref (on the
     * owner, after every credit operation) carries the owner's writes to
     * whoever frees the loop. */
    if (!credit_usable(loop)) {
        ferry_loop_unref(loop);
        return;
    }
    if (++loop->ref_credit >= 2 * CREDIT_BATCH) {
        /* Credit first, then the release RMW (which the store cannot
         * follow): a fork snapshot between them can only leak. */
        loop->ref_credit -= CREDIT_BATCH;
        atomic_fetch_sub_explicit(&loop->refs, CREDIT_BATCH,
                                  memory_order_release);
    }
}

static void close_all(ferry_loop *loop, bool stale)
{
    atomic_store_explicit(&loop->closed, true, memory_order_relaxed);
    /* Give the credit back; from now on futures count with RMWs. Never
     * the last reference: the caller holds one. (A child forked by
     * another thread while the owner was between the two steps of a
     * batch leaks its stale loop: the steps are ordered so that such a
     * snapshot over-counts, never under-counts.) */
    if (loop->ref_credit != 0)
        atomic_fetch_sub_explicit(&loop->refs, loop->ref_credit,
                                  memory_order_release);
    loop->ref_credit = 0;
    ferry__inbox_close(loop, !stale);
    ferry__ready_term(loop);
    ferry__timers_term(loop);
    ferry__io_term(loop);
    ferry__poller_term(&loop->poller);
    atomic_store_explicit(&loop->polling, 0, memory_order_relaxed);
    if (loop->dp_release != NULL) /* the default pool's holder (bridge/) */
        loop->dp_release(loop->dp);
    loop->dp = NULL;
    loop->dp_release = NULL;
}

FERRY_API int ferry_loop_close(ferry_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    bool stale = ferry__loop_stale(loop);
    /* A stale loop belongs to the child's only thread, whoever it was. */
    if (!stale && !pthread_equal(loop->owner, pthread_self()))
        return -EPERM;
    if (!stale && atomic_load_explicit(&loop->running, memory_order_relaxed))
        return -EBUSY;
    if (atomic_load_explicit(&loop->closed, memory_order_relaxed))
        return 0;
    close_all(loop, stale);
    return 0;
}

FERRY_API int ferry_loop_free(ferry_loop *loop)
{
    int rc = ferry_loop_close(loop);
    if (rc < 0)
        return rc;
    ferry_loop_unref(loop);
    return 0;
}

struct poll_ctx {
    ferry_loop *loop;
    bool woken; /* the eventfd was readable */
};

static void on_poll(void *arg, uint64_t tag, unsigned events)
{
    struct poll_ctx *ctx = arg;
    if (tag == WAKE_TAG)
        ctx->woken = true;
    else
        ferry__io_event(ctx->loop, (int)tag, events);
}

static int64_t poll_timeout(ferry_loop *loop, int64_t bound)
{
    if (loop->ready.head != NULL ||
        atomic_load_explicit(&loop->stopping, memory_order_relaxed))
        return 0;
    /* No timers: no clock read (one per iteration adds up under load). */
    int64_t t = loop->timers.len == 0
                    ? -1
                    : ferry__timers_next(loop, ferry__loop_now(loop));
    if (bound >= 0 && (t < 0 || t > bound))
        t = bound;
    return t;
}

/*
 * Busy-poll the inbox before blocking, when the last iteration received
 * posts: a ping-pong with a worker (offload, reply, offload...) then never
 * sleeps on either side, which is what makes a round trip cost a few
 * microseconds instead of two futex/eventfd wake-ups (~25 us each here).
 * Bounded by spin_ns and the caller's timeout; an idle loop does not spin.
 * Returns the timeout to poll with (0 when something arrived).
 */
static int64_t spin_for_posts(ferry_loop *loop, int64_t timeout)
{
    uint64_t posts =
        atomic_load_explicit(&loop->stats.posts, memory_order_relaxed);
    bool recent = posts != loop->posts_seen;
    loop->posts_seen = posts;
    if (timeout == 0 || !recent || loop->spin_ns < 0 ||
        atomic_load_explicit(&loop->embedded, memory_order_relaxed))
        return timeout;
    int64_t budget = loop->spin_ns;
    if (timeout > 0 && timeout < budget)
        budget = timeout;
    uint64_t start = ferry__now_ns();
    uint64_t now = start;
    do {
        for (int i = 0; i < 32; i++) { /* ~0.5 us */
            if (ferry__inbox_nonempty(loop) ||
                atomic_load_explicit(&loop->stopping, memory_order_relaxed))
                return 0;
            ferry__cpu_relax();
        }
        /* Yield between batches: the worker we wait for may share this
         * CPU (5 us of pure spin first: 10 us per round trip, 1.5 us now;
         * a yield with nothing else to run costs 0.2 us; README). */
        sched_yield();
        now = ferry__now_ns();
    } while (now - start < (uint64_t)budget);
    return timeout;
}

/* A zero-timeout poll with no fd watched could only report the eventfd,
 * moot when we do not sleep: skip it (~150 ns per busy iteration); a
 * readable eventfd left makes the next sleep return at once and read it.
 * An embedded loop always polls: its embedder relies on our read. */
static bool poll_needed(const ferry_loop *loop, int64_t timeout)
{
    return timeout != 0 || loop->io.count != 0 ||
           atomic_load_explicit(&loop->embedded, memory_order_relaxed);
}

static void iterate(ferry_loop *loop, int64_t bound)
{
    int64_t timeout = poll_timeout(loop, bound);
    timeout = spin_for_posts(loop, timeout);
    timeout = ferry__wakeup_prepare_poll(loop, timeout);
    struct poll_ctx ctx = {.loop = loop, .woken = false};
    if (poll_needed(loop, timeout))
        ferry__poller_wait(&loop->poller, timeout, on_poll, &ctx);
    ferry__wakeup_after_poll(loop); /* prepare_poll may have set polling */
    if (ctx.woken)
        ferry__wakeup_on_event(loop);
    ferry__inbox_drain(loop);
    if (loop->timers.len != 0)
        ferry__timers_collect(loop, ferry__loop_now(loop));
    loop->in_pass = true;
    ferry__ready_run(loop);
    loop->in_pass = false;
    if (loop->pass_end != NULL)
        loop->pass_end(loop);
    ferry__loop_count(&loop->stats.iterations);
}

/* Whether this thread may run the loop now (the errors of run_*). */
static int can_run(const ferry_loop *loop)
{
    int rc = ferry__loop_check_open(loop);
    if (rc < 0)
        return rc;
    if (atomic_load_explicit(&loop->running, memory_order_relaxed) ||
        ferry_loop_running() != NULL)
        return -EBUSY;
    return 0;
}

/* Enter or leave the running state; refuses a second loop on a thread. */
static int enter(ferry_loop *loop)
{
    int rc = can_run(loop);
    if (rc < 0)
        return rc;
    atomic_store_explicit(&loop->running, true, memory_order_relaxed);
    tls_running = loop;
    tls_gen = loop->fork_gen;
    return 0;
}

static void leave(ferry_loop *loop)
{
    tls_running = NULL;
    atomic_store_explicit(&loop->running, false, memory_order_relaxed);
}

FERRY_API int ferry_loop_run_once(ferry_loop *loop, int64_t timeout_ns)
{
    int rc = enter(loop);
    if (rc < 0)
        return rc;
    iterate(loop, timeout_ns < 0 ? -1 : timeout_ns);
    leave(loop);
    return ferry__loop_stale(loop) ? -ECHILD : 0;
}

FERRY_API int ferry_loop_run_forever(ferry_loop *loop)
{
    int rc = enter(loop);
    if (rc < 0)
        return rc;
    for (;;) {
        iterate(loop, -1);
        if (ferry__loop_stale(loop)) {
            rc = -ECHILD; /* forked inside a callback: the child stops */
            break;
        }
        if (atomic_load_explicit(&loop->stopping, memory_order_relaxed))
            break;
    }
    atomic_store_explicit(&loop->stopping, 0, memory_order_relaxed);
    leave(loop);
    return rc;
}

static void stop_on_done(ferry_future *fut, void *arg)
{
    (void)fut;
    ferry_loop_stop(arg);
}

FERRY_API int ferry_loop_run_until_complete(ferry_loop *loop, ferry_future *fut,
                                            void **result)
{
    if (loop == NULL || fut == NULL)
        return -EINVAL;
    if (ferry_future_loop(fut) != loop)
        return -EINVAL;
    /* Checked before registering: a callback left queued by a run that
     * could not start would stop a later, unrelated run. */
    int rc = can_run(loop);
    if (rc < 0)
        return rc;
    rc = ferry_future_add_done_callback(fut, stop_on_done, loop, NULL);
    if (rc < 0)
        return rc;
    rc = ferry_loop_run_forever(loop);
    if (!ferry_future_done(fut)) {
        ferry_future_remove_done_callback(fut, stop_on_done, loop);
        return rc < 0 ? rc : -EAGAIN;
    }
    if (rc < 0)
        return rc;
    return ferry_future_result(fut, result);
}

FERRY_API int ferry_loop_stop(ferry_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    if (ferry__loop_stale(loop))
        return -ECHILD;
    if (atomic_load_explicit(&loop->closed, memory_order_relaxed))
        return -ESHUTDOWN;
    atomic_store_explicit(&loop->stopping, 1, memory_order_relaxed);
    /* Wake a sleeping loop; the signal's seq_cst fence orders the store
     * above before its read of polling (wakeup.c). */
    ferry__wakeup_signal(loop);
    return 0;
}

FERRY_API bool ferry_loop_is_running(const ferry_loop *loop)
{
    return loop != NULL &&
           atomic_load_explicit(&loop->running, memory_order_relaxed);
}

FERRY_API bool ferry_loop_is_closed(const ferry_loop *loop)
{
    return loop != NULL &&
           atomic_load_explicit(&loop->closed, memory_order_relaxed);
}

FERRY_API uint64_t ferry_loop_time(const ferry_loop *loop)
{
    return loop != NULL ? ferry__loop_now(loop) : 0;
}

FERRY_API ferry_loop *ferry_loop_running(void)
{
    if (tls_running == NULL || tls_gen != ferry__fork_gen())
        return NULL;
    return tls_running;
}

FERRY_API int ferry_loop_fd(const ferry_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    if (ferry__loop_stale(loop))
        return -ECHILD;
    if (atomic_load_explicit(&loop->closed, memory_order_relaxed))
        return -ESHUTDOWN;
    ferry_loop *l = (ferry_loop *)loop;
    /* From now on polling stays set, so every post (coalesced by
     * wake_pending) makes the epoll fd readable for the embedder's poll.
     * seq_cst store: pairs with the producers' StoreLoad order (the
     * seq_cst push, or the fence of a stop) as in wakeup.c. */
    atomic_store_explicit(&l->embedded, true, memory_order_relaxed);
    atomic_store_explicit(&l->polling, 1, memory_order_seq_cst);
    return loop->poller.fd;
}

FERRY_API int ferry_loop_timeout(ferry_loop *loop, int64_t *timeout_ns)
{
    if (timeout_ns == NULL)
        return -EINVAL;
    int rc = ferry__loop_check_open(loop);
    if (rc < 0)
        return rc;
    /* Dekker partner of the producers' seq_cst push (or fence): polling
     * was set (seq_cst) before this inbox read, see ferry_loop_fd. */
    atomic_thread_fence(memory_order_seq_cst);
    *timeout_ns = ferry__inbox_nonempty(loop) ? 0 : poll_timeout(loop, -1);
    return 0;
}

FERRY_API int ferry_loop_set_slow_callback(ferry_loop *loop,
                                           uint64_t threshold_ns,
                                           ferry_slow_hook_fn *hook,
                                           void *hook_arg)
{
    int rc = ferry__loop_check(loop);
    if (rc < 0)
        return rc;
    loop->slow_hook = hook;
    loop->slow_arg = hook_arg;
    loop->slow_threshold = threshold_ns ? threshold_ns : 100000000u;
    return 0;
}

FERRY_API int ferry_loop_stats(const ferry_loop *loop,
                               struct ferry_loop_stats *out)
{
    if (loop == NULL || out == NULL)
        return -EINVAL;
    out->iterations =
        atomic_load_explicit(&loop->stats.iterations, memory_order_relaxed);
    out->callbacks =
        atomic_load_explicit(&loop->stats.callbacks, memory_order_relaxed);
    out->posts = atomic_load_explicit(&loop->stats.posts, memory_order_relaxed);
    out->slow_callbacks =
        atomic_load_explicit(&loop->stats.slow_callbacks, memory_order_relaxed);
    out->wakeups_written =
        atomic_load_explicit(&loop->wakeups_written, memory_order_relaxed);
    return 0;
}

FERRY_API int ferry_loop_after_fork(ferry_loop *loop)
{
    if (loop == NULL)
        return -EINVAL;
    if (!ferry__loop_stale(loop) && loop->pid == getpid())
        return -EALREADY;
    if (atomic_load_explicit(&loop->closed, memory_order_relaxed))
        return -ESHUTDOWN;
    /* Posts queued by the parent's other threads are the parent's: forget
     * them without running or disposing (their memory is a copy). */
    atomic_store_explicit(&loop->inbox, NULL, memory_order_relaxed);
    /* close(), never EPOLL_CTL_DEL: the instance is shared with the
     * parent. The old fds are closed only once the new ones exist, so a
     * failure leaves the loop stale but intact. */
    struct ferry__poller old_poller = loop->poller;
    int old_efd = loop->efd;
    int rc = build_fds(loop);
    if (rc < 0) {
        loop->poller = old_poller;
        loop->efd = old_efd;
        return rc;
    }
    /* Register the child's watchers in the new instance before anything
     * is committed. Done last (after the loop was marked rebuilt), a
     * failure (ENOMEM, ENOSPC) returned an error while the loop was no
     * longer stale: the watchers that missed it never fired, and calling
     * again returned -EALREADY (tests/test_loop_fault.c). Now the new fds
     * go, the loop stays inherited and intact, and the call can be
     * repeated. */
    rc = ferry__io_reregister(loop);
    if (rc < 0) {
        ferry__poller_term(&loop->poller);
        ferry__wakeup_term(loop);
        loop->poller = old_poller;
        loop->efd = old_efd;
        return rc;
    }
    ferry__poller_term(&old_poller);
    close(old_efd);
    atomic_store_explicit(&loop->polling, 0, memory_order_relaxed);
    atomic_store_explicit(&loop->wake_pending, 0, memory_order_relaxed);
    /* Forked inside one of this loop's callbacks: the child is still inside
     * its run call, which goes on. Forked from any other thread: nobody
     * runs it in the child. */
    if (tls_running != loop)
        atomic_store_explicit(&loop->running, false, memory_order_relaxed);
    else
        tls_gen = ferry__fork_gen();
    atomic_store_explicit(&loop->embedded, false, memory_order_relaxed);
    loop->owner = pthread_self();
    loop->pid = getpid();
    loop->fork_gen = ferry__fork_gen();
    return 0;
}
