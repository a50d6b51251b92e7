/*
 * tests/stress_pool.c: the whole pool under load. Two outside threads
 * submit FERRY_STRESS_ITEMS tiny tasks (default 10^6) with ids; one task in
 * 16 submits a nested child from its worker; a third thread cancels every
 * 64th task while it may be starting. Every id must run exactly once,
 * except the ones whose cancel returned 0, which must never run.
 *
 * FERRY_STRESS_THREADS sets the pool's cores (default 2). Workers record
 * into atomic counters; the test thread asserts after ferry_pool_free has
 * joined them (STYLE.md point 20).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "ferry.h"

enum { NEST_EVERY = 16, CANCEL_EVERY = 64 };

static unsigned env_or(const char *name, unsigned def)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return def;
    unsigned long v = strtoul(s, NULL, 10);
    return v > 0 ? (unsigned)v : def;
}

static ferry_pool *pool;
static uint64_t items;              /* outside ids: 0 .. items-1 */
static uint64_t total;              /* plus nested ids */
static _Atomic unsigned char *runs; /* times each id ran */
static _Atomic uint64_t submit_errors;
static _Atomic(ferry_task *) *handles; /* one per CANCEL_EVERY ids */
static int *cancel_rc;                 /* canceller only, then test thread */
static _Atomic int producers_done;

static bool cancellable(uint64_t id);

static void task_fn(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    atomic_fetch_add_explicit(&runs[id], 1, memory_order_relaxed);
    if (id < items && cancellable(id)) {
        /* A body long enough for some cancels to land while it runs. */
        for (volatile int i = 0; i < 20000; i++)
            ;
    }
    if (id < items && id % NEST_EVERY == 0) {
        uint64_t child = items + id / NEST_EVERY;
        if (ferry_pool_submit(pool, task_fn, (void *)(uintptr_t)child, NULL, 0,
                              NULL) != 0)
            atomic_fetch_add(&submit_errors, 1);
    }
}

static bool cancellable(uint64_t id)
{
    /* Never a parent, so a cancelled task hides no child. */
    return id % CANCEL_EVERY == 1;
}

static void *producer(void *arg)
{
    uint64_t first = (uint64_t)(uintptr_t)arg;
    for (uint64_t id = first; id < items; id += 2) {
        ferry_task *h = NULL;
        int rc = ferry_pool_submit(pool, task_fn, (void *)(uintptr_t)id, NULL,
                                   0, cancellable(id) ? &h : NULL);
        if (rc != 0)
            atomic_fetch_add(&submit_errors, 1);
        else if (h != NULL)
            atomic_store_explicit(&handles[id / CANCEL_EVERY], h,
                                  memory_order_release);
    }
    atomic_fetch_add(&producers_done, 1);
    return NULL;
}

/* Cancel handle i once handle i + lag exists (lag 0..4, varied), so the
 * cancel lands while task i is queued, starting, running or done. */
static void *canceller(void *arg)
{
    (void)arg;
    uint64_t n = (items + CANCEL_EVERY - 1) / CANCEL_EVERY;
    unsigned rng = 7;
    for (uint64_t i = 0; i < n; i++) {
        if (i * CANCEL_EVERY + 1 >= items) {
            cancel_rc[i] = 1; /* no such id */
            continue;
        }
        rng = rng * 1103515245u + 12345u;
        uint64_t lag = (rng >> 16) % 5;
        uint64_t j = i + lag < n ? i + lag : i;
        while (
            atomic_load_explicit(&handles[i], memory_order_acquire) == NULL ||
            (atomic_load_explicit(&handles[j], memory_order_acquire) == NULL &&
             atomic_load(&producers_done) < 2))
            sched_yield();
        cancel_rc[i] = ferry_task_cancel(atomic_load(&handles[i]));
    }
    return NULL;
}

static void test_stress_pool_exactly_once(void **state)
{
    (void)state;
    items = env_or("FERRY_STRESS_ITEMS", 1000000);
    total = items + (items + NEST_EVERY - 1) / NEST_EVERY;
    unsigned threads = env_or("FERRY_STRESS_THREADS", 2);
    uint64_t nh = (items + CANCEL_EVERY - 1) / CANCEL_EVERY;
    runs = calloc(total, 1);
    handles = calloc(nh, sizeof *handles);
    cancel_rc = calloc(nh, sizeof *cancel_rc);
    assert_non_null(runs);
    assert_non_null(handles);
    assert_non_null(cancel_rc);

    struct ferry_pool_opts o = {.threads = threads};
    assert_int_equal(ferry_pool_new(&pool, &o), 0);
    pthread_t p0, p1, c;
    assert_int_equal(pthread_create(&c, NULL, canceller, NULL), 0);
    assert_int_equal(pthread_create(&p0, NULL, producer, (void *)0), 0);
    assert_int_equal(pthread_create(&p1, NULL, producer, (void *)1), 0);
    pthread_join(p0, NULL);
    pthread_join(p1, NULL);
    pthread_join(c, NULL);
    assert_int_equal(ferry_pool_free(pool), 0); /* drains, joins */

    assert_int_equal(atomic_load(&submit_errors), 0);
    uint64_t cancelled = 0, busy = 0, already = 0, wrong = 0;
    for (uint64_t i = 0; i < nh; i++) {
        uint64_t id = i * CANCEL_EVERY + 1;
        if (id >= items)
            continue;
        ferry_task *h = atomic_load(&handles[i]);
        int st = ferry_task_status(h);
        if (cancel_rc[i] == 0) {
            cancelled++;
            wrong += atomic_load(&runs[id]) != 0 || st != -ECANCELED;
        } else {
            busy += cancel_rc[i] == -EBUSY;
            already += cancel_rc[i] == -EALREADY;
            wrong += (cancel_rc[i] != -EBUSY && cancel_rc[i] != -EALREADY) ||
                     st != 0;
        }
        ferry_task_unref(h);
    }
    assert_int_equal(wrong, 0);
    uint64_t bad_runs = 0;
    for (uint64_t id = 0; id < total; id++) {
        unsigned want = 1;
        if (cancellable(id) && id < items && cancel_rc[id / CANCEL_EVERY] == 0)
            want = 0;
        bad_runs += (unsigned)atomic_load(&runs[id]) != want;
    }
    assert_int_equal(bad_runs, 0);
    print_message("%llu tasks ran; cancel races: %llu cancelled before start, "
                  "%llu while running, %llu after\n",
                  (unsigned long long)(total - cancelled),
                  (unsigned long long)cancelled, (unsigned long long)busy,
                  (unsigned long long)already);
    free((void *)runs);
    free(handles);
    free(cancel_rc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_pool_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
