/* evalutil.c — building blocks of the evaluation (see evalutil.h). */
#include "evalutil.h"

#include "scanutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN10 2.30258509299404568402

/* ---- random numbers ---- */

static uint64_t eu_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void eu_rng_seed(eu_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = eu_splitmix(&seed);
}

static uint64_t eu_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t eu_rng_next(eu_rng *r) {
    uint64_t *s = r->s, res = eu_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = eu_rotl(s[3], 45);
    return res;
}

double eu_rng_unif(eu_rng *r) { return (double)(eu_rng_next(r) >> 11) * 0x1p-53; }

uint64_t eu_rng_below(eu_rng *r, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n; /* reject the incomplete last block */
    for (;;) {
        uint64_t x = eu_rng_next(r);
        if (x < lim) return x % n;
    }
}

/* ---- corruption ---- */

size_t eu_corrupt_count(size_t n, double rate) {
    if (!(rate > 0.0)) return 0;
    double k = floor(rate * (double)n + 0.5);
    return k >= (double)n ? n : (size_t)k;
}

/* Selection sampling (Knuth's Algorithm S): is item i (of n, `left` of them
 * still to choose among the `n - i` remaining) chosen?  Exactly k items are
 * chosen in all, every k-subset equally likely. */
static int eu_pick(eu_rng *r, size_t remaining, size_t *left) {
    if (*left == 0) return 0;
    if (eu_rng_below(r, remaining) < *left) {
        (*left)--;
        return 1;
    }
    return 0;
}

size_t eu_corrupt_substitute(const int32_t *ids, size_t n, double rate, const int32_t *pool, size_t npool, eu_rng *r,
                             int32_t *out) {
    size_t left = eu_corrupt_count(n, rate);
    for (size_t i = 0; i < n; i++) {
        out[i] = ids[i];
        if (!eu_pick(r, n - i, &left)) continue;
        /* a pool token different from the original (a few tries: the pool is varied) */
        for (int t = 0; t < 64 && out[i] == ids[i]; t++) out[i] = pool[eu_rng_below(r, npool)];
        if (out[i] == ids[i]) out[i] = ids[i] == 0 ? 1 : ids[i] - 1;
    }
    return n;
}

size_t eu_corrupt_delete(const int32_t *ids, size_t n, double rate, eu_rng *r, int32_t *out) {
    size_t left = eu_corrupt_count(n, rate), m = 0;
    for (size_t i = 0; i < n; i++)
        if (!eu_pick(r, n - i, &left)) out[m++] = ids[i];
    return m;
}

size_t eu_corrupt_insert(const int32_t *ids, size_t n, double rate, const int32_t *pool, size_t npool, eu_rng *r,
                         int32_t *out) {
    size_t k = eu_corrupt_count(n, rate), left = k, total = n + k, j = 0;
    /* choose which k of the n + k output slots hold inserted tokens */
    for (size_t i = 0; i < total; i++) out[i] = eu_pick(r, total - i, &left) ? pool[eu_rng_below(r, npool)] : ids[j++];
    return total;
}

/* ---- divergences ---- */

double eu_kl(const double *p, const double *q, size_t n) {
    double kl = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!(p[i] > 0.0)) continue;
        if (!(q[i] > 0.0)) return INFINITY;
        kl += p[i] * log(p[i] / q[i]);
    }
    return kl > 0.0 ? kl : 0.0; /* rounding can make an exact 0 slightly negative */
}

double eu_tv(const double *p, const double *q, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += fabs(p[i] - q[i]);
    return 0.5 * s;
}

double eu_chi2(const double *count, const double *q, size_t k, double n, size_t *df) {
    double chi = 0.0, eo = 0.0, oo = 0.0;
    size_t cells = 0;
    for (size_t i = 0; i < k; i++) {
        double e = n * q[i];
        if (e >= 5.0) {
            chi += (count[i] - e) * (count[i] - e) / e;
            cells++;
        } else {
            eo += e;
            oo += count[i];
        }
    }
    if (eo >= 5.0) {
        chi += (oo - eo) * (oo - eo) / eo;
        cells++;
    }
    *df = cells > 0 ? cells - 1 : 0;
    return chi;
}

double eu_chi2_sf(double x, double df) {
    if (!(df > 0.0)) return 1.0;
    if (!(x > 0.0)) return 1.0;
    double a = 2.0 / (9.0 * df), z = (cbrt(x / df) - (1.0 - a)) / sqrt(a);
    return 0.5 * erfc(z / sqrt(2.0));
}

double eu_softmax(const float *logits, size_t n, double *p) {
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    if (!(mx > -INFINITY)) {
        for (size_t i = 0; i < n; i++) p[i] = 0.0;
        return -INFINITY;
    }
    double z = 0.0;
    for (size_t i = 0; i < n; i++) z += (p[i] = logits[i] > -INFINITY ? exp((double)logits[i] - (double)mx) : 0.0);
    for (size_t i = 0; i < n; i++) p[i] /= z;
    return (double)mx + log(z);
}

/* ---- power ---- */

size_t eu_tokens_until(const tokmark_trace *trace, size_t n, size_t skip, const tokmark_params *pp,
                       tokmark_score_kind kind, double log10_thr, double *curve) {
    uint64_t scored = 0;
    double sum = 0.0, l10 = 0.0;
    size_t reached = 0;
    for (size_t i = 0; i < n; i++) {
        if (trace[i].scored) {
            scored++;
            sum += trace[i].value;
            l10 = tms_ln_p(pp, kind, scored, sum, NULL) / LN10;
        }
        if (i < skip) continue;
        if (curve != NULL) curve[i - skip] = l10;
        if (reached == 0 && scored > 0 && l10 <= log10_thr) {
            reached = i - skip + 1;
            if (curve == NULL) break;
        }
    }
    return reached;
}

static int eu_dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double eu_median(double *v, size_t n) {
    if (n == 0) return NAN;
    qsort(v, n, sizeof *v, eu_dbl_cmp);
    if (n % 2) return v[n / 2];
    double a = v[n / 2 - 1], b = v[n / 2];
    if (isinf(a) || isinf(b)) return a == b ? a : (isinf(b) ? b : a);
    return 0.5 * (a + b);
}

void eu_clopper_pearson(uint64_t k, uint64_t n, double a, double *lo, double *hi) {
    /* lo: P(X ≥ k | p) = a/2 (increasing in p); hi: P(X ≤ k | p) = a/2, i.e.
     * P(X ≥ k+1 | p) = 1 − a/2.  Bisection on p (P is monotone in p). */
    double target = log(a / 2.0), l, h;
    if (k == 0) {
        *lo = 0.0;
    } else {
        l = 0.0;
        h = 1.0;
        for (int it = 0; it < 200; it++) {
            double m = 0.5 * (l + h);
            if (tokmark_ln_sf_binomial(k, n, m) < target) l = m;
            else h = m;
        }
        *lo = 0.5 * (l + h);
    }
    if (k >= n) {
        *hi = 1.0;
    } else {
        double t2 = log1p(-a / 2.0);
        l = 0.0;
        h = 1.0;
        for (int it = 0; it < 200; it++) {
            double m = 0.5 * (l + h);
            if (tokmark_ln_sf_binomial(k + 1, n, m) < t2) l = m;
            else h = m;
        }
        *hi = 0.5 * (l + h);
    }
}

/* ---- SVG ---- */

static double eu_nice_step(double range) {
    if (!(range > 0.0)) return 1.0;
    double raw = range / 6.0, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * mag;
}

static void eu_svg_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

int eu_svg_plot(const char *path, const char *title, const char *xlabel, const char *ylabel, const eu_series *s,
                size_t ns, double yref, const char *yref_label) {
    return eu_svg_plot_cat(path, title, xlabel, ylabel, s, ns, yref, yref_label, NULL, 0);
}

int eu_svg_plot_cat(const char *path, const char *title, const char *xlabel, const char *ylabel, const eu_series *s,
                    size_t ns, double yref, const char *yref_label, const char *const *xticks, size_t nxticks) {
    static const char *colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    const double W = 760, H = 460, L = 70, R = 200, T = 40, B = 55;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (size_t k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i]) || !isfinite(s[k].x[i])) continue;
            x0 = fmin(x0, s[k].x[i]);
            x1 = fmax(x1, s[k].x[i]);
            y0 = fmin(y0, s[k].y[i]);
            y1 = fmax(y1, s[k].y[i]);
        }
    if (isfinite(yref)) {
        y0 = fmin(y0, yref);
        y1 = fmax(y1, yref);
    }
    if (!(x1 >= x0)) x0 = 0, x1 = 1;
    if (!(y1 >= y0)) y0 = 0, y1 = 1;
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) y1 = y0 + 1;
    double xs = eu_nice_step(x1 - x0), ys = eu_nice_step(y1 - y0);
    if (xticks != NULL && nxticks > 0) { /* categories at x = 0, 1, ..., with a margin */
        xs = 1.0;
        x0 = -0.3;
        x1 = (double)nxticks - 0.7;
    } else {
        x0 = floor(x0 / xs) * xs;
        x1 = ceil(x1 / xs) * xs;
    }
    y0 = floor(y0 / ys) * ys;
    y1 = ceil(y1 / ys) * ys;
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * (W - L - R))
#define PY(y) (H - B - ((y) - y0) / (y1 - y0) * (H - T - B))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">", (L + W - R) / 2);
    eu_svg_text(f, title);
    fputs("</text>\n", f);
    if (xticks != NULL && nxticks > 0) {
        for (size_t i = 0; i < nxticks; i++) {
            double x = (double)i;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", PX(x), PY(y0), PX(x),
                    PY(y1));
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", PX(x), PY(y0) + 16);
            eu_svg_text(f, xticks[i]);
            fputs("</text>\n", f);
        }
    } else {
        for (double x = x0; x <= x1 + 1e-9 * xs; x += xs) {
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", PX(x), PY(y0), PX(x),
                    PY(y1));
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", PX(x), PY(y0) + 16, x);
        }
    }
    for (double y = y0; y <= y1 + 1e-9 * ys; y += ys) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", PX(x0), PY(y), PX(x1), PY(y));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", PX(x0) - 6, PY(y) + 4,
                fabs(y) < 1e-12 * ys ? 0.0 : y);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", PX(x0),
            PY(y1), PX(x1) - PX(x0), PY(y0) - PY(y1));
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (PX(x0) + PX(x1)) / 2, H - 14);
    eu_svg_text(f, xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">", (PY(y0) + PY(y1)) / 2);
    eu_svg_text(f, ylabel);
    fputs("</text>\n", f);
    if (isfinite(yref)) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-dasharray=\"5,4\"/>\n",
                PX(x0), PY(yref), PX(x1), PY(yref));
        if (yref_label != NULL) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">", PX(x1) - 4, PY(yref) - 4);
            eu_svg_text(f, yref_label);
            fputs("</text>\n", f);
        }
    }
    for (size_t k = 0; k < ns; k++) {
        const char *c = colors[k % 10];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s points=\"", c,
                k >= 10 ? " stroke-dasharray=\"6,3\"" : "");
        for (size_t i = 0; i < s[k].n; i++)
            if (isfinite(s[k].y[i]) && isfinite(s[k].x[i])) fprintf(f, "%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
        fputs("\"/>\n", f);
        if (s[k].n <= 12)
            for (size_t i = 0; i < s[k].n; i++)
                if (isfinite(s[k].y[i]) && isfinite(s[k].x[i]))
                    fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(s[k].x[i]), PY(s[k].y[i]), c);
        double ly = T + 10 + 18.0 * (double)k;
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                W - R + 12, ly, W - R + 36, ly, c);
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">", W - R + 42, ly + 4);
        eu_svg_text(f, s[k].name);
        fputs("</text>\n", f);
    }
#undef PX
#undef PY
    fputs("</svg>\n", f);
    return fclose(f) == 0 ? 0 : -1;
}
