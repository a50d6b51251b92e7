/*
 * tests/fault_pool_new.c: fault injection on the pool's lifecycle (STYLE.md
 * point 22, issue 6 section 3), through the wrappers of tests/fault.h.
 *
 * 1. ferry_pool_new: the N-th allocation or pthread_create made on the test
 *    thread fails, for N = 1, 2, ... until ferry_pool_new succeeds. Each
 *    failure must return the documented error (-ENOMEM for an allocation,
 *    -EAGAIN for pthread_create), leave *out untouched, join every thread
 *    it started (checked in /proc/self/task) and leak nothing (LSan under
 *    ASan, and valgrind, which run this executable in the unit suite).
 *    Only the test thread's calls count: the pool's threads allocate
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
 * 4. ferry_pool_after_fork in a child, the N-th allocation or
 *    pthread_create failing (one fork per N): a failure leaves the pool
 *    either inherited (-ECHILD; -ENOMEM before anything changed), and the
 *    call can be repeated, or shut down (-ESHUTDOWN; it could not start
 *    its threads) and freeable; success runs the child's tasks. The child
 *    reports through its exit status. (Not under TSan, which cannot start
 *    threads in the child of a multithreaded process: test_pool_fork.c.)
 */
#include <dirent.h>
#include <sys/wait.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* The thread count once it is back to want, or after a second. A joined
 * thread can still be listed for a moment: pthread_join returns when the
 * kernel clears its tid, slightly before the task leaves the group. */
static int settled_threads(int want)
{
    int n = count_threads();
    for (int i = 0; i < 1000 && n != want; i++) {
        sleep_us(1000);
        n = count_threads();
    }
    return n;
}

/* ---- 1. ferry_pool_new ---- */

static void run_fault_loop(const struct ferry_pool_opts *opts)
{
    /* Warm up first: sanitizer runtimes start helper threads on the first
     * pthread_create, which must not count against the pool. */
    ferry_pool *warm = NULL;
    assert_int_equal(ferry_pool_new(&warm, opts), 0);
    assert_int_equal(ferry_pool_free(warm), 0);
    int base = count_threads();
    long n;
    int allocs = 0, creates = 0;
    for (n = 1; n < 10000; n++) {
        ferry_pool *pool = (ferry_pool *)(uintptr_t)0x1;
        fault_arm(FAULT_ALLOC | FAULT_THREAD, n, false);
        int rc = ferry_pool_new(&pool, opts);
        unsigned fired = fault_disarm();
        if (rc == 0) {
            assert_int_equal(fired, 0); /* nothing left to fail */
            assert_int_equal(ferry_pool_free(pool), 0);
            break;
        }
        /* The documented error for what failed, *out untouched. */
        assert_int_equal(rc, fired == FAULT_THREAD ? -EAGAIN : -ENOMEM);
        assert_ptr_equal(pool, (ferry_pool *)(uintptr_t)0x1);
        assert_int_equal(settled_threads(base), base); /* all joined */
        allocs += fired == FAULT_ALLOC;
        creates += fired == FAULT_THREAD;
    }
    assert_true(n < 10000);
    /* Every kind of failure point was reached. */
    assert_true(allocs >= 4);
    assert_true(creates >= 2);
    print_message("ferry_pool_new: %d allocation and %d pthread_create "
                  "failure points, success at call %ld\n",
                  allocs, creates, n);
}

static void test_fault_pool_new_every_call(void **state)
{
    (void)state;
    struct ferry_pool_opts o = {.threads = 2};
    run_fault_loop(&o);
    o = (struct ferry_pool_opts){.threads = 1, .stack_size = 1u << 20};
    run_fault_loop(&o);
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
    assert_int_equal(ferry_pool_submit(pool, blocking_waits_for_b, &s,
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
        int rc = ferry_pool_submit(pool, cpu_b, &s, 0, NULL);
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
                while ((rc = ferry_pool_submit(pool, fns[i], NULL, flags[i],
                                               NULL)) != 0) {
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

/* ---- 4. after_fork ---- */

static ferry_pool *fpool; /* static: the child's _exit leaves it reachable */
static _Atomic int child_ran;

static void child_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&child_ran, 1);
}

enum { CHILD_NOFAULT = 100 }; /* exit status: ran without a fault */

static int after_fork_child(long n)
{
    int bad = 0;
    fault_arm(FAULT_ALLOC | FAULT_THREAD, n, false);
    int rc = ferry_pool_after_fork(fpool);
    unsigned fired = fault_disarm();
    if (rc == -ENOMEM || rc == -EAGAIN) {
        if (fired != (rc == -ENOMEM ? FAULT_ALLOC : FAULT_THREAD))
            bad |= 1;
        int sub = ferry_pool_submit(fpool, child_task, NULL, 0, NULL);
        if (sub == -ESHUTDOWN) {
            /* Shut down, every started thread joined: it frees. */
            if (ferry_pool_free(fpool) != 0)
                bad |= 8;
            return bad;
        }
        /* Still inherited (only before anything changed): repeat. */
        if (sub != -ECHILD || rc != -ENOMEM)
            bad |= 2;
        rc = ferry_pool_after_fork(fpool);
    } else if (rc != 0) {
        return bad | 16;
    }
    if (rc != 0)
        return bad | 32;
    for (int i = 0; i < 8; i++)
        if (ferry_pool_submit(fpool, child_task, NULL, 0, NULL) != 0)
            bad |= 64;
    if (ferry_pool_shutdown(fpool, FERRY_DRAIN, -1, NULL) != 0 ||
        atomic_load(&child_ran) != 8)
        bad |= 64;
    if (ferry_pool_free(fpool) != 0)
        bad |= 8;
    return bad != 0 ? bad : fired == 0 ? CHILD_NOFAULT : 0;
}

static void test_fault_pool_after_fork_every_call(void **state)
{
    (void)state;
#if defined(__SANITIZE_THREAD__)
    skip();
#endif
    struct ferry_pool_opts o = {.threads = 2};
    assert_int_equal(ferry_pool_new(&fpool, &o), 0);
    int points = 0;
    long n;
    for (n = 1; n < 100; n++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(after_fork_child(n));
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st) == CHILD_NOFAULT)
            break;
        assert_int_equal(WEXITSTATUS(st), 0);
        points++;
    }
    assert_true(n < 100);
    assert_true(points >= 3); /* stale list, two threads, the monitor */
    assert_int_equal(ferry_pool_free(fpool), 0);
    print_message("ferry_pool_after_fork: %d failure points\n", points);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_pool_new_every_call),
        cmocka_unit_test(test_fault_spare_create_fails_queued_work_runs),
        cmocka_unit_test(test_fault_spare_growth_every_call),
        cmocka_unit_test(test_fault_pool_after_fork_every_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
