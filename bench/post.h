/*
 * bench/post.h: the cross-thread post shape, shared by every
 * implementation: POST_PRODUCERS threads each post their items to one loop
 * thread, which consumes them.
 *
 * Two phases per rep (post_bench):
 *   throughput  each producer posts n items as fast as it can (no window,
 *               no timestamps); tput = all items / (last consumed - start);
 *   latency     each producer stamps every item and keeps at most
 *               POST_WINDOW of its items unconsumed, so the queue stays
 *               bounded; latency = consumed - stamped (post-to-run).
 * Items are preallocated and intrusive (next pointer inside), so a backend
 * that queues them itself (libuv's mutex queue) pays no allocation; ferry's
 * call_soon_threadsafe takes them as the callback argument.
 *
 * A backend provides the phase function: build its loop, set r->post and
 * r->backend, post_start(r), post_go(r), run its loop calling
 * post_consume(it) for every item until it returns true, then post_join(r)
 * and tear down. post_consume runs on the loop thread only.
 */
#ifndef FERRY_BENCH_POST_H
#define FERRY_BENCH_POST_H

#include <pthread.h>
#include <stdalign.h>

#include "bench.h"

#define POST_PRODUCERS 2
#define POST_WINDOW 64

struct post_run;

struct post_item {
    struct post_item *next; /* for backends that queue items themselves */
    struct post_run *run;   /* back pointer for the consumer */
    uint64_t seq;           /* 0-based, per producer */
    uint64_t t_post;        /* stamped just before posting (latency phase) */
    unsigned producer;
};

/* Post it to the loop; any thread. 0 or a negative errno. */
typedef int post_fn(void *backend, struct post_item *it);

struct post_prog {
    /* Items of this producer consumed so far, written by the loop thread
     * and read by the producer in the latency phase. Own cache line: it is
     * written once per item. */
    alignas(FERRY__CACHELINE) _Atomic uint64_t consumed;
};

struct post_run {
    post_fn *post; /* set by the backend before post_start */
    void *backend;
    uint64_t per_producer; /* items per producer in this phase */
    unsigned window;       /* 0 = unbounded */
    bool stamp;            /* latency phase */
    struct post_item *items;
    struct post_prog prog[POST_PRODUCERS];
    pthread_t th[POST_PRODUCERS];
    unsigned started;    /* threads created */
    _Atomic uint32_t go; /* 1 releases the producers */
    _Atomic int error;   /* first post error or wait timeout */
    /* consumer side (loop thread) */
    uint64_t consumed;
    uint64_t sum;          /* sum of seq + 1 over consumed items */
    uint64_t order_errors; /* items of one producer out of order */
    uint64_t next_seq[POST_PRODUCERS];
    uint64_t t_start, t_end;
    struct bench_hist lat;
};

typedef int post_phase_fn(struct post_run *r);

int post_start(struct post_run *r);
void post_go(struct post_run *r);
bool post_consume(struct post_item *it);
void post_join(struct post_run *r);

/* Both phases, verification and metrics ("tput", "lat p50", ...). */
int post_bench(struct bench_ctx *c, post_phase_fn *phase);

#endif /* FERRY_BENCH_POST_H */
