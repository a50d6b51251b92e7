/*
 * tests/fault.h: link-time fault injection for the fault tests (STYLE.md
 * point 22, issue 6 section 3). Include it in exactly one file of an
 * executable linked with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,
 *   --wrap=pthread_create,--wrap=eventfd,--wrap=epoll_create1,
 *   --wrap=epoll_ctl,--wrap=write
 * (FAULT_LINK_ARGS in tests/meson.build). --wrap only redirects calls made
 * from the objects being linked (libferry_core.a and the test), never libc's
 * or cmocka's own calls.
 *
 * fault_arm(kinds, n, any_thread) makes the n-th call (1-based, counted
 * from the arming) to any of the wrapped functions in `kinds` fail, once;
 * with any_thread false only calls made on the arming thread count, so N
 * is deterministic for single-threaded scenarios; with any_thread true
 * calls from every thread count (the pool's workers and monitor, a loop
 * thread), for scenarios under load. fault_disarm() returns the kind that
 * fired (0: none, so N went past the last call and the scenario ran
 * without a fault).
 *
 * How each kind fails:
 *   FAULT_ALLOC    NULL (errno ENOMEM)
 *   FAULT_THREAD   pthread_create returns EAGAIN
 *   FAULT_EVENTFD  -1, EMFILE
 *   FAULT_EPOLL    epoll_create1: -1, ENFILE
 *   FAULT_CTL      epoll_ctl ADD only, the one that allocates (MOD and DEL
 *                  cannot run out of memory or watches): -1,
 *                  fault_ctl_errno (ENOMEM by default; ENOSPC is the other
 *                  one the kernel gives, at max_user_watches)
 *   FAULT_WRITE    a write to an eventfd registered with fault_watch_fd
 *                  fails as the kernel fails it: the counter is filled to
 *                  its maximum (read it, write 0xff..fe) and the caller's
 *                  write returns -1, EAGAIN, because adding to a full
 *                  counter would overflow. That is the only way a write to
 *                  a non-blocking eventfd fails with EAGAIN, and it leaves
 *                  the fd readable. (Making the real write instead would
 *                  race the loop's read of the filled counter.)
 *
 * The wrappers are async-signal-unsafe and do not allocate. cmocka asserts
 * stay on the test thread (STYLE.md point 20): the wrappers only count.
 */
#ifndef FERRY_TEST_FAULT_H
#define FERRY_TEST_FAULT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum fault_kind {
    FAULT_ALLOC = 1u << 0,
    FAULT_THREAD = 1u << 1,
    FAULT_EVENTFD = 1u << 2,
    FAULT_EPOLL = 1u << 3,
    FAULT_CTL = 1u << 4,
    FAULT_WRITE = 1u << 5,
    FAULT_ALL = (1u << 6) - 1,
};

static _Atomic unsigned fault_kinds;   /* armed kinds, 0 = disarmed */
static _Atomic long fault_calls;       /* calls counted since arming */
static _Atomic long fault_at;          /* the call that fails */
static _Atomic unsigned fault_fired;   /* kind of the call that failed */
static _Atomic bool fault_any_thread;  /* count every thread's calls */
static _Thread_local bool fault_armer; /* this thread armed */
static int fault_ctl_errno = ENOMEM;
static _Atomic long fault_eagain; /* eventfd writes failed with EAGAIN */

enum { FAULT_MAX_FDS = 8 };
static _Atomic int fault_fds[FAULT_MAX_FDS]; /* eventfds to fail writes on,
                                                stored as fd + 1 */

static inline void fault_arm(unsigned kinds, long n, bool any_thread)
{
    fault_armer = true;
    atomic_store(&fault_fired, 0);
    atomic_store(&fault_calls, 0);
    atomic_store(&fault_at, n);
    atomic_store(&fault_any_thread, any_thread);
    atomic_store(&fault_kinds, kinds);
}

static inline unsigned fault_disarm(void)
{
    atomic_store(&fault_kinds, 0);
    fault_armer = false;
    return atomic_load(&fault_fired);
}

static inline long fault_count(void)
{
    return atomic_load(&fault_calls);
}

static inline void fault_watch_fd(int fd)
{
    for (int i = 0; i < FAULT_MAX_FDS; i++) {
        int none = 0;
        if (atomic_compare_exchange_strong(&fault_fds[i], &none, fd + 1))
            return;
    }
}

static inline void fault_unwatch_fd(int fd)
{
    for (int i = 0; i < FAULT_MAX_FDS; i++) {
        int me = fd + 1;
        atomic_compare_exchange_strong(&fault_fds[i], &me, 0);
    }
}

static inline bool fault_watched(int fd)
{
    for (int i = 0; i < FAULT_MAX_FDS; i++)
        if (atomic_load(&fault_fds[i]) == fd + 1)
            return true;
    return false;
}

/* Whether this call (of kind k) is the one to fail. */
static inline bool fault_hit(unsigned k)
{
    if ((atomic_load_explicit(&fault_kinds, memory_order_relaxed) & k) == 0)
        return false;
    if (!fault_armer && !atomic_load(&fault_any_thread))
        return false;
    if (atomic_fetch_add(&fault_calls, 1) + 1 != atomic_load(&fault_at))
        return false;
    atomic_store(&fault_fired, k);
    return true;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __real_eventfd(unsigned v, int flags);
int __real_epoll_create1(int flags);
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
ssize_t __real_write(int fd, const void *buf, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __wrap_eventfd(unsigned v, int flags);
int __wrap_epoll_create1(int flags);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
ssize_t __wrap_write(int fd, const void *buf, size_t n);

void *__wrap_malloc(size_t n)
{
    if (fault_hit(FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    if (fault_hit(FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (fault_hit(FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
    if (fault_hit(FAULT_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_aligned_alloc(a, n);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    if (fault_hit(FAULT_THREAD))
        return EAGAIN;
    return __real_pthread_create(t, attr, fn, arg);
}

int __wrap_eventfd(unsigned v, int flags)
{
    if (fault_hit(FAULT_EVENTFD)) {
        errno = EMFILE;
        return -1;
    }
    return __real_eventfd(v, flags);
}

int __wrap_epoll_create1(int flags)
{
    if (fault_hit(FAULT_EPOLL)) {
        errno = ENFILE;
        return -1;
    }
    return __real_epoll_create1(flags);
}

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (op == EPOLL_CTL_ADD && fault_hit(FAULT_CTL)) {
        errno = fault_ctl_errno;
        return -1;
    }
    return __real_epoll_ctl(epfd, op, fd, ev);
}

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    if (n != sizeof(uint64_t) || !fault_watched(fd) || !fault_hit(FAULT_WRITE))
        return __real_write(fd, buf, n);
    /* Fill the counter: drain what is there (non-blocking), then add the
     * maximum, 0xfffffffffffffffe; our write would now overflow it. */
    uint64_t v;
    (void)!read(fd, &v, sizeof v);
    v = UINT64_MAX - 1;
    (void)!__real_write(fd, &v, sizeof v);
    atomic_fetch_add(&fault_eagain, 1);
    errno = EAGAIN;
    return -1;
}

#endif /* FERRY_TEST_FAULT_H */
