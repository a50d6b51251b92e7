/*
 * loop/poller_epoll.c: the epoll backend of loop/poller.h.
 *
 * Level-triggered, EPOLL_CLOEXEC. Timeouts are nanoseconds: epoll_pwait2
 * (Linux 5.11, glibc 2.35) takes them as a timespec; without it the
 * timeout is rounded *up* to whole milliseconds so the loop never wakes
 * before a timer is due and spins (algorithms.md §5).
 *
 * Fork: term only close()s the instance. In a forked child the epoll
 * instance is shared with the parent, and EPOLL_CTL_DEL there would
 * unregister the parent's fds; closing drops only the child's reference.
 *
 * Thread: the loop's owner thread only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/base.h"
#include "loop/poller.h"

static uint32_t to_epoll(unsigned events)
{
    uint32_t e = 0;
    if (events & FERRY__POLL_IN)
        e |= EPOLLIN;
    if (events & FERRY__POLL_OUT)
        e |= EPOLLOUT;
    return e;
}

int ferry__poller_init(struct ferry__poller *p, unsigned max_events)
{
    p->max_events = max_events;
    p->events = calloc(max_events, sizeof(struct epoll_event));
    if (p->events == NULL)
        return -ENOMEM;
    p->fd = epoll_create1(EPOLL_CLOEXEC);
    if (p->fd < 0) {
        int err = -errno;
        free(p->events);
        p->events = NULL;
        return err;
    }
    return 0;
}

void ferry__poller_term(struct ferry__poller *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    free(p->events);
    p->events = NULL;
}

static int ctl(struct ferry__poller *p, int op, int fd, unsigned events,
               uint64_t tag)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.u64 = tag};
    if (epoll_ctl(p->fd, op, fd, &ev) == 0)
        return 0;
    return errno == EPERM ? -EINVAL : -errno;
}

int ferry__poller_add(struct ferry__poller *p, int fd, unsigned events,
                      uint64_t tag)
{
    return ctl(p, EPOLL_CTL_ADD, fd, events, tag);
}

int ferry__poller_mod(struct ferry__poller *p, int fd, unsigned events,
                      uint64_t tag)
{
    return ctl(p, EPOLL_CTL_MOD, fd, events, tag);
}

int ferry__poller_del(struct ferry__poller *p, int fd)
{
    return ctl(p, EPOLL_CTL_DEL, fd, 0, 0);
}

static int do_wait(struct ferry__poller *p, int64_t timeout_ns)
{
    struct epoll_event *evs = p->events;
    int max = (int)p->max_events;
#if defined(__GLIBC__) &&                                                      \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    static _Atomic int no_pwait2;
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = ferry__ns_to_ts((uint64_t)timeout_ns);
        int n =
            epoll_pwait2(p->fd, evs, max, timeout_ns < 0 ? NULL : &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store_explicit(&no_pwait2, 1, memory_order_relaxed);
    }
#endif
    int ms = -1;
    if (timeout_ns >= 0) {
        int64_t up = (timeout_ns + 999999) / 1000000;
        ms = up > 0x7fffffff ? 0x7fffffff : (int)up;
    }
    return epoll_wait(p->fd, evs, max, ms);
}

int ferry__poller_wait(struct ferry__poller *p, int64_t timeout_ns,
                       ferry__poller_fn *fn, void *arg)
{
    int n = do_wait(p, timeout_ns);
    if (n < 0)
        return 0; /* EINTR: the caller's loop simply iterates again */
    struct epoll_event *evs = p->events;
    for (int i = 0; i < n; i++) {
        unsigned e = 0;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
            e |= FERRY__POLL_IN;
        if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            e |= FERRY__POLL_OUT;
        fn(arg, evs[i].data.u64, e);
    }
    return n;
}
