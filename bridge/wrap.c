/*
 * bridge/wrap.c: composing futures without coroutines.
 *
 * wrap (asyncio's wrap_future): a future bound to a loop follows another
 * future (free-standing, or bound elsewhere). A completion notifier on the
 * source runs on whatever thread completes it and resolves the wrapper
 * from there; the wrapper's done callbacks then travel its loop's inbox.
 * The notifier holds a reference on the wrapper until it has run, the
 * wrapper one on the source until it is freed; cancelling the wrapper
 * cancels the source.
 *
 * then: a done callback on the source runs fn on the loop and resolves the
 * next future. timeout: a timer fails the future with -ETIMEDOUT (and stops
 * attached work through the future's on_cancel hook); a done callback
 * cancels the timer when the future wins. The two share a small context
 * with two references, one per side, so it is freed exactly once; only the
 * timer side holds a reference on the future (timer_end says why).
 *
 * Thread: the owner of the loop involved.
 */
#include <stdlib.h>

#include "bridge/internal.h"

/* ---- wrap ---- */

struct wrapper {
    struct ferry_future fut;
    struct ferry__notify notify;
    ferry_future *src;
};

static void wrapper_cancel(ferry_future *f)
{
    (void)ferry_future_cancel(ferry__container_of(f, struct wrapper, fut)->src);
}

static void wrapper_release(ferry_future *f)
{
    struct wrapper *w = ferry__container_of(f, struct wrapper, fut);
    ferry_future_unref(w->src);
    free(w);
}

static const struct ferry__future_ops wrapper_ops = {
    .on_cancel = wrapper_cancel,
    .release = wrapper_release,
};

/* Copy src's outcome into the wrapper; the result stays src's (no dtor). */
static void follow(struct wrapper *w, ferry_future *src)
{
    void *value = NULL;
    int rc = ferry_future_result(src, &value);
    if (rc == -ECANCELED)
        (void)ferry_future_cancel(&w->fut);
    else
        (void)ferry__future_resolve(&w->fut, rc == 0 ? value : NULL, NULL, rc);
    ferry_future_unref(&w->fut); /* the notifier's reference */
}

static void on_src_done(struct ferry__notify *n, ferry_future *src)
{
    follow(ferry__container_of(n, struct wrapper, notify), src);
}

FERRY_API int ferry_future_wrap(ferry_loop *loop, ferry_future *fut,
                                ferry_future **out)
{
    if (fut == NULL || out == NULL)
        return -EINVAL;
    int rc = ferry__loop_check_open(loop);
    if (rc < 0)
        return rc;
    if (fut->loop == loop) {
        ferry_future_ref(fut);
        *out = fut;
        return 0;
    }
    struct wrapper *w = malloc(sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    ferry__future_init(&w->fut, loop, &wrapper_ops);
    atomic_store_explicit(&w->fut.refs, 2, memory_order_relaxed);
    ferry_future_ref(fut);
    w->src = fut;
    w->notify.fn = on_src_done;
    if (!ferry__future_notify(fut, &w->notify))
        follow(w, fut); /* already complete */
    *out = &w->fut;
    return 0;
}

/* ---- then ---- */

struct then {
    ferry_future *next;
    ferry_then_fn *fn;
    void *arg;
    ferry_free_fn *dtor;
};

static void then_run(ferry_future *prev, void *arg)
{
    struct then *t = arg;
    if (ferry__future_try_start(t->next)) {
        void *result = NULL;
        int rc = t->fn(prev, t->arg, &result);
        if (rc < 0)
            (void)ferry__future_resolve(t->next, NULL, NULL, rc);
        else if (ferry__future_resolve(t->next, result, t->dtor, 0) ==
                     -EALREADY &&
                 t->dtor != NULL)
            t->dtor(result);
    }
    ferry_future_unref(t->next);
    free(t);
}

static void then_drop(void *arg)
{
    struct then *t = arg;
    (void)ferry__future_resolve(t->next, NULL, NULL, -ESHUTDOWN);
    ferry_future_unref(t->next);
    free(t);
}

FERRY_API int ferry_future_then(ferry_future *fut, ferry_then_fn *fn, void *arg,
                                ferry_free_fn *result_dtor, ferry_future **next)
{
    if (fut == NULL || fn == NULL || next == NULL || fut->loop == NULL)
        return -EINVAL;
    struct then *t = malloc(sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    int rc = ferry_future_new(fut->loop, &t->next);
    if (rc < 0) {
        free(t);
        return rc;
    }
    t->fn = fn;
    t->arg = arg;
    t->dtor = result_dtor;
    ferry_future_ref(t->next); /* the callback's */
    rc = ferry_future_add_done_callback(fut, then_run, t, then_drop);
    if (rc < 0) {
        ferry_future_unref(t->next);
        ferry_future_unref(t->next);
        free(t);
        return rc;
    }
    *next = t->next;
    return 0;
}

/* ---- timeout ---- */

struct deadline {
    ferry_future *fut;   /* the timer side's reference (see timer_end) */
    ferry_handle *timer; /* our handle reference */
    int refs;            /* timer side + done-callback side; loop thread */
};

static void deadline_put(void *arg)
{
    struct deadline *d = arg;
    if (--d->refs != 0)
        return;
    ferry_handle_unref(d->timer);
    free(d);
}

/* The timer side ends (it fired, or was disposed): only it reads d->fut,
 * so its future reference goes with it. The done-callback side must not
 * hold one: it is a callback of that very future, and one whose loop
 * closed before completion is disposed only at the future's last unref
 * (future.c), which such a reference would forbid: the future, its loop
 * and the loop's eventfd were leaked (found by tests/fuzz). */
static void timer_end(struct deadline *d)
{
    ferry_future *f = d->fut;
    deadline_put(d); /* may free d */
    ferry_future_unref(f);
}

static void deadline_dispose(void *arg)
{
    timer_end(arg);
}

static void deadline_fire(void *arg)
{
    struct deadline *d = arg;
    ferry_future *f = d->fut;
    if (ferry__future_resolve(f, NULL, NULL, -ETIMEDOUT) == 0 &&
        f->ops != NULL && f->ops->on_cancel != NULL)
        f->ops->on_cancel(f); /* stop attached work, as a cancel would */
    timer_end(d);
}

static void deadline_done(ferry_future *f, void *arg)
{
    (void)f;
    struct deadline *d = arg;
    (void)ferry_handle_cancel(d->timer); /* disposes: the timer side ends */
    deadline_put(d);
}

FERRY_API int ferry_future_timeout(ferry_future *fut, int64_t delay_ns)
{
    if (fut == NULL || delay_ns < 0 || fut->loop == NULL)
        return -EINVAL;
    struct deadline *d = malloc(sizeof *d);
    if (d == NULL)
        return -ENOMEM;
    d->fut = fut;
    d->refs = 2;
    int rc = ferry_call_later(fut->loop, delay_ns, deadline_fire, d,
                              deadline_dispose, &d->timer);
    if (rc < 0) {
        free(d);
        return rc;
    }
    ferry_future_ref(fut);
    rc = ferry_future_add_done_callback(fut, deadline_done, d, deadline_put);
    if (rc < 0) {
        d->refs = 1;
        (void)ferry_handle_cancel(d->timer); /* the last put, and the unref */
        return rc;
    }
    return 0;
}
