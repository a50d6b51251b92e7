/*
 * bench/sweep.c: the "when does offloading pay" sweep (sweep.h), its
 * accumulation over reps, the crossover rule and its text table.
 *
 * The rule: offloading pays at a work size when, compared with running the
 * work inline on the loop,
 *   (1) the loop's lag p99 is lower than with the work inline (the loop is
 *       more responsive), and
 *   (2) the work's throughput is at least 80 % of the inline throughput
 *       (the price of the round trips is acceptable).
 * The crossover is the smallest size from which the rule holds for every
 * larger size of the sweep. Sleep sizes are nominal: nanosleep rounds up by
 * the thread's timer slack (50 us by default on Linux), which the inline
 * throughput shows.
 *
 * Thread: all on the main (loop) thread except sweep_work, which runs on
 * whichever thread executes an item.
 */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "sweep.h"

#define US 1000ull
#define MS (1000ull * US)

const uint64_t sweep_sizes_ns[SWEEP_NSIZES] = {0,        1 * US, 10 * US,
                                               100 * US, 1 * MS, 10 * MS};
const char *const sweep_size_labels[SWEEP_NSIZES] = {"0",     "1us", "10us",
                                                     "100us", "1ms", "10ms"};
const char *const sweep_kind_names[SWEEP_NKINDS] = {"spin", "sleep"};
const char *const sweep_mode_names[SWEEP_NMODES] = {"inline", "offload"};

struct sweep_acc {
    bool ran;
    struct bench_hist lag;       /* merged over reps */
    double tput[BENCH_MAX_REPS]; /* items/s of each rep */
    unsigned ntput;
    uint64_t items, ticks;
};

struct bench_sweep {
    struct sweep_acc cell[SWEEP_NKINDS][SWEEP_NSIZES][SWEEP_NMODES];
};

void sweep_cell_begin(struct sweep_cell *s, const struct sweep_cell_cfg *cfg)
{
    bench_hist_init(&s->lag);
    s->cfg = cfg;
    s->t_start = bench_now();
    s->t_last = s->t_start;
    s->submitted = 0;
    s->completed = 0;
    s->stopping = false;
    s->timer_armed = true; /* the backend arms it right after */
}

bool sweep_tick(struct sweep_cell *s, uint64_t lag_ns)
{
    bench_hist_record(&s->lag, lag_ns);
    if (bench_now() - s->t_start >= s->cfg->duration_ns)
        s->stopping = true;
    s->timer_armed = !s->stopping;
    return s->timer_armed;
}

bool sweep_submit(struct sweep_cell *s)
{
    if (s->stopping)
        return false;
    s->submitted++;
    return true;
}

void sweep_item_done(struct sweep_cell *s)
{
    s->completed++;
    s->t_last = bench_now();
}

bool sweep_finished(const struct sweep_cell *s)
{
    return s->stopping && !s->timer_armed && s->completed == s->submitted;
}

void sweep_work(const struct sweep_cell_cfg *cfg)
{
    if (cfg->kind == SWEEP_SPIN)
        bench_spin_ns(cfg->work_ns);
    else
        bench_sleep_ns(cfg->work_ns);
}

static struct bench_sweep *sweep_new(void)
{
    struct bench_sweep *sw = calloc(1, sizeof *sw);
    if (sw == NULL)
        return NULL;
    for (int k = 0; k < SWEEP_NKINDS; k++)
        for (int i = 0; i < SWEEP_NSIZES; i++)
            for (int m = 0; m < SWEEP_NMODES; m++)
                bench_hist_init(&sw->cell[k][i][m].lag);
    return sw;
}

void bench_sweep_free(struct bench_sweep *sw)
{
    free(sw);
}

static void accumulate(struct bench_ctx *c, struct sweep_acc *a,
                       const struct sweep_cell *s, const char *size)
{
    const struct sweep_cell_cfg *cc = s->cfg;
    uint64_t span = s->t_last - s->t_start;
    bool ok = bench_check(
        c, s->completed == s->submitted && s->completed > 0,
        "%s %s %s: %llu of %llu items completed", sweep_kind_names[cc->kind],
        size, sweep_mode_names[cc->mode], (unsigned long long)s->completed,
        (unsigned long long)s->submitted);
    ok = ok && bench_check(c, s->lag.count > 0 && span > 0,
                           "sweep cell measured no lag sample");
    if (!ok)
        return;
    a->ran = true;
    bench_hist_merge(&a->lag, &s->lag);
    a->tput[a->ntput++] = (double)s->completed * 1e9 / (double)span;
    a->items += s->completed;
    a->ticks += s->lag.count;
}

/* Headline metrics for the generic table: lag p99 with 1 ms spin work. */
static void headline(struct bench_ctx *c, struct bench_sweep *sw)
{
    struct sweep_stat st;
    if (bench_sweep_stat(sw, SWEEP_SPIN, 4, SWEEP_INLINE, &st))
        bench_metric(c, "in lag99 spin1ms", "us", BENCH_LOWER, st.lag_p99);
    if (bench_sweep_stat(sw, SWEEP_SPIN, 4, SWEEP_OFFLOAD, &st))
        bench_metric(c, "off lag99 spin1ms", "us", BENCH_LOWER, st.lag_p99);
}

int bench_sweep_run(struct bench_ctx *c, const struct sweep_ops *ops,
                    void *backend)
{
    struct bench_sweep **slot = bench_sweep_slot(c);
    if (*slot == NULL && (*slot = sweep_new()) == NULL)
        return -ENOMEM;
    struct sweep_cell *s = malloc(sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    int rc = 0;
    for (int k = 0; k < SWEEP_NKINDS && rc == 0; k++) {
        for (int i = 0; i < SWEEP_NSIZES && rc == 0; i++) {
            for (int m = 0; m < SWEEP_NMODES && rc == 0; m++) {
                if (m == SWEEP_OFFLOAD && !ops->can_offload)
                    continue;
                struct sweep_cell_cfg cfg = {
                    .kind = (enum sweep_kind)k,
                    .mode = (enum sweep_mode)m,
                    .work_ns = sweep_sizes_ns[i],
                    .duration_ns = bench_size(c, 100 * MS, 5 * MS),
                    .period_ns = 1 * MS,
                    .inflight = c->cfg->threads,
                };
                sweep_cell_begin(s, &cfg);
                rc = ops->run_cell(backend, s);
                if (rc == 0)
                    accumulate(c, &(*slot)->cell[k][i][m], s,
                               sweep_size_labels[i]);
            }
        }
    }
    free(s);
    if (rc == 0)
        headline(c, *slot);
    return rc;
}

bool bench_sweep_stat(const struct bench_sweep *sw, enum sweep_kind k,
                      unsigned size, enum sweep_mode m, struct sweep_stat *o)
{
    const struct sweep_acc *a = &sw->cell[k][size][m];
    o->ran = a->ran;
    if (!a->ran)
        return false;
    o->lag_p50 = (double)bench_hist_pct(&a->lag, 50) / 1e3;
    o->lag_p99 = (double)bench_hist_pct(&a->lag, 99) / 1e3;
    o->lag_max = (double)a->lag.max / 1e3;
    o->tput = bench_summarise(a->tput, a->ntput);
    o->items = a->items;
    o->ticks = a->ticks;
    return true;
}

const struct bench_hist *bench_sweep_lag(const struct bench_sweep *sw,
                                         enum sweep_kind k, unsigned size,
                                         enum sweep_mode m)
{
    return sw->cell[k][size][m].ran ? &sw->cell[k][size][m].lag : NULL;
}

bool bench_sweep_pays(const struct sweep_stat *in, const struct sweep_stat *of)
{
    return in->ran && of->ran && of->lag_p99 < in->lag_p99 &&
           of->tput.med >= 0.8 * in->tput.med;
}

int bench_sweep_crossover(const struct bench_sweep *sw, enum sweep_kind k)
{
    int from = -1;
    for (int i = SWEEP_NSIZES - 1; i >= 0; i--) {
        struct sweep_stat in, of;
        bench_sweep_stat(sw, k, (unsigned)i, SWEEP_INLINE, &in);
        bench_sweep_stat(sw, k, (unsigned)i, SWEEP_OFFLOAD, &of);
        if (!bench_sweep_pays(&in, &of))
            break;
        from = i;
    }
    return from;
}

static void fmt_rate(char *buf, size_t n, double v)
{
    if (!isfinite(v))
        snprintf(buf, n, "-");
    else if (v >= 1e6)
        snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, n, "%.1fk", v / 1e3);
    else
        snprintf(buf, n, "%.0f", v);
}

static void cell_text(char *lag, char *tput, const struct sweep_stat *st)
{
    if (!st->ran) {
        snprintf(lag, 40, "not built");
        snprintf(tput, 16, "-");
        return;
    }
    snprintf(lag, 40, "%.0f/%.0f/%.0f", st->lag_p50, st->lag_p99, st->lag_max);
    fmt_rate(tput, 16, st->tput.med);
}

void bench_sweep_table(FILE *f, const char *name, const struct bench_sweep *sw)
{
    fprintf(f,
            "\n-- %s: loop lag from a 1 ms timer (us p50/p99/max), "
            "work throughput (items/s, median) --\n",
            name);
    fprintf(f, "%-6s %-6s %-20s %-10s %-20s %-10s %s\n", "kind", "work",
            "inline lag", "inline/s", "offload lag", "offload/s", "pays");
    for (int k = 0; k < SWEEP_NKINDS; k++) {
        for (unsigned i = 0; i < SWEEP_NSIZES; i++) {
            struct sweep_stat in, of;
            char l1[40], t1[16], l2[40], t2[16];
            bench_sweep_stat(sw, (enum sweep_kind)k, i, SWEEP_INLINE, &in);
            bench_sweep_stat(sw, (enum sweep_kind)k, i, SWEEP_OFFLOAD, &of);
            cell_text(l1, t1, &in);
            cell_text(l2, t2, &of);
            fprintf(f, "%-6s %-6s %-20s %-10s %-20s %-10s %s\n",
                    sweep_kind_names[k], sweep_size_labels[i], l1, t1, l2, t2,
                    !of.ran                      ? "-"
                    : bench_sweep_pays(&in, &of) ? "yes"
                                                 : "no");
        }
    }
    for (int k = 0; k < SWEEP_NKINDS; k++) {
        int x = bench_sweep_crossover(sw, (enum sweep_kind)k);
        struct sweep_stat of;
        bench_sweep_stat(sw, (enum sweep_kind)k, 0, SWEEP_OFFLOAD, &of);
        fprintf(f, "crossover (%s): %s%s\n", sweep_kind_names[k],
                x >= 0 ? "offloading pays from " : "",
                x >= 0   ? sweep_size_labels[x]
                : of.ran ? "offloading never pays in this sweep"
                         : "offload half not built");
    }
    fprintf(f, "  (pays = offloaded lag p99 < inline lag p99 and offloaded "
               "throughput >= 80%% of inline; offload keeps --threads items "
               "in flight;\n   sleep sizes are nominal: nanosleep adds the "
               "thread's timer slack, 50 us by default)\n");
}
