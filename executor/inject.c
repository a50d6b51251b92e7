/*
 * executor/inject.c: the injection queue, where tasks submitted from
 * outside the pool wait for a worker.
 *
 * A futex lock (struct ferry__lock, common/lock.c: one inlined atomic RMW
 * to lock and one to unlock when uncontended; every section under it is a
 * few stores long) and an intrusive singly linked FIFO through
 * ferry__task.next (tokio's Inject is the same shape, algorithms.md §2.2).
 * Producers append one task under the lock; workers take a batch per lock
 * and move it to their own deque, so the lock is taken far less often than
 * once per task. A `nonempty` flag, written under the lock on the edges
 * only and on a line of its own, lets workers and wake decisions peek
 * without locking and without disturbing a submitter's lock line.
 *
 * Wake-ups happen on the edge only (STYLE.md point 11): a push onto a
 * non-empty queue needs no notify. The task that made the queue non-empty
 * was notified for; whoever pops it takes ours under the same lock, either
 * in the same batch or leaving a remainder, and a pop that leaves tasks
 * behind notifies for them (the split in ferry__inject_pop); a pop that
 * empties the queue makes the next push an edge again.
 *
 * The queue also carries the pool's "closed" level, checked under the same
 * lock as the push: a submit racing ferry_pool_shutdown either lands before
 * the close (and is then drained or dropped by the shutdown) or is refused.
 *
 * Thread: any. Invariants: len == number of tasks on the list; nonempty ==
 * (len != 0) whenever the lock is free.
 */
#include <errno.h>

#include "executor/internal.h"

int ferry__inject_init(struct ferry__inject *q)
{
    ferry__lock_init(&q->lock);
    q->head = NULL;
    q->tail = NULL;
    q->len = 0;
    q->submitted = 0;
    q->closed = 0;
    atomic_init(&q->nonempty, 0);
    return 0;
}

void ferry__inject_term(struct ferry__inject *q)
{
    (void)q; /* the lock holds no resource */
}

/* Lock held. Relaxed stores: the lock orders the list itself; wake
 * decisions read the flag after their own seq_cst fence (park.c), which is
 * what orders it against a parking worker's re-check. */
static void set_nonempty_locked(struct ferry__inject *q, uint32_t v)
{
    atomic_store_explicit(&q->nonempty, v, memory_order_relaxed);
}

static void append_locked(struct ferry__inject *q, struct ferry__task *first,
                          struct ferry__task *last, uint64_t n)
{
    last->next = NULL;
    if (q->tail != NULL)
        q->tail->next = first;
    else
        q->head = first;
    q->tail = last;
    if (q->len == 0)
        set_nonempty_locked(q, 1);
    q->len += n;
}

int ferry__inject_push_chain(struct ferry__inject *q, struct ferry__task *first,
                             struct ferry__task *last, uint64_t n, bool nested,
                             bool *was_empty)
{
    ferry__lock(&q->lock);
    if (q->closed > (nested ? 1 : 0)) {
        ferry__unlock(&q->lock);
        return -ESHUTDOWN;
    }
    *was_empty = q->len == 0;
    append_locked(q, first, last, n);
    q->submitted += n;
    ferry__unlock(&q->lock);
    return 0;
}

int ferry__inject_push(struct ferry__inject *q, struct ferry__task *t,
                       bool nested, bool *was_empty)
{
    return ferry__inject_push_chain(q, t, t, 1, nested, was_empty);
}

void ferry__inject_requeue(struct ferry__inject *q, struct ferry__task *t)
{
    /* A task that was already accepted (a deque that could not grow):
     * the closed level does not apply, and it goes to the front. */
    ferry__lock(&q->lock);
    t->next = q->head;
    q->head = t;
    if (q->tail == NULL)
        q->tail = t;
    if (q->len++ == 0)
        set_nonempty_locked(q, 1);
    ferry__unlock(&q->lock);
}

struct ferry__task *ferry__inject_pop(struct ferry__inject *q, uint64_t share,
                                      uint64_t max, bool *split)
{
    *split = false;
    if (!ferry__inject_nonempty(q))
        return NULL;
    /* Detach the whole list in O(1). Cutting a batch off a linked list
     * means walking it, one cache miss per task (the submitter wrote each
     * link), and doing that under the lock made submitters spin on it. */
    ferry__lock(&q->lock);
    struct ferry__task *head = q->head;
    struct ferry__task *tail = q->tail;
    uint64_t len = q->len;
    q->head = NULL;
    q->tail = NULL;
    q->len = 0;
    if (len != 0)
        set_nonempty_locked(q, 0);
    ferry__unlock(&q->lock);
    uint64_t n = len / share + 1;
    if (n > max)
        n = max;
    if (len <= n)
        return head;
    struct ferry__task *last = head;
    for (uint64_t i = 1; i < n; i++)
        last = last->next;
    struct ferry__task *rest = last->next;
    last->next = NULL;
    /* Put the rest back in front of what was pushed meanwhile: FIFO order
     * is kept. It was invisible in between, so the caller must notify. */
    ferry__lock(&q->lock);
    tail->next = q->head;
    if (q->head == NULL)
        q->tail = tail;
    q->head = rest;
    if (q->len == 0)
        set_nonempty_locked(q, 1);
    q->len += len - n;
    ferry__unlock(&q->lock);
    *split = true;
    return head;
}

uint64_t ferry__inject_len(struct ferry__inject *q)
{
    ferry__lock(&q->lock);
    uint64_t len = q->len;
    ferry__unlock(&q->lock);
    return len;
}

void ferry__inject_close(struct ferry__inject *q, int level)
{
    ferry__lock(&q->lock);
    if (level > q->closed)
        q->closed = level;
    ferry__unlock(&q->lock);
}

void ferry__inject_reset(struct ferry__inject *q)
{
    /* A forked child: the lock may have been held by a thread that does
     * not exist here, so it is initialised again rather than unlocked. The
     * parent's tasks are forgotten, never run. */
    ferry__lock_init(&q->lock);
    q->head = NULL;
    q->tail = NULL;
    q->len = 0;
    atomic_store_explicit(&q->nonempty, 0, memory_order_relaxed);
}
