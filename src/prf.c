/* prf.c — initialisation, AES backends, sub-key derivation and the
 * pseudo-random function of SPEC.md §2.2, §3 and §4. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TM_HAVE_AESNI 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define TM_HAVE_AESNI 0
#endif

int tm_backend = TOKMARK_BACKEND_PORTABLE;
int tm_use_vaes;
static int tm_initialised;

/* VAES and AVX2 from CPUID leaf 7 (EBX bit 5, ECX bit 9), and YMM state
 * enabled by the OS (OSXSAVE, then XCR0 bits 1-2).  Read directly: not every
 * compiler's __builtin_cpu_supports knows "vaes". */
static int cpu_has_vaes(void) {
#if TM_HAVE_AESNI
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & 6u) != 6u) return 0; /* XMM and YMM state */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b & (1u << 5)) && (c & (1u << 9)); /* AVX2, VAES */
#else
    return 0;
#endif
}

static int cpu_has_aesni(void) {
#if TM_HAVE_AESNI
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse4.1");
#else
    return 0;
#endif
}

int tokmark_init(void) {
    if (tm_initialised) return TOKMARK_OK;
    if (sodium_init() < 0) return TOKMARK_ERR_CRYPTO;
    tm_backend = cpu_has_aesni() ? TOKMARK_BACKEND_AESNI : TOKMARK_BACKEND_PORTABLE;
    tm_use_vaes = cpu_has_vaes();
    const char *env = getenv("TOKMARK_BACKEND");
    if (env != NULL && strcmp(env, "portable") == 0) tm_backend = TOKMARK_BACKEND_PORTABLE;
    tm_initialised = 1;
    return TOKMARK_OK;
}

int tokmark_set_backend(tokmark_backend b) {
    switch (b) {
    case TOKMARK_BACKEND_AUTO:
        tm_backend = cpu_has_aesni() ? TOKMARK_BACKEND_AESNI : TOKMARK_BACKEND_PORTABLE;
        return TOKMARK_OK;
    case TOKMARK_BACKEND_PORTABLE: tm_backend = b; return TOKMARK_OK;
    case TOKMARK_BACKEND_AESNI:
        if (!cpu_has_aesni()) return TOKMARK_ERR_UNSUPPORTED;
        tm_backend = b;
        return TOKMARK_OK;
    }
    return TOKMARK_ERR_INVALID;
}

const char *tokmark_backend_name(void) {
    return tm_backend == TOKMARK_BACKEND_AESNI ? "aesni" : "portable";
}

/* ------------------------------------------------------------------------ */
/* AES-NI                                                                    */
/* ------------------------------------------------------------------------ */
#if TM_HAVE_AESNI
#define TM_AES_TARGET __attribute__((target("aes,sse4.1")))

TM_AES_TARGET static __m128i expand_step(__m128i k, __m128i t) {
    t = _mm_shuffle_epi32(t, 0xff);
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    return _mm_xor_si128(k, t);
}

TM_AES_TARGET static void aesni_expand(const uint8_t key[16], uint8_t rk[176]) {
    __m128i k[11];
    k[0] = _mm_loadu_si128((const __m128i *)(const void *)key);
    k[1] = expand_step(k[0], _mm_aeskeygenassist_si128(k[0], 0x01));
    k[2] = expand_step(k[1], _mm_aeskeygenassist_si128(k[1], 0x02));
    k[3] = expand_step(k[2], _mm_aeskeygenassist_si128(k[2], 0x04));
    k[4] = expand_step(k[3], _mm_aeskeygenassist_si128(k[3], 0x08));
    k[5] = expand_step(k[4], _mm_aeskeygenassist_si128(k[4], 0x10));
    k[6] = expand_step(k[5], _mm_aeskeygenassist_si128(k[5], 0x20));
    k[7] = expand_step(k[6], _mm_aeskeygenassist_si128(k[6], 0x40));
    k[8] = expand_step(k[7], _mm_aeskeygenassist_si128(k[7], 0x80));
    k[9] = expand_step(k[8], _mm_aeskeygenassist_si128(k[8], 0x1b));
    k[10] = expand_step(k[9], _mm_aeskeygenassist_si128(k[9], 0x36));
    for (int i = 0; i < 11; i++) _mm_storeu_si128((__m128i *)(void *)(rk + 16 * i), k[i]);
    sodium_memzero(k, sizeof k);
}

#define AES_ROUNDS8(b, r)                                                                          \
    do {                                                                                           \
        b##0 = _mm_aesenc_si128(b##0, r); b##1 = _mm_aesenc_si128(b##1, r);                        \
        b##2 = _mm_aesenc_si128(b##2, r); b##3 = _mm_aesenc_si128(b##3, r);                        \
        b##4 = _mm_aesenc_si128(b##4, r); b##5 = _mm_aesenc_si128(b##5, r);                        \
        b##6 = _mm_aesenc_si128(b##6, r); b##7 = _mm_aesenc_si128(b##7, r);                        \
    } while (0)

TM_AES_TARGET static void aesni_ecb(const uint8_t *rkb, const uint8_t *in, uint8_t *out, size_t n) {
    __m128i rk[11];
    for (int i = 0; i < 11; i++) rk[i] = _mm_loadu_si128((const __m128i *)(const void *)(rkb + 16 * i));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i *s = (const __m128i *)(const void *)(in + 16 * i);
        __m128i b0 = _mm_xor_si128(_mm_loadu_si128(s + 0), rk[0]);
        __m128i b1 = _mm_xor_si128(_mm_loadu_si128(s + 1), rk[0]);
        __m128i b2 = _mm_xor_si128(_mm_loadu_si128(s + 2), rk[0]);
        __m128i b3 = _mm_xor_si128(_mm_loadu_si128(s + 3), rk[0]);
        __m128i b4 = _mm_xor_si128(_mm_loadu_si128(s + 4), rk[0]);
        __m128i b5 = _mm_xor_si128(_mm_loadu_si128(s + 5), rk[0]);
        __m128i b6 = _mm_xor_si128(_mm_loadu_si128(s + 6), rk[0]);
        __m128i b7 = _mm_xor_si128(_mm_loadu_si128(s + 7), rk[0]);
        for (int r = 1; r < 10; r++) AES_ROUNDS8(b, rk[r]);
        __m128i *d = (__m128i *)(void *)(out + 16 * i);
        _mm_storeu_si128(d + 0, _mm_aesenclast_si128(b0, rk[10]));
        _mm_storeu_si128(d + 1, _mm_aesenclast_si128(b1, rk[10]));
        _mm_storeu_si128(d + 2, _mm_aesenclast_si128(b2, rk[10]));
        _mm_storeu_si128(d + 3, _mm_aesenclast_si128(b3, rk[10]));
        _mm_storeu_si128(d + 4, _mm_aesenclast_si128(b4, rk[10]));
        _mm_storeu_si128(d + 5, _mm_aesenclast_si128(b5, rk[10]));
        _mm_storeu_si128(d + 6, _mm_aesenclast_si128(b6, rk[10]));
        _mm_storeu_si128(d + 7, _mm_aesenclast_si128(b7, rk[10]));
    }
    for (; i < n; i++) {
        __m128i b = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)(in + 16 * i)), rk[0]);
        for (int r = 1; r < 10; r++) b = _mm_aesenc_si128(b, rk[r]);
        _mm_storeu_si128((__m128i *)(void *)(out + 16 * i), _mm_aesenclast_si128(b, rk[10]));
    }
}

#define TM_VAES_TARGET __attribute__((target("aes,sse4.1,avx2,vaes")))
#define VAES_ROUNDS8(b, r)                                                                         \
    do {                                                                                           \
        b##0 = _mm256_aesenc_epi128(b##0, r); b##1 = _mm256_aesenc_epi128(b##1, r);                \
        b##2 = _mm256_aesenc_epi128(b##2, r); b##3 = _mm256_aesenc_epi128(b##3, r);                \
        b##4 = _mm256_aesenc_epi128(b##4, r); b##5 = _mm256_aesenc_epi128(b##5, r);                \
        b##6 = _mm256_aesenc_epi128(b##6, r); b##7 = _mm256_aesenc_epi128(b##7, r);                \
    } while (0)

/* CTR with 256-bit VAES: two blocks per register, 16 blocks per iteration.
 * Returns the number of blocks done (a multiple of 16). */
TM_VAES_TARGET static size_t vaes_ctr(const uint8_t *rkb, uint64_t nonce, uint64_t first, size_t n,
                                      uint8_t *out) {
    __m256i rk[11];
    for (int i = 0; i < 11; i++)
        rk[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(rkb + 16 * i)));
    const __m256i bswap_hi = _mm256_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 7, 6, 5, 4, 3, 2, 1, 0,
                                             8, 9, 10, 11, 12, 13, 14, 15, 7, 6, 5, 4, 3, 2, 1, 0);
    __m256i ctr = _mm256_set_epi64x((long long)(first + 1), (long long)nonce, (long long)first,
                                    (long long)nonce);
    const __m256i two = _mm256_set_epi64x(2, 0, 2, 0);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i c1 = _mm256_add_epi64(ctr, two), c2 = _mm256_add_epi64(c1, two);
        __m256i c3 = _mm256_add_epi64(c2, two), c4 = _mm256_add_epi64(c3, two);
        __m256i c5 = _mm256_add_epi64(c4, two), c6 = _mm256_add_epi64(c5, two);
        __m256i c7 = _mm256_add_epi64(c6, two);
        __m256i b0 = _mm256_xor_si256(_mm256_shuffle_epi8(ctr, bswap_hi), rk[0]);
        __m256i b1 = _mm256_xor_si256(_mm256_shuffle_epi8(c1, bswap_hi), rk[0]);
        __m256i b2 = _mm256_xor_si256(_mm256_shuffle_epi8(c2, bswap_hi), rk[0]);
        __m256i b3 = _mm256_xor_si256(_mm256_shuffle_epi8(c3, bswap_hi), rk[0]);
        __m256i b4 = _mm256_xor_si256(_mm256_shuffle_epi8(c4, bswap_hi), rk[0]);
        __m256i b5 = _mm256_xor_si256(_mm256_shuffle_epi8(c5, bswap_hi), rk[0]);
        __m256i b6 = _mm256_xor_si256(_mm256_shuffle_epi8(c6, bswap_hi), rk[0]);
        __m256i b7 = _mm256_xor_si256(_mm256_shuffle_epi8(c7, bswap_hi), rk[0]);
        ctr = _mm256_add_epi64(c7, two);
        for (int r = 1; r < 10; r++) VAES_ROUNDS8(b, rk[r]);
        __m256i *d = (__m256i *)(void *)(out + 16 * i);
        _mm256_storeu_si256(d + 0, _mm256_aesenclast_epi128(b0, rk[10]));
        _mm256_storeu_si256(d + 1, _mm256_aesenclast_epi128(b1, rk[10]));
        _mm256_storeu_si256(d + 2, _mm256_aesenclast_epi128(b2, rk[10]));
        _mm256_storeu_si256(d + 3, _mm256_aesenclast_epi128(b3, rk[10]));
        _mm256_storeu_si256(d + 4, _mm256_aesenclast_epi128(b4, rk[10]));
        _mm256_storeu_si256(d + 5, _mm256_aesenclast_epi128(b5, rk[10]));
        _mm256_storeu_si256(d + 6, _mm256_aesenclast_epi128(b6, rk[10]));
        _mm256_storeu_si256(d + 7, _mm256_aesenclast_epi128(b7, rk[10]));
    }
    return i;
}

/* ECB with 256-bit VAES: 16 blocks per iteration.  Returns blocks done. */
TM_VAES_TARGET static size_t vaes_ecb(const uint8_t *rkb, const uint8_t *in, uint8_t *out, size_t n) {
    __m256i rk[11];
    for (int i = 0; i < 11; i++)
        rk[i] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(rkb + 16 * i)));
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i *s = (const __m256i *)(const void *)(in + 16 * i);
        __m256i b0 = _mm256_xor_si256(_mm256_loadu_si256(s + 0), rk[0]);
        __m256i b1 = _mm256_xor_si256(_mm256_loadu_si256(s + 1), rk[0]);
        __m256i b2 = _mm256_xor_si256(_mm256_loadu_si256(s + 2), rk[0]);
        __m256i b3 = _mm256_xor_si256(_mm256_loadu_si256(s + 3), rk[0]);
        __m256i b4 = _mm256_xor_si256(_mm256_loadu_si256(s + 4), rk[0]);
        __m256i b5 = _mm256_xor_si256(_mm256_loadu_si256(s + 5), rk[0]);
        __m256i b6 = _mm256_xor_si256(_mm256_loadu_si256(s + 6), rk[0]);
        __m256i b7 = _mm256_xor_si256(_mm256_loadu_si256(s + 7), rk[0]);
        for (int r = 1; r < 10; r++) VAES_ROUNDS8(b, rk[r]);
        __m256i *d = (__m256i *)(void *)(out + 16 * i);
        _mm256_storeu_si256(d + 0, _mm256_aesenclast_epi128(b0, rk[10]));
        _mm256_storeu_si256(d + 1, _mm256_aesenclast_epi128(b1, rk[10]));
        _mm256_storeu_si256(d + 2, _mm256_aesenclast_epi128(b2, rk[10]));
        _mm256_storeu_si256(d + 3, _mm256_aesenclast_epi128(b3, rk[10]));
        _mm256_storeu_si256(d + 4, _mm256_aesenclast_epi128(b4, rk[10]));
        _mm256_storeu_si256(d + 5, _mm256_aesenclast_epi128(b5, rk[10]));
        _mm256_storeu_si256(d + 6, _mm256_aesenclast_epi128(b6, rk[10]));
        _mm256_storeu_si256(d + 7, _mm256_aesenclast_epi128(b7, rk[10]));
    }
    return i;
}

TM_AES_TARGET static void aesni_ctr(const uint8_t *rkb, uint64_t nonce, uint64_t first, size_t n,
                                    uint8_t *out) {
    __m128i rk[11];
    for (int i = 0; i < 11; i++) rk[i] = _mm_loadu_si128((const __m128i *)(const void *)(rkb + 16 * i));
    /* Block j is LE64(nonce) || BE64(j): as a little-endian 128-bit lane pair,
     * low lane = nonce, high lane = bswap64(j). */
    const __m128i bswap_hi = _mm_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 7, 6, 5, 4, 3, 2, 1, 0);
    __m128i ctr = _mm_set_epi64x((long long)first, (long long)nonce); /* high lane = j natural */
    const __m128i one = _mm_set_epi64x(1, 0);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i c1 = _mm_add_epi64(ctr, one), c2 = _mm_add_epi64(c1, one), c3 = _mm_add_epi64(c2, one);
        __m128i c4 = _mm_add_epi64(c3, one), c5 = _mm_add_epi64(c4, one), c6 = _mm_add_epi64(c5, one);
        __m128i c7 = _mm_add_epi64(c6, one);
        __m128i b0 = _mm_xor_si128(_mm_shuffle_epi8(ctr, bswap_hi), rk[0]);
        __m128i b1 = _mm_xor_si128(_mm_shuffle_epi8(c1, bswap_hi), rk[0]);
        __m128i b2 = _mm_xor_si128(_mm_shuffle_epi8(c2, bswap_hi), rk[0]);
        __m128i b3 = _mm_xor_si128(_mm_shuffle_epi8(c3, bswap_hi), rk[0]);
        __m128i b4 = _mm_xor_si128(_mm_shuffle_epi8(c4, bswap_hi), rk[0]);
        __m128i b5 = _mm_xor_si128(_mm_shuffle_epi8(c5, bswap_hi), rk[0]);
        __m128i b6 = _mm_xor_si128(_mm_shuffle_epi8(c6, bswap_hi), rk[0]);
        __m128i b7 = _mm_xor_si128(_mm_shuffle_epi8(c7, bswap_hi), rk[0]);
        ctr = _mm_add_epi64(c7, one);
        for (int r = 1; r < 10; r++) AES_ROUNDS8(b, rk[r]);
        __m128i *d = (__m128i *)(void *)(out + 16 * i);
        _mm_storeu_si128(d + 0, _mm_aesenclast_si128(b0, rk[10]));
        _mm_storeu_si128(d + 1, _mm_aesenclast_si128(b1, rk[10]));
        _mm_storeu_si128(d + 2, _mm_aesenclast_si128(b2, rk[10]));
        _mm_storeu_si128(d + 3, _mm_aesenclast_si128(b3, rk[10]));
        _mm_storeu_si128(d + 4, _mm_aesenclast_si128(b4, rk[10]));
        _mm_storeu_si128(d + 5, _mm_aesenclast_si128(b5, rk[10]));
        _mm_storeu_si128(d + 6, _mm_aesenclast_si128(b6, rk[10]));
        _mm_storeu_si128(d + 7, _mm_aesenclast_si128(b7, rk[10]));
    }
    for (; i < n; i++) {
        __m128i b = _mm_xor_si128(_mm_shuffle_epi8(ctr, bswap_hi), rk[0]);
        ctr = _mm_add_epi64(ctr, one);
        for (int r = 1; r < 10; r++) b = _mm_aesenc_si128(b, rk[r]);
        _mm_storeu_si128((__m128i *)(void *)(out + 16 * i), _mm_aesenclast_si128(b, rk[10]));
    }
}
#endif

/* ------------------------------------------------------------------------ */
/* Backend-neutral AES                                                       */
/* ------------------------------------------------------------------------ */

int tm_aes_init(tm_aes *a, const uint8_t key[16], const uint8_t rk[176]) {
    memset(a, 0, sizeof *a);
    a->backend = tm_backend;
    a->rk = rk;
    if (a->backend == TOKMARK_BACKEND_AESNI) return TOKMARK_OK;
    EVP_CIPHER_CTX *ecb = EVP_CIPHER_CTX_new();
    EVP_CIPHER_CTX *ctr = EVP_CIPHER_CTX_new();
    if (ecb == NULL || ctr == NULL) {
        EVP_CIPHER_CTX_free(ecb);
        EVP_CIPHER_CTX_free(ctr);
        return TOKMARK_ERR_NOMEM;
    }
    uint8_t iv[16] = {0};
    if (EVP_EncryptInit_ex(ecb, EVP_aes_128_ecb(), NULL, key, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(ecb, 0) != 1 ||
        EVP_EncryptInit_ex(ctr, EVP_aes_128_ctr(), NULL, key, iv) != 1) {
        EVP_CIPHER_CTX_free(ecb);
        EVP_CIPHER_CTX_free(ctr);
        return TOKMARK_ERR_CRYPTO;
    }
    a->ecb = ecb;
    a->ctr = ctr;
    return TOKMARK_OK;
}

void tm_aes_free(tm_aes *a) {
    if (a == NULL) return;
    EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)a->ecb);
    EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)a->ctr);
    sodium_memzero(a, sizeof *a);
}

#define TM_EVP_CHUNK ((size_t)1 << 20) /* blocks per EVP call: keeps lengths in int */

void tm_aes_ecb(tm_aes *a, const uint8_t *in, uint8_t *out, size_t n) {
#if TM_HAVE_AESNI
    if (a->backend == TOKMARK_BACKEND_AESNI) {
        size_t done = tm_use_vaes ? vaes_ecb(a->rk, in, out, n) : 0;
        if (done < n) aesni_ecb(a->rk, in + 16 * done, out + 16 * done, n - done);
        return;
    }
#endif
    while (n > 0) {
        size_t k = n < TM_EVP_CHUNK ? n : TM_EVP_CHUNK;
        int len = 0;
        (void)EVP_EncryptUpdate((EVP_CIPHER_CTX *)a->ecb, out, &len, in, (int)(k * 16));
        in += 16 * k;
        out += 16 * k;
        n -= k;
    }
}

void tm_aes_ctr(tm_aes *a, uint64_t nonce, uint64_t first, size_t n, uint8_t *out) {
#if TM_HAVE_AESNI
    if (a->backend == TOKMARK_BACKEND_AESNI) {
        size_t done = tm_use_vaes ? vaes_ctr(a->rk, nonce, first, n, out) : 0;
        if (done < n) aesni_ctr(a->rk, nonce, first + done, n - done, out + 16 * done);
        return;
    }
#endif
    uint8_t iv[16];
    tm_store_ctr_block(iv, nonce, first);
    EVP_CIPHER_CTX *c = (EVP_CIPHER_CTX *)a->ctr;
    (void)EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv);
    memset(out, 0, 16 * n);
    while (n > 0) {
        size_t k = n < TM_EVP_CHUNK ? n : TM_EVP_CHUNK;
        int len = 0;
        (void)EVP_EncryptUpdate(c, out, &len, out, (int)(k * 16));
        out += 16 * k;
        n -= k;
    }
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

static const char TM_KDF_CTX[crypto_kdf_CONTEXTBYTES] = {'t', 'o', 'k', 'm', 'a', 'r', 'k', '1'};

static void portable_expand(const uint8_t key[16], uint8_t rk[176]);
#if TM_HAVE_AESNI
static void aesni_expand(const uint8_t key[16], uint8_t rk[176]);
#endif

int tm_secrets_create(tm_secrets **out, const uint8_t master[TOKMARK_MASTER_KEY_BYTES],
                      tokmark_scheme scheme, tokmark_seeding seeding) {
    *out = NULL;
    tm_secrets *s = (tm_secrets *)sodium_malloc(sizeof *s);
    if (s == NULL) return TOKMARK_ERR_NOMEM;
    memcpy(s->master, master, TOKMARK_MASTER_KEY_BYTES);
    if (crypto_kdf_derive_from_key(s->k_fp, sizeof s->k_fp, 0x01, TM_KDF_CTX, s->master) != 0 ||
        crypto_kdf_derive_from_key(s->k_acct, sizeof s->k_acct, 0x02, TM_KDF_CTX, s->master) != 0 ||
        crypto_kdf_derive_from_key(s->k_ctx, sizeof s->k_ctx, 0x10u + (uint64_t)seeding, TM_KDF_CTX,
                                   s->master) != 0 ||
        crypto_kdf_derive_from_key(s->k_val, sizeof s->k_val, 0x20u + (uint64_t)scheme, TM_KDF_CTX,
                                   s->master) != 0) {
        sodium_free(s);
        return TOKMARK_ERR_CRYPTO;
    }
    tm_aes_expand(s->k_ctx, s->rk_ctx, 0);
    tm_aes_expand(s->k_val, s->rk_val, 0);
    sodium_mprotect_readonly(s);
    *out = s;
    return TOKMARK_OK;
}

void tm_aes_expand(const uint8_t key[16], uint8_t rk[176], int portable) {
#if TM_HAVE_AESNI
    if (!portable && cpu_has_aesni()) {
        aesni_expand(key, rk);
        return;
    }
#endif
    portable_expand(key, rk);
}

void tm_secrets_free(tm_secrets *s) {
    if (s != NULL) sodium_free(s); /* sodium_free re-enables writes and wipes */
}

/* The AES-128 key schedule in portable C (FIPS 197 §5.2).  Used only where the
 * CPU lacks AES-NI, so that rk_* is always the same well-defined value. */
static uint8_t sbox_byte(uint8_t x) {
    /* multiplicative inverse in GF(2^8) followed by the affine map; slow but
     * only used for 2 × 40 bytes per profile. */
    uint8_t inv = 0;
    if (x != 0) {
        for (unsigned c = 1; c < 256; c++) {
            unsigned a = x, b = c, p = 0;
            for (int i = 0; i < 8; i++) {
                if (b & 1) p ^= a;
                a <<= 1;
                if (a & 0x100) a ^= 0x11b;
                b >>= 1;
            }
            if (p == 1) { inv = (uint8_t)c; break; }
        }
    }
    uint8_t s = inv;
    uint8_t r = (uint8_t)(inv ^ 0x63);
    for (int i = 1; i <= 4; i++) r ^= (uint8_t)((s << i) | (s >> (8 - i)));
    return r;
}

static void portable_expand(const uint8_t key[16], uint8_t rk[176]) {
    static const uint8_t rcon[10] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36};
    memcpy(rk, key, 16);
    for (int i = 4; i < 44; i++) {
        uint8_t t[4];
        memcpy(t, rk + 4 * (i - 1), 4);
        if (i % 4 == 0) {
            uint8_t t0 = t[0];
            t[0] = (uint8_t)(sbox_byte(t[1]) ^ rcon[i / 4 - 1]);
            t[1] = sbox_byte(t[2]);
            t[2] = sbox_byte(t[3]);
            t[3] = sbox_byte(t0);
        }
        for (int j = 0; j < 4; j++) rk[4 * i + j] = (uint8_t)(rk[4 * (i - 4) + j] ^ t[j]);
    }
}

/* ------------------------------------------------------------------------ */
/* Contexts (SPEC §4) and fingerprints (§7.2)                                */
/* ------------------------------------------------------------------------ */

uint32_t tm_context_length(const tokmark_params *p) {
    return p->seeding == TOKMARK_SEEDING_SELFHASH ? p->context_width - 1 : p->context_width;
}

/* LeftHash nonces for n windows: window k is toks[start[k] .. start[k]+h-1].
 * scratch must hold 16*n bytes. */
void tm_nonce_left_batch(tm_aes *a, const int32_t *toks, const uint32_t *start, size_t n, uint32_t h,
                         uint8_t *scratch, uint64_t *out) {
    uint32_t nb = (h + 3) / 4;
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t w = h - 4 * b < 4 ? h - 4 * b : 4; /* tokens in this block */
        for (size_t k = 0; k < n; k++) {
            const int32_t *t = toks + start[k] + 4 * b;
            /* P_b as two words, built in registers: a block assembled from
             * small stores and then read whole would stall store forwarding */
            uint64_t p0, p1;
            if (w == 4 && !TM_BIG_ENDIAN) { /* the int32 tokens already are LE32 words */
                memcpy(&p0, t, 8);
                memcpy(&p1, t + 2, 8);
            } else {
                uint64_t v[4] = {0, 0, 0, 0};
                for (uint32_t j = 0; j < w; j++) v[j] = (uint32_t)t[j];
                p0 = v[0] | v[1] << 32;
                p1 = v[2] | v[3] << 32;
                if (TM_BIG_ENDIAN) {
                    p0 = tm_bswap64(p0);
                    p1 = tm_bswap64(p1);
                }
            }
            uint8_t *x = scratch + 16 * k;
            if (b > 0) { /* CBC chaining: X_b = AES(X_{b-1} xor P_b) */
                uint64_t x0, x1;
                memcpy(&x0, x, 8);
                memcpy(&x1, x + 8, 8);
                p0 ^= x0;
                p1 ^= x1;
            }
            if (TM_BIG_ENDIAN) {
                memcpy(x, &p0, 8);
                memcpy(x + 8, &p1, 8);
            } else {
                tm_store128(x, p0, p1);
            }
        }
        tm_aes_ecb(a, scratch, scratch, n);
    }
    for (size_t k = 0; k < n; k++) out[k] = tm_load64le(scratch + 16 * k);
}

/* SelfHash nonces: tuple k has previous tokens toks[start[k] .. start[k]+h-2]
 * and candidate cand[k].  scratch must hold 16*n*(h-1) bytes. */
void tm_nonce_self_batch(tm_aes *a, const int32_t *toks, const uint32_t *start, const int32_t *cand,
                         size_t n, uint32_t h, uint8_t *scratch, uint64_t *out) {
    uint32_t c = h - 1;
    for (size_t k = 0; k < n; k++)
        for (uint32_t j = 0; j < c; j++) /* LE32(x_j) || LE32(t) || 0^8 */
            tm_store128(scratch + 16 * (k * c + j),
                        (uint64_t)(uint32_t)toks[start[k] + j] | (uint64_t)(uint32_t)cand[k] << 32, 0);
    tm_aes_ecb(a, scratch, scratch, n * c);
    for (size_t k = 0; k < n; k++) {
        uint64_t m = UINT64_MAX;
        for (uint32_t j = 0; j < c; j++) {
            uint64_t v = tm_load64le(scratch + 16 * (k * c + j));
            if (v < m) m = v;
        }
        out[k] = m;
    }
}

/* ------------------------------------------------------------------------ */
/* Inspection API (O(1), allocation only on the portable backend)           */
/* ------------------------------------------------------------------------ */

typedef struct inspect {
    tm_aes ctx, val;
    int ok;
} inspect;

static void inspect_open(inspect *s, const tokmark_profile *p) {
    int r1 = tm_aes_init(&s->ctx, p->sec->k_ctx, p->sec->rk_ctx);
    int r2 = tm_aes_init(&s->val, p->sec->k_val, p->sec->rk_val);
    s->ok = (r1 == TOKMARK_OK && r2 == TOKMARK_OK);
}

static void inspect_close(inspect *s) {
    tm_aes_free(&s->ctx);
    tm_aes_free(&s->val);
}

static uint64_t nonce_with(inspect *s, const tokmark_params *pp, const int32_t *prev, int32_t token) {
    uint8_t scratch[16 * TOKMARK_MAX_CONTEXT];
    uint64_t n = 0;
    uint32_t zero = 0;
    if (pp->seeding == TOKMARK_SEEDING_SELFHASH)
        tm_nonce_self_batch(&s->ctx, prev, &zero, &token, 1, pp->context_width, scratch, &n);
    else
        tm_nonce_left_batch(&s->ctx, prev, &zero, 1, pp->context_width, scratch, &n);
    return n;
}

uint64_t tokmark_nonce(const tokmark_profile *p, const int32_t *prev, int32_t token) {
    inspect s;
    inspect_open(&s, p);
    uint64_t n = s.ok ? nonce_with(&s, &p->params, prev, token) : 0;
    inspect_close(&s);
    return n;
}

void tokmark_value_block(const tokmark_profile *p, uint64_t nonce, uint64_t index, uint8_t out[16]) {
    inspect s;
    inspect_open(&s, p);
    if (s.ok)
        tm_aes_ctr(&s.val, nonce, index, 1, out);
    else
        memset(out, 0, 16);
    inspect_close(&s);
}

uint32_t tokmark_value_u32(const tokmark_profile *p, const int32_t *prev, int32_t token) {
    inspect s;
    inspect_open(&s, p);
    uint32_t u = 0;
    if (s.ok) {
        uint64_t n = nonce_with(&s, &p->params, prev, token);
        uint8_t b[16];
        tm_aes_ctr(&s.val, n, (uint32_t)token >> 2, 1, b);
        u = tm_load32le(b + 4 * ((uint32_t)token & 3));
    }
    inspect_close(&s);
    return u;
}

void tokmark_gvalues(const tokmark_profile *p, const int32_t *prev, int32_t token, uint8_t *g) {
    inspect s;
    inspect_open(&s, p);
    uint8_t b[16] = {0};
    if (s.ok) {
        uint64_t n = nonce_with(&s, &p->params, prev, token);
        tm_aes_ctr(&s.val, n, (uint32_t)token, 1, b);
    }
    for (uint32_t l = 0; l < p->params.layers; l++) g[l] = (uint8_t)((b[l >> 3] >> (l & 7)) & 1);
    inspect_close(&s);
}

int tokmark_is_green(const tokmark_profile *p, const int32_t *prev, int32_t token) {
    return tokmark_value_u32(p, prev, token) < p->params.gamma_threshold;
}

double tokmark_gumbel_term(uint32_t u) {
    /* r = u / 2^32 is exact; log1p keeps full relative accuracy for small r. */
    return -log1p(-(double)u * 0x1p-32);
}
