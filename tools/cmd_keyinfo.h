/* cmd_keyinfo.h — `tokmark keyinfo`: show the public part of key files. */
#ifndef TOKMARK_CMD_KEYINFO_H
#define TOKMARK_CMD_KEYINFO_H

#include "cli.h"
#include "cmd_compat.h"

static const char cmd_keyinfo_help[] =
    "usage: tokmark keyinfo [--force] FILE...\n"
    "\n"
    "Print every profile of each key file: its key ID and parameters as\n"
    "\"name value\" lines (the key itself is never printed).  Each profile starts\n"
    "with a line \"# FILE: profile I of N\"; profiles are separated by an empty line.\n"
    "\n"
    "  --force      read a key file even if group or others may read it\n"
    "  -h, --help   this help\n";

enum { KI_FORCE = 1, KI_HELP };

static const cli_opt keyinfo_opts[] = {
    {"force", 0, 0, KI_FORCE},
    {"help", 'h', 0, KI_HELP},
    {NULL, 0, 0, 0},
};

static int cmd_keyinfo(int argc, char **argv) {
    cli_args a;
    cli_args_init(&a, argc, argv);
    unsigned flags = 0;
    const char **files = (const char **)calloc((size_t)argc, sizeof *files);
    size_t nfiles = 0;
    int rc = EXIT_USAGE;
    if (files == NULL) {
        cli_error("out of memory");
        return EXIT_FAIL;
    }
    const char *val;
    int id;
    while ((id = cli_next(&a, keyinfo_opts, &val)) != CLI_END) {
        switch (id) {
        case CLI_ERR: goto out;
        case CLI_POS: files[nfiles++] = val; break;
        case KI_HELP:
            fputs(cmd_keyinfo_help, stdout);
            rc = EXIT_OK;
            goto out;
        case KI_FORCE: flags |= TOKMARK_LOAD_FORCE; break;
        default: cli_usage_error("internal error: option %d", id); goto out;
        }
    }
    if (nfiles == 0) {
        cli_usage_error("missing FILE: the key file to show");
        goto out;
    }
    rc = EXIT_OK;
    int printed = 0;
    for (size_t f = 0; f < nfiles; f++) {
        tokmark_keyring *ring = NULL;
        size_t line = 0;
        int err = tokmark_keyring_new(&ring);
        if (err == TOKMARK_OK) err = tokmark_keyring_load(ring, files[f], flags, &line);
        if (err == TOKMARK_ERR_UNSUPPORTED) { /* a compatibility profile (tools/cmd_compat.h) */
            int code = compat_keyinfo(files[f], flags, &printed);
            if (rc == EXIT_OK) rc = code;
            tokmark_keyring_free(ring);
            continue;
        }
        if (err != TOKMARK_OK) {
            int code = cli_file_error(files[f], err, line, errno,
                                      err == TOKMARK_ERR_PERMISSIONS
                                          ? "run 'chmod 600' on it, or pass --force to read it anyway"
                                          : NULL);
            if (rc == EXIT_OK) rc = code;
            tokmark_keyring_free(ring);
            continue;
        }
        size_t n = tokmark_keyring_size(ring);
        for (size_t i = 0; i < n; i++) {
            printf("%s# %s: profile %zu of %zu\n", printed ? "\n" : "", files[f], i + 1, n);
            if (cli_print_profile(stdout, tokmark_keyring_get(ring, i), 0, 0) != 0) {
                cli_error("out of memory");
                rc = EXIT_FAIL;
                break;
            }
            printed = 1;
        }
        tokmark_keyring_free(ring);
    }
out:
    free(files);
    return rc;
}

#endif
