/*
 * ferry/executor.h: the work-stealing thread pool.
 *
 * Overview
 *   A pool runs tasks, fn(arg), on worker threads. It has `threads` cores
 *   (CPU slots): a worker must hold a core to run ordinary (CPU) tasks, so
 *   CPU work never runs on more than `threads` threads at once. Each worker
 *   owns a Chase-Lev deque: a task submitted from a worker goes on that
 *   worker's deque (no lock), a task submitted from any other thread goes on
 *   the shared injection queue. Idle workers steal from random victims and
 *   park on a futex; an idle pool uses no CPU.
 *
 * Blocking work
 *   A task flagged FERRY_TASK_BLOCKING, or code between ferry_blocking_begin
 *   and ferry_blocking_end, gives its core up while it runs, so queued work
 *   moves to a spare thread (woken, or created up to max_threads). The
 *   monitor thread hands such a core over once it has stayed blocked for a
 *   period (50 us or more) with work queued; if the blocked thread is still
 *   on a CPU (preempted or spinning, as /proc/self/task/TID/stat says; the
 *   monitor opens and closes that file), it waits up to 10 ms longer, since
 *   another thread would only queue for the same CPUs. Spares retire after
 *   keepalive_ns idle. A task that blocks without saying so is
 *   caught by a starvation check: when work is queued and nothing was
 *   dequeued for starvation_ns, the longest-running task is presumed blocked,
 *   its core is given to a spare, and the event is counted. Such a presumed
 *   task is the one exception to the CPU bound above.
 *
 * Tasks and cancellation
 *   Every successfully submitted task finishes exactly once: either fn runs
 *   (to completion: a running task is never interrupted), or the task is
 *   dropped because it was cancelled before it started or the pool was shut
 *   down with FERRY_CANCEL_PENDING. ferry_task_cancel on a running task only
 *   sets a flag that fn may poll with ferry_task_cancelled().
 *
 * Ordering
 *   None is promised between tasks, not even from one submitting thread: a
 *   worker runs its own deque newest first and thieves take oldest first.
 *
 * Threads
 *   Every function marked "Thread: any" may be called from any thread,
 *   including the pool's own workers, while the pool exists. The pool is not
 *   reference counted: the caller of ferry_pool_free must make sure no other
 *   thread still uses it.
 *
 * Fork
 *   In a child process an inherited pool answers -ECHILD from every call
 *   until ferry_pool_after_fork, which drops the parent's queued tasks
 *   without running them or their completion hooks, and starts fresh
 *   workers. A child forked from inside a task must not return from that
 *   task (call _exit or exec).
 */
#ifndef FERRY_EXECUTOR_H
#define FERRY_EXECUTOR_H

#include "ferry/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ferry_pool ferry_pool;
typedef struct ferry_task ferry_task;

/** The work a task does. */
typedef void ferry_task_fn(void *arg);

/** A worker-thread hook; index is the worker's number (0, 1, ...). */
typedef void ferry_pool_thread_fn(void *ctx, unsigned index);

/** Task flags for ferry_pool_submit and ferry_group_spawn. */
enum ferry_task_flags {
    /* fn blocks (sleeps, waits on I/O or locks): it runs without a core,
     * and queued work moves to a spare thread meanwhile. */
    FERRY_TASK_BLOCKING = 1u << 0,
};

/** Modes of ferry_pool_shutdown. */
enum ferry_shutdown_mode {
    FERRY_DRAIN = 0,          /* run every queued task first */
    FERRY_CANCEL_PENDING = 1, /* drop queued tasks (they finish cancelled) */
};

/** Options for ferry_pool_new. Zero means default for every field. */
struct ferry_pool_opts {
    unsigned threads;        /* cores; 0 = CPUs in sched_getaffinity */
    unsigned max_threads;    /* workers incl. spares; 0 = max(64, threads) */
    uint64_t keepalive_ns;   /* idle time before a spare retires; 0 = 10 s */
    size_t stack_size;       /* worker stack bytes; 0 = the pthread default */
    const char *name_prefix; /* NULL = "ferry-w": threads are "ferry-w0"... */
    ferry_pool_thread_fn *on_thread_start; /* run first on each worker */
    ferry_pool_thread_fn *on_thread_stop;  /* run last on each worker */
    void *hook_ctx;                        /* passed to both hooks */
    size_t queue_limit;     /* queued tasks for try_submit; 0 = unbounded */
    uint64_t starvation_ns; /* 0 = 50 ms; UINT64_MAX = no check */
};

/** Number of log2 buckets in each histogram of ferry_pool_stats. */
#define FERRY_POOL_HIST_BUCKETS 40

/**
 * Counters of a pool, summed over its workers when read. Histogram bucket
 * i counts durations d with 2^i <= d < 2^(i+1) nanoseconds (bucket 0 also
 * holds d = 0; the last bucket holds everything longer). The two
 * histograms are sampled: one task in 32 per submitting thread is timed
 * (two clock reads per timed task cost a few percent of a no-op offload's
 * throughput at one in 8).
 */
struct ferry_pool_stats {
    uint64_t submitted;         /* tasks accepted by submit or spawn */
    uint64_t completed;         /* tasks whose fn ran (an offload of
                                   bridge.h counts here even when its
                                   future was cancelled first and its fn
                                   never ran: its future decides) */
    uint64_t cancelled;         /* tasks dropped without running fn */
    uint64_t stolen;            /* tasks moved by a thief */
    uint64_t parks;             /* times a worker went to sleep */
    uint64_t unparks;           /* times a sleeping worker was woken */
    uint64_t spares_created;    /* threads started beyond the first ones */
    uint64_t spares_retired;    /* threads that exited after keep-alive */
    uint64_t starvation_events; /* cores taken from presumed-blocked tasks */
    uint64_t queue_depth;       /* queued tasks now (an estimate) */
    unsigned threads_total;     /* live worker threads */
    unsigned threads_idle;      /* of those, asleep without a core */
    unsigned threads_blocked;   /* of those, inside blocking work */
    uint64_t queue_wait[FERRY_POOL_HIST_BUCKETS]; /* submit to start */
    uint64_t run_time[FERRY_POOL_HIST_BUCKETS];   /* start to end of fn */
};

/** Entries in a ferry_pool_report. */
#define FERRY_POOL_REPORT_MAX 16

/** What ferry_pool_shutdown found still running at its deadline. */
struct ferry_pool_report {
    unsigned running; /* tasks still running */
    unsigned listed;  /* entries filled in task[] (at most REPORT_MAX) */
    struct ferry_pool_running {
        const void *task;  /* the ferry_task (or internal task) address */
        ferry_task_fn *fn; /* its function */
        void *arg;         /* and argument */
    } task[FERRY_POOL_REPORT_MAX];
};

/**
 * A fork-join group: spawn tasks into it, then wait for all of them.
 * Caller-allocated (usually on the stack) so fork-join costs no allocation
 * for the group itself; the fields are private. It needs no cleanup once
 * ferry_group_wait has returned, and may be reused.
 */
typedef struct ferry_group {
    void *private_[4];
} ferry_group;

/**
 * Create a pool and start its `threads` workers (plus one monitor thread
 * for the starvation check and spare retirement).
 *
 * Returns: 0, -EINVAL (out is NULL; max_threads < threads; threads or
 *          max_threads above 4096; stack_size below PTHREAD_STACK_MIN),
 *          -ENOMEM, -EAGAIN (pthread_create failed). On error *out is
 *          untouched, every thread already started has been joined and
 *          nothing leaks.
 * Ownership: *out belongs to the caller; release it with ferry_pool_free.
 *          opts is copied (name_prefix too).
 * Thread: any.
 */
FERRY_API int ferry_pool_new(ferry_pool **out,
                             const struct ferry_pool_opts *opts);

/**
 * Shut the pool down if that was not done yet (as FERRY_DRAIN with no
 * deadline), wait for every task to finish, join every thread and free the
 * pool. (Should no worker thread start for tasks still queued, which only
 * a failing pthread_create can cause, those are cancelled.)
 *
 * Returns: 0, -EINVAL (NULL), -EDEADLK (called from one of this pool's
 *          workers: nothing was done), -ECHILD (inherited across fork: call
 *          ferry_pool_after_fork first).
 * Ownership: the pool is freed. Task handles (ferry_task) are not part of
 *          it: they stay valid until their last ferry_task_unref. (Its
 *          memory may outlive the call for as long as a loop holds
 *          offloads for it until the end of a pass, see
 *          ferry_run_in_executor: those offloads then fail; the threads
 *          are all gone when this returns.)
 * Thread: any thread that is not one of the pool's workers.
 */
FERRY_API int ferry_pool_free(ferry_pool *pool);

/**
 * Stop accepting tasks and finish the queued ones: FERRY_DRAIN runs them
 * (tasks they submit are still accepted until the drain ends),
 * FERRY_CANCEL_PENDING drops them (their completion runs with a cancelled
 * status; a ferry_task reads -ECANCELED). Then wait up to timeout_ns for
 * the tasks still running. Workers exit as they run out of work. May be
 * called again, for example to wait longer or to switch from draining to
 * cancelling.
 *
 * Returns: 0 (nothing is left running; every worker has exited),
 *          -ETIMEDOUT (tasks still running: listed in *report when report
 *          is not NULL; they keep running and ferry_pool_free waits for
 *          them), -EINVAL (NULL pool, bad mode, timeout below -1),
 *          -EDEADLK (a wait from one of this pool's workers: the shutdown
 *          is started but not waited for), -ECHILD, -EAGAIN or -ENOMEM
 *          (draining, every worker had exited with tasks still queued
 *          and none could be started to run them: they stay queued, the
 *          pool keeps trying to start one, ferry_pool_free cancels what
 *          is left).
 * Ownership: task pointers in *report identify tasks; they may be freed
 *          at any moment after the call, so do not dereference them.
 * Thread: any. timeout_ns: -1 waits forever, 0 does not wait.
 */
FERRY_API int ferry_pool_shutdown(ferry_pool *pool, int mode,
                                  int64_t timeout_ns,
                                  struct ferry_pool_report *report);

/**
 * Submit fn(arg). From one of the pool's workers the task goes on that
 * worker's deque, from any other thread on the injection queue; one idle
 * worker is woken if no worker is already searching for work.
 *
 * Returns: 0, -EINVAL (NULL pool or fn, unknown flags), -ENOMEM,
 *          -ESHUTDOWN (the pool is shutting down or shut down), -ECHILD.
 *          On error nothing was scheduled and dispose is not called.
 * Ownership: exactly one of fn(arg) and dispose(arg) runs, once: dispose
 *          (when not NULL) when the task is dropped without running (it
 *          was cancelled before it started, or the pool was shut down with
 *          FERRY_CANCEL_PENDING), so an arg the task owns is never leaked.
 *          (A forked child abandons the parent's queued tasks: neither
 *          runs there.) When out is not NULL, *out holds a reference on
 *          the task handle; drop it with ferry_task_unref (at any time,
 *          also before the task runs).
 * Thread: any. fn runs on a worker; dispose on the thread that drops the
 *          task (a worker, or the one in ferry_pool_shutdown/free).
 */
FERRY_API int ferry_pool_submit(ferry_pool *pool, ferry_task_fn *fn, void *arg,
                                ferry_free_fn *dispose, unsigned flags,
                                ferry_task **out);

/**
 * As ferry_pool_submit, but refuse when queue_limit tasks are already
 * queued (not started). The count is an estimate read without a lock, so
 * concurrent submitters may overshoot the limit by at most their number.
 *
 * Returns: 0, -EAGAIN (queue full: nothing was scheduled; retry later),
 *          and the errors of ferry_pool_submit. A full queue of a pool
 *          that is shutting down answers -ESHUTDOWN, never -EAGAIN, when
 *          the submit would be refused anyway.
 * Ownership: as ferry_pool_submit.
 * Thread: any.
 */
FERRY_API int ferry_pool_try_submit(ferry_pool *pool, ferry_task_fn *fn,
                                    void *arg, ferry_free_fn *dispose,
                                    unsigned flags, ferry_task **out);

/**
 * Cancel a task. Before it started, it will never run (0); its dispose, if
 * any, runs when the pool drops it (a worker soon takes it off its queue,
 * or the shutdown does). While it runs, set the flag that
 * ferry_task_cancelled() reports to it (-EBUSY).
 *
 * Returns: 0 (it will not run), -EBUSY (running: flag set), -EALREADY
 *          (finished, or cancelled before), -EINVAL (NULL).
 * Thread: any, holding a reference on task.
 */
FERRY_API int ferry_task_cancel(ferry_task *task);

/**
 * The state of a task.
 *
 * Returns: -EAGAIN (queued or running), 0 (fn ran to completion),
 *          -ECANCELED (dropped without running), -EINVAL (NULL).
 * Thread: any, holding a reference on task. Once 0 is read, the effects
 *          of fn are visible to the caller.
 */
FERRY_API int ferry_task_status(const ferry_task *task);

/**
 * Drop the reference that ferry_pool_submit returned. The handle is freed
 * when the pool is also done with it. NULL is ignored.
 *
 * Ownership: the caller's reference is gone; task must not be used again.
 *          The task itself still runs (cancel it first if it should not).
 * Thread: any.
 */
FERRY_API void ferry_task_unref(ferry_task *task);

/**
 * Whether the task running on this thread was asked to stop by
 * ferry_task_cancel (or by its internal equivalent).
 *
 * Returns: true when the calling thread is running a pool task whose
 *          cancellation was requested; false otherwise (also outside any
 *          task).
 * Thread: any; meaningful inside a task's fn.
 */
FERRY_API bool ferry_task_cancelled(void);

/**
 * Mark the start of a section of the current task that may block: the
 * worker gives up its core so queued work can move to a spare thread.
 * Pairs nest; only the outermost pair acts. Outside a pool worker it does
 * nothing.
 *
 * Thread: a pool worker, inside a task (anywhere else: no effect).
 */
FERRY_API void ferry_blocking_begin(void);

/**
 * End a section started with ferry_blocking_begin. The worker takes a core
 * back before returning, so it may wait until one is free: a worker that
 * holds one hands it over when its current task ends.
 *
 * Thread: as ferry_blocking_begin.
 */
FERRY_API void ferry_blocking_end(void);

/**
 * Prepare an empty group whose tasks run on pool.
 *
 * Returns: 0, -EINVAL (NULL g or pool), -ECHILD.
 * Ownership: g stays the caller's; it must outlive ferry_group_wait.
 * Thread: any.
 */
FERRY_API int ferry_group_init(ferry_group *g, ferry_pool *pool);

/**
 * Submit fn(arg) as part of the group (as ferry_pool_submit, without a
 * handle). Tasks of the group may spawn more tasks into it.
 *
 * Returns: 0, -EINVAL (NULL g or fn, unknown flags, g not initialised),
 *          -ENOMEM, -ESHUTDOWN, -ECHILD. On error nothing was scheduled
 *          and the group is unchanged.
 * Ownership: arg stays the caller's and must live until the group's wait
 *          returns.
 * Thread: any.
 */
FERRY_API int ferry_group_spawn(ferry_group *g, ferry_task_fn *fn, void *arg,
                                unsigned flags);

/**
 * Wait until every task spawned into the group has finished (ran, or was
 * dropped by a cancelling shutdown). A worker of the group's pool runs
 * other tasks while it waits (its own deque first, then the injection
 * queue, then steals), and sleeps only when there is nothing to run; any
 * other thread sleeps on a futex.
 *
 * Returns: 0, -EINVAL (NULL, or g not initialised), -ECHILD.
 * Thread: any. Effects of the group's tasks are visible on return.
 */
FERRY_API int ferry_group_wait(ferry_group *g);

/**
 * Counters of the pool (see struct ferry_pool_stats).
 *
 * Returns: 0, -EINVAL (NULL), -ECHILD.
 * Thread: any. Counters are read without stopping the workers, so they are
 *          mutually consistent only when the pool is quiet.
 */
FERRY_API int ferry_pool_stats(ferry_pool *pool, struct ferry_pool_stats *out);

/**
 * In a child process, rebuild a pool inherited across fork(): drop the
 * parent's queued tasks without running them (nor their completion hooks),
 * reset the locks and queues, and start fresh workers. Nothing the parent's
 * threads owned is freed before ferry_pool_free. A pool the parent had shut
 * down stays shut down (and gets no workers).
 *
 * Returns: 0, -EINVAL (NULL, or not a child: the pool is not stale),
 *          -ENOMEM, -EAGAIN (pthread_create failed). On -ENOMEM before
 *          anything was rebuilt the pool is still stale (other calls keep
 *          answering -ECHILD) and after_fork may be called again; on any
 *          later failure the pool is shut down, every thread it started
 *          joined: it can only be freed.
 * Ownership: the parent's queued tasks are abandoned in the child, never
 *          completed: memory they own (task handles included) is not
 *          freed there.
 * Thread: the child's thread, while no other thread uses the pool.
 */
FERRY_API int ferry_pool_after_fork(ferry_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_EXECUTOR_H */
