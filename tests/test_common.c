/* tests/test_common.c: ferry_strerror and ferry_version. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/base.h"
#include "ferry.h"

static void test_common_strerror_reserved_codes(void **state)
{
    (void)state;
    assert_string_equal(ferry_strerror(0), "Success");
    assert_string_equal(ferry_strerror(-ECHILD),
                        "Object inherited across fork; call its after_fork "
                        "first");
    assert_string_equal(ferry_strerror(-ESHUTDOWN),
                        "Loop or pool is closing or closed");
    assert_non_null(ferry_strerror(-EIO));
    assert_true(strlen(ferry_strerror(-EIO)) > 0);
    assert_non_null(ferry_strerror(-99999));
}

static void test_common_version(void **state)
{
    (void)state;
    assert_string_equal(ferry_version(), "0.1.0");
}

/* struct ferry__lock (common/lock.c): mutual exclusion under contention.
 * Four threads (twice the machine's cores, so holders get preempted and
 * waiters reach the futex path) each add 1 to a plain counter LOCK_ITERS
 * times under the lock, with a read-modify-write split by a yield now and
 * then to widen the window; every increment must be counted. ThreadSanitizer
 * checks the lock's acquire/release edges on the same counter. */
enum { LOCK_THREADS = 4, LOCK_ITERS = 50000 };

struct lock_test {
    struct ferry__lock lock;
    uint64_t counter;    /* under lock */
    uint64_t in_section; /* under lock: never above 1 */
    uint64_t max_in_section;
};

static void *lock_worker(void *arg)
{
    struct lock_test *t = arg;
    for (unsigned i = 0; i < LOCK_ITERS; i++) {
        ferry__lock(&t->lock);
        uint64_t inside = ++t->in_section;
        if (inside > t->max_in_section)
            t->max_in_section = inside;
        uint64_t v = t->counter;
        if (i % 1024 == 0)
            sched_yield(); /* hold it across a reschedule */
        t->counter = v + 1;
        t->in_section--;
        ferry__unlock(&t->lock);
    }
    return NULL;
}

static void test_common_lock_counts_every_increment(void **state)
{
    (void)state;
    struct lock_test t = {.lock = FERRY__LOCK_INIT};
    pthread_t th[LOCK_THREADS];
    for (int i = 0; i < LOCK_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, lock_worker, &t), 0);
    for (int i = 0; i < LOCK_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(t.counter, (uint64_t)LOCK_THREADS * LOCK_ITERS);
    assert_int_equal(t.max_in_section, 1);
    assert_int_equal(atomic_load(&t.lock.v), 0); /* free, no waiter left */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_strerror_reserved_codes),
        cmocka_unit_test(test_common_version),
        cmocka_unit_test(test_common_lock_counts_every_increment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
