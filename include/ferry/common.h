/*
 * ferry/common.h: what every ferry header shares.
 *
 * Errors: every function that can fail returns 0 (or a count) on success and
 * a negative errno value on failure. The meanings are reserved across the
 * library:
 *   -EINVAL     bad argument (NULL pointer, negative delay, bad flag)
 *   -ENOMEM     out of memory
 *   -EPERM      called from a thread that may not call it (loop affinity)
 *   -EAGAIN     not resolved yet, or a bounded queue is full (try_ calls)
 *   -ECANCELED  cancelled
 *   -EBUSY      too late (already running) or still busy (loop running)
 *   -EALREADY   already resolved / already done
 *   -ESHUTDOWN  the loop or pool is closing or closed
 *   -ETIMEDOUT  a wait or a deadline expired
 *   -EDEADLK    waiting on a future from the thread that must resolve it
 *   -ECHILD     object inherited across fork() and not yet re-initialised
 * An error means nothing was scheduled and no callback will run.
 */
#ifndef FERRY_COMMON_H
#define FERRY_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#error "ferry is Linux-first (epoll, eventfd, futex)"
#endif

#if defined(FERRY_BUILDING) && defined(__GNUC__)
#define FERRY_API __attribute__((visibility("default")))
#else
#define FERRY_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** A destructor for a value ferry holds on the caller's behalf. */
typedef void ferry_free_fn(void *p);

/** A plain callback: what call_soon, timers and watchers run. */
typedef void ferry_cb(void *arg);

/**
 * Describe a ferry error code.
 *
 * Returns: a static string for err (a negative errno value, or 0). Unknown
 *          codes get "Unknown error"; the string is never NULL.
 * Thread: any.
 */
FERRY_API const char *ferry_strerror(int err);

/**
 * The library version as "MAJOR.MINOR.PATCH".
 *
 * Returns: a static string.
 * Thread: any.
 */
FERRY_API const char *ferry_version(void);

#ifdef __cplusplus
}
#endif

#endif /* FERRY_COMMON_H */
