/*
 * bridge/run_threadsafe.c: any thread asks the loop to run a function and
 * gets a waitable future (asyncio's run_coroutine_threadsafe, S6).
 *
 * The request is a future bound to the loop plus the function; it travels
 * as an ordinary ferry_call_soon_threadsafe post, so it runs in the ready
 * phase in post order with the thread's other posts (and under the slow
 * callback watch). It runs fn only if it wins the future's
 * PENDING->RUNNING CAS, so a cancel that came first means fn never runs; a
 * cancel that lands while fn runs wins the final CAS and fn's result goes
 * to its dtor at once (we are on the loop's thread). A loop closed before
 * the post ran disposes it: the future fails with -ESHUTDOWN.
 *
 * References: the caller's, and the post's until it ran or was disposed.
 * Thread: ferry_run_threadsafe any; run/dispose the loop's owner.
 */
#include <stdlib.h>

#include "bridge/internal.h"

struct request {
    struct ferry_future fut;
    ferry_work_fn *fn;
    void *arg;
    ferry_free_fn *dtor;
};

static void request_release(ferry_future *f)
{
    free(ferry__container_of(f, struct request, fut));
}

static const struct ferry__future_ops request_ops = {
    .on_cancel = NULL,
    .release = request_release,
};

static void request_run(void *arg)
{
    struct request *r = arg;
    if (ferry__future_try_start(&r->fut)) {
        void *result = NULL;
        int rc = r->fn(r->arg, &result);
        if (rc < 0)
            (void)ferry__future_resolve(&r->fut, NULL, NULL, rc);
        else if (ferry__future_resolve(&r->fut, result, r->dtor, 0) ==
                     -EALREADY &&
                 r->dtor != NULL)
            r->dtor(result); /* cancelled while fn ran: discarded */
    }
    ferry_future_unref(&r->fut);
}

static void request_drop(void *arg)
{
    struct request *r = arg;
    (void)ferry__future_resolve(&r->fut, NULL, NULL, -ESHUTDOWN);
    ferry_future_unref(&r->fut);
}

FERRY_API int ferry_run_threadsafe(ferry_loop *loop, ferry_work_fn *fn,
                                   void *arg, ferry_free_fn *result_dtor,
                                   ferry_future **out)
{
    if (loop == NULL || fn == NULL || out == NULL)
        return -EINVAL;
    struct request *r = malloc(sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    ferry__future_init(&r->fut, loop, &request_ops);
    atomic_store_explicit(&r->fut.refs, 2, memory_order_relaxed);
    r->fn = fn;
    r->arg = arg;
    r->dtor = result_dtor;
    int rc = ferry_call_soon_threadsafe(loop, request_run, r, request_drop);
    if (rc < 0) {
        ferry__loop_unref_future(loop); /* taken by ferry__future_init */
        free(r);
        return rc;
    }
    *out = &r->fut;
    return 0;
}
