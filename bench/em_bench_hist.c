/*
 * em_bench_hist.c - log-linear latency histogram.
 */
#include <math.h>
#include <string.h>

#include "em_bench_hist.h"

#define SUB       EM_BENCH_HIST_SUB_BITS
#define LINEAR    (1u << SUB)              /* values with a bucket each */
#define HALF      (1u << (SUB - 1))        /* buckets per power of two */
#define MAX_VALUE ((UINT64_C(1) << (EM_BENCH_HIST_MAX_EXP + 1)) - 1)

void
em_bench_hist_init(em_bench_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned
em_bench_hist_index(uint64_t us)
{
    unsigned e;

    if (us < LINEAR) {
        return (unsigned) us;
    }
    if (us > MAX_VALUE) {
        us = MAX_VALUE;
    }
    e = 63u - (unsigned) __builtin_clzll(us);          /* SUB <= e <= MAX_EXP */
    /* The top SUB bits of the value: in [HALF, LINEAR). */
    return LINEAR + (e - SUB) * HALF
           + (unsigned) ((us >> (e - SUB + 1)) - HALF);
}

uint64_t
em_bench_hist_bucket_low(unsigned idx)
{
    unsigned e, sub;

    if (idx < LINEAR) {
        return idx;
    }
    e = (idx - LINEAR) / HALF + SUB;
    sub = (idx - LINEAR) % HALF + HALF;
    return (uint64_t) sub << (e - SUB + 1);
}

uint64_t
em_bench_hist_bucket_high(unsigned idx)
{
    unsigned e;

    if (idx < LINEAR) {
        return idx;
    }
    e = (idx - LINEAR) / HALF + SUB;
    return em_bench_hist_bucket_low(idx) + ((uint64_t) 1 << (e - SUB + 1)) - 1;
}

void
em_bench_hist_record(em_bench_hist_t *h, uint64_t us)
{
    if (us > MAX_VALUE) {
        us = MAX_VALUE;
    }
    h->buckets[em_bench_hist_index(us)]++;
    h->count++;
    h->sum += us;
    if (us < h->min) {
        h->min = us;
    }
    if (us > h->max) {
        h->max = us;
    }
}

void
em_bench_hist_merge(em_bench_hist_t *dst, const em_bench_hist_t *src)
{
    unsigned i;

    if (src->count == 0) {
        return;
    }
    for (i = 0; i < EM_BENCH_HIST_BUCKETS; i++) {
        dst->buckets[i] += src->buckets[i];
    }
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

uint64_t
em_bench_hist_quantile(const em_bench_hist_t *h, double q)
{
    uint64_t rank, seen = 0, v;
    unsigned i;

    if (h->count == 0) {
        return 0;
    }
    if (q >= 1.0) {
        return h->max;
    }
    if (q <= 0.0) {
        return h->min;
    }
    rank = (uint64_t) ceil(q * (double) h->count);
    if (rank == 0) {
        rank = 1;
    }
    for (i = 0; i < EM_BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            v = em_bench_hist_bucket_high(i);
            if (v > h->max) {
                v = h->max;
            }
            if (v < h->min) {
                v = h->min;
            }
            return v;
        }
    }
    return h->max;
}

double
em_bench_hist_mean(const em_bench_hist_t *h)
{
    return h->count ? (double) h->sum / (double) h->count : 0.0;
}

double
em_bench_hist_stdev(const em_bench_hist_t *h)
{
    double   mean = em_bench_hist_mean(h), acc = 0.0;
    unsigned i;

    if (h->count < 2) {
        return 0.0;
    }
    for (i = 0; i < EM_BENCH_HIST_BUCKETS; i++) {
        if (h->buckets[i] != 0) {
            double mid = ((double) em_bench_hist_bucket_low(i)
                          + (double) em_bench_hist_bucket_high(i)) / 2.0;
            double d = mid - mean;

            acc += d * d * (double) h->buckets[i];
        }
    }
    return sqrt(acc / (double) h->count);
}
