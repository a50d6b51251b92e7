/*
 * common/hazard.h: one hazard pointer per thread (common/hazard.c says
 * how and why).
 *
 * Thread: any. A record belongs to the thread that got it from
 * ferry__hz_self; only that thread sets and clears it.
 */
#ifndef FERRY_COMMON_HAZARD_H
#define FERRY_COMMON_HAZARD_H

#include <stdalign.h>

#include "common/base.h"

struct ferry__hz {
    alignas(FERRY__CACHELINE) _Atomic(const void *) ptr;
    _Atomic bool used;      /* owned by a thread */
    struct ferry__hz *next; /* list link, written before publication */
};

/* The calling thread's record, taken on first use; NULL when none could be
 * had (no memory, no thread key): the caller then keeps the object alive
 * by other means. */
struct ferry__hz *ferry__hz_self(void);

/* Protect p: before the publication that may let another thread free p.
 * Release, although the publication orders the set: a freer whose load
 * reads this set of a later object instead of the clear before it still
 * synchronizes with our earlier reads (C++20 dropped same-thread stores
 * from release sequences; free on x86). */
static inline void ferry__hz_set(struct ferry__hz *h, const void *p)
{
    atomic_store_explicit(&h->ptr, p, memory_order_release);
}

/* After the last read of the object set: release, for ferry__hz_wait. */
static inline void ferry__hz_clear(struct ferry__hz *h)
{
    atomic_store_explicit(&h->ptr, NULL, memory_order_release);
}

/* Before freeing p: wait until no thread's record holds it. Call only once
 * p is unreachable for new setters (its last reference is gone). */
void ferry__hz_wait(const void *p);

/* Records on the list, used or free (tests). */
unsigned ferry__hz_count(void);

#endif /* FERRY_COMMON_HAZARD_H */
