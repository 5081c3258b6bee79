/* profile.c — parameters, profiles, key IDs, account derivation, profile
 * files and key rings (SPEC.md §2). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <sodium.h>

#define TM_DEFAULT_CONTEXT   4u
#define TM_DEFAULT_VOCAB     100277u
#define TM_DEFAULT_GAMMA_T   (1u << 30)
#define TM_DEFAULT_DELTA     2.0
#define TM_DEFAULT_LAYERS    30u
#define TM_DEFAULT_TOKENIZER "cl100k_base"
#define TM_MAX_VOCAB         2147483647u
#define TM_MAX_DELTA         100.0
#define TM_MAX_FILE          (64u * 1024u * 1024u) /* largest profile file we read */

static const char KEY_ID_PREFIX[] = "tokmark key id v1\n";
static const char FILE_MAGIC[] = TM_PROFILE_MAGIC;

/* ------------------------------------------------------------------------ */
/* Names                                                                      */
/* ------------------------------------------------------------------------ */

const char *tokmark_scheme_name(tokmark_scheme s) {
    switch (s) {
    case TOKMARK_SCHEME_KGW: return "kgw";
    case TOKMARK_SCHEME_GUMBEL: return "gumbel";
    case TOKMARK_SCHEME_SYNTHID: return "synthid";
    }
    return "unknown";
}

const char *tokmark_seeding_name(tokmark_seeding s) {
    switch (s) {
    case TOKMARK_SEEDING_LEFTHASH: return "lefthash";
    case TOKMARK_SEEDING_SELFHASH: return "selfhash";
    }
    return "unknown";
}

static int name_eq(const char *s, size_t n, const char *name) {
    size_t k = strlen(name);
    return n == k && memcmp(s, name, k) == 0;
}

static tokmark_scheme scheme_parse_n(const char *s, size_t n) {
    if (name_eq(s, n, "kgw")) return TOKMARK_SCHEME_KGW;
    if (name_eq(s, n, "gumbel")) return TOKMARK_SCHEME_GUMBEL;
    if (name_eq(s, n, "synthid")) return TOKMARK_SCHEME_SYNTHID;
    return (tokmark_scheme)0;
}

static tokmark_seeding seeding_parse_n(const char *s, size_t n) {
    if (name_eq(s, n, "lefthash")) return TOKMARK_SEEDING_LEFTHASH;
    if (name_eq(s, n, "selfhash")) return TOKMARK_SEEDING_SELFHASH;
    return (tokmark_seeding)0;
}

tokmark_scheme tokmark_scheme_parse(const char *name) {
    return name == NULL ? (tokmark_scheme)0 : scheme_parse_n(name, strlen(name));
}

tokmark_seeding tokmark_seeding_parse(const char *name) {
    return name == NULL ? (tokmark_seeding)0 : seeding_parse_n(name, strlen(name));
}

/* ------------------------------------------------------------------------ */
/* Parameters (SPEC §2.3)                                                     */
/* ------------------------------------------------------------------------ */

static void default_weights(tokmark_params *p) {
    uint32_t m = p->layers <= TOKMARK_MAX_LAYERS ? p->layers : TOKMARK_MAX_LAYERS;
    memset(p->weights, 0, sizeof p->weights);
    for (uint32_t i = 0; i < m; i++) p->weights[i] = (uint16_t)(m - i);
}

void tokmark_params_default(tokmark_params *p, tokmark_scheme scheme) {
    if (p == NULL) return;
    memset(p, 0, sizeof *p);
    p->scheme = scheme;
    p->seeding = TOKMARK_SEEDING_LEFTHASH;
    p->context_width = TM_DEFAULT_CONTEXT;
    p->vocab_size = TM_DEFAULT_VOCAB;
    p->gamma_threshold = TM_DEFAULT_GAMMA_T;
    p->delta = TM_DEFAULT_DELTA;
    p->layers = TM_DEFAULT_LAYERS;
    default_weights(p);
    p->mask_repeated = 1;
    memcpy(p->tokenizer, TM_DEFAULT_TOKENIZER, sizeof TM_DEFAULT_TOKENIZER);
}

static int tokenizer_ok(const char *s, size_t n) {
    if (n < 1 || n >= TOKMARK_TOKENIZER_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return 0;
    return 1;
}

static int context_width_ok(tokmark_seeding seeding, uint32_t h) {
    uint32_t lo = seeding == TOKMARK_SEEDING_SELFHASH ? 2u : 1u;
    return h >= lo && h <= TOKMARK_MAX_CONTEXT;
}

int tokmark_params_check(const tokmark_params *p) {
    if (p == NULL) return TOKMARK_ERR_INVALID;
    if (p->scheme != TOKMARK_SCHEME_KGW && p->scheme != TOKMARK_SCHEME_GUMBEL &&
        p->scheme != TOKMARK_SCHEME_SYNTHID)
        return TOKMARK_ERR_INVALID;
    if (p->seeding != TOKMARK_SEEDING_LEFTHASH && p->seeding != TOKMARK_SEEDING_SELFHASH)
        return TOKMARK_ERR_INVALID;
    if (!context_width_ok(p->seeding, p->context_width)) return TOKMARK_ERR_INVALID;
    if (p->vocab_size < 2 || p->vocab_size > TM_MAX_VOCAB) return TOKMARK_ERR_INVALID;
    size_t tn = strnlen(p->tokenizer, sizeof p->tokenizer);
    if (tn == sizeof p->tokenizer || !tokenizer_ok(p->tokenizer, tn)) return TOKMARK_ERR_INVALID;
    if (p->mask_repeated > 1) return TOKMARK_ERR_INVALID;
    if (p->scheme == TOKMARK_SCHEME_KGW) {
        if (p->gamma_threshold < 1) return TOKMARK_ERR_INVALID;
        /* written so that NaN fails */
        if (!(p->delta > 0.0 && p->delta <= TM_MAX_DELTA)) return TOKMARK_ERR_INVALID;
    }
    if (p->scheme == TOKMARK_SCHEME_SYNTHID) {
        if (p->layers < 1 || p->layers > TOKMARK_MAX_LAYERS) return TOKMARK_ERR_INVALID;
        for (uint32_t i = 0; i < p->layers; i++)
            if (p->weights[i] < 1 || p->weights[i] > TOKMARK_MAX_WEIGHT) return TOKMARK_ERR_INVALID;
    }
    return TOKMARK_OK;
}

double tokmark_params_gamma(const tokmark_params *p) {
    if (p == NULL) return 0.0;
    return (double)p->gamma_threshold / 4294967296.0;
}

uint32_t tokmark_gamma_threshold(double gamma) {
    if (!(gamma > 0.0)) return 1u; /* also NaN */
    if (gamma >= 1.0) return UINT32_MAX;
    double x = round(gamma * 4294967296.0);
    if (x < 1.0) return 1u;
    if (x > 4294967295.0) return UINT32_MAX;
    return (uint32_t)x;
}

/* A profile's parameters are kept in one canonical form so that equal
 * profiles have equal parameter structs: the fields that do not apply to the
 * scheme hold their defaults, weights beyond m are zero, and the tokenizer
 * array is zero after its NUL.  Assumes tokmark_params_check passed. */
static void params_normalise(tokmark_params *out, const tokmark_params *in) {
    tokmark_params d;
    tokmark_params_default(&d, in->scheme);
    d.seeding = in->seeding;
    d.context_width = in->context_width;
    d.vocab_size = in->vocab_size;
    d.mask_repeated = in->mask_repeated;
    memset(d.tokenizer, 0, sizeof d.tokenizer);
    memcpy(d.tokenizer, in->tokenizer, strlen(in->tokenizer));
    if (in->scheme == TOKMARK_SCHEME_KGW) {
        d.gamma_threshold = in->gamma_threshold;
        d.delta = in->delta;
    }
    if (in->scheme == TOKMARK_SCHEME_SYNTHID) {
        d.layers = in->layers;
        memset(d.weights, 0, sizeof d.weights);
        memcpy(d.weights, in->weights, sizeof d.weights[0] * in->layers);
    }
    memcpy(out, &d, sizeof d);
}

/* ------------------------------------------------------------------------ */
/* A string builder that counts what it could not write (like snprintf)       */
/* ------------------------------------------------------------------------ */

static void sb_init(tm_sbuf *b, char *buf, size_t size) {
    b->buf = size > 0 ? buf : NULL;
    b->size = b->buf != NULL ? size : 0;
    b->len = 0;
    if (b->buf != NULL) b->buf[0] = '\0';
}

void tm_sb_printf(tm_sbuf *b, const char *fmt, ...) {
    char *dst = NULL;
    size_t room = 0;
    if (b->buf != NULL && b->len < b->size) {
        dst = b->buf + b->len;
        room = b->size - b->len;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0) b->len += (size_t)n;
}

static void sb_putc(tm_sbuf *b, char c) {
    if (b->buf != NULL && b->len + 1 < b->size) {
        b->buf[b->len] = c;
        b->buf[b->len + 1] = '\0';
    }
    b->len++;
}

/* Hex of n bytes, with libsodium's constant-time encoder (used for keys). */
static void sb_hex(tm_sbuf *b, const uint8_t *bin, size_t n) {
    if (b->buf != NULL && b->len + 2 * n < b->size) {
        sodium_bin2hex(b->buf + b->len, 2 * n + 1, bin, n);
    } else if (b->buf != NULL && b->len < b->size) {
        b->buf[b->len] = '\0'; /* truncated: leave no partial key text */
    }
    b->len += 2 * n;
}

/* The shortest %.Ng (N = 15..17) that reads back as exactly x.  The caller
 * is in the C locale. */
void tm_format_double(char out[40], double x) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 40, "%.*g", prec, x);
        if (strtod(out, NULL) == x) return;
    }
}

/* ------------------------------------------------------------------------ */
/* Canonical parameter text and key ID (SPEC §2.4)                            */
/* ------------------------------------------------------------------------ */

static void write_weights(tm_sbuf *b, const tokmark_params *p) {
    for (uint32_t i = 0; i < p->layers && i < TOKMARK_MAX_LAYERS; i++)
        tm_sb_printf(b, i == 0 ? "%u" : ",%u", (unsigned)p->weights[i]);
}

static void write_delta_bits(tm_sbuf *b, double delta) {
    uint64_t bits;
    memcpy(&bits, &delta, sizeof bits);
    tm_sb_printf(b, "%08lx%08lx", (unsigned long)(bits >> 32), (unsigned long)(bits & 0xffffffffu));
}

/* The parameter lines, shared by the canonical text of the key ID (SPEC
 * §2.4), the key file (§2.6) and the public description.  They differ only
 * in how δ and the account are written, and the description adds γ. */
typedef enum param_style { PARAMS_CANONICAL, PARAMS_FILE, PARAMS_DESCRIBE } param_style;

static void write_escaped(tm_sbuf *b, const char *s, size_t n);

static void write_params(tm_sbuf *b, const tokmark_profile *p, param_style style) {
    const tokmark_params *q = &p->params;
    tm_sb_printf(b, "scheme %s\n", tokmark_scheme_name(q->scheme));
    tm_sb_printf(b, "seeding %s\n", tokmark_seeding_name(q->seeding));
    tm_sb_printf(b, "context-width %lu\n", (unsigned long)q->context_width);
    tm_sb_printf(b, "vocab-size %lu\n", (unsigned long)q->vocab_size);
    tm_sb_printf(b, "tokenizer %s\n", q->tokenizer);
    if (q->scheme == TOKMARK_SCHEME_KGW) {
        if (style == PARAMS_DESCRIBE) tm_sb_printf(b, "gamma %.10g\n", tokmark_params_gamma(q));
        tm_sb_printf(b, "gamma-threshold %lu\n", (unsigned long)q->gamma_threshold);
        tm_sb_printf(b, "delta ");
        if (style == PARAMS_CANONICAL) {
            write_delta_bits(b, q->delta);
        } else {
            char d[40];
            tm_format_double(d, q->delta);
            tm_sb_printf(b, "%s", d);
        }
        sb_putc(b, '\n');
    }
    if (q->scheme == TOKMARK_SCHEME_SYNTHID) {
        tm_sb_printf(b, "layers %lu\n", (unsigned long)q->layers);
        tm_sb_printf(b, "weights ");
        write_weights(b, q);
        sb_putc(b, '\n');
    }
    tm_sb_printf(b, "mask-repeated %u\n", (unsigned)q->mask_repeated);
    if (p->has_account) {
        if (style == PARAMS_DESCRIBE) {
            tm_sb_printf(b, "account ");
            write_escaped(b, p->account, p->account_len);
        } else {
            tm_sb_printf(b, "account-hex ");
            sb_hex(b, (const uint8_t *)p->account, p->account_len);
        }
        sb_putc(b, '\n');
    }
}

static void canonical(tm_sbuf *b, const tokmark_profile *p) { write_params(b, p, PARAMS_CANONICAL); }

size_t tm_canonical_params(const tokmark_profile *p, char *buf, size_t size) {
    tm_sbuf b;
    sb_init(&b, buf, size);
    if (p != NULL) canonical(&b, p);
    return b.len;
}

int tm_profile_compute_key_id(tokmark_profile *p) {
    if (p == NULL || p->sec == NULL) return TOKMARK_ERR_INVALID;
    size_t n = tm_canonical_params(p, NULL, 0);
    char *c = (char *)malloc(n + 1);
    if (c == NULL) return TOKMARK_ERR_NOMEM;
    tm_canonical_params(p, c, n + 1);
    uint8_t h[16];
    crypto_generichash_state st;
    int rc = crypto_generichash_init(&st, NULL, 0, sizeof h);
    rc |= crypto_generichash_update(&st, (const unsigned char *)KEY_ID_PREFIX, sizeof KEY_ID_PREFIX - 1);
    rc |= crypto_generichash_update(&st, p->sec->k_fp, sizeof p->sec->k_fp);
    rc |= crypto_generichash_update(&st, (const unsigned char *)c, n);
    rc |= crypto_generichash_final(&st, h, sizeof h);
    sodium_memzero(&st, sizeof st);
    free(c);
    if (rc != 0) return TOKMARK_ERR_CRYPTO;
    sodium_bin2hex(p->key_id, sizeof p->key_id, h, sizeof h);
    return TOKMARK_OK;
}

/* ------------------------------------------------------------------------ */
/* Profiles                                                                   */
/* ------------------------------------------------------------------------ */

static int profile_create(tokmark_profile **out, const tokmark_params *params,
                          const uint8_t master[TOKMARK_MASTER_KEY_BYTES], const char *account,
                          size_t account_len) {
    *out = NULL;
    if (tokmark_params_check(params) != TOKMARK_OK) return TOKMARK_ERR_INVALID;
    if (account != NULL && (account_len < 1 || account_len >= TOKMARK_ACCOUNT_MAX))
        return TOKMARK_ERR_INVALID;
    if (sodium_init() < 0) return TOKMARK_ERR_CRYPTO;
    tokmark_profile *p = (tokmark_profile *)calloc(1, sizeof *p);
    if (p == NULL) return TOKMARK_ERR_NOMEM;
    params_normalise(&p->params, params);
    if (account != NULL) {
        p->has_account = 1;
        p->account_len = account_len;
        memcpy(p->account, account, account_len);
    }
    int rc = tm_secrets_create(&p->sec, master, p->params.scheme, p->params.seeding);
    if (rc == TOKMARK_OK) rc = tm_profile_compute_key_id(p);
    if (rc != TOKMARK_OK) {
        tokmark_profile_free(p);
        return rc;
    }
    *out = p;
    return TOKMARK_OK;
}

int tokmark_profile_from_key(tokmark_profile **out, const tokmark_params *params,
                             const uint8_t master_key[TOKMARK_MASTER_KEY_BYTES]) {
    if (out == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    if (params == NULL || master_key == NULL) return TOKMARK_ERR_INVALID;
    return profile_create(out, params, master_key, NULL, 0);
}

int tokmark_profile_generate(tokmark_profile **out, const tokmark_params *params) {
    if (out == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    if (tokmark_params_check(params) != TOKMARK_OK) return TOKMARK_ERR_INVALID;
    if (sodium_init() < 0) return TOKMARK_ERR_CRYPTO;
    uint8_t *key = (uint8_t *)sodium_malloc(TOKMARK_MASTER_KEY_BYTES);
    if (key == NULL) return TOKMARK_ERR_NOMEM;
    randombytes_buf(key, TOKMARK_MASTER_KEY_BYTES);
    int rc = profile_create(out, params, key, NULL, 0);
    sodium_memzero(key, TOKMARK_MASTER_KEY_BYTES);
    sodium_free(key);
    return rc;
}

int tokmark_profile_derive_account(tokmark_profile **out, const tokmark_profile *master,
                                   const char *account, size_t account_len) {
    if (out == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    if (master == NULL || master->sec == NULL || account == NULL) return TOKMARK_ERR_INVALID;
    if (account_len < 1 || account_len >= TOKMARK_ACCOUNT_MAX) return TOKMARK_ERR_INVALID;
    /* One level only: a file records a single account id per profile. */
    if (master->has_account) return TOKMARK_ERR_INVALID;
    if (sodium_init() < 0) return TOKMARK_ERR_CRYPTO;
    uint8_t *key = (uint8_t *)sodium_malloc(TOKMARK_MASTER_KEY_BYTES);
    if (key == NULL) return TOKMARK_ERR_NOMEM;
    int rc = TOKMARK_OK;
    if (crypto_generichash(key, TOKMARK_MASTER_KEY_BYTES, (const unsigned char *)account, account_len,
                           master->sec->k_acct, sizeof master->sec->k_acct) != 0)
        rc = TOKMARK_ERR_CRYPTO;
    if (rc == TOKMARK_OK) rc = profile_create(out, &master->params, key, account, account_len);
    sodium_memzero(key, TOKMARK_MASTER_KEY_BYTES);
    sodium_free(key);
    return rc;
}

void tokmark_profile_free(tokmark_profile *p) {
    if (p == NULL) return;
    tm_secrets_free(p->sec);
    sodium_memzero(p, sizeof *p);
    free(p);
}

const tokmark_params *tokmark_profile_params(const tokmark_profile *p) {
    return p != NULL ? &p->params : NULL;
}

const char *tokmark_profile_key_id(const tokmark_profile *p) {
    return p != NULL ? p->key_id : NULL;
}

const char *tokmark_profile_account(const tokmark_profile *p) {
    return p != NULL && p->has_account ? p->account : NULL;
}

size_t tokmark_profile_account_len(const tokmark_profile *p) {
    return p != NULL && p->has_account ? p->account_len : 0;
}

/* An account id as one word: printable ASCII other than space and backslash
 * as is, every other byte as \xHH, so it can never break a line. */
static void write_escaped(tm_sbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c > 0x20 && c < 0x7f && c != '\\') sb_putc(b, (char)c);
        else tm_sb_printf(b, "\\x%02x", (unsigned)c);
    }
}

size_t tokmark_profile_describe(const tokmark_profile *p, char *buf, size_t size) {
    tm_sbuf b;
    sb_init(&b, buf, size);
    if (p == NULL) return 0;
    tm_c_numeric loc;
    tm_c_numeric_enter(&loc);
    tm_sb_printf(&b, "key-id %s\n", p->key_id);
    write_params(&b, p, PARAMS_DESCRIBE);
    tm_c_numeric_leave(&loc);
    return b.len;
}

/* ------------------------------------------------------------------------ */
/* Writing profile files (SPEC §2.6)                                          */
/* ------------------------------------------------------------------------ */

static void serialise_profile(tm_sbuf *b, const tokmark_profile *p) {
    tm_sb_printf(b, "%s\n", FILE_MAGIC);
    write_params(b, p, PARAMS_FILE);
    tm_sb_printf(b, "key-id %s\n", p->key_id);
    tm_sb_printf(b, "master-key ");
    sb_hex(b, p->sec->master, TOKMARK_MASTER_KEY_BYTES);
    tm_sb_printf(b, "\nend\n");
}

static void serialise(tm_sbuf *b, const tokmark_profile *const *ps, size_t n) {
    tm_sb_printf(b, "# tokmark key file (SPEC.md section 2.6). It holds secret keys: keep it private.\n");
    for (size_t i = 0; i < n; i++) {
        sb_putc(b, '\n');
        serialise_profile(b, ps[i]);
    }
}

static int write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Write text to path atomically: temporary file in the same directory,
 * mode 0600, fsync, then link (no overwrite) or rename (overwrite).  Key
 * files of every kind (profiles, compatibility profiles) are written here. */
int tm_write_secret_file(const char *path, const char *text, size_t len, int overwrite) {
    struct stat st;
    if (!overwrite && lstat(path, &st) == 0) return TOKMARK_ERR_EXISTS;

    const char *slash = strrchr(path, '/');
    size_t dirlen = slash == NULL ? 0 : (size_t)(slash - path);
    const char *base = slash == NULL ? path : slash + 1;
    if (*base == '\0') return TOKMARK_ERR_INVALID; /* a directory, not a file name */
    /* "<dir>/.<base>.tmp-<16 hex>" */
    size_t tmpsize = dirlen + 1 + 1 + strlen(base) + 5 + 16 + 1;
    char *tmp = (char *)malloc(tmpsize);
    char *dir = (char *)malloc(dirlen + 2);
    if (tmp == NULL || dir == NULL) {
        free(tmp);
        free(dir);
        return TOKMARK_ERR_NOMEM;
    }
    if (slash == NULL) {
        memcpy(dir, ".", 2);
    } else if (dirlen == 0) {
        memcpy(dir, "/", 2);
    } else {
        memcpy(dir, path, dirlen);
        dir[dirlen] = '\0';
    }

    int fd = -1;
    for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
        uint8_t rnd[8];
        char rhex[17];
        randombytes_buf(rnd, sizeof rnd);
        sodium_bin2hex(rhex, sizeof rhex, rnd, sizeof rnd);
        if (slash == NULL) snprintf(tmp, tmpsize, ".%s.tmp-%s", base, rhex);
        else snprintf(tmp, tmpsize, "%.*s/.%s.tmp-%s", (int)dirlen, path, base, rhex);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0 && errno != EEXIST) break;
    }
    int rc = TOKMARK_OK, err = 0;
    if (fd < 0) {
        err = errno;
        rc = TOKMARK_ERR_IO;
        goto out;
    }
    /* exactly 0600 whatever the umask */
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, len) != 0 || fsync(fd) != 0) {
        err = errno;
        close(fd);
        unlink(tmp);
        rc = TOKMARK_ERR_IO;
        goto out;
    }
    if (close(fd) != 0) {
        err = errno;
        unlink(tmp);
        rc = TOKMARK_ERR_IO;
        goto out;
    }
    if (overwrite) {
        if (rename(tmp, path) != 0) {
            err = errno;
            rc = TOKMARK_ERR_IO;
        }
    } else if (link(tmp, path) == 0) {
        /* link() never replaces: atomic create-if-absent */
    } else if (errno == EEXIST) {
        rc = TOKMARK_ERR_EXISTS;
    } else if (errno == EPERM || errno == ENOTSUP || errno == EOPNOTSUPP || errno == ENOSYS) {
        /* no hard links on this file system: check, then rename */
        if (lstat(path, &st) == 0) {
            rc = TOKMARK_ERR_EXISTS;
        } else if (rename(tmp, path) != 0) {
            err = errno;
            rc = TOKMARK_ERR_IO;
        }
    } else {
        err = errno;
        rc = TOKMARK_ERR_IO;
    }
    unlink(tmp); /* after link, or on failure; after rename it is gone already */
    if (rc == TOKMARK_OK) fsync_dir(dir);
out:
    free(tmp);
    free(dir);
    if (rc == TOKMARK_ERR_IO && err != 0) errno = err; /* the cause, for callers' messages */
    return rc;
}

static int save_profiles(const tokmark_profile *const *ps, size_t n, const char *path, int overwrite) {
    if (path == NULL || *path == '\0' || n == 0) return TOKMARK_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (ps[i] == NULL || ps[i]->sec == NULL) return TOKMARK_ERR_INVALID;
    if (sodium_init() < 0) return TOKMARK_ERR_CRYPTO;
    tm_c_numeric loc;
    tm_c_numeric_enter(&loc);
    tm_sbuf b;
    sb_init(&b, NULL, 0);
    serialise(&b, ps, n);
    size_t len = b.len;
    char *text = (char *)sodium_malloc(len + 1);
    if (text == NULL) {
        tm_c_numeric_leave(&loc);
        return TOKMARK_ERR_NOMEM;
    }
    sb_init(&b, text, len + 1);
    serialise(&b, ps, n);
    tm_c_numeric_leave(&loc);
    int rc = b.len == len ? tm_write_secret_file(path, text, len, overwrite) : TOKMARK_ERR_INVALID;
    sodium_memzero(text, len + 1);
    sodium_free(text);
    return rc;
}

int tokmark_profile_save(const tokmark_profile *p, const char *path, int overwrite) {
    if (p == NULL) return TOKMARK_ERR_INVALID;
    return save_profiles(&p, 1, path, overwrite);
}

/* ------------------------------------------------------------------------ */
/* Reading profile files (SPEC §2.6)                                          */
/* ------------------------------------------------------------------------ */

enum {
    F_SCHEME, F_SEEDING, F_CONTEXT_WIDTH, F_VOCAB_SIZE, F_TOKENIZER, F_GAMMA_THRESHOLD, F_DELTA,
    F_LAYERS, F_WEIGHTS, F_MASK_REPEATED, F_ACCOUNT_HEX, F_KEY_ID, F_MASTER_KEY, F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "scheme", "seeding", "context-width", "vocab-size", "tokenizer", "gamma-threshold", "delta",
    "layers", "weights", "mask-repeated", "account-hex", "key-id", "master-key",
};

typedef struct field {
    const char *v; /* value, not NUL-terminated */
    size_t n;
    size_t line;   /* 0: absent */
} field;

typedef struct plist {
    tokmark_profile **v;
    size_t n, cap;
} plist;

static void plist_free(plist *l) {
    for (size_t i = 0; i < l->n; i++) tokmark_profile_free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int plist_push(plist *l, tokmark_profile *p) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        tokmark_profile **v = (tokmark_profile **)realloc(l->v, cap * sizeof *v);
        if (v == NULL) return TOKMARK_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = p;
    return TOKMARK_OK;
}

/* A decimal without sign or leading zeros, at most max. */
static int parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out) {
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0')) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (d > max || v > (max - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

/* A decimal floating-point number as %g writes it (the caller is in the C
 * locale): digits, '.', exponent; no sign, no spaces, no inf/nan/hex. */
static int parse_double(const char *s, size_t n, double *out) {
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) return 0;
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.')) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
            return 0;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end = NULL;
    double v = strtod(tmp, &end); /* overflow gives inf; subnormals are fine */
    if (end != tmp + n || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int is_lower_hex(const char *s, size_t n) {
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i];
        unsigned digit = (c - '0') < 10u;
        unsigned lower = (c - 'a') < 6u;
        bad |= (digit | lower) ^ 1u;
    }
    return bad == 0;
}

/* Exactly 2*len lower-case hex digits into bin (constant time in the digits). */
static int parse_hex(const char *s, size_t n, uint8_t *bin, size_t len) {
    if (n != 2 * len || !is_lower_hex(s, n)) return 0;
    size_t got = 0;
    const char *end = NULL;
    if (sodium_hex2bin(bin, len, s, n, NULL, &got, &end) != 0 || got != len || end != s + n) return 0;
    return 1;
}

static int parse_weights(const char *s, size_t n, uint16_t *w, uint32_t *count) {
    uint32_t m = 0;
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && s[j] != ',') j++;
        uint64_t v;
        if (m >= TOKMARK_MAX_LAYERS || !parse_uint(s + i, j - i, TOKMARK_MAX_WEIGHT, &v) || v < 1)
            return 0;
        w[m++] = (uint16_t)v;
        i = j + 1;
    }
    *count = m;
    return 1;
}

/* Build one profile from the fields between "tokmark-profile 1" and "end".
 * key: 32 bytes of guarded scratch memory. */
static int build_profile(tokmark_profile **out, const field *f, size_t end_line, uint8_t *key,
                         size_t *errline) {
    *out = NULL;
#define FAIL_AT(ln)                                                                                \
    do {                                                                                           \
        *errline = (ln);                                                                           \
        return TOKMARK_ERR_FORMAT;                                                                 \
    } while (0)

    if (f[F_SCHEME].line == 0) FAIL_AT(end_line);
    tokmark_scheme scheme = scheme_parse_n(f[F_SCHEME].v, f[F_SCHEME].n);
    if (scheme == 0) FAIL_AT(f[F_SCHEME].line);
    tokmark_params p;
    tokmark_params_default(&p, scheme);

    /* the remaining fields in file order, so the first bad line is reported */
    int order[F_COUNT], k = 0;
    for (int i = 0; i < F_COUNT; i++)
        if (i != F_SCHEME && f[i].line != 0) order[k++] = i;
    for (int a = 1; a < k; a++)
        for (int b = a; b > 0 && f[order[b - 1]].line > f[order[b]].line; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }

    char account[TOKMARK_ACCOUNT_MAX];
    size_t account_len = 0;
    uint16_t weights[TOKMARK_MAX_LAYERS];
    uint32_t nweights = 0;
    char key_id[TOKMARK_KEY_ID_HEX + 1];
    key_id[0] = '\0';

    for (int j = 0; j < k; j++) {
        int i = order[j];
        const char *v = f[i].v;
        size_t n = f[i].n, line = f[i].line;
        uint64_t u = 0;
        switch (i) {
        case F_SEEDING:
            p.seeding = seeding_parse_n(v, n);
            if (p.seeding == 0) FAIL_AT(line);
            break;
        case F_CONTEXT_WIDTH:
            if (!parse_uint(v, n, TOKMARK_MAX_CONTEXT, &u) || u < 1) FAIL_AT(line);
            p.context_width = (uint32_t)u;
            break;
        case F_VOCAB_SIZE:
            if (!parse_uint(v, n, TM_MAX_VOCAB, &u) || u < 2) FAIL_AT(line);
            p.vocab_size = (uint32_t)u;
            break;
        case F_TOKENIZER:
            if (!tokenizer_ok(v, n)) FAIL_AT(line);
            memset(p.tokenizer, 0, sizeof p.tokenizer);
            memcpy(p.tokenizer, v, n);
            break;
        case F_GAMMA_THRESHOLD:
            if (scheme != TOKMARK_SCHEME_KGW || !parse_uint(v, n, UINT32_MAX, &u) || u < 1) FAIL_AT(line);
            p.gamma_threshold = (uint32_t)u;
            break;
        case F_DELTA:
            if (scheme != TOKMARK_SCHEME_KGW || !parse_double(v, n, &p.delta) ||
                !(p.delta > 0.0 && p.delta <= TM_MAX_DELTA))
                FAIL_AT(line);
            break;
        case F_LAYERS:
            if (scheme != TOKMARK_SCHEME_SYNTHID || !parse_uint(v, n, TOKMARK_MAX_LAYERS, &u) || u < 1)
                FAIL_AT(line);
            p.layers = (uint32_t)u;
            break;
        case F_WEIGHTS:
            if (scheme != TOKMARK_SCHEME_SYNTHID || !parse_weights(v, n, weights, &nweights))
                FAIL_AT(line);
            break;
        case F_MASK_REPEATED:
            if (!parse_uint(v, n, 1, &u)) FAIL_AT(line);
            p.mask_repeated = (uint32_t)u;
            break;
        case F_ACCOUNT_HEX:
            if (n < 2 || n > 2 * (TOKMARK_ACCOUNT_MAX - 1) ||
                !parse_hex(v, n, (uint8_t *)account, n / 2))
                FAIL_AT(line);
            account_len = n / 2;
            break;
        case F_KEY_ID:
            if (n != TOKMARK_KEY_ID_HEX || !is_lower_hex(v, n)) FAIL_AT(line);
            memcpy(key_id, v, n);
            key_id[n] = '\0';
            break;
        case F_MASTER_KEY:
            if (!parse_hex(v, n, key, TOKMARK_MASTER_KEY_BYTES)) FAIL_AT(line);
            break;
        default: FAIL_AT(line);
        }
    }
    if (f[F_VOCAB_SIZE].line == 0 || f[F_MASTER_KEY].line == 0) FAIL_AT(end_line);
    if (!context_width_ok(p.seeding, p.context_width))
        FAIL_AT(f[F_CONTEXT_WIDTH].line != 0 ? f[F_CONTEXT_WIDTH].line : f[F_SEEDING].line);
    if (scheme == TOKMARK_SCHEME_SYNTHID) {
        if (f[F_WEIGHTS].line != 0) {
            if (nweights != p.layers) FAIL_AT(f[F_WEIGHTS].line);
            memset(p.weights, 0, sizeof p.weights);
            memcpy(p.weights, weights, sizeof weights[0] * nweights);
        } else {
            default_weights(&p);
        }
    }
    if (tokmark_params_check(&p) != TOKMARK_OK) FAIL_AT(end_line); /* not reached */

    int rc = profile_create(out, &p, key, account_len ? account : NULL, account_len);
    sodium_memzero(key, TOKMARK_MASTER_KEY_BYTES);
    if (rc != TOKMARK_OK) {
        *errline = end_line;
        return rc;
    }
    if (f[F_KEY_ID].line != 0 && sodium_memcmp(key_id, (*out)->key_id, TOKMARK_KEY_ID_HEX) != 0) {
        tokmark_profile_free(*out);
        *out = NULL;
        FAIL_AT(f[F_KEY_ID].line);
    }
    return TOKMARK_OK;
#undef FAIL_AT
}

/* Parse a whole file held in memory: every profile goes to l. */
static int parse_text(const char *text, size_t len, plist *l, size_t *errline) {
    uint8_t *key = (uint8_t *)sodium_malloc(TOKMARK_MASTER_KEY_BYTES);
    if (key == NULL) return TOKMARK_ERR_NOMEM;
    field f[F_COUNT];
    int in_profile = 0;
    size_t line = 0, pos = 0;
    int rc = TOKMARK_OK;
    const char *s;
    size_t n;
    int got;
    while (rc == TOKMARK_OK && (got = tm_keyfile_line(text, len, &pos, &line, &s, &n)) != 0) {
        if (got < 0) {
            rc = TOKMARK_ERR_FORMAT;
            break;
        }
        if (n == 0 || s[0] == '#') continue;
        if (!in_profile) {
            if (!name_eq(s, n, FILE_MAGIC)) {
                rc = n >= sizeof TM_COMPAT_NAME - 1 && memcmp(s, TM_COMPAT_NAME, sizeof TM_COMPAT_NAME - 1) == 0
                         ? TOKMARK_ERR_UNSUPPORTED /* a compatibility profile (compat.c) */
                         : TOKMARK_ERR_FORMAT;
                break;
            }
            memset(f, 0, sizeof f);
            in_profile = 1;
            continue;
        }
        if (name_eq(s, n, "end")) {
            tokmark_profile *p = NULL;
            rc = build_profile(&p, f, line, key, &line);
            if (rc == TOKMARK_OK) {
                rc = plist_push(l, p);
                if (rc != TOKMARK_OK) tokmark_profile_free(p);
            }
            in_profile = 0;
            continue;
        }
        /* "name SP value": one space, a non-empty value without spaces */
        const char *sp = (const char *)memchr(s, ' ', n);
        if (sp == NULL || sp == s) {
            rc = TOKMARK_ERR_FORMAT;
            break;
        }
        size_t nn = (size_t)(sp - s);
        const char *v = sp + 1;
        size_t vn = n - nn - 1;
        if (vn == 0 || memchr(v, ' ', vn) != NULL || memchr(v, '\t', vn) != NULL) {
            rc = TOKMARK_ERR_FORMAT;
            break;
        }
        int idx = -1;
        for (int i = 0; i < F_COUNT; i++)
            if (name_eq(s, nn, field_names[i])) idx = i;
        if (idx < 0 || f[idx].line != 0) { /* unknown or duplicate */
            rc = TOKMARK_ERR_FORMAT;
            break;
        }
        f[idx].v = v;
        f[idx].n = vn;
        f[idx].line = line;
    }
    if (rc == TOKMARK_OK && (in_profile || l->n == 0)) {
        /* missing "end", or no profile at all: the last line is at fault */
        rc = TOKMARK_ERR_FORMAT;
        if (line == 0) line = 1;
    }
    sodium_memzero(f, sizeof f);
    sodium_free(key);
    if (rc != TOKMARK_OK && errline != NULL) *errline = line;
    return rc;
}

static int read_file_secure(const char *path, unsigned flags, char **out, size_t *outlen) {
    *out = NULL;
    *outlen = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return TOKMARK_ERR_IO; /* errno says why */
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        errno = err;
        return TOKMARK_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        return TOKMARK_ERR_IO;
    }
    if ((st.st_mode & 077) != 0 && !(flags & TOKMARK_LOAD_FORCE)) {
        close(fd);
        return TOKMARK_ERR_PERMISSIONS;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > TM_MAX_FILE) {
        close(fd);
        return TOKMARK_ERR_FORMAT;
    }
    size_t cap = (size_t)st.st_size + 1; /* +1 to notice growth */
    char *buf = (char *)sodium_malloc(cap);
    if (buf == NULL) {
        close(fd);
        return TOKMARK_ERR_NOMEM;
    }
    size_t len = 0;
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            sodium_memzero(buf, cap);
            sodium_free(buf);
            close(fd);
            errno = err;
            return TOKMARK_ERR_IO;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (len == cap) { /* the file grew while we read it */
        sodium_memzero(buf, cap);
        sodium_free(buf);
        errno = EAGAIN;
        return TOKMARK_ERR_IO;
    }
    *out = buf;
    *outlen = len;
    return TOKMARK_OK;
}

static int load_all(plist *l, const char *path, unsigned flags, size_t *errline) {
    if (errline != NULL) *errline = 0;
    if (path == NULL) return TOKMARK_ERR_INVALID;
    if (sodium_init() < 0) return TOKMARK_ERR_CRYPTO;
    char *text = NULL;
    size_t len = 0;
    int rc = read_file_secure(path, flags, &text, &len);
    if (rc != TOKMARK_OK) return rc;
    tm_c_numeric loc;
    tm_c_numeric_enter(&loc);
    rc = parse_text(text, len, l, errline);
    tm_c_numeric_leave(&loc);
    sodium_memzero(text, len + 1);
    sodium_free(text);
    if (rc != TOKMARK_OK) plist_free(l);
    return rc;
}

int tokmark_profile_load(tokmark_profile **out, const char *path, unsigned flags, size_t *errline) {
    if (errline != NULL) *errline = 0;
    if (out == NULL) return TOKMARK_ERR_INVALID;
    *out = NULL;
    plist l = {NULL, 0, 0};
    int rc = load_all(&l, path, flags, errline);
    if (rc != TOKMARK_OK) return rc;
    *out = l.v[0];
    l.v[0] = NULL;
    for (size_t i = 1; i < l.n; i++) tokmark_profile_free(l.v[i]);
    free(l.v);
    return TOKMARK_OK;
}

/* ------------------------------------------------------------------------ */
/* Key rings (SPEC §2.7)                                                      */
/* ------------------------------------------------------------------------ */

struct tokmark_keyring {
    plist l;
};

int tokmark_keyring_new(tokmark_keyring **out) {
    if (out == NULL) return TOKMARK_ERR_INVALID;
    *out = (tokmark_keyring *)calloc(1, sizeof **out);
    return *out != NULL ? TOKMARK_OK : TOKMARK_ERR_NOMEM;
}

void tokmark_keyring_free(tokmark_keyring *r) {
    if (r == NULL) return;
    plist_free(&r->l);
    free(r);
}

int tokmark_keyring_add(tokmark_keyring *r, tokmark_profile *p) {
    if (r == NULL || p == NULL) {
        tokmark_profile_free(p);
        return TOKMARK_ERR_INVALID;
    }
    int rc = plist_push(&r->l, p);
    if (rc != TOKMARK_OK) tokmark_profile_free(p);
    return rc;
}

int tokmark_keyring_load(tokmark_keyring *r, const char *path, unsigned flags, size_t *errline) {
    if (errline != NULL) *errline = 0;
    if (r == NULL) return TOKMARK_ERR_INVALID;
    plist l = {NULL, 0, 0};
    int rc = load_all(&l, path, flags, errline);
    if (rc != TOKMARK_OK) return rc;
    /* all or nothing: make room first */
    if (r->l.cap - r->l.n < l.n) {
        size_t cap = r->l.n + l.n;
        tokmark_profile **v = (tokmark_profile **)realloc(r->l.v, cap * sizeof *v);
        if (v == NULL) {
            plist_free(&l);
            return TOKMARK_ERR_NOMEM;
        }
        r->l.v = v;
        r->l.cap = cap;
    }
    memcpy(r->l.v + r->l.n, l.v, l.n * sizeof *l.v);
    r->l.n += l.n;
    free(l.v);
    return TOKMARK_OK;
}

size_t tokmark_keyring_size(const tokmark_keyring *r) {
    return r != NULL ? r->l.n : 0;
}

const tokmark_profile *tokmark_keyring_get(const tokmark_keyring *r, size_t i) {
    return r != NULL && i < r->l.n ? r->l.v[i] : NULL;
}

int tokmark_keyring_save(const tokmark_keyring *r, const char *path, int overwrite) {
    if (r == NULL) return TOKMARK_ERR_INVALID;
    return save_profiles((const tokmark_profile *const *)r->l.v, r->l.n, path, overwrite);
}

/* SPEC.md §2.8: a commitment to the master key that its holder can open
 * later (the report's --commit-key).  BLAKE2b-256 of the domain string, the
 * 32-byte opening, the master key and the key ID. */
int tokmark_profile_commitment(const tokmark_profile *p, const uint8_t opening[TOKMARK_COMMITMENT_BYTES],
                               uint8_t out[TOKMARK_COMMITMENT_BYTES]) {
    static const char domain[] = "tokmark key commitment v1\n";
    if (p == NULL || p->sec == NULL || opening == NULL || out == NULL) return TOKMARK_ERR_INVALID;
    crypto_generichash_state st;
    if (crypto_generichash_init(&st, NULL, 0, TOKMARK_COMMITMENT_BYTES) != 0 ||
        crypto_generichash_update(&st, (const uint8_t *)domain, sizeof domain - 1) != 0 ||
        crypto_generichash_update(&st, opening, TOKMARK_COMMITMENT_BYTES) != 0 ||
        crypto_generichash_update(&st, p->sec->master, TOKMARK_MASTER_KEY_BYTES) != 0 ||
        crypto_generichash_update(&st, (const uint8_t *)p->key_id, TOKMARK_KEY_ID_HEX) != 0 ||
        crypto_generichash_final(&st, out, TOKMARK_COMMITMENT_BYTES) != 0) {
        sodium_memzero(&st, sizeof st);
        return TOKMARK_ERR_CRYPTO;
    }
    sodium_memzero(&st, sizeof st);
    return TOKMARK_OK;
}
