/* stats.h — private interface of stats.c (SPEC.md §8); not installed.
 *
 * The public survival functions are declared in tokmark.h.  This header only
 * exposes the weighted-score engine with its method forced, so that the tests
 * can measure the saddlepoint approximation against the exact computation and
 * know which regime a given call used. */
#ifndef TOKMARK_STATS_H
#define TOKMARK_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Which computation answered a weighted call (SPEC.md §8.4). */
typedef enum tm_weighted_regime {
    TM_WEIGHTED_TRIVIAL  = 0, /* closed form: s = 0, s ≥ max, n = 0, no weights, P = 1/2 */
    TM_WEIGHTED_BINOMIAL = 1, /* all weights equal: Binomial(n·m, 1/2) (§8.2) */
    TM_WEIGHTED_EXACT    = 2, /* exact: lattice Fourier inversion or direct convolution */
    TM_WEIGHTED_SADDLE   = 3  /* lattice Lugannani–Rice saddlepoint approximation */
} tm_weighted_regime;

/* What tm_ln_sf_weighted_ex may use. */
typedef enum tm_weighted_mode {
    TM_MODE_AUTO   = 0, /* the regime rule of SPEC.md §8.4 (what the public function does) */
    TM_MODE_EXACT  = 1, /* the exact method wherever it converges (saddlepoint if not) */
    TM_MODE_SADDLE = 2, /* the saddlepoint approximation wherever it applies */
    TM_MODE_FOURIER = 3 /* like TM_MODE_EXACT, never by direct convolution */
} tm_weighted_mode;

/* ln P(X ≥ s) as tokmark_ln_sf_weighted, with the method chosen by `mode`;
 * *regime (if not NULL) receives the computation that gave the answer.
 * Closed forms and the equal-weights binomial apply in every mode. */
double tm_ln_sf_weighted_ex(uint64_t s, uint64_t n, const uint16_t *w, size_t m,
                            tm_weighted_mode mode, tm_weighted_regime *regime);

#endif /* TOKMARK_STATS_H */
