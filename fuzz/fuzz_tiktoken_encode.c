/* fuzz_tiktoken_encode.c — libFuzzer target: the tiktoken encoder.
 *
 * The four built-in encodings are loaded once (from data/tokenizers/ or
 * $TOKMARK_DATA_DIR: run scripts/fetch-tokenizers.sh first).  Every input is
 * encoded with each of them under the four combinations of
 * TOKMARK_ENCODE_ALLOW_SPECIAL and TOKMARK_ENCODE_REPLACE_INVALID, and the
 * target aborts when an invariant breaks:
 *   - the count/fill/short-buffer contract of encode (fuzz_util.h);
 *   - strict mode accepts exactly the well-formed UTF-8 inputs (by an
 *     independent checker) and reports the offset of the first bad byte;
 *   - every id decodes; without ALLOW_SPECIAL no special token's id appears;
 *   - decode(encode(x)) == x for well-formed x, with and without ALLOW_SPECIAL;
 *   - with REPLACE_INVALID encoding always succeeds, the decoded bytes are
 *     well-formed UTF-8, equal x when x is well-formed (same ids as strict
 *     mode), and re-encoding them strictly gives the same ids;
 *   - a fresh encoder gives the same ids as the reused one;
 *   - differential: byte-level BPE of src/tok/bpe.c (tm_bpe_encode, through
 *     the private src/tok/tok.h), on the first 1024 input bytes taken as one
 *     piece — the linear path up to 64 bytes, the heap path beyond — equals a
 *     plain transcription of tiktoken's _byte_pair_merge written here.
 * Run by `make fuzz`. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tokmark.h"
#include "tok/tok.h"
#include "fuzz_util.h"

#define NENC 4
static const char *const enc_names[NENC] = {"cl100k_base", "o200k_base", "p50k_base", "r50k_base"};
/* Special tokens' ids (SPEC.md §9.2); 0 ends a list. */
static const int32_t enc_special[NENC][6] = {
    {100257, 100258, 100259, 100260, 100276, 0}, {199999, 200018, 0}, {50256, 0}, {50256, 0}};

static tokmark_tokenizer *g_tok[NENC];
static tokmark_tokenizer_encoder *g_enc[NENC];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (sodium_init() < 0) abort(); /* SHA-256 of rank files; the rest of tokmark_init is not linked */
    for (int i = 0; i < NENC; i++) {
        int rc = tokmark_tokenizer_load(&g_tok[i], enc_names[i], NULL);
        if (rc != TOKMARK_OK) {
            fprintf(stderr, "fuzz_tiktoken_encode: cannot load %s (%s); run scripts/fetch-tokenizers.sh\n",
                    enc_names[i], tokmark_error_name(rc));
            exit(1);
        }
        if (tokmark_tokenizer_encoder_create(&g_enc[i], g_tok[i]) != TOKMARK_OK) abort();
    }
    return 0;
}

static int is_special(int which, int32_t id) {
    for (int k = 0; enc_special[which][k] != 0; k++)
        if (enc_special[which][k] == id) return 1;
    return 0;
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static void one_encoding(int which, const uint8_t *data, size_t size, size_t bad) {
    const tokmark_tokenizer *t = g_tok[which];
    tokmark_tokenizer_encoder *e = g_enc[which];
    const char *name = enc_names[which];
    uint32_t vocab = tokmark_tokenizer_vocab_size(t);
    int32_t *strict_ids[2] = {NULL, NULL};
    size_t strict_n[2] = {0, 0};
    for (unsigned flags = 0; flags < 4; flags++) {
        int special = (flags & TOKMARK_ENCODE_ALLOW_SPECIAL) != 0;
        int replace = (flags & TOKMARK_ENCODE_REPLACE_INVALID) != 0;
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = fz_encode(e, data, size, flags, &ids, &n);
        if (!replace && bad < size) {
            FZ_CHECK(rc == TOKMARK_ERR_INVALID, "%s flags %u: ill-formed at %zu but rc %d", name, flags, bad, rc);
            FZ_CHECK(n == bad, "%s flags %u: error offset %zu, first ill-formed byte at %zu", name, flags, n, bad);
            continue;
        }
        FZ_CHECK(rc == TOKMARK_OK, "%s flags %u: rc %d (first ill-formed byte at %zu of %zu)", name, flags, rc,
                 bad, size);
        for (size_t i = 0; i < n; i++) {
            FZ_CHECK(ids[i] >= 0 && (uint32_t)ids[i] < vocab, "%s: id %d out of range", name, ids[i]);
            FZ_CHECK(special || !is_special(which, ids[i]), "%s: special id %d without ALLOW_SPECIAL", name, ids[i]);
        }
        size_t dl = 0;
        uint8_t *d = fz_decode(t, ids, n, &dl);
        if (bad == size) {
            FZ_CHECK(dl == size && memcmp(d, data, size) == 0, "%s flags %u: decode(encode(x)) != x", name, flags);
        } else {
            FZ_CHECK(fz_utf8_first_bad(d, dl) == dl, "%s flags %u: replaced text is not well-formed", name, flags);
            FZ_CHECK(dl >= size, "%s: replaced text shorter than the input", name); /* 1-3 bytes -> 3 */
        }
        if (!replace) {
            strict_ids[special] = ids;
            strict_n[special] = n;
            ids = NULL;
        } else if (bad == size) {
            FZ_CHECK(same_ids(ids, n, strict_ids[special], strict_n[special]),
                     "%s flags %u: REPLACE_INVALID changed the ids of well-formed text", name, flags);
        } else {
            /* the replaced text, encoded strictly, gives the same ids */
            int32_t *again = NULL;
            size_t n2 = 0;
            rc = fz_encode(e, d, dl, flags & TOKMARK_ENCODE_ALLOW_SPECIAL, &again, &n2);
            FZ_CHECK(rc == TOKMARK_OK, "%s: re-encoding the replaced text: rc %d", name, rc);
            FZ_CHECK(same_ids(ids, n, again, n2), "%s flags %u: replaced text encodes differently", name, flags);
            free(again);
        }
        if (flags == 3) {
            /* a fresh encoder (tokmark_tokenizer_encode) agrees with the reused one */
            size_t n3 = 0;
            int32_t *fresh = (int32_t *)malloc((n + 1) * sizeof *fresh);
            FZ_CHECK(fresh != NULL, "out of memory");
            rc = tokmark_tokenizer_encode(t, (const char *)data, size, fresh, n, &n3, flags);
            FZ_CHECK(rc == TOKMARK_OK && same_ids(ids, n, fresh, n3), "%s: fresh encoder differs", name);
            free(fresh);
        }
        free(d);
        free(ids);
    }
    free(strict_ids[0]);
    free(strict_ids[1]);
}

/* tiktoken's _byte_pair_merge, transcribed: parts[i] is the start of part i
 * and ranks[i] the rank of parts i and i+1 joined (TM_NO_RANK when none);
 * repeatedly merge the pair of smallest rank, leftmost on ties. */
#define REF_MAX 1024
static size_t ref_bpe(const tokmark_tokenizer *t, const uint8_t *p, size_t n, int32_t *out) {
    static uint32_t parts[REF_MAX + 1], ranks[REF_MAX + 1];
    size_t m = n + 1; /* boundaries 0..n */
    for (size_t i = 0; i <= n; i++) parts[i] = (uint32_t)i;
    for (size_t i = 0; i + 1 < m; i++)
        ranks[i] = i + 2 < m ? tm_tok_rank(t, p + parts[i], parts[i + 2] - parts[i]) : TM_NO_RANK;
    for (;;) {
        uint32_t best = TM_NO_RANK;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (ranks[i] < best) {
                best = ranks[i];
                bi = i;
            }
        if (best == TM_NO_RANK) break;
        /* drop boundary bi+1 */
        memmove(parts + bi + 1, parts + bi + 2, (m - bi - 2) * sizeof parts[0]);
        memmove(ranks + bi + 1, ranks + bi + 2, (m - bi - 3) * sizeof ranks[0]);
        m--;
        ranks[bi] = bi + 2 < m ? tm_tok_rank(t, p + parts[bi], parts[bi + 2] - parts[bi]) : TM_NO_RANK;
        if (bi > 0) ranks[bi - 1] = tm_tok_rank(t, p + parts[bi - 1], parts[bi + 1] - parts[bi - 1]);
    }
    size_t k = 0;
    for (size_t i = 0; i + 1 < m; i++) {
        uint32_t r = tm_tok_rank(t, p + parts[i], parts[i + 1] - parts[i]);
        FZ_CHECK(r != TM_NO_RANK, "reference BPE: part %zu is no token", i);
        out[k++] = (int32_t)r;
    }
    return k;
}

static void bpe_differential(const tokmark_tokenizer *t, const uint8_t *p, size_t n) {
    static tm_bpe_scratch scratch;
    static int32_t want[REF_MAX], got[REF_MAX];
    if (n == 0) return;
    if (n > REF_MAX) n = REF_MAX;
    size_t nw = ref_bpe(t, p, n, want);
    tm_tok_out o = {got, REF_MAX, 0};
    FZ_CHECK(tm_bpe_encode(t, p, n, &scratch, &o) == TOKMARK_OK, "tm_bpe_encode failed");
    FZ_CHECK(o.n == nw, "BPE of %zu bytes: %zu tokens, reference %zu", n, o.n, nw);
    for (size_t i = 0; i < nw; i++)
        FZ_CHECK(got[i] == want[i], "BPE of %zu bytes: token %zu is %d, reference %d", n, i, got[i], want[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int which = 0; which < NENC; which += 2) bpe_differential(g_tok[which], data, size); /* cl100k, p50k */
    size_t bad = fz_utf8_first_bad(data, size);
    for (int which = 0; which < NENC; which++) one_encoding(which, data, size, bad);
    return 0;
}
