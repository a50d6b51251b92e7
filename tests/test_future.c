/*
 * tests/test_future.c: futures (S12), cross-thread resolution and waits.
 */
#include <string.h>

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

static struct log cb_log;
static pthread_t cb_thread;

static void log_done(ferry_future *f, void *arg)
{
    assert_true(ferry_future_done(f));
    cb_thread = pthread_self();
    log_push(&cb_log, (int)(intptr_t)arg);
}

static void free_counted(void *p)
{
    (*(int *)p)++;
}

static void test_S12_states_and_results(void **state)
{
    ferry_loop *loop = *state;
    ferry_future *f;
    int value = 7, freed = 0, late = 0;
    void *out = NULL;
    assert_int_equal(ferry_future_new(loop, &f), 0);
    assert_int_equal(ferry_future_result(f, &out), -EAGAIN);
    assert_false(ferry_future_done(f));
    assert_false(ferry_future_cancelled(f));
    assert_int_equal(ferry_future_set_result(f, &freed, free_counted), 0);
    assert_int_equal(ferry_future_set_result(f, &late, free_counted),
                     -EALREADY);
    assert_int_equal(late, 1); /* the losing value went to its dtor */
    assert_int_equal(ferry_future_set_error(f, -EIO), -EALREADY);
    assert_false(ferry_future_cancel(f)); /* done: cancel returns false */
    for (int i = 0; i < 3; i++) {         /* read many times, same result */
        assert_int_equal(ferry_future_result(f, &out), 0);
        assert_ptr_equal(out, &freed);
    }
    assert_true(ferry_future_done(f));
    assert_int_equal(freed, 0);
    ferry_future_unref(f);
    assert_int_equal(freed, 1); /* dtor on the last unref */

    assert_int_equal(ferry_future_new(loop, &f), 0);
    assert_int_equal(ferry_future_set_error(f, -EIO), 0);
    assert_int_equal(ferry_future_result(f, &out), -EIO);
    assert_int_equal(ferry_future_result(f, NULL), -EIO);
    ferry_future_unref(f);

    assert_int_equal(ferry_future_new(loop, &f), 0);
    assert_true(ferry_future_cancel(f));
    assert_false(ferry_future_cancel(f));
    assert_true(ferry_future_cancelled(f));
    assert_true(ferry_future_done(f));
    assert_int_equal(ferry_future_result(f, &out), -ECANCELED);
    assert_int_equal(ferry_future_set_result(f, &value, NULL), -EALREADY);
    ferry_future_unref(f);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
}

static void test_S12_done_callbacks_scheduled_in_order(void **state)
{
    ferry_loop *loop = *state;
    ferry_future *f;
    memset(&cb_log, 0, sizeof cb_log);
    assert_int_equal(ferry_future_new(loop, &f), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ferry_future_add_done_callback(
                             f, log_done, (void *)(intptr_t)i, NULL),
                         0);
    assert_int_equal(ferry_future_set_result(f, NULL, NULL), 0);
    assert_int_equal(cb_log.n, 0); /* never inline */
    /* Added after completion: still scheduled, still after the others. */
    assert_int_equal(
        ferry_future_add_done_callback(f, log_done, (void *)(intptr_t)3, NULL),
        0);
    assert_int_equal(cb_log.n, 0);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(cb_log.n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(cb_log.v[i], i);
    ferry_future_unref(f);
}

static void test_S12_remove_done_callback_counts(void **state)
{
    ferry_loop *loop = *state;
    ferry_future *f;
    _Atomic int disposed = 0;
    memset(&cb_log, 0, sizeof cb_log);
    assert_int_equal(ferry_future_new(loop, &f), 0);
    void *a = (void *)&disposed;
    ferry_future_add_done_callback(f, log_done, a, count_dispose);
    ferry_future_add_done_callback(f, log_done, (void *)(intptr_t)9, NULL);
    ferry_future_add_done_callback(f, log_done, a, count_dispose);
    assert_int_equal(ferry_future_remove_done_callback(f, log_done, a), 2);
    assert_int_equal(atomic_load(&disposed), 2);
    assert_int_equal(ferry_future_remove_done_callback(f, log_done, a), 0);
    ferry_future_add_done_callback(f, log_done, (void *)(intptr_t)10, NULL);
    assert_int_equal(ferry_future_set_result(f, NULL, NULL), 0);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(cb_log.n, 2);
    assert_int_equal(cb_log.v[0], 9);
    assert_int_equal(cb_log.v[1], 10);
    ferry_future_unref(f);
}

static void test_S12_unref_inside_callback_is_safe(void **state)
{
    ferry_loop *loop = *state;
    ferry_future *f;
    memset(&cb_log, 0, sizeof cb_log);
    assert_int_equal(ferry_future_new(loop, &f), 0);
    ferry_future_add_done_callback(f, log_done, (void *)(intptr_t)1, NULL);
    assert_int_equal(ferry_future_set_result(f, NULL, NULL), 0);
    ferry_future_unref(f); /* the queued callback keeps it alive */
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(cb_log.n, 1);
}

/* ---- cross-thread resolution and waits ---- */

struct resolver {
    ferry_future *f;
    int rc;
    int wait_rc;
    int64_t timeout;
};

static void *resolve_threadsafe(void *arg)
{
    struct resolver *r = arg;
    static int v = 5;
    sleep_ns(2000000);
    r->rc = ferry_future_set_result_threadsafe(r->f, &v, NULL);
    return NULL;
}

static void stop_cb(ferry_future *f, void *arg)
{
    (void)f;
    cb_thread = pthread_self();
    ferry_loop_stop(arg);
}

static void test_future_resolved_from_thread_runs_callbacks_on_loop(void **s)
{
    ferry_loop *loop = *s;
    struct resolver r;
    assert_int_equal(ferry_future_new(loop, &r.f), 0);
    ferry_future_add_done_callback(r.f, stop_cb, loop, NULL);
    pthread_t t = spawn(resolve_threadsafe, &r);
    assert_int_equal(ferry_loop_run_forever(loop), 0);
    pthread_join(t, NULL);
    assert_int_equal(r.rc, 0);
    assert_true(pthread_equal(cb_thread, pthread_self()));
    void *v;
    assert_int_equal(ferry_future_result(r.f, &v), 0);
    assert_int_equal(*(int *)v, 5);
    ferry_future_unref(r.f);
}

static void *wait_for(void *arg)
{
    struct resolver *r = arg;
    r->wait_rc = ferry_future_wait(r->f, r->timeout);
    return NULL;
}

static void resolve_now(void *arg)
{
    ferry_future_set_result(arg, NULL, NULL);
}

static void test_future_wait_from_foreign_thread(void **state)
{
    ferry_loop *loop = *state;
    struct resolver r = {.timeout = -1};
    assert_int_equal(ferry_future_new(loop, &r.f), 0);
    pthread_t t = spawn(wait_for, &r);
    sleep_ns(5000000);
    ferry_call_soon(loop, resolve_now, r.f, NULL, NULL);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    pthread_join(t, NULL);
    assert_int_equal(r.wait_rc, 0);
    ferry_future_unref(r.f);
}

static void test_future_wait_timeout_and_deadlock(void **state)
{
    ferry_loop *loop = *state;
    struct resolver r = {.timeout = 3000000};
    assert_int_equal(ferry_future_new(loop, &r.f), 0);
    pthread_join(spawn(wait_for, &r), NULL);
    assert_int_equal(r.wait_rc, -ETIMEDOUT);
    r.timeout = 0;
    pthread_join(spawn(wait_for, &r), NULL);
    assert_int_equal(r.wait_rc, -ETIMEDOUT);
    /* The loop's own thread must resolve it: waiting would hang. */
    assert_int_equal(ferry_future_wait(r.f, -1), -EDEADLK);
    assert_int_equal(ferry_future_wait(r.f, 1000), -EDEADLK);
    assert_int_equal(ferry_future_set_result(r.f, NULL, NULL), 0);
    assert_int_equal(ferry_future_wait(r.f, -1), 0); /* done: no hang */
    assert_int_equal(ferry_future_wait(NULL, 0), -EINVAL);
    ferry_future_unref(r.f);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
}

static void *cancel_from_thread(void *arg)
{
    struct resolver *r = arg;
    r->rc = ferry_future_cancel(r->f);
    return NULL;
}

static void test_future_cancel_from_thread(void **state)
{
    ferry_loop *loop = *state;
    struct resolver r;
    memset(&cb_log, 0, sizeof cb_log);
    assert_int_equal(ferry_future_new(loop, &r.f), 0);
    ferry_future_add_done_callback(r.f, log_done, (void *)(intptr_t)4, NULL);
    pthread_join(spawn(cancel_from_thread, &r), NULL);
    assert_true(r.rc);
    assert_int_equal(cb_log.n, 0);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(cb_log.n, 1);
    assert_int_equal(ferry_future_result(r.f, NULL), -ECANCELED);
    ferry_future_unref(r.f);
}

static void *set_result_wrong_thread(void *arg)
{
    struct resolver *r = arg;
    r->rc = ferry_future_set_result(r->f, NULL, NULL);
    r->wait_rc = ferry_future_add_done_callback(r->f, log_done, NULL, NULL);
    return NULL;
}

static void test_future_errors(void **state)
{
    ferry_loop *loop = *state;
    struct resolver r;
    assert_int_equal(ferry_future_new(NULL, NULL), -EINVAL);
    assert_int_equal(ferry_future_new(loop, &r.f), 0);
    pthread_join(spawn(set_result_wrong_thread, &r), NULL);
    assert_int_equal(r.rc, -EPERM);
    assert_int_equal(r.wait_rc, -EPERM);
    assert_int_equal(ferry_future_set_error(r.f, 0), -EINVAL);
    assert_int_equal(ferry_future_set_error(r.f, 5), -EINVAL);
    assert_int_equal(ferry_future_set_error(r.f, -ECANCELED), -EINVAL);
    assert_int_equal(ferry_future_set_error_threadsafe(r.f, 1), -EINVAL);
    assert_int_equal(ferry_future_add_done_callback(r.f, NULL, NULL, NULL),
                     -EINVAL);
    assert_int_equal(ferry_future_set_result(NULL, NULL, NULL), -EINVAL);
    assert_int_equal(ferry_future_set_result_threadsafe(NULL, NULL, NULL),
                     -EINVAL);
    assert_int_equal(ferry_future_result(NULL, NULL), -EINVAL);
    assert_int_equal(ferry_future_remove_done_callback(NULL, log_done, NULL),
                     -EINVAL);
    assert_false(ferry_future_cancel(NULL));
    assert_false(ferry_future_done(NULL));
    assert_false(ferry_future_cancelled(NULL));
    assert_null(ferry_future_loop(NULL));
    assert_ptr_equal(ferry_future_loop(r.f), loop);
    ferry_future_ref(NULL);
    ferry_future_unref(NULL);
    ferry_future_unref(r.f);
}

static void *resolve_free_standing(void *arg)
{
    struct resolver *r = arg;
    r->rc = ferry_future_set_error(r->f, -EPIPE);
    return NULL;
}

static void test_future_free_standing(void **state)
{
    (void)state;
    struct resolver r = {.timeout = -1};
    assert_int_equal(ferry_future_new(NULL, &r.f), 0);
    assert_null(ferry_future_loop(r.f));
    assert_int_equal(ferry_future_add_done_callback(r.f, log_done, NULL, NULL),
                     -EINVAL);
    pthread_t w = spawn(wait_for, &r);
    pthread_join(spawn(resolve_free_standing, &r), NULL);
    pthread_join(w, NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.wait_rc, 0);
    assert_int_equal(ferry_future_wait(r.f, -1), 0);
    assert_int_equal(ferry_future_result(r.f, NULL), -EPIPE);
    ferry_future_unref(r.f);
}

static void test_future_outlives_closed_loop(void **state)
{
    (void)state;
    ferry_loop *loop;
    ferry_future *f;
    _Atomic int disposed = 0;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    assert_int_equal(ferry_future_new(loop, &f), 0);
    ferry_future_add_done_callback(f, log_done, (void *)&disposed,
                                   count_dispose);
    assert_int_equal(ferry_loop_free(loop), 0); /* f keeps the memory */
    assert_int_equal(ferry_future_add_done_callback(f, log_done, NULL, NULL),
                     -ESHUTDOWN);
    assert_int_equal(ferry_future_set_result(f, NULL, NULL), 0);
    assert_int_equal(atomic_load(&disposed), 1); /* dropped, never run */
    assert_int_equal(ferry_future_result(f, NULL), 0);
    ferry_future_unref(f); /* frees the loop too */
}

static void *resolve_after_close(void *arg)
{
    ferry_future *f = arg;
    ferry_future_set_result_threadsafe(f, NULL, NULL);
    ferry_future_unref(f);
    return NULL;
}

static void test_future_threadsafe_resolution_after_close(void **state)
{
    (void)state;
    ferry_loop *loop;
    ferry_future *f;
    _Atomic int disposed = 0;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    assert_int_equal(ferry_future_new(loop, &f), 0);
    ferry_future_add_done_callback(f, log_done, (void *)&disposed,
                                   count_dispose);
    ferry_future_ref(f);
    assert_int_equal(ferry_loop_free(loop), 0);
    pthread_join(spawn(resolve_after_close, f), NULL);
    assert_true(ferry_future_done(f));
    assert_int_equal(atomic_load(&disposed), 0); /* kept until destroy */
    ferry_future_unref(f);
    assert_int_equal(atomic_load(&disposed), 1);
}

/* The loop references of bound futures (loop.c, ferry__loop_ref_future):
 * on the owner they come from a credit taken 256 at a time, elsewhere from
 * the atomic count. Whatever thread takes or drops them, refs must equal
 * the creator's reference + one per live future + the owner's credit, and
 * the credit must stay bounded and go back at close. */
enum { CREDIT_FUTS = 700, CREDIT_REMOTE = 300 };

static void *drop_futures(void *arg)
{
    ferry_future **f = arg;
    for (int i = 0; i < CREDIT_REMOTE; i++)
        ferry_future_unref(f[i]);
    return NULL;
}

static uint32_t loop_refs(ferry_loop *loop)
{
    return atomic_load(&loop->refs);
}

static void test_future_loop_ref_credit_balances(void **state)
{
    (void)state;
    static ferry_future *f[CREDIT_FUTS];
    ferry_loop *loop;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    for (int i = 0; i < CREDIT_FUTS; i++) {
        assert_int_equal(ferry_future_new(loop, &f[i]), 0);
        assert_int_equal(loop_refs(loop), 1 + (i + 1) + loop->ref_credit);
    }
    assert_true(loop->ref_credit < 256);
    pthread_join(spawn(drop_futures, f), NULL); /* the atomic path */
    assert_int_equal(loop_refs(loop),
                     1 + CREDIT_FUTS - CREDIT_REMOTE + loop->ref_credit);
    for (int i = CREDIT_REMOTE; i < CREDIT_FUTS; i++) { /* the credit */
        ferry_future_unref(f[i]);
        assert_true(loop->ref_credit < 512);
        assert_int_equal(loop_refs(loop),
                         1 + CREDIT_FUTS - (i + 1) + loop->ref_credit);
    }
    assert_int_equal(ferry_future_new(loop, &f[0]), 0); /* outlives close */
    assert_int_equal(ferry_loop_close(loop), 0);
    assert_int_equal(loop->ref_credit, 0);
    assert_int_equal(loop_refs(loop), 2);
    ferry_future_unref(f[0]); /* closed: the atomic path */
    assert_int_equal(loop_refs(loop), 1);
    assert_int_equal(ferry_loop_free(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_S12_states_and_results),
        T(test_S12_done_callbacks_scheduled_in_order),
        T(test_S12_remove_done_callback_counts),
        T(test_S12_unref_inside_callback_is_safe),
        T(test_future_resolved_from_thread_runs_callbacks_on_loop),
        T(test_future_wait_from_foreign_thread),
        T(test_future_wait_timeout_and_deadlock),
        T(test_future_cancel_from_thread),
        T(test_future_errors),
        cmocka_unit_test(test_future_free_standing),
        cmocka_unit_test(test_future_outlives_closed_loop),
        cmocka_unit_test(test_future_threadsafe_resolution_after_close),
        cmocka_unit_test(test_future_loop_ref_credit_balances),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
