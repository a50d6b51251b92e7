/*
 * bridge/run_threadsafe.c: any thread asks the loop to run a function and
 * gets a waitable future (asyncio's run_coroutine_threadsafe, S6).
 *
 * One allocation: a future bound to the loop and the inbox node that
 * carries the request. On the loop thread the node runs fn only if it
 * wins the future's PENDING->RUNNING CAS, so a cancel that came first means
 * fn never runs; a cancel that lands while fn runs wins the final CAS and
 * fn's result goes to its dtor (we are on the loop's thread, so at once).
 * A loop closed before the node ran fails the future with -ESHUTDOWN.
 *
 * References: the caller's, and the request's while it is in the inbox.
 * Thread: ferry_run_threadsafe any; the node's run/drop the loop's owner.
 */
#include <stdlib.h>

#include "bridge/internal.h"

struct request {
    struct ferry_future fut;
    struct ferry__post post;
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

static void request_run(struct ferry__post *p, ferry_loop *loop)
{
    (void)loop;
    struct request *r = ferry__container_of(p, struct request, post);
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

static void request_drop(struct ferry__post *p)
{
    struct request *r = ferry__container_of(p, struct request, post);
    (void)ferry__future_resolve(&r->fut, NULL, NULL, -ESHUTDOWN);
    ferry_future_unref(&r->fut);
}

static const struct ferry__post_ops request_post_ops = {
    .run = request_run,
    .drop = request_drop,
};

FERRY_API int ferry_run_threadsafe(ferry_loop *loop, ferry_work_fn *fn,
                                   void *arg, ferry_free_fn *result_dtor,
                                   ferry_future **out)
{
    if (loop == NULL || fn == NULL || out == NULL)
        return -EINVAL;
    if (ferry__loop_stale(loop))
        return -ECHILD;
    if (atomic_load_explicit(&loop->closed, memory_order_relaxed))
        return -ESHUTDOWN;
    struct request *r = malloc(sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    ferry__future_init(&r->fut, loop, &request_ops);
    atomic_store_explicit(&r->fut.refs, 2, memory_order_relaxed);
    r->fn = fn;
    r->arg = arg;
    r->dtor = result_dtor;
    r->post.ops = &request_post_ops;
    int rc = ferry__loop_post(loop, &r->post);
    if (rc < 0) {
        ferry_loop_unref(loop); /* taken by ferry__future_init */
        free(r);
        return rc;
    }
    *out = &r->fut;
    return 0;
}
