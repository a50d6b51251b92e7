/*
 * tests/test_loop_fault.c: fault injection for the loop and futures.
 *
 * Linked with -Wl,--wrap=malloc,calloc,realloc,aligned_alloc,eventfd,
 * epoll_create1: the wrappers fail the N-th call from then on (counted over
 * all of them). Each scenario runs with N = 1, 2, ... until it succeeds,
 * and every failure must return its documented error, leave nothing
 * scheduled (no dispose, no callback) and leak nothing (ASan/valgrind
 * check the leaks).
 */
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/base.h"
#include "helpers.h"

static long calls;   /* wrapped calls so far (test thread only) */
static long fail_at; /* fail the call with this number; 0 = never */

static bool should_fail(void)
{
    return ++calls == fail_at;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_eventfd(unsigned v, int flags);
int __real_epoll_create1(int flags);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_eventfd(unsigned v, int flags);
int __wrap_epoll_create1(int flags);

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    return should_fail() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
    return should_fail() ? NULL : __real_aligned_alloc(a, n);
}

int __wrap_eventfd(unsigned v, int flags)
{
    if (should_fail()) {
        errno = EMFILE;
        return -1;
    }
    return __real_eventfd(v, flags);
}

int __wrap_epoll_create1(int flags)
{
    if (should_fail()) {
        errno = ENFILE;
        return -1;
    }
    return __real_epoll_create1(flags);
}

/* Run op with the N-th wrapped call failing, N = 1.. until it succeeds.
 * Returns how many injected failures it went through. */
static int sweep(int (*op)(void *ctx), void *ctx, const int *allowed,
                 int nallowed)
{
    for (int n = 1;; n++) {
        fail_at = calls + n;
        int rc = op(ctx);
        bool hit = fail_at != 0 && calls >= fail_at;
        fail_at = 0;
        if (rc == 0)
            return n - 1;
        assert_true(hit); /* failed only because we made it fail */
        bool ok = false;
        for (int i = 0; i < nallowed; i++)
            ok |= rc == allowed[i];
        if (!ok)
            fail_msg("unexpected error %d (%s) at N=%d", rc, ferry_strerror(rc),
                     n);
        assert_true(n < 1000);
    }
}

static ferry_loop *made;

static int op_loop_new(void *ctx)
{
    (void)ctx;
    ferry_loop *l = (ferry_loop *)0x1;
    int rc = ferry_loop_new(&l, NULL);
    if (rc < 0) {
        assert_ptr_equal(l, (ferry_loop *)0x1); /* untouched on error */
        return rc;
    }
    made = l;
    return 0;
}

static void test_fault_loop_new_every_step(void **state)
{
    (void)state;
    const int allowed[] = {-ENOMEM, -EMFILE, -ENFILE};
    int failures = sweep(op_loop_new, NULL, allowed, 3);
    assert_true(failures >= 4); /* loop, events, epoll, eventfd at least */
    assert_int_equal(ferry_loop_free(made), 0);
}

struct ops_ctx {
    ferry_loop *loop;
    _Atomic int disposed;
    int ran;
    int fd;
    ferry_future *fut;
};

static void ran_cb(void *arg)
{
    ((struct ops_ctx *)arg)->ran++;
}

static void ran_done(ferry_future *f, void *arg)
{
    (void)f;
    ((struct ops_ctx *)arg)->ran++;
}

static void ops_dispose(void *arg)
{
    atomic_fetch_add(&((struct ops_ctx *)arg)->disposed, 1);
}

static int op_call_soon(void *c)
{
    struct ops_ctx *x = c;
    return ferry_call_soon(x->loop, ran_cb, x, ops_dispose, NULL);
}

static int op_call_later(void *c)
{
    struct ops_ctx *x = c;
    return ferry_call_later(x->loop, 0, ran_cb, x, ops_dispose, NULL);
}

static int op_threadsafe(void *c)
{
    struct ops_ctx *x = c;
    return ferry_call_soon_threadsafe(x->loop, ran_cb, x, ops_dispose);
}

static int op_reader(void *c)
{
    struct ops_ctx *x = c;
    return ferry_add_reader(x->loop, x->fd, ran_cb, x, ops_dispose);
}

static int op_future(void *c)
{
    struct ops_ctx *x = c;
    return ferry_future_new(x->loop, &x->fut);
}

static int op_done_cb(void *c)
{
    struct ops_ctx *x = c;
    return ferry_future_add_done_callback(x->fut, ran_done, x, ops_dispose);
}

static void test_fault_registrations_enomem(void **state)
{
    (void)state;
    struct ops_ctx x = {0};
    const int enomem[] = {-ENOMEM};
    int p[2];
    assert_int_equal(pipe(p), 0);
    /* fd 900: the watcher table must grow, another allocation to fail. */
    x.fd = dup2(p[0], 900);
    assert_int_equal(ferry_loop_new(&x.loop, NULL), 0);
    int (*ops[])(void *) = {op_call_soon, op_threadsafe, op_reader, op_future,
                            op_done_cb};
    for (size_t i = 0; i < FERRY__ARRAY_SIZE(ops); i++)
        assert_true(sweep(ops[i], &x, enomem, 1) >= 1);
    /* The timer heap grows by realloc at 16, 32, ...: fail there too. */
    for (int i = 0; i < 40; i++)
        sweep(op_call_later, &x, enomem, 1);
    assert_int_equal(atomic_load(&x.disposed),
                     0); /* failures schedule nothing */
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(ferry_future_set_result(x.fut, NULL, NULL), 0);
    assert_int_equal(ferry_loop_run_once(x.loop, -1), 0);
    assert_int_equal(ferry_loop_run_once(x.loop, 0), 0);
    /* call_soon, threadsafe, reader, done callback, 40 timers: all ran. */
    assert_true(x.ran >= 44);
    ferry_future_unref(x.fut);
    assert_int_equal(ferry_loop_free(x.loop), 0);
    assert_int_equal(atomic_load(&x.disposed), 1); /* the reader */
    close(x.fd);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_loop_new_every_step),
        cmocka_unit_test(test_fault_registrations_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
