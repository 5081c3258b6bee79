/* report_util.c — buffer, canonical JSON, hashes, signing keys, durable
 * writes and binomial intervals of `tokmark report` (SPEC.md §13). */
#define _XOPEN_SOURCE 700 /* mkstemp */
#include "report_util.h"

#include "tokmark.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- buffer ---------------------------------------------------------------- */

void rp_buf_free(rp_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int rp_buf_reserve(rp_buf *b, size_t extra) {
    if (b->failed) return -1;
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t c = b->cap ? b->cap : 4096;
    while (c < b->len + extra + 1) c *= 2;
    char *d = realloc(b->data, c);
    if (d == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = d;
    b->cap = c;
    return 0;
}

void rp_buf_add(rp_buf *b, const void *s, size_t n) {
    if (rp_buf_reserve(b, n) != 0) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void rp_buf_puts(rp_buf *b, const char *s) { rp_buf_add(b, s, strlen(s)); }

void rp_buf_printf(rp_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || rp_buf_reserve(b, (size_t)n) != 0) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- canonical JSON ----------------------------------------------------------- */

void rp_json_strn(rp_buf *b, const char *s, size_t n) {
    rp_buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rp_buf_add(b, e, 2);
        } else if (c == '\n') rp_buf_add(b, "\\n", 2);
        else if (c == '\t') rp_buf_add(b, "\\t", 2);
        else if (c == '\r') rp_buf_add(b, "\\r", 2);
        else if (c < 0x20 || c == 0x7f) rp_buf_printf(b, "\\u%04x", c);
        else rp_buf_add(b, s + i, 1);
    }
    rp_buf_add(b, "\"", 1);
}

void rp_json_str(rp_buf *b, const char *s) { rp_json_strn(b, s, strlen(s)); }

void rp_json_key(rp_buf *b, int *first, const char *key) {
    if (!*first) rp_buf_add(b, ",", 1);
    *first = 0;
    rp_json_str(b, key);
    rp_buf_add(b, ":", 1);
}

void rp_json_u64(rp_buf *b, uint64_t v) { rp_buf_printf(b, "%llu", (unsigned long long)v); }

void rp_json_real(rp_buf *b, double v) {
    if (!isfinite(v)) {
        rp_buf_puts(b, "null");
        return;
    }
    if (v == 0) v = 0; /* -0 prints as 0 */
    rp_buf_printf(b, "%.17g", v);
}

/* ---- hashes ------------------------------------------------------------------ */

void rp_hex(char *out, const uint8_t *in, size_t n) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int rp_sha256_file(const char *path, char out[65], uint64_t *size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return e ? e : EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        close(fd);
        return ENOMEM;
    }
    static unsigned char buf[1 << 16];
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = errno;
            break;
        }
        if (n == 0) break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            rc = EIO;
            break;
        }
        total += (uint64_t)n;
    }
    unsigned char md[32];
    unsigned int mdl = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(ctx, md, &mdl) != 1 || mdl != 32)) rc = EIO;
    EVP_MD_CTX_free(ctx);
    close(fd);
    if (rc == 0) {
        rp_hex(out, md, 32);
        *size = total;
    }
    return rc;
}

void rp_sha256_mem(const void *data, size_t n, char out[65]) {
    unsigned char md[32];
    unsigned int mdl = 0;
    if (EVP_Digest(data, n, md, &mdl, EVP_sha256(), NULL) != 1 || mdl != 32) memset(md, 0, sizeof md);
    rp_hex(out, md, 32);
}

/* ---- signing keys ------------------------------------------------------------ */

#define SK_MAGIC "tokmark-signing-key 1"
#define PK_MAGIC "tokmark-signing-public-key 1"

const char *rp_error_message(int rc) {
    switch (rc) {
    case RP_OK: return "ok";
    case RP_ERR_IO: return "cannot read or write the file";
    case RP_ERR_FORMAT: return "not a tokmark report-signing key file";
    case RP_ERR_PERMS: return "the signing key file is readable by group or others";
    case RP_ERR_EXISTS: return "the file exists already";
    default: return "cryptography failed";
    }
}

void rp_fingerprint(const uint8_t pk[RP_PK_BYTES], char out[33]) {
    unsigned char md[32];
    unsigned int mdl = 0;
    if (EVP_Digest(pk, RP_PK_BYTES, md, &mdl, EVP_sha256(), NULL) != 1) memset(md, 0, sizeof md);
    rp_hex(out, md, 16);
}

int rp_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

int rp_write_new_file(const char *path, const void *data, size_t n, unsigned mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, (mode_t)mode);
    if (fd < 0) return errno;
    const char *p = data;
    size_t off = 0;
    int rc = 0;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = errno;
            break;
        }
        off += (size_t)w;
    }
    if (rc == 0 && fchmod(fd, (mode_t)mode) != 0) rc = errno;
    if (rc == 0 && fsync(fd) != 0) rc = errno;
    if (close(fd) != 0 && rc == 0) rc = errno;
    if (rc != 0) unlink(path);
    return rc;
}

/* Write data to a temporary file next to path, then link (or with force,
 * rename) it into place and sync the directory. */
static int write_atomic(const char *path, const char *data, size_t n, unsigned mode, int force, int *err_no) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    char *dcopy = strdup(path);
    if (tmp == NULL || dcopy == NULL) {
        free(tmp);
        free(dcopy);
        *err_no = ENOMEM;
        return RP_ERR_IO;
    }
    snprintf(tmp, pl + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    int rc = RP_OK;
    if (fd < 0) {
        *err_no = errno;
        rc = RP_ERR_IO;
    } else {
        size_t off = 0;
        while (off < n && rc == RP_OK) {
            ssize_t w = write(fd, data + off, n - off);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                *err_no = errno;
                rc = RP_ERR_IO;
            } else off += (size_t)w;
        }
        if (rc == RP_OK && (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0)) {
            *err_no = errno;
            rc = RP_ERR_IO;
        }
        if (close(fd) != 0 && rc == RP_OK) {
            *err_no = errno;
            rc = RP_ERR_IO;
        }
        if (rc == RP_OK) {
            if (force) {
                if (rename(tmp, path) != 0) {
                    *err_no = errno;
                    rc = RP_ERR_IO;
                }
            } else if (link(tmp, path) != 0) {
                *err_no = errno;
                rc = errno == EEXIST ? RP_ERR_EXISTS : RP_ERR_IO;
            }
        }
        unlink(tmp);
        if (rc == RP_OK) (void)rp_fsync_dir(dirname(dcopy));
    }
    free(tmp);
    free(dcopy);
    return rc;
}

int rp_signkey_generate(const char *path, int force, uint8_t pk_out[RP_PK_BYTES], int *err_no) {
    *err_no = 0;
    if (sodium_init() < 0) return RP_ERR_CRYPTO;
    size_t pl = strlen(path);
    char *pub = malloc(pl + 5);
    if (pub == NULL) {
        *err_no = ENOMEM;
        return RP_ERR_IO;
    }
    snprintf(pub, pl + 5, "%s.pub", path);
    if (!force && (access(path, F_OK) == 0 || access(pub, F_OK) == 0)) {
        free(pub);
        return RP_ERR_EXISTS;
    }
    uint8_t *seed = sodium_malloc(crypto_sign_SEEDBYTES), *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    char *text = sodium_malloc(512);
    int rc = RP_OK;
    if (seed == NULL || sk == NULL || text == NULL) rc = RP_ERR_CRYPTO;
    if (rc == RP_OK) {
        randombytes_buf(seed, crypto_sign_SEEDBYTES);
        if (crypto_sign_seed_keypair(pk_out, sk, seed) != 0) rc = RP_ERR_CRYPTO;
    }
    if (rc == RP_OK) {
        char pkh[65], seedh[65], fp[33];
        rp_hex(pkh, pk_out, RP_PK_BYTES);
        sodium_bin2hex(seedh, sizeof seedh, seed, crypto_sign_SEEDBYTES);
        rp_fingerprint(pk_out, fp);
        int n = snprintf(text, 512,
                         SK_MAGIC "\n# tokmark report-signing key (Ed25519); keep secret, never share.\n"
                                  "public-key %s\nfingerprint %s\nseed %s\nend\n",
                         pkh, fp, seedh);
        sodium_memzero(seedh, sizeof seedh);
        rc = write_atomic(path, text, (size_t)n, 0600, force, err_no);
        if (rc == RP_OK) {
            n = snprintf(text, 512, PK_MAGIC "\npublic-key %s\nfingerprint %s\nend\n", pkh, fp);
            rc = write_atomic(pub, text, (size_t)n, 0644, force, err_no);
            if (rc != RP_OK) unlink(path);
        }
    }
    sodium_free(seed);
    sodium_free(sk);
    sodium_free(text);
    free(pub);
    return rc;
}

static int hex_decode(const char *s, size_t n, uint8_t *out, size_t outn) {
    if (n != 2 * outn) return -1;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return -1;
    size_t got = 0;
    return sodium_hex2bin(out, outn, s, n, NULL, &got, NULL) == 0 && got == outn ? 0 : -1;
}

/* Parse a key file: magic line, "name value" lines, "end".  want_secret:
 * the seed is required.  Comments (#) and nothing else are allowed. */
static int parse_key(const char *text, size_t len, int want_secret, uint8_t *seed, uint8_t pk[RP_PK_BYTES],
                     size_t *line) {
    size_t pos = 0, ln = 0;
    int have_pk = 0, have_seed = 0, have_fp = 0, ended = 0, secret_file = -1;
    char fp[33] = {0};
    while (pos < len) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl != NULL);
        ln++;
        *line = ln;
        if (ended) return RP_ERR_FORMAT; /* nothing after end */
        if (secret_file < 0) {
            if (n == strlen(SK_MAGIC) && memcmp(s, SK_MAGIC, n) == 0) secret_file = 1;
            else if (n == strlen(PK_MAGIC) && memcmp(s, PK_MAGIC, n) == 0) secret_file = 0;
            else return RP_ERR_FORMAT;
            if (want_secret && !secret_file) return RP_ERR_FORMAT;
            continue;
        }
        if (n > 0 && s[0] == '#') continue;
        if (n == 3 && memcmp(s, "end", 3) == 0) {
            ended = 1;
            continue;
        }
        const char *sp = memchr(s, ' ', n);
        if (sp == NULL) return RP_ERR_FORMAT;
        size_t kn = (size_t)(sp - s), vn = n - kn - 1;
        const char *v = sp + 1;
        if (kn == 10 && memcmp(s, "public-key", 10) == 0 && !have_pk) {
            if (hex_decode(v, vn, pk, RP_PK_BYTES) != 0) return RP_ERR_FORMAT;
            have_pk = 1;
        } else if (kn == 11 && memcmp(s, "fingerprint", 11) == 0 && !have_fp && vn == 32) {
            memcpy(fp, v, 32);
            have_fp = 1;
        } else if (kn == 4 && memcmp(s, "seed", 4) == 0 && secret_file == 1 && !have_seed) {
            uint8_t tmp[32];
            if (hex_decode(v, vn, tmp, 32) != 0) return RP_ERR_FORMAT;
            if (seed != NULL) memcpy(seed, tmp, 32);
            sodium_memzero(tmp, sizeof tmp);
            have_seed = 1;
        } else
            return RP_ERR_FORMAT;
    }
    if (!ended || !have_pk || (want_secret && !have_seed)) return RP_ERR_FORMAT;
    if (have_fp) {
        char want[33];
        rp_fingerprint(pk, want);
        if (memcmp(want, fp, 32) != 0) return RP_ERR_FORMAT;
    }
    *line = 0;
    return RP_OK;
}

char *rp_read_file(const char *path, size_t *len, int *err_no) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *err_no = errno;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, k;
    char *b = malloc(cap + 1);
    while (b != NULL && (k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (nb == NULL) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    int e = ferror(f) ? errno : 0;
    fclose(f);
    if (b == NULL || e != 0) {
        free(b);
        *err_no = b == NULL ? ENOMEM : e;
        return NULL;
    }
    b[n] = '\0';
    *len = n;
    return b;
}

static int read_small(const char *path, char **text, size_t *len, int secret, int *err_no) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        *err_no = errno;
        return RP_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *err_no = errno;
        close(fd);
        return RP_ERR_IO;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > 65536) {
        *err_no = S_ISREG(st.st_mode) ? 0 : EINVAL;
        close(fd);
        return S_ISREG(st.st_mode) ? RP_ERR_FORMAT : RP_ERR_IO;
    }
    if (secret && (st.st_mode & 077) != 0) {
        close(fd);
        return RP_ERR_PERMS;
    }
    char *b = sodium_malloc((size_t)st.st_size + 1);
    if (b == NULL) {
        close(fd);
        return RP_ERR_CRYPTO;
    }
    size_t off = 0;
    while (off < (size_t)st.st_size) {
        ssize_t r = read(fd, b + off, (size_t)st.st_size - off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        off += (size_t)r;
    }
    close(fd);
    b[off] = '\0';
    *text = b;
    *len = off;
    return RP_OK;
}

int rp_signkey_load(const char *path, uint8_t sk[RP_SK_BYTES], uint8_t pk[RP_PK_BYTES], size_t *line,
                    int *err_no) {
    *line = 0;
    *err_no = 0;
    if (sodium_init() < 0) return RP_ERR_CRYPTO;
    char *text = NULL;
    size_t len = 0;
    int rc = read_small(path, &text, &len, 1, err_no);
    if (rc != RP_OK) return rc;
    uint8_t seed[32], pk2[RP_PK_BYTES];
    rc = parse_key(text, len, 1, seed, pk, line);
    sodium_free(text);
    if (rc == RP_OK) {
        if (crypto_sign_seed_keypair(pk2, sk, seed) != 0) rc = RP_ERR_CRYPTO;
        else if (sodium_memcmp(pk, pk2, RP_PK_BYTES) != 0) rc = RP_ERR_FORMAT; /* public key does not match */
    }
    sodium_memzero(seed, sizeof seed);
    if (rc != RP_OK) sodium_memzero(sk, RP_SK_BYTES);
    return rc;
}

int rp_pubkey_load(const char *path, uint8_t pk[RP_PK_BYTES], size_t *line, int *err_no) {
    *line = 0;
    *err_no = 0;
    char *text = NULL;
    size_t len = 0;
    int rc = read_small(path, &text, &len, 0, err_no);
    if (rc != RP_OK) return rc;
    rc = parse_key(text, len, 0, NULL, pk, line);
    sodium_free(text);
    return rc;
}

/* ---- statistics --------------------------------------------------------------- */

/* ln P(X >= k), X ~ Binomial(n, p) */
static double ln_upper(uint64_t k, uint64_t n, double p) { return tokmark_ln_sf_binomial(k, n, p); }

void rp_binom_ci(uint64_t k, uint64_t n, double conf, double *lo, double *hi) {
    double a = (1.0 - conf) / 2.0, la = log(a);
    *lo = 0.0;
    *hi = 1.0;
    if (n == 0) return;
    if (k > 0) { /* P(X >= k; p_lo) = a */
        double l = 0.0, h = 1.0;
        for (int i = 0; i < 200; i++) {
            double m = 0.5 * (l + h);
            if (ln_upper(k, n, m) < la) l = m;
            else h = m;
        }
        *lo = 0.5 * (l + h);
    }
    if (k < n) { /* P(X <= k; p_hi) = a, i.e. P(X >= k+1; p_hi) = 1 - a */
        double l = 0.0, h = 1.0, target = log1p(-a);
        for (int i = 0; i < 200; i++) {
            double m = 0.5 * (l + h);
            if (ln_upper(k + 1, n, m) < target) l = m;
            else h = m;
        }
        *hi = 0.5 * (l + h);
    }
}
