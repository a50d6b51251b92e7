/*
 * tests/fault_pool_new.c: fault injection (STYLE.md point 22). malloc,
 * calloc, realloc, aligned_alloc and pthread_create are wrapped at link
 * time (-Wl,--wrap=...); the N-th call made on the test thread fails, for
 * N = 1, 2, ... until the call under test succeeds.
 *
 * ferry_pool_new: each failure must return the documented error (-ENOMEM
 * for an allocation, -EAGAIN for pthread_create), leave *out untouched,
 * join every thread it started (checked in /proc/self/task) and leak
 * nothing (checked by LSan under ASan and by valgrind, which run this
 * executable in the unit suite). Also -ENOMEM from ferry_pool_submit and
 * ferry_group_spawn, and ferry_pool_after_fork failing at each point in a
 * forked child (one child per N).
 *
 * Only the test thread's calls count: the pool's own threads allocate
 * nothing while idle, and counting them would make N nondeterministic.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ferry.h"
#include "tests/pool_threads.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_realloc(void *p, size_t size);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);

static _Thread_local bool armed;      /* count calls on this thread only */
static _Thread_local long calls;      /* calls seen while armed */
static _Thread_local long fail_at;    /* fail this call (1-based), 0 = never */
static _Thread_local int failed_kind; /* 1 alloc, 2 pthread_create */

static bool should_fail(int kind)
{
    if (!armed)
        return false;
    if (++calls != fail_at)
        return false;
    failed_kind = kind;
    return true;
}

void *__wrap_malloc(size_t size)
{
    return should_fail(1) ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail(1) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    return should_fail(1) ? NULL : __real_realloc(p, size);
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    return should_fail(1) ? NULL : __real_aligned_alloc(align, size);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    return should_fail(2) ? EAGAIN : __real_pthread_create(t, attr, fn, arg);
}

static void run_fault_loop(const struct ferry_pool_opts *opts)
{
    /* Warm up first: sanitizer runtimes start helper threads on the first
     * pthread_create, which must not count against the pool. */
    ferry_pool *warm = NULL;
    assert_int_equal(ferry_pool_new(&warm, opts), 0);
    assert_int_equal(ferry_pool_free(warm), 0);
    assert_true(no_pool_threads());
    long n;
    int allocs = 0, creates = 0;
    for (n = 1; n < 10000; n++) {
        ferry_pool *pool = (ferry_pool *)(uintptr_t)0x1;
        calls = 0;
        fail_at = n;
        failed_kind = 0;
        armed = true;
        int rc = ferry_pool_new(&pool, opts);
        armed = false;
        if (rc == 0) {
            assert_int_equal(failed_kind, 0); /* nothing left to fail */
            assert_int_equal(ferry_pool_free(pool), 0);
            break;
        }
        /* The documented error for what failed, *out untouched. */
        assert_int_equal(rc, failed_kind == 2 ? -EAGAIN : -ENOMEM);
        assert_ptr_equal(pool, (ferry_pool *)(uintptr_t)0x1);
        assert_true(no_pool_threads()); /* all joined */
        allocs += failed_kind == 1;
        creates += failed_kind == 2;
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

static void noop_fn(void *arg)
{
    (void)arg;
}

static void test_fault_submit_and_spawn_enomem(void **state)
{
    (void)state;
    ferry_pool *pool = NULL;
    assert_int_equal(ferry_pool_new(&pool, NULL), 0);
    ferry_group g;
    assert_int_equal(ferry_group_init(&g, pool), 0);
    /* Nothing was ever freed to the block cache, so the first submit on
     * this thread allocates: make that allocation fail. */
    calls = 0;
    fail_at = 1;
    armed = true;
    ferry_task *t = (ferry_task *)(uintptr_t)0x1;
    int rc_submit = ferry_pool_submit(pool, noop_fn, NULL, NULL, 0, &t);
    calls = 0;
    int rc_spawn = ferry_group_spawn(&g, noop_fn, NULL, 0);
    armed = false;
    assert_int_equal(rc_submit, -ENOMEM);
    assert_ptr_equal(t, (ferry_task *)(uintptr_t)0x1);
    assert_int_equal(rc_spawn, -ENOMEM);
    assert_int_equal(ferry_group_wait(&g), 0); /* the group is unchanged */
    assert_int_equal(ferry_pool_submit(pool, noop_fn, NULL, NULL, 0, NULL), 0);
    assert_int_equal(ferry_pool_free(pool), 0);
}

static ferry_pool *fork_pool;

/* In a child: fail the N-th call inside ferry_pool_after_fork. Exit 0 when
 * the failure was handled as documented, 100 when nothing failed (N is
 * past the last call), another code on a broken promise. */
static int child_after_fork(long n)
{
    struct ferry_pool_stats st;
    calls = 0;
    fail_at = n;
    failed_kind = 0;
    armed = true;
    int rc = ferry_pool_after_fork(fork_pool);
    armed = false;
    if (rc == 0)
        return failed_kind == 0 ? 100 : 1;
    if (rc != (failed_kind == 2 ? -EAGAIN : -ENOMEM))
        return 2;
    if (ferry_pool_stats(fork_pool, &st) == -ECHILD) {
        /* Failed before touching anything: still stale, may retry. */
        if (ferry_pool_after_fork(fork_pool) != 0)
            return 3;
    } else if (ferry_pool_submit(fork_pool, noop_fn, NULL, NULL, 0, NULL) !=
               -ESHUTDOWN) {
        return 4; /* otherwise it must be shut down */
    }
    if (ferry_pool_free(fork_pool) != 0)
        return 5;
    return 0;
}

static void test_fault_after_fork_every_call(void **state)
{
    (void)state;
#if defined(__SANITIZE_THREAD__)
    skip(); /* TSan cannot start threads after a multithreaded fork */
#endif
    struct ferry_pool_opts o = {.threads = 2};
    assert_int_equal(ferry_pool_new(&fork_pool, &o), 0);
    /* Fork only once every pool thread runs: sanitizer runtimes allocate
     * while a thread starts, and gcc 12's do not lock their allocator
     * around fork, so a child could inherit that lock held. */
    assert_true(wait_pool_threads(3));
    long n;
    int failures = 0;
    for (n = 1; n < 100; n++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_after_fork(n));
        assert_true(pid > 0);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) == 100)
            break;
        assert_int_equal(WEXITSTATUS(status), 0);
        failures++;
    }
    assert_true(n < 100);
    assert_true(failures >= 4);
    print_message("ferry_pool_after_fork: %d failure points\n", failures);
    assert_int_equal(ferry_pool_free(fork_pool), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_pool_new_every_call),
        cmocka_unit_test(test_fault_submit_and_spawn_enomem),
        cmocka_unit_test(test_fault_after_fork_every_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
