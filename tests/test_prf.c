/* test_prf.c — the AES backends and the PRF layout (SPEC.md §3, §4).
 * Known answers from FIPS 197; every backend (OpenSSL EVP, AES-NI, AES-NI
 * with VAES) must give identical ECB and CTR output, and CTR block j must be
 * ECB of LE64(N) || BE64(j). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include "internal.h"
#include <sodium.h>

static const uint8_t FIPS_KEY[16] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                     0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};
static const uint8_t FIPS_PT[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
static const uint8_t FIPS_CT[16] = {0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30,
                                    0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a};

/* A secrets object for a fixed master key: its k_val and k_ctx drive the
 * backend comparisons below. */
static const tm_secrets *fips_secrets(void) {
    static tm_secrets *s;
    if (s == NULL) {
        uint8_t master[32] = {0};
        assert_int_equal(tm_secrets_create(&s, master, TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_LEFTHASH), TOKMARK_OK);
    }
    return s;
}

static int backends[3]; /* portable, aesni, aesni+vaes */
static int nbackends;

static void use_backend(int i, int *saved_vaes) {
    *saved_vaes = tm_use_vaes;
    if (i == 0) {
        assert_int_equal(tokmark_set_backend(TOKMARK_BACKEND_PORTABLE), TOKMARK_OK);
    } else {
        assert_int_equal(tokmark_set_backend(TOKMARK_BACKEND_AESNI), TOKMARK_OK);
        tm_use_vaes = (i == 2);
    }
}

static int setup(void **state) {
    (void)state;
    assert_int_equal(tokmark_init(), TOKMARK_OK);
    nbackends = 1;
    backends[0] = 1;
    if (tokmark_set_backend(TOKMARK_BACKEND_AESNI) == TOKMARK_OK) {
        nbackends = tm_use_vaes ? 3 : 2;
        if (!tm_use_vaes) print_message("note: no VAES on this CPU; testing 2 backends\n");
    } else {
        print_message("note: no AES-NI on this CPU; testing the portable backend only\n");
    }
    return 0;
}

/* FIPS 197: the appendix A.1 key expansion (last round key of 2b7e1516...
 * is d014f9a8 c9ee2589 e13f0cc8 b6630ca6) by both expansions, and the
 * appendix C.1 vector through tm_aes_ecb on every backend. */
static void test_fips197(void **state) {
    (void)state;
    static const uint8_t key_a1[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                                       0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
    static const uint8_t last_a1[16] = {0xd0, 0x14, 0xf9, 0xa8, 0xc9, 0xee, 0x25, 0x89,
                                        0xe1, 0x3f, 0x0c, 0xc8, 0xb6, 0x63, 0x0c, 0xa6};
    uint8_t rk_p[176], rk_n[176];
    tm_aes_expand(key_a1, rk_p, 1);
    tm_aes_expand(key_a1, rk_n, 0);
    assert_memory_equal(rk_p + 160, last_a1, 16);
    assert_memory_equal(rk_p, rk_n, 176);
    uint8_t rk[176];
    tm_aes_expand(FIPS_KEY, rk, 0);
    int saved;
    for (int b = 0; b < nbackends; b++) {
        use_backend(b, &saved);
        tm_aes a;
        assert_int_equal(tm_aes_init(&a, FIPS_KEY, rk), TOKMARK_OK);
        uint8_t out[16 * 9], in[16 * 9];
        for (int i = 0; i < 9; i++) memcpy(in + 16 * i, FIPS_PT, 16); /* batched and single */
        tm_aes_ecb(&a, in, out, 9);
        for (int i = 0; i < 9; i++) assert_memory_equal(out + 16 * i, FIPS_CT, 16);
        tm_aes_free(&a);
        tm_use_vaes = saved;
    }
}

/* Every backend agrees with the first on ECB and CTR, over many lengths (the
 * 8- and 16-block kernels and their tails), nonces and counter offsets, and
 * CTR block j is ECB of LE64(N) || BE64(first + j). */
static void test_backends_agree(void **state) {
    (void)state;
    const tm_secrets *s = fips_secrets();
    enum { N = 1000 };
    static uint8_t in[16 * N], ref_ecb[16 * N], ref_ctr[16 * N], out[16 * N];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (uint8_t)(i * 131u + 7u);
    int saved;
    uint64_t nonces[] = {0, 1, 0x0123456789abcdefull, UINT64_MAX};
    uint64_t firsts[] = {0, 1, 5, (uint64_t)1 << 40}; /* block indices stay far below 2^64 (SPEC §3) */
    for (int b = 0; b < nbackends; b++) {
        use_backend(b, &saved);
        tm_aes a;
        assert_int_equal(tm_aes_init(&a, s->k_val, s->rk_val), TOKMARK_OK);
        for (size_t n = 1; n <= N; n = n * 3 + 1) {
            tm_aes_ecb(&a, in, out, n);
            if (b == 0) memcpy(ref_ecb, out, 16 * n);
            else assert_memory_equal(out, ref_ecb, 16 * n);
        }
        for (size_t ni = 0; ni < 4; ni++)
            for (size_t fi = 0; fi < 4; fi++)
                for (size_t n = 1; n <= N; n = n * 2 + 1) {
                    tm_aes_ctr(&a, nonces[ni], firsts[fi], n, out);
                    /* block j = ECB(LE64(N) || BE64(first + j)) */
                    uint8_t blk[16], enc[16];
                    for (size_t j = 0; j < n; j += 97) {
                        tm_store64le(blk, nonces[ni]);
                        tm_store64be(blk + 8, firsts[fi] + j);
                        tm_aes_ecb(&a, blk, enc, 1);
                        assert_memory_equal(out + 16 * j, enc, 16);
                    }
                    if (b == 0 && ni == 2 && fi == 2) memcpy(ref_ctr, out, 16 * n);
                    else if (ni == 2 && fi == 2) assert_memory_equal(out, ref_ctr, 16 * n);
                }
        tm_aes_free(&a);
        tm_use_vaes = saved;
    }
}

/* Nonces: LeftHash CBC-MAC over h tokens (h = 1..16), SelfHash anchored min. */
static void test_nonce_definitions(void **state) {
    (void)state;
    const tm_secrets *s = fips_secrets();
    int32_t toks[40];
    for (int i = 0; i < 40; i++) toks[i] = (int32_t)(i * 7919 % 100000);
    int saved;
    for (int b = 0; b < nbackends; b++) {
        use_backend(b, &saved);
        tm_aes a;
        assert_int_equal(tm_aes_init(&a, s->k_ctx, s->rk_ctx), TOKMARK_OK);
        for (uint32_t h = 1; h <= 16; h++) {
            uint32_t start[3] = {0, 5, 20};
            uint8_t scratch[16 * 3 * 16];
            uint64_t got[3];
            tm_nonce_left_batch(&a, toks, start, 3, h, scratch, got);
            for (int k = 0; k < 3; k++) {
                uint8_t x[16] = {0};
                for (uint32_t blk = 0; blk < (h + 3) / 4; blk++) {
                    uint8_t p[16] = {0};
                    for (uint32_t j = 0; j < 4 && 4 * blk + j < h; j++)
                        tm_store32le(p + 4 * j, (uint32_t)toks[start[k] + 4 * blk + j]);
                    for (int q = 0; q < 16; q++) x[q] ^= p[q];
                    tm_aes_ecb(&a, x, x, 1);
                }
                assert_true(got[k] == tm_load64le(x));
            }
        }
        for (uint32_t h = 2; h <= 16; h++) {
            uint32_t start[2] = {0, 7};
            int32_t cand[2] = {12345, 0};
            uint8_t scratch[16 * 2 * 15];
            uint64_t got[2];
            tm_nonce_self_batch(&a, toks, start, cand, 2, h, scratch, got);
            for (int k = 0; k < 2; k++) {
                uint64_t m = UINT64_MAX;
                for (uint32_t j = 0; j + 1 < h; j++) {
                    uint8_t blk[16] = {0};
                    tm_store32le(blk, (uint32_t)toks[start[k] + j]);
                    tm_store32le(blk + 4, (uint32_t)cand[k]);
                    tm_aes_ecb(&a, blk, blk, 1);
                    uint64_t v = tm_load64le(blk);
                    if (v < m) m = v;
                }
                assert_true(got[k] == m);
            }
        }
        tm_aes_free(&a);
        tm_use_vaes = saved;
    }
}

/* Sub-keys are libsodium KDF outputs with the SPEC §2.2 ids, distinct per
 * scheme and seeding. */
static void test_subkeys(void **state) {
    (void)state;
    uint8_t master[32];
    for (int i = 0; i < 32; i++) master[i] = (uint8_t)(255 - i);
    tm_secrets *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(tm_secrets_create(&a, master, TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_LEFTHASH), TOKMARK_OK);
    assert_int_equal(tm_secrets_create(&b, master, TOKMARK_SCHEME_GUMBEL, TOKMARK_SEEDING_LEFTHASH), TOKMARK_OK);
    assert_int_equal(tm_secrets_create(&c, master, TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_SELFHASH), TOKMARK_OK);
    static const char ctx[8] = {'t', 'o', 'k', 'm', 'a', 'r', 'k', '1'};
    uint8_t k[32];
    assert_int_equal(crypto_kdf_derive_from_key(k, 16, 0x21, ctx, master), 0);
    assert_memory_equal(a->k_val, k, 16);
    assert_int_equal(crypto_kdf_derive_from_key(k, 16, 0x22, ctx, master), 0);
    assert_memory_equal(b->k_val, k, 16);
    assert_int_equal(crypto_kdf_derive_from_key(k, 16, 0x11, ctx, master), 0);
    assert_memory_equal(a->k_ctx, k, 16);
    assert_int_equal(crypto_kdf_derive_from_key(k, 16, 0x12, ctx, master), 0);
    assert_memory_equal(c->k_ctx, k, 16);
    assert_int_equal(crypto_kdf_derive_from_key(k, 32, 0x01, ctx, master), 0);
    assert_memory_equal(a->k_fp, k, 32);
    assert_memory_not_equal(a->k_val, b->k_val, 16);
    assert_memory_not_equal(a->k_ctx, c->k_ctx, 16);
    /* the stored round keys are FIPS 197's: round key 0 is the key itself */
    assert_memory_equal(a->rk_val, a->k_val, 16);
    tm_secrets_free(a);
    tm_secrets_free(b);
    tm_secrets_free(c);
}

/* The fingerprint of SPEC §7.2, recomputed from its definition. */
static void test_fingerprint_definition(void **state) {
    (void)state;
    static const uint64_t M[17] = {
        0x9E3779B97F4A7C15ull, 0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull, 0xD6E8FEB86659FD93ull,
        0xFF51AFD7ED558CCDull, 0xC4CEB9FE1A85EC53ull, 0x87C37B91114253D5ull, 0x4CF5AD432745937Full,
        0xA0761D6478BD642Full, 0xE7037ED1A0B428DBull, 0x8EBC6AF09C88C6E3ull, 0x589965CC75374CC3ull,
        0x1D8E4E27C47D124Full, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 0x2545F4914F6CDD1Dull,
        0x9FB21C651E98DF25ull};
    int32_t t[17] = {5, -1, 100276, 0, 7, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    for (uint32_t c = 1; c <= 16; c++)
        for (uint32_t seeding = 1; seeding <= 2; seeding++) {
            uint64_t f = 0x243F6A8885A308D3ull ^ ((uint64_t)c * 0x100u + seeding);
            for (uint32_t i = 0; i <= c; i++) f += ((uint64_t)(uint32_t)t[i] + 1) * M[i];
            f = (f ^ (f >> 30)) * 0xBF58476D1CE4E5B9ull;
            f = (f ^ (f >> 27)) * 0x94D049BB133111EBull;
            f ^= f >> 31;
            if (f == 0) f = 1;
            assert_true(tm_fingerprint(t, c, seeding) == f);
        }
    /* order matters */
    int32_t a[2] = {1, 2}, b[2] = {2, 1};
    assert_true(tm_fingerprint(a, 1, 1) != tm_fingerprint(b, 1, 1));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips197),
        cmocka_unit_test(test_backends_agree),
        cmocka_unit_test(test_nonce_definitions),
        cmocka_unit_test(test_subkeys),
        cmocka_unit_test(test_fingerprint_definition),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
