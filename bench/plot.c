/*
 * bench/plot.c: --plot FILE.png through gnuplot (Debian: gnuplot-nox).
 *
 * Two panels in one PNG:
 *   1. latency percentile curves of every workload with a latency
 *      histogram (HdrHistogram's plot: x = 1 / (1 - percentile) on a log
 *      axis, so the tail gets as much room as the median);
 *   2. the sweep's loop lag p99 against work size, inline and offloaded,
 *      for every sweep that ran (spin solid, sleep dashed).
 * Data goes to gnuplot inline as datablocks ($name << EOD), so no
 * temporary files are left behind. When gnuplot is not on PATH the program
 * says how to install it and carries on: the plot is optional.
 *
 * Thread: main.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "sweep.h"

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        return false;
    char buf[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, prog);
        if (n > 0 && access(buf, X_OK) == 0)
            return true;
        path += n + (path[n] == ':');
    }
    return false;
}

/* Write s as a gnuplot single-quoted string ('' escapes a quote). */
static void quoted(FILE *g, const char *s)
{
    fputc('\'', g);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', g);
        fputc(*s, g);
    }
    fputc('\'', g);
}

static unsigned latency_panel(FILE *g, const struct bench_results *r)
{
    unsigned n = 0;
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct bench_hist *h = r->recs[i].lat;
        if (h == NULL)
            continue;
        fprintf(g, "$lat%zu << EOD\n", i);
        for (double tail = 1.0; tail >= 1e-5; tail /= 2) {
            double v = (double)bench_hist_pct(h, 100.0 * (1.0 - tail)) / 1e3;
            fprintf(g, "%g %g\n", 1.0 / tail, v > 0.01 ? v : 0.01);
        }
        fprintf(g, "EOD\n");
        n++;
    }
    if (n == 0)
        return 0;
    fprintf(g, "set title 'latency by percentile (us, log scale; merged over "
               "reps)'\nset logscale xy\nset xlabel 'percentile'\n"
               "set ylabel 'us'\nset key left top\n"
               /* a tic label is a format: %%%% prints a percent sign */
               "set xtics ('0%%%%' 1, '50%%%%' 2, '90%%%%' 10, '99%%%%' 100, "
               "'99.9%%%%' 1000, '99.99%%%%' 10000, '99.999%%%%' 100000)\n"
               "plot ");
    const char *sep = "";
    for (size_t i = 0; i < r->nrecs; i++) {
        if (r->recs[i].lat == NULL)
            continue;
        fprintf(g, "%s$lat%zu with linespoints title ", sep, i);
        char title[64];
        snprintf(title, sizeof title, "%s %s", r->recs[i].wl->name,
                 r->recs[i].lat_name);
        quoted(g, title);
        sep = ", \\\n  ";
    }
    fprintf(g, "\n");
    return n;
}

static void sweep_data(FILE *g, size_t i, const struct bench_sweep *sw)
{
    for (int k = 0; k < SWEEP_NKINDS; k++)
        for (int m = 0; m < SWEEP_NMODES; m++) {
            fprintf(g, "$sw%zu_%d_%d << EOD\n", i, k, m);
            for (unsigned s = 0; s < SWEEP_NSIZES; s++) {
                struct sweep_stat st;
                if (bench_sweep_stat(sw, (enum sweep_kind)k, s,
                                     (enum sweep_mode)m, &st))
                    fprintf(g, "%u %g\n", s,
                            st.lag_p99 > 0.1 ? st.lag_p99 : 0.1);
            }
            fprintf(g, "EOD\n");
        }
}

static unsigned sweep_panel(FILE *g, const struct bench_results *r)
{
    unsigned n = 0;
    for (size_t i = 0; i < r->nrecs; i++)
        if (r->recs[i].sweep) {
            sweep_data(g, i, r->recs[i].sweep);
            n++;
        }
    if (n == 0)
        return 0;
    fprintf(g,
            "set title 'loop lag p99 from a 1 ms timer vs work size: "
            "inline vs offloaded'\nunset logscale x\nset logscale y\n"
            "set xlabel 'work per item'\nset ylabel 'lag p99 (us)'\n"
            "set key left top\nset xrange [-0.3:%d.3]\nset xtics (",
            SWEEP_NSIZES - 1);
    for (unsigned s = 0; s < SWEEP_NSIZES; s++)
        fprintf(g, "%s'%s' %u", s ? ", " : "", sweep_size_labels[s], s);
    fprintf(g, ")\nplot ");
    const char *sep = "";
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct bench_sweep *sw = r->recs[i].sweep;
        for (int k = 0; sw && k < SWEEP_NKINDS; k++)
            for (int m = 0; m < SWEEP_NMODES; m++) {
                if (!bench_sweep_lag(sw, (enum sweep_kind)k, 0,
                                     (enum sweep_mode)m))
                    continue;
                char title[64];
                snprintf(title, sizeof title, "%s %s %s", r->recs[i].wl->name,
                         sweep_kind_names[k], sweep_mode_names[m]);
                fprintf(g, "%s$sw%zu_%d_%d with linespoints dt %d title ", sep,
                        i, k, m, k == SWEEP_SPIN ? 1 : 2);
                quoted(g, title);
                sep = ", \\\n  ";
            }
    }
    fprintf(g, "\n");
    return n;
}

int bench_plot(const char *path, const struct bench_results *r)
{
    if (!on_path("gnuplot")) {
        bench_warn("--plot: gnuplot not found; install it with "
                   "'apt-get install gnuplot-nox' (Debian/Ubuntu). "
                   "Skipping the plot.");
        return 0;
    }
    bool lat = false, sweep = false;
    for (size_t i = 0; i < r->nrecs; i++) {
        lat |= r->recs[i].lat != NULL;
        sweep |= r->recs[i].sweep != NULL;
    }
    int panels = lat + sweep;
    if (panels == 0) {
        bench_warn("--plot: nothing to plot (no latency or sweep workload "
                   "ran)");
        return 0;
    }
    FILE *g = popen("gnuplot", "w");
    if (g == NULL)
        return -errno;
    fprintf(g,
            "set terminal pngcairo size 1200,%d noenhanced\n"
            "set output ",
            700 * panels);
    quoted(g, path);
    fprintf(g, "\nset grid\nset multiplot layout %d,1\n", panels);
    unsigned n = latency_panel(g, r);
    fprintf(g, "reset\nset grid\n");
    n += sweep_panel(g, r);
    fprintf(g, "unset multiplot\nset output\n");
    int st = pclose(g);
    if (st != 0 || n == 0) {
        bench_warn("--plot: gnuplot failed (status %d)", st);
        return -EIO;
    }
    fprintf(stderr, "ferry-bench: plot written to %s\n", path);
    return 0;
}
