/* tokutil.h — helpers shared by the tokenizer test suites (static inline;
 * include after <cmocka.h>, <jansson.h> and "tokmark.h"). */
#ifndef TOKMARK_TESTS_TOKUTIL_H
#define TOKMARK_TESTS_TOKUTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Encode all of s (two calls: count, then fill); NULL with *rc_out set on error. */
static inline int32_t *encode_all(tokmark_tokenizer_encoder *e, const char *s, size_t n, unsigned flags, size_t *count,
                           int *rc_out) {
    size_t need = 0;
    int rc = tokmark_tokenizer_encoder_encode(e, s, n, NULL, 0, &need, flags);
    *rc_out = rc;
    *count = need;
    if (rc != TOKMARK_OK) return NULL;
    int32_t *ids = (int32_t *)malloc((need + 1) * sizeof *ids);
    assert_non_null(ids);
    size_t got = 0;
    rc = tokmark_tokenizer_encoder_encode(e, s, n, ids, need, &got, flags);
    assert_int_equal(rc, TOKMARK_OK);
    assert_int_equal(got, need);
    return ids;
}

static inline int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

static inline int ids_equal(const int32_t *a, size_t na, json_t *arr) {
    if (na != json_array_size(arr)) return 0;
    for (size_t i = 0; i < na; i++)
        if ((json_int_t)a[i] != json_integer_value(json_array_get(arr, i))) return 0;
    return 1;
}

static inline void print_diff(const char *what, const char *id, const int32_t *a, size_t na, json_t *arr) {
    size_t i = 0;
    while (i < na && i < json_array_size(arr) && (json_int_t)a[i] == json_integer_value(json_array_get(arr, i))) i++;
    print_error("  %s %s: %zu tokens, oracle %zu; first difference at token %zu (ours %d, oracle %lld)\n", id,
                what, na, json_array_size(arr), i, i < na ? a[i] : -1,
                i < json_array_size(arr) ? (long long)json_integer_value(json_array_get(arr, i)) : -1LL);
}

/* The input text of an oracle vector: its "text" string, or the bytes of its
 * "hex" string (ill-formed UTF-8 cases); malloc'd, NUL-terminated. */
static inline char *vector_text(json_t *jt, json_t *jh, size_t *len) {
    char *text;
    if (jt != NULL) {
        *len = json_string_length(jt);
        text = (char *)malloc(*len + 1);
        assert_non_null(text);
        memcpy(text, json_string_value(jt), *len + 1);
    } else {
        const char *h = json_string_value(jh);
        assert_non_null(h);
        *len = strlen(h) / 2;
        text = (char *)malloc(*len + 1);
        assert_non_null(text);
        for (size_t i = 0; i < *len; i++) text[i] = (char)(hexval(h[2 * i]) << 4 | hexval(h[2 * i + 1]));
        text[*len] = '\0';
    }
    return text;
}

/* Length of the UTF-8 sequence at s[0..n) when it is well-formed (RFC 3629),
 * else 0; *sub receives the length of its maximal ill-formed subpart (≥ 1). */
static inline size_t utf8_one(const uint8_t *s, size_t n, size_t *sub) {
    uint8_t b = s[0];
    size_t l;
    uint8_t lo = 0x80, hi = 0xBF;
    *sub = 1;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) l = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        l = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        l = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (size_t k = 1; k < l; k++) {
        if (k >= n) return 0;
        uint8_t c = s[k];
        if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) return 0;
        *sub = k + 1;
    }
    return l;
}

static inline int utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t sub, l = utf8_one(s + i, n - i, &sub);
        if (l == 0) return 0;
        i += l;
    }
    return 1;
}

/* s with each maximal ill-formed subpart replaced by U+FFFD (Rust's
 * String::from_utf8_lossy, the WHATWG decoder); malloc'd. */
static inline char *utf8_lossy(const uint8_t *s, size_t n, size_t *out_len) {
    char *o = (char *)malloc(3 * n + 1);
    assert_non_null(o);
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t sub, l = utf8_one(s + i, n - i, &sub);
        if (l > 0) {
            memcpy(o + w, s + i, l);
            w += l;
            i += l;
        } else {
            memcpy(o + w, "\xEF\xBF\xBD", 3);
            w += 3;
            i += sub;
        }
    }
    *out_len = w;
    return o;
}

#endif
