/*
 * tests/test_executor_cancel.c: cancellation and dispose in the pool
 * (issue 3; DESIGN.md section 3: every registration can carry a dispose
 * that frees its argument if the task is dropped). A task cancelled before
 * it starts never runs, one cancelled while running sees the flag; the
 * dispose of a submit runs exactly when fn does not: on a cancel before
 * start and on a FERRY_CANCEL_PENDING shutdown, never after fn ran and
 * never on a refused submit.
 *
 * Workers never call cmocka asserts (STYLE.md point 20): they record into
 * atomics, and the test thread asserts after waiting or joining.
 */
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "tests/executor_util.h"

/* ---- cancellation ---- */

static void test_executor_cancel_before_start(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 1); /* no spare can run the task */
    struct gate g;
    gate_init(&g);
    atomic_store(&counter, 0);
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, NULL, 0, NULL), 0);
    gate_wait_entered(&g);
    ferry_task *t = NULL;
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, &t), 0);
    assert_int_equal(ferry_task_status(t), -EAGAIN);
    assert_int_equal(ferry_task_cancel(t), 0);
    assert_int_equal(ferry_task_status(t), -ECANCELED);
    assert_int_equal(ferry_task_cancel(t), -EALREADY);
    sem_post(&g.sem);
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, -1, NULL), 0);
    assert_int_equal(atomic_load(&counter), 0);
    assert_int_equal(ferry_task_status(t), -ECANCELED);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(st.cancelled, 1);
    ferry_task_unref(t);
    assert_int_equal(ferry_pool_free(pool), 0);
}

static _Atomic int saw_cancel;

static void cooperative_fn(void *arg)
{
    _Atomic int *started = arg;
    atomic_store(started, 1);
    uint64_t end = now_ns() + WAIT_NS;
    while (!ferry_task_cancelled() && now_ns() < end)
        sleep_ns(100000);
    atomic_store(&saw_cancel, ferry_task_cancelled() ? 1 : 0);
}

static void test_executor_cancel_while_running(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 0);
    _Atomic int started = 0;
    atomic_store(&saw_cancel, 0);
    ferry_task *t = NULL;
    assert_int_equal(
        ferry_pool_submit(pool, cooperative_fn, &started, NULL, 0, &t), 0);
    uint64_t end = now_ns() + WAIT_NS;
    while (!atomic_load(&started) && now_ns() < end)
        sleep_ns(100000);
    assert_int_equal(ferry_task_cancel(t), -EBUSY);
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, -1, NULL), 0);
    assert_int_equal(atomic_load(&saw_cancel), 1);
    assert_int_equal(ferry_task_status(t), 0); /* it ran to completion */
    assert_int_equal(ferry_task_cancel(t), -EALREADY);
    ferry_task_unref(t);
    assert_int_equal(ferry_pool_free(pool), 0);
}

/* ---- dispose ---- */

static _Atomic long disposed;

static void count_dispose(void *arg)
{
    atomic_fetch_add(&disposed, 1);
    free(arg); /* the task owned it */
}

static void count_free_fn(void *arg)
{
    atomic_fetch_add(&counter, 1);
    free(arg); /* fn owns it once it runs */
}

static void test_executor_dispose_exactly_when_fn_does_not_run(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 1);
    struct gate g;
    gate_init(&g);
    atomic_store(&counter, 0);
    atomic_store(&disposed, 0);
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, NULL, 0, NULL), 0);
    gate_wait_entered(&g);
    /* Queued behind the gate: one cancelled, one left to run, four dropped
     * by the shutdown below. */
    ferry_task *t = NULL;
    assert_int_equal(
        ferry_pool_submit(pool, count_free_fn, malloc(8), count_dispose, 0, &t),
        0);
    assert_int_equal(ferry_task_cancel(t), 0);
    ferry_task_unref(t);
    assert_int_equal(ferry_pool_submit(pool, count_free_fn, malloc(8),
                                       count_dispose, 0, NULL),
                     0);
    sem_post(&g.sem);
    assert_true(wait_count(&counter, 1));
    assert_true(wait_count(&disposed, 1)); /* the cancelled one */

    gate_init(&g);
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, NULL, 0, NULL), 0);
    gate_wait_entered(&g);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ferry_pool_try_submit(pool, count_free_fn, malloc(8),
                                               count_dispose, 0, NULL),
                         0);
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_CANCEL_PENDING, 0, NULL),
                     -ETIMEDOUT); /* the gate still runs */
    /* Refused: the argument stays the caller's, dispose is not called. */
    void *mine = malloc(8);
    assert_int_equal(
        ferry_pool_submit(pool, count_free_fn, mine, count_dispose, 0, NULL),
        -ESHUTDOWN);
    free(mine);
    sem_post(&g.sem);
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(atomic_load(&counter), 1);  /* fn ran once */
    assert_int_equal(atomic_load(&disposed), 5); /* 1 cancel + 4 dropped */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_executor_cancel_before_start),
        cmocka_unit_test(test_executor_cancel_while_running),
        cmocka_unit_test(test_executor_dispose_exactly_when_fn_does_not_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
