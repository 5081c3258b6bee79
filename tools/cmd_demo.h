/* cmd_demo.h — `tokmark demo`: the library end to end on built-in defaults.
 *
 * For each scheme: write a fresh key file (0600) into a temporary directory,
 * load it back, generate token sequences with a synthetic language model —
 * once through the embedder, once by plain sampling — and score both, plus
 * the watermarked text under a key that was never used.  The synthetic model
 * is deterministic given the context (like a real one): its candidates and
 * logits come from a hash of the last two tokens.  The reference n-gram model
 * and real text replace it in `tokmark generate` (issue #6). */
#ifndef TOKMARK_CMD_DEMO_H
#define TOKMARK_CMD_DEMO_H

#include "cli.h"

#include <unistd.h>

static const char cmd_demo_help[] =
    "usage: tokmark demo [--tokens N] [--seed S]\n"
    "\n"
    "Run the embedder and detector end to end on a synthetic language model:\n"
    "for each scheme (kgw, gumbel, synthid) make a key file in a temporary\n"
    "directory, generate N tokens with and without the watermark, and print\n"
    "what the detector finds (tuples scored, z, log10 p), also for a key\n"
    "that was never used.\n"
    "\n"
    "  --tokens N   tokens per sequence (default 300)\n"
    "  --seed S     seed of the synthetic model and sampler (default 1)\n";

/* splitmix64 */
static uint64_t demo_mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

enum { DEMO_K = 64, DEMO_V = 100277 };

/* The synthetic model's top-K candidates after context (a, b): ids spread over
 * the vocabulary, logits falling off like a moderately confident model. */
static void demo_model(uint64_t seed, int32_t a, int32_t b, tokmark_token_data *cand) {
    uint64_t s = demo_mix(seed ^ demo_mix((uint64_t)(uint32_t)a << 32 | (uint32_t)b));
    for (int i = 0; i < DEMO_K; i++) {
        s = demo_mix(s);
        cand[i].id = (int32_t)(s % DEMO_V);
        double jitter = (double)((s >> 40) & 0xffff) / 65536.0;
        cand[i].logit = (float)(-0.35 * i + jitter);
        cand[i].p = 0.0f;
    }
}

/* Generate n tokens after a 4-token prompt; watermark through e when e != NULL. */
static void demo_generate(uint64_t seed, tokmark_embedder *e, const int32_t *prompt, int32_t *out, size_t n) {
    int32_t a = prompt[2], b = prompt[3];
    uint64_t rng = demo_mix(seed ^ 0x73616d70ull);
    tokmark_token_data cand[DEMO_K];
    if (e != NULL) tokmark_embedder_prompt(e, prompt, 4);
    for (size_t i = 0; i < n; i++) {
        demo_model(seed, a, b, cand);
        rng = demo_mix(rng);
        double u = (double)(rng >> 11) * 0x1p-53;
        int32_t t;
        if (e != NULL) {
            t = tokmark_embedder_sample(e, cand, DEMO_K, u);
            tokmark_embedder_accept(e, t);
        } else { /* plain softmax sampling */
            double w[DEMO_K], z = 0.0, acc = 0.0;
            for (int j = 0; j < DEMO_K; j++) z += (w[j] = exp((double)cand[j].logit - (double)cand[0].logit));
            t = cand[DEMO_K - 1].id;
            for (int j = 0; j < DEMO_K; j++)
                if ((acc += w[j]) > u * z) { t = cand[j].id; break; }
        }
        out[i] = t;
        a = b;
        b = t;
    }
}

/* Score one document with a one-key ring; takes ownership of p. */
static int demo_score(tokmark_profile *p, const int32_t *prompt, const int32_t *ids, size_t n,
                      tokmark_result *r) {
    tokmark_keyring *ring = NULL;
    tokmark_detector *d = NULL;
    int rc = tokmark_keyring_new(&ring);
    if (rc != TOKMARK_OK) {
        tokmark_profile_free(p);
        return rc;
    }
    rc = tokmark_keyring_add(ring, p); /* the ring owns p from here, even on failure */
    if (rc == TOKMARK_OK) rc = tokmark_detector_create(&d, ring, NULL);
    if (rc == TOKMARK_OK) {
        tokmark_detector_begin(d);
        tokmark_detector_prompt(d, prompt, 4);
        tokmark_detector_feed(d, ids, n);
        tokmark_detector_document(d, 0, r);
    }
    tokmark_detector_free(d);
    tokmark_keyring_free(ring);
    return rc;
}

static int cmd_demo(int argc, char **argv) {
    enum { OPT_TOKENS = 1, OPT_SEED, OPT_HELP };
    static const cli_opt opts[] = {{"tokens", 0, 1, OPT_TOKENS},
                                   {"seed", 0, 1, OPT_SEED},
                                   {"help", 'h', 0, OPT_HELP},
                                   {NULL, 0, 0, 0}};
    uint32_t ntok = 300, seed = 1;
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *val;
    int id;
    while ((id = cli_next(&a, opts, &val)) != CLI_END) {
        switch (id) {
        case OPT_TOKENS:
            if (!cli_parse_u32("--tokens", val, 10, 1000000, &ntok)) return EXIT_USAGE;
            break;
        case OPT_SEED:
            if (!cli_parse_u32("--seed", val, 0, UINT32_MAX, &seed)) return EXIT_USAGE;
            break;
        case OPT_HELP: fputs(cmd_demo_help, stdout); return EXIT_OK;
        case CLI_POS: return cli_usage_error("unexpected argument '%s'", val);
        default: return EXIT_USAGE;
        }
    }
    char dir[] = "/tmp/tokmark-demo-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        cli_error("cannot create a temporary directory: %s", strerror(errno));
        return EXIT_FILE;
    }
    int32_t *wm = malloc(ntok * sizeof *wm), *plain = malloc(ntok * sizeof *plain);
    if (wm == NULL || plain == NULL) {
        free(wm);
        free(plain);
        rmdir(dir);
        cli_error("out of memory");
        return EXIT_FAIL;
    }
    printf("tokmark demo: synthetic model, %u tokens per sequence, seed %u, AES backend %s\n", ntok, seed,
           tokmark_backend_name());
    printf("%-8s %-32s %-22s %7s %8s %10s\n", "scheme", "key id", "text", "scored", "z", "log10 p");
    int rc = TOKMARK_OK;
    static const tokmark_scheme schemes[] = {TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL, TOKMARK_SCHEME_SYNTHID};
    for (size_t s = 0; s < 3 && rc == TOKMARK_OK; s++) {
        char path[sizeof dir + 32];
        snprintf(path, sizeof path, "%s/%s.key", dir, tokmark_scheme_name(schemes[s]));
        tokmark_params par;
        tokmark_params_default(&par, schemes[s]);
        par.vocab_size = DEMO_V;
        tokmark_profile *gen = NULL, *key = NULL, *other = NULL;
        tokmark_embedder *e = NULL;
        size_t line = 0;
        rc = tokmark_profile_generate(&gen, &par);
        if (rc == TOKMARK_OK) rc = tokmark_profile_save(gen, path, 0);
        if (rc == TOKMARK_OK) rc = tokmark_profile_load(&key, path, 0, &line);
        if (rc == TOKMARK_OK) rc = tokmark_profile_generate(&other, &par);
        if (rc == TOKMARK_OK) rc = tokmark_embedder_create(&e, key, NULL);
        if (rc == TOKMARK_OK) {
            const int32_t prompt[4] = {791, 3938, 315, 279};
            demo_generate(seed, e, prompt, wm, ntok);
            demo_generate(seed, NULL, prompt, plain, ntok);
            static const char *what[3] = {"watermarked", "not watermarked", "watermarked, other key"};
            const int32_t *ids[3] = {wm, plain, wm};
            for (int r = 0; r < 3 && rc == TOKMARK_OK; r++) {
                tokmark_result res;
                tokmark_profile *scoring = NULL;
                if (r < 2) { /* the key file again: the detector side loads its own copy */
                    rc = tokmark_profile_load(&scoring, path, 0, &line);
                } else {
                    scoring = other;
                    other = NULL;
                }
                if (rc == TOKMARK_OK) rc = demo_score(scoring, prompt, ids[r], ntok, &res);
                if (rc == TOKMARK_OK)
                    printf("%-8s %-32s %-22s %7llu %8.2f %10.2f\n", tokmark_scheme_name(schemes[s]), res.key_id,
                           what[r], (unsigned long long)res.scored, res.z, res.log10_p);
            }
        }
        tokmark_embedder_free(e);
        tokmark_profile_free(gen);
        tokmark_profile_free(key);
        tokmark_profile_free(other);
        unlink(path);
        if (rc != TOKMARK_OK) cli_error("%s", tokmark_error_message(rc));
    }
    rmdir(dir);
    free(wm);
    free(plain);
    if (rc == TOKMARK_OK)
        printf("\nlog10 p is the exact tail probability of the score without the key (SPEC.md §8):\n"
               "-20 means unwatermarked text scores this high less than once in 10^20 tries.\n");
    return rc == TOKMARK_OK ? EXIT_OK : cli_exit_code(rc);
}

#endif
