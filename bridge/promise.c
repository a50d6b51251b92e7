/*
 * bridge/promise.c: promises, the producer side of a future, and the
 * thunks that adapt legacy callback APIs (S5, S19).
 *
 * Exactly once: the first completion wins an exchange on `completed`; any
 * later one gets -EALREADY and its value is disposed at once. The winner
 * parks value/err in the promise and posts the promise's inbox node to the
 * loop, so the future resolves on a later iteration even when the
 * completion happens on the loop's thread inside the initiating call. On
 * the loop, resolution can still lose (the consumer cancelled, or
 * ferry_future_timeout fired): the value is then disposed there. If the
 * loop is closed the future is resolved right away on the completing
 * thread (its done callbacks are dropped with the loop).
 *
 * References: the promise holds one on its future; the producer holds the
 * promise (ferry_promise_unref when it can no longer call it); the posted
 * node holds one more on the promise until the loop has run it.
 *
 * Thread: ferry_promise_new on the loop's owner; the rest any thread.
 */
#include <stdlib.h>

#include "bridge/internal.h"

struct ferry_promise {
    _Atomic uint32_t refs;
    _Atomic uint32_t completed; /* 0 -> 1 once, by the winning producer */
    ferry_future *fut;
    ferry_free_fn *dispose;
    struct ferry__post post;
    void *value; /* written by the winner before posting */
    int err;
};

FERRY_API int ferry_promise_new(ferry_loop *loop, ferry_free_fn *dispose,
                                ferry_promise **promise, ferry_future **fut)
{
    if (promise == NULL || fut == NULL)
        return -EINVAL;
    ferry_promise *p = malloc(sizeof *p);
    if (p == NULL)
        return -ENOMEM;
    int rc = ferry_future_new(loop, &p->fut);
    if (rc < 0) {
        free(p);
        return rc;
    }
    atomic_init(&p->refs, 1);
    atomic_init(&p->completed, 0);
    p->dispose = dispose;
    p->value = NULL;
    p->err = 0;
    ferry_future_ref(p->fut);
    *promise = p;
    *fut = p->fut;
    return 0;
}

FERRY_API void ferry_promise_ref(ferry_promise *p)
{
    if (p != NULL)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

FERRY_API void ferry_promise_unref(ferry_promise *p)
{
    if (p == NULL)
        return;
    /* Acq_rel: see ferry_future_unref. */
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    ferry_future_unref(p->fut);
    free(p);
}

/* Resolve the future with what the winner parked; a value that loses goes
 * to dispose. */
static void deliver(ferry_promise *p)
{
    int rc;
    if (p->err == -ECANCELED)
        rc = ferry_future_cancel(p->fut) ? 0 : -EALREADY;
    else
        rc = ferry__future_resolve(p->fut, p->value, p->dispose, p->err);
    if (rc == -EALREADY && p->value != NULL && p->dispose != NULL)
        p->dispose(p->value);
}

static void post_run(struct ferry__post *node, ferry_loop *loop)
{
    (void)loop;
    ferry_promise *p = ferry__container_of(node, ferry_promise, post);
    deliver(p);
    ferry_promise_unref(p);
}

static void post_drop(struct ferry__post *node)
{
    post_run(node, NULL);
}

static const struct ferry__post_ops promise_ops = {
    .run = post_run,
    .drop = post_drop,
};

static int complete(ferry_promise *p, void *value, int err)
{
    if (atomic_exchange_explicit(&p->completed, 1, memory_order_acq_rel)) {
        if (value != NULL && p->dispose != NULL)
            p->dispose(value);
        return -EALREADY;
    }
    p->value = value;
    p->err = err;
    p->post.ops = &promise_ops;
    ferry_promise_ref(p);
    if (ferry__loop_post(p->fut->loop, &p->post) < 0)
        post_run(&p->post, NULL); /* loop closed: resolve here */
    return 0;
}

FERRY_API int ferry_promise_resolve(ferry_promise *p, void *value)
{
    if (p == NULL)
        return -EINVAL;
    return complete(p, value, 0);
}

FERRY_API int ferry_promise_reject(ferry_promise *p, int err)
{
    if (p == NULL || err >= 0)
        return -EINVAL;
    return complete(p, NULL, err);
}

FERRY_API int ferry_promise_complete(ferry_promise *p, int status, void *data)
{
    if (p == NULL)
        return -EINVAL;
    if (status == 0)
        return complete(p, data, 0);
    if (data != NULL && p->dispose != NULL)
        p->dispose(data);
    return complete(p, NULL, status < 0 ? status : -status);
}

FERRY_API void ferry_promise_cb_status(void *ctx, int status)
{
    (void)ferry_promise_complete(ctx, status, NULL);
}

FERRY_API void ferry_promise_cb_status_data(void *ctx, int status, void *data)
{
    (void)ferry_promise_complete(ctx, status, data);
}

FERRY_API void ferry_promise_cb_status_data_ctx(int status, void *data,
                                                void *ctx)
{
    (void)ferry_promise_complete(ctx, status, data);
}
