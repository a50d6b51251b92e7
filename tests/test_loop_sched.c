/*
 * tests/test_loop_sched.c: what the loop runs, and in which order: call_soon
 * FIFO, exactly once, and cancel (S10); timers by deadline, then
 * registration order, with cancels and zero-delay rearms, and a monotonic
 * ferry_loop_time (S11); and the slow-callback report (S15). Timers run
 * on the fixture's fake clock; each test drives the loop step by step
 * with ferry_loop_run_once.
 */
#include "loop_fixture.h"

/* ---- S10: FIFO, exactly once, cancel ---- */

static void test_S10_call_soon_fifo_once_cancel(void **state)
{
    struct fx *fx = *state;
    ferry_handle *h[100];
    _Atomic int disposed = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(ferry_call_soon(fx->loop, push_id, rec(fx, i),
                                         count_dispose, &h[i]),
                         0);
    for (int i = 0; i < 100; i++)
        h[i]->arg = i == 50 ? (void *)&disposed : h[i]->arg;
    assert_int_equal(ferry_handle_cancel(h[50]), 0);
    assert_true(ferry_handle_cancelled(h[50]));
    assert_int_equal(ferry_handle_cancel(h[50]), -EALREADY);
    assert_int_equal(atomic_load(&disposed), 1);
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    assert_int_equal(fx->log.n, 99);
    for (int i = 0, k = 0; i < 100; i++) {
        if (i == 50)
            continue;
        assert_int_equal(fx->log.v[k++], i);
    }
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    assert_int_equal(fx->log.n, 99); /* exactly once */
    for (int i = 0; i < 100; i++) {
        if (i != 50)
            assert_int_equal(ferry_handle_cancel(h[i]), -EALREADY);
        assert_int_equal(ferry_handle_cancelled(h[i]), i == 50);
        ferry_handle_unref(h[i]);
    }
    assert_int_equal(atomic_load(&disposed), 1);
}

static void cancel_other(void *arg)
{
    assert_int_equal(ferry_handle_cancel(arg), 0);
}

static void test_S10_cancel_later_handle_in_same_batch(void **state)
{
    struct fx *fx = *state;
    ferry_handle *victim;
    ferry_call_soon(fx->loop, push_id, rec(fx, 1), NULL, NULL);
    ferry_handle *first;
    ferry_call_soon(fx->loop, push_id, rec(fx, 0), NULL, &first);
    ferry_call_soon(fx->loop, push_id, rec(fx, 2), NULL, &victim);
    first->fn.cb = cancel_other;
    first->arg = victim;
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    assert_int_equal(fx->log.n, 1);
    assert_int_equal(fx->log.v[0], 1);
    ferry_handle_unref(first);
    ferry_handle_unref(victim);
}

/* ---- S11: timers ---- */

static void test_S11_timer_order(void **state)
{
    struct fx *fx = *state;
    ferry_loop *l = fx->loop;
    uint64_t t0 = ferry_loop_time(l);
    ferry_call_later(l, 30, push_id, rec(fx, 30), NULL, NULL);
    ferry_call_later(l, 10, push_id, rec(fx, 10), NULL, NULL);
    ferry_call_at(l, t0 + 20, push_id, rec(fx, 20), NULL, NULL);
    ferry_call_at(l, t0 + 10, push_id, rec(fx, 11), NULL, NULL);
    ferry_call_later(l, 10, push_id, rec(fx, 12), NULL, NULL);
    ferry_call_later(l, 0, push_id, rec(fx, 0), NULL, NULL);
    ferry_call_soon(l, push_id, rec(fx, 1), NULL, NULL);
    assert_int_equal(ferry_loop_run_once(l, 0), 0);
    /* call_soon before any timer, even a due zero-delay one */
    assert_int_equal(fx->log.n, 2);
    assert_int_equal(fx->log.v[0], 1);
    assert_int_equal(fx->log.v[1], 0);
    fx->clock.now += 15;
    assert_int_equal(ferry_loop_run_once(l, 0), 0);
    assert_int_equal(fx->log.n, 5); /* equal deadlines: registration order */
    assert_int_equal(fx->log.v[2], 10);
    assert_int_equal(fx->log.v[3], 11);
    assert_int_equal(fx->log.v[4], 12);
    fx->clock.now += 100;
    assert_int_equal(ferry_loop_run_once(l, 0), 0);
    assert_int_equal(fx->log.n, 7);
    assert_int_equal(fx->log.v[5], 20);
    assert_int_equal(fx->log.v[6], 30);
}

static void test_S11_call_later_equals_call_at_time_plus_d(void **state)
{
    struct fx *fx = *state;
    ferry_handle *a, *b;
    ferry_call_later(fx->loop, 777, push_id, rec(fx, 1), NULL, &a);
    ferry_call_at(fx->loop, ferry_loop_time(fx->loop) + 777, push_id,
                  rec(fx, 2), NULL, &b);
    assert_true(a->when == b->when);
    assert_true(a->seq < b->seq);
    assert_int_equal(ferry_call_later(fx->loop, -1, push_id, NULL, NULL, NULL),
                     -EINVAL);
    assert_int_equal(ferry_handle_cancel(a), 0);
    assert_int_equal(ferry_handle_cancel(b), 0);
    ferry_handle_unref(a);
    ferry_handle_unref(b);
}

static void test_S11_loop_time_monotonic(void **state)
{
    (void)state;
    ferry_loop *l;
    assert_int_equal(ferry_loop_new(&l, NULL), 0);
    uint64_t prev = ferry_loop_time(l);
    for (int i = 0; i < 10000; i++) {
        uint64_t t = ferry_loop_time(l);
        assert_true(t >= prev);
        prev = t;
    }
    assert_int_equal(ferry_loop_time(NULL), 0);
    assert_int_equal(ferry_loop_free(l), 0);
}

static int rearms;

static void rearm_zero(void *arg)
{
    struct fx *fx = arg;
    rearms++;
    ferry_call_later(fx->loop, 0, rearm_zero, fx, NULL, NULL);
}

static void test_S11_zero_delay_rearm_cannot_starve(void **state)
{
    struct fx *fx = *state;
    rearms = 0;
    ferry_call_later(fx->loop, 0, rearm_zero, fx, NULL, NULL);
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    assert_int_equal(rearms, 1);
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    assert_int_equal(rearms, 2);
}

static void test_S11_timer_cancel_and_heap_order(void **state)
{
    struct fx *fx = *state;
    ferry_handle *h[64];
    for (int i = 0; i < 64; i++)
        ferry_call_later(fx->loop, (int64_t)((i * 37) % 64), push_id,
                         rec(fx, i), NULL, &h[i]);
    for (int i = 0; i < 64; i += 3)
        assert_int_equal(ferry_handle_cancel(h[i]), 0);
    fx->clock.now += 100;
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    int expect = 64 - 22;
    assert_int_equal(fx->log.n, expect);
    for (int k = 1; k < fx->log.n; k++)
        assert_true((fx->log.v[k - 1] * 37) % 64 < (fx->log.v[k] * 37) % 64);
    for (int i = 0; i < 64; i++)
        ferry_handle_unref(h[i]);
}

/* ---- S15: slow callbacks ---- */

struct slow_seen {
    int calls;
    uint64_t duration;
    char symbol[64];
};

static void slow_hook(void *arg, const char *symbol, uint64_t duration_ns)
{
    struct slow_seen *s = arg;
    s->calls++;
    s->duration = duration_ns;
    snprintf(s->symbol, sizeof s->symbol, "%s", symbol ? symbol : "?");
}

/* Not static: dladdr finds only exported symbols (the test links with
 * export_dynamic). */
void ferry_test_slow_callback(void *arg);
void ferry_test_slow_callback(void *arg)
{
    (void)arg;
    sleep_ns(30000000);
}

static void test_S15_slow_callback_reported(void **state)
{
    struct fx *fx = *state;
    struct slow_seen s = {0};
    assert_int_equal(
        ferry_loop_set_slow_callback(fx->loop, 10000000, slow_hook, &s), 0);
    ferry_call_soon(fx->loop, push_id, rec(fx, 1), NULL, NULL);
    ferry_call_soon(fx->loop, ferry_test_slow_callback, NULL, NULL, NULL);
    ferry_call_soon(fx->loop, push_id, rec(fx, 2), NULL, NULL);
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    assert_int_equal(s.calls, 1);
    assert_true(s.duration >= 30000000u);
    assert_string_equal(s.symbol, "ferry_test_slow_callback");
    struct ferry_loop_stats st;
    assert_int_equal(ferry_loop_stats(fx->loop, &st), 0);
    assert_int_equal(st.slow_callbacks, 1);
    /* Disabled: nothing reported. */
    assert_int_equal(ferry_loop_set_slow_callback(fx->loop, 0, NULL, NULL), 0);
    ferry_call_soon(fx->loop, ferry_test_slow_callback, NULL, NULL, NULL);
    assert_int_equal(ferry_loop_run_once(fx->loop, 0), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(ferry_loop_set_slow_callback(NULL, 0, NULL, NULL),
                     -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_S10_call_soon_fifo_once_cancel),
        T(test_S10_cancel_later_handle_in_same_batch),
        T(test_S11_timer_order),
        T(test_S11_call_later_equals_call_at_time_plus_d),
        cmocka_unit_test(test_S11_loop_time_monotonic),
        T(test_S11_zero_delay_rearm_cannot_starve),
        T(test_S11_timer_cancel_and_heap_order),
        T(test_S15_slow_callback_reported),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
