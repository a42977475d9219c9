/* target_httpd.c - fuzz_httpd_parse: httpd_parse() (collector/httpd_parse.h),
 * the collector's in-place HTTP/1.x request parser, on the bytes a client
 * sends over one connection (pipelined requests, chunked bodies, garbage).
 *
 * Input: byte 0 picks how the bytes arrive (bit 7: one byte per read;
 * otherwise up to 16 reads cut at points drawn from a generator seeded with
 * byte 0); the rest is the connection's bytes. They are parsed twice, as
 * httpd.c does it (the unfinished request is moved to the front of the
 * buffer between reads): delivered whole, and delivered in pieces.
 *
 * Checks, for every input:
 * - split invariance: both deliveries yield the same requests (method,
 *   version, keep-alive, path, query, the headers the collector reads,
 *   body) and end the same way (waiting for more, or with an error:
 *   which error comes first may differ);
 * - every pointer of a request lies in the buffer (or the join buffer);
 *   header values are NUL-terminated, trimmed, without CR or LF; the body
 *   and the head respect the limits;
 * - an error is 400, 413 or 431 with a short printable fixed reason.
 * Limits are small so that they are reached often. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "harness.h"
#include "httpd_parse.h"

#define TARGET "httpd_parse"
#define MAX_HEAD 512
#define MAX_BODY 256
#define MAX_WIRE (MAX_HEAD + 2 * MAX_BODY + 64)

/* What a parse produced, as comparable bytes. */
struct transcript {
    char *text;
    size_t len, cap;
    int error;                 /* 0: ended waiting for more (or closed) */
    const char *reason;
};

static void emit(struct transcript *t, const void *bytes, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2 + 256;
        t->text = realloc(t->text, t->cap);
        if (!t->text)
            abort();
    }
    memcpy(t->text + t->len, bytes, n);
    t->len += n;
}

static void emit_field(struct transcript *t, const char *s, size_t n)
{
    uint32_t len = s ? (uint32_t)n : UINT32_MAX;
    emit(t, &len, sizeof len);
    if (s)
        emit(t, s, n);
}

static bool inside(const char *p, size_t n, const char *lo, size_t size)
{
    return p >= lo && n <= size && (size_t)(p - lo) <= size - n;
}

static void check_request(const struct httpd_parser *p, const struct httpd_request *req,
                          const char *buf, size_t len)
{
    CHECKF(TARGET, inside(req->path, req->path_len, buf, len), "path outside the buffer");
    CHECKF(TARGET, req->path_len <= MAX_HEAD, "path over the head limit");
    if (req->query)
        CHECKF(TARGET, inside(req->query, req->query_len, buf, len), "query outside the buffer");
    CHECKF(TARGET, req->body_len <= MAX_BODY, "body over max_body_bytes: %zu", req->body_len);
    if (req->body_len)
        CHECKF(TARGET, inside(req->body, req->body_len, buf, len), "body outside the buffer");
    for (int h = 0; h < HTTPD_H__COUNT; h++) {
        const char *v = req->header[h];
        if (!v || !*v)
            continue;
        size_t n = strlen(v);
        bool in_buf = inside(v, n + 1, buf, len);
        bool in_join = p->join && inside(v, n + 1, p->join, p->join_len);
        CHECKF(TARGET, in_buf || in_join, "header %d outside the buffers", h);
        CHECKF(TARGET, n <= MAX_HEAD, "header %d over the head limit", h);
        CHECKF(TARGET, !memchr(v, '\r', n) && !memchr(v, '\n', n), "CR or LF in header %d", h);
        CHECKF(TARGET, v[0] != ' ' && v[0] != '\t' && v[n - 1] != ' ' && v[n - 1] != '\t',
               "header %d not trimmed", h);
    }
}

static void record(struct transcript *t, const struct httpd_request *req)
{
    uint8_t fixed[3] = {(uint8_t)req->method, (uint8_t)req->version_minor,
                        (uint8_t)req->keep_alive};
    emit(t, fixed, sizeof fixed);
    emit_field(t, req->path, req->path_len);
    emit_field(t, req->query, req->query_len);
    for (int h = 0; h < HTTPD_H__COUNT; h++)
        emit_field(t, req->header[h], req->header[h] ? strlen(req->header[h]) : 0);
    emit_field(t, req->body, req->body_len);
}

static void check_error(const struct httpd_parser *p)
{
    int s = p->error_status;
    CHECKF(TARGET, s == 400 || s == 413 || s == 431, "error status %d", s);
    const char *r = p->error_reason;
    CHECKF(TARGET, r && *r && strlen(r) < 64, "error reason missing or long");
    for (const char *c = r; *c; c++)
        CHECKF(TARGET, *c >= 0x20 && *c < 0x7f, "unprintable error reason");
}

/* Deliver data[0..size) in reads ending at cuts[0..ncuts) (then the rest)
 * and parse as httpd.c does. */
static void run(const uint8_t *data, size_t size, const size_t *cuts, size_t ncuts,
                struct transcript *t)
{
    struct httpd_parser p;
    httpd_parser_init(&p, MAX_HEAD, MAX_BODY, MAX_WIRE);
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    size_t len = 0, delivered = 0;
    bool over = false;
    for (size_t k = 0; k <= ncuts && !over; k++) {
        size_t end = k < ncuts ? cuts[k] : size;
        if (end <= delivered)
            continue;
        memcpy(buf + len, data + delivered, end - delivered);
        len += end - delivered;
        delivered = end;
        size_t start = 0;
        while (start < len) {
            size_t region = len - start, used;
            struct httpd_request req;
            enum httpd_parse_result r = httpd_parse(&p, buf + start, &region, &used, &req);
            if (r == HTTPD_PARSE_MORE) {
                CHECKF(TARGET, region <= len - start, "the region grew");
                len = start + region;
                break;
            }
            if (r == HTTPD_PARSE_ERROR) {
                check_error(&p);
                t->error = p.error_status;
                t->reason = p.error_reason;
                over = true;
                break;
            }
            CHECKF(TARGET, used > 0 && used <= len - start, "a request of %zu bytes", used);
            check_request(&p, &req, buf, size + 1);
            record(t, &req);
            start += used;
            httpd_parser_next(&p);
            if (!req.keep_alive) {
                over = true;
                break;
            }
        }
        if (!over) { /* keep the unfinished request at the front */
            memmove(buf, buf + start, len - start);
            len -= start;
        }
    }
    httpd_parser_free(&p);
    free(buf);
}

int fuzz_httpd_parse(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    size_t ncuts = 0;
    size_t *cuts = malloc((size + 1) * sizeof *cuts);
    if (!cuts)
        abort();
    if (mode & 0x80) {
        for (size_t i = 1; i < size; i++)
            cuts[ncuts++] = i;
    } else if (size > 1) {
        uint32_t x = mode * 2654435761u + 1;
        size_t n = 1 + mode % 16, at = 0;
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            at += 1 + (x >> 8) % (size / n + 1);
            if (at >= size)
                break;
            cuts[ncuts++] = at;
        }
    }
    struct transcript whole = {0}, pieces = {0};
    run(data, size, NULL, 0, &whole);
    run(data, size, cuts, ncuts, &pieces);
    CHECKF(TARGET,
           whole.len == pieces.len && (!whole.len || !memcmp(whole.text, pieces.text, whole.len)),
           "requests differ when the bytes arrive in %zu reads", ncuts + 1);
    /* Which error comes first may differ (a too-long element is seen in
     * pieces before http_parser finds a bad byte further in it); that
     * there is one may not. */
    CHECKF(TARGET, (whole.error != 0) == (pieces.error != 0),
           "one delivery ends in error %d, the other in %d", whole.error, pieces.error);
    free(whole.text);
    free(pieces.text);
    free(cuts);
    return 0;
}
