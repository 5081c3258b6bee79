/* embed.c — the embedder: watermarked choice inside the sampling loop
 * (SPEC.md §5, §6).  Everything is allocated in create(); apply, sample and
 * accept neither allocate nor fail. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define TM_CHUNK_BLOCKS 2048u   /* full-vocabulary path: CTR blocks per chunk */
#define TM_SELF_CHUNK   512u    /* full-vocabulary SelfHash: tokens per chunk */
#define TM_DEFAULT_MAX_CANDIDATES 1024u
#define TM_DEFAULT_HISTORY 65536u

struct tokmark_embedder {
    const tokmark_profile *prof;
    tokmark_params par;
    tokmark_embedder_config cfg;
    uint32_t c;            /* context length (SPEC §4) */
    tm_aes ctx_aes, val_aes;

    int32_t hist[TOKMARK_MAX_CONTEXT]; /* last c tokens, oldest first */
    uint64_t pushed;
    uint64_t nonce;        /* LeftHash nonce of the current context */
    uint64_t ctx_fp;       /* fingerprint of the current context (masking) */
    int seen_current;

    uint64_t *seen;        /* open-addressing set of context fingerprints */
    uint32_t seen_mask, seen_count, seen_limit;

    /* candidate scratch (max_candidates entries) */
    int32_t *cid;
    uint32_t *cu;
    uint64_t *cnonce;
    uint32_t *czero;
    uint8_t *cblk;         /* 16 * max_candidates * max(1, h-1) */
    uint8_t *cg;           /* 16 * max_candidates (SynthID g-value blocks) */
    double *cp;
    unsigned char *cvalid;

    /* full-vocabulary scratch */
    uint8_t *vblk;         /* 16 * TM_CHUNK_BLOCKS */
    int32_t *vids;         /* SelfHash chunk: candidate ids, zero offsets, nonces */
    uint32_t *vzero;
    uint64_t *vnonce;
    uint64_t *vbits;       /* green bitset, V bits (KGW) */
    uint8_t *vg;           /* 16 * V (SynthID) */
    double *vp;            /* V (SynthID) */
};

/* ------------------------------------------------------------------------ */
/* Create / free / reset / clone                                             */
/* ------------------------------------------------------------------------ */

static size_t pow2_at_least(size_t n) {
    size_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

void tokmark_embedder_free(tokmark_embedder *e) {
    if (e == NULL) return;
    tm_aes_free(&e->ctx_aes);
    tm_aes_free(&e->val_aes);
    free(e->seen);
    free(e->cid);
    free(e->cu);
    free(e->cnonce);
    free(e->czero);
    free(e->cblk);
    free(e->cg);
    free(e->cp);
    free(e->cvalid);
    free(e->vblk);
    free(e->vids);
    free(e->vzero);
    free(e->vnonce);
    free(e->vbits);
    free(e->vg);
    free(e->vp);
    sodium_memzero(e, sizeof *e);
    free(e);
}

static int alloc_buffers(tokmark_embedder *e) {
    size_t K = e->cfg.max_candidates;
    size_t selfc = e->par.seeding == TOKMARK_SEEDING_SELFHASH ? e->par.context_width - 1 : 1;
    size_t V = e->par.vocab_size;
    size_t cap = pow2_at_least((size_t)e->cfg.history_capacity * 2);
    e->seen_mask = (uint32_t)(cap - 1);
    e->seen_limit = e->cfg.history_capacity;
    e->seen = calloc(cap, sizeof *e->seen);
    e->cid = malloc(K * sizeof *e->cid);
    e->cu = malloc(K * sizeof *e->cu);
    e->cnonce = malloc(K * sizeof *e->cnonce);
    e->czero = calloc(K, sizeof *e->czero);
    e->cblk = malloc(16 * K * selfc);
    e->cg = malloc(16 * K);
    e->cp = malloc(K * sizeof *e->cp);
    e->cvalid = malloc(K);
    size_t vb = 16 * (size_t)TM_CHUNK_BLOCKS;
    size_t self_need = 16 * (size_t)TM_SELF_CHUNK * (selfc + 1);
    e->vblk = malloc(vb > self_need ? vb : self_need);
    e->vids = malloc(TM_SELF_CHUNK * sizeof *e->vids);
    e->vzero = calloc(TM_SELF_CHUNK, sizeof *e->vzero);
    e->vnonce = malloc(TM_SELF_CHUNK * sizeof *e->vnonce);
    if (e->par.scheme == TOKMARK_SCHEME_KGW) e->vbits = calloc((V + 63) / 64, sizeof *e->vbits);
    if (e->par.scheme == TOKMARK_SCHEME_SYNTHID) {
        e->vg = malloc(16 * V);
        e->vp = malloc(V * sizeof *e->vp);
    }
    if (!e->seen || !e->cid || !e->cu || !e->cnonce || !e->czero || !e->cblk || !e->cg || !e->cp ||
        !e->cvalid || !e->vblk || !e->vids || !e->vzero || !e->vnonce || (e->par.scheme == TOKMARK_SCHEME_KGW && !e->vbits) ||
        (e->par.scheme == TOKMARK_SCHEME_SYNTHID && (!e->vg || !e->vp)))
        return TOKMARK_ERR_NOMEM;
    return TOKMARK_OK;
}

int tokmark_embedder_create(tokmark_embedder **out, const tokmark_profile *p,
                            const tokmark_embedder_config *cfg) {
    if (out == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    if (p == NULL || p->sec == NULL || tokmark_params_check(&p->params) != TOKMARK_OK)
        return TOKMARK_ERR_INVALID;
    tokmark_embedder *e = calloc(1, sizeof *e);
    if (e == NULL) return TOKMARK_ERR_NOMEM;
    e->prof = p;
    e->par = p->params;
    e->c = tm_context_length(&e->par);
    e->cfg.max_candidates = TM_DEFAULT_MAX_CANDIDATES;
    e->cfg.history_capacity = TM_DEFAULT_HISTORY;
    if (cfg != NULL) {
        if (cfg->max_candidates > 0) e->cfg.max_candidates = cfg->max_candidates;
        if (cfg->history_capacity > 0) e->cfg.history_capacity = cfg->history_capacity;
    }
    if (e->cfg.max_candidates > (1u << 24) || e->cfg.history_capacity > (1u << 28)) {
        free(e);
        return TOKMARK_ERR_INVALID;
    }
    int rc = tm_aes_init(&e->ctx_aes, p->sec->k_ctx, p->sec->rk_ctx);
    if (rc == TOKMARK_OK) rc = tm_aes_init(&e->val_aes, p->sec->k_val, p->sec->rk_val);
    if (rc == TOKMARK_OK) rc = alloc_buffers(e);
    if (rc != TOKMARK_OK) {
        tokmark_embedder_free(e);
        return rc;
    }
    *out = e;
    return TOKMARK_OK;
}

void tokmark_embedder_reset(tokmark_embedder *e) {
    e->pushed = 0;
    e->nonce = 0;
    e->ctx_fp = 0;
    e->seen_current = 0;
    memset(e->hist, 0, sizeof e->hist);
    memset(e->seen, 0, ((size_t)e->seen_mask + 1) * sizeof *e->seen);
    e->seen_count = 0;
}

int tokmark_embedder_clone(tokmark_embedder **out, const tokmark_embedder *e) {
    if (out == NULL || e == NULL) return TOKMARK_ERR_INVALID;
    int rc = tokmark_embedder_create(out, e->prof, &e->cfg);
    if (rc != TOKMARK_OK) return rc;
    tokmark_embedder *n = *out;
    memcpy(n->hist, e->hist, sizeof e->hist);
    n->pushed = e->pushed;
    n->nonce = e->nonce;
    n->ctx_fp = e->ctx_fp;
    n->seen_current = e->seen_current;
    memcpy(n->seen, e->seen, ((size_t)e->seen_mask + 1) * sizeof *e->seen);
    n->seen_count = e->seen_count;
    return TOKMARK_OK;
}

/* ------------------------------------------------------------------------ */
/* History and masking                                                       */
/* ------------------------------------------------------------------------ */

static int seen_contains(const tokmark_embedder *e, uint64_t f) {
    uint32_t i = (uint32_t)f & e->seen_mask;
    while (e->seen[i] != 0) {
        if (e->seen[i] == f) return 1;
        i = (i + 1) & e->seen_mask;
    }
    return 0;
}

static void seen_insert(tokmark_embedder *e, uint64_t f) {
    if (e->seen_count >= e->seen_limit) return; /* full: stop remembering (SPEC §6.4) */
    uint32_t i = (uint32_t)f & e->seen_mask;
    while (e->seen[i] != 0) {
        if (e->seen[i] == f) return;
        i = (i + 1) & e->seen_mask;
    }
    e->seen[i] = f;
    e->seen_count++;
}

static void push(tokmark_embedder *e, int32_t t, int generated) {
    if (generated && e->par.mask_repeated && e->pushed >= e->c) seen_insert(e, e->ctx_fp);
    memmove(e->hist, e->hist + 1, (TOKMARK_MAX_CONTEXT - 1) * sizeof e->hist[0]);
    e->hist[TOKMARK_MAX_CONTEXT - 1] = t;
    e->pushed++;
    if (e->pushed >= e->c) {
        const int32_t *ctx = e->hist + TOKMARK_MAX_CONTEXT - e->c;
        /* the context's own fingerprint: c tokens, domain 0x80 | seeding */
        e->ctx_fp = tm_fingerprint(ctx, e->c - 1, 0x80u | (uint32_t)e->par.seeding);
        if (e->par.seeding == TOKMARK_SEEDING_LEFTHASH) {
            uint8_t scratch[16];
            uint32_t zero = 0;
            tm_nonce_left_batch(&e->ctx_aes, ctx, &zero, 1, e->c, scratch, &e->nonce);
        }
        e->seen_current = e->par.mask_repeated && seen_contains(e, e->ctx_fp);
    }
}

void tokmark_embedder_prompt(tokmark_embedder *e, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) push(e, ids[i], 0);
}

void tokmark_embedder_accept(tokmark_embedder *e, int32_t token) { push(e, token, 1); }

int tokmark_embedder_active(const tokmark_embedder *e) {
    return e->pushed >= e->c && !e->seen_current;
}

static const int32_t *context(const tokmark_embedder *e) {
    return e->hist + TOKMARK_MAX_CONTEXT - e->c;
}

/* ------------------------------------------------------------------------ */
/* PRF values for a list of candidates                                       */
/* ------------------------------------------------------------------------ */

/* Fill e->cnonce[0..n) for candidate ids e->cid[0..n). */
static void candidate_nonces(tokmark_embedder *e, size_t n) {
    if (e->par.seeding == TOKMARK_SEEDING_LEFTHASH) {
        for (size_t i = 0; i < n; i++) e->cnonce[i] = e->nonce;
    } else {
        /* all candidates share the same previous tokens: start offset 0 */
        tm_nonce_self_batch(&e->ctx_aes, context(e), e->czero, e->cid, n, e->par.context_width,
                            e->cblk, e->cnonce);
    }
}

/* Value blocks: block index id>>2 (u-values) or id (g-values). */
static void candidate_blocks(tokmark_embedder *e, size_t n, int gvalues, uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t id = (uint32_t)e->cid[i];
        tm_store_ctr_block(out + 16 * i, e->cnonce[i], gvalues ? id : id >> 2);
    }
    tm_aes_ecb(&e->val_aes, out, out, n);
}

/* ------------------------------------------------------------------------ */
/* Softmax and drawing                                                       */
/* ------------------------------------------------------------------------ */

/* p[i] = softmax of logits (excluded: -inf → 0; all 0 when nothing is left). */
static void softmax_cand(const tokmark_token_data *cand, size_t n, double *p) {
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (cand[i].logit > mx) mx = cand[i].logit;
    if (!(mx > -INFINITY) || mx != mx) {
        for (size_t i = 0; i < n; i++) p[i] = 0.0;
        return;
    }
    /* expf: single precision is ample for sampling weights, and twice as fast */
    double z = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = cand[i].logit > -INFINITY ? (double)expf(cand[i].logit - mx) : 0.0;
        p[i] = v;
        z += v;
    }
    double inv = 1.0 / z;
    for (size_t i = 0; i < n; i++) p[i] *= inv;
}

static size_t draw(const double *p, size_t n, double u) {
    double total = 0.0;
    for (size_t i = 0; i < n; i++) total += p[i];
    double target = u * total, acc = 0.0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] <= 0.0) continue;
        acc += p[i];
        last = i;
        if (acc > target) return i;
    }
    return last;
}

static void write_p(tokmark_token_data *cand, size_t n, const double *p) {
    for (size_t i = 0; i < n; i++) cand[i].p = (float)p[i];
}

/* Gumbel key of one candidate: ℓ − ln(−ln r), r = u/2^32 (SPEC §5.2). */
static double gumbel_key(float logit, uint32_t u) {
    if (u == 0 || !(logit > -INFINITY)) return -INFINITY;
    double r = (double)u * 0x1p-32;
    return (double)logit - log(-log(r));
}

/* ------------------------------------------------------------------------ */
/* Candidate path                                                            */
/* ------------------------------------------------------------------------ */

/* Copy ids of the first K candidates into cid (invalid ids → 0, flagged). */
static size_t load_ids(tokmark_embedder *e, tokmark_token_data *cand, size_t n) {
    size_t K = n < e->cfg.max_candidates ? n : e->cfg.max_candidates;
    for (size_t i = K; i < n; i++) { /* beyond the configured cap: excluded */
        cand[i].logit = -INFINITY;
        cand[i].p = 0.0f;
    }
    for (size_t i = 0; i < K; i++) {
        int32_t id = cand[i].id;
        int ok = id >= 0 && (uint32_t)id < e->par.vocab_size;
        e->cvalid[i] = (unsigned char)ok;
        e->cid[i] = ok ? id : 0;
    }
    return K;
}

static void apply_kgw(tokmark_embedder *e, tokmark_token_data *cand, size_t K) {
    candidate_nonces(e, K);
    candidate_blocks(e, K, 0, e->cg);
    float d = (float)e->par.delta;
    for (size_t i = 0; i < K; i++) {
        uint32_t u = tm_load32le(e->cg + 16 * i + 4 * ((uint32_t)e->cid[i] & 3));
        if (e->cvalid[i] && u < e->par.gamma_threshold && cand[i].logit > -INFINITY) cand[i].logit += d;
    }
}

/* Gumbel choice among candidates: the same key and tie rule as the full
 * vocabulary, and the same exact pruning bound (see gumbel_scan_scalar),
 * starting from the candidate with the largest logit. */
static size_t choose_gumbel(tokmark_embedder *e, const tokmark_token_data *cand, size_t K) {
    candidate_nonces(e, K);
    candidate_blocks(e, K, 0, e->cg);
    size_t am = K;
    for (size_t i = 0; i < K; i++)
        if (e->cvalid[i] && (am == K || cand[i].logit > cand[am].logit)) am = i;
    if (am == K) return 0; /* no valid candidate */
    const double inv_ln2 = 1.4426950408889634074;
    size_t best = am;
    double bk = gumbel_key(cand[am].logit, tm_load32le(e->cg + 16 * am + 4 * ((uint32_t)e->cid[am] & 3)));
    for (size_t i = 0; i < K; i++) {
        if (!e->cvalid[i] || i == am) continue;
        uint32_t u = tm_load32le(e->cg + 16 * i + 4 * ((uint32_t)e->cid[i] & 3));
        double T = bk - 1e-3 - (double)cand[i].logit;
        if (T >= 0.6931471805599453) { /* positive: truncation is floor */
            double kf = T * inv_ln2 - 1e-4;
            uint32_t k = kf >= 32.0 ? 32u : (uint32_t)kf;
            if (u < (uint32_t)(0xFFFFFFFFull << (32 - k))) continue;
        }
        double k = gumbel_key(cand[i].logit, u);
        if (k > bk || (k == bk && k > -INFINITY && cand[i].id < cand[best].id)) {
            bk = k;
            best = i;
        }
    }
    return best; /* when every key is -inf: the largest logit */
}

/* SynthID tournament on p[0..n) with g-value blocks g (16 bytes each). */
static void tournament(const tokmark_params *par, double *p, const uint8_t *g, const unsigned char *valid,
                       size_t n) {
    for (uint32_t l = 0; l < par->layers; l++) {
        uint32_t byte = l >> 3, bit = l & 7;
        double E = 0.0;
        for (size_t i = 0; i < n; i++) {
            double gi = (valid == NULL || valid[i]) ? (double)((g[16 * i + byte] >> bit) & 1) : 0.0;
            E += p[i] * gi;
        }
        for (size_t i = 0; i < n; i++) {
            double gi = (valid == NULL || valid[i]) ? (double)((g[16 * i + byte] >> bit) & 1) : 0.0;
            p[i] *= 1.0 + gi - E;
        }
    }
}

void tokmark_embedder_apply(tokmark_embedder *e, tokmark_token_data *cand, size_t n) {
    if (n == 0) return;
    size_t K = load_ids(e, cand, n);
    if (!tokmark_embedder_active(e)) {
        softmax_cand(cand, K, e->cp);
        write_p(cand, K, e->cp);
        return;
    }
    switch (e->par.scheme) {
    case TOKMARK_SCHEME_KGW:
        apply_kgw(e, cand, K);
        softmax_cand(cand, K, e->cp);
        write_p(cand, K, e->cp);
        break;
    case TOKMARK_SCHEME_GUMBEL: {
        size_t b = choose_gumbel(e, cand, K);
        for (size_t i = 0; i < K; i++) {
            if (i != b) cand[i].logit = -INFINITY;
            cand[i].p = i == b ? 1.0f : 0.0f;
        }
        break;
    }
    case TOKMARK_SCHEME_SYNTHID: {
        softmax_cand(cand, K, e->cp);
        candidate_nonces(e, K);
        candidate_blocks(e, K, 1, e->cg);
        tournament(&e->par, e->cp, e->cg, e->cvalid, K);
        for (size_t i = 0; i < K; i++) {
            cand[i].logit = e->cp[i] > 0.0 ? (float)log(e->cp[i]) : -INFINITY;
            cand[i].p = (float)e->cp[i];
        }
        break;
    }
    }
}

int32_t tokmark_embedder_sample(tokmark_embedder *e, tokmark_token_data *cand, size_t n, double u) {
    if (n == 0) return -1;
    if (e->par.scheme == TOKMARK_SCHEME_GUMBEL && tokmark_embedder_active(e)) {
        size_t K = load_ids(e, cand, n);
        size_t b = choose_gumbel(e, cand, K);
        int32_t id = cand[b].id;
        for (size_t i = 0; i < K; i++) {
            if (i != b) cand[i].logit = -INFINITY;
            cand[i].p = i == b ? 1.0f : 0.0f;
        }
        return id;
    }
    tokmark_embedder_apply(e, cand, n);
    /* apply left the exact probabilities in cp[0..K) */
    size_t K = n < e->cfg.max_candidates ? n : e->cfg.max_candidates;
    return cand[draw(e->cp, K, u)].id;
}

/* ------------------------------------------------------------------------ */
/* Full-vocabulary path                                                      */
/* ------------------------------------------------------------------------ */

/* SelfHash nonces of the candidates t0 .. t0+cnt-1 (cnt ≤ TM_SELF_CHUNK) in
 * the current context, into e->vnonce. */
static void self_nonces(tokmark_embedder *e, uint32_t t0, uint32_t cnt) {
    for (uint32_t i = 0; i < cnt; i++) e->vids[i] = (int32_t)(t0 + i);
    tm_nonce_self_batch(&e->ctx_aes, context(e), e->vzero, e->vids, cnt, e->par.context_width, e->vblk,
                        e->vnonce);
}

/* u-values of tokens [t0, t0+cnt) into e->cu (cnt ≤ TM_SELF_CHUNK for SelfHash,
 * ≤ 4*TM_CHUNK_BLOCKS for LeftHash with t0 % 4 == 0). */
static void vocab_u(tokmark_embedder *e, uint32_t t0, uint32_t cnt, uint32_t *u) {
    if (e->par.seeding == TOKMARK_SEEDING_LEFTHASH) {
        uint32_t nb = (cnt + 3) / 4;
        tm_aes_ctr(&e->val_aes, e->nonce, t0 >> 2, nb, e->vblk);
        for (uint32_t i = 0; i < cnt; i++) u[i] = tm_load32le(e->vblk + 4 * i);
        return;
    }
    self_nonces(e, t0, cnt);
    for (uint32_t i = 0; i < cnt; i++) tm_store_ctr_block(e->vblk + 16 * i, e->vnonce[i], (t0 + i) >> 2);
    tm_aes_ecb(&e->val_aes, e->vblk, e->vblk, cnt);
    for (uint32_t i = 0; i < cnt; i++) u[i] = tm_load32le(e->vblk + 16 * i + 4 * ((t0 + i) & 3));
}

static uint32_t vocab_chunk(const tokmark_embedder *e) {
    return e->par.seeding == TOKMARK_SEEDING_LEFTHASH ? 4 * TM_CHUNK_BLOCKS : TM_SELF_CHUNK;
}

/* KGW: green bitset of the whole vocabulary. */
static void vocab_green(tokmark_embedder *e) {
    uint32_t V = e->par.vocab_size, step = vocab_chunk(e), G = e->par.gamma_threshold;
    uint32_t u[4 * TM_CHUNK_BLOCKS];
    memset(e->vbits, 0, ((V + 63) / 64) * sizeof *e->vbits);
    for (uint32_t t0 = 0; t0 < V; t0 += step) {
        uint32_t cnt = V - t0 < step ? V - t0 : step;
        vocab_u(e, t0, cnt, u);
        for (uint32_t i = 0; i < cnt; i++)
            e->vbits[(t0 + i) >> 6] |= (uint64_t)(u[i] < G) << ((t0 + i) & 63);
    }
}

/* logits[i] += δ where u_i < G, for the u-values packed in `blk` (SPEC §3
 * layout: 4 little-endian words per block).  Branch-free: the green test is
 * a coin flip, so a branch would mispredict a quarter of the time. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !TM_BIG_ENDIAN
#include <immintrin.h>
__attribute__((target("avx2"))) static void kgw_bias_avx2(const uint8_t *blk, float *l, uint32_t n,
                                                          uint32_t G, float d) {
    const __m256i flip = _mm256_set1_epi32((int)0x80000000u);
    const __m256i g = _mm256_set1_epi32((int)(G ^ 0x80000000u));
    const __m256 dv = _mm256_set1_ps(d);
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(blk + 4 * i)), flip);
        __m256 green = _mm256_castsi256_ps(_mm256_cmpgt_epi32(g, u)); /* u < G, unsigned */
        __m256 v = _mm256_loadu_ps(l + i);
        _mm256_storeu_ps(l + i, _mm256_add_ps(v, _mm256_and_ps(green, dv)));
    }
    for (; i < n; i++) l[i] += tm_load32le(blk + 4 * i) < G ? d : 0.0f;
}
static int have_avx2(void) {
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return v;
}
#define TM_HAVE_AVX2_PATH 1
#endif

static void kgw_bias_block(const uint8_t *blk, float *l, uint32_t n, uint32_t G, float d) {
#ifdef TM_HAVE_AVX2_PATH
    if (have_avx2()) {
        kgw_bias_avx2(blk, l, n, G, d);
        return;
    }
#endif
    for (uint32_t i = 0; i < n; i++) {
        uint32_t green = (uint32_t)0 - (uint32_t)(tm_load32le(blk + 4 * i) < G);
        uint32_t add;
        memcpy(&add, &d, 4);
        add &= green;
        float f;
        memcpy(&f, &add, 4);
        l[i] += f;
    }
}

static void kgw_apply_logits(tokmark_embedder *e, float *logits) {
    uint32_t V = e->par.vocab_size, G = e->par.gamma_threshold;
    float d = (float)e->par.delta;
    if (e->par.seeding == TOKMARK_SEEDING_LEFTHASH) {
        /* fused: CTR chunk then compare-and-add, no bitset */
        for (uint32_t t0 = 0; t0 < V; t0 += 4 * TM_CHUNK_BLOCKS) {
            uint32_t cnt = V - t0 < 4 * TM_CHUNK_BLOCKS ? V - t0 : 4 * TM_CHUNK_BLOCKS;
            tm_aes_ctr(&e->val_aes, e->nonce, t0 >> 2, (cnt + 3) / 4, e->vblk);
            kgw_bias_block(e->vblk, logits + t0, cnt, G, d);
        }
        return;
    }
    vocab_green(e);
    for (uint32_t t = 0; t < V; t++)
        if ((e->vbits[t >> 6] >> (t & 63)) & 1) logits[t] += d;
}

/* Gumbel pruning (SPEC §5.2 choice, computed exactly).  For a candidate with
 * logit ℓ and value u, its key ℓ − ln(−ln r) is at most ℓ − ln(1 − r)
 * (because −ln r ≥ 1 − r).  With T = best − ℓ and k = ⌊T / ln 2⌋ ≥ 1 the key
 * can only reach `best` if 1 − r ≤ e^{−T} ≤ 2^{−k}, i.e. u ≥ 2^32 − 2^{32−k}.
 * Tokens failing that are skipped without logarithms; the others get the
 * exact key, so the choice equals the brute-force argmax.  The margins
 * (1e-3 on T; 1e-4 + 1e-6·|best|/ln 2 on T/ln 2) exceed the float rounding of
 * the vector test (below 1e-7·|ℓ| + 3e-6 for |ℓ − best| ≤ 23), so it is safe. */
typedef struct gumbel_best {
    double key;
    int32_t id;
} gumbel_best;

static void gumbel_exact(gumbel_best *b, float lg, uint32_t u, int32_t t) {
    double k = gumbel_key(lg, u);
    if (k > b->key || (k == b->key && k > -INFINITY && t < b->id)) {
        b->key = k;
        b->id = t;
    }
}

static void gumbel_scan_scalar(gumbel_best *b, const float *l, const uint8_t *w, uint32_t n, int32_t t0) {
    const double inv_ln2 = 1.4426950408889634074;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u = tm_load32le(w + 4 * i);
        double T = b->key - 1e-3 - (double)l[i];
        if (T >= 0.6931471805599453) { /* k ≥ 1: the cheap test can prune; truncation = floor */
            double kf = T * inv_ln2 - 1e-4;
            uint32_t k = kf >= 32.0 ? 32u : (uint32_t)kf;
            uint32_t thr = k == 0 ? 0u : (uint32_t)(0xFFFFFFFFull << (32 - k));
            if (u < thr) continue;
        }
        gumbel_exact(b, l[i], u, t0 + (int32_t)i);
    }
}

#ifdef TM_HAVE_AVX2_PATH
static float gumbel_c(double key) {
    const double inv_ln2 = 1.4426950408889634074;
    if (!(key > -INFINITY)) return -INFINITY;
    return (float)((key - 1e-3) * inv_ln2 - 1e-4 - 1e-6 * fabs(key) * inv_ln2);
}

/* k = clamp(⌊(best − 1e-3 − ℓ)/ln 2 − 1e-4⌋, 0, 32) as one FMA from the loop
 * constant c = (best − 1e-3)/ln 2 − 1e-4; NaN (ℓ = −∞ with best = −∞, or a NaN
 * logit) clamps to 32, which prunes: such tokens are never chosen. */
__attribute__((target("avx2,fma"))) static inline unsigned gumbel_keep8(__m256 c, const float *l,
                                                                       const uint8_t *w) {
    const __m256 neg_inv_ln2 = _mm256_set1_ps(-1.44269504f);
    const __m256i flip = _mm256_set1_epi32((int)0x80000000u);
    __m256 kf = _mm256_floor_ps(_mm256_fmadd_ps(_mm256_loadu_ps(l), neg_inv_ln2, c));
    kf = _mm256_max_ps(_mm256_min_ps(kf, _mm256_set1_ps(32.0f)), _mm256_setzero_ps());
    __m256i k = _mm256_cvttps_epi32(kf);
    __m256i thr = _mm256_sllv_epi32(_mm256_set1_epi32(-1), _mm256_sub_epi32(_mm256_set1_epi32(32), k));
    __m256i u = _mm256_loadu_si256((const __m256i *)(const void *)w);
    __m256i prune = _mm256_cmpgt_epi32(_mm256_xor_si256(thr, flip), _mm256_xor_si256(u, flip));
    return (unsigned)~_mm256_movemask_ps(_mm256_castsi256_ps(prune)) & 0xffu;
}

__attribute__((target("avx2,fma"))) static void gumbel_scan_avx2(gumbel_best *b, const float *l,
                                                                  const uint8_t *w, uint32_t n,
                                                                  int32_t t0) {
    double key = b->key;
    __m256 c = _mm256_set1_ps(gumbel_c(key));
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        unsigned keep = gumbel_keep8(c, l + i, w + 4 * i) | gumbel_keep8(c, l + i + 8, w + 4 * i + 32) << 8;
        if (__builtin_expect(keep == 0, 1)) continue;
        while (keep) {
            unsigned j = (unsigned)__builtin_ctz(keep);
            keep &= keep - 1;
            gumbel_exact(b, l[i + j], tm_load32le(w + 4 * (i + j)), t0 + (int32_t)(i + j));
        }
        if (b->key != key) {
            key = b->key;
            c = _mm256_set1_ps(gumbel_c(key));
        }
    }
    if (i < n) gumbel_scan_scalar(b, l + i, w + 4 * i, n - i, t0 + (int32_t)i);
}
#endif

static void gumbel_scan(gumbel_best *b, const float *l, const uint8_t *w, uint32_t n, int32_t t0) {
#ifdef TM_HAVE_AVX2_PATH
    if (have_avx2()) {
        gumbel_scan_avx2(b, l, w, n, t0);
        return;
    }
#endif
    gumbel_scan_scalar(b, l, w, n, t0);
}

static int32_t gumbel_choose_logits(tokmark_embedder *e, const float *logits) {
    uint32_t V = e->par.vocab_size, step = vocab_chunk(e);
    uint32_t u[4 * TM_CHUNK_BLOCKS];
    gumbel_best b = {-INFINITY, -1};
    for (uint32_t t0 = 0; t0 < V; t0 += step) {
        uint32_t cnt = V - t0 < step ? V - t0 : step;
        const uint8_t *w;
        if (e->par.seeding == TOKMARK_SEEDING_LEFTHASH) {
            tm_aes_ctr(&e->val_aes, e->nonce, t0 >> 2, (cnt + 3) / 4, e->vblk);
            w = e->vblk;
        } else {
            vocab_u(e, t0, cnt, u);
            for (uint32_t i = 0; i < cnt; i++) tm_store32le((uint8_t *)&u[i], u[i]);
            w = (const uint8_t *)u;
        }
        gumbel_scan(&b, logits + t0, w, cnt, (int32_t)t0);
    }
    if (b.id >= 0) return b.id;
    uint32_t am = 0; /* nothing finite: the largest logit */
    for (uint32_t t = 1; t < V; t++)
        if (logits[t] > logits[am]) am = t;
    return (int32_t)am;
}

/* SynthID over the whole vocabulary: e->vp = p_m. */
static void synthid_vocab(tokmark_embedder *e, const float *logits) {
    uint32_t V = e->par.vocab_size;
    float mx = -INFINITY;
    for (uint32_t t = 0; t < V; t++)
        if (logits[t] > mx) mx = logits[t];
    double z = 0.0;
    for (uint32_t t = 0; t < V; t++) {
        double v = logits[t] > -INFINITY ? exp((double)logits[t] - (double)mx) : 0.0;
        e->vp[t] = v;
        z += v;
    }
    for (uint32_t t = 0; t < V; t++) e->vp[t] /= z;
    if (e->par.seeding == TOKMARK_SEEDING_LEFTHASH) {
        tm_aes_ctr(&e->val_aes, e->nonce, 0, V, e->vg);
    } else {
        for (uint32_t t0 = 0; t0 < V; t0 += TM_SELF_CHUNK) {
            uint32_t cnt = V - t0 < TM_SELF_CHUNK ? V - t0 : TM_SELF_CHUNK;
            self_nonces(e, t0, cnt);
            for (uint32_t i = 0; i < cnt; i++) tm_store_ctr_block(e->vg + 16 * (t0 + i), e->vnonce[i], t0 + i);
            tm_aes_ecb(&e->val_aes, e->vg + 16 * (size_t)t0, e->vg + 16 * (size_t)t0, cnt);
        }
    }
    tournament(&e->par, e->vp, e->vg, NULL, V);
}

void tokmark_embedder_apply_logits(tokmark_embedder *e, float *logits) {
    if (!tokmark_embedder_active(e)) return;
    uint32_t V = e->par.vocab_size;
    switch (e->par.scheme) {
    case TOKMARK_SCHEME_KGW: kgw_apply_logits(e, logits); break;
    case TOKMARK_SCHEME_GUMBEL: {
        int32_t b = gumbel_choose_logits(e, logits);
        for (uint32_t t = 0; t < V; t++)
            if ((int32_t)t != b) logits[t] = -INFINITY;
        break;
    }
    case TOKMARK_SCHEME_SYNTHID:
        synthid_vocab(e, logits);
        for (uint32_t t = 0; t < V; t++) logits[t] = e->vp[t] > 0.0 ? (float)log(e->vp[t]) : -INFINITY;
        break;
    }
}

/* Plain or KGW-biased softmax sampling over V logits without writing them:
 * two passes (max, then the walk), no V-sized buffer. */
static int32_t sample_vocab(const tokmark_embedder *e, const float *logits, double u, int biased) {
    uint32_t V = e->par.vocab_size;
    float d = biased ? (float)e->par.delta : 0.0f;
#define TM_LOGIT(t) (logits[t] + ((biased && ((e->vbits[(t) >> 6] >> ((t) & 63)) & 1)) ? d : 0.0f))
    float mx = -INFINITY;
    for (uint32_t t = 0; t < V; t++) {
        float l = TM_LOGIT(t);
        if (l > mx) mx = l;
    }
    if (!(mx > -INFINITY)) return 0;
    double z = 0.0;
    for (uint32_t t = 0; t < V; t++) {
        float l = TM_LOGIT(t);
        if (l > -INFINITY) z += exp((double)l - (double)mx);
    }
    double target = u * z, acc = 0.0;
    int32_t last = 0;
    for (uint32_t t = 0; t < V; t++) {
        float l = TM_LOGIT(t);
        if (!(l > -INFINITY)) continue;
        acc += exp((double)l - (double)mx);
        last = (int32_t)t;
        if (acc > target) return (int32_t)t;
    }
#undef TM_LOGIT
    return last;
}

int32_t tokmark_embedder_sample_logits(tokmark_embedder *e, const float *logits, double u) {
    if (!tokmark_embedder_active(e)) return sample_vocab(e, logits, u, 0);
    switch (e->par.scheme) {
    case TOKMARK_SCHEME_KGW:
        vocab_green(e);
        return sample_vocab(e, logits, u, 1);
    case TOKMARK_SCHEME_GUMBEL: return gumbel_choose_logits(e, logits);
    case TOKMARK_SCHEME_SYNTHID:
        synthid_vocab(e, logits);
        return (int32_t)draw(e->vp, e->par.vocab_size, u);
    }
    return 0;
}
