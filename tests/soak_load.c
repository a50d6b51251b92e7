/*
 * tests/soak_load.c: the soak's load (issue 6 §5; the driver, which
 * samples and asserts, is soak.c).
 *
 * Two loops on two threads share one pool; a third thread (the producer)
 * completes promises, posts, and calls run_threadsafe on both loops. Each
 * loop, every millisecond, draws from its random generator:
 *   - offloads (run_in_executor) of random spin or sleep, some cancelled
 *     at once, some later, some bounded by ferry_future_timeout;
 *   - timers of random delay, some cancelled; call_soon bursts;
 *   - promises handed to the producer, some cancelled first;
 *   - ping-pong over a socketpair (loop A writes, loop B echoes, both
 *     through fd watchers), and one-shot writer watchers on loop B;
 * and a 1 ms periodic timer measures each loop's lag (its lateness).
 * Once the driver sets soak_stop_load, each loop drains its own work,
 * then runs until the producer has gone, and frees itself. Every thread
 * counts into its own struct lp fields or atomics; none asserts.
 */
#include <string.h>
#include <sys/socket.h>

#include "soak.h"

#define MAX_OFFLOADS 16
#define MAX_PROMISES 8
#define PQ_CAP 64

static uint64_t rnd(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* ---- result values: made and freed on any thread ---- */

_Atomic long soak_values_made, soak_values_freed;

static void *new_value(uint64_t *rng)
{
    /* Small sizes: with sizes up to 2 KB, malloc'd on one thread and freed
     * on another, glibc's per-thread arenas fragment and RSS creeps up by
     * a few kB/s while the bytes in use stay flat (mallinfo2); that would
     * measure the allocator, not ferry. */
    size_t n = 16 + rnd(rng) % 4 * 16;
    void *v = malloc(n);
    if (v == NULL)
        abort();
    memset(v, 0xab, n);
    atomic_fetch_add(&soak_values_made, 1);
    return v;
}

static void free_value(void *v)
{
    if (v == NULL)
        return;
    free(v);
    atomic_fetch_add(&soak_values_freed, 1);
}

/* ---- shared state ---- */

static _Atomic int producer_done; /* the producer has exited */

/* promises handed from the loops to the producer */
static struct {
    pthread_mutex_t mu;
    ferry_promise *q[PQ_CAP];
    int n;
} pq = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- work on the pool ---- */

_Atomic long soak_work_ran;

static int work(void *arg, void **result)
{
    uint64_t w = (uintptr_t)arg;
    uint64_t rng = w | 1;
    atomic_fetch_add(&soak_work_ran, 1);
    if (w & 1) { /* CPU: spin up to 200 us, stop early if cancelled */
        uint64_t end = now_ns() + rnd(&rng) % 200000;
        while (now_ns() < end && !ferry_task_cancelled())
            ;
    } else { /* blocking: sleep up to 3 ms */
        sleep_ns(rnd(&rng) % 3000000);
    }
    if ((w & 6) == 6)
        return -EIO;
    *result = new_value(&rng);
    return 0;
}

/* ---- loop-side callbacks (owner thread) ---- */

static void offload_done(ferry_future *f, void *arg)
{
    struct lp *l = arg;
    switch (ferry_future_result(f, NULL)) {
    case 0:
        l->off_ok++;
        break;
    case -EIO:
        l->off_err++;
        break;
    case -ECANCELED:
        l->off_cancelled++;
        break;
    case -ETIMEDOUT:
        l->off_timedout++;
        break;
    default:
        abort(); /* counted nowhere: the balance check would say */
    }
    l->offloads--;
    ferry_future_unref(f);
}

static void timer_fired(void *arg)
{
    ((struct lp *)arg)->tm_fired++;
}

static void timer_disposed(void *arg)
{
    ((struct lp *)arg)->tm_disposed++;
}

static void soon_ran(void *arg)
{
    ((struct lp *)arg)->soon_ran++;
}

static void soon_disposed(void *arg)
{
    ((struct lp *)arg)->soon_disposed++;
}

static void post_ran(void *arg)
{
    ((struct lp *)arg)->posts_ran++;
}

static void post_disposed(void *arg)
{
    ((struct lp *)arg)->posts_disposed++;
}

static void promise_done(ferry_future *f, void *arg)
{
    struct lp *l = arg;
    switch (ferry_future_result(f, NULL)) {
    case 0:
        l->prom_value++;
        break;
    case -EIO:
        l->prom_error++;
        break;
    case -ECANCELED:
        l->prom_cancelled++;
        break;
    default:
        abort();
    }
    l->prom_done++;
    l->promises--;
    ferry_future_unref(f);
}

static int ts_fn(void *arg, void **result)
{
    struct lp *l = arg;
    l->ts_ran++;
    *result = new_value(&l->rng);
    return 0;
}

/* Loop A reads pongs; loop B reads pings and echoes them. */
static void on_readable(void *arg)
{
    struct lp *l = arg;
    char buf[256];
    ssize_t n;
    while ((n = recv(l->fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        if (l->id == 0) {
            l->pongs += (uint64_t)n;
            l->ping_out = false;
        } else {
            l->echoed += (uint64_t)n;
            if (send(l->fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
                abort(); /* a few bytes always fit */
        }
    }
}

static void on_writable(void *arg)
{
    struct lp *l = arg;
    l->wr_fired++;
    ferry_remove_writer(l->loop, l->fd); /* one-shot: disposes itself */
}

static void writer_disposed(void *arg)
{
    struct lp *l = arg;
    l->wr_disposed++;
    l->writer_on = false;
}

static void lag_tick(void *arg)
{
    struct lp *l = arg;
    uint64_t now = ferry_loop_time(l->loop);
    uint64_t late = now > l->lag_due ? now - l->lag_due : 0;
    uint64_t b = late / LAG_BUCKET_NS;
    l->hist[b < LAG_BUCKETS ? b : LAG_BUCKETS - 1]++;
    l->lag_n++;
    if (late > l->lag_max) {
        l->lag_max = late;
        l->lag_max_at = now;
    }
    l->lag_due += 1000000;
    if (l->lag_due <= now) /* fell behind: measure from now on */
        l->lag_due = now + 1000000;
    if (ferry_call_at(l->loop, l->lag_due, lag_tick, l, NULL, NULL) != 0)
        abort();
}

/* ---- the load, drawn every millisecond ---- */

static void offload(struct lp *l)
{
    if (l->offloads >= MAX_OFFLOADS)
        return;
    uint64_t r = rnd(&l->rng);
    ferry_future *f;
    if (ferry_run_in_executor(l->loop, soak_pool, work, (void *)(uintptr_t)r,
                              free_value, &f) != 0)
        abort();
    l->off_submitted++;
    l->offloads++;
    ferry_future_ref(f); /* the done callback's, dropped there */
    if (ferry_future_add_done_callback(f, offload_done, l, NULL) != 0)
        abort();
    switch ((r >> 8) % 16) {
    case 0:
    case 1: /* cancel at once: before it starts, or while it runs */
        l->off_cancel_calls++;
        (void)ferry_future_cancel(f);
        break;
    case 2:
    case 3:
        if (ferry_future_timeout(f, 1000000) != 0)
            abort();
        break;
    case 4:
        if (l->nlater < MAX_LATER) {
            l->later[l->nlater++] = f;
            return; /* our reference goes with the later cancel */
        }
        break;
    default:
        break;
    }
    ferry_future_unref(f);
}

static void cancel_later(struct lp *l)
{
    for (int i = 0; i < l->nlater; i++) {
        l->off_cancel_calls++;
        (void)ferry_future_cancel(l->later[i]);
        ferry_future_unref(l->later[i]);
    }
    l->nlater = 0;
}

static void timer(struct lp *l)
{
    uint64_t r = rnd(&l->rng);
    ferry_handle *h = NULL;
    bool keep = l->ntimers < MAX_TIMERS && (r & 1);
    if (ferry_call_later(l->loop, (int64_t)((r >> 4) % 5000000), timer_fired, l,
                         timer_disposed, keep ? &h : NULL) != 0)
        abort();
    l->tm_sched++;
    if (keep)
        l->timers[l->ntimers++] = h;
}

static void cancel_timers(struct lp *l, bool all)
{
    int kept = 0;
    for (int i = 0; i < l->ntimers; i++) {
        ferry_handle *h = l->timers[i];
        if (all || rnd(&l->rng) % 4 == 0) {
            int rc = ferry_handle_cancel(h); /* 0, or -EALREADY: it ran */
            if (rc == 0)
                l->tm_cancels++;
            else if (rc != -EALREADY)
                abort();
            ferry_handle_unref(h);
        } else {
            l->timers[kept++] = h;
        }
    }
    l->ntimers = kept;
}

static void promise(struct lp *l)
{
    if (l->promises >= MAX_PROMISES)
        return;
    ferry_promise *p;
    ferry_future *f;
    pthread_mutex_lock(&pq.mu);
    bool room = pq.n < PQ_CAP;
    pthread_mutex_unlock(&pq.mu);
    if (!room)
        return;
    if (ferry_promise_new(l->loop, free_value, &p, &f) != 0)
        abort();
    l->prom_made++;
    l->promises++;
    if (ferry_future_add_done_callback(f, promise_done, l, NULL) != 0)
        abort();
    if (rnd(&l->rng) % 8 == 0)
        (void)ferry_future_cancel(f); /* the producer's value is disposed */
    pthread_mutex_lock(&pq.mu);
    pq.q[pq.n++] = p; /* our reference goes to the producer */
    pthread_mutex_unlock(&pq.mu);
}

static void drive(void *arg);

static void load(struct lp *l)
{
    uint64_t r = rnd(&l->rng);
    if (r % 2 == 0)
        offload(l);
    if ((r >> 4) % 3 == 0)
        timer(l);
    if ((r >> 8) % 8 == 0)
        cancel_timers(l, false);
    if ((r >> 12) % 16 == 0)
        cancel_later(l);
    if ((r >> 16) % 4 == 0) {
        int n = 1 + (int)((r >> 20) % 4);
        for (int i = 0; i < n; i++) {
            if (ferry_call_soon(l->loop, soon_ran, l, soon_disposed, NULL) != 0)
                abort();
            l->soon_sched++;
        }
    }
    if ((r >> 24) % 4 == 0)
        promise(l);
    if (l->id == 0 && !l->ping_out) {
        char c = 'p';
        if (send(l->fd, &c, 1, MSG_NOSIGNAL) != 1)
            abort();
        l->pings++;
        l->ping_out = true;
    }
    if (l->id == 1 && !l->writer_on && (r >> 28) % 16 == 0) {
        if (ferry_add_writer(l->loop, l->fd, on_writable, l, writer_disposed) !=
            0)
            abort();
        l->wr_added++;
        l->writer_on = true;
    }
}

static void drive(void *arg)
{
    struct lp *l = arg;
    if (!atomic_load(&soak_stop_load))
        load(l);
    if (ferry_call_later(l->loop, 1000000, drive, l, NULL, NULL) != 0)
        abort();
}

void *soak_loop_main(void *arg)
{
    struct lp *l = arg;
    if (ferry_loop_new(&l->loop, NULL) != 0)
        abort();
    ferry_loop_ref(l->loop); /* the producer's, dropped by it */
    l->loop_copy = l->loop;
    atomic_store(&l->ready, 1);
    if (ferry_add_reader(l->loop, l->fd, on_readable, l, NULL) != 0)
        abort();
    l->lag_due = ferry_loop_time(l->loop) + 1000000;
    if (ferry_call_at(l->loop, l->lag_due, lag_tick, l, NULL, NULL) != 0 ||
        ferry_call_later(l->loop, 1000000, drive, l, NULL, NULL) != 0)
        abort();
    /* Run until the load stops and our own work has drained... */
    for (;;) {
        if (ferry_loop_run_once(l->loop, 5000000) != 0)
            abort();
        if (!atomic_load(&soak_stop_load))
            continue;
        cancel_later(l);
        cancel_timers(l, true);
        if (l->offloads == 0 && l->promises == 0 && !l->ping_out)
            break;
    }
    atomic_store(&l->quiesced, 1);
    /* ...and until the producer, whose posts may still come, is gone. */
    while (!atomic_load(&producer_done))
        if (ferry_loop_run_once(l->loop, 5000000) != 0)
            abort();
    for (int i = 0; i < 3; i++)
        ferry_loop_run_once(l->loop, 0);
    ferry_loop_stats(l->loop, &l->st);
    ferry_remove_reader(l->loop, l->fd);
    l->free_rc = ferry_loop_free(l->loop); /* disposes what is left */
    return NULL;
}

/* ---- the producer: promises, posts, run_threadsafe ---- */

/* Complete the promises the loops handed over: reject a quarter, resolve
 * the rest, and complete an eighth twice (the second value is disposed).
 * Returns how many there were. */
static int complete_promises(uint64_t *rng)
{
    ferry_promise *batch[PQ_CAP];
    pthread_mutex_lock(&pq.mu);
    int n = pq.n;
    memcpy(batch, pq.q, (size_t)n * sizeof batch[0]);
    pq.n = 0;
    pthread_mutex_unlock(&pq.mu);
    for (int i = 0; i < n; i++) {
        uint64_t r = rnd(rng);
        if (r % 4 == 0)
            ferry_promise_reject(batch[i], -EIO);
        else
            ferry_promise_resolve(batch[i], new_value(rng));
        if ((r >> 4) % 8 == 0) /* a second completion: disposed */
            if (ferry_promise_resolve(batch[i], new_value(rng)) != -EALREADY)
                abort();
        ferry_promise_unref(batch[i]);
    }
    return n;
}

/* A run_threadsafe on l's loop, waited for 1 ms, then cancelled. */
static void run_threadsafe_once(struct lp *l)
{
    ferry_future *f;
    if (ferry_run_threadsafe(l->loop_copy, ts_fn, l, free_value, &f) != 0) {
        atomic_fetch_add(&l->ts_refused, 1);
        return;
    }
    atomic_fetch_add(&l->ts_req, 1);
    if (ferry_future_wait(f, 1000000) == -ETIMEDOUT)
        (void)ferry_future_cancel(f);
    if (ferry_future_wait(f, 0) != 0)
        abort(); /* done: cancelled, if nothing else */
    int rc = ferry_future_result(f, NULL);
    if (rc == 0)
        atomic_fetch_add(&l->ts_ok, 1);
    else if (rc == -ECANCELED)
        atomic_fetch_add(&l->ts_cancelled, 1);
    else
        atomic_fetch_add(&l->ts_other, 1);
    ferry_future_unref(f);
}

/* On a random loop: read its stats, post, and sometimes run_threadsafe. */
static void poke_loop(uint64_t *rng)
{
    struct lp *l = &soak_loops[rnd(rng) % 2];
    struct ferry_loop_stats st; /* a monitor reads them: any thread */
    if (ferry_loop_stats(l->loop_copy, &st) != 0)
        abort();
    if (ferry_call_soon_threadsafe(l->loop_copy, post_ran, l, post_disposed) ==
        0)
        atomic_fetch_add(&l->posts_ok, 1);
    else
        atomic_fetch_add(&l->posts_refused, 1);
    if (rnd(rng) % 4 == 0)
        run_threadsafe_once(l);
}

void *soak_producer_main(void *arg)
{
    (void)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    while (!atomic_load(&soak_loops[0].ready) ||
           !atomic_load(&soak_loops[1].ready))
        sleep_ns(100000);
    for (;;) {
        int n = complete_promises(&rng);
        bool stopping = atomic_load(&soak_stop_load);
        if (stopping && n == 0 && atomic_load(&soak_loops[0].quiesced) &&
            atomic_load(&soak_loops[1].quiesced))
            break;
        if (!stopping)
            poke_loop(&rng);
        sleep_ns(200000);
    }
    for (int i = 0; i < 2; i++)
        ferry_loop_unref(soak_loops[i].loop_copy);
    atomic_store(&producer_done, 1);
    return NULL;
}
