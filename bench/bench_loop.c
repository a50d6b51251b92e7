/*
 * bench/bench_loop.c: quick figures for the loop alone.
 *
 *   call_soon          callbacks/s scheduled and run on the loop thread
 *   call_later         timers/s (heap insert + collect + run)
 *   threadsafe (P)     posts/s from P producer threads, run on the loop
 *
 * Each figure is the median of --reps runs (default 5) with min and max;
 * every run verifies that each callback ran exactly once.
 * Usage: bench_loop [N] [reps]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ferry.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct soon {
    ferry_loop *loop;
    long left;
    long ran;
};

static void soon_cb(void *arg)
{
    struct soon *s = arg;
    s->ran++;
    if (--s->left > 0)
        ferry_call_soon(s->loop, soon_cb, s, NULL, NULL);
    else
        ferry_loop_stop(s->loop);
}

/* 64 chains of call_soon: each callback schedules the next. */
static double run_call_soon(long n)
{
    ferry_loop *loop;
    ferry_loop_new(&loop, NULL);
    struct soon s[64];
    for (int i = 0; i < 64; i++) {
        s[i] = (struct soon){.loop = loop, .left = n / 64};
        ferry_call_soon(loop, soon_cb, &s[i], NULL, NULL);
    }
    uint64_t t0 = now_ns();
    ferry_loop_run_forever(loop);
    int64_t t;
    while (ferry_loop_timeout(loop, &t) == 0 && t == 0)
        ferry_loop_run_once(loop, 0);
    uint64_t dt = now_ns() - t0;
    long ran = 0;
    for (int i = 0; i < 64; i++)
        ran += s[i].ran;
    if (ran != (n / 64) * 64) {
        fprintf(stderr, "call_soon: ran %ld of %ld\n", ran, (n / 64) * 64);
        exit(1);
    }
    ferry_loop_free(loop);
    return (double)ran / ((double)dt / 1e9);
}

static void count_cb(void *arg)
{
    (*(long *)arg)++;
}

static double run_call_later(long n)
{
    ferry_loop *loop;
    ferry_loop_new(&loop, NULL);
    long ran = 0;
    uint64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        ferry_call_later(loop, (int64_t)(i % 1000), count_cb, &ran, NULL, NULL);
    while (ran < n)
        ferry_loop_run_once(loop, -1);
    uint64_t dt = now_ns() - t0;
    ferry_loop_free(loop);
    return (double)n / ((double)dt / 1e9);
}

struct post_run {
    ferry_loop *loop;
    long per_producer;
    long ran;
    long expect;
};

static void post_cb(void *arg)
{
    struct post_run *p = arg;
    if (++p->ran == p->expect)
        ferry_loop_stop(p->loop);
}

static void *producer(void *arg)
{
    struct post_run *p = arg;
    for (long i = 0; i < p->per_producer; i++)
        while (ferry_call_soon_threadsafe(p->loop, post_cb, p, NULL) != 0)
            ;
    return NULL;
}

static double run_threadsafe(long n, int producers)
{
    ferry_loop *loop;
    ferry_loop_new(&loop, NULL);
    struct post_run p = {.loop = loop,
                         .per_producer = n / producers,
                         .expect = (n / producers) * producers};
    pthread_t t[8];
    uint64_t t0 = now_ns();
    for (int i = 0; i < producers; i++)
        pthread_create(&t[i], NULL, producer, &p);
    ferry_loop_run_forever(loop);
    uint64_t dt = now_ns() - t0;
    for (int i = 0; i < producers; i++)
        pthread_join(t[i], NULL);
    if (p.ran != p.expect) {
        fprintf(stderr, "threadsafe: ran %ld of %ld\n", p.ran, p.expect);
        exit(1);
    }
    ferry_loop_free(loop);
    return (double)p.expect / ((double)dt / 1e9);
}

static void report(const char *name, double *v, int reps)
{
    qsort(v, (size_t)reps, sizeof *v, cmp_double);
    printf("%-22s %10.2f M/s  (min %.2f, max %.2f, %d runs)\n", name,
           v[reps / 2] / 1e6, v[0] / 1e6, v[reps - 1] / 1e6, reps);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (n < 64 || reps < 1 || reps > 64) {
        fprintf(stderr, "usage: bench_loop [N>=64] [reps 1..64]\n");
        return 2;
    }
    double v[64];
    for (int r = 0; r < reps; r++)
        v[r] = run_call_soon(n);
    report("call_soon", v, reps);
    for (int r = 0; r < reps; r++)
        v[r] = run_call_later(n / 4);
    report("call_later", v, reps);
    for (int p = 1; p <= 2; p++) {
        for (int r = 0; r < reps; r++)
            v[r] = run_threadsafe(n, p);
        char name[40];
        snprintf(name, sizeof name, "call_soon_threadsafe x%d", p);
        report(name, v, reps);
    }
    return 0;
}
