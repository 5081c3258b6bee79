/* report_pdf.c — the PDF of an audit report (SPEC.md §13), drawn with cairo
 * and laid out with pango.  The plots are drawn here from lines and
 * rectangles: (a) corpus log10 p against tuples scored, (b) per-document z
 * against the null, (c) the control keys' corpus z with the real key marked. */
#include "report_pdf.h"

#include <cairo-pdf.h>
#include <fontconfig/fontconfig.h>
#include <pango/pangocairo.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_W 595.276 /* A4, points */
#define PAGE_H 841.890
#define MARGIN 56.0
#define TEXT_W (PAGE_W - 2 * MARGIN)
#define BOTTOM (PAGE_H - MARGIN - 18.0)

typedef struct pg {
    cairo_surface_t *surf;
    cairo_t *cr;
    const rp_report *r;
    double y;
    int page;
} pg;

/* ---- text ------------------------------------------------------------------ */

static PangoLayout *mk_layout(pg *p, const char *font, const char *markup, double width) {
    PangoLayout *l = pango_cairo_create_layout(p->cr);
    pango_cairo_context_set_resolution(pango_layout_get_context(l), 72.0);
    pango_layout_context_changed(l);
    PangoFontDescription *fd = pango_font_description_from_string(font);
    pango_layout_set_font_description(l, fd);
    pango_font_description_free(fd);
    if (width > 0) {
        pango_layout_set_width(l, (int)(width * PANGO_SCALE));
        pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
    }
    pango_layout_set_markup(l, markup, -1);
    return l;
}

static void text_at(pg *p, double x, double y, const char *font, const char *markup, double width, int align) {
    PangoLayout *l = mk_layout(p, font, markup, width);
    int w = 0, h = 0;
    pango_layout_get_size(l, &w, &h);
    double dx = align == 0 ? 0 : align == 1 ? -(double)w / PANGO_SCALE / 2 : -(double)w / PANGO_SCALE;
    cairo_move_to(p->cr, x + dx, y);
    pango_cairo_show_layout(p->cr, l);
    g_object_unref(l);
}

static void page_decor(pg *p) {
    cairo_set_source_rgb(p->cr, 0.35, 0.35, 0.35);
    char *t = g_markup_printf_escaped("tokmark audit report — %s", p->r->title);
    text_at(p, MARGIN, MARGIN - 30, "DejaVu Sans 7.5", t, TEXT_W, 0);
    g_free(t);
    char foot[64];
    snprintf(foot, sizeof foot, "page %d", p->page);
    text_at(p, PAGE_W - MARGIN, PAGE_H - MARGIN + 8, "DejaVu Sans 7.5", foot, 0, 2);
    t = g_markup_printf_escaped("report time %s · signed (report.sig), signer %s", p->r->time_utc,
                                p->r->signer_fingerprint);
    text_at(p, MARGIN, PAGE_H - MARGIN + 8, "DejaVu Sans 7.5", t, 0, 0);
    g_free(t);
    cairo_move_to(p->cr, MARGIN, MARGIN - 16);
    cairo_line_to(p->cr, PAGE_W - MARGIN, MARGIN - 16);
    cairo_set_line_width(p->cr, 0.5);
    cairo_stroke(p->cr);
    cairo_set_source_rgb(p->cr, 0, 0, 0);
}

static void new_page(pg *p) {
    if (p->page > 0) cairo_show_page(p->cr);
    p->page++;
    p->y = MARGIN;
    page_decor(p);
}

/* A paragraph (pango markup) at the current position, indented. */
static void para(pg *p, const char *font, const char *markup, double indent, double after) {
    PangoLayout *l = mk_layout(p, font, markup, TEXT_W - indent);
    int w = 0, h = 0;
    pango_layout_get_size(l, &w, &h);
    double hh = (double)h / PANGO_SCALE;
    if (p->y + hh > BOTTOM && p->y > MARGIN + 1) new_page(p);
    cairo_move_to(p->cr, MARGIN + indent, p->y);
    pango_cairo_show_layout(p->cr, l);
    g_object_unref(l);
    p->y += hh + after;
}

static void heading(pg *p, const char *text) {
    if (p->y + 60 > BOTTOM) new_page(p);
    char *t = g_markup_printf_escaped("<b>%s</b>", text);
    p->y += 6;
    para(p, "DejaVu Sans 13", t, 0, 6);
    g_free(t);
}

static void plain(pg *p, const char *text) {
    char *t = g_markup_escape_text(text, -1);
    para(p, "DejaVu Serif 10", t, 0, 7);
    g_free(t);
}

/* "name: value" rows in two columns. */
static void kv(pg *p, const char *k, const char *v) {
    char *t = g_markup_printf_escaped("<b>%s</b>", k);
    char *u = g_markup_escape_text(v, -1);
    PangoLayout *l = mk_layout(p, "DejaVu Sans 9", u, TEXT_W - 130);
    int w = 0, h = 0;
    pango_layout_get_size(l, &w, &h);
    double hh = (double)h / PANGO_SCALE;
    if (p->y + hh > BOTTOM) new_page(p);
    text_at(p, MARGIN, p->y, "DejaVu Sans 9", t, 125, 0);
    cairo_move_to(p->cr, MARGIN + 130, p->y);
    pango_cairo_show_layout(p->cr, l);
    g_object_unref(l);
    p->y += hh + 3;
    g_free(t);
    g_free(u);
}

/* One line of a monospace table (escaped here). */
static void mono(pg *p, const char *line, const char *font) {
    char *t = g_markup_escape_text(line, -1);
    para(p, font, t, 0, 1);
    g_free(t);
}

/* ---- plots --------------------------------------------------------------- */

typedef struct axes {
    double x, y, w, h;             /* plot area (points) */
    double x0, x1, y0, y1;         /* data range */
} axes;

static double ax_x(const axes *a, double v) { return a->x + (v - a->x0) / (a->x1 - a->x0) * a->w; }
static double ax_y(const axes *a, double v) { return a->y + a->h - (v - a->y0) / (a->y1 - a->y0) * a->h; }

static double nice_step(double range) {
    double raw = range / 5, e = pow(10, floor(log10(raw))), f = raw / e;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * e;
}

static void fmt_tick(char *buf, size_t n, double v, double step) {
    if (fabs(v) < step * 1e-9) v = 0;
    if (fabs(v) >= 1e6 || (step < 1e-3 && v != 0)) snprintf(buf, n, "%.3g", v);
    else if (step >= 1) snprintf(buf, n, "%.0f", v);
    else if (step >= 0.1) snprintf(buf, n, "%.1f", v);
    else snprintf(buf, n, "%.2f", v);
}

static void draw_axes(pg *p, const axes *a, const char *xlabel, const char *ylabel, const char *title) {
    cairo_t *cr = p->cr;
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, a->x, a->y, a->w, a->h);
    cairo_stroke(cr);
    char buf[32];
    double sx = nice_step(a->x1 - a->x0), sy = nice_step(a->y1 - a->y0);
    for (double v = ceil(a->x0 / sx) * sx; v <= a->x1 + sx * 1e-9; v += sx) {
        double X = ax_x(a, v);
        cairo_move_to(cr, X, a->y + a->h);
        cairo_line_to(cr, X, a->y + a->h + 3);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, v, sx);
        text_at(p, X, a->y + a->h + 4, "DejaVu Sans 7", buf, 0, 1);
    }
    for (double v = ceil(a->y0 / sy) * sy; v <= a->y1 + sy * 1e-9; v += sy) {
        double Y = ax_y(a, v);
        cairo_move_to(cr, a->x - 3, Y);
        cairo_line_to(cr, a->x, Y);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, v, sy);
        text_at(p, a->x - 4, Y - 4.5, "DejaVu Sans 7", buf, 0, 2);
    }
    char *t = g_markup_escape_text(xlabel, -1);
    text_at(p, a->x + a->w / 2, a->y + a->h + 15, "DejaVu Sans 8", t, 0, 1);
    g_free(t);
    t = g_markup_escape_text(ylabel, -1);
    cairo_save(cr);
    cairo_translate(cr, a->x - 40, a->y + a->h / 2);
    cairo_rotate(cr, -G_PI / 2);
    text_at(p, 0, 0, "DejaVu Sans 8", t, 0, 1);
    cairo_restore(cr);
    g_free(t);
    t = g_markup_printf_escaped("<b>%s</b>", title);
    text_at(p, a->x, a->y - 16, "DejaVu Sans 9", t, a->w, 0);
    g_free(t);
}

static void clip_area(cairo_t *cr, const axes *a) {
    cairo_save(cr);
    cairo_rectangle(cr, a->x, a->y, a->w, a->h);
    cairo_clip(cr);
}

static double npdf(double z) { return exp(-0.5 * z * z) / sqrt(2 * G_PI); }

static void normal_curve(cairo_t *cr, const axes *a) {
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.2);
    for (int i = 0; i <= 400; i++) {
        double z = a->x0 + (a->x1 - a->x0) * i / 400.0;
        if (i == 0) cairo_move_to(cr, ax_x(a, z), ax_y(a, npdf(z)));
        else cairo_line_to(cr, ax_x(a, z), ax_y(a, npdf(z)));
    }
    cairo_stroke(cr);
}

/* Density histogram of v[0..n) on [a->x0, a->x1) in nb bins; filled or outlined. */
static double hist_max(const double *v, size_t n, double lo, double hi, int nb) {
    if (n == 0) return 0;
    int *c = calloc((size_t)nb, sizeof *c);
    if (c == NULL) return 0;
    double bw = (hi - lo) / nb, m = 0;
    for (size_t i = 0; i < n; i++) {
        int k = (int)floor((v[i] - lo) / bw);
        if (isfinite(v[i]) && k >= 0 && k < nb) c[k]++;
    }
    for (int k = 0; k < nb; k++)
        if (c[k] / (double)n / bw > m) m = c[k] / (double)n / bw;
    free(c);
    return m;
}

static void hist(cairo_t *cr, const axes *a, const double *v, size_t n, int nb, int filled, double r, double g,
                 double b) {
    if (n == 0) return;
    int *c = calloc((size_t)nb, sizeof *c);
    if (c == NULL) return;
    double bw = (a->x1 - a->x0) / nb;
    for (size_t i = 0; i < n; i++) {
        int k = (int)floor((v[i] - a->x0) / bw);
        if (isfinite(v[i]) && k >= 0 && k < nb) c[k]++;
    }
    for (int k = 0; k < nb; k++) {
        if (c[k] == 0) continue;
        double d = c[k] / (double)n / bw;
        double X0 = ax_x(a, a->x0 + k * bw), X1 = ax_x(a, a->x0 + (k + 1) * bw), Y = ax_y(a, d);
        cairo_rectangle(cr, X0, Y, X1 - X0, ax_y(a, 0) - Y);
        cairo_set_source_rgba(cr, r, g, b, filled ? 0.55 : 1.0);
        if (filled) cairo_fill(cr);
        else {
            cairo_set_line_width(cr, 0.8);
            cairo_stroke(cr);
        }
    }
    free(c);
}

static void range_of(const double *v, size_t n, double *lo, double *hi) {
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) {
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
        }
}

static void legend(pg *p, double x, double y, const char *const *items, const double (*col)[3], int n) {
    for (int i = 0; i < n; i++) {
        cairo_set_source_rgb(p->cr, col[i][0], col[i][1], col[i][2]);
        cairo_rectangle(p->cr, x, y + 12 * i + 2, 10, 6);
        cairo_fill(p->cr);
        cairo_set_source_rgb(p->cr, 0, 0, 0);
        char *t = g_markup_escape_text(items[i], -1);
        text_at(p, x + 14, y + 12 * i, "DejaVu Sans 7", t, 0, 0);
        g_free(t);
    }
}

/* (a) corpus log10 p against tuples scored. */
static void plot_series(pg *p, double top) {
    const rp_report *r = p->r;
    axes a = {MARGIN + 50, top + 20, TEXT_W - 60, 190, 0, 1, 0, 0};
    double xmax = 1, ymin = log10(r->alpha) * 1.25;
    for (size_t i = 0; i < r->nseries; i++) {
        if (r->series_scored[i] > xmax) xmax = r->series_scored[i];
        if (isfinite(r->series_log10_p[i]) && r->series_log10_p[i] < ymin) ymin = r->series_log10_p[i];
    }
    a.x1 = xmax;
    a.y0 = ymin * 1.05;
    a.y1 = 0;
    draw_axes(p, &a, "tuples scored (corpus, cumulative, in input order)", "corpus log10 p (corrected)",
              "(a) Corpus p-value as the documents accumulate");
    cairo_t *cr = p->cr;
    clip_area(cr, &a);
    double la = log10(r->alpha);
    cairo_set_source_rgb(cr, 0.85, 0.1, 0.1);
    cairo_set_line_width(cr, 1);
    double dash[] = {4, 3};
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, a.x, ax_y(&a, la));
    cairo_line_to(cr, a.x + a.w, ax_y(&a, la));
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    cairo_set_source_rgb(cr, 0.1, 0.3, 0.8);
    cairo_set_line_width(cr, 1.5);
    cairo_move_to(cr, ax_x(&a, 0), ax_y(&a, 0));
    for (size_t i = 0; i < r->nseries; i++)
        if (isfinite(r->series_log10_p[i])) cairo_line_to(cr, ax_x(&a, r->series_scored[i]), ax_y(&a, r->series_log10_p[i]));
    cairo_stroke(cr);
    cairo_restore(cr);
    char lab[64];
    snprintf(lab, sizeof lab, "α = %g (log10 α = %.1f)", r->alpha, la);
    static const double col[2][3] = {{0.1, 0.3, 0.8}, {0.85, 0.1, 0.1}};
    const char *items[2] = {"corpus log10 p", lab};
    legend(p, a.x + 8, a.y + a.h - 30, items, col, 2);
}

/* (b) per-document z against the null. */
static void plot_docs(pg *p, double top, const double *z, size_t nz) {
    const rp_report *r = p->r;
    double lo = -4, hi = 4;
    range_of(z, nz, &lo, &hi);
    if (hi > 60) hi = 60;
    if (lo < -60) lo = -60;
    lo = floor(lo), hi = ceil(hi) + 0.5;
    int nb = 48;
    double m = 0.45, h1 = hist_max(z, nz, lo, hi, nb), h2 = hist_max(r->control_doc_z, r->ncontrol_doc_z, lo, hi, nb);
    if (h1 > m) m = h1;
    if (h2 > m) m = h2;
    axes a = {MARGIN + 50, top + 20, TEXT_W - 60, 190, lo, hi, 0, m * 1.08};
    draw_axes(p, &a, "document z (display score; clipped to ±60)", "density",
              "(b) Per-document scores against the null distribution");
    cairo_t *cr = p->cr;
    clip_area(cr, &a);
    hist(cr, &a, r->control_doc_z, r->ncontrol_doc_z, nb, 1, 0.6, 0.6, 0.6);
    hist(cr, &a, z, nz, nb, 1, 0.1, 0.3, 0.8);
    normal_curve(cr, &a);
    cairo_restore(cr);
    static const double col[3][3] = {{0.1, 0.3, 0.8}, {0.6, 0.6, 0.6}, {0, 0, 0}};
    const char *items[3] = {"documents, real key", "documents, control keys (the null, measured)",
                            "N(0,1) density (the null, theory)"};
    legend(p, a.x + a.w - 210, a.y + 6, items, col, 3);
}

/* (c) the control keys' corpus z with the real key marked. */
static void plot_controls(pg *p, double top) {
    const rp_report *r = p->r;
    double lo = -4, hi = 4;
    range_of(r->control_z, r->ncontrols, &lo, &hi);
    if (isfinite(r->z)) {
        if (r->z + 1 > hi) hi = r->z + 1;
        if (r->z - 1 < lo) lo = r->z - 1;
    }
    lo = floor(lo), hi = ceil(hi);
    int nb = 48;
    double m = 0.45, h = hist_max(r->control_z, r->ncontrols, lo, hi, nb);
    if (h > m) m = h;
    axes a = {MARGIN + 50, top + 20, TEXT_W - 60, 190, lo, hi, 0, m * 1.08};
    draw_axes(p, &a, "corpus z", "density", "(c) Control keys' corpus scores, real key marked");
    cairo_t *cr = p->cr;
    clip_area(cr, &a);
    hist(cr, &a, r->control_z, r->ncontrols, nb, 1, 0.6, 0.6, 0.6);
    normal_curve(cr, &a);
    if (isfinite(r->z)) {
        cairo_set_source_rgb(cr, 0.85, 0.1, 0.1);
        cairo_set_line_width(cr, 2);
        cairo_move_to(cr, ax_x(&a, r->z), a.y);
        cairo_line_to(cr, ax_x(&a, r->z), a.y + a.h);
        cairo_stroke(cr);
    }
    cairo_restore(cr);
    char lab[96];
    snprintf(lab, sizeof lab, "real key: z = %.2f", r->z);
    char lab2[96];
    snprintf(lab2, sizeof lab2, "%u control keys", r->ncontrols);
    static const double col[3][3] = {{0.85, 0.1, 0.1}, {0.6, 0.6, 0.6}, {0, 0, 0}};
    const char *items[3] = {lab, lab2, "N(0,1) density"};
    legend(p, a.x + 8, a.y + 6, items, col, 3);
}

/* ---- pages ------------------------------------------------------------------ */

static cairo_status_t write_cb(void *closure, const unsigned char *data, unsigned int length) {
    rp_buf *b = closure;
    rp_buf_add(b, data, length);
    return b->failed ? CAIRO_STATUS_WRITE_ERROR : CAIRO_STATUS_SUCCESS;
}

static void fmt_p(char *buf, size_t n, double l10) {
    if (!isfinite(l10)) snprintf(buf, n, "-inf");
    else snprintf(buf, n, "%.3f", l10);
}

int rp_pdf_render(const rp_report *r, rp_buf *out, const char **why) {
    pg P = {0};
    pg *p = &P;
    p->r = r;
    p->surf = cairo_pdf_surface_create_for_stream(write_cb, out, PAGE_W, PAGE_H);
    if (cairo_surface_status(p->surf) != CAIRO_STATUS_SUCCESS) {
        *why = cairo_status_to_string(cairo_surface_status(p->surf));
        cairo_surface_destroy(p->surf);
        return -1;
    }
    /* fixed metadata: the same report gives the same bytes */
    cairo_pdf_surface_set_metadata(p->surf, CAIRO_PDF_METADATA_TITLE, r->title);
    cairo_pdf_surface_set_metadata(p->surf, CAIRO_PDF_METADATA_AUTHOR, r->examiner);
    cairo_pdf_surface_set_metadata(p->surf, CAIRO_PDF_METADATA_CREATOR, "tokmark report");
    cairo_pdf_surface_set_metadata(p->surf, CAIRO_PDF_METADATA_CREATE_DATE, r->time_utc);
    cairo_pdf_surface_set_metadata(p->surf, CAIRO_PDF_METADATA_MOD_DATE, r->time_utc);
    p->cr = cairo_create(p->surf);
    char buf[512], b2[64], b3[64];

    /* page 1: case, profile, the finding */
    new_page(p);
    para(p, "DejaVu Sans Bold 20", "Watermark detection report", 0, 4);
    char *t = g_markup_escape_text(r->title, -1);
    para(p, "DejaVu Sans 13", t, 0, 14);
    g_free(t);
    heading(p, "Case");
    kv(p, "Title", r->title);
    kv(p, "Examiner", r->examiner);
    kv(p, "Time (UTC)", r->time_utc);
    snprintf(buf, sizeof buf, "tokmark %s (%s)", r->version, r->build);
    kv(p, "Software", buf);
    snprintf(buf, sizeof buf, "SPEC.md version %s", r->spec);
    kv(p, "Specification", buf);
    kv(p, "Signed by", r->signer_fingerprint);
    kv(p, "report.json SHA-256", r->json_sha256);
    heading(p, "Finding");
    fmt_p(b2, sizeof b2, r->log10_p_corrected);
    int n10 = isfinite(r->log10_p_corrected) ? (int)floor(-r->log10_p_corrected) : 999999;
    if (strcmp(r->verdict, "watermarked") == 0)
        snprintf(buf, sizeof buf,
                 "The watermark of key %s was detected in the corpus: log10 p = %s (corrected for %zu key%s), "
                 "below the significance level α = %g. Text without the watermark scores this high less than once "
                 "in 10^%d tries.",
                 r->corpus_key_id, b2, r->nkeys, r->nkeys == 1 ? "" : "s", r->alpha, n10);
    else
        snprintf(buf, sizeof buf,
                 "The watermark of key %s was not detected at α = %g: corpus log10 p = %s (corrected for %zu "
                 "key%s). This is what text without the watermark typically gives.",
                 r->corpus_key_id, r->alpha, b2, r->nkeys, r->nkeys == 1 ? "" : "s");
    plain(p, buf);
    snprintf(buf, sizeof buf,
             "Measured false-positive rate at α = %g among %u control keys: %llu of %u (%.4g; 95%% interval %.3g to %.3g). "
             "Controls scoring at least as high as the real key: %llu; empirical p = %.6g.",
             r->rates[0].alpha, r->ncontrols, (unsigned long long)r->rates[0].count, r->ncontrols, r->rates[0].rate,
             r->rates[0].ci_low, r->rates[0].ci_high, (unsigned long long)r->controls_at_least_as_extreme,
             r->empirical_p);
    plain(p, buf);
    heading(p, "Profile (public parameters only; the key is not in this report)");
    for (size_t k = 0; k < r->nkeys; k++) {
        snprintf(b3, sizeof b3, "Key ID %zu", k + 1);
        kv(p, r->nkeys == 1 ? "Key ID" : b3, r->key_ids[k]);
        if (r->commitments != NULL) kv(p, "Key commitment", r->commitments[k]);
    }
    char *params = strdup(r->params_text);
    for (char *line = params, *nl; line != NULL && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char *sp = strchr(line, ' ');
        if (sp == NULL || strncmp(line, "key-id", 6) == 0) continue;
        *sp = '\0';
        kv(p, line, sp + 1);
    }
    free(params);

    /* method */
    new_page(p);
    heading(p, "Method");
    for (size_t i = 0; i < r->nmethod; i++) plain(p, r->method[i]);

    /* results */
    new_page(p);
    heading(p, "Results: the corpus");
    snprintf(buf, sizeof buf, "%llu documents (%llu inputs skipped), mode %s", (unsigned long long)r->documents,
             (unsigned long long)r->skipped, r->mode);
    kv(p, "Input", buf);
    snprintf(buf, sizeof buf, "%llu tokens, %llu tuples scored, %llu duplicates, %llu dropped",
             (unsigned long long)r->tokens, (unsigned long long)r->scored, (unsigned long long)r->duplicates,
             (unsigned long long)r->dropped);
    kv(p, "Counts", buf);
    snprintf(buf, sizeof buf, "%.17g (z = %.3f)", r->statistic, r->z);
    kv(p, "Statistic", buf);
    fmt_p(b2, sizeof b2, r->log10_p);
    fmt_p(b3, sizeof b3, r->log10_p_corrected);
    snprintf(buf, sizeof buf, "%s (corrected for %zu key%s: %s)", b2, r->nkeys, r->nkeys == 1 ? "" : "s", b3);
    kv(p, "log10 p", buf);
    snprintf(buf, sizeof buf, "%s (α = %g); documents watermarked: %llu; with a watermarked span: %llu", r->verdict,
             r->alpha, (unsigned long long)r->docs_watermarked, (unsigned long long)r->docs_span);
    kv(p, "Verdict", buf);
    heading(p, "Results per file");
    mono(p, "file                                   docs   tokens   scored  wm  min log10 p", "DejaVu Sans Mono 7.5");
    for (size_t i = 0; i < r->nfiles; i++) {
        const rp_file *f = &r->files[i];
        size_t pl = strlen(f->path);
        const char *src = pl > 36 ? f->path + pl - 36 : f->path;
        fmt_p(b2, sizeof b2, f->min_log10_p);
        snprintf(buf, sizeof buf, "%-36s %6llu %8llu %8llu %3llu  %11s", src, (unsigned long long)f->documents,
                 (unsigned long long)f->tokens, (unsigned long long)f->scored, (unsigned long long)f->watermarked, b2);
        mono(p, buf, "DejaVu Sans Mono 7.5");
    }
    heading(p, "Results per document");
    size_t shown = r->ndocs < 80 ? r->ndocs : 80;
    mono(p, "source:line                         tokens  scored        z  log10 p corr.  verdict", "DejaVu Sans Mono 7");
    for (size_t i = 0; i < shown; i++) {
        const rp_doc *d = &r->docs[i];
        char where[48];
        size_t sl = strlen(d->source);
        snprintf(where, sizeof where, "%s:%llu", sl > 28 ? d->source + sl - 28 : d->source,
                 (unsigned long long)d->line);
        fmt_p(b2, sizeof b2, d->log10_p_corrected);
        snprintf(buf, sizeof buf, "%-34s %7llu %7llu %8.2f %13s  %s", where, (unsigned long long)d->tokens,
                 (unsigned long long)d->scored, d->z, b2, d->verdict);
        mono(p, buf, "DejaVu Sans Mono 7");
        if (d->has_window && d->window_significant) {
            fmt_p(b2, sizeof b2, d->window_log10_p_corrected);
            snprintf(buf, sizeof buf, "    watermarked span: tokens %llu-%llu, %llu tuples, log10 p %s (Bonferroni over %llu windows)",
                     (unsigned long long)d->window_start, (unsigned long long)d->window_end,
                     (unsigned long long)d->window_scored, b2, (unsigned long long)d->windows_tried);
            mono(p, buf, "DejaVu Sans Mono 7");
        }
    }
    if (shown < r->ndocs) {
        snprintf(buf, sizeof buf, "(%zu more documents: see report.json)", r->ndocs - shown);
        plain(p, buf);
    }

    /* error rate */
    new_page(p);
    heading(p, "Error rate, measured with control keys");
    snprintf(buf, sizeof buf,
             "The same scan was repeated with %u control keys: public keys derived from a fixed string "
             "(SPEC.md §12.7) that were never used to watermark anything. Each is scored over exactly the same "
             "tuples as the real key, so the proportion of control keys that reach a significance level is the "
             "false-positive rate measured on this very input.",
             r->ncontrols);
    plain(p, buf);
    mono(p, "      α    controls ≤ α    rate        95% exact interval", "DejaVu Sans Mono 8.5");
    for (int i = 0; i < RP_NRATES; i++) {
        snprintf(buf, sizeof buf, "%7.0e   %6llu / %-6u  %-10.4g  [%.4g, %.4g]", r->rates[i].alpha,
                 (unsigned long long)r->rates[i].count, r->ncontrols, r->rates[i].rate, r->rates[i].ci_low,
                 r->rates[i].ci_high);
        mono(p, buf, "DejaVu Sans Mono 8.5");
    }
    p->y += 6;
    snprintf(buf, sizeof buf,
             "Control keys whose corpus p-value is at most the real key's: %llu of %u; empirical p-value "
             "(1 + that number) / (N + 1) = %.6g. With N control keys the empirical p-value cannot go below "
             "1/(N + 1); the exact p-value above is the measure of strength, the control keys show that the "
             "test's error rate on this input is what the theory says.",
             (unsigned long long)r->controls_at_least_as_extreme, r->ncontrols, r->empirical_p);
    plain(p, buf);
    if (p->y + 240 > BOTTOM) new_page(p);
    plot_controls(p, p->y + 10);
    p->y += 250;

    /* plots */
    new_page(p);
    heading(p, "Plots");
    plot_series(p, p->y + 10);
    p->y += 255;
    double *z = malloc((r->ndocs + 1) * sizeof *z);
    size_t nz = 0;
    for (size_t i = 0; z && i < r->ndocs; i++)
        if (r->docs[i].scored > 0) z[nz++] = r->docs[i].z;
    plot_docs(p, p->y + 10, z, nz);
    free(z);
    p->y += 250;

    /* limitations */
    new_page(p);
    heading(p, "Limitations: what this test can and cannot say");
    for (size_t i = 0; i < r->nlimitations; i++) plain(p, r->limitations[i]);

    /* evidence */
    new_page(p);
    heading(p, "Evidence");
    plain(p, "Every input file, in the order it was read, with its size and SHA-256; then the tokenizer. "
             "Anyone holding these files can check them against this list (tokmark report verify --evidence).");
    for (size_t i = 0; i < r->nfiles; i++) {
        snprintf(buf, sizeof buf, "%zu. %s", i + 1, r->files[i].path);
        mono(p, buf, "DejaVu Sans Mono 7.5");
        snprintf(buf, sizeof buf, "   %llu bytes  SHA-256 %s", (unsigned long long)r->files[i].size, r->files[i].sha256);
        mono(p, buf, "DejaVu Sans Mono 7.5");
    }
    for (size_t i = 0; i < r->naux; i++) {
        snprintf(buf, sizeof buf, "%s: %s", r->aux_role[i], r->aux[i].path);
        mono(p, buf, "DejaVu Sans Mono 7.5");
        snprintf(buf, sizeof buf, "   %llu bytes  SHA-256 %s", (unsigned long long)r->aux[i].size, r->aux[i].sha256);
        mono(p, buf, "DejaVu Sans Mono 7.5");
    }
    p->y += 6;
    if (r->tok_path != NULL) {
        snprintf(buf, sizeof buf, "tokenizer %s: %s", r->tok_name, r->tok_path);
        mono(p, buf, "DejaVu Sans Mono 7.5");
        snprintf(buf, sizeof buf, "   %llu bytes  SHA-256 %s", (unsigned long long)r->tok_size, r->tok_sha256);
        mono(p, buf, "DejaVu Sans Mono 7.5");
    } else {
        snprintf(buf, sizeof buf, "tokenizer: %s (token ids given directly)", r->tok_name);
        mono(p, buf, "DejaVu Sans Mono 7.5");
    }

    cairo_show_page(p->cr);
    cairo_destroy(p->cr);
    cairo_surface_finish(p->surf);
    cairo_status_t st = cairo_surface_status(p->surf);
    cairo_surface_destroy(p->surf);
    /* release the fonts (font map and caches): a report is drawn once */
    pango_cairo_font_map_set_default(NULL);
    cairo_debug_reset_static_data();
    FcFini();
    if (st != CAIRO_STATUS_SUCCESS || out->failed) {
        *why = st != CAIRO_STATUS_SUCCESS ? cairo_status_to_string(st) : "out of memory";
        return -1;
    }
    return 0;
}
