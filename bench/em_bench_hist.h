/*
 * em_bench_hist.h - latency histogram of emitd-bench (pure, mergeable).
 *
 * HdrHistogram-style log-linear buckets over microseconds: values below
 * 2^EM_BENCH_HIST_SUB_BITS have a bucket each; above that every power of two
 * is cut into 2^(EM_BENCH_HIST_SUB_BITS - 1) equal buckets, so a recorded
 * value is known to within 1/128 (0.8 %) of itself, which is plenty for a
 * p99.9. The struct is a fixed-size array of counters with no pointers, so a
 * worker process sends it whole over a pipe and the parent adds it up.
 */
#ifndef EM_BENCH_HIST_H
#define EM_BENCH_HIST_H

#include <stdint.h>

#define EM_BENCH_HIST_SUB_BITS  8
#define EM_BENCH_HIST_MAX_EXP   40    /* 2^40 us, about 12 days */
#define EM_BENCH_HIST_BUCKETS   \
    ((1u << EM_BENCH_HIST_SUB_BITS) \
     + (EM_BENCH_HIST_MAX_EXP - EM_BENCH_HIST_SUB_BITS + 1) \
       * (1u << (EM_BENCH_HIST_SUB_BITS - 1)))

typedef struct {
    uint64_t count;
    uint64_t min;            /* exact, UINT64_MAX when empty */
    uint64_t max;            /* exact */
    uint64_t sum;            /* exact, for the mean */
    uint64_t buckets[EM_BENCH_HIST_BUCKETS];
} em_bench_hist_t;

/* Empty the histogram. */
void em_bench_hist_init(em_bench_hist_t *h);

/* Record one value in microseconds; values past 2^40 are clamped. */
void em_bench_hist_record(em_bench_hist_t *h, uint64_t us);

/* Add every count of src to dst (the merge of two processes' figures). */
void em_bench_hist_merge(em_bench_hist_t *dst, const em_bench_hist_t *src);

/*
 * The value at quantile q (0 < q <= 1): the highest value equivalent to the
 * bucket that holds the ceil(q * count)-th smallest value, never above the
 * exact maximum. 0 when the histogram is empty. q = 1 gives the exact max.
 */
uint64_t em_bench_hist_quantile(const em_bench_hist_t *h, double q);

/* Mean and standard deviation (the latter from bucket midpoints). */
double em_bench_hist_mean(const em_bench_hist_t *h);
double em_bench_hist_stdev(const em_bench_hist_t *h);

/* Bucket index of a value, and the lowest and highest value of a bucket
 * (exposed for the unit tests). */
unsigned em_bench_hist_index(uint64_t us);
uint64_t em_bench_hist_bucket_low(unsigned idx);
uint64_t em_bench_hist_bucket_high(unsigned idx);

#endif
