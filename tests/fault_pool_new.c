/*
 * tests/fault_pool_new.c: fault injection on ferry_pool_new (STYLE.md
 * point 22). malloc, calloc, aligned_alloc and pthread_create are wrapped
 * at link time (-Wl,--wrap=...); the N-th call made on the test thread
 * fails, for N = 1, 2, ... until ferry_pool_new succeeds. Each failure must
 * return the documented error (-ENOMEM for an allocation, -EAGAIN for
 * pthread_create), leave *out untouched, join every thread it started
 * (checked in /proc/self/task) and leak nothing (checked by LSan under
 * ASan and by valgrind, which run this executable in the unit suite).
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
#include <stdlib.h>

#include <cmocka.h>

#include "ferry.h"

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
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

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    return should_fail(1) ? NULL : __real_aligned_alloc(align, size);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    return should_fail(2) ? EAGAIN : __real_pthread_create(t, attr, fn, arg);
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
        assert_int_equal(count_threads(), base); /* all joined */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_pool_new_every_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
