/* fuzz_hf_load.c — libFuzzer target: the Hugging Face tokenizer.json loader
 * (src/tok/hf.c, SPEC.md §9.8, §9.9) through the public API.
 *
 * Each input is written to one temporary file named *.json (on /dev/shm when
 * it exists) and loaded with tokmark_tokenizer_load().  Invariants: a failed
 * load leaves *out NULL and returns a tokmark_error; a loaded tokenizer
 * encodes a fixed sample text and the input itself (REPLACE_INVALID), under
 * the count/fill/short-buffer contract (fuzz_util.h), into ids below its
 * vocabulary size that all decode.  Run by `make fuzz`. */
#define _XOPEN_SOURCE 700 /* mkstemps, ftruncate, pwrite */
#define _DEFAULT_SOURCE   /* mkstemps */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "tokmark.h"
#include "fuzz_util.h"

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
    if (sodium_init() < 0) abort();
    snprintf(g_path, sizeof g_path, "%s/tokmark-fuzz-XXXXXX.json",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    g_fd = mkstemps(g_path, 5);
    if (g_fd < 0) {
        perror("fuzz_hf_load: mkstemps");
        exit(1);
    }
    atexit(remove_temp);
    return 0;
}

static const char sample[] = "Hello, world! It's 2024: the quick brown fox's 12345678 jumps.\n\n  \t"
                             "\xc3\xbcnic\xc3\xb6" "de \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e <|endoftext|> "
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static void check_text(const tokmark_tokenizer *t, tokmark_tokenizer_encoder *e, const uint8_t *s, size_t n,
                       unsigned flags) {
    int32_t *ids = NULL;
    size_t count = 0;
    int rc = fz_encode(e, s, n, flags, &ids, &count);
    if (rc != TOKMARK_OK) {
        /* a vocabulary without some bytes may be unable to encode a text */
        FZ_CHECK(rc < 0 && rc >= TOKMARK_ERR_TOO_SHORT, "encode returned %d", rc);
        return;
    }
    uint32_t vocab = tokmark_tokenizer_vocab_size(t);
    for (size_t i = 0; i < count; i++) FZ_CHECK(ids[i] >= 0 && (uint32_t)ids[i] < vocab, "id %d", ids[i]);
    size_t dl = 0;
    free(fz_decode(t, ids, count, &dl));
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (ftruncate(g_fd, 0) != 0 || (size > 0 && pwrite(g_fd, data, size, 0) != (ssize_t)size)) abort();
    tokmark_tokenizer *t = (tokmark_tokenizer *)(uintptr_t)1;
    size_t errline = 0;
    int rc = tokmark_tokenizer_load(&t, g_path, &errline);
    if (rc != TOKMARK_OK) {
        FZ_CHECK(rc < 0 && rc >= TOKMARK_ERR_TOO_SHORT, "load returned %d", rc);
        FZ_CHECK(t == NULL, "*out not NULL after a failed load");
        return 0;
    }
    FZ_CHECK(t != NULL, "no tokenizer");
    tokmark_tokenizer_encoder *e = NULL;
    FZ_CHECK(tokmark_tokenizer_encoder_create(&e, t) == TOKMARK_OK, "encoder_create");
    check_text(t, e, (const uint8_t *)sample, sizeof sample - 1, 0);
    check_text(t, e, (const uint8_t *)sample, sizeof sample - 1, TOKMARK_ENCODE_ALLOW_SPECIAL);
    check_text(t, e, data, size < 4096 ? size : 4096, TOKMARK_ENCODE_REPLACE_INVALID);
    tokmark_tokenizer_encoder_free(e);
    tokmark_tokenizer_free(t);
    return 0;
}
