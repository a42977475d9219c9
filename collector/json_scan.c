/* json_scan.c - the strict, flat JSON reader (json_scan.h).
 *
 * Must never allocate, recurse, or put input in a reason. Follows RFC
 * 8259: strings are valid UTF-8 (checked once up front by the caller through
 * json_body_ok), escapes are decoded, \u0000 and lone surrogates are
 * refused, NaN/Infinity are not JSON, numbers are checked as written (so a
 * reader can tell 1 from 1.0 and 1e3). Nesting is bounded by the readers'
 * grammars: json_skip_container holds scalars only. */
#include "json_scan.h"

#include <stdint.h>
#include <string.h>

#include "util.h"

bool json_fail(struct json_cursor *j, const char *why)
{
    if (j->reason != NULL && j->reasonlen > 0)
        str_copy(j->reason, j->reasonlen, why, strnlen(why, j->reasonlen - 1));
    return false;
}

/* True when s[0..len) is ASCII without NUL, the common case, checked a
 * word at a time; anything else goes through utf8_valid. */
static bool ascii_without_nul(const char *s, size_t len)
{
    const uint64_t high = 0x8080808080808080ULL, ones = 0x0101010101010101ULL;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if ((w & high) != 0 || ((w - ones) & ~w & high) != 0)
            return false;
    }
    for (; i < len; i++)
        if ((unsigned char)s[i] - 1u >= 0x7fu)
            return false;
    return true;
}

bool json_body_ok(struct json_cursor *j, const char *s, size_t len)
{
    if (ascii_without_nul(s, len) || utf8_valid(s, len))
        return true;
    return json_fail(j, memchr(s, '\0', len) ? "NUL byte in body" : "invalid UTF-8");
}

static int json_hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit_value(s[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Append one decoded byte run; bytes past `cap` are only counted. */
static void put_bytes(char *dst, size_t cap, size_t *n, const char *bytes, size_t len)
{
    if (*n < cap)
        memcpy(dst + *n, bytes, len < cap - *n ? len : cap - *n);
    *n += len;
}

/* UTF-8 for a code point below U+110000 that is not a surrogate. */
static size_t utf8_encode(unsigned cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    size_t k = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t i = k - 1; i > 0; i--, cp >>= 6)
        out[i] = (char)(0x80 | (cp & 0x3F));
    out[0] = (char)(lead[k] | cp);
    return k;
}

/* The end of the run of bytes at q that stand for themselves in a JSON
 * string: the first '"', '\\' or byte below 0x20, or `end`. A word at a time
 * (a string is mostly one such run), with exact per-word tests: a byte
 * below 0x20, a zero byte of w ^ '"' or of w ^ '\\'. */
static const char *json_plain_run(const char *q, const char *end)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    while (end - q >= 8) {
        uint64_t w;
        memcpy(&w, q, 8);
        uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
        if ((((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) |
             ((backslash - ones) & ~backslash)) & high)
            break;
        q += 8;
    }
    while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
        q++;
    return q;
}

bool json_string(struct json_cursor *j, char *dst, size_t cap, size_t *len)
{
    size_t n = 0;
    j->p++;
    while (j->p < j->end) {
        unsigned char ch = (unsigned char)*j->p;
        if (ch == '"') {
            j->p++;
            *len = n;
            return true;
        }
        if (ch < 0x20)
            return json_fail(j, "invalid JSON");
        if (ch != '\\') {
            /* a local cursor: stores into dst could alias j->p */
            const char *run = j->p, *q = json_plain_run(j->p, j->end);
            j->p = q;
            put_bytes(dst, cap, &n, run, (size_t)(q - run));
            continue;
        }
        if (j->end - j->p < 2)
            return json_fail(j, "invalid JSON");
        char esc = j->p[1];
        j->p += 2;
        char out;
        switch (esc) {
        case '"': out = '"'; break;
        case '\\': out = '\\'; break;
        case '/': out = '/'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'u': {
            int cp = j->end - j->p >= 4 ? json_hex4(j->p) : -1;
            if (cp < 0)
                return json_fail(j, "invalid JSON");
            j->p += 4;
            if (cp == 0)
                return json_fail(j, "NUL in string");
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return json_fail(j, "invalid JSON");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u'
                             ? json_hex4(j->p + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return json_fail(j, "invalid JSON");
                j->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            char utf8[4];
            size_t k = utf8_encode((unsigned)cp, utf8);
            put_bytes(dst, cap, &n, utf8, k);
            continue;
        }
        default:
            return json_fail(j, "invalid JSON");
        }
        put_bytes(dst, cap, &n, &out, 1);
    }
    return json_fail(j, "invalid JSON");
}

static bool json_digits(struct json_cursor *j)
{
    const char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  NaN/Infinity are not JSON. */
static bool json_number(struct json_cursor *j, struct json_value *v)
{
    const char *start = j->p;
    if (json_peek(j, '-'))
        j->p++;
    if (json_peek(j, '0'))
        j->p++;
    else if (!json_digits(j))
        return json_fail(j, "invalid JSON");
    v->integer = true;
    if (json_peek(j, '.')) {
        j->p++;
        if (!json_digits(j))
            return json_fail(j, "invalid JSON");
        v->integer = false;
    }
    if (json_peek(j, 'e') || json_peek(j, 'E')) {
        j->p++;
        if (json_peek(j, '+') || json_peek(j, '-'))
            j->p++;
        if (!json_digits(j))
            return json_fail(j, "invalid JSON");
        v->integer = false;
    }
    v->kind = JSON_NUMBER;
    v->s = start;
    v->len = (size_t)(j->p - start);
    return true;
}

static bool json_literal(struct json_cursor *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return json_fail(j, "invalid JSON");
    j->p += n;
    return true;
}

bool json_scalar(struct json_cursor *j, struct json_value *v, char *buf, size_t cap)
{
    if (j->p >= j->end)
        return json_fail(j, "invalid JSON");
    v->s = "";
    v->len = 0;
    v->integer = false;
    switch (*j->p) {
    case '"':
        v->kind = JSON_STRING;
        v->s = buf;
        return json_string(j, buf, cap, &v->len);
    case 't':
        v->kind = JSON_TRUE;
        return json_literal(j, "true");
    case 'f':
        v->kind = JSON_FALSE;
        return json_literal(j, "false");
    case 'n':
        v->kind = JSON_NULL;
        return json_literal(j, "null");
    default:
        return json_number(j, v);
    }
}

bool json_next(struct json_cursor *j, char close, bool *more)
{
    json_ws(j);
    if (json_peek(j, ',')) {
        j->p++;
        json_ws(j);
        *more = true;
        return true;
    }
    if (json_peek(j, close)) {
        j->p++;
        *more = false;
        return true;
    }
    return json_fail(j, "invalid JSON");
}

bool json_key(struct json_cursor *j, char *key, size_t cap, size_t *klen)
{
    if (!json_peek(j, '"') || !json_string(j, key, cap, klen))
        return json_fail(j, "invalid JSON");
    json_ws(j);
    if (!json_peek(j, ':'))
        return json_fail(j, "invalid JSON");
    j->p++;
    json_ws(j);
    return true;
}

bool json_open(struct json_cursor *j, char open, bool *more)
{
    if (!json_peek(j, open))
        return json_fail(j, "invalid JSON");
    j->p++;
    json_ws(j);
    *more = !json_peek(j, open == '{' ? '}' : ']');
    if (!*more)
        j->p++;
    return true;
}

bool json_skip_container(struct json_cursor *j)
{
    char close = *j->p == '{' ? '}' : ']';
    bool more;
    if (!json_open(j, *j->p, &more))
        return false;
    while (more) {
        struct json_value v;
        size_t klen;
        if (close == '}' && !json_key(j, NULL, 0, &klen))
            return false;
        if (json_is_container(j))
            return json_fail(j, "nesting too deep");
        if (!json_scalar(j, &v, NULL, 0) || !json_next(j, close, &more))
            return false;
    }
    return true;
}

bool json_at_end(struct json_cursor *j)
{
    json_ws(j);
    return j->p == j->end || json_fail(j, "invalid JSON");
}
