/* bench_compat — throughput of the compatibility detectors (SPEC.md §10).
 * Prints one figure per line as "NAME VALUE UNIT" (best of 3 runs).
 *
 * KGW costs one MT19937 seeding plus up to int(V·r) draws per position
 * (tracking the scored token through randperm's swaps), so it is measured
 * at V = 32000 and 128256, on uniform ids (no two seeds alike: every
 * position pays the O(int(V·r)) walk) and on Zipf(1) ids, where LeftHash
 * seeds repeat and the greenlist cache answers most positions. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokmark.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rs = 0x636f6d706174ull;
static uint64_t rnd(void) {
    uint64_t z = (rs += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void check(int rc, const char *what) {
    if (rc != TOKMARK_OK) {
        fprintf(stderr, "bench_compat: %s: %s\n", what, tokmark_error_name(rc));
        exit(1);
    }
}

/* n ids: uniform on [0, V), or Zipf(1) by inversion of the harmonic CDF. */
static void fill(int32_t *ids, size_t n, uint32_t V, int zipf) {
    if (!zipf) {
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(rnd() % V);
        return;
    }
    const double H = log((double)V) + 0.5772156649;
    for (size_t i = 0; i < n; i++) {
        double u = (double)(rnd() >> 11) * 0x1p-53;
        double r = exp(u * H) - 1.0; /* approximately Zipf(1) ranks */
        uint32_t k = r < 0 ? 0 : (uint32_t)r;
        ids[i] = (int32_t)(k < V ? k : V - 1);
    }
}

static void run(const char *name, const tokmark_compat_config *cfg, size_t n, int zipf) {
    tokmark_compat *c = NULL;
    check(tokmark_compat_create(&c, cfg), "create");
    int32_t *ids = (int32_t *)malloc(n * sizeof *ids);
    if (ids == NULL) exit(1);
    fill(ids, n, cfg->vocab_size ? cfg->vocab_size : 32000, zipf);
    double best = 1e30;
    tokmark_compat_score s;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        check(tokmark_compat_score_ids(c, ids, n, 0, NULL, &s), "score");
        double t = now() - t0;
        if (t < best) best = t;
    }
    /* the streaming detector on the same ids */
    tokmark_compat_detector *d = NULL;
    check(tokmark_compat_detector_create(&d, c, 1u << 16), "detector");
    double t0 = now();
    tokmark_compat_detector_begin(d);
    tokmark_compat_detector_feed(d, ids, n);
    tokmark_result r;
    tokmark_compat_detector_document(d, &r);
    double ts = now() - t0;
    printf("%-44s %10.0f tokens/s   (stream %.0f tokens/s; %zu ids)\n", name, (double)n / best, (double)n / ts, n);
    tokmark_compat_detector_free(d);
    free(ids);
    tokmark_compat_free(c);
}

int main(void) {
    check(tokmark_init(), "init");
    const uint32_t Vs[2] = {32000, 128256};
    char name[96];
    for (int v = 0; v < 2; v++) {
        tokmark_compat_config cfg;
        tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_HF_KGW);
        cfg.vocab_size = Vs[v];
        cfg.greenlist_ratio = 0.25;
        snprintf(name, sizeof name, "hf-kgw lefthash r=0.25 V=%u uniform", Vs[v]);
        run(name, &cfg, 2000, 0);
        snprintf(name, sizeof name, "hf-kgw lefthash r=0.25 V=%u zipf", Vs[v]);
        run(name, &cfg, 20000, 1);
        cfg.seeding = TOKMARK_SEEDING_SELFHASH;
        cfg.context_width = 4;
        snprintf(name, sizeof name, "hf-kgw selfhash w=4 r=0.25 V=%u uniform", Vs[v]);
        run(name, &cfg, 2000, 0);
    }
    tokmark_compat_config cfg;
    tokmark_compat_config_default(&cfg, TOKMARK_COMPAT_SYNTHID);
    cfg.depth = 30;
    for (uint32_t d = 0; d < 30; d++) cfg.keys[d] = (int64_t)rnd();
    run("synthid n=5 D=30 C=1024", &cfg, 200000, 0);
    cfg.kind = TOKMARK_COMPAT_HF_SYNTHID;
    cfg.sampling_table_size = 65536;
    run("hf-synthid n=5 D=30 C=1024 S=65536", &cfg, 200000, 0);
    return 0;
}
