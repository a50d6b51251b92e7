/*
 * tests/stress_races_promise.c: promises resolved by three threads at once
 * while their loop closes (or is freed) at a random point (issue 6
 * section 4): exactly one resolve wins per promise, each future ends
 * resolved with the winner's value, every value is disposed exactly once,
 * every done callback runs or is disposed once.
 *
 * FERRY_RACE_PROMISE iterations (10000); FERRY_RACE_SECONDS and the rest:
 * stress_races.h.
 */
#include "stress_races.h"

enum { PROMISES = 8, RESOLVERS = 3 };

struct promise_race {
    ferry_loop *loop;
    ferry_promise *p[PROMISES];
    ferry_future *f[PROMISES];
    _Atomic long made, disposed, wins, losses, other;
    _Atomic long cb_ran, cb_disposed;
};

static struct promise_race pm;
static _Atomic long pm_gen; /* iteration number: the resolvers live on */
static _Atomic int pm_finished;
static _Atomic int pm_quit;

static void pm_dispose(void *v)
{
    atomic_fetch_add(&pm.disposed, 1);
    free(v);
}

static void pm_cb(ferry_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&pm.cb_ran, 1);
}

static void pm_cb_disposed(void *arg)
{
    (void)arg;
    atomic_fetch_add(&pm.cb_disposed, 1);
}

static void *pm_resolver(void *arg)
{
    (void)arg;
    long seen = 0;
    for (;;) {
        long g;
        while ((g = atomic_load(&pm_gen)) == seen && !atomic_load(&pm_quit))
            sched_yield();
        if (g == seen)
            return NULL;
        seen = g;
        for (int i = 0; i < PROMISES; i++) {
            int *v = malloc(sizeof *v);
            *v = i;
            atomic_fetch_add(&pm.made, 1);
            int rc = ferry_promise_resolve(pm.p[i], v);
            atomic_fetch_add(rc == 0           ? &pm.wins
                             : rc == -EALREADY ? &pm.losses
                                               : &pm.other,
                             1);
            ferry_promise_unref(pm.p[i]);
        }
        atomic_fetch_add(&pm_finished, 1);
    }
}

static long pm_totals[3]; /* resolved on the loop, in the close, after */

static bool promise_one(long it)
{
    static unsigned seed = 4242;
    memset((void *)&pm, 0, sizeof pm);
    assert_int_equal(ferry_loop_new(&pm.loop, NULL), 0);
    for (int i = 0; i < PROMISES; i++) {
        assert_int_equal(
            ferry_promise_new(pm.loop, pm_dispose, &pm.p[i], &pm.f[i]), 0);
        assert_int_equal(ferry_future_add_done_callback(pm.f[i], pm_cb, NULL,
                                                        pm_cb_disposed),
                         0);
        for (int r = 1; r < RESOLVERS; r++)
            ferry_promise_ref(pm.p[i]); /* one reference per resolver */
    }
    atomic_store(&pm_finished, 0);
    atomic_store(&pm_gen, it + 1); /* go */
    unsigned runs = rnd(&seed) % 3;
    for (unsigned i = 0; i < runs; i++)
        assert_int_equal(ferry_loop_run_once(pm.loop, 0), 0);
    race_point(&seed, &pm.made, PROMISES * RESOLVERS);
    long before = atomic_load(&pm.cb_ran);
    bool free_it = it % 2 == 1;
    if (free_it) /* the futures' references keep the memory */
        assert_int_equal(ferry_loop_free(pm.loop), 0);
    else
        assert_int_equal(ferry_loop_close(pm.loop), 0);
    while (atomic_load(&pm_finished) < RESOLVERS)
        sched_yield();
    assert_int_equal(atomic_load(&pm.other), 0);
    assert_int_equal(atomic_load(&pm.wins), PROMISES);
    assert_int_equal(atomic_load(&pm.losses), PROMISES * (RESOLVERS - 1));
    /* Every future ended resolved with its winner's value. */
    long bad = 0;
    for (int i = 0; i < PROMISES; i++) {
        void *v = NULL;
        bad += ferry_future_result(pm.f[i], &v) != 0 || v == NULL ||
               *(int *)v != i;
        ferry_future_unref(pm.f[i]);
    }
    assert_int_equal(bad, 0);
    if (!free_it)
        assert_int_equal(ferry_loop_free(pm.loop), 0);
    /* Every value disposed once (losers at once, winners at the last
     * unref); every done callback ran or was disposed once. */
    assert_int_equal(atomic_load(&pm.disposed), atomic_load(&pm.made));
    assert_int_equal(atomic_load(&pm.cb_ran) + atomic_load(&pm.cb_disposed),
                     PROMISES);
    pm_totals[0] += before;
    pm_totals[1] += atomic_load(&pm.cb_disposed);
    return true;
}

static void test_race_promise_resolve_vs_loop_close(void **state)
{
    (void)state;
    pthread_t t[RESOLVERS];
    for (int r = 0; r < RESOLVERS; r++)
        t[r] = spawn(pm_resolver, NULL);
    time_boxed("promises resolved by 3 threads vs loop close/free",
               env_long("FERRY_RACE_PROMISE", 10000), promise_one);
    atomic_store(&pm_quit, 1);
    for (int r = 0; r < RESOLVERS; r++)
        pthread_join(t[r], NULL);
    print_message("  done callbacks: %ld ran before the close, %ld disposed "
                  "by it\n",
                  pm_totals[0], pm_totals[1]);
    assert_true(pm_totals[1] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_race_promise_resolve_vs_loop_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
