/*
 * bench/main.c: ferry-bench's command line, the machine header, and the
 * order of things: configure libuv's pool, register, select, run, report.
 *
 *   ferry-bench [--quick] [--reps N] [--threads N] [--json F] [--csv F]
 *               [--plot F.png] [--list] [WORKLOAD...]
 *
 * Exit status: 0 when every workload that ran verified its work, 1 when
 * one failed (the reason is printed on stderr as it happens and again at
 * the end of the tables), 2 for usage errors, a selection that matches
 * nothing built, or a report file that could not be written.
 *
 * Progress goes to stderr (a line per workload), tables to stdout, so
 * `ferry-bench > results.txt` keeps the figures clean.
 *
 * Thread: main. Workloads start and join their own threads.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

struct opts {
    const char *json, *csv, *plot;
    bool list;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ferry-bench [options] [WORKLOAD...]\n"
               "  WORKLOAD        a name (uv.rtt), a group (rtt) or a glob "
               "('uv.*');\n"
               "                  default: every workload that is built\n"
               "  --list          list the workloads (built or not) and exit\n"
               "  --reps N        repetitions of each workload (default 5; 2 "
               "with --quick)\n"
               "  --threads N     pool threads for every implementation "
               "(default: online CPUs)\n"
               "  --json FILE     write every figure as JSON\n"
               "  --csv FILE      write every figure as CSV\n"
               "  --plot FILE.png latency curves and the lag chart (gnuplot)\n"
               "  --quick         tiny sizes: every workload in a few seconds\n"
               "  -h, --help      this text\n");
}

static bool parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

/* Returns the index of the first WORKLOAD argument, or -1 on error. */
static int parse(int argc, char **argv, struct bench_cfg *cfg, struct opts *o)
{
    static const struct option longs[] = {
        {"list", no_argument, NULL, 'l'},
        {"reps", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'},
        {"json", required_argument, NULL, 'j'},
        {"csv", required_argument, NULL, 'c'},
        {"plot", required_argument, NULL, 'p'},
        {"quick", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    unsigned reps = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (ch) {
        case 'l':
            o->list = true;
            break;
        case 'q':
            cfg->quick = true;
            break;
        case 'j':
            o->json = optarg;
            break;
        case 'c':
            o->csv = optarg;
            break;
        case 'p':
            o->plot = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'r':
            if (!parse_uint(optarg, 1, BENCH_MAX_REPS, &reps)) {
                bench_warn("--reps: 1..%d", BENCH_MAX_REPS);
                return -1;
            }
            break;
        case 't':
            if (!parse_uint(optarg, 1, 64, &cfg->threads)) {
                bench_warn("--threads: 1..64");
                return -1;
            }
            break;
        default:
            usage(stderr);
            return -1;
        }
    }
    cfg->reps = reps ? reps : cfg->quick ? 2 : 5;
    return optind;
}

static void read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    snprintf(buf, n, "unknown");
    if (f == NULL)
        return;
    if (fgets(buf, (int)n, f) != NULL)
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

static void cpu_model(char *buf, size_t n)
{
    char line[256];
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(buf, n, "unknown CPU");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL) {
        char *colon = strchr(line, ':');
        if (colon == NULL || (strncmp(line, "model name", 10) != 0 &&
                              strncmp(line, "Model", 5) != 0))
            continue;
        colon += 1 + (colon[1] == ' ');
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(buf, n, "%s", colon);
        break;
    }
    fclose(f);
}

static void machine(struct bench_machine *m, const struct bench_cfg *cfg)
{
    struct utsname u;
    cpu_model(m->cpu, sizeof m->cpu);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    m->cores = cores > 0 ? (unsigned)cores : 1;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release,
                 u.machine);
    read_line("/sys/devices/system/clocksource/clocksource0/"
              "current_clocksource",
              m->clocksource, sizeof m->clocksource);
    read_line("/proc/loadavg", m->loadavg, sizeof m->loadavg);
    char *p = m->loadavg; /* keep the three averages, drop the run queue */
    for (int k = 0; k < 3 && p != NULL; k++)
        p = strchr(p + (k > 0), ' ');
    if (p != NULL)
        *p = '\0';
    time_t now = time(NULL);
    struct tm tm;
    strftime(m->date, sizeof m->date, "%Y-%m-%d %H:%M:%S UTC",
             gmtime_r(&now, &tm));
    m->ferry_version = ferry_version();
#ifdef FERRY_BENCH_HAVE_UV
    m->uv_version = bench_uv_version();
    m->uv_threads = cfg->threads;
#else
    (void)cfg;
#endif
}

static void list(const struct bench_results *r)
{
    printf("%-12s %-6s %-6s %-11s %s\n", "workload", "group", "impl", "peer of",
           "description");
    for (size_t i = 0; i < r->nrecs; i++) {
        const struct bench_wl *w = r->recs[i].wl;
        printf("%-12s %-6s %-6s %-11s %s\n", w->name, w->group, w->impl,
               w->peer_of ? w->peer_of : "-", w->desc);
        if (w->run == NULL)
            printf("%-38s not built: %s\n", "", w->missing);
    }
#ifndef FERRY_BENCH_HAVE_UV
    printf("libuv peers: not built (libuv was not found; apt-get install "
           "libuv1-dev and reconfigure)\n");
#endif
}

static int write_files(const struct opts *o, const struct bench_results *r)
{
    int rc = 0, e;
    if (o->json && (e = bench_report_json(o->json, r)) < 0) {
        bench_warn("--json %s: %s", o->json, strerror(-e));
        rc = e;
    }
    if (o->csv && (e = bench_report_csv(o->csv, r)) < 0) {
        bench_warn("--csv %s: %s", o->csv, strerror(-e));
        rc = e;
    }
    if (o->plot && (e = bench_plot(o->plot, r)) < 0)
        bench_warn("--plot %s: %s (the figures above stand)", o->plot,
                   strerror(-e)); /* a failed plot is not a failed run */
    return rc;
}

int main(int argc, char **argv)
{
    struct bench_results r = {0};
    struct opts o = {0};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    r.cfg.threads = cores > 0 ? (unsigned)(cores > 64 ? 64 : cores) : 1;
    int first = parse(argc, argv, &r.cfg, &o);
    if (first < 0)
        return 2;
#ifdef FERRY_BENCH_HAVE_UV
    /* Before anything could start libuv's pool. */
    bench_uv_setup(r.cfg.threads);
#endif
    if (bench_registry(&r) < 0)
        return 2;
    if (o.list) {
        list(&r);
        bench_results_free(&r);
        return 0;
    }
    int status = 2;
    if (bench_select(&r, argv + first, argc - first) == 0) {
        machine(&r.mach, &r.cfg);
        bench_report_machine(stdout, &r);
        fflush(stdout);
        bench_run_all(&r);
        bench_compute_ratios(&r);
        bench_report_tables(stdout, &r);
        fflush(stdout);
        status = write_files(&o, &r) < 0 ? 2 : r.failures ? 1 : 0;
        if (r.failures)
            bench_warn("%u workload(s) FAILED verification (see above)",
                       r.failures);
    }
    bench_results_free(&r);
    return status;
}
