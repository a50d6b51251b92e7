/*
 * bench/harness.h: the results model shared by harness.c, report.c,
 * plot.c, sweep.c and main.c (not by workloads: they see bench.h only).
 */
#ifndef FERRY_BENCH_HARNESS_H
#define FERRY_BENCH_HARNESS_H

#include <stdio.h>

#include "bench.h"

/** One metric of one workload, value by rep index. */
struct bench_macc {
    char name[24];            /* "p50", "tput", "lat p99" */
    char unit[8];             /* "us", "M/s" */
    enum bench_better better; /* which direction is good */
    double v[BENCH_MAX_REPS]; /* value of each rep */
    bool has[BENCH_MAX_REPS]; /* whether rep i reported it */
};

/** A workload's results across reps. */
struct bench_rec {
    const struct bench_wl *wl;
    bool selected;      /* chosen on the command line (or default) */
    bool ran;           /* at least one rep started */
    unsigned reps_done; /* reps that returned */
    bool failed;        /* a verification failed (sticky) */
    char why[256];      /* the first failure */
    unsigned checks;    /* verifications in the current rep */
    unsigned metrics;   /* metrics in the current rep */
    struct bench_macc m[BENCH_MAX_METRICS];
    unsigned nm;
    struct bench_hist *lat;    /* latency merged over reps, or NULL */
    char lat_name[24];         /* which latency lat holds ("rtt", "lat") */
    struct bench_sweep *sweep; /* sweep accumulator, or NULL */
    double seconds;            /* wall time of all reps */
};

/** A performance target from the issues, as a ratio ferry / peer. */
struct bench_target {
    const char *ferry;  /* ferry workload */
    const char *peer;   /* peer workload */
    const char *metric; /* metric name */
    double bound;       /* ratio bound: <= for LOWER, >= for HIGHER */
};

/** ferry / peer, rep by rep. */
struct bench_ratio {
    const struct bench_rec *ferry, *peer;
    const struct bench_macc *metric; /* the ferry side's metric */
    struct bench_summary s;
    const struct bench_target *target; /* or NULL */
};

struct bench_machine {
    char cpu[128];
    unsigned cores;
    char kernel[200];
    char clocksource[64];
    char loadavg[64];
    char date[40];
    const char *ferry_version;
    const char *uv_version; /* NULL when libuv was not found at build */
    unsigned uv_threads;    /* UV_THREADPOOL_SIZE we set */
};

struct bench_results {
    struct bench_cfg cfg;
    struct bench_machine mach;
    struct bench_rec *recs;
    size_t nrecs;
    struct bench_ratio *ratios;
    size_t nratios;
    unsigned failures; /* workloads that failed */
};

/** A comparison group's title and table heading. */
struct bench_group {
    const char *name;
    const char *title;
};

/* harness.c */
extern const struct bench_group bench_groups[];
extern const size_t bench_ngroups;
int bench_registry(struct bench_results *r);
int bench_select(struct bench_results *r, char **pats, int npats);
void bench_run_all(struct bench_results *r);
void bench_compute_ratios(struct bench_results *r);
void bench_results_free(struct bench_results *r);
struct bench_summary bench_summarise(const double *v, unsigned n);
struct bench_summary bench_macc_summary(const struct bench_macc *m);
const struct bench_macc *bench_find_metric(const struct bench_rec *rec,
                                           const char *name);

/* report.c */
void bench_report_machine(FILE *f, const struct bench_results *r);
void bench_report_tables(FILE *f, const struct bench_results *r);
int bench_report_json(const char *path, const struct bench_results *r);
int bench_report_csv(const char *path, const struct bench_results *r);

/* plot.c */
int bench_plot(const char *path, const struct bench_results *r);

#endif /* FERRY_BENCH_HARNESS_H */
