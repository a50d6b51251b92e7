/*
 * bench/post.c: producers, consumer bookkeeping and verification of the
 * cross-thread post shape (post.h).
 *
 * Verification: every item is consumed exactly once (count and the sum of
 * seq + 1 over all items), and each producer's items are consumed in the
 * order it posted them (every implementation here promises per-producer
 * FIFO, ferry in loop.h). A producer that gets an error from post, or waits
 * past BENCH_WAIT_TIMEOUT_NS for its window, records the error and stops;
 * the consumer then cannot reach the total, so the backend's loop must
 * also bound its wait (each backend checks r->error when it wakes).
 *
 * Thread: producers run post_thread; everything else runs on the loop
 * (main) thread.
 */
#include <stdlib.h>
#include <string.h>

#include "post.h"

static void *post_thread(void *arg)
{
    struct post_item *first = arg;
    struct post_run *r = first->run;
    struct post_prog *prog = &r->prog[first->producer];
    if (!bench_wait_u32(&r->go, 1) || atomic_load(&r->error) != 0)
        return NULL;
    for (uint64_t i = 0; i < r->per_producer; i++) {
        struct post_item *it = &first[i];
        if (r->window && i >= r->window &&
            !bench_wait_u64(&prog->consumed, i - r->window + 1)) {
            atomic_store(&r->error, -ETIMEDOUT);
            return NULL;
        }
        if (r->stamp)
            it->t_post = bench_now();
        int rc = r->post(r->backend, it);
        if (rc < 0) {
            atomic_store(&r->error, rc);
            return NULL;
        }
    }
    return NULL;
}

int post_start(struct post_run *r)
{
    uint64_t n = r->per_producer;
    for (unsigned p = 0; p < POST_PRODUCERS; p++) {
        for (uint64_t i = 0; i < n; i++) {
            struct post_item *it = &r->items[p * n + i];
            *it = (struct post_item){.run = r, .seq = i, .producer = p};
        }
        atomic_store(&r->prog[p].consumed, 0);
        r->next_seq[p] = 0;
    }
    r->consumed = r->sum = r->order_errors = 0;
    r->started = 0;
    atomic_store(&r->error, 0);
    atomic_store(&r->go, 0);
    bench_hist_init(&r->lat);
    for (unsigned p = 0; p < POST_PRODUCERS; p++) {
        int rc = pthread_create(&r->th[p], NULL, post_thread, &r->items[p * n]);
        if (rc != 0) {
            /* Release the threads already started into an error exit. */
            atomic_store(&r->error, -rc);
            atomic_store(&r->go, 1);
            post_join(r);
            return -rc;
        }
        r->started++;
    }
    return 0;
}

void post_go(struct post_run *r)
{
    r->t_start = bench_now();
    /* Release: the producers' acquire in bench_wait_u32 sees the items
     * initialised by post_start. */
    atomic_store_explicit(&r->go, 1, memory_order_release);
}

bool post_consume(struct post_item *it)
{
    struct post_run *r = it->run;
    uint64_t now = r->stamp ? bench_now() : 0;
    if (r->stamp)
        bench_hist_record(&r->lat, now - it->t_post);
    if (it->seq != r->next_seq[it->producer])
        r->order_errors++;
    r->next_seq[it->producer] = it->seq + 1;
    r->sum += it->seq + 1;
    r->consumed++;
    /* Release: the producer's window wait (acquire) may reuse nothing of
     * this item, but must see the count move; plain store on x86. */
    atomic_store_explicit(&r->prog[it->producer].consumed, it->seq + 1,
                          memory_order_release);
    if (r->consumed < r->per_producer * POST_PRODUCERS)
        return false;
    r->t_end = bench_now();
    return true;
}

void post_join(struct post_run *r)
{
    for (unsigned p = 0; p < r->started; p++)
        pthread_join(r->th[p], NULL);
    r->started = 0;
}

static bool verify(struct bench_ctx *c, const struct post_run *r,
                   const char *phase)
{
    uint64_t n = r->per_producer;
    uint64_t want_sum = POST_PRODUCERS * (n * (n + 1) / 2);
    int err = atomic_load(&r->error);
    bool ok = bench_check(c, err == 0, "%s phase: producer error %s", phase,
                          strerror(-err));
    ok = bench_expect(c, "items consumed", r->consumed, n * POST_PRODUCERS) &&
         ok;
    ok = bench_expect(c, "checksum of items", r->sum, want_sum) && ok;
    ok = bench_check(c, r->order_errors == 0,
                     "%s phase: %llu items out of per-producer order", phase,
                     (unsigned long long)r->order_errors) &&
         ok;
    return ok;
}

int post_bench(struct bench_ctx *c, post_phase_fn *phase)
{
    uint64_t n_tput = bench_size(c, 500000, 2000);
    uint64_t n_lat = bench_size(c, 100000, 1000);
    struct post_run *r = bench_zalloc_aligned(sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->items = calloc(n_tput * POST_PRODUCERS, sizeof *r->items);
    int rc = r->items ? 0 : -ENOMEM;
    if (rc == 0) {
        r->per_producer = n_tput;
        rc = phase(r);
    }
    if (rc == 0 && verify(c, r, "throughput"))
        bench_tput(c, r->consumed, r->t_end - r->t_start);
    if (rc == 0) {
        r->per_producer = n_lat;
        r->window = POST_WINDOW;
        r->stamp = true;
        rc = phase(r);
    }
    if (rc == 0 && verify(c, r, "latency"))
        bench_latency_named(c, "lat ", &r->lat);
    free(r->items);
    free(r);
    return rc;
}
