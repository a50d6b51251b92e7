/*
 * loop/future_cb.c: a future's done callbacks, registered and removed on
 * the loop's owner thread (future.c dispatches them at completion and
 * says how they are stored: cb0 embedded in the future, further ones as
 * handles on the cbs list).
 *
 * Thread: owner, per include/ferry/future.h.
 */
#include "loop/internal.h"

static int check_callbacks(ferry_future *f)
{
    if (f == NULL || f->loop == NULL)
        return -EINVAL;
    int rc = ferry__loop_check(f->loop);
    if (rc < 0)
        return rc;
    return 0;
}

/* A callback that does not fit cb0: a handle, queued behind cb0 and the
 * others, or straight to the ready queue once they were dispatched. */
static int add_handle(ferry_future *fut, ferry_future_cb *cb, void *arg,
                      ferry_free_fn *dispose)
{
    struct ferry_handle *h =
        ferry__handle_new(fut->loop, HANDLE_DONE, NULL, arg, dispose);
    if (h == NULL)
        return -ENOMEM;
    h->fn.fcb = cb;
    h->state = HANDLE_SCHEDULED;
    if (fut->cbs == FERRY__CBS_DISPATCHED) { /* done: still never inline */
        ferry_future_ref(fut);
        h->fut = fut;
        ferry__ready_push(fut->loop, h);
        ferry__handle_put(h);
        return 0;
    }
    struct ferry_handle **link = &fut->cbs; /* after cb0 and the others */
    while (*link != NULL)
        link = &(*link)->next;
    *link = h;
    return 0;
}

FERRY_API int ferry_future_add_done_callback(ferry_future *fut,
                                             ferry_future_cb *cb, void *arg,
                                             ferry_free_fn *dispose)
{
    if (cb == NULL)
        return -EINVAL;
    int rc = check_callbacks(fut);
    if (rc < 0)
        return rc;
    if (atomic_load_explicit(&fut->loop->closed, memory_order_relaxed))
        return -ESHUTDOWN;
    if (fut->cbs != NULL || fut->cb0.fn != NULL)
        return add_handle(fut, cb, arg, dispose);
    fut->cb0.fn = cb; /* the common case: no handle */
    fut->cb0.arg = arg;
    fut->cb0.dispose = dispose;
    return 0;
}

FERRY_API int ferry_future_remove_done_callback(ferry_future *fut,
                                                ferry_future_cb *cb, void *arg)
{
    int rc = check_callbacks(fut);
    if (rc < 0)
        return rc;
    if (fut->cbs == FERRY__CBS_DISPATCHED)
        return 0; /* scheduled already: asyncio removes nothing either */
    int removed = 0;
    if (fut->cb0.fn == cb && fut->cb0.arg == arg) {
        ferry__future_drop_cb0(fut);
        removed++;
    }
    struct ferry_handle **link = &fut->cbs;
    while (*link != NULL) {
        struct ferry_handle *h = *link;
        if (h->fn.fcb == cb && h->arg == arg) {
            *link = h->next;
            ferry__handle_drop(h);
            ferry__handle_put(h);
            removed++;
            continue;
        }
        link = &h->next;
    }
    return removed;
}

void ferry__future_run_done(struct ferry_handle *h)
{
    h->fn.fcb(h->fut, h->arg);
}
