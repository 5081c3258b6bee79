/* test_compat.c — compatibility profiles (SPEC.md §10): every case of every
 * file of testvectors/compat/ bit-exactly, tokmark's exact p-values, null
 * calibration, the streaming detector, compat profile files, and the CLI
 * (tokmark keygen --compat, keyinfo, compat-detect) end to end.
 *
 *   mt19937     torch CPU random(), randperm (first k + SHA-256), randint(0,2)
 *   hf_kgw      seeds, green flags, totals, z (hex), transformers' p (1e-15),
 *               greenlist records, too-short errors
 *   lmw_kgw     the same, first occurrences, both ignore_repeated_ngrams
 *               settings, z_score_at_T in float32 bit for bit
 *   synthid_*   sampling table / hash IV, n-gram keys, context hashes,
 *               g-values, masks, mean (hex), weighted mean (rel 1e-12)
 *   exact p     printed for each case; finite, in (−∞, 0], agrees with the
 *               normal tail where the sample is large
 *   null        random sequences under random keys: FPR at α = 1e-2 inside
 *               the exact 99.9% binomial interval
 *
 * Run from the repository root (the vectors are found relative to it). */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "cliutil.h"
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat.h"
#include "testutil.h"
#include "tokmark.h"

#define LN10 2.302585092994045684017991454684364
#define CHECK TU_CHECK
#define OK TU_OK


/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static FILE *open_vectors(const char *name) {
    static const char *prefixes[] = {"", "../", "../../"};
    char path[512];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%stestvectors/compat/%s", prefixes[i], name);
        FILE *f = fopen(path, "r");
        if (f != NULL) return f;
    }
    fail_msg("testvectors/compat/%s not found (run the tests from the repository root)", name);
    return NULL;
}

/* Each line of a vector file as a JSON object; *count lines. */
static json_t **read_cases(const char *name, size_t *count) {
    FILE *f = open_vectors(name);
    size_t n = 0, cap = 64;
    json_t **v = (json_t **)malloc(cap * sizeof *v);
    assert_non_null(v);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0) {
        json_error_t err;
        json_t *j = json_loadb(line, (size_t)len, 0, &err);
        if (j == NULL) fail_msg("%s:%zu: %s", name, n + 1, err.text);
        if (n == cap) {
            cap *= 2;
            v = (json_t **)realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        v[n++] = j;
    }
    free(line);
    fclose(f);
    CHECK(n > 0, "%s: no cases", name);
    *count = n;
    return v;
}

static void free_cases(json_t **v, size_t n) {
    for (size_t i = 0; i < n; i++) json_decref(v[i]);
    free(v);
}

static json_t *jget(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (v == NULL) fail_msg("missing field '%s'", key);
    return v;
}

static uint64_t ju64(json_t *o, const char *key) { /* decimal string */
    const char *s = json_string_value(jget(o, key));
    CHECK(s != NULL, "%s: not a string", key);
    return strtoull(s, NULL, 10);
}

static int64_t js64(json_t *v) {
    const char *s = json_string_value(v);
    CHECK(s != NULL, "not a decimal string");
    return strtoll(s, NULL, 10);
}

static int64_t jint(json_t *o, const char *key) { return json_integer_value(jget(o, key)); }
static double jreal(json_t *o, const char *key) { return json_number_value(jget(o, key)); }
static const char *jstr(json_t *o, const char *key) { return json_string_value(jget(o, key)); }

static double jhex(json_t *o, const char *key) {
    const char *s = jstr(o, key);
    CHECK(s != NULL, "%s: not a string", key);
    return strtod(s, NULL);
}

static int32_t *jids(json_t *o, const char *key, size_t *n) {
    json_t *a = jget(o, key);
    *n = json_array_size(a);
    int32_t *ids = (int32_t *)malloc((*n + 1) * sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return ids;
}

/* bits[0..n) equals the '0'/'1' string s of length n. */
static void check_bits(const char *id, const char *what, const char *s, const uint8_t *bits, size_t n) {
    CHECK(s != NULL && strlen(s) == n, "%s: %s has length %zu, expected %zu", id, what, s ? strlen(s) : 0, n);
    for (size_t i = 0; i < n; i++)
        CHECK(bits[i] == (uint8_t)(s[i] - '0'), "%s: %s differs at %zu (got %u)", id, what, i, bits[i]);
}

static void sha256_hex(const void *data, size_t n, char out[65]) {
    uint8_t h[32];
    unsigned hl = 0;
    assert_int_equal(EVP_Digest(data, n, h, &hl, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static int same_double(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

/* log10 of the standard normal upper tail. */
static double log10_norm_sf(double z) { return log10(0.5 * erfc(z / sqrt(2.0))); }

/* The profile's greenlist-size from its description. */
static uint32_t greenlist_size(const tokmark_compat *c) {
    char buf[1024];
    tokmark_compat_describe(c, buf, sizeof buf);
    const char *p = strstr(buf, "greenlist-size ");
    CHECK(p != NULL, "describe lacks greenlist-size: %s", buf);
    return (uint32_t)strtoul(p + 15, NULL, 10);
}

/* The exact p of a case: printed, and checked for sanity against z. */
static void check_exact_p(const char *id, const tokmark_compat_score *s) {
    print_message("  %-20s T=%-5llu hits=%-6llu trials=%-6llu z=%8.3f  log10 p exact %10.4f%s\n", id,
                  (unsigned long long)s->scored, (unsigned long long)s->hits, (unsigned long long)s->trials,
                  s->z, s->log10_p, isnan(s->p_reference) ? "" : "  (reference p shown below)");
    CHECK(isfinite(s->log10_p) && s->log10_p <= 0.0, "%s: log10 p %g", id, s->log10_p);
    /* the exact tail from the counts themselves, through the public function */
    const double want = tokmark_ln_sf_binomial(s->hits, s->trials, s->null_p) / LN10;
    CHECK(same_double(s->log10_p, want), "%s: log10 p %.17g, binomial %.17g", id, s->log10_p, want);
    /* large samples: close to the continuity-corrected normal tail of the binomial z */
    const double N = (double)s->trials, q = s->null_p;
    if (N >= 100 && N * q >= 10 && N * (1 - q) >= 10) {
        const double zc = ((double)s->hits - 0.5 - q * N) / sqrt(N * q * (1 - q));
        if (fabs(zc) <= 4.0) {
            const double nl = log10_norm_sf(zc);
            CHECK(fabs(s->log10_p - nl) < 0.35, "%s: exact log10 p %.4f vs normal %.4f (z %.3f)", id, s->log10_p,
                  nl, zc);
        }
    }
    if (s->hits > 0 && (double)s->hits > q * N) CHECK(s->log10_p < 0.0, "%s: p = 1 above the mean", id);
}

/* ------------------------------------------------------------------------ */
/* mt19937.jsonl                                                              */
/* ------------------------------------------------------------------------ */

static void test_mt19937(void **state) {
    (void)state;
    size_t n;
    json_t **cases = read_cases("mt19937.jsonl", &n);
    int counts[3] = {0, 0, 0};
    for (size_t c = 0; c < n; c++) {
        json_t *j = cases[c];
        const char *id = jstr(j, "id"), *kind = jstr(j, "kind");
        const uint64_t seed = ju64(j, "seed");
        if (strcmp(kind, "random32") == 0) {
            CHECK((seed & 0xffffffffu) == (uint64_t)jint(j, "seed_low32"), "%s: seed_low32", id);
            tm_mt m;
            tm_mt_seed(&m, seed);
            json_t *f8 = jget(j, "first8");
            for (size_t i = 0; i < 8; i++) {
                uint32_t got = tm_mt_next(&m);
                CHECK(got == (uint32_t)json_integer_value(json_array_get(f8, i)), "%s: output %zu: %u", id, i, got);
            }
            /* random64 is two draws, the first one high */
            tm_mt_seed(&m, seed);
            uint64_t r64 = tm_mt_next64(&m);
            CHECK(r64 == (((uint64_t)json_integer_value(json_array_get(f8, 0)) << 32) |
                          (uint64_t)json_integer_value(json_array_get(f8, 1))),
                  "%s: random64", id);
            counts[0]++;
        } else if (strcmp(kind, "randperm") == 0) {
            const uint32_t pn = (uint32_t)jint(j, "n");
            const size_t k = (size_t)jint(j, "k");
            int32_t *perm = (int32_t *)malloc(sizeof(int32_t) * pn);
            int64_t *p64 = (int64_t *)malloc(sizeof(int64_t) * pn);
            assert_non_null(perm);
            assert_non_null(p64);
            tm_randperm(seed, pn, perm);
            json_t *fk = jget(j, "first_k");
            for (size_t i = 0; i < k; i++)
                CHECK(perm[i] == (int32_t)json_integer_value(json_array_get(fk, i)), "%s: entry %zu", id, i);
            for (uint32_t i = 0; i < pn; i++) {
                uint8_t b[8];
                for (int q = 0; q < 8; q++) b[q] = (uint8_t)((uint64_t)perm[i] >> (8 * q));
                memcpy(&p64[i], b, 8);
            }
            char hex[65];
            sha256_hex(p64, sizeof(int64_t) * pn, hex);
            CHECK(strcmp(hex, jstr(j, "sha256_int64le")) == 0, "%s: sha256 %s", id, hex);
            free(perm);
            free(p64);
            counts[1]++;
        } else if (strcmp(kind, "randint2") == 0) {
            const uint32_t S = (uint32_t)jint(j, "size");
            uint8_t *t = (uint8_t *)malloc(S);
            assert_non_null(t);
            tm_randint2(seed, S, t);
            uint32_t ones = 0;
            for (uint32_t i = 0; i < S; i++) ones += t[i];
            CHECK(ones == (uint32_t)jint(j, "ones"), "%s: ones %u", id, ones);
            check_bits(id, "first64", jstr(j, "first64"), t, 64);
            char hex[65];
            sha256_hex(t, S, hex);
            CHECK(strcmp(hex, jstr(j, "sha256_u8")) == 0, "%s: sha256 %s", id, hex);
            free(t);
            counts[2]++;
        } else {
            fail_msg("%s: unknown kind %s", id, kind);
        }
    }
    print_message("  mt19937: %d random32, %d randperm, %d randint2 cases\n", counts[0], counts[1], counts[2]);
    CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] > 0, "a kind is missing");
    free_cases(cases, n);
}

/* Greenlist membership by tracking equals membership in the materialised
 * permutation, for every token, on small vocabularies (incl. gs = 0 and V-1). */
static void test_green_tracking(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 77);
    const uint32_t Vs[] = {2, 3, 10, 257, 1000};
    const double ratios[] = {0.001, 0.1, 0.25, 0.5, 0.9, 0.999};
    size_t checked = 0;
    for (size_t a = 0; a < sizeof Vs / sizeof Vs[0]; a++)
        for (size_t b = 0; b < sizeof ratios / sizeof ratios[0]; b++) {
            tokmark_compat_config cfg;
            tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_HF_KGW);
            cfg.vocab_size = Vs[a];
            cfg.greenlist_ratio = ratios[b];
            tokmark_compat *c = NULL;
            OK(tokmark_compat_create(&c, &cfg));
            const uint32_t V = Vs[a], gs = greenlist_size(c);
            CHECK(gs == (uint32_t)((double)V * ratios[b]), "greenlist size %u", gs);
            int32_t *perm = (int32_t *)malloc(sizeof(int32_t) * V);
            uint8_t *in = (uint8_t *)malloc(V);
            assert_non_null(perm);
            assert_non_null(in);
            for (int s = 0; s < 20; s++) {
                uint64_t seed = tu_next(&r);
                tm_randperm(seed, V, perm);
                memset(in, 0, V);
                for (uint32_t i = 0; i < gs; i++) in[perm[i]] = 1;
                for (uint32_t t = 0; t < V; t++) {
                    CHECK(tokmark_compat_is_green(c, seed, t) == in[t], "V=%u r=%g seed=%llu token %u", V,
                          ratios[b], (unsigned long long)seed, t);
                    checked++;
                }
                CHECK(!tokmark_compat_is_green(c, seed, -1) && !tokmark_compat_is_green(c, seed, V), "out of range");
            }
            free(perm);
            free(in);
            tokmark_compat_free(c);
        }
    print_message("  tracking agrees with the permutation on %zu (seed, token) pairs\n", checked);

    /* the greenlist cache (materialised greenlists of repeated LeftHash seeds)
     * gives the same flags as tracking: many repeats of few tokens */
    const tokmark_compat_kind kinds[2] = {TOKMARK_COMPAT_HF_KGW, TOKMARK_COMPAT_LMW_KGW};
    for (int k = 0; k < 2; k++) {
        tokmark_compat_config cfg;
        tokmark_compat_config_default(&cfg, kinds[k]);
        cfg.vocab_size = 5000;
        cfg.greenlist_ratio = 0.5;
        cfg.hashing_key = tu_next(&r) >> 1;
        tokmark_compat *c = NULL;
        OK(tokmark_compat_create(&c, &cfg));
        enum { L = 20000 };
        int32_t *ids = (int32_t *)malloc(L * sizeof *ids);
        uint8_t *green = (uint8_t *)malloc(L);
        uint64_t *seeds = (uint64_t *)malloc(L * sizeof *seeds);
        assert_true(ids && green && seeds);
        for (size_t i = 0; i < L; i++) /* a few hundred frequent ids (cache hits and evictions), some rare */
            ids[i] = (int32_t)(tu_next(&r) % 8 == 0 ? tu_next(&r) % 5000 : tu_next(&r) % 300);
        tokmark_compat_outputs out = {green, NULL, seeds, NULL, NULL, NULL, NULL};
        tokmark_compat_score s;
        OK(tokmark_compat_score_ids(c, ids, L, 0, &out, &s));
        uint64_t g = 0;
        for (size_t j = 0; j < s.positions; j++) {
            CHECK(seeds[j] == tokmark_compat_seed(c, ids + j), "seed %zu", j);
            CHECK(green[j] == tokmark_compat_is_green(c, seeds[j], ids[j + 1]), "cached flag %zu", j);
            g += green[j];
        }
        CHECK(g == s.hits && s.positions == L - 1, "totals");
        free(ids);
        free(green);
        free(seeds);
        tokmark_compat_free(c);
    }
}

/* ------------------------------------------------------------------------ */
/* KGW                                                                        */
/* ------------------------------------------------------------------------ */

static void hf_config(json_t *cfgj, tokmark_compat_config *cfg) {
    tokmark_compat_config_default(cfg, TOKMARK_COMPAT_HF_KGW);
    cfg->vocab_size = (uint32_t)jint(cfgj, "vocab_size");
    cfg->greenlist_ratio = jreal(cfgj, "greenlist_ratio");
    cfg->hashing_key = ju64(cfgj, "hashing_key");
    cfg->seeding = tokmark_seeding_parse(jstr(cfgj, "seeding_scheme"));
    cfg->context_width = (uint32_t)jint(cfgj, "context_width");
    json_t *bos = json_object_get(cfgj, "bos_token_id");
    cfg->bos_token_id = (bos == NULL || json_is_null(bos)) ? -1 : json_integer_value(bos);
}

static void lmw_config(json_t *j, tokmark_compat_config *cfg) {
    json_t *cfgj = jget(j, "config"), *e = jget(j, "expected");
    tokmark_compat_config_default(cfg, TOKMARK_COMPAT_LMW_KGW);
    cfg->vocab_size = (uint32_t)jint(cfgj, "vocab_size");
    cfg->greenlist_ratio = jreal(cfgj, "gamma");
    json_t *bos = json_object_get(cfgj, "bos_token_id");
    cfg->bos_token_id = (bos == NULL || json_is_null(bos)) ? -1 : json_integer_value(bos);
    const char *scheme = jstr(cfgj, "seeding_scheme");
    if (json_object_get(e, "prf_type") != NULL) {
        const char *prf = jstr(e, "prf_type");
        cfg->seeding = strcmp(prf, "additive_prf") == 0 ? TOKMARK_SEEDING_LEFTHASH : TOKMARK_SEEDING_SELFHASH;
        CHECK(strcmp(prf, "additive_prf") == 0 || strcmp(prf, "anchored_minhash_prf") == 0, "prf %s", prf);
        cfg->context_width = (uint32_t)jint(e, "context_width");
        cfg->self_salt = json_is_true(jget(e, "self_salt")) ? 1u : 0u;
        cfg->hashing_key = ju64(e, "hash_key");
    } else if (strcmp(scheme, "lefthash") == 0) { /* error cases: the named defaults */
        cfg->seeding = TOKMARK_SEEDING_LEFTHASH;
        cfg->context_width = 1;
    } else {
        CHECK(strcmp(scheme, "selfhash") == 0, "scheme %s", scheme);
        cfg->seeding = TOKMARK_SEEDING_SELFHASH;
        cfg->context_width = 4;
        cfg->self_salt = 1;
    }
}

/* One KGW detect case: per-position values, and both detector objects. */
static void kgw_detect_case(json_t *j, int lmw, int *nrep) {
    const char *id = jstr(j, "id");
    json_t *e = jget(j, "expected");
    tokmark_compat_config cfg;
    if (lmw) lmw_config(j, &cfg);
    else hf_config(jget(j, "config"), &cfg);
    tokmark_compat *c = NULL;
    OK(tokmark_compat_create(&c, &cfg));
    CHECK(greenlist_size(c) == (uint32_t)jint(e, "greenlist_size"), "%s: greenlist size", id);
    size_t n;
    int32_t *ids = jids(j, "input_ids", &n);
    uint8_t *green = (uint8_t *)malloc(n), *first = (uint8_t *)malloc(n);
    uint64_t *seeds = (uint64_t *)malloc(n * sizeof *seeds);
    float *zt = (float *)malloc(n * sizeof *zt);
    assert_true(green && first && seeds && zt);
    json_t *dets = jget(e, "detector");
    CHECK(json_array_size(dets) == 2, "%s: two detector objects", id);
    for (size_t k = 0; k < 2; k++) {
        json_t *dj = json_array_get(dets, k);
        const int ignore = json_is_true(jget(dj, "ignore_repeated_ngrams"));
        CHECK(ignore == (int)k, "%s: detector order", id);
        tokmark_compat_outputs out = {green, first, seeds, zt, NULL, NULL, NULL};
        tokmark_compat_score s;
        OK(tokmark_compat_score_ids(c, ids, n, ignore, &out, &s));
        const size_t P = (size_t)jint(e, "num_positions");
        CHECK(s.bos_stripped == json_is_true(jget(e, "bos_stripped")), "%s: bos_stripped", id);
        CHECK(s.positions == P, "%s: positions %zu", id, s.positions);
        CHECK(s.first_index == (size_t)jint(e, "first_scored_index"), "%s: first index", id);
        CHECK(s.first_index - (size_t)s.bos_stripped + 1 == (size_t)jint(e, "ngram_len"), "%s: ngram_len", id);
        check_bits(id, "green", jstr(e, "green"), green, P);
        if (lmw) check_bits(id, "first_occurrence", jstr(e, "first_occurrence"), first, P);
        json_t *sj = jget(e, "seeds");
        CHECK(json_array_size(sj) == P, "%s: seeds", id);
        for (size_t i = 0; i < P; i++)
            CHECK(seeds[i] == (uint64_t)strtoull(json_string_value(json_array_get(sj, i)), NULL, 10),
                  "%s: seed %zu: %llu", id, i, (unsigned long long)seeds[i]);
        CHECK(s.scored == (uint64_t)jint(dj, "num_tokens_scored"), "%s/%zu: T %llu", id, k,
              (unsigned long long)s.scored);
        CHECK(s.hits == (uint64_t)jint(dj, "num_green_tokens"), "%s/%zu: G %llu", id, k, (unsigned long long)s.hits);
        CHECK(same_double(s.mean, jreal(dj, "green_fraction")), "%s: green_fraction", id);
        CHECK(same_double(s.z, jhex(dj, "z_score_hex")), "%s/%zu: z %a vs %s", id, k, s.z, jstr(dj, "z_score_hex"));
        CHECK(same_double(s.z, jreal(dj, "z_score")), "%s: z decimal", id);
        if (!lmw) {
            CHECK(fabs(s.p_reference - jhex(dj, "p_value_hex")) <= 1e-15, "%s: reference p %.17g vs %s", id,
                  s.p_reference, jstr(dj, "p_value_hex"));
            CHECK((s.z > 3.0) == json_is_true(jget(dj, "prediction")), "%s: prediction", id);
            CHECK(s.scored == s.positions, "%s: transformers scores every position", id);
        } else {
            CHECK(isnan(s.p_reference), "%s: no reference p for lm-watermarking", id);
            json_t *za = jget(dj, "z_score_at_T");
            CHECK(json_array_size(za) == P, "%s: z_score_at_T length", id);
            for (size_t i = 0; i < P; i++) {
                const float want = (float)json_number_value(json_array_get(za, i));
                CHECK(memcmp(&zt[i], &want, sizeof want) == 0, "%s/%zu: z_at_T[%zu] %.9g vs %.9g", id, k, i,
                      (double)zt[i], (double)want);
            }
        }
        if (k == 1 && s.scored != s.positions) (*nrep)++;
        if (k == (size_t)lmw) {
            check_exact_p(id, &s);
            if (!lmw)
                print_message("  %-20s reference p %.6g, exact p 10^%.4f\n", "", s.p_reference, s.log10_p);
            /* transformers' approximation is 0 (or coarse) far out; the exact p is always finite */
            if (!lmw && s.z >= 10.0) CHECK(s.p_reference < 1e-20 && s.log10_p > -400, "%s: far tail", id);
        }
    }
    free(green);
    free(first);
    free(seeds);
    free(zt);
    free(ids);
    tokmark_compat_free(c);
}

static void kgw_error_case(json_t *j, int lmw) {
    const char *id = jstr(j, "id");
    tokmark_compat_config cfg;
    if (lmw) lmw_config(j, &cfg);
    else hf_config(jget(j, "config"), &cfg);
    tokmark_compat *c = NULL;
    OK(tokmark_compat_create(&c, &cfg));
    size_t n;
    int32_t *ids = jids(j, "input_ids", &n);
    tokmark_compat_score s;
    CHECK(strcmp(jstr(jget(j, "expected"), "error"), "ValueError") == 0, "%s: error kind", id);
    CHECK(tokmark_compat_score_ids(c, ids, n, 0, NULL, &s) == TOKMARK_ERR_TOO_SHORT, "%s: not TOO_SHORT", id);
    /* one more token makes it scorable: the rule is exactly len(s) - w < 1 */
    int32_t *more = (int32_t *)malloc((n + 1) * sizeof *more);
    assert_non_null(more);
    memcpy(more, ids, n * sizeof *ids);
    more[n] = 3;
    const int want_ok = n + 1 - (size_t)(cfg.bos_token_id >= 0 && n > 0 && ids[0] == cfg.bos_token_id) >=
                        (size_t)cfg.context_width + 1;
    const int rc = tokmark_compat_score_ids(c, more, n + 1, 0, NULL, &s);
    CHECK(want_ok ? rc == TOKMARK_OK : rc == TOKMARK_ERR_TOO_SHORT, "%s: with one more token: %s", id,
          tokmark_error_name(rc));
    free(more);
    free(ids);
    tokmark_compat_free(c);
}

static void greenlist_case(json_t *j) {
    const char *id = jstr(j, "id");
    json_t *e = jget(j, "expected");
    tokmark_compat_config cfg;
    hf_config(jget(j, "config"), &cfg);
    tokmark_compat *c = NULL;
    OK(tokmark_compat_create(&c, &cfg));
    size_t w;
    int32_t *prefix = jids(j, "prefix", &w);
    CHECK(w == cfg.context_width, "%s: prefix length", id);
    const uint64_t seed = tokmark_compat_seed(c, prefix);
    CHECK(seed == ju64(e, "seed"), "%s: seed %llu", id, (unsigned long long)seed);
    const uint32_t V = cfg.vocab_size, gs = (uint32_t)jint(e, "greenlist_size");
    CHECK(greenlist_size(c) == gs, "%s: greenlist size", id);
    int32_t *perm = (int32_t *)malloc(sizeof(int32_t) * V);
    int64_t *g64 = (int64_t *)malloc(sizeof(int64_t) * (gs + 1));
    assert_true(perm && g64);
    tm_randperm(seed, V, perm);
    json_t *fk = jget(e, "greenlist_first_k");
    const size_t k = (size_t)jint(e, "k");
    for (size_t i = 0; i < k; i++) {
        CHECK(perm[i] == (int32_t)json_integer_value(json_array_get(fk, i)), "%s: entry %zu", id, i);
        CHECK(tokmark_compat_is_green(c, seed, perm[i]), "%s: entry %zu not green", id, i);
    }
    for (uint32_t i = 0; i < gs; i++) {
        uint8_t b[8];
        for (int q = 0; q < 8; q++) b[q] = (uint8_t)((uint64_t)perm[i] >> (8 * q));
        memcpy(&g64[i], b, 8);
    }
    char hex[65];
    sha256_hex(g64, sizeof(int64_t) * gs, hex);
    CHECK(strcmp(hex, jstr(e, "greenlist_sha256")) == 0, "%s: greenlist sha256", id);
    /* the boundary: the last green entry is green, the first red ones are not */
    CHECK(tokmark_compat_is_green(c, seed, perm[gs - 1]), "%s: last green", id);
    for (uint32_t i = gs; i < gs + 16 && i < V; i++)
        CHECK(!tokmark_compat_is_green(c, seed, perm[i]), "%s: entry %u green", id, i);
    CHECK(!tokmark_compat_is_green(c, seed, perm[V - 1]), "%s: last entry green", id);
    free(perm);
    free(g64);
    free(prefix);
    tokmark_compat_free(c);
}

static void test_hf_kgw(void **state) {
    (void)state;
    size_t n;
    json_t **cases = read_cases("hf_kgw.jsonl", &n);
    int nd = 0, ne = 0, ng = 0, nrep = 0;
    for (size_t i = 0; i < n; i++) {
        const char *kind = jstr(cases[i], "kind");
        if (strcmp(kind, "detect") == 0) kgw_detect_case(cases[i], 0, &nrep), nd++;
        else if (strcmp(kind, "detect_error") == 0) kgw_error_case(cases[i], 0), ne++;
        else if (strcmp(kind, "greenlist") == 0) greenlist_case(cases[i]), ng++;
        else fail_msg("%s: unknown kind %s", jstr(cases[i], "id"), kind);
    }
    print_message("  hf_kgw: %d detect, %d errors, %d greenlists\n", nd, ne, ng);
    CHECK(nd == 48 && ne == 3 && ng == 10, "case counts");
    CHECK(nrep == 0, "ignore_repeated_ngrams changed T in transformers mode");
    free_cases(cases, n);
}

static void test_lmw_kgw(void **state) {
    (void)state;
    size_t n;
    json_t **cases = read_cases("lmw_kgw.jsonl", &n);
    int nd = 0, ne = 0, nrep = 0;
    for (size_t i = 0; i < n; i++) {
        const char *kind = jstr(cases[i], "kind");
        if (strcmp(kind, "detect") == 0) kgw_detect_case(cases[i], 1, &nrep), nd++;
        else if (strcmp(kind, "detect_error") == 0) kgw_error_case(cases[i], 1), ne++;
        else fail_msg("%s: unknown kind %s", jstr(cases[i], "id"), kind);
    }
    print_message("  lmw_kgw: %d detect (%d where dedup changes T), %d errors\n", nd, nrep, ne);
    CHECK(nd == 16 && ne == 2 && nrep == 8, "case counts");
    free_cases(cases, n);
}

/* ------------------------------------------------------------------------ */
/* SynthID                                                                    */
/* ------------------------------------------------------------------------ */

static void synthid_file(const char *file, int table_mode) {
    size_t ncases;
    json_t **cases = read_cases(file, &ncases);
    for (size_t ci = 0; ci < ncases; ci++) {
        json_t *j = cases[ci], *cj = jget(j, "config"), *e = jget(j, "expected");
        const char *id = jstr(j, "id");
        CHECK(strcmp(jstr(j, "kind"), "detect") == 0, "%s: kind", id);
        tokmark_compat_config cfg;
        tokmark_compat_config_default(&cfg, table_mode ? TOKMARK_COMPAT_HF_SYNTHID : TOKMARK_COMPAT_SYNTHID);
        cfg.ngram_len = (uint32_t)jint(cj, "ngram_len");
        json_t *keys = jget(cj, "keys");
        cfg.depth = (uint32_t)json_array_size(keys);
        CHECK(cfg.depth == (uint32_t)jint(cj, "depth"), "%s: depth", id);
        for (uint32_t d = 0; d < cfg.depth; d++) cfg.keys[d] = js64(json_array_get(keys, d));
        cfg.context_history_size = (uint32_t)jint(cj, "context_history_size");
        cfg.eos_token_id = jint(cj, "eos_token_id");
        if (table_mode) {
            cfg.sampling_table_size = (uint32_t)jint(cj, "sampling_table_size");
            cfg.sampling_table_seed = ju64(cj, "sampling_table_seed");
            uint8_t *t = (uint8_t *)malloc(cfg.sampling_table_size);
            assert_non_null(t);
            tm_randint2(cfg.sampling_table_seed, cfg.sampling_table_size, t);
            uint32_t ones = 0;
            for (uint32_t i = 0; i < cfg.sampling_table_size; i++) ones += t[i];
            CHECK(ones == (uint32_t)jint(e, "sampling_table_ones"), "%s: table ones", id);
            check_bits(id, "sampling_table_first64", jstr(e, "sampling_table_first64"), t, 64);
            char hex[65];
            sha256_hex(t, cfg.sampling_table_size, hex);
            CHECK(strcmp(hex, jstr(e, "sampling_table_sha256")) == 0, "%s: table sha256", id);
            free(t);
        } else {
            uint64_t iv = 0;
            assert_int_equal(tm_synthid_hash_iv(cfg.keys, cfg.depth, &iv), 0);
            CHECK(iv == ju64(e, "hash_iv"), "%s: hash_iv %llu", id, (unsigned long long)iv);
        }
        tokmark_compat *c = NULL;
        OK(tokmark_compat_create(&c, &cfg));
        size_t n;
        int32_t *ids = jids(j, "input_ids", &n);
        const uint32_t D = cfg.depth, nl = cfg.ngram_len;
        const size_t P = (size_t)jint(e, "num_positions");
        /* debug: n-gram keys and context hashes of the first positions */
        json_t *dbg = jget(e, "debug"), *nk = jget(dbg, "ngram_keys_first3"), *ch = jget(dbg, "context_hashes_first3");
        CHECK(json_array_size(nk) == (P < 3 ? P : 3) && json_array_size(ch) == json_array_size(nk), "%s: debug", id);
        for (size_t p = 0; p < json_array_size(nk); p++) {
            CHECK((int64_t)tm_synthid_context_hash(c, ids + p) == js64(json_array_get(ch, p)), "%s: context hash %zu",
                  id, p);
            for (uint32_t d = 0; d < D; d++)
                CHECK((int64_t)tm_synthid_ngram_key(c, ids + p, d) == js64(json_array_get(json_array_get(nk, p), d)),
                      "%s: ngram key %zu/%u", id, p, d);
        }
        uint8_t *g = (uint8_t *)malloc(n * D), *rep = (uint8_t *)malloc(n), *eos = (uint8_t *)malloc(n);
        uint8_t *comb = (uint8_t *)malloc(n);
        assert_true(g && rep && eos && comb);
        tokmark_compat_outputs out = {NULL, NULL, NULL, NULL, g, rep, eos};
        tokmark_compat_score s;
        OK(tokmark_compat_score_ids(c, ids, n, 0, &out, &s));
        CHECK(s.positions == P && s.first_index == (size_t)jint(e, "first_position_index"), "%s: positions", id);
        CHECK(s.first_index == nl - 1, "%s: first index", id);
        json_t *gv = jget(e, "g_values");
        CHECK(json_array_size(gv) == P, "%s: g_values length", id);
        for (size_t p = 0; p < P; p++) check_bits(id, "g_values", json_string_value(json_array_get(gv, p)), g + p * D, D);
        check_bits(id, "context_repetition_mask", jstr(e, "context_repetition_mask"), rep, P);
        check_bits(id, "eos_mask", jstr(e, "eos_mask"), eos, P);
        uint64_t U = 0, num = 0;
        for (size_t p = 0; p < P; p++) {
            comb[p] = (uint8_t)(rep[p] & eos[p]);
            U += comb[p];
            if (comb[p])
                for (uint32_t d = 0; d < D; d++) num += g[p * D + d];
        }
        check_bits(id, "combined_mask", jstr(e, "combined_mask"), comb, P);
        CHECK(s.scored == U && U == (uint64_t)jint(e, "num_unmasked"), "%s: num_unmasked %llu", id,
              (unsigned long long)s.scored);
        CHECK(s.hits == num && num == (uint64_t)jint(e, "mean_score_numerator"), "%s: numerator", id);
        CHECK(s.trials == (uint64_t)jint(e, "mean_score_denominator"), "%s: denominator", id);
        CHECK(same_double(s.mean, jhex(e, "mean_score_hex")), "%s: mean %a vs %s", id, s.mean, jstr(e, "mean_score_hex"));
        const double wm = jhex(e, "weighted_mean_score_hex");
        CHECK(fabs(s.weighted_mean - wm) <= 1e-12 * fabs(wm), "%s: weighted mean %.17g vs %.17g", id, s.weighted_mean,
              wm);
        check_exact_p(id, &s);
        if (!table_mode || 2 * (uint64_t)jint(e, "sampling_table_ones") == cfg.sampling_table_size) {
            CHECK(isfinite(s.log10_p_weighted) && s.log10_p_weighted <= 0.0, "%s: weighted p %g", id,
                  s.log10_p_weighted);
            /* D = 1: the weighted score is the mean score */
            if (D == 1) CHECK(fabs(s.log10_p_weighted - s.log10_p) <= 1e-9 * fabs(s.log10_p) + 1e-12, "%s", id);
            print_message("  %-20s weighted: log10 p exact %.4f\n", "", s.log10_p_weighted);
        } else {
            CHECK(isnan(s.log10_p_weighted), "%s: weighted p with a biased table", id);
        }
        free(g);
        free(rep);
        free(eos);
        free(comb);
        free(ids);
        tokmark_compat_free(c);
    }
    print_message("  %s: %zu cases\n", file, ncases);
    CHECK(ncases == 13, "case count");
    free_cases(cases, ncases);
}

static void test_synthid_hf(void **state) {
    (void)state;
    synthid_file("synthid_hf.jsonl", 1);
}

static void test_synthid_head(void **state) {
    (void)state;
    synthid_file("synthid_head.jsonl", 0);
}

/* ------------------------------------------------------------------------ */
/* Streaming detector                                                         */
/* ------------------------------------------------------------------------ */

/* KGW: the detector scores each distinct (seed mod 2^32, token) once; the
 * expected counts follow from the vectors' own seeds and green flags. */
static void stream_kgw_file(const char *file, int lmw) {
    size_t ncases;
    json_t **cases = read_cases(file, &ncases);
    int done = 0;
    for (size_t ci = 0; ci < ncases; ci++) {
        json_t *j = cases[ci];
        if (strcmp(jstr(j, "kind"), "detect") != 0) continue;
        json_t *e = jget(j, "expected");
        tokmark_compat_config cfg;
        if (lmw) lmw_config(j, &cfg);
        else hf_config(jget(j, "config"), &cfg);
        tokmark_compat *c = NULL;
        tokmark_compat_detector *d = NULL;
        OK(tokmark_compat_create(&c, &cfg));
        OK(tokmark_compat_detector_create(&d, c, 4096));
        size_t n;
        int32_t *ids = jids(j, "input_ids", &n);
        const size_t P = (size_t)jint(e, "num_positions"), f0 = (size_t)jint(e, "first_scored_index");
        const char *green = jstr(e, "green");
        json_t *sj = jget(e, "seeds");
        uint64_t *units = (uint64_t *)malloc(P * sizeof *units);
        assert_non_null(units);
        uint64_t scored = 0, hits = 0;
        for (size_t p = 0; p < P; p++) {
            const uint64_t seed = strtoull(json_string_value(json_array_get(sj, p)), NULL, 10);
            const uint64_t u = ((seed & 0xffffffffu) << 32) | (uint32_t)ids[f0 + p];
            int seen = 0;
            for (size_t q = 0; q < scored && !seen; q++) seen = units[q] == u;
            if (!seen) {
                units[scored++] = u;
                hits += (uint64_t)(green[p] == '1');
            }
        }
        tokmark_compat_detector_begin(d);
        size_t half = n / 3; /* feed in two pieces */
        tokmark_compat_detector_feed(d, ids, half);
        tokmark_compat_detector_feed(d, ids + half, n - half);
        tokmark_result r;
        tokmark_compat_detector_document(d, &r);
        CHECK(r.tokens == n && r.scored == scored && (double)hits == r.statistic && r.duplicates == P - scored &&
                  r.dropped == 0,
              "%s: stream scored %llu (want %llu) green %g (want %llu) dups %llu", jstr(j, "id"),
              (unsigned long long)r.scored, (unsigned long long)scored, r.statistic, (unsigned long long)hits,
              (unsigned long long)r.duplicates);
        CHECK(same_double(r.log10_p, tokmark_ln_sf_binomial(hits, scored, (double)greenlist_size(c) / cfg.vocab_size) / LN10),
              "%s: stream p", jstr(j, "id"));
        CHECK(strcmp(r.key_id, tokmark_compat_key_id(c)) == 0, "key id");
        /* the same document again: nothing new for the corpus */
        tokmark_compat_detector_begin(d);
        tokmark_compat_detector_feed(d, ids, n);
        tokmark_result r2, rc;
        tokmark_compat_detector_document(d, &r2);
        tokmark_compat_detector_corpus(d, &rc);
        CHECK(r2.scored == scored && rc.scored == scored && rc.tokens == 2 * n && rc.duplicates == 2 * P - scored,
              "%s: corpus dedup", jstr(j, "id"));
        tokmark_compat_detector_reset(d);
        tokmark_compat_detector_corpus(d, &rc);
        CHECK(rc.tokens == 0 && rc.scored == 0 && rc.log10_p == 0.0, "reset");
        free(units);
        free(ids);
        tokmark_compat_detector_free(d);
        tokmark_compat_free(c);
        done++;
    }
    print_message("  %s: %d documents streamed\n", file, done);
    free_cases(cases, ncases);
}

/* SynthID: scored = the distinct n-grams among the unmasked positions. */
static void stream_synthid_file(const char *file, int table_mode) {
    size_t ncases;
    json_t **cases = read_cases(file, &ncases);
    for (size_t ci = 0; ci < ncases; ci++) {
        json_t *j = cases[ci], *cj = jget(j, "config"), *e = jget(j, "expected");
        tokmark_compat_config cfg;
        tokmark_compat_config_default(&cfg, table_mode ? TOKMARK_COMPAT_HF_SYNTHID : TOKMARK_COMPAT_SYNTHID);
        cfg.ngram_len = (uint32_t)jint(cj, "ngram_len");
        json_t *keys = jget(cj, "keys");
        cfg.depth = (uint32_t)json_array_size(keys);
        for (uint32_t d = 0; d < cfg.depth; d++) cfg.keys[d] = js64(json_array_get(keys, d));
        cfg.context_history_size = (uint32_t)jint(cj, "context_history_size");
        cfg.eos_token_id = jint(cj, "eos_token_id");
        if (table_mode) {
            cfg.sampling_table_size = (uint32_t)jint(cj, "sampling_table_size");
            cfg.sampling_table_seed = ju64(cj, "sampling_table_seed");
        }
        tokmark_compat *c = NULL;
        tokmark_compat_detector *d = NULL;
        OK(tokmark_compat_create(&c, &cfg));
        OK(tokmark_compat_detector_create(&d, c, 0));
        size_t n;
        int32_t *ids = jids(j, "input_ids", &n);
        const size_t P = (size_t)jint(e, "num_positions");
        const uint32_t nl = cfg.ngram_len, D = cfg.depth;
        const char *comb = jstr(e, "combined_mask");
        json_t *gv = jget(e, "g_values");
        uint64_t scored = 0, hits = 0;
        for (size_t p = 0; p < P; p++) {
            if (comb[p] != '1') continue;
            int seen = 0;
            for (size_t q = 0; q < p && !seen; q++)
                seen = comb[q] == '1' && memcmp(ids + q, ids + p, nl * sizeof(int32_t)) == 0;
            if (seen) continue;
            scored++;
            const char *gs = json_string_value(json_array_get(gv, p));
            for (uint32_t k = 0; k < D; k++) hits += (uint64_t)(gs[k] == '1');
        }
        tokmark_compat_detector_begin(d);
        for (size_t i = 0; i < n; i++) tokmark_compat_detector_feed(d, ids + i, 1);
        tokmark_result r;
        tokmark_compat_detector_document(d, &r);
        CHECK(r.scored == scored && same_double(r.statistic, (double)hits / (double)(scored * D)),
              "%s: stream scored %llu (want %llu), mean %g", jstr(j, "id"), (unsigned long long)r.scored,
              (unsigned long long)scored, r.statistic);
        CHECK(isfinite(r.log10_p) && r.log10_p <= 0.0, "p");
        free(ids);
        tokmark_compat_detector_free(d);
        tokmark_compat_free(c);
    }
    free_cases(cases, ncases);
}

static void test_stream(void **state) {
    (void)state;
    stream_kgw_file("hf_kgw.jsonl", 0);
    stream_kgw_file("lmw_kgw.jsonl", 1);
    stream_synthid_file("synthid_hf.jsonl", 1);
    stream_synthid_file("synthid_head.jsonl", 0);
}

/* ------------------------------------------------------------------------ */
/* Null calibration                                                           */
/* ------------------------------------------------------------------------ */

/* The two-sided 99.9% acceptance interval of a Binomial(N, a) count (lgamma
 * pmf summed in long double, independent of the library). */
static void fpr_interval(size_t N, double a, double *lo, double *hi) {
    const long double Nl = (long double)N, la = logl((long double)a), lq = log1pl(-(long double)a);
    const long double c = lgammal(Nl + 1);
    long double cdf = 0.0L;
    int have_lo = 0;
    *lo = 0.0;
    for (size_t k = 0; k <= N; k++) {
        const long double kl = (long double)k;
        cdf += expl(c - lgammal(kl + 1) - lgammal(Nl - kl + 1) + kl * la + (Nl - kl) * lq);
        if (!have_lo && cdf > 0.0005L) {
            *lo = (double)k;
            have_lo = 1;
        }
        if (cdf >= 0.9995L) {
            *hi = (double)k;
            return;
        }
    }
    *hi = (double)N;
}

/* Randomised p = P(X > x) + u P(X = x) (exactly uniform under the null) and
 * the plain p = P(X >= x), for X ~ Binomial(N, q). */
static void binom_p(uint64_t x, uint64_t N, double q, double u, double *plain, double *rnd) {
    const double ge = exp(tokmark_ln_sf_binomial(x, N, q)), gt = exp(tokmark_ln_sf_binomial(x + 1, N, q));
    *plain = ge;
    *rnd = gt + u * (ge - gt);
}

static void calib_report(const char *name, size_t N, size_t kp, size_t kr) {
    double lo, hi;
    const double alpha = 1e-2;
    fpr_interval(N, alpha, &lo, &hi);
    print_message("  %-34s alpha=1e-2: rate %.5f (randomised %.5f), 99.9%% CI [%.5f, %.5f]\n", name,
                  (double)kp / (double)N, (double)kr / (double)N, lo / (double)N, hi / (double)N);
    CHECK((double)kr >= lo && (double)kr <= hi, "%s: randomised FPR %zu outside [%.0f, %.0f]", name, kr, lo, hi);
    CHECK((double)kp <= hi, "%s: FPR %zu above %.0f", name, kp, hi);
    CHECK((double)kp >= 0.2 * alpha * (double)N, "%s: FPR %zu absurdly low", name, kp);
}

static void calib_run(const char *name, tokmark_compat_config *cfg, tu_rng *r, size_t N, size_t L, uint32_t V) {
    tokmark_compat *c = NULL;
    tokmark_compat_detector *d = NULL;
    OK(tokmark_compat_create(&c, cfg));
    OK(tokmark_compat_detector_create(&d, c, 1u << 16));
    int32_t *ids = (int32_t *)malloc(L * sizeof *ids);
    assert_non_null(ids);
    size_t kp = 0, kr = 0, sp = 0, sr = 0;
    for (size_t i = 0; i < N; i++) {
        for (size_t t = 0; t < L; t++) ids[t] = (int32_t)(tu_next(r) % V);
        tokmark_compat_score s;
        OK(tokmark_compat_score_ids(c, ids, L, 1, NULL, &s));
        double plain, rnd;
        binom_p(s.hits, s.trials, s.null_p, (double)(tu_next(r) >> 11) * 0x1p-53, &plain, &rnd);
        CHECK(fabs(log10(plain) - s.log10_p) <= 1e-9 * fabs(s.log10_p) + 1e-12, "%s: p", name);
        kp += plain <= 1e-2;
        kr += rnd <= 1e-2;
        /* the streaming detector on the same document */
        tokmark_compat_detector_begin(d);
        tokmark_compat_detector_feed(d, ids, L);
        tokmark_result res;
        tokmark_compat_detector_document(d, &res);
        const uint64_t trials = c == NULL ? 0 : res.scored * (cfg->depth ? cfg->depth : 1);
        const uint64_t hits = cfg->depth ? (uint64_t)llround(res.statistic * (double)trials) : (uint64_t)res.statistic;
        binom_p(hits, trials, s.null_p, (double)(tu_next(r) >> 11) * 0x1p-53, &plain, &rnd);
        sp += plain <= 1e-2;
        sr += rnd <= 1e-2;
    }
    calib_report(name, N, kp, kr);
    char sname[80];
    snprintf(sname, sizeof sname, "%s (stream)", name);
    calib_report(sname, N, sp, sr);
    free(ids);
    tokmark_compat_detector_free(d);
    tokmark_compat_free(c);
}

static void test_null_calibration(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x6e756c6c);
    const size_t N = 3000, L = 60;
    tokmark_compat_config cfg;
    /* transformers lefthash and selfhash, lm-watermarking selfhash; random keys */
    tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_HF_KGW);
    cfg.vocab_size = 1000;
    cfg.greenlist_ratio = 0.25;
    cfg.hashing_key = tu_next(&r) >> 1;
    calib_run("hf-kgw lefthash w=1, r=0.25", &cfg, &r, N, L, 1000);
    cfg.seeding = TOKMARK_SEEDING_SELFHASH;
    cfg.context_width = 4;
    cfg.greenlist_ratio = 0.5;
    cfg.hashing_key = tu_next(&r) >> 1;
    calib_run("hf-kgw selfhash w=4, r=0.5", &cfg, &r, N, L, 1000);
    tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_LMW_KGW);
    cfg.vocab_size = 1000;
    cfg.seeding = TOKMARK_SEEDING_SELFHASH;
    cfg.context_width = 4;
    cfg.self_salt = 1;
    cfg.hashing_key = tu_next(&r) >> 1;
    calib_run("lmw-kgw selfhash h=4, gamma=0.25", &cfg, &r, N, L, 1000);
    /* SynthID hash mode and table mode (q = ones/S) */
    tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_SYNTHID);
    cfg.ngram_len = 3;
    cfg.depth = 4;
    for (int d = 0; d < 4; d++) cfg.keys[d] = (int64_t)tu_next(&r);
    cfg.context_history_size = 16;
    calib_run("synthid n=3 D=4", &cfg, &r, N, L, 32000);
    tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_HF_SYNTHID);
    cfg.ngram_len = 3;
    cfg.depth = 4;
    for (int d = 0; d < 4; d++) cfg.keys[d] = (int64_t)tu_next(&r);
    cfg.context_history_size = 16;
    cfg.sampling_table_size = 1000;
    cfg.sampling_table_seed = tu_next(&r);
    calib_run("hf-synthid n=3 D=4 S=1000", &cfg, &r, N, L, 32000);
}

/* ------------------------------------------------------------------------ */
/* Configuration and files                                                    */
/* ------------------------------------------------------------------------ */


static void write_text(const char *name, const char *text, mode_t mode) {
    char path[512];
    path_in(path, sizeof path, name);
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static int load_text(const char *text, size_t *line) {
    write_text("t.key", text, 0600);
    char path[512];
    path_in(path, sizeof path, "t.key");
    tokmark_compat *c = NULL;
    int rc = tokmark_compat_load(&c, path, 0, line);
    CHECK((rc == TOKMARK_OK) == (c != NULL), "load result and object disagree");
    tokmark_compat_free(c);
    return rc;
}

static void test_config_and_files(void **state) {
    (void)state;
    tokmark_compat_config cfg;
    tokmark_compat *c = NULL, *c2 = NULL;
    /* invalid configurations */
    tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_HF_KGW);
    OK(tokmark_compat_config_check(&cfg));
    cfg.greenlist_ratio = 1.0;
    assert_int_equal(tokmark_compat_config_check(&cfg), TOKMARK_ERR_INVALID);
    cfg.greenlist_ratio = NAN;
    assert_int_equal(tokmark_compat_create(&c, &cfg), TOKMARK_ERR_INVALID);
    assert_null(c);
    tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_HF_KGW);
    cfg.self_salt = 1; /* HF: implied by the seeding */
    assert_int_equal(tokmark_compat_config_check(&cfg), TOKMARK_ERR_INVALID);
    tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_HF_KGW);
    cfg.hashing_key = (uint64_t)INT64_MAX + 1u;
    assert_int_equal(tokmark_compat_config_check(&cfg), TOKMARK_ERR_INVALID);
    tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_SYNTHID);
    assert_int_equal(tokmark_compat_config_check(&cfg), TOKMARK_ERR_INVALID); /* no keys yet */
    cfg.depth = 2;
    cfg.keys[0] = -5;
    cfg.keys[1] = INT64_MIN;
    OK(tokmark_compat_config_check(&cfg));
    cfg.sampling_table_size = 1024; /* not for hash mode */
    assert_int_equal(tokmark_compat_config_check(&cfg), TOKMARK_ERR_INVALID);
    cfg.sampling_table_size = 0;
    assert_int_equal(tokmark_compat_kind_parse("hf-synthid"), TOKMARK_COMPAT_HF_SYNTHID);
    assert_int_equal(tokmark_compat_kind_parse("nope"), 0);
    assert_string_equal(tokmark_compat_kind_name(TOKMARK_COMPAT_LMW_KGW), "lmw-kgw");

    /* save and load back: same key ID, same configuration; 0600; describe hides the keys */
    OK(tokmark_compat_create(&c, &cfg));
    char path[512], other[512];
    path_in(path, sizeof path, "sid.key");
    unlink(path);
    OK(tokmark_compat_save(c, path, 0));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(tokmark_compat_save(c, path, 0), TOKMARK_ERR_EXISTS);
    OK(tokmark_compat_save(c, path, 1));
    size_t line = 99;
    OK(tokmark_compat_load(&c2, path, 0, &line));
    assert_string_equal(tokmark_compat_key_id(c), tokmark_compat_key_id(c2));
    assert_memory_equal(tokmark_compat_get_config(c), tokmark_compat_get_config(c2), sizeof cfg);
    char desc[1024];
    size_t need = tokmark_compat_describe(c2, desc, sizeof desc);
    CHECK(need < sizeof desc && strstr(desc, "kind synthid\n") && strstr(desc, "depth 2\n") &&
              !strstr(desc, "9223372036854775808") && !strstr(desc, "keys"),
          "describe: %s", desc);
    CHECK(tokmark_compat_describe(c2, NULL, 0) == need, "describe length");
    tokmark_compat_free(c2);
    c2 = NULL;
    /* a different key gives a different key ID */
    cfg.keys[0] = -6;
    OK(tokmark_compat_create(&c2, &cfg));
    CHECK(strcmp(tokmark_compat_key_id(c), tokmark_compat_key_id(c2)) != 0, "key ID ignores the keys");
    tokmark_compat_free(c2);
    c2 = NULL;
    /* group-readable: refused unless forced */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(tokmark_compat_load(&c2, path, 0, &line), TOKMARK_ERR_PERMISSIONS);
    OK(tokmark_compat_load(&c2, path, TOKMARK_LOAD_FORCE, &line));
    tokmark_compat_free(c2);
    c2 = NULL;
    /* tokmark_profile_load refuses a compat file; tokmark_compat_load a tokmark profile */
    assert_int_equal(chmod(path, 0600), 0);
    tokmark_profile *prof = NULL;
    int rc = tokmark_profile_load(&prof, path, 0, &line);
    CHECK(rc == TOKMARK_ERR_UNSUPPORTED, "tokmark_profile_load on a compat file: %s", tokmark_error_name(rc));
    assert_null(prof);
    tokmark_params p;
    tokmark_params_default(&p, TOKMARK_SCHEME_KGW);
    uint8_t mk[TOKMARK_MASTER_KEY_BYTES] = {1, 2, 3};
    OK(tokmark_profile_from_key(&prof, &p, mk));
    path_in(other, sizeof other, "tm.key");
    unlink(other);
    OK(tokmark_profile_save(prof, other, 0));
    tokmark_profile_free(prof);
    assert_int_equal(tokmark_compat_load(&c2, other, 0, &line), TOKMARK_ERR_UNSUPPORTED);
    tokmark_compat_free(c);

    /* strict parsing: the line at fault */
    static const char good[] = "# c\ntokmark-compat-profile 1\nkind hf-kgw\nvocab-size 32000\nbos-token-id none\n"
                               "seeding selfhash\ncontext-width 4\ngreenlist-ratio 0.25\nhashing-key 7\nend\n";
    line = 0;
    OK(load_text(good, &line));
    struct {
        const char *from, *to;
        size_t line;
    } bad[] = {
        {"kind hf-kgw", "kind hf-kgx", 3},
        {"vocab-size 32000", "vocab-size 032000", 4},
        {"vocab-size 32000", "vocab-size 1", 4},
        {"bos-token-id none", "bos-token-id -1", 5},
        {"seeding selfhash", "seeding minhash", 6},
        {"context-width 4", "context-width 17", 7},
        {"greenlist-ratio 0.25", "greenlist-ratio 1", 8},
        {"hashing-key 7", "hashing-key 9223372036854775808", 9},
        {"hashing-key 7", "hashing-key  7", 9},
        {"hashing-key 7\n", "", 9},              /* missing: the end line */
        {"end\n", "", 9},                        /* no end */
        {"context-width 4", "self-salt 1", 7},   /* LMW only */
        {"context-width 4", "ngram-len 3", 7},   /* SynthID only */
        {"seeding selfhash", "seeding selfhash\nseeding selfhash", 7}, /* duplicate */
        {"tokmark-compat-profile 1", "tokmark-compat-profile 2", 2},
        {"end\n", "end\nkind hf-kgw\n", 11},
        {"end\n", "key-id 00000000000000000000000000000000\nend\n", 10},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[1024];
        const char *at = strstr(good, bad[i].from);
        assert_non_null(at);
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - good), good, bad[i].to, at + strlen(bad[i].from));
        line = 0;
        rc = load_text(text, &line);
        CHECK(rc == TOKMARK_ERR_FORMAT && line == bad[i].line, "bad %zu: %s at line %zu (want line %zu)", i,
              tokmark_error_name(rc), line, bad[i].line);
    }
}

/* ------------------------------------------------------------------------ */
/* The command line                                                           */
/* ------------------------------------------------------------------------ */


static char *read_out(const char *name) {
    char path[512];
    path_in(path, sizeof path, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *s = (char *)calloc(1, 1 << 20);
    assert_non_null(s);
    size_t n = fread(s, 1, (1 << 20) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* A JSONL input of the detect cases of `file` whose configuration matches
 * `match` (a predicate); returns how many lines were written. */
static size_t write_input(json_t **cases, size_t ncases, const size_t *which, size_t nw, const char *name) {
    char path[512];
    path_in(path, sizeof path, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < nw; i++) {
        json_t *o = json_object();
        json_object_set(o, "ids", jget(cases[which[i]], "input_ids"));
        char *s = json_dumps(o, JSON_COMPACT);
        fprintf(f, "%s\n", s);
        free(s);
        json_decref(o);
    }
    (void)ncases;
    fclose(f);
    return nw;
}

/* "name":value of the line, as a double (NaN when absent). */
static double out_field(const char *line, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *p = strstr(line, key);
    return p == NULL ? NAN : strtod(p + strlen(key), NULL);
}

static void test_cli(void **state) {
    (void)state;
    /* hf-kgw: every detect case with the default key, lefthash, w = 1, V = 32000, r = 0.1 */
    size_t ncases;
    json_t **cases = read_cases("hf_kgw.jsonl", &ncases);
    size_t which[64], nw = 0;
    json_t *cfg0 = NULL;
    for (size_t i = 0; i < ncases && nw < 64; i++) {
        if (strcmp(jstr(cases[i], "kind"), "detect") != 0) continue;
        json_t *cj = jget(cases[i], "config");
        if (cfg0 == NULL) cfg0 = cj;
        if (json_equal(cj, cfg0)) which[nw++] = i;
    }
    CHECK(nw >= 1, "no case");
    write_input(cases, ncases, which, nw, "in.jsonl");
    char keyfile[512], prof[512], in[512];
    path_in(keyfile, sizeof keyfile, "hashkey");
    path_in(prof, sizeof prof, "hf.key");
    path_in(in, sizeof in, "in.jsonl");
    unlink(prof);
    char ktext[64], vs[32], ratio[32], cw[16], bos[32];
    snprintf(ktext, sizeof ktext, "%s\n", jstr(cfg0, "hashing_key"));
    write_text("hashkey", ktext, 0600);
    snprintf(vs, sizeof vs, "%lld", (long long)jint(cfg0, "vocab_size"));
    snprintf(ratio, sizeof ratio, "%.17g", jreal(cfg0, "greenlist_ratio"));
    snprintf(cw, sizeof cw, "%lld", (long long)jint(cfg0, "context_width"));
    json_t *bj = jget(cfg0, "bos_token_id");
    snprintf(bos, sizeof bos, "%s", json_is_null(bj) ? "none" : "");
    if (!json_is_null(bj)) snprintf(bos, sizeof bos, "%lld", (long long)json_integer_value(bj));
    int rc = run_tool(NULL, (const char *[]){"keygen", "--compat", "hf-kgw", "--seeding", jstr(cfg0, "seeding_scheme"),
                                             "--context-width", cw, "--greenlist-ratio", ratio, "--hashing-key-file",
                                             keyfile, "--vocab-size", vs, "--bos-token-id", bos, "-o", prof, NULL});
    char *err = read_out("stderr");
    CHECK(rc == 0, "keygen --compat: exit %d: %s", rc, err);
    free(err);
    struct stat st;
    assert_int_equal(stat(prof, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* keyinfo shows it, never the key */
    rc = run_tool(NULL, (const char *[]){"keyinfo", prof, NULL});
    char *out = read_out("stdout");
    CHECK(rc == 0 && strstr(out, "kind hf-kgw") && strstr(out, "key-id ") && !strstr(out, jstr(cfg0, "hashing_key")),
          "keyinfo: exit %d: %s", rc, out);
    free(out);
    /* compat-detect: one line per input line with the reference totals */
    rc = run_tool(NULL, (const char *[]){"compat-detect", "--profile", prof, in, NULL});
    out = read_out("stdout");
    err = read_out("stderr");
    CHECK(rc == 0, "compat-detect: exit %d: %s", rc, err);
    char *line = out;
    for (size_t i = 0; i < nw; i++) {
        char *nl = strchr(line, '\n');
        CHECK(nl != NULL, "compat-detect: %zu lines, want %zu", i, nw);
        *nl = '\0';
        json_t *d0 = json_array_get(jget(jget(cases[which[i]], "expected"), "detector"), 0);
        CHECK(out_field(line, "scored") == (double)jint(d0, "num_tokens_scored") &&
                  out_field(line, "green") == (double)jint(d0, "num_green_tokens") &&
                  same_double(out_field(line, "z"), jhex(d0, "z_score_hex")) && out_field(line, "log10_p") <= 0.0,
              "compat-detect line %zu: %s", i + 1, line);
        line = nl + 1;
    }
    CHECK(*line == '\0', "extra output: %s", line);
    free(out);
    free(err);
    /* the same from standard input */
    rc = run_tool("in.jsonl", (const char *[]){"compat-detect", "--profile", prof, "-", NULL});
    CHECK(rc == 0, "compat-detect from stdin: %d", rc);
    /* a malformed line: FILE:LINE, exit 3 */
    write_text("bad.jsonl", "{\"ids\":[1,2,3]}\n{\"ids\":[1,\"x\"]}\n", 0600);
    char badp[512];
    path_in(badp, sizeof badp, "bad.jsonl");
    rc = run_tool(NULL, (const char *[]){"compat-detect", "--profile", prof, badp, NULL});
    err = read_out("stderr");
    char want[600];
    snprintf(want, sizeof want, "%s:2:", badp);
    CHECK(rc == 3 && strstr(err, want) != NULL, "malformed input: exit %d: %s", rc, err);
    free(err);
    /* keygen refuses to overwrite, and a bad option value is a usage error */
    rc = run_tool(NULL, (const char *[]){"keygen", "--compat", "hf-kgw", "--hashing-key-file", keyfile, "-o", prof, NULL});
    CHECK(rc == 3, "overwrite: exit %d", rc);
    rc = run_tool(NULL, (const char *[]){"keygen", "--compat", "hf-kgw", "--greenlist-ratio", "1.5", "--hashing-key-file",
                                         keyfile, "-o", prof, NULL});
    CHECK(rc == 2, "bad ratio: exit %d", rc);
    rc = run_tool(NULL, (const char *[]){"keygen", "--compat", "nope", "-o", prof, NULL});
    CHECK(rc == 2, "bad kind: exit %d", rc);
    /* the key from standard input */
    char prof2[512];
    path_in(prof2, sizeof prof2, "hf2.key");
    unlink(prof2);
    rc = run_tool("hashkey", (const char *[]){"keygen", "--compat", "hf-kgw", "--seeding", jstr(cfg0, "seeding_scheme"),
                                              "--context-width", cw, "--greenlist-ratio", ratio, "--hashing-key-file",
                                              "-", "--vocab-size", vs, "--bos-token-id", bos, "-o", prof2, NULL});
    CHECK(rc == 0, "key from stdin: exit %d", rc);
    tokmark_compat *a = NULL, *b = NULL;
    size_t el;
    OK(tokmark_compat_load(&a, prof, 0, &el));
    OK(tokmark_compat_load(&b, prof2, 0, &el));
    assert_string_equal(tokmark_compat_key_id(a), tokmark_compat_key_id(b));
    tokmark_compat_free(a);
    tokmark_compat_free(b);
    free_cases(cases, ncases);

    /* SynthID hash mode: keys from a file, mean score per line */
    cases = read_cases("synthid_head.jsonl", &ncases);
    json_t *cj = jget(cases[0], "config"), *keys = jget(cj, "keys");
    char ktxt[4096] = "";
    for (size_t d = 0; d < json_array_size(keys); d++) {
        strcat(ktxt, json_string_value(json_array_get(keys, d)));
        strcat(ktxt, d + 1 < json_array_size(keys) ? "," : "\n");
    }
    write_text("sidkeys", ktxt, 0600);
    char kf[512], sp[512], ng[16], hist[16], eos[32];
    path_in(kf, sizeof kf, "sidkeys");
    path_in(sp, sizeof sp, "sid.key");
    unlink(sp);
    snprintf(ng, sizeof ng, "%lld", (long long)jint(cj, "ngram_len"));
    snprintf(hist, sizeof hist, "%lld", (long long)jint(cj, "context_history_size"));
    snprintf(eos, sizeof eos, "%lld", (long long)jint(cj, "eos_token_id"));
    rc = run_tool(NULL, (const char *[]){"keygen", "--compat", "synthid", "--ngram-len", ng, "--keys-file", kf,
                                         "--context-history-size", hist, "--eos-token-id", eos, "-o", sp, NULL});
    err = read_out("stderr");
    CHECK(rc == 0, "keygen --compat synthid: exit %d: %s", rc, err);
    free(err);
    which[0] = 0;
    write_input(cases, ncases, which, 1, "sid.jsonl");
    path_in(in, sizeof in, "sid.jsonl");
    rc = run_tool(NULL, (const char *[]){"compat-detect", "--profile", sp, in, NULL});
    out = read_out("stdout");
    json_t *e = jget(cases[0], "expected");
    CHECK(rc == 0 && out_field(out, "scored") == (double)jint(e, "num_unmasked") &&
              same_double(out_field(out, "mean"), jhex(e, "mean_score_hex")),
          "compat-detect synthid: exit %d: %s", rc, out);
    free(out);
    free_cases(cases, ncases);
}

/* ------------------------------------------------------------------------ */

static int setup_all(void **state) {
    (void)state;
    if (tokmark_init() != TOKMARK_OK) return -1;
    snprintf(g_dir, sizeof g_dir, "/tmp/tokmark-compat-XXXXXX");
    if (mkdtemp(g_dir) == NULL) return -1;
    return 0;
}

static int teardown_all(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] != '\0' && system(cmd) != 0) return -1;
    return 0;
}

int main(int argc, char **argv) {
    (void)argc;
    cu_find_tool(argv[0]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt19937),      cmocka_unit_test(test_green_tracking),
        cmocka_unit_test(test_hf_kgw),       cmocka_unit_test(test_lmw_kgw),
        cmocka_unit_test(test_synthid_hf),   cmocka_unit_test(test_synthid_head),
        cmocka_unit_test(test_stream),       cmocka_unit_test(test_null_calibration),
        cmocka_unit_test(test_config_and_files), cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
