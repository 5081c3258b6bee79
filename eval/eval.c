/* eval.c — `make eval`: measured power, quality, robustness, false
 * positives and radioactivity of tokmark's watermarks on the reference
 * n-gram language model (SPEC.md §11) and real text (docs/EVAL.md).
 *
 * usage: eval [--corpus DIR] [--out DIR] [--docs DIR] [--threads T] [--quick]
 *
 * Trains the reference LM (order 4, cl100k_base) on DIR/train, or loads it
 * from OUT/teacher-o4.lm when that file was trained on exactly the same
 * documents and tokens; prints every table to stdout (Markdown), and writes
 * the plots as SVG into OUT (and copies them to DOCS when given).  Every
 * random choice comes from fixed seeds: the output is the same on every run
 * and for every --threads.  Uses only <tokmark.h> and the tool-side modules
 * (tools/cli/lm.h, tools/cli/scanutil.h). */
#include "evalutil.h"
#include "lm.h"
#include "scanutil.h"
#include "tokmark.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define LN10 2.30258509299404568402

/* ------------------------------------------------------------------------ */
/* Sizes (the --quick values are for a smoke test, not for the tables)      */
/* ------------------------------------------------------------------------ */

typedef struct ev_sizes {
    size_t gens;        /* generations per setting (power, quality, robustness) */
    size_t gen_len;     /* tokens per generation */
    size_t prompt_len;  /* prompt tokens (from held-out documents) */
    size_t fp_docs;     /* human documents for the false-positive test */
    size_t fp_doc_len;  /* at most this many tokens of each */
    size_t fp_keys;     /* keys per scheme */
    size_t df_keys;     /* keys for the distortion-free check */
    size_t df_contexts; /* contexts for it */
    size_t t_docs;      /* teacher documents (student corpora) */
    size_t t_len;       /* tokens per teacher document */
    size_t s_prompts;   /* prompts answered by each student (closed mode) */
    size_t s_len;       /* tokens per student answer */
    size_t r_docs;      /* fresh teacher documents for reading mode */
    size_t controls;    /* control keys for the students */
} ev_sizes;

static const ev_sizes SIZES_FULL = {50, 300, 16, 100, 400, 1000, 4000, 4, 300, 200, 60, 100, 40, 200};
static const ev_sizes SIZES_QUICK = {6, 80, 16, 12, 200, 100, 100, 2, 40, 80, 10, 60, 8, 100};

#define EV_K 1024      /* candidates per step: the embedder's default max_candidates */
#define EV_ORDER 4     /* the teacher (reference) model */
#define EV_S_ORDER 3   /* the students */
#define EV_THR (-6.0)  /* log10 of the detection threshold */

static ev_sizes Z;
static int n_threads = 2;
static const char *out_dir = "build/eval", *docs_dir = NULL;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...) {
    va_list ap;
    fputs("eval: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) die("out of memory");
    return p;
}
static void *xcalloc(size_t n, size_t s) {
    void *p = calloc(n ? n : 1, s ? s : 1);
    if (p == NULL) die("out of memory");
    return p;
}

static void progress(const char *fmt, ...) {
    static double t0 = 0;
    if (t0 == 0) t0 = now_s();
    va_list ap;
    fprintf(stderr, "[%6.1f s] ", now_s() - t0);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* Corpus: documents as token ids                                           */
/* ------------------------------------------------------------------------ */

typedef struct ev_docs {
    int32_t *ids;
    size_t *off; /* document i is ids[off[i] .. off[i+1]) */
    size_t n, cap, ntok, tcap;
} ev_docs;

static void docs_add(ev_docs *d, const int32_t *ids, size_t n) {
    if (d->n + 2 > d->cap) {
        d->cap = d->cap ? 2 * d->cap : 1024;
        d->off = realloc(d->off, d->cap * sizeof *d->off);
        if (d->off == NULL) die("out of memory");
    }
    if (d->ntok + n > d->tcap) {
        while (d->ntok + n > d->tcap) d->tcap = d->tcap ? 2 * d->tcap : (1u << 20);
        d->ids = realloc(d->ids, d->tcap * sizeof *d->ids);
        if (d->ids == NULL) die("out of memory");
    }
    if (d->n == 0) d->off[0] = 0;
    memcpy(d->ids + d->ntok, ids, n * sizeof *ids);
    d->ntok += n;
    d->off[++d->n] = d->ntok;
}
static size_t doc_len(const ev_docs *d, size_t i) { return d->off[i + 1] - d->off[i]; }
static const int32_t *doc_ids(const ev_docs *d, size_t i) { return d->ids + d->off[i]; }
static void docs_free(ev_docs *d) {
    free(d->ids);
    free(d->off);
    memset(d, 0, sizeof *d);
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every regular file under dir, recursively, in byte order of names. */
static void collect(const char *dir, char ***files, size_t *n, size_t *cap) {
    DIR *d = opendir(dir);
    if (d == NULL) die("%s: %s (run scripts/build-corpus.sh)", dir, strerror(errno));
    char **names = NULL;
    size_t nn = 0, nc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (nn == nc) {
            nc = nc ? 2 * nc : 64;
            names = realloc(names, nc * sizeof *names);
            if (names == NULL) die("out of memory");
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[nn] = xmalloc(len);
        snprintf(names[nn++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (nn) qsort(names, nn, sizeof *names, str_cmp);
    for (size_t i = 0; i < nn; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0) die("%s: %s", names[i], strerror(errno));
        if (S_ISDIR(st.st_mode)) {
            collect(names[i], files, n, cap);
            free(names[i]);
        } else if (S_ISREG(st.st_mode)) {
            if (*n == *cap) {
                *cap = *cap ? 2 * *cap : 1024;
                *files = realloc(*files, *cap * sizeof **files);
                if (*files == NULL) die("out of memory");
            }
            (*files)[(*n)++] = names[i];
        } else {
            free(names[i]);
        }
    }
    free(names);
}

static void load_docs(const char *dir, tokmark_tokenizer_encoder *enc, ev_docs *out) {
    char **files = NULL;
    size_t n = 0, cap = 0, icap = 1 << 16;
    collect(dir, &files, &n, &cap);
    int32_t *ids = xmalloc(icap * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        FILE *f = fopen(files[i], "rb");
        if (f == NULL) die("%s: %s", files[i], strerror(errno));
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = xmalloc((size_t)len + 1);
        size_t got = fread(buf, 1, (size_t)len, f);
        fclose(f);
        if (got != (size_t)len) die("%s: read error", files[i]);
        size_t nt = 0;
        for (;;) {
            int rc = tokmark_tokenizer_encoder_encode(enc, buf, got, ids, icap, &nt, TOKMARK_ENCODE_REPLACE_INVALID);
            if (rc != TOKMARK_OK) die("%s: %s", files[i], tokmark_error_message(rc));
            if (nt <= icap) break;
            icap = nt;
            free(ids);
            ids = xmalloc(icap * sizeof *ids);
        }
        if (nt > 0) docs_add(out, ids, nt);
        free(buf);
        free(files[i]);
    }
    free(files);
    free(ids);
    if (out->n == 0) die("%s: no documents", dir);
}

/* ------------------------------------------------------------------------ */
/* The sampling loop (SPEC §11.3 with top-k = EV_K and no end of text)      */
/* ------------------------------------------------------------------------ */

typedef struct ev_ws {
    float *logits;
    tokmark_token_data *cand, *cand2;
    float *cl;
    double *q, *pw;
    int32_t *hist;
    size_t hist_cap;
} ev_ws;

static void ws_init(ev_ws *w, uint32_t V, size_t hist_cap) {
    w->logits = xmalloc(V * sizeof *w->logits);
    w->cand = xmalloc(EV_K * sizeof *w->cand);
    w->cand2 = xmalloc(EV_K * sizeof *w->cand2);
    w->cl = xmalloc(EV_K * sizeof *w->cl);
    w->q = xmalloc(EV_K * sizeof *w->q);
    w->pw = xmalloc(EV_K * sizeof *w->pw);
    w->hist = xmalloc(hist_cap * sizeof *w->hist);
    w->hist_cap = hist_cap;
}
static void ws_free(ev_ws *w) {
    free(w->logits);
    free(w->cand);
    free(w->cand2);
    free(w->cl);
    free(w->q);
    free(w->pw);
    free(w->hist);
}


static uint8_t *g_banned; /* ids never drawn: no token, special tokens, end of text */

/* The model's distribution after hist: top-EV_K candidates in w->cand (best
 * first) with q = their softmax; returns the candidate count; *mass gets the
 * probability the candidates hold under the full model. */
static size_t model_step(const lm_model *m, ev_ws *w, size_t nh, double *mass) {
    uint32_t V = lm_vocab_size(m);
    lm_logits(m, w->hist, nh, w->logits);
    for (uint32_t t = 0; t < V; t++)
        if (g_banned[t]) w->logits[t] = -INFINITY;
    size_t k = lm_top_k(w->logits, V, w->cand, EV_K);
    double s = 0.0;
    for (size_t i = 0; i < k; i++) {
        w->cl[i] = w->cand[i].logit;
        s += exp((double)w->cand[i].logit);
    }
    if (mass) *mass = s;
    eu_softmax(w->cl, k, w->q);
    return k;
}

typedef struct ev_genstat {
    double kl, nll, mass; /* sums over tokens */
    size_t tokens, active;
} ev_genstat;

/* Generate n tokens after the prompt, watermarked through e (NULL: the
 * control).  Per step, the KL divergence of the distribution the embedder
 * samples from (tokmark_embedder_apply on the candidates) from the model's. */
static void generate(const lm_model *m, tokmark_embedder *e, const int32_t *prompt, size_t np, size_t n, uint64_t seed,
                     int32_t *out, ev_genstat *st, ev_ws *w) {
    size_t nh = 0;
    w->hist[nh++] = lm_boundary(m);
    memcpy(w->hist + nh, prompt, np * sizeof *prompt);
    nh += np;
    if (e != NULL) tokmark_embedder_prompt(e, prompt, np);
    eu_rng rng;
    eu_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        double mass;
        size_t k = model_step(m, w, nh, &mass);
        double u = eu_rng_unif(&rng);
        int32_t t;
        if (e != NULL) {
            int act = tokmark_embedder_active(e);
            if (st != NULL) {
                memcpy(w->cand2, w->cand, k * sizeof *w->cand);
                tokmark_embedder_apply(e, w->cand2, k);
                for (size_t j = 0; j < k; j++) w->cl[j] = w->cand2[j].logit;
                eu_softmax(w->cl, k, w->pw);
                st->kl += eu_kl(w->pw, w->q, k);
                st->active += act != 0;
            }
            t = tokmark_embedder_sample(e, w->cand, k, u);
            tokmark_embedder_accept(e, t);
        } else {
            double acc = 0.0;
            t = w->cand[k - 1].id;
            for (size_t j = 0; j < k; j++)
                if ((acc += w->q[j]) > u) {
                    t = w->cand[j].id;
                    break;
                }
        }
        if (st != NULL) {
            /* the unwatermarked full model's log-probability of the token */
            st->nll -= lm_logprob(m, w->hist, nh, t);
            st->mass += mass;
            st->tokens++;
        }
        out[i] = t;
        w->hist[nh++] = t;
    }
}

/* ------------------------------------------------------------------------ */
/* Jobs on threads                                                           */
/* ------------------------------------------------------------------------ */

typedef void (*job_fn)(void *ctx, size_t job, ev_ws *w);
typedef struct job_run {
    job_fn fn;
    void *ctx;
    size_t njobs, next;
    uint32_t V;
    size_t hist_cap;
    pthread_mutex_t mu;
} job_run;

static void *job_thread(void *arg) {
    job_run *r = arg;
    ev_ws w;
    ws_init(&w, r->V, r->hist_cap);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        size_t j = r->next++;
        pthread_mutex_unlock(&r->mu);
        if (j >= r->njobs) break;
        r->fn(r->ctx, j, &w);
    }
    ws_free(&w);
    return NULL;
}

static void run_jobs(size_t njobs, job_fn fn, void *ctx, uint32_t V, size_t hist_cap) {
    job_run r = {fn, ctx, njobs, 0, V, hist_cap, PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[16];
    int nt = n_threads < 1 ? 1 : n_threads > 16 ? 16 : n_threads, started = 0;
    for (int i = 1; i < nt; i++)
        if (pthread_create(&th[i], NULL, job_thread, &r) == 0) started = i;
        else break;
    job_thread(&r);
    for (int i = 1; i <= started; i++) pthread_join(th[i], NULL);
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

/* A deterministic profile: master key = BLAKE2b-256("tokmark eval key" ‖ LE64(tag)). */
static tokmark_profile *make_profile(const tokmark_params *pp, uint64_t tag) {
    uint8_t msg[24] = "tokmark eval key", key[TOKMARK_MASTER_KEY_BYTES];
    for (int b = 0; b < 8; b++) msg[16 + b] = (uint8_t)(tag >> (8 * b));
    crypto_generichash(key, sizeof key, msg, sizeof msg, NULL, 0);
    tokmark_profile *p = NULL;
    if (tokmark_profile_from_key(&p, pp, key) != TOKMARK_OK) die("cannot make a profile");
    sodium_memzero(key, sizeof key);
    return p;
}

/* Control key i of SPEC §12.7 with the parameters pp. */
static tokmark_profile *control_profile(const tokmark_params *pp, uint32_t i) {
    uint8_t key[TOKMARK_MASTER_KEY_BYTES], msg[24] = "tokmark control key";
    for (int b = 0; b < 4; b++) msg[20 + b] = (uint8_t)(i >> (8 * b));
    crypto_generichash(key, sizeof key, msg, sizeof msg, NULL, 0);
    tokmark_profile *p = NULL;
    if (tokmark_profile_from_key(&p, pp, key) != TOKMARK_OK) die("cannot make a control profile");
    return p;
}

static void params_for(tokmark_params *p, tokmark_scheme s, uint32_t h, double delta, uint32_t m) {
    tokmark_params_default(p, s);
    p->context_width = h;
    if (s == TOKMARK_SCHEME_KGW) {
        p->delta = delta;
        p->gamma_threshold = tokmark_gamma_threshold(0.25);
    }
    if (s == TOKMARK_SCHEME_SYNTHID) {
        p->layers = m;
        memset(p->weights, 0, sizeof p->weights);
        for (uint32_t l = 0; l < m; l++) p->weights[l] = (uint16_t)(m - l);
    }
    if (tokmark_params_check(p) != TOKMARK_OK) die("bad parameters");
}

static tokmark_detector *make_detector(tokmark_keyring *ring) {
    tokmark_detector_config dc = {64u << 20, 1u << 20, 0};
    tokmark_detector *d = NULL;
    if (tokmark_detector_create(&d, ring, &dc) != TOKMARK_OK) die("cannot create a detector");
    return d;
}

static tokmark_keyring *ring_of(tokmark_profile *p) {
    tokmark_keyring *r = NULL;
    if (tokmark_keyring_new(&r) != TOKMARK_OK || tokmark_keyring_add(r, p) != TOKMARK_OK) die("key ring");
    return r;
}

/* ------------------------------------------------------------------------ */
/* Settings                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct ev_setting {
    char name[48];
    tokmark_params params;
    int wm;                /* 0: the unwatermarked control (scored with KGW keys) */
    /* results */
    int32_t *ids;          /* gens × gen_len */
    ev_genstat *st;        /* per generation */
    size_t *until;         /* tokens until p ≤ 1e-6 (0: not reached) */
    double *curve;         /* gens × gen_len: log10 p after each token */
} ev_setting;

#define MAX_SETTINGS 16
static ev_setting S[MAX_SETTINGS];
static size_t nS;

static void add_setting(const char *name, tokmark_scheme s, uint32_t h, double delta, uint32_t m) {
    ev_setting *x = &S[nS];
    snprintf(x->name, sizeof x->name, "%s", name);
    if (s != 0) {
        params_for(&x->params, s, h, delta, m);
        x->wm = 1;
    } else {
        tokmark_params_default(&x->params, TOKMARK_SCHEME_KGW);
        x->wm = 0;
    }
    nS++;
}

/* The key of generation g of setting i: every generation has its own key, so
 * that averages over generations are averages over keys too. */
static tokmark_profile *gen_key(size_t i, size_t g) { return make_profile(&S[i].params, 1000000 * (i + 1) + g); }

typedef struct gen_ctx {
    const lm_model *m;
    const ev_docs *prompts;
    size_t gens;
} gen_ctx;

static void prompt_of(const ev_docs *d, size_t j, const int32_t **p, size_t *np) {
    /* the first prompt_len tokens of the j-th document long enough */
    size_t i = j % d->n;
    *p = doc_ids(d, i);
    *np = doc_len(d, i) < Z.prompt_len ? doc_len(d, i) : Z.prompt_len;
}

static void power_job(void *vctx, size_t job, ev_ws *w) {
    gen_ctx *c = vctx;
    ev_setting *x = &S[job / c->gens];
    size_t g = job % c->gens;
    const int32_t *p;
    size_t np;
    prompt_of(c->prompts, g, &p, &np);
    tokmark_embedder *e = NULL;
    tokmark_profile *pr = x->wm ? gen_key(job / c->gens, g) : NULL;
    if (pr != NULL && tokmark_embedder_create(&e, pr, NULL) != TOKMARK_OK) die("embedder");
    generate(c->m, e, p, np, Z.gen_len, 7000 + g, x->ids + g * Z.gen_len, &x->st[g], w);
    tokmark_embedder_free(e);
    tokmark_profile_free(pr);
}

/* ------------------------------------------------------------------------ */
/* Output helpers                                                            */
/* ------------------------------------------------------------------------ */

static void path_in(char *buf, size_t size, const char *dir, const char *name) {
    snprintf(buf, size, "%s/%s", dir, name);
}

static void write_plot_cat(const char *name, const char *title, const char *xl, const char *yl, const eu_series *s,
                           size_t ns, double yref, const char *yref_label, const char *const *xt, size_t nxt) {
    char p[1024];
    path_in(p, sizeof p, out_dir, name);
    if (eu_svg_plot_cat(p, title, xl, yl, s, ns, yref, yref_label, xt, nxt) != 0) die("%s: %s", p, strerror(errno));
    if (docs_dir != NULL) {
        char q[1024];
        path_in(q, sizeof q, docs_dir, name);
        if (eu_svg_plot_cat(q, title, xl, yl, s, ns, yref, yref_label, xt, nxt) != 0)
            die("%s: %s", q, strerror(errno));
    }
}
static void write_plot(const char *name, const char *title, const char *xl, const char *yl, const eu_series *s,
                       size_t ns, double yref, const char *yref_label) {
    write_plot_cat(name, title, xl, yl, s, ns, yref, yref_label, NULL, 0);
}

static const char *fmt_until(double v, char *buf, size_t size) {
    if (isinf(v)) snprintf(buf, size, "> %zu", Z.gen_len);
    else snprintf(buf, size, "%.0f", v);
    return buf;
}

/* Score ids (prompt p, then text) with a one-key detector; log10 p of the document. */
static double score_doc(tokmark_detector *d, const int32_t *p, size_t np, const int32_t *ids, size_t n) {
    tokmark_result r;
    tokmark_detector_begin(d);
    if (np) tokmark_detector_prompt(d, p, np);
    tokmark_detector_feed(d, ids, n);
    tokmark_detector_document(d, 0, &r);
    return r.log10_p;
}

/* ------------------------------------------------------------------------ */
/* 1–3: power, quality, robustness                                           */
/* ------------------------------------------------------------------------ */

static void section_power(const lm_model *m, const ev_docs *held) {
    size_t G = Z.gens, L = Z.gen_len;
    for (size_t i = 0; i < nS; i++) {
        S[i].ids = xcalloc(G * L, sizeof *S[i].ids);
        S[i].st = xcalloc(G, sizeof *S[i].st);
        S[i].until = xcalloc(G, sizeof *S[i].until);
        S[i].curve = xcalloc(G * L, sizeof *S[i].curve);
    }
    gen_ctx c = {m, held, G};
    progress("generating %zu x %zu tokens for %zu settings", G, L, nS);
    run_jobs(nS * G, power_job, &c, lm_vocab_size(m), 1 + Z.prompt_len + L + 8);
    progress("scoring");

    /* power: traces of every generation */
    tokmark_trace *tr = xcalloc(Z.prompt_len + L, sizeof *tr);
    printf("\n## 1. Power: tokens until p <= 1e-6\n\n");
    printf("%zu generations per setting, %zu tokens each, temperature 1, top-k %d, prompts: the first %zu tokens\n"
           "of held-out documents. `median` is the median over generations of the number of generated tokens\n"
           "after which the document's exact p-value first reaches 1e-6 (MarkMyWords' \"watermark size\"; `> %zu`:\n"
           "more than half never reached it). `reached` is the share of generations that reached it; the last\n"
           "columns are the median log10 p after 50, 100 and %zu tokens.\n\n",
           G, L, EV_K, Z.prompt_len, L, L);
    printf("| setting | median tokens | reached | log10 p @50 | @100 | @%zu |\n|---|---|---|---|---|---|\n", L);
    eu_series ser[MAX_SETTINGS];
    static double xs[4096], ycurve[MAX_SETTINGS][4096];
    for (size_t t = 0; t < L && t < 4096; t++) xs[t] = (double)(t + 1);
    double *tmp = xmalloc(G * sizeof *tmp);
    size_t nser = 0;
    for (size_t i = 0; i < nS; i++) {
        ev_setting *x = &S[i];
        size_t reached = 0;
        for (size_t g = 0; g < G; g++) {
            tokmark_keyring *ring = ring_of(gen_key(i, g));
            tokmark_detector *d = make_detector(ring);
            tokmark_detector_set_trace(d, 0, tr, Z.prompt_len + L);
            const int32_t *p;
            size_t np;
            prompt_of(held, g, &p, &np);
            memset(tr, 0, (Z.prompt_len + L) * sizeof *tr);
            tokmark_detector_begin(d);
            tokmark_detector_prompt(d, p, np);
            tokmark_detector_feed(d, x->ids + g * L, L);
            x->until[g] = eu_tokens_until(tr, np + L, np, &x->params, TOKMARK_SCORE_DEFAULT, EV_THR, x->curve + g * L);
            reached += x->until[g] > 0;
            tokmark_detector_free(d);
            tokmark_keyring_free(ring);
        }
        for (size_t g = 0; g < G; g++) tmp[g] = x->until[g] ? (double)x->until[g] : INFINITY;
        double med = eu_median(tmp, G);
        double at[3];
        size_t pts[3] = {50, 100, L};
        for (int k = 0; k < 3; k++) {
            size_t t = pts[k] <= L ? pts[k] : L;
            for (size_t g = 0; g < G; g++) tmp[g] = x->curve[g * L + t - 1];
            at[k] = eu_median(tmp, G);
        }
        for (size_t t = 0; t < L && t < 4096; t++) {
            for (size_t g = 0; g < G; g++) tmp[g] = x->curve[g * L + t];
            ycurve[i][t] = fmax(eu_median(tmp, G), -30.0); /* clipped: the threshold region matters */
        }
        ser[nser++] = (eu_series){x->name, xs, ycurve[i], L < 4096 ? L : 4096};
        char b[32];
        printf("| %s | %s | %zu/%zu | %.2f | %.2f | %.2f |\n", x->name, fmt_until(med, b, sizeof b), reached, G, at[0],
               at[1], at[2]);
    }
    free(tmp);
    free(tr);
    write_plot("power.svg", "Median log10 p vs generated tokens (clipped at -30)", "generated tokens",
               "median log10 p over generations", ser, nser,
               EV_THR, "p = 1e-6");

    /* quality */
    printf("\n## 2. Quality\n\n");
    printf("Per generated token, averaged over all %zu x %zu tokens of a setting:\n\n"
           "* `KL` — KL(P_w || P) in nats between the distribution the embedder samples from at this step\n"
           "  (tokmark_embedder_apply on the %d candidates) and the model's own (softmax of the same candidates).\n"
           "  For KGW this is the real distortion. For Gumbel and SynthID it is the divergence *for one key*: Gumbel\n"
           "  picks one token deterministically (KL = -ln P(chosen), whose mean is the entropy), SynthID samples\n"
           "  from the tournament distribution. Averaged over keys both equal P (the check below), so a reader\n"
           "  who does not know the key sees unchanged text statistics.\n"
           "* `active` — share of steps the embedder watermarked (the rest: repeated contexts, SPEC §6.4).\n"
           "* `ppl` — perplexity of the generated tokens under the unwatermarked full model (exp of the mean\n"
           "  negative log-probability); compare with the control. In brackets exp(mean +- 2 standard errors),\n"
           "  the standard error taken over the %zu generations' own means (texts vary a lot: a psalm and a man\n"
           "  page have very different perplexities).\n"
           "* `top-k mass` — probability the %d candidates hold under the full model (the rest is cut by top-k).\n\n",
           G, L, EV_K, G, EV_K);
    printf("| setting | KL (nats/token) | active | ppl | top-k mass |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < nS; i++) {
        ev_setting *x = &S[i];
        ev_genstat a = {0, 0, 0, 0, 0};
        for (size_t g = 0; g < G; g++) {
            a.kl += x->st[g].kl;
            a.nll += x->st[g].nll;
            a.mass += x->st[g].mass;
            a.tokens += x->st[g].tokens;
            a.active += x->st[g].active;
        }
        double nt = (double)a.tokens, mu = 0.0, var = 0.0;
        for (size_t g = 0; g < G; g++) mu += x->st[g].nll / (double)x->st[g].tokens / (double)G;
        for (size_t g = 0; g < G; g++) {
            double dv = x->st[g].nll / (double)x->st[g].tokens - mu;
            var += dv * dv / (double)(G > 1 ? G - 1 : 1);
        }
        double se = sqrt(var / (double)G);
        printf("| %s | %.4f | %.3f | %.2f [%.1f, %.1f] | %.4f |\n", x->name, a.kl / nt,
               x->wm ? (double)a.active / nt : 0.0, exp(mu), exp(mu - 2 * se), exp(mu + 2 * se), a.mass / nt);
    }
    fflush(stdout);
}

/* ---- distortion-free check ---- */
static void section_distortion(const lm_model *m, const ev_docs *held) {
    printf("\n### Distortion-free check\n\n");
    printf("For %zu held-out contexts (the first %zu tokens of a document) the per-key distributions of %zu\n"
           "keys are averaged and compared with the model's distribution P by total variation (TV). For a\n"
           "distortion-free scheme the average tends to P as keys are added (TV shrinks like 1/sqrt(keys));\n"
           "KGW's does not: `ratio` (TV with a quarter of the keys / TV with all) is about 2 when the average\n"
           "converges to P and about 1 when a bias remains. `noise` is the TV of the same number of plain\n"
           "samples from P (mean +- standard deviation over 20 replicates): the Monte Carlo error a one-hot\n"
           "scheme like Gumbel must show, and no more if it is distortion-free. The last column tests the\n"
           "token each key actually draws (tokmark_embedder_sample with a fresh uniform number per key):\n"
           "Pearson's chi-square of the counts against P, summed over the contexts (cells with fewer than 5\n"
           "expected draws pooled), with its p-value; distortion-free schemes should give p-values spread\n"
           "over (0, 1), a biased one a tiny p.\n\n",
           Z.df_contexts, Z.prompt_len, Z.df_keys);
    printf("| scheme | TV, %zu keys | TV, %zu keys | ratio | noise, %zu samples | noise, %zu samples | chi-square / df |\n"
           "|---|---|---|---|---|---|---|\n",
           Z.df_keys / 4, Z.df_keys, Z.df_keys / 4, Z.df_keys);
    ev_ws w;
    uint32_t V = lm_vocab_size(m);
    ws_init(&w, V, Z.prompt_len + 4);
    const tokmark_scheme sch[3] = {TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL, TOKMARK_SCHEME_SYNTHID};
    const char *nm[3] = {"kgw d=2 h=4", "gumbel h=4", "synthid m=30 h=4"};
    size_t C = Z.df_contexts;
    tokmark_token_data *cands = xmalloc(C * EV_K * sizeof *cands);
    double *qs = xmalloc(C * EV_K * sizeof *qs), *avg = xcalloc(C * EV_K, sizeof *avg);
    double *cnt = xcalloc(C * EV_K, sizeof *cnt);
    size_t *ks = xmalloc(C * sizeof *ks);
    const int32_t **ps = xmalloc(C * sizeof *ps);
    size_t *nps = xmalloc(C * sizeof *nps);
    for (size_t c = 0; c < C; c++) {
        prompt_of(held, 100 + c, &ps[c], &nps[c]);
        w.hist[0] = lm_boundary(m);
        memcpy(w.hist + 1, ps[c], nps[c] * sizeof(int32_t));
        ks[c] = model_step(m, &w, nps[c] + 1, NULL);
        memcpy(cands + c * EV_K, w.cand, ks[c] * sizeof *w.cand);
        memcpy(qs + c * EV_K, w.q, ks[c] * sizeof *qs);
    }
    /* noise reference: plain samples, NREP replicates (mean and standard deviation) */
    enum { NREP = 20 };
    double noise[2] = {0, 0}, nsd[2] = {0, 0};
    for (int rep = 0; rep < NREP; rep++) {
        double nz[2] = {0, 0};
        eu_rng r;
        eu_rng_seed(&r, 4242 + (uint64_t)rep);
        for (size_t c = 0; c < C; c++) {
            memset(avg + c * EV_K, 0, EV_K * sizeof *avg);
            for (size_t i = 0; i < Z.df_keys; i++) {
                double u = eu_rng_unif(&r), acc = 0.0;
                size_t j = ks[c] - 1;
                for (size_t t = 0; t < ks[c]; t++)
                    if ((acc += qs[c * EV_K + t]) > u) {
                        j = t;
                        break;
                    }
                avg[c * EV_K + j] += 1.0;
                if (i + 1 == Z.df_keys / 4 || i + 1 == Z.df_keys) {
                    double *tv = &nz[i + 1 == Z.df_keys];
                    double *tmpv = xmalloc(ks[c] * sizeof *tmpv);
                    for (size_t t = 0; t < ks[c]; t++) tmpv[t] = avg[c * EV_K + t] / (double)(i + 1);
                    *tv += eu_tv(tmpv, qs + c * EV_K, ks[c]) / (double)C;
                    free(tmpv);
                }
            }
        }
        for (int k = 0; k < 2; k++) {
            noise[k] += nz[k] / NREP;
            nsd[k] += nz[k] * nz[k] / NREP;
        }
    }
    for (int k = 0; k < 2; k++) nsd[k] = sqrt(fmax(0.0, nsd[k] - noise[k] * noise[k]));
    tokmark_embedder_config ec = {EV_K, 64};
    for (int s = 0; s < 3; s++) {
        tokmark_params pp;
        params_for(&pp, sch[s], 4, 2.0, 30);
        memset(avg, 0, C * EV_K * sizeof *avg);
        memset(cnt, 0, C * EV_K * sizeof *cnt);
        double tv[2] = {0, 0};
        eu_rng ur;
        eu_rng_seed(&ur, 5150 + (uint64_t)s);
        for (size_t i = 0; i < Z.df_keys; i++) {
            tokmark_profile *pr = make_profile(&pp, 500000 + i);
            tokmark_embedder *e = NULL;
            if (tokmark_embedder_create(&e, pr, &ec) != TOKMARK_OK) die("embedder");
            for (size_t c = 0; c < C; c++) {
                tokmark_embedder_reset(e);
                tokmark_embedder_prompt(e, ps[c], nps[c]);
                memcpy(w.cand2, cands + c * EV_K, ks[c] * sizeof *w.cand2);
                tokmark_embedder_apply(e, w.cand2, ks[c]);
                for (size_t t = 0; t < ks[c]; t++) w.cl[t] = w.cand2[t].logit;
                eu_softmax(w.cl, ks[c], w.pw);
                for (size_t t = 0; t < ks[c]; t++) avg[c * EV_K + t] += w.pw[t];
                /* the token this key would choose, with a fresh uniform number */
                memcpy(w.cand2, cands + c * EV_K, ks[c] * sizeof *w.cand2);
                int32_t tok = tokmark_embedder_sample(e, w.cand2, ks[c], eu_rng_unif(&ur));
                for (size_t t = 0; t < ks[c]; t++)
                    if (cands[c * EV_K + t].id == tok) {
                        cnt[c * EV_K + t] += 1.0;
                        break;
                    }
                if (i + 1 == Z.df_keys / 4 || i + 1 == Z.df_keys) {
                    for (size_t t = 0; t < ks[c]; t++) w.pw[t] = avg[c * EV_K + t] / (double)(i + 1);
                    tv[i + 1 == Z.df_keys] += eu_tv(w.pw, qs + c * EV_K, ks[c]) / (double)C;
                }
            }
            tokmark_embedder_free(e);
            tokmark_profile_free(pr);
        }
        double chi = 0.0;
        size_t df = 0;
        for (size_t c = 0; c < C; c++) {
            size_t d1 = 0;
            chi += eu_chi2(cnt + c * EV_K, qs + c * EV_K, ks[c], (double)Z.df_keys, &d1);
            df += d1;
        }
        double pv = eu_chi2_sf(chi, (double)df);
        printf("| %s | %.4f | %.4f | %.2f | %.4f +- %.4f | %.4f +- %.4f | %.0f / %zu, p = %.2g |\n", nm[s], tv[0],
               tv[1], tv[0] / tv[1], noise[0], nsd[0], noise[1], nsd[1], chi, df, pv);
    }
    free(cands);
    free(qs);
    free(avg);
    free(cnt);
    free(ks);
    free(ps);
    free(nps);
    ws_free(&w);
    fflush(stdout);
}

/* ---- robustness ---- */
static void section_robustness(const ev_docs *held) {
    size_t G = Z.gens, L = Z.gen_len;
    const double rates[3] = {0.1, 0.2, 0.3};
    const char *an[3] = {"sub", "del", "ins"};
    int32_t *buf = xmalloc((2 * L + 8) * sizeof *buf);
    double *lp = xmalloc(G * sizeof *lp);
    static double med[MAX_SETTINGS][9], frac[MAX_SETTINGS][9], wmed[MAX_SETTINGS][2], wfrac[MAX_SETTINGS][2];
    const int32_t *pool = held->ids;
    size_t npool = held->ntok;
    size_t mixlen = 10 * L;
    int32_t *mix = xmalloc(mixlen * sizeof *mix);
    tokmark_trace *tr = xcalloc(mixlen, sizeof *tr);
    double *all = xmalloc(9 * G * sizeof *all), *lw = xmalloc(G * sizeof *lw);
    for (size_t i = 0; i < nS; i++) {
        ev_setting *x = &S[i];
        if (!x->wm) continue;
        size_t hd = 0, hw = 0;
        for (size_t g = 0; g < G; g++) {
            /* each generation is scored with its own key */
            tokmark_keyring *ring = ring_of(gen_key(i, g));
            tokmark_detector *d = make_detector(ring);
            const int32_t *p;
            size_t np;
            prompt_of(held, g, &p, &np);
            const int32_t *ids = x->ids + g * L;
            for (int a = 0; a < 3; a++)
                for (int rr = 0; rr < 3; rr++) {
                    eu_rng r;
                    eu_rng_seed(&r, 9000 + 1000 * (uint64_t)(a * 3 + rr) + g);
                    size_t n;
                    if (a == 0) n = eu_corrupt_substitute(ids, L, rates[rr], pool, npool, &r, buf);
                    else if (a == 1) n = eu_corrupt_delete(ids, L, rates[rr], &r, buf);
                    else n = eu_corrupt_insert(ids, L, rates[rr], pool, npool, &r, buf);
                    all[(size_t)(a * 3 + rr) * G + g] = score_doc(d, p, np, buf, n);
                }
            /* windows: the generation inside 9 times as much human text */
            tokmark_detector_set_trace(d, 0, tr, mixlen);
            eu_rng r;
            eu_rng_seed(&r, 9100 + g);
            size_t hlen = mixlen - L, start = (size_t)eu_rng_below(&r, npool - hlen), at = (size_t)eu_rng_below(&r, hlen + 1);
            memcpy(mix, pool + start, at * sizeof *mix);
            memcpy(mix + at, ids, L * sizeof *mix);
            memcpy(mix + at + L, pool + start + at, (hlen - at) * sizeof *mix);
            memset(tr, 0, mixlen * sizeof *tr);
            lp[g] = score_doc(d, NULL, 0, mix, mixlen);
            tms_window win;
            tms_best_window(tr, mixlen, &x->params, TOKMARK_SCORE_DEFAULT, TMS_WINDOW_MIN, &win);
            lw[g] = win.found ? tms_bonferroni(win.log10_p, (double)win.tried) : 0.0;
            hd += lp[g] <= EV_THR;
            hw += lw[g] <= EV_THR;
            tokmark_detector_free(d);
            tokmark_keyring_free(ring);
        }
        for (int k = 0; k < 9; k++) {
            size_t hit = 0;
            for (size_t g = 0; g < G; g++) hit += all[(size_t)k * G + g] <= EV_THR;
            frac[i][k] = (double)hit / (double)G;
            med[i][k] = eu_median(all + (size_t)k * G, G);
        }
        wmed[i][0] = eu_median(lp, G);
        wmed[i][1] = eu_median(lw, G);
        wfrac[i][0] = (double)hd / (double)G;
        wfrac[i][1] = (double)hw / (double)G;
    }
    free(all);
    free(lw);
    printf("\n## 3. Robustness\n\n");
    printf("The %zu generations of each setting (%zu tokens after the prompt), attacked: `sub` replaces, `del`\n"
           "deletes and `ins` inserts exactly 10/20/30 %% of the generated tokens (positions uniform without\n"
           "replacement; new tokens drawn from held-out human text). Each cell: median log10 p over the\n"
           "generations, and in parentheses the share with p <= 1e-6.\n\n",
           G, L);
    printf("| setting |");
    for (int a = 0; a < 3; a++)
        for (int rr = 0; rr < 3; rr++) printf(" %s %d%% |", an[a], (int)(rates[rr] * 100 + 0.5));
    printf("\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < nS; i++) {
        if (!S[i].wm) continue;
        printf("| %s |", S[i].name);
        for (int k = 0; k < 9; k++) printf(" %.1f (%.2f) |", med[i][k], frac[i][k]);
        printf("\n");
    }
    printf("\n**Windowed detection.** Each generation (%zu tokens) inserted at a random place into %zu tokens of\n"
           "held-out human text (10 %% watermarked). `document`: the whole document's exact test; `window`: the\n"
           "best window of SPEC §12.3 (32, 64, 128, ... scored tuples, step W/2), Bonferroni-corrected over all\n"
           "windows tried. Median log10 p (share with p <= 1e-6).\n\n",
           L, mixlen - L);
    printf("| setting | document | best window (corrected) |\n|---|---|---|\n");
    for (size_t i = 0; i < nS; i++) {
        if (!S[i].wm) continue;
        printf("| %s | %.2f (%.2f) | %.2f (%.2f) |\n", S[i].name, wmed[i][0], wfrac[i][0], wmed[i][1], wfrac[i][1]);
    }
    fflush(stdout);

    /* robustness plot: share detected vs rate, per attack, for a few settings */
    static double rx[4] = {0, 10, 20, 30}, ry[MAX_SETTINGS * 3][4];
    static char names[MAX_SETTINGS * 3][64];
    eu_series ser[MAX_SETTINGS * 3];
    size_t ns = 0;
    for (size_t i = 0; i < nS; i++) {
        if (!S[i].wm) continue;
        if (strstr(S[i].name, "d=1") != NULL || strstr(S[i].name, "d=4") != NULL) continue; /* keep the plot readable */
        for (int a = 0; a < 3; a++) {
            ry[ns][0] = 0; /* uncorrupted: use the power data */
            size_t hit = 0;
            for (size_t g = 0; g < G; g++) hit += S[i].curve[g * L + L - 1] <= EV_THR;
            ry[ns][0] = (double)hit / (double)G;
            for (int rr = 0; rr < 3; rr++) ry[ns][rr + 1] = frac[i][a * 3 + rr];
            snprintf(names[ns], sizeof names[ns], "%.47s %.3s", S[i].name, an[a]);
            ser[ns] = (eu_series){names[ns], rx, ry[ns], 4};
            ns++;
        }
    }
    write_plot("robustness.svg", "Share detected (p <= 1e-6) after corruption", "tokens corrupted (%)",
               "share detected", ser, ns, NAN, NULL);
    free(buf);
    free(lp);
    free(mix);
    free(tr);
}

/* ------------------------------------------------------------------------ */
/* 4: false positives                                                        */
/* ------------------------------------------------------------------------ */

static void section_fp(const ev_docs *held) {
    printf("\n## 4. False positives\n\n");
    size_t D = 0;
    size_t *idx = xmalloc(held->n * sizeof *idx);
    for (size_t i = 0; i < held->n && D < Z.fp_docs; i++)
        if (doc_len(held, i) >= 64) idx[D++] = i;
    printf("%zu held-out human documents (at most %zu tokens each), each scored under %zu keys per scheme;\n"
           "every (document, key) is one test, and each key's corpus test over all %zu documents is another.\n"
           "Observed share of tests with p <= alpha, with its exact 95 %% (Clopper-Pearson) interval. The\n"
           "interval treats the tests as independent: different keys give independent bits, but the tests of\n"
           "one key share tuples across documents. KGW and SynthID (mean) p-values are discrete and\n"
           "therefore conservative: the observed rate may lie below alpha.\n\n",
           D, Z.fp_doc_len, Z.fp_keys, D);
    printf("| scheme | tests | alpha | observed | 95 %% interval | corpus tests | observed (corpus) |\n"
           "|---|---|---|---|---|---|---|\n");
    const tokmark_scheme sch[3] = {TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL, TOKMARK_SCHEME_SYNTHID};
    const char *nm[3] = {"kgw d=2 h=4", "gumbel h=4", "synthid m=30 h=4"};
    for (int s = 0; s < 3; s++) {
        tokmark_params pp;
        params_for(&pp, sch[s], 4, 2.0, 30);
        tokmark_keyring *ring = NULL;
        if (tokmark_keyring_new(&ring) != TOKMARK_OK) die("ring");
        for (size_t k = 0; k < Z.fp_keys; k++)
            if (tokmark_keyring_add(ring, make_profile(&pp, 2000000 + (uint64_t)s * 100000 + k)) != TOKMARK_OK)
                die("ring");
        tokmark_detector *d = make_detector(ring);
        uint64_t c2 = 0, c3 = 0, tests = 0, cc2 = 0, cc3 = 0;
        for (size_t j = 0; j < D; j++) {
            size_t n = doc_len(held, idx[j]);
            if (n > Z.fp_doc_len) n = Z.fp_doc_len;
            tokmark_detector_begin(d);
            tokmark_detector_feed(d, doc_ids(held, idx[j]), n);
            for (size_t k = 0; k < Z.fp_keys; k++) {
                tokmark_result r;
                tokmark_detector_document(d, k, &r);
                if (r.scored == 0) continue;
                tests++;
                c2 += r.log10_p <= -2.0;
                c3 += r.log10_p <= -3.0;
            }
        }
        for (size_t k = 0; k < Z.fp_keys; k++) {
            tokmark_result r;
            tokmark_detector_corpus(d, k, &r);
            cc2 += r.log10_p <= -2.0;
            cc3 += r.log10_p <= -3.0;
        }
        double lo, hi;
        eu_clopper_pearson(c2, tests, 0.05, &lo, &hi);
        printf("| %s | %llu | 0.01 | %.5f | [%.5f, %.5f] | %zu | %.4f |\n", nm[s], (unsigned long long)tests,
               (double)c2 / (double)tests, lo, hi, Z.fp_keys, (double)cc2 / (double)Z.fp_keys);
        eu_clopper_pearson(c3, tests, 0.05, &lo, &hi);
        printf("| %s | %llu | 0.001 | %.5f | [%.5f, %.5f] | %zu | %.4f |\n", nm[s], (unsigned long long)tests,
               (double)c3 / (double)tests, lo, hi, Z.fp_keys, (double)cc3 / (double)Z.fp_keys);
        tokmark_detector_free(d);
        tokmark_keyring_free(ring);
        fflush(stdout);
    }
    free(idx);
}

/* ------------------------------------------------------------------------ */
/* 5: distillation (radioactivity)                                           */
/* ------------------------------------------------------------------------ */

typedef struct teach_ctx {
    const lm_model *m;
    const ev_docs *prompts;
    tokmark_profile *prof;
    size_t len, first; /* tokens per document; index of the first prompt */
    uint64_t seed;
    int32_t *out;      /* ndocs × (prompt_len + len): prompt then text (unused tail: -1) */
    size_t *n;         /* tokens per document */
} teach_ctx;

static void teach_job(void *vctx, size_t job, ev_ws *w) {
    teach_ctx *c = vctx;
    const int32_t *p;
    size_t np;
    prompt_of(c->prompts, c->first + job, &p, &np);
    int32_t *o = c->out + job * (Z.prompt_len + c->len);
    memcpy(o, p, np * sizeof *p);
    tokmark_embedder *e = NULL;
    if (c->prof != NULL && tokmark_embedder_create(&e, c->prof, NULL) != TOKMARK_OK) die("embedder");
    generate(c->m, e, p, np, c->len, c->seed + job, o + np, NULL, w);
    c->n[job] = np + c->len;
    tokmark_embedder_free(e);
}

typedef struct student_ctx {
    const lm_model *teacher;
    const ev_docs *train, *held;
    const int32_t *tdocs; /* teacher documents */
    const size_t *tn;
    const int32_t *rdocs; /* fresh teacher documents (reading mode) */
    const size_t *rn;
    double rho;
    /* results */
    int32_t *answers;     /* s_prompts × s_len */
    int32_t *pred;        /* r_docs × (prompt_len + t_len) top-1 predictions */
} student_ctx;

/* Train one student: round(ρ·t_docs) teacher documents and the rest human
 * chunks of the same length from the training split. */
static lm_model *train_student(const student_ctx *c) {
    lm_builder *b = NULL;
    if (lm_builder_new(&b, EV_S_ORDER, lm_vocab_size(c->teacher), lm_boundary(c->teacher), "cl100k_base") != TOKMARK_OK)
        die("builder");
    size_t nw = (size_t)floor(c->rho * (double)Z.t_docs + 0.5), stride = Z.prompt_len + Z.t_len;
    for (size_t i = 0; i < nw; i++)
        if (lm_builder_add(b, c->tdocs + i * stride, c->tn[i]) != TOKMARK_OK) die("builder add");
    /* human: chunks of `stride` tokens, the documents taken in a fixed order */
    size_t need = Z.t_docs - nw, di = 0, at = 0;
    while (need > 0) {
        size_t i = (di * 7919) % c->train->n, len = doc_len(c->train, i);
        if (at >= len) {
            di++;
            at = 0;
            continue;
        }
        size_t n = len - at < stride ? len - at : stride;
        if (n >= 32 && lm_builder_add(b, doc_ids(c->train, i) + at, n) != TOKMARK_OK) die("builder add");
        if (n >= 32) need--;
        at += n;
    }
    lm_model *m = NULL;
    if (lm_builder_finish(b, &m) != TOKMARK_OK) die("student training");
    lm_builder_free(b);
    return m;
}

typedef struct sgen_ctx {
    const lm_model *m;
    student_ctx *c;
} sgen_ctx;

static void student_job(void *vctx, size_t job, ev_ws *w) {
    sgen_ctx *sc = vctx;
    student_ctx *c = sc->c;
    if (job < Z.s_prompts) {
        const int32_t *p;
        size_t np;
        prompt_of(c->held, 300 + job, &p, &np);
        generate(sc->m, NULL, p, np, Z.s_len, 31000 + job, c->answers + job * Z.s_len, NULL, w);
    } else {
        /* reading mode: the student's top-1 prediction at every position of a teacher document */
        size_t r = job - Z.s_prompts, stride = Z.prompt_len + Z.t_len;
        const int32_t *x = c->rdocs + r * stride;
        size_t n = c->rn[r];
        int32_t *y = c->pred + r * stride;
        uint32_t V = lm_vocab_size(sc->m);
        w->hist[0] = lm_boundary(sc->m);
        for (size_t i = 0; i < n; i++) {
            size_t nh = 1 + i;
            if (i > 0) w->hist[i] = x[i - 1];
            lm_logits(sc->m, w->hist, nh, w->logits);
            int32_t best = -1;
            float bl = -INFINITY;
            for (uint32_t t = 0; t < V; t++)
                if (!g_banned[t] && w->logits[t] > bl) {
                    bl = w->logits[t];
                    best = (int32_t)t;
                }
            y[i] = best;
        }
    }
}

/* Closed-mode test (SPEC §12.4) of the answers; results for the real key
 * (index 0) and the control keys. */
typedef struct susp_res {
    double real;          /* log10 p of the real key */
    uint64_t scored, excluded;
    size_t ctl_hits2, ctl_hits6; /* controls with p ≤ 1e-2, ≤ 1e-6 */
    double ctl_min;       /* smallest control log10 p */
} susp_res;

static void ring_results(tokmark_detector *d, size_t nk, susp_res *r) {
    tokmark_result x;
    tokmark_detector_corpus(d, 0, &x);
    r->real = x.log10_p;
    r->scored = x.scored;
    r->ctl_hits2 = r->ctl_hits6 = 0;
    r->ctl_min = 0.0;
    for (size_t k = 1; k < nk; k++) {
        tokmark_detector_corpus(d, k, &x);
        r->ctl_hits2 += x.log10_p <= -2.0;
        r->ctl_hits6 += x.log10_p <= EV_THR;
        if (x.log10_p < r->ctl_min) r->ctl_min = x.log10_p;
    }
}

static void closed_test(tokmark_keyring *ring, uint32_t c, const student_ctx *sc, susp_res *res) {
    tokmark_detector *d = make_detector(ring);
    tms_set ps;
    if (tms_set_init(&ps, 256) != 0) die("out of memory");
    size_t excluded = 0;
    int32_t *rec = xmalloc((Z.prompt_len + Z.s_len) * sizeof *rec);
    for (size_t j = 0; j < Z.s_prompts; j++) {
        const int32_t *p;
        size_t np;
        prompt_of(sc->held, 300 + j, &p, &np);
        tms_set_clear(&ps);
        for (size_t i = 0; i + c <= np; i++)
            if (tms_set_add(&ps, tms_context_fp(p + i, c)) < 0) die("out of memory");
        memcpy(rec, p, np * sizeof *p);
        memcpy(rec + np, sc->answers + j * Z.s_len, Z.s_len * sizeof *rec);
        tokmark_detector_begin(d);
        tokmark_detector_prompt(d, rec, np);
        for (size_t i = np; i < np + Z.s_len; i++) {
            /* a token whose c-token context occurs in the prompt is context only */
            if (i >= c && tms_set_has(&ps, tms_context_fp(rec + i - c, c))) {
                tokmark_detector_prompt(d, rec + i, 1);
                excluded++;
            } else {
                tokmark_detector_feed(d, rec + i, 1);
            }
        }
    }
    ring_results(d, tokmark_keyring_size(ring), res);
    res->excluded = excluded;
    free(rec);
    tms_set_free(&ps);
    tokmark_detector_free(d);
}

static void reading_test(tokmark_keyring *ring, uint32_t c, const student_ctx *sc, susp_res *res) {
    tokmark_detector *d = make_detector(ring);
    size_t stride = Z.prompt_len + Z.t_len;
    for (size_t r = 0; r < Z.r_docs; r++) {
        const int32_t *x = sc->rdocs + r * stride, *y = sc->pred + r * stride;
        for (size_t i = c; i < sc->rn[r]; i++) {
            tokmark_detector_begin(d);
            tokmark_detector_prompt(d, x + i - c, c);
            tokmark_detector_feed(d, y + i, 1);
        }
    }
    ring_results(d, tokmark_keyring_size(ring), res);
    res->excluded = 0;
    tokmark_detector_free(d);
}

static void section_distill(const lm_model *teacher, const ev_docs *train, const ev_docs *held) {
    enum { NH = 3 };
    const uint32_t hs[NH] = {1, 2, 4};
    const double rhos[5] = {0.0, 0.01, 0.05, 0.20, 1.0};
    static susp_res closed[NH][5], reading[NH][5];
    size_t stride = Z.prompt_len + Z.t_len;
    uint32_t V = lm_vocab_size(teacher);
    for (int hi = 0; hi < NH; hi++) {
        tokmark_params pp;
        params_for(&pp, TOKMARK_SCHEME_KGW, hs[hi], 2.0, 0);
        tokmark_profile *prof = make_profile(&pp, 3000 + hs[hi]);
        /* teacher text: training documents for the students, and fresh ones for reading mode */
        int32_t *tdocs = xmalloc(Z.t_docs * stride * sizeof *tdocs), *rdocs = xmalloc(Z.r_docs * stride * sizeof *rdocs);
        size_t *tn = xcalloc(Z.t_docs, sizeof *tn), *rn = xcalloc(Z.r_docs, sizeof *rn);
        progress("distillation h=%u: teacher writes %zu + %zu documents of %zu tokens", hs[hi], Z.t_docs, Z.r_docs,
                 Z.t_len);
        teach_ctx tc = {teacher, train, prof, Z.t_len, 0, 50000, tdocs, tn};
        run_jobs(Z.t_docs, teach_job, &tc, V, stride + 8);
        teach_ctx rc = {teacher, held, prof, Z.t_len, 500, 60000, rdocs, rn};
        run_jobs(Z.r_docs, teach_job, &rc, V, stride + 8);
        /* the ring: the real key, then the control keys (SPEC §12.7) */
        tokmark_keyring *ring = NULL;
        if (tokmark_keyring_new(&ring) != TOKMARK_OK || tokmark_keyring_add(ring, prof) != TOKMARK_OK) die("ring");
        for (uint32_t i = 0; i < Z.controls; i++)
            if (tokmark_keyring_add(ring, control_profile(&pp, i)) != TOKMARK_OK) die("ring");
        for (int ri = 0; ri < 5; ri++) {
            student_ctx sc = {teacher, train, held, tdocs, tn, rdocs, rn, rhos[ri], NULL, NULL};
            sc.answers = xmalloc(Z.s_prompts * Z.s_len * sizeof *sc.answers);
            sc.pred = xmalloc(Z.r_docs * stride * sizeof *sc.pred);
            lm_model *st = train_student(&sc);
            sgen_ctx g = {st, &sc};
            run_jobs(Z.s_prompts + Z.r_docs, student_job, &g, V, stride + Z.s_len + 8);
            closed_test(ring, hs[hi], &sc, &closed[hi][ri]);
            reading_test(ring, hs[hi], &sc, &reading[hi][ri]);
            progress("  rho=%.2f: closed log10 p %.2f, reading log10 p %.2f", rhos[ri], closed[hi][ri].real,
                     reading[hi][ri].real);
            lm_free(st);
            free(sc.answers);
            free(sc.pred);
        }
        tokmark_keyring_free(ring);
        free(tdocs);
        free(rdocs);
        free(tn);
        free(rn);
    }
    printf("\n## 5. Distillation (radioactivity)\n\n");
    printf("Teacher: the reference LM (order %d) with KGW (delta 2, gamma 0.25, context width h). Each student is an\n"
           "order-%d n-gram model trained on %zu documents of %zu tokens (a %zu-token human prompt, then text):\n"
           "a share rho of them written by the teacher (prompts from training documents), the rest chunks of\n"
           "human training text. Closed mode (SPEC §12.4): the student answers %zu held-out prompts with %zu\n"
           "tokens (temperature 1, top-k %d); all answers form one corpus, deduplicated, with prompt exclusion.\n"
           "Reading mode (SPEC §12.5): the student's top-1 prediction at every position of %zu fresh teacher\n"
           "documents, each (teacher context, prediction) scored once. Cells: log10 p of the real key (the\n"
           "corpus test); `ctl` counts the %zu control keys (SPEC §12.7, never used) with p <= 0.01 and\n"
           "p <= 1e-6, and the smallest control log10 p.\n\n",
           EV_ORDER, EV_S_ORDER, Z.t_docs, stride, Z.prompt_len, Z.s_prompts, Z.s_len, EV_K, Z.r_docs, Z.controls);
    printf("| h | rho | closed log10 p | tuples (excluded) | ctl <=1e-2 / <=1e-6 / min | reading log10 p | tuples | ctl "
           "<=1e-2 / <=1e-6 / min |\n|---|---|---|---|---|---|---|---|\n");
    static double rx[5], ry[2 * NH][5];
    for (int hi = 0; hi < NH; hi++)
        for (int ri = 0; ri < 5; ri++) {
            susp_res *a = &closed[hi][ri], *b = &reading[hi][ri];
            printf("| %u | %g %% | %.2f | %llu (%llu) | %zu / %zu / %.2f | %.2f | %llu | %zu / %zu / %.2f |\n", hs[hi],
                   rhos[ri] * 100, a->real, (unsigned long long)a->scored, (unsigned long long)a->excluded,
                   a->ctl_hits2, a->ctl_hits6, a->ctl_min, b->real, (unsigned long long)b->scored, b->ctl_hits2,
                   b->ctl_hits6, b->ctl_min);
            rx[ri] = (double)ri; /* categorical axis */
            ry[hi * 2][ri] = fmax(a->real, -50.0);
            ry[hi * 2 + 1][ri] = fmax(b->real, -50.0);
        }
    {
        size_t f6 = 0, f2 = 0, real6 = 0;
        double worst = 0.0;
        for (int hi = 0; hi < NH; hi++) {
            f6 += closed[hi][0].ctl_hits6 + reading[hi][0].ctl_hits6;
            f2 += closed[hi][0].ctl_hits2 + reading[hi][0].ctl_hits2;
            real6 += (closed[hi][0].real <= EV_THR) + (reading[hi][0].real <= EV_THR);
            worst = fmin(worst, fmin(closed[hi][0].real, reading[hi][0].real));
        }
        printf("\nStudents with rho = 0 (never saw watermarked text), both modes, every h: real key flagged (p <= 1e-6) "
               "in %zu of %d tests (smallest log10 p %.2f); control keys flagged at p <= 1e-6 in %zu of %zu tests, at "
               "p <= 0.01 in %zu (nominal %.1f).\n",
               real6, 2 * NH, worst, f6, (size_t)(2 * NH) * Z.controls, f2, 0.01 * (double)(2 * NH) * (double)Z.controls);
    }
    size_t h2 = 0, h6 = 0, nt = 0;
    for (int hi = 0; hi < NH; hi++)
        for (int ri = 0; ri < 5; ri++) {
            h2 += closed[hi][ri].ctl_hits2 + reading[hi][ri].ctl_hits2;
            h6 += closed[hi][ri].ctl_hits6 + reading[hi][ri].ctl_hits6;
            nt += 2 * Z.controls;
        }
    double lo, hi2;
    eu_clopper_pearson(h2, nt, 0.05, &lo, &hi2);
    printf("Over every student and both modes: %zu of %zu control tests at p <= 0.01 (rate %.4f, 95 %% interval "
           "[%.4f, %.4f]; nominal 0.01), %zu at p <= 1e-6.\n",
           h2, nt, (double)h2 / (double)nt, lo, hi2, h6);
    static char snames[2 * NH][32];
    eu_series ser[2 * NH];
    for (int hi = 0; hi < NH; hi++)
        for (int k = 0; k < 2; k++) {
            snprintf(snames[hi * 2 + k], sizeof snames[0], "%s, h=%u", k ? "reading" : "closed", hs[hi]);
            ser[hi * 2 + k] = (eu_series){snames[hi * 2 + k], rx, ry[hi * 2 + k], 5};
        }
    static const char *const xt[5] = {"0 %", "1 %", "5 %", "20 %", "100 %"};
    write_plot_cat("distillation.svg", "Radioactivity: student log10 p vs share of teacher text (clipped at -50)",
                   "watermarked share rho of the student's training text", "log10 p (real key)", ser, 2 * NH, EV_THR,
                   "p = 1e-6", xt, 5);
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* main                                                                      */
/* ------------------------------------------------------------------------ */

static uint8_t *make_banned(const tokmark_tokenizer *t, int32_t boundary) {
    uint32_t V = tokmark_tokenizer_vocab_size(t);
    uint8_t *ban = xcalloc(V, 1);
    for (uint32_t id = 0; id < V; id++) {
        size_t len = 0;
        const uint8_t *b = tokmark_tokenizer_token_bytes(t, (int32_t)id, &len);
        if (b == NULL || (int32_t)id == boundary) {
            ban[id] = 1;
        } else if (len > 4 && b[0] == '<' && b[1] == '|' && b[len - 1] == '>') {
            int32_t ids[2];
            size_t n = 0;
            if (tokmark_tokenizer_encode(t, (const char *)b, len, ids, 2, &n, 0) != TOKMARK_OK || n != 1 ||
                ids[0] != (int32_t)id)
                ban[id] = 1;
        }
    }
    return ban;
}

int main(int argc, char **argv) {
    const char *corpus = "data/corpus";
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--corpus") && i + 1 < argc) corpus = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out_dir = argv[++i];
        else if (!strcmp(argv[i], "--docs") && i + 1 < argc) docs_dir = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: eval [--corpus DIR] [--out DIR] [--docs DIR] [--threads T] [--quick]\n");
            return 2;
        }
    }
    Z = quick ? SIZES_QUICK : SIZES_FULL;
    if (tokmark_init() != TOKMARK_OK) die("tokmark_init failed");
    mkdir(out_dir, 0755);
    if (docs_dir != NULL) mkdir(docs_dir, 0755);
    double t0 = now_s();
    progress("tokenizing %s", corpus);
    tokmark_tokenizer *tok = NULL;
    size_t line = 0;
    if (tokmark_tokenizer_load(&tok, "cl100k_base", &line) != TOKMARK_OK)
        die("cannot load cl100k_base (run scripts/fetch-tokenizers.sh)");
    tokmark_tokenizer_encoder *enc = NULL;
    if (tokmark_tokenizer_encoder_create(&enc, tok) != TOKMARK_OK) die("encoder");
    ev_docs train = {0}, held = {0};
    char p[1024];
    path_in(p, sizeof p, corpus, "train");
    load_docs(p, enc, &train);
    path_in(p, sizeof p, corpus, "heldout");
    load_docs(p, enc, &held);
    int32_t eot = 100257;
    /* the teacher: load when trained on exactly these documents, else train */
    char lmpath[1024];
    path_in(lmpath, sizeof lmpath, out_dir, "teacher-o4.lm");
    lm_model *m = NULL;
    char why[256];
    if (lm_load(&m, lmpath, why, sizeof why) == TOKMARK_OK) {
        lm_info info;
        lm_get_info(m, &info);
        if (info.documents != train.n || info.tokens != train.ntok || info.order != EV_ORDER) {
            lm_free(m);
            m = NULL;
        }
    }
    if (m == NULL) {
        progress("training the order-%d reference model on %zu documents (%zu tokens)", EV_ORDER, train.n, train.ntok);
        lm_builder *b = NULL;
        if (lm_builder_new(&b, EV_ORDER, tokmark_tokenizer_vocab_size(tok), eot, "cl100k_base") != TOKMARK_OK)
            die("builder");
        for (size_t i = 0; i < train.n; i++)
            if (lm_builder_add(b, doc_ids(&train, i), doc_len(&train, i)) != TOKMARK_OK) die("builder add");
        if (lm_builder_finish(b, &m) != TOKMARK_OK) die("training failed");
        lm_builder_free(b);
        if (lm_save(m, lmpath) != TOKMARK_OK) die("%s: %s", lmpath, strerror(errno));
    } else {
        progress("loaded %s", lmpath);
    }
    g_banned = make_banned(tok, eot);

    printf("# tokmark evaluation\n\nReference model: order %d interpolated Kneser-Ney over cl100k_base, trained on %zu "
           "documents (%zu tokens); %zu held-out documents (%zu tokens). Generation: temperature 1, top-k %d, no end "
           "of text. Threshold: p <= 1e-6.%s\n",
           EV_ORDER, train.n, train.ntok, held.n, held.ntok, EV_K, quick ? " QUICK MODE (smoke test sizes)." : "");
    add_setting("control", 0, 0, 0, 0);
    add_setting("kgw d=1 h=1", TOKMARK_SCHEME_KGW, 1, 1.0, 0);
    add_setting("kgw d=2 h=1", TOKMARK_SCHEME_KGW, 1, 2.0, 0);
    add_setting("kgw d=4 h=1", TOKMARK_SCHEME_KGW, 1, 4.0, 0);
    add_setting("kgw d=1 h=4", TOKMARK_SCHEME_KGW, 4, 1.0, 0);
    add_setting("kgw d=2 h=4", TOKMARK_SCHEME_KGW, 4, 2.0, 0);
    add_setting("kgw d=4 h=4", TOKMARK_SCHEME_KGW, 4, 4.0, 0);
    add_setting("gumbel h=1", TOKMARK_SCHEME_GUMBEL, 1, 0, 0);
    add_setting("gumbel h=4", TOKMARK_SCHEME_GUMBEL, 4, 0, 0);
    add_setting("synthid m=10 h=4", TOKMARK_SCHEME_SYNTHID, 4, 0, 10);
    add_setting("synthid m=30 h=4", TOKMARK_SCHEME_SYNTHID, 4, 0, 30);

    section_power(m, &held);
    progress("distortion-free check");
    section_distortion(m, &held);
    progress("robustness");
    section_robustness(&held);
    progress("false positives");
    section_fp(&held);
    section_distill(m, &train, &held);
    printf("\n(total time %.0f s with %d threads)\n", now_s() - t0, n_threads);
    progress("done");

    for (size_t i = 0; i < nS; i++) {
        free(S[i].ids);
        free(S[i].st);
        free(S[i].until);
        free(S[i].curve);
    }
    free(g_banned);
    lm_free(m);
    docs_free(&train);
    docs_free(&held);
    tokmark_tokenizer_encoder_free(enc);
    tokmark_tokenizer_free(tok);
    return 0;
}
