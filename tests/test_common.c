/* tests/test_common.c: ferry_strerror, ferry_version, the futex lock and
 * the hazard records. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/base.h"
#include "common/hazard.h"
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

/* common/hazard.c: ferry__hz_wait(p) returns only once no record holds p.
 * A helper waits on a pointer the test thread protects; it must still be
 * waiting after the test thread has given it time, and must return once
 * the record is cleared. A record holding another pointer never blocks. */
struct hz_test {
    const void *p;
    _Atomic int started, returned;
};

static void *hz_waiter(void *arg)
{
    struct hz_test *t = arg;
    atomic_store(&t->started, 1);
    ferry__hz_wait(t->p);
    atomic_store(&t->returned, 1);
    return NULL;
}

static void test_common_hazard_wait_until_clear(void **state)
{
    (void)state;
    static int obj, other;
    struct hz_test t = {.p = &obj};
    struct ferry__hz *h = ferry__hz_self();
    assert_non_null(h);
    assert_ptr_equal(ferry__hz_self(), h); /* one record per thread */
    ferry__hz_set(h, &other);
    ferry__hz_wait(&obj); /* nobody holds obj: returns at once */
    ferry__hz_set(h, &obj);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hz_waiter, &t), 0);
    while (!atomic_load(&t.started))
        sched_yield();
    for (int i = 0; i < 100; i++)
        sched_yield(); /* time for a wrong return to happen */
    nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
    assert_int_equal(atomic_load(&t.returned), 0);
    ferry__hz_clear(h);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(atomic_load(&t.returned), 1);
}

/* Records are given back at thread exit and taken again: threads that
 * come one after another share one record instead of growing the list. */
static void *hz_take(void *arg)
{
    struct ferry__hz **out = arg;
    *out = ferry__hz_self();
    ferry__hz_set(*out, out); /* the exit must clear this */
    return NULL;
}

static void test_common_hazard_records_reused(void **state)
{
    (void)state;
    assert_non_null(ferry__hz_self());
    unsigned before = ferry__hz_count();
    struct ferry__hz *first = NULL;
    for (int i = 0; i < 50; i++) {
        struct ferry__hz *h = NULL;
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, hz_take, &h), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_non_null(h);
        assert_null(atomic_load(&h->ptr));
        if (first == NULL)
            first = h;
        assert_ptr_equal(h, first);
    }
    assert_true(ferry__hz_count() <= before + 1);
}

/* A thread protecting p when another thread forks does not exist in the
 * child: the atfork handler gives its record back, so ferry__hz_wait(p) in
 * the child returns instead of waiting forever. */
struct hz_fork {
    const void *p;
    _Atomic int set, release;
};

static void *hz_holder(void *arg)
{
    struct hz_fork *f = arg;
    struct ferry__hz *h = ferry__hz_self();
    if (h == NULL) {
        atomic_store(&f->set, -1);
        return NULL;
    }
    ferry__hz_set(h, f->p);
    atomic_store(&f->set, 1);
    while (!atomic_load(&f->release))
        sched_yield();
    ferry__hz_clear(h);
    return NULL;
}

static void test_common_hazard_fork_child_clears(void **state)
{
    (void)state;
    static int obj;
    struct hz_fork f = {.p = &obj};
    assert_non_null(ferry__hz_self()); /* installs the atfork handler */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hz_holder, &f), 0);
    while (!atomic_load(&f.set))
        sched_yield();
    assert_int_equal(atomic_load(&f.set), 1);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(10); /* a wait that never ends fails, not hangs */
        ferry__hz_wait(&obj);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    atomic_store(&f.release, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_strerror_reserved_codes),
        cmocka_unit_test(test_common_version),
        cmocka_unit_test(test_common_lock_counts_every_increment),
        cmocka_unit_test(test_common_hazard_wait_until_clear),
        cmocka_unit_test(test_common_hazard_records_reused),
        cmocka_unit_test(test_common_hazard_fork_child_clears),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
