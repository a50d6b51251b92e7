/*
 * loop/ready.c: handles, the ready queue, call_soon and
 * call_soon_threadsafe, and slow-callback detection.
 *
 * The ready queue is a singly linked FIFO. Phase 4 of an iteration detaches
 * the whole list and runs it, so callbacks scheduled while it runs land in
 * the fresh list and wait for the next iteration (asyncio's ntodo rule).
 * Cancelling a queued handle marks it dropped (and disposes it at once);
 * the runner skips it. O(1) either way.
 *
 * Invariants: a handle is in the ready queue iff h->queued; the queue holds
 * one reference on each queued handle; a one-shot handle ends in exactly
 * one of HANDLE_RAN (callback ran) or HANDLE_DROPPED (dispose ran).
 *
 * Slow callbacks (S15): with a hook set, one CLOCK_MONOTONIC read per
 * callback (the end of one callback is the start of the next); the symbol
 * comes from dladdr(3). Without a hook no clock is read.
 *
 * Thread: owner, except ferry_call_soon_threadsafe (any thread).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "loop/internal.h"

_Static_assert(sizeof(struct ferry_handle) <= FERRY__CACHE_LARGE_BYTES,
               "handles come from the block cache");

struct ferry_handle *ferry__handle_new(ferry_loop *loop, enum handle_kind kind,
                                       ferry_cb *cb, void *arg,
                                       ferry_free_fn *dispose)
{
    struct ferry_handle *h = ferry__cache_get(FERRY__CACHE_LARGE);
    if (h == NULL)
        return NULL;
    memset(h, 0, sizeof *h);
    h->loop = loop;
    h->refs = 1;
    h->kind = (uint8_t)kind;
    h->state = HANDLE_IDLE;
    h->heap_idx = SIZE_MAX;
    h->fn.cb = cb;
    h->arg = arg;
    h->dispose = dispose;
    return h;
}

void ferry__handle_put(struct ferry_handle *h)
{
    if (--h->refs != 0)
        return;
    if (h->fut != NULL)
        ferry_future_unref(h->fut);
    ferry__cache_put(FERRY__CACHE_LARGE, h);
}

void ferry__handle_drop(struct ferry_handle *h)
{
    if (h->state == HANDLE_RAN || h->state == HANDLE_DROPPED)
        return;
    h->state = HANDLE_DROPPED;
    if (h->dispose != NULL)
        h->dispose(h->arg);
}

void ferry__ready_push_node(ferry_loop *loop, struct ferry__rnode *n)
{
    n->next = NULL;
    if (loop->ready.tail != NULL)
        loop->ready.tail->next = n;
    else
        loop->ready.head = n;
    loop->ready.tail = n;
}

static ferry__anyfn *handle_run(struct ferry__rnode *n);
static void handle_drop_queued(struct ferry__rnode *n);

static const struct ferry__rnode_ops handle_ready = {
    .run = handle_run,
    .drop = handle_drop_queued,
};

void ferry__ready_push(ferry_loop *loop, struct ferry_handle *h)
{
    if (h->queued)
        return;
    h->queued = true;
    h->refs++;
    if (h->kind != HANDLE_WATCH)
        h->state = HANDLE_SCHEDULED;
    h->rnode.ops = &handle_ready;
    ferry__ready_push_node(loop, &h->rnode);
}

static ferry__anyfn *fn_addr(const struct ferry_handle *h)
{
    return h->kind == HANDLE_DONE ? (ferry__anyfn *)h->fn.fcb
                                  : (ferry__anyfn *)h->fn.cb;
}

static ferry__anyfn *handle_run(struct ferry__rnode *n)
{
    struct ferry_handle *h = ferry__container_of(n, struct ferry_handle, rnode);
    ferry__anyfn *ran = NULL;
    h->queued = false;
    if (h->state != HANDLE_DROPPED) {
        ran = fn_addr(h);
        switch ((enum handle_kind)h->kind) {
        case HANDLE_CALL:
            h->state = HANDLE_RAN;
            h->fn.cb(h->arg);
            break;
        case HANDLE_DONE:
            h->state = HANDLE_RAN;
            ferry__future_run_done(h);
            break;
        case HANDLE_WATCH:
            h->fn.cb(h->arg);
            break;
        }
    }
    ferry__handle_put(h);
    return ran;
}

static void handle_drop_queued(struct ferry__rnode *n)
{
    struct ferry_handle *h = ferry__container_of(n, struct ferry_handle, rnode);
    h->queued = false;
    if (h->kind != HANDLE_WATCH)
        ferry__handle_drop(h);
    ferry__handle_put(h);
}

static const char *symbol_of(ferry__anyfn *fn)
{
    void *addr;
    /* Function pointer to object pointer: not ISO C, but POSIX dlsym
     * requires the two to be interchangeable; memcpy avoids the warning. */
    memcpy(&addr, &fn, sizeof addr);
    Dl_info info;
    if (dladdr(addr, &info) == 0 || info.dli_sname == NULL)
        return NULL;
    return info.dli_sname;
}

/* Forked inside a callback: the rest of the batch goes back to the front of
 * the queue, unrun; the child decides (after_fork) whether to go on. */
static void requeue(ferry_loop *loop, struct ferry__rnode *n)
{
    struct ferry__rnode *last = n;
    while (last->next != NULL)
        last = last->next;
    last->next = loop->ready.head;
    if (loop->ready.head == NULL)
        loop->ready.tail = last;
    loop->ready.head = n;
}

void ferry__ready_run(ferry_loop *loop)
{
    struct ferry__rnode *n = loop->ready.head;
    loop->ready.head = loop->ready.tail = NULL;
    uint64_t t0 = loop->slow_hook != NULL ? ferry__now_ns() : 0;
    while (n != NULL) {
        if (ferry__loop_stale(loop)) {
            requeue(loop, n);
            return;
        }
        struct ferry__rnode *next = n->next;
        ferry__anyfn *ran = n->ops->run(n); /* n may be freed */
        n = next;
        if (ran == NULL)
            continue;
        ferry__loop_count(&loop->stats.callbacks);
        if (loop->slow_hook != NULL) {
            uint64_t t1 = ferry__now_ns();
            /* t0 == 0: the hook was set by this very callback. */
            if (t0 != 0 && t1 - t0 >= loop->slow_threshold) {
                ferry__loop_count(&loop->stats.slow_callbacks);
                loop->slow_hook(loop->slow_arg, symbol_of(ran), t1 - t0);
                t1 = ferry__now_ns(); /* don't bill the hook */
            }
            t0 = t1;
        } else {
            t0 = 0;
        }
    }
}

void ferry__ready_term(ferry_loop *loop)
{
    struct ferry__rnode *n = loop->ready.head;
    loop->ready.head = loop->ready.tail = NULL;
    while (n != NULL) {
        struct ferry__rnode *next = n->next;
        n->ops->drop(n);
        n = next;
    }
}

FERRY_API int ferry_call_soon(ferry_loop *loop, ferry_cb *cb, void *arg,
                              ferry_free_fn *dispose, ferry_handle **out)
{
    if (cb == NULL)
        return -EINVAL;
    int rc = ferry__loop_check_open(loop);
    if (rc < 0)
        return rc;
    struct ferry_handle *h =
        ferry__handle_new(loop, HANDLE_CALL, cb, arg, dispose);
    if (h == NULL)
        return -ENOMEM;
    ferry__ready_push(loop, h);
    if (out != NULL)
        *out = h; /* the creation reference becomes the caller's */
    else
        ferry__handle_put(h);
    return 0;
}

static void post_run(struct ferry__post *p, ferry_loop *loop)
{
    struct ferry_handle *h = ferry__container_of(p, struct ferry_handle, post);
    ferry__ready_push(loop, h);
    ferry__handle_put(h); /* the post's reference; the queue holds one */
}

static void post_drop(struct ferry__post *p)
{
    struct ferry_handle *h = ferry__container_of(p, struct ferry_handle, post);
    ferry__handle_drop(h);
    ferry__handle_put(h);
}

static const struct ferry__post_ops handle_post = {.run = post_run,
                                                   .drop = post_drop};

FERRY_API int ferry_call_soon_threadsafe(ferry_loop *loop, ferry_cb *cb,
                                         void *arg, ferry_free_fn *dispose)
{
    if (loop == NULL || cb == NULL)
        return -EINVAL;
    if (loop->fork_gen != ferry__fork_gen())
        return -ECHILD;
    /* Checked again, atomically, by the push (the inbox sentinel); this
     * early answer only saves an allocation. */
    if (atomic_load_explicit(&loop->closed, memory_order_relaxed))
        return -ESHUTDOWN;
    struct ferry_handle *h =
        ferry__handle_new(loop, HANDLE_CALL, cb, arg, dispose);
    if (h == NULL)
        return -ENOMEM;
    h->post.ops = &handle_post;
    int rc = ferry__loop_post(loop, &h->post);
    if (rc < 0)
        ferry__cache_put(FERRY__CACHE_LARGE,
                         h); /* never published: arg stays the caller's */
    return rc;
}

FERRY_API int ferry_handle_cancel(ferry_handle *h)
{
    if (h == NULL)
        return -EINVAL;
    /* State first: a handle that ran or was dropped (also by a close) never
     * touches its loop, which may be gone. */
    if (h->state == HANDLE_RAN || h->state == HANDLE_DROPPED)
        return -EALREADY;
    if (!ferry__loop_on_owner(h->loop))
        return -EPERM;
    if (h->heap_idx != SIZE_MAX)
        ferry__timers_remove(h->loop, h);
    ferry__handle_drop(h);
    return 0;
}

FERRY_API bool ferry_handle_cancelled(const ferry_handle *h)
{
    return h != NULL && h->state == HANDLE_DROPPED;
}

FERRY_API void ferry_handle_unref(ferry_handle *h)
{
    if (h != NULL)
        ferry__handle_put(h);
}
