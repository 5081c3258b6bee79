/* scanutil.h — the algorithms of `tokmark scan` that live outside the
 * library (SPEC.md §12): windowed detection over a detector trace, context
 * fingerprints, the context sets of the suspect-model tests (prompt
 * exclusion, provider filter files). */
#ifndef TOKMARK_CLI_SCANUTIL_H
#define TOKMARK_CLI_SCANUTIL_H

#include "tokmark.h"

#include <stddef.h>
#include <stdint.h>

/* ---- windows (SPEC §12.3) ---------------------------------------------- */

#define TMS_WINDOW_MIN 32u /* smallest window, in scored tuples */

typedef struct tms_window {
    int found;          /* 1 when at least one window was tried */
    uint64_t tried;     /* windows tried */
    uint64_t first, last; /* token positions (in the document) of the first and last scored
                             tuple of the best window; the span is [first - c, last] */
    uint64_t scored;    /* tuples in the best window (its size) */
    double statistic;   /* its statistic (as in tokmark_result) */
    double log10_p;     /* its exact log10 p */
} tms_window;

/* The best window of a document trace (n positions) for a key with
 * parameters pp and score kind `kind`: windows of W = 32, 64, 128, ... scored
 * tuples (W at most the number scored), starting every W/2 scored tuples.
 * The smallest p wins (ties: the earlier, then the smaller window). */
void tms_best_window(const tokmark_trace *tr, size_t n, const tokmark_params *pp, tokmark_score_kind kind,
                     uint32_t wmin, tms_window *out);

/* log10 of the Bonferroni-corrected p for `tests` tests: min(0, log10 p + log10 tests). */
double tms_bonferroni(double log10_p, double tests);

/* The statistic in tokmark_result units and exact ln p of n scored tuples
 * whose trace values sum to `sum` (SPEC §7.4). */
double tms_ln_p(const tokmark_params *pp, tokmark_score_kind kind, uint64_t n, double sum, double *statistic);

/* ---- contexts (SPEC §12.4) --------------------------------------------- */

/* The fingerprint of a context of c tokens (oldest first); never 0. */
uint64_t tms_context_fp(const int32_t *ctx, uint32_t c);

/* A growing set of 64-bit fingerprints (0 is not a member). */
typedef struct tms_set {
    uint64_t *slot;
    size_t mask, count;
} tms_set;
int  tms_set_init(tms_set *s, size_t expect);  /* 0 or -1 (no memory) */
int  tms_set_add(tms_set *s, uint64_t f);      /* 1 new, 0 present, -1 no memory */
int  tms_set_has(const tms_set *s, uint64_t f);
void tms_set_clear(tms_set *s);
void tms_set_free(tms_set *s);

/* A provider filter (SPEC §12.4): for each context width, the set of
 * contexts that occur in the provider's own watermarked output. */
#define TMS_FILTER_MAX_WIDTHS 16
typedef struct tms_filter {
    uint32_t nwidths;
    uint32_t width[TMS_FILTER_MAX_WIDTHS];
    tms_set set[TMS_FILTER_MAX_WIDTHS];
    char tokenizer[TOKMARK_TOKENIZER_MAX];
} tms_filter;
void tms_filter_init(tms_filter *f);
int  tms_filter_add_width(tms_filter *f, uint32_t c); /* index, or -1 */
/* Add every context of every width of ids[0..n). */
int  tms_filter_add_tokens(tms_filter *f, const int32_t *ids, size_t n);
int  tms_filter_has(const tms_filter *f, uint32_t c, const int32_t *ctx); /* -1: width not in filter */
/* Save (0600 not needed: not secret) / load; TOKMARK_OK or a TOKMARK_ERR_*. */
int  tms_filter_save(const tms_filter *f, const char *path);
int  tms_filter_load(tms_filter *f, const char *path);
void tms_filter_free(tms_filter *f);

#endif
