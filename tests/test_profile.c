/* test_profile.c — parameters, profiles, key IDs, accounts, profile files,
 * key rings and error names (SPEC.md §2), and the keygen/keyinfo CLI. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "tokmark.h"

extern char **environ;

static char g_dir[256];        /* a fresh temporary directory per test */
static char g_tool[1024];      /* path of build/tokmark, "" if absent */
static uint8_t g_key[32];      /* 00 01 02 ... 1f */
static char g_key_hex[65];

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void path_in(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", g_dir, name);
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    if (d == NULL) return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/tokmark-test-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    remove_tree(g_dir);
    return 0;
}

static void write_text(const char *path, const char *text, mode_t mode) {
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static tokmark_profile *make(const tokmark_params *p) {
    tokmark_profile *prof = NULL;
    assert_int_equal(tokmark_profile_from_key(&prof, p, g_key), TOKMARK_OK);
    assert_non_null(prof);
    return prof;
}

static tokmark_profile *make_default(tokmark_scheme s) {
    tokmark_params p;
    tokmark_params_default(&p, s);
    return make(&p);
}

static void assert_params_equal(const tokmark_params *a, const tokmark_params *b) {
    assert_int_equal(a->scheme, b->scheme);
    assert_int_equal(a->seeding, b->seeding);
    assert_int_equal(a->context_width, b->context_width);
    assert_int_equal(a->vocab_size, b->vocab_size);
    assert_int_equal(a->gamma_threshold, b->gamma_threshold);
    assert_memory_equal(&a->delta, &b->delta, sizeof a->delta);
    assert_int_equal(a->layers, b->layers);
    assert_memory_equal(a->weights, b->weights, sizeof a->weights);
    assert_int_equal(a->mask_repeated, b->mask_repeated);
    assert_string_equal(a->tokenizer, b->tokenizer);
}

/* Inspection values of two profiles agree on a few contexts. */
static void assert_same_values(const tokmark_profile *a, const tokmark_profile *b) {
    const tokmark_params *pa = tokmark_profile_params(a);
    int32_t prev[TOKMARK_MAX_CONTEXT];
    for (int trial = 0; trial < 8; trial++) {
        for (int i = 0; i < TOKMARK_MAX_CONTEXT; i++) prev[i] = (int32_t)((trial * 7919 + i * 104729) % 50000);
        int32_t tok = (int32_t)(trial * 1231 % 50000);
        assert_int_equal(tokmark_value_u32(a, prev, tok), tokmark_value_u32(b, prev, tok));
        if (pa->scheme == TOKMARK_SCHEME_SYNTHID) {
            uint8_t ga[TOKMARK_MAX_LAYERS], gb[TOKMARK_MAX_LAYERS];
            tokmark_gvalues(a, prev, tok, ga);
            tokmark_gvalues(b, prev, tok, gb);
            assert_memory_equal(ga, gb, pa->layers);
        }
    }
}

static int values_differ(const tokmark_profile *a, const tokmark_profile *b) {
    int32_t prev[TOKMARK_MAX_CONTEXT] = {11, 22, 33, 44, 55, 66, 77, 88, 99, 111, 122, 133, 144, 155, 166, 177};
    int diff = 0;
    for (int32_t t = 0; t < 16; t++) diff |= tokmark_value_u32(a, prev, t) != tokmark_value_u32(b, prev, t);
    return diff;
}

/* Load text written as a 0600 file: expect `rc` and, for format errors, `line`. */
static void expect_load(const char *text, int rc, size_t line) {
    char path[512];
    path_in(path, sizeof path, "case.key");
    write_text(path, text, 0600);
    tokmark_profile *p = NULL;
    size_t errline = 12345;
    int got = tokmark_profile_load(&p, path, 0, &errline);
    if (got != rc || (rc == TOKMARK_ERR_FORMAT && errline != line)) {
        print_error("text:\n%s\nexpected %s line %zu, got %s line %zu\n", text, tokmark_error_name(rc),
                    line, tokmark_error_name(got), errline);
        fail();
    }
    if (rc == TOKMARK_OK) assert_non_null(p);
    else assert_null(p);
    tokmark_profile_free(p);
}

/* A valid profile text built from "name value" lines (without the header,
 * key-id, master-key and end), with the test key. */
static void valid_text(char *out, size_t size, const char *fields) {
    snprintf(out, size, "tokmark-profile 1\n%smaster-key %s\nend\n", fields, g_key_hex);
}

/* ------------------------------------------------------------------------ */
/* parameters                                                                */
/* ------------------------------------------------------------------------ */

static void test_params_default(void **state) {
    (void)state;
    tokmark_params p;
    tokmark_params_default(&p, TOKMARK_SCHEME_KGW);
    assert_int_equal(p.scheme, TOKMARK_SCHEME_KGW);
    assert_int_equal(p.seeding, TOKMARK_SEEDING_LEFTHASH);
    assert_int_equal(p.context_width, 4);
    assert_int_equal(p.vocab_size, 100277);
    assert_int_equal(p.gamma_threshold, 1u << 30);
    assert_true(p.delta == 2.0);
    assert_int_equal(p.layers, 30);
    for (int i = 0; i < 30; i++) assert_int_equal(p.weights[i], 30 - i);
    for (int i = 30; i < TOKMARK_MAX_LAYERS; i++) assert_int_equal(p.weights[i], 0);
    assert_int_equal(p.mask_repeated, 1);
    assert_string_equal(p.tokenizer, "cl100k_base");
    assert_int_equal(tokmark_params_check(&p), TOKMARK_OK);
    assert_true(tokmark_params_gamma(&p) == 0.25);
    tokmark_params_default(&p, TOKMARK_SCHEME_GUMBEL);
    assert_int_equal(tokmark_params_check(&p), TOKMARK_OK);
    tokmark_params_default(&p, TOKMARK_SCHEME_SYNTHID);
    assert_int_equal(tokmark_params_check(&p), TOKMARK_OK);
    assert_int_equal(p.context_width, 4);
}

typedef void (*mutator)(tokmark_params *);
#define MUT(name, scheme, body)                                                                    \
    static void name(tokmark_params *p) {                                                          \
        tokmark_params_default(p, scheme);                                                         \
        body;                                                                                      \
    }
MUT(m_scheme0, TOKMARK_SCHEME_KGW, p->scheme = (tokmark_scheme)0)
MUT(m_scheme4, TOKMARK_SCHEME_KGW, p->scheme = (tokmark_scheme)4)
MUT(m_seeding0, TOKMARK_SCHEME_KGW, p->seeding = (tokmark_seeding)0)
MUT(m_seeding3, TOKMARK_SCHEME_KGW, p->seeding = (tokmark_seeding)3)
MUT(m_h0, TOKMARK_SCHEME_KGW, p->context_width = 0)
MUT(m_h17, TOKMARK_SCHEME_GUMBEL, p->context_width = 17)
MUT(m_self_h1, TOKMARK_SCHEME_KGW, { p->seeding = TOKMARK_SEEDING_SELFHASH; p->context_width = 1; })
MUT(m_v0, TOKMARK_SCHEME_KGW, p->vocab_size = 0)
MUT(m_v1, TOKMARK_SCHEME_KGW, p->vocab_size = 1)
MUT(m_vbig, TOKMARK_SCHEME_KGW, p->vocab_size = 0x80000000u)
MUT(m_tok_empty, TOKMARK_SCHEME_KGW, p->tokenizer[0] = '\0')
MUT(m_tok_space, TOKMARK_SCHEME_KGW, strcpy(p->tokenizer, "cl100k base"))
MUT(m_tok_ctrl, TOKMARK_SCHEME_KGW, strcpy(p->tokenizer, "a\tb"))
MUT(m_tok_high, TOKMARK_SCHEME_KGW, strcpy(p->tokenizer, "a\xc3\xa9"))
MUT(m_tok_unterminated, TOKMARK_SCHEME_KGW, memset(p->tokenizer, 'a', sizeof p->tokenizer))
MUT(m_mask2, TOKMARK_SCHEME_KGW, p->mask_repeated = 2)
MUT(m_g0, TOKMARK_SCHEME_KGW, p->gamma_threshold = 0)
MUT(m_d0, TOKMARK_SCHEME_KGW, p->delta = 0.0)
MUT(m_dneg, TOKMARK_SCHEME_KGW, p->delta = -1.0)
MUT(m_dbig, TOKMARK_SCHEME_KGW, p->delta = 100.000001)
MUT(m_dnan, TOKMARK_SCHEME_KGW, p->delta = NAN)
MUT(m_dinf, TOKMARK_SCHEME_KGW, p->delta = INFINITY)
MUT(m_l0, TOKMARK_SCHEME_SYNTHID, p->layers = 0)
MUT(m_l129, TOKMARK_SCHEME_SYNTHID, p->layers = 129)
MUT(m_w0, TOKMARK_SCHEME_SYNTHID, p->weights[5] = 0)
MUT(m_w1001, TOKMARK_SCHEME_SYNTHID, p->weights[29] = 1001)
MUT(m_wlayers, TOKMARK_SCHEME_SYNTHID, p->layers = 31) /* weight 31 is 0 */

static void test_params_check(void **state) {
    (void)state;
    static const mutator bad[] = {
        m_scheme0, m_scheme4, m_seeding0, m_seeding3, m_h0, m_h17, m_self_h1, m_v0, m_v1, m_vbig,
        m_tok_empty, m_tok_space, m_tok_ctrl, m_tok_high, m_tok_unterminated, m_mask2, m_g0, m_d0,
        m_dneg, m_dbig, m_dnan, m_dinf, m_l0, m_l129, m_w0, m_w1001, m_wlayers,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tokmark_params p;
        bad[i](&p);
        if (tokmark_params_check(&p) != TOKMARK_ERR_INVALID) fail_msg("mutator %zu accepted", i);
        tokmark_profile *prof = (tokmark_profile *)1;
        assert_int_equal(tokmark_profile_from_key(&prof, &p, g_key), TOKMARK_ERR_INVALID);
        assert_null(prof);
        assert_int_equal(tokmark_profile_generate(&prof, &p), TOKMARK_ERR_INVALID);
        assert_null(prof);
    }
    assert_int_equal(tokmark_params_check(NULL), TOKMARK_ERR_INVALID);

    /* edges that are valid */
    tokmark_params p;
    tokmark_params_default(&p, TOKMARK_SCHEME_KGW);
    p.context_width = 1;
    p.vocab_size = 2;
    p.gamma_threshold = 1;
    p.delta = 100.0;
    p.mask_repeated = 0;
    memset(p.tokenizer, 'x', TOKMARK_TOKENIZER_MAX - 1);
    p.tokenizer[TOKMARK_TOKENIZER_MAX - 1] = '\0';
    assert_int_equal(tokmark_params_check(&p), TOKMARK_OK);
    p.context_width = 16;
    p.vocab_size = 0x7fffffffu;
    p.gamma_threshold = UINT32_MAX;
    p.delta = 1e-300;
    assert_int_equal(tokmark_params_check(&p), TOKMARK_OK);
    p.seeding = TOKMARK_SEEDING_SELFHASH;
    p.context_width = 2;
    assert_int_equal(tokmark_params_check(&p), TOKMARK_OK);
    /* fields of other schemes are not checked */
    tokmark_params_default(&p, TOKMARK_SCHEME_GUMBEL);
    p.delta = -5;
    p.gamma_threshold = 0;
    p.layers = 0;
    assert_int_equal(tokmark_params_check(&p), TOKMARK_OK);
    tokmark_params_default(&p, TOKMARK_SCHEME_SYNTHID);
    p.layers = 128;
    for (int i = 0; i < 128; i++) p.weights[i] = (uint16_t)(i % 2 ? 1 : 1000);
    p.delta = NAN;
    assert_int_equal(tokmark_params_check(&p), TOKMARK_OK);
}

static void test_gamma(void **state) {
    (void)state;
    assert_int_equal(tokmark_gamma_threshold(0.25), 1u << 30);
    assert_int_equal(tokmark_gamma_threshold(0.5), 1u << 31);
    assert_int_equal(tokmark_gamma_threshold(0.3), 1288490189u); /* round(0.3 * 2^32) */
    assert_int_equal(tokmark_gamma_threshold(0.0), 1u);
    assert_int_equal(tokmark_gamma_threshold(-1.0), 1u);
    assert_int_equal(tokmark_gamma_threshold(1e-20), 1u);
    assert_int_equal(tokmark_gamma_threshold(1.0), UINT32_MAX);
    assert_int_equal(tokmark_gamma_threshold(2.0), UINT32_MAX);
    assert_int_equal(tokmark_gamma_threshold(1.0 - 1e-12), UINT32_MAX);
    assert_int_equal(tokmark_gamma_threshold(NAN), 1u);
    tokmark_params p;
    tokmark_params_default(&p, TOKMARK_SCHEME_KGW);
    p.gamma_threshold = 3;
    assert_true(tokmark_params_gamma(&p) == 3.0 / 4294967296.0);
}

static void test_names(void **state) {
    (void)state;
    assert_string_equal(tokmark_scheme_name(TOKMARK_SCHEME_KGW), "kgw");
    assert_string_equal(tokmark_scheme_name(TOKMARK_SCHEME_GUMBEL), "gumbel");
    assert_string_equal(tokmark_scheme_name(TOKMARK_SCHEME_SYNTHID), "synthid");
    assert_string_equal(tokmark_seeding_name(TOKMARK_SEEDING_LEFTHASH), "lefthash");
    assert_string_equal(tokmark_seeding_name(TOKMARK_SEEDING_SELFHASH), "selfhash");
    assert_non_null(tokmark_scheme_name((tokmark_scheme)9));
    assert_non_null(tokmark_seeding_name((tokmark_seeding)9));
    assert_int_equal(tokmark_scheme_parse("kgw"), TOKMARK_SCHEME_KGW);
    assert_int_equal(tokmark_scheme_parse("gumbel"), TOKMARK_SCHEME_GUMBEL);
    assert_int_equal(tokmark_scheme_parse("synthid"), TOKMARK_SCHEME_SYNTHID);
    assert_int_equal(tokmark_scheme_parse("KGW"), 0);
    assert_int_equal(tokmark_scheme_parse("kgw "), 0);
    assert_int_equal(tokmark_scheme_parse(""), 0);
    assert_int_equal(tokmark_scheme_parse(NULL), 0);
    assert_int_equal(tokmark_seeding_parse("lefthash"), TOKMARK_SEEDING_LEFTHASH);
    assert_int_equal(tokmark_seeding_parse("selfhash"), TOKMARK_SEEDING_SELFHASH);
    assert_int_equal(tokmark_seeding_parse("self"), 0);
    assert_int_equal(tokmark_seeding_parse(NULL), 0);
}

static void test_errors(void **state) {
    (void)state;
    static const struct { int code; const char *name; } e[] = {
        {TOKMARK_OK, "TOKMARK_OK"},
        {TOKMARK_ERR_INVALID, "TOKMARK_ERR_INVALID"},
        {TOKMARK_ERR_NOMEM, "TOKMARK_ERR_NOMEM"},
        {TOKMARK_ERR_IO, "TOKMARK_ERR_IO"},
        {TOKMARK_ERR_FORMAT, "TOKMARK_ERR_FORMAT"},
        {TOKMARK_ERR_PERMISSIONS, "TOKMARK_ERR_PERMISSIONS"},
        {TOKMARK_ERR_CRYPTO, "TOKMARK_ERR_CRYPTO"},
        {TOKMARK_ERR_UNSUPPORTED, "TOKMARK_ERR_UNSUPPORTED"},
        {TOKMARK_ERR_NOT_FOUND, "TOKMARK_ERR_NOT_FOUND"},
        {TOKMARK_ERR_EXISTS, "TOKMARK_ERR_EXISTS"},
        {TOKMARK_ERR_TOO_SHORT, "TOKMARK_ERR_TOO_SHORT"},
        {TOKMARK_ERR_MISMATCH, "TOKMARK_ERR_MISMATCH"},
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
        assert_string_equal(tokmark_error_name(e[i].code), e[i].name);
        const char *m = tokmark_error_message(e[i].code);
        assert_non_null(m);
        assert_true(strlen(m) > 3);
        assert_null(strchr(m, '\n'));
        for (size_t j = 0; j < i; j++) assert_string_not_equal(m, tokmark_error_message(e[j].code));
    }
    assert_string_equal(tokmark_error_name(-12), "unknown");
    assert_string_equal(tokmark_error_name(1), "unknown");
    assert_non_null(tokmark_error_message(-99));
    assert_string_equal(tokmark_version_string(), TOKMARK_VERSION_STRING);
    assert_string_equal(tokmark_spec_version(), TOKMARK_SPEC_VERSION);
}

/* ------------------------------------------------------------------------ */
/* key IDs                                                                   */
/* ------------------------------------------------------------------------ */

/* The key ID recomputed here from SPEC §2.4 with libsodium directly. */
static void spec_key_id(char out[33], const uint8_t master[32], const char *canonical) {
    static const char ctx[8] = {'t', 'o', 'k', 'm', 'a', 'r', 'k', '1'};
    uint8_t k_fp[32], h[16];
    assert_int_equal(crypto_kdf_derive_from_key(k_fp, 32, 0x01, ctx, master), 0);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    crypto_generichash_update(&st, (const unsigned char *)"tokmark key id v1\n", 18);
    crypto_generichash_update(&st, k_fp, 32);
    crypto_generichash_update(&st, (const unsigned char *)canonical, strlen(canonical));
    crypto_generichash_final(&st, h, 16);
    sodium_bin2hex(out, 33, h, 16);
}

static void test_key_id_spec(void **state) {
    (void)state;
    char want[33];
    tokmark_profile *p = make_default(TOKMARK_SCHEME_KGW);
    spec_key_id(want, g_key,
                "scheme kgw\nseeding lefthash\ncontext-width 4\nvocab-size 100277\n"
                "tokenizer cl100k_base\ngamma-threshold 1073741824\ndelta 4000000000000000\n"
                "mask-repeated 1\n");
    assert_string_equal(tokmark_profile_key_id(p), want);
    assert_int_equal(strlen(tokmark_profile_key_id(p)), TOKMARK_KEY_ID_HEX);
    tokmark_profile_free(p);

    tokmark_params q;
    tokmark_params_default(&q, TOKMARK_SCHEME_SYNTHID);
    q.seeding = TOKMARK_SEEDING_SELFHASH;
    q.context_width = 3;
    q.layers = 3;
    q.weights[0] = 7; q.weights[1] = 1000; q.weights[2] = 1;
    q.mask_repeated = 0;
    q.vocab_size = 32000;
    strcpy(q.tokenizer, "llama-2");
    p = make(&q);
    spec_key_id(want, g_key,
                "scheme synthid\nseeding selfhash\ncontext-width 3\nvocab-size 32000\n"
                "tokenizer llama-2\nlayers 3\nweights 7,1000,1\nmask-repeated 0\n");
    assert_string_equal(tokmark_profile_key_id(p), want);
    tokmark_profile_free(p);

    tokmark_params_default(&q, TOKMARK_SCHEME_GUMBEL);
    q.context_width = 1;
    p = make(&q);
    spec_key_id(want, g_key,
                "scheme gumbel\nseeding lefthash\ncontext-width 1\nvocab-size 100277\n"
                "tokenizer cl100k_base\nmask-repeated 1\n");
    assert_string_equal(tokmark_profile_key_id(p), want);

    /* accounts: K_account = BLAKE2b-256(key = k_acct, account), account-hex line */
    tokmark_profile *a = NULL;
    assert_int_equal(tokmark_profile_derive_account(&a, p, "tenant 7", 8), TOKMARK_OK);
    static const char ctx[8] = {'t', 'o', 'k', 'm', 'a', 'r', 'k', '1'};
    uint8_t k_acct[32], k_a[32];
    assert_int_equal(crypto_kdf_derive_from_key(k_acct, 32, 0x02, ctx, g_key), 0);
    crypto_generichash(k_a, 32, (const unsigned char *)"tenant 7", 8, k_acct, 32);
    spec_key_id(want, k_a,
                "scheme gumbel\nseeding lefthash\ncontext-width 1\nvocab-size 100277\n"
                "tokenizer cl100k_base\nmask-repeated 1\naccount-hex 74656e616e742037\n");
    assert_string_equal(tokmark_profile_key_id(a), want);
    /* same values as a plain profile from K_account */
    tokmark_profile *b = NULL;
    assert_int_equal(tokmark_profile_from_key(&b, &q, k_a), TOKMARK_OK);
    assert_same_values(a, b);
    assert_string_not_equal(tokmark_profile_key_id(a), tokmark_profile_key_id(b));
    tokmark_profile_free(a);
    tokmark_profile_free(b);
    tokmark_profile_free(p);
}

typedef void (*changer)(tokmark_params *);
static void c_seeding(tokmark_params *p) { p->seeding = TOKMARK_SEEDING_SELFHASH; }
static void c_h(tokmark_params *p) { p->context_width = 5; }
static void c_v(tokmark_params *p) { p->vocab_size = 100278; }
static void c_tok(tokmark_params *p) { strcpy(p->tokenizer, "o200k_base"); }
static void c_gamma(tokmark_params *p) { p->gamma_threshold++; }
static void c_delta(tokmark_params *p) { p->delta = nextafter(2.0, 3.0); }
static void c_mask(tokmark_params *p) { p->mask_repeated = 0; }

static void test_key_id_changes(void **state) {
    (void)state;
    static const changer kgw_changes[] = {c_seeding, c_h, c_v, c_tok, c_gamma, c_delta, c_mask};
    tokmark_profile *base = make_default(TOKMARK_SCHEME_KGW);
    const char *id0 = tokmark_profile_key_id(base);
    for (size_t i = 0; i < sizeof kgw_changes / sizeof kgw_changes[0]; i++) {
        tokmark_params p;
        tokmark_params_default(&p, TOKMARK_SCHEME_KGW);
        kgw_changes[i](&p);
        tokmark_profile *q = make(&p);
        if (strcmp(tokmark_profile_key_id(q), id0) == 0) fail_msg("change %zu kept the key ID", i);
        tokmark_profile_free(q);
    }
    /* scheme */
    tokmark_profile *g = make_default(TOKMARK_SCHEME_GUMBEL);
    assert_string_not_equal(tokmark_profile_key_id(g), id0);
    tokmark_profile_free(g);
    /* SynthID layers and weights */
    tokmark_params s;
    tokmark_params_default(&s, TOKMARK_SCHEME_SYNTHID);
    tokmark_profile *s0 = make(&s);
    s.weights[3] = 1;
    tokmark_profile *s1 = make(&s);
    tokmark_params_default(&s, TOKMARK_SCHEME_SYNTHID);
    s.layers = 29;
    tokmark_profile *s2 = make(&s);
    assert_string_not_equal(tokmark_profile_key_id(s0), tokmark_profile_key_id(s1));
    assert_string_not_equal(tokmark_profile_key_id(s0), tokmark_profile_key_id(s2));
    assert_string_not_equal(tokmark_profile_key_id(s1), tokmark_profile_key_id(s2));
    tokmark_profile_free(s0);
    tokmark_profile_free(s1);
    tokmark_profile_free(s2);
    /* the key */
    uint8_t k2[32];
    memcpy(k2, g_key, 32);
    k2[31] ^= 1;
    tokmark_params p;
    tokmark_params_default(&p, TOKMARK_SCHEME_KGW);
    tokmark_profile *other = NULL;
    assert_int_equal(tokmark_profile_from_key(&other, &p, k2), TOKMARK_OK);
    assert_string_not_equal(tokmark_profile_key_id(other), id0);
    assert_true(values_differ(base, other));
    tokmark_profile_free(other);
    /* same key, same params: same key ID; fields of other schemes do not matter */
    p.layers = 3;
    p.weights[0] = 999;
    tokmark_profile *same = make(&p);
    assert_string_equal(tokmark_profile_key_id(same), id0);
    assert_params_equal(tokmark_profile_params(same), tokmark_profile_params(base));
    tokmark_profile_free(same);
    /* random keys differ */
    tokmark_profile *r1 = NULL, *r2 = NULL;
    tokmark_params_default(&p, TOKMARK_SCHEME_KGW);
    assert_int_equal(tokmark_profile_generate(&r1, &p), TOKMARK_OK);
    assert_int_equal(tokmark_profile_generate(&r2, &p), TOKMARK_OK);
    assert_string_not_equal(tokmark_profile_key_id(r1), tokmark_profile_key_id(r2));
    assert_null(tokmark_profile_account(r1));
    tokmark_profile_free(r1);
    tokmark_profile_free(r2);
    tokmark_profile_free(base);
}

/* Neither the key ID nor describe() shows the key, or any 16 hex digits of it. */
static void assert_no_key(const char *text, const char *key_hex) {
    for (size_t i = 0; i + 16 <= 64; i++) {
        char window[17];
        memcpy(window, key_hex + i, 16);
        window[16] = '\0';
        if (strstr(text, window) != NULL) fail_msg("key material in: %s", text);
    }
}

static void test_describe(void **state) {
    (void)state;
    tokmark_profile *p = make_default(TOKMARK_SCHEME_KGW);
    assert_no_key(tokmark_profile_key_id(p), g_key_hex);
    size_t n = tokmark_profile_describe(p, NULL, 0);
    assert_true(n > 0);
    char *buf = malloc(n + 1);
    assert_int_equal(tokmark_profile_describe(p, buf, n + 1), n);
    assert_int_equal(strlen(buf), n);
    assert_no_key(buf, g_key_hex);
    char line[80];
    snprintf(line, sizeof line, "key-id %s\n", tokmark_profile_key_id(p));
    assert_non_null(strstr(buf, line));
    assert_non_null(strstr(buf, "scheme kgw\n"));
    assert_non_null(strstr(buf, "seeding lefthash\n"));
    assert_non_null(strstr(buf, "context-width 4\n"));
    assert_non_null(strstr(buf, "vocab-size 100277\n"));
    assert_non_null(strstr(buf, "tokenizer cl100k_base\n"));
    assert_non_null(strstr(buf, "gamma 0.25\n"));
    assert_non_null(strstr(buf, "gamma-threshold 1073741824\n"));
    assert_non_null(strstr(buf, "delta 2\n"));
    assert_non_null(strstr(buf, "mask-repeated 1\n"));
    assert_null(strstr(buf, "layers"));
    assert_null(strstr(buf, "account"));
    assert_null(strstr(buf, "master"));
    /* truncation like snprintf */
    char small[10];
    assert_int_equal(tokmark_profile_describe(p, small, sizeof small), n);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, buf, sizeof small - 1);
    free(buf);

    /* SynthID and an account with odd bytes */
    tokmark_profile *s = make_default(TOKMARK_SCHEME_SYNTHID), *a = NULL;
    assert_int_equal(tokmark_profile_derive_account(&a, s, "a b\n\\c", 6), TOKMARK_OK);
    n = tokmark_profile_describe(a, NULL, 0);
    buf = malloc(n + 1);
    tokmark_profile_describe(a, buf, n + 1);
    assert_non_null(strstr(buf, "scheme synthid\n"));
    assert_non_null(strstr(buf, "layers 30\n"));
    assert_non_null(strstr(buf, "weights 30,29,28,27,26,25,24,23,22,21,20,19,18,17,16,15,14,13,12,11,10,9,8,7,6,5,4,3,2,1\n"));
    assert_non_null(strstr(buf, "account a\\x20b\\x0a\\x5cc\n"));
    assert_null(strstr(buf, "gamma"));
    assert_null(strstr(buf, "delta"));
    assert_no_key(buf, g_key_hex);
    free(buf);
    tokmark_profile_free(a);
    tokmark_profile_free(s);
    tokmark_profile_free(p);
}

/* ------------------------------------------------------------------------ */
/* accounts                                                                  */
/* ------------------------------------------------------------------------ */

static void test_accounts(void **state) {
    (void)state;
    tokmark_profile *m = make_default(TOKMARK_SCHEME_KGW);
    tokmark_profile *a1 = NULL, *a2 = NULL, *b = NULL;
    assert_int_equal(tokmark_profile_derive_account(&a1, m, "alice", 5), TOKMARK_OK);
    assert_int_equal(tokmark_profile_derive_account(&a2, m, "alice", 5), TOKMARK_OK);
    assert_int_equal(tokmark_profile_derive_account(&b, m, "bob", 3), TOKMARK_OK);
    assert_string_equal(tokmark_profile_key_id(a1), tokmark_profile_key_id(a2));
    assert_same_values(a1, a2);
    assert_string_not_equal(tokmark_profile_key_id(a1), tokmark_profile_key_id(b));
    assert_string_not_equal(tokmark_profile_key_id(a1), tokmark_profile_key_id(m));
    assert_true(values_differ(a1, b));
    assert_true(values_differ(a1, m));
    assert_string_equal(tokmark_profile_account(a1), "alice");
    assert_string_equal(tokmark_profile_account(b), "bob");
    assert_null(tokmark_profile_account(m));
    assert_params_equal(tokmark_profile_params(a1), tokmark_profile_params(m));

    /* a prefix is a different account */
    tokmark_profile *al = NULL;
    assert_int_equal(tokmark_profile_derive_account(&al, m, "alice", 4), TOKMARK_OK);
    assert_string_not_equal(tokmark_profile_key_id(al), tokmark_profile_key_id(a1));
    tokmark_profile_free(al);

    /* lengths: 1..255 */
    char acct[300];
    memset(acct, 'z', sizeof acct);
    tokmark_profile *x = (tokmark_profile *)1;
    assert_int_equal(tokmark_profile_derive_account(&x, m, acct, 0), TOKMARK_ERR_INVALID);
    assert_null(x);
    assert_int_equal(tokmark_profile_derive_account(&x, m, acct, 256), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_profile_derive_account(&x, m, NULL, 3), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_profile_derive_account(&x, NULL, "a", 1), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_profile_derive_account(&x, m, acct, 255), TOKMARK_OK);
    assert_int_equal(strlen(tokmark_profile_account(x)), 255);
    /* no accounts of accounts */
    tokmark_profile *y = (tokmark_profile *)1;
    assert_int_equal(tokmark_profile_derive_account(&y, x, "a", 1), TOKMARK_ERR_INVALID);
    assert_null(y);

    /* round trip through a file, binary account bytes included */
    char path[512];
    path_in(path, sizeof path, "acct.key");
    tokmark_profile *bin = NULL, *back = NULL;
    assert_int_equal(tokmark_profile_derive_account(&bin, m, "x\0y \xff", 5), TOKMARK_OK);
    assert_int_equal(tokmark_profile_save(bin, path, 0), TOKMARK_OK);
    assert_int_equal(tokmark_profile_load(&back, path, 0, NULL), TOKMARK_OK);
    assert_string_equal(tokmark_profile_key_id(back), tokmark_profile_key_id(bin));
    assert_memory_equal(tokmark_profile_account(back), "x\0y \xff", 6);
    assert_same_values(back, bin);
    tokmark_profile_free(back);
    back = NULL;
    assert_int_equal(tokmark_profile_save(x, path, 1), TOKMARK_OK);
    assert_int_equal(tokmark_profile_load(&back, path, 0, NULL), TOKMARK_OK);
    assert_string_equal(tokmark_profile_key_id(back), tokmark_profile_key_id(x));
    assert_string_equal(tokmark_profile_account(back), tokmark_profile_account(x));
    /* the loaded sub-profile cannot be derived from again either */
    assert_int_equal(tokmark_profile_derive_account(&y, back, "a", 1), TOKMARK_ERR_INVALID);
    tokmark_profile_free(back);
    tokmark_profile_free(bin);
    tokmark_profile_free(x);
    tokmark_profile_free(a1);
    tokmark_profile_free(a2);
    tokmark_profile_free(b);
    tokmark_profile_free(m);
}

/* ------------------------------------------------------------------------ */
/* files                                                                     */
/* ------------------------------------------------------------------------ */

static void round_trip(const tokmark_params *params, const char *name) {
    char path[512];
    path_in(path, sizeof path, name);
    tokmark_profile *p = NULL, *q = NULL;
    assert_int_equal(tokmark_profile_generate(&p, params), TOKMARK_OK);
    assert_int_equal(tokmark_profile_save(p, path, 0), TOKMARK_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    size_t line = 99;
    assert_int_equal(tokmark_profile_load(&q, path, 0, &line), TOKMARK_OK);
    assert_int_equal(line, 0);
    assert_params_equal(tokmark_profile_params(q), tokmark_profile_params(p));
    assert_string_equal(tokmark_profile_key_id(q), tokmark_profile_key_id(p));
    assert_null(tokmark_profile_account(q));
    assert_same_values(p, q);
    /* the key ID line is in the file; saving the loaded profile gives the same file */
    char *t1 = read_text(path);
    char kid[64];
    snprintf(kid, sizeof kid, "\nkey-id %s\n", tokmark_profile_key_id(p));
    assert_non_null(strstr(t1, kid));
    char path2[600];
    snprintf(path2, sizeof path2, "%s.again", path);
    assert_int_equal(tokmark_profile_save(q, path2, 0), TOKMARK_OK);
    char *t2 = read_text(path2);
    assert_string_equal(t1, t2);
    free(t1);
    free(t2);
    tokmark_profile_free(p);
    tokmark_profile_free(q);
}

static void test_round_trip(void **state) {
    (void)state;
    tokmark_params p;
    tokmark_params_default(&p, TOKMARK_SCHEME_KGW);
    round_trip(&p, "kgw.key");
    p.delta = 0.1;
    p.gamma_threshold = tokmark_gamma_threshold(0.3);
    p.seeding = TOKMARK_SEEDING_SELFHASH;
    p.context_width = 16;
    p.vocab_size = 0x7fffffff;
    round_trip(&p, "kgw2.key");
    p.delta = nextafter(1.0, 0.0); /* needs 17 digits */
    p.seeding = TOKMARK_SEEDING_LEFTHASH;
    round_trip(&p, "kgw3.key");
    p.delta = 5e-324; /* smallest subnormal */
    round_trip(&p, "kgw4.key");
    p.delta = 100;
    round_trip(&p, "kgw5.key");
    tokmark_params_default(&p, TOKMARK_SCHEME_GUMBEL);
    p.mask_repeated = 0;
    strcpy(p.tokenizer, "meta-llama/Llama-3.1-8B");
    round_trip(&p, "gumbel.key");
    tokmark_params_default(&p, TOKMARK_SCHEME_SYNTHID);
    round_trip(&p, "synthid.key");
    p.layers = 128;
    for (int i = 0; i < 128; i++) p.weights[i] = (uint16_t)(1 + (i * 37) % 1000);
    round_trip(&p, "synthid2.key");
    p.layers = 1;
    round_trip(&p, "synthid3.key"); /* weights beyond m are dropped */
    /* only the files, no temporaries, are left */
    assert_int_equal(count_entries(g_dir), 18);
}

static void test_permissions(void **state) {
    (void)state;
    char path[512];
    path_in(path, sizeof path, "perm.key");
    tokmark_profile *p = make_default(TOKMARK_SCHEME_GUMBEL), *q = NULL;
    assert_int_equal(tokmark_profile_save(p, path, 0), TOKMARK_OK);
    static const mode_t bad[] = {0644, 0640, 0604, 0601, 0610, 0660, 0666, 0700 | 0004};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(path, bad[i]), 0);
        assert_int_equal(tokmark_profile_load(&q, path, 0, NULL), TOKMARK_ERR_PERMISSIONS);
        assert_null(q);
        tokmark_keyring *r = NULL;
        assert_int_equal(tokmark_keyring_new(&r), TOKMARK_OK);
        assert_int_equal(tokmark_keyring_load(r, path, 0, NULL), TOKMARK_ERR_PERMISSIONS);
        assert_int_equal(tokmark_keyring_size(r), 0);
        assert_int_equal(tokmark_keyring_load(r, path, TOKMARK_LOAD_FORCE, NULL), TOKMARK_OK);
        assert_int_equal(tokmark_keyring_size(r), 1);
        tokmark_keyring_free(r);
        assert_int_equal(tokmark_profile_load(&q, path, TOKMARK_LOAD_FORCE, NULL), TOKMARK_OK);
        assert_string_equal(tokmark_profile_key_id(q), tokmark_profile_key_id(p));
        tokmark_profile_free(q);
        q = NULL;
    }
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(tokmark_profile_load(&q, path, 0, NULL), TOKMARK_OK);
    tokmark_profile_free(q);
    q = NULL;
    /* overwriting gives a 0600 file again, whatever the umask */
    mode_t old = umask(0);
    assert_int_equal(tokmark_profile_save(p, path, 1), TOKMARK_OK);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    tokmark_profile_free(p);
}

static void test_overwrite(void **state) {
    (void)state;
    char path[512];
    path_in(path, sizeof path, "ow.key");
    tokmark_profile *a = make_default(TOKMARK_SCHEME_KGW), *b = make_default(TOKMARK_SCHEME_SYNTHID), *q = NULL;
    assert_int_equal(tokmark_profile_save(a, path, 0), TOKMARK_OK);
    assert_int_equal(tokmark_profile_save(b, path, 0), TOKMARK_ERR_EXISTS);
    assert_int_equal(tokmark_profile_load(&q, path, 0, NULL), TOKMARK_OK);
    assert_string_equal(tokmark_profile_key_id(q), tokmark_profile_key_id(a));
    tokmark_profile_free(q);
    q = NULL;
    assert_int_equal(tokmark_profile_save(b, path, 1), TOKMARK_OK);
    assert_int_equal(tokmark_profile_load(&q, path, 0, NULL), TOKMARK_OK);
    assert_string_equal(tokmark_profile_key_id(q), tokmark_profile_key_id(b));
    tokmark_profile_free(q);
    q = NULL;
    /* a dangling symlink also counts as existing */
    char link_path[512];
    path_in(link_path, sizeof link_path, "dangling");
    assert_int_equal(symlink("/nonexistent/tokmark", link_path), 0);
    assert_int_equal(tokmark_profile_save(a, link_path, 0), TOKMARK_ERR_EXISTS);
    /* a keyring save refuses too */
    tokmark_keyring *r = NULL;
    assert_int_equal(tokmark_keyring_new(&r), TOKMARK_OK);
    assert_int_equal(tokmark_keyring_save(r, path, 1), TOKMARK_ERR_INVALID); /* empty ring */
    tokmark_profile *c = make_default(TOKMARK_SCHEME_GUMBEL);
    assert_int_equal(tokmark_keyring_add(r, c), TOKMARK_OK);
    assert_int_equal(tokmark_keyring_save(r, path, 0), TOKMARK_ERR_EXISTS);
    tokmark_keyring_free(r);
    /* no temporary files were left behind */
    assert_int_equal(count_entries(g_dir), 2);
    /* errors */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/k", g_dir);
    assert_int_equal(tokmark_profile_save(a, bad, 0), TOKMARK_ERR_IO);
    assert_int_equal(tokmark_profile_save(a, g_dir, 1), TOKMARK_ERR_IO); /* a directory */
    snprintf(bad, sizeof bad, "%s/", g_dir);
    assert_int_equal(tokmark_profile_save(a, bad, 1), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_profile_save(a, "", 0), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_profile_save(a, NULL, 0), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_profile_save(NULL, path, 1), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_profile_load(&q, bad, 0, NULL), TOKMARK_ERR_IO);
    assert_int_equal(tokmark_profile_load(&q, g_dir, TOKMARK_LOAD_FORCE, NULL), TOKMARK_ERR_IO);
    snprintf(bad, sizeof bad, "%s/missing", g_dir);
    assert_int_equal(tokmark_profile_load(&q, bad, 0, NULL), TOKMARK_ERR_IO);
    assert_int_equal(errno, ENOENT);
    assert_null(q);
    assert_int_equal(count_entries(g_dir), 2);
    tokmark_profile_free(a);
    tokmark_profile_free(b);
}

static void test_file_syntax_ok(void **state) {
    (void)state;
    char t[4096];
    /* comments, blank lines, any field order, no final newline, key-id optional */
    snprintf(t, sizeof t,
             "# a comment\n\n"
             "tokmark-profile 1\n"
             "# inside\n"
             "master-key %s\n"
             "\n"
             "vocab-size 50000\n"
             "delta 1.5\n"
             "scheme kgw\n"
             "end",
             g_key_hex);
    expect_load(t, TOKMARK_OK, 0);
    char path[512];
    path_in(path, sizeof path, "case.key");
    tokmark_profile *p = NULL;
    assert_int_equal(tokmark_profile_load(&p, path, 0, NULL), TOKMARK_OK);
    tokmark_params want;
    tokmark_params_default(&want, TOKMARK_SCHEME_KGW);
    want.vocab_size = 50000;
    want.delta = 1.5;
    assert_params_equal(tokmark_profile_params(p), &want);
    tokmark_profile *q = make(&want);
    assert_string_equal(tokmark_profile_key_id(p), tokmark_profile_key_id(q));
    /* the same with its correct key-id */
    snprintf(t, sizeof t,
             "tokmark-profile 1\nkey-id %s\nscheme kgw\nvocab-size 50000\ndelta 1.5e0\nmaster-key %s\nend\n",
             tokmark_profile_key_id(q), g_key_hex);
    expect_load(t, TOKMARK_OK, 0);
    tokmark_profile_free(p);
    tokmark_profile_free(q);
    /* SynthID: layers alone gives weights m..1; weights need layers to match */
    valid_text(t, sizeof t, "scheme synthid\nvocab-size 10\nlayers 3\n");
    expect_load(t, TOKMARK_OK, 0);
    assert_int_equal(tokmark_profile_load(&p, path, 0, NULL), TOKMARK_OK);
    assert_int_equal(tokmark_profile_params(p)->layers, 3);
    assert_int_equal(tokmark_profile_params(p)->weights[0], 3);
    assert_int_equal(tokmark_profile_params(p)->weights[2], 1);
    assert_int_equal(tokmark_profile_params(p)->weights[3], 0);
    tokmark_profile_free(p);
    valid_text(t, sizeof t, "weights 1,2,3\nscheme synthid\nvocab-size 10\nlayers 3\n");
    expect_load(t, TOKMARK_OK, 0);
    /* profile_load returns the first of several */
    char two[8192];
    valid_text(t, sizeof t, "scheme gumbel\nvocab-size 7\n");
    snprintf(two, sizeof two, "%s\n%s", t, t);
    strstr(two + strlen(t), "vocab-size 7")[11] = '8'; /* second profile: vocab-size 8 */
    expect_load(two, TOKMARK_OK, 0);
    assert_int_equal(tokmark_profile_load(&p, path, 0, NULL), TOKMARK_OK);
    assert_int_equal(tokmark_profile_params(p)->vocab_size, 7);
    tokmark_profile_free(p);
}

typedef struct bad_case {
    const char *fields; /* between the header and master-key */
    size_t line;        /* expected error line (the header is line 1) */
} bad_case;

static void test_file_errors(void **state) {
    (void)state;
    static const bad_case cases[] = {
        /* unknown, duplicate, malformed lines */
        {"scheme kgw\nvocab-size 5\ncolour red\n", 4},
        {"scheme kgw\nvocab-size 5\nvocab-size 5\n", 4},
        {"scheme kgw\nscheme kgw\nvocab-size 5\n", 3},
        {"scheme kgw\nvocab-size  5\n", 3},
        {"scheme kgw\nvocab-size 5 \n", 3},
        {"scheme kgw\nvocab-size\n", 3},
        {"scheme kgw\nvocab-size \n", 3},
        {" scheme kgw\nvocab-size 5\n", 2},
        {"scheme kgw\nvocab-size 5\r\n", 3},
        {"scheme kgw\nvocab-size\t5\n", 3},
        {"scheme kgw\nvocab-size 5\n   \n", 4},
        {"scheme kgw\nVocab-size 5\n", 3},
        /* values */
        {"scheme KGW\nvocab-size 5\n", 2},
        {"scheme aaronson\nvocab-size 5\n", 2},
        {"scheme kgw\nvocab-size 1\n", 3},
        {"scheme kgw\nvocab-size 0\n", 3},
        {"scheme kgw\nvocab-size 2147483648\n", 3},
        {"scheme kgw\nvocab-size 99999999999999999999999\n", 3},
        {"scheme kgw\nvocab-size 05\n", 3},
        {"scheme kgw\nvocab-size +5\n", 3},
        {"scheme kgw\nvocab-size -5\n", 3},
        {"scheme kgw\nvocab-size 5x\n", 3},
        {"scheme kgw\nvocab-size 5\nseeding minhash\n", 4},
        {"scheme kgw\nvocab-size 5\ncontext-width 0\n", 4},
        {"scheme kgw\nvocab-size 5\ncontext-width 17\n", 4},
        {"scheme kgw\nvocab-size 5\ncontext-width 1\nseeding selfhash\n", 4},
        {"scheme kgw\nvocab-size 5\nseeding selfhash\ncontext-width 1\n", 5},
        {"scheme kgw\nvocab-size 5\ntokenizer a\xc3\xa9\n", 4},
        {"scheme kgw\nvocab-size 5\nmask-repeated 2\n", 4},
        {"scheme kgw\nvocab-size 5\nmask-repeated yes\n", 4},
        {"scheme kgw\nvocab-size 5\ngamma-threshold 0\n", 4},
        {"scheme kgw\nvocab-size 5\ngamma-threshold 4294967296\n", 4},
        {"scheme kgw\nvocab-size 5\ngamma-threshold 0.25\n", 4},
        {"scheme kgw\nvocab-size 5\ndelta 0\n", 4},
        {"scheme kgw\nvocab-size 5\ndelta 100.00000000001\n", 4},
        {"scheme kgw\nvocab-size 5\ndelta -1\n", 4},
        {"scheme kgw\nvocab-size 5\ndelta nan\n", 4},
        {"scheme kgw\nvocab-size 5\ndelta inf\n", 4},
        {"scheme kgw\nvocab-size 5\ndelta 0x1p1\n", 4},
        {"scheme kgw\nvocab-size 5\ndelta 2,5\n", 4},
        {"scheme kgw\nvocab-size 5\ndelta 1e999\n", 4},
        {"scheme synthid\nvocab-size 5\nlayers 0\n", 4},
        {"scheme synthid\nvocab-size 5\nlayers 129\n", 4},
        {"scheme synthid\nvocab-size 5\nlayers 2\nweights 1,0\n", 5},
        {"scheme synthid\nvocab-size 5\nlayers 2\nweights 1,1001\n", 5},
        {"scheme synthid\nvocab-size 5\nlayers 2\nweights 1,2,3\n", 5},
        {"scheme synthid\nvocab-size 5\nweights 1,2\nlayers 2\nweights 1,2\n", 6},
        {"scheme synthid\nvocab-size 5\nlayers 2\nweights 1,\n", 5},
        {"scheme synthid\nvocab-size 5\nlayers 2\nweights ,1\n", 5},
        {"scheme synthid\nvocab-size 5\nlayers 2\nweights 1,,2\n", 5},
        {"scheme synthid\nvocab-size 5\nweights 3,2,1\n", 4}, /* layers defaults to 30 */
        /* fields not for the scheme, before or after the scheme line */
        {"scheme gumbel\nvocab-size 5\ndelta 2\n", 4},
        {"gamma-threshold 5\nscheme gumbel\nvocab-size 5\n", 2},
        {"scheme synthid\nvocab-size 5\ngamma-threshold 5\n", 4},
        {"scheme kgw\nvocab-size 5\nlayers 30\n", 4},
        {"scheme gumbel\nvocab-size 5\nweights 1\n", 4},
        /* account-hex */
        {"scheme kgw\nvocab-size 5\naccount-hex 6\n", 4},
        {"scheme kgw\nvocab-size 5\naccount-hex 6g\n", 4},
        {"scheme kgw\nvocab-size 5\naccount-hex 6A\n", 4},
        /* key-id */
        {"scheme kgw\nvocab-size 5\nkey-id 00000000000000000000000000000000\n", 4},
        {"scheme kgw\nvocab-size 5\nkey-id 1234\n", 4},
        {"scheme kgw\nvocab-size 5\nkey-id 0000000000000000000000000000000G\n", 4},
        /* missing fields: the end line */
        {"vocab-size 5\n", 4},
        {"scheme kgw\n", 4},
    };
    char t[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        valid_text(t, sizeof t, cases[i].fields);
        expect_load(t, TOKMARK_ERR_FORMAT, cases[i].line);
    }

    /* tokenizer: 127 bytes are fine, 128 are not */
    char fields[400];
    char name[130];
    memset(name, 'a', 127);
    name[127] = '\0';
    snprintf(fields, sizeof fields, "scheme kgw\nvocab-size 5\ntokenizer %s\n", name);
    valid_text(t, sizeof t, fields);
    expect_load(t, TOKMARK_OK, 0);
    memset(name, 'a', 128);
    name[128] = '\0';
    snprintf(fields, sizeof fields, "scheme kgw\nvocab-size 5\ntokenizer %s\n", name);
    valid_text(t, sizeof t, fields);
    expect_load(t, TOKMARK_ERR_FORMAT, 4);

    /* the master key */
    char k[200];
    static const char *const bad_keys[] = {
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",   /* 63 digits */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00", /* 66 */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g",  /* not hex */
        "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",  /* upper case */
        "00:102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",  /* colon */
    };
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        snprintf(t, sizeof t, "tokmark-profile 1\nscheme kgw\nvocab-size 5\nmaster-key %s\nend\n",
                 bad_keys[i]);
        expect_load(t, TOKMARK_ERR_FORMAT, 4);
    }
    snprintf(t, sizeof t, "tokmark-profile 1\nscheme kgw\nvocab-size 5\nend\n");
    expect_load(t, TOKMARK_ERR_FORMAT, 4); /* no master-key */
    snprintf(t, sizeof t, "tokmark-profile 1\nmaster-key %s\nmaster-key %s\nscheme kgw\nvocab-size 5\nend\n",
             g_key_hex, g_key_hex);
    expect_load(t, TOKMARK_ERR_FORMAT, 3);

    /* structure */
    snprintf(k, sizeof k, "master-key %s\n", g_key_hex);
    snprintf(t, sizeof t, "tokmark-profile 1\nscheme kgw\nvocab-size 5\n%s", k);
    expect_load(t, TOKMARK_ERR_FORMAT, 4); /* missing end at EOF: the last line */
    snprintf(t, sizeof t, "tokmark-profile 1\nscheme kgw\nvocab-size 5\n%s\n# trailing\n", k);
    expect_load(t, TOKMARK_ERR_FORMAT, 6);
    snprintf(t, sizeof t, "tokmark-profile 1\nscheme kgw\nvocab-size 5\n%stokmark-profile 1\nend\n", k);
    expect_load(t, TOKMARK_ERR_FORMAT, 5); /* a new profile before end */
    snprintf(t, sizeof t, "tokmark-profile 1\nscheme kgw\nvocab-size 5\n%send\nend\n", k);
    expect_load(t, TOKMARK_ERR_FORMAT, 6); /* end outside a profile */
    snprintf(t, sizeof t, "tokmark-profile 2\nscheme kgw\nvocab-size 5\n%send\n", k);
    expect_load(t, TOKMARK_ERR_FORMAT, 1);
    snprintf(t, sizeof t, "\n\nscheme kgw\ntokmark-profile 1\nscheme kgw\nvocab-size 5\n%send\n", k);
    expect_load(t, TOKMARK_ERR_FORMAT, 3);
    snprintf(t, sizeof t, "tokmark-profile 1 \nscheme kgw\nvocab-size 5\n%send\n", k);
    expect_load(t, TOKMARK_ERR_FORMAT, 1);
    snprintf(t, sizeof t, "tokmark-profile 1\nscheme kgw\nvocab-size 5\n%send \n", k);
    expect_load(t, TOKMARK_ERR_FORMAT, 5);
    snprintf(t, sizeof t, "tokmark-profile 1\r\nscheme kgw\r\nvocab-size 5\r\n%send\r\n", k);
    expect_load(t, TOKMARK_ERR_FORMAT, 1);
    snprintf(t, sizeof t, "\xef\xbb\xbftokmark-profile 1\nscheme kgw\nvocab-size 5\n%send\n", k);
    expect_load(t, TOKMARK_ERR_FORMAT, 1);
    expect_load("", TOKMARK_ERR_FORMAT, 1);
    expect_load("# only a comment\n\n", TOKMARK_ERR_FORMAT, 2);
    /* an error in the second profile */
    valid_text(k, sizeof k, "scheme gumbel\nvocab-size 7\n");
    snprintf(t, sizeof t, "%s\n%s", k, k);
    char *second = strstr(t + strlen(k), "vocab-size 7");
    second[11] = '1'; /* vocab-size 1 */
    expect_load(t, TOKMARK_ERR_FORMAT, 9);

    /* a NUL byte in a line */
    char path[512];
    path_in(path, sizeof path, "nul.key");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    static const char nul_text[] = "tokmark-profile 1\nscheme kgw\0\nvocab-size 5\n";
    assert_int_equal(write(fd, nul_text, sizeof nul_text - 1), (ssize_t)(sizeof nul_text - 1));
    close(fd);
    tokmark_profile *p = NULL;
    size_t line = 0;
    assert_int_equal(tokmark_profile_load(&p, path, 0, &line), TOKMARK_ERR_FORMAT);
    assert_int_equal(line, 2);
    /* errline may be NULL */
    assert_int_equal(tokmark_profile_load(&p, path, 0, NULL), TOKMARK_ERR_FORMAT);
    assert_int_equal(tokmark_profile_load(NULL, path, 0, NULL), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_profile_load(&p, NULL, 0, NULL), TOKMARK_ERR_INVALID);
}

/* ------------------------------------------------------------------------ */
/* key rings                                                                 */
/* ------------------------------------------------------------------------ */

static void test_keyring(void **state) {
    (void)state;
    tokmark_keyring *r = NULL;
    assert_int_equal(tokmark_keyring_new(&r), TOKMARK_OK);
    assert_int_equal(tokmark_keyring_size(r), 0);
    assert_null(tokmark_keyring_get(r, 0));
    tokmark_profile *m = make_default(TOKMARK_SCHEME_SYNTHID);
    char ids[4][TOKMARK_KEY_ID_HEX + 1];
    strcpy(ids[0], tokmark_profile_key_id(m));
    static const char *const accts[] = {"acct-1", "acct-2", "acct-3"};
    for (int i = 0; i < 3; i++) {
        tokmark_profile *a = NULL;
        assert_int_equal(tokmark_profile_derive_account(&a, m, accts[i], strlen(accts[i])), TOKMARK_OK);
        strcpy(ids[i + 1], tokmark_profile_key_id(a));
        assert_int_equal(tokmark_keyring_add(r, a), TOKMARK_OK);
    }
    assert_int_equal(tokmark_keyring_add(r, m), TOKMARK_OK);
    assert_int_equal(tokmark_keyring_size(r), 4);
    assert_string_equal(tokmark_profile_key_id(tokmark_keyring_get(r, 3)), ids[0]);
    assert_null(tokmark_keyring_get(r, 4));

    char path[512];
    path_in(path, sizeof path, "ring.key");
    assert_int_equal(tokmark_keyring_save(r, path, 0), TOKMARK_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    /* load twice into one ring: 8 profiles in file order */
    tokmark_keyring *r2 = NULL;
    assert_int_equal(tokmark_keyring_new(&r2), TOKMARK_OK);
    size_t line = 7;
    assert_int_equal(tokmark_keyring_load(r2, path, 0, &line), TOKMARK_OK);
    assert_int_equal(line, 0);
    assert_int_equal(tokmark_keyring_load(r2, path, 0, NULL), TOKMARK_OK);
    assert_int_equal(tokmark_keyring_size(r2), 8);
    for (size_t i = 0; i < 8; i++) {
        const tokmark_profile *a = tokmark_keyring_get(r, i % 4), *b = tokmark_keyring_get(r2, i);
        assert_string_equal(tokmark_profile_key_id(a), tokmark_profile_key_id(b));
        if (i % 4 < 3) assert_string_equal(tokmark_profile_account(b), accts[i % 4]);
        else assert_null(tokmark_profile_account(b));
        assert_same_values(a, b);
    }
    /* a bad file adds nothing */
    char bad[512];
    path_in(bad, sizeof bad, "bad.key");
    char *text = read_text(path);
    size_t nlines = 0;
    for (const char *c = text; *c != '\0'; c++) nlines += *c == '\n';
    char *end = strrchr(text, 'e'); /* the last line "end" becomes "enx" */
    assert_string_equal(end, "end\n");
    end[2] = 'x';
    write_text(bad, text, 0600);
    free(text);
    line = 0;
    assert_int_equal(tokmark_keyring_load(r2, bad, 0, &line), TOKMARK_ERR_FORMAT);
    assert_int_equal(line, nlines);
    assert_int_equal(tokmark_keyring_size(r2), 8);
    tokmark_keyring_free(r2);

    /* add takes ownership also on failure; NULLs */
    tokmark_profile *x = make_default(TOKMARK_SCHEME_KGW);
    assert_int_equal(tokmark_keyring_add(NULL, x), TOKMARK_ERR_INVALID); /* freed: ASan would tell */
    assert_int_equal(tokmark_keyring_add(r, NULL), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_keyring_load(NULL, path, 0, NULL), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_keyring_save(NULL, path, 1), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_keyring_new(NULL), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_keyring_size(NULL), 0);
    assert_null(tokmark_keyring_get(NULL, 0));
    tokmark_keyring_free(NULL);
    tokmark_keyring_free(r);

    /* a large ring */
    assert_int_equal(tokmark_keyring_new(&r), TOKMARK_OK);
    m = make_default(TOKMARK_SCHEME_KGW);
    for (int i = 0; i < 200; i++) {
        char acct[32];
        snprintf(acct, sizeof acct, "user%d", i);
        tokmark_profile *a = NULL;
        assert_int_equal(tokmark_profile_derive_account(&a, m, acct, strlen(acct)), TOKMARK_OK);
        assert_int_equal(tokmark_keyring_add(r, a), TOKMARK_OK);
    }
    path_in(path, sizeof path, "big.key");
    assert_int_equal(tokmark_keyring_save(r, path, 0), TOKMARK_OK);
    assert_int_equal(tokmark_keyring_new(&r2), TOKMARK_OK);
    assert_int_equal(tokmark_keyring_load(r2, path, 0, NULL), TOKMARK_OK);
    assert_int_equal(tokmark_keyring_size(r2), 200);
    assert_string_equal(tokmark_profile_account(tokmark_keyring_get(r2, 199)), "user199");
    assert_string_equal(tokmark_profile_key_id(tokmark_keyring_get(r2, 123)),
                        tokmark_profile_key_id(tokmark_keyring_get(r, 123)));
    tokmark_keyring_free(r2);
    tokmark_keyring_free(r);
    tokmark_profile_free(m);
}

/* Files and descriptions use '.' whatever the process locale says. */
static void test_locale(void **state) {
    (void)state;
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8",
                                        "ru_RU.UTF-8", "nl_NL.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && got == NULL; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (got == NULL) {
        print_message("no locale with a decimal comma installed; skipping\n");
        skip();
    }
    tokmark_params p;
    tokmark_params_default(&p, TOKMARK_SCHEME_KGW);
    p.delta = 2.5;
    tokmark_profile *a = make(&p), *b = NULL;
    char path[512], buf[1024];
    path_in(path, sizeof path, "locale.key");
    int rc = tokmark_profile_save(a, path, 0);
    if (rc == TOKMARK_OK) rc = tokmark_profile_load(&b, path, 0, NULL);
    tokmark_profile_describe(a, buf, sizeof buf);
    char *text = rc == TOKMARK_OK ? read_text(path) : NULL;
    setlocale(LC_NUMERIC, "C");
    assert_int_equal(rc, TOKMARK_OK);
    assert_non_null(strstr(text, "\ndelta 2.5\n"));
    assert_non_null(strstr(buf, "\ngamma 0.25\n"));
    assert_true(tokmark_profile_params(b)->delta == 2.5);
    free(text);
    tokmark_profile_free(a);
    tokmark_profile_free(b);
}

static void test_null_args(void **state) {
    (void)state;
    tokmark_params p;
    tokmark_params_default(&p, TOKMARK_SCHEME_KGW);
    tokmark_params_default(NULL, TOKMARK_SCHEME_KGW);
    assert_int_equal(tokmark_profile_generate(NULL, &p), TOKMARK_ERR_INVALID);
    tokmark_profile *x = (tokmark_profile *)1;
    assert_int_equal(tokmark_profile_generate(&x, NULL), TOKMARK_ERR_INVALID);
    assert_null(x);
    x = (tokmark_profile *)1;
    assert_int_equal(tokmark_profile_from_key(&x, &p, NULL), TOKMARK_ERR_INVALID);
    assert_null(x);
    assert_int_equal(tokmark_profile_from_key(NULL, &p, g_key), TOKMARK_ERR_INVALID);
    assert_null(tokmark_profile_params(NULL));
    assert_null(tokmark_profile_key_id(NULL));
    assert_null(tokmark_profile_account(NULL));
    assert_int_equal(tokmark_profile_describe(NULL, NULL, 0), 0);
    tokmark_profile_free(NULL);
}

/* ------------------------------------------------------------------------ */
/* the CLI                                                                   */
/* ------------------------------------------------------------------------ */

/* Run the tool with argv (NULL-terminated), stdout and stderr to files in
 * g_dir; returns the exit status. */
static int run_tool(const char *const *args) {
    char out[512], err[512];
    path_in(out, sizeof out, "stdout");
    path_in(err, sizeof err, "stderr");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char *argv[32];
    int n = 0;
    argv[n++] = g_tool;
    for (; args[n - 1] != NULL && n < 31; n++) argv[n] = (char *)(uintptr_t)args[n - 1];
    argv[n] = NULL;
    pid_t pid;
    int rc = posix_spawn(&pid, g_tool, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static char *tool_stdout(void) {
    char out[512];
    path_in(out, sizeof out, "stdout");
    return read_text(out);
}

static char *tool_stderr(void) {
    char err[512];
    path_in(err, sizeof err, "stderr");
    return read_text(err);
}

/* The master-key hex digits of a key file (the first profile). */
static void file_key_hex(const char *path, char out[65]) {
    char *t = read_text(path);
    char *k = strstr(t, "\nmaster-key ");
    assert_non_null(k);
    memcpy(out, k + 12, 64);
    out[64] = '\0';
    free(t);
}

static void test_cli(void **state) {
    (void)state;
    if (g_tool[0] == '\0' || access(g_tool, X_OK) != 0) {
        print_message("tokmark binary not found next to the test; skipping\n");
        skip();
    }
    char key[512], acc[512], hex[65];
    path_in(key, sizeof key, "cli.key");
    path_in(acc, sizeof acc, "cli-acc.key");

    assert_int_equal(run_tool((const char *[]){"--help", NULL}), 0);
    char *o = tool_stdout();
    assert_non_null(strstr(o, "keygen"));
    assert_non_null(strstr(o, "Exit status"));
    free(o);
    assert_int_equal(run_tool((const char *[]){"--version", NULL}), 0);
    o = tool_stdout();
    assert_non_null(strstr(o, TOKMARK_VERSION_STRING));
    free(o);
    assert_int_equal(run_tool((const char *[]){"keygen", "--help", NULL}), 0);
    assert_int_equal(run_tool((const char *[]){"keyinfo", "--help", NULL}), 0);
    assert_int_equal(run_tool((const char *[]){"help", "keygen", NULL}), 0);

    /* keygen */
    assert_int_equal(run_tool((const char *[]){"keygen", "--scheme", "kgw", "--gamma", "0.5", "--delta",
                                               "3.25", "--vocab-size", "32000", "--tokenizer", "llama",
                                               "-o", key, NULL}),
                     0);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    file_key_hex(key, hex);
    o = tool_stdout();
    char *e = tool_stderr();
    assert_no_key(o, hex);
    assert_no_key(e, hex);
    tokmark_profile *p = NULL;
    assert_int_equal(tokmark_profile_load(&p, key, 0, NULL), TOKMARK_OK);
    char want[80];
    snprintf(want, sizeof want, "key-id %s\n", tokmark_profile_key_id(p));
    assert_non_null(strstr(o, want));
    assert_non_null(strstr(o, "delta=3.25"));
    assert_int_equal(tokmark_profile_params(p)->gamma_threshold, 1u << 31);
    assert_int_equal(tokmark_profile_params(p)->vocab_size, 32000);
    assert_string_equal(tokmark_profile_params(p)->tokenizer, "llama");
    free(o);
    free(e);

    /* keyinfo */
    assert_int_equal(run_tool((const char *[]){"keyinfo", key, NULL}), 0);
    o = tool_stdout();
    assert_non_null(strstr(o, want));
    assert_non_null(strstr(o, "gamma 0.5\n"));
    assert_no_key(o, hex);
    free(o);

    /* accounts */
    assert_int_equal(run_tool((const char *[]){"keygen", "--from", key, "--account", "alice", "--account",
                                               "bob", "-o", acc, NULL}),
                     0);
    assert_int_equal(stat(acc, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    o = tool_stdout();
    assert_no_key(o, hex);
    tokmark_profile *a = NULL;
    assert_int_equal(tokmark_profile_derive_account(&a, p, "bob", 3), TOKMARK_OK);
    snprintf(want, sizeof want, "key-id %s\n", tokmark_profile_key_id(a));
    assert_non_null(strstr(o, want));
    free(o);
    char ahex[65];
    file_key_hex(acc, ahex);
    assert_int_equal(run_tool((const char *[]){"keyinfo", acc, key, NULL}), 0);
    o = tool_stdout();
    assert_non_null(strstr(o, want));
    assert_non_null(strstr(o, "account alice\n"));
    assert_non_null(strstr(o, "profile 2 of 2"));
    assert_no_key(o, hex);
    assert_no_key(o, ahex);
    free(o);
    tokmark_profile_free(a);
    tokmark_profile_free(p);

    /* refusals */
    assert_int_equal(run_tool((const char *[]){"keygen", "--scheme", "kgw", "-o", key, NULL}), 3);
    e = tool_stderr();
    assert_non_null(strstr(e, key));
    free(e);
    assert_int_equal(run_tool((const char *[]){"keygen", "--scheme", "gumbel", "--force", "-o", key, NULL}), 0);
    assert_int_equal(chmod(key, 0644), 0);
    assert_int_equal(run_tool((const char *[]){"keyinfo", key, NULL}), 3);
    assert_int_equal(run_tool((const char *[]){"keyinfo", "--force", key, NULL}), 0);
    assert_int_equal(chmod(key, 0600), 0);
    char bad[512];
    path_in(bad, sizeof bad, "bad.key");
    write_text(bad, "tokmark-profile 1\nscheme kgw\nvocab-size 1\n", 0600);
    assert_int_equal(run_tool((const char *[]){"keyinfo", bad, NULL}), 3);
    e = tool_stderr();
    char loc[600];
    snprintf(loc, sizeof loc, "tokmark: %s:3: ", bad);
    assert_non_null(strstr(e, loc));
    free(e);
    path_in(bad, sizeof bad, "missing.key");
    assert_int_equal(run_tool((const char *[]){"keyinfo", bad, NULL}), 3);

    /* usage errors */
    const char *const usage[][12] = {
        {NULL},
        {"frobnicate", NULL},
        {"--frobnicate", NULL},
        {"keygen", "-o", "x", NULL},
        {"keygen", "--scheme", "kgw", NULL},
        {"keygen", "--scheme", "nope", "-o", "x", NULL},
        {"keygen", "--scheme", "kgw", "--gamma", "1.5", "-o", "x", NULL},
        {"keygen", "--scheme", "kgw", "--delta", "abc", "-o", "x", NULL},
        {"keygen", "--scheme", "gumbel", "--delta", "2", "-o", "x", NULL},
        {"keygen", "--scheme", "kgw", "--layers", "3", "-o", "x", NULL},
        {"keygen", "--scheme", "synthid", "--layers", "2", "--weights", "1,2,3", "-o", "x", NULL},
        {"keygen", "--scheme", "synthid", "--weights", "1,0", "-o", "x", NULL},
        {"keygen", "--scheme", "kgw", "--seeding", "selfhash", "--context-width", "1", "-o", "x", NULL},
        {"keygen", "--scheme", "kgw", "--context-width", "17", "-o", "x", NULL},
        {"keygen", "--scheme", "kgw", "--vocab-size", "1", "-o", "x", NULL},
        {"keygen", "--scheme", "kgw", "--tokenizer", "a b", "-o", "x", NULL},
        {"keygen", "--scheme", "kgw", "--bogus", "-o", "x", NULL},
        {"keygen", "--scheme", "kgw", "-o", NULL},
        {"keygen", "--scheme", "kgw", "extra", "-o", "x", NULL},
        {"keygen", "--account", "a", "-o", "x", NULL},
        {"keygen", "--from", key, "-o", "x", NULL},
        {"keygen", "--from", key, "--account", "a", "--scheme", "kgw", "-o", "x", NULL},
        {"keygen", "--from", key, "--account", "a", "--account", "a", "-o", "x", NULL},
        {"keyinfo", NULL},
        {"keyinfo", "--bogus", key, NULL},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        int rc = run_tool(usage[i]);
        if (rc != 2) fail_msg("usage case %zu exited %d", i, rc);
        e = tool_stderr();
        assert_true(strlen(e) > 0);
        free(e);
    }
    /* nothing named "x" was created */
    assert_int_equal(access("x", F_OK), -1);
}

int main(int argc, char **argv) {
    (void)argc;
    if (tokmark_init() != TOKMARK_OK) return 1;
    for (int i = 0; i < 32; i++) g_key[i] = (uint8_t)i;
    sodium_bin2hex(g_key_hex, sizeof g_key_hex, g_key, sizeof g_key);
    /* build/tests/test_profile -> build/tokmark (absolute) */
    g_tool[0] = '\0';
    const char *slash = strrchr(argv[0], '/');
    char cwd[512];
    if (slash != NULL && getcwd(cwd, sizeof cwd) != NULL) {
        int n = (int)(slash - argv[0]);
        int w = argv[0][0] == '/' ? snprintf(g_tool, sizeof g_tool, "%.*s/../tokmark", n, argv[0])
                                  : snprintf(g_tool, sizeof g_tool, "%s/%.*s/../tokmark", cwd, n, argv[0]);
        if (w < 0 || (size_t)w >= sizeof g_tool) g_tool[0] = '\0';
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_default),
        cmocka_unit_test(test_params_check),
        cmocka_unit_test(test_gamma),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_key_id_spec),
        cmocka_unit_test(test_key_id_changes),
        cmocka_unit_test(test_describe),
        cmocka_unit_test_setup_teardown(test_accounts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_syntax_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locale, setup, teardown),
        cmocka_unit_test(test_null_args),
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    return cmocka_run_group_tests_name("profile", tests, NULL, NULL);
}
