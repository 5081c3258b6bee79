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
#include "tok/tok.h" /* tm_hf_normalize (internal) */
#include "tokutil.h"

/* gpt2, llama3: byte-level BPE (§9.8).  mistral: SentencePiece-style (§9.9), Mistral 7B.
 * The others are variants: the base file with top-level keys replaced by
 * `over` (a JSON object), made here as tools/gen-tokenizer-vectors-hf.js makes
 * them: the two mistral-metaspace-* with a Metaspace pre-tokenizer instead of
 * the normalizer, the rest with the normalizers of §9.10 and added tokens
 * with every flag (added_tokens replaced). */
#define SP_CHAIN(first)                                                                                         \
    "{\"type\":\"Sequence\",\"normalizers\":[" first ",{\"type\":\"Prepend\",\"prepend\":"                    \
    "\"\\u2581\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]}"
#define SP_NORM(first) "{\"normalizer\":" SP_CHAIN(first) "}"
#define FLAG_TOKENS                                                                                             \
    "\"added_tokens\":["                                                                                        \
    "{\"id\":0,\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"          \
    "\"normalized\":false,\"special\":true},"                                                                   \
    "{\"id\":0,\"content\":\"<l>\",\"single_word\":false,\"lstrip\":true,\"rstrip\":false,"                     \
    "\"normalized\":false,\"special\":false},"                                                                  \
    "{\"id\":0,\"content\":\"<r>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":true,"                     \
    "\"normalized\":true,\"special\":false},"                                                                   \
    "{\"id\":0,\"content\":\"word\",\"single_word\":true,\"lstrip\":false,\"rstrip\":false,"                    \
    "\"normalized\":true,\"special\":false},"                                                                   \
    "{\"id\":0,\"content\":\"\\uFB01x\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"               \
    "\"normalized\":true,\"special\":false},"                                                                   \
    "{\"id\":0,\"content\":\"a\\u0301b\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"              \
    "\"normalized\":false,\"special\":false},"                                                                  \
    "{\"id\":0,\"content\":\" hello\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"                 \
    "\"normalized\":true,\"special\":false},"                                                                   \
    "{\"id\":0,\"content\":\"x\\u00E9\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"            \
    "\"normalized\":false,\"special\":false},"                                                                  \
    "{\"id\":0,\"content\":\"<lr>\",\"single_word\":false,\"lstrip\":true,\"rstrip\":true,"                     \
    "\"normalized\":false,\"special\":true},"                                                                   \
    "{\"id\":0,\"content\":\"Sp\",\"single_word\":true,\"lstrip\":true,\"rstrip\":false,"                       \
    "\"normalized\":false,\"special\":true}]"
static const struct model {
    const char *name, *base, *over;
    uint32_t vocab;
    int sp;          /* SentencePiece-style */
    int full;        /* the whole corpus (not only its short texts) */
} mods[] = {
    {"gpt2", NULL, NULL, 50257, 0, 1},
    {"llama3", NULL, NULL, 128256, 0, 1},
    {"mistral", NULL, NULL, 32000, 1, 1},
    {"mistral-metaspace-first", "mistral",
     "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
     "\"prepend_scheme\":\"first\",\"split\":false}}",
     32000, 1, 1},
    {"mistral-metaspace-split", "mistral",
     "{\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
     "\"prepend_scheme\":\"always\",\"split\":true}}",
     32000, 1, 1},
    {"gpt2-nfkc", "gpt2", "{\"normalizer\":{\"type\":\"NFKC\"}}", 50257, 0, 0},
    {"gpt2-nfd-lower-strip", "gpt2",
     "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},{\"type\":\"Lowercase\"},"
     "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}]}}",
     50257, 0, 0},
    {"llama3-nfc", "llama3", "{\"normalizer\":{\"type\":\"NFC\"}}", 128256, 0, 0},
    {"mistral-nfkc", "mistral",
     "{\"normalizer\":" SP_CHAIN("{\"type\":\"NFKC\"}") ",\"added_tokens\":["
     "{\"id\":0,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,"
     "\"special\":true},{\"id\":1,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
     "\"normalized\":false,\"special\":true},{\"id\":2,\"content\":\"</s>\",\"single_word\":false,\"lstrip\":false,"
     "\"rstrip\":false,\"normalized\":false,\"special\":true},{\"id\":0,\"content\":\"q\\u2581r\",\"single_word\":false,"
     "\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":false},{\"id\":0,\"content\":\"<0x41>\","
     "\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":false},{\"id\":0,"
     "\"content\":\"Zz\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":true,\"special\":false}]}",
     32002, 1, 0},
    {"mistral-nfkd-lower", "mistral",
     SP_NORM("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKD\"},{\"type\":\"Lowercase\"}]}"), 32000, 1, 0},
    {"gpt2-added-flags", "gpt2", "{\"normalizer\":{\"type\":\"NFKC\"}," FLAG_TOKENS "}", 50264, 0, 0},
    {"gpt2-added-flags-raw", "gpt2", "{" FLAG_TOKENS "}", 50264, 0, 0},
};
#define NMOD (sizeof mods / sizeof mods[0])
#define NBASE 5 /* the first five: gpt2, llama3, mistral and its two Metaspace variants */
static tokmark_tokenizer *g_tok[NMOD];
static char g_dir[256];

/* Write the variant `which` of its base file to g_dir; its path in out. */
static int make_variant(size_t which, const char *dir, char *out, size_t size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.tokenizer.json", dir, mods[which].base);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL) return -1;
    json_t *over = json_loads(mods[which].over, 0, &jerr);
    if (over == NULL) fprintf(stderr, "test_tokenizer_hf: %s: %s\n", mods[which].name, jerr.text);
    int rc = over != NULL && json_object_update(root, over) == 0 ? 0 : -1;
    json_decref(over);
    snprintf(out, size, "%s/%s.tokenizer.json", g_dir, mods[which].name);
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
    for (size_t i = 0; i < NMOD; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.tokenizer.json", dir, mods[i].name);
        if (mods[i].base != NULL && make_variant(i, dir, path, sizeof path) != 0) {
            fprintf(stderr, "test_tokenizer_hf: cannot make %s from %s/%s.tokenizer.json (run  sh "
                            "scripts/fetch-tokenizers.sh)\n", mods[i].name, dir, mods[i].base);
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
    for (size_t i = 0; i < NMOD; i++) tokmark_tokenizer_free(g_tok[i]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] != '\0' && system(cmd) != 0) return -1;
    return 0;
}

/* Our decoding of ids[0..n) against the oracle's text `want`: equal bytes
 * when ours is well-formed UTF-8; otherwise byte-level decoding is compared
 * after replacing ill-formed sequences by U+FFFD as Rust's from_utf8_lossy
 * (HF's ByteLevel decoder), and SentencePiece-style decoding is not compared
 * (HF turns each byte token of an ill-formed sequence into U+FFFD; tokmark
 * returns the bytes, SPEC.md §9.9).  Returns 1 equal, 0 different, -1 not compared. */
static int decode_matches(tokmark_tokenizer *t, int sp, const int32_t *ids, size_t n, json_t *want) {
    size_t dl = 0;
    if (tokmark_tokenizer_decode(t, ids, n, NULL, 0, &dl) != TOKMARK_OK) return 0;
    char *d = (char *)malloc(dl + 1);
    assert_non_null(d);
    size_t dl2 = 0;
    assert_int_equal(tokmark_tokenizer_decode(t, ids, n, d, dl, &dl2), TOKMARK_OK);
    assert_int_equal(dl2, dl);
    int r;
    if (utf8_valid((const uint8_t *)d, dl)) r = dl == json_string_length(want) && memcmp(d, json_string_value(want), dl) == 0;
    else if (sp) r = -1;
    else {
        size_t ll = 0;
        char *l = utf8_lossy((const uint8_t *)d, dl, &ll);
        r = ll == json_string_length(want) && memcmp(l, json_string_value(want), ll) == 0;
        free(l);
    }
    free(d);
    return r;
}

static void check_vectors(size_t which) {
    char path[512];
    snprintf(path, sizeof path, "testvectors/tokenizer/hf-%s.jsonl", mods[which].name);
    FILE *f = fopen(path, "r");
    if (f == NULL) fail_msg("%s: %s", path, strerror(errno));
    tokmark_tokenizer *t = g_tok[which];
    tokmark_tokenizer_encoder *e = NULL;
    assert_int_equal(tokmark_tokenizer_encoder_create(&e, t), TOKMARK_OK);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    size_t n_cases = 0, n_bad = 0, n_special_diff = 0, n_roundtrip = 0, n_decoded = 0, n_dec_skip = 0,
           n_random = 0;
    int sp = mods[which].sp;
    while ((ll = getline(&line, &lcap, f)) > 0) {
        json_error_t jerr;
        json_t *o = json_loadb(line, (size_t)ll, JSON_ALLOW_NUL, &jerr);
        if (o == NULL) fail_msg("%s: %s", path, jerr.text);
        const char *id = json_string_value(json_object_get(o, "id"));
        assert_non_null(id);
        json_t *dec = json_object_get(o, "decoded"), *dids = json_object_get(o, "decode_ids");
        assert_true(json_is_string(dec));
        if (dids != NULL) { /* decoding only: random ids */
            assert_true(json_is_array(dids));
            size_t n = json_array_size(dids);
            int32_t ids[64];
            assert_true(n <= 64);
            for (size_t i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(dids, i));
            int r = decode_matches(t, sp, ids, n, dec);
            if (r == 0) print_error("  %s %s: decode differs from the oracle\n", mods[which].name, id);
            n_bad += r == 0;
            n_dec_skip += r < 0;
            n_random++;
            json_decref(o);
            continue;
        }
        json_t *jt = json_object_get(o, "text"), *jh = json_object_get(o, "hex");
        json_t *ord = json_object_get(o, "ordinary"), *spc = json_object_get(o, "special");
        assert_true(json_is_array(ord) && json_is_array(spc));
        size_t len;
        char *text = vector_text(jt, jh, &len);
        unsigned base = jh != NULL ? TOKMARK_ENCODE_REPLACE_INVALID : 0;
        int rc;
        size_t n1, n2;
        int32_t *a = encode_all(e, text, len, base, &n1, &rc);
        if (rc != TOKMARK_OK) fail_msg("%s %s: encode returned %s", mods[which].name, id, tokmark_error_name(rc));
        int32_t *b = encode_all(e, text, len, base | TOKMARK_ENCODE_ALLOW_SPECIAL, &n2, &rc);
        if (rc != TOKMARK_OK) fail_msg("%s %s: encode returned %s", mods[which].name, id, tokmark_error_name(rc));
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
        /* decode(ids) == the oracle's decode(ids) (SPEC.md §9.8, §9.9) */
        int r = decode_matches(t, sp, b, n2, dec);
        if (r == 0) {
            print_error("  %s %s: decode differs from the oracle\n", mods[which].name, id);
            ok = 0;
        }
        n_decoded += r == 1;
        n_dec_skip += r < 0;
        /* decode(encode(x)) == x: byte-level always; SentencePiece-style (§9.9)
         * only without added tokens, without U+2581 in the text (it decodes to a
         * space) and, with Metaspace, without a leading space (Strip drops it);
         * not with a normalizer (§9.10) */
        int lossless = which < NBASE && jt != NULL &&
                       (!sp || (strstr(text, "\xE2\x96\x81") == NULL && (which == 2 || text[0] != ' ')));
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
    if (n_bad != 0) fail_msg("%s: %zu of %zu vectors differ from the oracle", mods[which].name, n_bad, n_cases);
    assert_true(n_cases >= (mods[which].full ? 150u : 100u));
    assert_int_equal(n_random, 20);
    assert_true(n_decoded + 5 >= n_cases); /* nearly all decodings compared */
    if (!sp) assert_int_equal(n_dec_skip, 0);
    if (which < NBASE) assert_true(n_roundtrip >= 100);
    assert_true(n_special_diff >= 3); /* the corpus does exercise special tokens */
}

#define VECTOR_TEST(fn, k)                                                                                     \
    static void fn(void **state) {                                                                             \
        (void)state;                                                                                           \
        check_vectors(k);                                                                                      \
    }
VECTOR_TEST(test_vectors_gpt2, 0)
VECTOR_TEST(test_vectors_llama3, 1)
VECTOR_TEST(test_vectors_mistral, 2)
VECTOR_TEST(test_vectors_mistral_metaspace_first, 3)
VECTOR_TEST(test_vectors_mistral_metaspace_split, 4)
VECTOR_TEST(test_vectors_gpt2_nfkc, 5)
VECTOR_TEST(test_vectors_gpt2_nfd_lower_strip, 6)
VECTOR_TEST(test_vectors_llama3_nfc, 7)
VECTOR_TEST(test_vectors_mistral_nfkc, 8)
VECTOR_TEST(test_vectors_mistral_nfkd_lower, 9)
VECTOR_TEST(test_vectors_gpt2_added_flags, 10)
VECTOR_TEST(test_vectors_gpt2_added_flags_raw, 11)

static void test_names_and_sizes(void **state) {
    (void)state;
    for (size_t i = 0; i < NMOD; i++) {
        assert_string_equal(tokmark_tokenizer_name(g_tok[i]), mods[i].name);
        assert_int_equal(tokmark_tokenizer_vocab_size(g_tok[i]), mods[i].vocab);
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
    /* a normalizer outside the subset, a WordPiece model, a merge whose result is not in the vocab, bad JSON */
    tokmark_tokenizer *t = NULL;
    size_t line = 0;
    char *js = tiny_json(bl, "", "", "", "");
    char *p = strstr(js, "\"normalizer\":null");
    assert_non_null(p);
    size_t jl = strlen(js);
    char *js2 = (char *)malloc(jl + 64);
    assert_non_null(js2);
    snprintf(js2, jl + 64, "%.*s\"normalizer\":{\"type\":\"Precompiled\"}%s", (int)(p - js), js,
             p + strlen("\"normalizer\":null"));
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("n.json", js2), &line), TOKMARK_ERR_UNSUPPORTED);
    free(js2);
    free(js);
    /* a normalized added token that the normalizer (Strip) makes empty */
    js = tiny_json(bl, "", "", "", "{\"id\":300,\"content\":\" \",\"special\":false,\"normalized\":true}");
    p = strstr(js, "\"normalizer\":null");
    assert_non_null(p);
    jl = strlen(js);
    js2 = (char *)malloc(jl + 64);
    assert_non_null(js2);
    snprintf(js2, jl + 64, "%.*s\"normalizer\":{\"type\":\"Strip\"}%s", (int)(p - js), js,
             p + strlen("\"normalizer\":null"));
    assert_int_equal(tokmark_tokenizer_load(&t, write_json("n2.json", js2), &line), TOKMARK_ERR_UNSUPPORTED);
    assert_null(t);
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
    /* rejected: a Regex Replace, BertNormalizer (not built in), a decoder outside the subset, Split */
    const char *bad[][3] = {
        {"{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\"\xE2\x96\x81\"}", "null", dec},
        {"{\"type\":\"BertNormalizer\"}", "null", dec},
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

/* Every code point through each normalizer (SPEC.md §9.10), against the
 * reference's digests in testvectors/tokenizer/hf-normalizers.txt (made by
 * tools/gen-tokenizer-vectors-hf-norm.js, whose header defines them). */
static void test_normalizers_all_code_points(void **state) {
    (void)state;
    static const char *const forms[7] = {"nfc", "nfd", "nfkc", "nfkd", "lowercase", "nfd-probe", "nfc-probe"};
    static const char *const types[7] = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "NFD", "NFC"};
    static const char *const probe[7] = {NULL, NULL, NULL, NULL, NULL, "a\xCC\x81", "\xCC\x81"};
    /* the reference's digests: [form][block] = count, hash */
    static uint32_t want_n[7][0x1100], want_h[7][0x1100];
    memset(want_n, 0, sizeof want_n);
    FILE *f = fopen("testvectors/tokenizer/hf-normalizers.txt", "r");
    if (f == NULL) fail_msg("testvectors/tokenizer/hf-normalizers.txt: %s", strerror(errno));
    char buf[256];
    size_t lines = 0;
    while (fgets(buf, sizeof buf, f) != NULL) {
        if (buf[0] == '#') continue;
        char form[32];
        unsigned block, count, hash;
        assert_int_equal(sscanf(buf, "%31s %x %u %x", form, &block, &count, &hash), 4);
        assert_true(block < 0x1100 && count > 0);
        int k = -1;
        for (int i = 0; i < 7; i++)
            if (strcmp(form, forms[i]) == 0) k = i;
        assert_true(k >= 0);
        want_n[k][block] = count;
        want_h[k][block] = hash;
        lines++;
    }
    fclose(f);
    assert_true(lines > 300);
    size_t bad = 0;
    for (int k = 0; k < 7; k++) {
        char norm[64];
        snprintf(norm, sizeof norm, "\"normalizer\":{\"type\":\"%s\"}", types[k]);
        char *js = tiny_json("{\"type\":\"ByteLevel\"}", "", "", "", "");
        char *p = strstr(js, "\"normalizer\":null");
        assert_non_null(p);
        size_t jl = strlen(js);
        char *js2 = (char *)malloc(jl + 64);
        assert_non_null(js2);
        snprintf(js2, jl + 64, "%.*s%s%s", (int)(p - js), js, norm, p + strlen("\"normalizer\":null"));
        tokmark_tokenizer *t = NULL;
        size_t line = 0;
        assert_int_equal(tokmark_tokenizer_load(&t, write_json("norm.json", js2), &line), TOKMARK_OK);
        free(js2);
        free(js);
        tm_hf_scratch sc;
        memset(&sc, 0, sizeof sc);
        for (uint32_t block = 0; block < 0x1100; block++) {
            uint32_t h = 2166136261u, n = 0;
            for (uint32_t cp = block << 8; cp < (block + 1) << 8; cp++) {
                if (cp >= 0xD800 && cp <= 0xDFFF) continue;
                uint8_t in[16];
                size_t il = 0;
                if (probe[k] != NULL) {
                    il = strlen(probe[k]);
                    memcpy(in, probe[k], il);
                }
                if (cp < 0x80) in[il++] = (uint8_t)cp;
                else if (cp < 0x800) {
                    in[il++] = (uint8_t)(0xC0 | cp >> 6);
                    in[il++] = (uint8_t)(0x80 | (cp & 63));
                } else if (cp < 0x10000) {
                    in[il++] = (uint8_t)(0xE0 | cp >> 12);
                    in[il++] = (uint8_t)(0x80 | ((cp >> 6) & 63));
                    in[il++] = (uint8_t)(0x80 | (cp & 63));
                } else {
                    in[il++] = (uint8_t)(0xF0 | cp >> 18);
                    in[il++] = (uint8_t)(0x80 | ((cp >> 12) & 63));
                    in[il++] = (uint8_t)(0x80 | ((cp >> 6) & 63));
                    in[il++] = (uint8_t)(0x80 | (cp & 63));
                }
                if (probe[k] != NULL) {
                    memcpy(in + il, "\xCC\x96", 2); /* U+0316 */
                    il += 2;
                }
                const uint8_t *out;
                size_t ol;
                assert_int_equal(tm_hf_normalize(t, &sc, in, il, &out, &ol), TOKMARK_OK);
                if (ol == il && memcmp(out, in, il) == 0) continue;
                n++;
                char hx[16];
                int hl = snprintf(hx, sizeof hx, "%x ", cp);
                for (int i = 0; i < hl; i++) h = (h ^ (uint8_t)hx[i]) * 16777619u;
                for (size_t i = 0; i < ol; i++) h = (h ^ out[i]) * 16777619u;
                h = (h ^ '\n') * 16777619u;
            }
            if (n != want_n[k][block] || (n > 0 && h != want_h[k][block])) {
                print_error("  %s: block U+%04X..U+%04X differs from the reference (%u changed code points, "
                            "reference %u)\n", forms[k], block << 8, (block << 8) + 255, n, want_n[k][block]);
                bad++;
            }
        }
        tm_hf_scratch_free(&sc);
        tokmark_tokenizer_free(t);
    }
    if (bad > 0) fail_msg("%zu blocks of code points normalize differently from the reference", bad);
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
        for (size_t m = 0; m < NBASE; m++) {
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
        cmocka_unit_test(test_vectors_mistral_metaspace_split), cmocka_unit_test(test_vectors_gpt2_nfkc),
        cmocka_unit_test(test_vectors_gpt2_nfd_lower_strip),    cmocka_unit_test(test_vectors_llama3_nfc),
        cmocka_unit_test(test_vectors_mistral_nfkc),            cmocka_unit_test(test_vectors_mistral_nfkd_lower),
        cmocka_unit_test(test_vectors_gpt2_added_flags),        cmocka_unit_test(test_vectors_gpt2_added_flags_raw),
        cmocka_unit_test(test_names_and_sizes), cmocka_unit_test(test_merge_ranks),
        cmocka_unit_test(test_prefix_space_and_added), cmocka_unit_test(test_rejected),
        cmocka_unit_test(test_sentencepiece_small), cmocka_unit_test(test_normalizers_all_code_points),
        cmocka_unit_test(test_pathological),
    };
    return cmocka_run_group_tests(tests, load_all, free_all);
}
