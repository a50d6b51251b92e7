/*
 * ferry/loop.h: a single-threaded event loop with asyncio's semantics.
 *
 * Overview
 *   A loop belongs to the thread that created it (its owner thread). It runs
 *   callbacks from a FIFO ready queue (ferry_call_soon), timers from a binary
 *   heap keyed by (deadline, registration order) (ferry_call_later,
 *   ferry_call_at), fd watchers over epoll (ferry_add_reader/writer), and
 *   callbacks posted from other threads (ferry_call_soon_threadsafe).
 *
 * One iteration (ferry_loop_run_once) is, in order:
 *   1. poll I/O: block until the nearest timer, an fd event, or a wake-up
 *      from another thread; zero timeout when callbacks are ready or a stop
 *      was requested;
 *   2. drain the cross-thread inbox (posts from one thread keep their order)
 *      and queue the callbacks of fds that became ready;
 *   3. queue every timer that is due (equal deadlines in registration order);
 *   4. run the callbacks that were ready when this phase began; callbacks they
 *      schedule run on the next iteration.
 *
 * Threads
 *   Functions marked "Thread: owner" return -EPERM from any other thread.
 *   Functions marked "Thread: any" may be called from anywhere while the
 *   caller holds a reference on the loop: the creator's reference (dropped by
 *   ferry_loop_free) or one taken with ferry_loop_ref. A loop's memory lives
 *   until its last reference is dropped, so a post racing ferry_loop_close
 *   or ferry_loop_free returns -ESHUTDOWN and never touches freed memory.
 *
 * Callbacks and dispose
 *   Every registration takes an optional dispose(arg). Exactly one of two
 *   things happens to each successful registration: the callback runs once,
 *   on the owner thread, or dispose(arg) is called once because the callback
 *   was dropped (handle cancelled, watcher replaced or removed, loop closed).
 *   dispose runs on the owner thread, except for posts dropped by a close
 *   that raced them, whose dispose runs on the closing (owner) thread too.
 *   Registration never runs the callback inline.
 *
 * Fork
 *   In a child process an inherited loop answers -ECHILD until
 *   ferry_loop_after_fork rebuilds its epoll and eventfd. ferry_loop_running
 *   returns NULL in the child, even when the parent forked inside a callback.
 */
#ifndef FERRY_LOOP_H
#define FERRY_LOOP_H

#include "ferry/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ferry_loop ferry_loop;
typedef struct ferry_handle ferry_handle;
typedef struct ferry_future ferry_future;

/** A monotonic clock in nanoseconds; tests inject a fake one. */
typedef uint64_t ferry_clock_fn(void *ctx);

/** Options for ferry_loop_new. Zero means default for every field. */
struct ferry_loop_opts {
    unsigned max_events;   /* epoll batch size; 0 = 256 */
    ferry_clock_fn *clock; /* NULL = CLOCK_MONOTONIC */
    void *clock_ctx;       /* passed to clock */
    /* Before blocking, a loop whose last iteration received cross-thread
     * posts (offload completions, say) polls its inbox for up to spin_ns,
     * so a reply that is microseconds away costs no sleep and no eventfd
     * write. 0 = 50 us; negative = never spin. */
    int64_t spin_ns;
};

/** Counters kept by every loop; see ferry_loop_stats. */
struct ferry_loop_stats {
    uint64_t iterations;      /* completed run_once iterations */
    uint64_t callbacks;       /* callbacks run (ready, timers, I/O, done) */
    uint64_t posts;           /* cross-thread posts drained from the inbox */
    uint64_t wakeups_written; /* eventfd writes made by other threads */
    uint64_t slow_callbacks;  /* callbacks reported to the slow hook */
};

/**
 * Create a loop owned by the calling thread.
 *
 * Returns: 0, -EINVAL (out is NULL), -ENOMEM, or the negative errno of
 *          epoll_create1/eventfd/epoll_ctl (-EMFILE, -ENFILE, -ENOSPC: the
 *          user's epoll watch limit). On error *out is untouched and
 *          nothing leaks.
 * Ownership: *out holds the creator's reference; drop it with
 *          ferry_loop_free.
 * Thread: any; the caller becomes the owner thread.
 */
FERRY_API int ferry_loop_new(ferry_loop **out,
                             const struct ferry_loop_opts *opts);

/**
 * Close the loop if it is not closed yet, then drop the creator's reference.
 * The memory goes when the last reference goes (futures and ferry_loop_ref
 * holders keep it). The thread that drops the last one first waits for
 * any pool worker still finishing the wake-up of a completion it posted
 * to the loop (a few loads and at most one eventfd write; longer only if
 * that worker is preempted).
 *
 * Returns: 0, -EINVAL (NULL), -EBUSY (running: nothing was done), -EPERM.
 *          A loop inherited across fork may be freed in the child: its fds
 *          are closed without touching the parent's epoll registrations.
 * Thread: owner.
 */
FERRY_API int ferry_loop_free(ferry_loop *loop);

/**
 * Take a reference that keeps the loop's memory alive, so another thread
 * may call the "Thread: any" functions without racing ferry_loop_free.
 *
 * Thread: any, while the caller already holds a reference.
 */
FERRY_API void ferry_loop_ref(ferry_loop *loop);

/**
 * Drop a reference taken with ferry_loop_ref. Never closes the loop; the
 * last drop frees its memory (the loop must be closed by then, which
 * ferry_loop_free guarantees), after the wait ferry_loop_free describes.
 *
 * Thread: any.
 */
FERRY_API void ferry_loop_unref(ferry_loop *loop);

/**
 * Close the loop: drop every pending callback, timer, watcher and
 * cross-thread post (calling each one's dispose), close the epoll fd and
 * eventfd. Idempotent and irreversible: afterwards registrations return
 * -ESHUTDOWN. It does not wait for executor work.
 *
 * Returns: 0 (also when already closed), -EINVAL, -EBUSY (running), -EPERM,
 *          -ECHILD.
 * Thread: owner.
 */
FERRY_API int ferry_loop_close(ferry_loop *loop);

/**
 * Run until ferry_loop_stop. A stop requested before the call makes the
 * loop poll I/O once with a zero timeout, run the callbacks already
 * scheduled, and return. A stop during a run lets the current batch finish;
 * callbacks scheduled by that batch run on the next run.
 *
 * Returns: 0 after a stop, -EINVAL, -EPERM, -EBUSY (this loop or another
 *          loop is already running on this thread), -ESHUTDOWN (closed),
 *          -ECHILD (inherited across fork, also when detected mid-run).
 * Thread: owner.
 */
FERRY_API int ferry_loop_run_forever(ferry_loop *loop);

/**
 * Run until fut is done, then return its outcome. If fut is already done the
 * loop still runs one iteration (fut's done callbacks are scheduled, never
 * run inline).
 *
 * Returns: the future's outcome: 0 with *result set (result may be NULL),
 *          -ECANCELED, or the error it was resolved with; or -EAGAIN when
 *          the loop was stopped before fut completed; or the errors of
 *          ferry_loop_run_forever. -EINVAL when fut is bound to another loop.
 * Ownership: *result is borrowed from fut, valid while the caller holds a
 *          reference on fut.
 * Thread: owner.
 */
FERRY_API int ferry_loop_run_until_complete(ferry_loop *loop, ferry_future *fut,
                                            void **result);

/**
 * Run one iteration, blocking at most timeout_ns (-1 = until something
 * happens, 0 = never block). For embedding ferry in another loop and for
 * step-by-step tests. Does not consume a pending stop request.
 *
 * Returns: 0, -EINVAL, -EPERM, -EBUSY (already running), -ESHUTDOWN,
 *          -ECHILD.
 * Thread: owner.
 */
FERRY_API int ferry_loop_run_once(ferry_loop *loop, int64_t timeout_ns);

/**
 * Ask the running loop to return after its current batch of callbacks (see
 * ferry_loop_run_forever). Wakes a sleeping loop.
 *
 * Returns: 0, -EINVAL, -ESHUTDOWN (closed), -ECHILD.
 * Thread: any.
 */
FERRY_API int ferry_loop_stop(ferry_loop *loop);

/**
 * Whether the loop is inside a run call.
 * Thread: any (a snapshot; it may change right after).
 */
FERRY_API bool ferry_loop_is_running(const ferry_loop *loop);

/**
 * Whether ferry_loop_close has completed.
 * Thread: any.
 */
FERRY_API bool ferry_loop_is_closed(const ferry_loop *loop);

/**
 * The loop's clock, in nanoseconds: CLOCK_MONOTONIC or the injected clock.
 * ferry_call_later(d) schedules at exactly ferry_loop_time() + d.
 *
 * Returns: the time, or 0 for a NULL loop.
 * Thread: any.
 */
FERRY_API uint64_t ferry_loop_time(const ferry_loop *loop);

/**
 * The loop running on the calling thread, or NULL. Never another thread's
 * loop, and NULL in a forked child even if the fork happened inside one of
 * the loop's callbacks.
 *
 * Thread: any.
 */
FERRY_API ferry_loop *ferry_loop_running(void);

/**
 * Schedule cb(arg) to run on the next iteration, after the callbacks already
 * scheduled (FIFO).
 *
 * Returns: 0, -EINVAL (loop or cb NULL), -ENOMEM, -EPERM, -ESHUTDOWN,
 *          -ECHILD. On error dispose is not called: arg stays the caller's.
 * Ownership: when out is not NULL, *out receives a handle reference that
 *          the caller drops with ferry_handle_unref.
 * Thread: owner.
 */
FERRY_API int ferry_call_soon(ferry_loop *loop, ferry_cb *cb, void *arg,
                              ferry_free_fn *dispose, ferry_handle **out);

/**
 * Schedule cb(arg) delay_ns from now (ferry_loop_time() + delay_ns).
 * Timers due together run in deadline order, equal deadlines in
 * registration order, and always after callbacks scheduled with
 * ferry_call_soon before the timer came due.
 *
 * Returns: as ferry_call_soon, plus -EINVAL for a negative delay.
 * Thread: owner.
 */
FERRY_API int ferry_call_later(ferry_loop *loop, int64_t delay_ns, ferry_cb *cb,
                               void *arg, ferry_free_fn *dispose,
                               ferry_handle **out);

/**
 * Schedule cb(arg) at loop time when_ns (a time in the past runs on the next
 * iteration).
 *
 * Returns: as ferry_call_soon.
 * Thread: owner.
 */
FERRY_API int ferry_call_at(ferry_loop *loop, uint64_t when_ns, ferry_cb *cb,
                            void *arg, ferry_free_fn *dispose,
                            ferry_handle **out);

/**
 * Schedule cb(arg) on the loop from any thread, and wake the loop if it
 * sleeps. Posts from one thread run in post order; there is no order across
 * threads. Wake-ups coalesce: while the loop is awake a post makes no system
 * call, and while it sleeps at most one eventfd write happens per sleep.
 *
 * Returns: 0, -EINVAL, -ENOMEM, -ESHUTDOWN (closing or closed: decided
 *          atomically with the post), -ECHILD.
 * Ownership: arg is the caller's until the call succeeds; then exactly one
 *          of cb(arg) or dispose(arg) runs, on the owner thread.
 * Thread: any, while the caller holds a reference on loop.
 */
FERRY_API int ferry_call_soon_threadsafe(ferry_loop *loop, ferry_cb *cb,
                                         void *arg, ferry_free_fn *dispose);

/**
 * Cancel a scheduled callback or timer: it will not run, and its dispose is
 * called now. Safe from any callback on this loop, including its own.
 *
 * Returns: 0 when cancelled, -EALREADY when it already ran or was
 *          cancelled or dropped, -EINVAL, -EPERM.
 * Thread: owner.
 */
FERRY_API int ferry_handle_cancel(ferry_handle *h);

/**
 * Whether the handle was cancelled or dropped (never ran and never will).
 * Thread: owner.
 */
FERRY_API bool ferry_handle_cancelled(const ferry_handle *h);

/**
 * Drop the caller's handle reference. Does not cancel.
 * Thread: owner (also after the loop was freed).
 */
FERRY_API void ferry_handle_unref(ferry_handle *h);

/**
 * Watch fd for readability (add_reader) or writability (add_writer) and run
 * cb(arg) on each iteration where it holds (level-triggered). Replaces any
 * previous reader (writer) on the fd, disposing it. A watcher removed by an
 * earlier callback of the same batch never fires.
 *
 * Returns: 0, -EINVAL (bad fd, NULL cb, or an fd epoll cannot watch such as
 *          a regular file), -EBADF, -ENOMEM, -ENOSPC (the user's epoll
 *          watch limit, /proc/sys/fs/epoll/max_user_watches), -EPERM,
 *          -ESHUTDOWN, -ECHILD. On error nothing changed: a watcher the
 *          fd already had stays registered, and dispose is not called.
 * Thread: owner.
 */
FERRY_API int ferry_add_reader(ferry_loop *loop, int fd, ferry_cb *cb,
                               void *arg, ferry_free_fn *dispose);
FERRY_API int ferry_add_writer(ferry_loop *loop, int fd, ferry_cb *cb,
                               void *arg, ferry_free_fn *dispose);

/**
 * Stop watching fd for reading (writing) and dispose the watcher.
 *
 * Returns: 1 when a watcher was removed, 0 when there was none, -EINVAL,
 *          -EPERM, -ESHUTDOWN, -ECHILD.
 * Thread: owner.
 */
FERRY_API int ferry_remove_reader(ferry_loop *loop, int fd);
FERRY_API int ferry_remove_writer(ferry_loop *loop, int fd);

/**
 * A file descriptor that becomes readable when the loop has I/O or a
 * cross-thread wake-up pending, so that another event loop (GLib, libuv,
 * poll) can drive ferry: poll it with ferry_loop_timeout() as the timeout,
 * then call ferry_loop_run_once(loop, 0).
 *
 * Returns: the fd (owned by the loop; do not close it), or -EINVAL,
 *          -ESHUTDOWN, -ECHILD. It changes after ferry_loop_after_fork.
 * Thread: any.
 */
FERRY_API int ferry_loop_fd(const ferry_loop *loop);

/**
 * How long an embedder may sleep on ferry_loop_fd before the next
 * ferry_loop_run_once: *timeout_ns is set to 0 when callbacks are ready or
 * posts are queued, to the time to the nearest timer (ns), or to -1 when
 * only I/O or a cross-thread post can wake the loop. (The time and the
 * error are kept apart: -1 would read as -EPERM.)
 *
 * Returns: 0, -EINVAL (loop or timeout_ns NULL), -EPERM, -ESHUTDOWN,
 *          -ECHILD. On error *timeout_ns is untouched.
 * Thread: owner.
 */
FERRY_API int ferry_loop_timeout(ferry_loop *loop, int64_t *timeout_ns);

/**
 * The slow-callback hook: the callback's function, its symbol name (from
 * dladdr, or NULL when unknown) and how long it held the loop.
 */
typedef void ferry_slow_hook_fn(void *hook_arg, const char *symbol,
                                uint64_t duration_ns);

/**
 * Report every callback that holds the loop longer than threshold_ns
 * (0 = 100 ms) to hook. Works in release builds. Enabled it costs one clock
 * read per callback; disabled (hook NULL) it costs nothing.
 *
 * Returns: 0, -EINVAL, -EPERM.
 * Thread: owner.
 */
FERRY_API int ferry_loop_set_slow_callback(ferry_loop *loop,
                                           uint64_t threshold_ns,
                                           ferry_slow_hook_fn *hook,
                                           void *hook_arg);

/**
 * Copy the loop's counters.
 *
 * Returns: 0, -EINVAL.
 * Thread: any (counters written by the owner thread are a snapshot).
 */
FERRY_API int ferry_loop_stats(const ferry_loop *loop,
                               struct ferry_loop_stats *out);

/**
 * In a forked child, rebuild an inherited loop: a new epoll instance and
 * eventfd, the child's watchers registered again. It never calls
 * epoll_ctl(EPOLL_CTL_DEL) on the inherited epoll (which would unregister the
 * parent's fds) and never runs posts that other threads of the parent had
 * queued (they are dropped without dispose: their owners are in the parent).
 * Timers and ready callbacks of the loop are kept.
 *
 * Returns: 0, -EINVAL, -EALREADY (not inherited: nothing to do), -ENOMEM,
 *          -EMFILE/-ENFILE, -ENOSPC (a watcher could not be registered).
 *          On error the loop is left as it was, still inherited (-ECHILD
 *          from its other calls): the call may be repeated, or the loop
 *          freed.
 * Thread: the child's thread that called fork() becomes the owner.
 */
FERRY_API int ferry_loop_after_fork(ferry_loop *loop);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_LOOP_H */
