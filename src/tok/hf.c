/* hf.c — Hugging Face tokenizer.json: byte-level BPE (SPEC.md §9.8),
 * SentencePiece-style BPE (§9.9: Metaspace, byte_fallback, unk_token,
 * fuse_unk, decoder Replace / ByteFallback / Fuse / Strip; see sp_segment and
 * sp_word), normalizers (§9.10: Prepend, Replace, NFC, NFD, NFKC, NFKD through
 * utf8proc with Unicode 9.0's view of newer characters, Lowercase, Strip) and
 * added tokens with every flag (special, normalized, lstrip, rstrip,
 * single_word; split_added follows HF's AddedVocabulary::find_matches).
 *
 * Supported pre-tokenizers: ByteLevel, or Split (regex or string, behavior
 * Isolated) followed by ByteLevel, possibly inside a Sequence; Metaspace.
 * Model BPE (vocab + merges as "a b" strings or [a, b] pairs, ignore_merges,
 * no dropout, no subword prefix/suffix).  Anything else is
 * TOKMARK_ERR_UNSUPPORTED, with the component named in tm_hf_unsupported().
 *
 * Vocabulary tokens are stored as raw bytes (the byte-level alphabet undone)
 * in the tokenizer's ordinary tables (blob, tok_off, tok_len, slots), so ids
 * are looked up by bytes as for tiktoken.  Merges live in a hash table keyed
 * by the pair of ids; BPE merges the pair of lowest merge rank, leftmost on
 * ties (what HF's Word::merge_all computes), by a linear scan for a few
 * symbols and with a heap for more. */
#include "tok/tok.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <utf8proc.h>

/* Unicode White_Space (see tiktoken.c): what \s means in HF's regex engines. */
#define HF_WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

/* GPT-2's split pattern: what ByteLevel uses when use_regex is true. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static _Thread_local const char *hf_what; /* the component last rejected */

const char *tm_hf_unsupported(void) { return hf_what != NULL ? hf_what : ""; }

static int unsupported(const char *what) {
    hf_what = what;
    return TOKMARK_ERR_UNSUPPORTED;
}

/* ---- byte-level alphabet (GPT-2's bytes_to_unicode) ---- */
static void byte_alphabet(uint16_t byte_to_cp[256], int16_t cp_to_byte[512]) {
    for (int i = 0; i < 512; i++) cp_to_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int direct = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        byte_to_cp[b] = (uint16_t)(direct ? b : 256 + n++);
        cp_to_byte[byte_to_cp[b]] = (int16_t)b;
    }
}

/* Decode one UTF-8 sequence (input assumed well-formed, from jansson). */
static uint32_t utf8_next(const uint8_t *s, size_t n, size_t *i) {
    uint8_t b = s[*i];
    uint32_t c;
    size_t l;
    if (b < 0x80) { c = b; l = 1; }
    else if (b < 0xE0) { c = b & 0x1F; l = 2; }
    else if (b < 0xF0) { c = b & 0x0F; l = 3; }
    else { c = b & 0x07; l = 4; }
    if (*i + l > n) l = n - *i;
    for (size_t k = 1; k < l; k++) c = c << 6 | (s[*i + k] & 0x3F);
    *i += l;
    return c;
}

/* Undo the byte-level alphabet: out receives the bytes; returns their number,
 * or -1 when a character is outside the alphabet. */
static long unmap(const int16_t cp_to_byte[512], const uint8_t *s, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t c = utf8_next(s, n, &i);
        if (c >= 512 || cp_to_byte[c] < 0) return -1;
        out[o++] = (uint8_t)cp_to_byte[c];
    }
    return (long)o;
}

/* ---- regex translation: HF (Oniguruma) syntax to PCRE2 ---- */
static int translate_regex(const char *src, int literal, pcre2_code **re, int *jit) {
    size_t n = strlen(src);
    size_t cap = n * 8 + 64 + n * sizeof HF_WS;
    char *dst = (char *)malloc(cap);
    if (dst == NULL) return TOKMARK_ERR_NOMEM;
    size_t o = 0;
    if (literal) {
        o += (size_t)snprintf(dst, cap, "\\Q");
        for (size_t i = 0; i < n; i++) {
            if (src[i] == '\\' && src[i + 1] == 'E') { /* end \Q, emit \E literally, restart */
                o += (size_t)snprintf(dst + o, cap - o, "\\E\\\\E\\Q");
                i++;
                continue;
            }
            dst[o++] = src[i];
        }
        o += (size_t)snprintf(dst + o, cap - o, "\\E");
    } else {
        int in_class = 0;
        for (size_t i = 0; i < n; i++) {
            char c = src[i];
            if (c == '\\' && i + 1 < n) {
                char d = src[i + 1];
                i++;
                if (d == 's') o += (size_t)snprintf(dst + o, cap - o, in_class ? "%s" : "[%s]", HF_WS);
                else if (d == 'S') {
                    if (in_class) {
                        free(dst);
                        return unsupported("pre_tokenizer Split: \\S inside a character class");
                    }
                    o += (size_t)snprintf(dst + o, cap - o, "[^%s]", HF_WS);
                } else {
                    dst[o++] = '\\';
                    dst[o++] = d;
                }
                continue;
            }
            if (c == '[' && !in_class) {
                in_class = 1;
                dst[o++] = c;
                if (src[i + 1] == '^') dst[o++] = src[++i];
                if (src[i + 1] == ']') dst[o++] = src[++i]; /* a literal ] first */
                continue;
            }
            if (c == '[' && in_class) {
                free(dst);
                return unsupported("pre_tokenizer Split: nested character class");
            }
            if (c == ']' && in_class) in_class = 0;
            dst[o++] = c;
        }
    }
    dst[o] = '\0';
    int errcode;
    PCRE2_SIZE erroff;
    *re = pcre2_compile((PCRE2_SPTR)dst, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &errcode, &erroff, NULL);
    free(dst);
    if (*re == NULL) return unsupported("pre_tokenizer Split: regex not understood by PCRE2");
    *jit = pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE) == 0;
    return TOKMARK_OK;
}

/* ---- the loaded form ---- */
enum { STEP_SPLIT = 1, STEP_BYTELEVEL = 2, STEP_METASPACE = 3 };
#define HF_MAX_STEPS 8

typedef struct hf_step {
    int kind;
    pcre2_code *re; /* Split's pattern, or ByteLevel's when use_regex; else NULL */
    int jit;
    int prefix_space; /* ByteLevel add_prefix_space */
} hf_step;

/* SentencePiece-style (no ByteLevel; SPEC.md §9.9): a normalizer of Prepend
 * and Replace steps, a Metaspace pre-tokenizer, BPE over characters with
 * byte fallback and an unknown token. */
enum {
    NORM_PREPEND = 1, NORM_REPLACE, NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD, NORM_LOWERCASE, NORM_STRIP
};
enum { MS_NEVER = 0, MS_FIRST = 1, MS_ALWAYS = 2 };
#define HF_MAX_NORM 16
typedef struct hf_norm {
    int kind;
    char *a; /* Prepend: the prefix; Replace: the literal pattern */
    size_t al;
    char *b; /* Replace: the content */
    size_t bl;
    int left, right; /* Strip */
} hf_norm;

typedef struct hf_added {
    uint8_t *text;    /* what is matched: the content, normalized when `normalized` (SPEC.md §9.8) */
    size_t len;
    uint8_t *content; /* the content as written */
    size_t clen;
    uint8_t *dec;     /* what it decodes to: the content through the decoder (SPEC.md §9.8, §9.9) */
    size_t dlen;
    int32_t id;
    int special;
    int normalized;
    int lstrip, rstrip, single_word;
} hf_added;

typedef struct hf_merge {
    uint32_t a, b;   /* pair of ids; a == TM_NO_RANK: empty slot */
    uint32_t rank;   /* index in merges */
    uint32_t id;     /* id of the merged token */
} hf_merge;

struct tm_hf {
    char name[TOKMARK_TOKENIZER_MAX];
    hf_step steps[HF_MAX_STEPS];
    size_t n_steps;
    hf_added *added;
    size_t n_added;
    uint8_t first_byte[2][32]; /* bitmaps: first bytes of added tokens (ordinary / all) */
    hf_merge *merges;
    uint64_t mmask;
    int ignore_merges;
    /* SentencePiece-style */
    int sp;                       /* 1: no ByteLevel; the fields below apply */
    hf_norm norm[HF_MAX_NORM];
    size_t n_norm;
    int ms;                       /* a Metaspace pre-tokenizer */
    int ms_scheme;                /* MS_* */
    int ms_split;
    char ms_rep[8];               /* its replacement character, UTF-8 */
    size_t ms_rep_len;
    int byte_fallback;
    int32_t byte_tok[256];        /* id of "<0xNN>", or -1 */
    int32_t unk_id;               /* -1: no unk_token */
    int fuse_unk;
    int sp_chunk;                 /* BPE may cut a piece before each run of U+2581 (see sp_piece) */
    tokmark_tokenizer raw;        /* the vocab by its own strings (blob, tok_off, tok_len, slots, mask) */
    int dec_bytelevel;            /* byte-level decoder: ByteLevel (else null) */
    int dec_bytefallback;         /* decoder: ByteFallback, Replace a -> b, Fuse then Strip */
    char *dec_a, *dec_b;
    size_t dec_al, dec_bl;
    size_t strip_n;
    uint8_t strip_ch;
};

static inline uint64_t pair_hash(uint32_t a, uint32_t b) {
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static inline const hf_merge *merge_find(const tm_hf *h, uint32_t a, uint32_t b) {
    for (uint64_t i = pair_hash(a, b) & h->mmask;; i = (i + 1) & h->mmask) {
        const hf_merge *m = &h->merges[i];
        if (m->a == TM_NO_RANK) return NULL;
        if (m->a == a && m->b == b) return m;
    }
}

void tm_hf_free(tm_hf *h) {
    if (h == NULL) return;
    for (size_t i = 0; i < h->n_steps; i++) pcre2_code_free(h->steps[i].re);
    for (size_t i = 0; i < h->n_added; i++) {
        free(h->added[i].text);
        free(h->added[i].content);
        free(h->added[i].dec);
    }
    free(h->added);
    free(h->merges);
    for (size_t i = 0; i < h->n_norm; i++) {
        free(h->norm[i].a);
        free(h->norm[i].b);
    }
    free(h->raw.blob);
    free(h->raw.tok_off);
    free(h->raw.tok_len);
    free(h->raw.slots);
    free(h->dec_a);
    free(h->dec_b);
    free(h);
}

static int add_step(tm_hf *h, int kind) {
    if (h->n_steps == HF_MAX_STEPS) return unsupported("pre_tokenizer: too many steps");
    h->steps[h->n_steps].kind = kind;
    h->n_steps++;
    return TOKMARK_OK;
}

static int json_flag(json_t *o, const char *key, int dflt) {
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) return dflt;
    return json_is_true(v);
}

static int parse_pretok(tm_hf *h, json_t *p) {
    const char *type = json_string_value(json_object_get(p, "type"));
    if (type == NULL) return TOKMARK_ERR_FORMAT;
    if (strcmp(type, "Sequence") == 0) {
        json_t *arr = json_object_get(p, "pretokenizers");
        if (!json_is_array(arr)) return TOKMARK_ERR_FORMAT;
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) {
            int rc = parse_pretok(h, v);
            if (rc != TOKMARK_OK) return rc;
        }
        return TOKMARK_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (beh == NULL || strcmp(beh, "Isolated") != 0) return unsupported("pre_tokenizer Split: behavior other than Isolated");
        if (json_flag(p, "invert", 0)) return unsupported("pre_tokenizer Split: invert");
        json_t *pat = json_object_get(p, "pattern");
        const char *rx = json_string_value(json_object_get(pat, "Regex"));
        const char *str = json_string_value(json_object_get(pat, "String"));
        if (rx == NULL && str == NULL) return TOKMARK_ERR_FORMAT;
        int rc = add_step(h, STEP_SPLIT);
        if (rc != TOKMARK_OK) return rc;
        hf_step *s = &h->steps[h->n_steps - 1];
        return translate_regex(rx != NULL ? rx : str, rx == NULL, &s->re, &s->jit);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        int rc = add_step(h, STEP_BYTELEVEL);
        if (rc != TOKMARK_OK) return rc;
        hf_step *s = &h->steps[h->n_steps - 1];
        s->prefix_space = json_flag(p, "add_prefix_space", 1);
        if (json_flag(p, "use_regex", 1)) return translate_regex(GPT2_PATTERN, 0, &s->re, &s->jit);
        return TOKMARK_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        if (h->ms) return unsupported("pre_tokenizer: two Metaspace");
        const char *r = json_string_value(json_object_get(p, "replacement"));
        const char *sch = json_string_value(json_object_get(p, "prepend_scheme"));
        if (r == NULL || json_string_length(json_object_get(p, "replacement")) == 0) return TOKMARK_ERR_FORMAT;
        size_t ri = 0;
        (void)utf8_next((const uint8_t *)r, strlen(r), &ri);
        if (ri != strlen(r) || ri >= sizeof h->ms_rep) return TOKMARK_ERR_FORMAT; /* one character */
        memcpy(h->ms_rep, r, ri);
        h->ms_rep_len = ri;
        if (sch == NULL) /* older files: add_prefix_space */
            h->ms_scheme = json_flag(p, "add_prefix_space", 1) ? MS_ALWAYS : MS_NEVER;
        else if (strcmp(sch, "always") == 0) h->ms_scheme = MS_ALWAYS;
        else if (strcmp(sch, "first") == 0) h->ms_scheme = MS_FIRST;
        else if (strcmp(sch, "never") == 0) h->ms_scheme = MS_NEVER;
        else return unsupported("pre_tokenizer Metaspace: prepend_scheme");
        h->ms_split = json_flag(p, "split", 1);
        h->ms = 1;
        return add_step(h, STEP_METASPACE);
    }
    return unsupported(strcmp(type, "Whitespace") == 0 ? "pre_tokenizer Whitespace"
                       : strcmp(type, "Digits") == 0 ? "pre_tokenizer Digits"
                       : strcmp(type, "Punctuation") == 0 ? "pre_tokenizer Punctuation"
                                                            : "pre_tokenizer (type not supported)");
}

static char *dup_json_string(json_t *v, size_t *len) {
    *len = json_string_length(v);
    char *d = (char *)malloc(*len + 1);
    if (d != NULL) memcpy(d, json_string_value(v), *len + 1);
    return d;
}

/* normalizer: Prepend, Replace with a String pattern, NFC, NFD, NFKC, NFKD,
 * Lowercase, Strip, or a Sequence of them (SPEC.md §9.10). */
static int parse_normalizer(tm_hf *h, json_t *n) {
    const char *type = json_string_value(json_object_get(n, "type"));
    if (type == NULL) return TOKMARK_ERR_FORMAT;
    if (strcmp(type, "Sequence") == 0) {
        json_t *arr = json_object_get(n, "normalizers");
        if (!json_is_array(arr)) return TOKMARK_ERR_FORMAT;
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v) {
            int rc = parse_normalizer(h, v);
            if (rc != TOKMARK_OK) return rc;
        }
        return TOKMARK_OK;
    }
    if (h->n_norm == HF_MAX_NORM) return unsupported("normalizer: too many steps");
    hf_norm *m = &h->norm[h->n_norm];
    if (strcmp(type, "Prepend") == 0) {
        json_t *pv = json_object_get(n, "prepend");
        if (!json_is_string(pv)) return TOKMARK_ERR_FORMAT;
        m->kind = NORM_PREPEND;
        if ((m->a = dup_json_string(pv, &m->al)) == NULL) return TOKMARK_ERR_NOMEM;
        h->n_norm++;
        return TOKMARK_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        json_t *pat = json_object_get(json_object_get(n, "pattern"), "String");
        json_t *c = json_object_get(n, "content");
        if (pat == NULL) return unsupported("normalizer Replace: a Regex pattern");
        if (!json_is_string(pat) || !json_is_string(c) || json_string_length(pat) == 0) return TOKMARK_ERR_FORMAT;
        m->kind = NORM_REPLACE;
        m->a = dup_json_string(pat, &m->al);
        m->b = dup_json_string(c, &m->bl);
        h->n_norm++;
        return m->a != NULL && m->b != NULL ? TOKMARK_OK : TOKMARK_ERR_NOMEM;
    }
    static const struct { const char *name; int kind; } simple[] = {
        {"NFC", NORM_NFC}, {"NFD", NORM_NFD}, {"NFKC", NORM_NFKC}, {"NFKD", NORM_NFKD}, {"Lowercase", NORM_LOWERCASE}};
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (strcmp(type, simple[i].name) == 0) {
            m->kind = simple[i].kind;
            h->n_norm++;
            return TOKMARK_OK;
        }
    if (strcmp(type, "Strip") == 0) {
        m->kind = NORM_STRIP;
        m->left = json_flag(n, "strip_left", 1);
        m->right = json_flag(n, "strip_right", 1);
        h->n_norm++;
        return TOKMARK_OK;
    }
    return unsupported(strcmp(type, "BertNormalizer") == 0   ? "normalizer BertNormalizer"
                       : strcmp(type, "Precompiled") == 0    ? "normalizer Precompiled"
                       : strcmp(type, "StripAccents") == 0   ? "normalizer StripAccents"
                       : strcmp(type, "Nmt") == 0            ? "normalizer Nmt"
                                                             : "normalizer (type not supported)");
}

/* decoder of a SentencePiece-style file: Sequence of Replace (String),
 * ByteFallback, Fuse, Strip (after Fuse, stop 0), each at most once. */
static int parse_decoder_sp(tm_hf *h, json_t *d) {
    const char *type = json_string_value(json_object_get(d, "type"));
    if (type == NULL) return TOKMARK_ERR_FORMAT;
    json_t *arr = json_object_get(d, "decoders");
    if (strcmp(type, "Sequence") != 0 || !json_is_array(arr)) return unsupported("decoder (only a Sequence of Replace, ByteFallback, Fuse, Strip)");
    int fuse = 0, seen_strip = 0;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *dt = json_string_value(json_object_get(v, "type"));
        if (dt == NULL) return TOKMARK_ERR_FORMAT;
        if (seen_strip) return unsupported("decoder: a step after Strip");
        if (strcmp(dt, "Replace") == 0 && h->dec_a == NULL) {
            json_t *pat = json_object_get(json_object_get(v, "pattern"), "String");
            json_t *c = json_object_get(v, "content");
            if (pat == NULL) return unsupported("decoder Replace: a Regex pattern");
            if (!json_is_string(pat) || !json_is_string(c) || json_string_length(pat) == 0) return TOKMARK_ERR_FORMAT;
            h->dec_a = dup_json_string(pat, &h->dec_al);
            h->dec_b = dup_json_string(c, &h->dec_bl);
            if (h->dec_a == NULL || h->dec_b == NULL) return TOKMARK_ERR_NOMEM;
        } else if (strcmp(dt, "ByteFallback") == 0 && !h->dec_bytefallback) {
            h->dec_bytefallback = 1;
        } else if (strcmp(dt, "Fuse") == 0 && !fuse) {
            fuse = 1;
        } else if (strcmp(dt, "Strip") == 0 && fuse) {
            const char *c = json_string_value(json_object_get(v, "content"));
            json_t *st = json_object_get(v, "start"), *sp = json_object_get(v, "stop");
            if (c == NULL || strlen(c) != 1 || (unsigned char)c[0] >= 0x80 || !json_is_integer(st) ||
                !json_is_integer(sp) || json_integer_value(st) < 0)
                return unsupported("decoder Strip: content other than one ASCII character");
            if (json_integer_value(sp) != 0) return unsupported("decoder Strip: stop");
            h->strip_n = (size_t)json_integer_value(st);
            h->strip_ch = (uint8_t)c[0];
            seen_strip = 1;
        } else
            return unsupported("decoder (only a Sequence of Replace, ByteFallback, Fuse, Strip)");
    }
    if (h->dec_a != NULL && !fuse && h->strip_n > 0) return unsupported("decoder: Strip without Fuse");
    return TOKMARK_OK;
}

size_t tm_hf_decode_strip(const tm_hf *h, uint8_t *ch) {
    *ch = h->strip_ch;
    return h->strip_n;
}

/* The ids of merge "a b" or ["a", "b"]. */
static int merge_parts(json_t *m, const char **a, size_t *al, const char **b, size_t *bl) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        size_t n = json_string_length(m);
        const char *sp = (const char *)memchr(s, ' ', n);
        if (sp == NULL) return TOKMARK_ERR_FORMAT;
        *a = s;
        *al = (size_t)(sp - s);
        *b = sp + 1;
        *bl = n - *al - 1;
        return TOKMARK_OK;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0));
        *al = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1));
        *bl = json_string_length(json_array_get(m, 1));
        return TOKMARK_OK;
    }
    return TOKMARK_ERR_FORMAT;
}

static int vocab_id(json_t *vocab, const char *s, size_t n, uint32_t *id) {
    json_t *v = json_object_getn(vocab, s, n);
    if (!json_is_integer(v)) return TOKMARK_ERR_FORMAT;
    *id = (uint32_t)json_integer_value(v);
    return TOKMARK_OK;
}

/* Byte-level vocab: tokens stored as their bytes (the alphabet undone). */
static int parse_vocab_bytelevel(tokmark_tokenizer *t, json_t *vocab, const int16_t cp_to_byte[512]) {
    json_t *v;
    size_t nv = json_object_size(vocab), total = 0, max_id = 0;
    const char *key;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (json_int_t)INT32_MAX)
            return TOKMARK_ERR_FORMAT;
        if ((size_t)json_integer_value(v) > max_id) max_id = (size_t)json_integer_value(v);
        total += strlen(key);
    }
    if (nv == 0 || max_id > 4 * nv + 65536) return TOKMARK_ERR_FORMAT;
    size_t slots = 1024;
    while (slots < 2 * nv) slots *= 2;
    t->slots = (uint64_t *)calloc(slots, sizeof *t->slots);
    t->mask = slots - 1;
    t->tok_off = (uint32_t *)calloc(max_id + 1, sizeof *t->tok_off);
    t->tok_len = (uint32_t *)calloc(max_id + 1, sizeof *t->tok_len);
    if (total > UINT32_MAX - TM_TOK_ID_BYTES * nv - 1) return TOKMARK_ERR_FORMAT; /* blob offsets are 32-bit */
    t->blob = (uint8_t *)malloc(total + TM_TOK_ID_BYTES * nv + 1); /* each token: its id, its bytes */
    if (t->slots == NULL || t->tok_off == NULL || t->tok_len == NULL || t->blob == NULL) return TOKMARK_ERR_NOMEM;
    size_t used = 0;
    json_object_foreach(vocab, key, v) {
        uint32_t id = (uint32_t)json_integer_value(v);
        size_t kl = strlen(key);
        if (kl == 0) continue;
        if (t->tok_len[id] != 0) return TOKMARK_ERR_FORMAT; /* two tokens with one id */
        uint32_t doff = tm_tok_blob_put(t->blob, &used, id);
        uint8_t *dst = t->blob + doff;
        long bl = unmap(cp_to_byte, (const uint8_t *)key, kl, dst);
        int mappable = bl > 0;
        if (!mappable) { /* outside the alphabet: decodes to its own UTF-8, never produced by BPE */
            memcpy(dst, key, kl);
            bl = (long)kl;
        }
        t->tok_off[id] = doff;
        t->tok_len[id] = (uint32_t)bl;
        used += (size_t)bl;
        if (!mappable) continue;
        uint64_t hh = tm_tok_hash(dst, (size_t)bl);
        uint64_t k = hh & t->mask;
        while (t->slots[k] != 0) k = (k + 1) & t->mask; /* keys are distinct strings, so distinct bytes */
        t->slots[k] = tm_tok_slot(hh, (size_t)bl, doff);
    }
    t->n_ranks = (uint32_t)max_id + 1;
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_rank[b] = tm_tok_rank(t, &c, 1);
        if (t->byte_rank[b] == TM_NO_RANK) return unsupported("model BPE: vocab lacks a byte of the byte-level alphabet");
    }
    return TOKMARK_OK;
}

/* An open-addressing table of the vocab by key bytes into tt (blob, tok_off,
 * tok_len, slots, mask); key_of(i) gives what is stored for id i. */
static int vocab_table(tokmark_tokenizer *tt, size_t nv, size_t max_id, size_t total) {
    size_t slots = 1024;
    while (slots < 2 * nv) slots *= 2;
    tt->slots = (uint64_t *)calloc(slots, sizeof *tt->slots);
    tt->mask = slots - 1;
    tt->tok_off = (uint32_t *)calloc(max_id + 1, sizeof *tt->tok_off);
    tt->tok_len = (uint32_t *)calloc(max_id + 1, sizeof *tt->tok_len);
    tt->blob = (uint8_t *)malloc(total + TM_TOK_ID_BYTES * nv + 1); /* each token: its id, its bytes */
    if (tt->slots == NULL || tt->tok_off == NULL || tt->tok_len == NULL || tt->blob == NULL) return TOKMARK_ERR_NOMEM;
    return TOKMARK_OK;
}

static int hexdig(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* SentencePiece-style vocab: h->raw finds ids by the vocab strings; t holds
 * what each id decodes to (the decoder's Replace, ByteFallback's <0xNN>). */
static int parse_vocab_sp(tokmark_tokenizer *t, tm_hf *h, json_t *model, json_t *vocab) {
    size_t nv = json_object_size(vocab), total = 0, max_id = 0;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (json_int_t)INT32_MAX)
            return TOKMARK_ERR_FORMAT;
        if ((size_t)json_integer_value(v) > max_id) max_id = (size_t)json_integer_value(v);
        total += strlen(key);
    }
    if (nv == 0 || max_id > 4 * nv + 65536 || total > UINT32_MAX / 4) return TOKMARK_ERR_FORMAT;
    /* decoded: Replace can grow a token (content longer than the pattern) */
    size_t grow = h->dec_al > 0 && h->dec_bl > h->dec_al ? h->dec_bl : 1;
    int rc = vocab_table(&h->raw, nv, max_id, total);
    if (rc == TOKMARK_OK) rc = vocab_table(t, 1, max_id, total * grow);
    if (rc != TOKMARK_OK) return rc;
    size_t used = 0, dused = 0;
    for (int b = 0; b < 256; b++) h->byte_tok[b] = -1;
    json_object_foreach(vocab, key, v) {
        uint32_t id = (uint32_t)json_integer_value(v);
        size_t kl = strlen(key);
        if (kl == 0) continue;
        if (h->raw.tok_len[id] != 0) return TOKMARK_ERR_FORMAT; /* two tokens with one id */
        uint32_t roff = tm_tok_blob_put(h->raw.blob, &used, id);
        memcpy(h->raw.blob + roff, key, kl);
        h->raw.tok_off[id] = roff;
        h->raw.tok_len[id] = (uint32_t)kl;
        uint64_t hh = tm_tok_hash(h->raw.blob + roff, kl);
        uint64_t k = hh & h->raw.mask;
        while (h->raw.slots[k] != 0) k = (k + 1) & h->raw.mask;
        h->raw.slots[k] = tm_tok_slot(hh, kl, roff);
        used += kl;
        /* <0xNN>: model byte fallback (exactly "<0x%02X>") and decoder ByteFallback (any hex case) */
        int hi = kl == 6 ? hexdig(key[3]) : -1, lo = kl == 6 ? hexdig(key[4]) : -1;
        int is_byte = kl == 6 && memcmp(key, "<0x", 3) == 0 && key[5] == '>' && hi >= 0 && lo >= 0;
        if (is_byte && !(key[3] >= 'a' || key[4] >= 'a')) h->byte_tok[hi << 4 | lo] = (int32_t)id;
        uint8_t *dst = t->blob + dused;
        size_t dl = 0;
        if (is_byte && h->dec_bytefallback) dst[dl++] = (uint8_t)(hi << 4 | lo);
        else
            for (size_t i = 0; i < kl;) {
                if (h->dec_al > 0 && i + h->dec_al <= kl && memcmp(key + i, h->dec_a, h->dec_al) == 0) {
                    memcpy(dst + dl, h->dec_b, h->dec_bl);
                    dl += h->dec_bl;
                    i += h->dec_al;
                } else
                    dst[dl++] = (uint8_t)key[i++];
            }
        if (dl == 0) return unsupported("decoder: a token that decodes to nothing");
        t->tok_off[id] = (uint32_t)dused;
        t->tok_len[id] = (uint32_t)dl;
        dused += dl;
    }
    t->n_ranks = h->raw.n_ranks = (uint32_t)max_id + 1;
    h->unk_id = -1;
    json_t *unk = json_object_get(model, "unk_token");
    if (unk != NULL && !json_is_null(unk)) {
        uint32_t uid;
        if (!json_is_string(unk) || vocab_id(vocab, json_string_value(unk), json_string_length(unk), &uid) != TOKMARK_OK)
            return TOKMARK_ERR_FORMAT;
        h->unk_id = (int32_t)uid;
    }
    h->fuse_unk = json_flag(model, "fuse_unk", 0);
    h->byte_fallback = json_flag(model, "byte_fallback", 0);
    return TOKMARK_OK;
}

static int parse_model(tokmark_tokenizer *t, tm_hf *h, json_t *model, const int16_t cp_to_byte[512]) {
    const char *type = json_string_value(json_object_get(model, "type"));
    if (type == NULL || strcmp(type, "BPE") != 0) return unsupported("model (only BPE)");
    json_t *v;
    if ((v = json_object_get(model, "dropout")) != NULL && !json_is_null(v) && json_number_value(v) != 0.0)
        return unsupported("model BPE: dropout");
    const char *pre = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    const char *suf = json_string_value(json_object_get(model, "end_of_word_suffix"));
    if ((pre != NULL && pre[0] != '\0') || (suf != NULL && suf[0] != '\0'))
        return unsupported("model BPE: continuing_subword_prefix / end_of_word_suffix");
    if (!h->sp && json_flag(model, "byte_fallback", 0)) return unsupported("model BPE: byte_fallback with ByteLevel");
    h->ignore_merges = json_flag(model, "ignore_merges", 0);
    json_t *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab) || !json_is_array(merges)) return TOKMARK_ERR_FORMAT;
    int vrc = h->sp ? parse_vocab_sp(t, h, model, vocab) : parse_vocab_bytelevel(t, vocab, cp_to_byte);
    if (vrc != TOKMARK_OK) return vrc;
    /* merges */
    size_t nm = json_array_size(merges), ms = 16;
    while (ms < 2 * nm + 2) ms *= 2;
    h->merges = (hf_merge *)malloc(ms * sizeof *h->merges);
    if (h->merges == NULL) return TOKMARK_ERR_NOMEM;
    for (size_t i = 0; i < ms; i++) h->merges[i].a = TM_NO_RANK;
    h->mmask = ms - 1;
    char *cat = NULL;
    size_t catcap = 0;
    h->sp_chunk = h->sp && !h->ignore_merges && tm_tok_rank(&h->raw, (const uint8_t *)"\xE2\x96\x81", 3) != TM_NO_RANK;
    for (size_t r = 0; r < nm; r++) {
        const char *a, *b;
        size_t al, bl;
        uint32_t ia, ib, ic;
        int rc = merge_parts(json_array_get(merges, r), &a, &al, &b, &bl);
        if (rc == TOKMARK_OK) rc = vocab_id(vocab, a, al, &ia);
        if (rc == TOKMARK_OK) rc = vocab_id(vocab, b, bl, &ib);
        if (rc == TOKMARK_OK && al + bl + 1 > catcap) {
            catcap = 2 * (al + bl + 1);
            char *nc = (char *)realloc(cat, catcap);
            if (nc == NULL) rc = TOKMARK_ERR_NOMEM;
            else cat = nc;
        }
        if (rc == TOKMARK_OK) {
            memcpy(cat, a, al);
            memcpy(cat + al, b, bl);
            rc = vocab_id(vocab, cat, al + bl, &ic); /* the merged token must be in the vocab */
        }
        if (rc != TOKMARK_OK) {
            free(cat);
            return rc;
        }
        /* a merge that joins a part ending in another character to one starting with U+2581 */
        if (bl >= 3 && memcmp(b, "\xE2\x96\x81", 3) == 0 && !(al >= 3 && memcmp(a + al - 3, "\xE2\x96\x81", 3) == 0))
            h->sp_chunk = 0;
        uint64_t k = pair_hash(ia, ib) & h->mmask;
        while (h->merges[k].a != TM_NO_RANK && !(h->merges[k].a == ia && h->merges[k].b == ib))
            k = (k + 1) & h->mmask;
        /* a repeated pair keeps its last rank, as HF's HashMap does */
        h->merges[k] = (hf_merge){ia, ib, (uint32_t)r, ic};
    }
    free(cat);
    return TOKMARK_OK;
}

static int normalize(const tm_hf *h, tm_hf_scratch *s, const uint8_t *p, size_t n, const uint8_t **out, size_t *on);

/* Added tokens.  Their ids are assigned as HF's AddedVocabulary::add_tokens
 * does when it reads a file (the "id" fields are not used): the id of the same
 * content among earlier added tokens or in the model's vocab; otherwise the
 * largest added id + 1 when that is at least the number of vocab entries,
 * else that number. */
/* What an added token decodes to, as HF's decoders treat its content (a
 * token string like any other): ByteLevel maps each character back to its
 * byte when all are in the byte-level alphabet (else the content is kept);
 * SentencePiece-style, ByteFallback turns "<0xNN>" into its byte, else the
 * decoder's Replace applies; no decoder: the content. */
static int added_decoded(const tm_hf *h, const int16_t cp_to_byte[512], hf_added *a) {
    size_t grow = h->dec_al > 0 && h->dec_bl > h->dec_al ? h->dec_bl : 1;
    a->dec = (uint8_t *)malloc(a->clen * grow + 1);
    if (a->dec == NULL) return TOKMARK_ERR_NOMEM;
    const char *c = (const char *)a->content;
    size_t n = a->clen, o = 0;
    long bl = -1;
    if (!h->sp && h->dec_bytelevel) bl = unmap(cp_to_byte, a->content, n, a->dec);
    if (bl >= 0) o = (size_t)bl;
    else if (h->sp && h->dec_bytefallback && n == 6 && memcmp(c, "<0x", 3) == 0 && c[5] == '>' &&
             hexdig(c[3]) >= 0 && hexdig(c[4]) >= 0)
        a->dec[o++] = (uint8_t)(hexdig(c[3]) << 4 | hexdig(c[4]));
    else
        for (size_t i = 0; i < n;) {
            if (h->sp && h->dec_al > 0 && i + h->dec_al <= n && memcmp(c + i, h->dec_a, h->dec_al) == 0) {
                memcpy(a->dec + o, h->dec_b, h->dec_bl);
                o += h->dec_bl;
                i += h->dec_al;
            } else
                a->dec[o++] = (uint8_t)c[i++];
        }
    a->dlen = o;
    return TOKMARK_OK;
}

static int parse_added(tokmark_tokenizer *t, tm_hf *h, json_t *arr, json_t *vocab, tm_hf_scratch *scratch,
                       const int16_t cp_to_byte[512]) {
    if (arr == NULL || json_is_null(arr)) return TOKMARK_OK;
    if (!json_is_array(arr)) return TOKMARK_ERR_FORMAT;
    size_t n = json_array_size(arr);
    h->added = (hf_added *)calloc(n + 1, sizeof *h->added);
    if (h->added == NULL) return TOKMARK_ERR_NOMEM;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        json_t *c = json_object_get(v, "content"), *id = json_object_get(v, "id");
        if (!json_is_string(c) || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= (json_int_t)INT32_MAX || json_string_length(c) == 0)
            return TOKMARK_ERR_FORMAT;
        hf_added *a = &h->added[h->n_added];
        a->clen = json_string_length(c);
        int64_t nid = -1, max_added = -1;
        json_t *vv = json_object_getn(vocab, json_string_value(c), a->clen);
        for (size_t j = 0; j < h->n_added; j++) {
            if (h->added[j].clen == a->clen && memcmp(h->added[j].content, json_string_value(c), a->clen) == 0)
                nid = h->added[j].id;
            if (h->added[j].id > max_added) max_added = h->added[j].id;
        }
        if (nid < 0 && json_is_integer(vv)) nid = json_integer_value(vv);
        if (nid < 0) {
            int64_t vs = (int64_t)json_object_size(vocab);
            nid = max_added >= vs ? max_added + 1 : vs;
        }
        if (nid >= INT32_MAX) return TOKMARK_ERR_FORMAT;
        a->content = (uint8_t *)malloc(a->clen);
        if (a->content == NULL) return TOKMARK_ERR_NOMEM;
        h->n_added++;
        memcpy(a->content, json_string_value(c), a->clen);
        a->id = (int32_t)nid;
        a->special = json_flag(v, "special", 0);
        a->normalized = json_flag(v, "normalized", !a->special);
        a->lstrip = json_flag(v, "lstrip", 0);
        a->rstrip = json_flag(v, "rstrip", 0);
        a->single_word = json_flag(v, "single_word", 0);
        int rc0;
        /* a normalized token is matched in normalized text, as its normalized content */
        const uint8_t *np = a->content;
        size_t nn = a->clen;
        if (a->normalized && h->n_norm > 0) {
            int rc = normalize(h, scratch, a->content, a->clen, &np, &nn);
            if (rc != TOKMARK_OK) return rc;
        }
        if (nn == 0) /* HF would match the empty string everywhere */
            return unsupported("added_tokens: a normalized token that the normalizer makes empty");
        rc0 = added_decoded(h, cp_to_byte, a);
        if (rc0 != TOKMARK_OK) return rc0;
        a->len = nn;
        a->text = (uint8_t *)malloc(nn + 1);
        if (a->text == NULL) return TOKMARK_ERR_NOMEM;
        memcpy(a->text, np, nn);
        for (int all = 0; all < 2; all++)
            if (all || !a->special) h->first_byte[all][a->text[0] >> 3] |= (uint8_t)(1u << (a->text[0] & 7));
        if ((uint32_t)a->id + 1 > t->n_vocab) t->n_vocab = (uint32_t)a->id + 1;
    }
    return TOKMARK_OK;
}

static void name_from_path(char *out, size_t size, const char *path) {
    const char *b = strrchr(path, '/');
    b = b != NULL ? b + 1 : path;
    size_t n = strcspn(b, ".");
    if (n == 0) {
        b = "tokenizer";
        n = strlen(b);
    }
    if (n >= size) n = size - 1;
    for (size_t i = 0; i < n; i++) out[i] = (b[i] > ' ' && b[i] < 127) ? b[i] : '_';
    out[n] = '\0';
}

int tm_hf_load(tokmark_tokenizer **out, const char *path, const uint8_t *data, size_t len, size_t *errline) {
    hf_what = NULL;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (errline != NULL) *errline = jerr.line > 0 ? (size_t)jerr.line : 0;
        return TOKMARK_ERR_FORMAT;
    }
    int rc = TOKMARK_OK;
    tokmark_tokenizer *t = (tokmark_tokenizer *)calloc(1, sizeof *t);
    tm_hf *h = (tm_hf *)calloc(1, sizeof *h);
    if (t == NULL || h == NULL) {
        free(t);
        free(h);
        json_decref(root);
        return TOKMARK_ERR_NOMEM;
    }
    t->hf = h;
    name_from_path(h->name, sizeof h->name, path);
    uint16_t byte_to_cp[256];
    int16_t cp_to_byte[512];
    byte_alphabet(byte_to_cp, cp_to_byte);
    json_t *v;
    if (!json_is_object(root)) rc = TOKMARK_ERR_FORMAT;
    if (rc == TOKMARK_OK && (v = json_object_get(root, "pre_tokenizer")) != NULL && !json_is_null(v))
        rc = parse_pretok(h, v);
    size_t nbl = 0, nsplit = 0;
    for (size_t i = 0; i < h->n_steps; i++) {
        nbl += h->steps[i].kind == STEP_BYTELEVEL;
        nsplit += h->steps[i].kind == STEP_SPLIT;
    }
    json_t *norm = json_object_get(root, "normalizer");
    if (norm != NULL && json_is_null(norm)) norm = NULL;
    h->sp = nbl == 0;
    if (rc == TOKMARK_OK && norm != NULL) rc = parse_normalizer(h, norm);
    if (rc == TOKMARK_OK && !h->sp) {
        /* byte-level: exactly one ByteLevel, last, no Metaspace */
        if (nbl != 1 || h->steps[h->n_steps - 1].kind != STEP_BYTELEVEL || h->ms)
            rc = unsupported("pre_tokenizer without a final ByteLevel (only byte-level BPE is supported)");
        else if ((v = json_object_get(root, "decoder")) != NULL && !json_is_null(v)) {
            const char *dt = json_string_value(json_object_get(v, "type"));
            if (dt == NULL || strcmp(dt, "ByteLevel") != 0) rc = unsupported("decoder (only ByteLevel)");
            h->dec_bytelevel = 1;
        }
    } else if (rc == TOKMARK_OK) {
        /* SentencePiece-style: Prepend/Replace normalizer and/or one Metaspace */
        if (nsplit > 0) rc = unsupported("pre_tokenizer Split without ByteLevel");
        else if (norm == NULL && !h->ms)
            rc = unsupported("pre_tokenizer null without a normalizer (neither byte-level nor SentencePiece-style)");
        if (rc == TOKMARK_OK && (v = json_object_get(root, "decoder")) != NULL && !json_is_null(v))
            rc = parse_decoder_sp(h, v);
    }
    if (rc == TOKMARK_OK) {
        v = json_object_get(root, "model");
        rc = json_is_object(v) ? parse_model(t, h, v, cp_to_byte) : TOKMARK_ERR_FORMAT;
    }
    if (rc == TOKMARK_OK) {
        t->n_vocab = t->n_ranks;
        tm_hf_scratch scratch;
        memset(&scratch, 0, sizeof scratch);
        rc = parse_added(t, h, json_object_get(root, "added_tokens"), json_object_get(v, "vocab"), &scratch,
                         cp_to_byte);
        tm_hf_scratch_free(&scratch);
    }
    for (size_t i = 0; i < h->n_steps; i++) t->jit |= h->steps[i].jit;
    json_decref(root);
    if (rc != TOKMARK_OK) {
        tokmark_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return TOKMARK_OK;
}

const char *tm_hf_name(const tm_hf *h) { return h->name; }

const uint8_t *tm_hf_added_bytes(const tm_hf *h, int32_t id, size_t *len) {
    for (size_t i = 0; i < h->n_added; i++)
        if (h->added[i].id == id) {
            *len = h->added[i].dlen;
            return h->added[i].dec;
        }
    return NULL;
}

/* ---- encoding ---- */

void tm_hf_scratch_free(tm_hf_scratch *s) {
    free(s->buf);
    free(s->pre);
    for (int k = 0; k < 4; k++) free(s->norm[k]);
    free(s->u32);
    free(s->pcache);
    memset(s, 0, sizeof *s);
}

static int bpe_reserve(tm_hf_scratch *s, size_t n);
#define HF_LINEAR_MAX 48 /* BPE of at most this many symbols scans linearly */

/* A direct-mapped cache of short pieces and their ids, per encoder (as
 * tiktoken.c's): words recur, and a hit replaces the vocabulary lookups and
 * BPE.  It only remembers what BPE computed for the same bytes (BPE of a
 * piece depends on nothing else), so the ids are unchanged. */
#define HF_PCACHE_SIZE 2048u
#define HF_PCACHE_LEN 14u
#define HF_PCACHE_IDS 4u
typedef struct hf_pcache_entry {
    int32_t ids[HF_PCACHE_IDS];
    uint8_t len; /* 0: empty */
    uint8_t nids;
    uint8_t bytes[HF_PCACHE_LEN];
} hf_pcache_entry;
struct tm_hf_pcache {
    hf_pcache_entry e[HF_PCACHE_SIZE];
};

/* The cache slot of p[0..n) (n <= HF_PCACHE_LEN), or NULL without a cache. */
static hf_pcache_entry *pcache_slot(tm_hf_scratch *s, const uint8_t *p, size_t n) {
    if (s->pcache == NULL && (s->pcache = (struct tm_hf_pcache *)calloc(1, sizeof *s->pcache)) == NULL) return NULL;
    uint8_t w[16] = {0};
    memcpy(w, p, n);
    uint64_t a = 0, b = 0;
    for (int k = 0; k < 8; k++) a |= (uint64_t)w[k] << (8 * k), b |= (uint64_t)w[8 + k] << (8 * k);
    uint64_t h = (a * 0x9E3779B97F4A7C15ull) ^ ((b + n) * 0xC2B2AE3D27D4EB4Full);
    return &s->pcache->e[(h >> 40) & (HF_PCACHE_SIZE - 1)];
}

static int pcache_hit(const hf_pcache_entry *ce, const uint8_t *p, size_t n, tm_tok_out *o) {
    if (ce == NULL || ce->len != n || memcmp(ce->bytes, p, n) != 0) return 0;
    for (uint32_t k = 0; k < ce->nids; k++) tm_tok_emit(o, (uint32_t)ce->ids[k]);
    return 1;
}

static void pcache_put(hf_pcache_entry *ce, const uint8_t *p, size_t n, const tm_tok_out *o, size_t n0) {
    if (ce == NULL || o->ids == NULL || o->n - n0 > HF_PCACHE_IDS || o->n > o->cap) return; /* not all written */
    ce->len = (uint8_t)n;
    ce->nids = (uint8_t)(o->n - n0);
    memcpy(ce->bytes, p, n);
    memcpy(ce->ids, o->ids + n0, (o->n - n0) * sizeof *ce->ids);
}
static void bpe_merge(const tm_hf *h, tm_hf_scratch *s, uint32_t N, tm_tok_out *o);

/* BPE of one piece by merge rank (HF Word::merge_all), appended to o. */
static int hf_bpe(const tokmark_tokenizer *t, const uint8_t *p, size_t n, tm_hf_scratch *s, tm_tok_out *o) {
    const tm_hf *h = t->hf;
    if (n == 1) {
        tm_tok_emit(o, t->byte_rank[p[0]]);
        return TOKMARK_OK;
    }
    if (h->ignore_merges) {
        uint32_t r = tm_tok_rank(t, p, n);
        if (r != TM_NO_RANK) {
            tm_tok_emit(o, r);
            return TOKMARK_OK;
        }
    }
    hf_pcache_entry *ce = n <= HF_PCACHE_LEN ? pcache_slot(s, p, n) : NULL;
    if (pcache_hit(ce, p, n, o)) return TOKMARK_OK;
    size_t n0 = o->n;
    int rc = bpe_reserve(s, n);
    if (rc != TOKMARK_OK) return rc;
    uint32_t *id = (uint32_t *)(void *)(s->buf + 4 * s->size) + 2 * s->size;
    for (size_t i = 0; i < n; i++) id[i] = t->byte_rank[p[i]];
    bpe_merge(h, s, (uint32_t)n, o);
    pcache_put(ce, p, n, o, n0);
    return TOKMARK_OK;
}

/* Scratch for BPE of up to n symbols. */
static int bpe_reserve(tm_hf_scratch *s, size_t n) {
    if (n >= UINT32_MAX / 2) return TOKMARK_ERR_INVALID;
    if (s->size < n) {
        size_t want = n < 256 ? 256 : n;
        if (want > SIZE_MAX / 48) return TOKMARK_ERR_NOMEM;
        uint64_t *b = (uint64_t *)malloc(want * 48);
        if (b == NULL) return TOKMARK_ERR_NOMEM;
        free(s->buf);
        s->buf = b;
        s->size = want;
    }
    return TOKMARK_OK;
}

/* Merge the N symbols whose ids the caller put in the id array of s (see
 * below) by merge rank, leftmost on ties (HF Word::merge_all); emit them. */
static void bpe_merge(const tm_hf *h, tm_hf_scratch *s, uint32_t N, tm_tok_out *o) {
    if (N <= HF_LINEAR_MAX) { /* few symbols: a linear scan per merge (the same merges, in the same order) */
        uint32_t *lid = (uint32_t *)(void *)(s->buf + 4 * s->size) + 2 * s->size;
        const hf_merge *lm[HF_LINEAR_MAX];
        uint32_t m = N;
        for (uint32_t i = 0; i + 1 < m; i++) lm[i] = merge_find(h, lid[i], lid[i + 1]);
        for (;;) {
            uint32_t best = TM_NO_RANK, bi = 0;
            for (uint32_t i = 0; i + 1 < m; i++)
                if (lm[i] != NULL && lm[i]->rank < best) {
                    best = lm[i]->rank;
                    bi = i;
                }
            if (best == TM_NO_RANK) break;
            lid[bi] = lm[bi]->id;
            memmove(lid + bi + 1, lid + bi + 2, (m - bi - 2) * sizeof lid[0]);
            if (bi + 2 < m) memmove(lm + bi + 1, lm + bi + 2, (m - bi - 3) * sizeof lm[0]);
            m--;
            if (bi + 1 < m) lm[bi] = merge_find(h, lid[bi], lid[bi + 1]);
            if (bi > 0) lm[bi - 1] = merge_find(h, lid[bi - 1], lid[bi]);
        }
        for (uint32_t i = 0; i < m; i++) tm_tok_emit(o, lid[i]);
        return;
    }
    /* heap: 4n entries of (rank << 32 | position); then nxt, prv, id, rk (n each) */
    uint64_t *hp = s->buf;
    uint32_t *nxt = (uint32_t *)(void *)(s->buf + 4 * s->size), *prv = nxt + s->size, *id = prv + s->size,
             *rk = id + s->size;
    size_t len = 0;
    for (uint32_t i = 0; i < N; i++) {
        nxt[i] = i + 1;
        prv[i] = i == 0 ? TM_NO_RANK : i - 1;
    }
    for (uint32_t i = 0; i < N; i++) {
        const hf_merge *m = i + 1 < N ? merge_find(h, id[i], id[i + 1]) : NULL;
        rk[i] = m != NULL ? m->rank : TM_NO_RANK;
        if (m != NULL) hp[len++] = (uint64_t)m->rank << 32 | i;
    }
    /* binary heap, built bottom-up */
#define HP_DOWN(k0)                                                                                    \
    do {                                                                                               \
        size_t k_ = (k0);                                                                              \
        uint64_t x_ = hp[k_];                                                                          \
        for (;;) {                                                                                     \
            size_t c_ = 2 * k_ + 1;                                                                    \
            if (c_ >= len) break;                                                                      \
            if (c_ + 1 < len && hp[c_ + 1] < hp[c_]) c_++;                                             \
            if (hp[c_] >= x_) break;                                                                   \
            hp[k_] = hp[c_];                                                                           \
            k_ = c_;                                                                                   \
        }                                                                                              \
        hp[k_] = x_;                                                                                   \
    } while (0)
#define HP_PUSH(key)                                                                                   \
    do {                                                                                               \
        size_t k_ = len++;                                                                             \
        uint64_t x_ = (key);                                                                           \
        while (k_ > 0 && hp[(k_ - 1) / 2] > x_) {                                                      \
            hp[k_] = hp[(k_ - 1) / 2];                                                                 \
            k_ = (k_ - 1) / 2;                                                                         \
        }                                                                                              \
        hp[k_] = x_;                                                                                   \
    } while (0)
    for (size_t k = len / 2 + 1; k-- > 0;)
        if (k < len) HP_DOWN(k);
    while (len > 0) {
        uint64_t top = hp[0];
        hp[0] = hp[--len];
        if (len > 0) HP_DOWN(0);
        uint32_t a = (uint32_t)top;
        if (rk[a] != (uint32_t)(top >> 32)) continue; /* stale (see bpe.c: spans only grow) */
        uint32_t b = nxt[a], c = nxt[b];
        const hf_merge *m = merge_find(h, id[a], id[b]);
        id[a] = m->id;
        rk[b] = TM_NO_RANK;
        nxt[a] = c;
        if (c < N) prv[c] = a;
        if (len + 2 > 4 * s->size) { /* drop stale entries; at most n are live */
            size_t w = 0;
            for (size_t i = 0; i < len; i++)
                if (rk[(uint32_t)hp[i]] == (uint32_t)(hp[i] >> 32)) hp[w++] = hp[i];
            len = w;
            for (size_t k = len / 2 + 1; k-- > 0;)
                if (k < len) HP_DOWN(k);
        }
        m = c < N ? merge_find(h, id[a], id[c]) : NULL;
        rk[a] = m != NULL ? m->rank : TM_NO_RANK;
        if (m != NULL) HP_PUSH((uint64_t)m->rank << 32 | a);
        uint32_t l = prv[a];
        if (l != TM_NO_RANK) {
            m = merge_find(h, id[l], id[a]);
            rk[l] = m != NULL ? m->rank : TM_NO_RANK;
            if (m != NULL) HP_PUSH((uint64_t)m->rank << 32 | l);
        }
    }
#undef HP_DOWN
#undef HP_PUSH
    for (uint32_t i = 0; i < N; i = nxt[i]) tm_tok_emit(o, id[i]);
}

typedef struct hf_ctx {
    const tokmark_tokenizer *t;
    tm_hf_scratch *s;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    tm_tok_out *o;
} hf_ctx;

static int run_step(hf_ctx *c, size_t k, const uint8_t *p, size_t n);

/* Split p[0..n) with re (behavior Isolated: matches and the gaps between
 * them are pieces; empty pieces are dropped), each piece to step k. */
static int split_isolated(hf_ctx *c, const hf_step *st, size_t k, const uint8_t *p, size_t n) {
    size_t gap = 0, off = 0;
    while (off <= n) {
        int rc = st->jit ? pcre2_jit_match(st->re, p, n, off, 0, c->md, c->mc)
                         : pcre2_match(st->re, p, n, off, PCRE2_NO_UTF_CHECK, c->md, c->mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_JIT_STACKLIMIT ? TOKMARK_ERR_NOMEM
                                                                                         : TOKMARK_ERR_UNSUPPORTED;
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (me > ms) {
            if (ms > gap && (rc = run_step(c, k, p + gap, ms - gap)) != TOKMARK_OK) return rc;
            if ((rc = run_step(c, k, p + ms, me - ms)) != TOKMARK_OK) return rc;
            gap = off = me;
        } else { /* empty match: move on by one character */
            if (me >= n) break;
            off = me + 1;
            while (off < n && (p[off] & 0xC0) == 0x80) off++;
        }
    }
    if (n > gap) return run_step(c, k, p + gap, n - gap);
    return TOKMARK_OK;
}

static int run_step(hf_ctx *c, size_t k, const uint8_t *p, size_t n) {
    const tm_hf *h = c->t->hf;
    if (k == h->n_steps) return hf_bpe(c->t, p, n, c->s, c->o);
    const hf_step *st = &h->steps[k];
    if (st->kind == STEP_SPLIT) return split_isolated(c, st, k + 1, p, n);
    /* ByteLevel (always the last step) */
    if (st->prefix_space && p[0] != ' ') {
        if (n + 1 > c->s->pre_cap) {
            size_t want = 2 * (n + 1);
            uint8_t *nb = (uint8_t *)realloc(c->s->pre, want);
            if (nb == NULL) return TOKMARK_ERR_NOMEM;
            c->s->pre = nb;
            c->s->pre_cap = want;
        }
        c->s->pre[0] = ' ';
        memcpy(c->s->pre + 1, p, n);
        p = c->s->pre;
        n++;
    }
    if (st->re != NULL) return split_isolated(c, st, k + 1, p, n);
    return run_step(c, k + 1, p, n);
}

/* ---- SentencePiece-style (SPEC.md §9.9) ---- */

static int norm_reserve(tm_hf_scratch *s, int k, size_t n) {
    if (s->norm_cap[k] >= n) return TOKMARK_OK;
    size_t want = n < 256 ? 256 : 2 * n;
    uint8_t *b = (uint8_t *)realloc(s->norm[k], want);
    if (b == NULL) return TOKMARK_ERR_NOMEM;
    s->norm[k] = b;
    s->norm_cap[k] = want;
    return TOKMARK_OK;
}

/* Replace every non-overlapping occurrence of a (leftmost first) in p[0..n)
 * by b, into scratch buffer k; *out / *on receive the result. */
/* The first occurrence of a[0..al) in p[from..n), or n. */
static size_t find_lit(const uint8_t *p, size_t n, size_t from, const char *a, size_t al) {
    while (from + al <= n) {
        const uint8_t *q = (const uint8_t *)memchr(p + from, (unsigned char)a[0], n - al + 1 - from);
        if (q == NULL) break;
        size_t i = (size_t)(q - p);
        if (memcmp(q + 1, a + 1, al - 1) == 0) return i;
        from = i + 1;
    }
    return n;
}

static int replace_into(tm_hf_scratch *s, int k, const uint8_t *p, size_t n, const char *a, size_t al,
                        const char *b, size_t bl, const uint8_t **out, size_t *on) {
    size_t cnt = 0;
    for (size_t i = find_lit(p, n, 0, a, al); i < n; i = find_lit(p, n, i + al, a, al)) cnt++;
    if (cnt == 0) {
        *out = p;
        *on = n;
        return TOKMARK_OK;
    }
    if (bl > al && cnt > (SIZE_MAX - n) / (bl - al)) return TOKMARK_ERR_NOMEM;
    size_t nn = n - cnt * al + cnt * bl;
    int rc = norm_reserve(s, k, nn);
    if (rc != TOKMARK_OK) return rc;
    uint8_t *d = s->norm[k];
    size_t o = 0, prev = 0;
    for (size_t i = find_lit(p, n, 0, a, al); i < n; i = find_lit(p, n, i + al, a, al)) {
        memcpy(d + o, p + prev, i - prev);
        o += i - prev;
        memcpy(d + o, b, bl);
        o += bl;
        prev = i + al;
    }
    memcpy(d + o, p + prev, n - prev);
    o += n - prev;
    *out = d;
    *on = o;
    return TOKMARK_OK;
}

static int prepend_into(tm_hf_scratch *s, int k, const uint8_t *p, size_t n, const char *a, size_t al,
                        const uint8_t **out, size_t *on) {
    if (n > SIZE_MAX - al) return TOKMARK_ERR_NOMEM;
    int rc = norm_reserve(s, k, n + al);
    if (rc != TOKMARK_OK) return rc;
    memmove(s->norm[k] + al, p, n); /* p may be this very buffer */
    memcpy(s->norm[k], a, al);
    *out = s->norm[k];
    *on = n + al;
    return TOKMARK_OK;
}

/* Model BPE on one piece: characters by the vocab, else their <0xNN> byte
 * tokens (byte_fallback), else the unknown token (fused when fuse_unk);
 * then merges (HF BPE::merge_word). */
static int sp_word(hf_ctx *c, const uint8_t *p, size_t n) {
    const tm_hf *h = c->t->hf;
    if (n == 0) return TOKMARK_OK;
    if (h->ignore_merges) {
        uint32_t r = tm_tok_rank(&h->raw, p, n);
        if (r != TM_NO_RANK) {
            tm_tok_emit(c->o, r);
            return TOKMARK_OK;
        }
    }
    hf_pcache_entry *ce = n <= HF_PCACHE_LEN ? pcache_slot(c->s, p, n) : NULL;
    if (pcache_hit(ce, p, n, c->o)) return TOKMARK_OK;
    size_t n0 = c->o->n;
    int rc = bpe_reserve(c->s, n);
    if (rc != TOKMARK_OK) return rc;
    tm_hf_scratch *s = c->s;
    uint32_t *id = (uint32_t *)(void *)(s->buf + 4 * s->size) + 2 * s->size;
    uint32_t N = 0;
    int unk_open = 0; /* an unknown token not yet added */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        (void)utf8_next(p, n, &j);
        uint32_t r = tm_tok_rank(&h->raw, p + i, j - i);
        if (r != TM_NO_RANK) {
            if (unk_open) id[N++] = (uint32_t)h->unk_id;
            unk_open = 0;
            id[N++] = r;
        } else {
            int done = 0;
            if (h->byte_fallback) {
                size_t k = i;
                while (k < j && h->byte_tok[p[k]] >= 0) k++;
                if (k == j) { /* every byte has its token (a pending unknown stays pending, as in HF) */
                    for (k = i; k < j; k++) id[N++] = (uint32_t)h->byte_tok[p[k]];
                    done = 1;
                }
            }
            if (!done && h->unk_id >= 0) {
                if (unk_open && !h->fuse_unk) id[N++] = (uint32_t)h->unk_id;
                unk_open = 1;
            }
            /* no byte token and no unk_token: the character is dropped, as in HF */
        }
        i = j;
    }
    if (unk_open) id[N++] = (uint32_t)h->unk_id;
    if (N > 0) bpe_merge(h, s, N, c->o);
    pcache_put(ce, p, n, c->o, n0);
    return TOKMARK_OK;
}

/* A piece of SentencePiece-style BPE.  Without a pre-tokenizer (Llama 2,
 * Mistral) a piece is the whole text between added tokens, and one BPE over
 * megabytes is slow (a large heap, cache misses).  When no merge joins a part
 * that ends in a character other than U+2581 to a part that starts with
 * U+2581, and U+2581 is a vocabulary token (so no unknown-token run spans it),
 * no merge can cross the start of a run of U+2581: BPE of the piece is then
 * the concatenation of BPE of its parts cut there (the merges inside each
 * part happen in the same relative order), which is what this computes for
 * long pieces (SPEC.md §9.9, same ids). */
static int sp_piece(hf_ctx *c, const uint8_t *p, size_t n) {
    const tm_hf *h = c->t->hf;
    if (!h->sp_chunk || n <= 256) return sp_word(c, p, n);
    size_t start = 0;
    for (size_t i = 1; i + 3 <= n; i++)
        if (p[i] == 0xE2 && p[i + 1] == 0x96 && p[i + 2] == 0x81 &&
            !(i >= 3 && p[i - 3] == 0xE2 && p[i - 2] == 0x96 && p[i - 1] == 0x81)) {
            int rc = sp_word(c, p + start, i - start);
            if (rc != TOKMARK_OK) return rc;
            start = i;
            i += 2;
        }
    return sp_word(c, p + start, n - start);
}

/* ---- normalizers (SPEC.md §9.10) ---- */

/* Code points that utf8proc (Unicode 15.0 in 2.8.0) normalizes but the
 * reference's tables (Unicode 9.0, crate unicode-normalization-alignments)
 * do not know: characters assigned in Unicode 10.0-15.0 that have a
 * decomposition, a non-zero canonical combining class or take part in a
 * composition.  For the reference they are starters without a decomposition
 * that compose with nothing, so text is normalized in runs between them and
 * they are copied as they are.  Found by comparing utf8proc with the reference
 * on every code point (alone, and between U+0301 and U+0316 to reveal the
 * combining class); tests/test_tokenizer_hf.c checks every code point against
 * the reference's digests in testvectors/tokenizer/hf-normalizers.txt. */
static const uint32_t UNI9_OPAQUE[][2] = {
    {0x7FD, 0x7FD},     {0x898, 0x89F},     {0x8CA, 0x8D3},     {0x9FE, 0x9FE},     {0xC3C, 0xC3C},
    {0xD3B, 0xD3C},     {0xEBA, 0xEBA},     {0x1715, 0x1715},   {0x1ABF, 0x1ACE},   {0x1DF6, 0x1DFA},
    {0x32FF, 0x32FF},   {0xA7F2, 0xA7F4},   {0xA82C, 0xA82C},   {0xAB69, 0xAB69},   {0x10781, 0x10785},
    {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF},
    {0x10F46, 0x10F50}, {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x1145E, 0x1145E},
    {0x11839, 0x1183A}, {0x11930, 0x11930}, {0x11935, 0x11935}, {0x11938, 0x11938}, {0x1193D, 0x1193E},
    {0x11943, 0x11943}, {0x119E0, 0x119E0}, {0x11A34, 0x11A34}, {0x11A47, 0x11A47}, {0x11A99, 0x11A99},
    {0x11D42, 0x11D42}, {0x11D44, 0x11D45}, {0x11D97, 0x11D97}, {0x11F41, 0x11F42}, {0x16FF0, 0x16FF1},
    {0x1E030, 0x1E06D}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF},
    {0x1E4EC, 0x1E4EF}, {0x1F16C, 0x1F16C}, {0x1FBF0, 0x1FBF9},
};

static int uni9_opaque(uint32_t cp) {
    if (cp < 0x7FD) return 0;
    size_t lo = 0, hi = sizeof UNI9_OPAQUE / sizeof UNI9_OPAQUE[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < UNI9_OPAQUE[mid][0]) hi = mid;
        else if (cp > UNI9_OPAQUE[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

/* Lowercase as Rust's char::to_lowercase (the reference; Unicode 16.0):
 * utf8proc's simple mapping, except U+0130 (to "i" U+0307, SpecialCasing)
 * and the mappings Unicode 16.0 added (utf8proc 2.8.0 has 15.0). */
static const uint32_t LOWER16[][3] = { /* first, last, lowercase of first (consecutive) */
    {0x1C89, 0x1C89, 0x1C8A}, {0xA7CB, 0xA7CB, 0x264},   {0xA7CC, 0xA7CC, 0xA7CD}, {0xA7CE, 0xA7CE, 0xA7CF},
    {0xA7D2, 0xA7D2, 0xA7D3}, {0xA7D4, 0xA7D4, 0xA7D5}, {0xA7DA, 0xA7DA, 0xA7DB}, {0xA7DC, 0xA7DC, 0x19B},
    {0x10D50, 0x10D65, 0x10D70}, {0x16EA0, 0x16EB8, 0x16EBB},
};

static uint32_t lower_cp(uint32_t cp) {
    for (size_t i = 0; i < sizeof LOWER16 / sizeof LOWER16[0]; i++)
        if (cp >= LOWER16[i][0] && cp <= LOWER16[i][1]) return LOWER16[i][2] + (cp - LOWER16[i][0]);
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
}

static int is_ascii(const uint8_t *p, size_t n) {
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc < 0x80;
}

static size_t put_utf8(uint8_t *d, uint32_t cp) {
    return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, d);
}

/* One run of text (no opaque code point) normalized by utf8proc, appended
 * to scratch buffer k at *o (which grows as needed). */
static int nf_run(tm_hf_scratch *s, int k, const uint8_t *p, size_t n, utf8proc_option_t opts, size_t *o) {
    if (is_ascii(p, n)) { /* every normal form of ASCII is itself */
        int rc = norm_reserve(s, k, *o + n);
        if (rc != TOKMARK_OK) return rc;
        memcpy(s->norm[k] + *o, p, n);
        *o += n;
        return TOKMARK_OK;
    }
    for (;;) {
        utf8proc_ssize_t m = 0;
        if (s->u32_cap > 0)
            m = utf8proc_decompose(p, (utf8proc_ssize_t)n, s->u32, (utf8proc_ssize_t)s->u32_cap, opts);
        if (m < 0) return TOKMARK_ERR_INVALID; /* not well-formed: cannot happen (validated before) */
        if (s->u32_cap > 0 && (size_t)m <= s->u32_cap) {
            m = utf8proc_normalize_utf32(s->u32, m, opts);
            if (m < 0) return TOKMARK_ERR_INVALID;
            if ((size_t)m > (SIZE_MAX - *o) / 4) return TOKMARK_ERR_NOMEM;
            int rc = norm_reserve(s, k, *o + 4 * (size_t)m);
            if (rc != TOKMARK_OK) return rc;
            for (utf8proc_ssize_t i = 0; i < m; i++) *o += put_utf8(s->norm[k] + *o, (uint32_t)s->u32[i]);
            return TOKMARK_OK;
        }
        size_t want = s->u32_cap > (size_t)m ? s->u32_cap : (size_t)m;
        want = want < n + 64 ? n + 64 : want;
        if (want > SIZE_MAX / sizeof(int32_t)) return TOKMARK_ERR_NOMEM;
        int32_t *nb = (int32_t *)realloc(s->u32, want * sizeof *nb);
        if (nb == NULL) return TOKMARK_ERR_NOMEM;
        s->u32 = nb;
        s->u32_cap = want;
    }
}

/* Normal form `kind` of p[0..n) into scratch buffer k (p is not in it). */
static int nf_into(tm_hf_scratch *s, int k, int kind, const uint8_t *p, size_t n, const uint8_t **out, size_t *on) {
    if (is_ascii(p, n)) {
        *out = p;
        *on = n;
        return TOKMARK_OK;
    }
    utf8proc_option_t opts = (utf8proc_option_t)(UTF8PROC_STABLE |
                                                 (kind == NORM_NFC || kind == NORM_NFKC ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
                                                 (kind == NORM_NFKC || kind == NORM_NFKD ? UTF8PROC_COMPAT : 0));
    size_t o = 0, run = 0;
    int rc = norm_reserve(s, k, n);
    for (size_t i = 0; i < n && rc == TOKMARK_OK;) {
        size_t j = i;
        uint32_t cp = utf8_next(p, n, &j);
        if (uni9_opaque(cp)) {
            if (run < i) rc = nf_run(s, k, p + run, i - run, opts, &o);
            if (rc == TOKMARK_OK) rc = norm_reserve(s, k, o + (j - i));
            if (rc == TOKMARK_OK) {
                memcpy(s->norm[k] + o, p + i, j - i);
                o += j - i;
            }
            run = j;
        }
        i = j;
    }
    if (rc == TOKMARK_OK && run < n) rc = nf_run(s, k, p + run, n - run, opts, &o);
    if (rc != TOKMARK_OK) return rc;
    *out = s->norm[k];
    *on = o;
    return TOKMARK_OK;
}

static int lower_into(tm_hf_scratch *s, int k, const uint8_t *p, size_t n, const uint8_t **out, size_t *on) {
    if (n > SIZE_MAX / 3) return TOKMARK_ERR_NOMEM;
    int rc = norm_reserve(s, k, 3 * n + 4); /* U+0130 (2 bytes) becomes 3; others at most 3/2 */
    if (rc != TOKMARK_OK) return rc;
    uint8_t *d = s->norm[k];
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) {
            d[o++] = (uint8_t)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
            i++;
            continue;
        }
        uint32_t cp = utf8_next(p, n, &i);
        if (cp == 0x130) {
            o += put_utf8(d + o, 'i');
            o += put_utf8(d + o, 0x307);
        } else
            o += put_utf8(d + o, lower_cp(cp));
    }
    *out = d;
    *on = o;
    return TOKMARK_OK;
}

/* Strip: White_Space (as \s of SPEC.md §9.3) from the ends, without copying. */
static void strip_ends(int left, int right, const uint8_t **pp, size_t *pn) {
    const uint8_t *p = *pp;
    size_t a = 0, b = *pn;
    if (left)
        while (a < b) {
            size_t j = a;
            if (!(tm_uc_class(utf8_next(p, b, &j)) & TM_UC_WS)) break;
            a = j;
        }
    if (right)
        while (b > a) {
            size_t st = b - 1;
            while (st > a && (p[st] & 0xC0) == 0x80) st--;
            size_t j = st;
            if (!(tm_uc_class(utf8_next(p, b, &j)) & TM_UC_WS)) break;
            b = st;
        }
    *pp = p + a;
    *pn = b - a;
}

/* The whole normalizer on p[0..n), in scratch buffers 0 and 1. */
static int normalize(const tm_hf *h, tm_hf_scratch *s, const uint8_t *p, size_t n, const uint8_t **out, size_t *on) {
    int k = 0, rc = TOKMARK_OK;
    for (size_t i = 0; i < h->n_norm && rc == TOKMARK_OK; i++) {
        const hf_norm *m = &h->norm[i];
        switch (m->kind) {
        case NORM_PREPEND:
            if (n > 0) rc = prepend_into(s, k, p, n, m->a, m->al, &p, &n);
            break;
        case NORM_REPLACE: rc = replace_into(s, k, p, n, m->a, m->al, m->b, m->bl, &p, &n); break;
        case NORM_LOWERCASE: rc = lower_into(s, k, p, n, &p, &n); break;
        case NORM_STRIP: strip_ends(m->left, m->right, &p, &n); break;
        default: rc = nf_into(s, k, m->kind, p, n, &p, &n); break;
        }
        if (p != NULL && p == s->norm[k]) k ^= 1; /* written into buffer k (Strip only moves p) */
    }
    *out = p;
    *on = n;
    return rc;
}

int tm_hf_normalize(const tokmark_tokenizer *t, tm_hf_scratch *s, const uint8_t *p, size_t n, const uint8_t **out,
                    size_t *on) {
    if (t->hf == NULL) return TOKMARK_ERR_INVALID;
    return normalize(t->hf, s, p, n, out, on);
}

/* One piece of normalized text between added tokens, SentencePiece-style:
 * Metaspace (its replacement, prepend scheme and split), then BPE of each
 * piece.  `first`: the text starts the input (prepend_scheme "first"). */
static int sp_segment(hf_ctx *c, const uint8_t *p, size_t n, int first) {
    const tm_hf *h = c->t->hf;
    int k = 2, rc = TOKMARK_OK;
    if (n == 0) return rc;
    if (!h->ms) return sp_piece(c, p, n);
    rc = replace_into(c->s, k, p, n, " ", 1, h->ms_rep, h->ms_rep_len, &p, &n);
    if (rc != TOKMARK_OK) return rc;
    if (p == c->s->norm[k]) k = 3;
    int starts = n >= h->ms_rep_len && memcmp(p, h->ms_rep, h->ms_rep_len) == 0;
    if (!starts && (h->ms_scheme == MS_ALWAYS || (h->ms_scheme == MS_FIRST && first))) {
        rc = prepend_into(c->s, k, p, n, h->ms_rep, h->ms_rep_len, &p, &n);
        if (rc != TOKMARK_OK) return rc;
    }
    if (!h->ms_split) return sp_piece(c, p, n);
    /* split, the replacement merged with what follows it */
    size_t start = 0;
    for (size_t i = 1; i + h->ms_rep_len <= n; i++)
        if (memcmp(p + i, h->ms_rep, h->ms_rep_len) == 0) {
            if ((rc = sp_piece(c, p + start, i - start)) != TOKMARK_OK) return rc;
            start = i;
            i += h->ms_rep_len - 1;
        }
    return sp_piece(c, p + start, n - start);
}

/* The leftmost-longest added token of `pass` (0: normalized == false,
 * 1: normalized == true) in s[from..end), special ones only when `all`. */
static const hf_added *next_added(const tm_hf *h, int pass, int all, const uint8_t *s, size_t from, size_t end,
                                  size_t *at) {
    const uint8_t *fb = h->first_byte[all];
    for (size_t i = from; i < end; i++) {
        if (!(fb[s[i] >> 3] & (1u << (s[i] & 7)))) continue;
        const hf_added *best = NULL;
        for (size_t j = 0; j < h->n_added; j++) {
            const hf_added *a = &h->added[j];
            if ((a->normalized != 0) != pass || (a->special && !all)) continue;
            if (a->len <= end - i && (best == NULL || a->len > best->len) && memcmp(s + i, a->text, a->len) == 0)
                best = a;
        }
        if (best != NULL) {
            *at = i;
            return best;
        }
    }
    return NULL;
}

/* \w of Rust's regex (single_word): Alphabetic, M, Nd, Pc, Join_Control;
 * Alphabetic as L, Nl and the Other_Alphabetic symbols (circled letters). */
static int word_char(uint32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 32) >= 'a' && (cp | 32) <= 'z') || cp == '_';
    if (cp == 0x200C || cp == 0x200D) return 1;
    if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
        (cp >= 0x1F170 && cp <= 0x1F189))
        return 1;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC: return 1;
    default: return 0;
    }
}

static size_t char_start_before(const uint8_t *s, size_t lo, size_t i) {
    size_t st = i - 1;
    while (st > lo && (s[st] & 0xC0) == 0x80) st--;
    return st;
}

static int is_ws_at(const uint8_t *s, size_t end, size_t i) {
    return (tm_uc_class(utf8_next(s, end, &i)) & TM_UC_WS) != 0;
}

static int gap_normalized(hf_ctx *c, int all, const uint8_t *s, size_t n, int first);

/* Split s[0..n) on the added tokens of `pass` as HF's
 * AddedVocabulary::find_matches (single_word, lstrip, rstrip); the text
 * between them goes on: pass 0 to the normalizer and pass 1, pass 1 to the
 * pre-tokenizer and the model.  `first`: s starts the input. */
static int split_added(hf_ctx *c, int pass, int all, const uint8_t *s, size_t n, int first) {
    const tm_hf *h = c->t->hf;
    size_t start_off = 0, pos = 0;
    int rc;
    while (pos < n && h->n_added > 0) {
        size_t at = 0;
        const hf_added *a = next_added(h, pass, all, s, pos, n, &at);
        if (a == NULL) break;
        size_t start = at, stop = at + a->len;
        pos = stop;
        if (a->single_word) {
            size_t j = start > 0 ? char_start_before(s, 0, start) : 0;
            int start_space = start == 0 || !word_char(utf8_next(s, n, &j));
            j = stop;
            int stop_space = stop == n || !word_char(utf8_next(s, n, &j));
            if (!start_space || !stop_space) continue; /* not a single word: text (its bytes are passed over) */
        }
        if (a->lstrip) {
            size_t ns = start;
            while (ns > start_off) {
                size_t st = char_start_before(s, 0, ns);
                if (!is_ws_at(s, n, st)) break;
                ns = st;
            }
            /* HF strips back over all white space, then not before the previous match */
            start = ns;
        }
        if (a->rstrip)
            while (stop < n && is_ws_at(s, n, stop)) {
                size_t j = stop;
                (void)utf8_next(s, n, &j);
                stop = j;
            }
        if (start_off < start) {
            rc = pass == 0 ? gap_normalized(c, all, s + start_off, start - start_off, first && start_off == 0)
                 : h->sp   ? sp_segment(c, s + start_off, start - start_off, first && start_off == 0)
                           : run_step(c, 0, s + start_off, start - start_off);
            if (rc != TOKMARK_OK) return rc;
        }
        tm_tok_emit(c->o, (uint32_t)a->id);
        start_off = pos = stop;
    }
    if (start_off < n) {
        rc = pass == 0 ? gap_normalized(c, all, s + start_off, n - start_off, first && start_off == 0)
             : h->sp   ? sp_segment(c, s + start_off, n - start_off, first && start_off == 0)
                       : run_step(c, 0, s + start_off, n - start_off);
        if (rc != TOKMARK_OK) return rc;
    }
    return TOKMARK_OK;
}

/* Text between non-normalized added tokens: normalized, then split on the
 * normalized added tokens. */
static int gap_normalized(hf_ctx *c, int all, const uint8_t *s, size_t n, int first) {
    const tm_hf *h = c->t->hf;
    if (h->n_norm > 0) {
        int rc = normalize(h, c->s, s, n, &s, &n);
        if (rc != TOKMARK_OK) return rc;
    }
    return split_added(c, 1, all, s, n, first);
}

int tm_hf_encode(const tokmark_tokenizer *t, tm_hf_scratch *s, pcre2_match_data *md, pcre2_match_context *mc,
                 const uint8_t *text, size_t len, unsigned flags, tm_tok_out *o) {
    hf_ctx c = {t, s, md, mc, o};
    return split_added(&c, 0, (flags & TOKMARK_ENCODE_ALLOW_SPECIAL) != 0, text, len, 1);
}
