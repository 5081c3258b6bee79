/* error.c — error names and messages, version strings. */
#include "internal.h"

const char *tokmark_version_string(void) {
    return TOKMARK_VERSION_STRING;
}

const char *tokmark_spec_version(void) {
    return TOKMARK_SPEC_VERSION;
}

const char *tokmark_error_name(int code) {
    switch (code) {
    case TOKMARK_OK: return "TOKMARK_OK";
    case TOKMARK_ERR_INVALID: return "TOKMARK_ERR_INVALID";
    case TOKMARK_ERR_NOMEM: return "TOKMARK_ERR_NOMEM";
    case TOKMARK_ERR_IO: return "TOKMARK_ERR_IO";
    case TOKMARK_ERR_FORMAT: return "TOKMARK_ERR_FORMAT";
    case TOKMARK_ERR_PERMISSIONS: return "TOKMARK_ERR_PERMISSIONS";
    case TOKMARK_ERR_CRYPTO: return "TOKMARK_ERR_CRYPTO";
    case TOKMARK_ERR_UNSUPPORTED: return "TOKMARK_ERR_UNSUPPORTED";
    case TOKMARK_ERR_NOT_FOUND: return "TOKMARK_ERR_NOT_FOUND";
    case TOKMARK_ERR_EXISTS: return "TOKMARK_ERR_EXISTS";
    case TOKMARK_ERR_TOO_SHORT: return "TOKMARK_ERR_TOO_SHORT";
    case TOKMARK_ERR_MISMATCH: return "TOKMARK_ERR_MISMATCH";
    }
    return "unknown";
}

const char *tokmark_error_message(int code) {
    switch (code) {
    case TOKMARK_OK: return "success";
    case TOKMARK_ERR_INVALID: return "an argument or parameter is out of range";
    case TOKMARK_ERR_NOMEM: return "out of memory";
    case TOKMARK_ERR_IO: return "a file could not be read or written";
    case TOKMARK_ERR_FORMAT: return "the file is not in the expected format";
    case TOKMARK_ERR_PERMISSIONS: return "the key file is readable by group or others";
    case TOKMARK_ERR_CRYPTO: return "a cryptographic library call failed";
    case TOKMARK_ERR_UNSUPPORTED: return "not supported by this build or machine";
    case TOKMARK_ERR_NOT_FOUND: return "no such key, account or item";
    case TOKMARK_ERR_EXISTS: return "the file exists already; refusing to overwrite it";
    case TOKMARK_ERR_TOO_SHORT: return "too few tokens to score";
    case TOKMARK_ERR_MISMATCH: return "made with other keys or parameters";
    }
    return "unknown error";
}
