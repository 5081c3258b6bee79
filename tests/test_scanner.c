/* test_scanner.c — the hand-written pre-tokenizer scanners of cl100k_base
 * and o200k_base (src/tok/scan_*.c) against the PCRE2 split patterns (SPEC.md §9.3):
 * the Unicode class table for every code point, contractions and neighbours
 * around every code point, the pieces of every oracle text, the oracle ids
 * encoded through the scanner, and a seeded random differential test.
 *
 * Needs data/tokenizers/{cl100k,o200k}_base.tiktoken (scripts/fetch-tokenizers.sh). */
#define _XOPEN_SOURCE 700
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tokmark.h"
#include "tok/tok.h"
#include "tokutil.h"

#define NSC 2 /* the encodings with a scanner */
static const char *const sc_name[NSC] = {"cl100k_base", "o200k_base"};
static const int sc_split[NSC] = {TM_SPLIT_CL100K, TM_SPLIT_O200K};
static tokmark_tokenizer *g_tok[NSC];
static tokmark_tokenizer_encoder *g_enc[NSC];

static int setup(void **state) {
    (void)state;
    if (tokmark_init() != TOKMARK_OK) return -1;
    for (int w = 0; w < NSC; w++) {
        size_t line = 0;
        int rc = tokmark_tokenizer_load(&g_tok[w], sc_name[w], &line);
        if (rc != TOKMARK_OK) {
            fprintf(stderr, "test_scanner: cannot load %s: %s (run sh scripts/fetch-tokenizers.sh)\n", sc_name[w],
                    tokmark_error_name(rc));
            return -1;
        }
        if (tokmark_tokenizer_encoder_create(&g_enc[w], g_tok[w]) != TOKMARK_OK) return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int w = 0; w < NSC; w++) {
        tokmark_tokenizer_encoder_free(g_enc[w]);
        tokmark_tokenizer_free(g_tok[w]);
    }
    return 0;
}

static size_t put_utf8(uint8_t *o, uint32_t c) {
    if (c < 0x80) {
        o[0] = (uint8_t)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (uint8_t)(0xC0 | c >> 6);
        o[1] = (uint8_t)(0x80 | (c & 63));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | c >> 12);
        o[1] = (uint8_t)(0x80 | (c >> 6 & 63));
        o[2] = (uint8_t)(0x80 | (c & 63));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | c >> 18);
    o[1] = (uint8_t)(0x80 | (c >> 12 & 63));
    o[2] = (uint8_t)(0x80 | (c >> 6 & 63));
    o[3] = (uint8_t)(0x80 | (c & 63));
    return 4;
}

/* Pieces of s[0..n) by encoding w's PCRE2 pattern and by its scanner must be identical; returns 1
 * when they are, else prints the first difference. */
static size_t *g_a, *g_b;
static size_t g_cap;
static int same_pieces(int w, const uint8_t *s, size_t n, const char *what) {
    if (g_cap < n + 1) {
        g_cap = 2 * (n + 1);
        g_a = (size_t *)realloc(g_a, g_cap * sizeof *g_a);
        g_b = (size_t *)realloc(g_b, g_cap * sizeof *g_b);
        assert_true(g_a != NULL && g_b != NULL);
    }
    size_t na = 0, nb = 0;
    assert_int_equal(tm_tok_split(g_enc[w], TM_SPLIT_PCRE2, s, n, g_a, g_cap, &na), TOKMARK_OK);
    assert_int_equal(tm_tok_split(g_enc[w], sc_split[w], s, n, g_b, g_cap, &nb), TOKMARK_OK);
    assert_true(na <= g_cap && nb <= g_cap);
    size_t i = 0;
    while (i < na && i < nb && g_a[i] == g_b[i]) i++;
    if (i == na && i == nb) return 1;
    print_error("  %s %s: %zu pieces by PCRE2, %zu by the scanner; piece %zu ends at %zu vs %zu (text:", sc_name[w],
                what, na, nb,
                i, i < na ? g_a[i] : 0, i < nb ? g_b[i] : 0);
    for (size_t k = 0; k < n && k < 80; k++) print_error(" %02x", s[k]);
    print_error(")\n");
    return 0;
}

static pcre2_code *compile(const char *pat) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED,
                                   &err, &off, NULL);
    assert_non_null(re);
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

/* Every code point's TM_UC_* bits equal what PCRE2 says of it. */
static void test_table_every_code_point(void **state) {
    (void)state;
#define WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
    static const struct {
        const char *pat;
        unsigned bit;
    } cls[] = {{"\\p{L}", TM_UC_L},
               {"\\p{N}", TM_UC_N},
               {"[" WS "]", TM_UC_WS},
               {"[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]", TM_UC_UP},
               {"[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]", TM_UC_LO},
               {"\\p{M}", TM_UC_M}};
#undef WS
    const size_t nc = sizeof cls / sizeof cls[0];
    pcre2_code *re[6];
    for (size_t k = 0; k < nc; k++) re[k] = compile(cls[k].pat);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    assert_non_null(md);
    size_t bad = 0, checked = 0;
    for (uint32_t c = 0; c <= 0x10FFFF; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        uint8_t u[4];
        size_t n = put_utf8(u, c);
        unsigned want = 0;
        for (size_t k = 0; k < nc; k++)
            if (pcre2_match(re[k], u, n, 0, 0, md, NULL) >= 0) want |= cls[k].bit;
        unsigned got = tm_uc_class(c);
        if (got != want && bad++ < 10) print_error("  U+%04X: table %#x, PCRE2 %#x\n", (unsigned)c, got, want);
        checked++;
    }
    for (size_t k = 0; k < nc; k++) pcre2_code_free(re[k]);
    pcre2_match_data_free(md);
    print_message("%zu code points, %zu differ\n", checked, bad);
    assert_int_equal(bad, 0);
}

/* Every code point in the places where the pattern looks at one character:
 * after an apostrophe (and after 'r 'l 'v), before/after letters, digits,
 * spaces, punctuation and line breaks. */
static void test_every_code_point_in_context(void **state) {
    (void)state;
    static const char *const pre[] = {"'", "'r", "'l", "'v", " ", "a", "A", "1", "12", "!", "\r\n", "\t", " \n",
                                      "\xcc\x81" /* U+0301 */, "/"};
    static const char *const post[] = {"e", "", " x", "\n", "1", "a", "  b", ".", "'s", "A", "/", "\xcc\x81"};
    size_t bad = 0, cases = 0;
    uint8_t buf[64];
    for (uint32_t c = 0; c <= 0x10FFFF; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        /* below U+3100 in every context; above, in three of each, rotating */
        const size_t NP = sizeof pre / sizeof pre[0], NQ = sizeof post / sizeof post[0];
        int all = c < 0x3100;
        for (size_t i = 0; i < (all ? NP : 3); i++) {
            for (size_t q = 0; q < (all ? NQ : 3); q++) {
                size_t pi = all ? i : (c + i) % NP, qi = all ? q : (c + 3 * q) % NQ;
                size_t lp = strlen(pre[pi]), lq = strlen(post[qi]), n = lp;
                memcpy(buf, pre[pi], lp);
                n += put_utf8(buf + n, c);
                memcpy(buf + n, post[qi], lq);
                n += lq;
                for (int w = 0; w < NSC; w++) {
                    if (!same_pieces(w, buf, n, "context") && bad++ > 10) fail_msg("too many differences");
                    cases++;
                }
            }
        }
    }
    print_message("%zu texts, %zu differ\n", cases, bad);
    assert_int_equal(bad, 0);
}

/* The oracle vectors: the pieces of every well-formed text (all four files'
 * texts, split by both scanners), and the ids of every cl100k_base and
 * o200k_base vector encoded through PCRE2 and through the scanner against
 * npm tiktoken's. */
static void test_oracle_vectors(void **state) {
    (void)state;
    static const char *const files[] = {"cl100k_base", "o200k_base", "p50k_base", "r50k_base"};
    size_t texts = 0, bad = 0, id_cases = 0;
    for (int w = 0; w < NSC; w++) assert_int_equal(g_tok[w]->split, sc_split[w]); /* they encode with the scanners */
    for (size_t fi = 0; fi < 4; fi++) {
        char path[256];
        snprintf(path, sizeof path, "testvectors/tokenizer/%s.jsonl", files[fi]);
        FILE *f = fopen(path, "r");
        if (f == NULL) fail_msg("%s: %s", path, strerror(errno));
        char *line = NULL;
        size_t lcap = 0;
        ssize_t ll;
        while ((ll = getline(&line, &lcap, f)) > 0) {
            json_error_t jerr;
            json_t *o = json_loadb(line, (size_t)ll, JSON_ALLOW_NUL, &jerr);
            if (o == NULL) fail_msg("%s: %s", path, jerr.text);
            const char *id = json_string_value(json_object_get(o, "id"));
            json_t *jt = json_object_get(o, "text"), *jh = json_object_get(o, "hex");
            char *text;
            size_t len;
            if (jt != NULL) {
                len = json_string_length(jt);
                text = (char *)malloc(len + 1);
                assert_non_null(text);
                memcpy(text, json_string_value(jt), len + 1);
                for (int w = 0; w < NSC; w++) {
                    if (!same_pieces(w, (const uint8_t *)text, len, id)) bad++;
                    texts++;
                }
            } else {
                const char *h = json_string_value(jh);
                assert_non_null(h);
                len = strlen(h) / 2;
                text = (char *)malloc(len + 1);
                assert_non_null(text);
                for (size_t i = 0; i < len; i++) text[i] = (char)(hexval(h[2 * i]) << 4 | hexval(h[2 * i + 1]));
            }
            if (fi < NSC) { /* ids of cl100k_base and o200k_base through both splitters */
                const int w = (int)fi;
                tokmark_tokenizer *t = g_tok[w];
                const int keep = t->split;
                unsigned base = jh != NULL ? TOKMARK_ENCODE_REPLACE_INVALID : 0;
                for (int m = 0; m < 2; m++) {
                    t->split = m ? sc_split[w] : TM_SPLIT_PCRE2;
                    for (int k = 0; k < 2; k++) {
                        int rc;
                        size_t n;
                        unsigned fl = base | (k ? TOKMARK_ENCODE_ALLOW_SPECIAL : 0);
                        int32_t *ids = encode_all(g_enc[w], text, len, fl, &n, &rc);
                        assert_int_equal(rc, TOKMARK_OK);
                        json_t *want = json_object_get(o, k ? "special" : "ordinary");
                        if (!ids_equal(ids, n, want)) {
                            print_diff(k ? (m ? "special (scanner)" : "special (PCRE2)")
                                         : (m ? "ordinary (scanner)" : "ordinary (PCRE2)"),
                                       id, ids, n, want);
                            bad++;
                        }
                        free(ids);
                        id_cases++;
                    }
                }
                t->split = keep;
            }
            free(text);
            json_decref(o);
        }
        free(line);
        fclose(f);
    }
    print_message("%zu oracle texts split, %zu cl100k_base/o200k_base encodings (PCRE2 and scanner), %zu differ\n", texts,
                  id_cases, bad);
    assert_true(texts >= NSC * 4 * 140);
    assert_true(id_cases >= NSC * 4 * 150);
    assert_int_equal(bad, 0);
}

/* Seeded random texts over the characters the pattern cares about. */
static uint64_t g_x = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) {
    g_x ^= g_x << 13;
    g_x ^= g_x >> 7;
    g_x ^= g_x << 17;
    return g_x;
}

static void test_random_differential(void **state) {
    (void)state;
    static const uint32_t pool[] = {
        /* ASCII that matters */
        ' ', ' ', ' ', '\n', '\r', '\t', '\v', '\f', '\'', '\'', 's', 'S', 't', 'T', 'r', 'R', 'e', 'E', 'v', 'V',
        'm', 'M', 'l', 'L', 'd', 'D', 'a', 'z', 'Q', '0', '5', '9', '.', ',', '!', '?', '-', '/', '<', '|', '"',
        '_', '(', '/', '/', 0x7F, 0x00,
        /* white space kinds and look-alikes */
        0x85, 0xA0, 0x1680, 0x2000, 0x2005, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0x180E, 0x200B, 0xFEFF,
        /* case-folding traps */
        0x17F, 0x212A, 0x130, 0x131, 0xDF, 0x1E9E,
        /* letters of many scripts */
        0xE9, 0xC9, 0x3B1, 0x391, 0x430, 0x410, 0x5D0, 0x627, 0x915, 0xE01, 0x10D0, 0x4E2D, 0x6587, 0x3042,
        0x30A2, 0xAC00, 0x1F1, 0x1F2, 0x2B0, 0x1D400, 0x20000,
        /* marks */
        0x301, 0x93F, 0x94D, 0x64B, 0x20DD, 0xFE0F,
        /* numbers: Nd, Nl, No */
        0x660, 0x966, 0xFF10, 0xB2, 0xBD, 0x2160, 0x3007, 0x1D7CE, 0x2460,
        /* symbols, emoji, ZWJ, skin tones, private use, the last code point */
        0x20AC, 0x2014, 0x1F600, 0x1F468, 0x200D, 0x1F3FB, 0x2764, 0xE000, 0x10FFFF, 0xFFFD};
    const size_t np = sizeof pool / sizeof pool[0];
    uint8_t buf[2048];
    size_t bad = 0;
    const size_t rounds = 200000;
    for (size_t r = 0; r < rounds; r++) {
        size_t len = 1 + rnd() % 48, n = 0;
        for (size_t i = 0; i < len; i++) {
            uint64_t x = rnd();
            uint32_t c;
            if (x % 16 == 0) { /* any scalar value */
                c = (uint32_t)(x >> 8) % 0x110000;
                if (c >= 0xD800 && c <= 0xDFFF) c = 'x';
            } else
                c = pool[(x >> 8) % np];
            n += put_utf8(buf + n, c);
            if (x % 13 == 0 && i + 1 < len) { /* runs */
                size_t k = 1 + (x >> 40) % 5;
                for (size_t q = 0; q < k && n + 4 <= sizeof buf; q++) n += put_utf8(buf + n, c);
            }
        }
        for (int w = 0; w < NSC; w++)
            if (!same_pieces(w, buf, n, "random") && bad++ > 10) fail_msg("too many differences");
    }
    print_message("%zu random texts (each split for both encodings), %zu differ\n", rounds, bad);
    assert_int_equal(bad, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_every_code_point),
        cmocka_unit_test(test_every_code_point_in_context),
        cmocka_unit_test(test_oracle_vectors),
        cmocka_unit_test(test_random_differential),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    free(g_a);
    free(g_b);
    return rc;
}
