/*
 * tests/test_loop.c: the loop's lifecycle and its rules: affinity (S1),
 * run_until_complete (S7), stop (S8), close (S9), the per-thread running
 * loop (S13), and the error paths (NULL arguments and callbacks, a
 * reference that outlives ferry_loop_free). Ordering, timers and slow
 * callbacks are in test_loop_sched.c, cross-thread wake-ups in
 * test_loop_wakeup.c. Timers run on a fake clock; the loop is driven step
 * by step with ferry_loop_run_once where possible.
 */
#include <string.h>
#include <unistd.h>

#include "loop_fixture.h"

/* ---- S1: loop affinity ---- */

struct foreign {
    ferry_loop *loop;
    int soon, later, at, reader, run, close, timeout, slow, post;
};

static void *foreign_calls(void *arg)
{
    struct foreign *f = arg;
    f->soon = ferry_call_soon(f->loop, stop_loop, f->loop, NULL, NULL);
    f->later = ferry_call_later(f->loop, 1, stop_loop, f->loop, NULL, NULL);
    f->at = ferry_call_at(f->loop, 1, stop_loop, f->loop, NULL, NULL);
    f->reader = ferry_add_reader(f->loop, 0, stop_loop, f->loop, NULL);
    f->run = ferry_loop_run_forever(f->loop);
    f->close = ferry_loop_close(f->loop);
    int64_t t = 7;
    f->timeout = ferry_loop_timeout(f->loop, &t);
    if (t != 7)
        f->timeout = 1; /* an error must leave the out value alone */
    f->slow = ferry_loop_set_slow_callback(f->loop, 0, NULL, NULL);
    f->post = ferry_call_soon_threadsafe(f->loop, stop_loop, f->loop, NULL);
    return NULL;
}

static void test_S1_call_soon_from_foreign_thread_eperm(void **state)
{
    struct fx *fx = *state;
    struct foreign f = {.loop = fx->loop};
    pthread_join(spawn(foreign_calls, &f), NULL);
    assert_int_equal(f.soon, -EPERM);
    assert_int_equal(f.later, -EPERM);
    assert_int_equal(f.at, -EPERM);
    assert_int_equal(f.reader, -EPERM);
    assert_int_equal(f.run, -EPERM);
    assert_int_equal(f.close, -EPERM);
    assert_int_equal(f.timeout, -EPERM);
    assert_int_equal(f.slow, -EPERM);
    assert_int_equal(f.post, 0); /* the thread-safe path works */
    assert_int_equal(ferry_loop_run_forever(fx->loop), 0);
    assert_false(ferry_loop_is_closed(fx->loop));
}

/* ---- S7: run_until_complete ---- */

static void resolve_with_42(void *arg)
{
    static int v = 42;
    assert_int_equal(ferry_future_set_result(arg, &v, NULL), 0);
}

static void fail_with_eio(void *arg)
{
    assert_int_equal(ferry_future_set_error(arg, -EIO), 0);
}

static void test_S7_run_until_complete_returns_result(void **state)
{
    struct fx *fx = *state;
    ferry_future *f;
    assert_int_equal(ferry_future_new(fx->loop, &f), 0);
    assert_int_equal(ferry_call_soon(fx->loop, resolve_with_42, f, NULL, NULL),
                     0);
    void *res = NULL;
    assert_int_equal(ferry_loop_run_until_complete(fx->loop, f, &res), 0);
    assert_int_equal(*(int *)res, 42);
    assert_false(ferry_loop_is_running(fx->loop));
    /* Already done: runs one iteration and returns the same result. */
    res = NULL;
    assert_int_equal(ferry_loop_run_until_complete(fx->loop, f, &res), 0);
    assert_int_equal(*(int *)res, 42);
    ferry_future_unref(f);

    assert_int_equal(ferry_future_new(fx->loop, &f), 0);
    assert_int_equal(ferry_call_soon(fx->loop, fail_with_eio, f, NULL, NULL),
                     0);
    assert_int_equal(ferry_loop_run_until_complete(fx->loop, f, NULL), -EIO);
    ferry_future_unref(f);
}

static void test_S7_run_until_complete_stopped_early(void **state)
{
    struct fx *fx = *state;
    ferry_future *f;
    assert_int_equal(ferry_future_new(fx->loop, &f), 0);
    assert_int_equal(ferry_call_soon(fx->loop, stop_loop, fx->loop, NULL, NULL),
                     0);
    assert_int_equal(ferry_loop_run_until_complete(fx->loop, f, NULL), -EAGAIN);
    assert_false(ferry_future_done(f));
    /* Resolved later by a timer: the fake clock makes it due at once. */
    assert_int_equal(
        ferry_call_later(fx->loop, 5000, resolve_with_42, f, NULL, NULL), 0);
    fx->clock.now += 5000;
    void *res;
    assert_int_equal(ferry_loop_run_until_complete(fx->loop, f, &res), 0);
    assert_int_equal(*(int *)res, 42);
    ferry_future_unref(f);
}

static void test_S7_run_until_complete_other_loop_einval(void **state)
{
    struct fx *fx = *state;
    ferry_loop *other;
    ferry_future *f;
    assert_int_equal(ferry_loop_new(&other, NULL), 0);
    assert_int_equal(ferry_future_new(other, &f), 0);
    assert_int_equal(ferry_loop_run_until_complete(fx->loop, f, NULL), -EINVAL);
    assert_int_equal(ferry_loop_run_until_complete(fx->loop, NULL, NULL),
                     -EINVAL);
    ferry_future_unref(f);
    assert_int_equal(ferry_loop_free(other), 0);
}

struct nested {
    ferry_loop *loop;
    ferry_future *fut;
    int rc;
};

static void nested_run_until_complete(void *arg)
{
    struct nested *n = arg;
    n->rc = ferry_loop_run_until_complete(n->loop, n->fut, NULL);
}

static void test_S7_run_until_complete_nested_busy(void **state)
{
    struct fx *fx = *state;
    struct nested n = {.loop = fx->loop};
    assert_int_equal(ferry_future_new(fx->loop, &n.fut), 0);
    assert_int_equal(ferry_future_set_result(n.fut, NULL, NULL), 0);
    ferry_call_soon(fx->loop, nested_run_until_complete, &n, NULL, NULL);
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    assert_int_equal(n.rc, -EBUSY);
    /* Nothing was left queued that would stop a later run early. */
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    ferry_call_soon(fx->loop, push_id, rec(fx, 5), NULL, NULL);
    ferry_call_soon(fx->loop, stop_loop, fx->loop, NULL, NULL);
    assert_int_equal(ferry_loop_run_forever(fx->loop), 0);
    assert_int_equal(fx->log.n, 1);
    ferry_future_unref(n.fut);
}

/* ---- S8: stop ---- */

static int pipe_reads;

static void drain_pipe(void *arg)
{
    char buf[16];
    (void)!read(*(int *)arg, buf, sizeof buf);
    pipe_reads++;
}

static void test_S8_stop_before_run_forever(void **state)
{
    struct fx *fx = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    pipe_reads = 0;
    assert_int_equal(ferry_add_reader(fx->loop, p[0], drain_pipe, &p[0], NULL),
                     0);
    assert_int_equal(ferry_call_soon(fx->loop, push_id, rec(fx, 1), NULL, NULL),
                     0);
    assert_int_equal(ferry_loop_stop(fx->loop), 0);
    /* A timer a day away must not make it block. */
    assert_int_equal(ferry_call_later(fx->loop, 86400000000000LL, push_id,
                                      rec(fx, 9), NULL, NULL),
                     0);
    assert_int_equal(ferry_loop_run_forever(fx->loop), 0);
    assert_int_equal(fx->log.n, 1);
    assert_int_equal(fx->log.v[0], 1);
    assert_int_equal(pipe_reads, 1); /* I/O was polled once, zero timeout */
    assert_int_equal(ferry_remove_reader(fx->loop, p[0]), 1);
    close(p[0]);
    close(p[1]);
}

static void stop_and_schedule(void *arg)
{
    struct fx *fx = arg;
    ferry_loop_stop(fx->loop);
    ferry_call_soon(fx->loop, push_id, rec(fx, 3), NULL, NULL);
}

static void test_S8_stop_during_run_finishes_batch(void **state)
{
    struct fx *fx = *state;
    ferry_call_soon(fx->loop, stop_and_schedule, fx, NULL, NULL);
    ferry_call_soon(fx->loop, push_id, rec(fx, 2), NULL, NULL);
    assert_int_equal(ferry_loop_run_forever(fx->loop), 0);
    assert_int_equal(fx->log.n, 1); /* 2 ran; 3 waits for the next run */
    assert_int_equal(fx->log.v[0], 2);
    ferry_loop_stop(fx->loop);
    assert_int_equal(ferry_loop_run_forever(fx->loop), 0);
    assert_int_equal(fx->log.n, 2);
    assert_int_equal(fx->log.v[1], 3);
}

static void *stop_from_thread(void *arg)
{
    ferry_loop *loop = arg;
    while (!atomic_load(&loop->polling))
        sleep_ns(100000);
    ferry_loop_stop(loop);
    return NULL;
}

static void test_S8_stop_is_threadsafe(void **state)
{
    struct fx *fx = *state;
    pthread_t t = spawn(stop_from_thread, fx->loop);
    assert_int_equal(ferry_loop_run_forever(fx->loop), 0);
    pthread_join(t, NULL);
}

/* ---- S9: close ---- */

static int close_rc;

static void try_close(void *arg)
{
    close_rc = ferry_loop_close(arg);
}

static void test_S9_close_refused_while_running(void **state)
{
    struct fx *fx = *state;
    ferry_call_soon(fx->loop, try_close, fx->loop, NULL, NULL);
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    assert_int_equal(close_rc, -EBUSY);
    assert_int_equal(ferry_loop_free(NULL), -EINVAL);
}

static void test_S9_close_drops_pending_and_disposes(void **state)
{
    struct fx *fx = *state;
    _Atomic int disposed = 0;
    int p[2];
    assert_int_equal(pipe(p), 0);
    ferry_loop *l = fx->loop;
    ferry_handle *h;
    assert_int_equal(
        ferry_call_soon(l, push_id, (void *)&disposed, count_dispose, &h), 0);
    assert_int_equal(ferry_loop_close(l), 0);
    assert_true(ferry_loop_is_closed(l));
    assert_int_equal(ferry_loop_close(l), 0); /* idempotent */
    assert_int_equal(atomic_load(&disposed), 1);
    assert_true(ferry_handle_cancelled(h));
    assert_int_equal(ferry_handle_cancel(h), -EALREADY);
    ferry_handle_unref(h);
    assert_int_equal(fx->log.n, 0);
    assert_int_equal(ferry_call_soon(l, push_id, NULL, NULL, NULL), -ESHUTDOWN);
    assert_int_equal(ferry_call_later(l, 1, push_id, NULL, NULL, NULL),
                     -ESHUTDOWN);
    assert_int_equal(ferry_call_soon_threadsafe(l, push_id, NULL, NULL),
                     -ESHUTDOWN);
    assert_int_equal(ferry_add_reader(l, p[0], push_id, NULL, NULL),
                     -ESHUTDOWN);
    assert_int_equal(ferry_remove_reader(l, p[0]), -ESHUTDOWN);
    assert_int_equal(ferry_loop_run_forever(l), -ESHUTDOWN);
    assert_int_equal(ferry_loop_run_once(l, 0), -ESHUTDOWN);
    assert_int_equal(ferry_loop_stop(l), -ESHUTDOWN);
    assert_int_equal(ferry_loop_fd(l), -ESHUTDOWN);
    int64_t t;
    assert_int_equal(ferry_loop_timeout(l, &t), -ESHUTDOWN);
    ferry_future *f;
    assert_int_equal(ferry_future_new(l, &f), -ESHUTDOWN);
    close(p[0]);
    close(p[1]);
}

static void count_into(void *arg)
{
    (*(int *)arg)++;
}

static void test_S9_close_disposes_each_exactly_once(void **state)
{
    struct fx *fx = *state;
    int ran = 0;
    int p[2];
    assert_int_equal(pipe(p), 0);
    ferry_loop *l = fx->loop;
    ferry_call_soon(l, count_into, &ran, count_into, NULL);
    ferry_call_later(l, 10, count_into, &ran, count_into, NULL);
    ferry_call_at(l, 0, count_into, &ran, count_into, NULL);
    ferry_add_reader(l, p[0], count_into, &ran, count_into);
    ferry_add_writer(l, p[1], count_into, &ran, count_into);
    ferry_call_soon_threadsafe(l, count_into, &ran, count_into);
    /* dispose and cb share the counter: every registration bumps it once
     * (via dispose), and nothing runs. */
    assert_int_equal(ferry_loop_close(l), 0);
    assert_int_equal(ran, 6);
    close(p[0]);
    close(p[1]);
}

/* ---- S13: the running loop is per thread ---- */

struct seen {
    ferry_loop *loop;
    ferry_loop *from_cb;
    ferry_loop *from_other;
    int nested_once, nested_other;
};

static void *read_running(void *arg)
{
    ((struct seen *)arg)->from_other = ferry_loop_running();
    return NULL;
}

static void look(void *arg)
{
    struct seen *s = arg;
    s->from_cb = ferry_loop_running();
    pthread_join(spawn(read_running, s), NULL);
    s->nested_once = ferry_loop_run_once(s->loop, 0);
    ferry_loop *other;
    ferry_loop_new(&other, NULL);
    s->nested_other = ferry_loop_run_once(other, 0);
    ferry_loop_free(other);
}

static void test_S13_running_loop_is_per_thread(void **state)
{
    struct fx *fx = *state;
    struct seen s = {.loop = fx->loop, .from_other = (void *)1};
    assert_null(ferry_loop_running());
    ferry_call_soon(fx->loop, look, &s, NULL, NULL);
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    assert_ptr_equal(s.from_cb, fx->loop);
    assert_null(s.from_other);
    assert_int_equal(s.nested_once, -EBUSY);
    assert_int_equal(s.nested_other, -EBUSY);
    assert_null(ferry_loop_running());
}

/* ---- errors ---- */

static void test_loop_null_arguments(void **state)
{
    (void)state;
    assert_int_equal(ferry_loop_new(NULL, NULL), -EINVAL);
    assert_int_equal(ferry_loop_close(NULL), -EINVAL);
    assert_int_equal(ferry_loop_run_forever(NULL), -EINVAL);
    assert_int_equal(ferry_loop_run_once(NULL, 0), -EINVAL);
    assert_int_equal(ferry_loop_stop(NULL), -EINVAL);
    assert_int_equal(ferry_call_soon(NULL, push_id, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(ferry_call_later(NULL, 0, push_id, NULL, NULL, NULL),
                     -EINVAL);
    assert_int_equal(ferry_call_at(NULL, 0, push_id, NULL, NULL, NULL),
                     -EINVAL);
    assert_int_equal(ferry_call_soon_threadsafe(NULL, push_id, NULL, NULL),
                     -EINVAL);
    assert_int_equal(ferry_handle_cancel(NULL), -EINVAL);
    assert_false(ferry_handle_cancelled(NULL));
    ferry_handle_unref(NULL);
    assert_int_equal(ferry_loop_fd(NULL), -EINVAL);
    int64_t t;
    assert_int_equal(ferry_loop_timeout(NULL, &t), -EINVAL);
    ferry_loop *l;
    assert_int_equal(ferry_loop_new(&l, NULL), 0);
    assert_int_equal(ferry_loop_timeout(l, NULL), -EINVAL);
    assert_int_equal(ferry_loop_free(l), 0);
    assert_int_equal(ferry_loop_stats(NULL, NULL), -EINVAL);
    assert_int_equal(ferry_loop_after_fork(NULL), -EINVAL);
    assert_false(ferry_loop_is_running(NULL));
    assert_false(ferry_loop_is_closed(NULL));
    ferry_loop_ref(NULL);
    ferry_loop_unref(NULL);
}

static void test_loop_null_callbacks(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(ferry_call_soon(fx->loop, NULL, NULL, NULL, NULL),
                     -EINVAL);
    assert_int_equal(ferry_call_later(fx->loop, 0, NULL, NULL, NULL, NULL),
                     -EINVAL);
    assert_int_equal(ferry_call_soon_threadsafe(fx->loop, NULL, NULL, NULL),
                     -EINVAL);
    assert_int_equal(ferry_add_reader(fx->loop, 0, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(ferry_loop_after_fork(fx->loop), -EALREADY);
}

static void *unref_later(void *arg)
{
    sleep_ns(2000000);
    ferry_loop_unref(arg);
    return NULL;
}

static void test_loop_ref_outlives_free(void **state)
{
    (void)state;
    ferry_loop *l;
    assert_int_equal(ferry_loop_new(&l, NULL), 0);
    ferry_loop_ref(l);
    assert_int_equal(ferry_loop_free(l), 0);
    /* Memory still there for the holder: posts are refused, not crashes. */
    assert_int_equal(ferry_call_soon_threadsafe(l, push_id, NULL, NULL),
                     -ESHUTDOWN);
    pthread_join(spawn(unref_later, l), NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_S1_call_soon_from_foreign_thread_eperm),
        T(test_S7_run_until_complete_returns_result),
        T(test_S7_run_until_complete_stopped_early),
        T(test_S7_run_until_complete_other_loop_einval),
        T(test_S7_run_until_complete_nested_busy),
        T(test_S8_stop_before_run_forever),
        T(test_S8_stop_during_run_finishes_batch),
        T(test_S8_stop_is_threadsafe),
        T(test_S9_close_refused_while_running),
        T(test_S9_close_drops_pending_and_disposes),
        T(test_S9_close_disposes_each_exactly_once),
        T(test_S13_running_loop_is_per_thread),
        cmocka_unit_test(test_loop_null_arguments),
        T(test_loop_null_callbacks),
        cmocka_unit_test(test_loop_ref_outlives_free),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
