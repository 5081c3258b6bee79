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
 *             tilted contour (trapezoidal rule, evaluated only where the
 *             integrand is provably non-negligible); for n_eff >= 2^20 with a
 *             certified smooth lattice, the second continuity-corrected
 *             Lugannani–Rice saddlepoint approximation.
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

/* Constants of the exact method and of the regime rule (SPEC.md §8.4). */
#define WX_NEFF     1048576.0           /* saddlepoint only from n_eff = n (sum w^2)^2 / sum w^4 up */
#define WX_GRIDS    5                   /* grids N0, 2 N0, ..., 16 N0 at most */
#define WX_TOL      1e-8                /* accept grid 2N when |I_2N - I_N| <= WX_TOL I_2N */
#define WX_SKIP     110.0               /* a point with |Q|^(2n) <= e^-WX_SKIP is negligible */
#define WX_SMOOTH   36.0                /* certificate: 2 n S(t) >= WX_SMOOTH off the main peak */
#define WX_BUDGET   50000               /* intervals one certificate may examine */
#define WX_DP_BITS  1000                /* convolution only while n m <= this */

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

/* Lower bound of sin^2(x) over [a, b] (0 <= a <= b): 0 if the interval holds a
 * multiple of pi, else sin^2 of the distance d <= pi/2 to the nearest one,
 * bounded below by (d - d^3/6)^2 (no trigonometric call). */
static double sin2_lower(double a, double b) {
    const double k = ceil(a / PI_D);
    if (k * PI_D <= b) return 0.0;
    const double d = fmin(a - (k - 1.0) * PI_D, k * PI_D - b);
    const double sl = d * (1.0 - d * d / 6.0);
    return sl * sl;
}

/* The lattice roughness S(t) = sum_l v_l sin^2(t w_l / 2), v_l the tilted
 * variance rho_l/(1+rho_l)^2 of layer l.  |Q(t)|^2 = prod (1 - 4 v_l sin^2)
 * <= e^{-4 S(t)}, so |Q(t)|^(2n) <= e^{-4 n S(t)}. */
static double S_lower(const wdist *d, const double *v, double a, double b, double stop) {
    double lb = 0.0;
    for (size_t l = 0; l < d->m && lb < stop; l++)
        lb += v[l] * sin2_lower(0.5 * a * d->w[l], 0.5 * b * d->w[l]);
    return lb;
}

/* Upper bound of sin^2(x) over [a, b] (0 <= a <= b): min(1, d^2) with d the
 * largest distance from a point of [a, b] to the multiples of pi. */
static double sin2_upper(double a, double b) {
    if (b - a >= PI_D) return 1.0;
    const double k = floor(a / PI_D + 0.5); /* the multiple of pi nearest to a */
    const double h = (k + 0.5) * PI_D;      /* the midpoint after it */
    double d;
    if (b >= h)
        d = 0.5 * PI_D;
    else
        d = fmax(fabs(a - k * PI_D), fabs(b - k * PI_D));
    return d >= 1.0 ? 1.0 : d * d;
}

static double S_upper(const wdist *d, const double *v, double a, double b) {
    double ub = 0.0;
    for (size_t l = 0; l < d->m; l++) ub += v[l] * sin2_upper(0.5 * a * d->w[l], 0.5 * b * d->w[l]);
    return ub;
}

static double S_at(const wdist *d, const double *v, double t) {
    double s = 0.0;
    for (size_t l = 0; l < d->m; l++) {
        const double sn = sin(0.5 * t * d->w[l]);
        s += v[l] * sn * sn;
    }
    return s;
}

static void layer_var(const wdist *d, double th, double *v) {
    for (size_t l = 0; l < d->m; l++) {
        const double rho = exp(-th * d->w[l]);
        v[l] = rho / ((1.0 + rho) * (1.0 + rho));
    }
}

/* Smoothness certificate at tilt th: 1 when 2 n S(t) >= WX_SMOOTH is proven
 * for every t in [pi/w_max, pi] (branch and bound on S_lower; an interval whose
 * bound falls short is halved unless S at its midpoint is itself short, which
 * refutes) and 2 n S >= WX_SMOOTH already holds at t = pi/w_max by the bound
 * S(t) >= t^2 sum v w^2 / pi^2 of the main peak.  Then |Q(t)|^n <= e^{-WX_SMOOTH}
 * away from the main peak: the lattice has no secondary peak. */
static int wd_smooth(const wdist *d, double th) {
    double v[TOKMARK_MAX_LAYERS], s2 = 0.0;
    layer_var(d, th, v);
    for (size_t l = 0; l < d->m; l++) s2 += v[l] * d->w[l] * d->w[l];
    const double wmax = d->w[d->m - 1], t0 = PI_D / wmax;
    const double need = WX_SMOOTH / (2.0 * d->n);
    if (s2 / (wmax * wmax) < need) return 0;
    double st[128][2];
    int sp = 0, budget = WX_BUDGET;
    st[0][0] = t0;
    st[0][1] = PI_D;
    sp = 1;
    while (sp > 0) {
        if (--budget < 0) return 0;
        sp--;
        const double a = st[sp][0], b = st[sp][1];
        if (S_lower(d, v, a, b, need) >= need) continue;
        const double mid = 0.5 * (a + b);
        if (S_at(d, v, mid) < need) return 0;
        if (sp + 2 > 128 || !(mid > a && mid < b)) return 0;
        st[sp][0] = mid;
        st[sp][1] = b;
        st[sp + 1][0] = a;
        st[sp + 1][1] = mid;
        sp += 2;
    }
    return 1;
}

/* The active set of the exact method: the intervals of [0, pi], in increasing
 * order, of width <= delta, outside of which S(t) >= WX_SKIP / (4 n) is proven
 * (so every point there has |Q|^(2n) <= e^-WX_SKIP).  Returns the number of
 * intervals (stored in *out, malloc'd) or -1. */
static long wd_active(const wdist *d, const double *v, double delta, double (**out)[2]) {
    const double need = WX_SKIP / (4.0 * d->n);
    size_t cap = 64, cnt = 0;
    double (*list)[2] = malloc(cap * sizeof *list);
    if (!list) return -1;
    double st[128][2];
    int sp = 1;
    st[0][0] = 0.0;
    st[0][1] = PI_D;
    while (sp > 0) {
        sp--;
        const double a = st[sp][0], b = st[sp][1];
        if (S_lower(d, v, a, b, need) >= need) continue;
        const double mid = 0.5 * (a + b);
        if (b - a <= delta || sp + 2 > 128 || !(mid > a && mid < b) || S_upper(d, v, a, b) < need) {
            if (cnt == cap) {
                double (*nl)[2] = realloc(list, 2 * cap * sizeof *list);
                if (!nl) {
                    free(list);
                    return -1;
                }
                list = nl;
                cap *= 2;
            }
            list[cnt][0] = a;
            list[cnt][1] = b;
            cnt++;
            continue;
        }
        st[sp][0] = mid; /* right half below the left: intervals come out in order */
        st[sp][1] = b;
        st[sp + 1][0] = a;
        st[sp + 1][1] = mid;
        sp += 2;
    }
    *out = list;
    return (long)cnt;
}

typedef struct wexact {
    const wdist *d;
    double a[TOKMARK_MAX_LAYERS]; /* rho/(1+rho), rho = e^{-th w}, by increasing weight */
    uint32_t dw[TOKMARK_MAX_LAYERS]; /* w_l - w_{l-1} (w_{-1} = 0) */
    int nbits;        /* bits of the largest difference */
    double rho1, omth; /* e^{-th}, 1 - e^{-th} */
    double skip;      /* e^{-WX_SKIP/n}: a point is negligible once |1+z|^2 <= skip */
    uint64_t dist;    /* T - s */
} wexact;

/* u * v for complex u, renormalised to modulus 1 (both factors are unit). */
static inline void cmul_unit(double *ur, double *ui, double vr, double vi) {
    const double r = *ur * vr - *ui * vi, i = *ur * vi + *ui * vr;
    const double f = 1.5 - 0.5 * (r * r + i * i); /* one Newton step towards |.| = 1 */
    *ur = r * f;
    *ui = i * f;
}

/* Re of the integrand at t = 2 pi k / N (0 <= k <= N/2), normalised by the
 * tilting factor:  Q(t)^n e^{i t (T-s)} / (1 - e^{-th - i t}),
 *   Q = prod_l (1 + rho_l e^{-i t w_l}) / (1 + rho_l) = prod_l (1 + f_l),
 *   f_l = -2 a_l sin^2(t w_l/2) - 2 i a_l sin(t w_l/2) cos(t w_l/2).
 * e^{i t w_l / 2} comes from powers of e^{i t/2} (renormalised products), so
 * sin(t w_l/2) keeps its relative accuracy for small t; Q is carried as 1 + z
 * so that ln Q stays accurate where Q is near 1, the n-th power amplifying any
 * error n-fold.  Since every |1 + f_l| <= 1, a partial product with
 * |1+z|^2 + 2^-50 <= skip makes the point negligible (tested every 8 layers;
 * |1+z|^2 is formed directly, the margin covering its rounding). */
static double wx_point(const wexact *x, uint64_t k, uint64_t N) {
    const double hx = PI_D * (double)k / (double)N; /* t/2 in [0, pi/2] */
    double pw[2][17];
    pw[0][0] = cos(hx);
    pw[1][0] = sin(hx);
    for (int b = 1; b < x->nbits; b++) {
        double r = pw[0][b - 1], i = pw[1][b - 1];
        cmul_unit(&r, &i, r, i);
        pw[0][b] = r;
        pw[1][b] = i;
    }
    double ur = 1.0, ui = 0.0, zr = 0.0, zi = 0.0;
    const size_t m = x->d->m;
    for (size_t l = 0; l < m; l++) {
        for (uint32_t e = x->dw[l], b = 0; e; e >>= 1, b++)
            if (e & 1) cmul_unit(&ur, &ui, pw[0][b], pw[1][b]);
        const double fr = -2.0 * x->a[l] * ui * ui, fi = -2.0 * x->a[l] * ui * ur;
        const double nr = zr + fr + (zr * fr - zi * fi);
        zi = zi + fi + (zr * fi + zi * fr);
        zr = nr;
        if ((l & 7) == 7 && (1.0 + zr) * (1.0 + zr) + zi * zi + 0x1p-50 <= x->skip) return 0.0;
    }
    const double z2 = zr * zr + zi * zi, q2 = (1.0 + zr) * (1.0 + zr) + zi * zi; /* |1+z|^2 */
    if (q2 + 0x1p-50 <= x->skip) return 0.0;
    const double lmod = z2 < 0.25 ? 0.5 * log1p(2.0 * zr + z2) : 0.5 * log(q2);
    const double mag = exp(x->d->n * lmod);
    if (!(mag > 0.0)) return 0.0;
    const double ph = x->d->n * atan2(zi, 1.0 + zr);
    const double pr = mag * cos(ph), pi = mag * sin(ph);
    /* e^{i t (T-s)}: the angle reduced exactly on the grid */
    const uint64_t r = (k * x->dist) & (N - 1); /* unsigned products wrap mod 2^64, N | 2^64 */
    const double ang = 2.0 * PI_D * (r <= N / 2 ? (double)r : -(double)(N - r)) / (double)N;
    const double c2 = cos(ang), s2 = sin(ang);
    const double vr = pr * c2 - pi * s2, vi = pi * c2 + pr * s2;
    /* 1 - e^{-th} e^{-it} = (1 - e^{-th}) + e^{-th} (1 - cos t) + i e^{-th} sin t */
    const double sh = pw[1][0], ch = pw[0][0];
    const double dr = x->omth + x->rho1 * 2.0 * sh * sh, di = x->rho1 * 2.0 * sh * ch;
    return (vr * dr + vi * di) / (dr * dr + di * di);
}

/* The first grid of the exact method: the smallest power of two N0 >= 64 with
 * N0 >= 6 sigma_th and N0 th >= 18 (sigma_th^2 = n K''(th)). */
static uint64_t wx_first_grid(double sigt, double th) {
    uint64_t N0 = 64;
    while (N0 < (UINT64_C(1) << 62) && ((double)N0 < 6.0 * sigt || (double)N0 * th < 18.0)) N0 *= 2;
    return N0;
}

/* Sum of the integrand over the points of grid N in the active intervals;
 * odd_only: only odd k (the points a grid adds to the previous one). */
static double wx_sum(const wexact *x, const double (*iv)[2], long niv, uint64_t N, int odd_only) {
    double S = 0.0;
    const double scale = (double)N / (2.0 * PI_D);
    for (long i = 0; i < niv; i++) {
        uint64_t k0 = (uint64_t)ceil(iv[i][0] * scale), k1 = (uint64_t)ceil(iv[i][1] * scale);
        if (i == niv - 1 && iv[i][1] >= PI_D) k1 = N / 2 + 1; /* the last interval holds t = pi */
        if (k1 > N / 2 + 1) k1 = N / 2 + 1;
        for (uint64_t k = k0; k < k1; k++) {
            if (odd_only && !(k & 1)) continue;
            const double f = wx_point(x, k, N);
            S += (k == 0 || 2 * k == N) ? f : 2.0 * f;
        }
    }
    return S;
}

/* ln P(X >= s) by Fourier inversion along the contour Re z = th > 0:
 *   P = e^{nK(th) - th s} (1/2pi) int_{-pi}^{pi} [M(th+it)/M(th)]^n e^{-its} / (1 - e^{-th-it}) dt
 * by the trapezoidal rule on N0, 2 N0, ... (at most WX_GRIDS grids), each
 * evaluated on the active set only; grid 2N is accepted when it agrees with
 * grid N to WX_TOL.  Returns 0 and sets *out on success, -1 otherwise. */
static int wd_exact(const wdist *d, uint64_t s, uint64_t T, double th, uint64_t N0,
                    const double (*iv)[2], long niv, double *out) {
    if (N0 > (UINT64_C(1) << 44)) return -1;
    wexact x;
    x.d = d;
    uint32_t prev = 0, maxdiff = 1;
    for (size_t l = 0; l < d->m; l++) {
        const double rho = exp(-th * d->w[l]);
        x.a[l] = rho / (1.0 + rho);
        x.dw[l] = d->wi[l] - prev;
        if (x.dw[l] > maxdiff) maxdiff = x.dw[l];
        prev = d->wi[l];
    }
    x.nbits = 0;
    while (maxdiff >> x.nbits) x.nbits++;
    x.rho1 = exp(-th);
    x.omth = -expm1(-th);
    x.skip = exp(-WX_SKIP / d->n);
    x.dist = T - s;
    uint64_t N = N0;
    double S = wx_sum(&x, iv, niv, N, 0);
    double I = S / (double)N;
    int rc = -1;
    for (int g = 1; g < WX_GRIDS; g++) {
        N *= 2;
        S += wx_sum(&x, iv, niv, N, 1);
        const double I2 = S / (double)N;
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
    return rc;
}

/* Exact by convolution for small supports: the pmf of X = sum_l w_l B_l built
 * layer by layer, pmf <- sum_b C(n,b) 2^-n pmf(. - b w_l), in linear space
 * (every entry is >= 2^-(n m) >= 2^-WX_DP_BITS, so nothing underflows), and
 * the tail summed from the top.  Returns 0 and sets *out, or -1. */
static int wd_convolve(const wdist *d, uint64_t s, uint64_t T, double *out) {
    const uint64_t n = (uint64_t)d->n;
    double *a = calloc(T + 1, sizeof(double)), *b = malloc((T + 1) * sizeof(double));
    double *c = malloc((n + 1) * sizeof(double));
    int rc = -1;
    if (!a || !b || !c) goto done;
    c[0] = ldexp(1.0, -(int)n); /* C(n, j) / 2^n */
    for (uint64_t j = 0; j < n; j++) c[j + 1] = c[j] * (double)(n - j) / (double)(j + 1);
    a[0] = 1.0;
    uint64_t top = 0;
    for (size_t l = 0; l < d->m; l++) {
        const uint64_t w = d->wi[l], ntop = top + n * w;
        for (uint64_t x = 0; x <= ntop; x++) b[x] = 0.0;
        for (uint64_t j = 0; j <= n; j++) {
            const double cj = c[j];
            double *dst = b + j * w;
            for (uint64_t x = 0; x <= top; x++) dst[x] += cj * a[x];
        }
        double *tmp = a;
        a = b;
        b = tmp;
        top = ntop;
    }
    double sum = 0.0;
    for (uint64_t x = T + 1; x-- > s;) sum += a[x];
    if (sum > 0.0) {
        *out = log(sum);
        rc = 0;
    }
done:
    free(a);
    free(b);
    free(c);
    return rc;
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

static unsigned popcount32(uint32_t x) {
    unsigned c = 0;
    for (; x; x &= x - 1) c++;
    return c;
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
        const double neff = d.n * d.W2 * d.W2 / d.W4;
        int done = 0;
        if (mode == TM_MODE_EXACT || mode == TM_MODE_FOURIER ||
            (mode == TM_MODE_AUTO && (neff < WX_NEFF || !wd_smooth(&d, th)))) {
            /* two exact methods: Fourier inversion over its active set, or direct
             * convolution when n m <= WX_DP_BITS and that is estimated cheaper */
            double v[TOKMARK_MAX_LAYERS], (*iv)[2] = NULL;
            layer_var(&d, the, v);
            const double dp_cost = 0.2 * (double)d.m * (d.n + 1.0) * (double)T;
            const int dp_ok = n * d.m <= WX_DP_BITS && mode != TM_MODE_FOURIER;
            const long niv = dp_ok && dp_cost < 2e4 ? -1
                           : N0 <= (UINT64_C(1) << 44) ? wd_active(&d, v, 32.0 * PI_D / (double)N0, &iv) : -1;
            double len = 0.0; /* measure of the active set */
            for (long i = 0; i < niv; i++) len += iv[i][1] - iv[i][0];
            /* rough cost models (ns): ~1.5 N0 len/pi points at (4 + 3 popcount(dw)) per
             * layer + 150; the convolution 0.2 per multiply-add */
            double per_point = 150.0;
            for (size_t l = 0; l < d.m; l++)
                per_point += 4.0 + 3.0 * (double)popcount32(d.wi[l] - (l ? d.wi[l - 1] : 0));
            const double ft_cost = 1.5 * len * (double)N0 / PI_D * per_point;
            if (dp_ok && (niv < 0 || dp_cost < ft_cost)) done = wd_convolve(&d, su, T, &r) == 0;
            if (!done && niv >= 0) done = wd_exact(&d, su, T, the, N0, (const double (*)[2])iv, niv, &r) == 0;
            free(iv);
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
