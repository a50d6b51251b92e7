/*
 * examples/ex004_loop_basics.c: seed 004 in C.
 *
 *   1. run_until_complete returns the future's result;
 *   2. call_soon runs before call_later, shorter delays first; call_at on
 *      the loop's own clock;
 *   3. a future resolved by a timer callback ("hello ..." / "... world");
 *   4. stop, is_running, close (idempotent), is_closed.
 * Times are scaled down from the seed's (0.1 s -> 10 ms), except the two
 * call_later delays of part 2, halved (0.2 s, 0.1 s -> 100 ms, 50 ms):
 * each delay counts from its own call, so a registration preempted for
 * longer than the gap between them would swap them (CI saw 10 ms).
 * call_at's lines are checked for order and for never firing early, not
 * for their exact times.
 */
#include <stdio.h>
#include <stdlib.h>

#include <ferry.h>

#define MS 1000000LL

static void callback(void *arg)
{
    printf("callback %d invoked\n", (int)(intptr_t)arg);
}

static void set_after(void *arg)
{
    ferry_future *fut = arg;
    printf("set_result() = ... world\n");
    ferry_future_set_result(fut, "... world", NULL);
}

static void resolve_main(void *arg)
{
    ferry_future_set_result(arg, "main done", NULL);
}

static void stop_now(void *arg)
{
    ferry_loop *loop = arg;
    printf("is_running inside a callback: %d\n", ferry_loop_is_running(loop));
    ferry_loop_stop(loop);
}

struct at {
    ferry_loop *loop;
    uint64_t start;
    int n;
    uint64_t ran; /* loop time when it ran */
};

static void call_back_at(void *arg)
{
    struct at *a = arg;
    a->ran = ferry_loop_time(a->loop);
    printf("callback %d at +%llu ms\n", a->n,
           (unsigned long long)((ferry_loop_time(a->loop) - a->start) / MS));
}

int main(void)
{
    ferry_loop *loop;
    ferry_future *fut;
    void *result;
    if (ferry_loop_new(&loop, NULL) != 0)
        return 1;

    /* 1 + 2: register callbacks, then run until a future completes. */
    printf("register callbacks\n");
    ferry_call_later(loop, 100 * MS, callback, (void *)1, NULL, NULL);
    ferry_call_later(loop, 50 * MS, callback, (void *)2, NULL, NULL);
    ferry_call_soon(loop, callback, (void *)3, NULL, NULL);
    ferry_future_new(loop, &fut);
    ferry_call_later(loop, 150 * MS, resolve_main, fut, NULL, NULL);
    int rc = ferry_loop_run_until_complete(loop, fut, &result);
    printf("run_until_complete returned %d: %s\n", rc, (char *)result);
    ferry_future_unref(fut);

    /* call_at on the loop's monotonic clock. */
    uint64_t now = ferry_loop_time(loop);
    struct at a1 = {loop, now, 1, 0}, a2 = {loop, now, 2, 0},
              a3 = {loop, now, 3, 0};
    ferry_call_at(loop, now + 10 * MS, call_back_at, &a1, NULL, NULL);
    ferry_call_at(loop, now + 20 * MS, call_back_at, &a2, NULL, NULL);
    ferry_call_soon(loop, call_back_at, &a3, NULL, NULL);
    ferry_future_new(loop, &fut);
    ferry_call_later(loop, 30 * MS, resolve_main, fut, NULL, NULL);
    ferry_loop_run_until_complete(loop, fut, NULL);
    ferry_future_unref(fut);
    printf("call_at never early: %s\n",
           a1.ran >= now + 10 * MS && a2.ran >= now + 20 * MS ? "yes" : "no");

    /* 3: a future resolved by a timer callback. */
    ferry_future_new(loop, &fut);
    printf("loop.create_future() = pending\n");
    ferry_call_later(loop, 10 * MS, set_after, fut, NULL, NULL);
    printf("hello ...\n");
    ferry_loop_run_until_complete(loop, fut, &result);
    printf("%s\n", (char *)result);
    ferry_future_unref(fut);

    /* 4: stop, close. */
    ferry_call_soon(loop, stop_now, loop, NULL, NULL);
    ferry_loop_run_forever(loop);
    printf("is_running after stop: %d\n", ferry_loop_is_running(loop));
    ferry_call_soon(loop, callback, (void *)4, NULL, NULL); /* dropped */
    int first = ferry_loop_close(loop);
    int again = ferry_loop_close(loop); /* idempotent */
    printf("close: %d, again: %d, is_closed: %d\n", first, again,
           ferry_loop_is_closed(loop));
    printf("call_soon after close: %s\n",
           ferry_strerror(ferry_call_soon(loop, callback, NULL, NULL, NULL)));
    return ferry_loop_free(loop) == 0 ? 0 : 1;
}
