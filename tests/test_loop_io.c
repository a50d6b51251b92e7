/*
 * tests/test_loop_io.c: fd watchers and embedding the loop in another
 * poller through ferry_loop_fd / ferry_loop_timeout.
 */
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"
#include "loop/internal.h"

static int setup(void **state)
{
    ferry_loop *loop;
    if (ferry_loop_new(&loop, NULL) != 0)
        return -1;
    *state = loop;
    return 0;
}

static int teardown(void **state)
{
    assert_int_equal(ferry_loop_free(*state), 0);
    return 0;
}

struct watch {
    ferry_loop *loop;
    int fd;
    int fired;
    int victim_fd;
    bool remove_victim;
};

static void on_readable(void *arg)
{
    struct watch *w = arg;
    char buf[64];
    (void)!read(w->fd, buf, sizeof buf);
    w->fired++;
    if (w->remove_victim)
        ferry_remove_reader(w->loop, w->victim_fd);
}

static void on_victim(void *arg)
{
    ((struct watch *)arg)->fired++;
}

static void test_io_reader_fires_level_triggered(void **state)
{
    ferry_loop *loop = *state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct watch w = {.loop = loop, .fd = sv[0]};
    assert_int_equal(ferry_add_reader(loop, sv[0], on_readable, &w, NULL), 0);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(w.fired, 0);
    assert_int_equal(write(sv[1], "ab", 2), 2);
    assert_int_equal(ferry_loop_run_once(loop, -1), 0);
    assert_int_equal(w.fired, 1);
    assert_int_equal(ferry_remove_reader(loop, sv[0]), 1);
    assert_int_equal(ferry_remove_reader(loop, sv[0]), 0);
    assert_int_equal(write(sv[1], "c", 1), 1);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(w.fired, 1); /* removed: never again */
    close(sv[0]);
    close(sv[1]);
}

static void on_writable(void *arg)
{
    struct watch *w = arg;
    w->fired++;
    ferry_remove_writer(w->loop, w->fd); /* from its own callback */
}

static void test_io_writer_and_self_removal(void **state)
{
    ferry_loop *loop = *state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct watch w = {.loop = loop, .fd = sv[1]};
    assert_int_equal(ferry_add_writer(loop, sv[1], on_writable, &w, NULL), 0);
    assert_int_equal(ferry_loop_run_once(loop, -1), 0);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(w.fired, 1);
    assert_int_equal(ferry_remove_writer(loop, sv[1]), 0);
    close(sv[0]);
    close(sv[1]);
}

static void test_io_removed_in_same_batch_never_fires(void **state)
{
    ferry_loop *loop = *state;
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    struct watch wa = {.loop = loop, .fd = a[0], .victim_fd = b[0]};
    struct watch wb = {.loop = loop, .fd = b[0], .victim_fd = a[0]};
    wa.remove_victim = wb.remove_victim = true;
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    ferry_add_reader(loop, a[0], on_readable, &wa, NULL);
    ferry_add_reader(loop, b[0], on_readable, &wb, NULL);
    assert_int_equal(ferry_loop_run_once(loop, -1), 0);
    /* Both were readable in the same poll; whichever ran first removed the
     * other, which therefore never fired. */
    assert_int_equal(wa.fired + wb.fired, 1);
    ferry_remove_reader(loop, a[0]);
    ferry_remove_reader(loop, b[0]);
    for (int i = 0; i < 2; i++) {
        close(a[i]);
        close(b[i]);
    }
}

static void test_io_replace_disposes_old(void **state)
{
    ferry_loop *loop = *state;
    int p[2];
    _Atomic int disposed = 0;
    assert_int_equal(pipe(p), 0);
    struct watch w = {.loop = loop, .fd = p[0]};
    ferry_add_reader(loop, p[0], on_victim, &w, NULL);
    ferry_add_reader(loop, p[0], on_victim, (void *)&disposed, count_dispose);
    assert_int_equal(atomic_load(&disposed), 0);
    ferry_add_reader(loop, p[0], on_readable, &w, NULL);
    assert_int_equal(atomic_load(&disposed), 1);
    assert_int_equal(ferry_add_writer(loop, p[1], on_victim, (void *)&disposed,
                                      count_dispose),
                     0);
    assert_int_equal(ferry_remove_writer(loop, p[1]), 1);
    assert_int_equal(atomic_load(&disposed), 2);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(ferry_loop_run_once(loop, -1), 0);
    assert_int_equal(w.fired, 1);
    ferry_remove_reader(loop, p[0]);
    close(p[0]);
    close(p[1]);
}

static void test_io_bad_fds(void **state)
{
    ferry_loop *loop = *state;
    char path[] = "/tmp/ferry-io-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(ferry_add_reader(loop, -1, on_victim, NULL, NULL),
                     -EINVAL);
    assert_int_equal(ferry_add_reader(loop, fd, on_victim, NULL, NULL),
                     -EINVAL); /* regular file: epoll says EPERM */
    close(fd);
    assert_int_equal(ferry_add_reader(loop, fd, on_victim, NULL, NULL), -EBADF);
    assert_int_equal(ferry_remove_reader(loop, -1), -EINVAL);
    assert_int_equal(ferry_remove_reader(loop, 100000), 0);
    /* A big fd number grows the table. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    int big = fcntl(p[0], F_DUPFD, 900);
    assert_true(big >= 900);
    assert_int_equal(ferry_add_reader(loop, big, on_victim, NULL, NULL), 0);
    assert_int_equal(ferry_remove_reader(loop, big), 1);
    close(big);
    close(p[0]);
    close(p[1]);
}

/* ---- embedding: drive the loop from plain poll() ---- */

static void mark(void *arg)
{
    (*(int *)arg)++;
}

struct embed_post {
    ferry_loop *loop;
    int *ran;
};

static void *post_later(void *arg)
{
    struct embed_post *e = arg;
    sleep_ns(3000000);
    ferry_call_soon_threadsafe(e->loop, mark, e->ran, NULL);
    return NULL;
}

static void test_loop_fd_drives_from_poll(void **state)
{
    ferry_loop *loop = *state;
    int fd = ferry_loop_fd(loop);
    assert_true(fd >= 0);
    int ran = 0;
    /* Nothing scheduled: the embedder may sleep forever. */
    int64_t t = 0;
    assert_int_equal(ferry_loop_timeout(loop, &t), 0);
    assert_int_equal(t, -1);
    ferry_call_soon(loop, mark, &ran, NULL, NULL);
    assert_int_equal(ferry_loop_timeout(loop, &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(ran, 1);
    /* A timer bounds the embedder's sleep. */
    ferry_handle *h;
    ferry_call_later(loop, 50000000, mark, &ran, NULL, &h);
    assert_int_equal(ferry_loop_timeout(loop, &t), 0);
    assert_true(t > 0 && t <= 50000000);
    ferry_handle_cancel(h);
    ferry_handle_unref(h);
    /* A post from another thread makes the fd readable. */
    struct embed_post e = {.loop = loop, .ran = &ran};
    pthread_t th = spawn(post_later, &e);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, 5000);
    pthread_join(th, NULL);
    assert_int_equal(n, 1);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(ran, 2);
    /* Drained: the fd is quiet again. */
    assert_int_equal(poll(&pfd, 1, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_io_reader_fires_level_triggered),
        T(test_io_writer_and_self_removal),
        T(test_io_removed_in_same_batch_never_fires),
        T(test_io_replace_disposes_old),
        T(test_io_bad_fds),
        T(test_loop_fd_drives_from_poll),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
