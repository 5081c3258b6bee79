/* fuzz_tiktoken_load.c — libFuzzer target: the tiktoken rank-file loader.
 *
 * The library has no loader from memory (and src/tok/ offers none), so each
 * input is written to one temporary file (on /dev/shm when it exists) and
 * loaded with tokmark_tokenizer_load_tiktoken(); the first input byte picks
 * the encoding whose special tokens and split pattern are used (the rest is
 * the file), so that the clash rule of every encoding is reached.  Invariants:
 *   - load fails with TOKMARK_ERR_FORMAT (and a line number no larger than
 *     the file's number of lines), NOMEM, or succeeds; on failure *out is NULL;
 *   - a loaded tokenizer has each ASCII byte as a token, has a vocabulary larger
 *     than its largest special id, and encodes a fixed sample text and the
 *     file itself (REPLACE_INVALID) into ids that decode back to the text
 *     (to well-formed UTF-8 for the file) — this runs BPE, both the linear and
 *     the heap path, on arbitrary vocabularies.
 * Run by `make fuzz`. */
#define _XOPEN_SOURCE 700 /* mkstemp, ftruncate, pwrite */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "tokmark.h"
#include "fuzz_util.h"

#define NENC 4
static const char *const enc_names[NENC] = {"cl100k_base", "o200k_base", "p50k_base", "r50k_base"};
static const int32_t enc_max_special[NENC] = {100276, 200018, 50256, 50256};

static char g_path[64];
static int g_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void remove_temp(void) {
    if (g_path[0] != '\0') unlink(g_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (sodium_init() < 0) abort(); /* SHA-256 of rank files; the rest of tokmark_init is not linked */
    snprintf(g_path, sizeof g_path, "%s/tokmark-fuzz-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    g_fd = mkstemp(g_path);
    if (g_fd < 0) {
        perror("fuzz_tiktoken_load: mkstemp");
        exit(1);
    }
    atexit(remove_temp);
    return 0;
}

static const char sample[] = "Hello, world! It's 2024: the quick brown fox's 12345678 jumps.\n\n  \t"
                             "\xc3\xbcnic\xc3\xb6" "de \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
                             "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd <|endoftext|> aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static void check_text(const tokmark_tokenizer *t, tokmark_tokenizer_encoder *e, const uint8_t *s, size_t n,
                       unsigned flags) {
    int32_t *ids = NULL;
    size_t count = 0;
    int rc = fz_encode(e, s, n, flags, &ids, &count);
    FZ_CHECK(rc == TOKMARK_OK, "encode with a loaded tokenizer: rc %d", rc);
    size_t dl = 0;
    uint8_t *d = fz_decode(t, ids, count, &dl);
    if (fz_utf8_first_bad(s, n) == n)
        FZ_CHECK(dl == n && memcmp(d, s, n) == 0, "decode(encode(x)) != x (flags %u)", flags);
    else
        FZ_CHECK(fz_utf8_first_bad(d, dl) == dl, "replaced text is not well-formed");
    free(d);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int which = data[0] % NENC;
    data++;
    size--;
    if (ftruncate(g_fd, 0) != 0 || (size > 0 && pwrite(g_fd, data, size, 0) != (ssize_t)size)) abort();
    size_t lines = 1;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';

    tokmark_tokenizer *t = (tokmark_tokenizer *)(uintptr_t)1;
    size_t errline = (size_t)-1;
    int rc = tokmark_tokenizer_load_tiktoken(&t, g_path, enc_names[which], &errline);
    if (rc != TOKMARK_OK) {
        FZ_CHECK(rc == TOKMARK_ERR_FORMAT || rc == TOKMARK_ERR_NOMEM, "load returned %d", rc);
        FZ_CHECK(t == NULL, "*out not NULL after a failed load");
        FZ_CHECK(rc != TOKMARK_ERR_FORMAT || errline <= lines, "error at line %zu of a %zu-line file", errline,
                 lines);
        return 0;
    }
    FZ_CHECK(t != NULL, "no tokenizer");
    FZ_CHECK(errline == 0, "errline %zu after a successful load", errline);
    uint32_t vocab = tokmark_tokenizer_vocab_size(t);
    FZ_CHECK(vocab > (uint32_t)enc_max_special[which], "vocabulary %u", vocab);
    FZ_CHECK(strcmp(tokmark_tokenizer_name(t), enc_names[which]) == 0, "name");
    tokmark_tokenizer_encoder *e = NULL;
    FZ_CHECK(tokmark_tokenizer_encoder_create(&e, t) == TOKMARK_OK, "encoder_create");
    /* every single byte is a token (SPEC.md §9.1): an ASCII character alone is one token */
    for (int b = 0; b < 128; b++) {
        uint8_t c = (uint8_t)b;
        int32_t id = -1;
        size_t n = 0, l = 0;
        FZ_CHECK(tokmark_tokenizer_encoder_encode(e, (const char *)&c, 1, &id, 1, &n, 0) == TOKMARK_OK && n == 1,
                 "byte %d: %zu tokens", b, n);
        const uint8_t *p = tokmark_tokenizer_token_bytes(t, id, &l);
        FZ_CHECK(p != NULL && l == 1 && p[0] == c, "byte %d: token %d is not that byte", b, id);
    }
    check_text(t, e, (const uint8_t *)sample, sizeof sample - 1, 0);
    check_text(t, e, (const uint8_t *)sample, sizeof sample - 1, TOKMARK_ENCODE_ALLOW_SPECIAL);
    size_t cut = size < 4096 ? size : 4096;
    check_text(t, e, data, cut, TOKMARK_ENCODE_REPLACE_INVALID);
    tokmark_tokenizer_encoder_free(e);
    tokmark_tokenizer_free(t);
    return 0;
}
