/*
 * tests/fault_pool_spares.c: fault injection on the pool's lifecycle (STYLE.md
 * point 22, issue 6 section 3), through the wrappers of tests/fault.h.
 *
 * 1. ferry_pool_new (in tests/fault_pool_new.c): the N-th allocation or
 * pthread_create made on the test thread fails, for N = 1, 2, ... until
 * ferry_pool_new succeeds. Each failure must return the documented error
 * (-ENOMEM for an allocation, -EAGAIN for pthread_create), leave *out
 * untouched, join every thread it started (checked in /proc/self/task) and leak
 * nothing (LSan under ASan, and valgrind, which run this executable in the unit
 * suite). Only the test thread's calls count: the pool's threads allocate
 *    nothing while idle, and counting them would make N nondeterministic.
 * 2. Spare growth: a spare that cannot be created must not stall queued
 *    work. A blocking task holds the pool's only core and waits for a CPU
 *    task submitted after it; the spare that should run that task fails
 *    to start (pthread_create, or the worker record's allocation). The
 *    CPU task must still run while the blocking one waits.
 * 3. Spare growth swept: two blocking tasks and a CPU task that can only
 *    finish together (each waits for all three to have started), on one
 *    core, so the pool must grow two spares. The N-th pthread_create or
 *    allocation made by any thread fails, N = 1, 2, ... until a run sees
 *    no fault; every run must finish with every task run exactly once.
 *    A submit that fails (-ENOMEM) is retried by the test: accepted work
 *    is counted, refused work is not.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "fault.h"
#include "ferry.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000,
                          .tv_nsec = us % 1000000 * 1000};
    nanosleep(&ts, NULL);
}

/* ---- 2. a spare that cannot start ---- */

#define WAIT_NS 10000000000ull /* 10 s: "never", for a stall */

struct spare {
    _Atomic int a_started;
    _Atomic int b_done;
    _Atomic int a_saw_b; /* the blocking task saw the CPU task finish */
};

static void blocking_waits_for_b(void *arg)
{
    struct spare *s = arg;
    atomic_store(&s->a_started, 1);
    uint64_t end = now_ns() + WAIT_NS;
    while (!atomic_load(&s->b_done) && now_ns() < end)
        sleep_us(200);
    atomic_store(&s->a_saw_b, atomic_load(&s->b_done));
}

static void cpu_b(void *arg)
{
    atomic_store(&((struct spare *)arg)->b_done, 1);
}

static void spare_fails_once(unsigned kind)
{
    struct ferry_pool_opts o = {.threads = 1, .max_threads = 4};
    ferry_pool *pool;
    struct spare s = {0};
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    assert_int_equal(ferry_pool_submit(pool, blocking_waits_for_b, &s, NULL,
                                       FERRY_TASK_BLOCKING, NULL),
                     0);
    while (!atomic_load(&s.a_started))
        sleep_us(100);
    /* The next thread creation (or allocation) by any thread fails: the
     * spare that B's submit starts. The submit itself allocates first on
     * this thread, so for allocations skip that one (N = 2: the worker
     * record; the task block may come from a cache, then N = 1 is it). */
    long n = 1;
    for (;; n++) {
        fault_arm(kind, n, true);
        int rc = ferry_pool_submit(pool, cpu_b, &s, NULL, 0, NULL);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM); /* the task block: retry */
        fault_disarm();
    }
    uint64_t end = now_ns() + WAIT_NS;
    while (!atomic_load(&s.b_done) && now_ns() < end)
        sleep_us(200);
    unsigned fired = fault_disarm();
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(fired, kind); /* the spare's start did fail */
    assert_true(atomic_load(&s.b_done));
    assert_true(atomic_load(&s.a_saw_b)); /* B ran while A still waited */
}

static void test_fault_spare_create_fails_queued_work_runs(void **state)
{
    (void)state;
    spare_fails_once(FAULT_THREAD);
    spare_fails_once(FAULT_ALLOC);
}

/* ---- 3. spare growth, every fault point ---- */

struct trio {
    _Atomic int started; /* tasks inside fn */
    _Atomic int ran[3];  /* times each task ran */
};

static void trio_task(void *arg, int i, struct trio *t)
{
    (void)arg;
    atomic_fetch_add(&t->ran[i], 1);
    atomic_fetch_add(&t->started, 1);
    /* Wait for the other two: finishing needs three threads at once. */
    uint64_t end = now_ns() + WAIT_NS;
    while (atomic_load(&t->started) < 3 && now_ns() < end)
        sleep_us(200);
}

static struct trio trio;
static void trio0(void *arg)
{
    trio_task(arg, 0, &trio);
}
static void trio1(void *arg)
{
    trio_task(arg, 1, &trio);
}
static void trio2(void *arg)
{
    trio_task(arg, 2, &trio);
}

static void test_fault_spare_growth_every_call(void **state)
{
    (void)state;
    struct ferry_pool_opts o = {.threads = 1, .max_threads = 3};
    ferry_task_fn *fns[3] = {trio0, trio1, trio2};
    const unsigned flags[3] = {FERRY_TASK_BLOCKING, FERRY_TASK_BLOCKING, 0};
    long points[2] = {0, 0};
    long refused = 0;
    const unsigned kinds[2] = {FAULT_THREAD, FAULT_ALLOC};
    for (int k = 0; k < 2; k++) {
        long n;
        for (n = 1; n < 1000; n++) {
            ferry_pool *pool;
            assert_int_equal(ferry_pool_new(&pool, &o), 0);
            trio = (struct trio){0};
            uint64_t t0 = now_ns();
            fault_arm(kinds[k], n, true);
            for (int i = 0; i < 3; i++) {
                int rc;
                while ((rc = ferry_pool_submit(pool, fns[i], NULL, NULL,
                                               flags[i], NULL)) != 0) {
                    assert_int_equal(rc, -ENOMEM); /* refused: resubmit */
                    refused++;
                }
            }
            uint64_t end = now_ns() + WAIT_NS;
            while (atomic_load(&trio.started) < 3 && now_ns() < end)
                sleep_us(200);
            unsigned fired = fault_disarm();
            assert_int_equal(ferry_pool_free(pool), 0);
            /* Every task ran exactly once, together, without a stall. */
            for (int i = 0; i < 3; i++)
                assert_int_equal(atomic_load(&trio.ran[i]), 1);
            assert_int_equal(atomic_load(&trio.started), 3);
            assert_true(now_ns() - t0 < WAIT_NS);
            if (fired == 0)
                break;
            points[k]++;
        }
        assert_true(n < 1000);
    }
    assert_true(points[0] >= 2); /* both spares' pthread_create */
    assert_true(points[1] >= 2);
    print_message("spare growth: %ld pthread_create and %ld allocation "
                  "failure points, %ld submits refused and retried\n",
                  points[0], points[1], refused);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_spare_create_fails_queued_work_runs),
        cmocka_unit_test(test_fault_spare_growth_every_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
