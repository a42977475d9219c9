/* httpd_parse.c - HTTP/1.x request parsing in place on llhttp
 * (httpd_parse.h).
 *
 * llhttp does the grammar: request line, header syntax, Content-Length
 * and chunked framing, conflicting or repeated lengths (request smuggling),
 * keep-alive rules. This file adds what it leaves to its user: spans of the
 * caller's buffer for the target, the headers the collector reads and the
 * body; the limits; strictness where llhttp's default (non-strict) mode is
 * lenient (control characters in the target or in a header the collector
 * reads, obsolete line folding) and a second check where a proxy in front
 * may disagree (a space in a header name). Never stores a pointer to the
 * caller's bytes past one httpd_parse call (only offsets), and never
 * logs. */
#include "httpd_parse.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl_scan.h"
#include "util.h"

enum { REPEAT_XFF, REPEAT_FORWARDED };

static struct httpd_parser *parser_of(llhttp_t *hp)
{
    return hp->data;
}

/* Record the first error; returning -1 stops llhttp (HPE_USER). */
static int fail(struct httpd_parser *p, int status, const char *reason)
{
    if (!p->error_status) {
        p->error_status = status;
        p->error_reason = reason;
    }
    return -1;
}

/* Extend span `s` by a piece at `off`. Pieces of one element are
 * contiguous in the buffer (a read boundary splits them, nothing else);
 * a gap means obsolete line folding. Returns false on a gap. */
static bool span_extend(struct httpd_span *s, size_t off, size_t len)
{
    if (len == 0)
        return true;
    if (s->len == 0) {
        s->off = (uint32_t)off;
        s->len = (uint32_t)len;
        return true;
    }
    if ((size_t)s->off + s->len != off)
        return false;
    s->len += (uint32_t)len;
    return true;
}

/* A piece of the head: it must end within max_header_bytes. */
static int head_piece(struct httpd_parser *p, struct httpd_span *s, const char *at, size_t len)
{
    size_t off = (size_t)(at - p->base);
    if (off + len > p->max_header_bytes)
        return fail(p, 431, "header block too large");
    if (!span_extend(s, off, len))
        return fail(p, 400, "obsolete line folding");
    return 0;
}

/* Which header the collector reads `name` is, or -1. Called for every
 * header of every request, most of them ones it skips: the wanted names
 * all differ in length, so the length picks the one candidate and a first
 * letter mismatch (sec-ch-ua vs forwarded, Accept vs Expect, Referer vs
 * Sec-GPC, Accept-Language vs X-Forwarded-For) settles most others. */
static int classify(const char *name, size_t len)
{
    static const struct {
        const char *name; /* lower case; NULL: no header of that length is read */
        enum httpd_header h;
    } by_len[] = {
        [3] = {"dnt", HTTPD_H_DNT},
        [6] = {"expect", HTTPD_H_EXPECT},
        [7] = {"sec-gpc", HTTPD_H_SEC_GPC},
        [9] = {"forwarded", HTTPD_H_FORWARDED},
        [10] = {"user-agent", HTTPD_H_USER_AGENT},
        [12] = {"content-type", HTTPD_H_CONTENT_TYPE},
        [13] = {"if-none-match", HTTPD_H_IF_NONE_MATCH},
        [15] = {"x-forwarded-for", HTTPD_H_X_FORWARDED_FOR},
    };
    if (len == 9 && (name[0] | 0x20) == 'x')
        return strncasecmp(name, "x-real-ip", 9) == 0 ? HTTPD_H_X_REAL_IP : -1;
    if (len >= ARRAY_LEN(by_len) || !by_len[len].name)
        return -1;
    const char *want = by_len[len].name;
    /* c | 0x20 folds exactly the two cases of a letter onto its lower case */
    if ((name[0] | 0x20) != want[0] || strncasecmp(name, want, len) != 0)
        return -1;
    return (int)by_len[len].h;
}

/* The field span holds a whole name: check it, say which header it is. */
static int field_done(struct httpd_parser *p)
{
    p->last = LAST_VALUE;
    p->current = -1;
    if (p->field.len == 0)
        return 0;
    const char *name = p->base + p->field.off;
    /* A space in a name ("Content-Length :") is read otherwise by some
     * proxies: refuse it whatever the parser's mode. */
    if (memchr(name, ' ', p->field.len))
        return fail(p, 400, "malformed header");
    p->current = classify(name, p->field.len);
    return 0;
}

/* Control characters (HTAB aside), which the non-strict mode lets into
 * values: a NUL would cut a header the collector reads (a forged
 * X-Forwarded-For entry could hide what a proxy appended). */
static bool has_ctl(const char *s, size_t len)
{
    return ctl_scan(s, len, true);
}

/* The field and value spans hold one complete header: keep it if wanted. */
static int finish_header(struct httpd_parser *p)
{
    if (p->last == LAST_FIELD && field_done(p) != 0)
        return -1;
    int h = p->current;
    struct httpd_span value = p->value;
    p->field = (struct httpd_span){0, 0};
    p->value = (struct httpd_span){0, 0};
    p->last = LAST_NONE;
    p->current = -1;
    if (h < 0)
        return 0;
    while (value.len > 0 && (p->base[value.off + value.len - 1] == ' ' ||
                             p->base[value.off + value.len - 1] == '\t'))
        value.len--;
    if (h == HTTPD_H_X_FORWARDED_FOR || h == HTTPD_H_FORWARDED) {
        int r = h == HTTPD_H_X_FORWARDED_FOR ? REPEAT_XFF : REPEAT_FORWARDED;
        if (p->nrepeat[r] == HTTPD_REPEAT_MAX)
            return fail(p, 400, "too many forwarding headers");
        p->repeat[r][p->nrepeat[r]++] = value;
    }
    if (h == HTTPD_H_X_REAL_IP && p->header_seen[h]) {
        /* One address per request: which line the proxy wrote is unknown. */
        p->header[h].len = 0;
        return 0;
    }
    if (!p->header_seen[h]) { /* the first of a repeated header counts */
        p->header_seen[h] = true;
        p->header[h] = value;
    }
    return 0;
}

static int on_message_begin(llhttp_t *hp)
{
    struct httpd_parser *p = parser_of(hp);
    p->in_body = false;
    p->done = false;
    p->expect_continue = false;
    p->last = LAST_NONE;
    p->current = -1;
    p->url = p->field = p->value = p->body = (struct httpd_span){0, 0};
    memset(p->header_seen, 0, sizeof p->header_seen);
    memset(p->nrepeat, 0, sizeof p->nrepeat);
    return 0;
}

static int on_url(llhttp_t *hp, const char *at, size_t len)
{
    struct httpd_parser *p = parser_of(hp);
    if (ctl_scan(at, len, false)) /* the non-strict mode allows HTAB and FF */
        return fail(p, 400, "malformed request");
    return head_piece(p, &p->url, at, len);
}

static int on_header_field(llhttp_t *hp, const char *at, size_t len)
{
    struct httpd_parser *p = parser_of(hp);
    if (p->in_body)
        return 0; /* a trailer of a chunked body: ignored, bounded by max_wire_bytes */
    /* A new name: after a value, or after a name whose empty value got
     * no callback (its pieces are contiguous, the next name's are not). */
    bool next_name = p->last == LAST_VALUE ||
                     (p->last == LAST_FIELD && len > 0 &&
                      (size_t)p->field.off + p->field.len != (size_t)(at - p->base));
    if (next_name && finish_header(p) != 0)
        return -1;
    p->last = LAST_FIELD;
    return head_piece(p, &p->field, at, len);
}

static int on_header_value(llhttp_t *hp, const char *at, size_t len)
{
    struct httpd_parser *p = parser_of(hp);
    if (p->in_body)
        return 0;
    if (p->last == LAST_FIELD && field_done(p) != 0)
        return -1;
    if (p->current >= 0 && has_ctl(at, len))
        return fail(p, 400, "malformed header");
    return head_piece(p, &p->value, at, len);
}

static bool value_is(const struct httpd_parser *p, enum httpd_header h, const char *want)
{
    struct httpd_span v = p->header[h];
    return p->header_seen[h] && v.len == strlen(want) &&
           strncasecmp(p->base + v.off, want, v.len) == 0;
}

static int on_headers_complete(llhttp_t *hp)
{
    struct httpd_parser *p = parser_of(hp);
    if (p->last != LAST_NONE && finish_header(p) != 0)
        return -1;
    if (hp->http_major != 1)
        return fail(p, 400, "unsupported HTTP version");
    if ((hp->flags & F_CONTENT_LENGTH) && hp->content_length > p->max_body_bytes)
        return fail(p, 413, "body too large");
    /* Other expectations are ignored, as RFC 9110 allows. */
    p->expect_continue = hp->http_minor >= 1 && value_is(p, HTTPD_H_EXPECT, "100-continue") &&
                         ((hp->flags & F_CHUNKED) ||
                          ((hp->flags & F_CONTENT_LENGTH) && hp->content_length > 0));
    p->in_body = true;
    return 0;
}

/* Body pieces are kept where they are when contiguous (Content-Length),
 * and moved down onto the end of the previous piece when chunk framing
 * separates them: llhttp has passed those bytes and never reads them
 * again, so the body ends up decoded in place. */
static int on_body(llhttp_t *hp, const char *at, size_t len)
{
    struct httpd_parser *p = parser_of(hp);
    p->expect_continue = false; /* the client did not wait */
    if ((size_t)p->body.len + len > p->max_body_bytes)
        return fail(p, 413, "body too large");
    size_t off = (size_t)(at - p->base);
    if (p->body.len == 0) {
        p->body.off = (uint32_t)off;
    } else if ((size_t)p->body.off + p->body.len != off) {
        memmove(p->base + p->body.off + p->body.len, at, len);
    }
    p->body.len += (uint32_t)len;
    return 0;
}

static int on_message_complete(llhttp_t *hp)
{
    struct httpd_parser *p = parser_of(hp);
    p->done = true;
    return HPE_PAUSED; /* one request at a time: answered in order */
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void httpd_parser_init(struct httpd_parser *p, size_t max_header_bytes, size_t max_body_bytes,
                       size_t max_wire_bytes)
{
    memset(p, 0, sizeof *p);
    llhttp_init(&p->hp, HTTP_REQUEST, &settings);
    p->hp.data = p;
    p->max_header_bytes = max_header_bytes;
    p->max_body_bytes = max_body_bytes;
    p->max_wire_bytes = max_wire_bytes;
}

void httpd_parser_free(struct httpd_parser *p)
{
    if (p->join) {
        memset(p->join, 0, p->join_len); /* may hold forwarded client addresses */
        free(p->join);
    }
    p->join = NULL;
    p->join_len = 0;
}

void httpd_parser_next(struct httpd_parser *p)
{
    if (llhttp_get_errno(&p->hp) == HPE_PAUSED)
        llhttp_resume(&p->hp);
    p->fed = 0;
    p->wire = 0;
    p->done = false;
    p->in_body = false;
}

static enum httpd_method method_of(unsigned m)
{
    switch (m) {
    case HTTP_GET: return HTTPD_GET;
    case HTTP_HEAD: return HTTPD_HEAD;
    case HTTP_POST: return HTTPD_POST;
    case HTTP_OPTIONS: return HTTPD_OPTIONS;
    case HTTP_PUT: return HTTPD_PUT;
    case HTTP_DELETE: return HTTPD_DELETE;
    case HTTP_PATCH: return HTTPD_PATCH;
    default: return HTTPD_OTHER;
    }
}

/* Path and query of an origin-form target "/p?q#f". */
static void split_origin(struct httpd_request *req, const char *t, size_t len)
{
    const char *hash = memchr(t, '#', len);
    size_t end = hash ? (size_t)(hash - t) : len;
    const char *q = memchr(t, '?', end);
    req->path = t;
    req->path_len = q ? (size_t)(q - t) : end;
    req->query = q ? q + 1 : NULL;
    req->query_len = q ? end - req->path_len - 1 : 0;
}

/* RFC 3986: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
static bool is_scheme(const char *s, size_t n)
{
    if (n == 0 || !isalpha((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

/* Path and query of the target: origin-form "/p?q", absolute-form
 * "scheme://authority/p?q" (RFC 9112 3.2.2, what a client sends to a
 * proxy); anything else ("*", authority-form, an absolute URI without a
 * path) is its own path and matches no route. */
static void split_target(struct httpd_request *req, const char *t, size_t len)
{
    req->path = t;
    req->path_len = len;
    req->query = NULL;
    req->query_len = 0;
    if (len > 0 && t[0] == '/') {
        split_origin(req, t, len);
        return;
    }
    const char *sep = memmem(t, len, "://", 3);
    if (!sep || !is_scheme(t, (size_t)(sep - t)))
        return;
    const char *auth = sep + 3, *end = t + len;
    const char *path = auth;
    while (path < end && *path != '/' && *path != '?' && *path != '#')
        path++;
    if (path == auth || path == end || *path != '/')
        return;
    split_origin(req, path, (size_t)(end - path));
}

/* Join repeated forwarding header lines with ", ", in order (RFC 9110
 * 5.3): a proxy that appends its own line must not lose to the client's. */
static const char *join_repeated(struct httpd_parser *p, int r, size_t *at)
{
    char *out = p->join + *at;
    size_t n = 0;
    for (unsigned i = 0; i < p->nrepeat[r]; i++) {
        struct httpd_span v = p->repeat[r][i];
        if (v.len == 0)
            continue; /* an empty list element means nothing */
        if (n > 0) {
            memcpy(out + n, ", ", 2);
            n += 2;
        }
        memcpy(out + n, p->base + v.off, v.len);
        n += v.len;
    }
    out[n] = '\0';
    *at += n + 1;
    return out;
}

static void fill_request(struct httpd_parser *p, struct httpd_request *req)
{
    llhttp_t *hp = &p->hp;
    req->method = method_of(hp->method);
    req->version_minor = hp->http_minor;
    req->keep_alive = llhttp_should_keep_alive(hp) && !hp->upgrade;
    split_target(req, p->base + p->url.off, p->url.len);
    size_t join_at = 0;
    if ((p->nrepeat[REPEAT_XFF] > 1 || p->nrepeat[REPEAT_FORWARDED] > 1) && !p->join) {
        /* Both joins together are shorter than the head they came from:
         * each line's name is longer than the ", " that replaces it. */
        p->join_len = p->max_header_bytes + 64;
        p->join = xmalloc(p->join_len);
    }
    for (int h = 0; h < HTTPD_H__COUNT; h++) {
        if (!p->header_seen[h]) {
            req->header[h] = NULL;
            continue;
        }
        int r = h == HTTPD_H_X_FORWARDED_FOR ? REPEAT_XFF
                : h == HTTPD_H_FORWARDED     ? REPEAT_FORWARDED
                                             : -1;
        if (r >= 0 && p->nrepeat[r] > 1) {
            req->header[h] = join_repeated(p, r, &join_at);
            continue;
        }
        struct httpd_span v = p->header[h];
        if (v.len == 0) {
            req->header[h] = "";
            continue;
        }
        /* The byte after a value is its line's CR, LF or trailing blank. */
        p->base[v.off + v.len] = '\0';
        req->header[h] = p->base + v.off;
    }
    req->body = p->body.len ? p->base + p->body.off : "";
    req->body_len = p->body.len;
    req->peer = NULL;
}

static enum httpd_parse_result parse_error(struct httpd_parser *p, llhttp_errno_t e)
{
    if (p->error_status)
        return HTTPD_PARSE_ERROR;
    switch (e) {
    case HPE_INVALID_CONTENT_LENGTH:
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        fail(p, 400, "bad Content-Length");
        break;
    case HPE_INVALID_TRANSFER_ENCODING:
        fail(p, 400, "unsupported Transfer-Encoding");
        break;
    case HPE_INVALID_CHUNK_SIZE:
        fail(p, 400, "bad chunk size");
        break;
    case HPE_INVALID_VERSION:
        fail(p, 400, "unsupported HTTP version");
        break;
    default:
        fail(p, 400, "malformed request");
        break;
    }
    return HTTPD_PARSE_ERROR;
}

enum httpd_parse_result httpd_parse(struct httpd_parser *p, char *buf, size_t *len,
                                    size_t *used, struct httpd_request *req)
{
    *used = 0;
    if (p->error_status)
        return HTTPD_PARSE_ERROR;
    if (p->fed >= *len)
        return HTTPD_PARSE_MORE; /* nothing new */
    p->base = buf;
    const char *from = buf + p->fed;
    size_t n = *len - p->fed;
    llhttp_errno_t e = llhttp_execute(&p->hp, from, n);
    /* Paused at the end of a request, llhttp says where it stopped. */
    size_t consumed = e == HPE_OK ? n : (size_t)(llhttp_get_error_pos(&p->hp) - from);
    p->fed += consumed;
    p->wire += consumed;
    /* Checked where a call ends, whole or not: the chunk framing and the
     * blanks that pass without a callback cannot run on unbounded. */
    if ((e == HPE_OK || e == HPE_PAUSED) && p->wire > p->max_wire_bytes) {
        p->base = NULL;
        return fail(p, 413, "request too large"), HTTPD_PARSE_ERROR;
    }
    if (e == HPE_PAUSED && p->done) {
        fill_request(p, req);
        *used = p->fed;
        p->base = NULL;
        return HTTPD_PARSE_DONE;
    }
    p->base = NULL;
    if (e != HPE_OK)
        return parse_error(p, e);
    /* Drop the chunk framing consumed after the decoded body. */
    if (p->in_body && p->body.len > 0 && (p->hp.flags & F_CHUNKED)) {
        size_t end = (size_t)p->body.off + p->body.len;
        if (end < p->fed) {
            *len = end;
            p->fed = end;
        }
    }
    return HTTPD_PARSE_MORE;
}
