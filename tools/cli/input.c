/* input.c — the input layer of `tokmark scan` (input.h): the reader (files,
 * directories, stdin; gzip/zstd by content; units by memchr over large
 * buffers) and the parser (UTF-8 validation; JSON by jansson, with an exact
 * validating fast path for text fields). */
#include "input.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zlib.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <zstd.h>

#include "tokmark.h"

#if defined(__GNUC__) || defined(__clang__)
#define TMI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TMI_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define TMI_PRINTF(a, b)
#define TMI_LIKELY(x) (x)
#endif

/* ------------------------------------------------------------------------ */
/* options, error names                                                      */
/* ------------------------------------------------------------------------ */

static const char *const k_default_roles[] = {"assistant"};

void tmi_options_default(tmi_options *o) {
    memset(o, 0, sizeof *o);
    o->format = TMI_FORMAT_AUTO;
    o->split = TMI_SPLIT_DOC;
    o->max_record = TMI_DEFAULT_MAX_RECORD;
    o->field = "text";
    o->prompt_field = NULL;
    o->messages_field = "messages";
    o->score_roles = k_default_roles;
    o->n_score_roles = 1;
    o->ids_field = "ids";
    o->pred_field = NULL;
}

const char *tmi_error_name(int kind) {
    static const char *const names[TMI_ERR_COUNT] = {
        "io",          "binary",     "truncated",    "corrupt", "too_long", "bad_json",
        "not_object", "missing_field", "wrong_type", "invalid_utf8", "bad_ids", "no_scored"};
    return kind >= 0 && kind < TMI_ERR_COUNT ? names[kind] : "unknown";
}

static TMI_PRINTF(6, 7) void set_error(tmi_error *e, int kind, const char *source, uint64_t line,
                                       uint64_t index, const char *fmt, ...) {
    if (e == NULL) return;
    e->kind = kind;
    snprintf(e->source, sizeof e->source, "%s", source != NULL ? source : "");
    e->line = line;
    e->index = index;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */
/* ------------------------------------------------------------------------ */

/* Length of the well-formed sequence at p (rem > 0 bytes left), 0 if ill-formed. */
static size_t utf8_seq(const unsigned char *p, size_t rem) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return rem >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (rem < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (rem < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

#define HI8 0x8080808080808080ull
#define LO8 0x0101010101010101ull

size_t tmi_utf8_check(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        while (i + 16 <= n) {
            uint64_t a, b;
            memcpy(&a, p + i, 8);
            memcpy(&b, p + i + 8, 8);
            if ((a | b) & HI8) break;
            i += 16;
        }
        while (i < n && p[i] < 0x80) i++;
        if (i >= n) break;
        size_t l = utf8_seq(p + i, n - i);
        if (l == 0) return i;
        i += l;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* the reader                                                                */
/* ------------------------------------------------------------------------ */

enum { COMP_PLAIN, COMP_GZIP, COMP_ZSTD };
enum { ENT_FILE, ENT_STDIN, ENT_ERROR };

typedef struct entry {
    char *path;
    int type; /* ENT_* */
    int err;  /* ENT_ERROR: errno */
} entry;

#define RAW_CAP ((size_t)1 << 18)      /* compressed input chunk */
#define BUF_INIT ((size_t)4 << 20)     /* decompressed buffer, grows to hold a unit */
#define SNIFF_BYTES ((size_t)1 << 16)  /* binary detection looks at this much */

struct tmi_reader {
    tmi_options o;
    entry *ents;
    size_t nents, ents_cap, next_ent;
    uint64_t bytes_in, bytes_total, skipped;

    /* the current file */
    int is_open;
    const char *src;
    int fd, own_fd, is_jsonl, split, comp;
    z_stream zs;
    int zs_init, gz_in_member;
    ZSTD_DCtx *zd;
    ZSTD_inBuffer zin;
    size_t zlast;
    unsigned char *raw;
    size_t raw_pos, raw_len;
    int raw_eof;
    int src_done;       /* no more decompressed bytes */
    int src_err;        /* -1, or the TMI_ERR_* that ended the stream */
    char src_msg[256];
    int finished;       /* the end-of-file error (if any) was reported */

    char *buf;          /* decompressed bytes [lo, end) are kept; pos: next line */
    size_t cap, lo, pos, end;
    uint64_t buf_off;   /* decompressed offset of buf[0] */
    uint64_t line;      /* line number of the byte at pos */
    uint64_t index;     /* next unit number */
};

static int add_entry(tmi_reader *r, char *path, int type, int err) {
    if (r->nents == r->ents_cap) {
        size_t nc = r->ents_cap ? 2 * r->ents_cap : 16;
        entry *ne = realloc(r->ents, nc * sizeof *ne);
        if (ne == NULL) {
            free(path);
            return TOKMARK_ERR_NOMEM;
        }
        r->ents = ne;
        r->ents_cap = nc;
    }
    r->ents[r->nents].path = path;
    r->ents[r->nents].type = type;
    r->ents[r->nents].err = err;
    r->nents++;
    return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *join_path(const char *dir, const char *name) {
    size_t dl = strlen(dir), nl = strlen(name);
    int slash = dl > 0 && dir[dl - 1] == '/';
    char *p = malloc(dl + nl + 2);
    if (p == NULL) return NULL;
    memcpy(p, dir, dl);
    size_t k = dl;
    if (!slash) p[k++] = '/';
    memcpy(p + k, name, nl + 1);
    return p;
}

/* Walk a directory: entries sorted byte-wise, symlinks not followed. */
static int walk_dir(tmi_reader *r, const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        char *p = strdup(dir);
        return p == NULL ? TOKMARK_ERR_NOMEM : add_entry(r, p, ENT_ERROR, errno);
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 32;
            char **nn = realloc(names, nc * sizeof *nn);
            if (nn == NULL) {
                rc = TOKMARK_ERR_NOMEM;
                break;
            }
            names = nn;
            cap = nc;
        }
        if ((names[n] = strdup(de->d_name)) == NULL) {
            rc = TOKMARK_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && n > 1) qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char *p = rc == 0 ? join_path(dir, names[i]) : NULL;
        free(names[i]);
        if (rc != 0) continue;
        if (p == NULL) {
            rc = TOKMARK_ERR_NOMEM;
            continue;
        }
        struct stat st;
        if (lstat(p, &st) != 0) {
            rc = add_entry(r, p, ENT_ERROR, errno);
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk_dir(r, p);
            free(p);
        } else if (S_ISREG(st.st_mode)) {
            r->bytes_total += (uint64_t)st.st_size;
            rc = add_entry(r, p, ENT_FILE, 0);
        } else {
            r->skipped++;
            free(p);
        }
    }
    free(names);
    return rc;
}

int tmi_reader_open(tmi_reader **out, const char *const *paths, size_t n, const tmi_options *o) {
    if (out == NULL || (paths == NULL && n > 0)) return TOKMARK_ERR_INVALID;
    *out = NULL;
    tmi_reader *r = calloc(1, sizeof *r);
    if (r == NULL) return TOKMARK_ERR_NOMEM;
    if (o != NULL)
        r->o = *o;
    else
        tmi_options_default(&r->o);
    if (r->o.max_record == 0) r->o.max_record = TMI_DEFAULT_MAX_RECORD;
    r->fd = -1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (paths[i] == NULL) {
            rc = TOKMARK_ERR_INVALID;
            break;
        }
        char *p = strdup(paths[i]);
        if (p == NULL) {
            rc = TOKMARK_ERR_NOMEM;
            break;
        }
        if (strcmp(p, "-") == 0) {
            rc = add_entry(r, p, ENT_STDIN, 0);
            continue;
        }
        struct stat st;
        if (stat(p, &st) != 0) {
            rc = add_entry(r, p, ENT_ERROR, errno);
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk_dir(r, p);
            free(p);
        } else {
            if (S_ISREG(st.st_mode)) r->bytes_total += (uint64_t)st.st_size;
            rc = add_entry(r, p, ENT_FILE, 0);
        }
    }
    if (rc == 0) {
        r->raw = malloc(RAW_CAP);
        r->cap = BUF_INIT;
        r->buf = malloc(r->cap);
        if (r->raw == NULL || r->buf == NULL) rc = TOKMARK_ERR_NOMEM;
    }
    if (rc != 0) {
        tmi_reader_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

uint64_t tmi_reader_bytes_in(const tmi_reader *r) { return r->bytes_in; }
uint64_t tmi_reader_bytes_total(const tmi_reader *r) { return r->bytes_total; }
uint64_t tmi_reader_skipped_entries(const tmi_reader *r) { return r->skipped; }

static void close_current(tmi_reader *r) {
    if (r->own_fd && r->fd >= 0) close(r->fd);
    r->fd = -1;
    r->own_fd = 0;
    if (r->zs_init) inflateEnd(&r->zs);
    r->zs_init = 0;
    r->is_open = 0;
}

void tmi_reader_close(tmi_reader *r) {
    if (r == NULL) return;
    close_current(r);
    ZSTD_freeDCtx(r->zd);
    for (size_t i = 0; i < r->nents; i++) free(r->ents[i].path);
    free(r->ents);
    free(r->raw);
    free(r->buf);
    free(r);
}

/* The stream ends with an error: message prefix + detail. */
static void stream_fail(tmi_reader *r, int kind, const char *prefix, const char *detail) {
    r->src_done = 1;
    r->src_err = kind;
    snprintf(r->src_msg, sizeof r->src_msg, "%s%s", prefix, detail);
}

/* read(2) with EINTR retried; counts input bytes.  -1: error (stream failed). */
static ssize_t read_in(tmi_reader *r, void *dst, size_t n) {
    for (;;) {
        ssize_t k = read(r->fd, dst, n);
        if (k >= 0) {
            r->bytes_in += (uint64_t)k;
            return k;
        }
        if (errno != EINTR) {
            stream_fail(r, TMI_ERR_IO, "read error: ", strerror(errno));
            return -1;
        }
    }
}

/* Refill the compressed-input buffer (raw_pos == raw_len).  0: nothing more. */
static size_t raw_refill(tmi_reader *r) {
    r->raw_pos = r->raw_len = 0;
    if (r->raw_eof) return 0;
    ssize_t k = read_in(r, r->raw, RAW_CAP);
    if (k <= 0) {
        r->raw_eof = 1;
        return 0;
    }
    r->raw_len = (size_t)k;
    return r->raw_len;
}

/* Up to n decompressed bytes into dst; 0 at the end of the stream (clean, or
 * src_err set). */
static size_t src_read(tmi_reader *r, char *dst, size_t n) {
    if (r->src_done || n == 0) return 0;
    if (r->comp == COMP_PLAIN) {
        if (r->raw_pos < r->raw_len) { /* the bytes read to sniff the magic */
            size_t k = r->raw_len - r->raw_pos;
            if (k > n) k = n;
            memcpy(dst, r->raw + r->raw_pos, k);
            r->raw_pos += k;
            return k;
        }
        if (r->raw_eof) {
            r->src_done = 1;
            return 0;
        }
        ssize_t k = read_in(r, dst, n);
        if (k <= 0) {
            r->raw_eof = 1;
            r->src_done = 1;
            return 0;
        }
        return (size_t)k;
    }
    if (r->comp == COMP_GZIP) {
        for (;;) {
            if (r->raw_pos == r->raw_len && raw_refill(r) == 0) {
                if (r->src_done) return 0; /* read error */
                if (r->gz_in_member)
                    stream_fail(r, TMI_ERR_TRUNCATED, "truncated gzip stream", "");
                else
                    r->src_done = 1;
                return 0;
            }
            if (!r->gz_in_member) { /* a further member of a multi-member file */
                if (r->raw[r->raw_pos] != 0x1f) {
                    stream_fail(r, TMI_ERR_CORRUPT, "corrupt gzip stream: ", "unexpected data after a gzip member");
                    return 0;
                }
                inflateReset(&r->zs);
                r->gz_in_member = 1;
            }
            r->zs.next_in = r->raw + r->raw_pos;
            r->zs.avail_in = (uInt)(r->raw_len - r->raw_pos);
            r->zs.next_out = (Bytef *)dst;
            uInt avail = n > (1u << 30) ? (1u << 30) : (uInt)n;
            r->zs.avail_out = avail;
            int zr = inflate(&r->zs, Z_NO_FLUSH);
            r->raw_pos = r->raw_len - r->zs.avail_in;
            size_t got = avail - r->zs.avail_out;
            if (zr == Z_STREAM_END) {
                r->gz_in_member = 0;
            } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
                stream_fail(r, zr == Z_MEM_ERROR ? TMI_ERR_IO : TMI_ERR_CORRUPT, "corrupt gzip stream: ",
                            r->zs.msg != NULL ? r->zs.msg : "inflate failed");
                return got; /* the bytes decoded before the damage come first */
            }
            if (got) return got;
        }
    }
    /* COMP_ZSTD */
    for (;;) {
        if (r->zin.pos == r->zin.size && !r->raw_eof) {
            raw_refill(r);
            if (r->src_done) return 0;
            r->zin.src = r->raw;
            r->zin.size = r->raw_len;
            r->zin.pos = 0;
        }
        if (r->zin.pos == r->zin.size && r->raw_eof && r->zlast == 0) {
            r->src_done = 1;
            return 0;
        }
        ZSTD_outBuffer zo = {dst, n, 0};
        size_t zr = ZSTD_decompressStream(r->zd, &zo, &r->zin);
        if (ZSTD_isError(zr)) {
            stream_fail(r, TMI_ERR_CORRUPT, "corrupt zstd stream: ", ZSTD_getErrorName(zr));
            return zo.pos; /* the bytes decoded before the damage come first */
        }
        r->zlast = zr;
        if (zo.pos) return zo.pos;
        if (r->zin.pos == r->zin.size && r->raw_eof) {
            if (zr != 0)
                stream_fail(r, TMI_ERR_TRUNCATED, "truncated zstd stream", "");
            else
                r->src_done = 1;
            return 0;
        }
    }
}

/* Make room and read more: keeps [lo, end), moving it to the start of buf and
 * growing buf when it is full.  Returns the number of bytes added (0: end). */
static size_t fill(tmi_reader *r) {
    if (r->src_done) return 0;
    if (r->lo > 0) {
        size_t keep = r->end - r->lo;
        if (keep) memmove(r->buf, r->buf + r->lo, keep);
        r->buf_off += r->lo;
        r->pos -= r->lo;
        r->end = keep;
        r->lo = 0;
    }
    size_t most = r->o.max_record + BUF_INIT; /* a whole unit and a read's room */
    if (r->cap - r->end < r->cap / 4 && r->cap < most) {
        size_t nc = r->cap * 2 < most ? r->cap * 2 : most;
        char *nb = realloc(r->buf, nc);
        if (nb == NULL) {
            stream_fail(r, TMI_ERR_IO, "out of memory", "");
            return 0;
        }
        r->buf = nb;
        r->cap = nc;
    }
    size_t got = 0;
    /* plain: one read; compressed: fill the chunk (fewer, larger passes) */
    while (r->end + got < r->cap) {
        size_t k = src_read(r, r->buf + r->end + got, r->cap - r->end - got);
        if (k == 0) break;
        got += k;
        if (r->comp == COMP_PLAIN || got >= ((size_t)1 << 20)) break;
    }
    r->end += got;
    return got;
}

/* Open the next entry.  0: opened; -1: *err filled (the entry is skipped). */
static int open_entry(tmi_reader *r, const entry *e, tmi_error *err) {
    r->src = e->path;
    r->index = 0;
    if (e->type == ENT_ERROR) {
        set_error(err, TMI_ERR_IO, e->path, 0, 0, "cannot read: %s", strerror(e->err));
        return -1;
    }
    if (e->type == ENT_STDIN) {
        r->fd = 0;
        r->own_fd = 0;
    } else {
        r->fd = open(e->path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0) {
            set_error(err, TMI_ERR_IO, e->path, 0, 0, "cannot open: %s", strerror(errno));
            return -1;
        }
        r->own_fd = 1;
        struct stat st;
        if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            set_error(err, TMI_ERR_IO, e->path, 0, 0, "cannot read: %s", strerror(EISDIR));
            close_current(r);
            return -1;
        }
    }
    r->is_open = 1;
    r->raw_pos = r->raw_len = 0;
    r->raw_eof = 0;
    r->src_done = 0;
    r->src_err = -1;
    r->src_msg[0] = 0;
    r->finished = 0;
    r->lo = r->pos = r->end = 0;
    r->buf_off = 0;
    r->line = 1;
    r->gz_in_member = 0;
    r->zlast = 1;
    r->zin.src = r->raw;
    r->zin.size = r->zin.pos = 0;

    /* the magic bytes */
    while (r->raw_len < 4 && !r->raw_eof) {
        ssize_t k = read_in(r, r->raw + r->raw_len, RAW_CAP - r->raw_len);
        if (k < 0) {
            set_error(err, TMI_ERR_IO, e->path, 0, 0, "%s", r->src_msg);
            close_current(r);
            return -1;
        }
        if (k == 0) r->raw_eof = 1;
        r->raw_len += (size_t)k;
    }
    const unsigned char *m = r->raw;
    r->comp = COMP_PLAIN;
    if (r->raw_len >= 2 && m[0] == 0x1f && m[1] == 0x8b) {
        r->comp = COMP_GZIP;
        memset(&r->zs, 0, sizeof r->zs);
        if (inflateInit2(&r->zs, 15 + 32) != Z_OK) {
            set_error(err, TMI_ERR_IO, e->path, 0, 0, "%s", "zlib: out of memory");
            close_current(r);
            return -1;
        }
        r->zs_init = 1;
    } else if (r->raw_len >= 4 && ((m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) ||
                                   ((m[0] & 0xf0) == 0x50 && m[1] == 0x2a && m[2] == 0x4d && m[3] == 0x18))) {
        r->comp = COMP_ZSTD;
        if (r->zd == NULL) r->zd = ZSTD_createDCtx();
        if (r->zd == NULL) {
            set_error(err, TMI_ERR_IO, e->path, 0, 0, "%s", "zstd: out of memory");
            close_current(r);
            return -1;
        }
        ZSTD_DCtx_reset(r->zd, ZSTD_reset_session_only);
        r->zin.src = r->raw;
        r->zin.size = r->raw_len;
        r->zin.pos = 0;
    }

    /* format: by name unless given */
    int fmt = r->o.format;
    if (fmt == TMI_FORMAT_AUTO) {
        fmt = TMI_FORMAT_TEXT;
        if (e->type == ENT_FILE) {
            const char *base = strrchr(e->path, '/');
            base = base != NULL ? base + 1 : e->path;
            size_t bl = strlen(base);
            if (bl > 3 && strcmp(base + bl - 3, ".gz") == 0)
                bl -= 3;
            else if (bl > 4 && strcmp(base + bl - 4, ".zst") == 0)
                bl -= 4;
            static const char *const ext[] = {".jsonl", ".ndjson", ".json"};
            for (size_t i = 0; i < 3; i++) {
                size_t el = strlen(ext[i]);
                if (bl > el && memcmp(base + bl - el, ext[i], el) == 0) fmt = TMI_FORMAT_JSONL;
            }
        }
    }
    r->is_jsonl = fmt == TMI_FORMAT_JSONL;
    r->split = r->is_jsonl ? TMI_SPLIT_LINES : r->o.split;

    /* binary?  decided on the first decompressed bytes */
    while (r->end < SNIFF_BYTES && fill(r) > 0) {
    }
    size_t sn = r->end < SNIFF_BYTES ? r->end : SNIFF_BYTES;
    const char *nul = memchr(r->buf, 0, sn);
    size_t ctl = 0;
    for (size_t i = 0; i < sn; i++) {
        unsigned char c = (unsigned char)r->buf[i];
        ctl += (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' && c != 0x1b) || c == 0x7f;
    }
    if (nul != NULL || (sn >= 32 && ctl * 10 > sn)) {
        if (nul != NULL)
            set_error(err, TMI_ERR_BINARY, e->path, 0, 0, "binary file (NUL byte at offset %zu), skipped",
                      (size_t)(nul - r->buf));
        else
            set_error(err, TMI_ERR_BINARY, e->path, 0, 0, "binary file (%zu control bytes in the first %zu), skipped",
                      ctl, sn);
        close_current(r);
        return -1;
    }
    /* a UTF-8 byte order mark at the start of a JSON Lines file is not data */
    if (r->is_jsonl && r->end >= 3 && memcmp(r->buf, "\xef\xbb\xbf", 3) == 0) r->lo = r->pos = 3;
    return 0;
}

/* The next line: [*ls, *le) in buf, *le at its "\n" or at the end of data.
 * 1: a line (*nl: it ended with "\n"); 0: no more data; 2: the pending unit
 * (from lo) grew past max_record: the rest of this line was skipped (not
 * kept), its "\n" consumed; 3: the same, but the data ended first.  r->line
 * counts the "\n"s consumed. */
static int next_line(tmi_reader *r, size_t *ls, size_t *le, int *nl) {
    size_t scan = r->pos;
    const size_t limit = r->o.max_record + 1; /* a unit, and its "\r" */
    for (;;) {
        const char *q = memchr(r->buf + scan, '\n', r->end - scan);
        if (q != NULL) {
            *ls = r->pos;
            *le = (size_t)(q - r->buf);
            *nl = 1;
            r->pos = *le + 1;
            r->line++;
            return 1;
        }
        if (r->end - r->lo > limit) { /* too long: skip to the next "\n" without keeping */
            for (;;) {
                r->lo = r->pos = r->end;
                if (fill(r) == 0) return 3; /* ... up to the end of the data */
                q = memchr(r->buf + r->pos, '\n', r->end - r->pos);
                if (q != NULL) {
                    r->pos = (size_t)(q - r->buf) + 1;
                    r->lo = r->pos;
                    r->line++;
                    return 2;
                }
            }
        }
        size_t rel = r->end - r->pos;
        if (fill(r) == 0) {
            if (r->pos < r->end) {
                *ls = r->pos;
                *le = r->end;
                *nl = 0;
                r->pos = r->end;
                return 1;
            }
            return 0;
        }
        scan = r->pos + rel;
    }
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* The error that ended the stream, once, at the given line. */
static int stream_error(tmi_reader *r, tmi_error *err, uint64_t line) {
    r->finished = 1;
    if (r->src_err < 0) return 0;
    set_error(err, r->src_err, r->src, line, r->index++, "%s", r->src_msg);
    return -1;
}

static void make_unit(tmi_reader *r, tmi_unit *u, size_t s, size_t e, uint64_t line) {
    u->source = r->src;
    u->index = r->index++;
    u->line = line;
    u->offset = r->buf_off + s;
    u->data = r->buf + s;
    u->len = e - s;
    u->is_jsonl = r->is_jsonl;
}

static int next_in_file(tmi_reader *r, tmi_unit *u, tmi_error *err) {
    if (r->finished) return 0;
    r->lo = r->pos; /* the previous unit is released */
    if (r->split == TMI_SPLIT_DOC) {
        while (r->end - r->lo <= r->o.max_record && fill(r) > 0) {
        }
        if (r->end - r->lo > r->o.max_record) {
            r->finished = 1;
            set_error(err, TMI_ERR_TOO_LONG, r->src, 1, r->index++, "document longer than %zu bytes, skipped",
                      r->o.max_record);
            return -1;
        }
        if (r->src_err >= 0) return stream_error(r, err, 1);
        r->finished = 1;
        make_unit(r, u, r->lo, r->end, 1);
        r->pos = r->end;
        return 1;
    }
    if (r->split == TMI_SPLIT_LINES) {
        for (;;) {
            size_t ls, le;
            int nl;
            uint64_t line = r->line;
            int rc = next_line(r, &ls, &le, &nl);
            if (rc == 0) return stream_error(r, err, line);
            if (rc >= 2) {
                if (rc == 3 && r->src_err >= 0) return stream_error(r, err, line); /* cut, too */
                set_error(err, TMI_ERR_TOO_LONG, r->src, line, r->index++, "line longer than %zu bytes, skipped",
                          r->o.max_record);
                return -1;
            }
            if (le > ls && r->buf[le - 1] == '\r') le--;
            if (!nl && r->src_err >= 0) return stream_error(r, err, line); /* a cut line */
            if (r->is_jsonl ? is_blank(r->buf + ls, le - ls) : le == ls) {
                r->lo = r->pos;
                continue;
            }
            if (le - ls > r->o.max_record) {
                set_error(err, TMI_ERR_TOO_LONG, r->src, line, r->index++, "line longer than %zu bytes, skipped",
                          r->o.max_record);
                return -1;
            }
            make_unit(r, u, ls, le, line);
            return 1;
        }
    }
    /* paragraphs */
    int in_para = 0, too_long = 0;
    uint64_t ps = 0, pe = 0; /* decompressed offsets: fill() moves the buffer */
    uint64_t pline = 0;
    for (;;) {
        size_t ls, le;
        int nl;
        uint64_t line = r->line;
        int rc = next_line(r, &ls, &le, &nl);
        if (rc == 0 || (rc == 1 && !nl && r->src_err >= 0)) {
            if (r->src_err >= 0) return stream_error(r, err, in_para ? pline : line);
            r->finished = 1;
            if (!in_para) return 0;
            if (too_long) break;
            make_unit(r, u, (size_t)(ps - r->buf_off), (size_t)(pe - r->buf_off), pline);
            return 1;
        }
        if (rc >= 2) {
            if (!in_para) pline = line;
            in_para = too_long = 1;
            continue;
        }
        size_t e = le;
        if (e > ls && r->buf[e - 1] == '\r') e--;
        if (is_blank(r->buf + ls, e - ls)) {
            if (!in_para) {
                r->lo = r->pos;
                continue;
            }
            if (too_long) break;
            make_unit(r, u, (size_t)(ps - r->buf_off), (size_t)(pe - r->buf_off), pline);
            return 1;
        }
        if (!in_para) {
            in_para = 1;
            ps = r->buf_off + ls;
            pline = line;
            r->lo = ls;
        }
        pe = r->buf_off + e;
        if (too_long)
            r->lo = r->pos;
        else if (pe - ps > r->o.max_record) {
            too_long = 1;
            r->lo = r->pos;
        }
        if (!nl) { /* the last line of the file */
            r->finished = 1;
            if (too_long) break;
            make_unit(r, u, (size_t)(ps - r->buf_off), (size_t)(pe - r->buf_off), pline);
            return 1;
        }
    }
    set_error(err, TMI_ERR_TOO_LONG, r->src, pline, r->index++, "paragraph longer than %zu bytes, skipped",
              r->o.max_record);
    return -1;
}

int tmi_reader_next(tmi_reader *r, tmi_unit *u, tmi_error *err) {
    for (;;) {
        if (!r->is_open) {
            if (r->next_ent >= r->nents) return 0;
            const entry *e = &r->ents[r->next_ent++];
            if (open_entry(r, e, err) < 0) return -1;
        }
        int rc = next_in_file(r, u, err);
        if (rc != 0) return rc;
        close_current(r);
    }
}

/* ------------------------------------------------------------------------ */
/* the parser                                                                */
/* ------------------------------------------------------------------------ */

typedef struct path {
    char **comp;
    size_t n;
    const char *text; /* as given, for messages */
} path;

/* fast path targets: text values (field, prompt) and any values (messages, ids) */
enum { T_FIELD, T_PROMPT, T_MSG, T_IDS, FP_MAX_TARGETS };
#define T_STRINGS ((1u << T_FIELD) | (1u << T_PROMPT))
#define FP_MAX_DEPTH 64

typedef struct fp_hit {
    const char *s; /* raw string contents (between the quotes), or the whole value */
    size_t len;
    int esc;       /* contains escapes */
    int found;
} fp_hit;

struct tmi_parser {
    const tmi_options *o;
    path field, prompt, messages, ids, pred;
    json_t *root;
    tmi_segment *seg;
    size_t seg_cap;
    int32_t *idbuf, *predbuf;
    size_t id_cap, pred_cap;
    char *scratch;
    size_t scratch_cap;
    uint64_t fast;
    int fast_off;
    /* fast path state */
    const path *tp[FP_MAX_TARGETS];
    fp_hit hit[FP_MAX_TARGETS];
    unsigned all; /* the configured targets */
    const char *fp, *fend;
};

static void path_free(path *p) {
    for (size_t i = 0; i < p->n; i++) free(p->comp[i]);
    free(p->comp);
    p->comp = NULL;
    p->n = 0;
}

static int path_parse(path *p, const char *s) {
    p->text = s;
    p->comp = NULL;
    p->n = 0;
    if (s == NULL) return 0;
    if (*s == 0) return TOKMARK_ERR_INVALID;
    size_t n = 1;
    for (const char *c = s; *c; c++) n += *c == '.';
    p->comp = calloc(n, sizeof *p->comp);
    if (p->comp == NULL) return TOKMARK_ERR_NOMEM;
    const char *a = s;
    for (size_t i = 0; i < n; i++) {
        const char *b = strchr(a, '.');
        size_t l = b != NULL ? (size_t)(b - a) : strlen(a);
        if (l == 0) return TOKMARK_ERR_INVALID;
        p->comp[i] = malloc(l + 1);
        if (p->comp[i] == NULL) return TOKMARK_ERR_NOMEM;
        memcpy(p->comp[i], a, l);
        p->comp[i][l] = 0;
        p->n = i + 1;
        a = b != NULL ? b + 1 : a + l;
    }
    return 0;
}

void tmi_parser_free(tmi_parser *p) {
    if (p == NULL) return;
    path_free(&p->field);
    path_free(&p->prompt);
    path_free(&p->messages);
    path_free(&p->ids);
    path_free(&p->pred);
    if (p->root != NULL) json_decref(p->root);
    free(p->seg);
    free(p->idbuf);
    free(p->predbuf);
    free(p->scratch);
    free(p);
}

int tmi_parser_create(tmi_parser **out, const tmi_options *o) {
    if (out == NULL || o == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    tmi_parser *p = calloc(1, sizeof *p);
    if (p == NULL) return TOKMARK_ERR_NOMEM;
    p->o = o;
    int rc = path_parse(&p->field, o->field != NULL ? o->field : "text");
    if (rc == 0) rc = path_parse(&p->prompt, o->prompt_field);
    if (rc == 0) rc = path_parse(&p->messages, o->messages_field);
    if (rc == 0) rc = path_parse(&p->ids, o->ids_field);
    if (rc == 0) rc = path_parse(&p->pred, o->pred_field);
    if (rc == 0 && o->n_score_roles > 0 && o->score_roles == NULL) rc = TOKMARK_ERR_INVALID;
    if (rc == 0) {
        const path *tp[FP_MAX_TARGETS] = {&p->field, &p->prompt, &p->messages, &p->ids};
        for (int i = 0; i < FP_MAX_TARGETS; i++) {
            p->tp[i] = tp[i];
            if (tp[i]->n) p->all |= 1u << i;
        }
        p->seg_cap = 8;
        p->seg = malloc(p->seg_cap * sizeof *p->seg);
        if (p->seg == NULL) rc = TOKMARK_ERR_NOMEM;
    }
    if (rc != 0) {
        tmi_parser_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

uint64_t tmi_parser_fast_count(const tmi_parser *p) { return p->fast; }
void tmi_parser_set_fast(tmi_parser *p, int off) { p->fast_off = off; }

static int reserve(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *nb = realloc(*buf, nc * elem);
    if (nb == NULL) return -1;
    *buf = nb;
    *cap = nc;
    return 0;
}

static tmi_segment *add_seg(tmi_parser *p, tmi_record *rec) {
    if (reserve((void **)&p->seg, &p->seg_cap, rec->nseg + 1, sizeof *p->seg) != 0) return NULL;
    rec->seg = p->seg;
    tmi_segment *s = &p->seg[rec->nseg++];
    memset(s, 0, sizeof *s);
    return s;
}

/* ---- the fast path: a validating JSON scanner ------------------------- */
/* It accepts a strict subset of what jansson accepts (RFC 8259 JSON without
 * numbers that could overflow, deep nesting, duplicate keys on a target path
 * or escapes in keys on it) and finds the target strings without building a
 * tree.  Anything else returns -1 and jansson decides. */

static void fp_ws(tmi_parser *p) {
    const char *s = p->fp, *e = p->fend;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) s++;
    p->fp = s;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static long hex4(const char *s) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)s[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* At '"': validate the string, p->fp after the closing quote.  0 or -1. */
static int fp_string(tmi_parser *p, int key, int *esc) {
    const unsigned char *s = (const unsigned char *)p->fp + 1, *e = (const unsigned char *)p->fend;
    for (;;) {
        /* skip plain ASCII: 16 bytes at a time (SSE2), else 8 (SWAR), up to
         * the first '"', '\\', control or non-ASCII byte */
#if defined(__SSE2__) && defined(__GNUC__)
        const __m128i vq = _mm_set1_epi8('"'), vb = _mm_set1_epi8('\\'), vs = _mm_set1_epi8(0x20);
        while (e - s >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, vq), _mm_cmpeq_epi8(v, vb)),
                                     _mm_cmplt_epi8(v, vs)); /* signed: bytes >= 0x80 too */
            unsigned bits = (unsigned)_mm_movemask_epi8(m);
            if (bits) {
                s += __builtin_ctz(bits);
                break;
            }
            s += 16;
        }
#endif
        while (e - s >= 8) {
            uint64_t v;
            memcpy(&v, s, 8);
            uint64_t q = v ^ (LO8 * '"'), b = v ^ (LO8 * '\\');
            uint64_t t = ((v - LO8 * 0x20) & ~v) | ((q - LO8) & ~q) | ((b - LO8) & ~b) | v;
            if (t & HI8) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                s += __builtin_ctzll(t & HI8) / 8; /* the lowest flag is exact */
#endif
                break;
            }
            s += 8;
        }
        if (s >= e) return -1;
        unsigned c = *s;
        if (c == '"') {
            p->fp = (const char *)s + 1;
            return 0;
        }
        if (c == '\\') {
            *esc = 1;
            if (e - s < 2) return -1;
            switch (s[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': s += 2; break;
            case 'u': {
                if (e - s < 6) return -1;
                long cp = hex4((const char *)s + 2);
                if (cp < 0 || (cp == 0 && key) || (cp >= 0xDC00 && cp <= 0xDFFF)) return -1;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (e - s < 12 || s[6] != '\\' || s[7] != 'u') return -1;
                    long lo = hex4((const char *)s + 8);
                    if (lo < 0xDC00 || lo > 0xDFFF) return -1;
                    s += 12;
                } else {
                    s += 6;
                }
                break;
            }
            default: return -1;
            }
        } else if (c < 0x20) {
            return -1;
        } else if (c < 0x80) {
            s++;
        } else {
            size_t l = utf8_seq(s, (size_t)(e - s));
            if (l == 0) return -1;
            s += l;
        }
    }
}

static int isdig(int c) { return c >= '0' && c <= '9'; }

static int fp_number(tmi_parser *p) {
    const char *s = p->fp, *e = p->fend;
    size_t idig = 0, edig = 0;
    int real = 0;
    if (s < e && *s == '-') s++;
    if (s >= e) return -1;
    if (*s == '0') {
        s++;
        idig = 1;
    } else if (*s >= '1' && *s <= '9') {
        while (s < e && isdig(*s)) s++, idig++;
    } else {
        return -1;
    }
    if (s < e && *s == '.') {
        s++;
        real = 1;
        if (s >= e || !isdig(*s)) return -1;
        while (s < e && isdig(*s)) s++;
    }
    if (s < e && (*s == 'e' || *s == 'E')) {
        s++;
        real = 1;
        if (s < e && (*s == '+' || *s == '-')) s++;
        if (s >= e || !isdig(*s)) return -1;
        while (s < e && isdig(*s)) s++, edig++;
    }
    /* jansson fails on integers beyond long long and reals beyond double */
    if (!real && idig > 18) return -1;
    if (real && (idig > 200 || edig > 2)) return -1;
    p->fp = s;
    return 0;
}

static int fp_value(tmi_parser *p, int depth, unsigned mask, size_t d);
static size_t unescape(const char *s, size_t n, char *out);

static int key_is(const char *k, size_t kl, const char *want) {
    return strncmp(k, want, kl) == 0 && want[kl] == 0;
}

/* At '{'.  mask: targets whose first d components named the enclosing keys. */
static int fp_object(tmi_parser *p, int depth, unsigned mask, size_t d) {
    if (depth > FP_MAX_DEPTH) return -1;
    p->fp++;
    fp_ws(p);
    if (p->fp < p->fend && *p->fp == '}') {
        p->fp++;
        return 0;
    }
    unsigned seen = 0;
    for (;;) {
        if (p->fp >= p->fend || *p->fp != '"') return -1;
        const char *k = p->fp + 1;
        int kesc = 0;
        if (fp_string(p, 1, &kesc) != 0) return -1;
        size_t kl = (size_t)(p->fp - 1 - k);
        fp_ws(p);
        if (p->fp >= p->fend || *p->fp != ':') return -1;
        p->fp++;
        fp_ws(p);
        unsigned sub = 0, leaf = 0;
        char kbuf[256];
        if (mask && kesc) { /* compare the decoded key */
            if (kl > sizeof kbuf) return -1;
            kl = unescape(k, kl, kbuf);
            k = kbuf;
        }
        if (mask) {
            for (int i = 0; i < FP_MAX_TARGETS; i++) {
                if (!(mask & (1u << i)) || !key_is(k, kl, p->tp[i]->comp[d])) continue;
                if (seen & (1u << i)) return -1; /* a duplicate key on a target path */
                seen |= 1u << i;
                if (p->tp[i]->n == d + 1)
                    leaf |= 1u << i;
                else
                    sub |= 1u << i;
            }
        }
        if (leaf) {
            const char *s = p->fp;
            int esc = 0;
            if (leaf & T_STRINGS) { /* a text value */
                if (p->fp >= p->fend || *p->fp != '"') return -1; /* wrong type: jansson reports */
                if (fp_string(p, 0, &esc) != 0) return -1;
                s++;
            } else if (fp_value(p, depth, 0, 0) != 0) { /* any value, kept whole */
                return -1;
            }
            size_t len = (size_t)(p->fp - s) - ((leaf & T_STRINGS) != 0);
            for (int i = 0; i < FP_MAX_TARGETS; i++)
                if (leaf & (1u << i)) {
                    p->hit[i].s = s;
                    p->hit[i].len = len;
                    p->hit[i].esc = esc;
                    p->hit[i].found = 1;
                }
        } else if (fp_value(p, depth, sub, d + 1) != 0) {
            return -1;
        }
        fp_ws(p);
        if (p->fp >= p->fend) return -1;
        if (*p->fp == '}') {
            p->fp++;
            return 0;
        }
        if (*p->fp != ',') return -1;
        p->fp++;
        fp_ws(p);
    }
}

static int fp_value(tmi_parser *p, int depth, unsigned mask, size_t d) {
    if (p->fp >= p->fend) return -1;
    char c = *p->fp;
    if (mask && c != '{') return -1; /* a path through a non-object: jansson reports */
    switch (c) {
    case '{': return fp_object(p, depth + 1, mask, d);
    case '[':
        if (depth + 1 > FP_MAX_DEPTH) return -1;
        p->fp++;
        fp_ws(p);
        if (p->fp < p->fend && *p->fp == ']') {
            p->fp++;
            return 0;
        }
        for (;;) {
            if (fp_value(p, depth + 1, 0, 0) != 0) return -1;
            fp_ws(p);
            if (p->fp >= p->fend) return -1;
            if (*p->fp == ']') {
                p->fp++;
                return 0;
            }
            if (*p->fp != ',') return -1;
            p->fp++;
            fp_ws(p);
        }
    case '"': {
        int esc = 0;
        return fp_string(p, 0, &esc);
    }
    case 't':
        if (p->fend - p->fp < 4 || memcmp(p->fp, "true", 4) != 0) return -1;
        p->fp += 4;
        return 0;
    case 'f':
        if (p->fend - p->fp < 5 || memcmp(p->fp, "false", 5) != 0) return -1;
        p->fp += 5;
        return 0;
    case 'n':
        if (p->fend - p->fp < 4 || memcmp(p->fp, "null", 4) != 0) return -1;
        p->fp += 4;
        return 0;
    default: return fp_number(p);
    }
}

static void put_utf8(char **o, long cp) {
    unsigned char *q = (unsigned char *)*o;
    if (cp < 0x80) {
        *q++ = (unsigned char)cp;
    } else if (cp < 0x800) {
        *q++ = (unsigned char)(0xC0 | (cp >> 6));
        *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *q++ = (unsigned char)(0xE0 | (cp >> 12));
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (unsigned char)(0xF0 | (cp >> 18));
        *q++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    *o = (char *)q;
}

/* Decode a validated string body s[0..n) into out; returns the length.  The
 * output is never longer than the input. */
static size_t unescape(const char *s, size_t n, char *out) {
    char *o = out;
    const char *e = s + n;
    while (s < e) {
        const char *b = memchr(s, '\\', (size_t)(e - s));
        if (b == NULL) b = e;
        memcpy(o, s, (size_t)(b - s));
        o += b - s;
        s = b;
        if (s >= e) break;
        char c = s[1];
        s += 2;
        switch (c) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            long cp = hex4(s);
            s += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long lo = hex4(s + 2);
                s += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            put_utf8(&o, cp);
            break;
        }
        default: *o++ = c; break; /* " \ / */
        }
    }
    return (size_t)(o - out);
}

static int role_scored(const tmi_options *o, const char *role);

/* Chat turns of a validated array value v[0..n): [{"role": "..", "content":
 * ".." | null}, ...].  Anything else (content parts, missing role, duplicate
 * keys, no scored turn) returns -1 for jansson.  Roles and escaped contents
 * are decoded into the scratch (reserved by the caller: 2 * n + 16). */
static int fast_chat(tmi_parser *p, const char *v, size_t n, tmi_record *rec, size_t so) {
    p->fp = v + 1;
    p->fend = v + n;
    size_t scored = 0;
    fp_ws(p);
    if (*p->fp == ']') return -1;
    for (;;) {
        if (*p->fp != '{') return -1;
        p->fp++;
        fp_ws(p);
        const char *role = NULL, *content = NULL;
        size_t rl = 0, cl = 0;
        int resc = 0, cesc = 0, have_c = 0;
        while (*p->fp != '}') {
            const char *k = p->fp + 1;
            int kesc = 0;
            if (fp_string(p, 1, &kesc) != 0 || kesc) return -1;
            size_t kl = (size_t)(p->fp - 1 - k);
            fp_ws(p);
            p->fp++; /* ':' (validated) */
            fp_ws(p);
            int is_role = kl == 4 && memcmp(k, "role", 4) == 0, is_content = kl == 7 && memcmp(k, "content", 7) == 0;
            if ((is_role && role != NULL) || (is_content && have_c)) return -1; /* duplicates */
            if (is_role || (is_content && *p->fp == '"')) {
                if (*p->fp != '"') return -1;
                const char *st = p->fp + 1;
                int esc = 0;
                if (fp_string(p, 0, &esc) != 0) return -1;
                if (is_role) {
                    role = st, rl = (size_t)(p->fp - 1 - st), resc = esc;
                } else {
                    content = st, cl = (size_t)(p->fp - 1 - st), cesc = esc, have_c = 1;
                }
            } else if (is_content) {
                if (p->fend - p->fp < 4 || memcmp(p->fp, "null", 4) != 0) return -1; /* parts: jansson */
                p->fp += 4;
                have_c = 1;
            } else if (fp_value(p, 2, 0, 0) != 0) {
                return -1;
            }
            fp_ws(p);
            if (*p->fp == ',') {
                p->fp++;
                fp_ws(p);
            }
        }
        p->fp++;
        if (role == NULL) return -1;
        if (content != NULL) {
            tmi_segment *sg = add_seg(p, rec);
            if (sg == NULL) return -1;
            char *r = p->scratch + so;
            size_t l = resc ? unescape(role, rl, r) : (memcpy(r, role, rl), rl);
            r[l] = 0;
            so += l + 1;
            sg->role = r;
            sg->score = role_scored(p->o, r);
            scored += (size_t)sg->score;
            if (cesc) {
                sg->text = p->scratch + so;
                sg->len = unescape(content, cl, p->scratch + so);
                so += sg->len;
            } else {
                sg->text = content;
                sg->len = cl;
            }
        }
        fp_ws(p);
        if (*p->fp == ']') break;
        p->fp++; /* ',' */
        fp_ws(p);
    }
    return scored ? 0 : -1;
}

/* Ids of a validated array value: integers 0..INT32_MAX only, else -1. */
static int fast_ids(tmi_parser *p, const char *v, size_t n, tmi_record *rec) {
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) cnt += v[i] == ',';
    if (reserve((void **)&p->idbuf, &p->id_cap, cnt + 1, sizeof *p->idbuf) != 0) return -1;
    const char *q = v + 1, *e = v + n - 1; /* inside the brackets */
    size_t m = 0;
    while (q < e && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')) q++;
    while (q < e) {
        if (!isdig(*q)) return -1;
        uint64_t x = 0;
        int nd = 0;
        while (q < e && isdig(*q)) x = x * 10 + (uint64_t)(*q++ - '0'), nd++;
        if (nd > 10 || x > INT32_MAX || (q < e && (*q == '.' || *q == 'e' || *q == 'E'))) return -1;
        p->idbuf[m++] = (int32_t)x;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == ',')) q++;
    }
    tmi_segment *sg = add_seg(p, rec);
    if (sg == NULL) return -1;
    sg->score = 1;
    sg->ids = p->idbuf;
    sg->n_ids = m;
    return 0;
}

/* 0: rec built from the fast scan; -1: let jansson decide. */
static int fast_parse(tmi_parser *p, const tmi_unit *u, tmi_record *rec) {
    memset(p->hit, 0, sizeof p->hit);
    p->fp = u->data;
    p->fend = u->data + u->len;
    fp_ws(p);
    if (p->fp >= p->fend || *p->fp != '{') return -1;
    if (fp_object(p, 1, p->all, 0) != 0) return -1;
    fp_ws(p);
    if (p->fp != p->fend) return -1;
    const fp_hit *f = &p->hit[T_FIELD], *m = &p->hit[T_MSG], *ids = &p->hit[T_IDS];
    int mode = f->found ? T_FIELD : m->found ? T_MSG : ids->found ? T_IDS : -1;
    if (mode < 0) return -1; /* missing: jansson words the error */
    if (reserve((void **)&p->scratch, &p->scratch_cap, 2 * u->len + 16, 1) != 0) return -1;
    size_t so = 0;
    if (mode == T_MSG) {
        if (m->s[0] != '[') return -1;
        return fast_chat(p, m->s, m->len, rec, so) == 0 ? (p->fast++, 0) : -1;
    }
    if (mode == T_IDS && ids->s[0] != '[') return -1;
    for (int k = T_PROMPT; k >= T_FIELD; k--) { /* prompt first */
        const fp_hit *h = &p->hit[k];
        if (!h->found || (k == T_FIELD && mode != T_FIELD)) continue;
        tmi_segment *sg = add_seg(p, rec);
        if (sg == NULL) return -1;
        sg->score = k == T_FIELD;
        if (h->esc) {
            sg->len = unescape(h->s, h->len, p->scratch + so);
            sg->text = p->scratch + so;
            so += sg->len;
        } else {
            sg->text = h->s;
            sg->len = h->len;
        }
    }
    if (mode == T_IDS && fast_ids(p, ids->s, ids->len, rec) != 0) return -1;
    p->fast++;
    return 0;
}

/* ---- the library path (jansson) --------------------------------------- */

enum { LOOK_MISSING, LOOK_FOUND, LOOK_NOT_OBJECT };

static int lookup(json_t *root, const path *pa, json_t **out, size_t *bad) {
    json_t *v = root;
    for (size_t i = 0; i < pa->n; i++) {
        if (!json_is_object(v)) {
            *bad = i;
            return LOOK_NOT_OBJECT;
        }
        v = json_object_get(v, pa->comp[i]);
        if (v == NULL) return LOOK_MISSING;
    }
    *out = v;
    return LOOK_FOUND;
}

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Find a path; 1 found (*v), 0 missing, -1 error filled. */
static int find(json_t *root, const path *pa, json_t **v, const tmi_unit *u, tmi_error *err) {
    size_t bad = 0;
    int lk = lookup(root, pa, v, &bad);
    if (lk == LOOK_FOUND) return 1;
    if (lk == LOOK_MISSING) return 0;
    set_error(err, TMI_ERR_WRONG_TYPE, u->source, u->line, u->index, "field \"%s\": \"%s\" is not an object",
              pa->text, pa->comp[bad - 1]);
    return -1;
}

/* An array of ids into *buf; -1 with err filled. */
static int get_ids(json_t *a, const path *pa, int32_t **buf, size_t *cap, size_t *n, const tmi_unit *u,
                   tmi_error *err) {
    if (!json_is_array(a)) {
        set_error(err, TMI_ERR_WRONG_TYPE, u->source, u->line, u->index, "field \"%s\" is %s, not an array",
                  pa->text, type_name(a));
        return -1;
    }
    size_t m = json_array_size(a);
    if (reserve((void **)buf, cap, m ? m : 1, sizeof **buf) != 0) {
        set_error(err, TMI_ERR_IO, u->source, u->line, u->index, "%s", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < m; i++) {
        json_t *x = json_array_get(a, i);
        json_int_t v = json_is_integer(x) ? json_integer_value(x) : -1;
        if (!json_is_integer(x) || v < 0 || v > INT32_MAX) {
            if (json_is_integer(x))
                set_error(err, TMI_ERR_BAD_IDS, u->source, u->line, u->index,
                          "field \"%s\": element %zu (%lld) is out of range 0..2147483647", pa->text, i, (long long)v);
            else
                set_error(err, TMI_ERR_BAD_IDS, u->source, u->line, u->index,
                          "field \"%s\": element %zu is %s, not an integer", pa->text, i, type_name(x));
            return -1;
        }
        (*buf)[i] = (int32_t)v;
    }
    *n = m;
    return 0;
}

static int text_seg(tmi_parser *p, tmi_record *rec, json_t *v, const path *pa, int score, const tmi_unit *u,
                    tmi_error *err) {
    if (!json_is_string(v)) {
        set_error(err, TMI_ERR_WRONG_TYPE, u->source, u->line, u->index, "field \"%s\" is %s, not a string",
                  pa->text, type_name(v));
        return -1;
    }
    tmi_segment *s = add_seg(p, rec);
    if (s == NULL) {
        set_error(err, TMI_ERR_IO, u->source, u->line, u->index, "%s", "out of memory");
        return -1;
    }
    s->score = score;
    s->text = json_string_value(v);
    s->len = json_string_length(v);
    return 0;
}

static int role_scored(const tmi_options *o, const char *role) {
    for (size_t i = 0; i < o->n_score_roles; i++)
        if (strcmp(o->score_roles[i], role) == 0) return 1;
    return 0;
}

/* Chat turns: content a string, null (no text: the turn is left out), or an
 * array of parts {"type": "text", "text": "..."} (concatenated; other parts
 * ignored). */
static int chat_segs(tmi_parser *p, tmi_record *rec, json_t *msgs, const tmi_unit *u, tmi_error *err) {
    const char *mf = p->messages.text;
    if (!json_is_array(msgs)) {
        set_error(err, TMI_ERR_WRONG_TYPE, u->source, u->line, u->index, "field \"%s\" is %s, not an array", mf,
                  type_name(msgs));
        return -1;
    }
    size_t m = json_array_size(msgs), scored = 0, total = 0;
    /* first pass: validate, and size the scratch for multi-part contents */
    for (size_t i = 0; i < m; i++) {
        json_t *t = json_array_get(msgs, i);
        json_t *role = json_is_object(t) ? json_object_get(t, "role") : NULL;
        json_t *c = json_is_object(t) ? json_object_get(t, "content") : NULL;
        if (!json_is_object(t) || !json_is_string(role)) {
            set_error(err, TMI_ERR_WRONG_TYPE, u->source, u->line, u->index,
                      "field \"%s\": turn %zu is not an object with a string \"role\"", mf, i);
            return -1;
        }
        if (c == NULL || json_is_null(c) || json_is_string(c)) continue;
        if (!json_is_array(c)) {
            set_error(err, TMI_ERR_WRONG_TYPE, u->source, u->line, u->index,
                      "field \"%s\": turn %zu: \"content\" is %s, not a string or an array of parts", mf, i,
                      type_name(c));
            return -1;
        }
        for (size_t k = 0; k < json_array_size(c); k++) {
            json_t *part = json_array_get(c, k);
            json_t *tx = json_is_object(part) ? json_object_get(part, "text") : NULL;
            if (tx != NULL && !json_is_string(tx)) {
                set_error(err, TMI_ERR_WRONG_TYPE, u->source, u->line, u->index,
                          "field \"%s\": turn %zu, part %zu: \"text\" is %s, not a string", mf, i, k, type_name(tx));
                return -1;
            }
            if (tx != NULL) total += json_string_length(tx);
        }
    }
    if (reserve((void **)&p->scratch, &p->scratch_cap, total ? total : 1, 1) != 0) {
        set_error(err, TMI_ERR_IO, u->source, u->line, u->index, "%s", "out of memory");
        return -1;
    }
    size_t so = 0;
    for (size_t i = 0; i < m; i++) {
        json_t *t = json_array_get(msgs, i);
        json_t *c = json_object_get(t, "content");
        if (c == NULL || json_is_null(c)) continue;
        tmi_segment *s = add_seg(p, rec);
        if (s == NULL) {
            set_error(err, TMI_ERR_IO, u->source, u->line, u->index, "%s", "out of memory");
            return -1;
        }
        s->role = json_string_value(json_object_get(t, "role"));
        s->score = role_scored(p->o, s->role);
        scored += (size_t)s->score;
        if (json_is_string(c)) {
            s->text = json_string_value(c);
            s->len = json_string_length(c);
            continue;
        }
        s->text = p->scratch + so;
        for (size_t k = 0; k < json_array_size(c); k++) {
            json_t *tx = json_object_get(json_array_get(c, k), "text");
            if (tx == NULL) continue;
            memcpy(p->scratch + so, json_string_value(tx), json_string_length(tx));
            so += json_string_length(tx);
        }
        s->len = (size_t)(p->scratch + so - s->text);
    }
    if (scored == 0) {
        set_error(err, TMI_ERR_NO_SCORED, u->source, u->line, u->index,
                  "field \"%s\": no turn of a scored role (%s%s)", mf,
                  p->o->n_score_roles ? p->o->score_roles[0] : "none", p->o->n_score_roles > 1 ? ", ..." : "");
        return -1;
    }
    return 0;
}

static int lib_parse(tmi_parser *p, const tmi_unit *u, tmi_record *rec, tmi_error *err) {
    json_error_t je;
    p->root = json_loadb(u->data, u->len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &je);
    if (p->root == NULL) {
        if (json_error_code(&je) == json_error_invalid_utf8) {
            size_t at = tmi_utf8_check(u->data, u->len);
            set_error(err, TMI_ERR_INVALID_UTF8, u->source, u->line, u->index, "invalid UTF-8 at byte %zu", at);
        } else {
            set_error(err, TMI_ERR_BAD_JSON, u->source, u->line, u->index, "invalid JSON at byte %d (column %d): %s",
                      je.position, je.column, je.text);
        }
        return -1;
    }
    if (!json_is_object(p->root)) {
        set_error(err, TMI_ERR_NOT_OBJECT, u->source, u->line, u->index, "the record is %s, not an object",
                  type_name(p->root));
        return -1;
    }
    json_t *v = NULL, *pv = NULL;
    int hp = p->prompt.n ? find(p->root, &p->prompt, &pv, u, err) : 0;
    if (hp < 0) return -1;
    if (p->pred.n) { /* reading mode: ids and predictions */
        json_t *iv = NULL, *rv = NULL;
        int hi = find(p->root, &p->ids, &iv, u, err), hr;
        if (hi < 0) return -1;
        if (hi == 0 || (hr = find(p->root, &p->pred, &rv, u, err)) == 0) {
            set_error(err, TMI_ERR_MISSING_FIELD, u->source, u->line, u->index,
                      "no field \"%s\" (reading mode needs \"%s\" and \"%s\")", hi == 0 ? p->ids.text : p->pred.text,
                      p->ids.text, p->pred.text);
            return -1;
        }
        if (hr < 0) return -1;
        if (hp && text_seg(p, rec, pv, &p->prompt, 0, u, err) != 0) return -1;
        size_t ni = 0, np = 0;
        if (get_ids(iv, &p->ids, &p->idbuf, &p->id_cap, &ni, u, err) != 0 ||
            get_ids(rv, &p->pred, &p->predbuf, &p->pred_cap, &np, u, err) != 0)
            return -1;
        if (ni != np) {
            set_error(err, TMI_ERR_BAD_IDS, u->source, u->line, u->index,
                      "field \"%s\" has %zu predictions for %zu ids in \"%s\"", p->pred.text, np, ni, p->ids.text);
            return -1;
        }
        tmi_segment *s = add_seg(p, rec);
        if (s == NULL) return -1;
        s->score = 1;
        s->ids = p->idbuf;
        s->n_ids = ni;
        rec->pred = p->predbuf;
        rec->n_pred = np;
        return 0;
    }
    int hf = find(p->root, &p->field, &v, u, err);
    if (hf < 0) return -1;
    if (hf) {
        if (hp && text_seg(p, rec, pv, &p->prompt, 0, u, err) != 0) return -1;
        return text_seg(p, rec, v, &p->field, 1, u, err);
    }
    int hm = p->messages.n ? find(p->root, &p->messages, &v, u, err) : 0;
    if (hm < 0) return -1;
    if (hm) return chat_segs(p, rec, v, u, err);
    int hi = p->ids.n ? find(p->root, &p->ids, &v, u, err) : 0;
    if (hi < 0) return -1;
    if (hi) {
        size_t ni = 0;
        if (hp && text_seg(p, rec, pv, &p->prompt, 0, u, err) != 0) return -1;
        if (get_ids(v, &p->ids, &p->idbuf, &p->id_cap, &ni, u, err) != 0) return -1;
        tmi_segment *s = add_seg(p, rec);
        if (s == NULL) return -1;
        s->score = 1;
        s->ids = p->idbuf;
        s->n_ids = ni;
        return 0;
    }
    char also[256] = "";
    if (p->messages.n || p->ids.n)
        snprintf(also, sizeof also, " (nor \"%s\"%s%s%s)", p->messages.n ? p->messages.text : p->ids.text,
                 p->messages.n && p->ids.n ? ", \"" : "", p->messages.n && p->ids.n ? p->ids.text : "",
                 p->messages.n && p->ids.n ? "\"" : "");
    set_error(err, TMI_ERR_MISSING_FIELD, u->source, u->line, u->index, "no field \"%s\"%s", p->field.text, also);
    return -1;
}

int tmi_parse(tmi_parser *p, const tmi_unit *u, tmi_record *rec, tmi_error *err) {
    if (p->root != NULL) {
        json_decref(p->root);
        p->root = NULL;
    }
    memset(rec, 0, sizeof *rec);
    rec->seg = p->seg;
    if (!u->is_jsonl) {
        size_t at = tmi_utf8_check(u->data, u->len);
        if (at != u->len) {
            uint64_t line = u->line;
            for (const char *q = u->data; (q = memchr(q, '\n', (size_t)(u->data + at - q))) != NULL; q++) line++;
            set_error(err, TMI_ERR_INVALID_UTF8, u->source, u->line, u->index,
                      "invalid UTF-8 at byte %zu (line %llu)", at, (unsigned long long)line);
            return -1;
        }
        tmi_segment *s = add_seg(p, rec);
        if (s == NULL) {
            set_error(err, TMI_ERR_IO, u->source, u->line, u->index, "%s", "out of memory");
            return -1;
        }
        s->score = 1;
        s->text = u->data;
        s->len = u->len;
        return 0;
    }
    if (!p->fast_off && !p->pred.n && fast_parse(p, u, rec) == 0) return 0;
    memset(rec, 0, sizeof *rec);
    rec->seg = p->seg;
    return lib_parse(p, u, rec, err);
}
