/*
 * loop/poller.h: the I/O backend contract. Every backend implements exactly
 * these calls; meson picks the file (poller_epoll.c is the only one now).
 *
 * Events are FERRY__POLL_IN / FERRY__POLL_OUT, with ERR/HUP reported as
 * both so that a reader and a writer each see an error. The tag is a 64-bit
 * value the caller chooses per fd and gets back with each event.
 *
 * Thread: the loop's owner thread only.
 */
#ifndef FERRY_LOOP_POLLER_H
#define FERRY_LOOP_POLLER_H

#include <stdint.h>

#define FERRY__POLL_IN 1u
#define FERRY__POLL_OUT 2u

struct ferry__poller {
    int fd;              /* the epoll instance, -1 when closed */
    unsigned max_events; /* batch size of one wait */
    void *events;        /* struct epoll_event[max_events] */
};

typedef void ferry__poller_fn(void *arg, uint64_t tag, unsigned events);

/* Returns 0, -ENOMEM, or epoll_create1's -errno. */
int ferry__poller_init(struct ferry__poller *p, unsigned max_events);
/* Closes the instance without EPOLL_CTL_DEL of any fd (fork-safe). */
void ferry__poller_term(struct ferry__poller *p);
/* Return 0 or epoll_ctl's -errno (EPERM is mapped to -EINVAL: an fd that
 * epoll cannot watch, such as a regular file). events 0 with mod is legal. */
int ferry__poller_add(struct ferry__poller *p, int fd, unsigned events,
                      uint64_t tag);
int ferry__poller_mod(struct ferry__poller *p, int fd, unsigned events,
                      uint64_t tag);
int ferry__poller_del(struct ferry__poller *p, int fd);
/* Wait up to timeout_ns (-1 forever, 0 poll), call fn for each event.
 * Returns the number of events, or 0 on EINTR. */
int ferry__poller_wait(struct ferry__poller *p, int64_t timeout_ns,
                       ferry__poller_fn *fn, void *arg);

#endif /* FERRY_LOOP_POLLER_H */
