/*
 * executor/deque.c: the Chase-Lev work-stealing deque in C11 atomics.
 *
 * The algorithm and its memory orders are those of N. M. Lê, A. Pop,
 * A. Cohen and F. Zappa Nardelli, "Correct and Efficient Work-Stealing for
 * Weak Memory Models", PPoPP 2013 (doi 10.1145/2442516.2442524), Fig. 1,
 * itself the C11 form of D. Chase and Y. Lev, "Dynamic Circular
 * Work-Stealing Deque", SPAA 2005. The structure is kept recognisable:
 * push/take/steal below are the paper's push/take/steal, line for line.
 *
 * Changes from the paper (algorithms.md §1.2, §1.4):
 *   - indices are signed 64-bit: take on an empty deque computes
 *     bottom - 1 = -1, which must compare below top (the paper's size_t
 *     underflows and returns a garbage slot); they never wrap, so top
 *     cannot suffer ABA;
 *   - slots are atomics accessed relaxed: a thief may read a slot while the
 *     owner rewrites it after wrap-around (the value is then discarded by
 *     the failed CAS, but a plain access would still be a data race);
 *   - growth doubles the array and keeps the old ones on a retired list
 *     until ferry__deque_term (the pool's lifetime), so a thief that loaded
 *     the old array pointer reads valid memory; retained memory stays below
 *     one extra copy of the live array;
 *   - under ThreadSanitizer, which does not model fences, push publishes
 *     bottom with a release store instead of fence + relaxed store (as
 *     crossbeam-deque does); both orders give thieves the same guarantee.
 *     The seq_cst fences go through ferry__fence_seq_cst (executor/fence.h)
 *     for the same reason.
 *
 * Thread: push, take and discard by the owner only; steal and len by any.
 */
#include <errno.h>
#include <stdlib.h>

#include "executor/deque.h"

#ifdef FERRY__TSAN
_Atomic unsigned ferry__tsan_fence_word;
#endif

static struct ferry__deque_array *array_new(int64_t cap)
{
    struct ferry__deque_array *a =
        malloc(sizeof *a + (size_t)cap * sizeof(a->slot[0]));
    if (a == NULL)
        return NULL;
    a->cap = cap;
    a->retired = NULL;
    for (int64_t i = 0; i < cap; i++)
        atomic_init(&a->slot[i], NULL);
    return a;
}

int ferry__deque_init(struct ferry__deque *q, unsigned log2_cap)
{
    struct ferry__deque_array *a = array_new((int64_t)1 << log2_cap);
    if (a == NULL)
        return -ENOMEM;
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    atomic_init(&q->array, a);
    return 0;
}

void ferry__deque_term(struct ferry__deque *q)
{
    struct ferry__deque_array *a =
        atomic_load_explicit(&q->array, memory_order_relaxed);
    while (a != NULL) {
        struct ferry__deque_array *older = a->retired;
        free(a);
        a = older;
    }
    atomic_store_explicit(&q->array, NULL, memory_order_relaxed);
}

/* Owner only: copy live indices [t, b) into an array twice as large.
 * Index positions are preserved; only the mask changes. */
static struct ferry__deque_array *
grow(struct ferry__deque *q, struct ferry__deque_array *a, int64_t t, int64_t b)
{
    struct ferry__deque_array *n = array_new(a->cap * 2);
    if (n == NULL)
        return NULL;
    for (int64_t i = t; i < b; i++) {
        struct ferry__task *x = atomic_load_explicit(&a->slot[i & (a->cap - 1)],
                                                     memory_order_relaxed);
        atomic_store_explicit(&n->slot[i & (n->cap - 1)], x,
                              memory_order_relaxed);
    }
    n->retired = a;
    /* Release: the copies above happen-before any thief's acquire load of
     * q->array in steal that returns n. */
    atomic_store_explicit(&q->array, n, memory_order_release);
    return n;
}

int ferry__deque_push(struct ferry__deque *q, struct ferry__task *x)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    /* Acquire: pairs with the CAS on top in steal and take. Seeing top = t
     * means the thief that moved top past t-1 has finished reading that
     * slot, so the slot may be reused below. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    struct ferry__deque_array *a =
        atomic_load_explicit(&q->array, memory_order_relaxed);
    if (b - t > a->cap - 1) {
        a = grow(q, a, t, b);
        if (a == NULL)
            return -ENOMEM;
    }
    atomic_store_explicit(&a->slot[b & (a->cap - 1)], x, memory_order_relaxed);
#ifdef FERRY__TSAN
    /* Release store: the form of the fence below that TSan understands
     * (file comment); it pairs with the same acquire load in steal. */
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release);
#else
    /* Release fence: the slot store above, and everything the submitter
     * wrote into *x, happen-before the reads of a thief whose acquire load
     * of bottom in steal sees b + 1. */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
#endif
    return 0;
}

struct ferry__task *ferry__deque_take(struct ferry__deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1;
    struct ferry__deque_array *a =
        atomic_load_explicit(&q->array, memory_order_relaxed);
    atomic_store_explicit(&q->bottom, b, memory_order_relaxed);
    /* The StoreLoad fence. It orders our store of bottom before our load of
     * top; it pairs with the seq_cst fence in steal between the thief's
     * loads of top and bottom. In the total order of the two fences, either
     * the thief sees our decremented bottom (and backs off from index b),
     * or we see its incremented top; so an element is never given to both,
     * and for the last element (t == b) both sides fall through to the CAS
     * on top, which exactly one wins. */
    ferry__fence_seq_cst();
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    struct ferry__task *x = NULL;
    if (t <= b) {
        x = atomic_load_explicit(&a->slot[b & (a->cap - 1)],
                                 memory_order_relaxed);
        if (t == b) {
            /* Last element: race the thieves for index t. seq_cst, as in
             * the paper; on failure a thief took it. */
            if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                         memory_order_seq_cst,
                                                         memory_order_relaxed))
                x = NULL;
            atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
        }
    } else {
        /* Empty: restore bottom = top. */
        atomic_store_explicit(&q->bottom, b + 1, memory_order_relaxed);
    }
    return x;
}

enum ferry__steal ferry__deque_steal(struct ferry__deque *q,
                                     struct ferry__task **out)
{
    /* Acquire: pairs with the CAS on top by other thieves and the owner, so
     * our view of the array is not older than theirs. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);
    /* Pairs with the seq_cst fence in take (see there). */
    ferry__fence_seq_cst();
    /* Acquire: pairs with the release fence (or release store) in push, so
     * slot t and the task it points to are visible once we see bottom. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_acquire);
    if (t >= b)
        return FERRY__STEAL_EMPTY;
    /* Acquire (the paper's consume): pairs with the release store in grow,
     * so a new array is seen with its copied contents. */
    struct ferry__deque_array *a =
        atomic_load_explicit(&q->array, memory_order_acquire);
    struct ferry__task *x =
        atomic_load_explicit(&a->slot[t & (a->cap - 1)], memory_order_relaxed);
    /* Claim index t. seq_cst, as in the paper: it is the release half of
     * the pairing with push's acquire load of top. Failure means the owner
     * or another thief consumed t, and x is discarded unread. */
    if (!atomic_compare_exchange_strong_explicit(
            &q->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed))
        return FERRY__STEAL_RETRY;
    *out = x;
    return FERRY__STEAL_OK;
}

int64_t ferry__deque_len(struct ferry__deque *q)
{
    /* Relaxed: a heuristic only (wake decisions, steal-half size, queue
     * depth). It can be momentarily negative while take runs. */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    return b > t ? b - t : 0;
}

void ferry__deque_discard(struct ferry__deque *q)
{
    /* Only one thread exists (a forked child): top never moves back, so
     * dropping everything means bottom = top. */
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);
    atomic_store_explicit(&q->bottom, t, memory_order_relaxed);
}
