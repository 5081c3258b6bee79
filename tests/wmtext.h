/* wmtext.h — watermarked *text* for the end-to-end tests of the tool
 * (test_scan.c, test_report.c).
 *
 * The library's embedder runs over a synthetic language model whose
 * candidates are cl100k_base tokens of the form " word" (a space and 3-8
 * lower-case letters): text made of such tokens tokenizes back to exactly the
 * same ids (gen_text checks it), so a scan sees what the embedder chose.
 * Include after cliutil.h and testutil.h; call wt_setup() once. */
#ifndef TOKMARK_TESTS_WMTEXT_H
#define TOKMARK_TESTS_WMTEXT_H

#include <math.h>

static tokmark_tokenizer *g_tok;
static int32_t *g_pool; /* ids of " word" tokens */
static size_t g_npool;

/* ------------------------------------------------------------------------ */
/* Data                                                                      */
/* ------------------------------------------------------------------------ */

static inline uint64_t mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

enum { NCAND = 64 };

/* The synthetic model: 64 candidates after (a, b), logits falling off. */
static inline void model(int32_t a, int32_t b, tokmark_token_data *cand) {
    uint64_t s = mix((uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    for (int i = 0; i < NCAND; i++) {
        s = mix(s);
        cand[i].id = g_pool[s % g_npool];
        cand[i].logit = (float)(-0.25 * i + (double)((s >> 40) & 0xffff) / 65536.0);
        cand[i].p = 0.0f;
    }
}

/* n tokens of text after a 2-token seed prompt; watermarked with p (NULL:
 * plain sampling).  Returns the text (malloc'd), its ids in *ids_out. */
static inline char *gen_text(const tokmark_profile *p, uint64_t seed, size_t n, int32_t **ids_out, size_t *len_out) {
    int32_t *ids = malloc((n + 2) * sizeof *ids);
    assert_non_null(ids);
    uint64_t rng = mix(seed);
    ids[0] = g_pool[mix(rng) % g_npool];
    ids[1] = g_pool[mix(rng + 1) % g_npool];
    tokmark_embedder *e = NULL;
    if (p != NULL) {
        TU_OK(tokmark_embedder_create(&e, p, NULL));
        tokmark_embedder_prompt(e, ids, 2);
    }
    tokmark_token_data cand[NCAND];
    for (size_t i = 0; i < n; i++) {
        model(ids[i], ids[i + 1], cand);
        rng = mix(rng);
        double u = (double)(rng >> 11) * 0x1p-53;
        int32_t t;
        if (e != NULL) {
            t = tokmark_embedder_sample(e, cand, NCAND, u);
            tokmark_embedder_accept(e, t);
        } else {
            double z = 0, acc = 0;
            for (int k = 0; k < NCAND; k++) z += exp(cand[k].logit);
            t = cand[NCAND - 1].id;
            for (int k = 0; k < NCAND; k++) {
                acc += exp(cand[k].logit) / z;
                if (u < acc) {
                    t = cand[k].id;
                    break;
                }
            }
        }
        ids[i + 2] = t;
    }
    tokmark_embedder_free(e);
    /* text of the generated tokens only (the prompt is not part of it) */
    size_t cap = 16 * n + 1, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (size_t i = 2; i < n + 2; i++) {
        size_t l = 0;
        const uint8_t *b = tokmark_tokenizer_token_bytes(g_tok, ids[i], &l);
        memcpy(text + len, b, l);
        len += l;
    }
    text[len] = '\0';
    /* the text tokenizes back to the same ids */
    int32_t *back = malloc((n + 8) * sizeof *back);
    size_t nb = 0;
    TU_OK(tokmark_tokenizer_encode(g_tok, text, len, back, n + 8, &nb, 0));
    TU_CHECK(nb == n && memcmp(back, ids + 2, n * sizeof *back) == 0, "generated text does not round-trip");
    free(back);
    if (ids_out != NULL) *ids_out = ids;
    else free(ids);
    if (len_out != NULL) *len_out = len;
    return text;
}

static inline tokmark_profile *make_profile(tokmark_scheme scheme, uint64_t seed, const char *file) {
    tokmark_params par;
    tokmark_params_default(&par, scheme);
    uint8_t key[TOKMARK_MASTER_KEY_BYTES];
    for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)mix(seed + i);
    tokmark_profile *p = NULL;
    TU_OK(tokmark_profile_from_key(&p, &par, key));
    if (file != NULL) {
        char path[512];
        path_in(path, sizeof path, file);
        TU_OK(tokmark_profile_save(p, path, 1));
    }
    return p;
}

/* Load cl100k_base and collect the " word" tokens; 0 or -1. */
static inline int wt_setup(void) {
    size_t line = 0;
    if (tokmark_tokenizer_load(&g_tok, "cl100k_base", &line) != TOKMARK_OK) {
        fprintf(stderr, "cl100k_base is not installed (run scripts/fetch-tokenizers.sh)\n");
        return -1;
    }
    uint32_t V = tokmark_tokenizer_vocab_size(g_tok);
    g_pool = malloc(V * sizeof *g_pool);
    if (g_pool == NULL) return -1;
    for (uint32_t id = 0; id < V; id++) {
        size_t l = 0;
        const uint8_t *b = tokmark_tokenizer_token_bytes(g_tok, (int32_t)id, &l);
        if (b == NULL || l < 4 || l > 9 || b[0] != ' ') continue;
        int ok = 1;
        for (size_t k = 1; k < l; k++) ok &= b[k] >= 'a' && b[k] <= 'z';
        if (ok) g_pool[g_npool++] = (int32_t)id;
    }
    return g_npool < 5000 ? -1 : 0;
}

static inline void wt_teardown(void) {
    tokmark_tokenizer_free(g_tok);
    free(g_pool);
}

#endif
