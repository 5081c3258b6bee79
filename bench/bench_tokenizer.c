/* bench_tokenizer — tokenizer throughput (issue #3 targets).
 * Prints "NAME VALUE UNIT" lines: MB/s per core on English text (a few MB
 * built at run time from /usr/share/common-licenses and man pages), the
 * scaling with threads sharing one tokenizer, and, when node and
 * build/node/node_modules/tiktoken are present, npm tiktoken's speed on the
 * same text and the ratio; cl100k_base's split pattern by PCRE2 (JIT) and by
 * the hand-written scanner, alone and end to end, on the English and a
 * multilingual text (best of several runs).  Pathological lines of 1 MB and
 * 10 MB (random letters, one letter, a 2-byte character, digits) for
 * cl100k_base, o200k_base and the GPT-2 and Mistral tokenizer.json, with the
 * 10 MB / 1 MB time ratio; the tokenizer.json files' load time and English
 * MB/s against npm @anush008/tokenizers (bench/hf-tokenizers-bench.js; a
 * message instead without node or the package).  `bench_tokenizer hf` runs
 * only the pathological lines and the tokenizer.json part. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokmark.h"
#include "tok/tok.h" /* internal: the split pattern's two implementations */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static char *corpus;
static size_t corpus_len;

static void append_cmd(const char *cmd, size_t limit) {
    FILE *p = popen(cmd, "r");
    if (p == NULL) return;
    size_t got;
    while (corpus_len < limit && (got = fread(corpus + corpus_len, 1, limit - corpus_len, p)) > 0) corpus_len += got;
    pclose(p);
}

/* Drop bytes that are not well-formed UTF-8 sequences (man pages are clean,
 * but be safe): keeps the benchmark on the strict path. */
static void build_corpus(void) {
    const size_t cap = 4u << 20;
    corpus = (char *)malloc(cap);
    if (corpus == NULL) exit(1);
    while (corpus_len < cap / 2) {
        size_t before = corpus_len;
        append_cmd("cat /usr/share/common-licenses/* 2>/dev/null", cap);
        append_cmd("for f in bash ls tar grep find make; do zcat /usr/share/man/man1/$f.1.gz 2>/dev/null; done", cap);
        if (corpus_len == before) break;
    }
    size_t n = 0;
    /* keep ASCII and well-formed multi-byte sequences only */
    for (size_t i = 0; i < corpus_len;) {
        unsigned char c = (unsigned char)corpus[i];
        size_t l = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        int ok = l > 0 && i + l <= corpus_len;
        for (size_t k = 1; ok && k < l; k++) ok = ((unsigned char)corpus[i + k] & 0xC0) == 0x80;
        if (ok && l == 3 && c == 0xED && (unsigned char)corpus[i + 1] >= 0xA0) ok = 0;
        if (ok && l == 3 && c == 0xE0 && (unsigned char)corpus[i + 1] < 0xA0) ok = 0;
        if (ok && l == 4 && c == 0xF0 && (unsigned char)corpus[i + 1] < 0x90) ok = 0;
        if (ok && l == 4 && c == 0xF4 && (unsigned char)corpus[i + 1] >= 0x90) ok = 0;
        if (!ok) l = 1;
        if (ok) memmove(corpus + n, corpus + i, l), n += l;
        i += l;
    }
    corpus_len = n;
}

static void check(int rc, const char *what) {
    if (rc != TOKMARK_OK) {
        fprintf(stderr, "bench_tokenizer: %s: %s%s\n", what, tokmark_error_name(rc),
                rc == TOKMARK_ERR_IO ? " (run scripts/fetch-tokenizers.sh)" : "");
        exit(1);
    }
}

/* Best MB/s of `runs` encodes of s[0..n). */
static double mbps(const tokmark_tokenizer *t, const char *s, size_t n, int runs, size_t *tokens) {
    tokmark_tokenizer_encoder *e = NULL;
    check(tokmark_tokenizer_encoder_create(&e, t), "encoder");
    int32_t *ids = (int32_t *)malloc((n + 1) * sizeof *ids);
    if (ids == NULL) exit(1);
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        check(tokmark_tokenizer_encoder_encode(e, s, n, ids, n + 1, tokens, 0), "encode");
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    free(ids);
    tokmark_tokenizer_encoder_free(e);
    return (double)n / best / 1e6;
}

typedef struct job {
    const tokmark_tokenizer *t;
} job;

static void *worker(void *arg) {
    job *j = (job *)arg;
    size_t k;
    (void)mbps(j->t, corpus, corpus_len, 2, &k);
    return NULL;
}

/* Aggregate MB/s of `nt` threads each encoding the corpus twice. */
static double threads_mbps(const tokmark_tokenizer *t, int nt) {
    pthread_t th[64];
    job j = {t};
    double t0 = now();
    for (int i = 0; i < nt; i++) pthread_create(&th[i], NULL, worker, &j);
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    return 2.0 * (double)nt * (double)corpus_len / (now() - t0) / 1e6;
}

/* A multilingual text: sentences of many scripts, shuffled, ~2 MB. */
static const char *const ml_sentences[] = {
    "The quick brown fox jumps over the lazy dog; it's 3:45 pm and we've 12,345 items.\n",
    "Der schnelle braune Fuchs springt über den faulen Hund. Größe: 1.234,56 €.\n",
    "Le cœur a ses raisons que la raison ne connaît point — c'était l'été 1998.\n",
    "El niño comió paella en la playa de Málaga; ¿verdad? ¡Sí!\n",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Цена 250 ₽.\n",
    "Ταχίστη αλώπηξ βαφής ψημένη γη, δρασκελίζει υπέρ νωθρού κυνός.\n",
    "我能吞下玻璃而不伤身体。今天是2024年3月15日，天气很好。\n",
    "いろはにほへと　ちりぬるを　わかよたれそ　つねならむ。東京は晴れです。\n",
    "다람쥐 헌 쳇바퀴에 타고파. 오늘은 2024년입니다.\n",
    "نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق. ١٢٣٤\n",
    "עטלף אבק נס דרך מזגן שהתפוצץ כי חם.\n",
    "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम। १२३\n",
    "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน\n",
    "Emoji: 👍🏽 👨‍👩‍👧‍👦 ❤️ 🇩🇪 — done!\n",
    "    for (int i = 0; i < n; i++) { sum += a[i] * b[i]; }  // dot product\n",
    "\t\tReturn value:   0 on success,\r\n  -1 on error.   \n\n",
};

static char *ml;
static size_t ml_len;

static void build_multilingual(void) {
    const size_t cap = 2u << 20;
    ml = (char *)malloc(cap + 256);
    if (ml == NULL) exit(1);
    const size_t ns = sizeof ml_sentences / sizeof ml_sentences[0];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    while (ml_len < cap) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *p = ml_sentences[x % ns];
        size_t l = strlen(p);
        memcpy(ml + ml_len, p, l);
        ml_len += l;
    }
}

/* Best MB/s of cutting s[0..n) into pieces with `split` (TM_SPLIT_*). */
static double split_mbps(const tokmark_tokenizer *t, int split, const char *s, size_t n, int runs, size_t *pieces) {
    tokmark_tokenizer_encoder *e = NULL;
    check(tokmark_tokenizer_encoder_create(&e, t), "encoder");
    size_t *ends = (size_t *)malloc((n + 1) * sizeof *ends);
    if (ends == NULL) exit(1);
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        check(tm_tok_split(e, split, (const uint8_t *)s, n, ends, n + 1, pieces), "split");
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    free(ends);
    tokmark_tokenizer_encoder_free(e);
    return (double)n / best / 1e6;
}

/* The split pattern of `name`: PCRE2 (JIT) against the scanner `scan`. */
static void bench_split(tokmark_tokenizer *t, const char *name, int scan) {
    static const char *const split_name[2] = {"pcre2", "scanner"};
    const struct {
        const char *name;
        const char *s;
        size_t n;
    } texts[2] = {{"english", corpus, corpus_len}, {"multilingual", ml, ml_len}};
    int keep = t->split;
    for (int k = 0; k < 2; k++) {
        size_t np[2] = {0, 0}, nt[2] = {0, 0};
        double sp[2], en[2];
        for (int m = 0; m < 2; m++) {
            int split = m == 0 ? TM_SPLIT_PCRE2 : scan;
            sp[m] = split_mbps(t, split, texts[k].s, texts[k].n, 5, &np[m]);
            t->split = split;
            en[m] = mbps(t, texts[k].s, texts[k].n, 5, &nt[m]);
            printf("pretokenize_%s_%s_%s %.1f MB/s\n", texts[k].name, name, split_name[m], sp[m]);
            printf("tokenize_%s_%s_%s %.1f MB/s\n", texts[k].name, name, split_name[m], en[m]);
        }
        t->split = keep;
        if (np[0] != np[1] || nt[0] != nt[1]) {
            fprintf(stderr, "bench_tokenizer: %s %s: PCRE2 and the scanner disagree (%zu/%zu pieces, %zu/%zu tokens)\n",
                    name, texts[k].name, np[0], np[1], nt[0], nt[1]);
            exit(1);
        }
        printf("pretokenize_%s_%s_scanner_vs_pcre2 %.2f x\n", texts[k].name, name, sp[1] / sp[0]);
        printf("tokenize_%s_%s_scanner_vs_pcre2 %.2f x\n", texts[k].name, name, en[1] / en[0]);
    }
}

/* Seconds of one encode of s[0..n) (the encoder made beforehand). */
static double encode_secs(const tokmark_tokenizer *t, const char *s, size_t n, size_t *tokens) {
    tokmark_tokenizer_encoder *e = NULL;
    check(tokmark_tokenizer_encoder_create(&e, t), "encoder");
    int32_t *ids = (int32_t *)malloc((n + 1) * sizeof *ids);
    if (ids == NULL) exit(1);
    double t0 = now();
    check(tokmark_tokenizer_encoder_encode(e, s, n, ids, n + 1, tokens, 0), "encode");
    double dt = now() - t0;
    free(ids);
    tokmark_tokenizer_encoder_free(e);
    return dt;
}

/* Pathological single lines of 1 MB and 10 MB: random letters without spaces,
 * one repeated character, a repeated 2-byte character (U+00E9), random digits.
 * Prints both times and their ratio (about 10 when the time is linear). */
static void pathological(const tokmark_tokenizer *t, const char *name) {
    const size_t N = 10u << 20;
    char *s = (char *)malloc(N);
    if (s == NULL) exit(1);
    static const char *const kinds[4] = {"no_spaces", "one_char", "two_byte_char", "digits"};
    for (int k = 0; k < 4; k++) {
        uint64_t x = 88172645463325252ull;
        for (size_t i = 0; i < N; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s[i] = k == 0 ? (char)('a' + x % 26) : k == 1 ? 'a' : k == 2 ? (char)(i % 2 ? 0xA9 : 0xC3) : (char)('0' + x % 10);
        }
        size_t n1 = 0, n10 = 0;
        double t1 = encode_secs(t, s, N / 10, &n1), t10 = encode_secs(t, s, N, &n10);
        printf("tokenize_1MB_%s_%s %.3f s (%.1f MB/s)\n", kinds[k], name, t1, (double)(N / 10) / t1 / 1e6);
        printf("tokenize_10MB_%s_%s %.3f s (%.1f MB/s)\n", kinds[k], name, t10, (double)N / t10 / 1e6);
        printf("tokenize_10MB_over_1MB_%s_%s %.1f x (10 = linear)\n", kinds[k], name, t10 / t1);
        fflush(stdout);
    }
    free(s);
}

/* Hugging Face tokenizer.json files of data/tokenizers: load time, MB/s on
 * the English text, the pathological lines, and npm @anush008/tokenizers
 * (bench/hf-tokenizers-bench.js) on the same text when node has it. */
static void bench_hf(int patho) {
    static const char *const hf[3] = {"gpt2", "llama3", "mistral"};
    double ours[3] = {0, 0, 0}, load[3] = {0, 0, 0};
    char fpath[3][512];
    for (int i = 0; i < 3; i++) {
        const char *dir = getenv("TOKMARK_DATA_DIR");
        snprintf(fpath[i], sizeof fpath[i], "%s/%s.tokenizer.json", dir != NULL && dir[0] ? dir : "data/tokenizers", hf[i]);
        tokmark_tokenizer *t = NULL;
        size_t line = 0, ntok = 0;
        double t0 = now();
        int rc = tokmark_tokenizer_load(&t, fpath[i], &line);
        if (rc != TOKMARK_OK) {
            printf("tokenize_english_hf_%s - (%s: %s; run scripts/fetch-tokenizers.sh)\n", hf[i], fpath[i],
                   tokmark_error_name(rc));
            continue;
        }
        load[i] = (now() - t0) * 1e3;
        printf("tokenizer_load_hf_%s %.1f ms\n", hf[i], load[i]);
        ours[i] = mbps(t, corpus, corpus_len, 5, &ntok);
        printf("tokenize_english_hf_%s %.1f MB/s\n", hf[i], ours[i]);
        printf("tokenize_english_hf_%s_bytes_per_token %.2f -\n", hf[i], (double)corpus_len / (double)ntok);
        fflush(stdout);
        if (patho && i != 1) pathological(t, hf[i]);
        tokmark_tokenizer_free(t);
    }
    /* npm @anush008/tokenizers on the same text */
    char path[] = "/tmp/tokmark-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "wb");
    if (f == NULL) return;
    fwrite(corpus, 1, corpus_len, f);
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "node bench/hf-tokenizers-bench.js %s %s %s %s 2>&1", path, fpath[0], fpath[1], fpath[2]);
    FILE *p = popen(cmd, "r");
    char buf[512];
    int got = 0;
    while (p != NULL && fgets(buf, sizeof buf, p) != NULL) {
        char name[64];
        double mb, ms;
        if (sscanf(buf, "%63s %lf %lf", name, &mb, &ms) == 3) {
            for (int i = 0; i < 3; i++)
                if (strstr(fpath[i], name) != NULL && ours[i] > 0) {
                    printf("npm_hf_tokenizers_load_%s %.1f ms\n", hf[i], ms);
                    printf("npm_hf_tokenizers_english_%s %.1f MB/s\n", hf[i], mb);
                    printf("tokenize_english_hf_%s_vs_npm_hf_tokenizers %.1f x\n", hf[i], ours[i] / mb);
                    printf("tokenizer_load_hf_%s_vs_npm_hf_tokenizers %.1f x faster\n", hf[i], ms / load[i]);
                    got = 1;
                }
        } else if (!got)
            printf("npm_hf_tokenizers - %s", buf); /* the script's reason for skipping */
    }
    if (p != NULL) pclose(p);
    unlink(path);
}

int main(int argc, char **argv) {
    /* `bench_tokenizer hf`: only the pathological inputs and the tokenizer.json part */
    int only_hf = argc > 1 && strcmp(argv[1], "hf") == 0;
    check(tokmark_init(), "init");
    build_corpus();
    if (corpus_len < (1u << 20)) {
        fprintf(stderr, "bench_tokenizer: too little English text found (%zu bytes)\n", corpus_len);
        return 1;
    }
    static const char *const names[] = {"cl100k_base", "o200k_base", "p50k_base", "r50k_base"};
    tokmark_tokenizer *tok[4];
    double ours[4];
    printf("tokenizer_corpus_english %.2f MB\n", (double)corpus_len / 1e6);
    if (only_hf) {
        size_t line = 0;
        for (int i = 0; i < 2; i++) {
            check(tokmark_tokenizer_load(&tok[i], names[i], &line), names[i]);
            pathological(tok[i], names[i]);
            tokmark_tokenizer_free(tok[i]);
        }
        bench_hf(1);
        free(corpus);
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        size_t line = 0, ntok = 0;
        double t0 = now();
        check(tokmark_tokenizer_load(&tok[i], names[i], &line), names[i]);
        printf("tokenizer_load_%s %.1f ms\n", names[i], (now() - t0) * 1e3);
        ours[i] = mbps(tok[i], corpus, corpus_len, 5, &ntok);
        printf("tokenize_english_%s %.1f MB/s\n", names[i], ours[i]);
        printf("tokenize_english_%s_bytes_per_token %.2f -\n", names[i], (double)corpus_len / (double)ntok);
    }
    build_multilingual();
    printf("tokenizer_corpus_multilingual %.2f MB\n", (double)ml_len / 1e6);
    bench_split(tok[0], "cl100k_base", TM_SPLIT_CL100K);
    bench_split(tok[1], "o200k_base", TM_SPLIT_O200K);
    free(ml);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = ncpu > 1 ? (int)(ncpu < 8 ? ncpu : 8) : 1;
    double one = threads_mbps(tok[0], 1), many = threads_mbps(tok[0], nt);
    printf("tokenize_english_cl100k_base_threads%d %.1f MB/s\n", nt, many);
    printf("tokenize_thread_scaling_%d %.2f x\n", nt, many / one);

    /* pathological inputs (1 MB and 10 MB lines), then the Hugging Face tokenizers */
    for (int i = 0; i < 2; i++) pathological(tok[i], names[i]);
    bench_hf(1);

    /* npm tiktoken on the same text, when available */
    double theirs[4] = {0, 0, 0, 0};
    char path[] = "/tmp/tokmark-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0 && access("build/node/node_modules/tiktoken/package.json", R_OK) == 0) {
        FILE *f = fdopen(fd, "wb");
        fwrite(corpus, 1, corpus_len, f);
        fclose(f);
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "node bench/tiktoken-bench.js %s cl100k_base o200k_base p50k_base r50k_base 2>/dev/null", path);
        FILE *p = popen(cmd, "r");
        char name[64];
        double val;
        while (p != NULL && fscanf(p, "%63s %lf", name, &val) == 2)
            for (int i = 0; i < 4; i++)
                if (strcmp(name, names[i]) == 0) theirs[i] = val;
        if (p != NULL) pclose(p);
    } else if (fd >= 0) {
        close(fd);
    }
    unlink(path);
    for (int i = 0; i < 4; i++)
        if (theirs[i] > 0) {
            printf("npm_tiktoken_english_%s %.1f MB/s\n", names[i], theirs[i]);
            printf("tokenize_english_%s_vs_npm_tiktoken %.1f x\n", names[i], ours[i] / theirs[i]);
        }
    if (theirs[0] == 0) printf("npm_tiktoken_english - (node or build/node/node_modules/tiktoken absent)\n");
    printf("target tokenize_english_cl100k_base %.2f x_of_goal (goal >= 50 MB/s per core)\n", ours[0] / 50);
    if (theirs[0] > 0)
        printf("target tokenize_vs_npm_tiktoken %.2f x_of_goal (goal >= 10x npm tiktoken)\n", ours[0] / theirs[0] / 10);
    for (int i = 0; i < 4; i++) tokmark_tokenizer_free(tok[i]);
    free(corpus);
    return 0;
}
