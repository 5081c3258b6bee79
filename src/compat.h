/* compat.h — private interface of compat.c (SPEC.md §10); not installed.
 *
 * torch's CPU generator primitives (MT19937, randperm, randint(0, 2)) and the
 * SynthID hash-mode initial value, exposed so that the tests can check them
 * against testvectors/compat/mt19937.jsonl on their own. */
#ifndef TOKMARK_COMPAT_H
#define TOKMARK_COMPAT_H

#include <stddef.h>
#include <stdint.h>

/* torch's CPU mt19937: manual_seed(s) is init_genrand(s mod 2^32). */
typedef struct tm_mt {
    uint32_t s[624];
    uint32_t i;
} tm_mt;

void tm_mt_seed(tm_mt *m, uint64_t seed);
uint32_t tm_mt_next(tm_mt *m);   /* CPUGeneratorImpl::random() */
uint64_t tm_mt_next64(tm_mt *m); /* random64(): (random() << 32) | random(), first draw high */

/* torch.randperm(n) after manual_seed(seed), on CPU: out[0..n). n >= 1. */
void tm_randperm(uint64_t seed, uint32_t n, int32_t *out);
/* torch.randint(0, 2, (S,)) after manual_seed(seed): out[i] in {0, 1}. */
void tm_randint2(uint64_t seed, uint32_t S, uint8_t *out);
/* synthid-text HEAD: int.from_bytes(SHA-256(keys as LE int64), "big") mod (2^63 - 1).
 * Returns 0 on success, -1 if libcrypto fails. */
int tm_synthid_hash_iv(const int64_t *keys, uint32_t depth, uint64_t *iv);

/* SynthID internals, for the vectors' debug fields: the hash of the n-1
 * context tokens ctx (the value entered into the history), and the n-gram
 * key at depth d of the n tokens ngram (before the table lookup / hashing). */
struct tokmark_compat;
uint64_t tm_synthid_context_hash(const struct tokmark_compat *c, const int32_t *ctx);
uint64_t tm_synthid_ngram_key(const struct tokmark_compat *c, const int32_t *ngram, uint32_t d);

#endif /* TOKMARK_COMPAT_H */
