/* bench_scan — `tokmark scan` end to end (issue #4): raw English JSON Lines,
 * read + parse + tokenize (cl100k_base) + dedup + score + windows + output,
 * timed as the tool runs (build/tokmark, output to /dev/null), best of 3.
 *
 *   scan_j1, scan_j2        MB/s of JSONL input with -j 1 and -j 2 (and MB per CPU
 *                           second), their ratio, and beside it the ratio this
 *                           machine gives a compute-bound loop on two threads
 *   scan_kgw/gumbel/synthid MB/s with -j 1 for each scheme
 *   accounts                1 key vs 1000 account keys over the same 1 MB: the time of
 *                           the 1000-key scan against 1000 single-key scans
 *
 * The corpus (32 MB) is English built at run time from the text on this
 * machine (/usr/share/common-licenses, /usr/share/doc/...copyright) by a word
 * bigram walk, so that most 5-token tuples are new as in real scraped text
 * (copying the same files over and over would make dedup hit nearly always
 * and flatter the figures).  TOKMARK_BENCH_KEEP=1 keeps the corpus and keys
 * (for profiling).  Needs scripts/fetch-tokenizers.sh. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tokmark.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x5CA7;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct word {
    const char *p;
    uint32_t len;
    uint64_t h;
} word;

static int cmp_word(const void *a, const void *b) {
    const word *x = *(const word *const *)a, *y = *(const word *const *)b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return x < y ? -1 : x > y;
}

static char g_tool[1024], g_dir[256];

static double child_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

/* One run of `tokmark scan ARGS`; its wall and CPU (user + system) seconds. */
static void scan_once(const char *args, double *wall, double *cpu) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' scan -q %s > /dev/null", g_dir, g_tool, args);
    double c0 = child_cpu(), t0 = now();
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_scan: failed: %s\n", cmd);
        exit(1);
    }
    *wall = now() - t0;
    *cpu = child_cpu() - c0;
}

/* Best (by wall time) of ROUNDS runs. */
#define ROUNDS 3
static double run_scan(const char *args, double *secs) {
    double best = 1e30;
    for (int r = 0; r < ROUNDS; r++) {
        double w, c;
        scan_once(args, &w, &c);
        if (w < best) best = w;
    }
    *secs = best;
    return best;
}

/* The machine's own two-thread scaling, for comparison: a compute-bound
 * loop (no memory traffic) on one thread, then on two at once. */
static volatile uint64_t g_sink;
static void *spin(void *arg) {
    uint64_t x = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < 300000000u; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    g_sink = x;
    return NULL;
}
static double spin_time(int threads) {
    pthread_t t[2];
    double t0 = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, spin, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    return now() - t0;
}

static void write_jsonl(const char *path, word **idx, word *w, size_t nw, size_t target) {
    FILE *f = fopen(path, "w");
    if (f == NULL) exit(1);
    size_t out = 0, pos = (size_t)(rnd() % nw);
    uint64_t rec = 0;
    while (out < target) {
        out += (size_t)fprintf(f, "{\"id\":%llu,\"text\":\"", (unsigned long long)rec++);
        size_t want = 1000 + (size_t)(rnd() % 3000), len = 0;
        while (len < want) {
            const word *x = &w[pos];
            for (uint32_t k = 0; k < x->len; k++) {
                char c = x->p[k];
                if (c == '"' || c == '\\') fputc('\\', f), len++;
                if ((unsigned char)c < 0x20) c = ' ';
                fputc(c, f);
            }
            fputc(' ', f);
            len += x->len + 1;
            /* jump to another occurrence of this word (a bigram walk) */
            if (rnd() % 10 < 6) {
                size_t lo = 0, hi = nw;
                /* find the group of x in idx by hash (binary search) */
                while (lo < hi) {
                    size_t mid = (lo + hi) / 2;
                    if (idx[mid]->h < x->h) lo = mid + 1;
                    else hi = mid;
                }
                size_t end = lo;
                while (end < nw && idx[end]->h == x->h) end++;
                pos = (size_t)(idx[lo + rnd() % (end - lo)] - w);
            }
            pos = (pos + 1) % nw;
        }
        out += len;
        fputs("\"}\n", f);
        out += 3;
    }
    fclose(f);
}

int main(int argc, char **argv) {
    (void)argc;
    const char *slash = strrchr(argv[0], '/');
    char cwd[512];
    if (slash == NULL || getcwd(cwd, sizeof cwd) == NULL) return 1;
    int n = (int)(slash - argv[0]);
    if (argv[0][0] == '/') snprintf(g_tool, sizeof g_tool, "%.*s/../tokmark", n, argv[0]);
    else snprintf(g_tool, sizeof g_tool, "%s/%.*s/../tokmark", cwd, n, argv[0]);
    snprintf(g_dir, sizeof g_dir, "/tmp/tokmark-bench-scan-XXXXXX");
    if (mkdtemp(g_dir) == NULL) return 1;
    tokmark_tokenizer *tok = NULL;
    if (tokmark_tokenizer_load(&tok, "cl100k_base", NULL) != TOKMARK_OK) {
        fprintf(stderr, "bench_scan: cl100k_base not installed (scripts/fetch-tokenizers.sh); skipped\n");
        return 0;
    }
    tokmark_tokenizer_free(tok);
    /* the word pool */
    FILE *p = popen("cat /usr/share/common-licenses/* /usr/share/doc/*/copyright 2>/dev/null", "r");
    size_t cap = 1 << 24, len = 0, k;
    char *text = malloc(cap);
    while (p != NULL && (k = fread(text + len, 1, cap - len, p)) > 0) {
        len += k;
        if (len == cap) text = realloc(text, cap *= 2);
    }
    if (p) pclose(p);
    size_t wcap = len / 2 + 1, nw = 0;
    word *w = malloc(wcap * sizeof *w);
    for (size_t i = 0; i < len;) {
        while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) i++;
        size_t s = i;
        while (i < len && !(text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) i++;
        if (i > s && i - s < 40) {
            uint64_t h = 1469598103934665603ull;
            for (size_t q = s; q < i; q++) h = (h ^ (unsigned char)text[q]) * 1099511628211ull;
            w[nw++] = (word){text + s, (uint32_t)(i - s), h};
        }
    }
    word **idx = malloc(nw * sizeof *idx);
    for (size_t i = 0; i < nw; i++) idx[i] = &w[i];
    qsort(idx, nw, sizeof *idx, cmp_word);
    char path[512];
    snprintf(path, sizeof path, "%s/corpus.jsonl", g_dir);
    const size_t MB = 1 << 20, size = 32 * MB;
    write_jsonl(path, idx, w, nw, size);
    snprintf(path, sizeof path, "%s/small.jsonl", g_dir);
    write_jsonl(path, idx, w, nw, 1 * MB);
    struct stat st;
    snprintf(path, sizeof path, "%s/corpus.jsonl", g_dir);
    stat(path, &st);
    double big = (double)st.st_size / 1e6;
    snprintf(path, sizeof path, "%s/small.jsonl", g_dir);
    stat(path, &st);
    double small = (double)st.st_size / 1e6;
    /* keys */
    const tokmark_scheme schemes[3] = {TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL, TOKMARK_SCHEME_SYNTHID};
    for (int s = 0; s < 3; s++) {
        tokmark_params par;
        tokmark_params_default(&par, schemes[s]);
        tokmark_profile *prof = NULL;
        if (tokmark_profile_generate(&prof, &par) != TOKMARK_OK) return 1;
        snprintf(path, sizeof path, "%s/%s.key", g_dir, tokmark_scheme_name(schemes[s]));
        if (tokmark_profile_save(prof, path, 1) != TOKMARK_OK) return 1;
        tokmark_profile_free(prof);
    }
    snprintf(path, sizeof path, "%s/accounts.txt", g_dir);
    FILE *fa = fopen(path, "w");
    for (int i = 0; i < 1000; i++) fprintf(fa, "customer-%04d\n", i);
    fclose(fa);
    printf("bench_scan: corpus %.1f MB of English JSON Lines (%zu-word pool), best of %d\n", big, nw, ROUNDS);
    /* -j 1, -j 2 and the machine's own scaling, interleaved so that each
     * sees the same conditions (this is a shared virtual machine) */
    double t1 = 1e30, t2 = 1e30, c1 = 0, c2 = 0, s1 = 1e30, s2 = 1e30, t;
    for (int r = 0; r < ROUNDS; r++) {
        double wt, c;
        scan_once("--profile kgw.key -j 1 corpus.jsonl", &wt, &c);
        if (wt < t1) t1 = wt, c1 = c;
        scan_once("--profile kgw.key -j 2 corpus.jsonl", &wt, &c);
        if (wt < t2) t2 = wt, c2 = c;
        if ((wt = spin_time(1)) < s1) s1 = wt;
        if ((wt = spin_time(2)) < s2) s2 = wt;
    }
    printf("scan_j1 %.1f MB/s (%.1f MB per CPU second)\n", big / t1, big / c1);
    printf("scan_j2 %.1f MB/s (%.1f MB per CPU second)\n", big / t2, big / c2);
    double machine = 2 * s1 / s2;
    printf("scan_j2_over_j1 %.2f x; the machine gives %.2f x to two compute-bound threads (%.0f%% of it)\n", t1 / t2,
           machine, 100 * (t1 / t2) / machine);
    run_scan("--profile kgw.key -j 1 --no-windows corpus.jsonl", &t);
    printf("scan_kgw_no_windows %.1f MB/s\n", big / t);
    run_scan("--profile gumbel.key -j 1 corpus.jsonl", &t);
    printf("scan_gumbel %.1f MB/s\n", big / t);
    run_scan("--profile synthid.key -j 1 corpus.jsonl", &t);
    printf("scan_synthid %.1f MB/s\n", big / t);
    double one, many;
    run_scan("--profile kgw.key -j 1 small.jsonl", &one);
    run_scan("--profile kgw.key --accounts accounts.txt -j 1 small.jsonl", &many);
    printf("accounts_1_key %.3f s (%.1f MB)\n", one, small);
    printf("accounts_1000_keys %.3f s\n", many);
    printf("accounts_vs_1000_rescans %.1f x faster (1000 x %.3f s = %.1f s)\n", 1000 * one / many, one, 1000 * one);
    char cmd[512];
    if (getenv("TOKMARK_BENCH_KEEP") != NULL) { /* for profiling: keep the corpus and keys */
        fprintf(stderr, "bench_scan: kept %s\n", g_dir);
        return 0;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) return 1;
    free(idx);
    free(w);
    free(text);
    return 0;
}
