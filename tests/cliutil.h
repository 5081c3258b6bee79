/* cliutil.h — helpers of the tests that run the command-line tool
 * (build/tokmark next to the test binary) in a temporary directory. */
#ifndef TOKMARK_TESTS_CLIUTIL_H
#define TOKMARK_TESTS_CLIUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char g_dir[256];   /* temporary directory of the whole suite */
static char g_tool[1024]; /* absolute path of build/tokmark */

/* g_tool from argv[0]: build/tests/test_x -> build/tokmark (absolute). */
static inline void cu_find_tool(const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    char cwd[512];
    int w = -1;
    if (slash != NULL && getcwd(cwd, sizeof cwd) != NULL) {
        int n = (int)(slash - argv0);
        w = argv0[0] == '/' ? snprintf(g_tool, sizeof g_tool, "%.*s/../tokmark", n, argv0)
                            : snprintf(g_tool, sizeof g_tool, "%s/%.*s/../tokmark", cwd, n, argv0);
    }
    if (w < 0 || (size_t)w >= sizeof g_tool) snprintf(g_tool, sizeof g_tool, "build/tokmark");
}

static inline void path_in(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", g_dir, name); }

static inline void write_bytes(const char *name, const void *data, size_t n) {
    char path[512];
    path_in(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* The whole file g_dir/name, NUL-terminated; *len its length (len may be NULL). */
static inline char *read_bytes(const char *name, size_t *len) {
    char path[512];
    path_in(path, sizeof path, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    assert_non_null(b);
    size_t k;
    while ((k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
            assert_non_null(b);
        }
    }
    fclose(f);
    b[n] = '\0';
    if (len != NULL) *len = n;
    return b;
}

/* Run the tool in g_dir with args (NULL-terminated), stdin from g_dir/stdin_name
 * (or /dev/null when NULL), stdout to g_dir/stdout, stderr to g_dir/stderr.
 * Returns the exit status. */
static inline int run_tool(const char *stdin_name, const char *const *args) {
    char in[512], out[512], err[512];
    if (stdin_name != NULL) path_in(in, sizeof in, stdin_name);
    else snprintf(in, sizeof in, "/dev/null");
    path_in(out, sizeof out, "stdout");
    path_in(err, sizeof err, "stderr");
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
    char *argv[64];
    int n = 0;
    argv[n++] = g_tool;
    for (; args[n - 1] != NULL && n < 63; n++) argv[n] = (char *)(uintptr_t)args[n - 1]; /* posix_spawn takes char *const[] */
    argv[n] = NULL;
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(g_dir), 0);
    pid_t pid;
    int rc = posix_spawn(&pid, g_tool, &fa, NULL, argv, environ);
    assert_int_equal(chdir(cwd), 0);
    posix_spawn_file_actions_destroy(&fa);
    assert_int_equal(rc, 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

#endif
