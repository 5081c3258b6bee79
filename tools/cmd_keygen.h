/* cmd_keygen.h — `tokmark keygen`: create a profile (key file). */
#ifndef TOKMARK_CMD_KEYGEN_H
#define TOKMARK_CMD_KEYGEN_H

#include "cli.h"
#include "cmd_compat.h" /* keygen --compat: compatibility profiles (SPEC.md section 10) */
#include "cmd_report.h" /* keygen --signing: report-signing keys (SPEC.md section 13) */

static const char cmd_keygen_help[] =
    "usage: tokmark keygen --scheme kgw|gumbel|synthid [PARAMETERS] [--force] -o FILE\n"
    "       tokmark keygen --from MASTERFILE --account ID [--account ID ...] [--force] -o FILE\n"
    "       tokmark keygen --compat hf-kgw|lmw-kgw|hf-synthid|synthid ... -o FILE  (--compat --help)\n"
    "       tokmark keygen --signing [--force] -o FILE   (report-signing key, Ed25519; tokmark report)\n"
    "\n"
    "Create a profile: a new random secret key and the watermark parameters, written\n"
    "to FILE with mode 0600.  Prints the public key ID and a one-line summary; the\n"
    "key itself is only ever written to FILE.\n"
    "\n"
    "Parameters (SPEC.md section 2.3; defaults in brackets):\n"
    "  --scheme S            kgw, gumbel or synthid (required)\n"
    "  --seeding S           lefthash or selfhash [lefthash]\n"
    "  --context-width H     context width h: 1..16, selfhash 2..16 [4]\n"
    "  --vocab-size V        vocabulary size: token ids are 0..V-1 [100277]\n"
    "  --tokenizer NAME      the tokenizer the profile is for [cl100k_base]\n"
    "  --gamma G             kgw: green fraction, 0 < G < 1 [0.25]\n"
    "  --delta D             kgw: logit bias, 0 < D <= 100 [2]\n"
    "  --layers M            synthid: tournament layers, 1..128 [30]\n"
    "  --weights W1,W2,...   synthid: M layer weights, 1..1000 each [M,M-1,...,1]\n"
    "  --no-mask-repeated    watermark repeated contexts too (masking is on by default)\n"
    "\n"
    "Accounts (SPEC.md section 2.5):\n"
    "  --from MASTERFILE     derive from the master profile in MASTERFILE (its first\n"
    "                        profile) instead of generating a new key; the parameters\n"
    "                        are the master's, so no parameter options may be given\n"
    "  --account ID          the account id (1..255 bytes); repeat it to write the\n"
    "                        sub-profiles of several accounts into FILE as a key ring\n"
    "\n"
    "Output:\n"
    "  -o, --output FILE     the key file to create (required)\n"
    "  --force               replace FILE if it exists\n"
    "  -h, --help            this help\n";

enum {
    KG_SCHEME = 1, KG_SEEDING, KG_CONTEXT, KG_GAMMA, KG_DELTA, KG_LAYERS, KG_WEIGHTS, KG_VOCAB,
    KG_TOKENIZER, KG_NO_MASK, KG_ACCOUNT, KG_FROM, KG_FORCE, KG_OUTPUT, KG_HELP
};

static const cli_opt keygen_opts[] = {
    {"scheme", 0, 1, KG_SCHEME},
    {"seeding", 0, 1, KG_SEEDING},
    {"context-width", 0, 1, KG_CONTEXT},
    {"gamma", 0, 1, KG_GAMMA},
    {"delta", 0, 1, KG_DELTA},
    {"layers", 0, 1, KG_LAYERS},
    {"weights", 0, 1, KG_WEIGHTS},
    {"vocab-size", 0, 1, KG_VOCAB},
    {"tokenizer", 0, 1, KG_TOKENIZER},
    {"no-mask-repeated", 0, 0, KG_NO_MASK},
    {"account", 0, 1, KG_ACCOUNT},
    {"from", 0, 1, KG_FROM},
    {"force", 0, 0, KG_FORCE},
    {"output", 'o', 1, KG_OUTPUT},
    {"help", 'h', 0, KG_HELP},
    {NULL, 0, 0, 0},
};

/* "w1,w2,...": 1..TOKMARK_MAX_LAYERS integers in 1..TOKMARK_MAX_WEIGHT. */
static int keygen_parse_weights(const char *s, uint16_t *w, uint32_t *count) {
    uint32_t m = 0;
    const char *p = s;
    for (;;) {
        if (m == TOKMARK_MAX_LAYERS) {
            cli_usage_error("--weights: more than %d weights", TOKMARK_MAX_LAYERS);
            return 0;
        }
        char *end = NULL;
        errno = 0;
        unsigned long v = (*p >= '0' && *p <= '9') ? strtoul(p, &end, 10) : 0;
        if (end == NULL || end == p || errno != 0 || v < 1 || v > TOKMARK_MAX_WEIGHT ||
            (*end != ',' && *end != '\0')) {
            cli_usage_error("--weights: '%s' is not a comma-separated list of integers from 1 to %d",
                            s, TOKMARK_MAX_WEIGHT);
            return 0;
        }
        w[m++] = (uint16_t)v;
        if (*end == '\0') break;
        p = end + 1;
    }
    *count = m;
    return 1;
}

static int keygen_tokenizer_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n >= TOKMARK_TOKENIZER_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return 0;
    return 1;
}

#define KEYGEN_MAX_ACCOUNTS 65536

static int cmd_keygen(int argc, char **argv) {
    if (compat_keygen_wanted(argc, argv)) return compat_keygen(argc, argv); /* tools/cmd_compat.h */
    if (report_keygen_wanted(argc, argv)) return report_keygen(argc, argv); /* tools/cmd_report.h */
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *scheme_s = NULL, *seeding_s = NULL, *tokenizer = NULL, *from = NULL, *output = NULL;
    const char *param_opt = NULL; /* the first parameter option given (for --from) */
    int have_context = 0, have_gamma = 0, have_delta = 0, have_layers = 0, have_weights = 0;
    int have_vocab = 0, no_mask = 0, force = 0;
    uint32_t context = 0, layers = 0, nweights = 0, vocab = 0;
    double gamma = 0, delta = 0;
    uint16_t weights[TOKMARK_MAX_LAYERS];
    const char **accounts = NULL;
    size_t naccounts = 0;
    int rc = EXIT_USAGE;
    tokmark_profile *master = NULL;
    tokmark_keyring *ring = NULL;

    accounts = (const char **)calloc((size_t)argc, sizeof *accounts);
    if (accounts == NULL) {
        cli_error("out of memory");
        return EXIT_FAIL;
    }
    const char *val;
    int id;
    while ((id = cli_next(&a, keygen_opts, &val)) != CLI_END) {
        switch (id) {
        case CLI_ERR: goto out;
        case CLI_POS: cli_usage_error("unexpected argument '%s'", val); goto out;
        case KG_HELP:
            fputs(cmd_keygen_help, stdout);
            rc = EXIT_OK;
            goto out;
        case KG_SCHEME: scheme_s = val; break;
        case KG_SEEDING: seeding_s = val; param_opt = param_opt ? param_opt : "--seeding"; break;
        case KG_CONTEXT:
            if (!cli_parse_u32("--context-width", val, 1, TOKMARK_MAX_CONTEXT, &context)) goto out;
            have_context = 1;
            param_opt = param_opt ? param_opt : "--context-width";
            break;
        case KG_GAMMA:
            if (!cli_parse_double("--gamma", val, &gamma)) goto out;
            if (!(gamma > 0.0 && gamma < 1.0)) {
                cli_usage_error("--gamma: %s is not between 0 and 1 (exclusive)", val);
                goto out;
            }
            have_gamma = 1;
            param_opt = param_opt ? param_opt : "--gamma";
            break;
        case KG_DELTA:
            if (!cli_parse_double("--delta", val, &delta)) goto out;
            if (!(delta > 0.0 && delta <= 100.0)) {
                cli_usage_error("--delta: %s is not in 0 < D <= 100", val);
                goto out;
            }
            have_delta = 1;
            param_opt = param_opt ? param_opt : "--delta";
            break;
        case KG_LAYERS:
            if (!cli_parse_u32("--layers", val, 1, TOKMARK_MAX_LAYERS, &layers)) goto out;
            have_layers = 1;
            param_opt = param_opt ? param_opt : "--layers";
            break;
        case KG_WEIGHTS:
            if (!keygen_parse_weights(val, weights, &nweights)) goto out;
            have_weights = 1;
            param_opt = param_opt ? param_opt : "--weights";
            break;
        case KG_VOCAB:
            if (!cli_parse_u32("--vocab-size", val, 2, INT32_MAX, &vocab)) goto out;
            have_vocab = 1;
            param_opt = param_opt ? param_opt : "--vocab-size";
            break;
        case KG_TOKENIZER:
            if (!keygen_tokenizer_ok(val)) {
                cli_usage_error("--tokenizer: '%s' is not 1..%d printable ASCII characters without "
                                "spaces", val, TOKMARK_TOKENIZER_MAX - 1);
                goto out;
            }
            tokenizer = val;
            param_opt = param_opt ? param_opt : "--tokenizer";
            break;
        case KG_NO_MASK: no_mask = 1; param_opt = param_opt ? param_opt : "--no-mask-repeated"; break;
        case KG_ACCOUNT: {
            size_t n = strlen(val);
            if (n < 1 || n >= TOKMARK_ACCOUNT_MAX) {
                cli_usage_error("--account: an account id has 1 to %d bytes", TOKMARK_ACCOUNT_MAX - 1);
                goto out;
            }
            for (size_t i = 0; i < naccounts; i++)
                if (strcmp(accounts[i], val) == 0) {
                    cli_usage_error("--account: '%s' is given twice", val);
                    goto out;
                }
            if (naccounts == KEYGEN_MAX_ACCOUNTS) {
                cli_usage_error("--account: more than %d accounts", KEYGEN_MAX_ACCOUNTS);
                goto out;
            }
            accounts[naccounts++] = val;
            break;
        }
        case KG_FROM: from = val; break;
        case KG_FORCE: force = 1; break;
        case KG_OUTPUT: output = val; break;
        default: cli_usage_error("internal error: option %d", id); goto out;
        }
    }

    if (output == NULL) {
        cli_usage_error("missing -o FILE: where to write the key");
        goto out;
    }
    if (*output == '\0') {
        cli_usage_error("-o: empty file name");
        goto out;
    }
    if (strcmp(output, "-") == 0) {
        cli_usage_error("-o: a key is only ever written to a file, never to standard output");
        goto out;
    }
    int err;
    size_t line = 0;
    if (from != NULL || naccounts > 0) {
        /* ---- account sub-profiles of an existing master ---- */
        if (from == NULL) {
            cli_usage_error("--account needs --from MASTERFILE (the master profile)");
            goto out;
        }
        if (naccounts == 0) {
            cli_usage_error("--from needs at least one --account ID");
            goto out;
        }
        if (scheme_s != NULL || param_opt != NULL) {
            cli_usage_error("%s cannot be used with --from: the parameters are the master "
                            "profile's", scheme_s != NULL ? "--scheme" : param_opt);
            goto out;
        }
        err = tokmark_profile_load(&master, from, 0, &line);
        if (err != TOKMARK_OK) {
            rc = cli_file_error(from, err, line, errno,
                                err == TOKMARK_ERR_PERMISSIONS ? "run 'chmod 600' on it" : NULL);
            goto out;
        }
        if (tokmark_profile_account(master) != NULL) {
            cli_error("%s: its first profile belongs to account '%s' already; derive accounts "
                      "from the master profile", from, tokmark_profile_account(master));
            rc = EXIT_USAGE;
            goto out;
        }
        err = tokmark_keyring_new(&ring);
        for (size_t i = 0; err == TOKMARK_OK && i < naccounts; i++) {
            tokmark_profile *sub = NULL;
            err = tokmark_profile_derive_account(&sub, master, accounts[i], strlen(accounts[i]));
            if (err == TOKMARK_OK) err = tokmark_keyring_add(ring, sub);
        }
        if (err != TOKMARK_OK) {
            cli_error("cannot derive the account profiles: %s", tokmark_error_message(err));
            rc = cli_exit_code(err);
            goto out;
        }
    } else {
        /* ---- a new master profile ---- */
        if (scheme_s == NULL) {
            cli_usage_error("missing --scheme kgw|gumbel|synthid");
            goto out;
        }
        tokmark_scheme scheme = tokmark_scheme_parse(scheme_s);
        if (scheme == 0) {
            cli_usage_error("--scheme: unknown scheme '%s' (kgw, gumbel or synthid)", scheme_s);
            goto out;
        }
        tokmark_params p;
        tokmark_params_default(&p, scheme);
        if (seeding_s != NULL) {
            p.seeding = tokmark_seeding_parse(seeding_s);
            if (p.seeding == 0) {
                cli_usage_error("--seeding: unknown seeding '%s' (lefthash or selfhash)", seeding_s);
                goto out;
            }
        }
        if (have_context) p.context_width = context;
        if (p.seeding == TOKMARK_SEEDING_SELFHASH && p.context_width < 2) {
            cli_usage_error("--context-width: selfhash needs a context width of at least 2");
            goto out;
        }
        if (have_vocab) p.vocab_size = vocab;
        if (tokenizer != NULL) {
            memset(p.tokenizer, 0, sizeof p.tokenizer);
            memcpy(p.tokenizer, tokenizer, strlen(tokenizer));
        }
        if (no_mask) p.mask_repeated = 0;
        if ((have_gamma || have_delta) && scheme != TOKMARK_SCHEME_KGW) {
            cli_usage_error("%s applies to --scheme kgw only", have_gamma ? "--gamma" : "--delta");
            goto out;
        }
        if ((have_layers || have_weights) && scheme != TOKMARK_SCHEME_SYNTHID) {
            cli_usage_error("%s applies to --scheme synthid only",
                            have_layers ? "--layers" : "--weights");
            goto out;
        }
        if (have_gamma) p.gamma_threshold = tokmark_gamma_threshold(gamma);
        if (have_delta) p.delta = delta;
        if (have_layers && have_weights && layers != nweights) {
            cli_usage_error("--weights: %lu weights given for %lu layers", (unsigned long)nweights,
                            (unsigned long)layers);
            goto out;
        }
        if (have_layers || have_weights) {
            p.layers = have_layers ? layers : nweights;
            memset(p.weights, 0, sizeof p.weights);
            for (uint32_t i = 0; i < p.layers; i++)
                p.weights[i] = have_weights ? weights[i] : (uint16_t)(p.layers - i);
        }
        if (tokmark_params_check(&p) != TOKMARK_OK) {
            cli_usage_error("the parameters are out of range");
            goto out;
        }
        tokmark_profile *prof = NULL;
        err = tokmark_profile_generate(&prof, &p);
        if (err == TOKMARK_OK) err = tokmark_keyring_new(&ring);
        if (err == TOKMARK_OK) err = tokmark_keyring_add(ring, prof);
        else tokmark_profile_free(prof);
        if (err != TOKMARK_OK) {
            cli_error("cannot create the key: %s", tokmark_error_message(err));
            rc = cli_exit_code(err);
            goto out;
        }
    }

    err = tokmark_keyring_save(ring, output, force);
    if (err != TOKMARK_OK) {
        rc = cli_file_error(output, err, 0, errno,
                            err == TOKMARK_ERR_EXISTS ? "pass --force to replace it" : NULL);
        goto out;
    }
    for (size_t i = 0; i < tokmark_keyring_size(ring); i++) {
        const tokmark_profile *q = tokmark_keyring_get(ring, i);
        printf("key-id %s\n", tokmark_profile_key_id(q));
        if (cli_print_profile(stdout, q, 1, 1) != 0) {
            cli_error("out of memory");
            rc = EXIT_FAIL;
            goto out;
        }
    }
    fprintf(stderr, "%s: wrote %zu profile%s to %s (mode 0600)\n", cli_command,
            tokmark_keyring_size(ring), tokmark_keyring_size(ring) == 1 ? "" : "s", output);
    rc = EXIT_OK;
out:
    tokmark_keyring_free(ring);
    tokmark_profile_free(master);
    free(accounts);
    return rc;
}

#endif
