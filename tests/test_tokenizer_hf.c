/* test_tokenizer_hf.c — Hugging Face tokenizer.json, byte-level BPE (SPEC.md
 * §9.8) and SentencePiece-style BPE (§9.9): every oracle vector of testvectors/tokenizer/hf-<name>.jsonl token for
 * token (npm @anush008/tokenizers), decode(encode(x)) == x, small hand-written
 * tokenizer.json files (merge ranks by pair, ignore_merges, add_prefix_space,
 * added tokens, merges as pairs; byte fallback, unk_token and fuse_unk,
 * normalizer and Metaspace steps), and the components that are rejected.
 *
 * Needs data/tokenizers/{gpt2,llama3,mistral}.tokenizer.json (sh scripts/fetch-tokenizers.sh,
 * or $TOKMARK_DATA_DIR); without them the suite fails and says so. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>

#include "tokmark.h"
#include "tokutil.h"

#define NMOD 5
/* gpt2, llama3: byte-level BPE (§9.8).  mistral: SentencePiece-style (§9.9), Mistral 7B;
 * the two mistral-metaspace-* are that file with its normalizer replaced by a
 * Metaspace pre-tokenizer, made here as tools/gen-tokenizer-vectors-hf.js makes them. */
static const char *const mod_names[NMOD] = {"gpt2", "llama3", "mistral", "mistral-metaspace-first",
                                            "mistral-metaspace-split"};
static const uint32_t mod_vocab[NMOD] = {50257, 128256, 32000, 32000, 32000};
static const char *const mod_base[NMOD] = {NULL, NULL, NULL, "mistral", "mistral"};
static const char *const mod_pretok[NMOD] = {
    NULL, NULL, NULL,
    "{\"type\":\"Metaspace\",\"replacement\":\"\u2581\",\"prepend_scheme\":\"first\",\"split\":false}",
    "{\"type\":\"Metaspace\",\"replacement\":\"\u2581\",\"prepend_scheme\":\"always\",\"split\":true}"};
static tokmark_tokenizer *g_tok[NMOD];
static char g_dir[256];

/* Write the variant `which` of its base file to g_dir; its path in out. */
static int make_variant(int which, const char *dir, char *out, size_t size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.tokenizer.json", dir, mod_base[which]);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL) return -1;
    json_t *pt = json_loads(mod_pretok[which], 0, &jerr);
    int rc = pt != NULL && json_object_set_new(root, "normalizer", json_null()) == 0 &&
                     json_object_set_new(root, "pre_tokenizer", pt) == 0
                 ? 0
                 : -1;
    snprintf(out, size, "%s/%s.tokenizer.json", g_dir, mod_names[which]);
    if (rc == 0) rc = json_dump_file(root, out, JSON_COMPACT);
    json_decref(root);
    return rc;
}

static int load_all(void **state) {
    (void)state;
    if (tokmark_init() != TOKMARK_OK) return -1;
    const char *dir = getenv("TOKMARK_DATA_DIR");
    if (dir == NULL || dir[0] == '\0') dir = "data/tokenizers";
    snprintf(g_dir, sizeof g_dir, "/tmp/tokmark-hf-XXXXXX");
    if (mkdtemp(g_dir) == NULL) return -1;
    for (int i = 0; i < NMOD; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.tokenizer.json", dir, mod_names[i]);
        if (mod_base[i] != NULL && make_variant(i, dir, path, sizeof path) != 0) {
            fprintf(stderr, "test_tokenizer_hf: cannot make %s from %s/%s.tokenizer.json (run  sh "
                            "scripts/fetch-tokenizers.sh)\n", mod_names[i], dir, mod_base[i]);
            return -1;
        }
        size_t line = 0;
        int rc = tokmark_tokenizer_load(&g_tok[i], path, &line);
        if (rc != TOKMARK_OK) {
            fprintf(stderr,
                    "test_tokenizer_hf: cannot load %s: %s (%s). The tokenizer.json files are not in the\n"
                    "  repository: run  sh scripts/fetch-tokenizers.sh\n",
                    path, tokmark_error_name(rc), rc == TOKMARK_ERR_IO ? strerror(errno) : "");
            return -1;
        }
    }
    return 0;
}

static int free_all(void **state) {
    (void)state;
    for (int i = 0; i < NMOD; i++) tokmark_tokenizer_free(g_tok[i]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] != '\0' && system(cmd) != 0) return -1;
    return 0;
}

static void check_vectors(int which) {
    char path[512];
    snprintf(path, sizeof path, "testvectors/tokenizer/hf-%s.jsonl", mod_names[which]);
    FILE *f = fopen(path, "r");
    if (f == NULL) fail_msg("%s: %s", path, strerror(errno));
    tokmark_tokenizer *t = g_tok[which];
    tokmark_tokenizer_encoder *e = NULL;
    assert_int_equal(tokmark_tokenizer_encoder_create(&e, t), TOKMARK_OK);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    size_t n_cases = 0, n_bad = 0, n_special_diff = 0, n_roundtrip = 0;
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
        unsigned base = jh != NULL ? TOKMARK_ENCODE_REPLACE_INVALID : 0;
        int rc;
        size_t n1, n2;
        int32_t *a = encode_all(e, text, len, base, &n1, &rc);
        if (rc != TOKMARK_OK) fail_msg("%s %s: encode returned %s", mod_names[which], id, tokmark_error_name(rc));
        int32_t *b = encode_all(e, text, len, base | TOKMARK_ENCODE_ALLOW_SPECIAL, &n2, &rc);
        if (rc != TOKMARK_OK) fail_msg("%s %s: encode returned %s", mod_names[which], id, tokmark_error_name(rc));
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
        /* decode(encode(x)) == x: byte-level always; SentencePiece-style (§9.9)
         * only without added tokens, without U+2581 in the text (it decodes to a
         * space) and, with Metaspace, without a leading space (Strip drops it) */
        int sp = which >= 2;
        int lossless = jt != NULL && (!sp || (strstr(text, "\xE2\x96\x81") == NULL && (which == 2 || text[0] != ' ')));
        if (lossless) {
            for (int k = 0; k < (sp ? 1 : 2); k++) {
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
            n_roundtrip++;
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
    if (n_bad != 0) fail_msg("%s: %zu of %zu vectors differ from the oracle", mod_names[which], n_bad, n_cases);
    assert_true(n_cases >= 150);
    assert_true(n_roundtrip >= 100);
    assert_true(n_special_diff >= 3); /* the corpus does exercise special tokens */
}

static void test_vectors_gpt2(void **state) {
    (void)state;
    check_vectors(0);
}
static void test_vectors_llama3(void **state) {
    (void)state;
    check_vectors(1);
}
static void test_vectors_mistral(void **state) {
    (void)state;
    check_vectors(2);
}
static void test_vectors_mistral_metaspace_first(void **state) {
    (void)state;
    check_vectors(3);
}
static void test_vectors_mistral_metaspace_split(void **state) {
    (void)state;
    check_vectors(4);
}

static void test_names_and_sizes(void **state) {
    (void)state;
    for (int i = 0; i < NMOD; i++) {
        assert_string_equal(tokmark_tokenizer_name(g_tok[i]), mod_names[i]);
        assert_int_equal(tokmark_tokenizer_vocab_size(g_tok[i]), mod_vocab[i]);
    }
    size_t l = 0;
    const uint8_t *b = tokmark_tokenizer_token_bytes(g_tok[0], 220, &l); /* "Ġ": a space */
    assert_non_null(b);
    assert_int_equal(l, 1);
    assert_int_equal(b[0], ' ');
    b = tokmark_tokenizer_token_bytes(g_tok[1], 128009, &l); /* an added token */
    assert_non_null(b);
    assert_int_equal(l, strlen("<|eot_id|>"));
    assert_memory_equal(b, "<|eot_id|>", l);
    assert_null(tokmark_tokenizer_token_bytes(g_tok[0], 50257, &l));
    assert_int_equal(l, 0);
}

/* ---- small hand-written files ---- */

static char *write_json(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

/* The 256 byte-level characters as vocab entries "c": id, ids = byte value,
 * then `extra` entries (", \"x\": 300" ...).  Returns a malloc'ed JSON text. */
static char *tiny_json(const char *pretok, const char *extra_vocab, const char *merges, const char *model_extra,
                       const char *added) {
    size_t cap = 65536;
    char *s = (char *)malloc(cap);
    assert_non_null(s);
    size_t o = 0;
    o += (size_t)snprintf(s + o, cap - o, "{\"version\":\"1.0\",\"normalizer\":null,\"pre_tokenizer\":%s,"
                                          "\"decoder\":{\"type\":\"ByteLevel\"},\"added_tokens\":[%s],"
                                          "\"model\":{\"type\":\"BPE\"%s,\"vocab\":{",
                          pretok, added, model_extra);
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        unsigned cp = direct ? (unsigned)b : 256u + (unsigned)n++;
        char u[8];
        if (cp == '"' || cp == '\\') snprintf(u, sizeof u, "\\%c", (char)cp);
        else if (cp < 0x80) snprintf(u, sizeof u, "%c", (char)cp);
        else snprintf(u, sizeof u, "%c%c", (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)));
        o += (size_t)snprintf(s + o, cap - o, "%s\"%s\":%d", b ? "," : "", u, b);
    }
    o += (size_t)snprintf(s + o, cap - o, "%s},\"merges\":[%s]}}", extra_vocab, merges);
    return s;
}

static void expect_ids(tokmark_tokenizer *t, const char *text, unsigned flags, const int32_t *want, size_t n) {
    int32_t ids[64];
    size_t got = 0;
    assert_int_equal(tokmark_tokenizer_encode(t, text, strlen(text), ids, 64, &got, flags), TOKMARK_OK);
    if (got != n || memcmp(ids, want, n * sizeof *ids) != 0) {
        for (size_t i = 0; i < got && i < 64; i++) print_error("%d ", ids[i]);
        fail_msg("\"%s\": %zu ids, want %zu", text, got, n);
    }
}

static void test_merge_ranks(void **state) {
    (void)state;
    /* merges by pair rank, not by the rank of the merged token:
     * "ab" (300) ranks first, then "bc" (301), then "ab c" -> "abc" (302);
     * "a bc" is not a merge, so "abc" can only come from "ab"+"c". */
    const char *pt = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}";
    char *js = tiny_json(pt, ",\"ab\":300,\"bc\":301,\"abc\":302,\"cd\":303",
                         "\"a b\",\"b c\",[\"ab\",\"c\"],\"c d\"", "", "");
    tokmark_tokenizer *t = NULL;
    size_t line = 0;
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("m.json", js), &line), TOKMARK_OK);
    expect_ids(t, "abc", 0, (const int32_t[]){302}, 1);
    expect_ids(t, "bcd", 0, (const int32_t[]){301, 'd'}, 2);  /* b c before c d */
    expect_ids(t, "abcd", 0, (const int32_t[]){302, 'd'}, 2); /* ab, then ab+c; cd never ranks first */
    expect_ids(t, "xbcd", 0, (const int32_t[]){'x', 301, 'd'}, 3);
    tokmark_tokenizer_free(t);
    free(js);

    /* ignore_merges: a piece that is a vocab token is taken whole */
    js = tiny_json(pt, ",\"ab\":300,\"bc\":301,\"abc\":302", "\"b c\"", ",\"ignore_merges\":true", "");
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("im.json", js), &line), TOKMARK_OK);
    expect_ids(t, "abc", 0, (const int32_t[]){302}, 1);
    expect_ids(t, "abcc", 0, (const int32_t[]){'a', 301, 'c'}, 3);
    tokmark_tokenizer_free(t);
    free(js);
    js = tiny_json(pt, ",\"ab\":300,\"bc\":301,\"abc\":302", "\"b c\"", "", "");
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("nim.json", js), &line), TOKMARK_OK);
    expect_ids(t, "abc", 0, (const int32_t[]){'a', 301}, 2);
    tokmark_tokenizer_free(t);
    free(js);
}

static void test_prefix_space_and_added(void **state) {
    (void)state;
    /* add_prefix_space: " " (byte 32 is character U+0120) is put before a piece
     * that does not start with one; added tokens split the text first.  The
     * added tokens' "id" fields (400, 401) are not what HF uses: it numbers
     * them after the 257 vocab entries, and so does tokmark. */
    const char *pt = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"String\":\"|\"},"
                     "\"behavior\":\"Isolated\",\"invert\":false},"
                     "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":false}]}";
    const char *added = "{\"id\":400,\"content\":\"<s>\",\"special\":true},"
                        "{\"id\":401,\"content\":\"<s>x\",\"special\":false,\"normalized\":false}";
    char *js = tiny_json(pt, ",\"\xC4\xA0" "a\":300", "\"\xC4\xA0 a\"", "", added);
    tokmark_tokenizer *t = NULL;
    size_t line = 0;
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("p.json", js), &line), TOKMARK_OK);
    assert_int_equal(tokmark_tokenizer_vocab_size(t), 301); /* largest id + 1 */
    expect_ids(t, "a", 0, (const int32_t[]){300}, 1);
    expect_ids(t, " a", 0, (const int32_t[]){300}, 1);
    expect_ids(t, "a|a", 0, (const int32_t[]){300, ' ', '|', 300}, 4);
    /* "<s>x" (not special) is matched whatever the flags, longest first */
    expect_ids(t, "<s>x", 0, (const int32_t[]){258}, 1);
    expect_ids(t, "<s>x", TOKMARK_ENCODE_ALLOW_SPECIAL, (const int32_t[]){258}, 1);
    /* "<s>" (special) only with ALLOW_SPECIAL */
    expect_ids(t, "<s>a", TOKMARK_ENCODE_ALLOW_SPECIAL, (const int32_t[]){257, 300}, 2);
    expect_ids(t, "<s>", 0, (const int32_t[]){' ', '<', 's', '>'}, 4);
    char out[16];
    size_t dl = 0;
    assert_int_equal(tokmark_tokenizer_decode(t, (const int32_t[]){257, 300, 258}, 3, out, sizeof out, &dl),
                     TOKMARK_OK);
    assert_int_equal(dl, 9);
    assert_memory_equal(out, "<s> a<s>x", 9);
    tokmark_tokenizer_free(t);
    free(js);
}

static void test_rejected(void **state) {
    (void)state;
    const char *bl = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false}";
    struct {
        const char *pretok, *model_extra;
        int want;
    } cases[] = {
        {"{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\"}", "", TOKMARK_ERR_UNSUPPORTED},
        {"null", "", TOKMARK_ERR_UNSUPPORTED},
        {"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\"},{\"type\":\"Split\",\"pattern\":"
         "{\"String\":\"x\"},\"behavior\":\"Isolated\"}]}",
         "", TOKMARK_ERR_UNSUPPORTED},
        {"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"String\":\"x\"},"
         "\"behavior\":\"Removed\"},{\"type\":\"ByteLevel\"}]}",
         "", TOKMARK_ERR_UNSUPPORTED},
        {bl, ",\"byte_fallback\":true", TOKMARK_ERR_UNSUPPORTED},
        {bl, ",\"continuing_subword_prefix\":\"##\"", TOKMARK_ERR_UNSUPPORTED},
        {bl, ",\"dropout\":0.1", TOKMARK_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *js = tiny_json(cases[i].pretok, "", "", cases[i].model_extra, "");
        tokmark_tokenizer *t = NULL;
        size_t line = 0;
        int rc = tokmark_tokenizer_load(&t, write_json("r.json", js), &line);
        if (rc != cases[i].want) fail_msg("case %zu: %s", i, tokmark_error_name(rc));
        assert_null(t);
        free(js);
    }
    /* a normalizer, a WordPiece model, a merge whose result is not in the vocab, bad JSON */
    tokmark_tokenizer *t = NULL;
    size_t line = 0;
    char *js = tiny_json(bl, "", "", "", "");
    char *p = strstr(js, "\"normalizer\":null");
    assert_non_null(p);
    size_t jl = strlen(js);
    char *js2 = (char *)malloc(jl + 64);
    assert_non_null(js2);
    snprintf(js2, jl + 64, "%.*s\"normalizer\":{\"type\":\"NFKC\"}%s", (int)(p - js), js,
             p + strlen("\"normalizer\":null"));
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("n.json", js2), &line), TOKMARK_ERR_UNSUPPORTED);
    free(js2);
    free(js);
    js = tiny_json(bl, "", "\"a b\"", "", "");
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("mv.json", js), &line), TOKMARK_ERR_FORMAT);
    free(js);
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("bad.json", "{\n\"model\": [1,\n"), &line),
                     TOKMARK_ERR_FORMAT);
    assert_int_equal(line, 3);
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("wp.json", "{\"model\":{\"type\":\"WordPiece\"},"
                                                                     "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}"),
                                            &line),
                     TOKMARK_ERR_UNSUPPORTED);
    assert_null(t);
}

/* A small SentencePiece-style file: vocab <unk> <0x41>.. and the given
 * entries, merges, model options, normalizer / pre-tokenizer / decoder. */
static char *sp_json(const char *norm, const char *pretok, const char *decoder, const char *model_extra,
                     const char *vocab, const char *merges) {
    size_t cap = 8192;
    char *s = (char *)malloc(cap);
    assert_non_null(s);
    snprintf(s, cap,
             "{\"version\":\"1.0\",\"normalizer\":%s,\"pre_tokenizer\":%s,\"decoder\":%s,\"added_tokens\":[],"
             "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\"%s,\"vocab\":{\"<unk>\":0,\"<0x41>\":1,"
             "\"<0xC3>\":2,\"<0xA9>\":3%s},\"merges\":[%s]}}",
             norm, pretok, decoder, model_extra, vocab, merges);
    return s;
}

/* The ids and the decoded text below are what npm @anush008/tokenizers gives for the same files. */
static void test_sentencepiece_small(void **state) {
    (void)state;
    const char *norm = "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
                       "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]}";
    const char *dec = "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"
                      "\"\xE2\x96\x81\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
                      "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}";
    const char *vocab = ",\"\xE2\x96\x81\":4,\"a\":5,\"b\":6,\"\xE2\x96\x81" "a\":7,\"ab\":8,\"\xE2\x96\x81" "ab\":9";
    const char *merges = "\"\xE2\x96\x81 a\",\"a b\",\"\xE2\x96\x81" "a b\"";
    size_t line = 0;
    tokmark_tokenizer *t = NULL;
    /* byte fallback: A and é have byte tokens; z has none and becomes <unk>, fused */
    char *js = sp_json(norm, "null", dec, ",\"byte_fallback\":true,\"fuse_unk\":true", vocab, merges);
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("sp1.json", js), &line), TOKMARK_OK);
    free(js);
    expect_ids(t, "ab b", 0, (const int32_t[]){9, 4, 6}, 3);
    expect_ids(t, "A\xC3\xA9", 0, (const int32_t[]){4, 1, 2, 3}, 4);
    expect_ids(t, "zzab", 0, (const int32_t[]){4, 0, 8}, 3);
    expect_ids(t, "zA", 0, (const int32_t[]){4, 1, 0}, 3); /* a pending <unk> goes after byte tokens (as HF) */
    char out[32];
    size_t dl = 0;
    assert_int_equal(tokmark_tokenizer_decode(t, (const int32_t[]){9, 4, 6, 1, 2, 3}, 6, out, sizeof out, &dl),
                     TOKMARK_OK);
    assert_int_equal(dl, 7);
    assert_memory_equal(out, "ab bA\xC3\xA9", 7); /* the leading space stripped, bytes joined */
    tokmark_tokenizer_free(t);
    /* no byte fallback, no fusing: one <unk> per unknown character */
    js = sp_json(norm, "null", dec, ",\"byte_fallback\":false", vocab, merges);
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("sp2.json", js), &line), TOKMARK_OK);
    free(js);
    expect_ids(t, "zA", 0, (const int32_t[]){4, 0, 0}, 3);
    tokmark_tokenizer_free(t);
    /* Metaspace, prepend_scheme never, split: no prefix, pieces start at the metaspace */
    js = sp_json("null",
                 "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"never\","
                 "\"split\":true}",
                 "null", "", vocab, merges);
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("sp3.json", js), &line), TOKMARK_OK);
    free(js);
    expect_ids(t, "ab ab", 0, (const int32_t[]){8, 9}, 2);
    tokmark_tokenizer_free(t);
    /* rejected: a Regex Replace, NFKC (not built in), a decoder outside the subset, Split */
    const char *bad[][3] = {
        {"{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\"\xE2\x96\x81\"}", "null", dec},
        {"{\"type\":\"NFKC\"}", "null", dec},
        {norm, "null", "{\"type\":\"ByteLevel\"}"},
        {norm, "{\"type\":\"Split\",\"pattern\":{\"String\":\"x\"},\"behavior\":\"Isolated\"}", dec},
        {"null", "{\"type\":\"Metaspace\",\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"sometimes\"}", dec},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        js = sp_json(bad[i][0], bad[i][1], bad[i][2], "", vocab, merges);
        t = NULL;
        int rc = tokmark_tokenizer_load(&t, write_json("spbad.json", js), &line);
        if (rc != TOKMARK_ERR_UNSUPPORTED) fail_msg("bad case %zu: %s", i, tokmark_error_name(rc));
        assert_null(t);
        free(js);
    }
    /* an unk_token missing from the vocab */
    js = sp_json(norm, "null", dec, ",\"unk_token\":\"<nope>\"", vocab, merges);
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("spbad2.json", js), &line), TOKMARK_ERR_FORMAT);
    free(js);
}

static void test_pathological(void **state) {
    (void)state;
    /* a long run of one character and a long line without spaces: the heap path */
    size_t n = 1u << 20;
    char *s = (char *)malloc(n + 1);
    assert_non_null(s);
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < n; i++) s[i] = k ? (char)('a' + (i * 7 + i / 3) % 26) : 'a';
        s[n] = '\0';
        for (int m = 0; m < NMOD; m++) {
            size_t cnt = 0;
            assert_int_equal(tokmark_tokenizer_encode(g_tok[m], s, n, NULL, 0, &cnt, 0), TOKMARK_OK);
            int32_t *ids = (int32_t *)malloc(cnt * sizeof *ids);
            assert_non_null(ids);
            size_t got = 0;
            assert_int_equal(tokmark_tokenizer_encode(g_tok[m], s, n, ids, cnt, &got, 0), TOKMARK_OK);
            char *d = (char *)malloc(n + 1);
            assert_non_null(d);
            size_t dl = 0;
            assert_int_equal(tokmark_tokenizer_decode(g_tok[m], ids, got, d, n, &dl), TOKMARK_OK);
            assert_int_equal(dl, n);
            assert_memory_equal(d, s, n);
            free(d);
            free(ids);
        }
    }
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_gpt2),    cmocka_unit_test(test_vectors_llama3),
        cmocka_unit_test(test_vectors_mistral),  cmocka_unit_test(test_vectors_mistral_metaspace_first),
        cmocka_unit_test(test_vectors_mistral_metaspace_split),
        cmocka_unit_test(test_names_and_sizes), cmocka_unit_test(test_merge_ranks),
        cmocka_unit_test(test_prefix_space_and_added), cmocka_unit_test(test_rejected),
        cmocka_unit_test(test_sentencepiece_small), cmocka_unit_test(test_pathological),
    };
    return cmocka_run_group_tests(tests, load_all, free_all);
}
