/*
 * tests/soak.c: mixed load for a fixed time (issue 6 §5), suite 'soak';
 * this file is the driver, the load (two loops sharing a pool, and a
 * producer thread) is soak_load.c.
 *
 * The main thread starts the load, then samples RSS (/proc/self/statm)
 * and the count of leakable fds (epoll, eventfd, sockets in /proc/self/fd)
 * every 100 ms. After FERRY_SOAK_SECONDS
 * (120; use 10 while developing) the load stops, everything drains and
 * closes, and the test asserts:
 *   - RSS flat: the mean of the last quarter within 5% of the mean just
 *     after warm-up (the first fifth). Plain builds only: ASan's
 *     quarantine and TSan's shadow grow by design;
 *   - the fd count constant while running, and back to its start value;
 *   - every count balances (offloads, timers, callbacks, posts, promises,
 *     run_threadsafe, ping-pong, watchers, result values, pool tasks);
 *   - each loop's p99 lag under FERRY_SOAK_MAX_P99_MS (50).
 * The figures are printed (FERRY_SOAK_VERBOSE=1: the samples too). Only
 * the test thread asserts; the others count into their own fields (read
 * after join) or atomics.
 */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "soak.h"
#include "tests/fds.h"

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

struct lp soak_loops[2];
ferry_pool *soak_pool;
_Atomic int soak_stop_load;

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
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

/* What the main thread measured, and what it made of it. */
struct run {
    long seconds;
    int nsamples; /* one every 100 ms */
    long *rss;    /* kB */
    int *fds;
    int fds_before, fds_after;
    uint64_t start; /* the loops' clock: CLOCK_MONOTONIC */
    struct ferry_pool_stats ps;
    int sv[2]; /* the socketpair: loop A's end, loop B's end */

    int warm;        /* samples of the warm-up: the first fifth */
    double rss_base; /* mean just after warm-up */
    double rss_end;  /* mean of the last quarter */
    long rss_max;
    int fd_min, fd_max;
};

/* ---- start, sample, stop ---- */

static void start_load(struct run *r)
{
    r->fds_before = count_leakable_fds();
    struct ferry_pool_opts po = {.max_threads = 8, .keepalive_ns = 100000000};
    assert_int_equal(ferry_pool_new(&soak_pool, &po), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, r->sv), 0);
    for (int i = 0; i < 2; i++) {
        struct lp *l = &soak_loops[i];
        l->id = i;
        l->fd = r->sv[i];
        l->rng = 0x243f6a8885a308d3ull * (uint64_t)(i + 1);
        l->hist = calloc(LAG_BUCKETS, sizeof l->hist[0]);
        assert_non_null(l->hist);
        memset(l->hist, 0, LAG_BUCKETS * sizeof l->hist[0]); /* resident */
        assert_int_equal(fcntl(r->sv[i], F_SETFL, O_NONBLOCK), 0);
    }
    r->nsamples = (int)(r->seconds * 10);
    r->rss = calloc((size_t)r->nsamples, sizeof *r->rss);
    r->fds = calloc((size_t)r->nsamples, sizeof *r->fds);
    assert_non_null(r->rss);
    assert_non_null(r->fds);
    for (int i = 0; i < 2; i++)
        soak_loops[i].thread = spawn(soak_loop_main, &soak_loops[i]);
}

static void sample(struct run *r)
{
    r->start = now_ns();
    for (int i = 0; i < r->nsamples; i++) {
        uint64_t next = r->start + (uint64_t)(i + 1) * 100000000u;
        uint64_t now = now_ns();
        if (next > now)
            sleep_ns(next - now);
        r->rss[i] = rss_kb();
        r->fds[i] = count_leakable_fds();
    }
}

/* Stop the load, let it drain, and close everything. */
static void stop_load(struct run *r, pthread_t producer)
{
    atomic_store(&soak_stop_load, 1);
    pthread_join(producer, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(soak_loops[i].thread, NULL);
    assert_int_equal(ferry_pool_shutdown(soak_pool, FERRY_DRAIN, -1, NULL), 0);
    assert_int_equal(ferry_pool_stats(soak_pool, &r->ps), 0);
    assert_int_equal(ferry_pool_free(soak_pool), 0);
    close(r->sv[0]);
    close(r->sv[1]);
    r->fds_after = count_leakable_fds();
}

/* ---- figures ---- */

static void figures(struct run *r)
{
    int n = r->nsamples;
    r->warm = n / 5;
    int base_to = r->warm + (n / 10 > 10 ? n / 10 : 10);
    int tail_from = n - n / 4;
    r->rss_base = mean(r->rss, r->warm, base_to);
    r->rss_end = mean(r->rss, tail_from, n);
    r->rss_max = 0;
    r->fd_min = r->fds[r->warm];
    r->fd_max = r->fds[r->warm];
    for (int i = 0; i < n; i++)
        if (r->rss[i] > r->rss_max)
            r->rss_max = r->rss[i];
    for (int i = 1; i < n; i++) {
        r->fd_min = r->fds[i] < r->fd_min ? r->fds[i] : r->fd_min;
        r->fd_max = r->fds[i] > r->fd_max ? r->fds[i] : r->fd_max;
    }
}

static void print_totals(const struct run *r)
{
    const struct ferry_pool_stats *ps = &r->ps;
    printf("soak: %ld s, 2 loops, pool of %u threads at the end (spares "
           "created %llu, retired %llu)\n",
           r->seconds, ps->threads_total,
           (unsigned long long)ps->spares_created,
           (unsigned long long)ps->spares_retired);
    printf("soak: RSS start %ld kB, after warm-up %.0f kB, last quarter "
           "%.0f kB (%+.2f%%), max %ld kB%s\n",
           r->rss[0], r->rss_base, r->rss_end,
           100.0 * (r->rss_end - r->rss_base) / r->rss_base, r->rss_max,
           SOAK_SANITIZED ? " (sanitized: not asserted)" : "");
    printf("soak: fds before %d, while running %d..%d, after %d\n",
           r->fds_before, r->fd_min, r->fd_max, r->fds_after);
    printf("soak: pool submitted %llu = completed %llu + cancelled %llu; "
           "work ran %ld; result values made %ld, freed %ld\n",
           (unsigned long long)ps->submitted, (unsigned long long)ps->completed,
           (unsigned long long)ps->cancelled, atomic_load(&soak_work_ran),
           atomic_load(&soak_values_made), atomic_load(&soak_values_freed));
}

/* Loop i's lag and the loop's own stats. */
static void print_lag(const struct lp *l, int i, uint64_t start)
{
    printf("soak: loop %c: lag p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, "
           "max %.2f ms (at t=%.1f s) over %llu ticks; %llu iterations, "
           "%llu callbacks, %llu posts, %llu eventfd writes\n",
           'A' + i, lag_pct(l, 0.50), lag_pct(l, 0.99), lag_pct(l, 0.999),
           (double)l->lag_max / 1e6,
           (double)(l->lag_max_at - l->lag_max - start) / 1e9,
           (unsigned long long)l->lag_n, (unsigned long long)l->st.iterations,
           (unsigned long long)l->st.callbacks, (unsigned long long)l->st.posts,
           (unsigned long long)l->st.wakeups_written);
}

/* Loop i's own work: offloads, timers, call_soon. */
static void print_work(const struct lp *l, int i)
{
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
           (unsigned long long)l->tm_cancels, (unsigned long long)l->soon_sched,
           (unsigned long long)l->soon_ran,
           (unsigned long long)l->soon_disposed);
}

/* Loop i and the others: promises, posts, run_threadsafe, fds. */
static void print_traffic(const struct lp *l, int i)
{
    printf("soak: loop %c: promises %llu = value %llu + error %llu + "
           "cancelled %llu; posts %llu (refused %llu) = ran %llu + "
           "disposed %llu; run_threadsafe %llu = ok %llu + cancelled "
           "%llu + other %llu (fn ran %llu); pings %llu, pongs %llu, "
           "echoed %llu; writers %llu = fired %llu, disposed %llu\n",
           'A' + i, (unsigned long long)l->prom_made,
           (unsigned long long)l->prom_value, (unsigned long long)l->prom_error,
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

static void print_figures(const struct run *r)
{
    print_totals(r);
    for (int i = 0; i < 2; i++) {
        print_lag(&soak_loops[i], i, r->start);
        print_work(&soak_loops[i], i);
        print_traffic(&soak_loops[i], i);
    }
    fflush(stdout);
    if (env_long("FERRY_SOAK_VERBOSE", 0))
        for (int i = 9; i < r->nsamples; i += 10)
            printf("soak: t=%3d s RSS %ld kB, %d fds\n", (i + 1) / 10,
                   r->rss[i], r->fds[i]);
}

/* ---- assertions ---- */

static void assert_loop_balances(const struct lp *l, long max_p99_ms)
{
    assert_int_equal(l->free_rc, 0);
    assert_true(l->off_submitted > 0 && l->lag_n > 0);
    assert_int_equal(l->off_submitted, l->off_ok + l->off_err +
                                           l->off_cancelled + l->off_timedout);
    assert_int_equal(l->tm_sched, l->tm_fired + l->tm_disposed);
    assert_true(l->tm_cancels <= l->tm_disposed);
    assert_int_equal(l->soon_sched, l->soon_ran + l->soon_disposed);
    assert_int_equal(l->prom_made, l->prom_done);
    assert_int_equal(l->prom_made,
                     l->prom_value + l->prom_error + l->prom_cancelled);
    assert_int_equal(atomic_load(&l->posts_ok),
                     l->posts_ran + l->posts_disposed);
    assert_int_equal(atomic_load(&l->ts_req),
                     atomic_load(&l->ts_ok) + atomic_load(&l->ts_cancelled) +
                         atomic_load(&l->ts_other));
    assert_true(l->ts_ran >= atomic_load(&l->ts_ok));
    assert_int_equal(l->wr_added, l->wr_disposed);
    assert_true(l->wr_fired <= l->wr_added);
    assert_true(lag_pct(l, 0.99) < (double)max_p99_ms);
}

static void assert_figures(const struct run *r, long max_p99_ms)
{
    if (!SOAK_SANITIZED)
        assert_true(r->rss_end <= r->rss_base * 1.05 &&
                    r->rss_end >= r->rss_base * 0.95);
    for (int i = r->warm; i < r->nsamples; i++)
        assert_int_equal(r->fds[i], r->fds[r->warm]);
    assert_int_equal(r->fds_after, r->fds_before);
    assert_int_equal(r->ps.submitted, r->ps.completed + r->ps.cancelled);
    assert_int_equal(atomic_load(&soak_values_made),
                     atomic_load(&soak_values_freed));
    for (int i = 0; i < 2; i++)
        assert_loop_balances(&soak_loops[i], max_p99_ms);
    assert_int_equal(soak_loops[0].pings, soak_loops[0].pongs);
    assert_int_equal(soak_loops[0].pings, soak_loops[1].echoed);
    assert_int_equal(atomic_load(&soak_work_ran) <= (long)r->ps.submitted, 1);
}

static void test_soak_mixed_load(void **state)
{
    (void)state;
    struct run r = {.seconds = env_long("FERRY_SOAK_SECONDS", 120)};
    long max_p99_ms = env_long("FERRY_SOAK_MAX_P99_MS", 50);
    assert_true(r.seconds >= 2);
    start_load(&r);
    pthread_t producer = spawn(soak_producer_main, NULL);
    sample(&r);
    stop_load(&r, producer);
    figures(&r);
    print_figures(&r);
    assert_figures(&r, max_p99_ms);
    for (int i = 0; i < 2; i++)
        free(soak_loops[i].hist);
    free(r.rss);
    free(r.fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soak_mixed_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
