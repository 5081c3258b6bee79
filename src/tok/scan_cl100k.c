/* scan_cl100k.c — a hand-written scanner for the cl100k_base split pattern
 * (SPEC.md §9.3, P100), giving the same pieces as PCRE2's leftmost-first match
 * of
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
 *   | ' '?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 * over the classes of unicode_tables.c.  tests/test_scanner.c checks it
 * against PCRE2 (every code point's class, the oracle texts, random texts). */
#include "tok/scan.h"

size_t tm_scan_cl100k(const uint8_t *s, size_t end, size_t i) {
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
    if (k0 & TM_UC_L) return run_of(s, j, end, TM_UC_L);
    int other = !(k0 & (TM_UC_L | TM_UC_N | TM_UC_WS));
    size_t n1 = 0;
    unsigned k1 = 0;
    if (j < end) k1 = class_only(s, j, &n1);
    if (!(k0 & TM_UC_N) && c0 != '\r' && c0 != '\n' && (k1 & TM_UC_L)) return run_of(s, j + n1, end, TM_UC_L);
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
