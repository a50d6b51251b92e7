/*
 * bench/sweep.h: "when does offloading pay?", written once and driven by
 * any loop implementation (ferry's loop, libuv's) through struct sweep_ops.
 *
 * A cell is one (kind, work size, mode): kind is CPU spin or a blocking
 * nanosleep, mode is inline (the loop runs one work item per iteration)
 * or offload (cfg->threads items kept in flight on the pool). While the
 * cell runs for its duration, a 1 ms periodic timer re-armed relative to
 * its own firing measures the loop's lateness (loop lag); the work's
 * throughput is items / (last completion - start).
 *
 * How a backend drives a cell (all on the loop thread):
 *   sweep_cell_begin(s)            before the loop runs
 *   arm the timer; inline: post one item; offload: sweep_submit() up to
 *     cfg->inflight times
 *   timer fired:  if (sweep_tick(s, lag_ns)) re-arm
 *   inline item:  sweep_work(cfg); sweep_item_done(s); repost if
 *                 sweep_submit(s)
 *   offload done: sweep_item_done(s); resubmit if sweep_submit(s)
 *   sweep_finished(s) turns true once the duration passed and nothing is in
 *   flight or armed: the backend then lets its loop return.
 * sweep_work is the only function that may run on a pool thread.
 */
#ifndef FERRY_BENCH_SWEEP_H
#define FERRY_BENCH_SWEEP_H

#include <stdio.h>

#include "bench.h"

enum sweep_kind { SWEEP_SPIN, SWEEP_SLEEP, SWEEP_NKINDS };
enum sweep_mode { SWEEP_INLINE, SWEEP_OFFLOAD, SWEEP_NMODES };
#define SWEEP_NSIZES 6

extern const uint64_t sweep_sizes_ns[SWEEP_NSIZES];
extern const char *const sweep_size_labels[SWEEP_NSIZES];
extern const char *const sweep_kind_names[SWEEP_NKINDS];
extern const char *const sweep_mode_names[SWEEP_NMODES];

struct sweep_cell_cfg {
    enum sweep_kind kind;
    enum sweep_mode mode;
    uint64_t work_ns;     /* size of one work item */
    uint64_t duration_ns; /* how long the cell submits work */
    uint64_t period_ns;   /* lag timer period (1 ms) */
    unsigned inflight;    /* offload: items kept in flight */
};

/** One running cell (one rep). */
struct sweep_cell {
    const struct sweep_cell_cfg *cfg;
    struct bench_hist lag; /* timer lateness samples */
    uint64_t t_start;      /* sweep_cell_begin */
    uint64_t t_last;       /* last sweep_item_done */
    uint64_t submitted;    /* items started */
    uint64_t completed;    /* items finished */
    bool stopping;         /* duration passed: submit no more */
    bool timer_armed;      /* the lag timer is pending */
};

struct sweep_ops {
    /* Run one cell to sweep_finished; 0 or a negative errno. */
    int (*run_cell)(void *backend, struct sweep_cell *s);
    bool can_offload; /* false: offload cells are reported as not built */
};

void sweep_cell_begin(struct sweep_cell *s, const struct sweep_cell_cfg *cfg);
bool sweep_tick(struct sweep_cell *s, uint64_t lag_ns);
bool sweep_submit(struct sweep_cell *s);
void sweep_item_done(struct sweep_cell *s);
bool sweep_finished(const struct sweep_cell *s);
/* One unit of work of the cell's kind and size (any thread). */
void sweep_work(const struct sweep_cell_cfg *cfg);

/* Run every cell once (one rep), accumulate, verify. */
int bench_sweep_run(struct bench_ctx *c, const struct sweep_ops *ops,
                    void *backend);

/** A cell's figures across reps. */
struct sweep_stat {
    bool ran;                         /* the cell was measured */
    double lag_p50, lag_p99, lag_max; /* us, from the merged histogram */
    struct bench_summary tput;        /* items/s, over reps */
    uint64_t items, ticks;            /* totals over reps */
};

bool bench_sweep_stat(const struct bench_sweep *sw, enum sweep_kind k,
                      unsigned size, enum sweep_mode m, struct sweep_stat *o);
const struct bench_hist *bench_sweep_lag(const struct bench_sweep *sw,
                                         enum sweep_kind k, unsigned size,
                                         enum sweep_mode m);
/* Index of the smallest size from which offloading pays for every larger
 * size, or -1 (never in this sweep, or offload not built). */
int bench_sweep_crossover(const struct bench_sweep *sw, enum sweep_kind k);
bool bench_sweep_pays(const struct sweep_stat *in, const struct sweep_stat *of);
void bench_sweep_table(FILE *f, const char *name, const struct bench_sweep *sw);
void bench_sweep_free(struct bench_sweep *sw);

#endif /* FERRY_BENCH_SWEEP_H */
