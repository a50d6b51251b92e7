/*
 * tests/stress_races_default.c: the default pool's shutdown by one loop
 * against another loop offloading to it (S16).
 *
 * A user thread runs its own loop with 8 offloads in flight on the default
 * pool (pool = NULL), each done callback checking its result and
 * submitting the next. The test thread, in each iteration, makes a loop,
 * offloads once (so a default pool exists), strikes at a random point with
 * ferry_loop_shutdown_default_executor and frees the loop. The user loop
 * must never see an error: every offload is accepted (by the pool being
 * shut down, which drains it, or by the fresh one that replaces it) and
 * resolves with its own value. Under ASan this is also the check that no
 * loop submits into a pool another loop has freed (the holder's reference,
 * bridge/default_pool.c).
 *
 * FERRY_RACE_DEFAULT iterations (300); FERRY_RACE_SECONDS as the others.
 */
#include "stress_races.h"

enum { DP_WINDOW = 8 };

struct dp_user;

struct dp_job {
    struct dp_user *u;
    uintptr_t seq; /* the offloaded fn returns seq * 2 + 1 */
};

struct dp_user {
    ferry_loop *loop;
    _Atomic bool stop;
    _Atomic long done; /* offloads resolved with their own value */
    _Atomic long errors;
    uintptr_t submitted; /* user thread only */
    long inflight;       /* user thread only */
    struct dp_job jobs[DP_WINDOW];
    pthread_t thread;
};

static int dp_fn(void *arg, void **result)
{
    *result = (void *)((uintptr_t)arg * 2 + 1);
    return 0;
}

static void dp_submit(struct dp_job *j);

static void dp_done(ferry_future *f, void *arg)
{
    struct dp_job *j = arg;
    struct dp_user *u = j->u;
    void *v = NULL;
    int rc = ferry_future_result(f, &v);
    bool mine = ferry_future_loop(f) == u->loop;
    ferry_future_unref(f);
    u->inflight--;
    if (rc == 0 && mine && (uintptr_t)v == j->seq * 2 + 1)
        atomic_fetch_add(&u->done, 1);
    else
        atomic_fetch_add(&u->errors, 1);
    if (!atomic_load(&u->stop))
        dp_submit(j);
    if (u->inflight == 0)
        ferry_loop_stop(u->loop);
}

static void dp_submit(struct dp_job *j)
{
    struct dp_user *u = j->u;
    ferry_future *f;
    j->seq = u->submitted++;
    int rc =
        ferry_run_in_executor(u->loop, NULL, dp_fn, (void *)j->seq, NULL, &f);
    if (rc == 0)
        rc = ferry_future_add_done_callback(f, dp_done, j, NULL);
    if (rc != 0) {
        atomic_fetch_add(&u->errors, 1);
        return;
    }
    u->inflight++;
}

static void dp_start(void *arg)
{
    struct dp_user *u = arg;
    for (int i = 0; i < DP_WINDOW; i++) {
        u->jobs[i].u = u;
        dp_submit(&u->jobs[i]);
    }
    if (u->inflight == 0)
        ferry_loop_stop(u->loop);
}

static void *dp_user_main(void *arg)
{
    struct dp_user *u = arg;
    if (ferry_loop_new(&u->loop, NULL) != 0 ||
        ferry_call_soon(u->loop, dp_start, u, NULL, NULL) != 0 ||
        ferry_loop_run_forever(u->loop) != 0)
        atomic_fetch_add(&u->errors, 1);
    if (u->loop != NULL)
        ferry_loop_free(u->loop); /* drops its cached default pool */
    return NULL;
}

static int dp_once(void *arg, void **result)
{
    (void)arg;
    *result = NULL;
    return 0;
}

static struct dp_user user;
static unsigned dp_seed = 0x2545f491u;

static bool dp_one(long i)
{
    (void)i;
    ferry_loop *loop;
    ferry_future *f;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    assert_int_equal(ferry_run_in_executor(loop, NULL, dp_once, NULL, NULL, &f),
                     0);
    assert_int_equal(ferry_loop_run_until_complete(loop, f, NULL), 0);
    ferry_future_unref(f);
    long before = atomic_load(&user.done);
    race_point(&dp_seed, &user.done, before + 64);
    assert_int_equal(ferry_loop_shutdown_default_executor(loop, -1), 0);
    assert_int_equal(ferry_loop_free(loop), 0);
    return atomic_load(&user.errors) == 0;
}

static void test_S16_default_pool_shutdown_vs_other_loop(void **state)
{
    (void)state;
    assert_int_equal(pthread_create(&user.thread, NULL, dp_user_main, &user),
                     0);
    long n = time_boxed("default pool shutdown vs another loop's offloads",
                        env_long("FERRY_RACE_DEFAULT", 300), dp_one);
    atomic_store(&user.stop, true);
    pthread_join(user.thread, NULL);
    print_message("  user loop: %ld offloads resolved across %ld shutdowns\n",
                  atomic_load(&user.done), n);
    assert_int_equal(atomic_load(&user.errors), 0);
    assert_true(atomic_load(&user.done) >= DP_WINDOW);
    /* The last default pool: shut it down so that nothing is left. */
    ferry_loop *loop;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    assert_int_equal(ferry_loop_shutdown_default_executor(loop, -1), 0);
    assert_int_equal(ferry_loop_free(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_S16_default_pool_shutdown_vs_other_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
