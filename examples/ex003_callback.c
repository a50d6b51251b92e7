/*
 * examples/ex003_callback.c: seed 003, case B with a callback API.
 *
 * my_thread is a "legacy library": its own thread takes jobs from a queue
 * and reports each result through a callback, from that thread. task_b
 * turns one call into a future with a promise: the callback completes the
 * promise (from my_thread), and the future resolves on the loop, which
 * keeps running task_a meanwhile. Seed times (1 s, 4 s) are 50 ms, 175 ms.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <ferry.h>

#define PERIOD 50000000LL

struct job {
    int value;
    void (*callback)(void *ctx, int status, void *data);
    void *ctx;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct job *queue_slot; /* a one-slot queue is enough here */
static int quit;
static ferry_loop *event_loop;
static int ticks;

static void *my_thread(void *arg)
{
    (void)arg;
    printf("my_thread: started\n");
    pthread_mutex_lock(&mu);
    for (;;) {
        while (queue_slot == NULL && !quit)
            pthread_cond_wait(&cv, &mu);
        if (quit)
            break;
        struct job *job = queue_slot;
        queue_slot = NULL;
        pthread_mutex_unlock(&mu);
        printf("my_thread: got job, with value %d\n", job->value);
        struct timespec ts = {0, 175000000};
        nanosleep(&ts, NULL);
        int *sq = malloc(sizeof *sq);
        *sq = job->value * job->value;
        job->callback(job->ctx, 0, sq);
        free(job);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void task_a(void *arg)
{
    (void)arg;
    printf("task_a: %d\n", ticks);
    if (++ticks < 10)
        ferry_call_later(event_loop, PERIOD, task_a, NULL, NULL, NULL);
    else
        ferry_loop_stop(event_loop);
}

static void task_b_done(ferry_future *fut, void *arg)
{
    (void)arg;
    void *result;
    ferry_future_result(fut, &result);
    printf("task_b got result:%d\n", *(int *)result);
}

/* The producer side: released once my_thread, which may call it, is gone. */
static ferry_promise *promise;

static void task_b(void *arg)
{
    ferry_future *fut;
    printf("task_b\n");
    ferry_promise_new(event_loop, free, &promise, &fut);
    struct job *job = malloc(sizeof *job);
    job->value = (int)(intptr_t)arg;
    job->callback = ferry_promise_cb_status_data; /* the adapter */
    job->ctx = promise;
    pthread_mutex_lock(&mu);
    queue_slot = job;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    ferry_future_add_done_callback(fut, task_b_done, NULL, NULL);
    ferry_future_unref(fut);
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, my_thread, NULL);
    ferry_loop_new(&event_loop, NULL);
    ferry_call_soon(event_loop, task_a, NULL, NULL, NULL);
    ferry_call_soon(event_loop, task_b, (void *)5, NULL, NULL);
    ferry_loop_run_forever(event_loop);
    pthread_mutex_lock(&mu);
    quit = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL);
    ferry_promise_unref(promise);
    return ferry_loop_free(event_loop) == 0 ? 0 : 1;
}
