/* test_embed.c — the embedder (SPEC.md §5, §6): distortion-freeness,
 * candidate path = full-vocabulary path, order independence, exactness of
 * the pruned Gumbel argmax, the SynthID tournament, repeated-context masking,
 * clone/reset, AES backends and out-of-range candidate ids.
 *
 * Every expected value is computed here from the public inspection API
 * (tokmark_value_u32, tokmark_is_green, tokmark_gvalues) or from first
 * principles; the PRNG has a fixed seed so that the run is deterministic. */
#include "testutil.h"

#include <limits.h>

#define V_BIG 50000u

static const tokmark_scheme SCHEMES[3] = {TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL, TOKMARK_SCHEME_SYNTHID};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static tokmark_embedder *mk_emb(const tokmark_profile *p, uint32_t max_candidates, uint32_t history) {
    tokmark_embedder_config cfg = {max_candidates, history};
    tokmark_embedder *e = NULL;
    TU_OK(tokmark_embedder_create(&e, p, &cfg));
    assert_non_null(e);
    return e;
}

/* The test's own copy of the token history, to build `prev` for inspection. */
typedef struct hist {
    int32_t t[4096];
    size_t n;
} hist;

static void hist_push(hist *h, int32_t t) {
    if (h->n == sizeof h->t / sizeof h->t[0]) {
        memmove(h->t, h->t + 2048, 2048 * sizeof h->t[0]);
        h->n -= 2048;
    }
    h->t[h->n++] = t;
}

/* The c tokens before the next candidate. */
static const int32_t *hist_prev(const hist *h, uint32_t c) { return h->t + h->n - c; }

static void push_prompt(tokmark_embedder *e, hist *h, const int32_t *ids, size_t n) {
    tokmark_embedder_prompt(e, ids, n);
    for (size_t i = 0; i < n; i++) hist_push(h, ids[i]);
}

static void push_accept(tokmark_embedder *e, hist *h, int32_t t) {
    tokmark_embedder_accept(e, t);
    hist_push(h, t);
}

/* Random logits: scale·N(0,1), a fraction pinf of them -INFINITY. */
static void random_logits(tu_rng *r, float *l, size_t n, double scale, double pinf) {
    for (size_t i = 0; i < n; i++) l[i] = tu_unif(r) < pinf ? -INFINITY : (float)(scale * tu_normal(r));
    l[tu_below(r, (uint32_t)n)] = (float)(scale * tu_normal(r)); /* at least one finite */
}

static void cand_full(tokmark_token_data *c, const float *logits, uint32_t V) {
    for (uint32_t t = 0; t < V; t++) {
        c[t].id = (int32_t)t;
        c[t].logit = logits[t];
        c[t].p = 0.0f;
    }
}

static void cand_list(tokmark_token_data *c, const int32_t *ids, const float *logits, size_t n) {
    for (size_t i = 0; i < n; i++) {
        c[i].id = ids[i];
        c[i].logit = logits[i];
        c[i].p = 0.0f;
    }
}

/* Plain softmax sampling exactly as SPEC §6.3 describes it; *near is set when
 * u·Σp lies so close to a cumulative boundary that rounding could decide. */
static int32_t ref_plain_draw(const tokmark_token_data *c, size_t n, double u, int *near) {
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (c[i].logit > mx) mx = c[i].logit;
    double *p = malloc(n * sizeof *p);
    assert_non_null(p);
    double z = 0.0;
    for (size_t i = 0; i < n; i++) {
        p[i] = c[i].logit > -INFINITY ? exp((double)c[i].logit - (double)mx) : 0.0;
        z += p[i];
    }
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        p[i] /= z;
        total += p[i];
    }
    double target = u * total, acc = 0.0;
    int32_t res = -1, last = -1;
    *near = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] <= 0.0) continue;
        acc += p[i];
        last = c[i].id;
        if (fabs(acc - target) < 1e-6) *near = 1;
        if (acc > target) {
            res = c[i].id;
            break;
        }
    }
    free(p);
    return res >= 0 ? res : last;
}

/* The Gumbel key of SPEC §5.2 (same expression as the definition). */
static double gumbel_key(float logit, uint32_t u) {
    if (u == 0 || !(logit > -INFINITY)) return -INFINITY;
    return (double)logit - log(-log((double)u * 0x1p-32));
}

/* Brute-force Gumbel argmax over candidates ids[0..n) (ids == NULL: 0..n-1),
 * u-values from the inspection API; ties to the smallest id. */
static int32_t brute_gumbel(const tokmark_profile *p, const int32_t *prev, const int32_t *ids, const float *lg,
                            size_t n) {
    int32_t best = -1;
    double bk = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        int32_t t = ids ? ids[i] : (int32_t)i;
        if (!(lg[i] > -INFINITY)) continue;
        double k = gumbel_key(lg[i], tokmark_value_u32(p, prev, t));
        if (k > bk || (k == bk && k > -INFINITY && t < best)) {
            bk = k;
            best = t;
        }
    }
    return best;
}

/* SynthID tournament computed here from tokmark_gvalues (SPEC §5.3):
 * pout[i] for candidates ids[0..n) with logits lg. */
static void ref_tournament(const tokmark_profile *p, const int32_t *prev, const int32_t *ids, const float *lg,
                           size_t n, double *pout) {
    const tokmark_params *par = tokmark_profile_params(p);
    uint32_t m = par->layers;
    uint8_t *g = malloc(n * m);
    assert_non_null(g);
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (lg[i] > mx) mx = lg[i];
    double z = 0.0;
    for (size_t i = 0; i < n; i++) {
        pout[i] = lg[i] > -INFINITY ? exp((double)lg[i] - (double)mx) : 0.0;
        z += pout[i];
        tokmark_gvalues(p, prev, ids ? ids[i] : (int32_t)i, g + i * m);
    }
    for (size_t i = 0; i < n; i++) pout[i] /= z;
    for (uint32_t l = 0; l < m; l++) {
        double E = 0.0;
        for (size_t i = 0; i < n; i++) E += pout[i] * g[i * m + l];
        for (size_t i = 0; i < n; i++) pout[i] *= 1.0 + g[i * m + l] - E;
    }
    free(g);
}

static int same_logit(float a, float b) {
    return (!(a > -INFINITY) && !(b > -INFINITY)) || a == b;
}

/* ln p of a SynthID candidate against a reference probability.  The
 * candidate path computes its softmax weights in single precision
 * (embed.c: "expf ... ample for sampling weights"), so ln p agrees to a
 * relative 1e-5 wherever p ≥ 1e-20 and below that the candidate may report
 * any tiny p or p = 0 (-inf); p itself must agree to 1e-6 absolute always. */
static int synthid_lnp_ok(float got, double ref_p) {
    double gp = got > -INFINITY ? exp((double)got) : 0.0;
    if (fabs(gp - ref_p) > 1e-6) return 0;
    if (ref_p >= 1e-20) return got > -INFINITY && fabs((double)got - log(ref_p)) <= 1e-5 * fmax(1.0, -log(ref_p));
    return !(got > -INFINITY) || (double)got < log(1e-15);
}

/* ------------------------------------------------------------------------ */
/* 1. Distortion-freeness                                                    */
/* ------------------------------------------------------------------------ */

typedef struct dist {
    const char *name;
    size_t k;
    double w[16];
} dist;

static const dist DISTS[4] = {
    {"low-entropy", 12,
     {0.86, 0.04, 0.025, 0.02, 0.015, 0.01, 0.008, 0.007, 0.005, 0.004, 0.003, 0.003}},
    {"zipf", 10, {1.0, 1.0 / 2, 1.0 / 3, 1.0 / 4, 1.0 / 5, 1.0 / 6, 1.0 / 7, 1.0 / 8, 1.0 / 9, 1.0 / 10}},
    {"high-entropy", 16, {1.0, 0.85, 0.7225, 0.614, 0.522, 0.4437, 0.3771, 0.3206, 0.2725, 0.2316, 0.1969,
                          0.1673, 0.1422, 0.1209, 0.1028, 0.0874}},
    /* Nearly uniform: KGW's marginal distortion vanishes by symmetry here, so
     * it is a distortion-freeness case but not a power case. */
    {"near-uniform", 16, {16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}},
};
#define NDISTS 4

/* Draw `draws` tokens (over `nkeys` keys, a fresh random context each) from
 * the distribution d; counts[i] counts candidate i.  Returns ln p-value of
 * the chi-square test against d. */
static double draw_counts(tu_rng *r, tokmark_scheme scheme, tokmark_seeding seeding, uint32_t h, const dist *d,
                          size_t draws, size_t nkeys, double *stat) {
    tokmark_params par;
    tu_params(&par, scheme, seeding, h, V_BIG);
    par.mask_repeated = 0;
    uint32_t c = tu_ctxlen(&par);
    size_t k = d->k;
    double p[16], z = 0.0;
    for (size_t i = 0; i < k; i++) z += d->w[i];
    for (size_t i = 0; i < k; i++) p[i] = d->w[i] / z;
    int32_t ids[16];
    float lg[16];
    tu_distinct_ids(r, ids, k, V_BIG);
    for (size_t i = 0; i < k; i++) lg[i] = (float)log(p[i]);
    uint64_t counts[16] = {0};
    for (size_t key = 0; key < nkeys; key++) {
        tokmark_profile *prof = tu_profile(r, &par);
        tokmark_embedder *e = mk_emb(prof, 0, 16);
        size_t per = draws / nkeys;
        for (size_t j = 0; j < per; j++) {
            int32_t ctx[TOKMARK_MAX_CONTEXT];
            for (uint32_t i = 0; i < c; i++) ctx[i] = tu_token(r, V_BIG);
            tokmark_embedder_prompt(e, ctx, c);
            assert_int_equal(tokmark_embedder_active(e), 1);
            tokmark_token_data cand[16];
            cand_list(cand, ids, lg, k);
            tu_shuffle_cand(r, cand, k);
            int32_t t = tokmark_embedder_sample(e, cand, k, tu_unif(r));
            size_t i = 0;
            while (i < k && ids[i] != t) i++;
            TU_CHECK(i < k, "sample returned %d, not a candidate", t);
            counts[i]++;
        }
        tokmark_embedder_free(e);
        tokmark_profile_free(prof);
    }
    return tu_chi2_gof(counts, p, k, stat);
}

static void test_distortion_free(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0xD15705710Full);
    const size_t draws = 20000, nkeys = 20;
    const tokmark_seeding seedings[2] = {TOKMARK_SEEDING_LEFTHASH, TOKMARK_SEEDING_SELFHASH};
    for (int s = 1; s <= 2; s++) { /* Gumbel, SynthID */
        for (int sd = 0; sd < 2; sd++) {
            for (int di = 0; di < NDISTS; di++) {
                double x;
                double lnp = draw_counts(&r, SCHEMES[s], seedings[sd], 3, &DISTS[di], draws, nkeys, &x);
                printf("    distortion %-8s %-8s %-12s chi2 = %7.2f (df %zu)  p = %.3g\n",
                       tokmark_scheme_name(SCHEMES[s]), tokmark_seeding_name(seedings[sd]), DISTS[di].name, x,
                       DISTS[di].k - 1, exp(lnp));
                TU_CHECK(lnp > log(1e-4), "%s/%s %s: the sampled frequencies do not match p (chi2 %.2f, p %.3g)",
                         tokmark_scheme_name(SCHEMES[s]), tokmark_seeding_name(seedings[sd]), DISTS[di].name, x,
                         exp(lnp));
            }
        }
    }
    /* Power: KGW (δ = 2) shifts each draw toward its green tokens; averaged
     * over keys this flattens a non-uniform p, which the same chi-square test
     * must detect (not for the near-uniform case, where it cancels). */
    for (int sd = 0; sd < 2; sd++) {
        for (int di = 0; di < 3; di++) {
            double x;
            double lnp = draw_counts(&r, TOKMARK_SCHEME_KGW, seedings[sd], 3, &DISTS[di], 3 * draws, nkeys, &x);
            printf("    distortion kgw      %-8s %-12s chi2 = %9.1f  ln p = %.1f (must reject)\n",
                   tokmark_seeding_name(seedings[sd]), DISTS[di].name, x, lnp);
            TU_CHECK(lnp < log(1e-10), "KGW %s %s: chi-square does not reject (ln p %.2f): the test has no power",
                     tokmark_seeding_name(seedings[sd]), DISTS[di].name, lnp);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* 2. Candidate path = full-vocabulary path                                  */
/* ------------------------------------------------------------------------ */

static void check_paths(tu_rng *r, tokmark_scheme scheme, tokmark_seeding seeding, uint32_t h) {
    const uint32_t V = 1000;
    tokmark_params par;
    tu_params(&par, scheme, seeding, h, V);
    par.mask_repeated = 0;
    uint32_t c = tu_ctxlen(&par);
    tokmark_profile *prof = tu_profile(r, &par);
    tokmark_embedder *e = mk_emb(prof, 0, 0);
    float *lg = malloc(V * sizeof *lg), *full = malloc(V * sizeof *full);
    tokmark_token_data *cs = malloc(V * sizeof *cs), *cd = malloc(V * sizeof *cd);
    double *pref = malloc(V * sizeof *pref);
    assert_true(lg && full && cs && cd && pref);
    hist hh = {{0}, 0};
    size_t active_steps = 0, differs_from_input = 0;
    for (int step = 0; step < 40; step++) {
        if (step == 0) {
            tokmark_embedder_reset(e);
            hh.n = 0;
        } else {
            push_accept(e, &hh, tu_token(r, V));
        }
        int active = tokmark_embedder_active(e);
        TU_CHECK(active == (hh.n >= c), "active = %d after %zu tokens, c = %u", active, hh.n, c);
        active_steps += (size_t)active;
        random_logits(r, lg, V, 3.0, 0.05);
        double u = tu_unif(r);

        /* sampling: full vector vs candidates in id order (and shuffled for Gumbel).  KGW,
         * SynthID and inactive steps draw by walking the cumulative p in array order (SPEC
         * §6.3), so the same u picks the same token only when both walks run in the same
         * order; Gumbel ignores u and must agree for any order.  (The candidate path uses
         * single-precision softmax weights, so a u within ~1e-7 of a cumulative boundary
         * could legitimately differ; with these seeds none does.) */
        int32_t tf = tokmark_embedder_sample_logits(e, lg, u);
        cand_full(cs, lg, V);
        int32_t ts = tokmark_embedder_sample(e, cs, V, u);
        TU_CHECK(tf == ts, "%s step %d: sample_logits chose %d, sample on all V candidates chose %d",
                 tu_cfg_name(&par), step, tf, ts);
        if (scheme == TOKMARK_SCHEME_GUMBEL && active) {
            cand_full(cs, lg, V);
            tu_shuffle_cand(r, cs, V);
            int32_t tsh = tokmark_embedder_sample(e, cs, V, u);
            TU_CHECK(tf == tsh, "%s step %d: Gumbel on shuffled candidates chose %d, full path %d",
                     tu_cfg_name(&par), step, tsh, tf);
            int32_t tb = brute_gumbel(prof, hist_prev(&hh, c), NULL, lg, V);
            TU_CHECK(tf == tb, "%s step %d: Gumbel chose %d, brute force %d", tu_cfg_name(&par), step, tf, tb);
        }

        /* apply: full vector vs shuffled candidates, per id */
        memcpy(full, lg, V * sizeof *lg);
        tokmark_embedder_apply_logits(e, full);
        cand_full(cd, lg, V);
        tu_shuffle_cand(r, cd, V);
        tokmark_embedder_apply(e, cd, V);
        if (scheme == TOKMARK_SCHEME_SYNTHID && active)
            ref_tournament(prof, hist_prev(&hh, c), NULL, lg, V, pref);
        size_t finite_full = 0, finite_cand = 0;
        double psum = 0.0;
        for (uint32_t i = 0; i < V; i++) {
            int32_t id = cd[i].id;
            float a = cd[i].logit, b = full[id], orig = lg[id];
            psum += (double)cd[i].p;
            finite_cand += a > -INFINITY;
            finite_full += full[i] > -INFINITY;
            if (!same_logit(full[i], lg[i])) differs_from_input++;
            if (!active || scheme == TOKMARK_SCHEME_KGW) {
                TU_CHECK(same_logit(a, b), "%s step %d id %d: apply %.9g, apply_logits %.9g", tu_cfg_name(&par),
                         step, id, (double)a, (double)b);
                int green = active ? tokmark_is_green(prof, hist_prev(&hh, c), id) : 0;
                float expect = green ? orig + (float)par.delta : orig;
                TU_CHECK(same_logit(b, expect), "%s step %d id %d (green %d): logit %.9g -> %.9g, expected %.9g",
                         tu_cfg_name(&par), step, id, green, (double)orig, (double)b, (double)expect);
            } else if (scheme == TOKMARK_SCHEME_GUMBEL) {
                TU_CHECK(same_logit(a, b), "%s step %d id %d: apply %.9g, apply_logits %.9g", tu_cfg_name(&par),
                         step, id, (double)a, (double)b);
                if (id == tf) TU_CHECK(a == orig, "Gumbel: chosen id %d lost its logit", id);
                else TU_CHECK(!(a > -INFINITY), "Gumbel: id %d (not chosen) kept logit %g", id, (double)a);
            } else {
                TU_CHECK(synthid_lnp_ok(a, b > -INFINITY ? exp((double)b) : 0.0),
                         "%s step %d id %d: ln p %.9g (candidates) vs %.9g (full)", tu_cfg_name(&par), step, id,
                         (double)a, (double)b);
                double lr = pref[id] > 0.0 ? log(pref[id]) : -INFINITY;
                TU_CHECK((!(lr > -INFINITY) && !(b > -INFINITY)) ||
                             fabs((double)b - lr) <= 1e-5 * fmax(1.0, fabs(lr)),
                         "%s step %d id %d: ln p %.9g, tournament from tokmark_gvalues %.9g", tu_cfg_name(&par),
                         step, id, (double)b, lr);
            }
        }
        if (scheme == TOKMARK_SCHEME_GUMBEL && active) {
            TU_CHECK(finite_cand == 1 && finite_full == 1, "Gumbel: %zu/%zu finite logits after apply",
                     finite_cand, finite_full);
        }
        TU_CHECK(fabs(psum - 1.0) < 1e-5, "%s step %d: apply's p sums to %.9g", tu_cfg_name(&par), step, psum);
    }
    TU_CHECK(active_steps >= 30, "only %zu active steps", active_steps);
    TU_CHECK(differs_from_input > 0, "%s: apply_logits never changed a logit", tu_cfg_name(&par));
    free(lg);
    free(full);
    free(cs);
    free(cd);
    free(pref);
    tokmark_embedder_free(e);
    tokmark_profile_free(prof);
}

static void test_candidate_vs_full(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0xCA7D1DA7Eull);
    for (int s = 0; s < 3; s++) {
        check_paths(&r, SCHEMES[s], TOKMARK_SEEDING_LEFTHASH, 3);
        check_paths(&r, SCHEMES[s], TOKMARK_SEEDING_SELFHASH, 3);
    }
}

/* ------------------------------------------------------------------------ */
/* 3. Order independence                                                     */
/* ------------------------------------------------------------------------ */

static void test_order_independence(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x0DE41DEull);
    enum { K = 64 };
    const tokmark_seeding seedings[2] = {TOKMARK_SEEDING_LEFTHASH, TOKMARK_SEEDING_SELFHASH};
    for (int sd = 0; sd < 2; sd++) {
        /* Gumbel: the choice is a function of the candidate set, not of its order. */
        tokmark_params par;
        tu_params(&par, TOKMARK_SCHEME_GUMBEL, seedings[sd], 2, V_BIG);
        par.mask_repeated = 0;
        uint32_t c = tu_ctxlen(&par);
        tokmark_profile *prof = tu_profile(&r, &par);
        tokmark_embedder *e = mk_emb(prof, 0, 0);
        hist hh = {{0}, 0};
        for (uint32_t i = 0; i < c; i++) push_prompt(e, &hh, (int32_t[]){tu_token(&r, V_BIG)}, 1);
        size_t distinct_choices = 0;
        int32_t first_choice = -1;
        for (int ctx = 0; ctx < 200; ctx++) {
            int32_t ids[K];
            float lg[K];
            tu_distinct_ids(&r, ids, K, V_BIG);
            random_logits(&r, lg, K, 1.5, 0.1);
            int32_t ref = brute_gumbel(prof, hist_prev(&hh, c), ids, lg, K);
            for (int rep = 0; rep < 4; rep++) {
                tokmark_token_data cand[K];
                cand_list(cand, ids, lg, K);
                if (rep > 0) tu_shuffle_cand(&r, cand, K);
                int32_t t = tokmark_embedder_sample(e, cand, K, tu_unif(&r));
                TU_CHECK(t == ref, "Gumbel %s ctx %d order %d: chose %d, brute force %d",
                         tokmark_seeding_name(seedings[sd]), ctx, rep, t, ref);
                cand_list(cand, ids, lg, K);
                tu_shuffle_cand(&r, cand, K);
                tokmark_embedder_apply(e, cand, K);
                for (int i = 0; i < K; i++)
                    TU_CHECK((cand[i].id == ref) == (cand[i].logit > -INFINITY),
                             "Gumbel apply: id %d logit %g (chosen %d)", cand[i].id, (double)cand[i].logit, ref);
            }
            if (ctx == 0) first_choice = ref;
            else distinct_choices += ref != first_choice;
            push_accept(e, &hh, tu_token(&r, V_BIG));
        }
        TU_CHECK(distinct_choices > 100, "Gumbel choices hardly vary (%zu)", distinct_choices);
        tokmark_embedder_free(e);
        tokmark_profile_free(prof);

        /* KGW: the bias of a candidate depends on its id, not its index. */
        tu_params(&par, TOKMARK_SCHEME_KGW, seedings[sd], 2, V_BIG);
        par.mask_repeated = 0;
        prof = tu_profile(&r, &par);
        e = mk_emb(prof, 0, 0);
        hh.n = 0;
        for (uint32_t i = 0; i < c; i++) push_prompt(e, &hh, (int32_t[]){tu_token(&r, V_BIG)}, 1);
        size_t greens = 0, total = 0;
        for (int ctx = 0; ctx < 40; ctx++) {
            int32_t ids[K];
            float lg[K];
            tu_distinct_ids(&r, ids, K, V_BIG);
            random_logits(&r, lg, K, 1.5, 0.0);
            for (int rep = 0; rep < 3; rep++) {
                tokmark_token_data cand[K];
                cand_list(cand, ids, lg, K);
                tu_shuffle_cand(&r, cand, K);
                tokmark_embedder_apply(e, cand, K);
                for (int i = 0; i < K; i++) {
                    int j = 0;
                    while (ids[j] != cand[i].id) j++;
                    int green = tokmark_is_green(prof, hist_prev(&hh, c), cand[i].id);
                    float expect = green ? lg[j] + (float)par.delta : lg[j];
                    TU_CHECK(cand[i].logit == expect, "KGW %s: id %d at index %d: logit %.9g, expected %.9g (green %d)",
                             tokmark_seeding_name(seedings[sd]), cand[i].id, i, (double)cand[i].logit,
                             (double)expect, green);
                    greens += (size_t)green;
                    total++;
                }
            }
            push_accept(e, &hh, tu_token(&r, V_BIG));
        }
        /* γ = 1/4: the green fraction must be near it (the check has teeth) */
        double frac = (double)greens / (double)total;
        TU_CHECK(frac > 0.2 && frac < 0.3, "KGW green fraction %.3f", frac);
        tokmark_embedder_free(e);
        tokmark_profile_free(prof);
    }
}

/* ------------------------------------------------------------------------ */
/* 4. Full-vocabulary Gumbel pruning is exact                                */
/* ------------------------------------------------------------------------ */

static void scenario_logits(tu_rng *r, int kind, float *l, uint32_t V) {
    switch (kind) {
    case 0: /* realistic: a few large values, many small quantised (equal) ones, ties, -inf */
        for (uint32_t t = 0; t < V; t++) {
            if (tu_unif(r) < 0.05) l[t] = -INFINITY;
            else l[t] = (float)(floor((-8.0 + 2.0 * tu_normal(r)) * 2.0) / 2.0);
        }
        for (int i = 0; i < 20; i++) l[tu_below(r, V)] = (float)(4.0 + 8.0 * tu_unif(r));
        {
            float mx = -INFINITY;
            for (uint32_t t = 0; t < V; t++) mx = l[t] > mx ? l[t] : mx;
            for (int i = 0; i < 3; i++) l[tu_below(r, V)] = mx; /* ties at the top */
        }
        break;
    case 1: /* flat: every logit equal */
        for (uint32_t t = 0; t < V; t++) l[t] = 0.0f;
        break;
    case 2: /* one dominant token */
        for (uint32_t t = 0; t < V; t++) l[t] = (float)tu_normal(r);
        l[tu_below(r, V)] = 40.0f;
        break;
    case 3: /* almost everything excluded */
        for (uint32_t t = 0; t < V; t++) l[t] = -INFINITY;
        for (int i = 0; i < 10; i++) l[tu_below(r, V)] = (float)tu_normal(r);
        break;
    case 4: /* large positive magnitudes, two plateaus */
        for (uint32_t t = 0; t < V; t++) l[t] = tu_unif(r) < 0.5 ? 1000.0f : 1003.0f;
        break;
    case 5: /* large negative magnitudes, smooth */
        for (uint32_t t = 0; t < V; t++) l[t] = (float)(-1e4 + 4.0 * tu_normal(r));
        break;
    default: /* the contest is decided among the last ids (V is not a multiple of 16: the
              * vector scan leaves them to its scalar tail) */
        for (uint32_t t = 0; t < V; t++) l[t] = (float)tu_normal(r);
        for (uint32_t t = V - 15; t < V; t++) l[t] = 20.0f;
        break;
    }
}

static void test_gumbel_pruning_exact(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x9E3B1ull);
    const uint32_t V = V_BIG + 15; /* not a multiple of 16 or of a chunk: scalar tails are used */
    float *lg = malloc(V * sizeof *lg), *full = malloc(V * sizeof *full);
    assert_true(lg && full);
    const tokmark_seeding seedings[2] = {TOKMARK_SEEDING_LEFTHASH, TOKMARK_SEEDING_SELFHASH};
    const int ctxs[2] = {28, 14};
    for (int sd = 0; sd < 2; sd++) {
        tokmark_params par;
        tu_params(&par, TOKMARK_SCHEME_GUMBEL, seedings[sd], sd == 0 ? 1 : 2, V);
        par.mask_repeated = 0;
        uint32_t c = tu_ctxlen(&par);
        tokmark_profile *prof = tu_profile(&r, &par);
        tokmark_embedder *e = mk_emb(prof, 0, 0);
        hist hh = {{0}, 0};
        push_prompt(e, &hh, (int32_t[]){tu_token(&r, V)}, 1);
        for (int k = 0; k < ctxs[sd]; k++) {
            int kind = k % 7;
            scenario_logits(&r, kind, lg, V);
            int32_t ref = brute_gumbel(prof, hist_prev(&hh, c), NULL, lg, V);
            int32_t got = tokmark_embedder_sample_logits(e, lg, tu_unif(&r));
            TU_CHECK(got == ref, "Gumbel %s scenario %d ctx %d: sample_logits chose %d (logit %g), brute force %d "
                                 "(logit %g)",
                     tokmark_seeding_name(seedings[sd]), kind, k, got, got >= 0 ? (double)lg[got] : 0.0, ref,
                     ref >= 0 ? (double)lg[ref] : 0.0);
            memcpy(full, lg, V * sizeof *lg);
            tokmark_embedder_apply_logits(e, full);
            for (uint32_t t = 0; t < V; t++) {
                if ((int32_t)t == ref) TU_CHECK(full[t] == lg[t], "apply_logits changed the chosen logit");
                else TU_CHECK(!(full[t] > -INFINITY), "apply_logits left id %u finite (chosen %d)", t, ref);
            }
            push_accept(e, &hh, got);
        }
        tokmark_embedder_free(e);
        tokmark_profile_free(prof);
    }
    /* Tiny vocabularies: everything (V = 15) or the last 15 ids (V = 31) go
     * through the scalar scan, which is also what machines without AVX2 use. */
    const uint32_t tiny[2] = {15, 31};
    for (int sd = 0; sd < 2; sd++) {
        for (int vi = 0; vi < 2; vi++) {
            tokmark_params par;
            tu_params(&par, TOKMARK_SCHEME_GUMBEL, seedings[sd], 2, tiny[vi]);
            par.mask_repeated = 0;
            uint32_t c = tu_ctxlen(&par);
            tokmark_profile *prof = tu_profile(&r, &par);
            tokmark_embedder *e = mk_emb(prof, 0, 0);
            hist hh = {{0}, 0};
            for (uint32_t i = 0; i < c; i++) push_prompt(e, &hh, (int32_t[]){tu_token(&r, tiny[vi])}, 1);
            for (int k = 0; k < 400; k++) {
                float tl[31];
                for (uint32_t t = 0; t < tiny[vi]; t++) tl[t] = k % 2 ? (float)(2.0 * tu_normal(&r)) : 3.0f;
                int32_t ref = brute_gumbel(prof, hist_prev(&hh, c), NULL, tl, tiny[vi]);
                int32_t got = tokmark_embedder_sample_logits(e, tl, tu_unif(&r));
                TU_CHECK(got == ref, "Gumbel %s V=%u ctx %d: sample_logits chose %d, brute force %d",
                         tokmark_seeding_name(seedings[sd]), tiny[vi], k, got, ref);
                push_accept(e, &hh, tu_token(&r, tiny[vi]));
            }
            tokmark_embedder_free(e);
            tokmark_profile_free(prof);
        }
    }
    free(lg);
    free(full);
}

/* ------------------------------------------------------------------------ */
/* 5. SynthID tournament                                                     */
/* ------------------------------------------------------------------------ */

static void test_synthid_tournament(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x5717D1Dull);
    enum { K = 300 };
    const tokmark_seeding seedings[2] = {TOKMARK_SEEDING_LEFTHASH, TOKMARK_SEEDING_SELFHASH};
    for (int sd = 0; sd < 2; sd++) {
        tokmark_params par;
        tu_params(&par, TOKMARK_SCHEME_SYNTHID, seedings[sd], 2, V_BIG);
        par.mask_repeated = 0;
        uint32_t c = tu_ctxlen(&par);
        tokmark_profile *prof = tu_profile(&r, &par);
        tokmark_embedder *e = mk_emb(prof, 0, 0);
        hist hh = {{0}, 0};
        for (uint32_t i = 0; i < c; i++) push_prompt(e, &hh, (int32_t[]){tu_token(&r, V_BIG)}, 1);
        double maxdev = 0.0;
        size_t compared = 0, changed = 0;
        for (int ctx = 0; ctx < 20; ctx++) {
            int32_t ids[K];
            float lg[K];
            double pref[K];
            tu_distinct_ids(&r, ids, K, V_BIG);
            random_logits(&r, lg, K, ctx % 2 ? 3.0 : 0.5, 0.05);
            ref_tournament(prof, hist_prev(&hh, c), ids, lg, K, pref);
            tokmark_token_data cand[K];
            cand_list(cand, ids, lg, K);
            tokmark_embedder_apply(e, cand, K);
            double psum = 0.0, esum = 0.0;
            for (int i = 0; i < K; i++) {
                psum += (double)cand[i].p;
                if (cand[i].logit > -INFINITY) esum += exp((double)cand[i].logit);
                double dev = fabs((double)cand[i].p - pref[i]);
                if (dev > maxdev) maxdev = dev;
                TU_CHECK(dev <= 1e-6 + 1e-5 * pref[i], "SynthID id %d: p %.9g, from tokmark_gvalues %.9g", ids[i],
                         (double)cand[i].p, pref[i]);
                TU_CHECK(synthid_lnp_ok(cand[i].logit, pref[i]), "SynthID id %d: logit %.9g, ln p %.9g", ids[i],
                         (double)cand[i].logit, pref[i] > 0.0 ? log(pref[i]) : -INFINITY);
                compared++;
            }
            TU_CHECK(fabs(psum - 1.0) < 1e-6, "SynthID: Σp = %.12g after apply", psum);
            TU_CHECK(fabs(esum - 1.0) < 1e-5, "SynthID: Σexp(logit) = %.12g after apply", esum);
            /* the tournament must actually move probability (power of the comparison) */
            {
                float mx = -INFINITY;
                double z = 0.0;
                for (int i = 0; i < K; i++) mx = lg[i] > mx ? lg[i] : mx;
                for (int i = 0; i < K; i++) z += lg[i] > -INFINITY ? exp((double)lg[i] - mx) : 0.0;
                for (int i = 0; i < K; i++) {
                    double p0 = lg[i] > -INFINITY ? exp((double)lg[i] - mx) / z : 0.0;
                    if (fabs(p0 - pref[i]) > 1e-3 * p0 + 1e-9) changed++;
                }
            }
            /* sample() draws from the tournament distribution in candidate order */
            for (int rep = 0; rep < 5; rep++) {
                double u = tu_unif(&r);
                double acc = 0.0, tot = 0.0;
                int32_t want = -1;
                int near = 0;
                for (int i = 0; i < K; i++) tot += pref[i];
                for (int i = 0; i < K; i++) {
                    if (pref[i] <= 0.0) continue;
                    acc += pref[i];
                    if (fabs(acc - u * tot) < 1e-6) near = 1;
                    if (acc > u * tot) {
                        want = ids[i];
                        break;
                    }
                }
                cand_list(cand, ids, lg, K);
                int32_t got = tokmark_embedder_sample(e, cand, K, u);
                if (!near) TU_CHECK(got == want, "SynthID sample(u=%.6f) = %d, expected %d", u, got, want);
            }
            push_accept(e, &hh, tu_token(&r, V_BIG));
        }
        TU_CHECK(changed > (size_t)K, "the tournament left p almost unchanged (%zu changed)", changed);
        printf("    synthid %s: %zu candidate probabilities, max |p - p_ref| = %.2g\n",
               tokmark_seeding_name(seedings[sd]), compared, maxdev);

        /* full vocabulary: apply_logits against the same reference */
        const uint32_t V = 2000;
        tokmark_params pv = par;
        pv.vocab_size = V;
        tokmark_profile *pp = tu_profile(&r, &pv);
        tokmark_embedder *ev = mk_emb(pp, 0, 0);
        hist hv = {{0}, 0};
        float *lg = malloc(V * sizeof *lg), *full = malloc(V * sizeof *full);
        double *pref = malloc(V * sizeof *pref);
        assert_true(lg && full && pref);
        for (uint32_t i = 0; i < c; i++) push_prompt(ev, &hv, (int32_t[]){tu_token(&r, V)}, 1);
        for (int ctx = 0; ctx < 6; ctx++) {
            random_logits(&r, lg, V, 2.0, 0.05);
            ref_tournament(pp, hist_prev(&hv, c), NULL, lg, V, pref);
            memcpy(full, lg, V * sizeof *lg);
            tokmark_embedder_apply_logits(ev, full);
            double esum = 0.0;
            for (uint32_t t = 0; t < V; t++) {
                double lr = pref[t] > 0.0 ? log(pref[t]) : -INFINITY;
                if (full[t] > -INFINITY) esum += exp((double)full[t]);
                TU_CHECK((!(lr > -INFINITY) && !(full[t] > -INFINITY)) ||
                             fabs((double)full[t] - lr) <= 1e-5 * fmax(1.0, fabs(lr)),
                         "SynthID full id %u: ln p %.9g, reference %.9g", t, (double)full[t], lr);
            }
            TU_CHECK(fabs(esum - 1.0) < 1e-5, "SynthID full: Σp = %.12g", esum);
            push_accept(ev, &hv, tu_token(&r, V));
        }
        free(lg);
        free(full);
        free(pref);
        tokmark_embedder_free(ev);
        tokmark_profile_free(pp);
        tokmark_embedder_free(e);
        tokmark_profile_free(prof);
    }
}

/* ------------------------------------------------------------------------ */
/* 6. Masking, reset, clone                                                  */
/* ------------------------------------------------------------------------ */

/* In a masked (inactive) state, sample() is plain softmax sampling with u. */
static void check_plain(tu_rng *r, tokmark_embedder *e, const char *what) {
    enum { K = 24 };
    int32_t ids[K];
    float lg[K];
    tu_distinct_ids(r, ids, K, 1000);
    random_logits(r, lg, K, 1.0, 0.1);
    for (int rep = 0; rep < 50; rep++) {
        tokmark_token_data cand[K];
        cand_list(cand, ids, lg, K);
        double u = tu_unif(r);
        int near;
        int32_t want = ref_plain_draw(cand, K, u, &near);
        int32_t got = tokmark_embedder_sample(e, cand, K, u);
        if (!near) TU_CHECK(got == want, "%s: inactive sample(u=%.6f) = %d, plain softmax gives %d", what, u, got, want);
        cand_list(cand, ids, lg, K);
        tokmark_embedder_apply(e, cand, K);
        for (int i = 0; i < K; i++)
            TU_CHECK(same_logit(cand[i].logit, lg[i]), "%s: inactive apply changed logit of %d", what, ids[i]);
    }
}

/* Gumbel, active: the choice does not depend on u; returns the number of
 * different tokens seen over 50 values of u. */
static size_t gumbel_u_variety(tu_rng *r, tokmark_embedder *e) {
    enum { K = 24 };
    int32_t ids[K], seen[50];
    float lg[K];
    size_t ns = 0;
    tu_distinct_ids(r, ids, K, 1000);
    for (int i = 0; i < K; i++) lg[i] = 0.0f;
    for (int rep = 0; rep < 50; rep++) {
        tokmark_token_data cand[K];
        cand_list(cand, ids, lg, K);
        int32_t t = tokmark_embedder_sample(e, cand, K, tu_unif(r));
        size_t j = 0;
        while (j < ns && seen[j] != t) j++;
        if (j == ns) seen[ns++] = t;
    }
    return ns;
}

static void test_masking(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x3A5C1ull);
    for (int s = 0; s < 3; s++) {
        tokmark_params par;
        tu_params(&par, SCHEMES[s], TOKMARK_SEEDING_LEFTHASH, 2, 1000);
        par.mask_repeated = 1;
        const char *nm = tokmark_scheme_name(SCHEMES[s]);
        tokmark_profile *prof = tu_profile(&r, &par);
        tokmark_embedder *e = mk_emb(prof, 0, 0);
        const int32_t x = 11, y = 22, a = 33, b = 44;

        /* the first c tokens are inactive */
        TU_CHECK(tokmark_embedder_active(e) == 0, "%s: active with an empty history", nm);
        tokmark_embedder_accept(e, x);
        TU_CHECK(tokmark_embedder_active(e) == 0, "%s: active after 1 of 2 context tokens", nm);
        check_plain(&r, e, "first tokens");
        tokmark_embedder_accept(e, y);
        TU_CHECK(tokmark_embedder_active(e) == 1, "%s: inactive with a full fresh context", nm);

        /* generated: (x,y) -> a -> b -> x -> y brings back context (x,y) */
        tokmark_embedder_accept(e, a); /* remembers (x,y) */
        TU_CHECK(tokmark_embedder_active(e) == 1, "%s: context (y,a) is new", nm);
        tokmark_embedder_accept(e, b);
        tokmark_embedder_accept(e, x);
        tokmark_embedder_accept(e, y);
        TU_CHECK(tokmark_embedder_active(e) == 0, "%s: repeated context (x,y) is still active", nm);
        check_plain(&r, e, "masked context");
        if (SCHEMES[s] == TOKMARK_SCHEME_GUMBEL) {
            size_t v = gumbel_u_variety(&r, e);
            TU_CHECK(v > 1, "Gumbel masked: the choice ignores u (%zu tokens)", v);
        }

        /* clone: same history; same choices; independent afterwards */
        tokmark_embedder *cl = NULL;
        TU_OK(tokmark_embedder_clone(&cl, e));
        TU_CHECK(tokmark_embedder_active(cl) == 0, "%s: clone lost the masked state", nm);
        tokmark_embedder_accept(e, a);
        tokmark_embedder_accept(cl, a);
        TU_CHECK(tokmark_embedder_active(e) == 0 && tokmark_embedder_active(cl) == 0,
                 "%s: (y,a) was remembered, orig %d clone %d", nm, tokmark_embedder_active(e),
                 tokmark_embedder_active(cl));
        int32_t z = 55, w = 66;
        tokmark_embedder_accept(e, z);  /* orig remembers (y,a)->(a,z)... */
        tokmark_embedder_accept(cl, z);
        TU_CHECK(tokmark_embedder_active(e) == 1 && tokmark_embedder_active(cl) == 1, "%s: (a,z) is new", nm);
        for (int step = 0; step < 20; step++) { /* same choices */
            enum { K = 32 };
            int32_t ids[K];
            float lg[K];
            tu_distinct_ids(&r, ids, K, 1000);
            random_logits(&r, lg, K, 1.0, 0.0);
            double u = tu_unif(&r);
            tokmark_token_data c1[K], c2[K];
            cand_list(c1, ids, lg, K);
            cand_list(c2, ids, lg, K);
            int32_t t1 = tokmark_embedder_sample(e, c1, K, u), t2 = tokmark_embedder_sample(cl, c2, K, u);
            TU_CHECK(t1 == t2, "%s: clone chose %d, original %d", nm, t2, t1);
            for (int i = 0; i < K; i++)
                TU_CHECK(same_logit(c1[i].logit, c2[i].logit), "%s: clone and original differ after apply", nm);
            tokmark_embedder_accept(e, t1);
            tokmark_embedder_accept(cl, t2);
            TU_CHECK(tokmark_embedder_active(e) == tokmark_embedder_active(cl), "%s: active differs", nm);
        }
        /* independence: the original remembers (p,q) (p q w), the clone does not */
        const int32_t pq[2] = {77, 88};
        tokmark_embedder_accept(e, pq[0]);
        tokmark_embedder_accept(e, pq[1]);
        tokmark_embedder_accept(e, w); /* remembers (77,88) in e only */
        tokmark_embedder_prompt(cl, pq, 2);
        tokmark_embedder_accept(e, pq[0]);
        tokmark_embedder_accept(e, pq[1]);
        TU_CHECK(tokmark_embedder_active(e) == 0, "%s: original forgot (77,88)", nm);
        TU_CHECK(tokmark_embedder_active(cl) == 1, "%s: the clone shares the original's history", nm);
        tokmark_embedder_free(cl);

        /* prompt tokens do not mark contexts */
        tokmark_embedder_reset(e);
        const int32_t pr[8] = {x, y, x, y, x, y, x, y};
        tokmark_embedder_prompt(e, pr, 8);
        TU_CHECK(tokmark_embedder_active(e) == 1, "%s: prompt tokens marked context (x,y)", nm);
        tokmark_embedder_accept(e, x); /* generated: remembers (x,y) */
        tokmark_embedder_accept(e, y); /* remembers (y,x); context (x,y) again */
        TU_CHECK(tokmark_embedder_active(e) == 0, "%s: generated repeat after prompt not masked", nm);

        /* reset clears the history, including the first-c rule */
        tokmark_embedder_reset(e);
        TU_CHECK(tokmark_embedder_active(e) == 0, "%s: active right after reset", nm);
        tokmark_embedder_accept(e, x);
        tokmark_embedder_accept(e, y);
        TU_CHECK(tokmark_embedder_active(e) == 1, "%s: reset did not clear the remembered contexts", nm);
        if (SCHEMES[s] == TOKMARK_SCHEME_GUMBEL) {
            size_t v = gumbel_u_variety(&r, e);
            TU_CHECK(v == 1, "Gumbel active: the choice depends on u (%zu tokens)", v);
        }
        tokmark_embedder_free(e);

        /* mask_repeated = 0: the repeated context stays active */
        tokmark_params p0 = par;
        p0.mask_repeated = 0;
        tokmark_profile *prof0 = tu_profile(&r, &p0);
        e = mk_emb(prof0, 0, 0);
        const int32_t seq[6] = {x, y, a, b, x, y};
        for (int i = 0; i < 6; i++) tokmark_embedder_accept(e, seq[i]);
        TU_CHECK(tokmark_embedder_active(e) == 1, "%s: mask_repeated 0 but the repeated context is inactive", nm);
        for (int i = 0; i < 6; i++) tokmark_embedder_accept(e, seq[i]);
        TU_CHECK(tokmark_embedder_active(e) == 1, "%s: mask_repeated 0 but inactive", nm);
        tokmark_embedder_free(e);
        tokmark_profile_free(prof0);

        /* history_capacity: once full, new contexts are not remembered */
        e = mk_emb(prof, 0, 2);
        const int32_t s2[6] = {1, 2, 3, 4, 5, 6};
        for (int i = 0; i < 6; i++) tokmark_embedder_accept(e, s2[i]); /* remembers (1,2),(2,3) only */
        tokmark_embedder_accept(e, 1);
        tokmark_embedder_accept(e, 2);
        TU_CHECK(tokmark_embedder_active(e) == 0, "%s: (1,2) was remembered", nm);
        tokmark_embedder_accept(e, 9);
        tokmark_embedder_accept(e, 4);
        tokmark_embedder_accept(e, 5);
        TU_CHECK(tokmark_embedder_active(e) == 1, "%s: (4,5) remembered beyond history_capacity", nm);
        tokmark_embedder_free(e);
        tokmark_profile_free(prof);
    }
    tokmark_embedder_free(NULL); /* no-op */
}

/* ------------------------------------------------------------------------ */
/* 7. Backends                                                               */
/* ------------------------------------------------------------------------ */

typedef struct trace {
    int32_t choice[6][120];
    uint64_t apply_hash[6];
    uint64_t nonce[6][20];
    uint32_t u32[6][20];
    uint8_t g[6][20][30];
    uint8_t blk[6][20][16];
} trace;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

static void run_trace(trace *tr) {
    tu_rng r;
    tu_seed(&r, 0xBAC6E7Dull);
    const uint32_t V = 3000;
    float *lg = malloc(V * sizeof *lg);
    assert_non_null(lg);
    memset(tr, 0, sizeof *tr);
    for (int cfg = 0; cfg < 6; cfg++) {
        tokmark_params par;
        tu_params(&par, SCHEMES[cfg / 2], cfg % 2 ? TOKMARK_SEEDING_SELFHASH : TOKMARK_SEEDING_LEFTHASH, 3, V);
        uint32_t c = tu_ctxlen(&par);
        tokmark_profile *prof = tu_profile(&r, &par);
        tokmark_embedder *e = mk_emb(prof, 0, 0);
        hist hh = {{0}, 0};
        uint64_t ah = 0xCBF29CE484222325ull;
        for (int step = 0; step < 120; step++) {
            int32_t t;
            random_logits(&r, lg, V, 2.0, 0.02);
            if (step % 3 == 0) {
                t = tokmark_embedder_sample_logits(e, lg, tu_unif(&r));
                tokmark_embedder_apply_logits(e, lg);
                ah = fnv(ah, lg, V * sizeof *lg);
            } else {
                enum { K = 40 };
                int32_t ids[K];
                tokmark_token_data cand[K];
                tu_distinct_ids(&r, ids, K, V);
                cand_list(cand, ids, lg, K);
                t = tokmark_embedder_sample(e, cand, K, tu_unif(&r));
                ah = fnv(ah, cand, sizeof cand);
            }
            tr->choice[cfg][step] = t;
            push_accept(e, &hh, t);
        }
        tr->apply_hash[cfg] = ah;
        for (int k = 0; k < 20; k++) {
            int32_t prev[TOKMARK_MAX_CONTEXT];
            for (uint32_t i = 0; i < c; i++) prev[i] = tu_token(&r, V);
            int32_t tok = tu_token(&r, V);
            tr->nonce[cfg][k] = tokmark_nonce(prof, prev, tok);
            tr->u32[cfg][k] = tokmark_value_u32(prof, prev, tok);
            tokmark_gvalues(prof, prev, tok, tr->g[cfg][k]);
            tokmark_value_block(prof, tr->nonce[cfg][k], tu_next(&r), tr->blk[cfg][k]);
        }
        tokmark_embedder_free(e);
        tokmark_profile_free(prof);
    }
    free(lg);
}

static void test_backends(void **state) {
    (void)state;
    trace *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    assert_true(a && b);
    TU_OK(tokmark_set_backend(TOKMARK_BACKEND_PORTABLE));
    assert_string_equal(tokmark_backend_name(), "portable");
    run_trace(a);
    int rc = tokmark_set_backend(TOKMARK_BACKEND_AESNI);
    if (rc == TOKMARK_ERR_UNSUPPORTED) {
        printf("    NOTE: AES-NI is not supported on this CPU: the AES-NI half of the backend comparison is "
               "SKIPPED (portable backend checked against itself only)\n");
        run_trace(b);
    } else {
        TU_OK(rc);
        assert_string_equal(tokmark_backend_name(), "aesni");
        run_trace(b);
    }
    TU_OK(tokmark_set_backend(TOKMARK_BACKEND_AUTO));
    for (int cfg = 0; cfg < 6; cfg++) {
        for (int s = 0; s < 120; s++)
            TU_CHECK(a->choice[cfg][s] == b->choice[cfg][s], "backends: config %d step %d chose %d vs %d", cfg, s,
                     a->choice[cfg][s], b->choice[cfg][s]);
        TU_CHECK(a->apply_hash[cfg] == b->apply_hash[cfg], "backends: config %d apply outputs differ", cfg);
    }
    TU_CHECK(memcmp(a->nonce, b->nonce, sizeof a->nonce) == 0, "backends: tokmark_nonce differs");
    TU_CHECK(memcmp(a->u32, b->u32, sizeof a->u32) == 0, "backends: tokmark_value_u32 differs");
    TU_CHECK(memcmp(a->g, b->g, sizeof a->g) == 0, "backends: tokmark_gvalues differs");
    TU_CHECK(memcmp(a->blk, b->blk, sizeof a->blk) == 0, "backends: tokmark_value_block differs");
    /* the traces are not degenerate */
    size_t distinct = 0;
    for (int s = 1; s < 120; s++) distinct += a->choice[0][s] != a->choice[0][s - 1];
    TU_CHECK(distinct > 50, "degenerate trace");
    free(a);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* 8. Out-of-range candidate ids and the candidate cap                       */
/* ------------------------------------------------------------------------ */

static void test_out_of_range_ids(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x00B0F4A6Eull);
    const uint32_t V = 1000;
    const int32_t bad[7] = {-1, -1000, INT32_MIN, 1000, 1001, INT32_MAX, 65536};
    enum { NV = 20, N = NV + 7 };
    for (int cfg = 0; cfg < 6; cfg++) {
        tokmark_params par;
        tu_params(&par, SCHEMES[cfg / 2], cfg % 2 ? TOKMARK_SEEDING_SELFHASH : TOKMARK_SEEDING_LEFTHASH, 2, V);
        par.mask_repeated = 0;
        uint32_t c = tu_ctxlen(&par);
        tokmark_profile *prof = tu_profile(&r, &par);
        tokmark_embedder *e = mk_emb(prof, 0, 0);
        hist hh = {{0}, 0};
        for (uint32_t i = 0; i < c; i++) push_prompt(e, &hh, (int32_t[]){tu_token(&r, V)}, 1);
        for (int ctx = 0; ctx < 150; ctx++) {
            int32_t ids[N], vids[NV];
            float lg[N], vlg[NV];
            tu_distinct_ids(&r, vids, NV, V);
            random_logits(&r, vlg, NV, 1.0, 0.0);
            for (int i = 0; i < NV; i++) {
                ids[i] = vids[i];
                lg[i] = vlg[i];
            }
            for (int i = 0; i < 7; i++) {
                ids[NV + i] = bad[i];
                lg[NV + i] = 30.0f; /* would win every race if considered */
            }
            tokmark_token_data cand[N];
            cand_list(cand, ids, lg, N);
            tu_shuffle_cand(&r, cand, N);
            int32_t t = tokmark_embedder_sample(e, cand, N, tu_unif(&r));
            cand_list(cand, ids, lg, N);
            tu_shuffle_cand(&r, cand, N);
            tokmark_embedder_apply(e, cand, N); /* must not crash (ASan build) */
            if (par.scheme == TOKMARK_SCHEME_GUMBEL) {
                TU_CHECK(t >= 0 && t < (int32_t)V, "Gumbel chose out-of-range id %d", t);
                int32_t ref = brute_gumbel(prof, hist_prev(&hh, c), vids, vlg, NV);
                TU_CHECK(t == ref, "Gumbel with bad ids chose %d, brute force over the valid ones %d", t, ref);
                for (int i = 0; i < N; i++)
                    TU_CHECK((cand[i].id == ref) == (cand[i].logit > -INFINITY),
                             "Gumbel apply: id %d logit %g", cand[i].id, (double)cand[i].logit);
            } else if (par.scheme == TOKMARK_SCHEME_KGW) {
                for (int i = 0; i < N; i++) {
                    int j = 0;
                    while (ids[j] != cand[i].id) j++;
                    int valid = cand[i].id >= 0 && cand[i].id < (int32_t)V;
                    float expect = lg[j];
                    if (valid && tokmark_is_green(prof, hist_prev(&hh, c), cand[i].id))
                        expect = lg[j] + (float)par.delta;
                    TU_CHECK(cand[i].logit == expect, "KGW: id %d logit %.9g expected %.9g", cand[i].id,
                             (double)cand[i].logit, (double)expect);
                }
            } else {
                double psum = 0.0;
                for (int i = 0; i < N; i++) psum += (double)cand[i].p;
                TU_CHECK(fabs(psum - 1.0) < 1e-5, "SynthID with bad ids: Σp = %.9g", psum);
            }
            push_accept(e, &hh, (t >= 0 && t < (int32_t)V) ? t : vids[0]);
        }
        /* nothing but bad ids: no crash */
        tokmark_token_data only_bad[7];
        cand_list(only_bad, bad, (float[]){1, 2, 3, 4, 5, 6, 7}, 7);
        (void)tokmark_embedder_sample(e, only_bad, 7, 0.5);
        cand_list(only_bad, bad, (float[]){1, 2, 3, 4, 5, 6, 7}, 7);
        tokmark_embedder_apply(e, only_bad, 7);
        tokmark_embedder_free(e);
        tokmark_profile_free(prof);
    }
}

static void test_max_candidates(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0xCA9ull);
    const uint32_t V = 1000;
    enum { N = 20, CAP = 8 };
    for (int s = 0; s < 3; s++) {
        tokmark_params par;
        tu_params(&par, SCHEMES[s], TOKMARK_SEEDING_LEFTHASH, 1, V);
        par.mask_repeated = 0;
        tokmark_profile *prof = tu_profile(&r, &par);
        tokmark_embedder *e = mk_emb(prof, CAP, 0);
        tokmark_embedder_prompt(e, (int32_t[]){5}, 1);
        for (int ctx = 0; ctx < 100; ctx++) {
            int32_t ids[N];
            float lg[N];
            tu_distinct_ids(&r, ids, N, V);
            for (int i = 0; i < N; i++) lg[i] = i < CAP ? (float)tu_normal(&r) : 25.0f;
            tokmark_token_data cand[N];
            cand_list(cand, ids, lg, N);
            int32_t t = tokmark_embedder_sample(e, cand, N, tu_unif(&r));
            int pos = 0;
            while (pos < N && ids[pos] != t) pos++;
            TU_CHECK(pos < CAP, "%s: chose candidate %d beyond max_candidates %d", tokmark_scheme_name(SCHEMES[s]),
                     pos, CAP);
            cand_list(cand, ids, lg, N);
            for (int i = 0; i < N; i++) cand[i].p = 0.5f; /* stale values from an earlier sampler */
            tokmark_embedder_apply(e, cand, N);
            double psum = 0.0;
            for (int i = 0; i < N; i++) psum += (double)cand[i].p;
            for (int i = CAP; i < N; i++)
                TU_CHECK(!(cand[i].logit > -INFINITY), "%s: candidate %d beyond the cap kept logit %g",
                         tokmark_scheme_name(SCHEMES[s]), i, (double)cand[i].logit);
            /* p is "the softmax of the new logits" (tokmark.h): 0 wherever the logit is -inf */
            for (int i = CAP; i < N; i++)
                TU_CHECK(cand[i].p == 0.0f, "%s: candidate %d beyond max_candidates has logit -inf but p = %g",
                         tokmark_scheme_name(SCHEMES[s]), i, (double)cand[i].p);
            TU_CHECK(fabs(psum - 1.0) < 1e-5, "%s: p over all candidates sums to %.6g", tokmark_scheme_name(SCHEMES[s]),
                     psum);
            tokmark_embedder_accept(e, t);
        }
        tokmark_embedder_free(e);
        tokmark_profile_free(prof);
    }
}

/* ------------------------------------------------------------------------ */

static int group_setup(void **state) {
    (void)state;
    return tokmark_init() == TOKMARK_OK ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distortion_free),    cmocka_unit_test(test_candidate_vs_full),
        cmocka_unit_test(test_order_independence), cmocka_unit_test(test_gumbel_pruning_exact),
        cmocka_unit_test(test_synthid_tournament), cmocka_unit_test(test_masking),
        cmocka_unit_test(test_backends),           cmocka_unit_test(test_out_of_range_ids),
        cmocka_unit_test(test_max_candidates),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
