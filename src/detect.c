/* detect.c — the streaming detector (SPEC.md §7). */
#define _DEFAULT_SOURCE 1 /* MADV_HUGEPAGE */
#include "internal.h"

#include <sys/mman.h>

#include <sodium.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef __SIZEOF_INT128__
#error "tokmark needs a compiler with unsigned __int128 (GCC or Clang on a 64-bit target)"
#endif
__extension__ typedef unsigned __int128 tm_u128;

#define TM_BATCH 256u
#define TM_PREFETCH 20u
#define TM_HIST  TOKMARK_MAX_CONTEXT
#define TM_DEFAULT_DEDUP_MEMORY ((uint64_t)256 << 20)
#define TM_DEFAULT_DOC_TUPLES (1u << 20)
#define M_LN10_TM 2.30258509299404568402

typedef struct tm_acc {
    uint64_t scored;
    uint64_t count;  /* KGW: green tuples; SynthID: Σ g */
    uint64_t wsum;   /* SynthID: Σ w_l g_l */
    tm_u128 fixed;   /* Gumbel: Σ ⌊s · 2^32⌋ */
} tm_acc;

/* A bounded set of 64-bit fingerprints (0 = empty slot). */
typedef struct tm_set {
    uint64_t *slot;
    uint64_t mask;   /* table size - 1 (0 when disabled) */
    uint64_t count, limit;
    uint64_t max_slots; /* sets grow up to this many slots */
    uint64_t *used;  /* doc sets: inserted fingerprints, for O(count) clearing */
    uint64_t used_cap;
    uint32_t *val;   /* doc sets of a deferring detector: per slot, the index in used[] */
    int track;
} tm_set;

typedef struct tm_group {
    uint32_t c, h, seeding;
    size_t *keys;
    size_t nkeys;
    tm_set doc, corpus;
    uint64_t doc_dups, doc_dropped, corp_dups, corp_dropped;
    /* corpus log (TOKMARK_DETECT_RECORD): one entry per tuple new in the
     * corpus: its fingerprint, then one payload per key of the group
     * (SPEC §7.5) */
    uint64_t *log;
    size_t log_len, log_cap; /* in entries */
    /* deferring detector (TOKMARK_DETECT_DEFER): the same log holds every
     * tuple that reaches the corpus stage; occ[e] counts the occurrences of
     * entry e in its document; doc_base is the current document's first entry */
    uint32_t *occ;
    size_t doc_base;
    /* sharing (tokmark_detector_share): tuples this detector inserted into
     * the parent's set, for the parent's count when it absorbs */
    uint64_t shared_new;
} tm_group;

typedef struct tm_key {
    const tokmark_profile *p;
    tm_aes ctx, val;
    size_t group;
    tm_acc doc, corpus;
    uint32_t W; /* Σ weights (SynthID) */
    size_t gk;  /* index of this key in its group */
    tokmark_trace *trace; /* per-position scores of the current document, or NULL */
    size_t trace_cap;
} tm_key;

struct tokmark_detector {
    const tokmark_keyring *ring;
    tokmark_detector_config cfg;
    tokmark_score_kind score;
    size_t nkeys, ngroups;
    tm_key *keys;
    tm_group *groups;
    int dedup;
    uint32_t min_vocab;    /* smallest V of the ring's keys */
    uint32_t tmax_all;     /* largest token of the current batch (with its history) */

    int32_t buf[TM_HIST + TM_BATCH]; /* history (last 16 tokens) then the batch */
    uint64_t doc_pos;      /* tokens pushed in this document (prompt included) */
    int tracing;           /* some key has a trace buffer */
    int record;            /* keep the corpus log (TOKMARK_DETECT_RECORD) */
    int defer;             /* TOKMARK_DETECT_DEFER: the corpus stage is another detector's */
    int logging;           /* record or defer: payloads go to the group logs */
    tokmark_detector *parent; /* deferring detector that shares this one's corpus sets */
    int log_failed;        /* the corpus log could not grow: it is incomplete */
    uint64_t doc_tokens, corpus_tokens;

    /* batch scratch */
    uint32_t start[TM_BATCH];   /* tuple start offset in buf */
    int32_t cand[TM_BATCH];
    uint32_t tmax[TM_BATCH];    /* largest token of the tuple, as unsigned */
    uint8_t flags[TM_BATCH];    /* 1: new in document, 2: new in corpus */
    uint32_t pos[TM_BATCH];     /* tuple's candidate index in the batch */
    uint64_t ent[TM_BATCH];     /* its corpus log entry (recording), else UINT64_MAX */
    uint32_t kpos[TM_BATCH];
    uint64_t kent[TM_BATCH];
    uint32_t kstart[TM_BATCH];
    int32_t kcand[TM_BATCH];
    uint8_t kflags[TM_BATCH];
    uint64_t nonce[TM_BATCH];
    uint8_t *scratch;           /* 16 * TM_BATCH * TOKMARK_MAX_CONTEXT */
};

/* ------------------------------------------------------------------------ */
/* Fingerprint sets                                                          */
/* ------------------------------------------------------------------------ */

/* Tables of 2 MiB and more are mapped directly and, where the kernel allows,
 * backed by huge pages: a random probe into a large table otherwise costs a
 * TLB miss and a page walk on top of the cache miss. */
#define TM_BIG_TABLE ((size_t)2 << 20)

static uint64_t *table_alloc(uint64_t slots) {
    size_t bytes = (size_t)slots * sizeof(uint64_t);
    if (bytes < TM_BIG_TABLE) return calloc(slots, sizeof(uint64_t));
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return (uint64_t *)p;
}

static void table_free(uint64_t *t, uint64_t slots) {
    if (t == NULL) return;
    size_t bytes = (size_t)slots * sizeof(uint64_t);
    if (bytes < TM_BIG_TABLE) free(t);
    else munmap(t, bytes);
}

/* A set starts small and doubles (at 3/4 load) up to max_slots, so that a
 * small corpus or document stays in cache.  A document set (track != 0)
 * remembers its fingerprints to clear in O(count). */
static int set_init(tm_set *s, uint64_t slots, uint64_t limit, int track, int vals) {
    memset(s, 0, sizeof *s);
    if (slots == 0) return TOKMARK_OK;
    s->max_slots = slots;
    s->limit = limit;
    s->track = track;
    slots = slots < 256 ? slots : 256;
    if (track) {
        s->used_cap = slots / 4 * 3;
        s->used = malloc(s->used_cap * sizeof *s->used);
        if (s->used == NULL) return TOKMARK_ERR_NOMEM;
    }
    if (vals) {
        s->val = malloc(slots * sizeof *s->val);
        if (s->val == NULL) return TOKMARK_ERR_NOMEM;
    }
    s->slot = table_alloc(slots);
    if (s->slot == NULL) return TOKMARK_ERR_NOMEM;
    s->mask = slots - 1;
    return TOKMARK_OK;
}

static void set_free(tm_set *s) {
    if (s->slot != NULL) table_free(s->slot, s->mask + 1);
    free(s->used);
    free(s->val);
}

static void set_clear(tm_set *s) {
    if (s->used != NULL && s->count < (s->mask + 1) / 16)
        for (uint64_t i = 0; i < s->count; i++) {
            uint64_t j = s->used[i] & s->mask;
            while (s->slot[j] != s->used[i]) j = (j + 1) & s->mask;
            s->slot[j] = 0;
        }
    else if (s->slot != NULL)
        memset(s->slot, 0, (s->mask + 1) * sizeof *s->slot);
    s->count = 0;
}

static uint64_t set_put(uint64_t *slot, uint64_t mask, uint64_t f) {
    uint64_t i = f & mask;
    while (slot[i] != 0) i = (i + 1) & mask;
    slot[i] = f;
    return i;
}

/* Move a set's fingerprints into the new table t of n slots (and, for a
 * document set with values, v), which then replace the old ones. */
static void set_move(tm_set *s, uint64_t *t, uint64_t n, uint32_t *v) {
    if (s->used != NULL)
        for (uint64_t i = 0; i < s->count; i++) {
            uint64_t at = set_put(t, n - 1, s->used[i]);
            if (v != NULL) v[at] = (uint32_t)i;
        }
    else
        for (uint64_t i = 0; i <= s->mask; i++)
            if (s->slot[i] != 0) set_put(t, n - 1, s->slot[i]);
    table_free(s->slot, s->mask + 1);
    if (v != NULL) {
        free(s->val);
        s->val = v;
    }
    s->slot = t;
    s->mask = n - 1;
}

/* Double a set (3/4 load reached).  On allocation failure it stays as it is:
 * it then fills to 15/16 and drops new tuples after that (counted). */
static void set_grow(tm_set *s) {
    uint64_t n = (s->mask + 1) * 2;
    uint64_t *t = table_alloc(n);
    uint64_t *u = NULL;
    uint32_t *v = NULL;
    if (t != NULL && s->val != NULL) {
        v = malloc(n * sizeof *v);
        if (v == NULL) {
            table_free(t, n);
            t = NULL;
        }
    }
    if (t != NULL && s->track) {
        u = realloc(s->used, n / 4 * 3 * sizeof *u);
        if (u == NULL) {
            table_free(t, n);
            free(v);
            t = NULL;
        } else {
            s->used = u;
            s->used_cap = n / 4 * 3;
        }
    }
    if (t == NULL) {
        s->max_slots = s->mask + 1;
        if (s->limit > s->max_slots / 16 * 15) s->limit = s->max_slots / 16 * 15;
        return;
    }
    set_move(s, t, n, v);
}

/* 1: inserted (new); 0: already present; -1: not present and the set is
 * full.  *at: the slot (when 1 or 0). */
static inline int set_insert_at(tm_set *s, uint64_t f, uint64_t *at) {
    uint64_t i = f & s->mask;
    while (s->slot[i] != 0) {
        if (s->slot[i] == f) {
            *at = i;
            return 0;
        }
        i = (i + 1) & s->mask;
    }
    if (s->count >= s->limit || (s->track && s->count >= s->used_cap && s->mask + 1 >= s->max_slots))
        return -1;
    if (s->mask + 1 < s->max_slots && s->count + 1 > (s->mask + 1) / 4 * 3) {
        set_grow(s);
        i = f & s->mask;
        while (s->slot[i] != 0) i = (i + 1) & s->mask;
    }
    s->slot[i] = f;
    if (s->used != NULL) s->used[s->count] = f;
    s->count++;
    *at = i;
    return 1;
}

/* Insert into a set that other threads insert into at the same time
 * (sharing): never grows, never counts (the owner adds the inserts up when it
 * absorbs).  1: inserted; 0: present; -1: no free slot at all. */
static int set_insert_shared(tm_set *s, uint64_t f) {
    uint64_t i = f & s->mask;
    for (uint64_t n = 0; n <= s->mask; n++, i = (i + 1) & s->mask) {
        uint64_t cur = __atomic_load_n(&s->slot[i], __ATOMIC_RELAXED);
        if (cur == f) return 0;
        if (cur != 0) continue;
        if (__atomic_compare_exchange_n(&s->slot[i], &cur, f, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return 1;
        if (cur == f) return 0; /* another thread inserted f here first */
    }
    return -1;
}

static int set_insert(tm_set *s, uint64_t f) {
    uint64_t at;
    return set_insert_at(s, f, &at);
}

/* Grow a set at once to at least `slots` slots (a power of two, within
 * max_slots), as set_grow does step by step. */
static int set_reserve(tm_set *s, uint64_t slots) {
    if (s->slot == NULL || s->track) return TOKMARK_OK;
    if (slots > s->max_slots) slots = s->max_slots;
    if (slots <= s->mask + 1) return TOKMARK_OK;
    uint64_t *t = table_alloc(slots);
    if (t == NULL) return TOKMARK_ERR_NOMEM;
    set_move(s, t, slots, NULL);
    return TOKMARK_OK;
}

static void set_prefetch(const tm_set *s, uint64_t f) { __builtin_prefetch(&s->slot[f & s->mask]); }

static uint64_t pow2_floor(uint64_t n) {
    uint64_t p = 1;
    while (p * 2 <= n) p *= 2;
    return p;
}

/* ------------------------------------------------------------------------ */
/* Create / free                                                             */
/* ------------------------------------------------------------------------ */

void tokmark_detector_free(tokmark_detector *d) {
    if (d == NULL) return;
    for (size_t k = 0; k < d->nkeys; k++) {
        tm_aes_free(&d->keys[k].ctx);
        tm_aes_free(&d->keys[k].val);
    }
    for (size_t g = 0; g < d->ngroups; g++) {
        set_free(&d->groups[g].doc);
        set_free(&d->groups[g].corpus);
        free(d->groups[g].keys);
        free(d->groups[g].log);
        free(d->groups[g].occ);
    }
    free(d->keys);
    free(d->groups);
    free(d->scratch);
    free(d);
}

int tokmark_detector_create(tokmark_detector **out, const tokmark_keyring *ring,
                            const tokmark_detector_config *cfg) {
    if (out == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    if (ring == NULL || tokmark_keyring_size(ring) == 0) return TOKMARK_ERR_INVALID;
    tokmark_detector *d = calloc(1, sizeof *d);
    if (d == NULL) return TOKMARK_ERR_NOMEM;
    d->ring = ring;
    d->cfg.dedup_memory = TM_DEFAULT_DEDUP_MEMORY;
    d->cfg.doc_dedup_tuples = TM_DEFAULT_DOC_TUPLES;
    if (cfg != NULL) {
        d->cfg.dedup_memory = cfg->dedup_memory;
        if (cfg->doc_dedup_tuples > 0) d->cfg.doc_dedup_tuples = cfg->doc_dedup_tuples;
        d->cfg.flags = cfg->flags;
    }
    d->record = (d->cfg.flags & TOKMARK_DETECT_RECORD) != 0;
    d->defer = (d->cfg.flags & TOKMARK_DETECT_DEFER) != 0;
    d->logging = d->record || d->defer;
    d->dedup = d->cfg.dedup_memory > 0;
    d->nkeys = tokmark_keyring_size(ring);
    d->keys = calloc(d->nkeys, sizeof *d->keys);
    d->groups = calloc(d->nkeys, sizeof *d->groups);
    d->scratch = malloc(16 * (size_t)TM_BATCH * TOKMARK_MAX_CONTEXT);
    int rc = (d->keys && d->groups && d->scratch) ? TOKMARK_OK : TOKMARK_ERR_NOMEM;
    if (rc != TOKMARK_OK) goto fail;
    for (size_t k = 0; k < d->nkeys && rc == TOKMARK_OK; k++) {
        tm_key *K = &d->keys[k];
        K->p = tokmark_keyring_get(ring, k);
        const tokmark_params *pp = &K->p->params;
        if (k == 0 || pp->vocab_size < d->min_vocab) d->min_vocab = pp->vocab_size;
        if (tokmark_params_check(pp) != TOKMARK_OK) { rc = TOKMARK_ERR_INVALID; break; }
        for (uint32_t l = 0; pp->scheme == TOKMARK_SCHEME_SYNTHID && l < pp->layers; l++) K->W += pp->weights[l];
        rc = tm_aes_init(&K->ctx, K->p->sec->k_ctx, K->p->sec->rk_ctx);
        if (rc == TOKMARK_OK) rc = tm_aes_init(&K->val, K->p->sec->k_val, K->p->sec->rk_val);
        /* LeftHash keys that read the same tuples share one set of tuple
         * fingerprints; a SelfHash key deduplicates its own PRF inputs
         * (SPEC §7.2), so it has a group of its own */
        uint32_t c = tm_context_length(pp);
        size_t g = 0;
        if (pp->seeding == TOKMARK_SEEDING_SELFHASH) g = d->ngroups;
        while (g < d->ngroups && !(d->groups[g].c == c && d->groups[g].seeding == (uint32_t)pp->seeding)) g++;
        if (g == d->ngroups) {
            d->groups[g].c = c;
            d->groups[g].h = pp->context_width;
            d->groups[g].seeding = (uint32_t)pp->seeding;
            d->groups[g].keys = malloc(d->nkeys * sizeof(size_t));
            if (d->groups[g].keys == NULL) { rc = TOKMARK_ERR_NOMEM; break; }
            d->ngroups++;
        }
        K->gk = d->groups[g].nkeys;
        d->groups[g].keys[d->groups[g].nkeys++] = k;
        K->group = g;
    }
    if (rc != TOKMARK_OK) goto fail;
    /* a log needs dedup; a deferring detector has no corpus of its own to record */
    if ((d->logging && !d->dedup) || (d->record && d->defer)) { rc = TOKMARK_ERR_INVALID; goto fail; }
    if (d->dedup) {
        /* The corpus tables share the memory budget; each table is filled to 3/4. */
        uint64_t per = d->cfg.dedup_memory / d->ngroups / sizeof(uint64_t);
        uint64_t slots = per >= 16 ? pow2_floor(per) : 16;
        uint64_t dslots = pow2_floor((uint64_t)d->cfg.doc_dedup_tuples * 2);
        if (dslots < 16) dslots = 16;
        for (size_t g = 0; g < d->ngroups && rc == TOKMARK_OK; g++) {
            if (!d->defer) rc = set_init(&d->groups[g].corpus, slots, slots / 4 * 3, 0, 0);
            if (rc == TOKMARK_OK) rc = set_init(&d->groups[g].doc, dslots, dslots / 4 * 3, 1, d->defer);
        }
        if (rc != TOKMARK_OK) goto fail;
    }
    *out = d;
    return TOKMARK_OK;
fail:
    tokmark_detector_free(d);
    return rc;
}

int tokmark_detector_reserve(tokmark_detector *d, uint64_t tuples) {
    if (d == NULL) return TOKMARK_ERR_INVALID;
    if (!d->dedup) return TOKMARK_OK;
    /* room for `tuples` at the 3/4 load at which a set doubles */
    uint64_t want = tuples > UINT64_MAX / 8 ? UINT64_MAX / 8 : tuples / 3 * 4 + 4;
    uint64_t slots = 16;
    while (slots < want && slots < ((uint64_t)1 << 62)) slots *= 2;
    int rc = TOKMARK_OK;
    for (size_t g = 0; g < d->ngroups; g++)
        if (set_reserve(&d->groups[g].corpus, slots) != TOKMARK_OK) rc = TOKMARK_ERR_NOMEM;
    return rc;
}

void tokmark_detector_set_score(tokmark_detector *d, tokmark_score_kind kind) { d->score = kind; }

void tokmark_detector_begin(tokmark_detector *d) {
    d->doc_pos = 0;
    d->doc_tokens = 0;
    for (size_t k = 0; k < d->nkeys; k++) memset(&d->keys[k].doc, 0, sizeof d->keys[k].doc);
    for (size_t g = 0; g < d->ngroups; g++) {
        tm_group *G = &d->groups[g];
        if (d->dedup) set_clear(&G->doc);
        G->doc_dups = G->doc_dropped = 0;
        G->doc_base = G->log_len;
    }
}

void tokmark_detector_reset(tokmark_detector *d) {
    tokmark_detector_begin(d);
    d->corpus_tokens = 0;
    for (size_t k = 0; k < d->nkeys; k++) memset(&d->keys[k].corpus, 0, sizeof d->keys[k].corpus);
    for (size_t g = 0; g < d->ngroups; g++) {
        tm_group *G = &d->groups[g];
        if (d->dedup) set_clear(&G->corpus);
        G->corp_dups = G->corp_dropped = 0;
        G->log_len = 0;
        G->doc_base = 0;
        G->shared_new = 0;
    }
    d->log_failed = 0;
}

/* ------------------------------------------------------------------------ */
/* Scoring                                                                   */
/* ------------------------------------------------------------------------ */

/* The payload of one scored tuple (SPEC §7.5): bit 63 set, and below it
 * KGW: 1 when green; Gumbel: ⌊s · 2^32⌋; SynthID: Σ g | Σ w g << 8. */
#define TM_SCORED_BIT ((uint64_t)1 << 63)
static uint64_t tuple_payload(const tokmark_params *pp, const uint8_t *blk, uint32_t cand) {
    switch (pp->scheme) {
    case TOKMARK_SCHEME_KGW: return TM_SCORED_BIT | (tm_load32le(blk + 4 * (cand & 3)) < pp->gamma_threshold);
    case TOKMARK_SCHEME_GUMBEL: {
        double sc = tokmark_gumbel_term(tm_load32le(blk + 4 * (cand & 3)));
        return TM_SCORED_BIT | (uint64_t)floor(sc * 0x1p32);
    }
    case TOKMARK_SCHEME_SYNTHID: {
        /* g_l is bit l of the block read as two little-endian words (SPEC §3) */
        uint64_t w[2] = {tm_load64le(blk), tm_load64le(blk + 8)};
        uint32_t m = pp->layers;
        if (m < 64) {
            w[0] &= ((uint64_t)1 << m) - 1;
            w[1] = 0;
        } else if (m < 128) {
            w[1] &= ((uint64_t)1 << (m - 64)) - 1;
        }
        uint64_t count = (uint64_t)__builtin_popcountll(w[0]) + (uint64_t)__builtin_popcountll(w[1]);
        uint64_t wsum = 0;
        for (int h = 0; h < 2; h++)
            for (uint64_t x = w[h]; x != 0; x &= x - 1) wsum += pp->weights[64 * h + __builtin_ctzll(x)];
        return TM_SCORED_BIT | count | wsum << 8;
    }
    }
    return TM_SCORED_BIT;
}

static inline void acc_add(tm_acc *a, const tokmark_params *pp, uint64_t payload) {
    uint64_t v = payload & ~TM_SCORED_BIT;
    a->scored++;
    switch (pp->scheme) {
    case TOKMARK_SCHEME_KGW: a->count += v; break;
    case TOKMARK_SCHEME_GUMBEL: a->fixed += (tm_u128)v; break;
    case TOKMARK_SCHEME_SYNTHID:
        a->count += v & 0xff;
        a->wsum += v >> 8;
        break;
    }
}

/* The value a trace shows for a payload. */
static double payload_value(const tokmark_detector *d, const tm_key *K, uint64_t payload) {
    uint64_t v = payload & ~TM_SCORED_BIT;
    switch (K->p->params.scheme) {
    case TOKMARK_SCHEME_GUMBEL: return (double)v * 0x1p-32; /* exact, as ldexp(v, -32) */
    case TOKMARK_SCHEME_SYNTHID: return d->score == TOKMARK_SCORE_WEIGHTED ? (double)(v >> 8) : (double)(v & 0xff);
    default: return (double)v;
    }
}

/* Values and totals for the m tuples in kcand/kflags/kpos/kent with nonces
 * in nonce[]. */
static void score_values(tokmark_detector *d, tm_group *G, tm_key *K, size_t m) {
    const tokmark_params *pp = &K->p->params;
    int gv = pp->scheme == TOKMARK_SCHEME_SYNTHID;
    for (size_t i = 0; i < m; i++) {
        uint32_t t = (uint32_t)d->kcand[i];
        tm_store_ctr_block(d->scratch + 16 * i, d->nonce[i], gv ? t : t >> 2);
    }
    tm_aes_ecb(&K->val, d->scratch, d->scratch, m);
    size_t stride = 1 + G->nkeys;
    if (pp->scheme == TOKMARK_SCHEME_KGW) {
        /* KGW without a per-tuple switch: the totals, each document-new
         * tuple's bit into the trace (windowed scans), and payloads into the
         * log (recording, deferring) */
        uint64_t dn = 0, dg = 0, cn = 0, cg = 0;
        for (size_t i = 0; i < m; i++) {
            uint32_t t = (uint32_t)d->kcand[i];
            uint64_t green = tm_load32le(d->scratch + 16 * i + 4 * (t & 3)) < pp->gamma_threshold;
            uint64_t fd = d->kflags[i] & 1, fc = (d->kflags[i] >> 1) & 1;
            dn += fd;
            dg += fd & green;
            cn += fc;
            cg += fc & green;
            if (K->trace != NULL) {
                uint64_t pos = d->doc_pos + d->kpos[i];
                if (fd && pos < K->trace_cap) {
                    K->trace[pos].value = (double)green;
                    K->trace[pos].scored = 1;
                }
            }
            if (d->logging && d->kent[i] != UINT64_MAX) G->log[d->kent[i] * stride + 1 + K->gk] = TM_SCORED_BIT | green;
        }
        K->doc.scored += dn;
        K->doc.count += dg;
        K->corpus.scored += cn;
        K->corpus.count += cg;
        return;
    }
    for (size_t i = 0; i < m; i++) {
        uint64_t pl = tuple_payload(pp, d->scratch + 16 * i, (uint32_t)d->kcand[i]);
        if (d->kflags[i] & 1) {
            acc_add(&K->doc, pp, pl);
            uint64_t pos = d->doc_pos + d->kpos[i];
            if (K->trace != NULL && pos < K->trace_cap) {
                K->trace[pos].value = payload_value(d, K, pl);
                K->trace[pos].scored = 1;
            }
        }
        if (d->kflags[i] & 2) acc_add(&K->corpus, pp, pl);
        if (d->kent[i] != UINT64_MAX) G->log[d->kent[i] * stride + 1 + K->gk] = pl;
    }
}

/* Score the n selected LeftHash tuples of group G for every key of the group. */
static void score_tuples(tokmark_detector *d, tm_group *G, size_t n) {
    for (size_t gk = 0; gk < G->nkeys; gk++) {
        tm_key *K = &d->keys[G->keys[gk]];
        const tokmark_params *pp = &K->p->params;
        size_t m = 0;
        if (d->tmax_all < pp->vocab_size) { /* every tuple is in this key's vocabulary */
            memcpy(d->kcand, d->cand, n * sizeof *d->cand);
            memcpy(d->kflags, d->flags, n);
            memcpy(d->kpos, d->pos, n * sizeof *d->pos);
            memcpy(d->kent, d->ent, n * sizeof *d->ent);
            m = n;
            tm_nonce_left_batch(&K->ctx, d->buf, d->start, m, pp->context_width, d->scratch, d->nonce);
            score_values(d, G, K, m);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (d->tmax[i] >= pp->vocab_size) continue; /* a token outside this key's vocabulary */
            d->kstart[m] = d->start[i];
            d->kcand[m] = d->cand[i];
            d->kflags[m] = d->flags[i];
            d->kpos[m] = d->pos[i];
            d->kent[m] = d->ent[i];
            m++;
        }
        if (m == 0) continue;
        tm_nonce_left_batch(&K->ctx, d->buf, d->kstart, m, pp->context_width, d->scratch, d->nonce);
        score_values(d, G, K, m);
    }
}

/* Double a group's log (and its occurrence counts); -1 marks the log
 * incomplete. */
static int log_grow(tokmark_detector *d, tm_group *G) {
    size_t stride = 1 + G->nkeys;
    size_t cap = G->log_cap ? G->log_cap * 2 : 1024;
    uint64_t *l = realloc(G->log, cap * stride * sizeof *l);
    if (l != NULL) G->log = l;
    uint32_t *o = l != NULL && d->defer ? realloc(G->occ, cap * sizeof *o) : NULL;
    if (o != NULL) G->occ = o;
    if (l == NULL || (d->defer && o == NULL)) {
        d->log_failed = 1;
        return -1;
    }
    G->log_cap = cap;
    return 0;
}

/* Append a corpus log entry for fingerprint f (payloads 0 = not scored);
 * UINT64_MAX when the log cannot grow (it is then marked incomplete). */
static inline uint64_t log_append(tokmark_detector *d, tm_group *G, uint64_t f) {
    size_t stride = 1 + G->nkeys;
    if (d->log_failed || (G->log_len == G->log_cap && log_grow(d, G) != 0)) return UINT64_MAX;
    if (d->defer) G->occ[G->log_len] = 1;
    uint64_t *e = G->log + G->log_len * stride;
    e[0] = f;
    for (size_t k = 1; k < stride; k++) e[k] = 0;
    return G->log_len++;
}

/* Dedup of tuple i by fingerprint f: sets the per-document and corpus flags
 * and counts duplicates and drops.  Returns the flags (0: skip). */
static uint8_t dedup_flags(tm_group *G, uint64_t f) {
    int dn = set_insert(&G->doc, f);
    /* seen in this document: then also in the corpus set, which keeps every
     * tuple it accepted, unless it has filled up (then ask it: the tuple
     * may have been dropped) */
    if (dn == 0 && G->corpus.count < G->corpus.limit) {
        G->doc_dups++;
        G->corp_dups++;
        return 0;
    }
    int cn = set_insert(&G->corpus, f);
    if (dn == 0) G->doc_dups++;
    if (dn < 0) G->doc_dropped++;
    if (cn == 0) G->corp_dups++;
    if (cn < 0) G->corp_dropped++;
    return (uint8_t)((dn == 1 ? 1 : 0) | (cn == 1 ? 2 : 0));
}

/* Dedup of a deferring detector (SPEC §7.6): the document set only.  A
 * document-new tuple, or one the full document set cannot hold, becomes a
 * log entry (*ent) whose payloads scoring fills in; a later occurrence in the
 * same document adds to its entry's count.  Returns the flags (0: skip; 1:
 * new in the document; 4: an entry). */
static uint8_t dedup_defer(tokmark_detector *d, tm_group *G, uint64_t f, uint64_t *ent) {
    uint64_t at;
    int dn = set_insert_at(&G->doc, f, &at);
    if (dn == 0) {
        G->doc_dups++;
        size_t e = G->doc_base + G->doc.val[at];
        if (e < G->log_len && G->occ[e] < UINT32_MAX) G->occ[e]++;
        return 0;
    }
    if (dn > 0) G->doc.val[at] = (uint32_t)(G->doc.count - 1);
    else G->doc_dropped++;
    *ent = log_append(d, G, f);
    return (uint8_t)((dn > 0 ? 1 : 0) | 4);
}

/* Dedup of a deferring detector that shares its parent's corpus set: the
 * document set, then the parent's set directly (a tuple held in the document
 * set is held in the corpus set, which cannot fill up while shared: the
 * caller keeps within tokmark_detector_room).  Returns the flags. */
static uint8_t dedup_shared(tm_group *G, tm_set *corpus, uint64_t f) {
    int dn = set_insert(&G->doc, f);
    if (dn == 0) {
        G->doc_dups++;
        G->corp_dups++;
        return 0;
    }
    if (dn < 0) G->doc_dropped++;
    int cn = set_insert_shared(corpus, f);
    if (cn == 0) G->corp_dups++;
    if (cn < 0) G->corp_dropped++;
    if (cn > 0) G->shared_new++;
    return (uint8_t)((dn > 0 ? 1 : 0) | (cn > 0 ? 2 : 0));
}

/* SelfHash group (one key): the anchored min-hash gives distinct tuples the
 * same nonce whenever they share the minimising (previous token, candidate)
 * pair, so the unit of independence is the PRF input (N, t), not the tuple:
 * nonces first, then dedup on fingerprint(N, t), then values (SPEC §7.2). */
static void process_self(tokmark_detector *d, tm_group *G, size_t i0, size_t n) {
    tm_key *K = &d->keys[G->keys[0]];
    const tokmark_params *pp = &K->p->params;
    size_t m = 0;
    for (size_t i = i0; i < n; i++) {
        uint32_t st = (uint32_t)(TM_HIST + i - G->c);
        const int32_t *tuple = d->buf + st;
        uint32_t mx = 0;
        for (uint32_t j = 0; j <= G->c; j++)
            if ((uint32_t)tuple[j] > mx) mx = (uint32_t)tuple[j];
        if (mx >= pp->vocab_size) continue; /* a token outside the vocabulary: no tuple */
        d->kstart[m] = st;
        d->kcand[m] = tuple[G->c];
        d->kpos[m] = (uint32_t)i;
        m++;
    }
    if (m == 0) return;
    tm_nonce_self_batch(&K->ctx, d->buf, d->kstart, d->kcand, m, pp->context_width, d->scratch, d->nonce);
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        uint8_t fl = 3;
        uint64_t ent = UINT64_MAX;
        if (d->dedup) {
            uint64_t f = tm_mix64(d->nonce[i] ^ ((uint64_t)(uint32_t)d->kcand[i] + 1) * 0x9E3779B97F4A7C15ull);
            f = f ? f : 1;
            if (d->parent != NULL) fl = dedup_shared(G, &d->parent->groups[G - d->groups].corpus, f);
            else if (d->defer) fl = dedup_defer(d, G, f, &ent);
            else {
                fl = dedup_flags(G, f);
                if ((fl & 2) && d->record) ent = log_append(d, G, f);
            }
            if (fl == 0) continue;
        }
        d->nonce[k] = d->nonce[i];
        d->kcand[k] = d->kcand[i];
        d->kpos[k] = d->kpos[i];
        d->kflags[k] = fl;
        d->kent[k] = ent;
        k++;
    }
    score_values(d, G, K, k);
}

static void process_batch(tokmark_detector *d, size_t n) {
    uint64_t fp[TM_BATCH];
    for (size_t g = 0; g < d->ngroups; g++) {
        tm_group *G = &d->groups[g];
        size_t i0 = d->doc_pos >= G->c ? 0 : (size_t)(G->c - d->doc_pos); /* first with a context */
        if (i0 >= n) continue;
        if (G->seeding == TOKMARK_SEEDING_SELFHASH) {
            process_self(d, G, i0, n);
            continue;
        }
        /* the set this detector probes for the corpus stage, if any */
        tm_set *shared = d->parent != NULL ? &d->parent->groups[g].corpus : NULL;
        tm_set *corpus = shared != NULL ? shared : d->defer ? NULL : &G->corpus;
        if (d->dedup) {
            for (size_t i = i0; i < n; i++) fp[i] = tm_fingerprint(d->buf + TM_HIST + i - G->c, G->c, G->seeding);
            for (size_t i = i0; i < n && i < i0 + TM_PREFETCH; i++) {
                if (corpus != NULL) set_prefetch(corpus, fp[i]);
                set_prefetch(&G->doc, fp[i]);
            }
        }
        /* one check for the whole batch (history included): when every token
         * is inside every key's vocabulary, no tuple needs its own check */
        uint32_t bmax = 0;
        for (size_t i = TM_HIST - G->c + i0; i < TM_HIST + n; i++)
            if ((uint32_t)d->buf[i] > bmax) bmax = (uint32_t)d->buf[i];
        int batch_in_vocab = bmax < d->min_vocab;
        d->tmax_all = bmax;
        size_t m = 0;
        for (size_t i = i0; i < n; i++) {
            /* prefetch a fixed distance ahead: enough misses in flight to
             * hide the latency, not so many that the prefetches stall */
            if (d->dedup && i + TM_PREFETCH < n) {
                if (corpus != NULL) set_prefetch(corpus, fp[i + TM_PREFETCH]);
                set_prefetch(&G->doc, fp[i + TM_PREFETCH]);
            }
            uint32_t st = (uint32_t)(TM_HIST + i - G->c);
            const int32_t *tuple = d->buf + st;
            uint8_t fl = 3;
            uint64_t ent = UINT64_MAX;
            if (d->dedup) {
                if (shared != NULL) fl = dedup_shared(G, shared, fp[i]);
                else if (d->defer) fl = dedup_defer(d, G, fp[i], &ent);
                else {
                    fl = dedup_flags(G, fp[i]);
                    if ((fl & 2) && d->record) ent = log_append(d, G, fp[i]);
                }
                if (fl == 0) continue;
            }
            uint32_t mx = 0;
            if (!batch_in_vocab)
                for (uint32_t j = 0; j <= G->c; j++)
                    if ((uint32_t)tuple[j] > mx) mx = (uint32_t)tuple[j];
            d->start[m] = st;
            d->cand[m] = tuple[G->c];
            d->tmax[m] = mx;
            d->flags[m] = fl;
            d->pos[m] = (uint32_t)i;
            d->ent[m] = ent;
            m++;
        }
        if (m > 0) score_tuples(d, G, m);
    }
}

static void push_tokens(tokmark_detector *d, const int32_t *ids, size_t n, int score) {
    while (n > 0) {
        size_t k = n < TM_BATCH ? n : TM_BATCH;
        memcpy(d->buf + TM_HIST, ids, k * sizeof *ids);
        if (d->tracing)
            for (size_t t = 0; t < d->nkeys; t++) {
                tm_key *K = &d->keys[t];
                for (uint64_t p = d->doc_pos; K->trace != NULL && p < d->doc_pos + k && p < K->trace_cap; p++) {
                    K->trace[p].value = 0.0;
                    K->trace[p].scored = 0;
                }
            }
        if (score) process_batch(d, k);
        /* keep the last TM_HIST tokens as history */
        memmove(d->buf, d->buf + k, TM_HIST * sizeof *d->buf);
        d->doc_pos += k;
        ids += k;
        n -= k;
    }
}

void tokmark_detector_prompt(tokmark_detector *d, const int32_t *ids, size_t n) {
    push_tokens(d, ids, n, 0);
}

void tokmark_detector_feed(tokmark_detector *d, const int32_t *ids, size_t n) {
    d->doc_tokens += n;
    d->corpus_tokens += n;
    push_tokens(d, ids, n, 1);
}

/* ------------------------------------------------------------------------ */
/* Results                                                                   */
/* ------------------------------------------------------------------------ */

/* Round a 128-bit fixed-point count of 2^-32 units toward zero to a double. */
static double fixed_to_double(tm_u128 x) {
    int bits = 0;
    for (tm_u128 y = x; y != 0; y >>= 1) bits++;
    int shift = bits > 53 ? bits - 53 : 0;
    uint64_t mant = (uint64_t)(x >> shift);
    return ldexp((double)mant, shift - 32);
}

static void fill(const tokmark_detector *d, size_t k, const tm_acc *a, uint64_t tokens, uint64_t dups,
                 uint64_t dropped, tokmark_result *r) {
    const tm_key *K = &d->keys[k];
    const tokmark_params *pp = &K->p->params;
    memset(r, 0, sizeof *r);
    r->tokens = tokens;
    r->scored = a->scored;
    r->duplicates = dups;
    r->dropped = dropped;
    r->key_index = k;
    memcpy(r->key_id, tokmark_profile_key_id(K->p), TOKMARK_KEY_ID_HEX);
    r->key_id[TOKMARK_KEY_ID_HEX] = '\0';
    double n = (double)a->scored, lnp = 0.0;
    if (a->scored > 0) {
        switch (pp->scheme) {
        case TOKMARK_SCHEME_KGW: {
            double g = tokmark_params_gamma(pp);
            r->statistic = (double)a->count;
            r->z = ((double)a->count - g * n) / sqrt(n * g * (1.0 - g));
            lnp = tokmark_ln_sf_binomial(a->count, a->scored, g);
            break;
        }
        case TOKMARK_SCHEME_GUMBEL: {
            double S = fixed_to_double(a->fixed);
            r->statistic = S;
            r->z = (S - n) / sqrt(n);
            lnp = tokmark_ln_sf_gamma(S, a->scored);
            break;
        }
        case TOKMARK_SCHEME_SYNTHID:
            if (d->score == TOKMARK_SCORE_WEIGHTED) {
                double W = (double)K->W, W2 = 0.0;
                for (uint32_t l = 0; l < pp->layers; l++) W2 += (double)pp->weights[l] * pp->weights[l];
                r->statistic = (double)a->wsum / (n * W);
                r->z = ((double)a->wsum - n * W / 2) / sqrt(n * W2 / 4);
                lnp = tokmark_ln_sf_weighted(a->wsum, a->scored, pp->weights, pp->layers);
            } else {
                double nm = n * pp->layers;
                r->statistic = (double)a->count / nm;
                r->z = ((double)a->count - nm / 2) / sqrt(nm / 4);
                lnp = tokmark_ln_sf_binomial(a->count, a->scored * pp->layers, 0.5);
            }
            break;
        }
    }
    r->log10_p = lnp / M_LN10_TM;
    r->log10_p_corrected = tokmark_ln_sidak(lnp, d->nkeys) / M_LN10_TM;
}

void tokmark_detector_document(const tokmark_detector *d, size_t key, tokmark_result *out) {
    if (key >= d->nkeys) { memset(out, 0, sizeof *out); return; }
    const tm_group *G = &d->groups[d->keys[key].group];
    fill(d, key, &d->keys[key].doc, d->doc_tokens, G->doc_dups, G->doc_dropped, out);
}

void tokmark_detector_corpus(const tokmark_detector *d, size_t key, tokmark_result *out) {
    if (key >= d->nkeys) { memset(out, 0, sizeof *out); return; }
    const tm_group *G = &d->groups[d->keys[key].group];
    fill(d, key, &d->keys[key].corpus, d->corpus_tokens, G->corp_dups, G->corp_dropped, out);
}

static void best(const tokmark_detector *d, int corpus, tokmark_result *out) {
    tokmark_result r;
    for (size_t k = 0; k < d->nkeys; k++) {
        if (corpus) tokmark_detector_corpus(d, k, &r);
        else tokmark_detector_document(d, k, &r);
        if (k == 0 || r.log10_p < out->log10_p) *out = r;
    }
}

void tokmark_detector_document_best(const tokmark_detector *d, tokmark_result *out) { best(d, 0, out); }
void tokmark_detector_corpus_best(const tokmark_detector *d, tokmark_result *out) { best(d, 1, out); }

/* ------------------------------------------------------------------------ */
/* Traces and partial results (SPEC §7.4, §7.5)                               */
/* ------------------------------------------------------------------------ */

void tokmark_detector_set_trace(tokmark_detector *d, size_t key, tokmark_trace *buf, size_t cap) {
    if (key >= d->nkeys) return;
    d->keys[key].trace = cap > 0 ? buf : NULL;
    d->keys[key].trace_cap = buf != NULL ? cap : 0;
    d->tracing = 0;
    for (size_t k = 0; k < d->nkeys; k++)
        if (d->keys[k].trace != NULL) d->tracing = 1;
}

static const char PARTIAL_MAGIC[8] = {'T', 'M', 'P', 'A', 'R', 'T', '0', '1'};

typedef struct tm_wbuf {
    uint8_t *p;
    size_t len, cap;
    int failed;
} tm_wbuf;

static void wb_put(tm_wbuf *w, const void *src, size_t n) {
    if (w->failed) return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->len + n) cap *= 2;
        uint8_t *q = realloc(w->p, cap);
        if (q == NULL) {
            w->failed = 1;
            return;
        }
        w->p = q;
        w->cap = cap;
    }
    memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void wb_u32(tm_wbuf *w, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    wb_put(w, b, 4);
}

static void wb_u64(tm_wbuf *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    wb_put(w, b, 8);
}

int tokmark_detector_export(const tokmark_detector *d, uint8_t **out, size_t *len) {
    if (out == NULL || len == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    *len = 0;
    if (!d->record) return TOKMARK_ERR_INVALID;
    if (d->log_failed) return TOKMARK_ERR_NOMEM;
    tm_wbuf w = {0};
    wb_put(&w, PARTIAL_MAGIC, 8);
    wb_u32(&w, (uint32_t)d->nkeys);
    wb_u32(&w, (uint32_t)d->ngroups);
    wb_u32(&w, (uint32_t)d->score);
    wb_u32(&w, 0);
    wb_u64(&w, d->corpus_tokens);
    for (size_t k = 0; k < d->nkeys; k++) {
        const tm_key *K = &d->keys[k];
        wb_put(&w, tokmark_profile_key_id(K->p), TOKMARK_KEY_ID_HEX);
        wb_u64(&w, K->corpus.scored);
        wb_u64(&w, K->corpus.count);
        wb_u64(&w, K->corpus.wsum);
        wb_u64(&w, (uint64_t)K->corpus.fixed);
        wb_u64(&w, (uint64_t)(K->corpus.fixed >> 64));
    }
    for (size_t g = 0; g < d->ngroups; g++) {
        const tm_group *G = &d->groups[g];
        wb_u32(&w, G->c);
        wb_u32(&w, G->seeding);
        wb_u32(&w, (uint32_t)G->nkeys);
        wb_u32(&w, 0);
        wb_u64(&w, G->corp_dups);
        wb_u64(&w, G->corp_dropped);
        wb_u64(&w, G->log_len);
        for (size_t i = 0; i < G->nkeys; i++) wb_u32(&w, (uint32_t)G->keys[i]);
        if (G->nkeys & 1) wb_u32(&w, 0);
        size_t stride = 1 + G->nkeys;
        for (size_t i = 0; i < G->log_len * stride; i++) wb_u64(&w, G->log[i]);
    }
    uint8_t sum[32];
    if (!w.failed) crypto_generichash(sum, sizeof sum, w.p, w.len, NULL, 0);
    wb_put(&w, sum, sizeof sum);
    if (w.failed) {
        free(w.p);
        return TOKMARK_ERR_NOMEM;
    }
    *out = w.p;
    *len = w.len;
    return TOKMARK_OK;
}

typedef struct tm_rbuf {
    const uint8_t *p;
    size_t len, off;
} tm_rbuf;

static int rb_u32(tm_rbuf *r, uint32_t *v) {
    if (r->len - r->off < 4) return -1;
    *v = tm_load32le(r->p + r->off);
    r->off += 4;
    return 0;
}

static int rb_u64(tm_rbuf *r, uint64_t *v) {
    if (r->len - r->off < 8) return -1;
    *v = tm_load64le(r->p + r->off);
    r->off += 8;
    return 0;
}

int tokmark_detector_import(tokmark_detector *d, const uint8_t *buf, size_t len) {
    if (d == NULL || buf == NULL) return TOKMARK_ERR_INVALID;
    if (!d->dedup || d->defer) return TOKMARK_ERR_INVALID;
    if (len < 8 + 32 || memcmp(buf, PARTIAL_MAGIC, 8) != 0) return TOKMARK_ERR_FORMAT;
    uint8_t sum[32];
    crypto_generichash(sum, sizeof sum, buf, len - 32, NULL, 0);
    if (sodium_memcmp(sum, buf + len - 32, 32) != 0) return TOKMARK_ERR_FORMAT;
    tm_rbuf r = {buf, len - 32, 8};
    uint32_t nk, ng, score, zero;
    uint64_t tokens;
    if (rb_u32(&r, &nk) || rb_u32(&r, &ng) || rb_u32(&r, &score) || rb_u32(&r, &zero) || rb_u64(&r, &tokens))
        return TOKMARK_ERR_FORMAT;
    if (nk != d->nkeys || ng != d->ngroups) return TOKMARK_ERR_MISMATCH;
    /* pass 1: validate everything before changing anything */
    tm_acc *sums = calloc(d->nkeys, sizeof *sums);
    tm_acc *claimed = calloc(d->nkeys, sizeof *claimed);
    int rc = (sums && claimed) ? TOKMARK_OK : TOKMARK_ERR_NOMEM;
    for (size_t k = 0; k < d->nkeys && rc == TOKMARK_OK; k++) {
        uint64_t lo, hi;
        if (r.len - r.off < TOKMARK_KEY_ID_HEX) { rc = TOKMARK_ERR_FORMAT; break; }
        if (memcmp(r.p + r.off, tokmark_profile_key_id(d->keys[k].p), TOKMARK_KEY_ID_HEX) != 0) {
            rc = TOKMARK_ERR_MISMATCH;
            break;
        }
        r.off += TOKMARK_KEY_ID_HEX;
        if (rb_u64(&r, &claimed[k].scored) || rb_u64(&r, &claimed[k].count) || rb_u64(&r, &claimed[k].wsum) ||
            rb_u64(&r, &lo) || rb_u64(&r, &hi)) {
            rc = TOKMARK_ERR_FORMAT;
            break;
        }
        claimed[k].fixed = (tm_u128)hi << 64 | lo;
    }
    size_t body = r.off;
    for (size_t g = 0; g < d->ngroups && rc == TOKMARK_OK; g++) {
        const tm_group *G = &d->groups[g];
        uint32_t c, seeding, gn, z2, kidx;
        uint64_t dups, dropped, n;
        if (rb_u32(&r, &c) || rb_u32(&r, &seeding) || rb_u32(&r, &gn) || rb_u32(&r, &z2) || rb_u64(&r, &dups) ||
            rb_u64(&r, &dropped) || rb_u64(&r, &n)) { rc = TOKMARK_ERR_FORMAT; break; }
        if (c != G->c || seeding != G->seeding || gn != G->nkeys) { rc = TOKMARK_ERR_MISMATCH; break; }
        for (size_t i = 0; i < gn && rc == TOKMARK_OK; i++)
            if (rb_u32(&r, &kidx)) rc = TOKMARK_ERR_FORMAT;
            else if (kidx != G->keys[i]) rc = TOKMARK_ERR_MISMATCH;
        if ((gn & 1) && rb_u32(&r, &z2)) rc = TOKMARK_ERR_FORMAT;
        if (rc != TOKMARK_OK) break;
        size_t stride = 1 + gn;
        if (n > (r.len - r.off) / 8 / stride) { rc = TOKMARK_ERR_FORMAT; break; }
        for (uint64_t e = 0; e < n; e++) {
            const uint8_t *q = r.p + r.off + 8 * (size_t)e * stride;
            if (tm_load64le(q) == 0) { rc = TOKMARK_ERR_FORMAT; break; }
            for (size_t i = 0; i < gn; i++) {
                uint64_t pl = tm_load64le(q + 8 * (i + 1));
                if (pl & TM_SCORED_BIT) acc_add(&sums[G->keys[i]], &d->keys[G->keys[i]].p->params, pl);
                else if (pl != 0) rc = TOKMARK_ERR_FORMAT;
            }
        }
        r.off += 8 * (size_t)n * stride;
    }
    if (rc == TOKMARK_OK && r.off != r.len) rc = TOKMARK_ERR_FORMAT;
    /* the totals must be the sums of the entries */
    for (size_t k = 0; k < d->nkeys && rc == TOKMARK_OK; k++)
        if (memcmp(&sums[k], &claimed[k], sizeof sums[k]) != 0) rc = TOKMARK_ERR_FORMAT;
    free(sums);
    free(claimed);
    if (rc != TOKMARK_OK) return rc;
    /* pass 2: the union */
    r.off = body;
    d->corpus_tokens += tokens;
    for (size_t g = 0; g < d->ngroups; g++) {
        tm_group *G = &d->groups[g];
        uint32_t u;
        uint64_t dups = 0, dropped = 0, n = 0;
        for (int i = 0; i < 4; i++) (void)rb_u32(&r, &u);
        (void)rb_u64(&r, &dups);
        (void)rb_u64(&r, &dropped);
        (void)rb_u64(&r, &n);
        r.off += 4 * (G->nkeys + (G->nkeys & 1));
        G->corp_dups += dups;
        G->corp_dropped += dropped;
        size_t stride = 1 + G->nkeys;
        for (uint64_t e = 0; e < n; e++) {
            const uint8_t *q = r.p + r.off + 8 * (size_t)e * stride;
            uint64_t f = tm_load64le(q);
            int in = set_insert(&G->corpus, f);
            if (in == 0) { G->corp_dups++; continue; }
            if (in < 0) { G->corp_dropped++; continue; }
            uint64_t ent = d->record ? log_append(d, G, f) : UINT64_MAX;
            for (size_t i = 0; i < G->nkeys; i++) {
                uint64_t pl = tm_load64le(q + 8 * (i + 1));
                tm_key *K = &d->keys[G->keys[i]];
                if (pl & TM_SCORED_BIT) acc_add(&K->corpus, &K->p->params, pl);
                if (ent != UINT64_MAX) G->log[ent * stride + 1 + i] = pl;
            }
        }
        r.off += 8 * (size_t)n * stride;
    }
    return TOKMARK_OK;
}

/* ------------------------------------------------------------------------ */
/* Deferred corpus stage (SPEC §7.6)                                          */
/* ------------------------------------------------------------------------ */

/* TOKMARK_OK when src may hand its tuples to d: src defers, d does not, and
 * both are over the same keys in the same order. */
static int same_ring(const tokmark_detector *d, const tokmark_detector *src) {
    if (d == NULL || src == NULL || d == src || !src->defer || d->defer || !d->dedup) return TOKMARK_ERR_INVALID;
    if (src->nkeys != d->nkeys || src->ngroups != d->ngroups) return TOKMARK_ERR_MISMATCH;
    for (size_t k = 0; k < d->nkeys; k++)
        if (memcmp(tokmark_profile_key_id(src->keys[k].p), tokmark_profile_key_id(d->keys[k].p), TOKMARK_KEY_ID_HEX) != 0)
            return TOKMARK_ERR_MISMATCH;
    for (size_t g = 0; g < d->ngroups; g++) {
        const tm_group *A = &d->groups[g], *B = &src->groups[g];
        if (A->c != B->c || A->seeding != B->seeding || A->nkeys != B->nkeys ||
            memcmp(A->keys, B->keys, A->nkeys * sizeof *A->keys) != 0)
            return TOKMARK_ERR_MISMATCH;
    }
    return TOKMARK_OK;
}

int tokmark_detector_share(tokmark_detector *src, tokmark_detector *parent) {
    if (src == NULL) return TOKMARK_ERR_INVALID;
    if (parent != NULL) {
        int rc = same_ring(parent, src);
        if (rc != TOKMARK_OK) return rc;
        if (parent->record) return TOKMARK_ERR_INVALID; /* shared inserts are not recorded */
    } else if (!src->defer)
        return TOKMARK_ERR_INVALID;
    src->parent = parent;
    return TOKMARK_OK;
}

uint64_t tokmark_detector_room(const tokmark_detector *d) {
    if (d == NULL || !d->dedup || d->defer) return 0;
    uint64_t room = UINT64_MAX;
    for (size_t g = 0; g < d->ngroups; g++) {
        const tm_set *c = &d->groups[g].corpus;
        /* inserts up to 3/4 of the table do not make it grow (set_insert) */
        uint64_t top = c->mask + 1 < c->max_slots ? (c->mask + 1) / 4 * 3 : c->limit;
        if (top > c->limit) top = c->limit;
        uint64_t r = c->count < top ? top - c->count : 0;
        if (r < room) room = r;
    }
    return room;
}

int tokmark_detector_absorb(tokmark_detector *d, tokmark_detector *src) {
    int rc = same_ring(d, src);
    if (rc != TOKMARK_OK) return rc;
    if (src->log_failed) return TOKMARK_ERR_NOMEM;
    d->corpus_tokens += src->corpus_tokens;
    src->corpus_tokens = 0;
    /* what src found while sharing d's sets: its totals (§7.6) */
    for (size_t k = 0; k < d->nkeys; k++) {
        tm_acc *a = &d->keys[k].corpus, *b = &src->keys[k].corpus;
        a->scored += b->scored;
        a->count += b->count;
        a->wsum += b->wsum;
        a->fixed += b->fixed;
        memset(b, 0, sizeof *b);
    }
    for (size_t g = 0; g < d->ngroups; g++) {
        tm_group *G = &d->groups[g], *S = &src->groups[g];
        G->corpus.count += S->shared_new;
        G->corp_dups += S->corp_dups;
        G->corp_dropped += S->corp_dropped;
        S->shared_new = S->corp_dups = S->corp_dropped = 0;
    }
    for (size_t g = 0; g < d->ngroups; g++) {
        tm_group *G = &d->groups[g], *S = &src->groups[g];
        size_t stride = 1 + G->nkeys;
        for (size_t e = 0; e < S->log_len; e++) {
            const uint64_t *q = S->log + e * stride;
            if (e + TM_PREFETCH < S->log_len) set_prefetch(&G->corpus, S->log[(e + TM_PREFETCH) * stride]);
            uint64_t occ = S->occ[e];
            /* the first occurrence decides, as in one detector: a tuple
             * inserted, held or dropped then is a duplicate, a duplicate or
             * dropped at its later occurrences in the document (§7.6) */
            int in = set_insert(&G->corpus, q[0]);
            if (in == 0) { G->corp_dups += occ; continue; }
            if (in < 0) { G->corp_dropped += occ; continue; }
            G->corp_dups += occ - 1;
            uint64_t ent = d->record ? log_append(d, G, q[0]) : UINT64_MAX;
            for (size_t i = 0; i < G->nkeys; i++) {
                uint64_t pl = q[1 + i];
                tm_key *K = &d->keys[G->keys[i]];
                if (pl & TM_SCORED_BIT) acc_add(&K->corpus, &K->p->params, pl);
                if (ent != UINT64_MAX) G->log[ent * stride + 1 + i] = pl;
            }
        }
        S->log_len = 0;
        S->doc_base = 0;
    }
    return TOKMARK_OK;
}
