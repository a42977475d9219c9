/* event_parse.c - validate what the tracker sends (the POST /api/event JSON
 * body and the pixel's query string) into a struct raw_event.
 *
 * It must never echo input in a reason (reasons go back to the client as
 * the 400 body and are counted by text), never allocate, never recurse, and
 * never accept anything the schema does not allow for a known member.
 *
 * Why a hand-written JSON reader and not cJSON: the schema is flat (one
 * object; one nested object of scalars for props), so a strict reader is a
 * few hundred lines, and it is both faster and stricter than building a
 * cJSON tree: no allocation per member, numbers are checked as written (so
 * 1.0 and 1e3 are not integers and 2^53+1 is not silently rounded), keys
 * given twice are seen, and nesting is bounded by the grammar itself: a
 * prop value must be a scalar and an unknown member may nest one level of
 * scalars, so "[[[[..." is rejected at its second or third byte instead of
 * recursing. Everything else follows RFC 8259: strings must be valid UTF-8
 * (checked once up front), escapes are decoded, \u0000 and lone surrogates
 * are rejected, NaN/Infinity are not JSON.
 *
 * Decisions: "d" is lowercased and loses a leading "www." (Plausible does
 * the same); a comma-separated list of domains is not supported. Props
 * whose value is null or "" are dropped. In the pixel query, props are
 * "p.<key>=<value>" (not a JSON object: the pixel is for pages without
 * script, where building JSON is awkward). */
#include "event_parse.h"

#include "ctl_scan.h"
#include "url.h"
#include "util.h"

#include <string.h>

enum field_id { F_NAME, F_URL, F_DOMAIN, F_REFERRER, F_WIDTH, F_HASH, F_PROPS, F_SCROLL,
                F_ENGAGED, F_INTERACTIVE, F_UNKNOWN };

/* Canonical names, used in reasons (never the name the client sent). */
static const char *const field_names[] = {"n", "u", "d", "r", "w", "h", "p", "sd", "e", "i"};

static const char *const field_types[] = {
    "must be a string",  "must be a string", "must be a string",
    "must be a string",  "must be an integer", "must be 0, 1 or a boolean",
    "must be an object", "must be an integer", "must be an integer",
    "must be 0, 1 or a boolean",
};

/* Searched in order: the short names veil.js sends come first. */
#define KEY(k, id) {k, sizeof(k) - 1, id}
static const struct {
    const char *key;
    size_t len;
    enum field_id id;
} field_keys[] = {
    KEY("n", F_NAME),       KEY("u", F_URL),           KEY("d", F_DOMAIN),  KEY("r", F_REFERRER),
    KEY("w", F_WIDTH),      KEY("e", F_ENGAGED),       KEY("sd", F_SCROLL), KEY("p", F_PROPS),
    KEY("h", F_HASH),       KEY("name", F_NAME),       KEY("url", F_URL),   KEY("domain", F_DOMAIN),
    KEY("referrer", F_REFERRER), KEY("screen_width", F_WIDTH), KEY("props", F_PROPS),
    KEY("m", F_PROPS),      KEY("meta", F_PROPS),      KEY("i", F_INTERACTIVE),
    KEY("interactive", F_INTERACTIVE),
};

enum value_kind { V_NULL, V_TRUE, V_FALSE, V_STRING, V_NUMBER, V_TEXT /* query: untyped */ };

struct value {
    enum value_kind kind;
    const char *s;  /* decoded text (V_STRING, V_TEXT) or number as written */
    size_t len;     /* full decoded length, even when longer than the buffer */
    bool integer;   /* V_NUMBER without fraction or exponent */
};

/* Shared by both front ends: what has been seen, where it goes. */
struct ctx {
    struct raw_event *out;
    unsigned seen;          /* bit per enum field_id */
    char url_host[EV_HOST_MAX];
    char *reason;
    size_t reasonlen;
};

/* Big enough that any value longer than every limit is still measured. */
#define VALUE_BUF (EVENT_URL_MAX + 1)
#define KEY_BUF 80

static bool fail(struct ctx *c, const char *why)
{
    if (c->reason != NULL && c->reasonlen > 0)
        str_copy(c->reason, c->reasonlen, why, strnlen(why, c->reasonlen - 1));
    return false;
}

static bool fail_field(struct ctx *c, enum field_id id, const char *why)
{
    if (c->reason != NULL && c->reasonlen > 0 &&
        !str_format(c->reason, c->reasonlen, "%s: %s", field_names[id], why))
        return fail(c, why);
    return false;
}

static enum field_id field_lookup(const char *key, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(field_keys); i++)
        if (field_keys[i].len == len && field_keys[i].key[0] == key[0] &&
            memcmp(field_keys[i].key, key, len) == 0)
            return field_keys[i].id;
    return F_UNKNOWN;
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

static bool has_ctl(const char *s, size_t len)
{
    return ctl_scan(s, len, false);
}

/* ---- applying members (both front ends) --------------------------------- */

static bool mark_seen(struct ctx *c, enum field_id id)
{
    if (id == F_UNKNOWN)
        return true;
    if (c->seen & (1u << id)) {
        char why[32];
        str_format(why, sizeof why, "duplicate field %s", field_names[id]);
        return fail(c, why);
    }
    c->seen |= 1u << id;
    return true;
}

static bool is_text(const struct value *v)
{
    return v->kind == V_STRING || v->kind == V_TEXT;
}

static bool set_text(struct ctx *c, enum field_id id, char *dst, size_t dstsize,
                     const struct value *v)
{
    if (!is_text(v))
        return fail_field(c, id, field_types[id]);
    if (v->len == 0)
        return fail_field(c, id, "empty");
    if (v->len >= dstsize)
        return fail_field(c, id, "too long");
    if (has_ctl(v->s, v->len))
        return fail_field(c, id, "control character");
    memcpy(dst, v->s, v->len);
    dst[v->len] = '\0';
    return true;
}

/* A site id: ASCII-lowercased, without a leading "www." or a trailing dot;
 * letters, digits, '-', '.', '_' and UTF-8 (IDN) only. */
static bool domain_set(char dst[EV_SITE_MAX], const char *s, size_t len)
{
    if (len > 4 && str_has_prefix_ci(s, len, "www.")) {
        s += 4;
        len -= 4;
    }
    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len >= EV_SITE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                   ch == '.' || ch == '_' || ch >= 0x80))
            return false;
        dst[i] = (char)ch;
    }
    dst[len] = '\0';
    return true;
}

static bool is_integer_text(const char *s, size_t len)
{
    size_t i = len > 0 && s[0] == '-' ? 1 : 0;
    if (i == len)
        return false;
    for (; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool get_int(struct ctx *c, enum field_id id, const struct value *v, long long min,
                    long long max, long long *out)
{
    bool integer = (v->kind == V_NUMBER && v->integer) ||
                   (v->kind == V_TEXT && is_integer_text(v->s, v->len));
    if (!integer)
        return fail_field(c, id, field_types[id]);
    if (!safe_strtoll_n(v->s, v->len, min, max, out))
        return fail_field(c, id, "out of range");
    return true;
}

/* A flag field (h, i): a boolean, 0/1, or in a query "true"/"false". */
static bool get_flag(struct ctx *c, enum field_id id, const struct value *v, bool *out)
{
    const char *s = v->s;
    size_t n = v->len;
    switch (v->kind) {
    case V_FALSE:
        *out = false;
        return true;
    case V_TRUE:
        *out = true;
        return true;
    case V_NUMBER:
    case V_TEXT:
        if ((n == 1 && s[0] == '1') || (v->kind == V_TEXT && n == 4 && !memcmp(s, "true", 4))) {
            *out = true;
            return true;
        }
        if ((n == 1 && s[0] == '0') || (v->kind == V_TEXT && n == 5 && !memcmp(s, "false", 5))) {
            *out = false;
            return true;
        }
        break;
    case V_STRING:
    case V_NULL:
        break;
    }
    return fail_field(c, id, field_types[id]);
}

static bool set_hash_mode(struct ctx *c, const struct value *v)
{
    return get_flag(c, F_HASH, v, &c->out->hash_mode);
}

/* Apply one top-level member's scalar value. */
static bool apply_value(struct ctx *c, enum field_id id, struct value *v)
{
    struct raw_event *out = c->out;
    long long num;

    if (!mark_seen(c, id))
        return false;
    /* null means absent for every optional member; in the query every
     * value is text, and an empty one means absent too. */
    if (id != F_NAME && id != F_URL &&
        (v->kind == V_NULL || (v->kind == V_TEXT && v->len == 0)))
        return true;

    switch (id) {
    case F_NAME:
        return set_text(c, id, out->name, sizeof out->name, v);
    case F_URL:
        if (!set_text(c, id, out->url, sizeof out->url, v))
            return false;
        if (!url_host(out->url, v->len, c->url_host))
            return fail_field(c, id, "not an http(s) URL");
        return true;
    case F_DOMAIN:
        if (!is_text(v))
            return fail_field(c, id, field_types[id]);
        if (v->len == 0)
            return fail_field(c, id, "empty");
        if (v->len >= EV_SITE_MAX)
            return fail_field(c, id, "too long");
        if (!domain_set(out->domain, v->s, v->len))
            return fail_field(c, id, "not a domain");
        return true;
    case F_REFERRER:
        if (!is_text(v))
            return fail_field(c, id, field_types[id]);
        if (v->len == 0)
            return true;
        return set_text(c, id, out->referrer, sizeof out->referrer, v);
    case F_WIDTH:
        if (!get_int(c, id, v, 0, EVENT_SCREEN_MAX, &num))
            return false;
        out->screen_width = (long)num;
        return true;
    case F_HASH:
        return set_hash_mode(c, v);
    case F_PROPS:
        return fail_field(c, id, field_types[id]);
    case F_SCROLL:
        if (!get_int(c, id, v, 0, 100, &num))
            return false;
        out->scroll_depth = (int)num;
        return true;
    case F_ENGAGED:
        if (!get_int(c, id, v, 0, EVENT_ENGAGED_MAX, &num))
            return false;
        out->engaged_ms = num;
        return true;
    case F_INTERACTIVE:
        if (v->kind == V_NULL)
            return true;
        return get_flag(c, id, v, &out->interactive);
    case F_UNKNOWN:
        break;
    }
    return true;
}

/* Add one prop. null and "" values are dropped (after the key is checked). */
static bool add_prop(struct ctx *c, const char *key, size_t klen, const struct value *v)
{
    struct raw_event *out = c->out;
    if (klen == 0)
        return fail(c, "p: empty key");
    if (klen >= EV_PROP_KEY_MAX)
        return fail(c, "p: key too long");
    if (has_ctl(key, klen))
        return fail(c, "p: control character in key");

    const char *text = v->s;
    size_t tlen = v->len;
    switch (v->kind) {
    case V_NULL:
        return true;
    case V_TRUE:
        text = "true";
        tlen = 4;
        break;
    case V_FALSE:
        text = "false";
        tlen = 5;
        break;
    case V_STRING:
    case V_TEXT:
    case V_NUMBER:
        break;
    }
    if (tlen == 0)
        return true;
    if (tlen >= EV_PROP_VAL_MAX)
        return fail(c, "p: value too long");
    if (has_ctl(text, tlen))
        return fail(c, "p: control character in value");
    for (size_t i = 0; i < out->nprops; i++)
        if (strlen(out->props[i].key) == klen && memcmp(out->props[i].key, key, klen) == 0)
            return fail(c, "p: duplicate key");
    if (out->nprops >= EV_PROPS_MAX)
        return fail(c, "p: too many props");

    struct event_prop *prop = &out->props[out->nprops++];
    memcpy(prop->key, key, klen);
    prop->key[klen] = '\0';
    memcpy(prop->value, text, tlen);
    prop->value[tlen] = '\0';
    return true;
}

static void raw_event_reset(struct raw_event *out)
{
    /* Only what is read back: the buffers are large and rewritten anyway. */
    out->name[0] = '\0';
    out->url[0] = '\0';
    out->domain[0] = '\0';
    out->referrer[0] = '\0';
    out->screen_width = -1;
    out->hash_mode = false;
    out->scroll_depth = -1;
    out->engaged_ms = -1;
    out->interactive = true;
    out->nprops = 0;
}

static bool finish(struct ctx *c)
{
    if (!(c->seen & (1u << F_NAME)))
        return fail(c, "missing field n");
    if (!(c->seen & (1u << F_URL)))
        return fail(c, "missing field u");
    if (c->out->domain[0] == '\0' &&
        !domain_set(c->out->domain, c->url_host, strlen(c->url_host)))
        return fail(c, "missing field d");
    return true;
}

/* ---- JSON -------------------------------------------------------------- */

struct json {
    const char *p, *end;
};

static void json_ws(struct json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool json_peek(const struct json *j, char ch)
{
    return j->p < j->end && *j->p == ch;
}

static int json_hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = s[i];
        int d = (ch >= '0' && ch <= '9')   ? ch - '0'
                : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
                : (ch >= 'A' && ch <= 'F') ? ch - 'A' + 10
                                           : -1;
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

/* Read a string at j->p (on its opening quote), decoding into dst[0..cap)
 * (dst may be NULL with cap 0 to validate only). *len gets the full decoded
 * length. The body is already known to be valid UTF-8. */
static bool json_string(struct json *j, struct ctx *c, char *dst, size_t cap, size_t *len)
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
            return fail(c, "invalid JSON");
        if (ch != '\\') {
            /* a local cursor: stores into dst could alias j->p */
            const char *run = j->p, *q = json_plain_run(j->p, j->end);
            j->p = q;
            put_bytes(dst, cap, &n, run, (size_t)(q - run));
            continue;
        }
        if (j->end - j->p < 2)
            return fail(c, "invalid JSON");
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
                return fail(c, "invalid JSON");
            j->p += 4;
            if (cp == 0)
                return fail(c, "NUL in string");
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(c, "invalid JSON");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u'
                             ? json_hex4(j->p + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(c, "invalid JSON");
                j->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            char utf8[4];
            size_t k = utf8_encode((unsigned)cp, utf8);
            put_bytes(dst, cap, &n, utf8, k);
            continue;
        }
        default:
            return fail(c, "invalid JSON");
        }
        put_bytes(dst, cap, &n, &out, 1);
    }
    return fail(c, "invalid JSON");
}

static bool json_digits(struct json *j)
{
    const char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  NaN/Infinity are not JSON. */
static bool json_number(struct json *j, struct ctx *c, struct value *v)
{
    const char *start = j->p;
    if (json_peek(j, '-'))
        j->p++;
    if (json_peek(j, '0'))
        j->p++;
    else if (!json_digits(j))
        return fail(c, "invalid JSON");
    v->integer = true;
    if (json_peek(j, '.')) {
        j->p++;
        if (!json_digits(j))
            return fail(c, "invalid JSON");
        v->integer = false;
    }
    if (json_peek(j, 'e') || json_peek(j, 'E')) {
        j->p++;
        if (json_peek(j, '+') || json_peek(j, '-'))
            j->p++;
        if (!json_digits(j))
            return fail(c, "invalid JSON");
        v->integer = false;
    }
    v->kind = V_NUMBER;
    v->s = start;
    v->len = (size_t)(j->p - start);
    return true;
}

static bool json_literal(struct json *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return false;
    j->p += n;
    return true;
}

/* A scalar at j->p; strings decode into buf[0..cap). Containers are the
 * caller's business. */
static bool json_scalar(struct json *j, struct ctx *c, struct value *v, char *buf, size_t cap)
{
    if (j->p >= j->end)
        return fail(c, "invalid JSON");
    switch (*j->p) {
    case '"':
        v->kind = V_STRING;
        v->s = buf;
        return json_string(j, c, buf, cap, &v->len);
    case 't':
        v->kind = V_TRUE;
        return json_literal(j, "true") || fail(c, "invalid JSON");
    case 'f':
        v->kind = V_FALSE;
        return json_literal(j, "false") || fail(c, "invalid JSON");
    case 'n':
        v->kind = V_NULL;
        return json_literal(j, "null") || fail(c, "invalid JSON");
    default:
        return json_number(j, c, v);
    }
}

/* After a member: ',' (more follow) or the closing bracket. */
static bool json_next(struct json *j, struct ctx *c, char close, bool *more)
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
    return fail(c, "invalid JSON");
}

/* A member's key and the ':' after it; the key decodes into key[0..cap). */
static bool json_key(struct json *j, struct ctx *c, char *key, size_t cap, size_t *klen)
{
    if (!json_peek(j, '"') || !json_string(j, c, key, cap, klen))
        return fail(c, "invalid JSON");
    json_ws(j);
    if (!json_peek(j, ':'))
        return fail(c, "invalid JSON");
    j->p++;
    json_ws(j);
    return true;
}

static bool json_is_container(const struct json *j)
{
    return json_peek(j, '{') || json_peek(j, '[');
}

/* Skip an unknown member's array or object: scalars only inside. */
static bool json_skip_container(struct json *j, struct ctx *c)
{
    char close = *j->p == '{' ? '}' : ']';
    bool more = true;
    j->p++;
    json_ws(j);
    if (json_peek(j, close)) {
        j->p++;
        return true;
    }
    while (more) {
        struct value v;
        size_t klen;
        if (close == '}' && !json_key(j, c, NULL, 0, &klen))
            return false;
        if (json_is_container(j))
            return fail(c, "nesting too deep");
        if (!json_scalar(j, c, &v, NULL, 0) || !json_next(j, c, close, &more))
            return false;
    }
    return true;
}

static bool json_props(struct json *j, struct ctx *c, char *buf)
{
    size_t members = 0;
    bool more = true;
    j->p++;
    json_ws(j);
    if (json_peek(j, '}')) {
        j->p++;
        return true;
    }
    while (more) {
        char key[KEY_BUF];
        size_t klen;
        struct value v;
        if (++members > EVENT_FIELDS_MAX)
            return fail(c, "p: too many props");
        if (!json_key(j, c, key, sizeof key, &klen))
            return false;
        if (json_is_container(j))
            return fail(c, "p: values must be scalars");
        if (!json_scalar(j, c, &v, buf, VALUE_BUF) || !add_prop(c, key, klen, &v) ||
            !json_next(j, c, '}', &more))
            return false;
    }
    return true;
}

static bool json_member(struct json *j, struct ctx *c, char *buf)
{
    char key[KEY_BUF];
    size_t klen;
    struct value v;

    if (!json_key(j, c, key, sizeof key, &klen))
        return false;
    enum field_id id = klen <= sizeof key ? field_lookup(key, klen) : F_UNKNOWN;
    if (json_is_container(j)) {
        if (id == F_UNKNOWN)
            return json_skip_container(j, c);
        if (!mark_seen(c, id))
            return false;
        if (id == F_PROPS && json_peek(j, '{'))
            return json_props(j, c, buf);
        return fail_field(c, id, field_types[id]);
    }
    if (!json_scalar(j, c, &v, buf, VALUE_BUF))
        return false;
    return apply_value(c, id, &v);
}

bool event_parse_json(const char *body, size_t len, struct raw_event *out, char *reason,
                      size_t reasonlen)
{
    struct ctx c = {out, 0, {0}, reason, reasonlen};
    struct json j = {body, body + len};
    char buf[VALUE_BUF];
    size_t members = 0;
    bool more = true;

    raw_event_reset(out);
    if (len == 0)
        return fail(&c, "empty body");
    if (!ascii_without_nul(body, len) && !utf8_valid(body, len))
        return fail(&c, memchr(body, '\0', len) ? "NUL byte in body" : "invalid UTF-8");
    json_ws(&j);
    if (!json_peek(&j, '{'))
        return fail(&c, j.p == j.end ? "empty body" : "body is not a JSON object");
    j.p++;
    json_ws(&j);
    if (json_peek(&j, '}')) {
        j.p++;
        more = false;
    }
    while (more) {
        if (++members > EVENT_FIELDS_MAX)
            return fail(&c, "too many fields");
        if (!json_member(&j, &c, buf) || !json_next(&j, &c, '}', &more))
            return false;
    }
    json_ws(&j);
    if (j.p != j.end)
        return fail(&c, "invalid JSON");
    return finish(&c);
}

/* ---- pixel query ------------------------------------------------------- */

/* Decode a query value into buf; a value that does not fit is too long for
 * every member. Returns false with the reason set. */
static bool query_value(struct ctx *c, const char *s, size_t len, char *buf, struct value *v,
                        const char *too_long)
{
    bool full;
    long n = url_decode(s, len, buf, VALUE_BUF, &full);
    if (n < 0)
        return fail(c, "bad percent-encoding");
    if (full)
        return fail(c, too_long);
    if (!utf8_valid(buf, (size_t)n))
        return fail(c, memchr(buf, '\0', (size_t)n) ? "NUL byte in query" : "invalid UTF-8");
    v->kind = V_TEXT;
    v->s = buf;
    v->len = (size_t)n;
    return true;
}

static bool query_param(struct ctx *c, const char *param, size_t len, char *buf)
{
    const char *eq = memchr(param, '=', len);
    size_t name_len = eq ? (size_t)(eq - param) : len;
    const char *raw_value = eq ? eq + 1 : param + len;
    size_t raw_len = eq ? len - name_len - 1 : 0;
    char name[KEY_BUF];
    struct value v;
    bool full;

    long n = url_decode(param, name_len, name, sizeof name, &full);
    if (n < 0)
        return fail(c, "bad percent-encoding");
    if (!utf8_valid(name, (size_t)n))
        return fail(c, memchr(name, '\0', (size_t)n) ? "NUL byte in query" : "invalid UTF-8");
    if (n >= 2 && name[0] == 'p' && name[1] == '.') {
        if (full)
            return fail(c, "p: key too long");
        return query_value(c, raw_value, raw_len, buf, &v, "p: value too long") &&
               add_prop(c, name + 2, (size_t)n - 2, &v);
    }
    enum field_id id = full ? F_UNKNOWN : field_lookup(name, (size_t)n);
    if (id == F_UNKNOWN)
        return true;
    if (id == F_PROPS)
        return fail(c, "p: expected p.<key>=<value>");
    char too_long[16];
    str_format(too_long, sizeof too_long, "%s: too long", field_names[id]);
    return query_value(c, raw_value, raw_len, buf, &v, too_long) && apply_value(c, id, &v);
}

bool event_parse_query(const char *query, size_t len, struct raw_event *out, char *reason,
                       size_t reasonlen)
{
    struct ctx c = {out, 0, {0}, reason, reasonlen};
    char buf[VALUE_BUF];
    size_t params = 0;

    raw_event_reset(out);
    if (len == 0)
        return fail(&c, "empty query");
    const char *p = query, *end = query + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *param_end = amp ? amp : end;
        if (param_end > p) {
            if (++params > EVENT_FIELDS_MAX)
                return fail(&c, "too many fields");
            if (!query_param(&c, p, (size_t)(param_end - p), buf))
                return false;
        }
        p = param_end + 1;
    }
    return finish(&c);
}
