/* cmd_report.h — `tokmark report`: a signed, reproducible audit report of a
 * scan (SPEC.md §13), `tokmark report verify`, and `tokmark keygen
 * --signing` (the Ed25519 report-signing key).
 *
 * The report runs the scan of tools/cmd_scan.h with N control keys (SPEC
 * §12.7), collects per-document results through the scan's hook, hashes the
 * evidence, and writes DIR/report.json (canonical), DIR/report.pdf
 * (tools/cli/report_pdf.c) and DIR/report.sig into a temporary sibling
 * directory that is renamed into place only when complete. */
#ifndef TOKMARK_CMD_REPORT_H
#define TOKMARK_CMD_REPORT_H

#include "cli.h"
#include "cmd_scan.h"
#include "report_pdf.h"
#include "report_util.h"

#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char cmd_report_help[] =
    "usage: tokmark report --profile KEY --signing-key SK -o DIR [--title T] [--examiner NAME]\n"
    "                      [--controls N] [--commit-key] [scan options] INPUT...\n"
    "       tokmark report verify DIR [--public-key SK.pub] [--evidence] [--profile KEY]\n"
    "\n"
    "Scan INPUT (files and directories; not standard input) for the watermark of\n"
    "KEY, repeat the scan with N control keys that were never used (SPEC.md\n"
    "§12.7) to measure the false-positive rate on this very input, and write a\n"
    "signed audit report (SPEC.md §13) to the new directory DIR:\n"
    "  report.json  complete and canonical (same inputs, same bytes apart from the time)\n"
    "  report.pdf   the same for people: case, method, results, error rate, plots,\n"
    "               limitations, evidence (every input's size and SHA-256)\n"
    "  report.sig   Ed25519 signatures of both files by the report-signing key\n"
    "DIR appears complete or not at all.\n"
    "\n"
    "  --signing-key FILE   report-signing key (tokmark keygen --signing -o FILE)\n"
    "  -o, --output DIR     the report directory to create (must not exist)\n"
    "  --title T            case title (default \"untitled\")\n"
    "  --examiner NAME      who ran the examination (default \"unknown\")\n"
    "  --controls N         control keys, 1..100000 (default 1000)\n"
    "  --commit-key         publish a commitment to each key (SPEC §2.8) in the report;\n"
    "                       its opening goes to DIR.opening (mode 0600): keep it with the key\n"
    "  scan options         as for tokmark scan (--field, --role, --mode, --alpha, ...)\n"
    "The time is the current UTC time, or SOURCE_DATE_EPOCH when set (recorded as such).\n"
    "\n"
    "verify: checks the signatures of report.json and report.pdf (any changed byte\n"
    "fails) and names the signer; --public-key checks it is that key; --evidence\n"
    "recomputes the size and SHA-256 of every evidence file at its recorded path;\n"
    "--profile re-runs the scan with the recorded options and compares every\n"
    "recorded statistic exactly.  Exit status 0 when every check passed, 1 when\n"
    "one failed, 2 usage, 3 a report file is missing or malformed.\n";

/* ------------------------------------------------------------------------ */
/* keygen --signing                                                          */
/* ------------------------------------------------------------------------ */

static int report_keygen_wanted(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--signing") == 0) return 1;
    return 0;
}

static int report_keygen(int argc, char **argv) {
    const char *out = NULL;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--signing") == 0) continue;
        if (strcmp(argv[i], "--force") == 0) force = 1;
        else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc) out = argv[++i];
        else if (strncmp(argv[i], "--output=", 9) == 0) out = argv[i] + 9;
        else return cli_usage_error("keygen --signing takes only -o FILE and --force, not '%s'", argv[i]);
    }
    if (out == NULL || *out == '\0' || strcmp(out, "-") == 0)
        return cli_usage_error("keygen --signing: missing -o FILE (the secret key file; FILE.pub gets the public key)");
    uint8_t pk[RP_PK_BYTES];
    int e = 0;
    int rc = rp_signkey_generate(out, force, pk, &e);
    if (rc != RP_OK) {
        fprintf(stderr, "tokmark: %s: %s%s%s%s\n", out, rp_error_message(rc), e ? ": " : "", e ? strerror(e) : "",
                rc == RP_ERR_EXISTS ? " (pass --force to replace it)" : "");
        return rc == RP_ERR_CRYPTO ? EXIT_FAIL : EXIT_FILE;
    }
    char fp[33];
    rp_fingerprint(pk, fp);
    printf("signing-key-fingerprint %s\n", fp);
    fprintf(stderr, "%s: wrote the report-signing key to %s (mode 0600) and its public key to %s.pub\n", cli_command,
            out, out);
    return EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* Collecting a scan                                                          */
/* ------------------------------------------------------------------------ */

#define REP_NDOC_CONTROLS 100      /* control keys whose document z feed plot (b) */
#define REP_MAX_CONTROL_DOC_Z 400000
#define REP_MAX_SERIES 1000        /* points of plot (a) kept in the report */
#define REP_LN10 2.30258509299404568402

typedef struct rep_ctx {
    scan_cfg cfg;
    const char *inputs[4096];
    size_t ninputs;
    const char **args; /* the scan options, recorded (no --profile, no inputs) */
    size_t nargs;
    uint32_t controls;
    const char *title, *examiner, *time_source;
    char time_utc[32];
    int commit;
    uint8_t openings[64][TOKMARK_COMMITMENT_BYTES];
    char commit_hex[64][65];
    const char *commit_ptr[64];
    uint8_t pk[RP_PK_BYTES];
    char fp[33];
    /* collected */
    rp_doc *docs;
    size_t ndocs, capdocs;
    double *ser_x, *ser_y;
    size_t nser, capser;
    double *cdz;
    size_t ncdz, capcdz;
    rp_file *files;
    size_t nfiles, capfiles;
    size_t cursor;
    rp_file aux[2];
    const char *aux_role[2];
    size_t naux;
    double *ctrl_lp, *ctrl_z;
    char tok_name[TOKMARK_TOKENIZER_MAX + 8], tok_path[4096], tok_sha[65];
    uint64_t tok_size;
    int have_tok_file;
    size_t nkeys;
    char key_ids[64][TOKMARK_KEY_ID_HEX + 1];
    const char *key_ptr[64];
    char *params_text;
    char *method[8], *limits[8];
    size_t nmethod, nlimits;
    int oom;
    rp_report rep;
    scan_totals tot;
    rp_buf json;
} rep_ctx;

static int rep_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (q == NULL) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void rep_hook(void *ctx, const scan_state *s, const scan_doc_info *d) {
    rep_ctx *c = ctx;
    if (c->oom) return;
    if (rep_grow((void **)&c->docs, &c->capdocs, c->ndocs + 1, sizeof *c->docs) != 0) {
        c->oom = 1;
        return;
    }
    rp_doc *o = &c->docs[c->ndocs++];
    memset(o, 0, sizeof *o);
    o->source = strdup(d->source);
    if (o->source == NULL) c->oom = 1;
    o->record = d->record;
    o->line = d->line;
    o->tokens = d->r.tokens;
    o->scored = d->r.scored;
    o->statistic = d->r.statistic;
    o->z = d->r.z;
    o->log10_p = d->r.log10_p;
    o->log10_p_corrected = d->r.log10_p_corrected;
    o->verdict = d->verdict;
    if (d->has_window) {
        const tokmark_params *pp = tokmark_profile_params(tokmark_keyring_get(s->ring, d->r.key_index));
        uint64_t ctxlen = pp->seeding == TOKMARK_SEEDING_SELFHASH ? pp->context_width - 1 : pp->context_width;
        o->has_window = 1;
        o->window_significant = d->span_found;
        o->window_start = d->window.first >= ctxlen ? d->window.first - ctxlen : 0;
        o->window_end = d->window.last + 1;
        o->window_scored = d->window.scored;
        o->windows_tried = d->windows_tried;
        o->window_log10_p = d->window.log10_p;
        o->window_log10_p_corrected = d->window_corrected;
    }
    /* per-file totals: documents come in file order */
    size_t i = c->cursor;
    while (i < c->nfiles && strcmp(c->files[i].path, d->source) != 0) i++;
    if (i == c->nfiles)
        for (i = 0; i < c->nfiles && strcmp(c->files[i].path, d->source) != 0; i++) {}
    if (i < c->nfiles) {
        rp_file *f = &c->files[i];
        c->cursor = i;
        f->documents++;
        f->tokens += d->r.tokens;
        f->scored += d->r.scored;
        if (strcmp(d->verdict, "watermarked") == 0) f->watermarked++;
        if (d->r.log10_p_corrected < f->min_log10_p) f->min_log10_p = d->r.log10_p_corrected;
    }
    /* plot (a): the corpus p so far */
    tokmark_result r;
    scan_best(s, 1, &r);
    if (rep_grow((void **)&c->ser_x, &c->capser, c->nser + 1, sizeof *c->ser_x) != 0) {
        c->oom = 1;
        return;
    }
    size_t cap2 = c->capser;
    double *ny = realloc(c->ser_y, cap2 * sizeof *ny);
    if (ny == NULL) {
        c->oom = 1;
        return;
    }
    c->ser_y = ny;
    c->ser_x[c->nser] = (double)r.scored;
    c->ser_y[c->nser++] = r.log10_p_corrected;
    /* plot (b): the control keys' document z (the measured null) */
    uint32_t nc = c->controls < REP_NDOC_CONTROLS ? c->controls : REP_NDOC_CONTROLS;
    for (uint32_t j = 0; j < nc && c->ncdz < REP_MAX_CONTROL_DOC_Z; j++) {
        tokmark_detector_document(s->det, s->nreal + j, &r);
        if (r.scored == 0) continue;
        if (rep_grow((void **)&c->cdz, &c->capcdz, c->ncdz + 1, sizeof *c->cdz) != 0) {
            c->oom = 1;
            return;
        }
        c->cdz[c->ncdz++] = r.z;
    }
}

/* ------------------------------------------------------------------------ */
/* Evidence: the input files in the reader's order (SPEC §12.1)               */
/* ------------------------------------------------------------------------ */

static int rep_cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int rep_add_file(rep_ctx *c, const char *path) {
    if (rep_grow((void **)&c->files, &c->capfiles, c->nfiles + 1, sizeof *c->files) != 0) return EXIT_FAIL;
    rp_file *f = &c->files[c->nfiles];
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (f->path == NULL) return EXIT_FAIL;
    c->nfiles++;
    int e = rp_sha256_file(path, f->sha256, &f->size);
    if (e != 0) {
        fprintf(stderr, "tokmark: %s: cannot read this input: %s (a report needs every input readable)\n", path,
                strerror(e));
        return EXIT_FILE;
    }
    return 0;
}

static int rep_walk(rep_ctx *c, const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "tokmark: %s: cannot read this directory: %s\n", dir, strerror(errno));
        return EXIT_FILE;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && rc == 0) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (rep_grow((void **)&names, &cap, n + 1, sizeof *names) != 0 || (names[n] = strdup(de->d_name)) == NULL)
            rc = EXIT_FAIL;
        else n++;
    }
    closedir(d);
    if (n > 1) qsort(names, n, sizeof *names, rep_cmp_names);
    size_t dl = strlen(dir);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            size_t len = dl + strlen(names[i]) + 2;
            char *p = malloc(len);
            if (p == NULL) rc = EXIT_FAIL;
            else {
                snprintf(p, len, "%s%s%s", dir, dl > 0 && dir[dl - 1] == '/' ? "" : "/", names[i]);
                struct stat st;
                if (lstat(p, &st) != 0) {
                    fprintf(stderr, "tokmark: %s: %s\n", p, strerror(errno));
                    rc = EXIT_FILE;
                } else if (S_ISDIR(st.st_mode)) rc = rep_walk(c, p);
                else if (S_ISREG(st.st_mode)) rc = rep_add_file(c, p);
                free(p); /* other kinds (links, devices) are not read by the scan either */
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int rep_evidence(rep_ctx *c) {
    for (size_t i = 0; i < c->ninputs; i++) {
        struct stat st;
        int rc;
        if (stat(c->inputs[i], &st) != 0) {
            fprintf(stderr, "tokmark: %s: cannot read this input: %s\n", c->inputs[i], strerror(errno));
            return EXIT_FILE;
        }
        rc = S_ISDIR(st.st_mode) ? rep_walk(c, c->inputs[i]) : rep_add_file(c, c->inputs[i]);
        if (rc != 0) return rc;
    }
    for (size_t i = 0; i < c->nfiles; i++) c->files[i].min_log10_p = 0;
    /* the other files the scan reads */
    const char *aux[2] = {c->cfg.filter, c->cfg.accounts}, *role[2] = {"filter", "accounts"};
    for (size_t k = 0; k < 2; k++) {
        if (aux[k] == NULL) continue;
        rp_file *f = &c->aux[c->naux];
        memset(f, 0, sizeof *f);
        f->path = strdup(aux[k]);
        if (f->path == NULL) return EXIT_FAIL;
        c->aux_role[c->naux++] = role[k];
        int e = rp_sha256_file(aux[k], f->sha256, &f->size);
        if (e != 0) {
            fprintf(stderr, "tokmark: %s: cannot read the %s file: %s\n", aux[k], role[k], strerror(e));
            return EXIT_FILE;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Plain-language text                                                        */
/* ------------------------------------------------------------------------ */

static char *rep_strf(rep_ctx *c, const char *fmt, ...) CLI_PRINTF(2, 3);
static char *rep_strf(rep_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s == NULL) {
        c->oom = 1;
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void rep_text(rep_ctx *c, const tokmark_params *pp) {
    const char *what, *coin, *stat;
    char gam[32];
    snprintf(gam, sizeof gam, "%.6g", tokmark_params_gamma(pp));
    switch (pp->scheme) {
    case TOKMARK_SCHEME_KGW:
        what = NULL; /* below, with γ */
        coin = "whether each token is green is a biased coin flip with a known probability γ";
        stat = "the number of green tokens among the n distinct scored tuples, which under the null hypothesis "
               "follows the binomial distribution Binomial(n, γ) exactly";
        break;
    case TOKMARK_SCHEME_GUMBEL:
        what = "For every position, the key assigns each possible next token a pseudo-random number; the generator "
               "chose the token that best combined the model's probability with that number (the Gumbel-max trick), "
               "which leaves the text's distribution unchanged but makes the chosen tokens' numbers unusually large.";
        coin = "each chosen token's number is a fresh uniform random draw";
        stat = "the sum of -ln(1 - r) over the n distinct scored tuples, which under the null hypothesis is bounded "
               "by the Gamma(n, 1) distribution, used exactly";
        break;
    default:
        what = "For every position, the key assigns each possible next token a series of pseudo-random bits (one per "
               "tournament layer); the generator ran a tournament that favours tokens with more 1-bits, which leaves "
               "the text's distribution unchanged but raises the proportion of 1-bits in the chosen tokens.";
        coin = "each bit is a fair coin flip";
        stat = "the (weighted) count of 1-bits over the n distinct scored tuples, whose null distribution is "
               "computed exactly (binomial, or its weighted form)";
        break;
    }
    char whatbuf[640];
    if (what == NULL)
        snprintf(whatbuf, sizeof whatbuf,
                 "For every position, the key divides the vocabulary pseudo-randomly into a 'green' part (a "
                 "fraction γ of all tokens; here γ = %s) and the rest, depending on the tokens just before; the "
                 "generator gave the green tokens a small bonus, so watermarked text holds more green tokens than "
                 "chance allows.", gam);
    else snprintf(whatbuf, sizeof whatbuf, "%s", what);
    c->nmethod = 0;
    c->method[c->nmethod++] = rep_strf(c,
        "What the watermark is. When the text was generated, a secret key (identified in this report only by its "
        "public key ID; the key itself is not disclosed) steered the choice of each token (word piece). %s "
        "Without the key nobody can tell which tokens were favoured, so the watermark cannot be seen, read or "
        "forged from the text alone.", whatbuf);
    c->method[c->nmethod++] = rep_strf(c,
        "Why text without the watermark behaves like coin flips. The favoured tokens are computed by a keyed "
        "pseudo-random function (AES-128 under keys derived from the secret key) of the preceding tokens. For text "
        "written without the key (by a person, or by another model) the key's choices are unrelated to the text, so "
        "%s, independently for every distinct (context, token) pair. Repeated pairs are counted once (they would "
        "repeat the same flip).", coin);
    c->method[c->nmethod++] = rep_strf(c,
        "The null hypothesis is: the text was produced without knowledge of the key. The test statistic is %s. The "
        "test is done once for the whole corpus (every distinct tuple of every input) and once per document.", stat);
    c->method[c->nmethod++] = rep_strf(c,
        "What the p-value means. The p-value is the probability, if the null hypothesis is true, of a score at "
        "least as high as the one observed. It is computed exactly (SPEC.md section 8), not by a normal "
        "approximation. A log10 p of -N means that text without the watermark scores this high less than once in "
        "10^N tries. With several keys the smallest p-value is corrected for their number (Šidák). The verdict "
        "'watermarked' is given when the corrected p-value is at most α = %g.", c->cfg.alpha);
    c->method[c->nmethod++] = rep_strf(c,
        "How the error rate was measured. The whole scan was repeated with %u control keys: public keys that were "
        "never used to watermark anything (SPEC.md section 12.7). They see exactly the same text as the real key, "
        "so how often they reach a given level is the false-positive rate on this input, measured rather than "
        "assumed.", c->controls);
    c->nlimits = 0;
    c->limits[c->nlimits++] = rep_strf(c,
        "Paraphrase and editing. The watermark lives in the exact token sequence. Rewording, translation, heavy "
        "editing or summarising replaces tokens and contexts and weakens or removes the signal; a result of 'not "
        "detected' therefore does not show that the text was not generated with the key.");
    c->limits[c->nlimits++] = rep_strf(c,
        "Short texts. A document with few scored tuples cannot reach a small p-value even when it is watermarked; "
        "the corpus test pools all documents and is far more powerful than any one of them.");
    c->limits[c->nlimits++] = rep_strf(c,
        "Tokenizer mismatch. The text is scored with the tokenizer recorded in the evidence (%s). If the text was "
        "generated with a different tokenizer, or was normalised (whitespace, Unicode) after generation, tokens "
        "differ and the signal is lost; the test remains valid (no false positives) but loses power.",
        c->tok_name);
    c->limits[c->nlimits++] = rep_strf(c,
        "What the test cannot say. A small p-value says that text without the key would almost never score this "
        "high; it is not the probability that the text is unwatermarked, and it does not say who generated the "
        "text, when, for what purpose, or whether a person edited it afterwards. Text that quotes watermarked text "
        "carries the watermark of what it quotes. The key holder's own statement that this key was used for the "
        "text in question is outside the test; the optional key commitment lets the key be identified later.");
}

/* ------------------------------------------------------------------------ */
/* report.json (canonical, SPEC §13.2)                                        */
/* ------------------------------------------------------------------------ */

static void rep_json_result(rp_buf *b, int *first, const rp_doc *d) {
    rp_json_key(b, first, "tokens");
    rp_json_u64(b, d->tokens);
    rp_json_key(b, first, "scored");
    rp_json_u64(b, d->scored);
    rp_json_key(b, first, "statistic");
    rp_json_real(b, d->statistic);
    rp_json_key(b, first, "z");
    rp_json_real(b, d->z);
    rp_json_key(b, first, "log10_p");
    rp_json_real(b, d->log10_p);
    rp_json_key(b, first, "log10_p_corrected");
    rp_json_real(b, d->log10_p_corrected);
}

static void rep_json(rep_ctx *c) {
    rp_report *r = &c->rep;
    rp_buf *b = &c->json;
    int f0 = 1, f1, f2, f3;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f0, "tokmark_report");
    rp_json_u64(b, 1);
    /* case */
    rp_json_key(b, &f0, "case");
    f1 = 1;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f1, "title");
    rp_json_str(b, r->title);
    rp_json_key(b, &f1, "examiner");
    rp_json_str(b, r->examiner);
    rp_json_key(b, &f1, "time_utc");
    rp_json_str(b, r->time_utc);
    rp_json_key(b, &f1, "time_source");
    rp_json_str(b, c->time_source);
    rp_json_key(b, &f1, "tokmark_version");
    rp_json_str(b, r->version);
    rp_json_key(b, &f1, "build");
    rp_json_str(b, r->build);
    rp_json_key(b, &f1, "spec_version");
    rp_json_str(b, r->spec);
    rp_buf_puts(b, "}");
    /* signer */
    char pkh[65];
    rp_hex(pkh, c->pk, RP_PK_BYTES);
    rp_json_key(b, &f0, "signer");
    f1 = 1;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f1, "algorithm");
    rp_json_str(b, "ed25519");
    rp_json_key(b, &f1, "public_key");
    rp_json_str(b, pkh);
    rp_json_key(b, &f1, "fingerprint");
    rp_json_str(b, c->fp);
    rp_buf_puts(b, "}");
    /* profile */
    rp_json_key(b, &f0, "profile");
    f1 = 1;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f1, "keys");
    rp_buf_puts(b, "[");
    for (size_t k = 0; k < c->nkeys; k++) {
        f2 = 1;
        rp_buf_puts(b, k ? ",{" : "{");
        rp_json_key(b, &f2, "key_id");
        rp_json_str(b, c->key_ids[k]);
        rp_json_key(b, &f2, "commitment");
        if (c->commit) rp_json_str(b, c->commit_hex[k]);
        else rp_buf_puts(b, "null");
        rp_buf_puts(b, "}");
    }
    rp_buf_puts(b, "]");
    rp_json_key(b, &f1, "commitment_scheme");
    if (c->commit) rp_json_str(b, "BLAKE2b-256(\"tokmark key commitment v1\\n\" || opening || master key || key ID), SPEC.md 2.8");
    else rp_buf_puts(b, "null");
    rp_json_key(b, &f1, "parameters");
    f2 = 1;
    rp_buf_puts(b, "{");
    for (char *line = c->params_text; line != NULL && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char *sp = memchr(line, ' ', n);
        if (sp != NULL && strncmp(line, "key-id ", 7) != 0) {
            if (!f2) rp_buf_puts(b, ",");
            f2 = 0;
            rp_json_strn(b, line, (size_t)(sp - line));
            rp_buf_puts(b, ":");
            rp_json_strn(b, sp + 1, n - (size_t)(sp - line) - 1);
        }
        line = nl ? nl + 1 : NULL;
    }
    rp_buf_puts(b, "}}");
    /* scan */
    rp_json_key(b, &f0, "scan");
    f1 = 1;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f1, "arguments");
    rp_buf_puts(b, "[");
    for (size_t i = 0; i < c->nargs; i++) {
        if (i) rp_buf_puts(b, ",");
        rp_json_str(b, c->args[i]);
    }
    rp_buf_puts(b, "]");
    rp_json_key(b, &f1, "inputs");
    rp_buf_puts(b, "[");
    for (size_t i = 0; i < c->ninputs; i++) {
        if (i) rp_buf_puts(b, ",");
        rp_json_str(b, c->inputs[i]);
    }
    rp_buf_puts(b, "]");
    rp_json_key(b, &f1, "mode");
    rp_json_str(b, r->mode);
    rp_json_key(b, &f1, "alpha");
    rp_json_real(b, r->alpha);
    rp_json_key(b, &f1, "controls");
    rp_json_u64(b, c->controls);
    rp_buf_puts(b, "}");
    /* evidence */
    rp_json_key(b, &f0, "evidence");
    f1 = 1;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f1, "files");
    rp_buf_puts(b, "[");
    for (size_t i = 0; i < c->nfiles; i++) {
        f2 = 1;
        rp_buf_puts(b, i ? ",{" : "{");
        rp_json_key(b, &f2, "path");
        rp_json_str(b, c->files[i].path);
        rp_json_key(b, &f2, "size");
        rp_json_u64(b, c->files[i].size);
        rp_json_key(b, &f2, "sha256");
        rp_json_str(b, c->files[i].sha256);
        rp_buf_puts(b, "}");
    }
    rp_buf_puts(b, "]");
    rp_json_key(b, &f1, "auxiliary");
    rp_buf_puts(b, "[");
    for (size_t i = 0; i < c->naux; i++) {
        f2 = 1;
        rp_buf_puts(b, i ? ",{" : "{");
        rp_json_key(b, &f2, "role");
        rp_json_str(b, c->aux_role[i]);
        rp_json_key(b, &f2, "path");
        rp_json_str(b, c->aux[i].path);
        rp_json_key(b, &f2, "size");
        rp_json_u64(b, c->aux[i].size);
        rp_json_key(b, &f2, "sha256");
        rp_json_str(b, c->aux[i].sha256);
        rp_buf_puts(b, "}");
    }
    rp_buf_puts(b, "]");
    rp_json_key(b, &f1, "tokenizer");
    f2 = 1;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f2, "name");
    rp_json_str(b, c->tok_name);
    rp_json_key(b, &f2, "path");
    if (c->have_tok_file) rp_json_str(b, c->tok_path);
    else rp_buf_puts(b, "null");
    rp_json_key(b, &f2, "size");
    if (c->have_tok_file) rp_json_u64(b, c->tok_size);
    else rp_buf_puts(b, "null");
    rp_json_key(b, &f2, "sha256");
    if (c->have_tok_file) rp_json_str(b, c->tok_sha);
    else rp_buf_puts(b, "null");
    rp_buf_puts(b, "}}");
    /* method */
    rp_json_key(b, &f0, "method");
    rp_buf_puts(b, "[");
    for (size_t i = 0; i < c->nmethod; i++) {
        if (i) rp_buf_puts(b, ",");
        rp_json_str(b, c->method[i]);
    }
    rp_buf_puts(b, "]");
    /* results */
    rp_json_key(b, &f0, "results");
    f1 = 1;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f1, "corpus");
    f2 = 1;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f2, "documents");
    rp_json_u64(b, r->documents);
    rp_json_key(b, &f2, "bytes");
    rp_json_u64(b, c->tot.bytes);
    rp_json_key(b, &f2, "skipped");
    rp_json_u64(b, r->skipped);
    rp_json_key(b, &f2, "skipped_by");
    f3 = 1;
    rp_buf_puts(b, "{");
    for (int k = 0; k < TMI_ERR_COUNT; k++)
        if (c->tot.kinds[k]) {
            rp_json_key(b, &f3, tmi_error_name(k));
            rp_json_u64(b, c->tot.kinds[k]);
        }
    rp_buf_puts(b, "}");
    rp_doc cd = {0};
    cd.tokens = r->tokens;
    cd.scored = r->scored;
    cd.statistic = r->statistic;
    cd.z = r->z;
    cd.log10_p = r->log10_p;
    cd.log10_p_corrected = r->log10_p_corrected;
    rep_json_result(b, &f2, &cd);
    rp_json_key(b, &f2, "duplicates");
    rp_json_u64(b, r->duplicates);
    rp_json_key(b, &f2, "dropped");
    rp_json_u64(b, r->dropped);
    rp_json_key(b, &f2, "keys");
    rp_json_u64(b, r->nkeys);
    rp_json_key(b, &f2, "key_id");
    rp_json_str(b, r->corpus_key_id);
    rp_json_key(b, &f2, "verdict");
    rp_json_str(b, r->verdict);
    rp_json_key(b, &f2, "documents_watermarked");
    rp_json_u64(b, r->docs_watermarked);
    rp_json_key(b, &f2, "documents_with_span");
    rp_json_u64(b, r->docs_span);
    rp_buf_puts(b, "}");
    rp_json_key(b, &f1, "files");
    rp_buf_puts(b, "[");
    for (size_t i = 0; i < c->nfiles; i++) {
        const rp_file *fl = &c->files[i];
        f2 = 1;
        rp_buf_puts(b, i ? ",{" : "{");
        rp_json_key(b, &f2, "path");
        rp_json_str(b, fl->path);
        rp_json_key(b, &f2, "documents");
        rp_json_u64(b, fl->documents);
        rp_json_key(b, &f2, "tokens");
        rp_json_u64(b, fl->tokens);
        rp_json_key(b, &f2, "scored");
        rp_json_u64(b, fl->scored);
        rp_json_key(b, &f2, "documents_watermarked");
        rp_json_u64(b, fl->watermarked);
        rp_json_key(b, &f2, "min_log10_p_corrected");
        rp_json_real(b, fl->min_log10_p);
        rp_buf_puts(b, "}");
    }
    rp_buf_puts(b, "]");
    rp_json_key(b, &f1, "documents");
    rp_buf_puts(b, "[");
    for (size_t i = 0; i < c->ndocs; i++) {
        const rp_doc *d = &c->docs[i];
        f2 = 1;
        rp_buf_puts(b, i ? ",{" : "{");
        rp_json_key(b, &f2, "source");
        rp_json_str(b, d->source);
        rp_json_key(b, &f2, "record");
        rp_json_u64(b, d->record);
        rp_json_key(b, &f2, "line");
        rp_json_u64(b, d->line);
        rep_json_result(b, &f2, d);
        rp_json_key(b, &f2, "verdict");
        rp_json_str(b, d->verdict);
        if (d->has_window) {
            rp_json_key(b, &f2, "window");
            f3 = 1;
            rp_buf_puts(b, "{");
            rp_json_key(b, &f3, "token_start");
            rp_json_u64(b, d->window_start);
            rp_json_key(b, &f3, "token_end");
            rp_json_u64(b, d->window_end);
            rp_json_key(b, &f3, "scored");
            rp_json_u64(b, d->window_scored);
            rp_json_key(b, &f3, "log10_p");
            rp_json_real(b, d->window_log10_p);
            rp_json_key(b, &f3, "windows_tried");
            rp_json_u64(b, d->windows_tried);
            rp_json_key(b, &f3, "log10_p_corrected");
            rp_json_real(b, d->window_log10_p_corrected);
            rp_json_key(b, &f3, "significant");
            rp_buf_puts(b, d->window_significant ? "true" : "false");
            rp_buf_puts(b, "}");
        }
        rp_buf_puts(b, "}");
    }
    rp_buf_puts(b, "]}");
    /* error rate */
    rp_json_key(b, &f0, "error_rate");
    f1 = 1;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f1, "controls");
    rp_json_u64(b, r->ncontrols);
    rp_json_key(b, &f1, "confidence");
    rp_json_real(b, 0.95);
    rp_json_key(b, &f1, "rates");
    rp_buf_puts(b, "[");
    for (int i = 0; i < RP_NRATES; i++) {
        f2 = 1;
        rp_buf_puts(b, i ? ",{" : "{");
        rp_json_key(b, &f2, "alpha");
        rp_json_real(b, r->rates[i].alpha);
        rp_json_key(b, &f2, "false_positives");
        rp_json_u64(b, r->rates[i].count);
        rp_json_key(b, &f2, "rate");
        rp_json_real(b, r->rates[i].rate);
        rp_json_key(b, &f2, "ci_low");
        rp_json_real(b, r->rates[i].ci_low);
        rp_json_key(b, &f2, "ci_high");
        rp_json_real(b, r->rates[i].ci_high);
        rp_buf_puts(b, "}");
    }
    rp_buf_puts(b, "]");
    rp_json_key(b, &f1, "real_log10_p_corrected");
    rp_json_real(b, r->log10_p_corrected);
    rp_json_key(b, &f1, "controls_at_least_as_extreme");
    rp_json_u64(b, r->controls_at_least_as_extreme);
    rp_json_key(b, &f1, "empirical_p");
    rp_json_real(b, r->empirical_p);
    rp_json_key(b, &f1, "control_log10_p_corrected");
    rp_buf_puts(b, "[");
    for (uint32_t i = 0; i < r->ncontrols; i++) {
        if (i) rp_buf_puts(b, ",");
        rp_json_real(b, r->control_log10_p[i]);
    }
    rp_buf_puts(b, "]");
    rp_json_key(b, &f1, "control_z");
    rp_buf_puts(b, "[");
    for (uint32_t i = 0; i < r->ncontrols; i++) {
        if (i) rp_buf_puts(b, ",");
        rp_json_real(b, r->control_z[i]);
    }
    rp_buf_puts(b, "]}");
    /* plots */
    rp_json_key(b, &f0, "plots");
    f1 = 1;
    rp_buf_puts(b, "{");
    rp_json_key(b, &f1, "corpus_series");
    rp_buf_puts(b, "[");
    for (size_t i = 0; i < r->nseries; i++) {
        rp_buf_puts(b, i ? ",[" : "[");
        rp_json_real(b, r->series_scored[i]);
        rp_buf_puts(b, ",");
        rp_json_real(b, r->series_log10_p[i]);
        rp_buf_puts(b, "]");
    }
    rp_buf_puts(b, "]");
    rp_json_key(b, &f1, "control_document_scores");
    rp_json_u64(b, r->ncontrol_doc_z);
    rp_buf_puts(b, "}");
    /* limitations */
    rp_json_key(b, &f0, "limitations");
    rp_buf_puts(b, "[");
    for (size_t i = 0; i < c->nlimits; i++) {
        if (i) rp_buf_puts(b, ",");
        rp_json_str(b, c->limits[i]);
    }
    rp_buf_puts(b, "]}\n");
}

/* ------------------------------------------------------------------------ */
/* Running the scan and filling the report                                    */
/* ------------------------------------------------------------------------ */

static void rep_free(rep_ctx *c) {
    for (size_t i = 0; i < c->ndocs; i++) free((void *)(uintptr_t)c->docs[i].source);
    free(c->docs);
    for (size_t i = 0; i < c->nfiles; i++) free(c->files[i].path);
    free(c->files);
    for (size_t i = 0; i < c->naux; i++) free(c->aux[i].path);
    free(c->ser_x);
    free(c->ser_y);
    free(c->cdz);
    free(c->ctrl_lp);
    free(c->ctrl_z);
    free(c->params_text);
    for (size_t i = 0; i < c->nmethod; i++) free(c->method[i]);
    for (size_t i = 0; i < c->nlimits; i++) free(c->limits[i]);
    rp_buf_free(&c->json);
    sodium_memzero(c->openings, sizeof c->openings);
}

static int rep_run(rep_ctx *c) {
    int rc = rep_evidence(c);
    if (rc != 0) return rc;
    c->cfg.control_keys = c->controls;
    c->cfg.no_output = 1;
    scan_state s;
    rc = scan_setup(&s, &c->cfg);
    if (rc != 0) {
        scan_state_free(&s);
        return rc;
    }
    if (s.nreal > 64) {
        scan_state_free(&s);
        return cli_usage_error("a report takes at most 64 keys (attribution over many accounts: use tokmark scan)");
    }
    s.hook = rep_hook;
    s.hook_ctx = c;
    rc = scan_execute(&s, c->inputs, c->ninputs);
    if (rc == 0 && c->oom) rc = SCAN_EXIT_INTERNAL;
    if (rc != 0) {
        scan_state_free(&s);
        return rc;
    }
    c->tot = s.tot;
    /* keys */
    c->nkeys = s.nreal;
    const tokmark_profile *p0 = tokmark_keyring_get(s.ring, 0);
    for (size_t k = 0; k < s.nreal; k++) {
        const tokmark_profile *pk = tokmark_keyring_get(s.ring, k);
        snprintf(c->key_ids[k], sizeof c->key_ids[k], "%s", tokmark_profile_key_id(pk));
        c->key_ptr[k] = c->key_ids[k];
        if (c->commit) {
            uint8_t cm[TOKMARK_COMMITMENT_BYTES];
            if (tokmark_profile_commitment(pk, c->openings[k], cm) != TOKMARK_OK) rc = EXIT_FAIL;
            rp_hex(c->commit_hex[k], cm, sizeof cm);
            c->commit_ptr[k] = c->commit_hex[k];
        }
    }
    size_t dn = tokmark_profile_describe(p0, NULL, 0);
    c->params_text = malloc(dn + 1);
    if (c->params_text == NULL) rc = EXIT_FAIL;
    else tokmark_profile_describe(p0, c->params_text, dn + 1);
    /* tokenizer evidence */
    const tokmark_params *pp = tokmark_profile_params(p0);
    const char *tname = c->cfg.tokenizer ? c->cfg.tokenizer : pp->tokenizer;
    snprintf(c->tok_name, sizeof c->tok_name, "%s", tname);
    if (strcmp(tname, "none") != 0) {
        if (strchr(tname, '/') != NULL) snprintf(c->tok_path, sizeof c->tok_path, "%s", tname);
        else if (tokmark_tokenizer_find(tname, c->tok_path, sizeof c->tok_path) != TOKMARK_OK) c->tok_path[0] = '\0';
        if (c->tok_path[0] != '\0') {
            int e = rp_sha256_file(c->tok_path, c->tok_sha, &c->tok_size);
            if (e != 0) {
                fprintf(stderr, "tokmark: %s: cannot hash the tokenizer: %s\n", c->tok_path, strerror(e));
                rc = EXIT_FILE;
            }
            c->have_tok_file = 1;
        }
    }
    /* corpus result and the control keys */
    rp_report *r = &c->rep;
    tokmark_result best;
    scan_best(&s, 1, &best);
    double thr = log10(c->cfg.alpha);
    r->verdict = best.scored == 0 ? "no_tuples" : best.log10_p_corrected <= thr ? "watermarked" : "not_detected";
    r->tokens = best.tokens;
    r->scored = best.scored;
    r->duplicates = best.duplicates;
    r->dropped = best.dropped;
    r->statistic = best.statistic;
    r->z = best.z;
    r->log10_p = best.log10_p;
    r->log10_p_corrected = best.log10_p_corrected;
    static char best_id[TOKMARK_KEY_ID_HEX + 1];
    snprintf(best_id, sizeof best_id, "%s", best.key_id);
    r->corpus_key_id = best_id;
    c->ctrl_lp = malloc((c->controls + 1) * sizeof *c->ctrl_lp);
    c->ctrl_z = malloc((c->controls + 1) * sizeof *c->ctrl_z);
    if (c->ctrl_lp == NULL || c->ctrl_z == NULL) rc = EXIT_FAIL;
    static const double alphas[RP_NRATES] = {1e-2, 1e-3, 1e-6};
    uint64_t cnt[RP_NRATES] = {0}, extreme = 0;
    for (uint32_t j = 0; rc == 0 && j < c->controls; j++) {
        tokmark_result cr;
        tokmark_detector_corpus(s.det, s.nreal + j, &cr);
        /* as one of R real keys would be: Šidák for R (SPEC §13.3) */
        double lp = tokmark_ln_sidak(cr.log10_p * REP_LN10, s.nreal) / REP_LN10;
        c->ctrl_lp[j] = lp;
        c->ctrl_z[j] = cr.z;
        for (int a = 0; a < RP_NRATES; a++)
            if (cr.scored > 0 && lp <= log10(alphas[a])) cnt[a]++;
        if (lp <= best.log10_p_corrected) extreme++;
    }
    for (int a = 0; a < RP_NRATES; a++) {
        r->rates[a].alpha = alphas[a];
        r->rates[a].count = cnt[a];
        r->rates[a].rate = c->controls ? (double)cnt[a] / c->controls : 0;
        rp_binom_ci(cnt[a], c->controls, 0.95, &r->rates[a].ci_low, &r->rates[a].ci_high);
    }
    r->controls_at_least_as_extreme = extreme;
    r->empirical_p = (1.0 + (double)extreme) / (c->controls + 1.0);
    r->ncontrols = c->controls;
    r->control_log10_p = c->ctrl_lp;
    r->control_z = c->ctrl_z;
    r->scheme = tokmark_scheme_name(pp->scheme);
    rep_text(c, pp); /* pp lives in the ring: before it is freed */
    scan_state_free(&s);
    pp = NULL;
    if (rc != 0) return rc;
    /* plot (a): at most REP_MAX_SERIES points, evenly spaced, the last included */
    if (c->nser > REP_MAX_SERIES) {
        for (size_t i = 0; i < REP_MAX_SERIES; i++) {
            size_t src = (size_t)(((uint64_t)(i + 1) * c->nser) / REP_MAX_SERIES) - 1;
            c->ser_x[i] = c->ser_x[src];
            c->ser_y[i] = c->ser_y[src];
        }
        c->nser = REP_MAX_SERIES;
    }
    if (c->oom) return EXIT_FAIL;
    /* the rest of the report */
    r->title = c->title;
    r->examiner = c->examiner;
    r->time_utc = c->time_utc;
    r->version = tokmark_version_string();
    static char build[128];
    snprintf(build, sizeof build, "AES backend %s", tokmark_backend_name());
    r->build = build;
    r->spec = tokmark_spec_version();
    r->nkeys = c->nkeys;
    r->key_ids = c->key_ptr;
    r->params_text = c->params_text;
    r->commitments = c->commit ? c->commit_ptr : NULL;
    r->files = c->files;
    r->nfiles = c->nfiles;
    r->tok_name = c->tok_name;
    r->tok_path = c->have_tok_file ? c->tok_path : NULL;
    r->tok_sha256 = c->tok_sha;
    r->tok_size = c->tok_size;
    r->aux = c->aux;
    r->aux_role = c->aux_role;
    r->naux = c->naux;
    r->mode = scan_mode_name(c->cfg.mode);
    r->alpha = c->cfg.alpha;
    r->documents = c->tot.documents;
    r->skipped = c->tot.skipped;
    r->docs_watermarked = c->tot.docs_watermarked;
    r->docs_span = c->tot.docs_span;
    r->docs = c->docs;
    r->ndocs = c->ndocs;
    r->series_scored = c->ser_x;
    r->series_log10_p = c->ser_y;
    r->nseries = c->nser;
    r->control_doc_z = c->cdz;
    r->ncontrol_doc_z = c->ncdz;
    r->method = (const char *const *)c->method;
    r->nmethod = c->nmethod;
    r->limitations = (const char *const *)c->limits;
    r->nlimitations = c->nlimits;
    r->signer_fingerprint = c->fp;
    rep_json(c);
    return c->json.failed ? EXIT_FAIL : 0;
}

/* Parse the scan options of argv (argv[0] the command) into c; the
 * report's own options are taken out first.  own: 1 for `report` (its
 * options allowed), 0 for the re-run of verify.  Returns -1 to go on or an
 * exit code. */
static int rep_parse_scan(rep_ctx *c, int argc, char **argv, const char **av) {
    int rc = scan_parse_args(argc, argv, &c->cfg, c->inputs, &c->ninputs, 4096, cmd_report_help);
    if (rc >= 0) return rc;
    /* record the options: every argument but --profile KEY and the inputs */
    c->nargs = 0;
    for (int i = 1; i < argc; i++) {
        int is_input = 0;
        for (size_t k = 0; k < c->ninputs; k++) is_input |= c->inputs[k] == argv[i];
        if (is_input) continue;
        if (strcmp(argv[i], "--profile") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--profile=", 10) == 0) continue;
        av[c->nargs++] = argv[i];
    }
    c->args = av;
    if (c->ninputs == 0) return cli_usage_error("no INPUT: a report needs files or directories");
    for (size_t k = 0; k < c->ninputs; k++)
        if (strcmp(c->inputs[k], "-") == 0)
            return cli_usage_error("a report cannot read standard input: its evidence must be files that can be "
                                   "hashed and re-read");
    if (c->cfg.partial != NULL) return cli_usage_error("--partial is not available in a report");
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Writing the report directory                                               */
/* ------------------------------------------------------------------------ */

static int rep_remove_tmp(const char *tmp) {
    static const char *const names[] = {"report.json", "report.pdf", "report.sig"};
    char p[4200];
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", tmp, names[i]);
        unlink(p);
    }
    return rmdir(tmp);
}

static void rep_sig_text(rp_buf *b, const uint8_t pk[RP_PK_BYTES], const char *fp, const uint8_t *sj,
                         const uint8_t *sp) {
    char h[2 * RP_SIG_BYTES + 1];
    rp_buf_puts(b, "tokmark-report-signature 1\nalgorithm ed25519\n");
    rp_hex(h, pk, RP_PK_BYTES);
    rp_buf_printf(b, "public-key %s\nfingerprint %s\n", h, fp);
    rp_hex(h, sj, RP_SIG_BYTES);
    rp_buf_printf(b, "signature report.json %s\n", h);
    rp_hex(h, sp, RP_SIG_BYTES);
    rp_buf_printf(b, "signature report.pdf %s\nend\n", h);
}

static int rep_time(rep_ctx *c) {
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    time_t t;
    if (sde != NULL && *sde != '\0') {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(sde, &end, 10);
        if (errno != 0 || *end != '\0' || v < 0) return cli_usage_error("SOURCE_DATE_EPOCH: '%s' is not a time", sde);
        t = (time_t)v;
        c->time_source = "SOURCE_DATE_EPOCH";
    } else {
        t = time(NULL);
        c->time_source = "clock";
    }
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) return cli_usage_error("bad time");
    strftime(c->time_utc, sizeof c->time_utc, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return -1;
}

static int cmd_report_verify(int argc, char **argv);

static int cmd_report(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "verify") == 0) return cmd_report_verify(argc - 1, argv + 1);
    /* take the report's own options out, pass the rest to the scan parser */
    const char *sk_path = NULL, *outdir = NULL, *title = "untitled", *examiner = "unknown";
    uint32_t controls = 1000;
    int commit = 0;
    char **av = malloc(((size_t)argc + 1) * sizeof *av);
    const char **rec = malloc(((size_t)argc + 1) * sizeof *rec);
    rep_ctx *c = calloc(1, sizeof *c);
    if (av == NULL || rec == NULL || c == NULL) {
        free(av);
        free(rec);
        free(c);
        cli_error("out of memory");
        return EXIT_FAIL;
    }
    int ac = 0, rc = -1;
    av[ac++] = argv[0];
    for (int i = 1; i < argc && rc < 0; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--") == 0) { /* the rest are inputs */
            while (i < argc) av[ac++] = argv[i++];
            break;
        }
        if (strcmp(a, "--commit-key") == 0) {
            commit = 1;
            continue;
        }
        static const char *const own[] = {"--signing-key", "--output", "--title", "--examiner", "--controls", "-o"};
        int which = -1;
        for (int k = 0; k < 6 && which < 0; k++) {
            size_t n = strlen(own[k]);
            if (strcmp(a, own[k]) == 0) {
                which = k;
                if (i + 1 < argc) v = argv[++i];
            } else if (k < 5 && strncmp(a, own[k], n) == 0 && a[n] == '=') {
                which = k;
                v = a + n + 1;
            }
        }
        if (which < 0) {
            av[ac++] = argv[i];
            continue;
        }
        if (v == NULL) {
            rc = cli_usage_error("option '%s' needs a value", a);
            break;
        }
        if (which == 0) sk_path = v;
        else if (which == 1 || which == 5) outdir = v;
        else if (which == 2) title = v;
        else if (which == 3) examiner = v;
        else if (!cli_parse_u32("--controls", v, 1, 100000, &controls)) rc = EXIT_USAGE;
    }
    uint8_t *sk = NULL;
    char *tmp = NULL, *opening_path = NULL;
    rp_buf pdf = {0}, sig = {0};
    if (rc < 0) rc = rep_parse_scan(c, ac, av, rec);
    if (rc >= 0) { /* --help, or a usage error */
        rep_free(c);
        free(c);
        free(av);
        free(rec);
        return rc;
    }
    if (rc < 0 && sk_path == NULL) rc = cli_usage_error("missing --signing-key FILE (tokmark keygen --signing -o FILE)");
    if (rc < 0 && (outdir == NULL || *outdir == '\0')) rc = cli_usage_error("missing -o DIR: the report directory to create");
    if (rc < 0 && c->cfg.nprofiles > 64) rc = cli_usage_error("at most 64 keys");
    if (rc < 0) {
        struct stat st;
        if (lstat(outdir, &st) == 0) {
            fprintf(stderr, "tokmark: %s: exists already (a report is never overwritten)\n", outdir);
            rc = EXIT_FILE;
        }
    }
    if (rc < 0) {
        /* the signing key, before the work */
        sk = sodium_malloc(RP_SK_BYTES);
        size_t line = 0;
        int e = 0;
        int k = sk == NULL ? RP_ERR_CRYPTO : rp_signkey_load(sk_path, sk, c->pk, &line, &e);
        if (k != RP_OK) {
            if (line > 0) fprintf(stderr, "tokmark: %s:%zu: %s\n", sk_path, line, rp_error_message(k));
            else fprintf(stderr, "tokmark: %s: %s%s%s%s\n", sk_path, rp_error_message(k), e ? ": " : "",
                         e ? strerror(e) : "", k == RP_ERR_PERMS ? " (chmod 600 it)" : "");
            rc = k == RP_ERR_CRYPTO ? EXIT_FAIL : EXIT_FILE;
        }
        rp_fingerprint(c->pk, c->fp);
    }
    if (rc < 0) rc = rep_time(c);
    if (rc < 0) {
        c->title = title;
        c->examiner = examiner;
        c->controls = controls;
        c->commit = commit;
        if (commit) randombytes_buf(c->openings, sizeof c->openings);
        rc = rep_run(c);
    }
    if (rc == 0) {
        char jh[65];
        rp_sha256_mem(c->json.data, c->json.len, jh);
        c->rep.json_sha256 = jh;
        const char *why = NULL;
        if (rp_pdf_render(&c->rep, &pdf, &why) != 0) {
            cli_error("cannot draw the PDF: %s", why);
            rc = EXIT_FAIL;
        }
    }
    if (rc == 0) {
        uint8_t sj[RP_SIG_BYTES], sp[RP_SIG_BYTES];
        if (crypto_sign_detached(sj, NULL, (const uint8_t *)c->json.data, c->json.len, sk) != 0 ||
            crypto_sign_detached(sp, NULL, (const uint8_t *)pdf.data, pdf.len, sk) != 0) {
            cli_error("signing failed");
            rc = EXIT_FAIL;
        } else rep_sig_text(&sig, c->pk, c->fp, sj, sp);
        if (sig.failed) rc = EXIT_FAIL;
    }
    if (sk != NULL) sodium_free(sk);
    /* write: a temporary sibling directory, then one rename.  Interrupts
     * (INT, TERM, HUP, QUIT) wait until this is finished or cleaned up, so
     * they leave neither a half-written report nor the temporary directory. */
    int made_tmp = 0;
    sigset_t block, saved;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGQUIT);
    int blocked = rc == 0 && pthread_sigmask(SIG_BLOCK, &block, &saved) == 0;
    if (rc == 0) {
        size_t ol = strlen(outdir);
        while (ol > 1 && outdir[ol - 1] == '/') ol--;
        tmp = malloc(ol + 64);
        opening_path = malloc(ol + 16);
        if (tmp == NULL || opening_path == NULL) rc = EXIT_FAIL;
        else {
            snprintf(tmp, ol + 64, "%.*s.tmp-%ld", (int)ol, outdir, (long)getpid());
            snprintf(opening_path, ol + 16, "%.*s.opening", (int)ol, outdir);
            if (mkdir(tmp, 0755) != 0) {
                fprintf(stderr, "tokmark: %s: cannot create: %s\n", tmp, strerror(errno));
                rc = EXIT_FILE;
            } else made_tmp = 1;
        }
    }
    if (rc == 0) {
        char p[4200];
        int e = 0;
        snprintf(p, sizeof p, "%s/report.json", tmp);
        if (e == 0) e = rp_write_new_file(p, c->json.data, c->json.len, 0644);
        snprintf(p, sizeof p, "%s/report.pdf", tmp);
        if (e == 0) e = rp_write_new_file(p, pdf.data, pdf.len, 0644);
        snprintf(p, sizeof p, "%s/report.sig", tmp);
        if (e == 0) e = rp_write_new_file(p, sig.data, sig.len, 0644);
        if (e == 0) e = rp_fsync_dir(tmp);
        if (e != 0) {
            fprintf(stderr, "tokmark: %s: cannot write the report: %s\n", tmp, strerror(e));
            rc = EXIT_FILE;
        }
    }
    int wrote_opening = 0;
    if (rc == 0 && commit) {
        rp_buf ob = {0};
        rp_buf_printf(&ob, "tokmark-key-opening 1\n# Opens the key commitments of the report %s (SPEC.md 2.8).\n"
                           "# Keep it with the key, secret until the commitment is to be opened.\n", outdir);
        for (size_t k = 0; k < c->nkeys; k++) {
            char h[65];
            rp_hex(h, c->openings[k], TOKMARK_COMMITMENT_BYTES);
            rp_buf_printf(&ob, "key-id %s\nopening %s\ncommitment %s\n", c->key_ids[k], h, c->commit_hex[k]);
            sodium_memzero(h, sizeof h);
        }
        rp_buf_puts(&ob, "end\n");
        int e = ob.failed ? ENOMEM : rp_write_new_file(opening_path, ob.data, ob.len, 0600);
        if (ob.data) sodium_memzero(ob.data, ob.len);
        rp_buf_free(&ob);
        if (e != 0) {
            fprintf(stderr, "tokmark: %s: cannot write the opening: %s\n", opening_path, strerror(e));
            rc = EXIT_FILE;
        } else wrote_opening = 1;
    }
    if (rc == 0) {
        struct stat st;
        if (lstat(outdir, &st) == 0 || rename(tmp, outdir) != 0) {
            fprintf(stderr, "tokmark: %s: cannot put the report in place: %s\n", outdir,
                    errno ? strerror(errno) : "exists already");
            rc = EXIT_FILE;
        } else {
            made_tmp = 0;
            char *dc = strdup(outdir);
            if (dc != NULL) {
                char *slash = strrchr(dc, '/');
                if (slash == NULL) (void)rp_fsync_dir(".");
                else {
                    if (slash == dc) slash[1] = '\0';
                    else *slash = '\0';
                    (void)rp_fsync_dir(dc);
                }
            }
            free(dc);
        }
    }
    if (rc != 0 && wrote_opening) unlink(opening_path);
    if (made_tmp) rep_remove_tmp(tmp);
    if (blocked) pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (rc == 0) {
        printf("report %s\nkey-id %s\ncorpus log10_p_corrected %.6f %s\nsigner %s\n", outdir, c->rep.corpus_key_id,
               c->rep.log10_p_corrected, c->rep.verdict, c->fp);
        fprintf(stderr, "%s: wrote %s/report.json, report.pdf, report.sig%s%s\n", cli_command, outdir,
                commit ? "; key opening in " : "", commit ? opening_path : "");
    }
    free(tmp);
    free(opening_path);
    rp_buf_free(&pdf);
    rp_buf_free(&sig);
    rep_free(c);
    free(c);
    free(av);
    free(rec);
    return rc < 0 ? EXIT_FAIL : rc;
}

/* ------------------------------------------------------------------------ */
/* verify                                                                     */
/* ------------------------------------------------------------------------ */

static int ver_problems;

static void ver_item(int ok, const char *what, const char *detail) {
    printf("%-8s %s%s%s\n", ok ? "ok" : "FAILED", what, detail && *detail ? ": " : "", detail ? detail : "");
    if (!ok) ver_problems++;
}

/* Parse report.sig: public key and the two signatures.  0 or -1. */
static int ver_parse_sig(const char *text, uint8_t pk[RP_PK_BYTES], char fp[33], uint8_t sj[RP_SIG_BYTES],
                         uint8_t sp[RP_SIG_BYTES]) {
    char pkh[65], fph[33], sjh[129], sph[129];
    int n = 0;
    if (sscanf(text,
               "tokmark-report-signature 1\nalgorithm ed25519\npublic-key %64[0-9a-f]\nfingerprint %32[0-9a-f]\n"
               "signature report.json %128[0-9a-f]\nsignature report.pdf %128[0-9a-f]\nend\n%n",
               pkh, fph, sjh, sph, &n) != 4 || n == 0 || text[n] != '\0')
        return -1;
    size_t got = 0;
    if (strlen(pkh) != 64 || strlen(sjh) != 128 || strlen(sph) != 128 || strlen(fph) != 32) return -1;
    if (sodium_hex2bin(pk, RP_PK_BYTES, pkh, 64, NULL, &got, NULL) != 0 || got != RP_PK_BYTES) return -1;
    if (sodium_hex2bin(sj, RP_SIG_BYTES, sjh, 128, NULL, &got, NULL) != 0 || got != RP_SIG_BYTES) return -1;
    if (sodium_hex2bin(sp, RP_SIG_BYTES, sph, 128, NULL, &got, NULL) != 0 || got != RP_SIG_BYTES) return -1;
    memcpy(fp, fph, 33);
    return 0;
}

static int ver_section_equal(json_t *a, json_t *b, const char *name) {
    int ok = a != NULL && b != NULL && json_equal(a, b);
    char what[96];
    snprintf(what, sizeof what, "recorded %s equals the re-run", name);
    ver_item(ok, what, ok ? "" : "differs");
    return ok;
}

static int cmd_report_verify(int argc, char **argv) {
    cli_command = "tokmark report verify";
    const char *dir = NULL, *pubfile = NULL;
    const char *profiles[64];
    size_t nprof = 0;
    int evidence = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--public-key") == 0 && i + 1 < argc) pubfile = argv[++i];
        else if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc) {
            if (nprof == 64) return cli_usage_error("at most 64 --profile");
            profiles[nprof++] = argv[++i];
        } else if (strcmp(argv[i], "--evidence") == 0) evidence = 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(cmd_report_help, stdout);
            return EXIT_OK;
        } else if (argv[i][0] == '-') return cli_usage_error("unknown option '%s'", argv[i]);
        else if (dir == NULL) dir = argv[i];
        else return cli_usage_error("one report directory only");
    }
    if (dir == NULL) return cli_usage_error("missing the report directory");
    if (sodium_init() < 0) return EXIT_FAIL;
    ver_problems = 0;
    char p[4200];
    size_t jl = 0, pl = 0, sl = 0;
    int e = 0;
    snprintf(p, sizeof p, "%s/report.json", dir);
    char *js = rp_read_file(p, &jl, &e);
    if (js == NULL) fprintf(stderr, "tokmark: %s: %s\n", p, strerror(e));
    snprintf(p, sizeof p, "%s/report.pdf", dir);
    char *pdf = rp_read_file(p, &pl, &e);
    if (pdf == NULL) fprintf(stderr, "tokmark: %s: %s\n", p, strerror(e));
    snprintf(p, sizeof p, "%s/report.sig", dir);
    char *sg = rp_read_file(p, &sl, &e);
    if (sg == NULL) fprintf(stderr, "tokmark: %s: %s\n", p, strerror(e));
    int rc = js && pdf && sg ? 0 : EXIT_FILE;
    uint8_t pk[RP_PK_BYTES], sj[RP_SIG_BYTES], sp[RP_SIG_BYTES];
    char fp[33], want[33];
    if (rc == 0 && ver_parse_sig(sg, pk, fp, sj, sp) != 0) {
        fprintf(stderr, "tokmark: %s/report.sig:1: not a tokmark report signature file (or damaged)\n", dir);
        ver_item(0, "report.sig", "malformed");
        rc = EXIT_FILE;
    }
    json_t *root = NULL;
    if (rc == 0) {
        rp_fingerprint(pk, want);
        ver_item(strcmp(want, fp) == 0, "report.sig fingerprint matches its public key", "");
        ver_item(crypto_sign_verify_detached(sj, (const uint8_t *)js, jl, pk) == 0, "signature of report.json",
                 "");
        ver_item(crypto_sign_verify_detached(sp, (const uint8_t *)pdf, pl, pk) == 0, "signature of report.pdf",
                 "");
        char msg[128];
        if (pubfile != NULL) {
            uint8_t tpk[RP_PK_BYTES];
            size_t line = 0;
            int k = rp_pubkey_load(pubfile, tpk, &line, &e);
            if (k != RP_OK) {
                fprintf(stderr, "tokmark: %s: %s\n", pubfile, rp_error_message(k));
                rc = EXIT_FILE;
            } else {
                snprintf(msg, sizeof msg, "fingerprint %s", want);
                ver_item(sodium_memcmp(tpk, pk, RP_PK_BYTES) == 0, "signed by the key in the given public key file",
                         msg);
            }
        } else
            printf("%-8s signer fingerprint %s (not checked against a trusted key: give --public-key)\n", "note", want);
        json_error_t je;
        root = json_loadb(js, jl, 0, &je);
        if (root == NULL) {
            fprintf(stderr, "tokmark: %s/report.json:%d: %s\n", dir, je.line, je.text);
            ver_item(0, "report.json", "not JSON");
        } else {
            const char *rpk = json_string_value(json_object_get(json_object_get(root, "signer"), "public_key"));
            char pkh[65];
            rp_hex(pkh, pk, RP_PK_BYTES);
            ver_item(rpk != NULL && strcmp(rpk, pkh) == 0, "report.json names the same signer", "");
        }
    }
    json_t *ev = root ? json_object_get(json_object_get(root, "evidence"), "files") : NULL;
    if (rc == 0 && root != NULL && (evidence || nprof > 0)) {
        size_t i;
        json_t *f, *all = json_array();
        json_array_extend(all, ev);
        json_array_extend(all, json_object_get(json_object_get(root, "evidence"), "auxiliary"));
        json_array_foreach(all, i, f) {
            const char *path = json_string_value(json_object_get(f, "path"));
            const char *sha = json_string_value(json_object_get(f, "sha256"));
            json_int_t size = json_integer_value(json_object_get(f, "size"));
            char h[65], what[4200], det[200];
            uint64_t sz = 0;
            int er = path ? rp_sha256_file(path, h, &sz) : EINVAL;
            snprintf(what, sizeof what, "evidence %s", path ? path : "?");
            if (er != 0) snprintf(det, sizeof det, "cannot read: %s", strerror(er));
            else if (sha == NULL || strcmp(h, sha) != 0 || (json_int_t)sz != size)
                snprintf(det, sizeof det, "changed (now %llu bytes, SHA-256 %s)", (unsigned long long)sz, h);
            else snprintf(det, sizeof det, "%llu bytes, SHA-256 matches", (unsigned long long)sz);
            ver_item(er == 0 && sha != NULL && strcmp(h, sha) == 0 && (json_int_t)sz == size, what, det);
        }
        json_decref(all);
        json_t *tk = json_object_get(json_object_get(root, "evidence"), "tokenizer");
        const char *tpath = json_string_value(json_object_get(tk, "path"));
        if (tpath != NULL) {
            char h[65];
            uint64_t sz = 0;
            int er = rp_sha256_file(tpath, h, &sz);
            const char *sha = json_string_value(json_object_get(tk, "sha256"));
            ver_item(er == 0 && sha != NULL && strcmp(h, sha) == 0, "tokenizer file", tpath);
        }
    }
    if (rc == 0 && root != NULL && nprof > 0) {
        /* re-run the scan with the recorded options */
        json_t *sc = json_object_get(root, "scan"), *args = json_object_get(sc, "arguments"),
               *ins = json_object_get(sc, "inputs");
        size_t na = json_array_size(args), ni = json_array_size(ins);
        char **av = calloc(na + ni + 2 * nprof + 2, sizeof *av);
        const char **rec = calloc(na + ni + 2 * nprof + 2, sizeof *rec);
        rep_ctx *c = calloc(1, sizeof *c);
        int ac = 0, ok = av && rec && c;
        if (ok) {
            av[ac++] = (char *)(uintptr_t)"report";
            for (size_t k = 0; k < nprof; k++) {
                av[ac++] = (char *)(uintptr_t)"--profile";
                av[ac++] = (char *)(uintptr_t)profiles[k];
            }
            for (size_t k = 0; k < na; k++) av[ac++] = (char *)(uintptr_t)json_string_value(json_array_get(args, k));
            for (size_t k = 0; k < ni; k++) av[ac++] = (char *)(uintptr_t)json_string_value(json_array_get(ins, k));
            for (int k = 0; k < ac; k++) ok &= av[k] != NULL;
        }
        int r2 = ok ? rep_parse_scan(c, ac, av, rec) : EXIT_FILE;
        if (r2 < 0) {
            json_t *cs = json_object_get(root, "case");
            c->title = json_string_value(json_object_get(cs, "title"));
            c->examiner = json_string_value(json_object_get(cs, "examiner"));
            c->time_source = "clock";
            snprintf(c->time_utc, sizeof c->time_utc, "%s", "");
            c->controls = (uint32_t)json_integer_value(json_object_get(sc, "controls"));
            memcpy(c->pk, pk, sizeof pk);
            memcpy(c->fp, want, sizeof want);
            if (c->title == NULL || c->examiner == NULL || c->controls == 0) r2 = EXIT_FILE;
            else r2 = rep_run(c);
        }
        if (r2 > 0) {
            ver_item(0, "re-running the scan", "failed (see above)");
        } else {
            json_error_t je;
            json_t *fresh = json_loadb(c->json.data, c->json.len, 0, &je);
            json_t *rk = json_object_get(json_object_get(root, "profile"), "keys");
            json_t *fk = json_object_get(json_object_get(fresh, "profile"), "keys");
            int kok = json_array_size(rk) == json_array_size(fk) && json_array_size(rk) > 0;
            for (size_t k = 0; kok && k < json_array_size(rk); k++) {
                const char *x = json_string_value(json_object_get(json_array_get(rk, k), "key_id"));
                const char *y = json_string_value(json_object_get(json_array_get(fk, k), "key_id"));
                kok = x && y && strcmp(x, y) == 0;
            }
            ver_item(kok, "the given profile has the recorded key ID(s)", "");
            json_t *rr = json_object_get(root, "results"), *fr = json_object_get(fresh, "results");
            ver_section_equal(json_object_get(rr, "corpus"), json_object_get(fr, "corpus"), "corpus result");
            ver_section_equal(json_object_get(rr, "files"), json_object_get(fr, "files"), "per-file results");
            ver_section_equal(json_object_get(rr, "documents"), json_object_get(fr, "documents"),
                              "per-document results");
            ver_section_equal(json_object_get(root, "error_rate"), json_object_get(fresh, "error_rate"),
                              "error rate (control keys)");
            ver_section_equal(json_object_get(root, "plots"), json_object_get(fresh, "plots"), "plot data");
            json_decref(fresh);
        }
        if (c) rep_free(c);
        free(c);
        free(av);
        free(rec);
    }
    if (rc == 0) {
        if (ver_problems == 0) printf("VERIFIED %s\n", dir);
        else printf("NOT VERIFIED %s: %d check%s failed\n", dir, ver_problems, ver_problems == 1 ? "" : "s");
        if (ver_problems) fprintf(stderr, "tokmark report verify: %s: %d check%s failed\n", dir, ver_problems,
                                  ver_problems == 1 ? "" : "s");
    }
    json_decref(root);
    free(js);
    free(pdf);
    free(sg);
    if (rc != 0) return rc;
    return ver_problems ? EXIT_FAIL : EXIT_OK;
}

#endif
