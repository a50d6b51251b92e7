/*
 * tests/test_bridge_defer.c: offloads made from a loop callback reach the
 * pool at the end of the loop's pass, in one push (executor/defer.c), and
 * behave as if submitted at once: a shutdown made after them on the same
 * thread finds them queued, a cancel before the pass ends means they
 * never run; a pool shut down or freed by another thread before the pass
 * ends fails them with -ESHUTDOWN (or, for the default pool, hands them
 * to a fresh one), without waiting for the pass, and nothing leaks or
 * touches freed memory.
 */
#include <string.h>

#include "bridge/internal.h"
#include "bridge_util.h"

enum { N = FERRY__DEFER_MAX / 2 }; /* one chain holds them all */

struct pass {
    ferry_loop *loop;
    ferry_pool *pool;
    ferry_pool *pool2;
    ferry_future *f[2 * FERRY__DEFER_MAX];
    int n;
    _Atomic int ran;
    int rc;
    /* the other thread's side: offload_then_other runs other_main on it
     * mid-pass, then offloads `again` more */
    void *(*other_main)(void *arg);
    int again;
    pthread_t other;
    int other_rc;
    _Atomic bool other_done;
};

static int count_run(void *arg, void **result)
{
    struct pass *p = arg;
    atomic_fetch_add(&p->ran, 1);
    *result = (void *)(uintptr_t)7;
    return 0;
}

static void offload_n(struct pass *p, int n)
{
    for (int i = 0; i < n; i++) {
        int rc = ferry_run_in_executor(p->loop, p->pool, count_run, p, NULL,
                                       &p->f[p->n]);
        if (rc != 0) {
            p->rc = rc;
            return;
        }
        p->n++;
    }
}

/* Offload N, let another thread run p->other_main while this callback
 * waits for it, then offload p->again more, all in one pass. */
static void offload_then_other(void *arg)
{
    struct pass *p = arg;
    offload_n(p, N);
    if (pthread_create(&p->other, NULL, p->other_main, p) != 0)
        abort();
    pthread_join(p->other, NULL);
    offload_n(p, p->again);
}

static void run_pass(struct pass *p, ferry_cb *cb)
{
    assert_int_equal(ferry_loop_new(&p->loop, NULL), 0);
    assert_int_equal(ferry_call_soon(p->loop, cb, p, NULL, NULL), 0);
    assert_int_equal(ferry_loop_run_once(p->loop, 0), 0);
}

/* Run the loop until each future is done; each must end with want. */
static void wait_all(struct pass *p, int want)
{
    for (int i = 0; i < p->n; i++)
        assert_int_equal(ferry_loop_run_until_complete(p->loop, p->f[i], NULL),
                         want);
}

static void finish(struct pass *p)
{
    for (int i = 0; i < p->n; i++)
        ferry_future_unref(p->f[i]);
    assert_int_equal(ferry_loop_free(p->loop), 0);
}

/* Offload, then shut the pool down (draining) in the same callback. */
static void offload_then_shutdown(void *arg)
{
    struct pass *p = arg;
    offload_n(p, N);
    p->other_rc = ferry_pool_shutdown(p->pool, FERRY_DRAIN, -1, NULL);
}

static void test_defer_shutdown_on_same_thread_drains_them(void **state)
{
    (void)state;
    struct pass p = {.pool = new_pool(2)};
    run_pass(&p, offload_then_shutdown);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.other_rc, 0);
    /* The shutdown returned with every worker gone: all had run. */
    assert_int_equal(atomic_load(&p.ran), N);
    wait_all(&p, 0);
    for (int i = 0; i < p.n; i++) {
        void *v = NULL;
        assert_int_equal(ferry_future_result(p.f[i], &v), 0);
        assert_ptr_equal(v, (void *)(uintptr_t)7);
    }
    finish(&p);
    assert_int_equal(ferry_pool_free(p.pool), 0);
}

static void offload_all(void *arg)
{
    offload_n(arg, N);
}

/* The stats count deferred offloads once the pass has handed them over. */
static void test_defer_stats_count_them_after_the_pass(void **state)
{
    (void)state;
    struct pass p = {.pool = new_pool(2)};
    run_pass(&p, offload_all);
    assert_int_equal(p.rc, 0);
    struct ferry_pool_stats st;
    assert_int_equal(ferry_pool_stats(p.pool, &st), 0);
    assert_int_equal(st.submitted, N);
    wait_all(&p, 0);
    assert_int_equal(ferry_pool_free(p.pool), 0);
    assert_int_equal(atomic_load(&p.ran), N);
    finish(&p);
}

static void *shutdown_main(void *arg)
{
    struct pass *p = arg;
    p->other_rc = ferry_pool_shutdown(p->pool, FERRY_DRAIN, -1, NULL);
    atomic_store(&p->other_done, true);
    return NULL;
}

static void test_defer_pool_shut_down_by_other_thread_fails_them(void **state)
{
    (void)state;
    /* Another thread shuts the pool down before the pass ends: the chain
     * is refused, the futures fail with -ESHUTDOWN. */
    struct pass p = {.pool = new_pool(2), .other_main = shutdown_main};
    run_pass(&p, offload_then_other);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.other_rc, 0);
    wait_all(&p, -ESHUTDOWN);
    assert_int_equal(atomic_load(&p.ran), 0);
    finish(&p);
    assert_int_equal(ferry_pool_free(p.pool), 0);
}

static void *free_main(void *arg)
{
    struct pass *p = arg;
    p->other_rc = ferry_pool_free(p->pool);
    atomic_store(&p->other_done, true);
    return NULL;
}

static void test_defer_pool_freed_by_other_thread_mid_pass(void **state)
{
    (void)state;
    /* Another thread frees the pool while this callback waits for it: the
     * free must not wait for the pass (it would never end), and the chain,
     * refused at the end of the pass, must not touch freed memory (the
     * chain's reference keeps it). */
    struct pass p = {.pool = new_pool(2), .other_main = free_main};
    run_pass(&p, offload_then_other);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.other_rc, 0);
    assert_true(atomic_load(&p.other_done));
    wait_all(&p, -ESHUTDOWN);
    assert_int_equal(atomic_load(&p.ran), 0);
    finish(&p);
}

/* Offload, then cancel every other future in the same callback, while
 * their tasks wait in the chain: those never run (S18). */
static void offload_then_cancel_half(void *arg)
{
    struct pass *p = arg;
    offload_n(p, N);
    for (int i = 0; i < p->n; i += 2)
        if (!ferry_future_cancel(p->f[i]))
            p->rc = -1;
}

static void test_S18_cancel_while_deferred_never_runs(void **state)
{
    (void)state;
    struct pass p = {.pool = new_pool(2)};
    run_pass(&p, offload_then_cancel_half);
    assert_int_equal(p.rc, 0);
    for (int i = 0; i < p.n; i++)
        assert_int_equal(ferry_loop_run_until_complete(p.loop, p.f[i], NULL),
                         i % 2 == 0 ? -ECANCELED : 0);
    assert_int_equal(ferry_pool_free(p.pool), 0);
    assert_int_equal(atomic_load(&p.ran), N / 2);
    finish(&p);
}

/* Offload to the default pool, then shut it down from the same callback:
 * the shutdown drains them (S16). */
static void offload_default_then_shut_it(void *arg)
{
    struct pass *p = arg;
    offload_n(p, N);
    p->other_rc = ferry_loop_shutdown_default_executor(p->loop, -1);
}

static void
test_S16_shutdown_default_executor_after_deferred_offloads(void **state)
{
    (void)state;
    struct pass p = {.pool = NULL};
    run_pass(&p, offload_default_then_shut_it);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.other_rc, 0);
    assert_int_equal(atomic_load(&p.ran), N);
    wait_all(&p, 0);
    finish(&p);
}

/* The default pool, shut down by another loop's thread before the pass
 * ends: the offloads go to a fresh default pool (S16), as a submit made
 * after the shutdown would. Two tests: the loop offloads again (and so lets
 * go of the old pool) before the pass ends, or the pass ends first. */
static void *shutdown_default_main(void *arg)
{
    struct pass *p = arg;
    ferry_loop *other;
    p->other_rc = ferry_loop_new(&other, NULL);
    if (p->other_rc == 0) {
        p->other_rc = ferry_loop_shutdown_default_executor(other, -1);
        ferry_loop_free(other);
    }
    return NULL;
}

static void
test_S16_default_pool_shut_down_mid_pass_takes_a_fresh_one(void **state)
{
    (void)state;
    /* The loop offloads again after the shutdown: it takes a fresh default
     * pool and lets go of the old one, which first gets (and refuses) the
     * chain held for it. */
    struct pass p = {.other_main = shutdown_default_main, .again = N};
    run_pass(&p, offload_then_other);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.other_rc, 0);
    wait_all(&p, 0);
    assert_int_equal(p.n, 2 * N);
    assert_int_equal(atomic_load(&p.ran), 2 * N);
    assert_int_equal(ferry_loop_shutdown_default_executor(p.loop, -1), 0);
    finish(&p);
}

static void test_S16_default_pool_shut_down_then_pass_ends(void **state)
{
    (void)state;
    /* The chain is refused at the end of the pass, and its offloads go to
     * a fresh default pool. */
    struct pass p = {.other_main = shutdown_default_main};
    run_pass(&p, offload_then_other);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.other_rc, 0);
    wait_all(&p, 0);
    assert_int_equal(atomic_load(&p.ran), N);
    assert_int_equal(ferry_loop_shutdown_default_executor(p.loop, -1), 0);
    finish(&p);
}

/* A task for a second pool in the same pass goes at once; both run. */
static void offload_to_two_pools(void *arg)
{
    struct pass *p = arg;
    offload_n(p, N / 2);
    ferry_pool *first = p->pool;
    p->pool = p->pool2;
    offload_n(p, N / 2);
    p->pool = first;
    /* The first pool's wait for the end of the pass, the second's went. */
    struct ferry_pool_stats a, b;
    if (ferry_pool_stats(first, &a) != 0 || ferry_pool_stats(p->pool2, &b) ||
        a.submitted != 0 || b.submitted != N / 2)
        p->rc = -1;
}

static void test_defer_second_pool_in_a_pass(void **state)
{
    (void)state;
    struct pass p = {.pool = new_pool(1), .pool2 = new_pool(1)};
    run_pass(&p, offload_to_two_pools);
    assert_int_equal(p.rc, 0);
    wait_all(&p, 0);
    assert_int_equal(p.n, N);
    assert_int_equal(atomic_load(&p.ran), N);
    finish(&p);
    assert_int_equal(ferry_pool_free(p.pool), 0);
    assert_int_equal(ferry_pool_free(p.pool2), 0);
}

/* A chain that reaches FERRY__DEFER_MAX tasks goes to the pool at once:
 * the workers start on a long callback's offloads before it returns. */
static void offload_a_full_chain_then_wait(void *arg)
{
    struct pass *p = arg;
    offload_n(p, FERRY__DEFER_MAX);
    for (int i = 0; i < 2000 && atomic_load(&p->ran) == 0; i++)
        sleep_ns(1000000); /* up to 2 s: the tasks are queued already */
    p->other_rc = atomic_load(&p->ran) > 0 ? 0 : -1;
}

static void test_defer_full_chain_goes_at_once(void **state)
{
    (void)state;
    static struct pass p;
    p.pool = new_pool(2);
    run_pass(&p, offload_a_full_chain_then_wait);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.other_rc, 0);
    wait_all(&p, 0);
    assert_int_equal(atomic_load(&p.ran), FERRY__DEFER_MAX);
    finish(&p);
    assert_int_equal(ferry_pool_free(p.pool), 0);
}

/* More offloads in flight than the loop keeps prefetch hints for
 * (FERRY__EXPECT): the hints are dropped oldest first, every future
 * still resolves. */
enum { MANY = FERRY__EXPECT + FERRY__EXPECT / 2 };

struct many {
    ferry_loop *loop;
    ferry_pool *pool;
    ferry_future *f[MANY];
    int rc;
};

static void offload_many(void *arg)
{
    struct many *m = arg;
    for (int i = 0; i < MANY && m->rc == 0; i++)
        m->rc = ferry_run_in_executor(m->loop, m->pool, add_one,
                                      (void *)(uintptr_t)i, NULL, &m->f[i]);
}

static void test_defer_more_in_flight_than_hints(void **state)
{
    (void)state;
    static struct many m;
    m.pool = new_pool(2);
    assert_int_equal(ferry_loop_new(&m.loop, NULL), 0);
    assert_int_equal(ferry_call_soon(m.loop, offload_many, &m, NULL, NULL), 0);
    assert_int_equal(ferry_loop_run_once(m.loop, 0), 0);
    assert_int_equal(m.rc, 0);
    for (int i = 0; i < MANY; i++) {
        void *v = NULL;
        assert_int_equal(ferry_loop_run_until_complete(m.loop, m.f[i], &v), 0);
        assert_ptr_equal(v, (void *)(uintptr_t)(i + 1));
        ferry_future_unref(m.f[i]);
    }
    assert_int_equal(ferry_loop_free(m.loop), 0);
    assert_int_equal(ferry_pool_free(m.pool), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defer_shutdown_on_same_thread_drains_them),
        cmocka_unit_test(test_defer_stats_count_them_after_the_pass),
        cmocka_unit_test(test_defer_pool_shut_down_by_other_thread_fails_them),
        cmocka_unit_test(test_defer_pool_freed_by_other_thread_mid_pass),
        cmocka_unit_test(test_S18_cancel_while_deferred_never_runs),
        cmocka_unit_test(
            test_S16_shutdown_default_executor_after_deferred_offloads),
        cmocka_unit_test(
            test_S16_default_pool_shut_down_mid_pass_takes_a_fresh_one),
        cmocka_unit_test(test_S16_default_pool_shut_down_then_pass_ends),
        cmocka_unit_test(test_defer_second_pool_in_a_pass),
        cmocka_unit_test(test_defer_full_chain_goes_at_once),
        cmocka_unit_test(test_defer_more_in_flight_than_hints),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
