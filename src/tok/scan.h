/* scan.h — helpers of the hand-written split-pattern scanners (scan_*.c),
 * private to src/tok/.  Input: well-formed UTF-8 s[0..end), end on a
 * character boundary. */
#ifndef TOKMARK_TOK_SCAN_H
#define TOKMARK_TOK_SCAN_H

#include "tok/tok.h"

/* Class bits of the character at s[i] (i < end, well-formed UTF-8); its
 * length in *n and its code point in *cp. */
static inline unsigned char_at(const uint8_t *s, size_t i, size_t *n, uint32_t *cp) {
    uint32_t b = s[i];
    if (b < 0x80) {
        *n = 1;
        *cp = b;
        return tm_uc_stage2[0][b]; /* block 0 is U+0000..U+00FF */
    }
    uint32_t c;
    if (b < 0xE0) {
        c = (b & 0x1F) << 6 | (s[i + 1] & 0x3Fu);
        *n = 2;
    } else if (b < 0xF0) {
        c = (b & 0x0F) << 12 | (s[i + 1] & 0x3Fu) << 6 | (s[i + 2] & 0x3Fu);
        *n = 3;
    } else {
        c = (b & 0x07) << 18 | (s[i + 1] & 0x3Fu) << 12 | (s[i + 2] & 0x3Fu) << 6 | (s[i + 3] & 0x3Fu);
        *n = 4;
    }
    *cp = c;
    return tm_uc_class(c);
}

static inline unsigned class_only(const uint8_t *s, size_t i, size_t *n) {
    uint32_t cp;
    return char_at(s, i, n, &cp);
}

/* End of the longest run of characters with a bit of `want` from i. */
static inline size_t run_of(const uint8_t *s, size_t i, size_t end, unsigned want) {
    while (i < end) {
        if (s[i] < 0x80) { /* ASCII fast path */
            if (!(tm_uc_stage2[0][s[i]] & want)) break;
            i++;
            continue;
        }
        size_t n;
        if (!(class_only(s, i, &n) & want)) break;
        i += n;
    }
    return i;
}

/* End of the longest run of characters in none of L, N, White_Space. */
static inline size_t run_other(const uint8_t *s, size_t i, size_t end) {
    while (i < end) {
        size_t n;
        if (class_only(s, i, &n) & (TM_UC_L | TM_UC_N | TM_UC_WS)) break;
        i += n;
    }
    return i;
}

static inline size_t run_crlf(const uint8_t *s, size_t i, size_t end) {
    while (i < end && (s[i] == '\r' || s[i] == '\n')) i++;
    return i;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[i]: its end, or 0.  Unicode simple case
 * folding adds only U+017F (ſ) ~ s to the ASCII pairs. */
static inline size_t contraction_at(const uint8_t *s, size_t i, size_t end) {
    if (i + 1 >= end || s[i] != '\'') return 0;
    size_t j = i + 1;
    uint8_t a = s[j];
    uint8_t f = (uint8_t)(a | 0x20); /* ASCII letters only: x|0x20 == 'r' iff x is 'r' or 'R' */
    if (f == 's' || f == 't' || f == 'm' || f == 'd') return j + 1;
    if (a == 0xC5 && j + 1 < end && s[j + 1] == 0xBF) return j + 2; /* U+017F */
    if (j + 1 < end) {
        uint8_t g = (uint8_t)(s[j + 1] | 0x20);
        if ((f == 'r' || f == 'v') && g == 'e') return j + 2;
        if (f == 'l' && g == 'l') return j + 2;
    }
    return 0;
}

/* \s*[\r\n]+ | \s+(?!\S) | \s+ at s[i], a white-space character. */
static inline size_t white_at(const uint8_t *s, size_t i, size_t end) {
    size_t last_nl = SIZE_MAX, last = i, p = i;
    while (p < end) {
        size_t n;
        uint32_t c;
        if (!(char_at(s, p, &n, &c) & TM_UC_WS)) break;
        if (c == '\r' || c == '\n') last_nl = p;
        last = p;
        p += n;
    }
    if (last_nl != SIZE_MAX) return last_nl + 1; /* \s* gives back up to the last line break */
    if (p == end || last == i) return p;         /* (?!\S) holds at the end; \s+ of one */
    return last;                                 /* leave the last one before \S */
}

#endif
