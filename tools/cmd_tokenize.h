/* cmd_tokenize.h — `tokmark tokenize` and `tokmark detokenize`: text to token
 * ids and back with a built-in or file tokenizer (SPEC.md §9). */
#ifndef TOKMARK_CMD_TOKENIZE_H
#define TOKMARK_CMD_TOKENIZE_H

#include "cli.h"

#include <jansson.h>

static const char cmd_tokenize_help[] =
    "usage: tokmark tokenize --tokenizer NAME|PATH [--jsonl] [--allow-special]\n"
    "                        [--replace-invalid] [FILE]\n"
    "\n"
    "Token ids of a text.  Without --jsonl the whole input (FILE, or standard input\n"
    "when FILE is absent or '-') is one text and the ids are printed on one line,\n"
    "separated by spaces.  With --jsonl every input line is a JSON object\n"
    "{\"text\": \"...\"} and becomes an output line {\"ids\": [...]}; a line that is\n"
    "not such an object stops the command with FILE:LINE and exit status 3 (the\n"
    "lines before it have been written).\n"
    "\n"
    "  --tokenizer NAME|PATH  cl100k_base, o200k_base, p50k_base, r50k_base, or a\n"
    "                         .tiktoken rank file\n"
    "  --jsonl                JSON Lines in and out\n"
    "  --allow-special        text spelling a special token (<|endoftext|>) is that\n"
    "                         token; by default it is ordinary text\n"
    "  --replace-invalid      ill-formed UTF-8 becomes U+FFFD; by default it is an error\n"
    "  -h, --help             this help\n";

static const char cmd_detokenize_help[] =
    "usage: tokmark detokenize --tokenizer NAME|PATH [--jsonl] [FILE]\n"
    "\n"
    "The reverse of 'tokmark tokenize'.  Without --jsonl the input is token ids\n"
    "separated by white space and the bytes they stand for are written out.  With\n"
    "--jsonl every input line {\"ids\": [...]} becomes {\"text\": \"...\"}, or\n"
    "{\"hex\": \"...\"} when the bytes are not well-formed UTF-8.\n"
    "\n"
    "  --tokenizer NAME|PATH  as for tokenize\n"
    "  --jsonl                JSON Lines in and out\n"
    "  -h, --help             this help\n";

enum { TK_TOKENIZER = 1, TK_JSONL, TK_SPECIAL, TK_REPLACE, TK_HELP };

static const cli_opt tokenize_opts[] = {
    {"tokenizer", 0, 1, TK_TOKENIZER}, {"jsonl", 0, 0, TK_JSONL},
    {"allow-special", 0, 0, TK_SPECIAL}, {"replace-invalid", 0, 0, TK_REPLACE},
    {"help", 'h', 0, TK_HELP},         {NULL, 0, 0, 0},
};

static const cli_opt detokenize_opts[] = {
    {"tokenizer", 0, 1, TK_TOKENIZER}, {"jsonl", 0, 0, TK_JSONL}, {"help", 'h', 0, TK_HELP}, {NULL, 0, 0, 0},
};

/* Load a tokenizer, reporting failures; returns the exit code. */
static int tk_load(tokmark_tokenizer **t, const char *name) {
    size_t line = 0;
    int err = tokmark_tokenizer_load(t, name, &line);
    if (err == TOKMARK_OK) return EXIT_OK;
    int err_no = errno;
    if (err == TOKMARK_ERR_NOT_FOUND) {
        cli_error("unknown tokenizer '%s' (built in: cl100k_base, o200k_base, p50k_base, r50k_base)", name);
        return EXIT_USAGE;
    }
    const char *hint = NULL;
    if (strchr(name, '/') == NULL && strchr(name, '.') == NULL)
        hint = err == TOKMARK_ERR_FORMAT ? "not the official rank file; run scripts/fetch-tokenizers.sh"
                                         : "rank file not installed; run scripts/fetch-tokenizers.sh, or set "
                                           "TOKMARK_DATA_DIR";
    else if (err == TOKMARK_ERR_UNSUPPORTED)
        hint = "cannot tell the encoding: name the file after it, e.g. cl100k_base.tiktoken";
    return cli_file_error(name, err, line, err_no, hint);
}

/* All of a stream into a malloc'd buffer. */
static char *tk_slurp(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *b = (char *)malloc(cap);
    while (b != NULL) {
        if (n == cap) {
            char *nb = (char *)realloc(b, cap * 2);
            if (nb == NULL) break;
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) break;
            *len = n;
            return b;
        }
    }
    free(b);
    return NULL;
}

static FILE *tk_open(const char *file) {
    if (file == NULL || strcmp(file, "-") == 0) return stdin;
    return fopen(file, "rb");
}

/* Encode into a growing buffer; returns the library error. */
static int tk_encode(tokmark_tokenizer_encoder *e, const char *s, size_t n, int32_t **ids, size_t *cap,
                     size_t *count, unsigned flags) {
    int err = tokmark_tokenizer_encoder_encode(e, s, n, *ids, *cap, count, flags);
    if (err != TOKMARK_OK || *count <= *cap) return err;
    int32_t *nb = (int32_t *)realloc(*ids, *count * sizeof **ids);
    if (nb == NULL) return TOKMARK_ERR_NOMEM;
    *ids = nb;
    *cap = *count;
    return tokmark_tokenizer_encoder_encode(e, s, n, *ids, *cap, count, flags);
}

static int tk_encode_error(const char *where, size_t lineno, int err, size_t off) {
    if (err == TOKMARK_ERR_INVALID) {
        if (lineno > 0) cli_error("%s:%zu: text is not well-formed UTF-8 at byte %zu (--replace-invalid turns "
                                  "it into U+FFFD)", where, lineno, off);
        else cli_error("%s: not well-formed UTF-8 at byte offset %zu (--replace-invalid turns it into U+FFFD)",
                       where, off);
        return EXIT_FILE;
    }
    cli_error("%s: %s", where, tokmark_error_message(err));
    return cli_exit_code(err);
}

static int cmd_tokenize(int argc, char **argv) {
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *name = NULL, *file = NULL, *val;
    int jsonl = 0, id;
    unsigned flags = 0;
    while ((id = cli_next(&a, tokenize_opts, &val)) != CLI_END) {
        switch (id) {
        case CLI_ERR: return EXIT_USAGE;
        case CLI_POS:
            if (file != NULL) return cli_usage_error("more than one FILE");
            file = val;
            break;
        case TK_HELP: fputs(cmd_tokenize_help, stdout); return EXIT_OK;
        case TK_TOKENIZER: name = val; break;
        case TK_JSONL: jsonl = 1; break;
        case TK_SPECIAL: flags |= TOKMARK_ENCODE_ALLOW_SPECIAL; break;
        case TK_REPLACE: flags |= TOKMARK_ENCODE_REPLACE_INVALID; break;
        default: return cli_usage_error("internal error: option %d", id);
        }
    }
    if (name == NULL) return cli_usage_error("missing --tokenizer NAME|PATH");
    tokmark_tokenizer *t = NULL;
    int rc = tk_load(&t, name);
    if (rc != EXIT_OK) return rc;
    const char *where = file != NULL && strcmp(file, "-") != 0 ? file : "(stdin)";
    FILE *in = tk_open(file);
    tokmark_tokenizer_encoder *e = NULL;
    int32_t *ids = NULL;
    size_t cap = 0, count = 0;
    if (in == NULL) {
        rc = cli_file_error(file, TOKMARK_ERR_IO, 0, errno, NULL);
        goto out;
    }
    if (tokmark_tokenizer_encoder_create(&e, t) != TOKMARK_OK) {
        cli_error("out of memory");
        rc = EXIT_FAIL;
        goto out;
    }
    if (!jsonl) {
        size_t n = 0;
        char *s = tk_slurp(in, &n);
        if (s == NULL) {
            rc = cli_file_error(where, TOKMARK_ERR_IO, 0, errno, NULL);
            goto out;
        }
        int err = tk_encode(e, s, n, &ids, &cap, &count, flags);
        free(s);
        if (err != TOKMARK_OK) {
            rc = tk_encode_error(where, 0, err, count);
            goto out;
        }
        for (size_t i = 0; i < count; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    } else {
        char *line = NULL;
        size_t lcap = 0, lineno = 0;
        ssize_t ll;
        while ((ll = getline(&line, &lcap, in)) > 0) {
            lineno++;
            json_error_t jerr;
            json_t *o = json_loadb(line, (size_t)ll, JSON_ALLOW_NUL, &jerr);
            json_t *jt = o != NULL ? json_object_get(o, "text") : NULL;
            if (!json_is_string(jt)) {
                cli_error("%s:%zu: expected a JSON object {\"text\": \"...\"}%s%s", where, lineno,
                          o == NULL ? ": " : "", o == NULL ? jerr.text : "");
                json_decref(o);
                rc = EXIT_FILE;
                break;
            }
            int err = tk_encode(e, json_string_value(jt), json_string_length(jt), &ids, &cap, &count, flags);
            json_decref(o);
            if (err != TOKMARK_OK) {
                rc = tk_encode_error(where, lineno, err, count);
                break;
            }
            fputs("{\"ids\": [", stdout);
            for (size_t i = 0; i < count; i++) printf(i ? ", %d" : "%d", ids[i]);
            fputs("]}\n", stdout);
        }
        free(line);
        if (rc == EXIT_OK && ferror(in)) rc = cli_file_error(where, TOKMARK_ERR_IO, 0, errno, NULL);
    }
out:
    if (in != NULL && in != stdin) fclose(in);
    free(ids);
    tokmark_tokenizer_encoder_free(e);
    tokmark_tokenizer_free(t);
    return rc;
}

/* Parse one id; returns 0 on a bad one. */
static int tk_parse_id(const char *s, const char **end, int32_t *out) {
    errno = 0;
    char *e = NULL;
    long v = strtol(s, &e, 10);
    if (e == s || errno != 0 || v < 0 || v > INT32_MAX) return 0;
    *end = e;
    *out = (int32_t)v;
    return 1;
}

static int tk_decode_print(const tokmark_tokenizer *t, const int32_t *ids, size_t n, int jsonl, const char *where,
                           size_t lineno) {
    size_t len = 0;
    int err = tokmark_tokenizer_decode(t, ids, n, NULL, 0, &len);
    if (err != TOKMARK_OK) {
        cli_error("%s%s%.0zu: id %d is not a token of %s", where, lineno ? ":" : "", lineno, ids[len],
                  tokmark_tokenizer_name(t));
        return EXIT_FILE;
    }
    char *b = (char *)malloc(len + 1);
    if (b == NULL) {
        cli_error("out of memory");
        return EXIT_FAIL;
    }
    if (tokmark_tokenizer_decode(t, ids, n, b, len, &len) != TOKMARK_OK) {
        free(b);
        return EXIT_FAIL;
    }
    if (!jsonl) {
        fwrite(b, 1, len, stdout);
    } else {
        json_t *js = json_stringn(b, len); /* NULL unless well-formed UTF-8 */
        json_t *o = json_object();
        if (js != NULL) {
            json_object_set_new(o, "text", js);
        } else {
            char *hex = (char *)malloc(2 * len + 1);
            for (size_t i = 0; hex != NULL && i < len; i++) sprintf(hex + 2 * i, "%02x", (unsigned char)b[i]);
            if (hex != NULL) hex[2 * len] = '\0';
            json_object_set_new(o, "hex", json_string(hex != NULL ? hex : ""));
            free(hex);
        }
        char *dump = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (dump != NULL) printf("%s\n", dump);
        free(dump);
        json_decref(o);
    }
    free(b);
    return EXIT_OK;
}

static int cmd_detokenize(int argc, char **argv) {
    cli_args a;
    cli_args_init(&a, argc, argv);
    const char *name = NULL, *file = NULL, *val;
    int jsonl = 0, id;
    while ((id = cli_next(&a, detokenize_opts, &val)) != CLI_END) {
        switch (id) {
        case CLI_ERR: return EXIT_USAGE;
        case CLI_POS:
            if (file != NULL) return cli_usage_error("more than one FILE");
            file = val;
            break;
        case TK_HELP: fputs(cmd_detokenize_help, stdout); return EXIT_OK;
        case TK_TOKENIZER: name = val; break;
        case TK_JSONL: jsonl = 1; break;
        default: return cli_usage_error("internal error: option %d", id);
        }
    }
    if (name == NULL) return cli_usage_error("missing --tokenizer NAME|PATH");
    tokmark_tokenizer *t = NULL;
    int rc = tk_load(&t, name);
    if (rc != EXIT_OK) return rc;
    const char *where = file != NULL && strcmp(file, "-") != 0 ? file : "(stdin)";
    FILE *in = tk_open(file);
    int32_t *ids = NULL;
    if (in == NULL) {
        rc = cli_file_error(file, TOKMARK_ERR_IO, 0, errno, NULL);
        goto out;
    }
    if (!jsonl) {
        size_t n = 0;
        char *s = tk_slurp(in, &n);
        if (s == NULL) {
            rc = cli_file_error(where, TOKMARK_ERR_IO, 0, errno, NULL);
            goto out;
        }
        char *s0 = (char *)realloc(s, n + 1); /* room for the terminating NUL */
        if (s0 == NULL || (ids = (int32_t *)malloc((n / 2 + 1) * sizeof *ids)) == NULL) {
            free(s0 != NULL ? s0 : s);
            cli_error("out of memory");
            rc = EXIT_FAIL;
            goto out;
        }
        s = s0;
        s[n] = '\0';
        size_t count = 0;
        const char *p = s;
        for (;;) {
            while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
            if (*p == '\0') break;
            if (!tk_parse_id(p, &p, &ids[count]) || (*p != '\0' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')) {
                cli_error("%s: '%.20s' is not a token id", where, p);
                rc = EXIT_FILE;
                break;
            }
            count++;
        }
        free(s);
        if (rc == EXIT_OK) rc = tk_decode_print(t, ids, count, 0, where, 0);
    } else {
        char *line = NULL;
        size_t lcap = 0, lineno = 0, cap = 0;
        ssize_t ll;
        while ((ll = getline(&line, &lcap, in)) > 0) {
            lineno++;
            json_error_t jerr;
            json_t *o = json_loadb(line, (size_t)ll, 0, &jerr);
            json_t *arr = o != NULL ? json_object_get(o, "ids") : NULL;
            size_t n = json_array_size(arr);
            int ok = json_is_array(arr);
            if (ok && n > cap) {
                int32_t *nb = (int32_t *)realloc(ids, n * sizeof *ids);
                if (nb == NULL) ok = 0;
                else {
                    ids = nb;
                    cap = n;
                }
            }
            for (size_t i = 0; ok && i < n; i++) {
                json_t *v = json_array_get(arr, i);
                json_int_t x = json_integer_value(v);
                if (!json_is_integer(v) || x < 0 || x > INT32_MAX) ok = 0;
                else ids[i] = (int32_t)x;
            }
            json_decref(o);
            if (!ok) {
                cli_error("%s:%zu: expected a JSON object {\"ids\": [...]} of token ids", where, lineno);
                rc = EXIT_FILE;
                break;
            }
            rc = tk_decode_print(t, ids, n, 1, where, lineno);
            if (rc != EXIT_OK) break;
        }
        free(line);
    }
out:
    if (in != NULL && in != stdin) fclose(in);
    free(ids);
    tokmark_tokenizer_free(t);
    return rc;
}

#endif
