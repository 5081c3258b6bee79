/* input.h — the input layer of `tokmark scan`: files into records.
 *
 * Two stages, so that JSON parsing and tokenizing can run in worker threads:
 *
 *   stage 1, the reader (one thread): walks files, directories and standard
 *   input, decompresses .gz and .zst streaming (recognised by content), and
 *   cuts the bytes into raw units: a whole file, a line, a paragraph, or a
 *   JSON Lines record.  Bad input becomes an error event (tmi_error) and the
 *   reader moves on.
 *
 *   stage 2, the parser (one per worker thread, reused): a unit into a record,
 *   a list of segments (prompt context and scored text, or pre-tokenized ids).
 *   Plain text is validated as UTF-8; JSON is decoded by jansson, the
 *   validator of record for every error, with an exact fast path for the
 *   common case of one text field (README.md, "JSON library").
 *
 * Every unit and every error event names its source and line, so that a
 * scan can account for every non-blank line of its input.
 */
#ifndef TOKMARK_CLI_INPUT_H
#define TOKMARK_CLI_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* ---- options ---------------------------------------------------------- */

enum { TMI_FORMAT_AUTO = 0, TMI_FORMAT_TEXT = 1, TMI_FORMAT_JSONL = 2 };
enum { TMI_SPLIT_DOC = 0, TMI_SPLIT_LINES = 1, TMI_SPLIT_PARAGRAPHS = 2 };

#define TMI_DEFAULT_MAX_RECORD ((size_t)32 << 20)

typedef struct tmi_options {
    int format;       /* TMI_FORMAT_AUTO: by name, .jsonl/.ndjson/.json after removing
                         .gz/.zst -> JSONL, anything else (stdin too) -> TEXT */
    int split;        /* TEXT only: TMI_SPLIT_DOC (a file is one document, kept byte for
                         byte), TMI_SPLIT_LINES (each non-empty line, without "\n" or
                         "\r\n"), TMI_SPLIT_PARAGRAPHS (runs of non-blank lines separated by
                         blank lines -- lines of spaces/tabs only; the unit runs from the
                         first byte of its first line to the end of its last line, without
                         that line's "\n"/"\r\n") */
    size_t max_record; /* bytes; a longer unit is skipped (TMI_ERR_TOO_LONG) without being
                          buffered whole.  Default TMI_DEFAULT_MAX_RECORD (32 MiB) */
    /* JSON Lines record interpretation (stage 2) */
    const char *field;          /* text field path, dotted ("text", "a.b"); default "text" */
    const char *prompt_field;   /* prompt text path (prompt/answer pairs); NULL = none */
    const char *messages_field; /* chat turns [{"role":..,"content":..}]; default "messages" */
    const char *const *score_roles; /* roles whose turns are scored; default {"assistant"} */
    size_t n_score_roles;
    const char *ids_field;  /* pre-tokenized ids path; default "ids" */
    const char *pred_field; /* reading mode: top-1 predictions path; default NULL (off) */
} tmi_options;

/* The defaults above. */
void tmi_options_default(tmi_options *o);

/* ---- errors ----------------------------------------------------------- */

enum {
    TMI_ERR_IO = 0,        /* a file could not be opened or read */
    TMI_ERR_BINARY,        /* not text: NUL bytes or mostly control bytes at its start */
    TMI_ERR_TRUNCATED,     /* a .gz/.zst stream ends inside a member/frame */
    TMI_ERR_CORRUPT,       /* a .gz/.zst stream is damaged (bad data, checksum, garbage) */
    TMI_ERR_TOO_LONG,      /* a unit longer than max_record */
    TMI_ERR_BAD_JSON,      /* not JSON (jansson's message, with the byte and column) */
    TMI_ERR_NOT_OBJECT,    /* JSON, but not an object */
    TMI_ERR_MISSING_FIELD, /* none of field / messages_field / ids_field */
    TMI_ERR_WRONG_TYPE,    /* a field of the wrong type (text not a string, ...) */
    TMI_ERR_INVALID_UTF8,  /* ill-formed UTF-8 (the byte offset within the unit) */
    TMI_ERR_BAD_IDS,       /* ids/predictions not integers in 0..INT32_MAX, or lengths differ */
    TMI_ERR_NO_SCORED,     /* a chat record without any turn of a scored role */
    TMI_ERR_COUNT
};

typedef struct tmi_error {
    int kind;             /* TMI_ERR_* */
    char source[4096];    /* the file ("-" for standard input) */
    uint64_t line;        /* 1-based line where the bad unit starts; 0 for a whole file
                             that could not be opened */
    uint64_t index;       /* the unit number it would have had (0-based within the source) */
    char message[512];    /* e.g. "invalid UTF-8 at byte 17" */
} tmi_error;

/* A stable snake_case name ("io", "binary", "truncated", "corrupt", "too_long",
 * "bad_json", "not_object", "missing_field", "wrong_type", "invalid_utf8",
 * "bad_ids", "no_scored"); "unknown" otherwise. */
const char *tmi_error_name(int kind);

/* ---- stage 1: the reader ---------------------------------------------- */

typedef struct tmi_reader tmi_reader;

typedef struct tmi_unit {
    const char *source; /* path as given or walked ("-" = stdin); valid until the reader
                           is closed */
    uint64_t index;     /* 0-based unit number within the source (errors take numbers too) */
    uint64_t line;      /* 1-based line where the unit starts */
    uint64_t offset;    /* byte offset (decompressed) where it starts */
    const char *data;   /* the raw bytes; valid until the next tmi_reader_next */
    size_t len;
    int is_jsonl;       /* 1: a JSON Lines record; 0: plain text */
} tmi_unit;

/* paths: files, directories (walked recursively, entries in byte-wise sorted
 * order, regular files only; symbolic links are followed for paths given
 * here, not inside directories), "-" = standard input.  Nothing is opened
 * yet except directories (walked here; an unreadable directory becomes an
 * error event in its place).  Returns 0, or TOKMARK_ERR_INVALID /
 * TOKMARK_ERR_NOMEM. */
int tmi_reader_open(tmi_reader **out, const char *const *paths, size_t n, const tmi_options *o);

/* 1: *u holds the next unit; 0: end of all input; -1: *err holds a
 * non-fatal error event and the reader has moved past it:
 *   unreadable file -> the file is skipped;  binary file -> skipped;
 *   truncated/corrupt .gz/.zst -> the complete units before the damage were
 *     returned, then the error (line: where the cut unit starts), then the
 *     next file;
 *   unit longer than max_record -> that unit is skipped;
 *   I/O error mid-file -> the rest of the file is skipped.
 * Compression by content: 1f 8b = gzip (members concatenated; bytes after a
 * member that do not start another are TMI_ERR_CORRUPT), 28 b5 2f fd or a
 * skippable frame = zstd (frames concatenated; windows up to libzstd's
 * default limit, 128 MiB).  A stream damaged inside a unit loses that unit;
 * zstd checks a frame's checksum before handing out its last block, so a bad
 * checksum can lose the units of that block too.  Binary: a NUL byte, or
 * more than 10% control bytes, in the first 64 KiB (decompressed).  A UTF-8
 * byte order mark at the start of a JSON Lines file is skipped. */
int tmi_reader_next(tmi_reader *r, tmi_unit *u, tmi_error *err);

uint64_t tmi_reader_bytes_in(const tmi_reader *r);    /* input bytes consumed so far */
uint64_t tmi_reader_bytes_total(const tmi_reader *r); /* sum of the sizes of regular files
                                                         known so far (stdin, pipes: 0) */
uint64_t tmi_reader_skipped_entries(const tmi_reader *r); /* directory entries that are not
                                                         regular files or directories
                                                         (symlinks, FIFOs, ...), not read */
void tmi_reader_close(tmi_reader *r);

/* ---- stage 2: the parser ---------------------------------------------- */

typedef struct tmi_parser tmi_parser;

typedef struct tmi_segment {
    int score;          /* 1: scored (answer, scored-role turn, plain text); 0: prompt */
    const char *text;   /* valid UTF-8, or NULL when ids are given */
    size_t len;
    const int32_t *ids; /* pre-tokenized ids (text NULL), else NULL */
    size_t n_ids;
    const char *role;   /* chat: the turn's role; NULL otherwise */
} tmi_segment;

typedef struct tmi_record {
    tmi_segment *seg;   /* in input order */
    size_t nseg;
    const int32_t *pred; /* reading mode: predictions, one per id of the scored ids segment */
    size_t n_pred;
} tmi_record;

/* One parser per thread; o (and the strings it points to) must outlive it.
 * Returns 0, TOKMARK_ERR_INVALID or TOKMARK_ERR_NOMEM. */
int tmi_parser_create(tmi_parser **out, const tmi_options *o);

/* 0: *rec holds the record, valid until the next tmi_parse on p (it may point
 * into u->data, so u->data must stay valid as long as rec is used); -1: *err
 * filled (source, line and index from u).
 *
 * Plain text: one scored segment, the unit itself, if it is valid UTF-8.
 * JSON Lines, first match wins:
 *   pred_field set (reading mode): ids_field and pred_field must both be
 *     arrays of integers 0..INT32_MAX of equal length -> [prompt,] ids + pred;
 *   field present -> [prompt segment (score 0) when prompt_field is present,]
 *     the text (score 1); a non-string value is TMI_ERR_WRONG_TYPE;
 *   messages_field present -> one segment per turn that has a content (string,
 *     or an array of {"text": ..} parts, concatenated; null/absent: no
 *     segment), score 1 for roles in score_roles; a chat with no scored turn
 *     is an error event, TMI_ERR_NO_SCORED, not an empty record, so that the
 *     summary counts it as skipped (nothing silently dropped);
 *   ids_field present -> [prompt,] one scored ids segment;
 *   otherwise TMI_ERR_MISSING_FIELD.
 * Field paths are dotted ("a.b": key "b" of object "a"); a key that contains
 * "." cannot be named.  Duplicate keys: the last one counts (jansson). */
int tmi_parse(tmi_parser *p, const tmi_unit *u, tmi_record *rec, tmi_error *err);

void tmi_parser_free(tmi_parser *p);

/* Fast path counters (tests, benchmark): records decoded without jansson. */
uint64_t tmi_parser_fast_count(const tmi_parser *p);
/* Turn the fast path off (1) or on (0, default); for tests and the benchmark. */
void tmi_parser_set_fast(tmi_parser *p, int off);

/* Offset of the first byte of s[0..n) that starts an ill-formed UTF-8
 * sequence, or n when all is well-formed (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
size_t tmi_utf8_check(const char *s, size_t n);

#endif
