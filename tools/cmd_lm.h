/* cmd_lm.h — `tokmark lm`: train, describe and evaluate the reference n-gram
 * language model (SPEC.md §11, tools/cli/lm.c).
 *
 *   tokmark lm train --corpus DIR|FILE... [--order N] [--tokenizer NAME] -o MODEL
 *   tokmark lm info MODEL
 *   tokmark lm perplexity MODEL DIR|FILE...
 *
 * A corpus is files and directories; every regular file found (directories
 * walked recursively in byte order of names, hidden entries skipped) is one
 * document of UTF-8 text (ill-formed bytes become U+FFFD); a file whose name
 * ends in ".jsonl" holds one document per line, the "text" of a JSON object. */
#ifndef TOKMARK_CMD_LM_H
#define TOKMARK_CMD_LM_H

#include "cli.h"
#include "lm.h"

#include <dirent.h>
#include <jansson.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

static const char cmd_lm_help[] =
    "usage: tokmark lm train --corpus DIR|FILE [--corpus ...] [--order N]\n"
    "                        [--tokenizer NAME|PATH] [--boundary ID] [--force] -o MODEL\n"
    "       tokmark lm info MODEL\n"
    "       tokmark lm perplexity MODEL DIR|FILE...\n"
    "\n"
    "The reference language model (SPEC.md section 11): an interpolated modified\n"
    "Kneser-Ney n-gram model over token ids, giving log-probabilities over the\n"
    "full vocabulary like a neural model's logits (see 'tokmark generate').\n"
    "Each regular file of a corpus is one document (directories are read\n"
    "recursively, in byte order of names; scripts/build-corpus.sh makes one),\n"
    "except FILE.jsonl: one document per line, its \"text\" string (what\n"
    "'tokmark generate --jsonl' writes).\n"
    "\n"
    "  train        count, smooth and write MODEL (refuses to overwrite without --force)\n"
    "    --corpus P     a file or directory of text (repeatable; further\n"
    "                   positional arguments are corpus paths too)\n"
    "    --order N      n-gram order, 1..6 (default 4)\n"
    "    --tokenizer T  built-in encoding or rank file (default cl100k_base)\n"
    "    --boundary ID  the document boundary token (default: <|endoftext|>)\n"
    "  info         order, vocabulary, counts, discounts, size and load time\n"
    "  perplexity   per-token perplexity of the documents under the model\n";

static double lmcli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct lmcli_files {
    char **v;
    size_t n, cap;
} lmcli_files;

static void lmcli_files_free(lmcli_files *f) {
    for (size_t i = 0; i < f->n; i++) free(f->v[i]);
    free(f->v);
    f->v = NULL;
    f->n = f->cap = 0;
}

static int lmcli_files_push(lmcli_files *f, const char *path) {
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 64;
        char **v = realloc(f->v, cap * sizeof *v);
        if (v == NULL) return -1;
        f->v = v;
        f->cap = cap;
    }
    size_t len = strlen(path);
    char *s = malloc(len + 1);
    if (s == NULL) return -1;
    memcpy(s, path, len + 1);
    f->v[f->n++] = s;
    return 0;
}

static int lmcli_strcmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file under path (itself if a file), in byte order of names.
 * Returns EXIT_OK or an exit code after printing the error. */
static int lmcli_collect(const char *path, lmcli_files *out, int depth) {
    struct stat st;
    if (stat(path, &st) != 0) return cli_file_error(path, TOKMARK_ERR_IO, 0, errno, NULL);
    if (S_ISREG(st.st_mode)) return lmcli_files_push(out, path) == 0 ? EXIT_OK : EXIT_FAIL;
    if (!S_ISDIR(st.st_mode) || depth > 64) return EXIT_OK; /* devices, sockets, deep links: skipped */
    DIR *d = opendir(path);
    if (d == NULL) return cli_file_error(path, TOKMARK_ERR_IO, 0, errno, NULL);
    lmcli_files names = {NULL, 0, 0};
    struct dirent *ent;
    int rc = EXIT_OK;
    while ((ent = readdir(d)) != NULL)
        if (ent->d_name[0] != '.' && lmcli_files_push(&names, ent->d_name) != 0) rc = EXIT_FAIL;
    closedir(d);
    if (names.n > 0) qsort(names.v, names.n, sizeof *names.v, lmcli_strcmp);
    for (size_t i = 0; i < names.n && rc == EXIT_OK; i++) {
        size_t len = strlen(path) + strlen(names.v[i]) + 2;
        char *sub = malloc(len);
        if (sub == NULL) {
            rc = EXIT_FAIL;
            break;
        }
        snprintf(sub, len, "%s/%s", path, names.v[i]);
        rc = lmcli_collect(sub, out, depth + 1);
        free(sub);
    }
    lmcli_files_free(&names);
    if (rc == EXIT_FAIL) cli_error("out of memory");
    return rc;
}

/* The whole file; NULL after printing an error (*rc its exit code). */
static char *lmcli_read(const char *path, size_t *len, int *rc) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *rc = cli_file_error(path, TOKMARK_ERR_IO, 0, errno, NULL);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *b2 = realloc(buf, cap *= 2);
        if (b2 == NULL) {
            free(buf);
            buf = NULL;
        } else {
            buf = b2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (buf == NULL) {
        cli_error("out of memory");
        *rc = EXIT_FAIL;
        return NULL;
    }
    if (err) {
        free(buf);
        *rc = cli_file_error(path, TOKMARK_ERR_IO, 0, EIO, NULL);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Tokenize a whole text into *ids (grown as needed; ill-formed UTF-8 becomes
 * U+FFFD, special-token spellings stay text). */
static int lmcli_encode(tokmark_tokenizer_encoder *enc, const char *text, size_t len, int32_t **ids, size_t *cap,
                        size_t *n) {
    for (;;) {
        int rc = tokmark_tokenizer_encoder_encode(enc, text, len, *ids, *cap, n, TOKMARK_ENCODE_REPLACE_INVALID);
        if (rc != TOKMARK_OK) return rc;
        if (*n <= *cap) return TOKMARK_OK;
        int32_t *v = realloc(*ids, *n * sizeof *v);
        if (v == NULL) return TOKMARK_ERR_NOMEM;
        *ids = v;
        *cap = *n;
    }
}

/* Call fn(ctx, text, len) for every document of a corpus file: the whole
 * file, or, for a name ending in ".jsonl", the "text" string of every
 * non-empty line (one JSON object per line, as `tokmark generate --jsonl`
 * writes).  Returns EXIT_OK, fn's non-zero result, or an exit code after
 * printing "FILE:LINE: ..." for a malformed line. */
typedef int (*lmcli_doc_fn)(void *ctx, const char *path, const char *text, size_t len);

static int lmcli_each_doc(const char *path, lmcli_doc_fn fn, void *ctx) {
    size_t len = 0;
    int rc = EXIT_OK;
    char *buf = lmcli_read(path, &len, &rc);
    if (buf == NULL) return rc;
    size_t pl = strlen(path);
    if (pl < 6 || strcmp(path + pl - 6, ".jsonl") != 0) {
        rc = fn(ctx, path, buf, len);
        free(buf);
        return rc;
    }
    size_t lineno = 0;
    for (size_t at = 0; at < len && rc == EXIT_OK;) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t ll = nl != NULL ? (size_t)(nl - (buf + at)) : len - at;
        lineno++;
        size_t i = 0;
        while (i < ll && (buf[at + i] == ' ' || buf[at + i] == '\t' || buf[at + i] == '\r')) i++;
        if (i < ll) {
            json_error_t jerr;
            json_t *o = json_loadb(buf + at, ll, 0, &jerr);
            json_t *t = o != NULL ? json_object_get(o, "text") : NULL;
            if (!json_is_string(t)) {
                fprintf(stderr, "tokmark: %s:%zu: %s\n", path, lineno,
                        o == NULL ? jerr.text : "no \"text\" string in this object");
                rc = EXIT_FILE;
            } else {
                rc = fn(ctx, path, json_string_value(t), json_string_length(t));
            }
            json_decref(o);
        }
        at += ll + 1;
    }
    free(buf);
    return rc;
}

/* The id of "<|endoftext|>" as one special token, or -1. */
static int32_t lmcli_eot(const tokmark_tokenizer *t) {
    int32_t ids[4];
    size_t n = 0;
    static const char s[] = "<|endoftext|>";
    if (tokmark_tokenizer_encode(t, s, sizeof s - 1, ids, 4, &n, TOKMARK_ENCODE_ALLOW_SPECIAL) != TOKMARK_OK || n != 1)
        return -1;
    return ids[0];
}

static int lmcli_load_tokenizer(tokmark_tokenizer **t, const char *name) {
    size_t line = 0;
    int rc = tokmark_tokenizer_load(t, name, &line);
    if (rc == TOKMARK_OK) return EXIT_OK;
    int e = errno;
    return cli_file_error(name, rc, line, e,
                          rc == TOKMARK_ERR_IO && e == ENOENT ? "run scripts/fetch-tokenizers.sh" : NULL);
}

/* Load a model; on failure print "FILE: message (place)" and return the exit code. */
static int lmcli_load_model(lm_model **m, const char *path) {
    char why[256];
    int rc = lm_load(m, path, why, sizeof why);
    if (rc == TOKMARK_OK) return EXIT_OK;
    int e = errno;
    return cli_file_error(path, rc, 0, e, rc == TOKMARK_ERR_FORMAT ? why : NULL);
}

/* The model's own tokenizer (by the name recorded in the model file). */
static int lmcli_model_tokenizer(const lm_model *m, const char *model_path, tokmark_tokenizer **t) {
    const char *name = lm_tokenizer_name(m);
    if (name[0] == '\0') {
        cli_error("%s: the model records no tokenizer", model_path);
        return EXIT_FILE;
    }
    int rc = lmcli_load_tokenizer(t, name);
    if (rc != EXIT_OK) return rc;
    if (tokmark_tokenizer_vocab_size(*t) != lm_vocab_size(m)) {
        cli_error("%s: vocabulary size %u differs from tokenizer %s's %u", model_path, lm_vocab_size(m), name,
                  tokmark_tokenizer_vocab_size(*t));
        tokmark_tokenizer_free(*t);
        *t = NULL;
        return EXIT_FILE;
    }
    return EXIT_OK;
}

typedef struct lmcli_train_ctx {
    tokmark_tokenizer_encoder *enc;
    lm_builder *b;
    int32_t **ids;
    size_t *cap;
    size_t bytes, docs;
} lmcli_train_ctx;

/* One training document: tokenize and add. */
static int lmcli_train_doc(void *ctx, const char *path, const char *text, size_t len) {
    lmcli_train_ctx *c = ctx;
    size_t n = 0;
    c->bytes += len;
    int err = lmcli_encode(c->enc, text, len, c->ids, c->cap, &n);
    if (err == TOKMARK_OK) err = lm_builder_add(c->b, *c->ids, n);
    if (err != TOKMARK_OK) {
        cli_error("%s: %s", path,
                  err == TOKMARK_ERR_INVALID ? "holds the boundary token or is too large" : tokmark_error_message(err));
        return cli_exit_code(err);
    }
    if (n > 0) c->docs++;
    return EXIT_OK;
}

static int lm_train(int argc, char **argv) {
    enum { OPT_CORPUS = 1, OPT_ORDER, OPT_TOK, OPT_BOUNDARY, OPT_OUT, OPT_FORCE, OPT_HELP };
    static const cli_opt opts[] = {{"corpus", 0, 1, OPT_CORPUS},   {"order", 0, 1, OPT_ORDER},
                                   {"tokenizer", 0, 1, OPT_TOK},   {"boundary", 0, 1, OPT_BOUNDARY},
                                   {"output", 'o', 1, OPT_OUT},    {"force", 0, 0, OPT_FORCE},
                                   {"help", 'h', 0, OPT_HELP},     {NULL, 0, 0, 0}};
    uint32_t order = 4, boundary = UINT32_MAX;
    const char *tokname = "cl100k_base", *outp = NULL;
    int force = 0;
    lmcli_files files = {NULL, 0, 0};
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *val;
    int id, rc = EXIT_OK;
    while (rc == EXIT_OK && (id = cli_next(&a, opts, &val)) != CLI_END) {
        switch (id) {
        case OPT_CORPUS:
        case CLI_POS: rc = lmcli_collect(val, &files, 0); break;
        case OPT_ORDER:
            if (!cli_parse_u32("--order", val, 1, LM_MAX_ORDER, &order)) rc = EXIT_USAGE;
            break;
        case OPT_TOK: tokname = val; break;
        case OPT_BOUNDARY:
            if (!cli_parse_u32("--boundary", val, 0, INT32_MAX, &boundary)) rc = EXIT_USAGE;
            break;
        case OPT_OUT: outp = val; break;
        case OPT_FORCE: force = 1; break;
        case OPT_HELP: fputs(cmd_lm_help, stdout); lmcli_files_free(&files); return EXIT_OK;
        default: rc = EXIT_USAGE; break;
        }
    }
    if (rc != EXIT_OK) {
        lmcli_files_free(&files);
        return rc;
    }
    if (outp == NULL) {
        lmcli_files_free(&files);
        return cli_usage_error("train: -o MODEL is required");
    }
    if (files.n == 0) {
        lmcli_files_free(&files);
        return cli_usage_error("train: no corpus files (give --corpus DIR|FILE)");
    }
    if (!force && access(outp, F_OK) == 0) {
        lmcli_files_free(&files);
        return cli_file_error(outp, TOKMARK_ERR_EXISTS, 0, 0, "use --force to replace it");
    }
    double t0 = lmcli_now();
    tokmark_tokenizer *tok = NULL;
    tokmark_tokenizer_encoder *enc = NULL;
    lm_builder *b = NULL;
    lm_model *m = NULL;
    int32_t *ids = NULL;
    size_t cap = 0, bytes = 0;
    rc = lmcli_load_tokenizer(&tok, tokname);
    if (rc != EXIT_OK) goto done;
    if (boundary == UINT32_MAX) {
        int32_t eot = lmcli_eot(tok);
        if (eot < 0) {
            rc = cli_usage_error("train: tokenizer %s has no <|endoftext|>; give --boundary ID", tokname);
            goto done;
        }
        boundary = (uint32_t)eot;
    }
    int err = tokmark_tokenizer_encoder_create(&enc, tok);
    if (err == TOKMARK_OK)
        err = lm_builder_new(&b, order, tokmark_tokenizer_vocab_size(tok), (int32_t)boundary,
                             tokmark_tokenizer_name(tok));
    if (err != TOKMARK_OK) {
        cli_error("%s", err == TOKMARK_ERR_INVALID ? "--boundary is not below the vocabulary size"
                                                   : tokmark_error_message(err));
        rc = cli_exit_code(err);
        goto done;
    }
    lmcli_train_ctx tc = {enc, b, &ids, &cap, 0, 0};
    for (size_t i = 0; i < files.n && rc == EXIT_OK; i++) rc = lmcli_each_doc(files.v[i], lmcli_train_doc, &tc);
    if (rc != EXIT_OK) goto done;
    bytes = tc.bytes;
    double t1 = lmcli_now();
    err = lm_builder_finish(b, &m);
    if (err != TOKMARK_OK) {
        cli_error("%s", err == TOKMARK_ERR_INVALID ? "the corpus has no tokens" : tokmark_error_message(err));
        rc = cli_exit_code(err);
        goto done;
    }
    double t2 = lmcli_now();
    err = lm_save(m, outp);
    if (err != TOKMARK_OK) {
        rc = cli_file_error(outp, err, 0, errno, NULL);
        goto done;
    }
    lm_info info;
    lm_get_info(m, &info);
    fprintf(stderr, "%s: %llu documents, %zu bytes, %llu tokens (%s), order %u\n", outp,
            (unsigned long long)info.documents, bytes,
            (unsigned long long)info.tokens, tokmark_tokenizer_name(tok), order);
    fprintf(stderr, "%s: tokenized in %.2f s, counted and smoothed in %.2f s; %.1f MiB written\n", outp, t1 - t0,
            t2 - t1, (double)info.file_bytes / 1048576.0);
done:
    lm_free(m);
    lm_builder_free(b);
    free(ids);
    tokmark_tokenizer_encoder_free(enc);
    tokmark_tokenizer_free(tok);
    lmcli_files_free(&files);
    return rc;
}

static int lm_info_cmd(int argc, char **argv) {
    if (argc != 2) return cli_usage_error("info: give one MODEL file");
    double t0 = lmcli_now();
    lm_model *m = NULL;
    int rc = lmcli_load_model(&m, argv[1]);
    if (rc != EXIT_OK) return rc;
    double t1 = lmcli_now();
    lm_info in;
    lm_get_info(m, &in);
    printf("file        %s\n", argv[1]);
    printf("tokenizer   %s\n", lm_tokenizer_name(m)[0] ? lm_tokenizer_name(m) : "(none)");
    printf("order       %u\n", in.order);
    printf("vocab-size  %u\n", in.vocab);
    printf("boundary    %d\n", in.boundary);
    printf("documents   %llu\n", (unsigned long long)in.documents);
    printf("tokens      %llu\n", (unsigned long long)in.tokens);
    printf("bytes       %llu\n", (unsigned long long)in.file_bytes);
    printf("load-ms     %.1f\n", (t1 - t0) * 1e3);
    printf("%-5s %12s %12s %8s %8s %8s\n", "order", "n-grams", "contexts", "D1", "D2", "D3+");
    for (uint32_t n = 0; n < in.order; n++)
        printf("%-5u %12llu %12llu %8.4f %8.4f %8.4f\n", n + 1, (unsigned long long)in.grams[n],
               (unsigned long long)in.contexts[n], in.discount[n][0], in.discount[n][1], in.discount[n][2]);
    lm_free(m);
    return EXIT_OK;
}

typedef struct lmcli_ppl_ctx {
    const lm_model *m;
    tokmark_tokenizer_encoder *enc;
    int32_t **ids, **hist;
    size_t *cap, *hcap;
    double ll;
    uint64_t events, docs;
} lmcli_ppl_ctx;

/* One evaluated document: B t1 .. tn E, every token and the end predicted. */
static int lmcli_ppl_doc(void *ctx, const char *path, const char *text, size_t len) {
    lmcli_ppl_ctx *c = ctx;
    size_t n = 0;
    int err = lmcli_encode(c->enc, text, len, c->ids, c->cap, &n);
    if (err == TOKMARK_OK && n + 2 > *c->hcap) {
        int32_t *h = realloc(*c->hist, (n + 2) * sizeof *h);
        if (h == NULL) {
            err = TOKMARK_ERR_NOMEM;
        } else {
            *c->hist = h;
            *c->hcap = n + 2;
        }
    }
    if (err != TOKMARK_OK) {
        cli_error("%s: %s", path, tokmark_error_message(err));
        return cli_exit_code(err);
    }
    if (n == 0) return EXIT_OK; /* an empty document is no document (as in training) */
    int32_t *h = *c->hist;
    h[0] = lm_boundary(c->m);
    memcpy(h + 1, *c->ids, n * sizeof *h);
    h[n + 1] = lm_boundary(c->m);
    for (size_t j = 1; j <= n + 1; j++) c->ll += lm_logprob(c->m, h, j, h[j]);
    c->events += n + 1;
    c->docs++;
    return EXIT_OK;
}

static int lm_perplexity(int argc, char **argv) {
    if (argc < 3) return cli_usage_error("perplexity: give MODEL and DIR|FILE...");
    lm_model *m = NULL;
    tokmark_tokenizer *tok = NULL;
    tokmark_tokenizer_encoder *enc = NULL;
    lmcli_files files = {NULL, 0, 0};
    int32_t *ids = NULL, *hist = NULL;
    size_t cap = 0, hcap = 0;
    int rc = lmcli_load_model(&m, argv[1]);
    if (rc == EXIT_OK) rc = lmcli_model_tokenizer(m, argv[1], &tok);
    for (int i = 2; i < argc && rc == EXIT_OK; i++) rc = lmcli_collect(argv[i], &files, 0);
    if (rc != EXIT_OK) goto done;
    if (tokmark_tokenizer_encoder_create(&enc, tok) != TOKMARK_OK) {
        cli_error("out of memory");
        rc = EXIT_FAIL;
        goto done;
    }
    double t0 = lmcli_now();
    lmcli_ppl_ctx pc = {m, enc, &ids, &hist, &cap, &hcap, 0.0, 0, 0};
    for (size_t f = 0; f < files.n && rc == EXIT_OK; f++) rc = lmcli_each_doc(files.v[f], lmcli_ppl_doc, &pc);
    if (rc != EXIT_OK) goto done;
    double ll = pc.ll;
    uint64_t events = pc.events;
    double t1 = lmcli_now();
    printf("documents   %llu\n", (unsigned long long)pc.docs);
    printf("predicted   %llu (tokens and document ends)\n", (unsigned long long)events);
    printf("log-lik     %.1f nats\n", ll);
    printf("perplexity  %.3f\n", events > 0 ? exp(-ll / (double)events) : NAN);
    printf("tokens/s    %.0f\n", (double)events / (t1 - t0 > 0 ? t1 - t0 : 1e-9));
done:
    free(ids);
    free(hist);
    tokmark_tokenizer_encoder_free(enc);
    tokmark_tokenizer_free(tok);
    lm_free(m);
    lmcli_files_free(&files);
    return rc;
}

static int cmd_lm(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("give a subcommand: train, info or perplexity");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(cmd_lm_help, stdout);
        return EXIT_OK;
    }
    if (strcmp(sub, "train") == 0) return lm_train(argc - 1, argv + 1);
    if (strcmp(sub, "info") == 0) return lm_info_cmd(argc - 1, argv + 1);
    if (strcmp(sub, "perplexity") == 0) return lm_perplexity(argc - 1, argv + 1);
    return cli_usage_error("unknown subcommand '%s'", sub);
}

#endif
