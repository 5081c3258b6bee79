/* compat.c — compatibility profiles (SPEC.md §10): the KGW and SynthID
 * detectors of Hugging Face transformers, lm-watermarking and synthid-text,
 * reproduced bit-exactly on torch's CPU generator, with exact p-values. */
#include "internal.h"
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#if defined(__GNUC__) || defined(__clang__)
__extension__ typedef __int128 tm_i128;
#else
#error "compat.c needs a compiler with __int128 (GCC or Clang)"
#endif

#define LN10 2.302585092994045684017991454684364
#define TM_PI 3.14159265358979323846264338327950288
#define SELF_TABLE_N  1000003u    /* the self-hash table size of both KGW references */
#define LMW_TABLE_SEED 2971215073u /* lm-watermarking's module-level table seed */
#define SID_LCG UINT64_C(6364136223846793005)
#define U64_M1 (~UINT64_C(0))     /* 2^64 - 1 */
#define CACHE_SLOTS 256u          /* greenlists kept per engine (LeftHash-type seeds) */
#define MAX_FILE (1u << 20)

static const char COMPAT_MAGIC[] = TM_COMPAT_MAGIC;
static const char PROFILE_MAGIC[] = TM_PROFILE_MAGIC;
static const char KEY_ID_PREFIX[] = "tokmark compat key id v1\n";

/* ------------------------------------------------------------------------ */
/* torch CPU generator (SPEC §10.1)                                           */
/* ------------------------------------------------------------------------ */

void tm_mt_seed(tm_mt *m, uint64_t seed) {
    m->s[0] = (uint32_t)seed;
    for (uint32_t i = 1; i < 624; i++) m->s[i] = 1812433253u * (m->s[i - 1] ^ (m->s[i - 1] >> 30)) + i;
    m->i = 624;
}

static void mt_twist(tm_mt *m) {
    uint32_t *s = m->s;
    uint32_t k = 0, y;
    for (; k < 624 - 397; k++) {
        y = (s[k] & 0x80000000u) | (s[k + 1] & 0x7fffffffu);
        s[k] = s[k + 397] ^ (y >> 1) ^ ((0u - (y & 1u)) & 0x9908b0dfu);
    }
    for (; k < 623; k++) {
        y = (s[k] & 0x80000000u) | (s[k + 1] & 0x7fffffffu);
        s[k] = s[k + 397 - 624] ^ (y >> 1) ^ ((0u - (y & 1u)) & 0x9908b0dfu);
    }
    y = (s[623] & 0x80000000u) | (s[0] & 0x7fffffffu);
    s[623] = s[396] ^ (y >> 1) ^ ((0u - (y & 1u)) & 0x9908b0dfu);
    m->i = 0;
}

uint32_t tm_mt_next(tm_mt *m) {
    if (m->i >= 624) mt_twist(m);
    uint32_t y = m->s[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t tm_mt_next64(tm_mt *m) {
    uint64_t hi = tm_mt_next(m);
    return (hi << 32) | tm_mt_next(m);
}

void tm_randperm(uint64_t seed, uint32_t n, int32_t *out) {
    tm_mt m;
    tm_mt_seed(&m, seed);
    for (uint32_t i = 0; i < n; i++) out[i] = (int32_t)i;
    for (uint32_t i = 0; i + 1 < n; i++) {
        uint32_t j = i + tm_mt_next(&m) % (n - i);
        int32_t t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}

void tm_randint2(uint64_t seed, uint32_t S, uint8_t *out) {
    tm_mt m;
    tm_mt_seed(&m, seed);
    for (uint32_t i = 0; i < S; i++) out[i] = (uint8_t)(tm_mt_next(&m) & 1u);
}

/* 1 iff `t` lands in positions [0, gs) of randperm(V) after manual_seed(seed).
 * Fisher–Yates finalises position i at step i, so it suffices to follow where
 * t is: it is green iff some step i < gs swaps it into position i. */
static int kgw_track(uint64_t seed, uint32_t V, uint32_t gs, int64_t t) {
    if (t < 0 || t >= (int64_t)V || gs == 0) return 0;
    tm_mt m;
    tm_mt_seed(&m, seed);
    uint32_t pos = (uint32_t)t;
    uint32_t steps = gs < V - 1 ? gs : V - 1;
    for (uint32_t i = 0; i < steps; i++) {
        uint32_t j = i + tm_mt_next(&m) % (V - i);
        if (j == pos) return 1; /* also j == i == pos: it stays at i */
        if (pos == i) pos = j;
    }
    return gs >= V; /* gs == V: the last entry is green too */
}

/* ------------------------------------------------------------------------ */
/* Profiles                                                                   */
/* ------------------------------------------------------------------------ */

struct tokmark_compat {
    tokmark_compat_config cfg;
    char key_id[TOKMARK_KEY_ID_HEX + 1];
    int is_kgw, self_salt;
    uint32_t ngram;         /* n: tokens per position */
    uint32_t window;        /* KGW: tokens the seed is computed from (w or h) */
    uint32_t gs;            /* KGW: int(V·r) */
    int32_t *self_table;    /* KGW selfhash: randperm(1000003) */
    uint8_t *table;         /* HF SynthID: the sampling table */
    uint32_t table_ones;
    uint64_t h0;            /* SynthID: 1 or the hash IV */
    double null_p;
    uint16_t wint[TOKMARK_COMPAT_MAX_DEPTH]; /* integer weighted-mean weights, 0 if none */
    double wmean[TOKMARK_COMPAT_MAX_DEPTH];  /* the reference's normalised weights */
};

static int compat_key_id(tokmark_compat *c);

const char *tokmark_compat_kind_name(tokmark_compat_kind k) {
    switch (k) {
    case TOKMARK_COMPAT_HF_KGW: return "hf-kgw";
    case TOKMARK_COMPAT_LMW_KGW: return "lmw-kgw";
    case TOKMARK_COMPAT_HF_SYNTHID: return "hf-synthid";
    case TOKMARK_COMPAT_SYNTHID: return "synthid";
    }
    return "unknown";
}

static tokmark_compat_kind kind_parse_n(const char *s, size_t n) {
    for (int k = 1; k <= 4; k++) {
        const char *name = tokmark_compat_kind_name((tokmark_compat_kind)k);
        if (strlen(name) == n && memcmp(name, s, n) == 0) return (tokmark_compat_kind)k;
    }
    return (tokmark_compat_kind)0;
}

tokmark_compat_kind tokmark_compat_kind_parse(const char *name) {
    return name == NULL ? (tokmark_compat_kind)0 : kind_parse_n(name, strlen(name));
}

static int kind_is_kgw(tokmark_compat_kind k) {
    return k == TOKMARK_COMPAT_HF_KGW || k == TOKMARK_COMPAT_LMW_KGW;
}

void tokmark_compat_config_default(tokmark_compat_config *cfg, tokmark_compat_kind kind) {
    if (cfg == NULL) return;
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    cfg->bos_token_id = -1;
    cfg->eos_token_id = -1;
    if (kind_is_kgw(kind)) {
        cfg->vocab_size = 32000;
        cfg->seeding = TOKMARK_SEEDING_LEFTHASH;
        cfg->context_width = 1;
        cfg->greenlist_ratio = 0.25;
        cfg->hashing_key = 15485863;
    } else {
        cfg->ngram_len = 5;
        cfg->context_history_size = 1024;
        if (kind == TOKMARK_COMPAT_HF_SYNTHID) cfg->sampling_table_size = 65536;
    }
}

int tokmark_compat_config_check(const tokmark_compat_config *c) {
    if (c == NULL) return TOKMARK_ERR_INVALID;
    if (kind_is_kgw(c->kind)) {
        if (c->vocab_size < 2 || c->vocab_size > TOKMARK_COMPAT_MAX_VOCAB) return TOKMARK_ERR_INVALID;
        if (c->bos_token_id < -1 || c->bos_token_id > INT32_MAX) return TOKMARK_ERR_INVALID;
        if (c->seeding != TOKMARK_SEEDING_LEFTHASH && c->seeding != TOKMARK_SEEDING_SELFHASH)
            return TOKMARK_ERR_INVALID;
        if (c->context_width < 1 || c->context_width > TOKMARK_MAX_CONTEXT) return TOKMARK_ERR_INVALID;
        if (c->self_salt > 1 || (c->kind == TOKMARK_COMPAT_HF_KGW && c->self_salt != 0))
            return TOKMARK_ERR_INVALID;
        if (!(c->greenlist_ratio > 0.0 && c->greenlist_ratio < 1.0)) return TOKMARK_ERR_INVALID;
        if (c->hashing_key > (uint64_t)INT64_MAX) return TOKMARK_ERR_INVALID;
        if (c->ngram_len || c->depth || c->context_history_size || c->eos_token_id != -1 ||
            c->sampling_table_size || c->sampling_table_seed)
            return TOKMARK_ERR_INVALID;
        for (size_t i = 0; i < TOKMARK_COMPAT_MAX_DEPTH; i++)
            if (c->keys[i] != 0) return TOKMARK_ERR_INVALID;
        return TOKMARK_OK;
    }
    if (c->kind != TOKMARK_COMPAT_HF_SYNTHID && c->kind != TOKMARK_COMPAT_SYNTHID) return TOKMARK_ERR_INVALID;
    if (c->ngram_len < 1 || c->ngram_len > TOKMARK_COMPAT_MAX_NGRAM) return TOKMARK_ERR_INVALID;
    if (c->depth < 1 || c->depth > TOKMARK_COMPAT_MAX_DEPTH) return TOKMARK_ERR_INVALID;
    for (size_t i = c->depth; i < TOKMARK_COMPAT_MAX_DEPTH; i++)
        if (c->keys[i] != 0) return TOKMARK_ERR_INVALID;
    if (c->context_history_size < 1 || c->context_history_size > TOKMARK_COMPAT_MAX_HISTORY)
        return TOKMARK_ERR_INVALID;
    if (c->eos_token_id < -1 || c->eos_token_id > INT32_MAX) return TOKMARK_ERR_INVALID;
    if (c->kind == TOKMARK_COMPAT_HF_SYNTHID) {
        if (c->sampling_table_size < 2 || c->sampling_table_size > TOKMARK_COMPAT_MAX_TABLE)
            return TOKMARK_ERR_INVALID;
    } else if (c->sampling_table_size || c->sampling_table_seed) {
        return TOKMARK_ERR_INVALID;
    }
    if (c->vocab_size || c->bos_token_id != -1 || c->seeding || c->context_width || c->self_salt ||
        c->greenlist_ratio != 0.0 || c->hashing_key)
        return TOKMARK_ERR_INVALID;
    return TOKMARK_OK;
}

int tm_synthid_hash_iv(const int64_t *keys, uint32_t depth, uint64_t *iv) {
    uint8_t buf[8 * TOKMARK_COMPAT_MAX_DEPTH], h[32];
    unsigned hl = 0;
    if (depth > TOKMARK_COMPAT_MAX_DEPTH) return -1;
    for (uint32_t i = 0; i < depth; i++) tm_store64le(buf + 8 * i, (uint64_t)keys[i]);
    int ok = EVP_Digest(buf, 8 * (size_t)depth, h, &hl, EVP_sha256(), NULL) == 1 && hl == 32;
    sodium_memzero(buf, sizeof buf);
    if (!ok) return -1;
    const tm_i128 mod = (tm_i128)INT64_MAX; /* 2^63 - 1 */
    tm_i128 r = 0;
    for (int i = 0; i < 32; i++) r = (r * 256 + h[i]) % mod;
    sodium_memzero(h, sizeof h);
    *iv = (uint64_t)r;
    return 0;
}

/* The weighted-mean weights of synthid-text's detector_mean.py:
 * numpy.linspace(10, 1, D), then w *= D / sum(w) (numpy sums fewer than 8
 * values in order, more with 8 strided partial sums; SPEC §10.4). */
static void synthid_weights(uint32_t D, double *w, uint16_t *wint) {
    if (D == 1) {
        w[0] = 10.0;
    } else {
        const double step = -9.0 / (double)(D - 1);
        for (uint32_t i = 0; i < D; i++) w[i] = (double)i * step + 10.0;
        w[D - 1] = 1.0;
    }
    double sum;
    if (D < 8) {
        sum = 0.0;
        for (uint32_t i = 0; i < D; i++) sum += w[i];
    } else {
        double r[8];
        uint32_t i;
        for (int k = 0; k < 8; k++) r[k] = w[k];
        for (i = 8; i + 8 <= D; i += 8)
            for (int k = 0; k < 8; k++) r[k] += w[i + (uint32_t)k];
        sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < D; i++) sum += w[i];
    }
    const double f = (double)D / sum;
    for (uint32_t i = 0; i < D; i++) w[i] *= f;
    /* integer weights proportional to linspace(10, 1, D): 10(D-1) - 9i, divided by gcd(9, D-1) */
    memset(wint, 0, sizeof(uint16_t) * TOKMARK_COMPAT_MAX_DEPTH);
    if (D == 1) {
        wint[0] = 1;
        return;
    }
    uint32_t g = (D - 1) % 9 == 0 ? 9u : (D - 1) % 3 == 0 ? 3u : 1u;
    if (10u * (D - 1) / g > TOKMARK_MAX_WEIGHT) return; /* too large for tokmark_ln_sf_weighted */
    for (uint32_t i = 0; i < D; i++) wint[i] = (uint16_t)((10u * (D - 1) - 9u * i) / g);
}

int tokmark_compat_create(tokmark_compat **out, const tokmark_compat_config *cfg) {
    if (out == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    if (tokmark_compat_config_check(cfg) != TOKMARK_OK) return TOKMARK_ERR_INVALID;
    if (sodium_init() < 0) return TOKMARK_ERR_CRYPTO;
    tokmark_compat *c = (tokmark_compat *)calloc(1, sizeof *c);
    if (c == NULL) return TOKMARK_ERR_NOMEM;
    memcpy(&c->cfg, cfg, sizeof *cfg);
    int rc = TOKMARK_OK;
    if (kind_is_kgw(cfg->kind)) {
        c->is_kgw = 1;
        c->self_salt = cfg->kind == TOKMARK_COMPAT_HF_KGW ? cfg->seeding == TOKMARK_SEEDING_SELFHASH
                                                          : (int)cfg->self_salt;
        c->window = cfg->context_width;
        c->ngram = cfg->context_width + 1u - (uint32_t)c->self_salt;
        c->gs = (uint32_t)((double)cfg->vocab_size * cfg->greenlist_ratio);
        c->null_p = (double)c->gs / (double)cfg->vocab_size;
        if (cfg->seeding == TOKMARK_SEEDING_SELFHASH) {
            c->self_table = (int32_t *)malloc(sizeof(int32_t) * SELF_TABLE_N);
            if (c->self_table == NULL) rc = TOKMARK_ERR_NOMEM;
            else tm_randperm(cfg->kind == TOKMARK_COMPAT_HF_KGW ? cfg->hashing_key : LMW_TABLE_SEED,
                             SELF_TABLE_N, c->self_table);
        }
    } else {
        c->ngram = cfg->ngram_len;
        synthid_weights(cfg->depth, c->wmean, c->wint);
        if (cfg->kind == TOKMARK_COMPAT_HF_SYNTHID) {
            c->h0 = 1;
            c->table = (uint8_t *)malloc(cfg->sampling_table_size);
            if (c->table == NULL) {
                rc = TOKMARK_ERR_NOMEM;
            } else {
                tm_randint2(cfg->sampling_table_seed, cfg->sampling_table_size, c->table);
                for (uint32_t i = 0; i < cfg->sampling_table_size; i++) c->table_ones += c->table[i];
                c->null_p = (double)c->table_ones / (double)cfg->sampling_table_size;
                if (2u * (uint64_t)c->table_ones != cfg->sampling_table_size)
                    memset(c->wint, 0, sizeof c->wint); /* not Bernoulli(1/2): no exact weighted p */
            }
        } else {
            c->null_p = 0.5;
            if (tm_synthid_hash_iv(cfg->keys, cfg->depth, &c->h0) != 0) rc = TOKMARK_ERR_CRYPTO;
        }
    }
    if (rc == TOKMARK_OK) rc = compat_key_id(c);
    if (rc != TOKMARK_OK) {
        tokmark_compat_free(c);
        return rc;
    }
    *out = c;
    return TOKMARK_OK;
}

void tokmark_compat_free(tokmark_compat *c) {
    if (c == NULL) return;
    if (c->self_table != NULL) {
        sodium_memzero(c->self_table, sizeof(int32_t) * SELF_TABLE_N);
        free(c->self_table);
    }
    if (c->table != NULL) {
        sodium_memzero(c->table, c->cfg.sampling_table_size);
        free(c->table);
    }
    sodium_memzero(c, sizeof *c);
    free(c);
}

const tokmark_compat_config *tokmark_compat_get_config(const tokmark_compat *c) {
    return c != NULL ? &c->cfg : NULL;
}

const char *tokmark_compat_key_id(const tokmark_compat *c) { return c != NULL ? c->key_id : NULL; }

/* ------------------------------------------------------------------------ */
/* KGW seeds and greenlists (SPEC §10.2, §10.3)                               */
/* ------------------------------------------------------------------------ */

/* x mod (2^64 - 1), Python (floor) semantics, x a signed 128-bit integer. */
static uint64_t mod_u64m1(tm_i128 x) {
    const tm_i128 m = (tm_i128)U64_M1;
    tm_i128 r = x % m;
    if (r < 0) r += m;
    return (uint64_t)r;
}

static int64_t self_hash(const tokmark_compat *c, int64_t x) {
    int64_t i = x % (int64_t)SELF_TABLE_N;
    if (i < 0) i += SELF_TABLE_N;
    return (int64_t)c->self_table[i] + 1;
}

uint64_t tokmark_compat_seed(const tokmark_compat *c, const int32_t *win) {
    if (c == NULL || !c->is_kgw || win == NULL) return 0;
    const uint32_t w = c->window;
    const uint64_t K = c->cfg.hashing_key;
    if (c->cfg.seeding == TOKMARK_SEEDING_LEFTHASH) {
        if (c->cfg.kind == TOKMARK_COMPAT_HF_KGW) return mod_u64m1((tm_i128)K * win[w - 1]);
        int64_t sum = 0; /* lm-watermarking additive_prf: the sum of the h prefix tokens */
        for (uint32_t i = 0; i < w; i++) sum += win[i];
        return mod_u64m1((tm_i128)K * sum);
    }
    /* anchored min-hash: v_i = int64 wrap(K · H(x_i) · H(x_last)) */
    const uint64_t b = (uint64_t)self_hash(c, win[w - 1]);
    int64_t mn = INT64_MAX;
    for (uint32_t i = 0; i < w; i++) {
        int64_t v = (int64_t)(K * (uint64_t)self_hash(c, win[i]) * b);
        if (v < mn) mn = v;
    }
    return mn >= 0 ? (uint64_t)mn : (uint64_t)mn - 1u; /* m + 2^64 - 1 */
}

int tokmark_compat_is_green(const tokmark_compat *c, uint64_t seed, int64_t token) {
    if (c == NULL || !c->is_kgw) return 0;
    return kgw_track(seed, c->cfg.vocab_size, c->gs, token);
}

/* A greenlist engine: membership by tracking, with a small cache of whole
 * greenlists (bitsets) for seeds that do not depend on the scored token
 * (LeftHash-type schemes), materialised the second time a seed is seen. */
typedef struct kgw_engine {
    const tokmark_compat *c;
    int cached;
    uint32_t words;      /* 64-bit words per bitset */
    uint64_t *bits;      /* CACHE_SLOTS bitsets */
    uint64_t slot_seed[CACHE_SLOTS];
    uint8_t slot_state[CACHE_SLOTS]; /* 0 empty, 1 seen once, 2 materialised */
    uint8_t slot_count[CACHE_SLOTS]; /* hits minus misses (0..15): a slot is replaced at 0 */
    int32_t *perm;       /* identity between uses */
    uint32_t *undo;      /* the swap partner of each step */
} kgw_engine;

static void engine_free(kgw_engine *e) {
    free(e->bits);
    free(e->perm);
    free(e->undo);
    memset(e, 0, sizeof *e);
}

static int engine_alloc(kgw_engine *e) {
    const uint32_t V = e->c->cfg.vocab_size, gs = e->c->gs;
    e->bits = (uint64_t *)calloc((size_t)CACHE_SLOTS * e->words, sizeof(uint64_t));
    e->perm = (int32_t *)malloc(sizeof(int32_t) * V);
    e->undo = (uint32_t *)malloc(sizeof(uint32_t) * (gs < V ? gs : V));
    if (e->bits == NULL || e->perm == NULL || e->undo == NULL) {
        free(e->bits);
        free(e->perm);
        free(e->undo);
        e->bits = NULL;
        e->perm = NULL;
        e->undo = NULL;
        return TOKMARK_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < V; i++) e->perm[i] = (int32_t)i;
    return TOKMARK_OK;
}

/* lazy: allocate the cache when it is first needed (per-sequence scoring;
 * without memory it falls back to tracking); otherwise now (the streaming
 * detector, whose feed never allocates). */
static int engine_init(kgw_engine *e, const tokmark_compat *c, int lazy) {
    memset(e, 0, sizeof *e);
    e->c = c;
    if (c->self_salt || c->gs == 0) return TOKMARK_OK;
    e->words = (c->cfg.vocab_size + 63) / 64;
    e->cached = 1;
    if (lazy) return TOKMARK_OK;
    int rc = engine_alloc(e);
    if (rc != TOKMARK_OK) engine_free(e);
    return rc;
}

static void engine_materialise(kgw_engine *e, uint64_t seed, uint64_t *bits) {
    const uint32_t V = e->c->cfg.vocab_size, gs = e->c->gs;
    const uint32_t steps = gs < V - 1 ? gs : V - 1;
    int32_t *p = e->perm;
    tm_mt m;
    tm_mt_seed(&m, seed);
    memset(bits, 0, sizeof(uint64_t) * e->words);
    for (uint32_t i = 0; i < steps; i++) {
        uint32_t j = i + tm_mt_next(&m) % (V - i);
        int32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
        e->undo[i] = j;
        bits[(uint32_t)p[i] >> 6] |= UINT64_C(1) << ((uint32_t)p[i] & 63);
    }
    if (gs >= V) bits[(uint32_t)p[V - 1] >> 6] |= UINT64_C(1) << ((uint32_t)p[V - 1] & 63);
    for (uint32_t i = steps; i-- > 0;) { /* undo the swaps: identity again */
        uint32_t j = e->undo[i];
        int32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

static int engine_green(kgw_engine *e, uint64_t seed, int64_t t) {
    const uint32_t V = e->c->cfg.vocab_size;
    if (t < 0 || t >= (int64_t)V) return 0;
    if (!e->cached) return kgw_track(seed, V, e->c->gs, t);
    const uint64_t s32 = seed & 0xffffffffu; /* manual_seed keeps the low 32 bits */
    const uint32_t k = (uint32_t)(tm_mix64(s32) & (CACHE_SLOTS - 1));
    if (e->slot_state[k] != 0 && e->slot_seed[k] == s32) {
        uint64_t *bits;
        if (e->slot_state[k] == 1) {
            if (e->perm == NULL && engine_alloc(e) != TOKMARK_OK) {
                e->cached = 0; /* no memory for the cache: track */
                return kgw_track(s32, V, e->c->gs, t);
            }
            bits = e->bits + (size_t)k * e->words;
            engine_materialise(e, s32, bits);
            e->slot_state[k] = 2;
        } else {
            bits = e->bits + (size_t)k * e->words;
        }
        if (e->slot_count[k] < 15) e->slot_count[k]++;
        return (int)((bits[(uint64_t)t >> 6] >> ((uint64_t)t & 63)) & 1u);
    }
    /* a miss: a frequent seed keeps its slot against occasional others */
    if (e->slot_state[k] == 0 || e->slot_count[k] == 0) {
        e->slot_seed[k] = s32;
        e->slot_state[k] = 1;
        e->slot_count[k] = 1;
    } else {
        e->slot_count[k]--;
    }
    return kgw_track(s32, V, e->c->gs, t);
}

/* ------------------------------------------------------------------------ */
/* SynthID (SPEC §10.4)                                                       */
/* ------------------------------------------------------------------------ */

static inline uint64_t sid_step(uint64_t h, int64_t x) { return (h + (uint64_t)x) * SID_LCG + 1u; }

/* Arithmetic right shift of a two's-complement int64 held in a uint64. */
static inline uint64_t sar64(uint64_t x, unsigned k) {
    uint64_t sign = 0u - (x >> 63);
    return (x >> k) | (sign << (63 - k) << 1);
}

/* g-value of n-gram hash H at depth d. */
static inline uint8_t sid_g(const tokmark_compat *c, uint64_t H, uint32_t d) {
    uint64_t k = sid_step(H, c->cfg.keys[d]);
    if (c->table != NULL) {
        int64_t S = (int64_t)c->cfg.sampling_table_size;
        int64_t r = (int64_t)k % S;
        if (r < 0) r += S;
        return c->table[r];
    }
    for (int i = 0; i < 12; i++) k = sar64(sid_step(k, 1), 5);
    return (uint8_t)(sar64(k, 30) & 1u);
}

uint64_t tm_synthid_context_hash(const tokmark_compat *c, const int32_t *ctx) {
    uint64_t h = c->h0;
    for (uint32_t i = 0; i + 1 < c->ngram; i++) h = sid_step(h, ctx[i]);
    return h;
}

uint64_t tm_synthid_ngram_key(const tokmark_compat *c, const int32_t *ngram, uint32_t d) {
    return sid_step(sid_step(tm_synthid_context_hash(c, ngram), ngram[c->ngram - 1]), c->cfg.keys[d]);
}

/* ------------------------------------------------------------------------ */
/* Per-sequence scoring (the reference detectors)                             */
/* ------------------------------------------------------------------------ */

static uint64_t ngram_hash(const int32_t *s, uint32_t n) {
    uint64_t h = 0x243F6A8885A308D3u;
    for (uint32_t i = 0; i < n; i++) h = tm_mix64(h ^ ((uint64_t)(uint32_t)s[i] + 0x9E3779B97F4A7C15u * (i + 1)));
    return h;
}

/* first[j] = 1 iff s[j..j+n) occurs at no earlier position. */
static int first_occurrences(const int32_t *s, size_t P, uint32_t n, uint8_t *first) {
    size_t cap = 16;
    while (cap < 2 * P) cap *= 2;
    size_t *tab = (size_t *)calloc(cap, sizeof *tab); /* position + 1; 0 empty */
    if (tab == NULL) return TOKMARK_ERR_NOMEM;
    for (size_t j = 0; j < P; j++) {
        size_t i = (size_t)ngram_hash(s + j, n) & (cap - 1);
        first[j] = 1;
        while (tab[i] != 0) {
            if (memcmp(s + tab[i] - 1, s + j, sizeof(int32_t) * n) == 0) {
                first[j] = 0;
                break;
            }
            i = (i + 1) & (cap - 1);
        }
        if (first[j]) tab[i] = j + 1;
    }
    free(tab);
    return TOKMARK_OK;
}

static double log10_binom(uint64_t k, uint64_t n, double p) {
    if (n == 0) return 0.0;
    return tokmark_ln_sf_binomial(k, n, p) / LN10;
}

static int score_kgw(const tokmark_compat *c, const int32_t *ids, size_t n, int ignore_repeated,
                     tokmark_compat_outputs *out, tokmark_compat_score *sc) {
    const tokmark_compat_config *cfg = &c->cfg;
    size_t off = 0;
    if (cfg->bos_token_id >= 0 && n > 0 && ids[0] == cfg->bos_token_id) off = 1;
    sc->bos_stripped = (int)off;
    const int32_t *s = ids + off;
    const size_t len = n - off;
    if (len < (size_t)c->window + 1) return TOKMARK_ERR_TOO_SHORT;
    const size_t P = len - c->ngram + 1;
    sc->positions = P;
    sc->first_index = off + c->ngram - 1;
    uint8_t *green = (uint8_t *)malloc(P);
    uint8_t *first = (uint8_t *)malloc(P);
    kgw_engine e;
    int rc = engine_init(&e, c, 1);
    if (green == NULL || first == NULL || rc != TOKMARK_OK) {
        rc = TOKMARK_ERR_NOMEM;
        goto out;
    }
    rc = first_occurrences(s, P, c->ngram, first);
    if (rc != TOKMARK_OK) goto out;
    const int dedup = ignore_repeated && cfg->kind == TOKMARK_COMPAT_LMW_KGW;
    const float fg = (float)cfg->greenlist_ratio, f1g = (float)(1.0 - cfg->greenlist_ratio);
    uint64_t T = 0, G = 0;
    for (size_t j = 0; j < P; j++) {
        /* the seed window: the w/h tokens ending just before the target, or with it */
        const int32_t *win = s + j; /* both cases: the n-gram starts with the window */
        const int32_t target = s[j + c->ngram - 1];
        uint64_t seed = tokmark_compat_seed(c, win);
        green[j] = (uint8_t)engine_green(&e, seed, target);
        if (out != NULL && out->seeds != NULL) out->seeds[j] = seed;
        if (!dedup || first[j]) {
            T++;
            G += green[j];
        }
        if (out != NULL && out->z_at_t != NULL) {
            const float fu = (float)T, fc = (float)G;
            out->z_at_t[j] = (fc - fg * fu) / sqrtf((fu * fg) * f1g);
        }
    }
    if (out != NULL && out->green != NULL) memcpy(out->green, green, P);
    if (out != NULL && out->first != NULL) memcpy(out->first, first, P);
    const double r = cfg->greenlist_ratio, Td = (double)T, Gd = (double)G;
    sc->scored = T;
    sc->hits = G;
    sc->trials = T;
    sc->null_p = c->null_p;
    sc->mean = Gd / Td;
    sc->z = (Gd - r * Td) / sqrt((Td * r) * (1.0 - r));
    if (cfg->kind == TOKMARK_COMPAT_HF_KGW) {
        const double z = sc->z, sgn = z > 0 ? 1.0 : z < 0 ? -1.0 : 0.0;
        sc->p_reference = 1.0 - 0.5 * (1.0 + sgn * (1.0 - exp((-2.0 * (z * z)) / TM_PI)));
    }
    sc->log10_p = log10_binom(G, T, c->null_p);
out:
    engine_free(&e);
    free(green);
    free(first);
    return rc;
}

static int score_synthid(const tokmark_compat *c, const int32_t *ids, size_t n, tokmark_compat_outputs *out,
                         tokmark_compat_score *sc) {
    const tokmark_compat_config *cfg = &c->cfg;
    const uint32_t nl = c->ngram, D = cfg->depth, C = cfg->context_history_size;
    if (n < nl) return TOKMARK_ERR_TOO_SHORT;
    const size_t P = n - nl + 1;
    sc->positions = P;
    sc->first_index = nl - 1;
    uint64_t *hist = (uint64_t *)calloc(C, sizeof *hist);
    if (hist == NULL) return TOKMARK_ERR_NOMEM;
    size_t eos = SIZE_MAX;
    if (cfg->eos_token_id >= 0)
        for (size_t i = 0; i < n; i++)
            if (ids[i] == cfg->eos_token_id) {
                eos = i;
                break;
            }
    uint64_t counts[TOKMARK_COMPAT_MAX_DEPTH] = {0};
    uint64_t U = 0, hits = 0;
    uint32_t head = 0; /* hist[head] is the newest slot */
    for (size_t j = 0; j < P; j++) {
        uint64_t ch = c->h0;
        for (uint32_t i = 0; i + 1 < nl; i++) ch = sid_step(ch, ids[j + i]);
        const uint64_t H = sid_step(ch, ids[j + nl - 1]);
        int repeated = 0;
        for (uint32_t i = 0; i < C; i++) repeated |= hist[i] == ch;
        head = head == 0 ? C - 1 : head - 1; /* the oldest slot becomes the newest */
        hist[head] = ch;
        const uint8_t eos_ok = (uint8_t)(j + nl - 1 < eos);
        const int counted = !repeated && eos_ok;
        if (out != NULL && out->repetition_mask != NULL) out->repetition_mask[j] = (uint8_t)!repeated;
        if (out != NULL && out->eos_mask != NULL) out->eos_mask[j] = eos_ok;
        for (uint32_t d = 0; d < D; d++) {
            const uint8_t g = sid_g(c, H, d);
            if (out != NULL && out->g != NULL) out->g[j * D + d] = g;
            if (counted) counts[d] += g;
        }
        U += (uint64_t)counted;
    }
    free(hist);
    double wsum = 0.0;
    uint64_t s_int = 0;
    for (uint32_t d = 0; d < D; d++) {
        hits += counts[d];
        wsum += c->wmean[d] * (double)counts[d];
        s_int += (uint64_t)c->wint[d] * counts[d];
    }
    const uint64_t N = (uint64_t)D * U;
    const double q = c->null_p;
    sc->scored = U;
    sc->hits = hits;
    sc->trials = N;
    sc->null_p = q;
    sc->mean = (double)hits / (double)N;
    sc->weighted_mean = wsum / (double)N;
    sc->z = ((double)hits - q * (double)N) / sqrt((double)N * q * (1.0 - q));
    sc->log10_p = log10_binom(hits, N, q);
    if (c->wint[0] != 0) sc->log10_p_weighted = U == 0 ? 0.0 : tokmark_ln_sf_weighted(s_int, U, c->wint, D) / LN10;
    return TOKMARK_OK;
}

int tokmark_compat_score_ids(const tokmark_compat *c, const int32_t *ids, size_t n, int ignore_repeated,
                             tokmark_compat_outputs *out, tokmark_compat_score *score) {
    if (c == NULL || score == NULL || (ids == NULL && n > 0)) return TOKMARK_ERR_INVALID;
    memset(score, 0, sizeof *score);
    score->p_reference = NAN;
    score->weighted_mean = NAN;
    score->log10_p_weighted = NAN;
    return c->is_kgw ? score_kgw(c, ids, n, ignore_repeated, out, score) : score_synthid(c, ids, n, out, score);
}

/* ------------------------------------------------------------------------ */
/* Streaming detector (SPEC §10.5)                                            */
/* ------------------------------------------------------------------------ */

typedef struct uset {
    uint64_t *slot; /* 0 = empty; key 0 is held by has_zero */
    uint64_t mask, count, capacity;
    int has_zero;
    uint64_t *log; /* the slots filled, for a fast clear (per-document set); NULL if none */
} uset;

static int uset_init(uset *u, uint64_t capacity, int with_log) {
    memset(u, 0, sizeof *u);
    uint64_t size = 16;
    while (size < 2 * capacity) size *= 2;
    u->slot = (uint64_t *)calloc(size, sizeof(uint64_t));
    if (with_log) u->log = (uint64_t *)malloc(sizeof(uint64_t) * (capacity + 1));
    if (u->slot == NULL || (with_log && u->log == NULL)) {
        free(u->slot);
        free(u->log);
        return TOKMARK_ERR_NOMEM;
    }
    u->mask = size - 1;
    u->capacity = capacity;
    return TOKMARK_OK;
}

static void uset_free(uset *u) {
    free(u->slot);
    free(u->log);
    memset(u, 0, sizeof *u);
}

static void uset_clear(uset *u) {
    if (u->log != NULL) {
        for (uint64_t i = 0; i < u->count; i++) u->slot[u->log[i]] = 0;
    } else {
        memset(u->slot, 0, sizeof(uint64_t) * (u->mask + 1));
    }
    u->count = 0;
    u->has_zero = 0;
}

/* 1: new (inserted); 0: present; -1: new but the set is full. */
static int uset_insert(uset *u, uint64_t key) {
    if (key == 0) {
        if (u->has_zero) return 0;
        if (u->count >= u->capacity) return -1;
        u->has_zero = 1;
        if (u->log != NULL) u->log[u->count] = 0; /* slot 0 cleared harmlessly */
        u->count++;
        return 1;
    }
    uint64_t i = tm_mix64(key) & u->mask;
    while (u->slot[i] != 0) {
        if (u->slot[i] == key) return 0;
        i = (i + 1) & u->mask;
    }
    if (u->count >= u->capacity) return -1;
    u->slot[i] = key;
    if (u->log != NULL) u->log[u->count] = i;
    u->count++;
    return 1;
}

typedef struct ctotals {
    uint64_t tokens, scored, dups, dropped, hits;
} ctotals;

struct tokmark_compat_detector {
    const tokmark_compat *c;
    kgw_engine eng;
    uset doc_set, corpus_set;
    ctotals doc, corpus;
    int32_t win[TOKMARK_COMPAT_MAX_NGRAM + 1];
    uint32_t nwin;       /* tokens in win (at most ngram) */
    int started;         /* a token of this document was seen (BOS test done) */
    int ended;           /* SynthID: the EOS was seen */
    uint64_t *hist;      /* SynthID context history */
    uint32_t head;
};

int tokmark_compat_detector_create(tokmark_compat_detector **out, const tokmark_compat *c,
                                   uint64_t dedup_capacity) {
    if (out == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    if (c == NULL || dedup_capacity > (UINT64_C(1) << 40)) return TOKMARK_ERR_INVALID;
    if (dedup_capacity == 0) dedup_capacity = UINT64_C(1) << 20;
    tokmark_compat_detector *d = (tokmark_compat_detector *)calloc(1, sizeof *d);
    if (d == NULL) return TOKMARK_ERR_NOMEM;
    d->c = c;
    int rc = c->is_kgw ? engine_init(&d->eng, c, 0) : TOKMARK_OK;
    if (rc == TOKMARK_OK) rc = uset_init(&d->doc_set, dedup_capacity, 1);
    if (rc == TOKMARK_OK) rc = uset_init(&d->corpus_set, dedup_capacity, 0);
    if (rc == TOKMARK_OK && !c->is_kgw) {
        d->hist = (uint64_t *)calloc(c->cfg.context_history_size, sizeof(uint64_t));
        if (d->hist == NULL) rc = TOKMARK_ERR_NOMEM;
    }
    if (rc != TOKMARK_OK) {
        tokmark_compat_detector_free(d);
        return rc;
    }
    *out = d;
    return TOKMARK_OK;
}

void tokmark_compat_detector_free(tokmark_compat_detector *d) {
    if (d == NULL) return;
    engine_free(&d->eng);
    uset_free(&d->doc_set);
    uset_free(&d->corpus_set);
    free(d->hist);
    free(d);
}

void tokmark_compat_detector_begin(tokmark_compat_detector *d) {
    if (d == NULL) return;
    uset_clear(&d->doc_set);
    memset(&d->doc, 0, sizeof d->doc);
    d->nwin = 0;
    d->started = 0;
    d->ended = 0;
    if (d->hist != NULL) memset(d->hist, 0, sizeof(uint64_t) * d->c->cfg.context_history_size);
    d->head = 0;
}

void tokmark_compat_detector_reset(tokmark_compat_detector *d) {
    if (d == NULL) return;
    tokmark_compat_detector_begin(d);
    uset_clear(&d->corpus_set);
    memset(&d->corpus, 0, sizeof d->corpus);
}

/* Count a unit whose insertion results (1 new, 0 seen, -1 full) are a (document)
 * and b (corpus); hits are its green flag or g-value sum. */
static void count_unit(tokmark_compat_detector *d, int a, int b, uint64_t hits) {
    if (a == 1) {
        d->doc.scored++;
        d->doc.hits += hits;
    } else if (a == 0) {
        d->doc.dups++;
    } else {
        d->doc.dropped++;
    }
    if (b == 1) {
        d->corpus.scored++;
        d->corpus.hits += hits;
    } else if (b == 0) {
        d->corpus.dups++;
    } else {
        d->corpus.dropped++;
    }
}

static void feed_one(tokmark_compat_detector *d, int32_t t) {
    const tokmark_compat *c = d->c;
    d->doc.tokens++;
    d->corpus.tokens++;
    if (!d->started) {
        d->started = 1;
        if (c->is_kgw && c->cfg.bos_token_id >= 0 && t == c->cfg.bos_token_id) return;
    }
    if (d->ended) return;
    if (!c->is_kgw && c->cfg.eos_token_id >= 0 && t == c->cfg.eos_token_id) {
        d->ended = 1; /* the n-gram ending on the EOS and all later ones are masked */
        return;
    }
    const uint32_t nl = c->ngram;
    if (d->nwin == nl) {
        memmove(d->win, d->win + 1, sizeof(int32_t) * (nl - 1));
        d->nwin--;
    }
    d->win[d->nwin++] = t;
    if (d->nwin < nl) return;
    if (c->is_kgw) {
        const uint64_t seed = tokmark_compat_seed(c, d->win);
        /* the unit (seed mod 2^32, token) fully determines the green flag */
        const uint64_t key = ((seed & 0xffffffffu) << 32) | (uint32_t)t;
        const int a = uset_insert(&d->doc_set, key), b = uset_insert(&d->corpus_set, key);
        const uint64_t g = (a == 1 || b == 1) ? (uint64_t)engine_green(&d->eng, seed, t) : 0u;
        count_unit(d, a, b, g);
        return;
    }
    uint64_t ch = c->h0;
    for (uint32_t i = 0; i + 1 < nl; i++) ch = sid_step(ch, d->win[i]);
    const uint64_t H = sid_step(ch, t);
    const uint32_t C = c->cfg.context_history_size;
    int repeated = 0;
    for (uint32_t i = 0; i < C; i++) repeated |= d->hist[i] == ch;
    d->head = d->head == 0 ? C - 1 : d->head - 1;
    d->hist[d->head] = ch;
    if (repeated) {
        d->doc.dups++;
        d->corpus.dups++;
        return;
    }
    const int a = uset_insert(&d->doc_set, H), b = uset_insert(&d->corpus_set, H);
    uint64_t g = 0;
    if (a == 1 || b == 1)
        for (uint32_t k = 0; k < c->cfg.depth; k++) g += sid_g(c, H, k);
    count_unit(d, a, b, g);
}

void tokmark_compat_detector_feed(tokmark_compat_detector *d, const int32_t *ids, size_t n) {
    if (d == NULL || ids == NULL) return;
    for (size_t i = 0; i < n; i++) feed_one(d, ids[i]);
}

static void make_result(const tokmark_compat_detector *d, const ctotals *t, tokmark_result *r) {
    const tokmark_compat *c = d->c;
    memset(r, 0, sizeof *r);
    r->tokens = t->tokens;
    r->scored = t->scored;
    r->duplicates = t->dups;
    r->dropped = t->dropped;
    const uint64_t N = c->is_kgw ? t->scored : t->scored * c->cfg.depth;
    const double q = c->null_p, Nd = (double)N, X = (double)t->hits;
    if (c->is_kgw) {
        const double g = c->cfg.greenlist_ratio;
        r->statistic = X;
        r->z = N == 0 ? 0.0 : (X - g * Nd) / sqrt((Nd * g) * (1.0 - g));
    } else {
        r->statistic = N == 0 ? 0.0 : X / Nd;
        r->z = N == 0 ? 0.0 : (X - q * Nd) / sqrt(Nd * q * (1.0 - q));
    }
    r->log10_p = log10_binom(t->hits, N, q);
    r->log10_p_corrected = r->log10_p;
    r->key_index = 0;
    memcpy(r->key_id, c->key_id, sizeof r->key_id);
}

void tokmark_compat_detector_document(const tokmark_compat_detector *d, tokmark_result *out) {
    if (d == NULL || out == NULL) return;
    make_result(d, &d->doc, out);
}

void tokmark_compat_detector_corpus(const tokmark_compat_detector *d, tokmark_result *out) {
    if (d == NULL || out == NULL) return;
    make_result(d, &d->corpus, out);
}

/* ------------------------------------------------------------------------ */
/* Text: canonical form, key ID, description, files (SPEC §10.6)              */
/* ------------------------------------------------------------------------ */

static void write_opt_id(tm_sbuf *b, const char *name, int64_t v) {
    if (v < 0) tm_sb_printf(b, "%s none\n", name);
    else tm_sb_printf(b, "%s %lld\n", name, (long long)v);
}

/* The parameter lines in file order; with_secrets adds hashing-key / keys. */
static void write_params(tm_sbuf *b, const tokmark_compat *c, int with_secrets) {
    const tokmark_compat_config *q = &c->cfg;
    tm_sb_printf(b, "kind %s\n", tokmark_compat_kind_name(q->kind));
    if (c->is_kgw) {
        char r[40];
        tm_format_double(r, q->greenlist_ratio);
        tm_sb_printf(b, "vocab-size %lu\n", (unsigned long)q->vocab_size);
        write_opt_id(b, "bos-token-id", q->bos_token_id);
        tm_sb_printf(b, "seeding %s\n", tokmark_seeding_name(q->seeding));
        tm_sb_printf(b, "context-width %lu\n", (unsigned long)q->context_width);
        if (q->kind == TOKMARK_COMPAT_LMW_KGW) tm_sb_printf(b, "self-salt %u\n", (unsigned)q->self_salt);
        tm_sb_printf(b, "greenlist-ratio %s\n", r);
        if (with_secrets) tm_sb_printf(b, "hashing-key %llu\n", (unsigned long long)q->hashing_key);
    } else {
        tm_sb_printf(b, "ngram-len %lu\n", (unsigned long)q->ngram_len);
        tm_sb_printf(b, "context-history-size %lu\n", (unsigned long)q->context_history_size);
        write_opt_id(b, "eos-token-id", q->eos_token_id);
        if (q->kind == TOKMARK_COMPAT_HF_SYNTHID) {
            tm_sb_printf(b, "sampling-table-size %lu\n", (unsigned long)q->sampling_table_size);
            tm_sb_printf(b, "sampling-table-seed %llu\n", (unsigned long long)q->sampling_table_seed);
        }
        if (with_secrets) {
            tm_sb_printf(b, "keys ");
            for (uint32_t i = 0; i < q->depth; i++)
                tm_sb_printf(b, i == 0 ? "%lld" : ",%lld", (long long)q->keys[i]);
            tm_sb_printf(b, "\n");
        } else {
            tm_sb_printf(b, "depth %lu\n", (unsigned long)q->depth);
        }
    }
}

/* Text with secrets goes through guarded memory. */
static char *params_text(const tokmark_compat *c, int with_secrets, const char *prefix, const char *suffix,
                         size_t *len) {
    tm_c_numeric loc;
    tm_c_numeric_enter(&loc);
    tm_sbuf b = {NULL, 0, 0};
    tm_sb_printf(&b, "%s", prefix);
    write_params(&b, c, with_secrets);
    tm_sb_printf(&b, "%s", suffix);
    char *t = (char *)sodium_malloc(b.len + 1);
    if (t != NULL) {
        size_t need = b.len;
        b.buf = t;
        b.size = need + 1;
        b.len = 0;
        tm_sb_printf(&b, "%s", prefix);
        write_params(&b, c, with_secrets);
        tm_sb_printf(&b, "%s", suffix);
        *len = b.len;
    }
    tm_c_numeric_leave(&loc);
    return t;
}

static void text_free(char *t, size_t len) {
    if (t == NULL) return;
    sodium_memzero(t, len);
    sodium_free(t);
}

static int compat_key_id(tokmark_compat *c) {
    size_t n = 0;
    char *t = params_text(c, 1, KEY_ID_PREFIX, "", &n);
    if (t == NULL) return TOKMARK_ERR_NOMEM;
    uint8_t h[16];
    int rc = crypto_generichash(h, sizeof h, (const unsigned char *)t, n, NULL, 0) == 0 ? TOKMARK_OK
                                                                                          : TOKMARK_ERR_CRYPTO;
    text_free(t, n);
    if (rc == TOKMARK_OK) sodium_bin2hex(c->key_id, sizeof c->key_id, h, sizeof h);
    return rc;
}

size_t tokmark_compat_describe(const tokmark_compat *c, char *buf, size_t size) {
    if (c == NULL) return 0;
    tm_c_numeric loc;
    tm_c_numeric_enter(&loc);
    tm_sbuf b = {size > 0 ? buf : NULL, size, 0};
    if (b.buf != NULL) b.buf[0] = '\0';
    tm_sb_printf(&b, "key-id %s\n", c->key_id);
    write_params(&b, c, 0);
    if (c->is_kgw) {
        tm_sb_printf(&b, "greenlist-size %lu\n", (unsigned long)c->gs);
    } else if (c->table != NULL) {
        tm_sb_printf(&b, "sampling-table-ones %lu\n", (unsigned long)c->table_ones);
    }
    tm_c_numeric_leave(&loc);
    return b.len;
}

int tokmark_compat_save(const tokmark_compat *c, const char *path, int overwrite) {
    if (c == NULL || path == NULL || *path == '\0') return TOKMARK_ERR_INVALID;
    if (sodium_init() < 0) return TOKMARK_ERR_CRYPTO;
    char head[256];
    snprintf(head, sizeof head,
             "# tokmark compatibility profile (SPEC.md section 10). It holds a secret key: keep it "
             "private.\n%s\n",
             COMPAT_MAGIC);
    char tail[64];
    snprintf(tail, sizeof tail, "key-id %s\nend\n", c->key_id);
    size_t n = 0;
    char *t = params_text(c, 1, head, tail, &n);
    if (t == NULL) return TOKMARK_ERR_NOMEM;
    int rc = tm_write_secret_file(path, t, n, overwrite);
    text_free(t, n);
    return rc;
}

/* ---- reading ---- */

enum {
    CF_KIND, CF_VOCAB, CF_BOS, CF_SEEDING, CF_CONTEXT, CF_SELF_SALT, CF_RATIO, CF_HASHING_KEY, CF_NGRAM,
    CF_HISTORY, CF_EOS, CF_TABLE_SIZE, CF_TABLE_SEED, CF_KEYS, CF_KEY_ID, CF_COUNT
};

static const char *const cf_names[CF_COUNT] = {
    "kind", "vocab-size", "bos-token-id", "seeding", "context-width", "self-salt", "greenlist-ratio",
    "hashing-key", "ngram-len", "context-history-size", "eos-token-id", "sampling-table-size",
    "sampling-table-seed", "keys", "key-id",
};

typedef struct cfield {
    const char *v;
    size_t n, line;
} cfield;

/* Unsigned decimal without sign or leading zeros, at most max. */
static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out) {
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

/* Signed int64 decimal ("-" allowed, no "+", no leading zeros, "-0" refused). */
static int parse_i64(const char *s, size_t n, int64_t *out) {
    uint64_t u;
    if (n > 0 && s[0] == '-') {
        if (!parse_u64(s + 1, n - 1, (uint64_t)INT64_MAX + 1u, &u) || u == 0) return 0;
        *out = u == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)u;
        return 1;
    }
    if (!parse_u64(s, n, (uint64_t)INT64_MAX, &u)) return 0;
    *out = (int64_t)u;
    return 1;
}

static int parse_opt_id(const char *s, size_t n, int64_t *out) {
    uint64_t u;
    if (n == 4 && memcmp(s, "none", 4) == 0) {
        *out = -1;
        return 1;
    }
    if (!parse_u64(s, n, INT32_MAX, &u)) return 0;
    *out = (int64_t)u;
    return 1;
}

static int parse_ratio(const char *s, size_t n, double *out) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp || !((s[0] >= '0' && s[0] <= '9') || s[0] == '.')) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '-' ||
              s[i] == '+'))
            return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end = NULL;
    double v = strtod(tmp, &end);
    if (end != tmp + n || !(v > 0.0 && v < 1.0)) return 0;
    *out = v;
    return 1;
}

static int build_config(const cfield *f, size_t end_line, tokmark_compat_config *cfg, size_t *errline) {
#define CFAIL(ln)                                                                                  \
    do {                                                                                           \
        *errline = (ln);                                                                           \
        return TOKMARK_ERR_FORMAT;                                                                 \
    } while (0)
    if (f[CF_KIND].line == 0) CFAIL(end_line);
    tokmark_compat_kind kind = kind_parse_n(f[CF_KIND].v, f[CF_KIND].n);
    if (kind == 0) CFAIL(f[CF_KIND].line);
    tokmark_compat_config_default(cfg, kind);
    const int kgw = kind_is_kgw(kind);
    /* which fields this kind takes (all required but key-id) */
    int takes[CF_COUNT] = {0};
    takes[CF_KIND] = takes[CF_KEY_ID] = 1;
    if (kgw) {
        takes[CF_VOCAB] = takes[CF_BOS] = takes[CF_SEEDING] = takes[CF_CONTEXT] = takes[CF_RATIO] = 1;
        takes[CF_HASHING_KEY] = 1;
        takes[CF_SELF_SALT] = kind == TOKMARK_COMPAT_LMW_KGW;
    } else {
        takes[CF_NGRAM] = takes[CF_HISTORY] = takes[CF_EOS] = takes[CF_KEYS] = 1;
        takes[CF_TABLE_SIZE] = takes[CF_TABLE_SEED] = kind == TOKMARK_COMPAT_HF_SYNTHID;
    }
    size_t first_bad = 0;
    for (int i = 0; i < CF_COUNT; i++)
        if (f[i].line != 0 && !takes[i] && (first_bad == 0 || f[i].line < first_bad)) first_bad = f[i].line;
    if (first_bad != 0) CFAIL(first_bad);
    for (int i = 0; i < CF_COUNT; i++)
        if (takes[i] && i != CF_KEY_ID && f[i].line == 0) CFAIL(end_line);
    uint64_t u = 0;
    for (int i = 1; i < CF_COUNT; i++) {
        if (f[i].line == 0) continue;
        const char *v = f[i].v;
        size_t n = f[i].n, line = f[i].line;
        switch (i) {
        case CF_VOCAB:
            if (!parse_u64(v, n, TOKMARK_COMPAT_MAX_VOCAB, &u) || u < 2) CFAIL(line);
            cfg->vocab_size = (uint32_t)u;
            break;
        case CF_BOS:
            if (!parse_opt_id(v, n, &cfg->bos_token_id)) CFAIL(line);
            break;
        case CF_SEEDING:
            if (n == 8 && memcmp(v, "lefthash", 8) == 0) cfg->seeding = TOKMARK_SEEDING_LEFTHASH;
            else if (n == 8 && memcmp(v, "selfhash", 8) == 0) cfg->seeding = TOKMARK_SEEDING_SELFHASH;
            else CFAIL(line);
            break;
        case CF_CONTEXT:
            if (!parse_u64(v, n, TOKMARK_MAX_CONTEXT, &u) || u < 1) CFAIL(line);
            cfg->context_width = (uint32_t)u;
            break;
        case CF_SELF_SALT:
            if (!parse_u64(v, n, 1, &u)) CFAIL(line);
            cfg->self_salt = (uint32_t)u;
            break;
        case CF_RATIO:
            if (!parse_ratio(v, n, &cfg->greenlist_ratio)) CFAIL(line);
            break;
        case CF_HASHING_KEY:
            if (!parse_u64(v, n, (uint64_t)INT64_MAX, &cfg->hashing_key)) CFAIL(line);
            break;
        case CF_NGRAM:
            if (!parse_u64(v, n, TOKMARK_COMPAT_MAX_NGRAM, &u) || u < 1) CFAIL(line);
            cfg->ngram_len = (uint32_t)u;
            break;
        case CF_HISTORY:
            if (!parse_u64(v, n, TOKMARK_COMPAT_MAX_HISTORY, &u) || u < 1) CFAIL(line);
            cfg->context_history_size = (uint32_t)u;
            break;
        case CF_EOS:
            if (!parse_opt_id(v, n, &cfg->eos_token_id)) CFAIL(line);
            break;
        case CF_TABLE_SIZE:
            if (!parse_u64(v, n, TOKMARK_COMPAT_MAX_TABLE, &u) || u < 2) CFAIL(line);
            cfg->sampling_table_size = (uint32_t)u;
            break;
        case CF_TABLE_SEED:
            if (!parse_u64(v, n, UINT64_MAX, &cfg->sampling_table_seed)) CFAIL(line);
            break;
        case CF_KEYS: {
            uint32_t d = 0;
            size_t a = 0;
            while (a <= n) {
                size_t b = a;
                while (b < n && v[b] != ',') b++;
                if (d == TOKMARK_COMPAT_MAX_DEPTH || !parse_i64(v + a, b - a, &cfg->keys[d])) CFAIL(line);
                d++;
                a = b + 1;
            }
            cfg->depth = d;
            break;
        }
        case CF_KEY_ID:
            if (n != TOKMARK_KEY_ID_HEX) CFAIL(line);
            for (size_t k = 0; k < n; k++)
                if (!((v[k] >= '0' && v[k] <= '9') || (v[k] >= 'a' && v[k] <= 'f'))) CFAIL(line);
            break;
        default: CFAIL(line);
        }
    }
    if (tokmark_compat_config_check(cfg) != TOKMARK_OK) CFAIL(end_line);
    return TOKMARK_OK;
#undef CFAIL
}

static int parse_compat_text(const char *text, size_t len, tokmark_compat **out, size_t *errline) {
    cfield f[CF_COUNT];
    memset(f, 0, sizeof f);
    tokmark_compat_config *cfg = (tokmark_compat_config *)sodium_malloc(sizeof *cfg);
    if (cfg == NULL) return TOKMARK_ERR_NOMEM;
    int state = 0; /* 0 before the magic line, 1 inside, 2 after "end" */
    size_t line = 0, pos = 0;
    int rc = TOKMARK_OK;
    const char *s;
    size_t n;
    int got;
    while (rc == TOKMARK_OK && (got = tm_keyfile_line(text, len, &pos, &line, &s, &n)) != 0) {
        if (got < 0) {
            rc = TOKMARK_ERR_FORMAT;
            break;
        }
        if (n == 0 || s[0] == '#') continue;
        if (state == 2) { /* one profile per file */
            rc = TOKMARK_ERR_FORMAT;
            break;
        }
        if (state == 0) {
            if (n == sizeof COMPAT_MAGIC - 1 && memcmp(s, COMPAT_MAGIC, n) == 0) state = 1;
            else if (n == sizeof PROFILE_MAGIC - 1 && memcmp(s, PROFILE_MAGIC, n) == 0)
                rc = TOKMARK_ERR_UNSUPPORTED; /* a tokmark profile, not a compat profile */
            else rc = TOKMARK_ERR_FORMAT;
            continue;
        }
        if (n == 3 && memcmp(s, "end", 3) == 0) {
            rc = build_config(f, line, cfg, &line);
            if (rc == TOKMARK_OK) rc = tokmark_compat_create(out, cfg);
            if (rc == TOKMARK_OK && f[CF_KEY_ID].line != 0 &&
                sodium_memcmp(f[CF_KEY_ID].v, (*out)->key_id, TOKMARK_KEY_ID_HEX) != 0) {
                tokmark_compat_free(*out);
                *out = NULL;
                line = f[CF_KEY_ID].line;
                rc = TOKMARK_ERR_FORMAT;
            }
            state = 2;
            continue;
        }
        const char *sp = (const char *)memchr(s, ' ', n);
        if (sp == NULL || sp == s) {
            rc = TOKMARK_ERR_FORMAT;
            break;
        }
        size_t nn = (size_t)(sp - s), vn = n - nn - 1;
        const char *v = sp + 1;
        if (vn == 0 || memchr(v, ' ', vn) != NULL || memchr(v, '\t', vn) != NULL) {
            rc = TOKMARK_ERR_FORMAT;
            break;
        }
        int idx = -1;
        for (int i = 0; i < CF_COUNT; i++)
            if (strlen(cf_names[i]) == nn && memcmp(s, cf_names[i], nn) == 0) idx = i;
        if (idx < 0 || f[idx].line != 0) {
            rc = TOKMARK_ERR_FORMAT;
            break;
        }
        f[idx].v = v;
        f[idx].n = vn;
        f[idx].line = line;
    }
    if (rc == TOKMARK_OK && state != 2) {
        rc = TOKMARK_ERR_FORMAT;
        if (line == 0) line = 1;
    }
    if (rc != TOKMARK_OK && *out != NULL) {
        tokmark_compat_free(*out);
        *out = NULL;
    }
    sodium_memzero(f, sizeof f);
    sodium_free(cfg);
    if (rc != TOKMARK_OK && errline != NULL) *errline = rc == TOKMARK_ERR_FORMAT ? line : 0;
    return rc;
}

int tokmark_compat_load(tokmark_compat **out, const char *path, unsigned flags, size_t *errline) {
    if (errline != NULL) *errline = 0;
    if (out == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    if (path == NULL) return TOKMARK_ERR_INVALID;
    if (sodium_init() < 0) return TOKMARK_ERR_CRYPTO;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return TOKMARK_ERR_IO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = errno;
        if (err == 0 || S_ISDIR(st.st_mode)) err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        close(fd);
        errno = err;
        return TOKMARK_ERR_IO;
    }
    if ((st.st_mode & 077) != 0 && !(flags & TOKMARK_LOAD_FORCE)) {
        close(fd);
        return TOKMARK_ERR_PERMISSIONS;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > MAX_FILE) {
        close(fd);
        return TOKMARK_ERR_FORMAT;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = (char *)sodium_malloc(cap);
    if (buf == NULL) {
        close(fd);
        return TOKMARK_ERR_NOMEM;
    }
    int rc = TOKMARK_OK;
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = TOKMARK_ERR_IO;
            break;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    int err = errno;
    close(fd);
    if (rc == TOKMARK_OK && len == cap) {
        rc = TOKMARK_ERR_IO;
        err = EAGAIN;
    }
    if (rc == TOKMARK_OK) rc = parse_compat_text(buf, len, out, errline);
    sodium_memzero(buf, cap);
    sodium_free(buf);
    if (rc == TOKMARK_ERR_IO) errno = err;
    return rc;
}
