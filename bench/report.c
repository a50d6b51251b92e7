/*
 * bench/report.c: the machine header, aligned tables, ratio rows, and the
 * JSON and CSV files.
 *
 * Tables: one per comparison group, a row per workload (ferry first, peers
 * after, workloads not built shown with the reason), a column per metric;
 * each cell is "median [min-max]" over the reps. Then the ratio rows
 * ferry / peer with the targets of issues 4 and 5, the libuv reference
 * figures those issues measured on the development machine (to validate
 * the harness: the same shape should land near the same figure on the same
 * machine), and the sweep tables.
 *
 * JSON is written by a minimal emitter that handles commas, escaping and
 * non-finite numbers (as null), so the file always parses; the smoke test
 * checks that with python3's json module.
 *
 * Thread: main, after every workload ran.
 */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "sweep.h"

/* libuv 1.44, 2 pool threads, measured on the 2-core dev machine (issues
 * 4 and 5). */
static const struct {
    const char *wl, *metric;
    double value;
} reference[] = {
    {"uv.rtt", "p50", 40.3},
    {"uv.rtt", "p99", 57.5},
    {"uv.tput", "tput", 4.71},
    {"uv.post", "tput", 19.4},
};

static void fmt_num(char *buf, size_t n, double v)
{
    if (!isfinite(v))
        snprintf(buf, n, "-");
    else if (v >= 100)
        snprintf(buf, n, "%.0f", v);
    else if (v >= 10)
        snprintf(buf, n, "%.1f", v);
    else if (v >= 0.01)
        snprintf(buf, n, "%.2f", v);
    else
        snprintf(buf, n, "%.2g", v);
}

static void fmt_summary(char *buf, size_t n, struct bench_summary s)
{
    char a[24], b[24], c[24];
    fmt_num(a, sizeof a, s.med);
    fmt_num(b, sizeof b, s.min);
    fmt_num(c, sizeof c, s.max);
    if (s.n > 1)
        snprintf(buf, n, "%s [%s-%s]", a, b, c);
    else
        snprintf(buf, n, "%s", a);
}

void bench_report_machine(FILE *f, const struct bench_results *r)
{
    const struct bench_machine *m = &r->mach;
    fprintf(f, "ferry-bench %s  %s\n", m->ferry_version, m->date);
    fprintf(f, "machine: %s, %u cores online, %s\n", m->cpu, m->cores,
            m->kernel);
    fprintf(f, "clock source: %s; load average at start: %s\n", m->clocksource,
            m->loadavg);
    if (m->uv_version)
        fprintf(f,
                "peers: libuv %s (pool: UV_THREADPOOL_SIZE=%u), naive "
                "mutex+condvar pool, eventfd/epoll and spin floors\n",
                m->uv_version, m->uv_threads);
    else
        fprintf(f, "peers: libuv NOT FOUND at build time (apt-get install "
                   "libuv1-dev, then reconfigure); naive pool, floors\n");
    fprintf(f,
            "config: %u reps%s, %u threads per pool; figures are median "
            "[min-max] over reps\n",
            r->cfg.reps, r->cfg.quick ? " (--quick: tiny sizes)" : "",
            r->cfg.threads);
}

/* Whether rec belongs in group g's table. */
static bool shown(const struct bench_results *r, const struct bench_rec *rec,
                  const char *g)
{
    if (strcmp(rec->wl->group, g) != 0)
        return false;
    if (rec->ran)
        return true;
    /* Unbuilt ferry workloads appear in groups that ran. */
    if (rec->wl->run != NULL)
        return false;
    for (size_t i = 0; i < r->nrecs; i++)
        if (r->recs[i].ran && strcmp(r->recs[i].wl->group, g) == 0)
            return true;
    return false;
}

/* Union of metric names of the group's workloads, in order of appearance. */
static unsigned group_metrics(const struct bench_results *r, const char *g,
                              const char *names[BENCH_MAX_METRICS * 2])
{
    unsigned n = 0;
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct bench_rec *rec = &r->recs[i];
        if (!rec->ran || strcmp(rec->wl->group, g) != 0)
            continue;
        for (unsigned k = 0; k < rec->nm; k++) {
            bool dup = false;
            for (unsigned j = 0; j < n && !dup; j++)
                dup = strcmp(names[j], rec->m[k].name) == 0;
            if (!dup && n < BENCH_MAX_METRICS * 2)
                names[n++] = rec->m[k].name;
        }
    }
    return n;
}

static void table_row(FILE *f, const struct bench_rec *rec,
                      const char *const *names, unsigned n, const int *w)
{
    fprintf(f, "%-17s", rec->wl->name);
    if (!rec->ran) {
        fprintf(f, "  not built: %s\n", rec->wl->missing);
        return;
    }
    for (unsigned k = 0; k < n; k++) {
        char cell[80] = "-";
        const struct bench_macc *m = bench_find_metric(rec, names[k]);
        if (m)
            fmt_summary(cell, sizeof cell, bench_macc_summary(m));
        fprintf(f, "  %-*s", w[k], cell);
    }
    fprintf(f, "%s\n", rec->failed ? "  FAILED" : "");
}

static void group_table(FILE *f, const struct bench_results *r,
                        const struct bench_group *g)
{
    const char *names[BENCH_MAX_METRICS * 2];
    int w[BENCH_MAX_METRICS * 2];
    unsigned n = group_metrics(r, g->name, names);
    fprintf(f, "\n== %s: %s ==\n%-17s", g->name, g->title, "workload");
    for (unsigned k = 0; k < n; k++) {
        char head[40];
        const char *unit = "";
        for (size_t i = 0; i < r->nrecs && !unit[0]; i++) {
            const struct bench_macc *m =
                bench_find_metric(&r->recs[i], names[k]);
            unit = m ? m->unit : "";
        }
        snprintf(head, sizeof head, "%s (%s)", names[k], unit);
        w[k] = (int)strlen(head);
        for (size_t i = 0; i < r->nrecs; i++) {
            const struct bench_macc *m =
                bench_find_metric(&r->recs[i], names[k]);
            char cell[80];
            if (m == NULL || !r->recs[i].ran)
                continue;
            fmt_summary(cell, sizeof cell, bench_macc_summary(m));
            if ((int)strlen(cell) > w[k])
                w[k] = (int)strlen(cell);
        }
        fprintf(f, "  %-*s", w[k], head);
    }
    fputc('\n', f);
    for (size_t i = 0; i < r->nrecs; i++)
        if (shown(r, &r->recs[i], g->name))
            table_row(f, &r->recs[i], names, n, w);
}

static bool target_met(const struct bench_ratio *ra)
{
    if (ra->metric->better == BENCH_LOWER)
        return ra->s.med <= ra->target->bound;
    return ra->s.med >= ra->target->bound;
}

static void ratio_table(FILE *f, const struct bench_results *r)
{
    fprintf(f, "\n== ratios ferry / peer, rep by rep: median [min-max] "
               "(latency: < 1 is better; throughput: > 1) ==\n");
    if (r->nratios == 0) {
        fprintf(f, "none: no ferry workload ran alongside one of its peers "
                   "(--list shows what is built)\n");
        return;
    }
    fprintf(f, "%-12s %-17s %-18s %-22s %s\n", "ferry", "peer", "metric",
            "ratio", "target");
    for (size_t i = 0; i < r->nratios; i++) {
        const struct bench_ratio *ra = &r->ratios[i];
        char cell[80], tgt[48] = "";
        /* p90 and max stay in JSON/CSV: the table keeps to p50/p99/p99.9
         * (max is one sample, the noisiest figure of all). */
        const char *name = ra->metric->name;
        size_t len = strlen(name);
        if (len >= 3 && (strcmp(name + len - 3, "p90") == 0 ||
                         strcmp(name + len - 3, "max") == 0))
            continue;
        fmt_summary(cell, sizeof cell, ra->s);
        if (ra->target)
            snprintf(tgt, sizeof tgt, "%s %.2g: %s",
                     ra->metric->better == BENCH_LOWER ? "<=" : ">=",
                     ra->target->bound, target_met(ra) ? "met" : "MISSED");
        fprintf(f, "%-12s %-17s %-18s %-22s %s\n", ra->ferry->wl->name,
                ra->peer->wl->name, ra->metric->name, cell, tgt);
    }
}

static void reference_table(FILE *f, const struct bench_results *r)
{
    bool header = false;
    for (size_t i = 0; i < FERRY__ARRAY_SIZE(reference); i++) {
        for (size_t k = 0; k < r->nrecs; k++) {
            const struct bench_rec *rec = &r->recs[k];
            const struct bench_macc *m;
            if (!rec->ran || strcmp(rec->wl->name, reference[i].wl) != 0 ||
                (m = bench_find_metric(rec, reference[i].metric)) == NULL)
                continue;
            if (!header)
                fprintf(f, "\n== harness check: libuv here vs libuv 1.44 "
                           "measured for issues 4/5 (2 pool threads) ==\n");
            header = true;
            struct bench_summary s = bench_macc_summary(m);
            fprintf(f,
                    "%-8s %-5s this run %8.2f %-4s reference %8.2f  "
                    "(x%.2f)\n",
                    reference[i].wl, reference[i].metric, s.med, m->unit,
                    reference[i].value, s.med / reference[i].value);
        }
    }
}

void bench_report_tables(FILE *f, const struct bench_results *r)
{
    for (size_t g = 0; g < bench_ngroups; g++) {
        bool any = false;
        for (size_t i = 0; i < r->nrecs && !any; i++)
            any = r->recs[i].ran &&
                  strcmp(r->recs[i].wl->group, bench_groups[g].name) == 0;
        if (any)
            group_table(f, r, &bench_groups[g]);
    }
    for (size_t i = 0; i < r->nrecs; i++)
        if (r->recs[i].sweep)
            bench_sweep_table(f, r->recs[i].wl->name, r->recs[i].sweep);
    ratio_table(f, r);
    reference_table(f, r);
    fputc('\n', f);
    if (r->failures == 0) {
        fprintf(f, "verification: every workload that ran verified its "
                   "work\n");
        return;
    }
    for (size_t i = 0; i < r->nrecs; i++)
        if (r->recs[i].failed)
            fprintf(f, "VERIFICATION FAILED: %s: %s\n", r->recs[i].wl->name,
                    r->recs[i].why);
}

/* ---- JSON ---- */

struct jw {
    FILE *f;
    int depth;
    bool comma[16]; /* an item was written at this depth */
};

static void jw_sep(struct jw *w, const char *key)
{
    if (w->comma[w->depth])
        fputc(',', w->f);
    w->comma[w->depth] = true;
    fprintf(w->f, "\n%*s", 2 * w->depth, "");
    if (key)
        fprintf(w->f, "\"%s\": ", key); /* keys are ours: no escaping */
}

static void jw_open(struct jw *w, const char *key, char brace)
{
    jw_sep(w, key);
    fputc(brace, w->f);
    w->comma[++w->depth] = false;
}

static void jw_close(struct jw *w, char brace)
{
    w->depth--;
    fprintf(w->f, "\n%*s%c", 2 * w->depth, "", brace);
}

static void jw_str(struct jw *w, const char *key, const char *s)
{
    jw_sep(w, key);
    if (s == NULL) {
        fputs("null", w->f);
        return;
    }
    fputc('"', w->f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(w->f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(w->f, "\\u%04x", ch);
        else
            fputc(ch, w->f);
    }
    fputc('"', w->f);
}

static void jw_num(struct jw *w, const char *key, double v)
{
    jw_sep(w, key);
    if (isfinite(v))
        fprintf(w->f, "%.6g", v);
    else
        fputs("null", w->f);
}

static void jw_bool(struct jw *w, const char *key, bool v)
{
    jw_sep(w, key);
    fputs(v ? "true" : "false", w->f);
}

static void json_summary(struct jw *w, struct bench_summary s)
{
    jw_num(w, "median", s.med);
    jw_num(w, "min", s.min);
    jw_num(w, "max", s.max);
    jw_num(w, "n", s.n);
}

static void json_metrics(struct jw *w, const struct bench_rec *rec)
{
    jw_open(w, "metrics", '{');
    for (unsigned k = 0; k < rec->nm; k++) {
        const struct bench_macc *m = &rec->m[k];
        jw_open(w, m->name, '{');
        jw_str(w, "unit", m->unit);
        jw_str(w, "better", m->better == BENCH_LOWER ? "lower" : "higher");
        json_summary(w, bench_macc_summary(m));
        jw_open(w, "values", '[');
        for (unsigned i = 0; i < BENCH_MAX_REPS; i++)
            if (m->has[i])
                jw_num(w, NULL, m->v[i]);
        jw_close(w, ']');
        jw_close(w, '}');
    }
    jw_close(w, '}');
}

/* Percentiles for the curve: 0, 50, 75, 87.5, ... up to 99.999. */
static void json_latency(struct jw *w, const struct bench_rec *rec)
{
    const struct bench_hist *h = rec->lat;
    jw_open(w, "latency", '{');
    jw_str(w, "name", rec->lat_name);
    jw_num(w, "count", (double)h->count);
    jw_num(w, "mean_us", bench_hist_mean(h) / 1e3);
    jw_num(w, "min_us", (double)h->min / 1e3);
    jw_num(w, "max_us", (double)h->max / 1e3);
    jw_open(w, "curve", '[');
    for (double tail = 1.0; tail >= 1e-5; tail /= 2) {
        double pct = 100.0 * (1.0 - tail);
        jw_open(w, NULL, '[');
        jw_num(w, NULL, pct);
        jw_num(w, NULL, (double)bench_hist_pct(h, pct) / 1e3);
        jw_close(w, ']');
    }
    jw_close(w, ']');
    jw_close(w, '}');
}

static void json_sweep(struct jw *w, const struct bench_sweep *sw)
{
    jw_open(w, "sweep", '{');
    jw_open(w, "cells", '[');
    for (int k = 0; k < SWEEP_NKINDS; k++)
        for (unsigned i = 0; i < SWEEP_NSIZES; i++)
            for (int m = 0; m < SWEEP_NMODES; m++) {
                struct sweep_stat st;
                bench_sweep_stat(sw, (enum sweep_kind)k, i, (enum sweep_mode)m,
                                 &st);
                jw_open(w, NULL, '{');
                jw_str(w, "kind", sweep_kind_names[k]);
                jw_str(w, "size", sweep_size_labels[i]);
                jw_num(w, "size_ns", (double)sweep_sizes_ns[i]);
                jw_str(w, "mode", sweep_mode_names[m]);
                jw_bool(w, "ran", st.ran);
                if (st.ran) {
                    jw_num(w, "lag_p50_us", st.lag_p50);
                    jw_num(w, "lag_p99_us", st.lag_p99);
                    jw_num(w, "lag_max_us", st.lag_max);
                    jw_num(w, "tput_per_s", st.tput.med);
                    jw_num(w, "tput_min", st.tput.min);
                    jw_num(w, "tput_max", st.tput.max);
                    jw_num(w, "items", (double)st.items);
                    jw_num(w, "lag_samples", (double)st.ticks);
                }
                jw_close(w, '}');
            }
    jw_close(w, ']');
    jw_open(w, "crossover", '{');
    for (int k = 0; k < SWEEP_NKINDS; k++) {
        int x = bench_sweep_crossover(sw, (enum sweep_kind)k);
        jw_str(w, sweep_kind_names[k], x >= 0 ? sweep_size_labels[x] : NULL);
    }
    jw_close(w, '}');
    jw_close(w, '}');
}

static void json_workload(struct jw *w, const struct bench_rec *rec)
{
    const struct bench_wl *wl = rec->wl;
    jw_open(w, NULL, '{');
    jw_str(w, "name", wl->name);
    jw_str(w, "group", wl->group);
    jw_str(w, "impl", wl->impl);
    jw_str(w, "peer_of", wl->peer_of);
    jw_str(w, "description", wl->desc);
    jw_bool(w, "built", wl->run != NULL);
    jw_str(w, "missing", wl->missing);
    jw_bool(w, "selected", rec->selected);
    jw_bool(w, "ran", rec->ran);
    jw_bool(w, "verified", rec->ran && !rec->failed);
    jw_str(w, "failure", rec->failed ? rec->why : NULL);
    jw_num(w, "reps", rec->reps_done);
    jw_num(w, "seconds", rec->seconds);
    json_metrics(w, rec);
    if (rec->lat)
        json_latency(w, rec);
    if (rec->sweep)
        json_sweep(w, rec->sweep);
    jw_close(w, '}');
}

static void json_head(struct jw *w, const struct bench_results *r)
{
    const struct bench_machine *m = &r->mach;
    jw_str(w, "tool", "ferry-bench");
    jw_str(w, "ferry_version", m->ferry_version);
    jw_str(w, "date", m->date);
    jw_open(w, "machine", '{');
    jw_str(w, "cpu", m->cpu);
    jw_num(w, "cores", m->cores);
    jw_str(w, "kernel", m->kernel);
    jw_str(w, "clocksource", m->clocksource);
    jw_str(w, "loadavg", m->loadavg);
    jw_close(w, '}');
    jw_open(w, "config", '{');
    jw_num(w, "reps", r->cfg.reps);
    jw_num(w, "threads", r->cfg.threads);
    jw_bool(w, "quick", r->cfg.quick);
    jw_close(w, '}');
    jw_open(w, "peers", '{');
    jw_str(w, "libuv", m->uv_version);
    jw_num(w, "libuv_threadpool_size",
           m->uv_version ? (double)m->uv_threads : NAN);
    jw_close(w, '}');
}

int bench_report_json(const char *path, const struct bench_results *r)
{
    struct jw w = {.f = fopen(path, "w")};
    if (w.f == NULL)
        return -errno;
    fputc('{', w.f);
    w.depth = 1;
    json_head(&w, r);
    jw_open(&w, "workloads", '[');
    for (size_t i = 0; i < r->nrecs; i++)
        json_workload(&w, &r->recs[i]);
    jw_close(&w, ']');
    jw_open(&w, "ratios", '[');
    for (size_t i = 0; i < r->nratios; i++) {
        const struct bench_ratio *ra = &r->ratios[i];
        jw_open(&w, NULL, '{');
        jw_str(&w, "ferry", ra->ferry->wl->name);
        jw_str(&w, "peer", ra->peer->wl->name);
        jw_str(&w, "metric", ra->metric->name);
        json_summary(&w, ra->s);
        jw_num(&w, "target", ra->target ? ra->target->bound : NAN);
        if (ra->target)
            jw_bool(&w, "target_met", target_met(ra));
        jw_close(&w, '}');
    }
    jw_close(&w, ']');
    jw_bool(&w, "ok", r->failures == 0);
    fputs("\n}\n", w.f);
    return fclose(w.f) == 0 ? 0 : -errno;
}

/* ---- CSV ---- */

static void csv_row(FILE *f, const char *section, const char *wl,
                    const char *metric, const char *unit,
                    struct bench_summary s, bool ok)
{
    fprintf(f, "%s,%s,%s,%s,%.6g,%.6g,%.6g,%u,%s\n", section, wl, metric, unit,
            s.med, s.min, s.max, s.n, ok ? "true" : "false");
}

static void csv_sweep(FILE *f, const struct bench_rec *rec)
{
    for (int k = 0; k < SWEEP_NKINDS; k++)
        for (unsigned i = 0; i < SWEEP_NSIZES; i++)
            for (int m = 0; m < SWEEP_NMODES; m++) {
                struct sweep_stat st;
                char name[64];
                if (!bench_sweep_stat(rec->sweep, (enum sweep_kind)k, i,
                                      (enum sweep_mode)m, &st))
                    continue;
                snprintf(name, sizeof name, "%s %s %s", sweep_kind_names[k],
                         sweep_size_labels[i], sweep_mode_names[m]);
                struct bench_summary lag = {st.lag_p99, st.lag_p50, st.lag_max,
                                            1};
                csv_row(f, "sweep-lag-p99[p50-max]", rec->wl->name, name, "us",
                        lag, !rec->failed);
                csv_row(f, "sweep-tput", rec->wl->name, name, "items/s",
                        st.tput, !rec->failed);
            }
}

int bench_report_csv(const char *path, const struct bench_results *r)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -errno;
    fprintf(f, "section,workload,metric,unit,median,min,max,n,verified\n");
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct bench_rec *rec = &r->recs[i];
        for (unsigned k = 0; k < rec->nm; k++)
            csv_row(f, "metric", rec->wl->name, rec->m[k].name, rec->m[k].unit,
                    bench_macc_summary(&rec->m[k]), !rec->failed);
        if (rec->sweep)
            csv_sweep(f, rec);
    }
    for (size_t i = 0; i < r->nratios; i++) {
        const struct bench_ratio *ra = &r->ratios[i];
        char wl[64];
        snprintf(wl, sizeof wl, "%s/%s", ra->ferry->wl->name,
                 ra->peer->wl->name);
        csv_row(f, "ratio", wl, ra->metric->name, "x", ra->s,
                !ra->ferry->failed && !ra->peer->failed);
    }
    return fclose(f) == 0 ? 0 : -errno;
}
