/* bench_core — embed and detect throughput (issue #2 targets).
 * Prints one figure per line as "NAME VALUE UNIT", then "target" lines
 * comparing each figure with its goal.  Best of several runs. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <openssl/evp.h>

#include "tokmark.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rs = 0x62656e6368ull;
static uint64_t rnd(void) {
    uint64_t z = (rs += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double unit(void) { return (double)(rnd() >> 11) * 0x1p-53; }
static double gauss(void) { return sqrt(-2 * log(1 - unit())) * cos(6.283185307179586 * unit()); }

static void check(int rc, const char *what) {
    if (rc != TOKMARK_OK) {
        fprintf(stderr, "bench: %s: %s\n", what, tokmark_error_name(rc));
        exit(1);
    }
}

static tokmark_profile *profile(tokmark_scheme s, uint32_t V, uint32_t layers) {
    tokmark_params p;
    tokmark_params_default(&p, s);
    p.vocab_size = V;
    if (s == TOKMARK_SCHEME_SYNTHID) {
        p.layers = layers;
        for (uint32_t l = 0; l < layers; l++) p.weights[l] = (uint16_t)(layers - l);
    }
    p.mask_repeated = 0; /* measure the watermarked path on every step */
    uint8_t key[TOKMARK_MASTER_KEY_BYTES];
    for (int i = 0; i < TOKMARK_MASTER_KEY_BYTES; i++) key[i] = (uint8_t)(i * 7 + 1);
    tokmark_profile *pr = NULL;
    check(tokmark_profile_from_key(&pr, &p, key), "profile");
    return pr;
}

static volatile int32_t sink;

/* ns per token for top-K candidate sampling */
static double bench_topk(tokmark_scheme s, uint32_t layers, int K) {
    uint32_t V = 128256;
    tokmark_profile *p = profile(s, V, layers);
    tokmark_embedder *e = NULL;
    check(tokmark_embedder_create(&e, p, NULL), "embedder");
    int32_t prompt[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tokmark_embedder_prompt(e, prompt, 8);
    enum { STEPS = 20000 };
    tokmark_token_data *base = malloc(sizeof *base * (size_t)K * 64);
    for (int i = 0; i < K * 64; i++) {
        base[i].id = (int32_t)(rnd() % V);
        base[i].logit = (float)(gauss() * 2.0);
        base[i].p = 0;
    }
    tokmark_token_data *cand = malloc(sizeof *cand * (size_t)K);
    double best = 1e9;
    for (int run = 0; run < 5; run++) {
        double t0 = now();
        for (int s_ = 0; s_ < STEPS; s_++) {
            memcpy(cand, base + (s_ & 63) * K, sizeof *cand * (size_t)K);
            int32_t t = tokmark_embedder_sample(e, cand, (size_t)K, unit());
            tokmark_embedder_accept(e, t);
            sink = t;
        }
        double dt = (now() - t0) / STEPS * 1e9;
        if (dt < best) best = dt;
    }
    free(cand);
    free(base);
    tokmark_embedder_free(e);
    tokmark_profile_free(p);
    return best;
}

/* µs per token over the full vocabulary */
static double bench_full(tokmark_scheme s, int sample) {
    uint32_t V = 128 * 1024;
    tokmark_profile *p = profile(s, V, 30);
    tokmark_embedder *e = NULL;
    check(tokmark_embedder_create(&e, p, NULL), "embedder");
    int32_t prompt[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tokmark_embedder_prompt(e, prompt, 8);
    float *base = malloc(sizeof(float) * V), *logits = malloc(sizeof(float) * V);
    for (uint32_t t = 0; t < V; t++) base[t] = (float)(gauss() * 3.0);
    enum { STEPS = 300 };
    double best = 1e9;
    for (int run = 0; run < 5; run++) {
        double t0 = now(), copy = 0;
        for (int s_ = 0; s_ < STEPS; s_++) {
            double c0 = now();
            memcpy(logits, base, sizeof(float) * V);
            copy += now() - c0;
            int32_t t;
            if (sample) {
                t = tokmark_embedder_sample_logits(e, logits, unit());
            } else {
                tokmark_embedder_apply_logits(e, logits);
                t = (int32_t)(rnd() % V);
            }
            tokmark_embedder_accept(e, t);
            sink = t;
        }
        double dt = (now() - t0 - copy) / STEPS * 1e6;
        if (dt < best) best = dt;
    }
    free(base);
    free(logits);
    tokmark_embedder_free(e);
    tokmark_profile_free(p);
    return best;
}

/* million tokens per second, detector with dedup on, one key; documents of
 * doc_tokens tokens (a multiple of 4096 or a divisor of it) */
static double bench_detect(tokmark_scheme s, size_t ntok, size_t doc_tokens, double *unique_frac) {
    uint32_t V = 100277;
    tokmark_profile *p = profile(s, V, 30);
    tokmark_keyring *ring = NULL;
    check(tokmark_keyring_new(&ring), "ring");
    check(tokmark_keyring_add(ring, p), "ring add");
    /* Zipf(1) ids, P(rank r) ∝ 1/r as in natural text, with every fourth
     * document a copy of an earlier one (boilerplate, quotations) */
    int32_t *ids = malloc(sizeof *ids * ntok);
    for (size_t i = 0; i < ntok; i++) {
        uint32_t r = (uint32_t)exp(unit() * log((double)V));
        ids[i] = (int32_t)((r * 2654435761u) % V);
    }
    for (size_t off = 3 * 4096; off + 4096 <= ntok; off += 4 * 4096)
        memcpy(ids + off, ids + off - 3 * 4096, 4096 * sizeof *ids);
    tokmark_detector *d = NULL;
    check(tokmark_detector_create(&d, ring, NULL), "detector");
    double best = 0;
    for (int run = 0; run < 3; run++) {
        tokmark_detector_reset(d);
        double t0 = now();
        for (size_t off = 0; off < ntok; off += doc_tokens) {
            tokmark_detector_begin(d);
            size_t k = ntok - off < doc_tokens ? ntok - off : doc_tokens;
            tokmark_detector_feed(d, ids + off, k);
        }
        double rate = (double)ntok / (now() - t0) / 1e6;
        if (rate > best) best = rate;
    }
    tokmark_result r;
    tokmark_detector_corpus(d, 0, &r);
    *unique_frac = (double)r.scored / (double)ntok;
    tokmark_detector_free(d);
    tokmark_keyring_free(ring);
    free(ids);
    return best;
}

/* Peers named in the issue: per-call costs of the PRF candidates. */
static void bench_prf(void) {
    enum { N = 2000000 };
    unsigned char key[32] = {1}, out[64], msg[16] = {0};
    double t0 = now();
    for (int i = 0; i < N; i++) {
        msg[0] = (unsigned char)i;
        crypto_shorthash_siphash24(out, msg, 16, key);
        msg[1] ^= out[0];
    }
    printf("peer_siphash24_16B %.1f ns\n", (now() - t0) / N * 1e9);
    t0 = now();
    for (int i = 0; i < N / 4; i++) {
        msg[0] = (unsigned char)i;
        crypto_generichash(out, 16, msg, 16, key, 32);
        msg[1] ^= out[0];
    }
    printf("peer_blake2b_keyed_16B %.1f ns\n", (now() - t0) / (N / 4) * 1e9);
    static unsigned char z[1 << 19], o[1 << 19];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    unsigned char iv[16] = {0};
    int ol;
    t0 = now();
    for (int i = 0; i < 500; i++) {
        iv[0] = (unsigned char)i;
        EVP_EncryptInit_ex(c, EVP_aes_128_ctr(), NULL, key, iv);
        EVP_EncryptUpdate(c, o, &ol, z, sizeof z);
    }
    printf("peer_openssl_aes128ctr %.2f GB/s\n", 500.0 * sizeof z / (now() - t0) / 1e9);
    EVP_CIPHER_CTX_free(c);
    unsigned char nonce[12] = {0};
    t0 = now();
    for (int i = 0; i < 200; i++) {
        nonce[0] = (unsigned char)i;
        crypto_stream_chacha20_ietf(o, sizeof o, nonce, key);
    }
    printf("peer_chacha20 %.2f GB/s\n", 200.0 * sizeof o / (now() - t0) / 1e9);
    sink = o[7];
}

int main(void) {
    check(tokmark_init(), "init");
    printf("backend %s -\n", tokmark_backend_name());
    bench_prf();
    double kgw = bench_topk(TOKMARK_SCHEME_KGW, 0, 64);
    double gum = bench_topk(TOKMARK_SCHEME_GUMBEL, 0, 64);
    double syn = bench_topk(TOKMARK_SCHEME_SYNTHID, 30, 64);
    printf("embed_topk64_kgw %.0f ns/token\n", kgw);
    printf("embed_topk64_gumbel %.0f ns/token\n", gum);
    printf("embed_topk64_synthid_m30 %.0f ns/token\n", syn);
    double fk = bench_full(TOKMARK_SCHEME_KGW, 0);
    double fks = bench_full(TOKMARK_SCHEME_KGW, 1);
    double fg = bench_full(TOKMARK_SCHEME_GUMBEL, 1);
    printf("embed_full128k_kgw_apply %.1f us/token\n", fk);
    printf("embed_full128k_kgw_sample %.1f us/token\n", fks);
    printf("embed_full128k_gumbel_sample %.1f us/token\n", fg);
    double uf = 0;
    /* 20M tokens: 15M unique tuples, more than the last-level cache holds */
    double dk = bench_detect(TOKMARK_SCHEME_KGW, (size_t)20 << 20, 2048, &uf);
    printf("detect_kgw_dedup_20M_doc2k %.1f Mtokens/s\n", dk);
    printf("detect_unique_tuple_fraction %.3f -\n", uf);
    double dk64 = bench_detect(TOKMARK_SCHEME_KGW, (size_t)20 << 20, 65536, &uf);
    printf("detect_kgw_dedup_20M_doc64k %.1f Mtokens/s\n", dk64);
    double dsmall = bench_detect(TOKMARK_SCHEME_KGW, (size_t)2 << 20, 2048, &uf);
    printf("detect_kgw_dedup_2M_doc2k %.1f Mtokens/s\n", dsmall);
    double dg = bench_detect(TOKMARK_SCHEME_GUMBEL, (size_t)8 << 20, 2048, &uf);
    printf("detect_gumbel_dedup_8M_doc2k %.1f Mtokens/s\n", dg);
    double ds = bench_detect(TOKMARK_SCHEME_SYNTHID, (size_t)8 << 20, 2048, &uf);
    printf("detect_synthid_m30_dedup_8M_doc2k %.1f Mtokens/s\n", ds);
    printf("target embed_topk64_kgw %.2f x_of_limit (limit 1000 ns)\n", kgw / 1000);
    printf("target embed_topk64_gumbel %.2f x_of_limit (limit 1000 ns)\n", gum / 1000);
    printf("target embed_topk64_synthid_m30 %.2f x_of_limit (limit 5000 ns)\n", syn / 5000);
    printf("target embed_full128k_kgw_apply %.2f x_of_limit (limit 60 us)\n", fk / 60);
    printf("target embed_full128k_gumbel_sample %.2f x_of_limit (limit 60 us)\n", fg / 60);
    printf("target detect_kgw_dedup_20M_doc2k %.2f x_of_goal (goal >= 30 Mtokens/s)\n", dk / 30);
    printf("target detect_kgw_dedup_20M_doc64k %.2f x_of_goal (goal >= 30 Mtokens/s)\n", dk64 / 30);
    return 0;
}
