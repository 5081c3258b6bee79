/* test_cli_tokenize.c — `tokmark tokenize` and `tokmark detokenize` (SPEC.md
 * §9, tools/cmd_tokenize.h): the tool's ids equal the library's encode, for a
 * FILE, for standard input ('-' and no FILE) and for JSON Lines; malformed
 * input is reported as FILE:LINE with exit status 3; detokenize gives the
 * bytes back; exit statuses as `tokmark --help` lists them.  The tool is
 * build/tokmark next to this binary (built by `make test`), run with
 * posix_spawn.  Needs the rank files of scripts/fetch-tokenizers.sh. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "cliutil.h"

#include <jansson.h>

#include "tokmark.h"

static tokmark_tokenizer *g_cl100k;

/* A multilingual text with the usual hard cases: BOM, CJK, emoji with ZWJ and
 * skin tone, combining marks, right-to-left, runs of spaces and digits,
 * CR LF, a NUL byte, and the spelling of a special token. */
static const char k_text[] = "\xef\xbb\xbfHello, world! It's   12345678 tokens.\r\n"
                             "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\x96\x87 "
                             "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd "
                             "e\xcc\x81 \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d <|endoftext|> tail\x00zero\n\n";
#define K_TEXT_LEN (sizeof k_text - 1)

static char *tool_stdout(size_t *len) { return read_bytes("stdout", len); }
static char *tool_stderr(void) { return read_bytes("stderr", NULL); }

static void expect_empty_stderr(void) {
    char *e = tool_stderr();
    if (e[0] != '\0') fail_msg("unexpected stderr: %s", e);
    free(e);
}

/* stderr contains every one of the NULL-terminated needles. */
static void expect_stderr_has(const char *const *needles) {
    char *e = tool_stderr();
    for (size_t i = 0; needles[i] != NULL; i++)
        if (strstr(e, needles[i]) == NULL) fail_msg("stderr lacks \"%s\": %s", needles[i], e);
    free(e);
}

/* The library's ids of s[0..n) with cl100k_base. */
static int32_t *lib_encode(const char *s, size_t n, unsigned flags, size_t *count) {
    size_t need = 0;
    assert_int_equal(tokmark_tokenizer_encode(g_cl100k, s, n, NULL, 0, &need, flags), TOKMARK_OK);
    int32_t *ids = (int32_t *)malloc((need + 1) * sizeof *ids);
    assert_non_null(ids);
    assert_int_equal(tokmark_tokenizer_encode(g_cl100k, s, n, ids, need, count, flags), TOKMARK_OK);
    assert_int_equal(*count, need);
    return ids;
}

/* The tool's plain output, "ID ID ... ID\n", equals ids[0..n). */
static void expect_plain_ids(const char *out, const int32_t *ids, size_t n) {
    const char *p = out;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            if (*p != ' ') fail_msg("token %zu: expected a space, got '%.10s'", i, p);
            p++;
        }
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v != ids[i]) fail_msg("token %zu: tool says '%.10s', library %d", i, p, ids[i]);
        p = end;
    }
    if (strcmp(p, "\n") != 0) fail_msg("after %zu ids: expected the end of the line, got '%.20s'", n, p);
}

/* A JSON output line {"ids": [...]} equals ids[0..n). */
static void expect_json_ids(const char *line, size_t len, const int32_t *ids, size_t n) {
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    if (o == NULL) fail_msg("output line is not JSON (%s): %.*s", jerr.text, (int)len, line);
    json_t *arr = json_object_get(o, "ids");
    assert_true(json_is_array(arr));
    assert_int_equal(json_object_size(o), 1);
    assert_int_equal(json_array_size(arr), n);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        assert_true(json_is_integer(v));
        assert_int_equal(json_integer_value(v), ids[i]);
    }
    json_decref(o);
}

/* The next line of *p (without its '\n'); NULL at the end. */
static const char *next_line(const char **p, size_t *len) {
    if (**p == '\0') return NULL;
    const char *s = *p, *nl = strchr(s, '\n');
    assert_non_null(nl); /* every output line ends with '\n' */
    *len = (size_t)(nl - s);
    *p = nl + 1;
    return s;
}

/* ------------------------------------------------------------------------ */
/* tokenize                                                                  */
/* ------------------------------------------------------------------------ */

static void test_tokenize_file(void **state) {
    (void)state;
    write_bytes("text.txt", k_text, K_TEXT_LEN);
    char path[512];
    path_in(path, sizeof path, "text.txt");
    static const unsigned flag_sets[2] = {0, TOKMARK_ENCODE_ALLOW_SPECIAL};
    for (int k = 0; k < 2; k++) {
        const char *args[] = {"tokenize", "--tokenizer", "cl100k_base", path, k ? "--allow-special" : NULL, NULL};
        assert_int_equal(run_tool(NULL, args), 0);
        expect_empty_stderr();
        size_t n = 0, olen = 0;
        int32_t *ids = lib_encode(k_text, K_TEXT_LEN, flag_sets[k], &n);
        assert_true(n > 30);
        char *out = tool_stdout(&olen);
        expect_plain_ids(out, ids, n);
        /* the special token is ordinary text unless --allow-special */
        int has_special = 0;
        for (size_t i = 0; i < n; i++) has_special |= ids[i] == 100257;
        assert_int_equal(has_special, k);
        free(out);
        free(ids);
    }
    /* an empty file: no ids, one empty line */
    write_bytes("empty.txt", "", 0);
    path_in(path, sizeof path, "empty.txt");
    assert_int_equal(run_tool(NULL, (const char *[]){"tokenize", "--tokenizer", "cl100k_base", path, NULL}), 0);
    char *out = tool_stdout(NULL);
    assert_string_equal(out, "\n");
    free(out);
}

static void test_tokenize_stdin(void **state) {
    (void)state;
    write_bytes("in.txt", k_text, K_TEXT_LEN);
    size_t n = 0;
    int32_t *ids = lib_encode(k_text, K_TEXT_LEN, 0, &n);
    /* "-" and no FILE both read standard input */
    for (int k = 0; k < 2; k++) {
        const char *args[] = {"tokenize", "--tokenizer=cl100k_base", k ? "-" : NULL, NULL};
        assert_int_equal(run_tool("in.txt", args), 0);
        expect_empty_stderr();
        char *out = tool_stdout(NULL);
        expect_plain_ids(out, ids, n);
        free(out);
    }
    free(ids);
}

static void test_tokenize_invalid_utf8(void **state) {
    (void)state;
    static const char bad[] = "ok \xff then \xe6\x97 cut";
    write_bytes("bad.txt", bad, sizeof bad - 1);
    char path[512];
    path_in(path, sizeof path, "bad.txt");
    assert_int_equal(run_tool(NULL, (const char *[]){"tokenize", "--tokenizer", "cl100k_base", path, NULL}), 3);
    expect_stderr_has((const char *[]){path, "UTF-8", "byte offset 3", NULL});
    char *out = tool_stdout(NULL);
    assert_string_equal(out, ""); /* nothing printed for a rejected text */
    free(out);
    const char *args[] = {"tokenize", "--tokenizer", "cl100k_base", "--replace-invalid", path, NULL};
    assert_int_equal(run_tool(NULL, args), 0);
    size_t n = 0;
    int32_t *ids = lib_encode(bad, sizeof bad - 1, TOKMARK_ENCODE_REPLACE_INVALID, &n);
    out = tool_stdout(NULL);
    expect_plain_ids(out, ids, n);
    free(out);
    free(ids);
}

static void test_tokenize_jsonl(void **state) {
    (void)state;
    /* texts with JSON escapes, non-ASCII, an embedded NUL and an empty one */
    static const char in[] = "{\"text\": \"Hello, world!\"}\n"
                             "{\"id\": 7, \"text\": \"line\\nbreak \\u00e9t\\u00e9 \\ud83d\\udc4d \\\"q\\\"\"}\n"
                             "{\"text\": \"\"}\n"
                             "{\"text\": \"nul\\u0000inside <|endoftext|>\"}\n"
                             "{\"text\": \"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e no newline at the end\"}";
    static const char *const texts[] = {"Hello, world!", "line\nbreak \xc3\xa9t\xc3\xa9 \xf0\x9f\x91\x8d \"q\"", "",
                                        "nul\0inside <|endoftext|>",
                                        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e no newline at the end"};
    static const size_t lens[] = {13, 25, 0, 24, 31};
    write_bytes("in.jsonl", in, sizeof in - 1);
    char path[512];
    path_in(path, sizeof path, "in.jsonl");
    for (int k = 0; k < 3; k++) {
        /* k = 0: FILE; 1: standard input; 2: FILE with --allow-special */
        const char *args[] = {"tokenize", "--jsonl", "--tokenizer", "cl100k_base", k == 1 ? "-" : path,
                              k == 2 ? "--allow-special" : NULL, NULL};
        assert_int_equal(run_tool(k == 1 ? "in.jsonl" : NULL, args), 0);
        expect_empty_stderr();
        char *out = tool_stdout(NULL);
        const char *p = out, *line;
        size_t len, i = 0;
        while ((line = next_line(&p, &len)) != NULL) {
            assert_true(i < 5);
            size_t n = 0;
            int32_t *ids = lib_encode(texts[i], lens[i], k == 2 ? TOKMARK_ENCODE_ALLOW_SPECIAL : 0, &n);
            expect_json_ids(line, len, ids, n);
            free(ids);
            i++;
        }
        assert_int_equal(i, 5);
        free(out);
    }
}

/* A malformed record stops the command: the lines before it are printed, the
 * error names FILE:LINE, and the exit status is 3. */
static void test_tokenize_jsonl_errors(void **state) {
    (void)state;
    static const char *const bad_lines[] = {
        "{\"text\": \"unterminated}\n",  /* not JSON */
        "{\"txt\": \"wrong key\"}\n",    /* no "text" */
        "{\"text\": 42}\n",              /* not a string */
        "[\"text\", \"an array\"]\n",    /* not an object */
        "\n",                            /* an empty line */
        "{\"text\": \"a\"} {\"text\": \"b\"}\n", /* two values on one line */
        "{\"text\": \"\xff\"}\n",        /* ill-formed UTF-8 inside JSON */
    };
    char path[512];
    path_in(path, sizeof path, "bad.jsonl");
    for (size_t b = 0; b < sizeof bad_lines / sizeof bad_lines[0]; b++) {
        char buf[256];
        int w = snprintf(buf, sizeof buf, "{\"text\": \"first\"}\n{\"text\": \"second\"}\n%s{\"text\": \"after\"}\n",
                         bad_lines[b]);
        assert_true(w > 0 && (size_t)w < sizeof buf);
        write_bytes("bad.jsonl", buf, (size_t)w);
        const char *args[] = {"tokenize", "--jsonl", "--tokenizer", "cl100k_base", path, NULL};
        int rc = run_tool(NULL, args);
        if (rc != 3) fail_msg("bad line %zu: exit status %d, want 3", b, rc);
        char where[600];
        snprintf(where, sizeof where, "%s:3:", path);
        expect_stderr_has((const char *[]){where, "{\"text\": \"...\"}", NULL});
        char *out = tool_stdout(NULL);
        const char *p = out, *line;
        size_t len, i = 0;
        while ((line = next_line(&p, &len)) != NULL) {
            size_t n = 0;
            int32_t *ids = lib_encode(i == 0 ? "first" : "second", i == 0 ? 5 : 6, 0, &n);
            expect_json_ids(line, len, ids, n);
            free(ids);
            i++;
        }
        if (i != 2) fail_msg("bad line %zu: %zu output lines, want the 2 before it", b, i);
        free(out);
    }
    /* from standard input the error names "(stdin)" */
    assert_int_equal(run_tool("bad.jsonl", (const char *[]){"tokenize", "--jsonl", "--tokenizer", "cl100k_base", NULL}),
                     3);
    expect_stderr_has((const char *[]){"(stdin):3:", NULL});
}

/* ------------------------------------------------------------------------ */
/* detokenize                                                                */
/* ------------------------------------------------------------------------ */

static void test_detokenize_round_trip(void **state) {
    (void)state;
    write_bytes("text.txt", k_text, K_TEXT_LEN);
    char text_path[512], ids_path[512];
    path_in(text_path, sizeof text_path, "text.txt");
    path_in(ids_path, sizeof ids_path, "ids.txt");
    for (int k = 0; k < 2; k++) {
        const char *args[] = {"tokenize", "--tokenizer", "cl100k_base", text_path, k ? "--allow-special" : NULL,
                              NULL};
        assert_int_equal(run_tool(NULL, args), 0);
        size_t olen = 0;
        char *ids = tool_stdout(&olen);
        write_bytes("ids.txt", ids, olen);
        free(ids);
        /* from a FILE and from standard input */
        for (int s = 0; s < 2; s++) {
            const char *dargs[] = {"detokenize", "--tokenizer", "cl100k_base", s ? "-" : ids_path, NULL};
            assert_int_equal(run_tool(s ? "ids.txt" : NULL, dargs), 0);
            expect_empty_stderr();
            size_t dlen = 0;
            char *back = tool_stdout(&dlen);
            assert_int_equal(dlen, K_TEXT_LEN);
            assert_memory_equal(back, k_text, K_TEXT_LEN);
            free(back);
        }
    }
    /* ids separated by any white space, across lines */
    write_bytes("ids2.txt", "9906 11\n\t1917  0\r\n", 18);
    path_in(ids_path, sizeof ids_path, "ids2.txt");
    assert_int_equal(run_tool(NULL, (const char *[]){"detokenize", "--tokenizer", "cl100k_base", ids_path, NULL}), 0);
    char *out = tool_stdout(NULL);
    assert_string_equal(out, "Hello, world!");
    free(out);
}

static void test_detokenize_jsonl(void **state) {
    (void)state;
    /* tokenize --jsonl, then detokenize --jsonl: the texts come back */
    static const char in[] = "{\"text\": \"Hello, world!\"}\n"
                             "{\"text\": \"\\u65e5\\u672c\\u8a9e \\ud83d\\udc69\\u200d\\ud83d\\udcbb\"}\n"
                             "{\"text\": \"\"}\n";
    write_bytes("in.jsonl", in, sizeof in - 1);
    char path[512];
    path_in(path, sizeof path, "in.jsonl");
    assert_int_equal(run_tool(NULL, (const char *[]){"tokenize", "--jsonl", "--tokenizer", "cl100k_base", path, NULL}),
                     0);
    size_t olen = 0;
    char *ids = tool_stdout(&olen);
    write_bytes("ids.jsonl", ids, olen);
    free(ids);
    path_in(path, sizeof path, "ids.jsonl");
    assert_int_equal(
        run_tool(NULL, (const char *[]){"detokenize", "--jsonl", "--tokenizer", "cl100k_base", path, NULL}), 0);
    expect_empty_stderr();
    char *out = tool_stdout(NULL);
    static const char *const want[] = {"Hello, world!",
                                       "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb",
                                       ""};
    const char *p = out, *line;
    size_t len, i = 0;
    while ((line = next_line(&p, &len)) != NULL) {
        assert_true(i < 3);
        json_error_t jerr;
        json_t *o = json_loadb(line, len, 0, &jerr);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "text")), want[i]);
        json_decref(o);
        i++;
    }
    assert_int_equal(i, 3);
    free(out);
    /* bytes that are not whole UTF-8 characters come back as hex: the token of
     * the single byte E6 (found through the library) */
    int32_t e6 = -1;
    for (int32_t id = 0; id < 100256 && e6 < 0; id++) {
        size_t l = 0;
        const uint8_t *b = tokmark_tokenizer_token_bytes(g_cl100k, id, &l);
        if (b != NULL && l == 1 && b[0] == 0xE6) e6 = id;
    }
    assert_true(e6 >= 0);
    char line_buf[64];
    int w = snprintf(line_buf, sizeof line_buf, "{\"ids\": [%d, 64]}\n", e6); /* 64 is "a" */
    write_bytes("split.jsonl", line_buf, (size_t)w);
    path_in(path, sizeof path, "split.jsonl");
    assert_int_equal(
        run_tool(NULL, (const char *[]){"detokenize", "--jsonl", "--tokenizer", "cl100k_base", path, NULL}), 0);
    out = tool_stdout(NULL);
    assert_string_equal(out, "{\"hex\":\"e661\"}\n");
    free(out);
}

static void test_detokenize_errors(void **state) {
    (void)state;
    char path[512];
    path_in(path, sizeof path, "bad-ids.txt");
    /* 100256 is below the vocabulary size but no token (SPEC.md §9.2) */
    write_bytes("bad-ids.txt", "9906 100256 11\n", 15);
    assert_int_equal(run_tool(NULL, (const char *[]){"detokenize", "--tokenizer", "cl100k_base", path, NULL}), 3);
    expect_stderr_has((const char *[]){path, "100256", "not a token", NULL});
    write_bytes("bad-ids.txt", "9906 eleven\n", 12);
    assert_int_equal(run_tool(NULL, (const char *[]){"detokenize", "--tokenizer", "cl100k_base", path, NULL}), 3);
    expect_stderr_has((const char *[]){path, "eleven", NULL});
    write_bytes("bad-ids.txt", "9906 -1\n", 8);
    assert_int_equal(run_tool(NULL, (const char *[]){"detokenize", "--tokenizer", "cl100k_base", path, NULL}), 3);
    write_bytes("bad-ids.txt", "9906 11x\n", 9);
    assert_int_equal(run_tool(NULL, (const char *[]){"detokenize", "--tokenizer", "cl100k_base", path, NULL}), 3);
    /* JSON Lines: FILE:LINE */
    write_bytes("bad-ids.txt", "{\"ids\": [9906]}\n{\"ids\": [1, \"x\"]}\n", 35);
    assert_int_equal(
        run_tool(NULL, (const char *[]){"detokenize", "--jsonl", "--tokenizer", "cl100k_base", path, NULL}), 3);
    char where[600];
    snprintf(where, sizeof where, "%s:2:", path);
    expect_stderr_has((const char *[]){where, NULL});
    char *out = tool_stdout(NULL);
    assert_string_equal(out, "{\"text\":\"Hello\"}\n"); /* the line before it */
    free(out);
    write_bytes("bad-ids.txt", "{\"ids\": [9906]}\n{\"ids\": [100261]}\n", 34);
    assert_int_equal(
        run_tool(NULL, (const char *[]){"detokenize", "--jsonl", "--tokenizer", "cl100k_base", path, NULL}), 3);
    expect_stderr_has((const char *[]){where, "100261", "not a token", NULL});
}

/* ------------------------------------------------------------------------ */
/* command line and exit statuses                                            */
/* ------------------------------------------------------------------------ */

static void test_exit_statuses(void **state) {
    (void)state;
    /* the statuses as `tokmark --help` documents them */
    assert_int_equal(run_tool(NULL, (const char *[]){"--help", NULL}), 0);
    char *help = tool_stdout(NULL);
    assert_non_null(strstr(help, "tokenize"));
    assert_non_null(strstr(help, "2  bad command line or parameter value"));
    assert_non_null(strstr(help, "3  a file could not be read"));
    free(help);
    write_bytes("t.txt", "hi", 2);
    char path[512];
    path_in(path, sizeof path, "t.txt");
    /* an unknown tokenizer name is a bad parameter value: 2 */
    for (int k = 0; k < 2; k++) {
        const char *cmd = k ? "detokenize" : "tokenize";
        assert_int_equal(run_tool(NULL, (const char *[]){cmd, "--tokenizer", "gpt5_base", path, NULL}), 2);
        expect_stderr_has((const char *[]){"unknown tokenizer", "gpt5_base", NULL});
        char *out = tool_stdout(NULL);
        assert_string_equal(out, "");
        free(out);
        /* no --tokenizer, an unknown option, two FILEs: 2 */
        assert_int_equal(run_tool(NULL, (const char *[]){cmd, path, NULL}), 2);
        expect_stderr_has((const char *[]){"--tokenizer", NULL});
        assert_int_equal(run_tool(NULL, (const char *[]){cmd, "--tokenizer", "cl100k_base", "--bogus", path, NULL}),
                         2);
        assert_int_equal(run_tool(NULL, (const char *[]){cmd, "--tokenizer", "cl100k_base", path, path, NULL}), 2);
        /* a missing FILE, or a tokenizer path that does not exist: 3 */
        char none[512];
        path_in(none, sizeof none, "none.txt");
        assert_int_equal(run_tool(NULL, (const char *[]){cmd, "--tokenizer", "cl100k_base", none, NULL}), 3);
        expect_stderr_has((const char *[]){none, NULL});
        path_in(none, sizeof none, "none.tiktoken");
        assert_int_equal(run_tool(NULL, (const char *[]){cmd, "--tokenizer", none, path, NULL}), 3);
        expect_stderr_has((const char *[]){none, NULL});
        /* --help: 0 */
        assert_int_equal(run_tool(NULL, (const char *[]){cmd, "--help", NULL}), 0);
        out = tool_stdout(NULL);
        assert_non_null(strstr(out, "--tokenizer NAME|PATH"));
        free(out);
    }
    /* a rank file that is not one: 3, with the line at fault */
    char dir[512], rank[600];
    path_in(dir, sizeof dir, "ranks");
    assert_int_equal(mkdir(dir, 0700), 0);
    write_bytes("ranks/cl100k_base.tiktoken", "IQ== 0\nIg== x\n", 15);
    snprintf(rank, sizeof rank, "%s/cl100k_base.tiktoken", dir);
    assert_int_equal(run_tool(NULL, (const char *[]){"tokenize", "--tokenizer", rank, "--jsonl", path, NULL}), 3);
    char where[700];
    snprintf(where, sizeof where, "%s:2:", rank);
    expect_stderr_has((const char *[]){where, NULL});
    /* a rank file whose encoding cannot be told (neither an official file nor
     * named after an encoding): TOKMARK_ERR_UNSUPPORTED, "any other failure" 1,
     * with a hint */
    write_bytes("ranks/mine.tiktoken", "IQ== 0\n", 7);
    snprintf(rank, sizeof rank, "%s/mine.tiktoken", dir);
    assert_int_equal(run_tool(NULL, (const char *[]){"tokenize", "--tokenizer", rank, path, NULL}), 1);
    expect_stderr_has((const char *[]){rank, "cannot tell the encoding", NULL});
}

/* ------------------------------------------------------------------------ */

static int setup_all(void **state) {
    (void)state;
    if (tokmark_init() != TOKMARK_OK) return -1;
    int rc = tokmark_tokenizer_load(&g_cl100k, "cl100k_base", NULL);
    if (rc != TOKMARK_OK) {
        fprintf(stderr, "test_cli_tokenize: cannot load cl100k_base (%s); run sh scripts/fetch-tokenizers.sh\n",
                tokmark_error_name(rc));
        return -1;
    }
    if (access(g_tool, X_OK) != 0) {
        fprintf(stderr, "test_cli_tokenize: %s: %s (build it with make)\n", g_tool, strerror(errno));
        return -1;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/tokmark-clitok-XXXXXX");
    if (mkdtemp(g_dir) == NULL) return -1;
    return 0;
}

static int teardown_all(void **state) {
    (void)state;
    tokmark_tokenizer_free(g_cl100k);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] != '\0' && system(cmd) != 0) return -1;
    return 0;
}

int main(int argc, char **argv) {
    (void)argc;
    cu_find_tool(argv[0]); /* build/tests/test_cli_tokenize -> build/tokmark */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenize_file),          cmocka_unit_test(test_tokenize_stdin),
        cmocka_unit_test(test_tokenize_invalid_utf8),  cmocka_unit_test(test_tokenize_jsonl),
        cmocka_unit_test(test_tokenize_jsonl_errors),  cmocka_unit_test(test_detokenize_round_trip),
        cmocka_unit_test(test_detokenize_jsonl),       cmocka_unit_test(test_detokenize_errors),
        cmocka_unit_test(test_exit_statuses),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
