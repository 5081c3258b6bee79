/* bench_input — the input layer of `tokmark scan` (tools/cli/input.h, issue #4).
 * Prints "NAME VALUE UNIT" lines, MB/s of input per second of this thread's CPU
 * time (user + system, so that other jobs on a shared machine do not count),
 * best of a few runs:
 *   reader_{plain,gz,zst}       the reader alone, JSON Lines units (file in the page cache)
 *   utf8_check                  plain-text validation
 *   {text,chat}_jansson         jansson: json_loadb + extract the text(s) + decref
 *   {text,chat}_cjson           cJSON 1.7 (loaded with dlopen when installed, so that it
 *                               is no build dependency): parse + extract + delete
 *   {text,chat}_tmi_parse       tmi_parse as `tokmark scan` runs it (text: the fast path)
 *   text_tmi_parse_nofast       tmi_parse with the fast path off (jansson)
 * on realistic JSON Lines built at run time from the English text on this
 * machine (/usr/share/common-licenses, /usr/share/doc/…/copyright): records of
 * 1-4 KB {"id", "url", "text", "meta"} and chat records {"messages": [system,
 * user, assistant]}.  No downloads. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>
#include <zstd.h>

#include "input.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); /* CPU time: the machine is shared */
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void add(buf *b, const void *d, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1 << 16;
        while (nc < b->n + n + 1)
            nc *= 2;
        b->p = realloc(b->p, nc);
        if (b->p == NULL) exit(1);
        b->cap = nc;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void adds(buf *b, const char *s) { add(b, s, strlen(s)); }

/* English text: licenses and copyright files, valid UTF-8 only. */
static buf english(size_t want) {
    buf t = {0};
    FILE *p = popen("cat /usr/share/common-licenses/* /usr/share/doc/*/copyright 2>/dev/null", "r");
    if (p != NULL) {
        char chunk[65536];
        size_t k;
        while (t.n < want && (k = fread(chunk, 1, sizeof chunk, p)) > 0)
            add(&t, chunk, k);
        pclose(p);
    }
    if (t.n < 4096) {
        fprintf(stderr, "bench_input: no English text found on this machine\n");
        exit(1);
    }
    /* keep well-formed UTF-8 and no control bytes but \n, \t */
    size_t o = 0;
    for (size_t i = 0; i < t.n;) {
        size_t bad = tmi_utf8_check(t.p + i, t.n - i);
        for (size_t k = i; k < i + bad; k++) {
            unsigned char c = (unsigned char)t.p[k];
            if (c >= 0x20 || c == '\n' || c == '\t') t.p[o++] = (char)c;
        }
        i += bad + (i + bad < t.n);
    }
    t.n = o;
    return t;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* text[at..at+len) as a JSON string, cut at a UTF-8 boundary. */
static void json_str(buf *b, const buf *t, size_t at, size_t len) {
    while (at < t->n && ((unsigned char)t->p[at] & 0xC0) == 0x80)
        at++;
    if (at + len > t->n) len = t->n - at;
    while (len > 0 && at + len < t->n && ((unsigned char)t->p[at + len] & 0xC0) == 0x80)
        len--;
    add(b, "\"", 1);
    size_t s = at;
    for (size_t i = at; i < at + len; i++) {
        unsigned char c = (unsigned char)t->p[i];
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\t' ? "\\t" : NULL;
        if (e != NULL) {
            add(b, t->p + s, i - s);
            adds(b, e);
            s = i + 1;
        }
    }
    add(b, t->p + s, at + len - s);
    add(b, "\"", 1);
}

static buf make_records(const buf *t, size_t total, int chat) {
    buf b = {0};
    for (unsigned id = 0; b.n < total; id++) {
        size_t len = 1024 + next() % 3072, at = next() % (t->n - 4096);
        char head[160];
        if (!chat) {
            snprintf(head, sizeof head, "{\"id\":%u,\"url\":\"https://example.org/doc/%u\",\"text\":", id, id);
            adds(&b, head);
            json_str(&b, t, at, len);
            snprintf(head, sizeof head, ",\"meta\":{\"lang\":\"en\",\"score\":0.%02u,\"tokens\":%zu}}\n",
                     (unsigned)(next() % 100), len / 4);
            adds(&b, head);
        } else {
            adds(&b, "{\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
                     "{\"role\":\"user\",\"content\":");
            json_str(&b, t, at, len / 4);
            adds(&b, "},{\"role\":\"assistant\",\"content\":");
            json_str(&b, t, (at + 7919) % (t->n - 4096), len);
            adds(&b, "}]}\n");
        }
    }
    return b;
}

/* Units of a JSONL buffer: pointers to line starts. */
typedef struct lines {
    const char **s;
    size_t *len, n;
} lines;

static lines split(const buf *b) {
    lines l = {0};
    size_t cap = 1024;
    l.s = malloc(cap * sizeof *l.s);
    l.len = malloc(cap * sizeof *l.len);
    for (const char *p = b->p, *e = b->p + b->n; p < e;) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        if (nl == NULL) nl = e;
        if (l.n == cap) {
            cap *= 2;
            l.s = realloc(l.s, cap * sizeof *l.s);
            l.len = realloc(l.len, cap * sizeof *l.len);
        }
        l.s[l.n] = p;
        l.len[l.n++] = (size_t)(nl - p);
        p = nl + 1;
    }
    return l;
}

static volatile size_t sink;

/* ---- cJSON through dlopen ---------------------------------------------- */
typedef void cj;
static struct {
    cj *(*parse)(const char *, size_t);
    void (*del)(cj *);
    cj *(*get)(const cj *, const char *);
    char *(*str)(const cj *);
    int (*size)(const cj *);
    cj *(*item)(const cj *, int);
} cjson;

static int load_cjson(void) {
    void *h = dlopen("libcjson.so.1", RTLD_NOW);
    if (h == NULL) return 0;
    *(void **)&cjson.parse = dlsym(h, "cJSON_ParseWithLength");
    *(void **)&cjson.del = dlsym(h, "cJSON_Delete");
    *(void **)&cjson.get = dlsym(h, "cJSON_GetObjectItemCaseSensitive");
    *(void **)&cjson.str = dlsym(h, "cJSON_GetStringValue");
    *(void **)&cjson.size = dlsym(h, "cJSON_GetArraySize");
    *(void **)&cjson.item = dlsym(h, "cJSON_GetArrayItem");
    return cjson.parse && cjson.del && cjson.get && cjson.str && cjson.size && cjson.item;
}

/* ---- the parsers ------------------------------------------------------- */
enum { P_JANSSON, P_CJSON, P_TMI, P_TMI_NOFAST };

static double parse_mbps(const lines *l, size_t bytes, int which, int chat, int runs) {
    tmi_options o;
    tmi_options_default(&o);
    tmi_parser *tp = NULL;
    if (tmi_parser_create(&tp, &o) != 0) exit(1);
    tmi_parser_set_fast(tp, which == P_TMI_NOFAST);
    double best = 0;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        size_t got = 0;
        for (size_t i = 0; i < l->n; i++) {
            if (which == P_JANSSON) {
                json_error_t je;
                json_t *j = json_loadb(l->s[i], l->len[i], 0, &je);
                if (j == NULL) exit(2);
                if (!chat) {
                    got += json_string_length(json_object_get(j, "text"));
                } else {
                    json_t *m = json_object_get(j, "messages");
                    for (size_t k = 0; k < json_array_size(m); k++)
                        got += json_string_length(json_object_get(json_array_get(m, k), "content"));
                }
                json_decref(j);
            } else if (which == P_CJSON) {
                cj *j = cjson.parse(l->s[i], l->len[i]);
                if (j == NULL) exit(2);
                if (!chat) {
                    got += strlen(cjson.str(cjson.get(j, "text")));
                } else {
                    cj *m = cjson.get(j, "messages");
                    for (int k = 0; k < cjson.size(m); k++)
                        got += strlen(cjson.str(cjson.get(cjson.item(m, k), "content")));
                }
                cjson.del(j);
            } else {
                tmi_unit u = {"bench", i, i + 1, 0, l->s[i], l->len[i], 1};
                tmi_record rec;
                tmi_error e;
                if (tmi_parse(tp, &u, &rec, &e) != 0) {
                    fprintf(stderr, "bench_input: %s\n", e.message);
                    exit(2);
                }
                for (size_t k = 0; k < rec.nseg; k++)
                    got += rec.seg[k].len;
            }
        }
        double dt = now() - t0;
        sink += got;
        double mb = (double)bytes / dt / 1e6;
        if (mb > best) best = mb;
    }
    tmi_parser_free(tp);
    return best;
}

static double reader_mbps(const char *path, size_t plain_bytes, int runs, size_t want_units) {
    tmi_options o;
    tmi_options_default(&o);
    o.format = TMI_FORMAT_JSONL;
    double best = 0;
    for (int r = 0; r < runs; r++) {
        tmi_reader *rd = NULL;
        if (tmi_reader_open(&rd, &path, 1, &o) != 0) exit(1);
        double t0 = now();
        tmi_unit u;
        tmi_error e;
        size_t n = 0, bytes = 0;
        int rc;
        while ((rc = tmi_reader_next(rd, &u, &e)) != 0) {
            if (rc < 0) {
                fprintf(stderr, "bench_input: %s:%llu: %s\n", e.source, (unsigned long long)e.line, e.message);
                exit(2);
            }
            n++;
            bytes += u.len;
        }
        double dt = now() - t0;
        tmi_reader_close(rd);
        if (n != want_units) {
            fprintf(stderr, "bench_input: %zu units, expected %zu\n", n, want_units);
            exit(2);
        }
        sink += bytes;
        double mb = (double)plain_bytes / dt / 1e6;
        if (mb > best) best = mb;
    }
    return best;
}

static void write_all(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(d, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "bench_input: cannot write %s\n", path);
        exit(1);
    }
}

int main(void) {
    buf text = english((size_t)8 << 20);
    buf recs = make_records(&text, (size_t)48 << 20, 0);
    buf chats = make_records(&text, (size_t)24 << 20, 1);
    lines rl = split(&recs), cl = split(&chats);
    printf("corpus_text_records %.1f MB (%zu records)\n", (double)recs.n / 1e6, rl.n);
    printf("corpus_chat_records %.1f MB (%zu records)\n", (double)chats.n / 1e6, cl.n);

    /* the reader: plain, gzip, zstd (compressed once, here) */
    char dir[] = "/tmp/tokmark-bench-input-XXXXXX";
    if (mkdtemp(dir) == NULL) return 1;
    char pp[64], pg[64], pz[64];
    snprintf(pp, sizeof pp, "%s/r.jsonl", dir);
    snprintf(pg, sizeof pg, "%s/r.jsonl.gz", dir);
    snprintf(pz, sizeof pz, "%s/r.jsonl.zst", dir);
    write_all(pp, recs.p, recs.n);
    {
        uLongf zn = compressBound((uLong)recs.n) + 64;
        unsigned char *z = malloc(zn);
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        if (z == NULL || deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 1;
        zs.next_in = (Bytef *)recs.p;
        zs.avail_in = (uInt)recs.n;
        zs.next_out = z;
        zs.avail_out = (uInt)zn;
        if (deflate(&zs, Z_FINISH) != Z_STREAM_END) return 1;
        write_all(pg, z, zn - zs.avail_out);
        deflateEnd(&zs);
        size_t bound = ZSTD_compressBound(recs.n);
        unsigned char *y = malloc(bound);
        size_t yn = ZSTD_compress(y, bound, recs.p, recs.n, 3);
        if (y == NULL || ZSTD_isError(yn)) return 1;
        write_all(pz, y, yn);
        free(z);
        free(y);
    }
    printf("reader_plain %.0f MB/s\n", reader_mbps(pp, recs.n, 5, rl.n));
    printf("reader_gz %.0f MB/s\n", reader_mbps(pg, recs.n, 2, rl.n));
    printf("reader_zst %.0f MB/s\n", reader_mbps(pz, recs.n, 3, rl.n));
    unlink(pp);
    unlink(pg);
    unlink(pz);
    rmdir(dir);

    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        sink += tmi_utf8_check(text.p, text.n);
        double mb = (double)text.n / (now() - t0) / 1e6;
        if (mb > best) best = mb;
    }
    printf("utf8_check %.0f MB/s\n", best);

    int have_cjson = load_cjson();
    for (int chat = 0; chat < 2; chat++) {
        const lines *l = chat ? &cl : &rl;
        size_t bytes = chat ? chats.n : recs.n;
        const char *kind = chat ? "chat" : "text";
        double mj = parse_mbps(l, bytes, P_JANSSON, chat, 3);
        printf("%s_jansson %.0f MB/s\n", kind, mj);
        if (have_cjson)
            printf("%s_cjson %.0f MB/s\n", kind, parse_mbps(l, bytes, P_CJSON, chat, 3));
        else
            printf("%s_cjson n/a (libcjson.so.1 not installed)\n", kind);
        double mt = parse_mbps(l, bytes, P_TMI, chat, 3);
        printf("%s_tmi_parse %.0f MB/s\n", kind, mt);
        if (!chat) printf("text_tmi_parse_nofast %.0f MB/s\n", parse_mbps(l, bytes, P_TMI_NOFAST, chat, 3));
    }
    free(text.p);
    free(recs.p);
    free(chats.p);
    free(rl.s);
    free(rl.len);
    free(cl.s);
    free(cl.len);
    return 0;
}
