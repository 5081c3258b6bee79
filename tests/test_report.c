/* test_report.c — `tokmark report`, `tokmark report verify` and `tokmark
 * keygen --signing` end to end (SPEC.md §13, tools/cmd_report.h), and the
 * helpers of tools/cli/report_util.c.
 *
 * Watermarked text is made as in test_scan.c: the library's embedder over a
 * synthetic model whose candidates are cl100k_base tokens " word", so the
 * text tokenizes back to the ids the embedder chose.  Human text is the
 * licence texts of /usr/share/common-licenses.  The PDF is checked by
 * rendering it with pdftoppm and reading it with pdftotext (poppler-utils).
 * Needs the rank files of scripts/fetch-tokenizers.sh. */
#define _XOPEN_SOURCE 700 /* mkdtemp, setenv */
#include "cliutil.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>

#include "report_util.h"
#include "testutil.h"
#include "wmtext.h"

/* the key make_profile(…, seed, …) uses (wmtext.h) */
static void key_of_seed(uint64_t seed, uint8_t key[TOKMARK_MASTER_KEY_BYTES]) {
    for (size_t i = 0; i < TOKMARK_MASTER_KEY_BYTES; i++) key[i] = (uint8_t)mix(seed + i);
}

static void sh(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[2400];
    snprintf(full, sizeof full, "cd '%s' && %s", g_dir, cmd);
    TU_CHECK(system(full) == 0, "command failed: %s", cmd);
}

static int exists(const char *name) {
    char p[512];
    path_in(p, sizeof p, name);
    struct stat st;
    return lstat(p, &st) == 0;
}

static json_t *load_json(const char *name) {
    size_t len;
    char *s = read_bytes(name, &len);
    json_error_t je;
    json_t *j = json_loadb(s, len, 0, &je);
    TU_CHECK(j != NULL, "%s is not JSON: %s (line %d)", name, je.text, je.line);
    free(s);
    return j;
}

static json_t *jpath(json_t *j, const char *a, const char *b) {
    json_t *x = json_object_get(j, a);
    return b ? json_object_get(x, b) : x;
}

/* The report corpus: a watermarked file, a plain (model, no watermark) file
 * and a human one, in docs/ (read as docs/a-..., b-..., c-...). */
static tokmark_profile *g_prof;
static void make_corpus(void) {
    if (exists("docs")) return;
    char d[512];
    path_in(d, sizeof d, "docs");
    assert_int_equal(mkdir(d, 0700), 0);
    g_prof = make_profile(TOKMARK_SCHEME_KGW, 1, "kgw.key");
    size_t len;
    char *wm = gen_text(g_prof, 11, 400, NULL, &len);
    write_bytes("docs/b-watermarked.txt", wm, len);
    free(wm);
    char *plain = gen_text(NULL, 12, 300, NULL, &len);
    write_bytes("docs/c-plain.txt", plain, len);
    free(plain);
    /* a mixed document: human text, a watermarked span, human text */
    FILE *g = fopen("/usr/share/common-licenses/GPL-3", "rb");
    assert_non_null(g);
    char *mixed = malloc(20000);
    assert_non_null(mixed);
    size_t m = fread(mixed, 1, 5000, g);
    fclose(g);
    char *span = gen_text(g_prof, 13, 250, NULL, &len);
    memcpy(mixed + m, span, len);
    m += len;
    memcpy(mixed + m, mixed, 5000);
    m += 5000;
    write_bytes("docs/d-mixed.txt", mixed, m);
    free(span);
    free(mixed);
    path_in(d, sizeof d, "docs/sub");
    assert_int_equal(mkdir(d, 0700), 0);
    sh("cp /usr/share/common-licenses/Apache-2.0 docs/a-human.txt && cp /usr/share/common-licenses/BSD docs/sub/x.txt");
    const char *kg[] = {"keygen", "--signing", "-o", "sign.key", NULL};
    if (!exists("sign.key")) assert_int_equal(run_tool(NULL, kg), 0);
}

static const char *const REPORT_ARGS[] = {"report", "--profile", "kgw.key", "--signing-key", "sign.key", "--controls",
                                          "200", "--title", "Case 7: Example v. Example", "--examiner", "Dr. Q",
                                          NULL};

static int run_report(const char *dir, const char *extra) {
    const char *a[24];
    size_t n = 0;
    for (; REPORT_ARGS[n] != NULL; n++) a[n] = REPORT_ARGS[n];
    if (extra != NULL) a[n++] = extra;
    a[n++] = "-o";
    a[n++] = dir;
    a[n++] = "docs";
    a[n] = NULL;
    return run_tool(NULL, a);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

static void test_binom_ci(void **state) {
    (void)state;
    double lo, hi;
    rp_binom_ci(0, 200, 0.95, &lo, &hi); /* closed forms at the ends */
    TU_CHECK(lo == 0 && fabs(hi - (1 - pow(0.025, 1.0 / 200))) < 1e-12, "k=0: [%g, %g]", lo, hi);
    rp_binom_ci(200, 200, 0.95, &lo, &hi);
    TU_CHECK(hi == 1 && fabs(lo - pow(0.025, 1.0 / 200)) < 1e-12, "k=n: [%g, %g]", lo, hi);
    /* k=10 of 1000: the interval's ends have tail 0.025 exactly */
    rp_binom_ci(10, 1000, 0.95, &lo, &hi);
    double up = 0, dn = 0;
    for (uint64_t k = 10; k <= 1000; k++) up += exp(tu_binom_ln_pmf(k, 1000, lo));
    for (uint64_t k = 0; k <= 10; k++) dn += exp(tu_binom_ln_pmf(k, 1000, hi));
    TU_CHECK(fabs(up - 0.025) < 1e-9 && fabs(dn - 0.025) < 1e-9 && lo < 0.01 && hi > 0.01,
             "k=10: [%g, %g], tails %g %g", lo, hi, up, dn);
}

static void test_signing_keys(void **state) {
    (void)state;
    const char *a1[] = {"keygen", "--signing", "-o", "s1.key", NULL};
    assert_int_equal(run_tool(NULL, a1), 0);
    char p[512];
    struct stat st;
    path_in(p, sizeof p, "s1.key");
    assert_int_equal(stat(p, &st), 0);
    TU_CHECK((st.st_mode & 0777) == 0600, "secret key mode %o", st.st_mode & 0777);
    path_in(p, sizeof p, "s1.key.pub");
    assert_int_equal(stat(p, &st), 0);
    char *sk = read_bytes("s1.key", NULL), *pk = read_bytes("s1.key.pub", NULL), *out = read_bytes("stdout", NULL);
    TU_CHECK(strncmp(sk, "tokmark-signing-key 1\n", 22) == 0, "secret key magic: %.30s", sk);
    TU_CHECK(strncmp(pk, "tokmark-signing-public-key 1\n", 29) == 0, "public key magic");
    TU_CHECK(strstr(pk, "seed") == NULL, "the public file holds no seed");
    /* the seed is printed nowhere */
    const char *seed = strstr(sk, "\nseed ");
    assert_non_null(seed);
    char seedhex[65];
    memcpy(seedhex, seed + 6, 64);
    seedhex[64] = '\0';
    char *err = read_bytes("stderr", NULL);
    TU_CHECK(strstr(out, seedhex) == NULL && strstr(err, seedhex) == NULL, "seed printed");
    /* the fingerprint printed is the public file's */
    const char *fp = strstr(pk, "fingerprint ");
    assert_non_null(fp);
    TU_CHECK(strncmp(out, "signing-key-fingerprint ", 24) == 0 && strncmp(out + 24, fp + 12, 32) == 0, "fingerprint");
    /* a watermark profile loader refuses a signing key, and vice versa */
    tokmark_profile *prof = NULL;
    size_t line = 0;
    path_in(p, sizeof p, "s1.key");
    TU_CHECK(tokmark_profile_load(&prof, p, 0, &line) != TOKMARK_OK, "a signing key loaded as a profile");
    tokmark_profile_free(make_profile(TOKMARK_SCHEME_KGW, 77, "wm.key"));
    uint8_t skb[RP_SK_BYTES], pkb[RP_PK_BYTES];
    int e = 0;
    path_in(p, sizeof p, "wm.key");
    assert_int_equal(rp_signkey_load(p, skb, pkb, &line, &e), RP_ERR_FORMAT);
    path_in(p, sizeof p, "s1.key.pub");
    TU_CHECK(rp_signkey_load(p, skb, pkb, &line, &e) != RP_OK, "a public key file loaded as a secret key");
    path_in(p, sizeof p, "s1.key");
    assert_int_equal(rp_signkey_load(p, skb, pkb, &line, &e), RP_OK);
    uint8_t pk2[RP_PK_BYTES];
    path_in(p, sizeof p, "s1.key.pub");
    assert_int_equal(rp_pubkey_load(p, pk2, &line, &e), RP_OK);
    assert_memory_equal(pkb, pk2, RP_PK_BYTES);
    /* never replaced without --force */
    assert_int_equal(run_tool(NULL, a1), 3);
    const char *a2[] = {"keygen", "--signing", "--force", "-o", "s1.key", NULL};
    assert_int_equal(run_tool(NULL, a2), 0);
    char *sk2 = read_bytes("s1.key", NULL);
    TU_CHECK(strcmp(sk, sk2) != 0, "--force made a new key");
    /* a readable secret key is refused by report */
    make_corpus();
    sh("cp sign.key loose.key && chmod 644 loose.key");
    const char *a3[] = {"report", "--profile", "kgw.key", "--signing-key", "loose.key", "--controls", "10",
                        "-o", "r-loose", "docs", NULL};
    assert_int_equal(run_tool(NULL, a3), 3);
    assert_false(exists("r-loose"));
    /* a watermark profile as the signing key: refused */
    const char *a4[] = {"report", "--profile", "kgw.key", "--signing-key", "kgw.key", "--controls", "10",
                        "-o", "r-wrong", "docs", NULL};
    assert_int_equal(run_tool(NULL, a4), 3);
    assert_false(exists("r-wrong"));
    free(sk);
    free(sk2);
    free(pk);
    free(out);
    free(err);
}

/* The report's content, and consistency with tokmark scan. */
static void test_report_content(void **state) {
    (void)state;
    make_corpus();
    assert_int_equal(run_report("r1", NULL), 0);
    assert_true(exists("r1/report.json") && exists("r1/report.pdf") && exists("r1/report.sig"));
    json_t *j = load_json("r1/report.json");
    assert_int_equal(json_integer_value(json_object_get(j, "tokmark_report")), 1);
    assert_string_equal(json_string_value(jpath(j, "case", "title")), "Case 7: Example v. Example");
    assert_string_equal(json_string_value(jpath(j, "case", "examiner")), "Dr. Q");
    assert_string_equal(json_string_value(jpath(j, "case", "spec_version")), tokmark_spec_version());
    assert_string_equal(json_string_value(jpath(j, "case", "tokmark_version")), tokmark_version_string());
    const char *t = json_string_value(jpath(j, "case", "time_utc"));
    TU_CHECK(t != NULL && strlen(t) == 20 && t[10] == 'T' && t[19] == 'Z', "time %s", t ? t : "(none)");
    json_t *keys = jpath(j, "profile", "keys");
    assert_int_equal(json_array_size(keys), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(keys, 0), "key_id")),
                        tokmark_profile_key_id(g_prof));
    assert_string_equal(json_string_value(json_object_get(jpath(j, "profile", "parameters"), "scheme")), "kgw");
    /* evidence: every file, in the reader's order, hashed */
    static const char *const files[] = {"docs/a-human.txt", "docs/b-watermarked.txt", "docs/c-plain.txt",
                                        "docs/d-mixed.txt", "docs/sub/x.txt"};
    json_t *ev = jpath(j, "evidence", "files");
    assert_int_equal(json_array_size(ev), 5);
    for (size_t i = 0; i < 5; i++) {
        json_t *f = json_array_get(ev, i);
        assert_string_equal(json_string_value(json_object_get(f, "path")), files[i]);
        size_t len;
        char *data = read_bytes(files[i], &len);
        unsigned char md[32];
        crypto_hash_sha256(md, (const unsigned char *)data, len);
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, md, 32);
        assert_string_equal(json_string_value(json_object_get(f, "sha256")), hex);
        assert_int_equal(json_integer_value(json_object_get(f, "size")), len);
        free(data);
    }
    json_t *tk = jpath(j, "evidence", "tokenizer");
    assert_string_equal(json_string_value(json_object_get(tk, "name")), "cl100k_base");
    char tpath[1024];
    TU_OK(tokmark_tokenizer_find("cl100k_base", tpath, sizeof tpath));
    assert_string_equal(json_string_value(json_object_get(tk, "path")), tpath);
    TU_CHECK(strlen(json_string_value(json_object_get(tk, "sha256"))) == 64, "tokenizer hash");
    /* results agree with tokmark scan */
    const char *sa[] = {"scan", "--profile", "kgw.key", "docs", NULL};
    assert_int_equal(run_tool(NULL, sa), 0);
    size_t ol;
    char *out = read_bytes("stdout", &ol);
    char *last = out + ol - 1;
    while (last > out && last[-1] != '\n') last--;
    json_error_t je;
    json_t *sum = json_loads(last, 0, &je);
    assert_non_null(sum);
    json_t *corpus = jpath(j, "results", "corpus");
    double rl = json_real_value(json_object_get(corpus, "log10_p_corrected"));
    double sl = json_number_value(json_object_get(sum, "log10_p_corrected"));
    TU_CHECK(fabs(rl - sl) <= 1e-9 * fabs(sl) + 1e-12, "report log10 p %.17g, scan %.17g", rl, sl);
    TU_CHECK(rl < -6, "the watermark is found: %g", rl);
    assert_string_equal(json_string_value(json_object_get(corpus, "verdict")), "watermarked");
    assert_int_equal(json_integer_value(json_object_get(corpus, "scored")), json_integer_value(json_object_get(sum, "scored")));
    assert_int_equal(json_integer_value(json_object_get(corpus, "documents")), 5);
    json_t *docs = jpath(j, "results", "documents");
    assert_int_equal(json_array_size(docs), 5);
    /* the mixed document's watermarked span is found and placed */
    json_t *w = json_object_get(json_array_get(docs, 3), "window");
    TU_CHECK(w != NULL && json_is_true(json_object_get(w, "significant")), "no significant window in the mixed document");
    long long ws = json_integer_value(json_object_get(w, "token_start")), we = json_integer_value(json_object_get(w, "token_end"));
    TU_CHECK(ws >= 900 && we <= 1500 && we > ws, "window tokens %lld..%lld", ws, we);
    assert_string_equal(json_string_value(json_object_get(json_array_get(docs, 1), "verdict")), "watermarked");
    assert_string_equal(json_string_value(json_object_get(json_array_get(docs, 0), "verdict")), "not_detected");
    json_t *pf = jpath(j, "results", "files");
    assert_int_equal(json_array_size(pf), 5);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(pf, 1), "documents_watermarked")), 1);
    /* error rate: recomputed from the recorded control p-values */
    json_t *er = json_object_get(j, "error_rate");
    assert_int_equal(json_integer_value(json_object_get(er, "controls")), 200);
    json_t *cl = json_object_get(er, "control_log10_p_corrected");
    assert_int_equal(json_array_size(cl), 200);
    json_t *rates = json_object_get(er, "rates");
    assert_int_equal(json_array_size(rates), 3);
    uint64_t extreme = 0;
    for (size_t i = 0; i < 200; i++)
        if (json_number_value(json_array_get(cl, i)) <= rl) extreme++;
    for (size_t a = 0; a < 3; a++) {
        json_t *r = json_array_get(rates, a);
        double alpha = json_number_value(json_object_get(r, "alpha"));
        uint64_t k = 0;
        for (size_t i = 0; i < 200; i++)
            if (json_number_value(json_array_get(cl, i)) <= log10(alpha)) k++;
        assert_int_equal(json_integer_value(json_object_get(r, "false_positives")), k);
        double lo = json_number_value(json_object_get(r, "ci_low")), hi = json_number_value(json_object_get(r, "ci_high"));
        double rate = json_number_value(json_object_get(r, "rate"));
        TU_CHECK(rate == (double)k / 200 && lo <= rate && rate <= hi && hi < 0.1, "rate %g in [%g, %g]", rate, lo, hi);
    }
    assert_int_equal(json_integer_value(json_object_get(er, "controls_at_least_as_extreme")), extreme);
    assert_int_equal(extreme, 0);
    TU_CHECK(json_number_value(json_object_get(er, "empirical_p")) == 1.0 / 201, "empirical p");
    TU_CHECK(json_array_size(jpath(j, "plots", "corpus_series")) == 5, "one point per document");
    TU_CHECK(json_array_size(json_object_get(j, "method")) >= 4 && json_array_size(json_object_get(j, "limitations")) >= 4,
             "method and limitations");
    json_decref(sum);
    free(out);
    json_decref(j);
}

/* Remove "time_utc":"..." from a canonical report. */
static char *without_time(const char *name, size_t *len) {
    char *s = read_bytes(name, len);
    char *t = strstr(s, "\"time_utc\":\"");
    assert_non_null(t);
    char *e = strchr(t + 12, '"');
    assert_non_null(e);
    memmove(t, e + 1, strlen(e + 1) + 1);
    *len = strlen(s);
    return s;
}

static void test_byte_identity(void **state) {
    (void)state;
    make_corpus();
    if (!exists("r1")) assert_int_equal(run_report("r1", NULL), 0);
    sleep(1); /* a different time */
    assert_int_equal(run_report("r2", NULL), 0);
    size_t l1, l2;
    char *a = without_time("r1/report.json", &l1), *b = without_time("r2/report.json", &l2);
    TU_CHECK(l1 == l2 && memcmp(a, b, l1) == 0, "report.json differs beyond the time");
    free(a);
    free(b);
    /* canonical: one line, no insignificant whitespace */
    char *raw = read_bytes("r1/report.json", &l1);
    TU_CHECK(raw[l1 - 1] == '\n' && strchr(raw, '\n') == raw + l1 - 1, "one line");
    TU_CHECK(strstr(raw, "\": ") == NULL && strstr(raw, ", \"") == NULL, "whitespace");
    free(raw);
    /* with a fixed time (SOURCE_DATE_EPOCH) every file is byte-identical,
     * the PDF and the (deterministic Ed25519) signatures included */
    setenv("SOURCE_DATE_EPOCH", "1767225600", 1);
    assert_int_equal(run_report("r3", NULL), 0);
    sleep(1);
    assert_int_equal(run_report("r4", NULL), 0);
    unsetenv("SOURCE_DATE_EPOCH");
    static const char *const names[] = {"report.json", "report.pdf", "report.sig"};
    for (size_t i = 0; i < 3; i++) {
        char n3[64], n4[64];
        snprintf(n3, sizeof n3, "r3/%s", names[i]);
        snprintf(n4, sizeof n4, "r4/%s", names[i]);
        char *x = read_bytes(n3, &l1), *y = read_bytes(n4, &l2);
        TU_CHECK(l1 == l2 && memcmp(x, y, l1) == 0, "%s differs between two runs at the same time", names[i]);
        free(x);
        free(y);
    }
    json_t *k = load_json("r3/report.json");
    assert_string_equal(json_string_value(jpath(k, "case", "time_utc")), "2026-01-01T00:00:00Z");
    assert_string_equal(json_string_value(jpath(k, "case", "time_source")), "SOURCE_DATE_EPOCH");
    json_decref(k);
}

static int verify(const char *dir, const char *o1, const char *o2, const char *o3, const char *o4) {
    const char *a[] = {"report", "verify", dir, o1, o2, o3, o4, NULL};
    return run_tool(NULL, a);
}

static void flip_byte(const char *name, size_t at) {
    size_t len;
    char *s = read_bytes(name, &len);
    assert_true(len > 0);
    s[at % len] ^= 0x01;
    write_bytes(name, s, len);
    free(s);
}

static void test_verify_signatures(void **state) {
    (void)state;
    make_corpus();
    if (!exists("r1")) assert_int_equal(run_report("r1", NULL), 0);
    assert_int_equal(verify("r1", "--public-key", "sign.key.pub", NULL, NULL), 0);
    char *out = read_bytes("stdout", NULL);
    TU_CHECK(strstr(out, "VERIFIED r1") != NULL, "verify output: %s", out);
    free(out);
    assert_int_equal(verify("r1", NULL, NULL, NULL, NULL), 0); /* reports the signer */
    /* another key's public file: the signer is not that key */
    const char *kg[] = {"keygen", "--signing", "-o", "other.key", NULL};
    assert_int_equal(run_tool(NULL, kg), 0);
    assert_int_equal(verify("r1", "--public-key", "other.key.pub", NULL, NULL), 1);
    /* one flipped byte anywhere, in any file, fails */
    static const char *const names[] = {"report.json", "report.pdf", "report.sig"};
    for (size_t i = 0; i < 3; i++)
        for (size_t at = 0; at < 3; at++) {
            sh("rm -rf rx && cp -r r1 rx");
            char n[64];
            snprintf(n, sizeof n, "rx/%s", names[i]);
            size_t len;
            free(read_bytes(n, &len));
            size_t pos = at == 0 ? 0 : at == 1 ? len / 2 : len - 2;
            if (i == 2 && at == 0) pos = 30; /* inside the first line's version would also fail: any byte */
            flip_byte(n, pos);
            int rc = verify("rx", "--public-key", "sign.key.pub", NULL, NULL);
            TU_CHECK(rc != 0, "a flipped byte at %zu of %s was not noticed", pos, names[i]);
        }
    sh("rm -rf rx");
}

static void test_verify_evidence(void **state) {
    (void)state;
    make_corpus();
    sh("rm -rf ev && mkdir ev && cp -r docs ev/docs && cp kgw.key sign.key sign.key.pub ev/");
    char save[sizeof g_dir];
    memcpy(save, g_dir, sizeof save);
    size_t dl = strlen(g_dir);
    assert_true(dl + 4 < sizeof g_dir);
    memcpy(g_dir + dl, "/ev", 4);
    assert_int_equal(run_report("r", NULL), 0);
    assert_int_equal(verify("r", "--evidence", "--profile", "kgw.key", NULL), 0);
    char *out = read_bytes("stdout", NULL);
    TU_CHECK(strstr(out, "recorded corpus result equals the re-run") != NULL && strstr(out, "FAILED") == NULL,
             "verify: %s", out);
    free(out);
    /* the wrong key */
    tokmark_profile_free(make_profile(TOKMARK_SCHEME_KGW, 99, "wrong.key"));
    assert_int_equal(verify("r", "--evidence", "--profile", "wrong.key", NULL), 1);
    /* one changed input: its hash and the statistics no longer match */
    size_t len;
    char *s = read_bytes("docs/b-watermarked.txt", &len);
    s[len / 2] = s[len / 2] == 'a' ? 'b' : 'a';
    write_bytes("docs/b-watermarked.txt", s, len);
    free(s);
    assert_int_equal(verify("r", "--evidence", NULL, NULL, NULL), 1);
    out = read_bytes("stdout", NULL);
    TU_CHECK(strstr(out, "FAILED   evidence docs/b-watermarked.txt: changed") != NULL, "verify: %s", out);
    TU_CHECK(strstr(out, "ok       evidence docs/a-human.txt") != NULL, "verify: %s", out);
    free(out);
    assert_int_equal(verify("r", "--evidence", "--profile", "kgw.key", NULL), 1);
    out = read_bytes("stdout", NULL);
    TU_CHECK(strstr(out, "FAILED   recorded corpus result equals the re-run") != NULL, "verify: %s", out);
    free(out);
    /* a missing input */
    sh("rm docs/c-plain.txt");
    assert_int_equal(verify("r", "--evidence", NULL, NULL, NULL), 1);
    memcpy(g_dir, save, sizeof save);
}

/* The other files a scan reads (here --accounts) are evidence too; two keys
 * (the accounts' sub-keys) are corrected for, controls included. */
static void test_auxiliary_evidence(void **state) {
    (void)state;
    make_corpus();
    write_bytes("acc.txt", "alice\nbob\n", 10);
    assert_int_equal(run_report("racc", "--accounts=acc.txt"), 0);
    json_t *j = load_json("racc/report.json");
    json_t *aux = json_array_get(jpath(j, "evidence", "auxiliary"), 0);
    assert_string_equal(json_string_value(json_object_get(aux, "role")), "accounts");
    assert_string_equal(json_string_value(json_object_get(aux, "path")), "acc.txt");
    assert_int_equal(json_integer_value(json_object_get(aux, "size")), 10);
    assert_int_equal(json_array_size(jpath(j, "profile", "keys")), 2);
    assert_int_equal(json_integer_value(jpath(jpath(j, "results", "corpus"), "keys", NULL)), 2);
    json_t *args = jpath(j, "scan", "arguments");
    TU_CHECK(json_array_size(args) == 1 && strcmp(json_string_value(json_array_get(args, 0)), "--accounts=acc.txt") == 0,
             "recorded arguments");
    json_decref(j);
    assert_int_equal(verify("racc", "--evidence", "--profile", "kgw.key", NULL), 0);
    write_bytes("acc.txt", "alice\ncarol\n", 12);
    assert_int_equal(verify("racc", "--evidence", NULL, NULL, NULL), 1);
    char *out = read_bytes("stdout", NULL);
    TU_CHECK(strstr(out, "FAILED   evidence acc.txt: changed") != NULL, "verify: %s", out);
    free(out);
}

/* Pixels of a rendered page (P6 PPM). */
typedef struct img {
    int w, h;
    unsigned char *px;
} img;

static img load_ppm(const char *name) {
    size_t len;
    char *s = read_bytes(name, &len);
    img im = {0, 0, NULL};
    int maxv = 0, n = 0;
    TU_CHECK(sscanf(s, "P6 %d %d %d%n", &im.w, &im.h, &maxv, &n) == 3 && maxv == 255, "%s is not a PPM", name);
    n++; /* one whitespace byte */
    TU_CHECK((size_t)n + (size_t)im.w * im.h * 3 <= len, "short PPM");
    im.px = malloc((size_t)im.w * im.h * 3);
    memcpy(im.px, s + n, (size_t)im.w * im.h * 3);
    free(s);
    return im;
}

/* Count pixels in the box (fractions of the page) matching a colour class:
 * 0 not white, 1 blue, 2 red, 3 grey. */
static size_t count_px(const img *im, double x0, double y0, double x1, double y1, int cls) {
    size_t n = 0;
    for (int y = (int)(y0 * im->h); y < (int)(y1 * im->h); y++)
        for (int x = (int)(x0 * im->w); x < (int)(x1 * im->w); x++) {
            const unsigned char *p = im->px + ((size_t)y * im->w + x) * 3;
            int r = p[0], g = p[1], b = p[2];
            int hit = cls == 0   ? r + g + b < 720
                      : cls == 1 ? b > r + 60 && b > g + 30
                      : cls == 2 ? r > g + 80 && r > b + 80
                                 : abs(r - g) < 12 && abs(g - b) < 12 && r > 120 && r < 225;
            n += hit;
        }
    return n;
}

static int page_with(int npages, const char *pdf, const char *needle) {
    for (int pg = 1; pg <= npages; pg++) {
        sh("pdftotext -f %d -l %d %s page.txt", pg, pg, pdf);
        char *t = read_bytes("page.txt", NULL);
        int hit = strstr(t, needle) != NULL;
        free(t);
        if (hit) return pg;
    }
    fail_msg("no page with '%s'", needle);
    return 0;
}

static void test_pdf(void **state) {
    (void)state;
    make_corpus();
    if (!exists("r1")) assert_int_equal(run_report("r1", NULL), 0);
    sh("rm -f pg-*.ppm && pdftoppm -r 40 r1/report.pdf pg");
    int npages = 0;
    while (1) {
        char n[32];
        snprintf(n, sizeof n, "pg-%d.ppm", npages + 1);
        if (!exists(n)) break;
        npages++;
    }
    TU_CHECK(npages >= 6 && npages <= 12, "%d pages", npages);
    for (int i = 1; i <= npages; i++) {
        char n[32];
        snprintf(n, sizeof n, "pg-%d.ppm", i);
        img im = load_ppm(n);
        size_t ink = count_px(&im, 0.08, 0.08, 0.92, 0.92, 0);
        TU_CHECK(ink > 500, "page %d is (nearly) blank: %zu pixels", i, ink);
        free(im.px);
    }
    /* text: key ID, corpus log10 p, every file's SHA-256 */
    sh("pdftotext -layout r1/report.pdf all.txt");
    char *txt = read_bytes("all.txt", NULL);
    json_t *j = load_json("r1/report.json");
    const char *kid = tokmark_profile_key_id(g_prof);
    TU_CHECK(strstr(txt, kid) != NULL, "key ID not in the PDF");
    char lp[64];
    snprintf(lp, sizeof lp, "%.3f", json_real_value(jpath(jpath(j, "results", "corpus"), "log10_p_corrected", NULL)));
    TU_CHECK(strstr(txt, lp) != NULL, "corpus log10 p %s not in the PDF", lp);
    json_t *ev = jpath(j, "evidence", "files");
    for (size_t i = 0; i < json_array_size(ev); i++) {
        const char *h = json_string_value(json_object_get(json_array_get(ev, i), "sha256"));
        TU_CHECK(strstr(txt, h) != NULL, "SHA-256 %s not in the PDF", h);
    }
    TU_CHECK(strstr(txt, "Limitations") != NULL && strstr(txt, "Method") != NULL && strstr(txt, "Evidence") != NULL,
             "sections");
    free(txt);
    json_decref(j);
    /* plots: drawn pixels of the right colours inside the plot areas */
    int pa = page_with(npages, "r1/report.pdf", "(a) Corpus p-value");
    int pc = page_with(npages, "r1/report.pdf", "(c) Control keys");
    char n[32];
    snprintf(n, sizeof n, "pg-%d.ppm", pa);
    img im = load_ppm(n);
    /* (a) in the upper half: the blue series and the red α line */
    size_t blue = count_px(&im, 0.19, 0.08, 0.88, 0.42, 1), red = count_px(&im, 0.19, 0.08, 0.88, 0.42, 2);
    TU_CHECK(blue > 40 && red > 40, "plot (a): %zu blue, %zu red pixels", blue, red);
    /* (b) in the lower half: grey control bars and blue document bars */
    size_t grey = count_px(&im, 0.19, 0.42, 0.88, 0.8, 3);
    blue = count_px(&im, 0.19, 0.42, 0.88, 0.8, 1);
    TU_CHECK(grey > 40 && blue > 20, "plot (b): %zu grey, %zu blue pixels", grey, blue);
    free(im.px);
    snprintf(n, sizeof n, "pg-%d.ppm", pc);
    im = load_ppm(n);
    grey = count_px(&im, 0.19, 0.2, 0.88, 0.95, 3);
    red = count_px(&im, 0.19, 0.2, 0.88, 0.95, 2);
    TU_CHECK(grey > 100 && red > 20, "plot (c): %zu grey, %zu red pixels", grey, red);
    free(im.px);
}

static void test_atomic_and_usage(void **state) {
    (void)state;
    make_corpus();
    /* a missing input: error, nothing left behind */
    const char *a1[] = {"report", "--profile", "kgw.key", "--signing-key", "sign.key", "--controls", "10",
                        "-o", "bad", "docs", "no-such-file.txt", NULL};
    assert_int_equal(run_tool(NULL, a1), 3);
    char *err = read_bytes("stderr", NULL);
    TU_CHECK(strstr(err, "no-such-file.txt") != NULL, "the error names the file: %s", err);
    free(err);
    assert_false(exists("bad"));
    sh("! ls -a | grep -q '\\.tmp-'");
    /* an unreadable directory inside the input */
    sh("mkdir -p docs2/locked && cp docs/a-human.txt docs2/ && chmod 000 docs2/locked");
    const char *a1b[] = {"report", "--profile", "kgw.key", "--signing-key", "sign.key", "--controls", "10",
                         "-o", "bad2", "docs2", NULL};
    int rc = run_tool(NULL, a1b);
    if (geteuid() != 0) { /* root reads anything */
        assert_int_equal(rc, 3);
        assert_false(exists("bad2"));
    }
    sh("chmod 700 docs2/locked && rm -rf docs2 bad2");
    /* standard input is refused */
    const char *a2[] = {"report", "--profile", "kgw.key", "--signing-key", "sign.key", "-o", "bad", "-", NULL};
    assert_int_equal(run_tool(NULL, a2), 2);
    assert_false(exists("bad"));
    /* an existing directory is never overwritten */
    sh("mkdir -p exists");
    const char *a3[] = {"report", "--profile", "kgw.key", "--signing-key", "sign.key", "--controls", "10",
                        "-o", "exists", "docs", NULL};
    assert_int_equal(run_tool(NULL, a3), 3);
    /* usage */
    const char *a4[] = {"report", "--profile", "kgw.key", "-o", "bad", "docs", NULL};
    assert_int_equal(run_tool(NULL, a4), 2);
    const char *a5[] = {"report", "--profile", "kgw.key", "--signing-key", "sign.key", "--controls", "0",
                        "-o", "bad", "docs", NULL};
    assert_int_equal(run_tool(NULL, a5), 2);
    assert_false(exists("bad"));
    /* a trailing slash works, and the report appears whole */
    const char *a6[] = {"report", "--profile", "kgw.key", "--signing-key", "sign.key", "--controls", "10",
                        "-o", "slash/", "docs", NULL};
    assert_int_equal(run_tool(NULL, a6), 0);
    assert_true(exists("slash/report.sig"));
}

static int file_contains(const char *name, const char *needle) {
    size_t len;
    char *s = read_bytes(name, &len);
    int hit = 0;
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len && !hit; i++) hit = memcmp(s + i, needle, n) == 0;
    free(s);
    return hit;
}

static void test_secrets_and_commitment(void **state) {
    (void)state;
    make_corpus();
    assert_int_equal(run_report("rc", "--commit-key"), 0);
    char p[512];
    struct stat st;
    path_in(p, sizeof p, "rc.opening");
    assert_int_equal(stat(p, &st), 0);
    TU_CHECK((st.st_mode & 0777) == 0600, "opening mode %o", st.st_mode & 0777);
    /* the commitment recorded is the library's for the opening written */
    char *op = read_bytes("rc.opening", NULL);
    const char *o = strstr(op, "\nopening ");
    assert_non_null(o);
    uint8_t opening[32];
    size_t got = 0;
    assert_int_equal(sodium_hex2bin(opening, 32, o + 9, 64, NULL, &got, NULL), 0);
    uint8_t cm[32];
    TU_OK(tokmark_profile_commitment(g_prof, opening, cm));
    char cmh[65];
    sodium_bin2hex(cmh, sizeof cmh, cm, 32);
    json_t *j = load_json("rc/report.json");
    assert_string_equal(json_string_value(json_object_get(json_array_get(jpath(j, "profile", "keys"), 0), "commitment")),
                        cmh);
    json_decref(j);
    /* no secret in any output: master key, signing seed, libsodium's secret key */
    uint8_t key[32];
    key_of_seed(1, key);
    char keyhex[65];
    sodium_bin2hex(keyhex, sizeof keyhex, key, 32);
    char *sk = read_bytes("sign.key", NULL);
    const char *sd = strstr(sk, "\nseed ");
    assert_non_null(sd);
    char seedhex[65];
    memcpy(seedhex, sd + 6, 64);
    seedhex[64] = '\0';
    uint8_t seed[32], pk[32], skb[64];
    assert_int_equal(sodium_hex2bin(seed, 32, seedhex, 64, NULL, &got, NULL), 0);
    crypto_sign_seed_keypair(pk, skb, seed);
    char skhex[129];
    sodium_bin2hex(skhex, sizeof skhex, skb, 64);
    char openhex[65];
    memcpy(openhex, o + 9, 64);
    openhex[64] = '\0';
    sh("pdftotext rc/report.pdf rc-pdf.txt");
    assert_int_equal(run_report("rc2", NULL), 0); /* stdout/stderr of a run */
    static const char *const outs[] = {"rc/report.json", "rc/report.pdf", "rc/report.sig", "rc-pdf.txt", "stdout",
                                       "stderr", "rc2/report.json", "rc2/report.sig"};
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
        TU_CHECK(!file_contains(outs[i], keyhex), "%s holds the master key", outs[i]);
        TU_CHECK(!file_contains(outs[i], seedhex), "%s holds the signing seed", outs[i]);
        TU_CHECK(!file_contains(outs[i], skhex), "%s holds the signing secret key", outs[i]);
        TU_CHECK(!file_contains(outs[i], openhex), "%s holds the commitment opening", outs[i]);
    }
    free(op);
    free(sk);
}

/* The measured false-positive rate is a statistic: on human text, among 1000
 * control keys, the number at α = 1e-2 lies in the exact two-sided 99.9%
 * interval of Binomial(1000, 1e-2). */
static void test_control_fpr(void **state) {
    (void)state;
    make_corpus();
    sh("mkdir -p human && cp /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/GPL-2 "
       "/usr/share/common-licenses/LGPL-3 /usr/share/common-licenses/MPL-2.0 human/");
    static const tokmark_scheme schemes[] = {TOKMARK_SCHEME_KGW, TOKMARK_SCHEME_GUMBEL};
    uint64_t hi = tu_binom_upper(1000, 1e-2, 5e-4);
    int64_t lo = tu_binom_lower(1000, 1e-2, 5e-4);
    for (size_t s = 0; s < 2; s++) {
        tokmark_profile_free(make_profile(schemes[s], 500 + s, "h.key"));
        char dir[32];
        snprintf(dir, sizeof dir, "rh%zu", s);
        const char *a[] = {"report", "--profile", "h.key", "--signing-key", "sign.key", "-o", dir, "human", NULL};
        assert_int_equal(run_tool(NULL, a), 0);
        char name[64];
        snprintf(name, sizeof name, "%s/report.json", dir);
        json_t *j = load_json(name);
        json_t *er = json_object_get(j, "error_rate");
        assert_int_equal(json_integer_value(json_object_get(er, "controls")), 1000);
        json_t *r = json_array_get(json_object_get(er, "rates"), 0);
        assert_true(json_number_value(json_object_get(r, "alpha")) == 1e-2);
        int64_t k = (int64_t)json_integer_value(json_object_get(r, "false_positives"));
        TU_CHECK(k > lo && (uint64_t)k < hi, "scheme %zu: %lld of 1000 controls at 1e-2, 99.9%% interval (%lld, %llu)",
                 s, (long long)k, (long long)lo, (unsigned long long)hi);
        TU_CHECK(json_integer_value(json_object_get(jpath(j, "results", "corpus"), "scored")) > 5000, "enough tuples");
        json_decref(j);
    }
}

/* ------------------------------------------------------------------------ */

static int setup_all(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/tokmark-report-XXXXXX");
    if (mkdtemp(g_dir) == NULL) return -1;
    if (sodium_init() < 0) return -1;
    return wt_setup();
}

static int teardown_all(void **state) {
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s'; rm -rf '%s'", g_dir, g_dir);
    if (system(cmd) != 0) return -1;
    wt_teardown();
    tokmark_profile_free(g_prof);
    return 0;
}

int main(int argc, char **argv) {
    (void)argc;
    cu_find_tool(argv[0]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binom_ci),          cmocka_unit_test(test_signing_keys),
        cmocka_unit_test(test_report_content),    cmocka_unit_test(test_byte_identity),
        cmocka_unit_test(test_verify_signatures), cmocka_unit_test(test_verify_evidence),
        cmocka_unit_test(test_auxiliary_evidence),
        cmocka_unit_test(test_pdf),               cmocka_unit_test(test_atomic_and_usage),
        cmocka_unit_test(test_secrets_and_commitment), cmocka_unit_test(test_control_fpr),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
