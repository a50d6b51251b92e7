/*
 * ferry/bridge.h: what joins the loop and the pool.
 *
 *   ferry_run_in_executor      run a blocking function on a pool; its result
 *                              resolves a future on the loop's thread
 *   ferry_pool_submit_future   the same without a loop (free-standing future)
 *   ferry_run_threadsafe       any thread asks the loop to run a function and
 *                              gets a future it can wait on
 *   ferry_promise_*            the producer side of a future, resolvable from
 *                              any thread exactly once: callback-to-future
 *                              adapters for legacy callback APIs
 *   ferry_future_wrap          a free-standing future seen from a loop
 *   ferry_future_then          a continuation on the loop (C has no await)
 *   ferry_future_timeout       bound a future in time
 *
 * Work functions return 0 and may store a result, or return a negative
 * errno (their *result is then ignored: free anything they allocated).
 */
#ifndef FERRY_BRIDGE_H
#define FERRY_BRIDGE_H

#include "ferry/common.h"
#include "ferry/executor.h"
#include "ferry/future.h"
#include "ferry/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Blocking work: return 0 and set *result, or a negative errno. */
typedef int ferry_work_fn(void *arg, void **result);

/**
 * Run fn(arg, &result) on pool (NULL: the process-wide default pool, made
 * on first use and shared by every loop) and resolve a future bound to
 * loop with its outcome. The task is flagged FERRY_TASK_BLOCKING, so the
 * pool adds threads rather than let blocking work starve it. The
 * completion travels the loop's thread-safe inbox; done callbacks run on
 * the loop's thread. In steady state it allocates nothing: the job (future,
 * task and inbox node, 192 bytes) comes from a per-thread cache.
 *
 * Cancelling the future (ferry_future_cancel, ferry_future_timeout) before
 * fn starts means fn never runs. While fn runs the future is cancelled at
 * once, fn may poll ferry_task_cancelled(), and a result it still returns
 * is handed to result_dtor on the loop's thread (or on the worker if the
 * loop was closed by then).
 *
 * Called from a callback of the running loop, the task reaches the pool
 * when the loop ends its current pass of callbacks (before it polls
 * again), or sooner once 64 such offloads wait, together with the other
 * offloads waiting for that pool: one lock and at most one wake-up for the
 * batch. (So a callback that blocks after an offload may delay that
 * offload's start: callbacks must not block.) If another thread shuts the
 * pool down before the batch goes, the future fails with -ESHUTDOWN (the
 * default pool: the task goes to a fresh default pool, as a later call
 * would); a shutdown or free made on the loop's own thread finds the task
 * queued. Called anywhere else on the loop's thread, the task is
 * submitted at once.
 *
 * Returns: 0, -EINVAL (loop or fn NULL), -ENOMEM, -EPERM (not the loop's
 *          thread), -ESHUTDOWN (loop closed, pool shutting down, or this
 *          loop shut the default pool down), -ECHILD, -EAGAIN (the default
 *          pool could not start a thread). On error nothing was scheduled
 *          and *out is untouched.
 * Ownership: *out holds one reference (ferry_future_unref). The job holds
 *          another until it finishes: the caller may drop its own at any
 *          time. result_dtor, when set, frees the result on the future's
 *          last unref, or a late result as said above.
 * Thread: loop's owner. fn runs on a pool worker.
 */
FERRY_API int ferry_run_in_executor(ferry_loop *loop, ferry_pool *pool,
                                    ferry_work_fn *fn, void *arg,
                                    ferry_free_fn *result_dtor,
                                    ferry_future **out);

/**
 * As ferry_run_in_executor without a loop: the future is free-standing
 * (wait on it, read it, or give it to a loop with ferry_future_wrap). A
 * late result after a cancel goes to result_dtor on the worker.
 *
 * Returns: 0, -EINVAL (pool or fn NULL), -ENOMEM, -ESHUTDOWN, -ECHILD.
 * Ownership: as ferry_run_in_executor.
 * Thread: any.
 */
FERRY_API int ferry_pool_submit_future(ferry_pool *pool, ferry_work_fn *fn,
                                       void *arg, ferry_free_fn *result_dtor,
                                       ferry_future **out);

/**
 * Shut the process-wide default pool down (draining its queue) and wait up
 * to timeout_ns (-1 = no limit) for its tasks; afterwards this loop's
 * ferry_run_in_executor(pool = NULL) returns -ESHUTDOWN (asyncio's rule),
 * while other loops get a fresh default pool on their next use. Calling it
 * when no default pool exists is fine.
 *
 * Returns: 0, -ETIMEDOUT (tasks still running: the pool is freed by a
 *          background thread once they end), -EAGAIN or -ENOMEM (tasks
 *          were left queued and no worker could be started to run them:
 *          a background thread drains once more, then frees the pool,
 *          which cancels what is still queued), -EINVAL, -EPERM, -ECHILD.
 * Thread: loop's owner (it blocks that thread up to timeout_ns; the
 *          completions it waits for do not need the loop to run).
 */
FERRY_API int ferry_loop_shutdown_default_executor(ferry_loop *loop,
                                                   int64_t timeout_ns);

/**
 * Ask loop to run fn(arg, &result) on its thread, from any thread
 * (asyncio's run_coroutine_threadsafe), and get a future for the outcome:
 * wait on it with ferry_future_wait. If the future is cancelled before fn
 * runs, fn never runs; if fn runs anyway (the cancel raced it), its result
 * goes to result_dtor. If the loop closes first, the future fails with
 * -ESHUTDOWN.
 *
 * Returns: 0, -EINVAL, -ENOMEM, -ESHUTDOWN (loop closed), -ECHILD.
 * Ownership: *out holds one reference. The caller must hold a reference on
 *          loop for the duration of the call.
 * Thread: any (on the loop's own thread it works, but waiting on the
 *          future there returns -EDEADLK).
 */
FERRY_API int ferry_run_threadsafe(ferry_loop *loop, ferry_work_fn *fn,
                                   void *arg, ferry_free_fn *result_dtor,
                                   ferry_future **out);

/* ---- promises: callback-to-future adapters ---- */

typedef struct ferry_promise ferry_promise;

/**
 * Create a future bound to loop and its producer side. Any thread may
 * complete the promise, once: ferry_promise_resolve / ferry_promise_reject.
 * The future always resolves on a later iteration of the loop, through the
 * thread-safe inbox, even when the promise is completed on the loop's
 * thread inside the call that started the operation.
 *
 * Returns: 0, -EINVAL, -ENOMEM, -EPERM, -ESHUTDOWN, -ECHILD.
 * Ownership: *promise and *fut each hold one reference; drop them with
 *          ferry_promise_unref (once the producer can no longer call it:
 *          a second completion through a freed promise is a use after
 *          free) and ferry_future_unref. dispose (optional) frees resolved
 *          values: the future's result on its last unref, and any value that
 *          loses (second completion, or the future was cancelled or timed
 *          out first).
 * Thread: loop's owner.
 */
FERRY_API int ferry_promise_new(ferry_loop *loop, ferry_free_fn *dispose,
                                ferry_promise **promise, ferry_future **fut);

/**
 * Complete the promise with value.
 *
 * Returns: 0, -EALREADY (already completed: value was disposed), -EINVAL.
 * Thread: any, while holding a reference on the promise.
 */
FERRY_API int ferry_promise_resolve(ferry_promise *p, void *value);

/**
 * Complete the promise with an error err < 0 (-ECANCELED cancels the
 * future).
 *
 * Returns: 0, -EALREADY, -EINVAL (err >= 0 or p NULL).
 * Thread: any, while holding a reference on the promise.
 */
FERRY_API int ferry_promise_reject(ferry_promise *p, int err);

/**
 * Complete from a legacy (status, data) pair: status 0 resolves with data;
 * a non-zero status rejects with -|status| and disposes data (if not NULL).
 *
 * Returns: as ferry_promise_resolve / ferry_promise_reject.
 * Thread: any.
 */
FERRY_API int ferry_promise_complete(ferry_promise *p, int status, void *data);

/** Take a reference. Thread: any, while holding one. */
FERRY_API void ferry_promise_ref(ferry_promise *p);

/** Drop a reference; the last one frees the promise. Thread: any. */
FERRY_API void ferry_promise_unref(ferry_promise *p);

/* Ready-made thunks for common legacy callback shapes: pass the thunk as
 * the callback and the promise as its context. Thread: any. */
FERRY_API void ferry_promise_cb_status(void *ctx, int status);
FERRY_API void ferry_promise_cb_status_data(void *ctx, int status, void *data);
FERRY_API void ferry_promise_cb_status_data_ctx(int status, void *data,
                                                void *ctx);

/*
 * Generate a thunk for any other callback shape, e.g. for
 *   typedef void sdk_cb(const char *name, long code, void *user);
 * write
 *   FERRY_PROMISE_THUNK(on_sdk, (const char *name, long code, void *user),
 *                       user, (int)code, (void *)name)
 * which defines `static void on_sdk(const char *name, long code,
 * void *user)` completing the promise `user` with status (int)code and
 * data name (see ferry_promise_complete).
 */
#define FERRY_PROMISE_THUNK(name, params, ctx_expr, status_expr, data_expr)    \
    static void name params                                                    \
    {                                                                          \
        (void)ferry_promise_complete((ferry_promise *)(ctx_expr),              \
                                     (status_expr), (data_expr));              \
    }

/* ---- composition ---- */

/**
 * Bound fut in time: if it is still pending delay_ns from now, it fails
 * with -ETIMEDOUT and attached work (an offload) is told to stop, as by a
 * cancel. The timer goes away when fut completes first.
 *
 * Returns: 0, -EINVAL (NULL, negative delay, free-standing future),
 *          -ENOMEM, -EPERM, -ESHUTDOWN.
 * Thread: the owner of fut's loop.
 */
FERRY_API int ferry_future_timeout(ferry_future *fut, int64_t delay_ns);

/** A continuation: read prev, return 0 and a result or a negative errno. */
typedef int ferry_then_fn(ferry_future *prev, void *arg, void **result);

/**
 * Run fn(fut, arg, &result) on fut's loop once fut is done, and resolve
 * *next with its outcome. Cancelling *next before fut is done means fn
 * never runs. If the loop closes first, *next fails with -ESHUTDOWN.
 *
 * Returns: 0, -EINVAL, -ENOMEM, -EPERM, -ESHUTDOWN.
 * Ownership: *next holds one reference; result_dtor frees its result.
 * Thread: the owner of fut's loop.
 */
FERRY_API int ferry_future_then(ferry_future *fut, ferry_then_fn *fn, void *arg,
                                ferry_free_fn *result_dtor,
                                ferry_future **next);

/**
 * Give loop a future that follows fut (asyncio's wrap_future): it resolves
 * on loop with fut's result (borrowed: fut keeps owning it) or error, and
 * cancelling it cancels fut. A future already bound to loop is returned
 * as is, with a new reference.
 *
 * Returns: 0, -EINVAL, -ENOMEM, -EPERM, -ESHUTDOWN.
 * Ownership: *out holds one reference; it keeps fut alive. A wrapper whose
 *          fut never completes lives as long as fut (cancel it to end both).
 * Thread: loop's owner.
 */
FERRY_API int ferry_future_wrap(ferry_loop *loop, ferry_future *fut,
                                ferry_future **out);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_BRIDGE_H */
