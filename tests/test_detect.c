/* test_detect.c — the streaming detector (SPEC.md §7, §8): calibrated
 * p-values on real unwatermarked text (and why deduplication is needed),
 * power on watermarked text, streaming and order invariance, what is scored,
 * deduplication, bounded memory, key rings and AES backends.
 *
 * Expected values are computed here: tuples are listed and deduplicated by
 * the test itself (LeftHash: per tuple; SelfHash: per PRF input (N, t), as
 * SPEC §7.2 requires), and their PRF bits come from the inspection API
 * (tokmark_is_green, tokmark_value_u32, tokmark_gvalues, tokmark_nonce,
 * tokmark_value_block).  The calibration tests use real text
 * (/usr/share/common-licenses/GPL-3 as bytes, V = 256) and thousands of keys. */
#include "testutil.h"

#include <limits.h>
#include <pthread.h>

__extension__ typedef unsigned __int128 tu_u128;

#define LN10 2.30258509299404568402

static const tokmark_scheme SCHEMES[3] = {TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL, TOKMARK_SCHEME_SYNTHID};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static tokmark_detector *mk_det(const tokmark_keyring *ring, uint64_t dedup_memory, uint32_t doc_tuples) {
    tokmark_detector_config cfg = {dedup_memory, doc_tuples, 0};
    tokmark_detector *d = NULL;
    TU_OK(tokmark_detector_create(&d, ring, &cfg));
    assert_non_null(d);
    return d;
}

static tokmark_keyring *ring_new(void) {
    tokmark_keyring *r = NULL;
    TU_OK(tokmark_keyring_new(&r));
    return r;
}

/* Add a new random-key profile; returns the ring's copy. */
static const tokmark_profile *ring_add(tokmark_keyring *ring, tu_rng *r, const tokmark_params *par) {
    TU_OK(tokmark_keyring_add(ring, tu_profile(r, par)));
    return tokmark_keyring_get(ring, tokmark_keyring_size(ring) - 1);
}

static int same_result(const tokmark_result *a, const tokmark_result *b) {
    return a->tokens == b->tokens && a->scored == b->scored && a->duplicates == b->duplicates &&
           a->dropped == b->dropped && a->statistic == b->statistic && a->z == b->z && a->log10_p == b->log10_p &&
           a->log10_p_corrected == b->log10_p_corrected && a->key_index == b->key_index &&
           strcmp(a->key_id, b->key_id) == 0;
}

static void print_result(const char *what, const tokmark_result *r) {
    print_error("%s: tokens %llu scored %llu dups %llu dropped %llu stat %.17g z %.6g log10p %.10g corr %.10g key %zu\n",
                what, (unsigned long long)r->tokens, (unsigned long long)r->scored,
                (unsigned long long)r->duplicates, (unsigned long long)r->dropped, r->statistic, r->z, r->log10_p,
                r->log10_p_corrected, r->key_index);
}

#define CHECK_SAME(a, b, ...)                                                                      \
    do {                                                                                           \
        if (!same_result((a), (b))) {                                                              \
            print_result("first ", (a));                                                           \
            print_result("second", (b));                                                           \
            TU_CHECK(0, __VA_ARGS__);                                                              \
        }                                                                                          \
    } while (0)

/* The GPL-3 text as byte tokens (V = 256), split into documents at blank lines. */
typedef struct corpus {
    int32_t *ids;
    size_t n;
    size_t *start; /* document d is ids[start[d] .. start[d+1]) */
    size_t ndocs;
} corpus;

static void read_gpl(corpus *c) {
    const char *path = "/usr/share/common-licenses/GPL-3";
    FILE *f = fopen(path, "rb");
    TU_CHECK(f != NULL, "cannot open %s (package base-files): the null test needs real text", path);
    unsigned char *buf = malloc(1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    TU_CHECK(n > 30000, "%s is only %zu bytes", path, n);
    c->ids = malloc(n * sizeof *c->ids);
    c->start = malloc((n + 2) * sizeof *c->start);
    assert_true(c->ids && c->start);
    c->n = n;
    c->ndocs = 0;
    c->start[c->ndocs++] = 0;
    for (size_t i = 0; i < n; i++) {
        c->ids[i] = buf[i];
        if (i >= 1 && buf[i] == '\n' && buf[i - 1] == '\n' && i + 1 < n) c->start[c->ndocs++] = i + 1;
    }
    c->start[c->ndocs] = n;
    free(buf);
}

static void corpus_free(corpus *c) {
    free(c->ids);
    free(c->start);
}

static void feed_corpus(tokmark_detector *d, const corpus *c) {
    for (size_t k = 0; k < c->ndocs; k++) {
        tokmark_detector_begin(d);
        tokmark_detector_feed(d, c->ids + c->start[k], c->start[k + 1] - c->start[k]);
    }
}

/* ---- a reference detector: tuples listed, deduplicated and scored here ---- */

typedef struct tuple {
    int32_t t[TOKMARK_MAX_CONTEXT + 1];
} tuple;

typedef struct tset {
    tuple *v;
    size_t n, cap;
    uint32_t len; /* c + 1 */
} tset;

static int tuple_cmp_len;
static int tuple_cmp(const void *a, const void *b) {
    return memcmp(((const tuple *)a)->t, ((const tuple *)b)->t, (size_t)tuple_cmp_len * sizeof(int32_t));
}

static void tset_add(tset *s, const int32_t *t) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        assert_non_null(s->v);
    }
    memset(&s->v[s->n], 0, sizeof s->v[0]);
    memcpy(s->v[s->n].t, t, s->len * sizeof(int32_t));
    s->n++;
}

/* Sort and drop repeats; returns the number of tuples before. */
static size_t tset_unique(tset *s) {
    size_t before = s->n;
    if (s->n == 0) return 0;
    tuple_cmp_len = (int)s->len;
    qsort(s->v, s->n, sizeof *s->v, tuple_cmp);
    size_t m = 1;
    for (size_t i = 1; i < s->n; i++)
        if (memcmp(s->v[i].t, s->v[m - 1].t, s->len * sizeof(int32_t)) != 0) s->v[m++] = s->v[i];
    s->n = m;
    return before;
}

/* Tuples of one document (prompt q tokens then n scored tokens) for context length c. */
static void doc_tuples(tset *s, const int32_t *prompt, size_t q, const int32_t *ids, size_t n, uint32_t c) {
    int32_t *all = malloc((q + n + 1) * sizeof *all);
    assert_non_null(all);
    if (q) memcpy(all, prompt, q * sizeof *all);
    memcpy(all + q, ids, n * sizeof *all);
    for (size_t i = q; i < q + n; i++)
        if (i >= c) tset_add(s, all + i - c);
    free(all);
}

typedef struct refscore {
    uint64_t scored, count, wsum;
    tu_u128 fixed;
    uint64_t dups; /* the `duplicates` the detector must report */
} refscore;

static void tset_copy(tset *dst, const tset *src) {
    dst->len = src->len;
    dst->n = dst->cap = src->n;
    dst->v = malloc((src->n ? src->n : 1) * sizeof *dst->v);
    assert_non_null(dst->v);
    if (src->n) memcpy(dst->v, src->v, src->n * sizeof *dst->v);
}

/* The value block B(N, j) of SPEC §3 through the inspection API. */
static void ref_block(const tokmark_profile *p, uint64_t N, uint64_t j, uint8_t out[16]) {
    tokmark_value_block(p, N, j, out);
}

/* The reference detector (SPEC §7): `all` lists every tuple of the text in
 * order, repeats kept.  Each distinct PRF input is scored once (§7.2):
 *   LeftHash: the unit is the tuple; keys of one width share the tuple set,
 *             so `duplicates` counts repeated tuples whether or not they lie
 *             in this key's vocabulary;
 *   SelfHash: the unit is (N, t), N = tokmark_nonce(prev, t); tuples with a
 *             token outside the key's vocabulary give no tuple at all.
 * Bits come from tokmark_is_green / tokmark_value_u32 / tokmark_gvalues
 * (LeftHash, per tuple) or from tokmark_value_block(N, ·) (SelfHash). */
static refscore ref_eval(const tokmark_profile *p, const tset *all) {
    const tokmark_params *par = tokmark_profile_params(p);
    uint32_t c = all->len - 1;
    refscore r = {0, 0, 0, 0, 0};
    uint8_t g[TOKMARK_MAX_LAYERS];
    if (par->seeding == TOKMARK_SEEDING_LEFTHASH) {
        tset w;
        tset_copy(&w, all);
        size_t T = tset_unique(&w);
        r.dups = T - w.n;
        for (size_t i = 0; i < w.n; i++) {
            const int32_t *t = w.v[i].t;
            int ok = 1;
            for (uint32_t j = 0; j <= c; j++) ok &= t[j] >= 0 && (uint32_t)t[j] < par->vocab_size;
            if (!ok) continue;
            r.scored++;
            switch (par->scheme) {
            case TOKMARK_SCHEME_KGW: r.count += (uint64_t)tokmark_is_green(p, t, t[c]); break;
            case TOKMARK_SCHEME_GUMBEL:
                r.fixed += (tu_u128)(uint64_t)floor(tokmark_gumbel_term(tokmark_value_u32(p, t, t[c])) * 0x1p32);
                break;
            case TOKMARK_SCHEME_SYNTHID:
                tokmark_gvalues(p, t, t[c], g);
                for (uint32_t l = 0; l < par->layers; l++) {
                    r.count += g[l];
                    r.wsum += (uint64_t)g[l] * par->weights[l];
                }
                break;
            }
        }
        free(w.v);
        return r;
    }
    tset units = {NULL, 0, 0, 3};
    for (size_t i = 0; i < all->n; i++) {
        const int32_t *t = all->v[i].t;
        int ok = 1;
        for (uint32_t j = 0; j <= c; j++) ok &= t[j] >= 0 && (uint32_t)t[j] < par->vocab_size;
        if (!ok) continue;
        uint64_t N = tokmark_nonce(p, t, t[c]);
        int32_t u[3] = {(int32_t)(uint32_t)N, (int32_t)(uint32_t)(N >> 32), t[c]};
        tset_add(&units, u);
    }
    size_t T = tset_unique(&units);
    r.dups = T - units.n;
    for (size_t i = 0; i < units.n; i++) {
        const int32_t *u = units.v[i].t;
        uint64_t N = (uint64_t)(uint32_t)u[0] | (uint64_t)(uint32_t)u[1] << 32;
        uint32_t t = (uint32_t)u[2];
        uint8_t b[16];
        r.scored++;
        switch (par->scheme) {
        case TOKMARK_SCHEME_KGW:
        case TOKMARK_SCHEME_GUMBEL: {
            ref_block(p, N, t >> 2, b);
            uint32_t v = (uint32_t)b[4 * (t & 3)] | (uint32_t)b[4 * (t & 3) + 1] << 8 |
                         (uint32_t)b[4 * (t & 3) + 2] << 16 | (uint32_t)b[4 * (t & 3) + 3] << 24;
            if (par->scheme == TOKMARK_SCHEME_KGW) r.count += v < par->gamma_threshold;
            else r.fixed += (tu_u128)(uint64_t)floor(tokmark_gumbel_term(v) * 0x1p32);
            break;
        }
        case TOKMARK_SCHEME_SYNTHID:
            ref_block(p, N, t, b);
            for (uint32_t l = 0; l < par->layers; l++) {
                uint32_t bit = (b[l >> 3] >> (l & 7)) & 1u;
                r.count += bit;
                r.wsum += (uint64_t)bit * par->weights[l];
            }
            break;
        }
    }
    free(units.v);
    return r;
}

/* Check a detector result against the reference score (statistic exactly,
 * p-value through the public tail functions). */
static void check_against_ref(const tokmark_profile *p, const tokmark_result *res, const refscore *ref,
                              tokmark_score_kind kind, const char *what) {
    const tokmark_params *par = tokmark_profile_params(p);
    TU_CHECK(res->scored == ref->scored, "%s %s: scored %llu, reference %llu", what, tu_cfg_name(par),
             (unsigned long long)res->scored, (unsigned long long)ref->scored);
    if (ref->scored == 0) {
        TU_CHECK(res->log10_p == 0.0, "%s: nothing scored but log10 p = %g", what, res->log10_p);
        return;
    }
    double n = (double)ref->scored, stat = 0.0, lnp = 0.0;
    switch (par->scheme) {
    case TOKMARK_SCHEME_KGW:
        stat = (double)ref->count;
        lnp = tokmark_ln_sf_binomial(ref->count, ref->scored, tokmark_params_gamma(par));
        break;
    case TOKMARK_SCHEME_GUMBEL:
        stat = (double)ref->fixed * 0x1p-32; /* exact: the sum is below 2^53 here */
        TU_CHECK(ref->fixed < ((tu_u128)1 << 53), "reference sum too large for an exact comparison");
        lnp = tokmark_ln_sf_gamma(stat, ref->scored);
        break;
    case TOKMARK_SCHEME_SYNTHID: {
        double W = 0.0;
        for (uint32_t l = 0; l < par->layers; l++) W += par->weights[l];
        if (kind == TOKMARK_SCORE_WEIGHTED) {
            stat = (double)ref->wsum / (n * W);
            lnp = tokmark_ln_sf_weighted(ref->wsum, ref->scored, par->weights, par->layers);
        } else {
            stat = (double)ref->count / (n * par->layers);
            lnp = tokmark_ln_sf_binomial(ref->count, ref->scored * par->layers, 0.5);
        }
        break;
    }
    }
    TU_CHECK(fabs(res->statistic - stat) <= 1e-12 * fabs(stat), "%s %s: statistic %.17g, reference %.17g", what,
             tu_cfg_name(par), res->statistic, stat);
    TU_CHECK(fabs(res->log10_p - lnp / LN10) <= 1e-9 * fmax(1.0, fabs(lnp / LN10)),
             "%s %s: log10 p %.15g, from the tail function %.15g", what, tu_cfg_name(par), res->log10_p, lnp / LN10);
}

/* A random document with repeats: with probability prep, copy a run of the
 * earlier text (so tuples recur), else a fresh random token. */
static void random_doc(tu_rng *r, int32_t *out, size_t n, uint32_t V, double prep) {
    size_t i = 0;
    while (i < n) {
        if (i > 20 && tu_unif(r) < prep) {
            size_t len = 3 + tu_below(r, 12), from = tu_below(r, (uint32_t)(i - 15));
            for (size_t j = 0; j < len && i < n; j++) out[i++] = out[from + j];
        } else {
            out[i++] = tu_token(r, V);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* 1. Null: real unwatermarked text                                          */
/* ------------------------------------------------------------------------ */

typedef struct nullcfg {
    tokmark_scheme scheme;
    tokmark_seeding seeding;
    uint32_t h;
    size_t nkeys;
    tokmark_score_kind score;
    const char *name;
} nullcfg;

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static uint64_t distinct_byte_tuples(const corpus *cp, uint32_t c);

/* Distinct SelfHash PRF inputs (N, t) of the byte corpus for key p (SPEC §7.2). */
static uint64_t distinct_self_units(const tokmark_profile *p, const corpus *cp) {
    uint32_t c = tu_ctxlen(tokmark_profile_params(p));
    uint64_t *f = malloc(cp->n * sizeof *f), n = 0;
    assert_non_null(f);
    for (size_t d = 0; d < cp->ndocs; d++)
        for (size_t i = cp->start[d] + c; i < cp->start[d + 1]; i++) {
            uint64_t N = tokmark_nonce(p, cp->ids + i - c, cp->ids[i]);
            f[n++] = N * 0x100000001B3ull ^ (uint64_t)cp->ids[i] * 0x9E3779B97F4A7C15ull;
        }
    qsort(f, n, sizeof *f, cmp_u64);
    uint64_t u = 0;
    for (uint64_t i = 0; i < n; i++) u += i == 0 || f[i] != f[i - 1];
    free(f);
    return u;
}

/* p-values (randomized for the discrete statistics) and z of every key's
 * corpus result.  Also checks the raw p-value against the tail function,
 * that nothing was dropped, and key 0's scored count against the number of
 * distinct PRF inputs counted here (*scored_out, *expect_out; 0 = not known). */
static void null_pvalues(tu_rng *r, const corpus *cp, const nullcfg *nc, uint64_t dedup_memory, double *prand,
                         double *praw, double *z, uint64_t *scored_out, uint64_t *expect_out) {
    tokmark_params par;
    tu_params(&par, nc->scheme, nc->seeding, nc->h, 256);
    tokmark_keyring *ring = ring_new();
    for (size_t k = 0; k < nc->nkeys; k++) ring_add(ring, r, &par);
    tokmark_detector *d = mk_det(ring, dedup_memory, 0);
    tokmark_detector_set_score(d, nc->score);
    feed_corpus(d, cp);
    uint32_t c = tu_ctxlen(&par);
    *expect_out = 0;
    if (dedup_memory > 0) {
        if (nc->seeding == TOKMARK_SEEDING_SELFHASH) *expect_out = distinct_self_units(tokmark_keyring_get(ring, 0), cp);
        else if (c <= 2) *expect_out = distinct_byte_tuples(cp, c);
    }
    double W = 0.0;
    for (uint32_t l = 0; l < par.layers; l++) W += par.weights[l];
    for (size_t k = 0; k < nc->nkeys; k++) {
        tokmark_result res;
        tokmark_detector_corpus(d, k, &res);
        if (k == 0) *scored_out = res.scored;
        if (nc->seeding == TOKMARK_SEEDING_LEFTHASH) /* SelfHash keys each dedup their own (N, t) */
            TU_CHECK(res.scored == *scored_out, "LeftHash keys of one width scored different tuple counts");
        TU_CHECK(res.dropped == 0, "%s: key %zu dropped %llu tuples: the test would lose its power", nc->name, k,
                 (unsigned long long)res.dropped);
        double lp_ge = res.log10_p * LN10, lp_gt = 0.0, n = (double)res.scored;
        switch (nc->scheme) {
        case TOKMARK_SCHEME_KGW: {
            uint64_t x = (uint64_t)res.statistic;
            double g = tokmark_params_gamma(&par);
            double chk = tokmark_ln_sf_binomial(x, res.scored, g);
            TU_CHECK(fabs(chk - lp_ge) <= 1e-9 * fmax(1.0, fabs(chk)), "KGW ln p %.12g vs tail %.12g", lp_ge, chk);
            lp_gt = tokmark_ln_sf_binomial(x + 1, res.scored, g);
            break;
        }
        case TOKMARK_SCHEME_GUMBEL: lp_gt = lp_ge; break;
        case TOKMARK_SCHEME_SYNTHID:
            if (nc->score == TOKMARK_SCORE_WEIGHTED) {
                /* The weighted score lives on a lattice of ~n·Σw points with
                 * sd ≈ sqrt(n·Σw²/4) ≈ 1500 here, so P(X = s) < 1e-3: the raw
                 * p-value is continuous for a KS test of a few hundred keys.
                 * (Each tail costs milliseconds, so no second call.)  The
                 * result is checked against the tail function for a few keys. */
                if (k < 5) {
                    uint64_t s = (uint64_t)llround(res.statistic * n * W);
                    double chk = tokmark_ln_sf_weighted(s, res.scored, par.weights, par.layers);
                    TU_CHECK(fabs(chk - lp_ge) <= 1e-9 * fmax(1.0, fabs(chk)), "weighted ln p %.12g vs tail %.12g",
                             lp_ge, chk);
                }
                lp_gt = lp_ge;
            } else {
                uint64_t s = (uint64_t)llround(res.statistic * n * par.layers);
                double chk = tokmark_ln_sf_binomial(s, res.scored * par.layers, 0.5);
                TU_CHECK(fabs(chk - lp_ge) <= 1e-9 * fmax(1.0, fabs(chk)), "mean ln p %.12g vs tail %.12g", lp_ge,
                         chk);
                lp_gt = tokmark_ln_sf_binomial(s + 1, res.scored * par.layers, 0.5);
            }
            break;
        }
        double pge = exp(lp_ge), pgt = exp(lp_gt);
        TU_CHECK(pgt <= pge * (1 + 1e-12), "P(X > x) = %g > P(X >= x) = %g", pgt, pge);
        praw[k] = pge;
        prand[k] = pgt + tu_unif(r) * (pge - pgt);
        z[k] = res.z;
    }
    tokmark_detector_free(d);
    tokmark_keyring_free(ring);
}

/* Distinct (c+1)-grams of the byte corpus within documents (c ≤ 2). */
static uint64_t distinct_byte_tuples(const corpus *cp, uint32_t c) {
    uint8_t *seen = calloc((size_t)1 << 24, 1);
    assert_non_null(seen);
    uint64_t n = 0;
    for (size_t d = 0; d < cp->ndocs; d++)
        for (size_t i = cp->start[d] + c; i < cp->start[d + 1]; i++) {
            uint32_t key = 0;
            for (uint32_t j = 0; j <= c; j++) key = key << 8 | (uint32_t)cp->ids[i - c + j];
            if (!seen[key]) {
                seen[key] = 1;
                n++;
            }
        }
    free(seen);
    return n;
}

/* Calibration of one configuration on the GPL-3 corpus; prints every
 * failed property and returns how many failed. */
#define NULL_EXPECT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("NULL CALIBRATION FAILURE: " __VA_ARGS__);                                 \
            print_error("\n");                                                                     \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

static int null_check(tu_rng *r, const corpus *cp, const nullcfg *nc) {
    int fails = 0;
    double t0 = tu_seconds();
    size_t N = nc->nkeys;
    double *prand = malloc(N * sizeof *prand), *praw = malloc(N * sizeof *praw), *z = malloc(N * sizeof *z);
    assert_true(prand && praw && z);
    uint64_t scored = 0, want = 0;
    /* SelfHash keys have a dedup set each; give every one room for the corpus */
    uint64_t mem = ((uint64_t)1 << 22) + (nc->seeding == TOKMARK_SEEDING_SELFHASH ? (uint64_t)nc->nkeys << 15 : 0);
    null_pvalues(r, cp, nc, mem, prand, praw, z, &scored, &want);
    if (want)
        NULL_EXPECT(scored == want, "%s: key 0 scored %llu tuples, the corpus has %llu distinct PRF inputs", nc->name,
                    (unsigned long long)scored, (unsigned long long)want);
    /* false-positive rates */
    const double alphas[2] = {1e-2, 1e-3};
    for (int ai = 0; ai < 2; ai++) {
        double a = alphas[ai];
        if ((double)N * a < 1.9) continue; /* too few keys for a meaningful check */
        size_t fr = 0, fraw = 0;
        for (size_t k = 0; k < N; k++) {
            fr += prand[k] <= a;
            fraw += praw[k] <= a;
        }
        uint64_t hi = tu_binom_upper(N, a, 1e-5);
        int64_t lo = tu_binom_lower(N, a, 1e-5);
        printf("    null %-24s alpha %.0e: %4zu keys, FP %3zu (randomized %3zu), allowed [%lld, %llu)\n", nc->name, a,
               N, fraw, fr, (long long)lo + 1, (unsigned long long)hi);
        NULL_EXPECT(fraw < hi, "%s: %zu false positives of %zu keys at alpha %g (at most %llu allowed)", nc->name,
                    fraw, N, a, (unsigned long long)hi - 1);
        NULL_EXPECT((int64_t)fr > lo && fr < hi,
                    "%s: randomized false-positive count %zu of %zu at alpha %g outside (%lld, %llu)", nc->name, fr, N,
                    a, (long long)lo, (unsigned long long)hi);
    }
    double zv = tu_var(z, N), zm = tu_mean(z, N), D;
    int continuous = nc->scheme == TOKMARK_SCHEME_GUMBEL || nc->score == TOKMARK_SCORE_WEIGHTED;
    double ks = tu_ks_uniform(continuous ? praw : prand, N, &D);
    printf("    null %-24s %4zu keys, %5llu tuples: KS D = %.4f p = %.3g; z mean %+.3f var %.3f  (%.2f s)\n",
           nc->name, N, (unsigned long long)scored, D, ks, zm, zv, tu_seconds() - t0);
    NULL_EXPECT(ks > 1e-3, "%s: p-values are not uniform on real text (KS D %.4f, p %.3g)", nc->name, D, ks);
    NULL_EXPECT(zv > 0.75 && zv < 1.33, "%s: the variance of z over keys is %.3f, not 1", nc->name, zv);
    free(prand);
    free(praw);
    free(z);
    return fails;
}

static void test_null_real_text(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x6E11ull);
    corpus cp;
    read_gpl(&cp);
    const nullcfg cfgs[] = {
        {TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_LEFTHASH, 1, 4000, TOKMARK_SCORE_DEFAULT, "kgw lefthash h=1"},
        {TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_SELFHASH, 2, 1000, TOKMARK_SCORE_DEFAULT, "kgw selfhash h=2"},
        {TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_LEFTHASH, 4, 1000, TOKMARK_SCORE_DEFAULT, "kgw lefthash h=4"},
        {TOKMARK_SCHEME_GUMBEL, TOKMARK_SEEDING_LEFTHASH, 2, 2000, TOKMARK_SCORE_DEFAULT, "gumbel lefthash h=2"},
        {TOKMARK_SCHEME_GUMBEL, TOKMARK_SEEDING_SELFHASH, 2, 300, TOKMARK_SCORE_DEFAULT, "gumbel selfhash h=2"},
        {TOKMARK_SCHEME_SYNTHID, TOKMARK_SEEDING_LEFTHASH, 1, 1000, TOKMARK_SCORE_DEFAULT, "synthid mean h=1"},
        {TOKMARK_SCHEME_SYNTHID, TOKMARK_SEEDING_SELFHASH, 2, 300, TOKMARK_SCORE_DEFAULT, "synthid mean selfhash h=2"},
        {TOKMARK_SCHEME_SYNTHID, TOKMARK_SEEDING_LEFTHASH, 1, 500, TOKMARK_SCORE_WEIGHTED, "synthid weighted h=1"},
    };
    int fails = 0;
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) fails += null_check(&r, &cp, &cfgs[ci]);

    /* Without dedup, repeated tuples repeat their bits: z spreads far more
     * than N(0,1) and the p-values are not uniform. */
    const nullcfg nod[2] = {
        {TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_LEFTHASH, 1, 300, TOKMARK_SCORE_DEFAULT, "kgw h=1, no dedup"},
        {TOKMARK_SCHEME_GUMBEL, TOKMARK_SEEDING_LEFTHASH, 2, 300, TOKMARK_SCORE_DEFAULT, "gumbel h=2, no dedup"},
    };
    for (int i = 0; i < 2; i++) {
        size_t N = nod[i].nkeys;
        double *prand = malloc(N * sizeof *prand), *praw = malloc(N * sizeof *praw), *z = malloc(N * sizeof *z);
        assert_true(prand && praw && z);
        uint64_t scored = 0;
        uint64_t want = 0;
        null_pvalues(&r, &cp, &nod[i], 0, prand, praw, z, &scored, &want);
        double zv = tu_var(z, N), D;
        double ks = tu_ks_uniform(nod[i].scheme == TOKMARK_SCHEME_GUMBEL ? praw : prand, N, &D);
        size_t fp = 0;
        for (size_t k = 0; k < N; k++) fp += praw[k] <= 1e-2;
        printf("    null %-22s %4zu keys, %5llu tuples: KS D = %.4f p = %.3g; z var %.1f; FP at 1e-2: %zu\n",
               nod[i].name, N, (unsigned long long)scored, D, ks, zv, fp);
        uint64_t all = 0;
        for (size_t k = 0; k < cp.ndocs; k++) {
            size_t len = cp.start[k + 1] - cp.start[k];
            all += len > nod[i].h ? len - nod[i].h : 0;
        }
        TU_CHECK(scored == all, "%s: without dedup every tuple is scored (%llu of %llu)", nod[i].name,
                 (unsigned long long)scored, (unsigned long long)all);
        TU_CHECK(zv > 5.0, "%s: z variance only %.2f without dedup", nod[i].name, zv);
        TU_CHECK(ks < 1e-6, "%s: p-values look uniform without dedup (KS p %.3g)", nod[i].name, ks);
        free(prand);
        free(praw);
        free(z);
    }
    corpus_free(&cp);
    TU_CHECK(fails == 0, "%d calibration properties failed on unwatermarked text (see above)", fails);
}

/* SelfHash with h ≥ 3 (the default width is 4): the nonce is the minimum of
 * h-1 values each keyed by one (previous token, candidate) pair (SPEC §4.2),
 * so distinct tuples that share the minimising pair share the nonce and thus
 * every PRF bit.  A detector that deduplicates whole tuples counts those bits
 * several times, exactly as if dedup were off for them (on this text: 8423
 * distinct 5-grams but ~1170 distinct (N, t) for h = 4; before the fix of
 * SPEC §7.2 this gave 35% false positives at alpha = 1%).  The calibration
 * must hold here too. */
static void test_null_selfhash_wide(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x5E1F4A54ull);
    corpus cp;
    read_gpl(&cp);
    const nullcfg cfgs[] = {
        {TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_SELFHASH, 4, 600, TOKMARK_SCORE_DEFAULT, "kgw selfhash h=4"},
        {TOKMARK_SCHEME_GUMBEL, TOKMARK_SEEDING_SELFHASH, 3, 300, TOKMARK_SCORE_DEFAULT, "gumbel selfhash h=3"},
        {TOKMARK_SCHEME_SYNTHID, TOKMARK_SEEDING_SELFHASH, 3, 300, TOKMARK_SCORE_DEFAULT, "synthid mean selfhash h=3"},
    };
    int fails = 0;
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) fails += null_check(&r, &cp, &cfgs[ci]);
    corpus_free(&cp);
    TU_CHECK(fails == 0,
             "%d calibration properties failed for SelfHash h >= 3 on unwatermarked text: distinct tuples that share "
             "the min-hash pair share their PRF bits, so deduplicating whole tuples does not give independent "
             "bits (see above)",
             fails);
}

/* ------------------------------------------------------------------------ */
/* 2. Alternative: watermarked text is detected                              */
/* ------------------------------------------------------------------------ */

/* Generate n tokens with the embedder over K random candidates per step with
 * logits scale·N(0,1); returns the mean entropy (nats). */
static double generate(tu_rng *r, const tokmark_profile *p, double scale, const int32_t *prompt, size_t q,
                       int32_t *out, size_t n) {
    enum { K = 200 };
    uint32_t V = tokmark_profile_params(p)->vocab_size;
    tokmark_embedder *e = NULL;
    TU_OK(tokmark_embedder_create(&e, p, NULL));
    tokmark_embedder_prompt(e, prompt, q);
    double H = 0.0;
    for (size_t i = 0; i < n; i++) {
        int32_t ids[K];
        float lg[K];
        tokmark_token_data cand[K];
        tu_distinct_ids(r, ids, K, V);
        for (int k = 0; k < K; k++) {
            lg[k] = (float)(scale * tu_normal(r));
            cand[k].id = ids[k];
            cand[k].logit = lg[k];
            cand[k].p = 0.0f;
        }
        H += tu_entropy(lg, K);
        out[i] = tokmark_embedder_sample(e, cand, K, tu_unif(r));
        tokmark_embedder_accept(e, out[i]);
    }
    tokmark_embedder_free(e);
    return H / (double)n;
}

static void test_watermarked_detected(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0xA17E27ull);
    const uint32_t V = 4000;
    enum { N = 300 };
    const double scales[3] = {6.0, 2.5, 0.8}; /* low, medium, high entropy */
    const char *lvl[3] = {"low", "medium", "high"};
    for (int s = 0; s < 3; s++) {
        for (int sd = 0; sd < 2; sd++) {
            for (int weighted = 0; weighted <= (SCHEMES[s] == TOKMARK_SCHEME_SYNTHID); weighted++) {
                tokmark_params par;
                tu_params(&par, SCHEMES[s], sd ? TOKMARK_SEEDING_SELFHASH : TOKMARK_SEEDING_LEFTHASH, sd ? 3 : 2, V);
                tokmark_keyring *ring = ring_new(), *other = ring_new();
                const tokmark_profile *prof = ring_add(ring, &r, &par);
                ring_add(other, &r, &par);
                tokmark_detector *d = mk_det(ring, (uint64_t)1 << 20, 0), *dw = mk_det(other, (uint64_t)1 << 20, 0);
                tokmark_score_kind kind = weighted ? TOKMARK_SCORE_WEIGHTED : TOKMARK_SCORE_DEFAULT;
                tokmark_detector_set_score(d, kind);
                tokmark_detector_set_score(dw, kind);
                double lp[3];
                for (int e = 0; e < 3; e++) {
                    int32_t prompt[4], text[N];
                    for (int i = 0; i < 4; i++) prompt[i] = tu_token(&r, V);
                    double H = generate(&r, prof, scales[e], prompt, 4, text, N);
                    tokmark_result res, wr;
                    tokmark_detector_begin(d);
                    tokmark_detector_prompt(d, prompt, 4);
                    tokmark_detector_feed(d, text, N);
                    tokmark_detector_document(d, 0, &res);
                    tokmark_detector_begin(dw);
                    tokmark_detector_prompt(dw, prompt, 4);
                    tokmark_detector_feed(dw, text, N);
                    tokmark_detector_document(dw, 0, &wr);
                    lp[e] = res.log10_p;
                    printf("    alt %-8s %-8s%s %-6s entropy %.2f nats: scored %3llu z %6.2f log10 p %8.2f | other key "
                           "log10 p_corr %6.3f\n",
                           tokmark_scheme_name(par.scheme), tokmark_seeding_name(par.seeding),
                           weighted ? " (weighted)" : "", lvl[e], H, (unsigned long long)res.scored, res.z, res.log10_p,
                           wr.log10_p_corrected);
                    if (e > 0)
                        TU_CHECK(res.log10_p < -6.0, "%s %s entropy %.2f: watermark not found (log10 p %.2f)",
                                 tu_cfg_name(&par), lvl[e], H, res.log10_p);
                    TU_CHECK(wr.log10_p_corrected > -3.0, "%s %s: a different key is significant (log10 p %.2f)",
                             tu_cfg_name(&par), lvl[e], wr.log10_p_corrected);
                    TU_CHECK(res.scored > N / 2, "%s: only %llu tuples scored", tu_cfg_name(&par),
                             (unsigned long long)res.scored);
                }
                TU_CHECK(lp[2] < lp[0] && lp[1] < lp[0], "%s: more entropy must give a stronger result (%.1f %.1f %.1f)",
                         tu_cfg_name(&par), lp[0], lp[1], lp[2]);
                tokmark_detector_free(d);
                tokmark_detector_free(dw);
                tokmark_keyring_free(ring);
                tokmark_keyring_free(other);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* 3. Streaming and order invariance                                         */
/* ------------------------------------------------------------------------ */

/* A ring mixing every scheme and seeding, several context widths (so several
 * tuple groups), one vocabulary smaller than the text's. */
static tokmark_keyring *mixed_ring(tu_rng *r, uint32_t V) {
    tokmark_keyring *ring = ring_new();
    const uint32_t hs[6] = {1, 2, 4, 2, 3, 3};
    for (int i = 0; i < 6; i++) {
        tokmark_params par;
        tu_params(&par, SCHEMES[i / 2], i % 2 ? TOKMARK_SEEDING_SELFHASH : TOKMARK_SEEDING_LEFTHASH, hs[i], V);
        ring_add(ring, r, &par);
    }
    tokmark_params par;
    tu_params(&par, TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_LEFTHASH, 2, V / 2);
    ring_add(ring, r, &par);
    return ring;
}

static void all_doc_results(const tokmark_detector *d, size_t nk, tokmark_result *out) {
    for (size_t k = 0; k < nk; k++) tokmark_detector_document(d, k, &out[k]);
}

static void all_corpus_results(const tokmark_detector *d, size_t nk, tokmark_result *out) {
    for (size_t k = 0; k < nk; k++) tokmark_detector_corpus(d, k, &out[k]);
}

static void test_streaming_invariance(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x57AEA3ull);
    const uint32_t V = 3000;
    enum { NDOC = 5, LEN = 3000, NK = 7 };
    tokmark_keyring *ring = mixed_ring(&r, V);
    assert_int_equal(tokmark_keyring_size(ring), NK);
    int32_t *docs = malloc(NDOC * LEN * sizeof *docs);
    int32_t prompts[NDOC][40];
    assert_non_null(docs);
    for (int i = 0; i < NDOC; i++) {
        random_doc(&r, docs + i * LEN, LEN, V, 0.3);
        for (int j = 0; j < 40; j++) prompts[i][j] = tu_token(&r, V);
    }
    /* doc 3 shares text with doc 1 (cross-document duplicates) */
    memcpy(docs + 3 * LEN + 500, docs + 1 * LEN + 100, 800 * sizeof *docs);

    for (int sk = 0; sk < 2; sk++) {
        tokmark_score_kind kind = sk ? TOKMARK_SCORE_WEIGHTED : TOKMARK_SCORE_DEFAULT;
        tokmark_detector *a = mk_det(ring, (uint64_t)1 << 22, 0), *b = mk_det(ring, (uint64_t)1 << 22, 0);
        tokmark_detector_set_score(a, kind);
        tokmark_detector_set_score(b, kind);
        tokmark_result ra[NDOC][NK], rb[NK], ca[NK], cb[NK];
        /* a: each document in one call, order 0..4 */
        for (int i = 0; i < NDOC; i++) {
            tokmark_detector_begin(a);
            tokmark_detector_prompt(a, prompts[i], 40);
            tokmark_detector_feed(a, docs + i * LEN, LEN);
            all_doc_results(a, NK, ra[i]);
        }
        all_corpus_results(a, NK, ca);
        /* b: random chunks (prompt too), order 4,2,0,3,1 */
        const int order[NDOC] = {4, 2, 0, 3, 1};
        for (int oi = 0; oi < NDOC; oi++) {
            int i = order[oi];
            tokmark_detector_begin(b);
            size_t pos = 0;
            while (pos < 40) {
                size_t k = 1 + tu_below(&r, 15);
                if (k > 40 - pos) k = 40 - pos;
                tokmark_detector_prompt(b, prompts[i] + pos, k);
                pos += k;
            }
            pos = 0;
            while (pos < LEN) {
                size_t k = tu_below(&r, 700); /* zero-length calls included */
                if (k > LEN - pos) k = LEN - pos;
                tokmark_detector_feed(b, docs + i * LEN + pos, k);
                pos += k;
            }
            all_doc_results(b, NK, rb);
            for (int k = 0; k < NK; k++)
                CHECK_SAME(&ra[i][k], &rb[k], "doc %d key %d: chunked/reordered feeding changed the document result", i,
                           k);
        }
        all_corpus_results(b, NK, cb);
        for (int k = 0; k < NK; k++) {
            CHECK_SAME(&ca[k], &cb[k], "key %d: the corpus result depends on document order or chunking", k);
            TU_CHECK(ca[k].duplicates > 0, "key %d: the corpus has duplicates but none were counted", k);
        }
        /* best results agree too */
        tokmark_result x, y;
        tokmark_detector_corpus_best(a, &x);
        tokmark_detector_corpus_best(b, &y);
        CHECK_SAME(&x, &y, "corpus_best differs");
        /* reset: a fresh start gives the same results again */
        tokmark_detector_reset(b);
        for (int i = 0; i < NDOC; i++) {
            tokmark_detector_begin(b);
            tokmark_detector_prompt(b, prompts[i], 40);
            tokmark_detector_feed(b, docs + i * LEN, LEN);
        }
        all_corpus_results(b, NK, cb);
        for (int k = 0; k < NK; k++) CHECK_SAME(&ca[k], &cb[k], "key %d: reset did not clear the corpus", k);
        tokmark_detector_free(a);
        tokmark_detector_free(b);
    }
    tokmark_detector_free(NULL); /* no-op */
    free(docs);
    tokmark_keyring_free(ring);
}

/* ------------------------------------------------------------------------ */
/* 4. What is scored: prompt tokens and the first c tokens are not           */
/* ------------------------------------------------------------------------ */

static void test_scored_counts(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x5C0BEDull);
    const uint32_t V = 5000;
    enum { N = 200 };
    const struct { tokmark_seeding sd; uint32_t h; } cf[5] = {
        {TOKMARK_SEEDING_LEFTHASH, 1}, {TOKMARK_SEEDING_LEFTHASH, 3}, {TOKMARK_SEEDING_LEFTHASH, 5},
        {TOKMARK_SEEDING_SELFHASH, 2}, {TOKMARK_SEEDING_SELFHASH, 4}};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 5; i++) {
            tokmark_params par;
            tu_params(&par, SCHEMES[s], cf[i].sd, cf[i].h, V);
            uint32_t c = tu_ctxlen(&par);
            tokmark_keyring *ring = ring_new();
            const tokmark_profile *prof = ring_add(ring, &r, &par);
            tokmark_detector *d = mk_det(ring, (uint64_t)1 << 20, 0);
            int32_t doc[N], prompt[8];
            tu_distinct_ids(&r, doc, N, V); /* distinct tokens: every tuple distinct */
            tu_distinct_ids(&r, prompt, 8, V);
            for (size_t q = 0; q <= 6; q++) {
                tokmark_result res;
                tokmark_detector_begin(d);
                tokmark_detector_prompt(d, prompt, q);
                tokmark_detector_feed(d, doc, N);
                tokmark_detector_document(d, 0, &res);
                uint64_t want = q >= c ? N : N - (c - q);
                TU_CHECK(res.scored == want, "%s prompt %zu: scored %llu, expected %llu", tu_cfg_name(&par), q,
                         (unsigned long long)res.scored, (unsigned long long)want);
                TU_CHECK(res.tokens == N, "%s: tokens %llu (prompt counted?)", tu_cfg_name(&par),
                         (unsigned long long)res.tokens);
                TU_CHECK(res.duplicates == 0 && res.dropped == 0, "%s: distinct tuples counted as dups/dropped",
                         tu_cfg_name(&par));
                tset ts = {NULL, 0, 0, c + 1};
                doc_tuples(&ts, prompt, q, doc, N, c);
                refscore rs = ref_eval(prof, &ts);
                check_against_ref(prof, &res, &rs, TOKMARK_SCORE_DEFAULT, "doc");
                if (SCHEMES[s] == TOKMARK_SCHEME_SYNTHID) {
                    tokmark_detector_set_score(d, TOKMARK_SCORE_WEIGHTED);
                    tokmark_detector_document(d, 0, &res);
                    check_against_ref(prof, &res, &rs, TOKMARK_SCORE_WEIGHTED, "doc weighted");
                    tokmark_detector_set_score(d, TOKMARK_SCORE_DEFAULT);
                }
                free(ts.v);
            }
            /* fewer tokens than a context: nothing scored, p = 1 */
            tokmark_result res;
            tokmark_detector_begin(d);
            tokmark_detector_feed(d, doc, c);
            tokmark_detector_document(d, 0, &res);
            TU_CHECK(res.scored == 0 && res.log10_p == 0.0 && res.tokens == c, "%s: %u tokens scored %llu",
                     tu_cfg_name(&par), c, (unsigned long long)res.scored);
            tokmark_detector_free(d);
            tokmark_keyring_free(ring);
        }
    }
}

/* Random documents with repeats: every result equals the reference detector. */
static void test_reference_detector(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x7EFE7E ^ 0x11ull);
    const uint32_t V = 2000;
    enum { NDOC = 4, LEN = 1500 };
    for (int cfg = 0; cfg < 6; cfg++) {
        tokmark_params par;
        tu_params(&par, SCHEMES[cfg / 2], cfg % 2 ? TOKMARK_SEEDING_SELFHASH : TOKMARK_SEEDING_LEFTHASH,
                  cfg % 2 ? 3 : 2, V);
        uint32_t c = tu_ctxlen(&par);
        tokmark_keyring *ring = ring_new();
        const tokmark_profile *prof = ring_add(ring, &r, &par);
        tokmark_detector *d = mk_det(ring, (uint64_t)1 << 20, 0);
        tset corp = {NULL, 0, 0, c + 1};
        int32_t *doc = malloc(LEN * sizeof *doc);
        assert_non_null(doc);
        uint64_t total_tuples = 0;
        for (int k = 0; k < NDOC; k++) {
            /* documents 0 and 2 use 40 distinct tokens: (previous token, candidate) pairs recur in
             * different tuples, so SelfHash nonces are shared (the unit of dedup is (N, t)) */
            random_doc(&r, doc, LEN, k % 2 ? V : 40, 0.4);
            for (int j = 0; j < 30; j++) doc[tu_below(&r, LEN)] = (int32_t)(V + tu_below(&r, 50)); /* out of vocab */
            doc[tu_below(&r, LEN)] = -7;
            tokmark_detector_begin(d);
            tokmark_detector_feed(d, doc, LEN);
            tset ts = {NULL, 0, 0, c + 1};
            doc_tuples(&ts, NULL, 0, doc, LEN, c);
            doc_tuples(&corp, NULL, 0, doc, LEN, c);
            total_tuples += ts.n;
            refscore rs = ref_eval(prof, &ts);
            tokmark_result res;
            tokmark_detector_document(d, 0, &res);
            check_against_ref(prof, &res, &rs, TOKMARK_SCORE_DEFAULT, "document");
            TU_CHECK(res.duplicates == rs.dups, "%s: document duplicates %llu, expected %llu", tu_cfg_name(&par),
                     (unsigned long long)res.duplicates, (unsigned long long)rs.dups);
            TU_CHECK(res.dropped == 0, "%s: dropped %llu", tu_cfg_name(&par), (unsigned long long)res.dropped);
            TU_CHECK(rs.dups > 100, "the document should repeat tuples");
            free(ts.v);
        }
        TU_CHECK(corp.n == total_tuples, "internal");
        refscore rs = ref_eval(prof, &corp);
        tokmark_result res;
        tokmark_detector_corpus(d, 0, &res);
        check_against_ref(prof, &res, &rs, TOKMARK_SCORE_DEFAULT, "corpus");
        TU_CHECK(res.duplicates == rs.dups, "%s: corpus duplicates %llu, expected %llu", tu_cfg_name(&par),
                 (unsigned long long)res.duplicates, (unsigned long long)rs.dups);
        TU_CHECK(res.tokens == NDOC * LEN, "corpus tokens %llu", (unsigned long long)res.tokens);
        free(corp.v);
        free(doc);
        tokmark_detector_free(d);
        tokmark_keyring_free(ring);
    }
}

/* ------------------------------------------------------------------------ */
/* 5. Deduplication and bounded memory                                       */
/* ------------------------------------------------------------------------ */

static void test_dedup(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0xDED0Bull);
    const uint32_t V = 5000;
    enum { L = 400 };
    for (int cfg = 0; cfg < 6; cfg++) {
        tokmark_params par;
        tu_params(&par, SCHEMES[cfg / 2], cfg % 2 ? TOKMARK_SEEDING_SELFHASH : TOKMARK_SEEDING_LEFTHASH, 3, V);
        uint32_t c = tu_ctxlen(&par);
        tokmark_keyring *ring = ring_new();
        ring_add(ring, &r, &par);
        tokmark_detector *d = mk_det(ring, (uint64_t)1 << 20, 0);
        int32_t doc[L];
        random_doc(&r, doc, L, V, 0.2);
        tset ts = {NULL, 0, 0, c + 1};
        doc_tuples(&ts, NULL, 0, doc, L, c);
        refscore r1 = ref_eval(tokmark_keyring_get(ring, 0), &ts);
        size_t T = ts.n, U = r1.scored; /* tuples; distinct units (all in the vocabulary) */
        TU_CHECK(r1.dups == T - U, "internal");
        free(ts.v);
        TU_CHECK(U < T, "the document should repeat some tuples");
        /* one copy */
        tokmark_result d1, d2, c1, c2;
        tokmark_detector_begin(d);
        tokmark_detector_feed(d, doc, L);
        tokmark_detector_document(d, 0, &d1);
        tokmark_detector_corpus(d, 0, &c1);
        TU_CHECK(d1.scored == U && d1.duplicates == T - U, "%s: doc scored %llu dups %llu, expected %zu, %zu",
                 tu_cfg_name(&par), (unsigned long long)d1.scored, (unsigned long long)d1.duplicates, U, T - U);
        CHECK_SAME(&d1, &c1, "one document: corpus != document");
        /* the same document again */
        tokmark_detector_begin(d);
        tokmark_detector_feed(d, doc, L);
        tokmark_detector_document(d, 0, &d2);
        tokmark_detector_corpus(d, 0, &c2);
        CHECK_SAME(&d1, &d2, "the second copy's document result differs from the first's");
        TU_CHECK(c2.scored == c1.scored && c2.statistic == c1.statistic && c2.log10_p == c1.log10_p,
                 "%s: a repeated document changed the corpus score (scored %llu -> %llu)", tu_cfg_name(&par),
                 (unsigned long long)c1.scored, (unsigned long long)c2.scored);
        TU_CHECK(c2.duplicates == 2 * T - U, "%s: corpus duplicates %llu, expected %zu", tu_cfg_name(&par),
                 (unsigned long long)c2.duplicates, 2 * T - U);
        TU_CHECK(c2.tokens == 2 * L, "corpus tokens %llu", (unsigned long long)c2.tokens);
        /* within one document: X X scores X's tuples (plus the seam) once */
        int32_t xx[2 * L];
        memcpy(xx, doc, sizeof doc);
        memcpy(xx + L, doc, sizeof doc);
        tset t2 = {NULL, 0, 0, c + 1};
        doc_tuples(&t2, NULL, 0, xx, 2 * L, c);
        refscore r2 = ref_eval(tokmark_keyring_get(ring, 0), &t2);
        size_t T2 = t2.n, U2 = r2.scored;
        free(t2.v);
        tokmark_detector_begin(d);
        tokmark_detector_feed(d, xx, 2 * L);
        tokmark_detector_document(d, 0, &d2);
        TU_CHECK(d2.scored == U2 && d2.duplicates == T2 - U2 && U2 <= U + c,
                 "%s: doubled document scored %llu dups %llu, expected %zu, %zu", tu_cfg_name(&par),
                 (unsigned long long)d2.scored, (unsigned long long)d2.duplicates, U2, T2 - U2);
        /* with dedup off, every tuple counts */
        tokmark_detector *nd = mk_det(ring, 0, 0);
        tokmark_detector_begin(nd);
        tokmark_detector_feed(nd, xx, 2 * L);
        tokmark_detector_document(nd, 0, &d2);
        TU_CHECK(d2.scored == T2 && d2.duplicates == 0, "%s: dedup off scored %llu of %zu", tu_cfg_name(&par),
                 (unsigned long long)d2.scored, T2);
        tokmark_detector_free(nd);
        tokmark_detector_free(d);
        tokmark_keyring_free(ring);
    }
}

static void test_bounded_memory(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0xB0DEDull);
    const uint32_t V = 5000;
    enum { L = 2000 };
    for (int cfg = 0; cfg < 6; cfg++) {
        tokmark_params par;
        tu_params(&par, SCHEMES[cfg / 2], cfg % 2 ? TOKMARK_SEEDING_SELFHASH : TOKMARK_SEEDING_LEFTHASH, 2, V);
        uint32_t c = tu_ctxlen(&par);
        tokmark_keyring *ring = ring_new();
        ring_add(ring, &r, &par);
        int32_t small[6], doc[L];
        tu_distinct_ids(&r, small, 6, V);
        random_doc(&r, doc, L, V, 0.3);
        tset ts = {NULL, 0, 0, c + 1};
        doc_tuples(&ts, NULL, 0, doc, L, c);
        size_t T = ts.n, U = ref_eval(tokmark_keyring_get(ring, 0), &ts).scored;
        free(ts.v);
        /* corpus table: a few bytes */
        tokmark_detector *d = mk_det(ring, 64, 0);
        tokmark_result a1, a2, res, dr;
        tokmark_detector_begin(d);
        tokmark_detector_feed(d, small, 6);
        tokmark_detector_corpus(d, 0, &a1);
        tokmark_detector_begin(d);
        tokmark_detector_feed(d, doc, L);
        tokmark_detector_corpus(d, 0, &res);
        tokmark_detector_document(d, 0, &dr);
        uint64_t tuples = (6 - c) + T;
        TU_CHECK(res.dropped > 0, "%s: a 64-byte table dropped nothing", tu_cfg_name(&par));
        TU_CHECK(res.scored + res.duplicates + res.dropped == tuples,
                 "%s: scored %llu + dups %llu + dropped %llu != %llu tuples", tu_cfg_name(&par),
                 (unsigned long long)res.scored, (unsigned long long)res.duplicates, (unsigned long long)res.dropped,
                 (unsigned long long)tuples);
        TU_CHECK(res.scored <= U + (6 - c), "%s: scored %llu > distinct tuples", tu_cfg_name(&par),
                 (unsigned long long)res.scored);
        TU_CHECK(res.scored < 1000, "%s: a 64-byte table holds %llu tuples", tu_cfg_name(&par),
                 (unsigned long long)res.scored);
        /* the document table is separate and not full */
        TU_CHECK(dr.scored == U && dr.dropped == 0, "%s: document scored %llu dropped %llu", tu_cfg_name(&par),
                 (unsigned long long)dr.scored, (unsigned long long)dr.dropped);
        /* feeding everything again scores nothing new; tuples held are duplicates, not dropped */
        uint64_t before_dups = res.duplicates, before_drop = res.dropped;
        tokmark_detector_begin(d);
        tokmark_detector_feed(d, small, 6);
        tokmark_detector_corpus(d, 0, &a2);
        TU_CHECK(a2.scored == res.scored && a2.statistic == res.statistic, "%s: a tuple was scored twice",
                 tu_cfg_name(&par));
        if (a1.dropped == 0)
            TU_CHECK(a2.duplicates == before_dups + (6 - c) && a2.dropped == before_drop,
                     "%s: held tuples counted as dropped (dups %llu -> %llu, dropped %llu -> %llu)", tu_cfg_name(&par),
                     (unsigned long long)before_dups, (unsigned long long)a2.duplicates,
                     (unsigned long long)before_drop, (unsigned long long)a2.dropped);
        tokmark_detector_begin(d);
        tokmark_detector_feed(d, doc, L);
        tokmark_detector_corpus(d, 0, &a2);
        TU_CHECK(a2.scored == res.scored && a2.statistic == res.statistic, "%s: a tuple was scored twice",
                 tu_cfg_name(&par));
        tokmark_detector_free(d);
        /* document table: tiny */
        d = mk_det(ring, (uint64_t)1 << 20, 4);
        tokmark_detector_begin(d);
        tokmark_detector_feed(d, doc, L);
        tokmark_detector_document(d, 0, &dr);
        tokmark_detector_corpus(d, 0, &res);
        TU_CHECK(dr.dropped > 0 && dr.scored + dr.duplicates + dr.dropped == T && dr.scored <= U,
                 "%s: tiny document table: scored %llu dups %llu dropped %llu of %zu (distinct %zu)",
                 tu_cfg_name(&par), (unsigned long long)dr.scored, (unsigned long long)dr.duplicates,
                 (unsigned long long)dr.dropped, T, U);
        TU_CHECK(res.scored == U && res.dropped == 0, "%s: the corpus table is unaffected (scored %llu of %zu)",
                 tu_cfg_name(&par), (unsigned long long)res.scored, U);
        tokmark_detector_free(d);
        tokmark_keyring_free(ring);
    }
}

/* ------------------------------------------------------------------------ */
/* 6. Key rings                                                              */
/* ------------------------------------------------------------------------ */

static void test_multiple_keys(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x4E75ull);
    const uint32_t V = 4000;
    enum { K = 6, N = 250 };
    for (int s = 0; s < 3; s++) {
        /* the same parameters, six keys; key 3 wrote the text */
        tokmark_params par;
        tu_params(&par, SCHEMES[s], TOKMARK_SEEDING_LEFTHASH, 2, V);
        tokmark_keyring *ring = ring_new();
        for (int k = 0; k < K; k++) ring_add(ring, &r, &par);
        const tokmark_profile *gen = tokmark_keyring_get(ring, 3);
        int32_t prompt[2] = {tu_token(&r, V), tu_token(&r, V)}, text[N];
        generate(&r, gen, 1.0, prompt, 2, text, N);
        tokmark_detector *d = mk_det(ring, (uint64_t)1 << 20, 0);
        tokmark_detector_begin(d);
        tokmark_detector_prompt(d, prompt, 2);
        tokmark_detector_feed(d, text, N);
        for (int whole = 0; whole < 2; whole++) {
            tokmark_result best, one;
            if (whole) tokmark_detector_corpus_best(d, &best);
            else tokmark_detector_document_best(d, &best);
            TU_CHECK(best.key_index == 3, "%s: best key %zu, the text is from key 3", tu_cfg_name(&par),
                     best.key_index);
            TU_CHECK(strcmp(best.key_id, tokmark_profile_key_id(gen)) == 0, "best key_id %s, expected %s",
                     best.key_id, tokmark_profile_key_id(gen));
            TU_CHECK(best.log10_p < -10.0, "%s: generating key not significant (%g)", tu_cfg_name(&par),
                     best.log10_p);
            TU_CHECK(best.log10_p_corrected >= best.log10_p, "corrected %g < uncorrected %g", best.log10_p_corrected,
                     best.log10_p);
            TU_CHECK(fabs(best.log10_p_corrected - (best.log10_p + log10((double)K))) < 1e-6,
                     "%s: corrected %.10g, expected log10 p + log10 %d = %.10g", tu_cfg_name(&par),
                     best.log10_p_corrected, K, best.log10_p + log10((double)K));
            if (whole) tokmark_detector_corpus(d, 3, &one);
            else tokmark_detector_document(d, 3, &one);
            TU_CHECK(one.log10_p == best.log10_p && one.key_index == 3, "per-key result differs from best");
            for (size_t k = 0; k < K; k++) {
                if (k == 3) continue;
                if (whole) tokmark_detector_corpus(d, k, &one);
                else tokmark_detector_document(d, k, &one);
                TU_CHECK(one.key_index == k && strcmp(one.key_id, tokmark_profile_key_id(tokmark_keyring_get(ring, k))) == 0,
                         "result of key %zu carries index %zu", k, one.key_index);
                TU_CHECK(one.log10_p > -4.0, "%s: key %zu (not the generator) has log10 p %g", tu_cfg_name(&par), k,
                         one.log10_p);
                TU_CHECK(one.log10_p_corrected >= one.log10_p, "corrected < uncorrected");
            }
        }
        /* out of range: key index beyond the ring gives an empty result, no crash */
        tokmark_result none;
        tokmark_detector_document(d, K + 5, &none);
        TU_CHECK(none.scored == 0, "result for a key beyond the ring");
        tokmark_detector_free(d);
        tokmark_keyring_free(ring);
    }

    /* Tokens outside a key's vocabulary give no tuple for that key. */
    tokmark_params pa, pb;
    tu_params(&pa, TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_LEFTHASH, 2, 4000);
    tu_params(&pb, TOKMARK_SCHEME_GUMBEL, TOKMARK_SEEDING_LEFTHASH, 2, 1500);
    tokmark_keyring *ring = ring_new();
    const tokmark_profile *A = ring_add(ring, &r, &pa), *B = ring_add(ring, &r, &pb);
    tokmark_detector *d = mk_det(ring, (uint64_t)1 << 20, 0);
    enum { L = 1000 };
    int32_t doc[L];
    random_doc(&r, doc, L, 4000, 0.2);
    doc[10] = -1;
    doc[500] = 4000;
    doc[501] = INT32_MAX;
    tokmark_detector_begin(d);
    tokmark_detector_feed(d, doc, L);
    tset ts = {NULL, 0, 0, 3};
    doc_tuples(&ts, NULL, 0, doc, L, 2);
    refscore ra = ref_eval(A, &ts), rb = ref_eval(B, &ts);
    TU_CHECK(rb.scored < ra.scored && ra.scored + ra.dups < ts.n, "the vocabularies should cut different tuples");
    tokmark_result res;
    tokmark_detector_document(d, 0, &res);
    check_against_ref(A, &res, &ra, TOKMARK_SCORE_DEFAULT, "V=4000 key");
    TU_CHECK(res.tokens == L, "tokens %llu", (unsigned long long)res.tokens);
    TU_CHECK(res.duplicates == ra.dups, "duplicates %llu, expected %llu", (unsigned long long)res.duplicates,
             (unsigned long long)ra.dups);
    tokmark_detector_document(d, 1, &res);
    check_against_ref(B, &res, &rb, TOKMARK_SCORE_DEFAULT, "V=1500 key");
    TU_CHECK(res.tokens == L, "tokens %llu: out-of-vocabulary tokens must still be counted", (unsigned long long)res.tokens);
    free(ts.v);
    tokmark_detector_free(d);
    tokmark_keyring_free(ring);
}

/* ------------------------------------------------------------------------ */
/* 7. Backends                                                               */
/* ------------------------------------------------------------------------ */

enum { BK_NK = 7, BK_NDOC = 4, BK_LEN = 2500 };

static void backend_run(tokmark_result out[BK_NDOC + 1][BK_NK]) {
    tu_rng r;
    tu_seed(&r, 0xBAC4E9Dull);
    const uint32_t V = 3000;
    tokmark_keyring *ring = mixed_ring(&r, V);
    tokmark_detector *d = mk_det(ring, (uint64_t)1 << 20, 0);
    int32_t doc[BK_LEN];
    for (int i = 0; i < BK_NDOC; i++) {
        random_doc(&r, doc, BK_LEN, V, 0.2);
        tokmark_detector_begin(d);
        tokmark_detector_prompt(d, doc, 5);
        tokmark_detector_feed(d, doc + 5, BK_LEN - 5);
        all_doc_results(d, BK_NK, out[i]);
    }
    all_corpus_results(d, BK_NK, out[BK_NDOC]);
    tokmark_detector_free(d);
    tokmark_keyring_free(ring);
}

static void test_backends(void **state) {
    (void)state;
    static tokmark_result a[BK_NDOC + 1][BK_NK], b[BK_NDOC + 1][BK_NK];
    TU_OK(tokmark_set_backend(TOKMARK_BACKEND_PORTABLE));
    assert_string_equal(tokmark_backend_name(), "portable");
    backend_run(a);
    int rc = tokmark_set_backend(TOKMARK_BACKEND_AESNI);
    if (rc == TOKMARK_ERR_UNSUPPORTED) {
        printf("    NOTE: AES-NI is not supported on this CPU: the AES-NI half of the backend comparison is "
               "SKIPPED\n");
    } else {
        TU_OK(rc);
        assert_string_equal(tokmark_backend_name(), "aesni");
    }
    backend_run(b);
    TU_OK(tokmark_set_backend(TOKMARK_BACKEND_AUTO));
    for (int i = 0; i <= BK_NDOC; i++)
        for (int k = 0; k < BK_NK; k++) CHECK_SAME(&a[i][k], &b[i][k], "backends differ: doc %d key %d", i, k);
    TU_CHECK(a[BK_NDOC][0].scored > 1000, "degenerate backend run");
}

/* ------------------------------------------------------------------------ */

static int group_setup(void **state) {
    (void)state;
    return tokmark_init() == TOKMARK_OK ? 0 : -1;
}


/* ------------------------------------------------------------------------ */
/* 8. Traces and partial results (SPEC §7.4, §7.5)                            */
/* ------------------------------------------------------------------------ */

/* The trace of a document gives, per position, the score of the tuple ending
 * there when it is new in the document; its sums are the document totals,
 * and for KGW each value is the green bit of the inspection API. */
static void test_trace(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x7ACEull);
    const uint32_t V = 500;
    enum { Q = 7, LEN = 900 };
    for (int cfg = 0; cfg < 6; cfg++) {
        tokmark_params par;
        tu_params(&par, SCHEMES[cfg / 2], cfg % 2 ? TOKMARK_SEEDING_SELFHASH : TOKMARK_SEEDING_LEFTHASH,
                  cfg % 2 ? 3 : 2, V);
        uint32_t c = tu_ctxlen(&par);
        tokmark_keyring *ring = ring_new();
        const tokmark_profile *p0 = ring_add(ring, &r, &par);
        (void)ring_add(ring, &r, &par);
        tokmark_detector *d = mk_det(ring, (uint64_t)1 << 20, 0);
        if (par.scheme == TOKMARK_SCHEME_SYNTHID && cfg % 2) tokmark_detector_set_score(d, TOKMARK_SCORE_WEIGHTED);
        int32_t all[Q + LEN];
        random_doc(&r, all, Q + LEN, 60, 0.3); /* few distinct tokens: many repeated tuples */
        tokmark_trace tr[Q + LEN + 5], tr1[Q + LEN];
        for (size_t i = 0; i < Q + LEN + 5; i++) tr[i] = (tokmark_trace){-1.0, 9};
        tokmark_detector_set_trace(d, 0, tr, Q + LEN + 5);
        tokmark_detector_set_trace(d, 1, tr1, Q + LEN);
        for (int round = 0; round < 2; round++) { /* the second document repeats the first: traces are per document */
            tokmark_detector_begin(d);
            tokmark_detector_prompt(d, all, Q);
            tokmark_detector_feed(d, all + Q, 100);
            tokmark_detector_feed(d, all + Q + 100, LEN - 100);
            tokmark_result res;
            tokmark_detector_document(d, 0, &res);
            uint64_t nscored = 0;
            double sum = 0.0;
            tset seen = {NULL, 0, 0, c + 1};
            for (size_t i = 0; i < Q + LEN; i++) {
                TU_CHECK(tr[i].scored <= 1, "%s: position %zu scored flag %u", tu_cfg_name(&par), i, tr[i].scored);
                if (i < Q) TU_CHECK(tr[i].scored == 0, "%s: prompt position %zu scored", tu_cfg_name(&par), i);
                if (!tr[i].scored) {
                    TU_CHECK(tr[i].value == 0.0, "%s: unscored position %zu has value %g", tu_cfg_name(&par), i,
                             tr[i].value);
                    continue;
                }
                TU_CHECK(i >= c, "%s: position %zu has no context", tu_cfg_name(&par), i);
                nscored++;
                sum += tr[i].value;
                if (par.scheme == TOKMARK_SCHEME_KGW && par.seeding == TOKMARK_SEEDING_LEFTHASH) {
                    double g = tokmark_is_green(p0, all + i - c, all[i]) ? 1.0 : 0.0;
                    TU_CHECK(tr[i].value == g, "%s: position %zu value %g, green %g", tu_cfg_name(&par), i,
                             tr[i].value, g);
                    /* scored exactly at the first occurrence of the tuple in the document */
                    for (size_t j = 0; j < seen.n; j++)
                        TU_CHECK(memcmp(seen.v[j].t, all + i - c, (c + 1) * sizeof(int32_t)) != 0,
                                 "position %zu repeats an earlier tuple yet was scored", i);
                    tset_add(&seen, all + i - c);
                }
            }
            TU_CHECK(tr[Q + LEN].scored == 9, "a position beyond the document was written");
            TU_CHECK(nscored == res.scored, "%s: %llu scored positions, document scored %llu", tu_cfg_name(&par),
                     (unsigned long long)nscored, (unsigned long long)res.scored);
            double want = res.statistic;
            if (par.scheme == TOKMARK_SCHEME_SYNTHID)
                want = (cfg % 2 ? res.statistic * (double)res.scored : res.statistic * (double)res.scored * par.layers);
            if (par.scheme == TOKMARK_SCHEME_SYNTHID && cfg % 2) {
                uint32_t W = 0;
                for (uint32_t l = 0; l < par.layers; l++) W += par.weights[l];
                want *= W;
            }
            TU_CHECK(fabs(sum - want) <= 1e-6 * (1.0 + fabs(want)), "%s: trace sum %.17g, statistic gives %.17g",
                     tu_cfg_name(&par), sum, want);
            free(seen.v);
        }
        tokmark_detector_set_trace(d, 0, NULL, 0);
        tokmark_detector_set_trace(d, 1, NULL, 0);
        tokmark_detector_free(d);
        tokmark_keyring_free(ring);
    }
}

/* A ring of four keys of scheme SCHEMES[sch] and the next one: two LeftHash
 * keys that share a tuple set, a SelfHash key, and a LeftHash key of another
 * context width and a smaller vocabulary. */
static tokmark_keyring *scheme_ring(tu_rng *r, int sch, uint32_t V) {
    tokmark_keyring *ring = ring_new();
    tokmark_params par;
    tu_params(&par, SCHEMES[sch], TOKMARK_SEEDING_LEFTHASH, 2, V);
    (void)ring_add(ring, r, &par);
    (void)ring_add(ring, r, &par); /* shares the first key's tuple set */
    tu_params(&par, SCHEMES[sch], TOKMARK_SEEDING_SELFHASH, 3, V);
    (void)ring_add(ring, r, &par);
    tu_params(&par, SCHEMES[(sch + 1) % 3], TOKMARK_SEEDING_LEFTHASH, 1, V - 1000);
    (void)ring_add(ring, r, &par);
    return ring;
}

/* Detectors over shards of a corpus, exported and imported into one, give
 * exactly the result of one detector over the whole corpus, dedup included;
 * a damaged or foreign partial is refused and changes nothing. */
static void test_partial_merge(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x9A97ull);
    const uint32_t V = 3000;
    enum { NDOC = 12, LEN = 700, NSHARD = 3 };
    int32_t *docs = malloc((size_t)NDOC * LEN * sizeof *docs);
    assert_non_null(docs);
    for (int k = 0; k < NDOC; k++) random_doc(&r, docs + (size_t)k * LEN, LEN, k % 3 ? V : 80, 0.3);
    memcpy(docs + 7 * LEN, docs + 2 * LEN, LEN * sizeof *docs); /* the same document in two shards */
    for (int sch = 0; sch < 3; sch++) {
        tokmark_keyring *ring = scheme_ring(&r, sch, V);
        tokmark_params par;
        size_t nk = tokmark_keyring_size(ring);
        tokmark_detector_config rec = {(uint64_t)1 << 22, 0, TOKMARK_DETECT_RECORD};
        tokmark_detector *whole = mk_det(ring, (uint64_t)1 << 22, 0), *shard[NSHARD], *merged = NULL;
        TU_OK(tokmark_detector_create(&merged, ring, &rec));
        uint8_t *part[NSHARD];
        size_t plen[NSHARD];
        for (int s = 0; s < NSHARD; s++) {
            TU_OK(tokmark_detector_create(&shard[s], ring, &rec));
            for (int k = s; k < NDOC; k += NSHARD) { /* interleaved shards */
                tokmark_detector_begin(whole);
                tokmark_detector_feed(whole, docs + (size_t)k * LEN, LEN);
                tokmark_detector_begin(shard[s]);
                tokmark_detector_feed(shard[s], docs + (size_t)k * LEN, LEN);
            }
            TU_OK(tokmark_detector_export(shard[s], &part[s], &plen[s]));
        }
        for (int s = NSHARD - 1; s >= 0; s--) TU_OK(tokmark_detector_import(merged, part[s], plen[s]));
        for (size_t k = 0; k < nk; k++) {
            tokmark_result a, b;
            tokmark_detector_corpus(whole, k, &a);
            tokmark_detector_corpus(merged, k, &b);
            CHECK_SAME(&a, &b, "scheme %d key %zu: merged partials differ from one run", sch, k);
            TU_CHECK(a.duplicates > 0 && a.scored > 0, "the corpus should repeat tuples");
        }
        /* a merged detector exports again (hierarchical merge) */
        uint8_t *again;
        size_t alen;
        TU_OK(tokmark_detector_export(merged, &again, &alen));
        tokmark_detector *m2 = NULL;
        TU_OK(tokmark_detector_create(&m2, ring, &rec));
        TU_OK(tokmark_detector_import(m2, again, alen));
        tokmark_result a, b;
        for (size_t k = 0; k < nk; k++) {
            tokmark_detector_corpus(whole, k, &a);
            tokmark_detector_corpus(m2, k, &b);
            CHECK_SAME(&a, &b, "re-exported merge, key %zu", k);
        }
        /* damage: every refusal leaves the detector as it was */
        tokmark_detector_corpus(m2, 0, &a);
        for (int t = 0; t < 20; t++) {
            size_t at = tu_below(&r, (uint32_t)alen);
            again[at] ^= (uint8_t)(1u << tu_below(&r, 8));
            int rc = tokmark_detector_import(m2, again, alen);
            TU_CHECK(rc == TOKMARK_ERR_FORMAT || rc == TOKMARK_ERR_MISMATCH, "damaged byte %zu: %s", at,
                     tokmark_error_name(rc));
        }
        TU_CHECK(tokmark_detector_import(m2, again, alen / 2) == TOKMARK_ERR_FORMAT, "truncated partial");
        tokmark_detector_corpus(m2, 0, &b);
        CHECK_SAME(&a, &b, "a refused partial changed the detector");
        /* another ring */
        tokmark_keyring *other = ring_new();
        tu_params(&par, SCHEMES[sch], TOKMARK_SEEDING_LEFTHASH, 2, V);
        (void)ring_add(other, &r, &par);
        tokmark_detector *od = NULL;
        TU_OK(tokmark_detector_create(&od, other, &rec));
        TU_CHECK(tokmark_detector_import(od, part[0], plen[0]) == TOKMARK_ERR_MISMATCH, "foreign ring accepted");
        /* export needs the record flag */
        uint8_t *x;
        size_t xl;
        TU_CHECK(tokmark_detector_export(whole, &x, &xl) == TOKMARK_ERR_INVALID, "export without RECORD");
        tokmark_detector_free(od);
        tokmark_keyring_free(other);
        free(again);
        tokmark_detector_free(m2);
        for (int s = 0; s < NSHARD; s++) {
            free(part[s]);
            tokmark_detector_free(shard[s]);
        }
        tokmark_detector_free(merged);
        tokmark_detector_free(whole);
        tokmark_keyring_free(ring);
    }
    free(docs);
}

/* tokmark_detector_reserve sizes the corpus sets up front: results are those
 * of sets that grew by doubling, with ample or with exhausted memory. */
static void test_reserve(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x5E5Eull);
    const uint32_t V = 3000;
    enum { NDOC = 10, LEN = 800 };
    int32_t *docs = malloc((size_t)NDOC * LEN * sizeof *docs);
    assert_non_null(docs);
    for (int k = 0; k < NDOC; k++) random_doc(&r, docs + (size_t)k * LEN, LEN, V, 0.3);
    /* tuples seen in earlier documents: across a reserve and after it */
    memcpy(docs + 7 * LEN, docs + 2 * LEN, LEN * sizeof *docs);
    memcpy(docs + 4 * LEN + LEN / 2, docs + 1 * LEN, LEN / 2 * sizeof *docs);
    for (int sch = 0; sch < 3; sch++) {
        tokmark_keyring *ring = ring_new();
        tokmark_params par;
        tu_params(&par, SCHEMES[sch], TOKMARK_SEEDING_LEFTHASH, 2, V);
        (void)ring_add(ring, &r, &par);
        tu_params(&par, SCHEMES[sch], TOKMARK_SEEDING_SELFHASH, 3, V);
        (void)ring_add(ring, &r, &par);
        for (int tiny = 0; tiny < 2; tiny++) {
            uint64_t mem = tiny ? 512 : (uint64_t)1 << 22;
            tokmark_detector *plain = mk_det(ring, mem, 0), *early = mk_det(ring, mem, 0), *late = mk_det(ring, mem, 0);
            TU_OK(tokmark_detector_reserve(early, tiny ? (uint64_t)1 << 40 : (uint64_t)NDOC * LEN));
            for (int k = 0; k < NDOC; k++) {
                if (k == NDOC / 2) TU_OK(tokmark_detector_reserve(late, (uint64_t)NDOC * LEN));
                tokmark_detector *ds[3] = {plain, early, late};
                for (int i = 0; i < 3; i++) {
                    tokmark_detector_begin(ds[i]);
                    tokmark_detector_feed(ds[i], docs + (size_t)k * LEN, LEN);
                }
            }
            for (size_t key = 0; key < 2; key++) {
                tokmark_result a, b, c;
                tokmark_detector_corpus(plain, key, &a);
                tokmark_detector_corpus(early, key, &b);
                tokmark_detector_corpus(late, key, &c);
                TU_CHECK(a.scored > 0 && (tiny ? a.dropped > 0 : a.dropped == 0 && a.duplicates > LEN),
                         "scheme %d key %zu: scored %llu dropped %llu", sch, key, (unsigned long long)a.scored,
                         (unsigned long long)a.dropped);
                CHECK_SAME(&a, &b, "scheme %d key %zu memory %llu: reserved up front differs", sch, key,
                           (unsigned long long)mem);
                CHECK_SAME(&a, &c, "scheme %d key %zu memory %llu: reserved midway differs", sch, key,
                           (unsigned long long)mem);
            }
            tokmark_detector_free(plain);
            tokmark_detector_free(early);
            tokmark_detector_free(late);
        }
        /* without dedup there is nothing to size */
        tokmark_detector *nd = mk_det(ring, 0, 0);
        TU_OK(tokmark_detector_reserve(nd, 1000));
        tokmark_detector_free(nd);
        tokmark_keyring_free(ring);
    }
    TU_CHECK(tokmark_detector_reserve(NULL, 1) == TOKMARK_ERR_INVALID, "NULL detector accepted");
    free(docs);
}

/* Deferring detectors (SPEC §7.6): documents split among three deferring
 * detectors, absorbed in input order by one detector, give exactly one
 * detector's document and corpus results and the same record, with ample
 * memory, a corpus set that fills up and a document set that fills up; and
 * the same results when every other batch shares the detector's sets. */
static void test_defer_absorb(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0xDEFEull);
    const uint32_t V = 3000;
    enum { NDOC = 14, LEN = 600, NW = 3 };
    int32_t *docs = malloc((size_t)NDOC * LEN * sizeof *docs);
    assert_non_null(docs);
    for (int k = 0; k < NDOC; k++) random_doc(&r, docs + (size_t)k * LEN, LEN, k % 4 ? V : 60, 0.3);
    memcpy(docs + 9 * LEN, docs + 2 * LEN, LEN * sizeof *docs);
    memcpy(docs + 5 * LEN + LEN / 3, docs + 4 * LEN, LEN / 2 * sizeof *docs);
    for (int sch = 0; sch < 3; sch++) {
        tokmark_keyring *ring = scheme_ring(&r, sch, V);
        size_t nk = tokmark_keyring_size(ring);
        /* config 3: every other batch shares the main detector's sets */
        for (int cfgi = 0; cfgi < 4; cfgi++) {
            uint64_t mem = cfgi == 1 ? 2048 : (uint64_t)1 << 22;
            uint32_t dt = cfgi == 2 ? 40 : 0;
            int sharing = cfgi == 3;
            tokmark_detector_config one = {mem, dt, TOKMARK_DETECT_RECORD}, main_cfg = {mem, dt, sharing ? 0 : TOKMARK_DETECT_RECORD},
                                    def = {mem, dt, TOKMARK_DETECT_DEFER};
            tokmark_detector *whole = NULL, *m = NULL, *w[NW];
            TU_OK(tokmark_detector_create(&whole, ring, &one));
            TU_OK(tokmark_detector_create(&m, ring, &main_cfg));
            for (int i = 0; i < NW; i++) TU_OK(tokmark_detector_create(&w[i], ring, &def));
            if (sharing) {
                TU_CHECK(tokmark_detector_room(m) < (uint64_t)NDOC * LEN, "room %llu before reserving",
                         (unsigned long long)tokmark_detector_room(m));
                TU_OK(tokmark_detector_reserve(m, (uint64_t)NDOC * LEN));
                TU_CHECK(tokmark_detector_room(m) >= (uint64_t)NDOC * LEN, "room %llu after reserving",
                         (unsigned long long)tokmark_detector_room(m));
            }
            /* batches of 1..3 documents, handed round the workers */
            int k = 0, b = 0, nshared = 0;
            while (k < NDOC) {
                tokmark_detector *wk = w[b % NW];
                int nb = 1 + (int)tu_below(&r, 3);
                uint64_t room0 = tokmark_detector_room(m);
                int share = sharing && b % 2 == 0 && room0 >= (uint64_t)nb * LEN;
                TU_OK(tokmark_detector_share(wk, share ? m : NULL));
                nshared += share;
                for (int j = 0; j < nb && k < NDOC; j++, k++) {
                    const int32_t *doc = docs + (size_t)k * LEN;
                    tokmark_detector_begin(whole);
                    tokmark_detector_prompt(whole, doc, 5);
                    tokmark_detector_feed(whole, doc + 5, LEN - 5);
                    tokmark_detector_begin(wk);
                    tokmark_detector_prompt(wk, doc, 5);
                    tokmark_detector_feed(wk, doc + 5, LEN - 5);
                    for (size_t key = 0; key < nk; key++) {
                        tokmark_result a, c;
                        tokmark_detector_document(whole, key, &a);
                        tokmark_detector_document(wk, key, &c);
                        CHECK_SAME(&a, &c, "scheme %d config %d doc %d key %zu: document result", sch, cfgi, k, key);
                    }
                }
                TU_OK(tokmark_detector_absorb(m, wk));
                if (share) TU_CHECK(tokmark_detector_room(m) < room0, "room does not shrink as tuples come in");
                b++;
            }
            if (sharing) TU_CHECK(nshared > 0 && nshared < b, "%d of %d batches shared", nshared, b);
            for (size_t key = 0; key < nk; key++) {
                tokmark_result a, c, e;
                tokmark_detector_corpus(whole, key, &a);
                tokmark_detector_corpus(m, key, &c);
                CHECK_SAME(&a, &c, "scheme %d config %d key %zu: absorbed corpus differs from one detector", sch,
                           cfgi, key);
                if (cfgi == 0) TU_CHECK(a.duplicates > LEN && a.dropped == 0, "config 0: duplicates expected");
                if (cfgi == 1) TU_CHECK(a.dropped > 0, "config 1: the corpus set should fill up");
                tokmark_detector_corpus(w[0], key, &e);
                TU_CHECK(e.scored == 0, "a deferring detector has no corpus result of its own once absorbed");
            }
            if (cfgi == 2) {
                tokmark_result a;
                tokmark_detector_document(whole, 0, &a);
                TU_CHECK(a.dropped > 0, "config 2: the document set should fill up");
            }
            if (sharing) { /* no record: sharing a recording detector is refused */
                TU_CHECK(tokmark_detector_share(w[0], whole) == TOKMARK_ERR_INVALID, "shared a recording detector");
                TU_CHECK(tokmark_detector_share(w[0], w[1]) == TOKMARK_ERR_INVALID, "shared a deferring detector");
                TU_CHECK(tokmark_detector_room(w[0]) == 0, "a deferring detector has room");
                for (int i = 0; i < NW; i++) tokmark_detector_free(w[i]);
                tokmark_detector_free(m);
                tokmark_detector_free(whole);
                continue;
            }
            /* the record is the same entry for entry */
            uint8_t *pa, *pb;
            size_t la, lb;
            TU_OK(tokmark_detector_export(whole, &pa, &la));
            TU_OK(tokmark_detector_export(m, &pb, &lb));
            TU_CHECK(la == lb && memcmp(pa, pb, la) == 0, "scheme %d config %d: records differ", sch, cfgi);
            /* misuse */
            TU_CHECK(tokmark_detector_absorb(m, whole) == TOKMARK_ERR_INVALID, "absorbed a non-deferring detector");
            TU_CHECK(tokmark_detector_absorb(w[0], w[1]) == TOKMARK_ERR_INVALID, "a deferring detector absorbed");
            TU_CHECK(tokmark_detector_import(w[0], pa, la) == TOKMARK_ERR_INVALID, "import into a deferring detector");
            free(pa);
            free(pb);
            for (int i = 0; i < NW; i++) tokmark_detector_free(w[i]);
            tokmark_detector_free(m);
            tokmark_detector_free(whole);
        }
        /* another ring; DEFER with RECORD or without dedup */
        tokmark_keyring *other = scheme_ring(&r, sch, V);
        tokmark_detector_config def = {(uint64_t)1 << 20, 0, TOKMARK_DETECT_DEFER};
        tokmark_detector *od = NULL, *x = NULL, *mm = mk_det(ring, (uint64_t)1 << 20, 0);
        TU_OK(tokmark_detector_create(&od, other, &def));
        TU_CHECK(tokmark_detector_absorb(mm, od) == TOKMARK_ERR_MISMATCH, "a foreign ring absorbed");
        tokmark_detector_config bad1 = {(uint64_t)1 << 20, 0, TOKMARK_DETECT_DEFER | TOKMARK_DETECT_RECORD},
                                bad2 = {0, 0, TOKMARK_DETECT_DEFER};
        TU_CHECK(tokmark_detector_create(&x, ring, &bad1) == TOKMARK_ERR_INVALID && x == NULL, "DEFER|RECORD");
        TU_CHECK(tokmark_detector_create(&x, ring, &bad2) == TOKMARK_ERR_INVALID && x == NULL, "DEFER without dedup");
        tokmark_detector_free(od);
        tokmark_detector_free(mm);
        tokmark_keyring_free(other);
        tokmark_keyring_free(ring);
    }
    free(docs);
}

/* Two threads, each with a deferring detector that shares one detector's
 * sets, over interleaved documents at the same time: absorbed, the corpus
 * result is that of one detector over all of them. */
typedef struct share_job {
    tokmark_detector *det;
    const int32_t *docs;
    int first, ndoc, len;
} share_job;

static void *share_thread(void *arg) {
    share_job *j = (share_job *)arg;
    for (int k = j->first; k < j->ndoc; k += 2) {
        tokmark_detector_begin(j->det);
        tokmark_detector_feed(j->det, j->docs + (size_t)k * (size_t)j->len, (size_t)j->len);
    }
    return NULL;
}

static void test_share_threads(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x5A4Eull);
    const uint32_t V = 3000;
    enum { NDOC = 40, LEN = 2000 };
    int32_t *docs = malloc((size_t)NDOC * LEN * sizeof *docs);
    assert_non_null(docs);
    for (int k = 0; k < NDOC; k++) random_doc(&r, docs + (size_t)k * LEN, LEN, k % 5 ? V : 50, 0.3);
    for (int k = 1; k < NDOC; k += 4) /* documents repeated across the two threads */
        memcpy(docs + (size_t)k * LEN, docs + (size_t)(k - 1) * LEN, LEN * sizeof *docs);
    for (int sch = 0; sch < 3; sch++) {
        tokmark_keyring *ring = scheme_ring(&r, sch, V);
        tokmark_detector *whole = mk_det(ring, (uint64_t)1 << 24, 0), *m = mk_det(ring, (uint64_t)1 << 24, 0);
        tokmark_detector_config def = {(uint64_t)1 << 24, 0, TOKMARK_DETECT_DEFER};
        tokmark_detector *w[2];
        TU_OK(tokmark_detector_reserve(m, (uint64_t)NDOC * LEN));
        assert_true(tokmark_detector_room(m) >= (uint64_t)NDOC * LEN);
        pthread_t th[2];
        share_job jobs[2];
        for (int i = 0; i < 2; i++) {
            TU_OK(tokmark_detector_create(&w[i], ring, &def));
            TU_OK(tokmark_detector_share(w[i], m));
            jobs[i] = (share_job){w[i], docs, i, NDOC, LEN};
            assert_int_equal(pthread_create(&th[i], NULL, share_thread, &jobs[i]), 0);
        }
        for (int k = 0; k < NDOC; k++) {
            tokmark_detector_begin(whole);
            tokmark_detector_feed(whole, docs + (size_t)k * LEN, LEN);
        }
        for (int i = 0; i < 2; i++) {
            pthread_join(th[i], NULL);
            TU_OK(tokmark_detector_absorb(m, w[i]));
        }
        for (size_t key = 0; key < tokmark_keyring_size(ring); key++) {
            tokmark_result a, c;
            tokmark_detector_corpus(whole, key, &a);
            tokmark_detector_corpus(m, key, &c);
            TU_CHECK(a.duplicates > LEN, "scheme %d: the documents should repeat tuples", sch);
            CHECK_SAME(&a, &c, "scheme %d key %zu: two sharing threads differ from one detector", sch, key);
        }
        for (int i = 0; i < 2; i++) tokmark_detector_free(w[i]);
        tokmark_detector_free(m);
        tokmark_detector_free(whole);
        tokmark_keyring_free(ring);
    }
    free(docs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scored_counts),        cmocka_unit_test(test_reference_detector),
        cmocka_unit_test(test_dedup),                cmocka_unit_test(test_bounded_memory),
        cmocka_unit_test(test_streaming_invariance), cmocka_unit_test(test_multiple_keys),
        cmocka_unit_test(test_backends),             cmocka_unit_test(test_watermarked_detected),
        cmocka_unit_test(test_null_real_text),       cmocka_unit_test(test_null_selfhash_wide),
        cmocka_unit_test(test_trace),                cmocka_unit_test(test_partial_merge),
        cmocka_unit_test(test_reserve),            cmocka_unit_test(test_defer_absorb),
        cmocka_unit_test(test_share_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
