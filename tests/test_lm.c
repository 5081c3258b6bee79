/* test_lm.c — the reference n-gram language model (SPEC.md §11,
 * tools/cli/lm.c) and `tokmark lm` / `tokmark generate`:
 *   - its probabilities equal interpolated modified Kneser–Ney computed here
 *     from the definition by brute force (substring counting), for every
 *     token after every context of a small vocabulary, seen or not;
 *   - lm_logits is normalised over the full cl100k_base vocabulary and
 *     agrees with lm_logprob; unseen contexts back off to shorter ones;
 *   - a saved model loads back with identical logits; damaged files are
 *     refused with the place at fault;
 *   - generation with a fixed seed is reproducible; KGW-watermarked text of
 *     200 tokens is found by the detector (log10 p < -6), the control is not;
 *   - the command line end to end (train, info, perplexity, generate).
 * The real-text model is trained here on the licence texts of base-files
 * (/usr/share/common-licenses), tokenized with cl100k_base (needs
 * scripts/fetch-tokenizers.sh); nothing else and no network. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "cliutil.h"
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "lm.h"
#include "testutil.h"

static tokmark_tokenizer *g_tok;
static lm_model *g_lm;    /* order 4, trained on the licence texts */
static int32_t *g_ids;    /* the training tokens (all documents back to back) */
static size_t g_nids;

static const char *const k_licences[] = {"GPL-3", "Apache-2.0", "LGPL-2.1", "MPL-2.0", "Artistic", "GFDL-1.3"};

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return s;
}

static int32_t *encode(const char *s, size_t len, size_t *n) {
    size_t need = 0;
    assert_int_equal(tokmark_tokenizer_encode(g_tok, s, len, NULL, 0, &need, TOKMARK_ENCODE_REPLACE_INVALID),
                     TOKMARK_OK);
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    assert_non_null(ids);
    assert_int_equal(tokmark_tokenizer_encode(g_tok, s, len, ids, need, n, TOKMARK_ENCODE_REPLACE_INVALID),
                     TOKMARK_OK);
    return ids;
}

static uint32_t rd_u32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}



static char *tool_output(const char *which) {
    char p[512];
    size_t len;
    path_in(p, sizeof p, which);
    char *s = slurp(p, &len);
    assert_non_null(s);
    return s;
}

/* ------------------------------------------------------------------------ */
/* Kneser–Ney from the definition (SPEC.md §11.1–§11.2), by brute force      */
/* ------------------------------------------------------------------------ */

enum { BF_MAXDOC = 8, BF_MAXLEN = 64 };

typedef struct bf_corpus {
    int32_t s[BF_MAXDOC][BF_MAXLEN + 2]; /* padded: B t1 .. tm E */
    size_t len[BF_MAXDOC];               /* padded lengths */
    size_t ndocs;
    uint32_t N, V;
    int32_t B;
} bf_corpus;

/* Occurrences of g[0..n) as a predicted gram: a substring ending at an
 * index ≥ 1 (position 0 is the opening B, never predicted). */
static uint32_t bf_raw(const bf_corpus *c, const int32_t *g, size_t n) {
    uint32_t k = 0;
    for (size_t d = 0; d < c->ndocs; d++)
        for (size_t st = 0; st + n <= c->len[d]; st++) {
            if (st + n - 1 < 1) continue;
            if (memcmp(c->s[d] + st, g, n * sizeof *g) == 0) k++;
        }
    return k;
}

/* The count a(g) used at order n = |g|: raw at the top order or for a gram
 * beginning with B; else the number of distinct v with v g seen. */
static uint32_t bf_count(const bf_corpus *c, const int32_t *g, size_t n) {
    if (n == c->N || (n >= 2 && g[0] == c->B)) return bf_raw(c, g, n);
    uint32_t k = 0;
    int32_t vg[LM_MAX_ORDER + 1];
    memcpy(vg + 1, g, n * sizeof *g);
    for (uint32_t v = 0; v < c->V; v++) {
        vg[0] = (int32_t)v;
        if (bf_raw(c, vg, n + 1) > 0) k++;
    }
    return k;
}

/* D1, D2, D3+ of order n: counts of counts over every distinct n-gram seen. */
static void bf_discounts(const bf_corpus *c, uint32_t n, double D[4]) {
    double t[5] = {0, 0, 0, 0, 0};
    /* enumerate the distinct grams by their occurrences, counting each once */
    for (size_t d = 0; d < c->ndocs; d++)
        for (size_t st = 0; st + n <= c->len[d]; st++) {
            if (st + n - 1 < 1) continue;
            const int32_t *g = c->s[d] + st;
            int first = 1; /* is this the first occurrence in corpus order? */
            for (size_t d2 = 0; d2 <= d && first; d2++)
                for (size_t s2 = 0; s2 + n <= c->len[d2] && first; s2++) {
                    if (d2 == d && s2 >= st) break;
                    if (s2 + n - 1 >= 1 && memcmp(c->s[d2] + s2, g, n * sizeof *g) == 0) first = 0;
                }
            if (!first) continue;
            uint32_t a = bf_count(c, g, n);
            if (a >= 1 && a <= 4) t[a] += 1;
        }
    double Y = t[1] / (t[1] + 2 * t[2]);
    double est[4] = {0, 1 - 2 * Y * t[2] / t[1], 2 - 3 * Y * t[3] / t[2], 3 - 4 * Y * t[4] / t[3]};
    D[0] = 0;
    for (int k = 1; k <= 3; k++) D[k] = (isfinite(est[k]) && est[k] > 0 && est[k] < k) ? est[k] : k / 2.0;
}

/* p_n(w | h) with |h| = n-1 (n = 0: uniform). */
static double bf_prob(const bf_corpus *c, const double D[][4], const int32_t *h, size_t n, int32_t w) {
    if (n == 0) return 1.0 / c->V;
    const int32_t *hs = h + 1; /* h without its oldest token */
    double lower = bf_prob(c, D, hs, n - 1, w);
    int32_t g[LM_MAX_ORDER + 1];
    memcpy(g, h, (n - 1) * sizeof *h);
    double total = 0, n123 = 0, aw = 0;
    for (uint32_t x = 0; x < c->V; x++) {
        g[n - 1] = (int32_t)x;
        uint32_t a = bf_count(c, g, n);
        total += a;
        if (a > 0) n123 += D[n][a >= 3 ? 3 : a];
        if ((int32_t)x == w) aw = a;
    }
    if (total == 0) return lower; /* context unseen at this order */
    double alpha = aw > 0 ? (aw - D[n][aw >= 3 ? 3 : (int)aw]) / total : 0.0;
    return alpha + n123 / total * lower;
}

/* The model's p(w | context ctx[0..k)) by brute force: the last N-1 ids. */
static double bf_model(const bf_corpus *c, const double D[][4], const int32_t *ctx, size_t k, int32_t w) {
    size_t use = k < c->N - 1 ? k : c->N - 1;
    return bf_prob(c, D, ctx + k - use, use + 1, w);
}

static void check_kn(const bf_corpus *c, const char *what) {
    lm_builder *b = NULL;
    lm_model *m = NULL;
    TU_OK(lm_builder_new(&b, c->N, c->V, c->B, "test"));
    for (size_t d = 0; d < c->ndocs; d++) TU_OK(lm_builder_add(b, c->s[d] + 1, c->len[d] - 2));
    TU_OK(lm_builder_finish(b, &m));
    lm_builder_free(b);
    double D[LM_MAX_ORDER + 1][4];
    for (uint32_t n = 1; n <= c->N; n++) bf_discounts(c, n, D[n]);
    lm_info info;
    lm_get_info(m, &info);
    for (uint32_t n = 1; n <= c->N; n++)
        for (int k = 1; k <= 3; k++)
            TU_CHECK(fabs(info.discount[n - 1][k - 1] - D[n][k]) < 1e-12, "%s: D%d of order %u: %.15g vs %.15g",
                     what, k, n, info.discount[n - 1][k - 1], D[n][k]);
    /* every context of length 0..N-1 over the vocabulary (boundary included),
     * every token */
    float *logits = malloc(c->V * sizeof *logits);
    assert_non_null(logits);
    int32_t ctx[LM_MAX_ORDER];
    size_t tested = 0;
    for (uint32_t k = 0; k < c->N; k++) {
        uint64_t combos = 1;
        for (uint32_t i = 0; i < k; i++) combos *= c->V;
        for (uint64_t x = 0; x < combos; x++) {
            uint64_t y = x;
            for (uint32_t i = 0; i < k; i++) {
                ctx[i] = (int32_t)(y % c->V);
                y /= c->V;
            }
            lm_logits(m, ctx, k, logits);
            double sum = 0;
            for (uint32_t w = 0; w < c->V; w++) {
                double want = bf_model(c, (const double(*)[4])D, ctx, k, (int32_t)w);
                double got = exp(lm_logprob(m, ctx, k, (int32_t)w));
                TU_CHECK(fabs(got - want) <= 1e-12 * want, "%s: context of %u (x=%llu), token %u: %.17g vs %.17g",
                         what, k, (unsigned long long)x, w, got, want);
                TU_CHECK(fabs(exp((double)logits[w]) - want) <= 1e-6 * want, "%s: logits differ", what);
                sum += want;
                tested++;
            }
            TU_CHECK(fabs(sum - 1.0) < 1e-12, "%s: brute force sums to %.17g", what, sum);
        }
    }
    size_t want_tested = 0, pw = 1;
    for (uint32_t k = 0; k < c->N; k++, pw *= c->V) want_tested += pw * c->V;
    assert_int_equal(tested, want_tested);
    free(logits);
    lm_free(m);
}

/* A corpus small enough to check by hand (V = 5, boundary 4, order 3):
 *   doc 1: 0 1 2 0 1 3    doc 2: 1 2 0 1 2    doc 3: 2 2 1 0 3 0 1
 * e.g. order 3 after (0 1): raw counts 1 2 → 2, 1 3 → 1 ... */
static void test_kn_small(void **state) {
    (void)state;
    bf_corpus c;
    memset(&c, 0, sizeof c);
    c.N = 3;
    c.V = 5;
    c.B = 4;
    static const int32_t docs[3][8] = {{0, 1, 2, 0, 1, 3, -1}, {1, 2, 0, 1, 2, -1}, {2, 2, 1, 0, 3, 0, 1, -1}};
    for (size_t d = 0; d < 3; d++) {
        size_t m = 0;
        c.s[d][0] = c.B;
        while (docs[d][m] >= 0) {
            c.s[d][m + 1] = docs[d][m];
            m++;
        }
        c.s[d][m + 1] = c.B;
        c.len[d] = m + 2;
    }
    c.ndocs = 3;
    check_kn(&c, "small");
    /* By hand.  Padded: B 0 1 2 0 1 3 B | B 1 2 0 1 2 B | B 2 2 1 0 3 0 1 B.
     * After (0 1) the order-3 (top) counts are raw: c(0 1 2) = 2 (docs 1, 2),
     * c(0 1 3) = 1, c(0 1 E) = 1.  (1 2) is preceded by 0 and B: a(1 2) = 2;
     * 2 by 1, B and 2: a(2) = 3; (B 2) starts with B: its raw count, 1. */
    int32_t g[3] = {0, 1, 2};
    assert_int_equal(bf_count(&c, g, 3), 2);
    g[2] = 3;
    assert_int_equal(bf_count(&c, g, 3), 1);
    g[2] = 4;
    assert_int_equal(bf_count(&c, g, 3), 1);
    int32_t g2[2] = {1, 2};
    assert_int_equal(bf_count(&c, g2, 2), 2);
    assert_int_equal(bf_count(&c, g2 + 1, 1), 3);
    int32_t g3[2] = {4, 2};
    assert_int_equal(bf_count(&c, g3, 2), 1);
    /* and the model agrees: p(2 | 0 1) > p(3 | 0 1) = p(E | 0 1) */
    lm_builder *b = NULL;
    lm_model *m = NULL;
    TU_OK(lm_builder_new(&b, 3, 5, 4, NULL));
    for (size_t d = 0; d < 3; d++) TU_OK(lm_builder_add(b, c.s[d] + 1, c.len[d] - 2));
    assert_int_equal(lm_builder_add(b, g3, 2), TOKMARK_ERR_INVALID); /* the boundary inside a document */
    TU_OK(lm_builder_finish(b, &m));
    lm_builder_free(b);
    lm_info info;
    lm_get_info(m, &info);
    assert_int_equal(info.documents, 3);
    assert_int_equal(info.tokens, 18);
    assert_true(lm_logprob(m, g, 2, 2) > lm_logprob(m, g, 2, 3));
    lm_free(m);
}

/* Random corpora: several orders, a boundary-heavy vocabulary. */
static void test_kn_random(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 20261123);
    for (int rep = 0; rep < 4; rep++) {
        bf_corpus c;
        memset(&c, 0, sizeof c);
        c.N = (uint32_t)(2 + rep % 3); /* 2, 3, 4, 2 */
        c.V = rep == 3 ? 4u : 6u;
        c.B = (int32_t)(c.V - 1);
        c.ndocs = 2 + (size_t)tu_below(&r, 5);
        for (size_t d = 0; d < c.ndocs; d++) {
            size_t m = 1 + tu_below(&r, 30);
            c.s[d][0] = c.B;
            for (size_t i = 1; i <= m; i++) /* skewed: low ids more likely */
                c.s[d][i] = (int32_t)(tu_below(&r, c.V - 1) * tu_below(&r, 2));
            c.s[d][m + 1] = c.B;
            c.len[d] = m + 2;
        }
        char what[32];
        snprintf(what, sizeof what, "random %d (N=%u)", rep, c.N);
        check_kn(&c, what);
    }
}

/* ------------------------------------------------------------------------ */
/* The real-text model                                                       */
/* ------------------------------------------------------------------------ */

static void test_normalised(void **state) {
    (void)state;
    uint32_t V = lm_vocab_size(g_lm);
    assert_int_equal(V, 100277);
    float *logits = malloc(V * sizeof *logits);
    assert_non_null(logits);
    tu_rng r;
    tu_seed(&r, 7);
    for (int t = 0; t < 60; t++) {
        int32_t ctx[5];
        size_t k = tu_below(&r, 6);
        if (t % 3 == 0) { /* random ids: mostly unseen contexts */
            for (size_t i = 0; i < k; i++) ctx[i] = (int32_t)tu_below(&r, V);
        } else { /* contexts from the corpus: seen at every order */
            size_t at = tu_below(&r, (uint32_t)(g_nids - 6));
            memcpy(ctx, g_ids + at, k * sizeof *ctx);
        }
        if (t % 7 == 0 && k > 0) ctx[0] = lm_boundary(g_lm);
        lm_logits(g_lm, ctx, k, logits);
        double sum = 0;
        for (uint32_t w = 0; w < V; w++) {
            TU_CHECK(isfinite(logits[w]) && logits[w] < 0, "token %u: logit %g", w, (double)logits[w]);
            sum += exp((double)logits[w]);
        }
        TU_CHECK(fabs(sum - 1.0) < 1e-6, "context %d: probabilities sum to %.12f", t, sum);
        for (int j = 0; j < 50; j++) { /* the per-token form agrees */
            int32_t w = j < 25 ? g_ids[tu_below(&r, (uint32_t)g_nids)] : (int32_t)tu_below(&r, V);
            double lp = lm_logprob(g_lm, ctx, k, w);
            TU_CHECK(fabs(lp - (double)logits[w]) < 1e-5, "token %d: logprob %.9f, logit %.9f", w, lp,
                     (double)logits[w]);
        }
    }
    free(logits);
}

/* Contexts never seen back off: the prediction after (u a b) with (u a b)
 * unseen is the one after (a b); after an unseen last token, the order-1
 * distribution; ids out of range count as unseen. */
static void test_backoff(void **state) {
    (void)state;
    uint32_t V = lm_vocab_size(g_lm);
    float *x = malloc(V * sizeof *x), *y = malloc(V * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    const int32_t unseen = 99000; /* no licence text has this token */
    for (size_t i = 0; i < g_nids; i++) assert_int_not_equal(g_ids[i], unseen);
    size_t at = g_nids / 3;
    int32_t ctx[4] = {unseen, g_ids[at], g_ids[at + 1], g_ids[at + 2]};
    lm_logits(g_lm, ctx, 4, x);
    lm_logits(g_lm, ctx + 1, 3, y);
    assert_memory_equal(x, y, V * sizeof *x); /* (unseen a b c) = (a b c) with order 4 */
    int32_t ctx2[3] = {g_ids[at], unseen, g_ids[at + 2]};
    lm_logits(g_lm, ctx2, 3, x);
    lm_logits(g_lm, ctx2 + 2, 1, y);
    assert_memory_equal(x, y, V * sizeof *x); /* (a unseen c) = (c) */
    int32_t ctx3[2] = {g_ids[at], unseen};
    lm_logits(g_lm, ctx3, 2, x);
    lm_logits(g_lm, NULL, 0, y);
    assert_memory_equal(x, y, V * sizeof *x); /* (a unseen) = () */
    int32_t ctx4[2] = {g_ids[at], -5};
    lm_logits(g_lm, ctx4, 2, x);
    assert_memory_equal(x, y, V * sizeof *x);
    int32_t ctx5[2] = {g_ids[at], (int32_t)V};
    lm_logits(g_lm, ctx5, 2, x);
    assert_memory_equal(x, y, V * sizeof *x);
    /* and a seen context does differ from its back-off */
    lm_logits(g_lm, ctx + 1, 3, x);
    lm_logits(g_lm, ctx + 2, 2, y);
    assert_memory_not_equal(x, y, V * sizeof *x);
    /* the unseen token itself has the uniform share only: p = Πγ p1, p1 = γ0/V */
    assert_true(lm_logprob(g_lm, ctx + 1, 3, unseen) < lm_logprob(g_lm, NULL, 0, unseen));
    assert_true(isinf(lm_logprob(g_lm, ctx, 2, (int32_t)V)));
    free(x);
    free(y);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void test_save_load(void **state) {
    (void)state;
    char path[512];
    path_in(path, sizeof path, "model.lm");
    TU_OK(lm_save(g_lm, path));
    lm_model *m = NULL;
    char why[256];
    TU_OK(lm_load(&m, path, why, sizeof why));
    lm_info a, b;
    lm_get_info(g_lm, &a);
    lm_get_info(m, &b);
    assert_memory_equal(&a, &b, sizeof a);
    assert_string_equal(lm_tokenizer_name(m), "cl100k_base");
    uint32_t V = lm_vocab_size(m);
    float *x = malloc(V * sizeof *x), *y = malloc(V * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (size_t t = 0; t < 20; t++) {
        size_t at = (t * 7919) % (g_nids - 4), k = t % 5;
        lm_logits(g_lm, g_ids + at, k, x);
        lm_logits(m, g_ids + at, k, y);
        assert_memory_equal(x, y, V * sizeof *x);
    }
    free(x);
    free(y);
    lm_free(m);

    /* damaged copies: each refused as TOKMARK_ERR_FORMAT with the place.
     * The order-1 followers start after the levels (SPEC §11.4 layout). */
    size_t len = 0;
    char *img = slurp(path, &len);
    assert_non_null(img);
    uint64_t off = 256;
    for (uint32_t k = 0; k < a.order; k++) {
        uint64_t M = a.contexts[k];
        off = (off + (k >= 1 ? 4 * M : 0) + 7) & ~7ull;
        off = (off + (k + 1 < a.order ? 4 * (M + 1) : 0) + 7) & ~7ull;
        if (k == 0) assert_int_equal(rd_u32(img + off), 0); /* the root's followers start at 0 */
        off = (off + 4 * (M + 1) + 7) & ~7ull;
    }
    const uint64_t gtok1 = off; /* order-1 follower ids */
    assert_true(gtok1 + 8 < len);
    char bad[512];
    path_in(bad, sizeof bad, "bad.lm");
    struct {
        size_t off;     /* where to write (SIZE_MAX: cut the last 8 bytes) */
        uint32_t value; /* little-endian */
        int whole;      /* 1: write 4 bytes; 0: xor one byte with value */
        const char *needle;
    } cases[] = {
        {0, 'X', 0, "not a tokmark n-gram model"},
        {16, 2, 1, "version 2"},
        {20, 7, 1, "order 7"},
        {28, 100277, 1, "boundary token 100277"},
        {220, 1, 0, "reserved byte 220"},
        {SIZE_MAX, 0, 0, "truncated"},
        {(size_t)gtok1, 100277, 1, "order 1, n-gram 0: follower id out of range"},
        {(size_t)gtok1 + 4, 0, 1, "order 1, n-gram 1: follower id out of range or not increasing"},
        {112 + 8, 5, 1, "describes"},                          /* a count changed: size differs */
        {256 + 8, 1, 1, "level 0: follower offsets do not span"}, /* the root's first offset */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, img, len);
        size_t n = len;
        if (cases[i].off == SIZE_MAX) {
            n -= 8;
        } else if (cases[i].whole) {
            for (int k = 0; k < 4; k++) copy[cases[i].off + (size_t)k] = (char)(cases[i].value >> (8 * k));
        } else {
            copy[cases[i].off] = (char)(copy[cases[i].off] ^ (char)cases[i].value);
        }
        write_file(bad, copy, n);
        free(copy);
        m = NULL;
        why[0] = '\0';
        int rc = lm_load(&m, bad, why, sizeof why);
        TU_CHECK(rc == TOKMARK_ERR_FORMAT, "case %zu: %s", i, tokmark_error_name(rc));
        assert_null(m);
        TU_CHECK(strstr(why, cases[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i, why, cases[i].needle);
    }
    free(img);
    path_in(bad, sizeof bad, "missing.lm");
    assert_int_equal(lm_load(&m, bad, why, sizeof why), TOKMARK_ERR_IO);
    assert_int_equal(errno, ENOENT);
}

/* ------------------------------------------------------------------------ */
/* Generation                                                                */
/* ------------------------------------------------------------------------ */

static tokmark_profile *make_profile(tokmark_scheme s, uint8_t key_byte) {
    tokmark_params par;
    tokmark_params_default(&par, s);
    uint8_t key[TOKMARK_MASTER_KEY_BYTES];
    memset(key, key_byte, sizeof key);
    tokmark_profile *p = NULL;
    TU_OK(tokmark_profile_from_key(&p, &par, key));
    return p;
}

static const char k_prompt[] = "This License applies to any program";

static size_t generate(tokmark_embedder *e, uint64_t seed, uint32_t top_k, int32_t *out, size_t max,
                       int32_t **prompt, size_t *np) {
    *prompt = encode(k_prompt, sizeof k_prompt - 1, np);
    lm_gen_config cfg = {(uint32_t)max, 1.0, top_k, seed, 0, NULL};
    size_t n = 0;
    TU_OK(lm_generate(g_lm, e, *prompt, *np, &cfg, out, &n));
    return n;
}

static void test_generate_reproducible(void **state) {
    (void)state;
    tokmark_profile *p = make_profile(TOKMARK_SCHEME_KGW, 3);
    int32_t a[100], b[100], c[100], *pr;
    size_t np;
    for (uint32_t top_k = 0; top_k <= 40; top_k += 40) {
        tokmark_embedder *e = NULL;
        TU_OK(tokmark_embedder_create(&e, p, NULL));
        assert_int_equal(generate(e, 11, top_k, a, 100, &pr, &np), 100);
        free(pr);
        tokmark_embedder_reset(e);
        assert_int_equal(generate(e, 11, top_k, b, 100, &pr, &np), 100);
        free(pr);
        assert_memory_equal(a, b, sizeof a);
        tokmark_embedder_reset(e);
        assert_int_equal(generate(e, 12, top_k, c, 100, &pr, &np), 100);
        free(pr);
        assert_memory_not_equal(a, c, sizeof a);
        tokmark_embedder_free(e);
        /* the control too */
        assert_int_equal(generate(NULL, 11, top_k, b, 100, &pr, &np), 100);
        free(pr);
        assert_int_equal(generate(NULL, 11, top_k, c, 100, &pr, &np), 100);
        free(pr);
        assert_memory_equal(b, c, sizeof b);
        assert_memory_not_equal(a, b, sizeof a); /* the watermark changed the text */
    }
    tokmark_profile_free(p);
}

/* Banned ids are never drawn, by any scheme or the control, with or without
 * top-k, even at a high temperature; the boundary is never drawn when
 * stop_at_boundary is 0. */
static void test_generate_banned(void **state) {
    (void)state;
    uint32_t V = lm_vocab_size(g_lm);
    uint8_t *ban = calloc(V, 1);
    assert_non_null(ban);
    for (uint32_t t = 0; t < V; t += 2) ban[t] = 1; /* every even id */
    static const tokmark_scheme schemes[] = {0, TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL, TOKMARK_SCHEME_SYNTHID};
    int32_t out[150];
    for (size_t s = 0; s < 4; s++)
        for (uint32_t top_k = 0; top_k <= 50; top_k += 50) {
            tokmark_profile *p = schemes[s] ? make_profile(schemes[s], 9) : NULL;
            tokmark_embedder *e = NULL;
            if (p != NULL) TU_OK(tokmark_embedder_create(&e, p, NULL));
            lm_gen_config cfg = {150, 4.0, top_k, 77 + s, 0, ban};
            size_t n = 0;
            TU_OK(lm_generate(g_lm, e, g_ids, 5, &cfg, out, &n));
            assert_int_equal(n, 150);
            size_t odd = 0;
            for (size_t i = 0; i < n; i++) {
                TU_CHECK(!ban[out[i]] && out[i] != lm_boundary(g_lm), "scheme %zu, top-k %u: id %d drawn", s,
                         top_k, out[i]);
                odd += (out[i] & 1) != 0;
            }
            assert_int_equal(odd, n);
            tokmark_embedder_free(e);
            tokmark_profile_free(p);
        }
    /* invalid configurations */
    lm_gen_config bad = {10, 0.0, 0, 1, 1, NULL};
    size_t n = 0;
    assert_int_equal(lm_generate(g_lm, NULL, g_ids, 5, &bad, out, &n), TOKMARK_ERR_INVALID);
    bad.temperature = 1.0;
    bad.top_k = V + 1;
    assert_int_equal(lm_generate(g_lm, NULL, g_ids, 5, &bad, out, &n), TOKMARK_ERR_INVALID);
    free(ban);
}

static double detect_with(tokmark_scheme s, uint8_t key_byte, const int32_t *prompt, size_t np, const int32_t *ids,
                          size_t n, uint64_t *scored) {
    tokmark_keyring *ring = NULL;
    tokmark_detector *d = NULL;
    TU_OK(tokmark_keyring_new(&ring));
    TU_OK(tokmark_keyring_add(ring, make_profile(s, key_byte)));
    TU_OK(tokmark_detector_create(&d, ring, NULL));
    tokmark_detector_begin(d);
    tokmark_detector_prompt(d, prompt, np);
    tokmark_detector_feed(d, ids, n);
    tokmark_result r;
    tokmark_detector_document(d, 0, &r);
    tokmark_detector_free(d);
    tokmark_keyring_free(ring);
    if (scored != NULL) *scored = r.scored;
    return r.log10_p;
}

static void test_generate_detected(void **state) {
    (void)state;
    static const tokmark_scheme schemes[] = {TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL, TOKMARK_SCHEME_SYNTHID};
    for (size_t s = 0; s < 3; s++) {
        tokmark_profile *p = make_profile(schemes[s], 5);
        tokmark_embedder *e = NULL;
        TU_OK(tokmark_embedder_create(&e, p, NULL));
        int32_t wm[200], plain[200], *pr;
        size_t np;
        assert_int_equal(generate(e, 99, 0, wm, 200, &pr, &np), 200);
        free(pr);
        assert_int_equal(generate(NULL, 99, 0, plain, 200, &pr, &np), 200);
        uint64_t scored = 0;
        double lw = detect_with(schemes[s], 5, pr, np, wm, 200, &scored);
        double lc = detect_with(schemes[s], 5, pr, np, plain, 200, NULL);
        double lo = detect_with(schemes[s], 6, pr, np, wm, 200, NULL); /* another key */
        print_message("%-8s watermarked: log10 p %.2f (%llu scored); control %.2f; other key %.2f\n",
                      tokmark_scheme_name(schemes[s]), lw, (unsigned long long)scored, lc, lo);
        if (schemes[s] == TOKMARK_SCHEME_KGW) /* the brief's bar: 200 tokens of KGW */
            TU_CHECK(lw < -6.0, "KGW watermark not found: log10 p = %.2f", lw);
        else
            TU_CHECK(lw < -3.0, "%s watermark not found: log10 p = %.2f", tokmark_scheme_name(schemes[s]), lw);
        TU_CHECK(lc > -3.0, "control flagged: log10 p = %.2f", lc);
        TU_CHECK(lo > -3.0, "other key flagged: log10 p = %.2f", lo);
        free(pr);
        tokmark_embedder_free(e);
        tokmark_profile_free(p);
    }
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */
/* ------------------------------------------------------------------------ */

static void test_cli(void **state) {
    (void)state;
    char corpus[512], model[512], key[512], file[600];
    path_in(corpus, sizeof corpus, "corpus");
    path_in(model, sizeof model, "cli.lm");
    path_in(key, sizeof key, "kgw.key");
    assert_int_equal(mkdir(corpus, 0700), 0);
    for (size_t i = 0; i < 3; i++) {
        char src[256];
        size_t len;
        snprintf(src, sizeof src, "/usr/share/common-licenses/%s", k_licences[i]);
        char *t = slurp(src, &len);
        assert_non_null(t);
        snprintf(file, sizeof file, "%s/%zu.txt", corpus, i);
        write_file(file, t, len);
        free(t);
    }
    const char *train[] = {"lm", "train", "--corpus", corpus, "--order", "3", "-o", model, NULL};
    assert_int_equal(run_tool(NULL, train), 0);
    assert_int_equal(run_tool(NULL, train), 3); /* refuses to overwrite */
    char *err = tool_output("stderr");
    TU_CHECK(strstr(err, model) != NULL && strstr(err, "--force") != NULL, "%s", err);
    free(err);
    const char *info[] = {"lm", "info", model, NULL};
    assert_int_equal(run_tool(NULL, info), 0);
    char *out = tool_output("stdout");
    TU_CHECK(strstr(out, "order       3\n") != NULL && strstr(out, "documents   3\n") != NULL &&
                 strstr(out, "tokenizer   cl100k_base\n") != NULL,
             "%s", out);
    free(out);
    snprintf(file, sizeof file, "%s/0.txt", corpus);
    const char *ppl[] = {"lm", "perplexity", model, file, NULL};
    assert_int_equal(run_tool(NULL, ppl), 0);
    out = tool_output("stdout");
    char *pp = strstr(out, "perplexity  ");
    assert_non_null(pp);
    double v = strtod(pp + 12, NULL);
    TU_CHECK(v > 1.0 && v < 20.0, "perplexity of a training document: %g", v); /* order 3 on seen text */
    free(out);

    const char *keygen[] = {"keygen", "--scheme", "kgw", "-o", key, NULL};
    assert_int_equal(run_tool(NULL, keygen), 0);
    const char *gen[] = {"generate", "--profile", key, "--lm", model, "--prompt", "The licensee", "-n", "60",
                         "--seed", "5", "--jsonl", "--ignore-eos", NULL};
    assert_int_equal(run_tool(NULL, gen), 0);
    char *first = tool_output("stdout");
    assert_int_equal(run_tool(NULL, gen), 0);
    char *second = tool_output("stdout");
    assert_string_equal(first, second); /* --seed: reproducible */
    json_error_t jerr;
    json_t *o = json_loads(first, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "prompt")), "The licensee");
    assert_int_equal(json_array_size(json_object_get(o, "ids")), 60);
    assert_int_equal(json_integer_value(json_object_get(o, "tokens")), 60);
    assert_true(json_is_true(json_object_get(o, "watermarked")));
    assert_int_equal(strlen(json_string_value(json_object_get(o, "key_id"))), 32);
    /* the text is the ids decoded */
    json_t *ids = json_object_get(o, "ids");
    int32_t v60[60];
    for (size_t i = 0; i < 60; i++) v60[i] = (int32_t)json_integer_value(json_array_get(ids, i));
    char text[4096];
    size_t tl = 0;
    TU_OK(tokmark_tokenizer_decode(g_tok, v60, 60, text, sizeof text - 1, &tl));
    text[tl] = '\0';
    const char *jt = json_string_value(json_object_get(o, "text"));
    if (strstr(jt, "\xEF\xBF\xBD") == NULL) assert_string_equal(jt, text);
    json_decref(o);
    free(second);
    const char *ctl[] = {"generate", "--no-watermark", "--lm", model, "--prompt", "The licensee", "-n", "60",
                         "--seed", "5", "--jsonl", "--ignore-eos", NULL};
    assert_int_equal(run_tool(NULL, ctl), 0);
    second = tool_output("stdout");
    assert_string_not_equal(first, second);
    o = json_loads(second, 0, &jerr);
    assert_non_null(o);
    assert_true(json_is_false(json_object_get(o, "watermarked")));
    assert_true(json_is_null(json_object_get(o, "key_id")));
    json_decref(o);
    free(first);
    free(second);

    /* JSON Lines corpora: generated texts train a "student" (one document per line) */
    char jl[512], badjl[512], student[512];
    path_in(jl, sizeof jl, "gen.jsonl");
    path_in(badjl, sizeof badjl, "bad.jsonl");
    path_in(student, sizeof student, "student.lm");
    const char *gen3[] = {"generate", "--profile", key, "--lm", model, "-n", "40", "--seed", "1", "--count",
                          "3", "--jsonl", "--ignore-eos", NULL};
    assert_int_equal(run_tool(NULL, gen3), 0);
    out = tool_output("stdout");
    write_file(jl, out, strlen(out));
    size_t lines = 0, retok = 0; /* the texts re-tokenized: what training sees */
    for (const char *q = out; *q;) {
        const char *nl = strchr(q, '\n');
        assert_non_null(nl);
        json_t *jo = json_loadb(q, (size_t)(nl - q), 0, NULL);
        assert_non_null(jo);
        size_t nt = 0;
        const char *tx = json_string_value(json_object_get(jo, "text"));
        free(encode(tx, strlen(tx), &nt));
        retok += nt;
        json_decref(jo);
        lines++;
        q = nl + 1;
    }
    assert_int_equal(lines, 3);
    assert_true(retok >= 100);
    free(out);
    char want_tokens[64], want_pred[64];
    snprintf(want_tokens, sizeof want_tokens, "tokens      %zu\n", retok);
    snprintf(want_pred, sizeof want_pred, "predicted   %zu ", retok + 3);
    const char *strain[] = {"lm", "train", jl, "--order", "2", "-o", student, NULL};
    assert_int_equal(run_tool(NULL, strain), 0);
    const char *sinfo[] = {"lm", "info", student, NULL};
    assert_int_equal(run_tool(NULL, sinfo), 0);
    out = tool_output("stdout");
    TU_CHECK(strstr(out, "documents   3\n") != NULL && strstr(out, want_tokens) != NULL, "%s", out);
    free(out);
    const char *sppl[] = {"lm", "perplexity", model, jl, NULL};
    assert_int_equal(run_tool(NULL, sppl), 0);
    out = tool_output("stdout");
    TU_CHECK(strstr(out, "documents   3\n") != NULL && strstr(out, want_pred) != NULL, "%s", out);
    free(out);
    static const char bad_lines[] = "{\"text\": \"fine\"}\n\n{\"ids\": [1]}\n";
    write_file(badjl, bad_lines, sizeof bad_lines - 1);
    const char *btrain[] = {"lm", "train", badjl, "-o", student, "--force", NULL};
    assert_int_equal(run_tool(NULL, btrain), 3);
    err = tool_output("stderr");
    char where[600];
    snprintf(where, sizeof where, "%s:3: no \"text\"", badjl);
    TU_CHECK(strstr(err, where) != NULL, "%s", err);
    free(err);

    /* errors: a file that is no model (exit 3, FILE named), missing options */
    const char *badm[] = {"generate", "--profile", key, "--lm", file, "-n", "5", NULL};
    assert_int_equal(run_tool(NULL, badm), 3);
    err = tool_output("stderr");
    TU_CHECK(strstr(err, file) != NULL && strstr(err, "not a tokmark n-gram model") != NULL, "%s", err);
    free(err);
    const char *nokey[] = {"generate", "--lm", model, NULL};
    assert_int_equal(run_tool(NULL, nokey), 2);
    const char *badt[] = {"generate", "--no-watermark", "--lm", model, "--temperature", "0", NULL};
    assert_int_equal(run_tool(NULL, badt), 2);
}

/* ------------------------------------------------------------------------ */

static int setup_all(void **state) {
    (void)state;
    if (tokmark_init() != TOKMARK_OK) return -1;
    size_t line = 0;
    if (tokmark_tokenizer_load(&g_tok, "cl100k_base", &line) != TOKMARK_OK) {
        fprintf(stderr, "test_lm: cl100k_base not found (run scripts/fetch-tokenizers.sh)\n");
        return -1;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/tokmark-test-lm-XXXXXX");
    if (mkdtemp(g_dir) == NULL) return -1;
    lm_builder *b = NULL;
    if (lm_builder_new(&b, 4, tokmark_tokenizer_vocab_size(g_tok), 100257, "cl100k_base") != TOKMARK_OK) return -1;
    for (size_t i = 0; i < sizeof k_licences / sizeof k_licences[0]; i++) {
        char path[256];
        size_t len = 0, n = 0;
        snprintf(path, sizeof path, "/usr/share/common-licenses/%s", k_licences[i]);
        char *t = slurp(path, &len);
        if (t == NULL) {
            fprintf(stderr, "test_lm: %s is missing (Debian's base-files provides it)\n", path);
            return -1;
        }
        size_t need = 0;
        if (tokmark_tokenizer_encode(g_tok, t, len, NULL, 0, &need, TOKMARK_ENCODE_REPLACE_INVALID) != TOKMARK_OK)
            return -1;
        int32_t *ids = realloc(g_ids, (g_nids + need) * sizeof *ids);
        if (ids == NULL) return -1;
        g_ids = ids;
        if (tokmark_tokenizer_encode(g_tok, t, len, g_ids + g_nids, need, &n, TOKMARK_ENCODE_REPLACE_INVALID) !=
                TOKMARK_OK ||
            lm_builder_add(b, g_ids + g_nids, n) != TOKMARK_OK)
            return -1;
        g_nids += n;
        free(t);
    }
    int rc = lm_builder_finish(b, &g_lm);
    lm_builder_free(b);
    return rc == TOKMARK_OK ? 0 : -1;
}

static int teardown_all(void **state) {
    (void)state;
    lm_free(g_lm);
    free(g_ids);
    tokmark_tokenizer_free(g_tok);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    (void)argc;
    cu_find_tool(argv[0]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kn_small),         cmocka_unit_test(test_kn_random),
        cmocka_unit_test(test_normalised),       cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_save_load),        cmocka_unit_test(test_generate_reproducible),
        cmocka_unit_test(test_generate_banned),  cmocka_unit_test(test_generate_detected),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
