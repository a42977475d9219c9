/* json_scan.h - a strict, flat JSON reader for the collector's request
 * bodies (event_parse.c, compat_umami.c, compat_matomo.c): one token at a
 * time, no tree, no allocation, no recursion.
 *
 * The readers built on it decide the schema; this module only reads RFC
 * 8259 tokens. It never quotes input in a reason: every reason is a fixed
 * text ("invalid JSON", "NUL in string", "nesting too deep"). */
#ifndef VEIL_JSON_SCAN_H
#define VEIL_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

/* A scalar value. JSON_TEXT is not JSON: it is untyped text (a query-string
 * value) for readers that accept both forms of one schema. */
enum json_kind { JSON_NULL, JSON_TRUE, JSON_FALSE, JSON_STRING, JSON_NUMBER, JSON_TEXT };

struct json_value {
    enum json_kind kind;
    const char *s;  /* decoded text (JSON_STRING, JSON_TEXT) or the number as written */
    size_t len;     /* full decoded length, even when longer than the buffer */
    bool integer;   /* JSON_NUMBER without fraction or exponent */
};

/* Where reading stands in body[0..len) and where a failure's reason goes. */
struct json_cursor {
    const char *p, *end;
    char *reason;
    size_t reasonlen;
};

/* Write `why` (a fixed text) as the reason; returns false. */
bool json_fail(struct json_cursor *j, const char *why);

/* True when s[0..len) is valid UTF-8 without NUL bytes. Otherwise false
 * with "NUL byte in body" or "invalid UTF-8" as the reason. */
bool json_body_ok(struct json_cursor *j, const char *s, size_t len);

/* Skip whitespace; look at the next byte. Inline: called per token. */
static inline void json_ws(struct json_cursor *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static inline bool json_peek(const struct json_cursor *j, char ch)
{
    return j->p < j->end && *j->p == ch;
}

static inline bool json_is_container(const struct json_cursor *j)
{
    return json_peek(j, '{') || json_peek(j, '[');
}

/* Read a string at j->p (on its opening quote), decoding into dst[0..cap)
 * (dst may be NULL with cap 0 to validate only); *len gets the full decoded
 * length, bytes past cap are counted, not stored. The text must already be
 * known to be valid UTF-8. \u0000 and lone surrogates are refused. */
bool json_string(struct json_cursor *j, char *dst, size_t cap, size_t *len);

/* A scalar at j->p; strings decode into buf[0..cap). Containers are the
 * caller's business (false with "invalid JSON"). */
bool json_scalar(struct json_cursor *j, struct json_value *v, char *buf, size_t cap);

/* A member's key and the ':' after it (whitespace around skipped); the key
 * decodes into key[0..cap). */
bool json_key(struct json_cursor *j, char *key, size_t cap, size_t *klen);

/* After a member or element: ',' (*more = true) or `close` (*more = false). */
bool json_next(struct json_cursor *j, char close, bool *more);

/* On '{' or '[': step in; *more is false when it is empty (and then the
 * closing bracket is consumed too). */
bool json_open(struct json_cursor *j, char open, bool *more);

/* Skip the array or object at j->p, which may hold scalars only (deeper
 * nesting: "nesting too deep"). */
bool json_skip_container(struct json_cursor *j);

/* Only whitespace is left. */
bool json_at_end(struct json_cursor *j);

#endif
