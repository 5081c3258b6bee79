/* stats.c — exact upper-tail p-values in natural-log space (SPEC.md §8).
 *
 * Every function returns ln P(X ≥ x) under the null.  Nothing is floored:
 * a p-value of 10^-5000 comes back as -11512.9..., and 0 means p = 1.
 *
 *   binomial  Loader's saddle-point/deviance form of the pmf (stirlerr, bd0),
 *             tail summed from the threshold outwards with a geometric bound
 *             on the remainder; the large side through the small complement.
 *   gamma     Q(n, x) = P(Poisson(x) ≤ n-1), the same machinery.
 *   weighted  Σ_l w_l Bin(n, 1/2): exact lattice Fourier inversion on a
 *             tilted contour while the grid it needs is small, otherwise the
 *             second continuity-corrected Lugannani–Rice approximation.
 *   sidak     ln(1 - (1-p)^k) through log1p/expm1.
 */
#include "stats.h"
#include "tokmark.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define LN_2PI       1.83787706640934548356065947281123527
#define LN_SQRT_2PI  0.918938533204672741780329736405617640
#define LN2          0.693147180559945309417232121458176568
#define PI_D         3.14159265358979323846264338327950288
#define SQRT_HALF_PI 1.25331413731550025120788264240552263 /* sqrt(pi/2) */
#define SQRT1_2      0.707106781186547524400844362104849039

/* Stop summing a tail when the bound on what is left is below 2^-56 of the sum. */
#define TAIL_EPS 0x1p-56
/* Re-anchor the running term on the exact log-pmf every this many terms. */
#define RESYNC_MASK 255u

/* ======================================================================== */
/* §8.1 Building blocks: stirlerr, bd0                                       */
/* ======================================================================== */

/* stirlerr(n) = ln n! - [(n + 1/2) ln n - n + ln sqrt(2 pi)], n = 0..31
 * (mpmath, 40 digits; the n = 0 entry is unused). */
static const double stirlerr_tab[32] = {
    0.0,
    0.0810614667953272582197, 0.0413406959554092940938, 0.0276779256849983391488,
    0.0207906721037650931115, 0.0166446911898211921632, 0.0138761288230707479987,
    0.0118967099458917700951, 0.0104112652619720964975, 0.00925546218271273291773,
    0.00833056343336287125647, 0.00757367548795184079497, 0.00694284010720952986566,
    0.00640899418800420706844, 0.00595137011275884773562, 0.00555473355196280137104,
    0.00520765591960964044072, 0.00490139594843473786072, 0.00462915374933402859243,
    0.00438556024923232426829, 0.00416631969199692245746, 0.00396795421864085961729,
    0.00378761806844443457787, 0.00362296022468309470738, 0.00347202138297876696295,
    0.00333315563672809287581, 0.00320497022805503801118, 0.00308627868260877706326,
    0.00297606398355040882602, 0.00287344936235246638755, 0.00277767492975269360359,
    0.0026880788285311428678,
};

static double stirlerr(uint64_t n) {
    if (n < 32) return stirlerr_tab[n];
    /* Stirling series 1/(12n) - 1/(360n^3) + 1/(1260n^5) - 1/(1680n^7) + 1/(1188n^9);
     * the first omitted term is below 6e-20 for n >= 32. */
    const double x = (double)n, x2 = 1.0 / (x * x);
    return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - (1.0 / 1680 - x2 / 1188) * x2) * x2) * x2) / x;
}

/* A double-double hi + lo. */
typedef struct dd {
    double hi, lo;
} dd;

static dd dd_prod(double a, double b) {
    dd r;
    r.hi = a * b;
    r.lo = fma(a, b, -r.hi);
    return r;
}

/* a - b for a double a and a double-double b. */
static dd dd_sub(double a, dd b) {
    double s = a - b.hi;
    double v = s - a;
    double e = (a - (s - v)) - (b.hi + v); /* two-sum error of a + (-b.hi) */
    e -= b.lo;
    dd r;
    r.hi = s + e;
    r.lo = e - (r.hi - s);
    return r;
}

/* The deviance term bd0(x, M) = x ln(x/M) + M - x >= 0 (Loader 2000), for an
 * integer-valued x >= 0 and M = M.hi + M.lo > 0. */
static double bd0(double x, dd M) {
    const double m = M.hi;
    if (x == 0.0) return m + M.lo;
    if (fabs(x - m) < 0.1 * (x + m)) {
        /* x/M in (0.81, 1.23): x - M.hi is exact (Sterbenz).  With
         * v = (x-M)/(x+M): bd0 = (x-M) v + 2x (v^3/3 + v^5/5 + ...). */
        const double d = (x - m) - M.lo;
        const double v = d / (x + m), v2 = v * v;
        double s = d * v, ej = 2.0 * x * v;
        for (int j = 1; j < 200; j++) {
            ej *= v2;
            const double s1 = s + ej / (double)(2 * j + 1);
            if (s1 == s) break;
            s = s1;
        }
        return s;
    }
    const double r = x / m;
    double lr = (isfinite(r) && r >= DBL_MIN) ? log(r) : log(x) - log(m);
    lr -= M.lo / m; /* ln(x/(hi+lo)) = ln(x/hi) - lo/hi + O(eps^2) */
    return x * lr + (m - x) + M.lo;
}

/* ======================================================================== */
/* §8.2 Binomial                                                             */
/* ======================================================================== */

typedef struct binom {
    uint64_t n;
    double p, lnp, lnq;
    double odds;     /* p / q */
    double odds_inv; /* q / p */
    dd np, nq;       /* n p and n q, double-double */
} binom;

/* ln P(X = k), X ~ Binomial(n, p), 0 < p < 1. */
static double binom_lpmf(const binom *b, uint64_t k) {
    if (k == 0) return (double)b->n * b->lnq;
    if (k == b->n) return (double)b->n * b->lnp;
    const double kd = (double)k, nd = (double)b->n, nk = (double)(b->n - k);
    const double lc = stirlerr(b->n) - stirlerr(k) - stirlerr(b->n - k) - bd0(kd, b->np) -
                      bd0(nk, b->nq);
    return lc - 0.5 * (LN_2PI + log(kd) + log(nk / nd));
}

/* ln sum_{j >= k} P(X = j) for k > n p (terms decrease from the first). */
static double binom_sum_up(const binom *b, uint64_t k) {
    const double l0 = binom_lpmf(b, k);
    double sum = 1.0, t = 1.0;
    uint64_t j = k;
    while (j < b->n) {
        const double r = (double)(b->n - j) / (double)(j + 1) * b->odds; /* f(j+1)/f(j) */
        if (t * r <= TAIL_EPS * sum * (1.0 - r)) break; /* remainder <= t r/(1-r) */
        j++;
        t = ((j - k) & RESYNC_MASK) == 0 ? exp(binom_lpmf(b, j) - l0) : t * r;
        sum += t;
    }
    return l0 + log(sum);
}

/* ln sum_{j < k} P(X = j) for 1 <= k <= n p (terms decrease going down). */
static double binom_sum_down(const binom *b, uint64_t k) {
    uint64_t j = k - 1;
    const double l0 = binom_lpmf(b, j);
    double sum = 1.0, t = 1.0;
    while (j > 0) {
        const double r = (double)j / (double)(b->n - j + 1) * b->odds_inv; /* f(j-1)/f(j) */
        if (t * r <= TAIL_EPS * sum * (1.0 - r)) break;
        j--;
        t = ((k - 1 - j) & RESYNC_MASK) == 0 ? exp(binom_lpmf(b, j) - l0) : t * r;
        sum += t;
    }
    return l0 + log(sum);
}

/* ln(1 - e^x) for x <= 0. */
static double log1mexp(double x) {
    if (x > -LN2) return log(-expm1(x));
    return log1p(-exp(x));
}

double tokmark_ln_sf_binomial(uint64_t k, uint64_t n, double p) {
    if (isnan(p)) return NAN;
    if (k == 0) return 0.0;
    if (k > n) return -INFINITY;
    if (!(p > 0.0)) return -INFINITY; /* X = 0 */
    if (!(p < 1.0)) return 0.0;       /* X = n >= k */
    binom b;
    b.n = n;
    b.p = p;
    b.lnp = log(p);
    b.lnq = log1p(-p);
    const double q = 1.0 - p;
    b.odds = p / q;
    b.odds_inv = q / p;
    b.np = dd_prod((double)n, p);
    b.nq = dd_sub((double)n, b.np);
    double r;
    if ((double)k > b.np.hi)
        r = binom_sum_up(&b, k);
    else
        r = log1mexp(binom_sum_down(&b, k));
    return r + 0.0; /* no -0 */
}

/* ======================================================================== */
/* §8.3 Gamma(n, 1) = Poisson(x) lower tail                                   */
/* ======================================================================== */

/* ln P(Y = j), Y ~ Poisson(lambda). */
static double pois_lpmf(uint64_t j, double lambda) {
    if (j == 0) return -lambda;
    const dd M = {lambda, 0.0};
    return -stirlerr(j) - bd0((double)j, M) - 0.5 * (LN_2PI + log((double)j));
}

double tokmark_ln_sf_gamma(double x, uint64_t n) {
    if (isnan(x)) return NAN;
    if (n == 0) return x <= 0.0 ? 0.0 : -INFINITY;
    if (x <= 0.0) return 0.0;
    if (isinf(x)) return -INFINITY;
    if (x >= (double)n) {
        /* ln sum_{j=0}^{n-1} P(Y = j): from j = n-1 down, ratio j/x < 1 */
        uint64_t j = n - 1;
        const double l0 = pois_lpmf(j, x);
        double sum = 1.0, t = 1.0;
        while (j > 0) {
            const double r = (double)j / x;
            if (t * r <= TAIL_EPS * sum * (1.0 - r)) break;
            j--;
            t = ((n - 1 - j) & RESYNC_MASK) == 0 ? exp(pois_lpmf(j, x) - l0) : t * r;
            sum += t;
        }
        return l0 + log(sum);
    }
    /* x < n: 1 - sum_{j >= n} P(Y = j), ratio x/(j+1) < 1 */
    uint64_t j = n;
    const double l0 = pois_lpmf(j, x);
    double sum = 1.0, t = 1.0;
    for (;;) {
        const double r = x / ((double)j + 1.0);
        if (t * r <= TAIL_EPS * sum * (1.0 - r)) break;
        j++;
        t = ((j - n) & RESYNC_MASK) == 0 ? exp(pois_lpmf(j, x) - l0) : t * r;
        sum += t;
    }
    return log1mexp(l0 + log(sum)) + 0.0;
}

/* ======================================================================== */
/* §8.4 Weighted: X = sum_l w_l B_l, B_l ~ Binomial(n, 1/2)                   */
/* ======================================================================== */

/* Regime constants (SPEC.md §8.4). */
#define WX_NCHEAP   (UINT64_C(1) << 15) /* final grid up to this: always exact */
#define WX_NMAX     (UINT64_C(1) << 21) /* final grid up to this: exact unless certified smooth */
#define WX_NFORCED  (UINT64_C(1) << 23) /* largest grid in the forced-exact test mode */
#define WX_TOL      1e-8                /* accept grid 2N when |I_2N - I_N| <= WX_TOL I_2N */
#define WX_SKIP     110.0               /* skip a point once |Q|^(2n) <= e^-WX_SKIP */
#define WX_SMOOTH   55.0                /* certificate: 2 n S(t) >= WX_SMOOTH off the main peak */

typedef struct wdist {
    size_t m;
    uint32_t wi[TOKMARK_MAX_LAYERS];
    double w[TOKMARK_MAX_LAYERS];
    double W, W2, W4; /* sum of w, w^2, w^4 (reduced weights) */
    double n;         /* tuples */
} wdist;

/* ln cosh(y), y >= 0 */
static double lncosh(double y) {
    if (y < 1.0) {
        const double sh = sinh(0.5 * y);
        return log1p(2.0 * sh * sh);
    }
    return y - LN2 + log1p(exp(-2.0 * y));
}

/* Per tuple, at tilt th >= 0:  h  = K'(th) - W/2   = sum (w/2) tanh(th w/2),
 *                              D  = W - K'(th)     = sum w / (1 + e^{th w}),
 *                              h1 = K''(th)        = sum w^2 rho/(1+rho)^2, rho = e^{-th w}. */
static void wd_eval(const wdist *d, double th, double *h, double *D, double *h1) {
    double sh = 0.0, sD = 0.0, s1 = 0.0;
    for (size_t l = 0; l < d->m; l++) {
        const double w = d->w[l], rho = exp(-th * w), ip = 1.0 / (1.0 + rho);
        sh += 0.5 * w * tanh(0.5 * th * w);
        sD += w * rho * ip;
        s1 += w * w * rho * ip * ip;
    }
    if (h) *h = sh;
    if (D) *D = sD;
    if (h1) *h1 = s1;
}

/* The saddlepoint: th > 0 with h(th) = tau, equivalently D(th) = delta, where
 * tau + delta = W/2, tau > 0, delta > 0.  Newton from a point left of the root;
 * h is concave on th >= 0, so the iterates increase monotonically to it. */
static double wd_solve(const wdist *d, double tau, double delta) {
    double th = tau / (0.25 * d->W2); /* h(th) <= th W2/4 */
    for (size_t l = 0; l < d->m; l++) { /* D(th) >= (w/2) e^{-th w} for each layer */
        const double c = log(d->w[l] / (2.0 * delta)) / d->w[l];
        if (c > th) th = c;
    }
    const int use_tau = tau <= 0.25 * d->W;
    for (int it = 0; it < 1000; it++) {
        double h, D, h1;
        wd_eval(d, th, &h, &D, &h1);
        const double f = use_tau ? tau - h : D - delta; /* > 0 left of the root */
        if (!(f > 0.0) || !(h1 > 0.0)) break;
        const double step = f / h1;
        const double nt = th + step;
        if (!(nt > th) || !isfinite(nt)) break;
        th = nt;
        if (step <= 0x1p-53 * th) break;
    }
    return th;
}

/* n K(th) - th x, the log of the tilting factor, for the point x given as
 * xc = x - T/2 and xd = T - x (T = n W); two algebraically equal forms. */
static double wd_prefactor(const wdist *d, double th, double xc, double xd) {
    double k = 0.0;
    if (th * d->W <= 1.4 * (double)d->m) {
        for (size_t l = 0; l < d->m; l++) k += lncosh(0.5 * th * d->w[l]);
        return d->n * k - th * xc;
    }
    for (size_t l = 0; l < d->m; l++) k += log1p(exp(-th * d->w[l]));
    return th * xd + d->n * k - d->n * (double)d->m * LN2;
}

/* Tables for a grid of N points (N a power of two >= 64): cs[j] = cos(2 pi j / N)
 * and om[j] = 1 - cos(2 pi j / N), j < N; the latter is 2 sin^2(pi j / N) where
 * the cosine exceeds cos(pi/4), so that it keeps its relative accuracy near 0.
 * Computed from the first octant by symmetry. */
static void trig_tables(double *cs, double *om, uint64_t N) {
    const uint64_t mask = N - 1, q = N / 4, h = N / 2;
    for (uint64_t j = 0; j <= q / 2; j++) {
        const double x = 2.0 * PI_D * (double)j / (double)N;
        const double c = cos(x), s = sin(x), hs = sin(0.5 * x);
        const double o = 2.0 * hs * hs;
        cs[j] = c;
        cs[(N - j) & mask] = c;
        cs[q - j] = s;
        cs[q + j] = -s;
        cs[h - j] = -c;
        cs[h + j] = -c;
        cs[3 * q - j] = -s;
        cs[(3 * q + j) & mask] = s;
        om[j] = o;
        om[(N - j) & mask] = o;
    }
    for (uint64_t j = q / 2 + 1; j < N - q / 2; j++) om[j] = 1.0 - cs[j];
}

typedef struct wexact {
    const wdist *d;
    double a[TOKMARK_MAX_LAYERS]; /* rho/(1+rho), rho = e^{-th w}, by decreasing weight */
    uint32_t wi[TOKMARK_MAX_LAYERS];
    double rho1, omth; /* e^{-th}, 1 - e^{-th} */
    uint64_t dist;    /* T - s */
    double *cs, *om;  /* tables of the current grid */
    uint64_t N;
    double skip;      /* e^{-WX_SKIP/n}: skip a point once |1+z|^2 <= skip */
} wexact;

/* Re of the integrand at t = 2 pi k / N, normalised by the tilting factor:
 *   Q(t)^n e^{i t (T-s)} / (1 - e^{-th - i t}),
 *   Q = prod_l (1 + rho_l e^{-i t w_l}) / (1 + rho_l) = prod_l (1 + f_l),
 *   f_l = -a_l (1 - cos t w_l) - i a_l sin t w_l.
 * Q is carried as 1 + z so that ln Q is accurate when Q is near 1 (t near 0),
 * where the n-th power would otherwise amplify its rounding n-fold.  Every
 * |1 + f_l| <= 1, so once a partial product has |1+z|^(2n) <= e^-WX_SKIP the
 * point contributes nothing and is skipped (tested every 8 layers). */
static double wx_point(const wexact *x, uint64_t k) {
    const uint64_t N = x->N;
    const double n = x->d->n;
    double zr = 0.0, zi = 0.0, s, omc;
    const size_t m = x->d->m;
    const uint64_t mask = N - 1, q3 = 3 * (N / 4);
    for (size_t l = 0; l < m; l++) {
        const uint64_t j = (k * x->wi[l]) & mask;
        omc = x->om[j];
        s = x->cs[(j + q3) & mask];
        const double fr = -x->a[l] * omc, fi = -x->a[l] * s;
        const double nr = zr + fr + (zr * fr - zi * fi);
        zi = zi + fi + (zr * fi + zi * fr);
        zr = nr;
        if ((l & 7) == 7 && 1.0 + (2.0 * zr + zr * zr + zi * zi) <= x->skip) return 0.0;
    }
    const double z2 = zr * zr + zi * zi;
    const double y = -(2.0 * zr + z2); /* 1 - |1+z|^2 */
    if (1.0 - y <= x->skip) return 0.0;
    const double lmod = z2 < 0.25 ? 0.5 * log1p(-y) : 0.5 * log((1.0 + zr) * (1.0 + zr) + zi * zi);
    const double mag = exp(n * lmod);
    if (!(mag > 0.0)) return 0.0;
    const double ph = n * atan2(zi, 1.0 + zr);
    const double pr = mag * cos(ph), pi = mag * sin(ph);
    const uint64_t jd = (k * (x->dist & mask)) & mask;
    const double c2 = x->cs[jd], s2 = x->cs[(jd + q3) & mask];
    const double ur = pr * c2 - pi * s2, ui = pi * c2 + pr * s2;
    const double st = x->cs[(k + q3) & mask], omct = x->om[k & mask];
    const double dr = x->omth + x->rho1 * omct, di = x->rho1 * st;
    return (ur * dr + ui * di) / (dr * dr + di * di);
}

/* The first grid of the exact method: the smallest power of two N0 >= 64 with
 * N0 >= 6 sigma_th and N0 >= 18 / th (sigma_th^2 = n K''(th)). */
static uint64_t wx_first_grid(double sigt, double th) {
    uint64_t N0 = 64;
    while (N0 < (UINT64_C(1) << 60) && ((double)N0 < 6.0 * sigt || (double)N0 * th < 18.0)) N0 *= 2;
    return N0;
}

/* ln P(X >= s) by Fourier inversion along the contour Re z = th > 0:
 *   P = e^{nK(th) - th s} (1/2pi) int_{-pi}^{pi} [M(th+it)/M(th)]^n e^{-its} / (1 - e^{-th-it}) dt
 * by the trapezoidal rule on N0, 2 N0, 4 N0, ... <= nmax points; the grid 2N is
 * accepted when it agrees with the grid N to WX_TOL.  Returns 0 and sets *out
 * on success, -1 otherwise. */
static int wd_exact(const wdist *d, uint64_t s, uint64_t T, double th, uint64_t N0, uint64_t nmax,
                    double *out) {
    if (2 * N0 > nmax) return -1;
    wexact x;
    x.d = d;
    for (size_t l = 0; l < d->m; l++) { /* largest weights first: the skip test fires sooner */
        const size_t i = d->m - 1 - l;
        const double rho = exp(-th * d->w[i]);
        x.a[l] = rho / (1.0 + rho);
        x.wi[l] = d->wi[i];
    }
    x.rho1 = exp(-th);
    x.omth = -expm1(-th);
    x.dist = T - s;
    x.N = N0;
    x.skip = exp(-WX_SKIP / d->n);
    uint64_t nbig = N0;
    while (nbig < nmax && nbig < 8 * N0) nbig *= 2;
    x.cs = malloc(nbig * sizeof(double));
    x.om = malloc(nbig * sizeof(double));
    int rc = -1;
    if (!x.cs || !x.om) goto out;
    trig_tables(x.cs, x.om, N0);
    double S = wx_point(&x, 0) + wx_point(&x, N0 / 2);
    for (uint64_t k = 1; k < N0 / 2; k++) S += 2.0 * wx_point(&x, k);
    double I = S / (double)N0;
    while (2 * x.N <= nmax) {
        const uint64_t N = x.N, N2 = 2 * N;
        if (N2 > nbig) {
            double *nc = realloc(x.cs, N2 * sizeof(double)), *no;
            if (!nc) break;
            x.cs = nc;
            no = realloc(x.om, N2 * sizeof(double));
            if (!no) break;
            x.om = no;
            nbig = N2;
        }
        x.N = N2;
        trig_tables(x.cs, x.om, N2);
        for (uint64_t k = 1; k < N; k += 2) S += 2.0 * wx_point(&x, k); /* the new points */
        const double I2 = S / (double)N2;
        if (!(I2 > 0.0) || !isfinite(I2)) break;
        if (fabs(I2 - I) <= WX_TOL * I2) {
            I = I2;
            rc = 0;
            break;
        }
        I = I2;
    }
    if (rc == 0) {
        const double xc = 0.5 * (2.0 * (double)s - (double)T);
        *out = wd_prefactor(d, th, xc, (double)(T - s)) + log(I);
    }
out:
    free(x.cs);
    free(x.om);
    return rc;
}

/* Lower bound of sin^2(x) over [a, b] (0 <= a <= b): 0 if the interval holds a
 * multiple of pi, else (2/pi)^2 times the squared distance to the nearest one. */
static double sin2_lower(double a, double b) {
    const double k = ceil(a / PI_D);
    if (k * PI_D <= b) return 0.0;
    const double da = a - (k - 1.0) * PI_D, db = k * PI_D - b;
    const double dmin = fmin(da, db) * (2.0 / PI_D);
    return dmin * dmin;
}

/* Smoothness certificate at tilt th: true when S(t) = sum_l v_l sin^2(t w_l / 2)
 * (v_l = rho_l/(1+rho_l)^2, the tilted layer variance) satisfies
 * 2 n S(t) >= WX_SMOOTH for every t in [pi / w_max, pi] (checked by
 * branch and bound on sin2_lower), and 2 sigma_th^2 (pi/w_max)^2 / pi^2 >= WX_SMOOTH
 * for the edge of the main peak.  Then |Q(t)|^n <= e^{-WX_SMOOTH} away from
 * t = 0 and the lattice has no secondary peaks the saddlepoint would miss. */
static int wd_smooth(const wdist *d, double th) {
    double v[TOKMARK_MAX_LAYERS], s2 = 0.0;
    for (size_t l = 0; l < d->m; l++) {
        const double rho = exp(-th * d->w[l]);
        v[l] = rho / ((1.0 + rho) * (1.0 + rho));
        s2 += v[l] * d->w[l] * d->w[l];
    }
    const double wmax = d->w[d->m - 1], t0 = PI_D / wmax;
    const double need = WX_SMOOTH / (2.0 * d->n); /* S(t) must reach this */
    if (s2 * t0 * t0 / (PI_D * PI_D) < need) return 0;
    double stack[2 * 64][2];
    int sp = 0, budget = 200000;
    stack[sp][0] = t0;
    stack[sp][1] = PI_D;
    sp++;
    while (sp > 0) {
        if (--budget < 0) return 0;
        sp--;
        const double a = stack[sp][0], b = stack[sp][1];
        double lb = 0.0;
        for (size_t l = 0; l < d->m && lb < need; l++)
            lb += v[l] * sin2_lower(0.5 * a * d->w[l], 0.5 * b * d->w[l]);
        if (lb >= need) continue;
        /* is the bound attained?  the value at the midpoint */
        const double mid = 0.5 * (a + b);
        double sm = 0.0;
        for (size_t l = 0; l < d->m; l++) {
            const double sn = sin(0.5 * mid * d->w[l]);
            sm += v[l] * sn * sn;
        }
        if (sm < need) return 0; /* a secondary peak */
        if (sp + 2 > 2 * 64 || b - a < 1e-15 * b) return 0;
        stack[sp][0] = a;
        stack[sp][1] = mid;
        stack[sp + 1][0] = mid;
        stack[sp + 1][1] = b;
        sp += 2;
    }
    return 1;
}

/* Mills ratio minus its leading term: R(w) - 1/w, R(w) = (1 - Phi(w))/phi(w), w > 6. */
static double mills_minus(double w) {
    double t = 0.0; /* R(w) = 1/(w + 1/(w + 2/(w + 3/(w + ...)))) */
    for (int k = 60; k >= 1; k--) t = (double)k / (w + t);
    return -t / (w * (w + t));
}

/* Second continuity-corrected Lugannani–Rice approximation of ln P(X >= s)
 * for a lattice of span 1, at the saddlepoint th of s~ = s - 1/2 (xc = s~ - T/2,
 * xd = T - s~). */
static double wd_saddle(const wdist *d, double th, double xc, double xd) {
    double E = -wd_prefactor(d, th, xc, xd); /* = th xc - K_c(th) = w~^2 / 2 */
    if (!(E > 0.0)) E = 0.0;
    const double wt = sqrt(2.0 * E);
    double h1;
    wd_eval(d, th, NULL, NULL, &h1);
    const double u = 2.0 * sinh(0.5 * th) * sqrt(d->n * h1);
    double B; /* 1/u - 1/w~ */
    if (wt < 0.01) {
        const double sig0 = sqrt(0.25 * d->n * d->W2);
        B = -(th / sig0) * (1.0 / 24 - d->W4 / (16.0 * d->W2));
    } else {
        B = 1.0 / u - 1.0 / wt;
    }
    double inner, normal;
    if (wt <= 6.0) {
        normal = SQRT_HALF_PI * erfc(wt * SQRT1_2) * exp(E); /* R(w~) */
        inner = normal + B;
    } else {
        const double mm = mills_minus(wt);
        normal = 1.0 / wt + mm;
        inner = mm + 1.0 / u;
    }
    if (!(inner > 0.0) || !isfinite(inner)) inner = normal; /* never reached in practice */
    return -E - LN_SQRT_2PI + log(inner);
}

static uint32_t gcd32(uint32_t a, uint32_t b) {
    while (b) {
        const uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

double tm_ln_sf_weighted_ex(uint64_t s, uint64_t n, const uint16_t *w, size_t m,
                            tm_weighted_mode mode, tm_weighted_regime *regime) {
    tm_weighted_regime reg = TM_WEIGHTED_TRIVIAL;
    if (regime) *regime = reg;
    if (s == 0) return 0.0;
    if (m > TOKMARK_MAX_LAYERS || (m > 0 && w == NULL)) return NAN;

    /* layers with a non-zero weight, sorted ascending, divided by their gcd */
    wdist d;
    d.m = 0;
    uint32_t g = 0;
    for (size_t l = 0; l < m; l++) {
        if (w[l] == 0) continue;
        uint32_t v = w[l];
        size_t i = d.m++;
        while (i > 0 && d.wi[i - 1] > v) {
            d.wi[i] = d.wi[i - 1];
            i--;
        }
        d.wi[i] = v;
        g = gcd32(g, v);
    }
    if (d.m == 0 || n == 0) return -INFINITY; /* X = 0 < s */
    uint64_t Wi = 0;
    d.W = d.W2 = d.W4 = 0.0;
    for (size_t l = 0; l < d.m; l++) {
        d.wi[l] /= g;
        d.w[l] = (double)d.wi[l];
        Wi += d.wi[l];
        d.W += d.w[l];
        d.W2 += d.w[l] * d.w[l];
        d.W4 += d.w[l] * d.w[l] * d.w[l] * d.w[l];
    }
    d.n = (double)n;
    const uint64_t sr = s / g + (s % g != 0); /* P(g X' >= s) = P(X' >= ceil(s/g)) */
    const double nml2 = d.n * (double)d.m * LN2;

    if (n > (UINT64_C(1) << 52) / Wi) {
        /* Astronomical n (over 2^52 / W tuples): doubles only, saddlepoint. */
        const double Td = d.n * d.W, sd = (double)sr;
        if (sd > Td) return -INFINITY;
        if (sd >= Td) return -nml2;
        reg = TM_WEIGHTED_SADDLE;
        if (regime) *regime = reg;
        double xc = sd - 0.5 - 0.5 * Td;
        const int lower = !(xc > 0.0);
        if (lower) xc = -xc; /* P(X <= s-1) = P(X >= T - s + 1), symmetric */
        const double xd = 0.5 * Td - xc;
        const double th = wd_solve(&d, xc / d.n, xd / d.n);
        const double r = wd_saddle(&d, th, xc, xd);
        return lower ? log1mexp(r) + 0.0 : r;
    }

    const uint64_t T = n * Wi;
    if (sr > T) return -INFINITY;
    if (sr == T) return -nml2;
    if (d.wi[d.m - 1] == 1) { /* all weights equal */
        if (regime) *regime = TM_WEIGHTED_BINOMIAL;
        return tokmark_ln_sf_binomial(sr, n * (uint64_t)d.m, 0.5);
    }
    /* The distribution is symmetric about T/2: compute an upper tail above it. */
    const int lower = 2 * sr <= T;
    const uint64_t su = lower ? T - sr + 1 : sr;
    double r;
    if (su == T) {
        r = -nml2;
    } else if (2 * su - 1 == T) {
        r = -LN2; /* P(X >= (T+1)/2) = 1/2 exactly */
    } else {
        const double xc = 0.5 * (double)(2 * su - 1 - T); /* s~ - T/2, s~ = s - 1/2 */
        const double xd = 0.5 * (double)(2 * (T - su) + 1); /* T - s~ */
        const double th = wd_solve(&d, xc / d.n, xd / d.n);
        /* regime (SPEC.md §8.4) */
        const double sig0 = sqrt(0.25 * d.n * d.W2);
        const double the = fmax(th, 3.0 / sig0);
        double h1;
        wd_eval(&d, the, NULL, NULL, &h1);
        const uint64_t N0 = wx_first_grid(sqrt(d.n * h1), the);
        int done = 0;
        if (mode == TM_MODE_EXACT) {
            done = wd_exact(&d, su, T, the, N0, WX_NFORCED, &r) == 0;
        } else if (mode == TM_MODE_AUTO) {
            if (2 * N0 <= WX_NCHEAP || (2 * N0 <= WX_NMAX && !wd_smooth(&d, th)))
                done = wd_exact(&d, su, T, the, N0, 8 * N0 > WX_NMAX ? WX_NMAX : 8 * N0, &r) == 0;
        }
        if (done) {
            reg = TM_WEIGHTED_EXACT;
        } else {
            reg = TM_WEIGHTED_SADDLE;
            r = wd_saddle(&d, th, xc, xd);
        }
    }
    if (regime) *regime = reg;
    return lower ? log1mexp(r) + 0.0 : r;
}

double tokmark_ln_sf_weighted(uint64_t s, uint64_t n, const uint16_t *w, size_t m) {
    return tm_ln_sf_weighted_ex(s, n, w, m, TM_MODE_AUTO, NULL);
}

/* ======================================================================== */
/* §8.6 Šidák                                                                */
/* ======================================================================== */

double tokmark_ln_sidak(double ln_p, uint64_t k) {
    if (isnan(ln_p)) return NAN;
    if (ln_p >= 0.0) return 0.0;
    if (ln_p == -INFINITY) return -INFINITY;
    if (k <= 1) return ln_p;
    const double p = exp(ln_p);
    /* ln(-ln(1-p)) */
    double lnl;
    if (ln_p < -20.0)
        lnl = ln_p + log1p(p * (0.5 + p / 3.0)); /* -ln(1-p) = p (1 + p/2 + p^2/3 + ...) */
    else if (ln_p > -LN2)
        lnl = log(-log(-expm1(ln_p))); /* 1 - p accurately */
    else
        lnl = log(-log1p(-p));
    const double lnk = log((double)k);
    const double a = -exp(lnk + lnl); /* k ln(1-p) */
    if (a < -LN2) return log1p(-exp(a)) + 0.0;
    /* ln(1 - e^a) = ln(-a) + ln((1 - e^a)/(-a)) */
    double g;
    if (a > -1e-5)
        g = a * (0.5 + a / 24.0); /* ln((1-e^a)/(-a)) = a/2 + a^2/24 - ... */
    else
        g = log(-expm1(a) / -a);
    return lnk + lnl + g;
}
