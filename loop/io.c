/*
 * loop/io.c: fd watchers (add_reader / add_writer / remove_*).
 *
 * A table indexed by fd, grown by doubling when a larger fd arrives (no
 * size fixed at creation). Each entry holds up to two persistent handles
 * (reader, writer) and the event mask registered with the poller. The
 * table holds one reference on each handle.
 *
 * An event queues the watcher's handle on the ready queue (once per
 * iteration: h->queued). Removing or replacing a watcher drops its handle
 * at once, so if an earlier callback of the same batch removes it, the
 * queued handle is skipped: a removed watcher never fires.
 *
 * Thread: owner.
 */
#include <stdlib.h>
#include <string.h>

#include "loop/internal.h"

void ferry__io_init(struct ferry__io *io)
{
    io->fds = NULL;
    io->cap = 0;
    io->count = 0;
}

static int reserve(struct ferry__io *io, int fd)
{
    size_t need = (size_t)fd + 1;
    if (need <= io->cap)
        return 0;
    size_t cap = io->cap ? io->cap : 64;
    while (cap < need)
        cap *= 2;
    struct ferry__io_watch *fds = realloc(io->fds, cap * sizeof *fds);
    if (fds == NULL)
        return -ENOMEM;
    memset(fds + io->cap, 0, (cap - io->cap) * sizeof *fds);
    io->fds = fds;
    io->cap = cap;
    return 0;
}

static unsigned wanted(const struct ferry__io_watch *w)
{
    return (w->reader ? FERRY__POLL_IN : 0u) |
           (w->writer ? FERRY__POLL_OUT : 0u);
}

/* Bring the poller in line with the entry's watchers. */
static int sync_fd(ferry_loop *loop, int fd, struct ferry__io_watch *w)
{
    unsigned want = wanted(w);
    int rc = 0;
    if (want == w->registered)
        return 0;
    if (w->registered == 0)
        rc = ferry__poller_add(&loop->poller, fd, want, (uint64_t)fd);
    else if (want == 0)
        rc = ferry__poller_del(&loop->poller, fd);
    else
        rc = ferry__poller_mod(&loop->poller, fd, want, (uint64_t)fd);
    /* A fd closed behind our back makes DEL fail; it is gone either way. */
    if (rc == 0 || want == 0)
        w->registered = want;
    return want == 0 ? 0 : rc;
}

static void release(struct ferry_handle *h)
{
    ferry__handle_drop(h);
    ferry__handle_put(h);
}

static int add_watch(ferry_loop *loop, int fd, bool write, ferry_cb *cb,
                     void *arg, ferry_free_fn *dispose)
{
    if (fd < 0 || cb == NULL)
        return -EINVAL;
    int rc = ferry__loop_check_open(loop);
    if (rc < 0)
        return rc;
    if (reserve(&loop->io, fd) < 0)
        return -ENOMEM;
    struct ferry_handle *h =
        ferry__handle_new(loop, HANDLE_WATCH, cb, arg, dispose);
    if (h == NULL)
        return -ENOMEM;
    h->state = HANDLE_SCHEDULED;
    struct ferry__io_watch *w = &loop->io.fds[fd];
    struct ferry_handle **slot = write ? &w->writer : &w->reader;
    struct ferry_handle *old = *slot;
    bool was_empty = wanted(w) == 0;
    *slot = h;
    rc = sync_fd(loop, fd, w);
    if (rc < 0) {
        *slot = old;
        ferry__cache_put(FERRY__CACHE_LARGE, h);
        return rc;
    }
    if (was_empty)
        loop->io.count++;
    if (old != NULL)
        release(old);
    return 0;
}

static int remove_watch(ferry_loop *loop, int fd, bool write)
{
    int rc = ferry__loop_check(loop);
    if (rc < 0)
        return rc;
    if (fd < 0)
        return -EINVAL;
    if (atomic_load_explicit(&loop->closed, memory_order_relaxed))
        return -ESHUTDOWN;
    if ((size_t)fd >= loop->io.cap)
        return 0;
    struct ferry__io_watch *w = &loop->io.fds[fd];
    struct ferry_handle **slot = write ? &w->writer : &w->reader;
    struct ferry_handle *old = *slot;
    if (old == NULL)
        return 0;
    *slot = NULL;
    (void)sync_fd(loop, fd, w);
    if (wanted(w) == 0)
        loop->io.count--;
    release(old);
    return 1;
}

FERRY_API int ferry_add_reader(ferry_loop *loop, int fd, ferry_cb *cb,
                               void *arg, ferry_free_fn *dispose)
{
    return add_watch(loop, fd, false, cb, arg, dispose);
}

FERRY_API int ferry_add_writer(ferry_loop *loop, int fd, ferry_cb *cb,
                               void *arg, ferry_free_fn *dispose)
{
    return add_watch(loop, fd, true, cb, arg, dispose);
}

FERRY_API int ferry_remove_reader(ferry_loop *loop, int fd)
{
    return remove_watch(loop, fd, false);
}

FERRY_API int ferry_remove_writer(ferry_loop *loop, int fd)
{
    return remove_watch(loop, fd, true);
}

void ferry__io_event(ferry_loop *loop, int fd, unsigned events)
{
    if (fd < 0 || (size_t)fd >= loop->io.cap)
        return;
    struct ferry__io_watch *w = &loop->io.fds[fd];
    if ((events & FERRY__POLL_IN) && w->reader != NULL)
        ferry__ready_push(loop, w->reader);
    if ((events & FERRY__POLL_OUT) && w->writer != NULL)
        ferry__ready_push(loop, w->writer);
}

int ferry__io_reregister(ferry_loop *loop)
{
    for (size_t fd = 0; fd < loop->io.cap; fd++) {
        struct ferry__io_watch *w = &loop->io.fds[fd];
        w->registered = 0;
        if (wanted(w) == 0)
            continue;
        int rc = sync_fd(loop, (int)fd, w);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void ferry__io_term(ferry_loop *loop)
{
    for (size_t fd = 0; fd < loop->io.cap; fd++) {
        struct ferry__io_watch *w = &loop->io.fds[fd];
        if (w->reader != NULL)
            release(w->reader);
        if (w->writer != NULL)
            release(w->writer);
    }
    free(loop->io.fds);
    ferry__io_init(&loop->io);
}
