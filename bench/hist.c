/*
 * bench/hist.c: the log-linear histogram of hist.h.
 *
 * Index of a value v:
 *   v < 2^S                      -> v                       (exact)
 *   msb(v) = m >= S              -> 2^S + (m - S) * 2^(S-1)
 *                                   + ((v >> (m - S + 1)) - 2^(S-1))
 * where S = BENCH_HIST_SUB_BITS. v >> (m - S + 1) lies in [2^(S-1), 2^S),
 * so each power of two keeps S-1 significant bits below its leading one:
 * the relative error of a bucket is at most 2^-(S-1). This is
 * HdrHistogram's bucket/sub-bucket scheme (Gil Tene, HdrHistogram, "Sub-
 * bucket"), simplified to one fixed range.
 *
 * Percentiles walk the buckets in order and return the upper edge of the
 * bucket that holds rank ceil(pct/100 * count), never more than the exact
 * maximum: the same "highest equivalent value" HdrHistogram reports.
 *
 * Thread: no internal locking; one owner at a time.
 */
#include "hist.h"

#include <math.h>
#include <string.h>

#define SUB (1u << BENCH_HIST_SUB_BITS)
#define HALF (1u << (BENCH_HIST_SUB_BITS - 1))

static unsigned msb64(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v);
}

static unsigned index_of(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned m = msb64(v);
    if (m >= BENCH_HIST_MAX_BITS)
        return BENCH_HIST_BUCKETS - 1;
    unsigned shift = m - BENCH_HIST_SUB_BITS + 1;
    return SUB + (m - BENCH_HIST_SUB_BITS) * HALF +
           (unsigned)((v >> shift) - HALF);
}

/* The largest value that maps to bucket idx. */
static uint64_t upper_of(unsigned idx)
{
    if (idx < SUB)
        return idx;
    unsigned band = (idx - SUB) / HALF; /* m - S */
    unsigned sub = (idx - SUB) % HALF;  /* position inside the band */
    unsigned shift = band + 1;
    uint64_t lower = (uint64_t)(HALF + sub) << shift;
    return lower + (1ull << shift) - 1;
}

void bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void bench_hist_record(struct bench_hist *h, uint64_t ns)
{
    h->buckets[index_of(ns)]++;
    h->count++;
    h->sum += (double)ns;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t bench_hist_pct(const struct bench_hist *h, double pct)
{
    if (h->count == 0)
        return 0;
    if (pct <= 0)
        return h->min;
    if (pct >= 100)
        return h->max;
    double want = ceil(pct / 100.0 * (double)h->count);
    uint64_t rank = want < 1 ? 1 : (uint64_t)want;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = upper_of(i);
            if (v > h->max)
                v = h->max;
            return v < h->min ? h->min : v;
        }
    }
    return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
