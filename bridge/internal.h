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
 * block and the release hook can find it by container_of. fn's outcome
 * goes in the future's own result/err (the worker is their only writer,
 * ferry__future_resolve_handoff) and dtor is the result destructor, set
 * at submit; any other resolver (a timeout, a setter, a refused submit)
 * writes alt instead. Once fn has returned the pool no longer touches the
 * task, so its memory carries a late result (fn's, after another resolver
 * won) back to the loop's thread for the dtor.
 */
struct ferry__job {
    struct ferry_future fut; /* its post node carries the completion */
    union {
        struct ferry__task task; /* the pool's view, until the user's fn
                                    returned (see the assert below) */
        struct ferry__post late; /* then: late result -> dtor on the loop */
    };
    ferry_work_fn *fn;
    void *arg;
    struct ferry__outcome alt; /* other resolvers' (FUT_OUTCOME_OPS) */
};

/* The late node covers only the task's list link and fn: a cancel may
 * still set cancel_requested after fn returned, and the pool's drop path
 * CASes state only on tasks that never ran. */
_Static_assert(offsetof(struct ferry__task, state) >=
                   sizeof(struct ferry__post),
               "the late post must not overlay the task's state fields");
_Static_assert(sizeof(struct ferry__job) <= FERRY__CACHE_LARGE_BYTES,
               "a job must fit the 192-byte budget of DESIGN.md §7");
/* On an offload's success path (a loop-bound future, no foreign waiter, no
 * notifier), the worker that runs a job touches its second and third
 * lines only (the block is 64-aligned): the future's loop-side fields
 * fill the first (loop/internal.h; +6% offload throughput over 200 A/B
 * pairs). 64-bit layout; a 32-bit build packs it differently. */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(offsetof(struct ferry__job, fut) == 0 &&
                   offsetof(struct ferry_future, state) == 64 &&
                   sizeof(struct ferry_future) <= 128,
               "the future's first line is the loop's alone");
#endif

/* default_pool.c: the process-wide default pool, made on first use.
 * Returns 0, -ESHUTDOWN (this loop shut it down), -ENOMEM, -EAGAIN. */
int ferry__default_pool(ferry_loop *loop, ferry_pool **out);
/* After the default pool refused a submit with -ESHUTDOWN: whether another
 * loop swapped it meanwhile, so that a retry may get a fresh one. */
bool ferry__default_pool_retry(ferry_loop *loop);

#endif /* FERRY_BRIDGE_INTERNAL_H */
