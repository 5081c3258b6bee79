/* report_util.h — building blocks of `tokmark report` (SPEC.md §13): a byte
 * buffer with a canonical JSON writer, SHA-256 of files (OpenSSL EVP), the
 * Ed25519 report-signing key files (libsodium), durable file writes, and the
 * exact binomial confidence interval of a measured error rate. */
#ifndef TOKMARK_CLI_REPORT_UTIL_H
#define TOKMARK_CLI_REPORT_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* ---- a growable byte buffer ------------------------------------------- */

typedef struct rp_buf {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed: the content is incomplete */
} rp_buf;

void rp_buf_free(rp_buf *b);
void rp_buf_add(rp_buf *b, const void *s, size_t n);
void rp_buf_puts(rp_buf *b, const char *s);
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
void rp_buf_printf(rp_buf *b, const char *fmt, ...);

/* ---- canonical JSON (SPEC §13.2) ---------------------------------------
 * The caller writes keys in the schema's order; these write values with no
 * whitespace: strings with the minimal escapes, integers in decimal, reals
 * with "%.17g" (non-finite reals as null). */
void rp_json_str(rp_buf *b, const char *s);
void rp_json_strn(rp_buf *b, const char *s, size_t n);
void rp_json_key(rp_buf *b, int *first, const char *key); /* ',' unless first, then "key": */
void rp_json_u64(rp_buf *b, uint64_t v);
void rp_json_real(rp_buf *b, double v);

/* ---- hashes ------------------------------------------------------------ */

void rp_hex(char *out, const uint8_t *in, size_t n); /* lower-case, NUL-terminated */
/* SHA-256 of a file: 0 (hex in out[65], size in *size) or an errno value. */
int rp_sha256_file(const char *path, char out[65], uint64_t *size);
void rp_sha256_mem(const void *data, size_t n, char out[65]);

/* ---- report-signing keys (Ed25519) ---------------------------------------
 * Secret file:  "tokmark-signing-key 1" / "public-key HEX64" / "seed HEX64" / "end"
 * Public file:  "tokmark-signing-public-key 1" / "public-key HEX64" / "fingerprint HEX32" / "end"
 * The fingerprint is the first 16 bytes of SHA-256 of the 32-byte public key. */
#define RP_PK_BYTES 32
#define RP_SK_BYTES 64
#define RP_SIG_BYTES 64

/* Return codes of the key functions. */
enum { RP_OK = 0, RP_ERR_IO = 1, RP_ERR_FORMAT = 2, RP_ERR_PERMS = 3, RP_ERR_EXISTS = 4, RP_ERR_CRYPTO = 5 };
const char *rp_error_message(int rc);

void rp_fingerprint(const uint8_t pk[RP_PK_BYTES], char out[33]);
/* A new key pair: the secret to `path` (mode 0600, atomic, never replacing
 * an existing file unless force), the public key to path.pub (0644).
 * *err_no receives errno on RP_ERR_IO. */
int rp_signkey_generate(const char *path, int force, uint8_t pk_out[RP_PK_BYTES], int *err_no);
/* Load a secret key file (refused when group/others can read it): sk is
 * libsodium's 64-byte secret key; wipe it after use.  *line: 1-based line at
 * fault for RP_ERR_FORMAT. */
int rp_signkey_load(const char *path, uint8_t sk[RP_SK_BYTES], uint8_t pk[RP_PK_BYTES], size_t *line,
                    int *err_no);
/* Load a public key file (or a secret key file: its public key). */
int rp_pubkey_load(const char *path, uint8_t pk[RP_PK_BYTES], size_t *line, int *err_no);

/* ---- files --------------------------------------------------------------- */

/* Create path (O_EXCL, mode) with data, fsync it.  0 or errno. */
int rp_write_new_file(const char *path, const void *data, size_t n, unsigned mode);
int rp_fsync_dir(const char *dir); /* 0 or errno */
/* The whole file (NUL-terminated); NULL with *err_no set. */
char *rp_read_file(const char *path, size_t *len, int *err_no);

/* ---- statistics ---------------------------------------------------------- */

/* Exact (Clopper–Pearson) two-sided interval of a binomial proportion: k
 * successes of n, confidence conf (e.g. 0.95). */
void rp_binom_ci(uint64_t k, uint64_t n, double conf, double *lo, double *hi);

#endif
