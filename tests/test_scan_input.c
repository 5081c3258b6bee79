/* test_scan_input.c — the input layer of `tokmark scan` (tools/cli/input.h):
 * the reader (plain text as documents, lines and paragraphs; JSON Lines;
 * gzip and zstd recognised by content, multi-member/multi-frame, truncated
 * and corrupt; binary and unreadable files; directory walks; stdin; units
 * longer than max_record) and the parser (text fields, nested paths, prompts,
 * chat turns, ids, predictions, and every error kind).  Fixtures are made at
 * run time in a mkdtemp directory.  Each reader run is written out as a
 * transcript ("U name:line #index @offset [data]" / "E kind name:line
 * #index") and compared whole, so every unit, line number and error counts. */
#define _XOPEN_SOURCE 700 /* mkdtemp, symlink, mkfifo */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "input.h"

static char g_dir[256];

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static char *path_of(const char *name) {
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ & 7];
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

static void write_file(const char *name, const void *data, size_t n) {
    FILE *f = fopen(path_of(name), "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_str(const char *name, const char *s) { write_file(name, s, strlen(s)); }

/* A growing byte buffer. */
typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
} bytes;

static void b_add(bytes *b, const void *d, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1)
            nc *= 2;
        b->p = realloc(b->p, nc);
        assert_non_null(b->p);
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void b_printf(bytes *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    assert_true(k >= 0 && (size_t)k < sizeof tmp);
    b_add(b, tmp, (size_t)k);
}

/* One gzip member of d[0..n). */
static void gz_member(bytes *out, const void *d, size_t n) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t bound = deflateBound(&zs, (uLong)n) + 32;
    unsigned char *tmp = malloc(bound);
    assert_non_null(tmp);
    zs.next_in = (Bytef *)(uintptr_t)d;
    zs.avail_in = (uInt)n;
    zs.next_out = tmp;
    zs.avail_out = (uInt)bound;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    b_add(out, tmp, bound - zs.avail_out);
    deflateEnd(&zs);
    free(tmp);
}

/* One zstd frame (with its checksum) of d[0..n). */
static void zst_frame(bytes *out, const void *d, size_t n) {
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
    size_t bound = ZSTD_compressBound(n);
    unsigned char *tmp = malloc(bound);
    assert_non_null(tmp);
    size_t k = ZSTD_compress2(c, tmp, bound, d, n);
    assert_false(ZSTD_isError(k));
    b_add(out, tmp, k);
    ZSTD_freeCCtx(c);
    free(tmp);
}

static const char *base_of(const char *src) {
    size_t dl = strlen(g_dir);
    if (strncmp(src, g_dir, dl) == 0 && src[dl] == '/') return src + dl + 1;
    return src;
}

/* The whole run as a transcript; nunits and nerrs (if not NULL) count. */
static char *transcript(const char *const *names, size_t n, const tmi_options *o, size_t *nunits, size_t *nerrs) {
    const char *paths[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++)
        paths[i] = strcmp(names[i], "-") == 0 || names[i][0] == '/' ? names[i] : path_of(names[i]);
    tmi_reader *r = NULL;
    assert_int_equal(tmi_reader_open(&r, paths, n, o), 0);
    bytes t = {0};
    b_add(&t, "", 0);
    tmi_unit u;
    tmi_error e;
    size_t nu = 0, ne = 0;
    int rc;
    while ((rc = tmi_reader_next(r, &u, &e)) != 0) {
        if (rc == 1) {
            b_printf(&t, "U %s:%llu #%llu @%llu [", base_of(u.source), (unsigned long long)u.line,
                     (unsigned long long)u.index, (unsigned long long)u.offset);
            b_add(&t, u.data, u.len);
            b_add(&t, "]\n", 2);
            nu++;
        } else {
            assert_int_equal(rc, -1);
            b_printf(&t, "E %s %s:%llu #%llu\n", tmi_error_name(e.kind), base_of(e.source), (unsigned long long)e.line,
                     (unsigned long long)e.index);
            assert_true(strlen(e.message) > 0);
            ne++;
        }
    }
    tmi_reader_close(r);
    if (nunits) *nunits = nu;
    if (nerrs) *nerrs = ne;
    return (char *)t.p;
}

static void expect_run(const char *const *names, size_t n, const tmi_options *o, const char *want) {
    char *got = transcript(names, n, o, NULL, NULL);
    if (strcmp(got, want) != 0) print_error("got:\n%s\nwant:\n%s\n", got, want);
    assert_string_equal(got, want);
    free(got);
}

#define RUN1(name, o, want)                                                                                            \
    do {                                                                                                               \
        const char *nm_[1] = {name};                                                                                   \
        expect_run(nm_, 1, o, want);                                                                                   \
    } while (0)

static tmi_options text_opts(int split) {
    tmi_options o;
    tmi_options_default(&o);
    o.format = TMI_FORMAT_TEXT;
    o.split = split;
    return o;
}

/* ------------------------------------------------------------------------ */
/* plain text                                                                */
/* ------------------------------------------------------------------------ */

static void test_text_doc(void **state) {
    (void)state;
    write_str("doc.txt", "Hello\r\nworld\n\nend");
    write_str("empty.txt", "");
    tmi_options o;
    tmi_options_default(&o); /* AUTO: .txt is text, a file is a document */
    const char *names[] = {"doc.txt", "empty.txt"};
    expect_run(names, 2, &o, "U doc.txt:1 #0 @0 [Hello\r\nworld\n\nend]\nU empty.txt:1 #0 @0 []\n");
}

static void test_text_lines(void **state) {
    (void)state;
    write_str("lines.txt", "one\r\ntwo\n\n\r\n  \nthree");
    tmi_options o = text_opts(TMI_SPLIT_LINES);
    RUN1("lines.txt", &o,
         "U lines.txt:1 #0 @0 [one]\nU lines.txt:2 #1 @5 [two]\nU lines.txt:5 #2 @12 [  ]\n"
         "U lines.txt:6 #3 @15 [three]\n");
}

static void test_text_paragraphs(void **state) {
    (void)state;
    write_str("para.txt", "  \npara one\nline b\n\n \t\n\npara two\r\nx\r\n\r\nlast\n");
    tmi_options o = text_opts(TMI_SPLIT_PARAGRAPHS);
    RUN1("para.txt", &o,
         "U para.txt:2 #0 @3 [para one\nline b]\nU para.txt:7 #1 @24 [para two\r\nx]\n"
         "U para.txt:10 #2 @39 [last]\n");
    write_str("para2.txt", "a\nb"); /* no final newline */
    RUN1("para2.txt", &o, "U para2.txt:1 #0 @0 [a\nb]\n");
}

/* ------------------------------------------------------------------------ */
/* JSON Lines: units                                                         */
/* ------------------------------------------------------------------------ */

static void test_jsonl_units(void **state) {
    (void)state;
    write_str("d.jsonl", "\xef\xbb\xbf{\"text\":\"a\"}\n\n  \t\r\n{\"text\":\"b\"}\r\n{\"text\":\"c\"}");
    tmi_options o;
    tmi_options_default(&o);
    RUN1("d.jsonl", &o,
         "U d.jsonl:1 #0 @3 [{\"text\":\"a\"}]\nU d.jsonl:4 #1 @22 [{\"text\":\"b\"}]\n"
         "U d.jsonl:5 #2 @36 [{\"text\":\"c\"}]\n");
    /* format by name, with .gz/.zst removed; content decides compression */
    write_str("e.ndjson", "{}\n");
    write_str("f.json", "{}\n");
    write_str("g.txt", "{}\n");
    bytes z = {0};
    gz_member(&z, "{}\n", 3);
    write_file("h.jsonl.gz", z.p, z.n);
    write_file("i.txt.gz", z.p, z.n);
    free(z.p);
    const char *names[] = {"e.ndjson", "f.json", "g.txt", "h.jsonl.gz", "i.txt.gz"};
    tmi_reader *r = NULL;
    const char *paths[5];
    for (int i = 0; i < 5; i++)
        paths[i] = path_of(names[i]);
    assert_int_equal(tmi_reader_open(&r, paths, 5, &o), 0);
    int want[] = {1, 1, 0, 1, 0};
    for (int i = 0; i < 5; i++) {
        tmi_unit u;
        tmi_error e;
        assert_int_equal(tmi_reader_next(r, &u, &e), 1);
        assert_int_equal(u.is_jsonl, want[i]);
        assert_int_equal(u.len, 2 + (want[i] ? 0 : 1)); /* text: a document "{}\n" */
    }
    tmi_unit u;
    tmi_error e;
    assert_int_equal(tmi_reader_next(r, &u, &e), 0);
    tmi_reader_close(r);
}

/* ------------------------------------------------------------------------ */
/* compression                                                               */
/* ------------------------------------------------------------------------ */

static const char k_lines3[] = "line1\nline2\nline3\n";
static const char k_lines3_want_fmt[] = "U %s:1 #0 @0 [line1]\nU %s:2 #1 @6 [line2]\nU %s:3 #2 @12 [line3]\n";

static void expect_lines3(const char *name, const char *tail) {
    char want[512];
    snprintf(want, sizeof want, k_lines3_want_fmt, name, name, name);
    strcat(want, tail);
    tmi_options o = text_opts(TMI_SPLIT_LINES);
    RUN1(name, &o, want);
}

static void test_gzip_multi_member(void **state) {
    (void)state;
    bytes z = {0};
    gz_member(&z, k_lines3, 8); /* members cut inside a line */
    gz_member(&z, k_lines3 + 8, 5);
    gz_member(&z, "", 0);
    gz_member(&z, k_lines3 + 13, sizeof k_lines3 - 1 - 13);
    write_file("multi.gz", z.p, z.n);
    write_file("multi-noext", z.p, z.n); /* by content, not by name */
    expect_lines3("multi.gz", "");
    expect_lines3("multi-noext", "");
    /* the trailer cut off: every line decoded, then the error */
    write_file("cut-trailer.gz", z.p, z.n - 4);
    expect_lines3("cut-trailer.gz", "E truncated cut-trailer.gz:4 #3\n");
    /* a damaged CRC */
    z.p[z.n - 6] ^= 0x55;
    write_file("badcrc.gz", z.p, z.n);
    expect_lines3("badcrc.gz", "E corrupt badcrc.gz:4 #3\n");
    z.p[z.n - 6] ^= 0x55;
    /* garbage after the last member */
    b_add(&z, "garbage", 7);
    write_file("garbage.gz", z.p, z.n);
    expect_lines3("garbage.gz", "E corrupt garbage.gz:4 #3\n");
    free(z.p);
}

static void test_zstd_multi_frame(void **state) {
    (void)state;
    bytes z = {0};
    zst_frame(&z, k_lines3, 8);
    zst_frame(&z, k_lines3 + 8, 10);
    zst_frame(&z, k_lines3 + 18, 0);
    write_file("multi.zst", z.p, z.n);
    write_file("multi-zst-noext", z.p, z.n);
    expect_lines3("multi.zst", "");
    expect_lines3("multi-zst-noext", "");
    /* the last frame's checksum cut off */
    bytes y = {0};
    zst_frame(&y, k_lines3, sizeof k_lines3 - 1);
    write_file("cut.zst", y.p, y.n - 2);
    expect_lines3("cut.zst", "E truncated cut.zst:4 #3\n");
    /* a wrong checksum in the second frame: zstd checks it before it hands
     * out that frame's data, so the units of the first frame are kept */
    bytes w = {0};
    zst_frame(&w, k_lines3, 12);
    zst_frame(&w, k_lines3 + 12, 6);
    w.p[w.n - 1] ^= 0x55;
    write_file("badsum.zst", w.p, w.n);
    tmi_options o = text_opts(TMI_SPLIT_LINES);
    RUN1("badsum.zst", &o, "U badsum.zst:1 #0 @0 [line1]\nU badsum.zst:2 #1 @6 [line2]\nE corrupt badsum.zst:3 #2\n");
    free(w.p);
    b_add(&y, "garbage!", 8);
    write_file("garbage.zst", y.p, y.n);
    expect_lines3("garbage.zst", "E corrupt garbage.zst:4 #3\n");
    free(z.p);
    free(y.p);
}

/* A stream cut in the middle of its data: the units before the cut are
 * exactly the first lines, the cut line is the error, nothing after. */
static void check_cut(const char *name, int zstd) {
    bytes plain = {0}, z = {0};
    uint64_t x = 12345;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        b_printf(&plain, "line %d %016llx\n", i + 1, (unsigned long long)x);
    }
    if (zstd)
        zst_frame(&z, plain.p, plain.n);
    else
        gz_member(&z, plain.p, plain.n);
    write_file(name, z.p, z.n / 2);
    tmi_options o = text_opts(TMI_SPLIT_LINES);
    const char *nm[1] = {name};
    size_t nu = 0, ne = 0;
    char *t = transcript(nm, 1, &o, &nu, &ne);
    assert_int_equal(ne, 1);
    assert_true(nu > 100 && nu < 20000);
    const char *p = t;
    for (size_t i = 0; i < nu; i++) {
        char want[128];
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        snprintf(want, sizeof want, "U %s:%zu #%zu @", name, i + 1, i);
        assert_memory_equal(p, want, strlen(want));
        const char *lb = strchr(p, '[');
        const char *pl = (const char *)plain.p;
        size_t off = (size_t)strtoull(p + strlen(want), NULL, 10);
        assert_memory_equal(lb + 1, pl + off, (size_t)(nl - 1 - lb - 1));
        assert_int_equal(pl[off + (size_t)(nl - 1 - lb - 1)], '\n');
        p = nl + 1;
    }
    char want[128];
    snprintf(want, sizeof want, "E truncated %s:%zu #%zu\n", name, nu + 1, nu);
    assert_string_equal(p, want);
    free(t);
    free(plain.p);
    free(z.p);
}

static void test_cut_streams(void **state) {
    (void)state;
    check_cut("half.gz", 0);
    check_cut("half.zst", 1);
}

/* ------------------------------------------------------------------------ */
/* bad files                                                                 */
/* ------------------------------------------------------------------------ */

static void test_binary_and_unreadable(void **state) {
    (void)state;
    static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    write_file("image.png", png, sizeof png);
    bytes z = {0};
    gz_member(&z, png, sizeof png);
    write_file("image.png.gz", z.p, z.n);
    free(z.p);
    unsigned char ctl[64];
    for (int i = 0; i < 64; i++)
        ctl[i] = (unsigned char)(1 + i % 8); /* control bytes, no NUL */
    write_file("ctl.bin", ctl, sizeof ctl);
    write_str("ok.txt", "fine");
    /* Unreadable files that stay unreadable for root (tests may run as
     * root, for whom mode 000 is no obstacle): a symbolic link to nothing,
     * given explicitly (followed: ENOENT), and a path through a regular file
     * (ENOTDIR).  /proc/self/mem fails its first read (EIO) for root too.
     * A mode-000 file is checked too when not root. */
    unlink(path_of("dangling"));
    assert_int_equal(symlink(path_of("no-such-file"), path_of("dangling")), 0);
    write_str("secret.txt", "x");
    assert_int_equal(chmod(path_of("secret.txt"), 0), 0);
    tmi_options o;
    tmi_options_default(&o);
    const char *names[] = {"image.png", "image.png.gz", "ctl.bin",        "dangling",
                           "ok.txt/x",  "missing",      "/proc/self/mem", "ok.txt"};
    expect_run(names, 8, &o,
               "E binary image.png:0 #0\nE binary image.png.gz:0 #0\nE binary ctl.bin:0 #0\n"
               "E io dangling:0 #0\nE io ok.txt/x:0 #0\nE io missing:0 #0\nE io /proc/self/mem:0 #0\n"
               "U ok.txt:1 #0 @0 [fine]\n");
    if (geteuid() != 0) {
        RUN1("secret.txt", &o, "E io secret.txt:0 #0\n");
    }
    chmod(path_of("secret.txt"), 0600);
}

static void test_directory_tree(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/tree'", g_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mkdir(path_of("tree"), 0700), 0);
    assert_int_equal(mkdir(path_of("tree/a"), 0700), 0);
    assert_int_equal(mkdir(path_of("tree/a/deeper"), 0700), 0);
    assert_int_equal(mkdir(path_of("tree/empty"), 0700), 0);
    write_str("tree/b.txt", "b");
    write_str("tree/B.txt", "B");
    write_str("tree/a/z.txt", "z");
    write_str("tree/a/deeper/y.txt", "y");
    write_str("tree/a.txt", "a.txt");
    write_str("tree/\xc3\xa9.txt", "e-acute");
    write_str("tree/c.jsonl", "{\"text\":\"c\"}\n");
    assert_int_equal(symlink(path_of("tree/b.txt"), path_of("tree/link.txt")), 0);  /* not followed */
    assert_int_equal(symlink(path_of("nowhere"), path_of("tree/dangling.txt")), 0); /* not followed */
    assert_int_equal(mkfifo(path_of("tree/fifo"), 0600), 0);                        /* not opened */
    tmi_options o;
    tmi_options_default(&o);
    const char *nm[1] = {"tree/"};
    char *t = transcript(nm, 1, &o, NULL, NULL);
    const char *want = "U tree/B.txt:1 #0 @0 [B]\nU tree/a/deeper/y.txt:1 #0 @0 [y]\nU tree/a/z.txt:1 #0 @0 [z]\n"
                       "U tree/a.txt:1 #0 @0 [a.txt]\nU tree/b.txt:1 #0 @0 [b]\n"
                       "U tree/c.jsonl:1 #0 @0 [{\"text\":\"c\"}]\nU tree/\xc3\xa9.txt:1 #0 @0 [e-acute]\n";
    if (strcmp(t, want) != 0) print_error("got:\n%s", t);
    assert_string_equal(t, want);
    free(t);
    const char *p = path_of("tree");
    tmi_reader *r = NULL;
    assert_int_equal(tmi_reader_open(&r, &p, 1, &o), 0);
    assert_int_equal(tmi_reader_skipped_entries(r), 3);
    assert_int_equal(tmi_reader_bytes_total(r), 1 + 1 + 1 + 1 + 5 + 7 + 13);
    tmi_unit u;
    tmi_error e;
    while (tmi_reader_next(r, &u, &e) != 0) {
    }
    assert_int_equal(tmi_reader_bytes_in(r), tmi_reader_bytes_total(r));
    tmi_reader_close(r);
    /* an explicitly given symbolic link is followed */
    RUN1("tree/link.txt", &o, "U tree/link.txt:1 #0 @0 [b]\n");
}

static void test_stdin(void **state) {
    (void)state;
    bytes z = {0};
    gz_member(&z, "{\"text\":\"from\"}\n{\"text\":\"stdin\"}\n", 33);
    write_file("stdin.gz", z.p, z.n);
    free(z.p);
    int saved = dup(0);
    assert_true(saved >= 0);
    int fd = open(path_of("stdin.gz"), O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(dup2(fd, 0), 0);
    close(fd);
    tmi_options o;
    tmi_options_default(&o);
    o.format = TMI_FORMAT_JSONL;
    const char *nm[1] = {"-"};
    char *t = transcript(nm, 1, &o, NULL, NULL);
    assert_int_equal(dup2(saved, 0), 0);
    close(saved);
    assert_string_equal(t, "U -:1 #0 @0 [{\"text\":\"from\"}]\nU -:2 #1 @16 [{\"text\":\"stdin\"}]\n");
    free(t);
}

/* ------------------------------------------------------------------------ */
/* too long                                                                  */
/* ------------------------------------------------------------------------ */

static void test_too_long(void **state) {
    (void)state;
    write_str("long.txt", "short\n0123456789abcdefX\n0123456789abcdef\r\nafter\n0123456789abcdefgh");
    tmi_options o = text_opts(TMI_SPLIT_LINES);
    o.max_record = 16;
    RUN1("long.txt", &o,
         "U long.txt:1 #0 @0 [short]\nE too_long long.txt:2 #1\nU long.txt:3 #2 @24 [0123456789abcdef]\n"
         "U long.txt:4 #3 @42 [after]\nE too_long long.txt:5 #4\n");
    o.split = TMI_SPLIT_PARAGRAPHS;
    write_str("longp.txt", "p1\n\n0123456789\n0123456789\n\nshort\nok\n\n0123456789abcdefXYZ\nz\n\nend");
    RUN1("longp.txt", &o,
         "U longp.txt:1 #0 @0 [p1]\nE too_long longp.txt:3 #1\nU longp.txt:6 #2 @27 [short\nok]\n"
         "E too_long longp.txt:9 #3\nU longp.txt:12 #4 @60 [end]\n");
    o.split = TMI_SPLIT_DOC;
    write_str("longd.txt", "0123456789abcdefg");
    write_str("okd.txt", "0123456789abcdef");
    const char *names[] = {"longd.txt", "okd.txt"};
    expect_run(names, 2, &o, "E too_long longd.txt:1 #0\nU okd.txt:1 #0 @0 [0123456789abcdef]\n");

    /* lines far longer than the buffer, skipped without being kept: a 10 MB
     * line under max_record 1000 between two short ones, plain and gzip */
    size_t big = (size_t)10 << 20;
    char *s = malloc(big + 32);
    assert_non_null(s);
    memcpy(s, "{\"text\":\"a\"}\n", 13);
    memset(s + 13, 'x', big);
    memcpy(s + 13 + big, "\n{\"text\":\"b\"}\n", 14);
    write_file("big.jsonl", s, big + 27);
    bytes z = {0};
    gz_member(&z, s, big + 27);
    write_file("big.jsonl.gz", z.p, z.n);
    free(z.p);
    free(s);
    tmi_options j;
    tmi_options_default(&j);
    j.max_record = 1000;
    char want[256];
    snprintf(want, sizeof want,
             "U big.jsonl:1 #0 @0 [{\"text\":\"a\"}]\nE too_long big.jsonl:2 #1\n"
             "U big.jsonl:3 #2 @%zu [{\"text\":\"b\"}]\n",
             big + 14);
    RUN1("big.jsonl", &j, want);
    snprintf(want, sizeof want,
             "U big.jsonl.gz:1 #0 @0 [{\"text\":\"a\"}]\nE too_long big.jsonl.gz:2 #1\n"
             "U big.jsonl.gz:3 #2 @%zu [{\"text\":\"b\"}]\n",
             big + 14);
    RUN1("big.jsonl.gz", &j, want);

    /* a long last line without "\n", longer than the buffer: too long at a
     * clean end; the stream's error when the stream is cut inside it */
    size_t five = (size_t)5 << 20;
    s = malloc(five + 3);
    assert_non_null(s);
    memcpy(s, "ok\n", 3);
    memset(s + 3, 'y', five);
    write_file("bigeof.txt", s, five + 3);
    z = (bytes){0};
    gz_member(&z, s, five + 3);
    write_file("bigcut.gz", z.p, z.n / 2);
    free(z.p);
    free(s);
    tmi_options t = text_opts(TMI_SPLIT_LINES);
    t.max_record = 1000;
    RUN1("bigeof.txt", &t, "U bigeof.txt:1 #0 @0 [ok]\nE too_long bigeof.txt:2 #1\n");
    RUN1("bigcut.gz", &t, "U bigcut.gz:1 #0 @0 [ok]\nE truncated bigcut.gz:2 #1\n");
}

/* A real 100 MB line under the default max_record (32 MiB), streamed from
 * gzip so that the fixture stays small on disk. */
static void test_100mb_line(void **state) {
    (void)state;
    size_t big = (size_t)100 << 20;
    char *s = malloc(big + 64);
    assert_non_null(s);
    memcpy(s, "{\"text\":\"", 9);
    memset(s + 9, 'w', big);
    memcpy(s + 9 + big, "\"}\n{\"text\":\"next\"}\n", 19);
    bytes z = {0};
    gz_member(&z, s, big + 28);
    free(s);
    write_file("100mb.jsonl.gz", z.p, z.n);
    free(z.p);
    tmi_options o;
    tmi_options_default(&o);
    char want[256];
    snprintf(want, sizeof want, "E too_long 100mb.jsonl.gz:1 #0\nU 100mb.jsonl.gz:2 #1 @%zu [{\"text\":\"next\"}]\n",
             big + 12);
    RUN1("100mb.jsonl.gz", &o, want);
}

/* ------------------------------------------------------------------------ */
/* the parser                                                                */
/* ------------------------------------------------------------------------ */

/* A record as text: "S|P role? [text]" per segment, "ids=..." "pred=...". */
static void record_text(const tmi_record *rec, bytes *b) {
    for (size_t i = 0; i < rec->nseg; i++) {
        const tmi_segment *s = &rec->seg[i];
        b_printf(b, "%s", s->score ? "S" : "P");
        if (s->role) b_printf(b, ":%s", s->role);
        if (s->text) {
            b_add(b, "[", 1);
            for (size_t k = 0; k < s->len; k++) /* NUL bytes shown as \0 */
                if (s->text[k] == 0)
                    b_add(b, "\\0", 2);
                else
                    b_add(b, s->text + k, 1);
            b_add(b, "]", 1);
        } else {
            assert_null(s->text);
            b_add(b, "(", 1);
            for (size_t k = 0; k < s->n_ids; k++)
                b_printf(b, "%s%d", k ? "," : "", s->ids[k]);
            b_add(b, ")", 1);
        }
    }
    if (rec->pred != NULL) {
        b_add(b, " pred=", 6);
        for (size_t k = 0; k < rec->n_pred; k++)
            b_printf(b, "%s%d", k ? "," : "", rec->pred[k]);
    }
}

/* Parse one line; "S[...]..." or "E kind: message". */
static char *parse_line(tmi_parser *p, const char *line, size_t len) {
    tmi_unit u = {"src.jsonl", 7, 42, 0, line, len, 1};
    tmi_record rec;
    tmi_error e;
    bytes b = {0};
    b_add(&b, "", 0);
    if (tmi_parse(p, &u, &rec, &e) == 0) {
        record_text(&rec, &b);
    } else {
        assert_string_equal(e.source, "src.jsonl");
        assert_int_equal(e.line, 42);
        assert_int_equal(e.index, 7);
        b_printf(&b, "E %s: %s", tmi_error_name(e.kind), e.message);
    }
    return (char *)b.p;
}

static void expect_parse(tmi_parser *p, const char *line, const char *want) {
    /* with the fast path and without it: the same answer */
    for (int off = 0; off < 2; off++) {
        tmi_parser_set_fast(p, off);
        char *got = parse_line(p, line, strlen(line));
        if (strncmp(got, want, strlen(want)) != 0) print_error("line %s\ngot  %s\nwant %s\n", line, got, want);
        assert_true(strncmp(got, want, strlen(want)) == 0);
        free(got);
    }
    tmi_parser_set_fast(p, 0);
}

static void test_parse_text_fields(void **state) {
    (void)state;
    tmi_options o;
    tmi_options_default(&o);
    tmi_parser *p = NULL;
    assert_int_equal(tmi_parser_create(&p, &o), 0);
    expect_parse(p, "{\"text\":\"hello\"}", "S[hello]");
    expect_parse(
        p,
        " {\"id\": 3, \"meta\": {\"x\": [1, 2.5e3, true, null, {}]}, \"text\" : \"a\\nb\\u00e9\\ud83d\\ude00\\\"\"} ",
        "S[a\nb\xc3\xa9\xf0\x9f\x98\x80\"]");
    expect_parse(p, "{\"text\":\"nul\\u0000inside\"}", "S[nul\\0inside]");
    expect_parse(p, "{\"text\":\"x\",\"text\":\"last wins\"}", "S[last wins]");
    expect_parse(p, "{\"text\":\"\"}", "S[]");
    assert_true(tmi_parser_fast_count(p) >= 4);
    /* errors */
    expect_parse(p, "{\"text\": \"x\"", "E bad_json: invalid JSON at byte");
    expect_parse(p, "{\"text\": \"x\"} trailing", "E bad_json:");
    expect_parse(p, "{\"text\": \"\\ud800\"}", "E bad_json:");
    expect_parse(p, "{\"n\": 123456789012345678901234567890, \"text\": \"x\"}", "E bad_json:");
    expect_parse(p, "{\"n\": 1e999, \"text\": \"x\"}", "E bad_json:");
    expect_parse(p, "{\"n\": 01, \"text\": \"x\"}", "E bad_json:");
    expect_parse(p, "[\"text\"]", "E not_object: the record is an array");
    expect_parse(p, "{\"other\": \"x\"}", "E missing_field: no field \"text\" (nor \"messages\", \"ids\")");
    expect_parse(p, "{\"text\": 5}", "E wrong_type: field \"text\" is an integer, not a string");
    expect_parse(p, "{\"text\": null}", "E wrong_type: field \"text\" is null, not a string");
    expect_parse(p, "{\"text\": \"bad \xff byte\"}", "E invalid_utf8: invalid UTF-8 at byte 14");
    expect_parse(p, "{\"x\": \"\xc0\xaf\", \"text\": \"y\"}", "E invalid_utf8: invalid UTF-8 at byte 7");
    tmi_parser_free(p);

    /* a nested path and a prompt */
    o.field = "answer.text";
    o.prompt_field = "q";
    assert_int_equal(tmi_parser_create(&p, &o), 0);
    expect_parse(p, "{\"q\":\"Why?\",\"answer\":{\"lang\":\"en\",\"text\":\"Because.\"}}", "P[Why?]S[Because.]");
    expect_parse(p, "{\"answer\":{\"text\":\"no prompt\"}}", "S[no prompt]");
    expect_parse(p, "{\"answer\":\"flat\"}", "E wrong_type: field \"answer.text\": \"answer\" is not an object");
    expect_parse(p, "{\"q\": 1, \"answer\":{\"text\":\"x\"}}", "E wrong_type: field \"q\" is an integer");
    expect_parse(p, "{\"answer\":{\"text\":\"a\"},\"answer\":{\"other\":1}}", "E missing_field");
    tmi_parser_free(p);
}

static void test_parse_chat_ids_pred(void **state) {
    (void)state;
    tmi_options o;
    tmi_options_default(&o);
    tmi_parser *p = NULL;
    assert_int_equal(tmi_parser_create(&p, &o), 0);
    expect_parse(
        p,
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi\"},"
        "{\"role\":\"assistant\",\"content\":\"Hello!\"},{\"role\":\"assistant\",\"content\":null},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image\"},"
        "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":\"Bye\"}]}",
        "P:system[Be brief.]P:user[Hi]S:assistant[Hello!]P:user[ab]S:assistant[Bye]");
    expect_parse(p, "{\"messages\":[{\"role\":\"user\",\"content\":\"only a question\"}]}",
                 "E no_scored: field \"messages\": no turn of a scored role (assistant)");
    expect_parse(p, "{\"messages\":{\"role\":\"user\"}}",
                 "E wrong_type: field \"messages\" is an object, not an array");
    expect_parse(p, "{\"messages\":[{\"content\":\"x\"}]}",
                 "E wrong_type: field \"messages\": turn 0 is not an object");
    expect_parse(p, "{\"messages\":[{\"role\":\"assistant\",\"content\":7}]}", "E wrong_type:");
    expect_parse(p, "{\"ids\":[1,2,2147483647]}", "S(1,2,2147483647)");
    expect_parse(p, "{\"ids\":[]}", "S()");
    expect_parse(p, "{\"ids\":[1,2147483648]}", "E bad_ids: field \"ids\": element 1 (2147483648) is out of range");
    expect_parse(p, "{\"ids\":[1,-1]}", "E bad_ids:");
    expect_parse(p, "{\"ids\":[1,2.0]}", "E bad_ids: field \"ids\": element 1 is a real number, not an integer");
    expect_parse(p, "{\"ids\":\"1 2\"}", "E wrong_type: field \"ids\" is a string, not an array");
    tmi_parser_free(p);

    /* chat with other scored roles */
    const char *roles[] = {"user", "tool"};
    o.score_roles = roles;
    o.n_score_roles = 2;
    assert_int_equal(tmi_parser_create(&p, &o), 0);
    expect_parse(p, "{\"messages\":[{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\",\"content\":\"a\"}]}",
                 "S:user[u]P:assistant[a]");
    tmi_parser_free(p);

    /* reading mode */
    tmi_options_default(&o);
    o.pred_field = "pred";
    assert_int_equal(tmi_parser_create(&p, &o), 0);
    expect_parse(p, "{\"ids\":[5,6,7],\"pred\":[6,9,8],\"text\":\"ignored\"}", "S(5,6,7) pred=6,9,8");
    expect_parse(p, "{\"ids\":[5,6,7],\"pred\":[6,9]}", "E bad_ids: field \"pred\" has 2 predictions for 3 ids");
    expect_parse(p, "{\"ids\":[5,6,7]}", "E missing_field: no field \"pred\"");
    expect_parse(p, "{\"pred\":[5,6,7]}", "E missing_field: no field \"ids\"");
    tmi_parser_free(p);
}

static void test_parse_plain_text(void **state) {
    (void)state;
    tmi_options o;
    tmi_options_default(&o);
    tmi_parser *p = NULL;
    assert_int_equal(tmi_parser_create(&p, &o), 0);
    const char text[] = "caf\xc3\xa9\nline two \xf0\x9f\x98\x80\nbad \xed\xa0\x80 surrogate";
    tmi_unit u = {"t.txt", 0, 3, 0, text, sizeof text - 1, 0};
    tmi_record rec;
    tmi_error e;
    assert_int_equal(tmi_parse(p, &u, &rec, &e), -1);
    assert_int_equal(e.kind, TMI_ERR_INVALID_UTF8);
    assert_int_equal(e.line, 3);
    assert_string_equal(e.message, "invalid UTF-8 at byte 24 (line 5)");
    u.len = 24;
    assert_int_equal(tmi_parse(p, &u, &rec, &e), 0);
    assert_int_equal(rec.nseg, 1);
    assert_int_equal(rec.seg[0].score, 1);
    assert_ptr_equal(rec.seg[0].text, text);
    assert_int_equal(rec.seg[0].len, 24);
    tmi_parser_free(p);
    /* the validator against a byte-at-a-time reference on random sequences */
    uint64_t x = 99;
    for (int it = 0; it < 20000; it++) {
        unsigned char s[40];
        size_t n = (size_t)(it % 40);
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            unsigned v = (unsigned)(x >> 33);
            s[i] = (unsigned char)(v % 4 == 0   ? 0x80 + (v >> 8) % 0x80
                                   : v % 4 == 1 ? 0xC0 + (v >> 8) % 0x40
                                                : 0x20 + (v >> 8) % 0x5f);
        }
        /* reference: decode code points by the book */
        size_t ref = n;
        for (size_t i = 0; i < n;) {
            unsigned c = s[i];
            size_t l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
            unsigned long cp = l == 1 ? c : l == 2 ? (c & 0x1F) : l == 3 ? (c & 0x0F) : (c & 0x07);
            int ok = l > 0 && i + l <= n;
            for (size_t k = 1; ok && k < l; k++) {
                ok = (s[i + k] & 0xC0) == 0x80;
                cp = cp << 6 | (s[i + k] & 0x3F);
            }
            if (ok) {
                static const unsigned long minv[5] = {0, 0, 0x80, 0x800, 0x10000};
                ok = cp >= minv[l] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
            }
            if (!ok) {
                ref = i;
                break;
            }
            i += l;
        }
        assert_int_equal(tmi_utf8_check((const char *)s, n), ref);
    }
}

/* Random records, well-formed and damaged: the fast path and jansson give
 * the same answer on every one, and the fast path takes the clean ones. */
static void rnd_string(bytes *b, uint64_t *x) {
    static const char *const pieces[] = {"a",        "Hello",        " ",
                                         "\\n",      "\\\"",         "\\\\",
                                         "\\/",      "\\u00e9",      "\\ud83d\\ude00",
                                         "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                         "\\t",      "\\u0041",      "text",
                                         "."};
    b_add(b, "\"", 1);
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    int n = (int)((*x >> 40) % 12);
    for (int i = 0; i < n; i++) {
        *x = *x * 6364136223846793005ull + 1442695040888963407ull;
        const char *pc = pieces[(*x >> 35) % 16];
        b_add(b, pc, strlen(pc));
    }
    b_add(b, "\"", 1);
}

static void rnd_value(bytes *b, uint64_t *x, int depth) {
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    static const char *const scalars[] = {"0", "-12", "3.25", "1e5", "-0.5E-3", "true", "false", "null", "123456789"};
    unsigned k = (unsigned)((*x >> 37) % (depth > 3 ? 10u : 13u));
    if (k < 9) {
        b_add(b, scalars[k], strlen(scalars[k]));
    } else if (k == 9) {
        rnd_string(b, x);
    } else if (k == 10 || k == 11) {
        b_add(b, "[", 1);
        int n = (int)((*x >> 20) % 4);
        for (int i = 0; i < n; i++) {
            if (i) b_add(b, ", ", 2);
            rnd_value(b, x, depth + 1);
        }
        b_add(b, "]", 1);
    } else {
        b_add(b, "{", 1);
        int n = (int)((*x >> 20) % 4);
        for (int i = 0; i < n; i++) {
            if (i) b_add(b, ",", 1);
            rnd_string(b, x);
            b_add(b, ":", 1);
            rnd_value(b, x, depth + 1);
        }
        b_add(b, "}", 1);
    }
}

static void rnd_chat(bytes *b, uint64_t *x) {
    static const char *const roles[] = {"\"user\"", "\"assistant\"", "\"system\"", "\"assist\\u0061nt\"", "3"};
    static const char *const contents[] = {"null", "7", "[{\"type\":\"text\",\"text\":\"part\"}]", "[]"};
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    int n = (int)((*x >> 33) % 4);
    b_add(b, "[", 1);
    for (int i = 0; i < n; i++) {
        *x = *x * 6364136223846793005ull + 1442695040888963407ull;
        unsigned v = (unsigned)(*x >> 30);
        if (i) b_add(b, ", ", 2);
        if (v % 17 == 0) {
            b_add(b, "\"turn\"", 6);
            continue;
        }
        b_add(b, "{", 1);
        int fields = 0;
        if (v % 11 != 0) { /* usually a role */
            b_add(b, "\"role\": ", 8);
            b_add(b, roles[(v >> 4) % 5], strlen(roles[(v >> 4) % 5]));
            fields++;
        }
        if (v % 13 == 0) {
            if (fields++) b_add(b, ", ", 2);
            b_add(b, "\"name\": {\"a\": [1, 2]}", 22);
        }
        if (v % 7 != 0) { /* usually a content */
            if (fields++) b_add(b, ", ", 2);
            b_add(b, "\"content\":", 10);
            if ((v >> 8) % 5)
                rnd_string(b, x);
            else
                b_add(b, contents[(v >> 12) % 4], strlen(contents[(v >> 12) % 4]));
        }
        if (v % 19 == 0) { /* a duplicate (or a first) role */
            if (fields++) b_add(b, ", ", 2);
            b_add(b, "\"role\": \"assistant\"", 19);
        }
        b_add(b, "}", 1);
    }
    b_add(b, "]", 1);
}

static void rnd_ids(bytes *b, uint64_t *x) {
    static const char *const odd[] = {"-1", "2147483648", "2147483647", "1.0", "1e3", "\"5\"", "99999999999"};
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    int n = (int)((*x >> 33) % 6);
    b_add(b, "[ ", 2);
    for (int i = 0; i < n; i++) {
        *x = *x * 6364136223846793005ull + 1442695040888963407ull;
        unsigned v = (unsigned)(*x >> 30);
        if (i) b_add(b, v % 3 ? "," : " ,\n", v % 3 ? 1 : 3);
        if (v % 23 == 0)
            b_add(b, odd[(v >> 5) % 7], strlen(odd[(v >> 5) % 7]));
        else
            b_printf(b, "%u", (v >> 3) % 200000);
    }
    b_add(b, "]", 1);
}

static void test_parse_fast_vs_jansson(void **state) {
    (void)state;
    tmi_options o;
    tmi_options_default(&o);
    o.field = "text";
    o.prompt_field = "p.q";
    tmi_parser *fast = NULL, *lib = NULL;
    assert_int_equal(tmi_parser_create(&fast, &o), 0);
    assert_int_equal(tmi_parser_create(&lib, &o), 0);
    tmi_parser_set_fast(lib, 1);
    uint64_t x = 2024;
    size_t same_ok = 0, errors = 0;
    size_t chat_ok = 0, ids_ok = 0;
    for (int it = 0; it < 60000; it++) {
        bytes b = {0};
        b_add(&b, "{", 1);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int n = (int)((x >> 30) % 5), where = (int)((x >> 40) % 6);
        for (int i = 0; i < n; i++) {
            if (i) b_add(&b, ",", 1);
            unsigned kind = (unsigned)((x >> 56) % 8);
            if (i == where % (n ? n : 1) && kind >= 6) {
                b_add(&b, kind == 6 ? "\"messages\": " : "\"ids\":", kind == 6 ? 12 : 6);
                if (kind == 6)
                    rnd_chat(&b, &x);
                else
                    rnd_ids(&b, &x);
            } else if (i == where % (n ? n : 1) && (x >> 50) % 4 != 0) {
                b_add(&b, "\"text\":", 7);
                if ((x >> 52) % 4)
                    rnd_string(&b, &x);
                else
                    rnd_value(&b, &x, 0);
                if ((x >> 45) % 3 == 0) {
                    b_add(&b, ",\"p\":{\"q\":", 10);
                    rnd_string(&b, &x);
                    b_add(&b, "}", 1);
                }
            } else {
                rnd_string(&b, &x);
                b_add(&b, " : ", 3);
                rnd_value(&b, &x, 0);
            }
        }
        b_add(&b, "}", 1);
        /* damage some: a byte replaced, dropped or duplicated */
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        if ((x >> 60) < 6 && b.n > 2) {
            size_t at = (size_t)((x >> 10) % b.n);
            static const char repl[] = "\"\\{}[],: 0x\xff\xc3\x01u";
            int how = (int)((x >> 5) % 3);
            if (how == 0)
                b.p[at] = (unsigned char)repl[(x >> 20) % (sizeof repl - 1)];
            else if (how == 1)
                memmove(b.p + at, b.p + at + 1, b.n - at), b.n--;
            else
                b_add(&b, "", 0), b.n = at + 1;
        }
        char *a = parse_line(fast, (const char *)b.p, b.n);
        char *c = parse_line(lib, (const char *)b.p, b.n);
        if (strcmp(a, c) != 0) print_error("record %.*s\nfast %s\nlib  %s\n", (int)b.n, b.p, a, c);
        assert_string_equal(a, c);
        chat_ok += a[0] != 'E' && strchr(a, ':') != NULL && strstr(a, "S[") == NULL;
        ids_ok += a[0] == 'S' && a[1] == '(';
        if (a[0] == 'E')
            errors++;
        else
            same_ok++;
        free(a);
        free(c);
        free(b.p);
    }
    print_message("fast vs jansson: %zu ok (%zu chat, %zu ids), %zu errors, %llu fast\n", same_ok, chat_ok, ids_ok,
                  errors, (unsigned long long)tmi_parser_fast_count(fast));
    assert_true(same_ok > 5000 && errors > 1000 && chat_ok > 500 && ids_ok > 500);
    /* all but the records with a duplicate "text" key */
    assert_true(tmi_parser_fast_count(fast) > same_ok * 9 / 10);
    assert_int_equal(tmi_parser_fast_count(lib), 0);
    tmi_parser_free(fast);
    tmi_parser_free(lib);
}

/* ------------------------------------------------------------------------ */
/* a whole file with bad lines in it: nothing silently dropped                */
/* ------------------------------------------------------------------------ */

static void test_jsonl_accounting(void **state) {
    (void)state;
    const char *lines[] = {
        "{\"text\": \"good 1\"}",
        "{\"text\": \"broken\"", /* bad JSON */
        "",                      /* blank */
        "{\"text\": \"good 2\"}",
        "{\"txt\": \"typo\"}",                                      /* missing field */
        "{\"text\": [\"no\"]}",                                     /* wrong type */
        "   ",                                                      /* blank */
        "{\"text\": \"bad \xfe utf8\"}",                            /* invalid UTF-8 */
        "\"just a string\"",                                        /* not an object */
        "{\"text\": \"0123456789012345678901234567890123456789\"}", /* too long */
        "{\"ids\": [1, 2, 3]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}]}", /* no scored turn */
        "{\"text\": \"good 3\"}",
    };
    const int nlines = (int)(sizeof lines / sizeof *lines);
    bytes b = {0};
    int nonblank = 0;
    for (int i = 0; i < nlines; i++) {
        b_add(&b, lines[i], strlen(lines[i]));
        b_add(&b, "\n", 1);
        nonblank += lines[i][0] != 0 && lines[i][0] != ' ';
    }
    write_file("mixed.jsonl", b.p, b.n);
    free(b.p);
    tmi_options o;
    tmi_options_default(&o);
    o.max_record = 50;
    const char *path = path_of("mixed.jsonl");
    tmi_reader *r = NULL;
    tmi_parser *p = NULL;
    assert_int_equal(tmi_reader_open(&r, &path, 1, &o), 0);
    assert_int_equal(tmi_parser_create(&p, &o), 0);
    int counts[TMI_ERR_COUNT] = {0}, records = 0, units = 0;
    bytes t = {0};
    b_add(&t, "", 0);
    tmi_unit u;
    tmi_error e;
    int rc;
    uint64_t last_index = 0;
    while ((rc = tmi_reader_next(r, &u, &e)) != 0) {
        tmi_record rec;
        if (rc == 1) {
            units++;
            assert_true(u.index == 0 || u.index == last_index + 1);
            last_index = u.index;
            rc = tmi_parse(p, &u, &rec, &e) == 0 ? 1 : -1;
        } else {
            last_index = e.index;
        }
        if (rc == 1) {
            records++;
            b_printf(&t, "ok %llu\n", (unsigned long long)u.line);
        } else {
            assert_string_equal(e.source, path);
            counts[e.kind]++;
            b_printf(&t, "%s %llu\n", tmi_error_name(e.kind), (unsigned long long)e.line);
        }
    }
    assert_string_equal((char *)t.p, "ok 1\nbad_json 2\nok 4\nmissing_field 5\nwrong_type 6\ninvalid_utf8 8\n"
                                     "not_object 9\ntoo_long 10\nok 11\nno_scored 12\nok 13\n");
    int errs = 0;
    for (int k = 0; k < TMI_ERR_COUNT; k++)
        errs += counts[k];
    assert_int_equal(records + errs, nonblank);
    assert_int_equal(units, nonblank - counts[TMI_ERR_TOO_LONG]);
    free(t.p);
    tmi_parser_free(p);
    tmi_reader_close(r);
}

static void test_error_names(void **state) {
    (void)state;
    for (int k = 0; k < TMI_ERR_COUNT; k++) {
        const char *n = tmi_error_name(k);
        assert_string_not_equal(n, "unknown");
        for (int j = 0; j < k; j++)
            assert_string_not_equal(n, tmi_error_name(j));
    }
    assert_string_equal(tmi_error_name(TMI_ERR_COUNT), "unknown");
    assert_string_equal(tmi_error_name(TMI_ERR_INVALID_UTF8), "invalid_utf8");
    assert_string_equal(tmi_error_name(TMI_ERR_TOO_LONG), "too_long");
}

/* ------------------------------------------------------------------------ */

static int setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/tokmark-input-XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwX '%s' 2>/dev/null; rm -rf '%s'", g_dir, g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_doc),          cmocka_unit_test(test_text_lines),
        cmocka_unit_test(test_text_paragraphs),   cmocka_unit_test(test_jsonl_units),
        cmocka_unit_test(test_gzip_multi_member), cmocka_unit_test(test_zstd_multi_frame),
        cmocka_unit_test(test_cut_streams),       cmocka_unit_test(test_binary_and_unreadable),
        cmocka_unit_test(test_directory_tree),    cmocka_unit_test(test_stdin),
        cmocka_unit_test(test_too_long),          cmocka_unit_test(test_100mb_line),
        cmocka_unit_test(test_parse_text_fields), cmocka_unit_test(test_parse_chat_ids_pred),
        cmocka_unit_test(test_parse_plain_text),  cmocka_unit_test(test_parse_fast_vs_jansson),
        cmocka_unit_test(test_jsonl_accounting),  cmocka_unit_test(test_error_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
