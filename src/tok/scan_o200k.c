/* scan_o200k.c — a hand-written scanner for the o200k_base split pattern
 * (SPEC.md §9.3, P200), giving the same pieces as PCRE2's leftmost-first match
 * of (UP = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], LO = [\p{Ll}\p{Lm}\p{Lo}\p{M}],
 * X = [^\r\n\p{L}\p{N}], C = (?i:'s|'t|'re|'ve|'m|'ll|'d))
 *   X?UP*LO+C? | X?UP+LO*C? | \p{N}{1,3} | ' '?[^\s\p{L}\p{N}]+[\r\n/]*
 *   | \s*[\r\n]+ | \s+(?!\S) | \s+
 * over the classes of unicode_tables.c.  tests/test_scanner.c checks it
 * against PCRE2. */
#include "tok/scan.h"

/* UP*LO+ at p: its end, or SIZE_MAX.  UP* is greedy; when the character after
 * the UP run is not LO, UP* gives back characters until one is LO (Lm, Lo and
 * M are in both), and LO+ then ends right after it. */
static inline size_t up_star_lo_plus(const uint8_t *s, size_t p, size_t end) {
    size_t last_lo_end = SIZE_MAX;
    while (p < end) {
        size_t n;
        unsigned k = class_only(s, p, &n);
        if (!(k & TM_UC_UP)) {
            if (k & TM_UC_LO) return run_of(s, p + n, end, TM_UC_LO);
            break;
        }
        if (k & TM_UC_LO) last_lo_end = p + n;
        p += n;
    }
    return last_lo_end;
}

/* UP+LO* at p: its end, or SIZE_MAX. */
static inline size_t up_plus_lo_star(const uint8_t *s, size_t p, size_t end) {
    size_t u = run_of(s, p, end, TM_UC_UP);
    if (u == p) return SIZE_MAX;
    return run_of(s, u, end, TM_UC_LO);
}

static inline size_t with_contraction(const uint8_t *s, size_t e, size_t end) {
    size_t ce = contraction_at(s, e, end);
    return ce ? ce : e;
}

size_t tm_scan_o200k(const uint8_t *s, size_t end, size_t i) {
    size_t n0;
    uint32_t c0;
    unsigned k0 = char_at(s, i, &n0, &c0);
    size_t j = i + n0, e;
    int x = !(k0 & (TM_UC_L | TM_UC_N)) && c0 != '\r' && c0 != '\n';

    /* X?UP*LO+C?, then X?UP+LO*C?: with X first, then without */
    if (x && j < end && (e = up_star_lo_plus(s, j, end)) != SIZE_MAX) return with_contraction(s, e, end);
    if ((e = up_star_lo_plus(s, i, end)) != SIZE_MAX) return with_contraction(s, e, end);
    if (x && j < end && (e = up_plus_lo_star(s, j, end)) != SIZE_MAX) return with_contraction(s, e, end);
    if ((e = up_plus_lo_star(s, i, end)) != SIZE_MAX) return with_contraction(s, e, end);
    /* \p{N}{1,3} */
    if (k0 & TM_UC_N) {
        for (int k = 1; k < 3 && j < end; k++) {
            size_t n;
            if (!(class_only(s, j, &n) & TM_UC_N)) break;
            j += n;
        }
        return j;
    }
    /* ' '?[^\s\p{L}\p{N}]+[\r\n/]* */
    size_t p = SIZE_MAX;
    if (!(k0 & (TM_UC_L | TM_UC_N | TM_UC_WS))) p = j;
    else if (c0 == ' ' && j < end) {
        size_t n1;
        if (!(class_only(s, j, &n1) & (TM_UC_L | TM_UC_N | TM_UC_WS))) p = j + n1;
    }
    if (p != SIZE_MAX) {
        p = run_other(s, p, end);
        while (p < end && (s[p] == '\r' || s[p] == '\n' || s[p] == '/')) p++;
        return p;
    }
    /* c0 is white space */
    return white_at(s, i, end);
}
