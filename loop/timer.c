/*
 * loop/timer.c: call_later / call_at over a binary min-heap.
 *
 * The heap is an array of handle pointers ordered by (when, seq): seq is a
 * per-loop 64-bit counter taken at registration, so equal deadlines keep
 * registration order (libuv's timer_less_than does the same;
 * algorithms.md §5). Each handle stores its index, so cancel is an O(log n)
 * removal. The heap holds one reference on each timer in it.
 *
 * Collection (phase 3) first moves every due timer (when <= now) to the
 * ready queue, then the ready phase runs them. A timer re-armed with delay
 * 0 from its own callback is therefore due only on the next iteration: it
 * cannot starve the loop.
 *
 * Invariant: a handle is in the heap iff h->heap_idx != SIZE_MAX.
 * Thread: owner.
 */
#include <stdlib.h>

#include "loop/internal.h"

int ferry__timers_init(struct ferry__timers *t)
{
    t->heap = NULL;
    t->len = t->cap = 0;
    t->seq = 0;
    return 0;
}

static bool less(const struct ferry_handle *a, const struct ferry_handle *b)
{
    if (a->when != b->when)
        return a->when < b->when;
    return a->seq < b->seq;
}

static void place(struct ferry__timers *t, size_t i, struct ferry_handle *h)
{
    t->heap[i] = h;
    h->heap_idx = i;
}

static void sift_up(struct ferry__timers *t, size_t i)
{
    struct ferry_handle *h = t->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!less(h, t->heap[parent]))
            break;
        place(t, i, t->heap[parent]);
        i = parent;
    }
    place(t, i, h);
}

static void sift_down(struct ferry__timers *t, size_t i)
{
    struct ferry_handle *h = t->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= t->len)
            break;
        if (child + 1 < t->len && less(t->heap[child + 1], t->heap[child]))
            child++;
        if (!less(t->heap[child], h))
            break;
        place(t, i, t->heap[child]);
        i = child;
    }
    place(t, i, h);
}

static int heap_insert(struct ferry__timers *t, struct ferry_handle *h)
{
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct ferry_handle **heap = realloc(t->heap, cap * sizeof *heap);
        if (heap == NULL)
            return -ENOMEM;
        t->heap = heap;
        t->cap = cap;
    }
    h->seq = t->seq++;
    place(t, t->len++, h);
    sift_up(t, t->len - 1);
    return 0;
}

void ferry__timers_remove(ferry_loop *loop, struct ferry_handle *h)
{
    struct ferry__timers *t = &loop->timers;
    size_t i = h->heap_idx;
    h->heap_idx = SIZE_MAX;
    struct ferry_handle *last = t->heap[--t->len];
    if (i != t->len) {
        place(t, i, last);
        if (i > 0 && less(last, t->heap[(i - 1) / 2]))
            sift_up(t, i);
        else
            sift_down(t, i);
    }
    ferry__handle_put(h); /* the heap's reference */
}

void ferry__timers_collect(ferry_loop *loop, uint64_t now)
{
    struct ferry__timers *t = &loop->timers;
    while (t->len > 0 && t->heap[0]->when <= now) {
        struct ferry_handle *h = t->heap[0];
        h->refs++; /* keep it alive across the removal */
        ferry__timers_remove(loop, h);
        ferry__ready_push(loop, h);
        ferry__handle_put(h);
    }
}

int64_t ferry__timers_next(const ferry_loop *loop, uint64_t now)
{
    const struct ferry__timers *t = &loop->timers;
    if (t->len == 0)
        return -1;
    uint64_t when = t->heap[0]->when;
    if (when <= now)
        return 0;
    uint64_t d = when - now;
    return d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}

void ferry__timers_term(ferry_loop *loop)
{
    struct ferry__timers *t = &loop->timers;
    while (t->len > 0) {
        struct ferry_handle *h = t->heap[t->len - 1];
        h->refs++;
        ferry__timers_remove(loop, h);
        ferry__handle_drop(h);
        ferry__handle_put(h);
    }
    free(t->heap);
    t->heap = NULL;
    t->cap = 0;
}

FERRY_API int ferry_call_at(ferry_loop *loop, uint64_t when_ns, ferry_cb *cb,
                            void *arg, ferry_free_fn *dispose,
                            ferry_handle **out)
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
    h->when = when_ns;
    if (heap_insert(&loop->timers, h) < 0) {
        ferry__cache_put(FERRY__CACHE_LARGE, h);
        return -ENOMEM;
    }
    h->state = HANDLE_SCHEDULED;
    if (out != NULL) {
        h->refs++; /* the heap's reference plus the caller's */
        *out = h;
    }
    return 0;
}

FERRY_API int ferry_call_later(ferry_loop *loop, int64_t delay_ns, ferry_cb *cb,
                               void *arg, ferry_free_fn *dispose,
                               ferry_handle **out)
{
    if (delay_ns < 0 || loop == NULL)
        return -EINVAL;
    uint64_t now = ferry__loop_now(loop);
    return ferry_call_at(loop, now + (uint64_t)delay_ns, cb, arg, dispose, out);
}
