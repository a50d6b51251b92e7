/*
 * tests/stress_races_wait.c: ferry_future_wait with a short timeout while
 * another thread completes the future, free-standing or bound to a loop
 * (issue 6 section 4): 0 means done with the result readable; -ETIMEDOUT
 * means the result is readable once the completer is done.
 *
 * FERRY_RACE_WAIT iterations (4000); FERRY_RACE_SECONDS and the rest:
 * stress_races.h.
 */
#include "stress_races.h"

struct wait_race {
    ferry_future *f;
    _Atomic int go;
    uint64_t timeout_ns;
    unsigned delay; /* spins before completing */
    int rc;         /* the waiter's */
    bool done_at_return;
    int result_rc;
    void *result;
};

static int wr_value;

static void *wr_waiter(void *arg)
{
    struct wait_race *w = arg;
    while (!atomic_load(&w->go))
        ;
    w->rc = ferry_future_wait(w->f, (int64_t)w->timeout_ns);
    w->done_at_return = ferry_future_done(w->f);
    w->result_rc = ferry_future_result(w->f, &w->result);
    return NULL;
}

static void *wr_completer(void *arg)
{
    struct wait_race *w = arg;
    while (!atomic_load(&w->go))
        ;
    spin(w->delay);
    if (ferry_future_set_result_threadsafe(w->f, &wr_value, NULL) != 0)
        abort();
    return NULL;
}

static long wr_totals[2]; /* returned 0, timed out */

static ferry_loop *wr_loop; /* bound futures' loop, made on first use */

static bool wait_one(long it)
{
    static unsigned seed = 99;
    ferry_loop *loop;
    bool bound = it % 2 == 1;
    struct wait_race w = {0};
    if (bound) {
        if (wr_loop == NULL)
            assert_int_equal(ferry_loop_new(&wr_loop, NULL), 0);
        loop = wr_loop;
        assert_int_equal(ferry_future_new(loop, &w.f), 0);
    } else {
        assert_int_equal(ferry_future_new(NULL, &w.f), 0);
    }
    w.timeout_ns = rnd(&seed) % 30000;
    w.delay = rnd(&seed) % 30000;
    pthread_t a = spawn(wr_waiter, &w), b = spawn(wr_completer, &w);
    atomic_store(&w.go, 1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    if (w.rc == 0) {
        /* 0: done, and the result is there */
        assert_true(w.done_at_return);
        assert_int_equal(w.result_rc, 0);
        assert_ptr_equal(w.result, &wr_value);
        wr_totals[0]++;
    } else {
        /* -ETIMEDOUT: the later result is readable */
        assert_int_equal(w.rc, -ETIMEDOUT);
        void *v = NULL;
        assert_int_equal(ferry_future_result(w.f, &v), 0);
        assert_ptr_equal(v, &wr_value);
        wr_totals[1]++;
    }
    if (bound) /* the completion's post */
        assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    ferry_future_unref(w.f);
    return true;
}

static void test_race_wait_timeout_vs_completion(void **state)
{
    (void)state;
    time_boxed("future_wait timeout vs completion",
               env_long("FERRY_RACE_WAIT", 4000), wait_one);
    if (wr_loop != NULL)
        assert_int_equal(ferry_loop_free(wr_loop), 0);
    print_message("  waits: %ld returned 0 (done), %ld timed out (result "
                  "read later)\n",
                  wr_totals[0], wr_totals[1]);
    assert_true(wr_totals[0] > 0 && wr_totals[1] > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_race_wait_timeout_vs_completion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
