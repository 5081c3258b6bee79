/* test_eval.c — the building blocks of `make eval` (eval/evalutil.c) and the
 * demo end to end:
 *   - the corruption attacks change exactly round(rate·n) tokens, keep the
 *     others in order, and pick positions uniformly;
 *   - KL divergence: 0 for identical distributions, the closed form for a
 *     known pair, +inf where q has no mass; softmax and total variation;
 *   - tokens-until-p ≤ 1e-6 on synthetic traces with known answers;
 *   - medians, the Clopper–Pearson interval against known values, the SVG
 *     writer;
 *   - `tokmark demo --quick` with a fixed key: exit 0, every record
 *     classified as what it is, a watermarked corpus verdict, a signed audit
 *     report that `tokmark report verify --evidence` accepts; then with a
 *     fresh key: the key files are 0600, the cached model is reused and the
 *     report is replaced.
 * The demo needs data/corpus (scripts/build-corpus.sh, run here first when
 * it is missing: about a minute, once) and data/tokenizers. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "cliutil.h"

#include <math.h>

#include "evalutil.h"
#include "tokmark.h"

/* ---- corruption ---- */

static int is_subsequence(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t j = 0;
    for (size_t i = 0; i < nb && j < na; i++)
        if (b[i] == a[j]) j++;
    return j == na;
}

static void test_corrupt_rates(void **state) {
    (void)state;
    enum { N = 1000 };
    int32_t ids[N], out[2 * N], pool[50];
    for (int i = 0; i < N; i++) ids[i] = i;
    for (int i = 0; i < 50; i++) pool[i] = 200000 + i; /* recognisable: never an original id */
    eu_rng r;
    eu_rng_seed(&r, 1);
    const double rates[4] = {0.0, 0.1, 0.2, 0.3};
    for (int k = 0; k < 4; k++) {
        size_t want = (size_t)llround(rates[k] * N);
        assert_int_equal(eu_corrupt_count(N, rates[k]), want);
        /* substitution: same length, exactly `want` positions differ, each now a pool token */
        assert_int_equal(eu_corrupt_substitute(ids, N, rates[k], pool, 50, &r, out), N);
        size_t diff = 0;
        for (int i = 0; i < N; i++)
            if (out[i] != ids[i]) {
                diff++;
                assert_true(out[i] >= 200000);
            }
        assert_int_equal(diff, want);
        /* deletion: n - k tokens, the survivors in order */
        size_t n = eu_corrupt_delete(ids, N, rates[k], &r, out);
        assert_int_equal(n, N - want);
        assert_true(is_subsequence(out, n, ids, N));
        /* insertion: n + k tokens, the originals in order, k pool tokens */
        n = eu_corrupt_insert(ids, N, rates[k], pool, 50, &r, out);
        assert_int_equal(n, N + want);
        size_t ins = 0;
        for (size_t i = 0; i < n; i++) ins += out[i] >= 200000;
        assert_int_equal(ins, want);
        int32_t orig[N];
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (out[i] < 200000) orig[m++] = out[i];
        assert_int_equal(m, N);
        assert_memory_equal(orig, ids, sizeof orig);
    }
    /* rounding: 10 % of 25 tokens is round(2.5) = 3; 100 % deletes all */
    assert_int_equal(eu_corrupt_count(25, 0.1), 3);
    assert_int_equal(eu_corrupt_delete(ids, 25, 1.0, &r, out), 0);
}

static void test_corrupt_uniform(void **state) {
    (void)state;
    /* each position is deleted with probability 0.2: over 4000 trials every
     * count lies within 6 standard deviations of 800 */
    enum { N = 50, T = 4000 };
    int32_t ids[N], out[N];
    unsigned hits[N] = {0};
    for (int i = 0; i < N; i++) ids[i] = i;
    eu_rng r;
    eu_rng_seed(&r, 2);
    for (int t = 0; t < T; t++) {
        size_t n = eu_corrupt_delete(ids, N, 0.2, &r, out);
        uint8_t kept[N] = {0};
        for (size_t i = 0; i < n; i++) kept[out[i]] = 1;
        for (int i = 0; i < N; i++) hits[i] += !kept[i];
    }
    double sd = sqrt(T * 0.2 * 0.8);
    for (int i = 0; i < N; i++) assert_true(fabs((double)hits[i] - T * 0.2) < 6 * sd);
}

/* ---- divergences ---- */

static void test_kl(void **state) {
    (void)state;
    double p[4] = {0.1, 0.2, 0.3, 0.4};
    assert_true(eu_kl(p, p, 4) == 0.0);
    double a[2] = {0.5, 0.5}, b[2] = {0.9, 0.1};
    /* KL = ½ ln(0.5/0.9) + ½ ln(0.5/0.1) = ½ ln(25/9) */
    assert_true(fabs(eu_kl(a, b, 2) - 0.5 * log(25.0 / 9.0)) < 1e-15);
    /* the other direction: 0.9 ln(1.8) + 0.1 ln(0.2) */
    assert_true(fabs(eu_kl(b, a, 2) - (0.9 * log(1.8) + 0.1 * log(0.2))) < 1e-15);
    double c[2] = {1.0, 0.0}, d[2] = {0.0, 1.0};
    assert_true(isinf(eu_kl(c, d, 2)));
    assert_true(fabs(eu_kl(c, a, 2) - log(2.0)) < 1e-15); /* one-hot vs uniform: ln 2 */
    assert_true(fabs(eu_tv(a, b, 2) - 0.4) < 1e-15);
    /* chi-square: exact counts give 0; a known case by hand; pooling of small cells */
    double qq[4] = {0.25, 0.25, 0.25, 0.25}, cc[4] = {25, 25, 25, 25}, c2[4] = {30, 20, 25, 25};
    size_t df = 0;
    assert_true(eu_chi2(cc, qq, 4, 100, &df) == 0.0);
    assert_int_equal(df, 3);
    assert_true(fabs(eu_chi2(c2, qq, 4, 100, &df) - 2.0) < 1e-12); /* (25 + 25) / 25 */
    double qs[4] = {0.9, 0.04, 0.03, 0.03}, cs[4] = {88, 5, 4, 3};
    /* n = 100: cells 2..4 expected 4, 3, 3 -> pooled (10 expected, 12 observed) */
    assert_true(fabs(eu_chi2(cs, qs, 4, 100, &df) - (4.0 / 90 + 4.0 / 10)) < 1e-12);
    assert_int_equal(df, 1);
    /* Wilson-Hilferty against tabulated quantiles: chi2(10) 0.95 -> 18.307, chi2(100) 0.99 -> 135.807 */
    assert_true(fabs(eu_chi2_sf(18.307, 10) - 0.05) < 0.002);
    assert_true(fabs(eu_chi2_sf(135.807, 100) - 0.01) < 0.0005);
    assert_true(fabs(eu_chi2_sf(100.0, 100) - 0.48) < 0.01);
    float lg[3] = {0.0f, logf(2.0f), -INFINITY};
    double q[3];
    double lse = eu_softmax(lg, 3, q);
    assert_true(fabs(lse - log(3.0)) < 1e-6);
    assert_true(fabs(q[0] - 1.0 / 3) < 1e-7 && fabs(q[1] - 2.0 / 3) < 1e-7 && q[2] == 0.0);
}

/* ---- power from a trace ---- */

static void test_tokens_until(void **state) {
    (void)state;
    tokmark_params pp;
    tokmark_params_default(&pp, TOKMARK_SCHEME_KGW); /* γ = 1/4 */
    enum { SKIP = 4, N = 60 };
    tokmark_trace tr[SKIP + N];
    double curve[N];
    memset(tr, 0, sizeof tr);
    /* every generated token scored and green: p = γ^j; 0.25^10 ≈ 9.5e-7 ≤ 1e-6 < 0.25^9 */
    for (int i = SKIP; i < SKIP + N; i++) tr[i] = (tokmark_trace){1.0, 1};
    assert_int_equal(eu_tokens_until(tr, SKIP + N, SKIP, &pp, TOKMARK_SCORE_DEFAULT, -6.0, curve), 10);
    for (int j = 0; j < N; j++) assert_true(fabs(curve[j] - (j + 1) * log10(0.25)) < 1e-9);
    /* only every second token scored: the 10th green tuple is generated token 20 */
    for (int i = SKIP; i < SKIP + N; i++) tr[i].scored = (uint8_t)((i - SKIP) % 2 == 1), tr[i].value = tr[i].scored;
    assert_int_equal(eu_tokens_until(tr, SKIP + N, SKIP, &pp, TOKMARK_SCORE_DEFAULT, -6.0, curve), 20);
    assert_true(curve[0] == 0.0); /* nothing scored yet */
    /* red tuples only: never */
    for (int i = SKIP; i < SKIP + N; i++) tr[i] = (tokmark_trace){0.0, 1};
    assert_int_equal(eu_tokens_until(tr, SKIP + N, SKIP, &pp, TOKMARK_SCORE_DEFAULT, -6.0, NULL), 0);
    /* Gumbel: scores of 2 each; the first prefix with Q(n, 2n) ≤ 1e-6 */
    tokmark_params_default(&pp, TOKMARK_SCHEME_GUMBEL);
    for (int i = SKIP; i < SKIP + N; i++) tr[i] = (tokmark_trace){2.0, 1};
    size_t want = 0;
    for (uint64_t n = 1; n <= N && want == 0; n++)
        if (tokmark_ln_sf_gamma(2.0 * (double)n, n) / log(10.0) <= -6.0) want = (size_t)n;
    assert_true(want > 0);
    assert_int_equal(eu_tokens_until(tr, SKIP + N, SKIP, &pp, TOKMARK_SCORE_DEFAULT, -6.0, NULL), want);
}

static void test_median(void **state) {
    (void)state;
    double a[5] = {5, 1, 4, 2, 3};
    assert_true(eu_median(a, 5) == 3.0);
    double b[4] = {4, 1, 3, 2};
    assert_true(eu_median(b, 4) == 2.5);
    double c[3] = {INFINITY, 1, INFINITY};
    assert_true(isinf(eu_median(c, 3))); /* more than half never reached */
    double d[3] = {INFINITY, 1, 2};
    assert_true(eu_median(d, 3) == 2.0);
    assert_true(isnan(eu_median(d, 0)));
}

static void test_clopper_pearson(void **state) {
    (void)state;
    double lo, hi;
    eu_clopper_pearson(0, 10, 0.05, &lo, &hi);
    assert_true(lo == 0.0);
    assert_true(fabs(hi - (1.0 - pow(0.025, 0.1))) < 1e-9); /* 0.308497 */
    eu_clopper_pearson(10, 10, 0.05, &lo, &hi);
    assert_true(hi == 1.0);
    assert_true(fabs(lo - pow(0.025, 0.1)) < 1e-9);
    eu_clopper_pearson(5, 10, 0.05, &lo, &hi); /* tables: 0.187086, 0.812914 */
    assert_true(fabs(lo - 0.187086) < 1e-6);
    assert_true(fabs(hi - 0.812914) < 1e-6);
    assert_true(fabs(lo + hi - 1.0) < 1e-12); /* symmetry */
}

static void test_svg(void **state) {
    (void)state;
    char path[512];
    path_in(path, sizeof path, "plot.svg");
    double x[3] = {1, 2, 3}, y[3] = {-1, NAN, -7};
    eu_series s[2] = {{"a<b & c", x, y, 3}, {"second", x, x, 3}};
    assert_int_equal(eu_svg_plot(path, "title", "x", "y", s, 2, -6.0, "p = 1e-6"), 0);
    char *t = read_bytes("plot.svg", NULL);
    assert_true(strncmp(t, "<svg ", 5) == 0);
    assert_non_null(strstr(t, "a&lt;b &amp; c"));
    assert_non_null(strstr(t, "stroke-dasharray=\"5,4\"")); /* the reference line */
    assert_int_equal((int)(strstr(t, "</svg>") != NULL), 1);
    size_t poly = 0;
    for (const char *q = t; (q = strstr(q, "<polyline")) != NULL; q++) poly++;
    assert_int_equal(poly, 2);
    free(t);
    assert_int_equal(eu_svg_plot("/nonexistent-dir/x.svg", "t", "x", "y", s, 1, NAN, NULL), -1);
    /* categorical x axis: one labelled tick per category */
    static const char *const xt[3] = {"0 %", "1 %", "5 %"};
    assert_int_equal(eu_svg_plot_cat(path, "t", "x", "y", s, 1, NAN, NULL, xt, 3), 0);
    t = read_bytes("plot.svg", NULL);
    assert_non_null(strstr(t, ">5 %</text>"));
    assert_null(strstr(t, "stroke-dasharray=\"5,4\"")); /* no reference line asked for */
    free(t);
}

/* ---- the demo end to end ---- */

static char g_corpus[1024];

static void test_demo(void **state) {
    (void)state;
    char key[512], cache[512];
    path_in(key, sizeof key, "fixed.key");
    path_in(cache, sizeof cache, "cache");
    /* a fixed key, so that the run is deterministic */
    tokmark_params pp;
    tokmark_params_default(&pp, TOKMARK_SCHEME_KGW);
    uint8_t mk[TOKMARK_MASTER_KEY_BYTES];
    for (int i = 0; i < TOKMARK_MASTER_KEY_BYTES; i++) mk[i] = (uint8_t)(7 * i + 1);
    tokmark_profile *p = NULL;
    assert_int_equal(tokmark_profile_from_key(&p, &pp, mk), TOKMARK_OK);
    assert_int_equal(tokmark_profile_save(p, key, 1), TOKMARK_OK);
    tokmark_profile_free(p);

    const char *a1[] = {"demo", "--quick", "--corpus", g_corpus, "--cache", cache, "--key", key, NULL};
    assert_int_equal(run_tool(NULL, a1), 0);
    char *out = read_bytes("stdout", NULL);
    assert_non_null(strstr(out, "trained: order 3"));
    assert_non_null(strstr(out, "answer, watermarked"));
    const char *c = strstr(out, "corpus: ");
    assert_non_null(c);
    assert_non_null(strstr(c, ": watermarked\n")); /* the corpus verdict */
    unsigned right = 0, total = 0;
    const char *line = strstr(out, "records classified");
    assert_non_null(line);
    while (line > out && line[-1] != '\n') line--;
    assert_int_equal(sscanf(line, " %u of %u", &right, &total), 2);
    assert_true(total >= 6);
    assert_int_equal(right, total);
    /* the signed audit report of the same scan, and it verifies */
    assert_non_null(strstr(out, "4. tokmark report"));
    char rdir[600];
    snprintf(rdir, sizeof rdir, "%s/report", cache);
    const char *av[] = {"report", "verify", rdir, "--evidence", NULL};
    /* every watermarked answer row says watermarked, every plain answer not_detected */
    for (const char *q = out; (q = strstr(q, "answer, ")) != NULL; q++) {
        const char *eol = strchr(q, '\n');
        assert_non_null(eol);
        int wm = strncmp(q, "answer, watermarked", 19) == 0;
        const char *v = strstr(q, wm ? " watermarked\n" : " not_detected\n");
        assert_true(v != NULL && v < eol + 1);
    }
    free(out);
    assert_int_equal(run_tool(NULL, av), 0);

    /* again with a fresh key: written 0600; the model comes from the cache */
    const char *a2[] = {"demo", "--quick", "--corpus", g_corpus, "--cache", cache, NULL};
    assert_int_equal(run_tool(NULL, a2), 0);
    out = read_bytes("stdout", NULL);
    assert_non_null(strstr(out, "cached: order 3"));
    free(out);
    char fresh[600];
    snprintf(fresh, sizeof fresh, "%s/demo.key", cache);
    struct stat st;
    assert_int_equal(stat(fresh, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(fresh, sizeof fresh, "%s/demo-signing.key", cache);
    assert_int_equal(stat(fresh, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(fresh, sizeof fresh, "%s/report/report.pdf", cache); /* the second run replaced the report */
    assert_int_equal(stat(fresh, &st), 0);
    assert_true(st.st_size > 1000);
    /* bad usage */
    const char *a3[] = {"demo", "--scheme", "nope", NULL};
    assert_int_equal(run_tool(NULL, a3), 2);
}

int main(int argc, char **argv) {
    (void)argc;
    cu_find_tool(argv[0]);
    if (tokmark_init() != TOKMARK_OK) return 1;
    char cwd[512];
    if (getcwd(cwd, sizeof cwd) == NULL) return 1;
    snprintf(g_corpus, sizeof g_corpus, "%s/data/corpus", cwd);
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/heldout", g_corpus);
    struct stat st;
    if (stat(probe, &st) != 0) {
        fprintf(stderr, "test_eval: %s is missing: running scripts/build-corpus.sh (about a minute)\n", g_corpus);
        if (system("sh scripts/build-corpus.sh data/corpus >/dev/null") != 0) return 1;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/tokmark-test-eval-XXXXXX");
    if (mkdtemp(g_dir) == NULL) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corrupt_rates), cmocka_unit_test(test_corrupt_uniform),
        cmocka_unit_test(test_kl),            cmocka_unit_test(test_tokens_until),
        cmocka_unit_test(test_median),        cmocka_unit_test(test_clopper_pearson),
        cmocka_unit_test(test_svg),           cmocka_unit_test(test_demo),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
