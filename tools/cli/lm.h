/* lm.h — the reference n-gram language model of the tools (SPEC.md §11).
 *
 * A stand-in for a neural model where no weights can be had: an order-N
 * (1..LM_MAX_ORDER, usually 4) interpolated modified Kneser–Ney model over
 * token ids.  It gives a next-token distribution over the FULL vocabulary,
 * as log-probabilities, like a neural model's logits, so the embedder can be
 * run in a real sampling loop (lm_generate, `tokmark generate`).
 *
 * Documents.  A document is a token sequence t1..tm.  The model sees it as
 * B t1 .. tm E where B and E are both the boundary token (for cl100k_base:
 * <|endoftext|>, 100257).  A context that starts a document therefore begins
 * with the boundary token; predicting the boundary token means "end of text".
 *
 * Life cycle.  Train with an lm_builder (add documents, finish), or load a
 * file written by lm_save.  A model is immutable: any number of threads may
 * call lm_logits / lm_logprob on it at once.  Functions returning int give
 * TOKMARK_OK or a negative tokmark_error (tokmark.h).
 *
 * Uses only the public header <tokmark.h> (the embedder in lm_generate). */
#ifndef TOKMARK_TOOLS_LM_H
#define TOKMARK_TOOLS_LM_H

#include <stddef.h>
#include <stdint.h>

#include "tokmark.h"

#define LM_MAX_ORDER 6
#define LM_TOKENIZER_MAX 64 /* tokenizer name: at most 63 bytes */

typedef struct lm_model lm_model;
typedef struct lm_builder lm_builder;

/* ---- training ---- */

/* A builder for an order-`order` model over ids 0..vocab-1 with boundary
 * token `boundary` (< vocab); `tokenizer` (may be NULL) is recorded in the
 * file so that users tokenize alike.  TOKMARK_ERR_INVALID for bad values. */
int lm_builder_new(lm_builder **out, uint32_t order, uint32_t vocab, int32_t boundary, const char *tokenizer);
void lm_builder_free(lm_builder *b); /* NULL is a no-op */
/* Add one document (ids in 0..vocab-1 other than the boundary; an empty
 * one is ignored).  TOKMARK_ERR_INVALID for an id out of range or equal to
 * the boundary, or past 2^32 positions in all; TOKMARK_ERR_NOMEM. */
int lm_builder_add(lm_builder *b, const int32_t *ids, size_t n);
/* Count, smooth and build the model from the documents added (at least one
 * token in all).  The builder may be freed afterwards. */
int lm_builder_finish(lm_builder *b, lm_model **out);

/* ---- files ---- */

/* Write the model to `path` (SPEC.md §11.4) through a temporary file and a
 * rename, so no half-written model is left.  TOKMARK_ERR_IO (errno set). */
int lm_save(const lm_model *m, const char *path);
/* Map a model file and check it completely (bounds, order of ids, counts),
 * so that no later call can read outside it.  TOKMARK_ERR_IO (errno set),
 * TOKMARK_ERR_FORMAT with a description of the place at fault in
 * why[0..why_size) (may be NULL), TOKMARK_ERR_NOMEM. */
int lm_load(lm_model **out, const char *path, char *why, size_t why_size);
void lm_free(lm_model *m); /* NULL is a no-op */

/* ---- queries ---- */

uint32_t lm_order(const lm_model *m);
uint32_t lm_vocab_size(const lm_model *m);
int32_t lm_boundary(const lm_model *m);
const char *lm_tokenizer_name(const lm_model *m); /* "" when none was recorded */

typedef struct lm_info {
    uint32_t order, vocab;
    int32_t boundary;
    uint64_t documents, tokens;        /* training data (tokens without boundaries) */
    uint64_t grams[LM_MAX_ORDER];      /* distinct n-grams of order n+1 */
    uint64_t contexts[LM_MAX_ORDER];   /* contexts of length k (k = 0: the empty one) */
    double discount[LM_MAX_ORDER][3];  /* D1, D2, D3+ of order n+1 */
    uint64_t file_bytes;               /* size of the file image */
} lm_info;
void lm_get_info(const lm_model *m, lm_info *info);

/* Log-probabilities (natural) of every token 0..V-1 after the history
 * ctx[0..n_ctx) (oldest first; only the last order-1 ids matter; ids out of
 * range count as unseen).  Put lm_boundary(m) first to mark the start of a
 * document.  logits has lm_vocab_size(m) entries; exp() of them sums to 1.
 * Never allocates, never fails. */
void lm_logits(const lm_model *m, const int32_t *ctx, size_t n_ctx, float *logits);
/* The natural log-probability of one token w after ctx (same model as
 * lm_logits, in double precision); -INFINITY for w out of range. */
double lm_logprob(const lm_model *m, const int32_t *ctx, size_t n_ctx, int32_t w);

/* The k largest entries of logits[0..V) (not -INFINITY) as candidates into
 * h[0..k), best first (ties: the smaller id first); returns how many. */
size_t lm_top_k(const float *logits, uint32_t V, tokmark_token_data *h, size_t k);

/* ---- generation: the sampling loop with the embedder inside ---- */

typedef struct lm_gen_config {
    uint32_t max_tokens;      /* tokens to generate at most */
    double temperature;       /* > 0; logits are divided by it (1: the model as it is) */
    uint32_t top_k;           /* 0: sample from the full vocabulary; else from the k best */
    uint64_t seed;            /* the sampler's random numbers (xoshiro256** from splitmix64) */
    int stop_at_boundary;     /* 1: stop when the boundary token is drawn (not output);
                                 0: the boundary token is never drawn */
    const uint8_t *banned;    /* NULL, or V flags: non-zero ids are never drawn (ids with no
                                 token, say) */
} lm_gen_config;

/* Generate after prompt[0..n_prompt) into out[0..cfg->max_tokens); *n_out
 * receives the number generated.  e == NULL: plain sampling (the control);
 * otherwise the embedder chooses every token (it must be fresh or reset; its
 * profile's vocab_size must equal the model's).  Allocates its buffers once,
 * before the loop.  TOKMARK_ERR_INVALID, TOKMARK_ERR_NOMEM. */
int lm_generate(const lm_model *m, tokmark_embedder *e, const int32_t *prompt, size_t n_prompt,
                const lm_gen_config *cfg, int32_t *out, size_t *n_out);

#endif
