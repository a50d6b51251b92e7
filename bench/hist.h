/*
 * bench/hist.h: a log-linear latency histogram (HdrHistogram's layout).
 *
 * Values are nanoseconds. Values below 2^BENCH_HIST_SUB_BITS are counted
 * exactly; above, each power-of-two range [2^k, 2^(k+1)) is cut into
 * 2^(BENCH_HIST_SUB_BITS-1) equal sub-buckets, so any recorded value is
 * known to within 1/64 (1.6 %) of itself. Memory is fixed (about 18 KiB)
 * whatever the number of samples; values beyond 2^BENCH_HIST_MAX_BITS ns
 * (about 18 minutes) land in the last bucket, and the exact min and max
 * are kept on the side.
 *
 * Thread: a histogram belongs to one thread at a time; merge after join.
 */
#ifndef FERRY_BENCH_HIST_H
#define FERRY_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_MAX_BITS 40
/* 2^7 exact slots, then 64 sub-buckets for each msb in [7, 39]. */
#define BENCH_HIST_BUCKETS                                                     \
    ((1u << BENCH_HIST_SUB_BITS) +                                             \
     (BENCH_HIST_MAX_BITS - BENCH_HIST_SUB_BITS) *                             \
         (1u << (BENCH_HIST_SUB_BITS - 1)))

struct bench_hist {
    uint64_t count;                       /* samples recorded */
    uint64_t min;                         /* exact; UINT64_MAX when empty */
    uint64_t max;                         /* exact; 0 when empty */
    double sum;                           /* for the mean */
    uint64_t buckets[BENCH_HIST_BUCKETS]; /* counts per log-linear bucket */
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t ns);
/* Add every sample of src to dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/*
 * The value at percentile pct (0..100): the highest value equivalent to
 * the bucket holding that rank, clamped to the exact max. 0 when empty.
 */
uint64_t bench_hist_pct(const struct bench_hist *h, double pct);
double bench_hist_mean(const struct bench_hist *h);

#endif /* FERRY_BENCH_HIST_H */
