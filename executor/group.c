/*
 * executor/group.c: fork-join groups.
 *
 * A group is a counter of unfinished tasks in caller memory, with bit 31
 * set while some thread sleeps on it (a futex word). Spawning adds one and
 * submits a task whose completion hook subtracts one; the hook runs both
 * after fn and when a cancelling shutdown drops the task, so a wait always
 * ends. The finisher that brings the count to zero wakes the sleepers only
 * if the bit says there are any, so fork-join without sleepers makes no
 * system call.
 *
 * Waiting on a worker of the group's pool helps: the worker runs tasks
 * (its own deque, then the injection queue, then steals) until the count
 * is zero, spinning briefly when it finds none. Only then does it sleep,
 * inside a blocking section: its core can then go to another worker for
 * the queued work, and it takes a core back before returning to its task.
 * It also stops helping to give its core to a worker owed one (a wanter),
 * which keeps blocking_end fair. Any other thread sleeps on the futex.
 *
 * Limitation: helping runs unrelated tasks on the waiter's stack, so deep
 * chains of nested waits need stack in proportion (as in TBB and Cilk).
 *
 * Thread: any.
 */
#include <errno.h>
#include <limits.h>
#include <stdalign.h>

#include "executor/internal.h"

enum {
    GROUP_MAGIC = 0x47525550u, /* "GRUP" */
    HELP_SPINS = 256,          /* empty helping rounds before sleeping */
};

#define GROUP_WAITER (1u << 31)
#define GROUP_COUNT (GROUP_WAITER - 1)

struct ferry__group {
    ferry_pool *pool;
    _Atomic uint32_t state; /* GROUP_WAITER | unfinished tasks */
    uint32_t magic;
};

_Static_assert(sizeof(struct ferry__group) <= sizeof(ferry_group),
               "ferry_group must hold the private group");
_Static_assert(alignof(struct ferry__group) <= alignof(ferry_group),
               "ferry_group must align the private group");

struct group_task {
    struct ferry__task task;
    struct ferry__group *g;
};

_Static_assert(sizeof(struct group_task) <= FERRY__BLOCK_SIZE,
               "a group task must fit a cache block");

static struct ferry__group *private_of(ferry_group *g)
{
    struct ferry__group *p = (struct ferry__group *)(void *)g;
    return p != NULL && p->magic == GROUP_MAGIC ? p : NULL;
}

static void finish_one(struct ferry__group *g)
{
    /* Release: the task's effects come before the count drops; pairs with
     * the acquire loads in the waits. */
    uint32_t old =
        atomic_fetch_sub_explicit(&g->state, 1, memory_order_release);
    /* The waiter may return (and g go away) as soon as the count is zero;
     * a wake on a stale address is at worst a spurious wake-up, which
     * every futex waiter tolerates. */
    if ((old & GROUP_COUNT) == 1 && (old & GROUP_WAITER))
        ferry__futex_wake(&g->state, INT_MAX);
}

static void group_complete(struct ferry__task *t, int status)
{
    (void)status; /* run or dropped: either way it is finished */
    struct group_task *gt = ferry__container_of(t, struct group_task, task);
    struct ferry__group *g = gt->g;
    ferry__block_free(gt);
    finish_one(g);
}

static uint32_t pending(struct ferry__group *g)
{
    /* Acquire: pairs with the release decrement in finish_one, so when
     * this reads zero the tasks' effects are visible to the waiter. */
    return atomic_load_explicit(&g->state, memory_order_acquire) & GROUP_COUNT;
}

static void sleep_wait(struct ferry__group *g)
{
    for (;;) {
        /* Acquire: as in pending(). */
        uint32_t v = atomic_load_explicit(&g->state, memory_order_acquire);
        if ((v & GROUP_COUNT) == 0)
            break;
        if (!(v & GROUP_WAITER)) {
            if (!atomic_compare_exchange_weak_explicit(
                    &g->state, &v, v | GROUP_WAITER, memory_order_relaxed,
                    memory_order_relaxed))
                continue;
            v |= GROUP_WAITER;
        }
        ferry__futex_wait(&g->state, v, 0);
    }
    /* Nobody sleeps once the count is zero: clear the bit, so later
     * finishers of a reused group skip the wake-up. */
    uint32_t v = GROUP_WAITER;
    atomic_compare_exchange_strong_explicit(
        &g->state, &v, 0, memory_order_relaxed, memory_order_relaxed);
}

/* Run tasks until the group is done or there is nothing to run. */
static void help(struct ferry__worker *w, struct ferry__group *g)
{
    unsigned empty = 0;
    while (pending(g) != 0 && ferry__owns_core(w)) {
        if (atomic_load_explicit(&w->pool->sched.nwanters,
                                 memory_order_relaxed) != 0) {
            ferry__handoff_to_wanter(w);
            break;
        }
        bool raced = false;
        struct ferry__task *t = ferry__find_local(w);
        if (t == NULL)
            t = ferry__steal_any(w, &raced);
        if (t != NULL) {
            ferry__run_task(w, t);
            empty = 0;
            continue;
        }
        if (!raced && ++empty >= HELP_SPINS)
            break;
        ferry__cpu_relax();
    }
}

FERRY_API int ferry_group_init(ferry_group *pg, ferry_pool *pool)
{
    if (pg == NULL || pool == NULL)
        return -EINVAL;
    if (ferry__pool_stale(pool))
        return -ECHILD;
    struct ferry__group *g = (struct ferry__group *)(void *)pg;
    g->pool = pool;
    atomic_init(&g->state, 0);
    g->magic = GROUP_MAGIC;
    return 0;
}

FERRY_API int ferry_group_spawn(ferry_group *pg, ferry_task_fn *fn, void *arg,
                                unsigned flags)
{
    struct ferry__group *g = private_of(pg);
    if (g == NULL || fn == NULL || (flags & ~FERRY__TASK_PUBLIC_FLAGS))
        return -EINVAL;
    if (ferry__pool_stale(g->pool))
        return -ECHILD;
    struct group_task *gt = ferry__block_alloc();
    if (gt == NULL)
        return -ENOMEM;
    ferry__task_init(&gt->task, fn, arg, group_complete, flags);
    gt->g = g;
    /* Relaxed: the increment only has to precede the task's decrement,
     * which the submission's own release/acquire guarantees. */
    atomic_fetch_add_explicit(&g->state, 1, memory_order_relaxed);
    int rc = ferry__submit(g->pool, &gt->task, 0);
    if (rc != 0) {
        ferry__block_free(gt);
        finish_one(g);
        return rc;
    }
    return 0;
}

FERRY_API int ferry_group_wait(ferry_group *pg)
{
    struct ferry__group *g = private_of(pg);
    if (g == NULL)
        return -EINVAL;
    if (ferry__pool_stale(g->pool))
        return -ECHILD;
    /* A worker inside a task: of this pool, it helps first; of any pool,
     * it sleeps inside a blocking section, so its core is not lost while
     * it waits (a task of pool A waiting on a group of pool B). */
    struct ferry__worker *w = ferry__worker_self();
    if (w == NULL || w->nest == 0 || w->blocking != 0 ||
        ferry__pool_stale(w->pool)) {
        sleep_wait(g);
        return 0;
    }
    if (w == ferry__worker_of(g->pool))
        help(w, g);
    if (pending(g) != 0) {
        ferry__blocking_enter(w);
        sleep_wait(g);
        ferry__blocking_exit(w, false);
    }
    return 0;
}
