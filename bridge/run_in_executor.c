/*
 * bridge/run_in_executor.c: offloading to the pool, the hot path.
 *
 * One job = one 192-byte block holding the future, the pool task (then a
 * late result's inbox node) and the outcome slot of other resolvers,
 * taken from a per-thread cache (common/cache.c), so the steady state
 * calls no malloc. The path (DESIGN.md §2):
 *
 *   loop thread  job_new; submit the task (blocking-flagged): from a
 *                callback of the running loop, chained and pushed with
 *                the pass's other offloads in one lock at the end of the
 *                pass (executor/defer.c), its inbox node noted as a
 *                prefetch hint for the drain (loop/wakeup.c)
 *   worker       job_run: looks at the future's state (resolved or
 *                cancelled already: fn never runs); fn(arg);
 *                resolve the future from the worker: the state is
 *                published at once for foreign waiters, and the future's
 *                own inbox node carries the done callbacks to the loop
 *                (one eventfd write per sleep at most, batched drains)
 *   pool         job_complete: nothing for a task that ran; a dropped
 *                task's future is cancelled and its in-flight reference
 *                dropped
 *
 * References on the future: the caller's, and the job's in flight (taken
 * at submit). job_run hands the latter over with the result: it becomes
 * the completion post's (or is dropped when there is no loop to post to),
 * so an offload's worker side pays no reference count of its own; the
 * wake-up's reads of the loop after the push, which that reference used
 * to cover (the future holds the loop), are covered by the worker's
 * hazard record (ferry__loop_post_handoff). A job that loses to a cancel,
 * or that the pool dropped unrun (job_complete), drops it instead. The task
 * is FERRY__TASK_OWN_STATE: the future's state arbitrates start against
 * cancel, so the pool keeps no task state (no start CAS, no DONE store)
 * and leaves the block alone once job_run returns (executor/internal.h).
 * A late result (the future was cancelled, timed out or set while fn ran)
 * rides a post node laid over the dead task to the loop and its dtor runs
 * there, holding one more reference while queued.
 *
 * Thread: ferry_run_in_executor on the loop's owner; ferry_pool_submit_
 * future anywhere; job_run/job_complete on workers.
 */
#include <stdlib.h>

#include "bridge/internal.h"

static void job_cancel(ferry_future *f)
{
    struct ferry__job *j = ferry__container_of(f, struct ferry__job, fut);
    /* The future's CAS decided: fn never starts, or it runs and may poll
     * ferry_task_cancelled(), whose flag this is (relaxed: a hint that
     * publishes nothing). */
    atomic_store_explicit(&j->task.cancel_requested, 1, memory_order_relaxed);
}

static void job_release(ferry_future *f)
{
    ferry__cache_put(FERRY__CACHE_LARGE,
                     ferry__container_of(f, struct ferry__job, fut));
}

/* Where resolvers other than job_run's handoff put their outcome. */
static struct ferry__outcome *job_alt_outcome(ferry_future *f)
{
    return &ferry__container_of(f, struct ferry__job, fut)->alt;
}

static const struct ferry__future_ops job_ops = {
    .on_cancel = job_cancel,
    .release = job_release,
    .alt_outcome = job_alt_outcome,
};

static void late_run(struct ferry__post *p, ferry_loop *loop)
{
    (void)loop;
    struct ferry__job *j = ferry__container_of(p, struct ferry__job, late);
    j->fut.dtor(j->fut.result);
    ferry_future_unref(&j->fut);
}

static void late_drop(struct ferry__post *p)
{
    late_run(p, NULL);
}

static const struct ferry__post_ops late_post_ops = {
    .run = late_run,
    .drop = late_drop,
};

/* The future was resolved otherwise (cancelled, timed out, set) while fn
 * ran: fn's result, left in j->fut.result by the lost handoff, is late.
 * It goes to dtor on the loop's thread, or here if there is no loop to go
 * to. The task is dead (fn returned), so its memory carries the post. */
static void hand_late_result(struct ferry__job *j)
{
    void *result = j->fut.result;
    ferry_free_fn *dtor = j->fut.dtor;
    if (dtor == NULL || result == NULL)
        return;
    ferry_loop *loop = j->fut.loop;
    if (loop != NULL) {
        j->late.ops = &late_post_ops;
        ferry_future_ref(&j->fut);
        if (ferry__loop_post(loop, &j->late) == 0)
            return;
        ferry_future_unref(&j->fut);
    }
    dtor(result);
}

static void job_run(void *arg)
{
    struct ferry__job *j = arg;
    /* A look, not a claim (no CAS): a cancel, timeout or setter that
     * lands after it finds fn running, as if it had come a moment later,
     * and fn's result is then late. One that came before it keeps fn from
     * running at all (S18); the handoff CAS below decides the rest. */
    if (!ferry__future_unresolved(&j->fut)) { /* resolved first */
        ferry_future_unref(&j->fut);          /* the job's in-flight ref */
        return;
    }
    void *result = NULL;
    int rc = j->fn(j->arg, &result);
    /* The in-flight reference goes with the completion: on success j may
     * be gone. */
    if (ferry__future_resolve_handoff(&j->fut, rc < 0 ? NULL : result,
                                      rc < 0 ? rc : 0) == 0)
        return;
    hand_late_result(j);
    ferry_future_unref(&j->fut); /* the job's in-flight ref */
}

static void job_complete(struct ferry__task *t, int status)
{
    if (status == 0)
        return; /* job_run dropped the reference; t may be gone */
    struct ferry__job *j = ferry__container_of(t, struct ferry__job, task);
    (void)ferry_future_cancel(&j->fut); /* dropped unrun (shutdown) */
    ferry_future_unref(&j->fut);        /* the job's in-flight ref */
}

/* Submit j's task now, to pool or (pool == NULL) to the default pool,
 * taking a fresh default pool if another loop shut the current one down
 * (S16). */
static int submit_now(ferry_loop *loop, ferry_pool *pool, struct ferry__job *j)
{
    if (pool != NULL)
        return ferry__pool_submit_task(pool, &j->task);
    int rc;
    do {
        rc = ferry__default_pool(loop, &pool);
        if (rc == 0)
            rc = ferry__pool_submit_task(pool, &j->task);
    } while (rc == -ESHUTDOWN && ferry__default_pool_retry(loop));
    return rc;
}

/* The refuse hooks of a deferred chain (executor/defer.c): the pool shut
 * down (another thread) before the loop's pass ended. An explicit pool's
 * offloads fail with -ESHUTDOWN; a default pool's go to a fresh default
 * pool, as a submit made then would have (S16). */
static void refused(struct ferry__task *t, bool dflt)
{
    for (struct ferry__task *next; t != NULL; t = next) {
        next = t->next;
        struct ferry__job *j = ferry__container_of(t, struct ferry__job, task);
        int rc = dflt ? submit_now(j->fut.loop, NULL, j) : -ESHUTDOWN;
        if (rc < 0) {
            (void)ferry__future_resolve(&j->fut, NULL, NULL, rc);
            ferry_future_unref(&j->fut); /* the job's in-flight ref */
        }
    }
}

static void refused_explicit(struct ferry__task *chain)
{
    refused(chain, false);
}

static void refused_default(struct ferry__task *chain)
{
    refused(chain, true);
}

/* loop->pass_end: the loop finished a pass of callbacks; its offloads go
 * to the pool in one push. */
static void flush_offloads(ferry_loop *loop)
{
    (void)loop;
    ferry__defer_flush();
}

/* pool == NULL: the loop's default pool. */
static int job_submit(ferry_loop *loop, ferry_pool *pool, ferry_work_fn *fn,
                      void *arg, ferry_free_fn *dtor, ferry_future **out)
{
    struct ferry__job *j = ferry__cache_get(FERRY__CACHE_LARGE);
    if (j == NULL)
        return -ENOMEM;
    ferry__future_init(&j->fut, loop, &job_ops);
    atomic_store_explicit(&j->fut.refs, 2, memory_order_relaxed);
    j->fut.dtor = dtor; /* ferry__future_resolve_handoff's contract */
    j->fn = fn;
    j->arg = arg;
    ferry__task_init(&j->task, job_run, j, job_complete,
                     FERRY_TASK_BLOCKING | FERRY__TASK_OWN_STATE);
    /* From a callback of the running loop, the task waits for the end of
     * the pass and goes with the pass's other offloads in one push
     * (executor/defer.c); anywhere else it goes at once. */
    ferry_pool *target = pool;
    bool in_pass = loop != NULL && ferry__loop_in_pass(loop);
    int rc = in_pass && pool == NULL ? ferry__default_pool(loop, &target) : 0;
    if (rc == 0 && in_pass &&
        ferry__defer_task(target, &j->task,
                          pool == NULL ? refused_default : refused_explicit)) {
        loop->pass_end = flush_offloads;
        ferry__loop_expect(loop, &j->fut.post);
    } else if (rc == 0) { /* a default pool that failed is not tried twice */
        rc = submit_now(loop, pool, j);
    }
    if (rc < 0) {
        if (loop != NULL) /* taken by ferry__future_init */
            ferry__loop_unref_future(loop);
        ferry__cache_put(FERRY__CACHE_LARGE, j);
        return rc;
    }
    *out = &j->fut;
    return 0;
}

FERRY_API int ferry_run_in_executor(ferry_loop *loop, ferry_pool *pool,
                                    ferry_work_fn *fn, void *arg,
                                    ferry_free_fn *result_dtor,
                                    ferry_future **out)
{
    if (fn == NULL || out == NULL)
        return -EINVAL;
    int rc = ferry__loop_check_open(loop);
    if (rc < 0)
        return rc;
    return job_submit(loop, pool, fn, arg, result_dtor, out);
}

FERRY_API int ferry_pool_submit_future(ferry_pool *pool, ferry_work_fn *fn,
                                       void *arg, ferry_free_fn *result_dtor,
                                       ferry_future **out)
{
    if (pool == NULL || fn == NULL || out == NULL)
        return -EINVAL;
    return job_submit(NULL, pool, fn, arg, result_dtor, out);
}
