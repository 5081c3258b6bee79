/* fuzz_util.h — helpers shared by the libFuzzer targets (static only).
 *
 * The UTF-8 checker here is written independently of src/tok/tiktoken.c
 * (from the table of well-formed byte sequences, Unicode 15 §3.9 table 3-7)
 * so that the targets can judge the library's validation and replacement. */
#ifndef TOKMARK_FUZZ_UTIL_H
#define TOKMARK_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tokmark.h"

/* A failed invariant: print it and abort, so that libFuzzer keeps the input. */
#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (%s:%d): ", #cond, __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Offset of the first byte that does not start a well-formed UTF-8 sequence
 * (table 3-7), or n when s[0..n) is well-formed. */
static inline size_t fz_utf8_first_bad(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b <= 0x7F) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            len = 2;
        } else if (b == 0xE0) {
            len = 3;
            lo = 0xA0;
        } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
            len = 3;
        } else if (b == 0xED) {
            len = 3;
            hi = 0x9F;
        } else if (b == 0xF0) {
            len = 4;
            lo = 0x90;
        } else if (b >= 0xF1 && b <= 0xF3) {
            len = 4;
        } else if (b == 0xF4) {
            len = 4;
            hi = 0x8F;
        } else {
            return i;
        }
        if (n - i < len) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
        i += len;
    }
    return n;
}

/* Encode everything (two calls: count, then fill) and check the snprintf-like
 * contract: the count equals the number written, a short buffer gets the same
 * count and a prefix of the ids.  Returns the library error; *ids_out (malloc'd,
 * or NULL) and *n_out receive the ids on success, *n_out the error offset
 * otherwise. */
static inline int fz_encode(tokmark_tokenizer_encoder *e, const uint8_t *s, size_t n, unsigned flags, int32_t **ids_out,
                     size_t *n_out) {
    *ids_out = NULL;
    size_t need = (size_t)-1;
    int rc = tokmark_tokenizer_encoder_encode(e, (const char *)s, n, NULL, 0, &need, flags);
    *n_out = need;
    if (rc != TOKMARK_OK) return rc;
    FZ_CHECK(need <= 3 * n, "%zu tokens for %zu bytes", need, n); /* >= 1 byte a token; U+FFFD: 3 */
    int32_t *ids = (int32_t *)malloc((need + 1) * sizeof *ids);
    FZ_CHECK(ids != NULL, "out of memory");
    size_t got = (size_t)-1;
    rc = tokmark_tokenizer_encoder_encode(e, (const char *)s, n, ids, need, &got, flags);
    FZ_CHECK(rc == TOKMARK_OK, "second call returned %d", rc);
    FZ_CHECK(got == need, "count %zu, then %zu", need, got);
    if (need >= 2) {
        size_t half = need / 2, got2 = 0;
        int32_t *part = (int32_t *)malloc((half + 1) * sizeof *part);
        FZ_CHECK(part != NULL, "out of memory");
        part[half] = -77; /* must stay untouched */
        rc = tokmark_tokenizer_encoder_encode(e, (const char *)s, n, part, half, &got2, flags);
        FZ_CHECK(rc == TOKMARK_OK && got2 == need, "short buffer: rc %d count %zu want %zu", rc, got2, need);
        for (size_t i = 0; i < half; i++) FZ_CHECK(part[i] == ids[i], "short buffer: id %zu differs", i);
        FZ_CHECK(part[half] == -77, "short buffer: written past cap");
        free(part);
    }
    *ids_out = ids;
    return TOKMARK_OK;
}

/* decode(ids) into a malloc'd buffer (two calls, checking the count). */
static inline uint8_t *fz_decode(const tokmark_tokenizer *t, const int32_t *ids, size_t n, size_t *len) {
    size_t need = 0;
    int rc = tokmark_tokenizer_decode(t, ids, n, NULL, 0, &need);
    FZ_CHECK(rc == TOKMARK_OK, "decode of encoder output returned %d at id index %zu", rc, need);
    uint8_t *b = (uint8_t *)malloc(need + 1);
    FZ_CHECK(b != NULL, "out of memory");
    size_t got = 0;
    rc = tokmark_tokenizer_decode(t, ids, n, (char *)b, need, &got);
    FZ_CHECK(rc == TOKMARK_OK && got == need, "decode: rc %d, length %zu then %zu", rc, need, got);
    *len = need;
    return b;
}

#endif
