/* cmd_generate.h — `tokmark generate`: text from the reference language
 * model with the watermark embedded in the sampling loop.
 *
 * This is the worked example of how an inference engine uses tokmark:
 *
 *   1. once, at start-up: load the profile (the key file) and create one
 *      embedder per sequence being generated;
 *   2. per sequence: push the prompt tokens (tokmark_embedder_prompt);
 *   3. per token: the model produces logits; the engine applies its own
 *      processing (temperature, top-k, banned ids); the embedder chooses the
 *      token from those logits with the engine's uniform random number
 *      (tokmark_embedder_sample_logits, or tokmark_embedder_sample on a
 *      top-k candidate array); the engine tells it which token was taken
 *      (tokmark_embedder_accept).  These calls never fail or allocate.
 *
 * The loop itself is lm_generate() in tools/cli/lm.c; this file parses the
 * command line, loads model, profile and tokenizer, and prints the result. */
#ifndef TOKMARK_CMD_GENERATE_H
#define TOKMARK_CMD_GENERATE_H

#include "cli.h"
#include "cmd_lm.h"
#include "lm.h"

#include <jansson.h>
#include <time.h>

static const char cmd_generate_help[] =
    "usage: tokmark generate --profile KEY --lm MODEL [--prompt TEXT] [-n N]\n"
    "                        [--temperature T] [--top-k K] [--seed S] [--count C]\n"
    "                        [--no-watermark] [--ignore-eos] [--jsonl]\n"
    "\n"
    "Generate text with the reference n-gram model ('tokmark lm train') and\n"
    "embed the watermark of the key file KEY while sampling.  The model's\n"
    "tokenizer must be the profile's.\n"
    "\n"
    "  --profile KEY     key file (profile) whose watermark is embedded\n"
    "  --lm MODEL        the language model file\n"
    "  --prompt TEXT     text to continue (default: start a new document)\n"
    "  -n N              tokens to generate at most (default 200)\n"
    "  --temperature T   divide the logits by T > 0 (default 1)\n"
    "  --top-k K         sample among the K most likely tokens (default 0: all)\n"
    "  --seed S          the sampler's seed (default: from the clock); with it\n"
    "                    the output is reproducible\n"
    "  --count C         C texts, with seeds S, S+1, ... (default 1)\n"
    "  --no-watermark    plain sampling (the control); --profile is then optional\n"
    "  --ignore-eos      never end at <|endoftext|>: always N tokens\n"
    "  --jsonl           one JSON object per text: prompt, text, ids, tokens,\n"
    "                    seed, watermarked, key_id (the public key ID)\n";

/* Append bytes to a growing string, ill-formed UTF-8 replaced by U+FFFD
 * (the ids keep the exact bytes; JSON strings must be well-formed). */
static char *gen_utf8_clean(const char *s, size_t n) {
    char *o = malloc(3 * n + 1);
    if (o == NULL) return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                                                              : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        for (size_t j = 1; ok && j < len; j++) ok = ((unsigned char)s[i + j] & 0xC0) == 0x80;
        if (ok && len == 3) {
            unsigned char d = (unsigned char)s[i + 1];
            ok = !(c == 0xE0 && d < 0xA0) && !(c == 0xED && d > 0x9F);
        }
        if (ok && len == 4) {
            unsigned char d = (unsigned char)s[i + 1];
            ok = !(c == 0xF0 && d < 0x90) && !(c == 0xF4 && d > 0x8F);
        }
        if (ok) {
            memcpy(o + w, s + i, len);
            w += len;
            i += len;
        } else {
            memcpy(o + w, "\xEF\xBF\xBD", 3);
            w += 3;
            i += 1;
        }
    }
    o[w] = '\0';
    return o;
}

/* Ids the sampler must never draw: ids that are no token, and special tokens
 * (their text "<|...|>" is not what their id means) except the boundary. */
static uint8_t *gen_banned(const tokmark_tokenizer *t, int32_t boundary) {
    uint32_t V = tokmark_tokenizer_vocab_size(t);
    uint8_t *ban = calloc(V, 1);
    if (ban == NULL) return NULL;
    for (uint32_t id = 0; id < V; id++) {
        size_t len = 0;
        const uint8_t *b = tokmark_tokenizer_token_bytes(t, (int32_t)id, &len);
        if (b == NULL) {
            ban[id] = 1;
        } else if ((int32_t)id != boundary && len > 4 && b[0] == '<' && b[1] == '|' && b[len - 1] == '>') {
            int32_t ids[2];
            size_t n = 0;
            /* a special token's text encodes to other tokens when specials are off */
            if (tokmark_tokenizer_encode(t, (const char *)b, len, ids, 2, &n, 0) != TOKMARK_OK || n != 1 ||
                ids[0] != (int32_t)id)
                ban[id] = 1;
        }
    }
    return ban;
}

static int cmd_generate(int argc, char **argv) {
    enum { OPT_PROFILE = 1, OPT_LM, OPT_PROMPT, OPT_N, OPT_TEMP, OPT_TOPK, OPT_SEED, OPT_COUNT, OPT_NOWM,
           OPT_IGNEOS, OPT_JSONL, OPT_HELP };
    static const cli_opt opts[] = {
        {"profile", 0, 1, OPT_PROFILE},     {"lm", 0, 1, OPT_LM},          {"prompt", 0, 1, OPT_PROMPT},
        {"tokens", 'n', 1, OPT_N},          {"temperature", 0, 1, OPT_TEMP}, {"top-k", 0, 1, OPT_TOPK},
        {"seed", 0, 1, OPT_SEED},           {"count", 0, 1, OPT_COUNT},    {"no-watermark", 0, 0, OPT_NOWM},
        {"ignore-eos", 0, 0, OPT_IGNEOS},   {"jsonl", 0, 0, OPT_JSONL},    {"help", 'h', 0, OPT_HELP},
        {NULL, 0, 0, 0}};
    const char *key_path = NULL, *lm_path = NULL, *prompt = "";
    uint32_t ntok = 200, top_k = 0, count = 1;
    double temperature = 1.0;
    uint64_t seed = 0;
    int have_seed = 0, watermark = 1, ignore_eos = 0, jsonl = 0;
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *val;
    int id;
    while ((id = cli_next(&a, opts, &val)) != CLI_END) {
        switch (id) {
        case OPT_PROFILE: key_path = val; break;
        case OPT_LM: lm_path = val; break;
        case OPT_PROMPT: prompt = val; break;
        case OPT_N:
            if (!cli_parse_u32("-n", val, 1, 10000000, &ntok)) return EXIT_USAGE;
            break;
        case OPT_TEMP:
            if (!cli_parse_double("--temperature", val, &temperature)) return EXIT_USAGE;
            if (!(temperature > 0.0 && temperature <= 100.0))
                return cli_usage_error("--temperature: '%s' is not in (0, 100]", val);
            break;
        case OPT_TOPK:
            if (!cli_parse_u32("--top-k", val, 0, 1000000, &top_k)) return EXIT_USAGE;
            break;
        case OPT_SEED: {
            char *end = NULL;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (val[0] < '0' || val[0] > '9' || errno != 0 || *end != '\0' || s > (unsigned long long)INT64_MAX / 2)
                return cli_usage_error("--seed: '%s' is not a non-negative integer", val);
            seed = s;
            have_seed = 1;
            break;
        }
        case OPT_COUNT:
            if (!cli_parse_u32("--count", val, 1, 1000000, &count)) return EXIT_USAGE;
            break;
        case OPT_NOWM: watermark = 0; break;
        case OPT_IGNEOS: ignore_eos = 1; break;
        case OPT_JSONL: jsonl = 1; break;
        case OPT_HELP: fputs(cmd_generate_help, stdout); return EXIT_OK;
        case CLI_POS: return cli_usage_error("unexpected argument '%s'", val);
        default: return EXIT_USAGE;
        }
    }
    if (lm_path == NULL) return cli_usage_error("--lm MODEL is required");
    if (watermark && key_path == NULL) return cli_usage_error("--profile KEY is required (or --no-watermark)");
    if (!have_seed) { /* not secret: it only makes a run repeatable, and is printed with --jsonl */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }

    lm_model *m = NULL;
    tokmark_tokenizer *tok = NULL;
    tokmark_profile *prof = NULL;
    tokmark_embedder *e = NULL;
    int32_t *pids = NULL, *out = NULL;
    uint8_t *banned = NULL;
    char *text = NULL;
    size_t pcap = 0, np = 0;
    int rc = lmcli_load_model(&m, lm_path);
    if (rc == EXIT_OK) rc = lmcli_model_tokenizer(m, lm_path, &tok);
    if (rc != EXIT_OK) goto done;

    /* 1. The profile.  Its vocabulary and tokenizer must be the model's:
     *    the watermark lives on token ids. */
    if (key_path != NULL) {
        size_t line = 0;
        int err = tokmark_profile_load(&prof, key_path, 0, &line);
        if (err != TOKMARK_OK) {
            rc = cli_file_error(key_path, err, line, errno,
                                err == TOKMARK_ERR_PERMISSIONS ? "chmod 600 it" : NULL);
            goto done;
        }
        const tokmark_params *par = tokmark_profile_params(prof);
        if (par->vocab_size != lm_vocab_size(m) || strcmp(par->tokenizer, lm_tokenizer_name(m)) != 0) {
            cli_error("%s is for tokenizer %s (V = %u) but %s uses %s (V = %u)", key_path, par->tokenizer,
                      par->vocab_size, lm_path, lm_tokenizer_name(m), lm_vocab_size(m));
            rc = EXIT_USAGE;
            goto done;
        }
    }
    /* 2. One embedder for the sequence, created once (all validation is
     *    here); with top-k it must accept K candidates. */
    if (watermark) {
        tokmark_embedder_config ec = {top_k > 1024 ? top_k : 1024, 65536};
        int err = tokmark_embedder_create(&e, prof, &ec);
        if (err != TOKMARK_OK) {
            cli_error("cannot create the embedder: %s", tokmark_error_message(err));
            rc = cli_exit_code(err);
            goto done;
        }
    }
    tokmark_tokenizer_encoder *enc = NULL;
    int err = tokmark_tokenizer_encoder_create(&enc, tok);
    if (err == TOKMARK_OK) err = lmcli_encode(enc, prompt, strlen(prompt), &pids, &pcap, &np);
    tokmark_tokenizer_encoder_free(enc);
    if (err != TOKMARK_OK) {
        rc = err == TOKMARK_ERR_INVALID ? cli_usage_error("--prompt is not UTF-8") : cli_exit_code(err);
        if (err != TOKMARK_ERR_INVALID) cli_error("%s", tokmark_error_message(err));
        goto done;
    }
    banned = gen_banned(tok, lm_boundary(m));
    out = malloc((size_t)ntok * sizeof *out);
    if (banned == NULL || out == NULL) {
        cli_error("out of memory");
        rc = EXIT_FAIL;
        goto done;
    }
    for (uint32_t c = 0; c < count && rc == EXIT_OK; c++) {
        lm_gen_config cfg = {ntok, temperature, top_k, seed + c, !ignore_eos, banned};
        size_t n = 0;
        if (e != NULL) tokmark_embedder_reset(e); /* a new sequence */
        /* 3. The sampling loop (tools/cli/lm.c). */
        err = lm_generate(m, e, pids, np, &cfg, out, &n);
        if (err != TOKMARK_OK) {
            cli_error("%s", tokmark_error_message(err));
            rc = cli_exit_code(err);
            break;
        }
        size_t tl = 0;
        if (tokmark_tokenizer_decode(tok, out, n, NULL, 0, &tl) != TOKMARK_OK) {
            cli_error("internal error: a generated id has no token");
            rc = EXIT_FAIL;
            break;
        }
        free(text);
        text = malloc(tl + 1);
        if (text == NULL) {
            cli_error("out of memory");
            rc = EXIT_FAIL;
            break;
        }
        if (tokmark_tokenizer_decode(tok, out, n, text, tl, &tl) != TOKMARK_OK) {
            rc = EXIT_FAIL;
            break;
        }
        if (!jsonl) {
            fwrite(text, 1, tl, stdout);
            fputc('\n', stdout);
            continue;
        }
        char *clean = gen_utf8_clean(text, tl);
        json_t *o = json_object(), *ids = json_array();
        if (clean == NULL || o == NULL || ids == NULL) {
            free(clean);
            json_decref(o);
            json_decref(ids);
            cli_error("out of memory");
            rc = EXIT_FAIL;
            break;
        }
        for (size_t i = 0; i < n; i++) json_array_append_new(ids, json_integer(out[i]));
        char *cprompt = gen_utf8_clean(prompt, strlen(prompt));
        json_object_set_new(o, "prompt", cprompt != NULL ? json_string(cprompt) : json_null());
        free(cprompt);
        json_object_set_new(o, "text", json_string(clean));
        json_object_set_new(o, "ids", ids);
        json_object_set_new(o, "tokens", json_integer((json_int_t)n));
        json_object_set_new(o, "seed", json_integer((json_int_t)(seed + c)));
        json_object_set_new(o, "watermarked", json_boolean(e != NULL));
        json_object_set_new(o, "key_id", e != NULL ? json_string(tokmark_profile_key_id(prof)) : json_null());
        char *dump = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (dump != NULL) printf("%s\n", dump);
        free(dump);
        free(clean);
        json_decref(o);
    }
done:
    free(text);
    free(out);
    free(banned);
    free(pids);
    tokmark_embedder_free(e);
    tokmark_profile_free(prof);
    tokmark_tokenizer_free(tok);
    lm_free(m);
    return rc;
}

#endif
