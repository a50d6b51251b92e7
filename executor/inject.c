/*
 * executor/inject.c: the injection queue, where tasks submitted from
 * outside the pool wait for a worker.
 *
 * A futex lock (struct ferry__lock, common/lock.c: one inlined atomic RMW
 * to lock and one to unlock when uncontended; every section under it is
 * short) over a ring of task pointers and two overflow lists linked
 * through ferry__task.next, one older than the ring's tasks ("front") and
 * one newer ("back"); tokio's Inject is a list alone (algorithms.md
 * §2.2). Producers append a batch per lock (one task, or a loop pass's
 * deferred offloads, defer.c); workers take a batch per lock and move it
 * to their own deque, so the lock is taken far less often than once per
 * task.
 *
 * Why a ring first: a worker that cut a batch off a linked list had to
 * walk it, and every link was a cache miss that could start only when the
 * previous one ended (the producer wrote the links on its core): 28% of
 * the workers' time on the offload throughput bench, in a walk. Pointers
 * in a ring are read eight to a line and the tasks they name can be
 * fetched all at once (the worker prefetches them, worker.c).
 *
 * Order: front, then ring, then back, each oldest first. A push goes to
 * the ring if the back list is empty and the batch fits, else to the
 * back list; a pop takes from the front, then the ring, and once both are
 * empty the back list becomes the front (a swap of pointers), so pushes
 * use the ring again while the overflow drains. Only overflowed tasks
 * (more than FERRY__INJECT_RING queued) are ever walked, under the lock,
 * a batch at a time: a walk done outside it would hide the rest of the
 * queue meanwhile. A requeued task goes first: on the front list, or the
 * ring's front when the front list is empty and the ring has room.
 *
 * Wake-ups happen on the edge only (STYLE.md point 11): a push onto a
 * non-empty queue needs no notify. The task that made the queue non-empty
 * was notified for; whoever pops it takes ours under the same lock, either
 * in the same batch or leaving a remainder, and a pop that leaves tasks
 * behind notifies for them (*split); a pop that empties the queue makes
 * the next push an edge again. A `nonempty` flag, written under the lock
 * on the edges only and on a line of its own, lets workers and wake
 * decisions peek without locking and without disturbing a submitter's
 * lock line.
 *
 * The queue also carries the pool's "closed" level, checked under the same
 * lock as the push: a submit racing ferry_pool_shutdown either lands before
 * the close (and is then drained or dropped by the shutdown) or is refused.
 *
 * Thread: any. Invariants (lock free): len == rlen + the tasks on both
 * lists; nonempty == (len != 0); the ring's free slots hold NULL.
 */
#include <errno.h>
#include <string.h>

#include "executor/internal.h"

enum { RING_MASK = FERRY__INJECT_RING - 1 };
_Static_assert((FERRY__INJECT_RING & RING_MASK) == 0,
               "the ring's size is a power of two");

int ferry__inject_init(struct ferry__inject *q)
{
    ferry__lock_init(&q->lock);
    q->head = NULL;
    q->tail = NULL;
    q->bhead = NULL;
    q->btail = NULL;
    q->rhead = 0;
    q->rlen = 0;
    memset(q->ring, 0, sizeof q->ring);
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

/* Lock held. Relaxed stores: the lock orders the queue itself; wake
 * decisions read the flag after their own seq_cst fence (park.c), which is
 * what orders it against a parking worker's re-check. */
static void set_nonempty_locked(struct ferry__inject *q, uint32_t v)
{
    atomic_store_explicit(&q->nonempty, v, memory_order_relaxed);
}

static void back_append_locked(struct ferry__inject *q,
                               struct ferry__task *const *ts, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        ts[i]->next = NULL;
        if (q->btail != NULL)
            q->btail->next = ts[i];
        else
            q->bhead = ts[i];
        q->btail = ts[i];
    }
}

int ferry__inject_push_batch(struct ferry__inject *q,
                             struct ferry__task *const *ts, uint64_t n,
                             bool nested, bool *was_empty)
{
    ferry__lock(&q->lock);
    if (q->closed > (nested ? 1 : 0)) {
        ferry__unlock(&q->lock);
        return -ESHUTDOWN;
    }
    *was_empty = q->len == 0;
    if (q->bhead == NULL && n <= (uint64_t)(FERRY__INJECT_RING - q->rlen)) {
        for (uint64_t i = 0; i < n; i++)
            q->ring[(q->rhead + q->rlen + i) & RING_MASK] = ts[i];
        q->rlen += (uint32_t)n;
    } else {
        back_append_locked(q, ts, n);
    }
    if (q->len == 0 && n != 0)
        set_nonempty_locked(q, 1);
    q->len += n;
    q->submitted += n;
    ferry__unlock(&q->lock);
    return 0;
}

int ferry__inject_push(struct ferry__inject *q, struct ferry__task *t,
                       bool nested, bool *was_empty)
{
    return ferry__inject_push_batch(q, &t, 1, nested, was_empty);
}

void ferry__inject_requeue(struct ferry__inject *q, struct ferry__task *t)
{
    /* A task that was already accepted (a deque that could not grow):
     * the closed level does not apply, and it goes first. */
    ferry__lock(&q->lock);
    if (q->head != NULL || q->rlen == FERRY__INJECT_RING) {
        t->next = q->head;
        q->head = t;
        if (q->tail == NULL)
            q->tail = t;
    } else {
        q->rhead = (q->rhead - 1) & RING_MASK;
        q->ring[q->rhead] = t;
        q->rlen++;
    }
    if (q->len++ == 0)
        set_nonempty_locked(q, 1);
    ferry__unlock(&q->lock);
}

/* Take up to n tasks off the front list into out; lock held. Returns how
 * many. */
static uint64_t pop_front_locked(struct ferry__inject *q, uint64_t n,
                                 struct ferry__task **out)
{
    struct ferry__task *t = q->head;
    uint64_t k = 0;
    for (; k < n && t != NULL; k++) {
        out[k] = t;
        t = t->next;
    }
    q->head = t;
    if (t == NULL)
        q->tail = NULL;
    return k;
}

/* The pop proper; lock held, and released here. */
static uint64_t pop_batch_locked(struct ferry__inject *q, uint64_t share,
                                 uint64_t max, struct ferry__task **out,
                                 bool *split)
{
    uint64_t n = q->len / share + 1;
    if (n > max)
        n = max;
    uint64_t k = pop_front_locked(q, n, out);
    uint64_t r = n - k < q->rlen ? n - k : q->rlen;
    for (uint64_t i = 0; i < r; i++) {
        uint32_t slot = (q->rhead + (uint32_t)i) & RING_MASK;
        out[k + i] = q->ring[slot];
        q->ring[slot] = NULL; /* no stale pointer for a leak checker */
    }
    q->rhead = (q->rhead + (uint32_t)r) & RING_MASK;
    q->rlen -= (uint32_t)r;
    k += r;
    if (q->rlen == 0 && q->head == NULL && q->bhead != NULL) {
        /* The back list is the oldest now; pushes go to the ring again. */
        q->head = q->bhead;
        q->tail = q->btail;
        q->bhead = q->btail = NULL;
        k += pop_front_locked(q, n - k, out + k);
    }
    q->len -= k;
    if (k != 0 && q->len == 0)
        set_nonempty_locked(q, 0);
    /* Tasks left behind that nobody was woken for: the caller notifies. */
    *split = k != 0 && q->len != 0;
    ferry__unlock(&q->lock);
    return k;
}

uint64_t ferry__inject_pop_batch(struct ferry__inject *q, uint64_t share,
                                 uint64_t max, struct ferry__task **out,
                                 bool *split)
{
    *split = false;
    if (!ferry__inject_nonempty(q))
        return 0;
    ferry__lock(&q->lock);
    return pop_batch_locked(q, share, max, out, split);
}

/* A worker does not wait for the lock: it finds work elsewhere or comes
 * back (search yields between sweeps). Waiting made the workers queue
 * behind the outside submitter, and behind each other, once per task
 * (public tiny tasks: 5.0 M/s waiting, 6.2 M/s not; README). No wake-up
 * depends on a pop: ferry__park_worker re-checks the nonempty flag, not
 * the queue, and does not park while it is set (park.pml models the
 * failed try). */
uint64_t ferry__inject_try_pop_batch(struct ferry__inject *q, uint64_t share,
                                     uint64_t max, struct ferry__task **out,
                                     bool *split)
{
    *split = false;
    if (!ferry__inject_nonempty(q) || !ferry__trylock(&q->lock))
        return 0;
    return pop_batch_locked(q, share, max, out, split);
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
    q->bhead = NULL;
    q->btail = NULL;
    q->rhead = 0;
    q->rlen = 0;
    memset(q->ring, 0, sizeof q->ring);
    q->len = 0;
    atomic_store_explicit(&q->nonempty, 0, memory_order_relaxed);
}
