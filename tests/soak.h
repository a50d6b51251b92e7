/*
 * tests/soak.h: what the soak's two files share (issue 6 §5): the driver
 * (soak.c: samples, drains, asserts) and the load (soak_load.c: two loop
 * threads and a producer thread). One loop and its thread is a struct lp;
 * each counts into its own fields, read by the driver after join, or into
 * atomics where the producer counts.
 */
#ifndef FERRY_TESTS_SOAK_H
#define FERRY_TESTS_SOAK_H

#include "helpers.h"

#define LAG_BUCKET_NS 10000u /* 10 us */
#define LAG_BUCKETS 20000    /* up to 200 ms; the last one holds the rest */
#define MAX_TIMERS 64
#define MAX_LATER 16

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

/* Set up by the driver before it starts the threads. */
extern struct lp soak_loops[2];
extern ferry_pool *soak_pool;

extern _Atomic int soak_stop_load;     /* driver: stop making new work */
extern _Atomic long soak_work_ran;     /* pool work functions run */
extern _Atomic long soak_values_made;  /* result values, made and */
extern _Atomic long soak_values_freed; /* freed on any thread */

/* Thread bodies: one per loop (arg: its struct lp), and the producer. */
void *soak_loop_main(void *arg);
void *soak_producer_main(void *arg);

#endif /* FERRY_TESTS_SOAK_H */
