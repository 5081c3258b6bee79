/* tok.h — private to the tokenizer module (src/tok/); not installed.
 *
 * A tokenizer is immutable after loading: rank table, decode table, hash
 * map and the compiled split pattern.  Everything that changes while
 * encoding lives in an encoder (tokmark_tokenizer_encoder), one per thread. */
#ifndef TOKMARK_TOK_H
#define TOKMARK_TOK_H

#include "tokmark.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define TM_TOK_MAX_SPECIAL 8
#define TM_NO_RANK UINT32_MAX

/* One built-in tiktoken encoding (SPEC.md §9.2). */
typedef struct tm_tok_special {
    const char *text;
    int32_t id;
} tm_tok_special;

typedef struct tm_tok_spec {
    const char *name;
    const char *pattern;       /* PCRE2 form of the split pattern (§9.3) */
    const char *sha256;        /* hex SHA-256 of the official rank file */
    uint32_t ranks;            /* number of lines of the official file */
    uint32_t n_vocab;          /* largest id + 1 (tiktoken's n_vocab) */
    size_t n_special;
    tm_tok_special special[TM_TOK_MAX_SPECIAL];
} tm_tok_spec;

/* The built-in encodings; NULL-name terminated. */
extern const tm_tok_spec tm_tok_specs[];
const tm_tok_spec *tm_tok_spec_find(const char *name);

typedef struct tm_hf tm_hf; /* a Hugging Face tokenizer.json (hf.c) */

struct tokmark_tokenizer {
    const tm_tok_spec *spec;   /* NULL for a tokenizer.json */
    tm_hf *hf;                 /* non-NULL for a tokenizer.json (SPEC.md §9.8) */
    uint8_t *blob;             /* every token's bytes, concatenated; those in the index
                                * (slots) preceded by their id (tm_tok_blob_put) */
    uint32_t *tok_off;         /* by rank: offset into blob */
    uint32_t *tok_len;         /* by rank: length; 0 = no token of that rank */
    uint32_t n_ranks;          /* largest rank + 1 */
    uint32_t n_vocab;          /* largest id (rank or special) + 1 */
    uint64_t *slots;           /* hash map bytes -> rank (tm_tok_slot); 0 empty */
    uint64_t mask;             /* number of slots - 1 */
    uint32_t byte_rank[256];   /* rank of each single byte */
    uint32_t *pair_rank;       /* tiktoken: rank of each 2-byte string (p[0] | p[1] << 8), or
                                * TM_NO_RANK; NULL for a tokenizer.json */
    pcre2_code *re;
    int jit;                   /* 1 when the pattern is JIT-compiled */
    int split;                 /* TM_SPLIT_*: what cuts text into pieces */
};

/* 64-bit hash of a byte string (not cryptographic). */
static inline uint64_t tm_tok_hash(const uint8_t *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xFF51AFD7ED558CCDull);
    while (n >= 8) {
        uint64_t w = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
                     (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return h;
}

/* The token index: an open-addressing table (linear probing) of 64-bit
 * slots, 0 empty, each the top 24 bits of the token's hash, its length (255
 * for 255 and more) and the offset in blob of its bytes, which are preceded
 * by its id (4 bytes, native order; tm_tok_blob_put).  So a probe rejects a
 * token of another length or hash without leaving the slot, and a hit reads
 * the id and the bytes that verify it from one place in the blob (one cache
 * line, most often) instead of tok_off[] and then the blob.  The offset is at
 * least 4, so a slot is never 0. */
#define TM_TOK_ID_BYTES 4u
static inline uint64_t tm_tok_slot(uint64_t h, size_t n, uint32_t off) {
    return (h >> 40) << 40 | (uint64_t)(n < 255 ? n : 255) << 32 | off;
}

/* Store the id of a token at blob[*used..+4) before its bytes, which go to
 * the offset returned (the caller writes them there and adds their length to
 * *used). */
static inline uint32_t tm_tok_blob_put(uint8_t *blob, size_t *used, uint32_t id) {
    memcpy(blob + *used, &id, sizeof id);
    *used += TM_TOK_ID_BYTES;
    return (uint32_t)*used;
}

/* The id stored before the bytes at blob offset off. */
static inline uint32_t tm_tok_blob_id(const uint8_t *blob, uint32_t off) {
    uint32_t id;
    memcpy(&id, blob + off - TM_TOK_ID_BYTES, sizeof id);
    return id;
}

/* The rank of bytes p[0..n), or TM_NO_RANK. */
static inline uint32_t tm_tok_rank(const tokmark_tokenizer *t, const uint8_t *p, size_t n) {
    uint64_t h = tm_tok_hash(p, n);
    uint64_t tag = (h >> 40) << 8 | (n < 255 ? n : 255);
    for (uint64_t i = h & t->mask;; i = (i + 1) & t->mask) {
        uint64_t s = t->slots[i];
        if (s == 0) return TM_NO_RANK;
        if ((s >> 32) == tag) {
            uint32_t off = (uint32_t)s;
            const uint8_t *q = t->blob + off;
            uint32_t r = tm_tok_blob_id(t->blob, off);
            if (n < 255 || t->tok_len[r] == n) {
                size_t k = 0;
                while (k < n && q[k] == p[k]) k++;
                if (k == n) return r;
            }
        }
    }
}

/* Where BPE writes its output: ids[0..cap) and a running count. */
typedef struct tm_tok_out {
    int32_t *ids;
    size_t cap;
    size_t n;
} tm_tok_out;

static inline void tm_tok_emit(tm_tok_out *o, uint32_t id) {
    if (o->n < o->cap) o->ids[o->n] = (int32_t)id;
    o->n++;
}

/* Scratch memory of BPE merging (bpe.c); grows, never shrinks. */
typedef struct tm_bpe_scratch {
    uint64_t *buf;   /* 2*size uint64 heap entries, then 3 arrays of `size` uint32 */
    size_t size;
    uint64_t merges; /* merge operations done (for tests and benchmarks) */
} tm_bpe_scratch;

/* Tokens of one piece p[0..n) (n ≥ 1) by byte-level BPE by minimum rank
 * (SPEC.md §9.4), appended to o.  Returns TOKMARK_OK or TOKMARK_ERR_NOMEM. */
int tm_bpe_encode(const tokmark_tokenizer *t, const uint8_t *p, size_t n, tm_bpe_scratch *s, tm_tok_out *o);
void tm_bpe_scratch_free(tm_bpe_scratch *s);

/* ---- Hugging Face tokenizer.json, byte-level BPE (hf.c, SPEC.md §9.8) ----
 * The vocabulary sits in the tables above (ids by raw bytes); the rest in tm_hf. */
typedef struct tm_hf_scratch {
    uint64_t *buf;   /* BPE heap and arrays: 48 bytes per byte of the piece */
    size_t size;
    uint8_t *pre;    /* a piece with ByteLevel's prefix space */
    size_t pre_cap;
    uint8_t *norm[4]; /* normalized text (0, 1) and Metaspace's output (2, 3) (hf.c) */
    size_t norm_cap[4];
    int32_t *u32;     /* code points while normalizing (utf8proc) */
    size_t u32_cap;
    struct tm_hf_pcache *pcache; /* short pieces and their ids (hf.c); made on first use */
} tm_hf_scratch;

/* Parse tokenizer.json data; TOKMARK_ERR_UNSUPPORTED names the component in
 * tm_hf_unsupported() (thread-local, static storage). */
int tm_hf_load(tokmark_tokenizer **out, const char *path, const uint8_t *data, size_t len, size_t *errline);
const char *tm_hf_unsupported(void);
void tm_hf_free(tm_hf *h);
const char *tm_hf_name(const tm_hf *h);
/* The content of added token `id`, or NULL. */
const uint8_t *tm_hf_added_bytes(const tm_hf *h, int32_t id, size_t *len);
/* How many leading `*ch` bytes decoding strips (the decoder's Strip; 0 if none). */
size_t tm_hf_decode_strip(const tm_hf *h, uint8_t *ch);
int tm_hf_encode(const tokmark_tokenizer *t, tm_hf_scratch *s, pcre2_match_data *md, pcre2_match_context *mc,
                 const uint8_t *text, size_t len, unsigned flags, tm_tok_out *o);
void tm_hf_scratch_free(tm_hf_scratch *s);
/* Internal (tests): the tokenizer's normalizer applied to well-formed UTF-8
 * p[0..n); *out points into s (or is p).  Returns TOKMARK_OK or an error. */
int tm_hf_normalize(const tokmark_tokenizer *t, tm_hf_scratch *s, const uint8_t *p, size_t n, const uint8_t **out,
                    size_t *on);

/* ---- Unicode classes (unicode_tables.c, generated by tools/gen-unicode-tables.py) ----
 * One byte of bits per code point, through a two-level table. */
#define TM_UC_L 1u   /* \p{L}: Lu Ll Lt Lm Lo */
#define TM_UC_N 2u   /* \p{N}: Nd Nl No */
#define TM_UC_WS 4u  /* White_Space as SPEC.md §9.3 spells \s */
#define TM_UC_UP 8u  /* Lu Lt Lm Lo M (o200k_base) */
#define TM_UC_LO 16u /* Ll Lm Lo M (o200k_base) */
#define TM_UC_M 32u  /* \p{M}: Mn Mc Me */
extern const uint8_t tm_uc_stage1[0x1100];
extern const uint8_t tm_uc_stage2[][256]; /* block 0 is U+0000..U+00FF */
static inline unsigned tm_uc_class(uint32_t cp) { return tm_uc_stage2[tm_uc_stage1[cp >> 8]][cp & 255]; }

/* ---- Split pattern: PCRE2 or a hand-written scanner (SPEC.md §9.3) ---- */
enum { TM_SPLIT_PCRE2 = 0, TM_SPLIT_CL100K = 1, TM_SPLIT_O200K = 2 };
/* The end of the cl100k_base piece that starts at s[off], off < end, for
 * well-formed UTF-8 s[0..end) that ends on a character boundary: exactly
 * where PCRE2's P100 match from off ends (scan_cl100k.c). */
size_t tm_scan_cl100k(const uint8_t *s, size_t end, size_t off);
/* The ends of the next pieces from off < end, at most max of them, in
 * ends[]; returns how many (0 only where tm_scan_cl100k would fail). */
size_t tm_scan_cl100k_batch(const uint8_t *s, size_t end, size_t off, size_t *ends, size_t max);
/* The same for o200k_base (P200; scan_o200k.c). */
size_t tm_scan_o200k(const uint8_t *s, size_t end, size_t off);
/* Internal (tests, benchmarks): cut well-formed UTF-8 s[0..len) into pieces
 * with `split` (TM_SPLIT_*, or -1 for the tokenizer's own), writing piece
 * ends to ends[0..cap) and their number to *n (also past cap).  Only for
 * tiktoken encodings.  Returns TOKMARK_OK or an error code. */
int tm_tok_split(tokmark_tokenizer_encoder *e, int split, const uint8_t *s, size_t len, size_t *ends, size_t cap,
                 size_t *n);

#endif
