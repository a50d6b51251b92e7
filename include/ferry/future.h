/*
 * ferry/future.h: futures shared safely across threads.
 *
 * Overview
 *   A future is pending, then exactly once becomes cancelled, done with a
 *   result, or done with an error (a negative errno). Each transition is one
 *   compare-and-swap, so exactly one resolver wins; the losers get -EALREADY
 *   (or false from ferry_future_cancel).
 *
 *   A future is bound to a loop (its done callbacks run there) or
 *   free-standing (loop NULL: only result, wait and cancel apply).
 *
 * Done callbacks
 *   Registered on the loop's owner thread; they always run through the
 *   loop's ready queue, never inline, in registration order, also when
 *   added after completion. Each registration either runs once or is
 *   disposed once (removed, or the loop was closed before it could run).
 *
 * References
 *   Reference counted with atomic counts: ferry_future_ref and
 *   ferry_future_unref from any thread. The last unref frees the result
 *   through its destructor. Whoever resolves a future must hold a reference
 *   for the duration of the call.
 *
 * Waiting from another thread
 *   ferry_future_wait blocks on an event count (futex) with an optional
 *   timeout. On the owner thread of the future's loop it returns -EDEADLK
 *   instead of hanging (that thread is the one that must resolve it).
 */
#ifndef FERRY_FUTURE_H
#define FERRY_FUTURE_H

#include "ferry/common.h"
#include "ferry/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A done callback: receives the (done) future and its argument. */
typedef void ferry_future_cb(ferry_future *fut, void *arg);

/**
 * Create a pending future bound to loop, or free-standing when loop is NULL.
 *
 * Returns: 0, -EINVAL (out NULL), -ENOMEM, -EPERM (loop given, not its
 *          owner thread), -ESHUTDOWN (loop closed), -ECHILD.
 * Ownership: *out holds one reference. A bound future holds a reference on
 *          its loop until it is freed.
 * Thread: the loop's owner (any thread when loop is NULL).
 */
FERRY_API int ferry_future_new(ferry_loop *loop, ferry_future **out);

/** Take a reference. Thread: any, while holding one. */
FERRY_API void ferry_future_ref(ferry_future *fut);

/**
 * Drop a reference; the last one runs the result destructor and frees the
 * future. Thread: any.
 */
FERRY_API void ferry_future_unref(ferry_future *fut);

/**
 * Resolve with a result. dtor (optional) frees value on the last unref, or
 * at once if the call fails with -EALREADY (so a late result never leaks).
 *
 * Returns: 0, -EINVAL, -EALREADY (already done or cancelled), -EPERM (bound
 *          future, not its loop's owner thread: use the _threadsafe form).
 * Thread: the loop's owner (any thread for a free-standing future).
 */
FERRY_API int ferry_future_set_result(ferry_future *fut, void *value,
                                      ferry_free_fn *dtor);

/**
 * Resolve with an error err (a negative errno, not -ECANCELED: use
 * ferry_future_cancel for that).
 *
 * Returns: 0, -EINVAL (err >= 0 or -ECANCELED), -EALREADY, -EPERM.
 * Thread: as ferry_future_set_result.
 */
FERRY_API int ferry_future_set_error(ferry_future *fut, int err);

/**
 * Resolve with a result from any thread. The done callbacks are dispatched
 * through the loop's thread-safe inbox; waiters wake at once.
 *
 * Returns: 0, -EINVAL, -EALREADY (value handed to dtor at once). If the
 *          loop was closed, the future still resolves (waiters and readers
 *          see it) and its callbacks are disposed.
 * Thread: any, holding a reference on fut.
 */
FERRY_API int ferry_future_set_result_threadsafe(ferry_future *fut, void *value,
                                                 ferry_free_fn *dtor);

/** As ferry_future_set_error, from any thread. Thread: any. */
FERRY_API int ferry_future_set_error_threadsafe(ferry_future *fut, int err);

/**
 * Cancel: a pending future becomes cancelled and its callbacks are
 * scheduled. Work attached to the future (an offloaded task) is told to
 * stop.
 *
 * Returns: true when this call cancelled it; false when it was already
 *          done or cancelled, or fut is NULL. Either way a non-NULL fut is
 *          done (ferry_future_done) when it returns: a resolver that won
 *          on another thread is waited out (a few stores); its callbacks
 *          and wake-ups may still be on their way.
 * Thread: any.
 */
FERRY_API bool ferry_future_cancel(ferry_future *fut);

/** Whether fut is done (result, error or cancelled). Thread: any. */
FERRY_API bool ferry_future_done(const ferry_future *fut);

/** Whether fut was cancelled. Thread: any. */
FERRY_API bool ferry_future_cancelled(const ferry_future *fut);

/**
 * Read the outcome. May be called any number of times with the same answer.
 *
 * Returns: 0 with *value set (when value is not NULL), -EAGAIN (pending),
 *          -ECANCELED, the error it was resolved with, or -EINVAL.
 * Ownership: *value is borrowed, valid while the caller holds a reference.
 * Thread: any.
 */
FERRY_API int ferry_future_result(const ferry_future *fut, void **value);

/**
 * Run cb(fut, arg) on the loop once fut is done: scheduled through the
 * ready queue, never inline, even when fut is already done. Callbacks run
 * in registration order. The first one registered before completion is
 * kept inside the future (no allocation); further ones take a handle.
 *
 * Returns: 0, -EINVAL (NULL, or a free-standing future), -ENOMEM (not for
 *          that first callback), -EPERM, -ESHUTDOWN (loop closed). On
 *          error dispose is not called.
 * Ownership: exactly one of cb(fut, arg) or dispose(arg) happens.
 * Thread: the loop's owner.
 */
FERRY_API int ferry_future_add_done_callback(ferry_future *fut,
                                             ferry_future_cb *cb, void *arg,
                                             ferry_free_fn *dispose);

/**
 * Remove every not-yet-dispatched registration of (cb, arg), disposing each.
 *
 * Returns: how many were removed (0 or more), -EINVAL, -EPERM.
 * Thread: the loop's owner.
 */
FERRY_API int ferry_future_remove_done_callback(ferry_future *fut,
                                                ferry_future_cb *cb, void *arg);

/**
 * Block the calling thread until fut is done or timeout_ns passes
 * (-1 = no timeout, 0 = poll).
 *
 * Returns: 0 (done: read it with ferry_future_result), -ETIMEDOUT,
 *          -EDEADLK (pending, and the caller is the owner thread of fut's
 *          loop, which would have to run to resolve it), -EINVAL.
 * Thread: any, holding a reference on fut.
 */
FERRY_API int ferry_future_wait(ferry_future *fut, int64_t timeout_ns);

/**
 * The loop fut is bound to, or NULL. No reference is taken.
 * Thread: any.
 */
FERRY_API ferry_loop *ferry_future_loop(const ferry_future *fut);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_FUTURE_H */
