/*
 * tests/test_executor.c: unit tests of the work-stealing pool (issue 3):
 * options and bad arguments, submission, the internal task interface the
 * bridge uses, backpressure, shutdown, stats. Cancellation and dispose are
 * in test_executor_cancel.c; scheduling behaviour (groups, blocking work,
 * wake-ups) in test_executor_sched.c.
 *
 * Workers never call cmocka asserts (STYLE.md point 20): they record into
 * atomics, and the test thread asserts after waiting or joining.
 */
#define _GNU_SOURCE /* pthread_getname_np */
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "tests/executor_util.h"

/* ---- options and bad arguments ---- */

static void test_executor_options_and_einval(void **state)
{
    (void)state;
    ferry_pool *pool = NULL;
    assert_int_equal(ferry_pool_new(NULL, NULL), -EINVAL);
    struct ferry_pool_opts o = {.threads = 4, .max_threads = 2};
    assert_int_equal(ferry_pool_new(&pool, &o), -EINVAL);
    o = (struct ferry_pool_opts){.threads = 5000};
    assert_int_equal(ferry_pool_new(&pool, &o), -EINVAL);
    o = (struct ferry_pool_opts){.threads = 1, .max_threads = 5000};
    assert_int_equal(ferry_pool_new(&pool, &o), -EINVAL);
    o = (struct ferry_pool_opts){.threads = 1, .stack_size = 1024};
    assert_int_equal(ferry_pool_new(&pool, &o), -EINVAL);
    assert_null(pool);

    /* Defaults: one core per CPU. */
    assert_int_equal(ferry_pool_new(&pool, NULL), 0);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(st.threads_total, ferry__cpu_count());
    assert_int_equal(ferry_pool_free(pool), 0);

    /* A custom stack size works. */
    o = (struct ferry_pool_opts){.threads = 1, .stack_size = 1u << 20};
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    atomic_store(&counter, 0);
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL), 0);
    assert_true(wait_count(&counter, 1));
    assert_int_equal(ferry_pool_free(pool), 0);
}

static void test_executor_null_args(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 0);
    ferry_task *t = NULL;
    assert_int_equal(ferry_pool_submit(NULL, count_fn, NULL, NULL, 0, &t),
                     -EINVAL);
    assert_int_equal(ferry_pool_submit(pool, NULL, NULL, NULL, 0, &t), -EINVAL);
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 1u << 7, &t),
                     -EINVAL);
    assert_int_equal(ferry_pool_try_submit(NULL, count_fn, NULL, NULL, 0, &t),
                     -EINVAL);
    assert_null(t);
    assert_int_equal(ferry_task_cancel(NULL), -EINVAL);
    assert_int_equal(ferry_task_status(NULL), -EINVAL);
    ferry_task_unref(NULL);
    assert_false(ferry_task_cancelled());
    ferry_blocking_begin(); /* outside a worker: no effect */
    ferry_blocking_end();

    ferry_group g;
    memset(&g, 0, sizeof g);
    assert_int_equal(ferry_group_init(NULL, pool), -EINVAL);
    assert_int_equal(ferry_group_init(&g, NULL), -EINVAL);
    assert_int_equal(ferry_group_spawn(&g, count_fn, NULL, 0), -EINVAL);
    assert_int_equal(ferry_group_wait(&g), -EINVAL);
    assert_int_equal(ferry_group_wait(NULL), -EINVAL);
    assert_int_equal(ferry_group_init(&g, pool), 0);
    assert_int_equal(ferry_group_spawn(&g, NULL, NULL, 0), -EINVAL);
    assert_int_equal(ferry_group_spawn(&g, count_fn, NULL, 1u << 9), -EINVAL);
    assert_int_equal(ferry_group_wait(&g), 0); /* empty group */

    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(NULL, &st), -EINVAL);
    assert_int_equal(ferry_pool_stats(pool, NULL), -EINVAL);
    assert_int_equal(ferry_pool_shutdown(NULL, FERRY_DRAIN, -1, NULL), -EINVAL);
    assert_int_equal(ferry_pool_shutdown(pool, 7, -1, NULL), -EINVAL);
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, -2, NULL), -EINVAL);
    assert_int_equal(ferry_pool_after_fork(NULL), -EINVAL);
    assert_int_equal(ferry_pool_after_fork(pool), -EINVAL); /* not a child */
    assert_int_equal(ferry_pool_free(NULL), -EINVAL);

    struct ferry__task it;
    assert_int_equal(ferry__pool_submit_task(NULL, &it), -EINVAL);
    assert_int_equal(ferry__pool_submit_task(pool, NULL), -EINVAL);
    assert_int_equal(ferry_pool_free(pool), 0);
}

/* ---- submission, hooks, names ---- */

static _Atomic long hook_starts;
static _Atomic long hook_stops;
static _Atomic long name_ok;

static void on_start(void *ctx, unsigned index)
{
    (void)index;
    if (ctx == &hook_starts)
        atomic_fetch_add(&hook_starts, 1);
}

static void on_stop(void *ctx, unsigned index)
{
    (void)index;
    if (ctx == &hook_starts)
        atomic_fetch_add(&hook_stops, 1);
}

static void name_fn(void *arg)
{
    (void)arg;
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    if (strncmp(name, "tp-", 3) == 0)
        atomic_fetch_add(&name_ok, 1);
    atomic_fetch_add(&counter, 1);
}

static void test_executor_hooks_and_names(void **state)
{
    (void)state;
    atomic_store(&hook_starts, 0);
    atomic_store(&hook_stops, 0);
    atomic_store(&name_ok, 0);
    atomic_store(&counter, 0);
    struct ferry_pool_opts o = {.threads = 2,
                                .name_prefix = "tp-",
                                .on_thread_start = on_start,
                                .on_thread_stop = on_stop,
                                .hook_ctx = &hook_starts};
    ferry_pool *pool = NULL;
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ferry_pool_submit(pool, name_fn, NULL, NULL, 0, NULL),
                         0);
    assert_true(wait_count(&counter, 10));
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(atomic_load(&name_ok), 10);
    assert_true(atomic_load(&hook_starts) >= 2);
    assert_int_equal(atomic_load(&hook_starts), atomic_load(&hook_stops));
}

/* Submissions from outside and from workers, handles and status. */
static void nested_fn(void *arg)
{
    ferry_pool *pool = arg;
    atomic_fetch_add(&counter, 1);
    for (int i = 0; i < 3; i++)
        if (ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL) != 0)
            atomic_fetch_add(&counter, 1000000); /* poison */
}

static void test_executor_submit_nested_and_status(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(2, 0);
    atomic_store(&counter, 0);
    ferry_task *t[50];
    for (int i = 0; i < 50; i++)
        assert_int_equal(
            ferry_pool_submit(pool, nested_fn, pool, NULL, 0, &t[i]), 0);
    assert_true(wait_count(&counter, 200));
    for (int i = 0; i < 50; i++) {
        uint64_t end = now_ns() + WAIT_NS;
        while (ferry_task_status(t[i]) == -EAGAIN && now_ns() < end)
            sleep_ns(100000);
        assert_int_equal(ferry_task_status(t[i]), 0);
        assert_int_equal(ferry_task_cancel(t[i]), -EALREADY);
        ferry_task_unref(t[i]);
    }
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(atomic_load(&counter), 200);
}

/* ---- the internal (bridge) interface ---- */

struct itask {
    struct ferry__task t;
    _Atomic int ran;
    _Atomic int completes;
    _Atomic int status;
    _Atomic int saw_flag;
    _Atomic int *started;
};

static void itask_fn(void *arg)
{
    struct itask *x = arg;
    if (x->started != NULL) {
        atomic_store(x->started, 1);
        uint64_t end = now_ns() + WAIT_NS;
        while (!ferry_task_cancelled() && now_ns() < end)
            sleep_ns(100000);
        atomic_store(&x->saw_flag, ferry_task_cancelled());
    }
    atomic_fetch_add(&x->ran, 1);
}

static void itask_complete(struct ferry__task *t, int status)
{
    struct itask *x = ferry__container_of(t, struct itask, t);
    atomic_store(&x->status, status);
    atomic_fetch_add(&x->completes, 1);
}

static void itask_prepare(struct itask *x, _Atomic int *started)
{
    memset(x, 0, sizeof *x);
    x->started = started;
    ferry__task_init(&x->t, itask_fn, x, itask_complete, 0);
}

static bool wait_int(_Atomic int *v, int want)
{
    uint64_t end = now_ns() + WAIT_NS;
    while (atomic_load(v) != want && now_ns() < end)
        sleep_ns(100000);
    return atomic_load(v) == want;
}

static void test_executor_internal_task_interface(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 1);
    struct itask a, b, c;

    /* Runs: complete(t, 0) once. */
    itask_prepare(&a, NULL);
    assert_int_equal(ferry__pool_submit_task(pool, &a.t), 0);
    assert_true(wait_int(&a.completes, 1));
    assert_int_equal(atomic_load(&a.status), 0);
    assert_int_equal(atomic_load(&a.ran), 1);
    assert_int_equal(ferry__task_cancel(&a.t), -EALREADY);

    /* Cancelled before start: never runs, complete(t, -ECANCELED). */
    struct gate g;
    gate_init(&g);
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, NULL, 0, NULL), 0);
    gate_wait_entered(&g);
    itask_prepare(&b, NULL);
    assert_int_equal(ferry__pool_submit_task(pool, &b.t), 0);
    assert_int_equal(ferry__task_cancel(&b.t), 0);
    assert_int_equal(ferry__task_cancel(&b.t), -EALREADY);
    sem_post(&g.sem);
    assert_true(wait_int(&b.completes, 1));
    assert_int_equal(atomic_load(&b.status), -ECANCELED);
    assert_int_equal(atomic_load(&b.ran), 0);

    /* Cancelled while running: -EBUSY, and ferry_task_cancelled() sees
     * it for internal tasks too. */
    _Atomic int started = 0;
    itask_prepare(&c, &started);
    assert_int_equal(ferry__pool_submit_task(pool, &c.t), 0);
    assert_true(wait_int(&started, 1));
    assert_int_equal(ferry__task_cancel(&c.t), -EBUSY);
    assert_true(wait_int(&c.completes, 1));
    assert_int_equal(atomic_load(&c.status), 0);
    assert_int_equal(atomic_load(&c.saw_flag), 1);

    /* After shutdown: refused, and complete is not called. */
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, -1, NULL), 0);
    itask_prepare(&a, NULL);
    assert_int_equal(ferry__pool_submit_task(pool, &a.t), -ESHUTDOWN);
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(atomic_load(&a.completes), 0);
    assert_int_equal(atomic_load(&b.completes), 1);
    assert_int_equal(atomic_load(&c.completes), 1);
}

/* ---- backpressure ---- */

static void test_executor_try_submit_backpressure(void **state)
{
    (void)state;
    struct ferry_pool_opts o = {.threads = 1,
                                .max_threads = 1,
                                .queue_limit = 4,
                                .starvation_ns = UINT64_MAX};
    ferry_pool *pool = NULL;
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    struct gate g;
    gate_init(&g);
    atomic_store(&counter, 0);
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, NULL, 0, NULL), 0);
    gate_wait_entered(&g);
    for (int i = 0; i < 4; i++)
        assert_int_equal(
            ferry_pool_try_submit(pool, count_fn, NULL, NULL, 0, NULL), 0);
    assert_int_equal(ferry_pool_try_submit(pool, count_fn, NULL, NULL, 0, NULL),
                     -EAGAIN);
    /* The plain submit is not bounded. */
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL), 0);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(st.queue_depth, 5);
    sem_post(&g.sem);
    assert_true(wait_count(&counter, 5));
    /* Drained: room again. */
    assert_int_equal(ferry_pool_try_submit(pool, count_fn, NULL, NULL, 0, NULL),
                     0);
    assert_true(wait_count(&counter, 6));
    /* Full again behind a held worker, then shut down: a retry could never
     * succeed, so the answer is -ESHUTDOWN, not -EAGAIN. */
    struct gate g2;
    gate_init(&g2);
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g2, NULL, 0, NULL), 0);
    gate_wait_entered(&g2);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL),
                         0);
    assert_int_equal(ferry_pool_try_submit(pool, count_fn, NULL, NULL, 0, NULL),
                     -EAGAIN);
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, 0, NULL),
                     -ETIMEDOUT);
    assert_int_equal(ferry_pool_try_submit(pool, count_fn, NULL, NULL, 0, NULL),
                     -ESHUTDOWN);
    sem_post(&g2.sem);
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(atomic_load(&counter), 10); /* the drain ran them */
}

/* ---- shutdown ---- */

static ferry_pool *drain_pool;

static void drain_fn(void *arg)
{
    (void)arg;
    spin(2000);
    atomic_fetch_add(&counter, 1);
    /* Nested submits stay accepted while the drain runs. */
    if (atomic_load(&counter) % 10 == 0 &&
        ferry_pool_submit(drain_pool, count_fn, NULL, NULL, 0, NULL) != 0)
        atomic_fetch_add(&counter, 1000000);
}

static void test_executor_shutdown_drain(void **state)
{
    (void)state;
    drain_pool = new_pool(2, 0);
    atomic_store(&counter, 0);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(
            ferry_pool_submit(drain_pool, drain_fn, NULL, NULL, 0, NULL), 0);
    assert_int_equal(ferry_pool_shutdown(drain_pool, FERRY_DRAIN, -1, NULL), 0);
    long n = atomic_load(&counter);
    assert_true(n >= 2000 && n < 1000000);
    assert_int_equal(
        ferry_pool_submit(drain_pool, count_fn, NULL, NULL, 0, NULL),
        -ESHUTDOWN);
    assert_int_equal(
        ferry_pool_try_submit(drain_pool, count_fn, NULL, NULL, 0, NULL),
        -ESHUTDOWN);
    ferry_group g;
    assert_int_equal(ferry_group_init(&g, drain_pool), 0);
    assert_int_equal(ferry_group_spawn(&g, count_fn, NULL, 0), -ESHUTDOWN);
    assert_int_equal(ferry_group_wait(&g), 0);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(drain_pool, &st), 0);
    assert_int_equal(st.threads_total, 0); /* every worker has exited */
    assert_int_equal(st.completed, (uint64_t)n);
    assert_int_equal(st.submitted, (uint64_t)n);
    /* Again: nothing left to wait for. */
    assert_int_equal(ferry_pool_shutdown(drain_pool, FERRY_DRAIN, 0, NULL), 0);
    assert_int_equal(ferry_pool_free(drain_pool), 0);
    assert_int_equal(atomic_load(&counter), n);
}

/* A task accepted during a drain that nobody waits for any more: a
 * worker's on_thread_stop hook submits while it exits (so the task is
 * accepted, and its wake-up finds the one thread slot still taken), after
 * a shutdown with timeout 0 returned. The monitor must start a worker for
 * it (review of the drain fix: it stayed queued until the next shutdown
 * call). */
static ferry_pool *late_pool;
static _Atomic int late_rc = 1;

static void late_stop(void *ctx, unsigned index)
{
    (void)ctx;
    (void)index;
    if (atomic_load(&late_rc) == 1) /* once: later workers exit quietly */
        atomic_store(&late_rc, ferry_pool_submit(late_pool, count_fn, NULL,
                                                 NULL, 0, NULL));
}

static void
test_executor_drain_runs_task_accepted_after_waiter_left(void **state)
{
    (void)state;
    struct ferry_pool_opts o = {
        .threads = 1, .max_threads = 1, .on_thread_stop = late_stop};
    atomic_store(&counter, 0);
    atomic_store(&late_rc, 1);
    assert_int_equal(ferry_pool_new(&late_pool, &o), 0);
    assert_int_equal(
        ferry_pool_submit(late_pool, count_fn, NULL, NULL, 0, NULL), 0);
    assert_true(wait_count(&counter, 1));
    int rc = ferry_pool_shutdown(late_pool, FERRY_DRAIN, 0, NULL);
    assert_true(rc == 0 || rc == -ETIMEDOUT);
    assert_true(wait_count_pool(late_pool, &counter, 2));
    assert_int_equal(atomic_load(&late_rc), 0);
    assert_int_equal(ferry_pool_free(late_pool), 0);
    assert_int_equal(atomic_load(&counter), 2);
}

static void test_executor_shutdown_cancel_with_report(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 1);
    struct gate g;
    gate_init(&g);
    atomic_store(&counter, 0);
    ferry_task *gt = NULL;
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, NULL, 0, &gt), 0);
    gate_wait_entered(&g);
    ferry_task *t[20];
    for (int i = 0; i < 20; i++)
        assert_int_equal(
            ferry_pool_submit(pool, count_fn, NULL, NULL, 0, &t[i]), 0);
    struct itask it;
    itask_prepare(&it, NULL);
    assert_int_equal(ferry__pool_submit_task(pool, &it.t), 0);

    struct ferry_pool_report r;
    assert_int_equal(
        ferry_pool_shutdown(pool, FERRY_CANCEL_PENDING, 20000000, &r),
        -ETIMEDOUT);
    assert_int_equal(r.running, 1);
    assert_int_equal(r.listed, 1);
    assert_ptr_equal(r.task[0].task, gt);
    assert_ptr_equal(r.task[0].fn, gate_fn);
    assert_ptr_equal(r.task[0].arg, &g);
    for (int i = 0; i < 20; i++)
        assert_int_equal(ferry_task_status(t[i]), -ECANCELED);
    /* The completion hook of a dropped internal task ran, cancelled. */
    assert_int_equal(atomic_load(&it.completes), 1);
    assert_int_equal(atomic_load(&it.status), -ECANCELED);
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL),
                     -ESHUTDOWN);

    sem_post(&g.sem);
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_CANCEL_PENDING, -1, &r),
                     0);
    assert_int_equal(ferry_task_status(gt), 0);
    assert_int_equal(atomic_load(&counter), 0);
    assert_int_equal(atomic_load(&it.ran), 0);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(st.cancelled, 21);
    for (int i = 0; i < 20; i++)
        ferry_task_unref(t[i]);
    ferry_task_unref(gt);
    assert_int_equal(ferry_pool_free(pool), 0);
}

static void test_executor_shutdown_drain_timeout(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 1);
    struct gate g;
    gate_init(&g);
    atomic_store(&counter, 0);
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, NULL, 0, NULL), 0);
    gate_wait_entered(&g);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL),
                         0);
    struct ferry_pool_report r;
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, 0, &r), -ETIMEDOUT);
    assert_int_equal(r.running, 1);
    sem_post(&g.sem);
    /* Draining continues after the timeout: free waits and runs all. */
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(atomic_load(&counter), 10);
}

static ferry_pool *self_pool;
static _Atomic int self_rc_free;
static _Atomic int self_rc_shutdown;

static void self_fn(void *arg)
{
    (void)arg;
    atomic_store(&self_rc_free, ferry_pool_free(self_pool));
    atomic_store(&self_rc_shutdown,
                 ferry_pool_shutdown(self_pool, FERRY_DRAIN, -1, NULL));
    atomic_fetch_add(&counter, 1);
}

static void test_executor_free_from_worker_edeadlk(void **state)
{
    (void)state;
    self_pool = new_pool(1, 0);
    atomic_store(&counter, 0);
    assert_int_equal(ferry_pool_submit(self_pool, self_fn, NULL, NULL, 0, NULL),
                     0);
    assert_true(wait_count(&counter, 1));
    assert_int_equal(atomic_load(&self_rc_free), -EDEADLK);
    assert_int_equal(atomic_load(&self_rc_shutdown), -EDEADLK);
    /* The worker's shutdown call did start the shutdown. */
    assert_int_equal(
        ferry_pool_submit(self_pool, count_fn, NULL, NULL, 0, NULL),
        -ESHUTDOWN);
    assert_int_equal(ferry_pool_free(self_pool), 0);
}

/* ---- stats ---- */

static uint64_t hist_sum(const uint64_t *h)
{
    uint64_t s = 0;
    for (int i = 0; i < FERRY_POOL_HIST_BUCKETS; i++)
        s += h[i];
    return s;
}

static void test_executor_stats(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(2, 0);
    atomic_store(&counter, 0);
    /* 1024: a multiple of FERRY__TIME_SAMPLE, whatever this thread's
     * sampling phase. */
    for (int i = 0; i < 1024; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL),
                         0);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(st.threads_total, 2);
    assert_true(st.threads_idle <= 2);
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, -1, NULL), 0);
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(st.submitted, 1024);
    assert_int_equal(st.completed, 1024);
    assert_int_equal(st.cancelled, 0);
    assert_int_equal(st.queue_depth, 0);
    assert_int_equal(st.threads_total, 0);
    /* Timing is sampled, one task in FERRY__TIME_SAMPLE per thread. */
    assert_int_equal(hist_sum(st.queue_wait), 1024 / FERRY__TIME_SAMPLE);
    assert_int_equal(hist_sum(st.run_time), hist_sum(st.queue_wait));
    assert_true(st.parks >= st.unparks);
    assert_int_equal(ferry_pool_free(pool), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_executor_options_and_einval),
        cmocka_unit_test(test_executor_null_args),
        cmocka_unit_test(test_executor_hooks_and_names),
        cmocka_unit_test(test_executor_submit_nested_and_status),
        cmocka_unit_test(test_executor_internal_task_interface),
        cmocka_unit_test(test_executor_try_submit_backpressure),
        cmocka_unit_test(test_executor_shutdown_drain),
        cmocka_unit_test(
            test_executor_drain_runs_task_accepted_after_waiter_left),
        cmocka_unit_test(test_executor_shutdown_cancel_with_report),
        cmocka_unit_test(test_executor_shutdown_drain_timeout),
        cmocka_unit_test(test_executor_free_from_worker_edeadlk),
        cmocka_unit_test(test_executor_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
