/* tokmark-vectors — writes the known-answer vectors of testvectors/.
 *
 *   tokmark-vectors DIR
 *
 * Writes DIR/keys.jsonl, DIR/prf.jsonl, DIR/embed.jsonl and DIR/detect.jsonl.
 * Every input is derived from fixed constants and the splitmix64 generator
 * below, so the output is a pure function of the library (SPEC.md).  Uses
 * only the public header.  testvectors/README.md documents the fields. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokmark.h"

/* splitmix64: the generator of every pseudo-random input here. */
static uint64_t sm_state;
static uint64_t sm_next(void) {
    uint64_t z = (sm_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint32_t sm_below(uint32_t n) { return (uint32_t)(sm_next() % n); }
static double sm_unit(void) { return (double)(sm_next() >> 11) * 0x1p-53; }

static void die(const char *what, int rc) {
    fprintf(stderr, "tokmark-vectors: %s: %s\n", what, tokmark_error_name(rc));
    exit(1);
}

static FILE *open_out(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "tokmark-vectors: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return f;
}

static void hex(FILE *f, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) fprintf(f, "%02x", b[i]);
}

static void ids_json(FILE *f, const int32_t *ids, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%" PRId32, i ? "," : "", ids[i]);
    fputc(']', f);
}

/* The master key of vector key number k: byte i = (k * 37 + i * 11) mod 256. */
static void master_key(unsigned k, uint8_t key[TOKMARK_MASTER_KEY_BYTES]) {
    for (unsigned i = 0; i < TOKMARK_MASTER_KEY_BYTES; i++) key[i] = (uint8_t)((k * 37u + i * 11u) & 0xff);
}

typedef struct vprofile {
    const char *name;
    tokmark_scheme scheme;
    tokmark_seeding seeding;
    uint32_t h, V, layers;
    double gamma;
} vprofile;

static const vprofile PROFILES[] = {
    {"kgw-left-h1", TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_LEFTHASH, 1, 50257, 0, 0.25},
    {"kgw-left-h4", TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_LEFTHASH, 4, 100277, 0, 0.25},
    {"kgw-left-h5", TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_LEFTHASH, 5, 100277, 0, 0.5},
    {"kgw-self-h4", TOKMARK_SCHEME_KGW, TOKMARK_SEEDING_SELFHASH, 4, 32000, 0, 0.25},
    {"gumbel-left-h3", TOKMARK_SCHEME_GUMBEL, TOKMARK_SEEDING_LEFTHASH, 3, 128256, 0, 0},
    {"gumbel-self-h2", TOKMARK_SCHEME_GUMBEL, TOKMARK_SEEDING_SELFHASH, 2, 1000, 0, 0},
    {"synthid-left-h4", TOKMARK_SCHEME_SYNTHID, TOKMARK_SEEDING_LEFTHASH, 4, 256000, 30, 0},
    {"synthid-left-h16", TOKMARK_SCHEME_SYNTHID, TOKMARK_SEEDING_LEFTHASH, 16, 1000, 128, 0},
    {"synthid-self-h3", TOKMARK_SCHEME_SYNTHID, TOKMARK_SEEDING_SELFHASH, 3, 1000, 7, 0},
};
#define NPROFILES (sizeof PROFILES / sizeof PROFILES[0])

static tokmark_profile *make_profile(unsigned k, tokmark_params *out_params) {
    const vprofile *v = &PROFILES[k];
    tokmark_params p;
    tokmark_params_default(&p, v->scheme);
    p.seeding = v->seeding;
    p.context_width = v->h;
    p.vocab_size = v->V;
    if (v->scheme == TOKMARK_SCHEME_KGW) p.gamma_threshold = tokmark_gamma_threshold(v->gamma);
    if (v->scheme == TOKMARK_SCHEME_SYNTHID) {
        p.layers = v->layers;
        for (uint32_t l = 0; l < p.layers; l++) p.weights[l] = (uint16_t)(p.layers - l);
    }
    uint8_t key[TOKMARK_MASTER_KEY_BYTES];
    master_key(k, key);
    tokmark_profile *prof = NULL;
    int rc = tokmark_profile_from_key(&prof, &p, key);
    if (rc != TOKMARK_OK) die(v->name, rc);
    if (out_params) *out_params = p;
    return prof;
}

static void profile_header(FILE *f, unsigned k, const tokmark_profile *p) {
    uint8_t key[TOKMARK_MASTER_KEY_BYTES];
    master_key(k, key);
    char desc[4096];
    tokmark_profile_describe(p, desc, sizeof desc);
    fprintf(f, "\"profile\":\"%s\",\"master_key\":\"", PROFILES[k].name);
    hex(f, key, sizeof key);
    fprintf(f, "\",\"key_id\":\"%s\"", tokmark_profile_key_id(p));
}

/* keys.jsonl: key IDs of the vector profiles and of derived accounts. */
static void write_keys(const char *dir) {
    FILE *f = open_out(dir, "keys.jsonl");
    for (unsigned k = 0; k < NPROFILES; k++) {
        tokmark_params p;
        tokmark_profile *prof = make_profile(k, &p);
        fprintf(f, "{\"id\":\"key-%02u\",", k);
        profile_header(f, k, prof);
        fprintf(f, ",\"scheme\":\"%s\",\"seeding\":\"%s\",\"context_width\":%" PRIu32
                   ",\"vocab_size\":%" PRIu32 ",\"tokenizer\":\"%s\",\"mask_repeated\":%" PRIu32,
                tokmark_scheme_name(p.scheme), tokmark_seeding_name(p.seeding), p.context_width,
                p.vocab_size, p.tokenizer, p.mask_repeated);
        if (p.scheme == TOKMARK_SCHEME_KGW) {
            uint64_t bits;
            memcpy(&bits, &p.delta, sizeof bits);
            fprintf(f, ",\"gamma_threshold\":%" PRIu32 ",\"delta_bits\":\"%016" PRIx64 "\"",
                    p.gamma_threshold, bits);
        }
        if (p.scheme == TOKMARK_SCHEME_SYNTHID) {
            fprintf(f, ",\"layers\":%" PRIu32 ",\"weights\":[", p.layers);
            for (uint32_t l = 0; l < p.layers; l++) fprintf(f, "%s%u", l ? "," : "", (unsigned)p.weights[l]);
            fputc(']', f);
        }
        static const char *accounts[] = {"acct-0001", "tenant:example.org", "\xc3\xa9t\xc3\xa9"};
        fputs(",\"accounts\":[", f);
        for (unsigned a = 0; a < 3; a++) {
            tokmark_profile *sub = NULL;
            int rc = tokmark_profile_derive_account(&sub, prof, accounts[a], strlen(accounts[a]));
            if (rc != TOKMARK_OK) die("derive", rc);
            fprintf(f, "%s{\"account_hex\":\"", a ? "," : "");
            hex(f, (const uint8_t *)accounts[a], strlen(accounts[a]));
            fprintf(f, "\",\"key_id\":\"%s\"}", tokmark_profile_key_id(sub));
            tokmark_profile_free(sub);
        }
        fputs("]}\n", f);
        tokmark_profile_free(prof);
    }
    fclose(f);
}

/* prf.jsonl: nonces, value blocks, u-values, green flags, Gumbel terms, g-values. */
static void write_prf(const char *dir) {
    FILE *f = open_out(dir, "prf.jsonl");
    sm_state = 0x70726631; /* "prf1" */
    unsigned n = 0;
    for (unsigned k = 0; k < NPROFILES; k++) {
        tokmark_params p;
        tokmark_profile *prof = make_profile(k, &p);
        uint32_t c = p.seeding == TOKMARK_SEEDING_SELFHASH ? p.context_width - 1 : p.context_width;
        for (unsigned rep = 0; rep < 4; rep++) {
            int32_t prev[TOKMARK_MAX_CONTEXT];
            for (uint32_t i = 0; i < c; i++) prev[i] = (int32_t)sm_below(p.vocab_size);
            if (rep == 1)
                for (uint32_t i = 0; i < c; i++) prev[i] = (int32_t)(p.vocab_size - 1); /* largest id */
            if (rep == 2)
                for (uint32_t i = 0; i < c; i++) prev[i] = 0;
            int32_t cands[6];
            for (int i = 0; i < 6; i++) cands[i] = (int32_t)sm_below(p.vocab_size);
            cands[0] = 0;
            cands[1] = (int32_t)(p.vocab_size - 1);
            fprintf(f, "{\"id\":\"prf-%03u\",", n++);
            profile_header(f, k, prof);
            fputs(",\"prev\":", f);
            ids_json(f, prev, c);
            fputs(",\"tuples\":[", f);
            for (int i = 0; i < 6; i++) {
                int32_t t = cands[i];
                uint64_t N = tokmark_nonce(prof, prev, t);
                uint64_t j = p.scheme == TOKMARK_SCHEME_SYNTHID ? (uint64_t)t : (uint64_t)t >> 2;
                uint8_t blk[16];
                tokmark_value_block(prof, N, j, blk);
                fprintf(f, "%s{\"token\":%" PRId32 ",\"nonce\":\"%016" PRIx64 "\",\"block_index\":%" PRIu64
                           ",\"block\":\"",
                        i ? "," : "", t, N, j);
                hex(f, blk, 16);
                fputc('"', f);
                if (p.scheme == TOKMARK_SCHEME_SYNTHID) {
                    uint8_t g[TOKMARK_MAX_LAYERS];
                    tokmark_gvalues(prof, prev, t, g);
                    fputs(",\"g\":\"", f);
                    for (uint32_t l = 0; l < p.layers; l++) fputc('0' + g[l], f);
                    fputc('"', f);
                } else {
                    uint32_t u = tokmark_value_u32(prof, prev, t);
                    fprintf(f, ",\"u\":%" PRIu32, u);
                    if (p.scheme == TOKMARK_SCHEME_KGW)
                        fprintf(f, ",\"green\":%d", tokmark_is_green(prof, prev, t));
                    else
                        fprintf(f, ",\"gumbel_term\":\"%a\"", tokmark_gumbel_term(u));
                }
                fputc('}', f);
            }
            fputs("]}\n", f);
        }
        tokmark_profile_free(prof);
    }
    fclose(f);
}

/* embed.jsonl: candidate arrays with logits, the caller's u, and the choice. */
static void write_embed(const char *dir) {
    FILE *f = open_out(dir, "embed.jsonl");
    sm_state = 0x656d6231; /* "emb1" */
    unsigned n = 0;
    for (unsigned k = 0; k < NPROFILES; k++) {
        tokmark_params p;
        tokmark_profile *prof = make_profile(k, &p);
        tokmark_embedder *e = NULL;
        int rc = tokmark_embedder_create(&e, prof, NULL);
        if (rc != TOKMARK_OK) die("embedder", rc);
        int32_t prompt[TOKMARK_MAX_CONTEXT];
        uint32_t c = p.seeding == TOKMARK_SEEDING_SELFHASH ? p.context_width - 1 : p.context_width;
        for (uint32_t i = 0; i < c; i++) prompt[i] = (int32_t)sm_below(p.vocab_size);
        tokmark_embedder_prompt(e, prompt, c);
        fprintf(f, "{\"id\":\"embed-%03u\",", n++);
        profile_header(f, k, prof);
        fputs(",\"prompt\":", f);
        ids_json(f, prompt, c);
        fputs(",\"steps\":[", f);
        for (unsigned step = 0; step < 6; step++) {
            enum { K = 8 };
            tokmark_token_data cand[K];
            for (int i = 0; i < K; i++) {
                cand[i].id = (int32_t)sm_below(p.vocab_size);
                /* logits on a 1/16 grid: exactly representable everywhere */
                cand[i].logit = (float)((int)sm_below(96) - 48) / 16.0f;
                cand[i].p = 0;
            }
            double u = sm_unit();
            int active = tokmark_embedder_active(e);
            fprintf(f, "%s{\"candidates\":[", step ? "," : "");
            for (int i = 0; i < K; i++)
                fprintf(f, "%s[%" PRId32 ",\"%a\"]", i ? "," : "", cand[i].id, (double)cand[i].logit);
            fprintf(f, "],\"u\":\"%a\",\"active\":%d", u, active);
            int32_t t = tokmark_embedder_sample(e, cand, K, u);
            fprintf(f, ",\"chosen\":%" PRId32 "}", t);
            tokmark_embedder_accept(e, t);
        }
        fputs("]}\n", f);
        tokmark_embedder_free(e);
        tokmark_profile_free(prof);
    }
    fclose(f);
}

/* detect.jsonl: token sequences and the detector's exact outputs. */
static void write_detect(const char *dir) {
    FILE *f = open_out(dir, "detect.jsonl");
    sm_state = 0x64657431; /* "det1" */
    unsigned n = 0;
    for (unsigned k = 0; k < NPROFILES; k++) {
        tokmark_params p;
        tokmark_profile *prof = make_profile(k, &p);
        /* a watermarked document: generated by the embedder from random logits */
        tokmark_embedder *e = NULL;
        int rc = tokmark_embedder_create(&e, prof, NULL);
        if (rc != TOKMARK_OK) die("embedder", rc);
        enum { L = 64, K = 16, Q = 4 };
        int32_t prompt[Q], doc[L];
        for (int i = 0; i < Q; i++) prompt[i] = (int32_t)sm_below(p.vocab_size);
        tokmark_embedder_prompt(e, prompt, Q);
        for (int i = 0; i < L; i++) {
            tokmark_token_data cand[K];
            for (int j = 0; j < K; j++) {
                cand[j].id = (int32_t)sm_below(p.vocab_size);
                cand[j].logit = (float)((int)sm_below(48)) / 16.0f;
                cand[j].p = 0;
            }
            doc[i] = tokmark_embedder_sample(e, cand, K, sm_unit());
            tokmark_embedder_accept(e, doc[i]);
        }
        /* repeat a span so that dedup has work */
        for (int i = 40; i < 56; i++) doc[i] = doc[i - 32];
        tokmark_embedder_free(e);

        tokmark_keyring *ring = NULL;
        rc = tokmark_keyring_new(&ring);
        if (rc == TOKMARK_OK) rc = tokmark_keyring_add(ring, prof);
        if (rc != TOKMARK_OK) die("keyring", rc);
        tokmark_detector *d = NULL;
        rc = tokmark_detector_create(&d, ring, NULL);
        if (rc != TOKMARK_OK) die("detector", rc);
        int kinds = p.scheme == TOKMARK_SCHEME_SYNTHID ? 2 : 1;
        for (int kind = 0; kind < kinds; kind++) {
            tokmark_detector_reset(d);
            tokmark_detector_set_score(d, kind ? TOKMARK_SCORE_WEIGHTED : TOKMARK_SCORE_DEFAULT);
            tokmark_detector_begin(d);
            tokmark_detector_prompt(d, prompt, Q);
            tokmark_detector_feed(d, doc, L);
            tokmark_result r;
            tokmark_detector_document(d, 0, &r);
            fprintf(f, "{\"id\":\"detect-%03u\",", n++);
            profile_header(f, k, prof);
            fprintf(f, ",\"score\":\"%s\",\"prompt\":", kind ? "weighted" : "default");
            ids_json(f, prompt, Q);
            fputs(",\"tokens\":", f);
            ids_json(f, doc, L);
            fprintf(f,
                    ",\"expected\":{\"tokens\":%" PRIu64 ",\"scored\":%" PRIu64 ",\"duplicates\":%" PRIu64
                    ",\"statistic\":\"%a\",\"log10_p\":\"%.15g\"}}\n",
                    r.tokens, r.scored, r.duplicates, r.statistic, r.log10_p);
        }
        tokmark_detector_free(d);
        tokmark_keyring_free(ring); /* frees prof */
    }
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc == 2 ? stdout : stderr, "usage: tokmark-vectors DIR\n");
        return argc == 2 ? 0 : 2;
    }
    int rc = tokmark_init();
    if (rc != TOKMARK_OK) die("init", rc);
    write_keys(argv[1]);
    write_prf(argv[1]);
    write_embed(argv[1]);
    write_detect(argv[1]);
    return 0;
}
