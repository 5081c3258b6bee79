/* cmd_scan.h — `tokmark scan`, `tokmark merge`, `tokmark filter build`: the
 * verifier for scraped datasets and suspect-model outputs (SPEC.md §12).
 *
 * Pipeline: the main thread reads input (tools/cli/input.h) into batches of
 * raw units; worker threads (-j N) parse and tokenize whole batches; the main
 * thread then runs the detector over the batches strictly in input order and
 * writes the results.  So the output is the same whatever -j is, and the
 * detector (with its corpus-wide tuple sets) has one owner.  With -j 1
 * everything runs in the calling thread. */
#ifndef TOKMARK_CMD_SCAN_H
#define TOKMARK_CMD_SCAN_H

#include "cli.h"
#include "input.h"
#include "scanutil.h"

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Exit codes of scan / merge (documented in the help). */
enum {
    SCAN_EXIT_CLEAN = 0,    /* no watermark found (or found, without --exit-status) */
    SCAN_EXIT_FOUND = 1,    /* --exit-status: a watermark was found */
    SCAN_EXIT_USAGE = 2,    /* bad command line */
    SCAN_EXIT_FILE = 3,     /* a key, tokenizer, filter, partial or output file failed */
    SCAN_EXIT_BADINPUT = 4, /* --strict: bad input met */
    SCAN_EXIT_INTERNAL = 5  /* out of memory or another internal failure */
};

static const char cmd_scan_help[] =
    "usage: tokmark scan --profile KEY [options] [INPUT...]\n"
    "\n"
    "Score files, directories (recursive) or standard input ('-', the default)\n"
    "for the watermark of KEY and print JSON Lines: one line per document, then\n"
    "one summary line with the corpus-level test over every distinct tuple of\n"
    "the whole input (SPEC.md §12).  .gz and .zst input is recognised by content.\n"
    "\n"
    "Keys\n"
    "  --profile FILE       key file (repeatable; a file may hold several keys)\n"
    "  --accounts FILE      attribution: one account id per line; each account's\n"
    "                       key is derived from the (master) profile and tested\n"
    "Input\n"
    "  --input-format auto|text|jsonl   (auto: .jsonl/.ndjson/.json are JSON Lines)\n"
    "  --split doc|lines|paragraphs     plain text units (default doc: a file)\n"
    "  --field PATH         JSON text field, dotted for nested (default text)\n"
    "  --prompt-field PATH  prompt/answer pairs: the prompt's field\n"
    "  --messages-field PATH chat turns (default messages)\n"
    "  --role ROLE          chat roles scored (repeatable; default assistant)\n"
    "  --ids-field PATH     pre-tokenized ids (default ids; no tokenizer needed)\n"
    "  --max-record SIZE    longer units are skipped (default 32M)\n"
    "  --tokenizer NAME|PATH  (default: the profile's tokenizer)\n"
    "  --allow-special      text spelling special tokens becomes them\n"
    "Tests\n"
    "  --mode documents|closed|reading\n"
    "                       documents (default); closed: suspect-model answers\n"
    "                       with their prompts (tuples whose context occurs in\n"
    "                       the prompt are not scored); reading: teacher-forced\n"
    "                       top-1 predictions (--pred-field, default predictions)\n"
    "  --pred-field PATH    reading mode: the predictions array\n"
    "  --filter FILE        score only contexts in this filter (tokmark filter build)\n"
    "  --alpha A            significance level of verdicts (default 1e-6)\n"
    "  --score default|weighted   SynthID score (default: mean)\n"
    "  --no-windows         no windowed search for watermarked spans\n"
    "  --dedup-memory SIZE  memory for the corpus tuple sets (default 256M)\n"
    "Output and running\n"
    "  --format json|table  JSON Lines (default) or a readable table\n"
    "  --partial FILE       also write a mergeable partial result (tokmark merge)\n"
    "  -j N                 worker threads (default 1; results do not depend on N)\n"
    "  --strict             stop at the first bad input\n"
    "  --exit-status        exit 1 when a watermark is found\n"
    "  -q, --quiet          no progress and no per-record error messages\n"
    "\n"
    "Bad input (invalid UTF-8, malformed JSON, missing fields, truncated .gz,\n"
    "binary or unreadable files, records over --max-record) is reported on\n"
    "stderr with file and line, as a {\"skipped\":...} line on stdout, and\n"
    "counted in the summary; the scan goes on.\n"
    "\n"
    "Exit status: 0 no watermark found (or found, without --exit-status);\n"
    "1 watermark found (--exit-status); 2 usage; 3 a key, tokenizer, filter,\n"
    "partial or output file could not be used; 4 bad input with --strict;\n"
    "5 out of memory or internal error.\n";

/* ------------------------------------------------------------------------ */
/* Options and state                                                         */
/* ------------------------------------------------------------------------ */

enum { SCAN_MODE_DOCS = 0, SCAN_MODE_CLOSED = 1, SCAN_MODE_READING = 2 };

typedef struct scan_cfg {
    const char *profiles[64];
    size_t nprofiles;
    const char *accounts;
    const char *tokenizer;
    const char *roles[16];
    size_t nroles;
    tmi_options in;
    int table, windows, mode, strict, exit_status, quiet, allow_special, jobs;
    tokmark_score_kind score;
    double alpha;
    uint64_t dedup_memory;
    const char *filter;
    const char *partial;
    uint32_t control_keys; /* extra keys never used for watermarking (SPEC §12.7) */
    int no_output;         /* no document or summary lines (callers that use the hook) */
} scan_cfg;

/* A tokenized record (the output of a worker for one unit). */
typedef struct scan_item {
    int kind;              /* 0 record, 1 error */
    tmi_error err;         /* kind 1 */
    const char *source;
    uint64_t index, line;
    size_t tok_off;        /* tokens in the batch's token array */
    size_t nseg, seg_off;  /* segments in the batch's segment array */
    size_t pred_off, npred;
    size_t bytes;          /* raw unit length */
} scan_item;

typedef struct scan_seg {
    int score;
    size_t ntok;
    int text;              /* 1: from text (byte offsets are meaningful) */
} scan_seg;

#define SCAN_BATCH_BYTES ((size_t)1 << 20)
/* batches that workers also detect hold their tuples until the main thread
 * absorbs them, in as many batches as are in flight: smaller ones */
#define SCAN_PBATCH_BYTES ((size_t)64 << 10)
#define SCAN_BATCH_UNITS 4096

typedef struct scan_totals {
    uint64_t documents, skipped, kinds[TMI_ERR_COUNT], bytes, docs_watermarked, docs_span, excluded;
    uint64_t positions; /* reading mode */
} scan_totals;

typedef struct scan_batch {
    /* filled by the reader */
    char *data;
    size_t len, cap;
    scan_item *items;
    size_t nitems, items_cap;
    size_t *uoff;          /* unit data offsets */
    size_t *ulen;
    int *ujsonl;
    uint64_t *uoffset;
    /* filled by the worker */
    int32_t *tok;
    size_t ntok, tok_cap;
    scan_seg *seg;
    size_t nseg, seg_cap;
    int failed;            /* out of memory in the worker */
    int state;             /* 0 free, 1 queued, 2 working, 3 done */
    uint64_t seq;          /* its place in the input (batches are written in this order) */
    int shared;            /* its detector shares the main detector's sets (SPEC §7.6) */
    /* detection in the worker (scan_state.pdetect): a deferring detector
     * (SPEC §7.6) whose tuples the main thread absorbs in input order, and
     * what the batch wrote and counted */
    tokmark_detector *det;
    char *obuf, *ebuf;     /* stdout and stderr text (open_memstream) */
    size_t olen, elen;
    scan_totals tot;
    int found;
} scan_batch;

typedef struct scan_state scan_state;

typedef struct scan_worker_ctx {
    tmi_parser *parser;
    tokmark_tokenizer_encoder *enc;
    scan_state *ws;        /* the worker's own scan state (pdetect) */
} scan_worker_ctx;

/* What a document gave, for callers that collect results (the report). */
typedef struct scan_doc_info {
    const char *source;
    uint64_t record, line;
    tokmark_result r;       /* best real key */
    const char *verdict;
    int has_window, span_found;
    tms_window window;
    uint64_t windows_tried;
    double window_corrected;
} scan_doc_info;

typedef void (*scan_doc_hook)(void *ctx, const scan_state *s, const scan_doc_info *d);

struct scan_state {
    scan_cfg *cfg;
    tokmark_compat *compat;        /* a compatibility profile (SPEC §10) instead of a ring */
    tokmark_compat_detector *cdet;
    tokmark_keyring *ring;  /* the real keys first, then the control keys */
    size_t nreal;
    scan_doc_hook hook;
    void *hook_ctx;
    tokmark_detector *det;
    tokmark_tokenizer *tok;
    tms_filter filter;
    int have_filter;
    uint32_t widths[TOKMARK_MAX_CONTEXT + 1]; /* context lengths of the ring's keys */
    uint32_t nwidths;
    tms_set promptset[TOKMARK_MAX_CONTEXT + 1];
    tokmark_trace **trace;
    size_t trace_cap, ntrace_keys;
    int32_t *doc;          /* the document's token stream */
    uint8_t *docflag;      /* 1: scored segment */
    size_t doc_cap;
    scan_totals tot;
    int found;
    int stop;              /* --strict met bad input */
    FILE *out;
    FILE *err;             /* messages on bad input (stderr; a batch's buffer in a worker) */
    int pdetect;           /* workers detect; the main thread absorbs (SPEC §7.6) */
    int reserved;          /* the corpus sets were sized for the input (scan_reserve) */
    uint64_t res_bytes, res_distinct; /* scan_reserve's first point */
    /* threads */
    scan_batch *batches;
    size_t nbatches;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    int quit;
    int nthreads;
};

static int scan_parse_size(const char *opt, const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || v < 0) goto bad;
    double mul = 1;
    if (*end == 'k' || *end == 'K') mul = 1024.0, end++;
    else if (*end == 'm' || *end == 'M') mul = 1024.0 * 1024, end++;
    else if (*end == 'g' || *end == 'G') mul = 1024.0 * 1024 * 1024, end++;
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
    if (*end != '\0' || v * mul > 1e18) goto bad;
    *out = (uint64_t)(v * mul);
    return 1;
bad:
    cli_usage_error("%s: '%s' is not a size (e.g. 256M, 4G)", opt, s);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON output helpers                                                       */
/* ------------------------------------------------------------------------ */

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
static void scan_json_str(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    size_t i = 0;
    while (i < n) {
        size_t ok = i + tmi_utf8_check(s + i, n - i);
        for (; i < ok; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
            else if (c == '\n') fputs("\\n", f);
            else if (c == '\t') fputs("\\t", f);
            else if (c == '\r') fputs("\\r", f);
            else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
        if (i < n) {
            fputs("\\ufffd", f);
            i++;
        }
    }
    fputc('"', f);
}

static void scan_json_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.10g", v);
    else fputs(v < 0 ? "-1e999" : "1e999", f); /* JSON has no infinity; these parse as ±inf */
}

static const char *scan_mode_name(int m) {
    return m == SCAN_MODE_CLOSED ? "closed" : m == SCAN_MODE_READING ? "reading" : "documents";
}

/* The account of key k (NULL for none). */
static const char *scan_account(const scan_state *s, size_t k, size_t *len) {
    *len = 0;
    if (s->compat != NULL) return NULL;
    const tokmark_profile *p = tokmark_keyring_get(s->ring, k);
    *len = tokmark_profile_account_len(p);
    return *len ? tokmark_profile_account(p) : NULL;
}

/* The best of the real keys (document or corpus), corrected by Šidák for
 * their number (control keys never count, SPEC §12.7). */
static void scan_best(const scan_state *s, int corpus, tokmark_result *out) {
    if (s->compat != NULL) {
        if (corpus) tokmark_compat_detector_corpus(s->cdet, out);
        else tokmark_compat_detector_document(s->cdet, out);
        return;
    }
    tokmark_result r;
    for (size_t k = 0; k < s->nreal; k++) {
        if (corpus) tokmark_detector_corpus(s->det, k, &r);
        else tokmark_detector_document(s->det, k, &r);
        if (k == 0 || r.log10_p < out->log10_p) *out = r;
    }
    out->log10_p_corrected = tokmark_ln_sidak(out->log10_p * 2.30258509299404568402, s->nreal) / 2.30258509299404568402;
}

static void scan_print_result_fields(scan_state *s, const tokmark_result *r) {
    FILE *f = s->out;
    fprintf(f, "\"tokens\":%llu,\"scored\":%llu,\"duplicates\":%llu,\"dropped\":%llu,\"statistic\":",
            (unsigned long long)r->tokens, (unsigned long long)r->scored, (unsigned long long)r->duplicates,
            (unsigned long long)r->dropped);
    scan_json_num(f, r->statistic);
    fputs(",\"z\":", f);
    scan_json_num(f, r->z);
    fputs(",\"log10_p\":", f);
    scan_json_num(f, r->log10_p);
    fputs(",\"log10_p_corrected\":", f);
    scan_json_num(f, r->log10_p_corrected);
    fprintf(f, ",\"key_id\":\"%s\"", r->key_id);
    size_t alen;
    const char *acc = scan_account(s, r->key_index, &alen);
    if (acc != NULL) {
        fputs(",\"account\":", f);
        scan_json_str(f, acc, alen);
    }
}

/* ------------------------------------------------------------------------ */
/* Workers: parse and tokenize a batch                                        */
/* ------------------------------------------------------------------------ */

static int scan_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (q == NULL) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int scan_push_tokens(scan_batch *b, tokmark_tokenizer_encoder *enc, const char *text, size_t len,
                            unsigned flags, size_t *n_out) {
    for (;;) {
        size_t cap = b->tok_cap - b->ntok, n = 0;
        int rc = tokmark_tokenizer_encoder_encode(enc, text, len, b->tok + b->ntok, cap, &n, flags);
        if (rc != TOKMARK_OK) return rc;
        if (n <= cap) {
            b->ntok += n;
            *n_out = n;
            return TOKMARK_OK;
        }
        if (scan_grow((void **)&b->tok, &b->tok_cap, b->ntok + n, sizeof *b->tok)) return TOKMARK_ERR_NOMEM;
    }
}

static void scan_work_batch(scan_state *s, scan_worker_ctx *w, scan_batch *b) {
    b->ntok = b->nseg = 0;
    b->failed = 0;
    unsigned flags = s->cfg->allow_special ? TOKMARK_ENCODE_ALLOW_SPECIAL : 0;
    if (scan_grow((void **)&b->tok, &b->tok_cap, b->len / 2 + 1024, sizeof *b->tok)) {
        b->failed = 1;
        return;
    }
    for (size_t i = 0; i < b->nitems; i++) {
        scan_item *it = &b->items[i];
        if (it->kind != 0) continue;
        tmi_unit u = {it->source, it->index, it->line, b->uoffset[i], b->data + b->uoff[i], b->ulen[i], b->ujsonl[i]};
        tmi_record rec;
        it->tok_off = b->ntok;
        it->seg_off = b->nseg;
        it->nseg = 0;
        it->npred = 0;
        if (tmi_parse(w->parser, &u, &rec, &it->err) != 0) {
            it->kind = 1;
            continue;
        }
        if (scan_grow((void **)&b->seg, &b->seg_cap, b->nseg + rec.nseg + 1, sizeof *b->seg)) {
            b->failed = 1;
            return;
        }
        for (size_t k = 0; k < rec.nseg && it->kind == 0; k++) {
            const tmi_segment *sg = &rec.seg[k];
            size_t n = 0;
            if (sg->text != NULL) {
                if (w->enc == NULL) {
                    it->kind = 1;
                    it->err.kind = TMI_ERR_WRONG_TYPE;
                    snprintf(it->err.source, sizeof it->err.source, "%s", it->source);
                    it->err.line = it->line;
                    it->err.index = it->index;
                    snprintf(it->err.message, sizeof it->err.message, "text record but no tokenizer");
                    break;
                }
                int rc = scan_push_tokens(b, w->enc, sg->text, sg->len, flags, &n);
                if (rc == TOKMARK_ERR_NOMEM) {
                    b->failed = 1;
                    return;
                }
                if (rc != TOKMARK_OK) { /* validated by the parser, so not expected */
                    it->kind = 1;
                    it->err.kind = TMI_ERR_INVALID_UTF8;
                    snprintf(it->err.source, sizeof it->err.source, "%s", it->source);
                    it->err.line = it->line;
                    it->err.index = it->index;
                    snprintf(it->err.message, sizeof it->err.message, "the tokenizer refused the text (%s)",
                             tokmark_error_name(rc));
                    break;
                }
            } else {
                if (scan_grow((void **)&b->tok, &b->tok_cap, b->ntok + sg->n_ids, sizeof *b->tok)) {
                    b->failed = 1;
                    return;
                }
                memcpy(b->tok + b->ntok, sg->ids, sg->n_ids * sizeof *b->tok);
                b->ntok += sg->n_ids;
                n = sg->n_ids;
            }
            b->seg[b->nseg++] = (scan_seg){sg->score, n, sg->text != NULL};
            it->nseg++;
        }
        if (it->kind == 0 && rec.n_pred > 0) {
            if (scan_grow((void **)&b->tok, &b->tok_cap, b->ntok + rec.n_pred, sizeof *b->tok)) {
                b->failed = 1;
                return;
            }
            it->pred_off = b->ntok;
            memcpy(b->tok + b->ntok, rec.pred, rec.n_pred * sizeof *b->tok);
            b->ntok += rec.n_pred;
            it->npred = rec.n_pred;
        }
    }
}

static void scan_worker_detect(scan_state *s, scan_worker_ctx *w, scan_batch *b);
static int scan_worker_init(scan_state *s, scan_worker_ctx *w);
static void scan_worker_free(scan_worker_ctx *w);

static void *scan_thread(void *arg) {
    scan_state *s = (scan_state *)arg;
    scan_worker_ctx w = {NULL, NULL, NULL};
    int ok = tmi_parser_create(&w.parser, &s->cfg->in) == 0;
    if (ok && s->tok != NULL) ok = tokmark_tokenizer_encoder_create(&w.enc, s->tok) == TOKMARK_OK;
    if (ok && s->pdetect) ok = scan_worker_init(s, &w) == 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        scan_batch *b = NULL;
        while (!s->quit) {
            /* the oldest queued batch: the main thread waits for them in order */
            for (size_t i = 0; i < s->nbatches; i++)
                if (s->batches[i].state == 1 && (b == NULL || s->batches[i].seq < b->seq)) b = &s->batches[i];
            if (b != NULL) break;
            pthread_cond_wait(&s->work, &s->mu);
        }
        if (b == NULL) break;
        b->state = 2;
        pthread_mutex_unlock(&s->mu);
        if (ok) scan_work_batch(s, &w, b);
        else b->failed = 1;
        if (ok && s->pdetect && !b->failed) scan_worker_detect(s, &w, b);
        pthread_mutex_lock(&s->mu);
        b->state = 3;
        pthread_cond_broadcast(&s->done);
    }
    pthread_mutex_unlock(&s->mu);
    tmi_parser_free(w.parser);
    tokmark_tokenizer_encoder_free(w.enc);
    scan_worker_free(&w);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Detection of one record (main thread, input order)                        */
/* ------------------------------------------------------------------------ */

static void scan_report_error(scan_state *s, const tmi_error *e) {
    s->tot.skipped++;
    if (e->kind >= 0 && e->kind < TMI_ERR_COUNT) s->tot.kinds[e->kind]++;
    if (!s->cfg->quiet) {
        FILE *ef = s->err != NULL ? s->err : stderr;
        if (e->line > 0) fprintf(ef, "tokmark scan: %s:%llu: %s\n", e->source, (unsigned long long)e->line, e->message);
        else fprintf(ef, "tokmark scan: %s: %s\n", e->source, e->message);
    }
    if (!s->cfg->table && !s->cfg->no_output) {
        FILE *f = s->out;
        fputs("{\"source\":", f);
        scan_json_str(f, e->source, strlen(e->source));
        fprintf(f, ",\"record\":%llu,\"line\":%llu,\"skipped\":\"%s\",\"message\":", (unsigned long long)e->index,
                (unsigned long long)e->line, tmi_error_name(e->kind));
        scan_json_str(f, e->message, strlen(e->message));
        fputs("}\n", f);
    }
    if (s->cfg->strict) s->stop = 1;
}

/* 1 when the scored token at document position i must not be scored
 * (closed mode: its context occurs in the prompt; filter: its context is not
 * in the provider's filter) -- for any of the ring's context lengths. */
static int scan_excluded(scan_state *s, size_t i, int closed) {
    for (uint32_t w = 0; w < s->nwidths; w++) {
        uint32_t c = s->widths[w];
        if (i < c) continue; /* no tuple for this key here anyway */
        const int32_t *ctx = s->doc + i - c;
        if (closed && tms_set_has(&s->promptset[c], tms_context_fp(ctx, c))) return 1;
        if (s->have_filter && tms_filter_has(&s->filter, c, ctx) != 1) return 1;
    }
    return 0;
}

static int scan_document(scan_state *s, const scan_batch *b, const scan_item *it) {
    scan_cfg *cfg = s->cfg;
    size_t n = 0;
    for (size_t k = 0; k < it->nseg; k++) n += b->seg[it->seg_off + k].ntok;
    if (scan_grow((void **)&s->doc, &s->doc_cap, n + 1, sizeof *s->doc)) return -1;
    free(s->docflag);
    s->docflag = malloc(n + 1);
    if (s->docflag == NULL) return -1;
    memcpy(s->doc, b->tok + it->tok_off, n * sizeof *s->doc);
    size_t p = 0, text_segs = 0, scored_segs = 0;
    for (size_t k = 0; k < it->nseg; k++) {
        const scan_seg *sg = &b->seg[it->seg_off + k];
        memset(s->docflag + p, sg->score ? 1 : 0, sg->ntok);
        p += sg->ntok;
        text_segs += sg->text;
        scored_segs += sg->score != 0;
    }
    /* traces for windows */
    int windows = cfg->windows && s->ntrace_keys > 0 && cfg->mode != SCAN_MODE_READING;
    if (windows && n > s->trace_cap) {
        for (size_t k = 0; k < s->ntrace_keys; k++) {
            tokmark_trace *t = realloc(s->trace[k], n * sizeof *t);
            if (t == NULL) return -1;
            s->trace[k] = t;
        }
        s->trace_cap = n;
    }
    for (size_t k = 0; windows && k < s->ntrace_keys; k++) tokmark_detector_set_trace(s->det, k, s->trace[k], n);
    /* closed mode: the prompt's contexts */
    int closed = cfg->mode == SCAN_MODE_CLOSED;
    if (closed)
        for (uint32_t w = 0; w < s->nwidths; w++) {
            uint32_t c = s->widths[w];
            tms_set_clear(&s->promptset[c]);
            for (size_t i = 0; i + c <= n; i++) {
                int prompt_only = 1;
                for (uint32_t j = 0; j < c; j++)
                    if (s->docflag[i + j]) prompt_only = 0;
                if (prompt_only && tms_set_add(&s->promptset[c], tms_context_fp(s->doc + i, c)) < 0) return -1;
            }
        }
    if (s->compat != NULL) {
        /* compatibility profiles: the reference detectors score whole
         * sequences; here the scored segments, concatenated (SPEC §12.1) */
        tokmark_compat_detector_begin(s->cdet);
        for (size_t i0 = 0; i0 < n;) {
            size_t j0 = i0;
            while (j0 < n && s->docflag[j0] == s->docflag[i0]) j0++;
            if (s->docflag[i0]) tokmark_compat_detector_feed(s->cdet, s->doc + i0, j0 - i0);
            i0 = j0;
        }
    } else
        tokmark_detector_begin(s->det);
    size_t i = s->compat != NULL ? n : 0;
    while (i < n) {
        int scored = s->docflag[i] && !((closed || s->have_filter) && scan_excluded(s, i, closed));
        if (s->docflag[i] && !scored) s->tot.excluded++;
        size_t j = i + 1;
        while (j < n) {
            int sj = s->docflag[j] && !((closed || s->have_filter) && scan_excluded(s, j, closed));
            if (sj != scored) break;
            if (s->docflag[j] && !sj) s->tot.excluded++;
            j++;
        }
        if (scored) tokmark_detector_feed(s->det, s->doc + i, j - i);
        else tokmark_detector_prompt(s->det, s->doc + i, j - i);
        i = j;
    }
    tokmark_result r;
    scan_best(s, 0, &r);
    s->tot.documents++;
    double thr = log10(cfg->alpha);
    int doc_found = r.scored > 0 && r.log10_p_corrected <= thr;
    /* windows: best over keys, Bonferroni over every window of every key */
    tms_window best = {0}, wdw;
    size_t best_key = 0;
    uint64_t tried = 0;
    for (size_t k = 0; windows && k < s->ntrace_keys; k++) {
        const tokmark_params *pp = tokmark_profile_params(tokmark_keyring_get(s->ring, k));
        tms_best_window(s->trace[k], n, pp, cfg->score, TMS_WINDOW_MIN, &wdw);
        tried += wdw.tried;
        if (wdw.found && (!best.found || wdw.log10_p < best.log10_p)) {
            best = wdw;
            best_key = k;
        }
        tokmark_detector_set_trace(s->det, k, NULL, 0);
    }
    double wcorr = best.found ? tms_bonferroni(best.log10_p, (double)tried) : 0.0;
    int span_found = best.found && wcorr <= thr;
    const char *verdict = r.scored == 0 ? "no_tuples"
                          : doc_found   ? "watermarked"
                          : span_found  ? "watermarked_span"
                                        : "not_detected";
    if (doc_found) s->tot.docs_watermarked++;
    if (span_found) s->tot.docs_span++;
    if (doc_found || span_found) s->found = 1;
    if (s->hook != NULL) {
        scan_doc_info di = {it->source, it->index, it->line, r, verdict, best.found, span_found, best, tried, wcorr};
        s->hook(s->hook_ctx, s, &di);
    }
    if (cfg->no_output) return 0;
    FILE *f = s->out;
    if (cfg->table) {
        char where[48];
        size_t sl = strlen(it->source);
        const char *src = sl > 32 ? it->source + sl - 32 : it->source; /* the end of a long path */
        snprintf(where, sizeof where, "%s:%llu", src, (unsigned long long)it->line);
        fprintf(f, "%-44s %8llu %8llu %8.2f %10.2f  %s", where, (unsigned long long)r.tokens,
                (unsigned long long)r.scored, r.z, r.log10_p_corrected, verdict);
        if (span_found)
            fprintf(f, " (tokens %llu-%llu, log10 p %.2f)",
                    (unsigned long long)(best.first >= tokmark_profile_params(tokmark_keyring_get(s->ring, best_key))->context_width
                                             ? best.first : 0),
                    (unsigned long long)best.last, wcorr);
        fputc('\n', f);
        return 0;
    }
    fputs("{\"source\":", f);
    scan_json_str(f, it->source, strlen(it->source));
    fprintf(f, ",\"record\":%llu,\"line\":%llu,", (unsigned long long)it->index, (unsigned long long)it->line);
    scan_print_result_fields(s, &r);
    fprintf(f, ",\"verdict\":\"%s\"", verdict);
    if (best.found) {
        /* the span: from the first context token of the first tuple to the last tuple's token */
        const tokmark_profile *bp = tokmark_keyring_get(s->ring, best_key);
        uint64_t ctxlen = tokmark_profile_params(bp)->seeding == TOKMARK_SEEDING_SELFHASH
                              ? tokmark_profile_params(bp)->context_width - 1
                              : tokmark_profile_params(bp)->context_width;
        uint64_t start = best.first >= ctxlen ? best.first - ctxlen : 0;
        fprintf(f, ",\"window\":{\"token_start\":%llu,\"token_end\":%llu,\"scored\":%llu,\"statistic\":",
                (unsigned long long)start, (unsigned long long)best.last + 1, (unsigned long long)best.scored);
        scan_json_num(f, best.statistic);
        fputs(",\"log10_p\":", f);
        scan_json_num(f, best.log10_p);
        fprintf(f, ",\"windows_tried\":%llu,\"log10_p_corrected\":", (unsigned long long)tried);
        scan_json_num(f, wcorr);
        if (span_found && text_segs == it->nseg && it->nseg == 1 && s->tok != NULL) {
            /* one text segment: token bytes concatenate to the text (SPEC §12.3) */
            uint64_t off = 0, bs = 0, be = 0;
            for (size_t q = 0; q <= best.last && q < n; q++) {
                size_t len = 0;
                if (q == start) bs = off;
                (void)tokmark_tokenizer_token_bytes(s->tok, s->doc[q], &len);
                off += len;
            }
            be = off;
            fprintf(f, ",\"byte_start\":%llu,\"byte_end\":%llu", (unsigned long long)bs, (unsigned long long)be);
        }
        fprintf(f, ",\"key_id\":\"%s\",\"significant\":%s}", tokmark_profile_key_id(bp), span_found ? "true" : "false");
    }
    fputs("}\n", f);
    (void)scored_segs;
    return 0;
}

/* Reading mode (SPEC §12.5): position i scores the tuple (x[i-c..i-1], y[i]). */
static int scan_reading(scan_state *s, const scan_batch *b, const scan_item *it) {
    size_t n = 0;
    for (size_t k = 0; k < it->nseg; k++) n += b->seg[it->seg_off + k].ntok;
    const int32_t *x = b->tok + it->tok_off, *y = b->tok + it->pred_off;
    if (it->npred != n || n == 0) {
        tmi_error e;
        memset(&e, 0, sizeof e);
        e.kind = TMI_ERR_BAD_IDS;
        snprintf(e.source, sizeof e.source, "%s", it->source);
        e.line = it->line;
        e.index = it->index;
        snprintf(e.message, sizeof e.message, "reading mode needs ids and predictions of equal length (%zu, %zu)",
                 n, it->npred);
        scan_report_error(s, &e);
        return 0;
    }
    uint32_t cmax = 0;
    for (uint32_t w = 0; w < s->nwidths; w++)
        if (s->widths[w] > cmax) cmax = s->widths[w];

    for (size_t i = 1; i < n; i++) {
        size_t c = i < cmax ? i : cmax;
        tokmark_detector_begin(s->det);
        tokmark_detector_prompt(s->det, x + i - c, c);
        tokmark_detector_feed(s->det, y + i, 1);
    }
    s->tot.documents++;
    s->tot.positions += n;
    if (s->cfg->table || s->cfg->no_output) return 0;
    FILE *f = s->out;
    fputs("{\"source\":", f);
    scan_json_str(f, it->source, strlen(it->source));
    fprintf(f, ",\"record\":%llu,\"line\":%llu,\"positions\":%zu}\n", (unsigned long long)it->index,
            (unsigned long long)it->line, n);
    return 0;
}

static int scan_detect_batch(scan_state *s, scan_batch *b) {
    if (b->failed) return -1;
    for (size_t i = 0; i < b->nitems && !s->stop; i++) {
        scan_item *it = &b->items[i];
        s->tot.bytes += it->bytes;
        if (it->kind == 1) {
            scan_report_error(s, &it->err);
            continue;
        }
        int rc = s->cfg->mode == SCAN_MODE_READING ? scan_reading(s, b, it) : scan_document(s, b, it);
        if (rc != 0) return -1;
    }
    return 0;
}

/* Detection in a worker (pdetect): the worker's own copy of the scan state,
 * with its own scratch, runs scan_detect_batch over the batch with the
 * batch's deferring detector, writing into the batch's buffers; the main
 * thread then passes it all on in input order (scan_drain_batch). */
static int scan_worker_init(scan_state *s, scan_worker_ctx *w) {
    scan_state *ws = malloc(sizeof *ws);
    if (ws == NULL) return -1;
    *ws = *s;
    w->ws = ws;
    ws->hook = NULL;
    ws->doc = NULL;
    ws->docflag = NULL;
    ws->doc_cap = 0;
    ws->trace = NULL;
    ws->trace_cap = 0;
    ws->threads = NULL;
    ws->batches = NULL;
    memset(ws->promptset, 0, sizeof ws->promptset);
    if (s->ntrace_keys > 0 && (ws->trace = calloc(s->ntrace_keys, sizeof *ws->trace)) == NULL) return -1;
    if (s->cfg->mode == SCAN_MODE_CLOSED)
        for (uint32_t k = 0; k < s->nwidths; k++)
            if (tms_set_init(&ws->promptset[s->widths[k]], 1024) != 0) return -1;
    return 0;
}

static void scan_worker_free(scan_worker_ctx *w) {
    scan_state *ws = w->ws;
    if (ws == NULL) return;
    for (uint32_t c = 0; c <= TOKMARK_MAX_CONTEXT; c++) tms_set_free(&ws->promptset[c]);
    for (size_t k = 0; k < ws->ntrace_keys && ws->trace; k++) free(ws->trace[k]);
    free(ws->trace);
    free(ws->doc);
    free(ws->docflag);
    free(ws);
    w->ws = NULL;
}

static void scan_worker_detect(scan_state *s, scan_worker_ctx *w, scan_batch *b) {
    scan_state *ws = w->ws;
    if (b->det == NULL) {
        tokmark_detector_config dc = {s->cfg->dedup_memory, 0, TOKMARK_DETECT_DEFER};
        if (tokmark_detector_create(&b->det, s->ring, &dc) != TOKMARK_OK) {
            b->failed = 1;
            return;
        }
        tokmark_detector_set_score(b->det, s->cfg->score);
    }
    if (tokmark_detector_share(b->det, b->shared ? s->det : NULL) != TOKMARK_OK) {
        b->failed = 1;
        return;
    }
    ws->det = b->det;
    memset(&ws->tot, 0, sizeof ws->tot);
    ws->found = 0;
    ws->stop = 0;
    ws->out = open_memstream(&b->obuf, &b->olen);
    ws->err = open_memstream(&b->ebuf, &b->elen);
    if (ws->out == NULL || ws->err == NULL || scan_detect_batch(ws, b) != 0) b->failed = 1;
    if ((ws->out != NULL && fclose(ws->out) != 0) || (ws->err != NULL && fclose(ws->err) != 0)) b->failed = 1;
    ws->out = ws->err = NULL;
    b->tot = ws->tot;
    b->found = ws->found;
}

/* Whether batch b may share the main detector's corpus sets (SPEC §7.6):
 * each of its tokens covers at least one byte, so its bytes bound the new
 * tuples it can add; with those of the shared batches in flight, they must
 * fit in the sets' room, so that no set grows or fills up while shared.
 * Starting to share (a pipeline drain) asks for room for a full pipeline. */
static int scan_can_share(scan_state *s, const scan_batch *b, int sharing, uint64_t inflight_bound) {
    if (!s->pdetect || s->cfg->partial != NULL) return 0;
    uint64_t room = tokmark_detector_room(s->det), need = inflight_bound + b->len;
    if (!sharing) need += s->nbatches * SCAN_PBATCH_BYTES;
    return room >= need;
}

static void scan_totals_add(scan_totals *t, const scan_totals *a) {
    t->documents += a->documents;
    t->skipped += a->skipped;
    for (int k = 0; k < TMI_ERR_COUNT; k++) t->kinds[k] += a->kinds[k];
    t->bytes += a->bytes;
    t->docs_watermarked += a->docs_watermarked;
    t->docs_span += a->docs_span;
    t->excluded += a->excluded;
    t->positions += a->positions;
}

/* The main thread's part of a batch a worker detected: its output, its
 * messages, its counts and its tuples, in input order. */
static int scan_drain_batch(scan_state *s, scan_batch *b) {
    int rc = b->failed ? -1 : 0;
    if (rc == 0) {
        if (b->olen > 0) fwrite(b->obuf, 1, b->olen, s->out);
        if (b->elen > 0) fwrite(b->ebuf, 1, b->elen, stderr);
        scan_totals_add(&s->tot, &b->tot);
        s->found |= b->found;
        if (tokmark_detector_absorb(s->det, b->det) != TOKMARK_OK) rc = -1;
    }
    free(b->obuf);
    free(b->ebuf);
    b->obuf = b->ebuf = NULL;
    b->olen = b->elen = 0;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading into batches                                                       */
/* ------------------------------------------------------------------------ */


static int scan_batch_add(scan_batch *b, const tmi_unit *u, const tmi_error *e) {
    if (scan_grow((void **)&b->items, &b->items_cap, b->nitems + 1, sizeof *b->items)) return -1;
    size_t cap = b->items_cap;
    /* parallel arrays share items_cap */
    size_t *o = realloc(b->uoff, cap * sizeof *o);
    if (o == NULL) return -1;
    b->uoff = o;
    size_t *l = realloc(b->ulen, cap * sizeof *l);
    if (l == NULL) return -1;
    b->ulen = l;
    int *j = realloc(b->ujsonl, cap * sizeof *j);
    if (j == NULL) return -1;
    b->ujsonl = j;
    uint64_t *uo = realloc(b->uoffset, cap * sizeof *uo);
    if (uo == NULL) return -1;
    b->uoffset = uo;
    scan_item *it = &b->items[b->nitems];
    memset(it, 0, sizeof *it);
    if (e != NULL) {
        it->kind = 1;
        it->err = *e;
        it->source = "";
    } else {
        if (b->len + u->len > b->cap) {
            size_t c = b->cap ? b->cap : 2 * u->len + 4096;
            while (c < b->len + u->len) c *= 2;
            char *d = realloc(b->data, c);
            if (d == NULL) return -1;
            b->data = d;
            b->cap = c;
        }
        memcpy(b->data + b->len, u->data, u->len);
        b->uoff[b->nitems] = b->len;
        b->ulen[b->nitems] = u->len;
        b->ujsonl[b->nitems] = u->is_jsonl;
        b->uoffset[b->nitems] = u->offset;
        b->len += u->len;
        it->source = u->source;
        it->index = u->index;
        it->line = u->line;
        it->bytes = u->len;
    }
    b->nitems++;
    return 0;
}

/* Fill b from the reader; returns 1 when input remains, 0 at the end, -1 out of memory. */
static int scan_fill(tmi_reader *r, scan_batch *b, size_t bytes) {
    b->len = b->nitems = 0;
    while (b->len < bytes && b->nitems < SCAN_BATCH_UNITS) {
        tmi_unit u;
        tmi_error e;
        int rc = tmi_reader_next(r, &u, &e);
        if (rc == 0) return 0;
        if (scan_batch_add(b, &u, rc < 0 ? &e : NULL)) return -1;
    }
    return 1;
}

static void scan_batch_free(scan_batch *b) {
    free(b->data);
    free(b->items);
    free(b->uoff);
    free(b->ulen);
    free(b->ujsonl);
    free(b->uoffset);
    free(b->tok);
    free(b->seg);
    tokmark_detector_free(b->det);
    free(b->obuf);
    free(b->ebuf);
}

/* ------------------------------------------------------------------------ */
/* Progress (stderr, only on a terminal)                                      */
/* ------------------------------------------------------------------------ */

static double scan_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void scan_progress(scan_state *s, tmi_reader *r, double t0, double *last, int final) {
    if (s->cfg->quiet || !isatty(2)) return;
    double t = scan_now();
    if (!final && t - *last < 0.5) return;
    *last = t;
    double in = (double)tmi_reader_bytes_in(r), total = (double)tmi_reader_bytes_total(r);
    double rate = in / (t - t0 > 1e-3 ? t - t0 : 1e-3);
    fprintf(stderr, "\r\033[K%.1f MB", in / 1e6);
    if (total > 0) fprintf(stderr, " / %.1f MB", total / 1e6);
    fprintf(stderr, "  %llu docs  %.1f MB/s", (unsigned long long)s->tot.documents, rate / 1e6);
    if (total > in && rate > 0) {
        double eta = (total - in) / rate;
        fprintf(stderr, "  ETA %d:%02d", (int)(eta / 60), (int)eta % 60);
    }
    if (final) fputs("\r\033[K", stderr);
}

/* ------------------------------------------------------------------------ */
/* Summary                                                                   */
/* ------------------------------------------------------------------------ */

static void scan_summary(scan_state *s, const scan_totals *t) {
    scan_cfg *cfg = s->cfg;
    FILE *f = s->out;
    tokmark_result r;
    scan_best(s, 1, &r);
    size_t nk = s->nreal;
    double thr = log10(cfg->alpha);
    int corpus_found = r.scored > 0 && r.log10_p_corrected <= thr;
    if (corpus_found) s->found = 1;
    if (cfg->no_output) return;
    const char *verdict = r.scored == 0 ? "no_tuples" : corpus_found ? "watermarked" : "not_detected";
    if (cfg->table) {
        fprintf(f, "\ncorpus: %llu documents, %llu skipped, %llu tokens, %llu tuples scored (%llu duplicates",
                (unsigned long long)t->documents, (unsigned long long)t->skipped, (unsigned long long)r.tokens,
                (unsigned long long)r.scored, (unsigned long long)r.duplicates);
        if (cfg->mode == SCAN_MODE_CLOSED || s->have_filter)
            fprintf(f, ", %llu excluded", (unsigned long long)t->excluded);
        fprintf(f, ")\n        z %.2f, log10 p %.3f (corrected for %zu key%s): %s\n", r.z, r.log10_p_corrected, nk,
                nk == 1 ? "" : "s", verdict);
        fprintf(f, "        key %s", r.key_id);
        size_t alen;
        const char *acc = scan_account(s, r.key_index, &alen);
        if (acc != NULL) fprintf(f, " (account %.*s)", (int)alen, acc);
        fprintf(f, "\n        documents watermarked: %llu; with a watermarked span: %llu\n",
                (unsigned long long)t->docs_watermarked, (unsigned long long)t->docs_span);
        for (int k = 0; k < TMI_ERR_COUNT; k++)
            if (t->kinds[k]) fprintf(f, "        skipped %s: %llu\n", tmi_error_name(k), (unsigned long long)t->kinds[k]);
        return;
    }
    fprintf(f, "{\"summary\":true,\"mode\":\"%s\",\"documents\":%llu,\"bytes\":%llu,\"skipped\":%llu,\"skipped_by\":{",
            scan_mode_name(cfg->mode), (unsigned long long)t->documents, (unsigned long long)t->bytes,
            (unsigned long long)t->skipped);
    int first = 1;
    for (int k = 0; k < TMI_ERR_COUNT; k++)
        if (t->kinds[k]) {
            fprintf(f, "%s\"%s\":%llu", first ? "" : ",", tmi_error_name(k), (unsigned long long)t->kinds[k]);
            first = 0;
        }
    fprintf(f, "},\"keys\":%zu,", nk);
    scan_print_result_fields(s, &r);
    fprintf(f, ",\"alpha\":%g,\"verdict\":\"%s\",\"documents_watermarked\":%llu,\"documents_with_span\":%llu",
            cfg->alpha, verdict, (unsigned long long)t->docs_watermarked, (unsigned long long)t->docs_span);
    if (cfg->mode == SCAN_MODE_CLOSED || s->have_filter) fprintf(f, ",\"excluded\":%llu", (unsigned long long)t->excluded);
    if (cfg->mode == SCAN_MODE_READING) fprintf(f, ",\"positions\":%llu", (unsigned long long)t->positions);
    if (cfg->accounts != NULL) {
        /* every account whose corrected p reaches alpha, best first */
        fputs(",\"accounts_matched\":[", f);
        size_t *idx = malloc(nk * sizeof *idx);
        double *lp = malloc(nk * sizeof *lp);
        size_t m = 0;
        for (size_t k = 0; idx && lp && k < nk; k++) {
            tokmark_result rk;
            tokmark_detector_corpus(s->det, k, &rk);
            if (rk.scored > 0 && rk.log10_p_corrected <= thr) {
                idx[m] = k;
                lp[m++] = rk.log10_p_corrected;
            }
        }
        for (size_t a = 1; a < m; a++) /* insertion sort: few matches */
            for (size_t b2 = a; b2 > 0 && lp[b2] < lp[b2 - 1]; b2--) {
                double tl = lp[b2]; lp[b2] = lp[b2 - 1]; lp[b2 - 1] = tl;
                size_t ti = idx[b2]; idx[b2] = idx[b2 - 1]; idx[b2 - 1] = ti;
            }
        for (size_t a = 0; a < m; a++) {
            tokmark_result rk;
            tokmark_detector_corpus(s->det, idx[a], &rk);
            fputs(a ? ",{" : "{", f);
            size_t alen;
            const char *acc = scan_account(s, idx[a], &alen);
            fputs("\"account\":", f);
            if (acc) scan_json_str(f, acc, alen);
            else fputs("null", f);
            fprintf(f, ",\"key_id\":\"%s\",\"scored\":%llu,\"log10_p\":", rk.key_id, (unsigned long long)rk.scored);
            scan_json_num(f, rk.log10_p);
            fputs(",\"log10_p_corrected\":", f);
            scan_json_num(f, rk.log10_p_corrected);
            fputc('}', f);
        }
        fputc(']', f);
        free(idx);
        free(lp);
    }
    fputs("}\n", f);
}

/* ------------------------------------------------------------------------ */
/* Setup shared by scan and merge                                            */
/* ------------------------------------------------------------------------ */

static int scan_load_keys(scan_state *s) {
    scan_cfg *cfg = s->cfg;
    if (tokmark_keyring_new(&s->ring) != TOKMARK_OK) return SCAN_EXIT_INTERNAL;
    for (size_t i = 0; i < cfg->nprofiles; i++) {
        size_t line = 0;
        int rc = tokmark_keyring_load(s->ring, cfg->profiles[i], 0, &line);
        if (rc == TOKMARK_ERR_UNSUPPORTED) {
            /* a compatibility profile (SPEC §10): alone, documents mode only */
            rc = tokmark_compat_load(&s->compat, cfg->profiles[i], 0, &line);
            if (rc == TOKMARK_OK && (cfg->nprofiles > 1 || cfg->accounts || cfg->mode != SCAN_MODE_DOCS ||
                                     cfg->filter || cfg->partial || cfg->control_keys)) {
                cli_error("%s: a compatibility profile is scanned alone, in documents mode (no --accounts, "
                          "--filter, --partial, other modes or other profiles)", cfg->profiles[i]);
                return SCAN_EXIT_USAGE;
            }
            if (rc == TOKMARK_OK) {
                rc = tokmark_compat_detector_create(&s->cdet, s->compat, cfg->dedup_memory / 40);
                if (rc != TOKMARK_OK) {
                    cli_error("cannot create the detector: %s", tokmark_error_message(rc));
                    return rc == TOKMARK_ERR_NOMEM ? SCAN_EXIT_INTERNAL : SCAN_EXIT_USAGE;
                }
                s->nreal = 1;
                return 0;
            }
        }
        if (rc != TOKMARK_OK) {
            int e = errno;
            cli_file_error(cfg->profiles[i], rc, line, e,
                           rc == TOKMARK_ERR_PERMISSIONS ? "chmod 600 it" : NULL);
            return rc == TOKMARK_ERR_NOMEM ? SCAN_EXIT_INTERNAL : SCAN_EXIT_FILE;
        }
    }
    if (cfg->accounts != NULL) {
        /* attribution: the ring becomes the accounts' keys, derived from each master */
        tokmark_keyring *acc = NULL;
        if (tokmark_keyring_new(&acc) != TOKMARK_OK) return SCAN_EXIT_INTERNAL;
        FILE *f = fopen(cfg->accounts, "rb");
        if (f == NULL) {
            int e = errno;
            tokmark_keyring_free(acc);
            return cli_file_error(cfg->accounts, TOKMARK_ERR_IO, 0, e, NULL), SCAN_EXIT_FILE;
        }
        char *line = NULL;
        size_t lcap = 0, lineno = 0;
        ssize_t len;
        int rc = 0;
        while ((len = getline(&line, &lcap, f)) >= 0 && rc == 0) {
            lineno++;
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
            if (len == 0) continue;
            for (size_t m = 0; m < tokmark_keyring_size(s->ring) && rc == 0; m++) {
                tokmark_profile *p = NULL;
                int e = tokmark_profile_derive_account(&p, tokmark_keyring_get(s->ring, m), line, (size_t)len);
                if (e != TOKMARK_OK) {
                    fprintf(stderr, "tokmark scan: %s:%zu: cannot derive this account's key (%s)\n", cfg->accounts,
                            lineno, tokmark_error_message(e));
                    rc = e == TOKMARK_ERR_NOMEM ? SCAN_EXIT_INTERNAL : SCAN_EXIT_FILE;
                } else if (tokmark_keyring_add(acc, p) != TOKMARK_OK)
                    rc = SCAN_EXIT_INTERNAL;
            }
        }
        free(line);
        fclose(f);
        if (rc == 0 && tokmark_keyring_size(acc) == 0) {
            fprintf(stderr, "tokmark scan: %s: no account ids\n", cfg->accounts);
            rc = SCAN_EXIT_FILE;
        }
        if (rc != 0) {
            tokmark_keyring_free(acc);
            return rc;
        }
        tokmark_keyring_free(s->ring);
        s->ring = acc;
    }
    s->nreal = tokmark_keyring_size(s->ring);
    for (uint32_t i = 0; i < cfg->control_keys; i++) {
        /* control key i (SPEC §12.7): public, deterministic, never used to watermark */
        uint8_t key[TOKMARK_MASTER_KEY_BYTES], msg[24] = "tokmark control key";
        for (int b = 0; b < 4; b++) msg[20 + b] = (uint8_t)(i >> (8 * b));
        crypto_generichash(key, sizeof key, msg, sizeof msg, NULL, 0);
        tokmark_profile *p = NULL;
        const tokmark_params *pp = tokmark_profile_params(tokmark_keyring_get(s->ring, i % s->nreal));
        if (tokmark_profile_from_key(&p, pp, key) != TOKMARK_OK || tokmark_keyring_add(s->ring, p) != TOKMARK_OK)
            return SCAN_EXIT_INTERNAL;
    }
    size_t nk = tokmark_keyring_size(s->ring);
    for (size_t k = 0; k < nk; k++) {
        const tokmark_params *pp = tokmark_profile_params(tokmark_keyring_get(s->ring, k));
        uint32_t c = pp->seeding == TOKMARK_SEEDING_SELFHASH ? pp->context_width - 1 : pp->context_width;
        uint32_t w = 0;
        while (w < s->nwidths && s->widths[w] != c) w++;
        if (w == s->nwidths) s->widths[s->nwidths++] = c;
    }
    tokmark_detector_config dc = {cfg->dedup_memory, 0, cfg->partial != NULL ? TOKMARK_DETECT_RECORD : 0};
    int rc = tokmark_detector_create(&s->det, s->ring, &dc);
    if (rc != TOKMARK_OK) {
        cli_error("cannot create the detector: %s", tokmark_error_message(rc));
        return rc == TOKMARK_ERR_NOMEM ? SCAN_EXIT_INTERNAL : SCAN_EXIT_USAGE;
    }
    tokmark_detector_set_score(s->det, cfg->score);
    return 0;
}

static void scan_state_free(scan_state *s) {
    tokmark_compat_detector_free(s->cdet);
    tokmark_compat_free(s->compat);
    tokmark_detector_free(s->det);
    tokmark_keyring_free(s->ring);
    tokmark_tokenizer_free(s->tok);
    if (s->have_filter) tms_filter_free(&s->filter);
    for (uint32_t c = 0; c <= TOKMARK_MAX_CONTEXT; c++) tms_set_free(&s->promptset[c]);
    for (size_t k = 0; k < s->ntrace_keys && s->trace; k++) free(s->trace[k]);
    free(s->trace);
    free(s->doc);
    free(s->docflag);
}

/* ------------------------------------------------------------------------ */
/* Partial files: a JSON header line, then the detector's partial (SPEC §12.6) */
/* ------------------------------------------------------------------------ */

static int scan_write_partial(scan_state *s, const char *path) {
    uint8_t *blob = NULL;
    size_t blen = 0;
    int rc = tokmark_detector_export(s->det, &blob, &blen);
    if (rc != TOKMARK_OK) {
        cli_error("cannot write the partial result: %s", tokmark_error_message(rc));
        return SCAN_EXIT_INTERNAL;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (tmp == NULL) {
        free(blob);
        return SCAN_EXIT_INTERNAL;
    }
    snprintf(tmp, plen + 32, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f != NULL;
    if (ok) {
        const scan_totals *t = &s->tot;
        fprintf(f, "{\"tokmark_partial\":1,\"mode\":\"%s\",\"documents\":%llu,\"bytes\":%llu,\"skipped\":%llu,"
                   "\"excluded\":%llu,\"positions\":%llu,\"documents_watermarked\":%llu,\"documents_with_span\":%llu,"
                   "\"skipped_by\":[",
                scan_mode_name(s->cfg->mode), (unsigned long long)t->documents, (unsigned long long)t->bytes,
                (unsigned long long)t->skipped, (unsigned long long)t->excluded, (unsigned long long)t->positions,
                (unsigned long long)t->docs_watermarked, (unsigned long long)t->docs_span);
        for (int k = 0; k < TMI_ERR_COUNT; k++) fprintf(f, "%s%llu", k ? "," : "", (unsigned long long)t->kinds[k]);
        fprintf(f, "],\"blob_bytes\":%zu}\n", blen);
        ok = fwrite(blob, 1, blen, f) == blen;
        ok = (fclose(f) == 0) && ok;
        if (ok) ok = rename(tmp, path) == 0;
    }
    int e = errno;
    if (!ok) unlink(tmp);
    free(tmp);
    free(blob);
    if (!ok) return cli_file_error(path, TOKMARK_ERR_IO, 0, e, NULL), SCAN_EXIT_FILE;
    return 0;
}

static int scan_read_partial(scan_state *s, const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return cli_file_error(path, TOKMARK_ERR_IO, 0, errno, NULL), SCAN_EXIT_FILE;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    json_error_t je;
    json_t *h = n > 0 ? json_loadb(line, (size_t)n, 0, &je) : NULL;
    free(line);
    int rc = 0;
    json_int_t blen = h ? json_integer_value(json_object_get(h, "blob_bytes")) : 0;
    if (h == NULL || json_integer_value(json_object_get(h, "tokmark_partial")) != 1 || blen <= 0) {
        fprintf(stderr, "tokmark merge: %s:1: not a tokmark partial result\n", path);
        rc = SCAN_EXIT_FILE;
    }
    const char *mode = h ? json_string_value(json_object_get(h, "mode")) : NULL;
    if (rc == 0 && (mode == NULL || strcmp(mode, scan_mode_name(s->cfg->mode)) != 0)) {
        fprintf(stderr, "tokmark merge: %s: made in mode '%s', merging mode '%s' (use --mode)\n", path,
                mode ? mode : "?", scan_mode_name(s->cfg->mode));
        rc = SCAN_EXIT_USAGE;
    }
    uint8_t *blob = rc == 0 ? malloc((size_t)blen + 1) : NULL;
    if (rc == 0 && blob == NULL) rc = SCAN_EXIT_INTERNAL;
    if (rc == 0 && (fread(blob, 1, (size_t)blen + 1, f) != (size_t)blen)) {
        fprintf(stderr, "tokmark merge: %s: truncated or has trailing bytes\n", path);
        rc = SCAN_EXIT_FILE;
    }
    if (rc == 0) {
        int e = tokmark_detector_import(s->det, blob, (size_t)blen);
        if (e != TOKMARK_OK) {
            fprintf(stderr, "tokmark merge: %s: %s%s\n", path, tokmark_error_message(e),
                    e == TOKMARK_ERR_MISMATCH ? " (give the same --profile/--accounts as the scan)" : "");
            rc = e == TOKMARK_ERR_NOMEM ? SCAN_EXIT_INTERNAL : SCAN_EXIT_FILE;
        }
    }
    if (rc == 0) {
        scan_totals *t = &s->tot;
        t->documents += (uint64_t)json_integer_value(json_object_get(h, "documents"));
        t->bytes += (uint64_t)json_integer_value(json_object_get(h, "bytes"));
        t->skipped += (uint64_t)json_integer_value(json_object_get(h, "skipped"));
        t->excluded += (uint64_t)json_integer_value(json_object_get(h, "excluded"));
        t->positions += (uint64_t)json_integer_value(json_object_get(h, "positions"));
        t->docs_watermarked += (uint64_t)json_integer_value(json_object_get(h, "documents_watermarked"));
        t->docs_span += (uint64_t)json_integer_value(json_object_get(h, "documents_with_span"));
        json_t *sb = json_object_get(h, "skipped_by");
        for (int k = 0; k < TMI_ERR_COUNT; k++) t->kinds[k] += (uint64_t)json_integer_value(json_array_get(sb, (size_t)k));
    }
    free(blob);
    json_decref(h);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */
/* ------------------------------------------------------------------------ */

enum {
    SC_HELP = 1, SC_PROFILE, SC_ACCOUNTS, SC_INFMT, SC_SPLIT, SC_FIELD, SC_PROMPT, SC_MESSAGES, SC_ROLE, SC_IDS,
    SC_MAXREC, SC_TOKENIZER, SC_SPECIAL, SC_MODE, SC_PRED, SC_FILTER, SC_ALPHA, SC_SCORE, SC_NOWIN, SC_DEDUP,
    SC_FORMAT, SC_PARTIAL, SC_JOBS, SC_STRICT, SC_EXIT, SC_QUIET
};

static const cli_opt scan_opts[] = {
    {"help", 'h', 0, SC_HELP},           {"profile", 0, 1, SC_PROFILE},      {"accounts", 0, 1, SC_ACCOUNTS},
    {"input-format", 0, 1, SC_INFMT},    {"split", 0, 1, SC_SPLIT},          {"field", 0, 1, SC_FIELD},
    {"prompt-field", 0, 1, SC_PROMPT},   {"messages-field", 0, 1, SC_MESSAGES}, {"role", 0, 1, SC_ROLE},
    {"ids-field", 0, 1, SC_IDS},         {"max-record", 0, 1, SC_MAXREC},    {"tokenizer", 0, 1, SC_TOKENIZER},
    {"allow-special", 0, 0, SC_SPECIAL}, {"mode", 0, 1, SC_MODE},            {"pred-field", 0, 1, SC_PRED},
    {"filter", 0, 1, SC_FILTER},         {"alpha", 0, 1, SC_ALPHA},          {"score", 0, 1, SC_SCORE},
    {"no-windows", 0, 0, SC_NOWIN},      {"dedup-memory", 0, 1, SC_DEDUP},   {"format", 0, 1, SC_FORMAT},
    {"partial", 0, 1, SC_PARTIAL},       {"jobs", 'j', 1, SC_JOBS},          {"strict", 0, 0, SC_STRICT},
    {"exit-status", 0, 0, SC_EXIT},      {"quiet", 'q', 0, SC_QUIET},        {NULL, 0, 0, 0}};

/* Parse the options; positional arguments go to inputs.  Returns -1 to go
 * on, or an exit code. */
static int scan_parse_args(int argc, char **argv, scan_cfg *cfg, const char **inputs, size_t *ninputs,
                           size_t max_inputs, const char *help) {
    memset(cfg, 0, sizeof *cfg);
    tmi_options_default(&cfg->in);
    cfg->windows = 1;
    cfg->alpha = 1e-6;
    cfg->jobs = 1;
    cfg->dedup_memory = (uint64_t)256 << 20;
    const char *pred = NULL;
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *val;
    int id;
    *ninputs = 0;
    while ((id = cli_next(&a, scan_opts, &val)) != CLI_END) {
        uint32_t u32;
        uint64_t sz;
        switch (id) {
        case CLI_ERR: return SCAN_EXIT_USAGE;
        case CLI_POS:
            if (*ninputs == max_inputs) return cli_usage_error("too many inputs (at most %zu)", max_inputs);
            inputs[(*ninputs)++] = val;
            break;
        case SC_HELP: fputs(help, stdout); return 0;
        case SC_PROFILE:
            if (cfg->nprofiles == 64) return cli_usage_error("at most 64 --profile");
            cfg->profiles[cfg->nprofiles++] = val;
            break;
        case SC_ACCOUNTS: cfg->accounts = val; break;
        case SC_INFMT:
            if (strcmp(val, "auto") == 0) cfg->in.format = TMI_FORMAT_AUTO;
            else if (strcmp(val, "text") == 0) cfg->in.format = TMI_FORMAT_TEXT;
            else if (strcmp(val, "jsonl") == 0) cfg->in.format = TMI_FORMAT_JSONL;
            else return cli_usage_error("--input-format: '%s' is not auto, text or jsonl", val);
            break;
        case SC_SPLIT:
            if (strcmp(val, "doc") == 0) cfg->in.split = TMI_SPLIT_DOC;
            else if (strcmp(val, "lines") == 0) cfg->in.split = TMI_SPLIT_LINES;
            else if (strcmp(val, "paragraphs") == 0) cfg->in.split = TMI_SPLIT_PARAGRAPHS;
            else return cli_usage_error("--split: '%s' is not doc, lines or paragraphs", val);
            break;
        case SC_FIELD: cfg->in.field = val; break;
        case SC_PROMPT: cfg->in.prompt_field = val; break;
        case SC_MESSAGES: cfg->in.messages_field = val; break;
        case SC_ROLE:
            if (cfg->nroles == 16) return cli_usage_error("at most 16 --role");
            cfg->roles[cfg->nroles++] = val;
            break;
        case SC_IDS: cfg->in.ids_field = val; break;
        case SC_MAXREC:
            if (!scan_parse_size("--max-record", val, &sz)) return SCAN_EXIT_USAGE;
            if (sz == 0) return cli_usage_error("--max-record must be positive");
            cfg->in.max_record = (size_t)sz;
            break;
        case SC_TOKENIZER: cfg->tokenizer = val; break;
        case SC_SPECIAL: cfg->allow_special = 1; break;
        case SC_MODE:
            if (strcmp(val, "documents") == 0) cfg->mode = SCAN_MODE_DOCS;
            else if (strcmp(val, "closed") == 0) cfg->mode = SCAN_MODE_CLOSED;
            else if (strcmp(val, "reading") == 0) cfg->mode = SCAN_MODE_READING;
            else return cli_usage_error("--mode: '%s' is not documents, closed or reading", val);
            break;
        case SC_PRED: pred = val; break;
        case SC_FILTER: cfg->filter = val; break;
        case SC_ALPHA:
            if (!cli_parse_double("--alpha", val, &cfg->alpha)) return SCAN_EXIT_USAGE;
            if (!(cfg->alpha > 0 && cfg->alpha < 1)) return cli_usage_error("--alpha must be in (0, 1)");
            break;
        case SC_SCORE:
            if (strcmp(val, "default") == 0) cfg->score = TOKMARK_SCORE_DEFAULT;
            else if (strcmp(val, "weighted") == 0) cfg->score = TOKMARK_SCORE_WEIGHTED;
            else return cli_usage_error("--score: '%s' is not default or weighted", val);
            break;
        case SC_NOWIN: cfg->windows = 0; break;
        case SC_DEDUP:
            if (!scan_parse_size("--dedup-memory", val, &cfg->dedup_memory)) return SCAN_EXIT_USAGE;
            if (cfg->dedup_memory < 4096) return cli_usage_error("--dedup-memory: at least 4K");
            break;
        case SC_FORMAT:
            if (strcmp(val, "json") == 0) cfg->table = 0;
            else if (strcmp(val, "table") == 0) cfg->table = 1;
            else return cli_usage_error("--format: '%s' is not json or table", val);
            break;
        case SC_PARTIAL: cfg->partial = val; break;
        case SC_JOBS:
            if (!cli_parse_u32("-j", val, 1, 256, &u32)) return SCAN_EXIT_USAGE;
            cfg->jobs = (int)u32;
            break;
        case SC_STRICT: cfg->strict = 1; break;
        case SC_EXIT: cfg->exit_status = 1; break;
        case SC_QUIET: cfg->quiet = 1; break;
        default: return cli_usage_error("internal error: option %d", id);
        }
    }
    if (cfg->nprofiles == 0) return cli_usage_error("missing --profile KEY");
    if (cfg->nroles > 0) {
        cfg->in.score_roles = cfg->roles;
        cfg->in.n_score_roles = cfg->nroles;
    }
    if (cfg->mode == SCAN_MODE_READING) cfg->in.pred_field = pred != NULL ? pred : "predictions";
    else if (pred != NULL) return cli_usage_error("--pred-field is for --mode reading");
    return -1;
}

static int scan_finish(scan_state *s, int rc) {
    if (rc == 0 && s->cfg->partial != NULL) rc = scan_write_partial(s, s->cfg->partial);
    if (rc == 0) {
        scan_summary(s, &s->tot);
        if (fflush(s->out) != 0 || ferror(s->out)) {
            cli_error("cannot write the results: %s", strerror(errno));
            rc = SCAN_EXIT_FILE;
        }
    }
    if (rc == 0 && s->stop) rc = SCAN_EXIT_BADINPUT;
    if (rc == 0 && s->cfg->exit_status && s->found) rc = SCAN_EXIT_FOUND;
    return rc;
}

/* Keys, tokenizer, filter and scratch for a scan (after scan_parse_args).
 * Returns 0 or an exit code (the message printed). */
static int scan_setup(scan_state *s, scan_cfg *cfg) {
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->out = stdout;
    s->err = stderr;
    int rc = scan_load_keys(s);
    if (rc != 0) return rc;
    /* the tokenizer: --tokenizer, else the first profile's ("none": ids only) */
    if (s->compat != NULL && cfg->tokenizer == NULL) {
        cli_error("a compatibility profile names no tokenizer: give --tokenizer NAME|PATH (the model's, e.g. "
                  "data/tokenizers/llama3.tokenizer.json) or --tokenizer none for pre-tokenized ids");
        return SCAN_EXIT_USAGE;
    }
    const char *tname = cfg->tokenizer ? cfg->tokenizer
                                       : tokmark_profile_params(tokmark_keyring_get(s->ring, 0))->tokenizer;
    if (strcmp(tname, "none") != 0) {
        size_t line = 0;
        int e = tokmark_tokenizer_load(&s->tok, tname, &line);
        if (e != TOKMARK_OK) {
            int en = errno;
            cli_file_error(tname, e, line, en,
                           strchr(tname, '/') == NULL ? "run scripts/fetch-tokenizers.sh, or --tokenizer PATH" : NULL);
            return e == TOKMARK_ERR_NOMEM ? SCAN_EXIT_INTERNAL : SCAN_EXIT_FILE;
        }
        uint32_t tv = tokmark_tokenizer_vocab_size(s->tok);
        for (size_t k = 0; s->compat == NULL && k < s->nreal && !cfg->quiet; k++) {
            const tokmark_params *pp = tokmark_profile_params(tokmark_keyring_get(s->ring, k));
            if (pp->vocab_size != tv) {
                fprintf(stderr, "tokmark scan: warning: key %s has V = %u, tokenizer %s has %u tokens\n",
                        tokmark_profile_key_id(tokmark_keyring_get(s->ring, k)), pp->vocab_size, tname, tv);
                break;
            }
        }
    }
    if (cfg->filter != NULL) {
        int e = tms_filter_load(&s->filter, cfg->filter);
        if (e != TOKMARK_OK) {
            cli_file_error(cfg->filter, e, 0, errno, NULL);
            return e == TOKMARK_ERR_NOMEM ? SCAN_EXIT_INTERNAL : SCAN_EXIT_FILE;
        }
        s->have_filter = 1;
        for (uint32_t w = 0; w < s->nwidths; w++) {
            int ok = 0;
            for (uint32_t q = 0; q < s->filter.nwidths; q++) ok |= s->filter.width[q] == s->widths[w];
            if (!ok) {
                cli_error("%s: the filter has no contexts of length %u, which the keys use (rebuild it with "
                          "tokmark filter build --profile ...)", cfg->filter, s->widths[w]);
                return SCAN_EXIT_USAGE;
            }
        }
    }
    if (cfg->mode == SCAN_MODE_CLOSED)
        for (uint32_t w = 0; w < s->nwidths; w++)
            if (tms_set_init(&s->promptset[s->widths[w]], 1024) != 0) return SCAN_EXIT_INTERNAL;
    /* windows for the real keys, up to 64 of them (attribution rings: off) */
    if (cfg->windows && s->compat == NULL && s->nreal <= 64 && cfg->mode != SCAN_MODE_READING) {
        s->ntrace_keys = s->nreal;
        s->trace = calloc(s->nreal, sizeof *s->trace);
        if (s->trace == NULL) return SCAN_EXIT_INTERNAL;
    }
    return 0;
}

/* Size the corpus sets once for the whole input, SCAN_RESERVE_AT bytes into
 * it, instead of letting them double as they fill (each doubling rehashes,
 * and on a virtual machine every first-touched page is costly).  Distinct
 * tuples grow sublinearly with the text (as vocabulary does, Heaps' law
 * d = a·n^β): β is measured between half-way and SCAN_RESERVE_AT and the
 * count extrapolated to the input's size, so that repetitive text does not
 * get the many-times oversized table a fixed tokens-per-byte guess would
 * give (and whose every page would be touched).  An estimate that falls
 * short costs one doubling; a failure only means the sets grow as usual. */
#define SCAN_RESERVE_AT ((uint64_t)4 << 20)
static uint64_t scan_distinct(const scan_state *s) {
    uint64_t distinct = 0;
    for (size_t k = 0; k < tokmark_keyring_size(s->ring); k++) {
        tokmark_result cr;
        tokmark_detector_corpus(s->det, k, &cr);
        if (cr.scored + cr.dropped > distinct) distinct = cr.scored + cr.dropped;
    }
    return distinct;
}

static void scan_reserve(scan_state *s, tmi_reader *r) {
    uint64_t total = tmi_reader_bytes_total(r);
    if (s->reserved || s->det == NULL || total <= SCAN_RESERVE_AT) return;
    if (s->res_bytes == 0) { /* the first point, half-way */
        if (s->tot.bytes < SCAN_RESERVE_AT / 2) return;
        s->res_bytes = s->tot.bytes;
        s->res_distinct = scan_distinct(s);
        return;
    }
    if (s->tot.bytes < SCAN_RESERVE_AT || s->tot.bytes >= total) return;
    s->reserved = 1;
    uint64_t d = scan_distinct(s);
    if (d == 0 || s->res_distinct == 0 || d <= s->res_distinct) return;
    double beta = log((double)d / (double)s->res_distinct) / log((double)s->tot.bytes / (double)s->res_bytes);
    beta = beta < 0.5 ? 0.5 : beta > 1.0 ? 1.0 : beta;
    double est = (double)d * pow((double)total / (double)s->tot.bytes, beta);
    (void)!tokmark_detector_reserve(s->det, (uint64_t)est);
}

/* Read, tokenize and score every input (SPEC §12.1).  Returns 0 or
 * SCAN_EXIT_INTERNAL (message printed). */
static int scan_execute(scan_state *s, const char *const *inputs, size_t ninputs) {
    scan_cfg *cfg = s->cfg;
    int rc = 0;
    tmi_reader *r = NULL;
    if (tmi_reader_open(&r, inputs, ninputs, &cfg->in) != 0) {
        cli_error("out of memory");
        return SCAN_EXIT_INTERNAL;
    }
    double t0 = scan_now(), last = 0;
    if (cfg->jobs <= 1) {
        scan_batch b;
        memset(&b, 0, sizeof b);
        scan_worker_ctx w = {NULL, NULL, NULL};
        if (tmi_parser_create(&w.parser, &cfg->in) != 0 ||
            (s->tok != NULL && tokmark_tokenizer_encoder_create(&w.enc, s->tok) != TOKMARK_OK))
            rc = SCAN_EXIT_INTERNAL;
        int more = 1;
        while (rc == 0 && more && !s->stop) {
            more = scan_fill(r, &b, SCAN_BATCH_BYTES);
            if (more < 0) { rc = SCAN_EXIT_INTERNAL; break; }
            scan_work_batch(s, &w, &b);
            if (scan_detect_batch(s, &b) != 0) rc = SCAN_EXIT_INTERNAL;
            scan_reserve(s, r);
            scan_progress(s, r, t0, &last, 0);
        }
        tmi_parser_free(w.parser);
        tokmark_tokenizer_encoder_free(w.enc);
        scan_batch_free(&b);
    } else {
        /* workers detect too, unless the scan must stop at the first bad
         * input (--strict), reports each document to a hook, or has many
         * keys (each document-new tuple waits in memory with a score per
         * key until the main thread absorbs it) */
        s->pdetect = s->det != NULL && s->compat == NULL && s->hook == NULL && !cfg->strict &&
                     cfg->dedup_memory > 0 && tokmark_keyring_size(s->ring) <= 8;
        s->nthreads = cfg->jobs;
        s->nbatches = (size_t)cfg->jobs * 2 + 2;
        s->batches = calloc(s->nbatches, sizeof *s->batches);
        s->threads = calloc((size_t)cfg->jobs, sizeof *s->threads);
        if (s->batches == NULL || s->threads == NULL) rc = SCAN_EXIT_INTERNAL;
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->work, NULL);
        pthread_cond_init(&s->done, NULL);
        int started = 0;
        for (int t = 0; rc == 0 && t < cfg->jobs; t++)
            if (pthread_create(&s->threads[t], NULL, scan_thread, s) == 0) started++;
            else rc = SCAN_EXIT_INTERNAL;
        /* batches are filled in order into the slots and detected in the same
         * order.  Batches in flight either all share the corpus sets or all
         * defer (SPEC §7.6): a batch of the other kind waits (pend) until
         * they are drained. */
        size_t head = 0, tail = 0; /* sequence numbers: filled, detected */
        int more = 1, inflight_shared = 0;
        uint64_t inflight_bound = 0; /* bytes of the shared batches in flight: a bound on their new tuples */
        scan_batch *pend = NULL;     /* filled, not yet queued */
        while (rc == 0 && !s->stop && (more || pend != NULL || tail < head)) {
            if (pend == NULL && more && head - tail < s->nbatches) {
                pend = &s->batches[head % s->nbatches];
                more = scan_fill(r, pend, s->pdetect ? SCAN_PBATCH_BYTES : SCAN_BATCH_BYTES);
                if (more < 0) { rc = SCAN_EXIT_INTERNAL; break; }
            }
            /* decided afresh each time round: the room counts only absorbed
             * tuples, so with deferring batches in flight the answer holds
             * only once they are drained */
            if (pend != NULL) pend->shared = scan_can_share(s, pend, tail < head && inflight_shared, inflight_bound);
            if (pend != NULL && (tail == head || pend->shared == inflight_shared)) {
                inflight_shared = pend->shared;
                if (pend->shared) inflight_bound += pend->len;
                pthread_mutex_lock(&s->mu);
                pend->state = 1;
                pend->seq = head;
                pthread_cond_signal(&s->work);
                pthread_mutex_unlock(&s->mu);
                head++;
                pend = NULL;
                continue;
            }
            scan_batch *b = &s->batches[tail % s->nbatches];
            pthread_mutex_lock(&s->mu);
            while (b->state != 3) pthread_cond_wait(&s->done, &s->mu);
            pthread_mutex_unlock(&s->mu);
            if ((s->pdetect ? scan_drain_batch(s, b) : scan_detect_batch(s, b)) != 0) rc = SCAN_EXIT_INTERNAL;
            if (b->shared) inflight_bound -= b->len;
            pthread_mutex_lock(&s->mu); /* workers look for queued batches under the lock */
            b->state = 0;
            pthread_mutex_unlock(&s->mu);
            tail++;
            /* sizing moves the sets: never while a batch shares them */
            if (inflight_bound == 0 && !(tail < head && inflight_shared)) scan_reserve(s, r);
            scan_progress(s, r, t0, &last, 0);
        }
        pthread_mutex_lock(&s->mu);
        s->quit = 1;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->mu);
        for (int t = 0; t < started; t++) pthread_join(s->threads[t], NULL);
        for (size_t i = 0; s->batches && i < s->nbatches; i++) scan_batch_free(&s->batches[i]);
        free(s->batches);
        free(s->threads);
        s->batches = NULL;
        s->threads = NULL;
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->work);
        pthread_cond_destroy(&s->done);
    }
    scan_progress(s, r, t0, &last, 1);
    if (rc == SCAN_EXIT_INTERNAL) cli_error("out of memory");
    tmi_reader_close(r);
    return rc;
}

static int cmd_scan(int argc, char **argv) {
    cli_command = "tokmark scan";
    scan_cfg cfg;
    const char *inputs[4096];
    size_t ninputs = 0;
    int rc = scan_parse_args(argc, argv, &cfg, inputs, &ninputs, 4096, cmd_scan_help);
    if (rc >= 0) return rc;
    if (ninputs == 0) inputs[ninputs++] = "-";
    scan_state s;
    rc = scan_setup(&s, &cfg);
    if (rc == 0) rc = scan_execute(&s, inputs, ninputs);
    rc = scan_finish(&s, rc);
    scan_state_free(&s);
    return rc;
}

/* ---- tokmark merge ---- */

static const char cmd_merge_help[] =
    "usage: tokmark merge --profile KEY [--accounts FILE] [--mode M] [--alpha A]\n"
    "                     [--score S] [--format json|table] [--partial OUT] PARTIAL...\n"
    "\n"
    "Combine partial results written by `tokmark scan --partial` into exactly\n"
    "the summary one scan over all their input gives, dedup included (SPEC.md\n"
    "§7.5).  Give the keys (--profile, --accounts), --mode and --score the\n"
    "scans used.  The parts may be any split of the input into whole documents.\n"
    "--partial OUT writes the merged state again (merges can be merged).\n"
    "Exit status as for scan.\n";

static int cmd_merge(int argc, char **argv) {
    cli_command = "tokmark merge";
    scan_cfg cfg;
    const char *inputs[4096];
    size_t ninputs = 0;
    int rc = scan_parse_args(argc, argv, &cfg, inputs, &ninputs, 4096, cmd_merge_help);
    if (rc >= 0) return rc;
    if (ninputs == 0) return cli_usage_error("no PARTIAL files");
    scan_state s;
    memset(&s, 0, sizeof s);
    s.cfg = &cfg;
    s.out = stdout;
    rc = scan_load_keys(&s);
    if (rc == 0 && s.compat != NULL) {
        cli_error("compatibility profiles have no partial results to merge");
        rc = SCAN_EXIT_USAGE;
    }
    for (size_t i = 0; rc == 0 && i < ninputs; i++) rc = scan_read_partial(&s, inputs[i]);
    if (rc == 0) rc = scan_finish(&s, rc);
    scan_state_free(&s);
    return rc;
}

/* ---- tokmark filter build ---- */

static const char cmd_filter_help[] =
    "usage: tokmark filter build --profile KEY [--tokenizer NAME|PATH] [input options]\n"
    "                            -o FILTER [INPUT...]\n"
    "\n"
    "Build a context filter from the provider's own watermarked outputs (text,\n"
    "JSON Lines, chat logs; input options as for scan): the set of contexts, of\n"
    "every length the keys use, that occur in the scored segments.  `tokmark scan\n"
    "--mode closed --filter FILTER` then scores only tuples whose contexts the\n"
    "provider actually produced (SPEC.md §12.4).  The filter holds fingerprints\n"
    "of token contexts, not text, and no key.\n";

static int cmd_filter(int argc, char **argv) {
    cli_command = "tokmark filter";
    if (argc < 2 || strcmp(argv[1], "build") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            fputs(cmd_filter_help, stdout);
            return 0;
        }
        return cli_usage_error("usage: tokmark filter build ... (see --help)");
    }
    /* take -o FILE out, then parse the rest as scan options */
    const char *outp = NULL;
    char **av = malloc((size_t)argc * sizeof *av);
    if (av == NULL) return SCAN_EXIT_INTERNAL;
    int ac = 0;
    av[ac++] = argv[1];
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc) outp = argv[++i];
        else av[ac++] = argv[i];
    }
    scan_cfg cfg;
    const char *inputs[4096];
    size_t ninputs = 0;
    int rc = scan_parse_args(ac, av, &cfg, inputs, &ninputs, 4096, cmd_filter_help);
    free(av);
    if (rc >= 0) return rc;
    if (outp == NULL) return cli_usage_error("missing -o FILTER");
    if (ninputs == 0) inputs[ninputs++] = "-";
    scan_state s;
    memset(&s, 0, sizeof s);
    s.cfg = &cfg;
    cfg.partial = NULL;
    rc = scan_load_keys(&s);
    if (rc == 0 && s.compat != NULL) {
        cli_error("filters are for tokmark profiles, not compatibility profiles");
        rc = SCAN_EXIT_USAGE;
    }
    const char *tname = cfg.tokenizer ? cfg.tokenizer
                        : s.ring      ? tokmark_profile_params(tokmark_keyring_get(s.ring, 0))->tokenizer
                                      : "cl100k_base";
    if (rc == 0 && strcmp(tname, "none") != 0) {
        size_t line = 0;
        int e = tokmark_tokenizer_load(&s.tok, tname, &line);
        if (e != TOKMARK_OK) {
            cli_file_error(tname, e, line, errno, NULL);
            rc = SCAN_EXIT_FILE;
        }
    }
    tms_filter flt;
    tms_filter_init(&flt);
    snprintf(flt.tokenizer, sizeof flt.tokenizer, "%s", tname);
    for (uint32_t w = 0; rc == 0 && w < s.nwidths; w++)
        if (tms_filter_add_width(&flt, s.widths[w]) < 0) rc = SCAN_EXIT_INTERNAL;
    tmi_reader *r = NULL;
    if (rc == 0 && tmi_reader_open(&r, inputs, ninputs, &cfg.in) != 0) rc = SCAN_EXIT_INTERNAL;
    scan_batch b;
    memset(&b, 0, sizeof b);
    scan_worker_ctx w = {NULL, NULL, NULL};
    if (rc == 0 && (tmi_parser_create(&w.parser, &cfg.in) != 0 ||
                    (s.tok != NULL && tokmark_tokenizer_encoder_create(&w.enc, s.tok) != TOKMARK_OK)))
        rc = SCAN_EXIT_INTERNAL;
    uint64_t records = 0, skipped = 0;
    int more = 1;
    while (rc == 0 && more) {
        more = scan_fill(r, &b, SCAN_BATCH_BYTES);
        if (more < 0) { rc = SCAN_EXIT_INTERNAL; break; }
        scan_work_batch(&s, &w, &b);
        if (b.failed) { rc = SCAN_EXIT_INTERNAL; break; }
        for (size_t i = 0; i < b.nitems && rc == 0; i++) {
            scan_item *it = &b.items[i];
            if (it->kind == 1) {
                skipped++;
                if (!cfg.quiet) fprintf(stderr, "tokmark filter: %s:%llu: %s\n", it->err.source,
                                        (unsigned long long)it->err.line, it->err.message);
                if (cfg.strict) rc = SCAN_EXIT_BADINPUT;
                continue;
            }
            records++;
            size_t off = it->tok_off;
            for (size_t k = 0; k < it->nseg; k++) {
                const scan_seg *sg = &b.seg[it->seg_off + k];
                if (sg->score && tms_filter_add_tokens(&flt, b.tok + off, sg->ntok) != TOKMARK_OK)
                    rc = SCAN_EXIT_INTERNAL;
                off += sg->ntok;
            }
        }
    }
    tmi_parser_free(w.parser);
    tokmark_tokenizer_encoder_free(w.enc);
    scan_batch_free(&b);
    if (r) tmi_reader_close(r);
    if (rc == 0) {
        int e = tms_filter_save(&flt, outp);
        if (e != TOKMARK_OK) {
            cli_file_error(outp, e, 0, errno, NULL);
            rc = SCAN_EXIT_FILE;
        }
    }
    if (rc == 0 && !cfg.quiet) {
        fprintf(stderr, "tokmark filter: %llu records (%llu skipped) ->", (unsigned long long)records,
                (unsigned long long)skipped);
        for (uint32_t q = 0; q < flt.nwidths; q++)
            fprintf(stderr, " %zu contexts of length %u;", flt.set[q].count, flt.width[q]);
        fprintf(stderr, " written to %s\n", outp);
    }
    tms_filter_free(&flt);
    scan_state_free(&s);
    return rc;
}

#endif
