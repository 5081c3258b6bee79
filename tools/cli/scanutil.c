/* scanutil.c — windows, context fingerprints and filters of `tokmark scan`
 * (SPEC.md §12). */
#include "scanutil.h"

#include <sodium.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LN10 2.30258509299404568402

/* ---- statistics of a set of trace values ------------------------------ */

double tms_ln_p(const tokmark_params *pp, tokmark_score_kind kind, uint64_t n, double sum, double *statistic) {
    double st = 0.0, lnp = 0.0;
    if (n > 0) switch (pp->scheme) {
        case TOKMARK_SCHEME_KGW:
            st = sum;
            lnp = tokmark_ln_sf_binomial((uint64_t)llround(sum), n, tokmark_params_gamma(pp));
            break;
        case TOKMARK_SCHEME_GUMBEL:
            st = sum;
            lnp = tokmark_ln_sf_gamma(sum, n);
            break;
        case TOKMARK_SCHEME_SYNTHID:
            if (kind == TOKMARK_SCORE_WEIGHTED) {
                double W = 0.0;
                for (uint32_t l = 0; l < pp->layers; l++) W += pp->weights[l];
                st = sum / ((double)n * W);
                lnp = tokmark_ln_sf_weighted((uint64_t)llround(sum), n, pp->weights, pp->layers);
            } else {
                st = sum / ((double)n * pp->layers);
                lnp = tokmark_ln_sf_binomial((uint64_t)llround(sum), n * pp->layers, 0.5);
            }
            break;
        }
    if (statistic != NULL) *statistic = st;
    return lnp;
}

double tms_bonferroni(double log10_p, double tests) {
    double v = log10_p + log10(tests > 1.0 ? tests : 1.0);
    return v < 0.0 ? v : 0.0;
}

void tms_best_window(const tokmark_trace *tr, size_t n, const tokmark_params *pp, tokmark_score_kind kind,
                     uint32_t wmin, tms_window *out) {
    memset(out, 0, sizeof *out);
    out->log10_p = 0.0;
    if (wmin < 2) wmin = 2;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += tr[i].scored != 0;
    if (m < wmin) return;
    uint64_t *pos = malloc(m * sizeof *pos);
    double *pre = malloc((m + 1) * sizeof *pre);
    if (pos == NULL || pre == NULL) {
        free(pos);
        free(pre);
        return;
    }
    size_t j = 0;
    pre[0] = 0.0;
    for (size_t i = 0; i < n; i++)
        if (tr[i].scored) {
            pos[j] = i;
            pre[j + 1] = pre[j] + tr[i].value;
            j++;
        }
    for (size_t W = wmin; W <= m; W *= 2) {
        /* windows of one size share a null distribution whose tail falls as
         * the sum grows: the window with the largest sum (the first of
         * equals) has the smallest p of its size, so one p per size */
        size_t bs = 0;
        double bsum = -1.0;
        for (size_t s = 0; s + W <= m; s += W / 2) {
            double sum = pre[s + W] - pre[s];
            out->tried++;
            if (sum > bsum) {
                bsum = sum;
                bs = s;
            }
        }
        double st, l10 = tms_ln_p(pp, kind, W, bsum, &st) / LN10;
        if (!out->found || l10 < out->log10_p) {
            out->found = 1;
            out->log10_p = l10;
            out->statistic = st;
            out->scored = W;
            out->first = pos[bs];
            out->last = pos[bs + W - 1];
        }
        if (W > m / 2) break;
    }
    free(pos);
    free(pre);
}

/* ---- context fingerprints --------------------------------------------- */

static const uint64_t CTX_M[TOKMARK_MAX_CONTEXT] = {
    0x9E3779B97F4A7C15ull, 0xC2B2AE3D27D4EB4Full, 0x165667B19E3779F9ull, 0xD6E8FEB86659FD93ull,
    0xFF51AFD7ED558CCDull, 0xC4CEB9FE1A85EC53ull, 0x87C37B91114253D5ull, 0x4CF5AD432745937Full,
    0xA0761D6478BD642Full, 0xE7037ED1A0B428DBull, 0x8EBC6AF09C88C6E3ull, 0x589965CC75374CC3ull,
    0x1D8E4E27C47D124Full, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 0x2545F4914F6CDD1Dull};

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t tms_context_fp(const int32_t *ctx, uint32_t c) {
    uint64_t f = 0x243F6A8885A308D3ull ^ ((uint64_t)c * 0x100 + 0x0F);
    for (uint32_t i = 0; i < c && i < TOKMARK_MAX_CONTEXT; i++) f += ((uint64_t)(uint32_t)ctx[i] + 1) * CTX_M[i];
    f = mix64(f);
    return f ? f : 1;
}

/* ---- sets -------------------------------------------------------------- */

int tms_set_init(tms_set *s, size_t expect) {
    size_t n = 64;
    while (n < expect * 2) n *= 2;
    s->slot = calloc(n, sizeof *s->slot);
    s->mask = n - 1;
    s->count = 0;
    return s->slot ? 0 : -1;
}

static void set_put(uint64_t *slot, size_t mask, uint64_t f) {
    size_t i = (size_t)f & mask;
    while (slot[i] != 0) i = (i + 1) & mask;
    slot[i] = f;
}

int tms_set_add(tms_set *s, uint64_t f) {
    size_t i = (size_t)f & s->mask;
    while (s->slot[i] != 0) {
        if (s->slot[i] == f) return 0;
        i = (i + 1) & s->mask;
    }
    if ((s->count + 1) * 4 > (s->mask + 1) * 3) {
        size_t n = (s->mask + 1) * 2;
        uint64_t *t = calloc(n, sizeof *t);
        if (t == NULL) return -1;
        for (size_t k = 0; k <= s->mask; k++)
            if (s->slot[k]) set_put(t, n - 1, s->slot[k]);
        free(s->slot);
        s->slot = t;
        s->mask = n - 1;
        i = (size_t)f & s->mask;
        while (s->slot[i] != 0) i = (i + 1) & s->mask;
    }
    s->slot[i] = f;
    s->count++;
    return 1;
}

int tms_set_has(const tms_set *s, uint64_t f) {
    size_t i = (size_t)f & s->mask;
    while (s->slot[i] != 0) {
        if (s->slot[i] == f) return 1;
        i = (i + 1) & s->mask;
    }
    return 0;
}

void tms_set_clear(tms_set *s) {
    if (s->count == 0) return;
    memset(s->slot, 0, (s->mask + 1) * sizeof *s->slot);
    s->count = 0;
}

void tms_set_free(tms_set *s) {
    free(s->slot);
    s->slot = NULL;
    s->mask = s->count = 0;
}

/* ---- filters ------------------------------------------------------------ */

void tms_filter_init(tms_filter *f) { memset(f, 0, sizeof *f); }

int tms_filter_add_width(tms_filter *f, uint32_t c) {
    for (uint32_t i = 0; i < f->nwidths; i++)
        if (f->width[i] == c) return (int)i;
    if (f->nwidths == TMS_FILTER_MAX_WIDTHS || c == 0 || c > TOKMARK_MAX_CONTEXT) return -1;
    if (tms_set_init(&f->set[f->nwidths], 1024) != 0) return -1;
    f->width[f->nwidths] = c;
    return (int)f->nwidths++;
}

int tms_filter_add_tokens(tms_filter *f, const int32_t *ids, size_t n) {
    for (uint32_t w = 0; w < f->nwidths; w++) {
        uint32_t c = f->width[w];
        for (size_t i = 0; i + c <= n; i++)
            if (tms_set_add(&f->set[w], tms_context_fp(ids + i, c)) < 0) return TOKMARK_ERR_NOMEM;
    }
    return TOKMARK_OK;
}

int tms_filter_has(const tms_filter *f, uint32_t c, const int32_t *ctx) {
    for (uint32_t w = 0; w < f->nwidths; w++)
        if (f->width[w] == c) return tms_set_has(&f->set[w], tms_context_fp(ctx, c));
    return -1;
}

void tms_filter_free(tms_filter *f) {
    for (uint32_t w = 0; w < f->nwidths; w++) tms_set_free(&f->set[w]);
    f->nwidths = 0;
}

static const char FILTER_MAGIC[8] = {'T', 'M', 'F', 'I', 'L', 'T', '0', '1'};

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Layout (SPEC §12.4): magic, u32 nwidths, 128-byte tokenizer name (NUL
 * padded), then per width u32 c, u32 0, u64 count, count sorted u64
 * fingerprints; last the BLAKE2b-256 of everything before.  Written to a
 * temporary file and renamed. */
int tms_filter_save(const tms_filter *f, const char *path) {
    size_t total = 8 + 4 + TOKMARK_TOKENIZER_MAX;
    for (uint32_t w = 0; w < f->nwidths; w++) total += 16 + 8 * f->set[w].count;
    total += 32;
    uint8_t *buf = malloc(total);
    if (buf == NULL) return TOKMARK_ERR_NOMEM;
    size_t o = 0;
    memcpy(buf, FILTER_MAGIC, 8);
    o = 8;
    put_le(buf + o, f->nwidths, 4);
    o += 4;
    memset(buf + o, 0, TOKMARK_TOKENIZER_MAX);
    memcpy(buf + o, f->tokenizer, strnlen(f->tokenizer, TOKMARK_TOKENIZER_MAX - 1));
    o += TOKMARK_TOKENIZER_MAX;
    for (uint32_t w = 0; w < f->nwidths; w++) {
        put_le(buf + o, f->width[w], 4);
        put_le(buf + o + 4, 0, 4);
        put_le(buf + o + 8, f->set[w].count, 8);
        o += 16;
        uint64_t *v = (uint64_t *)malloc((f->set[w].count + 1) * sizeof *v);
        if (v == NULL) {
            free(buf);
            return TOKMARK_ERR_NOMEM;
        }
        size_t k = 0;
        for (size_t i = 0; i <= f->set[w].mask; i++)
            if (f->set[w].slot[i]) v[k++] = f->set[w].slot[i];
        qsort(v, k, sizeof *v, cmp_u64);
        for (size_t i = 0; i < k; i++, o += 8) put_le(buf + o, v[i], 8);
        free(v);
    }
    crypto_generichash(buf + o, 32, buf, o, NULL, 0);
    o += 32;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (tmp == NULL) {
        free(buf);
        return TOKMARK_ERR_NOMEM;
    }
    snprintf(tmp, plen + 16, "%s.tmp%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "wb");
    int rc = TOKMARK_OK;
    if (fp == NULL) rc = TOKMARK_ERR_IO;
    else {
        if (fwrite(buf, 1, o, fp) != o) rc = TOKMARK_ERR_IO;
        if (fclose(fp) != 0) rc = TOKMARK_ERR_IO;
        if (rc == TOKMARK_OK && rename(tmp, path) != 0) rc = TOKMARK_ERR_IO;
        if (rc != TOKMARK_OK) {
            int e = errno;
            unlink(tmp);
            errno = e;
        }
    }
    free(tmp);
    free(buf);
    return rc;
}

int tms_filter_load(tms_filter *f, const char *path) {
    tms_filter_init(f);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) return TOKMARK_ERR_IO;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *q = realloc(buf, cap);
            if (q == NULL) {
                free(buf);
                fclose(fp);
                return TOKMARK_ERR_NOMEM;
            }
            buf = q;
        }
        size_t k = fread(buf + len, 1, cap - len, fp);
        len += k;
        if (k == 0) break;
    }
    int err = ferror(fp);
    fclose(fp);
    int rc = TOKMARK_OK;
    uint8_t sum[32];
    if (err) rc = TOKMARK_ERR_IO;
    else if (len < 8 + 4 + TOKMARK_TOKENIZER_MAX + 32 || memcmp(buf, FILTER_MAGIC, 8) != 0) rc = TOKMARK_ERR_FORMAT;
    else {
        crypto_generichash(sum, 32, buf, len - 32, NULL, 0);
        if (memcmp(sum, buf + len - 32, 32) != 0) rc = TOKMARK_ERR_FORMAT;
    }
    size_t o = 8, end = len - 32;
    uint32_t nw = rc == TOKMARK_OK ? (uint32_t)get_le(buf + o, 4) : 0;
    if (rc == TOKMARK_OK && nw > TMS_FILTER_MAX_WIDTHS) rc = TOKMARK_ERR_FORMAT;
    if (rc == TOKMARK_OK) {
        o += 4;
        memcpy(f->tokenizer, buf + o, TOKMARK_TOKENIZER_MAX);
        f->tokenizer[TOKMARK_TOKENIZER_MAX - 1] = '\0';
        o += TOKMARK_TOKENIZER_MAX;
    }
    for (uint32_t w = 0; w < nw && rc == TOKMARK_OK; w++) {
        if (end - o < 16) { rc = TOKMARK_ERR_FORMAT; break; }
        uint32_t c = (uint32_t)get_le(buf + o, 4);
        uint64_t n = get_le(buf + o + 8, 8);
        o += 16;
        if (n > (end - o) / 8) { rc = TOKMARK_ERR_FORMAT; break; }
        int idx = tms_filter_add_width(f, c);
        if (idx < 0 || (uint32_t)idx != w) { rc = TOKMARK_ERR_FORMAT; break; }
        tms_set_free(&f->set[w]);
        if (tms_set_init(&f->set[w], (size_t)n) != 0) { rc = TOKMARK_ERR_NOMEM; break; }
        for (uint64_t i = 0; i < n; i++, o += 8) {
            uint64_t v = get_le(buf + o, 8);
            if (v == 0 || tms_set_add(&f->set[w], v) != 1) { rc = TOKMARK_ERR_FORMAT; break; }
        }
    }
    if (rc == TOKMARK_OK && o != end) rc = TOKMARK_ERR_FORMAT;
    free(buf);
    if (rc != TOKMARK_OK) tms_filter_free(f);
    return rc;
}
