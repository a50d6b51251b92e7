/*
 * examples/ex003_offload.c: seed 003, case B with run_in_executor.
 *
 * task_a ticks every period while task_c hands the blocking task_b (it
 * sleeps, "calling an external api") to the default executor and prints
 * its result when it comes back on the loop's thread. The seed's 1 s tick
 * and 4 s call are 50 ms and 200 ms here.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ferry.h>

#define PERIOD 50000000LL

static ferry_loop *event_loop;
static pthread_t loop_thread;
static int ticks;

static void task_a(void *arg)
{
    (void)arg;
    printf("task_a: %d\n", ticks);
    if (++ticks < 10)
        ferry_call_later(event_loop, PERIOD, task_a, NULL, NULL, NULL);
    else
        ferry_loop_stop(event_loop);
}

static int task_b(void *arg, void **result)
{
    printf("task_b\n");
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL); /* simulate calling an external api */
    char *out = malloc(64);
    snprintf(out, 64, "%s world", (const char *)arg);
    *result = out;
    return 0;
}

static void task_c_done(ferry_future *fut, void *arg)
{
    (void)arg;
    void *result;
    ferry_future_result(fut, &result);
    printf("task_c: result: %s (on the loop's thread: %s)\n", (char *)result,
           pthread_equal(pthread_self(), loop_thread) ? "yes" : "no");
}

static void task_c(void *arg)
{
    (void)arg;
    ferry_future *fut;
    printf("task_c: put a task to executor\n");
    ferry_run_in_executor(event_loop, NULL, task_b, "hello", free, &fut);
    ferry_future_add_done_callback(fut, task_c_done, NULL, NULL);
    ferry_future_unref(fut); /* the callback keeps it alive */
}

int main(void)
{
    ferry_loop_new(&event_loop, NULL);
    loop_thread = pthread_self();
    ferry_call_soon(event_loop, task_a, NULL, NULL, NULL);
    ferry_call_soon(event_loop, task_c, NULL, NULL, NULL);
    ferry_loop_run_forever(event_loop);
    ferry_loop_shutdown_default_executor(event_loop, -1);
    return ferry_loop_free(event_loop) == 0 ? 0 : 1;
}
