/*
 * bench/bench.h: what every part of ferry-bench shares.
 *
 * A workload is one measurement of one implementation (ferry, libuv, the
 * naive pool, or a floor) in one comparison group (wake, rtt, tput, post,
 * tiny, idle, sweep). The harness (harness.c) runs every selected workload
 * --reps times, interleaving the members of a group rep by rep so that
 * ferry and its peers see the same machine conditions, and keeps each
 * metric's value per rep: tables show the median and min..max, and ratios
 * (ferry / peer) are taken rep by rep, then summarised the same way.
 *
 * A run function gets a struct bench_ctx and must:
 *   - report its figures with bench_metric / bench_latency / bench_tput;
 *   - verify its own work with bench_expect / bench_check at least once
 *     (counts of completions, checksums). A run that verifies nothing, or
 *     records no metric, fails: a benchmark that measured nothing is a bug;
 *   - bound every wait (bench_wait_u64 and friends), so a lost wake-up
 *     fails the run instead of hanging the program.
 * Run functions run on the main thread; they may start threads and must
 * join them before returning.
 */
#ifndef FERRY_BENCH_H
#define FERRY_BENCH_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base.h"
#include "hist.h"

#define BENCH_MAX_REPS 64
#define BENCH_MAX_METRICS 12
/* Every bounded wait in the program gives up after this long. */
#define BENCH_WAIT_TIMEOUT_NS (10ull * 1000 * 1000 * 1000)

/* Offloads per rep of the windowed throughput workloads (ferry.tput,
 * uv.tput, naive.tput): about half a second each on the development
 * machine, so a rep measures the steady state rather than the first
 * milliseconds of thread placement (at 500000 the reps spread 2x). */
#define BENCH_TPUT_OFFLOADS 2000000

struct bench_sweep; /* sweep.h */
struct bench_rec;   /* harness.c: a workload's results across reps */

enum bench_better { BENCH_LOWER, BENCH_HIGHER };

/** Median and range of a set of values. */
struct bench_summary {
    double med, min, max;
    unsigned n;
};

/** Command-line configuration, read-only for workloads. */
struct bench_cfg {
    unsigned reps;    /* repetitions of every workload */
    unsigned threads; /* pool threads for every implementation */
    bool quick;       /* tiny sizes: a few seconds in all (smoke test) */
};

/** What a run function receives: one repetition of one workload. */
struct bench_ctx {
    const struct bench_cfg *cfg;
    unsigned rep;          /* 0-based repetition index */
    struct bench_rec *rec; /* accumulator, owned by the harness */
};

typedef int bench_run_fn(struct bench_ctx *c);

/** A registered workload. */
struct bench_wl {
    const char *name;    /* "uv.rtt": impl prefix, then the group */
    const char *group;   /* comparison group: runs interleaved together */
    const char *impl;    /* "ferry", "libuv", "naive", "floor" */
    const char *peer_of; /* the ferry workload it is compared with; NULL
                          * for ferry's own workloads */
    const char *desc;    /* one line for --list */
    bench_run_fn *run;   /* NULL when compiled out */
    const char *missing; /* why run is NULL (for --list and the report) */
};

/* Per-file registries (wl_*.c). */
const struct bench_wl *bench_floor_workloads(size_t *n);
const struct bench_wl *bench_naive_workloads(size_t *n);
const struct bench_wl *bench_ferry_workloads(size_t *n);
#ifdef FERRY_BENCH_HAVE_UV
const struct bench_wl *bench_uv_workloads(size_t *n);
/* Set UV_THREADPOOL_SIZE before libuv's pool starts; returns the value. */
unsigned bench_uv_setup(unsigned threads);
const char *bench_uv_version(void);
#endif

/* ---- reporting from a run (harness.c) ---- */

/* One scalar figure of this rep. name is a string literal. */
void bench_metric(struct bench_ctx *c, const char *name, const char *unit,
                  enum bench_better better, double value);
/* p50/p90/p99/p99.9/max of h, in microseconds, and merge h into the
 * workload's histogram across reps (for JSON and the plot). */
void bench_latency(struct bench_ctx *c, const struct bench_hist *h);
/* Same, with a prefix on every metric name ("lat " -> "lat p50"). */
void bench_latency_named(struct bench_ctx *c, const char *prefix,
                         const struct bench_hist *h);
/* ops / ns as "tput" in millions per second. */
void bench_tput(struct bench_ctx *c, uint64_t ops, uint64_t ns);
/* Record a verification; false marks the workload failed, with the
 * printf-style reason. Returns ok. */
bool bench_check(struct bench_ctx *c, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* got == want and want > 0. */
bool bench_expect(struct bench_ctx *c, const char *what, uint64_t got,
                  uint64_t want);
/* The sweep accumulator slot of this workload (sweep.c), NULL at first. */
struct bench_sweep **bench_sweep_slot(struct bench_ctx *c);

/* ---- sizes and helpers (harness.c) ---- */

/* full in a default run, quick under --quick. */
uint64_t bench_size(const struct bench_ctx *c, uint64_t full, uint64_t quick);

static inline uint64_t bench_now(void)
{
    return ferry__now_ns();
}

/* CPU time of the whole process (every thread), in ns. */
uint64_t bench_cpu_ns(void);

/* Busy-wait ns of CPU (the sweep's "spin" work). */
void bench_spin_ns(uint64_t ns);
/* nanosleep ns (the sweep's "blocking" work); 0 returns at once. */
void bench_sleep_ns(uint64_t ns);
/* ~0.1 us of arithmetic on seed: the tiny task. Deterministic. */
uint64_t bench_tiny_work(uint64_t seed);

/*
 * Wait until *p >= want: spin with cpu_relax for a bounded number of
 * rounds, then sched_yield, and give up after BENCH_WAIT_TIMEOUT_NS.
 * Returns true when reached, false on timeout.
 */
bool bench_wait_u64(_Atomic uint64_t *p, uint64_t want);
bool bench_wait_u32(_Atomic uint32_t *p, uint32_t want);

/* calloc for structs with cache-line-aligned members (free with free). */
void *bench_zalloc_aligned(size_t size);

/* Print a warning line on stderr, prefixed with "ferry-bench: ". */
void bench_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* FERRY_BENCH_H */
