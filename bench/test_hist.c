/*
 * bench/test_hist.c: the log-linear histogram keeps its promises: exact
 * below 128 ns, within 1/64 above, percentiles by rank, merge equal to
 * recording everything in one, bounded memory for any value.
 *
 * A plain program (no cmocka, so it builds wherever ferry-bench does):
 * prints each failed check and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "hist.h"

static int failures;

static void check(int ok, const char *what, unsigned long long a,
                  unsigned long long b)
{
    if (!ok) {
        fprintf(stderr, "FAIL: %s (%llu vs %llu)\n", what, a, b);
        failures++;
    }
}

/* The bucket holding v reports a value in [v, v + v/64]. */
static void check_precision(void)
{
    static struct bench_hist h;
    for (uint64_t v = 1; v < (1ull << 39); v = v * 3 / 2 + 1) {
        bench_hist_init(&h);
        bench_hist_record(&h, v);
        bench_hist_record(&h, 1ull << 39); /* so p50 is not clamped to max */
        uint64_t got = bench_hist_pct(&h, 50);
        check(got >= v && got <= v + v / 64, "precision", got, v);
        if (v < 128)
            check(got == v, "exact below 128", got, v);
    }
}

static void check_uniform(void)
{
    static struct bench_hist h;
    bench_hist_init(&h);
    for (uint64_t v = 1; v <= 1000000; v++)
        bench_hist_record(&h, v);
    check(h.count == 1000000, "count", h.count, 1000000);
    check(bench_hist_pct(&h, 0) == 1, "p0 is min", bench_hist_pct(&h, 0), 1);
    check(bench_hist_pct(&h, 100) == 1000000, "p100 is max",
          bench_hist_pct(&h, 100), 1000000);
    uint64_t p50 = bench_hist_pct(&h, 50), p99 = bench_hist_pct(&h, 99);
    check(p50 >= 500000 && p50 <= 500000 + 500000 / 64, "p50", p50, 500000);
    check(p99 >= 990000 && p99 <= 990000 + 990000 / 64, "p99", p99, 990000);
}

static void check_merge_and_range(void)
{
    static struct bench_hist a, b, all;
    bench_hist_init(&a);
    bench_hist_init(&b);
    bench_hist_init(&all);
    for (uint64_t v = 0; v < 100000; v += 7) {
        bench_hist_record(v % 2 ? &a : &b, v * 1000);
        bench_hist_record(&all, v * 1000);
    }
    bench_hist_merge(&a, &b);
    for (double p = 0; p <= 100; p += 0.5)
        check(bench_hist_pct(&a, p) == bench_hist_pct(&all, p), "merge",
              bench_hist_pct(&a, p), bench_hist_pct(&all, p));
    bench_hist_init(&a);
    bench_hist_record(&a, UINT64_MAX / 2);
    check(a.max == UINT64_MAX / 2, "huge value keeps exact max", a.max, 0);
    check(bench_hist_pct(&a, 50) == UINT64_MAX / 2, "huge value percentile",
          bench_hist_pct(&a, 50), 0);
    bench_hist_init(&a);
    check(bench_hist_pct(&a, 99) == 0, "empty", bench_hist_pct(&a, 99), 0);
}

int main(void)
{
    check_precision();
    check_uniform();
    check_merge_and_range();
    if (failures == 0)
        printf("bench_hist: ok\n");
    return failures ? 1 : 0;
}
