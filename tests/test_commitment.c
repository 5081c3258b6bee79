/* test_commitment.c — tokmark_profile_commitment (SPEC.md §2.8): the value is
 * BLAKE2b-256 of the domain string, the opening, the master key and the key
 * ID (recomputed here in one piece with libsodium), it binds every one of
 * them, and bad arguments are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "testutil.h"

static tokmark_profile *profile_of(tokmark_scheme scheme, uint8_t fill, const tokmark_params *over) {
    tokmark_params par;
    if (over != NULL) par = *over;
    else tokmark_params_default(&par, scheme);
    uint8_t key[TOKMARK_MASTER_KEY_BYTES];
    for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)(fill + 7 * i);
    tokmark_profile *p = NULL;
    TU_OK(tokmark_profile_from_key(&p, &par, key));
    return p;
}

/* The definition, in one call over the concatenation. */
static void reference(const uint8_t opening[32], uint8_t fill, const char *key_id, uint8_t out[32]) {
    static const char domain[] = "tokmark key commitment v1\n";
    uint8_t msg[26 + 32 + 32 + 32];
    assert_int_equal(sizeof domain - 1, 26);
    memcpy(msg, domain, 26);
    memcpy(msg + 26, opening, 32);
    for (size_t i = 0; i < 32; i++) msg[58 + i] = (uint8_t)(fill + 7 * i);
    assert_int_equal(strlen(key_id), 32);
    memcpy(msg + 90, key_id, 32);
    assert_int_equal(crypto_generichash(out, 32, msg, sizeof msg, NULL, 0), 0);
}

static void test_definition(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 42);
    static const tokmark_scheme schemes[] = {TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL, TOKMARK_SCHEME_SYNTHID};
    for (size_t s = 0; s < 3; s++)
        for (int rep = 0; rep < 20; rep++) {
            uint8_t opening[32], got[32], want[32];
            for (size_t i = 0; i < 32; i++) opening[i] = (uint8_t)tu_next(&r);
            uint8_t fill = (uint8_t)tu_next(&r);
            tokmark_profile *p = profile_of(schemes[s], fill, NULL);
            TU_OK(tokmark_profile_commitment(p, opening, got));
            reference(opening, fill, tokmark_profile_key_id(p), want);
            assert_memory_equal(got, want, 32);
            tokmark_profile_free(p);
        }
}

static void test_binding(void **state) {
    (void)state;
    uint8_t opening[32], o2[32], a[32], b[32];
    for (size_t i = 0; i < 32; i++) opening[i] = o2[i] = (uint8_t)(3 * i + 1);
    o2[31] ^= 1;
    tokmark_profile *p = profile_of(TOKMARK_SCHEME_KGW, 5, NULL);
    TU_OK(tokmark_profile_commitment(p, opening, a));
    TU_OK(tokmark_profile_commitment(p, opening, b));
    assert_memory_equal(a, b, 32); /* deterministic */
    TU_OK(tokmark_profile_commitment(p, o2, b));
    TU_CHECK(memcmp(a, b, 32) != 0, "another opening, the same commitment");
    /* another key */
    tokmark_profile *q = profile_of(TOKMARK_SCHEME_KGW, 6, NULL);
    TU_OK(tokmark_profile_commitment(q, opening, b));
    TU_CHECK(memcmp(a, b, 32) != 0, "another key, the same commitment");
    /* the same key with other parameters (key ID differs) */
    tokmark_params par;
    tokmark_params_default(&par, TOKMARK_SCHEME_KGW);
    par.context_width = 2;
    tokmark_profile *r2 = profile_of(TOKMARK_SCHEME_KGW, 5, &par);
    TU_OK(tokmark_profile_commitment(r2, opening, b));
    TU_CHECK(memcmp(a, b, 32) != 0, "other parameters, the same commitment");
    /* an account's sub-profile commits to its own key */
    tokmark_profile *acc = NULL;
    TU_OK(tokmark_profile_derive_account(&acc, p, "tenant-1", 8));
    TU_OK(tokmark_profile_commitment(acc, opening, b));
    TU_CHECK(memcmp(a, b, 32) != 0, "an account, the master's commitment");
    /* bad arguments */
    assert_int_equal(tokmark_profile_commitment(NULL, opening, b), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_profile_commitment(p, NULL, b), TOKMARK_ERR_INVALID);
    assert_int_equal(tokmark_profile_commitment(p, opening, NULL), TOKMARK_ERR_INVALID);
    tokmark_profile_free(p);
    tokmark_profile_free(q);
    tokmark_profile_free(r2);
    tokmark_profile_free(acc);
}

int main(void) {
    if (tokmark_init() != TOKMARK_OK || sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definition),
        cmocka_unit_test(test_binding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
