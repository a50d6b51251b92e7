/*
 * tests/test_executor_sched.c: scheduling behaviour of the pool (issue 3):
 * fork-join groups, blocking work and spares, the CPU bound, the
 * starvation check, wake-ups after idle periods, an idle pool's CPU use.
 *
 * Workers never call cmocka asserts (STYLE.md point 20): they record into
 * atomics, and the test thread asserts after waiting. No test checks
 * timing, except test_executor_blocking_growth, whose bound is the point
 * of the test (and is loose against the serial 20 s).
 */
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
    assert_int_equal(
        ferry_pool_submit(pool, cross_wait_fn, NULL, NULL, 0, NULL), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL),
                         0);
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
    assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL), 0);
    /* And a run of blocking tasks: their workers keep their cores BLOCKED
     * between them (blocking.c, lazy) and must settle before parking, or
     * the monitor would go on polling those cores. */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL,
                                           FERRY_TASK_BLOCKING, NULL),
                         0);
    assert_true(wait_count(&counter, 1001));
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
    if (arg != NULL &&
        ferry_pool_submit(arg, hwm_cpu_fn, NULL, NULL, 0, NULL) != 0)
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
        assert_int_equal(ferry_pool_submit(pool, hwm_cpu_fn,
                                           i % 2 ? pool : NULL, NULL, 0, NULL),
                         0);
        n += i % 2 ? 2 : 1;
        if (i % 3 == 0) {
            assert_int_equal(ferry_pool_submit(pool, hwm_blocking_fn, NULL,
                                               NULL, FERRY_TASK_BLOCKING, NULL),
                             0);
            assert_int_equal(
                ferry_pool_submit(pool, hwm_section_fn, NULL, NULL, 0, NULL),
                0);
            n += 2;
        }
    }
    assert_true(wait_count_pool(pool, &counter, n));
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(atomic_load(&counter), n);
    assert_true(atomic_load(&cpu_hwm) >= 1);
    assert_true(atomic_load(&cpu_hwm) <= 2);
    print_message("cpu high-water %ld, all (with blocking) %ld\n",
                  atomic_load(&cpu_hwm), atomic_load(&all_hwm));
}

/* A blocked worker's own deque holds the only queued work and it holds
 * the only core: the monitor must retake that core for a spare. */
static ferry_pool *retake_pool;
static _Atomic int retake_ok;

static void blocked_parent_fn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++)
        if (ferry_pool_submit(retake_pool, count_fn, NULL, NULL, 0, NULL) != 0)
            return;
    /* Blocks (flagged) until its own children ran elsewhere. */
    atomic_store(&retake_ok, wait_count(&counter, 5));
}

static void blocked_section_fn(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++)
        if (ferry_pool_submit(retake_pool, count_fn, NULL, NULL, 0, NULL) != 0)
            return;
    ferry_blocking_begin();
    atomic_store(&retake_ok, wait_count(&counter, 5));
    ferry_blocking_end();
}

static void test_executor_blocked_core_retaken(void **state)
{
    (void)state;
    ferry_task_fn *fns[2] = {blocked_parent_fn, blocked_section_fn};
    for (int k = 0; k < 2; k++) {
        retake_pool = new_pool(1, 4);
        atomic_store(&counter, 0);
        atomic_store(&retake_ok, -1);
        assert_int_equal(ferry_pool_submit(retake_pool, fns[k], NULL, NULL,
                                           k == 0 ? FERRY_TASK_BLOCKING : 0,
                                           NULL),
                         0);
        assert_int_equal(ferry_pool_free(retake_pool), 0);
        assert_int_equal(atomic_load(&retake_ok), 1);
        assert_int_equal(atomic_load(&counter), 5);
    }
}

/* The same after a run of short blocking tasks on the only core: the
 * worker keeps its core BLOCKED from one to the next (a new episode each,
 * blocking.c), and the episode of the one that really blocks must still be
 * retaken for its children. Then a CPU task settles the core back. */
static void test_executor_blocked_core_retaken_after_streak(void **state)
{
    (void)state;
    retake_pool = new_pool(1, 4);
    atomic_store(&counter, 0);
    atomic_store(&retake_ok, -1);
    /* The parent's children count from 1000 on: wait for 1005 in it. */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ferry_pool_submit(retake_pool, count_fn, NULL, NULL,
                                           FERRY_TASK_BLOCKING, NULL),
                         0);
    assert_true(wait_count(&counter, 1000));
    atomic_store(&counter, 0);
    assert_int_equal(ferry_pool_submit(retake_pool, blocked_parent_fn, NULL,
                                       NULL, FERRY_TASK_BLOCKING, NULL),
                     0);
    assert_true(wait_count(&counter, 5));
    assert_int_equal(
        ferry_pool_submit(retake_pool, count_fn, NULL, NULL, 0, NULL), 0);
    assert_true(wait_count(&counter, 6));
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(retake_pool, &st), 0);
    assert_true(st.spares_created >= 1);
    assert_int_equal(ferry_pool_free(retake_pool), 0);
    assert_int_equal(atomic_load(&retake_ok), 1);
}

/* A flagged task whose thread stays on a CPU (it spins) is not blocked in
 * the kernel: for RUNNABLE_GRACE_NS (10 ms) of its blocking episode the
 * monitor leaves its core alone, so a 1 ms spin with CPU work queued behind
 * it makes no spare (without the grace one starts about 100 us in). The
 * rule is exact: an episode shorter than the grace cannot be retaken, so
 * the check holds however the machine schedules, and is skipped only when
 * the episode itself lasted longer (a heavily loaded machine). A spin-wait
 * for queued work still gets its spare, after the grace. */
static _Atomic uint64_t spin_ns;

static void spin_blocking_fn(void *arg)
{
    uint64_t t0 = now_ns();
    uint64_t end = t0 + (uint64_t)(uintptr_t)arg;
    while (now_ns() < end)
        spin(100);
    atomic_store(&spin_ns, now_ns() - t0);
}

static void spin_for_child_fn(void *arg)
{
    (void)arg;
    if (ferry_pool_submit(retake_pool, count_fn, NULL, NULL, 0, NULL) != 0)
        return;
    uint64_t end = now_ns() + WAIT_NS;
    while (atomic_load(&counter) < 1 && now_ns() < end)
        spin(100); /* on a CPU throughout: state R */
    atomic_store(&retake_ok, atomic_load(&counter) == 1);
}

static void test_executor_spinning_holder_grace(void **state)
{
    (void)state;
    ferry_pool *pool = new_pool(1, 4);
    atomic_store(&counter, 0);
    atomic_store(&spin_ns, 0);
    assert_int_equal(ferry_pool_submit(pool, spin_blocking_fn,
                                       (void *)(uintptr_t)1000000, NULL,
                                       FERRY_TASK_BLOCKING, NULL),
                     0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL),
                         0);
    assert_true(wait_count(&counter, 8));
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(pool, &st), 0);
    assert_int_equal(ferry_pool_free(pool), 0);
    uint64_t episode = atomic_load(&spin_ns);
    print_message("1 ms spin took %.2f ms; spares %llu\n",
                  (double)episode / 1e6, (unsigned long long)st.spares_created);
    assert_true(episode > 0);
    if (episode < 9000000) /* the grace less a monitor tick */
        assert_int_equal(st.spares_created, 0);

    /* Spinning until a queued task ran: only a spare can run it. */
    retake_pool = new_pool(1, 4);
    atomic_store(&counter, 0);
    atomic_store(&retake_ok, -1);
    assert_int_equal(ferry_pool_submit(retake_pool, spin_for_child_fn, NULL,
                                       NULL, FERRY_TASK_BLOCKING, NULL),
                     0);
    assert_int_equal(ferry_pool_free(retake_pool), 0);
    assert_int_equal(atomic_load(&retake_ok), 1);
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
        assert_int_equal(ferry_pool_submit(pool, sleeper_fn, NULL, NULL,
                                           FERRY_TASK_BLOCKING, NULL),
                         0);
    assert_true(wait_count(&counter, 200));
    uint64_t ms = (now_ns() - t0) / 1000000;
    /* Serially this is 20 s and on two fixed threads 10 s. Under a
     * sanitizer or valgrind (which runs one thread at a time) thread
     * creation is far slower, so there the bound is only "well under the
     * two-thread time"; the growth itself is checked below from the
     * stats. */
    uint64_t bound = 900;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    bound = 5000;
#endif
    if (RUNNING_ON_VALGRIND)
        bound = 5000;
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
        assert_int_equal(ferry_pool_submit(pool, hwm_blocking_fn, NULL, NULL,
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
        ferry_pool_submit(pool, unflagged_blocker_fn, NULL, NULL, 0, NULL), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(ferry_pool_submit(pool, count_fn, NULL, NULL, 0, NULL),
                         0);
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
    if (ferry_pool_submit(arg, post_fn, NULL, NULL, 0, NULL) != 0)
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
                assert_int_equal(ferry_pool_submit(pool, post_nested_fn, pool,
                                                   NULL, 0, NULL),
                                 0);
            else
                assert_int_equal(
                    ferry_pool_submit(pool, post_fn, NULL, NULL, 0, NULL), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_executor_group_fib),
        cmocka_unit_test(test_executor_group_wait_across_pools),
        cmocka_unit_test(test_executor_cpu_high_water),
        cmocka_unit_test(test_executor_blocking_growth),
        cmocka_unit_test(test_executor_blocked_core_retaken),
        cmocka_unit_test(test_executor_blocked_core_retaken_after_streak),
        cmocka_unit_test(test_executor_spinning_holder_grace),
        cmocka_unit_test(test_executor_spares_retire),
        cmocka_unit_test(test_executor_starvation_check),
        cmocka_unit_test(test_executor_no_lost_wakeup),
        cmocka_unit_test(test_executor_idle_pool_uses_no_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
