/*
 * bench/bench_pool.c: pool workloads, as figures (never a timed test).
 *
 *   tiny    1M no-op tasks submitted from one outside thread, which then
 *           sleeps until the last one ran: tasks/s.
 *   tinyb   the tiny workload flagged FERRY_TASK_BLOCKING (what
 *           run_in_executor submits by default).
 *   owned   the tiny workload with caller-owned tasks (the internal,
 *           allocation-free interface the bridge uses).
 *   fib     fib(25) with one task per call (both children spawned into a
 *           group, then waited on): ns per task, 242785 tasks.
 *   pfor    a parallel for over 10M floats (recursive halving with groups
 *           down to 16K elements; sinf, expf, sqrtf per element): speedup
 *           over the same loop run serially on one thread.
 *   raw     the pfor loop split statically over as many plain pthreads:
 *           what the (shared) machine can give at that moment.
 *   libuv   the tiny workload through uv_queue_work from the loop thread,
 *           as an in-run peer (only when libuv was found at build time).
 *
 * Each figure is the median of FERRY_BENCH_RUNS runs (default 7) after
 * one warm-up run. Usage: bench_pool [threads [workload]]: threads 0 (the
 * default) means one per CPU; workload is tiny, tinyb, owned, fib, pfor, libuv
 * or all.
 */
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor/internal.h" /* caller-owned tasks */
#include "ferry.h"

#ifdef FERRY_BENCH_HAVE_UV
#include <uv.h>
#endif

enum { TINY_TASKS = 1000000, FIB_N = 25, PFOR_N = 10000000, GRAIN = 16384 };

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int runs = 7;
static ferry_pool *pool;

/* ---- tiny tasks ---- */

static _Atomic long tiny_left;
static sem_t tiny_done;

static void tiny_fn(void *arg)
{
    (void)arg;
    if (atomic_fetch_sub_explicit(&tiny_left, 1, memory_order_relaxed) == 1)
        sem_post(&tiny_done);
}

static double tiny_once(unsigned flags)
{
    atomic_store(&tiny_left, TINY_TASKS);
    uint64_t t0 = now_ns();
    for (int i = 0; i < TINY_TASKS; i++)
        if (ferry_pool_submit(pool, tiny_fn, NULL, NULL, flags, NULL) != 0)
            abort();
    sem_wait(&tiny_done);
    return TINY_TASKS / ((double)(now_ns() - t0) / 1e9);
}

/* The same through caller-owned internal tasks (no allocation per task):
 * the bridge's path, and the shape of libuv's caller-owned uv_work_t. */
static struct ferry__task *owned;

static void owned_fn(void *arg)
{
    (void)arg;
}

/* Count here, not in fn: the pool may touch a task until its completion
 * hook returns, so the array may be reused or freed only after that. */
static void owned_complete(struct ferry__task *t, int status)
{
    (void)t;
    (void)status;
    if (atomic_fetch_sub_explicit(&tiny_left, 1, memory_order_acq_rel) == 1)
        sem_post(&tiny_done);
}

static double owned_once(void)
{
    atomic_store(&tiny_left, TINY_TASKS);
    uint64_t t0 = now_ns();
    for (int i = 0; i < TINY_TASKS; i++) {
        ferry__task_init(&owned[i], owned_fn, NULL, owned_complete, 0);
        if (ferry__pool_submit_task(pool, &owned[i]) != 0)
            abort();
    }
    sem_wait(&tiny_done);
    return TINY_TASKS / ((double)(now_ns() - t0) / 1e9);
}

/* ---- fib ---- */

struct fib {
    int n;
    long r;
};

static void fib_fn(void *arg)
{
    struct fib *f = arg;
    if (f->n < 2) {
        f->r = f->n;
        return;
    }
    struct fib a = {f->n - 1, 0};
    struct fib b = {f->n - 2, 0};
    ferry_group g;
    ferry_group_init(&g, pool);
    ferry_group_spawn(&g, fib_fn, &a, 0);
    ferry_group_spawn(&g, fib_fn, &b, 0);
    ferry_group_wait(&g);
    f->r = a.r + b.r;
}

static long fib_calls(int n)
{
    return n < 2 ? 1 : fib_calls(n - 1) + fib_calls(n - 2) + 1;
}

static double fib_once(void)
{
    struct fib f = {FIB_N, 0};
    ferry_group g;
    uint64_t t0 = now_ns();
    ferry_group_init(&g, pool);
    ferry_group_spawn(&g, fib_fn, &f, 0);
    ferry_group_wait(&g);
    uint64_t ns = now_ns() - t0;
    if (f.r != 75025)
        abort();
    return (double)ns / (double)fib_calls(FIB_N);
}

/* ---- parallel for ---- */

static float *pfor_x;

/* Compute-bound on purpose (scalar libm calls, ~10 ns per element): a
 * kernel the compiler vectorises is bound by memory bandwidth, which two
 * cores share, and would measure the memory system, not the pool. */
static void kernel(size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++) {
        float v = pfor_x[i];
        pfor_x[i] = sinf(v) * expf(-v) + sqrtf(v);
    }
}

struct range {
    size_t lo, hi;
};

static void pfor_fn(void *arg)
{
    struct range *r = arg;
    if (r->hi - r->lo <= GRAIN) {
        kernel(r->lo, r->hi);
        return;
    }
    size_t mid = r->lo + (r->hi - r->lo) / 2;
    struct range left = {r->lo, mid};
    struct range right = {mid, r->hi};
    ferry_group g;
    ferry_group_init(&g, pool);
    ferry_group_spawn(&g, pfor_fn, &left, 0);
    pfor_fn(&right);
    ferry_group_wait(&g);
}

static void pfor_reset(void)
{
    for (size_t i = 0; i < PFOR_N; i++)
        pfor_x[i] = (float)(i % 1000) / 1000.0f;
}

/* The machine's own capacity right now (it is shared): the same kernel,
 * statically split over plain pthreads, no pool. */
struct raw_part {
    size_t lo, hi;
};

static void *raw_fn(void *arg)
{
    struct raw_part *p = arg;
    kernel(p->lo, p->hi);
    return NULL;
}

static double raw_once(unsigned nthreads)
{
    pthread_t th[64];
    struct raw_part part[64];
    if (nthreads > 64)
        nthreads = 64;
    pfor_reset();
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < nthreads; i++) {
        part[i].lo = PFOR_N / nthreads * i;
        part[i].hi = i + 1 == nthreads ? PFOR_N : PFOR_N / nthreads * (i + 1);
        pthread_create(&th[i], NULL, raw_fn, &part[i]);
    }
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    return (double)(now_ns() - t0);
}

static double pfor_once(double *serial_ns)
{
    pfor_reset();
    uint64_t t0 = now_ns();
    kernel(0, PFOR_N);
    *serial_ns = (double)(now_ns() - t0);
    pfor_reset();
    struct range all = {0, PFOR_N};
    ferry_group g;
    t0 = now_ns();
    ferry_group_init(&g, pool);
    ferry_group_spawn(&g, pfor_fn, &all, 0);
    ferry_group_wait(&g);
    return (double)(now_ns() - t0);
}

/* ---- libuv peer ---- */

#ifdef FERRY_BENCH_HAVE_UV
static long uv_left;

static void uv_work(uv_work_t *req)
{
    (void)req;
}

static void uv_after(uv_work_t *req, int status)
{
    (void)req;
    (void)status;
    uv_left--;
}

static double uvq_once(uv_loop_t *loop, uv_work_t *reqs)
{
    uv_left = TINY_TASKS;
    uint64_t t0 = now_ns();
    for (int i = 0; i < TINY_TASKS; i++)
        uv_queue_work(loop, &reqs[i], uv_work, uv_after);
    while (uv_left > 0)
        uv_run(loop, UV_RUN_ONCE);
    return TINY_TASKS / ((double)(now_ns() - t0) / 1e9);
}
#endif

static const char *only;
static double *v;
static double *w;

static bool want(const char *name)
{
    return only == NULL || strcmp(only, "all") == 0 || strcmp(only, name) == 0;
}

static void run_tiny(unsigned flags)
{
    tiny_once(flags);
    for (int i = 0; i < runs; i++)
        v[i] = tiny_once(flags);
    if (flags == 0)
        printf("tiny   %8.2f M tasks/s   (1M no-op tasks, one outside "
               "thread)\n",
               median(v, runs) / 1e6);
    else
        printf("tinyb  %8.2f M tasks/s   (the same, flagged "
               "FERRY_TASK_BLOCKING)\n",
               median(v, runs) / 1e6);
}

static void run_owned(void)
{
    owned = calloc(TINY_TASKS, sizeof *owned);
    if (owned == NULL)
        abort();
    owned_once();
    for (int i = 0; i < runs; i++)
        v[i] = owned_once();
    printf("owned  %8.2f M tasks/s   (the same, caller-owned tasks: no "
           "allocation)\n",
           median(v, runs) / 1e6);
    free(owned);
}

static void run_fib(void)
{
    fib_once();
    for (int i = 0; i < runs; i++)
        v[i] = fib_once();
    printf("fib    %8.1f ns/task     (fib(%d), %ld tasks)\n", median(v, runs),
           FIB_N, fib_calls(FIB_N));
}

static void run_pfor(unsigned nthreads)
{
    double serial;
    double *raw = calloc((size_t)runs, sizeof *raw);
    if (raw == NULL)
        abort();
    pfor_once(&serial);
    for (int i = 0; i < runs; i++) {
        v[i] = pfor_once(&serial);
        w[i] = serial;
        raw[i] = raw_once(nthreads);
    }
    double par = median(v, runs);
    double ser = median(w, runs);
    double rw = median(raw, runs);
    printf("pfor   %8.2f x speedup   (10M floats: serial %.1f ms, "
           "parallel %.1f ms)\n",
           ser / par, ser / 1e6, par / 1e6);
    printf("raw    %8.2f x speedup   (same loop split over %u plain "
           "threads: the machine's capacity now)\n",
           ser / rw, nthreads);
    free(raw);
}

static void run_libuv(void)
{
#ifdef FERRY_BENCH_HAVE_UV
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_work_t *reqs = calloc(TINY_TASKS, sizeof *reqs);
    if (reqs == NULL)
        abort();
    uvq_once(&loop, reqs);
    for (int i = 0; i < runs; i++)
        v[i] = uvq_once(&loop, reqs);
    printf("libuv  %8.2f M tasks/s   (uv_queue_work, same workload)\n",
           median(v, runs) / 1e6);
    uv_loop_close(&loop);
    free(reqs);
#else
    printf("libuv  (not built: libuv was not found)\n");
#endif
}

int main(int argc, char **argv)
{
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 0;
    only = argc > 2 ? argv[2] : NULL;
    const char *r = getenv("FERRY_BENCH_RUNS");
    if (r != NULL && atoi(r) > 0)
        runs = atoi(r);
    struct ferry_pool_opts o = {.threads = threads};
    if (ferry_pool_new(&pool, &o) != 0)
        return 1;
    sem_init(&tiny_done, 0, 0);
    pfor_x = malloc(PFOR_N * sizeof *pfor_x);
    v = calloc((size_t)runs, sizeof *v);
    w = calloc((size_t)runs, sizeof *w);
    if (pfor_x == NULL || v == NULL || w == NULL)
        return 1;
    struct ferry_pool_stats st;
    ferry_pool_stats(pool, &st);
    printf("ferry pool, %u threads, median of %d runs\n", st.threads_total,
           runs);
    if (want("tiny"))
        run_tiny(0);
    if (want("tinyb"))
        run_tiny(FERRY_TASK_BLOCKING);
    if (want("owned"))
        run_owned();
    if (want("fib"))
        run_fib();
    if (want("pfor"))
        run_pfor(st.threads_total);
    if (want("libuv"))
        run_libuv();
    free(v);
    free(w);
    free(pfor_x);
    ferry_pool_stats(pool, &st);
    printf("stats: %llu stolen, %llu parks, %llu spares\n",
           (unsigned long long)st.stolen, (unsigned long long)st.parks,
           (unsigned long long)st.spares_created);
    return ferry_pool_free(pool) == 0 ? 0 : 1;
}
