/* lm.c — the reference n-gram language model (SPEC.md §11): interpolated
 * modified Kneser–Ney over token ids, its file format, full-vocabulary
 * log-probabilities, and the sampling loop with the embedder inside.
 *
 * Layout.  The model is one flat image, the same in memory and on disk
 * (§11.4): for every context length k = 0..N-1 a sorted level of context
 * nodes, and for every order n = 1..N the followers of those contexts.  The
 * contexts form a trie read from the most recent token backwards: a node of
 * level k is a context h1..hk, its parent the context h2..hk, and the
 * children of a node are sorted by their oldest token h1.  So the contexts
 * of a history are found by one walk from the root, one binary search per
 * level, and a trained model is written as it is and mapped back (mmap)
 * without parsing.  Loading checks every offset and id once, so the hot
 * functions never test bounds again. */
#include "lm.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* The file image (SPEC.md §11.4)                                            */
/* ------------------------------------------------------------------------ */

static const char LM_MAGIC[16] = {'t', 'o', 'k', 'm', 'a', 'r', 'k', '-', 'n', 'g', 'r', 'a', 'm', '-', 'l', 'm'};
enum { LM_VERSION = 1, LM_HEADER_BYTES = 256 };

/* Header offsets. */
enum {
    H_MAGIC = 0,
    H_VERSION = 16,
    H_ORDER = 20,
    H_VOCAB = 24,
    H_BOUNDARY = 28,
    H_DOCS = 32,
    H_TOKENS = 40,
    H_TOKENIZER = 48,   /* 64 bytes, NUL-padded */
    H_NODES = 112,      /* u64[6]: contexts of length 0..5 */
    H_GRAMS = 160,      /* u64[6]: n-grams of order 1..6 */
    H_END = 208         /* then zeros up to 256 */
};

typedef struct lm_level {
    uint64_t n;              /* nodes (contexts of this length) */
    const int32_t *tok;      /* oldest token of each context (k ≥ 1) */
    const uint32_t *child;   /* n+1 offsets into the next level (k < N-1) */
    const uint32_t *fol;     /* n+1 offsets into the followers of order k+1 */
    double *gamma;           /* back-off weight γ(h) of each context */
    double *inv_total;       /* 1 / Σ_w a(h w) */
} lm_level;

typedef struct lm_grams {
    uint64_t n;
    const int32_t *tok;      /* follower ids, increasing within a context */
    const uint32_t *cnt;     /* their (adjusted) counts a(h w) ≥ 1 */
} lm_grams;

struct lm_model {
    uint32_t order, vocab;
    int32_t boundary;
    uint64_t docs, tokens;
    char tokenizer[LM_TOKENIZER_MAX];
    lm_level lv[LM_MAX_ORDER];
    lm_grams gr[LM_MAX_ORDER];
    double disc[LM_MAX_ORDER][4]; /* [n-1][c]: D(c) for c = 1, 2, 3+ (index 0 unused: 0) */
    double *p1;                   /* V: the order-1 distribution (with the uniform base) */
    double *logp1;                /* V: its logarithm */
    const unsigned char *image;   /* the file image */
    size_t image_len;
    int mapped;                   /* 1: image is mmap'd; 0: malloc'd */
};

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void wr64(unsigned char *p, uint64_t v) {
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}
static int host_little_endian(void) {
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}
static uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

/* Section sizes in file order for order N and the counts; returns the total
 * image size, or 0 when it would overflow. */
typedef struct lm_sections {
    uint64_t tok[LM_MAX_ORDER], child[LM_MAX_ORDER], fol[LM_MAX_ORDER]; /* offsets, levels */
    uint64_t gtok[LM_MAX_ORDER], gcnt[LM_MAX_ORDER];                   /* offsets, orders */
    uint64_t end;
} lm_sections;

static int lm_layout(uint32_t N, const uint64_t *nodes, const uint64_t *grams, lm_sections *s) {
    uint64_t off = LM_HEADER_BYTES;
    const uint64_t lim = (uint64_t)1 << 40;
    for (uint32_t k = 0; k < N; k++) {
        if (nodes[k] >= UINT32_MAX || grams[k] >= UINT32_MAX) return -1;
        s->tok[k] = off;
        off = align8(off + (k >= 1 ? 4 * nodes[k] : 0));
        s->child[k] = off;
        off = align8(off + (k + 1 < N ? 4 * (nodes[k] + 1) : 0));
        s->fol[k] = off;
        off = align8(off + 4 * (nodes[k] + 1));
    }
    for (uint32_t n = 0; n < N; n++) {
        s->gtok[n] = off;
        off = align8(off + 4 * grams[n]);
        s->gcnt[n] = off;
        off = align8(off + 4 * grams[n]);
        if (off > lim) return -1;
    }
    s->end = off;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Discounts and derived tables (SPEC.md §11.2)                              */
/* ------------------------------------------------------------------------ */

/* D1, D2, D3+ of one order from its counts of counts t[1..4] (Chen &
 * Goodman); an estimate that is not a number in (0, c) is replaced by c/2. */
static void lm_discounts(const uint64_t t[5], double D[4]) {
    double t1 = (double)t[1], t2 = (double)t[2], t3 = (double)t[3], t4 = (double)t[4];
    double Y = t1 / (t1 + 2.0 * t2);
    double est[4] = {0.0, 1.0 - 2.0 * Y * t2 / t1, 2.0 - 3.0 * Y * t3 / t2, 3.0 - 4.0 * Y * t4 / t3};
    D[0] = 0.0;
    for (int c = 1; c <= 3; c++) D[c] = (isfinite(est[c]) && est[c] > 0.0 && est[c] < (double)c) ? est[c] : c / 2.0;
}

static double lm_disc(const double D[4], uint32_t a) { return D[a >= 3 ? 3 : a]; }

/* γ and 1/total of every context, the discounts, and the order-1 table. */
static int lm_derive(lm_model *m) {
    uint32_t N = m->order, V = m->vocab;
    for (uint32_t n = 0; n < N; n++) {
        uint64_t t[5] = {0, 0, 0, 0, 0};
        for (uint64_t i = 0; i < m->gr[n].n; i++) {
            uint32_t a = m->gr[n].cnt[i];
            if (a <= 4) t[a]++;
        }
        lm_discounts(t, m->disc[n]);
    }
    for (uint32_t k = 0; k < N; k++) {
        lm_level *L = &m->lv[k];
        const lm_grams *G = &m->gr[k];
        const double *D = m->disc[k];
        L->gamma = malloc((L->n + 1) * sizeof *L->gamma);
        L->inv_total = malloc((L->n + 1) * sizeof *L->inv_total);
        if (L->gamma == NULL || L->inv_total == NULL) return TOKMARK_ERR_NOMEM;
        for (uint64_t i = 0; i < L->n; i++) {
            double total = 0.0, mass = 0.0;
            for (uint32_t j = L->fol[i]; j < L->fol[i + 1]; j++) {
                total += G->cnt[j];
                mass += lm_disc(D, G->cnt[j]);
            }
            L->inv_total[i] = 1.0 / total;
            L->gamma[i] = mass / total;
        }
    }
    m->p1 = malloc((size_t)V * sizeof *m->p1);
    m->logp1 = malloc((size_t)V * sizeof *m->logp1);
    if (m->p1 == NULL || m->logp1 == NULL) return TOKMARK_ERR_NOMEM;
    const lm_level *R = &m->lv[0];
    const lm_grams *G = &m->gr[0];
    double base = R->gamma[0] / (double)V;
    for (uint32_t w = 0; w < V; w++) m->p1[w] = base;
    for (uint32_t j = R->fol[0]; j < R->fol[1]; j++)
        m->p1[G->tok[j]] = base + ((double)G->cnt[j] - lm_disc(m->disc[0], G->cnt[j])) * R->inv_total[0];
    for (uint32_t w = 0; w < V; w++) m->logp1[w] = log(m->p1[w]);
    return TOKMARK_OK;
}

/* ------------------------------------------------------------------------ */
/* Reading an image: every check once (SPEC.md §11.4)                        */
/* ------------------------------------------------------------------------ */

static int lm_bad(char *why, size_t size, const char *fmt, ...) {
    if (why != NULL && size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, size, fmt, ap);
        va_end(ap);
    }
    return TOKMARK_ERR_FORMAT;
}

/* Ids in v[lo..hi) strictly increasing and below V; returns the first bad
 * index or hi. */
static uint64_t lm_check_ids(const int32_t *v, uint64_t lo, uint64_t hi, uint32_t V) {
    for (uint64_t i = lo; i < hi; i++)
        if (v[i] < 0 || (uint32_t)v[i] >= V || (i > lo && v[i] <= v[i - 1])) return i;
    return hi;
}

static int lm_from_image(lm_model *m, char *why, size_t wsize) {
    const unsigned char *p = m->image;
    size_t len = m->image_len;
    if (len < LM_HEADER_BYTES || memcmp(p + H_MAGIC, LM_MAGIC, sizeof LM_MAGIC) != 0)
        return lm_bad(why, wsize, "not a tokmark n-gram model (no 'tokmark-ngram-lm' header)");
    if (rd32(p + H_VERSION) != LM_VERSION)
        return lm_bad(why, wsize, "header: version %u is not supported (this build reads version %d)",
                      rd32(p + H_VERSION), LM_VERSION);
    uint32_t N = rd32(p + H_ORDER), V = rd32(p + H_VOCAB);
    int32_t B = (int32_t)rd32(p + H_BOUNDARY);
    if (N < 1 || N > LM_MAX_ORDER) return lm_bad(why, wsize, "header: order %u is not 1..%d", N, LM_MAX_ORDER);
    if (V < 2 || V > INT32_MAX) return lm_bad(why, wsize, "header: vocabulary size %u is out of range", V);
    if (B < 0 || (uint32_t)B >= V) return lm_bad(why, wsize, "header: boundary token %d is not below %u", B, V);
    if (memchr(p + H_TOKENIZER, 0, LM_TOKENIZER_MAX) == NULL)
        return lm_bad(why, wsize, "header: tokenizer name is not terminated");
    uint64_t nodes[LM_MAX_ORDER], grams[LM_MAX_ORDER];
    for (int k = 0; k < LM_MAX_ORDER; k++) {
        nodes[k] = rd64(p + H_NODES + 8 * k);
        grams[k] = rd64(p + H_GRAMS + 8 * k);
        if ((uint32_t)k >= N && (nodes[k] != 0 || grams[k] != 0))
            return lm_bad(why, wsize, "header: counts given beyond order %u", N);
    }
    for (size_t i = H_END; i < LM_HEADER_BYTES; i++)
        if (p[i] != 0) return lm_bad(why, wsize, "header: reserved byte %zu is not zero", i);
    if (nodes[0] != 1) return lm_bad(why, wsize, "header: level 0 must hold the one empty context");
    lm_sections s;
    if (lm_layout(N, nodes, grams, &s) != 0) return lm_bad(why, wsize, "header: counts are too large");
    if (s.end != len)
        return lm_bad(why, wsize, "file is %zu bytes, its header describes %llu (truncated or padded)", len,
                      (unsigned long long)s.end);
    m->order = N;
    m->vocab = V;
    m->boundary = B;
    m->docs = rd64(p + H_DOCS);
    m->tokens = rd64(p + H_TOKENS);
    memcpy(m->tokenizer, p + H_TOKENIZER, LM_TOKENIZER_MAX);
    for (uint32_t k = 0; k < N; k++) {
        lm_level *L = &m->lv[k];
        L->n = nodes[k];
        L->tok = (const int32_t *)(const void *)(p + s.tok[k]);
        L->child = k + 1 < N ? (const uint32_t *)(const void *)(p + s.child[k]) : NULL;
        L->fol = (const uint32_t *)(const void *)(p + s.fol[k]);
        m->gr[k].n = grams[k];
        m->gr[k].tok = (const int32_t *)(const void *)(p + s.gtok[k]);
        m->gr[k].cnt = (const uint32_t *)(const void *)(p + s.gcnt[k]);
    }
    /* Offsets: start at 0, every context has at least one follower, the last
     * ends where the section ends; children cover the next level exactly. */
    for (uint32_t k = 0; k < N; k++) {
        const lm_level *L = &m->lv[k];
        const lm_grams *G = &m->gr[k];
        if (L->fol[0] != 0 || L->fol[L->n] != G->n)
            return lm_bad(why, wsize, "level %u: follower offsets do not span the %llu %u-grams", k,
                          (unsigned long long)G->n, k + 1);
        for (uint64_t i = 0; i < L->n; i++) {
            if (L->fol[i + 1] <= L->fol[i])
                return lm_bad(why, wsize, "level %u, context %llu: no followers or offsets decreasing", k,
                              (unsigned long long)i);
            uint64_t bad = lm_check_ids(G->tok, L->fol[i], L->fol[i + 1], V);
            if (bad != L->fol[i + 1])
                return lm_bad(why, wsize, "order %u, n-gram %llu: follower id out of range or not increasing",
                              k + 1, (unsigned long long)bad);
        }
        for (uint64_t j = 0; j < G->n; j++)
            if (G->cnt[j] == 0)
                return lm_bad(why, wsize, "order %u, n-gram %llu: count is zero", k + 1, (unsigned long long)j);
        if (k + 1 < N) {
            const lm_level *C = &m->lv[k + 1];
            if (L->child[0] != 0 || L->child[L->n] != C->n)
                return lm_bad(why, wsize, "level %u: child offsets do not span level %u", k, k + 1);
            for (uint64_t i = 0; i < L->n; i++) {
                if (L->child[i + 1] < L->child[i])
                    return lm_bad(why, wsize, "level %u, context %llu: child offsets decreasing", k,
                                  (unsigned long long)i);
                uint64_t bad = lm_check_ids(C->tok, L->child[i], L->child[i + 1], V);
                if (bad != L->child[i + 1])
                    return lm_bad(why, wsize, "level %u, context %llu: token out of range or not increasing",
                                  k + 1, (unsigned long long)bad);
            }
        }
    }
    return lm_derive(m);
}

/* ------------------------------------------------------------------------ */
/* Loading, saving, freeing                                                  */
/* ------------------------------------------------------------------------ */

void lm_free(lm_model *m) {
    if (m == NULL) return;
    for (int k = 0; k < LM_MAX_ORDER; k++) {
        free(m->lv[k].gamma);
        free(m->lv[k].inv_total);
    }
    free(m->p1);
    free(m->logp1);
    if (m->image != NULL) {
        if (m->mapped)
            munmap((void *)(uintptr_t)m->image, m->image_len);
        else
            free((void *)(uintptr_t)m->image);
    }
    free(m);
}

int lm_load(lm_model **out, const char *path, char *why, size_t why_size) {
    *out = NULL;
    if (why != NULL && why_size > 0) why[0] = '\0';
    if (!host_little_endian()) return TOKMARK_ERR_UNSUPPORTED;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return TOKMARK_ERR_IO;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return TOKMARK_ERR_IO;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < LM_HEADER_BYTES) {
        close(fd);
        return lm_bad(why, why_size, "not a tokmark n-gram model (%s)",
                      S_ISREG(st.st_mode) ? "too short" : "not a regular file");
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) {
        errno = e;
        return TOKMARK_ERR_IO;
    }
    lm_model *m = calloc(1, sizeof *m);
    if (m == NULL) {
        munmap(map, (size_t)st.st_size);
        return TOKMARK_ERR_NOMEM;
    }
    m->image = map;
    m->image_len = (size_t)st.st_size;
    m->mapped = 1;
    int rc = lm_from_image(m, why, why_size);
    if (rc != TOKMARK_OK) {
        lm_free(m);
        return rc;
    }
    *out = m;
    return TOKMARK_OK;
}

int lm_save(const lm_model *m, const char *path) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (tmp == NULL) return TOKMARK_ERR_NOMEM;
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        errno = e;
        return TOKMARK_ERR_IO;
    }
    const unsigned char *p = m->image;
    size_t left = m->image_len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) goto fail;
        p += w;
        left -= (size_t)w;
    }
    if (fchmod(fd, 0644) != 0 || close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) goto fail;
    free(tmp);
    return TOKMARK_OK;
fail:;
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    errno = e;
    return TOKMARK_ERR_IO;
}

uint32_t lm_order(const lm_model *m) { return m->order; }
uint32_t lm_vocab_size(const lm_model *m) { return m->vocab; }
int32_t lm_boundary(const lm_model *m) { return m->boundary; }
const char *lm_tokenizer_name(const lm_model *m) { return m->tokenizer; }

void lm_get_info(const lm_model *m, lm_info *info) {
    memset(info, 0, sizeof *info);
    info->order = m->order;
    info->vocab = m->vocab;
    info->boundary = m->boundary;
    info->documents = m->docs;
    info->tokens = m->tokens;
    for (uint32_t n = 0; n < m->order; n++) {
        info->grams[n] = m->gr[n].n;
        info->contexts[n] = m->lv[n].n;
        for (int c = 0; c < 3; c++) info->discount[n][c] = m->disc[n][c + 1];
    }
    info->file_bytes = m->image_len;
}

/* ------------------------------------------------------------------------ */
/* Queries (SPEC.md §11.3)                                                   */
/* ------------------------------------------------------------------------ */

/* Walk the trie along the history, most recent token first: path[k] is the
 * node of the context of the last k ids; returns the deepest k found. */
static uint32_t lm_walk(const lm_model *m, const int32_t *ctx, size_t n_ctx, uint32_t path[LM_MAX_ORDER]) {
    uint32_t node = 0, k = 1;
    path[0] = 0;
    for (; k < m->order && k <= n_ctx; k++) {
        int32_t t = ctx[n_ctx - k];
        const lm_level *P = &m->lv[k - 1];
        const int32_t *tok = m->lv[k].tok;
        uint32_t lo = P->child[node], hi = P->child[node + 1];
        while (lo < hi) { /* first child with tok >= t */
            uint32_t mid = lo + (hi - lo) / 2;
            if (tok[mid] < t)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == P->child[node + 1] || tok[lo] != t) break;
        node = lo;
        path[k] = node;
    }
    return k - 1;
}

/* The index of follower w of context `node` at level k, or UINT32_MAX. */
static uint32_t lm_find(const lm_model *m, uint32_t k, uint32_t node, int32_t w) {
    const int32_t *tok = m->gr[k].tok;
    uint32_t lo = m->lv[k].fol[node], hi = m->lv[k].fol[node + 1];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (tok[mid] < w)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->lv[k].fol[node + 1] && tok[lo] == w ? lo : UINT32_MAX;
}

double lm_logprob(const lm_model *m, const int32_t *ctx, size_t n_ctx, int32_t w) {
    if (w < 0 || (uint32_t)w >= m->vocab) return -INFINITY;
    uint32_t path[LM_MAX_ORDER];
    uint32_t L = lm_walk(m, ctx, n_ctx, path);
    double p = m->p1[w];
    for (uint32_t k = 1; k <= L; k++) {
        const lm_level *lv = &m->lv[k];
        uint32_t i = lm_find(m, k, path[k], w);
        double alpha = 0.0;
        if (i != UINT32_MAX) {
            uint32_t a = m->gr[k].cnt[i];
            alpha = ((double)a - lm_disc(m->disc[k], a)) * lv->inv_total[path[k]];
        }
        p = alpha + lv->gamma[path[k]] * p;
    }
    return log(p);
}

void lm_logits(const lm_model *m, const int32_t *ctx, size_t n_ctx, float *logits) {
    uint32_t path[LM_MAX_ORDER];
    uint32_t L = lm_walk(m, ctx, n_ctx, path), V = m->vocab;
    /* Tokens seen after none of the contexts: p = (γ_L ··· γ_1) p1(w). */
    double S = 1.0;
    for (uint32_t k = 1; k <= L; k++) S *= m->lv[k].gamma[path[k]];
    double logS = log(S);
    const double *lp1 = m->logp1;
    for (uint32_t w = 0; w < V; w++) logits[w] = (float)(logS + lp1[w]);
    if (L == 0) return;
    /* The others: followers of the shortest context, a superset of those of
     * every longer one (SPEC §11.1); walk all lists in step, by token id. */
    uint32_t pos[LM_MAX_ORDER], end[LM_MAX_ORDER];
    for (uint32_t k = 1; k <= L; k++) {
        pos[k] = m->lv[k].fol[path[k]];
        end[k] = m->lv[k].fol[path[k] + 1];
    }
    const int32_t *tok1 = m->gr[1].tok;
    for (uint32_t i = pos[1]; i < end[1]; i++) {
        int32_t w = tok1[i];
        double p = m->p1[w];
        for (uint32_t k = 1; k <= L; k++) {
            double alpha = 0.0;
            if (pos[k] < end[k] && m->gr[k].tok[pos[k]] == w) {
                uint32_t a = m->gr[k].cnt[pos[k]];
                alpha = ((double)a - lm_disc(m->disc[k], a)) * m->lv[k].inv_total[path[k]];
                pos[k]++;
            }
            p = alpha + m->lv[k].gamma[path[k]] * p;
        }
        logits[w] = (float)log(p);
    }
}

/* ------------------------------------------------------------------------ */
/* Training (SPEC.md §11.1–§11.2)                                            */
/* ------------------------------------------------------------------------ */

/* An n-gram in key order: the context from the most recent token back to the
 * oldest, then the predicted token; unused slots 0.  Sorting keys sorts the
 * contexts as the trie stores them. */
typedef struct lm_gram {
    int32_t key[LM_MAX_ORDER];
    uint32_t c;
} lm_gram;

typedef struct lm_gvec {
    lm_gram *v;
    size_t n, cap;
} lm_gvec;

struct lm_builder {
    uint32_t order, vocab;
    int32_t boundary;
    char tokenizer[LM_TOKENIZER_MAX];
    int32_t *seq; /* the documents, each as B t1 .. tm E */
    size_t n, cap;
    uint64_t docs, tokens;
};

int lm_builder_new(lm_builder **out, uint32_t order, uint32_t vocab, int32_t boundary, const char *tokenizer) {
    *out = NULL;
    if (order < 1 || order > LM_MAX_ORDER || vocab < 2 || vocab > INT32_MAX || boundary < 0 ||
        (uint32_t)boundary >= vocab || (tokenizer != NULL && strlen(tokenizer) >= LM_TOKENIZER_MAX))
        return TOKMARK_ERR_INVALID;
    lm_builder *b = calloc(1, sizeof *b);
    if (b == NULL) return TOKMARK_ERR_NOMEM;
    b->order = order;
    b->vocab = vocab;
    b->boundary = boundary;
    if (tokenizer != NULL) memcpy(b->tokenizer, tokenizer, strlen(tokenizer) + 1);
    *out = b;
    return TOKMARK_OK;
}

void lm_builder_free(lm_builder *b) {
    if (b == NULL) return;
    free(b->seq);
    free(b);
}

int lm_builder_add(lm_builder *b, const int32_t *ids, size_t n) {
    if (n == 0) return TOKMARK_OK;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= b->vocab || ids[i] == b->boundary) return TOKMARK_ERR_INVALID;
    if (n > (size_t)UINT32_MAX - 2 - b->n) return TOKMARK_ERR_INVALID; /* positions are 32-bit counts */
    if (b->n + n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->n + n + 2) cap *= 2;
        int32_t *s = realloc(b->seq, cap * sizeof *s);
        if (s == NULL) return TOKMARK_ERR_NOMEM;
        b->seq = s;
        b->cap = cap;
    }
    b->seq[b->n++] = b->boundary;
    memcpy(b->seq + b->n, ids, n * sizeof *ids);
    b->n += n;
    b->seq[b->n++] = b->boundary;
    b->docs++;
    b->tokens += n;
    return TOKMARK_OK;
}

static int gvec_push(lm_gvec *g, const lm_gram *x) {
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 1024;
        lm_gram *v = realloc(g->v, cap * sizeof *v);
        if (v == NULL) return -1;
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n++] = *x;
    return 0;
}

static int gram_cmp(const void *a, const void *b) {
    const int32_t *x = ((const lm_gram *)a)->key, *y = ((const lm_gram *)b)->key;
    for (int i = 0; i < LM_MAX_ORDER; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

/* Sort and merge equal keys, summing their counts. */
static void gvec_sort_sum(lm_gvec *g) {
    if (g->n == 0) return;
    qsort(g->v, g->n, sizeof *g->v, gram_cmp);
    size_t w = 0;
    for (size_t i = 1; i < g->n; i++) {
        if (memcmp(g->v[i].key, g->v[w].key, sizeof g->v[w].key) == 0)
            g->v[w].c += g->v[i].c;
        else
            g->v[++w] = g->v[i];
    }
    g->n = w + 1;
}

/* Compare the first k key slots (the context of a gram of order k+1). */
static int ctx_cmp(const lm_gram *a, const lm_gram *b, uint32_t k) {
    for (uint32_t i = 0; i < k; i++)
        if (a->key[i] != b->key[i]) return a->key[i] < b->key[i] ? -1 : 1;
    return 0;
}

int lm_builder_finish(lm_builder *b, lm_model **out) {
    *out = NULL;
    if (b->tokens == 0) return TOKMARK_ERR_INVALID;
    const uint32_t N = b->order;
    const int32_t B = b->boundary;
    lm_gvec g[LM_MAX_ORDER + 1]; /* g[n]: grams of order n (1..N) */
    uint32_t *first[LM_MAX_ORDER]; /* per level k: index in g[k+1] of each context's first gram */
    memset(g, 0, sizeof g);
    memset(first, 0, sizeof first);
    unsigned char *img = NULL;
    lm_model *m = NULL;
    int rc = TOKMARK_ERR_NOMEM;

    /* 1. Every position j ≥ 1 of a padded document s = B t1 .. tm E predicts
     *    s[j] from the up to N-1 ids before it: an N-gram, or (near the start)
     *    a shorter gram beginning with B.  These keep their raw counts. */
    for (size_t d = 0; d < b->n;) {
        size_t end = d + 1;
        while (b->seq[end] != B) end++; /* E: documents hold no boundary inside */
        const int32_t *s = b->seq + d;
        size_t L = end - d + 1;
        for (size_t j = 1; j < L; j++) {
            size_t st = j + 1 >= N ? j + 1 - N : 0;
            uint32_t n = (uint32_t)(j - st + 1);
            lm_gram x;
            memset(&x, 0, sizeof x);
            for (uint32_t i = 0; i + 1 < n; i++) x.key[i] = s[j - 1 - i]; /* most recent first */
            x.key[n - 1] = s[j];
            x.c = 1;
            if (gvec_push(&g[n], &x) != 0) goto out;
        }
        d = end + 1;
    }
    gvec_sort_sum(&g[N]);
    /* 2. Lower orders n < N: a gram beginning with B keeps its raw count (it
     *    cannot be extended to the left); any other gram g gets its
     *    continuation count, the number of distinct ids v with v g seen —
     *    one per distinct (n+1)-gram whose oldest token is dropped. */
    for (uint32_t n = N - 1; n >= 1; n--) {
        for (size_t i = 0; i < g[n + 1].n; i++) {
            lm_gram x = g[n + 1].v[i];
            /* drop the oldest context token, key slot n-1; the predicted id moves up */
            x.key[n - 1] = x.key[n];
            x.key[n] = 0;
            x.c = 1;
            if (gvec_push(&g[n], &x) != 0) goto out;
        }
        gvec_sort_sum(&g[n]);
    }
    /* 3. The trie: level k holds the distinct contexts of the grams of order
     *    k+1, in key order; their followers are contiguous. */
    uint64_t nodes[LM_MAX_ORDER], grams[LM_MAX_ORDER];
    memset(nodes, 0, sizeof nodes);
    memset(grams, 0, sizeof grams);
    for (uint32_t k = 0; k < N; k++) {
        const lm_gvec *G = &g[k + 1];
        grams[k] = G->n;
        first[k] = malloc((G->n + 1) * sizeof *first[k]);
        if (first[k] == NULL) goto out;
        uint64_t c = 0;
        for (size_t i = 0; i < G->n; i++)
            if (i == 0 || ctx_cmp(&G->v[i], &G->v[i - 1], k) != 0) first[k][c++] = (uint32_t)i;
        first[k][c] = (uint32_t)G->n;
        nodes[k] = c;
    }
    if (nodes[0] != 1) { /* the root: every corpus has unigrams */
        rc = TOKMARK_ERR_INVALID;
        goto out;
    }
    lm_sections sec;
    if (lm_layout(N, nodes, grams, &sec) != 0) {
        rc = TOKMARK_ERR_INVALID;
        goto out;
    }
    img = calloc(1, sec.end);
    if (img == NULL) goto out;
    memcpy(img + H_MAGIC, LM_MAGIC, sizeof LM_MAGIC);
    wr32(img + H_VERSION, LM_VERSION);
    wr32(img + H_ORDER, N);
    wr32(img + H_VOCAB, b->vocab);
    wr32(img + H_BOUNDARY, (uint32_t)B);
    wr64(img + H_DOCS, b->docs);
    wr64(img + H_TOKENS, b->tokens);
    memcpy(img + H_TOKENIZER, b->tokenizer, strlen(b->tokenizer));
    for (uint32_t k = 0; k < N; k++) {
        wr64(img + H_NODES + 8 * k, nodes[k]);
        wr64(img + H_GRAMS + 8 * k, grams[k]);
    }
    for (uint32_t k = 0; k < N; k++) {
        const lm_gvec *G = &g[k + 1];
        for (uint64_t i = 0; i < nodes[k]; i++) {
            if (k >= 1) wr32(img + sec.tok[k] + 4 * i, (uint32_t)G->v[first[k][i]].key[k - 1]); /* oldest */
            wr32(img + sec.fol[k] + 4 * i, first[k][i]);
        }
        wr32(img + sec.fol[k] + 4 * nodes[k], (uint32_t)G->n);
        for (size_t i = 0; i < G->n; i++) {
            wr32(img + sec.gtok[k] + 4 * i, (uint32_t)G->v[i].key[k]);
            wr32(img + sec.gcnt[k] + 4 * i, G->v[i].c);
        }
        if (k + 1 < N) {
            /* children: the contexts of level k+1 whose newest k ids are this
             * context; both levels are in key order, so one merge pass */
            const lm_gvec *C = &g[k + 2];
            uint64_t p = 0;
            wr32(img + sec.child[k], 0);
            for (uint64_t j = 0; j < nodes[k + 1]; j++) {
                const lm_gram *cj = &C->v[first[k + 1][j]];
                while (p < nodes[k] && ctx_cmp(&G->v[first[k][p]], cj, k) < 0) {
                    p++;
                    wr32(img + sec.child[k] + 4 * p, (uint32_t)j);
                }
                if (p == nodes[k] || ctx_cmp(&G->v[first[k][p]], cj, k) != 0) { /* no parent: cannot happen */
                    rc = TOKMARK_ERR_INVALID;
                    goto out;
                }
            }
            while (p < nodes[k]) {
                p++;
                wr32(img + sec.child[k] + 4 * p, (uint32_t)nodes[k + 1]);
            }
        }
    }
    m = calloc(1, sizeof *m);
    if (m == NULL) goto out;
    m->image = img;
    m->image_len = sec.end;
    img = NULL;
    char why[256];
    rc = lm_from_image(m, why, sizeof why);
    if (rc != TOKMARK_OK) {
        if (rc == TOKMARK_ERR_FORMAT) fprintf(stderr, "lm: internal error: %s\n", why);
        lm_free(m);
        m = NULL;
        goto out;
    }
    *out = m;
out:
    for (int n = 0; n <= LM_MAX_ORDER; n++) free(g[n].v);
    for (int k = 0; k < LM_MAX_ORDER; k++) free(first[k]);
    free(img);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Generation: how an inference engine calls the embedder                    */
/* ------------------------------------------------------------------------ */

/* The sampler's random numbers: xoshiro256** seeded through splitmix64. */
typedef struct lm_rng {
    uint64_t s[4];
} lm_rng;

static uint64_t lm_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t lm_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t lm_rng_next(lm_rng *r) {
    uint64_t *s = r->s, res = lm_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lm_rotl(s[3], 45);
    return res;
}
/* Uniform in [0,1) with 53 random bits. */
static double lm_rng_unif(lm_rng *r) { return (double)(lm_rng_next(r) >> 11) * 0x1p-53; }

/* Plain softmax sampling (the control): the first id whose cumulative
 * weight exceeds u·Σ, in id order (full vocabulary) or array order.  w is
 * scratch for the V weights, so exp() runs once per id. */
static int32_t sample_plain_logits(const float *logits, uint32_t V, double u, double *w) {
    float mx = -INFINITY;
    for (uint32_t t = 0; t < V; t++)
        if (logits[t] > mx) mx = logits[t];
    double z = 0.0;
    for (uint32_t t = 0; t < V; t++) z += (w[t] = logits[t] > -INFINITY ? exp((double)logits[t] - (double)mx) : 0.0);
    double target = u * z, acc = 0.0;
    int32_t last = 0;
    for (uint32_t t = 0; t < V; t++) {
        if (w[t] == 0.0) continue;
        acc += w[t];
        last = (int32_t)t;
        if (acc > target) break;
    }
    return last;
}

static int32_t sample_plain_cand(const tokmark_token_data *c, size_t n, double u) {
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (c[i].logit > mx) mx = c[i].logit;
    double z = 0.0;
    for (size_t i = 0; i < n; i++)
        if (c[i].logit > -INFINITY) z += exp((double)c[i].logit - (double)mx);
    double target = u * z, acc = 0.0;
    int32_t last = c[0].id;
    for (size_t i = 0; i < n; i++) {
        if (!(c[i].logit > -INFINITY)) continue;
        acc += exp((double)c[i].logit - (double)mx);
        last = c[i].id;
        if (acc > target) break;
    }
    return last;
}

/* The k largest logits as candidates (a min-heap on logit, ties to the
 * larger id so the choice is deterministic), then sorted best first. */
static int cand_less(const tokmark_token_data *a, const tokmark_token_data *b) {
    return a->logit < b->logit || (a->logit == b->logit && a->id > b->id);
}
static void heap_down(tokmark_token_data *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        if (l < n && cand_less(&h[l], &h[s])) s = l;
        if (r < n && cand_less(&h[r], &h[s])) s = r;
        if (s == i) return;
        tokmark_token_data t = h[i];
        h[i] = h[s];
        h[s] = t;
        i = s;
    }
}
size_t lm_top_k(const float *logits, uint32_t V, tokmark_token_data *h, size_t k) {
    size_t n = 0;
    for (uint32_t t = 0; t < V; t++) {
        if (!(logits[t] > -INFINITY)) continue;
        tokmark_token_data x = {(int32_t)t, logits[t], 0.0f};
        if (n < k) {
            h[n++] = x;
            if (n == k)
                for (size_t i = k / 2; i-- > 0;) heap_down(h, k, i);
        } else if (cand_less(&h[0], &x)) {
            h[0] = x;
            heap_down(h, k, 0);
        }
    }
    if (n < k)
        for (size_t i = n / 2; i-- > 0;) heap_down(h, n, i);
    for (size_t m = n; m > 1; m--) { /* heap sort: smallest to the end, so best first */
        tokmark_token_data t = h[0];
        h[0] = h[m - 1];
        h[m - 1] = t;
        heap_down(h, m - 1, 0);
    }
    return n;
}

int lm_generate(const lm_model *m, tokmark_embedder *e, const int32_t *prompt, size_t n_prompt,
                const lm_gen_config *cfg, int32_t *out, size_t *n_out) {
    *n_out = 0;
    const uint32_t V = m->vocab;
    if (!(cfg->temperature > 0.0) || !isfinite(cfg->temperature) || cfg->top_k > V) return TOKMARK_ERR_INVALID;
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || (uint32_t)prompt[i] >= V) return TOKMARK_ERR_INVALID;

    /* Everything the loop needs is allocated here, once: the logits (one
     * float per vocabulary entry, as a neural model would return them), the
     * candidate array for top-k, and the history the model conditions on. */
    float *logits = malloc((size_t)V * sizeof *logits);
    double *weights = e == NULL ? malloc((size_t)V * sizeof *weights) : NULL; /* the control's sampler */
    tokmark_token_data *cand = cfg->top_k > 0 ? malloc(cfg->top_k * sizeof *cand) : NULL;
    size_t hist_cap = 1 + n_prompt + cfg->max_tokens;
    int32_t *hist = malloc(hist_cap * sizeof *hist);
    if (logits == NULL || hist == NULL || (cfg->top_k > 0 && cand == NULL) || (e == NULL && weights == NULL)) {
        free(logits);
        free(weights);
        free(cand);
        free(hist);
        return TOKMARK_ERR_NOMEM;
    }
    /* The model's history starts with the boundary token (start of a
     * document), then the prompt. */
    size_t nh = 0;
    hist[nh++] = m->boundary;
    if (n_prompt > 0) memcpy(hist + nh, prompt, n_prompt * sizeof *prompt);
    nh += n_prompt;

    /* 1. The embedder learns the prompt: its tokens are context for the
     *    first watermarked tokens but are not themselves generated. */
    if (e != NULL) tokmark_embedder_prompt(e, prompt, n_prompt);

    lm_rng rng;
    uint64_t sm = cfg->seed;
    for (int i = 0; i < 4; i++) rng.s[i] = lm_splitmix64(&sm);
    size_t n = 0;
    while (n < cfg->max_tokens) {
        /* 2. The model: log-probabilities over the whole vocabulary. */
        lm_logits(m, hist, nh, logits);
        /* 3. The engine's own logit processing, before the watermark:
         *    temperature, banned ids, end of text. */
        if (cfg->temperature != 1.0) {
            float inv = (float)(1.0 / cfg->temperature);
            for (uint32_t t = 0; t < V; t++) logits[t] *= inv;
        }
        if (cfg->banned != NULL)
            for (uint32_t t = 0; t < V; t++)
                if (cfg->banned[t]) logits[t] = -INFINITY;
        if (!cfg->stop_at_boundary) logits[m->boundary] = -INFINITY;
        /* 4. Choose the token.  One uniform number per step, whichever path
         *    is taken, so that a seed fixes the whole sequence.  With the
         *    embedder, tokmark chooses: KGW samples from the green-biased
         *    softmax, Gumbel and SynthID make their keyed choice (they are
         *    distortion-free: over keys, the choice is distributed as the
         *    softmax).  Without it, plain softmax sampling. */
        double u = lm_rng_unif(&rng);
        int32_t t;
        if (cfg->top_k > 0) {
            size_t k = lm_top_k(logits, V, cand, cfg->top_k);
            if (k == 0) break;
            t = e != NULL ? tokmark_embedder_sample(e, cand, k, u) : sample_plain_cand(cand, k, u);
        } else {
            t = e != NULL ? tokmark_embedder_sample_logits(e, logits, u) : sample_plain_logits(logits, V, u, weights);
        }
        if (cfg->stop_at_boundary && t == m->boundary) break;
        /* 5. Tell the embedder which token was taken (it becomes the newest
         *    context), and extend the model's history. */
        if (e != NULL) tokmark_embedder_accept(e, t);
        out[n++] = t;
        hist[nh++] = t;
    }
    *n_out = n;
    free(logits);
    free(weights);
    free(cand);
    free(hist);
    return TOKMARK_OK;
}
