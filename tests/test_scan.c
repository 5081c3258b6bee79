/* test_scan.c — `tokmark scan`, `merge` and `filter build` end to end
 * (SPEC.md §12, tools/cmd_scan.h), and the window search of
 * tools/cli/scanutil.c.
 *
 * Watermarked *text* is made here with the library's embedder and a
 * synthetic language model whose candidates are cl100k_base tokens of the
 * form " word" (a space and 3-8 lower-case letters): text made of such
 * tokens tokenizes back to exactly the same ids (checked), so the scan sees
 * what the embedder chose.  Human text is /usr/share/common-licenses/GPL-3.
 * Needs the rank files of scripts/fetch-tokenizers.sh. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "cliutil.h"

#include <jansson.h>
#include <math.h>

#include "scanutil.h"
#include "testutil.h"
#include "wmtext.h"

static char *g_human;   /* GPL-3 */
static size_t g_human_len;

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct lines {
    json_t *v[4096];
    size_t n;
    json_t *summary;
} lines;

static void parse_stdout(lines *L) {
    size_t len;
    char *out = read_bytes("stdout", &len);
    L->n = 0;
    L->summary = NULL;
    char *p = out;
    while (*p) {
        char *nl = strchr(p, '\n');
        TU_CHECK(nl != NULL, "output line without newline: %s", p);
        json_error_t je;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &je);
        TU_CHECK(j != NULL, "output is not JSON (%s): %.*s", je.text, (int)(nl - p), p);
        if (json_is_true(json_object_get(j, "summary"))) {
            TU_CHECK(L->summary == NULL && nl[1] == '\0', "the summary must be the one last line");
            L->summary = j;
        } else {
            assert_true(L->n < 4096);
            L->v[L->n++] = j;
        }
        p = nl + 1;
    }
    free(out);
    TU_CHECK(L->summary != NULL, "no summary line");
}

static void lines_free(lines *L) {
    for (size_t i = 0; i < L->n; i++) json_decref(L->v[i]);
    json_decref(L->summary);
}

static const char *jstr(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}
static double jnum(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }
static long long jint(json_t *o, const char *k) { return (long long)json_integer_value(json_object_get(o, k)); }

/* The document line of `source` (record index rec). */
static json_t *doc_of(lines *L, const char *source, long long rec) {
    for (size_t i = 0; i < L->n; i++)
        if (strcmp(jstr(L->v[i], "source"), source) == 0 && jint(L->v[i], "record") == rec) return L->v[i];
    fail_msg("no output line for %s record %lld", source, rec);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

static void test_documents_and_exit_status(void **state) {
    (void)state;
    tokmark_profile *p = make_profile(TOKMARK_SCHEME_KGW, 1, "kgw.key");
    tokmark_profile *q = make_profile(TOKMARK_SCHEME_KGW, 2, "other.key");
    size_t len;
    char *wm = gen_text(p, 11, 300, NULL, &len);
    char dirpath[512];
    path_in(dirpath, sizeof dirpath, "docs");
    mkdir(dirpath, 0700);
    write_bytes("docs/b-watermarked.txt", wm, len);
    write_bytes("docs/a-human.txt", g_human, g_human_len);
    char *plain = gen_text(NULL, 12, 300, NULL, &len);
    write_bytes("docs/c-plain.txt", plain, len);
    const char *a1[] = {"scan", "--profile", "kgw.key", "docs", NULL};
    assert_int_equal(run_tool(NULL, a1), 0);
    lines L;
    parse_stdout(&L);
    TU_CHECK(L.n == 3, "%zu document lines", L.n);
    /* directory order is sorted */
    assert_string_equal(jstr(L.v[0], "source"), "docs/a-human.txt");
    assert_string_equal(jstr(L.v[1], "source"), "docs/b-watermarked.txt");
    json_t *d = L.v[1];
    TU_CHECK(strcmp(jstr(d, "verdict"), "watermarked") == 0 && jnum(d, "log10_p") < -10,
             "watermarked text: %s, log10 p %g", jstr(d, "verdict"), jnum(d, "log10_p"));
    assert_string_equal(jstr(d, "key_id"), tokmark_profile_key_id(p));
    TU_CHECK(jint(d, "tokens") == 300 && jint(d, "scored") > 250, "tokens %lld scored %lld", jint(d, "tokens"),
             jint(d, "scored"));
    assert_string_equal(jstr(L.v[0], "verdict"), "not_detected");
    assert_string_equal(jstr(L.v[2], "verdict"), "not_detected");
    TU_CHECK(jnum(L.v[2], "log10_p") > -3, "plain text log10 p %g", jnum(L.v[2], "log10_p"));
    json_t *s = L.summary;
    TU_CHECK(jint(s, "documents") == 3 && jint(s, "skipped") == 0, "summary counts");
    assert_string_equal(jstr(s, "verdict"), "watermarked");
    TU_CHECK(jint(s, "tokens") == jint(L.v[0], "tokens") + jint(L.v[1], "tokens") + jint(L.v[2], "tokens"),
             "corpus tokens are the sum");
    lines_free(&L);
    /* exit status */
    const char *a2[] = {"scan", "--profile", "kgw.key", "--exit-status", "-q", "docs", NULL};
    assert_int_equal(run_tool(NULL, a2), 1);
    const char *a3[] = {"scan", "--profile", "other.key", "--exit-status", "docs", NULL};
    assert_int_equal(run_tool(NULL, a3), 0);
    parse_stdout(&L);
    assert_string_equal(jstr(L.summary, "verdict"), "not_detected");
    assert_string_equal(jstr(L.summary, "key_id"), tokmark_profile_key_id(q));
    lines_free(&L);
    /* both keys: the ring finds the right one, corrected for two */
    const char *a4[] = {"scan", "--profile", "other.key", "--profile", "kgw.key", "docs/b-watermarked.txt", NULL};
    assert_int_equal(run_tool(NULL, a4), 0);
    parse_stdout(&L);
    assert_string_equal(jstr(L.v[0], "key_id"), tokmark_profile_key_id(p));
    TU_CHECK(jint(L.summary, "keys") == 2, "keys");
    TU_CHECK(jnum(L.v[0], "log10_p_corrected") > jnum(L.v[0], "log10_p"), "Šidák for 2 keys");
    lines_free(&L);
    /* usage and file errors */
    const char *a5[] = {"scan", "docs", NULL};
    assert_int_equal(run_tool(NULL, a5), 2);
    const char *a6[] = {"scan", "--profile", "missing.key", "docs", NULL};
    assert_int_equal(run_tool(NULL, a6), 3);
    /* standard input */
    write_bytes("stdin.txt", wm, strlen(wm));
    const char *a7[] = {"scan", "--profile", "kgw.key", NULL};
    assert_int_equal(run_tool("stdin.txt", a7), 0);
    parse_stdout(&L);
    assert_string_equal(jstr(L.v[0], "source"), "-");
    assert_string_equal(jstr(L.v[0], "verdict"), "watermarked");
    lines_free(&L);
    free(wm);
    free(plain);
    tokmark_profile_free(p);
    tokmark_profile_free(q);
}

/* The same stdout with 3 threads (workers that detect, SPEC §7.6) as with
 * one, for a scan that has just run with `argv` (stdout still in place). */
static void check_same_for_jobs(const char *const *argv) {
    char *one = read_bytes("stdout", NULL);
    const char *v[64];
    size_t n = 0;
    v[n++] = argv[0];
    v[n++] = "-j";
    v[n++] = "3";
    for (size_t i = 1; argv[i] != NULL && n < 63; i++) v[n++] = argv[i];
    v[n] = NULL;
    assert_int_equal(run_tool(NULL, v), 0);
    char *three = read_bytes("stdout", NULL);
    TU_CHECK(strcmp(one, three) == 0, "%s %s: -j 3 output differs from -j 1", argv[0], argv[1]);
    free(one);
    free(three);
}

/* JSON Lines of many records: the same output for -j 1, 2, 3, and the same
 * summary however the records are split into files. */
static void test_determinism(void **state) {
    (void)state;
    tokmark_profile *p = make_profile(TOKMARK_SCHEME_GUMBEL, 3, "gumbel.key");
    json_t *all = json_array();
    for (int i = 0; i < 150; i++) {
        size_t len;
        char *t;
        if (i % 3 == 0) t = gen_text(p, 100 + (uint64_t)(i % 40), 60, NULL, &len); /* repeats: dedup across records */
        else if (i % 3 == 1) t = gen_text(NULL, 500 + (uint64_t)i, 60, NULL, &len);
        else {
            size_t off = (size_t)(i * 997) % (g_human_len - 400);
            t = strndup(g_human + off, 300);
            assert_non_null(t);
        }
        json_array_append_new(all, json_pack("{s:s, s:i}", "text", t, "n", i));
        free(t);
    }
    FILE *f1, *f2, *f3;
    char path[512];
    path_in(path, sizeof path, "all.jsonl");
    f1 = fopen(path, "w");
    path_in(path, sizeof path, "part1.jsonl");
    f2 = fopen(path, "w");
    path_in(path, sizeof path, "part2.jsonl");
    f3 = fopen(path, "w");
    assert_true(f1 && f2 && f3);
    for (size_t i = 0; i < json_array_size(all); i++) {
        char *s = json_dumps(json_array_get(all, i), JSON_COMPACT);
        fprintf(f1, "%s\n", s);
        fprintf(i % 2 ? f2 : f3, "%s\n", s); /* interleaved split */
        free(s);
    }
    fclose(f1);
    fclose(f2);
    fclose(f3);
    json_decref(all);
    char *out[3];
    const char *jobs[3] = {"1", "2", "3"};
    for (int j = 0; j < 3; j++) {
        const char *a[] = {"scan", "--profile", "gumbel.key", "-j", jobs[j], "all.jsonl", NULL};
        assert_int_equal(run_tool(NULL, a), 0);
        out[j] = read_bytes("stdout", NULL);
    }
    assert_string_equal(out[0], out[1]);
    assert_string_equal(out[0], out[2]);
    lines L, M;
    parse_stdout(&L); /* -j 3 */
    TU_CHECK(L.n == 150 && jint(L.summary, "documents") == 150, "150 records");
    TU_CHECK(jint(L.summary, "duplicates") > 0, "repeated records give duplicate tuples");
    assert_string_equal(jstr(L.summary, "verdict"), "watermarked");
    const char *b[] = {"scan", "--profile", "gumbel.key", "-j", "2", "part1.jsonl", "part2.jsonl", NULL};
    assert_int_equal(run_tool(NULL, b), 0);
    parse_stdout(&M);
    static const char *const keys[] = {"tokens", "scored", "duplicates", "statistic", "log10_p", "z", "documents"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        TU_CHECK(json_equal(json_object_get(L.summary, keys[k]), json_object_get(M.summary, keys[k])),
                 "summary %s differs between one file and two", keys[k]);
    /* each record's line is the same, wherever it is */
    for (size_t i = 0; i < M.n; i++) {
        json_t *m = M.v[i];
        long long r = jint(m, "record");
        long long orig = strcmp(jstr(m, "source"), "part1.jsonl") == 0 ? 2 * r + 1 : 2 * r;
        json_t *l = doc_of(&L, "all.jsonl", orig);
        TU_CHECK(json_equal(json_object_get(l, "log10_p"), json_object_get(m, "log10_p")) &&
                     json_equal(json_object_get(l, "scored"), json_object_get(m, "scored")),
                 "record %lld differs", orig);
    }
    lines_free(&L);
    lines_free(&M);
    for (int j = 0; j < 3; j++) free(out[j]);
    tokmark_profile_free(p);
}

/* Many batches (more than 4096 records), bad lines among them, two keys with
 * their own tuple sets, a corpus set that fills up, windows and a partial:
 * stdout, stderr and the partial file are byte-identical for -j 1, 2 and 3
 * (with -j above 1 the workers detect and the main thread absorbs their
 * tuples in input order, SPEC §7.6). */
static void test_determinism_batches(void **state) {
    (void)state;
    tokmark_profile *p = make_profile(TOKMARK_SCHEME_KGW, 21, "kgwb.key");
    tokmark_params par;
    tokmark_params_default(&par, TOKMARK_SCHEME_GUMBEL);
    par.seeding = TOKMARK_SEEDING_SELFHASH;
    par.context_width = 3;
    uint8_t key[TOKMARK_MASTER_KEY_BYTES];
    for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)mix(991 + i);
    tokmark_profile *q = NULL;
    TU_OK(tokmark_profile_from_key(&q, &par, key));
    char path[512];
    path_in(path, sizeof path, "selfb.key");
    TU_OK(tokmark_profile_save(q, path, 1));
    path_in(path, sizeof path, "many.jsonl");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    char *wm[16];
    for (int i = 0; i < 16; i++) wm[i] = gen_text(i % 2 ? p : NULL, 3000 + (uint64_t)i, 40, NULL, NULL);
    long long nbad = 0;
    for (int i = 0; i < 9000; i++) {
        if (i % 997 == 5 || i % 1201 == 7) nbad++;
        if (i % 997 == 5) fprintf(f, "{\"text\": broken\n");
        else if (i % 1201 == 7) fprintf(f, "{\"other\": \"x\"}\n");
        else {
            const char *t = i % 5 == 0 ? wm[(i / 5) % 16] : NULL; /* repeated records */
            char buf[600];
            if (t == NULL) {
                size_t off = (size_t)(i * 7919) % (g_human_len - 300);
                size_t n = 60 + (size_t)(i % 200);
                memcpy(buf, g_human + off, n);
                if (i % 3 == 0) { /* a record that repeats itself: duplicates within a document */
                    buf[n] = ' ';
                    memcpy(buf + n + 1, g_human + off, n);
                    n = 2 * n + 1;
                }
                buf[n] = 0;
                t = buf;
            }
            json_t *o = json_pack("{s:s, s:i}", "text", t, "n", i);
            char *js = json_dumps(o, JSON_COMPACT);
            fprintf(f, "%s\n", js);
            free(js);
            json_decref(o);
        }
    }
    fclose(f);
    for (int i = 0; i < 16; i++) free(wm[i]);
    for (int mem = 0; mem < 2; mem++) {
        char *out[3], *err[3], *part[3];
        size_t plen[3];
        const char *jobs[3] = {"1", "2", "3"};
        for (int j = 0; j < 3; j++) {
            const char *a[] = {"scan", "--profile", "kgwb.key", "--profile", "selfb.key", "--partial", "many.part",
                               "--dedup-memory", mem ? "64K" : "64M", "-j", jobs[j], "many.jsonl", NULL};
            assert_int_equal(run_tool(NULL, a), 0);
            out[j] = read_bytes("stdout", NULL);
            err[j] = read_bytes("stderr", NULL);
            part[j] = read_bytes("many.part", &plen[j]);
        }
        size_t olen = strlen(out[0]);
        assert_true(olen > 2 && out[0][olen - 1] == '\n');
        const char *last = out[0] + olen - 2;
        while (last > out[0] && last[-1] != '\n') last--;
        json_error_t je;
        json_t *sum = json_loads(last, 0, &je);
        assert_non_null(sum);
        TU_CHECK(jint(sum, "skipped") == nbad, "skipped %lld", jint(sum, "skipped"));
        TU_CHECK(jint(sum, "documents") == 9000 - nbad, "documents %lld", jint(sum, "documents"));
        TU_CHECK(mem ? jint(sum, "dropped") > 0 : jint(sum, "dropped") == 0, "dropped %lld", jint(sum, "dropped"));
        TU_CHECK(jint(sum, "duplicates") > 1000, "duplicates %lld", jint(sum, "duplicates"));
        json_decref(sum);
        for (int j = 1; j < 3; j++) {
            TU_CHECK(strcmp(out[0], out[j]) == 0, "memory %d: stdout of -j 1 and -j %s differ", mem, jobs[j]);
            TU_CHECK(strcmp(err[0], err[j]) == 0, "memory %d: stderr of -j 1 and -j %s differ", mem, jobs[j]);
            TU_CHECK(plen[0] == plen[j] && memcmp(part[0], part[j], plen[0]) == 0,
                     "memory %d: partial of -j 1 and -j %s differ", mem, jobs[j]);
        }
        TU_CHECK(strstr(err[0], "many.jsonl:6:") != NULL, "stderr names the bad line: %.200s", err[0]);
        for (int j = 0; j < 3; j++) {
            free(out[j]);
            free(err[j]);
            free(part[j]);
        }
    }
    tokmark_profile_free(p);
    tokmark_profile_free(q);
}

/* A larger input of varied text (about 6 MB: past the point where the scan
 * sizes its corpus set, with room for the workers to insert into it
 * directly, SPEC §7.6): the same stdout for -j 1, 2 and 3. */
static void test_determinism_shared(void **state) {
    (void)state;
    tokmark_profile *p = make_profile(TOKMARK_SCHEME_KGW, 23, "kgws.key");
    char path[512];
    path_in(path, sizeof path, "varied.jsonl");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    uint64_t rng = 77;
    size_t written = 0;
    for (int rec = 0; written < ((size_t)6 << 20); rec++) {
        written += (size_t)fprintf(f, "{\"text\":\"");
        size_t n = 100 + mix(rng++) % 400;
        for (size_t i = 0; i < n; i++) {
            size_t len = 0;
            const uint8_t *w = tokmark_tokenizer_token_bytes(g_tok, g_pool[mix(rng++) % g_npool], &len);
            fwrite(w, 1, len, f);
            written += len;
        }
        written += (size_t)fprintf(f, "\"}\n");
    }
    fclose(f);
    char *out[3];
    const char *jobs[3] = {"1", "2", "3"};
    for (int j = 0; j < 3; j++) {
        const char *a[] = {"scan", "--profile", "kgws.key", "-j", jobs[j], "varied.jsonl", NULL};
        assert_int_equal(run_tool(NULL, a), 0);
        out[j] = read_bytes("stdout", NULL);
    }
    TU_CHECK(strcmp(out[0], out[1]) == 0 && strcmp(out[0], out[2]) == 0, "-j 1, 2 and 3 differ");
    for (int j = 0; j < 3; j++) free(out[j]);
    if (getenv("TOKMARK_TEST_KEEP") != NULL) { /* for a look at the input */
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "cp '%s/varied.jsonl' '%s/kgws.key' /tmp/", g_dir, g_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not keep varied.jsonl\n");
    }
    tokmark_profile_free(p);
}

/* A watermarked passage pasted into human text is found as a span. */
static void test_mixed_document(void **state) {
    (void)state;
    tokmark_profile *p = make_profile(TOKMARK_SCHEME_KGW, 4, "kgw4.key");
    size_t wlen;
    char *wm = gen_text(p, 44, 200, NULL, &wlen);
    size_t head = 15000, tail = 15000;
    assert_true(g_human_len > head + tail);
    char *doc = malloc(head + wlen + tail + 2);
    assert_non_null(doc);
    memcpy(doc, g_human, head);
    doc[head] = '\n';
    memcpy(doc + head + 1, wm, wlen);
    memcpy(doc + head + 1 + wlen, g_human + head, tail);
    size_t n = head + 1 + wlen + tail;
    write_bytes("mixed.txt", doc, n);
    const char *a[] = {"scan", "--profile", "kgw4.key", "mixed.txt", NULL};
    assert_int_equal(run_tool(NULL, a), 0);
    lines L;
    parse_stdout(&L);
    json_t *d = L.v[0];
    const char *v = jstr(d, "verdict");
    TU_CHECK(strcmp(v, "watermarked_span") == 0 || strcmp(v, "watermarked") == 0, "verdict %s", v);
    json_t *w = json_object_get(d, "window");
    TU_CHECK(w != NULL && json_is_true(json_object_get(w, "significant")), "no significant window");
    double bs = jnum(w, "byte_start"), be = jnum(w, "byte_end");
    double lo = (double)head + 1, hi = (double)(head + 1 + wlen);
    double overlap = fmin(be, hi) - fmax(bs, lo);
    TU_CHECK(overlap >= 0.5 * (be - bs), "window [%g, %g) lies outside the passage [%g, %g)", bs, be, lo, hi);
    TU_CHECK(jnum(w, "log10_p_corrected") >= jnum(w, "log10_p"), "correction lowers significance");
    TU_CHECK(jint(w, "windows_tried") > 100, "windows tried %lld", jint(w, "windows_tried"));
    lines_free(&L);
    /* --no-windows: no window */
    const char *b[] = {"scan", "--profile", "kgw4.key", "--no-windows", "mixed.txt", NULL};
    assert_int_equal(run_tool(NULL, b), 0);
    parse_stdout(&L);
    TU_CHECK(json_object_get(L.v[0], "window") == NULL, "--no-windows still gave a window");
    lines_free(&L);
    free(doc);
    free(wm);
    tokmark_profile_free(p);
}

static void test_bad_input(void **state) {
    (void)state;
    tokmark_profile_free(make_profile(TOKMARK_SCHEME_KGW, 5, "kgw5.key"));
    const char bad[] = "{\"text\":\"good one\"}\n"
                       "{\"text\": broken\n"
                       "{\"body\":\"no text field\"}\n"
                       "{\"text\":\"bad \xff utf8\"}\n"
                       "[1,2]\n"
                       "{\"text\":7}\n"
                       "{\"text\":\"good two\"}\n";
    write_bytes("bad.jsonl", bad, sizeof bad - 1);
    write_bytes("binary.jsonl", "\x00\x01\x02\x03\x00\x00zzzz", 10);
    const char *a[] = {"scan", "--profile", "kgw5.key", "bad.jsonl", "binary.jsonl", "nonexistent.jsonl", NULL};
    assert_int_equal(run_tool(NULL, a), 0);
    lines L;
    parse_stdout(&L);
    json_t *s = L.summary;
    TU_CHECK(jint(s, "documents") == 2, "documents %lld", jint(s, "documents"));
    TU_CHECK(jint(s, "skipped") == 7, "skipped %lld", jint(s, "skipped"));
    json_t *by = json_object_get(s, "skipped_by");
    TU_CHECK(jint(by, "bad_json") == 1 && jint(by, "missing_field") == 1 && jint(by, "invalid_utf8") == 1 &&
                 jint(by, "not_object") == 1 && jint(by, "wrong_type") == 1 && jint(by, "binary") == 1 &&
                 jint(by, "io") == 1,
             "skipped_by %s", json_dumps(by, JSON_COMPACT));
    /* the skipped lines name file and line, in order */
    size_t skipped_lines = 0;
    for (size_t i = 0; i < L.n; i++)
        if (json_object_get(L.v[i], "skipped") != NULL) skipped_lines++;
    TU_CHECK(skipped_lines == 7, "%zu skipped lines on stdout", skipped_lines);
    assert_string_equal(jstr(L.v[1], "skipped"), "bad_json");
    assert_int_equal(jint(L.v[1], "line"), 2);
    char *err = read_bytes("stderr", NULL);
    TU_CHECK(strstr(err, "bad.jsonl:2:") != NULL && strstr(err, "bad.jsonl:4:") != NULL, "stderr: %s", err);
    free(err);
    lines_free(&L);
    const char *b[] = {"scan", "--profile", "kgw5.key", "--strict", "bad.jsonl", NULL};
    assert_int_equal(run_tool(NULL, b), 4);
}

static void test_partial_merge(void **state) {
    (void)state;
    tokmark_profile *p = make_profile(TOKMARK_SCHEME_SYNTHID, 6, "synthid.key");
    FILE *fa, *fb;
    char path[512];
    path_in(path, sizeof path, "shard-a.jsonl");
    fa = fopen(path, "w");
    path_in(path, sizeof path, "shard-b.jsonl");
    fb = fopen(path, "w");
    assert_true(fa && fb);
    for (int i = 0; i < 40; i++) {
        char *t = gen_text(i % 2 ? p : NULL, 700 + (uint64_t)(i % 13), 50, NULL, NULL); /* repeats across shards */
        json_t *o = json_pack("{s:s}", "text", t);
        char *s = json_dumps(o, JSON_COMPACT);
        fprintf(i < 20 ? fa : fb, "%s\n", s);
        free(s);
        json_decref(o);
        free(t);
    }
    fclose(fa);
    fclose(fb);
    const char *w[] = {"scan", "--profile", "synthid.key", "shard-a.jsonl", "shard-b.jsonl", NULL};
    assert_int_equal(run_tool(NULL, w), 0);
    lines whole, merged;
    parse_stdout(&whole);
    const char *a[] = {"scan", "--profile", "synthid.key", "--partial", "a.part", "shard-a.jsonl", NULL};
    assert_int_equal(run_tool(NULL, a), 0);
    const char *b[] = {"scan", "--profile", "synthid.key", "--partial", "b.part", "shard-b.jsonl", NULL};
    assert_int_equal(run_tool(NULL, b), 0);
    const char *m[] = {"merge", "--profile", "synthid.key", "b.part", "a.part", NULL};
    assert_int_equal(run_tool(NULL, m), 0);
    parse_stdout(&merged);
    static const char *const keys[] = {"tokens", "scored", "duplicates", "dropped", "statistic", "z",
                                       "log10_p", "documents", "bytes", "verdict", "key_id"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        TU_CHECK(json_equal(json_object_get(whole.summary, keys[k]), json_object_get(merged.summary, keys[k])),
                 "merged %s differs from one scan", keys[k]);
    TU_CHECK(jint(whole.summary, "duplicates") > 0, "the shards share tuples");
    lines_free(&whole);
    lines_free(&merged);
    /* a different key cannot merge them */
    tokmark_profile_free(make_profile(TOKMARK_SCHEME_SYNTHID, 7, "synthid2.key"));
    const char *x[] = {"merge", "--profile", "synthid2.key", "a.part", NULL};
    assert_int_equal(run_tool(NULL, x), 3);
    /* a damaged partial is refused */
    size_t len;
    char *part = read_bytes("a.part", &len);
    part[len - 40] ^= 1;
    write_bytes("bad.part", part, len);
    free(part);
    const char *y[] = {"merge", "--profile", "synthid.key", "bad.part", NULL};
    assert_int_equal(run_tool(NULL, y), 3);
    tokmark_profile_free(p);
}

/* Closed model: a clean model that repeats its (watermarked) prompt is not
 * flagged, because tuples whose context is in the prompt are excluded; a
 * model whose own answers carry the watermark is. */
static void test_closed_mode(void **state) {
    (void)state;
    tokmark_profile *p = make_profile(TOKMARK_SCHEME_KGW, 8, "kgw8.key");
    char path[512];
    path_in(path, sizeof path, "echo.jsonl");
    FILE *fe = fopen(path, "w");
    path_in(path, sizeof path, "radio.jsonl");
    FILE *fr = fopen(path, "w");
    assert_true(fe && fr);
    for (int i = 0; i < 20; i++) {
        char *prompt = gen_text(p, 900 + (uint64_t)i, 80, NULL, NULL);
        char *clean = gen_text(NULL, 950 + (uint64_t)i, 40, NULL, NULL);
        size_t pl = strlen(prompt);
        char *echo = malloc(pl + strlen(clean) + 1);
        strcpy(echo, prompt + pl / 2); /* repeats half the prompt, then clean text */
        strcat(echo, clean);
        json_t *o = json_pack("{s:s, s:s}", "prompt", prompt, "answer", echo);
        char *s = json_dumps(o, JSON_COMPACT);
        fprintf(fe, "%s\n", s);
        free(s);
        json_decref(o);
        char *ans = gen_text(p, 990 + (uint64_t)i, 40, NULL, NULL);
        o = json_pack("{s:s, s:s}", "prompt", prompt, "answer", ans);
        s = json_dumps(o, JSON_COMPACT);
        fprintf(fr, "%s\n", s);
        free(s);
        json_decref(o);
        free(prompt);
        free(clean);
        free(echo);
        free(ans);
    }
    fclose(fe);
    fclose(fr);
    lines L;
    const char *a[] = {"scan", "--profile", "kgw8.key", "--prompt-field", "prompt", "--field", "answer", "echo.jsonl",
                       NULL};
    assert_int_equal(run_tool(NULL, a), 0);
    parse_stdout(&L);
    assert_string_equal(jstr(L.summary, "verdict"), "watermarked"); /* documents mode is fooled */
    lines_free(&L);
    const char *b[] = {"scan", "--profile", "kgw8.key", "--mode", "closed", "--prompt-field", "prompt", "--field",
                       "answer", "echo.jsonl", NULL};
    assert_int_equal(run_tool(NULL, b), 0);
    check_same_for_jobs(b);
    parse_stdout(&L);
    assert_string_equal(jstr(L.summary, "mode"), "closed");
    TU_CHECK(strcmp(jstr(L.summary, "verdict"), "not_detected") == 0, "closed mode flagged an echo: log10 p %g",
             jnum(L.summary, "log10_p"));
    TU_CHECK(jint(L.summary, "excluded") > 20 * 30, "excluded %lld", jint(L.summary, "excluded"));
    lines_free(&L);
    const char *c[] = {"scan", "--profile", "kgw8.key", "--mode", "closed", "--prompt-field", "prompt", "--field",
                       "answer", "radio.jsonl", NULL};
    assert_int_equal(run_tool(NULL, c), 0);
    parse_stdout(&L);
    assert_string_equal(jstr(L.summary, "verdict"), "watermarked");
    lines_free(&L);
    /* a filter built from the provider's outputs: human text has few of those contexts */
    const char *f[] = {"filter", "build", "--profile", "kgw8.key", "--field", "answer", "-o", "out.filter",
                       "radio.jsonl", NULL};
    assert_int_equal(run_tool(NULL, f), 0);
    write_bytes("human.txt", g_human, g_human_len);
    const char *g[] = {"scan", "--profile", "kgw8.key", "--mode", "closed", "--filter", "out.filter", "human.txt",
                       NULL};
    assert_int_equal(run_tool(NULL, g), 0);
    parse_stdout(&L);
    TU_CHECK(jint(L.summary, "scored") < 50 && jint(L.summary, "excluded") > 5000, "filter: scored %lld excluded %lld",
             jint(L.summary, "scored"), jint(L.summary, "excluded"));
    lines_free(&L);
    const char *h[] = {"scan", "--profile", "kgw8.key", "--mode", "closed", "--filter", "out.filter", "--prompt-field",
                       "prompt", "--field", "answer", "radio.jsonl", NULL};
    assert_int_equal(run_tool(NULL, h), 0);
    check_same_for_jobs(h);
    parse_stdout(&L);
    assert_string_equal(jstr(L.summary, "verdict"), "watermarked");
    lines_free(&L);
    tokmark_profile_free(p);
}

/* Reading mode: predictions that follow the watermarked text carry its
 * signal; unrelated predictions do not. */
static void test_reading_mode(void **state) {
    (void)state;
    tokmark_profile *p = make_profile(TOKMARK_SCHEME_KGW, 9, "kgw9.key");
    char path[512];
    path_in(path, sizeof path, "read.jsonl");
    FILE *f = fopen(path, "w");
    path_in(path, sizeof path, "read-null.jsonl");
    FILE *g = fopen(path, "w");
    assert_true(f && g);
    tu_rng r;
    tu_seed(&r, 99);
    for (int i = 0; i < 10; i++) {
        int32_t *ids;
        char *t = gen_text(p, 1200 + (uint64_t)i, 100, &ids, NULL);
        json_t *x = json_array(), *y = json_array(), *z = json_array();
        for (int k = 0; k < 100; k++) {
            json_array_append_new(x, json_integer(ids[k + 2]));
            /* a student that learnt the text: predicts the token 80% of the time */
            json_array_append_new(y, json_integer(tu_unif(&r) < 0.8 ? ids[k + 2] : (int32_t)tu_below(&r, 100277)));
            json_array_append_new(z, json_integer((int32_t)tu_below(&r, 100277)));
        }
        json_t *o = json_pack("{s:O, s:O}", "ids", x, "predictions", y);
        char *s = json_dumps(o, JSON_COMPACT);
        fprintf(f, "%s\n", s);
        free(s);
        json_decref(o);
        o = json_pack("{s:O, s:O}", "ids", x, "predictions", z);
        s = json_dumps(o, JSON_COMPACT);
        fprintf(g, "%s\n", s);
        free(s);
        json_decref(o);
        json_decref(x);
        json_decref(y);
        json_decref(z);
        free(ids);
        free(t);
    }
    fclose(f);
    fclose(g);
    lines L;
    const char *a[] = {"scan", "--profile", "kgw9.key", "--mode", "reading", "read.jsonl", NULL};
    assert_int_equal(run_tool(NULL, a), 0);
    check_same_for_jobs(a);
    parse_stdout(&L);
    assert_string_equal(jstr(L.summary, "verdict"), "watermarked");
    TU_CHECK(jint(L.summary, "positions") == 1000, "positions %lld", jint(L.summary, "positions"));
    lines_free(&L);
    const char *b[] = {"scan", "--profile", "kgw9.key", "--mode", "reading", "read-null.jsonl", NULL};
    assert_int_equal(run_tool(NULL, b), 0);
    parse_stdout(&L);
    assert_string_equal(jstr(L.summary, "verdict"), "not_detected");
    lines_free(&L);
    tokmark_profile_free(p);
}

/* Attribution: the one account whose key made the text is named. */
static void test_accounts(void **state) {
    (void)state;
    tokmark_profile *m = make_profile(TOKMARK_SCHEME_KGW, 10, "master.key");
    char accounts[4096] = "";
    for (int i = 0; i < 300; i++) {
        char line[32];
        snprintf(line, sizeof line, "acct-%03d\n", i);
        strcat(accounts, line);
    }
    write_bytes("accounts.txt", accounts, strlen(accounts));
    tokmark_profile *a = NULL;
    TU_OK(tokmark_profile_derive_account(&a, m, "acct-217", 8));
    char *t = gen_text(a, 1300, 250, NULL, NULL);
    write_bytes("acct.txt", t, strlen(t));
    const char *args[] = {"scan", "--profile", "master.key", "--accounts", "accounts.txt", "acct.txt", NULL};
    assert_int_equal(run_tool(NULL, args), 0);
    lines L;
    parse_stdout(&L);
    json_t *s = L.summary;
    TU_CHECK(jint(s, "keys") == 300, "keys %lld", jint(s, "keys"));
    assert_string_equal(jstr(s, "account"), "acct-217");
    json_t *matched = json_object_get(s, "accounts_matched");
    TU_CHECK(json_array_size(matched) == 1, "%zu accounts matched", json_array_size(matched));
    assert_string_equal(jstr(json_array_get(matched, 0), "account"), "acct-217");
    assert_string_equal(jstr(json_array_get(matched, 0), "key_id"), tokmark_profile_key_id(a));
    lines_free(&L);
    free(t);
    tokmark_profile_free(a);
    tokmark_profile_free(m);
}

/* A compatibility profile (SPEC §10) is scanned like a tokmark one: the
 * reference vectors' watermarked sequences are flagged, the others not, and
 * the scan's deduplicated counts never exceed the reference's. */
static void test_compat_profile(void **state) {
    (void)state;
    json_error_t je;
    json_t *cases[3] = {NULL, NULL, NULL};
    static const char *const want[3] = {"A-hf_kgw-008", "A-hf_kgw-011", "A-hf_kgw-045"};
    FILE *f = fopen("testvectors/compat/hf_kgw.jsonl", "r");
    TU_CHECK(f != NULL, "testvectors/compat/hf_kgw.jsonl (run the tests from the repository root)");
    char line[1 << 16];
    while (fgets(line, sizeof line, f) != NULL) {
        json_t *c = json_loads(line, 0, &je);
        assert_non_null(c);
        int kept = 0;
        for (int k = 0; k < 3; k++)
            if (strcmp(jstr(c, "id"), want[k]) == 0) cases[k] = c, kept = 1;
        if (!kept) json_decref(c);
    }
    fclose(f);
    for (int k = 0; k < 3; k++) {
        TU_CHECK(cases[k] != NULL, "vector %s missing", want[k]);
        json_t *cfg = json_object_get(cases[k], "config"), *exp = json_object_get(cases[k], "expected");
        json_t *det = json_array_get(json_object_get(exp, "detector"), 0);
        tokmark_compat_config cc;
        tokmark_compat_config_default(&cc, TOKMARK_COMPAT_HF_KGW);
        cc.vocab_size = (uint32_t)jint(cfg, "vocab_size");
        cc.greenlist_ratio = jnum(cfg, "greenlist_ratio");
        cc.hashing_key = strtoull(jstr(cfg, "hashing_key"), NULL, 10);
        cc.seeding = strcmp(jstr(cfg, "seeding_scheme"), "selfhash") == 0 ? TOKMARK_SEEDING_SELFHASH
                                                                          : TOKMARK_SEEDING_LEFTHASH;
        cc.context_width = (uint32_t)jint(cfg, "context_width");
        json_t *bos = json_object_get(cfg, "bos_token_id");
        cc.bos_token_id = json_is_integer(bos) ? (int64_t)json_integer_value(bos) : -1;
        tokmark_compat *c = NULL;
        TU_OK(tokmark_compat_create(&c, &cc));
        char path[512];
        path_in(path, sizeof path, "hf.compat");
        TU_OK(tokmark_compat_save(c, path, 1));
        json_t *rec = json_pack("{s:O}", "ids", json_object_get(cases[k], "input_ids"));
        char *js = json_dumps(rec, JSON_COMPACT);
        write_bytes("compat.jsonl", js, strlen(js));
        free(js);
        json_decref(rec);
        const char *a[] = {"scan", "--profile", "hf.compat", "--tokenizer", "none", "compat.jsonl", NULL};
        assert_int_equal(run_tool(NULL, a), 0);
        lines L;
        parse_stdout(&L);
        json_t *d = L.v[0];
        int pred = json_is_true(json_object_get(det, "prediction"));
        TU_CHECK(strcmp(jstr(d, "verdict"), pred ? "watermarked" : "not_detected") == 0, "%s: verdict %s, log10 p %g",
                 want[k], jstr(d, "verdict"), jnum(d, "log10_p"));
        assert_string_equal(jstr(d, "key_id"), tokmark_compat_key_id(c));
        TU_CHECK(jint(d, "scored") <= jint(det, "num_tokens_scored") && jnum(d, "statistic") <= jnum(det, "num_green_tokens") &&
                     jint(d, "scored") > 0,
                 "%s: scored %lld green %g; reference T %lld G %g", want[k], jint(d, "scored"), jnum(d, "statistic"),
                 jint(det, "num_tokens_scored"), jnum(det, "num_green_tokens"));
        lines_free(&L);
        /* documents mode only, and a tokenizer must be named */
        const char *b[] = {"scan", "--profile", "hf.compat", "compat.jsonl", NULL};
        assert_int_equal(run_tool(NULL, b), 2);
        const char *m[] = {"scan", "--profile", "hf.compat", "--tokenizer", "none", "--mode", "closed", "compat.jsonl",
                           NULL};
        assert_int_equal(run_tool(NULL, m), 2);
        tokmark_compat_free(c);
        json_decref(cases[k]);
    }
}

/* The window search under the null: the Bonferroni-corrected p of the best
 * window is valid (false positives at α no more than α allows). */
static void test_window_null(void **state) {
    (void)state;
    tu_rng r;
    tu_seed(&r, 0x3141);
    tokmark_params kgw, gum;
    tokmark_params_default(&kgw, TOKMARK_SCHEME_KGW);
    tokmark_params_default(&gum, TOKMARK_SCHEME_GUMBEL);
    enum { DOCS = 2000, N = 600 };
    tokmark_trace *tr = calloc(N, sizeof *tr);
    assert_non_null(tr);
    const double alpha = 0.05;
    for (int sch = 0; sch < 2; sch++) {
        const tokmark_params *pp = sch ? &gum : &kgw;
        uint64_t fp = 0;
        for (int d = 0; d < DOCS; d++) {
            for (int i = 0; i < N; i++) {
                tr[i].scored = (uint8_t)(tu_unif(&r) < 0.9);
                double u = tu_unif(&r);
                tr[i].value = !tr[i].scored ? 0.0 : sch ? -log1p(-u) : (u < tokmark_params_gamma(pp) ? 1.0 : 0.0);
            }
            tms_window w;
            tms_best_window(tr, N, pp, TOKMARK_SCORE_DEFAULT, TMS_WINDOW_MIN, &w);
            TU_CHECK(w.found && w.tried > 20, "windows tried %llu", (unsigned long long)w.tried);
            if (tms_bonferroni(w.log10_p, (double)w.tried) <= log10(alpha)) fp++;
        }
        /* the 99.9% upper limit of Binomial(2000, 0.05) is about 135 */
        print_message("    window null %s: %llu of %d documents at alpha %.2f (nominal %.0f)\n", sch ? "gumbel" : "kgw",
                      (unsigned long long)fp, DOCS, alpha, alpha * DOCS);
        TU_CHECK(fp <= 135, "window false positives %llu of %d", (unsigned long long)fp, DOCS);
    }
    /* a planted run is found where it is */
    for (int i = 0; i < N; i++) {
        tr[i].scored = 1;
        tr[i].value = (i >= 300 && i < 364) ? 1.0 : (tu_unif(&r) < 0.25 ? 1.0 : 0.0);
    }
    tms_window w;
    tms_best_window(tr, N, &kgw, TOKMARK_SCORE_DEFAULT, TMS_WINDOW_MIN, &w);
    TU_CHECK(w.first >= 288 && w.last <= 376 && w.log10_p < -20, "planted window at %llu..%llu, log10 p %g",
             (unsigned long long)w.first, (unsigned long long)w.last, w.log10_p);
    free(tr);
}

/* ------------------------------------------------------------------------ */

static int setup_all(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/tokmark-scan-XXXXXX");
    if (mkdtemp(g_dir) == NULL) return -1;
    if (wt_setup() != 0) return -1;
    FILE *f = fopen("/usr/share/common-licenses/GPL-3", "rb");
    if (f == NULL) return -1;
    g_human = malloc(1 << 17);
    g_human_len = fread(g_human, 1, (1 << 17) - 1, f);
    g_human[g_human_len] = '\0';
    fclose(f);
    return g_human_len > 30000 ? 0 : -1;
}

static int teardown_all(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) return -1;
    wt_teardown();
    free(g_human);
    return 0;
}

int main(int argc, char **argv) {
    (void)argc;
    cu_find_tool(argv[0]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_null),    cmocka_unit_test(test_documents_and_exit_status),
        cmocka_unit_test(test_determinism), cmocka_unit_test(test_determinism_batches), cmocka_unit_test(test_determinism_shared),    cmocka_unit_test(test_mixed_document),
        cmocka_unit_test(test_bad_input),      cmocka_unit_test(test_partial_merge),
        cmocka_unit_test(test_closed_mode),    cmocka_unit_test(test_reading_mode),
        cmocka_unit_test(test_accounts),       cmocka_unit_test(test_compat_profile),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
