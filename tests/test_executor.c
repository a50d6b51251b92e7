/*
 * tests/test_executor.c: unit tests of the work-stealing pool (issue 3).
 *
 * Workers never call cmocka asserts (STYLE.md point 20): they record into
 * atomics, and the test thread asserts after waiting or joining. Every wait
 * is bounded (WAIT_NS) so a bug fails a test instead of hanging it. No
 * test checks timing, except test_executor_blocking_growth, whose bound is
 * the point of the test (and is loose against a serial 20 s).
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

#include "executor/internal.h"
#include "ferry.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define WAIT_NS (20ull * 1000000000u)

static uint64_t now_ns(void)
{
    return ferry__now_ns();
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* Poll until *v >= want or WAIT_NS passes. */
static bool wait_count(_Atomic long *v, long want)
{
    uint64_t end = now_ns() + WAIT_NS;
    while (atomic_load(v) < want) {
        if (now_ns() > end)
            return false;
        sleep_ns(100000);
    }
    return true;
}

static ferry_pool *new_pool(unsigned threads, unsigned max_threads)
{
    ferry_pool *pool = NULL;
    struct ferry_pool_opts o = {.threads = threads,
                                .max_threads = max_threads,
                                .starvation_ns = UINT64_MAX};
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    return pool;
}

/* ---- small task bodies ---- */

static _Atomic long counter;

static void count_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counter, 1);
}

static void spin(unsigned iters)
{
    volatile unsigned x = 0;
    for (unsigned i = 0; i < iters; i++)
        x += i;
    (void)x; /* clang 14: -Wunused-but-set-variable */
}

/* A gate that blocks a worker until the test opens it. */
struct gate {
    sem_t sem;
    _Atomic int entered;
    _Atomic int left;
};

static void gate_fn(void *arg)
{
    struct gate *g = arg;
    atomic_store(&g->entered, 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    sem_timedwait(&g->sem, &ts);
    atomic_store(&g->left, 1);
}

static void gate_init(struct gate *g)
{
    sem_init(&g->sem, 0, 0);
    atomic_store(&g->entered, 0);
    atomic_store(&g->left, 0);
}

static void gate_wait_entered(struct gate *g)
{
    uint64_t end = now_ns() + WAIT_NS;
    while (!atomic_load(&g->entered) && now_ns() < end)
        sleep_ns(100000);
    assert_true(atomic_load(&g->entered));
}

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
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 0, NULL), 0);
    assert_true(wait_count(&counter, 1));
    assert_int_equal(ferry_pool_free(pool), 0);
}

static void test_executor_null_args(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 0);
    ferry_task *t = NULL;
    assert_int_equal(ferry_pool_submit(NULL, count_fn, NULL, 0, &t), -EINVAL);
    assert_int_equal(ferry_pool_submit(pool, NULL, NULL, 0, &t), -EINVAL);
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 1u << 7, &t),
                     -EINVAL);
    assert_int_equal(ferry_pool_try_submit(NULL, count_fn, NULL, 0, &t),
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
        assert_int_equal(ferry_pool_submit(pool, name_fn, NULL, 0, NULL), 0);
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
        if (ferry_pool_submit(pool, count_fn, NULL, 0, NULL) != 0)
            atomic_fetch_add(&counter, 1000000); /* poison */
}

static void test_executor_submit_nested_and_status(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(2, 0);
    atomic_store(&counter, 0);
    ferry_task *t[50];
    for (int i = 0; i < 50; i++)
        assert_int_equal(ferry_pool_submit(pool, nested_fn, pool, 0, &t[i]), 0);
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

/* ---- cancellation ---- */

static void test_executor_cancel_before_start(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 1); /* no spare can run the task */
    struct gate g;
    gate_init(&g);
    atomic_store(&counter, 0);
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, 0, NULL), 0);
    gate_wait_entered(&g);
    ferry_task *t = NULL;
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 0, &t), 0);
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
    assert_int_equal(ferry_pool_submit(pool, cooperative_fn, &started, 0, &t),
                     0);
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
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, 0, NULL), 0);
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
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, 0, NULL), 0);
    gate_wait_entered(&g);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ferry_pool_try_submit(pool, count_fn, NULL, 0, NULL),
                         0);
    assert_int_equal(ferry_pool_try_submit(pool, count_fn, NULL, 0, NULL),
                     -EAGAIN);
    /* The plain submit is not bounded. */
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 0, NULL), 0);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(st.queue_depth, 5);
    sem_post(&g.sem);
    assert_true(wait_count(&counter, 5));
    /* Drained: room again. */
    assert_int_equal(ferry_pool_try_submit(pool, count_fn, NULL, 0, NULL), 0);
    assert_true(wait_count(&counter, 6));
    assert_int_equal(ferry_pool_free(pool), 0);
}

/* ---- groups ---- */

static ferry_pool *fib_pool;

struct fib {
    int n;
    long r;
};

static void fib_fn(void *arg)
{
    struct fib *f = arg;
    if (f->n < 2) {
        f->r = f->n;
        return;
    }
    struct fib a = {f->n - 1, 0};
    struct fib b = {f->n - 2, 0};
    ferry_group g;
    if (ferry_group_init(&g, fib_pool) != 0 ||
        ferry_group_spawn(&g, fib_fn, &a, 0) != 0 ||
        ferry_group_spawn(&g, fib_fn, &b, 0) != 0) {
        f->r = -1000000000; /* poison */
        return;
    }
    ferry_group_wait(&g);
    f->r = a.r + b.r;
}

static void test_executor_group_fib(void **state)
{
    (void)state;
    fib_pool = new_pool(2, 0);
    struct fib f = {25, 0};
    ferry_group g;
    assert_int_equal(ferry_group_init(&g, fib_pool), 0);
    assert_int_equal(ferry_group_spawn(&g, fib_fn, &f, 0), 0);
    assert_int_equal(ferry_group_wait(&g), 0); /* an outside waiter */
    assert_int_equal(f.r, 75025);
    /* The group is reusable. */
    f = (struct fib){15, 0};
    assert_int_equal(ferry_group_spawn(&g, fib_fn, &f, 0), 0);
    assert_int_equal(ferry_group_wait(&g), 0);
    assert_int_equal(f.r, 610);
    assert_int_equal(ferry_pool_free(fib_pool), 0);
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
        ferry_pool_submit(drain_pool, count_fn, NULL, 0, NULL) != 0)
        atomic_fetch_add(&counter, 1000000);
}

static void test_executor_shutdown_drain(void **state)
{
    (void)state;
    drain_pool = new_pool(2, 0);
    atomic_store(&counter, 0);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(ferry_pool_submit(drain_pool, drain_fn, NULL, 0, NULL),
                         0);
    assert_int_equal(ferry_pool_shutdown(drain_pool, FERRY_DRAIN, -1, NULL), 0);
    long n = atomic_load(&counter);
    assert_true(n >= 2000 && n < 1000000);
    assert_int_equal(ferry_pool_submit(drain_pool, count_fn, NULL, 0, NULL),
                     -ESHUTDOWN);
    assert_int_equal(ferry_pool_try_submit(drain_pool, count_fn, NULL, 0, NULL),
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

static void test_executor_shutdown_cancel_with_report(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 1);
    struct gate g;
    gate_init(&g);
    atomic_store(&counter, 0);
    ferry_task *gt = NULL;
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, 0, &gt), 0);
    gate_wait_entered(&g);
    ferry_task *t[20];
    for (int i = 0; i < 20; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 0, &t[i]), 0);
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
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 0, NULL),
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
    assert_int_equal(ferry_pool_submit(pool, gate_fn, &g, 0, NULL), 0);
    gate_wait_entered(&g);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 0, NULL), 0);
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
    assert_int_equal(ferry_pool_submit(self_pool, self_fn, NULL, 0, NULL), 0);
    assert_true(wait_count(&counter, 1));
    assert_int_equal(atomic_load(&self_rc_free), -EDEADLK);
    assert_int_equal(atomic_load(&self_rc_shutdown), -EDEADLK);
    /* The worker's shutdown call did start the shutdown. */
    assert_int_equal(ferry_pool_submit(self_pool, count_fn, NULL, 0, NULL),
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
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 0, NULL), 0);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(st.threads_total, 2);
    assert_true(st.threads_idle <= 2);
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, -1, NULL), 0);
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(st.submitted, 1000);
    assert_int_equal(st.completed, 1000);
    assert_int_equal(st.cancelled, 0);
    assert_int_equal(st.queue_depth, 0);
    assert_int_equal(st.threads_total, 0);
    /* Timing is sampled, one task in FERRY__TIME_SAMPLE per thread. */
    assert_int_equal(hist_sum(st.queue_wait), 1000 / FERRY__TIME_SAMPLE);
    assert_int_equal(hist_sum(st.run_time), hist_sum(st.queue_wait));
    assert_true(st.parks >= st.unparks);
    assert_int_equal(ferry_pool_free(pool), 0);
}

/* ---- blocking work ---- */

static _Atomic long cpu_running;
static _Atomic long cpu_hwm;
static _Atomic long all_running;
static _Atomic long all_hwm;

static void hwm_enter(_Atomic long *run, _Atomic long *hwm)
{
    long n = atomic_fetch_add(run, 1) + 1;
    long h = atomic_load(hwm);
    while (n > h && !atomic_compare_exchange_weak(hwm, &h, n))
        ;
}

static void cpu_enter(void)
{
    hwm_enter(&cpu_running, &cpu_hwm);
    hwm_enter(&all_running, &all_hwm);
}

static void cpu_leave(void)
{
    atomic_fetch_sub(&cpu_running, 1);
    atomic_fetch_sub(&all_running, 1);
}

static void hwm_cpu_fn(void *arg)
{
    cpu_enter();
    spin(20000);
    cpu_leave();
    atomic_fetch_add(&counter, 1);
    if (arg != NULL && ferry_pool_submit(arg, hwm_cpu_fn, NULL, 0, NULL) != 0)
        atomic_fetch_add(&counter, 1000000);
}

static void hwm_blocking_fn(void *arg)
{
    (void)arg;
    hwm_enter(&all_running, &all_hwm);
    sleep_ns(2000000);
    atomic_fetch_sub(&all_running, 1);
    atomic_fetch_add(&counter, 1);
}

static void hwm_section_fn(void *arg)
{
    (void)arg;
    cpu_enter();
    spin(5000);
    cpu_leave();
    ferry_blocking_begin();
    hwm_enter(&all_running, &all_hwm);
    sleep_ns(2000000);
    atomic_fetch_sub(&all_running, 1);
    ferry_blocking_end();
    cpu_enter();
    spin(5000);
    cpu_leave();
    atomic_fetch_add(&counter, 1);
}

static void test_executor_cpu_high_water(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(2, 32);
    atomic_store(&counter, 0);
    atomic_store(&cpu_running, 0);
    atomic_store(&cpu_hwm, 0);
    atomic_store(&all_running, 0);
    atomic_store(&all_hwm, 0);
    long n = 0;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(
            ferry_pool_submit(pool, hwm_cpu_fn, i % 2 ? pool : NULL, 0, NULL),
            0);
        n += i % 2 ? 2 : 1;
        if (i % 3 == 0) {
            assert_int_equal(ferry_pool_submit(pool, hwm_blocking_fn, NULL,
                                               FERRY_TASK_BLOCKING, NULL),
                             0);
            assert_int_equal(
                ferry_pool_submit(pool, hwm_section_fn, NULL, 0, NULL), 0);
            n += 2;
        }
    }
    assert_true(wait_count(&counter, n));
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(atomic_load(&counter), n);
    assert_true(atomic_load(&cpu_hwm) >= 1);
    assert_true(atomic_load(&cpu_hwm) <= 2);
    print_message("cpu high-water %ld, all (with blocking) %ld\n",
                  atomic_load(&cpu_hwm), atomic_load(&all_hwm));
}

static void sleeper_fn(void *arg)
{
    (void)arg;
    sleep_ns(100000000);
    atomic_fetch_add(&counter, 1);
}

static void test_executor_blocking_growth(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(2, 256);
    atomic_store(&counter, 0);
    uint64_t t0 = now_ns();
    for (int i = 0; i < 200; i++)
        assert_int_equal(ferry_pool_submit(pool, sleeper_fn, NULL,
                                           FERRY_TASK_BLOCKING, NULL),
                         0);
    assert_true(wait_count(&counter, 200));
    uint64_t ms = (now_ns() - t0) / 1000000;
    /* Serially this is 20 s and on two fixed threads 10 s. Under a
     * sanitizer thread creation is slower; valgrind also runs one thread
     * at a time, so 200 thread creations alone take seconds there. Those
     * bounds only say "faster than serial"; the growth itself is checked
     * below from the stats. */
    uint64_t bound = 900;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    bound = 5000;
#endif
    if (RUNNING_ON_VALGRIND)
        bound = 15000;
    print_message("200 x 100 ms blocking sleepers: %llu ms (bound %llu)\n",
                  (unsigned long long)ms, (unsigned long long)bound);
    assert_true(ms < bound);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_true(st.spares_created > 0);
    assert_true(st.threads_total > 2);
    assert_int_equal(ferry_pool_free(pool), 0);
}

static void test_executor_spares_retire(void **state)
{
    (void)state;
    struct ferry_pool_opts o = {.threads = 1,
                                .max_threads = 8,
                                .keepalive_ns = 20000000,
                                .starvation_ns = UINT64_MAX};
    ferry_pool *pool = NULL;
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    atomic_store(&counter, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ferry_pool_submit(pool, hwm_blocking_fn, NULL,
                                           FERRY_TASK_BLOCKING, NULL),
                         0);
    assert_true(wait_count(&counter, 4));
    struct ferry_pool_stats st;
    uint64_t end = now_ns() + WAIT_NS;
    do {
        sleep_ns(5000000);
        assert_int_equal(ferry_pool_stats(pool, &st), 0);
    } while (st.threads_total > 1 && now_ns() < end);
    assert_int_equal(st.threads_total, 1);
    assert_int_equal(st.spares_retired, st.spares_created);
    assert_int_equal(ferry_pool_free(pool), 0);
}

static sem_t starve_sem;

static void unflagged_blocker_fn(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    sem_timedwait(&starve_sem, &ts);
}

static void test_executor_starvation_check(void **state)
{
    (void)state;
    struct ferry_pool_opts o = {
        .threads = 1, .max_threads = 4, .starvation_ns = 20000000};
    ferry_pool *pool = NULL;
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    sem_init(&starve_sem, 0, 0);
    atomic_store(&counter, 0);
    /* Blocks without saying so, on the only core. */
    assert_int_equal(
        ferry_pool_submit(pool, unflagged_blocker_fn, NULL, 0, NULL), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 0, NULL), 0);
    /* They run while the blocker still blocks: a spare got the core. */
    assert_true(wait_count(&counter, 10));
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_true(st.starvation_events >= 1);
    sem_post(&starve_sem);
    assert_int_equal(ferry_pool_free(pool), 0);
}

/* ---- wake-ups ---- */

static sem_t wake_sem;

static void post_fn(void *arg)
{
    (void)arg;
    sem_post(&wake_sem);
}

static void post_nested_fn(void *arg)
{
    if (ferry_pool_submit(arg, post_fn, NULL, 0, NULL) != 0)
        atomic_fetch_add(&counter, 1);
}

static void test_executor_no_lost_wakeup(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(2, 0);
    sem_init(&wake_sem, 0, 0);
    atomic_store(&counter, 0);
    unsigned seed = 12345;
    int lost = 0;
    int rounds = RUNNING_ON_VALGRIND ? 60 : 300;
    for (int i = 0; i < rounds && lost == 0; i++) {
        /* Idle long enough for the workers to stop spinning and park. */
        seed = seed * 1103515245u + 12345u;
        sleep_ns((seed >> 8) % 3000000);
        int burst = 1 + (int)((seed >> 4) % 3);
        for (int k = 0; k < burst; k++) {
            if (k == 2)
                assert_int_equal(
                    ferry_pool_submit(pool, post_nested_fn, pool, 0, NULL), 0);
            else
                assert_int_equal(
                    ferry_pool_submit(pool, post_fn, NULL, 0, NULL), 0);
        }
        for (int k = 0; k < burst; k++) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 10;
            if (sem_timedwait(&wake_sem, &ts) != 0)
                lost++;
        }
    }
    assert_int_equal(lost, 0);
    assert_int_equal(atomic_load(&counter), 0);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_true(st.parks > 0); /* the idle periods did park workers */
    assert_int_equal(ferry_pool_free(pool), 0);
}

/* A task of one pool waits on a group of another: it must not hold its
 * own pool's only core while it sleeps. */
static ferry_pool *other_pool;
static sem_t cross_sem;

static void cross_child_fn(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    sem_timedwait(&cross_sem, &ts);
}

static void cross_wait_fn(void *arg)
{
    (void)arg;
    ferry_group g;
    if (ferry_group_init(&g, other_pool) != 0 ||
        ferry_group_spawn(&g, cross_child_fn, NULL, 0) != 0)
        atomic_fetch_add(&counter, 1000000);
    ferry_group_wait(&g);
    atomic_fetch_add(&counter, 1);
}

static void test_executor_group_wait_across_pools(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 4);
    other_pool = new_pool(1, 0);
    sem_init(&cross_sem, 0, 0);
    atomic_store(&counter, 0);
    assert_int_equal(ferry_pool_submit(pool, cross_wait_fn, NULL, 0, NULL), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 0, NULL), 0);
    /* The waiter's core went to a spare: the 10 tasks run meanwhile. */
    assert_true(wait_count(&counter, 10));
    sem_post(&cross_sem);
    assert_true(wait_count(&counter, 11));
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(ferry_pool_free(other_pool), 0);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_executor_idle_pool_uses_no_cpu(void **state)
{
    (void)state;
    if (RUNNING_ON_VALGRIND)
        skip(); /* valgrind's own scheduler burns CPU */
    ferry_pool *pool = new_pool(2, 0);
    atomic_store(&counter, 0);
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, 0, NULL), 0);
    assert_true(wait_count(&counter, 1));
    sleep_ns(50000000); /* let the spinning searchers park */
    double c0 = cpu_seconds();
    sleep_ns(300000000);
    double used = cpu_seconds() - c0;
    print_message("idle pool: %.3f ms of CPU in 300 ms\n", used * 1e3);
    /* Parked workers and a monitor asleep: nothing wakes in between. */
    assert_true(used < 0.010);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(st.threads_idle, 2);
    assert_int_equal(ferry_pool_free(pool), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_executor_options_and_einval),
        cmocka_unit_test(test_executor_null_args),
        cmocka_unit_test(test_executor_hooks_and_names),
        cmocka_unit_test(test_executor_submit_nested_and_status),
        cmocka_unit_test(test_executor_cancel_before_start),
        cmocka_unit_test(test_executor_cancel_while_running),
        cmocka_unit_test(test_executor_internal_task_interface),
        cmocka_unit_test(test_executor_try_submit_backpressure),
        cmocka_unit_test(test_executor_group_fib),
        cmocka_unit_test(test_executor_shutdown_drain),
        cmocka_unit_test(test_executor_shutdown_cancel_with_report),
        cmocka_unit_test(test_executor_shutdown_drain_timeout),
        cmocka_unit_test(test_executor_free_from_worker_edeadlk),
        cmocka_unit_test(test_executor_stats),
        cmocka_unit_test(test_executor_cpu_high_water),
        cmocka_unit_test(test_executor_blocking_growth),
        cmocka_unit_test(test_executor_spares_retire),
        cmocka_unit_test(test_executor_starvation_check),
        cmocka_unit_test(test_executor_no_lost_wakeup),
        cmocka_unit_test(test_executor_group_wait_across_pools),
        cmocka_unit_test(test_executor_idle_pool_uses_no_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
