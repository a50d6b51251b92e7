/*
 * tests/soak.c: mixed load for a fixed time (issue 6 §5), suite 'soak'.
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
 *
 * The main thread samples RSS (/proc/self/statm) and the fd count
 * (/proc/self/fd) every 100 ms. After FERRY_SOAK_SECONDS (120; use 10
 * while developing) the load stops, everything drains and closes, and
 * the test asserts:
 *   - RSS flat: the mean of the last quarter within 5% of the mean just
 *     after warm-up (the first fifth). Plain builds only: ASan's
 *     quarantine and TSan's shadow grow by design;
 *   - the fd count constant while running, and back to its start value;
 *   - every count balances (offloads, timers, callbacks, posts, promises,
 *     run_threadsafe, ping-pong, watchers, result values, pool tasks);
 *   - each loop's p99 lag under FERRY_SOAK_MAX_P99_MS (50).
 * The figures are printed. Only the test thread asserts; the others count
 * into their own fields (read after join) or atomics.
 */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SOAK_SANITIZED 1
#endif
#endif
#ifndef SOAK_SANITIZED
#define SOAK_SANITIZED 0
#endif

#define LAG_BUCKET_NS 10000u /* 10 us */
#define LAG_BUCKETS 20000    /* up to 200 ms; the last one holds the rest */
#define MAX_TIMERS 64
#define MAX_LATER 16
#define MAX_OFFLOADS 16
#define MAX_PROMISES 8
#define PQ_CAP 64

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* ---- result values: made and freed on any thread ---- */

static _Atomic long values_made, values_freed;

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
    atomic_fetch_add(&values_made, 1);
    return v;
}

static void free_value(void *v)
{
    if (v == NULL)
        return;
    free(v);
    atomic_fetch_add(&values_freed, 1);
}

/* ---- shared state ---- */

static _Atomic int stop_load;     /* main: stop making new work */
static _Atomic int producer_done; /* the producer has exited */
static ferry_pool *pool;

struct lp; /* one loop and its thread */

/* promises handed from the loops to the producer */
static struct {
    pthread_mutex_t mu;
    ferry_promise *q[PQ_CAP];
    int n;
} pq = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct lp {
    int id;
    ferry_loop *loop;
    pthread_t thread;
    int fd; /* this loop's end of the socketpair */
    uint64_t rng;
    _Atomic int ready;     /* the loop exists (the producer may use it) */
    _Atomic int quiesced;  /* nothing of its own is in flight any more */
    ferry_loop *loop_copy; /* for the producer, with its own reference */

    /* lag (owner thread) */
    uint64_t lag_due;
    uint64_t lag_n;
    uint64_t lag_max;
    uint64_t lag_max_at; /* loop time of the worst tick */
    uint64_t *hist;      /* LAG_BUCKETS, touched at start */

    /* in flight (owner thread) */
    int offloads;
    int promises;
    bool ping_out;
    bool writer_on;
    ferry_handle *timers[MAX_TIMERS];
    int ntimers;
    ferry_future *later[MAX_LATER]; /* offloads to cancel a bit later */
    int nlater;

    /* counts (owner thread; read after join) */
    uint64_t off_submitted, off_ok, off_err, off_cancelled, off_timedout;
    uint64_t off_cancel_calls;
    uint64_t tm_sched, tm_fired, tm_disposed, tm_cancels;
    uint64_t soon_sched, soon_ran, soon_disposed;
    uint64_t prom_made, prom_done, prom_value, prom_error, prom_cancelled;
    uint64_t pings, pongs, echoed;
    uint64_t wr_added, wr_fired, wr_disposed;
    uint64_t ts_ran;
    uint64_t posts_ran, posts_disposed;
    int free_rc;
    struct ferry_loop_stats st;

    /* from the producer (atomics) */
    _Atomic uint64_t posts_ok, posts_refused;
    _Atomic uint64_t ts_req, ts_ok, ts_cancelled, ts_other, ts_refused;
};

static struct lp loops[2];

/* ---- work on the pool ---- */

static _Atomic long work_ran;

static int work(void *arg, void **result)
{
    uint64_t w = (uintptr_t)arg;
    uint64_t rng = w | 1;
    atomic_fetch_add(&work_ran, 1);
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
    if (ferry_run_in_executor(l->loop, pool, work, (void *)(uintptr_t)r,
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
    if (!atomic_load(&stop_load))
        load(l);
    if (ferry_call_later(l->loop, 1000000, drive, l, NULL, NULL) != 0)
        abort();
}

static void *loop_main(void *arg)
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
        if (!atomic_load(&stop_load))
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

static void *producer_main(void *arg)
{
    (void)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    while (!atomic_load(&loops[0].ready) || !atomic_load(&loops[1].ready))
        sleep_ns(100000);
    for (;;) {
        ferry_promise *batch[PQ_CAP];
        pthread_mutex_lock(&pq.mu);
        int n = pq.n;
        memcpy(batch, pq.q, (size_t)n * sizeof batch[0]);
        pq.n = 0;
        pthread_mutex_unlock(&pq.mu);
        for (int i = 0; i < n; i++) {
            uint64_t r = rnd(&rng);
            if (r % 4 == 0)
                ferry_promise_reject(batch[i], -EIO);
            else
                ferry_promise_resolve(batch[i], new_value(&rng));
            if ((r >> 4) % 8 == 0) /* a second completion: disposed */
                if (ferry_promise_resolve(batch[i], new_value(&rng)) !=
                    -EALREADY)
                    abort();
            ferry_promise_unref(batch[i]);
        }
        bool stopping = atomic_load(&stop_load);
        if (stopping && n == 0 && atomic_load(&loops[0].quiesced) &&
            atomic_load(&loops[1].quiesced))
            break;
        if (!stopping) {
            struct lp *l = &loops[rnd(&rng) % 2];
            struct ferry_loop_stats st; /* a monitor reads them: any thread */
            if (ferry_loop_stats(l->loop_copy, &st) != 0)
                abort();
            if (ferry_call_soon_threadsafe(l->loop_copy, post_ran, l,
                                           post_disposed) == 0)
                atomic_fetch_add(&l->posts_ok, 1);
            else
                atomic_fetch_add(&l->posts_refused, 1);
            if (rnd(&rng) % 4 == 0) {
                ferry_future *f;
                if (ferry_run_threadsafe(l->loop_copy, ts_fn, l, free_value,
                                         &f) != 0) {
                    atomic_fetch_add(&l->ts_refused, 1);
                } else {
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
            }
        }
        sleep_ns(200000);
    }
    for (int i = 0; i < 2; i++)
        ferry_loop_unref(loops[i].loop_copy);
    atomic_store(&producer_done, 1);
    return NULL;
}

/* ---- sampling ---- */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static double lag_pct(const struct lp *l, double q)
{
    uint64_t want = (uint64_t)(q * (double)l->lag_n);
    uint64_t seen = 0;
    for (int b = 0; b < LAG_BUCKETS; b++) {
        seen += l->hist[b];
        if (seen > want)
            return (double)(b + 1) * LAG_BUCKET_NS / 1e6; /* upper edge, ms */
    }
    return (double)LAG_BUCKETS * LAG_BUCKET_NS / 1e6;
}

static double mean(const long *v, int from, int to)
{
    double s = 0;
    for (int i = from; i < to; i++)
        s += (double)v[i];
    return to > from ? s / (to - from) : 0;
}

static void test_soak_mixed_load(void **state)
{
    (void)state;
    long seconds = env_long("FERRY_SOAK_SECONDS", 120);
    long max_p99_ms = env_long("FERRY_SOAK_MAX_P99_MS", 50);
    assert_true(seconds >= 2);
    int fds_before = count_fds();
    struct ferry_pool_opts po = {.max_threads = 8, .keepalive_ns = 100000000};
    assert_int_equal(ferry_pool_new(&pool, &po), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2; i++) {
        struct lp *l = &loops[i];
        l->id = i;
        l->fd = sv[i];
        l->rng = 0x243f6a8885a308d3ull * (uint64_t)(i + 1);
        l->hist = calloc(LAG_BUCKETS, sizeof l->hist[0]);
        assert_non_null(l->hist);
        memset(l->hist, 0, LAG_BUCKETS * sizeof l->hist[0]); /* resident */
        assert_int_equal(fcntl(sv[i], F_SETFL, O_NONBLOCK), 0);
    }
    int nsamples = (int)(seconds * 10);
    long *rss = calloc((size_t)nsamples, sizeof *rss);
    int *fds = calloc((size_t)nsamples, sizeof *fds);
    assert_non_null(rss);
    assert_non_null(fds);
    for (int i = 0; i < 2; i++)
        loops[i].thread = spawn(loop_main, &loops[i]);
    pthread_t producer = spawn(producer_main, NULL);

    uint64_t start = now_ns(); /* the loops' clock: CLOCK_MONOTONIC */
    for (int i = 0; i < nsamples; i++) {
        uint64_t next = start + (uint64_t)(i + 1) * 100000000u;
        uint64_t now = now_ns();
        if (next > now)
            sleep_ns(next - now);
        rss[i] = rss_kb();
        fds[i] = count_fds();
    }
    atomic_store(&stop_load, 1);
    pthread_join(producer, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(loops[i].thread, NULL);
    struct ferry_pool_stats ps;
    assert_int_equal(ferry_pool_shutdown(pool, FERRY_DRAIN, -1, NULL), 0);
    assert_int_equal(ferry_pool_stats(pool, &ps), 0);
    assert_int_equal(ferry_pool_free(pool), 0);
    close(sv[0]);
    close(sv[1]);
    int fds_after = count_fds();

    /* ---- figures ---- */
    int warm = nsamples / 5;
    int base_to = warm + (nsamples / 10 > 10 ? nsamples / 10 : 10);
    int tail_from = nsamples - nsamples / 4;
    double rss_base = mean(rss, warm, base_to);
    double rss_end = mean(rss, tail_from, nsamples);
    long rss_max = 0;
    int fd_min = fds[warm], fd_max = fds[warm];
    for (int i = 0; i < nsamples; i++)
        if (rss[i] > rss_max)
            rss_max = rss[i];
    for (int i = 1; i < nsamples; i++) {
        fd_min = fds[i] < fd_min ? fds[i] : fd_min;
        fd_max = fds[i] > fd_max ? fds[i] : fd_max;
    }
    printf("soak: %ld s, 2 loops, pool of %u threads at the end (spares "
           "created %llu, retired %llu)\n",
           seconds, ps.threads_total, (unsigned long long)ps.spares_created,
           (unsigned long long)ps.spares_retired);
    printf("soak: RSS start %ld kB, after warm-up %.0f kB, last quarter "
           "%.0f kB (%+.2f%%), max %ld kB%s\n",
           rss[0], rss_base, rss_end, 100.0 * (rss_end - rss_base) / rss_base,
           rss_max, SOAK_SANITIZED ? " (sanitized: not asserted)" : "");
    printf("soak: fds before %d, while running %d..%d, after %d\n", fds_before,
           fd_min, fd_max, fds_after);
    printf("soak: pool submitted %llu = completed %llu + cancelled %llu; "
           "work ran %ld; result values made %ld, freed %ld\n",
           (unsigned long long)ps.submitted, (unsigned long long)ps.completed,
           (unsigned long long)ps.cancelled, atomic_load(&work_ran),
           atomic_load(&values_made), atomic_load(&values_freed));
    for (int i = 0; i < 2; i++) {
        struct lp *l = &loops[i];
        printf("soak: loop %c: lag p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, "
               "max %.2f ms (at t=%.1f s) over %llu ticks; %llu iterations, "
               "%llu callbacks, %llu posts, %llu eventfd writes\n",
               'A' + i, lag_pct(l, 0.50), lag_pct(l, 0.99), lag_pct(l, 0.999),
               (double)l->lag_max / 1e6,
               (double)(l->lag_max_at - l->lag_max - start) / 1e9,
               (unsigned long long)l->lag_n,
               (unsigned long long)l->st.iterations,
               (unsigned long long)l->st.callbacks,
               (unsigned long long)l->st.posts,
               (unsigned long long)l->st.wakeups_written);
        printf("soak: loop %c: offloads %llu = ok %llu + error %llu + "
               "cancelled %llu + timed out %llu (%llu cancel calls); timers "
               "%llu = fired %llu + disposed %llu (%llu cancelled); call_soon "
               "%llu = ran %llu + disposed %llu\n",
               'A' + i, (unsigned long long)l->off_submitted,
               (unsigned long long)l->off_ok, (unsigned long long)l->off_err,
               (unsigned long long)l->off_cancelled,
               (unsigned long long)l->off_timedout,
               (unsigned long long)l->off_cancel_calls,
               (unsigned long long)l->tm_sched, (unsigned long long)l->tm_fired,
               (unsigned long long)l->tm_disposed,
               (unsigned long long)l->tm_cancels,
               (unsigned long long)l->soon_sched,
               (unsigned long long)l->soon_ran,
               (unsigned long long)l->soon_disposed);
        printf("soak: loop %c: promises %llu = value %llu + error %llu + "
               "cancelled %llu; posts %llu (refused %llu) = ran %llu + "
               "disposed %llu; run_threadsafe %llu = ok %llu + cancelled "
               "%llu + other %llu (fn ran %llu); pings %llu, pongs %llu, "
               "echoed %llu; writers %llu = fired %llu, disposed %llu\n",
               'A' + i, (unsigned long long)l->prom_made,
               (unsigned long long)l->prom_value,
               (unsigned long long)l->prom_error,
               (unsigned long long)l->prom_cancelled,
               (unsigned long long)atomic_load(&l->posts_ok),
               (unsigned long long)atomic_load(&l->posts_refused),
               (unsigned long long)l->posts_ran,
               (unsigned long long)l->posts_disposed,
               (unsigned long long)atomic_load(&l->ts_req),
               (unsigned long long)atomic_load(&l->ts_ok),
               (unsigned long long)atomic_load(&l->ts_cancelled),
               (unsigned long long)atomic_load(&l->ts_other),
               (unsigned long long)l->ts_ran, (unsigned long long)l->pings,
               (unsigned long long)l->pongs, (unsigned long long)l->echoed,
               (unsigned long long)l->wr_added, (unsigned long long)l->wr_fired,
               (unsigned long long)l->wr_disposed);
    }
    fflush(stdout);

    if (env_long("FERRY_SOAK_VERBOSE", 0))
        for (int i = 9; i < nsamples; i += 10)
            printf("soak: t=%3d s RSS %ld kB, %d fds\n", (i + 1) / 10, rss[i],
                   fds[i]);

    /* ---- assertions ---- */
    if (!SOAK_SANITIZED)
        assert_true(rss_end <= rss_base * 1.05 && rss_end >= rss_base * 0.95);
    for (int i = warm; i < nsamples; i++)
        assert_int_equal(fds[i], fds[warm]);
    assert_int_equal(fds_after, fds_before);
    assert_int_equal(ps.submitted, ps.completed + ps.cancelled);
    assert_int_equal(atomic_load(&values_made), atomic_load(&values_freed));
    for (int i = 0; i < 2; i++) {
        struct lp *l = &loops[i];
        assert_int_equal(l->free_rc, 0);
        assert_true(l->off_submitted > 0 && l->lag_n > 0);
        assert_int_equal(l->off_submitted, l->off_ok + l->off_err +
                                               l->off_cancelled +
                                               l->off_timedout);
        assert_int_equal(l->tm_sched, l->tm_fired + l->tm_disposed);
        assert_true(l->tm_cancels <= l->tm_disposed);
        assert_int_equal(l->soon_sched, l->soon_ran + l->soon_disposed);
        assert_int_equal(l->prom_made, l->prom_done);
        assert_int_equal(l->prom_made,
                         l->prom_value + l->prom_error + l->prom_cancelled);
        assert_int_equal(atomic_load(&l->posts_ok),
                         l->posts_ran + l->posts_disposed);
        assert_int_equal(atomic_load(&l->ts_req),
                         atomic_load(&l->ts_ok) +
                             atomic_load(&l->ts_cancelled) +
                             atomic_load(&l->ts_other));
        assert_true(l->ts_ran >= atomic_load(&l->ts_ok));
        assert_int_equal(l->wr_added, l->wr_disposed);
        assert_true(l->wr_fired <= l->wr_added);
        assert_true(lag_pct(l, 0.99) < (double)max_p99_ms);
    }
    assert_int_equal(loops[0].pings, loops[0].pongs);
    assert_int_equal(loops[0].pings, loops[1].echoed);
    assert_int_equal(atomic_load(&work_ran) <= (long)ps.submitted, 1);
    for (int i = 0; i < 2; i++)
        free(loops[i].hist);
    free(rss);
    free(fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soak_mixed_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
