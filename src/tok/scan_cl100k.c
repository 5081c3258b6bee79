/* scan_cl100k.c — a hand-written scanner for the cl100k_base split pattern
 * (SPEC.md §9.3, P100), giving the same pieces as PCRE2's leftmost-first match
 * of
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
 *   | ' '?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 * over the classes of unicode_tables.c.  tests/test_scanner.c checks it
 * against PCRE2 (every code point's class, the oracle texts, random texts). */
#include "tok/scan.h"

#include <string.h>

/* run_of(s, i, end, TM_UC_L): the end of the run of letters from i, taking
 * ASCII 8 bytes at a time (the only ASCII letters are A-Z and a-z), and
 * leaving the rest, from the first byte that is not an ASCII letter, to
 * run_of (a non-ASCII byte may start a letter). */
static inline size_t run_letters(const uint8_t *s, size_t i, size_t end) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t hi = 0x8080808080808080ull;
    while (i + 8 <= end) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t x = (w | 0x2020202020202020ull) & 0x7F7F7F7F7F7F7F7Full; /* A-Z to a-z; no carries below */
        uint64_t ge_a = x + 0x1F1F1F1F1F1F1F1Full;                      /* top bit: x >= 'a' */
        uint64_t ge_brace = x + 0x0505050505050505ull;                  /* top bit: x >= '{' ('z' + 1) */
        uint64_t not_letter = ~(ge_a & ~ge_brace & ~w) & hi;             /* ~w: an ASCII byte */
        if (not_letter == 0) {
            i += 8;
            continue;
        }
        i += (size_t)__builtin_ctzll(not_letter) >> 3;
        if (s[i] < 0x80) return i; /* an ASCII byte that is not a letter ends the run */
        break;
    }
#endif
    return run_of(s, i, end, TM_UC_L);
}

__attribute__((always_inline)) static inline size_t scan_one(const uint8_t *s, size_t end, size_t i) {
    size_t n0;
    uint32_t c0;
    unsigned k0 = char_at(s, i, &n0, &c0);
    size_t j = i + n0;

    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c0 == '\'') {
        size_t ce = contraction_at(s, i, end);
        if (ce) return ce;
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k0 & TM_UC_L) return run_letters(s, j, end);
    int other = !(k0 & (TM_UC_L | TM_UC_N | TM_UC_WS));
    size_t n1 = 0;
    unsigned k1 = 0;
    if (j < end) k1 = class_only(s, j, &n1);
    if (!(k0 & TM_UC_N) && c0 != '\r' && c0 != '\n' && (k1 & TM_UC_L)) return run_letters(s, j + n1, end);
    /* \p{N}{1,3} */
    if (k0 & TM_UC_N) {
        for (int k = 1; k < 3 && j < end; k++) {
            size_t n;
            if (!(class_only(s, j, &n) & TM_UC_N)) break;
            j += n;
        }
        return j;
    }
    /* ' '?[^\s\p{L}\p{N}]+[\r\n]* */
    if (other) return run_crlf(s, run_other(s, j, end), end);
    if (c0 == ' ' && j < end && !(k1 & (TM_UC_L | TM_UC_N | TM_UC_WS)))
        return run_crlf(s, run_other(s, j + n1, end), end);
    /* c0 is white space: \s*[\r\n]+ | \s+(?!\S) | \s+ */
    return white_at(s, i, end);
}

size_t tm_scan_cl100k(const uint8_t *s, size_t end, size_t off) { return scan_one(s, end, off); }

size_t tm_scan_cl100k_batch(const uint8_t *s, size_t end, size_t off, size_t *ends, size_t max) {
    size_t k = 0;
    while (k < max && off < end) {
        size_t pe = scan_one(s, end, off);
        if (pe <= off || pe > end) break; /* cannot happen: never an empty piece */
        ends[k++] = off = pe;
    }
    return k;
}
