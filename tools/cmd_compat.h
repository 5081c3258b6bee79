/* cmd_compat.h — compatibility profiles on the command line (SPEC.md §10):
 *
 *   tokmark keygen --compat hf-kgw|lmw-kgw|hf-synthid|synthid ... -o FILE
 *       (cmd_keygen hands off to compat_keygen when --compat is given)
 *   tokmark keyinfo FILE            (cmd_keyinfo calls compat_keyinfo for
 *                                    compat profile files)
 *   tokmark compat-detect --profile FILE [INPUT]
 *       one JSON object {"ids":[...]} per input line; one result line per
 *       input line with the reference detector's totals, z and mean scores
 *       and tokmark's exact log10 p.
 *
 * Uses only <tokmark.h> and jansson. */
#ifndef TOKMARK_CMD_COMPAT_H
#define TOKMARK_CMD_COMPAT_H

#include "cli.h"

#include <ctype.h>
#include <jansson.h>

static const char cmd_compat_keygen_help[] =
    "usage: tokmark keygen --compat hf-kgw|lmw-kgw [KGW OPTIONS] [--force] -o FILE\n"
    "       tokmark keygen --compat hf-synthid|synthid [SYNTHID OPTIONS] [--force] -o FILE\n"
    "\n"
    "Write a compatibility profile (SPEC.md section 10): the configuration of a watermark\n"
    "made by another implementation, so that tokmark can detect it bit-exactly.  The file\n"
    "is created with mode 0600 (it holds the reference's secret key).  Only text generated\n"
    "with torch's CPU generator is covered (CUDA generators draw different numbers).\n"
    "\n"
    "Kinds:\n"
    "  hf-kgw       transformers WatermarkingConfig / WatermarkDetector (KGW)\n"
    "  lmw-kgw      lm-watermarking (jwkirchenbauer) WatermarkDetector\n"
    "  hf-synthid   transformers SynthIDTextWatermarkingConfig, synthid-text v0.2 (sampling table)\n"
    "  synthid      synthid-text HEAD (hash mode, no table)\n"
    "\n"
    "KGW options [defaults]:\n"
    "  --seeding S              lefthash or selfhash [lefthash]; lmw-kgw: additive_prf or\n"
    "                           anchored_minhash_prf\n"
    "  --context-width W        context_width (hf) / h (lmw), 1..16 [hf 1; lmw lefthash 1,\n"
    "                           selfhash 4]\n"
    "  --self-salt 0|1          lmw-kgw only [lefthash 0, selfhash 1]\n"
    "  --greenlist-ratio R      greenlist_ratio / gamma, 0 < R < 1 [0.25] (--gamma: the same)\n"
    "  --hashing-key-file F     read the hashing key (a decimal integer) from F; '-' is\n"
    "                           standard input [15485863, the references' public default]\n"
    "  --hashing-key K          the key on the command line (visible to other users: prefer\n"
    "                           --hashing-key-file)\n"
    "  --vocab-size V           vocabulary size [32000]\n"
    "  --bos-token-id N|none    a leading token N is dropped before scoring [none]\n"
    "\n"
    "SynthID options:\n"
    "  --keys-file F            the keys (decimal int64, separated by commas or white space)\n"
    "                           from F; '-' is standard input (required, or --keys)\n"
    "  --keys K1,K2,...         the keys on the command line (visible to other users)\n"
    "  --ngram-len N            n-gram length [5]\n"
    "  --context-history-size C context history [1024]\n"
    "  --eos-token-id N|none    the EOS id of the EOS mask [none]\n"
    "  --sampling-table-size S  hf-synthid: sampling table size [65536]\n"
    "  --sampling-table-seed X  hf-synthid: sampling table seed [0]\n"
    "\n"
    "  -o, --output FILE        the profile to create (required)\n"
    "  --force                  replace FILE if it exists\n";

static const char cmd_compat_detect_help[] =
    "usage: tokmark compat-detect --profile FILE [--force] [--ignore-repeated] [INPUT]\n"
    "\n"
    "Score token ids with a compatibility profile (tokmark keygen --compat) exactly as\n"
    "the reference detector does (SPEC.md section 10).  INPUT (default: standard input,\n"
    "also '-') has one JSON object {\"ids\": [...]} per line.  For each line one JSON\n"
    "object is printed:\n"
    "  line, positions, scored (T, or SynthID's unmasked positions), green (KGW G) or\n"
    "  hits (SynthID: sum of g-values), z, p_reference (transformers' approximation, KGW),\n"
    "  mean (G/T or SynthID mean score), weighted_mean (SynthID), log10_p (tokmark's exact\n"
    "  p-value) and log10_p_weighted (SynthID, where exact); a line with too few tokens\n"
    "  gives {\"line\": N, \"error\": \"too short\"}.  Numbers print with 17 digits and read\n"
    "  back exactly; a missing value is null.\n"
    "\n"
    "  --profile FILE      the compatibility profile (required)\n"
    "  --ignore-repeated   the reference's ignore_repeated_ngrams=True (lm-watermarking\n"
    "                      counts each n-gram once; transformers' flag has no effect)\n"
    "  --force             read a profile that group or others may read\n"
    "  -h, --help          this help\n";

/* ---- key input ---- */

/* The whole of FILE ('-': standard input), at most 64 KiB, NUL-terminated;
 * NULL after printing an error. */
static char *compat_read_secret(const char *opt, const char *path) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        cli_error("%s: %s: %s", opt, path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = (char *)malloc(cap + 1);
    if (buf != NULL) {
        n = fread(buf, 1, cap, f);
        buf[n] = '\0';
    }
    int bad = ferror(f) || (buf != NULL && n == cap);
    if (f != stdin) fclose(f);
    if (buf == NULL || bad) {
        cli_error("%s: %s: %s", opt, path, buf == NULL ? "out of memory" : "unreadable or longer than 64 KiB");
        free(buf);
        return NULL;
    }
    return buf;
}

static void compat_wipe(char *s) {
    if (s == NULL) return;
    volatile char *v = s;
    while (*v) *v++ = 0;
    free(s);
}

/* A decimal int64 (sign allowed) spanning exactly [s, s+n). */
static int compat_parse_i64(const char *s, size_t n, int64_t *out) {
    char tmp[32];
    if (n == 0 || n >= sizeof tmp) return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    for (size_t i = (tmp[0] == '-'); i < n; i++)
        if (!isdigit((unsigned char)tmp[i])) return 0;
    if (tmp[0] == '-' && n == 1) return 0;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(tmp, &end, 10);
    if (errno != 0 || end != tmp + n) return 0;
    *out = (int64_t)v;
    return 1;
}

/* Keys separated by commas and/or white space. */
static int compat_parse_keys(const char *opt, const char *s, tokmark_compat_config *cfg) {
    uint32_t d = 0;
    const char *p = s;
    for (;;) {
        while (*p == ',' || isspace((unsigned char)*p)) p++;
        if (*p == '\0') break;
        const char *q = p;
        while (*q != '\0' && *q != ',' && !isspace((unsigned char)*q)) q++;
        if (d == TOKMARK_COMPAT_MAX_DEPTH) {
            cli_usage_error("%s: more than %d keys", opt, TOKMARK_COMPAT_MAX_DEPTH);
            return 0;
        }
        if (!compat_parse_i64(p, (size_t)(q - p), &cfg->keys[d])) {
            cli_usage_error("%s: key %lu is not a decimal 64-bit integer", opt, (unsigned long)d + 1);
            return 0;
        }
        d++;
        p = q;
    }
    if (d == 0) {
        cli_usage_error("%s: no keys", opt);
        return 0;
    }
    cfg->depth = d;
    return 1;
}

static int compat_parse_hashing_key(const char *opt, const char *s, uint64_t *out) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    int64_t v;
    if (!compat_parse_i64(s, n, &v) || v < 0) {
        cli_usage_error("%s: the hashing key is not an integer from 0 to 2^63-1", opt);
        return 0;
    }
    *out = (uint64_t)v;
    return 1;
}

static int compat_parse_opt_id(const char *opt, const char *s, int64_t *out) {
    uint32_t v;
    if (strcmp(s, "none") == 0) {
        *out = -1;
        return 1;
    }
    if (!cli_parse_u32(opt, s, 0, INT32_MAX, &v)) return 0;
    *out = (int64_t)v;
    return 1;
}

/* ---- keygen --compat ---- */

enum {
    CK_COMPAT = 1, CK_SEEDING, CK_CONTEXT, CK_SELF_SALT, CK_RATIO, CK_KEY_FILE, CK_KEY, CK_VOCAB, CK_BOS,
    CK_KEYS_FILE, CK_KEYS, CK_NGRAM, CK_HISTORY, CK_EOS, CK_TABLE_SIZE, CK_TABLE_SEED, CK_OUTPUT, CK_FORCE,
    CK_HELP
};

static const cli_opt compat_keygen_opts[] = {
    {"compat", 0, 1, CK_COMPAT},
    {"seeding", 0, 1, CK_SEEDING},
    {"context-width", 0, 1, CK_CONTEXT},
    {"self-salt", 0, 1, CK_SELF_SALT},
    {"greenlist-ratio", 0, 1, CK_RATIO},
    {"gamma", 0, 1, CK_RATIO},
    {"hashing-key-file", 0, 1, CK_KEY_FILE},
    {"hashing-key", 0, 1, CK_KEY},
    {"vocab-size", 0, 1, CK_VOCAB},
    {"bos-token-id", 0, 1, CK_BOS},
    {"keys-file", 0, 1, CK_KEYS_FILE},
    {"keys", 0, 1, CK_KEYS},
    {"ngram-len", 0, 1, CK_NGRAM},
    {"context-history-size", 0, 1, CK_HISTORY},
    {"eos-token-id", 0, 1, CK_EOS},
    {"sampling-table-size", 0, 1, CK_TABLE_SIZE},
    {"sampling-table-seed", 0, 1, CK_TABLE_SEED},
    {"output", 'o', 1, CK_OUTPUT},
    {"force", 0, 0, CK_FORCE},
    {"help", 'h', 0, CK_HELP},
    {NULL, 0, 0, 0},
};

/* 1 iff argv has --compat (then `tokmark keygen` is handled here). */
static int compat_keygen_wanted(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) return 0;
        if (strcmp(argv[i], "--compat") == 0 || strncmp(argv[i], "--compat=", 9) == 0) return 1;
    }
    return 0;
}

static int compat_keygen(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(cmd_compat_keygen_help, stdout);
            return EXIT_OK;
        }
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *kind_s = NULL, *seeding_s = NULL, *output = NULL, *key_file = NULL, *key_arg = NULL;
    const char *keys_file = NULL, *keys_arg = NULL;
    const char *kgw_opt = NULL, *sid_opt = NULL, *table_opt = NULL, *salt_opt = NULL;
    int force = 0, have_context = 0, have_salt = 0, have_ratio = 0, have_vocab = 0, have_bos = 0;
    int have_ngram = 0, have_history = 0, have_eos = 0, have_tsize = 0, have_tseed = 0;
    uint32_t context = 0, salt = 0, vocab = 0, ngram = 0, history = 0, tsize = 0;
    uint64_t tseed = 0;
    int64_t bos = -1, eos = -1;
    double ratio = 0;
    const char *val;
    int id;
    while ((id = cli_next(&a, compat_keygen_opts, &val)) != CLI_END) {
        switch (id) {
        case CLI_ERR: return EXIT_USAGE;
        case CLI_POS: return cli_usage_error("unexpected argument '%s'", val);
        case CK_HELP: fputs(cmd_compat_keygen_help, stdout); return EXIT_OK;
        case CK_COMPAT: kind_s = val; break;
        case CK_SEEDING: seeding_s = val; kgw_opt = "--seeding"; break;
        case CK_CONTEXT:
            if (!cli_parse_u32("--context-width", val, 1, TOKMARK_MAX_CONTEXT, &context)) return EXIT_USAGE;
            have_context = 1;
            kgw_opt = "--context-width";
            break;
        case CK_SELF_SALT:
            if (!cli_parse_u32("--self-salt", val, 0, 1, &salt)) return EXIT_USAGE;
            have_salt = 1;
            salt_opt = kgw_opt = "--self-salt";
            break;
        case CK_RATIO:
            if (!cli_parse_double("--greenlist-ratio", val, &ratio)) return EXIT_USAGE;
            if (!(ratio > 0.0 && ratio < 1.0))
                return cli_usage_error("--greenlist-ratio: %s is not between 0 and 1 (exclusive)", val);
            have_ratio = 1;
            kgw_opt = "--greenlist-ratio";
            break;
        case CK_KEY_FILE: key_file = val; kgw_opt = "--hashing-key-file"; break;
        case CK_KEY: key_arg = val; kgw_opt = "--hashing-key"; break;
        case CK_VOCAB:
            if (!cli_parse_u32("--vocab-size", val, 2, TOKMARK_COMPAT_MAX_VOCAB, &vocab)) return EXIT_USAGE;
            have_vocab = 1;
            kgw_opt = "--vocab-size";
            break;
        case CK_BOS:
            if (!compat_parse_opt_id("--bos-token-id", val, &bos)) return EXIT_USAGE;
            have_bos = 1;
            kgw_opt = "--bos-token-id";
            break;
        case CK_KEYS_FILE: keys_file = val; sid_opt = "--keys-file"; break;
        case CK_KEYS: keys_arg = val; sid_opt = "--keys"; break;
        case CK_NGRAM:
            if (!cli_parse_u32("--ngram-len", val, 1, TOKMARK_COMPAT_MAX_NGRAM, &ngram)) return EXIT_USAGE;
            have_ngram = 1;
            sid_opt = "--ngram-len";
            break;
        case CK_HISTORY:
            if (!cli_parse_u32("--context-history-size", val, 1, TOKMARK_COMPAT_MAX_HISTORY, &history))
                return EXIT_USAGE;
            have_history = 1;
            sid_opt = "--context-history-size";
            break;
        case CK_EOS:
            if (!compat_parse_opt_id("--eos-token-id", val, &eos)) return EXIT_USAGE;
            have_eos = 1;
            sid_opt = "--eos-token-id";
            break;
        case CK_TABLE_SIZE:
            if (!cli_parse_u32("--sampling-table-size", val, 2, TOKMARK_COMPAT_MAX_TABLE, &tsize)) return EXIT_USAGE;
            have_tsize = 1;
            table_opt = sid_opt = "--sampling-table-size";
            break;
        case CK_TABLE_SEED: {
            errno = 0;
            char *end = NULL;
            unsigned long long v = strtoull(val, &end, 10);
            if (!isdigit((unsigned char)val[0]) || errno != 0 || *end != '\0')
                return cli_usage_error("--sampling-table-seed: '%s' is not an integer from 0 to 2^64-1", val);
            tseed = (uint64_t)v;
            have_tseed = 1;
            table_opt = sid_opt = "--sampling-table-seed";
            break;
        }
        case CK_OUTPUT: output = val; break;
        case CK_FORCE: force = 1; break;
        default: return cli_usage_error("internal error: option %d", id);
        }
    }
    tokmark_compat_kind kind = tokmark_compat_kind_parse(kind_s);
    if (kind == 0)
        return cli_usage_error("--compat: unknown kind '%s' (hf-kgw, lmw-kgw, hf-synthid or synthid)", kind_s);
    if (output == NULL) return cli_usage_error("missing -o FILE: where to write the profile");
    if (*output == '\0' || strcmp(output, "-") == 0)
        return cli_usage_error("-o: a profile is only ever written to a named file");
    const int kgw = kind == TOKMARK_COMPAT_HF_KGW || kind == TOKMARK_COMPAT_LMW_KGW;
    if (kgw && sid_opt != NULL) return cli_usage_error("%s applies to the SynthID kinds only", sid_opt);
    if (!kgw && kgw_opt != NULL) return cli_usage_error("%s applies to the KGW kinds only", kgw_opt);
    if (kind == TOKMARK_COMPAT_HF_KGW && salt_opt != NULL)
        return cli_usage_error("--self-salt applies to lmw-kgw only (hf-kgw: selfhash implies it)");
    if (kind == TOKMARK_COMPAT_SYNTHID && table_opt != NULL)
        return cli_usage_error("%s applies to hf-synthid only (synthid has no sampling table)", table_opt);
    if ((key_file && key_arg) || (keys_file && keys_arg))
        return cli_usage_error("give the key either on the command line or in a file, not both");

    tokmark_compat_config cfg;
    tokmark_compat_config_default(&cfg, kind);
    int rc = EXIT_USAGE;
    char *secret = NULL;
    if (kgw) {
        if (seeding_s != NULL) {
            if (strcmp(seeding_s, "additive_prf") == 0) seeding_s = "lefthash";
            if (strcmp(seeding_s, "anchored_minhash_prf") == 0) seeding_s = "selfhash";
            cfg.seeding = tokmark_seeding_parse(seeding_s);
            if (cfg.seeding == 0) return cli_usage_error("--seeding: unknown seeding '%s'", seeding_s);
        }
        if (kind == TOKMARK_COMPAT_LMW_KGW && cfg.seeding == TOKMARK_SEEDING_SELFHASH) {
            cfg.context_width = 4; /* lm-watermarking's "selfhash" */
            cfg.self_salt = 1;
        }
        if (have_context) cfg.context_width = context;
        if (have_salt) cfg.self_salt = salt;
        if (have_ratio) cfg.greenlist_ratio = ratio;
        if (have_vocab) cfg.vocab_size = vocab;
        if (have_bos) cfg.bos_token_id = bos;
        if (key_file != NULL) {
            secret = compat_read_secret("--hashing-key-file", key_file);
            if (secret == NULL) return EXIT_FILE;
            if (!compat_parse_hashing_key("--hashing-key-file", secret, &cfg.hashing_key)) goto out;
        } else if (key_arg != NULL) {
            fprintf(stderr, "%s: warning: --hashing-key is visible to other users of this machine; "
                            "prefer --hashing-key-file\n", cli_command);
            if (!compat_parse_hashing_key("--hashing-key", key_arg, &cfg.hashing_key)) goto out;
        } else {
            fprintf(stderr, "%s: note: no hashing key given: using the references' public default "
                            "15485863\n", cli_command);
        }
    } else {
        if (keys_file != NULL) {
            secret = compat_read_secret("--keys-file", keys_file);
            if (secret == NULL) return EXIT_FILE;
            if (!compat_parse_keys("--keys-file", secret, &cfg)) goto out;
        } else if (keys_arg != NULL) {
            fprintf(stderr, "%s: warning: --keys is visible to other users of this machine; prefer "
                            "--keys-file\n", cli_command);
            if (!compat_parse_keys("--keys", keys_arg, &cfg)) goto out;
        } else {
            rc = cli_usage_error("missing --keys-file FILE: the SynthID watermarking keys");
            goto out;
        }
        if (have_ngram) cfg.ngram_len = ngram;
        if (have_history) cfg.context_history_size = history;
        if (have_eos) cfg.eos_token_id = eos;
        if (have_tsize) cfg.sampling_table_size = tsize;
        if (have_tseed) cfg.sampling_table_seed = tseed;
    }
    if (tokmark_compat_config_check(&cfg) != TOKMARK_OK) {
        rc = cli_usage_error("the parameters are out of range");
        goto out;
    }
    tokmark_compat *c = NULL;
    int err = tokmark_compat_create(&c, &cfg);
    if (err != TOKMARK_OK) {
        cli_error("cannot build the profile: %s", tokmark_error_message(err));
        rc = cli_exit_code(err);
        goto out;
    }
    err = tokmark_compat_save(c, output, force);
    if (err != TOKMARK_OK) {
        rc = cli_file_error(output, err, 0, errno, err == TOKMARK_ERR_EXISTS ? "pass --force to replace it" : NULL);
        tokmark_compat_free(c);
        goto out;
    }
    size_t n = tokmark_compat_describe(c, NULL, 0);
    char *desc = (char *)malloc(n + 1);
    if (desc != NULL) {
        tokmark_compat_describe(c, desc, n + 1);
        fputs(desc, stdout);
        free(desc);
    }
    tokmark_compat_free(c);
    fprintf(stderr, "%s: wrote a %s compatibility profile to %s (mode 0600)\n", cli_command,
            tokmark_compat_kind_name(kind), output);
    rc = EXIT_OK;
out:
    compat_wipe(secret);
    {
        volatile uint8_t *v = (volatile uint8_t *)&cfg;
        for (size_t i = 0; i < sizeof cfg; i++) v[i] = 0;
    }
    return rc;
}

/* ---- keyinfo ---- */

/* Print a compat profile file for `tokmark keyinfo`; returns the exit code. */
static int compat_keyinfo(const char *path, unsigned flags, int *printed) {
    tokmark_compat *c = NULL;
    size_t line = 0;
    int err = tokmark_compat_load(&c, path, flags, &line);
    if (err != TOKMARK_OK)
        return cli_file_error(path, err, line, errno,
                              err == TOKMARK_ERR_PERMISSIONS
                                  ? "run 'chmod 600' on it, or pass --force to read it anyway"
                                  : NULL);
    size_t n = tokmark_compat_describe(c, NULL, 0);
    char *desc = (char *)malloc(n + 1);
    if (desc == NULL) {
        tokmark_compat_free(c);
        cli_error("out of memory");
        return EXIT_FAIL;
    }
    tokmark_compat_describe(c, desc, n + 1);
    printf("%s# %s: compatibility profile\n%s", *printed ? "\n" : "", path, desc);
    *printed = 1;
    free(desc);
    tokmark_compat_free(c);
    return EXIT_OK;
}

/* ---- compat-detect ---- */

enum { CD_PROFILE = 1, CD_FORCE, CD_IGNORE, CD_HELP };

static const cli_opt compat_detect_opts[] = {
    {"profile", 0, 1, CD_PROFILE},
    {"force", 0, 0, CD_FORCE},
    {"ignore-repeated", 0, 0, CD_IGNORE},
    {"help", 'h', 0, CD_HELP},
    {NULL, 0, 0, 0},
};

static void compat_put_num(const char *name, double v) {
    if (isfinite(v)) printf(",\"%s\":%.17g", name, v);
    else printf(",\"%s\":null", name);
}

/* The ids of a line {"ids":[...]}; NULL and *why on error. */
static int32_t *compat_line_ids(const char *s, size_t len, size_t *n, const char **why) {
    json_error_t jerr;
    json_t *o = json_loadb(s, len, 0, &jerr);
    int32_t *ids = NULL;
    *why = "not a JSON object";
    if (o == NULL || !json_is_object(o)) goto out;
    json_t *a = json_object_get(o, "ids");
    *why = "no \"ids\" array";
    if (a == NULL || !json_is_array(a)) goto out;
    *n = json_array_size(a);
    ids = (int32_t *)malloc((*n + 1) * sizeof *ids);
    *why = "out of memory";
    if (ids == NULL) goto out;
    for (size_t i = 0; i < *n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX) {
            *why = "an id is not an integer in the 32-bit range";
            free(ids);
            ids = NULL;
            goto out;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    *why = NULL;
out:
    json_decref(o);
    return ids;
}

static int cmd_compat_detect(int argc, char **argv) {
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *profile = NULL, *input = NULL;
    unsigned flags = 0;
    int ignore = 0;
    const char *val;
    int id;
    while ((id = cli_next(&a, compat_detect_opts, &val)) != CLI_END) {
        switch (id) {
        case CLI_ERR: return EXIT_USAGE;
        case CLI_POS:
            if (input != NULL) return cli_usage_error("more than one INPUT");
            input = val;
            break;
        case CD_HELP: fputs(cmd_compat_detect_help, stdout); return EXIT_OK;
        case CD_PROFILE: profile = val; break;
        case CD_FORCE: flags |= TOKMARK_LOAD_FORCE; break;
        case CD_IGNORE: ignore = 1; break;
        default: return cli_usage_error("internal error: option %d", id);
        }
    }
    if (profile == NULL) return cli_usage_error("missing --profile FILE: the compatibility profile");
    tokmark_compat *c = NULL;
    size_t eline = 0;
    int err = tokmark_compat_load(&c, profile, flags, &eline);
    if (err != TOKMARK_OK)
        return cli_file_error(profile, err, eline, errno,
                              err == TOKMARK_ERR_PERMISSIONS ? "run 'chmod 600' on it" :
                              err == TOKMARK_ERR_UNSUPPORTED ? "not a compatibility profile" : NULL);
    const char *name = input == NULL || strcmp(input, "-") == 0 ? "(stdin)" : input;
    FILE *f = input == NULL || strcmp(input, "-") == 0 ? stdin : fopen(input, "r");
    if (f == NULL) {
        int e = errno;
        tokmark_compat_free(c);
        fprintf(stderr, "tokmark: %s: %s\n", input, strerror(e));
        return EXIT_FILE;
    }
    const tokmark_compat_config *cfg = tokmark_compat_get_config(c);
    const int kgw = cfg->kind == TOKMARK_COMPAT_HF_KGW || cfg->kind == TOKMARK_COMPAT_LMW_KGW;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = EXIT_OK;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        if (len == 0) continue;
        size_t n = 0;
        const char *why = NULL;
        int32_t *ids = compat_line_ids(line, (size_t)len, &n, &why);
        if (ids == NULL) {
            fprintf(stderr, "tokmark: %s:%zu: %s\n", name, lineno, why);
            rc = EXIT_FILE;
            break;
        }
        tokmark_compat_score s;
        err = tokmark_compat_score_ids(c, ids, n, ignore, NULL, &s);
        free(ids);
        if (err == TOKMARK_ERR_TOO_SHORT) {
            printf("{\"line\":%zu,\"error\":\"too short\"}\n", lineno);
            continue;
        }
        if (err != TOKMARK_OK) {
            cli_error("%s:%zu: %s", name, lineno, tokmark_error_message(err));
            rc = cli_exit_code(err);
            break;
        }
        printf("{\"line\":%zu,\"positions\":%zu,\"scored\":%llu,\"%s\":%llu", lineno, s.positions,
               (unsigned long long)s.scored, kgw ? "green" : "hits", (unsigned long long)s.hits);
        compat_put_num("z", s.z);
        compat_put_num("p_reference", s.p_reference);
        compat_put_num("mean", s.mean);
        compat_put_num("weighted_mean", s.weighted_mean);
        compat_put_num("log10_p", s.log10_p);
        compat_put_num("log10_p_weighted", s.log10_p_weighted);
        printf("}\n");
    }
    if (rc == EXIT_OK && ferror(f)) {
        fprintf(stderr, "tokmark: %s: %s\n", name, strerror(errno));
        rc = EXIT_FILE;
    }
    free(line);
    if (f != stdin) fclose(f);
    tokmark_compat_free(c);
    return rc;
}

#endif
