/* cli.h — shared helpers of the tokmark command-line tool (tools/tokmark.c).
 *
 * The tool is one translation unit: tools/tokmark.c includes this header and
 * one tools/cmd_<name>.h per subcommand, and lists the commands in its
 * dispatch table.  To add a command: write tools/cmd_<name>.h defining
 *     static int cmd_<name>(int argc, char **argv);   (argv[0] is the name)
 *     static const char cmd_<name>_help[];
 * include it in tokmark.c and add one row to `commands`.  Only the public
 * header <tokmark.h> may be used.
 */
#ifndef TOKMARK_CLI_H
#define TOKMARK_CLI_H

#include "tokmark.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define CLI_FN static __attribute__((unused))
#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLI_FN static
#define CLI_PRINTF(a, b)
#endif

/* Exit codes (documented in `tokmark --help`). */
enum {
    EXIT_OK = 0,    /* success */
    EXIT_FAIL = 1,  /* any other failure (out of memory, crypto, output error) */
    EXIT_USAGE = 2, /* bad command line or parameter value */
    EXIT_FILE = 3   /* a file could not be read or written, is malformed, is readable by
                       group/others, or exists already */
};

static const char *cli_command = "tokmark"; /* "tokmark keygen" etc., for messages */

/* "tokmark keygen: <message>" on stderr. */
CLI_FN CLI_PRINTF(1, 2) void cli_error(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", cli_command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* A usage error: the message and a pointer to the help; returns EXIT_USAGE. */
CLI_FN CLI_PRINTF(1, 2) int cli_usage_error(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", cli_command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see '%s --help')\n", cli_command);
    return EXIT_USAGE;
}

/* The exit code for a library error. */
CLI_FN int cli_exit_code(int err) {
    switch (err) {
    case TOKMARK_OK: return EXIT_OK;
    case TOKMARK_ERR_INVALID: return EXIT_USAGE;
    case TOKMARK_ERR_IO:
    case TOKMARK_ERR_FORMAT:
    case TOKMARK_ERR_PERMISSIONS:
    case TOKMARK_ERR_EXISTS:
    case TOKMARK_ERR_NOT_FOUND: return EXIT_FILE;
    default: return EXIT_FAIL;
    }
}

/* Report a failed load or save of `path`:
 *   tokmark: FILE:LINE: message      (format errors, line known)
 *   tokmark: FILE: message[: cause]  (otherwise)
 * `err_no` is errno as it was right after the call (the cause of an I/O
 * error); `hint` (may be NULL) is appended in parentheses.  Returns the exit
 * code. */
CLI_FN int cli_file_error(const char *path, int err, size_t line, int err_no, const char *hint) {
    if (err == TOKMARK_ERR_FORMAT && line > 0)
        fprintf(stderr, "tokmark: %s:%zu: %s", path, line, tokmark_error_message(err));
    else
        fprintf(stderr, "tokmark: %s: %s", path, tokmark_error_message(err));
    if (err == TOKMARK_ERR_IO && err_no != 0) fprintf(stderr, ": %s", strerror(err_no));
    if (hint != NULL) fprintf(stderr, " (%s)", hint);
    fputc('\n', stderr);
    return cli_exit_code(err);
}

/* ---- option parsing (POSIX has no getopt_long) ---- */

typedef struct cli_opt {
    const char *name; /* long name without "--" */
    char short_name;  /* 0 for none */
    int has_arg;
    int id;           /* > 0 */
} cli_opt;

typedef struct cli_args {
    int argc;
    char **argv;
    int i;        /* next argv index */
    int only_pos; /* after "--" */
} cli_args;

enum { CLI_END = 0, CLI_POS = -1, CLI_ERR = -2 };

CLI_FN void cli_args_init(cli_args *a, int argc, char **argv) {
    a->argc = argc;
    a->argv = argv;
    a->i = 1; /* argv[0] is the command name */
    a->only_pos = 0;
}

/* The next option: its id (and *val its argument), CLI_POS with *val a
 * positional argument, CLI_END, or CLI_ERR after printing a usage error.
 * Accepts --name VALUE, --name=VALUE, -x VALUE, -xVALUE and "--". */
CLI_FN int cli_next(cli_args *a, const cli_opt *opts, const char **val) {
    *val = NULL;
    if (a->i >= a->argc) return CLI_END;
    char *arg = a->argv[a->i++];
    if (a->only_pos || arg[0] != '-' || arg[1] == '\0') {
        *val = arg;
        return CLI_POS;
    }
    if (strcmp(arg, "--") == 0) {
        a->only_pos = 1;
        return cli_next(a, opts, val);
    }
    const cli_opt *o = NULL;
    const char *inline_val = NULL;
    if (arg[1] == '-') {
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t n = eq != NULL ? (size_t)(eq - name) : strlen(name);
        for (const cli_opt *p = opts; p->name != NULL; p++)
            if (strlen(p->name) == n && strncmp(p->name, name, n) == 0) o = p;
        if (o == NULL) {
            cli_usage_error("unknown option '--%.*s'", (int)n, name);
            return CLI_ERR;
        }
        if (eq != NULL) {
            if (!o->has_arg) {
                cli_usage_error("option '--%s' takes no value", o->name);
                return CLI_ERR;
            }
            inline_val = eq + 1;
        }
    } else {
        for (const cli_opt *p = opts; p->name != NULL; p++)
            if (p->short_name != 0 && p->short_name == arg[1]) o = p;
        if (o == NULL) {
            cli_usage_error("unknown option '-%c'", arg[1]);
            return CLI_ERR;
        }
        if (arg[2] != '\0') {
            if (!o->has_arg) {
                cli_usage_error("option '-%c' takes no value", arg[1]);
                return CLI_ERR;
            }
            inline_val = arg + 2;
        }
    }
    if (o->has_arg) {
        if (inline_val == NULL) {
            if (a->i >= a->argc) {
                cli_usage_error("option '--%s' needs a value", o->name);
                return CLI_ERR;
            }
            inline_val = a->argv[a->i++];
        }
        *val = inline_val;
    }
    return o->id;
}

/* ---- values ---- */

/* A decimal integer in [lo, hi]; prints a usage error and returns 0 if not. */
CLI_FN int cli_parse_u32(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    if (s == NULL || s[0] < '0' || s[0] > '9') goto bad;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) goto bad;
    *out = (uint32_t)v;
    return 1;
bad:
    cli_usage_error("%s: '%s' is not an integer from %lu to %lu", opt, s ? s : "", (unsigned long)lo,
                    (unsigned long)hi);
    return 0;
}

/* A finite decimal number; prints a usage error and returns 0 if not. */
CLI_FN int cli_parse_double(const char *opt, const char *s, double *out) {
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        cli_usage_error("%s: '%s' is not a number", opt, s);
        return 0;
    }
    *out = v;
    return 1;
}

/* Print the public description of a profile (never the key): the lines of
 * tokmark_profile_describe as they are, or with one_line as a single line
 * "name=value name=value ...".  skip_key_id leaves the key-id out.  Returns
 * 0, or -1 when out of memory. */
CLI_FN int cli_print_profile(FILE *f, const tokmark_profile *p, int one_line, int skip_key_id) {
    size_t n = tokmark_profile_describe(p, NULL, 0);
    char *buf = (char *)malloc(n + 1);
    if (buf == NULL) return -1;
    tokmark_profile_describe(p, buf, n + 1);
    int first = 1;
    for (char *line = buf; *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL) *nl = '\0';
        if (!(skip_key_id && strncmp(line, "key-id ", 7) == 0)) {
            if (one_line) {
                char *sp = strchr(line, ' ');
                if (sp != NULL) *sp = '=';
                fprintf(f, "%s%s", first ? "" : " ", line);
            } else {
                fprintf(f, "%s\n", line);
            }
            first = 0;
        }
        if (nl == NULL) break;
        line = nl + 1;
    }
    if (one_line) fputc('\n', f);
    free(buf);
    return 0;
}

#endif
