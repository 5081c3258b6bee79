/*
 * tokmark.h — keyed, token-level watermarking of language-model output.
 *
 * One header, four jobs:
 *
 *   1. Profiles and keys (tokmark_profile, tokmark_keyring).
 *      A profile is one file holding a secret key and every parameter of the
 *      watermark.  Embedder and detector both load it, so their parameters
 *      cannot drift apart.  What may be shown in logs is the public key ID.
 *
 *   2. The embedder (tokmark_embedder): lives inside the sampling loop, one
 *      per sequence.  Created once from a profile; its per-token functions
 *      (apply, sample, accept) cannot fail and never allocate.  The candidate
 *      layout matches llama.cpp's llama_token_data {id, logit, p}.
 *
 *   3. The detector (tokmark_detector): streams token ids with document
 *      boundaries, scores each (context, token) tuple once, and reports
 *      exact p-values per document and over the whole corpus, for every key
 *      of a key ring, corrected for the number of keys tried.
 *
 *   4. Tokenizers (tokmark_tokenizer): text to token ids and back, token for
 *      token as the model's own tokenizer (tiktoken encodings), so that raw
 *      text can be scored.
 *
 * Everything computed here is defined normatively in SPEC.md; this header
 * says how to call it.  Functions that can fail return TOKMARK_OK (0) or a
 * negative tokmark_error; tokmark_error_name() names it.
 *
 * Threads: call tokmark_init() once before anything else (it is idempotent
 * and thread-safe).  A profile or key ring is immutable after loading and may
 * be shared read-only by any number of threads.  An embedder or detector
 * belongs to one thread at a time.
 */
#ifndef TOKMARK_H
#define TOKMARK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TOKMARK_NODISCARD __attribute__((warn_unused_result))
#else
#define TOKMARK_NODISCARD
#endif

/* ------------------------------------------------------------------------ */
/* Version and errors                                                        */
/* ------------------------------------------------------------------------ */

#define TOKMARK_VERSION_STRING "0.1.0"
#define TOKMARK_SPEC_VERSION   "1"
const char *tokmark_version_string(void);
const char *tokmark_spec_version(void);

/* Error codes are pinned: their values never change. */
typedef enum tokmark_error {
    TOKMARK_OK               = 0,
    TOKMARK_ERR_INVALID      = -1,  /* an argument or parameter is out of range */
    TOKMARK_ERR_NOMEM        = -2,  /* allocation failed */
    TOKMARK_ERR_IO           = -3,  /* a file could not be read or written */
    TOKMARK_ERR_FORMAT       = -4,  /* a file is not in the expected format */
    TOKMARK_ERR_PERMISSIONS  = -5,  /* a key file is readable by group or others */
    TOKMARK_ERR_CRYPTO       = -6,  /* libsodium or OpenSSL failed */
    TOKMARK_ERR_UNSUPPORTED  = -7,  /* valid but not supported by this build */
    TOKMARK_ERR_NOT_FOUND    = -8,  /* no such key, account or item */
    TOKMARK_ERR_EXISTS       = -9,  /* refusing to overwrite an existing file */
    TOKMARK_ERR_TOO_SHORT    = -10, /* too few tokens to score */
    TOKMARK_ERR_MISMATCH     = -11  /* data made with other keys or parameters */
} tokmark_error;

/* After TOKMARK_ERR_IO, errno holds the operating system's reason. */

/* A static, never-NULL name such as "TOKMARK_ERR_FORMAT" ("unknown" otherwise). */
const char *tokmark_error_name(int code);
/* A static one-line description of the error in plain words. */
const char *tokmark_error_message(int code);

/* Initialise libsodium and choose the AES backend.  Idempotent.  Returns
 * TOKMARK_OK or TOKMARK_ERR_CRYPTO. */
TOKMARK_NODISCARD int tokmark_init(void);

/* ------------------------------------------------------------------------ */
/* AES backends (SPEC.md §3).  All produce bit-identical values.              */
/* ------------------------------------------------------------------------ */

typedef enum tokmark_backend {
    TOKMARK_BACKEND_AUTO     = 0, /* AES-NI when the CPU has it, else portable */
    TOKMARK_BACKEND_PORTABLE = 1, /* OpenSSL EVP (libcrypto); any machine */
    TOKMARK_BACKEND_AESNI    = 2  /* x86-64 AES-NI instructions */
} tokmark_backend;

/* Select the backend used by profiles loaded, and embedders and detectors
 * created, after this call.  The environment variable TOKMARK_BACKEND
 * (portable|aesni) is read by tokmark_init().  Returns TOKMARK_ERR_UNSUPPORTED
 * when the CPU lacks the instructions.  Not thread-safe: call it at start-up. */
TOKMARK_NODISCARD int tokmark_set_backend(tokmark_backend b);
/* "portable" or "aesni": the backend in force now. */
const char *tokmark_backend_name(void);

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

typedef enum tokmark_scheme {
    TOKMARK_SCHEME_KGW     = 1, /* red/green list, logit bias δ (Kirchenbauer et al.) */
    TOKMARK_SCHEME_GUMBEL  = 2, /* Gumbel-max / exponential race (Aaronson), distortion-free */
    TOKMARK_SCHEME_SYNTHID = 3  /* tournament of m binary layers (Dathathri et al.), distortion-free */
} tokmark_scheme;

typedef enum tokmark_seeding {
    TOKMARK_SEEDING_LEFTHASH = 1, /* context = the h tokens before the candidate */
    TOKMARK_SEEDING_SELFHASH = 2  /* window = h-1 tokens before it plus the candidate itself;
                                     anchored min-hash (SPEC.md §4.2) */
} tokmark_seeding;

#define TOKMARK_MAX_CONTEXT   16    /* largest context width h */
#define TOKMARK_MAX_LAYERS    128   /* largest number of SynthID layers m */
#define TOKMARK_MAX_WEIGHT    1000  /* largest SynthID layer weight */
#define TOKMARK_TOKENIZER_MAX 128   /* tokenizer name: at most 127 bytes */
#define TOKMARK_ACCOUNT_MAX   256   /* account id: at most 255 bytes */
#define TOKMARK_KEY_ID_HEX    32    /* a key ID is 32 lower-case hex digits */

typedef struct tokmark_params {
    tokmark_scheme  scheme;
    tokmark_seeding seeding;
    uint32_t context_width;        /* h: 1..16 (LeftHash), 2..16 (SelfHash) */
    uint32_t vocab_size;           /* V: token ids are 0..V-1; 2..2^31-1 */
    /* KGW */
    uint32_t gamma_threshold;      /* green iff u < gamma_threshold; γ = gamma_threshold / 2^32 */
    double   delta;                /* logit bias added to green tokens; 0 < δ ≤ 100 */
    /* SynthID */
    uint32_t layers;               /* m: 1..128 */
    uint16_t weights[TOKMARK_MAX_LAYERS]; /* layer weights for the weighted-mean score, 1..1000 */
    /* Generation */
    uint32_t mask_repeated;        /* 1: a context already seen in this sequence is sampled
                                      without the watermark (SPEC.md §6.4) */
    /* What the profile is meant for */
    char tokenizer[TOKMARK_TOKENIZER_MAX]; /* e.g. "cl100k_base"; printable ASCII, no spaces */
} tokmark_params;

/* Fill *p with the defaults for a scheme (SPEC.md §2.3): h = 4 LeftHash
 * (KGW, Gumbel) or h = 4 (SynthID), γ = 1/4, δ = 2, m = 30, weights m..1,
 * masking on, V = 100277 and tokenizer "cl100k_base". */
void tokmark_params_default(tokmark_params *p, tokmark_scheme scheme);
/* TOKMARK_OK when every field is in range, TOKMARK_ERR_INVALID otherwise. */
TOKMARK_NODISCARD int tokmark_params_check(const tokmark_params *p);
/* γ as a double (exactly gamma_threshold / 2^32). */
double tokmark_params_gamma(const tokmark_params *p);
/* The threshold for a γ in (0,1): round(γ · 2^32), clamped to 1..2^32-1. */
uint32_t tokmark_gamma_threshold(double gamma);
/* Names: "kgw", "gumbel", "synthid"; "lefthash", "selfhash". Parse returns
 * 0 when the name is unknown. */
const char *tokmark_scheme_name(tokmark_scheme s);
const char *tokmark_seeding_name(tokmark_seeding s);
tokmark_scheme  tokmark_scheme_parse(const char *name);
tokmark_seeding tokmark_seeding_parse(const char *name);

/* ------------------------------------------------------------------------ */
/* Profiles (SPEC.md §2)                                                     */
/* ------------------------------------------------------------------------ */

typedef struct tokmark_profile tokmark_profile;

#define TOKMARK_MASTER_KEY_BYTES 32

/* Flags for loading. */
#define TOKMARK_LOAD_FORCE 1u /* accept a key file readable by group or others */

/* A new profile with a fresh random master key (libsodium randombytes). */
TOKMARK_NODISCARD int tokmark_profile_generate(tokmark_profile **out, const tokmark_params *params);
/* A profile from a given master key (for tests, vectors and key escrow). */
TOKMARK_NODISCARD int tokmark_profile_from_key(tokmark_profile **out, const tokmark_params *params,
                                               const uint8_t master_key[TOKMARK_MASTER_KEY_BYTES]);
/* The sub-profile of one account or tenant: same parameters, key derived from
 * the master key and the account id (SPEC.md §2.5).  1 ≤ account_len ≤ 255
 * bytes.  An account sub-profile cannot derive further (TOKMARK_ERR_INVALID).
 * Parameters are stored in canonical form: fields the scheme does not use
 * hold their defaults, weights beyond m are 0. */
TOKMARK_NODISCARD int tokmark_profile_derive_account(tokmark_profile **out, const tokmark_profile *master,
                                                     const char *account, size_t account_len);
void tokmark_profile_free(tokmark_profile *p); /* NULL is a no-op; secrets are wiped */

/* Write a profile to a new file created with mode 0600.  Refuses to replace
 * an existing file (TOKMARK_ERR_EXISTS) unless overwrite is non-zero; the file
 * is written to a temporary name and renamed, so no half-written key is left. */
TOKMARK_NODISCARD int tokmark_profile_save(const tokmark_profile *p, const char *path, int overwrite);
/* Load the first profile of a file.  On TOKMARK_ERR_FORMAT, *errline (if not
 * NULL) receives the 1-based line number at fault. */
TOKMARK_NODISCARD int tokmark_profile_load(tokmark_profile **out, const char *path, unsigned flags,
                                           size_t *errline);

/* Read-only views. */
const tokmark_params *tokmark_profile_params(const tokmark_profile *p);
/* The public key ID: 32 hex digits + NUL. Commits to the key and parameters,
 * reveals nothing about the key (SPEC.md §2.4). */
const char *tokmark_profile_key_id(const tokmark_profile *p);
/* The account id a derived profile belongs to (NUL-terminated; it may itself
 * contain NUL bytes, so use the length), or NULL for a master profile. */
const char *tokmark_profile_account(const tokmark_profile *p);
size_t tokmark_profile_account_len(const tokmark_profile *p); /* 0 for a master profile */
/* Write the public description (parameters and key ID, never the key) as
 * "name value" lines into buf; returns the length it needs (like snprintf). */
size_t tokmark_profile_describe(const tokmark_profile *p, char *buf, size_t size);
/* A commitment to the profile's master key (SPEC.md §2.8): BLAKE2b-256 of
 * "tokmark key commitment v1\n" ‖ opening ‖ master key ‖ key ID.  The
 * commitment can be published (audit reports); revealing the opening and the
 * key later proves which key it was.  `opening` must be 32 fresh random
 * bytes, kept secret until then.  TOKMARK_OK or TOKMARK_ERR_INVALID/_CRYPTO. */
#define TOKMARK_COMMITMENT_BYTES 32
TOKMARK_NODISCARD int tokmark_profile_commitment(const tokmark_profile *p,
                                                 const uint8_t opening[TOKMARK_COMMITMENT_BYTES],
                                                 uint8_t out[TOKMARK_COMMITMENT_BYTES]);

/* ------------------------------------------------------------------------ */
/* Key rings: several profiles tested together (rotation, accounts)          */
/* ------------------------------------------------------------------------ */

typedef struct tokmark_keyring tokmark_keyring;

TOKMARK_NODISCARD int tokmark_keyring_new(tokmark_keyring **out);
void tokmark_keyring_free(tokmark_keyring *r); /* frees the profiles it owns */
/* Add a profile; the ring takes ownership (also on failure). */
TOKMARK_NODISCARD int tokmark_keyring_add(tokmark_keyring *r, tokmark_profile *p);
/* Add every profile found in a file (a file may hold several). */
TOKMARK_NODISCARD int tokmark_keyring_load(tokmark_keyring *r, const char *path, unsigned flags,
                                           size_t *errline);
size_t tokmark_keyring_size(const tokmark_keyring *r);
const tokmark_profile *tokmark_keyring_get(const tokmark_keyring *r, size_t i);
/* Save every profile of the ring into one 0600 file. */
TOKMARK_NODISCARD int tokmark_keyring_save(const tokmark_keyring *r, const char *path, int overwrite);

/* ------------------------------------------------------------------------ */
/* Inspection: the PRF values themselves (SPEC.md §3–§5), for vectors,        */
/* tests and second implementations.  O(1) each; not the fast paths.          */
/* ------------------------------------------------------------------------ */

/* The nonce of a context.  `prev` holds the tokens before the candidate, oldest
 * first: h of them (LeftHash) or h-1 (SelfHash, where `token` is the candidate
 * and part of the window).  For LeftHash `token` is ignored. */
uint64_t tokmark_nonce(const tokmark_profile *p, const int32_t *prev, int32_t token);
/* Block `index` of the value stream of nonce N: AES-128(k_val, LE64(N) || BE64(index)). */
void tokmark_value_block(const tokmark_profile *p, uint64_t nonce, uint64_t index, uint8_t out[16]);
/* The 32-bit value u of candidate `token` in context `prev` (KGW, Gumbel). */
uint32_t tokmark_value_u32(const tokmark_profile *p, const int32_t *prev, int32_t token);
/* The m SynthID g-values of `token` in context `prev`, one per byte (0 or 1). */
void tokmark_gvalues(const tokmark_profile *p, const int32_t *prev, int32_t token, uint8_t *g);
/* 1 iff `token` is green in context `prev` (KGW). */
int tokmark_is_green(const tokmark_profile *p, const int32_t *prev, int32_t token);
/* The Gumbel score term of a value: -ln(1 - u/2^32) = 32 ln 2 - ln(2^32 - u). */
double tokmark_gumbel_term(uint32_t u);

/* ------------------------------------------------------------------------ */
/* Embedder (SPEC.md §6)                                                      */
/* ------------------------------------------------------------------------ */

/* Same layout as llama.cpp's llama_token_data. */
typedef struct tokmark_token_data {
    int32_t id;
    float   logit;
    float   p;
} tokmark_token_data;

typedef struct tokmark_embedder tokmark_embedder;

typedef struct tokmark_embedder_config {
    uint32_t max_candidates;   /* candidates considered per step; default 1024.  Entries of
                                  a longer array beyond the first max_candidates are excluded
                                  (logit set to -INFINITY, p to 0). */
    uint32_t history_capacity; /* contexts remembered for repeated-context masking; default
                                  65536.  Once full, further contexts are not remembered. */
} tokmark_embedder_config;

/* All validation happens here.  cfg may be NULL for the defaults.  The
 * profile must outlive the embedder. */
TOKMARK_NODISCARD int tokmark_embedder_create(tokmark_embedder **out, const tokmark_profile *p,
                                              const tokmark_embedder_config *cfg);
/* A deep copy (same history); allocates, so not for the per-token path. */
TOKMARK_NODISCARD int tokmark_embedder_clone(tokmark_embedder **out, const tokmark_embedder *e);
void tokmark_embedder_free(tokmark_embedder *e); /* NULL is a no-op */
/* Forget the history: ready for a new sequence. */
void tokmark_embedder_reset(tokmark_embedder *e);

/* Push prompt tokens: they become context but are not generated, so they are
 * not remembered for masking.  Call before the first generated token. */
void tokmark_embedder_prompt(tokmark_embedder *e, const int32_t *ids, size_t n);
/* Push the token that was chosen (whoever chose it). */
void tokmark_embedder_accept(tokmark_embedder *e, int32_t token);

/* 1 when the next token will be watermarked: the history holds a full
 * context, and (with masking) that context was not seen before. */
int tokmark_embedder_active(const tokmark_embedder *e);

/* Sampler-chain step on a candidate array (any order; ids in 0..V-1; a
 * logit of -INFINITY means excluded).  Rewrites the candidates so that a
 * plain softmax sampler downstream draws from the watermarked distribution:
 *   KGW:     logit += δ for green candidates;
 *   Gumbel:  the chosen candidate keeps its logit, all others get -INFINITY;
 *   SynthID: logit = ln p_m, the tournament distribution (§5.3).
 * p is set to the softmax of the new logits.  Inactive: softmax only. */
void tokmark_embedder_apply(tokmark_embedder *e, tokmark_token_data *cand, size_t n);
/* Choose the next token from candidates with the caller's uniform u in
 * [0,1): watermarked choice when active, plain softmax sampling otherwise.
 * Gumbel uses u only when inactive.  Does not call accept(). */
int32_t tokmark_embedder_sample(tokmark_embedder *e, tokmark_token_data *cand, size_t n, double u);
/* Full-vocabulary forms: logits has V entries (V from the profile).
 * apply_logits: KGW adds δ to green entries; Gumbel sets every entry but the
 * chosen one to -INFINITY; SynthID replaces entries with ln p_m.
 * sample_logits returns the chosen token and leaves logits unchanged. */
void tokmark_embedder_apply_logits(tokmark_embedder *e, float *logits);
int32_t tokmark_embedder_sample_logits(tokmark_embedder *e, const float *logits, double u);

/* ------------------------------------------------------------------------ */
/* Detector (SPEC.md §7, statistics §8)                                       */
/* ------------------------------------------------------------------------ */

typedef struct tokmark_detector tokmark_detector;

typedef struct tokmark_detector_config {
    uint64_t dedup_memory;  /* bytes for the corpus-wide tuple sets, shared by one set per
                               LeftHash context width and one per SelfHash key (SPEC §7.2);
                               default 256 MiB.  When full, new tuples are dropped and
                               counted.  0 turns dedup off (every tuple is scored; not
                               valid on real text, for comparison only). */
    uint32_t doc_dedup_tuples; /* largest per-document set (per set as above); default 1<<20 */
    uint32_t flags;         /* TOKMARK_DETECT_* below */
} tokmark_detector_config;

/* Keep the corpus log: every tuple new in the corpus with its score under
 * each key (16 bytes + 8 per key, on top of dedup_memory), so that the
 * corpus state can be exported and merged exactly (SPEC §7.5).  Needs dedup. */
#define TOKMARK_DETECT_RECORD 1u
/* Leave the corpus stage to another detector (threads, SPEC §7.6): per-
 * document dedup, results and traces work as usual, but tuples are not
 * looked up in a corpus set of this detector's own.  Every document-new
 * tuple is kept, with its score under each key and its number of occurrences
 * in the document (12 bytes + 8 per key), until tokmark_detector_absorb hands
 * them to the detector that holds the corpus (or, while it shares that
 * detector's sets, tokmark_detector_share, only its totals).  Its own corpus
 * results are not a test.  Needs dedup; not with TOKMARK_DETECT_RECORD. */
#define TOKMARK_DETECT_DEFER 2u

typedef struct tokmark_result {
    uint64_t tokens;        /* tokens fed (prompt tokens excluded) */
    uint64_t scored;        /* tuples scored (unique) */
    uint64_t duplicates;    /* tuples skipped as seen before */
    uint64_t dropped;       /* tuples skipped because the tuple set was full */
    double   statistic;     /* KGW: green count; Gumbel: Σ -ln(1-r); SynthID: mean g
                               (or weighted mean, see score) */
    double   z;             /* standardised statistic (for display; never used for p) */
    double   log10_p;       /* exact log10 p-value of this key, uncorrected; 0 when
                               nothing was scored */
    double   log10_p_corrected; /* corrected for the number of keys tested (Šidák) */
    size_t   key_index;     /* the key this result belongs to (best key for summaries) */
    char     key_id[TOKMARK_KEY_ID_HEX + 1];
} tokmark_result;

typedef enum tokmark_score_kind {
    TOKMARK_SCORE_DEFAULT  = 0, /* KGW: green count; Gumbel: sum; SynthID: mean */
    TOKMARK_SCORE_WEIGHTED = 1  /* SynthID weighted mean (others: same as default) */
} tokmark_score_kind;

/* The detector scores with every key of the ring (which must outlive it). */
TOKMARK_NODISCARD int tokmark_detector_create(tokmark_detector **out, const tokmark_keyring *ring,
                                              const tokmark_detector_config *cfg);
void tokmark_detector_free(tokmark_detector *d); /* NULL is a no-op */
/* Clear everything, corpus totals included. */
void tokmark_detector_reset(tokmark_detector *d);
/* Choose the score used for p-values (default TOKMARK_SCORE_DEFAULT). */
void tokmark_detector_set_score(tokmark_detector *d, tokmark_score_kind kind);
/* Size the corpus tuple sets at once for about `tuples` distinct tuples
 * (within dedup_memory), instead of letting them double as they fill: a
 * caller that knows its input size saves the rehashing (and, for large sets,
 * the zeroing of each intermediate table).  Results do not change.  Returns
 * TOKMARK_OK, or TOKMARK_ERR_NOMEM with the sets as they were (still usable). */
TOKMARK_NODISCARD int tokmark_detector_reserve(tokmark_detector *d, uint64_t tuples);

/* Start a document: history and per-document totals are cleared; the corpus
 * tuple set and totals are kept. */
void tokmark_detector_begin(tokmark_detector *d);
/* Prompt tokens: they become context and are never scored. */
void tokmark_detector_prompt(tokmark_detector *d, const int32_t *ids, size_t n);
/* Tokens to score.  May be called many times per document.  Ids outside
 * 0..V-1 of a key are counted as tokens but give no tuple for that key. */
void tokmark_detector_feed(tokmark_detector *d, const int32_t *ids, size_t n);

/* Results.  `key` indexes the ring; the "best" forms pick the key with the
 * smallest p-value and fill log10_p_corrected for the ring's size. */
void tokmark_detector_document(const tokmark_detector *d, size_t key, tokmark_result *out);
void tokmark_detector_document_best(const tokmark_detector *d, tokmark_result *out);
void tokmark_detector_corpus(const tokmark_detector *d, size_t key, tokmark_result *out);
void tokmark_detector_corpus_best(const tokmark_detector *d, tokmark_result *out);

/* Per-position scores of one key (SPEC §7.4), for windowed detection.  After
 * this call, every token pushed into a document (prompt tokens included) at
 * position i < cap (0-based within the document) sets buf[i]: scored = 1 when
 * the tuple ending at that token was scored for this key in this document
 * (first occurrence in the document), and value = its score (KGW: 1 green,
 * 0 red; Gumbel: -ln(1-r); SynthID: Σ g, or Σ w·g with the weighted score).
 * Positions of unscored tokens get {0, 0}.  buf must hold the whole document
 * (positions ≥ cap are not recorded) and outlive its use; NULL turns the
 * trace off.  Never allocates. */
typedef struct tokmark_trace {
    double  value;
    uint8_t scored;
} tokmark_trace;
void tokmark_detector_set_trace(tokmark_detector *d, size_t key, tokmark_trace *buf, size_t cap);

/* Partial results (SPEC §7.5): the corpus state — totals and every tuple
 * new in the corpus with its scores — as a self-checking byte string, so that
 * detectors that ran over different parts of a corpus can be combined into
 * exactly the result one detector over all of it gives, dedup included.
 * export needs TOKMARK_DETECT_RECORD; *out is malloc'd (free() it).
 * TOKMARK_ERR_NOMEM also when the corpus log could not grow earlier.
 * import adds a partial to d's corpus state (the union of tuple sets): the
 * partial must come from a detector over the same key ring in the same order
 * (TOKMARK_ERR_MISMATCH otherwise) and be intact (TOKMARK_ERR_FORMAT: bad
 * magic, checksum, or totals that are not the sums of its tuples); d is
 * unchanged on error.  Per-document state is not part of a partial. */
TOKMARK_NODISCARD int tokmark_detector_export(const tokmark_detector *d, uint8_t **out, size_t *len);
TOKMARK_NODISCARD int tokmark_detector_import(tokmark_detector *d, const uint8_t *buf, size_t len);

/* Apply the tuples kept by src (made with TOKMARK_DETECT_DEFER) to d's corpus
 * set and totals, then forget them: d ends exactly as if src's documents had
 * been fed to d after d's own, duplicates and drops included, even when d's
 * set fills up (so threads can each run a deferring detector over whole
 * documents and one detector absorb them in input order).  Call between
 * documents of src.  The two must be over the same key ring in the same
 * order (TOKMARK_ERR_MISMATCH); TOKMARK_ERR_INVALID when src does not defer
 * or d does, or d has no dedup; TOKMARK_ERR_NOMEM when src's list could not
 * grow earlier (both unchanged). */
TOKMARK_NODISCARD int tokmark_detector_absorb(tokmark_detector *d, tokmark_detector *src);
/* Sharing (threads, SPEC §7.6): until called again with NULL, the deferring
 * detector src inserts its document-new tuples straight into parent's corpus
 * sets (atomically; several detectors may share one parent at once) and
 * keeps only totals, which tokmark_detector_absorb(parent, src) adds to
 * parent's.  While any detector shares parent, parent must not be fed, reset
 * or absorb tuples kept without sharing, and all sharing detectors together
 * may insert at most tokmark_detector_room(parent) new tuples: the sets then
 * never grow or fill up, and the result is exactly that of one detector.
 * Call between documents of src.  TOKMARK_ERR_INVALID as for absorb, or when
 * parent keeps a record (TOKMARK_DETECT_RECORD); TOKMARK_ERR_MISMATCH for
 * another ring. */
TOKMARK_NODISCARD int tokmark_detector_share(tokmark_detector *src, tokmark_detector *parent);
/* How many more distinct tuples every corpus set of d can take without
 * growing or filling up (0 without dedup, and for a deferring detector). */
uint64_t tokmark_detector_room(const tokmark_detector *d);

/* ------------------------------------------------------------------------ */
/* Statistics (SPEC.md §8): exact upper tails, natural logarithms.            */
/* Each returns ln P(X ≥ x) under the null; never floored.  0 means p = 1 (or */
/* 1 − p below the smallest double); -INFINITY means P = 0 (x above the       */
/* support).  Invalid input (a NaN argument, m > TOKMARK_MAX_LAYERS, NULL     */
/* weights with m > 0) gives NaN.                                             */
/* ------------------------------------------------------------------------ */

/* X ~ Binomial(n, p). */
double tokmark_ln_sf_binomial(uint64_t k, uint64_t n, double p);
/* X ~ Gamma(n, 1), the sum of n independent Exp(1). */
double tokmark_ln_sf_gamma(double x, uint64_t n);
/* X = Σ_l w_l B_l with B_l ~ Binomial(n, 1/2) independent: the SynthID weighted
 * score of n tuples, in units of the weights (an integer s).  Exact (Fourier
 * inversion or convolution) except for large smooth cases, where a lattice
 * saddlepoint is used (relative error of ln p ≤ 1e-8; SPEC §8.4).  May
 * allocate temporarily; on allocation failure it uses the saddlepoint. */
double tokmark_ln_sf_weighted(uint64_t s, uint64_t n, const uint16_t *w, size_t m);
/* Šidák: ln(1 - (1 - p)^k) from ln p (k = 0 is treated as 1); exact for k
 * keys, whose PRF bits are independent (SPEC §8.6). */
double tokmark_ln_sidak(double ln_p, uint64_t k);

/* ------------------------------------------------------------------------ */
/* Compatibility profiles (SPEC.md §10): detect the watermarks of other       */
/* implementations bit-exactly — Hugging Face transformers' KGW and SynthID,  */
/* lm-watermarking's KGW, synthid-text's hash mode — with exact p-values.     */
/* Only text generated with torch's CPU generator (MT19937) is covered.       */
/* These schemes are supported for interoperability; they are not tokmark's  */
/* recommended schemes (small integer keys, no cryptographic PRF).            */
/* ------------------------------------------------------------------------ */

typedef enum tokmark_compat_kind {
    TOKMARK_COMPAT_HF_KGW     = 1, /* transformers WatermarkLogitsProcessor / WatermarkDetector */
    TOKMARK_COMPAT_LMW_KGW    = 2, /* lm-watermarking (jwkirchenbauer) WatermarkDetector */
    TOKMARK_COMPAT_HF_SYNTHID = 3, /* transformers SynthID-Text / synthid-text v0.2 (sampling table) */
    TOKMARK_COMPAT_SYNTHID    = 4  /* synthid-text HEAD: SHA-256 initial value, hash mode, no table */
} tokmark_compat_kind;

#define TOKMARK_COMPAT_MAX_DEPTH   TOKMARK_MAX_LAYERS /* SynthID keys per profile */
#define TOKMARK_COMPAT_MAX_NGRAM   64                 /* largest SynthID n-gram length */
#define TOKMARK_COMPAT_MAX_HISTORY 65536              /* largest SynthID context history C */
#define TOKMARK_COMPAT_MAX_TABLE   (1u << 24)         /* largest SynthID sampling table S */
#define TOKMARK_COMPAT_MAX_VOCAB   214748364u         /* largest KGW vocabulary (2^32 / 20) */

/* A compatibility configuration: the reference's own parameters.  Fields a
 * kind does not use must be 0 (tokmark_compat_config_default fills them). */
typedef struct tokmark_compat_config {
    tokmark_compat_kind kind;
    /* KGW (HF_KGW, LMW_KGW) */
    uint32_t vocab_size;        /* V: randperm(V) is the permutation; 2..TOKMARK_COMPAT_MAX_VOCAB */
    int64_t  bos_token_id;      /* a leading token with this id is dropped; -1: none */
    tokmark_seeding seeding;    /* HF: lefthash | selfhash.  LMW: lefthash = additive_prf,
                                   selfhash = anchored_minhash_prf */
    uint32_t context_width;     /* HF context_width w / LMW h: 1..TOKMARK_MAX_CONTEXT */
    uint32_t self_salt;         /* LMW only: 1 = the window ends with the scored token.  HF:
                                   implied by the seeding (selfhash), must be 0 */
    double   greenlist_ratio;   /* HF greenlist_ratio r / LMW gamma: 0 < r < 1 */
    uint64_t hashing_key;       /* HF hashing_key / LMW hash key: 0..2^63-1 (secret) */
    /* SynthID (HF_SYNTHID, SYNTHID) */
    uint32_t ngram_len;         /* n: 1..TOKMARK_COMPAT_MAX_NGRAM */
    uint32_t depth;             /* D = number of keys: 1..TOKMARK_COMPAT_MAX_DEPTH */
    int64_t  keys[TOKMARK_COMPAT_MAX_DEPTH]; /* the watermarking keys (secret); keys[D..] = 0 */
    uint32_t context_history_size; /* C: 1..TOKMARK_COMPAT_MAX_HISTORY */
    int64_t  eos_token_id;      /* EOS id for the EOS mask; -1: none */
    uint32_t sampling_table_size; /* HF_SYNTHID: S, 2..TOKMARK_COMPAT_MAX_TABLE */
    uint64_t sampling_table_seed; /* HF_SYNTHID: the seed given to torch's manual_seed */
} tokmark_compat_config;

typedef struct tokmark_compat tokmark_compat;

/* The reference defaults of a kind: HF KGW lefthash, w = 1, r = 0.25, key
 * 15485863, V = 32000, BOS none; LMW lefthash (additive_prf, h = 1); SynthID
 * n = 5, C = 1024, EOS none, no keys (depth 0: set them), S = 65536, seed 0. */
void tokmark_compat_config_default(tokmark_compat_config *cfg, tokmark_compat_kind kind);
/* TOKMARK_OK when every field is in range for the kind, TOKMARK_ERR_INVALID otherwise. */
TOKMARK_NODISCARD int tokmark_compat_config_check(const tokmark_compat_config *cfg);
/* "hf-kgw", "lmw-kgw", "hf-synthid", "synthid"; parse returns 0 when unknown. */
const char *tokmark_compat_kind_name(tokmark_compat_kind k);
tokmark_compat_kind tokmark_compat_kind_parse(const char *name);

/* Build a compatibility profile: checks the configuration and precomputes the
 * tables (a self-hash table of 1000003 entries for selfhash, the sampling
 * table); takes up to 10 ms and 4 MiB.  TOKMARK_ERR_INVALID, _NOMEM. */
TOKMARK_NODISCARD int tokmark_compat_create(tokmark_compat **out, const tokmark_compat_config *cfg);
void tokmark_compat_free(tokmark_compat *c); /* NULL is a no-op; the keys are wiped */
/* The configuration (it holds the secret keys: never print it whole). */
const tokmark_compat_config *tokmark_compat_get_config(const tokmark_compat *c);
/* Public identifier: 32 hex digits + NUL, a hash of the whole configuration
 * (SPEC.md §10.6).  The reference keys are small integers, so unlike a
 * tokmark key ID it does NOT hide the key from a brute-force search. */
const char *tokmark_compat_key_id(const tokmark_compat *c);
/* "name value" lines (key ID and parameters, never the keys) into buf;
 * returns the length it needs (like snprintf). */
size_t tokmark_compat_describe(const tokmark_compat *c, char *buf, size_t size);
/* Save to a new file created 0600 (written to a temporary name and renamed),
 * first line "tokmark-compat-profile 1"; TOKMARK_ERR_EXISTS unless overwrite. */
TOKMARK_NODISCARD int tokmark_compat_save(const tokmark_compat *c, const char *path, int overwrite);
/* Load a compat profile file; strict like tokmark_profile_load (flags:
 * TOKMARK_LOAD_FORCE).  On TOKMARK_ERR_FORMAT, *errline (if not NULL) is the
 * 1-based line at fault.  A tokmark profile file gives TOKMARK_ERR_UNSUPPORTED
 * (and tokmark_profile_load gives TOKMARK_ERR_UNSUPPORTED for a compat file). */
TOKMARK_NODISCARD int tokmark_compat_load(tokmark_compat **out, const char *path, unsigned flags,
                                          size_t *errline);

/* Per-position outputs of tokmark_compat_score.  Every pointer may be NULL;
 * each non-NULL buffer must hold `n` entries (n = the number of ids given;
 * g: n·D), of which the first `positions` are written. */
typedef struct tokmark_compat_outputs {
    uint8_t  *green;      /* KGW: 1 iff the scored token of position j is green */
    uint8_t  *first;      /* KGW: 1 iff position j's n-gram did not occur earlier */
    uint64_t *seeds;      /* KGW: the value given to manual_seed before randperm(V) */
    float    *z_at_t;     /* LMW: z_score_at_T, float32 as the reference (SPEC §10.3) */
    uint8_t  *g;          /* SynthID: g[j·D + d], the g-value of position j at depth d */
    uint8_t  *repetition_mask; /* SynthID: 1 = context new within the last C (counted) */
    uint8_t  *eos_mask;   /* SynthID: 0 from the n-gram that ends on the first EOS on */
} tokmark_compat_outputs;

/* What the reference detector reports, plus tokmark's exact p-values. */
typedef struct tokmark_compat_score {
    int      bos_stripped;   /* KGW: ids[0] was the BOS and was dropped */
    size_t   first_index;    /* index in ids of the scored (last) token of position 0 */
    size_t   positions;      /* P: number of n-grams */
    uint64_t scored;         /* KGW: num_tokens_scored T; SynthID: num_unmasked U */
    uint64_t hits;           /* KGW: num_green_tokens G; SynthID: Σ g over unmasked positions */
    uint64_t trials;         /* Bernoulli trials of the exact test: KGW T; SynthID D·U */
    double   null_p;         /* P(hit) under no watermark: KGW int(V·r)/V; SynthID HEAD 1/2,
                                table mode ones/S */
    double   z;              /* KGW: the reference's z_score, bit-exact; SynthID: the
                                binomial z of hits (tokmark's, for display) */
    double   p_reference;    /* HF KGW: transformers' approximate p_value; NaN otherwise */
    double   mean;           /* SynthID mean_score (bit-exact); KGW: green_fraction G/T */
    double   weighted_mean;  /* SynthID weighted_mean_score; NaN for KGW */
    double   log10_p;        /* exact log10 P(X ≥ hits), X ~ Binomial(trials, null_p) */
    double   log10_p_weighted; /* SynthID: exact log10 p of the weighted score (integer
                                weights, g ~ Bernoulli(1/2) only); NaN when not available */
} tokmark_compat_score;

/* Score one sequence exactly as the reference detector does (SPEC §10).
 * KGW: a leading BOS is dropped; TOKMARK_ERR_TOO_SHORT when fewer than
 * w + 1 tokens remain (the reference's ValueError).  ignore_repeated:
 * HF KGW — transformers' flag has no effect (its Counter keys tensors by
 * identity), so it is accepted and ignored, and T = P; LMW — each distinct
 * n-gram is scored once.  SynthID ignores it (masking is by context history)
 * and needs n ≥ 1 tokens per position (TOKMARK_ERR_TOO_SHORT when n > len).
 * Allocates scratch memory (TOKMARK_ERR_NOMEM); O(int(V·r)) per KGW
 * position.  Reentrant: the profile is only read. */
TOKMARK_NODISCARD int tokmark_compat_score_ids(const tokmark_compat *c, const int32_t *ids, size_t n,
                                               int ignore_repeated, tokmark_compat_outputs *out,
                                               tokmark_compat_score *score);

/* 1 iff `token` is in the greenlist of seed `seed` (KGW): among the first
 * int(V·r) entries of randperm(V) after manual_seed(seed); O(int(V·r)), no
 * memory.  And the seed of a KGW window: `window` holds the w (HF) / h (LMW)
 * tokens of the prefix, oldest first (for self-salted schemes its last entry
 * is the scored token). */
int tokmark_compat_is_green(const tokmark_compat *c, uint64_t seed, int64_t token);
uint64_t tokmark_compat_seed(const tokmark_compat *c, const int32_t *window);

/* A streaming detector for `tokmark scan`: documents of token ids, each
 * distinct scoring unit counted once per document and once per corpus
 * (KGW: the pair (seed mod 2^32, token); SynthID: the 64-bit n-gram hash;
 * SPEC §10.5), exact p-values.  The profile must outlive it. */
typedef struct tokmark_compat_detector tokmark_compat_detector;

/* dedup_capacity: units remembered for the corpus (0: 1<<20); the per-document
 * set holds as many.  Units beyond it are dropped (not scored) and counted.
 * All memory is allocated here: about 40 bytes per unit of capacity, plus
 * for LeftHash-type KGW a greenlist cache of 256·V/8 bytes and 8·V bytes.
 * TOKMARK_ERR_INVALID (capacity above 2^40), TOKMARK_ERR_NOMEM. */
TOKMARK_NODISCARD int tokmark_compat_detector_create(tokmark_compat_detector **out, const tokmark_compat *c,
                                                     uint64_t dedup_capacity);
void tokmark_compat_detector_free(tokmark_compat_detector *d); /* NULL is a no-op */
/* Clear everything, corpus totals included. */
void tokmark_compat_detector_reset(tokmark_compat_detector *d);
/* Start a document: its history, masks and totals are cleared. */
void tokmark_compat_detector_begin(tokmark_compat_detector *d);
/* Tokens of the current document; may be called many times per document.
 * KGW: a first token equal to the BOS id is dropped; SynthID: nothing from
 * the first EOS on is scored.  Never allocates. */
void tokmark_compat_detector_feed(tokmark_compat_detector *d, const int32_t *ids, size_t n);
/* Results (tokmark_result, SPEC §7.3): statistic = green count (KGW) or mean
 * g (SynthID); z as tokmark_compat_score's; log10_p exact; one key, so
 * log10_p_corrected = log10_p; duplicates include SynthID positions masked
 * as repeated contexts. */
void tokmark_compat_detector_document(const tokmark_compat_detector *d, tokmark_result *out);
void tokmark_compat_detector_corpus(const tokmark_compat_detector *d, tokmark_result *out);

/* ------------------------------------------------------------------------ */
/* Tokenizers (SPEC.md §9): tiktoken encodings, token-exact                  */
/* ------------------------------------------------------------------------ */

/* A tokenizer is loaded once and is then immutable: any number of threads
 * may share one read-only.  Encoding needs scratch memory (the regex match
 * state and BPE arrays); it lives in an encoder, created once per thread
 * and reused.  tokmark_tokenizer_encode() is the same without one: it makes
 * and frees a temporary encoder on every call (a few allocations).
 *
 * Built-in encodings: "cl100k_base", "o200k_base", "p50k_base", "r50k_base"
 * (the split pattern and special tokens of each are in SPEC.md §9.2).  Their
 * rank files NAME.tiktoken are looked for in $TOKMARK_DATA_DIR, then the
 * build tree's data/tokenizers/, then PREFIX/share/tokmark/tokenizers/
 * (scripts/fetch-tokenizers.sh puts them in data/tokenizers/). */

typedef struct tokmark_tokenizer tokmark_tokenizer;
typedef struct tokmark_tokenizer_encoder tokmark_tokenizer_encoder;

/* Load a tokenizer.  name_or_path is either a built-in name (no '/' and no
 * '.'), whose rank file must be the official one (checked by SHA-256,
 * TOKMARK_ERR_FORMAT with *errline 0 otherwise), or the path of a rank file:
 * the official file of an encoding (recognised by its SHA-256) or a file
 * whose name starts with the encoding's name ("x/cl100k_base.tiktoken").
 * Errors: TOKMARK_ERR_NOT_FOUND (unknown name), TOKMARK_ERR_IO (errno set;
 * ENOENT when a built-in name's file is not installed), TOKMARK_ERR_FORMAT
 * (*errline, if not NULL, receives the 1-based line at fault: bad base64,
 * bad or duplicate rank, duplicate token; 0 for faults of the whole file),
 * TOKMARK_ERR_UNSUPPORTED (a path whose encoding cannot be told).
 * A path ending in ".json" is a Hugging Face tokenizer.json (SPEC.md §9.8):
 * byte-level BPE (GPT-2, Llama 3, Qwen2 style) or, SPEC.md §9.9,
 * SentencePiece-style BPE (Llama 2, Mistral 7B: Prepend/Replace normalizer or
 * Metaspace, byte fallback, unk_token), with the normalizers of SPEC.md §9.10
 * (NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, Replace) and added tokens
 * with all their flags, named after the file name up to its
 * first dot; TOKMARK_ERR_FORMAT for bad JSON (*errline: its line) or
 * an inconsistent model, TOKMARK_ERR_UNSUPPORTED for a normalizer,
 * pre-tokenizer, model or decoder outside that subset. */
TOKMARK_NODISCARD int tokmark_tokenizer_load(tokmark_tokenizer **out, const char *name_or_path,
                                             size_t *errline);
/* Load any rank file at `path` with the split pattern and special tokens of
 * the built-in encoding `encoding` (no hash check). */
TOKMARK_NODISCARD int tokmark_tokenizer_load_tiktoken(tokmark_tokenizer **out, const char *path,
                                                      const char *encoding, size_t *errline);
void tokmark_tokenizer_free(tokmark_tokenizer *t); /* NULL is a no-op */
/* The path of a built-in encoding's rank file into buf: TOKMARK_OK,
 * TOKMARK_ERR_NOT_FOUND (unknown name) or TOKMARK_ERR_IO (not installed). */
TOKMARK_NODISCARD int tokmark_tokenizer_find(const char *name, char *buf, size_t size);
/* The directories searched, as a static "A:B:C" string (for messages). */
const char *tokmark_tokenizer_data_dirs(void);

/* The encoding's name ("cl100k_base"); static, owned by the library. */
const char *tokmark_tokenizer_name(const tokmark_tokenizer *t);
/* Ids are 0..vocab_size-1 (tiktoken's n_vocab: 100277 for cl100k_base). */
uint32_t tokmark_tokenizer_vocab_size(const tokmark_tokenizer *t);
/* The bytes of token `id` (special tokens: their text), valid while the
 * tokenizer lives; NULL (and *len 0) when no token has this id. */
const uint8_t *tokmark_tokenizer_token_bytes(const tokmark_tokenizer *t, int32_t id, size_t *len);

/* Flags for encoding. */
#define TOKMARK_ENCODE_ALLOW_SPECIAL   1u /* text spelling a special token ("<|endoftext|>")
                                             becomes that token, as tiktoken's
                                             encode(text, allowed_special="all"); without
                                             it such text is ordinary text, as
                                             encode_ordinary() */
#define TOKMARK_ENCODE_REPLACE_INVALID 2u /* ill-formed UTF-8 is replaced by U+FFFD, one per
                                             maximal ill-formed subpart (what TextDecoder
                                             does before tiktoken sees the text); without
                                             it ill-formed UTF-8 is an error */

/* An encoder: scratch for one thread; the tokenizer must outlive it. */
TOKMARK_NODISCARD int tokmark_tokenizer_encoder_create(tokmark_tokenizer_encoder **out,
                                                       const tokmark_tokenizer *t);
void tokmark_tokenizer_encoder_free(tokmark_tokenizer_encoder *e); /* NULL is a no-op */

/* Encode text[0..len) (UTF-8) into ids[0..cap).  Like snprintf, *n_out
 * receives the number of tokens of the whole text, and only the first
 * min(cap, *n_out) are written: *n_out > cap means the buffer was too small
 * (ids NULL with cap 0 just counts).  Returns TOKMARK_OK; TOKMARK_ERR_INVALID
 * for bad arguments or, without TOKMARK_ENCODE_REPLACE_INVALID, for text that
 * is not well-formed UTF-8 — then *n_out is the byte offset where the first
 * ill-formed sequence starts; TOKMARK_ERR_NOMEM.  Texts up to 4 GiB - 2. */
TOKMARK_NODISCARD int tokmark_tokenizer_encoder_encode(tokmark_tokenizer_encoder *e, const char *text,
                                                       size_t len, int32_t *ids, size_t cap,
                                                       size_t *n_out, unsigned flags);
/* The same with a temporary encoder (allocates on every call). */
TOKMARK_NODISCARD int tokmark_tokenizer_encode(const tokmark_tokenizer *t, const char *text, size_t len,
                                               int32_t *ids, size_t cap, size_t *n_out, unsigned flags);

/* Decode ids into the bytes they stand for (not always whole UTF-8
 * characters), written to out[0..cap) with no terminating NUL; *len_out
 * receives the full length (snprintf-like); a tokenizer.json decoder's Strip
 * drops leading bytes of the whole output (SPEC.md §9.9).  TOKMARK_ERR_INVALID when an id
 * is no token: then *len_out is the index of that id. */
TOKMARK_NODISCARD int tokmark_tokenizer_decode(const tokmark_tokenizer *t, const int32_t *ids, size_t n,
                                               char *out, size_t cap, size_t *len_out);

#ifdef __cplusplus
}
#endif
#endif /* TOKMARK_H */
