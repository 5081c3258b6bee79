/* tokmark.c — the tokmark command-line tool: a subcommand dispatcher.
 *
 * Each command lives in tools/cmd_<name>.h (see tools/cli.h for how to add
 * one) and is listed in `commands` below.  Uses only <tokmark.h>. */
#include "cli.h"

#include "cmd_keygen.h"
#include "cmd_keyinfo.h"
#include "cmd_demo.h"
#include "cmd_tokenize.h"
#include "cmd_scan.h"
#include "cmd_lm.h"
#include "cmd_generate.h"
#include "cmd_report.h"

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *help;
} command;

static const command commands[] = {
    {"keygen", "create a key file (a profile: secret key and parameters)", cmd_keygen,
     cmd_keygen_help},
    {"keyinfo", "show the key ID and parameters of key files (never the key)", cmd_keyinfo,
     cmd_keyinfo_help},
    {"compat-detect", "score ids with a compatibility profile (transformers, lm-watermarking, synthid-text)", cmd_compat_detect, cmd_compat_detect_help},
    {"demo", "the main job end to end: reference LM, demo key, sample corpus, scan", cmd_demo,
     cmd_demo_help},
    {"tokenize", "text to token ids (tiktoken encodings, token-exact)", cmd_tokenize, cmd_tokenize_help},
    {"detokenize", "token ids back to text", cmd_detokenize, cmd_detokenize_help},
    {"scan", "look for the watermark in files, datasets and suspect-model outputs", cmd_scan, cmd_scan_help},
    {"merge", "combine partial scan results into one exact result", cmd_merge, cmd_merge_help},
    {"filter", "build a context filter from the provider's outputs (filter build)", cmd_filter, cmd_filter_help},
    {"lm", "train, describe and evaluate the reference n-gram language model", cmd_lm, cmd_lm_help},
    {"generate", "generate text with the reference model, watermark embedded", cmd_generate, cmd_generate_help},
    {"report", "signed audit report of a scan (JSON, PDF, signatures); report verify", cmd_report, cmd_report_help},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void main_usage(FILE *f) {
    fprintf(f, "usage: tokmark COMMAND [OPTIONS] [ARGS]\n"
               "       tokmark COMMAND --help\n"
               "       tokmark --help | --version\n"
               "\n"
               "Keyed watermarking of language-model output (tokmark %s, spec %s).\n"
               "\n"
               "Commands:\n",
            tokmark_version_string(), tokmark_spec_version());
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n"
               "Exit status:\n"
               "  0  success\n"
               "  1  any other failure (out of memory, cryptography, writing output)\n"
               "  2  bad command line or parameter value\n"
               "  3  a file could not be read or written, is malformed (reported as\n"
               "     FILE:LINE), is a key file readable by group or others, or exists\n"
               "     already\n"
               "scan and merge have their own (see tokmark scan --help): 0 no watermark\n"
               "found, 1 found (with --exit-status), 2 usage, 3 file, 4 bad input\n"
               "(--strict), 5 internal.\n");
}

static const command *find_command(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* Flush stdout and turn a write error (full disk, closed pipe) into EXIT_FAIL. */
static int finish(int rc) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tokmark: error writing output: %s\n", strerror(errno));
        return rc == EXIT_OK ? EXIT_FAIL : rc;
    }
    return rc;
}

int main(int argc, char **argv) {
    int err = tokmark_init();
    if (err != TOKMARK_OK) {
        fprintf(stderr, "tokmark: cannot initialise: %s\n", tokmark_error_message(err));
        return EXIT_FAIL;
    }
    if (argc < 2) {
        main_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        main_usage(stdout);
        return finish(EXIT_OK);
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf("tokmark %s (spec %s, AES backend %s)\n", tokmark_version_string(),
               tokmark_spec_version(), tokmark_backend_name());
        return finish(EXIT_OK);
    }
    if (strcmp(name, "help") == 0) {
        if (argc < 3) {
            main_usage(stdout);
            return finish(EXIT_OK);
        }
        const command *c = find_command(argv[2]);
        if (c == NULL) {
            fprintf(stderr, "tokmark: unknown command '%s' (see 'tokmark --help')\n", argv[2]);
            return EXIT_USAGE;
        }
        fputs(c->help, stdout);
        return finish(EXIT_OK);
    }
    if (name[0] == '-') {
        fprintf(stderr, "tokmark: unknown option '%s' (see 'tokmark --help')\n", name);
        return EXIT_USAGE;
    }
    const command *c = find_command(name);
    if (c == NULL) {
        fprintf(stderr, "tokmark: unknown command '%s' (see 'tokmark --help')\n", name);
        return EXIT_USAGE;
    }
    static char prefix[64];
    snprintf(prefix, sizeof prefix, "tokmark %s", c->name);
    cli_command = prefix;
    return finish(c->run(argc - 1, argv + 1));
}
