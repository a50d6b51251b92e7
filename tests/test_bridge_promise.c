/*
 * tests/test_bridge_promise.c: the bridge's adapters for other threads and
 * other libraries: a legacy callback API turned into a future through a
 * promise (S5), ferry_run_threadsafe with a bounded wait, a cancel and a
 * closed loop (S6), promises and their thunks completing exactly once
 * (S19), and ferry_future_wrap / ferry_future_then. run_in_executor is in
 * test_bridge.c.
 *
 * Times from the seeds are scaled down (1 s -> 5-50 ms). Helper threads
 * record into atomics or plain fields read after join; only the test
 * thread asserts.
 */
#include "bridge_util.h"

/* ---- S5: a legacy callback API turned into a future ---- */

struct legacy {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int value;
    void (*cb)(void *ctx, int status, void *data);
    void *ctx;
    bool has_request, quit;
};

/* The "legacy library": its own thread consumes one request and calls back
 * with value*value after a delay. */
static void *legacy_thread(void *arg)
{
    struct legacy *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->quit) {
        if (!l->has_request) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        l->has_request = false;
        int v = l->value;
        pthread_mutex_unlock(&l->mu);
        sleep_ns(50000000);
        int *sq = malloc(sizeof *sq);
        *sq = v * v;
        l->cb(l->ctx, 0, sq);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void legacy_request(struct legacy *l, int value,
                           void (*cb)(void *, int, void *), void *ctx)
{
    pthread_mutex_lock(&l->mu);
    l->value = value;
    l->cb = cb;
    l->ctx = ctx;
    l->has_request = true;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void test_S5_legacy_callback_adapter(void **state)
{
    (void)state;
    ferry_loop *loop;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    struct legacy l = {.mu = PTHREAD_MUTEX_INITIALIZER,
                       .cv = PTHREAD_COND_INITIALIZER};
    pthread_t lt = spawn(legacy_thread, &l);
    ferry_promise *p;
    ferry_future *f;
    assert_int_equal(ferry_promise_new(loop, free, &p, &f), 0);
    legacy_request(&l, 5, ferry_promise_cb_status_data, p);
    struct ticker t = {.loop = loop, .period = 5000000};
    ferry_call_later(loop, 5000000, tick, &t, NULL, NULL);
    void *v;
    assert_int_equal(ferry_loop_run_until_complete(loop, f, &v), 0);
    assert_int_equal(*(int *)v, 25);
    assert_true(t.ticks >= 3); /* the loop kept running meanwhile */
    pthread_mutex_lock(&l.mu);
    l.quit = true;
    pthread_cond_signal(&l.cv);
    pthread_mutex_unlock(&l.mu);
    pthread_join(lt, NULL);
    ferry_promise_unref(p);
    ferry_future_unref(f); /* frees the int through dispose */
    assert_int_equal(ferry_loop_free(loop), 0);
}

/* ---- S6: run on the loop from a foreign thread, wait with timeout ---- */

static _Atomic int slow_runs;
static _Atomic int discarded;

static int slow_on_loop(void *arg, void **result)
{
    (void)arg;
    atomic_fetch_add(&slow_runs, 1);
    sleep_ns(30000000);
    *result = malloc(8);
    return 0;
}

static void count_discard(void *p)
{
    atomic_fetch_add(&discarded, 1);
    free(p);
}

struct s6 {
    ferry_loop *loop;
    int rc_fast, rc_wait, rc_timeout;
    uintptr_t fast_value;
    bool cancelled;
};

static void *s6_thread(void *arg)
{
    struct s6 *s = arg;
    ferry_future *f;
    s->rc_fast = ferry_run_threadsafe(s->loop, add_one, (void *)41, NULL, &f);
    if (s->rc_fast == 0) {
        s->rc_wait = ferry_future_wait(f, 5000000000);
        void *v = NULL;
        ferry_future_result(f, &v);
        s->fast_value = (uintptr_t)v;
        ferry_future_unref(f);
    }
    /* my_thread of seed 003: submit, wait 5 ms, give up, cancel. */
    ferry_run_threadsafe(s->loop, slow_on_loop, NULL, count_discard, &f);
    s->rc_timeout = ferry_future_wait(f, 5000000);
    s->cancelled = ferry_future_cancel(f);
    ferry_future_unref(f);
    ferry_loop_stop(s->loop);
    return NULL;
}

static void block_loop(void *arg)
{
    (void)arg;
    sleep_ns(20000000); /* keeps the loop busy past the waiter's timeout */
}

static void test_S6_run_threadsafe_wait_timeout_cancel(void **state)
{
    (void)state;
    struct s6 s = {0};
    atomic_store(&slow_runs, 0);
    atomic_store(&discarded, 0);
    assert_int_equal(ferry_loop_new(&s.loop, NULL), 0);
    ferry_call_later(s.loop, 1000000, block_loop, NULL, NULL, NULL);
    pthread_t t = spawn(s6_thread, &s);
    assert_int_equal(ferry_loop_run_forever(s.loop), 0);
    pthread_join(t, NULL);
    int64_t wait_ns;
    while (ferry_loop_timeout(s.loop, &wait_ns) == 0 && wait_ns == 0)
        ferry_loop_run_once(s.loop, 0);
    assert_int_equal(s.rc_fast, 0);
    assert_int_equal(s.rc_wait, 0);
    assert_int_equal(s.fast_value, 42);
    assert_int_equal(s.rc_timeout, -ETIMEDOUT);
    assert_true(s.cancelled);
    /* Either it never ran, or it ran and its result was discarded. */
    assert_int_equal(atomic_load(&slow_runs), atomic_load(&discarded));
    /* On the loop's own thread a wait would deadlock. */
    ferry_future *f;
    assert_int_equal(ferry_run_threadsafe(s.loop, add_one, NULL, NULL, &f), 0);
    assert_int_equal(ferry_future_wait(f, -1), -EDEADLK);
    assert_int_equal(ferry_loop_run_once(s.loop, 0), 0);
    assert_int_equal(ferry_future_wait(f, -1), 0);
    ferry_future_unref(f);
    assert_int_equal(ferry_loop_free(s.loop), 0);
}

static void test_S6_run_threadsafe_on_closed_loop(void **state)
{
    (void)state;
    ferry_loop *loop;
    ferry_future *f;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    assert_int_equal(ferry_run_threadsafe(loop, add_one, NULL, NULL, &f), 0);
    ferry_loop_ref(loop);
    assert_int_equal(ferry_loop_free(loop), 0); /* drops the request */
    assert_int_equal(ferry_future_result(f, NULL), -ESHUTDOWN);
    assert_int_equal(ferry_run_threadsafe(loop, add_one, NULL, NULL, &f),
                     -ESHUTDOWN);
    ferry_future_unref(f);
    ferry_loop_unref(loop);
}

/* ---- S19: adapters complete exactly once ---- */

static _Atomic int disposed_values;

static void dispose_value(void *p)
{
    atomic_fetch_add(&disposed_values, 1);
    free(p);
}

static void *resolve_from_thread(void *arg)
{
    ferry_promise_resolve(arg, malloc(4));
    return NULL;
}

static void test_S19_promise_exactly_once(void **state)
{
    (void)state;
    ferry_loop *loop;
    ferry_promise *p;
    ferry_future *f;
    atomic_store(&disposed_values, 0);
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    assert_int_equal(ferry_promise_new(loop, dispose_value, &p, &f), 0);
    /* Inside the initiating call, on the loop thread: later iteration. */
    assert_int_equal(ferry_promise_resolve(p, malloc(4)), 0);
    assert_false(ferry_future_done(f));
    assert_int_equal(ferry_promise_resolve(p, malloc(4)), -EALREADY);
    assert_int_equal(ferry_promise_reject(p, -EIO), -EALREADY);
    assert_int_equal(atomic_load(&disposed_values), 1); /* second payload */
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_true(ferry_future_done(f));
    assert_int_equal(ferry_future_result(f, NULL), 0);
    ferry_promise_unref(p);
    ferry_future_unref(f);
    assert_int_equal(atomic_load(&disposed_values), 2); /* the result */

    /* Completion after the consumer cancelled: disposed, nothing else. */
    assert_int_equal(ferry_promise_new(loop, dispose_value, &p, &f), 0);
    assert_true(ferry_future_cancel(f));
    pthread_join(spawn(resolve_from_thread, p), NULL);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(atomic_load(&disposed_values), 3);
    assert_int_equal(ferry_future_result(f, NULL), -ECANCELED);
    ferry_future_unref(f);
    ferry_promise_unref(p);

    /* Completion after the consumer released the future: safe. */
    assert_int_equal(ferry_promise_new(loop, dispose_value, &p, &f), 0);
    ferry_future_unref(f);
    pthread_join(spawn(resolve_from_thread, p), NULL);
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    ferry_promise_unref(p);
    assert_int_equal(atomic_load(&disposed_values), 4);

    /* Never completed: bounded by ferry_future_timeout. */
    assert_int_equal(ferry_promise_new(loop, dispose_value, &p, &f), 0);
    assert_int_equal(ferry_future_timeout(f, 5000000), 0);
    assert_int_equal(ferry_loop_run_until_complete(loop, f, NULL), -ETIMEDOUT);
    assert_int_equal(ferry_promise_reject(p, -EIO), 0); /* late: ignored */
    assert_int_equal(ferry_loop_run_once(loop, 0), 0);
    assert_int_equal(ferry_future_result(f, NULL), -ETIMEDOUT);
    ferry_future_unref(f);
    ferry_promise_unref(p);
    assert_int_equal(ferry_loop_free(loop), 0);
}

FERRY_PROMISE_THUNK(on_sdk_reply, (const char *name, long code, void *user),
                    user, (int)code, (void *)name)

static void test_S19_thunks_and_macro(void **state)
{
    (void)state;
    ferry_loop *loop;
    ferry_promise *p;
    ferry_future *f;
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    assert_int_equal(ferry_promise_new(loop, NULL, &p, &f), 0);
    ferry_promise_cb_status(p, -ENOENT);
    assert_int_equal(ferry_loop_run_until_complete(loop, f, NULL), -ENOENT);
    ferry_promise_unref(p);
    ferry_future_unref(f);

    assert_int_equal(ferry_promise_new(loop, NULL, &p, &f), 0);
    ferry_promise_cb_status_data_ctx(0, (void *)"data", p);
    void *v;
    assert_int_equal(ferry_loop_run_until_complete(loop, f, &v), 0);
    assert_string_equal(v, "data");
    ferry_promise_unref(p);
    ferry_future_unref(f);

    assert_int_equal(ferry_promise_new(loop, NULL, &p, &f), 0);
    on_sdk_reply("alice", 0, p);
    on_sdk_reply("bob", 0, p); /* twice: ignored */
    assert_int_equal(ferry_loop_run_until_complete(loop, f, &v), 0);
    assert_string_equal(v, "alice");
    ferry_promise_unref(p);
    ferry_future_unref(f);

    assert_int_equal(ferry_promise_new(loop, NULL, &p, &f), 0);
    assert_int_equal(ferry_promise_reject(p, -ECANCELED), 0);
    assert_int_equal(ferry_loop_run_until_complete(loop, f, NULL), -ECANCELED);
    assert_true(ferry_future_cancelled(f));
    ferry_promise_unref(p);
    ferry_future_unref(f);
    assert_int_equal(ferry_loop_free(loop), 0);
}

/* ---- wrap and then ---- */

static int double_it(ferry_future *prev, void *arg, void **result)
{
    (void)arg;
    void *v;
    int rc = ferry_future_result(prev, &v);
    if (rc < 0)
        return rc;
    *result = (void *)((uintptr_t)v * 2);
    return 0;
}

static void test_bridge_wrap_and_then(void **state)
{
    (void)state;
    ferry_loop *loop;
    ferry_pool *pool = new_pool(2);
    assert_int_equal(ferry_loop_new(&loop, NULL), 0);
    ferry_future *raw, *wrapped, *next;
    assert_int_equal(
        ferry_pool_submit_future(pool, add_one, (void *)20, NULL, &raw), 0);
    assert_null(ferry_future_loop(raw));
    assert_int_equal(ferry_future_wrap(loop, raw, &wrapped), 0);
    assert_int_equal(ferry_future_then(wrapped, double_it, NULL, NULL, &next),
                     0);
    void *v;
    assert_int_equal(ferry_loop_run_until_complete(loop, next, &v), 0);
    assert_int_equal((uintptr_t)v, 42);
    assert_int_equal(ferry_future_wait(raw, -1), 0);
    ferry_future_unref(next);
    ferry_future_unref(wrapped);
    /* Already complete when wrapped. */
    assert_int_equal(ferry_future_wrap(loop, raw, &wrapped), 0);
    assert_int_equal(ferry_loop_run_until_complete(loop, wrapped, &v), 0);
    assert_int_equal((uintptr_t)v, 21);
    ferry_future_unref(wrapped);
    ferry_future_unref(raw);
    /* A future of this loop wraps to itself. */
    ferry_future *own;
    assert_int_equal(ferry_future_new(loop, &own), 0);
    assert_int_equal(ferry_future_wrap(loop, own, &wrapped), 0);
    assert_ptr_equal(own, wrapped);
    ferry_future_unref(wrapped);
    ferry_future_unref(own);
    assert_int_equal(ferry_pool_free(pool), 0);
    assert_int_equal(ferry_loop_free(loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_S5_legacy_callback_adapter),
        cmocka_unit_test(test_S6_run_threadsafe_wait_timeout_cancel),
        cmocka_unit_test(test_S6_run_threadsafe_on_closed_loop),
        cmocka_unit_test(test_S19_promise_exactly_once),
        cmocka_unit_test(test_S19_thunks_and_macro),
        cmocka_unit_test(test_bridge_wrap_and_then),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
