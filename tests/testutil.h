/* testutil.h — helpers shared by the embedder and detector tests (static
 * inline only): a fixed-seed PRNG (splitmix64 seeding xoshiro256**), profile
 * construction from PRNG keys, and the statistics the tests compute on their
 * own (chi-square and Kolmogorov-Smirnov tails, binomial quantiles), written
 * independently of the library's src/stats.c so that they can judge it. */
#ifndef TOKMARK_TESTUTIL_H
#define TOKMARK_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokmark.h"

/* A failing check that prints its own explanation first. */
#define TU_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error(__VA_ARGS__);                                                              \
            print_error("\n");                                                                     \
            fail_msg("check failed: %s", #cond);                                                   \
        }                                                                                          \
    } while (0)

#define TU_OK(expr)                                                                                \
    do {                                                                                           \
        int tu_rc_ = (expr);                                                                       \
        if (tu_rc_ != TOKMARK_OK) fail_msg("%s returned %s", #expr, tokmark_error_name(tu_rc_));   \
    } while (0)

/* ------------------------------------------------------------------------ */
/* PRNG                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct tu_rng {
    uint64_t s[4];
} tu_rng;

static inline uint64_t tu_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void tu_seed(tu_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = tu_splitmix64(&seed);
}

static inline uint64_t tu_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t tu_next(tu_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = tu_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = tu_rotl(s[3], 45);
    return result;
}

/* Uniform in [0,1) with 53 random bits. */
static inline double tu_unif(tu_rng *r) { return (double)(tu_next(r) >> 11) * 0x1p-53; }

/* Uniform integer in 0..n-1 (n ≥ 1), unbiased (Lemire). */
static inline uint32_t tu_below(tu_rng *r, uint32_t n) {
    uint64_t m = (uint64_t)(uint32_t)(tu_next(r) >> 32) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)(uint32_t)(tu_next(r) >> 32) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

static inline int32_t tu_token(tu_rng *r, uint32_t V) { return (int32_t)tu_below(r, V); }

/* Standard normal (Box-Muller). */
static inline double tu_normal(tu_rng *r) {
    double u1 = tu_unif(r), u2 = tu_unif(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586477 * u2);
}

static inline void tu_shuffle_i32(tu_rng *r, int32_t *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = tu_below(r, (uint32_t)i);
        int32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static inline void tu_shuffle_cand(tu_rng *r, tokmark_token_data *a, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = tu_below(r, (uint32_t)i);
        tokmark_token_data t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* n distinct ids from 0..V-1 (n ≤ V), in random order. */
static inline void tu_distinct_ids(tu_rng *r, int32_t *out, size_t n, uint32_t V) {
    for (size_t i = 0; i < n; i++) {
        for (;;) {
            int32_t t = tu_token(r, V);
            size_t j = 0;
            while (j < i && out[j] != t) j++;
            if (j == i) {
                out[i] = t;
                break;
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Profiles                                                                  */
/* ------------------------------------------------------------------------ */

static inline void tu_params(tokmark_params *p, tokmark_scheme scheme, tokmark_seeding seeding, uint32_t h,
                             uint32_t V) {
    tokmark_params_default(p, scheme);
    p->seeding = seeding;
    p->context_width = h;
    p->vocab_size = V;
}

/* A profile whose master key is drawn from the test PRNG. */
static inline tokmark_profile *tu_profile(tu_rng *r, const tokmark_params *par) {
    uint8_t key[TOKMARK_MASTER_KEY_BYTES];
    for (size_t i = 0; i < sizeof key; i += 8) {
        uint64_t x = tu_next(r);
        for (size_t j = 0; j < 8; j++) key[i + j] = (uint8_t)(x >> (8 * j));
    }
    tokmark_profile *p = NULL;
    TU_OK(tokmark_profile_from_key(&p, par, key));
    assert_non_null(p);
    return p;
}

/* c: the number of tokens before the candidate that a context reads. */
static inline uint32_t tu_ctxlen(const tokmark_params *p) {
    return p->seeding == TOKMARK_SEEDING_SELFHASH ? p->context_width - 1 : p->context_width;
}

static inline const char *tu_cfg_name(const tokmark_params *p) {
    static char buf[64];
    snprintf(buf, sizeof buf, "%s/%s/h=%u", tokmark_scheme_name(p->scheme), tokmark_seeding_name(p->seeding),
             (unsigned)p->context_width);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Statistics computed by the tests themselves                               */
/* ------------------------------------------------------------------------ */

/* ln Q(a, x): the regularized upper incomplete gamma function, i.e.
 * ln P(Gamma(a,1) ≥ x).  Series for x < a+1, Lentz continued fraction
 * otherwise (Numerical Recipes §6.2), evaluated in log space. */
static inline double tu_ln_gamma_q(double a, double x) {
    if (x <= 0.0) return 0.0;
    double lpre = -x + a * log(x) - lgamma(a);
    if (x < a + 1.0) {
        double ap = a, sum = 1.0 / a, del = sum;
        for (int i = 0; i < 100000; i++) {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if (fabs(del) < fabs(sum) * 1e-16) break;
        }
        double P = exp(lpre) * sum;
        return log1p(-P);
    }
    const double FPMIN = 1e-300;
    double b = x + 1.0 - a, c = 1.0 / FPMIN, d = 1.0 / b, h = d;
    for (int i = 1; i < 100000; i++) {
        double an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if (fabs(d) < FPMIN) d = FPMIN;
        c = b + an / c;
        if (fabs(c) < FPMIN) c = FPMIN;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-16) break;
    }
    return lpre + log(h);
}

/* ln P(chi2(k) ≥ x) = ln Q(k/2, x/2). */
static inline double tu_ln_chi2_sf(double x, double k) { return tu_ln_gamma_q(k / 2.0, x / 2.0); }

/* Pearson chi-square goodness of fit of counts obs[0..k) (total n) against
 * probabilities p[0..k); returns ln of the p-value, the statistic in *stat. */
static inline double tu_chi2_gof(const uint64_t *obs, const double *p, size_t k, double *stat) {
    uint64_t n = 0;
    for (size_t i = 0; i < k; i++) n += obs[i];
    double x = 0.0;
    for (size_t i = 0; i < k; i++) {
        double e = (double)n * p[i];
        double d = (double)obs[i] - e;
        x += d * d / e;
    }
    if (stat != NULL) *stat = x;
    return tu_ln_chi2_sf(x, (double)(k - 1));
}

static inline int tu_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One-sample Kolmogorov-Smirnov test of x[0..n) against U(0,1); sorts x.
 * Returns the asymptotic p-value (Numerical Recipes' small-n correction),
 * the statistic D in *D. */
static inline double tu_ks_uniform(double *x, size_t n, double *D) {
    qsort(x, n, sizeof *x, tu_cmp_double);
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double lo = x[i] - (double)i / (double)n, hi = (double)(i + 1) / (double)n - x[i];
        if (lo > d) d = lo;
        if (hi > d) d = hi;
    }
    if (D != NULL) *D = d;
    double sn = sqrt((double)n);
    double lam = (sn + 0.12 + 0.11 / sn) * d;
    if (lam < 0.2) return 1.0;
    double sum = 0.0, sign = 1.0;
    for (int j = 1; j <= 200; j++) {
        double term = exp(-2.0 * j * j * lam * lam);
        sum += sign * term;
        sign = -sign;
        if (term < 1e-18) break;
    }
    double q = 2.0 * sum;
    return q < 0.0 ? 0.0 : (q > 1.0 ? 1.0 : q);
}

/* ln of the Binomial(n, p) probability of k. */
static inline double tu_binom_ln_pmf(uint64_t k, uint64_t n, double p) {
    return lgamma((double)n + 1.0) - lgamma((double)k + 1.0) - lgamma((double)(n - k) + 1.0) +
           (double)k * log(p) + (double)(n - k) * log1p(-p);
}

/* The smallest k with P(X ≥ k) ≤ tail for X ~ Binomial(n, p): a count at or
 * above it is rejected at level `tail`. */
static inline uint64_t tu_binom_upper(uint64_t n, double p, double tail) {
    double s = 0.0;
    for (uint64_t k = n + 1; k-- > 0;) {
        double t = s + exp(tu_binom_ln_pmf(k, n, p));
        if (t > tail) return k + 1;
        s = t;
    }
    return 0;
}

/* The largest k with P(X ≤ k) ≤ tail (or -1 when none): a count at or below
 * it is rejected. */
static inline int64_t tu_binom_lower(uint64_t n, double p, double tail) {
    double s = 0.0;
    for (uint64_t k = 0; k <= n; k++) {
        double t = s + exp(tu_binom_ln_pmf(k, n, p));
        if (t > tail) return (int64_t)k - 1;
        s = t;
    }
    return (int64_t)n;
}

static inline double tu_mean(const double *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s / (double)n;
}

static inline double tu_var(const double *x, size_t n) {
    double m = tu_mean(x, n), s = 0.0;
    for (size_t i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return s / (double)(n - 1);
}

static inline double tu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Shannon entropy (nats) of softmax(logits[0..n)). */
static inline double tu_entropy(const float *logits, size_t n) {
    double mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double z = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!(logits[i] > -INFINITY)) continue;
        double v = exp((double)logits[i] - mx);
        z += v;
        s += v * ((double)logits[i] - mx);
    }
    return log(z) - s / z;
}

#endif
