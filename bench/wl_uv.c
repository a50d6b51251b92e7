/*
 * bench/wl_uv.c: libuv 1.x as ferry's in-run peer (built when meson finds
 * libuv; FERRY_BENCH_HAVE_UV).
 *
 * Pool size: libuv's pool is process-global and sized once, from
 * UV_THREADPOOL_SIZE, when the first uv_queue_work starts it. main() calls
 * bench_uv_setup(threads) before any workload so libuv gets --threads
 * workers (default: the online CPUs, 2 here), overriding any inherited
 * value; the report prints the value.
 *
 * Workloads (each on its own uv_loop_t, closed at the end of the rep):
 *   uv.wake  two loops on two threads ping-pong through uv_async_send
 *            (round trip of two sleeping-loop wake-ups);
 *   uv.rtt   uv_queue_work of a no-op, one in flight (round trip);
 *   uv.tput  no-op uv_queue_work, window of 1024 in flight;
 *   uv.tiny  batches of 4096 tiny tasks through uv_queue_work;
 *   uv.post  2 producers -> mutex-protected intrusive queue +
 *            uv_async_send on every post (libuv coalesces the wake-ups);
 *            the async callback swaps the queue out and runs the items;
 *   uv.post.heap  the same with a malloc'd node per post, freed on the
 *            loop: the usual user code, and the same work per post as a
 *            (callback, argument) API like ferry's must do;
 *   uv.idle  CPU time of the process while a uv loop sleeps 200 ms on a
 *            timer with the pool warmed up (target: 0);
 *   uv.sweep the offloading sweep with a uv_timer for lag, a uv_idle that
 *            runs one inline item per iteration, and uv_queue_work.
 * Lag of a libuv timer is measured against the deadline libuv itself
 * computed, (uv_now() + 1 ms) after uv_update_time, in uv_hrtime's base:
 * libuv timers have millisecond resolution, and this keeps that rounding
 * out of the lag.
 *
 * Verification as in wl_naive.c: per-job tokens summed and checked, counts
 * of completions, status of every after_work callback.
 *
 * Thread: loop callbacks on the main thread (uv.wake's responder loop on
 * its own thread); work callbacks on libuv's pool.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench.h"
#include "post.h"
#include "sweep.h"

#define WINDOW 1024
#define BATCH 4096
#define TOKEN 0x5bd1e995u

unsigned bench_uv_setup(unsigned threads)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%u", threads);
    setenv("UV_THREADPOOL_SIZE", buf, 1);
    return threads;
}

const char *bench_uv_version(void)
{
    return uv_version_string();
}

/* ---- pool shapes: rtt, tput, tiny ---- */

struct uv_shape;

struct uv_job {
    uv_work_t req;
    struct uv_shape *s;
    uint64_t seq, val, t0;
};

struct uv_shape {
    uv_loop_t loop;
    struct uv_job *jobs;
    uv_work_cb work;
    uint64_t total, submitted, completed, sum, want_sum, warm;
    int status;           /* first non-zero after_work status */
    bool batch;           /* tiny: resubmit per batch, not per job */
    struct bench_hist *h; /* rtt only */
};

static void noop_work(uv_work_t *req)
{
    struct uv_job *j = req->data;
    j->val = j->seq ^ TOKEN;
}

static void tiny_work(uv_work_t *req)
{
    struct uv_job *j = req->data;
    j->val = bench_tiny_work(j->seq);
}

static void after_work(uv_work_t *req, int status);

static void submit(struct uv_shape *s, struct uv_job *j)
{
    j->seq = s->submitted++;
    j->req.data = j;
    if (s->h != NULL) /* rtt only: a clock read is not throughput's work */
        j->t0 = bench_now();
    int rc = uv_queue_work(&s->loop, &j->req, s->work, after_work);
    if (rc != 0 && s->status == 0)
        s->status = rc;
}

static void submit_batch(struct uv_shape *s)
{
    for (unsigned i = 0; i < BATCH && s->submitted < s->total; i++)
        submit(s, &s->jobs[i]);
}

static void after_work(uv_work_t *req, int status)
{
    struct uv_job *j = req->data;
    struct uv_shape *s = j->s;
    if (s->h != NULL && s->completed >= s->warm)
        bench_hist_record(s->h, bench_now() - j->t0);
    if (status != 0 && s->status == 0)
        s->status = status;
    s->completed++;
    s->sum += j->val;
    if (s->submitted >= s->total || s->status != 0)
        return;
    if (!s->batch)
        submit(s, j);
    else if (s->completed == s->submitted)
        submit_batch(s);
}

/* Run a shape: n jobs in flight at first, total completions, timed. */
static int shape_run(struct bench_ctx *c, struct uv_shape *s, unsigned n,
                     uint64_t *ns)
{
    s->jobs = calloc(n, sizeof *s->jobs);
    int rc = s->jobs ? uv_loop_init(&s->loop) : UV_ENOMEM;
    if (rc != 0) {
        free(s->jobs);
        return rc == UV_ENOMEM ? -ENOMEM : rc;
    }
    for (unsigned i = 0; i < n; i++)
        s->jobs[i].s = s;
    uint64_t t0 = bench_now();
    if (s->batch)
        submit_batch(s);
    else
        for (unsigned i = 0; i < n && s->submitted < s->total; i++)
            submit(s, &s->jobs[i]);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    *ns = bench_now() - t0;
    bench_check(c, uv_loop_close(&s->loop) == 0, "uv_loop_close: busy");
    /* uv_strerror allocates for codes it does not know, 0 included. */
    bench_check(c, s->status == 0, "after_work status %s",
                s->status ? uv_strerror(s->status) : "");
    free(s->jobs);
    return 0;
}

static bool shape_verify(struct bench_ctx *c, const struct uv_shape *s)
{
    return bench_expect(c, "jobs completed", s->completed, s->total) &&
           bench_expect(c, "checksum", s->sum, s->want_sum);
}

static int run_rtt(struct bench_ctx *c)
{
    uint64_t n = bench_size(c, 10000, 200), ns;
    struct uv_shape s = {.work = noop_work, .warm = n / 10};
    s.total = n + s.warm;
    if ((s.h = malloc(sizeof *s.h)) == NULL)
        return -ENOMEM;
    bench_hist_init(s.h);
    int rc = shape_run(c, &s, 1, &ns);
    for (uint64_t i = 0; i < s.total; i++)
        s.want_sum += i ^ TOKEN;
    if (rc == 0 && shape_verify(c, &s))
        bench_latency(c, s.h);
    free(s.h);
    return rc;
}

static int run_tput(struct bench_ctx *c)
{
    uint64_t ns = 0;
    struct uv_shape s = {.work = noop_work};
    s.total = bench_size(c, BENCH_TPUT_OFFLOADS, 5000);
    int rc = shape_run(c, &s, WINDOW, &ns);
    for (uint64_t i = 0; i < s.total; i++)
        s.want_sum += i ^ TOKEN;
    if (rc == 0 && shape_verify(c, &s))
        bench_tput(c, s.completed, ns);
    return rc;
}

static int run_tiny(struct bench_ctx *c)
{
    uint64_t ns = 0;
    struct uv_shape s = {.work = tiny_work, .batch = true};
    s.total = bench_size(c, 64 * BATCH, 2 * BATCH);
    int rc = shape_run(c, &s, BATCH, &ns);
    for (uint64_t i = 0; i < s.total; i++)
        s.want_sum += bench_tiny_work(i);
    if (rc == 0 && shape_verify(c, &s))
        bench_tput(c, s.completed, ns);
    return rc;
}

/* ---- uv.idle ---- */

static void idle_fired(uv_timer_t *t)
{
    (*(int *)t->data)++;
}

/* A loop sleeping on a timer while libuv's pool is warm: the process's CPU
 * time over the span is what idling costs. */
static int run_idle(struct bench_ctx *c)
{
    uint64_t ns = 0;
    struct uv_shape s = {.work = noop_work, .total = 1, .want_sum = TOKEN};
    int rc = shape_run(c, &s, 1, &ns); /* warms the pool */
    uv_loop_t loop;
    uv_timer_t t;
    int fired = 0;
    if (rc < 0 || uv_loop_init(&loop) != 0)
        return rc < 0 ? rc : -ENOMEM;
    uv_timer_init(&loop, &t);
    t.data = &fired;
    uv_timer_start(&t, idle_fired, bench_size(c, 200, 20), 0);
    uint64_t cpu0 = bench_cpu_ns(), t0 = bench_now();
    uv_run(&loop, UV_RUN_DEFAULT);
    uint64_t cpu = bench_cpu_ns() - cpu0, wall = bench_now() - t0;
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    bench_check(c, uv_loop_close(&loop) == 0, "uv_loop_close: busy");
    if (shape_verify(c, &s) &&
        bench_expect(c, "idle timer fired", (uint64_t)fired, 1))
        bench_metric(c, "idle cpu", "%", BENCH_LOWER,
                     100.0 * (double)cpu / (double)wall);
    return 0;
}

/* ---- uv.wake: two loops, uv_async_send ping-pong ---- */

struct uv_wake {
    uv_loop_t loop[2]; /* [0] main thread (pinger), [1] responder */
    uv_async_t as[2];
    uint64_t total, n, count, answered, t0;
    _Atomic bool stop; /* set by the pinger before its last send */
    struct bench_hist h;
};

static void wake_pong(uv_async_t *a)
{
    struct uv_wake *w = a->data;
    uint64_t now = bench_now();
    if (++w->count > w->total - w->n)
        bench_hist_record(&w->h, now - w->t0);
    if (w->count == w->total) {
        atomic_store(&w->stop, true);
        uv_async_send(&w->as[1]);
        uv_close((uv_handle_t *)&w->as[0], NULL);
        return;
    }
    w->t0 = bench_now();
    uv_async_send(&w->as[1]);
}

static void wake_ping(uv_async_t *a)
{
    struct uv_wake *w = a->data;
    if (atomic_load(&w->stop)) {
        uv_close((uv_handle_t *)&w->as[1], NULL);
        return;
    }
    w->answered++;
    uv_async_send(&w->as[0]);
}

static void *wake_thread(void *arg)
{
    struct uv_wake *w = arg;
    uv_run(&w->loop[1], UV_RUN_DEFAULT);
    return NULL;
}

static int run_wake(struct bench_ctx *c)
{
    struct uv_wake *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    w->n = bench_size(c, 5000, 200);
    w->total = w->n + w->n / 10;
    bench_hist_init(&w->h);
    uv_async_cb cbs[2] = {wake_pong, wake_ping};
    for (int i = 0; i < 2; i++) {
        if (uv_loop_init(&w->loop[i]) != 0 ||
            uv_async_init(&w->loop[i], &w->as[i], cbs[i]) != 0)
            abort(); /* only fails on fd exhaustion: not a benchmark case */
        w->as[i].data = w;
    }
    pthread_t th;
    int rc = -pthread_create(&th, NULL, wake_thread, w);
    if (rc == 0) {
        w->t0 = bench_now();
        uv_async_send(&w->as[1]);
        uv_run(&w->loop[0], UV_RUN_DEFAULT);
        pthread_join(th, NULL);
    }
    for (int i = 0; i < 2; i++)
        bench_check(c, uv_loop_close(&w->loop[i]) == 0 || rc != 0,
                    "uv_loop_close: busy");
    if (rc == 0 && bench_expect(c, "pings answered", w->answered, w->total))
        bench_latency(c, &w->h);
    free(w);
    return rc;
}

/* ---- uv.post: mutex queue + uv_async_send ---- */

struct uv_msg;

struct uv_post {
    bool heap; /* uv.post.heap: a malloc'd node per post */
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t guard;              /* checks producer errors every 100 ms */
    pthread_mutex_t mu;            /* protects the two lists */
    struct post_item *head, *tail; /* uv.post: the items themselves */
    struct uv_msg *mhead, *mtail;  /* uv.post.heap */
    struct post_run *r;
    uint64_t deadline; /* give up after BENCH_WAIT_TIMEOUT_NS */
    bool done;
};

/* uv.post.heap: what a libuv user typically writes to post fn(arg): a heap
 * node per post (malloc in the producer, free on the loop), the same
 * (callback, argument) shape as ferry_call_soon_threadsafe. uv.post
 * queues the preallocated items themselves: libuv's best case. */
struct uv_msg {
    struct uv_msg *next;
    struct post_item *it;
};

static int uv_post_item(void *backend, struct post_item *it)
{
    struct uv_post *p = backend;
    struct uv_msg *m = NULL;
    if (p->heap && (m = malloc(sizeof *m)) == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&p->mu);
    if (m != NULL) {
        *m = (struct uv_msg){.it = it};
        *(p->mtail ? &p->mtail->next : &p->mhead) = m;
        p->mtail = m;
    } else {
        it->next = NULL;
        *(p->tail ? &p->tail->next : &p->head) = it;
        p->tail = it;
    }
    pthread_mutex_unlock(&p->mu);
    return uv_async_send(&p->async);
}

static void uv_post_drain(uv_async_t *a)
{
    struct uv_post *p = a->data;
    pthread_mutex_lock(&p->mu);
    struct post_item *it = p->head;
    struct uv_msg *m = p->mhead;
    p->head = p->tail = NULL;
    p->mhead = p->mtail = NULL;
    pthread_mutex_unlock(&p->mu);
    for (struct post_item *next; it != NULL; it = next) {
        next = it->next;
        p->done |= post_consume(it);
    }
    for (struct uv_msg *next; m != NULL; m = next) {
        next = m->next;
        p->done |= post_consume(m->it);
        free(m);
    }
    if (p->done)
        uv_stop(&p->loop);
}

static void uv_post_guard(uv_timer_t *t)
{
    struct uv_post *p = t->data;
    if (atomic_load(&p->r->error) != 0 || bench_now() > p->deadline)
        uv_stop(&p->loop);
}

static bool post_heap; /* the variant the current run measures */

static int uv_post_phase(struct post_run *r)
{
    struct uv_post p = {.r = r, .heap = post_heap};
    pthread_mutex_init(&p.mu, NULL);
    if (uv_loop_init(&p.loop) != 0 ||
        uv_async_init(&p.loop, &p.async, uv_post_drain) != 0 ||
        uv_timer_init(&p.loop, &p.guard) != 0)
        abort(); /* only fails on fd exhaustion */
    p.async.data = p.guard.data = &p;
    uv_timer_start(&p.guard, uv_post_guard, 100, 100);
    r->post = uv_post_item;
    r->backend = &p;
    int rc = post_start(r);
    if (rc == 0) {
        p.deadline = bench_now() + BENCH_WAIT_TIMEOUT_NS;
        post_go(r);
        uv_run(&p.loop, UV_RUN_DEFAULT);
        /* Producers may still be inside uv_async_send: join before close. */
        post_join(r);
    }
    uv_close((uv_handle_t *)&p.async, NULL);
    uv_close((uv_handle_t *)&p.guard, NULL);
    uv_run(&p.loop, UV_RUN_DEFAULT);
    uv_loop_close(&p.loop);
    pthread_mutex_destroy(&p.mu);
    return rc;
}

static int run_post(struct bench_ctx *c)
{
    post_heap = false;
    return post_bench(c, uv_post_phase);
}

static int run_post_heap(struct bench_ctx *c)
{
    post_heap = true;
    return post_bench(c, uv_post_phase);
}

/* ---- uv.sweep ---- */

struct uv_sweep {
    uv_loop_t loop;
    uv_timer_t timer;
    uv_idle_t idle;
    uv_work_t *reqs; /* offload: cfg->inflight of them */
    struct sweep_cell *s;
    uint64_t due_ns; /* libuv's deadline of the armed timer */
};

static void sw_timer(uv_timer_t *t);

static void sw_arm(struct uv_sweep *u)
{
    uv_update_time(&u->loop);
    u->due_ns = (uv_now(&u->loop) + 1) * 1000000ull;
    uv_timer_start(&u->timer, sw_timer, 1, 0);
}

static void sw_timer(uv_timer_t *t)
{
    struct uv_sweep *u = t->data;
    uint64_t now = uv_hrtime();
    if (sweep_tick(u->s, now > u->due_ns ? now - u->due_ns : 0))
        sw_arm(u);
}

static void sw_idle(uv_idle_t *h)
{
    struct uv_sweep *u = h->data;
    if (!sweep_submit(u->s)) {
        uv_idle_stop(h);
        return;
    }
    sweep_work(u->s->cfg);
    sweep_item_done(u->s);
}

static void sw_work(uv_work_t *req)
{
    struct uv_sweep *u = req->data;
    sweep_work(u->s->cfg);
}

static void sw_after(uv_work_t *req, int status)
{
    struct uv_sweep *u = req->data;
    (void)status; /* never cancelled here; a failure shows as a lost item */
    sweep_item_done(u->s);
    if (sweep_submit(u->s))
        uv_queue_work(&u->loop, req, sw_work, sw_after);
}

static int sw_run_cell(void *backend, struct sweep_cell *s)
{
    struct uv_sweep *u = backend;
    u->s = s;
    sw_arm(u);
    if (s->cfg->mode == SWEEP_INLINE) {
        uv_idle_start(&u->idle, sw_idle);
    } else {
        for (unsigned i = 0; i < s->cfg->inflight && sweep_submit(s); i++)
            if (uv_queue_work(&u->loop, &u->reqs[i], sw_work, sw_after) != 0)
                return -EAGAIN;
    }
    uv_run(&u->loop, UV_RUN_DEFAULT);
    return sweep_finished(s) ? 0 : -EPROTO;
}

static int run_sweep(struct bench_ctx *c)
{
    static const struct sweep_ops ops = {sw_run_cell, true};
    struct uv_sweep *u = calloc(1, sizeof *u);
    if (u == NULL)
        return -ENOMEM;
    u->reqs = calloc(c->cfg->threads, sizeof *u->reqs);
    if (u->reqs == NULL || uv_loop_init(&u->loop) != 0) {
        free(u->reqs);
        free(u);
        return -ENOMEM;
    }
    uv_timer_init(&u->loop, &u->timer);
    uv_idle_init(&u->loop, &u->idle);
    u->timer.data = u->idle.data = u;
    for (unsigned i = 0; i < c->cfg->threads; i++)
        u->reqs[i].data = u;
    int rc = bench_sweep_run(c, &ops, u);
    uv_close((uv_handle_t *)&u->timer, NULL);
    uv_close((uv_handle_t *)&u->idle, NULL);
    uv_run(&u->loop, UV_RUN_DEFAULT);
    bench_check(c, uv_loop_close(&u->loop) == 0, "uv_loop_close: busy");
    free(u->reqs);
    free(u);
    return rc;
}

static const struct bench_wl workloads[] = {
    {"uv.wake", "wake", "libuv", "ferry.wake",
     "two uv loops ping-pong through uv_async_send (round trip)", run_wake,
     NULL},
    {"uv.rtt", "rtt", "libuv", "ferry.rtt",
     "uv_queue_work no-op round trip, one in flight", run_rtt, NULL},
    {"uv.tput", "tput", "libuv", "ferry.tput",
     "uv_queue_work no-op throughput, window 1024", run_tput, NULL},
    {"uv.post", "post", "libuv", "ferry.post",
     "2 producers: mutex queue of the items + uv_async_send", run_post, NULL},
    {"uv.post.heap", "post", "libuv", "ferry.post",
     "2 producers: mutex queue of malloc'd nodes + uv_async_send",
     run_post_heap, NULL},
    {"uv.tiny", "tiny", "libuv", "ferry.tiny",
     "uv_queue_work tiny tasks in batches of 4096", run_tiny, NULL},
    {"uv.idle", "idle", "libuv", "ferry.idle",
     "CPU used by an idle uv loop and warmed uv pool", run_idle, NULL},
    {"uv.sweep", "sweep", "libuv", "ferry.sweep",
     "offloading sweep on a uv loop (uv_idle inline, uv_queue_work)", run_sweep,
     NULL},
};

const struct bench_wl *bench_uv_workloads(size_t *n)
{
    *n = FERRY__ARRAY_SIZE(workloads);
    return workloads;
}
