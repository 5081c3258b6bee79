/* report_pdf.h — the data of an audit report (SPEC.md §13) and its PDF
 * rendering with cairo and pango (plots drawn here, no plotting library). */
#ifndef TOKMARK_CLI_REPORT_PDF_H
#define TOKMARK_CLI_REPORT_PDF_H

#include "report_util.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rp_doc {
    const char *source;
    uint64_t record, line, tokens, scored;
    double statistic, z, log10_p, log10_p_corrected;
    const char *verdict;
    int has_window, window_significant;
    uint64_t window_start, window_end, window_scored, windows_tried;
    double window_log10_p, window_log10_p_corrected;
} rp_doc;

typedef struct rp_file {
    char *path;
    uint64_t size;
    char sha256[65];
    /* totals of the documents read from it */
    uint64_t documents, tokens, scored, watermarked;
    double min_log10_p; /* smallest corrected document log10 p (0 when none) */
} rp_file;

typedef struct rp_rate {
    double alpha;
    uint64_t count; /* controls with corpus p <= alpha */
    double rate, ci_low, ci_high;
} rp_rate;

#define RP_NRATES 3

typedef struct rp_report {
    /* case */
    const char *title, *examiner, *time_utc, *version, *build, *spec;
    /* profile */
    size_t nkeys;
    const char *const *key_ids;
    const char *scheme;       /* kgw, gumbel, synthid */
    const char *params_text;  /* tokmark_profile_describe of the first key */
    const char *const *commitments; /* hex per key, or NULL */
    /* evidence */
    rp_file *files;
    size_t nfiles;
    const char *tok_name, *tok_path, *tok_sha256;
    uint64_t tok_size;
    const rp_file *aux;             /* other files the scan read: --filter, --accounts */
    const char *const *aux_role;
    size_t naux;
    /* results */
    const char *mode;
    double alpha;
    uint64_t documents, skipped, docs_watermarked, docs_span;
    uint64_t tokens, scored, duplicates, dropped;
    double statistic, z, log10_p, log10_p_corrected;
    const char *corpus_key_id, *verdict;
    rp_doc *docs;
    size_t ndocs;
    /* error rate */
    uint32_t ncontrols;
    const double *control_log10_p, *control_z; /* ncontrols each */
    rp_rate rates[RP_NRATES];
    uint64_t controls_at_least_as_extreme;
    double empirical_p;
    /* plots */
    const double *series_scored, *series_log10_p;
    size_t nseries;
    const double *control_doc_z;
    size_t ncontrol_doc_z;
    /* text */
    const char *const *method;
    size_t nmethod;
    const char *const *limitations;
    size_t nlimitations;
    const char *signer_fingerprint;
    const char *json_sha256; /* of report.json */
} rp_report;

/* Render the PDF into out.  0, or -1 (cairo failed; message in *why). */
int rp_pdf_render(const rp_report *r, rp_buf *out, const char **why);

#endif
