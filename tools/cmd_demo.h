/* cmd_demo.h — `tokmark demo`: the main job end to end on built-in defaults,
 * with nothing but the repository and the installed packages.
 *
 *   1. the corpus (data/corpus, made by scripts/build-corpus.sh when missing);
 *   2. a small reference language model (SPEC.md §11: order 3, the Bible and
 *      the fortunes of the training split), trained once and cached;
 *   3. a fresh demo key file (mode 0600);
 *   4. answers to held-out prompts generated through the embedder and without
 *      it, held-out human text, and human text with a watermarked passage
 *      inside, written as one JSON Lines sample corpus;
 *   5. `tokmark scan` on that corpus (the scan code itself, tools/cmd_scan.h),
 *      printed next to what each record really is;
 *   6. the signed audit report of the same scan (`tokmark report`,
 *      tools/cmd_report.h) with 200 control keys.
 *
 * Everything lands in a cache directory (default: demo/ next to the tokmark
 * binary, i.e. build/demo), so a second run reuses the model. */
#ifndef TOKMARK_CMD_DEMO_H
#define TOKMARK_CMD_DEMO_H

#include "cli.h"
#include "cmd_generate.h" /* gen_banned, gen_utf8_clean; cmd_lm.h's corpus helpers */
#include "cmd_report.h"   /* cmd_report: the signed audit report */
#include "cmd_scan.h"     /* scan_parse_args, scan_setup, scan_execute, scan_finish */
#include "lm.h"
#include "report_util.h"

#include <dirent.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

static const char cmd_demo_help[] =
    "usage: tokmark demo [--corpus DIR] [--cache DIR] [--scheme kgw|gumbel|synthid]\n"
    "                    [--key FILE] [--tokens N] [--seed S] [--quick]\n"
    "\n"
    "The main job end to end, needing nothing but the repository:\n"
    "  1. the corpus DIR/train and DIR/heldout (default data/corpus; built with\n"
    "     scripts/build-corpus.sh when missing, about a minute);\n"
    "  2. a small reference language model (order 3 on the Bible and fortunes of\n"
    "     the training split), trained once and cached as CACHE/demo-o3.lm;\n"
    "  3. a fresh demo key, CACHE/demo.key (mode 0600);\n"
    "  4. a sample corpus CACHE/sample.jsonl: answers to held-out prompts with\n"
    "     and without the watermark, held-out human text, and human text with a\n"
    "     watermarked passage inside;\n"
    "  5. tokmark scan on it: each record's verdict next to what it really is,\n"
    "     and the corpus-level test;\n"
    "  6. tokmark report on it: the signed audit report in CACHE/report/\n"
    "     (report.json, report.pdf, report.sig; signing key CACHE/demo-signing.key,\n"
    "     made once), with 200 control keys.\n"
    "\n"
    "  --corpus DIR  corpus directory (default data/corpus)\n"
    "  --cache DIR   where the model, key and sample go (default: demo/ next to\n"
    "                the tokmark binary)\n"
    "  --scheme S    the demo key's scheme (default kgw: delta 2, gamma 1/4, h 4)\n"
    "  --key FILE    use this key file (tokmark keygen) instead of a fresh key\n"
    "  --tokens N    tokens per answer (default 200)\n"
    "  --seed S      sampler seed (default 1)\n"
    "  --quick       fewer records (a smoke test)\n";

/* ---- the demo's small model ---- */

/* Train (or load when already trained on exactly these documents) the demo
 * model: order 3 on CORPUS/train/{bible,fortunes}. */
static int demo_model(const char *corpus, const char *cache, const tokmark_tokenizer *tok, lm_model **out) {
    char path[4096], mpath[4200];
    lmcli_files files = {NULL, 0, 0};
    static const char *parts[] = {"bible", "fortunes"};
    int rc = EXIT_OK;
    for (int i = 0; i < 2 && rc == EXIT_OK; i++) {
        snprintf(path, sizeof path, "%s/train/%s", corpus, parts[i]);
        rc = lmcli_collect(path, &files, 0);
    }
    if (rc != EXIT_OK) return rc;
    snprintf(mpath, sizeof mpath, "%s/demo-o3.lm", cache);
    /* tokenize and count first: the cached model must have been trained on exactly this */
    tokmark_tokenizer_encoder *enc = NULL;
    lm_builder *b = NULL;
    int32_t *ids = NULL;
    size_t cap = 0;
    int err = tokmark_tokenizer_encoder_create(&enc, tok);
    if (err == TOKMARK_OK) err = lm_builder_new(&b, 3, tokmark_tokenizer_vocab_size(tok), lmcli_eot(tok), "cl100k_base");
    if (err != TOKMARK_OK) {
        tokmark_tokenizer_encoder_free(enc);
        lmcli_files_free(&files);
        cli_error("%s", tokmark_error_message(err));
        return cli_exit_code(err);
    }
    lmcli_train_ctx tc = {enc, b, &ids, &cap, 0, 0};
    for (size_t i = 0; i < files.n && rc == EXIT_OK; i++) rc = lmcli_each_doc(files.v[i], lmcli_train_doc, &tc);
    lm_model *m = NULL;
    char why[256];
    if (rc == EXIT_OK && lm_load(&m, mpath, why, sizeof why) == TOKMARK_OK) {
        lm_info info;
        lm_get_info(m, &info);
        if (info.order != 3 || info.documents != tc.docs || strcmp(lm_tokenizer_name(m), "cl100k_base") != 0) {
            lm_free(m);
            m = NULL;
        } else {
            printf("  model     %s (cached: order 3, %llu documents, %llu tokens)\n", mpath,
                   (unsigned long long)info.documents, (unsigned long long)info.tokens);
        }
    }
    if (rc == EXIT_OK && m == NULL) {
        double t0 = lmcli_now();
        err = lm_builder_finish(b, &m);
        if (err == TOKMARK_OK) err = lm_save(m, mpath);
        if (err != TOKMARK_OK) {
            rc = cli_file_error(mpath, err, 0, errno, NULL);
        } else {
            lm_info info;
            lm_get_info(m, &info);
            printf("  model     %s (trained: order 3, %llu documents, %llu tokens, %.1f s)\n", mpath,
                   (unsigned long long)info.documents, (unsigned long long)info.tokens, lmcli_now() - t0);
        }
    }
    lm_builder_free(b);
    tokmark_tokenizer_encoder_free(enc);
    free(ids);
    lmcli_files_free(&files);
    if (rc != EXIT_OK) {
        lm_free(m);
        return rc;
    }
    *out = m;
    return EXIT_OK;
}

/* ---- the sample corpus ---- */

enum { DEMO_WM = 0, DEMO_PLAIN, DEMO_HUMAN, DEMO_MIXED, DEMO_KINDS };
static const char *const demo_kind_name[DEMO_KINDS] = {"answer, watermarked", "answer, not watermarked",
                                                        "human text", "human + watermarked passage"};

typedef struct demo_sample {
    int kind[64];
    size_t n;
    FILE *f;
} demo_sample;

/* One JSONL record: {"kind":..., ["prompt":...,] "text":...}. */
static int demo_write(demo_sample *s, int kind, const char *prompt, const char *text, size_t tlen) {
    char *clean = gen_utf8_clean(text, tlen);
    json_t *o = json_object();
    if (clean == NULL || o == NULL || s->n >= 64) {
        free(clean);
        json_decref(o);
        return -1;
    }
    json_object_set_new(o, "kind", json_string(demo_kind_name[kind]));
    if (prompt != NULL) {
        char *cp = gen_utf8_clean(prompt, strlen(prompt));
        json_object_set_new(o, "prompt", json_string(cp != NULL ? cp : ""));
        free(cp);
    }
    json_object_set_new(o, "text", json_string(clean));
    char *dump = json_dumps(o, JSON_COMPACT);
    int rc = dump != NULL && fprintf(s->f, "%s\n", dump) > 0 ? 0 : -1;
    free(dump);
    free(clean);
    json_decref(o);
    s->kind[s->n++] = kind;
    return rc;
}

/* Decode ids into a malloc'd NUL-terminated string. */
static char *demo_decode(const tokmark_tokenizer *tok, const int32_t *ids, size_t n, size_t *len) {
    size_t tl = 0;
    if (tokmark_tokenizer_decode(tok, ids, n, NULL, 0, &tl) != TOKMARK_OK) return NULL;
    char *t = malloc(tl + 1);
    if (t == NULL || tokmark_tokenizer_decode(tok, ids, n, t, tl, &tl) != TOKMARK_OK) {
        free(t);
        return NULL;
    }
    t[tl] = '\0';
    if (len) *len = tl;
    return t;
}

/* What the scan found for each record (the scan's per-document hook). */
typedef struct demo_seen {
    const demo_sample *sample;
    size_t n;
    const char *verdict[64];
    double log10_p[64], window_p[64];
    uint64_t tokens[64];
} demo_seen;

static void demo_hook(void *ctx, const scan_state *s, const scan_doc_info *d) {
    (void)s;
    demo_seen *seen = ctx;
    if (seen->n >= 64) return;
    size_t i = seen->n++;
    seen->verdict[i] = d->verdict;
    seen->log10_p[i] = d->r.log10_p_corrected;
    seen->window_p[i] = d->has_window ? d->window_corrected : 0.0;
    seen->tokens[i] = d->r.tokens;
}

/* Remove a previous report directory (its files, then itself); 0 when gone. */
static int demo_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return errno == ENOENT ? 0 : -1;
    struct dirent *ent;
    char p[4200 + 260];
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, ent->d_name);
        (void)unlink(p);
    }
    closedir(d);
    return rmdir(dir);
}

/* Step 6: the audit report of the sample (tokmark report). */
static int demo_report(const char *cdir, const char *keyp, const char *samp) {
    char sk[4200], rdir[4200];
    snprintf(sk, sizeof sk, "%s/demo-signing.key", cdir);
    snprintf(rdir, sizeof rdir, "%s/report", cdir);
    struct stat st;
    if (stat(sk, &st) != 0) {
        uint8_t pk[RP_PK_BYTES];
        int en = 0, e = rp_signkey_generate(sk, 0, pk, &en);
        if (e != RP_OK) {
            cli_error("%s: %s%s%s", sk, rp_error_message(e), en ? ": " : "", en ? strerror(en) : "");
            return EXIT_FILE;
        }
    }
    if (demo_remove_dir(rdir) != 0) {
        cli_error("%s: cannot remove the previous report: %s", rdir, strerror(errno));
        return EXIT_FILE;
    }
    printf("\n4. tokmark report --profile %s --signing-key %s --controls 200 --prompt-field prompt -o %s %s\n", keyp,
           sk, rdir, samp);
    fflush(stdout);
    char *rargv[] = {"report", "--profile", (char *)(uintptr_t)keyp, "--signing-key", sk, "-o", rdir,
                     "--title", "tokmark demo", "--examiner", "tokmark demo", "--controls", "200",
                     "--prompt-field", "prompt", (char *)(uintptr_t)samp, NULL};
    int rc = cmd_report(16, rargv);
    cli_command = "tokmark demo";
    if (rc == EXIT_OK) printf("  (check it: tokmark report verify %s --evidence)\n", rdir);
    return rc;
}

static int cmd_demo(int argc, char **argv) {
    enum { OPT_CORPUS = 1, OPT_CACHE, OPT_SCHEME, OPT_KEY, OPT_TOKENS, OPT_SEED, OPT_QUICK, OPT_HELP };
    static const cli_opt opts[] = {{"corpus", 0, 1, OPT_CORPUS}, {"cache", 0, 1, OPT_CACHE},
                                   {"key", 0, 1, OPT_KEY},
                                   {"scheme", 0, 1, OPT_SCHEME}, {"tokens", 0, 1, OPT_TOKENS},
                                   {"seed", 0, 1, OPT_SEED},     {"quick", 0, 0, OPT_QUICK},
                                   {"help", 'h', 0, OPT_HELP},   {NULL, 0, 0, 0}};
    const char *corpus = "data/corpus", *cache = NULL, *key_file = NULL;
    tokmark_scheme scheme = TOKMARK_SCHEME_KGW;
    uint32_t ntok = 200, seed = 1;
    int quick = 0;
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *val;
    int id;
    while ((id = cli_next(&a, opts, &val)) != CLI_END) {
        switch (id) {
        case OPT_CORPUS: corpus = val; break;
        case OPT_CACHE: cache = val; break;
        case OPT_KEY: key_file = val; break;
        case OPT_SCHEME:
            scheme = tokmark_scheme_parse(val);
            if (scheme == 0) return cli_usage_error("--scheme: unknown scheme '%s' (kgw, gumbel, synthid)", val);
            break;
        case OPT_TOKENS:
            if (!cli_parse_u32("--tokens", val, 40, 100000, &ntok)) return EXIT_USAGE;
            break;
        case OPT_SEED:
            if (!cli_parse_u32("--seed", val, 0, UINT32_MAX, &seed)) return EXIT_USAGE;
            break;
        case OPT_QUICK: quick = 1; break;
        case OPT_HELP: fputs(cmd_demo_help, stdout); return EXIT_OK;
        case CLI_POS: return cli_usage_error("unexpected argument '%s'", val);
        default: return EXIT_USAGE;
        }
    }
    double t0 = lmcli_now();
    /* the cache directory: demo/ next to the binary (build/demo) */
    char cdir[4096];
    if (cache == NULL) {
        ssize_t k = readlink("/proc/self/exe", cdir, sizeof cdir - 8);
        char *slash = NULL;
        for (ssize_t i = 0; i < k; i++)
            if (cdir[i] == '/') slash = cdir + i;
        if (slash != NULL) memcpy(slash, "/demo", 6);
        else snprintf(cdir, sizeof cdir, "build/demo");
    } else {
        snprintf(cdir, sizeof cdir, "%s", cache);
    }
    if (mkdir(cdir, 0755) != 0 && errno != EEXIST) return cli_file_error(cdir, TOKMARK_ERR_IO, 0, errno, NULL);
    printf("tokmark demo: the main job on built-in defaults (cache %s)\n\n1. corpus, model, key\n", cdir);

    /* 1. the corpus */
    char path[4096];
    snprintf(path, sizeof path, "%s/heldout", corpus);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (strcmp(corpus, "data/corpus") != 0 || stat("scripts/build-corpus.sh", &st) != 0) {
            cli_error("%s: no corpus here (run scripts/build-corpus.sh %s from the repository)", corpus, corpus);
            return EXIT_FILE;
        }
        printf("  corpus    %s is missing: running scripts/build-corpus.sh (about a minute)\n", corpus);
        fflush(stdout);
        if (system("sh scripts/build-corpus.sh data/corpus >&2") != 0) {
            cli_error("scripts/build-corpus.sh failed (run scripts/install-deps.sh first)");
            return EXIT_FILE;
        }
    } else {
        printf("  corpus    %s\n", corpus);
    }
    tokmark_tokenizer *tok = NULL;
    int rc = lmcli_load_tokenizer(&tok, "cl100k_base");
    if (rc != EXIT_OK) return rc;
    lm_model *m = NULL;
    rc = demo_model(corpus, cdir, tok, &m);
    if (rc != EXIT_OK) {
        tokmark_tokenizer_free(tok);
        return rc;
    }

    /* 2. a fresh key, written 0600 and loaded back (the detector side's copy) */
    char keyp[4200], samp[4200];
    snprintf(keyp, sizeof keyp, "%s/demo.key", cdir);
    snprintf(samp, sizeof samp, "%s/sample.jsonl", cdir);
    if (key_file != NULL) snprintf(keyp, sizeof keyp, "%s", key_file);
    tokmark_params par;
    tokmark_params_default(&par, scheme);
    tokmark_profile *prof = NULL;
    tokmark_embedder *e = NULL;
    size_t kline = 0;
    int err = TOKMARK_OK;
    if (key_file == NULL) {
        err = tokmark_profile_generate(&prof, &par);
        if (err == TOKMARK_OK) err = tokmark_profile_save(prof, keyp, 1);
    } else {
        err = tokmark_profile_load(&prof, keyp, 0, &kline);
        if (err == TOKMARK_OK) {
            par = *tokmark_profile_params(prof);
            scheme = par.scheme;
            if (par.vocab_size != lm_vocab_size(m)) {
                cli_error("%s: the key is for V = %u, the model has %u tokens", keyp, par.vocab_size, lm_vocab_size(m));
                rc = EXIT_USAGE;
                goto done_model;
            }
        }
    }
    if (err == TOKMARK_OK) err = tokmark_embedder_create(&e, prof, NULL);
    if (err != TOKMARK_OK) {
        rc = cli_file_error(keyp, err, kline, errno, err == TOKMARK_ERR_PERMISSIONS ? "chmod 600 it" : NULL);
        goto done_model;
    }
    {
        printf("  key       %s (%s, mode 0600), key ID %s, %s", keyp, key_file ? "given" : "fresh",
               tokmark_profile_key_id(prof), tokmark_scheme_name(scheme));
        if (scheme == TOKMARK_SCHEME_KGW)
            printf(" delta %g gamma %g", par.delta, tokmark_params_gamma(&par));
        if (scheme == TOKMARK_SCHEME_SYNTHID) printf(" m %u", par.layers);
        printf(" h %u\n", par.context_width);
    }

    /* 3. the sample corpus: answers to held-out prompts, human text, a mix */
    {
        lmcli_files held = {NULL, 0, 0};
        static const char *parts[] = {"bible", "fortunes"};
        for (int i = 0; i < 2 && rc == EXIT_OK; i++) {
            snprintf(path, sizeof path, "%s/heldout/%s", corpus, parts[i]);
            rc = lmcli_collect(path, &held, 0);
        }
        uint8_t *banned = rc == EXIT_OK ? gen_banned(tok, lm_boundary(m)) : NULL;
        tokmark_tokenizer_encoder *enc = NULL;
        int32_t *ids = NULL, *out = malloc((size_t)ntok * sizeof *out);
        size_t cap = 0;
        demo_sample sample;
        memset(&sample, 0, sizeof sample);
        sample.f = rc == EXIT_OK ? fopen(samp, "w") : NULL;
        if (rc == EXIT_OK && (banned == NULL || out == NULL || held.n < 8 ||
                              tokmark_tokenizer_encoder_create(&enc, tok) != TOKMARK_OK || sample.f == NULL)) {
            rc = sample.f == NULL ? cli_file_error(samp, TOKMARK_ERR_IO, 0, errno, NULL) : EXIT_FAIL;
            if (rc == EXIT_FAIL) cli_error(held.n < 8 ? "%s: too few held-out documents" : "out of memory", corpus);
        }
        size_t per = quick ? 2 : 5, made[DEMO_KINDS] = {0, 0, 0, 0};
        double tg = lmcli_now();
        for (size_t j = 0; rc == EXIT_OK && j < per; j++) {
            /* the held-out documents, spread over both sources */
            const char *docp = held.v[(j * 7919 + 13) % held.n];
            size_t dl = 0;
            char *doc = lmcli_read(docp, &dl, &rc);
            if (doc == NULL) break;
            size_t n = 0;
            err = lmcli_encode(enc, doc, dl, &ids, &cap, &n);
            if (err != TOKMARK_OK || n < 40) {
                free(doc);
                continue;
            }
            /* prompt: the document's first 12 tokens; its text is the human record */
            size_t np = 12;
            char *prompt = demo_decode(tok, ids, np, NULL);
            size_t hl = 0, hn = n < 2 * ntok ? n : 2 * ntok;
            char *human = demo_decode(tok, ids + np, hn - np, &hl);
            for (int w = 0; w < 2 && prompt != NULL && human != NULL && rc == EXIT_OK; w++) {
                lm_gen_config gc = {ntok, 1.0, 0, (uint64_t)seed * 1000 + j * 2 + (uint64_t)w, 0, banned};
                size_t got = 0;
                tokmark_embedder_reset(e);
                err = lm_generate(m, w == 0 ? e : NULL, ids, np, &gc, out, &got);
                size_t tl = 0;
                char *text = err == TOKMARK_OK ? demo_decode(tok, out, got, &tl) : NULL;
                if (text == NULL || demo_write(&sample, w == 0 ? DEMO_WM : DEMO_PLAIN, prompt, text, tl) != 0)
                    rc = EXIT_FAIL;
                else
                    made[w]++;
                /* a longer human text with the first half of this watermarked answer inside,
                 * after its first third: about 10 % watermarked, a job for the windows */
                if (w == 0 && text != NULL && rc == EXIT_OK && j < (quick ? 1u : 2u)) {
                    size_t ml = 0, pl = 0, mn = n < 9 * (ntok / 2) + np ? n : 9 * (ntok / 2) + np;
                    char *longer = demo_decode(tok, ids + np, mn - np, &ml);
                    char *passage = demo_decode(tok, out, got / 2, &pl);
                    size_t cut = ml / 3;
                    while (longer != NULL && cut < ml && longer[cut] != ' ' && longer[cut] != '\n') cut++;
                    char *mix = longer != NULL && passage != NULL ? malloc(ml + pl + 3) : NULL;
                    if (mix == NULL) {
                        rc = EXIT_FAIL;
                    } else {
                        int k = snprintf(mix, ml + pl + 3, "%.*s %s %s", (int)cut, longer, passage, longer + cut);
                        if (demo_write(&sample, DEMO_MIXED, NULL, mix, (size_t)k) != 0) rc = EXIT_FAIL;
                        else made[DEMO_MIXED]++;
                    }
                    free(mix);
                    free(longer);
                    free(passage);
                }
                free(text);
            }
            if (rc == EXIT_OK && human != NULL) {
                if (demo_write(&sample, DEMO_HUMAN, NULL, human, hl) != 0) rc = EXIT_FAIL;
                else made[DEMO_HUMAN]++;
            }
            free(prompt);
            free(human);
            free(doc);
        }
        if (sample.f != NULL && fclose(sample.f) != 0 && rc == EXIT_OK)
            rc = cli_file_error(samp, TOKMARK_ERR_IO, 0, errno, NULL);
        if (rc == EXIT_FAIL) cli_error("cannot generate the sample (out of memory)");
        if (rc == EXIT_OK)
            printf("\n2. sample corpus %s (%.1f s)\n  %zu answers to held-out prompts with the watermark, %zu without "
                   "(%u tokens each,\n  full vocabulary, temperature 1), %zu human held-out texts, %zu longer human "
                   "texts with half\n  a watermarked answer pasted inside (about 15 %% of their tokens)\n",
                   samp, lmcli_now() - tg, made[DEMO_WM], made[DEMO_PLAIN], ntok, made[DEMO_HUMAN], made[DEMO_MIXED]);
        tokmark_tokenizer_encoder_free(enc);
        free(ids);
        free(out);
        free(banned);
        lmcli_files_free(&held);

        /* 4. the scan: `tokmark scan --profile KEY --prompt-field prompt SAMPLE`,
         *    run by the scan code itself; the hook collects each record's result */
        if (rc == EXIT_OK) {
            char *sargv[] = {"scan", "--profile", keyp, "--prompt-field", "prompt", "-q", samp, NULL};
            scan_cfg cfg;
            const char *inputs[4];
            size_t ninputs = 0;
            printf("\n3. tokmark scan --profile %s --prompt-field prompt %s\n", keyp, samp);
            fflush(stdout);
            int sr = scan_parse_args(7, sargv, &cfg, inputs, &ninputs, 4, cmd_scan_help);
            if (sr >= 0) {
                rc = sr == 0 ? EXIT_FAIL : sr;
            } else {
                cfg.no_output = 1;
                scan_state s;
                demo_seen seen;
                memset(&seen, 0, sizeof seen);
                seen.sample = &sample;
                sr = scan_setup(&s, &cfg);
                if (sr == 0) {
                    s.hook = demo_hook;
                    s.hook_ctx = &seen;
                    sr = scan_execute(&s, inputs, ninputs);
                }
                if (sr == 0) sr = scan_finish(&s, sr);
                if (sr == 0) {
                    printf("\n  %-3s %-28s %7s %10s %12s  %s\n", "#", "record (truth)", "tokens", "log10 p",
                           "best window", "verdict");
                    size_t right = 0;
                    for (size_t i = 0; i < seen.n && i < sample.n; i++) {
                        int k = sample.kind[i];
                        int flagged = strcmp(seen.verdict[i], "not_detected") != 0 && strcmp(seen.verdict[i], "no_tuples") != 0;
                        right += flagged == (k == DEMO_WM || k == DEMO_MIXED);
                        printf("  %-3zu %-28s %7llu %10.2f %12.2f  %s\n", i + 1, demo_kind_name[k],
                               (unsigned long long)seen.tokens[i], seen.log10_p[i], seen.window_p[i], seen.verdict[i]);
                    }
                    tokmark_result r;
                    scan_best(&s, 1, &r);
                    printf("\n  corpus: %llu tuples scored over all records, log10 p %.2f: %s\n",
                           (unsigned long long)r.scored, r.log10_p_corrected,
                           r.scored == 0 ? "no_tuples" : r.log10_p_corrected <= -6.0 ? "watermarked" : "not_detected");
                    printf("  %zu of %zu records classified as they really are (alpha 1e-6).\n", right, seen.n);
                } else {
                    rc = sr;
                }
                scan_state_free(&s);
            }
        }
        /* 5. the signed audit report of the same sample */
        if (rc == EXIT_OK) rc = demo_report(cdir, keyp, samp);
    }
    if (rc == EXIT_OK)
        printf("\nlog10 p is the exact tail probability of the score without the key (SPEC.md §8): -20 means\n"
               "unwatermarked text scores this high less than once in 10^20 tries. The best window is the most\n"
               "watermarked stretch of a record, corrected for the windows tried (SPEC.md §12.3).\n"
               "(%.1f s in all)\n",
               lmcli_now() - t0);
done_model:
    tokmark_embedder_free(e);
    tokmark_profile_free(prof);
    lm_free(m);
    tokmark_tokenizer_free(tok);
    return rc;
}

#endif
