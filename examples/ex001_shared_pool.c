/*
 * examples/ex001_shared_pool.c: seed 001 in C.
 *
 * Part 1: one loop, an executor of 2 threads, two offloaded functions
 * printing "...boo i" and "...baa i" (a pool is just threads: the loop only
 * hands work over and gets the results back).
 * Part 2: five threads, each with its own loop, share one pool; each
 * offloads a function that sleeps (1 s in the seed, 200 ms here) and gets
 * its own result back; all five finish in about one sleep, not five, since
 * the pool grows for blocking work.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <ferry.h>

static ferry_pool *e;
static _Atomic int wrong; /* a thread that got another's result */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int say(void *arg, void **result)
{
    (void)result;
    for (int i = 0; i < 10; i++)
        printf("...%s %d\n", (const char *)arg, i);
    return 0;
}

static int worker(void *arg, void **result)
{
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    *result = arg;
    return 0;
}

static void *thread_main(void *arg)
{
    ferry_loop *loop;
    ferry_future *fut;
    void *rv = NULL;
    ferry_loop_new(&loop, NULL);
    ferry_run_in_executor(loop, e, worker, arg, NULL, &fut);
    ferry_loop_run_until_complete(loop, fut, &rv);
    printf("Thread %d got result %d\n", (int)(intptr_t)arg, (int)(intptr_t)rv);
    if (rv != arg)
        wrong = 1;
    ferry_future_unref(fut);
    ferry_loop_free(loop);
    return NULL;
}

int main(void)
{
    printf("running async test\n");
    struct ferry_pool_opts two = {.threads = 2};
    ferry_pool *executor;
    ferry_loop *loop;
    ferry_future *boo, *baa;
    ferry_pool_new(&executor, &two);
    ferry_loop_new(&loop, NULL);
    ferry_run_in_executor(loop, executor, say, "boo", NULL, &boo);
    ferry_run_in_executor(loop, executor, say, "baa", NULL, &baa);
    ferry_loop_run_until_complete(loop, boo, NULL);
    ferry_loop_run_until_complete(loop, baa, NULL);
    printf("boo and baa done\n");
    ferry_future_unref(boo);
    ferry_future_unref(baa);
    ferry_loop_free(loop);
    ferry_pool_free(executor);

    ferry_pool_new(&e, &two);
    pthread_t t[5];
    double t0 = now_s();
    for (intptr_t i = 0; i < 5; i++)
        pthread_create(&t[i], NULL, thread_main, (void *)i);
    for (int i = 0; i < 5; i++)
        pthread_join(t[i], NULL);
    double dt = now_s() - t0;
    printf("5 loops x 200 ms blocking calls took %.0f ms: %s\n", dt * 1e3,
           dt < 0.7 ? "concurrent" : "SERIAL");
    ferry_pool_free(e);
    return dt < 0.7 && !wrong ? 0 : 1;
}
