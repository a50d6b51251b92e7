/*
 * bench/harness.c: the workload registry, repetition, interleaving,
 * per-rep metrics, verification and ratios.
 *
 * Registry: every wl_*.c file returns a table of struct bench_wl; ferry's
 * own workloads are always registered, with run == NULL and a reason when
 * the parts they need (loop, bridge) are not built yet.
 *
 * Interleaving: the selected workloads of one comparison group run as a
 * set. Rep r runs the members in order rotated by r (A B C, B C A, ...), so
 * that no member always runs first (cold caches, CPU frequency) and every
 * ratio ferry / peer is taken from reps that ran seconds apart under the
 * same load. Ratios are computed rep by rep, then summarised as median and
 * min..max like every other figure.
 *
 * Verification: each rep must call bench_check/bench_expect at least once
 * and record at least one finite metric; otherwise the rep fails ("measured
 * nothing"). A failure is printed at once on stderr, marked in every report,
 * and makes the program exit non-zero (main.c).
 *
 * Thread: everything here runs on the main thread, between workload runs
 * or from inside a run function (which runs on the main thread too).
 */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "sweep.h"

const struct bench_group bench_groups[] = {
    {"wake", "cross-thread wake: ping-pong round trip between two sleeping "
             "threads (us)"},
    {"rtt", "offload round trip: no-op task, one in flight (us)"},
    {"tput", "offload throughput: no-op tasks, window of 1024 in flight"},
    {"post", "cross-thread post: 2 producers -> loop (throughput; "
             "post-to-run latency in us, window of 64 per producer)"},
    {"tiny", "pool tiny tasks: batches of 4096 x ~0.1 us of arithmetic"},
    {"idle", "CPU used by a sleeping loop and a warmed pool (% of one core; "
             "target 0)"},
    {"sweep", "when does offloading pay: work size vs loop lag"},
};
const size_t bench_ngroups = FERRY__ARRAY_SIZE(bench_groups);

/* Collect every file's table into r->recs. */
int bench_registry(struct bench_results *r)
{
    const struct bench_wl *(*tables[])(size_t *) = {
        bench_ferry_workloads,
        bench_floor_workloads,
#ifdef FERRY_BENCH_HAVE_UV
        bench_uv_workloads,
#endif
        bench_naive_workloads,
    };
    size_t total = 0;
    for (size_t t = 0; t < FERRY__ARRAY_SIZE(tables); t++) {
        size_t n;
        tables[t](&n);
        total += n;
    }
    r->recs = calloc(total, sizeof *r->recs);
    if (r->recs == NULL)
        return -ENOMEM;
    for (size_t t = 0; t < FERRY__ARRAY_SIZE(tables); t++) {
        size_t n;
        const struct bench_wl *w = tables[t](&n);
        for (size_t i = 0; i < n; i++)
            r->recs[r->nrecs++].wl = &w[i];
    }
    return 0;
}

/*
 * Mark the workloads matching the patterns (a name, a group, or an fnmatch
 * glob such as "uv.*"); no pattern selects every built workload. A pattern
 * matching nothing, or naming only workloads that are not built, is an
 * error.
 */
int bench_select(struct bench_results *r, char **pats, int npats)
{
    for (size_t i = 0; i < r->nrecs; i++)
        r->recs[i].selected = npats == 0 && r->recs[i].wl->run != NULL;
    int bad = 0;
    for (int p = 0; p < npats; p++) {
        unsigned hits = 0, built = 0;
        for (size_t i = 0; i < r->nrecs; i++) {
            const struct bench_wl *w = r->recs[i].wl;
            if (fnmatch(pats[p], w->name, 0) != 0 &&
                strcmp(pats[p], w->group) != 0)
                continue;
            hits++;
            if (w->run == NULL) {
                bench_warn("%s is not built: %s", w->name, w->missing);
                continue;
            }
            built++;
            r->recs[i].selected = true;
        }
        if (hits == 0)
            bench_warn("no workload matches '%s' (see --list)", pats[p]);
        if (built == 0)
            bad = -EINVAL;
    }
    return bad;
}

static void fail(struct bench_rec *rec, const char *fmt, va_list ap)
{
    char buf[256];
    vsnprintf(buf, sizeof buf, fmt, ap);
    fprintf(stderr, "\nferry-bench: FAILED %s: %s\n", rec->wl->name, buf);
    if (!rec->failed)
        snprintf(rec->why, sizeof rec->why, "%s", buf);
    rec->failed = true;
}

static void fail_rec(struct bench_rec *rec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail_rec(struct bench_rec *rec, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail(rec, fmt, ap);
    va_end(ap);
}

bool bench_check(struct bench_ctx *c, bool ok, const char *fmt, ...)
{
    c->rec->checks++;
    if (!ok) {
        va_list ap;
        va_start(ap, fmt);
        fail(c->rec, fmt, ap);
        va_end(ap);
    }
    return ok;
}

bool bench_expect(struct bench_ctx *c, const char *what, uint64_t got,
                  uint64_t want)
{
    return bench_check(c, got == want && want > 0,
                       "%s: got %llu, expected %llu", what,
                       (unsigned long long)got, (unsigned long long)want);
}

void bench_metric(struct bench_ctx *c, const char *name, const char *unit,
                  enum bench_better better, double value)
{
    struct bench_rec *rec = c->rec;
    if (!isfinite(value) || value < 0) {
        fail_rec(rec, "metric %s is %g: measured nothing", name, value);
        return;
    }
    struct bench_macc *m = NULL;
    for (unsigned i = 0; i < rec->nm && m == NULL; i++)
        if (strcmp(rec->m[i].name, name) == 0)
            m = &rec->m[i];
    if (m == NULL) {
        if (rec->nm == BENCH_MAX_METRICS) {
            fail_rec(rec, "too many metrics (%s)", name);
            return;
        }
        m = &rec->m[rec->nm++];
        snprintf(m->name, sizeof m->name, "%s", name);
        snprintf(m->unit, sizeof m->unit, "%s", unit);
        m->better = better;
    }
    m->v[c->rep] = value;
    m->has[c->rep] = true;
    rec->metrics++;
}

void bench_latency_named(struct bench_ctx *c, const char *prefix,
                         const struct bench_hist *h)
{
    static const struct {
        const char *name;
        double pct;
    } pcts[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}};
    struct bench_rec *rec = c->rec;
    if (h->count == 0) {
        fail_rec(rec, "no latency samples: measured nothing");
        return;
    }
    char name[24];
    for (size_t i = 0; i < FERRY__ARRAY_SIZE(pcts); i++) {
        snprintf(name, sizeof name, "%s%s", prefix, pcts[i].name);
        double us = (double)bench_hist_pct(h, pcts[i].pct) / 1e3;
        bench_metric(c, name, "us", BENCH_LOWER, us);
    }
    snprintf(name, sizeof name, "%smax", prefix);
    bench_metric(c, name, "us", BENCH_LOWER, (double)h->max / 1e3);
    if (rec->lat == NULL) {
        rec->lat = malloc(sizeof *rec->lat);
        if (rec->lat == NULL) {
            fail_rec(rec, "out of memory");
            return;
        }
        bench_hist_init(rec->lat);
        snprintf(rec->lat_name, sizeof rec->lat_name, "%s",
                 prefix[0] ? prefix : "rtt");
    }
    bench_hist_merge(rec->lat, h);
}

void bench_latency(struct bench_ctx *c, const struct bench_hist *h)
{
    bench_latency_named(c, "", h);
}

void bench_tput(struct bench_ctx *c, uint64_t ops, uint64_t ns)
{
    if (ops == 0 || ns == 0) {
        fail_rec(c->rec, "throughput of %llu ops in %llu ns: measured nothing",
                 (unsigned long long)ops, (unsigned long long)ns);
        return;
    }
    bench_metric(c, "tput", "M/s", BENCH_HIGHER,
                 (double)ops * 1e3 / (double)ns);
}

struct bench_sweep **bench_sweep_slot(struct bench_ctx *c)
{
    return &c->rec->sweep;
}

uint64_t bench_size(const struct bench_ctx *c, uint64_t full, uint64_t quick)
{
    return c->cfg->quick ? quick : full;
}

/* ---- running ---- */

static void run_one(const struct bench_cfg *cfg, struct bench_rec *rec,
                    unsigned rep)
{
    struct bench_ctx c = {.cfg = cfg, .rep = rep, .rec = rec};
    rec->ran = true;
    rec->checks = 0;
    rec->metrics = 0;
    uint64_t t0 = bench_now();
    int rc = rec->wl->run(&c);
    rec->seconds += (double)(bench_now() - t0) / 1e9;
    if (rc < 0)
        fail_rec(rec, "rep %u: %s", rep + 1, strerror(-rc));
    else if (rec->checks == 0)
        fail_rec(rec, "rep %u verified nothing", rep + 1);
    else if (rec->metrics == 0)
        fail_rec(rec, "rep %u measured nothing", rep + 1);
    rec->reps_done++;
}

static void progress(const struct bench_results *r, unsigned set,
                     unsigned nsets, const char *group, unsigned rep,
                     const char *name)
{
    if (!isatty(STDERR_FILENO))
        return;
    fprintf(stderr, "\r\033[K[%u/%u] %-6s rep %u/%u  %s", set, nsets, group,
            rep + 1, r->cfg.reps, name);
    fflush(stderr);
}

static void progress_done(const struct bench_rec *rec, unsigned set,
                          unsigned nsets)
{
    if (isatty(STDERR_FILENO))
        fputs("\r\033[K", stderr);
    fprintf(stderr, "[%u/%u] %-6s %-17s %s  %u reps  %6.2f s\n", set, nsets,
            rec->wl->group, rec->wl->name, rec->failed ? "FAILED" : "ok",
            rec->reps_done, rec->seconds);
}

/* Members of one group, ferry's first (registry order). */
static size_t group_members(struct bench_results *r, const char *group,
                            struct bench_rec **out)
{
    size_t k = 0;
    for (size_t i = 0; i < r->nrecs; i++)
        if (r->recs[i].selected && strcmp(r->recs[i].wl->group, group) == 0)
            out[k++] = &r->recs[i];
    return k;
}

void bench_run_all(struct bench_results *r)
{
    struct bench_rec **set = calloc(r->nrecs, sizeof *set);
    if (set == NULL) {
        bench_warn("out of memory");
        r->failures++;
        return;
    }
    unsigned nsets = 0, s = 0;
    for (size_t g = 0; g < bench_ngroups; g++)
        nsets += group_members(r, bench_groups[g].name, set) > 0;
    for (size_t g = 0; g < bench_ngroups; g++) {
        size_t k = group_members(r, bench_groups[g].name, set);
        if (k == 0)
            continue;
        s++;
        for (unsigned rep = 0; rep < r->cfg.reps; rep++) {
            for (size_t j = 0; j < k; j++) {
                struct bench_rec *rec = set[(j + rep) % k];
                progress(r, s, nsets, bench_groups[g].name, rep, rec->wl->name);
                run_one(&r->cfg, rec, rep);
            }
        }
        for (size_t j = 0; j < k; j++)
            progress_done(set[j], s, nsets);
    }
    for (size_t i = 0; i < r->nrecs; i++)
        r->failures += r->recs[i].failed;
    free(set);
}

/* ---- summaries and ratios ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct bench_summary bench_summarise(const double *v, unsigned n)
{
    struct bench_summary s = {NAN, NAN, NAN, n};
    if (n == 0)
        return s;
    double tmp[BENCH_MAX_REPS];
    memcpy(tmp, v, n * sizeof *v);
    qsort(tmp, n, sizeof *tmp, cmp_double);
    s.min = tmp[0];
    s.max = tmp[n - 1];
    s.med = n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
    return s;
}

struct bench_summary bench_macc_summary(const struct bench_macc *m)
{
    double v[BENCH_MAX_REPS];
    unsigned n = 0;
    for (unsigned i = 0; i < BENCH_MAX_REPS; i++)
        if (m->has[i])
            v[n++] = m->v[i];
    return bench_summarise(v, n);
}

const struct bench_macc *bench_find_metric(const struct bench_rec *rec,
                                           const char *name)
{
    for (unsigned i = 0; i < rec->nm; i++)
        if (strcmp(rec->m[i].name, name) == 0)
            return &rec->m[i];
    return NULL;
}

/* The targets of issues 4 and 5, as ratios ferry / peer in the same run. */
static const struct bench_target targets[] = {
    {"ferry.rtt", "uv.rtt", "p50", 0.2},
    {"ferry.rtt", "uv.rtt", "p99", 0.5},
    {"ferry.tput", "uv.tput", "tput", 2.0},
    {"ferry.post", "uv.post", "tput", 1.5},
    {"ferry.wake", "floor.epoll", "p50", 1.1},
    {"ferry.wake", "floor.epoll", "p99", 1.1},
};

static const struct bench_target *
find_target(const char *ferry, const char *peer, const char *metric)
{
    for (size_t i = 0; i < FERRY__ARRAY_SIZE(targets); i++)
        if (strcmp(targets[i].ferry, ferry) == 0 &&
            strcmp(targets[i].peer, peer) == 0 &&
            strcmp(targets[i].metric, metric) == 0)
            return &targets[i];
    return NULL;
}

static void add_ratios(struct bench_results *r, const struct bench_rec *f,
                       const struct bench_rec *p)
{
    for (unsigned i = 0; i < f->nm; i++) {
        const struct bench_macc *mf = &f->m[i];
        const struct bench_macc *mp = bench_find_metric(p, mf->name);
        if (mp == NULL)
            continue;
        double v[BENCH_MAX_REPS];
        unsigned n = 0;
        for (unsigned k = 0; k < BENCH_MAX_REPS; k++)
            if (mf->has[k] && mp->has[k] && mp->v[k] > 0)
                v[n++] = mf->v[k] / mp->v[k];
        if (n == 0)
            continue;
        struct bench_ratio *ra = &r->ratios[r->nratios++];
        ra->ferry = f;
        ra->peer = p;
        ra->metric = mf;
        ra->s = bench_summarise(v, n);
        ra->target = find_target(f->wl->name, p->wl->name, mf->name);
    }
}

void bench_compute_ratios(struct bench_results *r)
{
    r->ratios = calloc(r->nrecs * BENCH_MAX_METRICS, sizeof *r->ratios);
    if (r->ratios == NULL)
        return;
    /* Ferry's workloads in registry order, each followed by its peers. */
    for (size_t j = 0; j < r->nrecs; j++) {
        const struct bench_rec *f = &r->recs[j];
        if (!f->ran || f->wl->peer_of != NULL)
            continue;
        for (size_t i = 0; i < r->nrecs; i++) {
            const struct bench_rec *p = &r->recs[i];
            if (p->ran && p->wl->peer_of &&
                strcmp(f->wl->name, p->wl->peer_of) == 0)
                add_ratios(r, f, p);
        }
    }
}

void bench_results_free(struct bench_results *r)
{
    for (size_t i = 0; i < r->nrecs; i++) {
        free(r->recs[i].lat);
        bench_sweep_free(r->recs[i].sweep);
    }
    free(r->recs);
    free(r->ratios);
}
