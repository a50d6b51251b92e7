/*
 * examples/ex003_threadsafe.c: seed 003, case C.
 *
 * my_thread asks the loop, running my_task_a, to run my_task_b for it
 * (asyncio's run_coroutine_threadsafe) and waits for the result. my_task_b
 * "processes" over several loop iterations, as the seed's coroutine does
 * across awaits, and resolves a future when done. Then my_thread asks
 * again, gives up after a short timeout and cancels: the work either never
 * runs or its result is discarded. Seed times (1 s ticks) are 40 ms here.
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include <ferry.h>

#define PERIOD 40000000LL

static ferry_loop *loop;
static int ticks;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

struct job {
    ferry_future *fut; /* resolved when the countdown ends */
    int value, countdown;
};

static void my_task_b_step(void *arg)
{
    struct job *j = arg;
    if (j->countdown-- > 0) {
        printf("my_task_b is processing job\n");
        ferry_call_later(loop, PERIOD, my_task_b_step, j, NULL, NULL);
        return;
    }
    ferry_future_set_result(j->fut, (void *)(intptr_t)(j->value * j->value),
                            NULL);
    ferry_future_unref(j->fut);
}

/* Runs on the loop: starts the job, returns at once with a future. */
static int my_task_b(void *arg, void **result)
{
    static struct job j;
    printf("my_task_b got job\n");
    j.value = (int)(intptr_t)arg;
    j.countdown = j.value;
    ferry_future_new(loop, &j.fut);
    ferry_future_ref(j.fut);
    *result = j.fut;
    my_task_b_step(&j);
    return 0;
}

static void unref_future(void *p)
{
    ferry_future_unref(p);
}

static void stop_loop(void *arg)
{
    ferry_loop_stop(arg);
}

static int never_long(void *arg, void **result)
{
    (void)arg;
    *result = NULL;
    printf("late job ran anyway; its result is discarded\n");
    return 0;
}

static void busy(void *arg)
{
    (void)arg;
    sleep_ms(30); /* a slow callback keeps the loop from answering */
}

static void *my_thread(void *arg)
{
    (void)arg;
    printf("my_thread: started\n");
    sleep_ms(80);
    printf("my_thread: ask to run my_task_b() on main thread event loop\n");
    ferry_future *future;
    ferry_run_threadsafe(loop, my_task_b, (void *)5, unref_future, &future);
    printf("my_thread: request sent\n");
    void *inner;
    ferry_future_wait(future, -1);
    ferry_future_result(future, &inner); /* my_task_b's own future */
    ferry_future_wait(inner, -1);
    void *result;
    ferry_future_result(inner, &result);
    printf("my_thread result: %d\n", (int)(intptr_t)result);
    ferry_future_unref(future);

    /* With a timeout: "The coroutine took too long, cancelling the task" */
    ferry_call_soon_threadsafe(loop, busy, NULL, NULL);
    ferry_run_threadsafe(loop, never_long, NULL, NULL, &future);
    if (ferry_future_wait(future, 5000000) == -ETIMEDOUT) {
        printf("The coroutine took too long, cancelling the task...\n");
        printf("cancelled: %s\n",
               ferry_future_cancel(future) ? "yes" : "already done");
    }
    ferry_future_unref(future);
    ferry_call_soon_threadsafe(loop, stop_loop, loop, NULL);
    return NULL;
}

static void my_task_a(void *arg)
{
    (void)arg;
    printf("my_task_a: %d\n", ticks++);
    ferry_call_later(loop, PERIOD, my_task_a, NULL, NULL, NULL);
}

int main(void)
{
    pthread_t t;
    ferry_loop_new(&loop, NULL);
    pthread_create(&t, NULL, my_thread, NULL);
    ferry_call_soon(loop, my_task_a, NULL, NULL, NULL);
    ferry_loop_run_forever(loop);
    pthread_join(t, NULL);
    return ferry_loop_free(loop) == 0 ? 0 : 1;
}
