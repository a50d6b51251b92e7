/*
 * bench/wl_ferry.c: ferry's own workloads, the same shapes as its peers.
 *
 *   ferry.wake   two ferry loops on two threads ping-pong with
 *                ferry_call_soon_threadsafe (round trip of two wake-ups of
 *                a sleeping loop)                          needs the loop
 *   ferry.post   2 producers -> ferry_call_soon_threadsafe  needs the loop
 *   ferry.sweep  the offloading sweep: call_soon chain inline, call_later
 *                1 ms lag timer; offload half through run_in_executor
 *                                                needs the loop (+ bridge)
 *   ferry.rtt, ferry.tput, ferry.tiny, ferry.idle: wl_ferry_bridge.c
 *                                                         need the bridge
 *
 * What is built depends on which parts exist in the tree (bench/meson.build):
 * FERRY_BENCH_HAVE_LOOP when loop/loop.c exists, FERRY_BENCH_HAVE_BRIDGE
 * when bridge/run_in_executor.c exists. Workloads not built stay registered
 * (--list shows why) so the report always says what was not measured.
 * The sweep's offloads use the default pool (pool == NULL), shut down at
 * the end of each rep.
 *
 * Every wait is bounded: a 100 ms guard timer on the measuring loop stops
 * it after BENCH_WAIT_TIMEOUT_NS or on a producer error, and the run fails.
 *
 * Thread: the measuring loop is owned by the main thread; ferry.wake's
 * responder loop by its own thread; offloaded functions run on the pool.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "post.h"
#include "sweep.h"
#include "wl_ferry.h"

#ifdef FERRY_BENCH_HAVE_LOOP
#define GUARD_NS (100ull * 1000 * 1000)

void bench_guard_cb(void *arg)
{
    struct bench_guard *g = arg;
    if ((g->error && atomic_load(g->error) != 0) || bench_now() > g->deadline) {
        g->fired = true;
        ferry_loop_stop(g->loop);
        return;
    }
    if (ferry_call_later(g->loop, (int64_t)GUARD_NS, bench_guard_cb, g, NULL,
                         NULL) != 0)
        ferry_loop_stop(g->loop);
}

int bench_guard_arm(struct bench_guard *g, ferry_loop *loop, _Atomic int *error)
{
    *g = (struct bench_guard){.loop = loop,
                              .deadline = bench_now() + BENCH_WAIT_TIMEOUT_NS,
                              .error = error};
    return ferry_call_later(loop, (int64_t)GUARD_NS, bench_guard_cb, g, NULL,
                            NULL);
}

/* ---- ferry.wake ---- */

struct fwake {
    ferry_loop *loop[2];    /* [0] main thread (pinger), [1] responder */
    _Atomic uint32_t ready; /* responder published loop[1] (or failed) */
    _Atomic int error;      /* first error of either side */
    uint64_t total, n, count, answered, t0;
    struct bench_hist h;
};

static void fwake_pong(void *arg);

static void fwake_ping(void *arg) /* on loop[1] */
{
    struct fwake *w = arg;
    w->answered++;
    int rc = ferry_call_soon_threadsafe(w->loop[0], fwake_pong, w, NULL);
    if (rc < 0)
        atomic_store(&w->error, rc);
}

static void fwake_pong(void *arg) /* on loop[0] */
{
    struct fwake *w = arg;
    uint64_t now = bench_now();
    if (++w->count > w->total - w->n)
        bench_hist_record(&w->h, now - w->t0);
    if (w->count == w->total) {
        ferry_loop_stop(w->loop[1]);
        ferry_loop_stop(w->loop[0]);
        return;
    }
    w->t0 = bench_now();
    int rc = ferry_call_soon_threadsafe(w->loop[1], fwake_ping, w, NULL);
    if (rc < 0)
        atomic_store(&w->error, rc);
}

static void *fwake_thread(void *arg)
{
    struct fwake *w = arg;
    int rc = ferry_loop_new(&w->loop[1], NULL);
    if (rc < 0) {
        atomic_store(&w->error, rc);
        atomic_store(&w->ready, 1);
        return NULL;
    }
    /* The pinger's reference: it posts to loop[1] until it has joined us,
     * and drops it then (loop.h: "Thread: any" needs a reference). */
    ferry_loop_ref(w->loop[1]);
    atomic_store_explicit(&w->ready, 1, memory_order_release);
    rc = ferry_loop_run_forever(w->loop[1]);
    if (rc < 0)
        atomic_store(&w->error, rc);
    ferry_loop_free(w->loop[1]);
    return NULL;
}

static int fwake_go(struct fwake *w)
{
    struct bench_guard g;
    int rc = bench_guard_arm(&g, w->loop[0], &w->error);
    w->t0 = bench_now();
    if (rc == 0)
        rc = ferry_call_soon_threadsafe(w->loop[1], fwake_ping, w, NULL);
    if (rc == 0)
        rc = ferry_loop_run_forever(w->loop[0]);
    /* Whatever happened, let the responder return. */
    ferry_loop_stop(w->loop[1]);
    return rc < 0 ? rc : g.fired ? -ETIMEDOUT : 0;
}

static int run_wake(struct bench_ctx *c)
{
    struct fwake *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    w->n = bench_size(c, 5000, 200);
    w->total = w->n + w->n / 10;
    bench_hist_init(&w->h);
    int rc = ferry_loop_new(&w->loop[0], NULL);
    pthread_t th;
    if (rc == 0 && (rc = -pthread_create(&th, NULL, fwake_thread, w)) < 0)
        ferry_loop_free(w->loop[0]);
    if (rc < 0) {
        free(w);
        return rc;
    }
    if (!bench_wait_u32(&w->ready, 1))
        abort(); /* the responder neither started nor failed in 10 s */
    rc = atomic_load(&w->error);
    if (rc == 0)
        rc = fwake_go(w);
    pthread_join(th, NULL);
    ferry_loop_free(w->loop[0]);
    if (w->loop[1] != NULL)
        ferry_loop_unref(w->loop[1]);
    int err = atomic_load(&w->error);
    if (bench_check(c, rc == 0 && err == 0, "ping-pong: %s",
                    strerror(rc ? -rc : -err)) &&
        bench_expect(c, "pings answered", w->answered, w->total))
        bench_latency(c, &w->h);
    free(w);
    return 0;
}

/* ---- ferry.post ---- */

struct fpost {
    ferry_loop *loop;
};

static void fpost_cb(void *arg)
{
    struct post_item *it = arg;
    struct fpost *p = it->run->backend;
    if (post_consume(it))
        ferry_loop_stop(p->loop);
}

static int fpost_item(void *backend, struct post_item *it)
{
    struct fpost *p = backend;
    return ferry_call_soon_threadsafe(p->loop, fpost_cb, it, NULL);
}

static int fpost_phase(struct post_run *r)
{
    struct fpost p;
    struct bench_guard g;
    int rc = ferry_loop_new(&p.loop, NULL);
    if (rc < 0)
        return rc;
    r->post = fpost_item;
    r->backend = &p;
    rc = bench_guard_arm(&g, p.loop, &r->error);
    if (rc == 0 && (rc = post_start(r)) == 0) {
        post_go(r);
        rc = ferry_loop_run_forever(p.loop);
        /* Producers hold no reference of their own: join before free. */
        post_join(r);
    }
    ferry_loop_free(p.loop);
    return rc < 0 ? rc : g.fired ? -ETIMEDOUT : 0;
}

static int run_post(struct bench_ctx *c)
{
    return post_bench(c, fpost_phase);
}

/* ---- ferry.sweep ---- */

struct fsweep {
    ferry_loop *loop;
    struct bench_guard g; /* deadline renewed at every cell */
    struct sweep_cell *s;
    uint64_t due; /* deadline of the armed lag timer, loop clock */
    int err;      /* first error of a registration */
    /* The inline chain's next item is queued. A cell can end (its last
     * tick stops the loop) with one queued: it runs first in the next
     * cell's run and must not go on working there (it would put inline
     * work into the next cell's measurement), so it is marked stale. */
    bool item_queued, stale_item;
};

static void fsw_finish(struct fsweep *u)
{
    if (sweep_finished(u->s) || u->err != 0)
        ferry_loop_stop(u->loop);
}

static void fsw_tick(void *arg)
{
    struct fsweep *u = arg;
    uint64_t now = bench_now();
    if (sweep_tick(u->s, now > u->due ? now - u->due : 0)) {
        u->due = ferry_loop_time(u->loop) + u->s->cfg->period_ns;
        int rc = ferry_call_later(u->loop, (int64_t)u->s->cfg->period_ns,
                                  fsw_tick, u, NULL, NULL);
        if (rc < 0)
            u->err = rc;
    }
    fsw_finish(u);
}

static void fsw_item(void *arg);

static int fsw_queue_item(struct fsweep *u)
{
    int rc = ferry_call_soon(u->loop, fsw_item, u, NULL, NULL);
    u->item_queued = rc == 0;
    return rc;
}

static void fsw_item(void *arg)
{
    struct fsweep *u = arg;
    if (u->stale_item) { /* the previous cell's: it ends here */
        u->stale_item = false;
        return;
    }
    u->item_queued = false;
    if (!sweep_submit(u->s)) {
        fsw_finish(u);
        return;
    }
    sweep_work(u->s->cfg);
    sweep_item_done(u->s);
    int rc = fsw_queue_item(u);
    if (rc < 0)
        u->err = rc;
}

#ifdef FERRY_BENCH_HAVE_BRIDGE
static int fsw_fn(void *arg, void **result)
{
    struct fsweep *u = arg;
    sweep_work(u->s->cfg);
    *result = NULL;
    return 0;
}

static void fsw_offload(struct fsweep *u);

static void fsw_done(ferry_future *f, void *arg)
{
    struct fsweep *u = arg;
    int rc = ferry_future_result(f, NULL);
    ferry_future_unref(f);
    if (rc < 0 && u->err == 0)
        u->err = rc;
    sweep_item_done(u->s);
    if (sweep_submit(u->s))
        fsw_offload(u);
    fsw_finish(u);
}

static void fsw_offload(struct fsweep *u)
{
    ferry_future *f;
    int rc = ferry_run_in_executor(u->loop, NULL, fsw_fn, u, NULL, &f);
    if (rc == 0) {
        rc = ferry_future_add_done_callback(f, fsw_done, u, NULL);
        if (rc < 0)
            ferry_future_unref(f);
    }
    if (rc < 0)
        u->err = rc;
}
#endif

static int fsw_run_cell(void *backend, struct sweep_cell *s)
{
    struct fsweep *u = backend;
    u->s = s;
    u->stale_item = u->item_queued;
    u->item_queued = false;
    u->g.deadline = bench_now() + BENCH_WAIT_TIMEOUT_NS;
    u->due = ferry_loop_time(u->loop) + s->cfg->period_ns;
    int rc = ferry_call_later(u->loop, (int64_t)s->cfg->period_ns, fsw_tick, u,
                              NULL, NULL);
    if (rc < 0)
        return rc;
    if (s->cfg->mode == SWEEP_INLINE) {
        rc = fsw_queue_item(u);
    } else {
#ifdef FERRY_BENCH_HAVE_BRIDGE
        for (unsigned i = 0; i < s->cfg->inflight && sweep_submit(s); i++)
            fsw_offload(u);
        rc = u->err;
#else
        rc = -ENOSYS;
#endif
    }
    if (rc == 0)
        rc = ferry_loop_run_forever(u->loop);
    if (rc == 0)
        rc = u->g.fired ? -ETIMEDOUT : u->err;
    return rc < 0 ? rc : sweep_finished(s) ? 0 : -EPROTO;
}

static int run_sweep(struct bench_ctx *c)
{
#ifdef FERRY_BENCH_HAVE_BRIDGE
    static const struct sweep_ops ops = {fsw_run_cell, true};
#else
    static const struct sweep_ops ops = {fsw_run_cell, false};
#endif
    struct fsweep u = {0};
    int rc = ferry_loop_new(&u.loop, NULL);
    if (rc < 0)
        return rc;
    rc = bench_guard_arm(&u.g, u.loop, NULL);
    if (rc == 0)
        rc = bench_sweep_run(c, &ops, &u);
#ifdef FERRY_BENCH_HAVE_BRIDGE
    ferry_loop_shutdown_default_executor(u.loop, BENCH_WAIT_TIMEOUT_NS);
#endif
    ferry_loop_free(u.loop);
    return rc;
}

#endif /* FERRY_BENCH_HAVE_LOOP */

/* ---- registry ---- */

#ifndef FERRY_BENCH_HAVE_LOOP
#define run_wake NULL
#define run_post NULL
#define run_sweep NULL
#define NEED_LOOP "needs ferry's loop (loop/loop.c, issue 2)"
#else
#define NEED_LOOP NULL
#endif
#ifdef FERRY_BENCH_HAVE_BRIDGE
#define run_rtt bench_ferry_run_rtt
#define run_tput bench_ferry_run_tput
#define run_tiny bench_ferry_run_tiny
#define run_idle bench_ferry_run_idle
#else
#define run_rtt NULL
#define run_tput NULL
#define run_tiny NULL
#define run_idle NULL
#define NEED_BRIDGE                                                            \
    "needs ferry_run_in_executor (bridge/run_in_executor.c, issue 4)"
#endif
#ifndef NEED_BRIDGE
#define NEED_BRIDGE NULL
#endif

static const struct bench_wl workloads[] = {
    {"ferry.wake", "wake", "ferry", NULL,
     "two ferry loops ping-pong with call_soon_threadsafe (round trip)",
     run_wake, NEED_LOOP},
    {"ferry.rtt", "rtt", "ferry", NULL,
     "run_in_executor no-op round trip, one in flight", run_rtt, NEED_BRIDGE},
    {"ferry.tput", "tput", "ferry", NULL,
     "run_in_executor no-op throughput, window 1024", run_tput, NEED_BRIDGE},
    {"ferry.post", "post", "ferry", NULL,
     "2 producers: ferry_call_soon_threadsafe", run_post, NEED_LOOP},
    {"ferry.tiny", "tiny", "ferry", NULL,
     "tiny tasks in batches of 4096 via run_in_executor", run_tiny,
     NEED_BRIDGE},
    {"ferry.idle", "idle", "ferry", NULL,
     "CPU used by an idle loop and a warmed default pool", run_idle,
     NEED_BRIDGE},
    {"ferry.sweep", "sweep", "ferry", NULL,
     "offloading sweep on a ferry loop (call_soon inline; offload half "
     "needs the bridge)",
     run_sweep, NEED_LOOP},
};

const struct bench_wl *bench_ferry_workloads(size_t *n)
{
    *n = FERRY__ARRAY_SIZE(workloads);
    return workloads;
}
