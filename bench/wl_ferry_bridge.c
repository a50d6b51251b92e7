/*
 * bench/wl_ferry_bridge.c: ferry's offload workloads, through
 * ferry_run_in_executor (built with FERRY_BENCH_HAVE_BRIDGE; registered in
 * wl_ferry.c either way).
 *
 *   ferry.rtt    no-op offload, one in flight: round trip (us)
 *   ferry.tput   no-op offloads, window of 1024 in flight
 *   ferry.tiny   tiny tasks in batches of 4096 (one future each; a
 *                pool-only variant can follow once executor.h has a submit)
 *   ferry.idle   CPU burnt by a loop and a warmed default pool while idle
 *
 * Every offload uses the default pool (pool == NULL). A warm-up offload
 * starts it before timing, and ferry_loop_shutdown_default_executor stops
 * it at the end of each rep, so reps are independent and nothing leaks.
 * Each offloaded function returns a token derived from its job's sequence
 * number; the done callback reads it back with ferry_future_result and sums
 * it, and the sum and the count of completions are verified. The 100 ms
 * guard of wl_ferry.h bounds every run.
 *
 * Thread: the loop side on the main thread; the offloaded functions on the
 * pool's workers.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "wl_ferry.h"

#ifdef FERRY_BENCH_HAVE_BRIDGE
#define WINDOW 1024
#define BATCH 4096
#define TOKEN 0x5bd1e995u

struct fshape;

struct fjob {
    struct fshape *s;
    uint64_t seq; /* set at submit; the offloaded fn derives its result */
    uint64_t t0;  /* submit time (rtt) */
};

struct fshape {
    ferry_loop *loop;
    int (*fn)(void *arg, void **result);
    struct fjob *jobs;
    uint64_t total, submitted, completed, sum, want_sum, warm;
    bool batch;           /* tiny: resubmit per batch */
    struct bench_hist *h; /* rtt only */
    int err;              /* first error on the loop side */
};

static int noop_fn(void *arg, void **result)
{
    struct fjob *j = arg;
    *result = (void *)(uintptr_t)(j->seq ^ TOKEN);
    return 0;
}

static int tiny_fn(void *arg, void **result)
{
    struct fjob *j = arg;
    *result = (void *)(uintptr_t)bench_tiny_work(j->seq);
    return 0;
}

static void fshape_done(ferry_future *f, void *arg);

static void fshape_submit(struct fshape *s, struct fjob *j)
{
    ferry_future *f;
    j->seq = s->submitted++;
    if (s->h != NULL) /* rtt only: a clock read is not throughput's work */
        j->t0 = bench_now();
    int rc = ferry_run_in_executor(s->loop, NULL, s->fn, j, NULL, &f);
    if (rc == 0) {
        rc = ferry_future_add_done_callback(f, fshape_done, j, NULL);
        if (rc < 0)
            ferry_future_unref(f);
    }
    if (rc < 0) {
        s->err = rc;
        ferry_loop_stop(s->loop);
    }
}

static void fshape_batch(struct fshape *s)
{
    for (unsigned i = 0; i < BATCH && s->submitted < s->total; i++)
        fshape_submit(s, &s->jobs[i]);
}

static void fshape_done(ferry_future *f, void *arg)
{
    struct fjob *j = arg;
    struct fshape *s = j->s;
    uint64_t now = s->h != NULL ? bench_now() : 0; /* as wl_uv.c */
    void *v = NULL;
    int rc = ferry_future_result(f, &v);
    ferry_future_unref(f); /* the library keeps its own until we return */
    if (rc < 0 && s->err == 0)
        s->err = rc;
    if (s->h != NULL && s->completed >= s->warm)
        bench_hist_record(s->h, now - j->t0);
    s->completed++;
    s->sum += (uintptr_t)v;
    if (s->completed == s->total || s->err != 0)
        ferry_loop_stop(s->loop);
    else if (!s->batch && s->submitted < s->total)
        fshape_submit(s, j);
    else if (s->batch && s->completed == s->submitted)
        fshape_batch(s);
}

/* Start the default pool outside the timed region: one offload. */
static int fshape_warm(struct fshape *s)
{
    struct fjob j = {.s = s, .seq = 0};
    ferry_future *f;
    void *v;
    int rc = ferry_run_in_executor(s->loop, NULL, noop_fn, &j, NULL, &f);
    if (rc < 0)
        return rc;
    rc = ferry_loop_run_until_complete(s->loop, f, &v);
    ferry_future_unref(f);
    return rc;
}

/* n jobs, the first min(n, total) submitted at once (or one batch). */
static int fshape_run(struct bench_ctx *c, struct fshape *s, unsigned n,
                      uint64_t *ns)
{
    struct bench_guard g;
    s->jobs = calloc(n, sizeof *s->jobs);
    if (s->jobs == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++)
        s->jobs[i].s = s;
    int rc = ferry_loop_new(&s->loop, NULL);
    if (rc == 0 && (rc = fshape_warm(s)) == 0 &&
        (rc = bench_guard_arm(&g, s->loop, NULL)) == 0) {
        uint64_t t0 = bench_now();
        if (s->batch)
            fshape_batch(s);
        else
            for (unsigned i = 0; i < n && s->submitted < s->total; i++)
                fshape_submit(s, &s->jobs[i]);
        rc = ferry_loop_run_forever(s->loop);
        *ns = bench_now() - t0;
        rc = rc < 0 ? rc : g.fired ? -ETIMEDOUT : s->err;
    }
    if (s->loop != NULL) {
        ferry_loop_shutdown_default_executor(s->loop, BENCH_WAIT_TIMEOUT_NS);
        ferry_loop_free(s->loop);
    }
    free(s->jobs);
    bench_check(c, rc == 0, "offload: %s", strerror(-rc));
    return 0;
}

static bool fshape_verify(struct bench_ctx *c, const struct fshape *s)
{
    return bench_expect(c, "offloads completed", s->completed, s->total) &&
           bench_expect(c, "checksum", s->sum, s->want_sum);
}

int bench_ferry_run_rtt(struct bench_ctx *c)
{
    uint64_t n = bench_size(c, 10000, 200), ns = 0;
    struct fshape s = {.fn = noop_fn, .warm = n / 10};
    s.total = n + s.warm;
    if ((s.h = malloc(sizeof *s.h)) == NULL)
        return -ENOMEM;
    bench_hist_init(s.h);
    int rc = fshape_run(c, &s, 1, &ns);
    for (uint64_t i = 0; i < s.total; i++)
        s.want_sum += i ^ TOKEN;
    if (rc == 0 && fshape_verify(c, &s))
        bench_latency(c, s.h);
    free(s.h);
    return rc;
}

int bench_ferry_run_tput(struct bench_ctx *c)
{
    uint64_t ns = 0;
    struct fshape s = {.fn = noop_fn};
    s.total = bench_size(c, BENCH_TPUT_OFFLOADS, 5000);
    int rc = fshape_run(c, &s, WINDOW, &ns);
    for (uint64_t i = 0; i < s.total; i++)
        s.want_sum += i ^ TOKEN;
    if (rc == 0 && fshape_verify(c, &s))
        bench_tput(c, s.completed, ns);
    return rc;
}

int bench_ferry_run_tiny(struct bench_ctx *c)
{
    uint64_t ns = 0;
    struct fshape s = {.fn = tiny_fn, .batch = true};
    s.total = bench_size(c, 64 * BATCH, 2 * BATCH);
    int rc = fshape_run(c, &s, BATCH, &ns);
    for (uint64_t i = 0; i < s.total; i++)
        s.want_sum += (uintptr_t)bench_tiny_work(i);
    if (rc == 0 && fshape_verify(c, &s))
        bench_tput(c, s.completed, ns);
    return rc;
}

/* ---- ferry.idle ---- */

static void idle_stop(void *arg)
{
    int *fired = arg;
    (*fired)++;
}

/* Sleep the loop for a while with the pool warmed up: the process's CPU
 * time over that span is what an idle loop and pool cost. */
int bench_ferry_run_idle(struct bench_ctx *c)
{
    struct fshape s = {.fn = noop_fn};
    int fired = 0;
    uint64_t span = bench_size(c, 200, 20) * 1000000ull;
    int rc = ferry_loop_new(&s.loop, NULL);
    if (rc < 0)
        return rc;
    rc = fshape_warm(&s);
    uint64_t cpu0 = bench_cpu_ns(), t0 = bench_now();
    if (rc == 0)
        rc = ferry_call_later(s.loop, (int64_t)span, idle_stop, &fired, NULL,
                              NULL);
    while (rc == 0 && fired == 0)
        rc = ferry_loop_run_once(s.loop, -1);
    uint64_t cpu = bench_cpu_ns() - cpu0, wall = bench_now() - t0;
    ferry_loop_shutdown_default_executor(s.loop, BENCH_WAIT_TIMEOUT_NS);
    ferry_loop_free(s.loop);
    if (bench_check(c, rc == 0, "idle loop: %s", strerror(-rc)) &&
        bench_expect(c, "idle timer fired", (uint64_t)fired, 1))
        bench_metric(c, "idle cpu", "%", BENCH_LOWER,
                     100.0 * (double)cpu / (double)wall);
    return 0;
}
#else
/* ISO C wants a declaration in every translation unit. */
typedef int bench_ferry_bridge_not_built;
#endif /* FERRY_BENCH_HAVE_BRIDGE */
