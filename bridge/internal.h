/*
 * bridge/internal.h: the bridge's shared structures. The bridge is the one
 * module that knows both the loop (loop/internal.h) and the pool
 * (executor/internal.h).
 */
#ifndef FERRY_BRIDGE_INTERNAL_H
#define FERRY_BRIDGE_INTERNAL_H

#include "executor/internal.h"
#include "ferry/bridge.h"
#include "loop/internal.h"

/*
 * One offload. The future comes first so that the cache can hand out the
 * block and the release hook can find it by container_of. late carries a
 * result that lost to a cancel back to the loop's thread for its dtor.
 */
struct ferry__job {
    struct ferry_future fut; /* its post node carries the completion */
    struct ferry__task task; /* the pool's view */
    struct ferry__post late; /* late result -> dtor on the loop */
    union {
        ferry_work_fn *fn; /* until it has run */
        void *late_result; /* then: a result that lost to a cancel (the
                              worker writes it, the late post carries it) */
    } u;
    void *arg;
    ferry_free_fn *dtor; /* result destructor */
};

_Static_assert(sizeof(struct ferry__job) <= FERRY__CACHE_LARGE_BYTES,
               "a job must fit the 192-byte budget of DESIGN.md §7");

/* default_pool.c: the process-wide default pool, made on first use.
 * Returns 0, -ESHUTDOWN (this loop shut it down), -ENOMEM, -EAGAIN. */
int ferry__default_pool(ferry_loop *loop, ferry_pool **out);
/* After the default pool refused a submit with -ESHUTDOWN: whether another
 * loop swapped it meanwhile, so that a retry may get a fresh one. */
bool ferry__default_pool_retry(ferry_loop *loop);

#endif /* FERRY_BRIDGE_INTERNAL_H */
