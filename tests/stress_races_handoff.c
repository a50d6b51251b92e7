/*
 * tests/stress_races_handoff.c: a loop freed right after its last offload
 * completed, while the worker that completed it may still be in the
 * wake-up that follows its inbox push. The worker holds no reference on
 * the future there (its in-flight reference went with the post), so only
 * its hazard record (common/hazard.c, ferry__loop_post_handoff) keeps the
 * loop's memory until it is done; ASan would see the use after free.
 *
 * Each iteration makes a loop (every other one never spins, so that it
 * sleeps and the workers take the eventfd write path, the longest window),
 * offloads 1 to 32 functions to a shared 2-thread pool, cancels some of
 * them at once, gives some a timeout of 0-20 us (the loop's resolver
 * racing the worker's handoff: the outcome slots of future.c), runs until
 * every done callback has run and frees the loop at once. Counted: each
 * done callback runs once (done, cancelled or timed out); each function
 * that ran produced a result that reached its destructor exactly once, as
 * the future's result or as a late one (checked after the pool is freed).
 *
 * The second test makes the window wide on purpose: linked with
 * --wrap=write, a worker's eventfd write (the wake-up of a sleeping loop)
 * sleeps 300 us after the real write, still inside the wake-up, so the
 * loop wakes, runs its callbacks and frees itself while the worker is
 * there. The test counts the frees that started while a worker was in
 * that window (they must have waited for its hazard record) and asserts
 * that there were some; ASan checks that none touched freed memory.
 *
 * FERRY_RACE_HANDOFF iterations (20000); FERRY_RACE_SECONDS: stress_races.h.
 */
#include <time.h>
#include <unistd.h>

#include "stress_races.h"

/* --wrap=write: slow the workers' eventfd writes while slow_writes is set;
 * in_window counts the writers inside the slowed part. */
static _Atomic int slow_writes, in_window;
static pthread_t main_thread;

ssize_t __real_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    ssize_t rc = __real_write(fd, buf, n);
    if (n == sizeof(uint64_t) && atomic_load(&slow_writes) &&
        !pthread_equal(pthread_self(), main_thread)) {
        atomic_fetch_add(&in_window, 1);
        nanosleep(&(struct timespec){.tv_nsec = 300000}, NULL);
        atomic_fetch_sub(&in_window, 1);
    }
    return rc;
}

enum { MAX_JOBS = 32 };

static _Atomic long ho_runs, ho_dtors;
static int ho_token;

struct ho_iter {
    ferry_loop *loop;
    int jobs, called, cancelled_seen, timed_out;
};

static int ho_fn(void *arg, void **result)
{
    (void)arg;
    atomic_fetch_add(&ho_runs, 1);
    *result = &ho_token;
    return 0;
}

static void ho_dtor(void *v)
{
    if (v == &ho_token)
        atomic_fetch_add(&ho_dtors, 1);
}

static void ho_done(ferry_future *f, void *arg)
{
    struct ho_iter *it = arg;
    it->cancelled_seen += ferry_future_cancelled(f);
    it->timed_out += ferry_future_result(f, NULL) == -ETIMEDOUT;
    ferry_future_unref(f);
    if (++it->called == it->jobs)
        ferry_loop_stop(it->loop);
}

static ferry_pool *ho_pool;
static long ho_totals[3]; /* offloads, cancelled, timed out */
static long ho_waited;    /* frees that began inside a slowed wake-up */

static bool handoff_one(long i)
{
    static unsigned seed = 4242;
    struct ferry_loop_opts o = {.spin_ns = i % 2 == 0 ? -1 : 0};
    struct ho_iter it = {.jobs = 1 + (int)(rnd(&seed) % MAX_JOBS)};
    assert_int_equal(ferry_loop_new(&it.loop, &o), 0);
    int cancels = 0;
    for (int k = 0; k < it.jobs; k++) {
        ferry_future *f;
        assert_int_equal(
            ferry_run_in_executor(it.loop, ho_pool, ho_fn, NULL, ho_dtor, &f),
            0);
        assert_int_equal(ferry_future_add_done_callback(f, ho_done, &it, NULL),
                         0);
        unsigned r = rnd(&seed) % 8;
        if (r == 0)
            cancels += ferry_future_cancel(f);
        else if (r == 1) /* a timeout racing the worker's handoff */
            assert_int_equal(ferry_future_timeout(f, rnd(&seed) % 20000), 0);
    }
    assert_int_equal(ferry_loop_run_forever(it.loop), 0);
    assert_int_equal(it.called, it.jobs);
    assert_int_equal(it.cancelled_seen, cancels);
    ho_totals[2] += it.timed_out;
    if (atomic_load(&in_window) > 0)
        ho_waited++; /* this free must wait for the worker's record */
    assert_int_equal(ferry_loop_free(it.loop), 0); /* at once */
    ho_totals[0] += it.jobs;
    ho_totals[1] += it.cancelled_seen;
    return true;
}

static void run_handoff(const char *name, long iterations)
{
    struct ferry_pool_opts po = {.threads = 2};
    main_thread = pthread_self();
    memset(ho_totals, 0, sizeof ho_totals);
    atomic_store(&ho_runs, 0);
    atomic_store(&ho_dtors, 0);
    assert_int_equal(ferry_pool_new(&ho_pool, &po), 0);
    time_boxed(name, iterations, handoff_one);
    assert_int_equal(ferry_pool_free(ho_pool), 0);
    long runs = atomic_load(&ho_runs), dtors = atomic_load(&ho_dtors);
    print_message("  offloads %ld, cancelled %ld, timed out %ld; fn ran %ld, "
                  "results disposed %ld; frees inside a wake-up %ld\n",
                  ho_totals[0], ho_totals[1], ho_totals[2], runs, dtors,
                  ho_waited);
    assert_int_equal(dtors, runs); /* every result, once */
    /* fn runs unless a cancel or timeout came before it started */
    assert_true(runs + ho_totals[1] + ho_totals[2] >= ho_totals[0]);
}

static void test_race_loop_free_vs_handoff_wakeup(void **state)
{
    (void)state;
    run_handoff("loop free vs handed-off completions",
                env_long("FERRY_RACE_HANDOFF", 20000));
    assert_true(ho_totals[1] > 0); /* some cancels */
    assert_true(ho_totals[2] > 0); /* and some timeouts won */
}

static void test_race_loop_free_waits_for_slow_wakeup(void **state)
{
    (void)state;
    ho_waited = 0;
    atomic_store(&slow_writes, 1);
    run_handoff("loop free vs slowed wake-ups", 400);
    atomic_store(&slow_writes, 0);
    assert_true(ho_waited > 0); /* the window was hit, and waited for */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_race_loop_free_vs_handoff_wakeup),
        cmocka_unit_test(test_race_loop_free_waits_for_slow_wakeup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
