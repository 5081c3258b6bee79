/* internal.h — shared between the library's modules; not installed. */
#ifndef TOKMARK_INTERNAL_H
#define TOKMARK_INTERNAL_H

#include "tokmark.h"

#include <locale.h>
#include <stdint.h>
#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define TM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TM_PRINTF(a, b)
#endif

/* A string builder that counts what it could not write (like snprintf);
 * profile and compatibility-profile text (profile.c). */
typedef struct tm_sbuf {
    char *buf;   /* NULL: count only */
    size_t size; /* bytes available in buf, the NUL included */
    size_t len;  /* bytes needed so far, the NUL excluded */
} tm_sbuf;
TM_PRINTF(2, 3) void tm_sb_printf(tm_sbuf *b, const char *fmt, ...);

/* ---- secrets (sodium_malloc'd, read-only after derivation) ---- */
typedef struct tm_secrets {
    uint8_t master[TOKMARK_MASTER_KEY_BYTES];
    uint8_t k_fp[32];     /* KDF id 0x01 */
    uint8_t k_acct[32];   /* KDF id 0x02 */
    uint8_t k_ctx[16];    /* KDF id 0x10 + seeding */
    uint8_t k_val[16];    /* KDF id 0x20 + scheme */
    uint8_t rk_ctx[176];  /* AES-128 encryption round keys of k_ctx (AES-NI layout) */
    uint8_t rk_val[176];  /* ... of k_val */
} tm_secrets;

struct tokmark_profile {
    tokmark_params params;
    char key_id[TOKMARK_KEY_ID_HEX + 1];
    int has_account;
    size_t account_len;
    char account[TOKMARK_ACCOUNT_MAX + 1]; /* NUL-terminated copy (may hold other NULs) */
    tm_secrets *sec;
};

/* ---- keys (prf.c) ---- */
/* Allocate guarded secrets for `master`, derive every sub-key for the
 * profile's scheme and seeding, expand the AES round keys and make the
 * memory read-only.  Returns TOKMARK_OK, TOKMARK_ERR_NOMEM or _CRYPTO. */
int tm_secrets_create(tm_secrets **out, const uint8_t master[TOKMARK_MASTER_KEY_BYTES],
                      tokmark_scheme scheme, tokmark_seeding seeding);
void tm_secrets_free(tm_secrets *s); /* NULL ok; wipes */

/* Compute p->key_id from p->params, p->account and p->sec->k_fp (SPEC §2.4). */
int tm_profile_compute_key_id(tokmark_profile *p);
/* The canonical parameter text C of SPEC §2.4 into buf; returns length needed. */
size_t tm_canonical_params(const tokmark_profile *p, char *buf, size_t size);

/* ---- AES backends (prf.c) ---- */
extern int tm_backend; /* TOKMARK_BACKEND_PORTABLE or _AESNI, fixed at tokmark_init() */
extern int tm_use_vaes; /* AES-NI backend: use 256-bit VAES for long CTR runs (tests may clear it) */

typedef struct tm_aes {
    int backend;
    const uint8_t *rk;   /* AES-NI round keys (176 bytes), owned by the profile */
    void *ecb;           /* EVP_CIPHER_CTX* (portable) */
    void *ctr;           /* EVP_CIPHER_CTX* (portable) */
    uint8_t key[16];     /* portable only: needed to re-key CTR; wiped on free */
} tm_aes;

/* FIPS 197 key expansion (AES-NI when available unless `portable`). */
void tm_aes_expand(const uint8_t key[16], uint8_t rk[176], int portable);
int  tm_aes_init(tm_aes *a, const uint8_t key[16], const uint8_t rk[176]);
void tm_aes_free(tm_aes *a);
/* out[i] = AES(in[i]) for n blocks (in == out allowed). Cannot fail. */
void tm_aes_ecb(tm_aes *a, const uint8_t *in, uint8_t *out, size_t nblocks);
/* out = blocks first..first+n-1 of the CTR stream of nonce (SPEC §3). */
void tm_aes_ctr(tm_aes *a, uint64_t nonce, uint64_t first, size_t nblocks, uint8_t *out);

/* ---- contexts, nonces, fingerprints (prf.c) ---- */
/* c: tokens before the candidate that the context reads (SPEC §4). */
uint32_t tm_context_length(const tokmark_params *p);
static inline uint64_t tm_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Fingerprint of a tuple of c+1 tokens (SPEC §7.2); never 0.  A multilinear
 * sum (independent multiplies) and one finalising mix. */
static inline uint64_t tm_fingerprint(const int32_t *tuple, uint32_t c, uint32_t seeding) {
    static const uint64_t M[TOKMARK_MAX_CONTEXT + 1] = {
        0x9E3779B97F4A7C15ull, 0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull, 0xD6E8FEB86659FD93ull,
        0xFF51AFD7ED558CCDull, 0xC4CEB9FE1A85EC53ull, 0x87C37B91114253D5ull, 0x4CF5AD432745937Full,
        0xA0761D6478BD642Full, 0xE7037ED1A0B428DBull, 0x8EBC6AF09C88C6E3ull, 0x589965CC75374CC3ull,
        0x1D8E4E27C47D124Full, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 0x2545F4914F6CDD1Dull,
        0x9FB21C651E98DF25ull};
    uint64_t f = 0x243F6A8885A308D3ull ^ ((uint64_t)c * 0x100u + seeding);
    for (uint32_t i = 0; i <= c; i++) f += ((uint64_t)(uint32_t)tuple[i] + 1) * M[i];
    f = tm_mix64(f);
    return f ? f : 1;
}
/* LeftHash nonces of n windows toks[start[k] .. start[k]+h-1]; scratch: 16*n bytes. */
void tm_nonce_left_batch(tm_aes *a, const int32_t *toks, const uint32_t *start, size_t n, uint32_t h,
                         uint8_t *scratch, uint64_t *out);
/* SelfHash nonces: previous tokens toks[start[k] .. +h-2], candidate cand[k];
 * scratch: 16*n*(h-1) bytes. */
void tm_nonce_self_batch(tm_aes *a, const int32_t *toks, const uint32_t *start, const int32_t *cand,
                         size_t n, uint32_t h, uint8_t *scratch, uint64_t *out);

/* ---- small helpers: byte order ---- */
#include <string.h>
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define TM_BIG_ENDIAN 1
#else
#define TM_BIG_ENDIAN 0
#endif
static inline uint64_t tm_bswap64(uint64_t v) { return __builtin_bswap64(v); }
static inline uint32_t tm_bswap32(uint32_t v) { return __builtin_bswap32(v); }
static inline uint64_t tm_load64le(const uint8_t *p) {
    uint64_t v; memcpy(&v, p, 8); return TM_BIG_ENDIAN ? tm_bswap64(v) : v;
}
static inline uint32_t tm_load32le(const uint8_t *p) {
    uint32_t v; memcpy(&v, p, 4); return TM_BIG_ENDIAN ? tm_bswap32(v) : v;
}
static inline void tm_store32le(uint8_t *p, uint32_t v) {
    if (TM_BIG_ENDIAN) v = tm_bswap32(v);
    memcpy(p, &v, 4);
}
static inline void tm_store64le(uint8_t *p, uint64_t v) {
    if (TM_BIG_ENDIAN) v = tm_bswap64(v);
    memcpy(p, &v, 8);
}
static inline void tm_store64be(uint8_t *p, uint64_t v) {
    if (!TM_BIG_ENDIAN) v = tm_bswap64(v);
    memcpy(p, &v, 8);
}

/* A 16-byte block LE64(w0) || LE64(w1), written with one 16-byte store where
 * possible: AES reads it back whole, and a block assembled from smaller
 * stores would stall store-to-load forwarding. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <emmintrin.h>
static inline void tm_store128(uint8_t *p, uint64_t w0, uint64_t w1) {
    _mm_storeu_si128((__m128i *)(void *)p, _mm_set_epi64x((long long)w1, (long long)w0));
}
#else
static inline void tm_store128(uint8_t *p, uint64_t w0, uint64_t w1) {
    tm_store64le(p, w0);
    tm_store64le(p + 8, w1);
}
#endif
/* The value-stream block input LE64(N) || BE64(j) (SPEC §3). */
static inline void tm_store_ctr_block(uint8_t *p, uint64_t nonce, uint64_t j) {
    tm_store128(p, nonce, tm_bswap64(j));
}

/* ---- numbers in key files: the "C" locale whatever the process's ---- */
typedef struct tm_c_numeric {
    locale_t c, old;
} tm_c_numeric;

static inline void tm_c_numeric_enter(tm_c_numeric *s) {
    s->c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    s->old = s->c != (locale_t)0 ? uselocale(s->c) : (locale_t)0;
}

static inline void tm_c_numeric_leave(tm_c_numeric *s) {
    if (s->c != (locale_t)0) {
        uselocale(s->old);
        freelocale(s->c);
    }
}

/* The shortest %.Ng (N = 15..17) that reads back as exactly x, into out
 * (profile.c); the caller is in the C locale. */
void tm_format_double(char out[40], double x);

/* ---- key files (profile.c, compat.c) ---- */
#define TM_PROFILE_MAGIC "tokmark-profile 1"
#define TM_COMPAT_NAME   "tokmark-compat-profile" /* any version */
#define TM_COMPAT_MAGIC  TM_COMPAT_NAME " 1"

/* The next line of a key file held in text[0..len): *s and *n (without its
 * "\n"), *pos and *line advanced.  1: a line; 0: the end; -1: the line holds
 * a NUL or CR byte (a format error at *line). */
static inline int tm_keyfile_line(const char *text, size_t len, size_t *pos, size_t *line, const char **s,
                                  size_t *n) {
    if (*pos >= len) return 0;
    *s = text + *pos;
    const char *nl = (const char *)memchr(*s, '\n', len - *pos);
    *n = nl != NULL ? (size_t)(nl - *s) : len - *pos;
    *pos += *n + (nl != NULL);
    (*line)++;
    return memchr(*s, '\0', *n) != NULL || memchr(*s, '\r', *n) != NULL ? -1 : 1;
}

/* ---- files ---- */
/* Write a key file atomically with mode 0600 (profile.c): TOKMARK_OK,
 * TOKMARK_ERR_EXISTS (no overwrite), TOKMARK_ERR_INVALID, TOKMARK_ERR_NOMEM,
 * TOKMARK_ERR_IO (errno set). */
int tm_write_secret_file(const char *path, const char *text, size_t len, int overwrite);

#endif
