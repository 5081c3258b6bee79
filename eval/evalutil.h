/* evalutil.h — the building blocks of `make eval` (eval/eval.c) that could
 * be wrong on their own, kept apart so that tests/test_eval.c checks them:
 * a seeded random generator, the corruption attacks, KL divergence, the
 * "tokens until p ≤ threshold" of a detector trace, medians, the exact
 * binomial (Clopper–Pearson) interval, and a hand-written SVG line plot.
 *
 * Uses only the public header <tokmark.h> and tools/cli/scanutil.h. */
#ifndef TOKMARK_EVALUTIL_H
#define TOKMARK_EVALUTIL_H

#include "tokmark.h"

#include <stddef.h>
#include <stdint.h>

/* ---- random numbers: xoshiro256** seeded by splitmix64 (as SPEC §11.3) ---- */
typedef struct eu_rng {
    uint64_t s[4];
} eu_rng;
void eu_rng_seed(eu_rng *r, uint64_t seed);
uint64_t eu_rng_next(eu_rng *r);
double eu_rng_unif(eu_rng *r);              /* [0, 1), 53 bits */
uint64_t eu_rng_below(eu_rng *r, uint64_t n); /* uniform in 0..n-1 (n ≥ 1), unbiased */

/* ---- corruption attacks ---------------------------------------------------
 * Each changes exactly k = round(rate · n) tokens of ids[0..n), chosen
 * uniformly without replacement, writing the result to out and returning its
 * length.  Replacement and inserted tokens are drawn uniformly from
 * pool[0..npool) (e.g. the tokens of human text).
 *   substitute: k positions get a pool token different from the original
 *               (out has n entries);
 *   delete:     k positions are removed (n - k entries);
 *   insert:     k pool tokens are inserted at uniformly chosen gaps (n + k
 *               entries; out must hold them).  The rate is relative to n. */
size_t eu_corrupt_substitute(const int32_t *ids, size_t n, double rate, const int32_t *pool, size_t npool, eu_rng *r,
                             int32_t *out);
size_t eu_corrupt_delete(const int32_t *ids, size_t n, double rate, eu_rng *r, int32_t *out);
size_t eu_corrupt_insert(const int32_t *ids, size_t n, double rate, const int32_t *pool, size_t npool, eu_rng *r,
                         int32_t *out);
/* round(rate · n), the number of tokens an attack changes. */
size_t eu_corrupt_count(size_t n, double rate);

/* ---- divergences ------------------------------------------------------------
 * KL(p ‖ q) = Σ p_i ln(p_i / q_i) in nats for probability vectors (terms with
 * p_i = 0 are 0; p_i > 0 with q_i = 0 gives +INFINITY). */
double eu_kl(const double *p, const double *q, size_t n);
/* Total variation ½ Σ |p_i − q_i|. */
double eu_tv(const double *p, const double *q, size_t n);
/* Pearson's chi-square of observed counts (summing to n) against
 * probabilities q[0..k): cells whose expected count n·q_i is below 5 are
 * pooled into one cell (dropped if its expected count is below 5 too).
 * *df receives the degrees of freedom (cells − 1). */
double eu_chi2(const double *count, const double *q, size_t k, double n, size_t *df);
/* P(X ≥ x) for X ~ chi-square(df), by the Wilson–Hilferty cube-root normal
 * approximation (absolute error below 0.005 for df ≥ 10). */
double eu_chi2_sf(double x, double df);
/* Softmax of n logits into p (−INFINITY gives 0); returns ln Σ exp(logit). */
double eu_softmax(const float *logits, size_t n, double *p);

/* ---- power from a trace -----------------------------------------------------
 * trace[0..n) is a detector trace (SPEC §7.4) of one document whose first
 * `skip` positions are prompt tokens.  For every prefix of the generated
 * part, log10 p of the tuples scored so far (exact, tms_ln_p): curve[j] is
 * log10 p after generated token j (0-based; 0 while nothing is scored), for
 * j < n - skip (curve may be NULL).  Returns the number of generated tokens
 * up to and including the first where log10 p ≤ log10_thr, or 0 when it is
 * never reached. */
size_t eu_tokens_until(const tokmark_trace *trace, size_t n, size_t skip, const tokmark_params *pp,
                       tokmark_score_kind kind, double log10_thr, double *curve);

/* Median of v[0..n) (sorted in place; the mean of the middle two for even n;
 * NAN for n = 0).  +INFINITY entries sort last. */
double eu_median(double *v, size_t n);

/* Exact two-sided (Clopper–Pearson) interval for a binomial proportion: k
 * successes in n trials, confidence 1 − a (e.g. a = 0.05). */
void eu_clopper_pearson(uint64_t k, uint64_t n, double a, double *lo, double *hi);

/* ---- SVG line plots ------------------------------------------------------- */
typedef struct eu_series {
    const char *name;
    const double *x, *y; /* n points; non-finite y values are skipped */
    size_t n;
} eu_series;
/* Write a line plot with axes, ticks, a legend and an optional dashed
 * horizontal reference line at y = yref (NAN: none).  Returns 0, or -1 when
 * the file cannot be written (errno set). */
int eu_svg_plot(const char *path, const char *title, const char *xlabel, const char *ylabel, const eu_series *s,
                size_t ns, double yref, const char *yref_label);
/* The same with a categorical x axis: point x = i is labelled xticks[i]
 * (i < nxticks); xticks NULL: numeric as above. */
int eu_svg_plot_cat(const char *path, const char *title, const char *xlabel, const char *ylabel, const eu_series *s,
                    size_t ns, double yref, const char *yref_label, const char *const *xticks, size_t nxticks);

#endif
