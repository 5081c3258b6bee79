/* bench_lm.c — speed of the reference language model (tools/cli/lm.c):
 * training, saving, loading, full-vocabulary lm_logits, lm_logprob, and
 * the generation loop with and without the embedder.
 *
 * The model is $TOKMARK_LM when set (e.g. one trained on data/corpus with
 * `tokmark lm train`), else an order-4 model trained here on the licence
 * texts of /usr/share/common-licenses.  Needs cl100k_base
 * (scripts/fetch-tokenizers.sh).  Prints NAME VALUE UNIT lines, as bench_core. */
#include "lm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s == NULL || fread(s, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(s);
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return s;
}

int main(void) {
    if (tokmark_init() != TOKMARK_OK) return 1;
    tokmark_tokenizer *tok = NULL;
    size_t line = 0;
    if (tokmark_tokenizer_load(&tok, "cl100k_base", &line) != TOKMARK_OK) {
        fprintf(stderr, "bench_lm: cl100k_base not found (scripts/fetch-tokenizers.sh)\n");
        return 1;
    }
    lm_model *m = NULL;
    const char *path = getenv("TOKMARK_LM");
    char tmp[] = "/tmp/bench_lm.XXXXXX";
    int own = 0;
    if (path == NULL || path[0] == '\0') {
        static const char *const lic[] = {"GPL-3", "Apache-2.0", "LGPL-2.1", "MPL-2.0", "Artistic", "GFDL-1.3"};
        lm_builder *b = NULL;
        if (lm_builder_new(&b, 4, tokmark_tokenizer_vocab_size(tok), 100257, "cl100k_base") != TOKMARK_OK) return 1;
        double t0 = now();
        size_t total = 0;
        for (size_t i = 0; i < sizeof lic / sizeof lic[0]; i++) {
            char p[256];
            size_t len = 0, n = 0;
            snprintf(p, sizeof p, "/usr/share/common-licenses/%s", lic[i]);
            char *t = slurp(p, &len);
            if (t == NULL) continue;
            int32_t *ids = malloc((len + 1) * sizeof *ids);
            if (ids == NULL ||
                tokmark_tokenizer_encode(tok, t, len, ids, len + 1, &n, TOKMARK_ENCODE_REPLACE_INVALID) != TOKMARK_OK ||
                lm_builder_add(b, ids, n) != TOKMARK_OK)
                return 1;
            total += n;
            free(ids);
            free(t);
        }
        if (lm_builder_finish(b, &m) != TOKMARK_OK) return 1;
        lm_builder_free(b);
        printf("lm_train_licences_%zutok %.1f ms\n", total, (now() - t0) * 1e3);
        int fd = mkstemp(tmp);
        if (fd < 0) return 1;
        close(fd);
        t0 = now();
        if (lm_save(m, tmp) != TOKMARK_OK) return 1;
        printf("lm_save %.1f ms\n", (now() - t0) * 1e3);
        lm_free(m);
        m = NULL;
        path = tmp;
        own = 1;
    }
    char why[256];
    double t0 = now();
    if (lm_load(&m, path, why, sizeof why) != TOKMARK_OK) {
        fprintf(stderr, "bench_lm: %s: cannot load (%s)\n", path, why);
        return 1;
    }
    lm_info info;
    lm_get_info(m, &info);
    double load_ms = (now() - t0) * 1e3;
    printf("lm_model_size %.1f MiB\n", (double)info.file_bytes / 1048576.0);
    printf("lm_load %.1f ms\n", load_ms);
    uint32_t V = lm_vocab_size(m);
    float *logits = malloc(V * sizeof *logits);
    int32_t ctx[8] = {100257, 791, 1176, 315, 279, 2383, 13, 578};
    /* a walk through generated contexts: the model's own samples (greedy is
     * too repetitive; take a fixed pseudo-random pick of the top tokens) */
    const int iters = 2000;
    double sink = 0.0;
    t0 = now();
    for (int i = 0; i < iters; i++) {
        lm_logits(m, ctx, 8, logits);
        int32_t best = 0;
        for (uint32_t w = 1; w < V; w++)
            if (logits[w] > logits[best] && (w * 2654435761u + (uint32_t)i) % 3 != 0) best = (int32_t)w;
        memmove(ctx, ctx + 1, 7 * sizeof *ctx);
        ctx[7] = best;
        sink += logits[best];
    }
    double dt = now() - t0;
    printf("lm_logits_full_vocab_%u %.1f us/call\n", V, dt / iters * 1e6);
    t0 = now();
    for (int i = 0; i < 200000; i++) sink += lm_logprob(m, ctx + (i % 5), 3, (int32_t)(i * 7919 % 100000));
    dt = now() - t0;
    printf("lm_logprob %.2f us/call\n", dt / 200000 * 1e6);
    static const tokmark_scheme schemes[] = {0, TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL, TOKMARK_SCHEME_SYNTHID};
    int32_t *out = malloc(1000 * sizeof *out);
    for (size_t s = 0; s < 4; s++) {
        for (uint32_t top_k = 0; top_k <= 40; top_k += 40) {
            tokmark_profile *p = NULL;
            tokmark_embedder *e = NULL;
            if (schemes[s] != 0) {
                tokmark_params par;
                tokmark_params_default(&par, schemes[s]);
                uint8_t key[TOKMARK_MASTER_KEY_BYTES] = {1};
                if (tokmark_profile_from_key(&p, &par, key) != TOKMARK_OK ||
                    tokmark_embedder_create(&e, p, NULL) != TOKMARK_OK)
                    return 1;
            }
            lm_gen_config cfg = {1000, 1.0, top_k, 42, 0, NULL};
            size_t n = 0;
            t0 = now();
            if (lm_generate(m, e, ctx, 3, &cfg, out, &n) != TOKMARK_OK) return 1;
            dt = now() - t0;
            printf("lm_generate_%s_%s %.0f tokens/s\n", schemes[s] ? tokmark_scheme_name(schemes[s]) : "control",
                   top_k ? "topk40" : "fullvocab", (double)n / dt);
            tokmark_embedder_free(e);
            tokmark_profile_free(p);
        }
    }
    free(out);
    free(logits);
    lm_free(m);
    tokmark_tokenizer_free(tok);
    if (own) remove(tmp);
    return sink == 12345.678 ? 1 : 0;
}
