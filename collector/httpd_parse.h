/* httpd_parse.h - one HTTP/1.x request at a time, parsed in place, for the
 * collector's server (httpd.c), on llhttp 8 (Node.js's HTTP parser since
 * Node 12, generated from a grammar by llparse; Debian ships its C source
 * in node-llhttp, and the Makefile compiles it in).
 *
 * The caller keeps the bytes of the request being parsed contiguous and
 * hands them in again as more arrive; the parser resumes where it stopped
 * and never reads a byte twice. Everything a request yields points into
 * those bytes: nothing is copied except repeated forwarding headers, which
 * are joined. A chunked body is decoded in place. Limits are checked while
 * bytes arrive, so an oversized request is refused before it is buffered.
 *
 * Never keeps what it parsed beyond the next call: the request's bytes,
 * which hold the client's headers, belong to the caller, who wipes them. */
#ifndef VEIL_HTTPD_PARSE_H
#define VEIL_HTTPD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <llhttp.h>

enum httpd_method {
    HTTPD_GET,
    HTTPD_HEAD,
    HTTPD_POST,
    HTTPD_OPTIONS,
    HTTPD_PUT,
    HTTPD_DELETE,
    HTTPD_PATCH,
    HTTPD_OTHER, /* any other method llhttp knows (answered 405) */
};

/* The request headers the collector reads; all others are skipped. */
enum httpd_header {
    HTTPD_H_CONTENT_TYPE,
    HTTPD_H_USER_AGENT,
    HTTPD_H_X_FORWARDED_FOR, /* repeated lines joined with ", " in order */
    HTTPD_H_FORWARDED,       /* likewise */
    HTTPD_H_DNT,
    HTTPD_H_SEC_GPC,
    HTTPD_H_IF_NONE_MATCH,
    HTTPD_H_EXPECT,
    HTTPD_H_X_REAL_IP,       /* a second line makes it "" (the proxy's own address) */
    HTTPD_H__COUNT
};

/* Repeated X-Forwarded-For / Forwarded lines kept per request; more is 400. */
#define HTTPD_REPEAT_MAX 16

/* One parsed request. Every pointer is into the caller's buffer (or the
 * parser's join buffer) and valid until the caller moves those bytes or
 * calls httpd_parse again. */
struct httpd_request {
    enum httpd_method method;
    unsigned version_minor;    /* HTTP/1.<minor> */
    bool keep_alive;           /* another request may follow on the connection */
    const char *path;          /* request target up to '?', not NUL-terminated */
    size_t path_len;
    const char *query;         /* after '?', not NUL-terminated; NULL without '?' */
    size_t query_len;
    const char *header[HTTPD_H__COUNT]; /* NUL-terminated, trimmed; NULL when absent */
    const char *body;          /* decoded; "" when none; not NUL-terminated */
    size_t body_len;
    const struct sockaddr *peer; /* set by httpd.c, never by the parser */
};

/* Offset and length of a span of the request's bytes. */
struct httpd_span {
    uint32_t off, len;
};

struct httpd_parser {
    llhttp_t hp;
    size_t max_header_bytes;   /* request line + headers (the head) */
    size_t max_body_bytes;     /* decoded body */
    size_t max_wire_bytes;     /* the whole request as sent, chunk framing included */

    /* The request being parsed; offsets count from its first byte. */
    char *base;                /* the caller's buffer during one httpd_parse call */
    size_t fed;                /* bytes already given to llhttp */
    size_t wire;               /* bytes of this request consumed, framing included */
    bool in_body;              /* headers complete: body or trailers follow */
    bool done;                 /* on_message_complete seen (parser paused) */
    bool expect_continue;      /* client waits for "100 Continue" before its body */
    enum { LAST_NONE, LAST_FIELD, LAST_VALUE } last;
    int current;               /* the header being read: enum httpd_header, -1 other */
    struct httpd_span url, field, value, body;
    struct httpd_span header[HTTPD_H__COUNT];
    bool header_seen[HTTPD_H__COUNT];
    struct httpd_span repeat[2][HTTPD_REPEAT_MAX]; /* X-Forwarded-For, Forwarded */
    unsigned nrepeat[2];

    char *join;                /* joined repeated headers, allocated on first use */
    size_t join_len;

    int error_status;          /* after HTTPD_PARSE_ERROR: 400, 413 or 431 */
    const char *error_reason;  /* a fixed text, never input */
};

enum httpd_parse_result {
    HTTPD_PARSE_DONE,  /* a whole request: see httpd_parse */
    HTTPD_PARSE_MORE,  /* every byte consumed; the request needs more */
    HTTPD_PARSE_ERROR, /* answer error_status with error_reason and close */
};

/* Set up `p` for a connection's first request with the given limits
 * (max_wire_bytes: the request as sent, e.g. head + twice the body). */
void httpd_parser_init(struct httpd_parser *p, size_t max_header_bytes, size_t max_body_bytes,
                       size_t max_wire_bytes);

/* Release what httpd_parser_init and parsing allocated (the join buffer). */
void httpd_parser_free(struct httpd_parser *p);

/* Parse the request that starts at buf[0]; buf[0..*len) is what has
 * arrived of it (and possibly of requests after it). Bytes before p->fed
 * were parsed by earlier calls and are not read again; the caller may have
 * moved the whole span elsewhere in between. The buffer is written to: a
 * chunked body is decoded in place and header values are NUL-terminated.
 *
 * DONE: `req` describes one whole request that took buf[0..*used); bytes
 *   after it belong to the next request. Call httpd_parser_next before
 *   parsing that one (after `req` is no longer needed).
 * MORE: all of buf[0..*len) was consumed; *len may have shrunk (the
 *   framing of a chunked body is dropped): keep buf[0..*len) and call again
 *   with more bytes appended. p->expect_continue tells whether the client
 *   waits for "100 Continue".
 * ERROR: p->error_status and p->error_reason say why; the connection
 *   cannot carry another request. */
enum httpd_parse_result httpd_parse(struct httpd_parser *p, char *buf, size_t *len,
                                    size_t *used, struct httpd_request *req);

/* Get ready for the next request on the same connection (after DONE). */
void httpd_parser_next(struct httpd_parser *p);

#endif
