/* test_tokenizer.c — tiktoken encodings (SPEC.md §9): every oracle vector of
 * testvectors/tokenizer/ token for token, decode(encode(x)) == x, hand-derived
 * BPE cases on small rank files, ill-formed UTF-8, rank-file errors with line
 * numbers, pathological inputs, and sharing one tokenizer between threads.
 *
 * Needs the rank files of scripts/fetch-tokenizers.sh (data/tokenizers/, or
 * $TOKMARK_DATA_DIR); without them the suite fails and says so. */
#define _XOPEN_SOURCE 700 /* realpath, symlink, mkdtemp */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tokmark.h"
#include "tokutil.h"

#define NENC 4
static const char *const enc_names[NENC] = {"cl100k_base", "o200k_base", "p50k_base", "r50k_base"};
static const uint32_t enc_vocab[NENC] = {100277, 200019, 50281, 50257}; /* tiktoken's n_vocab */
static tokmark_tokenizer *g_tok[NENC];
static char g_dir[256];

static int load_all(void **state) {
    (void)state;
    if (tokmark_init() != TOKMARK_OK) return -1;
    for (int i = 0; i < NENC; i++) {
        size_t line = 0;
        int rc = tokmark_tokenizer_load(&g_tok[i], enc_names[i], &line);
        if (rc != TOKMARK_OK) {
            fprintf(stderr,
                    "test_tokenizer: cannot load %s: %s (%s). The rank files are not in the repository:\n"
                    "  run  sh scripts/fetch-tokenizers.sh  (searched %s)\n",
                    enc_names[i], tokmark_error_name(rc), rc == TOKMARK_ERR_IO ? strerror(errno) : "",
                    tokmark_tokenizer_data_dirs());
            return -1;
        }
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/tokmark-tok-XXXXXX");
    if (mkdtemp(g_dir) == NULL) return -1;
    return 0;
}

static int free_all(void **state) {
    (void)state;
    for (int i = 0; i < NENC; i++) tokmark_tokenizer_free(g_tok[i]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] != '\0' && system(cmd) != 0) return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* A small rank file: the 256 single bytes (rank = byte value), then `extra`
 * lines "BASE64 RANK\n" appended as given. */
static void write_small_ranks(const char *path, const char *extra) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *buf = (char *)malloc(256 * 16 + strlen(extra) + 1);
    assert_non_null(buf);
    size_t o = 0;
    for (int b = 0; b < 256; b++) {
        o += (size_t)sprintf(buf + o, "%c%c== %d\n", b64[b >> 2], b64[(b & 3) << 4], b);
    }
    strcpy(buf + o, extra);
    write_file(path, buf, strlen(buf));
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* oracle vectors                                                            */
/* ------------------------------------------------------------------------ */

static void check_vectors(int which) {
    char path[512];
    snprintf(path, sizeof path, "testvectors/tokenizer/%s.jsonl", enc_names[which]);
    FILE *f = fopen(path, "r");
    if (f == NULL) fail_msg("%s: %s", path, strerror(errno));
    tokmark_tokenizer *t = g_tok[which];
    tokmark_tokenizer_encoder *e = NULL;
    assert_int_equal(tokmark_tokenizer_encoder_create(&e, t), TOKMARK_OK);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    size_t n_cases = 0, n_bad = 0, n_hex = 0, n_special_diff = 0;
    while ((ll = getline(&line, &lcap, f)) > 0) {
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)ll, JSON_ALLOW_NUL, &jerr);
        if (o == NULL) fail_msg("%s: %s", path, jerr.text);
        const char *id = json_string_value(json_object_get(o, "id"));
        json_t *jt = json_object_get(o, "text"), *jh = json_object_get(o, "hex");
        json_t *ord = json_object_get(o, "ordinary"), *spc = json_object_get(o, "special");
        assert_non_null(id);
        assert_true(json_is_array(ord) && json_is_array(spc));
        size_t len;
        char *text = vector_text(jt, jh, &len);
        if (jt == NULL) n_hex++;
        unsigned base = jh != NULL ? TOKMARK_ENCODE_REPLACE_INVALID : 0;
        int rc;
        size_t n1, n2;
        int32_t *a = encode_all(e, text, len, base, &n1, &rc);
        if (rc != TOKMARK_OK) fail_msg("%s %s: encode returned %s", enc_names[which], id, tokmark_error_name(rc));
        int32_t *b = encode_all(e, text, len, base | TOKMARK_ENCODE_ALLOW_SPECIAL, &n2, &rc);
        if (rc != TOKMARK_OK) fail_msg("%s %s: encode returned %s", enc_names[which], id, tokmark_error_name(rc));
        int ok = 1;
        if (!ids_equal(a, n1, ord)) {
            print_diff("ordinary", id, a, n1, ord);
            ok = 0;
        }
        if (!ids_equal(b, n2, spc)) {
            print_diff("special", id, b, n2, spc);
            ok = 0;
        }
        if (!ids_equal(a, n1, spc)) n_special_diff++;
        if (jt != NULL) {
            /* round trip: decode(encode(x)) == x, both ways of encoding */
            for (int k = 0; k < 2; k++) {
                size_t dl = 0;
                assert_int_equal(tokmark_tokenizer_decode(t, k ? b : a, k ? n2 : n1, NULL, 0, &dl), TOKMARK_OK);
                char *d = (char *)malloc(dl + 1);
                assert_non_null(d);
                size_t dl2 = 0;
                assert_int_equal(tokmark_tokenizer_decode(t, k ? b : a, k ? n2 : n1, d, dl, &dl2), TOKMARK_OK);
                if (dl != len || dl2 != len || memcmp(d, text, len) != 0) {
                    print_error("  %s: decode(encode(x)) != x\n", id);
                    ok = 0;
                }
                free(d);
            }
        } else {
            /* strict mode rejects the same bytes */
            size_t off = 0;
            assert_int_equal(tokmark_tokenizer_encoder_encode(e, text, len, NULL, 0, &off, 0), TOKMARK_ERR_INVALID);
            assert_true(off < len);
        }
        n_bad += !ok;
        n_cases++;
        free(a);
        free(b);
        free(text);
        json_decref(o);
    }
    free(line);
    fclose(f);
    tokmark_tokenizer_encoder_free(e);
    print_message("%s: %zu vectors (%zu ill-formed UTF-8, %zu where special tokens count), %zu differ\n",
                  enc_names[which], n_cases, n_hex, n_special_diff, n_bad);
    assert_true(n_cases >= 150);
    assert_true(n_hex >= 5);
    assert_true(n_special_diff >= 3); /* the allow-special path is really exercised */
    assert_int_equal(n_bad, 0);
}

static void test_vectors_cl100k(void **state) { (void)state; check_vectors(0); }
static void test_vectors_o200k(void **state) { (void)state; check_vectors(1); }
static void test_vectors_p50k(void **state) { (void)state; check_vectors(2); }
static void test_vectors_r50k(void **state) { (void)state; check_vectors(3); }

/* ------------------------------------------------------------------------ */
/* API behaviour                                                             */
/* ------------------------------------------------------------------------ */

static void test_names_and_sizes(void **state) {
    (void)state;
    for (int i = 0; i < NENC; i++) {
        assert_string_equal(tokmark_tokenizer_name(g_tok[i]), enc_names[i]);
        assert_int_equal(tokmark_tokenizer_vocab_size(g_tok[i]), enc_vocab[i]);
    }
    size_t l;
    const uint8_t *b = tokmark_tokenizer_token_bytes(g_tok[0], 100257, &l);
    assert_non_null(b);
    assert_int_equal(l, 13);
    assert_memory_equal(b, "<|endoftext|>", 13);
    assert_null(tokmark_tokenizer_token_bytes(g_tok[0], 100256, &l)); /* a hole: no token */
    assert_int_equal(l, 0);
    assert_null(tokmark_tokenizer_token_bytes(g_tok[0], -1, &l));
    assert_null(tokmark_tokenizer_token_bytes(g_tok[0], 100277, &l));
}

static void test_buffer_too_small(void **state) {
    (void)state;
    const char *s = "The quick brown fox jumps over the lazy dog, again and again.";
    int32_t full[64], part[5];
    size_t n = 0, m = 0;
    assert_int_equal(tokmark_tokenizer_encode(g_tok[0], s, strlen(s), full, 64, &n, 0), TOKMARK_OK);
    assert_true(n > 5 && n < 64);
    for (size_t i = 0; i < 5; i++) part[i] = -7;
    assert_int_equal(tokmark_tokenizer_encode(g_tok[0], s, strlen(s), part, 5, &m, 0), TOKMARK_OK);
    assert_int_equal(m, n);
    assert_memory_equal(part, full, 5 * sizeof part[0]);
    /* decode into a short buffer: the length it needs, a prefix written */
    char out[10];
    size_t dl = 0;
    assert_int_equal(tokmark_tokenizer_decode(g_tok[0], full, n, out, sizeof out, &dl), TOKMARK_OK);
    assert_int_equal(dl, strlen(s));
    assert_memory_equal(out, s, sizeof out);
    /* bad arguments */
    assert_int_equal(tokmark_tokenizer_encode(g_tok[0], s, strlen(s), NULL, 5, &m, 0), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_tokenizer_encode(g_tok[0], s, strlen(s), full, 64, &m, 0x80), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_tokenizer_encode(g_tok[0], "", 0, NULL, 0, &m, 0), TOKMARK_OK);
    assert_int_equal(m, 0);
}

/* decode of random id sequences against npm tiktoken's decode (bytes; SPEC.md
 * §9.6), from testvectors/tokenizer/tiktoken-decode.jsonl (tools/gen-tokenizer-vectors.js). */
static void test_decode_oracle(void **state) {
    (void)state;
    FILE *f = fopen("testvectors/tokenizer/tiktoken-decode.jsonl", "r");
    if (f == NULL) fail_msg("testvectors/tokenizer/tiktoken-decode.jsonl: %s", strerror(errno));
    char *line = NULL;
    size_t lcap = 0, n_cases[NENC] = {0, 0, 0, 0}, n_bad = 0;
    ssize_t ll;
    while ((ll = getline(&line, &lcap, f)) > 0) {
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)ll, 0, &jerr);
        if (o == NULL) fail_msg("tiktoken-decode.jsonl: %s", jerr.text);
        const char *enc = json_string_value(json_object_get(o, "encoding"));
        const char *id = json_string_value(json_object_get(o, "id"));
        json_t *ids = json_object_get(o, "decode_ids");
        json_t *jh = json_object_get(o, "decoded_hex");
        assert_true(enc != NULL && id != NULL && json_is_array(ids) && json_is_string(jh));
        int k = -1;
        for (int i = 0; i < NENC; i++)
            if (strcmp(enc, enc_names[i]) == 0) k = i;
        assert_true(k >= 0);
        size_t n = json_array_size(ids), wl;
        int32_t v[64];
        assert_true(n <= 64);
        for (size_t i = 0; i < n; i++) v[i] = (int32_t)json_integer_value(json_array_get(ids, i));
        char *want = vector_text(NULL, jh, &wl);
        char out[4096];
        size_t dl = 0;
        assert_int_equal(tokmark_tokenizer_decode(g_tok[k], v, n, out, sizeof out, &dl), TOKMARK_OK);
        if (dl != wl || memcmp(out, want, wl) != 0) {
            print_error("  %s %s: decode differs from npm tiktoken\n", enc, id);
            n_bad++;
        }
        n_cases[k]++;
        free(want);
        json_decref(o);
    }
    free(line);
    fclose(f);
    assert_int_equal(n_bad, 0);
    for (int i = 0; i < NENC; i++) assert_int_equal(n_cases[i], 20);
}

static void test_decode_errors(void **state) {
    (void)state;
    int32_t ids[4] = {9906, 1917, 100256, 0}; /* 100256: no token in cl100k_base */
    size_t at = 99;
    char out[64];
    assert_int_equal(tokmark_tokenizer_decode(g_tok[0], ids, 4, out, sizeof out, &at), TOKMARK_ERR_INVALID);
    assert_int_equal(at, 2);
    ids[2] = -5;
    assert_int_equal(tokmark_tokenizer_decode(g_tok[0], ids, 4, out, sizeof out, &at), TOKMARK_ERR_INVALID);
    assert_int_equal(at, 2);
    ids[2] = 100257; /* special tokens decode to their text */
    assert_int_equal(tokmark_tokenizer_decode(g_tok[0], ids, 3, out, sizeof out, &at), TOKMARK_OK);
    assert_true(at >= 13);
    assert_memory_equal(out + at - 13, "<|endoftext|>", 13);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t len, off;
    } bad[] = {
        {"abc\xff" "def", 7, 3},          /* never a UTF-8 byte */
        {"\xe2\x82", 2, 0},               /* truncated */
        {"ok \xed\xa0\x80", 6, 3},        /* a surrogate */
        {"\xc0\xaf", 2, 0},               /* overlong */
        {"\xf4\x90\x80\x80", 4, 0},       /* beyond U+10FFFF */
        {"caf\xc3\xa9 \x80", 7, 6},       /* a lone continuation byte after valid text */
        {"12345678\xf0\x9f\x98", 11, 8},  /* truncated after the ASCII fast path */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t off = 999;
        assert_int_equal(tokmark_tokenizer_encode(g_tok[0], bad[i].s, bad[i].len, NULL, 0, &off, 0),
                         TOKMARK_ERR_INVALID);
        assert_int_equal(off, bad[i].off);
        /* replaced: the same ids as the text with U+FFFD written out */
        size_t n = 0;
        assert_int_equal(tokmark_tokenizer_encode(g_tok[0], bad[i].s, bad[i].len, NULL, 0, &n,
                                                  TOKMARK_ENCODE_REPLACE_INVALID),
                         TOKMARK_OK);
        assert_true(n > 0);
    }
    /* "a\xffb" replaced equals "a\uFFFDb" encoded */
    int32_t x[8], y[8];
    size_t nx = 0, ny = 0;
    assert_int_equal(tokmark_tokenizer_encode(g_tok[0], "a\xff" "b", 3, x, 8, &nx, TOKMARK_ENCODE_REPLACE_INVALID),
                     TOKMARK_OK);
    assert_int_equal(tokmark_tokenizer_encode(g_tok[0], "a\xef\xbf\xbd" "b", 5, y, 8, &ny, 0), TOKMARK_OK);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, nx * sizeof x[0]);
    /* well-formed edge cases pass */
    size_t n = 0;
    assert_int_equal(tokmark_tokenizer_encode(g_tok[0], "\xf4\x8f\xbf\xbf \xed\x9f\xbf \xc2\x80", 11, NULL, 0, &n, 0),
                     TOKMARK_OK);
}

/* ------------------------------------------------------------------------ */
/* Small rank files: BPE by hand, and errors with line numbers                */
/* ------------------------------------------------------------------------ */

static tokmark_tokenizer *load_small(const char *extra) {
    char path[512];
    snprintf(path, sizeof path, "%s/small.tiktoken", g_dir);
    write_small_ranks(path, extra);
    tokmark_tokenizer *t = NULL;
    size_t line = 0;
    int rc = tokmark_tokenizer_load_tiktoken(&t, path, "r50k_base", &line);
    if (rc != TOKMARK_OK) fail_msg("small rank file: %s at line %zu", tokmark_error_name(rc), line);
    return t;
}

static void expect_ids(tokmark_tokenizer *t, const char *s, const int32_t *want, size_t nwant) {
    size_t n = 0;
    int32_t *got = (int32_t *)malloc((nwant + 8) * sizeof *got);
    assert_non_null(got);
    assert_int_equal(tokmark_tokenizer_encode(t, s, strlen(s), got, nwant + 8, &n, 0), TOKMARK_OK);
    if (n != nwant || memcmp(got, want, n * sizeof *got) != 0) {
        print_error("  \"%.40s\": got %zu tokens, want %zu\n", s, n, nwant);
        fail();
    }
    free(got);
}

static void test_bpe_by_hand(void **state) {
    (void)state;
    /* ab=256 bc=257 abc=258 aa=259 aaaa=260 */
    tokmark_tokenizer *t = load_small("YWI= 256\nYmM= 257\nYWJj 258\nYWE= 259\nYWFhYQ== 260\n");
    assert_int_equal(tokmark_tokenizer_vocab_size(t), 50257); /* the special token of r50k_base */
    { int32_t w[] = {258}; expect_ids(t, "abc", w, 1); }            /* the whole piece is a token */
    { int32_t w[] = {258, 'd'}; expect_ids(t, "abcd", w, 2); }      /* ab first (256 < 257), then abc */
    { int32_t w[] = {'b', 258}; expect_ids(t, "babc", w, 2); }      /* ab (256) before bc (257) */
    { int32_t w[] = {259, 'a'}; expect_ids(t, "aaa", w, 2); }       /* ties: leftmost pair first */
    { int32_t w[] = {260, 260}; expect_ids(t, "aaaaaaaa", w, 2); }  /* all aa first, then aaaa */
    { int32_t w[] = {' ', 258}; expect_ids(t, " abc", w, 2); }      /* " abc" is one piece */
    /* long pieces take the heap path: the same rules */
    char s[512];
    int32_t w[256];
    memset(s, 'a', 101);
    s[101] = '\0';
    for (int i = 0; i < 25; i++) w[i] = 260;
    w[25] = 'a';
    expect_ids(t, s, w, 26);
    for (int i = 0; i < 100; i++) memcpy(s + 2 * i, "ab", 2);
    s[200] = 'c';
    s[201] = '\0';
    for (int i = 0; i < 99; i++) w[i] = 256;
    w[99] = 258;
    expect_ids(t, s, w, 100);
    for (int i = 0; i < 150; i++) s[i] = "bab"[i % 3];
    s[150] = '\0'; /* b a b b a b ...: every "ab" merges, bc never occurs */
    for (int i = 0; i < 50; i++) {
        w[2 * i] = 'b';
        w[2 * i + 1] = 256;
    }
    expect_ids(t, s, w, 100);
    tokmark_tokenizer_free(t);
}

static void expect_format_error(const char *content, size_t want_line) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.tiktoken", g_dir);
    write_file(path, content, strlen(content));
    tokmark_tokenizer *t = (tokmark_tokenizer *)(uintptr_t)1;
    size_t line = 12345;
    int rc = tokmark_tokenizer_load_tiktoken(&t, path, "cl100k_base", &line);
    if (rc != TOKMARK_ERR_FORMAT || line != want_line)
        fail_msg("got %s at line %zu, want TOKMARK_ERR_FORMAT at line %zu", tokmark_error_name(rc), line, want_line);
    assert_null(t);
}

static void test_rank_file_errors(void **state) {
    (void)state;
    expect_format_error("IQ== 0\nIg== 1\nI?== 2\n", 3);       /* bad base64 character */
    expect_format_error("IQ== 0\nIgA 1\n", 2);                /* base64 length not a multiple of 4 */
    expect_format_error("IQ== 0\nIg== 1\nIw== 1\n", 3);       /* duplicate rank */
    expect_format_error("IQ== 0\nIg== 1\nIQ== 2\n", 3);       /* duplicate token */
    expect_format_error("IQ== 0\nIg== x\n", 2);               /* rank not a number */
    expect_format_error("IQ== 0\nIg==\n", 2);                 /* no rank */
    expect_format_error("IQ== 0\n\nIg== 99999999\n", 3);      /* rank far beyond the file (empty line counted) */
    expect_format_error("IQ== 0\nIg== 1\n", 0);               /* lacks single bytes */
    /* missing file */
    char path[512];
    snprintf(path, sizeof path, "%s/none.tiktoken", g_dir);
    tokmark_tokenizer *t = NULL;
    errno = 0;
    assert_int_equal(tokmark_tokenizer_load_tiktoken(&t, path, "cl100k_base", NULL), TOKMARK_ERR_IO);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(tokmark_tokenizer_load(&t, path, NULL), TOKMARK_ERR_IO);
    /* unknown names */
    assert_int_equal(tokmark_tokenizer_load(&t, "gpt5_base", NULL), TOKMARK_ERR_NOT_FOUND);
    assert_int_equal(tokmark_tokenizer_load_tiktoken(&t, path, "nope", NULL), TOKMARK_ERR_NOT_FOUND);
    char buf[16];
    assert_int_equal(tokmark_tokenizer_find("nope", buf, sizeof buf), TOKMARK_ERR_NOT_FOUND);
}

static void test_load_paths(void **state) {
    (void)state;
    char dir[400], path[512];
    snprintf(dir, sizeof dir, "%s/data", g_dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/cl100k_base.tiktoken", dir);
    write_small_ranks(path, "YWI= 256\n");
    /* a path named after an encoding: that encoding's pattern, any ranks */
    tokmark_tokenizer *t = NULL;
    assert_int_equal(tokmark_tokenizer_load(&t, path, NULL), TOKMARK_OK);
    assert_string_equal(tokmark_tokenizer_name(t), "cl100k_base");
    assert_int_equal(tokmark_tokenizer_vocab_size(t), 100277);
    tokmark_tokenizer_free(t);
    /* a path named after nothing, not an official file */
    char other[512];
    snprintf(other, sizeof other, "%s/mine.tiktoken", dir);
    write_small_ranks(other, "");
    t = NULL;
    assert_int_equal(tokmark_tokenizer_load(&t, other, NULL), TOKMARK_ERR_UNSUPPORTED);
    assert_null(t);
    /* a built-in name must find the official file: this one is not */
    const char *old = getenv("TOKMARK_DATA_DIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("TOKMARK_DATA_DIR", dir, 1);
    size_t line = 7;
    assert_int_equal(tokmark_tokenizer_load(&t, "cl100k_base", &line), TOKMARK_ERR_FORMAT);
    assert_int_equal(line, 0);
    char found[600];
    assert_int_equal(tokmark_tokenizer_find("cl100k_base", found, sizeof found), TOKMARK_OK);
    assert_string_equal(found, path);
    if (saved) {
        setenv("TOKMARK_DATA_DIR", saved, 1);
        free(saved);
    } else {
        unsetenv("TOKMARK_DATA_DIR");
    }
    /* the official file under another name is recognised by its SHA-256 */
    assert_int_equal(tokmark_tokenizer_find("r50k_base", found, sizeof found), TOKMARK_OK);
    snprintf(other, sizeof other, "%s/copy.tiktoken", dir);
    char absolute[PATH_MAX];
    assert_non_null(realpath(found, absolute));
    assert_int_equal(symlink(absolute, other), 0);
    assert_int_equal(tokmark_tokenizer_load(&t, other, NULL), TOKMARK_OK);
    assert_string_equal(tokmark_tokenizer_name(t), "r50k_base");
    tokmark_tokenizer_free(t);
}

/* ------------------------------------------------------------------------ */
/* Pathological inputs: they must finish (timings: make bench)               */
/* ------------------------------------------------------------------------ */

static void roundtrip_big(tokmark_tokenizer *t, const char *s, size_t n) {
    tokmark_tokenizer_encoder *e = NULL;
    assert_int_equal(tokmark_tokenizer_encoder_create(&e, t), TOKMARK_OK);
    size_t cnt = 0;
    int rc;
    int32_t *ids = encode_all(e, s, n, 0, &cnt, &rc);
    assert_int_equal(rc, TOKMARK_OK);
    assert_true(cnt > 0 && cnt <= n);
    char *d = (char *)malloc(n);
    assert_non_null(d);
    size_t dl = 0;
    assert_int_equal(tokmark_tokenizer_decode(t, ids, cnt, d, n, &dl), TOKMARK_OK);
    assert_int_equal(dl, n);
    assert_memory_equal(d, s, n);
    free(d);
    free(ids);
    tokmark_tokenizer_encoder_free(e);
}

static void test_pathological(void **state) {
    (void)state;
    const size_t N = 10u << 20;
    char *s = (char *)malloc(N);
    assert_non_null(s);
    memset(s, 'a', N); /* one piece of 10 MB */
    roundtrip_big(g_tok[0], s, N);
    uint64_t x = 88172645463325252ull; /* 10 MB of letters, no spaces: one piece */
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s[i] = (char)('a' + (x % 26));
    }
    roundtrip_big(g_tok[1], s, N);
    const size_t M = 1u << 20; /* 1 MB runs of whitespace and punctuation (10 MB: make bench) */
    memset(s, ' ', M);
    s[M - 1] = 'x';
    roundtrip_big(g_tok[0], s, M);
    memset(s, '!', M);
    roundtrip_big(g_tok[2], s, M);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* One tokenizer shared by threads                                           */
/* ------------------------------------------------------------------------ */

typedef struct job {
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n;
    int rc;
} job;

static void *worker(void *arg) {
    job *j = (job *)arg;
    tokmark_tokenizer_encoder *e = NULL;
    j->rc = tokmark_tokenizer_encoder_create(&e, g_tok[0]);
    for (int rep = 0; rep < 20 && j->rc == TOKMARK_OK; rep++)
        j->rc = tokmark_tokenizer_encoder_encode(e, j->text, j->len, j->ids, 4096, &j->n, 0);
    tokmark_tokenizer_encoder_free(e);
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    char text[8192];
    size_t len = 0;
    while (len + 80 < sizeof text)
        len += (size_t)sprintf(text + len, "Thread %zu: Ünïcödé and 数字 %zu, done.\n", len, len * 7);
    enum { T = 4 };
    pthread_t th[T];
    job jobs[T];
    for (int i = 0; i < T; i++) {
        jobs[i] = (job){text, len, (int32_t *)malloc(4096 * sizeof(int32_t)), 0, -1};
        assert_non_null(jobs[i].ids);
        assert_int_equal(pthread_create(&th[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < T; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    int32_t *ref = (int32_t *)malloc(4096 * sizeof(int32_t));
    assert_non_null(ref);
    size_t n = 0;
    assert_int_equal(tokmark_tokenizer_encode(g_tok[0], text, len, ref, 4096, &n, 0), TOKMARK_OK);
    assert_true(n > 100 && n <= 4096);
    for (int i = 0; i < T; i++) {
        assert_int_equal(jobs[i].rc, TOKMARK_OK);
        assert_int_equal(jobs[i].n, n);
        assert_memory_equal(jobs[i].ids, ref, n * sizeof *ref);
        free(jobs[i].ids);
    }
    free(ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_cl100k),  cmocka_unit_test(test_vectors_o200k),
        cmocka_unit_test(test_vectors_p50k),    cmocka_unit_test(test_vectors_r50k),
        cmocka_unit_test(test_names_and_sizes), cmocka_unit_test(test_buffer_too_small),
        cmocka_unit_test(test_decode_errors),   cmocka_unit_test(test_decode_oracle),   cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_bpe_by_hand),     cmocka_unit_test(test_rank_file_errors),
        cmocka_unit_test(test_load_paths),      cmocka_unit_test(test_pathological),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("tokenizer", tests, load_all, free_all);
}
