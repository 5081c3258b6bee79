/* tiktoken.c — tiktoken encodings: rank files, split patterns (PCRE2 JIT),
 * special tokens, UTF-8 handling, encode and decode (SPEC.md §9). */
#include "tok/tok.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#ifndef TM_DATA_DIR_BUILD
#define TM_DATA_DIR_BUILD "data/tokenizers"
#endif
#ifndef TM_DATA_DIR_INSTALL
#define TM_DATA_DIR_INSTALL "/usr/local/share/tokmark/tokenizers"
#endif

/* ------------------------------------------------------------------------ */
/* The encodings (SPEC.md §9.2, §9.3)                                        */
/* ------------------------------------------------------------------------ */

/* Unicode White_Space, which is what \s means in tiktoken's regex engine
 * (Rust regex).  PCRE2's own \s under PCRE2_UCP also matches U+180E, so the
 * patterns spell the class out. */
#define WS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define S_ "[" WS "]"
#define NS_ "[^" WS "]"

#define PAT_R50K                                                                                   \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|" S_ "+(?!" NS_ ")|" S_ "+"
#define PAT_CL100K                                                                                 \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^" WS                 \
    "\\p{L}\\p{N}]+[\\r\\n]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"
#define PAT_O200K                                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"          \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"                                                                \
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"         \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"                                                                \
    "|\\p{N}{1,3}| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n/]*|" S_ "*[\\r\\n]+|" S_ "+(?!" NS_ ")|" S_ "+"

const tm_tok_spec tm_tok_specs[] = {
    {"cl100k_base", PAT_CL100K, "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7", 100256,
     100277, 5,
     {{"<|endoftext|>", 100257},
      {"<|fim_prefix|>", 100258},
      {"<|fim_middle|>", 100259},
      {"<|fim_suffix|>", 100260},
      {"<|endofprompt|>", 100276}}},
    {"o200k_base", PAT_O200K, "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d", 199998,
     200019, 2, {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}},
    {"p50k_base", PAT_R50K, "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069", 50280, 50281,
     1, {{"<|endoftext|>", 50256}}},
    {"r50k_base", PAT_R50K, "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930", 50256, 50257,
     1, {{"<|endoftext|>", 50256}}},
    {NULL, NULL, NULL, 0, 0, 0, {{NULL, 0}}},
};

const tm_tok_spec *tm_tok_spec_find(const char *name) {
    for (const tm_tok_spec *s = tm_tok_specs; s->name != NULL; s++)
        if (strcmp(s->name, name) == 0) return s;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

static int read_file(const char *path, uint8_t **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return TOKMARK_ERR_IO;
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = (uint8_t *)malloc(cap);
    if (buf == NULL) {
        fclose(f);
        return TOKMARK_ERR_NOMEM;
    }
    for (;;) {
        if (n == cap) {
            uint8_t *nb = (uint8_t *)realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return TOKMARK_ERR_NOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    int saved = errno;
    fclose(f);
    if (err) {
        free(buf);
        errno = saved;
        return TOKMARK_ERR_IO;
    }
    *out = buf;
    *len = n;
    return TOKMARK_OK;
}

static int b64_value(uint8_t c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 with '=' padding; returns the decoded length or -1. */
static long b64_decode(const uint8_t *s, size_t n, uint8_t *out) {
    if (n == 0 || n % 4 != 0) return -1;
    size_t pad = 0;
    if (s[n - 1] == '=') pad++;
    if (s[n - 2] == '=') pad++;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            if (i + 4 == n && k >= 4 - (int)pad) {
                v[k] = 0;
                continue;
            }
            v[k] = b64_value(s[i + (size_t)k]);
            if (v[k] < 0) return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t take = i + 4 == n ? 3 - pad : 3;
        if (take >= 1) out[o++] = (uint8_t)(w >> 16);
        if (take >= 2) out[o++] = (uint8_t)(w >> 8);
        if (take >= 3) out[o++] = (uint8_t)w;
    }
    return (long)o;
}

void tokmark_tokenizer_free(tokmark_tokenizer *t) {
    if (t == NULL) return;
    free(t->blob);
    free(t->tok_off);
    free(t->tok_len);
    free(t->slots);
    free(t->pair_rank);
    pcre2_code_free(t->re);
    tm_hf_free(t->hf);
    free(t);
}

#define TM_MAX_TOKEN_BYTES 65535u
#define TM_RANK_SLACK 65536u /* a rank file may leave at most this many ranks unused */

/* Parse a rank file.  On TOKMARK_ERR_FORMAT *errline is the 1-based line (0
 * when the fault is not on one line). */
static int parse_ranks(tokmark_tokenizer *t, const uint8_t *data, size_t len, size_t *errline) {
    size_t lines = 0;
    for (size_t i = 0; i < len;) {
        const uint8_t *nl = (const uint8_t *)memchr(data + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - data) : len;
        if (e > i) lines++;
        i = e + 1;
    }
    if (lines == 0 || lines > UINT32_MAX - TM_RANK_SLACK) return TOKMARK_ERR_FORMAT;
    uint64_t rank_limit = (uint64_t)lines + TM_RANK_SLACK;
    size_t slots = 1024;
    while (slots < 2 * lines) slots *= 2;
    t->slots = (uint64_t *)calloc(slots, sizeof *t->slots);
    t->mask = slots - 1;
    t->tok_off = (uint32_t *)calloc((size_t)rank_limit, sizeof *t->tok_off);
    t->tok_len = (uint32_t *)calloc((size_t)rank_limit, sizeof *t->tok_len);
    if (len > UINT32_MAX - TM_TOK_ID_BYTES * lines - 1) return TOKMARK_ERR_FORMAT; /* blob offsets are 32-bit */
    /* decoded tokens are shorter than their lines; each also has its id before it */
    t->blob = (uint8_t *)malloc(len + TM_TOK_ID_BYTES * lines + 1);
    if (t->slots == NULL || t->tok_off == NULL || t->tok_len == NULL || t->blob == NULL) return TOKMARK_ERR_NOMEM;
    size_t used = 0, lineno = 0;
    uint32_t max_rank = 0;
    for (size_t i = 0; i < len;) {
        const uint8_t *nl = (const uint8_t *)memchr(data + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - data) : len;
        lineno++;
        size_t ls = i, le = e;
        i = e + 1;
        if (le == ls) continue; /* empty lines are skipped, as tiktoken does */
        if (le > ls && data[le - 1] == '\r') le--;
        const uint8_t *sp = (const uint8_t *)memchr(data + ls, ' ', le - ls);
        if (sp == NULL) goto bad;
        size_t tl = (size_t)(sp - (data + ls));
        const uint8_t *r = sp + 1;
        if (r >= data + le) goto bad;
        uint64_t rank = 0;
        for (; r < data + le; r++) {
            if (*r < '0' || *r > '9') goto bad;
            rank = rank * 10 + (uint64_t)(*r - '0');
            if (rank >= rank_limit) goto bad;
        }
        if (t->tok_len[rank] != 0) goto bad; /* duplicate rank */
        size_t at = used; /* rank < rank_limit < 2^32 */
        uint32_t toff = tm_tok_blob_put(t->blob, &at, (uint32_t)rank);
        long dl = b64_decode(data + ls, tl, t->blob + toff);
        if (dl <= 0 || (unsigned long)dl > TM_MAX_TOKEN_BYTES) goto bad;
        const uint8_t *tok = t->blob + toff;
        uint64_t h = tm_tok_hash(tok, (size_t)dl);
        uint64_t k = h & t->mask;
        for (;; k = (k + 1) & t->mask) {
            uint64_t s = t->slots[k];
            if (s == 0) break;
            uint32_t o = tm_tok_blob_id(t->blob, (uint32_t)s);
            if (t->tok_len[o] == (uint32_t)dl && memcmp(t->blob + t->tok_off[o], tok, (size_t)dl) == 0)
                goto bad; /* duplicate token */
        }
        t->slots[k] = tm_tok_slot(h, (size_t)dl, toff);
        t->tok_off[rank] = toff;
        t->tok_len[rank] = (uint32_t)dl;
        used = at + (size_t)dl;
        if (rank > max_rank) max_rank = (uint32_t)rank;
        continue;
    bad:
        if (errline != NULL) *errline = lineno;
        return TOKMARK_ERR_FORMAT;
    }
    t->n_ranks = max_rank + 1;
    /* BPE looks up every adjacent byte pair of a piece first: one load from a
     * 256 KiB table instead of a hash probe and the blob */
    t->pair_rank = (uint32_t *)malloc(65536 * sizeof *t->pair_rank);
    if (t->pair_rank == NULL) return TOKMARK_ERR_NOMEM;
    memset(t->pair_rank, 0xFF, 65536 * sizeof *t->pair_rank); /* TM_NO_RANK */
    for (uint32_t r = 0; r < t->n_ranks; r++)
        if (t->tok_len[r] == 2) {
            const uint8_t *q = t->blob + t->tok_off[r];
            t->pair_rank[q[0] | (uint32_t)q[1] << 8] = r; /* tokens are distinct: one rank per pair */
        }
    for (int b = 0; b < 256; b++) {
        uint8_t c = (uint8_t)b;
        t->byte_rank[b] = tm_tok_rank(t, &c, 1);
        if (t->byte_rank[b] == TM_NO_RANK) return TOKMARK_ERR_FORMAT; /* every byte must be a token */
    }
    uint32_t nv = t->n_ranks;
    for (size_t i = 0; i < t->spec->n_special; i++) {
        int32_t id = t->spec->special[i].id;
        if ((uint32_t)id < t->n_ranks && t->tok_len[id] != 0) return TOKMARK_ERR_FORMAT; /* clash */
        if ((uint32_t)id + 1 > nv) nv = (uint32_t)id + 1;
    }
    t->n_vocab = nv;
    return TOKMARK_OK;
}

static int compile_pattern(tokmark_tokenizer *t) {
    int errcode;
    PCRE2_SIZE erroff;
    t->re = pcre2_compile((PCRE2_SPTR)t->spec->pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &errcode,
                          &erroff, NULL);
    if (t->re == NULL) return TOKMARK_ERR_UNSUPPORTED;
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    return TOKMARK_OK;
}

static void hex32(const uint8_t h[32], char out[65]) {
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[h[i] >> 4];
        out[2 * i + 1] = d[h[i] & 15];
    }
    out[64] = '\0';
}

/* Load `path` with the pattern and special tokens of `spec`.  need_hash: the
 * file must be the official one (SHA-256). */
static int load_with_spec(tokmark_tokenizer **out, const char *path, const uint8_t *data, size_t len,
                          const tm_tok_spec *spec, size_t *errline) {
    (void)path;
    tokmark_tokenizer *t = (tokmark_tokenizer *)calloc(1, sizeof *t);
    if (t == NULL) return TOKMARK_ERR_NOMEM;
    t->spec = spec;
    /* cl100k_base and o200k_base: the hand-written scanners (exact against PCRE2,
     * tests/test_scanner.c, and faster, bench/bench_tokenizer.c); PCRE2 for the others. */
    t->split = strcmp(spec->name, "cl100k_base") == 0  ? TM_SPLIT_CL100K
               : strcmp(spec->name, "o200k_base") == 0 ? TM_SPLIT_O200K
                                                       : TM_SPLIT_PCRE2;
    int rc = parse_ranks(t, data, len, errline);
    if (rc == TOKMARK_OK) rc = compile_pattern(t);
    if (rc != TOKMARK_OK) {
        tokmark_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return TOKMARK_OK;
}

int tokmark_tokenizer_load_tiktoken(tokmark_tokenizer **out, const char *path, const char *encoding,
                                    size_t *errline) {
    if (out == NULL || path == NULL || encoding == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    if (errline != NULL) *errline = 0;
    const tm_tok_spec *spec = tm_tok_spec_find(encoding);
    if (spec == NULL) return TOKMARK_ERR_NOT_FOUND;
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    if (rc != TOKMARK_OK) return rc;
    rc = load_with_spec(out, path, data, len, spec, errline);
    free(data);
    return rc;
}

/* The file name of a path without directories and extensions. */
static void stem_of(const char *path, char *out, size_t size) {
    const char *b = strrchr(path, '/');
    b = b != NULL ? b + 1 : path;
    size_t n = strcspn(b, ".");
    if (n >= size) n = size - 1;
    memcpy(out, b, n);
    out[n] = '\0';
}

static int try_dir(const char *dir, const char *name, char *buf, size_t size) {
    if (dir == NULL || dir[0] == '\0') return 0;
    int n = snprintf(buf, size, "%s/%s.tiktoken", dir, name);
    if (n < 0 || (size_t)n >= size) return 0;
    FILE *f = fopen(buf, "rb");
    if (f == NULL) return 0;
    fclose(f);
    return 1;
}

int tokmark_tokenizer_find(const char *name, char *buf, size_t size) {
    if (name == NULL || buf == NULL || tm_tok_spec_find(name) == NULL) return TOKMARK_ERR_NOT_FOUND;
    if (try_dir(getenv("TOKMARK_DATA_DIR"), name, buf, size)) return TOKMARK_OK;
    if (try_dir(TM_DATA_DIR_BUILD, name, buf, size)) return TOKMARK_OK;
    if (try_dir(TM_DATA_DIR_INSTALL, name, buf, size)) return TOKMARK_OK;
    errno = ENOENT;
    return TOKMARK_ERR_IO;
}

const char *tokmark_tokenizer_data_dirs(void) {
    return "$TOKMARK_DATA_DIR:" TM_DATA_DIR_BUILD ":" TM_DATA_DIR_INSTALL;
}

int tokmark_tokenizer_load(tokmark_tokenizer **out, const char *name_or_path, size_t *errline) {
    if (out == NULL || name_or_path == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    if (errline != NULL) *errline = 0;
    const tm_tok_spec *spec = NULL;
    char path[4096];
    int builtin = strchr(name_or_path, '/') == NULL && strchr(name_or_path, '.') == NULL;
    if (builtin) {
        spec = tm_tok_spec_find(name_or_path);
        if (spec == NULL) return TOKMARK_ERR_NOT_FOUND;
        int rc = tokmark_tokenizer_find(name_or_path, path, sizeof path);
        if (rc != TOKMARK_OK) return rc;
    } else {
        if (strlen(name_or_path) >= sizeof path) return TOKMARK_ERR_INVALID;
        strcpy(path, name_or_path);
    }
    size_t plen = strlen(path);
    if (!builtin && plen > 5 && strcmp(path + plen - 5, ".json") == 0) { /* Hugging Face (SPEC.md §9.8) */
        uint8_t *jd = NULL;
        size_t jl = 0;
        int jrc = read_file(path, &jd, &jl);
        if (jrc == TOKMARK_OK) jrc = tm_hf_load(out, path, jd, jl, errline);
        free(jd);
        return jrc;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    if (rc != TOKMARK_OK) return rc;
    uint8_t h[32];
    char hx[65];
    /* OpenSSL's SHA-256 uses the SHA extensions where the CPU has them:
     * about 10x libsodium's portable code on a 1-4 MB rank file */
    if (EVP_Digest(data, len, h, NULL, EVP_sha256(), NULL) != 1) {
        free(data);
        return TOKMARK_ERR_CRYPTO;
    }
    hex32(h, hx);
    if (builtin) {
        if (strcmp(hx, spec->sha256) != 0) rc = TOKMARK_ERR_FORMAT; /* not the official file */
    } else {
        for (const tm_tok_spec *s = tm_tok_specs; s->name != NULL && spec == NULL; s++)
            if (strcmp(hx, s->sha256) == 0) spec = s;
        if (spec == NULL) {
            char stem[64];
            stem_of(path, stem, sizeof stem);
            spec = tm_tok_spec_find(stem);
        }
        if (spec == NULL) rc = TOKMARK_ERR_UNSUPPORTED;
    }
    if (rc == TOKMARK_OK) rc = load_with_spec(out, path, data, len, spec, errline);
    free(data);
    return rc;
}

const char *tokmark_tokenizer_name(const tokmark_tokenizer *t) {
    return t->hf != NULL ? tm_hf_name(t->hf) : t->spec->name;
}

uint32_t tokmark_tokenizer_vocab_size(const tokmark_tokenizer *t) { return t->n_vocab; }

/* ------------------------------------------------------------------------ */
/* UTF-8 (SPEC.md §9.6)                                                      */
/* ------------------------------------------------------------------------ */

/* Length of the well-formed sequence at s[0..n) (1..4), or 0 when ill-formed;
 * *sub receives the length of its maximal valid prefix (at least 1). */
static size_t utf8_seq(const uint8_t *s, size_t n, size_t *sub) {
    uint8_t b = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    *sub = 1;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (size_t k = 1; k <= need; k++) {
        if (k >= n) return 0;
        uint8_t c = s[k];
        if (c < lo || c > hi) return 0;
        lo = 0x80;
        hi = 0xBF;
        *sub = k + 1;
    }
    return need + 1;
}

/* Offset of the first ill-formed sequence, or n. */
static size_t utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t sub, l = utf8_seq(s + i, n - i, &sub);
        if (l == 0) return i;
        i += l;
    }
    return n;
}

/* Replace each maximal ill-formed subpart with U+FFFD (the WHATWG decoder's
 * rule, as TextDecoder does).  out needs 3n bytes; returns its length. */
static size_t utf8_replace(const uint8_t *s, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        size_t sub, l = utf8_seq(s + i, n - i, &sub);
        if (l == 0) {
            out[o++] = 0xEF;
            out[o++] = 0xBF;
            out[o++] = 0xBD;
            i += sub;
        } else {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        }
    }
    return o;
}

/* ------------------------------------------------------------------------ */
/* Encoders                                                                  */
/* ------------------------------------------------------------------------ */

/* A cache of short pieces and their tokens, per encoder: words recur, and a
 * hit costs one access to a table that mostly stays in cache instead of the
 * rank-table lookups (several cache misses) and BPE.  It is 2-way set
 * associative: a set is one 64-byte cache line of two entries, the most
 * recently filled or hit one first, so that two frequent pieces that map to
 * one set do not keep evicting each other.  It only remembers what encoding
 * computed, so the output is unchanged.  32768 sets (2 MiB, touched lazily)
 * keep about 97% of the pieces of English text in the cache. */
#ifndef TM_PCACHE_SETS
#define TM_PCACHE_SETS 32768u
#endif
#define TM_PCACHE_LEN 16u
#define TM_PCACHE_IDS 3u
_Static_assert(TM_PCACHE_IDS == 3, "encode_ordinary copies up to 3 ids of an entry unrolled");
typedef struct tm_pcache_entry {
    uint64_t a, b; /* the piece's bytes as two words (tm_pcache_key) */
    int32_t ids[TM_PCACHE_IDS];
    uint8_t len;   /* 0: empty */
    uint8_t nids;
} tm_pcache_entry;
typedef struct tm_pcache_set {
    _Alignas(64) tm_pcache_entry w[2]; /* w[0]: the most recent */
} tm_pcache_set;

static inline uint64_t tm_load_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    memcpy(&v, p, n); /* n is 4 or 8: one load (native order; only a cache key) */
    return v;
}

/* Two words that, together with the length n <= 16, determine the n bytes
 * at p: overlapping loads, never reading outside p[0..n). */
static inline void tm_pcache_key(const uint8_t *p, size_t n, uint64_t *a, uint64_t *b) {
    if (n >= 8) {
        *a = tm_load_le(p, 8);
        *b = tm_load_le(p + n - 8, 8);
    } else if (n >= 4) {
        *a = tm_load_le(p, 4) | tm_load_le(p + n - 4, 4) << 32;
        *b = 0;
    } else { /* 1..3 bytes: p[0], p[n/2], p[n-1] are all of them */
        *a = (uint64_t)p[0] | (uint64_t)p[n >> 1] << 8 | (uint64_t)p[n - 1] << 16;
        *b = 0;
    }
}

struct tokmark_tokenizer_encoder {
    const tokmark_tokenizer *t;
    tm_pcache_set *pcache; /* tiktoken encodings only; TM_PCACHE_SETS sets */
    void *pcache_mem;      /* its allocation (pcache is aligned to 64 bytes in it) */
    int pcache_want;       /* make pcache when first needed */
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
    tm_bpe_scratch bpe;
    uint8_t *fix; /* text with U+FFFD replacements */
    size_t fix_cap;
    tm_hf_scratch hf;
};

void tokmark_tokenizer_encoder_free(tokmark_tokenizer_encoder *e) {
    if (e == NULL) return;
    pcre2_match_data_free(e->md);
    pcre2_match_context_free(e->mc);
    pcre2_jit_stack_free(e->js);
    tm_bpe_scratch_free(&e->bpe);
    tm_hf_scratch_free(&e->hf);
    free(e->fix);
    free(e->pcache_mem);
    free(e);
}

int tokmark_tokenizer_encoder_create(tokmark_tokenizer_encoder **out, const tokmark_tokenizer *t) {
    if (out == NULL || t == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    tokmark_tokenizer_encoder *e = (tokmark_tokenizer_encoder *)calloc(1, sizeof *e);
    if (e == NULL) return TOKMARK_ERR_NOMEM;
    e->t = t;
    e->pcache_want = t->hf == NULL; /* the cache itself is made on first use */
    e->md = pcre2_match_data_create(1, NULL);
    e->mc = pcre2_match_context_create(NULL);
    if (e->md == NULL || e->mc == NULL) goto nomem;
    pcre2_set_match_limit(e->mc, UINT32_MAX);
    pcre2_set_depth_limit(e->mc, UINT32_MAX);
    if (t->jit) {
        e->js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (e->js == NULL) goto nomem;
        pcre2_jit_stack_assign(e->mc, NULL, e->js);
    }
    *out = e;
    return TOKMARK_OK;
nomem:
    tokmark_tokenizer_encoder_free(e);
    return TOKMARK_ERR_NOMEM;
}

/* The end of the piece of s[start..end) that begins at off < end, by the
 * tokenizer's split pattern with `split` (TM_SPLIT_*): 0 and *pe set, or an
 * error code. */
static int next_piece(tokmark_tokenizer_encoder *e, int split, const uint8_t *s, size_t end, size_t off,
                      size_t *pe) {
    if (split == TM_SPLIT_CL100K || split == TM_SPLIT_O200K) {
        *pe = split == TM_SPLIT_CL100K ? tm_scan_cl100k(s, end, off) : tm_scan_o200k(s, end, off);
        return *pe > off && *pe <= end ? TOKMARK_OK : TOKMARK_ERR_UNSUPPORTED; /* never an empty piece */
    }
    const tokmark_tokenizer *t = e->t;
    int rc = t->jit ? pcre2_jit_match(t->re, s, end, off, 0, e->md, e->mc)
                    : pcre2_match(t->re, s, end, off, PCRE2_NO_UTF_CHECK, e->md, e->mc);
    if (rc == PCRE2_ERROR_NOMATCH) return TOKMARK_ERR_UNSUPPORTED; /* cannot happen: the patterns cover every character */
    if (rc < 0) return rc == PCRE2_ERROR_NOMEMORY || rc == PCRE2_ERROR_JIT_STACKLIMIT ? TOKMARK_ERR_NOMEM
                                                                                      : TOKMARK_ERR_UNSUPPORTED;
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
    /* a match that does not start at off, or an empty one: not one of our patterns */
    if (ov[0] != off || ov[1] <= off) return TOKMARK_ERR_UNSUPPORTED;
    *pe = ov[1];
    return TOKMARK_OK;
}

/* Split s[start..end) with the pattern and encode every piece.  Pieces are
 * split TM_BATCH at a time and their cache sets prefetched before any of
 * them is encoded: a random set of a table larger than L1 costs a cache
 * miss, and this way the misses of a batch overlap. */
#ifndef TM_BATCH
#define TM_BATCH 16
#endif
static int encode_ordinary(tokmark_tokenizer_encoder *e, const uint8_t *s, size_t start, size_t end,
                           tm_tok_out *o) {
    const tokmark_tokenizer *t = e->t;
    if (e->pcache == NULL && e->pcache_want) {
        e->pcache_want = 0;
        /* calloc: a large block comes zeroed from mmap, its pages touched only
         * when used.  Without memory, encode without the cache. */
        e->pcache_mem = calloc(TM_PCACHE_SETS + 1, sizeof *e->pcache);
        if (e->pcache_mem != NULL)
            e->pcache = (tm_pcache_set *)(void *)(((uintptr_t)e->pcache_mem + 63) & ~(uintptr_t)63);
    }
    size_t ends[TM_BATCH];
    uint64_t ka[TM_BATCH], kb[TM_BATCH];
    tm_pcache_set *sets[TM_BATCH];
    size_t off = start;
    while (off < end) {
        size_t k = 0;
        int err = TOKMARK_OK; /* returned once the pieces before it are encoded */
        if (t->split == TM_SPLIT_CL100K) {
            k = tm_scan_cl100k_batch(s, end, off, ends, TM_BATCH);
            if (k == 0) return TOKMARK_ERR_UNSUPPORTED;
        } else
            for (size_t a = off; k < TM_BATCH && a < end; a = ends[k++]) {
                err = next_piece(e, t->split, s, end, a, &ends[k]);
                if (err != TOKMARK_OK) break;
            }
        if (e->pcache != NULL)
            for (size_t i = 0, a = off; i < k; a = ends[i++]) {
                size_t plen = ends[i] - a;
                sets[i] = NULL;
                if (plen <= TM_PCACHE_LEN) {
                    tm_pcache_key(s + a, plen, &ka[i], &kb[i]);
                    uint64_t h = (ka[i] * 0x9E3779B97F4A7C15ull) ^ ((kb[i] + plen) * 0xC2B2AE3D27D4EB4Full);
                    sets[i] = &e->pcache[(h >> 40) & (TM_PCACHE_SETS - 1)];
                    __builtin_prefetch(sets[i]);
                }
            }
        else
            for (size_t i = 0; i < k; i++) sets[i] = NULL;
        for (size_t i = 0; i < k; i++) {
            size_t pe = ends[i], plen = pe - off;
            tm_pcache_set *cs = sets[i];
            if (cs != NULL) {
                const tm_pcache_entry *ce = NULL;
                if (cs->w[0].len == plen && cs->w[0].a == ka[i] && cs->w[0].b == kb[i]) ce = &cs->w[0];
                else if (cs->w[1].len == plen && cs->w[1].a == ka[i] && cs->w[1].b == kb[i]) {
                    tm_pcache_entry x = cs->w[1]; /* move to the front */
                    cs->w[1] = cs->w[0];
                    cs->w[0] = x;
                    ce = &cs->w[0];
                }
                if (ce != NULL) {
                    size_t nn = ce->nids; /* 1..TM_PCACHE_IDS */
                    if (o->n + nn <= o->cap) {
                        int32_t *d = o->ids + o->n;
                        d[0] = ce->ids[0];
                        if (nn > 1) {
                            d[1] = ce->ids[1];
                            if (nn > 2) d[2] = ce->ids[2];
                        }
                        o->n += nn;
                    } else
                        for (size_t j = 0; j < nn; j++) tm_tok_emit(o, (uint32_t)ce->ids[j]);
                    off = pe;
                    continue;
                }
            }
            size_t n0 = o->n;
            uint32_t r = tm_tok_rank(t, s + off, plen);
            if (r != TM_NO_RANK) tm_tok_emit(o, r);
            else {
                int brc = tm_bpe_encode(t, s + off, plen, &e->bpe, o);
                if (brc != TOKMARK_OK) return brc;
            }
            if (cs != NULL && o->n - n0 <= TM_PCACHE_IDS && o->n <= o->cap) { /* the ids were written: remember */
                cs->w[1] = cs->w[0];
                tm_pcache_entry *ce = &cs->w[0];
                ce->len = (uint8_t)plen;
                ce->nids = (uint8_t)(o->n - n0);
                ce->a = ka[i];
                ce->b = kb[i];
                memcpy(ce->ids, o->ids + n0, (o->n - n0) * sizeof *ce->ids);
            }
            off = pe;
        }
        if (err != TOKMARK_OK) return err;
    }
    return TOKMARK_OK;
}

int tm_tok_split(tokmark_tokenizer_encoder *e, int split, const uint8_t *s, size_t len, size_t *ends, size_t cap,
                 size_t *n) {
    *n = 0;
    if (e->t->hf != NULL) return TOKMARK_ERR_INVALID;
    if (split < 0) split = e->t->split;
    for (size_t off = 0; off < len;) {
        size_t pe;
        int rc = next_piece(e, split, s, len, off, &pe);
        if (rc != TOKMARK_OK) return rc;
        if (*n < cap) ends[*n] = pe;
        (*n)++;
        off = pe;
    }
    return TOKMARK_OK;
}

/* The first special token at or after `from`: its index in the spec, or -1. */
static int next_special(const tm_tok_spec *spec, const uint8_t *s, size_t from, size_t end, size_t *at) {
    for (size_t i = from; i < end;) {
        const uint8_t *lt = (const uint8_t *)memchr(s + i, '<', end - i);
        if (lt == NULL) return -1;
        size_t p = (size_t)(lt - s);
        for (size_t k = 0; k < spec->n_special; k++) {
            size_t l = strlen(spec->special[k].text);
            if (l <= end - p && memcmp(s + p, spec->special[k].text, l) == 0) {
                *at = p;
                return (int)k;
            }
        }
        i = p + 1;
    }
    return -1;
}

int tokmark_tokenizer_encoder_encode(tokmark_tokenizer_encoder *e, const char *text, size_t len, int32_t *ids,
                                     size_t cap, size_t *n_out, unsigned flags) {
    if (e == NULL || n_out == NULL || (text == NULL && len > 0) || (ids == NULL && cap > 0) ||
        (flags & ~(unsigned)(TOKMARK_ENCODE_ALLOW_SPECIAL | TOKMARK_ENCODE_REPLACE_INVALID)) != 0)
        return TOKMARK_ERR_INVALID;
    *n_out = 0;
    if (len == 0) return TOKMARK_OK;
    const uint8_t *s = (const uint8_t *)text;
    size_t bad = utf8_check(s, len);
    if (bad < len) {
        if (!(flags & TOKMARK_ENCODE_REPLACE_INVALID)) {
            *n_out = bad;
            return TOKMARK_ERR_INVALID;
        }
        if (len > SIZE_MAX / 3) return TOKMARK_ERR_NOMEM;
        if (e->fix_cap < 3 * len) {
            uint8_t *nb = (uint8_t *)realloc(e->fix, 3 * len);
            if (nb == NULL) return TOKMARK_ERR_NOMEM;
            e->fix = nb;
            e->fix_cap = 3 * len;
        }
        len = utf8_replace(s, len, e->fix);
        s = e->fix;
    }
    tm_tok_out o = {ids, cap, 0};
    int rc = TOKMARK_OK;
    if (e->t->hf != NULL) {
        rc = tm_hf_encode(e->t, &e->hf, e->md, e->mc, s, len, flags, &o);
    } else if (flags & TOKMARK_ENCODE_ALLOW_SPECIAL) {
        size_t pos = 0, at = 0;
        int k;
        while (rc == TOKMARK_OK && (k = next_special(e->t->spec, s, pos, len, &at)) >= 0) {
            rc = encode_ordinary(e, s, pos, at, &o);
            tm_tok_emit(&o, (uint32_t)e->t->spec->special[k].id);
            pos = at + strlen(e->t->spec->special[k].text);
        }
        if (rc == TOKMARK_OK) rc = encode_ordinary(e, s, pos, len, &o);
    } else {
        rc = encode_ordinary(e, s, 0, len, &o);
    }
    *n_out = rc == TOKMARK_OK ? o.n : 0;
    return rc;
}

int tokmark_tokenizer_encode(const tokmark_tokenizer *t, const char *text, size_t len, int32_t *ids, size_t cap,
                             size_t *n_out, unsigned flags) {
    tokmark_tokenizer_encoder *e = NULL;
    int rc = tokmark_tokenizer_encoder_create(&e, t);
    if (rc != TOKMARK_OK) return rc;
    if (len < 65536) e->pcache_want = 0; /* a short text once: the piece cache would cost more than it saves */
    rc = tokmark_tokenizer_encoder_encode(e, text, len, ids, cap, n_out, flags);
    tokmark_tokenizer_encoder_free(e);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                  */
/* ------------------------------------------------------------------------ */

const uint8_t *tokmark_tokenizer_token_bytes(const tokmark_tokenizer *t, int32_t id, size_t *len) {
    if (id >= 0 && (uint32_t)id < t->n_ranks && t->tok_len[id] != 0) {
        *len = t->tok_len[id];
        return t->blob + t->tok_off[id];
    }
    if (t->hf != NULL) {
        const uint8_t *b = tm_hf_added_bytes(t->hf, id, len);
        if (b == NULL) *len = 0;
        return b;
    }
    for (size_t k = 0; k < t->spec->n_special; k++)
        if (t->spec->special[k].id == id) {
            *len = strlen(t->spec->special[k].text);
            return (const uint8_t *)t->spec->special[k].text;
        }
    *len = 0;
    return NULL;
}

int tokmark_tokenizer_decode(const tokmark_tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap,
                             size_t *len_out) {
    if (t == NULL || len_out == NULL || (ids == NULL && n > 0) || (out == NULL && cap > 0))
        return TOKMARK_ERR_INVALID;
    size_t o = 0;
    uint8_t strip_ch = 0; /* a tokenizer.json decoder's Strip: leading bytes dropped (SPEC.md §9.9) */
    size_t strip = t->hf != NULL ? tm_hf_decode_strip(t->hf, &strip_ch) : 0;
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const uint8_t *b = tokmark_tokenizer_token_bytes(t, ids[i], &l);
        if (b == NULL) {
            *len_out = i;
            return TOKMARK_ERR_INVALID;
        }
        while (strip > 0 && o == 0 && l > 0) {
            if (b[0] != strip_ch) {
                strip = 0;
                break;
            }
            b++;
            l--;
            strip--;
        }
        if (o < cap) memcpy(out + o, b, l <= cap - o ? l : cap - o);
        o += l;
    }
    *len_out = o;
    return TOKMARK_OK;
}
