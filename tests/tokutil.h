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

#endif
