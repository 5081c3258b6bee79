/* bpe.c — byte-level BPE merging by minimum rank (SPEC.md §9.4).
 *
 * Both paths below compute exactly what tiktoken's _byte_pair_merge does:
 * repeatedly merge the adjacent pair of parts whose concatenation has the
 * smallest rank, the leftmost such pair on ties, until no adjacent pair is a
 * token.  Short pieces use a linear scan per merge (tiktoken's own method,
 * fastest for a handful of parts); longer pieces use a binary min-heap keyed
 * on (rank, position) over a doubly linked list of parts, so that a piece of
 * n bytes costs O(n log n) whatever its content. */
#include "tok/tok.h"

#include <stdlib.h>
#include <string.h>

#define TM_BPE_LINEAR_MAX 64 /* pieces up to this many bytes use the linear scan */

void tm_bpe_scratch_free(tm_bpe_scratch *s) {
    free(s->buf);
    s->buf = NULL;
    s->size = 0;
}

static int scratch_reserve(tm_bpe_scratch *s, size_t n) {
    if (n <= s->size) return TOKMARK_OK;
    size_t want = s->size * 2 > n ? s->size * 2 : n;
    if (want > SIZE_MAX / (7 * sizeof(uint32_t))) return TOKMARK_ERR_NOMEM;
    uint64_t *b = (uint64_t *)malloc(want * 7 * sizeof(uint32_t));
    if (b == NULL) {
        /* retry with exactly what is needed */
        want = n;
        b = (uint64_t *)malloc(want * 7 * sizeof(uint32_t));
        if (b == NULL) return TOKMARK_ERR_NOMEM;
    }
    free(s->buf);
    s->buf = b;
    s->size = want;
    return TOKMARK_OK;
}

/* The rank of the two bytes p[0], p[1]. */
static inline uint32_t pair_rank(const tokmark_tokenizer *t, const uint8_t *p) {
    return t->pair_rank != NULL ? t->pair_rank[p[0] | (uint32_t)p[1] << 8] : tm_tok_rank(t, p, 2);
}

/* ---- short pieces: linear scan, as tiktoken ----
 * pr[i] is the rank of part i (its bytes are a token: a single byte, or the
 * pair whose merge made it, whose rank was the minimum), so the parts are
 * emitted without looking them up again. */
static void bpe_linear(const tokmark_tokenizer *t, const uint8_t *p, size_t n, tm_bpe_scratch *s, tm_tok_out *o) {
    uint32_t pos[TM_BPE_LINEAR_MAX + 1];
    uint32_t rk[TM_BPE_LINEAR_MAX + 1];
    uint32_t pr[TM_BPE_LINEAR_MAX + 1];
    size_t m = n;
    for (size_t i = 0; i <= n; i++) pos[i] = (uint32_t)i;
    for (size_t i = 0; i < n; i++) pr[i] = t->byte_rank[p[i]];
    for (size_t i = 0; i + 1 < n; i++) rk[i] = pair_rank(t, p + i);
    rk[n - 1] = TM_NO_RANK;
    for (;;) {
        uint32_t best = TM_NO_RANK;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (rk[i] < best) {
                best = rk[i];
                bi = i;
            }
        if (best == TM_NO_RANK) break;
        s->merges++;
        /* remove part bi+1 */
        memmove(pos + bi + 1, pos + bi + 2, (m - bi - 1) * sizeof pos[0]); /* includes the sentinel */
        memmove(rk + bi + 1, rk + bi + 2, (m - bi - 2) * sizeof rk[0]);
        memmove(pr + bi + 1, pr + bi + 2, (m - bi - 2) * sizeof pr[0]);
        pr[bi] = best;
        m--;
        rk[bi] = bi + 1 < m ? tm_tok_rank(t, p + pos[bi], pos[bi + 2] - pos[bi]) : TM_NO_RANK;
        if (bi > 0) rk[bi - 1] = tm_tok_rank(t, p + pos[bi - 1], pos[bi + 1] - pos[bi - 1]);
    }
    for (size_t i = 0; i < m; i++) tm_tok_emit(o, pr[i]);
}

/* ---- long pieces: 4-ary min-heap of (rank << 32 | position) keys ----
 * Keys sit in the heap itself (a node's four children share a cache line) and
 * entries are never updated in place: a changed pair is pushed again and the
 * old entry is recognised as stale when popped (its rank differs from the
 * pair's current rank; the bytes at a position only grow, so a position never
 * gets an earlier rank back).  When the heap would outgrow 2n entries it is
 * compacted (stale entries dropped; at most n are live) and rebuilt, so
 * memory stays at 28 bytes per input byte and time at O(n log n). */
static inline void h4_up(uint64_t *h, size_t k) {
    uint64_t x = h[k];
    while (k > 0) {
        size_t p = (k - 1) / 4;
        if (h[p] <= x) break;
        h[k] = h[p];
        k = p;
    }
    h[k] = x;
}

static inline void h4_down(uint64_t *h, size_t len, size_t k) {
    uint64_t x = h[k];
    for (;;) {
        size_t c = 4 * k + 1;
        if (c >= len) break;
        size_t e = c + 4 < len ? c + 4 : len, m = c;
        for (size_t j = c + 1; j < e; j++)
            if (h[j] < h[m]) m = j;
        if (h[m] >= x) break;
        h[k] = h[m];
        k = m;
    }
    h[k] = x;
}

static size_t h4_compact(uint64_t *h, size_t len, const uint32_t *rk) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        if (rk[(uint32_t)h[i]] == (uint32_t)(h[i] >> 32)) h[o++] = h[i];
    for (size_t k = o / 4 + 1; k-- > 0;)
        if (k < o) h4_down(h, o, k);
    return o;
}

static int bpe_heap_encode(const tokmark_tokenizer *t, const uint8_t *p, size_t n, tm_bpe_scratch *s,
                           tm_tok_out *o) {
    int rc = scratch_reserve(s, n);
    if (rc != TOKMARK_OK) return rc;
    uint64_t *h = s->buf;                     /* 2n entries, first: 8-byte aligned */
    uint32_t *nxt = (uint32_t *)(void *)(s->buf + 2 * s->size), *prv = nxt + s->size, *rk = prv + s->size;
    const size_t hcap = 2 * s->size;
    const uint32_t N = (uint32_t)n;
    size_t len = 0;
    for (uint32_t i = 0; i < N; i++) {
        nxt[i] = i + 1;
        prv[i] = i == 0 ? TM_NO_RANK : i - 1;
        rk[i] = i + 1 < N ? pair_rank(t, p + i) : TM_NO_RANK;
        if (rk[i] != TM_NO_RANK) h[len++] = (uint64_t)rk[i] << 32 | i;
    }
    for (size_t k = len / 4 + 1; k-- > 0;)
        if (k < len) h4_down(h, len, k);
    while (len > 0) {
        uint64_t top = h[0];
        h[0] = h[--len];
        if (len > 0) h4_down(h, len, 0);
        uint32_t a = (uint32_t)top;
        if (rk[a] != (uint32_t)(top >> 32)) continue; /* stale */
        uint32_t b = nxt[a];
        uint32_t c = nxt[b];
        s->merges++;
        rk[b] = TM_NO_RANK; /* part b joins part a; its entries go stale */
        nxt[a] = c;
        if (c < N) prv[c] = a;
        if (len + 2 > hcap) len = h4_compact(h, len, rk);
        rk[a] = c < N ? tm_tok_rank(t, p + a, nxt[c] - a) : TM_NO_RANK;
        if (rk[a] != TM_NO_RANK) {
            h[len] = (uint64_t)rk[a] << 32 | a;
            h4_up(h, len++);
        }
        uint32_t l = prv[a];
        if (l != TM_NO_RANK) {
            rk[l] = tm_tok_rank(t, p + l, c - l);
            if (rk[l] != TM_NO_RANK) {
                h[len] = (uint64_t)rk[l] << 32 | l;
                h4_up(h, len++);
            }
        }
    }
    for (uint32_t i = 0; i < N; i = nxt[i]) tm_tok_emit(o, tm_tok_rank(t, p + i, nxt[i] - i));
    return TOKMARK_OK;
}

int tm_bpe_encode(const tokmark_tokenizer *t, const uint8_t *p, size_t n, tm_bpe_scratch *s, tm_tok_out *o) {
    if (n == 1) {
        tm_tok_emit(o, t->byte_rank[p[0]]);
        return TOKMARK_OK;
    }
    if (n <= TM_BPE_LINEAR_MAX) {
        bpe_linear(t, p, n, s, o);
        return TOKMARK_OK;
    }
    if (n >= UINT32_MAX) return TOKMARK_ERR_INVALID;
    return bpe_heap_encode(t, p, n, s, o);
}
